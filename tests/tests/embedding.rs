//! Issue #14, "Embedding proto-core in a custom runtime": the `std`-only example driver
//! `proto-core/examples/blocking_download.rs` downloads a torrent over 127.0.0.1 from
//! (a) a real libtorrent seeder (python libtorrent; skipped with a `SKIP` line where it is
//! missing, unless `RAIN_REQUIRE_INTEROP=1`) and (b) a rain session seeding in-process, and the
//! bytes it wrote must equal the source. It must also fail, with one line and a non-zero exit,
//! when its peer is not there.
//!
//! The example is built with the same `cargo` that runs this test (`env!("CARGO")`, the
//! workspace manifest, the shared target directory) and located from cargo's JSON artifact
//! message, so it works whatever the profile or `CARGO_TARGET_DIR`. Every process started here
//! is killed when its guard drops, and every wait is bounded.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rain_proto::torrent::Status;
use rain_runtime::create::{CreateOptions, create_torrent};
use rain_runtime::session::{AddOptions, Session, SessionConfig};
use rain_tests::lt_seeder::{FILES, LibtorrentSeeder};
use rain_tests::{KillOnDrop, free_port, python_libtorrent_available, require};

/// Bound on one download by the example (its own bound is longer).
const DOWNLOAD_WAIT: Duration = Duration::from_secs(120);
/// Bound on building the example (the target directory may be shared with other builds).
const BUILD_WAIT: Duration = Duration::from_secs(900);
/// Bound on a seeder becoming ready.
const SEEDER_WAIT: Duration = Duration::from_secs(60);

/// Waits for `child` up to `limit`; on timeout it is killed and `None` returned.
fn wait_bounded(child: Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let mut guard = KillOnDrop(child);
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = guard.0.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None; // the guard kills it
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Builds the example once per test binary and returns its path.
fn example() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("tests/ sits in the workspace")
            .join("Cargo.toml");
        // cargo's JSON messages go to a file: no pipe to fill, and the wait stays bounded
        // (another build may hold the shared target directory for a while).
        let json = tempfile::NamedTempFile::new().unwrap();
        let cargo = Command::new(env!("CARGO"))
            .args([
                "build",
                "-p",
                "rain-proto",
                "--example",
                "blocking_download",
            ])
            .args([
                "--message-format",
                "json-render-diagnostics",
                "--manifest-path",
            ])
            .arg(&manifest)
            .stdout(json.reopen().unwrap())
            .spawn()
            .expect("run cargo");
        let status = wait_bounded(cargo, BUILD_WAIT).expect("building the example timed out");
        assert!(status.success(), "building the example failed");
        let stdout = std::fs::read_to_string(json.path()).unwrap();
        let exe = stdout
            .lines()
            .filter(|l| l.contains(r#""name":"blocking_download""#))
            .find_map(|l| {
                let rest = &l[l.find(r#""executable":""#)? + r#""executable":""#.len()..];
                Some(PathBuf::from(&rest[..rest.find('"')?]))
            })
            .expect("cargo reported no executable for the example");
        assert!(exe.is_file(), "{} is missing", exe.display());
        exe
    })
}

/// Runs the example against `peer`, bounded by [`DOWNLOAD_WAIT`]; returns (exit success,
/// stdout and stderr).
fn run_example(torrent: &Path, peer: &str, out: &Path) -> (bool, String) {
    let log = out.with_extension("log");
    let file = std::fs::File::create(&log).unwrap();
    let child = Command::new(example())
        .arg(torrent)
        .arg(peer)
        .arg(out)
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .expect("start the example");
    let status = wait_bounded(child, DOWNLOAD_WAIT);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let status =
        status.unwrap_or_else(|| panic!("example still running after {DOWNLOAD_WAIT:?}:\n{text}"));
    (status.success(), text)
}

/// Asserts that every `(relative path, bytes)` is in `dir` with exactly those bytes.
fn assert_same(dir: &Path, files: &[(PathBuf, Vec<u8>)]) {
    for (rel, want) in files {
        let got = std::fs::read(dir.join(rel))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.join(rel).display()));
        assert_eq!(
            got.len(),
            want.len(),
            "{} has the wrong length",
            rel.display()
        );
        assert!(got == *want, "{} differs from the seeder's", rel.display());
    }
}

/// Deterministic pseudo-random bytes (xorshift), so payloads differ block by block.
fn payload(len: usize, mut x: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn example_downloads_from_libtorrent() {
    if !require(
        "example_downloads_from_libtorrent",
        "python3 libtorrent",
        python_libtorrent_available(),
    ) {
        return;
    }
    example(); // build before the seeder's clock starts
    let tmp = tempfile::tempdir().unwrap();
    let seeder = LibtorrentSeeder::start(&tmp.path().join("lt"), SEEDER_WAIT);

    let out = tmp.path().join("out");
    let (ok, log) = run_example(
        &seeder.torrent(),
        &format!("127.0.0.1:{}", seeder.port),
        &out,
    );
    assert!(ok, "example failed against libtorrent:\n{log}");
    let files: Vec<(PathBuf, Vec<u8>)> = FILES
        .iter()
        .map(|rel| {
            (
                PathBuf::from(rel),
                std::fs::read(seeder.dir.join(rel)).unwrap(),
            )
        })
        .collect();
    assert_same(&out, &files);
    drop(seeder);
}

#[test]
fn example_downloads_from_rain() {
    example();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("seed");
    // A multi-file torrent whose pieces straddle files, and a short last piece.
    let files: Vec<(PathBuf, Vec<u8>)> = [("a.bin", 700_001, 1), ("sub/b.bin", 16_385, 2)]
        .into_iter()
        .map(|(n, len, x)| (Path::new("payload").join(n), payload(len, 0x9e37_79b9 * x)))
        .collect();
    for (rel, bytes) in &files {
        let path = data.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    let torrent_bytes = create_torrent(&CreateOptions {
        paths: vec![data.join("payload")],
        piece_length: Some(32 * 1024),
        threads: 1,
        ..CreateOptions::default()
    })
    .unwrap();
    let torrent = tmp.path().join("t.torrent");
    std::fs::write(&torrent, &torrent_bytes).unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let port = free_port();
    // A seeding session on loopback only (no DHT, no trackers), its data already in place.
    let (session, id) = rt.block_on(async {
        let s = Session::new(SessionConfig {
            database: tmp.path().join("session.db"),
            data_dir: data.clone(),
            data_dir_includes_torrent_id: false,
            host: "127.0.0.1".parse().unwrap(),
            port_begin: port,
            port_end: port + 1,
            dht_enabled: false,
            seed: Some(14),
            ..SessionConfig::default()
        })
        .await
        .unwrap();
        let t = s
            .add_torrent(&torrent_bytes, AddOptions::default())
            .await
            .unwrap();
        assert_eq!(t.port, port);
        let deadline = tokio::time::Instant::now() + SEEDER_WAIT;
        loop {
            let st = s.stats(&t.id).await.unwrap();
            if st.status == Status::Seeding {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "rain seeder still {:?} ({:?})",
                st.status,
                st.error
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (s, t.id)
    });

    // The session's tasks run on the runtime's workers while this thread waits for the example.
    let out = tmp.path().join("out");
    let (ok, log) = run_example(&torrent, &format!("127.0.0.1:{port}"), &out);
    let uploaded = rt.block_on(async {
        let up = session.stats(&id).await.map(|s| s.stats.bytes.uploaded);
        session.close().await.unwrap();
        up
    });
    assert!(ok, "example failed against rain:\n{log}");
    assert_same(&out, &files);
    let total: usize = files.iter().map(|(_, b)| b.len()).sum();
    assert!(
        uploaded.unwrap() >= total as u64,
        "the rain seeder uploaded less than the payload"
    );
}

#[test]
fn example_fails_in_one_line_without_a_peer() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("f.bin");
    std::fs::write(&data, payload(40_000, 7)).unwrap();
    let torrent = tmp.path().join("t.torrent");
    let bytes = create_torrent(&CreateOptions {
        paths: vec![data],
        piece_length: Some(16 * 1024),
        threads: 1,
        ..CreateOptions::default()
    })
    .unwrap();
    std::fs::write(&torrent, bytes).unwrap();
    // Nobody listens on a port we just freed.
    let port = free_port();
    let (ok, log) = run_example(
        &torrent,
        &format!("127.0.0.1:{port}"),
        &tmp.path().join("out"),
    );
    assert!(!ok, "the example succeeded without a peer:\n{log}");
    let last = log.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("blocking_download: "),
        "no one-line error: {log}"
    );
}

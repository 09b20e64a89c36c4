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
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use rain_proto::torrent::Status;
use rain_runtime::session::{AddOptions, Session};
use rain_tests::lt_seeder::{FILES, LibtorrentSeeder};
use rain_tests::process::{Guard, free_port, logged};
use rain_tests::rain_peer::{
    Files, assert_same, loopback_config, make_torrent, payload, wait_status, write_payload,
};
use rain_tests::{python_libtorrent_available, require};

/// Bound on one download by the example (its own bound is longer).
const DOWNLOAD_WAIT: Duration = Duration::from_secs(120);
/// Bound on building the example (the target directory may be shared with other builds).
const BUILD_WAIT: Duration = Duration::from_secs(900);
/// Bound on a seeder becoming ready.
const SEEDER_WAIT: Duration = Duration::from_secs(60);

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
        let mut cargo = Guard::spawn(
            "cargo build",
            Command::new(env!("CARGO"))
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
                .stdout(json.reopen().unwrap()),
        );
        // On timeout the guard kills it.
        let status = cargo
            .wait_bounded(BUILD_WAIT)
            .expect("building the example timed out");
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
    let mut child = Guard::spawn(
        "the example",
        logged(
            Command::new(example()).arg(torrent).arg(peer).arg(out),
            &log,
        ),
    );
    let status = child.wait_bounded(DOWNLOAD_WAIT);
    drop(child);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let status =
        status.unwrap_or_else(|| panic!("example still running after {DOWNLOAD_WAIT:?}:\n{text}"));
    (status.success(), text)
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
        &format!("127.0.0.1:{}", seeder.port()),
        &out,
    );
    assert!(ok, "example failed against libtorrent:\n{log}");
    let files: Files = FILES
        .iter()
        .map(|rel| {
            (
                PathBuf::from(rel),
                std::fs::read(seeder.dir().join(rel)).unwrap(),
            )
        })
        .collect();
    assert_same("the example", &out, &files);
    drop(seeder);
}

#[test]
fn example_downloads_from_rain() {
    example();
    let tmp = tempfile::tempdir().unwrap();
    // A seeding session on loopback only (no DHT, no trackers), its data already in place.
    let config = loopback_config(&tmp.path().join("rain"), 14);
    let port = config.port_begin;
    // A multi-file torrent whose pieces straddle files, and a short last piece.
    let (files, top) = write_payload(
        &config.data_dir,
        "payload",
        &[("a.bin", 700_001), ("sub/b.bin", 16_385)],
        1,
    );
    let torrent_bytes = make_torrent(&top, 32 * 1024, None);
    let torrent = tmp.path().join("t.torrent");
    std::fs::write(&torrent, &torrent_bytes).unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (session, id) = rt.block_on(async {
        let s = Session::new(config).await.unwrap();
        let t = s
            .add_torrent(&torrent_bytes, AddOptions::default())
            .await
            .unwrap();
        assert_eq!(t.port, port);
        if let Err(e) = wait_status(&s, &t.id, Status::Seeding, SEEDER_WAIT, |_| {}).await {
            panic!("rain seeder not ready: {e}");
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
    assert_same("the example", &out, &files);
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
    std::fs::write(&torrent, make_torrent(&data, 16 * 1024, None)).unwrap();
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

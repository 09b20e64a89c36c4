//! Acceptance against a real tracker: opentracker (Debian package) on 127.0.0.1, over HTTP and
//! over UDP. Two clients with different peer ids and ports announce the same torrent and each
//! must see the other; scrape must report the right counts.
//!
//! Skips with a `SKIP …` line when opentracker is not installed, and fails instead when
//! `RAIN_REQUIRE_INTEROP=1` (the convention of `tests/src/lib.rs`).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rain_proto::InfoHash;
use rain_proto::metainfo::{Limits, Metainfo};
use rain_proto::rng::Seed;
use rain_proto::torrent::Status;
use rain_proto::tracker::{Announce, AnnounceReply, Event, TrackerError};
use rain_runtime::create::{CreateOptions, create_torrent};
use rain_runtime::net::TokioNet;
use rain_runtime::session::{AddOptions, Session, SessionConfig};
use rain_runtime::tracker_client::{TrackerClient, TrackerConfig};
use rain_tests::{free_port, require};

/// Bounds every wait on the tracker.
const BOUND: Duration = Duration::from_secs(10);

const HTTP_HASH: InfoHash = InfoHash([0x11; 20]);
const UDP_HASH: InfoHash = InfoHash([0x22; 20]);
/// Announced until the whitelist is loaded (a `stopped` would not tell: it is not checked).
const PROBE_HASH: InfoHash = InfoHash([0x33; 20]);

fn opentracker_installed() -> bool {
    Command::new("opentracker")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Kills opentracker when the test ends, however it ends.
struct Tracker {
    child: Child,
    port: u16,
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hex(h: &InfoHash) -> String {
    h.0.iter().fold(String::new(), |mut s, b| {
        use std::fmt::Write;
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Starts opentracker serving only our info-hashes (Debian's build whitelists). The
/// directory holds the whitelist and must outlive the tracker.
async fn start_tracker(extra: &[InfoHash]) -> (Tracker, tempfile::TempDir) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // opentracker chroots into the directory and drops to `nobody` when run as root.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let wl = dir.path().join("whitelist");
    let hashes: Vec<String> = [HTTP_HASH, UDP_HASH, PROBE_HASH]
        .iter()
        .chain(extra)
        .map(|h| hex(h) + "\n")
        .collect();
    std::fs::write(&wl, hashes.concat()).unwrap();
    std::fs::set_permissions(&wl, std::fs::Permissions::from_mode(0o644)).unwrap();

    for _ in 0..5 {
        let port = free_port();
        let child = Command::new("opentracker")
            .args([
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-P",
                &port.to_string(),
            ])
            // Relative to the chroot (or working) directory.
            .args(["-w", "whitelist", "-d"])
            .arg(dir.path())
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn opentracker");
        let mut t = Tracker { child, port };
        if wait_ready(&mut t).await {
            return (t, dir);
        }
    }
    panic!("opentracker did not start");
}

/// Waits until the tracker answers an announce for a whitelisted torrent.
async fn wait_ready(t: &mut Tracker) -> bool {
    let client = client(9);
    let url = format!("http://127.0.0.1:{}/announce", t.port);
    let probe = announce(PROBE_HASH, 9, 9999, 0, Event::Started);
    let deadline = tokio::time::Instant::now() + BOUND;
    while tokio::time::Instant::now() < deadline {
        if let Ok(Some(_)) = t.child.try_wait() {
            return false; // exited: the port was taken, probably
        }
        match client.announce(&url, &probe, None, false).await {
            Ok(_) => return true,
            // The whitelist is loaded by a thread shortly after start.
            Err(TrackerError::Refused { .. } | TrackerError::Transport(_)) => {}
            Err(e) => panic!("opentracker probe: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn client(n: u64) -> TrackerClient<TokioNet> {
    let mut config = TrackerConfig::default();
    config.http.timeout = Duration::from_secs(5);
    config.udp.timeout = Duration::from_secs(5);
    config.udp.retransmit_base = Duration::from_millis(500);
    TrackerClient::new(TokioNet, config, Seed::from_u64(n))
}

fn announce(info_hash: InfoHash, n: u8, port: u16, left: u64, event: Event) -> Announce {
    let mut peer_id = *b"-RN0010-000000000000";
    peer_id[19] = b'0' + n;
    Announce {
        info_hash,
        peer_id,
        port,
        uploaded: 0,
        downloaded: 0,
        left,
        event,
        num_want: 50,
        key: u32::from(n),
    }
}

async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(BOUND, f).await.expect("bounded wait")
}

fn has_peer(r: &AnnounceReply, port: u16) -> bool {
    let want: SocketAddr = ([127, 0, 0, 1], port).into();
    r.peers.contains(&want)
}

/// A seeder (port 1111) and a leecher (port 2222) announce; each sees the other; scrape says
/// one seeder and one leecher.
async fn two_peers_find_each_other(url: &str, hash: InfoHash) {
    let (a, b) = (client(1), client(2));
    let seeder = announce(hash, 1, 1111, 0, Event::Started);
    let leecher = announce(hash, 2, 2222, 1000, Event::Started);

    bounded(a.announce(url, &seeder, None, false))
        .await
        .unwrap();
    let rb = bounded(b.announce(url, &leecher, None, false))
        .await
        .unwrap();
    assert!(
        has_peer(&rb, 1111),
        "{url}: leecher sees the seeder: {rb:?}"
    );
    let again = Announce {
        event: Event::None,
        ..seeder
    };
    let ra = bounded(a.announce(url, &again, None, false)).await.unwrap();
    assert!(
        has_peer(&ra, 2222),
        "{url}: seeder sees the leecher: {ra:?}"
    );
    assert_eq!((ra.seeders, ra.leechers), (Some(1), Some(1)), "{url}");

    let s = bounded(a.scrape(url, &hash, false)).await.unwrap();
    assert_eq!((s.seeders, s.leechers), (1, 1), "{url}: scrape {s:?}");
}

#[tokio::test]
async fn opentracker_http_and_udp() {
    if !require(
        "opentracker_http_and_udp",
        "opentracker",
        opentracker_installed(),
    ) {
        return;
    }
    let (t, _dir) = start_tracker(&[]).await;
    two_peers_find_each_other(&format!("http://127.0.0.1:{}/announce", t.port), HTTP_HASH).await;
    two_peers_find_each_other(&format!("udp://127.0.0.1:{}/announce", t.port), UDP_HASH).await;
    drop(t);
}

/// A payload and its torrent (with `tracker` as its only tracker) under `dir/seed/<name>`.
fn make_torrent(dir: &std::path::Path, name: &str, tracker: Option<&str>) -> (Vec<u8>, Vec<u8>) {
    let data: Vec<u8> = (0..600_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8 ^ name.len() as u8)
        .collect();
    let file = dir.join("seed").join(name);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, &data).unwrap();
    let torrent = create_torrent(&CreateOptions {
        paths: vec![file],
        piece_length: Some(32 * 1024),
        trackers: tracker
            .map(|t| vec![vec![t.to_owned()]])
            .unwrap_or_default(),
        ..CreateOptions::default()
    })
    .unwrap();
    (data, torrent)
}

fn session_config(dir: &std::path::Path, seed: u64) -> SessionConfig {
    let ports = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        / 2
        + 20_000;
    SessionConfig {
        database: dir.join("session.db"),
        data_dir: dir.join("data"),
        data_dir_includes_torrent_id: false,
        host: "127.0.0.1".parse().unwrap(),
        port_begin: ports,
        port_end: ports + 10,
        seed: Some(seed),
        ..SessionConfig::default()
    }
}

/// Two rain sessions that know only the tracker URL find each other through opentracker and
/// complete the torrent, over HTTP and over UDP; the tracker shows as working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rain_sessions_find_each_other_through_opentracker() {
    if !require(
        "two_rain_sessions_find_each_other_through_opentracker",
        "opentracker",
        opentracker_installed(),
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let names = ["over-http.bin", "over-udp.bin"];
    // The info-hash does not cover the tracker URL, so it is known before the tracker runs.
    let hashes: Vec<InfoHash> = names
        .iter()
        .map(|n| {
            Metainfo::from_bytes(&make_torrent(tmp.path(), n, None).1, &Limits::default())
                .unwrap()
                .info_hash
        })
        .collect();
    let (t, _dir) = start_tracker(&hashes).await;
    for (name, scheme) in names.iter().zip(["http", "udp"]) {
        let url = format!("{scheme}://127.0.0.1:{}/announce", t.port);
        let (data, torrent) = make_torrent(tmp.path(), name, Some(&url));
        let (dir_a, dir_b) = (
            tmp.path().join(format!("a-{scheme}")),
            tmp.path().join(format!("b-{scheme}")),
        );
        std::fs::create_dir_all(dir_a.join("data")).unwrap();
        std::fs::copy(
            tmp.path().join("seed").join(name),
            dir_a.join("data").join(name),
        )
        .unwrap();
        let a = Session::new(session_config(&dir_a, 1)).await.unwrap();
        let ta = a
            .add_torrent(&torrent, AddOptions::default())
            .await
            .unwrap();
        // The seeder is known to the tracker first: a seeder does not dial, so a leecher that
        // announced earlier would only learn of it at its next announce, a minute later.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let working = a
                .trackers(&ta.id)
                .await
                .unwrap()
                .iter()
                .any(|t| t.status.to_string() == "Working");
            if working && a.stats(&ta.id).await.unwrap().status == Status::Seeding {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{scheme}: seeder never announced"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let b = Session::new(session_config(&dir_b, 2)).await.unwrap();
        let tb = b
            .add_torrent(&torrent, AddOptions::default())
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let s = b.stats(&tb.id).await.unwrap();
            if s.status == Status::Seeding {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{scheme}: leecher still {:?} with {} peers, trackers {:?}",
                s.status,
                s.stats.peers.total,
                b.trackers(&tb.id).await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            std::fs::read(dir_b.join("data").join(name)).unwrap(),
            data,
            "{scheme}"
        );
        let trackers = a.trackers(&ta.id).await.unwrap();
        assert_eq!(trackers.len(), 1);
        assert_eq!(
            trackers[0].status.to_string(),
            "Working",
            "{scheme}: {trackers:?}"
        );
        a.close().await.unwrap();
        b.close().await.unwrap();
    }
    drop(t);
}

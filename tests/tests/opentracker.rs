//! Acceptance against a real tracker: opentracker (Debian package) on 127.0.0.1, over HTTP and
//! over UDP. Two clients with different peer ids and ports announce the same torrent and each
//! must see the other; scrape must report the right counts.
//!
//! Skips with a `SKIP …` line when opentracker is not installed, and fails instead when
//! `RAIN_REQUIRE_INTEROP=1` (the convention of `tests/src/lib.rs`).

use std::net::SocketAddr;
use std::time::Duration;

use rain_proto::InfoHash;
use rain_proto::metainfo::{Limits, Metainfo};
use rain_proto::rng::Seed;
use rain_proto::torrent::Status;
use rain_proto::tracker::{Announce, AnnounceReply, Event};
use rain_runtime::net::TokioNet;
use rain_runtime::session::{AddOptions, Session};
use rain_runtime::tracker_client::{TrackerClient, TrackerConfig};
use rain_tests::opentracker::{self, OpenTracker};
use rain_tests::rain_peer::{loopback_config, make_torrent, payload};
use rain_tests::require;

/// Bounds every wait on the tracker.
const BOUND: Duration = Duration::from_secs(10);

const HTTP_HASH: InfoHash = InfoHash([0x11; 20]);
const UDP_HASH: InfoHash = InfoHash([0x22; 20]);

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
        opentracker::installed(),
    ) {
        return;
    }
    let t = OpenTracker::start(&[HTTP_HASH, UDP_HASH]).await;
    two_peers_find_each_other(&t.http_url(), HTTP_HASH).await;
    two_peers_find_each_other(&t.udp_url(), UDP_HASH).await;
    drop(t);
}

/// A payload and its torrent (with `tracker` as its only tracker) under `dir/seed/<name>`.
fn make_payload(dir: &std::path::Path, name: &str, tracker: Option<&str>) -> (Vec<u8>, Vec<u8>) {
    let data = payload(600_000, name.len() as u64);
    let file = dir.join("seed").join(name);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, &data).unwrap();
    (data, make_torrent(&file, 32 * 1024, tracker))
}

/// Two rain sessions that know only the tracker URL find each other through opentracker and
/// complete the torrent, over HTTP and over UDP; the tracker shows as working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rain_sessions_find_each_other_through_opentracker() {
    if !require(
        "two_rain_sessions_find_each_other_through_opentracker",
        "opentracker",
        opentracker::installed(),
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let names = ["over-http.bin", "over-udp.bin"];
    // The info-hash does not cover the tracker URL, so it is known before the tracker runs.
    let hashes: Vec<InfoHash> = names
        .iter()
        .map(|n| {
            Metainfo::from_bytes(&make_payload(tmp.path(), n, None).1, &Limits::default())
                .unwrap()
                .info_hash
        })
        .collect();
    let t = OpenTracker::start(&hashes).await;
    for (name, (scheme, url)) in names
        .iter()
        .zip([("http", t.http_url()), ("udp", t.udp_url())])
    {
        let (data, torrent) = make_payload(tmp.path(), name, Some(&url));
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
        let a = Session::new(loopback_config(&dir_a, 1)).await.unwrap();
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
        let b = Session::new(loopback_config(&dir_b, 2)).await.unwrap();
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

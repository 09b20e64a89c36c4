//! rain against a real aria2 (aria2c) on 127.0.0.1, each test checking the downloaded bytes:
//! rain leeching from an aria2 seeder it is told about, and aria2 leeching from a rain seeder
//! that both find through a real opentracker (aria2 takes no peer address on its command line;
//! it dials the peers a tracker gives it, 127.0.0.1 ones included).
//!
//! Skipped with a `SKIP` line where aria2c (or opentracker) is missing, unless
//! `RAIN_REQUIRE_INTEROP=1` (CI). Every process is killed by its guard; every wait is bounded.

use std::sync::Arc;
use std::time::Duration;

use rain_proto::address_book::PeerSource;
use rain_proto::metainfo::{Limits, Metainfo};
use rain_proto::torrent::Status;
use rain_runtime::session::{AddOptions, Session};
use rain_tests::aria2::{Role, log_path, start};
use rain_tests::opentracker::{self, OpenTracker};
use rain_tests::process::{free_port, tail, wait_listening};
use rain_tests::rain_peer::{
    PeerWatch, assert_same, describe, loopback_config, make_torrent, rain_seeder, small_payload,
    small_torrent, wait_status,
};
use rain_tests::{available, require};

/// Bound on one download.
const DOWNLOAD: Duration = Duration::from_secs(60);

fn aria2_present(test: &str) -> bool {
    require(test, "aria2c", available("aria2c", &["--version"]))
}

/// rain dials a seeding aria2 and downloads the torrent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rain_leeches_from_aria2() {
    if !aria2_present("rain_leeches_from_aria2") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let seed_dir = tmp.path().join("aria2-data");
    let torrent_path = tmp.path().join("t.torrent");
    let (files, torrent) = small_torrent(&seed_dir, "from-aria2", 21, &torrent_path);
    let port = free_port();
    let log = log_path(&seed_dir);
    let mut aria2 = start(&torrent_path, &seed_dir, port, Role::Seed, &log);

    let dir = tmp.path().join("rain");
    let s = Arc::new(Session::new(loopback_config(&dir, 21)).await.unwrap());
    let t = s
        .add_torrent(&torrent, AddOptions::default())
        .await
        .unwrap();
    let watch = PeerWatch::start(s.clone(), &t.id);
    // aria2 checks its data before it listens; a dial before that would put the address in
    // rain's backoff for a while.
    assert!(
        wait_listening(port, Duration::from_secs(20)),
        "aria2 is not listening on {port}:\n{}",
        tail(&log, 30)
    );
    assert!(
        aria2.try_wait().is_none(),
        "aria2 exited:\n{}",
        tail(&log, 30)
    );
    s.add_peer(&t.id, &format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    let result = wait_status(&s, &t.id, Status::Seeding, DOWNLOAD, |_| {}).await;
    let seen = watch.seen();
    s.close().await.unwrap();
    if let Err(e) = result {
        panic!("rain did not complete: {e}\naria2:\n{}", tail(&log, 30));
    }
    assert_same("rain", &dir.join("data"), &files);
    assert!(
        seen.iter()
            .all(|p| p.source == PeerSource::Manual && p.addr.port() == port),
        "{seen:?}"
    );
}

/// A rain seeder and an aria2 leecher, given only the torrent (whose tracker is a real
/// opentracker over HTTP), find each other: aria2 dials rain and downloads the torrent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aria2_leeches_from_rain_over_opentracker() {
    if !aria2_present("aria2_leeches_from_rain_over_opentracker")
        || !require(
            "aria2_leeches_from_rain_over_opentracker",
            "opentracker",
            opentracker::installed(),
        )
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let (files, top) = small_payload(&src, "to-aria2", 22);
    // The info-hash does not cover the tracker URL, so it is known before the tracker runs.
    let hash = Metainfo::from_bytes(&make_torrent(&top, 32 * 1024, None), &Limits::default())
        .unwrap()
        .info_hash;
    let tracker = OpenTracker::start(&[hash]).await;
    let torrent = make_torrent(&top, 32 * 1024, Some(&tracker.http_url()));
    let torrent_path = tmp.path().join("t.torrent");
    std::fs::write(&torrent_path, &torrent).unwrap();

    let (s, id, _) =
        rain_seeder(&tmp.path().join("rain"), 22, &torrent, &files, &src, |_| {}).await;
    // The seeder is known to the tracker before aria2 asks it for peers.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let trackers = s.trackers(&id).await.unwrap();
        if trackers.iter().any(|t| t.status.to_string() == "Working") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "rain never announced: {trackers:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let watch = PeerWatch::start(s.clone(), &id);

    let downloads = tmp.path().join("aria2-data");
    std::fs::create_dir_all(&downloads).unwrap();
    let log = log_path(&downloads);
    let mut aria2 = start(&torrent_path, &downloads, free_port(), Role::Leech, &log);
    let status = aria2.wait_bounded(DOWNLOAD);
    let seen = watch.seen();
    let state = describe(&s, &id).await;
    s.close().await.unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "aria2 did not complete ({status:?}); rain: {state}\n{}",
        tail(&log, 40)
    );
    assert_same("aria2", &downloads, &files);
    assert!(
        !seen.is_empty() && seen.iter().all(|p| p.source == PeerSource::Incoming),
        "aria2 should have dialed rain: {seen:?}"
    );
}

//! Trackerless download through the DHT over loopback: a bare DHT node is the bootstrap, a
//! seeding session announces itself through it, and a session that knows only a magnet link
//! (no tracker, no peer) finds the seeder by a `get_peers` lookup and completes. The three
//! use distinct loopback IPs, as three hosts would (the DHT rate-limits per source IP).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use rain_proto::dht::DhtConfig;
use rain_proto::rng::Seed;
use rain_proto::torrent::Status;
use rain_runtime::create::{CreateOptions, create_torrent};
use rain_runtime::dht::{DhtHandle, DhtSettings};
use rain_runtime::net::TokioNet;
use rain_runtime::session::{AddOptions, Session, SessionConfig};

const WAIT: Duration = Duration::from_secs(60);

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

fn config(dir: &Path, host: IpAddr, bootstrap: SocketAddr, seed: u64) -> SessionConfig {
    SessionConfig {
        database: dir.join("session.db"),
        data_dir: dir.join("data"),
        host,
        port_begin: 6881,
        port_end: 6891,
        dht_enabled: true,
        dht_host: host,
        dht_port: 0,
        // IPv4 only here (dht_ipv6.rs covers BEP 32).
        dht_host6: None,
        dht_bootstrap_nodes: vec![bootstrap.to_string()],
        dht_announce_interval: Duration::from_secs(2),
        dht_min_announce_interval: Duration::from_secs(1),
        seed: Some(seed),
        ..SessionConfig::default()
    }
}

async fn wait_status(s: &Session, id: &str, want: Status) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let st = s.stats(id).await.unwrap();
        if st.status == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id}: {:?} after {WAIT:?}, wanted {want:?}; addresses {:?}",
            st.status,
            st.stats.addresses
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn magnet_without_tracker_completes_through_the_dht() {
    let tmp = tempfile::tempdir().unwrap();
    let router = DhtHandle::start(
        TokioNet,
        DhtSettings {
            bind: SocketAddr::new(ip(1), 0),
            bootstrap: Vec::new(),
            saved_nodes: None,
            config: DhtConfig::default(),
        },
        Seed::from_u64(1),
        tokio::time::Instant::now(),
    )
    .await
    .unwrap();
    let bootstrap = SocketAddr::new(ip(1), router.port());

    let dir_a = tmp.path().join("a");
    let src = dir_a.join("data").join("seed").join("payload.bin");
    std::fs::create_dir_all(src.parent().unwrap()).unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 31 / 7) as u8).collect();
    std::fs::write(&src, &data).unwrap();
    let torrent = create_torrent(&CreateOptions {
        paths: vec![src.clone()],
        piece_length: Some(64 * 1024),
        ..CreateOptions::default()
    })
    .unwrap();

    let a = Session::new(config(&dir_a, ip(2), bootstrap, 2))
        .await
        .unwrap();
    assert!(a.dht_port().is_some());
    let id = |s: &str| AddOptions {
        id: Some(s.to_owned()),
        ..AddOptions::default()
    };
    a.add_torrent(&torrent, id("seed")).await.unwrap();
    wait_status(&a, "seed", Status::Seeding).await;
    let magnet = a.magnet("seed").await.unwrap();
    assert!(!magnet.contains("tr="), "no tracker in {magnet}");

    let dir_b = tmp.path().join("b");
    let b = Session::new(config(&dir_b, ip(3), bootstrap, 3))
        .await
        .unwrap();
    b.add_magnet(&magnet, id("leech")).await.unwrap();
    wait_status(&b, "leech", Status::Seeding).await;
    let got = std::fs::read(dir_b.join("data").join("leech").join("payload.bin")).unwrap();
    assert!(got == data, "downloaded bytes differ");
    // The magnet names no tracker and no peer: the DHT was the only way to the seeder (and
    // the two seeds have parted by now, so there is no peer list to look at).
    assert!(!magnet.contains("x.pe="));
    assert!(router.stats().await.unwrap().stored_info_hashes >= 1);
    b.close().await.unwrap();
    a.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_table_is_kept_across_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let router = DhtHandle::start(
        TokioNet,
        DhtSettings {
            bind: SocketAddr::new(ip(4), 0),
            bootstrap: Vec::new(),
            saved_nodes: None,
            config: DhtConfig::default(),
        },
        Seed::from_u64(4),
        tokio::time::Instant::now(),
    )
    .await
    .unwrap();
    let bootstrap = SocketAddr::new(ip(4), router.port());
    let s = Session::new(config(tmp.path(), ip(5), bootstrap, 5))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while s.dht_stats().await.unwrap().nodes4 == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never bootstrapped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.close().await.unwrap();
    drop(s);
    // No bootstrap node this time: the table comes from the resume database.
    let mut again = config(tmp.path(), ip(5), bootstrap, 6);
    again.dht_bootstrap_nodes.clear();
    let s = Session::new(again).await.unwrap();
    assert!(s.dht_stats().await.unwrap().nodes4 >= 1);
    s.close().await.unwrap();
}

//! rain's DHT node against real libtorrent DHT nodes (python3 libtorrent 2.x) on loopback,
//! end to end: peers are found through the DHT only — no tracker, no peer in the magnet, no
//! peer added by hand.
//!
//! Each test runs a three-node DHT, every node on its own loopback address (both DHTs
//! rate-limit and restrict per IP): a bare libtorrent DHT node M, a libtorrent peer L and a
//! rain session R. M bootstraps from R; L and R bootstrap from M and from each other, so every
//! pair of them talks KRPC. Three nodes, not two, because libtorrent does not look in its own
//! peer store during its own lookup (rain does): for libtorrent to find rain, rain's announce
//! must land on a third node.
//!
//! - libtorrent seeds, rain has only the magnet: libtorrent announces itself, rain's `get_peers`
//!   lookups find it in libtorrent's replies, and rain downloads from it.
//! - rain seeds, libtorrent has only the magnet: rain announces itself to libtorrent's nodes
//!   (with their tokens), libtorrent's lookups find it, and libtorrent downloads from rain.
//!
//! Skipped with a `SKIP` line where python libtorrent is missing, unless
//! `RAIN_REQUIRE_INTEROP=1` (CI). Every process is killed by its guard; every wait is bounded.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rain_proto::address_book::PeerSource;
use rain_proto::metainfo::{Limits, Metainfo};
use rain_proto::torrent::Status;
use rain_runtime::session::{AddOptions, Session, SessionConfig};
use rain_tests::libtorrent::{LtOptions, LtPeer, create_torrent};
use rain_tests::rain_peer::{
    PeerWatch, assert_same, loopback_config, rain_seeder, small_payload, small_torrent, wait_status,
};
use rain_tests::{python_libtorrent_available, require};

/// Bound on finding the peer through the DHT and downloading from it.
const DOWNLOAD: Duration = Duration::from_secs(90);

fn lt_present(test: &str) -> bool {
    require(test, "python3 libtorrent", python_libtorrent_available())
}

/// True when this host routes the loopback addresses the tests use to itself (Linux does:
/// all of 127.0.0.0/8 is loopback).
fn loopback_addresses(test: &str, ips: &[&str]) -> bool {
    require(
        test,
        "loopback addresses 127.0.0.41 to 127.0.0.53",
        ips.iter()
            .all(|ip| std::net::TcpListener::bind((*ip, 0)).is_ok()),
    )
}

/// A port free for both TCP and UDP on `ip` right now (libtorrent's DHT uses its listen port).
fn free_port_on(ip: &str) -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind((ip, 0)).unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind((ip, port)).is_ok() {
            return port;
        }
    }
}

/// rain's DHT on `ip` (its torrents listen there too), IPv4 only, bootstrapping from
/// `bootstrap`, with lookup intervals of seconds.
fn enable_dht(c: &mut SessionConfig, ip: &str, bootstrap: &[SocketAddr]) {
    let ip: IpAddr = ip.parse().unwrap();
    c.host = ip;
    c.dht_enabled = true;
    c.dht_host = ip;
    c.dht_port = 0;
    c.dht_host6 = None;
    c.dht_bootstrap_nodes = bootstrap.iter().map(ToString::to_string).collect();
    c.dht_announce_interval = Duration::from_secs(2);
    c.dht_min_announce_interval = Duration::from_secs(1);
}

/// A bare libtorrent DHT node on `ip:port`, bootstrapping from `bootstrap`.
fn lt_dht_node(dir: &Path, ip: &'static str, port: u16, bootstrap: SocketAddr) -> LtPeer {
    std::fs::create_dir_all(dir).unwrap();
    LtPeer::start_bare(
        port,
        dir,
        &LtOptions {
            host: Some(ip),
            dht_bootstrap: Some(bootstrap.to_string()),
            ..LtOptions::default()
        },
    )
}

fn addr(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

/// Both nodes' transcripts, for failure messages.
fn diagnostics(m: &mut LtPeer, l: &mut LtPeer) -> String {
    format!(
        "DHT node M: {}\n\nlibtorrent L: {}",
        m.diagnostics(),
        l.diagnostics()
    )
}

/// libtorrent (L, 127.0.0.42) seeds; rain (R, 127.0.0.43) is given only the magnet link (no
/// tracker, no peer) and finds L through the DHT, then downloads the data from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rain_finds_a_libtorrent_seeder_through_the_dht() {
    const TEST: &str = "rain_finds_a_libtorrent_seeder_through_the_dht";
    const M: &str = "127.0.0.41";
    const L: &str = "127.0.0.42";
    const R: &str = "127.0.0.43";
    if !lt_present(TEST) || !loopback_addresses(TEST, &[M, L, R]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lt_dir = tmp.path().join("lt");
    let (files, top) = small_payload(&lt_dir, "dht-from-libtorrent", 11);
    let torrent_path = tmp.path().join("t.torrent");
    let torrent = create_torrent(&top, 32 * 1024, true, &torrent_path);
    let info_hash = Metainfo::from_bytes(&torrent, &Limits::default())
        .unwrap()
        .info_hash;
    let (port_m, port_l) = (free_port_on(M), free_port_on(L));

    // rain first: the libtorrent nodes bootstrap from its (now known) DHT port.
    let dir = tmp.path().join("rain");
    let mut config = loopback_config(&dir, 11);
    enable_dht(&mut config, R, &[addr(M, port_m), addr(L, port_l)]);
    let s = Arc::new(Session::new(config).await.unwrap());
    let rain_dht = addr(R, s.dht_port().unwrap());
    let mut m = lt_dht_node(&tmp.path().join("m"), M, port_m, rain_dht);
    let mut l = LtPeer::start(
        port_l,
        &torrent_path,
        &lt_dir,
        &LtOptions {
            seed: true,
            host: Some(L),
            dht_bootstrap: Some(format!("{},{rain_dht}", addr(M, port_m))),
            ..LtOptions::default()
        },
    );
    l.command("dht_announce");

    let magnet = format!("magnet:?xt=urn:btih:{}", info_hash.to_hex());
    let t = s.add_magnet(&magnet, AddOptions::default()).await.unwrap();
    let watch = PeerWatch::start(s.clone(), &t.id);
    let result = wait_status(&s, &t.id, Status::Seeding, DOWNLOAD, |_| {}).await;
    let seen = watch.seen();
    let dht = s.dht_stats().await;
    s.close().await.unwrap();
    if let Err(e) = result {
        panic!(
            "rain did not download through the DHT: {e}\nrain DHT: {dht:?}\n{}",
            diagnostics(&mut m, &mut l)
        );
    }
    assert_same("rain", &dir.join("data"), &files);
    // The seeder was reached at its announced address, learned from the DHT.
    assert!(
        seen.iter()
            .any(|p| p.addr == l.addr && p.source == PeerSource::Dht),
        "rain's peers: {seen:?}"
    );
    // rain's routing table holds both libtorrent nodes, and rain's node accepted
    // libtorrent's `announce_peer` (with the token rain gave it; rain's own torrent announces
    // to the other nodes, never to itself).
    let dht = dht.unwrap();
    assert!(
        dht.nodes4 >= 2 && dht.stored_info_hashes >= 1,
        "rain DHT: {dht:?}"
    );
}

/// rain (R, 127.0.0.53) seeds and announces itself through the DHT; libtorrent (L,
/// 127.0.0.52) is given only the magnet link (no tracker, no peer), finds rain through the DHT
/// and downloads the data from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libtorrent_finds_a_rain_seeder_through_the_dht() {
    const TEST: &str = "libtorrent_finds_a_rain_seeder_through_the_dht";
    const M: &str = "127.0.0.51";
    const L: &str = "127.0.0.52";
    const R: &str = "127.0.0.53";
    if !lt_present(TEST) || !loopback_addresses(TEST, &[M, L, R]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let torrent_path = tmp.path().join("t.torrent");
    let (files, torrent) = small_torrent(&src, "dht-from-rain", 12, &torrent_path);
    let info_hash = Metainfo::from_bytes(&torrent, &Limits::default())
        .unwrap()
        .info_hash;
    let (port_m, port_l) = (free_port_on(M), free_port_on(L));

    let (s, id, port) = rain_seeder(&tmp.path().join("rain"), 12, &torrent, &files, &src, |c| {
        enable_dht(c, R, &[addr(M, port_m), addr(L, port_l)]);
        // rain's lookups would find libtorrent's own announce and dial it; the point here is
        // that libtorrent finds rain, so rain dials no one.
        c.max_peer_dial = 0;
    })
    .await;
    let rain_dht = addr(R, s.dht_port().unwrap());
    let watch = PeerWatch::start(s.clone(), &id);
    let mut m = lt_dht_node(&tmp.path().join("m"), M, port_m, rain_dht);
    let lt_dir = tmp.path().join("lt");
    std::fs::create_dir_all(&lt_dir).unwrap();
    let magnet = format!("magnet:?xt=urn:btih:{}", info_hash.to_hex());
    let mut l = LtPeer::start_magnet(
        port_l,
        &magnet,
        &lt_dir,
        &LtOptions {
            host: Some(L),
            dht_bootstrap: Some(format!("{},{rain_dht}", addr(M, port_m))),
            // About two seconds for the payload, so that both sides see the connection (they
            // poll for peers; unlimited, the download can come and go between two polls).
            settings: vec![("download_rate_limit", "1000000")],
            ..LtOptions::default()
        },
    );
    l.command("dht_announce");
    let complete = l.wait_for("COMPLETE", DOWNLOAD).is_some();
    // And a lookup of its own: libtorrent's `get_peers` replies name rain's address.
    let rain = addr(R, port);
    let wanted = rain.to_string();
    l.command(&format!("dht_get_peers {}", info_hash.to_hex()));
    let found = l
        .lines
        .wait_for(Duration::from_secs(30), |line| {
            line.starts_with("DHT_PEERS ") && line.split(' ').any(|w| w == wanted)
        })
        .is_some();
    let seen = watch.seen();
    let dht = s.dht_stats().await;
    s.close().await.unwrap();
    assert!(
        complete,
        "libtorrent did not download through the DHT\nrain DHT: {dht:?}\n{}",
        diagnostics(&mut m, &mut l)
    );
    assert_same("libtorrent", &lt_dir, &files);
    assert!(
        found,
        "libtorrent's get_peers did not return {rain}\n{}",
        l.diagnostics()
    );
    // libtorrent reached rain's announced address and learned it from the DHT (source flag
    // 0x2; rain saw it as an incoming peer).
    let line = l.wait_for(&format!("PEER {rain} "), Duration::ZERO);
    let src = line
        .as_deref()
        .and_then(|l| l.split(" src=").nth(1))
        .and_then(|v| v.split(' ').next())
        .and_then(|v| v.parse::<u32>().ok());
    assert!(
        src.is_some_and(|f| f & 0x2 != 0),
        "libtorrent's view of rain ({rain}): {line:?}\n{}",
        l.diagnostics()
    );
    assert!(
        seen.iter().any(|p| p.source == PeerSource::Incoming),
        "rain's peers: {seen:?}"
    );
}

//! BEP 32 over the loopback: DHT nodes with a second, IPv6-only socket on `::1`, bootstrapped
//! only through the router's IPv6 address, fill their IPv6 routing tables and find each
//! other's announced peers as IPv6 addresses. Skips (with a `SKIP` line) where the machine has
//! no `::1`.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rain_proto::InfoHash;
use rain_proto::dht::{DhtConfig, DhtStats};
use rain_proto::rng::Seed;
use rain_runtime::dht::{DhtHandle, DhtSettings};
use rain_runtime::net::TokioNet;

const WAIT: Duration = Duration::from_secs(60);
const LOCALHOST6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// Whether a UDP socket can be bound on `::1`.
fn have_ipv6_loopback(test: &str) -> bool {
    match std::net::UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)) {
        Ok(_) => true,
        Err(e) => {
            eprintln!("SKIP {test}: no IPv6 loopback on this machine ({e})");
            false
        }
    }
}

async fn node(v4: IpAddr, bootstrap: Vec<String>, seed: u64) -> DhtHandle {
    DhtHandle::start_dual_stack(
        TokioNet,
        DhtSettings {
            bind: SocketAddr::new(v4, 0),
            bootstrap,
            saved_nodes: None,
            config: DhtConfig::default(),
        },
        Some(LOCALHOST6),
        Seed::from_u64(seed),
        tokio::time::Instant::now(),
    )
    .await
    .unwrap()
}

async fn wait_stats(what: &str, node: &DhtHandle, ok: impl Fn(&DhtStats) -> bool) -> DhtStats {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let st = node.stats().await.unwrap();
        if ok(&st) {
            return st;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} after {WAIT:?}: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `get_peers` lookups of `info_hash` from `node` (announcing `announce`) until `want`
/// is among the peers found.
async fn find_peer(node: &DhtHandle, info_hash: InfoHash, announce: Option<u16>, want: SocketAddr) {
    let found = Arc::new(Mutex::new(Vec::<SocketAddr>::new()));
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let sink = found.clone();
        assert!(node.get_peers(
            info_hash,
            announce,
            Box::new(move |peers| sink.lock().unwrap().extend(peers)),
        ));
        for _ in 0..50 {
            if found.lock().unwrap().contains(&want) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if tokio::time::Instant::now() >= deadline {
            let stats = node.stats().await;
            panic!(
                "{want} not found after {WAIT:?}; found {:?}; stats {stats:?}",
                found.lock().unwrap()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_on_ipv6_loopback_find_each_others_peers() {
    if !have_ipv6_loopback("nodes_on_ipv6_loopback_find_each_others_peers") {
        return;
    }
    let router = node(ip(31), Vec::new(), 31).await;
    let router6 = router.port6().expect("the router binds ::1");
    // The same port as IPv4 when it is free (it is on a fresh ephemeral port, almost always;
    // not asserted).
    let boot = vec![SocketAddr::new(LOCALHOST6, router6).to_string()];
    let a = node(ip(32), boot.clone(), 32).await;
    let b = node(ip(33), boot, 33).await;
    assert!(a.port6().is_some() && b.port6().is_some());

    // Bootstrapped through the router's IPv6 address only: IPv6 tables, empty IPv4 ones.
    for (name, n) in [("a", &a), ("b", &b)] {
        let st = wait_stats(&format!("{name} has no IPv6 node"), n, |s| s.nodes6 >= 1).await;
        assert_eq!(st.nodes4, 0, "{name}: {st:?}");
    }

    // a announces a peer port; b finds it at a's IPv6 address, and the other way round.
    let ih_a = InfoHash([0xa1; 20]);
    let ih_b = InfoHash([0xb2; 20]);
    // a's lookup announces to the closest nodes that answered (the router and b).
    assert!(a.get_peers(ih_a, Some(40001), Box::new(|_| {})));
    find_peer(&b, ih_a, None, SocketAddr::new(LOCALHOST6, 40001)).await;
    assert!(b.get_peers(ih_b, Some(40002), Box::new(|_| {})));
    find_peer(&a, ih_b, None, SocketAddr::new(LOCALHOST6, 40002)).await;
    let st = router.stats().await.unwrap();
    assert!(st.stored_info_hashes >= 1, "router: {st:?}");
    assert!(st.nodes6 >= 2 && st.nodes4 == 0, "router: {st:?}");
}

/// The default layout (`dht-host` 0.0.0.0, `[::]` for IPv6, one port) needs the IPv6 socket
/// to be IPv6-only: a dual-stack `[::]` socket would hold the IPv4 port too. Nothing is sent.
#[tokio::test]
async fn ipv6_socket_shares_its_port_with_the_ipv4_wildcard() {
    use rain_runtime::net::Network;
    if !have_ipv6_loopback("ipv6_socket_shares_its_port_with_the_ipv4_wildcard") {
        return;
    }
    let v6 = TokioNet
        .bind_udp6(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0))
        .await
        .unwrap();
    let port = v6.local_addr().unwrap().port();
    let v4 = TokioNet
        .bind_udp(SocketAddr::new(IpAddr::from([0, 0, 0, 0]), port))
        .await;
    assert!(v4.is_ok(), "0.0.0.0:{port} beside [::]:{port}: {v4:?}");
    // An IPv4 address is refused rather than bound dual-stack.
    assert!(
        TokioNet
            .bind_udp6(SocketAddr::new(ip(35), 0))
            .await
            .is_err()
    );
}

fn session_config(
    dir: &std::path::Path,
    v4: IpAddr,
    bootstrap: SocketAddr,
    seed: u64,
) -> rain_runtime::session::SessionConfig {
    // Torrents listen on ::1 (a fresh port each), so the peers the DHT returns are reachable.
    let port = std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    rain_runtime::session::SessionConfig {
        database: dir.join("session.db"),
        data_dir: dir.join("data"),
        host: LOCALHOST6,
        port_begin: port,
        port_end: port + 1,
        dht_enabled: true,
        dht_host: v4,
        dht_port: 0,
        dht_host6: Some(LOCALHOST6),
        dht_bootstrap_nodes: vec![bootstrap.to_string()],
        dht_announce_interval: Duration::from_secs(2),
        dht_min_announce_interval: Duration::from_secs(1),
        seed: Some(seed),
        ..rain_runtime::session::SessionConfig::default()
    }
}

/// A trackerless magnet download where the DHT runs over IPv6 only (the bootstrap node is the
/// router's `::1` address): the seeder announces itself over IPv6, the leecher's lookup returns
/// its `::1` address, and the data flows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn magnet_completes_through_the_ipv6_dht() {
    use rain_proto::torrent::Status;
    use rain_runtime::create::{CreateOptions, create_torrent};
    use rain_runtime::session::{AddOptions, Session};
    if !have_ipv6_loopback("magnet_completes_through_the_ipv6_dht") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let router = node(ip(36), Vec::new(), 36).await;
    let boot = SocketAddr::new(LOCALHOST6, router.port6().unwrap());

    let dir_a = tmp.path().join("a");
    let src = dir_a.join("data").join("seed").join("payload.bin");
    std::fs::create_dir_all(src.parent().unwrap()).unwrap();
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 13 / 5) as u8).collect();
    std::fs::write(&src, &data).unwrap();
    let torrent = create_torrent(&CreateOptions {
        paths: vec![src.clone()],
        piece_length: Some(64 * 1024),
        ..CreateOptions::default()
    })
    .unwrap();
    let id = |s: &str| AddOptions {
        id: Some(s.to_owned()),
        ..AddOptions::default()
    };
    let wait = async |s: &Session, id: &str| {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let st = s.stats(id).await.unwrap();
            if st.status == Status::Seeding {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{id}: {:?} after {WAIT:?}; addresses {:?}; dht {:?}",
                st.status,
                st.stats.addresses,
                s.dht_stats().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };

    let a = Session::new(session_config(&dir_a, ip(37), boot, 37))
        .await
        .unwrap();
    assert!(a.dht_port6().is_some());
    a.add_torrent(&torrent, id("seed")).await.unwrap();
    wait(&a, "seed").await;
    let magnet = a.magnet("seed").await.unwrap();
    assert!(
        !magnet.contains("tr=") && !magnet.contains("x.pe="),
        "{magnet}"
    );

    let dir_b = tmp.path().join("b");
    let b = Session::new(session_config(&dir_b, ip(38), boot, 38))
        .await
        .unwrap();
    b.add_magnet(&magnet, id("leech")).await.unwrap();
    wait(&b, "leech").await;
    let got = std::fs::read(dir_b.join("data").join("leech").join("payload.bin")).unwrap();
    assert!(got == data, "downloaded bytes differ");
    let st = router.stats().await.unwrap();
    assert!(
        st.stored_info_hashes >= 1 && st.nodes4 == 0,
        "router: {st:?}"
    );
    b.close().await.unwrap();
    a.close().await.unwrap();
}

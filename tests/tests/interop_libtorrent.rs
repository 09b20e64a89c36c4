//! rain against a real libtorrent (python3 libtorrent 2.x) on loopback, each test checking the
//! downloaded bytes: libtorrent leeching from a rain seeder; MSE/PE forced on both sides in
//! both directions; a magnet download whose metadata rain fetches from libtorrent (ut_metadata);
//! and peer exchange both ways (ut_pex).
//!
//! Skipped with a `SKIP` line where python libtorrent is missing, unless
//! `RAIN_REQUIRE_INTEROP=1` (CI). Every process is killed by its guard; every wait is bounded.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rain_proto::address_book::PeerSource;
use rain_proto::metainfo::{Limits, Metainfo};
use rain_proto::torrent::Status;
use rain_runtime::session::{AddOptions, Session};
use rain_tests::libtorrent::{LtOptions, LtPeer, create_torrent};
use rain_tests::process::free_port;
use rain_tests::rain_peer::{
    Files, PeerWatch, assert_same, loopback_config, rain_seeder, small_payload, small_torrent,
    wait_status,
};
use rain_tests::{python_libtorrent_available, require};

/// Bound on one download.
const DOWNLOAD: Duration = Duration::from_secs(60);

fn lt_present(test: &str) -> bool {
    require(test, "python3 libtorrent", python_libtorrent_available())
}

/// The usual small payload `name` in `tmp/lt`, libtorrent's torrent of it (`tmp/t.torrent`;
/// v1-only or hybrid) and a libtorrent seeding it (`opts`, with `seed` set). Returns the
/// files (relative to `tmp/lt`), the torrent and the seeder.
fn lt_seeder(
    tmp: &Path,
    name: &str,
    seed: u64,
    v1_only: bool,
    opts: LtOptions,
) -> (Files, Vec<u8>, LtPeer) {
    let lt_dir = tmp.join("lt");
    let (files, top) = small_payload(&lt_dir, name, seed);
    let torrent_path = tmp.join("t.torrent");
    let torrent = create_torrent(&top, 32 * 1024, v1_only, &torrent_path);
    let lt = LtPeer::start(
        free_port(),
        &torrent_path,
        &lt_dir,
        &LtOptions { seed: true, ..opts },
    );
    (files, torrent, lt)
}

/// Asserts that libtorrent reports its (first) peer connection RC4-encrypted.
fn assert_libtorrent_sees_rc4(lt: &mut LtPeer) {
    let line = lt.wait_for("PEER ", Duration::ZERO);
    assert!(
        line.as_deref().is_some_and(|l| l.contains(" rc4 ")),
        "libtorrent's view of the connection: {line:?}"
    );
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// libtorrent dials a rain seeder and downloads the torrent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libtorrent_leeches_from_rain() {
    if !lt_present("libtorrent_leeches_from_rain") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let torrent_path = tmp.path().join("t.torrent");
    let (files, torrent) = small_torrent(&src, "to-libtorrent", 1, &torrent_path);
    let (s, _id, port) =
        rain_seeder(&tmp.path().join("rain"), 1, &torrent, &files, &src, |_| {}).await;

    let lt_dir = tmp.path().join("lt");
    std::fs::create_dir_all(&lt_dir).unwrap();
    let mut lt = LtPeer::start(free_port(), &torrent_path, &lt_dir, &LtOptions::default());
    lt.connect(loopback(port));
    assert!(
        lt.wait_for("COMPLETE", DOWNLOAD).is_some(),
        "libtorrent did not complete:\n{}",
        lt.diagnostics()
    );
    assert_same("libtorrent", &lt_dir, &files);
    s.close().await.unwrap();
}

/// rain, forcing MSE for outgoing and incoming connections, dials a libtorrent seeder that
/// forces RC4 (`pe_forced` both ways) and downloads the torrent; both sides see the
/// connection encrypted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rain_leeches_from_libtorrent_with_forced_encryption() {
    if !lt_present("rain_leeches_from_libtorrent_with_forced_encryption") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (files, torrent, mut lt) = lt_seeder(
        tmp.path(),
        "mse-from-libtorrent",
        2,
        true,
        LtOptions {
            forced_encryption: true,
            ..LtOptions::default()
        },
    );

    let dir = tmp.path().join("rain");
    let mut config = loopback_config(&dir, 2);
    config.force_outgoing_encryption = true;
    config.force_incoming_encryption = true;
    let s = Arc::new(Session::new(config).await.unwrap());
    let t = s
        .add_torrent(&torrent, AddOptions::default())
        .await
        .unwrap();
    let watch = PeerWatch::start(s.clone(), &t.id);
    s.add_peer(&t.id, &lt.addr.to_string()).await.unwrap();
    let result = wait_status(&s, &t.id, Status::Seeding, DOWNLOAD, |_| {}).await;
    let seen = watch.seen();
    s.close().await.unwrap();
    if let Err(e) = result {
        panic!("rain did not complete: {e}\n{}", lt.diagnostics());
    }
    assert_same("rain", &dir.join("data"), &files);
    assert!(
        !seen.is_empty() && seen.iter().all(|p| p.encrypted),
        "rain's view of the connection: {seen:?}"
    );
    assert_libtorrent_sees_rc4(&mut lt);
}

/// libtorrent, forcing RC4, dials a rain seeder that forces MSE on incoming connections and
/// downloads the torrent; both sides see the connection encrypted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libtorrent_leeches_from_rain_with_forced_encryption() {
    if !lt_present("libtorrent_leeches_from_rain_with_forced_encryption") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let torrent_path = tmp.path().join("t.torrent");
    let (files, torrent) = small_torrent(&src, "mse-to-libtorrent", 3, &torrent_path);
    let (s, id, port) = rain_seeder(&tmp.path().join("rain"), 3, &torrent, &files, &src, |c| {
        c.force_outgoing_encryption = true;
        c.force_incoming_encryption = true;
    })
    .await;
    let watch = PeerWatch::start(s.clone(), &id);

    let lt_dir = tmp.path().join("lt");
    std::fs::create_dir_all(&lt_dir).unwrap();
    let mut lt = LtPeer::start(
        free_port(),
        &torrent_path,
        &lt_dir,
        &LtOptions {
            forced_encryption: true,
            ..LtOptions::default()
        },
    );
    lt.connect(loopback(port));
    assert!(
        lt.wait_for("COMPLETE", DOWNLOAD).is_some(),
        "libtorrent did not complete:\n{}",
        lt.diagnostics()
    );
    let seen = watch.seen();
    s.close().await.unwrap();
    assert_same("libtorrent", &lt_dir, &files);
    assert!(
        !seen.is_empty()
            && seen
                .iter()
                .all(|p| p.encrypted && p.source == PeerSource::Incoming),
        "rain's view of the connection: {seen:?}"
    );
    assert_libtorrent_sees_rc4(&mut lt);
}

/// rain downloads from a libtorrent seeder while its piece memory (pieces started and not yet
/// hashed and written; `max_piece_memory`, 64 MiB by default) is small: once the budget is
/// reached rain starts no new piece until writes complete, and must resume requesting when
/// they do. (Found by scripts/bench-loopback.sh: with the default budget, fast loopback
/// downloads of 256 MiB and 1 GiB stalled for good once 64 MiB awaited hashing.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rain_leeches_from_libtorrent_with_little_piece_memory() {
    if !lt_present("rain_leeches_from_libtorrent_with_little_piece_memory") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (files, torrent, mut lt) = lt_seeder(
        tmp.path(),
        "little-piece-memory",
        6,
        true,
        LtOptions::default(),
    );
    let dir = tmp.path().join("rain");
    let mut config = loopback_config(&dir, 6);
    // Less than a piece: one piece at a time, so a new piece can only be started when the
    // written one frees the budget.
    config.max_piece_memory = 16 * 1024;
    let s = Session::new(config).await.unwrap();
    let t = s
        .add_torrent(&torrent, AddOptions::default())
        .await
        .unwrap();
    s.add_peer(&t.id, &lt.addr.to_string()).await.unwrap();
    let result = wait_status(&s, &t.id, Status::Seeding, Duration::from_secs(20), |_| {}).await;
    s.close().await.unwrap();
    if let Err(e) = result {
        panic!(
            "rain stopped requesting once its piece memory was full: {e}\n{}",
            lt.diagnostics()
        );
    }
    assert_same("rain", &dir.join("data"), &files);
}

/// rain is given only a magnet link (info-hash and `x.pe` peer): it fetches the info
/// dictionary of a hybrid v1+v2 torrent from libtorrent over ut_metadata, then the data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rain_downloads_a_magnet_with_metadata_from_libtorrent() {
    if !lt_present("rain_downloads_a_magnet_with_metadata_from_libtorrent") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (files, torrent, lt) = lt_seeder(
        tmp.path(),
        "magnet-from-libtorrent",
        4,
        false,
        LtOptions::default(),
    );
    let m = Metainfo::from_bytes(&torrent, &Limits::default()).unwrap();

    let dir = tmp.path().join("rain");
    let s = Session::new(loopback_config(&dir, 4)).await.unwrap();
    let magnet = format!(
        "magnet:?xt=urn:btih:{}&x.pe={}",
        m.info_hash.to_hex(),
        lt.addr
    );
    let t = s.add_magnet(&magnet, AddOptions::default()).await.unwrap();
    let result = wait_status(&s, &t.id, Status::Seeding, DOWNLOAD, |_| {}).await;
    let info = s.torrent_bytes(&t.id).await;
    s.close().await.unwrap();
    let mut lt = lt;
    if let Err(e) = result {
        panic!("magnet download failed: {e}\n{}", lt.diagnostics());
    }
    let got = Metainfo::from_bytes(&info.unwrap(), &Limits::default()).unwrap();
    assert_eq!(got.info_hash, m.info_hash, "the metadata rain assembled");
    assert_eq!(got.info.name, "magnet-from-libtorrent");
    assert_same("rain", &dir.join("data"), &files);
}

/// True when this host routes 127.0.0.2 to 127.0.0.4 to itself (Linux does: all of
/// 127.0.0.0/8 is loopback).
fn extra_loopback_addresses() -> bool {
    ["127.0.0.2:0", "127.0.0.3:0", "127.0.0.4:0"]
        .iter()
        .all(|a| std::net::TcpListener::bind(a).is_ok())
}

/// Peer exchange both ways. rain on 127.0.0.1; libtorrent C (a seeder) on 127.0.0.2,
/// libtorrent D on 127.0.0.3 and libtorrent A on 127.0.0.4, A and D downloading slowly so they
/// stay leechers. Each peer has an address of its own because rain keeps one connection per IP
/// address (as rain does), and once a peer's extension handshake has told rain its IP (`yourip`,
/// 127.0.0.1 here) rain drops every other address on that IP as its own.
///
/// A is connected to C; rain is given D, then A. rain's first ut_pex message to A names D,
/// and A dials D with PEX as the source; A's ut_pex message to rain names C, and rain dials C
/// with PEX as the source. rain completes the download.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pex_between_rain_and_libtorrent() {
    if !lt_present("pex_between_rain_and_libtorrent")
        || !require(
            "pex_between_rain_and_libtorrent",
            "loopback addresses 127.0.0.2 to 127.0.0.4",
            extra_loopback_addresses(),
        )
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let c_dir = tmp.path().join("c");
    let (files, top) = small_payload(&c_dir, "pex", 5);
    let torrent_path = tmp.path().join("t.torrent");
    let torrent = create_torrent(&top, 32 * 1024, true, &torrent_path);
    let empty = |name: &str| {
        let d = tmp.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    // Slow leechers stay leechers (and connected) for the whole test.
    let slow: Vec<(&'static str, &'static str)> = vec![("download_rate_limit", "20000")];
    let peer_c = LtPeer::start(
        free_port(),
        &torrent_path,
        &c_dir,
        &LtOptions {
            seed: true,
            host: Some("127.0.0.2"),
            // rain must find C through PEX, not because C dialed it first.
            settings: vec![("seeding_outgoing_connections", "false")],
            ..LtOptions::default()
        },
    );
    let mut peer_a = LtPeer::start(
        free_port(),
        &torrent_path,
        &empty("a"),
        &LtOptions {
            host: Some("127.0.0.4"),
            peer_log: true,
            settings: slow.clone(),
            ..LtOptions::default()
        },
    );
    let mut peer_d = LtPeer::start(
        free_port(),
        &torrent_path,
        &empty("d"),
        &LtOptions {
            host: Some("127.0.0.3"),
            settings: slow,
            ..LtOptions::default()
        },
    );
    peer_a.connect(peer_c.addr);
    assert!(
        peer_a
            .wait_for(&format!("PEER {} ", peer_c.addr), Duration::from_secs(20))
            .is_some(),
        "libtorrent A did not connect to C:\n{}",
        peer_a.diagnostics()
    );

    let dir = tmp.path().join("rain");
    let session = Arc::new(Session::new(loopback_config(&dir, 5)).await.unwrap());
    let t = session
        .add_torrent(&torrent, AddOptions::default())
        .await
        .unwrap();
    let watch = PeerWatch::start(session.clone(), &t.id);
    // D first: rain's first PEX message to A is sent when their extension handshake is done,
    // and names the peers rain has then (the next one follows a minute later).
    session
        .add_peer(&t.id, &peer_d.addr.to_string())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !watch.seen().iter().any(|p| p.addr == peer_d.addr) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "rain did not connect to D: {}\n{}",
            rain_tests::rain_peer::describe(&session, &t.id).await,
            peer_d.diagnostics()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    session
        .add_peer(&t.id, &peer_a.addr.to_string())
        .await
        .unwrap();

    let result = wait_status(&session, &t.id, Status::Seeding, DOWNLOAD, |_| {}).await;
    let seen = watch.seen();
    let state = rain_tests::rain_peer::describe(&session, &t.id).await;
    session.close().await.unwrap();
    // libtorrent's peer_info source flag 0x4 is PEX.
    let a_learned_d = peer_a.wait_for(&format!("PEER {} ", peer_d.addr), Duration::from_secs(10));
    assert!(
        result.is_ok(),
        "rain did not complete: {result:?}\nrain saw {seen:?}\n{}\n{}",
        peer_a.diagnostics(),
        peer_d.diagnostics()
    );
    assert_same("rain", &dir.join("data"), &files);
    assert!(
        seen.iter()
            .any(|p| p.addr == peer_c.addr && p.source == PeerSource::Pex),
        "rain never connected to C ({}) through PEX: it saw {seen:?}; {state}\n{}",
        peer_c.addr,
        peer_a.diagnostics()
    );
    assert!(
        a_learned_d
            .as_deref()
            .is_some_and(|l| l.split(' ').any(|w| w
                .strip_prefix("src=")
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| n & 4 != 0))),
        "libtorrent A did not connect to D ({}) through rain's PEX: {a_learned_d:?}\n{}",
        peer_d.addr,
        peer_a.diagnostics()
    );
}

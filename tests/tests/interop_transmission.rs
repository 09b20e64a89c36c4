//! rain against a real Transmission (transmission-daemon 3) on 127.0.0.1, each test checking
//! the downloaded bytes: rain leeching from a Transmission seeder (plain, and with MSE
//! required by Transmission and forced by rain), and Transmission leeching from a rain seeder.
//!
//! Transmission 3 never dials peers on 127.0.0.0/8 (they are "martian" to it, whether they
//! come from a tracker or PEX), so every connection here is dialed by rain: the peer is added
//! on the rain side.
//!
//! Skipped with a `SKIP` line where transmission-daemon is missing, unless
//! `RAIN_REQUIRE_INTEROP=1` (CI). Every process is killed by its guard; every wait is bounded.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rain_proto::address_book::PeerSource;
use rain_proto::torrent::Status;
use rain_runtime::session::{AddOptions, Session};
use rain_tests::process::wait_listening;
use rain_tests::rain_peer::{
    PeerWatch, assert_same, describe, loopback_config, rain_seeder, same, small_payload,
    small_torrent, wait_status,
};
use rain_tests::transmission::{Encryption, Transmission};
use rain_tests::{available, require, run_ok};

/// Bound on one download. Transmission unchokes every 10 s, so allow for a few rounds.
const DOWNLOAD: Duration = Duration::from_secs(60);

fn transmission_present(test: &str) -> bool {
    require(
        test,
        "transmission-daemon",
        available("transmission-daemon", &["-V"]) && available("transmission-remote", &["-V"]),
    )
}

/// A torrent made by transmission-create, written to `out`.
fn transmission_create(input: &Path, out: &Path) -> Vec<u8> {
    run_ok(
        Command::new("transmission-create")
            .args(["-s", "32", "-o"])
            .arg(out)
            .arg(input),
    );
    std::fs::read(out).unwrap()
}

/// rain dials a seeding Transmission (`encryption` its setting; rain forcing MSE when
/// `rain_forces`) and downloads the torrent.
async fn leech_from_transmission(test: &str, encryption: Encryption, rain_forces: bool) {
    if !transmission_present(test) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let seed_dir = tmp.path().join("tr-data");
    let (files, top) = small_payload(&seed_dir, test, 11);
    let torrent_path = tmp.path().join("t.torrent");
    let torrent = transmission_create(&top, &torrent_path);
    let tr = Transmission::start(&tmp.path().join("tr"), &seed_dir, encryption);
    tr.add(&torrent_path, &seed_dir);
    let deadline = Instant::now() + Duration::from_secs(30);
    while tr.percent_done() != Some(100.0) {
        assert!(
            Instant::now() < deadline,
            "Transmission did not verify its data:\n{}",
            tr.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let dir = tmp.path().join("rain");
    let mut config = loopback_config(&dir, 11);
    config.force_outgoing_encryption = rain_forces;
    config.force_incoming_encryption = rain_forces;
    let s = Arc::new(Session::new(config).await.unwrap());
    let t = s
        .add_torrent(&torrent, AddOptions::default())
        .await
        .unwrap();
    let watch = PeerWatch::start(s.clone(), &t.id);
    assert!(
        wait_listening(tr.peer_port, Duration::from_secs(10)),
        "Transmission is not listening:\n{}",
        tr.diagnostics()
    );
    s.add_peer(&t.id, &format!("127.0.0.1:{}", tr.peer_port))
        .await
        .unwrap();
    let mut tr_peers = Vec::new();
    let result = wait_status(&s, &t.id, Status::Seeding, DOWNLOAD, |peers| {
        if !peers.is_empty() && tr_peers.is_empty() {
            tr_peers = tr.peers();
        }
    })
    .await;
    let seen = watch.seen();
    s.close().await.unwrap();
    if let Err(e) = result {
        panic!("rain did not complete: {e}\n{}", tr.diagnostics());
    }
    assert_same("rain", &dir.join("data"), &files);
    assert!(!seen.is_empty(), "rain never showed the peer");
    assert!(
        seen.iter().all(|p| p.source == PeerSource::Manual),
        "{seen:?}"
    );
    if rain_forces {
        assert!(
            seen.iter().all(|p| p.encrypted),
            "rain's view of the connection: {seen:?}"
        );
        // transmission-remote -pi flags: E = encrypted.
        assert!(
            tr_peers.iter().any(|row| row
                .split_whitespace()
                .nth(1)
                .is_some_and(|flags| flags.contains('E'))),
            "Transmission's view of the connection: {tr_peers:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rain_leeches_from_transmission() {
    leech_from_transmission(
        "rain_leeches_from_transmission",
        Encryption::Preferred,
        false,
    )
    .await;
}

/// Transmission requires encryption (`encryption: 2`), rain forces it for outgoing and
/// incoming connections: the download is RC4-encrypted, as both sides report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rain_leeches_from_transmission_with_forced_encryption() {
    leech_from_transmission(
        "rain_leeches_from_transmission_with_forced_encryption",
        Encryption::Required,
        true,
    )
    .await;
}

/// A rain seeder is told Transmission's address (Transmission will not dial 127.0.0.1
/// itself) and must connect to it and serve the whole torrent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transmission_leeches_from_rain() {
    if !transmission_present("transmission_leeches_from_rain") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let torrent_path = tmp.path().join("t.torrent");
    let (files, torrent) = small_torrent(&src, "to-transmission", 12, &torrent_path);
    let (s, id, _) =
        rain_seeder(&tmp.path().join("rain"), 12, &torrent, &files, &src, |_| {}).await;

    let downloads = tmp.path().join("tr-data");
    let tr = Transmission::start(&tmp.path().join("tr"), &downloads, Encryption::Preferred);
    tr.add(&torrent_path, &downloads);
    assert!(
        wait_listening(tr.peer_port, Duration::from_secs(10)),
        "Transmission is not listening:\n{}",
        tr.diagnostics()
    );
    let addr = format!("127.0.0.1:{}", tr.peer_port);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut connected = false;
    let mut next_add = Instant::now();
    while !same(&downloads, &files) {
        // Asked again every few seconds, in case a dial failed.
        if Instant::now() >= next_add {
            s.add_peer(&id, &addr).await.unwrap();
            next_add = Instant::now() + Duration::from_secs(3);
        }
        connected |= !s.peers(&id).await.unwrap().is_empty();
        if Instant::now() > deadline {
            let state = describe(&s, &id).await;
            s.close().await.unwrap();
            let why = if connected {
                "rain connected to it"
            } else {
                // Session::add_peer on a seeding torrent is dropped: the machine takes no
                // addresses and dials no one while it seeds.
                "rain never connected to it: a seeding rain torrent does not dial added peers"
            };
            panic!(
                "Transmission did not get the torrent from rain in 30 s ({why}; rain: \
                 {state}):\n{}",
                tr.diagnostics()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.close().await.unwrap();
    assert_same("Transmission", &downloads, &files);
}

//! The session-wide piece-memory budget (`write-cache-size`, rain-behaviour §6.9) over
//! 127.0.0.1: two torrents download at once into one session whose budget is three pieces.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rain_proto::torrent::Status;
use rain_runtime::create::{CreateOptions, create_torrent};
use rain_runtime::session::{AddOptions, Session, SessionConfig, SessionStats};

mod common;
use common::{Gate, OpenOnDrop, WAIT, gated_layer, wait_status, wait_status_checking};
const PIECE: u32 = 32 * 1024;
/// The torrents: name and payload length (not a multiple of the piece length).
const TORRENTS: &[(&str, usize)] = &[("one", 700_001), ("two", 555_555)];

/// The first of two adjacent free ports (a session needs one port per torrent, from a
/// range): the kernel hands out one, and the next is taken too if it is free.
fn two_free_ports() -> u16 {
    for _ in 0..100 {
        let first = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = first.local_addr().unwrap().port();
        if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no two adjacent free ports");
}

fn config(dir: &Path, port: u16, seed: u64) -> SessionConfig {
    SessionConfig {
        database: dir.join("session.db"),
        data_dir: dir.join("data"),
        host: "127.0.0.1".parse().unwrap(),
        port_begin: port,
        port_end: port + 2,
        seed: Some(seed),
        ..SessionConfig::default()
    }
}

fn payload(len: usize, mut x: u32) -> Vec<u8> {
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// The reservation is within the budget, now and at its peak (no overshoot: every piece is
/// shorter than the budget and no webseed runs).
fn assert_within(s: &SessionStats, budget: u64) {
    assert!(
        s.write_cache_size <= budget && s.write_cache_peak <= budget,
        "{} reserved now, {} at the peak, budget {budget}",
        s.write_cache_size,
        s.write_cache_peak
    );
    assert!(s.write_cache_objects <= budget.div_ceil(u64::from(PIECE)));
}

/// Two torrents downloading at once from a seeding session share a leecher session's
/// `write-cache-size` of three pieces: while its disk stalls the budget fills and stays full
/// (the reservation, the received bytes and the piece buffers never exceed it, and a torrent
/// waits for memory); once the disk is back the memory written pieces free is shared (both
/// torrents progress before either completes), both complete with identical bytes, the
/// reservation never having gone over the budget, and everything is released.
#[test]
fn two_torrents_download_at_once_within_a_small_write_cache() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let (port_a, port_b) = (two_free_ports(), two_free_ports());
    let budget = 3 * u64::from(PIECE);
    let mut torrents = Vec::new();
    for (i, &(name, len)) in TORRENTS.iter().enumerate() {
        let data = payload(len, 0x1234_5678 + i as u32);
        let src = dir_a.join("data").join(name).join(name);
        std::fs::create_dir_all(src.parent().unwrap()).unwrap();
        std::fs::write(&src, &data).unwrap();
        let torrent = create_torrent(&CreateOptions {
            paths: vec![src],
            piece_length: Some(PIECE),
            ..CreateOptions::default()
        })
        .unwrap();
        torrents.push((name, data, torrent));
    }
    let gate = Arc::new(Gate::default());
    let _open_at_the_end = OpenOnDrop(gate.clone());
    rt.block_on(async {
        let a = Session::new(config(&dir_a, port_a, 11)).await.unwrap();
        for (name, _, torrent) in &torrents {
            let add = AddOptions {
                id: Some((*name).to_owned()),
                ..AddOptions::default()
            };
            a.add_torrent(torrent, add).await.unwrap();
        }
        for (name, ..) in &torrents {
            wait_status(&a, name, Status::Seeding).await;
        }
        let b = Session::new(SessionConfig {
            write_cache_size: budget,
            storage_layer: gated_layer(&gate),
            ..config(&dir_b, port_b, 12)
        })
        .await
        .unwrap();
        for (name, _, torrent) in &torrents {
            let add = AddOptions {
                id: Some((*name).to_owned()),
                ..AddOptions::default()
            };
            b.add_torrent(torrent, add).await.unwrap();
            let seed = format!("127.0.0.1:{}", a.get(name).unwrap().port);
            b.add_peer(name, &seed).await.unwrap();
        }

        // 1. The disk stalls: both torrents start, the budget fills and stays full.
        let deadline = tokio::time::Instant::now() + WAIT;
        let (mut last, mut still) = (None, 0);
        while still < 20 {
            let s = b.session_stats().await;
            assert_within(&s, budget);
            let mut received = 0;
            for (name, ..) in &torrents {
                let st = b.stats(name).await.unwrap().stats;
                received += st.bytes.downloaded;
                assert_eq!(st.pieces.have, 0, "{name}: nothing written yet");
            }
            assert!(
                received <= budget,
                "{received} bytes received with {budget} of piece memory"
            );
            let now = (s.write_cache_size, s.write_cache_objects, received);
            let full = s.write_cache_size + u64::from(PIECE) > budget;
            let settled = full && s.write_cache_pending_keys >= 1;
            still = if settled && last == Some(now) {
                still + 1
            } else {
                0
            };
            last = Some(now);
            assert!(
                tokio::time::Instant::now() < deadline,
                "the budget never settled full: {s:?}, {received} received"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let s = b.session_stats().await;
        assert!(
            s.write_cache_size + u64::from(PIECE) > budget,
            "no room left for another piece: {s:?}"
        );
        assert!(gate.writes_waiting.load(Ordering::Relaxed) >= 1);

        // 2. The disk comes back: memory freed by written pieces goes to both torrents in
        // turn (whoever took the whole budget first does not keep reusing it), so when one
        // has all its data the other has a good part of its own.
        gate.open();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let mut received = Vec::new();
            for (name, data, _) in &torrents {
                let st = b.stats(name).await.unwrap().stats;
                received.push((*name, st.bytes.downloaded, data.len() as u64));
            }
            if received.iter().any(|&(_, got, len)| got >= len) {
                assert!(
                    received.iter().all(|&(_, got, len)| got >= len / 4),
                    "one torrent starved while the other downloaded: {received:?}"
                );
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no torrent completes"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for (name, data, _) in &torrents {
            wait_status_checking(&b, name, Status::Seeding, async || {
                assert_within(&b.session_stats().await, budget);
            })
            .await;
            let got = std::fs::read(dir_b.join("data").join(name).join(name)).unwrap();
            assert!(got == *data, "{name} differs");
        }
        let s = b.session_stats().await;
        assert_within(&s, budget);
        assert_eq!(
            (
                s.write_cache_size,
                s.write_cache_objects,
                s.write_cache_pending_keys
            ),
            (0, 0, 0),
            "everything released"
        );
        assert!(s.write_cache_peak + u64::from(PIECE) > budget, "{s:?}");
        b.close().await.unwrap();
        a.close().await.unwrap();
    });
}

//! The session-wide speed limits hold on a real loopback transfer: a leecher limited to
//! 512 KiB/s down, then a seeder limited to 512 KiB/s up, each moving 2 MiB, cannot finish
//! before the limit allows (one second of burst, then the rate). Only that lower bound is
//! asserted: how fast an unlimited transfer is belongs to the benchmarks.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use rain_proto::torrent::Status;
use rain_runtime::create::{CreateOptions, create_torrent};
use rain_runtime::session::{AddOptions, Session, SessionConfig};

const LEN: usize = 2 * 1024 * 1024;
const LIMIT_KIB: u32 = 512;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

fn config(dir: &Path, down: u32, up: u32, seed: u64) -> SessionConfig {
    let port = free_port();
    SessionConfig {
        database: dir.join("session.db"),
        data_dir: dir.join("data"),
        host: "127.0.0.1".parse().unwrap(),
        port_begin: port,
        port_end: port + 1,
        speed_limit_download: down,
        speed_limit_upload: up,
        seed: Some(seed),
        ..SessionConfig::default()
    }
}

async fn wait_seeding(s: &Session, id: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while s.stats(id).await.unwrap().status != Status::Seeding {
        assert!(tokio::time::Instant::now() < deadline, "{id} not complete");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Downloads the payload from a fresh seeder; returns the seconds the download took.
async fn transfer(root: &Path, down: u32, up: u32, torrent: &[u8], data: &[u8]) -> f64 {
    let id = |s: &str| AddOptions {
        id: Some(s.to_owned()),
        ..AddOptions::default()
    };
    let seed_dir = root.join("seed");
    let file = seed_dir.join("data").join("s").join("payload.bin");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, data).unwrap();
    let seeder = Session::new(config(&seed_dir, 0, up, 1)).await.unwrap();
    seeder.add_torrent(torrent, id("s")).await.unwrap();
    wait_seeding(&seeder, "s").await;
    let port = seeder.stats("s").await.unwrap().port;
    let leecher = Session::new(config(&root.join("leech"), down, 0, 2))
        .await
        .unwrap();
    let start = Instant::now();
    leecher.add_torrent(torrent, id("l")).await.unwrap();
    leecher
        .add_peer("l", &SocketAddr::from(([127, 0, 0, 1], port)).to_string())
        .await
        .unwrap();
    wait_seeding(&leecher, "l").await;
    let took = start.elapsed().as_secs_f64();
    let got = std::fs::read(
        root.join("leech")
            .join("data")
            .join("l")
            .join("payload.bin"),
    );
    assert!(got.unwrap() == data, "bytes differ");
    leecher.close().await.unwrap();
    seeder.close().await.unwrap();
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_and_upload_limits_hold() {
    let tmp = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..LEN as u32).map(|i| (i ^ (i >> 9)) as u8).collect();
    let src = tmp.path().join("src").join("payload.bin");
    std::fs::create_dir_all(src.parent().unwrap()).unwrap();
    std::fs::write(&src, &data).unwrap();
    let torrent = create_torrent(&CreateOptions {
        paths: vec![src],
        piece_length: Some(64 * 1024),
        ..CreateOptions::default()
    })
    .unwrap();
    // 2 MiB at 512 KiB/s after 512 KiB of burst: at least 3 s.
    let floor = (LEN as f64 / 1024.0 - f64::from(LIMIT_KIB)) / f64::from(LIMIT_KIB);
    let down = transfer(&tmp.path().join("down"), LIMIT_KIB, 0, &torrent, &data).await;
    assert!(down >= floor, "download limit: {down:.2} s < {floor} s");
    let up = transfer(&tmp.path().join("up"), 0, LIMIT_KIB, &torrent, &data).await;
    assert!(up >= floor, "upload limit: {up:.2} s < {floor} s");
}

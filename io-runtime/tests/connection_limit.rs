//! `max-peer-connections`: a session never holds more peer connections than its cap, over all
//! its torrents (rain has only per-torrent limits).

use std::path::Path;
use std::time::Duration;

use rain_proto::torrent::Status;
use rain_runtime::create::{CreateOptions, create_torrent};
use rain_runtime::session::{AddOptions, Session, SessionConfig};

fn config(dir: &Path, seed: u64) -> SessionConfig {
    SessionConfig {
        database: dir.join("session.db"),
        data_dir: dir.join("data"),
        host: "127.0.0.1".parse().unwrap(),
        // Ports the kernel picks are not reserved; a taken one is swapped (crate ports).
        port_begin: 31000 + (seed as u16) * 50,
        port_end: 31000 + (seed as u16) * 50 + 50,
        seed: Some(seed),
        ..SessionConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cap_holds_over_every_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let seed_dir = tmp.path().join("seed");
    let src = seed_dir.join("data").join("seed");
    std::fs::create_dir_all(&src).unwrap();
    let data: Vec<u8> = (0..1_048_576u32).map(|i| (i * 7 + i / 251) as u8).collect();
    std::fs::write(src.join("payload.bin"), &data).unwrap();
    let torrent = create_torrent(&CreateOptions {
        paths: vec![src.join("payload.bin")],
        piece_length: Some(32 * 1024),
        ..CreateOptions::default()
    })
    .unwrap();

    // The seeder takes one connection at a time and uploads slowly, so transfers overlap.
    let a = Session::new(SessionConfig {
        max_peer_connections: 1,
        speed_limit_upload: 16,
        ..config(&seed_dir, 1)
    })
    .await
    .unwrap();
    let id = AddOptions {
        id: Some("seed".into()),
        ..AddOptions::default()
    };
    a.add_torrent(&torrent, id).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while a.stats("seed").await.unwrap().status != Status::Seeding {
        assert!(tokio::time::Instant::now() < deadline, "seeder never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let a_addr = format!("127.0.0.1:{}", a.get("seed").unwrap().port);

    let mut leechers = Vec::new();
    for n in 0..3u64 {
        let s = Session::new(config(&tmp.path().join(format!("l{n}")), 2 + n))
            .await
            .unwrap();
        let t = s
            .add_torrent(&torrent, AddOptions::default())
            .await
            .unwrap();
        s.add_peer(&t.id, &a_addr).await.unwrap();
        leechers.push((s, t.id));
    }
    let mut most = 0;
    for _ in 0..75 {
        most = most.max(a.session_stats().await.peers);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connected = {
        let mut c = 0;
        for (s, id) in &leechers {
            c += s.peers(id).await.unwrap().len();
        }
        c
    };
    assert_eq!(most, 1, "the seeder held more connections than its cap");
    assert_eq!(
        connected, 1,
        "one leecher is served, the others were refused"
    );
    for (s, _) in leechers {
        s.close().await.unwrap();
    }
    a.close().await.unwrap();
}

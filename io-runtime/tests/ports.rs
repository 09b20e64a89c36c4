//! Listen ports: a torrent whose port another program holds gets another free port of the
//! range, when it is added and when it is restored (rain would keep the taken port and run
//! without incoming connections).

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::Path;

use rain_runtime::create::{CreateOptions, create_torrent};
use rain_runtime::session::{AddOptions, Session, SessionConfig};

/// A range of `n` consecutive ports, all free when checked.
fn free_range(n: u16) -> std::ops::Range<u16> {
    for _ in 0..100 {
        let base = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if base.checked_add(n).is_none() {
            continue;
        }
        let all_free = (base..base + n).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok());
        if all_free {
            return base..base + n;
        }
    }
    panic!("no range of {n} free ports found");
}

fn config(dir: &Path, range: &std::ops::Range<u16>) -> SessionConfig {
    SessionConfig {
        database: dir.join("session.db"),
        data_dir: dir.join("data"),
        host: "127.0.0.1".parse().unwrap(),
        port_begin: range.start,
        port_end: range.end,
        seed: Some(5),
        ..SessionConfig::default()
    }
}

fn torrent(dir: &Path) -> Vec<u8> {
    let src = dir.join("src.bin");
    std::fs::write(&src, vec![7u8; 40_000]).unwrap();
    create_torrent(&CreateOptions {
        paths: vec![src],
        piece_length: Some(16 * 1024),
        ..CreateOptions::default()
    })
    .unwrap()
}

#[tokio::test]
async fn taken_ports_are_swapped_at_add_and_at_restore() {
    let tmp = tempfile::tempdir().unwrap();
    let range = free_range(4);
    let bytes = torrent(tmp.path());

    // Another program holds three of the four ports: the torrent gets the fourth.
    let free = range.start + 2;
    let held: Vec<TcpListener> = range
        .clone()
        .filter(|&p| p != free)
        .map(|p| TcpListener::bind(("127.0.0.1", p)).unwrap())
        .collect();
    let s = Session::new(config(tmp.path(), &range)).await.unwrap();
    let t = s.add_torrent(&bytes, AddOptions::default()).await.unwrap();
    assert_eq!(t.port, free, "the only port that binds");
    s.close().await.unwrap();
    drop(held);

    // While the session is down, something takes the torrent's port: the restore moves it.
    let squatter = TcpListener::bind(("127.0.0.1", free)).unwrap();
    let s = Session::new(config(tmp.path(), &range)).await.unwrap();
    let moved = s.get(&t.id).unwrap().port;
    assert_ne!(moved, free);
    assert!(range.contains(&moved));
    s.close().await.unwrap();
    drop(squatter);

    // The new port was persisted, and the old one is back in the pool.
    let s = Session::new(config(tmp.path(), &range)).await.unwrap();
    assert_eq!(s.get(&t.id).unwrap().port, moved, "the new port is kept");
    let others: BTreeSet<u16> = more_ports(&s, &bytes, 3).await;
    assert!(others.contains(&free), "the released port is drawn again");
    s.close().await.unwrap();
}

/// Adds `n` more torrents (same data under new ids) and returns their ports.
async fn more_ports(s: &Session, bytes: &[u8], n: usize) -> BTreeSet<u16> {
    let mut ports = BTreeSet::new();
    for i in 0..n {
        let opts = AddOptions {
            id: Some(format!("more{i}")),
            ..AddOptions::default()
        };
        ports.insert(s.add_torrent(bytes, opts).await.unwrap().port);
    }
    ports
}

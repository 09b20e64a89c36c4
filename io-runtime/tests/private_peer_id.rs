//! `private-peer-id-prefix`: a private torrent introduces itself with the configured prefix
//! (private trackers often whitelist clients by it), a public one always with rain's own. The
//! peer id is read from the handshake the torrent answers on its listen port.

use std::io::{Read, Write};
use std::time::Duration;

use rain_proto::metainfo::{Limits, Metainfo};
use rain_proto::wire::{Handshake, PeerId, Reserved};
use rain_runtime::create::{CreateOptions, create_torrent};
use rain_runtime::session::{AddOptions, Session, SessionConfig};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

/// The peer id a running torrent sends in its handshake.
async fn handshake_peer_id(s: &Session, id: &str, torrent: &[u8]) -> [u8; 20] {
    let info_hash = Metainfo::from_bytes(torrent, &Limits::default())
        .unwrap()
        .info_hash;
    let port = s.stats(id).await.unwrap().port;
    tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let attempt = (|| -> std::io::Result<[u8; 20]> {
                let mut c = std::net::TcpStream::connect(("127.0.0.1", port))?;
                c.set_read_timeout(Some(Duration::from_secs(5)))?;
                let ours = Handshake {
                    reserved: Reserved::default(),
                    info_hash,
                    peer_id: PeerId(*b"-XX0000-abcdefghijkl"),
                };
                c.write_all(&ours.to_bytes())?;
                let mut theirs = [0u8; 68];
                c.read_exact(&mut theirs)?;
                Ok(theirs[48..68].try_into().unwrap())
            })();
            match attempt {
                Ok(id) => return id,
                Err(e) if std::time::Instant::now() > deadline => panic!("no handshake: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_torrents_use_the_private_peer_id_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let s = Session::new(SessionConfig {
        database: tmp.path().join("session.db"),
        data_dir: tmp.path().join("data"),
        host: "127.0.0.1".parse().unwrap(),
        port_begin: port,
        port_end: port + 2,
        private_peer_id_prefix: "-qB4500-".into(),
        seed: Some(1),
        ..SessionConfig::default()
    })
    .await
    .unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.bin"), vec![7u8; 100_000]).unwrap();
    let make = |private: bool| {
        create_torrent(&CreateOptions {
            paths: vec![src.join("a.bin")],
            private,
            ..CreateOptions::default()
        })
        .unwrap()
    };
    let id = |s: &str| AddOptions {
        id: Some(s.to_owned()),
        ..AddOptions::default()
    };
    let private = make(true);
    s.add_torrent(&private, id("private")).await.unwrap();
    let got = handshake_peer_id(&s, "private", &private).await;
    assert!(
        got.starts_with(b"-qB4500-"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    s.remove("private", false).await.unwrap();

    let public = make(false);
    s.add_torrent(&public, id("public")).await.unwrap();
    let got = handshake_peer_id(&s, "public", &public).await;
    assert!(got.starts_with(b"-RN"), "{}", String::from_utf8_lossy(&got));
    s.close().await.unwrap();
}

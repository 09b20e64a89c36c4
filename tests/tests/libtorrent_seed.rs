//! A rain session downloads from a real libtorrent seeder on 127.0.0.1 (python libtorrent).
//! Skipped with a `SKIP` line where python libtorrent is missing, unless
//! `RAIN_REQUIRE_INTEROP=1` (CI), where its absence fails the test.

use std::time::Duration;

use rain_proto::torrent::Status;
use rain_runtime::session::{AddOptions, Session, SessionConfig};
use rain_tests::lt_seeder::{FILES, LibtorrentSeeder};
use rain_tests::{python_libtorrent_available, require};

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn libtorrent_seed() {
    if !require(
        "libtorrent_seed",
        "python3 libtorrent",
        python_libtorrent_available(),
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let seeder = LibtorrentSeeder::start(&tmp.path().join("lt"), WAIT);
    let (seed_dir, lt_port) = (seeder.dir().to_owned(), seeder.port());
    let torrent = std::fs::read(seeder.torrent()).unwrap();
    let ports = 20_000 + (std::process::id() % 40_000) as u16;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tmp.path().join("rain");
    let result = rt.block_on(async {
        let s = Session::new(SessionConfig {
            database: dir.join("session.db"),
            data_dir: dir.join("data"),
            host: "127.0.0.1".parse().unwrap(),
            port_begin: ports,
            port_end: ports + 20,
            seed: Some(9),
            ..SessionConfig::default()
        })
        .await
        .unwrap();
        let t = s
            .add_torrent(&torrent, AddOptions::default())
            .await
            .unwrap();
        s.add_peer(&t.id, &format!("127.0.0.1:{lt_port}"))
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + WAIT;
        let outcome = loop {
            let st = s.stats(&t.id).await.unwrap();
            if st.status == Status::Seeding {
                break Ok(t.id.clone());
            }
            if tokio::time::Instant::now() > deadline {
                break Err(format!(
                    "still {:?}: {}/{} pieces, {} peers, error {:?}",
                    st.status,
                    st.stats.pieces.have,
                    st.stats.pieces.total,
                    st.stats.peers.total,
                    st.error
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        s.close().await.unwrap();
        outcome
    });
    drop(seeder);
    let id = result.unwrap_or_else(|e| panic!("download from libtorrent failed: {e}"));
    for name in FILES {
        let want = std::fs::read(seed_dir.join(name)).unwrap();
        let got = std::fs::read(dir.join("data").join(&id).join(name)).unwrap();
        assert!(got == want, "{name} differs from the seeder's");
    }
}

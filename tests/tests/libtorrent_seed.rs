//! A rain session downloads from a real libtorrent seeder on 127.0.0.1 (python libtorrent).
//! Skipped with a `SKIP` line where python libtorrent is missing, unless
//! `RAIN_REQUIRE_INTEROP=1` (CI), where its absence fails the test.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use rain_proto::torrent::Status;
use rain_runtime::session::{AddOptions, Session, SessionConfig};
use rain_tests::{python_libtorrent_available, require};

const WAIT: Duration = Duration::from_secs(60);

/// Creates the payload and its torrent, seeds it on the given port, prints READY, and exits
/// when stdin closes.
const SEEDER: &str = r#"
import os, random, sys, time, warnings
warnings.simplefilter("ignore")
import libtorrent as lt
d, port = sys.argv[1], int(sys.argv[2])
os.makedirs(os.path.join(d, "payload", "sub"), exist_ok=True)
r = random.Random(7)
for name, n in [("x.bin", 1500000), ("sub/y.bin", 800001), ("z.bin", 12345)]:
    with open(os.path.join(d, "payload", name), "wb") as f:
        f.write(bytes(r.getrandbits(8) for _ in range(n)))
fs = lt.file_storage()
lt.add_files(fs, os.path.join(d, "payload"))
t = lt.create_torrent(fs, 32768)
lt.set_piece_hashes(t, d)
tb = lt.bencode(t.generate())
with open(os.path.join(d, "t.torrent"), "wb") as f:
    f.write(tb)
s = lt.session({
    "listen_interfaces": "127.0.0.1:%d" % port,
    "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
    "allow_multiple_connections_per_ip": True,
})
p = lt.add_torrent_params()
p.ti = lt.torrent_info(lt.bdecode(tb))
p.save_path = d
h = s.add_torrent(p)
deadline = time.time() + 30
while not h.status().is_seeding:
    if time.time() > deadline:
        sys.exit("seeder did not finish checking")
    time.sleep(0.05)
print("READY", flush=True)
sys.stdin.read()
"#;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

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
    let seed_dir = tmp.path().join("lt");
    std::fs::create_dir_all(&seed_dir).unwrap();
    let lt_port = free_port();
    let mut child = Command::new("python3")
        .args(["-c", SEEDER])
        .arg(&seed_dir)
        .arg(lt_port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.trim() == "READY" {
                let _ = tx.send(());
                break;
            }
        }
    });
    let ready = rx.recv_timeout(WAIT);
    if ready.is_err() {
        let _ = child.kill();
        panic!("libtorrent seeder did not become ready");
    }

    let torrent = std::fs::read(seed_dir.join("t.torrent")).unwrap();
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
    drop(child.stdin.take());
    if child.wait_timeout_or_kill() {
        eprintln!("libtorrent seeder had to be killed");
    }
    let id = result.unwrap_or_else(|e| panic!("download from libtorrent failed: {e}"));
    for name in ["x.bin", "sub/y.bin", "z.bin"] {
        let want = std::fs::read(seed_dir.join("payload").join(name)).unwrap();
        let got = std::fs::read(dir.join("data").join(&id).join("payload").join(name)).unwrap();
        assert!(got == want, "{name} differs from the seeder's");
    }
}

trait WaitOrKill {
    /// Waits up to 5 s for the child to exit, then kills it; true if it was killed.
    fn wait_timeout_or_kill(&mut self) -> bool;
}

impl WaitOrKill for std::process::Child {
    fn wait_timeout_or_kill(&mut self) -> bool {
        for _ in 0..100 {
            if matches!(self.try_wait(), Ok(Some(_))) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.kill();
        let _ = self.wait();
        true
    }
}

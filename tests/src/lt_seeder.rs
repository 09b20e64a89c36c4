//! A real libtorrent (python bindings) seeding a small multi-file torrent on 127.0.0.1:
//! three files (one in a subdirectory, pieces straddling files, a short last piece).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::KillOnDrop;

/// The payload's files, relative to [`LibtorrentSeeder::dir`].
pub const FILES: [&str; 3] = ["payload/x.bin", "payload/sub/y.bin", "payload/z.bin"];

/// Creates the payload and `t.torrent` under `dir`, seeds on `port`, prints READY once
/// seeding, and exits when stdin closes.
const SCRIPT: &str = r#"
import os, random, sys, time, warnings
warnings.simplefilter("ignore")
import libtorrent as lt
d, port = sys.argv[1], int(sys.argv[2])
os.makedirs(os.path.join(d, "payload", "sub"), exist_ok=True)
r = random.Random(7)
for name, n in [("x.bin", 1500000), ("sub/y.bin", 800001), ("z.bin", 12345)]:
    with open(os.path.join(d, "payload", name), "wb") as f:
        f.write(r.randbytes(n))
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

/// A running libtorrent seeder; killed when dropped.
#[derive(Debug)]
pub struct LibtorrentSeeder {
    /// Where the payload and `t.torrent` are.
    pub dir: PathBuf,
    /// Its listen port on 127.0.0.1.
    pub port: u16,
    _process: KillOnDrop,
}

impl LibtorrentSeeder {
    /// Starts the seeder under `dir` on a fresh port and waits (at most `wait`) until it
    /// seeds. Panics if it does not.
    pub fn start(dir: &Path, wait: Duration) -> LibtorrentSeeder {
        std::fs::create_dir_all(dir).unwrap();
        let port = crate::free_port();
        let mut process = KillOnDrop(
            Command::new("python3")
                .args(["-c", SCRIPT])
                .arg(dir)
                .arg(port.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("start python3"),
        );
        let stdout = process.0.stdout.take().unwrap();
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
        rx.recv_timeout(wait)
            .expect("libtorrent seeder did not become ready");
        LibtorrentSeeder {
            dir: dir.to_owned(),
            port,
            _process: process,
        }
    }

    /// The `.torrent` file.
    pub fn torrent(&self) -> PathBuf {
        self.dir.join("t.torrent")
    }
}

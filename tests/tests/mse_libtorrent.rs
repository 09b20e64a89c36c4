//! rain's peer connection against a real libtorrent that forces RC4 (MSE/PE): rain dials with
//! forced encryption, completes the handshake, and downloads a block whose bytes it checks;
//! a plaintext-only dial is refused.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use rain_proto::metainfo::{Limits as TorrentLimits, Metainfo};
use rain_proto::mse::{EncryptionPolicy, Outgoing};
use rain_proto::rng::{Rng, Seed};
use rain_proto::wire::{Block, Limits, Message, PeerId, Reserved};
use rain_runtime::net::TokioNet;
use rain_runtime::peer::{Local, Timeouts, dial};
use rain_tests::{KillOnDrop, free_port, python_libtorrent_available, require};

const SEEDER: &str = r#"
import os, sys, libtorrent as lt
port, work = int(sys.argv[1]), sys.argv[2]
data = os.path.join(work, "payload.bin")
with open(data, "wb") as f:
    f.write(bytes((i * 7 + 3) % 256 for i in range(200_000)))
fs = lt.file_storage()
lt.add_files(fs, data)
t = lt.create_torrent(fs, 16384, flags=lt.create_torrent.v1_only)
lt.set_piece_hashes(t, work)
raw = lt.bencode(t.generate())
with open(os.path.join(work, "t.torrent"), "wb") as f:
    f.write(raw)
s = lt.session({
    "listen_interfaces": "127.0.0.1:%d" % port,
    "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
    "out_enc_policy": 0, "in_enc_policy": 0, "allowed_enc_level": 2,
    "allow_multiple_connections_per_ip": True,
    "alert_mask": lt.alert.category_t.all_categories if os.environ.get("RAIN_LT_DEBUG") else 0,
})
p = lt.add_torrent_params()
p.ti = lt.torrent_info(lt.bdecode(raw))
p.save_path = work
# Not paused, not auto-managed: serve at once.
p.flags = lt.torrent_flags.seed_mode
h = s.add_torrent(p)
import time
deadline = time.time() + 20
while time.time() < deadline and not (h.status().is_seeding and not h.status().paused and s.is_listening()):
    time.sleep(0.05)
print("READY", flush=True)
import threading
def log():
    while True:
        s.wait_for_alert(1000)
        for a in s.pop_alerts():
            if os.environ.get("RAIN_LT_DEBUG"):
                print("lt:", a.what(), a.message(), file=sys.stderr, flush=True)
threading.Thread(target=log, daemon=True).start()
sys.stdin.read()
"#;

fn start_seeder(work: &std::path::Path, port: u16) -> KillOnDrop {
    let mut child = Command::new("python3")
        .args(["-c", SEEDER, &port.to_string(), work.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "READY", "seeder did not start");
    child.stdin.as_mut().unwrap().flush().unwrap();
    KillOnDrop(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rain_downloads_a_block_over_rc4_from_libtorrent() {
    if !require(
        "rain_downloads_a_block_over_rc4_from_libtorrent",
        "python3-libtorrent",
        python_libtorrent_available(),
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _seeder = start_seeder(dir.path(), port);
    let torrent = std::fs::read(dir.path().join("t.torrent")).unwrap();
    let m = Metainfo::from_bytes(&torrent, &TorrentLimits::default()).unwrap();
    let payload = std::fs::read(dir.path().join("payload.bin")).unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let local = Local {
        info_hash: m.info_hash,
        peer_id: PeerId(*b"-RN0010-mse-interop1"),
        reserved: Reserved::rain(false),
    };
    let mut rng = Rng::new(Seed::from_u64(11));

    let forced = EncryptionPolicy {
        outgoing: Outgoing::ForceEncrypted,
        force_incoming: false,
    };
    let mut conn = dial(
        &TokioNet,
        addr,
        &local,
        &forced,
        Timeouts::default(),
        Limits::default(),
        &mut rng,
    )
    .await
    .expect("RC4 handshake with libtorrent");
    assert!(conn.remote.encrypted_handshake && conn.remote.encrypted_stream);
    assert_eq!(conn.remote.info_hash, m.info_hash);
    assert!(conn.remote.reserved.fast() && conn.remote.reserved.extension());

    conn.send(&[Message::Interested]).await.unwrap();
    let block = Block {
        index: 2,
        begin: 0,
        length: 16384,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (mut have_all, mut requested) = (false, false);
    loop {
        let msg = tokio::time::timeout_at(deadline, conn.read_message())
            .await
            .expect("libtorrent went quiet")
            .unwrap();
        match msg {
            Message::HaveAll => have_all = true,
            Message::Unchoke if !requested => {
                conn.send(&[Message::Request(block)]).await.unwrap();
                requested = true;
            }
            Message::Piece { index, begin, data } => {
                assert_eq!((index, begin), (2, 0));
                assert_eq!(
                    &data[..],
                    &payload[2 * 16384..3 * 16384],
                    "decrypted block matches the file"
                );
                break;
            }
            _ => {}
        }
    }
    assert!(
        have_all,
        "a seeding libtorrent announces HaveAll to a fast-extension peer"
    );

    // Plaintext is refused by a forcing libtorrent.
    let plain = EncryptionPolicy {
        outgoing: Outgoing::Plaintext,
        force_incoming: false,
    };
    let refused = dial(
        &TokioNet,
        addr,
        &local,
        &plain,
        Timeouts::default(),
        Limits::default(),
        &mut rng,
    )
    .await;
    assert!(
        refused.is_err(),
        "libtorrent with forced encryption must refuse a plaintext handshake"
    );
}

//! rain's peer connection against a real libtorrent that forces RC4 (MSE/PE): rain dials with
//! forced encryption, completes the handshake, and downloads a block whose bytes it checks;
//! a plaintext-only dial is refused.

use std::path::Path;
use std::time::Duration;

use rain_proto::metainfo::{Limits as TorrentLimits, Metainfo};
use rain_proto::mse::{EncryptionPolicy, Outgoing};
use rain_proto::rng::{Rng, Seed};
use rain_proto::wire::{Block, Limits, Message, PeerId, Reserved};
use rain_runtime::net::TokioNet;
use rain_runtime::peer::{Local, Timeouts, dial};
use rain_tests::libtorrent::{LtOptions, LtPeer, create_torrent};
use rain_tests::process::free_port;
use rain_tests::{python_libtorrent_available, require};

/// Writes `payload.bin` (200 000 bytes) and its v1 torrent `t.torrent` (16 KiB pieces) in a
/// new directory `work`, and seeds them with a libtorrent that forces RC4 both ways.
fn start_seeder(work: &Path) -> LtPeer {
    std::fs::create_dir_all(work).unwrap();
    let data = work.join("payload.bin");
    std::fs::write(
        &data,
        (0..200_000u32)
            .map(|i| ((i * 7 + 3) % 256) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let torrent = work.join("t.torrent");
    create_torrent(&data, 16384, true, &torrent);
    LtPeer::start(
        free_port(),
        &torrent,
        work,
        &LtOptions {
            seed: true,
            forced_encryption: true,
            ..LtOptions::default()
        },
    )
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
    let tmp = tempfile::tempdir().unwrap();
    // The seeder's log goes next to its directory: inside the temporary one.
    let work = tmp.path().join("lt");
    let seeder = start_seeder(&work);
    let torrent = std::fs::read(work.join("t.torrent")).unwrap();
    let m = Metainfo::from_bytes(&torrent, &TorrentLimits::default()).unwrap();
    let payload = std::fs::read(work.join("payload.bin")).unwrap();
    let addr = seeder.addr;
    let local = Local {
        info_hash: m.info_hash,
        peer_id: PeerId(*b"-RN0010-mse-interop1"),
        reserved: Reserved::rain(false),
    };
    let mut rng = Rng::new(Seed::from_u64(11));

    let forced = EncryptionPolicy {
        outgoing: Outgoing::ForceEncrypted,
        ..EncryptionPolicy::default()
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
        ..EncryptionPolicy::default()
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

//! Two (then three) rain sessions exchange a multi-file torrent over 127.0.0.1: download,
//! restart from the resume database without re-hashing, and resume after a crash; and a
//! download onto a disk that stalls.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rain_proto::metainfo::{Limits, Metainfo};
use rain_proto::torrent::Status;
use rain_runtime::create::{CreateOptions, create_torrent};
use rain_runtime::resume::{ResumeDb, ResumeDbOptions, unpack_bitfield};
use rain_runtime::session::{AddOptions, Session, SessionConfig};
use rain_runtime::storage::{FileCache, FileStorage, FileStorageOptions, Storage};
use rain_runtime::verify::{VerifyOptions, verify};

mod common;
use common::{Gate, OpenOnDrop, WAIT, gated_layer, wait_status};
const PIECE: u32 = 32 * 1024;
/// Files of the payload, with lengths that do not align to pieces.
const FILES: &[(&str, usize)] = &[
    ("a.bin", 700_001),
    ("sub/b.bin", 333_333),
    ("c.bin", 1_200_017),
];

/// Four ports the kernel just handed out (held together, so they differ): free, unlike a range
/// derived from a random base, which an ephemeral connection may already hold (a session
/// whose port is taken runs without a listener, as rain does, and its peers stall).
fn free_ports() -> [u16; 4] {
    let held: Vec<std::net::TcpListener> = (0..4)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| held[i].local_addr().unwrap().port())
}

fn config(dir: &Path, ports: u16, seed: u64) -> SessionConfig {
    SessionConfig {
        database: dir.join("session.db"),
        data_dir: dir.join("data"),
        host: "127.0.0.1".parse().unwrap(),
        port_begin: ports,
        port_end: ports + 1,
        resume_write_interval: Duration::from_millis(200),
        seed: Some(seed),
        ..SessionConfig::default()
    }
}

fn payload() -> Vec<Vec<u8>> {
    let mut x: u32 = 0x1234_5678;
    FILES
        .iter()
        .map(|&(_, len)| {
            (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect()
        })
        .collect()
}

fn write_payload(root: &Path, data: &[Vec<u8>]) {
    for (&(name, _), bytes) in FILES.iter().zip(data) {
        let p = root.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
}

fn assert_payload(root: &Path, data: &[Vec<u8>]) {
    for (&(name, _), bytes) in FILES.iter().zip(data) {
        let got = std::fs::read(root.join(name)).unwrap();
        assert!(got == *bytes, "{name} differs under {}", root.display());
    }
}

/// A runtime with `workers` threads, time and I/O enabled.
fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

fn data_root(dir: &Path, id: &str) -> PathBuf {
    dir.join("data").join(id).join("payload")
}

#[test]
fn loopback_transfer() {
    let rt = runtime(2);
    let tmp = tempfile::tempdir().unwrap();
    let (dir_a, dir_b, dir_p, dir_c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("p"),
        tmp.path().join("c"),
    );
    let [port_a, port_b, port_p, port_c] = free_ports();
    let data = payload();
    let src = data_root(&dir_a, "seed");
    write_payload(&src, &data);
    let torrent = create_torrent(&CreateOptions {
        paths: vec![src.clone()],
        piece_length: Some(PIECE),
        ..CreateOptions::default()
    })
    .unwrap();
    let info = Metainfo::from_bytes(&torrent, &Limits::default())
        .unwrap()
        .info;
    let fixed = |id: &str| AddOptions {
        id: Some(id.to_owned()),
        ..AddOptions::default()
    };

    // 1. A seeds (verifies its data on add), B downloads from it.
    let a = rt.block_on(async {
        let a = Session::new(config(&dir_a, port_a, 1)).await.unwrap();
        a.add_torrent(&torrent, fixed("seed")).await.unwrap();
        wait_status(&a, "seed", Status::Seeding).await;
        assert!(a.session_stats().await.verifications >= 1);
        a
    });
    let a_port = a.get("seed").unwrap().port;
    let a_addr = format!("127.0.0.1:{a_port}");
    rt.block_on(async {
        let b = Session::new(config(&dir_b, port_b, 2)).await.unwrap();
        let t = b
            .add_torrent(&torrent, AddOptions::default())
            .await
            .unwrap();
        assert_ne!(t.port, a_port);
        b.add_peer(&t.id, &a_addr).await.unwrap();
        wait_status(&b, &t.id, Status::Seeding).await;
        assert_eq!(
            b.session_stats().await.pieces_written,
            u64::from(info.piece_count())
        );
        assert_payload(&data_root(&dir_b, &t.id), &data);
        // A served every piece through its read cache (pieces of 32 KiB are cached whole).
        let reads = a.session_stats().await;
        let total: u64 = FILES.iter().map(|&(_, n)| n as u64).sum();
        assert!(
            reads.read_cache_objects > 0 && reads.read_cache_size > 0,
            "uploads went through the read cache: {reads:?}"
        );
        assert!(reads.read_cache_size <= total && reads.bytes_read >= reads.read_cache_size);
        b.close().await.unwrap();

        // 2. B restarts from its resume database: Seeding again, nothing re-hashed.
        let b = Session::new(config(&dir_b, port_b, 3)).await.unwrap();
        assert_eq!(b.get(&t.id).unwrap().port, t.port, "port is persisted");
        wait_status(&b, &t.id, Status::Seeding).await;
        let s = b.session_stats().await;
        assert_eq!(
            (s.verifications, s.pieces_checked),
            (0, 0),
            "no re-hash after a clean close"
        );
        b.close().await.unwrap();

        // 2b. A file deleted while B was down: only its pieces are hashed, and fetched again
        // from A.
        let storage = FileStorage::for_torrent(
            &info,
            &t.id,
            &FileStorageOptions::new(dir_b.join("data")),
            Arc::new(FileCache::new(16)),
        )
        .unwrap();
        let lost = storage.layout().file_pieces(1);
        std::fs::remove_file(storage.path(1).unwrap()).unwrap();
        drop(storage);
        // A is not added again: B dials it from its record (peers added by hand persist).
        let b = Session::new(config(&dir_b, port_b, 3)).await.unwrap();
        wait_status(&b, &t.id, Status::Seeding).await;
        let s = b.session_stats().await;
        assert_eq!(
            s.pieces_checked,
            u64::from(lost.end - lost.start),
            "only the missing file's pieces are hashed"
        );
        assert_eq!(s.pieces_written, u64::from(lost.end - lost.start));
        assert_payload(&data_root(&dir_b, &t.id), &data);
        b.close().await.unwrap();
    });

    // 3. C downloads from a partial seed P and crashes mid-download.
    let mut partial = data.clone();
    partial[2].fill(0);
    write_payload(&data_root(&dir_p, "part"), &partial);
    let p = rt.block_on(async {
        let p = Session::new(config(&dir_p, port_p, 4)).await.unwrap();
        p.add_torrent(&torrent, fixed("part")).await.unwrap();
        wait_status(&p, "part", Status::Downloading).await;
        p
    });
    let p_have = rt.block_on(p.stats("part")).unwrap().stats.pieces.have;
    assert!(p_have > 0 && p_have < info.piece_count());
    let p_addr = format!("127.0.0.1:{}", p.get("part").unwrap().port);
    {
        let rt_c = runtime(1);
        let c = rt_c.block_on(async {
            let c = Session::new(config(&dir_c, port_c, 5)).await.unwrap();
            c.add_torrent(&torrent, fixed("crash")).await.unwrap();
            c.add_peer("crash", &p_addr).await.unwrap();
            let deadline = tokio::time::Instant::now() + WAIT;
            while c.stats("crash").await.unwrap().stats.pieces.have < p_have {
                assert!(tokio::time::Instant::now() < deadline, "C stalled");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // Let a periodic progress write happen, then crash.
            tokio::time::sleep(Duration::from_millis(600)).await;
            c
        });
        drop(c);
        drop(rt_c);
    }
    rt.block_on(p.close()).unwrap();

    // No piece recorded complete is bad on disk.
    let db = ResumeDb::open(&dir_c.join("session.db"), &ResumeDbOptions::default()).unwrap();
    let record = db.get_torrent("crash").unwrap().unwrap();
    drop(db); // not `close`: the crash must stay visible to the next session
    let recorded = unpack_bitfield(
        record
            .progress
            .bitfield
            .as_deref()
            .expect("progress was written"),
        info.piece_count() as usize,
    )
    .unwrap();
    let storage = FileStorage::for_torrent(
        &info,
        "crash",
        &FileStorageOptions::new(dir_c.join("data")),
        Arc::new(FileCache::new(16)),
    )
    .unwrap();
    let intact = verify(&storage, &info.pieces, &VerifyOptions::default(), |_| {}).unwrap();
    let marked = recorded.iter().filter(|&&b| b).count();
    assert!(marked > 0, "some progress was persisted before the crash");
    for (i, (&r, &ok)) in recorded.iter().zip(&intact).enumerate() {
        assert!(
            !r || ok,
            "piece {i} is recorded complete but is not intact on disk"
        );
    }
    drop(storage);

    // 4. C resumes after the crash (re-checking its data) and completes from A.
    rt.block_on(async {
        let c = Session::new(config(&dir_c, port_c, 6)).await.unwrap();
        c.add_peer("crash", &a_addr).await.unwrap();
        wait_status(&c, "crash", Status::Seeding).await;
        let s = c.session_stats().await;
        assert!(s.verifications >= 1, "an unclean shutdown is re-checked");
        assert_eq!(
            s.pieces_checked,
            u64::from(info.piece_count()) - marked as u64,
            "after a crash only the unrecorded pieces are hashed"
        );
        assert!(
            s.pieces_written < u64::from(info.piece_count()),
            "pieces on disk were kept"
        );
        assert_payload(&data_root(&dir_c, "crash"), &data);
        c.close().await.unwrap();
        a.close().await.unwrap();
    });
}

/// A leecher whose disk stalls (every write blocks until the test lets it through): it stops
/// starting pieces once `max_piece_memory` is reserved by unwritten pieces, so it halts
/// having received no more than that, the session
/// keeps answering while writes hang, and once the disk comes back the download completes
/// with identical bytes (R55).
#[test]
fn a_stalled_disk_bounds_memory_and_keeps_the_session_responsive() {
    let rt = runtime(2);
    let tmp = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let [port_a, port_b, ..] = free_ports();
    let data = payload();
    let src = data_root(&dir_a, "seed");
    write_payload(&src, &data);
    let torrent = create_torrent(&CreateOptions {
        paths: vec![src],
        piece_length: Some(PIECE),
        ..CreateOptions::default()
    })
    .unwrap();
    let memory = 4 * u64::from(PIECE);
    let gate = Arc::new(Gate::default());
    let _open_at_the_end = OpenOnDrop(gate.clone());
    rt.block_on(async {
        let a = Session::new(config(&dir_a, port_a, 7)).await.unwrap();
        let seed = AddOptions {
            id: Some("seed".into()),
            ..AddOptions::default()
        };
        a.add_torrent(&torrent, seed).await.unwrap();
        wait_status(&a, "seed", Status::Seeding).await;
        let b = Session::new(SessionConfig {
            max_piece_memory: memory,
            storage_layer: gated_layer(&gate),
            ..config(&dir_b, port_b, 8)
        })
        .await
        .unwrap();
        let t = b
            .add_torrent(&torrent, AddOptions::default())
            .await
            .unwrap();
        b.add_peer(&t.id, &format!("127.0.0.1:{}", a.get("seed").unwrap().port))
            .await
            .unwrap();
        // Wait for the download to hit the memory bound with every write hanging.
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut last = 0;
        let mut still = 0;
        while still < 10 {
            let st = tokio::time::timeout(Duration::from_secs(10), b.stats(&t.id))
                .await
                .expect("the session answers while the disk hangs")
                .unwrap();
            let got = st.stats.bytes.downloaded;
            still = if got == last && got > 0 { still + 1 } else { 0 };
            last = got;
            assert!(tokio::time::Instant::now() < deadline, "no progress at all");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let st = b.stats(&t.id).await.unwrap();
        assert_eq!(st.stats.pieces.have, 0, "nothing written, nothing complete");
        assert!(
            gate.writes_waiting
                .load(std::sync::atomic::Ordering::Relaxed)
                >= 1
        );
        let total: u64 = data.iter().map(|d| d.len() as u64).sum();
        // A piece starts only if its whole length fits in the budget: what was received is
        // within it, far short of the payload.
        assert!(
            last <= memory && last < total / 2,
            "{last} of {total} bytes received with {memory} of piece memory"
        );
        tokio::time::timeout(Duration::from_secs(10), b.session_stats())
            .await
            .expect("session stats answer too");
        gate.open();
        wait_status(&b, &t.id, Status::Seeding).await;
        assert_payload(&data_root(&dir_b, &t.id), &data);
        b.close().await.unwrap();
        a.close().await.unwrap();
    });
}

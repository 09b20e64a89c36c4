use std::time::Duration;

use rain_proto::InfoHash;

use super::*;

fn opts() -> ResumeDbOptions {
    ResumeDbOptions {
        max_size: 16 << 20,
        lock_timeout: Duration::from_millis(100),
        ..ResumeDbOptions::default()
    }
}

fn record(n: u8) -> TorrentRecord {
    let info = vec![b'd', n, b'e'];
    TorrentRecord {
        info_hash: InfoHash::of(&info),
        port: 20000 + u16::from(n),
        name: format!("torrent {n}"),
        trackers: vec![
            vec!["http://a/announce".into(), "udp://b:1".into()],
            vec!["http://c/announce".into()],
        ],
        url_list: vec!["http://seed/".into()],
        fixed_peers: vec!["10.0.0.1:6881".into()],
        info,
        progress: Progress {
            bitfield: Some(vec![0xf0, n]),
            bytes_downloaded: 1 << 40,
            bytes_uploaded: 12345,
            bytes_wasted: 7,
            seeded_for: Duration::from_secs(3723),
        },
        added_at: 1_700_000_000 + i64::from(n),
        started: true,
        stop_after_download: n.is_multiple_of(2),
        stop_after_metadata: n.is_multiple_of(3),
        complete_cmd_run: true,
        sequential: !n.is_multiple_of(2),
        parser_version: 3,
    }
}

#[test]
fn records_round_trip_update_list_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/session.db");
    let db = ResumeDb::open(&path, &opts()).unwrap();
    assert_eq!(db.last_shutdown(), LastShutdown::New);
    assert!(db.get_torrent("nope").unwrap().is_none());

    for n in [3, 1, 2] {
        db.put_torrent(&format!("id{n}"), &record(n)).unwrap();
    }
    assert_eq!(db.get_torrent("id1").unwrap().unwrap(), record(1));
    assert_eq!(db.torrent_ids().unwrap(), ["id1", "id2", "id3"]);

    // A magnet without metadata: empty info and no bitfield.
    let magnet = TorrentRecord {
        // The metadata that arrives later (below) hashes to it.
        info_hash: InfoHash::of(b"d4:infoe"),
        info: Vec::new(),
        progress: Progress::default(),
        ..record(4)
    };
    db.put_torrent("magnet", &magnet).unwrap();
    assert_eq!(db.get_torrent("magnet").unwrap().unwrap(), magnet);

    // Frequent progress writes touch only the progress.
    let progress = Progress {
        bitfield: Some(vec![0xff, 0x80]),
        bytes_downloaded: 99,
        ..Progress::default()
    };
    db.put_progress("id2", &progress).unwrap();
    let got = db.get_torrent("id2").unwrap().unwrap();
    assert_eq!(got.progress, progress);
    assert_eq!(got.info, record(2).info);
    assert!(matches!(
        db.put_progress("ghost", &progress),
        Err(ResumeError::NoSuchTorrent(_))
    ));
    let many = [("id1", &progress), ("ghost", &progress), ("id3", &progress)];
    assert_eq!(db.put_progress_many(many).unwrap(), 2);
    assert_eq!(db.get_torrent("id3").unwrap().unwrap().progress, progress);

    db.update_torrent("magnet", |r| {
        r.started = false;
        r.info = b"d4:infoe".to_vec();
    })
    .unwrap();
    let m = db.get_torrent("magnet").unwrap().unwrap();
    assert!(!m.started);
    assert_eq!(m.info, b"d4:infoe");
    assert_eq!(m.trackers, magnet.trackers);
    assert!(matches!(
        db.update_torrent("ghost", |_| {}),
        Err(ResumeError::NoSuchTorrent(_))
    ));

    assert!(db.delete_torrent("id2").unwrap());
    assert!(!db.delete_torrent("id2").unwrap());
    assert!(db.get_torrent("id2").unwrap().is_none());
    let loaded = db.load_torrents().unwrap();
    let ids: Vec<&str> = loaded.ok.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["id1", "id3", "magnet"]);
    assert!(loaded.failed.is_empty());

    // Session area.
    assert_eq!(db.session_get("blocklist").unwrap(), None);
    db.session_put("blocklist", b"1.2.3.0/24").unwrap();
    assert_eq!(db.session_get("blocklist").unwrap().unwrap(), b"1.2.3.0/24");
    assert!(db.session_delete("blocklist").unwrap());
    assert_eq!(db.session_get("blocklist").unwrap(), None);
    db.session_put_many(&[("blocklist", b"10.0.0.0/8"), ("blocklist-timestamp", b"t")])
        .unwrap();
    assert_eq!(db.session_get("blocklist").unwrap().unwrap(), b"10.0.0.0/8");
    assert_eq!(
        db.session_get("blocklist-timestamp").unwrap().unwrap(),
        b"t"
    );
    // A bad key fails the whole write: nothing of it is stored.
    assert!(matches!(
        db.session_put_many(&[("blocklist", b"x"), ("", b"y")]),
        Err(ResumeError::InvalidKey(_))
    ));
    assert_eq!(db.session_get("blocklist").unwrap().unwrap(), b"10.0.0.0/8");

    assert!(matches!(
        db.put_torrent("", &record(1)),
        Err(ResumeError::InvalidKey(_))
    ));
    assert!(matches!(
        db.session_put(&"k".repeat(MAX_KEY_LEN + 1), b""),
        Err(ResumeError::InvalidKey(_))
    ));
    db.close().unwrap();

    // Everything survives a reopen.
    let db = ResumeDb::open(&path, &opts()).unwrap();
    assert_eq!(db.get_torrent("id1").unwrap().unwrap().progress, progress);
    assert_eq!(db.torrent_ids().unwrap().len(), 3);
}

#[test]
fn a_second_open_is_refused_while_the_first_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.db");
    let first = ResumeDb::open(&path, &opts()).unwrap();
    let err = ResumeDb::open(&path, &opts()).unwrap_err();
    assert!(matches!(err, ResumeError::Locked { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("resume database is locked by another process")
    );
    drop(first);
    ResumeDb::open(&path, &opts()).unwrap();
}

#[test]
fn clean_shutdown_marker() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.db");
    let db = ResumeDb::open(&path, &opts()).unwrap();
    assert_eq!(db.last_shutdown(), LastShutdown::New);
    db.close().unwrap();
    let db = ResumeDb::open(&path, &opts()).unwrap();
    assert_eq!(db.last_shutdown(), LastShutdown::Clean);
    drop(db); // a crash: no close
    let db = ResumeDb::open(&path, &opts()).unwrap();
    assert_eq!(db.last_shutdown(), LastShutdown::Unclean);
    // Opening after a crash does not make the next start trust it either.
    drop(db);
    let db = ResumeDb::open(&path, &opts()).unwrap();
    assert_eq!(db.last_shutdown(), LastShutdown::Unclean);
    db.close().unwrap();
    let db = ResumeDb::open(&path, &opts()).unwrap();
    assert_eq!(db.last_shutdown(), LastShutdown::Clean);
}

/// R58: a record whose stored info dictionary does not hash to its info-hash is corrupt
/// (reported and skipped like an undecodable one), never loaded as that torrent.
#[test]
fn rejects_a_record_whose_info_does_not_match_its_info_hash() {
    let dir = tempfile::tempdir().unwrap();
    let db = ResumeDb::open(&dir.path().join("session.db"), &opts()).unwrap();
    db.put_torrent("good", &record(1)).unwrap();
    let mut swapped = record(2);
    swapped.info = record(3).info;
    db.put_torrent("swapped", &swapped).unwrap();
    let loaded = db.load_torrents().unwrap();
    let ok: Vec<&str> = loaded.ok.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ok, ["good"]);
    assert!(
        matches!(
            &loaded.failed[..],
            [(id, ResumeError::Corrupt { source: DecodeError::InfoMismatch, .. })] if id == "swapped"
        ),
        "{:?}",
        loaded.failed
    );
    // A magnet's record without metadata has nothing to check.
    let mut magnet = record(4);
    magnet.info.clear();
    db.put_torrent("magnet", &magnet).unwrap();
    assert_eq!(db.get_torrent("magnet").unwrap(), Some(magnet));
}

#[test]
fn a_corrupt_record_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.db");
    let db = ResumeDb::open(&path, &opts()).unwrap();
    db.put_torrent("a", &record(1)).unwrap();
    db.put_torrent("b", &record(2)).unwrap();
    db.put_torrent("c", &record(3)).unwrap();
    db.put_raw_meta("b", b"\xc1 not msgpack");
    let loaded = db.load_torrents().unwrap();
    let ok: Vec<&str> = loaded.ok.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ok, ["a", "c"]);
    assert_eq!(loaded.failed.len(), 1);
    assert_eq!(loaded.failed[0].0, "b");
    assert!(matches!(
        &loaded.failed[0].1,
        ResumeError::Corrupt { id, .. } if id == "b"
    ));
    assert!(matches!(
        db.get_torrent("b"),
        Err(ResumeError::Corrupt { .. })
    ));
    // The failed record can be deleted (rain's CleanDatabase).
    assert!(db.delete_torrent("b").unwrap());
    assert!(db.load_torrents().unwrap().failed.is_empty());
}

#[test]
fn a_file_that_is_not_a_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.db");
    fs::write(&path, vec![0x42u8; 64 * 1024]).unwrap();
    let err = ResumeDb::open(&path, &opts()).unwrap_err();
    assert!(matches!(err, ResumeError::Lmdb { .. }), "{err}");
    assert_eq!(
        fs::read(&path).unwrap(),
        vec![0x42u8; 64 * 1024],
        "left intact"
    );
}

#[test]
fn compact_preserves_records_and_drops_only_corrupt_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.db");
    let db = ResumeDb::open(&path, &opts()).unwrap();
    for n in 0..20 {
        db.put_torrent(&format!("t{n:02}"), &record(n)).unwrap();
    }
    // Churn leaves free pages behind.
    for n in 0..20 {
        db.put_progress(&format!("t{n:02}"), &Progress::default())
            .unwrap();
    }
    for n in 10..20 {
        db.delete_torrent(&format!("t{n:02}")).unwrap();
    }
    db.put_raw_meta("bad", b"\x00");
    db.session_put("dht-nodes", b"nodes").unwrap();
    let before = db.load_torrents().unwrap().ok;
    db.close().unwrap();

    let report = ResumeDb::compact(&path, &opts()).unwrap();
    assert_eq!(report.kept, 10);
    assert_eq!(report.dropped.len(), 1);
    assert_eq!(report.dropped[0].0, "bad");
    assert!(report.backup.exists());

    let db = ResumeDb::open(&path, &opts()).unwrap();
    assert_eq!(db.last_shutdown(), LastShutdown::Clean);
    let after = db.load_torrents().unwrap();
    assert_eq!(after.ok, before);
    assert!(after.failed.is_empty());
    assert_eq!(db.session_get("dht-nodes").unwrap().unwrap(), b"nodes");
    // Compacting while a session holds the database is refused.
    assert!(matches!(
        ResumeDb::compact(&path, &opts()),
        Err(ResumeError::Locked { .. })
    ));
}

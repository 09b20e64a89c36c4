use super::*;

fn record() -> TorrentRecord {
    let info =
        b"d6:lengthi3e4:name1:a12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae".to_vec();
    TorrentRecord {
        info_hash: InfoHash::of(&info),
        port: 20001,
        name: "a".into(),
        trackers: vec![vec!["http://t/announce".into()], vec!["udp://u:1".into()]],
        url_list: vec!["http://seed/".into()],
        fixed_peers: vec!["127.0.0.1:6881".into()],
        info,
        progress: Progress {
            bitfield: Some(vec![0x80]),
            bytes_downloaded: 1 << 33,
            bytes_uploaded: 12345,
            bytes_wasted: 7,
            seeded_for: Duration::from_millis(1500),
        },
        added_at: 1_700_000_000,
        started: true,
        stop_after_download: false,
        stop_after_metadata: true,
        complete_cmd_run: true,
        sequential: true,
        parser_version: 3,
    }
}

#[test]
fn spec_json_round_trips_with_rains_field_names() {
    let r = record();
    let json = serde_json::to_value(MoveSpec::from_record(&r)).unwrap();
    for key in [
        "InfoHash",
        "Port",
        "Name",
        "Trackers",
        "URLList",
        "FixedPeers",
        "Info",
        "Bitfield",
        "AddedAt",
        "BytesDownloaded",
        "BytesUploaded",
        "BytesWasted",
        "SeededFor",
        "Started",
        "StopAfterDownload",
        "StopAfterMetadata",
        "CompleteCmdRun",
        "Sequential",
        "Version",
    ] {
        assert!(json.get(key).is_some(), "{key} missing from {json}");
    }
    assert_eq!(json["AddedAt"], "2023-11-14T22:13:20Z");
    assert_eq!(json["SeededFor"], 1_500_000_000);
    assert_eq!(json["Bitfield"], "gA==");
    assert_eq!(json["InfoHash"], BASE64.encode(&r.info_hash.0));
    let back: MoveSpec = serde_json::from_value(json).unwrap();
    let mut expected = r.clone();
    expected.port = 29999;
    assert_eq!(back.to_record(29999).unwrap(), expected);
    assert!(
        back.parse_info(&rain_proto::metainfo::Limits::default())
            .unwrap()
            .is_some()
    );
}

#[test]
fn spec_reads_gos_nulls_and_local_offsets() {
    let r = record();
    let json = format!(
        r#"{{"InfoHash":"{}","Port":5,"Name":"m","Trackers":null,"URLList":null,
            "FixedPeers":null,"Info":null,"Bitfield":null,
            "AddedAt":"2023-11-15T01:13:20.123456789+03:00","Version":0}}"#,
        BASE64.encode(&r.info_hash.0)
    );
    let spec: MoveSpec = serde_json::from_str(&json).unwrap();
    assert_eq!(spec.added_at, 1_700_000_000);
    let rec = spec.to_record(1).unwrap();
    assert!(rec.trackers.is_empty() && rec.info.is_empty());
    assert_eq!(rec.progress.bitfield, None);
    assert_eq!(rec.parser_version, 1);
}

#[test]
fn spec_is_checked_against_its_info_hash() {
    let mut spec = MoveSpec::from_record(&record());
    let limits = rain_proto::metainfo::Limits::default();
    spec.info_hash[0] ^= 1;
    assert_eq!(spec.parse_info(&limits), Err(SpecError::InfoMismatch));
    spec.info_hash.pop();
    assert_eq!(
        spec.to_record(1).unwrap_err(),
        SpecError::InfoHashLength(19)
    );
    let mut spec = MoveSpec::from_record(&record());
    spec.bitfield = Some(vec![0, 0]);
    assert_eq!(spec.parse_info(&limits), Err(SpecError::Bitfield));
}

/// A one-entry tar whose header is written by hand, so any name and type can be tested.
fn raw_tar(name: &[u8], kind: tar::EntryType, data: &[u8], link: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(0o600);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
    out
}

#[test]
fn extraction_refuses_entries_that_escape_or_are_not_plain() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data").join("id");
    let cases: [(&[u8], tar::EntryType, &[u8]); 7] = [
        (b"../evil", tar::EntryType::Regular, b""),
        (b"a/../../evil", tar::EntryType::Regular, b""),
        (b"/tmp/evil-abs", tar::EntryType::Regular, b""),
        (b"link", tar::EntryType::Symlink, b"/etc/passwd"),
        (b"hard", tar::EntryType::Link, b"../../evil"),
        (b"dev", tar::EntryType::Char, b""),
        (b"fifo", tar::EntryType::Fifo, b""),
    ];
    for (name, kind, link) in cases {
        let mut created = Vec::new();
        let err = extract_data_tar(
            &raw_tar(name, kind, b"x", link)[..],
            &root,
            0o750,
            &mut created,
        )
        .unwrap_err();
        assert!(
            matches!(err, ExtractError::Unsafe { .. }),
            "{name:?}: {err}"
        );
        assert!(created.is_empty());
    }
    assert!(!tmp.path().join("data/evil").exists());
    assert!(!tmp.path().join("evil").exists());
    assert!(!Path::new("/tmp/evil-abs").exists());
    assert_eq!(
        std::fs::read_dir(&root).unwrap().count(),
        0,
        "nothing written"
    );
}

#[test]
fn extraction_never_writes_through_an_existing_symlink() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("dir")).unwrap();
    std::os::unix::fs::symlink(outside.join("f"), root.join("f")).unwrap();
    for name in [&b"dir/x"[..], b"f"] {
        let tar = raw_tar(name, tar::EntryType::Regular, b"x", b"");
        let err = extract_data_tar(&tar[..], &root, 0o750, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, ExtractError::Unsafe { .. }), "{err}");
    }
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
}

#[test]
fn tar_round_trip_keeps_every_file_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let long = "d".repeat(120);
    let files = [
        ("a.bin".to_owned(), vec![1u8; 70_000]),
        (format!("dir/{long}/b.txt"), b"hello".to_vec()),
        ("dir/empty".to_owned(), Vec::new()),
    ];
    for (name, data) in &files {
        std::fs::create_dir_all(src.join(name).parent().unwrap()).unwrap();
        std::fs::write(src.join(name), data).unwrap();
    }
    std::os::unix::fs::symlink("/etc/passwd", src.join("skipped-link")).unwrap();
    let list = data_files(&src).unwrap();
    assert_eq!(list.len(), 3, "{list:?}");
    let tar = write_data_tar(Vec::new(), &src, &list).unwrap();
    let dst = tmp.path().join("dst");
    let mut created = Vec::new();
    extract_data_tar(&tar[..], &dst, 0o750, &mut created).unwrap();
    assert_eq!(created.len(), 3);
    for (name, data) in &files {
        assert_eq!(&std::fs::read(dst.join(name)).unwrap(), data, "{name}");
    }
    assert_eq!(data_files(&dst).unwrap(), list);
    assert!(data_files(&tmp.path().join("missing")).unwrap().is_empty());
}

#[test]
fn a_truncated_archive_is_malformed() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = raw_tar(b"f", tar::EntryType::Regular, &[7u8; 2000], b"");
    let err =
        extract_data_tar(&tar[..700], &tmp.path().join("r"), 0o750, &mut Vec::new()).unwrap_err();
    assert!(matches!(err, ExtractError::Malformed(_)), "{err}");
}

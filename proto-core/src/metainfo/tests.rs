use super::*;
use crate::bencode::Item;

fn spec(
    files: Option<Vec<(Vec<String>, u64)>>,
    single_length: u64,
    piece_length: u32,
) -> TorrentSpec {
    let total = files
        .as_ref()
        .map_or(single_length, |f| f.iter().map(|(_, l)| l).sum());
    let count = total.div_ceil(u64::from(piece_length)) as usize;
    TorrentSpec {
        name: "demo".into(),
        piece_length,
        pieces: (0..count).map(|i| [i as u8; 20]).collect(),
        files,
        single_length,
        trackers: vec![
            vec!["http://t1/announce".into()],
            vec!["udp://t2:80".into(), "udp://t3:80".into()],
        ],
        webseeds: vec!["http://seed/".into()],
        comment: Some("hello".into()),
        created_by: Some("rain test".into()),
        creation_date: Some(1_700_000_000),
        ..TorrentSpec::default()
    }
}

#[test]
fn created_multi_file_torrent_reads_back() {
    let files = vec![
        (vec!["a".to_owned(), "x.bin".to_owned()], 40_000),
        (vec!["b.txt".to_owned()], 10),
    ];
    let s = spec(Some(files), 0, 16384);
    let bytes = s.to_bytes();
    assert_eq!(bytes, s.to_bytes(), "creation is deterministic");
    let m = Metainfo::from_bytes(&bytes, &Limits::default()).unwrap();
    assert_eq!(m.info_hash, crate::InfoHash::of(&s.info().to_bytes()));
    assert_eq!(m.info.name, "demo");
    assert!(m.info.multi_file);
    assert_eq!(m.info.total_length, 40_010);
    assert_eq!(m.info.piece_count(), 3);
    assert_eq!(m.info.piece_len(2), Some(40_010 - 2 * 16384));
    assert_eq!(m.info.piece_len(3), None);
    assert_eq!(m.info.files[1].offset, 40_000);
    assert_eq!(m.info.file_path(&m.info.files[0]), ["demo", "a", "x.bin"]);
    assert_eq!(m.trackers, s.trackers);
    assert_eq!(m.webseeds, ["http://seed/"]);
    assert_eq!(m.comment.as_deref(), Some("hello"));
    assert_eq!(m.created_by.as_deref(), Some("rain test"));
    assert_eq!(m.creation_date, Some(1_700_000_000));
    assert!(!m.info.private);
}

#[test]
fn single_file_private_with_source() {
    let mut s = spec(None, 5, 32768);
    s.private = true;
    s.source = Some("TRK".into());
    s.trackers = vec![vec!["http://only/announce".into()]];
    let m = Metainfo::from_bytes(&s.to_bytes(), &Limits::default()).unwrap();
    assert!(!m.info.multi_file && m.info.private);
    assert_eq!(m.info.source.as_deref(), Some("TRK"));
    assert_eq!(m.info.files[0].path, ["demo"]);
    assert_eq!(m.trackers, [["http://only/announce"]]);
}

#[test]
fn info_hash_covers_the_original_bytes_not_a_reencoding() {
    // Unsorted keys inside `info`: a re-encoding would sort them and change the hash.
    let info = b"d6:lengthi5e4:name1:x6:pieces20:aaaaaaaaaaaaaaaaaaaa12:piece lengthi16384ee";
    let mut torrent = b"d4:info".to_vec();
    torrent.extend_from_slice(info);
    torrent.push(b'e');
    let m = Metainfo::from_bytes(&torrent, &Limits::default()).unwrap();
    assert_eq!(m.info_hash, crate::InfoHash::of(info));
    assert_eq!(m.info_bytes, info);
}

#[test]
fn url_list_as_string_or_list_and_announce_fallback() {
    let info = spec(None, 5, 16384).info();
    let root = Item::dict()
        .with("info", info.clone())
        .with("announce", "http://a/")
        .with("url-list", "http://w/");
    let m = Metainfo::from_bytes(&root.to_bytes(), &Limits::default()).unwrap();
    assert_eq!(m.trackers, [["http://a/"]]);
    assert_eq!(m.webseeds, ["http://w/"]);
    let root = Item::dict()
        .with("info", info)
        .with(
            "announce-list",
            vec![Item::List(vec![]), Item::List(vec![Item::from("")])],
        )
        .with(
            "url-list",
            vec![
                Item::from("http://w1/"),
                Item::from(""),
                Item::from("http://w2/"),
            ],
        );
    let m = Metainfo::from_bytes(&root.to_bytes(), &Limits::default()).unwrap();
    assert!(m.trackers.is_empty(), "empty tiers are dropped");
    assert_eq!(m.webseeds, ["http://w1/", "http://w2/"]);
}

#[test]
fn utf8_overrides_padding_and_private_forms() {
    let file = |path: &str, len: i64, attr: Option<&str>| {
        let mut d = Item::dict()
            .with("length", len)
            .with("path", vec![Item::from(path)]);
        if let Some(a) = attr {
            d = d.with("attr", a);
        }
        d
    };
    let info = Item::dict()
        .with("name", "plain")
        .with("name.utf-8", "ünïcode")
        .with("piece length", 16384)
        .with("pieces", vec![7u8; 20])
        .with("private", "0")
        .with(
            "files",
            vec![
                file("a", 10, Some("x")),
                file(".pad/0", 6, Some("p")),
                file(".pad/0", 6, Some("p")),
                file("_____padding_file_1", 4, None),
                file("b", 10, None),
            ],
        );
    let m = Metainfo::from_bytes(
        &Item::dict().with("info", info).to_bytes(),
        &Limits::default(),
    )
    .unwrap();
    let i = &m.info;
    assert_eq!(i.name, "ünïcode");
    assert!(!i.private, "\"0\" means not private");
    let pads: Vec<bool> = i.files.iter().map(|f| f.padding).collect();
    assert_eq!(
        pads,
        [false, true, true, true, false],
        "duplicate pad paths are allowed"
    );
    assert_eq!(i.files[0].attr, "x");
    assert_eq!(i.total_length, 36);
}

#[test]
fn v2_only_is_named_and_hybrid_reads_v1() {
    let v2 = Item::dict()
        .with("meta version", 2)
        .with("name", "x")
        .with("piece length", 16384)
        .with("file tree", Item::dict());
    let err = Metainfo::from_bytes(
        &Item::dict().with("info", v2).to_bytes(),
        &Limits::default(),
    );
    assert_eq!(err, Err(Error::V2Only));
    let hybrid = spec(None, 5, 16384).info();
    let Item::Dict(mut d) = hybrid else {
        unreachable!()
    };
    d.insert(b"meta version".to_vec(), Item::Int(2));
    d.insert(b"file tree".to_vec(), Item::dict());
    let m = Metainfo::from_bytes(
        &Item::dict().with("info", Item::Dict(d)).to_bytes(),
        &Limits::default(),
    );
    assert_eq!(m.unwrap().info.total_length, 5);
}

#[test]
fn auto_piece_length_follows_rain() {
    assert_eq!(auto_piece_length(0), 32 * 1024);
    assert_eq!(auto_piece_length(1_000_000), 32 * 1024);
    assert_eq!(auto_piece_length(2000 * 100_000), 128 * 1024);
    assert_eq!(auto_piece_length(2000 * 131_072 + 1), 256 * 1024);
    assert_eq!(auto_piece_length(1 << 50), 16 * 1024 * 1024);
}

#[test]
fn completed_bytes_counts_only_overlap_with_pieces_we_have() {
    // Files of 40 000 and 10 bytes over 16 KiB pieces: pieces 0..=1 are whole, piece 2 is
    // 7 242 bytes of file a plus file b.
    let files = vec![(vec!["a".to_owned()], 40_000), (vec!["b".to_owned()], 10)];
    let bytes = spec(Some(files), 0, 16384).to_bytes();
    let info = Metainfo::from_bytes(&bytes, &Limits::default())
        .unwrap()
        .info;
    let (a, b) = (&info.files[0], &info.files[1]);
    assert_eq!(info.completed_bytes(a, |_| false), 0);
    assert_eq!(info.completed_bytes(a, |_| true), 40_000);
    assert_eq!(info.completed_bytes(b, |_| true), 10);
    assert_eq!(info.completed_bytes(a, |p| p == 1), 16_384);
    assert_eq!(info.completed_bytes(a, |p| p == 2), 40_000 - 32_768);
    assert_eq!(info.completed_bytes(b, |p| p != 2), 0);
}

#[test]
fn urls_are_trimmed_and_trackers_deduplicated_across_tiers() {
    let info = spec(None, 5, 16384).info();
    let tier = |urls: &[&str]| Item::List(urls.iter().map(|u| Item::from(*u)).collect());
    let root = Item::dict()
        .with("info", info.clone())
        .with("announce", " http://ignored/ ")
        .with(
            "announce-list",
            vec![
                tier(&[" http://a/announce\n", "udp://b:80", "http://a/announce"]),
                tier(&["\thttp://a/announce", "  ", "udp://c:80 "]),
                tier(&["udp://b:80", "\r\n"]),
                tier(&["http://d/"]),
            ],
        )
        .with(
            "url-list",
            vec![
                Item::from(" http://w1/ "),
                Item::from("http://w2/\n"),
                Item::from("http://w1/"),
                Item::from(" \t "),
            ],
        );
    let m = Metainfo::from_bytes(&root.to_bytes(), &Limits::default()).unwrap();
    assert_eq!(
        m.trackers,
        [
            vec!["http://a/announce", "udp://b:80"],
            vec!["udp://c:80"],
            vec!["http://d/"],
        ],
        "trimmed, each URL only in the first tier naming it, emptied tiers dropped"
    );
    assert_eq!(m.webseeds, ["http://w1/", "http://w2/"]);

    // The `announce` fallback and a single-string `url-list` are trimmed too.
    let root = Item::dict()
        .with("info", info)
        .with("announce", "\n http://only/announce \r\n")
        .with("url-list", "  http://seed/  ");
    let m = Metainfo::from_bytes(&root.to_bytes(), &Limits::default()).unwrap();
    assert_eq!(m.trackers, [["http://only/announce"]]);
    assert_eq!(m.webseeds, ["http://seed/"]);
}

//! Every bad `.torrent` and magnet input we know of, with the typed error it must produce.
//! Reading a hostile file must give one of these errors, never a panic and never a torrent
//! whose paths leave its directory.

use rain_proto::bencode::{self, ErrorKind, Item};
use rain_proto::magnet;
use rain_proto::metainfo::{Error, Limits, Metainfo, path};

fn info() -> Item {
    Item::dict()
        .with("name", "n")
        .with("piece length", 16384)
        .with("pieces", vec![1u8; 20])
        .with("length", 100)
}

fn with_info(info: Item) -> Vec<u8> {
    Item::dict().with("info", info).to_bytes()
}

fn files(paths: &[&[&[u8]]]) -> Item {
    let list = paths
        .iter()
        .map(|p| {
            let parts = p
                .iter()
                .map(|c| Item::Bytes(c.to_vec()))
                .collect::<Vec<_>>();
            Item::dict().with("length", 10).with("path", parts)
        })
        .collect::<Vec<_>>();
    let Item::Dict(mut d) = info() else {
        unreachable!()
    };
    d.remove(b"length".as_slice());
    d.insert(b"files".to_vec(), Item::List(list));
    Item::Dict(d)
}

fn parse(bytes: &[u8]) -> Result<Metainfo, Error> {
    Metainfo::from_bytes(bytes, &Limits::default())
}

fn bencode_error(bytes: &[u8]) -> ErrorKind {
    match parse(bytes) {
        Err(Error::Bencode(e)) => e.kind,
        other => panic!("expected a bencode error, got {other:?}"),
    }
}

#[test]
fn truncated_files() {
    let good = with_info(info());
    for cut in [1, good.len() / 2, good.len() - 1] {
        let kind = bencode_error(&good[..cut]);
        // Cut inside a string, the declared length runs past the end: the same fault, named for the string.
        assert!(
            matches!(kind, ErrorKind::UnexpectedEnd | ErrorKind::StringTooLong),
            "cut at {cut}: {kind:?}"
        );
    }
    assert_eq!(bencode_error(b""), ErrorKind::UnexpectedEnd);
}

#[test]
fn deep_nesting() {
    let mut bomb = b"d4:info".to_vec();
    bomb.extend(std::iter::repeat_n(b'l', 100_000));
    assert_eq!(bencode_error(&bomb), ErrorKind::TooDeep);
}

#[test]
fn huge_lengths() {
    assert_eq!(
        bencode_error(b"d4:info99999999999:xe"),
        ErrorKind::StringTooLong
    );
    assert_eq!(
        bencode_error(b"d4:info999999999999999999999999:xe"),
        ErrorKind::StringTooLong
    );
    assert_eq!(
        bencode_error(b"d4:infoi99999999999999999999ee"),
        ErrorKind::IntegerOverflow
    );
    let too_big = vec![b' '; Limits::default().max_torrent_size + 1];
    assert!(matches!(parse(&too_big), Err(Error::TooLarge { .. })));
    let Item::Dict(mut d) = info() else {
        unreachable!()
    };
    d.insert(b"length".to_vec(), Item::Int(i64::MAX));
    assert!(matches!(
        parse(&with_info(Item::Dict(d))),
        Err(Error::LengthMismatch { .. })
    ));
    let huge_files = files(&[&[b"a"], &[b"b"], &[b"c"]]);
    let Item::Dict(mut d) = huge_files else {
        unreachable!()
    };
    let Some(Item::List(list)) = d.get_mut(b"files".as_slice()) else {
        unreachable!()
    };
    for f in list.iter_mut() {
        let Item::Dict(f) = f else { unreachable!() };
        f.insert(b"length".to_vec(), Item::Int(i64::MAX));
    }
    assert_eq!(
        parse(&with_info(Item::Dict(d))),
        Err(Error::Invalid("length")),
        "total length overflow"
    );
}

#[test]
fn negative_and_wrongly_typed_fields() {
    assert_eq!(
        parse(&with_info(info().with("length", -1))),
        Err(Error::Invalid("length"))
    );
    assert_eq!(
        parse(&with_info(info().with("piece length", 0))),
        Err(Error::PieceLength(0))
    );
    assert_eq!(
        parse(&with_info(info().with("piece length", -5))),
        Err(Error::PieceLength(-5))
    );
    let big = i64::from(Limits::MAX_PIECE_LENGTH) + 1;
    assert_eq!(
        parse(&with_info(info().with("piece length", big))),
        Err(Error::PieceLength(big))
    );
    assert_eq!(
        parse(&with_info(info().with("piece length", "x"))),
        Err(Error::Invalid("piece length"))
    );
    assert_eq!(
        parse(&with_info(info().with("pieces", 5))),
        Err(Error::Invalid("pieces"))
    );
    assert_eq!(parse(&with_info(Item::Int(1))), Err(Error::Invalid("info")));
    assert_eq!(parse(b"i1e"), Err(Error::Invalid("torrent")));
    assert_eq!(parse(&Item::dict().to_bytes()), Err(Error::Missing("info")));
    let Item::Dict(mut d) = info() else {
        unreachable!()
    };
    d.remove(b"length".as_slice());
    assert_eq!(
        parse(&with_info(Item::Dict(d))),
        Err(Error::Missing("length"))
    );
}

#[test]
fn zero_and_wrong_piece_counts() {
    assert_eq!(
        parse(&with_info(info().with("pieces", Vec::<u8>::new()))),
        Err(Error::PiecesLength(0))
    );
    assert_eq!(
        parse(&with_info(info().with("pieces", vec![0u8; 21]))),
        Err(Error::PiecesLength(21))
    );
    // Two pieces of 16 KiB cannot describe 100 bytes, and one cannot describe 20000.
    assert!(matches!(
        parse(&with_info(info().with("pieces", vec![0u8; 40]))),
        Err(Error::LengthMismatch { .. })
    ));
    assert!(matches!(
        parse(&with_info(info().with("length", 20_000))),
        Err(Error::LengthMismatch { .. })
    ));
    assert!(matches!(
        parse(&with_info(info().with("length", 0))),
        Err(Error::LengthMismatch { .. })
    ));
    let limits = Limits {
        max_pieces: 4,
        ..Limits::default()
    };
    let many = info()
        .with("pieces", vec![0u8; 20 * 5])
        .with("piece length", 20)
        .with("length", 100);
    assert_eq!(
        Metainfo::from_bytes(&with_info(many), &limits),
        Err(Error::TooManyPieces { count: 5, limit: 4 })
    );
}

#[test]
fn path_traversal() {
    assert!(matches!(
        parse(&with_info(files(&[&[b"..", b"etc", b"passwd"]]))),
        Err(Error::PathTraversal(_))
    ));
    assert!(matches!(
        parse(&with_info(files(&[&[b"a", b"..", b"..", b"x"]]))),
        Err(Error::PathTraversal(_))
    ));
    assert!(matches!(
        parse(&with_info(info().with("name", ".."))),
        Err(Error::PathTraversal(_))
    ));
    // Absolute paths and separators inside a component are neutralised, not followed.
    let m = parse(&with_info(files(&[&[b"/etc/passwd"], &[b"C:\\win"]]))).unwrap();
    assert_eq!(m.info.files[0].path, ["_etc_passwd"]);
    assert_eq!(m.info.files[1].path, ["C:_win"]);
    let m = parse(&with_info(info().with("name", "/abs"))).unwrap();
    assert_eq!(m.info.name, "_abs");
}

#[test]
fn empty_components_and_empty_paths() {
    let m = parse(&with_info(files(&[&[b"", b"a", b".", b"b"]]))).unwrap();
    assert_eq!(m.info.files[0].path, ["a", "b"]);
    assert_eq!(
        parse(&with_info(files(&[&[b"", b"."]]))),
        Err(Error::EmptyPath)
    );
    assert_eq!(parse(&with_info(files(&[&[]]))), Err(Error::EmptyPath));
    let Item::Dict(mut d) = files(&[&[b"a"]]) else {
        unreachable!()
    };
    d.insert(b"files".to_vec(), Item::List(vec![]));
    assert_eq!(parse(&with_info(Item::Dict(d))), Err(Error::NoFiles));
    // A name that sanitises to nothing falls back to the info-hash.
    let m = parse(&with_info(info().with("name", ""))).unwrap();
    assert_eq!(m.info.name, m.info_hash.to_hex());
}

#[test]
fn nul_bytes_and_non_utf8_names() {
    let m = parse(&with_info(files(&[&[b"a\0b"], &[b"caf\xe9"]]))).unwrap();
    assert_eq!(m.info.files[0].path, ["a_b"]);
    assert_eq!(m.info.files[1].path, ["caf\u{fffd}"]);
}

#[test]
fn duplicate_paths() {
    assert_eq!(
        parse(&with_info(files(&[&[b"a"], &[b"a"]]))),
        Err(Error::DuplicatePath("a".into()))
    );
    // The same path after sanitising.
    assert!(matches!(
        parse(&with_info(files(&[&[b"a", b"b"], &[b"a", b".", b"b"]]))),
        Err(Error::DuplicatePath(_))
    ));
    // A file where another file needs a directory, in either order.
    assert!(matches!(
        parse(&with_info(files(&[&[b"a"], &[b"a", b"b"]]))),
        Err(Error::DuplicatePath(_))
    ));
    assert!(matches!(
        parse(&with_info(files(&[&[b"a", b"b"], &[b"a"]]))),
        Err(Error::DuplicatePath(_))
    ));
    // Paths equal only when case is ignored are valid on Linux: the later file is renamed
    // instead (more in `case_only_duplicate_paths_are_renamed`).
    let m = parse(&with_info(files(&[&[b"Readme"], &[b"README"]]))).unwrap();
    assert_eq!(paths_of(&m), ["Readme", "README.1"]);
}

fn paths_of(m: &Metainfo) -> Vec<String> {
    m.info.files.iter().map(|f| f.path.join("/")).collect()
}

#[test]
fn case_only_duplicate_paths_are_renamed() {
    // Valid on Linux, one file on a case-insensitive file system: the later one is renamed.
    let m = parse(&with_info(files(&[&[b"Readme"], &[b"README"]]))).unwrap();
    assert_eq!(paths_of(&m), ["Readme", "README.1"]);
    // The number goes before the extension and skips names that are taken, in any case.
    let m = parse(&with_info(files(&[
        &[b"a.txt"],
        &[b"A.TXT"],
        &[b"a.1.txt"],
    ])))
    .unwrap();
    assert_eq!(paths_of(&m), ["a.txt", "A.2.TXT", "a.1.txt"]);
    // Three spellings of one name, and a clash deeper in the tree.
    let m = parse(&with_info(files(&[
        &[b"d", b"x"],
        &[b"d", b"X"],
        &[b"d", b"x.1"],
        &[b"D", b"x"],
    ])))
    .unwrap();
    assert_eq!(paths_of(&m), ["d/x", "d/X.2", "d/x.1", "D/x.3"]);
    // So every file has a path of its own under case-insensitive comparison.
    let folded: std::collections::BTreeSet<String> =
        paths_of(&m).iter().map(|p| p.to_lowercase()).collect();
    assert_eq!(folded.len(), m.info.files.len());
    // A file that is a directory once case is ignored is renamed, in either order.
    let m = parse(&with_info(files(&[&[b"readme"], &[b"README", b"x"]]))).unwrap();
    assert_eq!(paths_of(&m), ["readme.1", "README/x"]);
    let m = parse(&with_info(files(&[&[b"README", b"x"], &[b"readme"]]))).unwrap();
    assert_eq!(paths_of(&m), ["README/x", "readme.1"]);
    // Directories that differ only in case merge harmlessly and are left alone.
    let m = parse(&with_info(files(&[&[b"Docs", b"a"], &[b"docs", b"b"]]))).unwrap();
    assert_eq!(paths_of(&m), ["Docs/a", "docs/b"]);
    // Renaming is bounded: a file that finds no free number refuses the torrent.
    let taken: Vec<Vec<u8>> = (1..=path::MAX_RENAME_TRIES)
        .map(|n| format!("a.{n}").into_bytes())
        .collect();
    let mut list: Vec<&[&[u8]]> = vec![&[b"a"], &[b"A"]];
    let taken_paths: Vec<[&[u8]; 1]> = taken.iter().map(|t| [t.as_slice()]).collect();
    list.extend(taken_paths.iter().map(|p| &p[..]));
    assert_eq!(
        parse(&with_info(files(&list))),
        Err(Error::DuplicatePath("A".into()))
    );
    list.pop();
    let m = parse(&with_info(files(&list))).unwrap();
    assert_eq!(
        m.info.files[1].path,
        [format!("A.{}", path::MAX_RENAME_TRIES)]
    );
}

#[test]
fn utf8_paths_are_preferred() {
    // `path.utf-8` wins over a non-UTF-8 `path`; `name.utf-8` over `name`.
    let entry = Item::dict()
        .with("length", 10)
        .with("path", vec![Item::Bytes(b"caf\xe9".to_vec())])
        .with("path.utf-8", vec![Item::from("café")]);
    // A `path.utf-8` that is not a list is ignored, and `path` is used.
    let broken = Item::dict()
        .with("length", 10)
        .with("path", vec![Item::from("plain")])
        .with("path.utf-8", "not-a-list");
    let Item::Dict(mut d) = info()
        .with("name", Item::Bytes(b"n\xe4me".to_vec()))
        .with("name.utf-8", "näme")
    else {
        unreachable!()
    };
    d.remove(b"length".as_slice());
    d.insert(b"files".to_vec(), Item::List(vec![entry, broken]));
    let m = parse(&with_info(Item::Dict(d))).unwrap();
    assert_eq!(m.info.name, "näme");
    assert_eq!(paths_of(&m), ["café", "plain"]);
}

#[test]
fn bencode_limits_apply_to_torrents() {
    assert_eq!(bencode_error(b"d4:infoi03ee"), ErrorKind::LeadingZero);
    assert_eq!(bencode_error(b"d4:infoi-0ee"), ErrorKind::NegativeZero);
    assert_eq!(bencode_error(b"d4:infoi1eeX"), ErrorKind::TrailingData);
    assert!(bencode::decode(b"d4:infoi1ee", &bencode::Limits::strict()).is_ok());
}

#[test]
fn bad_magnets() {
    let h = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";
    let cases: &[(&str, magnet::Error)] = &[
        ("", magnet::Error::NotMagnet),
        ("magnet:", magnet::Error::NotMagnet),
        ("https://example.com/a.torrent", magnet::Error::NotMagnet),
        ("magnet:?", magnet::Error::MissingInfoHash),
        ("magnet:?xt=urn:sha1:abc", magnet::Error::MissingInfoHash),
        ("magnet:?xt=urn:btmh:1220aa", magnet::Error::V2Only),
        (
            "magnet:?xt=urn:btih:",
            magnet::Error::InvalidInfoHash(String::new()),
        ),
        (
            "magnet:?xt=urn:btih:123",
            magnet::Error::InvalidInfoHash("123".into()),
        ),
    ];
    for (input, want) in cases {
        assert_eq!(magnet::parse(input).as_ref().err(), Some(want), "{input}");
    }
    let odd = format!("magnet:?xt=urn:btih:{}", &h[..39]);
    assert!(matches!(
        magnet::parse(&odd),
        Err(magnet::Error::InvalidInfoHash(_))
    ));
}

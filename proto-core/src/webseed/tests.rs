use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::metainfo::File;

/// An `Info` with `(path, length, padding)` files (zeroed hashes).
fn info(piece_length: u32, files: &[(&str, u64, bool)], multi_file: bool) -> Info {
    let mut offset = 0;
    let files: Vec<File> = files
        .iter()
        .map(|&(path, length, padding)| {
            let f = File {
                path: path.split('/').map(str::to_owned).collect(),
                length,
                offset,
                padding,
                attr: if padding { "p".into() } else { String::new() },
            };
            offset += length;
            f
        })
        .collect();
    let count = offset.div_ceil(u64::from(piece_length)) as usize;
    Info {
        name: "t".into(),
        piece_length,
        pieces: vec![[0; 20]; count],
        private: false,
        source: None,
        multi_file,
        files,
        total_length: offset,
    }
}

/// A piece table: which pieces a webseed may take, and which are held.
#[derive(Debug)]
struct Fake {
    layout: Layout,
    claimed: Vec<bool>,
    reserved: Vec<bool>,
    sequential: bool,
}

impl Fake {
    fn new(info: &Info) -> Self {
        let layout = Layout::from_info(info);
        let n = layout.piece_count() as usize;
        Fake {
            layout,
            claimed: vec![false; n],
            reserved: vec![false; n],
            sequential: false,
        }
    }

    fn held(&self) -> Vec<u32> {
        (0..self.reserved.len() as u32)
            .filter(|&i| self.reserved[i as usize])
            .collect()
    }
}

impl Pieces for Fake {
    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn is_unclaimed(&self, piece: u32) -> bool {
        !self.claimed[piece as usize] && !self.reserved[piece as usize]
    }

    fn set_reserved(&mut self, piece: u32, on: bool) {
        self.reserved[piece as usize] = on;
    }

    fn is_sequential(&self) -> bool {
        self.sequential
    }
}

fn planner(urls: &[&str], info: &Info, config: WebseedConfig) -> Planner {
    let urls: Vec<String> = urls.iter().map(|s| (*s).to_owned()).collect();
    let mut p = Planner::new(&urls, config, Seed::from_u64(7), Instant::ZERO);
    p.set_info(info);
    p
}

fn outputs(p: &mut Planner) -> Vec<Output> {
    std::iter::from_fn(|| p.poll_output()).collect()
}

fn requests(out: &[Output]) -> Vec<WebseedRequest> {
    out.iter()
        .filter_map(|o| match o {
            Output::Request(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

/// The torrent bytes a request asks for.
fn body(info: &Info, data: &[u8], r: &WebseedRequest) -> Bytes {
    let at = (info.files[r.file].offset + r.file_offset) as usize;
    Bytes::copy_from_slice(&data[at..at + r.length as usize])
}

fn data_of(info: &Info) -> Vec<u8> {
    (0..info.total_length)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 9)) as u8)
        .collect()
}

const KIB: u64 = 1024;

#[test]
fn urls_are_built_per_bep19() {
    let multi = info(16, &[("dir/my file#1.txt", 10, false)], true);
    let f = &multi.files[0];
    assert_eq!(
        file_url("http://h/base", &multi, f),
        "http://h/base/t/dir/my%20file%231.txt"
    );
    assert_eq!(
        file_url("http://h/base/", &multi, f),
        "http://h/base/t/dir/my%20file%231.txt"
    );
    let mut odd = multi.clone();
    odd.files[0].path = vec!["a?b;c,d".into(), "x$&+=:@~y".into()];
    assert_eq!(
        file_url("http://h", &odd, &odd.files[0]),
        "http://h/t/a%3Fb%3Bc%2Cd/x$&+=:@~y"
    );
    let mut single = info(16, &[("ignored", 10, false)], false);
    single.name = "one file.iso".into();
    let f = &single.files[0];
    assert_eq!(file_url("http://h/x.iso", &single, f), "http://h/x.iso");
    assert_eq!(
        file_url("http://h/d/", &single, f),
        "http://h/d/one%20file.iso"
    );
}

#[test]
fn sources_are_filtered_deduplicated_and_truncated() {
    let i = info(16, &[("a", 32, false)], true);
    let urls = [
        "http://a/",
        "ftp://b/",
        "udp://c",
        "https://d/",
        "http://a/",
        "HTTP://e/",
        "http://",
        "http://f/",
    ];
    let config = WebseedConfig {
        max_sources: 3,
        ..WebseedConfig::default()
    };
    let p = planner(&urls, &i, config);
    let got: Vec<String> = p.statuses().into_iter().map(|s| s.url).collect();
    assert_eq!(got, ["http://a/", "https://d/", "HTTP://e/"]);
}

#[test]
fn file_ranges_skip_padding_and_empty_files() {
    // a: 0..10, pad: 10..16, empty, b: 16..40, c: 40..45; 16-byte pieces.
    let i = info(
        16,
        &[
            ("a", 10, false),
            (".pad/6", 6, true),
            ("e", 0, false),
            ("b", 24, false),
            ("c", 5, false),
        ],
        true,
    );
    let l = Layout::from_info(&i);
    assert_eq!(file_ranges(&l, 0..1), [(0, 0, 10)]);
    assert_eq!(file_ranges(&l, 0..3), [(0, 0, 10), (3, 0, 24), (4, 0, 5)]);
    assert_eq!(file_ranges(&l, 2..3), [(3, 16, 8), (4, 0, 5)]);
    assert_eq!(file_ranges(&l, 3..4), []);
}

#[test]
fn one_source_fetches_a_range_in_blocks_and_releases_pieces() {
    // 40 pieces of 32 KiB: ranges of 2 pieces.
    let i = info(32 * 1024, &[("f", 40 * 32 * KIB, false)], false);
    let data = data_of(&i);
    let mut pieces = Fake::new(&i);
    let mut p = planner(&["http://h/f"], &i, WebseedConfig::default());
    p.plan(&mut pieces);
    let out = outputs(&mut p);
    let reqs = requests(&out);
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.url, "http://h/f");
    assert_eq!(r.length, 64 * KIB);
    assert_eq!(r.file_offset % (32 * KIB), 0);
    let first = (r.file_offset / (32 * KIB)) as u32;
    assert_eq!(pieces.held(), [first, first + 1]);
    assert_eq!(
        r.range_header(),
        format!("bytes={}-{}", r.file_offset, r.file_offset + 65535)
    );
    // Deliver in 10 000-byte chunks: blocks straddle chunks.
    let all = body(&i, &data, r);
    let mut blocks = Vec::new();
    for chunk in all.chunks(10_000) {
        p.handle_data(
            Instant::ZERO,
            &mut pieces,
            r.id,
            Bytes::copy_from_slice(chunk),
        );
        for o in outputs(&mut p) {
            match o {
                Output::Block { block, data: d, .. } => blocks.push((block, d)),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(blocks.len(), 4);
    for (k, (b, d)) in blocks.iter().enumerate() {
        assert_eq!(b.piece, first + k as u32 / 2);
        assert_eq!(b.begin, (k as u32 % 2) * 16384);
        let at = u64::from(b.piece) * 32 * KIB + u64::from(b.begin);
        assert_eq!(&d[..], &data[at as usize..at as usize + 16384]);
    }
    assert!(pieces.held().is_empty());
    assert_eq!(p.statuses()[0].state, SourceState::Idle);
    assert_eq!(p.statuses()[0].downloaded, 64 * KIB);
    assert!(p.wants_work());
}

#[test]
fn multi_file_ranges_issue_one_request_per_file_and_join_blocks() {
    // 16 KiB pieces; a: 10 KiB, b: 30 KiB, pad 8 KiB, c: 16 KiB → 4 pieces.
    let i = info(
        16 * 1024,
        &[
            ("a", 10 * KIB, false),
            ("b", 30 * KIB, false),
            (".pad/8192", 8 * KIB, true),
            ("c", 16 * KIB, false),
        ],
        true,
    );
    let data = data_of(&i);
    let mut pieces = Fake::new(&i);
    pieces.sequential = true;
    let mut p = planner(&["http://h/"], &i, WebseedConfig::default());
    p.plan(&mut pieces);
    let mut got: BTreeMap<(u32, u32), Bytes> = BTreeMap::new();
    let mut urls = Vec::new();
    let mut out = outputs(&mut p);
    while !out.is_empty() {
        let mut next = Vec::new();
        for o in out {
            match o {
                Output::Request(r) => {
                    urls.push((r.url.clone(), r.file_offset, r.length));
                    // Odd chunks: 3000 bytes.
                    for c in body(&i, &data, &r).chunks(3000) {
                        p.handle_data(Instant::ZERO, &mut pieces, r.id, Bytes::copy_from_slice(c));
                        next.extend(outputs(&mut p));
                    }
                }
                Output::Block { block, data: d, .. } => {
                    assert!(got.insert((block.piece, block.begin), d).is_none());
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        out = next;
        if out.is_empty() {
            for k in 0..pieces.claimed.len() {
                if !pieces.reserved[k] {
                    pieces.claimed[k] = got.keys().any(|&(pc, _)| pc as usize == k);
                }
            }
            p.plan(&mut pieces);
            out = outputs(&mut p);
        }
    }
    // Ranges of one piece (4 pieces): piece 0 spans a and b, piece 2 ends in padding.
    assert_eq!(
        urls,
        [
            ("http://h/t/a".to_owned(), 0, 10 * KIB),
            ("http://h/t/b".to_owned(), 0, 6 * KIB),
            ("http://h/t/b".to_owned(), 6 * KIB, 16 * KIB),
            ("http://h/t/b".to_owned(), 22 * KIB, 8 * KIB),
            ("http://h/t/c".to_owned(), 0, 16 * KIB),
        ]
    );
    // Every block of every piece, with the right bytes; none from the padding.
    let l = Layout::from_info(&i);
    let mut expected = 0;
    for piece in 0..l.piece_count() {
        for b in 0..l.block_count(piece) {
            let blk = l.block(piece, b);
            let at = u64::from(piece) * 16 * KIB + u64::from(blk.begin);
            let d = &got[&(piece, blk.begin)];
            assert_eq!(
                &d[..],
                &data[at as usize..at as usize + blk.length as usize]
            );
            expected += 1;
        }
    }
    assert_eq!(got.len(), expected);
}

#[test]
fn a_failure_disables_the_source_until_the_retry_interval() {
    let i = info(16 * 1024, &[("f", 20 * 16 * KIB, false)], false);
    let mut pieces = Fake::new(&i);
    let mut p = planner(&["http://h/f"], &i, WebseedConfig::default());
    p.plan(&mut pieces);
    let r = requests(&outputs(&mut p)).remove(0);
    p.handle_data(
        Instant::ZERO,
        &mut pieces,
        r.id,
        Bytes::from(vec![0u8; 100]),
    );
    let now = Instant::ZERO + Duration::from_secs(3);
    p.handle_failure(now, &mut pieces, r.id, WebseedError::Status(404));
    assert_eq!(outputs(&mut p), [Output::Discarded { bytes: 100 }]);
    assert!(pieces.held().is_empty());
    let st = &p.statuses()[0];
    assert_eq!(st.error, Some(WebseedError::Status(404)));
    let until = now + Duration::from_mins(1);
    assert_eq!(st.state, SourceState::Disabled { until });
    assert_eq!(p.poll_timeout(), Some(until));
    assert!(!p.wants_work());
    p.plan(&mut pieces);
    assert!(outputs(&mut p).is_empty());
    // Stale data and failures of the old request change nothing.
    p.handle_data(now, &mut pieces, r.id, Bytes::from(vec![0u8; 5]));
    assert_eq!(outputs(&mut p), [Output::Discarded { bytes: 5 }]);
    p.handle_failure(now, &mut pieces, r.id, WebseedError::Timeout);
    assert_eq!(p.statuses()[0].error, Some(WebseedError::Status(404)));
    p.handle_timeout(until);
    assert_eq!(p.poll_timeout(), None);
    p.plan(&mut pieces);
    assert_eq!(requests(&outputs(&mut p)).len(), 1);
    assert!(!pieces.held().is_empty());
}

#[test]
fn the_retry_interval_setting_is_honoured() {
    let i = info(16 * 1024, &[("f", 20 * 16 * KIB, false)], false);
    let mut pieces = Fake::new(&i);
    let config = WebseedConfig {
        retry_interval: Duration::from_secs(5),
        ..WebseedConfig::default()
    };
    let mut p = planner(&["http://h/f"], &i, config);
    p.plan(&mut pieces);
    let r = requests(&outputs(&mut p)).remove(0);
    p.handle_failure(Instant::ZERO, &mut pieces, r.id, WebseedError::Closed);
    assert_eq!(
        p.poll_timeout(),
        Some(Instant::ZERO + Duration::from_secs(5))
    );
}

#[test]
fn a_banned_source_is_never_used_again() {
    let i = info(16 * 1024, &[("f", 20 * 16 * KIB, false)], false);
    let mut pieces = Fake::new(&i);
    let mut p = planner(&["http://h/f"], &i, WebseedConfig::default());
    p.plan(&mut pieces);
    let r = requests(&outputs(&mut p)).remove(0);
    p.ban(&mut pieces, SourceId(0));
    assert_eq!(
        outputs(&mut p),
        [Output::Cancel {
            source: SourceId(0),
            request: r.id
        }]
    );
    assert!(pieces.held().is_empty());
    assert_eq!(p.statuses()[0].state, SourceState::Banned);
    assert_eq!(p.statuses()[0].error, Some(WebseedError::CorruptData));
    p.handle_timeout(Instant::ZERO + Duration::from_hours(1));
    p.plan(&mut pieces);
    assert!(outputs(&mut p).is_empty());
}

#[test]
fn at_most_max_downloads_sources_run_and_idle_ones_steal_the_back_half() {
    // 4 pieces: ranges of one piece each; three sources, two slots.
    let i = info(16 * 1024, &[("f", 4 * 16 * KIB, false)], false);
    let mut pieces = Fake::new(&i);
    pieces.sequential = true;
    let config = WebseedConfig {
        max_downloads: 2,
        ..WebseedConfig::default()
    };
    let mut p = planner(&["http://a/f", "http://b/f", "http://c/f"], &i, config);
    p.plan(&mut pieces);
    let reqs = requests(&outputs(&mut p));
    assert_eq!(reqs.len(), 2);
    assert_eq!(p.active(), 2);
    assert_eq!(pieces.held(), [0, 1]);

    // One big gap, two sources: the second steals the back half of the first's range.
    let i = info(16 * 1024, &[("f", 10 * 16 * KIB, false)], false);
    let mut pieces = Fake::new(&i);
    pieces.claimed = vec![true; 10];
    for k in 2..8 {
        pieces.claimed[k] = false;
    }
    pieces.sequential = true;
    let mut p = planner(&["http://a/f", "http://b/f"], &i, WebseedConfig::default());
    p.plan(&mut pieces);
    let reqs = requests(&outputs(&mut p));
    // Ranges are at most max(1, 10 / 20) = 1 piece.
    assert_eq!(reqs.len(), 2);
    let st = p.statuses();
    assert_eq!(st[0].range, Some(2..3));
    assert_eq!(st[1].range, Some(3..4));

    let i = info(16 * 1024, &[("f", 100 * 16 * KIB, false)], false);
    let mut pieces = Fake::new(&i);
    pieces.claimed = vec![true; 100];
    for k in 10..15 {
        pieces.claimed[k] = false;
    }
    let mut p = planner(&["http://a/f", "http://b/f"], &i, WebseedConfig::default());
    p.plan(&mut pieces);
    let reqs = requests(&outputs(&mut p));
    assert_eq!(reqs.len(), 2);
    let st = p.statuses();
    // a held 10..15 (current 10); b takes [(10 + 15 + 1) / 2, 15) = 13..15.
    assert_eq!(st[0].range, Some(10..13));
    assert_eq!(st[1].range, Some(13..15));
    assert_eq!(pieces.held(), (10..15).collect::<Vec<_>>());
    // a's request still covers 10..15; it is cancelled once 10..13 arrived.
    let a = &reqs[0];
    assert_eq!((a.file_offset, a.length), (10 * 16 * KIB, 5 * 16 * KIB));
    let b = &reqs[1];
    assert_eq!((b.file_offset, b.length), (13 * 16 * KIB, 2 * 16 * KIB));
    let data = data_of(&i);
    p.handle_data(
        Instant::ZERO,
        &mut pieces,
        a.id,
        body(&i, &data, a).slice(..(3 * 16 * KIB + 100) as usize),
    );
    let out = outputs(&mut p);
    assert_eq!(
        out.iter()
            .filter(|o| matches!(o, Output::Block { .. }))
            .count(),
        3
    );
    assert!(out.contains(&Output::Cancel {
        source: SourceId(0),
        request: a.id
    }));
    assert!(out.contains(&Output::Discarded { bytes: 100 }));
    assert_eq!(pieces.held(), [13, 14]);
}

#[test]
fn peers_steal_the_tail_of_a_range() {
    let i = info(16 * 1024, &[("f", 100 * 16 * KIB, false)], false);
    let mut pieces = Fake::new(&i);
    pieces.sequential = true;
    let mut p = planner(&["http://a/f"], &i, WebseedConfig::default());
    p.plan(&mut pieces);
    let _ = outputs(&mut p);
    assert_eq!(p.statuses()[0].range, Some(0..5));
    // The peer has only even pieces: it gets piece 4, and the range ends there.
    assert_eq!(p.steal_for_peer(&mut pieces, |_, i| i % 2 == 0), Some(4));
    assert_eq!(p.statuses()[0].range, Some(0..4));
    assert_eq!(pieces.held(), [0, 1, 2, 3]);
    assert_eq!(p.steal_for_peer(&mut pieces, |_, i| i == 3), Some(3));
    // The current piece is never stolen.
    assert_eq!(p.steal_for_peer(&mut pieces, |_, i| i == 0), None);
    assert_eq!(p.steal_for_peer(&mut pieces, |_, _| true), Some(2));
    assert_eq!(p.steal_for_peer(&mut pieces, |_, _| true), Some(1));
    assert_eq!(p.steal_for_peer(&mut pieces, |_, _| true), None);
    assert_eq!(pieces.held(), [0]);
}

#[test]
fn stop_all_cancels_and_releases() {
    let i = info(16 * 1024, &[("f", 100 * 16 * KIB, false)], false);
    let mut pieces = Fake::new(&i);
    let mut p = planner(&["http://a/f", "http://b/f"], &i, WebseedConfig::default());
    p.plan(&mut pieces);
    let reqs = requests(&outputs(&mut p));
    assert_eq!(reqs.len(), 2);
    p.stop_all(&mut pieces);
    let out = outputs(&mut p);
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|o| matches!(o, Output::Cancel { .. })));
    assert!(pieces.held().is_empty());
    assert_eq!(p.active(), 0);
}

#[test]
fn the_largest_gaps_are_taken_at_random_and_sequential_takes_the_lowest() {
    let i = info(16 * 1024, &[("f", 200 * 16 * KIB, false)], false);
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..20 {
        let mut pieces = Fake::new(&i);
        let urls = vec!["http://a/f".to_owned()];
        let mut p = Planner::new(
            &urls,
            WebseedConfig::default(),
            Seed::from_u64(seed),
            Instant::ZERO,
        );
        p.set_info(&i);
        p.plan(&mut pieces);
        let r = p.statuses()[0].range.clone().unwrap();
        assert_eq!(r.len(), 10);
        seen.insert(r.start);
    }
    assert!(seen.len() > 3, "random among the largest: {seen:?}");
    let mut pieces = Fake::new(&i);
    pieces.sequential = true;
    pieces.claimed[0] = true;
    let mut p = planner(&["http://a/f"], &i, WebseedConfig::default());
    p.plan(&mut pieces);
    assert_eq!(p.statuses()[0].range, Some(1..11));
}

#[test]
fn nothing_is_planned_without_metadata() {
    let i = info(16 * 1024, &[("f", 10 * 16 * KIB, false)], false);
    let mut pieces = Fake::new(&i);
    let urls = vec!["http://a/f".to_owned()];
    let mut p = Planner::new(
        &urls,
        WebseedConfig::default(),
        Seed::from_u64(1),
        Instant::ZERO,
    );
    assert!(!p.wants_work());
    p.plan(&mut pieces);
    assert!(outputs(&mut p).is_empty());
}

// ---------------------------------------------------------------- properties

/// A random geometry: piece length, `(length, padding)` files.
fn geometry() -> impl Strategy<Value = (u32, Vec<(u64, bool)>)> {
    (
        prop::sample::select(vec![16 * 1024u32, 32 * 1024, 48 * 1024]),
        prop::collection::vec((0u64..120_000, any::<bool>()), 1..6),
    )
        .prop_map(|(pl, files)| {
            let mut out: Vec<(u64, bool)> = Vec::new();
            let mut offset = 0u64;
            for (k, (len, pad)) in files.into_iter().enumerate() {
                // Padding aligns to the next piece boundary, never first or last.
                if pad && k > 0 && !offset.is_multiple_of(u64::from(pl)) {
                    let p = u64::from(pl) - offset % u64::from(pl);
                    out.push((p, true));
                    offset += p;
                }
                out.push((len, false));
                offset += len;
            }
            if offset == 0 {
                out.push((1, false));
            }
            (pl, out)
        })
}

fn info_of(pl: u32, files: &[(u64, bool)]) -> Info {
    let named: Vec<(String, u64, bool)> = files
        .iter()
        .enumerate()
        .map(|(k, &(l, p))| (format!("f{k}"), l, p))
        .collect();
    let refs: Vec<(&str, u64, bool)> = named.iter().map(|(n, l, p)| (n.as_str(), *l, *p)).collect();
    info(pl, &refs, true)
}

/// What the test driver does next.
#[derive(Debug, Clone)]
enum Step {
    /// Deliver up to this many bytes to the `k`-th running request.
    Data(usize, usize),
    /// Fail the `k`-th running request.
    Fail(usize),
    /// A peer with every piece steals.
    PeerSteal,
    /// Plan.
    Plan,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0usize..4, 1usize..70_000).prop_map(|(k, n)| Step::Data(k, n)),
        1 => (0usize..4).prop_map(Step::Fail),
        1 => Just(Step::PeerSteal),
        2 => Just(Step::Plan),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// File ranges cover exactly the non-padding bytes of a piece range, in order.
    #[test]
    fn file_ranges_cover_the_range_minus_padding(
        (pl, files) in geometry(),
        a in 0u32..64,
        len in 1u32..64,
    ) {
        let i = info_of(pl, &files);
        let l = Layout::from_info(&i);
        let n = l.piece_count();
        let a = a % n;
        let b = (a + len).min(n);
        let r = byte_range(&l, &(a..b));
        let mut want: Vec<u64> = Vec::new();
        for f in &i.files {
            if !f.padding {
                want.extend((f.offset..f.offset + f.length).filter(|o| r.contains(o)));
            }
        }
        let mut got: Vec<u64> = Vec::new();
        for (file, off, len) in file_ranges(&l, a..b) {
            prop_assert!(len > 0);
            prop_assert!(!i.files[file].padding);
            prop_assert!(off + len <= i.files[file].length);
            let at = i.files[file].offset + off;
            got.extend(at..at + len);
        }
        prop_assert_eq!(got, want);
    }

    /// Whatever the order of data, failures and steals: ranges never overlap each other nor
    /// claimed pieces, the picker's holds match the ranges, and every block delivered is a
    /// block of the torrent with its exact bytes, each at most once per source range.
    #[test]
    fn ranges_never_overlap_and_blocks_are_exact(
        (pl, files) in geometry(),
        claimed in prop::collection::vec(any::<bool>(), 64),
        nsources in 1usize..4,
        seed in any::<u64>(),
        steps in prop::collection::vec(step(), 1..80),
    ) {
        let i = info_of(pl, &files);
        let data = data_of(&i);
        let mut pieces = Fake::new(&i);
        let n = pieces.layout.piece_count() as usize;
        for k in 0..n {
            pieces.claimed[k] = claimed[k % claimed.len()];
        }
        let initially_claimed = pieces.claimed.clone();
        let urls: Vec<String> = (0..nsources).map(|k| format!("http://s{k}/")).collect();
        let mut p = Planner::new(&urls, WebseedConfig::default(), Seed::from_u64(seed), Instant::ZERO);
        p.set_info(&i);
        // Running requests and how much of each was delivered.
        let mut running: Vec<(WebseedRequest, u64)> = Vec::new();
        let mut now = Instant::ZERO;
        p.plan(&mut pieces);
        for s in steps {
            match s {
                Step::Data(k, size) if !running.is_empty() => {
                    let k = k % running.len();
                    let (r, done) = running[k].clone();
                    let left = r.length - done;
                    let size = (size as u64).min(left);
                    let all = body(&i, &data, &r);
                    let chunk = all.slice(done as usize..(done + size) as usize);
                    running[k].1 += size;
                    if running[k].1 == r.length {
                        running.remove(k);
                    }
                    p.handle_data(now, &mut pieces, r.id, chunk);
                }
                Step::Fail(k) if !running.is_empty() => {
                    let (r, _) = running.remove(k % running.len());
                    p.handle_failure(now, &mut pieces, r.id, WebseedError::Closed);
                }
                Step::PeerSteal => {
                    let _ = p.steal_for_peer(&mut pieces, |_, _| true);
                }
                _ => {
                    now = now + Duration::from_mins(2);
                    p.handle_timeout(now);
                    p.plan(&mut pieces);
                }
            }
            while let Some(o) = p.poll_output() {
                match o {
                    Output::Request(r) => {
                        prop_assert!(r.length > 0);
                        prop_assert!(!i.files[r.file].padding);
                        prop_assert!(r.file_offset + r.length <= i.files[r.file].length);
                        running.push((r, 0));
                    }
                    Output::Cancel { request, .. } => {
                        running.retain(|(r, _)| r.id != request);
                    }
                    Output::Block { block, data: d, .. } => {
                        let l = &pieces.layout;
                        prop_assert_eq!(l.block_index(block).map(|b| l.block(block.piece, b)), Some(block));
                        let at = u64::from(block.piece) * u64::from(pl) + u64::from(block.begin);
                        prop_assert_eq!(&d[..], &data[at as usize..at as usize + block.length as usize]);
                        prop_assert!(!initially_claimed[block.piece as usize], "block of a claimed piece");
                    }
                    Output::Discarded { .. } => {}
                }
            }
            // Ranges are disjoint, within unclaimed pieces, and exactly what is held.
            let mut owner = vec![None; n];
            for st in p.statuses() {
                if let Some(r) = st.range {
                    for piece in r {
                        prop_assert!(owner[piece as usize].is_none(), "overlap at {}", piece);
                        prop_assert!(!initially_claimed[piece as usize]);
                        owner[piece as usize] = Some(st.id);
                    }
                }
            }
            for (k, o) in owner.iter().enumerate() {
                prop_assert_eq!(o.is_some(), pieces.reserved[k], "held {}", k);
            }
            prop_assert!(p.active() <= WebseedConfig::default().max_downloads);
        }
    }
}

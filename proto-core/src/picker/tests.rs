//! Behaviour tests and the proptest invariant suite of the picker.

use super::*;
use proptest::prelude::*;

const KIB: u32 = 1024;

fn single(pieces: u32, piece_len: u32) -> Layout {
    let total = u64::from(pieces) * u64::from(piece_len);
    Layout::new(piece_len, total, &[(0, total, false)])
}

fn cfg(random_first: u32) -> PickerConfig {
    PickerConfig {
        random_first_pieces: random_first,
        ..PickerConfig::default()
    }
}

fn bits(len: u32, ones: &[u32]) -> Bitfield {
    let mut b = Bitfield::new(len);
    for &i in ones {
        b.set(i);
    }
    b
}

fn pick(p: &mut Picker, peer: u32, max: usize) -> Vec<Block> {
    let mut out = Vec::new();
    p.pick(PeerKey(peer), max, &[], false, &mut out);
    p.check_invariants();
    out
}

fn pieces(blocks: &[Block]) -> Vec<u32> {
    let mut v: Vec<u32> = blocks.iter().map(|b| b.piece).collect();
    v.dedup();
    v
}

#[test]
fn rarest_first() {
    let mut p = Picker::new(single(4, 32 * KIB), cfg(0), Seed::from_u64(1));
    for (k, have) in [(0, vec![0, 1, 2, 3]), (1, vec![0, 1, 2]), (2, vec![0, 1])] {
        p.peer_added(PeerKey(k)).unwrap();
        p.peer_bitfield(PeerKey(k), &bits(4, &have));
    }
    assert_eq!(p.availability(3), 1);
    assert_eq!(p.availability(0), 3);
    assert_eq!(pieces(&pick(&mut p, 0, 2)), [3]);
    assert_eq!(pieces(&pick(&mut p, 0, 2)), [2]);
    let next = pieces(&pick(&mut p, 0, 4));
    assert_eq!(next.len(), 2);
    assert!(next.contains(&0) && next.contains(&1));
}

#[test]
fn webseed_reserved_pieces_are_never_picked() {
    let mut p = Picker::new(single(4, 32 * KIB), cfg(0), Seed::from_u64(1));
    p.peer_added(PeerKey(0)).unwrap();
    p.peer_have_all(PeerKey(0));
    for i in [0, 1, 2] {
        p.set_reserved(i, true);
        assert_eq!(p.piece_state(i), PieceState::Reserved);
        assert!(!p.is_unclaimed(i));
    }
    p.check_invariants();
    assert_eq!(pieces(&pick(&mut p, 0, 100)), [3]);
    // Endgame duplicates only what peers fetch, never held pieces.
    p.peer_added(PeerKey(1)).unwrap();
    p.peer_have_all(PeerKey(1));
    assert_eq!(pieces(&pick(&mut p, 1, 100)), [3]);
    // Blocks of a held piece are still accepted; the last one makes it pending.
    let b0 = p.layout().block(0, 0);
    assert_eq!(p.block_received(PeerKey(9), b0).received, Received::New);
    assert_eq!(p.piece_state(0), PieceState::Reserved);
    // Released with a block in: open and unclaimed (nobody requested the rest).
    p.set_reserved(0, false);
    assert_eq!(p.piece_state(0), PieceState::Open);
    assert!(p.is_unclaimed(0));
    p.check_invariants();
    assert_eq!(pick(&mut p, 0, 100), [p.layout().block(0, 1)]);
    assert!(!p.is_unclaimed(0), "a peer requested a block of it");
    let out = p.block_received(PeerKey(9), p.layout().block(1, 0));
    assert_eq!(out.received, Received::New);
    let out = p.block_received(PeerKey(9), p.layout().block(1, 1));
    assert!(out.piece_complete);
    assert_eq!(p.piece_state(1), PieceState::Pending);
    p.check_invariants();
}

#[test]
fn ties_are_broken_by_the_seed() {
    let first = |seed| {
        let mut p = Picker::new(single(64, 16 * KIB), cfg(0), Seed::from_u64(seed));
        p.peer_added(PeerKey(0)).unwrap();
        p.peer_have_all(PeerKey(0));
        pick(&mut p, 0, 1)[0].piece
    };
    assert_eq!(first(3), first(3), "deterministic for a seed");
    let distinct: BTreeSet<u32> = (0..16).map(first).collect();
    assert!(distinct.len() > 4, "ties are random: {distinct:?}");
}

#[test]
fn partial_pieces_first() {
    let mut p = Picker::new(single(8, 64 * KIB), cfg(0), Seed::from_u64(2));
    p.peer_added(PeerKey(0)).unwrap();
    p.peer_have_all(PeerKey(0));
    p.peer_added(PeerKey(1)).unwrap();
    p.peer_bitfield(PeerKey(1), &bits(8, &[0, 1, 2, 3, 4, 5, 6, 7]));
    let started = pick(&mut p, 0, 1);
    let piece = started[0].piece;
    assert_eq!(p.piece_state(piece), PieceState::Open);
    // Peer 1 has a rarer set of nothing special; it must finish the started piece first.
    let next = pick(&mut p, 1, 3);
    assert_eq!(pieces(&next), [piece]);
    assert_eq!(p.piece_state(piece), PieceState::Full);
}

#[test]
fn endgame_duplicates_and_cancels() {
    let mut p = Picker::new(single(1, 32 * KIB), cfg(0), Seed::from_u64(3));
    for k in 0..3 {
        p.peer_added(PeerKey(k)).unwrap();
        p.peer_have_all(PeerKey(k));
    }
    let a = pick(&mut p, 0, 10);
    assert_eq!(a.len(), 2);
    assert!(p.in_endgame());
    let b = pick(&mut p, 1, 10);
    assert_eq!(b, a, "endgame requests the same blocks again");
    assert_eq!(pick(&mut p, 1, 10), [], "never twice from one peer");
    let out = p.block_received(PeerKey(1), a[0]);
    assert_eq!(out.received, Received::New);
    assert_eq!(out.cancels, [(PeerKey(0), a[0])]);
    assert!(!out.piece_complete);
    let c = pick(&mut p, 2, 10);
    assert_eq!(c, [a[1]], "received blocks are not duplicated");
    let out = p.block_received(PeerKey(0), a[1]);
    assert!(out.piece_complete);
    let mut cancelled: Vec<PeerKey> = out.cancels.iter().map(|c| c.0).collect();
    cancelled.sort();
    assert_eq!(cancelled, [PeerKey(1), PeerKey(2)]);
    assert_eq!(p.outstanding(PeerKey(1)), 0);
    assert_eq!(
        p.block_received(PeerKey(1), a[1]).received,
        Received::Duplicate
    );
    assert!(p.piece_verified(0).is_empty());
    assert!(p.is_complete());
}

#[test]
fn a_peer_on_parole_downloads_whole_pieces_alone() {
    let mut p = Picker::new(single(4, 32 * KIB), cfg(0), Seed::from_u64(5));
    for k in 0..3 {
        p.peer_added(PeerKey(k)).unwrap();
        p.peer_have_all(PeerKey(k));
    }
    // Peer 0 starts a piece and leaves one block of it unrequested.
    let shared = pick(&mut p, 0, 1)[0].piece;
    p.set_parole(PeerKey(1), true);
    assert!(p.on_parole(PeerKey(1)));
    let alone = pick(&mut p, 1, 1);
    assert_ne!(alone[0].piece, shared, "parole never joins a started piece");
    // Peer 2 finishes the shared piece, then starts a new one: never the parolee's.
    let other = pick(&mut p, 2, 4);
    assert!(other.iter().all(|b| b.piece != alone[0].piece));
    assert!(other.iter().any(|b| b.piece == shared));
    // The parolee finishes its own piece first.
    assert_eq!(pieces(&pick(&mut p, 1, 1)), [alone[0].piece]);
    // Endgame: the parolee duplicates nothing and nobody duplicates its piece.
    let rest = pick(&mut p, 0, 10);
    assert!(p.in_endgame());
    assert!(rest.iter().all(|b| b.piece != alone[0].piece));
    assert_eq!(pick(&mut p, 1, 10), []);
    // Off parole, its piece is shared again.
    p.set_parole(PeerKey(1), false);
    assert!(
        pick(&mut p, 2, 10)
            .iter()
            .any(|b| b.piece == alone[0].piece)
    );
}

#[test]
fn a_failed_request_of_a_parolee_shares_its_piece() {
    let mut p = Picker::new(single(2, 32 * KIB), cfg(0), Seed::from_u64(6));
    for k in 0..2 {
        p.peer_added(PeerKey(k)).unwrap();
        p.peer_have_all(PeerKey(k));
    }
    p.set_parole(PeerKey(0), true);
    let a = pick(&mut p, 0, 2);
    assert_eq!(pieces(&a).len(), 1);
    p.block_received(PeerKey(0), a[0]);
    assert!(pick(&mut p, 1, 10).iter().all(|x| x.piece != a[0].piece));
    p.request_timed_out(PeerKey(0), a[1]);
    p.check_invariants();
    assert_eq!(
        pick(&mut p, 1, 10),
        [a[1]],
        "peer 1 takes over the stalled block"
    );
}

#[test]
fn a_parolee_with_nothing_requested_shares_its_piece() {
    let mut p = Picker::new(single(2, 32 * KIB), cfg(0), Seed::from_u64(7));
    for k in 0..2 {
        p.peer_added(PeerKey(k)).unwrap();
        p.peer_have_all(PeerKey(k));
    }
    p.set_parole(PeerKey(0), true);
    let a = pick(&mut p, 0, 1);
    p.block_received(PeerKey(0), a[0]);
    p.check_invariants();
    let b = pick(&mut p, 1, 10);
    assert!(b.iter().any(|x| x.piece == a[0].piece), "{b:?}");
}

#[test]
fn endgame_duplicate_limit() {
    let config = PickerConfig {
        endgame_max_duplicate_downloads: 2,
        ..cfg(0)
    };
    let mut p = Picker::new(single(1, 16 * KIB), config, Seed::from_u64(4));
    for k in 0..3 {
        p.peer_added(PeerKey(k)).unwrap();
        p.peer_have_all(PeerKey(k));
    }
    assert_eq!(pick(&mut p, 0, 5).len(), 1);
    assert_eq!(pick(&mut p, 1, 5).len(), 1);
    assert_eq!(pick(&mut p, 2, 5).len(), 0);
}

#[test]
fn failed_piece_is_missing_again_and_ends_endgame() {
    let mut p = Picker::new(single(2, 16 * KIB), cfg(0), Seed::from_u64(5));
    p.peer_added(PeerKey(0)).unwrap();
    p.peer_have_all(PeerKey(0));
    let got = pick(&mut p, 0, 2);
    assert_eq!(got.len(), 2);
    assert!(p.in_endgame());
    assert!(p.block_received(PeerKey(0), got[0]).piece_complete);
    let failed = got[0].piece;
    assert_eq!(p.piece_state(failed), PieceState::Pending);
    assert!(p.piece_failed(failed).is_empty());
    assert_eq!(p.piece_state(failed), PieceState::Queued);
    assert!(!p.in_endgame());
    assert_eq!(pick(&mut p, 0, 2), [got[0]]);
}

#[test]
fn sequential_order_and_file_edges() {
    let mut p = Picker::new(single(6, 16 * KIB), cfg(4), Seed::from_u64(6));
    p.set_sequential(true);
    p.peer_added(PeerKey(0)).unwrap();
    p.peer_have_all(PeerKey(0));
    let got: Vec<u32> = pick(&mut p, 0, 6).iter().map(|b| b.piece).collect();
    assert_eq!(got, [0, 1, 2, 3, 4, 5]);

    // Two files of 4 pieces each; edges first: 0, 3, 4, 7, then the middle.
    let t = 8 * 16 * 1024;
    let layout = Layout::new(16 * KIB, t, &[(0, t / 2, false), (t / 2, t / 2, false)]);
    let config = PickerConfig {
        sequential_file_edges_first: true,
        ..cfg(0)
    };
    let mut p = Picker::new(layout, config, Seed::from_u64(6));
    p.set_sequential(true);
    p.peer_added(PeerKey(0)).unwrap();
    p.peer_have_all(PeerKey(0));
    let got: Vec<u32> = pick(&mut p, 0, 8).iter().map(|b| b.piece).collect();
    assert_eq!(got, [0, 3, 4, 7, 1, 2, 5, 6]);
}

#[test]
fn allowed_fast_while_choked() {
    let mut p = Picker::new(single(10, 32 * KIB), cfg(0), Seed::from_u64(7));
    p.peer_added(PeerKey(0)).unwrap();
    p.peer_bitfield(PeerKey(0), &bits(10, &[2, 5, 7]));
    let mut out = Vec::new();
    assert_eq!(p.pick(PeerKey(0), 10, &[], true, &mut out), 0);
    assert_eq!(p.pick(PeerKey(0), 10, &[1, 5], true, &mut out), 2);
    assert_eq!(pieces(&out), [5], "only allowed-fast pieces the peer has");
    p.check_invariants();
    out.clear();
    p.pick(PeerKey(0), 10, &[1, 5], false, &mut out);
    assert!(out.iter().all(|b| b.piece == 2 || b.piece == 7));
    assert_eq!(out.len(), 4);
}

#[test]
fn padding_is_never_requested() {
    let kib = 1024u64;
    // a: 20 KiB, pad 12 KiB, b: 50 KiB, pad 14 KiB, c: 5 KiB.
    let files = [
        (0, 20 * kib, false),
        (20 * kib, 12 * kib, true),
        (32 * kib, 50 * kib, false),
        (82 * kib, 14 * kib, true),
        (96 * kib, 5 * kib, false),
    ];
    let layout = Layout::new(32 * KIB, 101 * kib, &files);
    let mut p = Picker::new(layout, cfg(0), Seed::from_u64(8));
    p.peer_added(PeerKey(0)).unwrap();
    p.peer_have_all(PeerKey(0));
    let got = pick(&mut p, 0, 100);
    let bytes: u64 = got.iter().map(|b| u64::from(b.length)).sum();
    assert_eq!(bytes, 75 * kib, "exactly the non-padding bytes");
    for b in &got {
        let s = u64::from(b.piece) * 32 * kib + u64::from(b.begin);
        let e = s + u64::from(b.length);
        for &(o, l, pad) in &files {
            assert!(!pad || e <= o || s >= o + l, "{b:?} overlaps padding");
        }
    }
}

#[test]
fn priorities_skip_and_high() {
    let t = 8 * 16 * 1024;
    let layout = Layout::new(16 * KIB, t, &[(0, t / 2, false), (t / 2, t / 2, false)]);
    let mut p = Picker::new(layout, cfg(0), Seed::from_u64(9));
    p.peer_added(PeerKey(0)).unwrap();
    p.peer_have_all(PeerKey(0));
    p.set_file_priority(0, FilePriority::Skip).unwrap();
    assert_eq!(
        p.set_file_priority(2, FilePriority::High),
        Err(PickerError::NoSuchFile(2))
    );
    let got = pick(&mut p, 0, 100);
    assert!(got.iter().all(|b| b.piece >= 4));
    assert_eq!(got.len(), 4);
    assert!(p.in_endgame());

    let layout = Layout::new(16 * KIB, t, &[(0, t / 2, false), (t / 2, t / 2, false)]);
    let mut p = Picker::new(layout, cfg(0), Seed::from_u64(9));
    p.peer_added(PeerKey(0)).unwrap();
    p.peer_have_all(PeerKey(0));
    p.set_file_priority(1, FilePriority::High).unwrap();
    let got = pieces(&pick(&mut p, 0, 4));
    assert!(got.iter().all(|&i| i >= 4), "high before normal: {got:?}");
}

#[test]
fn shared_piece_of_skipped_file_is_still_wanted() {
    // Files of 24 KiB and 40 KiB over 16 KiB pieces: piece 1 holds both.
    let layout = Layout::new(
        16 * KIB,
        64 * 1024,
        &[(0, 24 * 1024, false), (24 * 1024, 40 * 1024, false)],
    );
    let mut p = Picker::new(layout, cfg(0), Seed::from_u64(10));
    p.set_file_priority(0, FilePriority::Skip).unwrap();
    assert_eq!(p.piece_priority(0), FilePriority::Skip);
    assert_eq!(p.piece_priority(1), FilePriority::Normal);
    assert_eq!(p.piece_state(0), PieceState::Idle);
    p.set_file_priority(0, FilePriority::Normal).unwrap();
    assert_eq!(p.piece_state(0), PieceState::Queued);
}

#[test]
fn removed_peer_releases_its_requests() {
    let mut p = Picker::new(single(1, 64 * KIB), cfg(0), Seed::from_u64(11));
    for k in 0..2 {
        p.peer_added(PeerKey(k)).unwrap();
        p.peer_have_all(PeerKey(k));
    }
    let a = pick(&mut p, 0, 4);
    p.block_received(PeerKey(0), a[0]);
    p.request_rejected(PeerKey(0), a[1]);
    p.peer_removed(PeerKey(0));
    p.check_invariants();
    assert_eq!(p.availability(0), 1);
    let b = pick(&mut p, 1, 4);
    assert_eq!(b, a[1..].to_vec());
    assert!(!p.in_endgame() || b.len() == 3);
}

#[test]
fn peer_limits() {
    let config = PickerConfig {
        max_peers: 1,
        max_requests_per_peer: 3,
        ..cfg(0)
    };
    let mut p = Picker::new(single(4, 64 * KIB), config, Seed::from_u64(12));
    p.peer_added(PeerKey(0)).unwrap();
    assert_eq!(
        p.peer_added(PeerKey(0)),
        Err(PickerError::DuplicatePeer(PeerKey(0)))
    );
    assert_eq!(p.peer_added(PeerKey(1)), Err(PickerError::TooManyPeers(1)));
    p.peer_have_all(PeerKey(0));
    assert_eq!(pick(&mut p, 0, 100).len(), 3);
    assert_eq!(pick(&mut p, 0, 100).len(), 0);
}

#[test]
fn invalid_blocks_are_reported() {
    let mut p = Picker::new(single(2, 32 * KIB), cfg(0), Seed::from_u64(13));
    let bad = Block {
        piece: 0,
        begin: 1,
        length: 16 * KIB,
    };
    assert_eq!(
        p.block_received(PeerKey(9), bad).received,
        Received::Invalid
    );
    let unrequested = Block {
        piece: 1,
        begin: 16 * KIB,
        length: 16 * KIB,
    };
    assert_eq!(
        p.block_received(PeerKey(9), unrequested).received,
        Received::New
    );
    assert_eq!(p.piece_state(1), PieceState::Open);
    p.check_invariants();
}

#[test]
fn random_first_pieces_are_not_always_rarest() {
    let first = |seed| {
        let mut p = Picker::new(single(64, 16 * KIB), cfg(4), Seed::from_u64(seed));
        p.peer_added(PeerKey(0)).unwrap();
        p.peer_added(PeerKey(1)).unwrap();
        p.peer_bitfield(PeerKey(0), &Bitfield::full(64));
        p.peer_bitfield(PeerKey(1), &bits(64, &(1..64).collect::<Vec<_>>()));
        pick(&mut p, 1, 1)[0].piece
    };
    // Piece 0 is the rarest; random-first ignores that.
    let firsts: BTreeSet<u32> = (0..8).map(first).collect();
    assert!(firsts.len() > 1);
}

// ---- proptest ----

#[derive(Debug, Clone)]
enum Op {
    Add(u32),
    Remove(u32),
    Have(u32, u32),
    Bits(u32, Vec<bool>),
    HaveAll(u32),
    HaveNone(u32),
    Pick(u32, usize, bool, Vec<u32>),
    Receive(u32, usize),
    ReceiveAny(u32, u32, u32),
    Reject(u32, usize),
    Timeout(u32, usize),
    Verify(usize),
    Fail(usize),
    Prio(usize, u8),
    Sequential(bool),
    Parole(u32, bool),
}

fn op() -> impl Strategy<Value = Op> {
    let peer = 0u32..4;
    prop_oneof![
        2 => peer.clone().prop_map(Op::Add),
        1 => peer.clone().prop_map(Op::Remove),
        3 => (peer.clone(), 0u32..64).prop_map(|(k, i)| Op::Have(k, i)),
        2 => (peer.clone(), proptest::collection::vec(any::<bool>(), 64)).prop_map(|(k, b)| Op::Bits(k, b)),
        2 => peer.clone().prop_map(Op::HaveAll),
        1 => peer.clone().prop_map(Op::HaveNone),
        10 => (peer.clone(), 0usize..12, proptest::bool::weighted(0.2), proptest::collection::vec(0u32..64, 0..4))
            .prop_map(|(k, n, c, af)| Op::Pick(k, n, c, af)),
        5 => (peer.clone(), any::<usize>()).prop_map(|(k, i)| Op::Receive(k, i)),
        1 => (peer.clone(), 0u32..64, 0u32..5).prop_map(|(k, i, b)| Op::ReceiveAny(k, i, b)),
        1 => (peer.clone(), any::<usize>()).prop_map(|(k, i)| Op::Reject(k, i)),
        1 => (peer.clone(), any::<usize>()).prop_map(|(k, i)| Op::Timeout(k, i)),
        2 => any::<usize>().prop_map(Op::Verify),
        1 => any::<usize>().prop_map(Op::Fail),
        1 => (0usize..6, 0u8..3).prop_map(|(f, p)| Op::Prio(f, p)),
        1 => any::<bool>().prop_map(Op::Sequential),
        1 => (peer.clone(), any::<bool>()).prop_map(|(k, on)| Op::Parole(k, on)),
    ]
}

/// A random layout: 1–4 files, each optionally followed by a pad file to the next piece
/// boundary; at most 64 pieces.
fn layout() -> impl Strategy<Value = (u32, Vec<(u64, u64, bool)>)> {
    (
        prop_oneof![Just(16 * KIB), Just(32 * KIB), Just(48 * KIB)],
        proptest::collection::vec((1u64..300_000, any::<bool>()), 1..5),
    )
        .prop_map(|(pl, specs)| {
            let mut files = Vec::new();
            let mut at = 0u64;
            let n = specs.len();
            for (k, (len, pad)) in specs.into_iter().enumerate() {
                files.push((at, len, false));
                at += len;
                let rem = at % u64::from(pl);
                if pad && rem != 0 && k + 1 < n {
                    let l = u64::from(pl) - rem;
                    files.push((at, l, true));
                    at += l;
                }
            }
            (pl, files)
        })
        .prop_filter("at most 64 pieces", |(pl, files)| {
            let total: u64 = files.iter().map(|f| f.1).sum();
            total.div_ceil(u64::from(*pl)) <= 64
        })
}

/// Whether the piece is wanted according to the file priorities (the model of the rule).
fn model_wanted(
    layout: &Layout,
    files: &[(u64, u64, bool)],
    prio: &[FilePriority],
    i: u32,
) -> bool {
    let s = u64::from(i) * u64::from(layout.piece_length());
    let e = s + u64::from(layout.piece_len(i));
    files
        .iter()
        .zip(prio)
        .any(|(&(o, l, pad), &p)| !pad && l > 0 && o < e && o + l > s && p != FilePriority::Skip)
}

proptest! {
    #[test]
    fn invariants_hold(
        (pl, files) in layout(),
        seed in any::<u64>(),
        initial in proptest::collection::vec(proptest::collection::vec(proptest::bool::weighted(0.7), 64), 0..4),
        ops in proptest::collection::vec(op(), 1..150),
    ) {
        let total: u64 = files.iter().map(|f| f.1).sum();
        let lay = Layout::new(pl, total, &files);
        let n = lay.piece_count();
        let mut p = Picker::new(lay.clone(), cfg(2), Seed::from_u64(seed));
        let mut prio = vec![FilePriority::Normal; files.len()];
        let mut pending: Vec<u32> = Vec::new();
        for (k, b) in initial.iter().enumerate() {
            p.peer_added(PeerKey(k as u32)).unwrap();
            let bf = bits(n, &(0..n).filter(|&i| b[i as usize]).collect::<Vec<_>>());
            p.peer_bitfield(PeerKey(k as u32), &bf);
        }
        for op in ops {
            match op {
                Op::Add(k) => { let _ = p.peer_added(PeerKey(k)); }
                Op::Remove(k) => p.peer_removed(PeerKey(k)),
                Op::Have(k, i) => p.peer_has(PeerKey(k), i % n),
                Op::Bits(k, b) => {
                    let bf = bits(n, &(0..n).filter(|&i| b[i as usize]).collect::<Vec<_>>());
                    p.peer_bitfield(PeerKey(k), &bf);
                }
                Op::HaveAll(k) => p.peer_have_all(PeerKey(k)),
                Op::HaveNone(k) => p.peer_have_none(PeerKey(k)),
                Op::Pick(k, max, choked, af) => {
                    let af: Vec<u32> = af.into_iter().map(|i| i % n).collect();
                    let before: Vec<Block> = p.requests_of(PeerKey(k)).collect();
                    let mut out = Vec::new();
                    let added = p.pick(PeerKey(k), max, &af, choked, &mut out);
                    prop_assert_eq!(added, out.len());
                    prop_assert!(out.len() <= max);
                    let mut seen = BTreeSet::new();
                    for b in &out {
                        prop_assert!(seen.insert(*b), "block twice in one pick");
                        prop_assert!(!before.contains(b), "block requested twice from one peer");
                        prop_assert!(p.peer_has_piece(PeerKey(k), b.piece), "peer lacks piece");
                        prop_assert!(!p.have().get(b.piece), "piece we have");
                        prop_assert!(model_wanted(&lay, &files, &prio, b.piece), "skipped piece picked");
                        if choked {
                            prop_assert!(af.contains(&b.piece), "choked pick outside allowed-fast");
                        }
                        let others = p.requesters(*b);
                        prop_assert!(others.contains(&PeerKey(k)));
                        if others.len() > 1 {
                            prop_assert!(p.in_endgame(), "duplicate request outside endgame");
                        }
                        let s = u64::from(b.piece) * u64::from(pl) + u64::from(b.begin);
                        let e = s + u64::from(b.length);
                        prop_assert!(b.length > 0 && b.length <= BLOCK_LEN);
                        for &(o, l, pad) in &files {
                            prop_assert!(!pad || e <= o || s >= o + l, "padding requested");
                        }
                    }
                }
                Op::Receive(k, idx) => {
                    let reqs: Vec<Block> = p.requests_of(PeerKey(k)).collect();
                    if !reqs.is_empty() {
                        let b = reqs[idx % reqs.len()];
                        let others = p.requesters(b);
                        let out = p.block_received(PeerKey(k), b);
                        prop_assert_eq!(out.received, Received::New);
                        prop_assert_eq!(out.cancels.len(), others.len() - 1);
                        prop_assert!(p.requesters(b).is_empty());
                        if out.piece_complete {
                            prop_assert_eq!(p.piece_state(b.piece), PieceState::Pending);
                            pending.push(b.piece);
                        }
                    }
                }
                Op::ReceiveAny(k, i, b) => {
                    let i = i % n;
                    let count = lay.block_count(i);
                    if count > 0 {
                        let blk = lay.block(i, b % count);
                        let out = p.block_received(PeerKey(k), blk);
                        prop_assert!(out.received != Received::Invalid);
                        if out.piece_complete {
                            pending.push(i);
                        }
                    }
                }
                Op::Reject(k, idx) | Op::Timeout(k, idx) => {
                    let reqs: Vec<Block> = p.requests_of(PeerKey(k)).collect();
                    if !reqs.is_empty() {
                        let b = reqs[idx % reqs.len()];
                        p.request_rejected(PeerKey(k), b);
                        prop_assert!(!p.requesters(b).contains(&PeerKey(k)));
                    }
                }
                Op::Verify(idx) => {
                    if !pending.is_empty() {
                        let i = pending.swap_remove(idx % pending.len());
                        if p.piece_state(i) == PieceState::Pending {
                            p.piece_verified(i);
                            prop_assert_eq!(p.piece_state(i), PieceState::Have);
                        }
                    }
                }
                Op::Fail(idx) => {
                    if !pending.is_empty() {
                        let i = pending.swap_remove(idx % pending.len());
                        if p.piece_state(i) == PieceState::Pending {
                            p.piece_failed(i);
                            prop_assert!(!p.have().get(i));
                            prop_assert!(p.requesters(lay.block(i, 0)).is_empty());
                        }
                    }
                }
                Op::Prio(f, pr) => {
                    let f = f % files.len();
                    let pr = [FilePriority::Skip, FilePriority::Normal, FilePriority::High][pr as usize];
                    p.set_file_priority(f, pr).unwrap();
                    prio[f] = pr;
                }
                Op::Sequential(on) => p.set_sequential(on),
                Op::Parole(k, on) => p.set_parole(PeerKey(k), on),
            }
            p.check_invariants();
            p.check_queues();
            for i in 0..n {
                let wanted = model_wanted(&lay, &files, &prio, i);
                prop_assert_eq!(p.piece_priority(i) != FilePriority::Skip, wanted);
            }
        }
    }
}

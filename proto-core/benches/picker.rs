//! Piece picker decisions per second on a 100 000-piece torrent (256 KiB pieces, 16 blocks
//! each) with 200 peers: 190 with random half-full bitfields and 10 seeds.
//!
//! - `pick+release`: one decision (a pick of a whole piece's 16 blocks for the next peer, round
//!   robin), then the requests time out, so the state stays steady while it is measured.
//! - `pick+receive+verify`: a download in progress: 1000 rounds of pick 16 blocks, receive
//!   them, verify the piece when complete.
//! - `have`: 1000 availability updates (`have` from one peer) and their undo (`have-none`).
//!
//! The last two are measured per 1000 operations.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rain_proto::bitfield::Bitfield;
use rain_proto::picker::{Layout, PeerKey, Picker, PickerConfig};
use rain_proto::rng::{Rng, Seed};

const PIECES: u32 = 100_000;
const PIECE_LEN: u32 = 256 * 1024;
const PEERS: u32 = 200;
const SEEDS: u32 = 10;

fn swarm() -> Picker {
    let total = u64::from(PIECES) * u64::from(PIECE_LEN);
    let layout = Layout::new(PIECE_LEN, total, &[(0, total, false)]);
    let mut picker = Picker::new(layout, PickerConfig::default(), Seed::from_u64(1));
    let mut rng = Rng::new(Seed::from_u64(2));
    for k in 0..PEERS {
        picker.peer_added(PeerKey(k)).unwrap();
        if k < SEEDS {
            picker.peer_have_all(PeerKey(k));
        } else {
            let mut b = Bitfield::new(PIECES);
            for i in 0..PIECES {
                if rng.next_u64() & 1 == 1 {
                    b.set(i);
                }
            }
            picker.peer_bitfield(PeerKey(k), &b);
        }
    }
    // Past the random-first phase.
    for i in 0..4 {
        picker.piece_verified(i);
    }
    picker
}

fn bench(c: &mut Criterion) {
    let base = swarm();
    let mut g = c.benchmark_group("picker 100k pieces, 200 peers");
    g.throughput(Throughput::Elements(1));

    g.bench_function("pick+release", |b| {
        let mut p = base.clone();
        let mut out = Vec::with_capacity(16);
        let mut peer = 0;
        b.iter(|| {
            out.clear();
            p.pick(PeerKey(peer), 16, &[], false, &mut out);
            for &blk in &out {
                p.request_timed_out(PeerKey(peer), blk);
            }
            peer = (peer + 1) % PEERS;
            black_box(out.len())
        });
    });

    g.finish();

    let mut g = c.benchmark_group("picker 100k pieces, 200 peers (x1000)");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("pick+receive+verify", |b| {
        b.iter_batched_ref(
            || (base.clone(), 0u32),
            |(p, peer)| {
                let mut out = Vec::with_capacity(16);
                for _ in 0..1000 {
                    out.clear();
                    p.pick(PeerKey(*peer), 16, &[], false, &mut out);
                    for &blk in &out {
                        if p.block_received(PeerKey(*peer), blk).piece_complete {
                            p.piece_verified(blk.piece);
                        }
                    }
                    *peer = (*peer + 1) % PEERS;
                }
                black_box(p.have().count())
            },
            BatchSize::LargeInput,
        );
    });
    g.bench_function("have (availability update)", |b| {
        let mut p = base.clone();
        p.peer_added(PeerKey(PEERS)).unwrap();
        let mut i = 0;
        b.iter(|| {
            for _ in 0..1000 {
                p.peer_has(PeerKey(PEERS), i);
                i = (i + 7919) % PIECES;
            }
            p.peer_have_none(PeerKey(PEERS));
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

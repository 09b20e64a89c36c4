//! Bencode decoding and metainfo parsing of a large torrent (50 000 pieces, 2 000 files).
//! Target: bencode decode at ≥ 1 GiB/s on one core.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rain_proto::bencode::{self, Limits};
use rain_proto::metainfo::{self, TorrentSpec};

fn large_torrent() -> Vec<u8> {
    let piece_length = 256 * 1024u32;
    let pieces = 50_000usize;
    let total = u64::from(piece_length) * pieces as u64;
    let files = 2_000u64;
    let per_file = total / files;
    let spec = TorrentSpec {
        name: "large".into(),
        piece_length,
        pieces: (0..pieces).map(|i| [(i % 251) as u8; 20]).collect(),
        files: Some(
            (0..files)
                .map(|i| {
                    let len = if i == files - 1 {
                        total - per_file * (files - 1)
                    } else {
                        per_file
                    };
                    (
                        vec![format!("dir{}", i / 100), format!("file number {i}.bin")],
                        len,
                    )
                })
                .collect(),
        ),
        trackers: vec![vec!["http://tracker.example/announce".into()]],
        ..TorrentSpec::default()
    };
    spec.to_bytes()
}

fn benches(c: &mut Criterion) {
    let data = large_torrent();
    let limits = metainfo::Limits {
        max_pieces: 100_000,
        ..metainfo::Limits::default()
    };
    let mut group = c.benchmark_group("large_torrent");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("bencode_decode", |b| {
        b.iter(|| bencode::decode(black_box(&data), &Limits::lenient()).unwrap());
    });
    group.bench_function("metainfo_parse", |b| {
        b.iter(|| metainfo::Metainfo::from_bytes(black_box(&data), &limits).unwrap());
    });
    group.finish();
}

criterion_group!(bench_group, benches);
criterion_main!(bench_group);

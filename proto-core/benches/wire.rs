//! Peer wire hot paths: decoding piece messages out of a receive buffer and the MSE RC4 cipher.
//! Target: message decode ≥ 2 GiB/s of piece payload on one core (payloads are `Bytes` slices,
//! so decoding costs per message, not per byte). RC4 throughput is reported.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rain_proto::Decode;
use rain_proto::InfoHash;
use rain_proto::mse::{Cipher, Role};
use rain_proto::wire::{Decoder, Message};

const BLOCK: usize = 16 * 1024;
const MESSAGES: usize = 256;

/// 256 piece messages of 16 KiB each, back to back (4 MiB), as a socket would deliver them.
fn piece_stream() -> Vec<u8> {
    let data = Bytes::from(vec![0xa5; BLOCK]);
    let mut out = Vec::with_capacity(MESSAGES * (BLOCK + 13));
    for i in 0..MESSAGES {
        Message::Piece {
            index: (i / 16) as u32,
            begin: ((i % 16) * BLOCK) as u32,
            data: data.clone(),
        }
        .encode(&mut out);
    }
    out
}

fn decode(c: &mut Criterion) {
    let stream = piece_stream();
    let decoder = Decoder::default();
    let mut group = c.benchmark_group("wire");
    group.throughput(Throughput::Bytes((MESSAGES * BLOCK) as u64));
    group.bench_function("decode_piece_16k", |b| {
        b.iter_batched(
            || BytesMut::from(&stream[..]),
            |mut buf| {
                let mut n = 0;
                while let Decode::Complete { value, .. } = decoder.decode(&mut buf) {
                    black_box(&value);
                    n += 1;
                }
                assert_eq!(n, MESSAGES);
                buf
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

fn rc4(c: &mut Criterion) {
    let mut group = c.benchmark_group("mse");
    let mut buf = vec![0u8; 1 << 20];
    group.throughput(Throughput::Bytes(buf.len() as u64));
    let mut cipher = Cipher::new(&[7; 96], &InfoHash([1; 20]), Role::Initiator);
    group.bench_function("rc4_1mib_in_place", |b| {
        b.iter(|| {
            cipher.encrypt(&mut buf);
            black_box(&buf);
        });
    });
    group.finish();
}

criterion_group!(benches, decode, rc4);
criterion_main!(benches);

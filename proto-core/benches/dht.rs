//! DHT benchmarks: KRPC decode and encode, routing-table inserts and closest-node lookups.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rain_proto::InfoHash;
use rain_proto::dht::NodeId;
use rain_proto::dht::krpc::{Body, CompactNode, Message, Query, Response, Want};
use rain_proto::dht::routing::{RoutingConfig, RoutingTable, Seen};
use rain_proto::rng::{Rng, Seed};
use rain_proto::time::Instant;

fn addr(i: u32) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), 6881)
}

fn messages() -> Vec<(&'static str, Vec<u8>)> {
    let mut rng = Rng::new(Seed::from_u64(1));
    let nodes: Vec<CompactNode> = (0..8)
        .map(|i| CompactNode {
            id: NodeId::random(&mut rng),
            addr: addr(i),
        })
        .collect();
    let response = Message {
        tid: b"ab".to_vec(),
        version: Some(b"RN\x00\x01".to_vec()),
        read_only: false,
        ip: Some(addr(99)),
        body: Body::Response(Response {
            id: NodeId::random(&mut rng),
            nodes,
            nodes6: Vec::new(),
            values: (100..150).map(addr).collect(),
            token: Some(b"12345678".to_vec()),
        }),
    };
    let query = Message {
        tid: b"ab".to_vec(),
        version: Some(b"RN\x00\x01".to_vec()),
        read_only: false,
        ip: None,
        body: Body::Query {
            id: NodeId::random(&mut rng),
            query: Query::GetPeers {
                info_hash: InfoHash([7; 20]),
            },
            want: Want::default(),
        },
    };
    vec![
        ("get_peers query", query.to_bytes()),
        ("response 8 nodes 50 values", response.to_bytes()),
    ]
}

fn krpc(c: &mut Criterion) {
    let mut g = c.benchmark_group("krpc");
    for (name, bytes) in messages() {
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("decode {name}"), |b| {
            b.iter(|| Message::decode(black_box(&bytes)).unwrap());
        });
        let m = Message::decode(&bytes).unwrap();
        g.bench_function(format!("encode {name}"), |b| {
            b.iter(|| black_box(&m).to_bytes());
        });
    }
    g.finish();
}

fn routing(c: &mut Criterion) {
    let mut rng = Rng::new(Seed::from_u64(2));
    let own = NodeId::random(&mut rng);
    let ids: Vec<NodeId> = (0..4096).map(|_| NodeId::random(&mut rng)).collect();
    let mut g = c.benchmark_group("routing");
    g.throughput(Throughput::Elements(ids.len() as u64));
    g.bench_function("insert 4096 nodes", |b| {
        b.iter(|| {
            let mut t = RoutingTable::new(own, RoutingConfig::default(), Instant::ZERO);
            for (i, id) in ids.iter().enumerate() {
                t.heard_from(Instant::ZERO, *id, addr(i as u32), Seen::Response);
            }
            t
        });
    });
    let mut full = RoutingTable::new(own, RoutingConfig::default(), Instant::ZERO);
    for (i, id) in ids.iter().enumerate() {
        full.heard_from(Instant::ZERO, *id, addr(i as u32), Seen::Response);
    }
    let targets: Vec<NodeId> = (0..64).map(|_| NodeId::random(&mut rng)).collect();
    g.throughput(Throughput::Elements(targets.len() as u64));
    g.bench_function(format!("closest 8 of {} nodes", full.len()), |b| {
        b.iter(|| {
            for t in &targets {
                black_box(full.closest(Instant::ZERO, t, 8));
            }
        });
    });
    g.finish();
}

criterion_group!(benches, krpc, routing);
criterion_main!(benches);

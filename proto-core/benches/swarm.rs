//! The pure swarm harness's throughput: simulated payload MiB per CPU second for one seeder
//! and four leechers on a 4 MiB torrent (unlimited bandwidth, 5 ms links). Everything but the
//! network is real: every block goes through the picker, pipelines, buffers, SHA-1 checks.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rain_proto::torrent::TorrentConfig;
use rain_proto::torrent::swarm::{NetConfig, NodeSpec, Role, Swarm, TestTorrent};

const LEN: u64 = 4 * 1024 * 1024;

fn swarm(c: &mut Criterion) {
    let tt = TestTorrent::generate(9, LEN, LEN, true);
    let payload = 4 * tt.data.len() as u64;
    let mut nodes = vec![NodeSpec::new(Role::Seeder)];
    nodes.extend((0..4).map(|_| NodeSpec::new(Role::Leecher)));
    let net = NetConfig {
        latency: Duration::from_millis(5),
        ..NetConfig::default()
    };
    let mut g = c.benchmark_group("swarm");
    g.throughput(Throughput::Bytes(payload));
    g.sample_size(10);
    g.bench_function("1_seeder_4_leechers_4MiB", |b| {
        b.iter(|| {
            let mut s = Swarm::new(
                1,
                tt.clone(),
                &nodes,
                &TorrentConfig::default(),
                net.clone(),
            );
            assert!(s.run_until(Swarm::all_complete));
            s.steps()
        });
    });
    g.finish();
}

criterion_group!(benches, swarm);
criterion_main!(benches);

//! Named swarm scenarios (issue #9): real rain sessions over turmoil's simulated network, each
//! checked for safety (every leecher's bytes equal the source, counters consistent at
//! completion) and liveness (every leecher completes within a simulated-time budget once the
//! faults stop). Each run prints its scenario, seed first; `RAIN_SIM_SEED=<seed>` replaces the
//! seed of every scenario here.

use std::time::Duration;

use rain_sim::{ContentSpec, Fault, HostId, Outcome, Scenario, run, seed_from_env};

/// Runs `s` and panics with the replayable error on failure.
fn run_ok(s: &Scenario) -> Outcome {
    let out = run(s).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "rain-sim: done in {:?} simulated, {} steps, trace {}",
        out.elapsed,
        out.steps,
        out.trace_hash()
    );
    out
}

/// The events of one host, in order.
fn events_of(out: &Outcome, host: HostId) -> Vec<(Duration, String)> {
    out.trace
        .iter()
        .filter(|e| e.host == host.name())
        .map(|e| (e.at, e.what.clone()))
        .collect()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn one_seeder_thirty_leechers_with_corrupt_peers() {
    let seed = seed_from_env(0x5eed_0001);
    // 31 honest sessions and 2 liars: about 5% of the swarm serves garbage.
    let s = Scenario::new(seed)
        .leechers(30)
        .corrupt_peers(2)
        .content(ContentSpec::random_between(seed, 512 << 10, 2 << 20, 3));
    let out = run_ok(&s);
    assert_eq!(out.completed.len(), 30, "every leecher completed");
    assert!(
        out.corrupt_blocks_served > 0,
        "the corrupt peers were asked for blocks, so the fault was real"
    );
    let wasted: u64 = out.reports.values().map(|r| r.wasted).sum();
    assert!(
        wasted > 0,
        "corrupt blocks were received and thrown away: {:?}",
        out.reports
    );
}

#[test]
fn seeder_crash_and_restart() {
    let seed = seed_from_env(0x5eed_0002);
    let restart = Duration::from_secs(5);
    let s = Scenario::new(seed)
        .leechers(4)
        .content(ContentSpec::random_between(seed, 3 << 20, 4 << 20, 4))
        .fault(Fault::Crash {
            host: HostId::Seeder(0),
            at: ms(60),
            restart: Some(restart),
        });
    let out = run_ok(&s);
    let seeder = events_of(&out, HostId::Seeder(0));
    assert!(
        seeder
            .iter()
            .any(|(at, w)| w == "start #2" && *at >= restart),
        "the seeder restarted: {seeder:?}"
    );
    assert!(
        seeder
            .iter()
            .any(|(at, w)| w == "completed" && *at >= restart),
        "the restarted seeder found its data complete again: {seeder:?}"
    );
    for (h, at) in &out.completed {
        assert!(
            *at > restart,
            "{h} completed at {at:?}, while the only seeder was down"
        );
    }
}

#[test]
fn leecher_crash_and_restart_from_resume_store() {
    let seed = seed_from_env(0x5eed_0003);
    let s = Scenario::new(seed)
        .leechers(3)
        .content(ContentSpec::random_between(seed, 2 << 20, 4 << 20, 3))
        .fault(Fault::Crash {
            host: HostId::Leecher(1),
            at: ms(80),
            restart: Some(ms(3000)),
        });
    let out = run_ok(&s);
    let l1 = events_of(&out, HostId::Leecher(1));
    assert!(
        l1.iter().any(|(_, w)| w == "start #2"),
        "leech1 restarted: {l1:?}"
    );
    assert!(out.completed[&HostId::Leecher(1)] >= ms(3000));
}

#[test]
fn partition_and_heal() {
    let seed = seed_from_env(0x5eed_0004);
    let heal = Duration::from_secs(15);
    let leechers: Vec<HostId> = (0..4).map(HostId::Leecher).collect();
    let s = Scenario::new(seed)
        .seeders(2)
        .leechers(4)
        .content(ContentSpec::random_between(seed, 3 << 20, 4 << 20, 2))
        .fault(Fault::Partition {
            a: vec![HostId::Seeder(0), HostId::Seeder(1)],
            b: leechers,
            from: ms(40),
            until: heal,
        });
    let out = run_ok(&s);
    for (h, at) in &out.completed {
        assert!(
            *at >= heal,
            "{h} completed at {at:?}, before the cut healed"
        );
    }
}

#[test]
fn magnet_only_leechers_get_metadata_from_peers() {
    let seed = seed_from_env(0x5eed_0005);
    let s = Scenario::new(seed)
        .leechers(5)
        .magnet_leechers(5)
        .content(ContentSpec::random_between(seed, 256 << 10, 1 << 20, 5));
    let out = run_ok(&s);
    for i in 0..5 {
        let ev = events_of(&out, HostId::Leecher(i));
        let meta = ev.iter().position(|(_, w)| w == "metadata");
        let done = ev.iter().position(|(_, w)| w == "completed");
        assert!(
            matches!((meta, done), (Some(m), Some(d)) if m < d),
            "leech{i} got the metadata from a peer before completing: {ev:?}"
        );
    }
}

#[test]
fn stalling_peers_do_not_block_completion() {
    let seed = seed_from_env(0x5eed_0006);
    let s = Scenario::new(seed)
        .leechers(4)
        .stall_peers(2)
        .content(ContentSpec::random_between(seed, 1 << 20, 2 << 20, 2))
        .budget(Duration::from_secs(180));
    let out = run_ok(&s);
    assert_eq!(out.completed.len(), 4);
}

/// Two peers flood every honest host with requests for random blocks, far past
/// `max-requests-in` (the payload has more distinct blocks than that bound); the request
/// queues stay bounded (the per-sample safety checks) and every leecher still completes.
#[test]
fn flooding_peers_are_bounded_and_do_not_block_completion() {
    let seed = seed_from_env(0x5eed_0009);
    let s = Scenario::new(seed)
        .leechers(3)
        .flood_peers(2)
        .content(ContentSpec::single(seed, 6 << 20, 64 << 10));
    let out = run_ok(&s);
    assert_eq!(out.completed.len(), 3);
    assert!(
        out.flood_requests_sent > 10_000,
        "the flood was real: {} requests",
        out.flood_requests_sent
    );
}

/// The only seeder has a 128 KiB/s uplink: the leechers complete, and not before the seeder
/// could have sent the payload once (so the limit was real).
#[test]
fn slow_seeder_uplink() {
    let seed = seed_from_env(0x5eed_000a);
    let rate = 128 * 1024;
    let size = 1 << 20;
    let mut s = Scenario::new(seed)
        .leechers(3)
        .content(ContentSpec::single(seed, size, 32 << 10));
    s.faults.push(Fault::Uplink {
        host: HostId::Seeder(0),
        bytes_per_sec: rate,
    });
    let out = run_ok(&s);
    assert_eq!(out.completed.len(), 3);
    let first = out.completed.values().min().copied().unwrap_or_default();
    // Less the burst the bucket starts with.
    let floor = Duration::from_secs_f64((size - 64 * 1024) as f64 / rate as f64);
    assert!(
        first >= floor,
        "first leecher done at {first:?}, before {floor:?}"
    );
}

#[test]
fn jittery_links_and_a_corrupt_peer_with_magnets() {
    let seed = seed_from_env(0x5eed_0007);
    let mut s = Scenario::new(seed)
        .seeders(2)
        .leechers(6)
        .magnet_leechers(3)
        .corrupt_peers(1)
        .content(ContentSpec::random_between(seed, 512 << 10, 2 << 20, 6));
    for i in 0..6 {
        s = s.fault(Fault::Link {
            a: HostId::Seeder(i % 2),
            b: HostId::Leecher(i),
            min: ms(20 + 10 * i as u64),
            max: ms(200),
        });
    }
    let out = run_ok(&s);
    assert_eq!(out.completed.len(), 6);
}

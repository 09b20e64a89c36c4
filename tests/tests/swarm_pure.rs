//! The pure harness runs the same [`Scenario`] values as the turmoil runs (issue #9): proto-core's
//! `Swarm` (and, with the DHT, its DHT network) where the clock jumps to the next deadline, for
//! swarms of hundreds of peers. Each run prints its scenario, seed first;
//! `RAIN_SIM_SEED=<seed>` replaces the seed of every scenario here.

use std::time::Duration;

use rain_sim::pure::{self, run_pure_dht};
use rain_sim::web::WebMode;
use rain_sim::{
    ContentSpec, Fault, HostId, PureError, PureReport, Scenario, Unsupported, run, seed_from_env,
};

/// Runs `s` in the pure harness and panics with the replayable error on failure.
fn pure_ok(s: &Scenario) -> PureReport {
    let r = s.run_pure().unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "rain-sim pure: done in {:?} simulated, {} steps, trace {}",
        r.elapsed, r.steps, r.trace_hash
    );
    r
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn two_hundred_leechers_and_corrupt_peers_complete_in_the_pure_harness() {
    let seed = seed_from_env(0x9075_0001);
    let mut s = Scenario::new(seed)
        .leechers(200)
        .magnet_leechers(10)
        .corrupt_peers(3)
        .stall_peers(1)
        .content(ContentSpec::random_between(seed, 512 << 10, 1 << 20, 4));
    s.leecher_links = 5;
    let r = pure_ok(&s);
    assert_eq!(r.completed.len(), 200, "every leecher completed");
    assert_eq!(r.verified, 200, "every leecher's bytes were checked");
    let corrupt: Vec<HostId> = (0..3).map(HostId::Corrupt).collect();
    let banned: Vec<HostId> = r.hosts.values().flat_map(|h| h.banned.clone()).collect();
    assert!(
        banned.iter().all(|b| corrupt.contains(b)),
        "only liars are banned: {banned:?}"
    );
    assert!(
        corrupt.iter().all(|c| banned.contains(c)),
        "every corrupt peer was banned by someone: {banned:?}"
    );
    let wasted: u64 = r.hosts.values().map(|h| h.wasted).sum();
    assert!(wasted > 0, "corrupt blocks were received and thrown away");
    // Leechers traded among themselves: the seeder did not upload everything alone.
    let seeder_up = r.hosts[&HostId::Seeder(0)].uploaded;
    let total = s.content.total_len();
    assert!(
        seeder_up < 200 * total / 2,
        "the seeder uploaded {seeder_up} of {}",
        200 * total
    );
}

#[test]
fn the_same_scenario_runs_under_turmoil_and_in_the_pure_harness() {
    let seed = seed_from_env(0x9075_0002);
    let s = Scenario::new(seed)
        .leechers(3)
        .magnet_leechers(1)
        .corrupt_peers(1)
        .content(ContentSpec::random_between(seed, 256 << 10, 512 << 10, 3))
        .fault(Fault::Link {
            a: HostId::Seeder(0),
            b: HostId::Leecher(2),
            min: ms(40),
            max: ms(80),
        });
    let turmoil = run(&s).unwrap_or_else(|e| panic!("{e}"));
    let pure = pure_ok(&s);
    let leechers: Vec<HostId> = (0..3).map(HostId::Leecher).collect();
    assert_eq!(
        turmoil.completed.keys().copied().collect::<Vec<_>>(),
        leechers
    );
    assert_eq!(pure.completed.keys().copied().collect::<Vec<_>>(), leechers);
    // Both checked every leecher's files against the same source: the same torrent.
    let dir = tempfile::tempdir().unwrap();
    let content = s.content.materialize(dir.path()).unwrap();
    assert_eq!(pure.info_hash, content.info_hash);
    for (h, r) in &turmoil.reports {
        assert_eq!(r.total, pure.hosts[h].total, "{h}: same piece count");
        assert_eq!(pure.hosts[h].have, pure.hosts[h].total, "{h}: complete");
    }
}

#[test]
fn pure_runs_are_a_function_of_the_seed() {
    let scenario = |seed: u64| {
        Scenario::new(seed)
            .leechers(12)
            .corrupt_peers(1)
            .content(ContentSpec::random_between(seed, 256 << 10, 512 << 10, 3))
            .fault(Fault::Partition {
                a: vec![HostId::Seeder(0)],
                b: (0..12).map(HostId::Leecher).collect(),
                from: ms(200),
                until: ms(2500),
            })
            .fault(Fault::Uplink {
                host: HostId::Seeder(0),
                bytes_per_sec: 512 << 10,
            })
            .fault(Fault::Link {
                a: HostId::Leecher(0),
                b: HostId::Leecher(1),
                min: ms(30),
                max: ms(90),
            })
    };
    let seed = seed_from_env(0x9075_0003);
    let a = pure_ok(&scenario(seed));
    let b = pure_ok(&scenario(seed));
    let c = pure_ok(&scenario(seed ^ 1));
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.elapsed, b.elapsed);
    assert_eq!(a.steps, b.steps);
    assert_eq!(a.completed, b.completed);
    assert_ne!(a.trace_hash, c.trace_hash);
    assert!(a.elapsed > ms(2500), "the partition held the leechers back");
}

#[test]
fn faults_it_cannot_model_are_refused() {
    let seed = seed_from_env(0x9075_0004);
    let unsupported = |s: Scenario| match s.run_pure() {
        Err(PureError::Unsupported { what, .. }) => what,
        other => panic!("expected Unsupported, got {other:?}"),
    };
    let crash = Fault::Crash {
        host: HostId::Seeder(0),
        at: ms(100),
        restart: Some(ms(2000)),
    };
    let what = unsupported(Scenario::new(seed).fault(crash.clone()));
    assert!(matches!(&what, Unsupported::Fault { fault, .. } if *fault == crash));
    eprintln!("{what}");
    assert_eq!(
        unsupported(Scenario::new(seed).flood_peers(1)),
        Unsupported::FloodPeers(1)
    );
    assert_eq!(
        unsupported(Scenario::new(seed).webseed(WebMode::Trickle)),
        Unsupported::WebMode(WebMode::Trickle)
    );
    // A link to the tracker: the pure tracker answers at once.
    let link = Fault::Link {
        a: HostId::Tracker,
        b: HostId::Leecher(0),
        min: ms(10),
        max: ms(20),
    };
    assert!(matches!(
        unsupported(Scenario::new(seed).tracker(true).fault(link)),
        Unsupported::Fault { .. }
    ));
    // With the DHT, discovery has no per-link latency.
    let link = Fault::Link {
        a: HostId::Seeder(0),
        b: HostId::Leecher(0),
        min: ms(10),
        max: ms(20),
    };
    assert!(matches!(
        unsupported(Scenario::new(seed).dht(true).fault(link)),
        Unsupported::Fault { .. }
    ));
}

#[test]
fn tracker_nat_and_webseed_map_onto_the_pure_harness() {
    let seed = seed_from_env(0x9075_0005);
    let s = Scenario::new(seed)
        .leechers(20)
        .magnet_leechers(3)
        .http_tracker()
        .webseed(WebMode::NotFound)
        .content(ContentSpec::random_between(seed, 512 << 10, 1 << 20, 3))
        .fault(Fault::Web {
            at: ms(300),
            mode: WebMode::Partial,
        })
        // A slow seeder, so the webseed's recovery matters.
        .fault(Fault::Uplink {
            host: HostId::Seeder(0),
            bytes_per_sec: 128 << 10,
        })
        .fault(Fault::Nat {
            host: HostId::Leecher(0),
        });
    let r = pure_ok(&s);
    assert_eq!(r.completed.len(), 20);
    assert!(r.refused_dials > 0, "dials to the NATed leecher failed");
    let from_web: u64 = r.hosts.values().map(|h| h.from_webseeds).sum();
    assert!(from_web > 0, "the webseed served once it recovered");
}

#[test]
fn dht_discovery_then_the_swarm() {
    let seed = seed_from_env(0x9075_0006);
    let s = Scenario::new(seed)
        .leechers(60)
        .magnet_leechers(5)
        .dht(true)
        .silent_dht_nodes(3)
        .content(ContentSpec::random_between(seed, 128 << 10, 256 << 10, 2));
    let r = pure_ok(&s);
    let dht = r.dht.as_ref().expect("a DHT phase");
    assert_eq!(dht.nodes, 1 + 61 + 3);
    for k in 0..60 {
        let found = &dht.found[&HostId::Leecher(k)];
        assert!(!found.is_empty(), "leecher {k} found peers through the DHT");
    }
    assert_eq!(r.completed.len(), 60);
    assert!(r.completed.values().all(|t| *t > dht.elapsed));
}

#[test]
fn a_dht_of_a_thousand_nodes_from_the_scenario_builder() {
    let seed = seed_from_env(0x9075_0007);
    let s = Scenario::new(seed)
        .seeders(2)
        .leechers(1000)
        .dht(true)
        .silent_dht_nodes(20)
        .content(ContentSpec::random(seed, 64 << 10, 1));
    let d = run_pure_dht(&s).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "rain-sim pure dht: {} nodes, {:?} simulated, {} steps, {} datagrams",
        d.nodes, d.elapsed, d.steps, d.datagrams
    );
    assert!(d.bootstrapped >= 1002, "{} bootstrapped", d.bootstrapped);
    // Each node stores at most 256 peers of a torrent, and a reply carries at most 50: in a
    // swarm of a thousand, a leecher finds some of the others, not necessarily a seeder.
    for k in 0..1000 {
        let found = &d.found[&HostId::Leecher(k)];
        assert!(found.len() >= 20, "leecher {k} found only {found:?}");
    }
    let found_seeder = (0..1000)
        .filter(|&k| {
            d.found[&HostId::Leecher(k)]
                .iter()
                .any(|h| matches!(h, HostId::Seeder(_)))
        })
        .count();
    eprintln!("{found_seeder} leechers found a seeder");
    assert!(found_seeder > 0);
}

#[test]
fn random_scenarios_the_pure_harness_supports_complete() {
    let base = seed_from_env(0x9075_1000);
    let (mut ran, mut refused) = (0, 0);
    for seed in base..base + 40 {
        let s = Scenario::random(seed);
        match pure::check(&s) {
            Ok(()) => {
                pure_ok(&s);
                ran += 1;
            }
            Err(why) => {
                eprintln!("seed {seed}: unsupported {why}");
                refused += 1;
            }
        }
    }
    eprintln!("{ran} random scenarios ran, {refused} refused");
    assert!(ran >= 5, "only {ran} of 40 random scenarios are supported");
}

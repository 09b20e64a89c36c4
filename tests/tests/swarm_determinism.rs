//! Reproducibility (issue #9, DESIGN.md §4): the same seed gives the same scenario, the same
//! payload and torrent, and the same outcome.
//!
//! Everything a simulated swarm does is a function of its seed: turmoil's network (latencies,
//! delivery order) is seeded, every rain session is seeded (`SessionConfig::seed`), hosts are
//! stepped in a fixed order, io-runtime's `select!` loops are `biased;` (tokio would otherwise
//! pick among ready branches with an OS-seeded RNG), and disk, hashing and database jobs run
//! inline (`BlockingMode::Inline`) instead of on blocking-pool threads that finish at
//! real-time moments. So two runs of one seed produce the same timed trace, event for event.

use rain_sim::{ContentSpec, Outcome, Scenario, run, seed_from_env};

fn swarm(seed: u64) -> Scenario {
    Scenario::new(seed)
        .seeders(2)
        .leechers(8)
        .magnet_leechers(2)
        .corrupt_peers(1)
        .content(ContentSpec::random_between(seed, 256 << 10, 1 << 20, 4))
}

fn run_ok(s: &Scenario) -> Outcome {
    run(s).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn same_seed_same_scenario_and_torrent() {
    let seed = seed_from_env(0xd37e_0001);
    assert_eq!(Scenario::random(seed), Scenario::random(seed));
    assert_ne!(Scenario::random(seed), Scenario::random(seed + 1));
    let dir = tempfile::tempdir().unwrap();
    let spec = Scenario::random(seed).content;
    let a = spec.materialize(&dir.path().join("a")).unwrap();
    let b = spec.materialize(&dir.path().join("b")).unwrap();
    assert_eq!(a.torrent, b.torrent);
    assert_eq!(a.files, b.files);
}

#[test]
fn same_seed_same_timed_trace() {
    let s = swarm(seed_from_env(0xd37e_0002));
    let a = run_ok(&s);
    let b = run_ok(&s);
    assert_eq!(a.completed.len(), 8);
    if a.trace_hash() != b.trace_hash() {
        let first = a
            .trace
            .iter()
            .zip(&b.trace)
            .position(|(x, y)| x.to_string() != y.to_string());
        panic!(
            "two runs of one seed differ (first at event {first:?}: {:?} vs {:?})",
            first.map(|i| a.trace[i].to_string()),
            first.map(|i| b.trace[i].to_string()),
        );
    }
    assert_eq!(a.outcome_hash(), b.outcome_hash());
    assert_eq!(a.steps, b.steps, "the same number of simulation steps");
}

#[test]
fn different_seeds_differ() {
    let a = run_ok(&swarm(0xd37e_0003));
    let b = run_ok(&swarm(0xd37e_0004));
    assert_ne!(a.trace_hash(), b.trace_hash(), "the seed drives the run");
}

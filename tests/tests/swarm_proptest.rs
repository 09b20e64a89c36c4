//! The scenario search (issue #9): proptest draws seeds, each seed generates a whole scenario
//! ([`Scenario::random`]: payload layout, swarm size, magnets, corrupt and stalling peers,
//! per-link latency and jitter, a partition that heals, a crash with restart, a broken disk,
//! a webseed, peer discovery through the DHT in one scenario of three and through a UDP or
//! HTTP tracker, now and then crashing, in one of four), and every run must be safe and live.
//!
//! `RAIN_SIM_CASES=<n>` runs more cases (default 6). A failing case prints its scenario with
//! its seed; `RAIN_SIM_SEED=<seed> cargo test -p rain-tests --test swarm_proptest replay` replays
//! it. Failures proptest finds are persisted to `proptest-regressions/swarm_proptest.txt`
//! (committed) and seeds worth keeping are listed in [`REGRESSION_SEEDS`].

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use rain_sim::scenario::{SEED_ENV, parse_seed};
use rain_sim::{Scenario, run};

/// Seeds that once found a problem (or cover a shape worth keeping), replayed every run.
const REGRESSION_SEEDS: &[u64] = &[
    // A partition plus a crash of a leecher in one scenario.
    7,
    // A corrupt and a stalling peer: the seed refused to serve again blocks it had served
    // once, so the leechers' last piece, poisoned by the corrupt peer, was stranded.
    2_333_718_968_750_658_632,
    // A seed that dials its PEX peers: a magnet leecher and the seed dialled each other at
    // once, each kept a different one of the two connections, and the leecher lost its only
    // seed for good.
    6_270_039_573_118_102_423,
    // A partition that dropped TCP segments left a leecher's requests to the only seed
    // unheard after the heal (turmoil never retransmits); partitions now hold and deliver.
    8_003_782_336_119_781_653,
];

fn cases() -> u32 {
    std::env::var("RAIN_SIM_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6)
}

fn check(seed: u64) -> Result<(), String> {
    run(&Scenario::random(seed))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        // A seed does not shrink meaningfully; the printed seed is the reproducer.
        max_shrink_iters: 0,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/swarm_proptest.txt",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_scenarios_are_safe_and_live(seed in any::<u64>()) {
        check(seed).map_err(TestCaseError::fail)?;
    }
}

#[test]
fn regression_seeds() {
    for &seed in REGRESSION_SEEDS {
        check(seed).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Replays `RAIN_SIM_SEED` as a random scenario (does nothing without it).
#[test]
fn replay() {
    let Some(seed) = std::env::var(SEED_ENV).ok().and_then(|s| parse_seed(&s)) else {
        return;
    };
    check(seed).unwrap_or_else(|e| panic!("{e}"));
}

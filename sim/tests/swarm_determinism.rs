//! Reproducibility (issue #9, DESIGN.md §4): the same seed gives the same scenario, the same
//! payload and torrent, and the same outcome.
//!
//! What is and is not deterministic today: turmoil's network (latencies, delivery order) is
//! seeded, every rain session is seeded (`SessionConfig::seed`), and hosts are stepped in a
//! fixed order. Two things in io-runtime are not under the simulator's control, so the *timed*
//! trace of a swarm can still differ between two runs of one seed:
//! 1. `tokio::select!` without `biased;` (torrent task, peer task, UDP tracker) picks among
//!    ready branches with the runtime's RNG, which tokio seeds from the OS unless built with
//!    `--cfg tokio_unstable` (only then does turmoil's `rng_seed` reach it);
//! 2. hashing, disk writes and resume-database writes run on `spawn_blocking` threads; when a
//!    job finishes relative to the other tasks of the same simulated instant is a real-time
//!    race (tokio holds simulated time still while a blocking job runs, so the simulated
//!    *times* barely move, but the order of work inside a tick does).
//!
//! The tests here assert what holds now; the timed-trace comparison waits for that fix.

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
fn same_seed_same_outcome() {
    let s = swarm(seed_from_env(0xd37e_0002));
    let a = run_ok(&s);
    let b = run_ok(&s);
    assert_eq!(
        a.outcome_hash(),
        b.outcome_hash(),
        "what each host lived through differs between two runs of one seed"
    );
    assert_eq!(a.completed.len(), 8);
}

// Not yet tested: the *timed* trace of one seed is not reproducible, because io-runtime's
// select! loops are not `biased;` and hashing/disk jobs run on spawn_blocking threads whose
// completion order is a real-time race. The fix (biased selects, and an inline-blocking mode
// for simulation) is in io-runtime; the comparison belongs here once it lands.

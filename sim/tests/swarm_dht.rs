//! Swarms that find each other through the DHT only (issue #9): every rain session runs a DHT
//! node bootstrapping from a bare DHT node on the host `router` (and from nodes that never
//! answer), no leecher is introduced to any peer, and magnet links name no tracker and no
//! peer. Checked for safety and liveness like the other named scenarios; each run prints its
//! scenario, seed first, and `RAIN_SIM_SEED=<seed>` replaces the seed.
//!
//! Two tests are ignored because they fail on bugs outside the simulator (run them with
//! `cargo test -p rain-sim --test swarm_dht -- --ignored`): the first DHT announce of a torrent
//! is lost ([`seeder_is_found_before_its_second_announce`]), and a corrupt peer gets honest
//! seeders banned ([`honest_seeders_survive_a_liar_in_their_pieces`]), which is what the search
//! over random scenarios with the DHT on ([`random_scenarios_over_the_dht`]) runs into.

use rain_sim::run::DHT_ANNOUNCE_INTERVAL;
use rain_sim::{ContentSpec, HostId, Outcome, Scenario, run, seed_from_env};

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

/// One seeder, five leechers of which four start from a magnet (no tracker, no peer), two
/// silent DHT nodes among the bootstrap nodes. The leechers find each other through the DHT
/// within seconds (the magnet ones get the metadata from the one with the torrent file), but
/// the seeder only at its second announce, after [`DHT_ANNOUNCE_INTERVAL`]; see
/// [`seeder_is_found_before_its_second_announce`].
#[test]
fn magnet_only_swarm_via_dht() {
    let seed = seed_from_env(0x5eed_d470);
    let s = Scenario::new(seed)
        .leechers(5)
        .magnet_leechers(4)
        .dht(true)
        .silent_dht_nodes(2)
        .content(ContentSpec::random_between(seed, 256 << 10, 1 << 20, 4));
    let out = run_ok(&s);
    assert_eq!(out.completed.len(), 5, "every leecher completed");
    for i in 0..4 {
        let ev: Vec<&str> = out
            .trace
            .iter()
            .filter(|e| e.host == HostId::Leecher(i).name())
            .map(|e| e.what.as_str())
            .collect();
        let meta = ev.iter().position(|w| *w == "metadata");
        let done = ev.iter().position(|w| *w == "completed");
        assert!(
            matches!((meta, done), (Some(m), Some(d)) if m < d),
            "leech{i} got the metadata from a peer found through the DHT before completing: \
             {ev:?}"
        );
    }
    assert!(
        out.silent_dht_datagrams > 0,
        "the silent nodes were queried, so the fault was real"
    );
}

/// The seeder's first DHT announce must reach the DHT: a lone magnet leecher, whose only
/// possible source is the seeder, must find it before the seeder's second announce.
///
/// Regression: a torrent's first lookup ran while the DHT was still bootstrapping, found an
/// empty routing table and finished at once, so the seeder was not announced until a whole
/// `dht-announce-interval` later. Lookups now wait for the bootstrap names and start from the
/// bootstrap nodes while the table is empty.
#[test]
fn seeder_is_found_before_its_second_announce() {
    let seed = seed_from_env(0x5eed_d471);
    let s = Scenario::new(seed)
        .leechers(1)
        .magnet_leechers(1)
        .dht(true)
        .content(ContentSpec::random_between(seed, 256 << 10, 1 << 20, 4));
    let out = run_ok(&s);
    let at = out.completed[&HostId::Leecher(0)];
    assert!(
        at < DHT_ANNOUNCE_INTERVAL,
        "seed {seed}: leech0 completed at {at:?}, after the seeder's second DHT announce \
         ({DHT_ANNOUNCE_INTERVAL:?}): its first announce was lost"
    );
}

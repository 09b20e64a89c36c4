//! Swarms that find each other through the DHT only (issue #9): every rain session runs a DHT
//! node bootstrapping from a bare DHT node on the host `router` (and from nodes that never
//! answer), no leecher is introduced to any peer, and magnet links name no tracker and no
//! peer. Checked for safety and liveness like the other named scenarios; each run prints its
//! scenario, seed first, and `RAIN_SIM_SEED=<seed>` replaces the seed.

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

/// Two honest seeders and a corrupt peer serve one magnet leecher found through the DHT.
///
/// Regression: every sender of a failed piece got a strike and three strikes banned, so the
/// honest seeders, sharing pieces with the corrupt peer, were banned too and the leecher was
/// left with the liar alone (seed 5024 of this shape). Peers that shared a
/// failed piece now download on parole (whole pieces alone) until one passes.
#[test]
fn honest_seeders_survive_a_liar_in_their_pieces() {
    let seeds = match std::env::var("RAIN_SIM_SEED") {
        Ok(_) => vec![seed_from_env(0)],
        Err(_) => vec![5024, 5045, 5101],
    };
    for seed in seeds {
        let s = Scenario::new(seed)
            .seeders(2)
            .leechers(1)
            .magnet_leechers(1)
            .corrupt_peers(1)
            .dht(true)
            .content(ContentSpec::single(seed, 2 << 20, 256 << 10));
        let out = run_ok(&s);
        assert!(
            out.completed.contains_key(&HostId::Leecher(0)),
            "seed {seed}: the leecher completed"
        );
        assert!(
            out.corrupt_blocks_served > 0,
            "seed {seed}: the corrupt peer took part, so the fault was real"
        );
    }
}

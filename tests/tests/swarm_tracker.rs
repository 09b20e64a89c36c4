//! Swarms that find each other through a tracker (issue #9): the host `tracker` serves BEP 15
//! over UDP and BEP 3 over HTTP ([`rain_sim::tracker`]), the torrent and the magnet links name
//! one of the two, every rain
//! session announces to it through the runtime's real `TrackerClient`, and no leecher is
//! introduced to any peer. Checked for safety and liveness like the other named scenarios;
//! each run prints its scenario, seed first, and `RAIN_SIM_SEED=<seed>` replaces the seed.
//!
//! Each scenario is paired with the same swarm with its discovery mechanism taken away, which
//! must fail liveness: so the passing run really depends on the tracker (or the DHT).

use std::time::Duration;

use rain_sim::{
    ContentSpec, Fault, HostId, Outcome, Scenario, SimError, UdpChaos, run, seed_from_env, tracker,
};

/// Runs `s` and panics with the replayable error on failure.
fn run_ok(s: &Scenario) -> Outcome {
    let out = run(s).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "rain-sim: done in {:?} simulated, {} steps, trace {}, {} tracker announces",
        out.elapsed,
        out.steps,
        out.trace_hash(),
        out.tracker_announces
    );
    out
}

/// Runs `s`, which must fail liveness with exactly `stranded` incomplete.
fn assert_stranded(s: &Scenario, stranded: &[HostId]) {
    match run(s) {
        Err(SimError::Liveness { pending, .. }) => assert_eq!(
            pending, stranded,
            "seed {}: exactly these leechers had no way to find peers",
            s.seed
        ),
        Err(e) => panic!("expected a liveness failure, got: {e}"),
        Ok(out) => panic!(
            "seed {}: every leecher completed without the mechanism under test: {:?}",
            s.seed, out.completed
        ),
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// One seeder, four leechers (one from a magnet naming the tracker), no DHT: the tracker is
/// the only way to find a peer.
fn tracker_only(seed: u64) -> Scenario {
    Scenario::new(seed)
        .leechers(4)
        .magnet_leechers(1)
        .tracker(true)
        .content(ContentSpec::random_between(seed, 256 << 10, 1 << 20, 4))
}

/// Runs a [`tracker_only`] swarm: every leecher completes, and every session announced.
fn completes_through_the_tracker(s: &Scenario) {
    let out = run_ok(s);
    assert_eq!(out.completed.len(), 4, "every leecher completed");
    assert!(
        out.tracker_announces >= 5,
        "every session announced at least once: {} announces",
        out.tracker_announces
    );
}

#[test]
fn tracker_only_swarm() {
    completes_through_the_tracker(&tracker_only(seed_from_env(0x5eed_7a01)));
}

/// The same swarm through the tracker's HTTP face: the runtime's HTTP tracker client (over
/// the simulated TCP) announces, and the compact peer lists introduce everyone.
#[test]
fn http_tracker_only_swarm() {
    completes_through_the_tracker(&tracker_only(seed_from_env(0x5eed_7a05)).http_tracker());
}

/// The same swarm with the tracker down from the start: nobody can find anybody, so every
/// leecher is stranded (the tracker-only swarm does depend on the tracker).
#[test]
fn tracker_only_swarm_without_the_tracker_is_stranded() {
    let seed = seed_from_env(0x5eed_7a01);
    let s = tracker_only(seed)
        .fault(Fault::Crash {
            host: HostId::Tracker,
            at: Duration::ZERO,
            restart: None,
        })
        .budget(secs(40));
    let all: Vec<HostId> = (0..4).map(HostId::Leecher).collect();
    assert_stranded(&s, &all);
}

/// The leechers that join after the tracker died (in [`outage`]).
const LATE: [HostId; 3] = [HostId::Leecher(1), HostId::Leecher(2), HostId::Leecher(3)];
/// When the tracker dies.
const CRASH_AT: Duration = Duration::from_secs(3);
/// When the late leechers join.
const JOIN_AT: Duration = Duration::from_secs(6);

/// One seeder and an early leecher find each other through the tracker; the tracker crashes
/// at [`CRASH_AT`] for good; three more leechers (one from a magnet) join at [`JOIN_AT`],
/// when only the DHT (if `dht`) can introduce them.
fn outage(seed: u64, dht: bool) -> Scenario {
    let mut s = Scenario::new(seed)
        .leechers(4)
        .magnet_leechers(2)
        .tracker(true)
        .dht(dht)
        .content(ContentSpec::random_between(seed, 512 << 10, 2 << 20, 4))
        .fault(Fault::Crash {
            host: HostId::Tracker,
            at: CRASH_AT,
            restart: None,
        });
    for host in LATE {
        s = s.fault(Fault::Join { host, at: JOIN_AT });
    }
    s
}

#[test]
fn tracker_outage_with_dht_fallback() {
    let seed = seed_from_env(0x5eed_7a02);
    let out = run_ok(&outage(seed, true));
    assert_eq!(out.completed.len(), 4, "every leecher completed");
    assert!(
        out.tracker_announces >= 2,
        "the tracker served the first wave before it died: {} announces",
        out.tracker_announces
    );
    for h in LATE {
        let first_start = out
            .trace
            .iter()
            .find(|e| e.host == h.name() && e.what.starts_with("start"))
            .map(|e| e.at);
        assert!(
            first_start.is_some_and(|at| at >= JOIN_AT && at > CRASH_AT),
            "{h} started after the tracker crashed: {first_start:?}"
        );
    }
}

/// The same outage without the DHT: the early leecher completes through the tracker, the late
/// ones have no way to find a peer (so the fallback test does depend on the DHT).
#[test]
fn tracker_outage_without_dht_strands_late_leechers() {
    let seed = seed_from_env(0x5eed_7a02);
    let s = outage(seed, false).budget(secs(40));
    assert_stranded(&s, &LATE);
}

/// The tracker crashes and comes back with an empty swarm; a leecher that joins after the
/// restart finds the seeder once the seeder announces again (its regular re-announce).
#[test]
fn restarted_tracker_relearns_the_swarm() {
    let seed = seed_from_env(0x5eed_7a03);
    let s = Scenario::new(seed)
        .leechers(2)
        .tracker(true)
        .content(ContentSpec::random_between(seed, 256 << 10, 1 << 20, 4))
        .fault(Fault::Crash {
            host: HostId::Tracker,
            at: secs(2),
            restart: Some(secs(5)),
        })
        .fault(Fault::Join {
            host: HostId::Leecher(1),
            at: secs(8),
        });
    let out = run_ok(&s);
    assert_eq!(out.completed.len(), 2, "every leecher completed");
    // The others announced (and leech0 completed) before the crash, so the restarted tracker
    // knows nobody when leech1 joins: leech1 is served only after the seeder's next regular
    // announce, an interval after its first. Had the swarm survived the restart, leech1 would
    // have completed within a second of joining.
    let late = out.completed[&HostId::Leecher(1)];
    assert!(
        late >= secs(8) + tracker::ANNOUNCE_INTERVAL * 2 / 3,
        "seed {seed}: leech1 completed at {late:?}: the restarted tracker still knew the swarm"
    );
}

/// Tracker scenarios replay exactly: the tracker's replies depend only on the datagrams it
/// got and its seed.
#[test]
fn tracker_runs_are_reproducible() {
    let s = outage(seed_from_env(0x5eed_7a04), true);
    let a = run_ok(&s);
    let b = run_ok(&s);
    assert_eq!(
        a.trace_hash(),
        b.trace_hash(),
        "seed {}: same trace",
        s.seed
    );
    assert_eq!(a.tracker_announces, b.tracker_announces);
    assert_eq!(a.steps, b.steps);
}

/// UDP links that lose a quarter of the datagrams, send a quarter twice and hold back a third
/// for up to 1.5 s (past the sessions' 1 s retransmission timeout, so a reply often comes
/// after its request was resent under a fresh transaction id, and later datagrams overtake
/// it). Every host's datagrams meet it: the sessions' requests and the tracker's replies.
fn lossy_udp() -> Fault {
    Fault::Udp {
        chaos: UdpChaos {
            loss: 25,
            duplicate: 25,
            reorder: 33,
            delay: Duration::from_millis(1500),
        },
    }
}

/// R70: the [`tracker_only`] swarm over lossy, duplicating, reordering UDP. Every leecher
/// completes through the tracker; the fault was real (datagrams dropped, duplicated and held
/// back); the sessions retransmitted what was lost (the same request again under a fresh
/// transaction id) and were not confused by the duplicated and late replies (a reply
/// whose transaction id is not the current one's is ignored; the swarm still forms).
#[test]
fn udp_tracker_with_lossy_duplicating_reordering_links() {
    let seed = seed_from_env(0x5eed_7a06);
    // The same swarm on clean links resends nothing: resends below are the fault's doing.
    let clean = run_ok(&tracker_only(seed));
    assert_eq!(
        clean.udp.resent, 0,
        "seed {seed}: clean links: {:?}",
        clean.udp
    );
    let s = tracker_only(seed).fault(lossy_udp());
    let out = run_ok(&s);
    assert_eq!(out.completed.len(), 4, "every leecher completed");
    let u = out.udp;
    eprintln!(
        "rain-sim: udp {u:?}, tracker: {} duplicate requests",
        out.tracker_duplicate_requests
    );
    assert!(
        u.dropped > 0 && u.duplicated > 0 && u.delayed > 0,
        "seed {seed}: the fault was real: {u:?}"
    );
    assert!(
        u.resent > 0,
        "seed {seed}: lost requests or replies were retransmitted: {u:?}"
    );
    assert!(
        out.tracker_duplicate_requests > 0,
        "seed {seed}: the tracker got duplicated requests (and answered each)"
    );
    assert!(
        out.tracker_announces >= 5,
        "every session announced: {} announces",
        out.tracker_announces
    );
    // The faults come from per-host RNGs seeded from the scenario's seed: a replay is exact.
    let again = run_ok(&s);
    assert_eq!(
        again.trace_hash(),
        out.trace_hash(),
        "seed {seed}: same trace"
    );
    assert_eq!(
        again.udp, out.udp,
        "seed {seed}: the same datagrams met the same faults"
    );
}

//! Swarms on awkward networks (docs/RELIABILITY.md R70, R71): hosts behind a NAT that nobody
//! can dial ([`Fault::Nat`]), IPv6-only swarms ([`Scenario::ipv6`]), and a DHT over UDP links
//! that lose, duplicate and reorder datagrams ([`Fault::Udp`]). Checked for safety and
//! liveness like the other named scenarios; each run prints its scenario, seed first, and
//! `RAIN_SIM_SEED=<seed>` replaces the seed.

use std::time::Duration;

use rain_sim::{
    ContentSpec, Fault, HostId, Outcome, Scenario, SimError, UdpChaos, run, seed_from_env,
};

/// Runs `s` and panics with the replayable error on failure.
fn run_ok(s: &Scenario) -> Outcome {
    let out = run(s).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "rain-sim: done in {:?} simulated, {} steps, trace {}, {} tracker announces, {} \
         connections refused by NATs, udp {:?}",
        out.elapsed,
        out.steps,
        out.trace_hash(),
        out.tracker_announces,
        out.nat_refused,
        out.udp
    );
    out
}

/// `s` with every host of `hosts` behind a NAT.
fn behind_nat(mut s: Scenario, hosts: &[HostId]) -> Scenario {
    for &host in hosts {
        s = s.fault(Fault::Nat { host });
    }
    s
}

fn leechers(n: usize) -> Vec<HostId> {
    (0..n).map(HostId::Leecher).collect()
}

/// One seeder and five leechers (one from a magnet) that find each other through the UDP
/// tracker only, so every connection is one that somebody dialled to an address the tracker
/// handed out.
fn tracker_swarm(seed: u64) -> Scenario {
    Scenario::new(seed)
        .leechers(5)
        .magnet_leechers(1)
        .tracker(true)
        .content(ContentSpec::random_between(seed, 256 << 10, 1 << 20, 4))
}

/// R71: two of five leechers (one of them from a magnet) cannot be dialled. They complete by
/// dialling out, to the seeder and to the reachable leechers; the others' attempts to dial
/// them were refused (so the NAT was real).
#[test]
fn natted_leechers_complete_by_dialling_out() {
    let seed = seed_from_env(0x5eed_4a71);
    let natted = [HostId::Leecher(0), HostId::Leecher(3)];
    let out = run_ok(&behind_nat(tracker_swarm(seed), &natted));
    assert_eq!(out.completed.len(), 5, "every leecher completed");
    assert!(
        out.nat_refused > 0,
        "seed {seed}: somebody tried to dial a NATed leecher and was refused"
    );
}

/// R71: every leecher is behind a NAT and only the seeder can be dialled: no two leechers can
/// connect, so each downloads everything from the seeder over a connection it dialled itself.
#[test]
fn natted_leechers_and_one_reachable_seeder() {
    let seed = seed_from_env(0x5eed_4a72);
    let out = run_ok(&behind_nat(tracker_swarm(seed), &leechers(5)));
    assert_eq!(out.completed.len(), 5, "every leecher completed");
    assert!(
        out.nat_refused > 0,
        "seed {seed}: leechers handed each other out by the tracker were refused"
    );
}

/// The same swarm with the seeder behind a NAT too: nobody can be dialled, so nobody
/// connects and every leecher is stranded (the NAT does block inbound connections, and the
/// swarms above depend on dialling out).
#[test]
fn swarm_with_nobody_reachable_is_stranded() {
    let seed = seed_from_env(0x5eed_4a72);
    let mut all = leechers(5);
    all.push(HostId::Seeder(0));
    let s = behind_nat(tracker_swarm(seed), &all).budget(Duration::from_secs(30));
    match run(&s) {
        Err(SimError::Liveness { pending, stats, .. }) => {
            assert_eq!(
                pending,
                leechers(5),
                "seed {seed}: every leecher is stranded"
            );
            assert!(
                stats.iter().any(|l| l.starts_with("nat: ")),
                "seed {seed}: connections were refused: {stats:?}"
            );
        }
        Err(e) => panic!("expected a liveness failure, got: {e}"),
        Ok(out) => panic!(
            "seed {seed}: leechers completed with nobody reachable: {:?}",
            out.completed
        ),
    }
}

/// R71: an IPv6-only swarm (every host has an `fe80::/64` address only; turmoil refuses any
/// IPv4 socket): the sessions listen on `::`, announce to the UDP tracker over IPv6 and get
/// IPv6 peers (18 bytes each, BEP 15), and the magnet leecher gets the metadata from them.
#[test]
fn ipv6_only_swarm_through_the_udp_tracker() {
    let seed = seed_from_env(0x5eed_6a71);
    let s = Scenario::new(seed)
        .leechers(3)
        .magnet_leechers(1)
        .tracker(true)
        .ipv6(true)
        .content(ContentSpec::random_between(seed, 256 << 10, 1 << 20, 4));
    let out = run_ok(&s);
    assert_eq!(out.completed.len(), 3, "every leecher completed");
    assert!(
        out.tracker_announces >= 4,
        "every session announced over IPv6: {} announces",
        out.tracker_announces
    );
}

/// R71: an IPv6-only swarm whose peers find each other through the DHT only (one socket on
/// `::`, IPv6 nodes and peers).
#[test]
fn ipv6_only_swarm_through_the_dht() {
    let seed = seed_from_env(0x5eed_6a72);
    let s = Scenario::new(seed)
        .leechers(3)
        .magnet_leechers(2)
        .dht(true)
        .ipv6(true)
        .content(ContentSpec::random_between(seed, 256 << 10, 1 << 20, 4));
    let out = run_ok(&s);
    assert_eq!(out.completed.len(), 3, "every leecher completed");
}

/// R70: a swarm that finds its peers through the DHT only, over UDP links that lose a fifth of
/// the datagrams, send a fifth twice and hold back a third for up to a second (so KRPC
/// replies come late, twice, or after later ones): every leecher still completes, and the
/// fault was real.
#[test]
fn dht_swarm_with_lossy_duplicating_reordering_udp() {
    let seed = seed_from_env(0x5eed_7a70);
    let s = Scenario::new(seed)
        .leechers(3)
        .magnet_leechers(2)
        .dht(true)
        .content(ContentSpec::random_between(seed, 256 << 10, 1 << 20, 4))
        .fault(Fault::Udp {
            chaos: UdpChaos {
                loss: 20,
                duplicate: 20,
                reorder: 33,
                delay: Duration::from_secs(1),
            },
        });
    let out = run_ok(&s);
    assert_eq!(out.completed.len(), 3, "every leecher completed");
    let u = out.udp;
    assert!(
        u.dropped > 0 && u.duplicated > 0 && u.delayed > 0,
        "seed {seed}: the fault was real: {u:?}"
    );
}

//! Faulty disks in the simulation (issue #13, R52/R53): a rain host's real storage is wrapped
//! by [`rain_sim::disk`], whose faults the plan switches in simulated time. The torrent
//! reports the error and stops, as rain does; nothing is recorded complete that is not on disk
//! intact (every leecher's bytes are compared with the source at the end, after restarts from
//! the resume store); and the swarm completes around the broken host.

use std::time::Duration;

use rain_sim::disk::DiskFault;
use rain_sim::{ContentSpec, Fault, HostId, Outcome, Scenario, run, seed_from_env};

fn run_ok(s: &Scenario) -> Outcome {
    let out = run(s).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "rain-sim: done in {:?} simulated, {} steps, disks {:?}",
        out.elapsed, out.steps, out.disks
    );
    out
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The first `stopped` event of `host` with an error, if any: (when, what).
fn stopped_with_error(out: &Outcome, host: HostId) -> Option<(Duration, String)> {
    out.trace
        .iter()
        .find(|e| e.host == host.name() && e.what.starts_with("stopped Some"))
        .map(|e| (e.at, e.what.clone()))
}

/// A leecher's disk is full, or fails every write with EIO, for its first 3 s: its torrent
/// stops with the write error; the user restarts the server at 4 s (a crash and restart here)
/// and the download completes with the right bytes, the other leecher undisturbed.
#[test]
fn a_full_or_failing_disk_stops_the_torrent_and_a_restart_completes() {
    let seed = seed_from_env(0xd15c_0001);
    let leech = HostId::Leecher(0);
    for (fault, message) in [
        (
            DiskFault::Full,
            "piece write error: disk error: no storage space",
        ),
        (
            DiskFault::WriteError,
            "piece write error: disk error: other error",
        ),
    ] {
        let s = Scenario::new(seed)
            .leechers(2)
            .content(ContentSpec::random_between(seed, 512 << 10, 1 << 20, 3))
            .fault(Fault::Disk {
                host: leech,
                fault,
                from: Duration::ZERO,
                until: secs(3),
            })
            .fault(Fault::Crash {
                host: leech,
                at: secs(4),
                restart: Some(secs(4) + Duration::from_millis(500)),
            });
        let out = run_ok(&s);
        let (at, what) =
            stopped_with_error(&out, leech).expect("the write error stopped the torrent");
        assert!(at < secs(3), "{fault:?}: {what} at {at:?}");
        assert!(what.contains(message), "{fault:?}: {what}");
        assert!(out.disks[&leech].failed_writes >= 1);
        assert!(
            out.completed[&leech] > secs(4),
            "{fault:?}: completed after the restart"
        );
        assert_eq!(out.completed.len(), 2);
        assert!(stopped_with_error(&out, HostId::Leecher(1)).is_none());
    }
}

/// Two seeders and three leechers.
fn two_seeders(seed: u64) -> Scenario {
    Scenario::new(seed)
        .seeders(2)
        .leechers(3)
        .content(ContentSpec::random_between(seed, 512 << 10, 1 << 20, 3))
}

/// One of two seeders cannot read its disk once seeding has begun (at 300 ms; the uplinks
/// are slow enough that the leechers still need it then): its torrent stops with the read
/// error, and the leechers complete from the other seeder. A disk that fails from the start
/// fails the start-up check instead, with the file system's message.
#[test]
fn a_seeder_with_read_errors_stops_and_the_other_serves() {
    let seed = seed_from_env(0xd15c_0002);
    let broken = HostId::Seeder(0);
    let read_errors_from = |from| {
        let mut s = two_seeders(seed).fault(Fault::Disk {
            host: broken,
            fault: DiskFault::ReadError,
            from,
            until: secs(60),
        });
        for i in 0..2 {
            s = s.fault(Fault::Uplink {
                host: HostId::Seeder(i),
                bytes_per_sec: 256 << 10,
            });
        }
        s
    };
    let out = run_ok(&read_errors_from(Duration::from_millis(300)));
    assert_eq!(out.completed.len(), 3);
    let (at, what) = stopped_with_error(&out, broken).expect("the read error stopped the seeder");
    assert_eq!(
        what,
        "stopped Some(\"read error: disk error: other error\")"
    );
    assert!(at >= Duration::from_millis(300));
    assert!(out.disks[&broken].failed_reads >= 1);
    let out = run_ok(&read_errors_from(Duration::ZERO));
    let (_, what) = stopped_with_error(&out, broken).expect("the start-up check failed");
    assert!(
        what.contains("simulated-disk: input/output error"),
        "{what}"
    );
}

/// One of two seeders reads corrupt data from its disk and serves it: the leechers' hash
/// checks catch every bad piece, the corrupt seeder is banned, and everyone completes with
/// the right bytes from the other seeder.
#[test]
fn a_seeder_reading_corrupt_data_is_banned_and_the_other_serves() {
    let seed = seed_from_env(0xd15c_0003);
    let broken = HostId::Seeder(0);
    let s = two_seeders(seed).fault(Fault::Disk {
        host: broken,
        fault: DiskFault::CorruptReads,
        from: Duration::ZERO,
        until: secs(30),
    });
    let out = run_ok(&s);
    assert_eq!(out.completed.len(), 3);
    assert!(out.disks[&broken].corrupted_reads >= 1);
    let wasted: u64 = out.reports.values().map(|r| r.wasted).sum();
    assert!(
        wasted > 0,
        "the corrupt blocks were caught: {:?}",
        out.reports
    );
}

/// A power cut (R57/R59): the leecher's drive keeps writes in a volatile cache until they are
/// flushed, and the host crashes twice mid-download, losing what was not flushed. After each
/// crash, before the restart, every piece the resume store records complete is intact on disk
/// (the runtime flushes the data before it records progress; the check is the simulation's
/// and fails the run otherwise), and the download completes with the right bytes.
#[test]
fn a_power_cut_loses_only_unrecorded_pieces() {
    let seed = seed_from_env(0xd15c_0004);
    let leech = HostId::Leecher(0);
    let mut s = Scenario::new(seed)
        .leechers(1)
        .content(ContentSpec::random_between(seed, 2 << 20, 3 << 20, 3))
        .fault(Fault::Uplink {
            host: HostId::Seeder(0),
            bytes_per_sec: 128 << 10,
        })
        .fault(Fault::Disk {
            host: leech,
            fault: DiskFault::VolatileWrites,
            from: Duration::ZERO,
            until: secs(120),
        });
    for at in [7, 13] {
        s = s.fault(Fault::Crash {
            host: leech,
            at: secs(at),
            restart: Some(secs(at) + Duration::from_millis(500)),
        });
    }
    let out = run_ok(&s);
    assert!(
        out.disks[&leech].lost_bytes > 0,
        "the crashes lost unflushed writes: {:?}",
        out.disks
    );
    assert!(
        out.completed[&leech] > secs(13),
        "completed after the last restart"
    );
    let restarts = out
        .trace
        .iter()
        .filter(|e| e.host == leech.name() && e.what.starts_with("start #"))
        .count();
    assert_eq!(restarts, 3);
}

//! Scenarios: who is in the swarm, what they share, and which faults hit them, all derived
//! from one seed so that a run can be replayed from the seed it prints.

use std::fmt;
use std::time::Duration;

use rain_proto::rng::{Rng, Seed};

use crate::content::ContentSpec;
use crate::disk::DiskFault;
use crate::net::UdpChaos;
use crate::web::WebMode;

/// The environment variable that replaces a scenario's seed (`RAIN_SIM_SEED=<u64>`).
pub const SEED_ENV: &str = "RAIN_SIM_SEED";

/// The seed from [`SEED_ENV`] if it is set (decimal or `0x` hex), else `default`.
pub fn seed_from_env(default: u64) -> u64 {
    std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| parse_seed(&s))
        .unwrap_or(default)
}

/// Parses a seed written in decimal or `0x` hex.
pub fn parse_seed(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// One simulated host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostId {
    /// A rain session that starts with the whole payload.
    Seeder(usize),
    /// A rain session that starts with nothing.
    Leecher(usize),
    /// A peer that serves garbage.
    Corrupt(usize),
    /// A peer that never serves.
    Stall(usize),
    /// A peer that floods requests.
    Flood(usize),
    /// The bare DHT node every rain host bootstraps from (only when [`Scenario::dht`] is set).
    DhtRouter,
    /// A host that binds the DHT port and never answers (only when [`Scenario::dht`] is set).
    SilentDht(usize),
    /// The UDP tracker every torrent and magnet names (only when [`Scenario::tracker`] is
    /// set; see [`crate::tracker`]).
    Tracker,
    /// The HTTP server the torrent's `url-list` names (only when [`Scenario::webseed`] is set;
    /// see [`crate::web`]).
    Web,
}

impl HostId {
    /// The turmoil host name.
    pub fn name(self) -> String {
        match self {
            HostId::Seeder(i) => format!("seed{i}"),
            HostId::Leecher(i) => format!("leech{i}"),
            HostId::Corrupt(i) => format!("corrupt{i}"),
            HostId::Stall(i) => format!("stall{i}"),
            HostId::Flood(i) => format!("flood{i}"),
            HostId::DhtRouter => "router".to_owned(),
            HostId::SilentDht(i) => format!("silent{i}"),
            HostId::Tracker => "tracker".to_owned(),
            HostId::Web => "web".to_owned(),
        }
    }
}

impl fmt::Display for HostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// A fault, placed in simulated time (from the start of the run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Every link between a host of `a` and a host of `b` carries nothing from `from` until
    /// `until`, then delivers what was held (TCP's retransmissions, compressed: a connection
    /// survives a cut that heals, as on a real network, and no stream loses bytes; datagrams
    /// arrive late). Dropping instead left streams with a hole that turmoil never fills, so
    /// one direction of a connection stayed dead after the heal, which real TCP never does.
    Partition {
        /// One side.
        a: Vec<HostId>,
        /// The other side.
        b: Vec<HostId>,
        /// Start.
        from: Duration,
        /// Heal.
        until: Duration,
    },
    /// The host's software is killed at `at` (sockets reset, no clean shutdown) and, if
    /// `restart` is set, started again then from its resume database and data directory.
    Crash {
        /// Which host.
        host: HostId,
        /// When.
        at: Duration,
        /// When it comes back.
        restart: Option<Duration>,
    },
    /// The link between `a` and `b` gets a latency between `min` and `max` for the whole run
    /// (`min == max` for no jitter).
    Link {
        /// One end.
        a: HostId,
        /// The other end.
        b: HostId,
        /// Least latency.
        min: Duration,
        /// Most latency (jitter is `max - min`).
        max: Duration,
    },
    /// The rain host `host` is switched on only at `at` (its software starts then): a peer
    /// that joins the swarm late, after what happened before (a tracker outage, say).
    Join {
        /// Which host (a seeder or leecher).
        host: HostId,
        /// When it starts.
        at: Duration,
    },
    /// The webseed answers as `mode` from `at` on (it starts as [`Scenario::webseed`] says).
    Web {
        /// When it changes.
        at: Duration,
        /// How it answers from then on.
        mode: WebMode,
    },
    /// The disk of the rain host `host` misbehaves as `fault` from `from` until `until`
    /// ([`crate::disk`]).
    Disk {
        /// Which host (a seeder or leecher).
        host: HostId,
        /// How.
        fault: DiskFault,
        /// Start.
        from: Duration,
        /// End.
        until: Duration,
    },
    /// Everything `host` sends over TCP shares an uplink of `bytes_per_sec` for the whole run.
    Uplink {
        /// Which host.
        host: HostId,
        /// Its upload bandwidth.
        bytes_per_sec: u64,
    },
    /// Every UDP datagram any host sends (the rain hosts' tracker and DHT sockets, the
    /// tracker's replies, the DHT router's) goes through `chaos` for the whole run: lost,
    /// duplicated or held back so that later ones overtake it ([`crate::net::UdpChaos`]).
    Udp {
        /// What happens to the datagrams.
        chaos: UdpChaos,
    },
    /// Nobody can dial `host` for the whole run, as behind a NAT without a port forward: a
    /// connection to it is refused ([`crate::net::Nat`]); it still dials out, and its UDP
    /// requests are answered.
    Nat {
        /// Which host.
        host: HostId,
    },
}

impl Fault {
    /// When the fault is over (zero for permanent link settings).
    pub fn ends(&self) -> Duration {
        match self {
            Fault::Partition { until, .. } | Fault::Disk { until, .. } => *until,
            Fault::Crash { at, restart, .. } => restart.unwrap_or(*at),
            Fault::Join { at, .. } | Fault::Web { at, .. } => *at,
            Fault::Link { .. } | Fault::Uplink { .. } | Fault::Udp { .. } | Fault::Nat { .. } => {
                Duration::ZERO
            }
        }
    }
}

/// A whole simulated swarm.
#[derive(Clone, PartialEq, Eq)]
pub struct Scenario {
    /// The seed everything derives from.
    pub seed: u64,
    /// What is shared.
    pub content: ContentSpec,
    /// Rain sessions with the payload.
    pub seeders: usize,
    /// Rain sessions without it.
    pub leechers: usize,
    /// How many of the leechers (the first ones) start from a magnet link and must get the
    /// metadata from peers (ut_metadata).
    pub magnet_leechers: usize,
    /// Peers that serve corrupt blocks.
    pub corrupt_peers: usize,
    /// Peers that never serve.
    pub stall_peers: usize,
    /// Peers that flood every honest host with requests.
    pub flood_peers: usize,
    /// How many earlier leechers each leecher is introduced to (besides every seeder).
    pub leecher_links: usize,
    /// Default latency of every link (min, max).
    pub latency: (Duration, Duration),
    /// Faults.
    pub faults: Vec<Fault>,
    /// Liveness: once the last fault is over, every leecher completes within this much
    /// simulated time.
    pub budget: Duration,
    /// Simulated time of one turmoil step.
    pub tick: Duration,
    /// Peers find each other through the DHT: every rain host runs a DHT node that
    /// bootstraps from a bare DHT node on the host `router`, and leechers are introduced to no
    /// peer (magnet links name no peer, and no tracker unless [`Scenario::tracker`] is on).
    /// Off, and without the tracker: leechers are introduced to the seeders and to
    /// `leecher_links` earlier leechers, and no host runs a DHT.
    pub dht: bool,
    /// With [`Scenario::dht`]: hosts that bind the DHT port and never answer, listed in every
    /// rain host's bootstrap nodes (so bootstraps and lookups meet unresponsive nodes).
    pub silent_dht_nodes: usize,
    /// A UDP tracker on the host `tracker` ([`crate::tracker`]): the torrent and the magnet
    /// links name it, every rain host announces to it, and leechers are introduced to no peer
    /// (the tracker, and the DHT if [`Scenario::dht`] is on too, is how peers find each other).
    pub tracker: bool,
    /// With [`Scenario::tracker`]: the torrent and magnets name the tracker's HTTP face
    /// (`http://tracker/announce`) instead of its UDP one.
    pub http_tracker: bool,
    /// A webseed (BEP 19) on the host `web` ([`crate::web`]) serving the payload, answering
    /// as this mode from the start ([`Fault::Web`] changes it later): the torrent's `url-list`
    /// and the magnets' `ws=` name it.
    pub webseed: Option<WebMode>,
    /// Every host has an IPv6 address only (turmoil's `IpVersion::V6`, `fe80::/64`): the
    /// sessions listen and run the DHT on `::`, and the tracker answers with IPv6 peers.
    pub ipv6: bool,
}

impl fmt::Debug for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed={} (0x{:x}) content=[{:?}] seeders={} leechers={} (magnet {}) corrupt={} \
             stall={} flood={} leecher_links={} dht={} silent_dht={} tracker={}{} webseed={:?} \
             ipv6={} latency={:?}..{:?} budget={:?} tick={:?} faults={:?}",
            self.seed,
            self.seed,
            self.content,
            self.seeders,
            self.leechers,
            self.magnet_leechers,
            self.corrupt_peers,
            self.stall_peers,
            self.flood_peers,
            self.leecher_links,
            self.dht,
            self.silent_dht_nodes,
            self.tracker,
            if self.http_tracker { " (http)" } else { "" },
            self.webseed,
            self.ipv6,
            self.latency.0,
            self.latency.1,
            self.budget,
            self.tick,
            self.faults
        )
    }
}

impl Scenario {
    /// One seeder and one leecher sharing a random payload of at most 1 MiB, no faults.
    /// Change the fields (or use the builder methods) for more.
    pub fn new(seed: u64) -> Self {
        Scenario {
            seed,
            content: ContentSpec::random(seed, 1024 * 1024, 4),
            seeders: 1,
            leechers: 1,
            magnet_leechers: 0,
            corrupt_peers: 0,
            stall_peers: 0,
            flood_peers: 0,
            leecher_links: 3,
            latency: (Duration::from_millis(5), Duration::from_millis(25)),
            faults: Vec::new(),
            budget: Duration::from_secs(120),
            tick: Duration::from_millis(5),
            dht: false,
            silent_dht_nodes: 0,
            tracker: false,
            http_tracker: false,
            webseed: None,
            ipv6: false,
        }
    }

    /// A random scenario: 1–2 seeders, 1–6 leechers (some from magnets), now and then a
    /// corrupt, stalling or flooding peer, per-link latencies, at most one partition and one
    /// crash, and now and then a host with a slow uplink.
    /// In one scenario of three the peers find each other through the DHT (with up to two
    /// silent DHT nodes), in one of four through a tracker (over HTTP in half of those; it
    /// crashes and restarts in one of three), both in one of twelve; otherwise they are
    /// introduced directly. One scenario in four has a webseed too, misbehaving in half of
    /// those (possibly recovering later). One in five has a broken disk on one rain host.
    pub fn random(seed: u64) -> Self {
        let mut rng = Rng::new(Seed::from_u64(seed ^ 0x7363_656e_6172_696f));
        let mut s = Scenario::new(seed);
        s.seeders = 1 + rng.below(2) as usize;
        s.leechers = 1 + rng.below(6) as usize;
        s.magnet_leechers = rng.below(s.leechers as u64 + 1) as usize;
        s.corrupt_peers = usize::from(rng.below(4) == 0);
        s.stall_peers = usize::from(rng.below(4) == 0);
        s.leecher_links = 1 + rng.below(3) as usize;
        let ms = |rng: &mut Rng, lo: u64, hi: u64| Duration::from_millis(lo + rng.below(hi - lo));
        s.latency = (ms(&mut rng, 1, 10), ms(&mut rng, 10, 60));
        let hosts = s.honest_hosts();
        for _ in 0..rng.below(3) {
            let a = hosts[rng.below(hosts.len() as u64) as usize];
            let b = hosts[rng.below(hosts.len() as u64) as usize];
            if a != b {
                let min = ms(&mut rng, 1, 50);
                let max = min + ms(&mut rng, 0, 100);
                s.faults.push(Fault::Link { a, b, min, max });
            }
        }
        if rng.below(3) == 0 {
            // hosts.len() >= 2: at least one seeder and one leecher.
            let cut = 1 + rng.below(hosts.len() as u64 - 1) as usize;
            {
                let from = ms(&mut rng, 0, 3000);
                let until = from + ms(&mut rng, 1000, 20_000);
                s.faults.push(Fault::Partition {
                    a: hosts[..cut].to_vec(),
                    b: hosts[cut..].to_vec(),
                    from,
                    until,
                });
            }
        }
        if rng.below(3) == 0 {
            let host = hosts[rng.below(hosts.len() as u64) as usize];
            let at = ms(&mut rng, 0, 5000);
            let restart = Some(at + ms(&mut rng, 500, 10_000));
            s.faults.push(Fault::Crash { host, at, restart });
        }
        // Drawn last, so the scenarios of seeds kept before the DHT joined stay the same.
        if rng.below(3) == 0 {
            s.dht = true;
            s.silent_dht_nodes = rng.below(3) as usize;
        }
        s.flood_peers = usize::from(rng.below(5) == 0);
        if rng.below(4) == 0 {
            let host = hosts[rng.below(hosts.len() as u64) as usize];
            let bytes_per_sec = (256 + rng.below(1024)) * 1024;
            s.faults.push(Fault::Uplink {
                host,
                bytes_per_sec,
            });
        }
        // Drawn last, so the earlier draws (and the scenarios of seeds that get no tracker)
        // stay what they were before the tracker joined.
        if rng.below(4) == 0 {
            s.tracker = true;
            if rng.below(3) == 0 {
                let at = ms(&mut rng, 0, 5000);
                let restart = Some(at + ms(&mut rng, 500, 10_000));
                s.faults.push(Fault::Crash {
                    host: HostId::Tracker,
                    at,
                    restart,
                });
            }
        }
        // Drawn after everything earlier, for the same reason.
        s.http_tracker = s.tracker && rng.below(2) == 0;
        if rng.below(4) == 0 {
            const MODES: [WebMode; 5] = [
                WebMode::Partial,
                WebMode::Full,
                WebMode::NotFound,
                WebMode::Short,
                WebMode::Corrupt,
            ];
            let good = rng.below(2) == 0;
            s.webseed = Some(if good {
                WebMode::Partial
            } else {
                MODES[rng.below(MODES.len() as u64) as usize]
            });
            if !good && rng.below(2) == 0 {
                let at = ms(&mut rng, 1000, 10_000);
                s.faults.push(Fault::Web {
                    at,
                    mode: WebMode::Partial,
                });
            }
            if rng.below(4) == 0 {
                let at = ms(&mut rng, 0, 5000);
                let restart = Some(at + ms(&mut rng, 500, 10_000));
                s.faults.push(Fault::Crash {
                    host: HostId::Web,
                    at,
                    restart,
                });
            }
        }
        // Drawn last again. A broken disk on a host that has no crash planned; a full disk or
        // read errors stop its torrent, so the host is restarted (as its user would) after
        // the disk recovers. Corrupt reads get a seeder banned for the run, so only when
        // another seeder remains.
        let calm: Vec<HostId> = hosts
            .iter()
            .copied()
            .filter(|h| {
                !s.faults
                    .iter()
                    .any(|f| matches!(f, Fault::Crash { host, .. } if host == h))
            })
            .collect();
        if rng.below(5) == 0 && !calm.is_empty() {
            let host = calm[rng.below(calm.len() as u64) as usize];
            let seeder = matches!(host, HostId::Seeder(_));
            let fault = match rng.below(3) {
                0 => DiskFault::Full,
                1 => DiskFault::ReadError,
                _ if seeder && s.seeders > 1 => DiskFault::CorruptReads,
                _ => DiskFault::Full,
            };
            let from = ms(&mut rng, 0, 3000);
            let until = from + ms(&mut rng, 500, 5000);
            s.faults.push(Fault::Disk {
                host,
                fault,
                from,
                until,
            });
            if fault != DiskFault::CorruptReads {
                let at = until + Duration::from_millis(500);
                s.faults.push(Fault::Crash {
                    host,
                    at,
                    restart: Some(at + Duration::from_millis(500)),
                });
            }
        }
        s
    }

    /// Sets the seeder count.
    pub fn seeders(mut self, n: usize) -> Self {
        self.seeders = n;
        self
    }

    /// Sets the leecher count.
    pub fn leechers(mut self, n: usize) -> Self {
        self.leechers = n;
        self
    }

    /// Sets how many leechers start from a magnet link.
    pub fn magnet_leechers(mut self, n: usize) -> Self {
        self.magnet_leechers = n;
        self
    }

    /// Sets the number of corrupt peers.
    pub fn corrupt_peers(mut self, n: usize) -> Self {
        self.corrupt_peers = n;
        self
    }

    /// Sets the number of peers flooding requests.
    pub fn flood_peers(mut self, n: usize) -> Self {
        self.flood_peers = n;
        self
    }

    /// Sets the number of stalling peers.
    pub fn stall_peers(mut self, n: usize) -> Self {
        self.stall_peers = n;
        self
    }

    /// Turns peer discovery through the DHT on or off (see [`Scenario::dht`]).
    pub fn dht(mut self, on: bool) -> Self {
        self.dht = on;
        self
    }

    /// Turns the simulated UDP tracker on or off (see [`Scenario::tracker`]).
    pub fn tracker(mut self, on: bool) -> Self {
        self.tracker = on;
        self
    }

    /// Makes the torrent name the tracker's HTTP face instead of its UDP one (and turns the
    /// tracker on).
    pub fn http_tracker(mut self) -> Self {
        self.tracker = true;
        self.http_tracker = true;
        self
    }

    /// Adds a webseed answering as `mode` (see [`Scenario::webseed`]).
    pub fn webseed(mut self, mode: WebMode) -> Self {
        self.webseed = Some(mode);
        self
    }

    /// Makes every host IPv6-only (see [`Scenario::ipv6`]).
    pub fn ipv6(mut self, on: bool) -> Self {
        self.ipv6 = on;
        self
    }

    /// Sets the number of DHT nodes that never answer (used only with [`Scenario::dht`]).
    pub fn silent_dht_nodes(mut self, n: usize) -> Self {
        self.silent_dht_nodes = n;
        self
    }

    /// Replaces the content.
    pub fn content(mut self, content: ContentSpec) -> Self {
        self.content = content;
        self
    }

    /// Adds a fault.
    pub fn fault(mut self, fault: Fault) -> Self {
        self.faults.push(fault);
        self
    }

    /// Sets the liveness budget.
    pub fn budget(mut self, budget: Duration) -> Self {
        self.budget = budget;
        self
    }

    /// The rain sessions: seeders, then leechers.
    pub fn honest_hosts(&self) -> Vec<HostId> {
        (0..self.seeders)
            .map(HostId::Seeder)
            .chain((0..self.leechers).map(HostId::Leecher))
            .collect()
    }

    /// Every host.
    pub fn hosts(&self) -> Vec<HostId> {
        let mut h = self.honest_hosts();
        h.extend((0..self.corrupt_peers).map(HostId::Corrupt));
        h.extend((0..self.stall_peers).map(HostId::Stall));
        h.extend((0..self.flood_peers).map(HostId::Flood));
        h.extend(self.dht_hosts());
        if self.tracker {
            h.push(HostId::Tracker);
        }
        if self.webseed.is_some() {
            h.push(HostId::Web);
        }
        h
    }

    /// The DHT-only hosts: the router and the silent nodes (none without [`Scenario::dht`]).
    pub fn dht_hosts(&self) -> Vec<HostId> {
        if !self.dht {
            return Vec::new();
        }
        std::iter::once(HostId::DhtRouter)
            .chain((0..self.silent_dht_nodes).map(HostId::SilentDht))
            .collect()
    }

    /// When the last fault is over.
    pub fn faults_end(&self) -> Duration {
        self.faults
            .iter()
            .map(Fault::ends)
            .max()
            .unwrap_or(Duration::ZERO)
    }
}

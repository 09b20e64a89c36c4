//! The pure harness for [`Scenario`]s: the same scenario values that [`crate::run()`] runs
//! under turmoil with real sessions, run instead on proto-core's pure harnesses, where the clock
//! jumps straight to the next deadline (no turmoil, no tokio, no files): the torrent swarm
//! [`rain_proto::torrent::swarm::Swarm`] and, with [`Scenario::dht`], the DHT network
//! [`rain_proto::dht::sim::Sim`]. Swarms of hundreds of peers and DHTs of a thousand nodes run
//! in seconds, for protocol volume; [`crate::run()`] stays the test of the real glue code.
//!
//! Both harnesses download byte-identical torrents: the [`crate::ContentSpec`] is
//! materialised exactly as [`crate::run()`] does (same `.torrent`, same payload), and its info
//! dictionary and bytes become the swarm's [`TestTorrent`] ([`TestTorrent::from_parts`]).
//!
//! How a scenario maps (anything else is refused with [`PureError::Unsupported`] before the
//! run starts, never ignored; [`check`] tells without running):
//!
//! | Scenario                         | Pure harness                                                |
//! |----------------------------------|-------------------------------------------------------------|
//! | `seed`                           | the swarm's seed (and the DHT network's); `RAIN_SIM_SEED`   |
//! | `content`                        | the same `.torrent` and bytes ([`TestTorrent::from_parts`]) |
//! | `seeders`, `leechers`            | [`Role::Seeder`], [`Role::Leecher`] nodes                   |
//! | `magnet_leechers`                | the first leechers are [`Role::MagnetLeecher`]s             |
//! | `corrupt_peers`, `stall_peers`   | seeder nodes that corrupt every block / never serve; like the turmoil liars they dial every leecher |
//! | `leecher_links` (no tracker, no DHT) | each leecher is given the seeders and that many earlier leechers |
//! | `latency` (min, max)             | [`NetConfig::latency`] = min, [`NetConfig::jitter`] = max − min (streams stay in order) |
//! | `tracker`, `http_tracker`        | the harness's instant fake tracker (returns every node); the announce protocol is the runtime's, not modelled |
//! | `dht`, `silent_dht_nodes`        | a discovery phase on the DHT harness (router + every rain host + the silent nodes): every host announces, every leecher looks up, and the peers found are given to the swarm; the swarm starts when discovery is over |
//! | `webseed` (Partial, NotFound, Short, Corrupt) | a [`SimWebseed`] (Good, Status(404), Short, Corrupt) |
//! | `budget`                         | liveness: every leecher completes by `faults_end + budget` of swarm time |
//! | `tick`                           | not needed (no steps of fixed length)                      |
//! | [`Fault::Link`]                  | [`NetConfig::links`]                                        |
//! | [`Fault::Partition`]             | [`NetConfig::partitions`] (held, then delivered)            |
//! | [`Fault::Uplink`]                | [`NetConfig::uplinks`]                                      |
//! | [`Fault::Nat`]                   | [`NetConfig::unreachable`]                                  |
//! | [`Fault::Web`]                   | [`Swarm::set_webseed_mode`] at its time                      |
//!
//! Unsupported: [`Fault::Crash`], [`Fault::Join`], [`Fault::Disk`], [`Fault::Udp`], flooding
//! peers, IPv6, the webseed modes Full, BadRange and Trickle, faults naming a host that is not
//! a swarm node (tracker, webseed, DHT hosts), and, with the DHT on, [`Fault::Link`],
//! [`Fault::Partition`] and [`Fault::Web`] (the DHT phase has no per-link latency and runs
//! before the swarm's clock starts).
//!
//! ```no_run
//! use rain_sim::{Scenario, seed_from_env};
//! let s = Scenario::new(seed_from_env(7)).leechers(200).corrupt_peers(3);
//! let report = s.run_pure().unwrap_or_else(|e| panic!("{e}"));
//! assert_eq!(report.completed.len(), 200);
//! let small = Scenario::new(seed_from_env(8)).leechers(3);
//! rain_sim::run(&small).unwrap(); // the same value under turmoil, real sessions
//! small.run_pure().unwrap(); // and in the pure harness
//! ```

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use rain_proto::InfoHash;
use rain_proto::address_book::PeerSource;
use rain_proto::dht::DhtConfig;
use rain_proto::dht::sim::{Sim, SimConfig};
use rain_proto::dht::{DhtEvent, LookupId};
use rain_proto::metainfo::{Limits, Metainfo};
use rain_proto::time::Instant;
use rain_proto::torrent::swarm::{
    NetConfig, NodeSpec, Partition, Role, SimWebseed, Swarm, TestTorrent, WebseedMode,
};
use rain_proto::torrent::{TorrentConfig, TorrentEvent};
use sha1::{Digest, Sha1};

use crate::content::Content;
use crate::run::{PORT, session_config};
use crate::scenario::{Fault, HostId, SEED_ENV, Scenario};
use crate::tracker;
use crate::web::{WebMode, webseed_url};

/// What the pure harness cannot model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsupported {
    /// A fault it has no counterpart for.
    Fault {
        /// The fault.
        fault: Fault,
        /// Why it cannot be modelled.
        why: &'static str,
    },
    /// Peers that flood requests ([`Scenario::flood_peers`]).
    FloodPeers(usize),
    /// IPv6-only hosts ([`Scenario::ipv6`]).
    Ipv6,
    /// A webseed answering as this mode.
    WebMode(WebMode),
}

impl Unsupported {
    /// Why.
    pub fn reason(&self) -> &'static str {
        match self {
            Unsupported::Fault { why, .. } => why,
            Unsupported::FloodPeers(_) => "no request flooder among the swarm's nodes",
            Unsupported::Ipv6 => "the swarm's nodes have IPv4 addresses",
            Unsupported::WebMode(_) => {
                "the simulated webseed answers good, corrupt, short or with a status only"
            }
        }
    }
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsupported::Fault { fault, .. } => write!(f, "fault {fault:?}"),
            Unsupported::FloodPeers(n) => write!(f, "{n} flooding peers"),
            Unsupported::Ipv6 => f.write_str("ipv6"),
            Unsupported::WebMode(m) => write!(f, "webseed mode {m:?}"),
        }?;
        write!(f, " ({})", self.reason())
    }
}

/// Why a pure run failed. Every message names the seed so the run can be replayed.
#[derive(Debug)]
pub enum PureError {
    /// The scenario uses something the pure harness cannot model (see the module doc).
    Unsupported {
        /// The seed.
        seed: u64,
        /// What.
        what: Unsupported,
    },
    /// Setting the run up failed (temp dir, torrent creation).
    Setup(String),
    /// The DHT discovery phase did not finish (bootstraps or lookups).
    Dht {
        /// The seed.
        seed: u64,
        /// What did not finish.
        what: String,
    },
    /// Some leechers did not complete within the budget after the faults ended (or the
    /// harness ran out of steps or work).
    Liveness {
        /// The seed.
        seed: u64,
        /// The leechers still incomplete.
        pending: Vec<HostId>,
        /// Simulated time when the run gave up.
        at: Duration,
        /// Steps taken.
        steps: u64,
        /// The pending leechers' statistics.
        stats: Vec<String>,
    },
    /// A leecher that completed holds different bytes than the source.
    Safety {
        /// The seed.
        seed: u64,
        /// Which leecher.
        host: HostId,
        /// The first difference.
        diff: String,
    },
}

impl fmt::Display for PureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PureError::Unsupported { seed, what } => write!(
                f,
                "seed {seed}: the pure harness cannot run this scenario: unsupported {what}"
            ),
            PureError::Setup(e) => write!(f, "setup failed: {e}"),
            PureError::Dht { seed, what } => write!(
                f,
                "seed {seed}: DHT discovery failed: {what} (replay: {SEED_ENV}={seed})"
            ),
            PureError::Liveness {
                seed,
                pending,
                at,
                steps,
                stats,
            } => write!(
                f,
                "seed {seed}: liveness: {pending:?} incomplete at {at:?} after {steps} steps \
                 (replay: {SEED_ENV}={seed})\nstatistics:\n{}",
                stats.join("\n")
            ),
            PureError::Safety { seed, host, diff } => write!(
                f,
                "seed {seed}: safety: {host} completed with wrong data: {diff} (replay: \
                 {SEED_ENV}={seed})"
            ),
        }
    }
}

impl std::error::Error for PureError {}

/// One swarm node at the end of a pure run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PureHost {
    /// When it reported completion (time since the start of the run, DHT phase included).
    pub completed: Option<Duration>,
    /// Pieces verified present.
    pub have: u32,
    /// Pieces in the torrent.
    pub total: u32,
    /// Payload bytes received.
    pub downloaded: u64,
    /// Payload bytes sent.
    pub uploaded: u64,
    /// Payload bytes received and thrown away (failed hash checks, duplicates).
    pub wasted: u64,
    /// Body bytes the simulated webseed delivered to it.
    pub from_webseeds: u64,
    /// The hosts it banned.
    pub banned: Vec<HostId>,
}

/// What the DHT discovery phase did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhtReport {
    /// DHT nodes: the router, every rain host, the silent nodes.
    pub nodes: usize,
    /// Nodes whose bootstrap found other nodes.
    pub bootstrapped: usize,
    /// Simulated time of the phase.
    pub elapsed: Duration,
    /// Steps taken.
    pub steps: u64,
    /// Datagrams delivered.
    pub datagrams: u64,
    /// The rain hosts each rain host's lookups found.
    pub found: BTreeMap<HostId, Vec<HostId>>,
    /// SHA-1 (hex) of every datagram and event with its time.
    pub trace_hash: String,
}

/// What a pure run reports (the byte check has passed when it is returned).
#[derive(Debug, Clone)]
pub struct PureReport {
    /// The seed.
    pub seed: u64,
    /// The torrent's info-hash (the same as [`crate::run()`]'s for the same scenario).
    pub info_hash: InfoHash,
    /// Every swarm node: seeders, leechers, corrupt and stalling peers.
    pub hosts: BTreeMap<HostId, PureHost>,
    /// When each leecher completed (time since the start, DHT phase included).
    pub completed: BTreeMap<HostId, Duration>,
    /// Leechers whose bytes were checked equal to the source's, file by file.
    pub verified: usize,
    /// Simulated time of the whole run (DHT phase included).
    pub elapsed: Duration,
    /// Steps taken by the swarm (the DHT phase's are in [`DhtReport::steps`]).
    pub steps: u64,
    /// Dials refused by [`Fault::Nat`].
    pub refused_dials: u64,
    /// The DHT discovery phase, with [`Scenario::dht`].
    pub dht: Option<DhtReport>,
    /// SHA-1 (hex) of the run's traces: every event of every node with its time (and the DHT
    /// phase's trace): equal for two runs of the same scenario.
    pub trace_hash: String,
}

impl Scenario {
    /// Runs this scenario in the pure harness ([`run_pure`]).
    pub fn run_pure(&self) -> Result<PureReport, PureError> {
        run_pure(self)
    }
}

/// Where the swarm puts each host: seeders, leechers, corrupt peers, stalling peers.
#[derive(Debug, Clone, Copy)]
struct Layout {
    seeders: usize,
    leechers: usize,
    corrupt: usize,
    stall: usize,
}

impl Layout {
    fn of(s: &Scenario) -> Self {
        Layout {
            seeders: s.seeders,
            leechers: s.leechers,
            corrupt: s.corrupt_peers,
            stall: s.stall_peers,
        }
    }

    fn len(self) -> usize {
        self.seeders + self.leechers + self.corrupt + self.stall
    }

    fn index(self, h: HostId) -> Option<usize> {
        let (base, i, n) = match h {
            HostId::Seeder(i) => (0, i, self.seeders),
            HostId::Leecher(i) => (self.seeders, i, self.leechers),
            HostId::Corrupt(i) => (self.seeders + self.leechers, i, self.corrupt),
            HostId::Stall(i) => (self.seeders + self.leechers + self.corrupt, i, self.stall),
            _ => return None,
        };
        (i < n).then_some(base + i)
    }

    fn host(self, i: usize) -> HostId {
        let mut i = i;
        if i < self.seeders {
            return HostId::Seeder(i);
        }
        i -= self.seeders;
        if i < self.leechers {
            return HostId::Leecher(i);
        }
        i -= self.leechers;
        if i < self.corrupt {
            return HostId::Corrupt(i);
        }
        HostId::Stall(i - self.corrupt)
    }

    fn leechers(self) -> std::ops::Range<usize> {
        self.seeders..self.seeders + self.leechers
    }
}

/// Checks that the pure harness can run `s` (see the module doc), without running it.
pub fn check(s: &Scenario) -> Result<(), Unsupported> {
    if s.flood_peers > 0 {
        return Err(Unsupported::FloodPeers(s.flood_peers));
    }
    if s.ipv6 {
        return Err(Unsupported::Ipv6);
    }
    if let Some(m) = s.webseed {
        webseed_mode(m)?;
    }
    let layout = Layout::of(s);
    let node = |h: &HostId| layout.index(*h).is_some();
    const NOT_A_NODE: &str =
        "it names a host that is not a swarm node (tracker, webseed, DHT hosts)";
    const DHT_PHASE: &str = "with the DHT on, discovery runs before the swarm's clock starts, \
                             on a network without per-link latency or partitions";
    for f in &s.faults {
        let why = match f {
            Fault::Link { a, b, .. } if !(node(a) && node(b)) => NOT_A_NODE,
            Fault::Partition { a, b, .. } if !a.iter().chain(b).all(node) => NOT_A_NODE,
            Fault::Link { .. } | Fault::Partition { .. } | Fault::Web { .. } if s.dht => DHT_PHASE,
            Fault::Web { mode, .. } => {
                webseed_mode(*mode)?;
                continue;
            }
            Fault::Uplink { host, .. } | Fault::Nat { host } if !node(host) => NOT_A_NODE,
            Fault::Link { .. }
            | Fault::Partition { .. }
            | Fault::Uplink { .. }
            | Fault::Nat { .. } => continue,
            Fault::Crash { .. } => {
                "no crashes: the swarm's machines never restart from resume data"
            }
            Fault::Join { .. } => "every swarm node starts at once",
            Fault::Disk { .. } => "no disk: pieces are written to memory",
            Fault::Udp { .. } => {
                "no UDP chaos: the tracker answers at once and the DHT harness only loses \
                 datagrams"
            }
        };
        return Err(Unsupported::Fault {
            fault: f.clone(),
            why,
        });
    }
    Ok(())
}

fn webseed_mode(m: WebMode) -> Result<WebseedMode, Unsupported> {
    match m {
        WebMode::Partial => Ok(WebseedMode::Good),
        WebMode::NotFound => Ok(WebseedMode::Status(404)),
        WebMode::Short => Ok(WebseedMode::Short),
        WebMode::Corrupt => Ok(WebseedMode::Corrupt),
        WebMode::Full | WebMode::BadRange | WebMode::Trickle => Err(Unsupported::WebMode(m)),
    }
}

/// The content of `s`, made exactly as [`crate::run()`] makes it (same trackers and webseed
/// in the `.torrent`), with the swarm's view of it.
fn content_of(s: &Scenario) -> Result<(Content, TestTorrent), PureError> {
    let setup = |e: &dyn fmt::Display| PureError::Setup(e.to_string());
    let tmp = tempfile::Builder::new()
        .prefix("rain-sim-pure-")
        .tempdir()
        .map_err(|e| setup(&e))?;
    let trackers: Vec<String> = match (s.tracker, s.http_tracker) {
        (false, _) => Vec::new(),
        (true, false) => vec![tracker::announce_url()],
        (true, true) => vec![tracker::http_announce_url()],
    };
    let webseeds: Vec<String> = s.webseed.map(|_| webseed_url()).into_iter().collect();
    let content = s
        .content
        .materialize_with(&tmp.path().join("source"), &trackers, &webseeds)
        .map_err(|e| setup(&e))?;
    let mi = Metainfo::from_bytes(&content.torrent, &Limits::default()).map_err(|e| setup(&e))?;
    let mut data = vec![0u8; mi.info.total_length as usize];
    for f in mi.info.files.iter().filter(|f| !f.padding) {
        let rel = file_path(&mi.info.name, mi.info.multi_file, &f.path);
        let (_, bytes) = content
            .files
            .iter()
            .find(|(p, _)| *p == rel)
            .ok_or_else(|| setup(&format!("{} is not in the payload", rel.display())))?;
        let at = f.offset as usize;
        data[at..at + bytes.len()].copy_from_slice(bytes);
    }
    let torrent =
        TestTorrent::from_parts(Bytes::from(mi.info_bytes), data).map_err(|e| setup(&e))?;
    Ok((content, torrent))
}

/// A file's path relative to a storage root, as [`Content::files`] names it.
fn file_path(name: &str, multi_file: bool, path: &[String]) -> PathBuf {
    if multi_file {
        path.iter().fold(PathBuf::from(name), |acc, c| acc.join(c))
    } else {
        PathBuf::from(name)
    }
}

/// The torrent configuration of the turmoil runs' sessions ([`session_config`]), as the
/// runtime derives it.
fn torrent_config() -> TorrentConfig {
    session_config(Path::new("."), 0).torrent_config()
}

fn net_config(s: &Scenario, layout: Layout) -> NetConfig {
    let mut net = NetConfig {
        latency: s.latency.0,
        jitter: s.latency.1.saturating_sub(s.latency.0),
        tracker: s.tracker,
        max_steps: u64::MAX,
        ..NetConfig::default()
    };
    let idx = |h: &HostId| layout.index(*h).expect("checked: a swarm node");
    for f in &s.faults {
        match f {
            Fault::Link { a, b, min, max } => {
                let (a, b) = (idx(a), idx(b));
                net.links
                    .insert((a.min(b), a.max(b)), (*min, (*max).max(*min)));
            }
            Fault::Partition { a, b, from, until } => net.partitions.push(Partition {
                a: a.iter().map(idx).collect(),
                b: b.iter().map(idx).collect(),
                from: *from,
                until: *until,
            }),
            Fault::Uplink {
                host,
                bytes_per_sec,
            } => {
                net.uplinks.insert(idx(host), *bytes_per_sec);
            }
            Fault::Nat { host } => {
                net.unreachable.insert(idx(host));
            }
            Fault::Web { .. }
            | Fault::Crash { .. }
            | Fault::Join { .. }
            | Fault::Disk { .. }
            | Fault::Udp { .. } => {}
        }
    }
    net
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Runs `s` in the pure harness: prints the scenario (seed first, as [`crate::run()`] does),
/// refuses what it cannot model ([`check`]), runs the DHT discovery phase if [`Scenario::dht`]
/// is on, then the swarm until every leecher completes or `faults_end + budget` of swarm time
/// passes, and checks every leecher's bytes against the source, file by file.
pub fn run_pure(s: &Scenario) -> Result<PureReport, PureError> {
    eprintln!("rain-sim pure: {s:?}");
    let seed = s.seed;
    check(s).map_err(|what| PureError::Unsupported { seed, what })?;
    let layout = Layout::of(s);
    let (content, torrent) = content_of(s)?;
    let info_hash = torrent.info_hash;
    let dht = if s.dht {
        Some(dht_phase(s, layout, info_hash)?)
    } else {
        None
    };
    let offset = dht.as_ref().map_or(Duration::ZERO, |d| d.elapsed);

    let specs: Vec<NodeSpec> = (0..layout.len())
        .map(|i| match layout.host(i) {
            HostId::Seeder(_) => NodeSpec::new(Role::Seeder),
            HostId::Leecher(k) if k < s.magnet_leechers => NodeSpec::new(Role::MagnetLeecher),
            HostId::Corrupt(_) => NodeSpec {
                corrupt: true,
                ..NodeSpec::new(Role::Seeder)
            },
            HostId::Stall(_) => NodeSpec {
                stall: true,
                ..NodeSpec::new(Role::Seeder)
            },
            _ => NodeSpec::new(Role::Leecher),
        })
        .collect();
    let webseeds: Vec<SimWebseed> = s
        .webseed
        .map(|m| SimWebseed::new(&webseed_url(), webseed_mode(m).expect("checked")))
        .into_iter()
        .collect();
    let mut swarm = Swarm::with_webseeds(
        seed,
        torrent,
        &specs,
        &torrent_config(),
        net_config(s, layout),
        webseeds,
    );

    // Introductions, as the turmoil hosts get them.
    let mut intro: BTreeMap<usize, (Vec<usize>, PeerSource)> = BTreeMap::new();
    if let Some(d) = &dht {
        for (h, found) in &d.found {
            let peers = found.iter().filter_map(|f| layout.index(*f)).collect();
            intro.insert(
                layout.index(*h).expect("a rain host"),
                (peers, PeerSource::Dht),
            );
        }
    } else if !s.tracker {
        for (k, i) in layout.leechers().enumerate() {
            let mut peers: Vec<usize> = (0..s.seeders).collect();
            let first = k.saturating_sub(s.leecher_links);
            peers.extend((first..k).map(|l| layout.seeders + l));
            intro.insert(i, (peers, PeerSource::Manual));
        }
    }
    // The liars dial every leecher, whatever the discovery.
    for i in layout.seeders + layout.leechers..layout.len() {
        intro.insert(i, (layout.leechers().collect(), PeerSource::Manual));
    }
    for (i, (peers, source)) in intro {
        let now = swarm.now();
        let addrs: Vec<SocketAddr> = peers.iter().map(|&p| swarm.nodes()[p].addr).collect();
        for addr in addrs {
            swarm.node_mut(i).torrent.add_peer_addr(now, addr, source);
        }
        swarm.drain(i);
    }

    // The webseed's mode changes, in time order.
    let mut changes: Vec<(Duration, WebseedMode)> = s
        .faults
        .iter()
        .filter_map(|f| match f {
            Fault::Web { at, mode } if s.webseed.is_some() => {
                Some((*at, webseed_mode(*mode).expect("checked")))
            }
            _ => None,
        })
        .collect();
    changes.sort_by_key(|c| c.0);

    let deadline = Instant::ZERO + s.faults_end() + s.budget;
    let leechers = layout.leechers();
    let done = |sw: &Swarm| {
        sw.nodes()[leechers.clone()]
            .iter()
            .all(|n| n.torrent.is_complete())
    };
    let mut next = 0;
    loop {
        while next < changes.len() && Instant::ZERO + changes[next].0 <= swarm.now() {
            swarm.set_webseed_mode(0, changes[next].1);
            next += 1;
        }
        let change_at = changes.get(next).map(|c| Instant::ZERO + c.0);
        let stopped = swarm.run_until(|sw| {
            sw.now() > deadline || change_at.is_some_and(|t| sw.now() >= t) || done(sw)
        });
        // Mode changes after every leecher completed change nothing.
        if done(&swarm) {
            break;
        }
        if !stopped || swarm.now() > deadline {
            let pending: Vec<usize> = leechers
                .clone()
                .filter(|&i| !swarm.nodes()[i].torrent.is_complete())
                .collect();
            let stats = pending
                .iter()
                .copied()
                .chain(0..s.seeders)
                .map(|i| {
                    let n = &swarm.nodes()[i];
                    let st = n.torrent.stats();
                    format!(
                        "{}: {:?} pieces {}/{} peers {} downloaded {} wasted {}",
                        layout.host(i),
                        st.status,
                        st.pieces.have,
                        st.pieces.total,
                        st.peers.total,
                        st.bytes.downloaded,
                        st.bytes.wasted
                    )
                })
                .collect();
            return Err(PureError::Liveness {
                seed,
                pending: pending.into_iter().map(|i| layout.host(i)).collect(),
                at: offset + swarm.now().saturating_duration_since(Instant::ZERO),
                steps: swarm.steps(),
                stats,
            });
        }
    }

    // Safety: every leecher's bytes, file by file, against the source.
    let info = swarm.torrent().info.clone();
    for i in layout.leechers() {
        let node = &swarm.nodes()[i];
        for f in info.files.iter().filter(|f| !f.padding) {
            let rel = file_path(&info.name, info.multi_file, &f.path);
            let want = content
                .files
                .iter()
                .find(|(p, _)| *p == rel)
                .map(|(_, b)| b.as_slice())
                .unwrap_or_default();
            let got = &node.data[f.offset as usize..(f.offset + f.length) as usize];
            if let Some(at) = got.iter().zip(want).position(|(a, b)| a != b) {
                return Err(PureError::Safety {
                    seed,
                    host: layout.host(i),
                    diff: format!("{}: differs at byte {at}", rel.display()),
                });
            }
        }
    }

    let by_ip: BTreeMap<IpAddr, usize> = swarm
        .nodes()
        .iter()
        .enumerate()
        .map(|(i, n)| (n.addr.ip(), i))
        .collect();
    let since = |t: Instant| offset + t.saturating_duration_since(Instant::ZERO);
    let mut hosts = BTreeMap::new();
    let mut completed = BTreeMap::new();
    for (i, n) in swarm.nodes().iter().enumerate() {
        let host = layout.host(i);
        let st = n.torrent.stats();
        let at = n
            .events
            .iter()
            .find(|(_, e)| *e == TorrentEvent::Completed)
            .map(|(t, _)| since(*t));
        if let (HostId::Leecher(_), Some(at)) = (host, at) {
            completed.insert(host, at);
        }
        let banned = n
            .events
            .iter()
            .filter_map(|(_, e)| match e {
                TorrentEvent::PeerBanned { ip, .. } => by_ip.get(ip).map(|&b| layout.host(b)),
                _ => None,
            })
            .collect();
        hosts.insert(
            host,
            PureHost {
                completed: at,
                have: st.pieces.have,
                total: st.pieces.total,
                downloaded: st.bytes.downloaded,
                uploaded: st.bytes.uploaded,
                wasted: st.bytes.wasted,
                from_webseeds: n.webseed_bytes.iter().sum(),
                banned,
            },
        );
    }
    let elapsed = since(swarm.now());
    let mut h = Sha1::new();
    if let Some(d) = &dht {
        h.update(format!("dht {}\n", d.trace_hash).as_bytes());
    }
    h.update(
        format!(
            "swarm {:016x} {} {}\n",
            swarm.trace_hash(),
            swarm.now().as_nanos(),
            swarm.steps()
        )
        .as_bytes(),
    );
    Ok(PureReport {
        seed,
        info_hash,
        hosts,
        completed,
        verified: layout.leechers,
        elapsed,
        steps: swarm.steps(),
        refused_dials: swarm.refused_dials(),
        dht,
        trace_hash: hex(&h.finalize()),
    })
}

/// Runs only the DHT discovery phase of `s` (with [`Scenario::dht`] on): a network of the
/// router, every rain host and the silent nodes bootstraps; every rain host announces the
/// torrent and every leecher looks it up. For DHT volume (a thousand nodes) without a swarm.
pub fn run_pure_dht(s: &Scenario) -> Result<DhtReport, PureError> {
    eprintln!("rain-sim pure dht: {s:?}");
    let seed = s.seed;
    check(s).map_err(|what| PureError::Unsupported { seed, what })?;
    let (_, torrent) = content_of(s)?;
    dht_phase(s, Layout::of(s), torrent.info_hash)
}

/// Time allowed for a round of lookups.
const LOOKUP_LIMIT: Duration = Duration::from_mins(2);
/// Pause between two hosts starting their lookups (rain paces its DHT announces).
const LOOKUP_STAGGER: Duration = Duration::from_millis(20);

/// The DHT discovery phase: DHT node 0 is the router, `1..=honest` the rain hosts (seeders,
/// then leechers), then the silent nodes.
fn dht_phase(s: &Scenario, layout: Layout, info_hash: InfoHash) -> Result<DhtReport, PureError> {
    let seed = s.seed;
    let fail = |what: String| PureError::Dht { seed, what };
    let honest = s.seeders + s.leechers;
    let n = 1 + honest + s.silent_dht_nodes;
    let cfg = SimConfig {
        nodes: n,
        silent_percent: 0,
        seed: seed ^ 0x0064_6874_7075_7265,
        dht: DhtConfig::default(),
        min_latency: s.latency.0,
        max_latency: s.latency.1.max(s.latency.0),
        ..SimConfig::default()
    };
    let settled = Instant::ZERO + cfg.join_interval * n as u32 + Duration::from_mins(1);
    let mut sim = Sim::new(cfg);
    for k in 0..s.silent_dht_nodes {
        sim.set_silent(1 + honest + k, true);
    }
    let booted = |sim: &Sim, i: usize| {
        sim.nodes()[i]
            .events
            .iter()
            .any(|e| matches!(e, DhtEvent::BootstrapDone { nodes } if *nodes > 0))
    };
    let all_booted = |sim: &Sim| sim.all_joined() && (1..=honest).all(|i| booted(sim, i));
    if !sim.run_until(settled, all_booted) {
        let stuck: Vec<HostId> = (1..=honest)
            .filter(|&i| !booted(&sim, i))
            .map(|i| layout.host(i - 1))
            .collect();
        return Err(fail(format!("bootstraps unfinished: {stuck:?}")));
    }

    // Every rain host announces (seeders first, as they have the torrent from the start);
    // then every leecher looks again, to find those that announced after it.
    let mut lookups: Vec<(usize, LookupId)> = Vec::new();
    let rounds: [(Vec<usize>, Option<u16>); 2] = [
        ((1..=honest).collect(), Some(PORT)),
        (layout.leechers().map(|i| i + 1).collect(), None),
    ];
    for (who, announce) in rounds {
        let start = lookups.len();
        for i in who {
            sim.run_for(LOOKUP_STAGGER);
            let id = sim
                .get_peers(i, info_hash, announce)
                .ok_or_else(|| fail(format!("{} cannot start a lookup", layout.host(i - 1))))?;
            lookups.push((i, id));
        }
        let round = &lookups[start..];
        let limit = sim.now() + LOOKUP_LIMIT;
        let finished = |sim: &Sim| round.iter().all(|(i, l)| sim.lookup_done(*i, *l).is_some());
        if !sim.run_until(limit, finished) {
            return Err(fail(format!("lookups unfinished after {LOOKUP_LIMIT:?}")));
        }
    }

    let mut found: BTreeMap<HostId, Vec<HostId>> = BTreeMap::new();
    for &(i, l) in &lookups {
        let peers = sim.lookup_peers(i, l);
        let entry = found.entry(layout.host(i - 1)).or_default();
        for p in peers {
            let Some(j) = (1..=honest).find(|&j| sim.nodes()[j].addr.ip() == p.ip()) else {
                continue;
            };
            let h = layout.host(j - 1);
            if j != i && p.port() == PORT && !entry.contains(&h) {
                entry.push(h);
            }
        }
    }
    for v in found.values_mut() {
        v.sort();
    }
    Ok(DhtReport {
        nodes: n,
        bootstrapped: sim.bootstrapped(),
        elapsed: sim.now().saturating_duration_since(Instant::ZERO),
        steps: sim.steps(),
        datagrams: sim.datagrams(),
        found,
        trace_hash: hex(&sim.trace_hash()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::ContentSpec;

    #[test]
    fn layout_round_trips() {
        let s = Scenario::new(1).seeders(2).leechers(3).corrupt_peers(1);
        let mut s = s;
        s.stall_peers = 2;
        let l = Layout::of(&s);
        for i in 0..l.len() {
            assert_eq!(l.index(l.host(i)), Some(i));
        }
        assert_eq!(l.index(HostId::Tracker), None);
        assert_eq!(l.index(HostId::Leecher(3)), None);
    }

    #[test]
    fn content_is_the_turmoil_runs_torrent() {
        let s = Scenario::new(5).content(ContentSpec::random(5, 300 << 10, 4));
        let (content, torrent) = content_of(&s).unwrap();
        assert_eq!(content.info_hash, torrent.info_hash);
        assert_eq!(torrent.data.len() as u64, torrent.info.total_length);
    }

    #[test]
    fn small_scenario_completes() {
        let s = Scenario::new(3)
            .leechers(4)
            .magnet_leechers(1)
            .corrupt_peers(1);
        let r = run_pure(&s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.completed.len(), 4);
        assert_eq!(r.verified, 4);
    }

    #[test]
    fn crash_is_unsupported() {
        let s = Scenario::new(3).fault(Fault::Crash {
            host: HostId::Seeder(0),
            at: Duration::ZERO,
            restart: None,
        });
        assert!(matches!(
            run_pure(&s),
            Err(PureError::Unsupported {
                what: Unsupported::Fault {
                    fault: Fault::Crash { .. },
                    ..
                },
                ..
            })
        ));
    }
}

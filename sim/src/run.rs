//! Running a [`Scenario`]: a turmoil simulation whose hosts are real rain [`Session`]s over
//! [`TurmoilNet`], plus the misbehaving peers, with the fault plan applied in simulated time;
//! then the liveness and safety checks.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, UNIX_EPOCH};

use rain_proto::dht::DhtConfig;
use rain_proto::rng::Seed;
use rain_runtime::announce::{Announcer, NoAnnouncer};
use rain_runtime::blocking::BlockingMode;
use rain_runtime::dht::{DhtHandle, DhtSettings};
use rain_runtime::net::Network;
use rain_runtime::resume::{ResumeDb, ResumeDbOptions, unpack_bitfield};
use rain_runtime::session::{AddOptions, Session, SessionConfig, SessionEvent};
use rain_runtime::tracker_client::{TrackerClient, TrackerConfig};
use rain_runtime::udp_tracker::UdpTrackerConfig;
use sha1::{Digest, Sha1};
use tokio::sync::broadcast::error::RecvError;

use crate::content::Content;
use crate::disk::{Disk, DiskCounters, DiskFault};
use crate::evil::{EvilPeer, Misbehaviour};
use crate::net::{Nat, TurmoilNet, UdpChaos, UdpCounters, UdpCounts};
use crate::safety::{Bounds, PeerLoad, violations};
use crate::scenario::{Fault, HostId, SEED_ENV, Scenario};
use crate::tracker::{self, TrackerStats};
use crate::web::{self, WebCounters, WebMode, WebServer};

/// The port every simulated session listens on (each host has one torrent).
pub const PORT: u16 = 6881;
/// The id every simulated session gives its torrent.
pub const TORRENT_ID: &str = "t";
/// The UDP port of every simulated DHT node (rain sessions, the router, the silent nodes).
pub const DHT_PORT: u16 = 7246;
/// `dht-announce-interval` of the simulated sessions: short, for simulated minutes.
pub const DHT_ANNOUNCE_INTERVAL: Duration = Duration::from_secs(30);
/// `dht-min-announce-interval` of the simulated sessions (while a torrent wants more peers).
pub const DHT_MIN_ANNOUNCE_INTERVAL: Duration = Duration::from_secs(5);
/// `webseed-retry-interval` of the simulated sessions: a failed webseed is tried again after
/// this long (short, for simulated minutes).
pub const WEBSEED_RETRY_INTERVAL: Duration = Duration::from_secs(5);
/// Extra simulated time turmoil may run past the liveness deadline before it gives up itself.
const TURMOIL_SLACK: Duration = Duration::from_secs(60);

/// One entry of the event trace: what a host (or the fault plan) did, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEvent {
    /// Simulated time since the start of the run.
    pub at: Duration,
    /// The host (`"sim"` for the fault plan).
    pub host: String,
    /// What happened (`start #2`, `completed`, `metadata`, `Crash(Seeder(0))`…).
    pub what: String,
    /// Details that may vary with timing (counters at completion); empty for most events.
    pub detail: String,
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>8}ms {:<10} {}",
            self.at.as_millis(),
            self.host,
            self.what
        )?;
        if !self.detail.is_empty() {
            write!(f, " {}", self.detail)?;
        }
        Ok(())
    }
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Every event in the order it happened.
    pub trace: Vec<TraceEvent>,
    /// Simulated time at which each leecher last completed.
    pub completed: BTreeMap<HostId, Duration>,
    /// Each leecher's counters when it last completed.
    pub reports: BTreeMap<HostId, HostReport>,
    /// Blocks the corrupt peers served.
    pub corrupt_blocks_served: u64,
    /// Requests the flooding peers sent.
    pub flood_requests_sent: u64,
    /// Datagrams the silent DHT nodes received (and dropped).
    pub silent_dht_datagrams: u64,
    /// Announces the simulated tracker answered, over all its incarnations (0 without
    /// [`Scenario::tracker`]).
    pub tracker_announces: u64,
    /// UDP requests the tracker got again byte for byte (duplicated by the network).
    pub tracker_duplicate_requests: u64,
    /// What [`Fault::Udp`] did to the datagrams of every host (zeros without it).
    pub udp: UdpCounts,
    /// Connections to hosts behind a [`Fault::Nat`] that were refused.
    pub nat_refused: u64,
    /// What the webseed served (zeros without [`Scenario::webseed`]).
    pub web: WebCounters,
    /// The webseed's counters just before each [`Fault::Web`] changed its mode, with when
    /// and the new mode.
    pub web_changes: Vec<(Duration, WebMode, WebCounters)>,
    /// What each rain host's disk faults did (all zeros without [`Fault::Disk`]).
    pub disks: BTreeMap<HostId, DiskCounters>,
    /// Simulated time of the whole run.
    pub elapsed: Duration,
    /// Turmoil steps taken.
    pub steps: u64,
}

impl Outcome {
    /// SHA-1 (hex) of the whole timed trace: equal for two runs that did the same things at the
    /// same simulated times.
    pub fn trace_hash(&self) -> String {
        hash_lines(self.trace.iter().map(ToString::to_string))
    }

    /// SHA-1 (hex) of the trace without times or details, sorted: what each host lived
    /// through, independent of how the hosts' work interleaved and of timing-dependent counters.
    pub fn outcome_hash(&self) -> String {
        let mut lines: Vec<String> = self
            .trace
            .iter()
            .map(|e| format!("{} {}", e.host, e.what))
            .collect();
        lines.sort();
        hash_lines(lines)
    }
}

fn hash_lines(lines: impl IntoIterator<Item = String>) -> String {
    let mut h = Sha1::new();
    for l in lines {
        h.update(l.as_bytes());
        h.update(b"\n");
    }
    h.finalize().iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Why a run failed. Every message names the seed so the run can be replayed.
#[derive(Debug)]
pub enum SimError {
    /// Setting the run up failed (temp dirs, torrent creation).
    Setup(String),
    /// turmoil stopped: a host's software returned an error, or a panic.
    Turmoil {
        /// The seed.
        seed: u64,
        /// turmoil's error.
        error: String,
    },
    /// Some leechers did not complete within the budget after the faults ended.
    Liveness {
        /// The seed.
        seed: u64,
        /// The leechers still incomplete.
        pending: Vec<HostId>,
        /// Simulated time when the run gave up.
        at: Duration,
        /// The last trace lines.
        tail: Vec<String>,
        /// The incomplete leechers' last sampled statistics.
        stats: Vec<String>,
    },
    /// A host's statistics broke a safety check ([`crate::safety`]) during the run.
    Unsafe {
        /// The seed.
        seed: u64,
        /// Each violation with its time and host.
        violations: Vec<String>,
    },
    /// A leecher that reported completion holds different bytes than the source.
    Safety {
        /// The seed.
        seed: u64,
        /// Which leecher.
        host: HostId,
        /// The first difference.
        diff: String,
    },
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::Setup(e) => write!(f, "setup failed: {e}"),
            SimError::Turmoil { seed, error } => {
                write!(
                    f,
                    "seed {seed}: simulation failed: {error} (replay: {SEED_ENV}={seed})"
                )
            }
            SimError::Liveness {
                seed,
                pending,
                at,
                tail,
                stats,
            } => write!(
                f,
                "seed {seed}: liveness: {pending:?} incomplete at {at:?} (replay: \
                 {SEED_ENV}={seed})\nlast events:\n{}\nlast statistics:\n{}",
                tail.join("\n"),
                stats.join("\n")
            ),
            SimError::Unsafe { seed, violations } => write!(
                f,
                "seed {seed}: safety checks failed during the run (replay: {SEED_ENV}={seed}):\n{}",
                violations.join("\n")
            ),
            SimError::Safety { seed, host, diff } => write!(
                f,
                "seed {seed}: safety: {host} completed with wrong data: {diff} (replay: \
                 {SEED_ENV}={seed})"
            ),
        }
    }
}

impl std::error::Error for SimError {}

/// Per-host bookkeeping shared by the hosts and the driver.
#[derive(Debug, Default)]
struct Board {
    trace: Vec<TraceEvent>,
    /// Software starts per host (1 on the first start).
    incarnation: BTreeMap<String, u32>,
    /// The incarnation in which each host last reported `Completed`, and when.
    completed: BTreeMap<String, (u32, Duration)>,
    /// Each host's counters when it last completed.
    reports: BTreeMap<String, HostReport>,
    /// Each host's latest torrent statistics, sampled every [`STATS_INTERVAL`] (for failure
    /// reports only: they are not part of the trace).
    last_stats: BTreeMap<String, String>,
    /// Safety violations seen in the samples, with host and time.
    unsafe_samples: Vec<String>,
}

/// How often each host samples its statistics, for the safety checks ([`crate::safety`]) and
/// for failure reports.
pub const STATS_INTERVAL: Duration = Duration::from_millis(200);

/// A session's torrent counters at the moment it reported completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HostReport {
    /// Pieces verified present.
    pub have: u32,
    /// Pieces in the torrent.
    pub total: u32,
    /// Bytes in verified pieces.
    pub completed: u64,
    /// Bytes of the torrent.
    pub size: u64,
    /// Payload bytes received.
    pub downloaded: u64,
    /// Payload bytes received and thrown away (failed hash checks, duplicates).
    pub wasted: u64,
    /// Of `downloaded`, the bytes that came from webseeds.
    pub from_webseeds: u64,
}

impl HostReport {
    fn of(
        s: &rain_proto::torrent::Stats,
        webseeds: &[rain_runtime::webseed::WebseedStatus],
    ) -> Self {
        HostReport {
            have: s.pieces.have,
            total: s.pieces.total,
            completed: s.bytes.completed,
            size: s.bytes.total,
            downloaded: s.bytes.downloaded,
            wasted: s.bytes.wasted,
            from_webseeds: webseeds.iter().map(|w| w.downloaded).sum(),
        }
    }
}

type SharedBoard = Arc<Mutex<Board>>;

fn lock(b: &SharedBoard) -> std::sync::MutexGuard<'_, Board> {
    b.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The environment variable that makes every host print each statistics sample
/// (`RAIN_SIM_VERBOSE=1`), to see a replayed failure unfold.
pub const VERBOSE_ENV: &str = "RAIN_SIM_VERBOSE";

fn verbose() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os(VERBOSE_ENV).is_some_and(|v| v != "0"))
}

fn sim_now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

/// What one rain host runs with.
#[derive(Debug, Clone)]
struct PeerHost {
    name: String,
    dir: PathBuf,
    seed: u64,
    content: Arc<Content>,
    seeder: bool,
    magnet: bool,
    peers: Vec<String>,
    /// `Some(bootstrap nodes)`: run the DHT.
    dht: Option<Vec<String>>,
    /// Announce to the simulated tracker (the torrent and magnet name it).
    tracker: bool,
    /// The software starts only at this simulated time ([`Fault::Join`]).
    join_at: Duration,
    /// Its disk, whose faults the plan switches ([`Fault::Disk`]).
    disk: Arc<Disk>,
    net: TurmoilNet,
    board: SharedBoard,
}

impl PeerHost {
    fn record(&self, what: String, detail: String) {
        lock(&self.board).trace.push(TraceEvent {
            at: sim_now(),
            host: self.name.clone(),
            what,
            detail,
        });
    }

    /// After a crash, before the software starts again: every piece the resume store records
    /// complete must be intact on disk (catalog rows R57/R59). A breach is a safety
    /// violation of the run.
    fn check_recorded_pieces_are_intact(&self) {
        let db = self.dir.join("session.db");
        let Ok(db) = ResumeDb::open(&db, &ResumeDbOptions::default()) else {
            return;
        };
        let Ok(Some(record)) = db.get_torrent(TORRENT_ID) else {
            return;
        };
        drop(db);
        let Some(recorded) = record
            .progress
            .bitfield
            .and_then(|b| unpack_bitfield(&b, self.content.pieces as usize))
        else {
            return;
        };
        let root = self.dir.join("data").join(TORRENT_ID);
        let intact = match self.content.intact_pieces(&root) {
            Ok(intact) => intact,
            Err(e) => {
                let at = sim_now();
                lock(&self.board).unsafe_samples.push(format!(
                    "{at:?} {}: cannot check the data after a crash: {e}",
                    self.name
                ));
                return;
            }
        };
        let broken: Vec<usize> = (0..recorded.len())
            .filter(|&i| recorded[i] && !intact[i])
            .collect();
        if !broken.is_empty() {
            let at = sim_now();
            lock(&self.board).unsafe_samples.push(format!(
                "{at:?} {}: pieces {broken:?} recorded complete but not intact on disk after a \
                 crash",
                self.name
            ));
        }
    }

    async fn run(self) -> turmoil::Result {
        // Only a late joiner sleeps: even a zero sleep would cost the others a turmoil step.
        if let Some(wait) = self.join_at.checked_sub(sim_now()).filter(|d| !d.is_zero()) {
            tokio::time::sleep(wait).await;
        }
        let incarnation = {
            let mut b = lock(&self.board);
            let n = b.incarnation.entry(self.name.clone()).or_insert(0);
            *n += 1;
            *n
        };
        self.record(format!("start #{incarnation}"), String::new());
        if incarnation > 1 {
            self.check_recorded_pieces_are_intact();
        }
        let data_dir = self.dir.join("data");
        if self.seeder && !data_dir.exists() {
            self.content.write_to(&data_dir.join(TORRENT_ID))?;
        }
        let mut config = session_config(&self.dir, self.seed);
        config.storage_layer = self.disk.layer();
        // The listeners (and the DHT) on the network's own family: `::` on an IPv6 one.
        config.host = self.net.any(0).ip();
        if let Some(bootstrap) = &self.dht {
            enable_dht(&mut config, bootstrap.clone());
            config.dht_host = self.net.any(0).ip();
        }
        let bounds = Bounds::of(&config);
        let mut prev_bytes = None;
        let announcer: Arc<dyn Announcer> = if self.tracker {
            Arc::new(TrackerClient::new(
                self.net.clone(),
                sim_tracker_config(),
                Seed::from_u64(self.seed),
            ))
        } else {
            Arc::new(NoAnnouncer)
        };
        let session = Session::with_parts(config, self.net.clone(), announcer).await?;
        let mut events = session.subscribe();
        if session.get(TORRENT_ID).is_none() {
            let opts = AddOptions {
                id: Some(TORRENT_ID.to_owned()),
                ..AddOptions::default()
            };
            if self.magnet {
                session.add_magnet(&self.content.magnet(), opts).await?;
            } else {
                session.add_torrent(&self.content.torrent, opts).await?;
            }
        }
        for p in &self.peers {
            session.add_peer(TORRENT_ID, &format!("{p}:{PORT}")).await?;
        }
        let mut sample = tokio::time::interval(STATS_INTERVAL);
        loop {
            let received = tokio::select! {
                biased;
                e = events.recv() => e,
                _ = sample.tick() => {
                    if let Ok(st) = session.stats(TORRENT_ID).await {
                        let s = &st.stats;
                        let views = session.peers(TORRENT_ID).await.unwrap_or_default();
                        let loads: Vec<PeerLoad> = views.iter().map(PeerLoad::from).collect();
                        let broken =
                            violations(&bounds, prev_bytes.as_ref(), &s.pieces, &s.bytes, &loads);
                        prev_bytes = Some(s.bytes);
                        if !broken.is_empty() {
                            let at = sim_now();
                            lock(&self.board).unsafe_samples.extend(
                                broken.into_iter().map(|b| format!("{at:?} {}: {b}", self.name)),
                            );
                        }
                        // Each peer as addr/flags/requests out/in: s seed, c chokes us, n snubbed, C we choke.
                        let peers: Vec<String> = views
                            .iter()
                            .map(|p| {
                                let flag = |on: bool, c: char| if on { c } else { '-' };
                                format!(
                                    "{}/{}{}{}{}/{}/{}",
                                    p.addr,
                                    flag(p.seed, 's'),
                                    flag(p.peer_choking, 'c'),
                                    flag(p.snubbed, 'n'),
                                    flag(p.am_choking, 'C'),
                                    p.requests_out,
                                    p.requests_in
                                )
                            })
                            .collect();
                        let mut line = format!(
                            "{:?} pieces {}/{} peers {} addresses {:?} downloads {:?} wasted {} \
                             [{}]",
                            st.status, s.pieces.have, s.pieces.total, s.peers.total,
                            s.addresses, s.downloads, s.bytes.wasted, peers.join(" ")
                        );
                        if let Some(d) = session.dht_stats().await {
                            let _ = write!(line, " dht {d:?}");
                        }
                        if verbose() {
                            eprintln!("{:>8}ms {:<10} {line}", sim_now().as_millis(), self.name);
                        }
                        lock(&self.board).last_stats.insert(self.name.clone(), line);
                    }
                    continue;
                }
            };
            let (what, detail) = match received {
                Ok(SessionEvent::Completed { .. }) => {
                    let webseeds = session.webseeds(TORRENT_ID).await.unwrap_or_default();
                    let report = session
                        .stats(TORRENT_ID)
                        .await
                        .map(|s| HostReport::of(&s.stats, &webseeds));
                    let mut b = lock(&self.board);
                    b.completed
                        .insert(self.name.clone(), (incarnation, sim_now()));
                    if let Ok(r) = report {
                        b.reports.insert(self.name.clone(), r);
                    }
                    ("completed".to_owned(), format!("{report:?}"))
                }
                Ok(SessionEvent::MetadataReceived { .. }) => ("metadata".to_owned(), String::new()),
                Ok(SessionEvent::Listening { port, .. }) => {
                    (format!("listening {port}"), String::new())
                }
                Ok(SessionEvent::Stopped { error, .. }) => {
                    (format!("stopped {error:?}"), String::new())
                }
                Err(RecvError::Lagged(n)) => ("lagged".to_owned(), n.to_string()),
                Err(RecvError::Closed) => return Ok(()),
            };
            self.record(what, detail);
        }
    }
}

/// The session configuration of simulated host with data under `dir`.
pub fn session_config(dir: &Path, seed: u64) -> SessionConfig {
    SessionConfig {
        database: dir.join("session.db"),
        data_dir: dir.join("data"),
        port_begin: PORT,
        port_end: PORT + 1,
        resume_write_interval: Duration::from_secs(5),
        hash_threads: 1,
        seed: Some(seed),
        webseed_retry_interval: WEBSEED_RETRY_INTERVAL,
        // Disk, hashing and database jobs on the host's own task: a blocking-pool thread
        // finishes at a real-time moment, which would make the event order unreproducible.
        blocking: BlockingMode::Inline,
        ..SessionConfig::default()
    }
}

/// Turns the DHT on in `config`: UDP [`DHT_PORT`] on every address, bootstrapping from
/// `bootstrap` (`host:port`), with lookup intervals short enough for simulated time.
pub fn enable_dht(config: &mut SessionConfig, bootstrap: Vec<String>) {
    config.dht_enabled = true;
    config.dht_host = Ipv4Addr::UNSPECIFIED.into();
    config.dht_port = DHT_PORT;
    config.dht_bootstrap_nodes = bootstrap;
    config.dht_announce_interval = DHT_ANNOUNCE_INTERVAL;
    config.dht_min_announce_interval = DHT_MIN_ANNOUNCE_INTERVAL;
}

/// How simulated sessions reach the tracker: BEP 15's clock scaled down fifteenfold
/// (retransmit after 1 s, doubling; connection ids kept 4 s), three retries, and 10 s per
/// request, so that an outage costs simulated seconds, not minutes.
pub fn sim_tracker_config() -> TrackerConfig {
    TrackerConfig {
        udp: UdpTrackerConfig {
            retransmit_base: Duration::from_secs(1),
            max_retries: 3,
            timeout: Duration::from_secs(10),
            ..UdpTrackerConfig::default()
        },
        ..TrackerConfig::default()
    }
}

/// The router: a bare DHT node (no session, no torrent) on [`DHT_PORT`] that bootstraps from
/// nobody; every rain host bootstraps from it. Runs until the simulation ends.
async fn run_dht_router(net: TurmoilNet, seed: u64, board: SharedBoard) -> turmoil::Result {
    let settings = DhtSettings {
        bind: net.any(DHT_PORT),
        bootstrap: Vec::new(),
        saved_nodes: None,
        config: DhtConfig::default(),
    };
    let dht = DhtHandle::start(
        net,
        settings,
        Seed::from_u64(seed),
        tokio::time::Instant::now(),
    )
    .await?;
    lock(&board).trace.push(TraceEvent {
        at: sim_now(),
        host: HostId::DhtRouter.name(),
        what: "dht up".to_owned(),
        detail: String::new(),
    });
    let mut sample = tokio::time::interval(STATS_INTERVAL);
    loop {
        sample.tick().await;
        if let Some(st) = dht.stats().await {
            lock(&board)
                .last_stats
                .insert(HostId::DhtRouter.name(), format!("dht {st:?}"));
        }
    }
}

/// A silent DHT node: binds [`DHT_PORT`] and drops every datagram unanswered.
async fn run_silent_dht(net: TurmoilNet, received: Arc<AtomicU64>) -> turmoil::Result {
    let socket = turmoil::net::UdpSocket::bind(net.any(DHT_PORT)).await?;
    let mut buf = vec![0u8; 4096];
    loop {
        socket.recv_from(&mut buf).await?;
        received.fetch_add(1, Ordering::Relaxed);
    }
}

fn host_seed(seed: u64, host: HostId) -> u64 {
    let mut h = Sha1::new();
    h.update(seed.to_le_bytes());
    h.update(host.name().as_bytes());
    let d = h.finalize();
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// The datagram faults of the run ([`Fault::Udp`]), if any.
fn udp_chaos_of(s: &Scenario) -> Option<UdpChaos> {
    s.faults.iter().find_map(|f| match f {
        Fault::Udp { chaos } => Some(*chaos),
        _ => None,
    })
}

/// The hosts nobody can dial ([`Fault::Nat`]).
fn nat_of(s: &Scenario) -> Vec<HostId> {
    s.faults
        .iter()
        .filter_map(|f| match f {
            Fault::Nat { host } => Some(*host),
            _ => None,
        })
        .collect()
}

/// A scheduled change to the simulated world.
#[derive(Debug, Clone)]
enum Action {
    Partition(Vec<HostId>, Vec<HostId>),
    Repair(Vec<HostId>, Vec<HostId>),
    Crash(HostId),
    Restart(HostId),
    Web(WebMode),
    Disk(HostId, DiskFault, bool),
}

/// When `host`'s software first starts: at the start, or later for a [`Fault::Join`].
fn join_of(s: &Scenario, host: HostId) -> Duration {
    s.faults
        .iter()
        .find_map(|f| match f {
            Fault::Join { host: h, at } if *h == host => Some(*at),
            _ => None,
        })
        .unwrap_or(Duration::ZERO)
}

/// The uplink bandwidth of `host`, if a fault limits it.
fn uplink_of(s: &Scenario, host: HostId) -> Option<u64> {
    s.faults.iter().find_map(|f| match f {
        Fault::Uplink {
            host: h,
            bytes_per_sec,
        } if *h == host => Some(*bytes_per_sec),
        _ => None,
    })
}

fn schedule(s: &Scenario) -> Vec<(Duration, Action)> {
    let mut plan = Vec::new();
    for f in &s.faults {
        match f {
            Fault::Partition { a, b, from, until } => {
                plan.push((*from, Action::Partition(a.clone(), b.clone())));
                plan.push((*until, Action::Repair(a.clone(), b.clone())));
            }
            Fault::Crash { host, at, restart } => {
                plan.push((*at, Action::Crash(*host)));
                if let Some(r) = restart {
                    plan.push((*r, Action::Restart(*host)));
                }
            }
            Fault::Web { at, mode } => plan.push((*at, Action::Web(*mode))),
            Fault::Disk {
                host,
                fault,
                from,
                until,
            } => {
                plan.push((*from, Action::Disk(*host, *fault, true)));
                plan.push((*until, Action::Disk(*host, *fault, false)));
            }
            Fault::Link { .. }
            | Fault::Uplink { .. }
            | Fault::Join { .. }
            | Fault::Udp { .. }
            | Fault::Nat { .. } => {}
        }
    }
    plan.sort_by_key(|(t, _)| *t);
    plan
}

/// Runs `scenario`: prints it (seed first), simulates until every leecher completed after the
/// last fault (or the budget ran out), then checks every leecher's bytes against the source.
pub fn run(scenario: &Scenario) -> Result<Outcome, SimError> {
    eprintln!("rain-sim: {scenario:?}");
    let seed = scenario.seed;
    let tmp = tempfile::Builder::new()
        .prefix("rain-sim-")
        .tempdir()
        .map_err(|e| SimError::Setup(e.to_string()))?;
    let trackers: Vec<String> = match (scenario.tracker, scenario.http_tracker) {
        (false, _) => Vec::new(),
        (true, false) => vec![tracker::announce_url()],
        (true, true) => vec![tracker::http_announce_url()],
    };
    let webseeds: Vec<String> = scenario
        .webseed
        .map(|_| web::webseed_url())
        .into_iter()
        .collect();
    let content = Arc::new(
        scenario
            .content
            .materialize_with(&tmp.path().join("source"), &trackers, &webseeds)
            .map_err(|e| SimError::Setup(e.to_string()))?,
    );
    let board = SharedBoard::default();
    let names: Vec<String> = scenario.hosts().iter().map(|h| h.name()).collect();
    let nat = Arc::new(Nat::new(nat_of(scenario).iter().map(|h| h.name())));
    let net = TurmoilNet::with_hosts(names)
        .with_nat(nat.clone())
        .ipv6(scenario.ipv6);
    // Each host's datagrams meet the run's UDP faults with an RNG of its own.
    let udp_counters = Arc::new(UdpCounters::default());
    let udp_net = |host: HostId, net: &TurmoilNet| match udp_chaos_of(scenario) {
        Some(chaos) => net.with_udp_chaos(
            chaos,
            host_seed(seed, host) ^ 0x7564_7063_6861_6f73,
            udp_counters.clone(),
        ),
        None => net.clone(),
    };
    let deadline = scenario.faults_end() + scenario.budget;
    let mut builder = turmoil::Builder::new();
    builder
        .rng_seed(seed)
        .epoch(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        .tick_duration(scenario.tick)
        .simulation_duration(deadline + TURMOIL_SLACK)
        .min_message_latency(scenario.latency.0)
        .max_message_latency(scenario.latency.1.max(scenario.latency.0));
    if scenario.ipv6 {
        builder.ip_version(turmoil::IpVersion::V6);
    }
    let mut sim = builder.build();

    // The silent nodes first: the router is the only bootstrap node that answers.
    let dht_bootstrap: Vec<String> = (0..scenario.silent_dht_nodes)
        .map(HostId::SilentDht)
        .chain([HostId::DhtRouter])
        .map(|h| format!("{h}:{DHT_PORT}"))
        .collect();
    let silent_received = Arc::new(AtomicU64::new(0));
    for host in scenario.dht_hosts() {
        let net = udp_net(host, &net);
        let board = board.clone();
        let received = silent_received.clone();
        let host_seed = host_seed(seed, host);
        match host {
            HostId::DhtRouter => sim.host(host.name(), move || {
                run_dht_router(net.clone(), host_seed, board.clone())
            }),
            _ => sim.host(host.name(), move || {
                run_silent_dht(net.clone(), received.clone())
            }),
        }
    }
    let tracker_stats = Arc::new(TrackerStats::default());
    if scenario.tracker {
        let stats = tracker_stats.clone();
        let host_seed = host_seed(seed, HostId::Tracker);
        let net = udp_net(HostId::Tracker, &net);
        sim.host(HostId::Tracker.name(), move || {
            tracker::serve_on(host_seed, stats.clone(), net.clone())
        });
    }
    // The webseed keeps its files and mode over a crash, as a disk would.
    let web_server = scenario
        .webseed
        .map(|mode| Arc::new(WebServer::new(content.web_files(web::FILES_PATH), mode)));
    if let Some(server) = &web_server {
        let server = server.clone();
        let net =
            uplink_of(scenario, HostId::Web).map_or_else(|| net.clone(), |r| net.with_uplink(r));
        sim.host(HostId::Web.name(), move || {
            let (server, net) = (server.clone(), net.clone());
            async move {
                server
                    .serve(net.listen(net.any(web::WEB_PORT)).await?)
                    .await;
                Ok(())
            }
        });
    }
    let disks: BTreeMap<HostId, Arc<Disk>> = scenario
        .honest_hosts()
        .into_iter()
        .map(|h| (h, Arc::default()))
        .collect();
    for host in scenario.honest_hosts() {
        let (seeder, index) = match host {
            HostId::Seeder(i) => (true, i),
            HostId::Leecher(i) => (false, i),
            _ => unreachable!("honest hosts are seeders and leechers"),
        };
        let mut peers = Vec::new();
        if !seeder && !scenario.dht && !scenario.tracker {
            peers.extend((0..scenario.seeders).map(|i| HostId::Seeder(i).name()));
            let first = index.saturating_sub(scenario.leecher_links);
            peers.extend((first..index).map(|i| HostId::Leecher(i).name()));
        }
        let ctx = PeerHost {
            name: host.name(),
            dir: tmp.path().join(host.name()),
            seed: host_seed(seed, host),
            content: content.clone(),
            seeder,
            magnet: !seeder && index < scenario.magnet_leechers,
            peers,
            dht: scenario.dht.then(|| dht_bootstrap.clone()),
            tracker: scenario.tracker,
            join_at: join_of(scenario, host),
            disk: disks[&host].clone(),
            net: udp_net(
                host,
                &uplink_of(scenario, host).map_or_else(|| net.clone(), |r| net.with_uplink(r)),
            ),
            board: board.clone(),
        };
        sim.host(host.name(), move || ctx.clone().run());
    }
    let served = Arc::new(AtomicU64::new(0));
    let flooded = Arc::new(AtomicU64::new(0));
    let evil = (0..scenario.corrupt_peers)
        .map(|i| (HostId::Corrupt(i), Misbehaviour::Corrupt))
        .chain((0..scenario.stall_peers).map(|i| (HostId::Stall(i), Misbehaviour::Stall)))
        .chain((0..scenario.flood_peers).map(|i| (HostId::Flood(i), Misbehaviour::Flood)));
    for (host, kind) in evil {
        // Liars pester the leechers; a flooder wants data, so every honest host.
        let targets = if kind == Misbehaviour::Flood {
            scenario.honest_hosts()
        } else {
            (0..scenario.leechers).map(HostId::Leecher).collect()
        };
        let peer = EvilPeer {
            kind,
            info_hash: content.info_hash,
            pieces: content.pieces,
            piece_length: content.spec.piece_length,
            targets: targets
                .iter()
                .map(|h| format!("{}:{PORT}", h.name()))
                .collect(),
            seed: host_seed(seed, host),
            served: served.clone(),
            flooded: flooded.clone(),
        };
        let net = net.clone();
        sim.host(host.name(), move || {
            let peer = peer.clone();
            let net = net.clone();
            async move {
                peer.run(net).await;
                Ok(())
            }
        });
    }
    for f in &scenario.faults {
        if let Fault::Link { a, b, min, max } = f {
            sim.set_link_latency(a.name(), b.name(), *min);
            sim.set_link_max_message_latency(a.name(), b.name(), (*max).max(*min));
        }
    }

    let plan = schedule(scenario);
    let mut web_changes = Vec::new();
    let mut next = 0;
    let mut steps = 0u64;
    let leechers: Vec<HostId> = (0..scenario.leechers).map(HostId::Leecher).collect();
    let crashed_for_good: Vec<HostId> = scenario
        .faults
        .iter()
        .filter_map(|f| match f {
            Fault::Crash {
                host,
                restart: None,
                ..
            } => Some(*host),
            _ => None,
        })
        .collect();
    loop {
        let now = sim.elapsed();
        while next < plan.len() && plan[next].0 <= now {
            let action = plan[next].1.clone();
            next += 1;
            lock(&board).trace.push(TraceEvent {
                at: now,
                host: "sim".into(),
                what: format!("{action:?}"),
                detail: String::new(),
            });
            match action {
                Action::Partition(a, b) => for_pairs(&a, &b, |x, y| sim.hold(x, y)),
                Action::Repair(a, b) => for_pairs(&a, &b, |x, y| sim.release(x, y)),
                Action::Crash(h) => sim.crash(h.name()),
                Action::Restart(h) => sim.bounce(h.name()),
                Action::Disk(h, fault, on) => {
                    if let Some(d) = disks.get(&h) {
                        d.set(fault, on);
                    }
                }
                Action::Web(mode) => {
                    if let Some(w) = &web_server {
                        web_changes.push((now, mode, w.counters()));
                        w.set_mode(mode);
                    }
                }
            }
        }
        let pending: Vec<HostId> = {
            let b = lock(&board);
            leechers
                .iter()
                .filter(|h| !crashed_for_good.contains(h))
                .filter(|h| {
                    let name = h.name();
                    let inc = b.incarnation.get(&name).copied().unwrap_or(0);
                    !matches!(b.completed.get(&name), Some((i, _)) if *i == inc)
                })
                .copied()
                .collect()
        };
        if pending.is_empty() && next == plan.len() {
            break;
        }
        if now > deadline {
            let b = lock(&board);
            let tail = b.trace[b.trace.len().saturating_sub(40)..]
                .iter()
                .map(ToString::to_string)
                .collect();
            // The seeders' view tells who they serve; with the DHT, the router's whether peers
            // were found.
            let others = (0..scenario.seeders)
                .map(HostId::Seeder)
                .chain(scenario.dht.then_some(HostId::DhtRouter));
            let mut stats: Vec<String> = pending
                .iter()
                .copied()
                .chain(others)
                .map(|h| {
                    let s = b.last_stats.get(&h.name()).map_or("-", String::as_str);
                    format!("{h}: {s}")
                })
                .collect();
            if scenario.tracker {
                stats.push(format!(
                    "{}: {} announces, {} bad connection ids, {} duplicate requests, swarms [{}]",
                    HostId::Tracker,
                    tracker_stats.announces(),
                    tracker_stats.bad_connection_ids.load(Ordering::Relaxed),
                    tracker_stats.duplicate_requests.load(Ordering::Relaxed),
                    tracker_stats.summary()
                ));
            }
            if udp_chaos_of(scenario).is_some() {
                stats.push(format!("udp: {:?}", udp_counters.counts()));
            }
            if nat.refused() > 0 {
                stats.push(format!("nat: {} connections refused", nat.refused()));
            }
            return Err(SimError::Liveness {
                seed,
                pending,
                at: now,
                tail,
                stats,
            });
        }
        sim.step().map_err(|e| SimError::Turmoil {
            seed,
            error: e.to_string(),
        })?;
        steps += 1;
    }
    let elapsed = sim.elapsed();
    // Stop every host before reading their files (pending writes finish when runtimes drop).
    drop(sim);
    for h in &leechers {
        if crashed_for_good.contains(h) {
            continue;
        }
        let root = tmp.path().join(h.name()).join("data").join(TORRENT_ID);
        content.check(&root).map_err(|diff| SimError::Safety {
            seed,
            host: *h,
            diff,
        })?;
    }
    let board = std::mem::take(&mut *lock(&board));
    if !board.unsafe_samples.is_empty() {
        return Err(SimError::Unsafe {
            seed,
            violations: board.unsafe_samples,
        });
    }
    let by_name = |name: &str| leechers.iter().find(|h| h.name() == name).copied();
    let completed = board
        .completed
        .iter()
        .filter_map(|(name, (_, at))| by_name(name).map(|h| (h, *at)))
        .collect();
    let reports: BTreeMap<HostId, HostReport> = board
        .reports
        .iter()
        .filter_map(|(name, r)| by_name(name).map(|h| (h, *r)))
        .collect();
    for (h, r) in &reports {
        let consistent = r.have == r.total
            && r.total == content.pieces
            && r.completed == r.size
            && r.size == content.spec.total_len();
        if !consistent {
            return Err(SimError::Safety {
                seed,
                host: *h,
                diff: format!("inconsistent counters at completion: {r:?}"),
            });
        }
    }
    Ok(Outcome {
        trace: board.trace,
        completed,
        reports,
        corrupt_blocks_served: served.load(Ordering::Relaxed),
        flood_requests_sent: flooded.load(Ordering::Relaxed),
        silent_dht_datagrams: silent_received.load(Ordering::Relaxed),
        tracker_announces: tracker_stats.announces(),
        tracker_duplicate_requests: tracker_stats.duplicate_requests.load(Ordering::Relaxed),
        udp: udp_counters.counts(),
        nat_refused: nat.refused(),
        web: web_server.map(|w| w.counters()).unwrap_or_default(),
        web_changes,
        disks: disks.iter().map(|(h, d)| (*h, d.counters())).collect(),
        elapsed,
        steps,
    })
}

fn for_pairs(a: &[HostId], b: &[HostId], mut f: impl FnMut(String, String)) {
    for x in a {
        for y in b {
            f(x.name(), y.name());
        }
    }
}

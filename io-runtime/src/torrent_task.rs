//! One tokio task per torrent: it owns the torrent's [`Torrent`] machine and performs what the
//! machine asks (DESIGN.md §3, rain-behaviour §6.1).
//!
//! - The clock is tokio's, mapped to [`rain_proto::time::Instant`] as nanoseconds since the
//!   session's start; after every input the task drains `poll_action` then `poll_event`, and
//!   sleeps until `poll_timeout`.
//! - Peers: the torrent listens on its own port while running; every accepted or dialled
//!   connection is handshaked in a spawned task (dials bounded by a session-wide semaphore,
//!   incoming handshakes by [`MAX_INCOMING_HANDSHAKES`]) and then run by
//!   [`peer_task`](crate::peer_task), which talks to this task over the bounded inbox. Messages
//!   to a peer go through its bounded outbox; a peer whose outbox is full is disconnected.
//! - Disk: blocks to upload are read on blocking threads; complete pieces are SHA-1 hashed
//!   from memory and written on a blocking pool bounded by the session's hashing semaphore.
//! - Before the machine starts, the data is checked ([`start_check`]): the recorded pieces
//!   are trusted after a clean shutdown; after a crash the unrecorded pieces are hashed (they
//!   may have been written after the last progress write); the pieces of a missing file are
//!   always hashed; without a stored bitfield everything is (status Verifying); a torrent
//!   without any file starts empty.
//! - Webseeds: the machine's webseed requests run on [`crate::webseed`]'s tasks, whose body
//!   chunks come back through the inbox like peer messages.
//! - Resume: progress is written every `resume-write-interval`, at completion and at stop,
//!   following the durability rule of [`crate::resume`]: the bitfield is taken from the
//!   machine (which sets a bit only after its write returned), then storage is flushed, then
//!   the progress is committed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rain_proto::InfoHash;
use rain_proto::address_book::PeerSource;
use rain_proto::bitfield::Bitfield;
use rain_proto::metainfo::Info;
use rain_proto::mse::EncryptionPolicy;
use rain_proto::picker::PeerKey;
use rain_proto::rng::{Rng, Seed};
use rain_proto::torrent::{
    Action, DiskError, PeerInfo, PeerView, Resume, Status, Torrent, TorrentConfig, TorrentEvent,
    TorrentParams,
};
use rain_proto::tracker::announcer::{RequestId, TrackerStatus};
use rain_proto::tracker::{AnnounceReply, TrackerError};
use rain_proto::wire::{Limits, Message, PeerId, Reserved};
use sha1::{Digest, Sha1};
use tokio::sync::{Semaphore, broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::announce::Announcer;
use crate::blocking::BlockingMode;
use crate::dht::DhtHandle;
use crate::net::{Listener, Network};
use crate::peer::{self, Local, Timeouts};
use crate::peer_task::{Registration, run_handshaked};
use crate::rate_limit::SpeedLimits;
use crate::resume::{Progress, ResumeDb, TorrentRecord, pack_bitfield, unpack_bitfield};
use crate::session::{SessionError, SessionEvent, TorrentStats};
use crate::storage::{
    FileCache, FileStorage, FileStorageOptions, ReadCache, ReadCacheHandle, Storage, StorageError,
};
use crate::verify::{StartCheck, VerifyError, VerifyOptions, merge_checked, start_check, verify};
use crate::webseed::{Report as WebseedReport, Runner as WebseedRunner, WebseedSettings};
use rain_proto::webseed::WebseedStatus;

/// Capacity of a torrent's inbox (messages from its peers, disk and tracker results).
pub const INBOX_CAPACITY: usize = 1024;
/// Capacity of a torrent's command queue (requests from the session).
pub const COMMAND_CAPACITY: usize = 64;
/// Extra room in a peer's outbox beyond `max-requests-in` piece messages.
pub const OUTBOX_SLACK: usize = 256;
/// Incoming connections handshaking at once per torrent; more are dropped.
pub const MAX_INCOMING_HANDSHAKES: usize = 32;
/// Peers added by hand (and from a magnet's `x.pe`) kept per torrent, in memory and in its
/// record; the oldest is forgotten first.
pub const MAX_FIXED_PEERS: usize = 256;
/// Longest wait for in-flight piece writes and `stopped` announces at shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Piece-memory limit changes applied in one drain (each may start pieces and be answered by
/// another grant); the next input continues.
pub const MAX_MEMORY_ROUNDS: usize = 4;

/// Session-wide counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Verifications of existing data started.
    pub verifications: AtomicU64,
    /// Pieces hashed by those verifications.
    pub pieces_checked: AtomicU64,
    /// Pieces hashed and written after download.
    pub pieces_written: AtomicU64,
}

/// What every torrent task of a session shares.
#[derive(Debug)]
pub(crate) struct Shared<N> {
    pub net: N,
    pub torrent_config: TorrentConfig,
    pub storage_opts: FileStorageOptions,
    pub host: std::net::IpAddr,
    pub timeouts: Timeouts,
    pub limits: Limits,
    pub policy: EncryptionPolicy,
    pub resume_write_interval: Duration,
    pub tracker_timeout: Duration,
    pub hash_threads: usize,
    pub db: RwLock<Option<Arc<ResumeDb>>>,
    pub trust_stored_bitfields: bool,
    pub cache: Arc<FileCache>,
    pub hash_sem: Arc<Semaphore>,
    /// The session-wide upload read cache; it also bounds disk reads (`parallel-reads`).
    pub read_cache: Arc<ReadCache>,
    pub dial_sem: Arc<Semaphore>,
    /// One permit per open peer connection, session-wide (`max-peer-connections`).
    pub connections: Arc<Semaphore>,
    pub webseed: WebseedSettings,
    pub announcer: Arc<dyn Announcer>,
    pub events: broadcast::Sender<SessionEvent>,
    pub epoch: tokio::time::Instant,
    pub counters: Counters,
    /// The session's DHT node, if it runs.
    pub dht: Option<DhtHandle>,
    /// `dht-announce-interval` and `dht-min-announce-interval`.
    pub dht_intervals: (Duration, Duration),
    /// `speed-limit-download` and `speed-limit-upload`.
    pub speed: SpeedLimits,
    /// The session's IP blocklist (replaced when it is refreshed).
    pub blocklist: Arc<crate::blocklist::SessionBlocklist>,
    /// Where disk, hashing and database jobs run.
    pub blocking: BlockingMode,
    /// Wraps each torrent's storage when it is opened.
    pub storage_layer: crate::storage::StorageLayer,
    /// The session's piece-memory budget (`write-cache-size`).
    pub piece_memory: Arc<crate::piece_memory::PieceMemory>,
}

impl<N> Shared<N> {
    /// The machine clock: nanoseconds since the session started.
    pub fn now(&self) -> rain_proto::time::Instant {
        rain_proto::time::Instant::from_nanos(self.epoch.elapsed().as_nanos() as u64)
    }

    fn deadline(&self, t: rain_proto::time::Instant) -> tokio::time::Instant {
        self.epoch + Duration::from_nanos(t.as_nanos())
    }

    /// The resume database, unless the session is closing.
    pub fn db(&self) -> Result<Arc<ResumeDb>, SessionError> {
        self.db
            .read()
            .ok()
            .and_then(|g| g.clone())
            .ok_or(SessionError::Closed)
    }

    fn emit(&self, e: SessionEvent) {
        let _ = self.events.send(e);
    }
}

/// A request from the session to a torrent task.
#[derive(Debug)]
pub(crate) enum Command {
    Start,
    Stop,
    Stats(oneshot::Sender<TorrentStats>),
    Peers(oneshot::Sender<Vec<PeerView>>),
    Trackers(oneshot::Sender<Vec<TrackerStatus>>),
    Webseeds(oneshot::Sender<Vec<WebseedStatus>>),
    Metadata(oneshot::Sender<Option<(Info, Bytes)>>),
    /// The info dictionary with the verified pieces, once both are known.
    Progress(oneshot::Sender<Option<(Info, Bitfield)>>),
    AddPeer(SocketAddr),
    AddTracker(String),
    Announce,
    Verify,
    /// Stop gracefully, write progress, end the task.
    Shutdown(oneshot::Sender<()>),
}

/// What spawned helpers (peers, disk, trackers, verification) tell the torrent task.
#[derive(Debug)]
pub(crate) enum Input {
    Handshaked {
        info: PeerInfo,
        reply: oneshot::Sender<Registration>,
    },
    DialFailed(SocketAddr),
    Message(PeerKey, Message),
    Closed(PeerKey),
    BlockRead {
        peer: PeerKey,
        piece: u32,
        begin: u32,
        result: Result<Bytes, DiskError>,
    },
    PieceWritten {
        piece: u32,
        result: Result<bool, DiskError>,
    },
    Announced {
        id: RequestId,
        result: Result<AnnounceReply, TrackerError>,
    },
    Verified(Result<Vec<bool>, VerifyError>),
    Webseed(WebseedReport),
    DhtPeers(Vec<SocketAddr>),
}

/// Everything a torrent task is created from.
#[derive(Debug)]
pub(crate) struct TaskSpec {
    pub id: String,
    pub info_hash: InfoHash,
    pub name: String,
    pub port: u16,
    pub info: Option<(Info, Bytes)>,
    pub trackers: Vec<Vec<String>>,
    pub webseeds: Vec<String>,
    pub fixed_peers: Vec<SocketAddr>,
    pub progress: Progress,
    pub stop_after_download: bool,
    pub stop_after_metadata: bool,
    pub peer_id: PeerId,
    pub seed: Seed,
}

impl TaskSpec {
    /// A task for torrent `id` as stored in its resume record.
    pub(crate) fn from_record(
        id: &str,
        record: &TorrentRecord,
        info: Option<(Info, Bytes)>,
        peer_id: rain_proto::wire::PeerId,
        seed: rain_proto::rng::Seed,
    ) -> TaskSpec {
        TaskSpec {
            id: id.to_owned(),
            info_hash: record.info_hash,
            name: record.name.clone(),
            port: record.port,
            info,
            trackers: record.trackers.clone(),
            webseeds: record.url_list.clone(),
            fixed_peers: record
                .fixed_peers
                .iter()
                .filter_map(|p| p.parse().ok())
                .collect(),
            progress: record.progress.clone(),
            stop_after_download: record.stop_after_download,
            stop_after_metadata: record.stop_after_metadata,
            peer_id,
            seed,
        }
    }
}

/// The session's handle on a torrent task.
#[derive(Debug)]
pub(crate) struct TaskHandle {
    pub cmd: mpsc::Sender<Command>,
    pub join: JoinHandle<()>,
}

#[derive(Debug)]
enum Phase {
    /// The machine is not running (or stopping).
    Idle,
    /// Existing data is being verified; start afterwards if `then_start`.
    Verifying {
        cancel: Arc<AtomicBool>,
        then_start: bool,
    },
    /// The machine runs.
    Running,
}

struct Task<N: Network> {
    shared: Arc<Shared<N>>,
    id: String,
    info_hash: InfoHash,
    name: String,
    port: u16,
    peer_id: PeerId,
    trackers: Vec<Vec<String>>,
    webseed_urls: Vec<String>,
    webseeds: WebseedRunner<N>,
    fixed_peers: Vec<SocketAddr>,
    stop_after_download: bool,
    stop_after_metadata: bool,
    rng: Rng,
    machine: Torrent,
    /// The machine's bitfield reflects the data (verified or trusted).
    trusted: bool,
    /// The pieces the resume store holds complete, until the machine is trusted: a start
    /// hashes only what may differ from them ([`start_check`]).
    recorded: Option<Vec<bool>>,
    /// The stored bitfield, written back unchanged until the machine is trusted.
    stored_bitfield: Option<Vec<u8>>,
    storage: Option<Arc<dyn Storage>>,
    phase: Phase,
    checked: Arc<AtomicU32>,
    error: Option<String>,
    peers: BTreeMap<PeerKey, mpsc::Sender<Message>>,
    inbox_tx: mpsc::Sender<Input>,
    listener: Option<JoinHandle<()>>,
    writes_in_flight: usize,
    dirty: bool,
    verify_requested: bool,
    shutdown: Option<(oneshot::Sender<()>, tokio::time::Instant)>,
    /// When the next DHT lookup is due (running, DHT on, not private).
    dht_next: Option<tokio::time::Instant>,
    /// The session blocklist generation the machine holds.
    blocklist_gen: u64,
    /// This torrent's share of the session's piece memory (released when the task ends).
    memory: crate::piece_memory::Share,
    /// This torrent's blocks in the session's read cache (dropped when the task ends).
    reads: ReadCacheHandle,
}

/// Spawns the task of one torrent (stopped; send [`Command::Start`] to start it).
pub(crate) fn spawn<N: Network>(shared: Arc<Shared<N>>, spec: TaskSpec) -> TaskHandle {
    let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_CAPACITY);
    let (inbox_tx, inbox_rx) = mpsc::channel(INBOX_CAPACITY);
    let mut rng = Rng::new(spec.seed);
    let recorded = spec
        .progress
        .bitfield
        .as_ref()
        .zip(spec.info.as_ref())
        .and_then(|(b, (info, _))| unpack_bitfield(b, info.piece_count() as usize));
    let trusted_bits = recorded
        .as_deref()
        .filter(|_| shared.trust_stored_bitfields)
        .map(bitfield_of);
    let trusted = trusted_bits.is_some();
    let blocklist_gen = shared.blocklist.generation();
    let machine = new_machine(
        &shared,
        spec.info.as_ref(),
        spec.info_hash,
        spec.peer_id,
        spec.port,
        &spec.trackers,
        &spec.webseeds,
        resume_of(&spec.progress, trusted_bits),
        (spec.stop_after_download, spec.stop_after_metadata),
        rng.child(),
    );
    let storage = None;
    let task = Task {
        id: spec.id,
        info_hash: spec.info_hash,
        name: spec.name,
        port: spec.port,
        peer_id: spec.peer_id,
        trackers: spec.trackers,
        webseeds: WebseedRunner::new(
            shared.net.clone(),
            shared.webseed,
            shared.speed.download.clone(),
            shared.blocklist.cell(),
        ),
        webseed_urls: spec.webseeds,
        fixed_peers: spec.fixed_peers,
        stop_after_download: spec.stop_after_download,
        stop_after_metadata: spec.stop_after_metadata,
        rng,
        machine,
        trusted,
        recorded,
        stored_bitfield: spec.progress.bitfield,
        storage,
        phase: Phase::Idle,
        checked: Arc::new(AtomicU32::new(0)),
        error: None,
        peers: BTreeMap::new(),
        inbox_tx,
        listener: None,
        writes_in_flight: 0,
        dirty: false,
        verify_requested: false,
        shutdown: None,
        dht_next: None,
        blocklist_gen,
        memory: shared.piece_memory.register(),
        reads: shared.read_cache.register(),
        shared,
    };
    let join = tokio::spawn(task.run(cmd_rx, inbox_rx));
    TaskHandle { cmd: cmd_tx, join }
}

/// Adds `peer` to a torrent's fixed peers unless it is there, forgetting the oldest beyond
/// [`MAX_FIXED_PEERS`].
pub(crate) fn remember_peer<T: PartialEq>(list: &mut Vec<T>, peer: T) {
    if !list.contains(&peer) {
        if list.len() >= MAX_FIXED_PEERS {
            list.remove(0);
        }
        list.push(peer);
    }
}

fn bitfield_of(bits: &[bool]) -> Bitfield {
    let mut b = Bitfield::new(bits.len() as u32);
    for (i, _) in bits.iter().enumerate().filter(|(_, h)| **h) {
        b.set(i as u32);
    }
    b
}

fn resume_of(p: &Progress, have: Option<Bitfield>) -> Resume {
    Resume {
        have,
        downloaded: p.bytes_downloaded,
        uploaded: p.bytes_uploaded,
        wasted: p.bytes_wasted,
        seeded_for: p.seeded_for,
    }
}

#[allow(clippy::too_many_arguments)]
fn new_machine<N>(
    shared: &Shared<N>,
    info: Option<&(Info, Bytes)>,
    info_hash: InfoHash,
    peer_id: PeerId,
    port: u16,
    trackers: &[Vec<String>],
    webseeds: &[String],
    resume: Resume,
    (stop_after_download, stop_after_metadata): (bool, bool),
    seed: Seed,
) -> Torrent {
    let params = TorrentParams {
        info_hash,
        info: info.cloned(),
        peer_id,
        port,
        trackers: trackers.to_vec(),
        resume,
        stop_after_download,
        stop_after_metadata,
        our_addr: None,
        blocklist: shared.blocklist.torrent_use(),
        webseeds: webseeds.to_vec(),
    };
    let now = shared.now();
    let mut t = Torrent::new(params, shared.torrent_config.clone(), seed, now);
    // Piece memory comes from the session's budget, granted after the first input.
    t.set_piece_memory_limit(now, 0);
    t
}

fn disk_error(e: &StorageError) -> DiskError {
    use StorageError as E;
    DiskError(match e {
        E::Io { source, .. } => source.kind(),
        E::Missing { .. } => std::io::ErrorKind::NotFound,
        _ => std::io::ErrorKind::InvalidData,
    })
}

impl<N: Network> Task<N> {
    async fn run(
        mut self,
        mut cmd_rx: mpsc::Receiver<Command>,
        mut inbox_rx: mpsc::Receiver<Input>,
    ) {
        let mut resume_tick = tokio::time::interval(self.shared.resume_write_interval);
        resume_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if self.try_finish_shutdown().await {
                return;
            }
            let deadline = self.machine.poll_timeout().map(|t| self.shared.deadline(t));
            let shutdown_deadline = self.shutdown.as_ref().map(|(_, d)| *d);
            let memory_granted = self.memory.wake();
            // Biased, for a deterministic order under simulation: timers first (each fires
            // once, then re-arms later, so they cannot starve the channels), then commands,
            // then the peers' inbox.
            tokio::select! {
                biased;
                () = sleep_until(shutdown_deadline) => {
                    self.writes_in_flight = 0;
                    self.phase = Phase::Idle;
                    self.finish_shutdown().await;
                    return;
                }
                () = sleep_until(deadline) => {
                    let now = self.shared.now();
                    self.machine.handle_timeout(now);
                }
                () = sleep_until(self.dht_next) => self.dht_lookup(),
                _ = resume_tick.tick() => {
                    if self.dirty || matches!(self.phase, Phase::Running) {
                        self.write_progress().await;
                    }
                }
                cmd = cmd_rx.recv() => {
                    // `None`: the session is gone without closing; end like a crash.
                    let Some(c) = cmd else {
                        self.abort_all();
                        return;
                    };
                    self.command(c).await;
                }
                // Piece memory granted while waiting: the drain below picks it up.
                () = memory_granted.notified() => {}
                Some(input) = inbox_rx.recv() => self.input(input).await,
            }
            self.drain().await;
        }
    }

    /// Hands the machine the session's blocklist after a refresh.
    fn sync_blocklist(&mut self) {
        let generation = self.shared.blocklist.generation();
        if generation != self.blocklist_gen {
            self.blocklist_gen = generation;
            self.machine
                .set_blocklist(self.shared.blocklist.torrent_use());
        }
    }

    fn abort_all(&mut self) {
        if let Some(l) = self.listener.take() {
            l.abort();
        }
        self.peers.clear();
        self.webseeds.cancel_all();
    }

    // ------------------------------------------------------------ commands

    async fn command(&mut self, c: Command) {
        self.sync_blocklist();
        let now = self.shared.now();
        match c {
            Command::Start => self.begin_start().await,
            Command::Stop => self.stop(),
            Command::Stats(tx) => {
                let _ = tx.send(self.stats());
            }
            Command::Peers(tx) => {
                let _ = tx.send(self.machine.peers());
            }
            Command::Webseeds(tx) => {
                let _ = tx.send(self.machine.webseeds());
            }
            Command::Trackers(tx) => {
                let _ = tx.send(if matches!(self.phase, Phase::Running) {
                    self.machine.trackers()
                } else {
                    Vec::new()
                });
            }
            Command::Metadata(tx) => {
                let m = self
                    .machine
                    .info()
                    .cloned()
                    .zip(self.machine.info_bytes().cloned());
                let _ = tx.send(m);
            }
            Command::Progress(tx) => {
                let p = self
                    .machine
                    .info()
                    .cloned()
                    .zip(self.machine.bitfield().cloned());
                let _ = tx.send(p);
            }
            Command::AddPeer(addr) => {
                // Dialled now if running, and at every later start.
                remember_peer(&mut self.fixed_peers, addr);
                if matches!(self.phase, Phase::Running) && self.machine.status() != Status::Stopping
                {
                    self.machine.add_peer_addr(now, addr, PeerSource::Manual);
                }
            }
            Command::AddTracker(url) => {
                self.trackers.push(vec![url.clone()]);
                self.machine.add_tracker(now, &url);
            }
            Command::Announce => self.machine.announce(now),
            Command::Verify => {
                self.stored_bitfield = None;
                self.recorded = None;
                self.trusted = false;
                self.verify_requested = true;
                match self.phase {
                    Phase::Running => self.stop(),
                    Phase::Idle if self.machine.status() == Status::Stopped => {
                        self.verify_requested = false;
                        self.begin_verify(false, None, None);
                    }
                    _ => {}
                }
            }
            Command::Shutdown(done) => {
                self.stop();
                self.shutdown = Some((done, tokio::time::Instant::now() + SHUTDOWN_GRACE));
            }
        }
    }

    fn stop(&mut self) {
        match &self.phase {
            Phase::Running => {
                let now = self.shared.now();
                self.dht_next = None;
                self.machine.stop(now);
                if let Some(l) = self.listener.take() {
                    l.abort();
                }
            }
            Phase::Verifying { cancel, .. } => cancel.store(true, Ordering::Relaxed),
            Phase::Idle => {}
        }
    }

    async fn try_finish_shutdown(&mut self) -> bool {
        if self.shutdown.is_none()
            || !matches!(self.phase, Phase::Idle)
            || self.writes_in_flight > 0
            || !matches!(self.machine.status(), Status::Stopped)
        {
            return false;
        }
        self.finish_shutdown().await;
        true
    }

    async fn finish_shutdown(&mut self) {
        self.abort_all();
        self.write_progress().await;
        if let Some((done, _)) = self.shutdown.take() {
            let _ = done.send(());
        }
    }

    // ------------------------------------------------------------ start / verify

    fn open_storage(&mut self) -> Result<Arc<dyn Storage>, String> {
        if let Some(s) = &self.storage {
            return Ok(s.clone());
        }
        let info = self.machine.info().ok_or("no metadata")?;
        let s = FileStorage::for_torrent(
            info,
            &self.id,
            &self.shared.storage_opts,
            self.shared.cache.clone(),
        )
        .map_err(|e| e.to_string())?;
        let s = self.shared.storage_layer.apply(Arc::new(s));
        self.storage = Some(s.clone());
        Ok(s)
    }

    fn fail_start(&mut self, e: String) {
        self.error = Some(e.clone());
        self.phase = Phase::Idle;
        self.shared.emit(SessionEvent::Stopped {
            id: self.id.clone(),
            error: Some(e),
        });
    }

    async fn begin_start(&mut self) {
        match &mut self.phase {
            Phase::Running if self.machine.status() != Status::Stopping => return,
            Phase::Verifying { then_start, .. } => {
                *then_start = true;
                return;
            }
            _ => {}
        }
        self.error = None;
        let Some(info) = self.machine.info() else {
            return self.start_machine();
        };
        let pieces = info.piece_count() as usize;
        let storage = match self.open_storage() {
            Ok(s) => s,
            Err(e) => return self.fail_start(e),
        };
        let files = self
            .shared
            .blocking
            .run(move || {
                let mut in_missing = vec![false; pieces];
                for f in storage.missing_files()? {
                    for i in storage.layout().file_pieces(f) {
                        in_missing[i as usize] = true;
                    }
                }
                Ok::<_, StorageError>((in_missing, storage.any_file_exists()?))
            })
            .await;
        let (in_missing, any_file) = match files {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => return self.fail_start(e.to_string()),
            Err(e) => return self.fail_start(e.to_string()),
        };
        let recorded = if self.trusted {
            let have = self.machine.resume().have;
            Some(
                (0..pieces as u32)
                    .map(|i| have.as_ref().is_some_and(|h| h.get(i)))
                    .collect(),
            )
        } else {
            self.recorded.clone()
        };
        let durable = self.trusted || self.shared.trust_stored_bitfields;
        match start_check(recorded.as_deref(), durable, &in_missing, any_file) {
            StartCheck::Verify(only) => self.begin_verify(true, only, recorded),
            check => {
                if check == StartCheck::Empty {
                    self.reset_machine(&vec![false; pieces]);
                } else if !self.trusted
                    && let Some(bits) = &recorded
                {
                    self.reset_machine(bits);
                }
                self.trusted = true;
                self.recorded = None;
                if let Err(e) = self.allocate().await {
                    return self.fail_start(e);
                }
                self.start_machine();
            }
        }
    }

    /// Rebuilds the machine (stopped) with `bits` as the pieces it has, keeping its counters.
    fn reset_machine(&mut self, bits: &[bool]) {
        let resume = Resume {
            have: Some(bitfield_of(bits)),
            ..self.machine.resume()
        };
        let info = self
            .machine
            .info()
            .cloned()
            .zip(self.machine.info_bytes().cloned());
        self.machine = new_machine(
            &self.shared,
            info.as_ref(),
            self.info_hash,
            self.peer_id,
            self.port,
            &self.trackers,
            &self.webseed_urls,
            resume,
            (self.stop_after_download, self.stop_after_metadata),
            self.rng.child(),
        );
    }

    /// Creates missing files (sparse, full length).
    async fn allocate(&mut self) -> Result<(), String> {
        let storage = self.open_storage()?;
        self.shared
            .blocking
            .run(move || storage.allocate())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    /// Hashes the data (only the flagged pieces when `only` is given; the others keep their
    /// bit in `recorded`), then hands the result to [`Self::verified`].
    fn begin_verify(
        &mut self,
        then_start: bool,
        only: Option<Vec<bool>>,
        recorded: Option<Vec<bool>>,
    ) {
        let storage = match self.open_storage() {
            Ok(s) => s,
            Err(e) => return self.fail_start(e),
        };
        let Some(info) = self.machine.info() else {
            return;
        };
        let hashes = info.pieces.clone();
        let cancel = Arc::new(AtomicBool::new(false));
        self.checked.store(0, Ordering::Relaxed);
        self.phase = Phase::Verifying {
            cancel: cancel.clone(),
            then_start,
        };
        // The data may have changed since it was cached.
        self.reads.purge();
        self.shared
            .counters
            .verifications
            .fetch_add(1, Ordering::Relaxed);
        let shared = self.shared.clone();
        let checked = self.checked.clone();
        let tx = self.inbox_tx.clone();
        let threads = self.shared.hash_threads;
        let blocking = self.shared.blocking;
        tokio::spawn(async move {
            let job = blocking
                .run(move || {
                    let opts = VerifyOptions {
                        threads,
                        only: only.as_deref(),
                        cancel: Some(&cancel),
                    };
                    let mut bits = verify(&*storage, &hashes, &opts, |p| {
                        checked.store(p.checked, Ordering::Relaxed);
                        shared
                            .counters
                            .pieces_checked
                            .fetch_add(1, Ordering::Relaxed);
                    })?;
                    if let Some((only, recorded)) = only.as_ref().zip(recorded.as_ref()) {
                        merge_checked(&mut bits, only, recorded);
                    }
                    Ok(bits)
                })
                .await;
            let result = job.unwrap_or(Err(VerifyError::Cancelled));
            let _ = tx.send(Input::Verified(result)).await;
        });
    }

    async fn verified(&mut self, result: Result<Vec<bool>, VerifyError>) {
        let Phase::Verifying { then_start, .. } = std::mem::replace(&mut self.phase, Phase::Idle)
        else {
            return;
        };
        // Blocks read while hashing may belong to pieces that failed and will be downloaded
        // again.
        self.reads.purge();
        match result {
            Ok(bits) => {
                self.reset_machine(&bits);
                self.trusted = true;
                self.recorded = None;
                self.write_progress().await;
                if then_start && self.shutdown.is_none() {
                    if let Err(e) = self.allocate().await {
                        return self.fail_start(e);
                    }
                    self.start_machine();
                } else {
                    self.shared.emit(SessionEvent::Stopped {
                        id: self.id.clone(),
                        error: None,
                    });
                }
            }
            Err(VerifyError::Cancelled) => {}
            Err(e) => self.fail_start(e.to_string()),
        }
    }

    fn start_machine(&mut self) {
        let now = self.shared.now();
        self.phase = Phase::Running;
        self.machine.start(now);
        self.dht_next = self
            .shared
            .dht
            .as_ref()
            .map(|_| tokio::time::Instant::now());
        // Complete from the start (data already on disk): users hear "complete" as rain's
        // NotifyComplete tells them, so hooks such as on-complete-cmd see it too.
        if self.machine.is_complete() {
            self.shared.emit(SessionEvent::Completed {
                id: self.id.clone(),
            });
        }
        for a in self.fixed_peers.clone() {
            self.machine.add_peer_addr(now, a, PeerSource::Manual);
        }
        if self.listener.is_none() {
            self.listener = Some(self.spawn_listener());
        }
    }

    fn local(&self) -> Local {
        Local {
            info_hash: self.info_hash,
            peer_id: self.peer_id,
            reserved: Reserved::rain(self.shared.dht.is_some()),
        }
    }

    fn spawn_listener(&mut self) -> JoinHandle<()> {
        let shared = self.shared.clone();
        let local = self.local();
        let inbox = self.inbox_tx.clone();
        let addr = SocketAddr::new(self.shared.host, self.port);
        let id = self.id.clone();
        let mut rng = Rng::new(self.rng.child());
        tokio::spawn(async move {
            // The session probed the port at add and restore (crate::ports); if something
            // took it since, the torrent runs without incoming connections, as in rain.
            let mut listener = match shared.net.listen(addr).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!("torrent {id}: cannot listen on {addr}: {e}");
                    return;
                }
            };
            shared.emit(SessionEvent::Listening {
                id,
                port: addr.port(),
            });
            let handshakes = Arc::new(Semaphore::new(MAX_INCOMING_HANDSHAKES));
            loop {
                let Ok((stream, from)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                // rain refuses blocked IPs at accept, before any handshake work.
                if shared.blocklist.blocks_incoming(from.ip()) {
                    continue;
                }
                let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                    continue;
                };
                // Session-wide connection cap: held for the connection's life.
                let Ok(slot) = shared.connections.clone().try_acquire_owned() else {
                    continue;
                };
                let shared = shared.clone();
                let inbox = inbox.clone();
                let mut rng = Rng::new(rng.child());
                tokio::spawn(async move {
                    let _slot = slot;
                    let conn = peer::accept(
                        stream,
                        &[local.info_hash],
                        |ih| (*ih == local.info_hash).then_some(local),
                        &shared.policy,
                        shared.timeouts,
                        shared.limits,
                        &mut rng,
                    )
                    .await;
                    drop(permit);
                    let shared_speed = shared.speed.clone();
                    drop(shared);
                    if let Ok(conn) = conn {
                        run_handshaked(
                            conn,
                            from,
                            rain_proto::torrent::Direction::Incoming,
                            inbox,
                            shared_speed,
                        )
                        .await;
                    }
                });
            }
        })
    }

    // ------------------------------------------------------------ inputs

    async fn input(&mut self, input: Input) {
        // Addresses and connections arriving here meet the latest list.
        self.sync_blocklist();
        let now = self.shared.now();
        match input {
            Input::Handshaked { info, reply } => {
                match self.machine.handle_peer_connected(now, info) {
                    Ok(key) => {
                        let cap =
                            self.shared.torrent_config.max_requests_in as usize + OUTBOX_SLACK;
                        let (tx, rx) = mpsc::channel(cap);
                        if reply.send(Some((key, rx))).is_ok() {
                            self.peers.insert(key, tx);
                        } else {
                            self.machine.handle_peer_closed(now, key);
                        }
                    }
                    Err(_) => {
                        let _ = reply.send(None);
                    }
                }
            }
            Input::DialFailed(addr) => self.machine.handle_dial_failed(now, addr),
            Input::Message(key, m) => {
                if self.peers.contains_key(&key) {
                    self.machine.handle_message(now, key, m);
                }
            }
            Input::Closed(key) => {
                if self.peers.remove(&key).is_some() {
                    self.machine.handle_peer_closed(now, key);
                }
            }
            Input::BlockRead {
                peer,
                piece,
                begin,
                result,
            } => self
                .machine
                .handle_block_read(now, peer, piece, begin, result),
            Input::PieceWritten { piece, result } => {
                self.writes_in_flight -= 1;
                self.machine.handle_piece_written(now, piece, result);
            }
            Input::Announced { id, result } => self.machine.handle_announce_reply(now, id, result),
            Input::Verified(r) => self.verified(r).await,
            Input::Webseed(WebseedReport::Data(request, data, permit)) => {
                self.machine.handle_webseed_data(now, request, data);
                drop(permit);
            }
            Input::Webseed(WebseedReport::Failed(request, error)) => {
                self.machine.handle_webseed_failed(now, request, error);
            }
            Input::DhtPeers(peers) => {
                for a in peers {
                    self.machine.add_peer_addr(now, a, PeerSource::Dht);
                }
            }
        }
    }

    // ------------------------------------------------------------ outputs

    async fn drain(&mut self) {
        let mut memory_rounds = 0;
        loop {
            let mut any = false;
            while let Some(a) = self.machine.poll_action() {
                any = true;
                self.perform(a);
            }
            let mut events = Vec::new();
            while let Some(e) = self.machine.poll_event() {
                events.push(e);
            }
            for e in events {
                any = true;
                self.event(e).await;
            }
            if !any {
                // Settled: report piece memory; a changed limit may start (or hold) pieces.
                if memory_rounds == MAX_MEMORY_ROUNDS || !self.sync_piece_memory() {
                    return;
                }
                memory_rounds += 1;
            }
        }
    }

    /// Reports the machine's piece memory to the session budget and applies the limit it
    /// answers (at once: the budget counts it as held). True if the limit changed.
    fn sync_piece_memory(&mut self) -> bool {
        let usage = crate::piece_memory::Usage {
            reserved: self.machine.piece_memory(),
            buffers: self.machine.piece_buffers() as u64,
            wanted: self.machine.piece_memory_wanted(),
            piece_length: self.machine.info().map_or(0, |i| u64::from(i.piece_length)),
        };
        let limit = self.memory.update(usage);
        if limit == self.machine.piece_memory_limit() {
            return false;
        }
        self.machine
            .set_piece_memory_limit(self.shared.now(), limit);
        true
    }

    fn perform(&mut self, a: Action) {
        match a {
            Action::Send { peer, message } => {
                let full = self
                    .peers
                    .get(&peer)
                    .is_some_and(|tx| tx.try_send(message).is_err());
                if full {
                    // A peer that does not read what we send is dropped.
                    self.peers.remove(&peer);
                    let now = self.shared.now();
                    self.machine.handle_peer_closed(now, peer);
                }
            }
            Action::Disconnect { peer, .. } => {
                self.peers.remove(&peer);
            }
            Action::Dial { addr } => self.spawn_dial(addr),
            Action::WebseedRequest(r) => self.webseeds.start(r, self.inbox_tx.clone()),
            Action::WebseedCancel { request, .. } => self.webseeds.cancel(request),
            Action::ReadBlock {
                peer,
                piece,
                begin,
                len,
            } => self.spawn_read(peer, piece, begin, len),
            Action::VerifyAndWrite {
                piece,
                expected,
                blocks,
            } => self.spawn_write(piece, expected, blocks),
            Action::Announce { request, announce } => {
                let announcer = self.shared.announcer.clone();
                let tx = self.inbox_tx.clone();
                let limit = self.shared.tracker_timeout;
                let private = self.machine.info().is_some_and(|i| i.private);
                tokio::spawn(async move {
                    let call = announcer.announce(
                        &request.url,
                        &announce,
                        request.tracker_id.as_deref(),
                        private,
                    );
                    let result = tokio::time::timeout(limit, call)
                        .await
                        .unwrap_or(Err(TrackerError::Timeout));
                    let _ = tx
                        .send(Input::Announced {
                            id: request.id,
                            result,
                        })
                        .await;
                });
            }
        }
    }

    fn spawn_dial(&mut self, addr: SocketAddr) {
        let shared = self.shared.clone();
        let local = self.local();
        let inbox = self.inbox_tx.clone();
        let mut rng = Rng::new(self.rng.child());
        tokio::spawn(async move {
            // Held for the connection's life; without one the dial fails and is retried later.
            let Ok(_slot) = shared.connections.clone().try_acquire_owned() else {
                let _ = inbox.send(Input::DialFailed(addr)).await;
                return;
            };
            let Ok(permit) = shared.dial_sem.clone().acquire_owned().await else {
                return;
            };
            let conn = peer::dial(
                &shared.net,
                addr,
                &local,
                &shared.policy,
                shared.timeouts,
                shared.limits,
                &mut rng,
            )
            .await;
            drop(permit);
            let speed = shared.speed.clone();
            drop(shared);
            match conn {
                Ok(conn) => {
                    run_handshaked(
                        conn,
                        addr,
                        rain_proto::torrent::Direction::Outgoing,
                        inbox,
                        speed,
                    )
                    .await;
                }
                Err(_) => {
                    let _ = inbox.send(Input::DialFailed(addr)).await;
                }
            }
        });
    }

    fn spawn_read(&mut self, peer: PeerKey, piece: u32, begin: u32, len: u32) {
        let tx = self.inbox_tx.clone();
        let Some(storage) = self.storage.clone() else {
            let now = self.shared.now();
            let e = DiskError(std::io::ErrorKind::NotFound);
            self.machine
                .handle_block_read(now, peer, piece, begin, Err(e));
            return;
        };
        // Through the session's read cache: it loads whole cache blocks (at most
        // `parallel-reads` at a time) and answers with slices of them.
        let cache = self.reads.cache().clone();
        let key = self.reads.key();
        let blocking = self.shared.blocking;
        tokio::spawn(async move {
            let result = match storage.layout().piece(piece) {
                None => Err(DiskError(std::io::ErrorKind::InvalidInput)),
                Some((offset, piece_len)) => {
                    let load = |at: u32, n: u32| {
                        let storage = storage.clone();
                        let job = blocking.run(move || {
                            let mut buf = BytesMut::zeroed(n as usize);
                            storage
                                .read(offset + u64::from(at), &mut buf)
                                .map_err(|e| disk_error(&e))?;
                            Ok(buf.freeze())
                        });
                        async move {
                            job.await
                                .unwrap_or(Err(DiskError(std::io::ErrorKind::Interrupted)))
                        }
                    };
                    cache.read(key, piece, piece_len, begin, len, load).await
                }
            };
            let _ = tx
                .send(Input::BlockRead {
                    peer,
                    piece,
                    begin,
                    result,
                })
                .await;
        });
    }

    fn spawn_write(&mut self, piece: u32, expected: [u8; 20], blocks: Vec<Bytes>) {
        let tx = self.inbox_tx.clone();
        let Some(storage) = self.storage.clone() else {
            let now = self.shared.now();
            let e = DiskError(std::io::ErrorKind::NotFound);
            self.machine.handle_piece_written(now, piece, Err(e));
            return;
        };
        // Where each block starts: contiguous unless the piece borders padding.
        let begins: Option<Vec<u32>> = self.machine.picker().map(|p| {
            (0..blocks.len() as u32)
                .map(|k| p.layout().block(piece, k).begin)
                .collect()
        });
        self.writes_in_flight += 1;
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let Ok(_permit) = shared.hash_sem.clone().acquire_owned().await else {
                return;
            };
            let counters = shared.clone();
            let job = shared
                .blocking
                .run(move || hash_and_write(&*storage, piece, &expected, blocks, begins.as_deref()))
                .await;
            let result = job.unwrap_or(Err(DiskError(std::io::ErrorKind::Interrupted)));
            if result == Ok(true) {
                counters
                    .counters
                    .pieces_written
                    .fetch_add(1, Ordering::Relaxed);
            }
            let _ = tx.send(Input::PieceWritten { piece, result }).await;
        });
    }

    async fn event(&mut self, e: TorrentEvent) {
        match e {
            TorrentEvent::MetadataReceived { info_bytes } => {
                let name = self.machine.info().map(|i| i.name.clone());
                if let Some(n) = &name {
                    self.name.clone_from(n);
                }
                let clear_started = self.stop_after_metadata;
                let id = self.id.clone();
                if let Ok(db) = self.shared.db() {
                    let r = self
                        .shared
                        .blocking
                        .run(move || {
                            db.update_torrent(&id, |r| {
                                r.info = info_bytes.to_vec();
                                if let Some(n) = name {
                                    r.name = n;
                                }
                                if clear_started {
                                    r.started = false;
                                    r.stop_after_metadata = false;
                                }
                            })
                        })
                        .await;
                    if let Ok(Err(e)) = r {
                        self.error = Some(e.to_string());
                    }
                }
                self.trusted = true;
                if let Err(e) = self.allocate().await {
                    self.error = Some(e);
                    self.stop();
                }
                self.shared.emit(SessionEvent::MetadataReceived {
                    id: self.id.clone(),
                });
            }
            TorrentEvent::PieceCompleted { .. } => self.dirty = true,
            TorrentEvent::Completed => {
                self.write_progress().await;
                if self.stop_after_download {
                    self.stop_after_download = false;
                    let id = self.id.clone();
                    if let Ok(db) = self.shared.db() {
                        let _ = self
                            .shared
                            .blocking
                            .run(move || {
                                db.update_torrent(&id, |r| {
                                    r.started = false;
                                    r.stop_after_download = false;
                                })
                            })
                            .await;
                    }
                }
                self.shared.emit(SessionEvent::Completed {
                    id: self.id.clone(),
                });
            }
            TorrentEvent::Stopped { error } => {
                if let Some(l) = self.listener.take() {
                    l.abort();
                }
                self.peers.clear();
                self.webseeds.cancel_all();
                self.phase = Phase::Idle;
                self.write_progress().await;
                let error = error.map(|e| e.to_string()).or_else(|| self.error.clone());
                self.shared.emit(SessionEvent::Stopped {
                    id: self.id.clone(),
                    error,
                });
                if self.verify_requested && self.shutdown.is_none() {
                    self.verify_requested = false;
                    self.begin_verify(false, None, None);
                }
            }
            TorrentEvent::DhtNode { addr } => {
                if let Some(dht) = &self.shared.dht {
                    dht.add_node(addr);
                }
            }
            _ => {}
        }
    }

    /// Asks the DHT for peers (announcing our port), then schedules the next lookup: sooner
    /// while the torrent runs short of peers. Private torrents never use the DHT (BEP 27).
    fn dht_lookup(&mut self) {
        let private = self.machine.info().is_some_and(|i| i.private);
        let Some(dht) = self.shared.dht.as_ref().filter(|_| !private) else {
            self.dht_next = None;
            return;
        };
        let inbox = self.inbox_tx.clone();
        let sink = Box::new(move |peers: Vec<SocketAddr>| {
            let _ = inbox.try_send(Input::DhtPeers(peers));
        });
        dht.get_peers(self.info_hash, Some(self.port), sink);
        let (normal, short) = self.shared.dht_intervals;
        let wait = if self.machine.wants_more_peers() {
            short
        } else {
            normal
        };
        self.dht_next = Some(tokio::time::Instant::now() + wait);
    }

    // ------------------------------------------------------------ resume

    fn progress(&self) -> Progress {
        let r = self.machine.resume();
        let bitfield = if self.trusted {
            r.have.map(|b| {
                let bools: Vec<bool> = (0..b.len()).map(|i| b.get(i)).collect();
                pack_bitfield(&bools)
            })
        } else {
            self.stored_bitfield.clone()
        };
        Progress {
            bitfield,
            bytes_downloaded: r.downloaded,
            bytes_uploaded: r.uploaded,
            bytes_wasted: r.wasted,
            seeded_for: r.seeded_for,
        }
    }

    /// Snapshot the progress, flush storage, commit (the durability rule).
    async fn write_progress(&mut self) {
        let progress = self.progress();
        let Ok(db) = self.shared.db() else {
            return;
        };
        let storage = self.storage.clone();
        let id = self.id.clone();
        let r = self
            .shared
            .blocking
            .run(move || -> Result<(), String> {
                if let Some(s) = storage {
                    s.flush().map_err(|e| e.to_string())?;
                }
                db.put_progress(&id, &progress).map_err(|e| e.to_string())
            })
            .await;
        match r {
            Ok(Ok(())) => self.dirty = false,
            Ok(Err(e)) => self.error = Some(e),
            Err(e) => self.error = Some(e.to_string()),
        }
    }

    fn stats(&self) -> TorrentStats {
        let mut stats = self.machine.stats();
        if let Phase::Verifying { .. } = self.phase {
            stats.status = Status::Verifying;
            stats.pieces.checked = self.checked.load(Ordering::Relaxed);
        }
        let error = stats
            .error
            .as_ref()
            .map(ToString::to_string)
            .or_else(|| self.error.clone());
        TorrentStats {
            id: self.id.clone(),
            info_hash: self.info_hash,
            port: self.port,
            name: stats.name.clone().unwrap_or_else(|| self.name.clone()),
            status: stats.status,
            error,
            stats,
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// SHA-1 of a piece from its blocks (laid out at `begins`, zeros in between for padding),
/// then the write of the piece if it matches.
fn hash_and_write(
    storage: &dyn Storage,
    piece: u32,
    expected: &[u8; 20],
    blocks: Vec<Bytes>,
    begins: Option<&[u32]>,
) -> Result<bool, DiskError> {
    let (_, len) = storage
        .layout()
        .piece(piece)
        .ok_or(DiskError(std::io::ErrorKind::InvalidInput))?;
    let sum: u64 = blocks.iter().map(|b| b.len() as u64).sum();
    let blocks = if sum == u64::from(len) {
        blocks
    } else {
        // The piece borders padding: lay the blocks out with zeros between them.
        let mut buf = vec![0u8; len as usize];
        for (k, b) in blocks.iter().enumerate() {
            let at = begins.and_then(|v| v.get(k)).copied().unwrap_or(0) as usize;
            let end = (at + b.len()).min(buf.len());
            buf[at..end].copy_from_slice(&b[..end - at]);
        }
        vec![Bytes::from(buf)]
    };
    let mut h = Sha1::new();
    for b in &blocks {
        h.update(b);
    }
    if h.finalize().as_slice() != expected {
        return Ok(false);
    }
    storage
        .write_piece(piece, &blocks)
        .map_err(|e| disk_error(&e))?;
    Ok(true)
}

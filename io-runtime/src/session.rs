//! [`Session`]: the library API, the Rust twin of rain's `torrent.Session` (DESIGN.md §3).
//!
//! A session owns the resume database, the per-torrent port pool and one
//! [torrent task](crate::torrent_task) per torrent. Every method that concerns one torrent is a
//! request to that torrent's task; the session itself holds only the list of torrents.
//!
//! ```no_run
//! # async fn demo(bytes: Vec<u8>) -> Result<(), rain_runtime::session::SessionError> {
//! use rain_runtime::session::{AddOptions, Session, SessionConfig};
//! let session = Session::new(SessionConfig::default()).await?;
//! let t = session.add_torrent(&bytes, AddOptions::default()).await?;
//! println!("{} on port {}", t.id, t.port);
//! session.close().await?;
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rain_proto::InfoHash;
use rain_proto::dht::DhtConfig;
use rain_proto::magnet;
use rain_proto::metainfo::{self, Info, Metainfo};
use rain_proto::mse::EncryptionPolicy;
use rain_proto::rng::{Rng, Seed};
use rain_proto::torrent::{PeerView, Stats, Status, TorrentConfig};
use rain_proto::tracker::announcer::TrackerStatus;
use rain_proto::wire::{Limits, PeerId};
use tokio::sync::{Semaphore, broadcast, mpsc, oneshot};

use crate::announce::Announcer;
use crate::blocking::BlockingMode;
use crate::dht::{DhtHandle, DhtSettings};
use crate::http::{HttpClient, HttpConfig};
use crate::net::{Network, TokioNet};
use crate::peer::Timeouts;
use crate::ports;
use crate::rate_limit::SpeedLimits;
use crate::resume::{
    LastShutdown, Progress, ResumeDb, ResumeDbOptions, ResumeError, TorrentRecord,
};
use crate::storage::{FileCache, FileStorage, FileStorageOptions, storage_root};
use crate::torrent_task::{self, Command, Counters, Shared, TaskHandle, TaskSpec};
use crate::tracker_client::{TrackerClient, TrackerConfig};

/// Capacity of the session event channel; slow subscribers miss the oldest events.
pub const EVENT_CAPACITY: usize = 1024;
/// Outgoing connections being set up at once, session-wide.
pub const MAX_CONCURRENT_DIALS: usize = 256;
/// Default `max-peer-connections`: room for 40 torrents at rain's 80 + 20 peers each, and
/// well inside rain's default `max-open-files` (10240).
pub const DEFAULT_MAX_PEER_CONNECTIONS: usize = 4000;
/// Longest wait for one torrent to stop at close or remove.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long `close` waits for the last users of the database to finish.
pub const DB_RELEASE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `write-cache-size`: 1 GiB of piece memory for the whole session (rain's default).
pub const DEFAULT_WRITE_CACHE_SIZE: u64 = 1024 * 1024 * 1024;

/// The runtime-relevant configuration keys, with rain's defaults (reference §4). The daemon
/// maps its YAML configuration onto this.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    /// `database`: the resume database file.
    pub database: PathBuf,
    /// `data-dir`: where torrent data goes.
    pub data_dir: PathBuf,
    /// `data-dir-includes-torrent-id`.
    pub data_dir_includes_torrent_id: bool,
    /// `host`: IP of the per-torrent listeners.
    pub host: IpAddr,
    /// `port-begin`: first port of the per-torrent pool (inclusive).
    pub port_begin: u16,
    /// `port-end`: end of the pool (exclusive).
    pub port_end: u16,
    /// `max-open-files`: open-file cache size.
    pub max_open_files: usize,
    /// `file-permissions` for created directories (files get it without execute bits).
    pub file_permissions: u32,
    /// `pex-enabled`.
    pub pex_enabled: bool,
    /// `resume-write-interval`.
    pub resume_write_interval: Duration,
    /// `resume-on-startup`: start the torrents stored as started.
    pub resume_on_startup: bool,
    /// `peer-connect-timeout`.
    pub peer_connect_timeout: Duration,
    /// `peer-handshake-timeout`.
    pub peer_handshake_timeout: Duration,
    /// `disable-outgoing-encryption`.
    pub disable_outgoing_encryption: bool,
    /// `force-outgoing-encryption`.
    pub force_outgoing_encryption: bool,
    /// `force-incoming-encryption`.
    pub force_incoming_encryption: bool,
    /// `prefer-plaintext` (ours): select plaintext when a peer dialling us offers both
    /// methods. See [`EncryptionPolicy::prefer_plaintext`].
    pub prefer_plaintext: bool,
    /// `dht-enabled`: run a DHT node (rain's default is on; this library's is off, so that
    /// nothing reaches the public bootstrap routers unless asked to).
    pub dht_enabled: bool,
    /// `dht-host`: the DHT's UDP bind IP.
    pub dht_host: IpAddr,
    /// `dht-port`: the DHT's UDP port (0: any), also sent in `port` messages.
    pub dht_port: u16,
    /// BEP 32: the IPv6 address of the DHT's second, IPv6-only UDP socket (on `dht-port` when
    /// free); `None` keeps the DHT on IPv4. Ignored when `dht-host` is itself IPv6. Failing to
    /// bind it is logged, not an error.
    pub dht_host6: Option<IpAddr>,
    /// `dht-announce-interval`: a torrent's DHT lookup period.
    pub dht_announce_interval: Duration,
    /// `dht-min-announce-interval`: the period while the torrent needs more peers.
    pub dht_min_announce_interval: Duration,
    /// `dht-bootstrap-nodes` (`host:port`).
    pub dht_bootstrap_nodes: Vec<String>,
    /// `private-peer-id-prefix`: the peer id prefix of private torrents (public ones always
    /// use `-RN<version>-`); empty for rain's own.
    pub private_peer_id_prefix: String,
    /// `speed-limit-download`: KiB/s for the whole session, 0 = unlimited.
    pub speed_limit_download: u32,
    /// `speed-limit-upload`: KiB/s for the whole session, 0 = unlimited.
    pub speed_limit_upload: u32,
    /// `tracker-num-want`.
    pub tracker_num_want: u32,
    /// `tracker-stop-timeout`.
    pub tracker_stop_timeout: Duration,
    /// `tracker-http-timeout`: bound on one announce.
    pub tracker_http_timeout: Duration,
    /// `tracker-http-max-response-size`.
    pub tracker_http_max_response_size: usize,
    /// `tracker-http-verify-tls`.
    pub tracker_http_verify_tls: bool,
    /// `tracker-http-private-user-agent`: the User-Agent for private torrents' trackers.
    pub tracker_http_private_user_agent: String,
    /// `ssrf-mitigation` (libtorrent's `ssrf_mitigation`, on): a global tracker, web seed or
    /// `.torrent` URL may not redirect to a loopback or LAN address, a loopback HTTP tracker
    /// must have a path ending in `/announce`, and a web seed on a LAN or loopback address may
    /// not have a query string (see [`crate::http`]).
    pub ssrf_mitigation: bool,
    /// `torrent-add-http-timeout`: fetching a `.torrent` given by http(s) URL.
    pub torrent_add_http_timeout: Duration,
    /// `dns-resolve-timeout` for tracker hosts.
    pub dns_resolve_timeout: Duration,
    /// `webseed-dial-timeout`: TCP connect to a webseed.
    pub webseed_dial_timeout: Duration,
    /// `webseed-tls-handshake-timeout`.
    pub webseed_tls_handshake_timeout: Duration,
    /// `webseed-response-header-timeout`: from the request to the response headers.
    pub webseed_response_header_timeout: Duration,
    /// `webseed-response-body-read-timeout`: longest silence while reading a body.
    pub webseed_response_body_read_timeout: Duration,
    /// `webseed-retry-interval`: a failed webseed is retried after this long (rain ignores
    /// the setting and waits a minute; rain here honours it).
    pub webseed_retry_interval: Duration,
    /// `webseed-verify-tls`.
    pub webseed_verify_tls: bool,
    /// `webseed-max-sources`: URLs kept from `url-list` (rain never keeps fewer than 10;
    /// rain here honours any value).
    pub webseed_max_sources: usize,
    /// `webseed-max-downloads`: webseeds downloading at once per torrent.
    pub webseed_max_downloads: usize,
    /// `max-torrent-size`.
    pub max_torrent_size: usize,
    /// `max-pieces`.
    pub max_pieces: u32,
    /// `max-metadata-size` (also the largest peer message).
    pub max_metadata_size: u32,
    /// `unchoked-peers`.
    pub unchoked_peers: usize,
    /// `optimistic-unchoked-peers`.
    pub optimistic_unchoked_peers: usize,
    /// `max-requests-in`.
    pub max_requests_in: u32,
    /// `max-requests-out`.
    pub max_requests_out: u32,
    /// `default-requests-out`.
    pub default_requests_out: u32,
    /// `request-timeout`.
    pub request_timeout: Duration,
    /// `max-peer-dial`.
    pub max_peer_dial: usize,
    /// `max-peer-accept`.
    pub max_peer_accept: usize,
    /// `max-peer-connections` (ours; rain has only the per-torrent `max-peer-dial` and
    /// `max-peer-accept`): peer connections open at once over all torrents, handshakes
    /// included. Beyond it dials wait for a later try and incoming connections are dropped,
    /// so hundreds of torrents cannot exhaust the process's descriptors.
    pub max_peer_connections: usize,
    /// `parallel-metadata-downloads`.
    pub parallel_metadata_downloads: usize,
    /// `allowed-fast-set`.
    pub allowed_fast_set: usize,
    /// Most piece memory one torrent may hold, within `write_cache_size` (it may always hold
    /// one piece).
    pub max_piece_memory: u64,
    /// `write-cache-size`: the session-wide budget for in-progress piece buffers; each started
    /// piece reserves its whole length until it is written (see [`crate::piece_memory`]).
    pub write_cache_size: u64,
    /// Threads hashing pieces at once (downloads and verification); 0 means every core.
    pub hash_threads: usize,
    /// Seed for every id and RNG of the session (tests, simulation); `None` seeds from the OS.
    pub seed: Option<u64>,
    /// `blocklist-url`: where the IP blocklist is downloaded from; empty disables it.
    pub blocklist_url: String,
    /// `blocklist-update-interval`: how old the stored list may be before it is downloaded
    /// again, and the refresh period.
    pub blocklist_update_interval: Duration,
    /// `blocklist-update-timeout`: bound on one download.
    pub blocklist_update_timeout: Duration,
    /// `blocklist-max-response-size`: largest list accepted, after decompression.
    pub blocklist_max_response_size: usize,
    /// `blocklist-enabled-for-trackers`: refuse trackers on blocked IPs.
    pub blocklist_enabled_for_trackers: bool,
    /// `blocklist-enabled-for-outgoing-connections`: never dial blocked IPs.
    pub blocklist_enabled_for_outgoing_connections: bool,
    /// `blocklist-enabled-for-incoming-connections`: refuse connections from blocked IPs.
    pub blocklist_enabled_for_incoming_connections: bool,
    /// Where disk, hashing and database jobs run: tokio's blocking pool, or inline for a
    /// deterministic simulation.
    pub blocking: BlockingMode,
    /// A wrapper around every torrent's storage (fault injection; none by default).
    pub storage_layer: crate::storage::StorageLayer,
    /// `read-cache-size`: bytes of the upload read cache (see [`crate::storage::ReadCache`]).
    pub read_cache_size: u64,
    /// `read-cache-block-size`: the unit read from disk to serve uploads.
    pub read_cache_block_size: u32,
    /// `read-cache-ttl`: a cached block not accessed for this long is dropped.
    pub read_cache_ttl: Duration,
    /// `parallel-reads`: disk loads for the read cache running at once, session-wide.
    pub parallel_reads: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        let t = TorrentConfig::default();
        SessionConfig {
            database: home.join("rain").join("session.db"),
            data_dir: home.join("rain").join("data"),
            data_dir_includes_torrent_id: true,
            host: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port_begin: 20000,
            port_end: 30000,
            max_open_files: 10240,
            file_permissions: 0o750,
            pex_enabled: true,
            resume_write_interval: Duration::from_secs(30),
            resume_on_startup: true,
            peer_connect_timeout: Duration::from_secs(5),
            peer_handshake_timeout: Duration::from_secs(10),
            disable_outgoing_encryption: false,
            force_outgoing_encryption: false,
            force_incoming_encryption: false,
            prefer_plaintext: false,
            dht_enabled: false,
            dht_host: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            dht_port: 7246,
            dht_host6: Some(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)),
            dht_announce_interval: Duration::from_secs(30 * 60),
            dht_min_announce_interval: Duration::from_secs(60),
            dht_bootstrap_nodes: Vec::new(),
            private_peer_id_prefix: String::new(),
            speed_limit_download: 0,
            speed_limit_upload: 0,
            tracker_num_want: 200,
            tracker_stop_timeout: Duration::from_secs(5),
            tracker_http_timeout: Duration::from_secs(10),
            tracker_http_max_response_size: 2 * 1024 * 1024,
            tracker_http_verify_tls: true,
            tracker_http_private_user_agent: crate::tracker_client::default_user_agent(),
            ssrf_mitigation: true,
            torrent_add_http_timeout: Duration::from_secs(30),
            dns_resolve_timeout: Duration::from_secs(5),
            webseed_dial_timeout: Duration::from_secs(10),
            webseed_tls_handshake_timeout: Duration::from_secs(10),
            webseed_response_header_timeout: Duration::from_secs(10),
            webseed_response_body_read_timeout: Duration::from_secs(10),
            webseed_retry_interval: t.webseed.retry_interval,
            webseed_verify_tls: true,
            webseed_max_sources: t.webseed.max_sources,
            webseed_max_downloads: t.webseed.max_downloads,
            max_torrent_size: 10 * 1024 * 1024,
            max_pieces: 65536,
            max_metadata_size: Limits::DEFAULT_MAX_MESSAGE_LEN,
            unchoked_peers: t.choker.unchoked_peers,
            optimistic_unchoked_peers: t.choker.optimistic_unchoked_peers,
            max_requests_in: t.max_requests_in,
            max_requests_out: t.max_requests_out,
            default_requests_out: t.default_requests_out,
            request_timeout: t.request_timeout,
            max_peer_dial: t.max_peer_dial,
            max_peer_accept: t.max_peer_accept,
            max_peer_connections: DEFAULT_MAX_PEER_CONNECTIONS,
            parallel_metadata_downloads: t.parallel_metadata_downloads,
            allowed_fast_set: t.allowed_fast_set,
            max_piece_memory: t.max_piece_memory,
            write_cache_size: DEFAULT_WRITE_CACHE_SIZE,
            hash_threads: 0,
            seed: None,
            blocking: BlockingMode::Pool,
            storage_layer: crate::storage::StorageLayer::default(),
            read_cache_size: 256 * 1024 * 1024,
            read_cache_block_size: 128 * 1024,
            read_cache_ttl: Duration::from_secs(60),
            parallel_reads: 1,
            blocklist_url: String::new(),
            blocklist_update_interval: Duration::from_secs(24 * 3600),
            blocklist_update_timeout: Duration::from_secs(10 * 60),
            blocklist_max_response_size: crate::blocklist::DEFAULT_MAX_RESPONSE_SIZE,
            blocklist_enabled_for_trackers: true,
            blocklist_enabled_for_outgoing_connections: true,
            blocklist_enabled_for_incoming_connections: true,
        }
    }
}

impl SessionConfig {
    /// The per-torrent machine settings these session settings give (also what a pure
    /// simulation of the same sessions runs with).
    pub fn torrent_config(&self) -> TorrentConfig {
        let mut t = TorrentConfig::default();
        t.choker.unchoked_peers = self.unchoked_peers;
        t.choker.optimistic_unchoked_peers = self.optimistic_unchoked_peers;
        t.max_requests_in = self.max_requests_in;
        t.max_requests_out = self.max_requests_out;
        t.default_requests_out = self.default_requests_out;
        t.request_timeout = self.request_timeout;
        t.max_peer_dial = self.max_peer_dial;
        t.max_peer_accept = self.max_peer_accept;
        t.parallel_metadata_downloads = self.parallel_metadata_downloads;
        t.allowed_fast_set = self.allowed_fast_set;
        t.max_metadata_size = u64::from(self.max_metadata_size);
        t.max_piece_memory = self.max_piece_memory;
        t.pex_enabled = self.pex_enabled;
        t.announcer.num_want = self.tracker_num_want;
        t.announcer.stop_timeout = self.tracker_stop_timeout;
        t.client_version = format!("Rain {}", env!("CARGO_PKG_VERSION"));
        t.webseed = rain_proto::webseed::WebseedConfig {
            max_sources: self.webseed_max_sources,
            max_downloads: self.webseed_max_downloads,
            retry_interval: self.webseed_retry_interval,
        };
        t
    }

    /// How webseed requests are made, from the `webseed-*` keys.
    fn webseed_settings(&self) -> crate::webseed::WebseedSettings {
        crate::webseed::WebseedSettings {
            timeouts: crate::http::StreamTimeouts {
                connect: self.webseed_dial_timeout,
                tls: self.webseed_tls_handshake_timeout,
                headers: self.webseed_response_header_timeout,
                body_idle: self.webseed_response_body_read_timeout,
            },
            resolve_timeout: self.dns_resolve_timeout,
            verify_tls: self.webseed_verify_tls,
            ssrf_mitigation: self.ssrf_mitigation,
        }
    }

    /// The `blocklist-*` keys.
    fn blocklist_settings(&self) -> crate::blocklist::BlocklistSettings {
        crate::blocklist::BlocklistSettings {
            url: self.blocklist_url.clone(),
            update_interval: self.blocklist_update_interval,
            update_timeout: self.blocklist_update_timeout,
            max_response_size: self.blocklist_max_response_size,
            for_trackers: self.blocklist_enabled_for_trackers,
            for_outgoing: self.blocklist_enabled_for_outgoing_connections,
            for_incoming: self.blocklist_enabled_for_incoming_connections,
        }
    }

    /// The tracker transport's settings from the `tracker-*` keys.
    fn tracker_config(&self) -> TrackerConfig {
        let mut t = TrackerConfig::default();
        t.http.timeout = self.tracker_http_timeout;
        t.http.resolve_timeout = self.dns_resolve_timeout;
        t.http.max_body = self.tracker_http_max_response_size;
        t.http.verify_tls = self.tracker_http_verify_tls;
        t.http.ssrf_mitigation = self.ssrf_mitigation;
        t.udp.resolve_timeout = self.dns_resolve_timeout;
        t.private_user_agent
            .clone_from(&self.tracker_http_private_user_agent);
        t
    }

    /// The client fetching `.torrent` files by URL: `torrent-add-http-timeout`, bodies up to
    /// `max-torrent-size`, TLS verified.
    fn torrent_http_config(&self) -> HttpConfig {
        HttpConfig {
            timeout: self.torrent_add_http_timeout,
            resolve_timeout: self.dns_resolve_timeout,
            max_body: self.max_torrent_size,
            ssrf_mitigation: self.ssrf_mitigation,
            ..HttpConfig::default()
        }
    }

    /// The metainfo parser limits these settings imply (`max-torrent-size`, `max-pieces`).
    pub fn metainfo_limits(&self) -> metainfo::Limits {
        metainfo::Limits {
            max_torrent_size: self.max_torrent_size,
            max_pieces: self.max_pieces,
            ..metainfo::Limits::default()
        }
    }
}

/// rain's add options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddOptions {
    /// A custom torrent id; `None` generates one.
    pub id: Option<String>,
    /// Add without starting.
    pub stopped: bool,
    /// Stop once the download completes.
    pub stop_after_download: bool,
    /// Stop once the metadata arrives (magnet links).
    pub stop_after_metadata: bool,
}

/// A torrent as `list` shows it (rain's RPC `Torrent` object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorrentSummary {
    /// The torrent id.
    pub id: String,
    /// The initial name (`dn` for magnets).
    pub name: String,
    /// The info-hash.
    pub info_hash: InfoHash,
    /// The listen port.
    pub port: u16,
    /// When it was added, Unix seconds.
    pub added_at: i64,
}

/// rain's torrent `Stats`: the machine's [`Stats`] plus what only the runtime knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorrentStats {
    /// The torrent id.
    pub id: String,
    /// The info-hash.
    pub info_hash: InfoHash,
    /// The listen port.
    pub port: u16,
    /// The info name once known, else the initial name.
    pub name: String,
    /// The status, including the runtime's Verifying.
    pub status: Status,
    /// The last error that stopped the torrent, worded for users.
    pub error: Option<String>,
    /// The machine's statistics (`status` and `pieces.checked` set by the runtime).
    pub stats: Stats,
}

/// One file of a torrent (rain's RPC `File`; padding files are left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path with `/` separators, including the torrent name for multi-file torrents.
    pub path: String,
    /// Length in bytes.
    pub length: u64,
}

/// One file with its progress (rain's RPC `FileStats`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStats {
    /// The file.
    pub file: FileEntry,
    /// Bytes of the file inside verified pieces.
    pub bytes_completed: u64,
}

/// Session statistics (the part of rain's `SessionStats` known so far).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionStats {
    /// Time since the session was created.
    pub uptime: Duration,
    /// Torrents in the session.
    pub torrents: usize,
    /// Connected peers over all torrents.
    pub peers: usize,
    /// Free ports left in the pool.
    pub ports_available: usize,
    /// Verifications of existing data started since the session was created.
    pub verifications: u64,
    /// Pieces hashed by those verifications.
    pub pieces_checked: u64,
    /// Downloaded pieces hashed and written.
    pub pieces_written: u64,
    /// Download speed over all torrents, bytes/s.
    pub speed_download: u64,
    /// Upload speed over all torrents, bytes/s.
    pub speed_upload: u64,
    /// Payload downloaded over all torrents (persisted counters).
    pub bytes_downloaded: u64,
    /// Payload uploaded over all torrents (persisted counters).
    pub bytes_uploaded: u64,
    /// Rules of the IP blocklist in use (rain's `BlockListRules`).
    pub blocklist_rules: usize,
    /// Time since the blocklist in use was loaded; `None` if none ever was (rain's
    /// `BlockListRecency`, -1).
    pub blocklist_recency: Option<Duration>,
    /// Blocks in the upload read cache (rain's `ReadCacheObjects`).
    pub read_cache_objects: usize,
    /// Bytes in the upload read cache (rain's `ReadCacheSize`).
    pub read_cache_size: u64,
    /// Read-cache hit ratio in percent, from 1-minute rates of hits and misses (rain's
    /// `ReadCacheUtilization`).
    pub read_cache_utilization: u32,
    /// Read-cache disk loads per second, 1-minute rate (rain's `ReadsPerSecond`).
    pub reads_per_second: u64,
    /// Read-cache loads running (rain's `ReadsActive`).
    pub reads_active: usize,
    /// Read-cache loads waiting for a `parallel-reads` permit (rain's `ReadsPending`).
    pub reads_pending: usize,
    /// Bytes loaded from disk by the read cache per second, 1-minute rate (rain's
    /// `SpeedRead`).
    pub speed_read: u64,
    /// Bytes loaded from disk by the read cache since the session started (rain's
    /// `BytesRead`).
    pub bytes_read: u64,
    /// Piece buffers holding piece memory (rain's `WriteCacheObjects`).
    pub write_cache_objects: u64,
    /// Bytes of piece memory reserved, within `write_cache_size` (rain's `WriteCacheSize`).
    pub write_cache_size: u64,
    /// Torrents waiting for piece memory (rain's `WriteCachePendingKeys`).
    pub write_cache_pending_keys: usize,
    /// The most piece memory reserved at once since the session started.
    pub write_cache_peak: u64,
}

/// What the session tells its subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// A magnet torrent received its info dictionary.
    MetadataReceived {
        /// The torrent.
        id: String,
    },
    /// Every wanted piece is downloaded, or verified present when the torrent starts.
    Completed {
        /// The torrent.
        id: String,
    },
    /// The torrent stopped, with the error that stopped it (`None` for a user stop).
    Stopped {
        /// The torrent.
        id: String,
        /// The error.
        error: Option<String>,
    },
    /// The torrent listens for peers on `port`.
    Listening {
        /// The torrent.
        id: String,
        /// The port.
        port: u16,
    },
}

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// An invalid configuration.
    #[error("invalid configuration: {0}")]
    Config(&'static str),
    /// The resume database failed.
    #[error(transparent)]
    Database(#[from] ResumeError),
    /// Bad `.torrent` data.
    #[error("input error: {0}")]
    InvalidTorrent(#[from] metainfo::Error),
    /// A bad magnet link.
    #[error("input error: {0}")]
    InvalidMagnet(#[from] magnet::Error),
    /// A URI this session cannot add.
    #[error("unsupported URI: {0}")]
    UnsupportedUri(String),
    /// A `.torrent` could not be fetched from its URL.
    #[error("input error: cannot download torrent from {url}: {reason}")]
    Fetch {
        /// The URL.
        url: String,
        /// Why, worded for users.
        reason: String,
    },
    /// The custom id is taken.
    #[error("duplicate torrent id")]
    DuplicateId,
    /// The custom id cannot be used (empty, too long, or not a directory name).
    #[error("invalid torrent id {0:?}")]
    InvalidId(String),
    /// No such torrent.
    #[error("torrent not found")]
    NotFound(String),
    /// The port pool is exhausted.
    #[error("no free port")]
    NoFreePort,
    /// The metadata of a magnet link has not arrived.
    #[error("torrent metadata not ready")]
    MetadataNotReady,
    /// The torrent has no piece layout yet (no metadata, or never started).
    #[error("torrent not running so file stats unavailable")]
    NotRunning,
    /// Private torrents have no magnet link.
    #[error("private torrents have no magnet link")]
    Private,
    /// An address that does not resolve.
    #[error("invalid peer address {0:?}")]
    InvalidAddress(String),
    /// A file operation failed (removing data).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The session is closing.
    #[error("session is closed")]
    Closed,
}

#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) summary: TorrentSummary,
    pub(crate) trackers: Vec<Vec<String>>,
    pub(crate) handle: TaskHandle,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) torrents: BTreeMap<String, Entry>,
    pub(crate) free_ports: BTreeSet<u16>,
    pub(crate) rng: Rng,
}

/// A BitTorrent session: many torrents, one resume database. Create it inside a tokio
/// runtime; end it with [`Session::close`] (dropping it instead counts as a crash: torrent
/// tasks are aborted and the next start re-checks data).
#[derive(Debug)]
pub struct Session<N: Network = TokioNet> {
    pub(crate) shared: Arc<Shared<N>>,
    state: Mutex<State>,
    pub(crate) config: SessionConfig,
    started: tokio::time::Instant,
    invalid: Vec<String>,
    /// Refreshes the blocklist; dropped (aborted) at close.
    blocklist_refresher: Mutex<Option<crate::blocklist::Refresher>>,
}

impl Session<TokioNet> {
    /// Opens a session on the real network with the http/https/udp tracker client (see
    /// [`Session::with_parts`]; pass [`crate::announce::NoAnnouncer`] there for no trackers).
    pub async fn new(config: SessionConfig) -> Result<Self, SessionError> {
        let seed = config
            .seed
            .map_or_else(os_seed, |s| Seed::from_u64(s ^ 0x0074_7261_636b_6572));
        let tracker = TrackerClient::new(TokioNet, config.tracker_config(), seed);
        Self::with_parts(config, TokioNet, Arc::new(tracker)).await
    }
}

/// The resume-database key of the DHT routing table.
const DHT_NODES_KEY: &str = "dht-nodes";

/// Starts the session's DHT node from the stored routing table. Fails when the UDP port
/// cannot be bound (another session holds it).
async fn start_dht<N: Network>(
    net: &N,
    config: &SessionConfig,
    db: &Arc<ResumeDb>,
    seed: Seed,
    epoch: tokio::time::Instant,
) -> Result<DhtHandle, SessionError> {
    let saved = {
        let db = db.clone();
        config
            .blocking
            .run(move || db.session_get(DHT_NODES_KEY))
            .await
            .ok()
            .and_then(Result::ok)
            .flatten()
    };
    let settings = DhtSettings {
        bind: SocketAddr::new(config.dht_host, config.dht_port),
        bootstrap: config.dht_bootstrap_nodes.clone(),
        saved_nodes: saved,
        config: DhtConfig::default(),
    };
    DhtHandle::start_dual_stack(net.clone(), settings, config.dht_host6, seed, epoch)
        .await
        .map_err(|e| {
            SessionError::Io(std::io::Error::new(
                e.kind(),
                format!("dht-port {}: {e}", config.dht_port),
            ))
        })
}

fn os_seed() -> Seed {
    let mut s = [0u8; 32];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut s))
        .is_ok();
    if !ok {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        return Seed::from_u64(t as u64 ^ u64::from(std::process::id()));
    }
    Seed(s)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The peer id of a torrent: `private_prefix` (when set) for a private one, else rain's.
pub(crate) fn torrent_peer_id(info: Option<&Info>, private_prefix: &str, rng: &mut Rng) -> PeerId {
    if info.is_some_and(|i| i.private)
        && !private_prefix.is_empty()
        && let Ok(id) = PeerId::with_prefix(private_prefix, rng)
    {
        return id;
    }
    peer_id(rng)
}

pub(crate) fn peer_id(rng: &mut Rng) -> PeerId {
    let v = env!("CARGO_PKG_VERSION");
    PeerId::generate(v, rng)
        .unwrap_or_else(|_| PeerId::generate("0", rng).unwrap_or(PeerId(*b"-RN0-000000000000000")))
}

impl<N: Network> Session<N> {
    /// Opens a session on network `net` with tracker transport `announcer`: opens the resume
    /// database, restores every stored torrent with its port and counters, and starts those
    /// stored as started (`resume-on-startup`).
    pub async fn with_parts(
        config: SessionConfig,
        net: N,
        announcer: Arc<dyn Announcer>,
    ) -> Result<Self, SessionError> {
        if config.port_begin >= config.port_end {
            return Err(SessionError::Config(
                "port-begin must be less than port-end",
            ));
        }
        let policy = EncryptionPolicy {
            prefer_plaintext: config.prefer_plaintext,
            ..EncryptionPolicy::from_config(
                config.disable_outgoing_encryption,
                config.force_outgoing_encryption,
                config.force_incoming_encryption,
            )
            .map_err(|_| {
                SessionError::Config("disable- and force-outgoing-encryption are both set")
            })?
        };
        let path = config.database.clone();
        let opts = ResumeDbOptions {
            file_permissions: config.file_permissions,
            ..ResumeDbOptions::default()
        };
        let db = config
            .blocking
            .run(move || ResumeDb::open(&path, &opts))
            .await
            .map_err(|e| SessionError::Io(std::io::Error::other(e)))??;
        let db = Arc::new(db);
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        let hash = if config.hash_threads == 0 {
            cores
        } else {
            config.hash_threads
        };
        let mut storage_opts = FileStorageOptions::new(config.data_dir.clone());
        storage_opts.data_dir_includes_torrent_id = config.data_dir_includes_torrent_id;
        storage_opts.file_permissions = config.file_permissions;
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let epoch = tokio::time::Instant::now();
        let mut rng = Rng::new(config.seed.map_or_else(os_seed, Seed::from_u64));
        let dht = if config.dht_enabled {
            Some(start_dht(&net, &config, &db, rng.child(), epoch).await?)
        } else {
            None
        };
        // Loaded before any torrent task exists, so none dials or accepts unchecked.
        let blocklist_settings = config.blocklist_settings();
        let blocklist = Arc::new(crate::blocklist::SessionBlocklist::new(
            &blocklist_settings,
            blocklist_settings.for_trackers.then(|| announcer.clone()),
        ));
        let blocklist_refresher =
            crate::blocklist::start(&net, &blocklist_settings, &db, config.blocking, &blocklist)
                .await;
        let mut torrent_config = config.torrent_config();
        torrent_config.dht_port = dht.as_ref().map(DhtHandle::port);
        let piece_memory = crate::piece_memory::PieceMemory::new(
            config.write_cache_size,
            config.max_piece_memory,
            rng.child(),
        );
        let shared = Arc::new(Shared {
            net,
            torrent_config,
            storage_opts,
            host: config.host,
            timeouts: Timeouts {
                connect: config.peer_connect_timeout,
                handshake: config.peer_handshake_timeout,
            },
            limits: Limits {
                max_message_len: config.max_metadata_size,
                ..Limits::default()
            },
            policy,
            resume_write_interval: config.resume_write_interval,
            tracker_timeout: config.tracker_http_timeout,
            hash_threads: hash,
            trust_stored_bitfields: db.last_shutdown() == LastShutdown::Clean,
            db: RwLock::new(Some(db.clone())),
            cache: Arc::new(FileCache::new(config.max_open_files.max(1))),
            hash_sem: Arc::new(Semaphore::new(hash)),
            read_cache: crate::storage::ReadCache::new(crate::storage::ReadCacheConfig {
                capacity: config.read_cache_size,
                block_size: config.read_cache_block_size,
                ttl: config.read_cache_ttl,
                parallel_reads: config.parallel_reads,
            }),
            dial_sem: Arc::new(Semaphore::new(MAX_CONCURRENT_DIALS)),
            connections: Arc::new(Semaphore::new(config.max_peer_connections)),
            webseed: config.webseed_settings(),
            announcer,
            events,
            epoch,
            counters: Counters::default(),
            dht,
            dht_intervals: (
                config.dht_announce_interval,
                config.dht_min_announce_interval,
            ),
            speed: SpeedLimits::from_kib(config.speed_limit_download, config.speed_limit_upload),
            blocking: config.blocking,
            storage_layer: config.storage_layer.clone(),
            blocklist,
            piece_memory,
        });
        let mut state = State {
            torrents: BTreeMap::new(),
            free_ports: (config.port_begin..config.port_end).collect(),
            rng,
        };
        let loaded = {
            let db = db.clone();
            config
                .blocking
                .run(move || db.load_torrents())
                .await
                .map_err(|e| SessionError::Io(std::io::Error::other(e)))??
        };
        let limits = config.metainfo_limits();
        let mut invalid: Vec<String> = loaded.failed.into_iter().map(|(id, _)| id).collect();
        let mut to_start = Vec::new();
        for (_, record) in &loaded.ok {
            state.free_ports.remove(&record.port);
        }
        for (id, mut record) in loaded.ok {
            let info = if record.info.is_empty() {
                None
            } else if let Ok(info) = Info::from_bytes(&record.info, &limits) {
                Some((info, Bytes::from(record.info.clone())))
            } else {
                invalid.push(id);
                continue;
            };
            let (port, back) = ports::bindable(&shared.net, config.host, record.port, || {
                ports::draw(&mut state.free_ports, &mut state.rng)
            })
            .await;
            state.free_ports.extend(back);
            if port != record.port {
                record.port = port;
                let (db, id, record) = (db.clone(), id.clone(), record.clone());
                // Not fatal: the record keeps its old port, probed again next time.
                let _ = config
                    .blocking
                    .run(move || db.put_torrent(&id, &record))
                    .await;
            }
            let peer_id = torrent_peer_id(
                info.as_ref().map(|(i, _)| i),
                &config.private_peer_id_prefix,
                &mut state.rng,
            );
            let spec = TaskSpec::from_record(&id, &record, info, peer_id, state.rng.child());
            let handle = torrent_task::spawn(shared.clone(), spec);
            if config.resume_on_startup && record.started {
                to_start.push(handle.cmd.clone());
            }
            state.torrents.insert(
                id.clone(),
                Entry {
                    summary: TorrentSummary {
                        id,
                        name: record.name,
                        info_hash: record.info_hash,
                        port: record.port,
                        added_at: record.added_at,
                    },
                    trackers: record.trackers,
                    handle,
                },
            );
        }
        for cmd in to_start {
            let _ = cmd.send(Command::Start).await;
        }
        Ok(Session {
            shared,
            state: Mutex::new(state),
            config,
            started: tokio::time::Instant::now(),
            invalid,
            blocklist_refresher: Mutex::new(blocklist_refresher),
        })
    }

    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the map inconsistent in a way that
        // matters more than refusing every later call.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Subscribes to session events.
    pub fn subscribe(&self) -> broadcast::Receiver<SessionEvent> {
        self.shared.events.subscribe()
    }

    /// Ids of stored torrents that failed to load at startup (rain's `CleanDatabase` input).
    pub fn invalid_torrents(&self) -> &[String] {
        &self.invalid
    }

    // ------------------------------------------------------------ adding

    /// Adds a torrent from `.torrent` bytes.
    pub async fn add_torrent(
        &self,
        bytes: &[u8],
        opts: AddOptions,
    ) -> Result<TorrentSummary, SessionError> {
        let mi = Metainfo::from_bytes(bytes, &self.config.metainfo_limits())?;
        let name = mi.info.name.clone();
        let info_bytes = Bytes::from(mi.info_bytes);
        self.add(
            mi.info_hash,
            name,
            Some((mi.info, info_bytes)),
            (mi.trackers, mi.webseeds),
            Vec::new(),
            opts,
        )
        .await
    }

    /// Adds a torrent from a magnet link.
    pub async fn add_magnet(
        &self,
        link: &str,
        opts: AddOptions,
    ) -> Result<TorrentSummary, SessionError> {
        let m = magnet::parse(link)?;
        let name = m.name.clone().unwrap_or_else(|| m.info_hash.to_hex());
        self.add(
            m.info_hash,
            name,
            None,
            (m.trackers, m.webseeds),
            m.peers,
            opts,
        )
        .await
    }

    /// Adds from a URI: a `magnet:` link, or the `http(s)://` URL of a `.torrent` file
    /// (fetched within `torrent-add-http-timeout`, at most `max-torrent-size` bytes).
    pub async fn add_uri(
        &self,
        uri: &str,
        opts: AddOptions,
    ) -> Result<TorrentSummary, SessionError> {
        if uri.starts_with("magnet:") {
            return self.add_magnet(uri, opts).await;
        }
        if uri.starts_with("http://") || uri.starts_with("https://") {
            let bytes = self.fetch_torrent(uri).await?;
            return self.add_torrent(&bytes, opts).await;
        }
        Err(SessionError::UnsupportedUri(uri.to_owned()))
    }

    async fn fetch_torrent(&self, url: &str) -> Result<Bytes, SessionError> {
        let fail = |reason: String| SessionError::Fetch {
            url: url.to_owned(),
            reason,
        };
        let client = HttpClient::new(self.shared.net.clone(), self.config.torrent_http_config());
        let response = client
            .get(url, &[])
            .await
            .map_err(|e| fail(e.to_string()))?;
        if response.status != 200 {
            return Err(fail(format!("HTTP status {}", response.status)));
        }
        Ok(response.body)
    }

    async fn add(
        &self,
        info_hash: InfoHash,
        name: String,
        info: Option<(Info, Bytes)>,
        (trackers, webseeds): (Vec<Vec<String>>, Vec<String>),
        fixed_peers: Vec<String>,
        opts: AddOptions,
    ) -> Result<TorrentSummary, SessionError> {
        let (id, port, peer_id, seed) = {
            let mut st = self.state();
            let id = if let Some(id) = &opts.id {
                if id.is_empty() || id.len() > crate::resume::MAX_KEY_LEN {
                    return Err(SessionError::InvalidId(id.clone()));
                }
                id.clone()
            } else {
                let mut raw = [0u8; 16];
                st.rng.fill(&mut raw);
                data_encoding::BASE64URL_NOPAD.encode(&raw)
            };
            if storage_root(&self.shared.storage_opts, &id).is_err() {
                return Err(SessionError::InvalidId(id));
            }
            if st.torrents.contains_key(&id) {
                return Err(SessionError::DuplicateId);
            }
            let st = &mut *st;
            let port =
                ports::draw(&mut st.free_ports, &mut st.rng).ok_or(SessionError::NoFreePort)?;
            let peer_id = torrent_peer_id(
                info.as_ref().map(|(i, _)| i),
                &self.config.private_peer_id_prefix,
                &mut st.rng,
            );
            let seed = st.rng.child();
            (id, port, peer_id, seed)
        };
        let (port, back) = ports::bindable(&self.shared.net, self.shared.host, port, || {
            let mut st = self.state();
            let st = &mut *st;
            ports::draw(&mut st.free_ports, &mut st.rng)
        })
        .await;
        self.state().free_ports.extend(back);
        let record = TorrentRecord {
            info_hash,
            port,
            name: name.clone(),
            trackers: trackers.clone(),
            url_list: webseeds.clone(),
            fixed_peers: fixed_peers.clone(),
            info: info.as_ref().map(|(_, b)| b.to_vec()).unwrap_or_default(),
            progress: Progress::default(),
            added_at: unix_now(),
            started: false,
            stop_after_download: opts.stop_after_download,
            stop_after_metadata: opts.stop_after_metadata,
            complete_cmd_run: false,
            sequential: false,
            parser_version: 3,
        };
        let summary = TorrentSummary {
            id: id.clone(),
            name: name.clone(),
            info_hash,
            port,
            added_at: record.added_at,
        };
        let put = match self.shared.db() {
            Ok(db) => {
                let (id, record) = (id.clone(), record.clone());
                self.shared
                    .blocking
                    .run(move || db.put_torrent(&id, &record))
                    .await
                    .map_err(|e| SessionError::Io(std::io::Error::other(e)))
                    .and_then(|r| r.map_err(SessionError::from))
            }
            Err(e) => Err(e),
        };
        {
            let mut st = self.state();
            if let Err(e) = put {
                st.free_ports.insert(port);
                return Err(e);
            }
            if st.torrents.contains_key(&id) {
                st.free_ports.insert(port);
                return Err(SessionError::DuplicateId);
            }
            let spec = TaskSpec {
                id: id.clone(),
                info_hash,
                name,
                port,
                info,
                trackers: trackers.clone(),
                webseeds,
                fixed_peers: fixed_peers.iter().filter_map(|p| p.parse().ok()).collect(),
                progress: Progress::default(),
                stop_after_download: opts.stop_after_download,
                stop_after_metadata: opts.stop_after_metadata,
                peer_id,
                seed,
            };
            let handle = torrent_task::spawn(self.shared.clone(), spec);
            st.torrents.insert(
                id.clone(),
                Entry {
                    summary: summary.clone(),
                    trackers,
                    handle,
                },
            );
        }
        self.start_unless(&id, opts.stopped).await?;
        Ok(summary)
    }

    async fn start_unless(&self, id: &str, stopped: bool) -> Result<(), SessionError> {
        if !stopped {
            self.start(id).await?;
        }
        Ok(())
    }

    // ------------------------------------------------------------ listing

    /// Every torrent, in id order.
    pub fn list(&self) -> Vec<TorrentSummary> {
        self.state()
            .torrents
            .values()
            .map(|e| e.summary.clone())
            .collect()
    }

    /// One torrent.
    pub fn get(&self, id: &str) -> Option<TorrentSummary> {
        self.state().torrents.get(id).map(|e| e.summary.clone())
    }

    fn sender(&self, id: &str) -> Result<mpsc::Sender<Command>, SessionError> {
        self.state()
            .torrents
            .get(id)
            .map(|e| e.handle.cmd.clone())
            .ok_or_else(|| SessionError::NotFound(id.to_owned()))
    }

    async fn send(&self, id: &str, c: Command) -> Result<(), SessionError> {
        self.sender(id)?
            .send(c)
            .await
            .map_err(|_| SessionError::Closed)
    }

    async fn ask<T>(
        &self,
        id: &str,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, SessionError> {
        let (tx, rx) = oneshot::channel();
        self.send(id, make(tx)).await?;
        rx.await.map_err(|_| SessionError::Closed)
    }

    async fn update_record(
        &self,
        id: &str,
        f: impl FnOnce(&mut TorrentRecord) + Send + 'static,
    ) -> Result<(), SessionError> {
        let db = self.shared.db()?;
        let id = id.to_owned();
        self.shared
            .blocking
            .run(move || db.update_torrent(&id, f))
            .await
            .map_err(|e| SessionError::Io(std::io::Error::other(e)))??;
        Ok(())
    }

    // ------------------------------------------------------------ control

    /// Starts a torrent (persists `started=true` first).
    pub async fn start(&self, id: &str) -> Result<(), SessionError> {
        self.sender(id)?;
        self.update_record(id, |r| r.started = true).await?;
        self.send(id, Command::Start).await
    }

    /// Stops a torrent (persists `started=false` first). Does not wait for it to stop.
    pub async fn stop(&self, id: &str) -> Result<(), SessionError> {
        self.sender(id)?;
        self.update_record(id, |r| r.started = false).await?;
        self.send(id, Command::Stop).await
    }

    /// Starts every torrent.
    pub async fn start_all(&self) -> Result<(), SessionError> {
        for t in self.list() {
            self.start(&t.id).await?;
        }
        Ok(())
    }

    /// Stops every torrent.
    pub async fn stop_all(&self) -> Result<(), SessionError> {
        for t in self.list() {
            self.stop(&t.id).await?;
        }
        Ok(())
    }

    /// Removes a torrent: stops it, deletes its record and, unless `keep_data`, its data. An
    /// unknown id is not an error (rain).
    pub async fn remove(&self, id: &str, keep_data: bool) -> Result<(), SessionError> {
        let Some(entry) = self.state().torrents.remove(id) else {
            return Ok(());
        };
        let info = {
            let (tx, rx) = oneshot::channel();
            let _ = entry.handle.cmd.send(Command::Metadata(tx)).await;
            rx.await.ok().flatten()
        };
        shutdown(&entry.handle).await;
        let _ = tokio::time::timeout(STOP_TIMEOUT, entry.handle.join).await;
        self.state().free_ports.insert(entry.summary.port);
        let db = self.shared.db()?;
        let key = id.to_owned();
        self.shared
            .blocking
            .run(move || db.delete_torrent(&key))
            .await
            .map_err(|e| SessionError::Io(std::io::Error::other(e)))??;
        if !keep_data {
            let opts = self.shared.storage_opts.clone();
            let cache = self.shared.cache.clone();
            let id = id.to_owned();
            self.shared
                .blocking
                .run(move || remove_data(&opts, &cache, &id, info.as_ref()))
                .await
                .map_err(|e| SessionError::Io(std::io::Error::other(e)))??;
        }
        Ok(())
    }

    /// Re-checks a torrent's data: forgets the stored bitfield, stops it if running, hashes
    /// every piece and leaves it stopped (rain).
    pub async fn verify(&self, id: &str) -> Result<(), SessionError> {
        self.sender(id)?;
        self.update_record(id, |r| {
            r.progress.bitfield = None;
            r.started = false;
        })
        .await?;
        self.send(id, Command::Verify).await
    }

    /// Asks trackers for more peers now.
    pub async fn announce(&self, id: &str) -> Result<(), SessionError> {
        self.send(id, Command::Announce).await
    }

    /// Adds a peer (`host:port`; hostnames are resolved). Kept until the torrent runs.
    pub async fn add_peer(&self, id: &str, addr: &str) -> Result<(), SessionError> {
        self.sender(id)?;
        let resolved = if let Ok(a) = addr.parse::<SocketAddr>() {
            a
        } else {
            let all = self
                .shared
                .net
                .resolve(addr)
                .await
                .map_err(|_| SessionError::InvalidAddress(addr.to_owned()))?;
            all.iter()
                .find(|a| a.is_ipv4())
                .or(all.first())
                .copied()
                .ok_or_else(|| SessionError::InvalidAddress(addr.to_owned()))?
        };
        // Kept in the record, so the peer is dialled again after a restart.
        let stored = resolved.to_string();
        self.update_record(id, move |r| {
            torrent_task::remember_peer(&mut r.fixed_peers, stored);
        })
        .await?;
        self.send(id, Command::AddPeer(resolved)).await
    }

    /// Adds a tracker as a new tier and persists it.
    pub async fn add_tracker(&self, id: &str, url: &str) -> Result<(), SessionError> {
        let trackers = {
            let mut st = self.state();
            let e = st
                .torrents
                .get_mut(id)
                .ok_or_else(|| SessionError::NotFound(id.to_owned()))?;
            e.trackers.push(vec![url.to_owned()]);
            e.trackers.clone()
        };
        self.update_record(id, move |r| r.trackers = trackers)
            .await?;
        self.send(id, Command::AddTracker(url.to_owned())).await
    }

    // ------------------------------------------------------------ views

    /// rain's torrent `Stats`.
    pub async fn stats(&self, id: &str) -> Result<TorrentStats, SessionError> {
        self.ask(id, Command::Stats).await
    }

    /// Connected peers.
    pub async fn peers(&self, id: &str) -> Result<Vec<PeerView>, SessionError> {
        self.ask(id, Command::Peers).await
    }

    /// Tracker states (empty while stopped).
    pub async fn trackers(&self, id: &str) -> Result<Vec<TrackerStatus>, SessionError> {
        self.ask(id, Command::Trackers).await
    }

    async fn metadata(&self, id: &str) -> Result<(Info, Bytes), SessionError> {
        self.ask(id, Command::Metadata)
            .await?
            .ok_or(SessionError::MetadataNotReady)
    }

    /// The torrent's files, padding excluded.
    pub async fn files(&self, id: &str) -> Result<Vec<FileEntry>, SessionError> {
        let (info, _) = self.metadata(id).await?;
        Ok(info
            .files
            .iter()
            .filter(|f| !f.padding)
            .map(|f| FileEntry {
                path: info.file_path(f).join("/"),
                length: f.length,
            })
            .collect())
    }

    /// Every file with the bytes it has inside verified pieces, padding excluded.
    pub async fn file_stats(&self, id: &str) -> Result<Vec<FileStats>, SessionError> {
        let (info, have) = self
            .ask(id, Command::Progress)
            .await?
            .ok_or(SessionError::NotRunning)?;
        Ok(info
            .files
            .iter()
            .filter(|f| !f.padding)
            .map(|f| FileStats {
                file: FileEntry {
                    path: info.file_path(f).join("/"),
                    length: f.length,
                },
                bytes_completed: info.completed_bytes(f, |p| have.get(p)),
            })
            .collect())
    }

    /// A magnet link for the torrent (not for private torrents).
    pub async fn magnet(&self, id: &str) -> Result<String, SessionError> {
        let (summary, trackers) = {
            let st = self.state();
            let e = st
                .torrents
                .get(id)
                .ok_or_else(|| SessionError::NotFound(id.to_owned()))?;
            (e.summary.clone(), e.trackers.clone())
        };
        let meta = self.ask(id, Command::Metadata).await?;
        if meta.as_ref().is_some_and(|(i, _)| i.private) {
            return Err(SessionError::Private);
        }
        let name = meta.map_or(summary.name, |(i, _)| i.name);
        let mut link = format!("magnet:?xt=urn:btih:{}", summary.info_hash.to_hex());
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        link.push_str("&dn=");
        link.push_str(&enc(&name));
        for url in trackers.iter().flatten() {
            link.push_str("&tr=");
            link.push_str(&enc(url));
        }
        Ok(link)
    }

    /// The `.torrent` file of the torrent: its info dictionary byte for byte, with its
    /// trackers.
    pub async fn torrent_bytes(&self, id: &str) -> Result<Vec<u8>, SessionError> {
        let trackers = self
            .state()
            .torrents
            .get(id)
            .map(|e| e.trackers.clone())
            .ok_or_else(|| SessionError::NotFound(id.to_owned()))?;
        let (_, info_bytes) = self.metadata(id).await?;
        let db = self.shared.db()?;
        let key = id.to_owned();
        let url_list = self
            .shared
            .blocking
            .run(move || db.get_torrent(&key))
            .await
            .map_err(|e| SessionError::Io(std::io::Error::other(e)))??
            .map(|r| r.url_list)
            .unwrap_or_default();
        Ok(encode_torrent(
            &info_bytes,
            &trackers,
            &url_list,
            unix_now(),
        ))
    }

    /// Session statistics.
    pub async fn session_stats(&self) -> SessionStats {
        let (ids, torrents, ports_available) = {
            let st = self.state();
            let ids: Vec<String> = st.torrents.keys().cloned().collect();
            (ids, st.torrents.len(), st.free_ports.len())
        };
        let (mut peers, mut speed, mut bytes) = (0, (0, 0), (0, 0));
        for id in ids {
            if let Ok(s) = self.stats(&id).await {
                peers += s.stats.peers.total;
                speed.0 += s.stats.speed.download;
                speed.1 += s.stats.speed.upload;
                bytes.0 += s.stats.bytes.downloaded;
                bytes.1 += s.stats.bytes.uploaded;
            }
        }
        let c = &self.shared.counters;
        let memory = self.shared.piece_memory.stats();
        let reads = self.shared.read_cache.stats();
        SessionStats {
            uptime: self.started.elapsed(),
            torrents,
            peers,
            ports_available,
            verifications: c.verifications.load(Ordering::Relaxed),
            pieces_checked: c.pieces_checked.load(Ordering::Relaxed),
            pieces_written: c.pieces_written.load(Ordering::Relaxed),
            speed_download: speed.0,
            speed_upload: speed.1,
            bytes_downloaded: bytes.0,
            bytes_uploaded: bytes.1,
            blocklist_rules: self.shared.blocklist.rules(),
            blocklist_recency: self.shared.blocklist.recency(),
            read_cache_objects: reads.objects,
            read_cache_size: reads.bytes,
            read_cache_utilization: reads.utilization,
            reads_per_second: reads.loads_per_second,
            reads_active: reads.loads_active,
            reads_pending: reads.loads_pending,
            speed_read: reads.load_speed,
            bytes_read: reads.bytes_loaded,
            write_cache_objects: memory.buffers,
            write_cache_size: memory.reserved,
            write_cache_pending_keys: memory.waiting,
            write_cache_peak: memory.peak_reserved,
        }
    }

    /// Records that the on-complete hook ran for `id`. True if it had not run before: rain
    /// runs the hook once per torrent, ever.
    pub async fn claim_complete_cmd(&self, id: &str) -> Result<bool, SessionError> {
        self.sender(id)?;
        let first = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = first.clone();
        self.update_record(id, move |r| {
            flag.store(!r.complete_cmd_run, Ordering::Relaxed);
            r.complete_cmd_run = true;
        })
        .await?;
        Ok(first.load(Ordering::Relaxed))
    }

    /// The directory holding a torrent's files (`data-dir`, plus the id when
    /// `data-dir-includes-torrent-id`).
    pub fn storage_dir(&self, id: &str) -> Result<PathBuf, SessionError> {
        self.sender(id)?;
        storage_root(&self.shared.storage_opts, id)
            .map_err(|e| SessionError::Io(std::io::Error::other(e.to_string())))
    }

    /// Deletes the records of torrents that failed to load at startup (rain's
    /// `CleanDatabase`).
    pub async fn clean_database(&self) -> Result<(), SessionError> {
        let db = self.shared.db()?;
        let ids = self.invalid.clone();
        self.shared
            .blocking
            .run(move || {
                ids.iter()
                    .try_for_each(|id| db.delete_torrent(id).map(drop))
            })
            .await
            .map_err(|e| SessionError::Io(std::io::Error::other(e)))??;
        Ok(())
    }

    /// The wall-clock time of a machine [`Instant`](rain_proto::time::Instant) (tracker
    /// announce times, for RPC).
    pub fn system_time(&self, t: rain_proto::time::Instant) -> SystemTime {
        let at = self.shared.epoch + Duration::from_nanos(t.as_nanos());
        let now = tokio::time::Instant::now();
        if at >= now {
            SystemTime::now() + (at - now)
        } else {
            SystemTime::now() - (now - at)
        }
    }

    // ------------------------------------------------------------ close

    /// Closes the session gracefully: stops every torrent (keeping their `started` flag),
    /// writes their progress, and marks the database cleanly shut down, so the next session
    /// trusts the stored bitfields.
    pub async fn close(&self) -> Result<(), SessionError> {
        // The refresher holds the database; it must let go before the database closes.
        drop(
            self.blocklist_refresher
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
        let entries: Vec<Entry> = std::mem::take(&mut self.state().torrents)
            .into_values()
            .collect();
        for e in &entries {
            shutdown(e).await;
        }
        for e in entries {
            let _ = tokio::time::timeout(STOP_TIMEOUT, e.handle.join).await;
        }
        if let (Some(dht), Ok(db)) = (&self.shared.dht, self.shared.db()) {
            // The next start bootstraps from the nodes that answered us.
            if let Some(nodes) = dht.export_nodes().await {
                let _ = self
                    .shared
                    .blocking
                    .run(move || db.session_put(DHT_NODES_KEY, &nodes))
                    .await;
            }
        }
        let db = self
            .shared
            .db
            .write()
            .ok()
            .and_then(|mut g| g.take())
            .ok_or(SessionError::Closed)?;
        let deadline = tokio::time::Instant::now() + DB_RELEASE_TIMEOUT;
        let mut db = db;
        loop {
            match Arc::try_unwrap(db) {
                Ok(db) => {
                    self.shared
                        .blocking
                        .run(move || db.close())
                        .await
                        .map_err(|e| SessionError::Io(std::io::Error::other(e)))??;
                    return Ok(());
                }
                Err(still) if tokio::time::Instant::now() < deadline => {
                    db = still;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                // Someone still uses it: leave it unclean rather than lose data.
                Err(_) => return Err(SessionError::Closed),
            }
        }
    }

    /// The DHT node's counters (routing table size, lookups…), if the DHT runs.
    pub async fn dht_stats(&self) -> Option<rain_proto::dht::DhtStats> {
        self.shared.dht.as_ref()?.stats().await
    }

    /// The DHT node's UDP port, if the DHT runs.
    pub fn dht_port(&self) -> Option<u16> {
        self.shared.dht.as_ref().map(DhtHandle::port)
    }

    /// The DHT node's IPv6 UDP port, if the DHT runs with an IPv6 socket (BEP 32).
    pub fn dht_port6(&self) -> Option<u16> {
        self.shared.dht.as_ref().and_then(DhtHandle::port6)
    }

    /// A torrent's webseed sources in `url-list` order (rain's `GetTorrentWebseeds`): URL,
    /// last error and download speed, plus what each is doing.
    pub async fn webseeds(
        &self,
        id: &str,
    ) -> Result<Vec<crate::webseed::WebseedStatus>, SessionError> {
        self.ask(id, Command::Webseeds).await
    }
}

impl<N: Network> Drop for Session<N> {
    fn drop(&mut self) {
        for e in self.state().torrents.values() {
            e.handle.join.abort();
        }
    }
}

/// Asks a torrent task to stop and waits (bounded) until it wrote its progress.
async fn shutdown(e: &impl AsHandle) {
    let (tx, rx) = oneshot::channel();
    if e.handle().cmd.send(Command::Shutdown(tx)).await.is_ok() {
        let _ = tokio::time::timeout(STOP_TIMEOUT, rx).await;
    }
}

trait AsHandle {
    fn handle(&self) -> &TaskHandle;
}

impl AsHandle for Entry {
    fn handle(&self) -> &TaskHandle {
        &self.handle
    }
}

impl AsHandle for TaskHandle {
    fn handle(&self) -> &TaskHandle {
        self
    }
}

fn remove_data(
    opts: &FileStorageOptions,
    cache: &Arc<FileCache>,
    id: &str,
    info: Option<&(Info, Bytes)>,
) -> Result<(), SessionError> {
    if opts.data_dir_includes_torrent_id {
        let root = storage_root(opts, id).map_err(|e| std::io::Error::other(e.to_string()))?;
        cache.close_under(&root);
        match std::fs::remove_dir_all(&root) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    } else if let Some((info, _)) = info {
        FileStorage::for_torrent(info, id, opts, cache.clone())
            .and_then(|s| s.remove_files())
            .map_err(|e| std::io::Error::other(e.to_string()).into())
    } else {
        Ok(())
    }
}

/// Encodes a `.torrent`: `announce`, `announce-list` (several trackers) and the raw `info`.
/// A `.torrent` as rain's `GetTorrent` rebuilds it: the stored info dictionary, the current
/// tracker tiers and webseed URLs, a fresh creation date, no comment. Keys in bencode order.
fn encode_torrent(
    info_bytes: &[u8],
    trackers: &[Vec<String>],
    url_list: &[String],
    created: i64,
) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &[u8]) {
        out.extend_from_slice(s.len().to_string().as_bytes());
        out.push(b':');
        out.extend_from_slice(s);
    }
    let mut out = b"d".to_vec();
    if let Some(first) = trackers.iter().flatten().next() {
        string(&mut out, b"announce");
        string(&mut out, first.as_bytes());
    }
    if trackers.iter().flatten().count() > 1 {
        string(&mut out, b"announce-list");
        out.push(b'l');
        for tier in trackers {
            out.push(b'l');
            for url in tier {
                string(&mut out, url.as_bytes());
            }
            out.push(b'e');
        }
        out.push(b'e');
    }
    string(&mut out, b"creation date");
    out.extend_from_slice(format!("i{created}e").as_bytes());
    string(&mut out, b"info");
    out.extend_from_slice(info_bytes);
    if !url_list.is_empty() {
        string(&mut out, b"url-list");
        out.push(b'l');
        for url in url_list {
            string(&mut out, url.as_bytes());
        }
        out.push(b'e');
    }
    out.push(b'e');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebuilt_torrents_carry_trackers_webseeds_and_a_creation_date() {
        let info = b"d6:lengthi5e4:name1:a12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
        let trackers = vec![
            vec!["http://t1/announce".to_owned()],
            vec!["udp://t2:80".to_owned()],
        ];
        let ws = vec!["http://w1/".to_owned(), "http://w2/a".to_owned()];
        let bytes = encode_torrent(info, &trackers, &ws, 1_700_000_000);
        let mi = Metainfo::from_bytes(&bytes, &rain_proto::metainfo::Limits::default()).unwrap();
        assert_eq!(mi.trackers, trackers);
        assert_eq!(mi.webseeds, ws);
        assert_eq!(mi.creation_date, Some(1_700_000_000));
        assert_eq!(mi.info_hash, InfoHash::of(info));
        // Strictly ordered keys: the rebuilt file is canonical bencode.
        let strict = rain_proto::bencode::Limits::strict();
        assert!(rain_proto::bencode::decode(&bytes, &strict).is_ok());
    }

    #[test]
    fn tracker_keys_reach_the_tracker_transport() {
        let config = SessionConfig {
            tracker_http_timeout: Duration::from_secs(3),
            tracker_http_max_response_size: 1234,
            tracker_http_verify_tls: false,
            tracker_http_private_user_agent: "Private/1".into(),
            dns_resolve_timeout: Duration::from_secs(2),
            ssrf_mitigation: false,
            ..SessionConfig::default()
        };
        assert!(SessionConfig::default().ssrf_mitigation);
        assert!(!config.webseed_settings().ssrf_mitigation);
        assert!(!config.torrent_http_config().ssrf_mitigation);
        let t = config.tracker_config();
        assert!(!t.http.ssrf_mitigation);
        assert_eq!(
            (t.http.timeout, t.http.max_body, t.http.verify_tls),
            (Duration::from_secs(3), 1234, false)
        );
        assert_eq!(
            (t.http.resolve_timeout, t.udp.resolve_timeout),
            (Duration::from_secs(2), Duration::from_secs(2))
        );
        assert_eq!(t.private_user_agent, "Private/1");
    }
}

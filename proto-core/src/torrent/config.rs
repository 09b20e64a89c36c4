//! Limits, intervals and switches of one torrent, with rain's defaults (config keys in
//! parentheses).

use std::time::Duration;

use crate::address_book::AddressBookConfig;
use crate::choker::ChokerConfig;
use crate::picker::PickerConfig;
use crate::tracker::announcer::AnnouncerConfig;
use crate::webseed::WebseedConfig;

/// Everything a [`Torrent`](super::Torrent) can be tuned with. Every queue it owns is bounded
/// by one of the `max_*` fields.
#[derive(Debug, Clone, PartialEq)]
pub struct TorrentConfig {
    /// Queued incoming block requests per peer; also advertised as `reqq`
    /// (`max-requests-in`, 250).
    pub max_requests_in: u32,
    /// Cap on in-flight block requests to one peer, whatever its `reqq`
    /// (`max-requests-out`, 250).
    pub max_requests_out: u32,
    /// Request cap for a peer that sent no `reqq` (`default-requests-out`, 50).
    pub default_requests_out: u32,
    /// Pipeline depth a new connection starts with (slow start grows it from here).
    pub initial_requests_out: u32,
    /// Smallest pipeline depth of an unsnubbed peer.
    pub min_requests_out: u32,
    /// No block within this long after a request marks the peer snubbed
    /// (`request-timeout`, 20 s).
    pub request_timeout: Duration,
    /// A peer silent for this long is disconnected (2 min).
    pub idle_timeout: Duration,
    /// A keep-alive is sent after this long without sending anything (60 s).
    pub keep_alive_interval: Duration,
    /// Most outgoing peers, connected plus dialling (`max-peer-dial`, 80).
    pub max_peer_dial: usize,
    /// Most incoming peers (`max-peer-accept`, 20).
    pub max_peer_accept: usize,
    /// Concurrent non-snubbed ut_metadata sources (`parallel-metadata-downloads`, 2).
    pub parallel_metadata_downloads: usize,
    /// Largest info dictionary accepted from peers (`max-metadata-size`, 30 MiB).
    pub max_metadata_size: u64,
    /// Pieces in our allowed-fast set (`allowed-fast-set`, 10).
    pub allowed_fast_set: usize,
    /// Most allowed-fast pieces remembered per peer (more are ignored).
    pub max_allowed_fast_in: usize,
    /// Requests refused while we choke a peer (counted from our last unchoke) before it is
    /// disconnected: a peer that keeps asking after our choke only wastes our upload path
    /// (libtorrent's `max_rejects`). A peer may have up to `max_requests_in` requests in
    /// flight when our choke reaches it, so the limit applied is never below that (300).
    pub max_choked_requests: u32,
    /// Initial piece-memory limit: a started piece reserves its whole length until it is
    /// written (or fails, or is dropped), and a new piece starts only if it fits under the
    /// limit; when nothing is reserved one piece starts even if it is longer (64 MiB). A
    /// runtime sharing `write-cache-size` across torrents changes it with
    /// [`Torrent::set_piece_memory_limit`](super::Torrent::set_piece_memory_limit).
    pub max_piece_memory: u64,
    /// Most `have` indices remembered per peer before the metadata is known.
    pub max_pending_haves: usize,
    /// Exchange peers with PEX (`pex-enabled`, true); never for private torrents.
    pub pex_enabled: bool,
    /// Time between PEX messages to one peer (60 s).
    pub pex_interval: Duration,
    /// Most added (and most dropped) entries per PEX message we send (50).
    pub max_pex_peers: usize,
    /// PEX messages from one peer arriving sooner than this after the last accepted one are
    /// ignored (bounds what a flooding peer can add).
    pub pex_min_incoming_interval: Duration,
    /// Failed pieces whose per-block hashes are remembered for smart ban.
    pub max_smart_ban_pieces: usize,
    /// Most events kept undrained; more are dropped (a driver drains after every input).
    pub max_queued_events: usize,
    /// Client version sent in the extension handshake (`v`).
    pub client_version: String,
    /// Our DHT node's UDP port while it runs: sent in `port` to peers that set the DHT bit,
    /// and their `port` messages reported as [`TorrentEvent::DhtNode`](super::TorrentEvent).
    /// `None`: no DHT. Private torrents never use it.
    pub dht_port: Option<u16>,
    /// Picker limits.
    pub picker: PickerConfig,
    /// Choker slots and intervals.
    pub choker: ChokerConfig,
    /// Address book limits.
    pub address_book: AddressBookConfig,
    /// Tracker announcer timing.
    pub announcer: AnnouncerConfig,
    /// Webseed sources, slots and retry interval.
    pub webseed: WebseedConfig,
}

impl Default for TorrentConfig {
    fn default() -> Self {
        TorrentConfig {
            max_requests_in: 250,
            max_requests_out: 250,
            default_requests_out: 50,
            initial_requests_out: 8,
            min_requests_out: 2,
            request_timeout: Duration::from_secs(20),
            idle_timeout: Duration::from_mins(2),
            keep_alive_interval: Duration::from_mins(1),
            max_peer_dial: 80,
            max_peer_accept: 20,
            parallel_metadata_downloads: 2,
            max_metadata_size: crate::extension::ut_metadata::DEFAULT_MAX_METADATA_SIZE,
            allowed_fast_set: 10,
            max_allowed_fast_in: 32,
            max_choked_requests: 300,
            max_piece_memory: 64 * 1024 * 1024,
            max_pending_haves: 4096,
            pex_enabled: true,
            pex_interval: Duration::from_mins(1),
            max_pex_peers: crate::extension::ut_pex::MAX_PEERS,
            pex_min_incoming_interval: Duration::from_secs(30),
            max_smart_ban_pieces: 64,
            max_queued_events: 4096,
            client_version: "Rain 2.0".to_owned(),
            picker: PickerConfig::default(),
            choker: ChokerConfig::default(),
            address_book: AddressBookConfig::default(),
            dht_port: None,
            announcer: AnnouncerConfig::default(),
            webseed: WebseedConfig::default(),
        }
    }
}

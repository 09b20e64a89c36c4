//! The `Torrent` machine: the swarm logic of one torrent, with no I/O.
//!
//! It composes the building blocks of this crate — [`Picker`], [`Choker`], [`AddressBook`],
//! [`Announcer`], the wire and extension codecs — into everything a BitTorrent client decides
//! for one torrent: whom to dial, what to request from whom and how many requests to keep in
//! flight, what to serve, whom to choke, when a peer is snubbed or idle, which pieces are
//! complete, whom to ban, how to fetch metadata for a magnet link, and what to tell peers via
//! PEX.
//!
//! # What the runtime does
//!
//! The runtime's peer task owns the socket, MSE, the BitTorrent handshake and framing: the
//! machine sees **decoded [`Message`]s** and emits messages to send. Piece payloads stay the
//! `Bytes` slices the decoder produced: they are kept per piece in memory and handed to
//! [`Action::VerifyAndWrite`] without a copy. File allocation and re-checking happen in the
//! runtime *before* the machine is created (the verified bitfield arrives in
//! [`TorrentParams::resume`]), so the machine's statuses are Stopped, Downloading Metadata,
//! Downloading, Seeding and Stopping; the runtime shows Allocating / Verifying itself.
//!
//! # Driving loop
//!
//! ```text
//! let mut t = Torrent::new(params, config, seed, now);
//! t.start(now);
//! loop {
//!     // 1. after every input, drain in this order until None:
//!     while let Some(a) = t.poll_action() { perform(a) }   // Send, Dial, Disconnect, ReadBlock,
//!                                                         // VerifyAndWrite, Announce,
//!                                                         // WebseedRequest, WebseedCancel
//!     while let Some(e) = t.poll_event() { report(e) }
//!     // 2. wait for the next input or the deadline
//!     match wait_until(t.poll_timeout()) {
//!         Timeout => t.handle_timeout(now),
//!         Connected(info) => match t.handle_peer_connected(now, info) { Ok(key) => …, Err(_) => close },
//!         DialFailed(addr) => t.handle_dial_failed(now, addr),
//!         Message(key, m) => t.handle_message(now, key, m),
//!         Closed(key) => t.handle_peer_closed(now, key),
//!         BlockRead(..) => t.handle_block_read(now, key, piece, begin, result),
//!         PieceWritten(..) => t.handle_piece_written(now, piece, result),
//!         AnnounceReply(id, r) => t.handle_announce_reply(now, id, r),
//!         WebseedBody(req, bytes) => t.handle_webseed_data(now, req, bytes),
//!         WebseedFailed(req, e) => t.handle_webseed_failed(now, req, e),
//!         Command(c) => t.start(now) / t.stop(now) / t.add_peer_addr(..) / …,
//!     }
//! }
//! ```
//!
//! Every input can change every `poll_*` answer. After [`Action::Disconnect`] the peer's key is
//! dead: the machine has already forgotten it and ignores a later `handle_peer_closed` or
//! message for it. Actions are queued only as a direct result of one input (bounded by the
//! peers and per-peer limits); events are capped at [`TorrentConfig::max_queued_events`].
//!
//! # Behaviour
//!
//! - Per peer ([`peer`]): choke and interest both ways (`interested` only on change), bitfield,
//!   have, have-all/none, BEP 6 reject and allowed-fast both ways (suggest is ignored),
//!   keep-alives (60 s), idle disconnect (2 min), snubbing (`request-timeout`, 20 s: the
//!   peer's requests are cancelled and handed to others, its depth drops to 1 until a block
//!   arrives; it is never disconnected for it).
//! - Requests ([`pipeline`]): depth per peer from its measured rate × base RTT, within its
//!   `reqq` / `max-requests-out`; the picker may give one peer blocks of several pieces.
//! - Uploads ([`upload`]): rain's validation order; the queue is bounded by
//!   `max-requests-in`; `reject` to fast peers and silence to others when refused; when we
//!   choke a fast peer its queued requests are rejected (BEP 6; rain drops them silently).
//!   A choked peer is served its allowed-fast pieces within a byte budget, and a peer that
//!   keeps requesting while choked is disconnected after `max_choked_requests` refusals.
//! - Pieces: when every block is in, [`Action::VerifyAndWrite`]; a piece counts only after
//!   [`Torrent::handle_piece_written`] says it hashed correctly and was written.
//! - Piece memory: a started piece reserves its whole length until it is written, fails its
//!   hash check or is dropped. A new piece is started only if its length fits under the
//!   piece-memory limit ([`TorrentConfig::max_piece_memory`], changed at run time by
//!   [`Torrent::set_piece_memory_limit`] when the runtime shares a session-wide budget);
//!   blocks of started pieces are always requested, and when nothing is reserved one piece
//!   starts even if it is longer than a non-zero limit. Peers held back report the bytes they
//!   wanted ([`Torrent::piece_memory_wanted`]) so the runtime can grant more. Blocks of a
//!   piece we did not start are dropped when it does not fit. Webseed data is not held back
//!   (its pieces still count in the reservation).
//! - Integrity ([`smart_ban`]): failed pieces are re-downloaded, wasted bytes counted, and
//!   the peer that sent bad blocks is banned; peers that shared a failed piece download on
//!   parole until they prove themselves.
//! - Magnet ([`metadata`]): ut_metadata from up to `parallel-metadata-downloads` sources,
//!   verified by the assembler, parsed, then the torrent continues; metadata is served to
//!   others.
//! - PEX ([`pex`]), choker ticks, the address book feeding dials in BEP 40 order up to
//!   `max-peer-dial`, the announcer, and rain's `Stats` ([`status`]).
//! - Webseeds ([`crate::webseed`]): while Downloading, a [`Planner`] gives the sources ranges
//!   of unclaimed pieces ([`Action::WebseedRequest`]); the pieces are held in the picker so
//!   peers are not given them, except the tail of a range, which a peer with nothing else to
//!   fetch steals. Bodies come back through [`Torrent::handle_webseed_data`] and are stored,
//!   hashed and written like peer blocks; [`Torrent::handle_webseed_failed`] disables a source
//!   for `webseed-retry-interval`; a source whose data fails a hash check is banned for the
//!   run; completion and stop cancel every request ([`Action::WebseedCancel`]). Webseed bytes
//!   count in `downloaded` and in the download speed.

mod config;
mod metadata;
mod peer;
mod pex;
mod pipeline;
mod smart_ban;
mod status;
mod upload;

#[cfg(any(test, feature = "test-util"))]
pub mod swarm;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod webseed_tests;

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

pub use config::TorrentConfig;
pub use peer::{Direction, PeerInfo, PeerView};
pub use pipeline::Pipeline;
pub use status::{
    AddressCounts, ByteStats, DownloadCounts, MetadataDownloadCounts, PeerCounts, PieceStats,
    SpeedStats, Stats, Status, round_eta,
};

use crate::address_book::{AddOutcome, AddressBook, PeerSource};
use crate::bitfield::Bitfield;
use crate::blocklist::Blocklist;
use crate::choker::{ChokeDecision, Choker, PeerChokeInfo};
use crate::extension::{self, ExtHandshake, ExtLimits, MetadataFault};
use crate::hash::InfoHash;
use crate::metainfo::Info;
use crate::picker::{BLOCK_LEN, Block, FilePriority, Layout, PeerKey, Picker, Received};
use crate::rng::{Rng, Seed};
use crate::speed::{Meter, TICK};
use crate::time::Instant;
use crate::tracker::announcer::{AnnounceRequest, Announcer, AnnouncerEvent, RequestId};
use crate::tracker::{Announce, AnnounceReply, TrackerError};
use crate::webseed::{self, Planner, SourceId, WebseedError, WebseedStatus};
use crate::wire::{self, Message, PeerId};
use peer::{Peer, PendingHave};
use smart_ban::SmartBan;
use upload::Admit;

/// Counters carried over from a previous run (fast resume).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resume {
    /// Verified pieces (ignored if its length is not the piece count).
    pub have: Option<Bitfield>,
    /// Payload downloaded so far.
    pub downloaded: u64,
    /// Payload uploaded so far.
    pub uploaded: u64,
    /// Bytes wasted so far.
    pub wasted: u64,
    /// Time spent seeding so far.
    pub seeded_for: Duration,
}

/// What a torrent is created from.
#[derive(Debug, Clone)]
pub struct TorrentParams {
    /// The info-hash.
    pub info_hash: InfoHash,
    /// The parsed info dictionary and its raw bytes; `None` for a magnet link.
    pub info: Option<(Info, Bytes)>,
    /// Our peer id.
    pub peer_id: PeerId,
    /// Our listen port for this torrent.
    pub port: u16,
    /// Tracker tiers.
    pub trackers: Vec<Vec<String>>,
    /// Resume data.
    pub resume: Resume,
    /// Stop once every wanted piece is verified.
    pub stop_after_download: bool,
    /// Stop once the metadata is received (magnet).
    pub stop_after_metadata: bool,
    /// Our external address, if known.
    pub our_addr: Option<SocketAddr>,
    /// The session's IP blocklist, if one is loaded.
    pub blocklist: Option<BlocklistUse>,
    /// WebSeed URLs (BEP 19: a `.torrent`'s `url-list`, a magnet's `ws`).
    pub webseeds: Vec<String>,
}

/// The session's IP blocklist and where it applies (rain's
/// `blocklist-enabled-for-outgoing-connections` and `…-incoming-connections`). Shared by every
/// torrent of a session; replaced with [`Torrent::set_blocklist`] when it is reloaded.
#[derive(Debug, Clone)]
pub struct BlocklistUse {
    /// The ranges.
    pub list: Arc<Blocklist>,
    /// Blocked addresses are never queued or dialled.
    pub outgoing: bool,
    /// Connections from blocked addresses are refused.
    pub incoming: bool,
}

/// A disk operation failed in the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("disk error: {0}")]
pub struct DiskError(pub std::io::ErrorKind);

/// Why a torrent stopped with an error (rain's `Error` field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TorrentError {
    /// Reading a block to upload failed.
    #[error("read error: {0}")]
    DiskRead(DiskError),
    /// Writing a piece failed.
    #[error("piece write error: {0}")]
    DiskWrite(DiskError),
    /// The metadata from peers matched the info-hash but does not parse.
    #[error("metadata parse error: {0}")]
    Metadata(crate::metainfo::Error),
    /// The metadata from a magnet link is private.
    #[error("private torrent from magnet")]
    PrivateFromMagnet,
}

/// Caller misuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TorrentApiError {
    /// The metadata is not known yet.
    #[error("metadata is not known yet")]
    NoMetadata,
    /// No such file.
    #[error("no file {0}")]
    NoSuchFile(usize),
}

/// Why [`Torrent::handle_peer_connected`] refused a connection (the runtime closes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The torrent is not running.
    #[error("torrent is not running")]
    NotRunning,
    /// Our own peer id (we connected to ourselves).
    #[error("own connection")]
    OwnConnection,
    /// A peer with this id is already connected.
    #[error("duplicate peer id")]
    DuplicatePeerId,
    /// A connection from this IP already exists.
    #[error("already connected to this IP")]
    DuplicateIp,
    /// The IP is banned for this torrent.
    #[error("banned")]
    Banned,
    /// The IP is on the session's blocklist.
    #[error("blocked")]
    Blocked,
    /// `max-peer-dial` / `max-peer-accept` reached.
    #[error("too many peers")]
    TooManyPeers,
}

/// A protocol violation by a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// A piece index past the end.
    PieceIndex(u32),
    /// A bitfield of the wrong length or with spare bits set.
    BitfieldLength,
    /// A request with a bad length or range.
    BadRequest,
    /// More than `max_choked_requests` requests refused while we choke it: it ignores our
    /// choke (and our rejects).
    TooManyChokedRequests,
    /// A block that is not one of the torrent's blocks.
    BadBlock,
    /// A piece-level message before we have the metadata.
    NoMetadata,
    /// A fast-extension message from a peer without the fast bit.
    NotFast,
    /// An undecodable extension handshake.
    BadExtHandshake,
    /// An extended message id we did not advertise.
    UnknownExtension(u8),
    /// An undecodable ut_metadata message, or unrequested metadata.
    BadMetadataMessage,
    /// Metadata that does not fit or does not hash to the info-hash.
    Metadata(MetadataFault),
}

/// Why the machine closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The peer broke the protocol.
    Misbehaved(Violation),
    /// Nothing received for `idle_timeout`.
    TimedOut,
    /// The peer's IP was banned (smart ban).
    Banned,
    /// The torrent stopped.
    Stopped,
    /// Both sides are seeds.
    NotNeeded,
    /// The peer's other connection to us replaces this one ([`Torrent::handle_peer_connected`]
    /// on crossed connections).
    Duplicate,
}

/// Why an IP was banned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanReason {
    /// It sent data that failed the hash check.
    CorruptData,
}

/// An effect for the runtime to perform.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send a message to a peer.
    Send {
        /// The peer.
        peer: PeerKey,
        /// The message.
        message: Message,
    },
    /// Connect to this address, handshake, then call [`Torrent::handle_peer_connected`] or
    /// [`Torrent::handle_dial_failed`].
    Dial {
        /// The address.
        addr: SocketAddr,
    },
    /// Close this connection; the key is forgotten already.
    Disconnect {
        /// The peer.
        peer: PeerKey,
        /// Why.
        reason: DisconnectReason,
    },
    /// Read a block to upload, then call [`Torrent::handle_block_read`].
    ReadBlock {
        /// The requesting peer.
        peer: PeerKey,
        /// Piece index.
        piece: u32,
        /// Offset in the piece.
        begin: u32,
        /// Length.
        len: u32,
    },
    /// Hash the piece from these blocks and write it if the hash matches, then call
    /// [`Torrent::handle_piece_written`]. `blocks` are the piece's blocks in order
    /// ([`Layout::block`]); bytes they do not cover are padding (zeros).
    VerifyAndWrite {
        /// Piece index.
        piece: u32,
        /// The expected SHA-1.
        expected: [u8; 20],
        /// The blocks (slices of the received buffers).
        blocks: Vec<Bytes>,
    },
    /// Perform a tracker announce, then call [`Torrent::handle_announce_reply`].
    Announce {
        /// Which tracker and event.
        request: AnnounceRequest,
        /// What to announce (counters filled in).
        announce: Announce,
    },
    /// GET a byte range of a file from a webseed (`Range` header from
    /// [`webseed::WebseedRequest::range_header`]). Feed the body, in order and at most
    /// `length` bytes, to [`Torrent::handle_webseed_data`]: a `206` body as is, a `200` body
    /// after skipping `file_offset` bytes. On any failure (connection, status other than
    /// 200/206, a body shorter than `length`, timeout) call
    /// [`Torrent::handle_webseed_failed`]. Nothing is reported when the body is complete.
    WebseedRequest(webseed::WebseedRequest),
    /// Abort a webseed request; anything still delivered for it is discarded.
    WebseedCancel {
        /// The source.
        source: SourceId,
        /// The request.
        request: webseed::RequestId,
    },
}

/// What the application hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TorrentEvent {
    /// The status changed.
    StatusChanged {
        /// Before.
        from: Status,
        /// After.
        to: Status,
    },
    /// The info dictionary arrived from peers and was verified (store it for resume).
    MetadataReceived {
        /// The raw info dictionary.
        info_bytes: Bytes,
    },
    /// A piece was verified and written.
    PieceCompleted {
        /// Piece index.
        piece: u32,
    },
    /// Every wanted piece is verified.
    Completed,
    /// A peer finished its handshake and was accepted.
    PeerConnected {
        /// Its key.
        peer: PeerKey,
        /// Its address.
        addr: SocketAddr,
    },
    /// The machine closed a connection.
    PeerDisconnected {
        /// Its key.
        peer: PeerKey,
        /// Its address.
        addr: SocketAddr,
        /// Why.
        reason: DisconnectReason,
    },
    /// An IP was banned for this torrent.
    PeerBanned {
        /// The IP.
        ip: IpAddr,
        /// Why.
        reason: BanReason,
    },
    /// An error; the torrent is stopping.
    Error(TorrentError),
    /// The torrent reached Stopped.
    Stopped {
        /// The error that stopped it, if any.
        error: Option<TorrentError>,
    },
    /// A peer told us its DHT node's address (`port` message; only with `dht_port` set).
    DhtNode {
        /// The peer's IP with the port it sent.
        addr: SocketAddr,
    },
}

/// Where a received block came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Peer(IpAddr),
    Webseed(SourceId),
}

/// Received blocks of one piece.
#[derive(Debug, Clone)]
struct PieceBuf {
    blocks: Vec<Option<(Bytes, Origin)>>,
    bytes: u64,
    /// Piece-memory bytes reserved for it (the piece's length).
    reserved: u64,
}

/// The buffer of `piece`, opened (reserving the piece's whole length in `reserved`) if new.
fn open_buffer<'a>(
    buffers: &'a mut BTreeMap<u32, PieceBuf>,
    reserved: &mut u64,
    layout: &Layout,
    piece: u32,
) -> &'a mut PieceBuf {
    buffers.entry(piece).or_insert_with(|| {
        let len = u64::from(layout.piece_len(piece));
        *reserved += len;
        PieceBuf {
            blocks: vec![None; layout.block_count(piece) as usize],
            bytes: 0,
            reserved: len,
        }
    })
}

/// Whether a new piece of `len` bytes may start with `reserved` bytes reserved under `limit`:
/// it fits, or nothing is reserved and the limit is not zero (a piece longer than the whole
/// limit must still be able to start, one at a time).
fn piece_fits(reserved: u64, len: u64, limit: u64) -> bool {
    reserved.saturating_add(len) <= limit || (reserved == 0 && limit > 0)
}

impl PieceBuf {
    /// The blocks that came from peers, for smart ban.
    fn peer_blocks(&self) -> Vec<(u32, IpAddr, Bytes)> {
        self.blocks
            .iter()
            .enumerate()
            .filter_map(|(i, b)| match b {
                Some((d, Origin::Peer(ip))) => Some((i as u32, *ip, d.clone())),
                _ => None,
            })
            .collect()
    }

    /// The webseeds that contributed blocks, ascending.
    fn webseeds(&self) -> Vec<SourceId> {
        let mut v: Vec<SourceId> = self
            .blocks
            .iter()
            .filter_map(|b| match b {
                Some((_, Origin::Webseed(s))) => Some(*s),
                _ => None,
            })
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// Picker key under which webseed blocks are recorded (no peer ever has it: peer keys are
/// counted up from 0 and a webseed never requests through the picker).
const WEBSEED_KEY: PeerKey = PeerKey(u32::MAX);

/// Pieces a peer may steal from webseed ranges in one top-up of its requests.
const MAX_WEBSEED_STEALS_PER_FILL: usize = 4;

/// The state machine of one torrent. See the module documentation.
#[derive(Debug)]
pub struct Torrent {
    config: TorrentConfig,
    blocklist: Option<BlocklistUse>,
    info_hash: InfoHash,
    peer_id: PeerId,
    port: u16,
    rng: Rng,
    info: Option<Info>,
    info_bytes: Option<Bytes>,
    picker: Option<Picker>,
    status: Status,
    running: bool,
    error: Option<TorrentError>,
    stop_after_download: bool,
    stop_after_metadata: bool,
    peers: BTreeMap<PeerKey, Peer>,
    next_key: u32,
    dialing: BTreeMap<SocketAddr, PeerSource>,
    book: AddressBook,
    choker: Choker,
    announcer: Announcer,
    announce_key: u32,
    needs_peers: bool,
    buffers: BTreeMap<u32, PieceBuf>,
    verifying: BTreeMap<u32, PieceBuf>,
    /// Bytes of block data held in `buffers` and `verifying`.
    piece_data: u64,
    /// Bytes reserved by `buffers` and `verifying` (whole piece lengths).
    reserved_memory: u64,
    /// New pieces start only while they fit under this (see [`piece_fits`]).
    piece_memory_limit: u64,
    /// Sum of the peers' `memory_wanted`.
    memory_wanted: u64,
    smart_ban: SmartBan,
    metadata: metadata::MetadataFetch,
    downloaded: u64,
    uploaded: u64,
    wasted: u64,
    seeded_for: Duration,
    seeding_since: Option<Instant>,
    download_meter: Meter,
    upload_meter: Meter,
    next_tick: Option<Instant>,
    last_now: Instant,
    actions: VecDeque<Action>,
    events: VecDeque<TorrentEvent>,
    dropped_events: u64,
    scratch: Vec<Block>,
    webseeds: Planner,
}

impl Torrent {
    /// A stopped torrent. A resume bitfield of the wrong length is ignored.
    pub fn new(params: TorrentParams, config: TorrentConfig, seed: Seed, now: Instant) -> Self {
        let mut rng = Rng::new(seed);
        let ours = params
            .our_addr
            .unwrap_or_else(|| crate::address_book::unknown_ours(params.port));
        let announcer = Announcer::new(&params.trackers, config.announcer.clone(), rng.child());
        let choker = Choker::new(config.choker, rng.child(), now);
        let announce_key = rng.next_u64() as u32;
        let webseeds = Planner::new(&params.webseeds, config.webseed.clone(), rng.child(), now);
        let mut t = Torrent {
            blocklist: params.blocklist,
            book: AddressBook::new(config.address_book, ours),
            choker,
            announcer,
            announce_key,
            info_hash: params.info_hash,
            peer_id: params.peer_id,
            port: params.port,
            info: None,
            info_bytes: None,
            picker: None,
            status: Status::Stopped,
            running: false,
            error: None,
            stop_after_download: params.stop_after_download,
            stop_after_metadata: params.stop_after_metadata,
            peers: BTreeMap::new(),
            next_key: 0,
            dialing: BTreeMap::new(),
            needs_peers: false,
            buffers: BTreeMap::new(),
            verifying: BTreeMap::new(),
            piece_data: 0,
            reserved_memory: 0,
            piece_memory_limit: config.max_piece_memory,
            memory_wanted: 0,
            smart_ban: SmartBan::default(),
            metadata: metadata::MetadataFetch::default(),
            downloaded: params.resume.downloaded,
            uploaded: params.resume.uploaded,
            wasted: params.resume.wasted,
            seeded_for: params.resume.seeded_for,
            seeding_since: None,
            download_meter: Meter::new(now),
            upload_meter: Meter::new(now),
            next_tick: None,
            last_now: now,
            actions: VecDeque::new(),
            events: VecDeque::new(),
            dropped_events: 0,
            scratch: Vec::new(),
            webseeds,
            rng,
            config,
        };
        if let Some((info, bytes)) = params.info {
            t.install_info(info, bytes);
            if let (Some(have), Some(p)) = (params.resume.have, t.picker.as_mut())
                && have.len() == p.layout().piece_count()
            {
                for i in have.iter_ones() {
                    p.piece_verified(i);
                }
            }
        }
        t
    }

    // ---------------------------------------------------------------- views

    /// The status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The info-hash.
    pub fn info_hash(&self) -> InfoHash {
        self.info_hash
    }

    /// The info dictionary, once known.
    pub fn info(&self) -> Option<&Info> {
        self.info.as_ref()
    }

    /// The raw info dictionary, once known.
    pub fn info_bytes(&self) -> Option<&Bytes> {
        self.info_bytes.as_ref()
    }

    /// Verified pieces, once the metadata is known.
    pub fn bitfield(&self) -> Option<&Bitfield> {
        self.picker.as_ref().map(Picker::have)
    }

    /// Bytes of piece memory reserved: the whole length of every started piece, until it is
    /// written, fails its hash check or is dropped. Never above the limit because of a new
    /// piece start, except for the one piece allowed when nothing is reserved (see the module
    /// documentation); lowering the limit leaves started pieces to finish.
    pub fn piece_memory(&self) -> u64 {
        self.reserved_memory
    }

    /// Piece buffers held: started pieces plus pieces waiting for their hash check and write.
    pub fn piece_buffers(&self) -> usize {
        self.buffers.len() + self.verifying.len()
    }

    /// The piece-memory limit in force (initially [`TorrentConfig::max_piece_memory`]).
    pub fn piece_memory_limit(&self) -> u64 {
        self.piece_memory_limit
    }

    /// Bytes of new pieces that peers wanted to start at their last request top-up but the
    /// limit held back; 0 when no peer is held back. A runtime sharing a budget across
    /// torrents grants more (with [`Torrent::set_piece_memory_limit`]) while this is not 0.
    /// Changes with any input that tops up requests, and drops when a held-back peer leaves.
    pub fn piece_memory_wanted(&self) -> u64 {
        self.memory_wanted
    }

    /// Changes the piece-memory limit (a runtime granting a share of a session-wide budget).
    /// Raising it tops up every peer's requests at once, so peers held back start pieces;
    /// lowering it starts no new piece while the reservation is at or above it, and lets the
    /// started pieces finish (nothing is cancelled).
    pub fn set_piece_memory_limit(&mut self, now: Instant, limit: u64) {
        self.last_now = now;
        let raised = limit > self.piece_memory_limit;
        self.piece_memory_limit = limit;
        if raised {
            self.fill_all(now);
        }
    }

    /// The picker, once the metadata is known (read-only, for status and tests).
    pub fn picker(&self) -> Option<&Picker> {
        self.picker.as_ref()
    }

    /// True if every wanted piece is verified.
    pub fn is_complete(&self) -> bool {
        self.picker.as_ref().is_some_and(Picker::is_complete)
    }

    /// Resume counters to persist (bitfield from [`Torrent::bitfield`]).
    pub fn resume(&self) -> Resume {
        Resume {
            have: self.bitfield().cloned(),
            downloaded: self.downloaded,
            uploaded: self.uploaded,
            wasted: self.wasted,
            seeded_for: self.seeded_for_at(self.last_now),
        }
    }

    /// Webseed sources, in list order (rain's `GetTorrentWebseeds`).
    pub fn webseeds(&self) -> Vec<WebseedStatus> {
        self.webseeds.statuses()
    }

    /// Tracker states (rain's `GetTrackers`).
    pub fn trackers(&self) -> Vec<crate::tracker::announcer::TrackerStatus> {
        self.announcer.trackers()
    }

    fn seeded_for_at(&self, now: Instant) -> Duration {
        self.seeded_for
            + self
                .seeding_since
                .map_or(Duration::ZERO, |s| now.saturating_duration_since(s))
    }

    /// rain's `Stats` as of the last input.
    pub fn stats(&self) -> Stats {
        let (pieces, mut bytes) = match (&self.picker, &self.info) {
            (Some(p), Some(info)) => {
                let l = p.layout();
                let have = p.have().count();
                let total = l.piece_count();
                let available = (0..total).filter(|&i| p.availability(i) > 0).count() as u32;
                let mut completed = u64::from(have) * u64::from(l.piece_length());
                if total > 0 && p.have().get(total - 1) {
                    completed -= u64::from(l.piece_length() - l.piece_len(total - 1));
                }
                let padding = info
                    .files
                    .iter()
                    .filter(|f| f.padding)
                    .map(|f| f.length)
                    .sum();
                (
                    PieceStats {
                        checked: 0,
                        have,
                        missing: total - have,
                        available,
                        total,
                    },
                    ByteStats {
                        total: l.total_length(),
                        padding,
                        allocated: l.total_length(),
                        completed,
                        incomplete: l.total_length() - completed,
                        ..ByteStats::default()
                    },
                )
            }
            _ => (PieceStats::default(), ByteStats::default()),
        };
        bytes.downloaded = self.downloaded;
        bytes.uploaded = self.uploaded;
        bytes.wasted = self.wasted;
        let incoming = self
            .peers
            .values()
            .filter(|p| p.info.direction == Direction::Incoming)
            .count();
        let mut downloads = DownloadCounts::default();
        let mut md = MetadataDownloadCounts::default();
        for p in self.peers.values() {
            if !p.requested.is_empty() {
                downloads.total += 1;
                if p.peer_choking {
                    downloads.choked += 1;
                } else if p.snubbed {
                    downloads.snubbed += 1;
                }
            }
            if p.metadata_source {
                md.total += 1;
                md.snubbed += usize::from(p.metadata_snubbed);
            }
        }
        downloads.running = downloads.total - downloads.choked - downloads.snubbed;
        md.running = md.total - md.snubbed;
        let speed = SpeedStats {
            download: self.download_meter.rate_u64(),
            upload: self.upload_meter.rate_u64(),
        };
        let eta = (self.status == Status::Downloading && speed.download > 0)
            .then(|| round_eta(Duration::from_secs(bytes.incomplete / speed.download)));
        Stats {
            status: self.status,
            error: self.error.clone(),
            name: self.info.as_ref().map(|i| i.name.clone()),
            private: self.is_private(),
            file_count: self.info.as_ref().map_or(0, |i| i.files.len()),
            piece_length: self.info.as_ref().map_or(0, |i| i.piece_length),
            seeded_for: self.seeded_for_at(self.last_now),
            eta,
            pieces,
            bytes,
            peers: PeerCounts {
                total: self.peers.len(),
                incoming,
                outgoing: self.peers.len() - incoming,
            },
            handshakes: PeerCounts {
                total: self.dialing.len(),
                incoming: 0,
                outgoing: self.dialing.len(),
            },
            addresses: AddressCounts {
                total: self.book.len(),
                tracker: self.book.count_by_source(PeerSource::Tracker),
                dht: self.book.count_by_source(PeerSource::Dht),
                pex: self.book.count_by_source(PeerSource::Pex),
            },
            downloads,
            metadata_downloads: md,
            speed,
        }
    }

    /// Connected peers, by key.
    pub fn peers(&self) -> Vec<PeerView> {
        self.peers
            .iter()
            .map(|(&key, p)| PeerView {
                key,
                addr: p.info.addr,
                direction: p.info.direction,
                client: wire::client_name(
                    &p.info.peer_id,
                    p.ext.as_ref().and_then(|e| e.v.as_deref()),
                ),
                peer_id: p.info.peer_id,
                source: p.source,
                connected_at: p.connected_at,
                optimistic: self.choker.is_optimistic(key),
                encrypted: p.info.encrypted,
                am_choking: p.am_choking,
                am_interested: p.am_interested,
                peer_choking: p.peer_choking,
                peer_interested: p.peer_interested,
                snubbed: p.snubbed,
                seed: p.is_seed,
                requests_out: p.requested.len(),
                requests_in: p.uploads.len(),
                pipeline_depth: p.pipeline.depth(p.snubbed),
                download_speed: p.download.rate_u64(),
                upload_speed: p.upload.rate_u64(),
            })
            .collect()
    }

    fn is_private(&self) -> bool {
        self.info.as_ref().is_some_and(|i| i.private)
    }

    // ---------------------------------------------------------------- outputs

    /// The next effect to perform.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<TorrentEvent> {
        self.events.pop_front()
    }

    /// When [`Torrent::handle_timeout`] must next be called; `None` when idle.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.announcer.poll_timeout();
        let mut min = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        if self.running {
            min(self.next_tick);
            min(self.choker.poll_timeout());
            if self.status == Status::Downloading {
                min(self.webseeds.poll_timeout());
            }
            if self.wants_dials() {
                min(self.book.poll_timeout());
            }
            for p in self.peers.values() {
                min(Some(p.next_deadline(
                    self.config.idle_timeout,
                    self.config.keep_alive_interval,
                )));
            }
        }
        t
    }

    /// Events dropped because the queue was full.
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events
    }

    fn event(&mut self, e: TorrentEvent) {
        if self.events.len() >= self.config.max_queued_events {
            self.dropped_events += 1;
        } else {
            self.events.push_back(e);
        }
    }

    fn send(&mut self, now: Instant, key: PeerKey, message: Message) {
        if let Some(p) = self.peers.get_mut(&key) {
            p.last_send = now;
            self.actions.push_back(Action::Send { peer: key, message });
        }
    }

    fn set_status(&mut self, to: Status) {
        let from = self.status;
        if from != to {
            self.status = to;
            self.event(TorrentEvent::StatusChanged { from, to });
        }
    }

    fn running_status(&self) -> Status {
        if self.info.is_none() {
            Status::DownloadingMetadata
        } else if self.is_complete() {
            Status::Seeding
        } else {
            Status::Downloading
        }
    }

    // ---------------------------------------------------------------- commands

    /// Starts: announces, dials, downloads. Does nothing if running.
    pub fn start(&mut self, now: Instant) {
        self.last_now = now;
        if self.running {
            return;
        }
        self.running = true;
        self.error = None;
        self.choker = Choker::new(self.config.choker, self.rng.child(), now);
        self.download_meter = Meter::new(now);
        self.upload_meter = Meter::new(now);
        self.next_tick = Some(now + TICK);
        let s = self.running_status();
        if s == Status::Seeding {
            self.seeding_since = Some(now);
        }
        self.set_status(s);
        self.announcer.start(now, self.is_complete());
        self.drain_announcer(now);
        self.dial_more(now);
        self.plan_webseeds(now);
    }

    /// Stops: closes every peer, forgets unverified data and addresses, sends `stopped` to
    /// trackers (status Stopping), then Stopped.
    pub fn stop(&mut self, now: Instant) {
        self.last_now = now;
        if !self.running {
            return;
        }
        self.running = false;
        self.stop_webseeds(now);
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in keys {
            self.disconnect(now, k, DisconnectReason::Stopped);
        }
        self.dialing.clear();
        self.book.clear();
        let partial: Vec<u32> = self.buffers.keys().copied().collect();
        for i in partial {
            if let Some(b) = self.buffers.remove(&i) {
                self.piece_data -= b.bytes;
                self.reserved_memory -= b.reserved;
            }
            if let Some(p) = self.picker.as_mut() {
                p.piece_failed(i);
            }
        }
        self.metadata = metadata::MetadataFetch::default();
        if let Some(s) = self.seeding_since.take() {
            self.seeded_for += now.saturating_duration_since(s);
        }
        self.download_meter = Meter::new(now);
        self.upload_meter = Meter::new(now);
        self.next_tick = None;
        self.set_status(Status::Stopping);
        self.announcer.stop(now);
        self.drain_announcer(now);
        if self.status == Status::Stopping && self.announcer.poll_timeout().is_none() {
            self.finish_stop();
        }
    }

    fn finish_stop(&mut self) {
        if self.running || self.status != Status::Stopping {
            return;
        }
        self.set_status(Status::Stopped);
        self.event(TorrentEvent::Stopped {
            error: self.error.clone(),
        });
    }

    fn fail(&mut self, now: Instant, e: TorrentError) {
        if self.error.is_some() {
            return;
        }
        self.error = Some(e.clone());
        self.event(TorrentEvent::Error(e));
        self.stop(now);
    }

    /// Replaces the blocklist (after a reload). Addresses already queued stay queued; new ones
    /// and new incoming connections are checked against the new list.
    pub fn set_blocklist(&mut self, blocklist: Option<BlocklistUse>) {
        self.blocklist = blocklist;
    }

    /// Offers a peer address (tracker, DHT, PEX, user). Ignored unless downloading.
    pub fn add_peer_addr(&mut self, now: Instant, addr: SocketAddr, source: PeerSource) {
        self.last_now = now;
        if !self.running {
            return;
        }
        let blocked = self
            .blocklist
            .as_ref()
            .filter(|b| b.outgoing)
            .map(|b| &*b.list);
        if self.book.add(addr, source, blocked) == AddOutcome::Added && self.needs_peers {
            self.needs_peers = false;
            self.announcer.set_needs_peers(now, false);
        }
        self.dial_more(now);
    }

    /// The user wants more peers: trackers are re-asked at their minimum interval.
    pub fn announce(&mut self, now: Instant) {
        self.last_now = now;
        self.needs_peers = true;
        self.announcer.set_needs_peers(now, true);
        self.announcer.handle_timeout(now);
        self.drain_announcer(now);
    }

    /// Adds a tracker as a tier of its own.
    pub fn add_tracker(&mut self, now: Instant, url: &str) {
        self.announcer.add_tracker(now, url);
        self.drain_announcer(now);
    }

    /// Sets a file's priority (selective download).
    pub fn set_file_priority(
        &mut self,
        now: Instant,
        file: usize,
        prio: FilePriority,
    ) -> Result<(), TorrentApiError> {
        self.last_now = now;
        let p = self.picker.as_mut().ok_or(TorrentApiError::NoMetadata)?;
        p.set_file_priority(file, prio)
            .map_err(|_| TorrentApiError::NoSuchFile(file))?;
        self.after_want_change(now);
        Ok(())
    }

    /// Switches sequential download on or off.
    pub fn set_sequential(&mut self, on: bool) -> Result<(), TorrentApiError> {
        self.picker
            .as_mut()
            .ok_or(TorrentApiError::NoMetadata)?
            .set_sequential(on);
        Ok(())
    }

    fn after_want_change(&mut self, now: Instant) {
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for &k in &keys {
            self.update_interest(now, k);
        }
        if self.running && self.is_complete() && self.status == Status::Downloading {
            self.on_complete(now);
        } else if self.running && !self.is_complete() && self.status == Status::Seeding {
            if let Some(s) = self.seeding_since.take() {
                self.seeded_for += now.saturating_duration_since(s);
            }
            self.set_status(Status::Downloading);
        }
        for k in keys {
            self.fill_requests(now, k);
        }
        self.plan_webseeds(now);
    }

    // ---------------------------------------------------------------- trackers

    /// A tracker answered (or failed).
    pub fn handle_announce_reply(
        &mut self,
        now: Instant,
        id: RequestId,
        result: Result<AnnounceReply, TrackerError>,
    ) {
        self.last_now = now;
        self.announcer.handle_reply(now, id, result);
        self.drain_announcer(now);
    }

    fn left(&self) -> u64 {
        match &self.picker {
            Some(p) => {
                let l = p.layout();
                let missing: u64 = (0..l.piece_count())
                    .filter(|&i| !p.have().get(i))
                    .map(|i| u64::from(l.piece_len(i)))
                    .sum();
                missing
            }
            None => u64::from(u32::MAX),
        }
    }

    fn drain_announcer(&mut self, now: Instant) {
        while let Some(request) = self.announcer.poll_request() {
            let announce = Announce {
                info_hash: self.info_hash,
                peer_id: self.peer_id.0,
                port: self.port,
                uploaded: self.uploaded,
                downloaded: self.downloaded,
                left: self.left(),
                event: request.event,
                num_want: request.num_want,
                key: self.announce_key,
            };
            self.actions
                .push_back(Action::Announce { request, announce });
        }
        while let Some(e) = self.announcer.poll_event() {
            match e {
                AnnouncerEvent::Peers { peers, .. } => {
                    for a in peers {
                        self.add_peer_addr(now, a, PeerSource::Tracker);
                    }
                }
                AnnouncerEvent::ExternalIp(ip) => {
                    self.book.set_our_address(SocketAddr::new(ip, self.port));
                }
                AnnouncerEvent::Stopped => self.finish_stop(),
            }
        }
    }

    // ---------------------------------------------------------------- connections

    /// Seeds dial too (libtorrent does): a leecher that never dials out — Transmission never
    /// dials a loopback tracker peer — can only get our data if we connect to it.
    fn wants_dials(&self) -> bool {
        self.running
    }

    /// One connection per IP, as rain and libtorrent keep by default; loopback is exempt,
    /// since clients on one host are told apart by their ports.
    fn ip_taken(&self, addr: SocketAddr) -> bool {
        let ip = addr.ip();
        !ip.is_loopback()
            && (self.peers.values().any(|p| p.info.addr.ip() == ip)
                || self.dialing.keys().any(|a| a.ip() == ip))
    }

    fn outgoing(&self) -> usize {
        self.peers
            .values()
            .filter(|p| p.info.direction == Direction::Outgoing)
            .count()
            + self.dialing.len()
    }

    fn dial_more(&mut self, now: Instant) {
        if !self.wants_dials() {
            return;
        }
        while self.outgoing() < self.config.max_peer_dial {
            let Some((addr, source)) = self.book.pop(now) else {
                if !self.needs_peers && self.status != Status::Seeding {
                    self.needs_peers = true;
                    self.announcer.set_needs_peers(now, true);
                }
                return;
            };
            if self.ip_taken(addr) {
                let delay = self.config.address_book.reconnect_delay;
                self.book.defer(now, addr, delay);
                continue;
            }
            self.dialing.insert(addr, source);
            self.actions.push_back(Action::Dial { addr });
        }
    }

    /// A dial failed (connect, MSE or handshake).
    pub fn handle_dial_failed(&mut self, now: Instant, addr: SocketAddr) {
        self.last_now = now;
        if self.dialing.remove(&addr).is_some() {
            self.book.dial_failed(now, addr);
        }
        self.dial_more(now);
    }

    /// A connection finished its handshake. On `Ok` the peer is known under the key and the
    /// first messages are queued; on `Err` the runtime closes the connection.
    pub fn handle_peer_connected(
        &mut self,
        now: Instant,
        info: PeerInfo,
    ) -> Result<PeerKey, Refused> {
        self.last_now = now;
        let replacing = self.crossed_connection(&info);
        let r = self.admit(now, &info, replacing);
        // The old connection goes only once the new one is sure to stay.
        if let (Ok(()), Some(old)) = (&r, replacing) {
            self.disconnect(now, old, DisconnectReason::Duplicate);
        }
        let source = match info.direction {
            Direction::Incoming => PeerSource::Incoming,
            Direction::Outgoing => match self.dialing.remove(&info.addr) {
                Some(source) => {
                    self.book.connected(info.addr);
                    source
                }
                None => PeerSource::Manual,
            },
        };
        if r.is_err() {
            self.dial_more(now);
        }
        let () = r?;
        let key = PeerKey(self.next_key);
        self.next_key = self.next_key.wrapping_add(1);
        let cap = self
            .config
            .default_requests_out
            .min(self.config.max_requests_out);
        let pipeline = Pipeline::new(
            now,
            self.config.initial_requests_out,
            self.config.min_requests_out,
            cap,
        );
        if let Some(p) = self.picker.as_mut() {
            if p.peer_added(key).is_err() {
                return Err(Refused::TooManyPeers);
            }
            p.set_parole(key, self.smart_ban.on_parole(info.addr.ip()));
        }
        let addr = info.addr;
        self.peers
            .insert(key, Peer::new(info, source, now, pipeline));
        self.event(TorrentEvent::PeerConnected { peer: key, addr });
        self.send_first_messages(now, key);
        Ok(key)
    }

    /// When we and a peer dial each other at once, both ends hold two connections between the
    /// same pair and each refuses its second one as a duplicate; if each refused a different
    /// one, neither connection survives and the two may never meet again. So both ends keep
    /// the connection opened by the peer with the lower peer id (libtorrent's rule): this
    /// returns the existing connection that the new one `info` replaces, if any (otherwise
    /// [`Torrent::admit`] refuses the new one as a duplicate). The replacement happens only
    /// if the new connection is admitted on every other count.
    fn crossed_connection(&self, info: &PeerInfo) -> Option<PeerKey> {
        let opened_by_lower = match info.direction {
            Direction::Outgoing => self.peer_id < info.peer_id,
            Direction::Incoming => info.peer_id < self.peer_id,
        };
        if !opened_by_lower {
            return None;
        }
        self.peers
            .iter()
            .find(|(_, p)| p.info.peer_id == info.peer_id && p.info.direction != info.direction)
            .map(|(k, _)| *k)
    }

    /// Whether the connection `info` may join; `replacing` is a connection it would replace
    /// ([`Torrent::crossed_connection`]), left out of the duplicate checks and the counts.
    fn admit(
        &self,
        _now: Instant,
        info: &PeerInfo,
        replacing: Option<PeerKey>,
    ) -> Result<(), Refused> {
        if !self.running {
            return Err(Refused::NotRunning);
        }
        if info.peer_id == self.peer_id {
            return Err(Refused::OwnConnection);
        }
        let others = || {
            self.peers
                .iter()
                .filter(move |(k, _)| Some(**k) != replacing)
                .map(|(_, p)| p)
        };
        if others().any(|p| p.info.peer_id == info.peer_id) {
            return Err(Refused::DuplicatePeerId);
        }
        let ip = info.addr.ip();
        if !ip.is_loopback() && others().any(|p| p.info.addr.ip() == ip) {
            return Err(Refused::DuplicateIp);
        }
        if self.book.is_banned(ip) {
            return Err(Refused::Banned);
        }
        if info.direction == Direction::Incoming
            && self
                .blocklist
                .as_ref()
                .is_some_and(|b| b.incoming && b.list.contains(ip))
        {
            return Err(Refused::Blocked);
        }
        let max = match info.direction {
            Direction::Outgoing => self.config.max_peer_dial,
            Direction::Incoming => self.config.max_peer_accept,
        };
        if others()
            .filter(|p| p.info.direction == info.direction)
            .count()
            >= max
        {
            return Err(Refused::TooManyPeers);
        }
        Ok(())
    }

    fn send_first_messages(&mut self, now: Instant, key: PeerKey) {
        let Some(peer) = self.peers.get(&key) else {
            return;
        };
        let fast = peer.fast();
        let ext = peer.info.reserved.extension();
        let ip = peer.info.addr.ip();
        let state = match &self.picker {
            Some(p) if fast && p.have().all() => Some(Message::HaveAll),
            Some(p) if p.have().none() => fast.then_some(Message::HaveNone),
            Some(p) => Some(Message::Bitfield(Bytes::from(p.have().to_bytes()))),
            None => fast.then_some(Message::HaveNone),
        };
        if let Some(m) = state {
            self.send(now, key, m);
        }
        if ext {
            let mut h = ExtHandshake::rain(
                &self.config.client_version,
                Some(ip),
                self.config.max_requests_in,
                self.info_bytes.as_ref().map(|b| b.len() as u64),
            );
            if !self.pex_advertised() {
                // BEP 27: a private torrent's peers come from its tracker only.
                h.m.remove(extension::name::UT_PEX);
            }
            let mut payload = Vec::new();
            h.encode(&mut payload);
            self.send(
                now,
                key,
                Message::Extended {
                    id: extension::id::HANDSHAKE,
                    payload: Bytes::from(payload),
                },
            );
        }
        self.send_allowed_fast(now, key);
        if let Some(port) = self.dht_port()
            && self.peers.get(&key).is_some_and(|p| p.info.reserved.dht())
        {
            self.send(now, key, Message::Port(port));
        }
    }

    /// Our DHT port, unless the DHT is off or the torrent is private (BEP 27).
    fn dht_port(&self) -> Option<u16> {
        self.config
            .dht_port
            .filter(|_| !self.info.as_ref().is_some_and(|i| i.private))
    }

    /// True while the torrent is downloading and has run out of addresses to dial: the
    /// DHT should look again at its shorter interval (rain's `dht-min-announce-interval`).
    pub fn wants_more_peers(&self) -> bool {
        self.running && self.status != Status::Seeding && self.needs_peers
    }

    /// Sends the BEP 6 allowed-fast set once (fast IPv4 peers, metadata known).
    fn send_allowed_fast(&mut self, now: Instant, key: PeerKey) {
        let (Some(p), Some(peer)) = (&self.picker, self.peers.get(&key)) else {
            return;
        };
        let IpAddr::V4(v4) = peer.info.addr.ip() else {
            return;
        };
        if !peer.fast() || !peer.allowed_fast_out.is_empty() {
            return;
        }
        // At most an eighth of the pieces: on a small torrent a set covering every piece
        // would bypass the choker altogether.
        let n = p.layout().piece_count();
        let k = self.config.allowed_fast_set.min(n as usize / 8);
        if k == 0 {
            return;
        }
        let set = wire::allowed_fast_set(v4, &self.info_hash, n, k);
        let bytes: u64 = set
            .iter()
            .map(|&i| u64::from(p.layout().piece_len(i)))
            .sum();
        for &i in &set {
            self.send(now, key, Message::AllowedFast(i));
        }
        if let Some(peer) = self.peers.get_mut(&key) {
            peer.allowed_fast_out = set;
            peer.allowed_fast_budget = bytes.saturating_mul(upload::ALLOWED_FAST_SERVES_PER_PIECE);
        }
    }

    /// The runtime saw the connection close (or fail). Its requests go back to the picker.
    pub fn handle_peer_closed(&mut self, now: Instant, peer: PeerKey) {
        self.last_now = now;
        if self.peers.contains_key(&peer) {
            self.remove_peer(now, peer, true);
        }
    }

    fn disconnect(&mut self, now: Instant, key: PeerKey, reason: DisconnectReason) {
        let Some(p) = self.peers.get(&key) else {
            return;
        };
        let addr = p.info.addr;
        self.actions
            .push_back(Action::Disconnect { peer: key, reason });
        self.event(TorrentEvent::PeerDisconnected {
            peer: key,
            addr,
            reason,
        });
        self.remove_peer(now, key, reason == DisconnectReason::TimedOut);
    }

    fn violation(&mut self, now: Instant, key: PeerKey, v: Violation) {
        self.disconnect(now, key, DisconnectReason::Misbehaved(v));
    }

    /// Forgets a connection. `reconnect`: it ended without fault of the peer's (closed, timed
    /// out), so an outgoing peer's address goes back to the book, to be dialled again after
    /// `reconnect_delay`.
    fn remove_peer(&mut self, now: Instant, key: PeerKey, reconnect: bool) {
        let Some(peer) = self.peers.remove(&key) else {
            return;
        };
        self.memory_wanted -= peer.memory_wanted;
        if reconnect && self.running && peer.info.direction == Direction::Outgoing {
            let addr = peer.info.addr;
            if self.book.add(addr, peer.source, None) == AddOutcome::Added {
                self.book
                    .defer(now, addr, self.config.address_book.reconnect_delay);
            }
        }
        let had_requests = !peer.requested.is_empty();
        if let Some(p) = self.picker.as_mut() {
            p.peer_removed(key);
        }
        self.choker.peer_removed(key);
        self.metadata.peer_removed(key);
        if peer.metadata_source && self.info.is_none() {
            self.metadata_schedule(now);
        }
        if had_requests {
            self.fill_all(now);
        }
        self.dial_more(now);
    }

    /// Carries out smart ban's verdict on connected peers.
    fn apply_verdict(&mut self, now: Instant, v: smart_ban::Verdict) {
        for (ips, on) in [(&v.parole, true), (&v.release, false)] {
            for ip in ips {
                self.set_parole(*ip, on);
            }
        }
        for ip in v.ban {
            self.ban(now, ip);
        }
    }

    /// Puts every connected peer of `ip` on parole, or takes it off.
    fn set_parole(&mut self, ip: IpAddr, on: bool) {
        let Some(picker) = self.picker.as_mut() else {
            return;
        };
        for (k, p) in &self.peers {
            if p.info.addr.ip() == ip {
                picker.set_parole(*k, on);
            }
        }
    }

    fn ban(&mut self, now: Instant, ip: IpAddr) {
        if self.book.is_banned(ip) {
            return;
        }
        self.book.ban(ip);
        self.event(TorrentEvent::PeerBanned {
            ip,
            reason: BanReason::CorruptData,
        });
        let keys: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, p)| p.info.addr.ip() == ip)
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            self.disconnect(now, k, DisconnectReason::Banned);
        }
    }

    // ---------------------------------------------------------------- messages

    /// A decoded message from a peer. Peer faults close the peer (never an `Err`).
    pub fn handle_message(&mut self, now: Instant, key: PeerKey, message: Message) {
        self.last_now = now;
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        peer.last_recv = now;
        let fast = peer.fast();
        let fast_only = matches!(
            message,
            Message::HaveAll | Message::HaveNone | Message::Reject(_) | Message::AllowedFast(_)
        );
        if fast_only && !fast {
            self.violation(now, key, Violation::NotFast);
            return;
        }
        match message {
            Message::Port(port) => {
                let addr = SocketAddr::new(peer.info.addr.ip(), port);
                if port != 0 && self.dht_port().is_some() {
                    self.event(TorrentEvent::DhtNode { addr });
                }
            }
            Message::KeepAlive | Message::Suggest(_) => {}
            Message::Choke => self.on_choke(now, key),
            Message::Unchoke => {
                peer.peer_choking = false;
                peer.pipeline.restart_window(now);
                self.fill_requests(now, key);
            }
            Message::Interested => {
                peer.peer_interested = true;
                if peer.am_choking
                    && self.choker.handle_interested(key) == Some(ChokeDecision::Unchoke)
                {
                    self.unchoke(now, key);
                }
            }
            Message::NotInterested => peer.peer_interested = false,
            Message::Have(i) => self.on_have(now, key, i),
            Message::Bitfield(b) => self.on_bitfield(now, key, b),
            Message::HaveAll => self.on_have_all(now, key),
            Message::HaveNone => {
                peer.got_piece_state = true;
                if let Some(p) = self.picker.as_mut() {
                    p.peer_have_none(key);
                } else {
                    peer.pending_have = PendingHave::Nothing;
                }
                peer.is_seed = false;
                self.update_interest(now, key);
            }
            Message::Request(b) => self.on_request(now, key, b),
            Message::Piece { index, begin, data } => self.on_piece(now, key, index, begin, data),
            Message::Cancel(b) => self.on_cancel(now, key, b),
            Message::Reject(b) => self.on_reject(now, key, b),
            Message::AllowedFast(i) => {
                if let Some(p) = &self.picker
                    && i >= p.layout().piece_count()
                {
                    self.violation(now, key, Violation::PieceIndex(i));
                    return;
                }
                let max = self.config.max_allowed_fast_in;
                if !peer.allowed_fast_in.contains(&i) && peer.allowed_fast_in.len() < max {
                    peer.allowed_fast_in.push(i);
                }
                self.fill_requests(now, key);
            }
            Message::Extended { id, payload } => self.on_extended(now, key, id, &payload),
        }
    }

    fn piece_count(&self) -> Option<u32> {
        self.picker.as_ref().map(|p| p.layout().piece_count())
    }

    fn on_have(&mut self, now: Instant, key: PeerKey, i: u32) {
        let n = self.piece_count();
        let max_pending = self.config.max_pending_haves;
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        match (n, self.picker.as_mut()) {
            (Some(n), Some(p)) => {
                if i >= n {
                    self.violation(now, key, Violation::PieceIndex(i));
                    return;
                }
                p.peer_has(key, i);
                peer.is_seed = (0..n).all(|k| p.peer_has_piece(key, k));
            }
            _ => match &mut peer.pending_have {
                PendingHave::All => {}
                PendingHave::Haves(v) => {
                    if v.len() < max_pending && !v.contains(&i) {
                        v.push(i);
                    }
                }
                other => {
                    let mut v = Vec::new();
                    if let PendingHave::Bits(b) = other {
                        // Fold the bitfield into indices (bounded).
                        for (byte_i, byte) in b.iter().enumerate() {
                            for bit in 0..8 {
                                if byte & (0x80 >> bit) != 0 && v.len() < max_pending {
                                    v.push((byte_i * 8 + bit) as u32);
                                }
                            }
                        }
                    }
                    if v.len() < max_pending {
                        v.push(i);
                    }
                    *other = PendingHave::Haves(v);
                }
            },
        }
        self.after_peer_pieces(now, key);
    }

    fn on_bitfield(&mut self, now: Instant, key: PeerKey, b: Bytes) {
        let n = self.piece_count();
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        peer.got_piece_state = true;
        match (n, self.picker.as_mut()) {
            (Some(n), Some(p)) => {
                let Ok(bits) = Bitfield::from_bytes(&b, n) else {
                    self.violation(now, key, Violation::BitfieldLength);
                    return;
                };
                p.peer_bitfield(key, &bits);
                peer.is_seed = bits.all();
            }
            _ => peer.pending_have = PendingHave::Bits(b),
        }
        self.after_peer_pieces(now, key);
    }

    fn on_have_all(&mut self, now: Instant, key: PeerKey) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        peer.got_piece_state = true;
        match self.picker.as_mut() {
            Some(p) => {
                p.peer_have_all(key);
                peer.is_seed = true;
            }
            None => peer.pending_have = PendingHave::All,
        }
        self.after_peer_pieces(now, key);
    }

    /// After the peer's pieces changed: both seeds part, interest, requests.
    fn after_peer_pieces(&mut self, now: Instant, key: PeerKey) {
        if self.status == Status::Seeding && self.peers.get(&key).is_some_and(|p| p.is_seed) {
            self.disconnect(now, key, DisconnectReason::NotNeeded);
            return;
        }
        self.update_interest(now, key);
        self.fill_requests(now, key);
    }

    fn update_interest(&mut self, now: Instant, key: PeerKey) {
        let Some(p) = &self.picker else {
            return;
        };
        let want = !p.is_complete() && p.is_interesting(key);
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if peer.am_interested != want {
            peer.am_interested = want;
            let m = if want {
                Message::Interested
            } else {
                Message::NotInterested
            };
            self.send(now, key, m);
        }
    }

    fn on_choke(&mut self, now: Instant, key: PeerKey) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        peer.peer_choking = true;
        if peer.fast() {
            // A fast peer rejects what it will not serve; the snub timer covers silence.
            return;
        }
        // BEP 3: a choke discards every pending request.
        let blocks: Vec<Block> = std::mem::take(&mut peer.requested).into_keys().collect();
        peer.snub_at = None;
        if let Some(p) = self.picker.as_mut() {
            for b in &blocks {
                p.request_timed_out(key, *b);
            }
        }
        if !blocks.is_empty() {
            self.fill_all(now);
        }
    }

    fn unchoke(&mut self, now: Instant, key: PeerKey) {
        if let Some(p) = self.peers.get_mut(&key) {
            p.am_choking = false;
            p.choked_refusals = 0;
            self.send(now, key, Message::Unchoke);
        }
    }

    fn choke(&mut self, now: Instant, key: PeerKey) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        p.am_choking = true;
        let fast = p.fast();
        let dropped = p.uploads.clear();
        self.send(now, key, Message::Choke);
        if fast {
            for b in dropped {
                self.send(now, key, Message::Reject(to_wire(b)));
            }
        }
    }

    fn on_extended(&mut self, now: Instant, key: PeerKey, id: u8, payload: &Bytes) {
        match id {
            extension::id::HANDSHAKE => self.on_ext_handshake(now, key, payload),
            extension::id::UT_METADATA => self.on_metadata_message(now, key, payload),
            extension::id::UT_PEX => self.on_pex(now, key, payload),
            other => self.violation(now, key, Violation::UnknownExtension(other)),
        }
    }

    fn on_ext_handshake(&mut self, now: Instant, key: PeerKey, payload: &[u8]) {
        let max_out = self.config.max_requests_out;
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if peer.ext.is_some() {
            return;
        }
        let Ok(h) = ExtHandshake::decode(payload, &ExtLimits::default()) else {
            self.violation(now, key, Violation::BadExtHandshake);
            return;
        };
        if let Some(r) = h.reqq.filter(|&r| r > 0) {
            peer.pipeline.set_cap(r.min(max_out));
        }
        let yourip = h.yourip;
        peer.ext = Some(h);
        if let Some(ip @ IpAddr::V4(_)) = yourip
            && !ip.is_unspecified()
        {
            self.book.set_our_address(SocketAddr::new(ip, self.port));
        }
        if self.info.is_none() {
            self.metadata_schedule(now);
        } else {
            self.maybe_start_pex(now, key);
        }
    }

    // ---------------------------------------------------------------- downloading

    fn fill_all(&mut self, now: Instant) {
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in keys {
            self.fill_requests(now, k);
        }
    }

    /// Tops up `key`'s requests to its pipeline depth.
    fn fill_requests(&mut self, now: Instant, key: PeerKey) {
        if let Some(p) = self.peers.get_mut(&key) {
            self.memory_wanted -= std::mem::take(&mut p.memory_wanted);
        }
        if !self.running {
            return;
        }
        let (Some(picker), Some(peer)) = (self.picker.as_mut(), self.peers.get_mut(&key)) else {
            return;
        };
        if !peer.am_interested || (peer.peer_choking && peer.allowed_fast_in.is_empty()) {
            return;
        }
        let depth = peer.pipeline.depth(peer.snubbed) as usize;
        let want = depth.saturating_sub(peer.requested.len());
        if want == 0 {
            return;
        }
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        let steal = !peer.peer_choking && self.webseeds.active() > 0;
        if steal && picker.in_endgame() {
            // A webseed's tail beats duplicate requests.
            let _ = self
                .webseeds
                .steal_for_peer(picker, |p, i| p.peer_has_piece(key, i));
        }
        picker.pick(
            key,
            want,
            &peer.allowed_fast_in,
            peer.peer_choking,
            &mut out,
        );
        // Nothing else left for this peer: take pieces from the tails of webseed ranges.
        let mut steals = 0;
        while steal && out.len() < want && steals < MAX_WEBSEED_STEALS_PER_FILL {
            let stolen = self
                .webseeds
                .steal_for_peer(picker, |p, i| p.peer_has_piece(key, i));
            if stolen.is_none() {
                break;
            }
            steals += 1;
            let more = want - out.len();
            picker.pick(key, more, &peer.allowed_fast_in, false, &mut out);
        }
        // Piece memory: blocks of started pieces always go out; a new piece starts only if
        // it fits under the limit, and is otherwise given back (the bytes count as wanted).
        let mut wanted = 0u64;
        let mut declined = None;
        let limit = self.piece_memory_limit;
        out.retain(|b| {
            if self.buffers.contains_key(&b.piece) {
                return true;
            }
            let layout = picker.layout();
            let len = u64::from(layout.piece_len(b.piece));
            if declined != Some(b.piece) && piece_fits(self.reserved_memory, len, limit) {
                open_buffer(
                    &mut self.buffers,
                    &mut self.reserved_memory,
                    layout,
                    b.piece,
                );
                return true;
            }
            if declined != Some(b.piece) {
                declined = Some(b.piece);
                wanted += len;
            }
            picker.request_rejected(key, *b);
            false
        });
        peer.memory_wanted = wanted;
        self.memory_wanted += wanted;
        if out.is_empty() {
            self.scratch = out;
            return;
        }
        for b in &out {
            peer.requested.insert(*b, now);
        }
        if peer.snub_at.is_none() {
            peer.snub_at = Some(now + self.config.request_timeout);
        }
        for b in &out {
            self.send(now, key, Message::Request(to_wire(*b)));
        }
        self.scratch = out;
    }

    fn on_piece(&mut self, now: Instant, key: PeerKey, index: u32, begin: u32, data: Bytes) {
        let len = data.len() as u32;
        let timeout = self.config.request_timeout;
        let (Some(picker), Some(peer)) = (self.picker.as_mut(), self.peers.get_mut(&key)) else {
            self.violation(now, key, Violation::NoMetadata);
            return;
        };
        let block = Block {
            piece: index,
            begin,
            length: len,
        };
        if picker.layout().block_index(block).is_none() {
            self.violation(now, key, Violation::BadBlock);
            return;
        }
        self.downloaded += u64::from(len);
        self.download_meter.add(now, u64::from(len));
        peer.download.add(now, u64::from(len));
        let latency = peer
            .requested
            .remove(&block)
            .map(|t| now.saturating_duration_since(t));
        peer.pipeline.on_block(now, latency, len);
        peer.snubbed = false;
        peer.snub_at = (!peer.requested.is_empty()).then_some(now + timeout);
        let ip = peer.info.addr.ip();
        if !self.buffers.contains_key(&index)
            && !self.verifying.contains_key(&index)
            && !picker.have().get(index)
            && !piece_fits(
                self.reserved_memory,
                u64::from(picker.layout().piece_len(index)),
                self.piece_memory_limit,
            )
        {
            // A block of a piece we did not start (unrequested, or late after the piece was
            // reset) with no piece memory for it: dropped.
            self.wasted += u64::from(len);
            self.fill_requests(now, key);
            return;
        }
        let outcome = picker.block_received(key, block);
        match outcome.received {
            Received::Invalid => {
                self.violation(now, key, Violation::BadBlock);
                return;
            }
            Received::Duplicate => self.wasted += u64::from(len),
            Received::New => {
                let layout = picker.layout();
                let idx = layout.block_index(block).unwrap_or(0) as usize;
                let buf = open_buffer(&mut self.buffers, &mut self.reserved_memory, layout, index);
                if let Some(slot) = buf.blocks.get_mut(idx) {
                    *slot = Some((data, Origin::Peer(ip)));
                    buf.bytes += u64::from(len);
                    self.piece_data += u64::from(len);
                }
            }
        }
        let mut others = Vec::new();
        for (other, b) in outcome.cancels {
            if let Some(op) = self.peers.get_mut(&other) {
                op.requested.remove(&b);
                others.push(other);
                self.send(now, other, Message::Cancel(to_wire(b)));
            }
        }
        if outcome.piece_complete {
            self.start_verify(index);
        }
        self.fill_requests(now, key);
        for o in others {
            self.fill_requests(now, o);
        }
    }

    fn start_verify(&mut self, piece: u32) {
        let Some(buf) = self.buffers.remove(&piece) else {
            return;
        };
        let expected = self
            .info
            .as_ref()
            .and_then(|i| i.pieces.get(piece as usize).copied())
            .unwrap_or([0; 20]);
        if buf.blocks.iter().any(Option::is_none) {
            // Data dropped (e.g. a stop in between): download the piece again.
            self.piece_data -= buf.bytes;
            self.reserved_memory -= buf.reserved;
            if let Some(p) = self.picker.as_mut() {
                p.piece_failed(piece);
            }
            return;
        }
        let blocks = buf
            .blocks
            .iter()
            .flatten()
            .map(|(b, _)| b.clone())
            .collect();
        self.verifying.insert(piece, buf);
        self.actions.push_back(Action::VerifyAndWrite {
            piece,
            expected,
            blocks,
        });
    }

    /// The runtime hashed piece `piece` (from [`Action::VerifyAndWrite`]): `Ok(true)` it
    /// matched and was written, `Ok(false)` it did not match (nothing written), `Err` the
    /// write failed (the torrent stops with the error).
    pub fn handle_piece_written(
        &mut self,
        now: Instant,
        piece: u32,
        result: Result<bool, DiskError>,
    ) {
        self.last_now = now;
        let Some(buf) = self.verifying.remove(&piece) else {
            return;
        };
        self.piece_data -= buf.bytes;
        self.reserved_memory -= buf.reserved;
        let Some(picker) = self.picker.as_mut() else {
            return;
        };
        match result {
            Err(e) => {
                picker.piece_failed(piece);
                self.fail(now, TorrentError::DiskWrite(e));
            }
            Ok(true) => {
                let cancels = picker.piece_verified(piece);
                self.send_cancels(now, cancels);
                let verdict = self.smart_ban.piece_passed(piece, &buf.peer_blocks());
                self.apply_verdict(now, verdict);
                self.event(TorrentEvent::PieceCompleted { piece });
                let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
                for &k in &keys {
                    let lacks = self
                        .picker
                        .as_ref()
                        .is_some_and(|p| !p.peer_has_piece(k, piece));
                    if lacks {
                        self.send(now, k, Message::Have(piece));
                    }
                    self.update_interest(now, k);
                }
                if self.running && self.is_complete() && self.status == Status::Downloading {
                    self.on_complete(now);
                } else {
                    // Memory freed: peers held back by the piece-memory limit may start pieces.
                    self.fill_all(now);
                }
            }
            Ok(false) => {
                self.wasted += buf.bytes;
                let cancels = picker.piece_failed(piece);
                for source in buf.webseeds() {
                    self.webseeds.ban(picker, source);
                }
                self.send_cancels(now, cancels);
                self.drain_webseeds(now);
                let verdict = self.smart_ban.piece_failed(
                    piece,
                    &buf.peer_blocks(),
                    self.config.max_smart_ban_pieces,
                );
                self.apply_verdict(now, verdict);
                self.fill_all(now);
            }
        }
    }

    fn send_cancels(&mut self, now: Instant, cancels: Vec<(PeerKey, Block)>) {
        for (k, b) in cancels {
            if let Some(p) = self.peers.get_mut(&k)
                && p.requested.remove(&b).is_some()
            {
                self.send(now, k, Message::Cancel(to_wire(b)));
            }
        }
    }

    fn on_complete(&mut self, now: Instant) {
        self.stop_webseeds(now);
        self.seeding_since = Some(now);
        self.set_status(Status::Seeding);
        self.event(TorrentEvent::Completed);
        self.announcer.completed(now);
        self.drain_announcer(now);
        self.book.clear();
        // Both seeds: nothing to exchange (rain also drops every peer not interested in us;
        // a leecher may just not have processed our last `have` yet, so we keep those).
        let seeds: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, p)| p.is_seed)
            .map(|(k, _)| *k)
            .collect();
        for k in seeds {
            self.disconnect(now, k, DisconnectReason::NotNeeded);
        }
        if self.stop_after_download {
            self.stop_after_download = false;
            self.stop(now);
        }
    }

    fn on_reject(&mut self, now: Instant, key: PeerKey, b: wire::Block) {
        let Some(n) = self.piece_count() else {
            self.violation(now, key, Violation::NoMetadata);
            return;
        };
        if b.index >= n {
            self.violation(now, key, Violation::PieceIndex(b.index));
            return;
        }
        let block = from_wire(b);
        let (Some(picker), Some(peer)) = (self.picker.as_mut(), self.peers.get_mut(&key)) else {
            return;
        };
        if picker.layout().block_index(block).is_none() {
            self.violation(now, key, Violation::BadBlock);
            return;
        }
        if peer.requested.remove(&block).is_some() {
            picker.request_rejected(key, block);
            if peer.requested.is_empty() {
                peer.snub_at = None;
            }
            self.fill_all(now);
        }
    }

    // ---------------------------------------------------------------- uploading

    /// Refuses a request: `reject` to a fast peer, silence otherwise. Refusals while we choke
    /// the peer are counted, and one past the limit disconnects it.
    fn refuse(&mut self, now: Instant, key: PeerKey, b: wire::Block) {
        let limit = self
            .config
            .max_choked_requests
            .max(self.config.max_requests_in);
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if peer.am_choking {
            peer.choked_refusals = peer.choked_refusals.saturating_add(1);
            if peer.choked_refusals > limit {
                self.violation(now, key, Violation::TooManyChokedRequests);
                return;
            }
        }
        if peer.fast() {
            self.send(now, key, Message::Reject(b));
        }
    }

    fn on_request(&mut self, now: Instant, key: PeerKey, b: wire::Block) {
        let Some(p) = &self.picker else {
            self.violation(now, key, Violation::NoMetadata);
            return;
        };
        let n = p.layout().piece_count();
        if b.index >= n {
            self.violation(now, key, Violation::PieceIndex(b.index));
            return;
        }
        let plen = u64::from(p.layout().piece_len(b.index));
        if b.length == 0 || b.length > BLOCK_LEN || u64::from(b.begin) + u64::from(b.length) > plen
        {
            self.violation(now, key, Violation::BadRequest);
            return;
        }
        let have = p.have().get(b.index);
        let max_in = self.config.max_requests_in;
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        // While choked, only allowed-fast pieces, and only within the budget.
        let choked_ok = !peer.am_choking
            || (peer.allowed_fast_out.contains(&b.index)
                && u64::from(b.length) <= peer.allowed_fast_budget);
        let block = from_wire(b);
        match peer.uploads.admit(block, max_in) {
            Admit::Duplicate => {}
            _ if !have || !choked_ok => self.refuse(now, key, b),
            Admit::Refuse => self.refuse(now, key, b),
            Admit::Accept => {
                if peer.am_choking {
                    peer.allowed_fast_budget -= u64::from(b.length);
                }
                peer.uploads.push(block);
                self.actions.push_back(Action::ReadBlock {
                    peer: key,
                    piece: b.index,
                    begin: b.begin,
                    len: b.length,
                });
            }
        }
    }

    fn on_cancel(&mut self, now: Instant, key: PeerKey, b: wire::Block) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if peer.uploads.remove(from_wire(b)) && peer.fast() {
            self.send(now, key, Message::Reject(b));
        }
    }

    /// A block read for an upload ([`Action::ReadBlock`]) finished. Sent as a `piece` unless
    /// the request was cancelled or the peer choked meanwhile. A read error stops the torrent.
    pub fn handle_block_read(
        &mut self,
        now: Instant,
        key: PeerKey,
        piece: u32,
        begin: u32,
        result: Result<Bytes, DiskError>,
    ) {
        self.last_now = now;
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let Some(block) = peer.uploads.take(piece, begin) else {
            return;
        };
        match result {
            Ok(data) if data.len() == block.length as usize => {
                let len = u64::from(block.length);
                peer.upload.add(now, len);
                self.uploaded += len;
                self.upload_meter.add(now, len);
                self.send(
                    now,
                    key,
                    Message::Piece {
                        index: piece,
                        begin,
                        data,
                    },
                );
            }
            Ok(_) => self.fail(
                now,
                TorrentError::DiskRead(DiskError(std::io::ErrorKind::UnexpectedEof)),
            ),
            Err(e) => self.fail(now, TorrentError::DiskRead(e)),
        }
    }

    // ---------------------------------------------------------------- timers

    /// Runs every timer due at `now`: meters, choker, dial backoff, per-peer idle /
    /// keep-alive / snub / PEX timers, metadata snubs, the announcer.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = now;
        if self.running {
            if self.next_tick.is_some_and(|t| t <= now) {
                self.next_tick = Some(now + TICK);
                self.download_meter.handle_timeout(now);
                self.upload_meter.handle_timeout(now);
                for p in self.peers.values_mut() {
                    p.download.handle_timeout(now);
                    p.upload.handle_timeout(now);
                }
                self.webseeds.tick(now);
                // Pieces released by peers (disconnects, snubs, failures) reach idle webseeds
                // here at the latest.
                self.plan_webseeds(now);
            }
            if self.webseeds.poll_timeout().is_some_and(|t| t <= now) {
                self.webseeds.handle_timeout(now);
                self.plan_webseeds(now);
            }
            if self.choker.poll_timeout().is_some_and(|t| t <= now) {
                let infos: Vec<PeerChokeInfo> = self
                    .peers
                    .iter()
                    .map(|(&peer, p)| PeerChokeInfo {
                        peer,
                        interested: p.peer_interested,
                        download_rate: p.download.rate_u64(),
                        upload_rate: p.upload.rate_u64(),
                    })
                    .collect();
                let seeding = self.status == Status::Seeding;
                for (k, d) in self.choker.handle_timeout(now, &infos, seeding) {
                    match d {
                        ChokeDecision::Choke => self.choke(now, k),
                        ChokeDecision::Unchoke => self.unchoke(now, k),
                    }
                }
            }
            self.book.handle_timeout(now);
            self.dial_more(now);
            let idle = self.config.idle_timeout;
            let ka = self.config.keep_alive_interval;
            let due: Vec<PeerKey> = self
                .peers
                .iter()
                .filter(|(_, p)| p.next_deadline(idle, ka) <= now)
                .map(|(k, _)| *k)
                .collect();
            for k in due {
                self.peer_timers(now, k);
            }
        }
        self.announcer.handle_timeout(now);
        self.drain_announcer(now);
    }

    fn peer_timers(&mut self, now: Instant, key: PeerKey) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if p.last_recv + self.config.idle_timeout <= now {
            self.disconnect(now, key, DisconnectReason::TimedOut);
            return;
        }
        if p.last_send + self.config.keep_alive_interval <= now {
            self.send(now, key, Message::KeepAlive);
        }
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if p.snub_at.is_some_and(|t| t <= now) {
            p.snub_at = None;
            if !p.requested.is_empty() {
                // Snubbed (or a fast peer that choked and never rejected): cancel and hand
                // the blocks to others.
                if !p.peer_choking {
                    p.snubbed = true;
                }
                let blocks: Vec<Block> = std::mem::take(&mut p.requested).into_keys().collect();
                if let Some(picker) = self.picker.as_mut() {
                    for b in &blocks {
                        picker.request_timed_out(key, *b);
                    }
                }
                for b in blocks {
                    self.send(now, key, Message::Cancel(to_wire(b)));
                }
                self.fill_all(now);
            }
        }
        self.metadata_timer(now, key);
        self.pex_timer(now, key);
    }

    /// Asserts the machine's invariants (tests and fuzzing): the picker's own, every
    /// peer's outstanding requests equal the picker's, the memory accounting.
    #[cfg(any(test, feature = "test-util"))]
    pub fn check_invariants(&self) {
        if let Some(p) = &self.picker {
            p.check_invariants();
            for (k, peer) in &self.peers {
                let ours: Vec<Block> = peer.requested.keys().copied().collect();
                let theirs: Vec<Block> = p.requests_of(*k).collect();
                assert_eq!(ours, theirs, "requests of {k:?}");
            }
            assert_eq!(
                p.have().count() as usize,
                p.have().iter_ones().count(),
                "bitfield count"
            );
        }
        let mem: u64 = self
            .buffers
            .values()
            .chain(self.verifying.values())
            .map(|b| b.bytes)
            .sum();
        assert_eq!(mem, self.piece_data, "piece data");
        let reserved: u64 = self
            .buffers
            .values()
            .chain(self.verifying.values())
            .map(|b| b.reserved)
            .sum();
        assert_eq!(reserved, self.reserved_memory, "reserved piece memory");
        assert!(self.piece_data <= self.reserved_memory);
        let wanted: u64 = self.peers.values().map(|p| p.memory_wanted).sum();
        assert_eq!(wanted, self.memory_wanted, "piece memory wanted");
        for b in self.buffers.values().chain(self.verifying.values()) {
            let sum: u64 = b.blocks.iter().flatten().map(|(d, _)| d.len() as u64).sum();
            assert_eq!(sum, b.bytes);
        }
        assert!(self.downloaded >= self.piece_data);
        if let Some(p) = &self.picker {
            for i in 0..p.layout().piece_count() {
                assert_eq!(
                    p.is_reserved(i),
                    self.webseeds.holds(i),
                    "webseed hold of {i}"
                );
            }
        }
        if !self.running || self.status != Status::Downloading {
            assert_eq!(
                self.webseeds.active(),
                0,
                "webseeds run only while downloading"
            );
        }
    }

    fn install_info(&mut self, info: Info, bytes: Bytes) {
        let layout = Layout::from_info(&info);
        let mut picker = Picker::new(layout, self.config.picker, self.rng.child());
        for (&k, p) in &self.peers {
            let _ = picker.peer_added(k);
            picker.set_parole(k, self.smart_ban.on_parole(p.info.addr.ip()));
        }
        self.picker = Some(picker);
        self.webseeds.set_info(&info);
        self.info = Some(info);
        self.info_bytes = Some(bytes);
    }

    // ---------------------------------------------------------------- webseeds

    /// Gives idle webseeds ranges (only while Downloading).
    fn plan_webseeds(&mut self, now: Instant) {
        if !self.running || self.status != Status::Downloading || !self.webseeds.wants_work() {
            return;
        }
        let Some(picker) = self.picker.as_mut() else {
            return;
        };
        self.webseeds.plan(picker);
        self.drain_webseeds(now);
    }

    fn stop_webseeds(&mut self, now: Instant) {
        if let Some(picker) = self.picker.as_mut() {
            self.webseeds.stop_all(picker);
            self.drain_webseeds(now);
        }
    }

    /// Turns the planner's outputs into actions and stored blocks.
    fn drain_webseeds(&mut self, now: Instant) {
        while let Some(o) = self.webseeds.poll_output() {
            match o {
                webseed::Output::Request(r) => {
                    self.actions.push_back(Action::WebseedRequest(r));
                }
                webseed::Output::Cancel { source, request } => {
                    self.actions
                        .push_back(Action::WebseedCancel { source, request });
                }
                webseed::Output::Discarded { bytes } => self.wasted += bytes,
                webseed::Output::Block {
                    source,
                    block,
                    data,
                } => self.webseed_block(now, source, block, data),
            }
        }
    }

    /// A whole block from a webseed: stored like a peer's.
    fn webseed_block(&mut self, now: Instant, source: SourceId, block: Block, data: Bytes) {
        let Some(picker) = self.picker.as_mut() else {
            return;
        };
        let len = u64::from(block.length);
        let outcome = picker.block_received(WEBSEED_KEY, block);
        match outcome.received {
            Received::New => {
                // Not held back by the piece-memory limit: the range is already under way.
                let layout = picker.layout();
                let idx = layout.block_index(block).unwrap_or(0) as usize;
                let buf = open_buffer(
                    &mut self.buffers,
                    &mut self.reserved_memory,
                    layout,
                    block.piece,
                );
                if let Some(slot) = buf.blocks.get_mut(idx) {
                    *slot = Some((data, Origin::Webseed(source)));
                    buf.bytes += len;
                    self.piece_data += len;
                }
            }
            Received::Duplicate | Received::Invalid => self.wasted += len,
        }
        let mut others = Vec::new();
        for (other, b) in outcome.cancels {
            if let Some(op) = self.peers.get_mut(&other) {
                op.requested.remove(&b);
                others.push(other);
                self.send(now, other, Message::Cancel(to_wire(b)));
            }
        }
        if outcome.piece_complete {
            self.start_verify(block.piece);
        }
        for o in others {
            self.fill_requests(now, o);
        }
    }

    /// Body bytes of a webseed request ([`Action::WebseedRequest`]), in order. Bytes of a
    /// cancelled or finished request are discarded (counted as wasted).
    pub fn handle_webseed_data(&mut self, now: Instant, request: webseed::RequestId, data: Bytes) {
        self.last_now = now;
        let Some(picker) = self.picker.as_mut() else {
            return;
        };
        let len = data.len() as u64;
        self.downloaded += len;
        self.download_meter.add(now, len);
        let active = self.webseeds.active();
        self.webseeds.handle_data(now, picker, request, data);
        self.drain_webseeds(now);
        if self.webseeds.active() < active {
            // A range finished: the source takes the next one.
            self.plan_webseeds(now);
        }
    }

    /// A webseed request failed: its source is disabled for `webseed-retry-interval` and its
    /// range goes back to the others.
    pub fn handle_webseed_failed(
        &mut self,
        now: Instant,
        request: webseed::RequestId,
        error: WebseedError,
    ) {
        self.last_now = now;
        let Some(picker) = self.picker.as_mut() else {
            return;
        };
        self.webseeds.handle_failure(now, picker, request, error);
        self.drain_webseeds(now);
        self.plan_webseeds(now);
        self.fill_all(now);
    }
}

fn to_wire(b: Block) -> wire::Block {
    wire::Block {
        index: b.piece,
        begin: b.begin,
        length: b.length,
    }
}

fn from_wire(b: wire::Block) -> Block {
    Block {
        piece: b.index,
        begin: b.begin,
        length: b.length,
    }
}

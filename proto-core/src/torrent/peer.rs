//! Per-peer state: choke and interest both ways, what the peer has, fast-extension sets,
//! extension handshake, timers, rates, pipeline, upload queue and PEX/metadata bookkeeping.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;

use super::pex::PexState;
use super::pipeline::Pipeline;
use super::upload::UploadQueue;
use crate::address_book::PeerSource;
use crate::extension::ExtHandshake;
use crate::picker::{Block, PeerKey};
use crate::speed::Meter;
use crate::time::Instant;
use crate::wire::{PeerId, Reserved};

/// Who opened the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// We dialled it ([`Action::Dial`](super::Action::Dial)).
    Outgoing,
    /// It connected to us.
    Incoming,
}

/// A connection that finished its handshake, as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The remote address (for outgoing connections, the address dialled).
    pub addr: SocketAddr,
    /// Who connected.
    pub direction: Direction,
    /// The peer id from its handshake.
    pub peer_id: PeerId,
    /// Its reserved bits (extension protocol, fast, DHT).
    pub reserved: Reserved,
    /// The connection is MSE-encrypted.
    pub encrypted: bool,
}

/// What the peer has, before the picker exists (magnet, no metadata yet).
#[derive(Debug, Clone, Default)]
pub(super) enum PendingHave {
    /// Nothing announced.
    #[default]
    Nothing,
    /// `have all`.
    All,
    /// A raw bitfield (validated once the piece count is known).
    Bits(Bytes),
    /// `have` indices (bounded by `max_pending_haves`).
    Haves(Vec<u32>),
}

/// State of one connected peer.
#[derive(Debug)]
#[allow(clippy::struct_field_names)] // BEP 3 vocabulary: peer_choking, peer_interested
pub(super) struct Peer {
    pub info: PeerInfo,
    /// Where its address came from.
    pub source: PeerSource,
    /// When the handshake finished.
    pub connected_at: Instant,
    /// We choke it (starts true).
    pub am_choking: bool,
    /// We are interested in it.
    pub am_interested: bool,
    /// It chokes us (starts true).
    pub peer_choking: bool,
    /// It is interested in us.
    pub peer_interested: bool,
    /// It sent a bitfield, have-all or have-none (only one is allowed, first).
    pub got_piece_state: bool,
    /// Pieces it has, while the picker does not exist.
    pub pending_have: PendingHave,
    /// Pieces it has (mirrors the picker) — `true` when it has every piece.
    pub is_seed: bool,
    /// Allowed-fast pieces it sent us (bounded).
    pub allowed_fast_in: Vec<u32>,
    /// Allowed-fast pieces we sent it.
    pub allowed_fast_out: Vec<u32>,
    /// Bytes it may still be served through allowed-fast while we choke it (set with
    /// `allowed_fast_out`, [`ALLOWED_FAST_SERVES_PER_PIECE`](super::upload::ALLOWED_FAST_SERVES_PER_PIECE)
    /// times the set's size), so the set cannot be drained over and over.
    pub allowed_fast_budget: u64,
    /// Its requests we refused while choking it, since we last unchoked it (bounded by
    /// `max_choked_requests`, then it is disconnected).
    pub choked_refusals: u32,
    /// Its extension handshake (only the first is honoured).
    pub ext: Option<ExtHandshake>,
    /// When each of our outstanding block requests was sent (mirrors the picker).
    pub requested: BTreeMap<Block, Instant>,
    /// Request depth.
    pub pipeline: Pipeline,
    /// No block since the request timeout.
    pub snubbed: bool,
    /// When the snub timer fires (armed while requests are outstanding).
    pub snub_at: Option<Instant>,
    /// Last message received.
    pub last_recv: Instant,
    /// Last message sent.
    pub last_send: Instant,
    /// Payload received from it.
    pub download: Meter,
    /// Payload sent to it.
    pub upload: Meter,
    /// Incoming requests.
    pub uploads: UploadQueue,
    /// PEX exchange, once started.
    pub pex: Option<PexState>,
    /// Last PEX message accepted from it.
    pub last_pex_in: Option<Instant>,
    /// ut_metadata pieces requested from it, with the time of the request.
    pub metadata_requests: BTreeMap<u32, Instant>,
    /// Metadata source: counts towards `parallel-metadata-downloads` unless snubbed.
    pub metadata_source: bool,
    /// Metadata snub timer.
    pub metadata_snub_at: Option<Instant>,
    /// Metadata source snubbed.
    pub metadata_snubbed: bool,
    /// It rejected one of our ut_metadata requests: not a source again on this connection
    /// (otherwise every reject would draw the next request, a ping-pong without end).
    pub metadata_rejected: bool,
    /// ut_metadata pieces we sent it (bounded by `METADATA_SERVES_PER_PIECE`).
    pub metadata_served: u32,
    /// Bytes of new pieces its last request top-up wanted to start but the piece-memory
    /// limit held back (0: not held back).
    pub memory_wanted: u64,
}

impl Peer {
    pub fn new(info: PeerInfo, source: PeerSource, now: Instant, pipeline: Pipeline) -> Self {
        Peer {
            info,
            source,
            connected_at: now,
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            got_piece_state: false,
            pending_have: PendingHave::Nothing,
            is_seed: false,
            allowed_fast_in: Vec::new(),
            allowed_fast_out: Vec::new(),
            allowed_fast_budget: 0,
            choked_refusals: 0,
            ext: None,
            requested: BTreeMap::new(),
            pipeline,
            snubbed: false,
            snub_at: None,
            last_recv: now,
            last_send: now,
            download: Meter::new(now),
            upload: Meter::new(now),
            uploads: UploadQueue::default(),
            pex: None,
            last_pex_in: None,
            metadata_requests: BTreeMap::new(),
            metadata_source: false,
            metadata_snub_at: None,
            metadata_snubbed: false,
            metadata_rejected: false,
            metadata_served: 0,
            memory_wanted: 0,
        }
    }

    pub fn fast(&self) -> bool {
        self.info.reserved.fast()
    }

    /// The id it wants for extension `name`, if it sent a handshake listing it.
    pub fn ext_id(&self, name: &str) -> Option<u8> {
        self.ext.as_ref().and_then(|e| e.id_of(name))
    }

    /// Its listen address: the dialled address, or its IP with the `p` of its extension
    /// handshake for incoming peers.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        match self.info.direction {
            Direction::Outgoing => Some(self.info.addr),
            Direction::Incoming => self
                .ext
                .as_ref()
                .and_then(|e| e.p)
                .filter(|&p| p != 0)
                .map(|p| SocketAddr::new(self.info.addr.ip(), p)),
        }
    }

    /// The earliest of this peer's deadlines.
    pub fn next_deadline(
        &self,
        idle: std::time::Duration,
        keep_alive: std::time::Duration,
    ) -> Instant {
        let mut t = (self.last_recv + idle).min(self.last_send + keep_alive);
        for d in [
            self.snub_at,
            self.metadata_snub_at,
            self.pex.as_ref().map(PexState::next_at),
        ]
        .into_iter()
        .flatten()
        {
            t = t.min(d);
        }
        t
    }
}

/// One peer as status displays show it (rain's `Peer` RPC object, as far as the machine knows).
#[derive(Debug, Clone, PartialEq)]
pub struct PeerView {
    /// Its key.
    pub key: PeerKey,
    /// Remote address.
    pub addr: SocketAddr,
    /// Who connected.
    pub direction: Direction,
    /// Client name (from the extension handshake `v` or the peer id).
    pub client: String,
    /// Its peer id.
    pub peer_id: PeerId,
    /// Where its address came from ([`PeerSource::Incoming`] for accepted connections).
    pub source: PeerSource,
    /// When the handshake finished.
    pub connected_at: Instant,
    /// It holds an optimistic unchoke slot.
    pub optimistic: bool,
    /// MSE-encrypted.
    pub encrypted: bool,
    /// We choke it.
    pub am_choking: bool,
    /// We are interested.
    pub am_interested: bool,
    /// It chokes us.
    pub peer_choking: bool,
    /// It is interested.
    pub peer_interested: bool,
    /// Snubbed.
    pub snubbed: bool,
    /// It has every piece.
    pub seed: bool,
    /// Blocks requested from it and not received.
    pub requests_out: usize,
    /// Its requests queued with us.
    pub requests_in: usize,
    /// Current pipeline depth.
    pub pipeline_depth: u32,
    /// Download rate from it, bytes/s.
    pub download_speed: u64,
    /// Upload rate to it, bytes/s.
    pub upload_speed: u64,
}

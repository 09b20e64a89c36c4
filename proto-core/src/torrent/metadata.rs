//! Magnet links: fetching the info dictionary with ut_metadata (BEP 9), and serving it.
//!
//! - Sources are peers whose extension handshake lists `ut_metadata` with a `metadata_size`
//!   in `1..=max-metadata-size`, whose IP did not send bad metadata before. At most
//!   `parallel-metadata-downloads` (2) non-snubbed sources are used at once.
//! - Each source is asked for missing pieces that no other source is fetching, up to its
//!   pipeline depth; every data message tops it up. The `request-timeout` snub applies:
//!   a snubbed source's pieces go to others and it stops counting towards the limit; data
//!   clears the snub.
//! - A source that sends a size different from the one being assembled is not used.
//!   A `reject` of a requested piece makes the peer stop being a source for the rest of the
//!   connection (rain closes it); rejects of pieces not requested are ignored. Data that was not
//!   requested, or does not fit, closes the peer.
//! - When every piece is in, the [`MetadataAssembler`] checks the SHA-1. On a mismatch every
//!   peer that contributed is closed and its IP is not used again; the fetch starts over.
//!   Then the info is parsed ([`Info::from_bytes`]); private metadata from a magnet link
//!   stops the torrent (rain's rule), as does a parse error. Otherwise
//!   [`TorrentEvent::MetadataReceived`] fires, peers' pending bitfields are applied, the
//!   allowed-fast sets and PEX start, and downloading begins (or the torrent stops if
//!   `stop_after_metadata`).
//! - Serving: a request from a peer that sent an extension handshake with `ut_metadata` gets
//!   the piece (a slice of the info bytes, no copy) or a `reject` when we lack the metadata,
//!   the piece is out of range, or the peer already got [`METADATA_SERVES_PER_PIECE`] times
//!   the metadata's piece count from us on this connection.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use bytes::Bytes;

use super::peer::PendingHave;
use super::{Torrent, TorrentError, TorrentEvent, Violation};

/// Metadata pieces served to one connection, per piece of the metadata: each once, and once
/// more after a hash failure.
pub const METADATA_SERVES_PER_PIECE: u32 = 2;
use crate::bitfield::Bitfield;
use crate::extension::{MetadataAssembler, MetadataFault, MetadataMessage, name, ut_metadata};
use crate::metainfo::{self, Info};
use crate::picker::PeerKey;
use crate::time::Instant;
use crate::wire::Message;

/// Most IPs remembered as having sent bad metadata.
const MAX_BAD_SOURCES: usize = 256;

/// The magnet fetch in progress.
#[derive(Debug, Default)]
pub(super) struct MetadataFetch {
    assembler: Option<MetadataAssembler>,
    /// Piece → the source it is requested from.
    requested: BTreeMap<u32, PeerKey>,
    /// Sources whose pieces are in the assembler.
    contributors: BTreeSet<PeerKey>,
    /// IPs that sent metadata with a wrong hash.
    bad: BTreeSet<IpAddr>,
}

impl MetadataFetch {
    pub fn peer_removed(&mut self, key: PeerKey) {
        self.requested.retain(|_, k| *k != key);
    }
}

impl Torrent {
    /// Picks sources up to the parallel limit and tops up their requests.
    pub(super) fn metadata_schedule(&mut self, now: Instant) {
        if self.info.is_some() || !self.running {
            return;
        }
        let max = self.config.max_metadata_size;
        let mut active = self
            .peers
            .values()
            .filter(|p| p.metadata_source && !p.metadata_snubbed)
            .count();
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for &k in &keys {
            if active >= self.config.parallel_metadata_downloads {
                break;
            }
            let Some(p) = self.peers.get_mut(&k) else {
                continue;
            };
            let size = p.ext.as_ref().and_then(|e| e.metadata_size);
            let usable = p.ext_id(name::UT_METADATA).is_some()
                && size.is_some_and(|s| s > 0 && s <= max)
                && !p.metadata_source
                && !p.metadata_rejected
                && !self.metadata.bad.contains(&p.info.addr.ip())
                && self
                    .metadata
                    .assembler
                    .as_ref()
                    .is_none_or(|a| Some(a.size() as u64) == size);
            if usable {
                p.metadata_source = true;
                p.metadata_snubbed = false;
                active += 1;
            }
        }
        for k in keys {
            self.metadata_request_more(now, k);
        }
    }

    fn metadata_request_more(&mut self, now: Instant, key: PeerKey) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if !p.metadata_source || p.metadata_snubbed {
            return;
        }
        let (Some(id), Some(size)) = (
            p.ext_id(name::UT_METADATA),
            p.ext.as_ref().and_then(|e| e.metadata_size),
        ) else {
            return;
        };
        if self.metadata.assembler.is_none() {
            let Ok(a) = MetadataAssembler::new(self.info_hash, size, self.config.max_metadata_size)
            else {
                p.metadata_source = false;
                return;
            };
            self.metadata.assembler = Some(a);
        }
        let Some(a) = &self.metadata.assembler else {
            return;
        };
        if a.size() as u64 != size {
            p.metadata_source = false;
            return;
        }
        let depth = p.pipeline.depth(false) as usize;
        let wanted: Vec<u32> = a
            .missing()
            .filter(|i| !self.metadata.requested.contains_key(i))
            .take(depth.saturating_sub(p.metadata_requests.len()))
            .collect();
        if wanted.is_empty() {
            return;
        }
        for &i in &wanted {
            p.metadata_requests.insert(i, now);
            self.metadata.requested.insert(i, key);
        }
        if p.metadata_snub_at.is_none() {
            p.metadata_snub_at = Some(now + self.config.request_timeout);
        }
        for i in wanted {
            let mut payload = Vec::new();
            MetadataMessage::Request { piece: i }.encode(&mut payload);
            self.send(
                now,
                key,
                Message::Extended {
                    id,
                    payload: Bytes::from(payload),
                },
            );
        }
    }

    pub(super) fn metadata_timer(&mut self, now: Instant, key: PeerKey) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if p.metadata_snub_at.is_none_or(|t| t > now) {
            return;
        }
        p.metadata_snub_at = None;
        if p.metadata_requests.is_empty() {
            return;
        }
        p.metadata_snubbed = true;
        p.metadata_requests.clear();
        self.metadata.peer_removed(key);
        self.metadata_schedule(now);
    }

    pub(super) fn on_metadata_message(&mut self, now: Instant, key: PeerKey, payload: &Bytes) {
        let Some(p) = self.peers.get(&key) else {
            return;
        };
        let Some(their_id) = p.ext_id(name::UT_METADATA) else {
            // Before (or without) an extension handshake listing ut_metadata: ignored.
            return;
        };
        let Ok(m) = MetadataMessage::decode(payload) else {
            self.violation(now, key, Violation::BadMetadataMessage);
            return;
        };
        match m {
            MetadataMessage::Request { piece } => {
                let served = p.metadata_served;
                let reply = match &self.info_bytes {
                    // A peer needs each piece once, twice after a hash failure; more is an
                    // upload flood of 16 KiB answers to 30-byte requests.
                    Some(info)
                        if served
                            >= ut_metadata::piece_count(info.len())
                                .saturating_mul(METADATA_SERVES_PER_PIECE) =>
                    {
                        MetadataMessage::Reject { piece }
                    }
                    Some(info) => match ut_metadata::piece_of(info, piece) {
                        Some(slice) => {
                            let start = piece as usize * ut_metadata::PIECE_LEN;
                            MetadataMessage::Data {
                                piece,
                                total_size: info.len() as u64,
                                data: info.slice(start..start + slice.len()),
                            }
                        }
                        None => MetadataMessage::Reject { piece },
                    },
                    None => MetadataMessage::Reject { piece },
                };
                if matches!(reply, MetadataMessage::Data { .. })
                    && let Some(p) = self.peers.get_mut(&key)
                {
                    p.metadata_served += 1;
                }
                let mut out = Vec::new();
                reply.encode(&mut out);
                self.send(
                    now,
                    key,
                    Message::Extended {
                        id: their_id,
                        payload: Bytes::from(out),
                    },
                );
            }
            MetadataMessage::Data {
                piece,
                total_size,
                data,
            } => self.on_metadata_data(now, key, piece, total_size, &data),
            MetadataMessage::Reject { piece } => {
                if let Some(p) = self.peers.get_mut(&key)
                    && p.metadata_requests.remove(&piece).is_some()
                {
                    p.metadata_source = false;
                    p.metadata_rejected = true;
                    p.metadata_requests.clear();
                    p.metadata_snub_at = None;
                    self.metadata.peer_removed(key);
                    self.metadata_schedule(now);
                }
            }
            MetadataMessage::Unknown { .. } => {}
        }
    }

    fn on_metadata_data(
        &mut self,
        now: Instant,
        key: PeerKey,
        piece: u32,
        total: u64,
        data: &[u8],
    ) {
        if self.info.is_some() {
            return;
        }
        let timeout = self.config.request_timeout;
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if p.metadata_requests.remove(&piece).is_none() {
            self.violation(now, key, Violation::BadMetadataMessage);
            return;
        }
        p.metadata_snubbed = false;
        p.metadata_snub_at = (!p.metadata_requests.is_empty()).then_some(now + timeout);
        self.metadata.requested.remove(&piece);
        let Some(a) = self.metadata.assembler.as_mut() else {
            return;
        };
        self.metadata.contributors.insert(key);
        match a.add(piece, total, data) {
            Ok(None) => self.metadata_request_more(now, key),
            Ok(Some(bytes)) => self.metadata_complete(now, bytes),
            Err(MetadataFault::HashMismatch) => {
                self.metadata.assembler = None;
                self.metadata.requested.clear();
                let culprits = std::mem::take(&mut self.metadata.contributors);
                for k in culprits {
                    if let Some(p) = self.peers.get(&k) {
                        if self.metadata.bad.len() < MAX_BAD_SOURCES {
                            self.metadata.bad.insert(p.info.addr.ip());
                        }
                        self.violation(now, k, Violation::Metadata(MetadataFault::HashMismatch));
                    }
                }
                for p in self.peers.values_mut() {
                    p.metadata_requests.clear();
                    p.metadata_snub_at = None;
                }
                self.metadata_schedule(now);
            }
            Err(fault) => self.violation(now, key, Violation::Metadata(fault)),
        }
    }

    fn metadata_complete(&mut self, now: Instant, bytes: Vec<u8>) {
        let info = match Info::from_bytes(&bytes, &metainfo::Limits::default()) {
            Ok(i) => i,
            Err(e) => {
                self.fail(now, TorrentError::Metadata(e));
                return;
            }
        };
        if info.private {
            self.fail(now, TorrentError::PrivateFromMagnet);
            return;
        }
        let bytes = Bytes::from(bytes);
        self.metadata = MetadataFetch {
            bad: std::mem::take(&mut self.metadata.bad),
            ..MetadataFetch::default()
        };
        for p in self.peers.values_mut() {
            p.metadata_source = false;
            p.metadata_requests.clear();
            p.metadata_snub_at = None;
        }
        self.install_info(info, bytes.clone());
        self.event(TorrentEvent::MetadataReceived { info_bytes: bytes });
        if self.stop_after_metadata {
            self.stop(now);
            return;
        }
        let s = self.running_status();
        self.set_status(s);
        self.plan_webseeds(now);
        let n = self.piece_count().unwrap_or(0);
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in keys {
            let Some(peer) = self.peers.get_mut(&k) else {
                continue;
            };
            let pending = std::mem::take(&mut peer.pending_have);
            let mut bad = None;
            if let Some(picker) = self.picker.as_mut() {
                match pending {
                    PendingHave::Nothing => {}
                    PendingHave::All => {
                        picker.peer_have_all(k);
                        peer.is_seed = true;
                    }
                    PendingHave::Bits(b) => match Bitfield::from_bytes(&b, n) {
                        Ok(bits) => {
                            picker.peer_bitfield(k, &bits);
                            peer.is_seed = bits.all();
                        }
                        Err(_) => bad = Some(Violation::BitfieldLength),
                    },
                    PendingHave::Haves(v) => {
                        for i in v {
                            if i >= n {
                                bad = Some(Violation::PieceIndex(i));
                                break;
                            }
                            picker.peer_has(k, i);
                        }
                    }
                }
            }
            if let Some(v) = bad {
                self.violation(now, k, v);
                continue;
            }
            self.send_allowed_fast(now, k);
            self.maybe_start_pex(now, k);
            self.update_interest(now, k);
            self.fill_requests(now, k);
        }
    }
}

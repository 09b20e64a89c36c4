//! Peer exchange (BEP 11) bookkeeping for one peer.
//!
//! Sending: every `pex_interval` (60 s; the first message right after PEX starts) the peer gets
//! the difference between the listen addresses of our current peers and what we told it
//! before, at most `max_pex_peers` (50) added and 50 dropped per message; the rest waits for
//! the next message. Nothing is sent when nothing changed. Never for private torrents.
//! (rain sends an unbounded first message and never starts PEX for peers whose handshake came
//! before magnet metadata; we bound every message and start PEX once metadata arrives.)
//!
//! Receiving: only `added` entries are taken (rain also dials `dropped` ones), at most 50 per
//! message, and a message arriving sooner than `pex_min_incoming_interval` after the last one
//! accepted from that peer is ignored, so a flooding peer adds at most 50 addresses per
//! interval.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use crate::extension::{PexFlags, PexMessage, PexPeer};
use crate::time::Instant;

/// What we told one peer.
#[derive(Debug, Clone)]
pub(super) struct PexState {
    told: BTreeSet<SocketAddr>,
    next: Instant,
}

impl PexState {
    /// PEX starting now: the first message is due at once.
    pub fn new(now: Instant) -> Self {
        PexState {
            told: BTreeSet::new(),
            next: now,
        }
    }

    pub fn next_at(&self) -> Instant {
        self.next
    }

    /// If due, the next message given our current peers (`current`, excluding the
    /// recipient), and schedules the following one.
    pub fn poll(
        &mut self,
        now: Instant,
        current: &BTreeSet<SocketAddr>,
        interval: Duration,
        max: usize,
    ) -> Option<PexMessage> {
        if now < self.next {
            return None;
        }
        self.next = now + interval;
        let added: Vec<PexPeer> = current
            .difference(&self.told)
            .take(max)
            .map(|&addr| PexPeer {
                addr,
                flags: PexFlags(PexFlags::CONNECTABLE),
            })
            .collect();
        let dropped: Vec<SocketAddr> = self.told.difference(current).take(max).copied().collect();
        if added.is_empty() && dropped.is_empty() {
            return None;
        }
        for p in &added {
            self.told.insert(p.addr);
        }
        for a in &dropped {
            self.told.remove(a);
        }
        Some(PexMessage { added, dropped })
    }
}

use bytes::Bytes;

use super::Torrent;
use crate::address_book::PeerSource;
use crate::extension::{PexLimits, name};
use crate::picker::PeerKey;
use crate::wire::Message;

impl Torrent {
    fn pex_allowed(&self) -> bool {
        self.pex_advertised() && self.info.is_some()
    }

    /// Whether our extension handshake lists ut_pex: PEX is on and the torrent is not private
    /// (BEP 27; a magnet's metadata is unknown yet, and private metadata from a magnet link
    /// stops the torrent).
    pub(super) fn pex_advertised(&self) -> bool {
        self.config.pex_enabled && !self.is_private()
    }

    /// Starts PEX with `key` if both sides may (its handshake lists ut_pex).
    pub(super) fn maybe_start_pex(&mut self, now: Instant, key: PeerKey) {
        if !self.pex_allowed() {
            return;
        }
        if let Some(p) = self.peers.get_mut(&key)
            && p.pex.is_none()
            && p.ext_id(name::UT_PEX).is_some()
        {
            p.pex = Some(PexState::new(now));
            self.pex_timer(now, key);
        }
    }

    /// Sends `key` its PEX delta if due.
    pub(super) fn pex_timer(&mut self, now: Instant, key: PeerKey) {
        if self
            .peers
            .get(&key)
            .is_none_or(|p| p.pex.as_ref().is_none_or(|s| s.next_at() > now))
        {
            return;
        }
        let current: BTreeSet<SocketAddr> = self
            .peers
            .iter()
            .filter(|(k, _)| **k != key)
            .filter_map(|(_, p)| p.listen_addr())
            .collect();
        let (interval, max) = (self.config.pex_interval, self.config.max_pex_peers);
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        let Some(id) = p.ext_id(name::UT_PEX) else {
            return;
        };
        let Some(msg) = p
            .pex
            .as_mut()
            .and_then(|s| s.poll(now, &current, interval, max))
        else {
            return;
        };
        let mut payload = Vec::new();
        if msg.encode(&mut payload).is_ok() {
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

    /// A PEX message from `key`: its `added` peers go to the address book, bounded.
    pub(super) fn on_pex(&mut self, now: Instant, key: PeerKey, payload: &[u8]) {
        if !self.pex_allowed() {
            return;
        }
        let min_gap = self.config.pex_min_incoming_interval;
        let limits = PexLimits {
            max_peers: self.config.max_pex_peers,
            ..PexLimits::default()
        };
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if p.last_pex_in.is_some_and(|t| now < t + min_gap) {
            return;
        }
        // rain logs and ignores malformed lists.
        let Ok(m) = crate::extension::PexMessage::decode(payload, &limits) else {
            return;
        };
        p.last_pex_in = Some(now);
        for peer in m.added.into_iter().take(limits.max_peers) {
            self.add_peer_addr(now, peer.addr, PeerSource::Pex);
        }
    }
}

//! Serving uploads: the per-peer queue of accepted requests (rain-behaviour §6.4).
//!
//! An accepted request becomes a [`ReadBlock`](super::Action::ReadBlock) at once and stays
//! queued until its data comes back ([`Torrent::handle_block_read`](super::Torrent::handle_block_read)),
//! when it is sent as a `piece` message unless it was cancelled or the peer was choked in
//! between. The queue holds at most `max-requests-in` requests.
//!
//! While we choke a peer, only requests for its allowed-fast pieces are served, and only up to
//! [`ALLOWED_FAST_SERVES_PER_PIECE`] times the bytes of its allowed-fast set per connection;
//! further requests are refused like any other choked request. Every request refused while
//! we choke a peer counts, and past `max_choked_requests` (300, and at least
//! `max-requests-in`) since our last unchoke the peer is disconnected
//! ([`Violation::TooManyChokedRequests`](super::Violation::TooManyChokedRequests)).
//! A request repeating one still queued is ignored.
//!
//! A request repeating one already served is served again. rain rejects it, but rain takes a
//! piece from one peer only; here a piece's blocks come from several peers, and when one of
//! them sent garbage the honest others must serve their blocks again.

use std::collections::BTreeSet;

use crate::picker::Block;

/// How many times a choked peer may be served its allowed-fast set's bytes per connection:
/// each piece once, and once more after a hash failure (BEP 6 fast pieces are a bootstrap,
/// not a way around the choker).
pub const ALLOWED_FAST_SERVES_PER_PIECE: u64 = 2;

/// What to do with an incoming request, in rain's order of checks (after validation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admit {
    /// Queue it and read the block.
    Accept,
    /// Refuse it: `reject` to a fast peer, silence otherwise.
    Refuse,
    /// Already queued: ignore.
    Duplicate,
}

/// Accepted requests of one peer.
#[derive(Debug, Clone, Default)]
pub(super) struct UploadQueue {
    queued: BTreeSet<Block>,
}

impl UploadQueue {
    pub fn len(&self) -> usize {
        self.queued.len()
    }

    pub fn admit(&self, b: Block, max_requests_in: u32) -> Admit {
        if self.queued.contains(&b) {
            Admit::Duplicate
        } else if self.queued.len() >= max_requests_in as usize {
            Admit::Refuse
        } else {
            Admit::Accept
        }
    }

    pub fn push(&mut self, b: Block) {
        self.queued.insert(b);
    }

    /// Removes a queued request; true if it was queued.
    pub fn remove(&mut self, b: Block) -> bool {
        self.queued.remove(&b)
    }

    /// Takes the queued request for `piece`/`begin`, if any.
    pub fn take(&mut self, piece: u32, begin: u32) -> Option<Block> {
        let b = self
            .queued
            .range(
                Block {
                    piece,
                    begin,
                    length: 0,
                }..,
            )
            .next()
            .copied()
            .filter(|b| b.piece == piece && b.begin == begin)?;
        self.queued.remove(&b);
        Some(b)
    }

    /// Drops every queued request (we choked the peer) and returns them.
    pub fn clear(&mut self) -> Vec<Block> {
        std::mem::take(&mut self.queued).into_iter().collect()
    }
}

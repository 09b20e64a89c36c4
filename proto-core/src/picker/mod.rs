//! The piece picker of one torrent: which blocks to request from which peer.
//!
//! # What it decides
//!
//! [`Picker::pick`] returns up to `max_blocks` 16 KiB [`Block`]s for one peer, in this order:
//!
//! 1. **Choked:** only pieces from the peer's allowed-fast set (BEP 6), and nothing else.
//! 2. **Partial pieces first:** open pieces (some blocks requested or received, some still
//!    missing) that the peer has, lowest index first, so started pieces finish quickly and
//!    piece memory stays small.
//! 3. **New pieces:** one at a time until the budget is used. A peer may work on several pieces
//!    at once (rain holds one piece per peer, which starves fast links).
//!    - *Sequential mode:* lowest index first (optionally the first and last piece ranges of
//!      every file first: rain's "file edges", `max(1, min(size / 100, 8 MiB))` bytes).
//!    - *Random first:* until [`RANDOM_FIRST_PIECES`] pieces are verified, a random piece the
//!      peer has, so we quickly hold something to trade.
//!    - *Rarest first* otherwise: the lowest availability, ties broken at random (rain sorts
//!      without a tie-break). High-priority pieces always come before normal ones.
//! 4. **Endgame:** when no wanted block is left unrequested anywhere, blocks already requested
//!    from others are requested again, those with the fewest requesters first, up to
//!    `endgame_max_duplicate_downloads` requesters per block. Endgame is not sticky: a failed
//!    piece ends it. When a block arrives, [`BlockOutcome::cancels`] lists the other peers
//!    that still have it outstanding.
//!
//! **Parole** ([`Picker::set_parole`]): a peer suspected of corrupt data takes only untouched
//! pieces, holds each alone (no other peer gets its blocks, not even in endgame) and does no
//! endgame itself. A piece held alone is shared again when its holder leaves parole, leaves,
//! has a request of it rejected or timed out, or has no more of its blocks requested.
//!
//! File priorities ([`FilePriority`]): a piece's priority is the highest of the non-padding files
//! it overlaps, so a piece shared by a skipped and a wanted file is still downloaded. Skipped
//! pieces are never picked (requests already in flight for them may still arrive and count).
//!
//! # Piece states (each piece is in exactly one)
//!
//! | state      | meaning                                                        | kept in        |
//! |------------|----------------------------------------------------------------|----------------|
//! | `Have`     | verified                                                       | `have` bitfield|
//! | `Pending`  | every block received, waiting for the hash check               | `partial`      |
//! | `Queued`   | wanted, untouched (no block requested or received)             | rarity queue   |
//! | `Open`     | wanted, started, at least one block neither requested nor received | `open` set |
//! | `Full`     | wanted, every block requested or received, not all received    | `full` set     |
//! | `Reserved` | wanted, held by a webseed: never picked for a peer             | `reserved` bits|
//! | `Idle`     | skipped (or padding-only): never picked                        | —              |
//!
//! Transitions: `Queued → Open/Full` on pick; `Open ↔ Full` as requests are made and released;
//! `Open/Full → Pending` when the last block arrives; `Pending → Have` on
//! [`Picker::piece_verified`]; `Pending → Queued` on [`Picker::piece_failed`] (all blocks back to
//! missing); any state `↔ Idle` on priority changes; a wanted piece not yet `Pending` is
//! `Reserved` while a webseed holds it ([`Picker::set_reserved`]). One function, `refile`, computes a piece's
//! state from its data and moves it between containers, and every mutation calls it.
//!
//! # Invariants (checked by `check_invariants` in the proptest suite)
//!
//! - `availability(i)` = number of peers whose bitfield has `i`, plus peers that sent have-all
//!   (kept as one `seeds` counter, so a seed joining costs O(1)).
//! - A block is in a peer's request set iff that peer is among the block's requesters; a
//!   received block has no requesters; no peer appears twice among a block's requesters.
//! - `missing` of a partial piece = its blocks neither received nor requested.
//! - Outside endgame a pick never returns a block that already has a requester.
//! - Never picked: a piece we have or are verifying, a piece the peer lacks, a skipped piece.
//! - A peer has at most `max_requests_per_peer` blocks outstanding; a block at most
//!   `endgame_max_duplicate_downloads` requesters.
//!
//! # Complexity (n pieces, b buckets ≤ peers + 1, k pieces a peer has)
//!
//! - have / lose a peer's piece: O(1) (bucket boundary swap); bitfield: O(k); have-all: O(1).
//! - pick: partial pieces O(open) + per new piece O(probes) with at most 128 queue probes before
//!   an O(n / 64) word scan of `peer ∧ queued`; taking blocks is O(blocks of the piece).
//! - block received / rejected: O(log peers + log open).
//! - piece enters or leaves the queue: O(b).
//! - file priority change: O(pieces of the file · b).

mod layout;
mod rarity;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

pub use layout::{BLOCK_LEN, Block, FileSpan, Layout, Segment, Segments};

use crate::bitfield::Bitfield;
use crate::rng::{Rng, Seed};
use rarity::{RarityQueue, TieBreak};

/// Pieces picked at random (instead of rarest first) until this many are verified.
pub const RANDOM_FIRST_PIECES: u32 = 4;

/// Queue positions examined for a rarest-first pick before falling back to a word scan.
const MAX_QUEUE_PROBES: usize = 128;

/// Random probes for a random-first pick before falling back to rarest first.
const MAX_RANDOM_PROBES: usize = 32;

/// A peer, as the picker knows it: a stable id the owner assigns (never reused while the peer
/// is known to the picker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerKey(pub u32);

/// Download priority of a file (selective download).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum FilePriority {
    /// Not downloaded.
    Skip,
    /// Downloaded, rarest first.
    #[default]
    Normal,
    /// Downloaded before every normal piece.
    High,
}

/// Limits and switches of the picker (rain's config keys in parentheses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PickerConfig {
    /// Most requesters of one block in endgame (`endgame-max-duplicate-downloads`, 20).
    pub endgame_max_duplicate_downloads: u32,
    /// Most blocks outstanding per peer, whatever `pick` is asked for (`max-requests-out`, 250).
    pub max_requests_per_peer: u32,
    /// Most peers known at once; [`Picker::peer_added`] refuses more.
    pub max_peers: usize,
    /// Pieces picked at random before rarest first ([`RANDOM_FIRST_PIECES`]).
    pub random_first_pieces: u32,
    /// In sequential mode, fetch the first and last bytes of every file first.
    pub sequential_file_edges_first: bool,
}

impl Default for PickerConfig {
    fn default() -> Self {
        PickerConfig {
            endgame_max_duplicate_downloads: 20,
            max_requests_per_peer: 250,
            max_peers: 1000,
            random_first_pieces: RANDOM_FIRST_PIECES,
            sequential_file_edges_first: false,
        }
    }
}

/// Caller misuse of the picker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PickerError {
    /// [`Picker::peer_added`] with a key already in use.
    #[error("peer {0:?} is already known")]
    DuplicatePeer(PeerKey),
    /// [`Picker::peer_added`] beyond [`PickerConfig::max_peers`].
    #[error("more than {0} peers")]
    TooManyPeers(usize),
    /// A file index past the torrent's files.
    #[error("no file {0}")]
    NoSuchFile(usize),
}

/// What a received block was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// New data for a missing block: store it.
    New,
    /// The block was already received, verified or is being verified: wasted bytes.
    Duplicate,
    /// Not a block of this torrent (bad index, offset or length): a peer fault.
    Invalid,
}

/// The result of [`Picker::block_received`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockOutcome {
    /// What the block was.
    pub received: Received,
    /// Other peers that still had this block requested: send them `cancel`. Their requests are
    /// already forgotten by the picker.
    pub cancels: Vec<(PeerKey, Block)>,
    /// Every block of the piece is now received: verify it, then call
    /// [`Picker::piece_verified`] or [`Picker::piece_failed`].
    pub piece_complete: bool,
}

/// The state of one piece, for status displays and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceState {
    /// Verified.
    Have,
    /// Every block received; waiting for the hash check.
    Pending,
    /// Wanted and not started.
    Queued,
    /// Started; some blocks neither requested nor received.
    Open,
    /// Every block requested or received.
    Full,
    /// Held by a webseed: never picked for a peer until released.
    Reserved,
    /// Skipped, or made only of padding: never picked.
    Idle,
}

/// The peers that requested one block: one inline, more only in endgame.
#[derive(Debug, Clone, Default)]
struct Requesters {
    first: Option<PeerKey>,
    more: Vec<PeerKey>,
}

impl Requesters {
    fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.more.len()
    }

    fn contains(&self, p: PeerKey) -> bool {
        self.first == Some(p) || self.more.contains(&p)
    }

    fn push(&mut self, p: PeerKey) {
        if self.first.is_none() {
            self.first = Some(p);
        } else {
            self.more.push(p);
        }
    }

    fn remove(&mut self, p: PeerKey) -> bool {
        if self.first == Some(p) {
            self.first = if self.more.is_empty() {
                None
            } else {
                Some(self.more.swap_remove(0))
            };
            true
        } else if let Some(k) = self.more.iter().position(|&q| q == p) {
            self.more.swap_remove(k);
            true
        } else {
            false
        }
    }

    fn take(&mut self) -> impl Iterator<Item = PeerKey> + use<> {
        let first = self.first.take();
        first.into_iter().chain(std::mem::take(&mut self.more))
    }

    fn iter(&self) -> impl Iterator<Item = PeerKey> + '_ {
        self.first.iter().copied().chain(self.more.iter().copied())
    }
}

#[derive(Debug, Clone, Default)]
struct Slot {
    received: bool,
    requesters: Requesters,
}

/// Per-block state of a started piece.
#[derive(Debug, Clone)]
struct Partial {
    blocks: Vec<Slot>,
    /// Blocks neither received nor requested.
    missing: u32,
    received: u32,
    /// No missing block below this index.
    hint: u32,
    /// The peer on parole this piece is exclusive to ([`Picker::set_parole`]).
    owner: Option<PeerKey>,
}

#[derive(Debug, Clone)]
enum Has {
    Bits(Bitfield),
    All,
}

impl Has {
    #[inline]
    fn get(&self, i: u32) -> bool {
        match self {
            Has::Bits(b) => b.get(i),
            Has::All => true,
        }
    }

    #[inline]
    fn word(&self, k: usize) -> u64 {
        match self {
            Has::Bits(b) => b.words()[k],
            Has::All => u64::MAX,
        }
    }
}

#[derive(Debug, Clone)]
struct Peer {
    has: Has,
    /// Outstanding requests as `(piece, block index)`, at most `max_requests_per_peer`.
    requests: BTreeSet<(u32, u32)>,
    /// Suspected of sending corrupt data: downloads whole pieces alone.
    parole: bool,
}

/// Queue class of a wanted piece: high priority pieces are queued apart and always first.
const HIGH: usize = 0;
const NORMAL: usize = 1;

/// The piece picker. See the module documentation for the rules and invariants.
#[derive(Debug, Clone)]
pub struct Picker {
    layout: Layout,
    config: PickerConfig,
    tb: TieBreak,
    have: Bitfield,
    /// Availability from bitfield peers; have-all peers are counted in `seeds`.
    avail: Vec<u32>,
    seeds: u32,
    file_prio: Vec<FilePriority>,
    prio: Vec<FilePriority>,
    high: Bitfield,
    edges: Bitfield,
    /// Pieces held by a webseed ([`Picker::set_reserved`]).
    reserved: Bitfield,
    loc: Vec<PieceState>,
    queues: [RarityQueue; 2],
    /// Pieces in either queue (for word scans).
    queued: Bitfield,
    open: BTreeSet<u32>,
    full: BTreeSet<u32>,
    partial: BTreeMap<u32, Partial>,
    peers: BTreeMap<PeerKey, Peer>,
    sequential: bool,
    scratch: Vec<u32>,
}

impl Picker {
    /// A picker for a torrent with nothing downloaded; every file at normal priority.
    pub fn new(layout: Layout, config: PickerConfig, seed: Seed) -> Self {
        let n = layout.piece_count();
        let mut rng = Rng::new(seed);
        let mut edges = Bitfield::new(n);
        for (_, f) in layout.files() {
            if f.length == 0 {
                continue;
            }
            let edge = (f.length / 100).clamp(1, 8 * 1024 * 1024);
            for (o, l) in [(f.offset, edge), (f.offset + f.length - edge, edge)] {
                if let Some((a, b)) = layout.pieces_of(o, l) {
                    (a..=b).for_each(|p| {
                        edges.set(p);
                    });
                }
            }
        }
        let mut picker = Picker {
            config,
            tb: TieBreak::new(rng.next_u64()),
            have: Bitfield::new(n),
            avail: vec![0; n as usize],
            seeds: 0,
            file_prio: vec![FilePriority::Normal; layout.file_count()],
            prio: vec![FilePriority::Normal; n as usize],
            high: Bitfield::new(n),
            edges,
            reserved: Bitfield::new(n),
            loc: vec![PieceState::Idle; n as usize],
            queues: [RarityQueue::new(n), RarityQueue::new(n)],
            queued: Bitfield::new(n),
            open: BTreeSet::new(),
            full: BTreeSet::new(),
            partial: BTreeMap::new(),
            peers: BTreeMap::new(),
            sequential: false,
            scratch: Vec::new(),
            layout,
        };
        // Pieces overlapping no real file (padding only) are never wanted.
        for i in 0..n {
            if picker.layout.files_of(i).next().is_none() {
                picker.prio[i as usize] = FilePriority::Skip;
            }
        }
        // Insert in a shuffled order so the initial bucket is a random permutation.
        let mut order: Vec<u32> = (0..n).collect();
        rng.shuffle(&mut order);
        for i in order {
            picker.refile(i);
        }
        picker
    }

    /// The torrent's geometry.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The verified pieces.
    pub fn have(&self) -> &Bitfield {
        &self.have
    }

    /// Number of peers that have piece `i` (bitfield peers plus have-all peers).
    pub fn availability(&self, i: u32) -> u32 {
        self.avail.get(i as usize).map_or(0, |a| a + self.seeds)
    }

    /// The state of piece `i` (`Idle` past the end).
    pub fn piece_state(&self, i: u32) -> PieceState {
        self.loc
            .get(i as usize)
            .copied()
            .unwrap_or(PieceState::Idle)
    }

    /// The effective priority of piece `i` (the highest of the files it overlaps).
    pub fn piece_priority(&self, i: u32) -> FilePriority {
        self.prio
            .get(i as usize)
            .copied()
            .unwrap_or(FilePriority::Skip)
    }

    /// True when every wanted block not yet received is requested from someone, so picks
    /// duplicate requests.
    pub fn in_endgame(&self) -> bool {
        self.queued.none() && self.open.is_empty() && !self.full.is_empty()
    }

    /// True if every wanted piece is verified (selective download finished).
    pub fn is_complete(&self) -> bool {
        self.loc
            .iter()
            .all(|s| matches!(s, PieceState::Have | PieceState::Idle))
    }

    /// Number of peers known.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Blocks outstanding from `peer`.
    pub fn outstanding(&self, peer: PeerKey) -> usize {
        self.peers.get(&peer).map_or(0, |p| p.requests.len())
    }

    /// The blocks outstanding from `peer`, ascending.
    pub fn requests_of(&self, peer: PeerKey) -> impl Iterator<Item = Block> + '_ {
        self.peers
            .get(&peer)
            .into_iter()
            .flat_map(|p| p.requests.iter())
            .map(|&(i, b)| self.layout.block(i, b))
    }

    /// The peers `block` is outstanding from.
    pub fn requesters(&self, block: Block) -> Vec<PeerKey> {
        let Some(idx) = self.layout.block_index(block) else {
            return Vec::new();
        };
        self.partial
            .get(&block.piece)
            .map(|p| p.blocks[idx as usize].requesters.iter().collect())
            .unwrap_or_default()
    }

    /// True if `peer` has a wanted piece we have not verified (BEP 3 interest).
    pub fn is_interesting(&self, peer: PeerKey) -> bool {
        let Some(p) = self.peers.get(&peer) else {
            return false;
        };
        let words = self.have.words();
        (0..words.len()).any(|k| {
            let mut want = !words[k] & p.has.word(k);
            while want != 0 {
                let bit = want.leading_zeros();
                let i = k as u32 * 64 + bit;
                if i < self.layout.piece_count() && self.prio[i as usize] != FilePriority::Skip {
                    return true;
                }
                want &= !(1u64 << (63 - bit));
            }
            false
        })
    }

    // ---- peers ----

    /// A new peer with no pieces yet.
    pub fn peer_added(&mut self, peer: PeerKey) -> Result<(), PickerError> {
        if self.peers.contains_key(&peer) {
            return Err(PickerError::DuplicatePeer(peer));
        }
        if self.peers.len() >= self.config.max_peers {
            return Err(PickerError::TooManyPeers(self.config.max_peers));
        }
        let has = Has::Bits(Bitfield::new(self.layout.piece_count()));
        self.peers.insert(
            peer,
            Peer {
                has,
                requests: BTreeSet::new(),
                parole: false,
            },
        );
        Ok(())
    }

    /// Puts `peer` on parole (or takes it off): a peer suspected of sending corrupt data
    /// downloads only whole pieces that nobody else touches, so a piece it spoils has a single
    /// sender and names the culprit for certain (libtorrent's parole mode). Pieces it holds
    /// alone are shared again when it leaves parole.
    pub fn set_parole(&mut self, peer: PeerKey, on: bool) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.parole = on;
        if !on {
            self.disown(peer);
        }
    }

    /// True if `peer` is on parole.
    pub fn on_parole(&self, peer: PeerKey) -> bool {
        self.peers.get(&peer).is_some_and(|p| p.parole)
    }

    /// Pieces held alone by `peer` are open to everyone again.
    fn disown(&mut self, peer: PeerKey) {
        for part in self.partial.values_mut() {
            if part.owner == Some(peer) {
                part.owner = None;
            }
        }
    }

    /// True if `peer` may take blocks of started piece `i`: a peer on parole only of the
    /// pieces it holds alone, any other peer only of pieces nobody holds alone.
    fn may_share(&self, peer: PeerKey, parole: bool, i: u32) -> bool {
        let owner = self.partial.get(&i).and_then(|p| p.owner);
        if parole {
            owner == Some(peer) || !self.partial.contains_key(&i)
        } else {
            owner.is_none()
        }
    }

    /// `peer` announced piece `i` (`have`). Unknown peers and indices are ignored.
    pub fn peer_has(&mut self, peer: PeerKey, i: u32) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if let Has::Bits(b) = &mut p.has
            && b.set(i)
        {
            self.avail_inc(i);
        }
    }

    /// `peer` sent its bitfield (replacing whatever it announced before). A bitfield of the
    /// wrong length is ignored (the wire layer validates it with
    /// [`Bitfield::from_bytes`]).
    pub fn peer_bitfield(&mut self, peer: PeerKey, bits: &Bitfield) {
        if bits.len() != self.layout.piece_count() || !self.peers.contains_key(&peer) {
            return;
        }
        self.forget_has(peer);
        for i in bits.iter_ones() {
            self.avail_inc(i);
        }
        if let Some(p) = self.peers.get_mut(&peer) {
            p.has = Has::Bits(bits.clone());
        }
    }

    /// `peer` sent have-all (BEP 6). O(1).
    pub fn peer_have_all(&mut self, peer: PeerKey) {
        if !self.peers.contains_key(&peer) {
            return;
        }
        self.forget_has(peer);
        self.seeds += 1;
        if let Some(p) = self.peers.get_mut(&peer) {
            p.has = Has::All;
        }
    }

    /// `peer` sent have-none (BEP 6).
    pub fn peer_have_none(&mut self, peer: PeerKey) {
        if !self.peers.contains_key(&peer) {
            return;
        }
        self.forget_has(peer);
    }

    /// True if `peer` has piece `i`.
    pub fn peer_has_piece(&self, peer: PeerKey, i: u32) -> bool {
        i < self.layout.piece_count() && self.peers.get(&peer).is_some_and(|p| p.has.get(i))
    }

    /// `peer` is gone: its availability and its outstanding requests are forgotten (the blocks
    /// become missing again unless someone else requested them).
    pub fn peer_removed(&mut self, peer: PeerKey) {
        if !self.peers.contains_key(&peer) {
            return;
        }
        self.forget_has(peer);
        self.disown(peer);
        let Some(p) = self.peers.remove(&peer) else {
            return;
        };
        for (i, b) in p.requests {
            self.unrequest(peer, i, b);
        }
    }

    /// Removes `peer`'s contribution to availability and leaves it with no pieces.
    fn forget_has(&mut self, peer: PeerKey) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let old = std::mem::replace(
            &mut p.has,
            Has::Bits(Bitfield::new(self.layout.piece_count())),
        );
        match old {
            Has::All => self.seeds -= 1,
            Has::Bits(b) => {
                for i in b.iter_ones() {
                    self.avail_dec(i);
                }
            }
        }
    }

    fn avail_inc(&mut self, i: u32) {
        let a = self.avail[i as usize];
        if self.loc[i as usize] == PieceState::Queued {
            let q = self.queue_of(i);
            self.queues[q].increment(i, a, &mut self.tb);
        }
        self.avail[i as usize] = a + 1;
    }

    fn avail_dec(&mut self, i: u32) {
        let a = self.avail[i as usize];
        if self.loc[i as usize] == PieceState::Queued {
            let q = self.queue_of(i);
            self.queues[q].decrement(i, a, &mut self.tb);
        }
        self.avail[i as usize] = a - 1;
    }

    fn queue_of(&self, i: u32) -> usize {
        if self.queues[HIGH].contains(i) {
            HIGH
        } else {
            NORMAL
        }
    }

    // ---- priorities ----

    /// Sets the priority of file `file` (an index into the torrent's files; padding files
    /// accept any value and change nothing).
    pub fn set_file_priority(
        &mut self,
        file: usize,
        prio: FilePriority,
    ) -> Result<(), PickerError> {
        if file >= self.layout.file_count() {
            return Err(PickerError::NoSuchFile(file));
        }
        self.file_prio[file] = prio;
        let Some(span) = self.layout.file(file) else {
            return Ok(());
        };
        let Some((a, b)) = self.layout.pieces_of(span.offset, span.length) else {
            return Ok(());
        };
        for i in a..=b {
            let p = self
                .layout
                .files_of(i)
                .map(|f| self.file_prio[f])
                .max()
                .unwrap_or(FilePriority::Skip);
            self.prio[i as usize] = p;
            if p == FilePriority::High {
                self.high.set(i);
            } else {
                self.high.clear(i);
            }
            self.refile(i);
        }
        Ok(())
    }

    // ---- webseed reservations ----

    /// Marks piece `i` as held by a webseed (`on`) or releases it. A held piece is never
    /// picked for a peer (not even in endgame); blocks of it that arrive are still accepted.
    /// Indices past the end are ignored.
    pub fn set_reserved(&mut self, i: u32, on: bool) {
        if i >= self.layout.piece_count() {
            return;
        }
        let changed = if on {
            self.reserved.set(i)
        } else {
            self.reserved.clear(i)
        };
        if changed {
            self.refile(i);
        }
    }

    /// True if piece `i` is held by a webseed.
    pub fn is_reserved(&self, i: u32) -> bool {
        self.reserved.get(i)
    }

    /// True if piece `i` is free for a webseed to fetch: wanted, neither verified nor being
    /// verified nor reserved, and no block of it requested from a peer (blocks already
    /// received are allowed: they arrive again as duplicates). O(blocks of the piece).
    pub fn is_unclaimed(&self, i: u32) -> bool {
        match self.piece_state(i) {
            PieceState::Queued => true,
            PieceState::Open => self
                .partial
                .get(&i)
                .is_some_and(|p| p.blocks.iter().all(|s| s.requesters.is_empty())),
            _ => false,
        }
    }

    /// Switches sequential mode (lowest index first) on or off.
    pub fn set_sequential(&mut self, on: bool) {
        self.sequential = on;
    }

    /// True in sequential mode.
    pub fn is_sequential(&self) -> bool {
        self.sequential
    }

    // ---- state bookkeeping ----

    fn target_state(&self, i: u32) -> PieceState {
        let wanted = self.prio[i as usize] != FilePriority::Skip;
        if self.have.get(i) {
            return PieceState::Have;
        }
        match self.partial.get(&i) {
            Some(p) if p.received as usize == p.blocks.len() => PieceState::Pending,
            Some(_) if !wanted => PieceState::Idle,
            Some(_) if self.reserved.get(i) => PieceState::Reserved,
            Some(p) if p.missing > 0 => PieceState::Open,
            Some(_) => PieceState::Full,
            None if !wanted || self.layout.block_count(i) == 0 => PieceState::Idle,
            None if self.reserved.get(i) => PieceState::Reserved,
            None => PieceState::Queued,
        }
    }

    /// Moves piece `i` to the container its state calls for.
    fn refile(&mut self, i: u32) {
        let new = self.target_state(i);
        let old = self.loc[i as usize];
        let class = if self.prio[i as usize] == FilePriority::High {
            HIGH
        } else {
            NORMAL
        };
        if old == new && (new != PieceState::Queued || self.queues[class].contains(i)) {
            return;
        }
        match old {
            PieceState::Queued => {
                let q = self.queue_of(i);
                self.queues[q].remove(i, self.avail[i as usize]);
                self.queued.clear(i);
            }
            PieceState::Open => {
                self.open.remove(&i);
            }
            PieceState::Full => {
                self.full.remove(&i);
            }
            _ => {}
        }
        match new {
            PieceState::Queued => {
                self.queues[class].insert(i, self.avail[i as usize], &mut self.tb);
                self.queued.set(i);
            }
            PieceState::Open => {
                self.open.insert(i);
            }
            PieceState::Full => {
                self.full.insert(i);
            }
            _ => {}
        }
        self.loc[i as usize] = new;
    }

    fn new_partial(&self, i: u32) -> Partial {
        let n = self.layout.block_count(i);
        Partial {
            blocks: vec![Slot::default(); n as usize],
            missing: n,
            received: 0,
            hint: 0,
            owner: None,
        }
    }

    /// Drops `peer` from the requesters of block `b` of piece `i` (the peer's own request set
    /// is the caller's business). The piece is refiled.
    fn unrequest(&mut self, peer: PeerKey, i: u32, b: u32) {
        if let Some(part) = self.partial.get_mut(&i) {
            let slot = &mut part.blocks[b as usize];
            if slot.requesters.remove(peer) && slot.requesters.is_empty() && !slot.received {
                part.missing += 1;
                part.hint = part.hint.min(b);
            }
            // Nothing received and nothing requested: the piece is untouched again and goes
            // back to the rarity queue.
            if part.received == 0 && part.missing as usize == part.blocks.len() {
                self.partial.remove(&i);
            }
        }
        self.refile(i);
    }

    // ---- picking ----

    /// Picks up to `max_blocks` blocks to request from `peer` and appends them to `out`;
    /// returns how many were added. `choked`: the peer chokes us, so only pieces in
    /// `allowed_fast` (the allowed-fast set it sent) are considered. The picked blocks are
    /// recorded as outstanding from `peer`. Unknown peers get nothing.
    pub fn pick(
        &mut self,
        peer: PeerKey,
        max_blocks: usize,
        allowed_fast: &[u32],
        choked: bool,
        out: &mut Vec<Block>,
    ) -> usize {
        let Some(p) = self.peers.get(&peer) else {
            return 0;
        };
        let cap = (self.config.max_requests_per_peer as usize).saturating_sub(p.requests.len());
        let parole = p.parole;
        let mut budget = max_blocks.min(cap);
        let before = out.len();
        if budget == 0 {
            return 0;
        }
        if choked {
            for &i in allowed_fast {
                if budget == 0 {
                    break;
                }
                if self.peer_has_piece(peer, i)
                    && matches!(self.piece_state(i), PieceState::Queued | PieceState::Open)
                    && self.may_share(peer, parole, i)
                {
                    self.take_blocks(peer, i, &mut budget, out);
                }
            }
            return out.len() - before;
        }
        // Partial pieces first.
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        if let Some(p) = self.peers.get(&peer) {
            scratch.extend(
                self.open
                    .iter()
                    .copied()
                    .filter(|&i| p.has.get(i) && self.may_share(peer, parole, i))
                    .take(budget),
            );
        }
        for &i in &scratch {
            if budget == 0 {
                break;
            }
            self.take_blocks(peer, i, &mut budget, out);
        }
        self.scratch = scratch;
        // New pieces.
        while budget > 0 {
            let Some(i) = self.next_new_piece(peer) else {
                break;
            };
            self.take_blocks(peer, i, &mut budget, out);
        }
        if budget > 0 && !parole && self.in_endgame() {
            self.endgame_pick(peer, budget, out);
        }
        out.len() - before
    }

    /// Requests the missing blocks of piece `i` from `peer`, lowest first, within `budget`.
    /// A peer on parole holds a piece it starts alone.
    fn take_blocks(&mut self, peer: PeerKey, i: u32, budget: &mut usize, out: &mut Vec<Block>) {
        if !self.partial.contains_key(&i) {
            let mut part = self.new_partial(i);
            part.owner = self.on_parole(peer).then_some(peer);
            self.partial.insert(i, part);
        }
        let (Some(part), Some(p)) = (self.partial.get_mut(&i), self.peers.get_mut(&peer)) else {
            return;
        };
        let mut b = part.hint as usize;
        while *budget > 0 && part.missing > 0 && b < part.blocks.len() {
            let slot = &mut part.blocks[b];
            if !slot.received && slot.requesters.is_empty() {
                slot.requesters.push(peer);
                part.missing -= 1;
                p.requests.insert((i, b as u32));
                out.push(self.layout.block(i, b as u32));
                *budget -= 1;
            }
            b += 1;
        }
        if part.missing == 0 {
            part.hint = part.blocks.len() as u32;
        } else {
            let first = part.blocks[part.hint as usize..]
                .iter()
                .position(|s| !s.received && s.requesters.is_empty())
                .map_or(part.blocks.len(), |k| k + part.hint as usize);
            part.hint = first as u32;
        }
        self.refile(i);
    }

    /// The next untouched piece to start for `peer`, by the mode's rule.
    fn next_new_piece(&mut self, peer: PeerKey) -> Option<u32> {
        if self.queued.none() {
            return None;
        }
        let p = self.peers.get(&peer)?;
        if self.sequential {
            if self.config.sequential_file_edges_first
                && let Some(i) = self.first_queued(&p.has, Some(&self.edges))
            {
                return Some(i);
            }
            if let Some(i) = self.first_queued(&p.has, Some(&self.high)) {
                return Some(i);
            }
            return self.first_queued(&p.has, None);
        }
        if self.have.count() < self.config.random_first_pieces {
            for q in [HIGH, NORMAL] {
                let order = self.queues[q].order();
                if order.is_empty() {
                    continue;
                }
                for _ in 0..MAX_RANDOM_PROBES {
                    let i = order[self.tb.below(order.len() as u32) as usize];
                    if p.has.get(i) {
                        return Some(i);
                    }
                }
            }
        }
        // Rarest first. A peer with a bitfield has none of the availability-0 pieces.
        let from = u32::from(!matches!(p.has, Has::All));
        let mut probes = 0;
        'classes: for q in [HIGH, NORMAL] {
            let queue = &self.queues[q];
            for &i in &queue.order()[queue.bucket_start(from)..] {
                if p.has.get(i) {
                    return Some(i);
                }
                probes += 1;
                if probes >= MAX_QUEUE_PROBES {
                    break 'classes;
                }
            }
        }
        if probes >= MAX_QUEUE_PROBES {
            return self.rarest_by_scan(peer);
        }
        None
    }

    /// The lowest queued index the peer has, restricted to `mask` if given.
    fn first_queued(&self, has: &Has, mask: Option<&Bitfield>) -> Option<u32> {
        let words = self.queued.words();
        (0..words.len()).find_map(|k| {
            let w = words[k] & has.word(k) & mask.map_or(u64::MAX, |m| m.words()[k]);
            (w != 0).then(|| k as u32 * 64 + w.leading_zeros())
        })
    }

    /// Rarest first by a word scan of `peer ∧ queued`: the minimum of (class, availability),
    /// ties broken uniformly at random (reservoir sampling). O(n / 64 + matches).
    fn rarest_by_scan(&mut self, peer: PeerKey) -> Option<u32> {
        let p = self.peers.get(&peer)?;
        let words = self.queued.words();
        let mut best: Option<((bool, u32), u32)> = None;
        let mut ties = 0u32;
        for (k, &q) in words.iter().enumerate() {
            let mut w = q & p.has.word(k);
            while w != 0 {
                let bit = w.leading_zeros();
                w &= !(1u64 << (63 - bit));
                let i = k as u32 * 64 + bit;
                let key = (!self.high.get(i), self.avail[i as usize]);
                match best {
                    Some((b, _)) if key > b => {}
                    Some((b, _)) if key == b => {
                        ties += 1;
                        if self.tb.below(ties + 1) == 0 {
                            best = Some((key, i));
                        }
                    }
                    _ => {
                        best = Some((key, i));
                        ties = 0;
                    }
                }
            }
        }
        best.map(|(_, i)| i)
    }

    /// Endgame: duplicate requests for outstanding blocks, fewest requesters first.
    fn endgame_pick(&mut self, peer: PeerKey, budget: usize, out: &mut Vec<Block>) {
        let max_dup = self.config.endgame_max_duplicate_downloads as usize;
        let Some(p) = self.peers.get(&peer) else {
            return;
        };
        let mut cands: Vec<(usize, u32, u32)> = Vec::new();
        for &i in &self.full {
            if !p.has.get(i) {
                continue;
            }
            let Some(part) = self.partial.get(&i) else {
                continue;
            };
            if part.owner.is_some() {
                continue;
            }
            for (b, slot) in part.blocks.iter().enumerate() {
                let n = slot.requesters.len();
                if !slot.received && n < max_dup && !slot.requesters.contains(peer) {
                    cands.push((n, i, b as u32));
                }
            }
        }
        cands.sort_by_key(|c| c.0);
        cands.truncate(budget);
        for (_, i, b) in cands {
            if let Some(part) = self.partial.get_mut(&i) {
                part.blocks[b as usize].requesters.push(peer);
            }
            if let Some(p) = self.peers.get_mut(&peer) {
                p.requests.insert((i, b));
            }
            out.push(self.layout.block(i, b));
        }
    }

    // ---- results ----

    /// A block arrived from `peer`. New data is accepted even if it was not requested from
    /// this peer (rain keeps such blocks); other peers with the block outstanding are listed
    /// in [`BlockOutcome::cancels`].
    pub fn block_received(&mut self, peer: PeerKey, block: Block) -> BlockOutcome {
        let mut outcome = BlockOutcome {
            received: Received::Invalid,
            cancels: Vec::new(),
            piece_complete: false,
        };
        let Some(b) = self.layout.block_index(block) else {
            return outcome;
        };
        let i = block.piece;
        if self.have.get(i) {
            outcome.received = Received::Duplicate;
            return outcome;
        }
        if !self.partial.contains_key(&i) {
            let part = self.new_partial(i);
            self.partial.insert(i, part);
        }
        let Some(part) = self.partial.get_mut(&i) else {
            return outcome;
        };
        let nblocks = part.blocks.len();
        let slot = &mut part.blocks[b as usize];
        if slot.received {
            outcome.received = Received::Duplicate;
            return outcome;
        }
        outcome.received = Received::New;
        slot.received = true;
        if slot.requesters.is_empty() {
            part.missing -= 1;
        }
        part.received += 1;
        outcome.piece_complete = part.received as usize == nblocks;
        for r in slot.requesters.take() {
            if let Some(rp) = self.peers.get_mut(&r) {
                rp.requests.remove(&(i, b));
            }
            if r != peer {
                outcome.cancels.push((r, block));
            }
        }
        // A holder with nothing more requested in the piece (choked, or out of budget) lets
        // others finish it.
        if let Some(o) = part.owner
            && self
                .peers
                .get(&o)
                .is_none_or(|op| op.requests.range((i, 0)..(i + 1, 0)).next().is_none())
        {
            part.owner = None;
        }
        if part.hint == b {
            part.hint += 1;
        }
        self.refile(i);
        outcome
    }

    /// `peer` rejected a request (BEP 6 reject): the block becomes missing again unless
    /// others requested it too.
    pub fn request_rejected(&mut self, peer: PeerKey, block: Block) {
        self.release(peer, block);
    }

    /// A request to `peer` timed out (or was dropped by a choke): the block becomes missing
    /// again unless others requested it too. A late arrival is still accepted.
    pub fn request_timed_out(&mut self, peer: PeerKey, block: Block) {
        self.release(peer, block);
    }

    fn release(&mut self, peer: PeerKey, block: Block) {
        let Some(b) = self.layout.block_index(block) else {
            return;
        };
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if p.requests.remove(&(block.piece, b)) {
            self.unrequest(peer, block.piece, b);
        }
        if let Some(part) = self.partial.get_mut(&block.piece)
            && part.owner == Some(peer)
        {
            // A failed request frees the piece, so a parolee that stalls cannot strand it.
            part.owner = None;
        }
    }

    /// Piece `i` passed its hash check (or was found complete on disk). Any requests still
    /// outstanding for it are forgotten and returned, to be cancelled.
    pub fn piece_verified(&mut self, i: u32) -> Vec<(PeerKey, Block)> {
        if i >= self.layout.piece_count() {
            return Vec::new();
        }
        let cancels = self.drop_partial(i);
        self.have.set(i);
        self.refile(i);
        cancels
    }

    /// Piece `i` failed its hash check: all its blocks become missing again (also when it was
    /// verified before, e.g. after a re-check found it corrupt). Outstanding requests are
    /// forgotten and returned, to be cancelled.
    pub fn piece_failed(&mut self, i: u32) -> Vec<(PeerKey, Block)> {
        if i >= self.layout.piece_count() {
            return Vec::new();
        }
        let cancels = self.drop_partial(i);
        self.have.clear(i);
        self.refile(i);
        cancels
    }

    fn drop_partial(&mut self, i: u32) -> Vec<(PeerKey, Block)> {
        let mut cancels = Vec::new();
        if let Some(mut part) = self.partial.remove(&i) {
            for (b, slot) in part.blocks.iter_mut().enumerate() {
                for r in slot.requesters.take() {
                    if let Some(rp) = self.peers.get_mut(&r) {
                        rp.requests.remove(&(i, b as u32));
                    }
                    cancels.push((r, self.layout.block(i, b as u32)));
                }
            }
        }
        cancels
    }

    /// Asserts every internal invariant (see the module documentation). For tests and the
    /// simulator; O(pieces · peers).
    #[cfg(any(test, feature = "test-util"))]
    pub fn check_invariants(&self) {
        let n = self.layout.piece_count();
        let mut avail = vec![0u32; n as usize];
        let mut seeds = 0;
        for p in self.peers.values() {
            match &p.has {
                Has::All => seeds += 1,
                Has::Bits(b) => b.iter_ones().for_each(|i| avail[i as usize] += 1),
            }
            assert!(p.requests.len() <= self.config.max_requests_per_peer as usize);
        }
        assert_eq!(avail, self.avail, "availability");
        assert_eq!(seeds, self.seeds, "seeds");
        for i in 0..n {
            assert_eq!(self.loc[i as usize], self.target_state(i), "state of {i}");
            let s = self.loc[i as usize];
            assert_eq!(self.queued.get(i), s == PieceState::Queued);
            assert_eq!(self.open.contains(&i), s == PieceState::Open);
            assert_eq!(self.full.contains(&i), s == PieceState::Full);
        }
        for (&i, part) in &self.partial {
            let mut missing = 0;
            let mut received = 0;
            for (b, slot) in part.blocks.iter().enumerate() {
                let rs: Vec<PeerKey> = slot.requesters.iter().collect();
                let mut dedup = rs.clone();
                dedup.sort_unstable();
                dedup.dedup();
                assert_eq!(dedup.len(), rs.len(), "duplicate requester");
                assert!(rs.len() <= self.config.endgame_max_duplicate_downloads.max(1) as usize);
                if slot.received {
                    received += 1;
                    assert!(rs.is_empty(), "received block with requesters");
                } else if rs.is_empty() {
                    missing += 1;
                    assert!(b as u32 >= part.hint, "hint past a missing block");
                }
                for r in rs {
                    assert!(
                        self.peers[&r].requests.contains(&(i, b as u32)),
                        "requester without request"
                    );
                }
            }
            assert_eq!(missing, part.missing, "missing of {i}");
            if let Some(o) = part.owner {
                assert!(self.peers[&o].parole, "piece {i} held by a peer off parole");
                for slot in &part.blocks {
                    assert!(
                        slot.requesters.iter().all(|r| r == o),
                        "piece {i} held alone by {o:?} requested from another peer"
                    );
                }
            }
            assert_eq!(received, part.received, "received of {i}");
        }
        for (k, p) in &self.peers {
            for &(i, b) in &p.requests {
                assert!(
                    self.partial[&i].blocks[b as usize].requesters.contains(*k),
                    "request without requester"
                );
            }
        }
    }

    #[cfg(test)]
    fn check_queues(&self) {
        for q in &self.queues {
            q.check(&self.avail);
        }
    }
}

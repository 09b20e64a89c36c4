//! The session-wide budget for in-progress piece buffers: rain's `write-cache-size`
//! (rain-behaviour §6.9; 1 GiB by default), shared by every torrent of a session.
//!
//! Each torrent's [`Torrent`](rain_proto::torrent::Torrent) machine reserves the whole length
//! of a piece when it starts it and releases it when the piece is written, fails its hash check
//! or is dropped; it starts a new piece only if it fits under its piece-memory limit. The
//! torrent task holds a [`Share`] of this budget, and after every input it drains the machine
//! and [`Share::update`]s the budget with the machine's [`Usage`]; the answer is the machine's
//! new limit, applied at once with
//! [`set_piece_memory_limit`](rain_proto::torrent::Torrent::set_piece_memory_limit) (which
//! tops up requests when it rises). No `.await` separates the two, so the machine never holds
//! more than the budget has accounted to it.
//!
//! # What a torrent may hold
//!
//! Every torrent *holds* `max(reserved, limit) + granted` bytes of the budget, and the holdings
//! never add up to more than the budget (`held ≤ write-cache-size`), except in the two cases
//! below. A torrent's limit after an update:
//!
//! - a grant is waiting for it (it was woken): `reserved + grant`;
//! - its peers are held back (`wanted > 0`) and no other torrent waits: `reserved` plus what it
//!   wants, at least one piece, at most what is free — if a whole piece is free;
//! - otherwise, while no other torrent waits: `reserved` — it keeps reusing the memory its own
//!   written pieces free (a piece written while nobody waits starts the next one at once);
//! - while another torrent waits: `0` — it starts nothing new; each piece it finishes returns
//!   its memory to the budget, where the waiting torrents (it too, if held back) draw for it.
//!
//! Every limit is further bounded by the per-torrent cap (`max_piece_memory`): a torrent whose
//! reservation reached the cap does not ask the session for more.
//!
//! # Waiting and fairness
//!
//! A held-back torrent that cannot be served registers as waiting (rain's "pending keys") and
//! asks for one piece. When memory is free (a torrent reports less, stops, or is removed),
//! a waiting torrent is drawn at random from the session's seeded RNG (rain picks a random
//! waiting torrent too) and granted its piece as soon as that much is free — memory freed
//! meanwhile is kept for it rather than handed to a smaller request — and its task is woken
//! through [`Share::wake`]; then the next is drawn. The order depends only on the seed and
//! the order of updates, so a simulation replays it exactly.
//!
//! # Overshoot
//!
//! The sum of the reserved bytes never exceeds the budget, with two documented exceptions:
//!
//! - a piece longer than the whole budget still downloads, alone: it is granted when nothing
//!   else is held (the reservation then exceeds the budget by at most that piece);
//! - webseed data is not held back: a range already under way keeps storing its pieces (they
//!   count as reserved, so peers start fewer pieces meanwhile).
//!
//! (Blocks a peer sends for a piece that was never started are dropped by the machine when
//! they do not fit, so they cannot push the reservation over.)

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use rain_proto::rng::{Rng, Seed};
use tokio::sync::Notify;

/// A torrent machine's piece memory, as its task reports it to the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Bytes reserved by its piece buffers (`Torrent::piece_memory`).
    pub reserved: u64,
    /// Piece buffers it holds (`Torrent::piece_buffers`).
    pub buffers: u64,
    /// Bytes of new pieces its peers wanted but the limit held back
    /// (`Torrent::piece_memory_wanted`); 0 when none is held back.
    pub wanted: u64,
    /// The torrent's piece length: the unit it is granted memory in (0 before the metadata).
    pub piece_length: u64,
}

/// The budget's counters (rain's `WriteCache*` session stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PieceMemoryStats {
    /// The budget (`write-cache-size`).
    pub budget: u64,
    /// Bytes reserved by piece buffers across the session (rain's `WriteCacheSize`).
    pub reserved: u64,
    /// Piece buffers held across the session (rain's `WriteCacheObjects`).
    pub buffers: u64,
    /// Torrents waiting for memory (rain's `WriteCachePendingKeys`).
    pub waiting: usize,
    /// The highest `reserved` seen since the session started.
    pub peak_reserved: u64,
}

/// The session-wide budget. Create one per session; every torrent task
/// [registers](Self::register) for a [`Share`].
#[derive(Debug)]
pub struct PieceMemory {
    budget: u64,
    per_torrent: u64,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    rng: Rng,
    next_id: u64,
    tenants: BTreeMap<u64, Tenant>,
    /// Waiting torrents, in the order they started waiting.
    waiting: Vec<u64>,
    /// The waiting torrent drawn to be served next, kept until its request fits.
    drawn: Option<u64>,
    /// Sum of [`Tenant::held`].
    held: u64,
    /// Sum of the tenants' reserved bytes.
    reserved: u64,
    /// Sum of the tenants' buffers.
    buffers: u64,
    peak_reserved: u64,
}

#[derive(Debug)]
struct Tenant {
    reserved: u64,
    buffers: u64,
    /// The limit its machine was last given.
    limit: u64,
    /// Granted while waiting, not yet picked up by its task.
    granted: u64,
    /// The request it waits for (one piece); 0 when not waiting.
    waiting_for: u64,
    wake: Arc<Notify>,
}

impl Tenant {
    /// What it holds of the budget.
    fn held(&self) -> u64 {
        self.reserved.max(self.limit) + self.granted
    }
}

impl PieceMemory {
    /// A budget of `budget` bytes for the whole session, of which one torrent may hold at most
    /// `per_torrent` (but always one piece). `seed` orders waiting torrents.
    pub fn new(budget: u64, per_torrent: u64, seed: Seed) -> Arc<Self> {
        Arc::new(PieceMemory {
            budget,
            per_torrent,
            inner: Mutex::new(Inner {
                rng: Rng::new(seed),
                next_id: 0,
                tenants: BTreeMap::new(),
                waiting: Vec::new(),
                drawn: None,
                held: 0,
                reserved: 0,
                buffers: 0,
                peak_reserved: 0,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state stays consistent across a panic in another holder (no user code runs
        // under the lock), so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A share for a new torrent: it holds nothing, and its machine's limit should be 0 until
    /// its first [`Share::update`]. Dropping the share releases everything it held.
    pub fn register(self: &Arc<Self>) -> Share {
        let wake = Arc::new(Notify::new());
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        inner.tenants.insert(
            id,
            Tenant {
                reserved: 0,
                buffers: 0,
                limit: 0,
                granted: 0,
                waiting_for: 0,
                wake: wake.clone(),
            },
        );
        drop(inner);
        Share {
            budget: self.clone(),
            id,
            wake,
        }
    }

    /// The counters.
    pub fn stats(&self) -> PieceMemoryStats {
        let inner = self.lock();
        PieceMemoryStats {
            budget: self.budget,
            reserved: inner.reserved,
            buffers: inner.buffers,
            waiting: inner.waiting.len(),
            peak_reserved: inner.peak_reserved,
        }
    }

    fn update(&self, id: u64, usage: Usage) -> u64 {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(t) = inner.tenants.get_mut(&id) else {
            return 0;
        };
        let before = t.held();
        inner.reserved = inner.reserved - t.reserved + usage.reserved;
        inner.buffers = inner.buffers - t.buffers + usage.buffers;
        inner.peak_reserved = inner.peak_reserved.max(inner.reserved);
        t.reserved = usage.reserved;
        t.buffers = usage.buffers;
        let held_by_others = inner.held - before;
        let others_waiting = inner.waiting.len() > usize::from(t.waiting_for > 0);
        let unit = usage.piece_length.max(1);
        // What the per-torrent cap leaves it room for (a torrent holding nothing may always
        // start one piece).
        let room = if usage.reserved == 0 {
            self.per_torrent.max(unit)
        } else {
            self.per_torrent.saturating_sub(usage.reserved)
        };
        let blocked = usage.wanted > 0 && room >= unit;
        let free = self
            .budget
            .saturating_sub(held_by_others)
            .saturating_sub(usage.reserved);
        // Nothing held anywhere: a piece longer than the whole budget may start, alone.
        let fits = free >= unit || (held_by_others == 0 && usage.reserved == 0);
        let mut joins = false;
        if t.granted > 0 {
            t.limit = usage.reserved + std::mem::take(&mut t.granted);
        } else if blocked && !others_waiting && fits {
            t.limit = usage.reserved + usage.wanted.min(room).min(free).max(unit);
        } else {
            t.limit = if others_waiting { 0 } else { usage.reserved };
            joins = blocked;
        }
        let waiting = t.waiting_for > 0;
        if joins && !waiting {
            t.waiting_for = unit;
            inner.waiting.push(id);
        } else if !joins && waiting {
            t.waiting_for = 0;
            inner.leave_queue(id);
        }
        inner.held = held_by_others + inner.tenants.get(&id).map_or(0, Tenant::held);
        inner.serve_waiting(self.budget);
        // Served at once (it was drawn and the memory is there): no need for a wake-up.
        let Some(t) = inner.tenants.get_mut(&id) else {
            return 0;
        };
        if t.granted > 0 {
            let before = t.held();
            t.limit = t.reserved + std::mem::take(&mut t.granted);
            inner.held = inner.held - before + t.held();
        }
        t.limit
    }

    fn remove(&self, id: u64) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(t) = inner.tenants.remove(&id) else {
            return;
        };
        inner.held -= t.held();
        inner.reserved -= t.reserved;
        inner.buffers -= t.buffers;
        if t.waiting_for > 0 {
            inner.leave_queue(id);
        }
        inner.serve_waiting(self.budget);
    }
}

impl Inner {
    fn leave_queue(&mut self, id: u64) {
        self.waiting.retain(|&w| w != id);
        if self.drawn == Some(id) {
            self.drawn = None;
        }
    }

    /// Grants free memory to waiting torrents, drawn at random once some memory is free; a
    /// drawn torrent whose request does not fit yet keeps its turn.
    fn serve_waiting(&mut self, budget: u64) {
        while !self.waiting.is_empty() {
            let id = match self.drawn {
                Some(id) => id,
                // Nothing free: the draw waits for memory to come back.
                None if self.held >= budget && self.held > 0 => return,
                None => {
                    let k = self.rng.below(self.waiting.len() as u64) as usize;
                    self.waiting[k]
                }
            };
            let Some(t) = self.tenants.get_mut(&id) else {
                self.leave_queue(id);
                continue;
            };
            let need = t.waiting_for;
            if self.held + need > budget && self.held > 0 {
                self.drawn = Some(id);
                return;
            }
            t.waiting_for = 0;
            t.granted += need;
            t.wake.notify_one();
            self.held += need;
            self.leave_queue(id);
        }
    }
}

/// One torrent's share of the [`PieceMemory`] budget. Dropping it releases what it held.
#[derive(Debug)]
pub struct Share {
    budget: Arc<PieceMemory>,
    id: u64,
    wake: Arc<Notify>,
}

impl Share {
    /// Reports the machine's usage after an input (and the drain of its actions) and returns
    /// the machine's new piece-memory limit, to apply before any other input (see the module
    /// documentation for the rules).
    pub fn update(&self, usage: Usage) -> u64 {
        self.budget.update(self.id, usage)
    }

    /// Signalled when memory was granted to this torrent while it waited: its task should
    /// [`update`](Self::update) (a signal given while nobody listens is kept for the next
    /// listener).
    pub fn wake(&self) -> Arc<Notify> {
        self.wake.clone()
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        self.budget.remove(self.id);
    }
}

#[cfg(test)]
#[allow(clippy::many_single_char_names)] // a, b, c: torrents and the budget
mod tests {
    use std::future::Future;

    use super::*;

    const P: u64 = 1000;

    fn budget(pieces: u64) -> Arc<PieceMemory> {
        PieceMemory::new(pieces * P, u64::MAX, Seed::from_u64(1))
    }

    fn usage(reserved: u64, wanted: u64) -> Usage {
        Usage {
            reserved,
            buffers: reserved / P,
            wanted,
            piece_length: P,
        }
    }

    /// Whether `share`'s wake-up was signalled (consumes the signal).
    fn woken(share: &Share) -> bool {
        let wake = share.wake();
        let notified = wake.notified();
        let mut notified = std::pin::pin!(notified);
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        notified.as_mut().poll(&mut cx).is_ready()
    }

    #[test]
    fn a_lone_torrent_gets_what_it_wants_within_the_budget() {
        let b = budget(4);
        let a = b.register();
        assert_eq!(a.update(usage(0, 0)), 0, "nothing wanted, nothing granted");
        assert_eq!(a.update(usage(0, 2 * P)), 2 * P);
        assert_eq!(a.update(usage(2 * P, 10 * P)), 4 * P, "at most the budget");
        assert_eq!(a.update(usage(4 * P, 3 * P)), 4 * P, "full: it waits");
        assert_eq!(b.stats().waiting, 1);
        // Not held back any more: it keeps exactly what it reserved.
        assert_eq!(a.update(usage(3 * P, 0)), 3 * P);
        assert_eq!(b.stats().waiting, 0);
        let s = b.stats();
        assert_eq!((s.reserved, s.buffers, s.peak_reserved), (3 * P, 3, 4 * P));
    }

    #[test]
    fn the_per_torrent_cap_bounds_a_share_but_one_piece_always_fits() {
        let b = PieceMemory::new(10 * P, 2 * P, Seed::from_u64(1));
        let a = b.register();
        assert_eq!(a.update(usage(0, 5 * P)), 2 * P);
        assert_eq!(
            a.update(usage(2 * P, 5 * P)),
            2 * P,
            "at the cap: no more, no waiting"
        );
        assert_eq!(b.stats().waiting, 0);
        let small = PieceMemory::new(10 * P, 10, Seed::from_u64(1));
        let c = small.register();
        assert_eq!(c.update(usage(0, P)), P, "a piece longer than the cap");
    }

    #[test]
    fn a_piece_longer_than_the_budget_starts_only_when_nothing_is_held() {
        let b = PieceMemory::new(P / 2, u64::MAX, Seed::from_u64(1));
        let a = b.register();
        let c = b.register();
        assert_eq!(a.update(usage(0, P)), P, "alone: one piece");
        assert_eq!(c.update(usage(0, P)), 0, "held elsewhere: wait");
        assert_eq!(a.update(usage(0, 0)), 0, "written");
        assert!(woken(&c));
        assert_eq!(c.update(usage(0, P)), P);
    }

    #[test]
    fn removing_a_torrent_releases_its_share_to_a_waiter() {
        let b = budget(2);
        let a = b.register();
        let c = b.register();
        assert_eq!(a.update(usage(0, 2 * P)), 2 * P);
        assert_eq!(a.update(usage(2 * P, 0)), 2 * P);
        assert_eq!(c.update(usage(0, P)), 0);
        assert_eq!(b.stats().waiting, 1);
        assert!(!woken(&c));
        drop(a);
        assert!(woken(&c), "the waiter is woken");
        assert_eq!(c.update(usage(0, P)), P, "and granted a piece");
        let s = b.stats();
        assert_eq!((s.reserved, s.waiting), (0, 0));
        drop(c);
        let d = b.register();
        assert_eq!(d.update(usage(0, 5 * P)), 2 * P, "everything is free again");
    }

    /// Whether the holder `a` (who is held back too) or the newcomer `c` gets the piece `a`
    /// frees while both wait, for a seed.
    fn holder_or_newcomer(seed: u64) -> bool {
        let b = PieceMemory::new(2 * P, u64::MAX, Seed::from_u64(seed));
        let a = b.register();
        let c = b.register();
        assert_eq!(a.update(usage(0, 2 * P)), 2 * P);
        assert_eq!(a.update(usage(2 * P, P)), 2 * P, "full: it waits, alone");
        assert_eq!(c.update(usage(0, P)), 0, "full: it waits too");
        // With `c` waiting, `a` starts nothing new: what it frees goes to the queue.
        assert_eq!(a.update(usage(2 * P, P)), 0);
        let limit = a.update(usage(P, P));
        let (wa, wc) = (woken(&a), woken(&c));
        assert!(wa ^ wc, "exactly one waiter served: {wa} {wc}");
        if wa {
            assert_eq!(limit, 2 * P, "drawn: served at once");
        } else {
            assert_eq!(limit, 0, "a piece written: freed, not reused");
            assert_eq!(c.update(usage(0, P)), P);
        }
        assert!(b.lock().held <= 2 * P);
        wa
    }

    #[test]
    fn a_holder_yields_freed_memory_while_another_waits() {
        let winners: std::collections::BTreeSet<bool> = (0..16).map(holder_or_newcomer).collect();
        assert_eq!(winners.len(), 2, "each wins a draw over the seeds");
    }

    /// Which of three waiting torrents is served first, for a seed.
    fn first_served(seed: u64) -> usize {
        let b = PieceMemory::new(P, u64::MAX, Seed::from_u64(seed));
        let holder = b.register();
        assert_eq!(holder.update(usage(0, P)), P);
        assert_eq!(holder.update(usage(P, 0)), P);
        let waiters: Vec<Share> = (0..3).map(|_| b.register()).collect();
        for w in &waiters {
            assert_eq!(w.update(usage(0, P)), 0);
        }
        assert_eq!(b.stats().waiting, 3);
        assert_eq!(holder.update(usage(0, 0)), 0, "the piece is written");
        let served: Vec<usize> = (0..3).filter(|&i| woken(&waiters[i])).collect();
        assert_eq!(served.len(), 1, "one piece of memory, one waiter served");
        served[0]
    }

    #[test]
    fn waiters_are_served_in_a_seeded_random_order() {
        for seed in 0..8 {
            assert_eq!(first_served(seed), first_served(seed), "seed {seed}");
        }
        let firsts: std::collections::BTreeSet<usize> = (0..32).map(first_served).collect();
        assert!(firsts.len() > 1, "not always the same torrent: {firsts:?}");
    }

    /// A holder of the whole budget frees it piece by piece while a torrent wanting one piece
    /// and one wanting three wait: the order they are served in, and whether the big one
    /// was drawn while its piece did not fit yet.
    fn small_and_big(seed: u64) -> (Vec<&'static str>, bool) {
        let b = PieceMemory::new(4 * P, u64::MAX, Seed::from_u64(seed));
        let holder = b.register();
        let small = b.register();
        let big = b.register();
        assert_eq!(holder.update(usage(0, 4 * P)), 4 * P);
        assert_eq!(holder.update(usage(4 * P, 0)), 4 * P);
        let big_usage = Usage {
            reserved: 0,
            buffers: 0,
            wanted: 3 * P,
            piece_length: 3 * P,
        };
        assert_eq!(big.update(big_usage), 0);
        assert_eq!(small.update(usage(0, P)), 0);
        let mut order = Vec::new();
        let mut big_drawn_early = false;
        for left in (0..4).rev() {
            assert_eq!(holder.update(usage(left * P, 0)), 0, "others wait");
            if woken(&small) {
                order.push("small");
            }
            if woken(&big) {
                order.push("big");
            }
            big_drawn_early |= b.lock().drawn == Some(2) && order.is_empty();
        }
        assert_eq!(order.len(), 2, "both served once everything is free");
        assert!(b.lock().held <= 4 * P);
        (order, big_drawn_early)
    }

    #[test]
    fn a_drawn_waiter_keeps_its_turn_until_its_piece_fits() {
        let mut seen = [false; 2];
        for seed in 0..16 {
            let (order, big_drawn_early) = small_and_big(seed);
            if big_drawn_early {
                // The small request, which would have fitted, did not jump the queue.
                assert_eq!(order, ["big", "small"], "seed {seed}");
            }
            seen[usize::from(big_drawn_early)] = true;
        }
        assert_eq!(seen, [true, true], "both draws happen over the seeds");
    }
}

//! The choker of one torrent: which interested peers we upload to.
//!
//! rain's algorithm (rain-behaviour §6.5), run every `interval` (10 s):
//!
//! - Candidates are the peers **interested** in us. Peers that are not interested are left as
//!   they are (rain never chokes them on the tick) and hold no slot.
//! - Candidates are ranked by the rate they give us while we download (`download_rate`), and by
//!   the rate we give them while we seed (`upload_rate`), descending. Ties are broken at random
//!   (seeded).
//! - Regular slots: the first `unchoked_peers` (3) ranked peers are unchoked.
//! - Every `optimistic_every`-th tick (every 3rd, so every 30 s; the first tick is one),
//!   `optimistic_unchoked_peers` (1) peers are drawn at random from those below the cut and
//!   unchoked optimistically; the previous optimistic peers lose their slot. An optimistic peer
//!   that ranks into a regular slot on such a tick becomes regular.
//! - Everyone else ranked below the cut is choked.
//!
//! One deliberate difference from rain: between optimistic ticks, optimistic peers keep their
//! slot even when they rank below the cut (rain chokes them on the next tick, so a new peer with
//! no rate history gets 10 s instead of 30 s to prove itself).
//!
//! [`Choker::handle_interested`] is rain's fast unchoke: a peer that becomes interested gets a
//! free regular slot at once, or a free optimistic one.
//!
//! Outputs are the changes only: the `choke` / `unchoke` messages to send.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::picker::PeerKey;
use crate::rng::{Rng, Seed};
use crate::time::Instant;

/// Slot counts and intervals (rain's config keys in parentheses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChokerConfig {
    /// Regular upload slots (`unchoked-peers`, 3).
    pub unchoked_peers: usize,
    /// Optimistic upload slots (`optimistic-unchoked-peers`, 1).
    pub optimistic_unchoked_peers: usize,
    /// Time between recomputations (10 s).
    pub interval: Duration,
    /// Every this many ticks is an optimistic round (3, i.e. every 30 s).
    pub optimistic_every: u32,
}

impl Default for ChokerConfig {
    fn default() -> Self {
        ChokerConfig {
            unchoked_peers: 3,
            optimistic_unchoked_peers: 1,
            interval: Duration::from_secs(10),
            optimistic_every: 3,
        }
    }
}

/// What the choker knows about a peer at a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerChokeInfo {
    /// The peer.
    pub peer: PeerKey,
    /// The peer is interested in us.
    pub interested: bool,
    /// Bytes per second we receive from it (1-minute EWMA).
    pub download_rate: u64,
    /// Bytes per second we send to it (1-minute EWMA).
    pub upload_rate: u64,
}

/// A message to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChokeDecision {
    /// Send `choke`.
    Choke,
    /// Send `unchoke`.
    Unchoke,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Regular,
    Optimistic,
}

/// The choker. Peers it has not unchoked are choked.
#[derive(Debug, Clone)]
pub struct Choker {
    config: ChokerConfig,
    rng: Rng,
    /// Unchoked peers; bounded by the peers the owner reports.
    unchoked: BTreeMap<PeerKey, Slot>,
    round: u32,
    next: Instant,
}

impl Choker {
    /// A choker whose first tick is one `interval` after `now`.
    pub fn new(config: ChokerConfig, seed: Seed, now: Instant) -> Self {
        Choker {
            config,
            rng: Rng::new(seed),
            unchoked: BTreeMap::new(),
            round: 0,
            next: now + config.interval,
        }
    }

    /// When the next recomputation is due. Changes only after [`Choker::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        Some(self.next)
    }

    /// True if we unchoke `peer`.
    pub fn is_unchoked(&self, peer: PeerKey) -> bool {
        self.unchoked.contains_key(&peer)
    }

    /// True if `peer` holds an optimistic slot.
    pub fn is_optimistic(&self, peer: PeerKey) -> bool {
        self.unchoked.get(&peer) == Some(&Slot::Optimistic)
    }

    fn count(&self, slot: Slot) -> usize {
        self.unchoked.values().filter(|&&s| s == slot).count()
    }

    /// `peer` became interested while choked (fast unchoke): unchoke it at once if a regular
    /// slot is free, else if an optimistic slot is free.
    pub fn handle_interested(&mut self, peer: PeerKey) -> Option<ChokeDecision> {
        if self.unchoked.contains_key(&peer) {
            return None;
        }
        let slot = if self.count(Slot::Regular) < self.config.unchoked_peers {
            Slot::Regular
        } else if self.count(Slot::Optimistic) < self.config.optimistic_unchoked_peers {
            Slot::Optimistic
        } else {
            return None;
        };
        self.unchoked.insert(peer, slot);
        Some(ChokeDecision::Unchoke)
    }

    /// `peer` disconnected: its slot is free (refilled at the next tick).
    pub fn peer_removed(&mut self, peer: PeerKey) {
        self.unchoked.remove(&peer);
    }

    /// Recomputes the slots if due. `peers` is every connected peer; `seeding` selects the
    /// ranking. Returns the messages to send, in peer order. Before the deadline, nothing.
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        peers: &[PeerChokeInfo],
        seeding: bool,
    ) -> Vec<(PeerKey, ChokeDecision)> {
        if now < self.next {
            return Vec::new();
        }
        self.next = now + self.config.interval;
        let optimistic_round = self.round == 0;
        self.round = (self.round + 1) % self.config.optimistic_every.max(1);

        // Forget peers that are gone.
        self.unchoked
            .retain(|k, _| peers.iter().any(|p| p.peer == *k));

        let mut ranked: Vec<&PeerChokeInfo> = peers.iter().filter(|p| p.interested).collect();
        self.rng.shuffle(&mut ranked);
        if seeding {
            ranked.sort_by_key(|p| std::cmp::Reverse(p.upload_rate));
        } else {
            ranked.sort_by_key(|p| std::cmp::Reverse(p.download_rate));
        }

        let before = self.unchoked.clone();
        let mut regular = 0;
        let mut rest = Vec::new();
        for p in ranked {
            let slot = self.unchoked.get(&p.peer).copied();
            if !optimistic_round && slot == Some(Slot::Optimistic) {
                continue;
            }
            if regular < self.config.unchoked_peers {
                regular += 1;
                self.unchoked.insert(p.peer, Slot::Regular);
            } else {
                rest.push(p.peer);
            }
        }
        if optimistic_round {
            for _ in 0..self.config.optimistic_unchoked_peers {
                if rest.is_empty() {
                    break;
                }
                let k = self.rng.below(rest.len() as u64) as usize;
                let peer = rest.swap_remove(k);
                self.unchoked.insert(peer, Slot::Optimistic);
            }
        }
        for peer in rest {
            self.unchoked.remove(&peer);
        }

        let mut out = Vec::new();
        for p in peers {
            match (
                before.contains_key(&p.peer),
                self.unchoked.contains_key(&p.peer),
            ) {
                (false, true) => out.push((p.peer, ChokeDecision::Unchoke)),
                (true, false) => out.push((p.peer, ChokeDecision::Choke)),
                _ => {}
            }
        }
        out.sort_by_key(|d| d.0);
        out.dedup_by_key(|d| d.0);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(k: u32, interested: bool, down: u64, up: u64) -> PeerChokeInfo {
        PeerChokeInfo {
            peer: PeerKey(k),
            interested,
            download_rate: down,
            upload_rate: up,
        }
    }

    fn at(s: u64) -> Instant {
        Instant::ZERO + Duration::from_secs(s)
    }

    fn unchoked(c: &Choker, n: u32) -> Vec<u32> {
        (0..n).filter(|&k| c.is_unchoked(PeerKey(k))).collect()
    }

    #[test]
    fn a_tick_frees_the_slots_of_peers_that_are_gone() {
        let mut c = Choker::new(ChokerConfig::default(), Seed::from_u64(9), Instant::ZERO);
        let full: Vec<_> = (0..4).map(|k| info(k, true, 100, 0)).collect();
        c.handle_timeout(at(10), &full, false);
        assert_eq!(
            unchoked(&c, 4).len(),
            4,
            "3 regular + 1 optimistic slots taken"
        );
        // All four left without `peer_removed`; only a newcomer is connected at the tick.
        let newcomer = [info(4, false, 0, 0)];
        assert!(c.handle_timeout(at(20), &newcomer, false).is_empty());
        assert_eq!(
            unchoked(&c, 4),
            Vec::<u32>::new(),
            "departed peers forgotten"
        );
        assert_eq!(
            c.handle_interested(PeerKey(4)),
            Some(ChokeDecision::Unchoke),
            "a freed slot serves the newcomer at once"
        );
    }

    #[test]
    fn leeching_ranks_by_download_rate() {
        let mut c = Choker::new(ChokerConfig::default(), Seed::from_u64(1), Instant::ZERO);
        let peers: Vec<_> = (0..8)
            .map(|k| info(k, true, u64::from(k) * 100, 0))
            .collect();
        assert!(c.handle_timeout(at(5), &peers, false).is_empty(), "not due");
        let out = c.handle_timeout(at(10), &peers, false);
        assert!(
            c.is_unchoked(PeerKey(7)) && c.is_unchoked(PeerKey(6)) && c.is_unchoked(PeerKey(5))
        );
        let optimistic: Vec<u32> = (0..8).filter(|&k| c.is_optimistic(PeerKey(k))).collect();
        assert_eq!(optimistic.len(), 1);
        assert!(optimistic[0] < 5);
        assert_eq!(out.len(), 4);
        assert!(out.iter().all(|d| d.1 == ChokeDecision::Unchoke));
        assert_eq!(c.poll_timeout(), Some(at(20)));
    }

    #[test]
    fn seeding_ranks_by_upload_rate_and_ignores_uninterested() {
        let mut c = Choker::new(ChokerConfig::default(), Seed::from_u64(2), Instant::ZERO);
        let peers = [
            info(0, true, 1000, 1),
            info(1, true, 0, 50),
            info(2, false, 0, 900),
            info(3, true, 0, 40),
            info(4, true, 0, 30),
            info(5, true, 0, 20),
        ];
        c.handle_timeout(at(10), &peers, true);
        assert!(
            c.is_unchoked(PeerKey(1)) && c.is_unchoked(PeerKey(3)) && c.is_unchoked(PeerKey(4))
        );
        assert!(
            !c.is_unchoked(PeerKey(2)),
            "not interested: never unchoked by the tick"
        );
        assert!(!c.is_optimistic(PeerKey(1)));
    }

    #[test]
    fn optimistic_slot_rotates_every_third_tick_and_survives_between() {
        let mut c = Choker::new(ChokerConfig::default(), Seed::from_u64(3), Instant::ZERO);
        let peers: Vec<_> = (0..20)
            .map(|k| info(k, true, if k < 3 { 1000 } else { 0 }, 0))
            .collect();
        let mut chosen = Vec::new();
        for tick in 1..=30u64 {
            c.handle_timeout(at(tick * 10), &peers, false);
            let opt: Vec<u32> = (0..20).filter(|&k| c.is_optimistic(PeerKey(k))).collect();
            assert_eq!(opt.len(), 1, "tick {tick}");
            assert_eq!(unchoked(&c, 20).len(), 4);
            if tick % 3 == 1 {
                chosen.push(opt[0]);
            } else {
                assert_eq!(
                    Some(&opt[0]),
                    chosen.last(),
                    "kept between optimistic rounds"
                );
            }
        }
        let distinct: std::collections::BTreeSet<u32> = chosen.iter().copied().collect();
        assert!(distinct.len() > 3, "rotates: {chosen:?}");
    }

    #[test]
    fn slow_peers_get_choked_and_output_lists_changes_only() {
        let mut c = Choker::new(
            ChokerConfig {
                optimistic_unchoked_peers: 0,
                ..ChokerConfig::default()
            },
            Seed::from_u64(4),
            Instant::ZERO,
        );
        let mut peers: Vec<_> = (0..5).map(|k| info(k, true, u64::from(k), 0)).collect();
        c.handle_timeout(at(10), &peers, false);
        assert_eq!(unchoked(&c, 5), [2, 3, 4]);
        peers[0].download_rate = 100;
        let out = c.handle_timeout(at(20), &peers, false);
        assert_eq!(
            out,
            [
                (PeerKey(0), ChokeDecision::Unchoke),
                (PeerKey(2), ChokeDecision::Choke)
            ]
        );
        assert!(c.handle_timeout(at(30), &peers, false).is_empty());
    }

    #[test]
    fn fast_unchoke_and_removal() {
        let mut c = Choker::new(ChokerConfig::default(), Seed::from_u64(5), Instant::ZERO);
        for k in 0..3 {
            assert_eq!(
                c.handle_interested(PeerKey(k)),
                Some(ChokeDecision::Unchoke)
            );
        }
        assert_eq!(
            c.handle_interested(PeerKey(3)),
            Some(ChokeDecision::Unchoke)
        );
        assert!(c.is_optimistic(PeerKey(3)));
        assert_eq!(c.handle_interested(PeerKey(4)), None);
        assert_eq!(c.handle_interested(PeerKey(0)), None, "already unchoked");
        c.peer_removed(PeerKey(1));
        assert_eq!(
            c.handle_interested(PeerKey(4)),
            Some(ChokeDecision::Unchoke)
        );
    }

    #[test]
    fn deterministic_for_a_seed() {
        let run = |seed| {
            let mut c = Choker::new(ChokerConfig::default(), Seed::from_u64(seed), Instant::ZERO);
            let peers: Vec<_> = (0..30).map(|k| info(k, true, 7, 0)).collect();
            c.handle_timeout(at(10), &peers, false)
        };
        assert_eq!(run(9), run(9));
        assert!(
            (0..6)
                .map(run)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
                > 1
        );
    }
}

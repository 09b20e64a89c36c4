//! Peers other nodes announced to us, served in `get_peers` replies.
//!
//! Bounded twice: at most `max_peers_per_info_hash` peers per info-hash (the one expiring
//! soonest is dropped for a newcomer) and at most `max_info_hashes` info-hashes (the one
//! announced to least recently is dropped). Entries expire `ttl` after their last announce.
//! Everything is kept in `BTreeMap`s, so the order is deterministic.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::InfoHash;
use crate::rng::Rng;
use crate::time::Instant;

#[derive(Debug, Clone, Default)]
struct Swarm {
    /// Peer → expiry.
    peers: BTreeMap<SocketAddr, Instant>,
    last_announce: Instant,
}

/// Announced peers by info-hash.
#[derive(Debug, Clone)]
pub struct PeerStore {
    swarms: BTreeMap<InfoHash, Swarm>,
    max_info_hashes: usize,
    max_peers_per_info_hash: usize,
    ttl: Duration,
}

impl PeerStore {
    /// An empty store with its limits.
    pub fn new(max_info_hashes: usize, max_peers_per_info_hash: usize, ttl: Duration) -> Self {
        PeerStore {
            swarms: BTreeMap::new(),
            max_info_hashes,
            max_peers_per_info_hash,
            ttl,
        }
    }

    /// Records that `peer` downloads `info_hash`. Returns false if the limits are zero.
    pub fn announce(&mut self, now: Instant, info_hash: InfoHash, peer: SocketAddr) -> bool {
        if self.max_info_hashes == 0 || self.max_peers_per_info_hash == 0 {
            return false;
        }
        if !self.swarms.contains_key(&info_hash) && self.swarms.len() >= self.max_info_hashes {
            self.expire(now);
            if self.swarms.len() >= self.max_info_hashes {
                let oldest = self
                    .swarms
                    .iter()
                    .min_by_key(|(_, s)| s.last_announce)
                    .map(|(h, _)| *h);
                if let Some(h) = oldest {
                    self.swarms.remove(&h);
                }
            }
        }
        let swarm = self.swarms.entry(info_hash).or_default();
        swarm.last_announce = now;
        if !swarm.peers.contains_key(&peer) && swarm.peers.len() >= self.max_peers_per_info_hash {
            swarm.peers.retain(|_, exp| *exp > now);
            if swarm.peers.len() >= self.max_peers_per_info_hash {
                let soonest = swarm.peers.iter().min_by_key(|(_, e)| **e).map(|(a, _)| *a);
                if let Some(a) = soonest {
                    swarm.peers.remove(&a);
                }
            }
        }
        swarm.peers.insert(peer, now + self.ttl);
        true
    }

    /// Up to `max` live peers for `info_hash` of the given family (`v6`), chosen at random when
    /// there are more.
    pub fn peers(
        &self,
        now: Instant,
        info_hash: &InfoHash,
        v6: bool,
        max: usize,
        rng: &mut Rng,
    ) -> Vec<SocketAddr> {
        let Some(swarm) = self.swarms.get(info_hash) else {
            return Vec::new();
        };
        let mut live: Vec<SocketAddr> = swarm
            .peers
            .iter()
            .filter(|(a, exp)| **exp > now && a.is_ipv6() == v6)
            .map(|(a, _)| *a)
            .collect();
        if live.len() > max {
            rng.shuffle(&mut live);
            live.truncate(max);
            live.sort_unstable();
        }
        live
    }

    /// Drops expired peers and empty info-hashes.
    pub fn expire(&mut self, now: Instant) {
        self.swarms.retain(|_, s| {
            s.peers.retain(|_, exp| *exp > now);
            !s.peers.is_empty()
        });
    }

    /// Forgets an info-hash.
    pub fn remove(&mut self, info_hash: &InfoHash) {
        self.swarms.remove(info_hash);
    }

    /// Number of info-hashes held.
    pub fn info_hashes(&self) -> usize {
        self.swarms.len()
    }

    /// Number of peers held for `info_hash` (expired ones included until [`Self::expire`]).
    pub fn peer_count(&self, info_hash: &InfoHash) -> usize {
        self.swarms.get(info_hash).map_or(0, |s| s.peers.len())
    }

    /// The earliest expiry, if any peer is held.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.swarms
            .values()
            .flat_map(|s| s.peers.values().copied())
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Seed;
    use std::net::{IpAddr, Ipv4Addr};

    fn addr(i: u32) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), 6881)
    }

    #[test]
    fn limits_and_expiry() {
        let ttl = Duration::from_mins(30);
        let mut s = PeerStore::new(3, 4, ttl);
        let mut rng = Rng::new(Seed::from_u64(1));
        let t0 = Instant::ZERO;
        let h = |i: u8| InfoHash([i; 20]);
        for i in 0..10u32 {
            assert!(s.announce(t0 + Duration::from_secs(u64::from(i)), h(1), addr(i)));
        }
        assert_eq!(s.peer_count(&h(1)), 4, "per-info-hash limit");
        // The survivors are the most recent ones.
        let now = t0 + Duration::from_secs(10);
        assert_eq!(
            s.peers(now, &h(1), false, 10, &mut rng),
            vec![addr(6), addr(7), addr(8), addr(9)]
        );
        assert_eq!(s.peers(now, &h(1), false, 2, &mut rng).len(), 2);
        assert!(s.peers(now, &h(1), true, 10, &mut rng).is_empty());

        for i in 2..6u8 {
            s.announce(now + Duration::from_secs(u64::from(i)), h(i), addr(1));
        }
        assert_eq!(s.info_hashes(), 3, "total info-hash limit");
        assert_eq!(s.peer_count(&h(1)), 0, "least recently announced dropped");
        assert_eq!(s.peer_count(&h(5)), 1);

        // Expiry.
        let late = now + ttl + Duration::from_secs(6);
        assert!(s.peers(late, &h(5), false, 10, &mut rng).is_empty());
        assert!(s.next_expiry().is_some());
        s.expire(late);
        assert_eq!(s.info_hashes(), 0);
        assert_eq!(s.next_expiry(), None);
    }

    #[test]
    fn reannounce_refreshes() {
        let ttl = Duration::from_secs(100);
        let mut s = PeerStore::new(10, 10, ttl);
        let mut rng = Rng::new(Seed::from_u64(1));
        let h = InfoHash([1; 20]);
        s.announce(Instant::ZERO, h, addr(1));
        s.announce(Instant::ZERO + Duration::from_secs(90), h, addr(1));
        let t = Instant::ZERO + Duration::from_secs(150);
        assert_eq!(s.peers(t, &h, false, 10, &mut rng), vec![addr(1)]);
        s.remove(&h);
        assert_eq!(s.info_hashes(), 0);
    }
}

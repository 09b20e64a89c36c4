//! One iterative Kademlia lookup (`find_node` or `get_peers`) toward a target.
//!
//! The lookup keeps candidates sorted by XOR distance to the target. It queries the closest
//! not-yet-queried candidate among the `k` closest non-failed ones, at most `alpha` at a time,
//! and folds the `nodes` of every answer back into the candidates. It is complete when the `k`
//! closest non-failed candidates have all answered (or nothing is left to ask). Bootstrap
//! addresses with unknown ids are asked first, as "seeds".
//!
//! This type only decides *whom* to ask; the [`super::Dht`] machine sends the queries, tracks
//! their transactions and timeouts, and reports answers back. Bounded: `max_candidates`
//! candidates (farthest dropped first), `max_queries` queries in all, `max_peers` peers kept.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use super::krpc::CompactNode;
use super::node_id::NodeId;

/// Identifies a lookup in commands and events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LookupId(pub u64);

/// Lookup limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupConfig {
    /// Queries in flight at once.
    pub alpha: usize,
    /// How many closest nodes must answer for completion (Kademlia's k).
    pub k: usize,
    /// Most candidates kept.
    pub max_candidates: usize,
    /// Most queries sent in all.
    pub max_queries: u32,
    /// Most distinct peers collected.
    pub max_peers: usize,
}

impl Default for LookupConfig {
    fn default() -> Self {
        LookupConfig {
            alpha: 3,
            k: 8,
            max_candidates: 64,
            max_queries: 128,
            max_peers: 512,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Fresh,
    InFlight,
    Responded,
    Failed,
}

#[derive(Debug, Clone)]
struct Candidate {
    id: NodeId,
    addr: SocketAddr,
    state: State,
    token: Option<Vec<u8>>,
    /// Round trips it took to learn of this node (seeds and table nodes: 0).
    depth: u32,
}

/// What to query next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ask {
    /// Where.
    pub addr: SocketAddr,
    /// The node's id, if known (bootstrap seeds have none).
    pub id: Option<NodeId>,
}

/// An iterative lookup.
#[derive(Debug, Clone)]
pub struct Lookup {
    target: NodeId,
    cfg: LookupConfig,
    /// Distance to target → candidate.
    candidates: BTreeMap<NodeId, Candidate>,
    /// Address → distance key, for dedup and answers.
    by_addr: BTreeMap<SocketAddr, NodeId>,
    seeds: Vec<SocketAddr>,
    seeds_in_flight: BTreeSet<SocketAddr>,
    in_flight: usize,
    queries: u32,
    peers: BTreeSet<SocketAddr>,
    hops: u32,
}

impl Lookup {
    /// A lookup for `target`.
    pub fn new(target: NodeId, cfg: LookupConfig) -> Self {
        Lookup {
            target,
            cfg,
            candidates: BTreeMap::new(),
            by_addr: BTreeMap::new(),
            seeds: Vec::new(),
            seeds_in_flight: BTreeSet::new(),
            in_flight: 0,
            queries: 0,
            peers: BTreeSet::new(),
            hops: 0,
        }
    }

    /// The target.
    pub fn target(&self) -> NodeId {
        self.target
    }

    /// Queries sent so far.
    pub fn queries(&self) -> u32 {
        self.queries
    }

    /// The most round trips any answering node was away from the starting set.
    pub fn hops(&self) -> u32 {
        self.hops
    }

    /// Distinct peers collected.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Adds an address with an unknown id, asked before the candidates.
    pub fn add_seed(&mut self, addr: SocketAddr) {
        if self.seeds.len() < self.cfg.max_candidates
            && !self.seeds.contains(&addr)
            && !self.by_addr.contains_key(&addr)
        {
            self.seeds.push(addr);
        }
    }

    /// Adds candidates learned `depth` round trips from the start.
    pub fn add_candidates(&mut self, nodes: &[CompactNode], depth: u32) {
        for n in nodes {
            let key = n.id.distance(&self.target);
            if self.candidates.contains_key(&key) || self.by_addr.contains_key(&n.addr) {
                continue;
            }
            self.candidates.insert(
                key,
                Candidate {
                    id: n.id,
                    addr: n.addr,
                    state: State::Fresh,
                    token: None,
                    depth,
                },
            );
            self.by_addr.insert(n.addr, key);
        }
        self.trim();
    }

    fn trim(&mut self) {
        while self.candidates.len() > self.cfg.max_candidates {
            // Drop the farthest candidate that is not being asked right now.
            let victim = self
                .candidates
                .iter()
                .rev()
                .find(|(_, c)| c.state != State::InFlight)
                .map(|(k, c)| (*k, c.addr));
            match victim {
                Some((k, addr)) => {
                    self.candidates.remove(&k);
                    self.by_addr.remove(&addr);
                }
                None => break,
            }
        }
    }

    /// The next node to ask, if the parallelism and query budget allow one now. The caller
    /// must report its outcome with [`Self::on_response`] or [`Self::on_failure`].
    pub fn next_ask(&mut self) -> Option<Ask> {
        if self.in_flight >= self.cfg.alpha || self.queries >= self.cfg.max_queries {
            return None;
        }
        if let Some(addr) = self.seeds.pop() {
            self.seeds_in_flight.insert(addr);
            self.in_flight += 1;
            self.queries += 1;
            return Some(Ask { addr, id: None });
        }
        let k = self.cfg.k;
        let c = self
            .candidates
            .values_mut()
            .filter(|c| c.state != State::Failed)
            .take(k)
            .find(|c| c.state == State::Fresh)?;
        c.state = State::InFlight;
        self.in_flight += 1;
        self.queries += 1;
        Some(Ask {
            addr: c.addr,
            id: Some(c.id),
        })
    }

    /// True when the `k` closest non-failed candidates have answered (or no query can
    /// still change the result).
    pub fn is_done(&self) -> bool {
        if !self.seeds.is_empty() && self.queries < self.cfg.max_queries {
            return false;
        }
        if !self.seeds_in_flight.is_empty() {
            return false;
        }
        let budget_left = self.queries < self.cfg.max_queries;
        !self
            .candidates
            .values()
            .filter(|c| c.state != State::Failed)
            .take(self.cfg.k)
            .any(|c| c.state == State::InFlight || (budget_left && c.state == State::Fresh))
    }

    /// Whether `addr` has a query from this lookup in flight.
    pub fn is_asking(&self, addr: &SocketAddr) -> bool {
        self.seeds_in_flight.contains(addr)
            || self
                .by_addr
                .get(addr)
                .and_then(|k| self.candidates.get(k))
                .is_some_and(|c| c.state == State::InFlight)
    }

    /// `addr` (claiming `id`) answered with `nodes`, `values` and `token`. Returns the peers
    /// that are new to this lookup.
    pub fn on_response(
        &mut self,
        addr: SocketAddr,
        id: NodeId,
        nodes: &[CompactNode],
        values: &[SocketAddr],
        token: Option<Vec<u8>>,
    ) -> Vec<SocketAddr> {
        let mut depth = 0;
        if self.seeds_in_flight.remove(&addr) {
            self.in_flight -= 1;
        } else if let Some(key) = self.by_addr.get(&addr).copied() {
            if let Some(c) = self.candidates.get_mut(&key) {
                if c.state == State::InFlight {
                    self.in_flight -= 1;
                }
                depth = c.depth;
                if c.id != id {
                    // It answered under another id: keep what it says it is.
                    self.candidates.remove(&key);
                    self.by_addr.remove(&addr);
                }
            }
        } else {
            return Vec::new();
        }
        let key = id.distance(&self.target);
        if let Some(existing) = self.candidates.get(&key)
            && existing.addr != addr
        {
            // Another address already claims this id; do not let it in twice.
            return Vec::new();
        }
        self.candidates.insert(
            key,
            Candidate {
                id,
                addr,
                state: State::Responded,
                token,
                depth,
            },
        );
        self.by_addr.insert(addr, key);
        self.hops = self.hops.max(depth + 1);
        self.add_candidates(nodes, depth + 1);
        let mut new = Vec::new();
        for v in values {
            if self.peers.len() >= self.cfg.max_peers {
                break;
            }
            if self.peers.insert(*v) {
                new.push(*v);
            }
        }
        new
    }

    /// Peers known without asking (our own peer store): collected like peers from a reply
    /// (bounded by `max_peers`). Returns those new to this lookup.
    pub fn add_peers(&mut self, peers: &[SocketAddr]) -> Vec<SocketAddr> {
        let mut new = Vec::new();
        for p in peers {
            if self.peers.len() >= self.cfg.max_peers {
                break;
            }
            if self.peers.insert(*p) {
                new.push(*p);
            }
        }
        new
    }

    /// The query to `addr` failed (timed out or answered with an error).
    pub fn on_failure(&mut self, addr: SocketAddr) {
        if self.seeds_in_flight.remove(&addr) {
            self.in_flight -= 1;
            return;
        }
        if let Some(key) = self.by_addr.get(&addr)
            && let Some(c) = self.candidates.get_mut(key)
        {
            if c.state == State::InFlight {
                self.in_flight -= 1;
            }
            c.state = State::Failed;
        }
    }

    /// The `k` closest nodes that answered, with the tokens they gave.
    pub fn closest_responded(&self) -> Vec<(CompactNode, Option<Vec<u8>>)> {
        self.candidates
            .values()
            .filter(|c| c.state == State::Responded)
            .take(self.cfg.k)
            .map(|c| {
                (
                    CompactNode {
                        id: c.id,
                        addr: c.addr,
                    },
                    c.token.clone(),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Rng, Seed};
    use std::net::{IpAddr, Ipv4Addr};

    fn addr(i: u32) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), 6881)
    }

    /// A static network: node `i` answers with the 8 nodes closest to the target it knows of.
    #[test]
    fn converges_on_the_closest_nodes_with_bounded_parallelism() {
        let mut rng = Rng::new(Seed::from_u64(4));
        let ids: Vec<NodeId> = (0..500).map(|_| NodeId::random(&mut rng)).collect();
        let target = NodeId::random(&mut rng);
        let node = |i: usize| CompactNode {
            id: ids[i],
            addr: addr(i as u32),
        };
        let mut l = Lookup::new(target, LookupConfig::default());
        l.add_candidates(&[node(0), node(1), node(2)], 0);
        let mut rounds = 0;
        while !l.is_done() {
            rounds += 1;
            assert!(rounds < 100);
            let mut asks = Vec::new();
            while let Some(a) = l.next_ask() {
                asks.push(a);
            }
            assert!(!asks.is_empty() && asks.len() <= 3);
            for a in asks {
                let i = (u32::from_be_bytes(match a.addr.ip() {
                    IpAddr::V4(v) => v.octets(),
                    IpAddr::V6(_) => unreachable!(),
                }) - 0x0a00_0000) as usize;
                // Each node knows a pseudo-random three quarters of the network.
                let mut known: Vec<usize> = (0..ids.len())
                    .filter(|j| !(i * 31 + j * 17).is_multiple_of(4))
                    .collect();
                known.sort_by_key(|j| ids[*j].distance(&target));
                let nodes: Vec<CompactNode> = known.iter().take(8).map(|j| node(*j)).collect();
                let peers = if i == 7 { vec![addr(9999)] } else { vec![] };
                l.on_response(a.addr, ids[i], &nodes, &peers, Some(vec![i as u8]));
            }
        }
        let mut all: Vec<usize> = (0..ids.len()).collect();
        all.sort_by_key(|j| ids[*j].distance(&target));
        let best: Vec<NodeId> = all.iter().take(8).map(|j| ids[*j]).collect();
        let got: Vec<NodeId> = l.closest_responded().iter().map(|(n, _)| n.id).collect();
        assert_eq!(got, best);
        assert!(l.closest_responded().iter().all(|(_, t)| t.is_some()));
        assert!(l.queries() <= 128);
        assert!(l.hops() >= 1);
    }

    #[test]
    fn failures_and_seeds() {
        let target = NodeId([0; 20]);
        let mut l = Lookup::new(target, LookupConfig::default());
        l.add_seed(addr(1));
        assert!(!l.is_done());
        let a = l.next_ask().unwrap();
        assert_eq!(a.id, None);
        assert!(l.is_asking(&addr(1)));
        assert!(!l.is_done());
        l.on_failure(addr(1));
        assert!(l.is_done(), "no seeds, no candidates: nothing left");

        let mut l = Lookup::new(target, LookupConfig::default());
        let n = |b: u8| CompactNode {
            id: NodeId([b; 20]),
            addr: addr(u32::from(b)),
        };
        l.add_candidates(&[n(1), n(2)], 0);
        let a1 = l.next_ask().unwrap();
        let a2 = l.next_ask().unwrap();
        assert!(l.next_ask().is_none());
        l.on_failure(a1.addr);
        assert!(!l.is_done());
        l.on_response(a2.addr, a2.id.unwrap(), &[], &[], None);
        assert!(l.is_done());
        assert_eq!(l.closest_responded().len(), 1);
    }

    #[test]
    fn candidates_are_bounded() {
        let mut rng = Rng::new(Seed::from_u64(2));
        let cfg = LookupConfig {
            max_candidates: 16,
            ..LookupConfig::default()
        };
        let mut l = Lookup::new(NodeId::random(&mut rng), cfg);
        let nodes: Vec<CompactNode> = (0..100)
            .map(|i| CompactNode {
                id: NodeId::random(&mut rng),
                addr: addr(i),
            })
            .collect();
        l.add_candidates(&nodes, 0);
        assert_eq!(l.candidates.len(), 16);
        assert_eq!(l.by_addr.len(), 16);
    }
}

//! The Kademlia routing table: k-buckets split around our own id.
//!
//! Bucket `i` holds the nodes whose id shares exactly `i` leading bits with ours, except the
//! last bucket, which holds everything at least that close. When the last bucket is full and a
//! newcomer belongs in it, it splits (up to 160 buckets); other full buckets keep a bounded
//! replacement cache and ask the machine to ping their least recently seen questionable node.
//!
//! Node states follow BEP 5: *good* if it answered us within `questionable_after` (15 min), or
//! answered us once and queried us within that time; *bad* after `max_failures` consecutive
//! unanswered queries; *questionable* otherwise. Bad nodes are replaced first, from the
//! replacement cache when a node fails and by any newcomer otherwise.
//!
//! Bounded: at most `k` nodes per bucket, `max_replacements` cached per bucket, `max_nodes` in
//! all, 160 buckets.
//!
//! Sybil/eclipse resistance (`restrict_ips`, on by default, like libtorrent's
//! `dht_restrict_routing_ips`): one node per IP address in the whole table, and at most
//! [`MAX_NODES_PER_SUBNET_PER_BUCKET`] nodes (live and replacements together) from one /24
//! (IPv4) or /64 (IPv6) in a bucket, so one host or one rented subnet cannot fill the buckets
//! around a target. Local addresses (the BEP 42 exemptions: loopback, private, link-local) are
//! not restricted: a LAN or a test network legitimately puts many nodes in one subnet.
//! A known address (IP and port) that shows up with another id is refused unless it proved the
//! new id with a verified round trip (a node that restarted), which then replaces the old entry.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;

use super::krpc::CompactNode;
use super::node_id::{NodeId, is_bep42_exempt};
use crate::rng::Rng;
use crate::time::Instant;

/// Most buckets a table can have (one per bit of the id space).
pub const MAX_BUCKETS: usize = 160;

/// Most nodes (live and replacements together) from one /24 (IPv4) or /64 (IPv6) in one bucket
/// when `restrict_ips` is on: an attacker owning a subnet gets this many slots near a target,
/// not a whole bucket. Two rather than libtorrent's one, so two hosts behind one provider
/// subnet can still share a bucket.
pub const MAX_NODES_PER_SUBNET_PER_BUCKET: usize = 2;

/// Prefix length of the IPv4 subnet counted by [`MAX_NODES_PER_SUBNET_PER_BUCKET`].
pub const SUBNET_PREFIX_V4: u32 = 24;

/// Prefix length of the IPv6 subnet counted by [`MAX_NODES_PER_SUBNET_PER_BUCKET`].
pub const SUBNET_PREFIX_V6: u32 = 64;

/// The /24 (IPv4) or /64 (IPv6) holding `ip`, as its network address: the unit one operator
/// typically controls, used to cap routing-table slots and external-address votes per subnet.
pub fn subnet_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX << (32 - SUBNET_PREFIX_V4);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX << (128 - SUBNET_PREFIX_V6);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

/// Routing table limits and timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutingConfig {
    /// Bucket size (Kademlia's k).
    pub k: usize,
    /// Most nodes in the whole table.
    pub max_nodes: usize,
    /// Replacement cache size per bucket.
    pub max_replacements: usize,
    /// A node that has not answered for this long becomes questionable.
    pub questionable_after: Duration,
    /// Consecutive failures that make a node bad.
    pub max_failures: u8,
    /// A bucket that has not changed for this long is refreshed with a lookup.
    pub refresh_interval: Duration,
    /// Refuse nodes whose id does not satisfy BEP 42 for their address.
    pub enforce_node_id: bool,
    /// One node per IP and [`MAX_NODES_PER_SUBNET_PER_BUCKET`] per subnet in a bucket, for
    /// non-local addresses (libtorrent's `dht_restrict_routing_ips`); stops one host or subnet
    /// from eclipsing a region of the id space.
    pub restrict_ips: bool,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            k: 8,
            max_nodes: 500,
            max_replacements: 8,
            questionable_after: Duration::from_mins(15),
            max_failures: 2,
            refresh_interval: Duration::from_mins(15),
            enforce_node_id: false,
            restrict_ips: true,
        }
    }
}

/// BEP 5 node states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NodeState {
    /// Recently responsive.
    Good,
    /// Not heard from for a while, or never answered.
    Questionable,
    /// Failed to answer repeatedly.
    Bad,
}

/// One node in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeEntry {
    /// Its id.
    pub id: NodeId,
    /// Its UDP address.
    pub addr: SocketAddr,
    /// When it last answered one of our queries.
    pub last_response: Option<Instant>,
    /// When it last queried us.
    pub last_query: Option<Instant>,
    /// Consecutive unanswered queries.
    pub failures: u8,
}

impl NodeEntry {
    /// The node's state at `now`.
    pub fn state(&self, now: Instant, cfg: &RoutingConfig) -> NodeState {
        if self.failures >= cfg.max_failures {
            return NodeState::Bad;
        }
        let recent = |t: Option<Instant>| {
            t.is_some_and(|t| now.saturating_duration_since(t) < cfg.questionable_after)
        };
        if recent(self.last_response) || (self.last_response.is_some() && recent(self.last_query)) {
            NodeState::Good
        } else {
            NodeState::Questionable
        }
    }

    /// The node in compact form.
    pub fn compact(&self) -> CompactNode {
        CompactNode {
            id: self.id,
            addr: self.addr,
        }
    }
}

/// How we heard from a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// It answered our query (a verified round trip).
    Response,
    /// It queried us.
    Query,
    /// Someone told us about it (imported or from a `nodes` list); never contacted.
    Hearsay,
}

/// What [`RoutingTable::heard_from`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// The node was already in the table; its timestamps were updated.
    Updated,
    /// The node was added.
    Added,
    /// Its bucket is full: the node went to the replacement cache, and `ping` (if any) is a
    /// questionable node of that bucket the machine should ping to see if it is still alive.
    Cached {
        /// A questionable node worth pinging.
        ping: Option<CompactNode>,
    },
    /// Refused: our own id, an id that fails BEP 42 under enforcement, an id/address
    /// conflicting with a node we have, or (under `restrict_ips`) an IP already in the table
    /// or a subnet already holding its share of the bucket.
    Rejected,
}

#[derive(Debug, Clone)]
struct Bucket {
    nodes: Vec<NodeEntry>,
    replacements: Vec<NodeEntry>,
    last_changed: Instant,
}

impl Bucket {
    fn new(now: Instant) -> Self {
        Bucket {
            nodes: Vec::new(),
            replacements: Vec::new(),
            last_changed: now,
        }
    }
}

/// A routing table for one address family.
#[derive(Debug, Clone)]
pub struct RoutingTable {
    own: NodeId,
    cfg: RoutingConfig,
    buckets: Vec<Bucket>,
    by_addr: BTreeMap<SocketAddr, NodeId>,
}

impl RoutingTable {
    /// An empty table around `own`.
    pub fn new(own: NodeId, cfg: RoutingConfig, now: Instant) -> Self {
        RoutingTable {
            own,
            cfg,
            buckets: vec![Bucket::new(now)],
            by_addr: BTreeMap::new(),
        }
    }

    /// Our id.
    pub fn own_id(&self) -> NodeId {
        self.own
    }

    /// The limits in force.
    pub fn config(&self) -> &RoutingConfig {
        &self.cfg
    }

    /// Number of nodes (replacements not counted).
    pub fn len(&self) -> usize {
        self.by_addr.len()
    }

    /// True when the table holds no node.
    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }

    /// Number of buckets.
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// Node count of each bucket, nearest-to-farthest order reversed (bucket 0 is the farthest
    /// half of the id space).
    pub fn bucket_sizes(&self) -> Vec<usize> {
        self.buckets.iter().map(|b| b.nodes.len()).collect()
    }

    /// Every node, bucket by bucket.
    pub fn iter(&self) -> impl Iterator<Item = &NodeEntry> {
        self.buckets.iter().flat_map(|b| b.nodes.iter())
    }

    fn bucket_index(&self, id: &NodeId) -> usize {
        self.own.common_prefix_len(id).min(self.buckets.len() - 1)
    }

    /// The node with this id.
    pub fn get(&self, id: &NodeId) -> Option<&NodeEntry> {
        let b = &self.buckets[self.bucket_index(id)];
        b.nodes.iter().find(|n| n.id == *id)
    }

    /// The node at this address.
    pub fn get_by_addr(&self, addr: &SocketAddr) -> Option<&NodeEntry> {
        self.by_addr.get(addr).and_then(|id| self.get(id))
    }

    /// True if the node at `addr` has answered one of our queries (its address is verified).
    pub fn is_verified(&self, addr: &SocketAddr) -> bool {
        self.get_by_addr(addr)
            .is_some_and(|n| n.last_response.is_some())
    }

    /// Records that we heard from `id` at `addr`.
    pub fn heard_from(&mut self, now: Instant, id: NodeId, addr: SocketAddr, seen: Seen) -> Insert {
        if id == self.own || (self.cfg.enforce_node_id && !id.is_secure_for(addr.ip())) {
            return Insert::Rejected;
        }
        if self.get(&id).is_some_and(|n| n.addr != addr) {
            // A known id at another address: keep the one we know.
            return Insert::Rejected;
        }
        if let Some(&known) = self.by_addr.get(&addr)
            && known != id
        {
            // The same IP and port with another id. Only a verified round trip (the endpoint
            // answered our query under the new id) shows a restarted node; a query or hearsay
            // may be an attempt to poison the table.
            if seen != Seen::Response {
                return Insert::Rejected;
            }
            self.remove(&known);
        }
        if !self.by_addr.contains_key(&addr) && self.ip_taken(addr) {
            return Insert::Rejected;
        }
        let stamp = |n: &mut NodeEntry| match seen {
            Seen::Response => {
                n.last_response = Some(now);
                n.failures = 0;
            }
            Seen::Query => n.last_query = Some(now),
            Seen::Hearsay => {}
        };
        let idx = self.bucket_index(&id);
        let bucket = &mut self.buckets[idx];
        if let Some(n) = bucket.nodes.iter_mut().find(|n| n.id == id) {
            if n.addr != addr {
                return Insert::Rejected;
            }
            stamp(n);
            if seen == Seen::Response {
                bucket.last_changed = now;
            }
            return Insert::Updated;
        }
        let mut entry = NodeEntry {
            id,
            addr,
            last_response: None,
            last_query: None,
            failures: 0,
        };
        stamp(&mut entry);
        self.insert_entry(now, entry)
    }

    /// True when `restrict_ips` applies to `ip` (it is not a local address).
    fn restricted(&self, ip: IpAddr) -> bool {
        self.cfg.restrict_ips && !is_bep42_exempt(ip)
    }

    /// True when, under `restrict_ips`, another node of the table uses `addr`'s IP (on another
    /// port).
    fn ip_taken(&self, addr: SocketAddr) -> bool {
        if !self.restricted(addr.ip()) {
            return false;
        }
        let ip = addr.ip();
        let hi = match ip {
            IpAddr::V4(_) => SocketAddr::new(ip, u16::MAX),
            IpAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(v6, u16::MAX, u32::MAX, u32::MAX)),
        };
        self.by_addr
            .range(SocketAddr::new(ip, 0)..=hi)
            .any(|(a, _)| a.ip() == ip && *a != addr)
    }

    /// True when, under `restrict_ips`, bucket `idx` already holds its share of `entry`'s
    /// subnet (live nodes and replacements, `entry` itself not counted).
    fn subnet_full(&self, idx: usize, entry: &NodeEntry) -> bool {
        if !self.restricted(entry.addr.ip()) {
            return false;
        }
        let net = subnet_of(entry.addr.ip());
        let b = &self.buckets[idx];
        b.nodes
            .iter()
            .chain(b.replacements.iter())
            .filter(|n| n.id != entry.id && subnet_of(n.addr.ip()) == net)
            .count()
            >= MAX_NODES_PER_SUBNET_PER_BUCKET
    }

    fn insert_entry(&mut self, now: Instant, entry: NodeEntry) -> Insert {
        loop {
            let idx = self.bucket_index(&entry.id);
            if self.subnet_full(idx, &entry) {
                return Insert::Rejected;
            }
            let last = self.buckets.len() - 1;
            let room = self.len() < self.cfg.max_nodes;
            let cfg = self.cfg;
            let bucket = &mut self.buckets[idx];
            if bucket.nodes.len() < cfg.k && room {
                bucket.nodes.push(entry);
                bucket.last_changed = now;
                bucket.replacements.retain(|r| r.id != entry.id);
                self.by_addr.insert(entry.addr, entry.id);
                return Insert::Added;
            }
            if let Some(pos) = bucket
                .nodes
                .iter()
                .position(|n| n.state(now, &cfg) == NodeState::Bad)
            {
                let old = std::mem::replace(&mut bucket.nodes[pos], entry);
                bucket.last_changed = now;
                bucket.replacements.retain(|r| r.id != entry.id);
                self.by_addr.remove(&old.addr);
                self.by_addr.insert(entry.addr, entry.id);
                return Insert::Added;
            }
            if idx == last
                && bucket.nodes.len() >= cfg.k
                && self.buckets.len() < MAX_BUCKETS
                && room
            {
                self.split(now);
                continue;
            }
            break;
        }
        // Full: keep it as a replacement (unverified hearsay is not worth a slot).
        let cfg = self.cfg;
        let idx = self.bucket_index(&entry.id);
        let bucket = &mut self.buckets[idx];
        if entry.last_response.is_some() || entry.last_query.is_some() {
            bucket
                .replacements
                .retain(|r| r.id != entry.id && r.addr != entry.addr);
            bucket.replacements.push(entry);
            if bucket.replacements.len() > cfg.max_replacements {
                bucket.replacements.remove(0);
            }
        }
        let ping = bucket
            .nodes
            .iter()
            .filter(|n| n.state(now, &cfg) == NodeState::Questionable)
            .min_by_key(|n| n.last_response)
            .map(NodeEntry::compact);
        Insert::Cached { ping }
    }

    fn split(&mut self, now: Instant) {
        let last = self.buckets.len() - 1;
        let mut new = Bucket::new(now);
        let own = self.own;
        let old = &mut self.buckets[last];
        let (stay, go): (Vec<_>, Vec<_>) = old
            .nodes
            .drain(..)
            .partition(|n| own.common_prefix_len(&n.id) == last);
        old.nodes = stay;
        let (rstay, rgo): (Vec<_>, Vec<_>) = old
            .replacements
            .drain(..)
            .partition(|n| own.common_prefix_len(&n.id) == last);
        old.replacements = rstay;
        new.nodes = go;
        new.replacements = rgo;
        self.buckets.push(new);
    }

    /// Records an unanswered query to `id`. When the node turns bad and its bucket has a
    /// replacement, the replacement takes its place.
    pub fn failed(&mut self, now: Instant, id: &NodeId) {
        let cfg = self.cfg;
        let idx = self.bucket_index(id);
        let bucket = &mut self.buckets[idx];
        let Some(pos) = bucket.nodes.iter().position(|n| n.id == *id) else {
            return;
        };
        let node = &mut bucket.nodes[pos];
        node.failures = node.failures.saturating_add(1);
        if node.state(now, &cfg) == NodeState::Bad {
            // Prefer the most recently responsive replacement.
            let best = bucket
                .replacements
                .iter()
                .enumerate()
                .max_by_key(|(_, r)| (r.last_response, r.last_query))
                .map(|(i, _)| i);
            if let Some(i) = best {
                let repl = bucket.replacements.remove(i);
                // The replacement's address or IP may have entered the table since.
                if self.by_addr.contains_key(&repl.addr) || self.ip_taken(repl.addr) {
                    return;
                }
                let bucket = &mut self.buckets[idx];
                let old = std::mem::replace(&mut bucket.nodes[pos], repl);
                bucket.last_changed = now;
                self.by_addr.remove(&old.addr);
                self.by_addr.insert(repl.addr, repl.id);
            }
        }
    }

    /// Removes a node.
    pub fn remove(&mut self, id: &NodeId) -> Option<NodeEntry> {
        let idx = self.bucket_index(id);
        let bucket = &mut self.buckets[idx];
        let pos = bucket.nodes.iter().position(|n| n.id == *id)?;
        let n = bucket.nodes.remove(pos);
        self.by_addr.remove(&n.addr);
        Some(n)
    }

    /// Up to `count` non-bad nodes closest to `target`, closest first.
    pub fn closest(&self, now: Instant, target: &NodeId, count: usize) -> Vec<CompactNode> {
        let mut all: Vec<(NodeId, CompactNode)> = self
            .iter()
            .filter(|n| n.state(now, &self.cfg) != NodeState::Bad)
            .map(|n| (n.id.distance(target), n.compact()))
            .collect();
        if all.len() > count {
            all.select_nth_unstable_by(count, |a, b| a.0.cmp(&b.0));
            all.truncate(count);
        }
        all.sort_unstable_by_key(|a| a.0);
        all.into_iter().map(|(_, n)| n).collect()
    }

    /// Nodes that are questionable at `now` (candidates for a ping), least recently heard first,
    /// at most `max`.
    pub fn questionable(&self, now: Instant, max: usize) -> Vec<CompactNode> {
        let mut q: Vec<&NodeEntry> = self
            .iter()
            .filter(|n| n.state(now, &self.cfg) == NodeState::Questionable)
            .collect();
        q.sort_by_key(|n| (n.last_response, n.id));
        q.into_iter().take(max).map(NodeEntry::compact).collect()
    }

    /// The first bucket due for a refresh at `now`, with a random target inside it; the bucket
    /// counts as refreshed from now on.
    pub fn take_refresh(&mut self, now: Instant, rng: &mut Rng) -> Option<NodeId> {
        if self.is_empty() {
            return None;
        }
        let interval = self.cfg.refresh_interval;
        let last = self.buckets.len() - 1;
        let idx = self
            .buckets
            .iter()
            .position(|b| b.last_changed + interval <= now)?;
        self.buckets[idx].last_changed = now;
        Some(self.own.random_with_prefix(idx, idx != last, rng))
    }

    /// When the next bucket refresh is due; `None` when the table is empty.
    pub fn next_refresh(&self) -> Option<Instant> {
        if self.is_empty() {
            return None;
        }
        let interval = self.cfg.refresh_interval;
        self.buckets.iter().map(|b| b.last_changed + interval).min()
    }

    /// The same nodes around a new own id (after our external address changed).
    pub fn rebuilt(&self, own: NodeId, now: Instant) -> RoutingTable {
        let mut t = RoutingTable::new(own, self.cfg, now);
        for n in self.iter() {
            if n.id != own {
                t.insert_entry(now, *n);
            }
        }
        t
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

    /// An id of bytes `b` in the half of the id space away from an all-zero own id.
    fn far(b: u8) -> NodeId {
        let mut id = NodeId([b; 20]);
        id.0[0] |= 0x80;
        id
    }

    /// An id of bytes `b` in the half of the id space near an all-zero own id.
    fn near(b: u8) -> NodeId {
        let mut id = NodeId([b; 20]);
        id.0[0] &= 0x7f;
        id
    }

    #[test]
    fn splits_around_own_id_and_respects_bounds() {
        let mut rng = Rng::new(Seed::from_u64(5));
        let own = NodeId::random(&mut rng);
        let cfg = RoutingConfig::default();
        let mut t = RoutingTable::new(own, cfg, Instant::ZERO);
        let now = Instant::ZERO;
        for i in 0..5000u32 {
            // Half random ids, half close to ours, so the table must split deep.
            let id = if i % 2 == 0 {
                NodeId::random(&mut rng)
            } else {
                own.random_with_prefix((i as usize / 2) % 40, true, &mut rng)
            };
            t.heard_from(now, id, addr(i), Seen::Response);
            assert!(t.len() <= cfg.max_nodes);
            assert!(t.bucket_count() <= MAX_BUCKETS);
            assert!(t.bucket_sizes().iter().all(|s| *s <= cfg.k));
        }
        assert!(t.bucket_count() >= 20, "{}", t.bucket_count());
        // Every node is in the right bucket.
        let last = t.bucket_count() - 1;
        for (i, b) in t.buckets.iter().enumerate() {
            for n in &b.nodes {
                let cpl = own.common_prefix_len(&n.id);
                if i == last {
                    assert!(cpl >= i);
                } else {
                    assert_eq!(cpl, i);
                }
            }
            assert!(b.replacements.len() <= cfg.max_replacements);
        }
        assert_eq!(t.iter().count(), t.len());
    }

    #[test]
    fn max_nodes_bounds_the_table() {
        let mut rng = Rng::new(Seed::from_u64(6));
        let cfg = RoutingConfig {
            max_nodes: 20,
            ..RoutingConfig::default()
        };
        let own = NodeId::random(&mut rng);
        let mut t = RoutingTable::new(own, cfg, Instant::ZERO);
        for i in 0..1000 {
            t.heard_from(
                Instant::ZERO,
                NodeId::random(&mut rng),
                addr(i),
                Seen::Query,
            );
        }
        assert_eq!(t.len(), 20);
    }

    #[test]
    fn states_failures_and_replacements() {
        let own = NodeId([0; 20]);
        let cfg = RoutingConfig {
            k: 2,
            ..RoutingConfig::default()
        };
        let mut t = RoutingTable::new(own, cfg, Instant::ZERO);
        let t0 = Instant::ZERO;
        // Three nodes in the far half (bucket 0 after one split).
        assert_eq!(
            t.heard_from(t0, far(1), addr(1), Seen::Response),
            Insert::Added
        );
        assert_eq!(
            t.heard_from(t0, far(2), addr(2), Seen::Response),
            Insert::Added
        );
        // Full, splits, far(3) does not fit in the far bucket.
        assert_eq!(
            t.heard_from(t0, near(5), addr(5), Seen::Response),
            Insert::Added
        );
        assert_eq!(t.bucket_count(), 2);
        assert_eq!(
            t.heard_from(t0, far(3), addr(3), Seen::Response),
            Insert::Cached { ping: None }
        );
        // An address conflict is refused, and so is our own id.
        assert_eq!(
            t.heard_from(t0, far(9), addr(1), Seen::Query),
            Insert::Rejected
        );
        assert_eq!(
            t.heard_from(t0, own, addr(50), Seen::Query),
            Insert::Rejected
        );

        let e = t.get(&far(1)).unwrap();
        assert_eq!(e.state(t0, &cfg), NodeState::Good);
        let later = t0 + Duration::from_mins(16);
        assert_eq!(e.state(later, &cfg), NodeState::Questionable);
        assert_eq!(t.questionable(later, 10).len(), 3);
        // Questionable nodes are offered for a ping when the bucket is full.
        assert!(matches!(
            t.heard_from(later, far(4), addr(4), Seen::Query),
            Insert::Cached { ping: Some(_) }
        ));

        // Two failures make far(1) bad; the freshest replacement takes its place.
        t.failed(later, &far(1));
        assert!(t.get(&far(1)).is_some());
        t.failed(later, &far(1));
        assert!(t.get(&far(1)).is_none());
        assert!(t.get(&far(4)).is_some() || t.get(&far(3)).is_some());
        assert_eq!(t.len(), 3);
        assert!(t.get_by_addr(&addr(1)).is_none());
    }

    #[test]
    fn closest_and_refresh() {
        let mut rng = Rng::new(Seed::from_u64(8));
        let own = NodeId::random(&mut rng);
        let mut t = RoutingTable::new(own, RoutingConfig::default(), Instant::ZERO);
        let mut ids = Vec::new();
        for i in 0..300 {
            let id = NodeId::random(&mut rng);
            if t.heard_from(Instant::ZERO, id, addr(i), Seen::Response) == Insert::Added {
                ids.push(id);
            }
        }
        let target = NodeId::random(&mut rng);
        let got = t.closest(Instant::ZERO, &target, 8);
        ids.sort_by_key(|id| id.distance(&target));
        let want: Vec<NodeId> = ids.iter().take(8).copied().collect();
        assert_eq!(got.iter().map(|n| n.id).collect::<Vec<_>>(), want);

        assert_eq!(
            t.next_refresh(),
            Some(Instant::ZERO + Duration::from_mins(15))
        );
        assert!(t.take_refresh(Instant::ZERO, &mut rng).is_none());
        let later = Instant::ZERO + Duration::from_mins(15);
        let n = t.bucket_count();
        for _ in 0..n {
            assert!(t.take_refresh(later, &mut rng).is_some());
        }
        assert!(t.take_refresh(later, &mut rng).is_none());
        // A rebuilt table keeps the nodes.
        let other = t.rebuilt(NodeId::random(&mut rng), later);
        assert!(
            other.len() >= 16 && other.len() <= t.len(),
            "{}",
            other.len()
        );
        assert!(other.iter().all(|n| t.get(&n.id).is_some()));
    }

    fn public(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_node_per_ip_and_address_reuse_needs_a_verified_round_trip() {
        let mut rng = Rng::new(Seed::from_u64(10));
        let cfg = RoutingConfig::default();
        assert!(cfg.restrict_ips, "on by default");
        let mut t = RoutingTable::new(NodeId::random(&mut rng), cfg, Instant::ZERO);
        let now = Instant::ZERO;
        let a = NodeId::random(&mut rng);
        let first = public("8.8.8.8:6881");
        assert_eq!(t.heard_from(now, a, first, Seen::Response), Insert::Added);
        // The same IP on other ports, under other ids: refused however we heard of them.
        for (port, seen) in [
            (6882, Seen::Response),
            (6883, Seen::Query),
            (6884, Seen::Hearsay),
        ] {
            let id = NodeId::random(&mut rng);
            let addr = SocketAddr::new(first.ip(), port);
            assert_eq!(t.heard_from(now, id, addr, seen), Insert::Rejected);
            assert!(t.get(&id).is_none());
        }
        // The same id from another address keeps the known one.
        assert_eq!(
            t.heard_from(now, a, public("8.8.4.4:6881"), Seen::Response),
            Insert::Rejected
        );
        // The same IP and port under a new id: a query or hearsay may be poisoning...
        let restarted = NodeId::random(&mut rng);
        for seen in [Seen::Query, Seen::Hearsay] {
            assert_eq!(t.heard_from(now, restarted, first, seen), Insert::Rejected);
            assert_eq!(t.get_by_addr(&first).map(|n| n.id), Some(a));
        }
        // ...but a verified answer under the new id is a restarted node: it replaces the old.
        assert_eq!(
            t.heard_from(now, restarted, first, Seen::Response),
            Insert::Added
        );
        assert_eq!(t.get_by_addr(&first).map(|n| n.id), Some(restarted));
        assert!(t.get(&a).is_none());
        assert_eq!(t.len(), 1);
        // IPv6 too.
        let v6 = public("[2001:db8::1]:6881");
        assert_eq!(
            t.heard_from(now, NodeId::random(&mut rng), v6, Seen::Response),
            Insert::Added
        );
        assert_eq!(
            t.heard_from(
                now,
                NodeId::random(&mut rng),
                public("[2001:db8::1]:7000"),
                Seen::Response
            ),
            Insert::Rejected
        );
        // Local addresses are exempt (several nodes on one host, as in tests and LANs).
        for port in 1..=3 {
            let addr = SocketAddr::new("127.0.0.1".parse().unwrap(), port);
            assert_eq!(
                t.heard_from(now, NodeId::random(&mut rng), addr, Seen::Response),
                Insert::Added
            );
        }
        // Without the restriction, one IP may hold several nodes.
        let open = RoutingConfig {
            restrict_ips: false,
            ..cfg
        };
        let mut t = RoutingTable::new(NodeId::random(&mut rng), open, now);
        for port in 1..=3 {
            let addr = SocketAddr::new(first.ip(), port);
            assert_eq!(
                t.heard_from(now, NodeId::random(&mut rng), addr, Seen::Response),
                Insert::Added
            );
        }
    }

    #[test]
    fn a_subnet_gets_a_bounded_share_of_each_bucket() {
        let own = NodeId([0; 20]);
        let cfg = RoutingConfig {
            k: 4,
            ..RoutingConfig::default()
        };
        let now = Instant::ZERO;
        let mut t = RoutingTable::new(own, cfg, now);
        // One attacker /24 tries to fill the far bucket.
        let mut added = 0;
        for host in 1..=4u8 {
            let addr = public(&format!("80.1.2.{host}:6881"));
            match t.heard_from(now, far(host), addr, Seen::Response) {
                Insert::Added => added += 1,
                other => assert_eq!(other, Insert::Rejected),
            }
        }
        assert_eq!(added, MAX_NODES_PER_SUBNET_PER_BUCKET);
        // Other subnets still get in; the bucket fills and splits on the next near node.
        for (i, b) in (10..).zip(0..(cfg.k - MAX_NODES_PER_SUBNET_PER_BUCKET) as u8) {
            let addr = public(&format!("81.{i}.0.1:6881"));
            assert_eq!(
                t.heard_from(now, far(20 + b), addr, Seen::Response),
                Insert::Added
            );
        }
        assert_eq!(
            t.heard_from(now, near(1), public("82.0.0.1:6881"), Seen::Response),
            Insert::Added
        );
        assert_eq!(t.bucket_count(), 2);
        // The same /24 is welcome in another bucket...
        assert_eq!(
            t.heard_from(now, near(2), public("80.1.2.50:6881"), Seen::Response),
            Insert::Added
        );
        // ...but not even the far bucket's replacement cache takes more of it, while another
        // subnet's node is cached.
        assert_eq!(
            t.heard_from(now, far(60), public("80.1.2.60:6881"), Seen::Response),
            Insert::Rejected
        );
        assert!(matches!(
            t.heard_from(now, far(61), public("83.0.0.1:6881"), Seen::Response),
            Insert::Cached { .. }
        ));
        // The same holds for an IPv6 /64.
        let mut t6 = RoutingTable::new(own, cfg, now);
        let added = (1..=4u8)
            .filter(|h| {
                let addr = public(&format!("[2001:db8:1:2::{h}]:6881"));
                t6.heard_from(now, far(*h), addr, Seen::Response) == Insert::Added
            })
            .count();
        assert_eq!(added, MAX_NODES_PER_SUBNET_PER_BUCKET);
        assert_eq!(
            t6.heard_from(
                now,
                far(9),
                public("[2001:db8:1:3::1]:6881"),
                Seen::Response
            ),
            Insert::Added,
            "the next /64 is another subnet"
        );
        // Local subnets are exempt, and the restriction can be switched off.
        let mut local = RoutingTable::new(own, cfg, now);
        for h in 1..=4u8 {
            let addr = public(&format!("192.168.1.{h}:6881"));
            assert_eq!(
                local.heard_from(now, far(h), addr, Seen::Response),
                Insert::Added
            );
        }
        let open = RoutingConfig {
            restrict_ips: false,
            ..cfg
        };
        let mut t = RoutingTable::new(own, open, now);
        for h in 1..=4u8 {
            let addr = public(&format!("80.1.2.{h}:6881"));
            assert_eq!(
                t.heard_from(now, far(h), addr, Seen::Response),
                Insert::Added
            );
        }
    }

    #[test]
    fn subnet_of_masks_to_24_and_64_bits() {
        assert_eq!(
            subnet_of("80.1.2.77".parse().unwrap()),
            "80.1.2.0".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            subnet_of("2001:db8:1:2:3:4:5:6".parse().unwrap()),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn enforcement_refuses_insecure_ids() {
        let cfg = RoutingConfig {
            enforce_node_id: true,
            ..RoutingConfig::default()
        };
        let mut rng = Rng::new(Seed::from_u64(9));
        let mut t = RoutingTable::new(NodeId::random(&mut rng), cfg, Instant::ZERO);
        let public: SocketAddr = "8.8.8.8:6881".parse().unwrap();
        assert_eq!(
            t.heard_from(
                Instant::ZERO,
                NodeId::random(&mut rng),
                public,
                Seen::Response
            ),
            Insert::Rejected
        );
        let good = NodeId::secure(public.ip(), &mut rng);
        assert_eq!(
            t.heard_from(Instant::ZERO, good, public, Seen::Response),
            Insert::Added
        );
        // Local addresses are exempt.
        assert_eq!(
            t.heard_from(
                Instant::ZERO,
                NodeId::random(&mut rng),
                addr(1),
                Seen::Response
            ),
            Insert::Added
        );
    }
}

//! The DHT node machine: [`Dht`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::ip_voter::IpVoter;
use super::krpc::{
    Body, COMPACT_NODE_V4, COMPACT_NODE_V6, CompactNode, ErrorCode, ErrorMessage, Malformed,
    Message, Query, Response, Want, parse_compact_nodes, write_compact_nodes,
};
use super::lookup::{Lookup, LookupConfig, LookupId};
use super::node_id::NodeId;
use super::peer_store::PeerStore;
use super::rate_limit::RateLimiter;
use super::routing::{Insert, NodeState, RoutingConfig, RoutingTable, Seen};
use super::token::TokenSecrets;
use crate::InfoHash;
use crate::bencode::{self, Item, Limits};
use crate::rng::{Rng, Seed};
use crate::time::Instant;

/// DHT configuration. The defaults are rain's (the `nictuku/dht` defaults it keeps, §1.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhtConfig {
    /// Most nodes in a routing table (rain: 500).
    pub max_nodes: usize,
    /// Bucket size, Kademlia's k.
    pub k: usize,
    /// Replacement cache size per bucket.
    pub max_replacements: usize,
    /// A node silent for this long is questionable and gets pinged; also the bucket refresh
    /// period (rain: 15 min).
    pub node_timeout: Duration,
    /// Consecutive unanswered queries that make a node bad.
    pub max_failures: u8,
    /// Incoming packets accepted per second overall (rain: 100).
    pub max_packets_per_second: u32,
    /// Incoming packets accepted per minute from one address (rain: 50).
    pub max_packets_per_minute_per_source: u32,
    /// Most source addresses the rate limiter tracks.
    pub max_rate_limited_sources: usize,
    /// Most info-hashes in the peer store (rain: 2048).
    pub max_info_hashes: usize,
    /// Most peers per info-hash in the peer store (rain: 256).
    pub max_peers_per_info_hash: usize,
    /// How long an announced peer is kept (30 min).
    pub peer_ttl: Duration,
    /// Most peers put in one `values` reply.
    pub max_values_per_reply: usize,
    /// Token secret rotation period (rain: 5 min); tokens live one to two periods.
    pub token_rotation: Duration,
    /// BEP 43: send `ro=1`, answer no queries, stay out of others' tables.
    pub read_only: bool,
    /// BEP 42: keep only nodes whose id matches their address (local addresses exempt).
    pub enforce_node_id: bool,
    /// Sybil/eclipse resistance: one routing-table node per IP, and a few per /24 (/64) in a
    /// bucket, for non-local addresses (libtorrent's `dht_restrict_routing_ips`).
    pub restrict_routing_ips: bool,
    /// Learn our external address from the `ip` field of responses (BEP 42) by a vote of
    /// distinct subnets ([`super::ip_voter::IpVoter`]); a new winner replaces `external_ip`
    /// and, if our id does not suit it, gives a new BEP 42 id ([`DhtEvent::IdChanged`]).
    pub vote_external_ip: bool,
    /// BEP 32: keep an IPv6 routing table and accept IPv6 datagrams (set when the driver
    /// binds an IPv6 socket too).
    pub ipv6: bool,
    /// Our external address, if known: the node id is then derived from it (BEP 42).
    pub external_ip: Option<IpAddr>,
    /// Queries in flight per lookup.
    pub alpha: usize,
    /// How long to wait for an answer.
    pub query_timeout: Duration,
    /// Lookups running at once; more are queued.
    pub max_lookups: usize,
    /// Lookups queued behind the running ones; more are refused.
    pub max_pending_lookups: usize,
    /// Candidates a lookup keeps.
    pub max_lookup_candidates: usize,
    /// Queries one lookup may send.
    pub max_lookup_queries: u32,
    /// Peers one lookup collects.
    pub max_lookup_peers: usize,
    /// Queries in flight in all.
    pub max_in_flight: usize,
    /// Datagrams waiting in the outgoing queue; more are dropped.
    pub max_transmit_queue: usize,
    /// Events waiting to be polled; the oldest is dropped beyond this.
    pub max_events: usize,
    /// Bootstrap addresses used at once.
    pub max_bootstrap_nodes: usize,
    /// Period of the maintenance tick (pings, bucket refresh, peer expiry).
    pub maintenance_interval: Duration,
    /// First delay before a bootstrap that found no usable node is retried; it doubles up to
    /// `max_bootstrap_retry_interval`. A table whose nodes all went bad bootstraps again at
    /// the next maintenance tick, with the same backoff.
    pub bootstrap_retry_interval: Duration,
    /// Longest delay between two bootstrap retries.
    pub max_bootstrap_retry_interval: Duration,
    /// Questionable nodes pinged per maintenance tick.
    pub max_pings_per_tick: usize,
    /// A reply to an address that never answered us is at most this many times the size of
    /// its query (trimmed, or dropped if it cannot fit): no amplification toward spoofed
    /// sources.
    pub max_reply_amplification: usize,
    /// The client version sent as `v`, if any.
    pub client_version: Option<[u8; 4]>,
}

impl Default for DhtConfig {
    fn default() -> Self {
        DhtConfig {
            max_nodes: 500,
            k: 8,
            max_replacements: 8,
            node_timeout: Duration::from_mins(15),
            max_failures: 2,
            max_packets_per_second: 100,
            max_packets_per_minute_per_source: 50,
            max_rate_limited_sources: 4096,
            max_info_hashes: 2048,
            max_peers_per_info_hash: 256,
            peer_ttl: Duration::from_mins(30),
            max_values_per_reply: 50,
            token_rotation: Duration::from_mins(5),
            read_only: false,
            enforce_node_id: false,
            restrict_routing_ips: true,
            vote_external_ip: true,
            ipv6: false,
            external_ip: None,
            alpha: 3,
            query_timeout: Duration::from_secs(2),
            max_lookups: 16,
            max_pending_lookups: 256,
            max_lookup_candidates: 64,
            max_lookup_queries: 128,
            max_lookup_peers: 512,
            max_in_flight: 256,
            max_transmit_queue: 1024,
            max_events: 1024,
            max_bootstrap_nodes: 32,
            bootstrap_retry_interval: Duration::from_secs(5),
            max_bootstrap_retry_interval: Duration::from_mins(5),
            maintenance_interval: Duration::from_mins(1),
            max_pings_per_tick: 8,
            max_reply_amplification: 3,
            client_version: Some(*b"RN\x00\x01"),
        }
    }
}

impl DhtConfig {
    fn routing(&self) -> RoutingConfig {
        RoutingConfig {
            k: self.k,
            max_nodes: self.max_nodes,
            max_replacements: self.max_replacements,
            questionable_after: self.node_timeout,
            max_failures: self.max_failures,
            refresh_interval: self.node_timeout,
            enforce_node_id: self.enforce_node_id,
            restrict_ips: self.restrict_routing_ips,
        }
    }

    fn lookup(&self) -> LookupConfig {
        LookupConfig {
            alpha: self.alpha,
            k: self.k,
            max_candidates: self.max_lookup_candidates,
            max_queries: self.max_lookup_queries,
            max_peers: self.max_lookup_peers,
        }
    }
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// The KRPC message.
    pub data: Vec<u8>,
}

/// What the application hears from the DHT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhtEvent {
    /// A `get_peers` lookup found peers (each reported once per lookup).
    Peers {
        /// The lookup.
        lookup: LookupId,
        /// The torrent.
        info_hash: InfoHash,
        /// New peers.
        peers: Vec<SocketAddr>,
    },
    /// A `get_peers` lookup finished.
    LookupDone {
        /// The lookup.
        lookup: LookupId,
        /// The torrent.
        info_hash: InfoHash,
        /// Distinct peers found.
        peers: usize,
        /// Queries sent.
        queries: u32,
        /// Round trips from the starting nodes to the farthest answering node.
        hops: u32,
        /// `announce_peer` queries sent to the closest nodes.
        announced: usize,
    },
    /// The bootstrap lookup finished.
    BootstrapDone {
        /// Nodes in the routing tables afterwards.
        nodes: usize,
    },
    /// Our node id changed (a new external address, BEP 42).
    IdChanged {
        /// The new id.
        id: NodeId,
    },
}

/// Caller misuse or a full queue, reported to the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DhtError {
    /// `max_lookups` are running and `max_pending_lookups` are queued.
    #[error("too many lookups queued")]
    TooManyLookups,
    /// The bytes given to [`Dht::import_nodes`] are not a node list.
    #[error("invalid node list")]
    InvalidNodeList,
}

/// Counters for observation and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DhtStats {
    /// Nodes in the IPv4 table.
    pub nodes4: usize,
    /// Nodes in the IPv6 table.
    pub nodes6: usize,
    /// Lookups running.
    pub lookups: usize,
    /// Lookups queued.
    pub pending_lookups: usize,
    /// Queries in flight.
    pub in_flight: usize,
    /// Info-hashes in the peer store.
    pub stored_info_hashes: usize,
    /// Datagrams dropped by the rate limits.
    pub rate_limited: u64,
    /// Datagrams that were not valid KRPC.
    pub malformed: u64,
    /// Responses that matched no transaction (or came from the wrong address).
    pub unexpected: u64,
    /// Replies trimmed or dropped to avoid amplification.
    pub trimmed_replies: u64,
    /// Datagrams or events dropped because a queue was full.
    pub dropped: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Ping,
    Lookup(LookupId),
    Announce,
}

#[derive(Debug, Clone)]
struct Transaction {
    addr: SocketAddr,
    node: Option<NodeId>,
    deadline: Instant,
    purpose: Purpose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bootstrap,
    Refresh,
    GetPeers {
        info_hash: InfoHash,
        announce: Option<u16>,
    },
}

#[derive(Debug, Clone)]
struct Active {
    lookup: Lookup,
    kind: Kind,
}

/// A Mainline DHT node (BEP 5) as a pure state machine, with BEP 42 ids, BEP 32 IPv6 and
/// BEP 43 read-only mode.
///
/// One per session. It owns the routing table(s), the lookups, the token secrets, the peer
/// store and the rate limiter; the driver owns the UDP socket(s) and the clock.
///
/// # Driving loop
///
/// ```text
/// let mut dht = Dht::new(config, seed, now);
/// dht.bootstrap(now, &bootstrap_addrs);
/// loop {
///     // after EVERY input below, drain the outputs in this order:
///     while let Some(t) = dht.poll_transmit() { socket.send_to(&t.data, t.to) }
///     while let Some(e) = dht.poll_event() { deliver(e) }
///     let deadline = dht.poll_timeout(); // None: nothing scheduled
///     select! {
///         (from, bytes) = socket.recv_from() => dht.handle_datagram(now(), from, &bytes),
///         _ = sleep_until(deadline) => dht.handle_timeout(now()),
///         cmd = commands.recv() => match cmd {
///             GetPeers(h, port) => { dht.get_peers(now(), h, port)?; }
///             PortMessage(addr) => dht.add_node(now(), addr),
///             ExternalIp(ip) => dht.set_external_ip(now(), ip),
///         },
///     }
/// }
/// ```
///
/// Every input can change every `poll_*` answer: a datagram can complete a lookup (events,
/// announces), a timeout fails queries and starts maintenance, a command starts queries.
/// `poll_timeout` is `None` only when the node knows no nodes, stores nothing and has nothing in
/// flight. Malformed, hostile or rate-limited datagrams are dropped (counted in
/// [`Dht::stats`]), never returned as errors.
#[derive(Debug)]
pub struct Dht {
    cfg: DhtConfig,
    rng: Rng,
    id: NodeId,
    table4: RoutingTable,
    table6: Option<RoutingTable>,
    tokens: TokenSecrets,
    store: PeerStore,
    limiter: RateLimiter,
    voter4: IpVoter,
    voter6: IpVoter,
    transactions: BTreeMap<u16, Transaction>,
    pinging: BTreeSet<SocketAddr>,
    next_tid: u16,
    lookups: BTreeMap<LookupId, Active>,
    pending: VecDeque<(LookupId, Kind, NodeId)>,
    next_lookup: u64,
    bootstrap: Option<LookupId>,
    bootstrap_addrs: Vec<SocketAddr>,
    bootstrap_retry_at: Option<Instant>,
    bootstrap_backoff: Option<Duration>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<DhtEvent>,
    next_maintenance: Instant,
    stats: DhtStats,
}

impl Dht {
    /// A node with the given configuration, seeded randomness and start time.
    pub fn new(cfg: DhtConfig, seed: Seed, now: Instant) -> Self {
        let mut rng = Rng::new(seed);
        let id = match cfg.external_ip {
            Some(ip) => NodeId::secure(ip, &mut rng),
            None => NodeId::random(&mut rng),
        };
        let table4 = RoutingTable::new(id, cfg.routing(), now);
        let table6 = cfg.ipv6.then(|| RoutingTable::new(id, cfg.routing(), now));
        let tokens = TokenSecrets::new(&mut rng, now, cfg.token_rotation);
        let store = PeerStore::new(
            cfg.max_info_hashes,
            cfg.max_peers_per_info_hash,
            cfg.peer_ttl,
        );
        let limiter = RateLimiter::new(
            cfg.max_packets_per_second,
            cfg.max_packets_per_minute_per_source,
            cfg.max_rate_limited_sources,
        );
        let next_tid = (rng.next_u64() & 0xffff) as u16;
        Dht {
            next_maintenance: now + cfg.maintenance_interval,
            cfg,
            rng,
            id,
            table4,
            table6,
            tokens,
            store,
            limiter,
            voter4: IpVoter::new(),
            voter6: IpVoter::new(),
            transactions: BTreeMap::new(),
            pinging: BTreeSet::new(),
            next_tid,
            lookups: BTreeMap::new(),
            pending: VecDeque::new(),
            next_lookup: 1,
            bootstrap: None,
            bootstrap_addrs: Vec::new(),
            bootstrap_retry_at: None,
            bootstrap_backoff: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: DhtStats::default(),
        }
    }

    /// Our node id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The configuration.
    pub fn config(&self) -> &DhtConfig {
        &self.cfg
    }

    /// The IPv4 routing table.
    pub fn routing_table(&self) -> &RoutingTable {
        &self.table4
    }

    /// The IPv6 routing table, when IPv6 is enabled.
    pub fn routing_table6(&self) -> Option<&RoutingTable> {
        self.table6.as_ref()
    }

    /// Counters.
    pub fn stats(&self) -> DhtStats {
        DhtStats {
            nodes4: self.table4.len(),
            nodes6: self.table6.as_ref().map_or(0, RoutingTable::len),
            lookups: self.lookups.len(),
            pending_lookups: self.pending.len(),
            in_flight: self.transactions.len(),
            stored_info_hashes: self.store.info_hashes(),
            ..self.stats
        }
    }

    // ----- outputs -----

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<DhtEvent> {
        self.events.pop_front()
    }

    /// When [`Dht::handle_timeout`] must be called next; `None` when idle.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let tx = self.transactions.values().map(|t| t.deadline).min();
        let busy = !self.table4.is_empty()
            || self.table6.as_ref().is_some_and(|t| !t.is_empty())
            || self.store.info_hashes() > 0;
        let maint = busy.then_some(self.next_maintenance);
        [tx, maint, self.bootstrap_retry_at]
            .into_iter()
            .flatten()
            .min()
    }

    // ----- commands -----

    /// Starts (or extends) the bootstrap: a `find_node` for our own id through `addrs` and
    /// the nodes already in the table. [`DhtEvent::BootstrapDone`] follows.
    pub fn bootstrap(&mut self, now: Instant, addrs: &[SocketAddr]) {
        self.tick(now);
        let addrs: Vec<SocketAddr> = addrs
            .iter()
            .filter(|a| self.family_enabled(a) && a.port() != 0)
            .take(self.cfg.max_bootstrap_nodes)
            .copied()
            .collect();
        for a in &addrs {
            if self.bootstrap_addrs.len() < self.cfg.max_bootstrap_nodes
                && !self.bootstrap_addrs.contains(a)
            {
                self.bootstrap_addrs.push(*a);
            }
        }
        let id = match self.bootstrap {
            Some(id) if self.lookups.contains_key(&id) => id,
            _ => {
                let id = self.new_lookup_id();
                self.bootstrap = Some(id);
                let target = self.id;
                self.start_lookup(now, id, Kind::Bootstrap, target);
                id
            }
        };
        if let Some(active) = self.lookups.get_mut(&id) {
            for a in addrs {
                active.lookup.add_seed(a);
            }
        }
        self.pump(now, id);
    }

    /// Looks for peers of `info_hash`; with `announce`, also announces our TCP port to the
    /// closest nodes when done. Events [`DhtEvent::Peers`] and [`DhtEvent::LookupDone`] carry
    /// the returned id. Lookups beyond `max_lookups` wait in a queue.
    pub fn get_peers(
        &mut self,
        now: Instant,
        info_hash: InfoHash,
        announce: Option<u16>,
    ) -> Result<LookupId, DhtError> {
        self.tick(now);
        let kind = Kind::GetPeers {
            info_hash,
            announce,
        };
        if self.lookups.len() >= self.cfg.max_lookups {
            if self.pending.len() >= self.cfg.max_pending_lookups {
                return Err(DhtError::TooManyLookups);
            }
            let id = self.new_lookup_id();
            self.pending.push_back((id, kind, info_hash.into()));
            return Ok(id);
        }
        let id = self.new_lookup_id();
        self.start_lookup(now, id, kind, info_hash.into());
        self.pump(now, id);
        Ok(id)
    }

    /// A node address heard of outside the DHT (a peer's PORT message): pinged, and added to
    /// the table if it answers.
    pub fn add_node(&mut self, now: Instant, addr: SocketAddr) {
        self.tick(now);
        if !self.family_enabled(&addr)
            || addr.port() == 0
            || self
                .table(&addr)
                .is_some_and(|t| t.get_by_addr(&addr).is_some())
        {
            return;
        }
        self.ping(now, addr, None);
    }

    /// Our external address as seen by others (from the caller: a tracker's `external ip`,
    /// UPnP, configuration). If our id does not satisfy BEP 42 for it, a new id is derived and
    /// the routing tables are rebuilt around it ([`DhtEvent::IdChanged`]). With
    /// `vote_external_ip`, a later change settled by the DHT's own vote overrides it.
    pub fn set_external_ip(&mut self, now: Instant, ip: IpAddr) {
        self.tick(now);
        self.adopt_external_ip(now, ip);
    }

    /// The external address in use (set by the caller or by vote), if any.
    pub fn external_ip(&self) -> Option<IpAddr> {
        self.cfg.external_ip
    }

    /// The address other nodes report seeing us at, settled by vote (IPv4 or IPv6 voters), if
    /// a vote has settled one.
    pub fn voted_external_ip(&self, ipv6: bool) -> Option<IpAddr> {
        if ipv6 {
            self.voter6.current()
        } else {
            self.voter4.current()
        }
    }

    fn adopt_external_ip(&mut self, now: Instant, ip: IpAddr) {
        self.cfg.external_ip = Some(ip);
        if self.id.is_secure_for(ip) {
            return;
        }
        let id = NodeId::secure(ip, &mut self.rng);
        self.change_id(now, id);
    }

    /// Counts a response's `ip` field (BEP 42) as a vote for our external address; a new
    /// winner is adopted. The id follows the IPv4 address: an IPv6 winner is adopted only when
    /// no IPv4 address is known.
    fn vote_external_ip(&mut self, now: Instant, from: SocketAddr, reported: IpAddr) {
        if !self.cfg.vote_external_ip {
            return;
        }
        let voter = if from.is_ipv4() {
            &mut self.voter4
        } else {
            &mut self.voter6
        };
        let Some(ip) = voter.vote(from.ip(), reported) else {
            return;
        };
        if ip.is_ipv6() && self.cfg.external_ip.is_some_and(|e| e.is_ipv4()) {
            return;
        }
        self.adopt_external_ip(now, ip);
    }

    fn change_id(&mut self, now: Instant, id: NodeId) {
        self.id = id;
        self.table4 = self.table4.rebuilt(id, now);
        if let Some(t) = &self.table6 {
            self.table6 = Some(t.rebuilt(id, now));
        }
        self.push_event(DhtEvent::IdChanged { id });
    }

    /// Forgets the peers stored for `info_hash`.
    pub fn remove_info_hash(&mut self, info_hash: &InfoHash) {
        self.store.remove(info_hash);
    }

    /// The routing tables as bytes for the resume DB: a bencoded dictionary with our `id` and
    /// the nodes that have answered us, compact (`nodes`, `nodes6`).
    pub fn export_nodes(&self) -> Vec<u8> {
        let collect = |t: &RoutingTable| {
            let nodes: Vec<CompactNode> = t
                .iter()
                .filter(|n| n.last_response.is_some())
                .map(super::routing::NodeEntry::compact)
                .collect();
            let mut b = Vec::new();
            write_compact_nodes(&mut b, &nodes);
            b
        };
        let mut d = Item::dict()
            .with("id", self.id.0.to_vec())
            .with("nodes", collect(&self.table4));
        if let Some(t) = &self.table6 {
            d = d.with("nodes6", collect(t));
        }
        d.to_bytes()
    }

    /// Restores nodes saved by [`Dht::export_nodes`] (as questionable: they are pinged and
    /// used by the next bootstrap). If our tables are empty and the saved id still suits our
    /// external address, it is taken back, so other nodes' tables stay valid. Returns the number
    /// of nodes added.
    pub fn import_nodes(&mut self, now: Instant, bytes: &[u8]) -> Result<usize, DhtError> {
        self.tick(now);
        let limits = Limits {
            max_depth: 2,
            max_size: 1 << 20,
            strict: false,
            max_tokens: bencode::Limits::DEFAULT_MAX_TOKENS,
        };
        let v = bencode::decode(bytes, &limits).map_err(|_| DhtError::InvalidNodeList)?;
        let id: [u8; 20] = v
            .get(b"id")
            .and_then(bencode::Value::as_bytes)
            .and_then(|b| b.try_into().ok())
            .ok_or(DhtError::InvalidNodeList)?;
        let parse = |key: &[u8], v6: bool| -> Result<Vec<CompactNode>, DhtError> {
            match v.get(key) {
                None => Ok(Vec::new()),
                Some(x) => {
                    let b = x.as_bytes().ok_or(DhtError::InvalidNodeList)?;
                    let size = if v6 { COMPACT_NODE_V6 } else { COMPACT_NODE_V4 };
                    if b.len() % size != 0 {
                        return Err(DhtError::InvalidNodeList);
                    }
                    let mut out = Vec::new();
                    for chunk in b.chunks(size * 16) {
                        out.extend(
                            parse_compact_nodes(chunk, v6).ok_or(DhtError::InvalidNodeList)?,
                        );
                    }
                    Ok(out)
                }
            }
        };
        let nodes = parse(b"nodes", false)?;
        let nodes6 = parse(b"nodes6", true)?;
        let saved = NodeId(id);
        let empty =
            self.table4.is_empty() && self.table6.as_ref().is_none_or(RoutingTable::is_empty);
        if empty
            && saved != self.id
            && self
                .cfg
                .external_ip
                .is_none_or(|ip| saved.is_secure_for(ip))
        {
            self.change_id(now, saved);
        }
        let mut added = 0;
        for n in nodes.iter().chain(nodes6.iter()) {
            if let Some(t) = self.table_mut(&n.addr)
                && t.heard_from(now, n.id, n.addr, Seen::Hearsay) == Insert::Added
            {
                added += 1;
            }
        }
        Ok(added)
    }

    // ----- inputs -----

    /// A datagram arrived on the DHT socket.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.tick(now);
        if from.port() == 0 || !self.family_enabled(&from) {
            return;
        }
        let msg = match Message::decode(data) {
            Ok(m) => m,
            Err(e) => {
                self.stats.malformed += 1;
                if self.limiter.check(now, from.ip()).is_err() {
                    self.stats.rate_limited += 1;
                    return;
                }
                if let Some(tid) = e.query_tid
                    && !self.cfg.read_only
                {
                    let code = if e.reason == Malformed::UnknownMethod {
                        ErrorCode::MethodUnknown
                    } else {
                        ErrorCode::Protocol
                    };
                    let msg = self.error_reply(tid, code, b"invalid query");
                    self.reply(from, &msg, data.len());
                }
                return;
            }
        };
        // Answers to our own queries bypass the rate limit: we asked for them.
        let expected = match &msg.body {
            Body::Response(_) | Body::Error(_) => self.matching_tid(&msg.tid, from),
            Body::Query { .. } => None,
        };
        if expected.is_none() && self.limiter.check(now, from.ip()).is_err() {
            self.stats.rate_limited += 1;
            return;
        }
        match msg.body {
            Body::Query { id, query, want } => {
                self.handle_query(
                    now,
                    from,
                    &msg.tid,
                    msg.read_only,
                    id,
                    query,
                    want,
                    data.len(),
                );
            }
            Body::Response(r) => match expected {
                Some(tid) => self.handle_response(now, from, tid, r, msg.ip),
                None => self.stats.unexpected += 1,
            },
            Body::Error(_) => match expected {
                Some(tid) => self.handle_error(now, tid),
                None => self.stats.unexpected += 1,
            },
        }
    }

    /// The deadline from [`Dht::poll_timeout`] passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tick(now);
        let expired: Vec<u16> = self
            .transactions
            .iter()
            .filter(|(_, t)| t.deadline <= now)
            .map(|(tid, _)| *tid)
            .collect();
        let mut touched = BTreeSet::new();
        for tid in expired {
            let Some(tx) = self.transactions.remove(&tid) else {
                continue;
            };
            self.pinging.remove(&tx.addr);
            if let Some(node) = tx.node
                && let Some(t) = self.table_mut(&tx.addr)
            {
                t.failed(now, &node);
            }
            if let Purpose::Lookup(lid) = tx.purpose
                && let Some(a) = self.lookups.get_mut(&lid)
            {
                a.lookup.on_failure(tx.addr);
                touched.insert(lid);
            }
        }
        for lid in touched {
            self.pump(now, lid);
        }
        if self.bootstrap_retry_at.is_some_and(|at| now >= at) {
            self.bootstrap_retry_at = None;
            let addrs = self.bootstrap_addrs.clone();
            self.bootstrap(now, &addrs);
        }
        if now >= self.next_maintenance {
            self.next_maintenance = now + self.cfg.maintenance_interval;
            self.maintenance(now);
        }
    }

    // ----- internals -----

    fn tick(&mut self, now: Instant) {
        self.tokens.maybe_rotate(now, &mut self.rng);
    }

    fn family_enabled(&self, addr: &SocketAddr) -> bool {
        addr.is_ipv4() || self.cfg.ipv6
    }

    fn table(&self, addr: &SocketAddr) -> Option<&RoutingTable> {
        if addr.is_ipv4() {
            Some(&self.table4)
        } else {
            self.table6.as_ref()
        }
    }

    fn table_mut(&mut self, addr: &SocketAddr) -> Option<&mut RoutingTable> {
        if addr.is_ipv4() {
            Some(&mut self.table4)
        } else {
            self.table6.as_mut()
        }
    }

    fn node_count(&self) -> usize {
        self.table4.len() + self.table6.as_ref().map_or(0, RoutingTable::len)
    }

    /// Nodes that are not bad, in both tables: the ones a lookup can start from.
    fn usable_node_count(&self, now: Instant) -> usize {
        let usable = |t: &RoutingTable| {
            t.iter()
                .filter(|n| n.state(now, t.config()) != NodeState::Bad)
                .count()
        };
        usable(&self.table4) + self.table6.as_ref().map_or(0, usable)
    }

    fn new_lookup_id(&mut self) -> LookupId {
        let id = LookupId(self.next_lookup);
        self.next_lookup += 1;
        id
    }

    fn push_event(&mut self, e: DhtEvent) {
        if self.events.len() >= self.cfg.max_events {
            self.events.pop_front();
            self.stats.dropped += 1;
        }
        self.events.push_back(e);
    }

    fn push_transmit(&mut self, to: SocketAddr, data: Vec<u8>) -> bool {
        if self.transmits.len() >= self.cfg.max_transmit_queue {
            self.stats.dropped += 1;
            return false;
        }
        self.transmits.push_back(Transmit { to, data });
        true
    }

    fn can_query(&self) -> bool {
        self.transactions.len() < self.cfg.max_in_flight
            && self.transmits.len() < self.cfg.max_transmit_queue
    }

    fn matching_tid(&self, tid: &[u8], from: SocketAddr) -> Option<u16> {
        let tid = u16::from_be_bytes(tid.try_into().ok()?);
        let tx = self.transactions.get(&tid)?;
        (tx.addr == from).then_some(tid)
    }

    fn want(&self) -> Want {
        if self.cfg.ipv6 {
            Want { v4: true, v6: true }
        } else {
            Want::default()
        }
    }

    fn send_query(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        node: Option<NodeId>,
        query: Query,
        purpose: Purpose,
    ) -> bool {
        if !self.can_query() {
            return false;
        }
        let mut tid = self.next_tid;
        while self.transactions.contains_key(&tid) {
            tid = tid.wrapping_add(1);
        }
        self.next_tid = tid.wrapping_add(1);
        let msg = Message {
            tid: tid.to_be_bytes().to_vec(),
            version: self.cfg.client_version.map(|v| v.to_vec()),
            read_only: self.cfg.read_only,
            ip: None,
            body: Body::Query {
                id: self.id,
                query,
                want: self.want(),
            },
        };
        if !self.push_transmit(addr, msg.to_bytes()) {
            return false;
        }
        self.transactions.insert(
            tid,
            Transaction {
                addr,
                node,
                deadline: now + self.cfg.query_timeout,
                purpose,
            },
        );
        true
    }

    fn ping(&mut self, now: Instant, addr: SocketAddr, node: Option<NodeId>) {
        // Keep half the in-flight budget for lookups.
        if self.pinging.contains(&addr) || self.transactions.len() * 2 >= self.cfg.max_in_flight {
            return;
        }
        if self.send_query(now, addr, node, Query::Ping, Purpose::Ping) {
            self.pinging.insert(addr);
        }
    }

    /// Records a contact in the routing table, pinging whoever needs verifying.
    fn note_node(&mut self, now: Instant, id: NodeId, addr: SocketAddr, seen: Seen) {
        let Some(t) = self.table_mut(&addr) else {
            return;
        };
        match t.heard_from(now, id, addr, seen) {
            Insert::Added if seen == Seen::Query => self.ping(now, addr, Some(id)),
            Insert::Cached { ping: Some(n) } => self.ping(now, n.addr, Some(n.id)),
            _ => {}
        }
    }

    fn start_lookup(&mut self, now: Instant, id: LookupId, kind: Kind, target: NodeId) {
        let mut lookup = Lookup::new(target, self.cfg.lookup());
        let n = self.cfg.k * 2;
        let near4 = self.table4.closest(now, &target, n);
        let near6 = self
            .table6
            .as_ref()
            .map(|t| t.closest(now, &target, n))
            .unwrap_or_default();
        lookup.add_candidates(&near4, 0);
        lookup.add_candidates(&near6, 0);
        if near4.is_empty() && near6.is_empty() {
            // Nothing known yet (the bootstrap is still running): start from the bootstrap
            // nodes rather than finish at once, so a torrent's first lookup and announce are
            // not lost.
            for &a in &self.bootstrap_addrs {
                lookup.add_seed(a);
            }
        }
        if let Kind::GetPeers { info_hash, .. } = kind {
            // Peers announced to us count too: when we are among the nodes closest to the
            // info-hash, announcers stored them here, and no other node may have them (a small
            // or private DHT). Neither the lookup's queries nor other nodes would return them.
            let max = self.cfg.max_lookup_peers;
            let mut local = self.store.peers(now, &info_hash, false, max, &mut self.rng);
            if self.cfg.ipv6 {
                local.extend(self.store.peers(now, &info_hash, true, max, &mut self.rng));
            }
            let peers = lookup.add_peers(&local);
            if !peers.is_empty() {
                self.push_event(DhtEvent::Peers {
                    lookup: id,
                    info_hash,
                    peers,
                });
            }
        }
        self.lookups.insert(id, Active { lookup, kind });
    }

    /// Sends whatever queries lookup `lid` may send now, and finishes it if it is done.
    fn pump(&mut self, now: Instant, lid: LookupId) {
        loop {
            if !self.can_query() {
                break;
            }
            let Some(active) = self.lookups.get_mut(&lid) else {
                return;
            };
            let Some(ask) = active.lookup.next_ask() else {
                break;
            };
            let query = match active.kind {
                Kind::Bootstrap | Kind::Refresh => Query::FindNode {
                    target: active.lookup.target(),
                },
                Kind::GetPeers { info_hash, .. } => Query::GetPeers { info_hash },
            };
            if !self.send_query(now, ask.addr, ask.id, query, Purpose::Lookup(lid)) {
                if let Some(a) = self.lookups.get_mut(&lid) {
                    a.lookup.on_failure(ask.addr);
                }
                break;
            }
        }
        if self.lookups.get(&lid).is_some_and(|a| a.lookup.is_done()) {
            self.finish(now, lid);
        }
    }

    fn finish(&mut self, now: Instant, lid: LookupId) {
        let Some(active) = self.lookups.remove(&lid) else {
            return;
        };
        match active.kind {
            Kind::Bootstrap => {
                self.bootstrap = None;
                let nodes = self.node_count();
                self.push_event(DhtEvent::BootstrapDone { nodes });
                let usable = self.usable_node_count(now);
                if usable == 0 && !self.bootstrap_addrs.is_empty() {
                    // Nobody answered (or every node we knew is bad): try the bootstrap
                    // addresses again later, backing off up to the cap.
                    let delay = self
                        .bootstrap_backoff
                        .map_or(self.cfg.bootstrap_retry_interval, |d| {
                            (d * 2).min(self.cfg.max_bootstrap_retry_interval)
                        });
                    self.bootstrap_backoff = Some(delay);
                    self.bootstrap_retry_at = Some(now + delay);
                } else {
                    self.bootstrap_backoff = None;
                }
                // Fill the far buckets too: one refresh lookup per bucket but the nearest, which
                // the bootstrap itself just filled.
                let buckets = if usable == 0 {
                    0
                } else {
                    self.table4
                        .bucket_count()
                        .max(self.table6.as_ref().map_or(0, RoutingTable::bucket_count))
                };
                for i in 0..buckets.saturating_sub(1) {
                    if self.pending.len() >= self.cfg.max_pending_lookups {
                        break;
                    }
                    let target = self.id.random_with_prefix(i, true, &mut self.rng);
                    let id = self.new_lookup_id();
                    self.pending.push_back((id, Kind::Refresh, target));
                }
            }
            Kind::Refresh => {}
            Kind::GetPeers {
                info_hash,
                announce,
            } => {
                let mut announced = 0;
                if let Some(port) = announce {
                    // Port 0 asks the receivers to use our UDP source port (`implied_port`).
                    for (node, token) in active.lookup.closest_responded() {
                        let Some(token) = token else { continue };
                        let q = Query::AnnouncePeer {
                            info_hash,
                            port: port.max(1),
                            implied_port: port == 0,
                            token,
                        };
                        if self.send_query(now, node.addr, Some(node.id), q, Purpose::Announce) {
                            announced += 1;
                        }
                    }
                }
                self.push_event(DhtEvent::LookupDone {
                    lookup: lid,
                    info_hash,
                    peers: active.lookup.peer_count(),
                    queries: active.lookup.queries(),
                    hops: active.lookup.hops(),
                    announced,
                });
            }
        }
        self.start_pending(now);
    }

    fn start_pending(&mut self, now: Instant) {
        while self.lookups.len() < self.cfg.max_lookups {
            let Some((id, kind, target)) = self.pending.pop_front() else {
                break;
            };
            self.start_lookup(now, id, kind, target);
            self.pump(now, id);
        }
    }

    fn maintenance(&mut self, now: Instant) {
        self.store.expire(now);
        if self.bootstrap.is_none()
            && self.bootstrap_retry_at.is_none()
            && !self.bootstrap_addrs.is_empty()
            && self.usable_node_count(now) == 0
        {
            // Every node we knew went bad (an outage, a network change): start over from the
            // bootstrap nodes. A failure schedules retries with the bounded backoff.
            let addrs = self.bootstrap_addrs.clone();
            self.bootstrap(now, &addrs);
        }
        let mut to_ping = self.table4.questionable(now, self.cfg.max_pings_per_tick);
        if let Some(t) = &self.table6 {
            to_ping.extend(t.questionable(now, self.cfg.max_pings_per_tick));
        }
        for n in to_ping {
            self.ping(now, n.addr, Some(n.id));
        }
        let mut targets = Vec::new();
        if let Some(t) = self.table4.take_refresh(now, &mut self.rng) {
            targets.push(t);
        }
        if let Some(t6) = &mut self.table6
            && let Some(t) = t6.take_refresh(now, &mut self.rng)
        {
            targets.push(t);
        }
        for target in targets {
            if self.lookups.len() < self.cfg.max_lookups {
                let id = self.new_lookup_id();
                self.start_lookup(now, id, Kind::Refresh, target);
                self.pump(now, id);
            }
        }
    }

    fn error_reply(&self, tid: Vec<u8>, code: ErrorCode, text: &[u8]) -> Message {
        Message {
            tid,
            version: self.cfg.client_version.map(|v| v.to_vec()),
            read_only: false,
            ip: None,
            body: Body::Error(ErrorMessage {
                code,
                message: text.to_vec(),
            }),
        }
    }

    /// Sends a reply, trimmed so an unverified source never gets more than
    /// `max_reply_amplification` times what it sent.
    fn reply(&mut self, to: SocketAddr, msg: &Message, request_len: usize) {
        let mut msg = msg.clone();
        let verified = self.table(&to).is_some_and(|t| t.is_verified(&to));
        let limit = if verified {
            usize::MAX
        } else {
            request_len.saturating_mul(self.cfg.max_reply_amplification)
        };
        let mut bytes = msg.to_bytes();
        let mut trimmed = false;
        while bytes.len() > limit {
            trimmed = true;
            let Body::Response(r) = &mut msg.body else {
                break;
            };
            let excess = bytes.len() - limit;
            // Peers are what a querier wants most: trim nodes first.
            if !r.nodes6.is_empty() {
                let drop = excess.div_ceil(COMPACT_NODE_V6).clamp(1, r.nodes6.len());
                r.nodes6.truncate(r.nodes6.len() - drop);
            } else if !r.nodes.is_empty() {
                let drop = excess.div_ceil(COMPACT_NODE_V4).clamp(1, r.nodes.len());
                r.nodes.truncate(r.nodes.len() - drop);
            } else if !r.values.is_empty() {
                let drop = excess.div_ceil(8).clamp(1, r.values.len());
                r.values.truncate(r.values.len() - drop);
            } else if msg.ip.is_some() {
                msg.ip = None;
            } else {
                break;
            }
            bytes = msg.to_bytes();
        }
        if trimmed {
            self.stats.trimmed_replies += 1;
        }
        if bytes.len() <= limit {
            self.push_transmit(to, bytes);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_query(
        &mut self,
        now: Instant,
        from: SocketAddr,
        tid: &[u8],
        read_only: bool,
        id: NodeId,
        query: Query,
        want: Want,
        request_len: usize,
    ) {
        if self.cfg.read_only {
            return;
        }
        let mut response = Response {
            id: self.id,
            ..Response::default()
        };
        let k = self.cfg.k;
        let nodes_for = |dht: &Dht, target: &NodeId, r: &mut Response| {
            let (v4, v6) = if want == Want::default() {
                (from.is_ipv4(), from.is_ipv6())
            } else {
                (want.v4, want.v6)
            };
            let verified_only = |t: &RoutingTable| -> Vec<CompactNode> {
                let mut all = t.closest(now, target, k * 2);
                all.retain(|n| t.get(&n.id).is_some_and(|e| e.last_response.is_some()));
                all.truncate(k);
                all
            };
            if v4 {
                r.nodes = verified_only(&dht.table4);
            }
            if v6 && let Some(t) = &dht.table6 {
                r.nodes6 = verified_only(t);
            }
        };
        match query {
            Query::Ping => {}
            Query::FindNode { target } => nodes_for(self, &target, &mut response),
            Query::GetPeers { info_hash } => {
                response.token = Some(self.tokens.token_for(from.ip()).to_vec());
                response.values = self.store.peers(
                    now,
                    &info_hash,
                    from.is_ipv6(),
                    self.cfg.max_values_per_reply,
                    &mut self.rng,
                );
                nodes_for(self, &info_hash.into(), &mut response);
            }
            Query::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
            } => {
                if !self.tokens.verify(from.ip(), &token) {
                    let msg = self.error_reply(tid.to_vec(), ErrorCode::Protocol, b"bad token");
                    self.reply(from, &msg, request_len);
                    return;
                }
                let port = if implied_port { from.port() } else { port };
                self.store
                    .announce(now, info_hash, SocketAddr::new(from.ip(), port));
            }
        }
        let msg = Message {
            tid: tid.to_vec(),
            version: self.cfg.client_version.map(|v| v.to_vec()),
            read_only: false,
            ip: Some(from),
            body: Body::Response(response),
        };
        self.reply(from, &msg, request_len);
        // BEP 43: read-only nodes stay out of routing tables.
        if !read_only {
            self.note_node(now, id, from, Seen::Query);
        }
    }

    fn handle_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        tid: u16,
        r: Response,
        seen_as: Option<SocketAddr>,
    ) {
        let Some(tx) = self.transactions.remove(&tid) else {
            return;
        };
        self.pinging.remove(&from);
        self.note_node(now, r.id, from, Seen::Response);
        if let Some(ip) = seen_as {
            self.vote_external_ip(now, from, ip.ip());
        }
        if let Purpose::Lookup(lid) = tx.purpose {
            let Some(active) = self.lookups.get_mut(&lid) else {
                return;
            };
            let mut nodes = r.nodes;
            if self.cfg.ipv6 {
                nodes.extend(r.nodes6);
            }
            nodes.retain(|n| n.id != self.id);
            let peers = active
                .lookup
                .on_response(from, r.id, &nodes, &r.values, r.token);
            if let Kind::GetPeers { info_hash, .. } = active.kind
                && !peers.is_empty()
            {
                self.push_event(DhtEvent::Peers {
                    lookup: lid,
                    info_hash,
                    peers,
                });
            }
            self.pump(now, lid);
        }
    }

    fn handle_error(&mut self, now: Instant, tid: u16) {
        let Some(tx) = self.transactions.remove(&tid) else {
            return;
        };
        self.pinging.remove(&tx.addr);
        if let Purpose::Lookup(lid) = tx.purpose
            && let Some(a) = self.lookups.get_mut(&lid)
        {
            a.lookup.on_failure(tx.addr);
            self.pump(now, lid);
        }
    }
}

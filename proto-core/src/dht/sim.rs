//! A pure DHT network simulator: many [`Dht`] machines on fake `10.x.y.z` addresses exchanging
//! datagrams through an in-memory queue, the clock jumping straight to the next delivery or
//! deadline. No threads, no sockets: a whole network of a thousand nodes runs in seconds, and
//! the same seed always gives the same run (checked through [`Sim::trace_hash`]).
//!
//! Node 0 is the bootstrap node; node `i` joins at `i * join_interval` and bootstraps from
//! node 0. A share of nodes can be *silent*: they never answer queries (but still run their own
//! lookups), like unreachable or overloaded nodes in the wild. The network itself can lose a
//! share of all datagrams ([`Sim::set_loss_percent`]), up to 100 % for an outage or a partition
//! that later heals.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use sha1::{Digest, Sha1};

use super::krpc::{Body, Message};
use super::{Dht, DhtConfig, DhtEvent, LookupId};
use crate::InfoHash;
use crate::rng::{Rng, Seed};
use crate::time::Instant;

/// How to build a simulated network.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Number of nodes (node 0 is the bootstrap node).
    pub nodes: usize,
    /// Percentage (0–100) of nodes, other than node 0, that never answer queries.
    pub silent_percent: u64,
    /// The scenario seed.
    pub seed: u64,
    /// Every node's configuration.
    pub dht: DhtConfig,
    /// Delay between two nodes joining.
    pub join_interval: Duration,
    /// Smallest one-way latency.
    pub min_latency: Duration,
    /// Largest one-way latency.
    pub max_latency: Duration,
    /// Steps (deliveries, timeouts, joins) after which the simulation refuses to go on.
    pub max_steps: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: 100,
            silent_percent: 0,
            seed: 1,
            dht: DhtConfig::default(),
            join_interval: Duration::from_millis(20),
            min_latency: Duration::from_millis(5),
            max_latency: Duration::from_millis(60),
            max_steps: 20_000_000,
        }
    }
}

/// One simulated node.
#[derive(Debug)]
pub struct SimNode {
    /// The machine.
    pub dht: Dht,
    /// Its address.
    pub addr: SocketAddr,
    /// Whether it ignores queries.
    pub silent: bool,
    /// Whether it has joined yet.
    pub joined: bool,
    /// Every event it emitted, in order.
    pub events: Vec<DhtEvent>,
    deadline: Option<Instant>,
}

type Datagram = (Instant, u64, usize, SocketAddr, Vec<u8>);

/// The simulated network.
pub struct Sim {
    cfg: SimConfig,
    now: Instant,
    nodes: Vec<SimNode>,
    by_addr: BTreeMap<SocketAddr, usize>,
    queue: BinaryHeap<Reverse<Datagram>>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    next_join: usize,
    rng: Rng,
    seq: u64,
    steps: u64,
    datagrams: u64,
    bootstrapped: usize,
    loss_percent: u64,
    lost: u64,
    trace: Sha1,
}

impl fmt::Debug for Sim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("now", &self.now)
            .field("nodes", &self.nodes.len())
            .field("steps", &self.steps)
            .field("datagrams", &self.datagrams)
            .finish_non_exhaustive()
    }
}

/// The address of node `i`.
pub fn node_addr(i: usize) -> SocketAddr {
    let n = i as u32 + 1;
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(10, (n >> 16) as u8, (n >> 8) as u8, n as u8)),
        6881,
    )
}

impl Sim {
    /// How many steps [`Sim::run_until`] takes between two checks of its condition.
    pub const CHECK_EVERY: u32 = 64;

    /// Builds the network; nothing has joined yet (node 0 joins at the first step).
    pub fn new(cfg: SimConfig) -> Self {
        let mut rng = Rng::new(Seed::from_u64(cfg.seed));
        let mut nodes = Vec::with_capacity(cfg.nodes);
        let mut by_addr = BTreeMap::new();
        for i in 0..cfg.nodes {
            let addr = node_addr(i);
            let silent = i != 0 && rng.below(100) < cfg.silent_percent;
            let dht = Dht::new(cfg.dht.clone(), rng.child(), Instant::ZERO);
            by_addr.insert(addr, i);
            nodes.push(SimNode {
                dht,
                addr,
                silent,
                joined: false,
                events: Vec::new(),
                deadline: None,
            });
        }
        Sim {
            cfg,
            now: Instant::ZERO,
            nodes,
            by_addr,
            queue: BinaryHeap::new(),
            timers: BinaryHeap::new(),
            next_join: 0,
            rng,
            seq: 0,
            steps: 0,
            datagrams: 0,
            bootstrapped: 0,
            loss_percent: 0,
            lost: 0,
            trace: Sha1::new(),
        }
    }

    /// The simulated time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The nodes.
    pub fn nodes(&self) -> &[SimNode] {
        &self.nodes
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Datagrams delivered.
    pub fn datagrams(&self) -> u64 {
        self.datagrams
    }

    /// From now on, drops `percent` (0–100) of the datagrams sent, chosen by the scenario
    /// seed: 100 is a total outage (every node cut off), 0 heals it. Datagrams already in
    /// flight still arrive.
    pub fn set_loss_percent(&mut self, percent: u64) {
        self.loss_percent = percent.min(100);
    }

    /// Makes node `i` silent (it never answers queries) or not, whatever
    /// [`SimConfig::silent_percent`] drew: for a network with exactly these silent nodes.
    pub fn set_silent(&mut self, i: usize, silent: bool) {
        self.nodes[i].silent = silent;
    }

    /// Datagrams dropped by the loss rate.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// SHA-1 over every datagram and event so far, with times and node indexes: equal for
    /// equal seeds.
    pub fn trace_hash(&self) -> [u8; 20] {
        self.trace.clone().finalize().into()
    }

    /// True once every node has joined.
    pub fn all_joined(&self) -> bool {
        self.next_join >= self.nodes.len()
    }

    /// Number of nodes whose bootstrap has finished with some nodes found (node 0, which has
    /// nobody to bootstrap from, counts once its bootstrap finished).
    pub fn bootstrapped(&self) -> usize {
        self.bootstrapped
    }

    /// Node `i` starts a `get_peers` lookup (announcing `announce` when done).
    pub fn get_peers(
        &mut self,
        i: usize,
        info_hash: InfoHash,
        announce: Option<u16>,
    ) -> Option<LookupId> {
        let now = self.now;
        let id = self.nodes[i].dht.get_peers(now, info_hash, announce).ok();
        self.drain(i);
        id
    }

    /// The `LookupDone` event of node `i`'s lookup, once it has finished.
    pub fn lookup_done(&self, i: usize, lookup: LookupId) -> Option<&DhtEvent> {
        self.nodes[i]
            .events
            .iter()
            .find(|e| matches!(e, DhtEvent::LookupDone { lookup: l, .. } if *l == lookup))
    }

    /// Every peer node `i`'s lookup reported.
    pub fn lookup_peers(&self, i: usize, lookup: LookupId) -> Vec<SocketAddr> {
        self.nodes[i]
            .events
            .iter()
            .filter_map(|e| match e {
                DhtEvent::Peers {
                    lookup: l, peers, ..
                } if *l == lookup => Some(peers.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    fn next_join_at(&self) -> Option<Instant> {
        (self.next_join < self.nodes.len())
            .then(|| Instant::ZERO + self.cfg.join_interval * self.next_join as u32)
    }

    /// Takes one step: the earliest join, delivery or deadline. Returns false when nothing is
    /// left to do or the step budget is spent.
    pub fn step(&mut self) -> bool {
        if self.steps >= self.cfg.max_steps {
            return false;
        }
        // Drop stale timers.
        while let Some(Reverse((t, i))) = self.timers.peek().copied() {
            if self.nodes[i].deadline == Some(t) {
                break;
            }
            self.timers.pop();
        }
        let join = self.next_join_at();
        let delivery = self.queue.peek().map(|Reverse(d)| d.0);
        let timer = self.timers.peek().map(|Reverse((t, _))| *t);
        let Some(next) = [join, delivery, timer].into_iter().flatten().min() else {
            return false;
        };
        self.steps += 1;
        self.now = self.now.max(next);
        let now = self.now;
        if join == Some(next) {
            let i = self.next_join;
            self.next_join += 1;
            self.nodes[i].joined = true;
            let seeds = if i == 0 { vec![] } else { vec![node_addr(0)] };
            self.nodes[i].dht.bootstrap(now, &seeds);
            self.drain(i);
        } else if delivery == Some(next) {
            let Some(Reverse((_, _, to, from, data))) = self.queue.pop() else {
                return false;
            };
            self.datagrams += 1;
            let node = &mut self.nodes[to];
            let drop = !node.joined
                || (node.silent
                    && matches!(
                        Message::decode(&data),
                        Ok(Message {
                            body: Body::Query { .. },
                            ..
                        })
                    ));
            if !drop {
                node.dht.handle_datagram(now, from, &data);
                self.drain(to);
            }
        } else if let Some(Reverse((_, i))) = self.timers.pop() {
            self.nodes[i].deadline = None;
            self.nodes[i].dht.handle_timeout(now);
            self.drain(i);
        }
        true
    }

    /// Steps until `done` holds, time passes `until`, or nothing is left. Returns `done`'s
    /// final answer. `done` is checked every [`Self::CHECK_EVERY`] steps, so it may scan.
    pub fn run_until(&mut self, until: Instant, mut done: impl FnMut(&Sim) -> bool) -> bool {
        let mut n = 0u32;
        loop {
            if n.is_multiple_of(Self::CHECK_EVERY) && done(self) {
                return true;
            }
            n = n.wrapping_add(1);
            let next = [
                self.next_join_at(),
                self.queue.peek().map(|Reverse(d)| d.0),
                self.timers.peek().map(|Reverse((t, _))| *t),
            ]
            .into_iter()
            .flatten()
            .min();
            if next.is_none_or(|t| t > until) || !self.step() {
                self.now = self.now.max(until);
                return done(self);
            }
        }
    }

    /// Runs for `d` of simulated time.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until, |_| false);
    }

    fn drain(&mut self, i: usize) {
        let now = self.now;
        while let Some(t) = self.nodes[i].dht.poll_transmit() {
            self.trace.update(now.as_nanos().to_be_bytes());
            self.trace.update((i as u64).to_be_bytes());
            self.trace.update(t.to.to_string().as_bytes());
            self.trace.update(&t.data);
            let Some(&to) = self.by_addr.get(&t.to) else {
                continue;
            };
            // Draw only under partial loss, so lossless runs keep their traces.
            let lose = match self.loss_percent {
                0 => false,
                100 => true,
                p => self.rng.below(100) < p,
            };
            if lose {
                self.lost += 1;
                continue;
            }
            let span = self
                .cfg
                .max_latency
                .saturating_sub(self.cfg.min_latency)
                .as_micros() as u64;
            let jitter = Duration::from_micros(self.rng.below(span + 1));
            let at = now + self.cfg.min_latency + jitter;
            self.seq += 1;
            let from = self.nodes[i].addr;
            self.queue.push(Reverse((at, self.seq, to, from, t.data)));
        }
        while let Some(e) = self.nodes[i].dht.poll_event() {
            self.trace.update(now.as_nanos().to_be_bytes());
            self.trace.update((i as u64).to_be_bytes());
            self.trace.update(format!("{e:?}").as_bytes());
            // Node 0 has nobody to bootstrap from: its (empty) bootstrap counts.
            let ok = |e: &DhtEvent| matches!(e, DhtEvent::BootstrapDone { nodes } if *nodes > 0 || i == 0);
            if ok(&e) && !self.nodes[i].events.iter().any(ok) {
                self.bootstrapped += 1;
            }
            self.nodes[i].events.push(e);
        }
        let deadline = self.nodes[i].dht.poll_timeout().map(|t| t.max(now));
        if deadline != self.nodes[i].deadline {
            self.nodes[i].deadline = deadline;
            if let Some(t) = deadline {
                self.timers.push(Reverse((t, i)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dht::routing::NodeState;

    struct Outcome {
        trace: [u8; 20],
        found: usize,
        sampled: usize,
        max_hops: u32,
    }

    /// A network of `nodes` bootstraps from node 0; one node announces; every sampled node
    /// (every `stride`-th answering node) looks the info-hash up.
    fn scenario(nodes: usize, silent_percent: u64, seed: u64, stride: usize) -> Outcome {
        let cfg = SimConfig {
            nodes,
            silent_percent,
            seed,
            ..SimConfig::default()
        };
        let join_time = cfg.join_interval * nodes as u32;
        let mut sim = Sim::new(cfg);
        let settled = Instant::ZERO + join_time + Duration::from_mins(1);
        sim.run_until(settled, |s| s.all_joined() && s.bootstrapped() == nodes);
        assert!(sim.all_joined());
        assert_eq!(
            sim.bootstrapped(),
            nodes,
            "every node finishes its bootstrap"
        );
        sim.run_for(Duration::from_secs(5));
        // Answering nodes should know a healthy number of others.
        let poor = sim
            .nodes()
            .iter()
            .filter(|n| !n.silent && n.dht.routing_table().len() < 16)
            .count();
        assert!(poor < nodes / 50, "{poor} nodes with tiny tables");

        let info_hash = InfoHash::of(format!("torrent {seed}").as_bytes());
        let announcer = (1..nodes).find(|i| !sim.nodes()[*i].silent).unwrap();
        let lid = sim.get_peers(announcer, info_hash, Some(51413)).unwrap();
        let t = sim.now() + Duration::from_mins(2);
        assert!(sim.run_until(t, |s| s.lookup_done(announcer, lid).is_some()));
        let Some(DhtEvent::LookupDone { announced, .. }) = sim.lookup_done(announcer, lid) else {
            unreachable!()
        };
        assert!(*announced >= 4, "announced to {announced} nodes");
        sim.run_for(Duration::from_secs(5));

        let expected = SocketAddr::new(node_addr(announcer).ip(), 51413);
        let sample: Vec<usize> = (0..nodes)
            .filter(|i| *i != announcer && !sim.nodes()[*i].silent)
            .step_by(stride)
            .collect();
        let mut lookups = Vec::new();
        for &i in &sample {
            // Stagger the lookups like rain's one-per-second session pacing, faster.
            sim.run_for(Duration::from_millis(20));
            lookups.push((i, sim.get_peers(i, info_hash, None).unwrap()));
        }
        let t = sim.now() + Duration::from_mins(2);
        let all_done = |s: &Sim| lookups.iter().all(|(i, l)| s.lookup_done(*i, *l).is_some());
        assert!(sim.run_until(t, all_done));
        let mut found = 0;
        let mut max_hops = 0;
        for (i, l) in &lookups {
            let Some(DhtEvent::LookupDone { hops, queries, .. }) = sim.lookup_done(*i, *l) else {
                unreachable!()
            };
            assert!(*queries <= 128);
            max_hops = max_hops.max(*hops);
            if sim.lookup_peers(*i, *l).contains(&expected) {
                found += 1;
            }
        }
        Outcome {
            trace: sim.trace_hash(),
            found,
            sampled: lookups.len(),
            max_hops,
        }
    }

    #[test]
    fn dht_sim_1000_nodes_find_an_announced_peer() {
        let out = scenario(1000, 0, 7, 1);
        assert!(out.sampled >= 998);
        assert_eq!(
            out.found, out.sampled,
            "every sampled lookup finds the peer"
        );
        assert!(out.max_hops <= 10, "{} hops", out.max_hops);
    }

    #[test]
    fn dht_sim_with_20_percent_silent_nodes_still_finds_the_peer() {
        let out = scenario(1000, 20, 11, 1);
        assert!(out.sampled >= 700);
        assert_eq!(
            out.found, out.sampled,
            "every sampled lookup finds the peer"
        );
        assert!(out.max_hops <= 12, "{} hops", out.max_hops);
    }

    /// Nodes of node `i`'s table that are not bad (usable to start a lookup).
    fn usable(sim: &Sim, i: usize) -> usize {
        let t = sim.nodes()[i].dht.routing_table();
        t.iter()
            .filter(|n| n.state(sim.now(), t.config()) != NodeState::Bad)
            .count()
    }

    /// Every answering node but `except` looks `info_hash` up; returns how many found `peer`.
    fn everyone_looks_up(sim: &mut Sim, info_hash: InfoHash, peer: SocketAddr) -> (usize, usize) {
        let nodes = sim.nodes().len();
        let announcer = peer_owner(sim, peer);
        let mut lookups = Vec::new();
        let askers: Vec<usize> = (0..nodes)
            .filter(|i| *i != announcer && !sim.nodes()[*i].silent)
            .collect();
        for i in askers {
            sim.run_for(Duration::from_millis(20));
            lookups.push((i, sim.get_peers(i, info_hash, None).unwrap()));
        }
        let t = sim.now() + Duration::from_mins(2);
        let all_done = |s: &Sim| lookups.iter().all(|(i, l)| s.lookup_done(*i, *l).is_some());
        assert!(sim.run_until(t, all_done));
        let found = lookups
            .iter()
            .filter(|(i, l)| sim.lookup_peers(*i, *l).contains(&peer))
            .count();
        (found, lookups.len())
    }

    fn peer_owner(sim: &Sim, peer: SocketAddr) -> usize {
        sim.nodes()
            .iter()
            .position(|n| n.addr.ip() == peer.ip())
            .unwrap()
    }

    /// Announces `info_hash` from `i` with port 51413 and waits for the announce to finish.
    fn announce(sim: &mut Sim, i: usize, info_hash: InfoHash) -> usize {
        let lid = sim.get_peers(i, info_hash, Some(51413)).unwrap();
        let t = sim.now() + Duration::from_mins(2);
        assert!(sim.run_until(t, |s| s.lookup_done(i, lid).is_some()));
        let Some(DhtEvent::LookupDone { announced, .. }) = sim.lookup_done(i, lid) else {
            unreachable!()
        };
        *announced
    }

    #[test]
    fn dht_sim_recovers_after_total_udp_loss_heals() {
        let nodes = 200;
        let cfg = SimConfig {
            nodes,
            seed: 21,
            ..SimConfig::default()
        };
        let settled = Instant::ZERO + cfg.join_interval * nodes as u32 + Duration::from_mins(1);
        let mut sim = Sim::new(cfg);
        sim.run_until(settled, |s| s.all_joined() && s.bootstrapped() == nodes);
        assert_eq!(sim.bootstrapped(), nodes);
        sim.run_for(Duration::from_secs(5));
        assert!((0..nodes).all(|i| usable(&sim, i) >= 8));

        // Total outage for 40 minutes: every datagram is lost. Pings and refreshes fail, the
        // table's nodes turn bad, lookups find nothing.
        sim.set_loss_percent(100);
        let info_hash = InfoHash::of(b"outage");
        let announcer = 7;
        let peer = SocketAddr::new(node_addr(announcer).ip(), 51413);
        assert_eq!(
            announce(&mut sim, announcer, info_hash),
            0,
            "nobody answers"
        );
        sim.run_for(Duration::from_mins(40));
        assert!(sim.lost() > 0);
        let cut_off = (0..nodes).filter(|i| usable(&sim, *i) == 0).count();
        assert!(
            cut_off > nodes / 2,
            "only {cut_off} nodes lost every contact"
        );
        let lid = sim.get_peers(3, info_hash, None).unwrap();
        let t = sim.now() + Duration::from_mins(2);
        assert!(sim.run_until(t, |s| s.lookup_done(3, lid).is_some()));
        assert!(sim.lookup_peers(3, lid).is_empty());

        // The network heals. Within a few minutes every node uses its table again, and an
        // announce made now is found by every node.
        sim.set_loss_percent(0);
        let lost = sim.lost();
        sim.run_for(Duration::from_mins(10));
        assert_eq!(sim.lost(), lost);
        let poor: Vec<usize> = (0..nodes).filter(|i| usable(&sim, *i) < 8).collect();
        assert!(
            poor.is_empty(),
            "nodes with tiny tables after the heal: {poor:?}"
        );
        assert!(announce(&mut sim, announcer, info_hash) >= 4);
        let (found, sampled) = everyone_looks_up(&mut sim, info_hash, peer);
        assert_eq!(sampled, nodes - 1);
        assert_eq!(found, sampled, "every lookup finds the peer after the heal");
    }

    #[test]
    fn dht_sim_is_deterministic_per_seed() {
        let a = scenario(200, 10, 3, 5);
        let b = scenario(200, 10, 3, 5);
        let c = scenario(200, 10, 4, 5);
        assert_eq!(a.trace, b.trace);
        assert_ne!(a.trace, c.trace);
        assert_eq!(a.found, a.sampled);
    }
}

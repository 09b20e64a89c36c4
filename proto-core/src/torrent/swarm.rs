//! A pure multi-peer harness (feature `test-util`): N [`Torrent`] machines on fake addresses,
//! with the harness playing the runtime.
//!
//! - **Dial**: after one round trip (2 × latency) the target is asked to accept
//!   ([`Torrent::handle_peer_connected`], incoming), then the dialler (outgoing); a refusal on
//!   either side closes the other (or fails the dial).
//! - **Send**: delivered to the other end after the link latency, in order; with a bandwidth
//!   set, each direction of a link serialises its messages at that rate, and with an uplink
//!   set for the sender ([`NetConfig::uplinks`]), all of its connections share that rate.
//!   A latency range (a link's in [`NetConfig::links`], or [`NetConfig::jitter`]) draws each
//!   delivery's latency from the harness's RNG, keeping each connection in order.
//! - **Partitions** ([`NetConfig::partitions`]): whatever would arrive across a cut while it
//!   lasts arrives when it heals instead (held, like TCP's retransmissions), dials included.
//! - **ReadBlock**: served at once from the node's in-memory data (a *corrupt* node flips a
//!   byte of every block it serves).
//! - **VerifyAndWrite**: SHA-1 of the blocks laid out with zero padding; written into the
//!   node's data if it matches.
//! - **Announce**: answered at once by a fake tracker that returns every other node (no
//!   tracker at all with [`NetConfig::tracker`] off: peers come only from
//!   [`Torrent::add_peer_addr`] and PEX).
//! - **Dial** of an [`NetConfig::unreachable`] node (behind a NAT) fails.
//! - **Disconnect**: the connection is gone at once for the sender; the other end hears of
//!   it after the latency.
//! - **WebseedRequest**: answered by a simulated HTTP server ([`SimWebseed`], one per URL
//!   given to every node): after one round trip the body arrives in chunks, at the server's
//!   bandwidth per node; it may fail with a status, cut the body short, or corrupt it.
//!   **WebseedCancel** drops whatever of that request is still in flight.
//!
//! The clock jumps straight to the next deadline (the minimum of every node's
//! `poll_timeout` and every in-flight delivery); the number of steps is capped. All state is
//! in `BTreeMap`s and `Vec`s and all randomness comes from one seed, so a run is a function of
//! its seed: [`Swarm::trace_hash`] hashes every event of every node with its time.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;

use super::{
    Action, Direction, PeerInfo, Resume, Torrent, TorrentConfig, TorrentEvent, TorrentParams,
};
use crate::bencode::Item;
use crate::bitfield::Bitfield;
use crate::hash::{InfoHash, sha1};
use crate::metainfo::{self, Info};
use crate::picker::PeerKey;
use crate::rng::{Rng, Seed};
use crate::time::Instant;
use crate::tracker::AnnounceReply;
use crate::webseed::{RequestId, WebseedError};
use crate::wire::{Message, PeerId, Reserved};

/// A generated torrent: its info dictionary and its data (padding as zeros).
#[derive(Debug, Clone)]
pub struct TestTorrent {
    /// Parsed info.
    pub info: Info,
    /// Raw info dictionary.
    pub info_bytes: Bytes,
    /// The info-hash.
    pub info_hash: InfoHash,
    /// The whole torrent's bytes, padding included.
    pub data: Vec<u8>,
}

impl TestTorrent {
    /// A random torrent of `min_len..=max_len` bytes: piece length 16, 32 or 64 KiB, one to
    /// five files, and BEP 47 padding files aligning some files to piece boundaries when
    /// `padding` is set. Everything follows from `seed`.
    pub fn generate(seed: u64, min_len: u64, max_len: u64, padding: bool) -> Self {
        let mut rng = Rng::new(Seed::from_u64(seed ^ 0x7e57_7e57));
        let piece_length: u32 = (16 * 1024) << rng.below(3);
        let target = min_len + rng.below(max_len.saturating_sub(min_len) + 1);
        let nfiles = 1 + rng.below(5);
        let mut files: Vec<(u64, bool)> = Vec::new();
        let mut left = target.max(1);
        let mut offset = 0u64;
        for f in 0..nfiles {
            let len = if f + 1 == nfiles {
                left
            } else {
                1 + rng.below(left.max(1))
            }
            .min(left);
            if len == 0 {
                break;
            }
            files.push((len, false));
            offset += len;
            left -= len;
            let pad = (u64::from(piece_length) - offset % u64::from(piece_length))
                % u64::from(piece_length);
            if padding && left > 0 && pad > 0 && rng.below(2) == 0 {
                files.push((pad, true));
                offset += pad;
            }
        }
        let total = offset;
        let mut data = vec![0u8; total as usize];
        let mut at = 0usize;
        for &(len, pad) in &files {
            if !pad {
                rng.fill(&mut data[at..at + len as usize]);
            }
            at += len as usize;
        }
        let pieces: Vec<u8> = data.chunks(piece_length as usize).flat_map(sha1).collect();
        let list: Vec<Item> = files
            .iter()
            .enumerate()
            .map(|(i, &(len, pad))| {
                let d = Item::dict().with("length", len as i64);
                if pad {
                    d.with("attr", "p").with(
                        "path",
                        vec![Item::from(".pad"), Item::from(len.to_string())],
                    )
                } else {
                    d.with("path", vec![Item::from(format!("file{i}"))])
                }
            })
            .collect();
        let info_bytes = Item::dict()
            .with("name", "swarm")
            .with("piece length", i64::from(piece_length))
            .with("pieces", pieces)
            .with("files", list)
            .to_bytes();
        let info = Info::from_bytes(&info_bytes, &metainfo::Limits::default())
            .expect("generated info parses");
        TestTorrent {
            info_hash: InfoHash::of(&info_bytes),
            info,
            info_bytes: Bytes::from(info_bytes),
            data,
        }
    }

    /// A torrent made elsewhere (rain-sim's `ContentSpec`, a real `.torrent`): its raw info
    /// dictionary and its whole byte stream, padding files as zeros. Both harnesses then share
    /// byte-identical torrents.
    ///
    /// # Panics
    /// If `data` is not as long as the info dictionary says (caller misuse).
    pub fn from_parts(info_bytes: Bytes, data: Vec<u8>) -> Result<Self, metainfo::Error> {
        let info = Info::from_bytes(&info_bytes, &metainfo::Limits::default())?;
        assert_eq!(
            data.len() as u64,
            info.total_length,
            "data length differs from the info dictionary's"
        );
        Ok(TestTorrent {
            info_hash: InfoHash::of(&info_bytes),
            info,
            info_bytes,
            data,
        })
    }
}

/// What a node starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Has every piece.
    Seeder,
    /// Has the metadata, no piece.
    Leecher,
    /// Has only the info-hash (magnet link).
    MagnetLeecher,
}

/// One node of the swarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeSpec {
    /// What it starts with.
    pub role: Role,
    /// It flips a byte of every block it serves.
    pub corrupt: bool,
    /// It never serves a requested block (its reads are dropped).
    pub stall: bool,
}

impl NodeSpec {
    /// An honest node.
    pub fn new(role: Role) -> Self {
        NodeSpec {
            role,
            corrupt: false,
            stall: false,
        }
    }
}

/// Network shape.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConfig {
    /// One-way latency of every link.
    pub latency: Duration,
    /// Extra one-way latency of every link, drawn in `0..=jitter` per delivery (zero: none,
    /// and no draw, so runs without jitter keep their traces).
    pub jitter: Duration,
    /// Latency range (least, most) of the link between two nodes (by index, smaller first),
    /// replacing `latency` and `jitter` there.
    pub links: BTreeMap<(usize, usize), (Duration, Duration)>,
    /// Bytes per second per link direction; `None` for unlimited.
    pub bandwidth: Option<u64>,
    /// Upload bytes per second of a node, shared by all its connections.
    pub uplinks: BTreeMap<usize, u64>,
    /// Nodes nobody can dial (behind a NAT); they still dial out.
    pub unreachable: BTreeSet<usize>,
    /// Cuts between groups of nodes for a while.
    pub partitions: Vec<Partition>,
    /// Every node announces to a fake tracker that returns every other node. Off: no node
    /// names a tracker.
    pub tracker: bool,
    /// Step cap.
    pub max_steps: u64,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            latency: Duration::from_millis(20),
            jitter: Duration::ZERO,
            links: BTreeMap::new(),
            bandwidth: None,
            uplinks: BTreeMap::new(),
            unreachable: BTreeSet::new(),
            partitions: Vec::new(),
            tracker: true,
            max_steps: 2_000_000,
        }
    }
}

/// Every link between a node of `a` and a node of `b` carries nothing from `from` until
/// `until` (simulated time since the start): what would arrive meanwhile arrives at `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// One side (node indexes).
    pub a: BTreeSet<usize>,
    /// The other side.
    pub b: BTreeSet<usize>,
    /// Start.
    pub from: Duration,
    /// Heal.
    pub until: Duration,
}

impl Partition {
    fn cuts(&self, x: usize, y: usize) -> bool {
        (self.a.contains(&x) && self.b.contains(&y)) || (self.a.contains(&y) && self.b.contains(&x))
    }
}

/// How a simulated webseed answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebseedMode {
    /// The requested bytes.
    Good,
    /// The requested bytes with the first byte of every body flipped.
    Corrupt,
    /// A failure status (e.g. 404) instead of a body.
    Status(u16),
    /// Half the body, then the connection ends.
    Short,
}

/// A simulated HTTP server holding the torrent's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimWebseed {
    /// Its base URL (given to every node as a webseed).
    pub url: String,
    /// How it answers.
    pub mode: WebseedMode,
    /// Bytes per second to each node; `None` for unlimited.
    pub bandwidth: Option<u64>,
    /// Body chunk size (deliveries per body = length / chunk).
    pub chunk: usize,
}

impl SimWebseed {
    /// A good server at `url` sending 10 000-byte chunks (blocks straddle them).
    pub fn new(url: &str, mode: WebseedMode) -> Self {
        SimWebseed {
            url: url.to_owned(),
            mode,
            bandwidth: None,
            chunk: 10_000,
        }
    }
}

/// A node: its machine and its "disk".
#[derive(Debug)]
pub struct Node {
    /// The machine.
    pub torrent: Torrent,
    /// Its address.
    pub addr: SocketAddr,
    /// Its peer id.
    pub peer_id: PeerId,
    /// Its data (the torrent's bytes; unwritten pieces are zeros).
    pub data: Vec<u8>,
    /// Flips bytes it serves.
    pub corrupt: bool,
    /// Never serves a block.
    pub stall: bool,
    /// Every event it emitted, with the time.
    pub events: Vec<(Instant, TorrentEvent)>,
    /// Body bytes delivered to it by each simulated webseed.
    pub webseed_bytes: Vec<u64>,
    /// Webseed requests it made, per simulated webseed.
    pub webseed_requests: Vec<u64>,
    conns: BTreeMap<PeerKey, u64>,
}

#[derive(Debug, Clone, Copy)]
struct Conn {
    ends: [(usize, PeerKey); 2],
}

#[derive(Debug)]
enum Delivery {
    Connect {
        from: usize,
        addr: SocketAddr,
    },
    Message {
        conn: u64,
        to: usize,
        msg: Message,
    },
    Closed {
        to: usize,
        key: PeerKey,
    },
    WebseedData {
        to: usize,
        ws: usize,
        request: RequestId,
        data: Bytes,
    },
    WebseedFailed {
        to: usize,
        request: RequestId,
        error: WebseedError,
    },
}

/// The harness. See the module documentation.
#[derive(Debug)]
pub struct Swarm {
    now: Instant,
    nodes: Vec<Node>,
    by_addr: BTreeMap<SocketAddr, usize>,
    conns: BTreeMap<u64, Conn>,
    next_conn: u64,
    queue: BTreeMap<(Instant, u64), Delivery>,
    seq: u64,
    busy: BTreeMap<(usize, usize), Instant>,
    net: NetConfig,
    steps: u64,
    trace: u64,
    torrent: TestTorrent,
    webseeds: Vec<SimWebseed>,
    /// When each (node, webseed) link is free again.
    ws_busy: BTreeMap<(usize, usize), Instant>,
    /// Requests each node has cancelled (their remaining deliveries are dropped).
    cancelled: BTreeSet<(usize, RequestId)>,
    /// Latency draws (used only with a latency range).
    rng: Rng,
    /// Latest arrival on each (connection, receiving node), to keep a stream in order.
    arrivals: BTreeMap<(u64, usize), Instant>,
    /// When each node's uplink is free again ([`NetConfig::uplinks`]).
    up_busy: BTreeMap<usize, Instant>,
    /// Dials refused because the target is unreachable.
    refused: u64,
    /// Each node's `poll_timeout` as of its last drain.
    deadlines: Vec<Option<Instant>>,
    /// Those deadlines, earliest first (entries that no longer match `deadlines` are stale):
    /// a step asks only the nodes whose deadline has come, not all of them.
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
}

fn fnv(h: &mut u64, bytes: &[u8]) {
    for &b in bytes {
        *h ^= u64::from(b);
        *h = h.wrapping_mul(0x0100_0000_01b3);
    }
}

impl Swarm {
    /// A swarm of `nodes` sharing `torrent`, every machine seeded from `seed` and started.
    pub fn new(
        seed: u64,
        torrent: TestTorrent,
        nodes: &[NodeSpec],
        config: &TorrentConfig,
        net: NetConfig,
    ) -> Self {
        Self::with_webseeds(seed, torrent, nodes, config, net, Vec::new())
    }

    /// [`Swarm::new`] with simulated webseeds, whose URLs every node is given.
    pub fn with_webseeds(
        seed: u64,
        torrent: TestTorrent,
        nodes: &[NodeSpec],
        config: &TorrentConfig,
        net: NetConfig,
        webseeds: Vec<SimWebseed>,
    ) -> Self {
        let mut rng = Rng::new(Seed::from_u64(seed));
        let now = Instant::ZERO;
        let trackers = if net.tracker {
            vec![vec!["http://tracker.test/announce".to_owned()]]
        } else {
            Vec::new()
        };
        let n = torrent.info.piece_count();
        let mut out = Vec::new();
        let mut by_addr = BTreeMap::new();
        for (i, spec) in nodes.iter().enumerate() {
            let addr = SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(10, 1, (i / 250) as u8, (i % 250) as u8 + 1)),
                6881,
            );
            let mut id = [0u8; 20];
            id[..8].copy_from_slice(b"-RN0001-");
            id[8..16].copy_from_slice(&(i as u64).to_be_bytes());
            let peer_id = PeerId(id);
            let info = (spec.role != Role::MagnetLeecher)
                .then(|| (torrent.info.clone(), torrent.info_bytes.clone()));
            let seeder = spec.role == Role::Seeder;
            let params = TorrentParams {
                info_hash: torrent.info_hash,
                info,
                peer_id,
                port: 6881,
                trackers: trackers.clone(),
                resume: Resume {
                    have: seeder.then(|| Bitfield::full(n)),
                    ..Resume::default()
                },
                stop_after_download: false,
                stop_after_metadata: false,
                our_addr: Some(addr),
                blocklist: None,
                webseeds: webseeds.iter().map(|w| w.url.clone()).collect(),
            };
            let t = Torrent::new(params, config.clone(), rng.child(), now);
            let data = if seeder {
                torrent.data.clone()
            } else {
                vec![0; torrent.data.len()]
            };
            by_addr.insert(addr, i);
            out.push(Node {
                torrent: t,
                addr,
                peer_id,
                data,
                corrupt: spec.corrupt,
                stall: spec.stall,
                events: Vec::new(),
                webseed_bytes: vec![0; webseeds.len()],
                webseed_requests: vec![0; webseeds.len()],
                conns: BTreeMap::new(),
            });
        }
        let mut s = Swarm {
            now,
            nodes: out,
            by_addr,
            conns: BTreeMap::new(),
            next_conn: 0,
            queue: BTreeMap::new(),
            seq: 0,
            busy: BTreeMap::new(),
            net,
            steps: 0,
            trace: 0xcbf2_9ce4_8422_2325,
            torrent,
            webseeds,
            ws_busy: BTreeMap::new(),
            cancelled: BTreeSet::new(),
            rng: Rng::new(rng.child()),
            arrivals: BTreeMap::new(),
            up_busy: BTreeMap::new(),
            refused: 0,
            deadlines: vec![None; nodes.len()],
            timers: BinaryHeap::new(),
        };
        for i in 0..s.nodes.len() {
            s.nodes[i].torrent.start(now);
            s.drain(i);
        }
        s
    }

    /// The simulated time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Hash of every event of every node, with its time.
    pub fn trace_hash(&self) -> u64 {
        self.trace
    }

    /// The nodes.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// One node, mutably (to inject commands; call [`Swarm::drain`] after, which also
    /// records its new deadline).
    pub fn node_mut(&mut self, i: usize) -> &mut Node {
        &mut self.nodes[i]
    }

    /// The torrent every node shares.
    pub fn torrent(&self) -> &TestTorrent {
        &self.torrent
    }

    /// Dials that failed because their target is [`NetConfig::unreachable`].
    pub fn refused_dials(&self) -> u64 {
        self.refused
    }

    /// Simulated webseed `ws` answers as `mode` from now on (requests already answered keep
    /// their deliveries).
    pub fn set_webseed_mode(&mut self, ws: usize, mode: WebseedMode) {
        if let Some(w) = self.webseeds.get_mut(ws) {
            w.mode = mode;
        }
    }

    /// One-way latency from node `from` to node `to` for one delivery.
    fn delay(&mut self, from: usize, to: usize) -> Duration {
        let (min, max) = self
            .net
            .links
            .get(&(from.min(to), from.max(to)))
            .copied()
            .unwrap_or((self.net.latency, self.net.latency + self.net.jitter));
        if max <= min {
            return min;
        }
        let span = max.saturating_sub(min).as_nanos() as u64;
        min + Duration::from_nanos(self.rng.below(span + 1))
    }

    /// When something sent from `from` to `to`, due at `at`, arrives: held across any
    /// partition between them until it heals.
    fn held(&self, from: usize, to: usize, mut at: Instant) -> Instant {
        loop {
            let since = at.saturating_duration_since(Instant::ZERO);
            let Some(heal) = self
                .net
                .partitions
                .iter()
                .filter(|p| p.cuts(from, to) && p.from <= since && since < p.until)
                .map(|p| p.until)
                .max()
            else {
                return at;
            };
            at = Instant::ZERO + heal;
        }
    }

    /// True when every node's data equals the torrent's and its machine is complete.
    pub fn all_complete(&self) -> bool {
        self.nodes
            .iter()
            .all(|n| n.torrent.is_complete() && n.data == self.torrent.data)
    }

    /// Runs until `done` holds (true) or the swarm is idle or out of steps (false).
    pub fn run_until(&mut self, mut done: impl FnMut(&Swarm) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            if self.steps >= self.net.max_steps || !self.step() {
                return false;
            }
        }
    }

    /// Advances to the next deadline and processes it. False when nothing is pending.
    pub fn step(&mut self) -> bool {
        while let Some(&Reverse((t, i))) = self.timers.peek() {
            if self.deadlines[i] == Some(t) {
                break;
            }
            self.timers.pop();
        }
        let next_delivery = self.queue.keys().next().map(|k| k.0);
        let next_timer = self.timers.peek().map(|Reverse((t, _))| *t);
        let Some(next) = [next_delivery, next_timer].into_iter().flatten().min() else {
            return false;
        };
        self.steps += 1;
        self.now = self.now.max(next);
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let d = entry.remove();
            self.deliver(d);
        }
        // Every node whose deadline has come, in node order.
        let mut due = BTreeSet::new();
        while let Some(&Reverse((t, i))) = self.timers.peek() {
            if t > self.now {
                break;
            }
            self.timers.pop();
            if self.deadlines[i] == Some(t) {
                self.deadlines[i] = None;
                due.insert(i);
            }
        }
        for i in due {
            if self.nodes[i]
                .torrent
                .poll_timeout()
                .is_some_and(|t| t <= self.now)
            {
                self.nodes[i].torrent.handle_timeout(self.now);
            }
            self.drain(i);
        }
        true
    }

    /// Answers a webseed request of node `i` (see the module documentation).
    fn serve_webseed(&mut self, i: usize, r: &crate::webseed::WebseedRequest) {
        let ws = r.source.0 as usize;
        let Some(server) = self.webseeds.get(ws).cloned() else {
            return;
        };
        self.nodes[i].webseed_requests[ws] += 1;
        let start = self.now + self.net.latency * 2;
        let fail = |error| Delivery::WebseedFailed {
            to: i,
            request: r.id,
            error,
        };
        if let WebseedMode::Status(code) = server.mode {
            self.schedule(start, fail(WebseedError::Status(code)));
            return;
        }
        let at = (self.torrent.info.files[r.file].offset + r.file_offset) as usize;
        let mut body = self.torrent.data[at..at + r.length as usize].to_vec();
        if server.mode == WebseedMode::Corrupt
            && let Some(b) = body.first_mut()
        {
            *b ^= 0xff;
        }
        if server.mode == WebseedMode::Short {
            body.truncate(body.len() / 2);
        }
        let body = Bytes::from(body);
        let busy = self.ws_busy.entry((i, ws)).or_insert(start);
        let mut t = (*busy).max(start);
        let mut off = 0;
        let mut deliveries = Vec::new();
        while off < body.len() {
            let n = server.chunk.max(1).min(body.len() - off);
            if let Some(bw) = server.bandwidth {
                t = t + Duration::from_nanos(n as u64 * 1_000_000_000 / bw.max(1));
            }
            deliveries.push((
                t,
                Delivery::WebseedData {
                    to: i,
                    ws,
                    request: r.id,
                    data: body.slice(off..off + n),
                },
            ));
            off += n;
        }
        *busy = t;
        for (t, d) in deliveries {
            self.schedule(t, d);
        }
        if server.mode == WebseedMode::Short {
            self.schedule(t, fail(WebseedError::ShortBody));
        }
    }

    fn schedule(&mut self, at: Instant, d: Delivery) {
        self.seq += 1;
        self.queue.insert((at, self.seq), d);
    }

    fn deliver(&mut self, d: Delivery) {
        let now = self.now;
        match d {
            Delivery::Connect { from, addr } => {
                let Some(&to) = self.by_addr.get(&addr).filter(|&&to| to != from) else {
                    self.nodes[from].torrent.handle_dial_failed(now, addr);
                    self.drain(from);
                    return;
                };
                if self.net.unreachable.contains(&to) {
                    self.refused += 1;
                    self.nodes[from].torrent.handle_dial_failed(now, addr);
                    self.drain(from);
                    return;
                }
                let reserved = Reserved::rain(false);
                let incoming = PeerInfo {
                    addr: self.nodes[from].addr,
                    direction: Direction::Incoming,
                    peer_id: self.nodes[from].peer_id,
                    reserved,
                    encrypted: false,
                };
                let accepted = self.nodes[to].torrent.handle_peer_connected(now, incoming);
                let Ok(kt) = accepted else {
                    self.note_deadline(to);
                    self.nodes[from].torrent.handle_dial_failed(now, addr);
                    self.drain(from);
                    return;
                };
                let outgoing = PeerInfo {
                    addr,
                    direction: Direction::Outgoing,
                    peer_id: self.nodes[to].peer_id,
                    reserved,
                    encrypted: false,
                };
                match self.nodes[from]
                    .torrent
                    .handle_peer_connected(now, outgoing)
                {
                    Ok(kf) => {
                        let id = self.next_conn;
                        self.next_conn += 1;
                        self.conns.insert(
                            id,
                            Conn {
                                ends: [(from, kf), (to, kt)],
                            },
                        );
                        self.nodes[from].conns.insert(kf, id);
                        self.nodes[to].conns.insert(kt, id);
                    }
                    Err(_) => self.nodes[to].torrent.handle_peer_closed(now, kt),
                }
                // Drain the acceptor first: its first messages queue before the dialler's
                // (both are delivered after the latency anyway).
                self.drain(to);
                self.drain(from);
            }
            Delivery::Message { conn, to, msg } => {
                let Some(c) = self.conns.get(&conn) else {
                    return;
                };
                let key = if c.ends[0].0 == to {
                    c.ends[0].1
                } else {
                    c.ends[1].1
                };
                self.nodes[to].torrent.handle_message(now, key, msg);
                self.drain(to);
            }
            Delivery::Closed { to, key } => {
                self.nodes[to].torrent.handle_peer_closed(now, key);
                self.drain(to);
            }
            Delivery::WebseedData {
                to,
                ws,
                request,
                data,
            } => {
                if self.cancelled.contains(&(to, request)) {
                    return;
                }
                self.nodes[to].webseed_bytes[ws] += data.len() as u64;
                self.nodes[to]
                    .torrent
                    .handle_webseed_data(now, request, data);
                self.drain(to);
            }
            Delivery::WebseedFailed { to, request, error } => {
                if self.cancelled.contains(&(to, request)) {
                    return;
                }
                self.nodes[to]
                    .torrent
                    .handle_webseed_failed(now, request, error);
                self.drain(to);
            }
        }
    }

    /// Performs every action and records every event of node `i`.
    pub fn drain(&mut self, i: usize) {
        let now = self.now;
        while let Some(a) = self.nodes[i].torrent.poll_action() {
            self.perform(i, a);
        }
        while let Some(e) = self.nodes[i].torrent.poll_event() {
            fnv(&mut self.trace, &(i as u64).to_le_bytes());
            fnv(&mut self.trace, &now.as_nanos().to_le_bytes());
            let text = match &e {
                TorrentEvent::MetadataReceived { info_bytes } => {
                    format!("metadata {}", info_bytes.len())
                }
                other => format!("{other:?}"),
            };
            fnv(&mut self.trace, text.as_bytes());
            self.nodes[i].events.push((now, e));
        }
        self.note_deadline(i);
    }

    /// Records node `i`'s deadline after an input (every input is followed by this, through
    /// [`Swarm::drain`] or directly).
    fn note_deadline(&mut self, i: usize) {
        let deadline = self.nodes[i].torrent.poll_timeout();
        if deadline != self.deadlines[i] {
            self.deadlines[i] = deadline;
            if let Some(t) = deadline {
                self.timers.push(Reverse((t, i)));
            }
        }
    }

    fn perform(&mut self, i: usize, a: Action) {
        let now = self.now;
        match a {
            Action::Send { peer, message } => {
                let Some(&conn) = self.nodes[i].conns.get(&peer) else {
                    return;
                };
                let Some(c) = self.conns.get(&conn) else {
                    return;
                };
                let to = if c.ends[0].0 == i {
                    c.ends[1].0
                } else {
                    c.ends[0].0
                };
                let size = match &message {
                    Message::Piece { data, .. } => 13 + data.len() as u64,
                    Message::Bitfield(b) => 5 + b.len() as u64,
                    Message::Extended { payload, .. } => 6 + payload.len() as u64,
                    _ => 17,
                };
                let mut at = now;
                if let Some(bw) = self.net.bandwidth {
                    let busy = self.busy.entry((i, to)).or_insert(now);
                    let start = (*busy).max(now);
                    *busy = start + Duration::from_nanos(size * 1_000_000_000 / bw.max(1));
                    at = *busy;
                }
                if let Some(&up) = self.net.uplinks.get(&i) {
                    let busy = self.up_busy.entry(i).or_insert(now);
                    let start = (*busy).max(now);
                    *busy = start + Duration::from_nanos(size * 1_000_000_000 / up.max(1));
                    at = at.max(*busy);
                }
                let delay = self.delay(i, to);
                let mut arrive = self.held(i, to, at + delay);
                if let Some(last) = self.arrivals.get(&(conn, to)) {
                    arrive = arrive.max(*last);
                }
                self.arrivals.insert((conn, to), arrive);
                self.schedule(
                    arrive,
                    Delivery::Message {
                        conn,
                        to,
                        msg: message,
                    },
                );
            }
            Action::Dial { addr } => {
                let at = match self.by_addr.get(&addr).copied() {
                    Some(to) => {
                        let there = self.delay(i, to);
                        let back = self.delay(to, i);
                        let syn = self.held(i, to, now + there);
                        self.held(to, i, syn + back)
                    }
                    None => now + self.net.latency * 2,
                };
                self.schedule(at, Delivery::Connect { from: i, addr });
            }
            Action::Disconnect { peer, .. } => {
                let Some(conn) = self.nodes[i].conns.remove(&peer) else {
                    return;
                };
                // Messages in flight on this connection are dropped from now on.
                if let Some(c) = self.conns.remove(&conn) {
                    for (n, k) in c.ends {
                        self.arrivals.remove(&(conn, n));
                        if n != i {
                            self.nodes[n].conns.remove(&k);
                            let delay = self.delay(i, n);
                            let at = self.held(i, n, now + delay);
                            self.schedule(at, Delivery::Closed { to: n, key: k });
                        }
                    }
                }
            }
            Action::ReadBlock {
                peer,
                piece,
                begin,
                len,
            } => {
                let node = &self.nodes[i];
                if node.stall {
                    return;
                }
                let off =
                    u64::from(piece) * u64::from(self.torrent.info.piece_length) + u64::from(begin);
                let range = off as usize..(off + u64::from(len)) as usize;
                let mut block = node.data[range].to_vec();
                if node.corrupt
                    && let Some(b) = block.first_mut()
                {
                    *b ^= 0xff;
                }
                self.nodes[i].torrent.handle_block_read(
                    now,
                    peer,
                    piece,
                    begin,
                    Ok(Bytes::from(block)),
                );
            }
            Action::VerifyAndWrite {
                piece,
                expected,
                blocks,
            } => {
                let ok = {
                    let t = &self.nodes[i].torrent;
                    let Some(picker) = t.picker() else {
                        return;
                    };
                    let layout = picker.layout();
                    let mut buf = vec![0u8; layout.piece_len(piece) as usize];
                    for (k, b) in blocks.iter().enumerate() {
                        let blk = layout.block(piece, k as u32);
                        buf[blk.begin as usize..blk.begin as usize + b.len()].copy_from_slice(b);
                    }
                    let ok = sha1(&buf) == expected;
                    if ok {
                        let off = piece as usize * self.torrent.info.piece_length as usize;
                        self.nodes[i].data[off..off + buf.len()].copy_from_slice(&buf);
                    }
                    ok
                };
                self.nodes[i]
                    .torrent
                    .handle_piece_written(now, piece, Ok(ok));
            }
            Action::WebseedRequest(r) => self.serve_webseed(i, &r),
            Action::WebseedCancel { request, .. } => {
                self.cancelled.insert((i, request));
            }
            Action::Announce { request, .. } => {
                let peers = self
                    .nodes
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| *k != i)
                    .map(|(_, n)| n.addr)
                    .take(request.num_want as usize)
                    .collect();
                let reply = AnnounceReply {
                    interval: Duration::from_mins(30),
                    peers,
                    ..AnnounceReply::default()
                };
                self.nodes[i]
                    .torrent
                    .handle_announce_reply(now, request.id, Ok(reply));
            }
        }
    }
}

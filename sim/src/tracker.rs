//! A minimal, real tracker for simulated swarms (the host `tracker` of a
//! [`Scenario`](crate::Scenario) with [`Scenario::tracker`](crate::Scenario::tracker)), over
//! UDP (BEP 15) and HTTP (BEP 3, 23, 48) at once.
//!
//! [`TrackerState`] is the sans-IO tracker: connect (connection ids bound to the client's
//! address and to this tracker's incarnation, so ids from before a restart, or made up, are
//! refused), announce (each announcer's IP and announced port remembered per info-hash,
//! dropped on `stopped` or when not heard from for [`PEER_TTL`], and up to `numwant` others
//! returned in compact form) and scrape; [`TrackerState::handle`] decodes datagrams and
//! [`TrackerState::handle_http`] requests, both over one swarm table. [`serve`] runs it on UDP
//! port [`TRACKER_PORT`] and TCP port [`TRACKER_HTTP_PORT`] of a turmoil host. A crashed
//! tracker loses its state: a restarted one starts with an empty swarm.
//!
//! It also counts the UDP requests that arrived twice ([`TrackerStats::duplicate_requests`]),
//! to show that a duplicating UDP path was met. Over an
//! IPv6 simulation it hands IPv6 announcers IPv6 peers (18 bytes each over UDP, BEP 15;
//! `peers6` over HTTP, BEP 7).
//!
//! Everything it does is a function of the datagrams it receives and its seed (peer lists are
//! kept in `BTreeMap`s, the sample of a large swarm is drawn from a seeded RNG), so a run stays
//! reproducible.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rain_proto::rng::{Rng, Seed};
use rain_runtime::net::{Datagram, Network};
use sha1::{Digest, Sha1};

use crate::http_server::{Request, read_request, respond};
use crate::net::TurmoilNet;

/// The UDP port the simulated tracker listens on.
pub const TRACKER_PORT: u16 = 6969;
/// The TCP port of the simulated tracker's HTTP face.
pub const TRACKER_HTTP_PORT: u16 = 80;
/// The `interval` the tracker hands out: short, for simulated minutes (rain clamps intervals
/// to at least 30 s anyway).
pub const ANNOUNCE_INTERVAL: Duration = Duration::from_secs(30);
/// A peer not heard from for this long is forgotten (crashed hosts never send `stopped`).
pub const PEER_TTL: Duration = Duration::from_secs(4 * 30);
/// Peers returned when the announce asks for the default (`numwant` -1).
pub const DEFAULT_NUM_WANT: usize = 50;
/// Most peers in one reply, whatever `numwant` says (1200 bytes: one datagram).
pub const MAX_PEERS: usize = 200;
/// A UDP request equal byte for byte to one from the same address within this long is a
/// duplicate (rain's client gives every send, a retransmission too, a fresh transaction id).
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(10);
/// Requests remembered per address for [`DUPLICATE_WINDOW`].
const RECENT_REQUESTS: usize = 16;

/// BEP 15's connect magic.
const PROTOCOL_ID: u64 = 0x0417_2710_1980;
const ACTION_CONNECT: u32 = 0;
const ACTION_ANNOUNCE: u32 = 1;
const ACTION_SCRAPE: u32 = 2;
/// Most info-hashes answered in one scrape (BEP 15: about 74 fit a datagram).
const MAX_SCRAPE: usize = 74;
/// BEP 15's event codes (HTTP's event names map onto them).
const EVENT_NONE: u32 = 0;
const EVENT_COMPLETED: u32 = 1;
const EVENT_STARTED: u32 = 2;
const EVENT_STOPPED: u32 = 3;

/// The announce URL of the simulated tracker over UDP, as torrents and magnets name it.
pub fn announce_url() -> String {
    format!("udp://tracker:{TRACKER_PORT}/announce")
}

/// The announce URL of the simulated tracker over HTTP.
pub fn http_announce_url() -> String {
    format!("http://tracker:{TRACKER_HTTP_PORT}/announce")
}

/// One announce, whichever transport carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceRequest {
    /// The torrent.
    pub info_hash: [u8; 20],
    /// The announcer's IP (as the tracker sees it) and the port it listens on.
    pub peer: SocketAddr,
    /// Bytes it still needs (0: a seed).
    pub left: u64,
    /// BEP 15's event code: 0 none, 1 completed, 2 started, 3 stopped.
    pub event: u32,
    /// Peers wanted (`None`: [`DEFAULT_NUM_WANT`]).
    pub num_want: Option<usize>,
}

/// What an announce gets back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceReply {
    /// Seconds until the next announce.
    pub interval: u32,
    /// Seeds in the swarm.
    pub seeders: u32,
    /// Leechers in the swarm.
    pub leechers: u32,
    /// Other peers, of the announcer's address family.
    pub peers: Vec<SocketAddr>,
}

/// Peers in compact form (6 bytes each for IPv4, 18 for IPv6).
fn compact(peers: &[SocketAddr]) -> Vec<u8> {
    let mut out = Vec::with_capacity(peers.len() * 6);
    for a in peers {
        match a.ip() {
            IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
            IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
        }
        out.extend_from_slice(&a.port().to_be_bytes());
    }
    out
}

/// A bencoded `failure reason` body.
fn bencode_failure(reason: &str) -> Vec<u8> {
    format!("d14:failure reason{}:{reason}e", reason.len()).into_bytes()
}

/// Counters shared by every incarnation of a tracker host and the test that reads them.
#[derive(Debug, Default)]
pub struct TrackerStats {
    /// Connect requests answered.
    pub connects: AtomicU64,
    /// Announces answered.
    pub announces: AtomicU64,
    /// Scrapes answered.
    pub scrapes: AtomicU64,
    /// Requests dropped for a connection id this incarnation did not give out.
    pub bad_connection_ids: AtomicU64,
    /// UDP requests that arrived again byte for byte within [`DUPLICATE_WINDOW`] (the network
    /// duplicated them; each copy is answered, as a real tracker would).
    pub duplicate_requests: AtomicU64,
    /// Times the tracker software started (1 on the first start).
    pub incarnations: AtomicU64,
    /// A one-line summary of the swarms after the last announce (for failure reports).
    pub summary: Mutex<String>,
}

impl TrackerStats {
    /// Announces answered so far.
    pub fn announces(&self) -> u64 {
        self.announces.load(Ordering::Relaxed)
    }

    /// The latest summary line.
    pub fn summary(&self) -> String {
        self.summary
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// One peer of a swarm, as the tracker last heard of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PeerEntry {
    /// Nothing left to download.
    seed: bool,
    /// When it last announced.
    seen: Duration,
}

/// The sans-IO tracker: answers one datagram at a time.
#[derive(Debug)]
pub struct TrackerState {
    /// Keys the connection ids of this incarnation.
    secret: [u8; 8],
    /// Per info-hash, each peer by its IP and announced port.
    swarms: BTreeMap<[u8; 20], BTreeMap<SocketAddr, PeerEntry>>,
    /// `completed` events seen per info-hash (the scrape's `downloaded`).
    completed: BTreeMap<[u8; 20], u32>,
    /// The latest UDP requests from each address, with when they came.
    recent: BTreeMap<SocketAddr, Vec<(Duration, Vec<u8>)>>,
    rng: Rng,
    stats: Arc<TrackerStats>,
}

impl TrackerState {
    /// A tracker with empty swarms; `seed` keys its connection ids and sampling.
    pub fn new(seed: u64, stats: Arc<TrackerStats>) -> Self {
        let mut rng = Rng::new(Seed::from_u64(seed));
        let secret = rng.next_u64().to_le_bytes();
        TrackerState {
            secret,
            swarms: BTreeMap::new(),
            completed: BTreeMap::new(),
            recent: BTreeMap::new(),
            rng,
            stats,
        }
    }

    /// The connection id this incarnation gives `from` (BEP 15: bound to the client's address).
    fn connection_id(&self, from: SocketAddr) -> u64 {
        let mut h = Sha1::new();
        h.update(self.secret);
        h.update(from.to_string().as_bytes());
        let d = h.finalize();
        u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
    }

    /// Peers in the swarm of `info_hash` (for tests and reports).
    pub fn peers(&self, info_hash: &[u8; 20]) -> Vec<SocketAddr> {
        self.swarms
            .get(info_hash)
            .map(|s| s.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Handles a datagram from `from` at simulated time `now`; the reply to send back, if any.
    /// Malformed requests, unknown actions and unknown connection ids get no reply.
    pub fn handle(&mut self, now: Duration, from: SocketAddr, p: &[u8]) -> Option<Vec<u8>> {
        if p.len() < 16 {
            return None;
        }
        self.note_duplicate(now, from, p);
        let connection_id = u64::from_be_bytes(p[0..8].try_into().ok()?);
        let action = u32::from_be_bytes(p[8..12].try_into().ok()?);
        let tid = &p[12..16];
        let mut reply = Vec::new();
        if action == ACTION_CONNECT {
            if connection_id != PROTOCOL_ID {
                return None;
            }
            reply.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
            reply.extend_from_slice(tid);
            reply.extend_from_slice(&self.connection_id(from).to_be_bytes());
            TrackerStats::bump(&self.stats.connects);
            return Some(reply);
        }
        if connection_id != self.connection_id(from) {
            TrackerStats::bump(&self.stats.bad_connection_ids);
            return None;
        }
        match action {
            ACTION_ANNOUNCE if p.len() >= 98 => self.announce_udp(now, from, p, tid, &mut reply),
            ACTION_SCRAPE => {
                reply.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
                reply.extend_from_slice(tid);
                for hash in p[16..].chunks_exact(20).take(MAX_SCRAPE) {
                    let hash: [u8; 20] = hash.try_into().ok()?;
                    let (seeders, done, leechers) = self.scrape(&hash);
                    for v in [seeders, done, leechers] {
                        reply.extend_from_slice(&v.to_be_bytes());
                    }
                }
                TrackerStats::bump(&self.stats.scrapes);
            }
            _ => return None,
        }
        Some(reply)
    }

    /// Counts `p` as a duplicate if a recent request from `from` was the same, and remembers
    /// it.
    fn note_duplicate(&mut self, now: Duration, from: SocketAddr, p: &[u8]) {
        let recent = self.recent.entry(from).or_default();
        recent.retain(|(at, _)| now.saturating_sub(*at) <= DUPLICATE_WINDOW);
        if recent.iter().any(|(_, q)| q == p) {
            TrackerStats::bump(&self.stats.duplicate_requests);
        }
        if recent.len() >= RECENT_REQUESTS {
            recent.remove(0);
        }
        recent.push((now, p.to_vec()));
    }

    /// Records `req` and picks the peers to hand back.
    pub fn announce(&mut self, now: Duration, req: &AnnounceRequest) -> AnnounceReply {
        let me = req.peer;
        let swarm = self.swarms.entry(req.info_hash).or_default();
        swarm.retain(|_, e| now.saturating_sub(e.seen) < PEER_TTL);
        let others: Vec<SocketAddr> = swarm
            .keys()
            .filter(|a| **a != me && a.is_ipv4() == me.is_ipv4())
            .copied()
            .collect();
        // stopped: forget it, and send no peers; completed is counted for scrapes.
        let mut peers = if req.event == EVENT_STOPPED {
            swarm.remove(&me);
            Vec::new()
        } else {
            swarm.insert(
                me,
                PeerEntry {
                    seed: req.left == 0,
                    seen: now,
                },
            );
            if req.event == EVENT_COMPLETED {
                *self.completed.entry(req.info_hash).or_default() += 1;
            }
            others
        };
        let num_want = req.num_want.map_or(DEFAULT_NUM_WANT, |n| n.min(MAX_PEERS));
        // A deterministic sample when the swarm is larger than asked for.
        while peers.len() > num_want {
            let i = self.rng.below(peers.len() as u64) as usize;
            peers.remove(i);
        }
        let (seeders, leechers) = self.counts(&req.info_hash);
        self.summarize();
        TrackerStats::bump(&self.stats.announces);
        AnnounceReply {
            interval: u32::try_from(ANNOUNCE_INTERVAL.as_secs()).unwrap_or(u32::MAX),
            seeders,
            leechers,
            peers,
        }
    }

    /// `(seeders, completed, leechers)` of a swarm, as a scrape reports them.
    pub fn scrape(&self, info_hash: &[u8; 20]) -> (u32, u32, u32) {
        let (seeders, leechers) = self.counts(info_hash);
        let done = self.completed.get(info_hash).copied().unwrap_or(0);
        (seeders, done, leechers)
    }

    /// Decodes a BEP 15 announce (`p` at least 98 bytes) and writes the reply to `out`.
    fn announce_udp(
        &mut self,
        now: Duration,
        from: SocketAddr,
        p: &[u8],
        tid: &[u8],
        out: &mut Vec<u8>,
    ) {
        let be32 = |i: usize| u32::from_be_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
        let port = u16::from_be_bytes([p[96], p[97]]);
        let req = AnnounceRequest {
            info_hash: p[16..36].try_into().expect("20 bytes"),
            // The sender's address; the optional IP field is ignored, as most trackers do.
            peer: SocketAddr::new(from.ip(), port),
            left: u64::from_be_bytes(p[64..72].try_into().expect("8 bytes")),
            event: be32(80),
            num_want: usize::try_from(be32(92) as i32).ok(),
        };
        let reply = self.announce(now, &req);
        out.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
        out.extend_from_slice(tid);
        for v in [reply.interval, reply.leechers, reply.seeders] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&compact(&reply.peers));
    }

    /// Answers an HTTP request (`/announce` or `/scrape`, BEP 3 and 48, compact peers only):
    /// the status line and the bencoded body.
    pub fn handle_http(
        &mut self,
        now: Duration,
        from: SocketAddr,
        req: &Request,
    ) -> (&'static str, Vec<u8>) {
        let hash = |v: Vec<u8>| <[u8; 20]>::try_from(v).ok();
        match req.path.as_str() {
            "/announce" => {
                let (Some(info_hash), Some(port)) = (
                    req.param("info_hash").and_then(hash),
                    req.number::<u16>("port"),
                ) else {
                    return ("200 OK", bencode_failure("info_hash and port are required"));
                };
                let event = match req.param("event").as_deref() {
                    Some(b"completed") => EVENT_COMPLETED,
                    Some(b"started") => EVENT_STARTED,
                    Some(b"stopped") => EVENT_STOPPED,
                    _ => EVENT_NONE,
                };
                let announce = AnnounceRequest {
                    info_hash,
                    peer: SocketAddr::new(from.ip(), port),
                    left: req.number("left").unwrap_or(0),
                    event,
                    num_want: req.number("numwant"),
                };
                let r = self.announce(now, &announce);
                let peers = compact(&r.peers);
                let mut body = format!(
                    "d8:completei{}e10:incompletei{}e8:intervali{}e",
                    r.seeders, r.leechers, r.interval,
                )
                .into_bytes();
                // IPv6 announcers get IPv6 peers, under `peers6` (BEP 7).
                if from.is_ipv6() {
                    body.extend_from_slice(format!("5:peers0:6:peers6{}:", peers.len()).as_bytes());
                } else {
                    body.extend_from_slice(format!("5:peers{}:", peers.len()).as_bytes());
                }
                body.extend_from_slice(&peers);
                body.push(b'e');
                ("200 OK", body)
            }
            "/scrape" => {
                let mut body = b"d5:filesd".to_vec();
                let hashes = req
                    .params("info_hash")
                    .filter_map(hash)
                    .collect::<std::collections::BTreeSet<_>>();
                for h in hashes.iter().take(MAX_SCRAPE) {
                    let (seeders, done, leechers) = self.scrape(h);
                    body.extend_from_slice(b"20:");
                    body.extend_from_slice(h);
                    body.extend_from_slice(
                        format!(
                            "d8:completei{seeders}e10:downloadedi{done}e10:incompletei{leechers}ee"
                        )
                        .as_bytes(),
                    );
                }
                body.extend_from_slice(b"ee");
                TrackerStats::bump(&self.stats.scrapes);
                ("200 OK", body)
            }
            _ => ("404 Not Found", Vec::new()),
        }
    }

    /// Refreshes the one-line summary of the swarms (for failure reports).
    fn summarize(&self) {
        let summary = self
            .swarms
            .iter()
            .map(|(h, s)| {
                let seeds = s.values().filter(|e| e.seed).count();
                format!(
                    "{:02x}{:02x}..: {} peers ({seeds} seeds)",
                    h[0],
                    h[1],
                    s.len()
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        *self
            .stats
            .summary
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = summary;
    }

    /// (seeders, leechers) of a swarm.
    fn counts(&self, hash: &[u8; 20]) -> (u32, u32) {
        let Some(s) = self.swarms.get(hash) else {
            return (0, 0);
        };
        let seeds = s.values().filter(|e| e.seed).count();
        let n = |x: usize| u32::try_from(x).unwrap_or(u32::MAX);
        (n(seeds), n(s.len() - seeds))
    }
}

/// Runs a tracker on UDP [`TRACKER_PORT`] and TCP [`TRACKER_HTTP_PORT`] of the current
/// turmoil host until the simulation ends or the host crashes. Each start (a restart after a
/// crash too) begins with empty swarms and a fresh connection-id key, derived from `seed` and
/// the incarnation.
pub async fn serve(seed: u64, stats: Arc<TrackerStats>) -> turmoil::Result {
    serve_on(seed, stats, TurmoilNet::new()).await
}

/// [`serve`] with sockets from `net`: its replies meet the host's UDP faults
/// ([`TurmoilNet::with_udp_chaos`]), and it binds the network's address family.
pub async fn serve_on(seed: u64, stats: Arc<TrackerStats>, net: TurmoilNet) -> turmoil::Result {
    let incarnation = stats.incarnations.fetch_add(1, Ordering::Relaxed) + 1;
    let state = Arc::new(Mutex::new(TrackerState::new(
        seed ^ incarnation.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        stats,
    )));
    let listener = turmoil::net::TcpListener::bind(net.any(TRACKER_HTTP_PORT)).await?;
    let http = state.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, from)) = listener.accept().await {
            let state = http.clone();
            tokio::spawn(async move {
                if let Ok(Some(req)) = read_request(&mut sock).await {
                    let (status, body) = lock(&state).handle_http(turmoil_now(), from, &req);
                    let _ = respond(&mut sock, status, "", &body, None, |_| {}).await;
                }
            });
        }
    });
    let socket = net.bind_udp(net.any(TRACKER_PORT)).await?;
    let mut buf = vec![0u8; 2048];
    loop {
        let (n, from) = socket.recv_from(&mut buf).await?;
        let reply = lock(&state).handle(turmoil_now(), from, &buf[..n]);
        if let Some(reply) = reply {
            socket.send_to(&reply, from).await?;
        }
    }
}

fn turmoil_now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

fn lock(state: &Mutex<TrackerState>) -> std::sync::MutexGuard<'_, TrackerState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const HASH: [u8; 20] = [7; 20];

    fn connect(t: &mut TrackerState, from: SocketAddr) -> u64 {
        let mut p = PROTOCOL_ID.to_be_bytes().to_vec();
        p.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
        p.extend_from_slice(&1u32.to_be_bytes());
        let r = t.handle(Duration::ZERO, from, &p).expect("connect reply");
        assert_eq!(
            &r[..8],
            &[0, 0, 0, 0, 0, 0, 0, 1][..],
            "action and transaction id"
        );
        u64::from_be_bytes(r[8..16].try_into().unwrap())
    }

    /// An announce from `from`; the peers of the reply.
    fn announce(
        t: &mut TrackerState,
        now: Duration,
        from: SocketAddr,
        event: u32,
        num_want: i32,
    ) -> Vec<SocketAddr> {
        let cid = connect(t, from);
        let mut p = cid.to_be_bytes().to_vec();
        p.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
        p.extend_from_slice(&9u32.to_be_bytes());
        p.extend_from_slice(&HASH);
        p.resize(80, 0);
        p.extend_from_slice(&event.to_be_bytes());
        p.resize(92, 0);
        p.extend_from_slice(&num_want.to_be_bytes());
        p.extend_from_slice(&6881u16.to_be_bytes());
        let r = t.handle(now, from, &p).expect("announce reply");
        assert_eq!(&r[4..8], &9u32.to_be_bytes(), "the transaction id echoed");
        r[20..]
            .chunks_exact(6)
            .map(|c| {
                let ip = Ipv4Addr::new(c[0], c[1], c[2], c[3]);
                SocketAddr::from((ip, u16::from_be_bytes([c[4], c[5]])))
            })
            .collect()
    }

    fn addr(i: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, i], 40_000 + u16::from(i)))
    }

    /// numwant caps the reply (a seeded sample), and peers not heard from for [`PEER_TTL`]
    /// are forgotten.
    #[test]
    fn num_want_and_expiry() {
        let mut t = TrackerState::new(1, Arc::default());
        for i in 1..=5 {
            announce(&mut t, Duration::ZERO, addr(i), 2, -1);
        }
        let got = announce(&mut t, Duration::ZERO, addr(6), 0, 3);
        assert_eq!(got.len(), 3);
        assert!(
            got.iter()
                .all(|a| a.port() == 6881 && a.ip() != addr(6).ip())
        );
        assert_eq!(t.peers(&HASH).len(), 6);
        let later = PEER_TTL + Duration::from_secs(1);
        let got = announce(&mut t, later, addr(7), 2, -1);
        assert!(got.is_empty(), "everyone else expired: {got:?}");
        assert_eq!(t.peers(&HASH).len(), 1);
    }

    fn http(t: &mut TrackerState, from: SocketAddr, query: &str) -> Vec<u8> {
        let req = Request {
            path: "/announce".to_owned(),
            query: query.to_owned(),
            range: None,
        };
        let (status, body) = t.handle_http(Duration::ZERO, from, &req);
        assert_eq!(status, "200 OK");
        body
    }

    /// The HTTP face shares the UDP face's swarms: a UDP announcer is handed to an HTTP one
    /// (compact, with the port it announced), and scrape counts both seeds (the announce
    /// helper sends `left` 0) and the one completion.
    #[test]
    fn http_announce_and_scrape() {
        let mut t = TrackerState::new(2, Arc::default());
        announce(&mut t, Duration::ZERO, addr(1), 2, -1);
        let hash = "%07".repeat(20);
        let body = http(
            &mut t,
            addr(2),
            &format!("info_hash={hash}&port=7000&left=0&event=completed&compact=1"),
        );
        let mut want = b"d8:completei2e10:incompletei0e8:intervali30e5:peers6:".to_vec();
        want.extend_from_slice(&[10, 0, 0, 1, 0x1a, 0xe1, b'e']);
        assert_eq!(body, want);
        assert!(
            t.peers(&HASH)
                .contains(&SocketAddr::from(([10, 0, 0, 2], 7000)))
        );
        let req = Request {
            path: "/scrape".to_owned(),
            query: format!("info_hash={hash}&info_hash=%01"),
            range: None,
        };
        let (_, body) = t.handle_http(Duration::ZERO, addr(3), &req);
        let mut want = b"d5:filesd20:".to_vec();
        want.extend_from_slice(&HASH);
        want.extend_from_slice(b"d8:completei2e10:downloadedi1e10:incompletei0eeee");
        assert_eq!(body, want);
        let body = http(&mut t, addr(2), "port=1");
        assert!(body.starts_with(b"d14:failure reason"), "{body:?}");
    }
}

//! The peer address book of one torrent: candidate addresses to dial, in BEP 40 order.
//!
//! Addresses arrive from trackers, the DHT, PEX, incoming connections and the user
//! ([`PeerSource`]). Each is kept once (keyed by address; rain keys its queue by priority only,
//! so colliding priorities replace each other — we do not), with its source, its BEP 40
//! canonical priority relative to our own address ([`bep40_priority`]) and an age.
//!
//! - [`AddressBook::pop`] hands out the ready address with the **highest** priority.
//! - Capacity is `max_peer_addresses` (rain: 2000); adding beyond it evicts the **oldest** entry
//!   (re-adding refreshes the age).
//! - A failed dial ([`AddressBook::dial_failed`]) puts the address in exponential backoff
//!   (`dial_backoff_initial` doubling to `dial_backoff_max`); after `max_dial_failures`
//!   failures it is dropped.
//! - [`AddressBook::defer`] parks an address without counting a failure (its IP is
//!   connected already, or its connection ended and it may be dialled again later).
//! - Refused on entry: port 0; unspecified, multicast and broadcast IPs; our own address
//!   (our external IP or loopback, with our port; another port on our IP is another client
//!   behind the same address); banned IPs ([`AddressBook::ban`], per torrent, at most
//!   `max_banned`); IPs in the blocklist passed to [`AddressBook::add`].
//!
//! Time only enters as `now`; [`AddressBook::poll_timeout`] is the next backoff expiry.
//! Every operation is O(log n).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::blocklist::Blocklist;
use crate::time::Instant;

/// Where an address came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeerSource {
    /// A tracker announce.
    Tracker,
    /// A DHT `get_peers` lookup.
    Dht,
    /// Peer exchange (BEP 11).
    Pex,
    /// The peer connected to us.
    Incoming,
    /// Added by the user (RPC `AddPeer`, magnet `x.pe`).
    Manual,
}

impl PeerSource {
    /// Every source, in rain's RPC order.
    pub const ALL: [PeerSource; 5] = [
        PeerSource::Tracker,
        PeerSource::Dht,
        PeerSource::Pex,
        PeerSource::Incoming,
        PeerSource::Manual,
    ];

    /// rain's RPC name: `TRACKER`, `DHT`, `PEX`, `INCOMING`, `MANUAL`.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerSource::Tracker => "TRACKER",
            PeerSource::Dht => "DHT",
            PeerSource::Pex => "PEX",
            PeerSource::Incoming => "INCOMING",
            PeerSource::Manual => "MANUAL",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// BEP 40 canonical priority of the connection between `a` and `b` (symmetric).
///
/// CRC32-C over the two endpoints in ascending byte order: the two ports (big-endian) if the
/// IPs are equal; otherwise the two IPs masked with `FF.FF.55.55` (different /16),
/// `FF.FF.FF.55` (same /16, different /24) or unmasked (same /24). IPv6 uses BEP 40's masks
/// (`/48`, `/56`, `/64` steps); a mixed pair compares the IPv4 address in its mapped form.
pub fn bep40_priority(a: SocketAddr, b: SocketAddr) -> u32 {
    let (ia, ib) = (canonical(a.ip()), canonical(b.ip()));
    if ia == ib {
        let (pa, pb) = (a.port().to_be_bytes(), b.port().to_be_bytes());
        return crc_sorted(&pa, &pb);
    }
    if let (IpAddr::V4(x), IpAddr::V4(y)) = (ia, ib) {
        let (x, y) = (x.octets(), y.octets());
        let mask: [u8; 4] = if x[..2] != y[..2] {
            [0xff, 0xff, 0x55, 0x55]
        } else if x[..3] != y[..3] {
            [0xff, 0xff, 0xff, 0x55]
        } else {
            [0xff; 4]
        };
        return crc_sorted(&and(x, mask), &and(y, mask));
    }
    let (x, y) = (v6(ia).octets(), v6(ib).octets());
    let keep = if x[..6] != y[..6] {
        6
    } else if x[..7] != y[..7] {
        7
    } else if x[..8] != y[..8] {
        8
    } else {
        16
    };
    let mut mask = [0x55u8; 16];
    mask[..keep].fill(0xff);
    crc_sorted(&and(x, mask), &and(y, mask))
}

/// True for an address a single peer can listen on.
fn is_unicast(ip: IpAddr) -> bool {
    !ip.is_unspecified() && !ip.is_multicast() && !matches!(ip, IpAddr::V4(v4) if v4.is_broadcast())
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

fn and<const N: usize>(mut x: [u8; N], m: [u8; N]) -> [u8; N] {
    for (b, m) in x.iter_mut().zip(m) {
        *b &= m;
    }
    x
}

fn crc_sorted(a: &[u8], b: &[u8]) -> u32 {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    crc32c::crc32c_append(crc32c::crc32c(lo), hi)
}

/// Limits of the address book (rain's config keys in parentheses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressBookConfig {
    /// Most addresses kept (`max-peer-addresses`, 2000).
    pub max_peer_addresses: usize,
    /// Most banned IPs remembered; further bans are refused.
    pub max_banned: usize,
    /// Backoff after the first failed dial.
    pub dial_backoff_initial: Duration,
    /// Longest backoff.
    pub dial_backoff_max: Duration,
    /// Failed dials after which an address is dropped.
    pub max_dial_failures: u32,
    /// How long an address waits before it is dialled again after its connection ended, or
    /// while another connection to its IP is open (libtorrent's `min_reconnect_time`).
    pub reconnect_delay: Duration,
}

impl Default for AddressBookConfig {
    fn default() -> Self {
        AddressBookConfig {
            max_peer_addresses: 2000,
            max_banned: 10_000,
            dial_backoff_initial: Duration::from_secs(15),
            dial_backoff_max: Duration::from_secs(15 * 60),
            max_dial_failures: 6,
            reconnect_delay: Duration::from_secs(60),
        }
    }
}

/// What [`AddressBook::add`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddOutcome {
    /// A new address.
    Added,
    /// Already known: its age and source were refreshed.
    Refreshed,
    /// Refused.
    Rejected(RejectReason),
}

/// Why an address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// Port 0, or an IP no peer can have: unspecified, multicast or broadcast (a PEX or
    /// tracker list must not turn us into a flood source toward a group address).
    Invalid,
    /// Our own address.
    Ours,
    /// Banned for this torrent.
    Banned,
    /// In the blocklist.
    Blocked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// Waiting in the dial queue.
    Ready,
    /// Handed out by `pop`, result not reported yet.
    Dialling,
    /// Failed; ready again at this instant.
    Backoff(Instant),
}

#[derive(Debug, Clone)]
struct Entry {
    source: PeerSource,
    priority: u32,
    seq: u64,
    failures: u32,
    status: Status,
}

/// The per-torrent address book. See the module documentation.
#[derive(Debug, Clone)]
pub struct AddressBook {
    config: AddressBookConfig,
    ours: SocketAddr,
    entries: BTreeMap<SocketAddr, Entry>,
    /// Ready entries by `(priority, address)`; `pop` takes the last.
    ready: BTreeSet<(u32, SocketAddr)>,
    /// Every entry by age.
    by_age: BTreeSet<(u64, SocketAddr)>,
    /// Entries in backoff by expiry.
    backoff: BTreeSet<(Instant, SocketAddr)>,
    banned: BTreeSet<IpAddr>,
    by_source: [usize; 5],
    seq: u64,
}

impl AddressBook {
    /// An empty book. `ours` is our external IP with the torrent's port, or `0.0.0.0:port`
    /// while the external IP is unknown.
    pub fn new(config: AddressBookConfig, ours: SocketAddr) -> Self {
        AddressBook {
            config,
            ours,
            entries: BTreeMap::new(),
            ready: BTreeSet::new(),
            by_age: BTreeSet::new(),
            backoff: BTreeSet::new(),
            banned: BTreeSet::new(),
            by_source: [0; 5],
            seq: 0,
        }
    }

    /// Our address changed (e.g. a peer told us our external IP): every priority is recomputed
    /// and addresses that are now ours are dropped. O(n log n).
    pub fn set_our_address(&mut self, ours: SocketAddr) {
        self.ours = ours;
        let addrs: Vec<SocketAddr> = self.entries.keys().copied().collect();
        for addr in addrs {
            if self.is_ours(addr) {
                self.remove(addr);
                continue;
            }
            let priority = bep40_priority(addr, ours);
            if let Some(e) = self.entries.get_mut(&addr) {
                if e.status == Status::Ready {
                    self.ready.remove(&(e.priority, addr));
                    self.ready.insert((priority, addr));
                }
                e.priority = priority;
            }
        }
    }

    fn is_ours(&self, addr: SocketAddr) -> bool {
        let ip = canonical(addr.ip());
        addr.port() == self.ours.port() && (ip == canonical(self.ours.ip()) || ip.is_loopback())
    }

    /// Offers an address. `blocklist`: the session blocklist when it applies to outgoing
    /// connections. Never fails: refusals are reported in the outcome.
    pub fn add(
        &mut self,
        addr: SocketAddr,
        source: PeerSource,
        blocklist: Option<&Blocklist>,
    ) -> AddOutcome {
        let ip = canonical(addr.ip());
        if addr.port() == 0 || !is_unicast(ip) {
            return AddOutcome::Rejected(RejectReason::Invalid);
        }
        if self.is_ours(addr) {
            return AddOutcome::Rejected(RejectReason::Ours);
        }
        if self.banned.contains(&ip) {
            return AddOutcome::Rejected(RejectReason::Banned);
        }
        if blocklist.is_some_and(|b| b.contains(ip)) {
            return AddOutcome::Rejected(RejectReason::Blocked);
        }
        self.seq += 1;
        let seq = self.seq;
        if let Some(e) = self.entries.get_mut(&addr) {
            self.by_age.remove(&(e.seq, addr));
            self.by_age.insert((seq, addr));
            e.seq = seq;
            self.by_source[e.source.index()] -= 1;
            self.by_source[source.index()] += 1;
            e.source = source;
            return AddOutcome::Refreshed;
        }
        if self.config.max_peer_addresses == 0 {
            return AddOutcome::Added;
        }
        while self.entries.len() >= self.config.max_peer_addresses {
            let Some(&(_, oldest)) = self.by_age.first() else {
                break;
            };
            self.remove(oldest);
        }
        let priority = bep40_priority(addr, self.ours);
        self.entries.insert(
            addr,
            Entry {
                source,
                priority,
                seq,
                failures: 0,
                status: Status::Ready,
            },
        );
        self.ready.insert((priority, addr));
        self.by_age.insert((seq, addr));
        self.by_source[source.index()] += 1;
        AddOutcome::Added
    }

    /// The ready address with the highest BEP 40 priority, to dial now. It stays known (so
    /// re-adds are deduplicated) until [`AddressBook::connected`] or
    /// [`AddressBook::dial_failed`] reports the result.
    pub fn pop(&mut self, now: Instant) -> Option<(SocketAddr, PeerSource)> {
        self.expire_backoff(now);
        let (_, addr) = self.ready.pop_last()?;
        let e = self.entries.get_mut(&addr)?;
        e.status = Status::Dialling;
        Some((addr, e.source))
    }

    fn expire_backoff(&mut self, now: Instant) {
        while let Some(&(at, addr)) = self.backoff.first() {
            if at > now {
                break;
            }
            self.backoff.pop_first();
            if let Some(e) = self.entries.get_mut(&addr) {
                e.status = Status::Ready;
                self.ready.insert((e.priority, addr));
            }
        }
    }

    /// The dial to `addr` succeeded: the address leaves the book (connected peers are tracked
    /// by the torrent; it may be re-added when the connection ends).
    pub fn connected(&mut self, addr: SocketAddr) {
        self.remove(addr);
    }

    /// The dial to `addr` failed: exponential backoff, or dropped after
    /// `max_dial_failures` failures.
    pub fn dial_failed(&mut self, now: Instant, addr: SocketAddr) {
        let Some(e) = self.entries.get_mut(&addr) else {
            return;
        };
        e.failures += 1;
        if e.failures >= self.config.max_dial_failures {
            self.remove(addr);
            return;
        }
        let factor = 1u32 << (e.failures - 1).min(20);
        let delay = self
            .config
            .dial_backoff_initial
            .saturating_mul(factor)
            .min(self.config.dial_backoff_max);
        self.defer(now, addr, delay);
    }

    /// Parks `addr` until `now + delay` without counting a failure; no-op if unknown.
    pub fn defer(&mut self, now: Instant, addr: SocketAddr, delay: Duration) {
        let Some(e) = self.entries.get_mut(&addr) else {
            return;
        };
        match e.status {
            Status::Ready => {
                self.ready.remove(&(e.priority, addr));
            }
            Status::Backoff(at) => {
                self.backoff.remove(&(at, addr));
            }
            Status::Dialling => {}
        }
        let at = now + delay;
        e.status = Status::Backoff(at);
        self.backoff.insert((at, addr));
    }

    /// Bans `ip` for this torrent: its addresses are dropped and refused from now on. Returns
    /// false if `max_banned` IPs are already banned (the ban is not recorded).
    pub fn ban(&mut self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        if !self.banned.contains(&ip) && self.banned.len() >= self.config.max_banned {
            return false;
        }
        self.banned.insert(ip);
        let gone: Vec<SocketAddr> = self
            .entries
            .keys()
            .filter(|a| canonical(a.ip()) == ip)
            .copied()
            .collect();
        for a in gone {
            self.remove(a);
        }
        true
    }

    /// True if `ip` is banned for this torrent (also checked on incoming connections).
    pub fn is_banned(&self, ip: IpAddr) -> bool {
        self.banned.contains(&canonical(ip))
    }

    /// Forgets `addr`.
    pub fn remove(&mut self, addr: SocketAddr) {
        let Some(e) = self.entries.remove(&addr) else {
            return;
        };
        self.by_age.remove(&(e.seq, addr));
        match e.status {
            Status::Ready => {
                self.ready.remove(&(e.priority, addr));
            }
            Status::Backoff(at) => {
                self.backoff.remove(&(at, addr));
            }
            Status::Dialling => {}
        }
        self.by_source[e.source.index()] -= 1;
    }

    /// Forgets every address (on stop and on completion); bans are kept.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.ready.clear();
        self.by_age.clear();
        self.backoff.clear();
        self.by_source = [0; 5];
    }

    /// When the next address leaves backoff, or `None` if none is waiting.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.backoff.first().map(|&(at, _)| at)
    }

    /// Moves addresses whose backoff expired back to the dial queue.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire_backoff(now);
    }

    /// Addresses known (ready, dialling or in backoff).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if no address is known.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Addresses ready to dial now (as of the last `pop`/`handle_timeout`).
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Known addresses from `source` (rain's "addresses by source" stats).
    pub fn count_by_source(&self, source: PeerSource) -> usize {
        self.by_source[source.index()]
    }

    /// True if `addr` is known.
    pub fn contains(&self, addr: SocketAddr) -> bool {
        self.entries.contains_key(&addr)
    }
}

/// The address used for BEP 40 while our external IP is unknown.
pub fn unknown_ours(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn bep40_published_vectors() {
        assert_eq!(
            bep40_priority(sa("123.213.32.10:0"), sa("98.76.54.32:0")),
            0xec2d_7224
        );
        assert_eq!(
            bep40_priority(sa("98.76.54.32:0"), sa("123.213.32.10:0")),
            0xec2d_7224
        );
        assert_eq!(
            bep40_priority(sa("123.213.32.10:0"), sa("123.213.32.234:0")),
            0x9956_8189
        );
        assert_eq!(
            bep40_priority(sa("206.248.98.111:0"), sa("142.147.89.224:0")),
            0x2b41_d456
        );
    }

    #[test]
    fn bep40_same_ip_uses_ports_and_is_symmetric() {
        let a = sa("1.2.3.4:6881");
        let b = sa("1.2.3.4:51413");
        assert_eq!(bep40_priority(a, b), bep40_priority(b, a));
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&6881u16.to_be_bytes());
        bytes.extend_from_slice(&51413u16.to_be_bytes());
        assert_eq!(bep40_priority(a, b), crc32c::crc32c(&bytes));
        let v6a = sa("[2001:db8::1]:1");
        let v6b = sa("[2001:db9::1]:1");
        assert_eq!(bep40_priority(v6a, v6b), bep40_priority(v6b, v6a));
        assert_ne!(bep40_priority(v6a, v6b), 0);
    }

    fn book(max: usize) -> AddressBook {
        let config = AddressBookConfig {
            max_peer_addresses: max,
            ..AddressBookConfig::default()
        };
        AddressBook::new(config, sa("98.76.54.32:6881"))
    }

    #[test]
    fn pops_highest_priority_first() {
        let mut b = book(100);
        let addrs: Vec<SocketAddr> = (1..=50)
            .map(|i| {
                sa(&format!(
                    "10.{i}.{}.{}:{}",
                    i * 3 % 256,
                    i * 7 % 256,
                    1000 + i
                ))
            })
            .collect();
        for &a in &addrs {
            assert_eq!(b.add(a, PeerSource::Tracker, None), AddOutcome::Added);
        }
        let mut last = u32::MAX;
        let mut n = 0;
        while let Some((a, src)) = b.pop(Instant::ZERO) {
            let p = bep40_priority(a, sa("98.76.54.32:6881"));
            assert!(p <= last);
            assert_eq!(src, PeerSource::Tracker);
            last = p;
            n += 1;
        }
        assert_eq!(n, 50);
    }

    #[test]
    fn dedupes_by_address_and_evicts_oldest() {
        let mut b = book(3);
        for a in ["1.1.1.1:1", "2.2.2.2:2", "3.3.3.3:3"] {
            b.add(sa(a), PeerSource::Dht, None);
        }
        assert_eq!(
            b.add(sa("1.1.1.1:1"), PeerSource::Pex, None),
            AddOutcome::Refreshed
        );
        assert_eq!(b.count_by_source(PeerSource::Pex), 1);
        assert_eq!(b.count_by_source(PeerSource::Dht), 2);
        b.add(sa("4.4.4.4:4"), PeerSource::Manual, None);
        assert_eq!(b.len(), 3);
        assert!(!b.contains(sa("2.2.2.2:2")), "oldest evicted");
        assert!(b.contains(sa("1.1.1.1:1")), "refreshed survives");
    }

    #[test]
    fn refuses_ours_banned_blocked_and_invalid() {
        let mut b = book(10);
        let bl = Blocklist::parse(
            b"5.5.5.0/24\n",
            crate::blocklist::BlocklistLimits::default(),
        )
        .unwrap();
        let r = |b: &mut AddressBook, a: &str| b.add(sa(a), PeerSource::Pex, Some(&bl));
        for bad in [
            "1.1.1.1:0",
            "0.0.0.0:1",
            "224.0.0.1:6881",
            "239.255.255.250:1900",
            "255.255.255.255:6881",
            "[ff02::1]:6881",
            "[::]:6881",
        ] {
            assert_eq!(
                r(&mut b, bad),
                AddOutcome::Rejected(RejectReason::Invalid),
                "{bad}"
            );
        }
        assert_eq!(
            r(&mut b, "98.76.54.32:6881"),
            AddOutcome::Rejected(RejectReason::Ours)
        );
        // Another client behind our IP.
        assert_eq!(r(&mut b, "98.76.54.32:9999"), AddOutcome::Added);
        assert_eq!(
            r(&mut b, "127.0.0.1:6881"),
            AddOutcome::Rejected(RejectReason::Ours)
        );
        assert_eq!(r(&mut b, "127.0.0.1:6882"), AddOutcome::Added);
        assert_eq!(
            r(&mut b, "5.5.5.9:1"),
            AddOutcome::Rejected(RejectReason::Blocked)
        );
        assert_eq!(r(&mut b, "6.6.6.6:1"), AddOutcome::Added);
        assert!(b.ban("6.6.6.6".parse().unwrap()));
        assert!(!b.contains(sa("6.6.6.6:1")));
        assert_eq!(
            r(&mut b, "6.6.6.6:2"),
            AddOutcome::Rejected(RejectReason::Banned)
        );
        assert!(b.is_banned("::ffff:6.6.6.6".parse().unwrap()));
    }

    #[test]
    fn failed_dials_back_off_then_drop() {
        let config = AddressBookConfig {
            max_dial_failures: 3,
            dial_backoff_initial: Duration::from_secs(10),
            ..AddressBookConfig::default()
        };
        let mut b = AddressBook::new(config, unknown_ours(6881));
        let a = sa("1.2.3.4:5");
        let t0 = Instant::ZERO;
        b.add(a, PeerSource::Tracker, None);
        assert_eq!(b.pop(t0), Some((a, PeerSource::Tracker)));
        assert_eq!(b.pop(t0), None);
        assert_eq!(b.add(a, PeerSource::Tracker, None), AddOutcome::Refreshed);
        b.dial_failed(t0, a);
        assert_eq!(b.poll_timeout(), Some(t0 + Duration::from_secs(10)));
        assert_eq!(b.pop(t0 + Duration::from_secs(9)), None);
        assert_eq!(b.pop(t0 + Duration::from_secs(10)).map(|x| x.0), Some(a));
        b.dial_failed(t0, a);
        assert_eq!(b.poll_timeout(), Some(t0 + Duration::from_secs(20)));
        b.handle_timeout(t0 + Duration::from_secs(20));
        assert_eq!(b.ready_len(), 1);
        b.dial_failed(t0, a);
        assert!(b.is_empty(), "dropped after max failures");
        assert_eq!(b.poll_timeout(), None);
    }

    #[test]
    fn deferred_addresses_return_without_counting_failures() {
        let config = AddressBookConfig {
            max_dial_failures: 2,
            ..AddressBookConfig::default()
        };
        let mut b = AddressBook::new(config, unknown_ours(6881));
        let a = sa("1.2.3.4:5");
        let mut now = Instant::ZERO;
        b.add(a, PeerSource::Manual, None);
        for _ in 0..5 {
            assert_eq!(b.pop(now), Some((a, PeerSource::Manual)));
            b.defer(now, a, Duration::from_secs(7));
            assert_eq!(b.poll_timeout(), Some(now + Duration::from_secs(7)));
            assert_eq!(b.pop(now + Duration::from_secs(6)), None);
            now = now + Duration::from_secs(7);
        }
        assert_eq!(
            b.len(),
            1,
            "still known after more defers than max_dial_failures"
        );
        b.defer(now, sa("9.9.9.9:1"), Duration::from_secs(1));
        assert_eq!(b.len(), 1, "unknown address not added");
    }

    #[test]
    fn connected_and_clear_forget() {
        let mut b = book(10);
        let a = sa("1.2.3.4:5");
        b.add(a, PeerSource::Incoming, None);
        b.connected(a);
        assert!(b.is_empty());
        assert_eq!(b.count_by_source(PeerSource::Incoming), 0);
        b.add(a, PeerSource::Incoming, None);
        b.clear();
        assert!(b.is_empty() && b.ready_len() == 0);
        assert_eq!(PeerSource::Incoming.as_str(), "INCOMING");
        assert_eq!(
            PeerSource::ALL.map(PeerSource::as_str),
            ["TRACKER", "DHT", "PEX", "INCOMING", "MANUAL"]
        );
    }

    #[test]
    fn our_address_change_reprioritises() {
        let mut b = AddressBook::new(AddressBookConfig::default(), unknown_ours(6881));
        let a = sa("123.213.32.10:7000");
        b.add(a, PeerSource::Dht, None);
        b.add(sa("98.76.54.32:1"), PeerSource::Dht, None);
        b.add(sa("98.76.54.32:6881"), PeerSource::Dht, None);
        b.set_our_address(sa("98.76.54.32:6881"));
        assert_eq!(
            b.len(),
            2,
            "our own address is dropped, our IP's other port kept"
        );
        assert!(!b.contains(sa("98.76.54.32:6881")));
        let mut popped = [b.pop(Instant::ZERO), b.pop(Instant::ZERO)].map(|x| x.map(|x| x.0));
        popped.sort();
        assert_eq!(popped, [Some(sa("98.76.54.32:1")), Some(a)]);
    }
}

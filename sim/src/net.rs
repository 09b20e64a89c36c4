//! [`TurmoilNet`]: io-runtime's [`Network`] over turmoil's simulated TCP, so that a simulated
//! host runs the real session, torrent and peer tasks unchanged (DESIGN.md §3, §4).
//!
//! Host names are turmoil host names (`"seed0:6881"` resolves through turmoil's DNS). It must
//! only be used from inside a turmoil host or client: every call reaches the simulated world
//! of the current thread. UDP ([`TurmoilUdp`]) carries the DHT and the UDP trackers.
//!
//! Two network faults live here, below the runtime's sockets: [`UdpChaos`] (datagrams lost,
//! sent twice, or held back so that later ones overtake them, from a seeded RNG per host) and
//! [`Nat`] (hosts that nobody can dial: a connection to them is refused, as by a NAT or a
//! firewall without a port forward, while they dial out freely).

use std::collections::{BTreeSet, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rain_proto::rng::{Rng, Seed};
use rain_runtime::net::{Datagram, Listener, Network};

use crate::throttle::{SimStream, Uplink};

/// The simulated network of the current turmoil host.
///
/// turmoil's DNS gives a fresh address to any name it is asked about, so a resolver that
/// must fail on unknown names is given the list of hosts that exist ([`TurmoilNet::with_hosts`]).
#[derive(Debug, Clone, Default)]
pub struct TurmoilNet {
    hosts: Option<Arc<BTreeSet<String>>>,
    /// The host's upload bandwidth, if limited.
    uplink: Option<Arc<Uplink>>,
    /// What happens to the datagrams the host sends, if anything.
    chaos: Option<Arc<Chaos>>,
    /// The hosts nobody can dial, shared by every host.
    nat: Option<Arc<Nat>>,
    /// The simulated network is IPv6 (turmoil's `IpVersion::V6`): wildcard binds use `::`.
    ipv6: bool,
}

impl TurmoilNet {
    /// A network that resolves every name turmoil is asked about.
    pub fn new() -> Self {
        TurmoilNet::default()
    }

    /// A network that resolves only the named hosts; other names are "not found".
    pub fn with_hosts(hosts: impl IntoIterator<Item = String>) -> Self {
        TurmoilNet {
            hosts: Some(Arc::new(hosts.into_iter().collect())),
            ..TurmoilNet::default()
        }
    }

    /// The same network for one host whose TCP writes share an uplink of `bytes_per_sec`.
    pub fn with_uplink(&self, bytes_per_sec: u64) -> Self {
        TurmoilNet {
            uplink: Some(Uplink::new(bytes_per_sec)),
            ..self.clone()
        }
    }

    /// The same network for one host whose UDP sockets send through `chaos`, drawing from an
    /// RNG of its own seeded with `seed` (so a run replays), and counting into `counters`
    /// (which several hosts may share).
    pub fn with_udp_chaos(&self, chaos: UdpChaos, seed: u64, counters: Arc<UdpCounters>) -> Self {
        TurmoilNet {
            chaos: Some(Arc::new(Chaos {
                spec: chaos,
                rng: Mutex::new(Rng::new(Seed::from_u64(seed))),
                recent: Mutex::new(VecDeque::new()),
                counters,
            })),
            ..self.clone()
        }
    }

    /// The same network where nobody can dial the hosts of `nat` (every host must share it).
    pub fn with_nat(&self, nat: Arc<Nat>) -> Self {
        TurmoilNet {
            nat: Some(nat),
            ..self.clone()
        }
    }

    /// The same network on IPv6 (the simulation must be built with turmoil's
    /// `IpVersion::V6`): [`TurmoilNet::any`] gives `::`.
    pub fn ipv6(&self, on: bool) -> Self {
        TurmoilNet {
            ipv6: on,
            ..self.clone()
        }
    }

    /// The wildcard address of the network's family on `port` (`0.0.0.0` or `::`): turmoil
    /// refuses binds of the other family.
    pub fn any(&self, port: u16) -> SocketAddr {
        let ip: IpAddr = if self.ipv6 {
            Ipv6Addr::UNSPECIFIED.into()
        } else {
            Ipv4Addr::UNSPECIFIED.into()
        };
        SocketAddr::new(ip, port)
    }

    /// Resolves `name:port` (or `ip:port`) through turmoil's DNS.
    pub fn resolve_now(&self, host: &str) -> io::Result<Vec<SocketAddr>> {
        if let Ok(addr) = host.parse::<SocketAddr>() {
            return Ok(vec![addr]);
        }
        let invalid =
            || io::Error::new(io::ErrorKind::InvalidInput, format!("bad address {host:?}"));
        let (name, port) = host.rsplit_once(':').ok_or_else(invalid)?;
        let port: u16 = port.parse().map_err(|_| invalid())?;
        if self.hosts.as_ref().is_some_and(|h| !h.contains(name)) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("unknown host {name:?}"),
            ));
        }
        Ok(vec![SocketAddr::new(turmoil::lookup(name), port)])
    }
}

/// Which hosts cannot be dialled (their inbound TCP is refused, as behind a NAT without a
/// port forward), and how often someone tried. UDP is not filtered: the tracker's and the
/// DHT's replies come back as through a NAT's mapping of the host's own requests.
#[derive(Debug, Default)]
pub struct Nat {
    /// The NATed hosts' turmoil names.
    hosts: BTreeSet<String>,
    /// Connections to a NATed host that were refused.
    refused: AtomicU64,
}

impl Nat {
    /// A NAT in front of each of `hosts` (turmoil host names).
    pub fn new(hosts: impl IntoIterator<Item = String>) -> Self {
        Nat {
            hosts: hosts.into_iter().collect(),
            refused: AtomicU64::new(0),
        }
    }

    /// Connections to a NATed host refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Whether `ip` is a NATed host's (in the current simulation).
    fn hides(&self, ip: IpAddr) -> bool {
        !self.hosts.is_empty()
            && turmoil::reverse_lookup(ip).is_some_and(|name| self.hosts.contains(&name))
    }
}

/// Faults on the UDP datagrams a host sends, each drawn independently per datagram (in
/// percent): it is lost; else it is sent twice; and each copy may be held back for up to
/// `delay` (uniformly) so that datagrams sent after it overtake it. turmoil's own message
/// loss would drop TCP segments as well, which its streams never retransmit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpChaos {
    /// Percent of datagrams dropped.
    pub loss: u32,
    /// Percent of the datagrams not dropped that are sent twice.
    pub duplicate: u32,
    /// Percent of copies held back.
    pub reorder: u32,
    /// The longest hold.
    pub delay: Duration,
}

/// What [`UdpChaos`] did to the datagrams of the hosts sharing these counters.
#[derive(Debug, Default)]
pub struct UdpCounters {
    sent: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
    delayed: AtomicU64,
    resent: AtomicU64,
}

impl UdpCounters {
    /// The counts so far.
    pub fn counts(&self) -> UdpCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        UdpCounts {
            sent: get(&self.sent),
            dropped: get(&self.dropped),
            duplicated: get(&self.duplicated),
            delayed: get(&self.delayed),
            resent: get(&self.resent),
        }
    }
}

/// A snapshot of [`UdpCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UdpCounts {
    /// Datagrams the software sent.
    pub sent: u64,
    /// Of those, dropped.
    pub dropped: u64,
    /// Of those, sent twice.
    pub duplicated: u64,
    /// Copies held back (and overtaken by later datagrams).
    pub delayed: u64,
    /// Of `sent`, datagrams the software sent again: to the same address as one it sent in
    /// the last 10 s, equal to it but for a transaction id (at most 4 bytes differ).
    pub resent: u64,
}

/// One host's [`UdpChaos`] with its RNG.
#[derive(Debug)]
struct Chaos {
    spec: UdpChaos,
    rng: Mutex<Rng>,
    /// The host's latest datagrams (when, to whom, what), to spot resends.
    recent: Mutex<VecDeque<(tokio::time::Instant, SocketAddr, Vec<u8>)>>,
    counters: Arc<UdpCounters>,
}

/// Datagrams remembered per host to spot resends.
const RECENT_DATAGRAMS: usize = 32;
/// How far back a resend is looked for.
const RESEND_WINDOW: Duration = Duration::from_secs(10);
/// A datagram of the same length as an earlier one to the same address that differs from it
/// in at most this many bytes is a resend of it (under a fresh transaction id: 4 bytes in
/// BEP 15, 2 in rain's KRPC).
const RESEND_MAX_DIFF: usize = 4;

impl Chaos {
    /// Counts `buf` (to `to`) as a resend if it is one, and remembers it.
    fn note_resend(&self, buf: &[u8], to: SocketAddr) {
        let now = tokio::time::Instant::now();
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        while recent
            .front()
            .is_some_and(|(at, ..)| now.duration_since(*at) > RESEND_WINDOW)
        {
            recent.pop_front();
        }
        let resend = recent.iter().any(|(_, dst, q)| {
            *dst == to
                && q.len() == buf.len()
                && q.iter().zip(buf).filter(|(a, b)| a != b).count() <= RESEND_MAX_DIFF
        });
        if resend {
            self.counters.resent.fetch_add(1, Ordering::Relaxed);
        }
        if recent.len() >= RECENT_DATAGRAMS {
            recent.pop_front();
        }
        recent.push_back((now, to, buf.to_vec()));
    }

    /// The copies of `buf` (to `to`) to send, each with how long it is held back (zero: sent
    /// at once).
    fn plan(&self, buf: &[u8], to: SocketAddr) -> Vec<Duration> {
        self.note_resend(buf, to);
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        let c = &self.counters;
        c.sent.fetch_add(1, Ordering::Relaxed);
        let hit = |rng: &mut Rng, percent: u32| rng.below(100) < u64::from(percent);
        if hit(&mut rng, self.spec.loss) {
            c.dropped.fetch_add(1, Ordering::Relaxed);
            return Vec::new();
        }
        let copies = if hit(&mut rng, self.spec.duplicate) {
            c.duplicated.fetch_add(1, Ordering::Relaxed);
            2
        } else {
            1
        };
        let max = u64::try_from(self.spec.delay.as_micros()).unwrap_or(u64::MAX);
        (0..copies)
            .map(|_| {
                if hit(&mut rng, self.spec.reorder) && max > 0 {
                    c.delayed.fetch_add(1, Ordering::Relaxed);
                    Duration::from_micros(1 + rng.below(max))
                } else {
                    Duration::ZERO
                }
            })
            .collect()
    }
}

/// A listening socket on the simulated network.
pub struct TurmoilListener(turmoil::net::TcpListener, Option<Arc<Uplink>>);

impl std::fmt::Debug for TurmoilListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TurmoilListener")
            .field(&self.0.local_addr().ok())
            .finish()
    }
}

impl Network for TurmoilNet {
    type Stream = SimStream;
    type Listener = TurmoilListener;
    type Udp = TurmoilUdp;

    async fn connect(&self, addr: SocketAddr) -> io::Result<Self::Stream> {
        if let Some(nat) = self.nat.as_ref().filter(|n| n.hides(addr.ip())) {
            // Refused after a round trip's worth of waiting, as a real RST would come back.
            tokio::time::sleep(Duration::from_millis(1)).await;
            nat.refused.fetch_add(1, Ordering::Relaxed);
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("{addr} is behind a NAT"),
            ));
        }
        let s = turmoil::net::TcpStream::connect(addr).await?;
        Ok(SimStream::new(s, self.uplink.clone()))
    }

    async fn listen(&self, addr: SocketAddr) -> io::Result<Self::Listener> {
        let l = turmoil::net::TcpListener::bind(addr).await?;
        Ok(TurmoilListener(l, self.uplink.clone()))
    }

    async fn resolve(&self, host: &str) -> io::Result<Vec<SocketAddr>> {
        self.resolve_now(host)
    }

    async fn bind_udp(&self, addr: SocketAddr) -> io::Result<Self::Udp> {
        let socket = turmoil::net::UdpSocket::bind(addr).await?;
        Ok(TurmoilUdp {
            socket: Arc::new(socket),
            chaos: self.chaos.clone(),
        })
    }
}

/// A UDP socket on the simulated network, sending through the host's [`UdpChaos`] if any.
pub struct TurmoilUdp {
    socket: Arc<turmoil::net::UdpSocket>,
    chaos: Option<Arc<Chaos>>,
}

impl std::fmt::Debug for TurmoilUdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TurmoilUdp")
            .field(&self.socket.local_addr().ok())
            .finish()
    }
}

impl Datagram for TurmoilUdp {
    async fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        let Some(chaos) = &self.chaos else {
            return self.socket.send_to(buf, to).await;
        };
        for hold in chaos.plan(buf, to) {
            if hold.is_zero() {
                self.socket.send_to(buf, to).await?;
            } else {
                // Sent later from a task of this host (which a crash ends, as it would the
                // datagrams still in a real host's queues).
                let (socket, datagram) = (self.socket.clone(), buf.to_vec());
                tokio::spawn(async move {
                    tokio::time::sleep(hold).await;
                    let _ = socket.send_to(&datagram, to).await;
                });
            }
        }
        // A lost datagram was sent as far as the sender can tell.
        Ok(buf.len())
    }

    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.socket.recv_from(buf).await
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }
}

impl Listener for TurmoilListener {
    type Stream = SimStream;

    async fn accept(&mut self) -> io::Result<(Self::Stream, SocketAddr)> {
        let (s, from) = self.0.accept().await?;
        Ok((SimStream::new(s, self.1.clone()), from))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

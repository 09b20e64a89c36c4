//! The DHT driver: one task per session running proto-core's [`Dht`] machine over rain's
//! `dht-host:dht-port` UDP socket and, for BEP 32, a second IPv6-only socket (on the same port
//! when it is free).
//!
//! Torrents talk to it through a [`DhtHandle`]: `get_peers` lookups (with an announce of the
//! torrent's port) whose peers come back through a callback, node addresses learned from
//! peers' `port` messages, and the routing table for the resume database. The task ends when
//! every handle is dropped.
//!
//! Outgoing datagrams go out on the socket of their address family; the machine keeps its
//! IPv6 routing table (`DhtConfig::ipv6`) only when an IPv6 socket is bound. A failure to bind
//! the IPv6 socket is logged and leaves the node IPv4-only.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rain_proto::InfoHash;
use rain_proto::dht::{Dht, DhtConfig, DhtEvent, DhtStats, LookupId};
use rain_proto::rng::Seed;
use tokio::sync::{mpsc, oneshot};
use tokio::time::sleep_until;

use crate::net::{Datagram, Network};

/// Commands queued to the DHT task; more are dropped (a lookup is retried on its next tick).
pub const DHT_COMMAND_CAPACITY: usize = 256;
/// Largest datagram read; KRPC messages are far smaller.
const MAX_DATAGRAM: usize = 4096;
/// Bound on resolving one bootstrap host name.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the peers of one lookup go.
pub type PeerSink = Box<dyn Fn(Vec<SocketAddr>) + Send + Sync>;

enum DhtCommand {
    GetPeers {
        info_hash: InfoHash,
        announce: Option<u16>,
        sink: PeerSink,
    },
    AddNode(SocketAddr),
    Export(oneshot::Sender<Vec<u8>>),
    Stats(oneshot::Sender<DhtStats>),
}

/// A session's handle on its DHT node; cheap to clone.
#[derive(Clone)]
pub struct DhtHandle {
    tx: mpsc::Sender<DhtCommand>,
    port: u16,
    port6: Option<u16>,
}

impl std::fmt::Debug for DhtHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DhtHandle")
            .field("port", &self.port)
            .field("port6", &self.port6)
            .finish_non_exhaustive()
    }
}

/// What the DHT task starts from.
#[derive(Debug, Clone)]
pub struct DhtSettings {
    /// `dht-host:dht-port`.
    pub bind: SocketAddr,
    /// `dht-bootstrap-nodes` (`host:port`).
    pub bootstrap: Vec<String>,
    /// The routing table saved by the last run ([`Dht::export_nodes`]), if any.
    pub saved_nodes: Option<Vec<u8>>,
    /// The machine's limits.
    pub config: DhtConfig,
}

impl DhtHandle {
    /// Binds the socket and starts the task; bootstrap runs in the background. IPv4 only
    /// unless `settings.bind` is itself an IPv6 address (see [`DhtHandle::start_dual_stack`]).
    pub async fn start<N: Network>(
        net: N,
        settings: DhtSettings,
        seed: Seed,
        epoch: tokio::time::Instant,
    ) -> std::io::Result<DhtHandle> {
        DhtHandle::start_dual_stack(net, settings, None, seed, epoch).await
    }

    /// Binds `settings.bind` and, when `bind6` is given and `settings.bind` is IPv4, a second,
    /// IPv6-only socket on `bind6` (BEP 32): on the same port if it is free, else on any. The
    /// IPv6 routing table is kept only if that socket binds; failing to bind it is logged, not
    /// an error. Failing to bind `settings.bind` is.
    pub async fn start_dual_stack<N: Network>(
        net: N,
        settings: DhtSettings,
        bind6: Option<IpAddr>,
        seed: Seed,
        epoch: tokio::time::Instant,
    ) -> std::io::Result<DhtHandle> {
        let primary = net.bind_udp(settings.bind).await?;
        let port = primary.local_addr()?.port();
        let sockets = if settings.bind.is_ipv6() {
            // An IPv6 `dht-host`: one socket, which may be dual-stack (IPv4-mapped addresses).
            Sockets {
                v4: None,
                v6: Some(Arc::new(primary)),
                v6_mapped: settings.bind.ip().is_unspecified(),
            }
        } else {
            let v6 = match bind6 {
                Some(ip) if ip.is_ipv6() => bind_v6(&net, ip, port).await,
                _ => None,
            };
            Sockets {
                v4: Some(Arc::new(primary)),
                v6: v6.map(Arc::new),
                v6_mapped: false,
            }
        };
        let port6 = match &sockets.v6 {
            Some(s) => Some(s.local_addr()?.port()),
            None => None,
        };
        let (tx, rx) = mpsc::channel(DHT_COMMAND_CAPACITY);
        let now = proto_now(epoch);
        let mut config = settings.config.clone();
        config.ipv6 = sockets.v6.is_some();
        let mut dht = Dht::new(config, seed, now);
        if let Some(saved) = &settings.saved_nodes {
            let _ = dht.import_nodes(now, saved);
        }
        tokio::spawn(run(net, sockets, dht, settings.bootstrap, epoch, rx));
        Ok(DhtHandle { tx, port, port6 })
    }

    /// The bound UDP port (sent to peers in `port` messages).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The IPv6 socket's port, if one is bound (BEP 32).
    pub fn port6(&self) -> Option<u16> {
        self.port6
    }

    /// Looks up peers of `info_hash` (and announces `announce` as our TCP port when done);
    /// every batch of new peers is passed to `sink`. False if the queue is full.
    pub fn get_peers(&self, info_hash: InfoHash, announce: Option<u16>, sink: PeerSink) -> bool {
        self.tx
            .try_send(DhtCommand::GetPeers {
                info_hash,
                announce,
                sink,
            })
            .is_ok()
    }

    /// A node address from a peer's `port` message.
    pub fn add_node(&self, addr: SocketAddr) {
        let _ = self.tx.try_send(DhtCommand::AddNode(addr));
    }

    /// The routing table as bytes for the resume database.
    pub async fn export_nodes(&self) -> Option<Vec<u8>> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(DhtCommand::Export(tx)).await.ok()?;
        rx.await.ok()
    }

    /// The node's counters.
    pub async fn stats(&self) -> Option<DhtStats> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(DhtCommand::Stats(tx)).await.ok()?;
        rx.await.ok()
    }
}

fn proto_now(epoch: tokio::time::Instant) -> rain_proto::time::Instant {
    rain_proto::time::Instant::from_nanos(epoch.elapsed().as_nanos() as u64)
}

/// Binds the IPv6-only socket on `ip`, on `port` if free, else on any port.
async fn bind_v6<N: Network>(net: &N, ip: IpAddr, port: u16) -> Option<N::Udp> {
    let first = net.bind_udp6(SocketAddr::new(ip, port)).await;
    let r = match first {
        Err(e) if port != 0 && e.kind() == std::io::ErrorKind::AddrInUse => {
            net.bind_udp6(SocketAddr::new(ip, 0)).await
        }
        r => r,
    };
    match r {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("DHT: no IPv6 socket on [{ip}]:{port} ({e}); the DHT runs on IPv4 only");
            None
        }
    }
}

/// The node's sockets, one per address family.
struct Sockets<U> {
    v4: Option<Arc<U>>,
    v6: Option<Arc<U>>,
    /// `v6` is bound on `[::]` without `IPV6_V6ONLY`: it also carries IPv4, as IPv4-mapped
    /// addresses.
    v6_mapped: bool,
}

impl<U: Datagram> Sockets<U> {
    /// Whether datagrams to addresses of this family can be sent.
    fn reaches(&self, addr: &SocketAddr) -> bool {
        match addr {
            SocketAddr::V4(_) => self.v4.is_some() || self.v6_mapped,
            SocketAddr::V6(_) => self.v6.is_some(),
        }
    }

    /// Sends on the socket of `to`'s family; a datagram no socket can carry is dropped.
    async fn send(&self, data: &[u8], to: SocketAddr) {
        let (socket, to) = match to {
            SocketAddr::V4(v4) => match (&self.v4, &self.v6) {
                (Some(s), _) => (s, to),
                (None, Some(s)) if self.v6_mapped => (
                    s,
                    SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port()),
                ),
                _ => return,
            },
            SocketAddr::V6(_) => match &self.v6 {
                Some(s) => (s, to),
                None => return,
            },
        };
        let _ = socket.send_to(data, to).await;
    }
}

/// Receives on `socket`, or never if there is none.
async fn recv_on<U: Datagram>(
    socket: Option<&Arc<U>>,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// An IPv4-mapped IPv6 source (a dual-stack socket) is the IPv4 address it maps.
fn unmap(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

async fn resolve_all<N: Network>(
    net: &N,
    hosts: &[String],
    usable: impl Fn(&SocketAddr) -> bool,
) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for h in hosts {
        if let Ok(Ok(addrs)) = tokio::time::timeout(RESOLVE_TIMEOUT, net.resolve(h)).await {
            out.extend(addrs.into_iter().map(unmap).filter(&usable));
        }
    }
    out
}

async fn run<N: Network>(
    net: N,
    sockets: Sockets<N::Udp>,
    mut dht: Dht,
    bootstrap: Vec<String>,
    epoch: tokio::time::Instant,
    mut rx: mpsc::Receiver<DhtCommand>,
) {
    let mut sinks: BTreeMap<LookupId, PeerSink> = BTreeMap::new();
    // Lookups asked for before the bootstrap names resolved: run once they have, so that
    // they can start from the bootstrap nodes (bounded by the command queue's capacity).
    let mut early: Vec<(InfoHash, Option<u16>, PeerSink)> = Vec::new();
    let mut booted = false;
    let mut buf4 = vec![0u8; MAX_DATAGRAM];
    let mut buf6 = vec![0u8; MAX_DATAGRAM];
    // Bootstrap names resolve in the background; the answer arrives on this channel.
    let (boot_tx, mut boot_rx) = mpsc::channel(1);
    let resolver = net.clone();
    let (reach4, reach6) = (
        sockets.reaches(&SocketAddr::from(([0u8; 4], 1))),
        sockets.reaches(&SocketAddr::from(([0u16; 8], 1))),
    );
    tokio::spawn(async move {
        let usable = |a: &SocketAddr| if a.is_ipv4() { reach4 } else { reach6 };
        let _ = boot_tx
            .send(resolve_all(&resolver, &bootstrap, usable).await)
            .await;
    });
    loop {
        while let Some(t) = dht.poll_transmit() {
            sockets.send(&t.data, t.to).await;
        }
        while let Some(e) = dht.poll_event() {
            match e {
                DhtEvent::Peers { lookup, peers, .. } => {
                    if let Some(sink) = sinks.get(&lookup) {
                        sink(peers);
                    }
                }
                DhtEvent::LookupDone { lookup, .. } => {
                    sinks.remove(&lookup);
                }
                DhtEvent::BootstrapDone { .. } | DhtEvent::IdChanged { .. } => {}
            }
        }
        let deadline = dht
            .poll_timeout()
            .map(|t| epoch + Duration::from_nanos(t.as_nanos()));
        tokio::select! {
            biased;
            cmd = rx.recv() => {
                let Some(cmd) = cmd else { return };
                let now = proto_now(epoch);
                match cmd {
                    DhtCommand::GetPeers { info_hash, announce, sink } => {
                        if !booted {
                            if early.len() < DHT_COMMAND_CAPACITY {
                                early.push((info_hash, announce, sink));
                            }
                        } else if let Ok(id) = dht.get_peers(now, info_hash, announce) {
                            sinks.insert(id, sink);
                        }
                    }
                    DhtCommand::AddNode(addr) => dht.add_node(now, unmap(addr)),
                    DhtCommand::Export(tx) => {
                        let _ = tx.send(dht.export_nodes());
                    }
                    DhtCommand::Stats(tx) => {
                        let _ = tx.send(dht.stats());
                    }
                }
            }
            Some(addrs) = boot_rx.recv() => {
                let now = proto_now(epoch);
                dht.bootstrap(now, &addrs);
                booted = true;
                for (info_hash, announce, sink) in early.drain(..) {
                    if let Ok(id) = dht.get_peers(now, info_hash, announce) {
                        sinks.insert(id, sink);
                    }
                }
            }
            r = recv_on(sockets.v4.as_ref(), &mut buf4) => {
                if let Ok((n, from)) = r {
                    dht.handle_datagram(proto_now(epoch), from, &buf4[..n]);
                }
            }
            r = recv_on(sockets.v6.as_ref(), &mut buf6) => {
                if let Ok((n, from)) = r {
                    dht.handle_datagram(proto_now(epoch), unmap(from), &buf6[..n]);
                }
            }
            () = sleep_or_forever(deadline) => dht.handle_timeout(proto_now(epoch)),
        }
    }
}

async fn sleep_or_forever(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => sleep_until(d).await,
        None => std::future::pending().await,
    }
}

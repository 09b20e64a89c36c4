//! The DHT driver: one task per session running proto-core's [`Dht`] machine over one UDP
//! socket (rain's `dht-host:dht-port`).
//!
//! Torrents talk to it through a [`DhtHandle`]: `get_peers` lookups (with an announce of the
//! torrent's port) whose peers come back through a callback, node addresses learned from
//! peers' `port` messages, and the routing table for the resume database. The task ends when
//! every handle is dropped.

use std::collections::BTreeMap;
use std::net::SocketAddr;
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
}

impl std::fmt::Debug for DhtHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DhtHandle")
            .field("port", &self.port)
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
    /// Binds the socket and starts the task; bootstrap runs in the background.
    pub async fn start<N: Network>(
        net: N,
        settings: DhtSettings,
        seed: Seed,
        epoch: tokio::time::Instant,
    ) -> std::io::Result<DhtHandle> {
        let socket = net.bind_udp(settings.bind).await?;
        let port = socket.local_addr()?.port();
        let (tx, rx) = mpsc::channel(DHT_COMMAND_CAPACITY);
        let now = proto_now(epoch);
        let mut dht = Dht::new(settings.config.clone(), seed, now);
        if let Some(saved) = &settings.saved_nodes {
            let _ = dht.import_nodes(now, saved);
        }
        tokio::spawn(run(net, socket, dht, settings.bootstrap, epoch, rx));
        Ok(DhtHandle { tx, port })
    }

    /// The bound UDP port (sent to peers in `port` messages).
    pub fn port(&self) -> u16 {
        self.port
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

async fn resolve_all<N: Network>(net: &N, hosts: &[String]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for h in hosts {
        if let Ok(Ok(addrs)) = tokio::time::timeout(RESOLVE_TIMEOUT, net.resolve(h)).await {
            out.extend(addrs.into_iter().filter(SocketAddr::is_ipv4));
        }
    }
    out
}

async fn run<N: Network>(
    net: N,
    socket: N::Udp,
    mut dht: Dht,
    bootstrap: Vec<String>,
    epoch: tokio::time::Instant,
    mut rx: mpsc::Receiver<DhtCommand>,
) {
    let socket = Arc::new(socket);
    let mut sinks: BTreeMap<LookupId, PeerSink> = BTreeMap::new();
    // Lookups asked for before the bootstrap names resolved: run once they have, so that
    // they can start from the bootstrap nodes (bounded by the command queue's capacity).
    let mut early: Vec<(InfoHash, Option<u16>, PeerSink)> = Vec::new();
    let mut booted = false;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    // Bootstrap names resolve in the background; the answer arrives on this channel.
    let (boot_tx, mut boot_rx) = mpsc::channel(1);
    let resolver = net.clone();
    tokio::spawn(async move {
        let _ = boot_tx.send(resolve_all(&resolver, &bootstrap).await).await;
    });
    loop {
        while let Some(t) = dht.poll_transmit() {
            let _ = socket.send_to(&t.data, t.to).await;
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
                    DhtCommand::AddNode(addr) => dht.add_node(now, addr),
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
            r = socket.recv_from(&mut buf) => {
                if let Ok((n, from)) = r {
                    dht.handle_datagram(proto_now(epoch), from, &buf[..n]);
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

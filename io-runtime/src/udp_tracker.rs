//! The UDP tracker transport (BEP 15, BEP 41): drives [`UdpTransaction`]s over one UDP socket
//! per address family, shared by every UDP tracker of a session.
//!
//! A receive task per socket routes each datagram **by source address** to the transactions
//! waiting on that address; the transaction then checks the transaction id, so a datagram from
//! anywhere else is ignored and a spoofed one cannot end a request. Connection ids are cached
//! per `host:port` while [`Connection::is_fresh`]. The machine's timers run on
//! [`rain_proto::time::Instant`], mapped from tokio's clock; [`UdpTrackerConfig::retransmit_base`]
//! scales that clock so that tests can retransmit in milliseconds instead of 15 s. Every request
//! is bounded by [`UdpTrackerConfig::timeout`] as well as by the BEP 15 retry count.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use http::Uri;
use rain_proto::rng::{Rng, Seed};
use rain_proto::time::Instant;
use rain_proto::tracker::TrackerError;
use rain_proto::tracker::udp::{BASE_TIMEOUT, Connection, Reply, Request, UdpTransaction};
use tokio::sync::mpsc;

use crate::blocklist::BlocklistCell;
use crate::http::resolve;
use crate::net::{Datagram, Network};
use crate::tracker_client::{blocked, tracker_error};

/// Most connection ids cached; stale ones are dropped first when full.
const MAX_CACHED_CONNECTIONS: usize = 1024;
/// Datagrams queued for one transaction before more are dropped.
const ROUTE_QUEUE: usize = 16;
/// Largest datagram read.
const MAX_DATAGRAM: usize = 65_536;

/// How UDP tracker requests are bounded.
#[derive(Debug, Clone)]
pub struct UdpTrackerConfig {
    /// First retransmission timeout; BEP 15 says 15 s, and it doubles on each retry. Other
    /// values scale all of the protocol's clock (the 1-minute connection-id lifetime too):
    /// meant for tests.
    pub retransmit_base: Duration,
    /// Retries before the transaction gives up (BEP 15: up to 8).
    pub max_retries: u32,
    /// Deadline for a whole request, resolution included.
    pub timeout: Duration,
    /// Host resolution (`dns-resolve-timeout`).
    pub resolve_timeout: Duration,
}

impl Default for UdpTrackerConfig {
    fn default() -> Self {
        UdpTrackerConfig {
            retransmit_base: BASE_TIMEOUT,
            max_retries: rain_proto::tracker::udp::DEFAULT_MAX_RETRIES,
            // Like the announcer's request timeout: sends at 0, 15 and 45 s.
            timeout: Duration::from_mins(1),
            resolve_timeout: Duration::from_secs(5),
        }
    }
}

/// A `udp://host:port/path?query` tracker address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpTarget {
    /// The host, as written (brackets kept for IPv6 literals).
    pub host: String,
    /// The port.
    pub port: u16,
    /// BEP 41 URL data: the path and query.
    pub url_data: String,
}

impl UdpTarget {
    /// Parses a `udp://` URL.
    pub fn parse(url: &str) -> Result<Self, TrackerError> {
        let uri: Uri = url
            .parse()
            .map_err(|_| TrackerError::UnsupportedUrl(url.to_owned()))?;
        if !uri
            .scheme_str()
            .is_some_and(|s| s.eq_ignore_ascii_case("udp"))
        {
            return Err(TrackerError::UnsupportedUrl(url.to_owned()));
        }
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| TrackerError::UnsupportedUrl(url.to_owned()))?;
        let port = match uri.port_u16() {
            Some(0) => {
                return Err(TrackerError::Transport(format!(
                    "invalid port number in tracker address: {url}"
                )));
            }
            Some(p) => p,
            None => {
                return Err(TrackerError::Transport(
                    "missing port in tracker address".into(),
                ));
            }
        };
        Ok(UdpTarget {
            host: host.to_owned(),
            port,
            url_data: uri
                .path_and_query()
                .map_or_else(String::new, |p| p.as_str().to_owned()),
        })
    }
}

/// The session's UDP tracker client; cheap to clone (clones share the sockets and caches).
pub struct UdpTracker<N: Network> {
    net: N,
    inner: Arc<Inner<N::Udp>>,
}

// Manual: a derive would ask the socket type to be `Clone`, and clones share it anyway.
impl<N: Network> Clone for UdpTracker<N> {
    fn clone(&self) -> Self {
        UdpTracker {
            net: self.net.clone(),
            inner: self.inner.clone(),
        }
    }
}

impl<N: Network> fmt::Debug for UdpTracker<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpTracker")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

type Routes = HashMap<SocketAddr, Vec<(u64, mpsc::Sender<Vec<u8>>)>>;

struct Inner<U> {
    config: UdpTrackerConfig,
    blocklist: BlocklistCell,
    epoch: tokio::time::Instant,
    v4: tokio::sync::Mutex<Option<Arc<U>>>,
    v6: tokio::sync::Mutex<Option<Arc<U>>>,
    routes: Mutex<Routes>,
    connections: Mutex<HashMap<String, Connection>>,
    rng: Mutex<Rng>,
    next_route: AtomicU64,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl<U> Drop for Inner<U> {
    fn drop(&mut self) {
        for t in self.tasks.get_mut().unwrap_or_else(PoisonError::into_inner) {
            t.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Removes a transaction's route when its request ends.
struct RouteGuard<U> {
    inner: Arc<Inner<U>>,
    addr: SocketAddr,
    id: u64,
}

impl<U> Drop for RouteGuard<U> {
    fn drop(&mut self) {
        let mut routes = lock(&self.inner.routes);
        if let Some(list) = routes.get_mut(&self.addr) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                routes.remove(&self.addr);
            }
        }
    }
}

impl<N: Network> UdpTracker<N> {
    /// A client resolving hosts through `net`; `seed` seeds the transaction ids.
    /// Sockets are bound on first use (0.0.0.0:0, and [::]:0 for IPv6 trackers).
    pub fn new(net: N, config: UdpTrackerConfig, seed: Seed) -> Self {
        Self::with_blocklist(net, config, seed, BlocklistCell::default())
    }

    /// Like [`UdpTracker::new`], refusing tracker hosts whose addresses are all on
    /// `blocklist` with rain's "tracker IP is blocked", before any datagram is sent.
    pub fn with_blocklist(
        net: N,
        config: UdpTrackerConfig,
        seed: Seed,
        blocklist: BlocklistCell,
    ) -> Self {
        UdpTracker {
            net,
            inner: Arc::new(Inner {
                config,
                blocklist,
                epoch: tokio::time::Instant::now(),
                v4: tokio::sync::Mutex::new(None),
                v6: tokio::sync::Mutex::new(None),
                routes: Mutex::new(HashMap::new()),
                connections: Mutex::new(HashMap::new()),
                rng: Mutex::new(Rng::new(seed)),
                next_route: AtomicU64::new(0),
                tasks: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The local address of the IPv4 socket, once bound.
    pub async fn local_addr_v4(&self) -> Option<SocketAddr> {
        self.inner
            .v4
            .lock()
            .await
            .as_ref()
            .and_then(|s| s.local_addr().ok())
    }

    /// Runs one request against the tracker at `url` (`udp://host:port/path`), bounded by
    /// [`UdpTrackerConfig::timeout`].
    pub async fn request(&self, url: &str, request: Request) -> Result<Reply, TrackerError> {
        let target = UdpTarget::parse(url)?;
        tokio::time::timeout(self.inner.config.timeout, self.run(&target, request))
            .await
            .unwrap_or(Err(TrackerError::Timeout))
    }

    async fn run(&self, target: &UdpTarget, request: Request) -> Result<Reply, TrackerError> {
        let addrs = resolve(
            &self.net,
            &target.host,
            target.port,
            self.inner.config.resolve_timeout,
        )
        .await
        .map_err(tracker_error)?;
        let blocklist = &self.inner.blocklist;
        let addrs: Vec<SocketAddr> = addrs
            .into_iter()
            .filter(|a| !blocklist.contains(a.ip()))
            .collect();
        if addrs.is_empty() {
            return Err(blocked());
        }
        // IPv4 first, as rain (IPv4-only) would; IPv6 when that is all there is.
        let addr = addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| addrs.first())
            .copied()
            .ok_or_else(|| TrackerError::Transport(format!("host not found: {}", target.host)))?;
        let socket = self.socket(addr.is_ipv6()).await.map_err(|e| {
            TrackerError::Transport(format!("cannot open a UDP socket for trackers: {e}"))
        })?;

        let (tx, mut rx) = mpsc::channel(ROUTE_QUEUE);
        let _route = self.register(addr, tx);
        let key = format!("{}:{}", target.host, target.port);
        let now = self.now();
        let cached = lock(&self.inner.connections).get(&key).copied();
        let mut rng = Rng::new(lock(&self.inner.rng).child());
        let mut t = UdpTransaction::new(
            now,
            request,
            &target.url_data,
            addr.is_ipv6(),
            cached,
            self.inner.config.max_retries,
            &mut rng,
        );
        loop {
            while let Some(packet) = t.poll_transmit() {
                socket
                    .send_to(&packet, addr)
                    .await
                    .map_err(|e| send_error(&e, &target.host))?;
            }
            if let Some(outcome) = t.outcome() {
                if let Some(c) = t.connection() {
                    self.cache_connection(key, c);
                }
                return outcome.clone();
            }
            let Some(deadline) = t.poll_timeout() else {
                return Err(TrackerError::Timeout);
            };
            // Biased (deterministic under simulation): a datagram already here wins over
            // the timer.
            tokio::select! {
                biased;
                d = rx.recv() => match d {
                    Some(d) => t.handle_datagram(self.now(), &d),
                    None => return Err(TrackerError::Transport(
                        "tracker UDP socket closed".into(),
                    )),
                },
                () = tokio::time::sleep_until(self.to_tokio(deadline)) => {
                    // Rounding between the clocks must not make the timer fire early.
                    t.handle_timeout(self.now().max(deadline));
                }
            }
        }
    }

    fn cache_connection(&self, key: String, c: Connection) {
        let now = self.now();
        let mut cache = lock(&self.inner.connections);
        if cache.len() >= MAX_CACHED_CONNECTIONS && !cache.contains_key(&key) {
            cache.retain(|_, c| c.is_fresh(now));
            if cache.len() >= MAX_CACHED_CONNECTIONS {
                cache.clear();
            }
        }
        cache.insert(key, c);
    }

    fn register(&self, addr: SocketAddr, tx: mpsc::Sender<Vec<u8>>) -> RouteGuard<N::Udp> {
        let id = self.inner.next_route.fetch_add(1, Ordering::Relaxed);
        lock(&self.inner.routes)
            .entry(addr)
            .or_default()
            .push((id, tx));
        RouteGuard {
            inner: self.inner.clone(),
            addr,
            id,
        }
    }

    /// The shared socket of a family, bound through the [`Network`] (so a simulation can host
    /// UDP trackers) and its receive task started, on first use.
    async fn socket(&self, ipv6: bool) -> std::io::Result<Arc<N::Udp>> {
        let slot = if ipv6 { &self.inner.v6 } else { &self.inner.v4 };
        let mut slot = slot.lock().await;
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone());
        }
        let bind: SocketAddr = if ipv6 {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let socket = Arc::new(self.net.bind_udp(bind).await?);
        let task = tokio::spawn(receive_loop(socket.clone(), Arc::downgrade(&self.inner)));
        lock(&self.inner.tasks).push(task);
        *slot = Some(socket.clone());
        Ok(socket)
    }

    /// tokio's clock as the protocol's, scaled by the retransmission base.
    fn now(&self) -> Instant {
        let elapsed = self.inner.epoch.elapsed().as_nanos();
        let (num, den) = self.scale();
        Instant::from_nanos(u64::try_from(elapsed * num / den).unwrap_or(u64::MAX))
    }

    /// The tokio instant of a protocol instant (rounded up).
    fn to_tokio(&self, i: Instant) -> tokio::time::Instant {
        let (num, den) = self.scale();
        let nanos = (u128::from(i.as_nanos()) * den).div_ceil(num);
        self.inner.epoch + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// protocol time = tokio time · num / den.
    fn scale(&self) -> (u128, u128) {
        let base = self.inner.config.retransmit_base.as_nanos().max(1);
        (BASE_TIMEOUT.as_nanos(), base)
    }
}

fn send_error(e: &std::io::Error, host: &str) -> TrackerError {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::HostUnreachable => TrackerError::Transport(format!("no route to host: {host}")),
        ErrorKind::NetworkUnreachable => {
            TrackerError::Transport(format!("network is unreachable: {host}"))
        }
        ErrorKind::ConnectionRefused => {
            TrackerError::Transport("tracker refused the connection".into())
        }
        _ => TrackerError::Transport(format!("cannot send to tracker: {e}")),
    }
}

/// Reads datagrams and hands each to the transactions waiting on its source address.
async fn receive_loop<U: Datagram>(socket: Arc<U>, inner: Weak<Inner<U>>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            // ICMP errors (e.g. port unreachable on some systems) surface here: keep going,
            // without spinning if the error persists.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let Some(inner) = inner.upgrade() else { return };
        let from = canonical(from);
        let routes = lock(&inner.routes);
        if let Some(list) = routes.get(&from) {
            for (_, tx) in list {
                // A full queue means a flood: dropping is what UDP would do anyway.
                let _ = tx.try_send(buf[..n].to_vec());
            }
        }
    }
}

/// IPv4-mapped IPv6 sources as plain IPv4, so they match the resolved address.
fn canonical(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => a,
        },
        SocketAddr::V4(_) => a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_udp_urls() {
        let t = UdpTarget::parse("udp://tracker.example:6969/announce?k=v").unwrap();
        assert_eq!(t.host, "tracker.example");
        assert_eq!(t.port, 6969);
        assert_eq!(t.url_data, "/announce?k=v");
        let t = UdpTarget::parse("udp://[::1]:80").unwrap();
        assert_eq!(t.host, "[::1]");
        assert_eq!(
            UdpTarget::parse("udp://tracker.example/announce")
                .unwrap_err()
                .to_string(),
            "missing port in tracker address"
        );
        assert!(matches!(
            UdpTarget::parse("http://x:1/"),
            Err(TrackerError::UnsupportedUrl(_))
        ));
    }
}

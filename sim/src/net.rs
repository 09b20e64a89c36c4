//! [`TurmoilNet`]: io-runtime's [`Network`] over turmoil's simulated TCP, so that a simulated
//! host runs the real session, torrent and peer tasks unchanged (DESIGN.md §3, §4).
//!
//! Host names are turmoil host names (`"seed0:6881"` resolves through turmoil's DNS). It must
//! only be used from inside a turmoil host or client: every call reaches the simulated world
//! of the current thread. UDP ([`TurmoilUdp`]) carries the DHT.

use std::collections::BTreeSet;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

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
            uplink: None,
        }
    }

    /// The same network for one host whose TCP writes share an uplink of `bytes_per_sec`.
    pub fn with_uplink(&self, bytes_per_sec: u64) -> Self {
        TurmoilNet {
            hosts: self.hosts.clone(),
            uplink: Some(Uplink::new(bytes_per_sec)),
        }
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
        turmoil::net::UdpSocket::bind(addr).await.map(TurmoilUdp)
    }
}

/// A UDP socket on the simulated network.
pub struct TurmoilUdp(turmoil::net::UdpSocket);

impl std::fmt::Debug for TurmoilUdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TurmoilUdp")
            .field(&self.0.local_addr().ok())
            .finish()
    }
}

impl Datagram for TurmoilUdp {
    async fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.0.send_to(buf, to).await
    }

    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.0.recv_from(buf).await
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
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

//! The network, behind a small trait so that the simulator can plug in turmoil's sockets and
//! run the same glue code (DESIGN.md §3). The tokio implementation is [`TokioNet`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};

/// What the runtime needs from a network.
pub trait Network: Clone + Send + Sync + 'static {
    /// A connected byte stream.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// A listening socket.
    type Listener: Listener<Stream = Self::Stream>;
    /// A bound UDP socket.
    type Udp: Datagram;

    /// Opens a TCP connection.
    fn connect(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Stream>> + Send;
    /// Listens for TCP connections.
    fn listen(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Listener>> + Send;
    /// Resolves `host:port` to addresses.
    fn resolve(&self, host: &str) -> impl Future<Output = io::Result<Vec<SocketAddr>>> + Send;
    /// Binds a UDP socket.
    fn bind_udp(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Udp>> + Send;
    /// Binds a UDP socket on an IPv6 address that receives IPv6 only (`IPV6_V6ONLY`), so that
    /// it can share its port with an IPv4 socket bound on `0.0.0.0` (the DHT's BEP 32 second
    /// socket). A network without IPv6 answers `Unsupported`, which is the default.
    fn bind_udp6(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Udp>> + Send {
        async move {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("no IPv6 on this network (binding {addr})"),
            ))
        }
    }
}

/// A bound UDP socket (the DHT's).
pub trait Datagram: Send + Sync + 'static {
    /// Sends one datagram.
    fn send_to(&self, buf: &[u8], to: SocketAddr)
    -> impl Future<Output = io::Result<usize>> + Send;
    /// Receives one datagram (truncated to `buf`).
    fn recv_from(
        &self,
        buf: &mut [u8],
    ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send;
    /// The bound address.
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// A listening socket.
pub trait Listener: Send + 'static {
    /// The accepted streams.
    type Stream;
    /// Waits for the next connection.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;
    /// The bound address.
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// The real network, through tokio.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioNet;

impl Network for TokioNet {
    type Stream = tokio::net::TcpStream;
    type Listener = tokio::net::TcpListener;
    type Udp = tokio::net::UdpSocket;

    async fn connect(&self, addr: SocketAddr) -> io::Result<Self::Stream> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        // Small control messages (requests, haves) must not wait for Nagle.
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    async fn listen(&self, addr: SocketAddr) -> io::Result<Self::Listener> {
        tokio::net::TcpListener::bind(addr).await
    }

    async fn resolve(&self, host: &str) -> io::Result<Vec<SocketAddr>> {
        Ok(tokio::net::lookup_host(host).await?.collect())
    }

    async fn bind_udp(&self, addr: SocketAddr) -> io::Result<Self::Udp> {
        tokio::net::UdpSocket::bind(addr).await
    }

    async fn bind_udp6(&self, addr: SocketAddr) -> io::Result<Self::Udp> {
        use rustix::net::{AddressFamily, SocketFlags, SocketType, bind, socket_with, sockopt};
        if !addr.is_ipv6() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("not an IPv6 address: {addr}"),
            ));
        }
        let fd = socket_with(
            AddressFamily::INET6,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )?;
        sockopt::set_ipv6_v6only(&fd, true)?;
        bind(&fd, &addr)?;
        tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(fd))
    }
}

impl Datagram for tokio::net::UdpSocket {
    async fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        tokio::net::UdpSocket::send_to(self, buf, to).await
    }

    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        tokio::net::UdpSocket::recv_from(self, buf).await
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        tokio::net::UdpSocket::local_addr(self)
    }
}

impl Listener for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;

    async fn accept(&mut self) -> io::Result<(Self::Stream, SocketAddr)> {
        let (stream, addr) = tokio::net::TcpListener::accept(self).await?;
        stream.set_nodelay(true)?;
        Ok((stream, addr))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        tokio::net::TcpListener::local_addr(self)
    }
}

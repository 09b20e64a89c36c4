//! A small HTTP/1.1 GET client over the [`Network`] trait: trackers, `.torrent` URLs and
//! webseeds (DESIGN.md §3).
//!
//! Everything is bounded: the whole exchange (resolution, connection, TLS, redirects and body)
//! by [`HttpConfig::timeout`], host resolution by [`HttpConfig::resolve_timeout`], the body by
//! [`HttpConfig::max_body`] (a larger declared `Content-Length` fails before the body is read,
//! a longer body fails when the limit is crossed, and a gzip body is bounded after
//! decompression too), and redirects by [`HttpConfig::max_redirects`].
//!
//! Webseeds stream instead ([`HttpClient::get_streamed`]): connection, TLS handshake and
//! response headers each have their own bound, and the body is read chunk by chunk with a
//! bound on the silence between chunks, never collected.
//!
//! https uses rustls with the webpki root certificates; verification can be turned off
//! (`tracker-http-verify-tls: false`).
//!
//! SSRF mitigation (libtorrent's `ssrf_mitigation`, rain's `ssrf-mitigation`, on by default,
//! [`HttpConfig::ssrf_mitigation`]) checks every resolved address before it is dialled:
//! - a request whose first hop reached a global address may not be redirected to a local one
//!   (loopback, private, link-local, unique-local: [`is_local`]); see [`redirect_allowed`];
//! - an HTTP tracker on a loopback address must have a URL path ending in `/announce`
//!   ([`Purpose::Tracker`], [`loopback_tracker_allowed`]);
//! - a web seed on a local address may not carry a query string ([`Purpose::Webseed`],
//!   [`webseed_allowed`]).
//!
//! A host whose every address is refused fails with [`HttpError::Ssrf`] before any packet is
//! sent to it.

use std::fmt;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http::header::{self, HeaderValue};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{
    self, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::CryptoProvider,
    pki_types::{CertificateDer, ServerName, UnixTime},
};

use crate::blocklist::BlocklistCell;
use crate::net::Network;

/// At most this many resolved addresses are tried for one host.
const MAX_ADDRESSES_TRIED: usize = 4;

/// How the client behaves; every field is a bound.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// The whole exchange, redirects included (`tracker-http-timeout`, 10 s).
    pub timeout: Duration,
    /// Host resolution (`dns-resolve-timeout`, 5 s).
    pub resolve_timeout: Duration,
    /// Largest body, after decompression (`tracker-http-max-response-size`, 2 MiB).
    pub max_body: usize,
    /// Redirects followed before giving up.
    pub max_redirects: usize,
    /// Verify TLS certificates (`tracker-http-verify-tls`, on).
    pub verify_tls: bool,
    /// Apply the SSRF rules of the module documentation (`ssrf-mitigation`, on).
    pub ssrf_mitigation: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            timeout: Duration::from_secs(10),
            resolve_timeout: Duration::from_secs(5),
            max_body: 2 * 1024 * 1024,
            max_redirects: 5,
            verify_tls: true,
            ssrf_mitigation: true,
        }
    }
}

/// A response: status, content type and the whole (decompressed) body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The body, gunzipped when it came with `Content-Encoding: gzip`.
    pub body: Bytes,
    /// The URL that answered, after redirects.
    pub url: String,
}

/// Why a GET failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The URL cannot be parsed or has no host.
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// Not http or https.
    #[error("unsupported URL scheme: {0}")]
    UnsupportedScheme(String),
    /// The host does not resolve.
    #[error("host not found: {0}")]
    HostNotFound(String),
    /// The host resolved to no address.
    #[error("host has no address: {0}")]
    NoAddress(String),
    /// The server refused the TCP connection.
    #[error("connection refused")]
    Refused,
    /// No route to the server.
    #[error("no route to host: {0}")]
    NoRoute(String),
    /// The network is unreachable.
    #[error("network is unreachable: {0}")]
    NetworkUnreachable(String),
    /// The exchange took longer than [`HttpConfig::timeout`] (or resolution longer than
    /// [`HttpConfig::resolve_timeout`]).
    #[error("timeout")]
    Timeout,
    /// The TLS handshake failed (bad certificate, not TLS…).
    #[error("TLS handshake has failed: {0}")]
    Tls(String),
    /// The server closed the connection before a whole response.
    #[error("connection closed")]
    Closed,
    /// Not a valid HTTP/1.1 response.
    #[error("invalid server response: {0}")]
    Protocol(String),
    /// The body is larger than [`HttpConfig::max_body`].
    #[error("response too large (more than {limit} bytes)")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// More than [`HttpConfig::max_redirects`] redirects.
    #[error("too many redirects (more than {0})")]
    TooManyRedirects(usize),
    /// A redirect status without a usable `Location`.
    #[error("redirect without a valid Location")]
    BadRedirect,
    /// `Content-Encoding: gzip` with a body that does not decompress.
    #[error("invalid gzip body")]
    Gzip,
    /// Another I/O error.
    #[error("I/O error: {0}")]
    Io(String),
    /// Every address of the host is on the blocklist given with
    /// [`HttpClient::with_blocklist`]; nothing was sent.
    #[error("IP is blocked")]
    Blocked,
    /// Every address of the host is refused by an SSRF rule ([`HttpConfig::ssrf_mitigation`]);
    /// nothing was sent to it. The text says which rule and which address.
    #[error("refused by SSRF mitigation: {0}")]
    Ssrf(String),
}

/// What a request is for, which selects the SSRF rules besides the redirect rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Purpose {
    /// A `.torrent` download, a blocklist: the redirect rule only.
    #[default]
    Other,
    /// An HTTP tracker's announce or scrape. `announce_path`: the tracker's URL (not the
    /// request's: a scrape asks for `/scrape`) has a path ending in `/announce`; without it, a
    /// loopback tracker is refused.
    Tracker {
        /// The tracker URL's path ends in `/announce`.
        announce_path: bool,
    },
    /// A web-seed request: refused on a local address when its URL has a query string.
    Webseed,
}

impl Purpose {
    /// A tracker announce or scrape for the tracker at `tracker_url`.
    pub fn tracker(tracker_url: &str) -> Self {
        Purpose::Tracker {
            announce_path: tracker_url
                .parse::<Uri>()
                .is_ok_and(|u| u.path().ends_with("/announce")),
        }
    }
}

/// Loopback, private (RFC 1918), link-local, unique-local (`fc00::/7`), unspecified and
/// "this network" (`0.0.0.0/8`) addresses, and IPv4-mapped IPv6 forms of them: the addresses a
/// remote host must not make us reach (libtorrent's `is_local` plus loopback).
pub fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.octets()[0] == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_local(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// A loopback address, IPv4-mapped IPv6 included.
fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// The redirect rule: a request whose first hop reached `origin` may be redirected to
/// `target` unless `origin` is global and `target` local ([`is_local`]).
pub fn redirect_allowed(origin: IpAddr, target: IpAddr) -> bool {
    is_local(origin) || !is_local(target)
}

/// The tracker rule: a tracker whose URL path does not end in `/announce`
/// (`announce_path == false`) may not be reached on a loopback address.
pub fn loopback_tracker_allowed(announce_path: bool, ip: IpAddr) -> bool {
    announce_path || !is_loopback(ip)
}

/// The web-seed rule: a web-seed URL with a query string may not be fetched from a local
/// address ([`is_local`]).
pub fn webseed_allowed(has_query: bool, ip: IpAddr) -> bool {
    !has_query || !is_local(ip)
}

/// Where a request is in its redirect chain, for the SSRF rules.
#[derive(Debug, Clone, Copy)]
struct Hop {
    purpose: Purpose,
    /// The address the first hop connected to; `None` on the first hop.
    origin: Option<IpAddr>,
}

impl Hop {
    fn first(purpose: Purpose) -> Self {
        Hop {
            purpose,
            origin: None,
        }
    }

    /// Why `ip` may not be dialled for `uri` on this hop, if it may not.
    fn refusal(&self, uri: &Uri, ip: IpAddr) -> Option<String> {
        if let Some(origin) = self.origin
            && !redirect_allowed(origin, ip)
        {
            return Some(format!(
                "a request to global address {origin} may not be redirected to local address {ip}"
            ));
        }
        match self.purpose {
            Purpose::Tracker { announce_path }
                if self.origin.is_none() && !loopback_tracker_allowed(announce_path, ip) =>
            {
                Some(format!(
                    "a tracker on loopback address {ip} must have a URL path ending in /announce"
                ))
            }
            Purpose::Webseed if !webseed_allowed(uri.query().is_some(), ip) => Some(format!(
                "a web seed on local address {ip} may not have a query string in its URL"
            )),
            _ => None,
        }
    }
}

/// An HTTP/1.1 GET client; cheap to clone, one per session.
#[derive(Clone)]
pub struct HttpClient<N: Network> {
    net: N,
    config: HttpConfig,
    tls: TlsConnector,
    blocklist: Option<BlocklistCell>,
}

impl<N: Network> fmt::Debug for HttpClient<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<N: Network> HttpClient<N> {
    /// A client that connects through `net`.
    pub fn new(net: N, config: HttpConfig) -> Self {
        let tls = TlsConnector::from(Arc::new(tls_config(config.verify_tls)));
        HttpClient {
            net,
            config,
            tls,
            blocklist: None,
        }
    }

    /// Refuses to connect to addresses on `blocklist` (rain's tracker and webseed dialers
    /// check the resolved IP): blocked addresses are skipped, and a host with only blocked
    /// addresses fails with [`HttpError::Blocked`] before any packet is sent.
    #[must_use]
    pub fn with_blocklist(mut self, blocklist: BlocklistCell) -> Self {
        self.blocklist = Some(blocklist);
        self
    }

    /// The resolved addresses of `host` (of `uri`) that may be dialled on `hop`, at most
    /// [`MAX_ADDRESSES_TRIED`]: those not on the blocklist, then those the SSRF rules allow.
    async fn addresses(
        &self,
        uri: &Uri,
        host: &str,
        port: u16,
        hop: Hop,
    ) -> Result<Vec<SocketAddr>, HttpError> {
        let addrs = resolve(&self.net, host, port, self.config.resolve_timeout).await?;
        let mut allowed: Vec<SocketAddr> = match &self.blocklist {
            Some(b) => addrs.into_iter().filter(|a| !b.contains(a.ip())).collect(),
            None => addrs,
        };
        if allowed.is_empty() {
            return Err(HttpError::Blocked);
        }
        if self.config.ssrf_mitigation {
            let mut refusal = None;
            allowed.retain(|a| match hop.refusal(uri, a.ip()) {
                Some(r) => {
                    refusal.get_or_insert(r);
                    false
                }
                None => true,
            });
            if let Some(r) = refusal
                && allowed.is_empty()
            {
                return Err(HttpError::Ssrf(r));
            }
        }
        Ok(allowed.into_iter().take(MAX_ADDRESSES_TRIED).collect())
    }

    /// The configuration.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// GETs `url` with extra request `headers` (e.g. `User-Agent`), following redirects.
    /// A response of any status is returned; only transport failures are errors.
    pub async fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<Response, HttpError> {
        self.get_for(url, headers, Purpose::Other).await
    }

    /// [`HttpClient::get`] under the SSRF rules of `purpose`.
    pub async fn get_for(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        purpose: Purpose,
    ) -> Result<Response, HttpError> {
        tokio::time::timeout(
            self.config.timeout,
            self.get_following(url, headers, purpose),
        )
        .await
        .unwrap_or(Err(HttpError::Timeout))
    }

    async fn get_following(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        purpose: Purpose,
    ) -> Result<Response, HttpError> {
        let mut uri = parse_url(url)?;
        let mut redirects = 0;
        let mut hop = Hop::first(purpose);
        loop {
            let (r, peer) = self.get_once(&uri, headers, hop).await?;
            hop.origin.get_or_insert(peer);
            let Some(location) = r.location else {
                return Ok(r.response);
            };
            if redirects >= self.config.max_redirects {
                return Err(HttpError::TooManyRedirects(self.config.max_redirects));
            }
            redirects += 1;
            uri = resolve_location(&uri, &location).ok_or(HttpError::BadRedirect)?;
        }
    }

    /// One request; `location` is set for a redirect status. Also returns the address
    /// connected to.
    async fn get_once(
        &self,
        uri: &Uri,
        headers: &[(&str, &str)],
        hop: Hop,
    ) -> Result<(Once, IpAddr), HttpError> {
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            other => return Err(HttpError::UnsupportedScheme(other.unwrap_or("").to_owned())),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| HttpError::InvalidUrl(uri.to_string()))?;
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let (stream, peer) = self.connect(uri, host, port, hop).await?;
        let once = if https {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let name = ServerName::try_from(bare.to_owned())
                .map_err(|e| HttpError::InvalidUrl(format!("{host}: {e}")))?;
            let tls = self
                .tls
                .connect(name, stream)
                .await
                .map_err(|e| HttpError::Tls(e.to_string()))?;
            self.exchange(tls, uri, headers).await
        } else {
            self.exchange(stream, uri, headers).await
        }?;
        Ok((once, peer))
    }

    /// Resolves `host` and connects to the first address that accepts; returns the stream
    /// and that address.
    async fn connect(
        &self,
        uri: &Uri,
        host: &str,
        port: u16,
        hop: Hop,
    ) -> Result<(N::Stream, IpAddr), HttpError> {
        let addrs = self.addresses(uri, host, port, hop).await?;
        let mut last = HttpError::NoAddress(host.to_owned());
        for addr in addrs {
            match self.net.connect(addr).await {
                Ok(s) => return Ok((s, addr.ip())),
                Err(e) => last = connect_error(&e, host),
            }
        }
        Err(last)
    }

    async fn exchange<S>(
        &self,
        io: S,
        uri: &Uri,
        headers: &[(&str, &str)],
    ) -> Result<Once, HttpError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        // The connection task is aborted when this exchange ends, whatever happens.
        let (resp, _conn) = send_get(io, uri, headers, "gzip").await?;
        let (parts, body) = resp.into_parts();
        let status = parts.status.as_u16();
        let limit = self.config.max_body;

        if parts.status.is_redirection() && status != 304 {
            let location = parts
                .headers
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or(HttpError::BadRedirect)?
                .to_owned();
            return Ok(Once {
                response: Response {
                    status,
                    content_type: None,
                    body: Bytes::new(),
                    url: uri.to_string(),
                },
                location: Some(location),
            });
        }

        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(HttpError::TooLarge { limit });
        }
        let body = Limited::new(body, limit)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    HttpError::TooLarge { limit }
                } else if let Some(h) = e.downcast_ref::<hyper::Error>() {
                    hyper_error(h)
                } else {
                    HttpError::Protocol(e.to_string())
                }
            })?
            .to_bytes();
        let gzip = parts
            .headers
            .get(header::CONTENT_ENCODING)
            .is_some_and(is_gzip);
        let body = if gzip { gunzip(&body, limit)? } else { body };
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Once {
            response: Response {
                status,
                content_type,
                body,
                url: uri.to_string(),
            },
            location: None,
        })
    }
}

struct Once {
    response: Response,
    location: Option<String>,
}

/// Time bounds of a streamed GET (rain's `webseed-*-timeout` keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamTimeouts {
    /// TCP connect, per address tried (`webseed-dial-timeout`).
    pub connect: Duration,
    /// TLS handshake (`webseed-tls-handshake-timeout`).
    pub tls: Duration,
    /// From the request to the response headers (`webseed-response-header-timeout`).
    pub headers: Duration,
    /// Longest silence while reading the body (`webseed-response-body-read-timeout`).
    pub body_idle: Duration,
}

/// A response whose body is read chunk by chunk ([`Streamed::chunk`]). Dropping it closes
/// the connection.
pub struct Streamed {
    /// The status code.
    pub status: u16,
    /// The response headers.
    pub headers: http::HeaderMap,
    body: hyper::body::Incoming,
    idle: Duration,
    _conn: AbortOnDrop,
}

impl fmt::Debug for Streamed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Streamed")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl Streamed {
    /// The next chunk of the body as hyper received it (no copy), `None` at its end. Fails
    /// with [`HttpError::Timeout`] after the idle bound without data.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, HttpError> {
        loop {
            let frame = tokio::time::timeout(self.idle, self.body.frame())
                .await
                .map_err(|_| HttpError::Timeout)?;
            match frame {
                None => return Ok(None),
                Some(Err(e)) => return Err(hyper_error(&e)),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data()
                        && !data.is_empty()
                    {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }
}

enum Opened {
    Response(Streamed),
    Redirect(String),
}

impl<N: Network> HttpClient<N> {
    /// GETs `url` with `headers` and returns once the response headers are in, following
    /// redirects (at most [`HttpConfig::max_redirects`]); the body is then read with
    /// [`Streamed::chunk`]. No compression is asked for. Each step is bounded by `t`; host
    /// resolution by [`HttpConfig::resolve_timeout`]. A response of any status is returned.
    /// The SSRF rules of `purpose` apply.
    pub async fn get_streamed(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        t: StreamTimeouts,
        purpose: Purpose,
    ) -> Result<Streamed, HttpError> {
        let mut uri = parse_url(url)?;
        let mut redirects = 0;
        let mut hop = Hop::first(purpose);
        loop {
            let (opened, peer) = self.open_once(&uri, headers, t, hop).await?;
            hop.origin.get_or_insert(peer);
            match opened {
                Opened::Response(r) => return Ok(r),
                Opened::Redirect(location) => {
                    if redirects >= self.config.max_redirects {
                        return Err(HttpError::TooManyRedirects(self.config.max_redirects));
                    }
                    redirects += 1;
                    uri = resolve_location(&uri, &location).ok_or(HttpError::BadRedirect)?;
                }
            }
        }
    }

    async fn open_once(
        &self,
        uri: &Uri,
        headers: &[(&str, &str)],
        t: StreamTimeouts,
        hop: Hop,
    ) -> Result<(Opened, IpAddr), HttpError> {
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            other => return Err(HttpError::UnsupportedScheme(other.unwrap_or("").to_owned())),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| HttpError::InvalidUrl(uri.to_string()))?;
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let (stream, peer) = self.connect_within(uri, host, port, t.connect, hop).await?;
        let opened = if https {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let name = ServerName::try_from(bare.to_owned())
                .map_err(|e| HttpError::InvalidUrl(format!("{host}: {e}")))?;
            let tls = tokio::time::timeout(t.tls, self.tls.connect(name, stream))
                .await
                .map_err(|_| HttpError::Timeout)?
                .map_err(|e| HttpError::Tls(e.to_string()))?;
            self.open_on(tls, uri, headers, t).await
        } else {
            self.open_on(stream, uri, headers, t).await
        }?;
        Ok((opened, peer))
    }

    /// Resolves `host` and connects to the first address that accepts, each attempt within
    /// `limit`; returns the stream and that address.
    async fn connect_within(
        &self,
        uri: &Uri,
        host: &str,
        port: u16,
        limit: Duration,
        hop: Hop,
    ) -> Result<(N::Stream, IpAddr), HttpError> {
        let addrs = self.addresses(uri, host, port, hop).await?;
        let mut last = HttpError::NoAddress(host.to_owned());
        for addr in addrs {
            match tokio::time::timeout(limit, self.net.connect(addr)).await {
                Ok(Ok(s)) => return Ok((s, addr.ip())),
                Ok(Err(e)) => last = connect_error(&e, host),
                Err(_) => last = HttpError::Timeout,
            }
        }
        Err(last)
    }

    async fn open_on<S>(
        &self,
        io: S,
        uri: &Uri,
        headers: &[(&str, &str)],
        t: StreamTimeouts,
    ) -> Result<Opened, HttpError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let exchange = send_get(io, uri, headers, "identity");
        let (resp, conn) = tokio::time::timeout(t.headers, exchange)
            .await
            .map_err(|_| HttpError::Timeout)??;
        let (parts, body) = resp.into_parts();
        if parts.status.is_redirection() && parts.status.as_u16() != 304 {
            let location = parts
                .headers
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or(HttpError::BadRedirect)?
                .to_owned();
            return Ok(Opened::Redirect(location));
        }
        Ok(Opened::Response(Streamed {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
            idle: t.body_idle,
            _conn: conn,
        }))
    }
}

/// Aborts a spawned task when dropped.
/// Sends one `GET` of `uri` on `io` asking for `encoding`; returns the response head and the
/// task driving the connection, aborted when dropped.
async fn send_get<S>(
    io: S,
    uri: &Uri,
    headers: &[(&str, &str)],
    encoding: &'static str,
) -> Result<(http::Response<hyper::body::Incoming>, AbortOnDrop), HttpError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| hyper_error(&e))?;
    let conn = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let authority = uri.authority().map_or("", |a| a.as_str());
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let mut req = http::Request::builder()
        .method(http::Method::GET)
        .uri(path)
        .header(header::HOST, authority)
        .header(header::ACCEPT_ENCODING, encoding)
        .header(header::CONNECTION, "close");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Empty::<Bytes>::new())
        .map_err(|e| HttpError::InvalidUrl(e.to_string()))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| hyper_error(&e))?;
    Ok((resp, conn))
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Resolves `host` (a name, an IPv4 literal or a bracketed IPv6 literal) through `net`,
/// within `timeout`. IPv4 and IPv6 addresses are both returned.
pub(crate) async fn resolve<N: Network>(
    net: &N,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, HttpError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let query = format!("{host}:{port}");
    let addrs = match tokio::time::timeout(timeout, net.resolve(&query)).await {
        Err(_) => return Err(HttpError::Timeout),
        Ok(Err(_)) => return Err(HttpError::HostNotFound(host.to_owned())),
        Ok(Ok(a)) => a,
    };
    if addrs.is_empty() {
        return Err(HttpError::NoAddress(host.to_owned()));
    }
    Ok(addrs)
}

fn connect_error(e: &io::Error, host: &str) -> HttpError {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => HttpError::Refused,
        io::ErrorKind::HostUnreachable => HttpError::NoRoute(host.to_owned()),
        io::ErrorKind::NetworkUnreachable => HttpError::NetworkUnreachable(host.to_owned()),
        io::ErrorKind::TimedOut => HttpError::Timeout,
        _ => HttpError::Io(e.to_string()),
    }
}

fn hyper_error(e: &hyper::Error) -> HttpError {
    if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
        HttpError::Closed
    } else if e.is_timeout() {
        HttpError::Timeout
    } else if e.is_parse() || e.is_parse_status() {
        HttpError::Protocol(e.to_string())
    } else {
        // Reset connections and the like.
        let io = std::error::Error::source(e).and_then(|s| s.downcast_ref::<io::Error>());
        match io {
            Some(io)
                if matches!(
                    io.kind(),
                    io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::BrokenPipe
                        | io::ErrorKind::UnexpectedEof
                ) =>
            {
                HttpError::Closed
            }
            _ => HttpError::Protocol(e.to_string()),
        }
    }
}

fn is_gzip(v: &HeaderValue) -> bool {
    v.to_str()
        .is_ok_and(|s| s.split(',').any(|p| p.trim().eq_ignore_ascii_case("gzip")))
}

/// Decompresses a gzip body, at most `limit` bytes of output.
pub(crate) fn gunzip(body: &[u8], limit: usize) -> Result<Bytes, HttpError> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| HttpError::Gzip)?;
    if out.len() > limit {
        return Err(HttpError::TooLarge { limit });
    }
    Ok(Bytes::from(out))
}

/// Parses an absolute http(s) URL.
pub(crate) fn parse_url(url: &str) -> Result<Uri, HttpError> {
    let uri: Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| HttpError::InvalidUrl(format!("{url}: {e}")))?;
    if uri.scheme().is_none() || uri.host().is_none_or(str::is_empty) {
        return Err(HttpError::InvalidUrl(url.to_owned()));
    }
    Ok(uri)
}

/// The target of a redirect: absolute, scheme-relative, absolute-path or relative-path.
fn resolve_location(base: &Uri, location: &str) -> Option<Uri> {
    let location = location.trim();
    if location.is_empty() {
        return None;
    }
    let scheme = base.scheme_str()?;
    let authority = base.authority()?.as_str();
    let target = if location.contains("://") {
        location.to_owned()
    } else if let Some(rest) = location.strip_prefix("//") {
        format!("{scheme}://{rest}")
    } else if location.starts_with('/') {
        format!("{scheme}://{authority}{location}")
    } else {
        let path = base.path();
        let dir = &path[..=path.rfind('/').unwrap_or(0)];
        let dir = if dir.is_empty() { "/" } else { dir };
        format!("{scheme}://{authority}{dir}{location}")
    };
    let uri: Uri = target.parse().ok()?;
    matches!(uri.scheme_str(), Some("http" | "https")).then_some(uri)
}

fn tls_config(verify: bool) -> ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    if verify {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth()
    }
}

/// Accepts any certificate (`tracker-http-verify-tls: false`), but still checks handshake
/// signatures so the connection is at least consistent.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_targets() {
        let base: Uri = "http://t.example:8080/a/announce?x=1".parse().unwrap();
        let r = |l: &str| resolve_location(&base, l).map(|u| u.to_string());
        assert_eq!(
            r("https://o.example/x").as_deref(),
            Some("https://o.example/x")
        );
        assert_eq!(r("//o.example/y").as_deref(), Some("http://o.example/y"));
        assert_eq!(r("/b?c=d").as_deref(), Some("http://t.example:8080/b?c=d"));
        assert_eq!(r("next").as_deref(), Some("http://t.example:8080/a/next"));
        assert_eq!(r(""), None);
        assert_eq!(r("ftp://o.example/"), None);
    }

    #[test]
    fn gzip_is_bounded() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&[b'a'; 1000]).unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(gunzip(&gz, 1000).unwrap().len(), 1000);
        assert_eq!(gunzip(&gz, 999), Err(HttpError::TooLarge { limit: 999 }));
        assert_eq!(gunzip(b"not gzip", 10), Err(HttpError::Gzip));
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// R38: a global origin may not be redirected to loopback, private, link-local or
    /// unique-local addresses (IPv4-mapped forms included); other combinations pass.
    #[test]
    fn ssrf_redirect_rule() {
        let global = ip("93.184.216.34");
        for local in [
            "127.0.0.1",
            "127.1.2.3",
            "192.168.1.1",
            "10.0.0.1",
            "172.16.5.4",
            "169.254.169.254",
            "0.0.0.0",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:192.168.0.1",
        ] {
            assert!(is_local(ip(local)), "{local}");
            assert!(!redirect_allowed(global, ip(local)), "{global} -> {local}");
            assert!(
                !redirect_allowed(ip("2606:2800:220:1::1"), ip(local)),
                "v6 global -> {local}"
            );
        }
        for other in [
            "1.1.1.1",
            "172.32.0.1",
            "2606:2800:220:1::1",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_local(ip(other)), "{other}");
            assert!(redirect_allowed(global, ip(other)), "{global} -> {other}");
        }
        // A local origin may go anywhere (a LAN tracker moving to another LAN host).
        assert!(redirect_allowed(ip("127.0.0.1"), ip("127.0.0.1")));
        assert!(redirect_allowed(ip("192.168.1.1"), ip("10.0.0.1")));
        assert!(redirect_allowed(ip("10.0.0.1"), global));

        // Through a hop: the first hop has no origin, the redirected one has.
        let uri: Uri = "http://h/announce".parse().unwrap();
        let first = Hop::first(Purpose::Other);
        assert_eq!(first.refusal(&uri, ip("127.0.0.1")), None);
        let redirected = Hop {
            origin: Some(global),
            ..first
        };
        let why = redirected.refusal(&uri, ip("10.0.0.1")).unwrap();
        assert!(
            why.contains("93.184.216.34") && why.contains("10.0.0.1"),
            "{why}"
        );
        assert_eq!(redirected.refusal(&uri, ip("1.1.1.1")), None);
    }

    /// R38: a loopback tracker needs a path ending in `/announce` (judged on the tracker's
    /// URL, so its scrape passes too); a LAN web seed may not have a query string.
    #[test]
    fn ssrf_tracker_and_webseed_rules() {
        assert_eq!(
            Purpose::tracker("http://127.0.0.1:1/announce?passkey=x"),
            Purpose::Tracker {
                announce_path: true
            }
        );
        for url in [
            "http://127.0.0.1:1/",
            "http://127.0.0.1:1/admin",
            "nonsense",
        ] {
            assert_eq!(
                Purpose::tracker(url),
                Purpose::Tracker {
                    announce_path: false
                },
                "{url}"
            );
        }
        assert!(!loopback_tracker_allowed(false, ip("127.0.0.1")));
        assert!(!loopback_tracker_allowed(false, ip("::1")));
        assert!(!loopback_tracker_allowed(false, ip("::ffff:127.0.0.1")));
        assert!(loopback_tracker_allowed(true, ip("127.0.0.1")));
        assert!(loopback_tracker_allowed(false, ip("192.168.1.1")));
        assert!(loopback_tracker_allowed(false, ip("93.184.216.34")));

        assert!(!webseed_allowed(true, ip("192.168.1.1")));
        assert!(!webseed_allowed(true, ip("127.0.0.1")));
        assert!(webseed_allowed(false, ip("192.168.1.1")));
        assert!(webseed_allowed(true, ip("93.184.216.34")));

        let scrape: Uri = "http://127.0.0.1:1/scrape?info_hash=x".parse().unwrap();
        let tracker = |announce_path| Hop::first(Purpose::Tracker { announce_path });
        assert_eq!(tracker(true).refusal(&scrape, ip("127.0.0.1")), None);
        let why = tracker(false).refusal(&scrape, ip("127.0.0.1")).unwrap();
        assert!(why.contains("/announce"), "{why}");
        let q: Uri = "http://lan/f.bin?token=1".parse().unwrap();
        let plain: Uri = "http://lan/f.bin".parse().unwrap();
        let ws = Hop::first(Purpose::Webseed);
        assert!(ws.refusal(&q, ip("10.1.1.1")).unwrap().contains("query"));
        assert_eq!(ws.refusal(&plain, ip("10.1.1.1")), None);
        assert_eq!(ws.refusal(&q, ip("93.184.216.34")), None);
    }

    #[test]
    fn urls() {
        assert!(parse_url("http://h/announce").is_ok());
        assert!(parse_url("/announce").is_err());
        assert!(parse_url("http:///x").is_err());
    }
}

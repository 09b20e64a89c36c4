//! HTTP checks in front of the JSON-RPC handler: what keeps a web page in a browser, or
//! anyone without the token, from driving the daemon.
//!
//! - `Host` must name the server by IP literal or `localhost`: a DNS-rebinding page reaches
//!   us under its own host name and is refused (403).
//! - `Accept`, when present, must allow JSON (rain requires `application/json`; `*/*` is
//!   accepted too). `Content-Type: application/json` is checked by jsonrpsee itself (415),
//!   which also means a browser cannot post without a CORS preflight, and we never answer
//!   preflights.
//! - With `rpc-token` set, `Authorization: Bearer <token>` is required (401). A source that
//!   sends [`MAX_TOKEN_FAILURES`] wrong or missing tokens within [`TOKEN_FAILURE_WINDOW`] is
//!   locked out (429, even with the right token) until that window ends; a source is one
//!   IPv4 address or one IPv6 /64.
//! - `/move-torrent` (multipart, not JSON) gets the Host and token checks, needs
//!   `Content-Type: multipart/form-data` (415) and refuses anything a browser sent (`Origin`
//!   or `Sec-Fetch-*` headers, 403): a page could post such a form without a preflight.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{HeaderMap, StatusCode, header};
use jsonrpsee::core::BoxError;
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};

use super::listen::RemoteAddr;

/// Wrong or missing tokens a source may send within [`TOKEN_FAILURE_WINDOW`] before it is
/// locked out.
pub const MAX_TOKEN_FAILURES: u32 = 5;
/// The lockout window, counted from a source's first failure in it.
pub const TOKEN_FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Sources whose failures are tracked at once; when the table is full, new sources share
/// one entry (and so one lockout), so a flood of addresses cannot grow it without bound.
const MAX_TRACKED_SOURCES: usize = 4096;

/// The checks' settings.
#[derive(Debug, Clone, Default)]
pub struct GuardLayer {
    token: Option<Arc<str>>,
    lockout: Arc<Lockout>,
}

impl GuardLayer {
    /// Requires `token` as a bearer token when it is not empty.
    pub fn new(token: &str) -> Self {
        GuardLayer {
            token: (!token.is_empty()).then(|| Arc::from(token)),
            lockout: Arc::default(),
        }
    }

    /// Why a request is refused, if it is: the lockout first (no token is even compared for a
    /// locked-out source), then the route's checks; a 401 counts against `peer`.
    fn check(
        &self,
        path: &str,
        headers: &HeaderMap,
        peer: IpAddr,
        now: Instant,
    ) -> Option<(StatusCode, &'static str)> {
        if self.token.is_some() && self.lockout.locked(peer, now) {
            return Some((
                StatusCode::TOO_MANY_REQUESTS,
                "too many wrong RPC tokens; try again later",
            ));
        }
        let refused = if path == super::move_torrent::MOVE_TORRENT_PATH {
            self.refuse_move(headers)
        } else {
            self.refuse(headers)
        };
        if refused.is_some_and(|(status, _)| status == StatusCode::UNAUTHORIZED) {
            self.lockout.record_failure(peer, now);
        }
        refused
    }

    /// Why a request with these headers is refused, if it is.
    fn refuse(&self, headers: &HeaderMap) -> Option<(StatusCode, &'static str)> {
        if let Some(r) = self.refuse_stranger(headers) {
            return Some(r);
        }
        let accept = headers.get(header::ACCEPT).and_then(|h| h.to_str().ok());
        if !accept.is_none_or(accepts_json) {
            return Some((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Accept must allow application/json",
            ));
        }
        None
    }

    /// Why a `/move-torrent` request is refused, if it is: the Host and token checks, and
    /// no browser. A multipart POST is a "simple" cross-origin request a page can send
    /// without preflight, so requests carrying a browser's `Origin` or `Sec-Fetch-*` headers
    /// are refused (rain's own sender, Go's HTTP client, sends neither).
    fn refuse_move(&self, headers: &HeaderMap) -> Option<(StatusCode, &'static str)> {
        if let Some(r) = self.refuse_stranger(headers) {
            return Some(r);
        }
        if headers.contains_key(header::ORIGIN)
            || headers.contains_key("sec-fetch-site")
            || headers.contains_key("sec-fetch-mode")
        {
            return Some((StatusCode::FORBIDDEN, "browser requests not allowed"));
        }
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        let media = content_type.split(';').next().unwrap_or_default().trim();
        if !media.eq_ignore_ascii_case("multipart/form-data") {
            return Some((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be multipart/form-data",
            ));
        }
        None
    }

    /// The Host and token checks every route shares.
    fn refuse_stranger(&self, headers: &HeaderMap) -> Option<(StatusCode, &'static str)> {
        if !host_allowed(headers.get(header::HOST).and_then(|h| h.to_str().ok())) {
            return Some((StatusCode::FORBIDDEN, "host not allowed"));
        }
        if let Some(token) = &self.token {
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.strip_prefix("Bearer "));
            if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
                return Some((StatusCode::UNAUTHORIZED, "missing or wrong RPC token"));
            }
        }
        None
    }
}

/// `Host` is an IP literal (with or without port) or `localhost`.
fn host_allowed(host: Option<&str>) -> bool {
    let Some(host) = host else {
        return false;
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok()
}

fn accepts_json(accept: &str) -> bool {
    accept.split(',').any(|item| {
        let media = item.split(';').next().unwrap_or_default().trim();
        ["application/json", "application/*", "*/*"]
            .iter()
            .any(|m| media.eq_ignore_ascii_case(m))
    })
}

/// Failed token attempts per source: (start of its window, failures in it).
#[derive(Debug, Default)]
struct Lockout {
    sources: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

/// Sources that share a lockout once the table is full.
const OVERFLOW: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

impl Lockout {
    fn locked(&self, peer: IpAddr, now: Instant) -> bool {
        let sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        let key = source(peer);
        let entry = match sources.get(&key) {
            Some(e) => Some(e),
            None if sources.len() >= MAX_TRACKED_SOURCES => sources.get(&OVERFLOW),
            None => None,
        };
        entry.is_some_and(|&(start, failures)| {
            failures >= MAX_TOKEN_FAILURES && now < start + TOKEN_FAILURE_WINDOW
        })
    }

    fn record_failure(&self, peer: IpAddr, now: Instant) {
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        let mut key = source(peer);
        if !sources.contains_key(&key) && sources.len() >= MAX_TRACKED_SOURCES {
            sources.retain(|_, (start, _)| now < *start + TOKEN_FAILURE_WINDOW);
            if sources.len() >= MAX_TRACKED_SOURCES {
                key = OVERFLOW;
            }
        }
        let entry = sources.entry(key).or_insert((now, 0));
        if now >= entry.0 + TOKEN_FAILURE_WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

/// The unit a lockout applies to: an IPv4 address (also when mapped into IPv6) or an IPv6
/// /64, since one host usually holds a whole /64.
fn source(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 @ IpAddr::V4(_) => v4,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl<S> tower::Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`GuardLayer`] wraps around the RPC handler.
#[derive(Debug, Clone)]
pub struct Guard<S> {
    inner: S,
    layer: GuardLayer,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, B> tower::Service<HttpRequest<B>> for Guard<S>
where
    S: tower::Service<HttpRequest<B>, Response = HttpResponse>,
    S::Error: Into<BoxError> + 'static,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = BoxFuture<Result<HttpResponse, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: HttpRequest<B>) -> Self::Future {
        // Requests always come through our accept loop, which names the caller.
        let peer = request
            .extensions()
            .get::<RemoteAddr>()
            .map_or(OVERFLOW, |a| a.0.ip());
        let refused = self.layer.check(
            request.uri().path(),
            request.headers(),
            peer,
            Instant::now(),
        );
        if let Some((status, why)) = refused {
            tracing::debug!(%status, why, %peer, "RPC request refused");
            let response = http::Response::builder()
                .status(status)
                .header(header::CONTENT_TYPE, "text/plain")
                .body(HttpBody::from(why))
                .unwrap_or_else(|_| http::Response::new(HttpBody::empty()));
            return Box::pin(async move { Ok(response) });
        }
        let fut = self.inner.call(request);
        Box::pin(async move { fut.await.map_err(Into::into) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    const JSON: (&str, &str) = ("accept", "application/json");

    #[test]
    fn hosts_must_be_ip_literals_or_localhost() {
        let g = GuardLayer::new("");
        for ok in [
            "127.0.0.1:7246",
            "localhost:7246",
            "[::1]:7246",
            "192.0.2.1",
            "LOCALHOST",
        ] {
            assert_eq!(g.refuse(&headers(&[("host", ok), JSON])), None, "{ok}");
        }
        for bad in [
            "evil.example:7246",
            "evil.example",
            "127.0.0.1.evil.example:80",
        ] {
            assert_eq!(
                g.refuse(&headers(&[("host", bad), JSON])).map(|r| r.0),
                Some(StatusCode::FORBIDDEN),
                "{bad}"
            );
        }
        assert!(g.refuse(&headers(&[JSON])).is_some(), "no Host at all");
    }

    #[test]
    fn token_is_required_when_configured() {
        let g = GuardLayer::new("s3cret");
        let host = ("host", "127.0.0.1:7246");
        let status = |h: &[(&'static str, &str)]| g.refuse(&headers(h)).map(|r| r.0);
        assert_eq!(status(&[host, JSON]), Some(StatusCode::UNAUTHORIZED));
        assert_eq!(
            status(&[host, JSON, ("authorization", "Bearer wrong")]),
            Some(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            status(&[host, JSON, ("authorization", "Bearer s3cret")]),
            None
        );
    }

    #[test]
    fn move_torrent_needs_host_token_multipart_and_no_browser() {
        let g = GuardLayer::new("s3cret");
        let status = |h: &[(&'static str, &str)]| g.refuse_move(&headers(h)).map(|r| r.0);
        let host = ("host", "127.0.0.1:7246");
        let auth = ("authorization", "Bearer s3cret");
        let form = ("content-type", "multipart/form-data; boundary=x");
        assert_eq!(status(&[host, auth, form]), None);
        assert_eq!(status(&[host, form]), Some(StatusCode::UNAUTHORIZED));
        assert_eq!(
            status(&[("host", "evil.example"), auth, form]),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            status(&[host, auth, form, ("origin", "http://evil.example")]),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            status(&[host, auth, form, ("sec-fetch-mode", "navigate")]),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            status(&[host, auth, ("content-type", "application/json")]),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
    }

    #[test]
    fn wrong_tokens_lock_a_source_out_for_a_window() {
        let g = GuardLayer::new("s3cret");
        let host = ("host", "127.0.0.1:7246");
        let wrong = headers(&[host, JSON, ("authorization", "Bearer guess")]);
        let right = headers(&[host, JSON, ("authorization", "Bearer s3cret")]);
        let status = |h: &HeaderMap, peer: &str, now: Instant| {
            g.check("/", h, peer.parse().unwrap(), now).map(|r| r.0)
        };
        let t0 = Instant::now();
        for i in 0..MAX_TOKEN_FAILURES {
            assert_eq!(
                status(&wrong, "192.0.2.1", t0),
                Some(StatusCode::UNAUTHORIZED),
                "attempt {i}"
            );
        }
        let later = t0 + TOKEN_FAILURE_WINDOW / 2;
        assert_eq!(
            status(&wrong, "192.0.2.1", later),
            Some(StatusCode::TOO_MANY_REQUESTS)
        );
        assert_eq!(
            status(&right, "192.0.2.1", later),
            Some(StatusCode::TOO_MANY_REQUESTS),
            "locked out even with the right token: no more guesses"
        );
        assert_eq!(
            status(&right, "::ffff:192.0.2.1", later),
            Some(StatusCode::TOO_MANY_REQUESTS),
            "IPv4-mapped is the same source"
        );
        assert_eq!(status(&right, "192.0.2.2", later), None, "other sources");
        // The window ends: the source may try again.
        let after = t0 + TOKEN_FAILURE_WINDOW;
        assert_eq!(status(&right, "192.0.2.1", after), None);
        assert_eq!(
            status(&wrong, "192.0.2.1", after),
            Some(StatusCode::UNAUTHORIZED)
        );
        // One IPv6 /64 is one source.
        for i in 0..MAX_TOKEN_FAILURES {
            let peer = format!("2001:db8::{i:x}");
            assert_eq!(status(&wrong, &peer, t0), Some(StatusCode::UNAUTHORIZED));
        }
        assert_eq!(
            status(&right, "2001:db8::ffff:1", t0),
            Some(StatusCode::TOO_MANY_REQUESTS)
        );
        assert_eq!(status(&right, "2001:db8:0:1::1", t0), None);
        // Without a token there is nothing to guess and no lockout.
        let open = GuardLayer::new("");
        for _ in 0..2 * MAX_TOKEN_FAILURES {
            assert_eq!(
                open.check("/", &wrong, "192.0.2.1".parse().unwrap(), t0),
                None
            );
        }
    }

    #[test]
    fn a_full_source_table_shares_one_lockout() {
        let lockout = Lockout::default();
        let t0 = Instant::now();
        for i in 0..MAX_TRACKED_SOURCES as u32 {
            lockout.record_failure(IpAddr::V4((0x0a00_0000u32 + i).into()), t0);
        }
        let stranger = |i: u32| IpAddr::V4((0xc000_0200u32 + i).into());
        for i in 0..MAX_TOKEN_FAILURES {
            assert!(!lockout.locked(stranger(i), t0));
            lockout.record_failure(stranger(i), t0);
        }
        assert!(lockout.locked(stranger(99), t0), "untracked sources share");
        assert!(!lockout.locked(IpAddr::V4(0x0a00_0000u32.into()), t0));
        assert!(lockout.sources.lock().unwrap().len() <= MAX_TRACKED_SOURCES + 1);
        // Once the old entries expire, a new source gets its own entry again.
        let later = t0 + TOKEN_FAILURE_WINDOW;
        lockout.record_failure(stranger(100), later);
        assert!(!lockout.locked(stranger(100), later));
    }

    #[test]
    fn accept_must_allow_json() {
        let g = GuardLayer::new("");
        let host = ("host", "localhost");
        let status = |a: &str| g.refuse(&headers(&[host, ("accept", a)])).map(|r| r.0);
        assert_eq!(status("application/json"), None);
        assert_eq!(status("text/html, */*;q=0.8"), None);
        assert_eq!(
            status("text/html"),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        assert_eq!(
            g.refuse(&headers(&[host])),
            None,
            "no Accept means anything"
        );
    }
}

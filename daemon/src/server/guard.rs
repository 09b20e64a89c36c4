//! HTTP checks in front of the JSON-RPC handler: what keeps a web page in a browser, or
//! anyone without the token, from driving the daemon.
//!
//! - `Host` must name the server by IP literal or `localhost`: a DNS-rebinding page reaches
//!   us under its own host name and is refused (403).
//! - `Accept`, when present, must allow JSON (rain requires `application/json`; `*/*` is
//!   accepted too). `Content-Type: application/json` is checked by jsonrpsee itself (415),
//!   which also means a browser cannot post without a CORS preflight, and we never answer
//!   preflights.
//! - With `rpc-token` set, `Authorization: Bearer <token>` is required (401).
//! - `/move-torrent` (multipart, not JSON) gets the Host and token checks, needs
//!   `Content-Type: multipart/form-data` (415) and refuses anything a browser sent (`Origin`
//!   or `Sec-Fetch-*` headers, 403): a page could post such a form without a preflight.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, StatusCode, header};
use jsonrpsee::core::BoxError;
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};

/// The checks' settings.
#[derive(Debug, Clone, Default)]
pub struct GuardLayer {
    token: Option<Arc<str>>,
}

impl GuardLayer {
    /// Requires `token` as a bearer token when it is not empty.
    pub fn new(token: &str) -> Self {
        GuardLayer {
            token: (!token.is_empty()).then(|| Arc::from(token)),
        }
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
        let refused = if request.uri().path() == super::move_torrent::MOVE_TORRENT_PATH {
            self.layer.refuse_move(request.headers())
        } else {
            self.layer.refuse(request.headers())
        };
        if let Some((status, why)) = refused {
            tracing::debug!(%status, why, "RPC request refused");
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

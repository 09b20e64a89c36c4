//! [`TrackerClient`]: announces and scrapes over HTTP(S) and UDP, one per session.
//!
//! The protocol (URLs, reply parsing, the UDP transaction machine) is
//! [`rain_proto::tracker`]'s; this is the transport. Errors come back as [`TrackerError`]s
//! worded like rain's tracker `Error` field ("timeout contacting tracker", "tracker refused the
//! connection", "tracker returned HTTP status: 404 message: …").

use rain_proto::InfoHash;
use rain_proto::rng::Seed;
use rain_proto::tracker::udp::{Reply, Request};
use rain_proto::tracker::{Announce, AnnounceReply, Event, ScrapeStats, TrackerError, http};

use crate::blocklist::BlocklistCell;
use crate::http::{HttpClient, HttpConfig, HttpError, Purpose, Response};
use crate::net::Network;
use crate::udp_tracker::{UdpTracker, UdpTrackerConfig};

/// Longest part of a `text/plain` error body quoted in the error message (rain: 100).
const MAX_QUOTED_BODY: usize = 100;

/// rain's user agent, `Rain/<version>`.
pub fn default_user_agent() -> String {
    format!("Rain/{}", env!("CARGO_PKG_VERSION"))
}

/// Tracker transport settings (rain's `tracker-*` config keys).
#[derive(Debug, Clone)]
pub struct TrackerConfig {
    /// HTTP: `tracker-http-timeout`, `tracker-http-max-response-size`,
    /// `tracker-http-verify-tls`, `dns-resolve-timeout`, `ssrf-mitigation` (a loopback HTTP
    /// tracker must have a path ending in `/announce`, and a global one may not redirect to a
    /// local address).
    pub http: HttpConfig,
    /// UDP bounds.
    pub udp: UdpTrackerConfig,
    /// User agent for public torrents: always `Rain/<version>`.
    pub user_agent: String,
    /// `tracker-http-private-user-agent`, for private torrents.
    pub private_user_agent: String,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            http: HttpConfig::default(),
            udp: UdpTrackerConfig::default(),
            user_agent: default_user_agent(),
            private_user_agent: default_user_agent(),
        }
    }
}

/// Announces and scrapes; cheap to clone (clones share the HTTP client and the UDP socket).
#[derive(Debug, Clone)]
pub struct TrackerClient<N: Network> {
    http: HttpClient<N>,
    blocklist: BlocklistCell,
    udp: UdpTracker<N>,
    user_agent: String,
    private_user_agent: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Udp,
}

fn scheme(url: &str) -> Result<Scheme, TrackerError> {
    let lower = url
        .get(..url.find("://").unwrap_or(0))
        .unwrap_or("")
        .to_ascii_lowercase();
    match lower.as_str() {
        "http" | "https" => Ok(Scheme::Http),
        "udp" => Ok(Scheme::Udp),
        _ => Err(TrackerError::UnsupportedUrl(url.to_owned())),
    }
}

impl<N: Network> TrackerClient<N> {
    /// A client connecting through `net`; `seed` (from the session seed) makes UDP
    /// transaction ids reproducible.
    pub fn new(net: N, config: TrackerConfig, seed: Seed) -> Self {
        let blocklist = BlocklistCell::default();
        TrackerClient {
            http: HttpClient::new(net.clone(), config.http).with_blocklist(blocklist.clone()),
            udp: UdpTracker::with_blocklist(net, config.udp, seed, blocklist.clone()),
            blocklist,
            user_agent: config.user_agent,
            private_user_agent: config.private_user_agent,
        }
    }

    /// The list of tracker IPs refused ("tracker IP is blocked"); the session replaces it
    /// when `blocklist-enabled-for-trackers` is set. Shared by clones.
    pub fn blocklist(&self) -> &BlocklistCell {
        &self.blocklist
    }

    /// The UDP side, e.g. to read its local address.
    pub fn udp(&self) -> &UdpTracker<N> {
        &self.udp
    }

    /// Announces `a` to the tracker at `url` (http, https or udp). `tracker_id` is the
    /// `tracker id` of an earlier reply (HTTP only); `private` selects the private user agent.
    pub async fn announce(
        &self,
        url: &str,
        a: &Announce,
        tracker_id: Option<&[u8]>,
        private: bool,
    ) -> Result<AnnounceReply, TrackerError> {
        match scheme(url)? {
            Scheme::Http => {
                let started = tokio::time::Instant::now();
                let r = self
                    .get(url, &http::announce_url(url, a, tracker_id), private)
                    .await?;
                let mut reply =
                    http::parse_announce(r.status, &r.body).map_err(|e| status_error(e, &r))?;
                if reply.seeders.is_none() && reply.leechers.is_none() && a.event != Event::Stopped
                {
                    // Half of what is left of the announce's time bound (the torrent task
                    // bounds the whole call by the same `tracker-http-timeout`), so a slow
                    // scrape never costs the announce its answer.
                    let left = self.http.config().timeout.saturating_sub(started.elapsed()) / 2;
                    let scrape = self.counts_from_scrape(url, &a.info_hash, private, &mut reply);
                    let _ = tokio::time::timeout(left, scrape).await;
                }
                Ok(reply)
            }
            Scheme::Udp => match self.udp.request(url, Request::Announce(a.clone())).await? {
                Reply::Announce(r) => Ok(r),
                Reply::Scrape(_) => Err(TrackerError::InvalidResponse(
                    "scrape reply to an announce".into(),
                )),
            },
        }
    }

    /// Scrapes one torrent's swarm counts (BEP 48; UDP action 2).
    pub async fn scrape(
        &self,
        url: &str,
        info_hash: &InfoHash,
        private: bool,
    ) -> Result<ScrapeStats, TrackerError> {
        match scheme(url)? {
            Scheme::Http => {
                let scrape = http::scrape_url(url, &[*info_hash]).ok_or_else(|| {
                    TrackerError::UnsupportedUrl(format!("tracker cannot scrape: {url}"))
                })?;
                let r = self.get(url, &scrape, private).await?;
                http::parse_scrape(r.status, &r.body, info_hash).map_err(|e| status_error(e, &r))
            }
            Scheme::Udp => match self.udp.request(url, Request::Scrape(*info_hash)).await? {
                Reply::Scrape(s) => Ok(s),
                Reply::Announce(_) => Err(TrackerError::InvalidResponse(
                    "announce reply to a scrape".into(),
                )),
            },
        }
    }

    /// Fills a reply's missing swarm counts from a scrape, so the tracker status still shows
    /// seeders and leechers when the tracker leaves `complete`/`incomplete` out of announce
    /// replies. Best effort: a tracker that cannot scrape keeps the counts unknown, and the
    /// announce's own result stands.
    async fn counts_from_scrape(
        &self,
        url: &str,
        info_hash: &InfoHash,
        private: bool,
        reply: &mut AnnounceReply,
    ) {
        if let Ok(s) = self.scrape(url, info_hash, private).await {
            reply.seeders = Some(s.seeders);
            reply.leechers = Some(s.leechers);
        }
    }

    /// GETs `request` (an announce or scrape URL) of the tracker at `tracker`, whose URL
    /// decides the SSRF path rule.
    async fn get(
        &self,
        tracker: &str,
        request: &str,
        private: bool,
    ) -> Result<Response, TrackerError> {
        let ua = if private {
            &self.private_user_agent
        } else {
            &self.user_agent
        };
        self.http
            .get_for(
                request,
                &[("User-Agent", ua.as_str())],
                Purpose::tracker(tracker),
            )
            .await
            .map_err(tracker_error)
    }
}

/// rain's error for a tracker whose IP is on the blocklist (`blocklist-enabled-for-trackers`).
pub fn blocked() -> TrackerError {
    TrackerError::Transport("tracker IP is blocked".into())
}

/// A status error quotes a `text/plain` body, as rain does.
fn status_error(e: TrackerError, r: &Response) -> TrackerError {
    match e {
        TrackerError::HttpStatus(code)
            if r.content_type
                .as_deref()
                .is_some_and(|t| t.trim_start().starts_with("text/plain")) =>
        {
            let text: String = String::from_utf8_lossy(&r.body)
                .chars()
                .take(MAX_QUOTED_BODY)
                .collect();
            TrackerError::Transport(format!(
                "tracker returned HTTP status: {code} message: {text}"
            ))
        }
        e => e,
    }
}

/// An HTTP transport failure in rain's words for trackers.
pub fn tracker_error(e: HttpError) -> TrackerError {
    let t = |s: String| TrackerError::Transport(s);
    match e {
        HttpError::InvalidUrl(u) | HttpError::UnsupportedScheme(u) => {
            TrackerError::UnsupportedUrl(u)
        }
        HttpError::HostNotFound(h) => t(format!("host not found: {h}")),
        HttpError::NoAddress(h) => t(format!("tracker has no address: {h}")),
        HttpError::Refused => t("tracker refused the connection".into()),
        HttpError::NoRoute(h) => t(format!("no route to host: {h}")),
        HttpError::NetworkUnreachable(h) => t(format!("network is unreachable: {h}")),
        HttpError::Timeout => TrackerError::Timeout,
        HttpError::Tls(_) => t("TLS handshake has failed".into()),
        HttpError::Closed => t("tracker closed the connection".into()),
        HttpError::Protocol(_) | HttpError::BadRedirect => t("invalid server response".into()),
        e @ (HttpError::TooLarge { .. } | HttpError::Gzip) => {
            TrackerError::InvalidResponse(e.to_string())
        }
        HttpError::TooManyRedirects(n) => t(format!("tracker redirected more than {n} times")),
        e @ HttpError::Io(_) => t(format!("unknown error in announce: {e}")),
        HttpError::Blocked => blocked(),
        e @ HttpError::Ssrf(_) => t(format!("tracker {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes() {
        assert_eq!(scheme("HTTP://x/announce"), Ok(Scheme::Http));
        assert_eq!(scheme("https://x/announce"), Ok(Scheme::Http));
        assert_eq!(scheme("udp://x:1"), Ok(Scheme::Udp));
        assert!(matches!(
            scheme("wss://x/"),
            Err(TrackerError::UnsupportedUrl(_))
        ));
        assert!(matches!(scheme("x"), Err(TrackerError::UnsupportedUrl(_))));
    }
}

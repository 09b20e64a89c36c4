//! The webseed transport (BEP 19): performs a torrent machine's
//! [`Action::WebseedRequest`](rain_proto::torrent::Action::WebseedRequest)s with the hyper
//! client of [`crate::http`] and streams the bodies back into the machine.
//!
//! - One task per request: a `GET` with `Range: bytes=a-b`, then the body chunk by chunk as
//!   hyper received it (no copy: the machine slices the chunks into blocks).
//! - `206 Partial Content` is read as is (a `Content-Range` that starts elsewhere is an
//!   error); `200 OK` means the server ignored `Range` and sends the whole file, so the first
//!   `file_offset` bytes are skipped (rain reads such a body as if it started at the offset,
//!   which stores the file's first bytes in the wrong place). Any other status fails.
//! - At most the requested length is delivered; a body that ends before it is
//!   [`WebseedError::ShortBody`]. Each step is bounded by the `webseed-*-timeout` keys
//!   ([`WebseedSettings`]); TLS is verified unless `webseed-verify-tls` is off.
//! - Flow control: at most [`MAX_CHUNKS_IN_FLIGHT`] chunks of one request wait in the torrent's
//!   inbox; reading the body pauses until the torrent task has taken them. This bounds the
//!   memory a fast server can fill, and the bytes thrown away when a range shrinks (a peer
//!   took its tail) and its request is cancelled.
//! - Cancelled requests are aborted; a torrent task dropping its request runner aborts all
//!   of its requests.
//!
//! - The session's download limit (`speed-limit-download`) is charged for each chunk before
//!   it is delivered, as for peer blocks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rain_proto::webseed::{RequestId, WebseedError, WebseedRequest};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::blocklist::BlocklistCell;
use crate::http::{HttpClient, HttpConfig, HttpError, Purpose, StreamTimeouts};
use crate::net::Network;
use crate::rate_limit::{RateLimiter, charge};
use crate::torrent_task::Input;

pub use rain_proto::webseed::{SourceState, WebseedStatus};

/// Redirects followed for one webseed request.
pub const MAX_REDIRECTS: usize = 5;

/// Body chunks of one request delivered to the torrent task and not yet processed.
pub const MAX_CHUNKS_IN_FLIGHT: usize = 4;

/// How webseed requests are made (rain's `webseed-*` keys; the scheduling keys go to the
/// torrent machine's [`WebseedConfig`](rain_proto::webseed::WebseedConfig)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebseedSettings {
    /// Connect, TLS, response-header and body-silence bounds.
    pub timeouts: StreamTimeouts,
    /// Host resolution (`dns-resolve-timeout`).
    pub resolve_timeout: Duration,
    /// Verify TLS certificates (`webseed-verify-tls`).
    pub verify_tls: bool,
    /// `ssrf-mitigation`: a web seed on a local address may not have a query string, and a
    /// global one may not redirect to a local address.
    pub ssrf_mitigation: bool,
}

impl Default for WebseedSettings {
    fn default() -> Self {
        let ten = Duration::from_secs(10);
        WebseedSettings {
            timeouts: StreamTimeouts {
                connect: ten,
                tls: ten,
                headers: ten,
                body_idle: ten,
            },
            resolve_timeout: Duration::from_secs(5),
            verify_tls: true,
            ssrf_mitigation: true,
        }
    }
}

/// What a request task tells its torrent task.
#[derive(Debug)]
pub(crate) enum Report {
    /// The next bytes of the body (already trimmed to the requested range); the permit is
    /// released once the torrent task has handed them to its machine.
    Data(RequestId, bytes::Bytes, OwnedSemaphorePermit),
    /// The request failed.
    Failed(RequestId, WebseedError),
}

/// The running webseed requests of one torrent.
pub(crate) struct Runner<N: Network> {
    net: N,
    settings: WebseedSettings,
    download_limit: Option<Arc<RateLimiter>>,
    /// The session's IP blocklist: rain refuses webseed hosts on it, always.
    blocklist: BlocklistCell,
    client: Option<HttpClient<N>>,
    running: BTreeMap<RequestId, JoinHandle<()>>,
}

impl<N: Network> std::fmt::Debug for Runner<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("settings", &self.settings)
            .field("running", &self.running.len())
            .finish_non_exhaustive()
    }
}

impl<N: Network> Runner<N> {
    /// No request running yet; the HTTP client is built at the first request.
    pub fn new(
        net: N,
        settings: WebseedSettings,
        download_limit: Option<Arc<RateLimiter>>,
        blocklist: BlocklistCell,
    ) -> Self {
        Runner {
            net,
            settings,
            download_limit,
            blocklist,
            client: None,
            running: BTreeMap::new(),
        }
    }

    /// Starts `request`; its body and its failure go to `inbox`.
    pub fn start(&mut self, request: WebseedRequest, inbox: mpsc::Sender<Input>) {
        self.running.retain(|_, h| !h.is_finished());
        let client = self
            .client
            .get_or_insert_with(|| {
                HttpClient::new(
                    self.net.clone(),
                    HttpConfig {
                        resolve_timeout: self.settings.resolve_timeout,
                        max_redirects: MAX_REDIRECTS,
                        verify_tls: self.settings.verify_tls,
                        ssrf_mitigation: self.settings.ssrf_mitigation,
                        ..HttpConfig::default()
                    },
                )
                .with_blocklist(self.blocklist.clone())
            })
            .clone();
        let timeouts = self.settings.timeouts;
        let id = request.id;
        let limit = self.download_limit.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = fetch(&client, timeouts, &request, &inbox, limit.as_deref()).await {
                let _ = inbox
                    .send(Input::Webseed(Report::Failed(request.id, e)))
                    .await;
            }
        });
        self.running.insert(id, task);
    }

    /// Aborts `request` if it still runs.
    pub fn cancel(&mut self, request: RequestId) {
        if let Some(h) = self.running.remove(&request) {
            h.abort();
        }
    }

    /// Aborts every request.
    pub fn cancel_all(&mut self) {
        for (_, h) in std::mem::take(&mut self.running) {
            h.abort();
        }
    }
}

impl<N: Network> Drop for Runner<N> {
    fn drop(&mut self) {
        self.cancel_all();
    }
}

/// Performs one request, delivering its body to `inbox`.
async fn fetch<N: Network>(
    client: &HttpClient<N>,
    timeouts: StreamTimeouts,
    req: &WebseedRequest,
    inbox: &mpsc::Sender<Input>,
    limit: Option<&RateLimiter>,
) -> Result<(), WebseedError> {
    let range = req.range_header();
    let mut resp = client
        .get_streamed(&req.url, &[("Range", &range)], timeouts, Purpose::Webseed)
        .await
        .map_err(|e| {
            if matches!(e, HttpError::Ssrf(_)) {
                // The machine's error has no room for the rule; the log says which.
                tracing::warn!(url = %req.url, "web seed {e}");
            }
            webseed_error(&e)
        })?;
    let mut skip = match resp.status {
        206 => {
            let start = resp
                .headers
                .get(http::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(content_range_start);
            if start.is_some_and(|s| s != req.file_offset) {
                return Err(WebseedError::BadRange);
            }
            0
        }
        // The whole file: read from its start, not as if it began at the offset.
        200 => req.file_offset,
        s => return Err(WebseedError::Status(s)),
    };
    let credit = std::sync::Arc::new(Semaphore::new(MAX_CHUNKS_IN_FLIGHT));
    let mut left = req.length;
    while left > 0 {
        let Some(mut chunk) = resp.chunk().await.map_err(|e| webseed_error(&e))? else {
            return Err(WebseedError::ShortBody);
        };
        if skip > 0 {
            let n = skip.min(chunk.len() as u64);
            let _ = chunk.split_to(n as usize);
            skip -= n;
            if chunk.is_empty() {
                continue;
            }
        }
        if chunk.len() as u64 > left {
            chunk.truncate(left as usize);
        }
        left -= chunk.len() as u64;
        charge(limit, chunk.len()).await;
        let Ok(permit) = credit.clone().acquire_owned().await else {
            return Ok(());
        };
        if inbox
            .send(Input::Webseed(Report::Data(req.id, chunk, permit)))
            .await
            .is_err()
        {
            // The torrent task is gone.
            return Ok(());
        }
    }
    Ok(())
}

/// The first byte of a `Content-Range: bytes a-b/len` value.
fn content_range_start(v: &str) -> Option<u64> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (a, _) = rest.split_once('-')?;
    a.trim().parse().ok()
}

/// The machine's view of a transport failure.
pub(crate) fn webseed_error(e: &HttpError) -> WebseedError {
    use std::io::ErrorKind;
    match e {
        HttpError::InvalidUrl(_) | HttpError::UnsupportedScheme(_) => WebseedError::InvalidUrl,
        HttpError::HostNotFound(_) | HttpError::NoAddress(_) => WebseedError::HostNotFound,
        HttpError::Refused => WebseedError::Connect(ErrorKind::ConnectionRefused),
        HttpError::NoRoute(_) => WebseedError::Connect(ErrorKind::HostUnreachable),
        HttpError::NetworkUnreachable(_) => WebseedError::Connect(ErrorKind::NetworkUnreachable),
        HttpError::Io(_) => WebseedError::Connect(ErrorKind::Other),
        HttpError::Timeout => WebseedError::Timeout,
        HttpError::Tls(_) => WebseedError::Tls,
        HttpError::Closed => WebseedError::Closed,
        HttpError::Blocked | HttpError::Ssrf(_) => {
            WebseedError::Connect(ErrorKind::PermissionDenied)
        }
        _ => WebseedError::Protocol,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parsing() {
        assert_eq!(content_range_start("bytes 100-199/1000"), Some(100));
        assert_eq!(content_range_start("bytes 0-0/*"), Some(0));
        assert_eq!(content_range_start("bytes */1000"), None);
        assert_eq!(content_range_start("items 1-2/3"), None);
    }
}

//! The session's IP blocklist (rain's `blocklist-*` keys, rain-behaviour §1.16): fetching it
//! from `blocklist-url`, keeping it in the resume database, refreshing it, and sharing the
//! parsed list with the torrent tasks and the tracker transport.
//!
//! Parsing and lookup are proto-core's ([`rain_proto::blocklist`]); this module only moves
//! bytes and decides which copy is current:
//! - At session start the stored copy is used when it was fetched from the same URL (rain's
//!   `blocklist-url-hash`) less than `blocklist-update-interval` ago. Otherwise the list is
//!   downloaded once, bounded by `blocklist-update-timeout` and `blocklist-max-response-size`
//!   (the session start waits at most [`STARTUP_WAIT`] for it); if that fails the stored copy
//!   of the same URL is used even when stale (a stale list protects better than none), and the
//!   failure is logged. rain instead retries forever before the session starts, so a dead URL
//!   hangs it (reference quirk 27).
//! - A background task then refreshes the list every `blocklist-update-interval`, retrying
//!   failed downloads with capped exponential backoff; until one succeeds the list in use
//!   stays.
//! - The body must come with `200 OK`; unlike rain, a body without `Content-Length`
//!   (chunked) is accepted too, since the size bound is enforced while reading.
//! - A body that is gzip (rain: `Content-Type: application/x-gzip`; here also recognised by
//!   its magic bytes) is decompressed within the same size bound. The raw decompressed body is
//!   stored with the fetch time (RFC 3339) and the SHA-1 of the URL, under rain's keys.
//! - A body with no valid rule (only bad lines) is refused and the previous list kept; bad
//!   lines in an otherwise valid list are skipped, as rain does.
//!
//! Where the list applies: torrent machines receive it as data
//! ([`rain_proto::torrent::BlocklistUse`]) for candidate addresses and accepted
//! connections; listeners also drop blocked connections at accept; the tracker transport
//! receives it through [`Announcer::set_blocklist`] and refuses blocked tracker IPs; webseed
//! hosts on blocked IPs are always refused, as in rain.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use rain_proto::blocklist::{Blocklist, BlocklistError, BlocklistLimits};
use rain_proto::torrent::BlocklistUse;
use sha1::{Digest, Sha1};

use crate::announce::Announcer;
use crate::blocking::BlockingMode;
use crate::http::{HttpClient, HttpConfig, HttpError};
use crate::net::Network;
use crate::resume::ResumeDb;

/// rain's `blocklist-max-response-size` default: the largest body (after decompression)
/// accepted from `blocklist-url`.
pub const DEFAULT_MAX_RESPONSE_SIZE: usize = 100 * 1024 * 1024;
/// Resume-database session key of the raw list (rain's).
pub const BLOCKLIST_KEY: &str = "blocklist";
/// Resume-database session key of the fetch time, RFC 3339 (rain's).
pub const TIMESTAMP_KEY: &str = "blocklist-timestamp";
/// Resume-database session key of the SHA-1 of the URL the list came from (rain's).
pub const URL_HASH_KEY: &str = "blocklist-url-hash";
/// First wait before retrying a failed refresh (rain's backoff starts near 0.5 s).
pub const RETRY_INITIAL: Duration = Duration::from_millis(500);
/// Longest wait between refresh retries (rain: 60 s).
pub const RETRY_MAX: Duration = Duration::from_secs(60);
/// Shortest refresh period whatever `blocklist-update-interval` says, so that a zero or tiny
/// interval cannot turn the refresher into a download loop.
pub const MIN_UPDATE_INTERVAL: Duration = Duration::from_secs(60);
/// Longest a session start waits for a first download (a server that never answers must not
/// hold up the torrents for `blocklist-update-timeout`); the refresher keeps trying after.
pub const STARTUP_WAIT: Duration = Duration::from_secs(10);

/// The `blocklist-*` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlocklistSettings {
    /// `blocklist-url`; empty disables the blocklist.
    pub url: String,
    /// `blocklist-update-interval`.
    pub update_interval: Duration,
    /// `blocklist-update-timeout`: bound on one download.
    pub update_timeout: Duration,
    /// `blocklist-max-response-size`.
    pub max_response_size: usize,
    /// `blocklist-enabled-for-trackers`.
    pub for_trackers: bool,
    /// `blocklist-enabled-for-outgoing-connections`.
    pub for_outgoing: bool,
    /// `blocklist-enabled-for-incoming-connections`.
    pub for_incoming: bool,
}

/// Why a download of the list failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The transport failed (unreachable, timeout, body over the limit…).
    #[error("{0}")]
    Http(#[from] HttpError),
    /// Not `200 OK`.
    #[error("HTTP status {0}")]
    Status(u16),
    /// A gzip body that does not decompress within the limit.
    #[error("invalid gzip body")]
    Gzip,
    /// The body is not a usable list.
    #[error("{0}")]
    Parse(#[from] BlocklistError),
    /// The parsing thread failed.
    #[error("blocklist parser failed")]
    Internal,
}

/// A blocklist that can be replaced while its clones read it: how the tracker transport holds
/// the session's list. Empty blocks nothing.
#[derive(Debug, Clone, Default)]
pub struct BlocklistCell(Arc<RwLock<Option<Arc<Blocklist>>>>);

impl BlocklistCell {
    /// Replaces the list.
    pub fn set(&self, list: Option<Arc<Blocklist>>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = list;
    }

    /// The current list.
    pub fn get(&self) -> Option<Arc<Blocklist>> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// True if the current list blocks `ip`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|l| l.contains(ip))
    }
}

/// The session's list and where it applies; torrent tasks poll [`Self::generation`] to learn
/// that it changed.
pub(crate) struct SessionBlocklist {
    cell: BlocklistCell,
    generation: AtomicU64,
    loaded_at: Mutex<Option<tokio::time::Instant>>,
    outgoing: bool,
    incoming: bool,
    tracker: Option<Arc<dyn Announcer>>,
}

impl std::fmt::Debug for SessionBlocklist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionBlocklist")
            .field("rules", &self.rules())
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

impl SessionBlocklist {
    /// No list yet. `tracker` receives every installed list (when it applies to trackers).
    pub(crate) fn new(settings: &BlocklistSettings, tracker: Option<Arc<dyn Announcer>>) -> Self {
        SessionBlocklist {
            cell: BlocklistCell::default(),
            generation: AtomicU64::new(0),
            loaded_at: Mutex::new(None),
            outgoing: settings.for_outgoing,
            incoming: settings.for_incoming,
            tracker,
        }
    }

    /// Makes `list` the session's list.
    pub(crate) fn install(&self, list: Blocklist) {
        let list = Arc::new(list);
        self.cell.set(Some(list.clone()));
        if let Some(t) = &self.tracker {
            t.set_blocklist(Some(list));
        }
        *self
            .loaded_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(tokio::time::Instant::now());
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The list itself, for transports that check it on every connection (webseeds, which
    /// rain checks whatever the `blocklist-enabled-for-*` keys say).
    pub(crate) fn cell(&self) -> BlocklistCell {
        self.cell.clone()
    }

    /// Bumped by each [`Self::install`].
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// What a torrent machine is given: the list, unless it applies to no connection.
    pub(crate) fn torrent_use(&self) -> Option<BlocklistUse> {
        if !self.outgoing && !self.incoming {
            return None;
        }
        self.cell.get().map(|list| BlocklistUse {
            list,
            outgoing: self.outgoing,
            incoming: self.incoming,
        })
    }

    /// True if a connection from `ip` must be refused at accept.
    pub(crate) fn blocks_incoming(&self, ip: IpAddr) -> bool {
        self.incoming && self.cell.contains(ip)
    }

    /// Rules of the current list (rain's `BlockListRules`).
    pub(crate) fn rules(&self) -> usize {
        self.cell.get().map_or(0, |l| l.rules())
    }

    /// Time since the current list was installed (rain's `BlockListRecency`).
    pub(crate) fn recency(&self) -> Option<Duration> {
        self.loaded_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map(|t| t.elapsed())
    }
}

/// The background refresher; aborted when dropped.
#[derive(Debug)]
pub(crate) struct Refresher(tokio::task::JoinHandle<()>);

impl Drop for Refresher {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Loads the list at session start (see the module documentation) and starts its refresher.
/// Returns no refresher when `blocklist-url` is empty.
pub(crate) async fn start<N: Network>(
    net: &N,
    settings: &BlocklistSettings,
    db: &Arc<ResumeDb>,
    blocking: BlockingMode,
    state: &Arc<SessionBlocklist>,
) -> Option<Refresher> {
    if settings.url.is_empty() {
        return None;
    }
    let client = client(net, settings);
    let stored = read_stored(db, blocking, &settings.url).await;
    let now = SystemTime::now();
    let mut failures = 0u32;
    let next = match stored {
        // An interval too long to add to the fetch time means the copy never goes stale.
        Some(s)
            if s.fetched_at
                .checked_add(settings.update_interval)
                .is_none_or(|until| until > now) =>
        {
            match parse(blocking, Bytes::from(s.body)).await {
                Ok(list) => {
                    state.install(list);
                    s.fetched_at
                        .checked_add(settings.update_interval)
                        .map_or(settings.update_interval, |until| {
                            until.duration_since(now).unwrap_or_default()
                        })
                        .max(MIN_UPDATE_INTERVAL)
                }
                Err(e) => {
                    tracing::warn!("stored blocklist unusable ({e}); downloading it again");
                    attempt(&client, settings, db, blocking, state, &mut failures).await
                }
            }
        }
        stale => {
            let first = attempt(&client, settings, db, blocking, state, &mut failures);
            let next = tokio::time::timeout(STARTUP_WAIT, first)
                .await
                .unwrap_or_else(|_| {
                    tracing::warn!("blocklist download still running at start; retrying later");
                    RETRY_INITIAL
                });
            if state.generation() == 0
                && let Some(s) = stale
            {
                match parse(blocking, Bytes::from(s.body)).await {
                    Ok(list) => {
                        tracing::warn!("using the stored blocklist until a download succeeds");
                        state.install(list);
                    }
                    Err(e) => tracing::warn!("stored blocklist unusable: {e}"),
                }
            }
            next
        }
    };
    let (settings, db, state) = (settings.clone(), db.clone(), state.clone());
    Some(Refresher(tokio::spawn(async move {
        let mut wait = next;
        loop {
            tokio::time::sleep(wait).await;
            wait = attempt(&client, &settings, &db, blocking, &state, &mut failures).await;
        }
    })))
}

/// One refresh; returns the wait before the next: the update interval after a success, a
/// backoff after `failures` failures in a row.
async fn attempt<N: Network>(
    client: &HttpClient<N>,
    settings: &BlocklistSettings,
    db: &Arc<ResumeDb>,
    blocking: BlockingMode,
    state: &SessionBlocklist,
    failures: &mut u32,
) -> Duration {
    if refresh_once(client, settings, db, blocking, state).await {
        *failures = 0;
        settings.update_interval.max(MIN_UPDATE_INTERVAL)
    } else {
        *failures = failures.saturating_add(1);
        retry_wait(*failures)
    }
}

/// One download attempt; on success the list is installed and stored.
async fn refresh_once<N: Network>(
    client: &HttpClient<N>,
    settings: &BlocklistSettings,
    db: &Arc<ResumeDb>,
    blocking: BlockingMode,
    state: &SessionBlocklist,
) -> bool {
    match download(client, &settings.url, blocking).await {
        Ok((list, body)) => {
            tracing::info!(
                rules = list.rules(),
                bad_lines = list.bad_lines(),
                "blocklist loaded from {}",
                settings.url
            );
            state.install(list);
            store(db, blocking, &settings.url, body, SystemTime::now()).await;
            true
        }
        Err(e) => {
            tracing::warn!("cannot load blocklist from {}: {e}", settings.url);
            false
        }
    }
}

/// The wait after `failures` failed refreshes in a row: doubling from [`RETRY_INITIAL`] up
/// to [`RETRY_MAX`].
fn retry_wait(failures: u32) -> Duration {
    RETRY_INITIAL
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(RETRY_MAX)
}

/// The HTTP client of the downloads: `blocklist-update-timeout`, bodies up to
/// `blocklist-max-response-size`.
fn client<N: Network>(net: &N, settings: &BlocklistSettings) -> HttpClient<N> {
    HttpClient::new(
        net.clone(),
        HttpConfig {
            timeout: settings.update_timeout,
            max_body: settings.max_response_size,
            ..HttpConfig::default()
        },
    )
}

/// Downloads and parses the list at `url`; returns it with the raw (decompressed) body.
pub(crate) async fn download<N: Network>(
    client: &HttpClient<N>,
    url: &str,
    blocking: BlockingMode,
) -> Result<(Blocklist, Bytes), FetchError> {
    let r = client.get(url, &[]).await?;
    if r.status != 200 {
        return Err(FetchError::Status(r.status));
    }
    let gzip = r.content_type.as_deref().is_some_and(|t| {
        let t = t.trim().to_ascii_lowercase();
        t.starts_with("application/x-gzip") || t.starts_with("application/gzip")
    }) || r.body.starts_with(&[0x1f, 0x8b]);
    let limit = client.config().max_body;
    let body = if gzip {
        crate::http::gunzip(&r.body, limit).map_err(|_| FetchError::Gzip)?
    } else {
        r.body
    };
    let list = parse(blocking, body.clone()).await?;
    Ok((list, body))
}

/// Parses off the async threads: a real list has hundreds of thousands of lines.
async fn parse(blocking: BlockingMode, body: Bytes) -> Result<Blocklist, FetchError> {
    blocking
        .run(move || Blocklist::parse(&body, BlocklistLimits::default()))
        .await
        .map_err(|_| FetchError::Internal)?
        .map_err(FetchError::Parse)
}

/// A stored copy.
struct Stored {
    body: Vec<u8>,
    fetched_at: SystemTime,
}

/// The SHA-1 of the URL, as rain stores it.
fn url_hash(url: &str) -> [u8; 20] {
    Sha1::digest(url.as_bytes()).into()
}

/// The stored copy, if it came from `url`.
async fn read_stored(db: &Arc<ResumeDb>, blocking: BlockingMode, url: &str) -> Option<Stored> {
    let db = db.clone();
    let hash = url_hash(url);
    blocking
        .run(move || {
            let stored_hash = db.session_get(URL_HASH_KEY).ok()??;
            if stored_hash != hash {
                return None;
            }
            let ts = db.session_get(TIMESTAMP_KEY).ok()??;
            let fetched_at =
                humantime::parse_rfc3339_weak(std::str::from_utf8(&ts).ok()?.trim()).ok()?;
            let body = db.session_get(BLOCKLIST_KEY).ok()??;
            Some(Stored { body, fetched_at })
        })
        .await
        .ok()
        .flatten()
}

/// Stores a fetched copy; a failure is logged (the list in memory stays in use).
async fn store(db: &Arc<ResumeDb>, blocking: BlockingMode, url: &str, body: Bytes, at: SystemTime) {
    let db = db.clone();
    let hash = url_hash(url);
    let ts = humantime::format_rfc3339_seconds(at).to_string();
    let r = blocking
        .run(move || {
            db.session_put_many(&[
                (BLOCKLIST_KEY, &body[..]),
                (TIMESTAMP_KEY, ts.as_bytes()),
                (URL_HASH_KEY, &hash[..]),
            ])
        })
        .await;
    match r {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("cannot store the blocklist: {e}"),
        Err(e) => tracing::warn!("cannot store the blocklist: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_the_cap() {
        assert_eq!(retry_wait(1), RETRY_INITIAL);
        assert_eq!(retry_wait(2), RETRY_INITIAL * 2);
        assert_eq!(retry_wait(40), RETRY_MAX);
    }

    #[test]
    fn cell_replaces_the_list_for_every_clone() {
        let a = BlocklistCell::default();
        let b = a.clone();
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        assert!(!b.contains(ip));
        let list = Blocklist::parse(b"10.0.0.0/8\n", BlocklistLimits::default()).unwrap();
        a.set(Some(Arc::new(list)));
        assert!(b.contains(ip));
        a.set(None);
        assert!(!b.contains(ip));
    }
}

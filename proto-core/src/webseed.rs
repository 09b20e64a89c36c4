//! BEP 19 webseeds: downloading a torrent's pieces from plain HTTP(S) servers, with no I/O.
//!
//! A [`Planner`] owns the webseed sources of one torrent (the `url-list` of a `.torrent`, or
//! the `ws=` of a magnet link) and decides which byte ranges each fetches. The driver performs
//! the HTTP requests it asks for and feeds the response bodies back; the planner cuts them
//! into the torrent's 16 KiB [`Block`]s, which the torrent stores, hashes and writes exactly
//! like blocks from peers.
//!
//! # Ranges
//!
//! - A source fetches one **range** of consecutive pieces at a time, at most
//!   [`WebseedConfig::max_downloads`] sources at once.
//! - A range is cut from a **gap**: a maximal run of pieces that are wanted, not verified, not
//!   held by a webseed and with no block requested from a peer ([`Pieces::is_unclaimed`]).
//!   Gaps are split into chunks of at most `max(1, pieces / `[`RANGE_DIVISOR`]`)` pieces (5 %).
//!   The default mode takes one of the largest chunks at random; sequential mode the lowest.
//! - With no gap left, an idle source **steals** the back half of the remaining range of the
//!   busiest source: `[(current + end + 1) / 2, end)`, never its current piece.
//! - A peer that finds nothing else to fetch steals the **tail** of a range
//!   ([`Planner::steal_for_peer`]): the highest piece it has past the source's current piece;
//!   the range ends there.
//! - The pieces of every range are marked held in the picker ([`Pieces::set_reserved`]), so
//!   peers are never given them; a piece is released as soon as its last byte arrived, or
//!   when its range is stolen, abandoned or finished.
//!
//! # Requests
//!
//! A range's bytes are turned into per-file HTTP ranges with [`Layout::segments`]: padding
//! files (BEP 47) and empty files are skipped, a range crossing files becomes one request per
//! file. Requests of a source run one after the other, in torrent order, each a `GET` with
//! `Range: bytes=a-b` ([`WebseedRequest::range_header`]). URLs ([`file_url`]): for a multi-file
//! torrent, the base URL + `/` + the escaped `<name>/<path…>` segments; for a single file, the
//! URL as is unless it ends in `/` (then the escaped name is appended).
//!
//! The driver delivers the body of the current request in order with
//! [`Planner::handle_data`], never more than [`WebseedRequest::length`] bytes: for a `206`
//! reply the body as is; for a `200` (the server ignored `Range`) the body after skipping
//! [`WebseedRequest::file_offset`] bytes. A request is complete when its length has been
//! delivered; the planner then asks for the next one. Chunks are sliced into blocks without a
//! copy; only a block straddling two chunks is assembled in a buffer of its own.
//!
//! # Errors
//!
//! - A failed request ([`Planner::handle_failure`]: connection, status, short body, timeout)
//!   disables its source for [`WebseedConfig::retry_interval`] (rain hard-codes one minute
//!   and ignores its setting) and releases its range; the error is kept for display.
//! - A source whose data fails a hash check is banned for the run ([`Planner::ban`]).
//! - [`Planner::stop_all`] (completion, stop) cancels every request and releases every range.
//!
//! # Driving
//!
//! Every input may queue outputs; drain [`Planner::poll_output`] until `None` after each.
//! [`Planner::poll_timeout`] is the next re-enable time of a disabled source; call
//! [`Planner::handle_timeout`] then, and [`Planner::plan`] whenever work may be available
//! (start, a range finished, a source re-enabled, pieces released by peers).

use std::collections::VecDeque;
use std::ops::Range;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::metainfo::Info;
use crate::picker::{Block, Layout, Picker};
use crate::rng::{Rng, Seed};
use crate::speed::Meter;
use crate::time::Instant;

/// A range is at most `pieces / RANGE_DIVISOR` pieces (at least one): rain's 5 %.
pub const RANGE_DIVISOR: u32 = 20;

/// Longest webseed URL accepted; longer ones are dropped.
pub const MAX_URL_LEN: usize = 4096;

/// Sources kept at most, whatever [`WebseedConfig::max_sources`] says.
pub const MAX_SOURCES_LIMIT: usize = 1024;

/// Characters escaped in one URL path segment: everything but the unreserved characters and
/// `$&+=:@` (Go's `url.PathEscape`, which rain uses).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'=')
    .remove(b':')
    .remove(b'@');

/// Limits and intervals of a torrent's webseeds (rain's config keys in parentheses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebseedConfig {
    /// URLs kept from `url-list`; the rest are dropped (`webseed-max-sources`, 10).
    pub max_sources: usize,
    /// Sources downloading at once (`webseed-max-downloads`, 4).
    pub max_downloads: usize,
    /// A failed source is retried after this long (`webseed-retry-interval`, 1 min).
    pub retry_interval: Duration,
}

impl Default for WebseedConfig {
    fn default() -> Self {
        WebseedConfig {
            max_sources: 10,
            max_downloads: 4,
            retry_interval: Duration::from_mins(1),
        }
    }
}

/// A source: its index in the torrent's webseed list (stable for the run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceId(pub u32);

/// One HTTP request of a source; never reused within a planner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// Why a webseed request failed, or why a source was banned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebseedError {
    /// The URL cannot be used (bad syntax, unsupported scheme).
    #[error("invalid URL")]
    InvalidUrl,
    /// The host name does not resolve.
    #[error("host not found")]
    HostNotFound,
    /// The TCP connection failed.
    #[error("cannot connect: {0:?}")]
    Connect(std::io::ErrorKind),
    /// The TLS handshake failed.
    #[error("TLS handshake has failed")]
    Tls,
    /// Connect, TLS, headers or body silence took longer than allowed.
    #[error("timeout")]
    Timeout,
    /// A status other than 200 or 206.
    #[error("HTTP status {0}")]
    Status(u16),
    /// A 206 whose `Content-Range` is not the requested range.
    #[error("response range does not match the request")]
    BadRange,
    /// The body ended before the requested range did.
    #[error("response body is shorter than the requested range")]
    ShortBody,
    /// The connection closed or reset mid-response.
    #[error("connection closed")]
    Closed,
    /// Not a valid HTTP response.
    #[error("invalid server response")]
    Protocol,
    /// Data from this source failed a piece hash check: banned for the run.
    #[error("data failed the hash check")]
    CorruptData,
}

/// What a source is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceState {
    /// Waiting for a range.
    Idle,
    /// Fetching a range.
    Downloading,
    /// Failed; tried again from this time.
    Disabled {
        /// When it becomes idle again.
        until: Instant,
    },
    /// Sent corrupt data: never used again in this run.
    Banned,
}

/// A source as shown to users (rain's RPC `Webseed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebseedStatus {
    /// The source.
    pub id: SourceId,
    /// Its URL.
    pub url: String,
    /// What it is doing.
    pub state: SourceState,
    /// Its last error (cleared when it delivers data again).
    pub error: Option<WebseedError>,
    /// Download rate, bytes/s (1-minute average).
    pub download_speed: u64,
    /// Bytes received from it in this run.
    pub downloaded: u64,
    /// The pieces it holds now, `start..end`.
    pub range: Option<Range<u32>>,
}

/// One HTTP GET to perform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebseedRequest {
    /// The request (for [`Planner::handle_data`] and [`Planner::handle_failure`]).
    pub id: RequestId,
    /// The source.
    pub source: SourceId,
    /// The file's URL ([`file_url`]).
    pub url: String,
    /// The file, an index into [`Info::files`].
    pub file: usize,
    /// First byte wanted, as an offset in the file.
    pub file_offset: u64,
    /// Bytes wanted (never zero).
    pub length: u64,
}

impl WebseedRequest {
    /// The `Range` header value: `bytes=<first>-<last>` (inclusive).
    pub fn range_header(&self) -> String {
        format!(
            "bytes={}-{}",
            self.file_offset,
            self.file_offset + self.length - 1
        )
    }
}

/// What the planner asks of its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Perform this request and feed its body to [`Planner::handle_data`].
    Request(WebseedRequest),
    /// Abort this request (its range was stolen, finished early, or the source stopped);
    /// data still arriving for it is discarded.
    Cancel {
        /// The source.
        source: SourceId,
        /// The request.
        request: RequestId,
    },
    /// A whole block arrived: store it like a block from a peer.
    Block {
        /// Where it came from.
        source: SourceId,
        /// The block.
        block: Block,
        /// Its bytes (a slice of the received chunk when possible).
        data: Bytes,
    },
    /// Received bytes that are thrown away (stale request, abandoned partial block): count
    /// them as wasted.
    Discarded {
        /// How many.
        bytes: u64,
    },
}

/// What the planner needs from the torrent's piece bookkeeping; the [`Picker`] implements it.
pub trait Pieces {
    /// The torrent's geometry.
    fn layout(&self) -> &Layout;
    /// True if a webseed may take piece `piece` ([`Picker::is_unclaimed`]).
    fn is_unclaimed(&self, piece: u32) -> bool;
    /// Marks piece `piece` as held by a webseed (`true`) or releases it.
    fn set_reserved(&mut self, piece: u32, on: bool);
    /// Sequential download mode: ranges are taken lowest first.
    fn is_sequential(&self) -> bool;
}

impl Pieces for Picker {
    fn layout(&self) -> &Layout {
        Picker::layout(self)
    }

    fn is_unclaimed(&self, piece: u32) -> bool {
        Picker::is_unclaimed(self, piece)
    }

    fn set_reserved(&mut self, piece: u32, on: bool) {
        Picker::set_reserved(self, piece, on);
    }

    fn is_sequential(&self) -> bool {
        Picker::is_sequential(self)
    }
}

/// The URL of `file` of `info` on the webseed `base` (BEP 19): for a multi-file torrent,
/// `base` + `/` (unless it ends with one) + the `<name>/<path…>` segments, each
/// percent-escaped; for a single-file torrent `base` itself, unless it ends with `/`, in which
/// case the escaped name is appended.
pub fn file_url(base: &str, info: &Info, file: &crate::metainfo::File) -> String {
    let path = escaped_path(info, file);
    join_url(base, info.multi_file, &path)
}

fn escaped_path(info: &Info, file: &crate::metainfo::File) -> String {
    let segments = info.file_path(file);
    let mut out = String::new();
    for (k, seg) in segments.iter().enumerate() {
        if k > 0 {
            out.push('/');
        }
        out.extend(utf8_percent_encode(seg, SEGMENT));
    }
    out
}

fn join_url(base: &str, multi_file: bool, path: &str) -> String {
    let slash = base.ends_with('/');
    if !multi_file && !slash {
        return base.to_owned();
    }
    let mut url = String::with_capacity(base.len() + 1 + path.len());
    url.push_str(base);
    if !slash {
        url.push('/');
    }
    url.push_str(path);
    url
}

/// True for an `http://` or `https://` URL with something after the scheme.
fn usable_url(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        &url[7..]
    } else if lower.starts_with("https://") {
        &url[8..]
    } else {
        return false;
    };
    !rest.is_empty() && url.len() <= MAX_URL_LEN && !url.chars().any(char::is_control)
}

fn finished_at(need: u64, end: u64) -> bool {
    need >= end
}

/// The bytes of pieces `pieces` as torrent offsets `start..end` (clipped to the torrent).
fn byte_range(layout: &Layout, pieces: &Range<u32>) -> Range<u64> {
    let pl = u64::from(layout.piece_length());
    let start = (u64::from(pieces.start) * pl).min(layout.total_length());
    let end = (u64::from(pieces.end) * pl).min(layout.total_length());
    start..end
}

/// The per-file HTTP ranges of pieces `pieces`: `(file index, offset in file, length)` in
/// torrent order, padding and empty files skipped. One request each.
pub fn file_ranges(layout: &Layout, pieces: Range<u32>) -> Vec<(usize, u64, u64)> {
    let r = byte_range(layout, &pieces);
    layout
        .segments(r.start, r.end - r.start)
        .map(|s| (s.file, s.file_offset, s.len))
        .collect()
}

/// Pieces taken by a new range: the gaps of the torrent, cut into chunks of at most `max`
/// pieces; one of the largest chunks at random, or the lowest in sequential mode.
fn choose_gap<P: Pieces + ?Sized>(pieces: &P, rng: &mut Rng) -> Option<Range<u32>> {
    let n = pieces.layout().piece_count();
    let max = (n / RANGE_DIVISOR).max(1);
    let sequential = pieces.is_sequential();
    let mut best_len = 0u32;
    let mut best: Vec<u32> = Vec::new();
    let mut i = 0;
    while i < n {
        if !pieces.is_unclaimed(i) {
            i += 1;
            continue;
        }
        let start = i;
        while i < n && pieces.is_unclaimed(i) {
            i += 1;
        }
        let mut at = start;
        while at < i {
            let len = (i - at).min(max);
            if sequential {
                return Some(at..at + len);
            }
            if len > best_len {
                best_len = len;
                best.clear();
            }
            if len == best_len {
                best.push(at);
            }
            at += len;
        }
    }
    if best.is_empty() {
        return None;
    }
    let k = rng.below(best.len() as u64) as usize;
    Some(best[k]..best[k] + best_len)
}

/// The request in flight for a job.
#[derive(Debug, Clone, Copy)]
struct Active {
    id: RequestId,
    /// Torrent offset one past the request's last byte.
    end: u64,
}

/// A block being assembled across chunks.
#[derive(Debug)]
struct Carry {
    block: Block,
    buf: BytesMut,
}

/// A source's current range.
#[derive(Debug)]
struct Job {
    /// Pieces still held: `held..end` (`end` shrinks when the tail is stolen).
    held: u32,
    end: u32,
    /// Torrent offset of the next byte expected.
    pos: u64,
    carry: Option<Carry>,
    request: Option<Active>,
}

#[derive(Debug)]
struct Source {
    url: String,
    state: SourceState,
    error: Option<WebseedError>,
    meter: Meter,
    downloaded: u64,
    job: Option<Job>,
}

/// The webseed planner of one torrent. See the module documentation.
#[derive(Debug)]
pub struct Planner {
    config: WebseedConfig,
    sources: Vec<Source>,
    rng: Rng,
    /// Escaped `<name>/<path…>` of every file, and whether the torrent is multi-file; `None`
    /// until the metadata is known.
    paths: Option<(Vec<String>, bool)>,
    next_request: u64,
    outputs: VecDeque<Output>,
}

impl Planner {
    /// A planner for `urls`: those that are not http(s), too long, or repeated are dropped,
    /// and at most `max_sources` (capped at [`MAX_SOURCES_LIMIT`]) are kept.
    pub fn new(urls: &[String], config: WebseedConfig, seed: Seed, now: Instant) -> Self {
        let max = config.max_sources.min(MAX_SOURCES_LIMIT);
        let mut kept: Vec<String> = Vec::new();
        for u in urls {
            let u = u.trim();
            if kept.len() >= max {
                break;
            }
            if usable_url(u) && !kept.iter().any(|k| k == u) {
                kept.push(u.to_owned());
            }
        }
        Planner {
            sources: kept
                .into_iter()
                .map(|url| Source {
                    url,
                    state: SourceState::Idle,
                    error: None,
                    meter: Meter::new(now),
                    downloaded: 0,
                    job: None,
                })
                .collect(),
            config,
            rng: Rng::new(seed),
            paths: None,
            next_request: 0,
            outputs: VecDeque::new(),
        }
    }

    /// Learns the torrent's files (at creation, or when a magnet's metadata arrives).
    pub fn set_info(&mut self, info: &Info) {
        let paths = info.files.iter().map(|f| escaped_path(info, f)).collect();
        self.paths = Some((paths, info.multi_file));
    }

    /// Number of sources.
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// True when there is no source.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Sources downloading now.
    pub fn active(&self) -> usize {
        self.sources.iter().filter(|s| s.job.is_some()).count()
    }

    /// True if [`Planner::plan`] could start something: an idle source and a free slot.
    pub fn wants_work(&self) -> bool {
        self.paths.is_some()
            && self.active() < self.config.max_downloads
            && self
                .sources
                .iter()
                .any(|s| s.state == SourceState::Idle && s.job.is_none())
    }

    /// True if some source holds piece `piece` in its range.
    pub fn holds(&self, piece: u32) -> bool {
        self.sources
            .iter()
            .filter_map(|s| s.job.as_ref())
            .any(|j| (j.held..j.end).contains(&piece))
    }

    /// Every source, in list order.
    pub fn statuses(&self) -> Vec<WebseedStatus> {
        self.sources
            .iter()
            .enumerate()
            .map(|(k, s)| WebseedStatus {
                id: SourceId(k as u32),
                url: s.url.clone(),
                state: s.state,
                error: s.error,
                download_speed: s.meter.rate_u64(),
                downloaded: s.downloaded,
                range: s.job.as_ref().map(|j| j.held..j.end),
            })
            .collect()
    }

    /// The next output.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When a disabled source is next re-enabled; `None` if none is.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sources
            .iter()
            .filter_map(|s| match s.state {
                SourceState::Disabled { until } => Some(until),
                _ => None,
            })
            .min()
    }

    /// Re-enables the sources whose retry time has come (call [`Planner::plan`] after).
    pub fn handle_timeout(&mut self, now: Instant) {
        for s in &mut self.sources {
            if let SourceState::Disabled { until } = s.state
                && until <= now
            {
                s.state = SourceState::Idle;
            }
        }
    }

    /// Applies the rate meters' due ticks.
    pub fn tick(&mut self, now: Instant) {
        for s in &mut self.sources {
            s.meter.handle_timeout(now);
        }
    }

    // ------------------------------------------------------------ planning

    /// Gives a range to every idle source while slots are free: a gap, or the back half of
    /// another source's range. Queues the first request of each.
    pub fn plan<P: Pieces + ?Sized>(&mut self, pieces: &mut P) {
        if self.paths.is_none() {
            return;
        }
        for k in 0..self.sources.len() {
            if self.active() >= self.config.max_downloads {
                return;
            }
            let s = &self.sources[k];
            if s.state != SourceState::Idle || s.job.is_some() {
                continue;
            }
            let range = if let Some(r) = choose_gap(pieces, &mut self.rng) {
                for i in r.clone() {
                    pieces.set_reserved(i, true);
                }
                r
            } else if let Some(r) = self.steal_half() {
                r
            } else {
                return;
            };
            self.start_job(k, range, pieces);
        }
    }

    /// Takes the back half of the range with the most pieces left past its current piece
    /// (the first piece it holds, which it is fetching or about to).
    fn steal_half(&mut self) -> Option<Range<u32>> {
        let mut victim: Option<(u32, usize)> = None;
        for (k, s) in self.sources.iter().enumerate() {
            let Some(j) = &s.job else { continue };
            let spare = j.end.saturating_sub(j.held + 1);
            if spare > 0 && victim.is_none_or(|(best, _)| spare > best) {
                victim = Some((spare, k));
            }
        }
        let (_, k) = victim?;
        let job = self.sources[k].job.as_mut()?;
        let mid = (job.held + job.end).div_ceil(2).max(job.held + 1);
        let end = job.end;
        job.end = mid;
        Some(mid..end)
    }

    fn start_job<P: Pieces + ?Sized>(&mut self, k: usize, range: Range<u32>, pieces: &mut P) {
        let bytes = byte_range(pieces.layout(), &range);
        self.sources[k].state = SourceState::Downloading;
        self.sources[k].job = Some(Job {
            held: range.start,
            end: range.end,
            pos: bytes.start,
            carry: None,
            request: None,
        });
        self.advance(k, pieces);
    }

    /// After the position moved (or at the start): releases finished pieces, issues the next
    /// request when the current one is complete, finishes the job at its end.
    fn advance<P: Pieces + ?Sized>(&mut self, k: usize, pieces: &mut P) {
        let layout = pieces.layout();
        let pl = u64::from(layout.piece_length());
        let Some(job) = self.sources[k].job.as_mut() else {
            return;
        };
        let end = (u64::from(job.end) * pl).min(layout.total_length());
        let request_done = job.request.is_none_or(|a| job.pos >= a.end);
        // Where the next needed byte is: the next segment's start (padding skipped).
        let next = if job.pos >= end {
            None
        } else {
            layout.segments(job.pos, end - job.pos).next()
        };
        let need = next.map_or(end, |s| job.pos + s.range_offset);
        let done_below = if need >= end {
            job.end
        } else {
            ((need / pl) as u32).min(job.end)
        };
        // A partial block is only kept while its next byte is the next one needed (blocks
        // never span padding, so this always holds until the job ends).
        let drop_carry = finished_at(need, end) || need != job.pos;
        let release = job.held..done_below.max(job.held);
        job.held = release.end;
        let finished = finished_at(need, end);
        let mut cancel = None;
        let mut request = None;
        if finished {
            if !request_done {
                cancel = job.request.map(|a| a.id);
            }
        } else if request_done && let Some(seg) = next {
            let id = RequestId(self.next_request);
            self.next_request += 1;
            job.pos = need;
            job.request = Some(Active {
                id,
                end: need + seg.len,
            });
            request = Some((id, seg));
        }
        let carry = if drop_carry {
            job.carry.take().map_or(0, |c| c.buf.len() as u64)
        } else {
            0
        };
        for i in release {
            pieces.set_reserved(i, false);
        }
        let source = SourceId(k as u32);
        if let Some(id) = cancel {
            self.outputs.push_back(Output::Cancel {
                source,
                request: id,
            });
        }
        if carry > 0 {
            self.outputs.push_back(Output::Discarded { bytes: carry });
        }
        if finished {
            let s = &mut self.sources[k];
            s.job = None;
            if s.state == SourceState::Downloading {
                s.state = SourceState::Idle;
            }
            return;
        }
        if let Some((id, seg)) = request {
            let url = self.url_of(k, seg.file);
            self.outputs.push_back(Output::Request(WebseedRequest {
                id,
                source,
                url,
                file: seg.file,
                file_offset: seg.file_offset,
                length: seg.len,
            }));
        }
    }

    fn url_of(&self, k: usize, file: usize) -> String {
        let base = &self.sources[k].url;
        match &self.paths {
            Some((paths, multi)) => join_url(base, *multi, paths.get(file).map_or("", |p| p)),
            None => base.clone(),
        }
    }

    // ------------------------------------------------------------ inputs

    fn source_of(&self, request: RequestId) -> Option<usize> {
        self.sources.iter().position(|s| {
            s.job
                .as_ref()
                .and_then(|j| j.request)
                .is_some_and(|a| a.id == request)
        })
    }

    /// Body bytes of `request`, in order. Bytes of a request that is no longer current
    /// (cancelled, failed, stolen past) are discarded; whole blocks are output as they
    /// complete.
    pub fn handle_data<P: Pieces + ?Sized>(
        &mut self,
        now: Instant,
        pieces: &mut P,
        request: RequestId,
        mut data: Bytes,
    ) {
        let Some(k) = self.source_of(request) else {
            if !data.is_empty() {
                self.outputs.push_back(Output::Discarded {
                    bytes: data.len() as u64,
                });
            }
            return;
        };
        let source = SourceId(k as u32);
        let total = data.len() as u64;
        {
            let s = &mut self.sources[k];
            s.downloaded += total;
            s.meter.add(now, total);
            if total > 0 {
                s.error = None;
            }
        }
        let layout = pieces.layout();
        let pl = u64::from(layout.piece_length());
        let Some(job) = self.sources[k].job.as_mut() else {
            return;
        };
        let Some(active) = job.request else {
            return;
        };
        let range_end = (u64::from(job.end) * pl).min(layout.total_length());
        let useful = active.end.min(range_end).saturating_sub(job.pos);
        let take = useful.min(data.len() as u64) as usize;
        let excess = data.len() - take;
        data.truncate(take);
        let mut discarded = excess as u64;
        while !data.is_empty() {
            if let Some(c) = job.carry.as_mut() {
                let need = c.block.length as usize - c.buf.len();
                let n = need.min(data.len());
                c.buf.extend_from_slice(&data.split_to(n));
                job.pos += n as u64;
                if c.buf.len() == c.block.length as usize
                    && let Some(c) = job.carry.take()
                {
                    self.outputs.push_back(Output::Block {
                        source,
                        block: c.block,
                        data: c.buf.freeze(),
                    });
                }
                continue;
            }
            let piece = (job.pos / pl) as u32;
            let begin = (job.pos % pl) as u32;
            let Some((_, block)) = layout.block_at(piece, begin) else {
                // Padding cannot be inside a request: nothing sensible to do with the bytes.
                discarded += data.len() as u64;
                job.pos += data.len() as u64;
                break;
            };
            if block.begin != begin {
                // Mid-block without the block's start (cannot happen): skip to its end.
                let skip = ((block.begin + block.length - begin) as usize).min(data.len());
                let _ = data.split_to(skip);
                discarded += skip as u64;
                job.pos += skip as u64;
                continue;
            }
            let len = block.length as usize;
            if data.len() >= len {
                let bytes = data.split_to(len);
                job.pos += len as u64;
                self.outputs.push_back(Output::Block {
                    source,
                    block,
                    data: bytes,
                });
            } else {
                let mut buf = BytesMut::with_capacity(len);
                buf.extend_from_slice(&data);
                job.pos += data.len() as u64;
                data.clear();
                job.carry = Some(Carry { block, buf });
            }
        }
        if discarded > 0 {
            self.outputs
                .push_back(Output::Discarded { bytes: discarded });
        }
        self.advance(k, pieces);
    }

    /// `request` failed: its source is disabled for the retry interval with `error`, and its
    /// range released. A failure of a request that is no longer current is ignored.
    pub fn handle_failure<P: Pieces + ?Sized>(
        &mut self,
        now: Instant,
        pieces: &mut P,
        request: RequestId,
        error: WebseedError,
    ) {
        let Some(k) = self.source_of(request) else {
            return;
        };
        self.abandon(k, pieces, false);
        let s = &mut self.sources[k];
        s.error = Some(error);
        s.state = SourceState::Disabled {
            until: now + self.config.retry_interval,
        };
    }

    /// Source `source` sent data that failed a hash check: banned for the run, its range
    /// (if any) released and its request cancelled.
    pub fn ban<P: Pieces + ?Sized>(&mut self, pieces: &mut P, source: SourceId) {
        let k = source.0 as usize;
        if k >= self.sources.len() {
            return;
        }
        self.abandon(k, pieces, true);
        let s = &mut self.sources[k];
        s.error = Some(WebseedError::CorruptData);
        s.state = SourceState::Banned;
    }

    /// Cancels every request and releases every range (completion, stop). Disabled and
    /// banned sources stay so.
    pub fn stop_all<P: Pieces + ?Sized>(&mut self, pieces: &mut P) {
        for k in 0..self.sources.len() {
            self.abandon(k, pieces, true);
            if self.sources[k].state == SourceState::Downloading {
                self.sources[k].state = SourceState::Idle;
            }
        }
    }

    /// Drops source `k`'s job: releases its pieces, discards a partial block, cancels its
    /// request if `cancel`.
    fn abandon<P: Pieces + ?Sized>(&mut self, k: usize, pieces: &mut P, cancel: bool) {
        let Some(job) = self.sources[k].job.take() else {
            return;
        };
        for i in job.held..job.end {
            pieces.set_reserved(i, false);
        }
        if cancel && let Some(a) = job.request {
            self.outputs.push_back(Output::Cancel {
                source: SourceId(k as u32),
                request: a.id,
            });
        }
        if let Some(c) = job.carry
            && !c.buf.is_empty()
        {
            self.outputs.push_back(Output::Discarded {
                bytes: c.buf.len() as u64,
            });
        }
    }

    /// A peer has nothing else to fetch: gives it the highest piece it has (`has(pieces, i)`) past the current
    /// piece of the range with the most pieces left; that range now ends there, and the pieces
    /// from it on are released. `None` if no range has such a piece.
    pub fn steal_for_peer<P: Pieces + ?Sized>(
        &mut self,
        pieces: &mut P,
        has: impl Fn(&P, u32) -> bool,
    ) -> Option<u32> {
        let mut order: Vec<(u32, usize)> = self
            .sources
            .iter()
            .enumerate()
            .filter_map(|(k, s)| {
                let j = s.job.as_ref()?;
                let spare = j.end.saturating_sub(j.held + 1);
                (spare > 0).then_some((spare, k))
            })
            .collect();
        // Most spare pieces first; ties by list order.
        order.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, k) in order {
            let Some(job) = self.sources[k].job.as_mut() else {
                continue;
            };
            let Some(i) = (job.held + 1..job.end).rev().find(|&i| has(pieces, i)) else {
                continue;
            };
            let old_end = job.end;
            job.end = i;
            for p in i..old_end {
                pieces.set_reserved(p, false);
            }
            return Some(i);
        }
        None
    }
}

#[cfg(test)]
mod tests;

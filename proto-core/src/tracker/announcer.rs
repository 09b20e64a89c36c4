//! The multi-tracker announcer (BEP 12): which tracker to ask, when, and with which event.
//!
//! Trackers are grouped in tiers, shuffled once within each tier. Each announce goes to the
//! first tracker, in tier order, that is not backing off; when it fails the next one is tried
//! at once, and when it answers it moves to the front of its tier. (rain announces to every tier
//! at once; this follows the BEP, as libtorrent does.) A failing tracker backs off
//! exponentially with ±50 % jitter, or for the `retry in` it asked for. A tracker that answers
//! HTTP 410 Gone (without a bencoded body) has said it no longer exists: it is not asked again
//! for the announcer's lifetime, not even for `stopped`.
//!
//! Events: `started` is sent to a tracker before anything else; `completed` once when the
//! download finishes (only if it was incomplete when the announcer started); `stopped` in
//! parallel to every tracker that had answered, bounded by `stop_timeout`.
//!
//! Driving: after every input, drain [`Announcer::poll_request`] (perform each announce over
//! HTTP or UDP and report with [`Announcer::handle_reply`]), then [`Announcer::poll_event`],
//! then call [`Announcer::handle_timeout`] at [`Announcer::poll_timeout`].

use std::collections::VecDeque;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::{AnnounceReply, Event, TrackerError};
use crate::rng::{Rng, Seed};
use crate::time::Instant;

/// Most trackers an announcer keeps (tiers included); more are ignored.
pub const MAX_TRACKERS: usize = 256;
/// Most queued requests or events; the queue is drained after every input, so this is never
/// reached by a well-behaved driver.
pub const MAX_QUEUED: usize = MAX_TRACKERS + 8;

/// HTTP 410 Gone: the tracker asks clients to stop announcing to it.
const HTTP_GONE: u16 = 410;

/// Timing and sizes, with rain's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnouncerConfig {
    /// `numwant` for regular and started announces (`tracker-num-want`).
    pub num_want: u32,
    /// Spacing while the torrent needs peers, if the tracker gives no `min interval`
    /// (`tracker-min-announce-interval`).
    pub min_announce_interval: Duration,
    /// Deadline for the `stopped` announces (`tracker-stop-timeout`).
    pub stop_timeout: Duration,
    /// A request with no reply after this long counts as timed out (a guard: the transport
    /// has its own timeouts).
    pub request_timeout: Duration,
    /// First backoff after a failure.
    pub backoff_initial: Duration,
    /// Longest backoff.
    pub backoff_max: Duration,
}

impl Default for AnnouncerConfig {
    fn default() -> Self {
        AnnouncerConfig {
            num_want: 200,
            min_announce_interval: Duration::from_mins(1),
            stop_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_mins(1),
            backoff_initial: Duration::from_secs(5),
            backoff_max: Duration::from_mins(30),
        }
    }
}

/// A tracker's state as rain's RPC shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Never asked.
    NotContactedYet,
    /// A request is in flight.
    Contacting,
    /// The last announce succeeded.
    Working,
    /// The last announce failed.
    NotWorking,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::NotContactedYet => "Not contacted yet",
            Status::Contacting => "Contacting",
            Status::Working => "Working",
            Status::NotWorking => "Not working",
        })
    }
}

/// One tracker's view, for RPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerStatus {
    /// The announce URL.
    pub url: String,
    /// Its tier.
    pub tier: usize,
    /// Its state.
    pub status: Status,
    /// Seeders from the last reply.
    pub seeders: u32,
    /// Leechers from the last reply.
    pub leechers: u32,
    /// The last `warning message`.
    pub warning: Option<String>,
    /// The last error.
    pub error: Option<TrackerError>,
    /// When it last answered or failed.
    pub last_announce: Option<Instant>,
    /// When it will be asked next, if known.
    pub next_announce: Option<Instant>,
}

/// Identifies a request so its reply can be matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// An announce for the driver to perform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceRequest {
    /// Matches the reply.
    pub id: RequestId,
    /// The tracker URL (`http`, `https` or `udp`).
    pub url: String,
    /// The event.
    pub event: Event,
    /// `numwant`.
    pub num_want: u32,
    /// `tracker id` from the tracker's last reply, to echo (HTTP).
    pub tracker_id: Option<Vec<u8>>,
}

/// What the announcer tells its torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnnouncerEvent {
    /// Peers from a tracker.
    Peers {
        /// The tracker.
        url: String,
        /// Its peers.
        peers: Vec<SocketAddr>,
    },
    /// The tracker reported our external address.
    ExternalIp(IpAddr),
    /// All `stopped` announces are done (or timed out): the torrent may leave Stopping.
    Stopped,
}

#[derive(Debug, Clone)]
struct Tracker {
    url: String,
    started: bool,
    status: Status,
    seeders: u32,
    leechers: u32,
    warning: Option<String>,
    error: Option<TrackerError>,
    /// The `tracker id` it gave us, echoed in later announces.
    echo_id: Option<Vec<u8>>,
    min_interval: Option<Duration>,
    failures: u32,
    retry_at: Option<Instant>,
    last_announce: Option<Instant>,
    /// It answered HTTP 410 Gone: never asked again.
    gone: bool,
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    id: RequestId,
    tier: usize,
    index: usize,
    event: Event,
    deadline: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Running,
    Stopping { deadline: Instant },
}

/// The announcer of one torrent.
#[derive(Debug)]
pub struct Announcer {
    config: AnnouncerConfig,
    tiers: Vec<Vec<Tracker>>,
    phase: Phase,
    next_at: Option<Instant>,
    /// `last success + interval`: when to announce if the torrent needs no more peers.
    regular_next: Option<Instant>,
    last_success: Option<Instant>,
    in_flight: Vec<InFlight>,
    next_request: u64,
    complete_at_start: bool,
    completed_pending: bool,
    needs_peers: bool,
    requests: VecDeque<AnnounceRequest>,
    events: VecDeque<AnnouncerEvent>,
    rng: Rng,
}

impl Announcer {
    /// An announcer for these tiers (empty tiers and URLs dropped, each tier shuffled).
    pub fn new(tiers: &[Vec<String>], config: AnnouncerConfig, seed: Seed) -> Self {
        let mut a = Announcer {
            config,
            tiers: Vec::new(),
            phase: Phase::Idle,
            next_at: None,
            regular_next: None,
            last_success: None,
            in_flight: Vec::new(),
            next_request: 0,
            complete_at_start: false,
            completed_pending: false,
            needs_peers: true,
            requests: VecDeque::new(),
            events: VecDeque::new(),
            rng: Rng::new(seed),
        };
        for tier in tiers {
            a.add_tier(tier);
        }
        a
    }

    fn tracker_count(&self) -> usize {
        self.tiers.iter().map(Vec::len).sum()
    }

    fn add_tier(&mut self, urls: &[String]) {
        let room = MAX_TRACKERS - self.tracker_count();
        let mut tier: Vec<Tracker> = urls
            .iter()
            .filter(|u| !u.is_empty())
            .take(room)
            .map(|url| Tracker {
                url: url.clone(),
                started: false,
                status: Status::NotContactedYet,
                seeders: 0,
                leechers: 0,
                warning: None,
                error: None,
                echo_id: None,
                min_interval: None,
                failures: 0,
                retry_at: None,
                last_announce: None,
                gone: false,
            })
            .collect();
        if !tier.is_empty() {
            self.rng.shuffle(&mut tier);
            self.tiers.push(tier);
        }
    }

    /// Adds a tracker as a tier of its own (rain's `AddTracker`); announces to it soon if
    /// running.
    pub fn add_tracker(&mut self, now: Instant, url: &str) {
        self.add_tier(&[url.to_owned()]);
        if self.phase == Phase::Running && self.in_flight.is_empty() && self.next_at.is_none() {
            self.next_at = Some(now);
        }
    }

    /// Starts announcing: a `started` announce right away. `complete` says whether the
    /// download is already complete (then `completed` is never sent).
    pub fn start(&mut self, now: Instant, complete: bool) {
        self.phase = Phase::Running;
        self.complete_at_start = complete;
        self.completed_pending = false;
        self.in_flight.clear();
        self.next_at = Some(now);
        self.handle_timeout(now);
    }

    /// The download completed: send `completed` now, replacing any announce in flight.
    pub fn completed(&mut self, now: Instant) {
        if self.phase != Phase::Running || self.complete_at_start {
            return;
        }
        self.complete_at_start = true;
        self.completed_pending = true;
        self.in_flight.clear();
        self.next_at = Some(now);
        self.handle_timeout(now);
    }

    /// Whether the torrent wants more peers: while it does, announces are spaced by the
    /// minimum interval instead of the regular one.
    pub fn set_needs_peers(&mut self, now: Instant, needs: bool) {
        self.needs_peers = needs;
        // Only a schedule that follows a success is re-timed; backoffs and pending
        // announces keep theirs.
        let Some(regular) = self.regular_next else {
            return;
        };
        let soon = self
            .min_interval_from_last()
            .filter(|_| needs)
            .unwrap_or(regular);
        self.next_at = Some(regular.min(soon).max(now));
    }

    fn min_interval_from_last(&self) -> Option<Instant> {
        let last = self.last_success?;
        let tracker_min = self
            .tiers
            .iter()
            .flatten()
            .filter_map(|t| t.min_interval)
            .max();
        Some(last + tracker_min.unwrap_or(self.config.min_announce_interval))
    }

    /// Stops: sends `stopped` to every tracker that had answered, at once. Emits
    /// [`AnnouncerEvent::Stopped`] when they have all replied or `stop_timeout` has passed.
    pub fn stop(&mut self, now: Instant) {
        if self.phase != Phase::Running {
            return;
        }
        self.in_flight.clear();
        self.next_at = None;
        self.phase = Phase::Stopping {
            deadline: now + self.config.stop_timeout,
        };
        for tier in 0..self.tiers.len() {
            for index in 0..self.tiers[tier].len() {
                if self.tiers[tier][index].started {
                    self.send(now, tier, index, Event::Stopped);
                }
            }
        }
        self.maybe_stopped();
    }

    fn maybe_stopped(&mut self) {
        if matches!(self.phase, Phase::Stopping { .. }) && self.in_flight.is_empty() {
            self.phase = Phase::Idle;
            self.events.push_back(AnnouncerEvent::Stopped);
        }
    }

    fn send(&mut self, now: Instant, tier: usize, index: usize, event: Event) {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        let t = &mut self.tiers[tier][index];
        t.status = Status::Contacting;
        let num_want = if matches!(event, Event::Completed | Event::Stopped) {
            0
        } else {
            self.config.num_want
        };
        self.requests.push_back(AnnounceRequest {
            id,
            url: t.url.clone(),
            event,
            num_want,
            tracker_id: t.echo_id.clone(),
        });
        self.requests.truncate(MAX_QUEUED);
        let deadline = match self.phase {
            Phase::Stopping { deadline } => deadline,
            _ => now + self.config.request_timeout,
        };
        self.in_flight.push(InFlight {
            id,
            tier,
            index,
            event,
            deadline,
        });
    }

    /// The first tracker, in tier order, that is not backing off at `now`.
    fn eligible(&self, now: Instant) -> Option<(usize, usize)> {
        self.tiers.iter().enumerate().find_map(|(ti, tier)| {
            tier.iter()
                .position(|t| !t.gone && t.retry_at.is_none_or(|r| r <= now))
                .map(|i| (ti, i))
        })
    }

    /// Announces to the next eligible tracker, or schedules for when one will be.
    fn announce_next(&mut self, now: Instant) {
        match self.eligible(now) {
            Some((tier, index)) => {
                let event = if self.completed_pending {
                    Event::Completed
                } else if self.tiers[tier][index].started {
                    Event::None
                } else {
                    Event::Started
                };
                self.next_at = None;
                self.regular_next = None;
                self.send(now, tier, index, event);
            }
            None => self.next_at = self.tiers.iter().flatten().filter_map(|t| t.retry_at).min(),
        }
    }

    /// Matches a reply to its request. Replies to cancelled or unknown requests are ignored.
    pub fn handle_reply(
        &mut self,
        now: Instant,
        id: RequestId,
        result: Result<AnnounceReply, TrackerError>,
    ) {
        let Some(pos) = self.in_flight.iter().position(|f| f.id == id) else {
            return;
        };
        let f = self.in_flight.remove(pos);
        match result {
            Ok(reply) => self.succeeded(now, f, reply),
            Err(e) => self.failed(now, f, e),
        }
        self.maybe_stopped();
    }

    fn succeeded(&mut self, now: Instant, f: InFlight, reply: AnnounceReply) {
        let t = &mut self.tiers[f.tier][f.index];
        t.status = Status::Working;
        t.error = None;
        t.failures = 0;
        t.retry_at = None;
        t.last_announce = Some(now);
        t.warning = reply.warning;
        t.seeders = reply.seeders.unwrap_or(t.seeders);
        t.leechers = reply.leechers.unwrap_or(t.leechers);
        if reply.tracker_id.is_some() {
            t.echo_id = reply.tracker_id;
        }
        t.min_interval = reply.min_interval;
        if f.event == Event::Stopped {
            t.started = false;
            return;
        }
        t.started = true;
        let url = t.url.clone();
        if f.event == Event::Completed {
            self.completed_pending = false;
        }
        // BEP 12: the tracker that answered moves to the front of its tier.
        let tracker = self.tiers[f.tier].remove(f.index);
        self.tiers[f.tier].insert(0, tracker);
        self.last_success = Some(now);
        self.next_at = Some(now + reply.interval);
        self.regular_next = self.next_at;
        if self.needs_peers {
            self.set_needs_peers(now, true);
        }
        if let Some(ip) = reply.external_ip {
            self.push_event(AnnouncerEvent::ExternalIp(ip));
        }
        if !reply.peers.is_empty() {
            self.push_event(AnnouncerEvent::Peers {
                url,
                peers: reply.peers,
            });
        }
    }

    fn failed(&mut self, now: Instant, f: InFlight, error: TrackerError) {
        let backoff = if let TrackerError::Refused {
            retry_in: Some(d), ..
        } = &error
        {
            *d
        } else {
            let failures = self.tiers[f.tier][f.index].failures.min(20);
            let base = self
                .config
                .backoff_initial
                .saturating_mul(1 << failures)
                .min(self.config.backoff_max);
            // ±50 % jitter: 0.5 to 1.5 times the base.
            let permille = 500 + self.rng.below(1001);
            base.saturating_mul(permille as u32) / 1000
        };
        let t = &mut self.tiers[f.tier][f.index];
        t.status = Status::NotWorking;
        t.gone |= error == TrackerError::HttpStatus(HTTP_GONE);
        t.error = Some(error);
        t.failures += 1;
        // A gone tracker has no retry time, so it never sets the next wake-up either.
        t.retry_at = (!t.gone).then_some(now + backoff);
        t.started &= !t.gone;
        t.last_announce = Some(now);
        if f.event != Event::Stopped && self.phase == Phase::Running {
            // Fall back to the next tracker straight away.
            self.announce_next(now);
        }
    }

    fn push_event(&mut self, e: AnnouncerEvent) {
        if self.events.len() < MAX_QUEUED {
            self.events.push_back(e);
        }
    }

    /// Fires due announces and expires requests that got no reply.
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired: Vec<InFlight> = self
            .in_flight
            .iter()
            .filter(|f| f.deadline <= now)
            .copied()
            .collect();
        for f in expired {
            self.handle_reply(now, f.id, Err(TrackerError::Timeout));
        }
        if let Phase::Stopping { deadline } = self.phase {
            if now >= deadline {
                self.in_flight.clear();
                self.maybe_stopped();
            }
            return;
        }
        if self.phase == Phase::Running
            && self.in_flight.is_empty()
            && self.next_at.is_some_and(|n| n <= now)
        {
            self.announce_next(now);
        }
    }

    /// The next announce to perform. Changes after every input.
    pub fn poll_request(&mut self) -> Option<AnnounceRequest> {
        self.requests.pop_front()
    }

    /// The next event for the torrent. Changes after replies, timeouts and [`Self::stop`].
    pub fn poll_event(&mut self) -> Option<AnnouncerEvent> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] must next be called; `None` when idle.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let flight = self.in_flight.iter().map(|f| f.deadline).min();
        match self.phase {
            Phase::Idle => None,
            Phase::Stopping { deadline } => Some(deadline),
            Phase::Running if self.in_flight.is_empty() => self.next_at,
            Phase::Running => flight,
        }
    }

    /// Every tracker's status, in tier order.
    pub fn trackers(&self) -> Vec<TrackerStatus> {
        let next = self.next_at;
        let first = self.eligible(next.unwrap_or(Instant::ZERO));
        self.tiers
            .iter()
            .enumerate()
            .flat_map(|(ti, tier)| tier.iter().enumerate().map(move |(i, t)| (ti, i, t)))
            .map(|(ti, i, t)| TrackerStatus {
                url: t.url.clone(),
                tier: ti,
                status: t.status,
                seeders: t.seeders,
                leechers: t.leechers,
                warning: t.warning.clone(),
                error: t.error.clone(),
                last_announce: t.last_announce,
                next_announce: if first == Some((ti, i)) {
                    next
                } else {
                    t.retry_at
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Instant {
        Instant::from_nanos(s * 1_000_000_000)
    }

    #[allow(clippy::unnecessary_wraps)]
    fn ok(interval: u64, peers: &[&str]) -> Result<AnnounceReply, TrackerError> {
        Ok(AnnounceReply {
            interval: Duration::from_secs(interval),
            peers: peers.iter().map(|p| p.parse().unwrap()).collect(),
            seeders: Some(2),
            leechers: Some(3),
            ..AnnounceReply::default()
        })
    }

    fn tiers(t: &[&[&str]]) -> Vec<Vec<String>> {
        t.iter()
            .map(|tier| tier.iter().map(|u| (*u).to_owned()).collect())
            .collect()
    }

    fn drain(a: &mut Announcer) -> Vec<AnnounceRequest> {
        std::iter::from_fn(|| a.poll_request()).collect()
    }

    #[test]
    fn started_then_regular_announces_on_interval() {
        let mut a = Announcer::new(
            &tiers(&[&["http://a/announce"]]),
            AnnouncerConfig::default(),
            Seed::from_u64(1),
        );
        a.set_needs_peers(secs(0), false);
        assert_eq!(a.poll_timeout(), None, "idle before start");
        a.start(secs(0), false);
        let r = drain(&mut a);
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].event, r[0].num_want), (Event::Started, 200));
        a.handle_reply(secs(1), r[0].id, ok(1800, &["1.2.3.4:5"]));
        assert_eq!(
            a.poll_event(),
            Some(AnnouncerEvent::Peers {
                url: "http://a/announce".into(),
                peers: vec!["1.2.3.4:5".parse().unwrap()]
            })
        );
        assert_eq!(a.poll_timeout(), Some(secs(1801)));
        let st = &a.trackers()[0];
        assert_eq!(
            (st.status, st.seeders, st.leechers),
            (Status::Working, 2, 3)
        );
        assert_eq!(st.status.to_string(), "Working");
        a.handle_timeout(secs(1801));
        assert_eq!(drain(&mut a)[0].event, Event::None);
    }

    #[test]
    fn needs_peers_uses_the_minimum_interval() {
        let mut a = Announcer::new(
            &tiers(&[&["http://a/"]]),
            AnnouncerConfig::default(),
            Seed::from_u64(1),
        );
        a.start(secs(0), false);
        let r = drain(&mut a);
        a.handle_reply(secs(0), r[0].id, ok(1800, &[]));
        assert_eq!(a.poll_timeout(), Some(secs(60)), "needs peers: 1 min");
        a.set_needs_peers(secs(10), false);
        a.handle_timeout(secs(60));
        assert!(
            drain(&mut a).is_empty(),
            "regular interval no longer shortened"
        );
    }

    #[test]
    fn falls_back_within_and_across_tiers_and_promotes() {
        let t = tiers(&[&["http://a1/", "http://a2/"], &["http://b/"]]);
        let mut a = Announcer::new(&t, AnnouncerConfig::default(), Seed::from_u64(7));
        a.start(secs(0), false);
        let mut tried = Vec::new();
        for _ in 0..2 {
            let r = drain(&mut a);
            assert_eq!(r.len(), 1);
            tried.push(r[0].url.clone());
            a.handle_reply(secs(0), r[0].id, Err(TrackerError::Timeout));
        }
        tried.sort();
        assert_eq!(
            tried,
            ["http://a1/", "http://a2/"],
            "the whole first tier first"
        );
        let r = drain(&mut a);
        assert_eq!(
            (r[0].url.as_str(), r[0].event),
            ("http://b/", Event::Started)
        );
        a.handle_reply(secs(0), r[0].id, ok(300, &[]));
        let st = a.trackers();
        assert!(
            st.iter()
                .filter(|s| s.tier == 0)
                .all(|s| s.status == Status::NotWorking && s.error.is_some())
        );
        assert_eq!(
            st[0].error.as_ref().unwrap().to_string(),
            "timeout contacting tracker"
        );
        // Once their backoff ends, the first tier is preferred again.
        a.set_needs_peers(secs(0), false);
        a.handle_timeout(secs(300));
        let r = drain(&mut a);
        assert!(r[0].url.starts_with("http://a"), "{r:?}");
        // And the one that answers is promoted to the front of its tier.
        let url = r[0].url.clone();
        a.handle_reply(secs(300), r[0].id, ok(300, &[]));
        assert_eq!(a.trackers()[0].url, url);
    }

    #[test]
    fn backoff_grows_with_jitter_and_honours_retry_in() {
        let mut a = Announcer::new(
            &tiers(&[&["udp://x:1"]]),
            AnnouncerConfig::default(),
            Seed::from_u64(3),
        );
        a.start(secs(0), false);
        let mut now = secs(0);
        let mut waits = Vec::new();
        for _ in 0..6 {
            let r = drain(&mut a);
            a.handle_reply(now, r[0].id, Err(TrackerError::InvalidResponse("x".into())));
            let next = a.poll_timeout().unwrap();
            waits.push(next.saturating_duration_since(now).as_secs_f64());
            now = next;
            a.handle_timeout(now);
        }
        for (i, w) in waits.iter().enumerate() {
            let base = 5.0 * f64::from(1u32 << i);
            assert!(
                *w >= base * 0.5 - 1e-9 && *w <= base * 1.5 + 1e-9,
                "wait {i}: {w} vs base {base}"
            );
        }
        let r = drain(&mut a);
        let refused = TrackerError::Refused {
            reason: "slow down".into(),
            retry_in: Some(Duration::from_secs(600)),
        };
        a.handle_reply(now, r[0].id, Err(refused));
        assert_eq!(a.poll_timeout(), Some(now + Duration::from_secs(600)));
    }

    #[test]
    fn http_410_gone_retires_the_tracker() {
        let gone = super::super::http::parse_announce(410, b"<html>Gone</html>");
        assert_eq!(gone, Err(TrackerError::HttpStatus(HTTP_GONE)));
        let t = tiers(&[&["http://gone/"], &["http://b/"]]);
        let mut a = Announcer::new(&t, AnnouncerConfig::default(), Seed::from_u64(5));
        a.start(secs(0), false);
        let r = drain(&mut a);
        assert_eq!(r[0].url, "http://gone/");
        a.handle_reply(secs(0), r[0].id, gone);
        let r = drain(&mut a);
        assert_eq!(r[0].url, "http://b/", "falls back at once");
        a.handle_reply(secs(0), r[0].id, ok(300, &[]));
        let st = a.trackers();
        assert_eq!(st[0].url, "http://gone/");
        assert_eq!(st[0].status, Status::NotWorking);
        assert_eq!(st[0].error, Some(TrackerError::HttpStatus(410)));
        assert_eq!(st[0].next_announce, None, "never asked again");
        // Long after any backoff would have ended, the first tier is still skipped
        // (a 500 would be retried here: see below).
        a.set_needs_peers(secs(0), false);
        for round in 1..=3 {
            let now = secs(300 * round);
            a.handle_timeout(now);
            let r = drain(&mut a);
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].url, "http://b/", "round {round}");
            a.handle_reply(now, r[0].id, ok(300, &[]));
        }
        // Nor does it get a `stopped`.
        a.stop(secs(1000));
        let r = drain(&mut a);
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].url.as_str(), r[0].event),
            ("http://b/", Event::Stopped)
        );

        // Any other status is an ordinary failure: retried after its backoff.
        let mut a = Announcer::new(&t, AnnouncerConfig::default(), Seed::from_u64(5));
        a.start(secs(0), false);
        let r = drain(&mut a);
        a.handle_reply(secs(0), r[0].id, Err(TrackerError::HttpStatus(500)));
        let r = drain(&mut a);
        a.handle_reply(secs(0), r[0].id, ok(300, &[]));
        a.set_needs_peers(secs(0), false);
        a.handle_timeout(secs(300));
        assert_eq!(drain(&mut a)[0].url, "http://gone/");

        // With only gone trackers the announcer has nothing left to wait for.
        let mut a = Announcer::new(
            &tiers(&[&["http://gone/"]]),
            AnnouncerConfig::default(),
            Seed::from_u64(5),
        );
        a.start(secs(0), false);
        let r = drain(&mut a);
        a.handle_reply(secs(0), r[0].id, Err(TrackerError::HttpStatus(410)));
        assert!(drain(&mut a).is_empty());
        assert_eq!(a.poll_timeout(), None);
    }

    #[test]
    fn completed_once_and_only_if_incomplete_at_start() {
        let mut a = Announcer::new(
            &tiers(&[&["http://a/"]]),
            AnnouncerConfig::default(),
            Seed::from_u64(1),
        );
        a.start(secs(0), false);
        let started = drain(&mut a);
        // Completion cancels the announce in flight; its late reply is ignored.
        a.completed(secs(5));
        let r = drain(&mut a);
        assert_eq!((r[0].event, r[0].num_want), (Event::Completed, 0));
        a.handle_reply(secs(6), started[0].id, ok(100, &["9.9.9.9:9"]));
        assert_eq!(a.poll_event(), None);
        a.handle_reply(secs(6), r[0].id, ok(100, &[]));
        a.completed(secs(7));
        assert!(drain(&mut a).is_empty(), "completed is sent once");

        let mut seed = Announcer::new(
            &tiers(&[&["http://a/"]]),
            AnnouncerConfig::default(),
            Seed::from_u64(1),
        );
        seed.start(secs(0), true);
        let r = drain(&mut seed);
        seed.handle_reply(secs(0), r[0].id, ok(100, &[]));
        seed.completed(secs(1));
        assert!(
            drain(&mut seed).is_empty(),
            "already complete at start: no completed"
        );
    }

    #[test]
    fn stop_sends_stopped_to_trackers_that_answered_and_is_bounded() {
        let t = tiers(&[&["http://a/"], &["http://b/"]]);
        let mut a = Announcer::new(&t, AnnouncerConfig::default(), Seed::from_u64(1));
        a.start(secs(0), false);
        let r = drain(&mut a);
        a.handle_reply(secs(0), r[0].id, ok(100, &[]));
        a.stop(secs(10));
        let stops = drain(&mut a);
        assert_eq!(stops.len(), 1, "only the tracker that answered");
        assert_eq!(
            (stops[0].url.as_str(), stops[0].event, stops[0].num_want),
            ("http://a/", Event::Stopped, 0)
        );
        assert_eq!(a.poll_timeout(), Some(secs(15)));
        a.handle_timeout(secs(15));
        assert_eq!(a.poll_event(), Some(AnnouncerEvent::Stopped));
        assert_eq!(a.poll_timeout(), None);

        let mut never = Announcer::new(&t, AnnouncerConfig::default(), Seed::from_u64(1));
        never.start(secs(0), false);
        never.stop(secs(1));
        assert!(drain(&mut never).iter().all(|r| r.event != Event::Stopped));
        assert_eq!(
            never.poll_event(),
            Some(AnnouncerEvent::Stopped),
            "nothing to send: stopped at once"
        );
    }

    #[test]
    fn lost_replies_time_out_and_add_tracker_announces() {
        let mut a = Announcer::new(&[], AnnouncerConfig::default(), Seed::from_u64(1));
        a.start(secs(0), false);
        assert!(drain(&mut a).is_empty());
        a.add_tracker(secs(1), "http://late/");
        a.handle_timeout(secs(1));
        let r = drain(&mut a);
        assert_eq!(r[0].url, "http://late/");
        assert_eq!(a.poll_timeout(), Some(secs(61)));
        a.handle_timeout(secs(61));
        assert_eq!(a.trackers()[0].error, Some(TrackerError::Timeout));
    }
}

//! UDP trackers (BEP 15, BEP 41 URL data): packets, and the transaction machine that connects,
//! announces or scrapes, and retransmits at 15·2ⁿ seconds.
//!
//! One [`UdpTransaction`] is one request to one tracker. The driver sends what
//! [`UdpTransaction::poll_transmit`] yields to the tracker's address, feeds back only datagrams
//! that come from that address ([`UdpTransaction::handle_datagram`] checks the transaction id),
//! calls [`UdpTransaction::handle_timeout`] at [`UdpTransaction::poll_timeout`], and reads
//! [`UdpTransaction::outcome`] once it is `Some`. Connection ids are reusable for a minute; the
//! driver may cache [`UdpTransaction::connection`] per tracker and pass it to the next one.

use std::time::Duration;

use super::{
    Announce, AnnounceReply, Event, MAX_PEERS_PER_REPLY, ScrapeStats, TrackerError, clamp_interval,
    parse_compact_peers, tracker_message,
};
use crate::InfoHash;
use crate::bencode::{self, Value};
use crate::rng::Rng;
use crate::time::Instant;

/// The magic connection id of a connect request.
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;
/// How long a connection id may be used (BEP 15).
pub const CONNECTION_ID_LIFETIME: Duration = Duration::from_mins(1);
/// First retransmission timeout; it doubles on every retry (BEP 15).
pub const BASE_TIMEOUT: Duration = Duration::from_secs(15);
/// BEP 15's largest exponent: after 15·2⁸ s the request is given up.
pub const DEFAULT_MAX_RETRIES: u32 = 8;
/// Longest BEP 41 URL-data chunk.
const URL_DATA_CHUNK: usize = 255;
/// Largest URL data sent (path and query), in bytes.
pub const MAX_URL_DATA: usize = 1024;

const ACTION_CONNECT: u32 = 0;
const ACTION_ANNOUNCE: u32 = 1;
const ACTION_SCRAPE: u32 = 2;
const ACTION_ERROR: u32 = 3;

/// What a transaction asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// An announce.
    Announce(Announce),
    /// A scrape of one torrent.
    Scrape(InfoHash),
}

/// What a transaction got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Announce reply.
    Announce(AnnounceReply),
    /// Scrape reply.
    Scrape(ScrapeStats),
}

/// A connection id and when it was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection {
    /// The id.
    pub id: u64,
    /// When the tracker gave it.
    pub obtained: Instant,
}

impl Connection {
    /// Whether it may still be used at `now`.
    pub fn is_fresh(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.obtained) < CONNECTION_ID_LIFETIME
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    Requesting,
    Done,
}

/// One UDP tracker request, from connect to reply (or failure).
#[derive(Debug)]
pub struct UdpTransaction {
    request: Request,
    url_data: Vec<u8>,
    ipv6: bool,
    phase: Phase,
    transaction_id: u32,
    connection: Option<Connection>,
    retries: u32,
    max_retries: u32,
    deadline: Option<Instant>,
    pending: Option<Vec<u8>>,
    outcome: Option<Result<Reply, TrackerError>>,
    rng: Rng,
}

impl UdpTransaction {
    /// Starts a transaction. `url_data` is the path and query of the `udp://` URL (BEP 41),
    /// `ipv6` whether the tracker's address is IPv6 (which decides the compact peer size), and
    /// `cached` a connection id from an earlier transaction with the same tracker.
    pub fn new(
        now: Instant,
        request: Request,
        url_data: &str,
        ipv6: bool,
        cached: Option<Connection>,
        max_retries: u32,
        rng: &mut Rng,
    ) -> Self {
        let mut url_data = url_data.as_bytes().to_vec();
        url_data.truncate(MAX_URL_DATA);
        let mut t = UdpTransaction {
            request,
            url_data,
            ipv6,
            phase: Phase::Connecting,
            transaction_id: 0,
            connection: cached.filter(|c| c.is_fresh(now)),
            retries: 0,
            max_retries,
            deadline: None,
            pending: None,
            outcome: None,
            rng: Rng::new(rng.child()),
        };
        t.send(now);
        t
    }

    /// The next datagram to send to the tracker.
    /// Changes after construction, [`Self::handle_datagram`] and [`Self::handle_timeout`].
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.pending.take()
    }

    /// When [`Self::handle_timeout`] must be called; `None` once finished.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// The result, once the transaction has finished.
    pub fn outcome(&self) -> Option<&Result<Reply, TrackerError>> {
        self.outcome.as_ref()
    }

    /// The connection id in use, for the driver's per-tracker cache.
    pub fn connection(&self) -> Option<Connection> {
        self.connection
    }

    /// (Re)sends the current step with a fresh transaction id and arms the retry timer.
    fn send(&mut self, now: Instant) {
        self.transaction_id = self.rng.next_u64() as u32;
        let connection = self.connection.filter(|c| c.is_fresh(now));
        let packet = match connection {
            None => {
                self.phase = Phase::Connecting;
                self.connection = None;
                connect_request(self.transaction_id)
            }
            Some(c) => {
                self.phase = Phase::Requesting;
                match &self.request {
                    Request::Announce(a) => {
                        announce_request(c.id, self.transaction_id, a, &self.url_data)
                    }
                    Request::Scrape(h) => scrape_request(c.id, self.transaction_id, h),
                }
            }
        };
        self.pending = Some(packet);
        self.deadline = Some(now + BASE_TIMEOUT * (1 << self.retries.min(16)));
    }

    fn finish(&mut self, outcome: Result<Reply, TrackerError>) {
        self.phase = Phase::Done;
        self.deadline = None;
        self.pending = None;
        self.outcome = Some(outcome);
    }

    /// The retry timer fired: resend, or give up after `max_retries` retries.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.deadline {
            Some(d) if now >= d => {}
            _ => return,
        }
        if self.retries >= self.max_retries {
            self.finish(Err(TrackerError::Timeout));
            return;
        }
        self.retries += 1;
        self.send(now);
    }

    /// A datagram from the tracker's address. Replies to other transactions, and malformed
    /// packets, are ignored: a spoofed packet must not end a transaction.
    pub fn handle_datagram(&mut self, now: Instant, packet: &[u8]) {
        if self.phase == Phase::Done || packet.len() < 8 {
            return;
        }
        let action = u32::from_be_bytes(packet[0..4].try_into().expect("4 bytes"));
        let tid = u32::from_be_bytes(packet[4..8].try_into().expect("4 bytes"));
        if tid != self.transaction_id {
            return;
        }
        let body = &packet[8..];
        match (self.phase, action) {
            (_, ACTION_ERROR) => self.finish(Err(error_reply(body))),
            (Phase::Connecting, ACTION_CONNECT) if body.len() >= 8 => {
                let id = u64::from_be_bytes(body[..8].try_into().expect("8 bytes"));
                self.connection = Some(Connection { id, obtained: now });
                self.retries = 0;
                self.send(now);
            }
            (Phase::Requesting, ACTION_ANNOUNCE)
                if matches!(self.request, Request::Announce(_)) =>
            {
                match announce_reply(body, self.ipv6) {
                    Some(r) => self.finish(Ok(Reply::Announce(r))),
                    None => self.finish(Err(TrackerError::InvalidResponse(
                        "malformed UDP announce reply".into(),
                    ))),
                }
            }
            (Phase::Requesting, ACTION_SCRAPE) if body.len() >= 12 => {
                let n = |i: usize| u32::from_be_bytes(body[i..i + 4].try_into().expect("4 bytes"));
                self.finish(Ok(Reply::Scrape(ScrapeStats {
                    seeders: n(0),
                    completed: n(4),
                    leechers: n(8),
                })));
            }
            _ => {}
        }
    }
}

fn connect_request(tid: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(16);
    p.extend_from_slice(&PROTOCOL_ID.to_be_bytes());
    p.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
    p.extend_from_slice(&tid.to_be_bytes());
    p
}

/// The 98-byte announce followed by BEP 41 URL-data options.
fn announce_request(cid: u64, tid: u32, a: &Announce, url_data: &[u8]) -> Vec<u8> {
    let mut p =
        Vec::with_capacity(98 + url_data.len() + 2 * url_data.len().div_ceil(URL_DATA_CHUNK));
    p.extend_from_slice(&cid.to_be_bytes());
    p.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
    p.extend_from_slice(&tid.to_be_bytes());
    p.extend_from_slice(&a.info_hash.0);
    p.extend_from_slice(&a.peer_id);
    p.extend_from_slice(&a.downloaded.to_be_bytes());
    p.extend_from_slice(&a.left.to_be_bytes());
    p.extend_from_slice(&a.uploaded.to_be_bytes());
    let event: u32 = match a.event {
        Event::None => 0,
        Event::Completed => 1,
        Event::Started => 2,
        Event::Stopped => 3,
    };
    p.extend_from_slice(&event.to_be_bytes());
    p.extend_from_slice(&0u32.to_be_bytes()); // IP: the sender's
    p.extend_from_slice(&a.key.to_be_bytes());
    p.extend_from_slice(&a.num_want.min(i32::MAX as u32).to_be_bytes());
    p.extend_from_slice(&a.port.to_be_bytes());
    for chunk in url_data.chunks(URL_DATA_CHUNK) {
        p.push(2);
        p.push(chunk.len() as u8);
        p.extend_from_slice(chunk);
    }
    p
}

fn scrape_request(cid: u64, tid: u32, h: &InfoHash) -> Vec<u8> {
    let mut p = Vec::with_capacity(36);
    p.extend_from_slice(&cid.to_be_bytes());
    p.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
    p.extend_from_slice(&tid.to_be_bytes());
    p.extend_from_slice(&h.0);
    p
}

fn announce_reply(body: &[u8], ipv6: bool) -> Option<AnnounceReply> {
    if body.len() < 12 {
        return None;
    }
    let n = |i: usize| u32::from_be_bytes(body[i..i + 4].try_into().expect("4 bytes"));
    // Trailing bytes that do not make a whole entry are ignored: some trackers pad.
    let size = if ipv6 { 18 } else { 6 };
    let peers_bytes = &body[12..];
    let whole = peers_bytes.len() - peers_bytes.len() % size;
    Some(AnnounceReply {
        interval: clamp_interval(Duration::from_secs(u64::from(n(0)))),
        leechers: Some(n(4)),
        seeders: Some(n(8)),
        peers: parse_compact_peers(&peers_bytes[..whole], ipv6, MAX_PEERS_PER_REPLY)?,
        ..AnnounceReply::default()
    })
}

/// BEP 15 error text; rain's trackers send a bencoded dict with `failure reason`, so that is
/// understood too.
fn error_reply(body: &[u8]) -> TrackerError {
    let limits = bencode::Limits {
        max_depth: 4,
        max_size: body.len(),
        strict: false,
        max_tokens: bencode::Limits::DEFAULT_MAX_TOKENS,
    };
    if let Ok(v) = bencode::decode(body, &limits)
        && let Some(reason) = v.get(b"failure reason").and_then(Value::as_bytes)
    {
        return TrackerError::Refused {
            reason: tracker_message(reason),
            retry_in: None,
        };
    }
    TrackerError::Refused {
        reason: tracker_message(body),
        retry_in: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Seed;

    fn announce() -> Announce {
        Announce {
            info_hash: InfoHash([9; 20]),
            peer_id: [7; 20],
            port: 6881,
            uploaded: 10,
            downloaded: 20,
            left: 30,
            event: Event::Started,
            num_want: 50,
            key: 0x0102_0304,
        }
    }

    fn t0() -> Instant {
        Instant::from_nanos(1_000_000_000)
    }

    fn tid(p: &[u8]) -> [u8; 4] {
        p[12..16].try_into().unwrap()
    }

    fn reply(action: u32, tid: [u8; 4], body: &[u8]) -> Vec<u8> {
        let mut p = action.to_be_bytes().to_vec();
        p.extend_from_slice(&tid);
        p.extend_from_slice(body);
        p
    }

    #[test]
    fn connect_then_announce() {
        let mut rng = Rng::new(Seed::from_u64(1));
        let mut t = UdpTransaction::new(
            t0(),
            Request::Announce(announce()),
            "/announce?k=1",
            false,
            None,
            8,
            &mut rng,
        );
        let connect = t.poll_transmit().unwrap();
        assert_eq!(connect.len(), 16);
        assert_eq!(&connect[..8], &PROTOCOL_ID.to_be_bytes());
        assert_eq!(t.poll_timeout(), Some(t0() + BASE_TIMEOUT));
        // Wrong transaction id and junk are ignored.
        t.handle_datagram(t0(), &reply(0, [0xff; 4], &42u64.to_be_bytes()));
        t.handle_datagram(t0(), &[1, 2]);
        assert!(t.outcome().is_none() && t.poll_transmit().is_none());
        t.handle_datagram(t0(), &reply(0, tid(&connect[..]), &42u64.to_be_bytes()));
        let req = t.poll_transmit().unwrap();
        assert_eq!(&req[..8], &42u64.to_be_bytes());
        assert_eq!(u32::from_be_bytes(req[8..12].try_into().unwrap()), 1);
        assert_eq!(&req[16..36], &[9; 20]);
        assert_eq!(&req[36..56], &[7; 20]);
        assert_eq!(
            u32::from_be_bytes(req[80..84].try_into().unwrap()),
            2,
            "started"
        );
        assert_eq!(&req[96..98], &6881u16.to_be_bytes());
        assert_eq!(&req[98..], b"\x02\x0d/announce?k=1", "BEP 41 URL data");
        let mut body = Vec::new();
        body.extend_from_slice(&1800u32.to_be_bytes());
        body.extend_from_slice(&3u32.to_be_bytes());
        body.extend_from_slice(&5u32.to_be_bytes());
        body.extend_from_slice(&[127, 0, 0, 1, 0x1a, 0xe1, 9]);
        let req_tid: [u8; 4] = req[12..16].try_into().unwrap();
        t.handle_datagram(t0(), &reply(1, req_tid, &body));
        let Some(Ok(Reply::Announce(r))) = t.outcome() else {
            panic!("{:?}", t.outcome())
        };
        assert_eq!(r.peers, ["127.0.0.1:6881".parse().unwrap()]);
        assert_eq!(
            (r.leechers, r.seeders, r.interval),
            (Some(3), Some(5), Duration::from_secs(1800))
        );
        assert_eq!(t.poll_timeout(), None);
        assert_eq!(
            t.connection(),
            Some(Connection {
                id: 42,
                obtained: t0()
            })
        );
    }

    #[test]
    fn long_url_data_is_chunked() {
        let a = announce();
        let long = "/".repeat(300);
        let p = announce_request(1, 2, &a, long.as_bytes());
        assert_eq!(p[98], 2);
        assert_eq!(p[99], 255);
        assert_eq!(p[98 + 2 + 255], 2);
        assert_eq!(p[98 + 2 + 255 + 1], 45);
        assert_eq!(p.len(), 98 + 2 + 255 + 2 + 45);
    }

    #[test]
    fn retransmits_at_15_times_2_to_the_n_then_times_out() {
        let mut rng = Rng::new(Seed::from_u64(2));
        let mut t = UdpTransaction::new(
            t0(),
            Request::Scrape(InfoHash([1; 20])),
            "",
            false,
            None,
            2,
            &mut rng,
        );
        let first = t.poll_transmit().unwrap();
        t.handle_timeout(t0() + Duration::from_secs(14));
        assert!(t.poll_transmit().is_none(), "early timeout is a no-op");
        let mut now = t0();
        for n in 0..2u32 {
            now = t.poll_timeout().unwrap();
            assert_eq!(
                now,
                if n == 0 {
                    t0() + BASE_TIMEOUT
                } else {
                    t0() + BASE_TIMEOUT * 3
                }
            );
            t.handle_timeout(now);
            let again = t.poll_transmit().unwrap();
            assert_ne!(tid(&again), tid(&first), "fresh transaction id per send");
        }
        assert_eq!(t.poll_timeout(), Some(now + BASE_TIMEOUT * 4));
        t.handle_timeout(now + BASE_TIMEOUT * 4);
        assert_eq!(t.outcome(), Some(&Err(TrackerError::Timeout)));
    }

    #[test]
    fn cached_connection_skips_connect_until_stale() {
        let mut rng = Rng::new(Seed::from_u64(3));
        let cached = Some(Connection {
            id: 77,
            obtained: t0(),
        });
        let mut t = UdpTransaction::new(
            t0(),
            Request::Scrape(InfoHash([1; 20])),
            "",
            false,
            cached,
            8,
            &mut rng,
        );
        let p = t.poll_transmit().unwrap();
        assert_eq!(&p[..8], &77u64.to_be_bytes());
        assert_eq!(p.len(), 36);
        let mut body = Vec::new();
        for n in [4u32, 8, 2] {
            body.extend_from_slice(&n.to_be_bytes());
        }
        t.handle_datagram(t0(), &reply(2, p[12..16].try_into().unwrap(), &body));
        assert_eq!(
            t.outcome(),
            Some(&Ok(Reply::Scrape(ScrapeStats {
                seeders: 4,
                completed: 8,
                leechers: 2
            })))
        );
        let late = t0() + CONNECTION_ID_LIFETIME;
        let mut t = UdpTransaction::new(
            late,
            Request::Scrape(InfoHash([1; 20])),
            "",
            false,
            cached,
            8,
            &mut rng,
        );
        assert_eq!(
            t.poll_transmit().unwrap().len(),
            16,
            "stale id: connect again"
        );
    }

    #[test]
    fn error_replies_plain_and_bencoded() {
        let mut rng = Rng::new(Seed::from_u64(4));
        for (body, want) in [
            (&b"torrent not registered\0"[..], "torrent not registered"),
            (b"d14:failure reason3:bade", "bad"),
        ] {
            let mut t = UdpTransaction::new(
                t0(),
                Request::Announce(announce()),
                "",
                true,
                None,
                8,
                &mut rng,
            );
            let p = t.poll_transmit().unwrap();
            t.handle_datagram(t0(), &reply(3, tid(&p), body));
            assert_eq!(
                t.outcome(),
                Some(&Err(TrackerError::Refused {
                    reason: want.into(),
                    retry_in: None
                }))
            );
        }
    }

    #[test]
    fn ipv6_replies_use_18_byte_peers() {
        let mut body = vec![0, 0, 0, 60, 0, 0, 0, 1, 0, 0, 0, 1];
        let mut peer = [0u8; 18];
        peer[15] = 1;
        peer[16] = 0x1a;
        peer[17] = 0xe1;
        body.extend_from_slice(&peer);
        let r = announce_reply(&body, true).unwrap();
        assert_eq!(r.peers, ["[::1]:6881".parse().unwrap()]);
        assert_eq!(r.interval, Duration::from_secs(60));
        let mut short = body.clone();
        short[3] = 1;
        assert_eq!(
            announce_reply(&short, true).unwrap().interval,
            crate::tracker::MIN_INTERVAL_FLOOR
        );
    }
}

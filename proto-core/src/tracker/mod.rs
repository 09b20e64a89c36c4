//! Trackers: how a torrent finds peers through HTTP (BEP 3, 7, 23, 48) and UDP (BEP 15, 41)
//! trackers, and the multi-tracker announcer (BEP 12).
//!
//! - [`http`] builds announce and scrape URLs and parses responses; the runtime does the GET.
//! - [`udp`] encodes and decodes UDP tracker packets, and [`udp::UdpTransaction`] is the
//!   connect → announce/scrape machine with BEP 15 retransmission.
//! - [`announcer::Announcer`] decides when to announce, to which tracker and with which
//!   event, following BEP 12 tiers, and keeps each tracker's status for the RPC view.

pub mod announcer;
pub mod http;
pub mod udp;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::InfoHash;

/// Most peers taken from one tracker reply; the rest are ignored.
pub const MAX_PEERS_PER_REPLY: usize = 2000;
/// Shortest announce interval honoured, whatever the tracker says.
pub const MIN_INTERVAL_FLOOR: Duration = Duration::from_secs(30);
/// Longest announce interval honoured.
pub const MAX_INTERVAL: Duration = Duration::from_hours(24);
/// Interval used when a reply carries none.
pub const DEFAULT_INTERVAL: Duration = Duration::from_mins(30);
/// Longest `failure reason` / `warning message` kept, in characters (longer ones are cut).
pub const MAX_MESSAGE_CHARS: usize = 256;

/// A tracker's human-readable message as we keep and show it: lossy UTF-8, control characters
/// (terminal escapes included) turned into spaces, cut to [`MAX_MESSAGE_CHARS`]. It reaches
/// RPC clients and the console, so a tracker must not be able to flood or restyle them.
pub fn tracker_message(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw)
        .trim_end_matches('\0')
        .chars()
        .take(MAX_MESSAGE_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The `event` of an announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Event {
    /// A regular announce.
    None,
    /// The first announce to a tracker.
    Started,
    /// The download completed.
    Completed,
    /// The torrent is stopping.
    Stopped,
}

/// What an announce tells a tracker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    /// The torrent.
    pub info_hash: InfoHash,
    /// Our peer id.
    pub peer_id: [u8; 20],
    /// Our listen port for this torrent.
    pub port: u16,
    /// Bytes uploaded since the `started` event.
    pub uploaded: u64,
    /// Bytes downloaded since the `started` event.
    pub downloaded: u64,
    /// Bytes left; `u32::MAX` while metadata is unknown (rain: some trackers send no peers
    /// for 0).
    pub left: u64,
    /// The event.
    pub event: Event,
    /// Peers wanted (`tracker-num-want`, 0 for completed and stopped).
    pub num_want: u32,
    /// A random key that identifies us across IP changes.
    pub key: u32,
}

/// A successful announce reply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnnounceReply {
    /// When to announce next, clamped to [`MIN_INTERVAL_FLOOR`]..=[`MAX_INTERVAL`].
    pub interval: Duration,
    /// The shortest spacing the tracker allows, if it says.
    pub min_interval: Option<Duration>,
    /// `tracker id` to echo in later announces (HTTP only).
    pub tracker_id: Option<Vec<u8>>,
    /// Peers with the whole torrent.
    pub seeders: Option<u32>,
    /// Peers still downloading.
    pub leechers: Option<u32>,
    /// Peers to try, at most [`MAX_PEERS_PER_REPLY`].
    pub peers: Vec<SocketAddr>,
    /// `warning message`.
    pub warning: Option<String>,
    /// Our address as the tracker sees it (`external ip`).
    pub external_ip: Option<IpAddr>,
}

/// Swarm counts from a scrape (BEP 48).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScrapeStats {
    /// Seeders.
    pub seeders: u32,
    /// Leechers.
    pub leechers: u32,
    /// Completed downloads.
    pub completed: u32,
}

/// Why an announce or scrape failed, worded like rain's tracker `Error` field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrackerError {
    /// The tracker answered with `failure reason`.
    #[error("announce error: {reason}")]
    Refused {
        /// The tracker's words.
        reason: String,
        /// When to try again, if the tracker says (`retry in`).
        retry_in: Option<Duration>,
    },
    /// A reply that cannot be parsed.
    #[error("invalid response from tracker: {0}")]
    InvalidResponse(String),
    /// No reply in time.
    #[error("timeout contacting tracker")]
    Timeout,
    /// A non-200 HTTP status without a bencoded body.
    #[error("tracker returned HTTP status: {0}")]
    HttpStatus(u16),
    /// The transport failed (DNS, refused connection, TLS…), worded by the runtime.
    #[error("{0}")]
    Transport(String),
    /// The URL's scheme is not http, https or udp, or the URL is malformed.
    #[error("unsupported tracker URL: {0}")]
    UnsupportedUrl(String),
}

fn clamp_interval(d: Duration) -> Duration {
    d.clamp(MIN_INTERVAL_FLOOR, MAX_INTERVAL)
}

/// Parses compact IPv4 peers (6 bytes each) or IPv6 peers (18 bytes each), up to `max`.
/// Returns `None` when the length is not a multiple of the entry size.
pub fn parse_compact_peers(bytes: &[u8], ipv6: bool, max: usize) -> Option<Vec<SocketAddr>> {
    let size = if ipv6 { 18 } else { 6 };
    if !bytes.len().is_multiple_of(size) {
        return None;
    }
    let peers = bytes
        .chunks_exact(size)
        .take(max)
        .map(|c| {
            let port = u16::from_be_bytes([c[size - 2], c[size - 1]]);
            let ip: IpAddr = if ipv6 {
                IpAddr::from(<[u8; 16]>::try_from(&c[..16]).expect("16 bytes"))
            } else {
                IpAddr::from(<[u8; 4]>::try_from(&c[..4]).expect("4 bytes"))
            };
            SocketAddr::new(ip, port)
        })
        .filter(|a| a.port() != 0)
        .collect();
    Some(peers)
}

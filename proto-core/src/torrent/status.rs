//! Lifecycle statuses and the `Stats` view (rain-behaviour §5.1, §5.2).

use std::fmt;
use std::time::Duration;

/// A torrent's status, with rain's RPC strings ([`Status::as_str`]).
///
/// The machine itself moves between `Stopped`, `DownloadingMetadata`, `Downloading`,
/// `Seeding` and `Stopping`. `Allocating` and `Verifying` are the runtime's: it creates files
/// and re-checks pieces *before* it hands the verified bitfield to [`Torrent::new`]
/// (or after [`TorrentEvent::MetadataReceived`]), and shows those statuses itself meanwhile.
///
/// [`Torrent::new`]: super::Torrent::new
/// [`TorrentEvent::MetadataReceived`]: super::TorrentEvent::MetadataReceived
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    /// Not running.
    Stopped,
    /// Running, waiting for the info dictionary from peers (magnet).
    DownloadingMetadata,
    /// Files are being created (runtime).
    Allocating,
    /// Pieces on disk are being checked (runtime).
    Verifying,
    /// Running, some wanted piece missing.
    Downloading,
    /// Running, every wanted piece verified.
    Seeding,
    /// `stopped` announces in flight.
    Stopping,
}

impl Status {
    /// rain's RPC string.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Stopped => "Stopped",
            Status::DownloadingMetadata => "Downloading Metadata",
            Status::Allocating => "Allocating",
            Status::Verifying => "Verifying",
            Status::Downloading => "Downloading",
            Status::Seeding => "Seeding",
            Status::Stopping => "Stopping",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Piece counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PieceStats {
    /// Pieces hashed during Verifying (the runtime's; 0 here).
    pub checked: u32,
    /// Verified pieces.
    pub have: u32,
    /// `total - have`.
    pub missing: u32,
    /// Distinct pieces held by at least one connected peer.
    pub available: u32,
    /// Pieces of the torrent (0 before metadata).
    pub total: u32,
}

/// Byte counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ByteStats {
    /// Torrent size, padding included.
    pub total: u64,
    /// Padding bytes.
    pub padding: u64,
    /// Bytes allocated (the runtime's; equals `total` once known).
    pub allocated: u64,
    /// Bytes of verified pieces.
    pub completed: u64,
    /// `total - completed`.
    pub incomplete: u64,
    /// Payload received in piece messages (cumulative, resumed).
    pub downloaded: u64,
    /// Payload sent in piece messages (cumulative, resumed).
    pub uploaded: u64,
    /// Received and discarded: duplicates, failed pieces, blocks for closed downloads.
    pub wasted: u64,
}

/// Connection counts by direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerCounts {
    /// Incoming + outgoing.
    pub total: usize,
    /// Accepted connections.
    pub incoming: usize,
    /// Dialled connections.
    pub outgoing: usize,
}

/// Address book counts by source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddressCounts {
    /// Every address known.
    pub total: usize,
    /// From trackers.
    pub tracker: usize,
    /// From the DHT.
    pub dht: usize,
    /// From PEX.
    pub pex: usize,
}

/// Piece downloads (peers we have requests outstanding with).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DownloadCounts {
    /// Peers with outstanding requests.
    pub total: usize,
    /// Of those, snubbed.
    pub snubbed: usize,
    /// Of those, choking us.
    pub choked: usize,
    /// `total - choked - snubbed`.
    pub running: usize,
}

/// ut_metadata sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetadataDownloadCounts {
    /// Sources in use.
    pub total: usize,
    /// Of those, snubbed.
    pub snubbed: usize,
    /// `total - snubbed`.
    pub running: usize,
}

/// Transfer speeds, bytes per second, 1-minute EWMA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpeedStats {
    /// Payload received.
    pub download: u64,
    /// Payload sent.
    pub upload: u64,
}

/// rain's torrent `Stats` (§5.1), as far as the machine knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Status.
    pub status: Status,
    /// The error that stopped the torrent, if any.
    pub error: Option<super::TorrentError>,
    /// The info dictionary's name once known.
    pub name: Option<String>,
    /// BEP 27 private flag.
    pub private: bool,
    /// Files including padding files (0 before metadata).
    pub file_count: usize,
    /// Nominal piece length (0 before metadata).
    pub piece_length: u32,
    /// Time spent seeding (resumed and accumulated).
    pub seeded_for: Duration,
    /// `incomplete / download speed`, rounded as rain does; only while downloading.
    pub eta: Option<Duration>,
    /// Pieces.
    pub pieces: PieceStats,
    /// Bytes.
    pub bytes: ByteStats,
    /// Connected peers.
    pub peers: PeerCounts,
    /// Connections being established (outgoing dials in flight).
    pub handshakes: PeerCounts,
    /// Address book.
    pub addresses: AddressCounts,
    /// Piece downloads.
    pub downloads: DownloadCounts,
    /// Metadata downloads.
    pub metadata_downloads: MetadataDownloadCounts,
    /// Speeds.
    pub speed: SpeedStats,
}

/// rain's ETA rounding (§5.1).
pub fn round_eta(eta: Duration) -> Duration {
    let s = eta.as_secs();
    let step = match s {
        s if s > 8 * 3600 => 3600,
        s if s > 4 * 3600 => 1800,
        s if s > 2 * 3600 => 900,
        s if s > 3600 => 300,
        s if s > 1800 => 60,
        s if s > 900 => 30,
        s if s > 300 => 15,
        s if s > 60 => 5,
        _ => 1,
    };
    Duration::from_secs(s / step * step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_rounding_follows_rain() {
        assert_eq!(round_eta(Duration::from_secs(59)), Duration::from_secs(59));
        assert_eq!(round_eta(Duration::from_secs(64)), Duration::from_secs(60));
        assert_eq!(
            round_eta(Duration::from_secs(9 * 3600 + 59)),
            Duration::from_secs(9 * 3600)
        );
        assert_eq!(Status::DownloadingMetadata.as_str(), "Downloading Metadata");
    }
}

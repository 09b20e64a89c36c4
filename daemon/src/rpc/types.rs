//! Request and response objects of rain's RPC, field for field. Times are RFC 3339 strings
//! (the zero time is `0001-01-01T00:00:00Z`), durations whole seconds, and an unknown ETA -1,
//! as rain sends them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time as rain's RPC writes it: RFC 3339, or Go's zero time for "never".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Time(pub Option<SystemTime>);

/// Go's zero `time.Time`, which rain sends for "never".
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(t) if t >= UNIX_EPOCH => {
                s.serialize_str(&humantime::format_rfc3339_seconds(t).to_string())
            }
            _ => s.serialize_str(ZERO_TIME),
        }
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text == ZERO_TIME {
            return Ok(Time(None));
        }
        humantime::parse_rfc3339_weak(&text)
            .map(|t| Time(Some(t)))
            .map_err(serde::de::Error::custom)
    }
}

/// Whole seconds, as rain's RPC writes durations.
fn seconds<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

fn from_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_secs)
}

/// A torrent in lists (`Torrent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Torrent {
    /// The torrent's id.
    #[serde(rename = "ID")]
    pub id: String,
    /// The initial name (for magnets, `dn`).
    pub name: String,
    /// Hex info-hash.
    pub info_hash: String,
    /// Listen port.
    pub port: u16,
    /// When it was added.
    pub added_at: Time,
}

/// A connected peer (`Peer`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(clippy::struct_excessive_bools)]
pub struct Peer {
    /// Hex peer id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Client name.
    pub client: String,
    /// `ip:port`.
    pub addr: String,
    /// "TRACKER", "DHT", "PEX", "INCOMING", "MANUAL" or "UNKNOWN".
    pub source: String,
    /// When the handshake finished.
    pub connected_at: Time,
    /// We are downloading from it.
    pub downloading: bool,
    /// We are interested in it.
    pub client_interested: bool,
    /// We choke it.
    pub client_choking: bool,
    /// It is interested in us.
    pub peer_interested: bool,
    /// It chokes us.
    pub peer_choking: bool,
    /// It holds our optimistic slot.
    pub optimistic_unchoked: bool,
    /// It is snubbed.
    pub snubbed: bool,
    /// MSE was used.
    pub encrypted_handshake: bool,
    /// The stream is RC4-encrypted.
    pub encrypted_stream: bool,
    /// Bytes/s, 1-minute average.
    pub download_speed: u64,
    /// Bytes/s, 1-minute average.
    pub upload_speed: u64,
}

/// A webseed (`Webseed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Webseed {
    /// Its URL.
    #[serde(rename = "URL")]
    pub url: String,
    /// The last error, empty if none.
    pub error: String,
    /// Bytes/s.
    pub download_speed: u64,
}

/// A tracker, or for a tier its current member (`Tracker`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tracker {
    /// The announce URL.
    #[serde(rename = "URL")]
    pub url: String,
    /// "Not contacted yet", "Contacting", "Working" or "Not working".
    pub status: String,
    /// Leechers from the last reply.
    pub leechers: u32,
    /// Seeders from the last reply.
    pub seeders: u32,
    /// The last warning.
    pub warning: String,
    /// The last error, worded for people.
    pub error: String,
    /// The error is not one of the known kinds.
    pub error_unknown: bool,
    /// The raw error, when there is one.
    pub error_internal: String,
    /// When it was last announced to.
    pub last_announce: Time,
    /// When it will be announced to next.
    pub next_announce: Time,
}

/// A file of a torrent (`File`); padding files are left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct File {
    /// Path, with the torrent's directory for multi-file torrents.
    pub path: String,
    /// Bytes.
    pub length: u64,
}

/// A file and its progress (`FileStats`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FileStats {
    /// The file.
    pub file: File,
    /// Bytes of it in verified pieces.
    pub bytes_completed: u64,
}

/// `Stats.Pieces`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PieceStats {
    /// Hashed so far while verifying.
    pub checked: u32,
    /// Pieces we have.
    pub have: u32,
    /// Pieces we lack.
    pub missing: u32,
    /// Distinct pieces held by connected peers.
    pub available: u32,
    /// All pieces.
    pub total: u32,
}

/// `Stats.Bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ByteStats {
    /// Sum of file lengths, padding included.
    pub total: u64,
    /// Padding bytes.
    pub padding: u64,
    /// Allocated so far.
    pub allocated: u64,
    /// In verified pieces.
    pub completed: u64,
    /// `Total − Completed`.
    pub incomplete: u64,
    /// Payload received, persisted.
    pub downloaded: u64,
    /// Payload sent, persisted.
    pub uploaded: u64,
    /// Received but discarded, persisted.
    pub wasted: u64,
}

/// A total split by direction (`Stats.Peers`, `Stats.Handshakes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DirectionStats {
    /// Both directions.
    pub total: u32,
    /// Accepted.
    pub incoming: u32,
    /// Dialled.
    pub outgoing: u32,
}

/// `Stats.Addresses`: the dial queue by source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddressStats {
    /// All queued addresses.
    pub total: u32,
    /// From trackers.
    pub tracker: u32,
    /// From the DHT.
    #[serde(rename = "DHT")]
    pub dht: u32,
    /// From PEX.
    #[serde(rename = "PEX")]
    pub pex: u32,
}

/// `Stats.Downloads`: piece downloads in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DownloadStats {
    /// All.
    pub total: u32,
    /// `Total − Choked − Snubbed`.
    pub running: u32,
    /// From snubbed peers.
    pub snubbed: u32,
    /// From peers that choke us.
    pub choked: u32,
}

/// `Stats.MetadataDownloads`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetadataDownloadStats {
    /// All.
    pub total: u32,
    /// From snubbed peers.
    pub snubbed: u32,
    /// `Total − Snubbed`.
    pub running: u32,
}

/// `Stats.Speed`, bytes/s (1-minute averages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SpeedStats {
    /// Download.
    pub download: u64,
    /// Upload.
    pub upload: u64,
}

/// A torrent's statistics (`Stats`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Stats {
    /// Hex info-hash.
    pub info_hash: String,
    /// Listen port.
    pub port: u16,
    /// "Stopped", "Downloading Metadata", "Allocating", "Verifying", "Downloading",
    /// "Seeding" or "Stopping".
    pub status: String,
    /// The last stop error, empty if none.
    pub error: String,
    /// The name.
    pub name: String,
    /// BEP 27.
    pub private: bool,
    /// Files, padding included.
    pub file_count: u32,
    /// Bytes per piece.
    pub piece_length: u32,
    /// Time spent seeding, in seconds.
    #[serde(serialize_with = "seconds", deserialize_with = "from_seconds")]
    pub seeded_for: Duration,
    /// Seconds left, or -1 when unknown.
    #[serde(rename = "ETA")]
    pub eta: i64,
    /// Pieces.
    pub pieces: PieceStats,
    /// Bytes.
    pub bytes: ByteStats,
    /// Connected peers.
    pub peers: DirectionStats,
    /// Connections still handshaking.
    pub handshakes: DirectionStats,
    /// Queued addresses.
    pub addresses: AddressStats,
    /// Piece downloads.
    pub downloads: DownloadStats,
    /// Metadata downloads.
    pub metadata_downloads: MetadataDownloadStats,
    /// Speeds.
    pub speed: SpeedStats,
}

/// Session-wide statistics (`SessionStats`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)] // The names are rain's; reference/rain-behaviour.md §5.3 defines each.
pub struct SessionStats {
    pub uptime: u64,
    pub torrents: u32,
    pub peers: u32,
    pub ports_available: u32,
    pub block_list_rules: u32,
    pub block_list_recency: i64,
    pub read_cache_objects: u32,
    pub read_cache_size: u64,
    pub read_cache_utilization: u32,
    pub reads_per_second: u32,
    pub reads_active: u32,
    pub reads_pending: u32,
    pub write_cache_objects: u32,
    pub write_cache_size: u64,
    pub write_cache_pending_keys: u32,
    pub writes_per_second: u32,
    pub writes_active: u32,
    pub writes_pending: u32,
    pub speed_download: u64,
    pub speed_upload: u64,
    pub speed_read: u64,
    pub speed_write: u64,
    pub bytes_downloaded: u64,
    pub bytes_uploaded: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
}

/// The options shared by `AddTorrent` and `AddURI`, flattened into their params.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[allow(clippy::struct_excessive_bools)]
pub struct AddOptions {
    /// Custom id; empty generates one.
    #[serde(rename = "ID")]
    pub id: String,
    /// Add without starting.
    pub stopped: bool,
    /// Stop once complete.
    pub stop_after_download: bool,
    /// Stop once metadata arrives.
    pub stop_after_metadata: bool,
    /// Download pieces in order.
    pub sequential: bool,
}

/// `Session.AddTorrent` params.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddTorrentRequest {
    /// Base64 of the `.torrent` bytes.
    pub torrent: String,
    /// Options.
    #[serde(flatten)]
    pub options: AddOptions,
}

/// `Session.AddURI` params.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddUriRequest {
    /// A magnet link or an http(s) URL of a `.torrent`.
    #[serde(rename = "URI")]
    pub uri: String,
    /// Options.
    #[serde(flatten)]
    pub options: AddOptions,
}

/// Params that name one torrent (`GetTorrentStats`, `StartTorrent`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRequest {
    /// The torrent id.
    #[serde(rename = "ID")]
    pub id: String,
}

/// `Session.RemoveTorrent` params.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RemoveTorrentRequest {
    /// The torrent id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Keep the downloaded files.
    #[serde(default)]
    pub keep_data: bool,
}

/// `Session.AddPeer` params.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddPeerRequest {
    /// The torrent id.
    #[serde(rename = "ID")]
    pub id: String,
    /// `host:port`.
    pub addr: String,
}

/// `Session.AddTracker` params.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddTrackerRequest {
    /// The torrent id.
    #[serde(rename = "ID")]
    pub id: String,
    /// The announce URL.
    #[serde(rename = "URL")]
    pub url: String,
}

/// `Session.MoveTorrent` params.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MoveTorrentRequest {
    /// The torrent id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Base URL of the other server, scheme included.
    pub target: String,
}

/// `{Torrent: Torrent}` (AddTorrent, AddURI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TorrentResponse {
    /// The torrent.
    pub torrent: Torrent,
}

/// `{Torrents: [Torrent]}` (ListTorrents).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTorrentsResponse {
    /// All torrents.
    pub torrents: Vec<Torrent>,
}

/// `{Stats: Stats}` (GetTorrentStats).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StatsResponse {
    /// The statistics.
    pub stats: Stats,
}

/// `{Stats: SessionStats}` (GetSessionStats).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SessionStatsResponse {
    /// The statistics.
    pub stats: SessionStats,
}

/// `{Trackers: [Tracker]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TrackersResponse {
    /// The trackers.
    pub trackers: Vec<Tracker>,
}

/// `{Peers: [Peer]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PeersResponse {
    /// The peers.
    pub peers: Vec<Peer>,
}

/// `{Webseeds: [Webseed]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WebseedsResponse {
    /// The webseeds.
    pub webseeds: Vec<Webseed>,
}

/// `{Files: [File]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FilesResponse {
    /// The files.
    pub files: Vec<File>,
}

/// `{FileStats: [FileStats]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FileStatsResponse {
    /// The files with progress.
    pub file_stats: Vec<FileStats>,
}

/// `{Magnet: string}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MagnetResponse {
    /// The link.
    pub magnet: String,
}

/// `{Torrent: base64}` (GetTorrent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TorrentFileResponse {
    /// Base64 of the `.torrent` bytes.
    pub torrent: String,
}

/// `{}`: the result of every action method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Empty {}

#[cfg(test)]
mod tests;

//! rain's JSON-RPC 2.0 surface: method names and the exact JSON shapes of rain's Go client
//! (reference/rain-behaviour.md §3), so existing scripts and clients keep working.
//!
//! [`types`] holds every request and response object with rain's PascalCase field names.

pub mod methods;
pub mod types;

/// Every method of rain's RPC API, as sent on the wire.
pub const METHODS: [&str; 24] = [
    "Session.Version",
    "Session.ListTorrents",
    "Session.AddTorrent",
    "Session.AddURI",
    "Session.RemoveTorrent",
    "Session.CleanDatabase",
    "Session.GetSessionStats",
    "Session.GetTorrentStats",
    "Session.GetTorrentTrackers",
    "Session.GetTorrentPeers",
    "Session.GetTorrentWebseeds",
    "Session.GetTorrentFiles",
    "Session.GetTorrentFileStats",
    "Session.GetMagnet",
    "Session.GetTorrent",
    "Session.StartTorrent",
    "Session.StopTorrent",
    "Session.AnnounceTorrent",
    "Session.VerifyTorrent",
    "Session.StartAllTorrents",
    "Session.StopAllTorrents",
    "Session.AddPeer",
    "Session.AddTracker",
    "Session.MoveTorrent",
];

/// rain's error code for an unknown torrent id ("torrent not found").
pub const ERROR_TORRENT_NOT_FOUND: i32 = 1;
/// rain's error code for bad input ("input error: …").
pub const ERROR_INPUT: i32 = 2;
/// The JSON-RPC code rain uses for every other error.
pub const ERROR_OTHER: i32 = -32000;

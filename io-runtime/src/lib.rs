//! rain's runtime: the only place that touches the world (DESIGN.md §3).
//!
//! So far it holds the file-system side of torrent creation ([`create`]), torrent data storage
//! ([`storage`]), verification of existing data ([`verify`]) and the fast-resume database
//! ([`resume`]), the network trait with its tokio implementation ([`net`]) and peer
//! connections: MSE, the BitTorrent handshake and message framing ([`peer`]). [`session`] is
//! the library API: one task per torrent drives its `Torrent` machine with real sockets, disk
//! and clock; trackers are reached through the [`announce`] hook.
//!
//! Trackers: a bounded HTTP/1.1 client ([`http`]), the shared-socket UDP tracker transport
//! ([`udp_tracker`]) and the [`tracker_client::TrackerClient`] that dispatches by scheme.
//! The session's IP blocklist ([`blocklist`]) is downloaded, stored and refreshed there and
//! handed to the torrents, the tracker transport and webseeds.

pub mod announce;
pub mod blocking;
pub mod blocklist;
pub mod create;
pub mod dht;
#[cfg(feature = "test-util")]
pub mod fuzz;
pub mod http;
pub mod migrate;
pub mod net;
pub mod peer;
mod peer_task;
pub mod piece_memory;
mod ports;
pub mod rate_limit;
pub mod resume;
pub mod session;
pub mod storage;
mod torrent_task;
pub mod tracker_client;
pub mod udp_tracker;
pub mod verify;
pub mod webseed;

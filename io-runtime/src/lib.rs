//! rain's runtime: the only place that touches the world (DESIGN.md §3).
//!
//! So far it holds the file-system side of torrent creation ([`create`]), torrent data storage
//! ([`storage`]), verification of existing data ([`verify`]) and the fast-resume database
//! ([`resume`]), the network trait with its tokio implementation ([`net`]) and peer
//! connections: MSE, the BitTorrent handshake and message framing ([`peer`]). The torrent
//! driver and the `Session` API arrive with the runtime issue.

pub mod create;
pub mod net;
pub mod peer;
pub mod resume;
pub mod storage;
pub mod verify;

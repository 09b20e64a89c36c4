//! Peer connections: everything between a TCP stream and decoded messages.
//!
//! [`dial`] and [`accept`] run the encryption policy (MSE/PE, with rain's plaintext retry) and
//! the BitTorrent handshake; the result is a [`Connection`] that reads and writes
//! [`Message`]s, decrypting and encrypting in place. The torrent driver
//! owns the decisions; this module only moves bytes.

mod connection;
mod handshake;

use std::time::Duration;

use rain_proto::InfoHash;
use rain_proto::mse::MseFailure;
use rain_proto::wire::{PeerId, Reserved, WireError};

pub use connection::Connection;
pub use handshake::{accept, dial};

/// Who we are on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Local {
    /// The torrent.
    pub info_hash: InfoHash,
    /// Our peer id for it.
    pub peer_id: PeerId,
    /// Our extension bits.
    pub reserved: Reserved,
}

/// Time limits (rain's `peer-connect-timeout` and `peer-handshake-timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect.
    pub connect: Duration,
    /// The whole handshake, MSE included.
    pub handshake: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            handshake: Duration::from_secs(10),
        }
    }
}

/// What the peer told us in its handshake, and how the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remote {
    /// The torrent it wants.
    pub info_hash: InfoHash,
    /// Its peer id.
    pub peer_id: PeerId,
    /// Its extension bits.
    pub reserved: Reserved,
    /// An MSE handshake was used (rain's `EncryptedHandshake`).
    pub encrypted_handshake: bool,
    /// The stream is RC4-encrypted (rain's `EncryptedStream`).
    pub encrypted_stream: bool,
}

/// Why a connection could not be set up or went down.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// Connecting, reading or writing failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A time limit passed.
    #[error("timed out during {0}")]
    Timeout(&'static str),
    /// The peer closed the connection.
    #[error("connection closed by peer")]
    Closed,
    /// The MSE handshake failed.
    #[error("encryption handshake failed: {0}")]
    Mse(MseFailure),
    /// The peer sent something that is not a BitTorrent handshake.
    #[error("not a BitTorrent handshake")]
    BadHandshake,
    /// The peer asked for a torrent we do not have here.
    #[error("unknown info-hash {0}")]
    UnknownTorrent(InfoHash),
    /// The policy forbids what the peer offered (plaintext under forced encryption, …).
    #[error("refused by encryption policy")]
    Policy,
    /// A malformed message.
    #[error("protocol error: {0}")]
    Wire(WireError),
}

#[cfg(test)]
mod tests;

//! The BEP 10 extension protocol and the extensions rain speaks over it.
//!
//! - [`handshake`]: the extension handshake dictionary (`m`, `p`, `v`, `yourip`, `reqq`,
//!   `metadata_size`, `upload_only`);
//! - [`ut_metadata`]: BEP 9 metadata exchange and an assembler that checks the info-hash;
//! - [`ut_pex`]: BEP 11 peer exchange.
//!
//! Each codec works on the payload of one [`crate::wire::Message::Extended`]: the frame is
//! already complete, so decoding is all-or-nothing and a malformed payload is an `Err` value
//! the torrent turns into a disconnect (or ignores, where rain does).

pub mod handshake;
pub mod ut_metadata;
pub mod ut_pex;

pub use handshake::{ExtHandshake, ExtHandshakeError, ExtLimits};
pub use ut_metadata::{MetadataAssembler, MetadataError, MetadataFault, MetadataMessage};
pub use ut_pex::{PexError, PexFlags, PexLimits, PexMessage, PexPeer};

/// Extended message ids rain assigns locally (advertised in its `m`).
pub mod id {
    /// The extension handshake is always id 0.
    pub const HANDSHAKE: u8 = 0;
    /// Our id for `ut_metadata`.
    pub const UT_METADATA: u8 = 1;
    /// Our id for `ut_pex`.
    pub const UT_PEX: u8 = 2;
}

/// Extension names as they appear in `m`.
pub mod name {
    /// BEP 9.
    pub const UT_METADATA: &str = "ut_metadata";
    /// BEP 11.
    pub const UT_PEX: &str = "ut_pex";
}

//! The peer wire protocol (BEP 3, BEP 6, BEP 10 framing): the 68-byte handshake, peer ids,
//! length-prefixed messages and the BEP 6 allowed-fast set.
//!
//! Everything here is a pure codec: bytes in, values out, and values into a caller buffer.
//! Incoming bytes are decoded from a `bytes::BytesMut` so that piece payloads leave as `Bytes`
//! slices of the receive buffer, never copied (DESIGN.md §2).

pub mod allowed_fast;
pub mod handshake;
pub mod message;
pub mod peer_id;

pub use allowed_fast::allowed_fast_set;
pub use handshake::{
    HANDSHAKE_LEN, HEADER_LEN, Handshake, HandshakeError, HandshakeHeader, PROTOCOL_HEADER,
    Reserved,
};
pub use message::{
    Block, Decoder, Limits, Message, PIECE_HEADER_LEN, WireError, id, write_piece_header,
};
pub use peer_id::{PeerId, PeerIdError, client_name};

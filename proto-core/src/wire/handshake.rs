//! The 68-byte BitTorrent handshake: `19`, "BitTorrent protocol", 8 reserved bytes, the
//! info-hash and the peer id.
//!
//! It can be decoded in two steps, because a receiver learns which torrent is wanted from the
//! first 48 bytes ([`Handshake::decode_header`]) and may answer before the peer id arrives.

use crate::Decode;
use crate::hash::InfoHash;

use super::peer_id::PeerId;

/// The first 20 bytes of every plaintext handshake: the length byte 19 and the protocol name.
pub const PROTOCOL_HEADER: &[u8; 20] = b"\x13BitTorrent protocol";

/// Length of a whole handshake.
pub const HANDSHAKE_LEN: usize = 68;

/// Length of the part before the peer id (header, reserved bytes, info-hash).
pub const HEADER_LEN: usize = 48;

/// The 8 reserved bytes, where each side advertises the extensions it supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reserved(pub [u8; 8]);

impl Reserved {
    /// BEP 10 extension protocol: byte 5, bit 0x10.
    const EXTENSION: (usize, u8) = (5, 0x10);
    /// BEP 6 fast extension: byte 7, bit 0x04.
    const FAST: (usize, u8) = (7, 0x04);
    /// BEP 5 DHT: byte 7, bit 0x01.
    const DHT: (usize, u8) = (7, 0x01);

    /// The reserved bytes rain sends: extension protocol and fast extension always, DHT only
    /// when our DHT is enabled.
    pub fn rain(dht: bool) -> Self {
        Reserved::default()
            .with_extension(true)
            .with_fast(true)
            .with_dht(dht)
    }

    fn get(self, (byte, bit): (usize, u8)) -> bool {
        self.0[byte] & bit != 0
    }

    fn set(mut self, (byte, bit): (usize, u8), on: bool) -> Self {
        if on {
            self.0[byte] |= bit;
        } else {
            self.0[byte] &= !bit;
        }
        self
    }

    /// Whether the BEP 10 extension protocol bit is set.
    pub fn extension(self) -> bool {
        self.get(Self::EXTENSION)
    }

    /// Whether the BEP 6 fast extension bit is set.
    pub fn fast(self) -> bool {
        self.get(Self::FAST)
    }

    /// Whether the BEP 5 DHT bit is set.
    pub fn dht(self) -> bool {
        self.get(Self::DHT)
    }

    /// Sets or clears the BEP 10 bit.
    pub fn with_extension(self, on: bool) -> Self {
        self.set(Self::EXTENSION, on)
    }

    /// Sets or clears the BEP 6 bit.
    pub fn with_fast(self, on: bool) -> Self {
        self.set(Self::FAST, on)
    }

    /// Sets or clears the DHT bit.
    pub fn with_dht(self, on: bool) -> Self {
        self.set(Self::DHT, on)
    }
}

/// A decoded or to-be-sent handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    /// Extension bits.
    pub reserved: Reserved,
    /// Which torrent the connection is for.
    pub info_hash: InfoHash,
    /// Who is talking.
    pub peer_id: PeerId,
}

/// Why bytes are not a handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The first 20 bytes are not `19` + "BitTorrent protocol".
    #[error("not a BitTorrent handshake")]
    BadProtocol,
}

/// The first 48 bytes of a handshake: enough to pick the torrent before the peer id arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeHeader {
    /// Extension bits.
    pub reserved: Reserved,
    /// Which torrent the connection is for.
    pub info_hash: InfoHash,
}

/// Checks that `input` is consistent with the protocol header so far, so that a stranger is
/// refused on its first wrong byte rather than after 68.
fn check_prefix(input: &[u8]) -> Result<(), HandshakeError> {
    let n = input.len().min(PROTOCOL_HEADER.len());
    if input[..n] == PROTOCOL_HEADER[..n] {
        Ok(())
    } else {
        Err(HandshakeError::BadProtocol)
    }
}

fn header(input: &[u8]) -> HandshakeHeader {
    let mut reserved = [0u8; 8];
    reserved.copy_from_slice(&input[20..28]);
    let mut info_hash = [0u8; 20];
    info_hash.copy_from_slice(&input[28..48]);
    HandshakeHeader {
        reserved: Reserved(reserved),
        info_hash: InfoHash(info_hash),
    }
}

impl Handshake {
    /// Appends the 68 bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_bytes());
    }

    /// The 68 bytes.
    pub fn to_bytes(&self) -> [u8; HANDSHAKE_LEN] {
        let mut b = [0u8; HANDSHAKE_LEN];
        b[..20].copy_from_slice(PROTOCOL_HEADER);
        b[20..28].copy_from_slice(&self.reserved.0);
        b[28..48].copy_from_slice(&self.info_hash.0);
        b[48..].copy_from_slice(&self.peer_id.0);
        b
    }

    /// Decodes a whole handshake from the start of `input` (bytes after it are not looked at).
    pub fn decode(input: &[u8]) -> Decode<Handshake, HandshakeError> {
        if let Err(e) = check_prefix(input) {
            return Decode::Invalid(e);
        }
        if input.len() < HANDSHAKE_LEN {
            return Decode::Incomplete;
        }
        let h = header(input);
        let mut peer_id = [0u8; 20];
        peer_id.copy_from_slice(&input[HEADER_LEN..HANDSHAKE_LEN]);
        Decode::Complete {
            value: Handshake {
                reserved: h.reserved,
                info_hash: h.info_hash,
                peer_id: PeerId(peer_id),
            },
            used: HANDSHAKE_LEN,
        }
    }

    /// Decodes the first 48 bytes (protocol, reserved bytes, info-hash). `used` is 48; the
    /// peer id follows and can be read with [`Handshake::decode`] on the same input later.
    pub fn decode_header(input: &[u8]) -> Decode<HandshakeHeader, HandshakeError> {
        if let Err(e) = check_prefix(input) {
            return Decode::Invalid(e);
        }
        if input.len() < HEADER_LEN {
            return Decode::Incomplete;
        }
        Decode::Complete {
            value: header(input),
            used: HEADER_LEN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Handshake {
        Handshake {
            reserved: Reserved::rain(true),
            info_hash: InfoHash([0xab; 20]),
            peer_id: PeerId(*b"-RN0010-abcdefghijkl"),
        }
    }

    #[test]
    fn reserved_bits_are_where_the_beps_put_them() {
        let r = Reserved::rain(false);
        assert_eq!(r.0, [0, 0, 0, 0, 0, 0x10, 0, 0x04]);
        assert!(r.extension() && r.fast() && !r.dht());
        let r = Reserved::rain(true);
        assert_eq!(r.0[7], 0x05);
        assert!(r.dht());
        assert!(!r.with_fast(false).fast());
        assert!(r.with_fast(false).dht());
    }

    #[test]
    fn round_trip_at_every_split() {
        let h = sample();
        let bytes = h.to_bytes();
        assert_eq!(&bytes[..20], PROTOCOL_HEADER);
        for cut in 0..HANDSHAKE_LEN {
            assert_eq!(
                Handshake::decode(&bytes[..cut]),
                Decode::Incomplete,
                "cut {cut}"
            );
        }
        let mut more = bytes.to_vec();
        more.extend_from_slice(b"trailing");
        assert_eq!(
            Handshake::decode(&more),
            Decode::Complete {
                value: h,
                used: HANDSHAKE_LEN
            }
        );
        match Handshake::decode_header(&bytes[..48]) {
            Decode::Complete { value, used } => {
                assert_eq!(used, 48);
                assert_eq!(value.info_hash, h.info_hash);
                assert_eq!(value.reserved, h.reserved);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(Handshake::decode_header(&bytes[..47]), Decode::Incomplete);
    }

    #[test]
    fn wrong_protocol_fails_on_the_first_wrong_byte() {
        let mut bytes = sample().to_bytes();
        bytes[3] = b'x';
        assert_eq!(
            Handshake::decode(&bytes[..4]),
            Decode::Invalid(HandshakeError::BadProtocol)
        );
        assert_eq!(Handshake::decode(&bytes[..3]), Decode::Incomplete);
        assert_eq!(
            Handshake::decode(b"\x14"),
            Decode::Invalid(HandshakeError::BadProtocol)
        );
    }
}

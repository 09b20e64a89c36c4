//! Info-hashes and SHA-1.

use std::fmt;
use std::str::FromStr;

use sha1::{Digest, Sha1};

/// A BitTorrent v1 info-hash: SHA-1 of the raw bencoded `info` dictionary.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct InfoHash(pub [u8; 20]);

impl InfoHash {
    /// SHA-1 of `info_bytes`, which must be the exact bytes of the `info` value.
    pub fn of(info_bytes: &[u8]) -> Self {
        InfoHash(sha1(info_bytes))
    }

    /// The 40-character lower-case hex form.
    pub fn to_hex(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.0)
    }

    /// Parses 40 hex characters (either case).
    pub fn from_hex(s: &str) -> Option<Self> {
        let bytes = data_encoding::HEXLOWER_PERMISSIVE
            .decode(s.as_bytes())
            .ok()?;
        Some(InfoHash(bytes.try_into().ok()?))
    }

    /// Parses 32 base32 characters (RFC 4648, either case), the older magnet-link form.
    pub fn from_base32(s: &str) -> Option<Self> {
        let upper = s.to_ascii_uppercase();
        let bytes = data_encoding::BASE32_NOPAD.decode(upper.as_bytes()).ok()?;
        Some(InfoHash(bytes.try_into().ok()?))
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({})", self.to_hex())
    }
}

/// The error for a string that is not a 40-character hex info-hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("info-hash must be 40 hex characters")]
pub struct ParseInfoHashError;

impl FromStr for InfoHash {
    type Err = ParseInfoHashError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        InfoHash::from_hex(s).ok_or(ParseInfoHashError)
    }
}

/// SHA-1 of `data`.
pub fn sha1(data: &[u8]) -> [u8; 20] {
    Sha1::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_base32_forms() {
        let h = InfoHash::of(b"abc");
        assert_eq!(h.to_hex(), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(InfoHash::from_hex(&h.to_hex().to_uppercase()), Some(h));
        let b32 = data_encoding::BASE32_NOPAD.encode(&h.0);
        assert_eq!(InfoHash::from_base32(&b32.to_lowercase()), Some(h));
        assert_eq!(InfoHash::from_hex("abc"), None);
        assert_eq!(InfoHash::from_base32("abc"), None);
        assert_eq!("zz".parse::<InfoHash>(), Err(ParseInfoHashError));
    }
}

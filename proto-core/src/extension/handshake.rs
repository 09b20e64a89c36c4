//! The BEP 10 extension handshake: a bencoded dictionary sent as extended message 0.
//!
//! Reading is forgiving where rain is (unknown keys ignored, negative numbers clamped to 0,
//! non-UTF-8 names skipped) and bounded where a peer could make us work (payload size, nesting,
//! number and length of extension names).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::bencode::{self, Item, Kind, Value};

/// A decoded or to-be-sent extension handshake.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExtHandshake {
    /// Extension name → the id the sender wants to receive it under. Entries with id 0
    /// (disabled) or out of range are left out when decoding.
    pub m: BTreeMap<String, u8>,
    /// The sender's listen port.
    pub p: Option<u16>,
    /// Client name and version.
    pub v: Option<String>,
    /// Our address as the sender sees it.
    pub yourip: Option<IpAddr>,
    /// How many outstanding requests the sender accepts.
    pub reqq: Option<u32>,
    /// Size of the info dictionary (BEP 9).
    pub metadata_size: Option<u64>,
    /// The sender will not download (BEP 21).
    pub upload_only: bool,
}

/// Bounds applied when decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtLimits {
    /// Largest payload accepted.
    pub max_len: usize,
    /// Most entries of `m` kept.
    pub max_extensions: usize,
    /// Longest extension name kept.
    pub max_name_len: usize,
    /// Longest `v` kept (longer ones are cut).
    pub max_version_len: usize,
}

impl Default for ExtLimits {
    fn default() -> Self {
        ExtLimits {
            max_len: 64 * 1024,
            max_extensions: 64,
            max_name_len: 64,
            max_version_len: 128,
        }
    }
}

/// Why a payload is not an extension handshake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtHandshakeError {
    /// Larger than [`ExtLimits::max_len`].
    #[error("extension handshake of {0} bytes is too large")]
    TooLarge(usize),
    /// Not valid bencode.
    #[error("invalid bencode: {0}")]
    Bencode(#[from] bencode::Error),
    /// Valid bencode, but not a dictionary.
    #[error("extension handshake is not a dictionary")]
    NotADict,
}

/// An integer field, negative values clamped to 0 and large ones to the type's maximum.
fn clamped<T: TryFrom<i64> + Copy>(v: Option<&Value<'_>>, max: T) -> Option<T> {
    let i = v?.as_int()?.max(0);
    Some(T::try_from(i).unwrap_or(max))
}

impl ExtHandshake {
    /// The handshake rain sends: `m` with ut_metadata and ut_pex under its fixed ids.
    pub fn rain(
        version: &str,
        yourip: Option<IpAddr>,
        reqq: u32,
        metadata_size: Option<u64>,
    ) -> Self {
        let mut m = BTreeMap::new();
        m.insert(super::name::UT_METADATA.to_owned(), super::id::UT_METADATA);
        m.insert(super::name::UT_PEX.to_owned(), super::id::UT_PEX);
        ExtHandshake {
            m,
            v: Some(version.to_owned()),
            yourip,
            reqq: Some(reqq),
            metadata_size: metadata_size.filter(|&s| s > 0),
            ..ExtHandshake::default()
        }
    }

    /// The id the sender wants for extension `name`, if it supports it.
    pub fn id_of(&self, name: &str) -> Option<u8> {
        self.m.get(name).copied()
    }

    /// Decodes a handshake payload.
    pub fn decode(payload: &[u8], limits: &ExtLimits) -> Result<Self, ExtHandshakeError> {
        if payload.len() > limits.max_len {
            return Err(ExtHandshakeError::TooLarge(payload.len()));
        }
        let blimits = bencode::Limits {
            max_depth: 8,
            max_size: limits.max_len,
            strict: false,
            max_tokens: bencode::Limits::DEFAULT_MAX_TOKENS,
        };
        let root = bencode::decode(payload, &blimits)?;
        let Kind::Dict(dict) = root.kind() else {
            return Err(ExtHandshakeError::NotADict);
        };
        let mut hs = ExtHandshake::default();
        if let Some(m) = dict.get(b"m").and_then(Value::as_dict) {
            for (name, id) in m.iter() {
                if hs.m.len() >= limits.max_extensions {
                    break;
                }
                let Ok(name) = std::str::from_utf8(name) else {
                    continue;
                };
                if name.len() > limits.max_name_len {
                    continue;
                }
                let Some(id) = id.as_int().and_then(|i| u8::try_from(i).ok()) else {
                    continue;
                };
                if id != 0 {
                    hs.m.entry(name.to_owned()).or_insert(id);
                }
            }
        }
        hs.p = dict
            .get(b"p")
            .and_then(Value::as_int)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|&p| p != 0);
        hs.v = dict.get(b"v").and_then(Value::as_bytes).map(|v| {
            let v = &v[..v.len().min(limits.max_version_len)];
            String::from_utf8_lossy(v).into_owned()
        });
        hs.yourip = dict
            .get(b"yourip")
            .and_then(Value::as_bytes)
            .and_then(|b| match b.len() {
                4 => Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
                16 => {
                    let mut o = [0u8; 16];
                    o.copy_from_slice(b);
                    Some(IpAddr::V6(Ipv6Addr::from(o)))
                }
                _ => None,
            });
        hs.reqq = clamped(dict.get(b"reqq"), u32::MAX);
        hs.metadata_size = clamped(dict.get(b"metadata_size"), u64::MAX);
        hs.upload_only = clamped(dict.get(b"upload_only"), 1u8).is_some_and(|u| u != 0);
        Ok(hs)
    }

    /// Appends the canonical bencoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut m = BTreeMap::new();
        for (name, id) in &self.m {
            m.insert(name.as_bytes().to_vec(), Item::Int(i64::from(*id)));
        }
        let mut d = Item::dict().with("m", Item::Dict(m));
        if let Some(p) = self.p {
            d = d.with("p", i64::from(p));
        }
        if let Some(v) = &self.v {
            d = d.with("v", v.as_str());
        }
        if let Some(ip) = self.yourip {
            let bytes = match ip {
                IpAddr::V4(a) => a.octets().to_vec(),
                IpAddr::V6(a) => a.octets().to_vec(),
            };
            d = d.with("yourip", bytes);
        }
        if let Some(r) = self.reqq {
            d = d.with("reqq", i64::from(r));
        }
        if let Some(s) = self.metadata_size {
            d = d.with("metadata_size", i64::try_from(s).unwrap_or(i64::MAX));
        }
        if self.upload_only {
            d = d.with("upload_only", 1);
        }
        d.encode(out);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn decode(b: &[u8]) -> Result<ExtHandshake, ExtHandshakeError> {
        ExtHandshake::decode(b, &ExtLimits::default())
    }

    #[test]
    fn rain_handshake_round_trips() {
        let hs = ExtHandshake::rain(
            "Rain 0.1.0",
            Some("1.2.3.4".parse().unwrap()),
            250,
            Some(12345),
        );
        let mut out = Vec::new();
        hs.encode(&mut out);
        assert_eq!(
            out,
            b"d1:md11:ut_metadatai1e6:ut_pexi2ee13:metadata_sizei12345e4:reqqi250e1:v10:Rain 0.1.06:yourip4:\x01\x02\x03\x04e"
        );
        assert_eq!(decode(&out).unwrap(), hs);
        assert_eq!(hs.id_of("ut_pex"), Some(2));
        assert_eq!(
            ExtHandshake::rain("x", None, 1, Some(0)).metadata_size,
            None
        );
    }

    #[test]
    fn negative_and_oversize_values_are_clamped() {
        let hs = decode(b"d13:metadata_sizei-5e1:pi70000e4:reqqi-1e11:upload_onlyi7ee").unwrap();
        assert_eq!(hs.metadata_size, Some(0));
        assert_eq!(hs.reqq, Some(0));
        assert_eq!(hs.p, None);
        assert!(hs.upload_only);
        let hs = decode(b"d4:reqqi99999999999ee").unwrap();
        assert_eq!(hs.reqq, Some(u32::MAX));
    }

    #[test]
    fn odd_m_entries_are_skipped_and_bounded() {
        let hs = decode(b"d1:md1:ai0e1:bi300e1:ci-1e1:di3e1:e3:abce6:yourip3:abce").unwrap();
        assert_eq!(hs.m.into_iter().collect::<Vec<_>>(), [("d".to_owned(), 3)]);
        assert_eq!(hs.yourip, None);

        let mut many = b"d1:md".to_vec();
        for i in 0..200 {
            let name = format!("x{i:03}");
            bencode::write_bytes(&mut many, name.as_bytes());
            bencode::write_int(&mut many, 1);
        }
        many.extend_from_slice(b"ee");
        assert_eq!(decode(&many).unwrap().m.len(), 64);
    }

    #[test]
    fn malformed_payloads_are_errors() {
        assert!(matches!(decode(b"le"), Err(ExtHandshakeError::NotADict)));
        assert!(matches!(
            decode(b"d1:m"),
            Err(ExtHandshakeError::Bencode(_))
        ));
        assert!(matches!(
            decode(&vec![b'0'; 70_000]),
            Err(ExtHandshakeError::TooLarge(70_000))
        ));
        let deep = format!("d1:m{}{}e", "l".repeat(20), "e".repeat(20));
        assert!(decode(deep.as_bytes()).is_err());
    }

    proptest! {
        #[test]
        fn round_trip(
            m in proptest::collection::btree_map("[a-z_]{1,12}", 1u8.., 0..6),
            p in proptest::option::of(1u16..),
            v in proptest::option::of("[ -~]{0,30}"),
            v6 in any::<bool>(),
            ip in any::<[u8; 16]>(),
            reqq in proptest::option::of(any::<u32>()),
            size in proptest::option::of(0u64..=i64::MAX as u64),
            upload_only in any::<bool>(),
        ) {
            let yourip = Some(if v6 {
                IpAddr::V6(Ipv6Addr::from(ip))
            } else {
                IpAddr::V4(Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]))
            });
            let hs = ExtHandshake { m, p, v, yourip, reqq, metadata_size: size, upload_only };
            let mut out = Vec::new();
            hs.encode(&mut out);
            prop_assert_eq!(decode(&out).unwrap(), hs);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(&data);
        }
    }
}

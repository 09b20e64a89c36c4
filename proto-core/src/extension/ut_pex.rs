//! BEP 11 `ut_pex`: peers the sender connected to (`added`, with flags in `added.f`) or lost
//! (`dropped`), as compact 6-byte IPv4 and 18-byte IPv6 entries.
//!
//! A message carries at most 50 added and 50 dropped peers ([`MAX_PEERS`]);
//! [`PexMessage::chunked`] splits longer lists. Parsing keeps at most
//! [`PexLimits::max_peers`] entries per list, however long the lists are.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::bencode::{self, Item, Value};

/// Most added (and, separately, dropped) peers in one message, per BEP 11.
pub const MAX_PEERS: usize = 50;

/// Per-peer flags of `added.f`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct PexFlags(pub u8);

impl PexFlags {
    /// Prefers encryption.
    pub const ENCRYPTION: u8 = 0x01;
    /// Is a seed or upload-only.
    pub const SEED: u8 = 0x02;
    /// Supports uTP.
    pub const UTP: u8 = 0x04;
    /// Supports the holepunch extension.
    pub const HOLEPUNCH: u8 = 0x08;
    /// Is reachable (we connected out to it).
    pub const CONNECTABLE: u8 = 0x10;

    /// Whether every bit of `flag` is set.
    pub fn has(self, flag: u8) -> bool {
        self.0 & flag == flag
    }
}

/// An added peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PexPeer {
    /// Its address.
    pub addr: SocketAddr,
    /// What the sender knows about it.
    pub flags: PexFlags,
}

/// One `ut_pex` message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PexMessage {
    /// Peers connected since the last message.
    pub added: Vec<PexPeer>,
    /// Peers disconnected since the last message.
    pub dropped: Vec<SocketAddr>,
}

/// Bounds applied when parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PexLimits {
    /// Largest payload accepted.
    pub max_len: usize,
    /// Most entries kept per list (added, dropped), IPv4 and IPv6 together.
    pub max_peers: usize,
}

impl Default for PexLimits {
    fn default() -> Self {
        // Generous beyond the 50 of BEP 11: some clients send more in their first message.
        PexLimits {
            max_len: 64 * 1024,
            max_peers: 200,
        }
    }
}

/// Why a payload is not a `ut_pex` message, or why one cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PexError {
    /// Larger than [`PexLimits::max_len`].
    #[error("pex message of {0} bytes is too large")]
    TooLarge(usize),
    /// Not valid bencode.
    #[error("invalid bencode: {0}")]
    Bencode(#[from] bencode::Error),
    /// Not a dictionary, or a list that is not a byte string of whole entries.
    #[error("malformed field {0}")]
    Malformed(&'static str),
    /// Caller misuse: more than [`MAX_PEERS`] entries in a list to encode.
    #[error("more than 50 peers in one list")]
    TooManyPeers,
}

fn compact(addr: SocketAddr, out: &mut Vec<u8>) {
    match addr.ip() {
        IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

fn parse_compact(
    dict: &Value<'_>,
    key: &'static str,
    entry: usize,
    max: usize,
    out: &mut Vec<SocketAddr>,
) -> Result<(), PexError> {
    let Some(v) = dict.get(key.as_bytes()) else {
        return Ok(());
    };
    let bytes = v.as_bytes().ok_or(PexError::Malformed(key))?;
    if !bytes.len().is_multiple_of(entry) {
        return Err(PexError::Malformed(key));
    }
    for e in bytes.chunks_exact(entry) {
        if out.len() >= max {
            break;
        }
        let (ip, port) = e.split_at(entry - 2);
        let ip = if entry == 6 {
            IpAddr::V4(Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]))
        } else {
            let mut o = [0u8; 16];
            o.copy_from_slice(ip);
            IpAddr::V6(Ipv6Addr::from(o))
        };
        out.push(SocketAddr::new(ip, u16::from_be_bytes([port[0], port[1]])));
    }
    Ok(())
}

impl PexMessage {
    /// Decodes a payload, keeping at most `limits.max_peers` entries per list.
    pub fn decode(payload: &[u8], limits: &PexLimits) -> Result<Self, PexError> {
        if payload.len() > limits.max_len {
            return Err(PexError::TooLarge(payload.len()));
        }
        let blimits = bencode::Limits {
            max_depth: 4,
            max_size: limits.max_len,
            strict: false,
            max_tokens: bencode::Limits::DEFAULT_MAX_TOKENS,
        };
        let root = bencode::decode(payload, &blimits)?;
        if root.as_dict().is_none() {
            return Err(PexError::Malformed("root"));
        }
        let max = limits.max_peers;
        let mut added4 = Vec::new();
        parse_compact(&root, "added", 6, max, &mut added4)?;
        let mut added6 = Vec::new();
        parse_compact(&root, "added6", 18, max, &mut added6)?;
        let flags = |key: &[u8]| root.get(key).and_then(Value::as_bytes).unwrap_or(&[]);
        let (f4, f6) = (flags(b"added.f"), flags(b"added6.f"));
        let mut added: Vec<PexPeer> = added4
            .into_iter()
            .enumerate()
            .map(|(i, addr)| PexPeer {
                addr,
                flags: PexFlags(f4.get(i).copied().unwrap_or(0)),
            })
            .collect();
        added.extend(added6.into_iter().enumerate().map(|(i, addr)| PexPeer {
            addr,
            flags: PexFlags(f6.get(i).copied().unwrap_or(0)),
        }));
        added.truncate(max);
        let mut dropped = Vec::new();
        parse_compact(&root, "dropped", 6, max, &mut dropped)?;
        parse_compact(&root, "dropped6", 18, max, &mut dropped)?;
        Ok(PexMessage { added, dropped })
    }

    /// Appends the bencoded message to `out`. Lists longer than [`MAX_PEERS`] are caller
    /// misuse; use [`PexMessage::chunked`].
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), PexError> {
        if self.added.len() > MAX_PEERS || self.dropped.len() > MAX_PEERS {
            return Err(PexError::TooManyPeers);
        }
        let (mut a4, mut f4, mut a6, mut f6) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for p in &self.added {
            if p.addr.is_ipv4() {
                compact(p.addr, &mut a4);
                f4.push(p.flags.0);
            } else {
                compact(p.addr, &mut a6);
                f6.push(p.flags.0);
            }
        }
        let (mut d4, mut d6) = (Vec::new(), Vec::new());
        for a in &self.dropped {
            compact(*a, if a.is_ipv4() { &mut d4 } else { &mut d6 });
        }
        Item::dict()
            .with("added", a4)
            .with("added.f", f4)
            .with("added6", a6)
            .with("added6.f", f6)
            .with("dropped", d4)
            .with("dropped6", d6)
            .encode(out);
        Ok(())
    }

    /// Splits long lists into messages of at most [`MAX_PEERS`] added and dropped peers.
    pub fn chunked(added: &[PexPeer], dropped: &[SocketAddr]) -> Vec<PexMessage> {
        let n = added.len().max(dropped.len()).div_ceil(MAX_PEERS);
        (0..n)
            .map(|i| {
                let part = |len: usize| (i * MAX_PEERS).min(len)..((i + 1) * MAX_PEERS).min(len);
                PexMessage {
                    added: added[part(added.len())].to_vec(),
                    dropped: dropped[part(dropped.len())].to_vec(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn v4(i: u32, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::from(i)), port)
    }

    fn decode(b: &[u8]) -> Result<PexMessage, PexError> {
        PexMessage::decode(b, &PexLimits::default())
    }

    #[test]
    fn known_encoding() {
        let m = PexMessage {
            added: vec![PexPeer {
                addr: "1.2.3.4:6881".parse().unwrap(),
                flags: PexFlags(PexFlags::SEED | PexFlags::CONNECTABLE),
            }],
            dropped: vec!["[::1]:80".parse().unwrap()],
        };
        let mut out = Vec::new();
        m.encode(&mut out).unwrap();
        let mut want = b"d5:added6:\x01\x02\x03\x04\x1a\xe17:added.f1:\x126:added60:8:added6.f0:7:dropped0:8:dropped618:".to_vec();
        want.extend_from_slice(&[0; 15]);
        want.extend_from_slice(&[1, 0, 80, b'e']);
        assert_eq!(out, want);
        let back = decode(&out).unwrap();
        assert_eq!(back, m);
        assert!(back.added[0].flags.has(PexFlags::SEED));
        assert!(!back.added[0].flags.has(PexFlags::UTP));
    }

    #[test]
    fn at_most_fifty_per_message() {
        let added: Vec<PexPeer> = (0..120)
            .map(|i| PexPeer {
                addr: v4(i, 1),
                flags: PexFlags::default(),
            })
            .collect();
        let dropped: Vec<SocketAddr> = (0..30).map(|i| v4(i, 2)).collect();
        let too_many = PexMessage {
            added: added.clone(),
            dropped: Vec::new(),
        };
        assert_eq!(
            too_many.encode(&mut Vec::new()),
            Err(PexError::TooManyPeers)
        );
        let chunks = PexMessage::chunked(&added, &dropped);
        assert_eq!(chunks.len(), 3);
        assert_eq!(
            chunks.iter().map(|c| c.added.len()).collect::<Vec<_>>(),
            [50, 50, 20]
        );
        assert_eq!(
            chunks.iter().map(|c| c.dropped.len()).collect::<Vec<_>>(),
            [30, 0, 0]
        );
        for c in &chunks {
            c.encode(&mut Vec::new()).unwrap();
        }
        assert!(PexMessage::chunked(&[], &[]).is_empty());
    }

    #[test]
    fn parsing_is_bounded() {
        let mut many = Vec::new();
        for i in 0..6000u32 {
            compact(v4(i, 7), &mut many);
        }
        let mut payload = b"d5:added".to_vec();
        bencode::write_bytes(&mut payload, &many);
        payload.extend_from_slice(b"7:dropped");
        bencode::write_bytes(&mut payload, &many);
        payload.push(b'e');
        let m = PexMessage::decode(
            &payload,
            &PexLimits {
                max_len: 1 << 20,
                max_peers: 10,
            },
        )
        .unwrap();
        assert_eq!(m.added.len(), 10);
        assert_eq!(m.dropped.len(), 10);
        assert_eq!(m.added[9].addr, v4(9, 7));
        assert!(matches!(decode(&payload), Err(PexError::TooLarge(_))));
    }

    #[test]
    fn malformed_lists_are_errors() {
        assert_eq!(
            decode(b"d5:added5:abcdee"),
            Err(PexError::Malformed("added"))
        );
        assert_eq!(decode(b"d5:addedi1ee"), Err(PexError::Malformed("added")));
        assert_eq!(decode(b"le"), Err(PexError::Malformed("root")));
        assert!(matches!(decode(b"d5:added"), Err(PexError::Bencode(_))));
        // Missing flags are zero.
        let m = decode(b"d5:added6:\x01\x02\x03\x04\x00\x01e").unwrap();
        assert_eq!(m.added[0].flags, PexFlags(0));
    }

    proptest! {
        #[test]
        fn round_trip(
            added in proptest::collection::vec((any::<[u8; 16]>(), any::<u16>(), any::<bool>(), any::<u8>()), 0..50),
            dropped in proptest::collection::vec((any::<u32>(), any::<u16>()), 0..50),
        ) {
            // Encoding groups IPv4 before IPv6, so generate them in that order.
            let mut added: Vec<PexPeer> = added
                .into_iter()
                .map(|(ip, port, six, flags)| PexPeer {
                    addr: if six {
                        SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port)
                    } else {
                        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3])), port)
                    },
                    flags: PexFlags(flags),
                })
                .collect();
            added.sort_by_key(|p| p.addr.is_ipv6());
            let dropped = dropped.into_iter().map(|(ip, port)| v4(ip, port)).collect();
            let m = PexMessage { added, dropped };
            let mut out = Vec::new();
            m.encode(&mut out).unwrap();
            prop_assert_eq!(decode(&out).unwrap(), m);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(&data);
        }
    }
}

//! 160-bit node ids, XOR distance, and BEP 42 ids derived from an external address.

use std::fmt;
use std::net::IpAddr;

use crate::InfoHash;
use crate::rng::Rng;

/// A DHT node id (or any point of the 160-bit key space, such as an info-hash).
///
/// Ids compare as big-endian 160-bit numbers, so a [`NodeId`] holding an XOR distance orders
/// distances correctly.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NodeId(pub [u8; 20]);

/// Mask applied to the first four octets of an IPv4 address (BEP 42).
const V4_MASK: [u8; 4] = [0x03, 0x0f, 0x3f, 0xff];
/// Mask applied to the first eight octets of an IPv6 address (BEP 42).
const V6_MASK: [u8; 8] = [0x01, 0x03, 0x07, 0x0f, 0x1f, 0x3f, 0x7f, 0xff];

impl NodeId {
    /// A uniformly random id.
    pub fn random(rng: &mut Rng) -> Self {
        let mut id = [0u8; 20];
        rng.fill(&mut id);
        NodeId(id)
    }

    /// The XOR distance to `other`, as an id-sized number.
    pub fn distance(&self, other: &NodeId) -> NodeId {
        let mut d = [0u8; 20];
        for (i, b) in d.iter_mut().enumerate() {
            *b = self.0[i] ^ other.0[i];
        }
        NodeId(d)
    }

    /// Number of leading bits `self` and `other` share (160 when equal).
    pub fn common_prefix_len(&self, other: &NodeId) -> usize {
        for i in 0..20 {
            let x = self.0[i] ^ other.0[i];
            if x != 0 {
                return i * 8 + x.leading_zeros() as usize;
            }
        }
        160
    }

    /// Bit `i` (0 = most significant).
    pub fn bit(&self, i: usize) -> bool {
        self.0[i / 8] & (0x80 >> (i % 8)) != 0
    }

    /// Sets bit `i` (0 = most significant) to `value`.
    pub fn set_bit(&mut self, i: usize, value: bool) {
        let mask = 0x80 >> (i % 8);
        if value {
            self.0[i / 8] |= mask;
        } else {
            self.0[i / 8] &= !mask;
        }
    }

    /// A random id sharing exactly the first `prefix_len` bits with `self` when `flip` is set
    /// (bit `prefix_len` differs), or at least `prefix_len` bits when it is not.
    pub fn random_with_prefix(&self, prefix_len: usize, flip: bool, rng: &mut Rng) -> NodeId {
        let mut out = NodeId::random(rng);
        for i in 0..prefix_len.min(160) {
            out.set_bit(i, self.bit(i));
        }
        if flip && prefix_len < 160 {
            out.set_bit(prefix_len, !self.bit(prefix_len));
        }
        out
    }

    /// A BEP 42 id for `ip`: the first 21 bits come from CRC32-C of the masked address and
    /// `r`, the last byte is `r`, the rest is `random`.
    pub fn secure_with(ip: IpAddr, r: u8, random: [u8; 17]) -> NodeId {
        let crc = secure_prefix(ip, r);
        let mut id = [0u8; 20];
        id[3..19].copy_from_slice(&random[1..]);
        id[0] = (crc >> 24) as u8;
        id[1] = (crc >> 16) as u8;
        id[2] = ((crc >> 8) as u8 & 0xf8) | (random[0] & 0x07);
        id[19] = r;
        NodeId(id)
    }

    /// A random BEP 42 id for our external address `ip`.
    pub fn secure(ip: IpAddr, rng: &mut Rng) -> NodeId {
        let mut random = [0u8; 17];
        rng.fill(&mut random);
        let r = (rng.next_u64() & 0xff) as u8;
        NodeId::secure_with(ip, r, random)
    }

    /// True when this id satisfies BEP 42 for a node at `ip`. Local addresses (loopback,
    /// private, link-local, unspecified) are exempt and always pass.
    pub fn is_secure_for(&self, ip: IpAddr) -> bool {
        if is_bep42_exempt(ip) {
            return true;
        }
        let crc = secure_prefix(ip, self.0[19]);
        self.0[0] == (crc >> 24) as u8
            && self.0[1] == (crc >> 16) as u8
            && (self.0[2] & 0xf8) == ((crc >> 8) as u8 & 0xf8)
    }
}

/// CRC32-C of the masked address with `r`'s low three bits in the top of the first octet.
fn secure_prefix(ip: IpAddr, r: u8) -> u32 {
    let r = r & 0x07;
    match ip {
        IpAddr::V4(v4) => {
            let mut b = v4.octets();
            for (o, m) in b.iter_mut().zip(V4_MASK) {
                *o &= m;
            }
            b[0] |= r << 5;
            crc32c::crc32c(&b)
        }
        IpAddr::V6(v6) => {
            let o = v6.octets();
            let mut b = [0u8; 8];
            for i in 0..8 {
                b[i] = o[i] & V6_MASK[i];
            }
            b[0] |= r << 5;
            crc32c::crc32c(&b)
        }
    }
}

/// Addresses BEP 42 exempts from id verification: loopback, private, link-local, unspecified
/// and unique-local.
pub fn is_bep42_exempt(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified()
        }
        IpAddr::V6(v6) => {
            let seg0 = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (seg0 & 0xfe00) == 0xfc00
                || (seg0 & 0xffc0) == 0xfe80
        }
    }
}

impl From<InfoHash> for NodeId {
    fn from(h: InfoHash) -> Self {
        NodeId(h.0)
    }
}

impl From<NodeId> for InfoHash {
    fn from(id: NodeId) -> Self {
        InfoHash(id.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", data_encoding::HEXLOWER.encode(&self.0))
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&data_encoding::HEXLOWER.encode(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Seed;

    fn hex_id(s: &str) -> NodeId {
        NodeId(
            data_encoding::HEXLOWER
                .decode(s.as_bytes())
                .unwrap()
                .try_into()
                .unwrap(),
        )
    }

    /// BEP 42's published vectors: (ip, r, id). Only the first 21 bits and the last byte are
    /// determined by the address; the rest is random.
    const VECTORS: [(&str, u8, &str); 5] = [
        (
            "124.31.75.21",
            1,
            "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401",
        ),
        (
            "21.75.31.124",
            86,
            "5a3ce9c14e7a08645677bbd1cfe7d8f956d53256",
        ),
        (
            "65.23.51.170",
            22,
            "a5d43220bc8f112a3d426c84764f8c2a1150e616",
        ),
        (
            "84.124.73.14",
            65,
            "1b0321dd1bb1fe518101ceef99462b947a01ff41",
        ),
        (
            "43.213.53.83",
            90,
            "e56f6cbf5b7c4be0237986d5243b87aa6d51305a",
        ),
    ];

    #[test]
    fn bep42_vectors_generate_and_verify() {
        for (ip, r, id) in VECTORS {
            let ip: IpAddr = ip.parse().unwrap();
            let published = hex_id(id);
            assert!(published.is_secure_for(ip), "{ip}");
            let mut random = [0u8; 17];
            random[0] = published.0[2] & 0x07;
            random[1..].copy_from_slice(&published.0[3..19]);
            assert_eq!(NodeId::secure_with(ip, r, random), published, "{ip}");
            // Another address does not verify.
            let other: IpAddr = "1.2.3.4".parse().unwrap();
            assert!(!published.is_secure_for(other), "{ip}");
        }
    }

    #[test]
    fn bep42_random_ids_verify_and_local_is_exempt() {
        let mut rng = Rng::new(Seed::from_u64(3));
        for ip in ["8.8.8.8", "2001:db8::1", "203.0.113.9"] {
            let ip: IpAddr = ip.parse().unwrap();
            let id = NodeId::secure(ip, &mut rng);
            assert!(id.is_secure_for(ip));
            let mut bad = id;
            bad.0[0] ^= 0x80;
            assert!(!bad.is_secure_for(ip));
        }
        let random = NodeId::random(&mut rng);
        assert!(random.is_secure_for("127.0.0.1".parse().unwrap()));
        assert!(random.is_secure_for("10.1.2.3".parse().unwrap()));
        assert!(random.is_secure_for("fe80::1".parse().unwrap()));
    }

    #[test]
    fn distance_and_prefixes() {
        let a = NodeId([0u8; 20]);
        let mut b = a;
        b.0[1] = 0x10;
        assert_eq!(a.common_prefix_len(&b), 11);
        assert_eq!(a.common_prefix_len(&a), 160);
        assert_eq!(a.distance(&b), b);
        assert!(a.distance(&b) < a.distance(&NodeId([0xff; 20])));
        let mut rng = Rng::new(Seed::from_u64(1));
        for p in [0, 5, 80, 159] {
            let x = b.random_with_prefix(p, true, &mut rng);
            assert_eq!(x.common_prefix_len(&b), p);
            let y = b.random_with_prefix(p, false, &mut rng);
            assert!(y.common_prefix_len(&b) >= p);
        }
    }
}

//! BEP 6 allowed-fast set: pieces a peer may request from us while we choke it.
//!
//! The set is derived from the peer's /24 and the info-hash, so a peer cannot get a different
//! set by reconnecting from a neighbouring address, and both sides can compute it.

use std::net::Ipv4Addr;

use crate::hash::{InfoHash, sha1};

/// The BEP 6 allowed-fast set of `k` pieces for a peer at `ip`, in generation order.
///
/// `k` is capped at `piece_count` (otherwise the algorithm could never finish); a torrent with
/// no pieces yields an empty set. BEP 6 defines the algorithm for IPv4 only.
pub fn allowed_fast_set(
    ip: Ipv4Addr,
    info_hash: &InfoHash,
    piece_count: u32,
    k: usize,
) -> Vec<u32> {
    let k = k.min(piece_count as usize);
    let mut set = Vec::with_capacity(k);
    if k == 0 {
        return set;
    }
    let mut masked = ip.octets();
    masked[3] = 0;
    let mut seed = [0u8; 24];
    seed[..4].copy_from_slice(&masked);
    seed[4..].copy_from_slice(&info_hash.0);
    let mut x = sha1(&seed);
    loop {
        for word in x.chunks_exact(4) {
            let y = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
            let index = y % piece_count;
            if !set.contains(&index) {
                set.push(index);
                if set.len() == k {
                    return set;
                }
            }
        }
        x = sha1(&x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: Ipv4Addr = Ipv4Addr::new(80, 4, 4, 200);
    const HASH: InfoHash = InfoHash([0xaa; 20]);

    #[test]
    fn bep6_published_vectors() {
        assert_eq!(
            allowed_fast_set(IP, &HASH, 1313, 7),
            [1059, 431, 808, 1217, 287, 376, 1188]
        );
        assert_eq!(
            allowed_fast_set(IP, &HASH, 1313, 9),
            [1059, 431, 808, 1217, 287, 376, 1188, 353, 508]
        );
    }

    #[test]
    fn same_slash_24_same_set_and_bounds_hold() {
        let neighbour = Ipv4Addr::new(80, 4, 4, 1);
        assert_eq!(
            allowed_fast_set(neighbour, &HASH, 1313, 9),
            allowed_fast_set(IP, &HASH, 1313, 9)
        );
        assert_ne!(
            allowed_fast_set(Ipv4Addr::new(80, 4, 5, 1), &HASH, 1313, 9),
            allowed_fast_set(IP, &HASH, 1313, 9)
        );
        assert!(allowed_fast_set(IP, &HASH, 0, 10).is_empty());
        let mut all = allowed_fast_set(IP, &HASH, 3, 10);
        all.sort_unstable();
        assert_eq!(all, [0, 1, 2]);
    }
}

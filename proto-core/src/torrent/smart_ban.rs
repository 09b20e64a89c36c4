//! Smart ban: finding the peer that sends corrupt data.
//!
//! When a piece fails its hash check, every block's sender (by IP) and the SHA-1 of the block
//! it sent are remembered (for at most `max_smart_ban_pieces` pieces, oldest forgotten). Then:
//!
//! - a peer that sent **every** block of a failed piece is banned at once (it is certainly
//!   the culprit);
//! - when the piece later passes, each remembered block is compared with the good one: a
//!   sender whose block differed is banned; one whose blocks matched is trusted;
//! - a peer involved in `max_hash_failures` failed pieces is banned unless it is trusted:
//!   it sent blocks of a piece that passed (a comparison that proves its blocks good also
//!   takes one strike off).
//!
//! Bans go to the address book (refused from then on) and the peer's connections are closed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;

use bytes::Bytes;

use crate::hash::sha1;

/// Most IPs with strikes or trust remembered.
const MAX_TRACKED_IPS: usize = 4096;

#[derive(Debug, Clone, Default)]
pub(super) struct SmartBan {
    records: BTreeMap<u32, Vec<(u32, IpAddr, [u8; 20])>>,
    order: VecDeque<u32>,
    strikes: BTreeMap<IpAddr, u32>,
    trusted: BTreeSet<IpAddr>,
}

impl SmartBan {
    /// Piece `piece` failed; `blocks` are `(block index, sender, data)`. Returns IPs to ban.
    pub fn piece_failed(
        &mut self,
        piece: u32,
        blocks: &[(u32, IpAddr, Bytes)],
        max_pieces: usize,
        max_failures: u32,
    ) -> Vec<IpAddr> {
        let senders: BTreeSet<IpAddr> = blocks.iter().map(|b| b.1).collect();
        let mut ban = Vec::new();
        if senders.len() == 1 {
            ban.extend(senders.iter().copied());
        }
        for &ip in &senders {
            if self.strikes.len() >= MAX_TRACKED_IPS && !self.strikes.contains_key(&ip) {
                continue;
            }
            let s = self.strikes.entry(ip).or_insert(0);
            *s += 1;
            if *s >= max_failures && !self.trusted.contains(&ip) && !ban.contains(&ip) {
                ban.push(ip);
            }
        }
        if max_pieces > 0 && senders.len() > 1 {
            let rec = blocks.iter().map(|(i, ip, d)| (*i, *ip, sha1(d))).collect();
            if self.records.insert(piece, rec).is_none() {
                self.order.push_back(piece);
            }
            while self.order.len() > max_pieces {
                if let Some(old) = self.order.pop_front() {
                    self.records.remove(&old);
                }
            }
        }
        ban
    }

    /// Piece `piece` passed with these blocks `(block index, sender, data)`. Returns IPs to
    /// ban.
    pub fn piece_passed(&mut self, piece: u32, blocks: &[(u32, IpAddr, Bytes)]) -> Vec<IpAddr> {
        for (_, ip, _) in blocks {
            if self.trusted.len() < MAX_TRACKED_IPS {
                self.trusted.insert(*ip);
            }
        }
        let Some(rec) = self.records.remove(&piece) else {
            return Vec::new();
        };
        self.order.retain(|&p| p != piece);
        let mut bad = BTreeSet::new();
        let mut good = BTreeSet::new();
        for (idx, ip, h) in rec {
            if let Some((_, _, d)) = blocks.iter().find(|b| b.0 == idx) {
                if sha1(d) == h {
                    good.insert(ip);
                } else {
                    bad.insert(ip);
                }
            }
        }
        for ip in good.difference(&bad) {
            if let Some(s) = self.strikes.get_mut(ip) {
                *s = s.saturating_sub(1);
            }
            if self.trusted.len() < MAX_TRACKED_IPS {
                self.trusted.insert(*ip);
            }
        }
        for ip in &bad {
            self.trusted.remove(ip);
        }
        bad.into_iter().collect()
    }

    /// Pieces whose block hashes are remembered.
    #[cfg(test)]
    pub fn remembered(&self) -> usize {
        self.records.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn sole_sender_is_banned_and_mismatch_is_found() {
        let mut s = SmartBan::default();
        let b = |x: u8| Bytes::from(vec![x; 4]);
        assert_eq!(
            s.piece_failed(0, &[(0, ip(1), b(1)), (1, ip(1), b(2))], 8, 5),
            vec![ip(1)]
        );
        assert!(
            s.piece_failed(1, &[(0, ip(2), b(1)), (1, ip(3), b(9))], 8, 5)
                .is_empty()
        );
        assert_eq!(s.remembered(), 1);
        assert_eq!(
            s.piece_passed(1, &[(0, ip(4), b(1)), (1, ip(4), b(2))]),
            vec![ip(3)]
        );
        assert_eq!(s.remembered(), 0);
    }
}

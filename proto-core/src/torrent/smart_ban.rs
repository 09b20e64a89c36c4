//! Smart ban: finding the peer that sends corrupt data without banning honest ones.
//!
//! When a piece fails its hash check:
//!
//! - a peer that sent **every** block of it is banned at once (it is certainly the culprit);
//! - otherwise every sender (by IP) is put on **parole** (the picker gives it only whole
//!   pieces to download alone, so its next bad piece names it for certain), and the SHA-1 of
//!   each block with its sender is remembered (for at most `max_smart_ban_pieces` pieces,
//!   oldest forgotten).
//!
//! When a piece passes, its senders leave parole (their blocks were good), and if the piece
//! failed before, each remembered block is compared with the good one: a sender whose block
//! differed is banned.
//!
//! Nobody is banned for merely sharing failed pieces with a corrupt peer (counting such
//! "strikes" banned honest seeds that happened to serve the same pieces).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;

use bytes::Bytes;

use crate::hash::sha1;

/// Most IPs on parole at once; more are not paroled (their pieces still get compared).
const MAX_PAROLED_IPS: usize = 4096;

/// What to do after a hash check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Verdict {
    /// IPs to ban.
    pub ban: Vec<IpAddr>,
    /// IPs to put on parole.
    pub parole: Vec<IpAddr>,
    /// IPs to take off parole.
    pub release: Vec<IpAddr>,
}

#[derive(Debug, Clone, Default)]
pub(super) struct SmartBan {
    records: BTreeMap<u32, Vec<(u32, IpAddr, [u8; 20])>>,
    order: VecDeque<u32>,
    parole: BTreeSet<IpAddr>,
}

impl SmartBan {
    /// Piece `piece` failed; `blocks` are `(block index, sender, data)`.
    pub fn piece_failed(
        &mut self,
        piece: u32,
        blocks: &[(u32, IpAddr, Bytes)],
        max_pieces: usize,
    ) -> Verdict {
        let senders: BTreeSet<IpAddr> = blocks.iter().map(|b| b.1).collect();
        let mut v = Verdict::default();
        if senders.len() == 1 {
            v.ban.extend(senders);
            return v;
        }
        for ip in senders {
            if self.parole.len() < MAX_PAROLED_IPS && self.parole.insert(ip) {
                v.parole.push(ip);
            }
        }
        if max_pieces > 0 && !blocks.is_empty() {
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
        v
    }

    /// Piece `piece` passed with these blocks `(block index, sender, data)`.
    pub fn piece_passed(&mut self, piece: u32, blocks: &[(u32, IpAddr, Bytes)]) -> Verdict {
        let mut bad = BTreeSet::new();
        if let Some(rec) = self.records.remove(&piece) {
            self.order.retain(|&p| p != piece);
            for (idx, ip, h) in rec {
                if let Some((_, _, d)) = blocks.iter().find(|b| b.0 == idx)
                    && sha1(d) != h
                {
                    bad.insert(ip);
                }
            }
        }
        let mut v = Verdict::default();
        for (_, ip, _) in blocks {
            if !bad.contains(ip) && self.parole.remove(ip) {
                v.release.push(*ip);
            }
        }
        for ip in &bad {
            self.parole.remove(ip);
        }
        v.ban = bad.into_iter().collect();
        v
    }

    /// True if peers from `ip` download on parole.
    pub fn on_parole(&self, ip: IpAddr) -> bool {
        self.parole.contains(&ip)
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

    fn b(x: u8) -> Bytes {
        Bytes::from(vec![x; 4])
    }

    #[test]
    fn sole_sender_is_banned_and_mismatch_is_found() {
        let mut s = SmartBan::default();
        let v = s.piece_failed(0, &[(0, ip(1), b(1)), (1, ip(1), b(2))], 8);
        assert_eq!(v.ban, [ip(1)]);
        let v = s.piece_failed(1, &[(0, ip(2), b(1)), (1, ip(3), b(9))], 8);
        assert!(v.ban.is_empty());
        assert_eq!(v.parole, [ip(2), ip(3)]);
        assert!(s.on_parole(ip(2)) && s.on_parole(ip(3)));
        assert_eq!(s.remembered(), 1);
        let v = s.piece_passed(1, &[(0, ip(4), b(1)), (1, ip(4), b(2))]);
        assert_eq!(v.ban, [ip(3)]);
        assert_eq!(s.remembered(), 0);
        assert!(!s.on_parole(ip(3)));
    }

    #[test]
    fn sharing_failed_pieces_never_bans_an_honest_peer() {
        // An honest seed (1) shares many failed pieces with a corrupt peer (2): it is paroled,
        // never banned, and released by the first piece it completes alone.
        let mut s = SmartBan::default();
        for piece in 0..10 {
            let v = s.piece_failed(piece, &[(0, ip(1), b(1)), (1, ip(2), b(9))], 4);
            assert!(v.ban.is_empty());
        }
        assert!(s.on_parole(ip(1)));
        let v = s.piece_passed(20, &[(0, ip(1), b(1)), (1, ip(1), b(2))]);
        assert_eq!(v.release, [ip(1)]);
        assert!(v.ban.is_empty());
        assert!(!s.on_parole(ip(1)));
        assert!(s.on_parole(ip(2)));
        // The corrupt peer's next piece, alone on parole, bans it.
        let v = s.piece_failed(21, &[(0, ip(2), b(9)), (1, ip(2), b(9))], 4);
        assert_eq!(v.ban, [ip(2)]);
    }
}

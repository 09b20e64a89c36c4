//! Learning our external address by vote (BEP 42).
//!
//! Every response carries an `ip` field: the address the responder saw our query come from.
//! One node can lie (or sit behind a translating middlebox), so no single answer is trusted:
//! [`IpVoter`] counts at most one vote per voter subnet (/24 for IPv4, /64 for IPv6, the unit
//! one operator typically controls), and adopts an address only once it has
//! [`MIN_VOTES_TO_ADOPT`] votes and more than half of the votes cast. Votes are counted in
//! rounds of [`MAX_VOTES_PER_ROUND`] voters; a new round forgets the old tallies (but not the
//! adopted address), so a real change of our address wins the next round. Voters on local
//! addresses are ignored: they see our LAN address, not the external one.
//!
//! Bounded: [`MAX_CANDIDATES`] addresses tracked, [`MAX_VOTES_PER_ROUND`] voters remembered.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::node_id::is_bep42_exempt;
use super::routing::subnet_of;

/// Votes the leading address needs before it is adopted: fewer colluding subnets cannot move
/// our address (and with it our BEP 42 id).
pub const MIN_VOTES_TO_ADOPT: usize = 10;

/// Most candidate addresses tallied at once; beyond it the weakest is forgotten, so a flood of
/// made-up addresses cannot grow the table.
pub const MAX_CANDIDATES: usize = 16;

/// Voter subnets remembered per round; when reached, the round ends and a new tally starts, so
/// the voter set stays bounded and a changed address can win later.
pub const MAX_VOTES_PER_ROUND: usize = 100;

/// Tallies `ip` reports from distinct voter subnets and picks the majority address.
#[derive(Debug, Clone, Default)]
pub struct IpVoter {
    candidates: BTreeMap<IpAddr, usize>,
    voters: BTreeSet<IpAddr>,
    current: Option<IpAddr>,
}

impl IpVoter {
    /// A voter with no votes and no adopted address.
    pub fn new() -> Self {
        IpVoter::default()
    }

    /// The adopted address, if a vote has settled one.
    pub fn current(&self) -> Option<IpAddr> {
        self.current
    }

    /// Candidate addresses tallied in the current round.
    pub fn candidates(&self) -> usize {
        self.candidates.len()
    }

    /// Records that the node at `voter` saw us at `reported`. Returns the newly adopted
    /// address when this vote changed the winner.
    ///
    /// Ignored: voters on local addresses, a second vote from a subnet in the same round, and
    /// reports that cannot be an external address of ours (unspecified, multicast, or of
    /// another address family than the voter's).
    pub fn vote(&mut self, voter: IpAddr, reported: IpAddr) -> Option<IpAddr> {
        if is_bep42_exempt(voter)
            || reported.is_unspecified()
            || reported.is_multicast()
            || voter.is_ipv4() != reported.is_ipv4()
        {
            return None;
        }
        if !self.voters.insert(subnet_of(voter)) {
            return None;
        }
        if !self.candidates.contains_key(&reported) && self.candidates.len() >= MAX_CANDIDATES {
            // Forget the weakest candidate (fewest votes; the highest address on a tie, so the
            // choice is deterministic).
            let weakest = self
                .candidates
                .iter()
                .min_by_key(|(ip, n)| (**n, std::cmp::Reverse(**ip)))
                .map(|(ip, _)| *ip);
            if let Some(ip) = weakest {
                self.candidates.remove(&ip);
            }
        }
        *self.candidates.entry(reported).or_insert(0) += 1;
        let changed = self.decide();
        if self.voters.len() >= MAX_VOTES_PER_ROUND {
            self.voters.clear();
            self.candidates.clear();
        }
        changed
    }

    /// Adopts the round's leader if it has enough votes and a majority.
    fn decide(&mut self) -> Option<IpAddr> {
        let total: usize = self.candidates.values().sum();
        let (&ip, &n) = self.candidates.iter().max_by_key(|(_, n)| **n)?;
        let majority = n * 2 > total;
        if n >= MIN_VOTES_TO_ADOPT && majority && self.current != Some(ip) {
            self.current = Some(ip);
            return Some(ip);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// A public voter address in its own /24 for each `i`.
    fn voter(i: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x5000_0000 + (i << 8) + 7))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn adopts_the_majority_after_the_minimum_votes() {
        let mut v = IpVoter::new();
        let ours = ip("203.0.113.5");
        for i in 0..MIN_VOTES_TO_ADOPT as u32 - 1 {
            assert_eq!(v.vote(voter(i), ours), None);
        }
        assert_eq!(v.current(), None, "not before the minimum");
        assert_eq!(v.vote(voter(100), ours), Some(ours));
        assert_eq!(v.current(), Some(ours));
        // Further votes for the same address change nothing.
        assert_eq!(v.vote(voter(101), ours), None);
    }

    #[test]
    fn one_vote_per_subnet() {
        let mut v = IpVoter::new();
        let liar = ip("198.51.100.1");
        // Many hosts (and ports) in one /24 count once.
        for host in 1..=250u8 {
            v.vote(IpAddr::V4(Ipv4Addr::new(80, 1, 2, host)), liar);
        }
        assert_eq!(v.current(), None);
        // Local voters see our LAN address: ignored.
        for host in 1..=250u8 {
            v.vote(IpAddr::V4(Ipv4Addr::new(192, 168, host, 1)), liar);
            v.vote(IpAddr::V4(Ipv4Addr::new(10, host, 0, 1)), liar);
        }
        assert_eq!(v.current(), None);
        // IPv6 voters are grouped by /64.
        let mut v6 = IpVoter::new();
        for host in 1..=250u16 {
            let voter: IpAddr = format!("2001:db8:1:2::{host:x}").parse().unwrap();
            v6.vote(voter, ip("2001:db8:ffff::1"));
        }
        assert_eq!(v6.current(), None);
    }

    #[test]
    fn a_minority_of_liars_does_not_win() {
        let mut v = IpVoter::new();
        let ours = ip("203.0.113.5");
        let lie = ip("198.51.100.1");
        let other = ip("198.51.100.2");
        // Fewer liars than the minimum can never win, whatever their order.
        for i in 0..MIN_VOTES_TO_ADOPT as u32 - 1 {
            v.vote(voter(i), lie);
        }
        assert_eq!(v.current(), None);
        // Enough votes without a majority do not win either.
        for i in 0..6 {
            v.vote(voter(500 + i), other);
        }
        for i in 0..MIN_VOTES_TO_ADOPT as u32 {
            assert_eq!(v.vote(voter(1000 + i), ours), None, "no majority yet");
        }
        let mut adopted = None;
        for i in 0..MIN_VOTES_TO_ADOPT as u32 {
            adopted = adopted.or(v.vote(voter(2000 + i), ours));
        }
        assert_eq!(adopted, Some(ours), "adopted once it holds a majority");
        // Liars arriving later cannot flip a majority.
        for i in 0..MIN_VOTES_TO_ADOPT as u32 {
            assert_eq!(v.vote(voter(3000 + i), lie), None);
        }
        assert_eq!(v.current(), Some(ours));
        // Garbage reports are not votes.
        assert_eq!(v.vote(voter(4000), ip("0.0.0.0")), None);
        assert_eq!(v.vote(voter(4001), ip("224.0.0.1")), None);
        assert_eq!(v.vote(voter(4002), ip("2001:db8::1")), None);
    }

    #[test]
    fn candidates_are_bounded_and_a_new_address_wins_a_later_round() {
        let mut v = IpVoter::new();
        let old = ip("203.0.113.5");
        let new = ip("203.0.113.77");
        for i in 0..MIN_VOTES_TO_ADOPT as u32 {
            v.vote(voter(i), old);
        }
        assert_eq!(v.current(), Some(old));
        // A flood of distinct made-up addresses from distinct subnets stays bounded.
        for i in 0..50u32 {
            let fake = IpAddr::V4(Ipv4Addr::from(0xc633_6400 + i));
            v.vote(voter(10_000 + i), fake);
            assert!(v.candidates() <= MAX_CANDIDATES);
        }
        assert_eq!(v.current(), Some(old), "no fake reached a majority");
        // Our address changes: every node now reports the new one. Within at most two rounds
        // it wins.
        let mut adopted = None;
        for i in 0..(2 * MAX_VOTES_PER_ROUND) as u32 {
            if let Some(ip) = v.vote(voter(20_000 + i), new) {
                adopted = Some(ip);
                break;
            }
        }
        assert_eq!(adopted, Some(new));
        assert_eq!(v.current(), Some(new));
    }
}

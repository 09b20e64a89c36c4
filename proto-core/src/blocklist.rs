//! IP blocklist: a set of address ranges with fast lookup.
//!
//! The input is the text rain downloads from `blocklist-url` (rain-behaviour §1.16), one rule a
//! line:
//! - CIDR: `1.2.3.0/24`, `2001:db8::/32`, or a bare address (`/32`, `/128`);
//! - P2P / PeerGuardian: `some name:1.2.3.0-1.2.3.255` (the name may itself contain `:`).
//!
//! Blank lines and lines starting with `#` are skipped. Lines that parse as neither are counted
//! in [`Blocklist::bad_lines`] and skipped. As in rain, a list with zero valid rules and at least
//! one bad line is an error ([`BlocklistError::NoValidRules`]); an empty list is fine.
//!
//! Ranges are merged (overlapping and adjacent ones joined) into sorted vectors, and
//! [`Blocklist::contains`] is a binary search: O(log ranges), no allocation.

use std::net::{IpAddr, Ipv4Addr};

use thiserror::Error;

/// Limits applied while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlocklistLimits {
    /// Most lines read (blank and comment lines included).
    pub max_lines: usize,
    /// Longest line considered; longer lines count as bad.
    pub max_line_len: usize,
}

impl Default for BlocklistLimits {
    fn default() -> Self {
        // rain accepts bodies up to 100 MiB (`blocklist-max-response-size`); real lists have
        // a few hundred thousand lines.
        BlocklistLimits {
            max_lines: 10_000_000,
            max_line_len: 1024,
        }
    }
}

/// Why a blocklist was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BlocklistError {
    /// No line was a valid rule and at least one was bad.
    #[error("no valid rules ({bad_lines} bad lines)")]
    NoValidRules {
        /// Lines that could not be parsed.
        bad_lines: usize,
    },
    /// More lines than [`BlocklistLimits::max_lines`].
    #[error("blocklist has more than {limit} lines")]
    TooManyLines {
        /// The limit.
        limit: usize,
    },
}

/// A parsed blocklist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blocklist {
    /// Disjoint, non-adjacent, ascending inclusive IPv4 ranges.
    v4: Vec<(u32, u32)>,
    /// Disjoint, non-adjacent, ascending inclusive IPv6 ranges.
    v6: Vec<(u128, u128)>,
    rules: usize,
    bad_lines: usize,
}

impl Blocklist {
    /// An empty blocklist (blocks nothing).
    pub fn empty() -> Self {
        Blocklist::default()
    }

    /// Parses a blocklist body (bytes, as downloaded; lines that are not UTF-8 are bad).
    pub fn parse(text: &[u8], limits: BlocklistLimits) -> Result<Self, BlocklistError> {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let mut bad_lines = 0;
        for (n, raw) in text.split(|&b| b == b'\n').enumerate() {
            if n >= limits.max_lines {
                return Err(BlocklistError::TooManyLines {
                    limit: limits.max_lines,
                });
            }
            if raw.len() > limits.max_line_len {
                bad_lines += 1;
                continue;
            }
            let Ok(line) = std::str::from_utf8(raw) else {
                bad_lines += 1;
                continue;
            };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match parse_rule(line) {
                Some(Rule::V4(a, b)) => v4.push((a, b)),
                Some(Rule::V6(a, b)) => v6.push((a, b)),
                None => bad_lines += 1,
            }
        }
        let rules = v4.len() + v6.len();
        if rules == 0 && bad_lines > 0 {
            return Err(BlocklistError::NoValidRules { bad_lines });
        }
        Ok(Blocklist {
            v4: merge(v4, u32::MAX),
            v6: merge(v6, u128::MAX),
            rules,
            bad_lines,
        })
    }

    /// Valid rules read.
    pub fn rules(&self) -> usize {
        self.rules
    }

    /// Lines that could not be parsed (skipped).
    pub fn bad_lines(&self) -> usize {
        self.bad_lines
    }

    /// Merged ranges held (IPv4 plus IPv6).
    pub fn ranges(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// True if the list blocks nothing.
    pub fn is_empty(&self) -> bool {
        self.ranges() == 0
    }

    /// True if `ip` is blocked. IPv4-mapped IPv6 addresses are looked up as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => lookup(&self.v4, u32::from(a)),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => lookup(&self.v4, u32::from(v4)),
                None => lookup(&self.v6, u128::from(a)),
            },
        }
    }
}

enum Rule {
    V4(u32, u32),
    V6(u128, u128),
}

fn parse_rule(line: &str) -> Option<Rule> {
    // P2P format first: `name:start-end`, IPv4 only. The name may contain ':'.
    if let Some((_, range)) = line.rsplit_once(':')
        && let Some((a, b)) = range.split_once('-')
        && let (Ok(a), Ok(b)) = (a.trim().parse::<Ipv4Addr>(), b.trim().parse::<Ipv4Addr>())
    {
        let (a, b) = (u32::from(a), u32::from(b));
        return (a <= b).then_some(Rule::V4(a, b));
    }
    let (addr, bits) = match line.split_once('/') {
        Some((a, b)) => (a.trim(), Some(b.trim().parse::<u32>().ok()?)),
        None => (line, None),
    };
    match addr.parse::<IpAddr>().ok()? {
        IpAddr::V4(a) => {
            let bits = bits.unwrap_or(32);
            if bits > 32 {
                return None;
            }
            let host = u32::MAX.checked_shr(bits).unwrap_or(0);
            let a = u32::from(a) & !host;
            Some(Rule::V4(a, a | host))
        }
        IpAddr::V6(a) => {
            let bits = bits.unwrap_or(128);
            if bits > 128 {
                return None;
            }
            let host = u128::MAX.checked_shr(bits).unwrap_or(0);
            let a = u128::from(a) & !host;
            Some(Rule::V6(a, a | host))
        }
    }
}

/// Sorts and joins overlapping or adjacent inclusive ranges.
fn merge<T: Ord + Copy + std::ops::Add<Output = T> + From<u8>>(
    mut v: Vec<(T, T)>,
    max: T,
) -> Vec<(T, T)> {
    v.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(v.len());
    for (a, b) in v {
        if let Some(last) = out.last_mut()
            && (last.1 == max || a <= last.1 + T::from(1))
        {
            last.1 = last.1.max(b);
            continue;
        }
        out.push((a, b));
    }
    out.shrink_to_fit();
    out
}

fn lookup<T: Ord + Copy>(ranges: &[(T, T)], ip: T) -> bool {
    let k = ranges.partition_point(|r| r.0 <= ip);
    k > 0 && ranges[k - 1].1 >= ip
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_and_p2p_lines() {
        let text = b"# comment\n\n1.2.3.0/24\r\nBad Guys Inc:10.0.0.5-10.0.0.9\n  9.9.9.9  \nweird::name:5.5.5.0 - 5.5.5.10\n2001:db8::/32\nnot an ip\n1.2.3.4/33\n";
        let b = Blocklist::parse(text, BlocklistLimits::default()).unwrap();
        assert_eq!(b.rules(), 5);
        assert_eq!(b.bad_lines(), 2);
        for yes in [
            "1.2.3.0",
            "1.2.3.255",
            "10.0.0.5",
            "10.0.0.9",
            "9.9.9.9",
            "5.5.5.10",
            "2001:db8::1",
            "::ffff:1.2.3.7",
        ] {
            assert!(b.contains(ip(yes)), "{yes}");
        }
        for no in [
            "1.2.4.0",
            "1.2.2.255",
            "10.0.0.4",
            "10.0.0.10",
            "9.9.9.8",
            "2001:db9::",
            "::1",
        ] {
            assert!(!b.contains(ip(no)), "{no}");
        }
    }

    #[test]
    fn no_valid_rules_is_an_error_but_empty_is_fine() {
        assert_eq!(
            Blocklist::parse(b"junk\nmore junk\n", BlocklistLimits::default()),
            Err(BlocklistError::NoValidRules { bad_lines: 2 })
        );
        let b = Blocklist::parse(b"# only comments\n\n", BlocklistLimits::default()).unwrap();
        assert!(b.is_empty());
        assert!(!b.contains(ip("1.1.1.1")));
    }

    #[test]
    fn limits() {
        let limits = BlocklistLimits {
            max_lines: 2,
            max_line_len: 12,
        };
        assert_eq!(
            Blocklist::parse(b"1.1.1.1\n2.2.2.2\n3.3.3.3", limits),
            Err(BlocklistError::TooManyLines { limit: 2 })
        );
        let b = Blocklist::parse(b"1.1.1.1\n100.100.100.0/24", limits).unwrap();
        assert_eq!((b.rules(), b.bad_lines()), (1, 1));
    }

    #[test]
    fn ranges_merge() {
        let text = b"1.0.0.0/24\n1.0.1.0/24\n1.0.0.128/25\n0.0.0.0/0\n";
        let b = Blocklist::parse(text, BlocklistLimits::default()).unwrap();
        assert_eq!(b.ranges(), 1);
        assert!(b.contains(ip("255.255.255.255")));
        let b = Blocklist::parse(
            b"1.0.0.0/24\n1.0.1.0/24\n3.0.0.0/8",
            BlocklistLimits::default(),
        )
        .unwrap();
        assert_eq!(b.ranges(), 2, "adjacent ranges join");
        assert!(!b.contains(ip("2.255.255.255")));
    }

    #[test]
    fn matches_a_linear_scan() {
        use std::fmt::Write;
        // Random ranges against a brute-force check.
        let mut rng = crate::rng::Rng::new(crate::rng::Seed::from_u64(1));
        let mut text = String::new();
        let mut rules = Vec::new();
        for _ in 0..200 {
            let a = rng.below(1 << 16) as u32;
            let b = a + rng.below(300) as u32;
            let (x, y) = (Ipv4Addr::from(a), Ipv4Addr::from(b));
            let _ = writeln!(text, "r:{x}-{y}");
            rules.push((a, b));
        }
        let bl = Blocklist::parse(text.as_bytes(), BlocklistLimits::default()).unwrap();
        for _ in 0..5000 {
            let q = rng.below(1 << 16) as u32;
            let expect = rules.iter().any(|&(a, b)| a <= q && q <= b);
            assert_eq!(bl.contains(IpAddr::V4(Ipv4Addr::from(q))), expect, "{q}");
        }
    }
}

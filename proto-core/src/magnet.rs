//! Magnet links (BEP 9), with the parameters real clients use: `xt` (`urn:btih:` as 40 hex or
//! 32 base32 characters, and `urn:btmh:` for hybrid v1/v2 links), `dn`, `tr` and `tr.<N>`
//! tiers, `ws` webseeds (BEP 19), `x.pe` peers and `so` select-only (BEP 53).
//!
//! Formatting and parsing round-trip: `parse(&m.to_string()) == Ok(m)`.

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::InfoHash;

/// Longest magnet link accepted.
pub const MAX_LEN: usize = 64 * 1024;
/// Most BEP 53 `so` ranges accepted.
pub const MAX_SELECT_RANGES: usize = 1024;

/// A parsed magnet link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Magnet {
    /// The v1 info-hash (`xt=urn:btih:`).
    pub info_hash: InfoHash,
    /// The v2 multihash of a hybrid link (`xt=urn:btmh:`), kept so the link can be re-formed.
    pub btmh: Option<String>,
    /// Display name (`dn`).
    pub name: Option<String>,
    /// Tracker tiers: each `tr` is a tier of its own, followed by the `tr.<N>` tiers in order
    /// of N (rain's reading).
    pub trackers: Vec<Vec<String>>,
    /// WebSeed URLs (`ws`).
    pub webseeds: Vec<String>,
    /// Peers to dial directly (`x.pe`, `host:port`).
    pub peers: Vec<String>,
    /// BEP 53 select-only file index ranges, inclusive (`so=0,2,4-6`).
    pub select_only: Vec<(u32, u32)>,
}

/// Why a magnet link was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not a `magnet:?` URI.
    #[error("not a magnet link")]
    NotMagnet,
    /// Longer than [`MAX_LEN`].
    #[error("magnet link is longer than {MAX_LEN} bytes")]
    TooLong,
    /// No `xt=urn:btih:` and no `urn:btmh:` either.
    #[error("magnet link has no info-hash (xt=urn:btih:…)")]
    MissingInfoHash,
    /// A btih value that is neither 40 hex nor 32 base32 characters.
    #[error("invalid info-hash in magnet link: {0}")]
    InvalidInfoHash(String),
    /// Only a v2 `urn:btmh:` hash.
    #[error("BitTorrent v2-only magnet links are not supported")]
    V2Only,
    /// A malformed `so` parameter.
    #[error("invalid select-only (so) parameter: {0}")]
    InvalidSelectOnly(String),
}

impl Magnet {
    /// A link with only an info-hash.
    pub fn new(info_hash: InfoHash) -> Self {
        Magnet {
            info_hash,
            btmh: None,
            name: None,
            trackers: Vec::new(),
            webseeds: Vec::new(),
            peers: Vec::new(),
            select_only: Vec::new(),
        }
    }
}

/// Parses a magnet link. Control characters are removed first, as rain does for URIs pasted
/// by users.
pub fn parse(link: &str) -> Result<Magnet, Error> {
    if link.len() > MAX_LEN {
        return Err(Error::TooLong);
    }
    let cleaned: String = link
        .chars()
        .filter(|c| !matches!(*c, '\0'..='\x1f' | '\x7f'))
        .collect();
    let query = match cleaned.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("magnet:") => &cleaned[7..],
        _ => return Err(Error::NotMagnet),
    };
    let query = query.strip_prefix('?').ok_or(Error::NotMagnet)?;

    let mut btih: Option<InfoHash> = None;
    let mut btmh = None;
    let mut m = Magnet::new(InfoHash::default());
    let mut numbered: Vec<(u32, String)> = Vec::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if value.is_empty() {
            continue;
        }
        match key.as_ref() {
            "xt" => {
                if let Some(h) = strip_prefix_ignore_case(&value, "urn:btih:") {
                    if btih.is_none() {
                        btih = Some(parse_btih(h)?);
                    }
                } else if let Some(h) = strip_prefix_ignore_case(&value, "urn:btmh:") {
                    btmh.get_or_insert_with(|| h.to_owned());
                }
            }
            "dn" => m.name = Some(value.into_owned()),
            "tr" => m.trackers.push(vec![value.into_owned()]),
            "ws" => m.webseeds.push(value.into_owned()),
            "x.pe" => m.peers.push(value.into_owned()),
            "so" => m.select_only = parse_select_only(&value)?,
            other => {
                if let Some(n) = other
                    .strip_prefix("tr.")
                    .and_then(|n| n.parse::<u32>().ok())
                {
                    numbered.push((n, value.into_owned()));
                }
            }
        }
    }
    m.info_hash = match (btih, &btmh) {
        (Some(h), _) => h,
        (None, Some(_)) => return Err(Error::V2Only),
        (None, None) => return Err(Error::MissingInfoHash),
    };
    m.btmh = btmh;
    // A stable sort keeps each tier's URLs in link order.
    numbered.sort_by_key(|(n, _)| *n);
    let mut last = None;
    for (n, url) in numbered {
        match m.trackers.last_mut() {
            Some(tier) if last == Some(n) => tier.push(url),
            _ => m.trackers.push(vec![url]),
        }
        last = Some(n);
    }
    Ok(m)
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn parse_btih(h: &str) -> Result<InfoHash, Error> {
    let parsed = match h.len() {
        40 => InfoHash::from_hex(h),
        32 => InfoHash::from_base32(h),
        _ => None,
    };
    parsed.ok_or_else(|| Error::InvalidInfoHash(h.to_owned()))
}

fn parse_select_only(s: &str) -> Result<Vec<(u32, u32)>, Error> {
    let bad = || Error::InvalidSelectOnly(s.to_owned());
    let mut ranges = Vec::new();
    for part in s.split(',') {
        if ranges.len() == MAX_SELECT_RANGES {
            return Err(bad());
        }
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let a: u32 = a.parse().map_err(|_| bad())?;
        let b: u32 = b.parse().map_err(|_| bad())?;
        if a > b {
            return Err(bad());
        }
        ranges.push((a, b));
    }
    Ok(ranges)
}

/// Characters left as they are in parameter values: unreserved ones, and `:`/`/` so URLs
/// stay readable. Everything else, `&`, `=`, `+`, `%` and spaces included, is escaped.
const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':')
    .remove(b'/');

impl fmt::Display for Magnet {
    /// Formats the link. Trackers are written as `tr=` when every tier has one URL, and as
    /// `tr.<tier>=` otherwise, so the tiers survive a round trip.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "magnet:?xt=urn:btih:{}", self.info_hash.to_hex())?;
        if let Some(h) = &self.btmh {
            write!(f, "&xt=urn:btmh:{}", utf8_percent_encode(h, VALUE))?;
        }
        if let Some(name) = &self.name {
            write!(f, "&dn={}", utf8_percent_encode(name, VALUE))?;
        }
        let numbered = self.trackers.iter().any(|t| t.len() > 1);
        for (i, tier) in self.trackers.iter().enumerate() {
            for url in tier {
                if numbered {
                    write!(f, "&tr.{i}={}", utf8_percent_encode(url, VALUE))?;
                } else {
                    write!(f, "&tr={}", utf8_percent_encode(url, VALUE))?;
                }
            }
        }
        for ws in &self.webseeds {
            write!(f, "&ws={}", utf8_percent_encode(ws, VALUE))?;
        }
        for pe in &self.peers {
            write!(f, "&x.pe={}", utf8_percent_encode(pe, VALUE))?;
        }
        if !self.select_only.is_empty() {
            f.write_str("&so=")?;
            for (i, (a, b)) in self.select_only.iter().enumerate() {
                let sep = if i == 0 { "" } else { "," };
                if a == b {
                    write!(f, "{sep}{a}")?;
                } else {
                    write!(f, "{sep}{a}-{b}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const HEX: &str = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";

    #[test]
    fn parses_all_parameters() {
        let link = format!(
            "magnet:?xt=urn:btih:{HEX}&dn=My+File%20%26co&tr=udp://a:1&tr.1=http://c/x?a=1%26b&tr.0=http://b/&tr.1=http://d/\
             &ws=http://w/f&x.pe=1.2.3.4:6881&so=0,2,4-6&foo=bar"
        );
        let m = parse(&link).unwrap();
        assert_eq!(m.info_hash.to_hex(), HEX);
        assert_eq!(m.name.as_deref(), Some("My File &co"));
        assert_eq!(
            m.trackers,
            vec![
                vec!["udp://a:1".to_owned()],
                vec!["http://b/".to_owned()],
                vec!["http://c/x?a=1&b".to_owned(), "http://d/".to_owned()]
            ]
        );
        assert_eq!(m.webseeds, ["http://w/f"]);
        assert_eq!(m.peers, ["1.2.3.4:6881"]);
        assert_eq!(m.select_only, [(0, 0), (2, 2), (4, 6)]);
    }

    #[test]
    fn base32_hybrid_and_case() {
        let h = InfoHash::from_hex(HEX).unwrap();
        let b32 = data_encoding::BASE32_NOPAD.encode(&h.0).to_lowercase();
        let m = parse(&format!("MAGNET:?xt=URN:BTIH:{b32}")).unwrap();
        assert_eq!(m.info_hash, h);
        let hybrid = format!("magnet:?xt=urn:btmh:1220abcd&xt=urn:btih:{HEX}");
        let m = parse(&hybrid).unwrap();
        assert_eq!((m.info_hash, m.btmh.as_deref()), (h, Some("1220abcd")));
    }

    #[test]
    fn strips_control_characters() {
        let m = parse(&format!("magnet:?xt=urn:btih:{HEX}\n&dn=a\tb\r\n")).unwrap();
        assert_eq!(m.info_hash.to_hex(), HEX);
        assert_eq!(m.name.as_deref(), Some("ab"));
    }

    #[test]
    fn clear_errors() {
        assert_eq!(parse("http://x"), Err(Error::NotMagnet));
        assert_eq!(parse("magnet:xt=1"), Err(Error::NotMagnet));
        assert_eq!(parse("magnet:?dn=x"), Err(Error::MissingInfoHash));
        assert_eq!(parse("magnet:?xt=urn:btmh:1220ab"), Err(Error::V2Only));
        assert_eq!(
            parse("magnet:?xt=urn:btih:abc"),
            Err(Error::InvalidInfoHash("abc".into()))
        );
        let not_hex = "z".repeat(40);
        assert!(matches!(
            parse(&format!("magnet:?xt=urn:btih:{not_hex}")),
            Err(Error::InvalidInfoHash(_))
        ));
        let so = format!("magnet:?xt=urn:btih:{HEX}&so=5-2");
        assert!(matches!(parse(&so), Err(Error::InvalidSelectOnly(_))));
        let so = format!("magnet:?xt=urn:btih:{HEX}&so=x");
        assert!(matches!(parse(&so), Err(Error::InvalidSelectOnly(_))));
        assert_eq!(parse(&"m".repeat(MAX_LEN + 1)), Err(Error::TooLong));
    }

    #[test]
    fn select_only_is_capped_and_overflow_free() {
        let link = |so: &str| format!("magnet:?xt=urn:btih:{HEX}&so={so}");
        let ranges = |n: usize| vec!["7"; n].join(",");
        // Exactly MAX_SELECT_RANGES ranges are taken; one more refuses the link.
        let m = parse(&link(&ranges(MAX_SELECT_RANGES))).unwrap();
        assert_eq!(m.select_only.len(), MAX_SELECT_RANGES);
        assert!(matches!(
            parse(&link(&ranges(MAX_SELECT_RANGES + 1))),
            Err(Error::InvalidSelectOnly(_))
        ));
        // The widest range a u32 index can express is kept as it is, and survives formatting.
        let m = parse(&link("0-4294967295")).unwrap();
        assert_eq!(m.select_only, [(0, u32::MAX)]);
        assert_eq!(parse(&m.to_string()), Ok(m));
        // Anything past u32, negative or half-open is refused, never wrapped.
        for bad in [
            "0-4294967296",
            "4294967296",
            "99999999999999999999",
            "-1",
            "3-",
            "1-2-3",
        ] {
            assert!(
                matches!(parse(&link(bad)), Err(Error::InvalidSelectOnly(_))),
                "{bad}"
            );
        }
        // An empty `so=` is skipped like any empty parameter.
        assert!(parse(&link("")).unwrap().select_only.is_empty());
    }

    #[test]
    fn formats_like_rain_for_simple_links() {
        let mut m = Magnet::new(InfoHash::from_hex(HEX).unwrap());
        m.name = Some("a b".into());
        m.trackers = vec![vec!["http://t/a?x=1&y=2".into()]];
        assert_eq!(
            m.to_string(),
            format!("magnet:?xt=urn:btih:{HEX}&dn=a%20b&tr=http://t/a%3Fx%3D1%26y%3D2")
        );
    }

    fn text() -> impl Strategy<Value = String> {
        "[^\\x00-\\x1f\\x7f]{1,12}"
    }

    fn arb_magnet() -> impl Strategy<Value = Magnet> {
        (
            any::<[u8; 20]>(),
            proptest::option::of("[0-9a-f]{4,20}"),
            proptest::option::of(text()),
            proptest::collection::vec(proptest::collection::vec(text(), 1..3), 0..4),
            proptest::collection::vec(text(), 0..3),
            proptest::collection::vec(text(), 0..3),
            proptest::collection::vec((0u32..100, 0u32..5), 0..4),
        )
            .prop_map(|(h, btmh, name, trackers, webseeds, peers, so)| Magnet {
                info_hash: InfoHash(h),
                btmh,
                name,
                trackers,
                webseeds,
                peers,
                select_only: so.into_iter().map(|(a, d)| (a, a + d)).collect(),
            })
    }

    proptest! {
        #[test]
        fn format_parse_round_trips(m in arb_magnet()) {
            prop_assert_eq!(parse(&m.to_string()), Ok(m));
        }

        #[test]
        fn parse_never_panics(s in ".{0,200}") {
            let _ = parse(&s);
            let _ = parse(&format!("magnet:?{s}"));
        }
    }
}

//! Peer ids: rain's own (`-RN<version>-` + random characters) and display names for the ids of
//! other clients, for the Peers view.
//!
//! Decoding understands the common styles (BEP 20 Azureus style `-XX1234-`, Shad0w style
//! `S58B-----`, Mainline style `M4-3-6--`) and rain's `-RN<version>-`. The client version a
//! peer sends in its BEP 10 handshake (`v`) is preferred when present, as rain does.

use std::fmt;

use crate::rng::Rng;

/// A 20-byte peer id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PeerId(pub [u8; 20]);

/// Caller misuse when building a peer id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerIdError {
    /// `-RN<version>-` would not leave room in 20 bytes.
    #[error("version {0:?} is too long for a peer id prefix")]
    VersionTooLong(String),
    /// The version must be printable ASCII without `-`, or the prefix could not be parsed back.
    #[error("version {0:?} must be printable ASCII without '-'")]
    BadVersion(String),
    /// A configured prefix longer than 20 bytes or not printable ASCII.
    #[error("peer id prefix {0:?} must be at most 20 printable ASCII characters")]
    BadPrefix(String),
}

/// Characters of the random tail: printable, so logs and the Peers view stay readable.
const TAIL_ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

impl PeerId {
    /// `prefix` (e.g. rain's `private-peer-id-prefix`, often another client's prefix that a
    /// private tracker whitelists) followed by random printable characters.
    pub fn with_prefix(prefix: &str, rng: &mut Rng) -> Result<PeerId, PeerIdError> {
        if prefix.len() > 20 || prefix.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(PeerIdError::BadPrefix(prefix.to_owned()));
        }
        let mut id = [0u8; 20];
        id[..prefix.len()].copy_from_slice(prefix.as_bytes());
        for b in &mut id[prefix.len()..] {
            *b = TAIL_ALPHABET[rng.below(TAIL_ALPHABET.len() as u64) as usize];
        }
        Ok(PeerId(id))
    }

    /// Rain's scheme: `-RN<version>-` followed by random characters, e.g. `-RN0010-` + 12.
    /// At least 4 random characters must remain, so `version` has at most 12 bytes.
    pub fn generate(version: &str, rng: &mut Rng) -> Result<PeerId, PeerIdError> {
        if version.bytes().any(|b| b == b'-' || !b.is_ascii_graphic()) {
            return Err(PeerIdError::BadVersion(version.to_owned()));
        }
        let prefix_len = 4 + version.len();
        if prefix_len > 16 {
            return Err(PeerIdError::VersionTooLong(version.to_owned()));
        }
        let mut id = [0u8; 20];
        id[..3].copy_from_slice(b"-RN");
        id[3..3 + version.len()].copy_from_slice(version.as_bytes());
        id[prefix_len - 1] = b'-';
        for b in &mut id[prefix_len..] {
            *b = TAIL_ALPHABET[rng.below(TAIL_ALPHABET.len() as u64) as usize];
        }
        Ok(PeerId(id))
    }

    /// A human-readable client name guessed from the id alone.
    pub fn client_name(&self) -> String {
        client_name(self, None)
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({})", printable(&self.0))
    }
}

/// The name shown for a peer: its BEP 10 `v` when it sent a non-empty one, else a name decoded
/// from its peer id, else the id with non-printable bytes replaced by `_`.
pub fn client_name(peer_id: &PeerId, ext_version: Option<&str>) -> String {
    if let Some(v) = ext_version {
        // `v` is peer-controlled: bound its length and keep it printable.
        let v: String = v.chars().take(64).collect();
        let v = v.trim();
        if !v.is_empty() {
            return v
                .chars()
                .map(|c| if c.is_control() { '_' } else { c })
                .collect();
        }
    }
    let id = &peer_id.0;
    if let Some(name) = rain_style(id)
        .or_else(|| azureus_style(id))
        .or_else(|| shadow_style(id))
        .or_else(|| mainline_style(id))
    {
        return name;
    }
    printable(id)
}

fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '_'
            }
        })
        .collect()
}

/// `-RN<version>-…`: everything up to the next `-` is the version.
fn rain_style(id: &[u8; 20]) -> Option<String> {
    let rest = id.strip_prefix(b"-RN")?;
    let end = rest.iter().position(|&b| b == b'-')?;
    let version = &rest[..end];
    if version.is_empty() || !version.iter().all(u8::is_ascii_graphic) {
        return None;
    }
    let version = if version.len() == 4 && version.iter().all(u8::is_ascii_alphanumeric) {
        digit_version(version)
    } else {
        printable(version)
    };
    Some(format!("Rain {version}"))
}

/// `1234` → `1.2.3.4`, letters counting on from 10, trailing `.0`s trimmed down to two parts.
fn digit_version(chars: &[u8]) -> String {
    let mut parts: Vec<u32> = chars
        .iter()
        .map(|&c| shadow_digit(c).unwrap_or(0))
        .collect();
    while parts.len() > 2 && parts.last() == Some(&0) {
        parts.pop();
    }
    parts
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// BEP 20: `-` + two letters + four version characters + `-`.
fn azureus_style(id: &[u8; 20]) -> Option<String> {
    if id[0] != b'-' || id[7] != b'-' {
        return None;
    }
    let code = &id[1..3];
    let version = &id[3..7];
    if !code.iter().all(u8::is_ascii_alphanumeric) || !version.iter().all(u8::is_ascii_alphanumeric)
    {
        return Some(printable(&id[..8]));
    }
    let Some(name) = AZUREUS_CLIENTS
        .iter()
        .find(|(c, _)| c.as_bytes() == code)
        .map(|(_, n)| *n)
    else {
        // Unknown client: the first 8 characters, as rain shows them.
        return Some(printable(&id[..8]));
    };
    Some(format!("{name} {}", digit_version(version)))
}

const AZUREUS_CLIENTS: &[(&str, &str)] = &[
    ("AG", "Ares"),
    ("AZ", "Vuze"),
    ("BC", "BitComet"),
    ("BI", "BiglyBT"),
    ("BT", "BitTorrent"),
    ("DE", "Deluge"),
    ("FD", "Free Download Manager"),
    ("GT", "anacrolix/torrent"),
    ("KT", "KTorrent"),
    ("LT", "libtorrent"),
    ("lt", "rTorrent"),
    ("PI", "PicoTorrent"),
    ("qB", "qBittorrent"),
    ("RN", "Rain"),
    ("SD", "Thunder"),
    ("TR", "Transmission"),
    ("TX", "Tixati"),
    ("UM", "µTorrent Mac"),
    ("UT", "µTorrent"),
    ("UW", "µTorrent Web"),
    ("WW", "WebTorrent"),
    ("XL", "Xunlei"),
];

/// Shad0w's digits: 0-9, A-Z, a-z, `.`, `-`.
fn shadow_digit(c: u8) -> Option<u32> {
    match c {
        b'0'..=b'9' => Some(u32::from(c - b'0')),
        b'A'..=b'Z' => Some(u32::from(c - b'A') + 10),
        b'a'..=b'z' => Some(u32::from(c - b'a') + 36),
        b'.' => Some(62),
        _ => None,
    }
}

/// Shad0w style: a client letter, up to five version digits padded with `-`, then `---`.
fn shadow_style(id: &[u8; 20]) -> Option<String> {
    const CLIENTS: &[(u8, &str)] = &[
        (b'A', "ABC"),
        (b'O', "Osprey Permaseed"),
        (b'Q', "BTQueue"),
        (b'R', "Tribler"),
        (b'S', "Shad0w"),
        (b'T', "BitTornado"),
        (b'U', "UPnP NAT BitTorrent"),
    ];
    let name = CLIENTS.iter().find(|(c, _)| *c == id[0])?.1;
    if &id[6..9] != b"---" {
        return None;
    }
    let version = &id[1..6];
    let end = version.iter().position(|&b| b == b'-').unwrap_or(5);
    if end == 0 {
        return None;
    }
    let digits: Option<Vec<String>> = version[..end]
        .iter()
        .map(|&c| shadow_digit(c).map(|d| d.to_string()))
        .collect();
    Some(format!("{name} {}", digits?.join(".")))
}

/// Mainline style: `M4-3-6--` (letter, then numbers separated by `-`).
fn mainline_style(id: &[u8; 20]) -> Option<String> {
    let name = match id[0] {
        b'M' => "BitTorrent",
        b'Q' => "Queen Bee",
        _ => return None,
    };
    let text = std::str::from_utf8(&id[1..]).ok()?;
    let mut parts = text.split('-');
    let nums: Vec<&str> = parts.by_ref().take(3).collect();
    if nums.len() != 3
        || nums
            .iter()
            .any(|n| n.is_empty() || n.len() > 3 || !n.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    Some(format!("{name} {}", nums.join(".")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_kept_and_bounded() {
        let mut rng = Rng::new(crate::rng::Seed::from_u64(1));
        let id = PeerId::with_prefix("-qB4500-", &mut rng).unwrap();
        assert!(id.0.starts_with(b"-qB4500-"));
        assert!(id.0[8..].iter().all(u8::is_ascii_alphanumeric));
        let full = "ABCDEFGHIJKLMNOPQRST";
        assert_eq!(
            &PeerId::with_prefix(full, &mut rng).unwrap().0,
            full.as_bytes()
        );
        for bad in ["ABCDEFGHIJKLMNOPQRSTU", "-a b-", "-é-"] {
            assert!(matches!(
                PeerId::with_prefix(bad, &mut rng),
                Err(PeerIdError::BadPrefix(_))
            ));
        }
    }

    use crate::rng::Seed;

    fn id(s: &[u8]) -> PeerId {
        let mut b = [b'x'; 20];
        b[..s.len()].copy_from_slice(s);
        PeerId(b)
    }

    #[test]
    fn generated_ids_have_rain_prefix_and_random_tail() {
        let mut rng = Rng::new(Seed::from_u64(1));
        let a = PeerId::generate("0010", &mut rng).unwrap();
        let b = PeerId::generate("0010", &mut rng).unwrap();
        assert_eq!(&a.0[..8], b"-RN0010-");
        assert_ne!(a, b);
        assert!(a.0.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-'));
        let mut again = Rng::new(Seed::from_u64(1));
        assert_eq!(PeerId::generate("0010", &mut again).unwrap(), a);
        let dotted = PeerId::generate("1.13.0", &mut rng).unwrap();
        assert_eq!(&dotted.0[..10], b"-RN1.13.0-");
        assert_eq!(dotted.client_name(), "Rain 1.13.0");
        assert!(PeerId::generate("0123456789abc", &mut rng).is_err());
        assert!(PeerId::generate("1-2", &mut rng).is_err());
    }

    #[test]
    fn decodes_common_styles() {
        assert_eq!(id(b"-qB4250-").client_name(), "qBittorrent 4.2.5");
        assert_eq!(id(b"-TR2940-").client_name(), "Transmission 2.9.4");
        assert_eq!(id(b"-LT1230-").client_name(), "libtorrent 1.2.3");
        assert_eq!(id(b"-RN0010-").client_name(), "Rain 0.0.1");
        assert_eq!(id(b"-ZZ1234-").client_name(), "-ZZ1234-");
        assert_eq!(id(b"S58B-----").client_name(), "Shad0w 5.8.11");
        assert_eq!(id(b"T03I-----").client_name(), "BitTornado 0.3.18");
        assert_eq!(id(b"M4-3-6--").client_name(), "BitTorrent 4.3.6");
    }

    #[test]
    fn unknown_ids_are_shown_printable() {
        let mut raw = [0u8; 20];
        raw[..5].copy_from_slice(b"hello");
        assert_eq!(
            PeerId(raw).client_name(),
            format!("hello{}", "_".repeat(15))
        );
    }

    #[test]
    fn extension_version_is_preferred_and_sanitised() {
        let p = id(b"-qB4250-");
        assert_eq!(client_name(&p, Some("Deluge 2.1")), "Deluge 2.1");
        assert_eq!(client_name(&p, Some("  ")), "qBittorrent 4.2.5");
        assert_eq!(client_name(&p, Some("a\nb")), "a_b");
        assert_eq!(client_name(&p, Some(&"v".repeat(500))).len(), 64);
    }
}

//! Our version as rain spells it in peer ids, BEP 10 handshakes and User-Agents.
//!
//! rain puts `<version>` into `-RN<version>-`, `Rain <version>` and `Rain/<version>`. Client
//! version strings use the full semantic version (`Rain 0.1.0`, `Rain/0.1.0`). The peer-id prefix
//! uses a fixed-width **4-digit version code** so the prefix is always the BEP 20 shape
//! `-RN####-` (8 bytes, 12 random bytes after it):
//!
//! | digit | meaning | range |
//! |---|---|---|
//! | 1 | major | 0–9 |
//! | 2–3 | minor, zero-padded | 00–99 |
//! | 4 | patch | 0–9 |
//!
//! So `0.1.0` is `0010` (`-RN0010-`), `2.3.1` is `2031` and `1.12.4` is `1124`. A component beyond
//! its range is clamped to the largest value (`12.3.45` is `9039`); pre-release and build suffixes
//! are ignored.

/// This build's version (the crate version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The 4-digit peer-id version code of `version` (see the module docs), e.g. `0010` for `0.1.0`.
pub fn version_code(version: &str) -> String {
    let core = version.split(['-', '+']).next().unwrap_or_default();
    let mut parts = core
        .split('.')
        .map(|p| p.parse::<u64>().unwrap_or_default());
    let mut next = || parts.next().unwrap_or_default();
    let (major, minor, patch) = (next(), next(), next());
    format!("{}{:02}{}", major.min(9), minor.min(99), patch.min(9))
}

/// Our public peer-id prefix, `-RN<code>-` (e.g. `-RN0010-`); also the default of
/// `private-peer-id-prefix`.
pub fn peer_id_prefix() -> String {
    format!("-RN{}-", version_code(VERSION))
}

/// Our BEP 10 `v` and `created by`, `Rain <version>`; also the default of
/// `private-extension-handshake-client-version`.
pub fn client_version() -> String {
    format!("Rain {VERSION}")
}

/// Our HTTP User-Agent, `Rain/<version>`; also the default of `tracker-http-private-user-agent`.
pub fn user_agent() -> String {
    format!("Rain/{VERSION}")
}

#[cfg(test)]
mod tests {
    use super::{VERSION, client_version, peer_id_prefix, user_agent, version_code};

    #[test]
    fn version_codes() {
        let table = [
            ("0.1.0", "0010"),
            ("2.3.1", "2031"),
            ("1.12.4", "1124"),
            ("12.3.45", "9039"),
            ("1.2.3-beta.1", "1023"),
            ("1.2.3+build.7", "1023"),
            ("1.2", "1020"),
            ("", "0000"),
        ];
        for (version, code) in table {
            assert_eq!(version_code(version), code, "{version}");
        }
    }

    #[test]
    fn strings_follow_the_crate_version() {
        let prefix = peer_id_prefix();
        assert_eq!(prefix.len(), 8);
        assert!(prefix.starts_with("-RN") && prefix.ends_with('-'));
        assert!(prefix[3..7].bytes().all(|b| b.is_ascii_digit()), "{prefix}");
        assert_eq!(client_version(), format!("Rain {VERSION}"));
        assert_eq!(user_agent(), format!("Rain/{VERSION}"));
    }
}

//! Rain's encryption settings and what they mean for each connection.
//!
//! Outgoing: by default MSE offering RC4 or plaintext, and on any MSE failure a fresh
//! connection with a plain BitTorrent handshake; `force-outgoing-encryption` offers RC4 only
//! with no retry; `disable-outgoing-encryption` dials plaintext only. Incoming: the first 20
//! bytes tell a plain handshake from MSE; `force-incoming-encryption` refuses plain handshakes
//! and MSE-negotiated plaintext alike. When the dialler offers both methods rain selects RC4;
//! `prefer-plaintext` (ours) selects plaintext, as libtorrent does.

use super::handshake::{CryptoMethod, CryptoMethods};
use crate::wire::PROTOCOL_HEADER;

/// How outgoing connections are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Outgoing {
    /// MSE offering RC4 and plaintext, then a plaintext retry on failure (rain's default).
    #[default]
    PreferEncrypted,
    /// MSE offering RC4 only, no fallback (`force-outgoing-encryption`).
    ForceEncrypted,
    /// Plain BitTorrent handshake only (`disable-outgoing-encryption`).
    Plaintext,
}

/// The encryption policy of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EncryptionPolicy {
    /// Outgoing connections.
    pub outgoing: Outgoing,
    /// `force-incoming-encryption`: accept RC4 streams only.
    pub force_incoming: bool,
    /// `prefer-plaintext` (ours): select plaintext when an incoming MSE handshake offers both
    /// methods and both are allowed. The handshake stays obfuscated; the stream is not
    /// encrypted, which spares both ends the cipher.
    pub prefer_plaintext: bool,
}

/// Conflicting settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Both `disable-outgoing-encryption` and `force-outgoing-encryption` are set.
    #[error("disable-outgoing-encryption and force-outgoing-encryption are both set")]
    Conflict,
}

/// One way of dialling a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutgoingAttempt {
    /// A plain BitTorrent handshake.
    Plaintext,
    /// An MSE handshake offering these methods.
    Encrypted(CryptoMethods),
}

/// What the first bytes of an incoming connection are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncomingKind {
    /// A plain BitTorrent handshake.
    Plaintext,
    /// Anything else: an MSE handshake (feed all bytes seen so far to the receiver machine).
    Encrypted,
}

/// Tells a plaintext handshake from MSE by the first bytes of a connection. `None` means
/// "need more": at most 20 bytes decide. A public key that happens to start like the protocol
/// header is possible only with probability 2⁻¹⁶⁰.
pub fn detect_incoming(first: &[u8]) -> Option<IncomingKind> {
    let n = first.len().min(PROTOCOL_HEADER.len());
    if first[..n] != PROTOCOL_HEADER[..n] {
        Some(IncomingKind::Encrypted)
    } else if n == PROTOCOL_HEADER.len() {
        Some(IncomingKind::Plaintext)
    } else {
        None
    }
}

impl EncryptionPolicy {
    /// The policy for rain's three configuration flags.
    pub fn from_config(
        disable_outgoing: bool,
        force_outgoing: bool,
        force_incoming: bool,
    ) -> Result<Self, PolicyError> {
        let outgoing = match (disable_outgoing, force_outgoing) {
            (true, true) => return Err(PolicyError::Conflict),
            (true, false) => Outgoing::Plaintext,
            (false, true) => Outgoing::ForceEncrypted,
            (false, false) => Outgoing::PreferEncrypted,
        };
        Ok(EncryptionPolicy {
            outgoing,
            force_incoming,
            prefer_plaintext: false,
        })
    }

    /// How to dial a peer the first time.
    pub fn first_attempt(&self) -> OutgoingAttempt {
        match self.outgoing {
            Outgoing::PreferEncrypted => OutgoingAttempt::Encrypted(CryptoMethods::ALL),
            Outgoing::ForceEncrypted => OutgoingAttempt::Encrypted(CryptoMethods::RC4),
            Outgoing::Plaintext => OutgoingAttempt::Plaintext,
        }
    }

    /// How to redial after `failed` failed during the handshake, if at all: only the default
    /// policy retries an MSE failure, once, in plaintext.
    pub fn retry_after(&self, failed: OutgoingAttempt) -> Option<OutgoingAttempt> {
        match (self.outgoing, failed) {
            (Outgoing::PreferEncrypted, OutgoingAttempt::Encrypted(_)) => {
                Some(OutgoingAttempt::Plaintext)
            }
            _ => None,
        }
    }

    /// The methods an incoming MSE handshake may select.
    pub fn incoming_methods(&self) -> CryptoMethods {
        if self.force_incoming {
            CryptoMethods::RC4
        } else {
            CryptoMethods::ALL
        }
    }

    /// The method an incoming MSE handshake selects when both are offered and allowed.
    pub fn incoming_preference(&self) -> CryptoMethod {
        if self.prefer_plaintext {
            CryptoMethod::Plaintext
        } else {
            CryptoMethod::Rc4
        }
    }

    /// Whether an incoming plain BitTorrent handshake is accepted.
    pub fn accepts_incoming_plaintext(&self) -> bool {
        !self.force_incoming
    }

    /// Whether a finished handshake's method is acceptable on an incoming connection (a
    /// second check; the receiver machine already selects only allowed methods).
    pub fn accepts_incoming(&self, method: CryptoMethod) -> bool {
        self.incoming_methods().contains(method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_plaintext_by_its_first_bytes() {
        assert_eq!(detect_incoming(b""), None);
        assert_eq!(detect_incoming(b"\x13BitTorrent"), None);
        assert_eq!(
            detect_incoming(b"\x13BitTorrent protocol\0\0"),
            Some(IncomingKind::Plaintext)
        );
        assert_eq!(detect_incoming(b"\x13Bx"), Some(IncomingKind::Encrypted));
        assert_eq!(detect_incoming(&[0xde; 96]), Some(IncomingKind::Encrypted));
    }

    #[test]
    fn config_flags_map_to_rains_behaviour() {
        assert_eq!(
            EncryptionPolicy::from_config(true, true, false),
            Err(PolicyError::Conflict)
        );
        let default = EncryptionPolicy::from_config(false, false, false).unwrap();
        assert_eq!(default, EncryptionPolicy::default());
        let first = default.first_attempt();
        assert_eq!(first, OutgoingAttempt::Encrypted(CryptoMethods::ALL));
        assert_eq!(default.retry_after(first), Some(OutgoingAttempt::Plaintext));
        assert_eq!(default.retry_after(OutgoingAttempt::Plaintext), None);
        assert!(default.accepts_incoming_plaintext());

        let forced = EncryptionPolicy::from_config(false, true, true).unwrap();
        let first = forced.first_attempt();
        assert_eq!(first, OutgoingAttempt::Encrypted(CryptoMethods::RC4));
        assert_eq!(forced.retry_after(first), None);
        assert!(!forced.accepts_incoming_plaintext());
        assert!(!forced.accepts_incoming(CryptoMethod::Plaintext));
        assert!(forced.accepts_incoming(CryptoMethod::Rc4));

        let plain = EncryptionPolicy::from_config(true, false, false).unwrap();
        assert_eq!(plain.first_attempt(), OutgoingAttempt::Plaintext);
        assert_eq!(plain.retry_after(OutgoingAttempt::Plaintext), None);
    }
}

//! Message Stream Encryption / Protocol Encryption (MSE/PE), the Vuze obfuscation handshake.
//!
//! - [`dh`]: the 768-bit Diffie-Hellman exchange;
//! - [`cipher`]: RC4 with the first 1024 bytes of keystream dropped, applied in place;
//! - [`handshake`]: the initiator and receiver machines, fed with bytes;
//! - [`policy`]: rain's encryption settings and the detection of a plaintext handshake.
//!
//! The handshake never fails with `Err` because of what the peer sent: a peer fault is an
//! [`Outcome::Failed`] with a reason. Only misuse by the caller is an `Err`.

pub mod cipher;
pub mod dh;
pub mod handshake;
pub mod policy;

pub use cipher::{Cipher, Rc4Stream, Role};
pub use handshake::{
    CryptoMethod, CryptoMethods, Established, MseError, MseFailure, MseHandshake, Outcome,
};
pub use policy::{EncryptionPolicy, IncomingKind, Outgoing, OutgoingAttempt, detect_incoming};

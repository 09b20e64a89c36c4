//! The MSE stream cipher: RC4 keyed with `SHA1("keyA"|S|SKEY)` (initiator to receiver) or
//! `SHA1("keyB"|S|SKEY)` (receiver to initiator), with the first 1024 bytes of keystream
//! discarded. It works in place, so the runtime decrypts the receive buffer where it lies.

use std::fmt;

use rc4::{KeyInit, Rc4, StreamCipher};

use crate::hash::InfoHash;
use crate::mse::dh::KEY_LEN;

/// Keystream bytes dropped before use, against RC4's biased first bytes.
pub const DISCARD: usize = 1024;

/// One direction of RC4.
pub struct Rc4Stream(Rc4);

impl fmt::Debug for Rc4Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rc4Stream").finish_non_exhaustive()
    }
}

impl Rc4Stream {
    /// RC4 keyed with `key`, the first [`DISCARD`] bytes already dropped.
    pub fn new(key: &[u8; 20]) -> Self {
        let mut rc4 = Rc4::new_from_slice(key).expect("RC4 takes 1..=256-byte keys");
        let mut skip = [0u8; DISCARD];
        rc4.apply_keystream(&mut skip);
        Rc4Stream(rc4)
    }

    /// Encrypts or decrypts `buf` in place (RC4 is symmetric).
    pub fn apply(&mut self, buf: &mut [u8]) {
        self.0.apply_keystream(buf);
    }
}

/// Which end of the connection we are; it decides which key encrypts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We dialled.
    Initiator,
    /// We accepted.
    Receiver,
}

/// Both directions of an RC4 connection.
#[derive(Debug)]
pub struct Cipher {
    encrypt: Rc4Stream,
    decrypt: Rc4Stream,
}

/// `SHA1(label | S | SKEY)`.
fn derive_key(label: [u8; 4], secret: &[u8; KEY_LEN], skey: &InfoHash) -> [u8; 20] {
    use sha1::{Digest, Sha1};
    let mut h = Sha1::new();
    h.update(label);
    h.update(secret);
    h.update(skey.0);
    h.finalize().into()
}

impl Cipher {
    /// The cipher pair for `role`, from the DH secret and the torrent's info-hash.
    pub fn new(secret: &[u8; KEY_LEN], skey: &InfoHash, role: Role) -> Self {
        let a = Rc4Stream::new(&derive_key(*b"keyA", secret, skey));
        let b = Rc4Stream::new(&derive_key(*b"keyB", secret, skey));
        match role {
            Role::Initiator => Cipher {
                encrypt: a,
                decrypt: b,
            },
            Role::Receiver => Cipher {
                encrypt: b,
                decrypt: a,
            },
        }
    }

    /// Joins two directions made by [`Cipher::split`].
    pub fn from_parts(encrypt: Rc4Stream, decrypt: Rc4Stream) -> Self {
        Cipher { encrypt, decrypt }
    }

    /// Encrypts outgoing bytes in place.
    pub fn encrypt(&mut self, buf: &mut [u8]) {
        self.encrypt.apply(buf);
    }

    /// Decrypts incoming bytes in place.
    pub fn decrypt(&mut self, buf: &mut [u8]) {
        self.decrypt.apply(buf);
    }

    /// The two directions apart, for a runtime whose reader and writer are separate tasks:
    /// `(encrypt, decrypt)`.
    pub fn split(self) -> (Rc4Stream, Rc4Stream) {
        (self.encrypt, self.decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rc4_matches_a_known_keystream() {
        // The classic "Key"/"Plaintext" vector checks the crate; an explicit skip of the
        // keystream checks our discard.
        let mut raw = Rc4::new_from_slice(b"Key").unwrap();
        let mut text = *b"Plaintext";
        raw.apply_keystream(&mut text);
        assert_eq!(text, [0xbb, 0xf3, 0x16, 0xe8, 0xd9, 0x40, 0xaf, 0x0a, 0xd3]);

        let key = [7u8; 20];
        let mut full = Rc4::new_from_slice(&key).unwrap();
        let mut stream = [0u8; DISCARD + 16];
        full.apply_keystream(&mut stream);
        let mut ours = [0u8; 16];
        Rc4Stream::new(&key).apply(&mut ours);
        assert_eq!(ours, stream[DISCARD..]);
    }

    #[test]
    fn the_two_roles_talk_to_each_other_in_place() {
        let secret = [9u8; KEY_LEN];
        let skey = InfoHash([1; 20]);
        let mut a = Cipher::new(&secret, &skey, Role::Initiator);
        let mut b = Cipher::new(&secret, &skey, Role::Receiver);
        let mut msg = *b"hello, peer";
        a.encrypt(&mut msg);
        assert_ne!(&msg, b"hello, peer");
        b.decrypt(&mut msg);
        assert_eq!(&msg, b"hello, peer");
        let mut back = *b"hi";
        b.encrypt(&mut back);
        a.decrypt(&mut back);
        assert_eq!(&back, b"hi");
        let (mut enc, _) = a.split();
        let mut other = *b"x";
        enc.apply(&mut other);
        b.decrypt(&mut other);
        assert_eq!(&other, b"x");
    }
}

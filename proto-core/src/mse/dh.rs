//! The MSE Diffie-Hellman exchange: the standard 768-bit prime, generator 2, 160-bit private
//! keys, public keys and the shared secret as 96 big-endian bytes, left-padded with zeros.

use std::fmt;

use num_bigint::BigUint;

use crate::rng::Rng;

/// Length of a public key and of the shared secret.
pub const KEY_LEN: usize = 96;

/// The MSE prime P (768 bits).
pub const PRIME: [u8; KEY_LEN] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc9, 0x0f, 0xda, 0xa2, //
    0x21, 0x68, 0xc2, 0x34, 0xc4, 0xc6, 0x62, 0x8b, 0x80, 0xdc, 0x1c, 0xd1, //
    0x29, 0x02, 0x4e, 0x08, 0x8a, 0x67, 0xcc, 0x74, 0x02, 0x0b, 0xbe, 0xa6, //
    0x3b, 0x13, 0x9b, 0x22, 0x51, 0x4a, 0x08, 0x79, 0x8e, 0x34, 0x04, 0xdd, //
    0xef, 0x95, 0x19, 0xb3, 0xcd, 0x3a, 0x43, 0x1b, 0x30, 0x2b, 0x0a, 0x6d, //
    0xf2, 0x5f, 0x14, 0x37, 0x4f, 0xe1, 0x35, 0x6d, 0x6d, 0x51, 0xc2, 0x45, //
    0xe4, 0x85, 0xb5, 0x76, 0x62, 0x5e, 0x7e, 0xc6, 0xf4, 0x4c, 0x42, 0xe9, //
    0xa6, 0x3a, 0x36, 0x21, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0x05, 0x63, //
];

/// Length of the private exponent (160 bits, as the MSE specification recommends).
const PRIVATE_LEN: usize = 20;

/// One side's key pair.
pub struct KeyPair {
    private: BigUint,
    public: [u8; KEY_LEN],
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The private key stays out of logs.
        f.debug_struct("KeyPair").finish_non_exhaustive()
    }
}

fn left_pad(v: &BigUint) -> [u8; KEY_LEN] {
    let bytes = v.to_bytes_be();
    let mut out = [0u8; KEY_LEN];
    out[KEY_LEN - bytes.len()..].copy_from_slice(&bytes);
    out
}

impl KeyPair {
    /// A fresh key pair from the machine's RNG.
    pub fn generate(rng: &mut Rng) -> Self {
        let mut x = [0u8; PRIVATE_LEN];
        rng.fill(&mut x);
        // A zero exponent would make the public key 1; the chance is nil, the guard is cheap.
        x[PRIVATE_LEN - 1] |= 1;
        let private = BigUint::from_bytes_be(&x);
        let public = BigUint::from(2u8).modpow(&private, &BigUint::from_bytes_be(&PRIME));
        KeyPair {
            private,
            public: left_pad(&public),
        }
    }

    /// Our public key, `2^x mod P`, as sent on the wire.
    pub fn public_key(&self) -> &[u8; KEY_LEN] {
        &self.public
    }

    /// The shared secret `S = Y^x mod P` for the peer's public key `Y`, or `None` when `Y`
    /// is degenerate (0, 1, P-1 or not below P), which would make S guessable.
    pub fn shared_secret(&self, peer_public: &[u8; KEY_LEN]) -> Option<[u8; KEY_LEN]> {
        let p = BigUint::from_bytes_be(&PRIME);
        let y = BigUint::from_bytes_be(peer_public);
        let one = BigUint::from(1u8);
        if y <= one || y >= &p - &one {
            return None;
        }
        Some(left_pad(&y.modpow(&self.private, &p)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Seed;

    #[test]
    fn both_sides_agree_on_the_secret() {
        let mut rng = Rng::new(Seed::from_u64(3));
        let a = KeyPair::generate(&mut rng);
        let b = KeyPair::generate(&mut rng);
        assert_ne!(a.public_key(), b.public_key());
        let s1 = a.shared_secret(b.public_key()).unwrap();
        let s2 = b.shared_secret(a.public_key()).unwrap();
        assert_eq!(s1, s2);
        assert_ne!(s1, [0; KEY_LEN]);
    }

    #[test]
    fn degenerate_public_keys_are_refused() {
        let a = KeyPair::generate(&mut Rng::new(Seed::from_u64(4)));
        let mut one = [0u8; KEY_LEN];
        one[KEY_LEN - 1] = 1;
        let mut p_minus_1 = PRIME;
        p_minus_1[KEY_LEN - 1] -= 1;
        for bad in [[0u8; KEY_LEN], one, p_minus_1, PRIME, [0xff; KEY_LEN]] {
            assert_eq!(a.shared_secret(&bad), None);
        }
        let mut two = [0u8; KEY_LEN];
        two[KEY_LEN - 1] = 2;
        assert!(a.shared_secret(&two).is_some());
    }

    #[test]
    fn the_prime_is_the_standard_one() {
        let p = BigUint::from_bytes_be(&PRIME);
        assert_eq!(p.bits(), 768);
        assert_eq!(PRIME[..8], [0xff; 8]);
        assert_eq!(PRIME[KEY_LEN - 3..], [0x09, 0x05, 0x63]);
    }
}

//! Fuzz bodies for the MSE handshake in both roles, with fixed seeds.

use crate::hash::InfoHash;
use crate::mse::{CryptoMethods, MseHandshake, Outcome};
use crate::rng::{Rng, Seed};

const INFO_HASH: InfoHash = InfoHash([0x5a; 20]);

/// Feeds `data` in two parts (split where the first byte says) and drains the machine.
fn drive(m: &mut MseHandshake, data: &[u8]) {
    let cut = data.first().map_or(0, |&b| usize::from(b).min(data.len()));
    let mut out = Vec::new();
    for part in [&data[..cut], &data[cut..]] {
        if m.handle_bytes(part).is_err() {
            assert!(m.is_finished());
        }
        m.poll_transmit(&mut out);
    }
    let _ = m.poll_outcome();
    assert!(m.poll_outcome().is_none(), "an outcome is given once");
}

/// An initiator fed hostile bytes as the receiver's stream: never panics.
pub fn mse_initiator(data: &[u8]) {
    let mut rng = Rng::new(Seed::from_u64(1));
    let mut m = MseHandshake::initiator(&mut rng, INFO_HASH, CryptoMethods::ALL, vec![0; 68])
        .expect("valid configuration");
    drive(&mut m, data);
}

/// A receiver fed hostile bytes as the initiator's stream: never panics.
pub fn mse_receiver(data: &[u8]) {
    let mut rng = Rng::new(Seed::from_u64(2));
    let mut m = MseHandshake::receiver(&mut rng, &[INFO_HASH], CryptoMethods::ALL)
        .expect("valid configuration");
    drive(&mut m, data);
}

/// Moves `from`'s pending bytes to `to` in chunks of the sizes in `sizes`, cycling.
fn transfer(from: &mut MseHandshake, to: &mut MseHandshake, sizes: &[usize], turn: &mut usize) {
    let mut bytes = Vec::new();
    from.poll_transmit(&mut bytes);
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let n = sizes
            .get(*turn % sizes.len().max(1))
            .copied()
            .unwrap_or(usize::MAX);
        *turn += 1;
        let n = n.min(rest.len());
        to.handle_bytes(&rest[..n]).expect("fed only while running");
        rest = &rest[n..];
    }
}

/// Two honest machines whose bytes are delivered in chunks sized by `data`: the handshake
/// always completes, with RC4, whatever the split.
pub fn mse_pair(data: &[u8]) {
    let seed = data.first().copied().map_or(0, u64::from);
    let mut rng = Rng::new(Seed::from_u64(seed));
    let mut a = MseHandshake::initiator(&mut rng, INFO_HASH, CryptoMethods::ALL, b"IA".to_vec())
        .expect("valid configuration");
    let mut b = MseHandshake::receiver(&mut rng, &[INFO_HASH], CryptoMethods::ALL)
        .expect("valid configuration");
    let sizes: Vec<usize> = data
        .iter()
        .skip(1)
        .map(|&s| usize::from(s).max(1))
        .collect();
    let mut turn = 0;
    for _ in 0..8 {
        transfer(&mut a, &mut b, &sizes, &mut turn);
        transfer(&mut b, &mut a, &sizes, &mut turn);
        if a.is_finished() && b.is_finished() {
            break;
        }
    }
    for m in [&mut a, &mut b] {
        match m.poll_outcome() {
            Some(Outcome::Established(e)) => assert!(e.cipher.is_some()),
            other => panic!("handshake did not complete: {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn bodies_never_panic(data in proptest::collection::vec(any::<u8>(), 0..800)) {
            mse_initiator(&data);
            mse_receiver(&data);
        }

        #[test]
        fn pairs_always_complete(data in proptest::collection::vec(any::<u8>(), 0..20)) {
            mse_pair(&data);
        }
    }
}

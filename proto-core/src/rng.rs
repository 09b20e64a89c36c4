//! Seeded randomness: one RNG per machine tree, seeded at construction (DESIGN.md §2, rule 3).

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// A 32-byte seed. The runtime draws it from the OS, the simulator from the scenario seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seed(pub [u8; 32]);

impl Seed {
    /// A seed derived from a small number, for tests and simulations.
    pub fn from_u64(n: u64) -> Self {
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&n.to_le_bytes());
        Seed(s)
    }
}

/// The random source every machine uses. Children are seeded from their parent with
/// [`Rng::child`], so one seed fixes a whole tree of machines.
#[derive(Debug, Clone)]
pub struct Rng(ChaCha20Rng);

impl Rng {
    /// An RNG for the given seed.
    pub fn new(seed: Seed) -> Self {
        Rng(ChaCha20Rng::from_seed(seed.0))
    }

    /// A seed for a child machine, drawn from this RNG.
    pub fn child(&mut self) -> Seed {
        let mut s = [0u8; 32];
        self.0.fill_bytes(&mut s);
        Seed(s)
    }

    /// A uniformly random `u64`.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        self.0.fill_bytes(buf);
    }

    /// A uniformly random number in `0..n`; `n` must be non-zero.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below(0)");
        // Rejection sampling keeps the distribution exact.
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let v = self.0.next_u64();
            if v < zone {
                return v % n;
            }
        }
    }

    /// Shuffles a slice in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = Rng::new(Seed::from_u64(7));
        let mut b = Rng::new(Seed::from_u64(7));
        let mut c = Rng::new(Seed::from_u64(8));
        let xs: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..4).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..4).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
        assert_eq!(a.child(), b.child());
    }

    #[test]
    fn below_stays_in_range_and_shuffle_permutes() {
        let mut r = Rng::new(Seed::from_u64(1));
        for n in 1..50 {
            assert!(r.below(n) < n);
        }
        let mut v: Vec<u32> = (0..100).collect();
        r.shuffle(&mut v);
        assert_ne!(v, (0..100).collect::<Vec<_>>());
        v.sort_unstable();
        assert_eq!(v, (0..100).collect::<Vec<_>>());
    }
}

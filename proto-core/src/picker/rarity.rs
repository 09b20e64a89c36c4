//! Pieces kept ordered by availability, updated in O(1) per availability change.
//!
//! The queue is one vector of piece indices cut into contiguous buckets: bucket `k` holds the
//! pieces whose availability key is `k`, and buckets appear in ascending key order, so walking
//! the vector from the front visits the rarest pieces first. A piece whose key moves by one
//! swaps with the element at the edge of its bucket and the boundary moves past it (O(1)).
//! Inserting or removing a piece shifts one element per later bucket (O(buckets), and the number
//! of buckets is at most the number of peers plus one). Every time a piece enters a bucket it
//! swaps with a random member of that bucket, so ties are broken at random.

/// A small, fast generator for tie-breaks, seeded from the machine's [`crate::rng::Rng`]
/// (SplitMix64). It only decides orders among equals; it is never used for anything a peer
/// could exploit.
#[derive(Debug, Clone)]
pub(crate) struct TieBreak(u64);

impl TieBreak {
    pub(crate) fn new(seed: u64) -> Self {
        TieBreak(seed)
    }

    #[inline]
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`), by multiply-shift (bias below 2^-32 for our sizes).
    #[inline]
    pub(crate) fn below(&mut self, n: u32) -> u32 {
        ((u64::from(n) * (self.next_u64() >> 32)) >> 32) as u32
    }
}

const NONE: u32 = u32::MAX;

/// The bucketed queue. `pos[piece]` is the piece's index in `order`, or `NONE`.
#[derive(Debug, Clone)]
pub(crate) struct RarityQueue {
    order: Vec<u32>,
    /// `start[k]` is the first index of bucket `k`; bucket `k` ends at `start[k + 1]` (or at
    /// `order.len()` for the last bucket).
    start: Vec<u32>,
    pos: Vec<u32>,
}

impl RarityQueue {
    pub(crate) fn new(pieces: u32) -> Self {
        RarityQueue {
            order: Vec::new(),
            start: vec![0],
            pos: vec![NONE; pieces as usize],
        }
    }

    pub(crate) fn contains(&self, piece: u32) -> bool {
        self.pos[piece as usize] != NONE
    }

    /// The pieces in queue order (rarest first).
    pub(crate) fn order(&self) -> &[u32] {
        &self.order
    }

    /// Index in [`RarityQueue::order`] where bucket `key` starts (the length if past the end).
    pub(crate) fn bucket_start(&self, key: u32) -> usize {
        self.start
            .get(key as usize)
            .map_or(self.order.len(), |&s| s as usize)
    }

    fn end(&self, k: usize) -> usize {
        self.start
            .get(k + 1)
            .map_or(self.order.len(), |&s| s as usize)
    }

    fn ensure_bucket(&mut self, key: u32) {
        while self.start.len() <= key as usize {
            self.start.push(self.order.len() as u32);
        }
    }

    #[inline]
    fn put(&mut self, at: usize, piece: u32) {
        self.order[at] = piece;
        self.pos[piece as usize] = at as u32;
    }

    fn shuffle_into(&mut self, piece: u32, bucket: usize, tb: &mut TieBreak) {
        let (lo, hi) = (self.start[bucket] as usize, self.end(bucket));
        if hi - lo > 1 {
            let j = lo + tb.below((hi - lo) as u32) as usize;
            let i = self.pos[piece as usize] as usize;
            let other = self.order[j];
            self.put(j, piece);
            self.put(i, other);
        }
    }

    /// Adds `piece` with availability `key`. O(buckets above `key`).
    pub(crate) fn insert(&mut self, piece: u32, key: u32, tb: &mut TieBreak) {
        debug_assert!(!self.contains(piece));
        self.ensure_bucket(key);
        let k = key as usize;
        // Open a hole at the end of the vector and walk it down to the end of bucket k: each
        // later bucket gives its first element to its own end.
        self.order.push(piece);
        let mut hole = self.order.len() - 1;
        for b in (k + 1..self.start.len()).rev() {
            let first = self.start[b] as usize;
            if first != hole {
                let moved = self.order[first];
                self.put(hole, moved);
            }
            hole = first;
            self.start[b] += 1;
        }
        self.put(hole, piece);
        self.shuffle_into(piece, k, tb);
    }

    /// Removes `piece`, whose availability is `key`. O(buckets above `key`).
    pub(crate) fn remove(&mut self, piece: u32, key: u32) {
        let at = self.pos[piece as usize];
        debug_assert!(at != NONE);
        let k = key as usize;
        let mut hole = at as usize;
        // Fill the hole with the last element of each bucket from k upwards.
        for b in k..self.start.len() {
            let last = self.end(b) - 1;
            if last != hole {
                let moved = self.order[last];
                self.put(hole, moved);
            }
            hole = last;
            if b + 1 < self.start.len() {
                self.start[b + 1] -= 1;
            }
        }
        debug_assert_eq!(hole, self.order.len() - 1);
        self.order.pop();
        self.pos[piece as usize] = NONE;
    }

    /// `piece`'s availability went from `key` to `key + 1`. O(1).
    pub(crate) fn increment(&mut self, piece: u32, key: u32, tb: &mut TieBreak) {
        self.ensure_bucket(key + 1);
        let k = key as usize;
        let last = self.end(k) - 1;
        let i = self.pos[piece as usize] as usize;
        let other = self.order[last];
        self.put(last, piece);
        self.put(i, other);
        self.start[k + 1] -= 1;
        self.shuffle_into(piece, k + 1, tb);
    }

    /// `piece`'s availability went from `key` to `key - 1` (`key > 0`). O(1).
    pub(crate) fn decrement(&mut self, piece: u32, key: u32, tb: &mut TieBreak) {
        let k = key as usize;
        let first = self.start[k] as usize;
        let i = self.pos[piece as usize] as usize;
        let other = self.order[first];
        self.put(first, piece);
        self.put(i, other);
        self.start[k] += 1;
        self.shuffle_into(piece, k - 1, tb);
    }

    /// Checks the structure against the availability of every piece (tests).
    #[cfg(test)]
    pub(crate) fn check(&self, avail: &[u32]) {
        for (i, &p) in self.order.iter().enumerate() {
            assert_eq!(self.pos[p as usize] as usize, i, "pos of {p}");
            let k = avail[p as usize] as usize;
            assert!(
                self.start[k] as usize <= i && i < self.end(k),
                "bucket of {p}"
            );
        }
        let members = self.pos.iter().filter(|&&p| p != NONE).count();
        assert_eq!(members, self.order.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn stays_ordered(ops in proptest::collection::vec((0u32..20, 0u8..4), 0..300)) {
            let mut q = RarityQueue::new(20);
            let mut avail = vec![0u32; 20];
            let mut tb = TieBreak::new(1);
            for (p, op) in ops {
                match op {
                    0 => if q.contains(p) { q.remove(p, avail[p as usize]) } else { q.insert(p, avail[p as usize], &mut tb) },
                    1 => { if q.contains(p) { q.increment(p, avail[p as usize], &mut tb) } avail[p as usize] += 1 }
                    _ => if avail[p as usize] > 0 {
                        if q.contains(p) { q.decrement(p, avail[p as usize], &mut tb) }
                        avail[p as usize] -= 1;
                    },
                }
                q.check(&avail);
                let keys: Vec<u32> = q.order().iter().map(|&p| avail[p as usize]).collect();
                prop_assert!(keys.windows(2).all(|w| w[0] <= w[1]));
            }
        }
    }

    #[test]
    fn ties_are_shuffled() {
        let mut q = RarityQueue::new(64);
        let mut tb = TieBreak::new(7);
        for p in 0..64 {
            q.insert(p, 0, &mut tb);
        }
        assert_ne!(q.order(), (0..64).collect::<Vec<_>>().as_slice());
        assert_eq!(q.bucket_start(1), 64);
    }
}

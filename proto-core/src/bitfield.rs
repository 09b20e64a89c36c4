//! A compact bitfield over piece indices: ours, and each peer's.
//!
//! Bits are stored in `u64` words, most significant bit first, so word `w` holds pieces
//! `64·w .. 64·w + 64` in the same order as the BEP 3 wire format (the high bit of the first
//! byte is piece 0). Conversion to and from wire bytes is therefore a plain big-endian copy.
//!
//! The number of set bits is cached, so [`Bitfield::count`], [`Bitfield::all`] and
//! [`Bitfield::none`] are O(1). Bits past [`Bitfield::len`] (the spare bits of the last word)
//! are always zero; every method keeps that invariant.

use thiserror::Error;

/// Why wire bytes were refused as a bitfield (a peer fault: the caller disconnects).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BitfieldError {
    /// The payload is not `ceil(pieces / 8)` bytes long.
    #[error("bitfield is {got} bytes, expected {expected}")]
    WrongLength {
        /// `ceil(pieces / 8)`.
        expected: usize,
        /// Bytes received.
        got: usize,
    },
    /// A bit past the last piece is set (BEP 3: spare bits must be zero).
    #[error("spare bits of the bitfield are set")]
    SpareBitsSet,
}

/// A fixed-length set of piece indices.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Bitfield {
    words: Vec<u64>,
    len: u32,
    ones: u32,
}

impl std::fmt::Debug for Bitfield {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bitfield({}/{})", self.ones, self.len)
    }
}

const fn mask(i: u32) -> u64 {
    1u64 << (63 - (i % 64))
}

impl Bitfield {
    /// An empty bitfield (no pieces set) over `len` pieces.
    pub fn new(len: u32) -> Self {
        Bitfield {
            words: vec![0; (len as usize).div_ceil(64)],
            len,
            ones: 0,
        }
    }

    /// A bitfield over `len` pieces with every piece set.
    pub fn full(len: u32) -> Self {
        let mut b = Bitfield {
            words: vec![u64::MAX; (len as usize).div_ceil(64)],
            len,
            ones: len,
        };
        b.clear_spare();
        b
    }

    /// Reads BEP 3 wire bytes for a torrent of `len` pieces.
    ///
    /// The payload must be exactly `ceil(len / 8)` bytes and its spare bits must be zero.
    pub fn from_bytes(bytes: &[u8], len: u32) -> Result<Self, BitfieldError> {
        let expected = (len as usize).div_ceil(8);
        if bytes.len() != expected {
            return Err(BitfieldError::WrongLength {
                expected,
                got: bytes.len(),
            });
        }
        let mut words = vec![0u64; (len as usize).div_ceil(64)];
        for (w, chunk) in words.iter_mut().zip(bytes.chunks(8)) {
            let mut buf = [0u8; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            *w = u64::from_be_bytes(buf);
        }
        let mut b = Bitfield {
            words,
            len,
            ones: 0,
        };
        if let Some(&last) = b.words.last()
            && last & !b.last_word_mask() != 0
        {
            return Err(BitfieldError::SpareBitsSet);
        }
        b.ones = b.words.iter().map(|w| w.count_ones()).sum();
        Ok(b)
    }

    /// The BEP 3 wire bytes: `ceil(len / 8)` bytes, spare bits zero.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity((self.len as usize).div_ceil(8));
        self.write_bytes(&mut out);
        out
    }

    /// Appends the BEP 3 wire bytes to `out`.
    pub fn write_bytes(&self, out: &mut Vec<u8>) {
        let n = (self.len as usize).div_ceil(8);
        let start = out.len();
        for w in &self.words {
            out.extend_from_slice(&w.to_be_bytes());
        }
        out.truncate(start + n);
    }

    /// Number of pieces the bitfield covers.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// True if the bitfield covers no pieces at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of pieces set. O(1).
    pub fn count(&self) -> u32 {
        self.ones
    }

    /// True if every piece is set (also true for a zero-length bitfield).
    pub fn all(&self) -> bool {
        self.ones == self.len
    }

    /// True if no piece is set.
    pub fn none(&self) -> bool {
        self.ones == 0
    }

    /// Whether piece `i` is set; false past the end.
    #[inline]
    pub fn get(&self, i: u32) -> bool {
        i < self.len && self.words[(i / 64) as usize] & mask(i) != 0
    }

    /// Sets piece `i`; returns true if it was not set before. Out-of-range indices are ignored
    /// (and return false).
    #[inline]
    pub fn set(&mut self, i: u32) -> bool {
        if i >= self.len {
            return false;
        }
        let w = &mut self.words[(i / 64) as usize];
        let was = *w & mask(i) != 0;
        *w |= mask(i);
        if !was {
            self.ones += 1;
        }
        !was
    }

    /// Clears piece `i`; returns true if it was set before. Out-of-range indices are ignored.
    #[inline]
    pub fn clear(&mut self, i: u32) -> bool {
        if i >= self.len {
            return false;
        }
        let w = &mut self.words[(i / 64) as usize];
        let was = *w & mask(i) != 0;
        *w &= !mask(i);
        if was {
            self.ones -= 1;
        }
        was
    }

    /// Sets every piece.
    pub fn set_all(&mut self) {
        *self = Bitfield::full(self.len);
    }

    /// Clears every piece.
    pub fn clear_all(&mut self) {
        self.words.iter_mut().for_each(|w| *w = 0);
        self.ones = 0;
    }

    /// The set pieces in ascending order.
    pub fn iter_ones(&self) -> Ones<'_> {
        Ones::new(&self.words, None)
    }

    /// Pieces set here and not in `other` ("pieces they have that we don't"), ascending.
    /// Pieces past `other`'s length count as not set there.
    pub fn iter_and_not<'a>(&'a self, other: &'a Bitfield) -> Ones<'a> {
        Ones::new(&self.words, Some((&other.words, true)))
    }

    /// Pieces set both here and in `other`, ascending.
    pub fn iter_and<'a>(&'a self, other: &'a Bitfield) -> Ones<'a> {
        Ones::new(&self.words, Some((&other.words, false)))
    }

    /// True if some piece is set here and not in `other` (the BEP 3 "interested" test when
    /// `self` is the peer's bitfield and `other` ours). Stops at the first such word.
    pub fn has_any_not_in(&self, other: &Bitfield) -> bool {
        self.words
            .iter()
            .enumerate()
            .any(|(k, &w)| w & !other.words.get(k).copied().unwrap_or(0) != 0)
    }

    /// Number of pieces set here and not in `other`.
    pub fn count_and_not(&self, other: &Bitfield) -> u32 {
        self.words
            .iter()
            .enumerate()
            .map(|(k, &w)| (w & !other.words.get(k).copied().unwrap_or(0)).count_ones())
            .sum()
    }

    /// The first set piece at or after `from`, if any.
    pub fn next_one(&self, from: u32) -> Option<u32> {
        if from >= self.len {
            return None;
        }
        let mut k = (from / 64) as usize;
        let mut w = self.words[k] & (u64::MAX >> (from % 64));
        loop {
            if w != 0 {
                return Some(k as u32 * 64 + w.leading_zeros());
            }
            k += 1;
            w = *self.words.get(k)?;
        }
    }

    /// The raw words (most significant bit first), for word-at-a-time scans.
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    fn last_word_mask(&self) -> u64 {
        match self.len % 64 {
            0 => u64::MAX,
            r => !(u64::MAX >> r),
        }
    }

    fn clear_spare(&mut self) {
        let m = self.last_word_mask();
        if let Some(last) = self.words.last_mut() {
            *last &= m;
        }
    }
}

/// Iterator over set pieces (optionally combined word-wise with a second bitfield).
#[derive(Debug, Clone)]
pub struct Ones<'a> {
    words: &'a [u64],
    other: Option<(&'a [u64], bool)>,
    k: usize,
    cur: u64,
}

impl<'a> Ones<'a> {
    fn new(words: &'a [u64], other: Option<(&'a [u64], bool)>) -> Self {
        let mut it = Ones {
            words,
            other,
            k: 0,
            cur: 0,
        };
        it.cur = it.word(0);
        it
    }

    #[inline]
    fn word(&self, k: usize) -> u64 {
        let w = self.words.get(k).copied().unwrap_or(0);
        match self.other {
            None => w,
            Some((o, negate)) => {
                let o = o.get(k).copied().unwrap_or(0);
                if negate { w & !o } else { w & o }
            }
        }
    }
}

impl Iterator for Ones<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        while self.cur == 0 {
            self.k += 1;
            if self.k >= self.words.len() {
                return None;
            }
            self.cur = self.word(self.k);
        }
        let bit = self.cur.leading_zeros();
        self.cur &= !(1u64 << (63 - bit));
        Some(self.k as u32 * 64 + bit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn set_clear_get_count() {
        let mut b = Bitfield::new(70);
        assert!(b.none() && !b.all() && b.len() == 70);
        assert!(b.set(0));
        assert!(!b.set(0));
        assert!(b.set(69));
        assert!(!b.set(70), "out of range is ignored");
        assert!(b.get(0) && b.get(69) && !b.get(1) && !b.get(70));
        assert_eq!(b.count(), 2);
        assert!(b.clear(0));
        assert!(!b.clear(0));
        assert_eq!(b.count(), 1);
        assert_eq!(b.iter_ones().collect::<Vec<_>>(), [69]);
        let f = Bitfield::full(70);
        assert!(f.all());
        assert_eq!(f.iter_ones().count(), 70);
        assert!(Bitfield::new(0).all() && Bitfield::new(0).none());
    }

    #[test]
    fn wire_order_is_msb_first() {
        let mut b = Bitfield::new(10);
        b.set(0);
        b.set(9);
        assert_eq!(b.to_bytes(), [0b1000_0000, 0b0100_0000]);
        let back = Bitfield::from_bytes(&[0b1000_0000, 0b0100_0000], 10).unwrap();
        assert_eq!(back, b);
    }

    #[test]
    fn wire_errors() {
        assert_eq!(
            Bitfield::from_bytes(&[0xff], 10),
            Err(BitfieldError::WrongLength {
                expected: 2,
                got: 1
            })
        );
        assert_eq!(
            Bitfield::from_bytes(&[0xff, 0b1110_0000], 10),
            Err(BitfieldError::SpareBitsSet)
        );
        assert!(
            Bitfield::from_bytes(&[0xff, 0b1100_0000], 10)
                .unwrap()
                .all()
        );
        assert!(Bitfield::from_bytes(&[], 0).unwrap().is_empty());
    }

    #[test]
    fn intersections() {
        let mut theirs = Bitfield::new(130);
        let mut ours = Bitfield::new(130);
        for i in [1, 64, 100, 129] {
            theirs.set(i);
        }
        for i in [1, 100] {
            ours.set(i);
        }
        assert_eq!(theirs.iter_and_not(&ours).collect::<Vec<_>>(), [64, 129]);
        assert_eq!(theirs.iter_and(&ours).collect::<Vec<_>>(), [1, 100]);
        assert!(theirs.has_any_not_in(&ours));
        assert!(!ours.has_any_not_in(&theirs));
        assert_eq!(theirs.count_and_not(&ours), 2);
        assert_eq!(theirs.next_one(2), Some(64));
        assert_eq!(theirs.next_one(101), Some(129));
        assert_eq!(ours.next_one(101), None);
    }

    proptest! {
        #[test]
        fn bytes_round_trip(len in 0u32..300, picks in proptest::collection::vec(0u32..300, 0..50)) {
            let mut b = Bitfield::new(len);
            let mut model = std::collections::BTreeSet::new();
            for p in picks {
                if p < len {
                    b.set(p);
                    model.insert(p);
                }
            }
            prop_assert_eq!(b.count() as usize, model.len());
            prop_assert_eq!(b.iter_ones().collect::<Vec<_>>(), model.iter().copied().collect::<Vec<_>>());
            let bytes = b.to_bytes();
            prop_assert_eq!(bytes.len(), len.div_ceil(8) as usize);
            prop_assert_eq!(Bitfield::from_bytes(&bytes, len).unwrap(), b);
        }
    }
}

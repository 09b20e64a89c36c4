//! Piece and block geometry of one torrent, derived from its [`Info`].
//!
//! Pieces are split into [`BLOCK_LEN`] (16 KiB) blocks on a 16 KiB grid from the piece start;
//! the last block of a piece may be short. BEP 47 padding is never requested: a block ends early
//! at a pad boundary and pad-only regions produce no blocks. Only pieces that touch padding keep
//! an explicit block list; every other piece's blocks are computed.

use std::collections::BTreeMap;

use crate::metainfo::Info;

/// Bytes per block: the request size every client uses.
pub const BLOCK_LEN: u32 = 16 * 1024;

/// One block: a byte range of a piece, as it appears in `request`, `piece` and `cancel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Block {
    /// Piece index.
    pub piece: u32,
    /// Offset within the piece.
    pub begin: u32,
    /// Length in bytes (at most [`BLOCK_LEN`]).
    pub length: u32,
}

/// A non-padding file of the torrent, as the picker sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSpan {
    /// Offset of the first byte in the torrent's byte stream.
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
}

/// Piece/block geometry and file spans of one torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    piece_length: u32,
    total_length: u64,
    piece_count: u32,
    /// Blocks of pieces that touch padding, as `(begin, length)`. Bounded by the file count.
    padded: BTreeMap<u32, Vec<(u32, u32)>>,
    /// Every file in torrent order (index = the file index of [`Info::files`]); `None` for
    /// padding files.
    files: Vec<Option<FileSpan>>,
    /// Every file's span, padding included (for offset searches).
    spans: Vec<FileSpan>,
}

impl Layout {
    /// The layout of a torrent.
    pub fn from_info(info: &Info) -> Self {
        let files: Vec<(u64, u64, bool)> = info
            .files
            .iter()
            .map(|f| (f.offset, f.length, f.padding))
            .collect();
        Self::new(info.piece_length, info.total_length, &files)
    }

    /// A layout from raw numbers: `files` are `(offset, length, is_padding)` in torrent order,
    /// contiguous from offset 0. `piece_length` must be non-zero.
    pub fn new(piece_length: u32, total_length: u64, files: &[(u64, u64, bool)]) -> Self {
        assert!(piece_length > 0, "piece length must be non-zero");
        let piece_count = total_length.div_ceil(u64::from(piece_length)) as u32;
        let mut layout = Layout {
            piece_length,
            total_length,
            piece_count,
            padded: BTreeMap::new(),
            files: files
                .iter()
                .map(|&(offset, length, pad)| (!pad).then_some(FileSpan { offset, length }))
                .collect(),
            spans: files
                .iter()
                .map(|&(offset, length, _)| FileSpan { offset, length })
                .collect(),
        };
        let pads: Vec<(u64, u64)> = files
            .iter()
            .filter(|f| f.2 && f.1 > 0)
            .map(|&(o, l, _)| (o, o + l))
            .collect();
        for &(start, end) in &pads {
            let first = (start / u64::from(piece_length)) as u32;
            let last = ((end - 1) / u64::from(piece_length)) as u32;
            for p in first..=last.min(piece_count.saturating_sub(1)) {
                if layout.padded.contains_key(&p) {
                    continue;
                }
                let blocks = layout.blocks_avoiding(p, &pads);
                layout.padded.insert(p, blocks);
            }
        }
        layout
    }

    fn blocks_avoiding(&self, piece: u32, pads: &[(u64, u64)]) -> Vec<(u32, u32)> {
        let ps = u64::from(piece) * u64::from(self.piece_length);
        let plen = u64::from(self.piece_len(piece));
        // Non-padding segments of the piece, relative to its start.
        let mut segs = vec![(0u64, plen)];
        for &(a, b) in pads {
            let (a, b) = (
                a.saturating_sub(ps).min(plen),
                b.saturating_sub(ps).min(plen),
            );
            if a >= b {
                continue;
            }
            segs = segs
                .into_iter()
                .flat_map(|(s, e)| [(s, e.min(a)), (s.max(b), e)])
                .filter(|(s, e)| s < e)
                .collect();
        }
        let bl = u64::from(BLOCK_LEN);
        let mut out = Vec::new();
        for (s, e) in segs {
            let mut at = s;
            while at < e {
                let end = ((at / bl + 1) * bl).min(e);
                out.push((at as u32, (end - at) as u32));
                at = end;
            }
        }
        out
    }

    /// Number of pieces.
    pub fn piece_count(&self) -> u32 {
        self.piece_count
    }

    /// Nominal piece length.
    pub fn piece_length(&self) -> u32 {
        self.piece_length
    }

    /// Total bytes, padding included.
    pub fn total_length(&self) -> u64 {
        self.total_length
    }

    /// Length of piece `piece` (the last may be short); 0 past the end.
    pub fn piece_len(&self, piece: u32) -> u32 {
        if piece >= self.piece_count {
            return 0;
        }
        let start = u64::from(piece) * u64::from(self.piece_length);
        (self.total_length - start).min(u64::from(self.piece_length)) as u32
    }

    /// Number of blocks of `piece` (0 for a padding-only piece or past the end).
    pub fn block_count(&self, piece: u32) -> u32 {
        match self.padded.get(&piece) {
            Some(v) => v.len() as u32,
            None => self.piece_len(piece).div_ceil(BLOCK_LEN),
        }
    }

    /// Block number `index` of `piece`. `index` must be below [`Layout::block_count`].
    pub fn block(&self, piece: u32, index: u32) -> Block {
        if let Some(v) = self.padded.get(&piece) {
            let (begin, length) = v[index as usize];
            return Block {
                piece,
                begin,
                length,
            };
        }
        let begin = index * BLOCK_LEN;
        Block {
            piece,
            begin,
            length: (self.piece_len(piece) - begin).min(BLOCK_LEN),
        }
    }

    /// The block number of `block` if it is exactly one of the piece's blocks.
    pub fn block_index(&self, block: Block) -> Option<u32> {
        if block.piece >= self.piece_count {
            return None;
        }
        let index = if let Some(v) = self.padded.get(&block.piece) {
            v.partition_point(|&(b, _)| b < block.begin) as u32
        } else if block.begin.is_multiple_of(BLOCK_LEN) {
            block.begin / BLOCK_LEN
        } else {
            return None;
        };
        (index < self.block_count(block.piece) && self.block(block.piece, index) == block)
            .then_some(index)
    }

    /// Non-padding files in torrent order, with their index in [`Info::files`].
    pub fn files(&self) -> impl Iterator<Item = (usize, FileSpan)> + '_ {
        self.files
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.map(|f| (i, f)))
    }

    /// File `index` (an index into [`Info::files`]); `None` for padding files or out of range.
    pub fn file(&self, index: usize) -> Option<FileSpan> {
        self.files.get(index).copied().flatten()
    }

    /// Number of files (padding files included), i.e. the valid file indices.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// Pieces `first..=last` a non-empty byte range `offset..offset+length` touches, or `None`
    /// for an empty range.
    pub fn pieces_of(&self, offset: u64, length: u64) -> Option<(u32, u32)> {
        if length == 0 || self.piece_count == 0 {
            return None;
        }
        let pl = u64::from(self.piece_length);
        let first = (offset / pl) as u32;
        let last = ((offset + length - 1) / pl) as u32;
        Some((
            first.min(self.piece_count - 1),
            last.min(self.piece_count - 1),
        ))
    }

    /// The block of `piece` that holds byte `begin` of the piece, with its block number;
    /// `None` when the byte is padding or outside the piece.
    pub fn block_at(&self, piece: u32, begin: u32) -> Option<(u32, Block)> {
        if begin >= self.piece_len(piece) {
            return None;
        }
        let index = match self.padded.get(&piece) {
            Some(v) => {
                let k = v.partition_point(|&(b, _)| b <= begin).checked_sub(1)?;
                let (b, l) = v[k];
                if begin >= b + l {
                    return None;
                }
                k as u32
            }
            None => begin / BLOCK_LEN,
        };
        Some((index, self.block(piece, index)))
    }

    /// The non-padding, non-empty file segments covering `len` bytes at torrent offset
    /// `offset`, in torrent order. Bytes in padding or past the end are not covered. This is
    /// the one mapping from the torrent's byte stream to files: storage uses it to read and
    /// write, webseeds to turn piece ranges into per-file HTTP ranges. Allocation-free.
    pub fn segments(&self, offset: u64, len: u64) -> Segments<'_> {
        let end = offset.saturating_add(len).min(self.total_length);
        // First file that ends after `offset` (empty files end where they start and are
        // passed over).
        let next = self
            .spans
            .partition_point(|f| f.offset + f.length <= offset);
        Segments {
            layout: self,
            start: offset,
            end,
            next,
        }
    }

    /// Indices of the non-padding files overlapping `piece`, ascending.
    pub fn files_of(&self, piece: u32) -> impl Iterator<Item = usize> + '_ {
        let ps = u64::from(piece) * u64::from(self.piece_length);
        let pe = ps + u64::from(self.piece_len(piece));
        // File ends are non-decreasing (files are contiguous): skip those ending before `ps`.
        let from = self.spans.partition_point(|f| f.offset + f.length <= ps);
        self.spans[from..]
            .iter()
            .enumerate()
            .take_while(move |(_, f)| f.offset < pe)
            .filter_map(move |(k, f)| {
                let i = from + k;
                (self.files[i].is_some() && f.length > 0).then_some(i)
            })
    }
}

/// A contiguous part of a byte range that lives in one non-padding file
/// ([`Layout::segments`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Index of the file in [`Info::files`].
    pub file: usize,
    /// Offset inside that file.
    pub file_offset: u64,
    /// Offset of this segment from the start of the range.
    pub range_offset: u64,
    /// Length in bytes (never zero).
    pub len: u64,
}

/// Iterator returned by [`Layout::segments`].
#[derive(Debug, Clone)]
pub struct Segments<'a> {
    layout: &'a Layout,
    start: u64,
    end: u64,
    next: usize,
}

impl Iterator for Segments<'_> {
    type Item = Segment;

    fn next(&mut self) -> Option<Segment> {
        while let Some(f) = self.layout.spans.get(self.next) {
            if f.offset >= self.end {
                return None;
            }
            let index = self.next;
            self.next += 1;
            if self.layout.files[index].is_none() || f.length == 0 {
                continue;
            }
            let from = f.offset.max(self.start);
            let to = (f.offset + f.length).min(self.end);
            if from >= to {
                continue;
            }
            return Some(Segment {
                file: index,
                file_offset: from - f.offset,
                range_offset: from - self.start,
                len: to - from,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_blocks_and_short_tail() {
        // 3 pieces of 40 KiB, the last 10 KiB.
        let l = Layout::new(40 * 1024, 90 * 1024, &[(0, 90 * 1024, false)]);
        assert_eq!(l.piece_count(), 3);
        assert_eq!(l.block_count(0), 3);
        assert_eq!(
            l.block(0, 2),
            Block {
                piece: 0,
                begin: 32768,
                length: 8192
            }
        );
        assert_eq!(l.block_count(2), 1);
        assert_eq!(l.block(2, 0).length, 10 * 1024);
        assert_eq!(l.block_index(l.block(0, 2)), Some(2));
        assert_eq!(
            l.block_index(Block {
                piece: 0,
                begin: 32768,
                length: 16384
            }),
            None
        );
        assert_eq!(
            l.block_index(Block {
                piece: 0,
                begin: 100,
                length: 16384
            }),
            None
        );
        assert_eq!(
            l.block_index(Block {
                piece: 9,
                begin: 0,
                length: 1
            }),
            None
        );
    }

    fn segs(l: &Layout, offset: u64, len: u64) -> Vec<(usize, u64, u64, u64)> {
        l.segments(offset, len)
            .map(|s| (s.file, s.file_offset, s.range_offset, s.len))
            .collect()
    }

    #[test]
    fn segments_cross_files_and_skip_padding() {
        // a: 0..10, pad: 10..16, empty: 16..16, b: 16..40, c: 40..45
        let files = [
            (0, 10, false),
            (10, 6, true),
            (16, 0, false),
            (16, 24, false),
            (40, 5, false),
        ];
        let l = Layout::new(16, 45, &files);
        assert_eq!(segs(&l, 0, 16), [(0, 0, 0, 10)]);
        assert_eq!(segs(&l, 16, 16), [(3, 0, 0, 16)]);
        assert_eq!(segs(&l, 32, 13), [(3, 16, 0, 8), (4, 0, 8, 5)]);
        assert_eq!(segs(&l, 8, 12), [(0, 8, 0, 2), (3, 0, 8, 4)]);
        assert_eq!(segs(&l, 11, 4), []);
        assert_eq!(segs(&l, 44, 10), [(4, 4, 0, 1)]);
        assert_eq!(segs(&l, 45, 10), []);
    }

    #[test]
    fn block_at_finds_the_holding_block() {
        let kib = 1024u64;
        let files = [
            (0, 20 * kib, false),
            (20 * kib, 12 * kib, true),
            (32 * kib, 40 * kib, false),
        ];
        let l = Layout::new(32 * 1024, 72 * kib, &files);
        assert_eq!(l.block_at(0, 0).map(|b| b.0), Some(0));
        assert_eq!(l.block_at(0, 17000).map(|b| b.0), Some(1));
        assert_eq!(l.block_at(0, 20 * 1024), None, "padding");
        assert_eq!(l.block_at(1, 16384).map(|b| b.1.begin), Some(16384));
        assert_eq!(l.block_at(2, 8 * 1024 - 1).map(|b| b.0), Some(0));
        assert_eq!(l.block_at(2, 8 * 1024), None, "past the short last piece");
    }

    #[test]
    fn padding_is_never_covered() {
        // file a: 20 KiB, pad: 12 KiB (aligns to 32 KiB pieces), file b: 40 KiB.
        let kib = 1024u64;
        let files = [
            (0, 20 * kib, false),
            (20 * kib, 12 * kib, true),
            (32 * kib, 40 * kib, false),
        ];
        let l = Layout::new(32 * 1024, 72 * kib, &files);
        assert_eq!(l.block_count(0), 2);
        assert_eq!(
            l.block(0, 1),
            Block {
                piece: 0,
                begin: 16384,
                length: 4096
            }
        );
        assert_eq!(l.block_index(l.block(0, 1)), Some(1));
        assert_eq!(l.block_count(1), 2);
        assert_eq!(l.files_of(0).collect::<Vec<_>>(), [0]);
        assert_eq!(l.files_of(1).collect::<Vec<_>>(), [2]);
        assert_eq!(l.files_of(2).collect::<Vec<_>>(), [2]);
        assert_eq!(l.file(1), None);
        // A pad covering a whole piece yields no blocks.
        let l = Layout::new(
            16 * 1024,
            48 * kib,
            &[(0, 8 * kib, false), (8 * kib, 40 * kib, true)],
        );
        assert_eq!(l.block_count(1), 0);
        assert_eq!(l.block_count(2), 0);
        assert_eq!(l.block(0, 0).length, 8 * 1024);
    }
}

//! Where each byte of a torrent lives: the mapping from the torrent's byte stream (pieces are
//! consecutive ranges of it) to `(file, offset in file)`, computed once from [`Info`].
//!
//! Padding files (BEP 47) and empty files hold no bytes on disk, so [`Layout::segments`] never
//! yields them: a range's bytes that fall in padding are simply not covered by any segment, and
//! storages read them as zeros and drop them on write.

use std::ops::Range;

use rain_proto::metainfo::Info;
use rain_proto::picker;

/// One file of the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutFile {
    /// Path relative to the storage root: `<name>/<path…>` (multi-file) or `<name>` (single
    /// file), from the sanitised [`Info`] components.
    pub path: Vec<String>,
    /// Offset of the file's first byte in the torrent.
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
    /// BEP 47 padding file: never written, reads as zeros, never created on disk.
    pub padding: bool,
}

impl LayoutFile {
    /// Offset one past the file's last byte in the torrent.
    pub fn end(&self) -> u64 {
        self.offset + self.length
    }
}

/// A contiguous part of a byte range that lives in one (non-padding) file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Index of the file in [`Layout::files`].
    pub file: usize,
    /// Offset inside that file.
    pub file_offset: u64,
    /// Offset of this segment from the start of the requested range (a buffer position).
    pub range_offset: usize,
    /// Length in bytes (never zero).
    pub len: usize,
}

/// The piece and file geometry of one torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    files: Vec<LayoutFile>,
    /// proto-core's geometry, which owns the byte-to-file mapping.
    geometry: picker::Layout,
    piece_length: u32,
    piece_count: u32,
    total_length: u64,
}

impl Layout {
    /// Builds the layout of `info`. File offsets are recomputed as running sums of the lengths,
    /// so the layout is consistent even if `info`'s offsets are not.
    pub fn new(info: &Info) -> Self {
        let mut offset = 0u64;
        let files: Vec<LayoutFile> = info
            .files
            .iter()
            .map(|f| {
                let file = LayoutFile {
                    path: info.file_path(f),
                    offset,
                    length: f.length,
                    padding: f.padding,
                };
                offset += f.length;
                file
            })
            .collect();
        let spans: Vec<(u64, u64, bool)> = files
            .iter()
            .map(|f| (f.offset, f.length, f.padding))
            .collect();
        Layout {
            geometry: picker::Layout::new(info.piece_length.max(1), offset, &spans),
            files,
            piece_length: info.piece_length,
            piece_count: info.piece_count(),
            total_length: offset,
        }
    }

    /// The files in torrent order, padding included.
    pub fn files(&self) -> &[LayoutFile] {
        &self.files
    }

    /// Bytes per piece (the last piece may be shorter).
    pub fn piece_length(&self) -> u32 {
        self.piece_length
    }

    /// Number of pieces.
    pub fn piece_count(&self) -> u32 {
        self.piece_count
    }

    /// Total bytes in the torrent, padding included.
    pub fn total_length(&self) -> u64 {
        self.total_length
    }

    /// `(offset in torrent, length)` of piece `index`, or `None` past the end.
    pub fn piece(&self, index: u32) -> Option<(u64, u32)> {
        if index >= self.piece_count {
            return None;
        }
        let offset = u64::from(index) * u64::from(self.piece_length);
        let len = (self.total_length - offset).min(u64::from(self.piece_length));
        Some((offset, len as u32))
    }

    /// The pieces that hold at least one byte of file `file` (empty for an empty file or an
    /// index past the end). A missing or damaged file invalidates exactly these pieces.
    pub fn file_pieces(&self, file: usize) -> Range<u32> {
        let Some(f) = self.files.get(file) else {
            return 0..0;
        };
        if f.length == 0 || self.piece_length == 0 {
            return 0..0;
        }
        let pl = u64::from(self.piece_length);
        let first = f.offset / pl;
        let last = (f.end() - 1) / pl;
        first as u32..last as u32 + 1
    }

    /// Whether `len` bytes at `offset` lie inside the torrent.
    pub fn contains(&self, offset: u64, len: usize) -> bool {
        offset
            .checked_add(len as u64)
            .is_some_and(|end| end <= self.total_length)
    }

    /// The non-padding file segments covering `len` bytes at `offset`, in order. Bytes that fall
    /// in padding (or outside the torrent) are not covered. Allocation-free; the mapping is
    /// proto-core's ([`picker::Layout::segments`]), shared with webseeds.
    pub fn segments(&self, offset: u64, len: usize) -> Segments<'_> {
        Segments(self.geometry.segments(offset, len as u64))
    }
}

/// Iterator returned by [`Layout::segments`].
#[derive(Debug, Clone)]
pub struct Segments<'a>(picker::Segments<'a>);

impl Iterator for Segments<'_> {
    type Item = Segment;

    fn next(&mut self) -> Option<Segment> {
        self.0.next().map(|s| Segment {
            file: s.file,
            file_offset: s.file_offset,
            range_offset: s.range_offset as usize,
            len: s.len as usize,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use rain_proto::metainfo::File;

    use super::*;

    /// An `Info` with the given `(path, length, padding)` files and zeroed piece hashes.
    pub(crate) fn info(piece_length: u32, files: &[(&str, u64, bool)]) -> Info {
        let mut offset = 0;
        let files: Vec<File> = files
            .iter()
            .map(|&(path, length, padding)| {
                let f = File {
                    path: path.split('/').map(str::to_owned).collect(),
                    length,
                    offset,
                    padding,
                    attr: if padding { "p".into() } else { String::new() },
                };
                offset += length;
                f
            })
            .collect();
        let count = offset.div_ceil(u64::from(piece_length)) as usize;
        Info {
            name: "t".into(),
            piece_length,
            pieces: vec![[0; 20]; count],
            private: false,
            source: None,
            multi_file: true,
            files,
            total_length: offset,
        }
    }

    fn segs(layout: &Layout, offset: u64, len: usize) -> Vec<(usize, u64, usize, usize)> {
        layout
            .segments(offset, len)
            .map(|s| (s.file, s.file_offset, s.range_offset, s.len))
            .collect()
    }

    #[test]
    fn spans_cross_file_boundaries_and_skip_padding() {
        // a: 0..10, pad: 10..16, empty: 16..16, b: 16..40, c: 40..45
        let layout = Layout::new(&info(
            16,
            &[
                ("a", 10, false),
                (".pad/6", 6, true),
                ("e", 0, false),
                ("b", 24, false),
                ("c", 5, false),
            ],
        ));
        assert_eq!(layout.total_length(), 45);
        assert_eq!(layout.piece_count(), 3);
        assert_eq!(layout.files()[3].path, ["t", "b"]);
        // Piece 0 is `a` then padding only.
        assert_eq!(segs(&layout, 0, 16), [(0, 0, 0, 10)]);
        // Piece 1 lies inside `b`.
        assert_eq!(segs(&layout, 16, 16), [(3, 0, 0, 16)]);
        // Piece 2 is short: the end of `b`, then `c`.
        assert_eq!(layout.piece(2), Some((32, 13)));
        assert_eq!(layout.piece(3), None);
        assert_eq!(segs(&layout, 32, 13), [(3, 16, 0, 8), (4, 0, 8, 5)]);
        // An arbitrary range starting inside `a` and ending inside `b`.
        assert_eq!(segs(&layout, 8, 12), [(0, 8, 0, 2), (3, 0, 8, 4)]);
        // A range entirely inside padding has no segment; one past the end is clipped.
        assert_eq!(segs(&layout, 11, 4), []);
        assert_eq!(segs(&layout, 44, 10), [(4, 4, 0, 1)]);
        assert!(layout.contains(40, 5) && !layout.contains(40, 6));
        assert!(!layout.contains(u64::MAX, 1));
        assert_eq!(layout.file_pieces(0), 0..1);
        assert_eq!(layout.file_pieces(2), 0..0, "empty file touches no piece");
        assert_eq!(layout.file_pieces(3), 1..3);
        assert_eq!(layout.file_pieces(4), 2..3);
        assert_eq!(layout.file_pieces(9), 0..0);
    }

    #[test]
    fn single_file_layout_uses_the_name() {
        let mut i = info(4, &[("whatever", 9, false)]);
        i.multi_file = false;
        i.name = "one.iso".into();
        let layout = Layout::new(&i);
        assert_eq!(layout.files()[0].path, ["one.iso"]);
        assert_eq!(layout.piece(2), Some((8, 1)));
        assert_eq!(segs(&layout, 0, 9), [(0, 0, 0, 9)]);
    }
}

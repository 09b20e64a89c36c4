//! `.torrent` files (BEP 3, 12, 19, 27, 47): reading with validation, and creating.
//!
//! Reading ([`Metainfo::from_bytes`]) keeps the exact bytes of the `info` dictionary and hashes
//! them for the info-hash. It validates against [`Limits`] (`max-torrent-size`, `max-pieces`,
//! piece length), checks that the piece count matches the total length, and turns every file
//! path into safe relative components ([`path`] documents the rules). Hybrid v1/v2 torrents are
//! read through their v1 part; v2-only torrents are refused with [`Error::V2Only`].
//!
//! Creating ([`create::TorrentSpec`]) is deterministic: the same files, hashes and options give
//! the same bytes.

pub mod create;
mod parse;
pub mod path;

pub use create::{TorrentSpec, auto_piece_length};

#[cfg(test)]
mod tests;

use crate::InfoHash;
use crate::bencode;

/// A parsed `.torrent` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metainfo {
    /// SHA-1 of [`Metainfo::info_bytes`].
    pub info_hash: InfoHash,
    /// The parsed `info` dictionary.
    pub info: Info,
    /// The exact bytes of the `info` dictionary as they appear in the file.
    pub info_bytes: Vec<u8>,
    /// Tracker tiers: `announce-list` (BEP 12), or the single `announce` URL as one tier.
    /// URLs are trimmed of surrounding whitespace; empty URLs and tiers are dropped, and a URL
    /// listed more than once is kept only in the first tier that lists it.
    pub trackers: Vec<Vec<String>>,
    /// WebSeed URLs (BEP 19 `url-list`, a string or a list), trimmed, non-empty, each once.
    pub webseeds: Vec<String>,
    /// `creation date`, in seconds since the Unix epoch.
    pub creation_date: Option<i64>,
    /// `comment`.
    pub comment: Option<String>,
    /// `created by`.
    pub created_by: Option<String>,
}

/// The `info` dictionary: what the info-hash covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// The torrent's name, sanitised like a path component. A missing name becomes the hex
    /// info-hash.
    pub name: String,
    /// Bytes per piece (the last piece may be shorter).
    pub piece_length: u32,
    /// SHA-1 of each piece.
    pub pieces: Vec<[u8; 20]>,
    /// BEP 27: peers only from the torrent's trackers.
    pub private: bool,
    /// `source` (used by private trackers to make info-hashes unique).
    pub source: Option<String>,
    /// True for a multi-file torrent (`files`), false for a single file (`length`).
    pub multi_file: bool,
    /// The files in torrent order, padding files included.
    pub files: Vec<File>,
    /// Sum of all file lengths, padding included.
    pub total_length: u64,
}

/// One file of a torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Safe path components under the torrent's directory. For a single-file torrent this is
    /// just the name.
    pub path: Vec<String>,
    /// Length in bytes.
    pub length: u64,
    /// Offset of the file's first byte in the torrent's byte stream.
    pub offset: u64,
    /// BEP 47 padding file: never written, never fetched, reads as zeros.
    pub padding: bool,
    /// BEP 47 `attr` flags other than padding (`x` executable, `h` hidden, `l` symlink).
    pub attr: String,
}

impl Info {
    /// Number of pieces.
    pub fn piece_count(&self) -> u32 {
        self.pieces.len() as u32
    }

    /// Length of piece `index` (the last one may be short), or `None` past the end.
    pub fn piece_len(&self, index: u32) -> Option<u32> {
        let count = self.piece_count();
        if index >= count {
            return None;
        }
        if index + 1 < count {
            return Some(self.piece_length);
        }
        let before = u64::from(self.piece_length) * u64::from(count - 1);
        Some((self.total_length - before) as u32)
    }

    /// Bytes of `file` covered by pieces for which `have` is true: rain's per-file
    /// `BytesCompleted`.
    pub fn completed_bytes(&self, file: &File, have: impl Fn(u32) -> bool) -> u64 {
        if file.length == 0 || self.piece_length == 0 {
            return 0;
        }
        let pl = u64::from(self.piece_length);
        let end = file.offset + file.length;
        let first = (file.offset / pl) as u32;
        let last = ((end - 1) / pl) as u32;
        (first..=last)
            .filter(|&p| have(p))
            .map(|p| {
                let start = u64::from(p) * pl;
                let stop = start + u64::from(self.piece_len(p).unwrap_or(0));
                stop.min(end).saturating_sub(start.max(file.offset))
            })
            .sum()
    }

    /// Path of a file relative to the torrent's data directory: `<name>/<path…>` for a
    /// multi-file torrent, `<name>` for a single file.
    pub fn file_path(&self, file: &File) -> Vec<String> {
        if self.multi_file {
            std::iter::once(self.name.clone())
                .chain(file.path.iter().cloned())
                .collect()
        } else {
            vec![self.name.clone()]
        }
    }
}

/// Limits applied when reading a torrent (rain's config keys in parentheses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest `.torrent` accepted, in bytes (`max-torrent-size`, 10 MiB).
    pub max_torrent_size: usize,
    /// Most pieces accepted (`max-pieces`, 65536).
    pub max_pieces: u32,
    /// Largest piece length accepted.
    pub max_piece_length: u32,
    /// Deepest bencode nesting accepted.
    pub max_depth: usize,
}

impl Limits {
    /// Largest piece length: 512 MiB, far above any real torrent (libtorrent's bound too).
    pub const MAX_PIECE_LENGTH: u32 = 512 * 1024 * 1024;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_torrent_size: 10 * 1024 * 1024,
            max_pieces: 65536,
            max_piece_length: Self::MAX_PIECE_LENGTH,
            max_depth: bencode::Limits::DEFAULT_MAX_DEPTH,
        }
    }
}

/// Why a torrent was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file is larger than [`Limits::max_torrent_size`].
    #[error("torrent is {size} bytes, larger than the limit of {limit}")]
    TooLarge {
        /// Size of the input.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The bytes are not valid bencode.
    #[error("invalid bencode: {0}")]
    Bencode(#[from] bencode::Error),
    /// A required key is missing.
    #[error("missing `{0}`")]
    Missing(&'static str),
    /// A key holds the wrong type or an impossible value.
    #[error("invalid `{0}`")]
    Invalid(&'static str),
    /// A BitTorrent v2-only torrent (no v1 `pieces`).
    #[error("BitTorrent v2-only torrents are not supported")]
    V2Only,
    /// `piece length` is zero or above [`Limits::max_piece_length`].
    #[error("piece length {0} is out of range")]
    PieceLength(i64),
    /// `pieces` is empty or not a multiple of 20 bytes.
    #[error("`pieces` is {0} bytes, not a non-zero multiple of 20")]
    PiecesLength(usize),
    /// More pieces than [`Limits::max_pieces`].
    #[error("torrent has {count} pieces, more than the limit of {limit}")]
    TooManyPieces {
        /// Pieces in the torrent.
        count: usize,
        /// The limit.
        limit: u32,
    },
    /// The piece count does not match the total length.
    #[error("{pieces} pieces of {piece_length} bytes cannot hold {total} bytes")]
    LengthMismatch {
        /// Sum of file lengths.
        total: u64,
        /// Number of pieces.
        pieces: usize,
        /// Piece length.
        piece_length: u32,
    },
    /// A multi-file torrent with no files.
    #[error("torrent has no files")]
    NoFiles,
    /// A path component `..`.
    #[error("file path escapes the torrent directory: {0}")]
    PathTraversal(String),
    /// A path with no usable component.
    #[error("empty file path")]
    EmptyPath,
    /// A path deeper than [`path::MAX_PATH_COMPONENTS`] or longer than
    /// [`path::MAX_PATH_BYTES`].
    #[error("file path too long ({components} components, {bytes} bytes)")]
    PathTooLong {
        /// Components after sanitising.
        components: usize,
        /// Bytes of the components joined with `/`.
        bytes: usize,
    },
    /// Two files with the same path, or a file where another needs a directory.
    #[error("duplicate file path: {0}")]
    DuplicatePath(String),
}

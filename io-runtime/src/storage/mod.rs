//! Where a torrent's data lives: the [`Storage`] trait, its [`Layout`] of pieces over files, a
//! file implementation ([`FileStorage`], with the session-wide [`FileCache`] of open files) and
//! an in-memory one for simulations ([`MemoryStorage`]); and the session-wide [`ReadCache`] of
//! data read to serve uploads.
//!
//! Offsets are positions in the torrent's byte stream: all files (padding included) laid end
//! to end in torrent order, so piece `i` is `i × piece_length ..` of it.
//!
//! Rules every storage keeps:
//! - padding files are never written (their bytes are dropped) and read as zeros;
//! - only whole, verified pieces are written ([`Storage::write_piece`]): the runtime hashes a
//!   piece from memory, then writes it, and never reads it back to check;
//! - writes are positioned, so one storage can be written from several threads at once;
//! - [`Storage::flush`] makes every completed write durable. The resume database may record a
//!   piece as complete only after the write that stored it has returned, and the stored
//!   bitfield only after a `flush` (see [`crate::resume`]).

mod cache;
mod file;
mod layout;
mod memory;
pub mod read_cache;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

pub use cache::FileCache;
pub use file::{FileStorage, FileStorageOptions, storage_root};
pub use layout::{Layout, LayoutFile, Segment, Segments};
pub use memory::MemoryStorage;
pub use read_cache::{ReadCache, ReadCacheConfig, ReadCacheHandle, ReadCacheStats};

/// A wrapper put around every torrent's storage when it is opened: fault injection for tests
/// and simulations (disk full, I/O errors, corrupt reads). None by default.
#[derive(Clone, Default)]
pub struct StorageLayer(Option<Arc<LayerFn>>);

type LayerFn = dyn Fn(Arc<dyn Storage>) -> Arc<dyn Storage> + Send + Sync;

impl StorageLayer {
    /// A layer that wraps each storage with `f`.
    pub fn new(f: impl Fn(Arc<dyn Storage>) -> Arc<dyn Storage> + Send + Sync + 'static) -> Self {
        StorageLayer(Some(Arc::new(f)))
    }

    /// `storage`, wrapped if this layer has a wrapper.
    pub fn apply(&self, storage: Arc<dyn Storage>) -> Arc<dyn Storage> {
        match &self.0 {
            Some(f) => f(storage),
            None => storage,
        }
    }
}

impl std::fmt::Debug for StorageLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "StorageLayer(wrapped)"
        } else {
            "StorageLayer(none)"
        })
    }
}

/// Two layers are equal when they are the same wrapper (or both none).
impl PartialEq for StorageLayer {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

#[cfg(test)]
pub(crate) use layout::tests::info as layout_tests_info;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A file system operation on `path` failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A read touched a file that has not been created yet (nothing was ever written to it)
    /// or was deleted.
    #[error("{path}: file does not exist")]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// A read went past the end of a file that is shorter than the torrent says (it was
    /// truncated by someone else: rain's files are created at full length).
    #[error("{path}: file is shorter than the torrent says")]
    ShortFile {
        /// The file.
        path: PathBuf,
    },
    /// A range outside the torrent.
    #[error("{len} bytes at offset {offset} lie outside the torrent ({total} bytes)")]
    OutOfRange {
        /// Start of the range.
        offset: u64,
        /// Length of the range.
        len: u64,
        /// The torrent's length.
        total: u64,
    },
    /// A piece index past the last piece.
    #[error("no piece {0} in this torrent")]
    NoSuchPiece(u32),
    /// The blocks given for a piece do not add up to its length.
    #[error("piece {index} is {expected} bytes, got {got}")]
    PieceLength {
        /// The piece.
        index: u32,
        /// Its length.
        expected: u64,
        /// Bytes given.
        got: u64,
    },
    /// A torrent id that cannot be used as a directory name.
    #[error("torrent id {0:?} cannot be used as a directory name")]
    InvalidTorrentId(String),
    /// A file path that would leave the storage root (never happens with sanitised
    /// [`rain_proto::metainfo::Info`] paths; checked anyway).
    #[error("{0} is outside the storage directory")]
    OutsideRoot(PathBuf),
}

impl StorageError {
    /// True for the errors that mean "this data is not there" rather than "the disk failed":
    /// verification treats them as a piece that does not match.
    pub fn is_absent_data(&self) -> bool {
        matches!(
            self,
            StorageError::Missing { .. } | StorageError::ShortFile { .. }
        )
    }
}

/// One torrent's data. Implementations are shared between the torrent task and blocking I/O
/// threads, so every method takes `&self`.
pub trait Storage: std::fmt::Debug + Send + Sync {
    /// The torrent's piece and file geometry.
    fn layout(&self) -> &Layout;

    /// Fills `buf` with the bytes at `offset` in the torrent. Padding reads as zeros.
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), StorageError>;

    /// Writes the concatenation of `blocks` at `offset` in the torrent, dropping the bytes that
    /// fall in padding. Files are created (with their directories) when first written.
    fn write(&self, offset: u64, blocks: &[Bytes]) -> Result<(), StorageError>;

    /// Makes every write that has returned durable (fsync of the files written since the last
    /// flush).
    fn flush(&self) -> Result<(), StorageError>;

    /// Whether file `file` (an index into [`Layout::files`]) exists. Padding files always
    /// "exist": they are virtual.
    fn exists(&self, file: usize) -> Result<bool, StorageError>;

    /// Creates every non-padding file that does not exist yet, at its full length (sparse),
    /// without touching existing data. Optional: writes create files on demand; this makes
    /// empty files and a complete set of files appear.
    fn allocate(&self) -> Result<(), StorageError>;

    /// Writes a whole verified piece given as its blocks in order.
    fn write_piece(&self, index: u32, blocks: &[Bytes]) -> Result<(), StorageError> {
        let (offset, len) = self
            .layout()
            .piece(index)
            .ok_or(StorageError::NoSuchPiece(index))?;
        let got: u64 = blocks.iter().map(|b| b.len() as u64).sum();
        if got != u64::from(len) {
            return Err(StorageError::PieceLength {
                index,
                expected: u64::from(len),
                got,
            });
        }
        self.write(offset, blocks)
    }

    /// Reads piece `index` into `buf`, resizing it to the piece's length.
    fn read_piece(&self, index: u32, buf: &mut Vec<u8>) -> Result<(), StorageError> {
        let (offset, len) = self
            .layout()
            .piece(index)
            .ok_or(StorageError::NoSuchPiece(index))?;
        buf.resize(len as usize, 0);
        self.read(offset, buf)
    }

    /// Indexes of the non-padding files that do not exist.
    fn missing_files(&self) -> Result<Vec<usize>, StorageError> {
        let mut missing = Vec::new();
        for (i, f) in self.layout().files().iter().enumerate() {
            if !f.padding && !self.exists(i)? {
                missing.push(i);
            }
        }
        Ok(missing)
    }

    /// Whether any non-padding file exists.
    fn any_file_exists(&self) -> Result<bool, StorageError> {
        for (i, f) in self.layout().files().iter().enumerate() {
            if !f.padding && self.exists(i)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Checks that `len` bytes at `offset` lie inside the layout.
pub(crate) fn check_range(layout: &Layout, offset: u64, len: usize) -> Result<(), StorageError> {
    if layout.contains(offset, len) {
        Ok(())
    } else {
        Err(StorageError::OutOfRange {
            offset,
            len: len as u64,
            total: layout.total_length(),
        })
    }
}

/// Yields the parts of `blocks` (taken as one concatenated buffer) that cover `len` bytes from
/// position `from`, in order. `f` is called once per non-empty slice.
pub(crate) fn for_each_slice<'a>(
    blocks: &'a [Bytes],
    from: usize,
    len: usize,
    mut f: impl FnMut(&'a [u8]),
) {
    let mut skip = from;
    let mut left = len;
    for block in blocks {
        if left == 0 {
            break;
        }
        if skip >= block.len() {
            skip -= block.len();
            continue;
        }
        let take = (block.len() - skip).min(left);
        f(&block[skip..skip + take]);
        skip = 0;
        left -= take;
    }
}

#[cfg(test)]
mod tests;

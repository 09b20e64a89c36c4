//! [`MemoryStorage`]: a torrent's data in memory, for simulations and tests.
//!
//! It behaves like [`FileStorage`](super::FileStorage) with every file already allocated:
//! unwritten bytes read as zeros, padding is never stored, and a file "exists" once any byte
//! of it was written (or after [`Storage::allocate`]). Memory is allocated in
//! [`MemoryStorage::CHUNK`]-byte chunks on first write, so a sparse torrent costs only what
//! was written.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use rain_proto::metainfo::Info;

use super::{Layout, Storage, StorageError, check_range, for_each_slice};

#[derive(Debug, Default)]
struct Inner {
    /// Chunk index → bytes of the torrent stream at `index × CHUNK ..`.
    chunks: BTreeMap<u64, Box<[u8]>>,
    /// Which files exist.
    exists: Vec<bool>,
}

/// A torrent's data held in memory.
#[derive(Debug)]
pub struct MemoryStorage {
    layout: Layout,
    inner: Mutex<Inner>,
}

impl MemoryStorage {
    /// Granularity of allocation, in bytes.
    pub const CHUNK: usize = 16 * 1024;

    /// Empty storage for `info`.
    pub fn new(info: &Info) -> Self {
        let layout = Layout::new(info);
        let exists = vec![false; layout.files().len()];
        MemoryStorage {
            layout,
            inner: Mutex::new(Inner {
                chunks: BTreeMap::new(),
                exists,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The whole torrent's bytes (zeros where nothing was written and in padding), for
    /// comparing storages in tests. Allocates [`Layout::total_length`] bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = vec![0; self.layout.total_length() as usize];
        // The range is the whole torrent, so this cannot fail.
        let _ = self.read(0, &mut out);
        out
    }

    /// Bytes of memory held for data.
    pub fn allocated_bytes(&self) -> usize {
        self.lock().chunks.len() * Self::CHUNK
    }
}

impl Storage for MemoryStorage {
    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), StorageError> {
        check_range(&self.layout, offset, buf.len())?;
        buf.fill(0);
        let inner = self.lock();
        for seg in self.layout.segments(offset, buf.len()) {
            let mut at = self.layout.files()[seg.file].offset + seg.file_offset;
            let mut dst = &mut buf[seg.range_offset..seg.range_offset + seg.len];
            while !dst.is_empty() {
                let chunk = at / Self::CHUNK as u64;
                let within = (at % Self::CHUNK as u64) as usize;
                let n = (Self::CHUNK - within).min(dst.len());
                if let Some(c) = inner.chunks.get(&chunk) {
                    dst[..n].copy_from_slice(&c[within..within + n]);
                }
                dst = &mut dst[n..];
                at += n as u64;
            }
        }
        Ok(())
    }

    fn write(&self, offset: u64, blocks: &[Bytes]) -> Result<(), StorageError> {
        let len: usize = blocks.iter().map(Bytes::len).sum();
        check_range(&self.layout, offset, len)?;
        let mut inner = self.lock();
        for seg in self.layout.segments(offset, len) {
            inner.exists[seg.file] = true;
            let mut at = self.layout.files()[seg.file].offset + seg.file_offset;
            for_each_slice(blocks, seg.range_offset, seg.len, |mut src| {
                while !src.is_empty() {
                    let chunk = at / Self::CHUNK as u64;
                    let within = (at % Self::CHUNK as u64) as usize;
                    let n = (Self::CHUNK - within).min(src.len());
                    let c = inner
                        .chunks
                        .entry(chunk)
                        .or_insert_with(|| vec![0; Self::CHUNK].into_boxed_slice());
                    c[within..within + n].copy_from_slice(&src[..n]);
                    src = &src[n..];
                    at += n as u64;
                }
            });
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StorageError> {
        Ok(())
    }

    fn exists(&self, file: usize) -> Result<bool, StorageError> {
        let Some(f) = self.layout.files().get(file) else {
            return Ok(false);
        };
        Ok(f.padding || self.lock().exists[file])
    }

    fn allocate(&self) -> Result<(), StorageError> {
        let mut inner = self.lock();
        for (i, f) in self.layout.files().iter().enumerate() {
            if !f.padding {
                inner.exists[i] = true;
            }
        }
        Ok(())
    }
}

//! [`FileStorage`]: a torrent's data in ordinary files, laid out like rain.
//!
//! - Root: `<data-dir>/<torrent id>/` with `data-dir-includes-torrent-id` (the default), or
//!   `<data-dir>/` itself; see [`storage_root`]. Under it a multi-file torrent lives in
//!   `<name>/<path…>` and a single-file torrent is the file `<name>`.
//! - Files are created on their first write, with their directories (mode `file-permissions`,
//!   0750 by default; files get the same without execute bits, 0640), and set to their full
//!   length at once, sparse. They are never truncated. Padding files are never created.
//! - Writes are positioned and vectored (`pwritev`), straight from the piece's blocks.
//! - Reads of a file that was never created fail with [`StorageError::Missing`] rather than
//!   returning zeros: a read is either of data the torrent has (so a missing file means someone
//!   deleted it, and serving zeros would be wrong) or a verification, which counts the error as
//!   "piece absent" ([`StorageError::is_absent_data`]).
//! - Open files come from the session's [`FileCache`].
//! - `flush` fsyncs (`fdatasync`) the files written since the previous flush.

use std::io::{self, IoSlice};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use rain_proto::metainfo::Info;

use super::cache::{self, Create, FileCache};
use super::{Layout, Storage, StorageError, check_range, for_each_slice};

/// Most bytes handed to one `pwritev` call. A whole 1 MiB piece per call cost the kernel
/// about twice the CPU of 64 KiB calls, nearly all of it in the page-cache copy, and kept
/// pieces in memory longer (1 GiB benchmark: 4.0 against 2.3 CPU s, 112 against 31 MiB RSS;
/// docs/BENCHMARKS.md). 16 KiB calls measured the same as 64 KiB, with four times the calls.
pub const MAX_WRITE_BYTES: usize = 64 * 1024;

/// Most buffers in one `pwritev` call (well under Linux's `IOV_MAX`).
const MAX_WRITE_IOVECS: usize = 16;

/// rain's default `file-permissions`.
pub const DEFAULT_FILE_PERMISSIONS: u32 = 0o750;

/// Where a torrent's files go, from rain's config keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStorageOptions {
    /// `data-dir`.
    pub data_dir: PathBuf,
    /// `data-dir-includes-torrent-id`.
    pub data_dir_includes_torrent_id: bool,
    /// `file-permissions` for directories; files get it without execute bits.
    pub file_permissions: u32,
}

impl FileStorageOptions {
    /// Options with rain's defaults for everything but the data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        FileStorageOptions {
            data_dir: data_dir.into(),
            data_dir_includes_torrent_id: true,
            file_permissions: DEFAULT_FILE_PERMISSIONS,
        }
    }
}

/// The storage root of torrent `id`: `<data-dir>/<id>` or `<data-dir>`. The id must be usable
/// as one directory name (caller-supplied ids are checked here).
pub fn storage_root(opts: &FileStorageOptions, id: &str) -> Result<PathBuf, StorageError> {
    if !opts.data_dir_includes_torrent_id {
        return Ok(opts.data_dir.clone());
    }
    if !is_one_component(id) || id.len() > 255 {
        return Err(StorageError::InvalidTorrentId(id.to_owned()));
    }
    Ok(opts.data_dir.join(id))
}

/// True if `s` is exactly one normal path component (no separator, not `.`/`..`, no NUL).
fn is_one_component(s: &str) -> bool {
    let mut comps = Path::new(s).components();
    matches!(comps.next(), Some(Component::Normal(c)) if c == s)
        && comps.next().is_none()
        && !s.contains('\0')
}

/// A torrent's data in files under one root directory.
#[derive(Debug)]
pub struct FileStorage {
    layout: Layout,
    root: PathBuf,
    /// Absolute path of each file in layout order (padding files included, never used).
    paths: Vec<PathBuf>,
    /// Files written since the last flush.
    dirty: Vec<AtomicBool>,
    /// One writer per file at a time. The kernel serialises buffered writes to a file on its
    /// inode lock, and a waiting writer spins there, burning a core another piece could hash
    /// on; here it sleeps instead.
    writers: Vec<Mutex<()>>,
    dir_mode: u32,
    file_mode: u32,
    /// The root is this torrent's own directory (`<data-dir>/<id>`), removed with its data.
    owns_root: bool,
    cache: Arc<FileCache>,
}

impl FileStorage {
    /// Storage for `info` under `root` (see [`storage_root`]). `file_permissions` is the
    /// directory mode; files get it without execute bits. Nothing is created until written.
    pub fn new(
        info: &Info,
        root: PathBuf,
        file_permissions: u32,
        cache: Arc<FileCache>,
    ) -> Result<Self, StorageError> {
        let layout = Layout::new(info);
        let mut paths = Vec::with_capacity(layout.files().len());
        for f in layout.files() {
            let mut path = root.clone();
            for c in &f.path {
                if !is_one_component(c) {
                    return Err(StorageError::OutsideRoot(path.join(c)));
                }
                path.push(c);
            }
            debug_assert!(path.starts_with(&root));
            paths.push(path);
        }
        let dirty = paths.iter().map(|_| AtomicBool::new(false)).collect();
        let writers = paths.iter().map(|_| Mutex::new(())).collect();
        Ok(FileStorage {
            layout,
            root,
            paths,
            dirty,
            writers,
            dir_mode: file_permissions & 0o7777,
            file_mode: file_permissions & 0o666,
            owns_root: false,
            cache,
        })
    }

    /// Storage for torrent `id` with `info`, placed by `opts`.
    pub fn for_torrent(
        info: &Info,
        id: &str,
        opts: &FileStorageOptions,
        cache: Arc<FileCache>,
    ) -> Result<Self, StorageError> {
        let root = storage_root(opts, id)?;
        let mut storage = Self::new(info, root, opts.file_permissions, cache)?;
        storage.owns_root = opts.data_dir_includes_torrent_id;
        Ok(storage)
    }

    /// The storage root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Absolute path of file `file`.
    pub fn path(&self, file: usize) -> Option<&Path> {
        self.paths.get(file).map(PathBuf::as_path)
    }

    /// Closes this torrent's cached files (before its data is removed or moved).
    pub fn close_files(&self) {
        for p in &self.paths {
            self.cache.close(p);
        }
    }

    /// Deletes the torrent's files (removing a torrent without keeping its data), then the
    /// directories that become empty, up to the root; the root itself too when it is the
    /// torrent's own `<data-dir>/<id>`. Files that do not exist are skipped.
    pub fn remove_files(&self) -> Result<(), StorageError> {
        self.close_files();
        for (i, f) in self.layout.files().iter().enumerate() {
            if f.padding {
                continue;
            }
            match std::fs::remove_file(&self.paths[i]) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.io_err(i)(e)),
            }
        }
        for path in &self.paths {
            let mut dir = path.parent();
            while let Some(d) = dir.filter(|d| d.starts_with(&self.root)) {
                if d == self.root && !self.owns_root {
                    break;
                }
                // Fails (and stops) at a directory that still holds something.
                if std::fs::remove_dir(d).is_err() {
                    break;
                }
                dir = d.parent();
            }
        }
        Ok(())
    }

    fn io_err(&self, file: usize) -> impl FnOnce(io::Error) -> StorageError + '_ {
        move |source| StorageError::Io {
            path: self.paths[file].clone(),
            source,
        }
    }

    fn create_spec(&self, file: usize) -> Create {
        Create {
            length: self.layout.files()[file].length,
            dir_mode: self.dir_mode,
            file_mode: self.file_mode,
        }
    }

    fn open_for_write(&self, file: usize) -> Result<Arc<std::fs::File>, StorageError> {
        let create = self.create_spec(file);
        self.cache
            .open(&self.paths[file], Some(create), &self.root)
            .map_err(self.io_err(file))?
            .ok_or_else(|| StorageError::Missing {
                path: self.paths[file].clone(),
            })
    }

    fn open_existing(&self, file: usize) -> Result<Arc<std::fs::File>, StorageError> {
        self.cache
            .open(&self.paths[file], None, &self.root)
            .map_err(self.io_err(file))?
            .ok_or_else(|| StorageError::Missing {
                path: self.paths[file].clone(),
            })
    }
}

impl Storage for FileStorage {
    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), StorageError> {
        check_range(&self.layout, offset, buf.len())?;
        let mut filled = 0;
        for seg in self.layout.segments(offset, buf.len()) {
            // Padding before this segment reads as zeros.
            buf[filled..seg.range_offset].fill(0);
            let file = self.open_existing(seg.file)?;
            let part = &mut buf[seg.range_offset..seg.range_offset + seg.len];
            match file.read_exact_at(part, seg.file_offset) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(StorageError::ShortFile {
                        path: self.paths[seg.file].clone(),
                    });
                }
                Err(e) => return Err(self.io_err(seg.file)(e)),
            }
            filled = seg.range_offset + seg.len;
        }
        buf[filled..].fill(0);
        Ok(())
    }

    fn write(&self, offset: u64, blocks: &[Bytes]) -> Result<(), StorageError> {
        let len: usize = blocks.iter().map(Bytes::len).sum();
        check_range(&self.layout, offset, len)?;
        let mut slices: Vec<IoSlice<'_>> = Vec::new();
        for seg in self.layout.segments(offset, len) {
            let file = self.open_for_write(seg.file)?;
            slices.clear();
            for_each_slice(blocks, seg.range_offset, seg.len, |s| {
                slices.push(IoSlice::new(s));
            });
            let writing = self.writers[seg.file]
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            write_all_vectored_at(&file, &mut slices, seg.file_offset)
                .map_err(self.io_err(seg.file))?;
            drop(writing);
            self.dirty[seg.file].store(true, Ordering::Release);
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StorageError> {
        for (i, dirty) in self.dirty.iter().enumerate() {
            if dirty.swap(false, Ordering::AcqRel) {
                // Any descriptor of the file flushes its data, even if the one that wrote it
                // was evicted from the cache meanwhile.
                let result = self
                    .open_existing(i)
                    .and_then(|f| f.sync_data().map_err(self.io_err(i)));
                if let Err(e) = result {
                    dirty.store(true, Ordering::Release);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn exists(&self, file: usize) -> Result<bool, StorageError> {
        let Some(f) = self.layout.files().get(file) else {
            return Ok(false);
        };
        if f.padding {
            return Ok(true);
        }
        cache::file_exists(&self.paths[file]).map_err(self.io_err(file))
    }

    fn allocate(&self) -> Result<(), StorageError> {
        for (i, f) in self.layout.files().iter().enumerate() {
            if !f.padding {
                let file = self.open_for_write(i)?;
                cache::extend(&file, f.length).map_err(self.io_err(i))?;
            }
        }
        Ok(())
    }
}

/// Writes all of `slices` at `offset` with `pwritev`, resuming after short writes, in calls
/// of at most [`MAX_WRITE_BYTES`] bytes and `MAX_WRITE_IOVECS` buffers.
fn write_all_vectored_at(
    file: &std::fs::File,
    slices: &mut [IoSlice<'_>],
    offset: u64,
) -> io::Result<()> {
    write_all_with(slices, offset, |batch, at| {
        rustix::io::pwritev(file, batch, at)
    })
}

/// The loop of [`write_all_vectored_at`], over any positioned vectored write: a write that
/// takes fewer bytes than offered (a signal, a full pipe in the kernel, a FUSE file system)
/// is resumed where it stopped, `EINTR` is retried, and a write of zero bytes is an error
/// rather than a spin.
fn write_all_with(
    mut slices: &mut [IoSlice<'_>],
    mut offset: u64,
    mut pwritev: impl FnMut(&[IoSlice<'_>], u64) -> rustix::io::Result<usize>,
) -> io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        let mut batch = [IoSlice::new(&[]); MAX_WRITE_IOVECS];
        let (mut n, mut bytes) = (0, 0);
        for s in slices.iter().take(MAX_WRITE_IOVECS) {
            let take = s.len().min(MAX_WRITE_BYTES - bytes);
            batch[n] = IoSlice::new(&s[..take]);
            n += 1;
            bytes += take;
            if bytes == MAX_WRITE_BYTES {
                break;
            }
        }
        match pwritev(&batch[..n], offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                offset += n as u64;
                IoSlice::advance_slices(&mut slices, n);
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_and_ids() {
        let opts = FileStorageOptions::new("/data");
        assert_eq!(storage_root(&opts, "abc").unwrap(), Path::new("/data/abc"));
        for bad in ["", ".", "..", "a/b", "/abs", "x\0y"] {
            assert!(
                matches!(
                    storage_root(&opts, bad),
                    Err(StorageError::InvalidTorrentId(_))
                ),
                "{bad:?}"
            );
        }
        let flat = FileStorageOptions {
            data_dir_includes_torrent_id: false,
            ..opts
        };
        assert_eq!(storage_root(&flat, "../x").unwrap(), Path::new("/data"));
    }

    /// A disk that takes at most `most` bytes per call and is interrupted every third call.
    fn short_writes(data: &[&[u8]], most: usize) -> (Vec<u8>, usize) {
        let mut disk = vec![0u8; 8];
        let mut calls = 0;
        let mut slices: Vec<IoSlice<'_>> = data.iter().map(|d| IoSlice::new(d)).collect();
        write_all_with(&mut slices, 8, |batch, at| {
            calls += 1;
            assert!(batch.len() <= MAX_WRITE_IOVECS);
            assert!(batch.iter().map(|s| s.len()).sum::<usize>() <= MAX_WRITE_BYTES);
            if calls % 3 == 0 {
                return Err(rustix::io::Errno::INTR);
            }
            let bytes: Vec<u8> = batch.iter().flat_map(|s| s.iter().copied()).collect();
            let n = bytes.len().min(most);
            let at = at as usize;
            disk.resize(disk.len().max(at + n), 0);
            disk[at..at + n].copy_from_slice(&bytes[..n]);
            Ok(n)
        })
        .unwrap();
        (disk, calls)
    }

    #[test]
    fn short_and_interrupted_writes_are_resumed_where_they_stopped() {
        let blocks: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i + 1; 7 + i as usize]).collect();
        let data: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
        let whole: Vec<u8> = blocks.concat();
        for most in [1, 3, 8, 1000] {
            let (disk, calls) = short_writes(&data, most);
            assert_eq!(&disk[..8], &[0; 8], "nothing before the offset");
            assert_eq!(&disk[8..], &whole[..], "{most} bytes per call");
            assert!(calls >= whole.len().div_ceil(most), "{most}: {calls} calls");
        }
        // More buffers than one call takes go in batches.
        let many: Vec<[u8; 1]> = (0..MAX_WRITE_IOVECS * 2 + 5).map(|i| [i as u8]).collect();
        let data: Vec<&[u8]> = many.iter().map(|b| &b[..]).collect();
        let (disk, _) = short_writes(&data, usize::MAX);
        assert_eq!(disk[8..], many.concat()[..]);
        // A piece in one buffer (a piece bordering padding is assembled so) goes in calls of
        // at most MAX_WRITE_BYTES, the way 16 KiB blocks do.
        let piece: Vec<u8> = (0..MAX_WRITE_BYTES * 3 + 100).map(|i| i as u8).collect();
        for data in [vec![&piece[..]], piece.chunks(16 * 1024).collect()] {
            let (disk, calls) = short_writes(&data, usize::MAX);
            assert_eq!(disk[8..], piece[..]);
            assert!(calls >= 4, "{calls} calls");
        }
    }

    #[test]
    fn a_write_of_zero_bytes_is_an_error_not_a_spin() {
        let mut slices = [IoSlice::new(b"abc")];
        let err = write_all_with(&mut slices, 0, |_, _| Ok(0)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WriteZero);
        let err = write_all_with(&mut slices, 0, |_, _| Err(rustix::io::Errno::NOSPC)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
    }
}

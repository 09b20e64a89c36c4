//! The session-wide cache of open files, bounded by `max-open-files`.
//!
//! The session creates one [`FileCache`] and hands it (in an `Arc`) to every
//! [`FileStorage`](super::FileStorage). It keeps at most `max_open` files open, closing the
//! least recently used one to make room. Handles are lent out as `Arc<File>` and the I/O runs
//! outside the cache's lock, so an evicted file closes when its last in-flight operation ends:
//! the number of descriptors open at once is at most `max_open` plus the number of operations
//! in flight.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// How to create a file that does not exist yet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Create {
    /// The file's full length; a new or shorter file is extended to it (sparse). Files are
    /// never shortened.
    pub length: u64,
    /// Mode for new directories (`file-permissions`, 0750 by default).
    pub dir_mode: u32,
    /// Mode for the new file (the directory mode without execute bits).
    pub file_mode: u32,
}

#[derive(Debug, Default)]
struct Inner {
    /// Open files and the tick of their last use.
    files: HashMap<PathBuf, (Arc<File>, u64)>,
    /// Last-use tick → path, oldest first.
    lru: BTreeMap<u64, PathBuf>,
    tick: u64,
}

impl Inner {
    fn touch(&mut self, path: &Path) -> Option<Arc<File>> {
        self.tick += 1;
        let tick = self.tick;
        let (file, used) = self.files.get_mut(path)?;
        let old = std::mem::replace(used, tick);
        let file = Arc::clone(file);
        if let Some(p) = self.lru.remove(&old) {
            self.lru.insert(tick, p);
        }
        Some(file)
    }

    fn remove(&mut self, path: &Path) {
        if let Some((_, used)) = self.files.remove(path) {
            self.lru.remove(&used);
        }
    }
}

/// A bounded, least-recently-used cache of open files shared by all torrents of a session.
#[derive(Debug)]
pub struct FileCache {
    max_open: usize,
    inner: Mutex<Inner>,
}

impl FileCache {
    /// A cache that keeps at most `max_open` files open (at least 1).
    pub fn new(max_open: usize) -> Self {
        FileCache {
            max_open: max_open.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The bound.
    pub fn max_open(&self) -> usize {
        self.max_open
    }

    /// Files currently held open by the cache.
    pub fn open_count(&self) -> usize {
        self.lock().files.len()
    }

    /// Closes `path` if the cache holds it open (before the file is deleted or moved).
    pub fn close(&self, path: &Path) {
        self.lock().remove(path);
    }

    /// Closes every cached file under `root`.
    pub fn close_under(&self, root: &Path) {
        let mut inner = self.lock();
        let doomed: Vec<PathBuf> = inner
            .files
            .keys()
            .filter(|p| p.starts_with(root))
            .cloned()
            .collect();
        for p in doomed {
            inner.remove(&p);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The cache stays consistent even if a holder panicked: every mutation is complete
        // before the guard drops.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns an open read-write handle to `path`. Without `create`, a file that does not exist
    /// gives `Ok(None)`; with it, the file and its directories are created. No symbolic link is
    /// followed below `beneath` (the torrent's storage root): a link planted in the data
    /// directory must not redirect our writes or reads elsewhere (`ELOOP`).
    pub(crate) fn open(
        &self,
        path: &Path,
        create: Option<Create>,
        beneath: &Path,
    ) -> io::Result<Option<Arc<File>>> {
        // A cached file exists already: it was created at full length or found on disk, and
        // a write past its end extends it anyway, so a hit costs no system call.
        if let Some(file) = self.lock().touch(path) {
            return Ok(Some(file));
        }
        // Open outside the lock: other torrents' I/O does not wait for this open.
        refuse_symlinks(beneath, path)?;
        let Some(file) = open_file(path, create)? else {
            return Ok(None);
        };
        let file = Arc::new(file);
        let mut inner = self.lock();
        if let Some(existing) = inner.touch(path) {
            // Someone opened it meanwhile; use theirs and drop ours.
            return Ok(Some(existing));
        }
        while inner.files.len() >= self.max_open {
            let Some((_, oldest)) = inner.lru.pop_first() else {
                break;
            };
            inner.files.remove(&oldest);
        }
        inner.tick += 1;
        let tick = inner.tick;
        inner
            .files
            .insert(path.to_owned(), (Arc::clone(&file), tick));
        inner.lru.insert(tick, path.to_owned());
        Ok(Some(file))
    }
}

/// Grows a file to `length` (sparse) if it is shorter; never shrinks it.
pub(crate) fn extend(file: &File, length: u64) -> io::Result<()> {
    if file.metadata()?.len() < length {
        file.set_len(length)?;
    }
    Ok(())
}

/// Fails with `ELOOP` if a directory between `beneath` and `path`, or `path` itself, is a
/// symbolic link. Missing components are fine (they are created as directories).
fn refuse_symlinks(beneath: &Path, path: &Path) -> io::Result<()> {
    let Ok(rel) = path.strip_prefix(beneath) else {
        return Ok(());
    };
    let mut at = beneath.to_path_buf();
    for c in rel.components() {
        at.push(c);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(io::Error::from(rustix::io::Errno::LOOP));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn open_file(path: &Path, create: Option<Create>) -> io::Result<Option<File>> {
    let mut opts = OpenOptions::new();
    // The last component again, atomically with the open.
    opts.read(true)
        .write(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    let Some(c) = create else {
        return match opts.open(path) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        };
    };
    opts.create(true).mode(c.file_mode);
    let file = match opts.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                DirBuilder::new()
                    .recursive(true)
                    .mode(c.dir_mode)
                    .create(parent)?;
            }
            opts.open(path)?
        }
        Err(e) => return Err(e),
    };
    extend(&file, c.length)?;
    Ok(Some(file))
}

/// Whether `path` exists as a file (without opening it).
pub(crate) fn file_exists(path: &Path) -> io::Result<bool> {
    match fs::metadata(path) {
        Ok(m) => Ok(m.is_file()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATE: Create = Create {
        length: 10,
        dir_mode: 0o750,
        file_mode: 0o640,
    };

    #[test]
    fn never_holds_more_than_its_bound_and_evicts_the_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileCache::new(4);
        let paths: Vec<PathBuf> = (0..40)
            .map(|i| dir.path().join(format!("d{}/f{i}", i % 3)))
            .collect();
        for (i, p) in paths.iter().enumerate() {
            assert!(cache.open(p, Some(CREATE), dir.path()).unwrap().is_some());
            assert!(cache.open_count() <= 4, "after opening {i}");
            // Keep file 0 hot: it must survive every eviction.
            cache.open(&paths[0], None, dir.path()).unwrap().unwrap();
            assert!(cache.open_count() <= 4);
        }
        assert_eq!(cache.open_count(), 4);
        {
            let inner = cache.lock();
            assert!(inner.files.contains_key(&paths[0]), "recently used kept");
            assert!(inner.files.contains_key(&paths[39]));
            assert!(!inner.files.contains_key(&paths[1]), "oldest evicted");
            assert_eq!(inner.lru.len(), inner.files.len());
        }
        // Re-opening evicted files from disk works and keeps the bound.
        for p in &paths {
            let f = cache.open(p, None, dir.path()).unwrap().unwrap();
            assert_eq!(f.metadata().unwrap().len(), 10);
            assert!(cache.open_count() <= 4);
        }
        assert!(
            cache
                .open(&dir.path().join("nope"), None, dir.path())
                .unwrap()
                .is_none()
        );
        cache.close_under(&dir.path().join("d1"));
        assert!(
            cache
                .lock()
                .files
                .keys()
                .all(|p| !p.starts_with(dir.path().join("d1")))
        );
        cache.close(&paths[39]);
        assert!(!cache.lock().files.contains_key(&paths[39]));
    }

    #[test]
    fn planted_symlinks_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("torrent");
        let outside = dir.path().join("outside");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("victim"), b"precious").unwrap();
        let cache = FileCache::new(4);
        // A link in place of the file.
        std::os::unix::fs::symlink(outside.join("victim"), root.join("a.bin")).unwrap();
        let e = cache
            .open(&root.join("a.bin"), Some(CREATE), &root)
            .unwrap_err();
        assert_eq!(
            e.raw_os_error(),
            Some(rustix::io::Errno::LOOP.raw_os_error())
        );
        assert!(cache.open(&root.join("a.bin"), None, &root).is_err());
        // A link in place of a directory.
        std::os::unix::fs::symlink(&outside, root.join("sub")).unwrap();
        assert!(
            cache
                .open(&root.join("sub/b.bin"), Some(CREATE), &root)
                .is_err()
        );
        assert!(
            !outside.join("b.bin").exists(),
            "nothing created through the link"
        );
        assert_eq!(fs::read(outside.join("victim")).unwrap(), b"precious");
        // A storage root that is itself a link (the user's choice) is fine.
        let linked_root = dir.path().join("linked");
        std::os::unix::fs::symlink(&outside, &linked_root).unwrap();
        assert!(
            cache
                .open(&linked_root.join("c.bin"), Some(CREATE), &linked_root)
                .unwrap()
                .is_some()
        );
    }
}

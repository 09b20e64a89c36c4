//! Faulty disks (issue #13): [`FaultyStorage`] wraps a rain host's real storage (through the
//! session's [`StorageLayer`]) and, while a [`DiskFault`] is switched on by the fault plan
//! ([`Fault::Disk`](crate::Fault::Disk)), fails writes as a full disk does, fails reads with
//! EIO, returns corrupt bytes from reads, or keeps writes in a volatile cache that a crash of
//! the host throws away (a power cut). Flags, not clocks: the simulation switches them in
//! simulated time, so a run stays replayable.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use rain_runtime::storage::{Layout, Storage, StorageError, StorageLayer};

/// How a disk misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DiskFault {
    /// Every write fails with "no space left on device".
    Full,
    /// Every read fails with EIO.
    ReadError,
    /// Every write fails with EIO (a failing drive, a yanked USB disk).
    WriteError,
    /// Reads succeed but every block read has its first byte flipped (bit rot, a bad cable).
    CorruptReads,
    /// Writes stay in the drive's volatile cache until `flush` (fsync) puts them on the
    /// platter; when the host crashes, what was not flushed is lost, as in a power cut. The
    /// runtime's rule, "flush the data, then record the progress", is what keeps a restart
    /// from trusting pieces whose bytes are gone.
    VolatileWrites,
}

/// One host's disk: which faults are on, and what they did (shared by every incarnation of
/// the host, as the disk itself is).
#[derive(Debug, Default)]
pub struct Disk {
    full: AtomicBool,
    read_error: AtomicBool,
    write_error: AtomicBool,
    corrupt_reads: AtomicBool,
    volatile_writes: AtomicBool,
    /// Writes refused while full or failing.
    failed_writes: AtomicU64,
    /// Reads failed with EIO.
    failed_reads: AtomicU64,
    /// Reads corrupted.
    corrupted_reads: AtomicU64,
    /// Bytes written but never flushed when their host crashed.
    lost_bytes: AtomicU64,
}

impl Disk {
    fn flag(&self, fault: DiskFault) -> &AtomicBool {
        match fault {
            DiskFault::Full => &self.full,
            DiskFault::ReadError => &self.read_error,
            DiskFault::WriteError => &self.write_error,
            DiskFault::CorruptReads => &self.corrupt_reads,
            DiskFault::VolatileWrites => &self.volatile_writes,
        }
    }

    /// Switches `fault` on or off.
    pub fn set(&self, fault: DiskFault, on: bool) {
        self.flag(fault).store(on, Ordering::Relaxed);
    }

    /// What the faults did so far.
    pub fn counters(&self) -> DiskCounters {
        DiskCounters {
            failed_writes: self.failed_writes.load(Ordering::Relaxed),
            failed_reads: self.failed_reads.load(Ordering::Relaxed),
            corrupted_reads: self.corrupted_reads.load(Ordering::Relaxed),
            lost_bytes: self.lost_bytes.load(Ordering::Relaxed),
        }
    }

    fn is(&self, fault: DiskFault) -> bool {
        self.flag(fault).load(Ordering::Relaxed)
    }

    /// The session storage layer that puts this disk's faults under every torrent's storage.
    pub fn layer(self: &Arc<Self>) -> StorageLayer {
        let disk = self.clone();
        StorageLayer::new(move |inner| {
            Arc::new(FaultyStorage {
                inner,
                disk: disk.clone(),
                unflushed: Mutex::default(),
            })
        })
    }
}

/// A snapshot of a [`Disk`]'s counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskCounters {
    /// Writes refused while full or failing.
    pub failed_writes: u64,
    /// Reads failed with EIO.
    pub failed_reads: u64,
    /// Reads corrupted.
    pub corrupted_reads: u64,
    /// Bytes written but never flushed when their host crashed ([`DiskFault::VolatileWrites`]).
    pub lost_bytes: u64,
}

/// A storage whose writes and reads fail (or lie) while its [`Disk`]'s faults are on.
///
/// One exists per incarnation of its host (the session builds it), so the volatile cache
/// lives and dies with the host's software: a crash drops it with whatever it still holds.
#[derive(Debug)]
pub struct FaultyStorage {
    inner: Arc<dyn Storage>,
    disk: Arc<Disk>,
    /// Writes not yet flushed, oldest first ([`DiskFault::VolatileWrites`]).
    unflushed: Mutex<VecDeque<(u64, Vec<Bytes>)>>,
}

impl FaultyStorage {
    fn unflushed(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, Vec<Bytes>)>> {
        self.unflushed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads `buf` at `offset` as the drive would return it: the platter's bytes with the
    /// cached writes over them. A range wholly in the cache does not touch the platter (the
    /// file may not exist there yet); otherwise the platter's answer, error included, stands.
    fn read_through_cache(&self, offset: u64, buf: &mut [u8]) -> Result<(), StorageError> {
        let cache = self.unflushed();
        if cache.is_empty() {
            drop(cache);
            return self.inner.read(offset, buf);
        }
        let mut covered = vec![false; buf.len()];
        let end = offset + buf.len() as u64;
        // Each cached block laid over the part of `buf` it overlaps, oldest first.
        let overlay = |buf: &mut [u8], covered: &mut [bool]| {
            for (at, blocks) in cache.iter() {
                let mut pos = *at;
                for block in blocks {
                    let (from, to) = (pos.max(offset), (pos + block.len() as u64).min(end));
                    if from < to {
                        let dst = (from - offset) as usize..(to - offset) as usize;
                        let src = (from - pos) as usize..(to - pos) as usize;
                        buf[dst.clone()].copy_from_slice(&block[src]);
                        covered[dst].fill(true);
                    }
                    pos += block.len() as u64;
                }
            }
        };
        overlay(buf, &mut covered);
        if covered.iter().all(|c| *c) {
            return Ok(());
        }
        self.inner.read(offset, buf)?;
        overlay(buf, &mut covered);
        Ok(())
    }
}

impl Drop for FaultyStorage {
    fn drop(&mut self) {
        let lost: usize = self
            .unflushed()
            .iter()
            .flat_map(|(_, blocks)| blocks)
            .map(Bytes::len)
            .sum();
        self.disk
            .lost_bytes
            .fetch_add(lost as u64, Ordering::Relaxed);
    }
}

fn io_error(kind: io::ErrorKind, what: &str) -> StorageError {
    StorageError::Io {
        path: "simulated-disk".into(),
        source: io::Error::new(kind, what.to_owned()),
    }
}

impl Storage for FaultyStorage {
    fn layout(&self) -> &Layout {
        self.inner.layout()
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), StorageError> {
        if self.disk.is(DiskFault::ReadError) {
            self.disk.failed_reads.fetch_add(1, Ordering::Relaxed);
            return Err(io_error(io::ErrorKind::Other, "input/output error"));
        }
        self.read_through_cache(offset, buf)?;
        if self.disk.is(DiskFault::CorruptReads)
            && let Some(b) = buf.first_mut()
        {
            *b ^= 0xff;
            self.disk.corrupted_reads.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn write(&self, offset: u64, blocks: &[Bytes]) -> Result<(), StorageError> {
        let refused = if self.disk.is(DiskFault::Full) {
            Some((io::ErrorKind::StorageFull, "no space left on device"))
        } else if self.disk.is(DiskFault::WriteError) {
            Some((io::ErrorKind::Other, "input/output error"))
        } else {
            None
        };
        if let Some((kind, what)) = refused {
            self.disk.failed_writes.fetch_add(1, Ordering::Relaxed);
            return Err(io_error(kind, what));
        }
        let mut cache = self.unflushed();
        // Once something is cached, later writes queue behind it so they land in order.
        if self.disk.is(DiskFault::VolatileWrites) || !cache.is_empty() {
            cache.push_back((offset, blocks.to_vec()));
            return Ok(());
        }
        drop(cache);
        self.inner.write(offset, blocks)
    }

    fn flush(&self) -> Result<(), StorageError> {
        let mut cache = self.unflushed();
        // Oldest first; a failed write stays cached with everything after it.
        while let Some((offset, blocks)) = cache.front() {
            self.inner.write(*offset, blocks)?;
            cache.pop_front();
        }
        drop(cache);
        self.inner.flush()
    }

    fn exists(&self, file: usize) -> Result<bool, StorageError> {
        self.inner.exists(file)
    }

    fn allocate(&self) -> Result<(), StorageError> {
        self.inner.allocate()
    }
}

#[cfg(test)]
mod tests {
    use rain_proto::metainfo::{Limits, Metainfo};
    use rain_runtime::storage::MemoryStorage;

    use super::*;
    use crate::ContentSpec;

    /// Reads see cached writes over the platter, wholly cached ranges skip it, a flush
    /// empties the cache in order, and a drop with writes still cached counts them lost.
    #[test]
    fn volatile_writes_are_read_back_flushed_in_order_or_lost() {
        let tmp = tempfile::tempdir().unwrap();
        let content = ContentSpec::single(1, 64 * 1024, 16 * 1024)
            .materialize(tmp.path())
            .unwrap();
        let info = Metainfo::from_bytes(&content.torrent, &Limits::default())
            .unwrap()
            .info;
        let platter = Arc::new(MemoryStorage::new(&info));
        let disk = Arc::new(Disk::default());
        let storage = disk.layer().apply(platter.clone());
        storage.write(0, &[Bytes::from(vec![1u8; 100])]).unwrap();
        disk.set(DiskFault::VolatileWrites, true);
        let two = [Bytes::from(vec![2u8; 30]), Bytes::from(vec![3u8; 30])];
        storage.write(50, &two).unwrap();
        storage.write(70, &[Bytes::from(vec![4u8; 10])]).unwrap();
        let mut want = vec![1u8; 120];
        want[50..80].fill(2);
        want[80..110].fill(3);
        want[70..80].fill(4);
        want[110..].fill(0);
        let mut buf = vec![9u8; 120];
        storage.read(0, &mut buf).unwrap();
        assert_eq!(buf, want, "cache over platter");
        let mut buf = vec![0u8; 20];
        storage.read(60, &mut buf).unwrap();
        assert_eq!(buf, want[60..80], "wholly cached");
        let mut on_platter = vec![0u8; 120];
        platter.read(0, &mut on_platter).unwrap();
        assert_eq!(
            on_platter[50..60],
            [1; 10],
            "nothing reached the platter yet"
        );
        storage.flush().unwrap();
        platter.read(0, &mut on_platter).unwrap();
        assert_eq!(on_platter, want, "flushed in order");
        storage.write(0, &[Bytes::from(vec![5u8; 7])]).unwrap();
        drop(storage);
        assert_eq!(disk.counters().lost_bytes, 7);
        platter.read(0, &mut on_platter).unwrap();
        assert_eq!(on_platter, want, "the lost write never landed");
    }
}

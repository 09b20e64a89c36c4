//! Faulty disks (issue #13): [`FaultyStorage`] wraps a rain host's real storage (through the
//! session's [`StorageLayer`]) and, while a [`DiskFault`] is switched on by the fault plan
//! ([`Fault::Disk`](crate::Fault::Disk)), fails writes as a full disk does, fails reads with
//! EIO, or returns corrupt bytes from reads. Flags, not clocks: the simulation switches them
//! in simulated time, so a run stays replayable.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use rain_runtime::storage::{Layout, Storage, StorageError, StorageLayer};

/// How a disk misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DiskFault {
    /// Every write fails with "no space left on device".
    Full,
    /// Every read fails with EIO.
    ReadError,
    /// Reads succeed but every block read has its first byte flipped (bit rot, a bad cable).
    CorruptReads,
}

/// One host's disk: which faults are on, and what they did (shared by every incarnation of
/// the host, as the disk itself is).
#[derive(Debug, Default)]
pub struct Disk {
    full: AtomicBool,
    read_error: AtomicBool,
    corrupt_reads: AtomicBool,
    /// Writes refused while full.
    failed_writes: AtomicU64,
    /// Reads failed with EIO.
    failed_reads: AtomicU64,
    /// Reads corrupted.
    corrupted_reads: AtomicU64,
}

impl Disk {
    fn flag(&self, fault: DiskFault) -> &AtomicBool {
        match fault {
            DiskFault::Full => &self.full,
            DiskFault::ReadError => &self.read_error,
            DiskFault::CorruptReads => &self.corrupt_reads,
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
            })
        })
    }
}

/// A snapshot of a [`Disk`]'s counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskCounters {
    /// Writes refused while full.
    pub failed_writes: u64,
    /// Reads failed with EIO.
    pub failed_reads: u64,
    /// Reads corrupted.
    pub corrupted_reads: u64,
}

/// A storage whose writes and reads fail (or lie) while its [`Disk`]'s faults are on.
#[derive(Debug)]
pub struct FaultyStorage {
    inner: Arc<dyn Storage>,
    disk: Arc<Disk>,
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
        self.inner.read(offset, buf)?;
        if self.disk.is(DiskFault::CorruptReads)
            && let Some(b) = buf.first_mut()
        {
            *b ^= 0xff;
            self.disk.corrupted_reads.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn write(&self, offset: u64, blocks: &[Bytes]) -> Result<(), StorageError> {
        if self.disk.is(DiskFault::Full) {
            self.disk.failed_writes.fetch_add(1, Ordering::Relaxed);
            return Err(io_error(
                io::ErrorKind::StorageFull,
                "no space left on device",
            ));
        }
        self.inner.write(offset, blocks)
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.inner.flush()
    }

    fn exists(&self, file: usize) -> Result<bool, StorageError> {
        self.inner.exists(file)
    }

    fn allocate(&self) -> Result<(), StorageError> {
        self.inner.allocate()
    }
}

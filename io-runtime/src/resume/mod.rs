//! The fast-resume database: one record per torrent, a small session key/value area, and a
//! clean-shutdown marker, in LMDB (`lmdb-rkv`) at the path of rain's `database` key.
//!
//! # Files
//! - `<database>`: the LMDB data file (LMDB's `NO_SUBDIR` mode), created with its parent
//!   directory (`file-permissions`; the file gets it without execute bits);
//! - `<database>-lock`: LMDB's reader table;
//! - `<database>.lock`: held with an exclusive `flock` while the database is open. LMDB itself
//!   lets several processes share an environment, but two rain sessions on one database would
//!   overwrite each other's records, and one process must not open an LMDB environment twice.
//!   A second opener waits up to [`ResumeDbOptions::lock_timeout`] (1 s, like rain) and then
//!   fails with [`ResumeError::Locked`]: "resume database is locked by another process".
//!
//! # Durability rule (what the runtime must do)
//! 1. A piece's bit is set in the bitfield handed to [`ResumeDb::put_progress`] only after
//!    [`Storage::write_piece`](crate::storage::Storage::write_piece) for it has returned `Ok`.
//! 2. Before writing a torrent's progress, call its
//!    [`Storage::flush`](crate::storage::Storage::flush) (fdatasync of the files written since
//!    the last flush), then write the progress. LMDB commits are synchronous (no `NO_SYNC`), so
//!    once `put_progress` returns, every piece it marks complete is on disk, even across a power
//!    cut. Progress is written on add, verification, stop, completion, every
//!    `resume-write-interval` (30 s, all torrents in one transaction with
//!    [`ResumeDb::put_progress_many`]) and at close.
//! 3. Pieces completed after the last progress write are simply not recorded: after a crash
//!    they are downloaded again (or found by a verification).
//!
//! # Clean-shutdown marker
//! [`ResumeDb::open`] reports how the previous session ended ([`LastShutdown`]) and marks the
//! database "running"; [`ResumeDb::close`] marks it "clean". After a clean close the stored
//! bitfields are trusted as they are (no re-hash). After an unclean end (crash, kill, power
//! cut) the runtime must not trust more than rule 2 guarantees: it keeps the stored bits and
//! hashes only the pieces not recorded, which may have been written after the last progress
//! write. Either way the pieces of a missing file are hashed again (see
//! [`Layout::file_pieces`](crate::storage::Layout::file_pieces)).
//!
//! # Corruption
//! A record that does not decode is reported for that torrent only
//! ([`LoadedTorrents::failed`]), so the others still load; the caller can delete it (rain's
//! `CleanDatabase`). A file that is not an LMDB database fails [`ResumeDb::open`] with a clear
//! error and is never overwritten.

mod record;

use std::ffi::OsString;
use std::fs::{self, DirBuilder, File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use lmdb::{
    Cursor, Database, DatabaseFlags, Environment, EnvironmentFlags, RwTransaction, Transaction,
    WriteFlags,
};

use record::StoredMeta;
pub use record::{
    DecodeError, Progress, RECORD_VERSION, TorrentRecord, decode_record, encode_record,
    pack_bitfield, unpack_bitfield,
};

/// Longest torrent id or session key accepted (LMDB keys are at most 511 bytes).
pub const MAX_KEY_LEN: usize = 255;

/// Version of the database layout (tables and marker), stored in the database.
pub const DB_FORMAT_VERSION: u32 = 1;

const TORRENTS: &str = "torrents";
const INFO: &str = "torrent-info";
const PROGRESS: &str = "torrent-progress";
const SESSION: &str = "session";
const META: &str = "meta";
const MARKER_KEY: &[u8] = b"shutdown";
const FORMAT_KEY: &[u8] = b"format";
const CLEAN: &[u8] = b"clean";
const RUNNING: &[u8] = b"running";

/// How the database is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeDbOptions {
    /// Largest size the database may grow to, in bytes (LMDB's map size; address space, not
    /// memory).
    pub max_size: usize,
    /// `file-permissions` for the parent directory; files get it without execute bits.
    pub file_permissions: u32,
    /// How long to wait for another process to release the database.
    pub lock_timeout: Duration,
}

impl Default for ResumeDbOptions {
    fn default() -> Self {
        ResumeDbOptions {
            max_size: 1 << 30,
            file_permissions: 0o750,
            lock_timeout: Duration::from_secs(1),
        }
    }
}

/// How the previous session using this database ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastShutdown {
    /// The database was just created.
    New,
    /// It was closed with [`ResumeDb::close`]: stored bitfields can be trusted.
    Clean,
    /// It was not closed (crash, kill, power cut): re-check what may have changed.
    Unclean,
}

/// Why a resume-database operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResumeError {
    /// Another process (or another open in this one) holds the database.
    #[error("resume database is locked by another process ({path})")]
    Locked {
        /// The database.
        path: PathBuf,
    },
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// LMDB failed (including "not an LMDB file" and "database full").
    #[error("resume database {path}: {source}")]
    Lmdb {
        /// The database.
        path: PathBuf,
        /// The LMDB error.
        #[source]
        source: lmdb::Error,
    },
    /// The database was written by a newer rain with an incompatible layout.
    #[error(
        "resume database {path} has format {found}, newer than this program's {DB_FORMAT_VERSION}"
    )]
    NewerFormat {
        /// The database.
        path: PathBuf,
        /// Its format.
        found: u32,
    },
    /// One torrent's record does not decode.
    #[error("resume record of torrent {id}: {source}")]
    Corrupt {
        /// The torrent id.
        id: String,
        /// What is wrong.
        #[source]
        source: DecodeError,
    },
    /// A record could not be encoded.
    #[error("encoding resume record: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    /// An empty key or one longer than [`MAX_KEY_LEN`].
    #[error("invalid resume key {0:?}")]
    InvalidKey(String),
    /// No record for this torrent.
    #[error("no torrent {0} in the resume database")]
    NoSuchTorrent(String),
}

/// The result of [`ResumeDb::load_torrents`].
#[derive(Debug, Default)]
pub struct LoadedTorrents {
    /// Records that decoded, by id in key order.
    pub ok: Vec<(String, TorrentRecord)>,
    /// Ids whose record is unreadable, with why.
    pub failed: Vec<(String, ResumeError)>,
}

/// The result of [`ResumeDb::compact`].
#[derive(Debug)]
pub struct CompactReport {
    /// Torrent records copied.
    pub kept: usize,
    /// Unreadable records left behind.
    pub dropped: Vec<(String, ResumeError)>,
    /// Data file size before, in bytes.
    pub size_before: u64,
    /// Data file size after, in bytes.
    pub size_after: u64,
    /// Where the old file was moved (`<database>.bak`).
    pub backup: PathBuf,
}

/// A raw key and value.
type KeyValue = (Vec<u8>, Vec<u8>);

#[derive(Debug, Clone, Copy)]
struct Dbs {
    torrents: Database,
    info: Database,
    progress: Database,
    session: Database,
    meta: Database,
}

/// An open resume database. Operations are synchronous (LMDB commits fsync): call them from a
/// blocking thread. Shareable between threads (`Send + Sync`).
#[derive(Debug)]
pub struct ResumeDb {
    // Field order matters: the environment closes before the lock is released.
    env: Environment,
    dbs: Dbs,
    path: PathBuf,
    last_shutdown: LastShutdown,
    lock: File,
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = OsString::from(path.as_os_str());
    s.push(suffix);
    PathBuf::from(s)
}

fn check_key(key: &str) -> Result<(), ResumeError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(ResumeError::InvalidKey(key.to_owned()));
    }
    Ok(())
}

/// `get` that maps "not found" to `None`.
fn get<'t>(
    txn: &'t impl Transaction,
    db: Database,
    key: &[u8],
) -> Result<Option<&'t [u8]>, lmdb::Error> {
    match txn.get(db, &key) {
        Ok(v) => Ok(Some(v)),
        Err(lmdb::Error::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `del` that ignores "not found"; returns whether something was deleted.
fn del(txn: &mut RwTransaction<'_>, db: Database, key: &[u8]) -> Result<bool, lmdb::Error> {
    match txn.del(db, &key, None) {
        Ok(()) => Ok(true),
        Err(lmdb::Error::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
}

fn take_lock(path: &Path, opts: &ResumeDbOptions) -> Result<File, ResumeError> {
    let lock_path = with_suffix(path, ".lock");
    let io_err = |source| ResumeError::Io {
        path: lock_path.clone(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(opts.file_permissions & 0o666)
        .open(&lock_path)
        .map_err(io_err)?;
    let deadline = Instant::now() + opts.lock_timeout;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(20));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(ResumeError::Locked {
                    path: path.to_owned(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io_err(e)),
        }
    }
}

fn open_env(path: &Path, opts: &ResumeDbOptions) -> Result<(Environment, Dbs), ResumeError> {
    let lmdb_err = |source| ResumeError::Lmdb {
        path: path.to_owned(),
        source,
    };
    let env = Environment::new()
        .set_flags(EnvironmentFlags::NO_SUB_DIR | EnvironmentFlags::NO_TLS)
        .set_max_dbs(8)
        .set_map_size(opts.max_size)
        .open_with_permissions(path, opts.file_permissions & 0o666)
        .map_err(lmdb_err)?;
    let create = |name| env.create_db(Some(name), DatabaseFlags::empty());
    let dbs = Dbs {
        torrents: create(TORRENTS).map_err(lmdb_err)?,
        info: create(INFO).map_err(lmdb_err)?,
        progress: create(PROGRESS).map_err(lmdb_err)?,
        session: create(SESSION).map_err(lmdb_err)?,
        meta: create(META).map_err(lmdb_err)?,
    };
    Ok((env, dbs))
}

impl ResumeDb {
    /// Opens (creating if needed) the database at `path`, takes its lock, reads how the last
    /// session ended and marks it running.
    pub fn open(path: &Path, opts: &ResumeDbOptions) -> Result<Self, ResumeError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            DirBuilder::new()
                .recursive(true)
                .mode(opts.file_permissions & 0o7777)
                .create(parent)
                .map_err(|source| ResumeError::Io {
                    path: parent.to_owned(),
                    source,
                })?;
        }
        let lock = take_lock(path, opts)?;
        let (env, dbs) = open_env(path, opts)?;
        let mut db = ResumeDb {
            env,
            dbs,
            path: path.to_owned(),
            last_shutdown: LastShutdown::New,
            lock,
        };
        db.last_shutdown = db.start()?;
        Ok(db)
    }

    /// Reads the marker and format, writes "running".
    fn start(&self) -> Result<LastShutdown, ResumeError> {
        let mut txn = self.env.begin_rw_txn().map_err(self.lmdb_err())?;
        let marker = get(&txn, self.dbs.meta, MARKER_KEY)
            .map_err(self.lmdb_err())?
            .map(<[u8]>::to_vec);
        let format = get(&txn, self.dbs.meta, FORMAT_KEY)
            .map_err(self.lmdb_err())?
            .map(|v| v.try_into().map_or(u32::MAX, u32::from_be_bytes));
        if let Some(found) = format.filter(|&f| f > DB_FORMAT_VERSION) {
            return Err(ResumeError::NewerFormat {
                path: self.path.clone(),
                found,
            });
        }
        let last = match marker.as_deref() {
            None => LastShutdown::New,
            Some(CLEAN) => LastShutdown::Clean,
            Some(_) => LastShutdown::Unclean,
        };
        txn.put(self.dbs.meta, &MARKER_KEY, &RUNNING, WriteFlags::empty())
            .map_err(self.lmdb_err())?;
        if format.is_none() {
            let v = DB_FORMAT_VERSION.to_be_bytes();
            txn.put(self.dbs.meta, &FORMAT_KEY, &v, WriteFlags::empty())
                .map_err(self.lmdb_err())?;
        }
        txn.commit().map_err(self.lmdb_err())?;
        Ok(last)
    }

    /// Marks the shutdown clean, syncs and closes. Call it after the last progress write;
    /// dropping the database without it counts as a crash.
    pub fn close(self) -> Result<(), ResumeError> {
        let mut txn = self.env.begin_rw_txn().map_err(self.lmdb_err())?;
        txn.put(self.dbs.meta, &MARKER_KEY, &CLEAN, WriteFlags::empty())
            .map_err(self.lmdb_err())?;
        txn.commit().map_err(self.lmdb_err())?;
        self.env.sync(true).map_err(self.lmdb_err())
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How the previous session ended.
    pub fn last_shutdown(&self) -> LastShutdown {
        self.last_shutdown
    }

    fn lmdb_err(&self) -> impl Fn(lmdb::Error) -> ResumeError + '_ {
        |source| ResumeError::Lmdb {
            path: self.path.clone(),
            source,
        }
    }

    /// Writes the whole record of torrent `id` (add, or replace).
    pub fn put_torrent(&self, id: &str, record: &TorrentRecord) -> Result<(), ResumeError> {
        check_key(id)?;
        let (meta, progress) = encode_record(record)?;
        let mut txn = self.env.begin_rw_txn().map_err(self.lmdb_err())?;
        let key = id.as_bytes();
        txn.put(self.dbs.torrents, &key, &meta, WriteFlags::empty())
            .map_err(self.lmdb_err())?;
        txn.put(self.dbs.info, &key, &record.info, WriteFlags::empty())
            .map_err(self.lmdb_err())?;
        txn.put(self.dbs.progress, &key, &progress, WriteFlags::empty())
            .map_err(self.lmdb_err())?;
        txn.commit().map_err(self.lmdb_err())
    }

    /// Reads the record of torrent `id`; `Ok(None)` if there is none.
    pub fn get_torrent(&self, id: &str) -> Result<Option<TorrentRecord>, ResumeError> {
        check_key(id)?;
        let txn = self.env.begin_ro_txn().map_err(self.lmdb_err())?;
        let Some(meta) = get(&txn, self.dbs.torrents, id.as_bytes()).map_err(self.lmdb_err())?
        else {
            return Ok(None);
        };
        self.decode(&txn, id, meta).map(Some)
    }

    fn decode(
        &self,
        txn: &impl Transaction,
        id: &str,
        meta: &[u8],
    ) -> Result<TorrentRecord, ResumeError> {
        let corrupt = |source| ResumeError::Corrupt {
            id: id.to_owned(),
            source,
        };
        let key = id.as_bytes();
        let info = get(txn, self.dbs.info, key)
            .map_err(self.lmdb_err())?
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        let progress = get(txn, self.dbs.progress, key).map_err(self.lmdb_err())?;
        decode_record(meta, info, progress).map_err(corrupt)
    }

    /// Deletes torrent `id`'s record; returns whether it existed.
    pub fn delete_torrent(&self, id: &str) -> Result<bool, ResumeError> {
        check_key(id)?;
        let mut txn = self.env.begin_rw_txn().map_err(self.lmdb_err())?;
        let key = id.as_bytes();
        let existed = del(&mut txn, self.dbs.torrents, key).map_err(self.lmdb_err())?;
        del(&mut txn, self.dbs.info, key).map_err(self.lmdb_err())?;
        del(&mut txn, self.dbs.progress, key).map_err(self.lmdb_err())?;
        txn.commit().map_err(self.lmdb_err())?;
        Ok(existed)
    }

    /// Ids of all stored torrents, in key order.
    pub fn torrent_ids(&self) -> Result<Vec<String>, ResumeError> {
        let txn = self.env.begin_ro_txn().map_err(self.lmdb_err())?;
        let mut cursor = txn
            .open_ro_cursor(self.dbs.torrents)
            .map_err(self.lmdb_err())?;
        cursor
            .iter_start()
            .map(|kv| {
                kv.map(|(k, _)| String::from_utf8_lossy(k).into_owned())
                    .map_err(self.lmdb_err())
            })
            .collect()
    }

    /// Reads every torrent record. Unreadable records are listed in
    /// [`LoadedTorrents::failed`]; only a failure of the database itself is an `Err`.
    pub fn load_torrents(&self) -> Result<LoadedTorrents, ResumeError> {
        let txn = self.env.begin_ro_txn().map_err(self.lmdb_err())?;
        let mut cursor = txn
            .open_ro_cursor(self.dbs.torrents)
            .map_err(self.lmdb_err())?;
        let mut loaded = LoadedTorrents::default();
        for kv in cursor.iter_start() {
            let (key, meta) = kv.map_err(self.lmdb_err())?;
            let id = String::from_utf8_lossy(key).into_owned();
            match self.decode(&txn, &id, meta) {
                Ok(record) => loaded.ok.push((id, record)),
                Err(e @ ResumeError::Corrupt { .. }) => loaded.failed.push((id, e)),
                Err(e) => return Err(e),
            }
        }
        Ok(loaded)
    }

    /// Rewrites the non-progress part of torrent `id` through `f` (start/stop, trackers,
    /// metadata, flags). Only the parts that `f` changed are written.
    pub fn update_torrent(
        &self,
        id: &str,
        f: impl FnOnce(&mut TorrentRecord),
    ) -> Result<(), ResumeError> {
        check_key(id)?;
        let mut txn = self.env.begin_rw_txn().map_err(self.lmdb_err())?;
        let key = id.as_bytes();
        let Some(meta) = get(&txn, self.dbs.torrents, key).map_err(self.lmdb_err())? else {
            return Err(ResumeError::NoSuchTorrent(id.to_owned()));
        };
        let before = self.decode(&txn, id, meta)?;
        let mut after = before.clone();
        f(&mut after);
        if StoredMeta::from_record(&after).encode()? != StoredMeta::from_record(&before).encode()? {
            let meta = StoredMeta::from_record(&after).encode()?;
            txn.put(self.dbs.torrents, &key, &meta, WriteFlags::empty())
                .map_err(self.lmdb_err())?;
        }
        if after.info != before.info {
            txn.put(self.dbs.info, &key, &after.info, WriteFlags::empty())
                .map_err(self.lmdb_err())?;
        }
        if after.progress != before.progress {
            let progress = after.progress.encode()?;
            txn.put(self.dbs.progress, &key, &progress, WriteFlags::empty())
                .map_err(self.lmdb_err())?;
        }
        txn.commit().map_err(self.lmdb_err())
    }

    /// Writes torrent `id`'s bitfield and counters (small and cheap; see the durability rule
    /// in the module docs).
    pub fn put_progress(&self, id: &str, progress: &Progress) -> Result<(), ResumeError> {
        if self.put_progress_many([(id, progress)])? == 0 {
            return Err(ResumeError::NoSuchTorrent(id.to_owned()));
        }
        Ok(())
    }

    /// Writes the progress of many torrents in one transaction (the periodic flush). Ids with
    /// no record (removed meanwhile) are skipped; returns how many were written.
    pub fn put_progress_many<'a>(
        &self,
        items: impl IntoIterator<Item = (&'a str, &'a Progress)>,
    ) -> Result<usize, ResumeError> {
        let mut txn = self.env.begin_rw_txn().map_err(self.lmdb_err())?;
        let mut written = 0;
        for (id, progress) in items {
            check_key(id)?;
            let key = id.as_bytes();
            if get(&txn, self.dbs.torrents, key)
                .map_err(self.lmdb_err())?
                .is_none()
            {
                continue;
            }
            let bytes = progress.encode()?;
            txn.put(self.dbs.progress, &key, &bytes, WriteFlags::empty())
                .map_err(self.lmdb_err())?;
            written += 1;
        }
        txn.commit().map_err(self.lmdb_err())?;
        Ok(written)
    }

    /// Reads a session value (blocklist cache, DHT nodes…).
    pub fn session_get(&self, key: &str) -> Result<Option<Vec<u8>>, ResumeError> {
        check_key(key)?;
        let txn = self.env.begin_ro_txn().map_err(self.lmdb_err())?;
        Ok(get(&txn, self.dbs.session, key.as_bytes())
            .map_err(self.lmdb_err())?
            .map(<[u8]>::to_vec))
    }

    /// Writes a session value.
    pub fn session_put(&self, key: &str, value: &[u8]) -> Result<(), ResumeError> {
        check_key(key)?;
        let mut txn = self.env.begin_rw_txn().map_err(self.lmdb_err())?;
        txn.put(
            self.dbs.session,
            &key.as_bytes(),
            &value,
            WriteFlags::empty(),
        )
        .map_err(self.lmdb_err())?;
        txn.commit().map_err(self.lmdb_err())
    }

    /// Writes several session values in one transaction, so that a reader sees all of them
    /// or none (the blocklist and its timestamp and URL hash).
    pub fn session_put_many(&self, values: &[(&str, &[u8])]) -> Result<(), ResumeError> {
        for (key, _) in values {
            check_key(key)?;
        }
        let mut txn = self.env.begin_rw_txn().map_err(self.lmdb_err())?;
        for (key, value) in values {
            txn.put(
                self.dbs.session,
                &key.as_bytes(),
                value,
                WriteFlags::empty(),
            )
            .map_err(self.lmdb_err())?;
        }
        txn.commit().map_err(self.lmdb_err())
    }

    /// Deletes a session value; returns whether it existed.
    pub fn session_delete(&self, key: &str) -> Result<bool, ResumeError> {
        check_key(key)?;
        let mut txn = self.env.begin_rw_txn().map_err(self.lmdb_err())?;
        let existed = del(&mut txn, self.dbs.session, key.as_bytes()).map_err(self.lmdb_err())?;
        txn.commit().map_err(self.lmdb_err())?;
        Ok(existed)
    }

    fn session_entries(&self) -> Result<Vec<KeyValue>, ResumeError> {
        let txn = self.env.begin_ro_txn().map_err(self.lmdb_err())?;
        let mut cursor = txn
            .open_ro_cursor(self.dbs.session)
            .map_err(self.lmdb_err())?;
        cursor
            .iter_start()
            .map(|kv| {
                kv.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(self.lmdb_err())
            })
            .collect()
    }

    /// Rewrites the database at `path` into a fresh file (like `rain compact-database`; run it
    /// while no session uses the database). Every readable torrent record and the session area
    /// are copied, and how the last session ended is kept; unreadable records are dropped and
    /// reported. The old file is kept as `<database>.bak`. (rain's command also drops magnets
    /// without metadata and the session area; we keep them: compacting should lose nothing.)
    pub fn compact(path: &Path, opts: &ResumeDbOptions) -> Result<CompactReport, ResumeError> {
        let db = ResumeDb::open(path, opts)?;
        let loaded = db.load_torrents()?;
        let session = db.session_entries()?;
        let io_err = |path: &Path| {
            let path = path.to_owned();
            move |source| ResumeError::Io { path, source }
        };
        let size_before = fs::metadata(path).map_err(io_err(path))?.len();
        let fresh = with_suffix(path, ".compact");
        for stale in [fresh.clone(), with_suffix(&fresh, "-lock")] {
            match fs::remove_file(&stale) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&stale)(e)),
            }
        }
        {
            let (env, dbs) = open_env(&fresh, opts)?;
            let lmdb_err = |source| ResumeError::Lmdb {
                path: fresh.clone(),
                source,
            };
            let mut txn = env.begin_rw_txn().map_err(lmdb_err)?;
            for (id, record) in &loaded.ok {
                let key = id.as_bytes();
                let (meta, progress) = encode_record(record)?;
                txn.put(dbs.torrents, &key, &meta, WriteFlags::empty())
                    .map_err(lmdb_err)?;
                txn.put(dbs.info, &key, &record.info, WriteFlags::empty())
                    .map_err(lmdb_err)?;
                txn.put(dbs.progress, &key, &progress, WriteFlags::empty())
                    .map_err(lmdb_err)?;
            }
            for (k, v) in &session {
                txn.put(dbs.session, k, v, WriteFlags::empty())
                    .map_err(lmdb_err)?;
            }
            let marker = if db.last_shutdown == LastShutdown::Unclean {
                RUNNING
            } else {
                CLEAN
            };
            txn.put(dbs.meta, &MARKER_KEY, &marker, WriteFlags::empty())
                .map_err(lmdb_err)?;
            let format = DB_FORMAT_VERSION.to_be_bytes();
            txn.put(dbs.meta, &FORMAT_KEY, &format, WriteFlags::empty())
                .map_err(lmdb_err)?;
            txn.commit().map_err(lmdb_err)?;
            env.sync(true).map_err(lmdb_err)?;
        }
        // Close the old environment but keep holding the lock while the files move.
        let ResumeDb { env, lock, .. } = db;
        drop(env);
        let backup = with_suffix(path, ".bak");
        fs::rename(path, &backup).map_err(io_err(path))?;
        fs::rename(&fresh, path).map_err(io_err(&fresh))?;
        // Best effort: the fresh file's reader table is not needed any more.
        let _ = fs::remove_file(with_suffix(&fresh, "-lock"));
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(io_err(parent))?;
        }
        let size_after = fs::metadata(path).map_err(io_err(path))?.len();
        drop(lock);
        Ok(CompactReport {
            kept: loaded.ok.len(),
            dropped: loaded.failed,
            size_before,
            size_after,
            backup,
        })
    }

    /// Writes raw bytes as torrent `id`'s metadata value (tests of corruption handling).
    #[cfg(test)]
    fn put_raw_meta(&self, id: &str, bytes: &[u8]) {
        let mut txn = self.env.begin_rw_txn().unwrap();
        txn.put(
            self.dbs.torrents,
            &id.as_bytes(),
            &bytes,
            WriteFlags::empty(),
        )
        .unwrap();
        txn.commit().unwrap();
    }
}

#[cfg(test)]
mod tests;

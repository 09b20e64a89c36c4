//! Moving a torrent between two sessions (rain's `MoveTorrent` and `/move-torrent`,
//! reference §3.4): the resume spec JSON, the tar of its data, and the session's two halves.
//!
//! - Source: [`Session::export_for_move`] stops the torrent's task and hands back its
//!   [`MoveSpec`] and data files; after the target accepted them,
//!   [`Session::remove`](crate::session::Session::remove) with `keep_data`; after a failure,
//!   [`Session::abort_move`] brings the (stopped) torrent back.
//! - Target: [`Session::prepare_move_in`] replaces a torrent with the same id (deleting its
//!   data) and names the directory to extract into ([`extract_data_tar`]);
//!   [`Session::import_moved`] then stores the record under a fresh port and starts it if the
//!   spec says it was started.
//!
//! The spec keeps rain's Go field names so a rain server on either side understands it.

use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use data_encoding::BASE64;
use rain_proto::InfoHash;
use rain_proto::metainfo::Info;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::sync::oneshot;

use crate::net::Network;
use crate::resume::{Progress, TorrentRecord};
use crate::session::{Entry, STOP_TIMEOUT, Session, SessionError, TorrentSummary, torrent_peer_id};
use crate::storage::{FileStorage, storage_root};
use crate::torrent_task::{self, Command, TaskSpec};

/// Bytes of tar data accepted beyond the torrent's total length (headers, padding, and
/// files in the data directory that are not the torrent's). A magnet without metadata may
/// bring this much.
pub const MOVE_DATA_SLACK: u64 = 64 * 1024 * 1024;

/// The largest `data` part the target accepts for a torrent of `total_length` bytes.
pub fn max_move_data(total_length: u64) -> u64 {
    total_length.saturating_add(MOVE_DATA_SLACK)
}

// ------------------------------------------------------------------ spec

/// rain's resume spec as `/move-torrent` carries it (Go's `boltdbresumer.Spec` in JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MoveSpec {
    /// The info-hash (base64).
    #[serde(with = "b64")]
    pub info_hash: Vec<u8>,
    /// The source's listen port; the target draws its own.
    pub port: u16,
    /// Initial or display name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// Tracker tiers.
    #[serde(deserialize_with = "nullable")]
    pub trackers: Vec<Vec<String>>,
    /// WebSeed URLs.
    #[serde(rename = "URLList", deserialize_with = "nullable")]
    pub url_list: Vec<String>,
    /// Peers added by hand.
    #[serde(deserialize_with = "nullable")]
    pub fixed_peers: Vec<String>,
    /// The raw info dictionary (base64; empty for a magnet without metadata).
    #[serde(with = "b64")]
    pub info: Vec<u8>,
    /// The verified pieces (base64), `null` when unknown.
    #[serde(with = "b64_opt")]
    pub bitfield: Option<Vec<u8>>,
    /// When the torrent was added, Unix seconds (RFC 3339 on the wire).
    #[serde(with = "rfc3339")]
    pub added_at: i64,
    /// Payload downloaded.
    pub bytes_downloaded: i64,
    /// Payload uploaded.
    pub bytes_uploaded: i64,
    /// Payload discarded.
    pub bytes_wasted: i64,
    /// Time spent seeding, nanoseconds (Go's `time.Duration`).
    pub seeded_for: i64,
    /// It was running.
    pub started: bool,
    /// Stop once downloaded.
    pub stop_after_download: bool,
    /// Stop once the metadata arrives.
    pub stop_after_metadata: bool,
    /// The completion hook ran.
    pub complete_cmd_run: bool,
    /// Download in order.
    pub sequential: bool,
    /// Metainfo parser version.
    pub version: i64,
}

/// Why a spec cannot become a torrent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    /// The info-hash is not 20 bytes.
    #[error("invalid info hash length {0}")]
    InfoHashLength(usize),
    /// The info dictionary does not hash to the info-hash.
    #[error("info does not match the info hash")]
    InfoMismatch,
    /// The info dictionary does not parse.
    #[error("invalid info: {0}")]
    Info(String),
    /// The bitfield has the wrong length for the info.
    #[error("invalid bitfield length")]
    Bitfield,
}

impl MoveSpec {
    /// The spec of a stored record.
    pub fn from_record(r: &TorrentRecord) -> Self {
        let signed = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        MoveSpec {
            info_hash: r.info_hash.0.to_vec(),
            port: r.port,
            name: r.name.clone(),
            trackers: r.trackers.clone(),
            url_list: r.url_list.clone(),
            fixed_peers: r.fixed_peers.clone(),
            info: r.info.clone(),
            bitfield: r.progress.bitfield.clone(),
            added_at: r.added_at,
            bytes_downloaded: signed(r.progress.bytes_downloaded),
            bytes_uploaded: signed(r.progress.bytes_uploaded),
            bytes_wasted: signed(r.progress.bytes_wasted),
            seeded_for: i64::try_from(r.progress.seeded_for.as_nanos()).unwrap_or(i64::MAX),
            started: r.started,
            stop_after_download: r.stop_after_download,
            stop_after_metadata: r.stop_after_metadata,
            complete_cmd_run: r.complete_cmd_run,
            sequential: r.sequential,
            version: i64::from(r.parser_version),
        }
    }

    /// The parsed info dictionary, checked against the info-hash (`None` for a magnet).
    pub fn parse_info(
        &self,
        limits: &rain_proto::metainfo::Limits,
    ) -> Result<Option<Info>, SpecError> {
        let hash = self.hash()?;
        if self.info.is_empty() {
            return Ok(None);
        }
        if InfoHash::of(&self.info) != hash {
            return Err(SpecError::InfoMismatch);
        }
        let info =
            Info::from_bytes(&self.info, limits).map_err(|e| SpecError::Info(e.to_string()))?;
        if let Some(b) = &self.bitfield
            && b.len() != (info.piece_count() as usize).div_ceil(8)
        {
            return Err(SpecError::Bitfield);
        }
        Ok(Some(info))
    }

    fn hash(&self) -> Result<InfoHash, SpecError> {
        let raw: [u8; 20] = self
            .info_hash
            .as_slice()
            .try_into()
            .map_err(|_| SpecError::InfoHashLength(self.info_hash.len()))?;
        Ok(InfoHash(raw))
    }

    /// The record to store on the target, listening on `port`.
    pub fn to_record(&self, port: u16) -> Result<TorrentRecord, SpecError> {
        let unsigned = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(TorrentRecord {
            info_hash: self.hash()?,
            port,
            name: self.name.clone(),
            trackers: self.trackers.clone(),
            url_list: self.url_list.clone(),
            fixed_peers: self.fixed_peers.clone(),
            info: self.info.clone(),
            progress: Progress {
                bitfield: self.bitfield.clone().filter(|b| !b.is_empty()),
                bytes_downloaded: unsigned(self.bytes_downloaded),
                bytes_uploaded: unsigned(self.bytes_uploaded),
                bytes_wasted: unsigned(self.bytes_wasted),
                seeded_for: Duration::from_nanos(unsigned(self.seeded_for)),
            },
            added_at: self.added_at,
            started: self.started,
            stop_after_download: self.stop_after_download,
            stop_after_metadata: self.stop_after_metadata,
            complete_cmd_run: self.complete_cmd_run,
            sequential: self.sequential,
            parser_version: u32::try_from(self.version).unwrap_or(1).max(1),
        })
    }
}

/// `null` reads as the default (Go marshals nil slices as `null`).
fn nullable<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

mod b64 {
    use super::{BASE64, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&BASE64.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        Ok(super::b64_opt::deserialize(d)?.unwrap_or_default())
    }
}

mod b64_opt {
    use super::{BASE64, Deserialize, Deserializer, Serializer};

    #[allow(clippy::ref_option)] // serde's `with` passes `&Option<T>`.
    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&BASE64.encode(v)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let Some(text) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        BASE64
            .decode(text.as_bytes())
            .map(Some)
            .map_err(serde::de::Error::custom)
    }
}

mod rfc3339 {
    use super::{Deserialize, Deserializer, Serializer, UNIX_EPOCH};
    use std::time::Duration;

    #[allow(clippy::trivially_copy_pass_by_ref)] // serde's `with` passes a reference.
    pub fn serialize<S: Serializer>(secs: &i64, s: S) -> Result<S::Ok, S::Error> {
        let t = if *secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
        } else {
            UNIX_EPOCH
        };
        s.serialize_str(&humantime::format_rfc3339_seconds(t).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let text = Option::<String>::deserialize(d)?.unwrap_or_default();
        if text.is_empty() {
            return Ok(0);
        }
        super::parse_rfc3339(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid time {text:?}")))
    }
}

/// Unix seconds of an RFC 3339 time, with `Z` or a numeric offset (Go writes local offsets).
/// Times before 1970 read as 0.
fn parse_rfc3339(text: &str) -> Option<i64> {
    let (local, offset) = if let Some(t) = text.strip_suffix(['Z', 'z']) {
        (t, 0)
    } else {
        let split = text.len().checked_sub(6)?;
        let (t, off) = (text.get(..split)?, text.get(split..)?);
        let sign = match off.as_bytes().first()? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let (h, m) = off.get(1..)?.split_once(':')?;
        let secs = h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60;
        (t, sign * secs)
    };
    let t = humantime::parse_rfc3339_weak(local).ok()?;
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    Some((secs - offset).max(0))
}

// ------------------------------------------------------------------ tar

/// Every regular file under `root`, relative, sorted; symlinks and special files are left
/// out. A missing `root` has none.
pub fn data_files(root: &Path) -> io::Result<Vec<PathBuf>> {
    fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
        let dir = match std::fs::read_dir(root.join(rel)) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound && rel.as_os_str().is_empty() => {
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        for entry in dir {
            let entry = entry?;
            let kind = entry.file_type()?;
            let path = rel.join(entry.file_name());
            if kind.is_dir() {
                walk(root, &path, out)?;
            } else if kind.is_file() {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, Path::new(""), &mut out)?;
    out.sort();
    Ok(out)
}

/// Writes a tar of `files` (relative to `root`) to `out`: regular files, mode 0600, as
/// rain's source sends them. Returns `out`.
pub fn write_data_tar<W: Write>(out: W, root: &Path, files: &[PathBuf]) -> io::Result<W> {
    let mut builder = tar::Builder::new(out);
    for rel in files {
        let file = std::fs::File::open(root.join(rel))?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            continue;
        }
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(meta.len());
        header.set_mode(0o600);
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        header.set_mtime(mtime);
        builder.append_data(&mut header, rel, file.take(meta.len()))?;
    }
    builder.into_inner()
}

/// Why an archive was not extracted.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// An entry that could escape the directory or is not a regular file or directory.
    #[error("refused tar entry {path:?}: {why}")]
    Unsafe {
        /// The entry's name.
        path: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The archive could not be read (truncated, corrupt, or the upload failed).
    #[error("invalid tar data: {0}")]
    Malformed(io::Error),
    /// Writing the files failed.
    #[error("writing moved data: {0}")]
    Io(io::Error),
}

/// `path` as a relative path of normal components only (`.` dropped), or `None` when it is
/// absolute, climbs with `..`, or is empty.
pub fn safe_relative(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// Extracts a tar into `root` (created if missing): only regular files and directories,
/// only below `root`, never through a symlink. Files get `file_permissions` without execute
/// bits and are fsynced. Every file created is pushed to `created`, also on failure, so that
/// the caller can clean up.
pub fn extract_data_tar<R: Read>(
    input: R,
    root: &Path,
    file_permissions: u32,
    created: &mut Vec<PathBuf>,
) -> Result<(), ExtractError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

    let dir_mode = file_permissions & 0o7777;
    let file_mode = file_permissions & 0o666;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(dir_mode)
        .create(root)
        .map_err(ExtractError::Io)?;
    let mut archive = tar::Archive::new(input);
    for entry in archive.entries().map_err(ExtractError::Malformed)? {
        let mut entry = entry.map_err(ExtractError::Malformed)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let unsafe_entry = |why| ExtractError::Unsafe {
            path: name.clone(),
            why,
        };
        let kind = entry.header().entry_type();
        let is_dir = match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => false,
            tar::EntryType::Directory => true,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => continue,
            _ => return Err(unsafe_entry("only regular files and directories")),
        };
        let path = entry.path().map_err(ExtractError::Malformed)?;
        let rel = safe_relative(&path).ok_or_else(|| unsafe_entry("outside the data directory"))?;
        // Create (or walk) every parent, refusing to pass through a symlink.
        let mut dest = root.to_path_buf();
        let comps: Vec<_> = rel.components().collect();
        for (i, c) in comps.iter().enumerate() {
            dest.push(c);
            let last = i + 1 == comps.len();
            match std::fs::symlink_metadata(&dest) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(unsafe_entry("would follow a symlink"));
                }
                Ok(m) if !last && !m.is_dir() => {
                    return Err(ExtractError::Io(io::Error::other(format!(
                        "{} is not a directory",
                        dest.display()
                    ))));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if !last || is_dir {
                        std::fs::DirBuilder::new()
                            .mode(dir_mode)
                            .create(&dest)
                            .map_err(ExtractError::Io)?;
                    }
                }
                Err(e) => return Err(ExtractError::Io(e)),
            }
        }
        if is_dir {
            continue;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(file_mode)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&dest)
            .map_err(ExtractError::Io)?;
        created.push(dest.clone());
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match entry.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ExtractError::Malformed(e)),
            };
            file.write_all(&buf[..n]).map_err(ExtractError::Io)?;
        }
        file.sync_all().map_err(ExtractError::Io)?;
    }
    // The directory entries too, so the files are found after a crash.
    if let Ok(dir) = std::fs::File::open(root) {
        let _ = dir.sync_all();
    }
    Ok(())
}

// ------------------------------------------------------------------ session

/// What the source sends: the spec and where the data is.
#[derive(Debug, Clone)]
pub struct MoveExport {
    /// The resume spec.
    pub spec: MoveSpec,
    /// The directory the tar's names are relative to.
    pub root: PathBuf,
    /// The files to send, relative to `root`.
    pub files: Vec<PathBuf>,
}

fn join_error(e: crate::blocking::JobFailed) -> SessionError {
    SessionError::Io(io::Error::other(e))
}

impl<N: Network> Session<N> {
    /// Source side: stops torrent `id` (its task ends after writing its progress; the stored
    /// `started` flag is kept) and returns its spec and data files. Follow with
    /// [`Session::remove`] keeping data once the target has it, or [`Session::abort_move`].
    pub async fn export_for_move(&self, id: &str) -> Result<MoveExport, SessionError> {
        let cmd = self
            .state()
            .torrents
            .get(id)
            .map(|e| e.handle.cmd.clone())
            .ok_or_else(|| SessionError::NotFound(id.to_owned()))?;
        let info = {
            let (tx, rx) = oneshot::channel();
            cmd.send(Command::Metadata(tx))
                .await
                .map_err(|_| SessionError::Closed)?;
            rx.await.map_err(|_| SessionError::Closed)?
        };
        let (tx, rx) = oneshot::channel();
        if cmd.send(Command::Shutdown(tx)).await.is_ok() {
            let _ = tokio::time::timeout(STOP_TIMEOUT, rx).await;
        }
        let record = self.stored_record(id).await?;
        let opts = self.shared.storage_opts.clone();
        let cache = self.shared.cache.clone();
        let id = id.to_owned();
        let (root, files) = self
            .shared
            .blocking
            .run(move || -> Result<_, SessionError> {
                let root = storage_root(&opts, &id).map_err(|e| io::Error::other(e.to_string()))?;
                if opts.data_dir_includes_torrent_id {
                    return Ok((root.clone(), data_files(&root)?));
                }
                // A shared data directory: only this torrent's own files.
                let Some((info, _)) = info else {
                    return Ok((root, Vec::new()));
                };
                let storage = FileStorage::new(&info, root.clone(), opts.file_permissions, cache)
                    .map_err(|e| io::Error::other(e.to_string()))?;
                let files = (0..info.files.len())
                    .filter(|&i| !info.files[i].padding)
                    .filter_map(|i| storage.path(i))
                    .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
                    .filter_map(|p| p.strip_prefix(&root).ok().map(Path::to_path_buf))
                    .collect();
                Ok((root, files))
            })
            .await
            .map_err(join_error)??;
        Ok(MoveExport {
            spec: MoveSpec::from_record(&record),
            root,
            files,
        })
    }

    /// Torrent `id`'s record in the resume database.
    async fn stored_record(&self, id: &str) -> Result<TorrentRecord, SessionError> {
        let db = self.shared.db()?;
        let key = id.to_owned();
        self.shared
            .blocking
            .run(move || db.get_torrent(&key))
            .await
            .map_err(join_error)??
            .ok_or_else(|| SessionError::NotFound(id.to_owned()))
    }

    /// Source side, after a failed move: runs torrent `id` again from its stored record,
    /// stopped (as rain leaves it).
    pub async fn abort_move(&self, id: &str) -> Result<(), SessionError> {
        let record = self.stored_record(id).await?;
        let info = self.parse_record_info(&record)?;
        let mut st = self.state();
        let prefix = &self.config.private_peer_id_prefix;
        let peer_id = torrent_peer_id(info.as_ref().map(|(i, _)| i), prefix, &mut st.rng);
        let seed = st.rng.child();
        let Some(entry) = st.torrents.get_mut(id) else {
            return Err(SessionError::NotFound(id.to_owned()));
        };
        let spec = TaskSpec::from_record(id, &record, info, peer_id, seed);
        let old = std::mem::replace(
            &mut entry.handle,
            torrent_task::spawn(self.shared.clone(), spec),
        );
        old.join.abort();
        Ok(())
    }

    fn parse_record_info(&self, r: &TorrentRecord) -> Result<Option<(Info, Bytes)>, SessionError> {
        if r.info.is_empty() {
            return Ok(None);
        }
        let info = Info::from_bytes(&r.info, &self.config.metainfo_limits())?;
        Ok(Some((info, Bytes::from(r.info.clone()))))
    }

    /// Target side: the largest `data` part accepted for `spec`, which is checked first
    /// (info-hash, info, bitfield).
    pub fn move_data_limit(&self, spec: &MoveSpec) -> Result<u64, SpecError> {
        let info = spec.parse_info(&self.config.metainfo_limits())?;
        Ok(max_move_data(info.map_or(0, |i| i.total_length)))
    }

    /// Target side, before extracting: checks `id`, removes a torrent already using it
    /// (deleting its data) and returns the directory to extract into.
    pub async fn prepare_move_in(&self, id: &str) -> Result<PathBuf, SessionError> {
        if id.is_empty() || id.len() > crate::resume::MAX_KEY_LEN {
            return Err(SessionError::InvalidId(id.to_owned()));
        }
        // Also with a shared data dir, the id must be a usable name.
        let mut probe = self.shared.storage_opts.clone();
        probe.data_dir_includes_torrent_id = true;
        storage_root(&probe, id).map_err(|_| SessionError::InvalidId(id.to_owned()))?;
        self.remove(id, false).await?;
        storage_root(&self.shared.storage_opts, id)
            .map_err(|_| SessionError::InvalidId(id.to_owned()))
    }

    /// Target side, after extracting: stores `spec` as torrent `id` on a fresh port, runs it
    /// and starts it if the spec says it was started.
    pub async fn import_moved(
        &self,
        id: &str,
        spec: &MoveSpec,
    ) -> Result<TorrentSummary, SessionError> {
        let info = spec
            .parse_info(&self.config.metainfo_limits())
            .map_err(|e| SessionError::Io(io::Error::new(io::ErrorKind::InvalidData, e)))?;
        let (port, peer_id, seed) = {
            let mut st = self.state();
            if st.torrents.contains_key(id) {
                return Err(SessionError::DuplicateId);
            }
            if st.free_ports.is_empty() {
                return Err(SessionError::NoFreePort);
            }
            let free = st.free_ports.len() as u64;
            let n = st.rng.below(free) as usize;
            let port = *st
                .free_ports
                .iter()
                .nth(n)
                .ok_or(SessionError::NoFreePort)?;
            st.free_ports.remove(&port);
            let prefix = &self.config.private_peer_id_prefix;
            let peer_id = torrent_peer_id(info.as_ref(), prefix, &mut st.rng);
            (port, peer_id, st.rng.child())
        };
        let give_back = |e: SessionError| {
            self.state().free_ports.insert(port);
            e
        };
        let mut record = spec.to_record(port).map_err(|e| {
            give_back(SessionError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                e,
            )))
        })?;
        let started = record.started;
        // Stored stopped until the task runs; `start` below persists `started`.
        record.started = false;
        let db = self.shared.db().map_err(give_back)?;
        let (key, rec) = (id.to_owned(), record.clone());
        self.shared
            .blocking
            .run(move || db.put_torrent(&key, &rec))
            .await
            .map_err(|e| give_back(join_error(e)))?
            .map_err(|e| give_back(e.into()))?;
        let info = info.map(|i| (i, Bytes::from(record.info.clone())));
        let summary = TorrentSummary {
            id: id.to_owned(),
            name: record.name.clone(),
            info_hash: record.info_hash,
            port,
            added_at: record.added_at,
        };
        {
            let mut st = self.state();
            if st.torrents.contains_key(id) {
                st.free_ports.insert(port);
                return Err(SessionError::DuplicateId);
            }
            let handle = torrent_task::spawn(
                self.shared.clone(),
                TaskSpec::from_record(id, &record, info, peer_id, seed),
            );
            st.torrents.insert(
                id.to_owned(),
                Entry {
                    summary: summary.clone(),
                    trackers: record.trackers.clone(),
                    handle,
                },
            );
        }
        if started {
            self.start(id).await?;
        }
        Ok(summary)
    }
}

#[cfg(test)]
mod tests;

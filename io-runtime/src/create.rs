//! Creating a `.torrent` from files on disk: walking, hashing on all cores, and handing the
//! result to [`rain_proto::metainfo::TorrentSpec`], which does the encoding.
//!
//! The layout follows rain (`rain torrent create`) and mktorrent, so the same directory and
//! piece length give the same info-hash as theirs:
//! - one regular file: a single-file torrent named after it;
//! - one directory: a multi-file torrent named after it, paths relative to it;
//! - several paths: `root` and `name` are required, paths are relative to `root`.
//!
//! Directories are walked depth first with entries in byte order of their names, and files are
//! concatenated in that order.

use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, mpsc};
use std::thread;

use rain_proto::hash::sha1;
use rain_proto::metainfo::create::PIECE_LENGTH_MULTIPLE;
use rain_proto::metainfo::{TorrentSpec, auto_piece_length};

/// Deepest directory nesting walked; it also stops symlink loops.
pub const MAX_WALK_DEPTH: usize = 64;

/// What to put in a new torrent.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Files and directories to include.
    pub paths: Vec<PathBuf>,
    /// Base that paths are made relative to; required with several paths.
    pub root: Option<PathBuf>,
    /// Torrent name; defaults to the base name of the single path.
    pub name: Option<String>,
    /// Piece length in bytes (a multiple of 16 KiB); `None` picks rain's automatic length.
    pub piece_length: Option<u32>,
    /// BEP 27 private flag.
    pub private: bool,
    /// Tracker tiers.
    pub trackers: Vec<Vec<String>>,
    /// WebSeed URLs.
    pub webseeds: Vec<String>,
    /// `comment`.
    pub comment: Option<String>,
    /// `source`.
    pub source: Option<String>,
    /// `created by`.
    pub created_by: Option<String>,
    /// `creation date` in Unix seconds; `None` leaves it out, which keeps output reproducible.
    pub creation_date: Option<i64>,
    /// Hashing threads; 0 uses every core.
    pub threads: usize,
}

/// Why a torrent could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// Reading a file or directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// No paths given.
    #[error("no files given")]
    NoPaths,
    /// Several paths without `root` and `name`.
    #[error("several files need both a root (--root) and a name (--name)")]
    NeedRootAndName,
    /// A path outside `root`.
    #[error("{0} is not inside the root directory")]
    OutsideRoot(PathBuf),
    /// The paths hold no regular file.
    #[error("no files found to add")]
    Empty,
    /// A piece length that is zero or not a multiple of 16 KiB.
    #[error("piece length must be a positive multiple of 16 KiB, got {0} bytes")]
    PieceLength(u32),
    /// A name that is not valid UTF-8.
    #[error("{0} is not valid UTF-8")]
    NotUtf8(PathBuf),
    /// Directories nest deeper than [`MAX_WALK_DEPTH`] (or a symlink loop).
    #[error("{0}: directories nest too deep (symlink loop?)")]
    TooDeep(PathBuf),
    /// A file changed size while it was being hashed.
    #[error("{0} changed while hashing")]
    Changed(PathBuf),
}

/// A file found by the walk.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    disk: PathBuf,
    components: Vec<String>,
    length: u64,
}

/// Builds the torrent and returns its bytes.
pub fn create_torrent(opts: &CreateOptions) -> Result<Vec<u8>, CreateError> {
    Ok(build_spec(opts)?.to_bytes())
}

/// Walks, hashes and returns the spec (before encoding).
pub fn build_spec(opts: &CreateOptions) -> Result<TorrentSpec, CreateError> {
    let (name, single, entries) = layout(opts)?;
    let total: u64 = entries.iter().map(|e| e.length).sum();
    let piece_length = match opts.piece_length {
        Some(l) if l == 0 || l % PIECE_LENGTH_MULTIPLE != 0 => {
            return Err(CreateError::PieceLength(l));
        }
        Some(l) => l,
        None => auto_piece_length(total),
    };
    let threads = if opts.threads == 0 {
        thread::available_parallelism().map_or(1, usize::from)
    } else {
        opts.threads
    };
    let pieces = hash_pieces(&entries, piece_length as usize, threads)?;
    let files = if single {
        None
    } else {
        Some(
            entries
                .iter()
                .map(|e| (e.components.clone(), e.length))
                .collect(),
        )
    };
    Ok(TorrentSpec {
        name,
        piece_length,
        pieces,
        files,
        single_length: total,
        private: opts.private,
        source: opts.source.clone(),
        trackers: opts.trackers.clone(),
        webseeds: opts.webseeds.clone(),
        comment: opts.comment.clone(),
        created_by: opts.created_by.clone(),
        creation_date: opts.creation_date,
    })
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CreateError + '_ {
    move |source| CreateError::Io {
        path: path.to_owned(),
        source,
    }
}

fn base_name(path: &Path) -> Result<String, CreateError> {
    let canonical = fs::canonicalize(path).map_err(io_err(path))?;
    let name = canonical.file_name().unwrap_or(canonical.as_os_str());
    name.to_str()
        .map(str::to_owned)
        .ok_or_else(|| CreateError::NotUtf8(path.to_owned()))
}

/// Decides single/multi-file, the name, and the ordered file list.
fn layout(opts: &CreateOptions) -> Result<(String, bool, Vec<Entry>), CreateError> {
    let first = opts.paths.first().ok_or(CreateError::NoPaths)?;
    if opts.paths.len() == 1 && opts.root.is_none() {
        let meta = fs::metadata(first).map_err(io_err(first))?;
        let name = match &opts.name {
            Some(n) => n.clone(),
            None => base_name(first)?,
        };
        if meta.is_file() {
            let entry = Entry {
                disk: first.clone(),
                components: vec![name.clone()],
                length: meta.len(),
            };
            return Ok((name, true, vec![entry]));
        }
        let mut entries = Vec::new();
        walk(first, &mut Vec::new(), &mut entries, 0)?;
        return non_empty(name, entries);
    }
    let (Some(root), Some(name)) = (&opts.root, &opts.name) else {
        return Err(CreateError::NeedRootAndName);
    };
    let mut entries = Vec::new();
    for path in &opts.paths {
        let relative = path
            .strip_prefix(root)
            .map_err(|_| CreateError::OutsideRoot(path.clone()))?;
        let mut prefix = Vec::new();
        for c in relative.components() {
            match c {
                Component::Normal(s) => {
                    prefix.push(
                        s.to_str()
                            .ok_or_else(|| CreateError::NotUtf8(path.clone()))?
                            .to_owned(),
                    );
                }
                Component::CurDir => {}
                _ => return Err(CreateError::OutsideRoot(path.clone())),
            }
        }
        let meta = fs::metadata(path).map_err(io_err(path))?;
        if meta.is_file() {
            if prefix.is_empty() {
                return Err(CreateError::OutsideRoot(path.clone()));
            }
            entries.push(Entry {
                disk: path.clone(),
                components: prefix,
                length: meta.len(),
            });
        } else {
            walk(path, &mut prefix, &mut entries, 0)?;
        }
    }
    non_empty(name.clone(), entries)
}

fn non_empty(name: String, entries: Vec<Entry>) -> Result<(String, bool, Vec<Entry>), CreateError> {
    if entries.is_empty() {
        return Err(CreateError::Empty);
    }
    Ok((name, false, entries))
}

fn walk(
    dir: &Path,
    prefix: &mut Vec<String>,
    out: &mut Vec<Entry>,
    depth: usize,
) -> Result<(), CreateError> {
    if depth > MAX_WALK_DEPTH {
        return Err(CreateError::TooDeep(dir.to_owned()));
    }
    let mut children = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        children.push(entry.path());
    }
    children.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    for path in children {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| CreateError::NotUtf8(path.clone()))?;
        let meta = fs::metadata(&path).map_err(io_err(&path))?;
        prefix.push(name.to_owned());
        if meta.is_dir() {
            walk(&path, prefix, out, depth + 1)?;
        } else if meta.is_file() {
            out.push(Entry {
                disk: path.clone(),
                components: prefix.clone(),
                length: meta.len(),
            });
        }
        prefix.pop();
    }
    Ok(())
}

/// Reads the files as one stream on this thread and hashes pieces on `threads` workers.
/// Buffers are recycled, so memory stays at about `3 × threads` pieces.
fn hash_pieces(
    entries: &[Entry],
    piece_length: usize,
    threads: usize,
) -> Result<Vec<[u8; 20]>, CreateError> {
    let total: u64 = entries.iter().map(|e| e.length).sum();
    let count = total.div_ceil(piece_length as u64) as usize;
    let mut hashes = vec![[0u8; 20]; count];
    let (work_tx, work_rx) = mpsc::sync_channel::<(usize, Vec<u8>)>(threads * 2);
    let work_rx = Mutex::new(work_rx);
    let (done_tx, done_rx) = mpsc::channel::<(usize, [u8; 20], Vec<u8>)>();
    thread::scope(|s| {
        for _ in 0..threads {
            let done_tx = done_tx.clone();
            let work_rx = &work_rx;
            s.spawn(move || {
                loop {
                    let job = work_rx.lock().expect("hash queue lock").recv();
                    let Ok((index, buf)) = job else { break };
                    let digest = sha1(&buf);
                    if done_tx.send((index, digest, buf)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        let mut free: Vec<Vec<u8>> = Vec::new();
        let mut record = |(index, digest, buf): (usize, [u8; 20], Vec<u8>),
                          free: &mut Vec<Vec<u8>>| {
            hashes[index] = digest;
            free.push(buf);
        };
        let result = read_pieces(entries, piece_length, |index, fill| {
            while let Ok(done) = done_rx.try_recv() {
                record(done, &mut free);
            }
            let mut buf = free
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(piece_length));
            buf.clear();
            fill(&mut buf)?;
            work_tx
                .send((index, buf))
                .expect("hash workers outlive the reader");
            Ok(())
        });
        drop(work_tx);
        for done in done_rx {
            record(done, &mut free);
        }
        result
    })?;
    Ok(hashes)
}

type Fill<'a> = dyn FnMut(&mut Vec<u8>) -> Result<(), CreateError> + 'a;

/// Calls `piece(index, fill)` for each piece in order; `fill` appends that piece's bytes.
fn read_pieces(
    entries: &[Entry],
    piece_length: usize,
    mut piece: impl FnMut(usize, &mut Fill<'_>) -> Result<(), CreateError>,
) -> Result<(), CreateError> {
    let mut files = entries.iter();
    let mut current: Option<(&Entry, fs::File, u64)> = None;
    let total: u64 = entries.iter().map(|e| e.length).sum();
    let count = total.div_ceil(piece_length as u64) as usize;
    for index in 0..count {
        let want = (total - index as u64 * piece_length as u64).min(piece_length as u64) as usize;
        let mut fill = |buf: &mut Vec<u8>| -> Result<(), CreateError> {
            buf.resize(want, 0);
            let mut at = 0;
            while at < want {
                if current.as_ref().is_none_or(|(_, _, left)| *left == 0) {
                    let e = files
                        .next()
                        .ok_or(CreateError::Changed(PathBuf::from("(end of files)")))?;
                    let f = fs::File::open(&e.disk).map_err(io_err(&e.disk))?;
                    current = Some((e, f, e.length));
                    continue;
                }
                let (e, f, left) = current.as_mut().expect("open file");
                let n = ((want - at) as u64).min(*left) as usize;
                match f.read(&mut buf[at..at + n]) {
                    Ok(0) => return Err(CreateError::Changed(e.disk.clone())),
                    Ok(k) => {
                        at += k;
                        *left -= k as u64;
                    }
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => {
                        return Err(CreateError::Io {
                            path: e.disk.clone(),
                            source: err,
                        });
                    }
                }
            }
            Ok(())
        };
        piece(index, &mut fill)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rain_proto::metainfo::{Limits, Metainfo};

    use super::*;

    fn write(path: &Path, len: usize, seed: u8) -> Vec<u8> {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let data: Vec<u8> = (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect();
        fs::write(path, &data).unwrap();
        data
    }

    #[test]
    fn directory_torrent_hashes_the_concatenated_stream() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("album");
        let mut stream = Vec::new();
        // Walk order is by name within each directory.
        stream.extend(write(&top.join("a.bin"), 40_000, 1));
        stream.extend(write(&top.join("b/c.bin"), 1, 2));
        stream.extend(write(&top.join("b/d.bin"), 70_000, 3));
        stream.extend(write(&top.join("e.bin"), 0, 4));
        for threads in [1, 3] {
            let opts = CreateOptions {
                paths: vec![top.clone()],
                piece_length: Some(32768),
                trackers: vec![vec!["http://t/announce".into()]],
                threads,
                ..CreateOptions::default()
            };
            let m =
                Metainfo::from_bytes(&create_torrent(&opts).unwrap(), &Limits::default()).unwrap();
            assert_eq!(m.info.name, "album");
            let paths: Vec<String> = m.info.files.iter().map(|f| f.path.join("/")).collect();
            assert_eq!(paths, ["a.bin", "b/c.bin", "b/d.bin", "e.bin"]);
            let want: Vec<[u8; 20]> = stream.chunks(32768).map(sha1).collect();
            assert_eq!(m.info.pieces, want, "threads={threads}");
        }
    }

    #[test]
    fn single_file_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("one.iso");
        let data = write(&file, 100_000, 9);
        let opts = CreateOptions {
            paths: vec![file.clone()],
            ..CreateOptions::default()
        };
        let m = Metainfo::from_bytes(&create_torrent(&opts).unwrap(), &Limits::default()).unwrap();
        assert!(!m.info.multi_file);
        assert_eq!(
            (m.info.name.as_str(), m.info.total_length),
            ("one.iso", 100_000)
        );
        assert_eq!(m.info.piece_length, 32 * 1024, "automatic piece length");
        assert_eq!(m.info.pieces[3], sha1(&data[3 * 32768..]));

        let bad = CreateOptions {
            piece_length: Some(1000),
            ..opts.clone()
        };
        assert!(matches!(
            create_torrent(&bad),
            Err(CreateError::PieceLength(1000))
        ));
        let two = CreateOptions {
            paths: vec![file.clone(), file.clone()],
            ..CreateOptions::default()
        };
        assert!(matches!(
            create_torrent(&two),
            Err(CreateError::NeedRootAndName)
        ));
        let missing = CreateOptions {
            paths: vec![dir.path().join("nope")],
            ..CreateOptions::default()
        };
        assert!(matches!(
            create_torrent(&missing),
            Err(CreateError::Io { .. })
        ));
        fs::create_dir(dir.path().join("empty")).unwrap();
        let empty = CreateOptions {
            paths: vec![dir.path().join("empty")],
            ..CreateOptions::default()
        };
        assert!(matches!(create_torrent(&empty), Err(CreateError::Empty)));
        assert!(matches!(
            create_torrent(&CreateOptions::default()),
            Err(CreateError::NoPaths)
        ));
    }

    #[test]
    fn several_paths_under_a_root() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("x/1.txt"), 10, 1);
        write(&dir.path().join("y.txt"), 10, 2);
        let opts = CreateOptions {
            paths: vec![dir.path().join("y.txt"), dir.path().join("x")],
            root: Some(dir.path().to_owned()),
            name: Some("bundle".into()),
            ..CreateOptions::default()
        };
        let m = Metainfo::from_bytes(&create_torrent(&opts).unwrap(), &Limits::default()).unwrap();
        let paths: Vec<String> = m.info.files.iter().map(|f| f.path.join("/")).collect();
        assert_eq!(paths, ["y.txt", "x/1.txt"], "given order, then walk order");
        let outside = CreateOptions {
            paths: vec![PathBuf::from("/etc")],
            ..opts
        };
        assert!(matches!(
            create_torrent(&outside),
            Err(CreateError::OutsideRoot(_))
        ));
    }
}

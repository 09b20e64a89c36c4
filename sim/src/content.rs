//! Torrent payloads generated from a seed: random total size, piece length and file layout,
//! written to a source directory and made into a `.torrent` by the runtime's own creator.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rain_proto::InfoHash;
use rain_proto::magnet::Magnet;
use rain_proto::metainfo::{Limits, Metainfo};
use rain_proto::rng::{Rng, Seed};
use rain_runtime::create::{CreateOptions, create_torrent};
use rain_runtime::storage::{FileCache, FileStorage};
use rain_runtime::verify::{VerifyOptions, verify};

/// The shape of a torrent: its files and piece length (the bytes come from the seed).
#[derive(Clone, PartialEq, Eq)]
pub struct ContentSpec {
    /// The torrent name.
    pub name: String,
    /// `None` for a single-file torrent; otherwise each file's path below the name.
    pub paths: Option<Vec<Vec<String>>>,
    /// Each file's length (one entry for a single-file torrent).
    pub lengths: Vec<u64>,
    /// Piece length, a multiple of 16 KiB.
    pub piece_length: u32,
    /// Seed of the payload bytes.
    pub seed: u64,
}

impl fmt::Debug for ContentSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} files, lengths {:?} (total {}), piece length {} KiB{}",
            self.lengths.len(),
            self.lengths,
            self.total_len(),
            self.piece_length / 1024,
            if self.paths.is_none() {
                ", single-file"
            } else {
                ""
            }
        )
    }
}

impl ContentSpec {
    /// A random layout from `seed`: 1–`max_files` files totalling at most `max_total` bytes
    /// (at least one byte), a piece length of 16–256 KiB. Files may be empty.
    pub fn random(seed: u64, max_total: u64, max_files: usize) -> Self {
        Self::random_between(seed, 1, max_total, max_files)
    }

    /// Like [`ContentSpec::random`] with a total of `min_total..=max_total` bytes.
    pub fn random_between(seed: u64, min_total: u64, max_total: u64, max_files: usize) -> Self {
        let mut rng = Rng::new(Seed::from_u64(seed ^ 0x636f_6e74_656e_7400));
        let min_total = min_total.max(1);
        let total = min_total + rng.below(max_total.saturating_sub(min_total) + 1);
        let piece_length = (16 * 1024) << rng.below(5);
        let files = 1 + rng.below(max_files.max(1) as u64) as usize;
        let single = files == 1 && rng.below(2) == 0;
        // Cut `total` at `files - 1` random points (duplicates allowed: empty files happen).
        let mut cuts: Vec<u64> = (1..files).map(|_| rng.below(total + 1)).collect();
        cuts.sort_unstable();
        let mut lengths = Vec::with_capacity(files);
        let mut prev = 0;
        for c in cuts.into_iter().chain([total]) {
            lengths.push(c - prev);
            prev = c;
        }
        let paths = (!single).then(|| {
            (0..files)
                .map(|i| {
                    if i % 3 == 2 {
                        vec![format!("dir{}", i / 3), format!("f{i}.bin")]
                    } else {
                        vec![format!("f{i}.bin")]
                    }
                })
                .collect()
        });
        ContentSpec {
            name: format!("payload-{:x}", seed & 0xffff),
            paths,
            lengths,
            piece_length,
            seed,
        }
    }

    /// A single file of `len` bytes with pieces of `piece_length`.
    pub fn single(seed: u64, len: u64, piece_length: u32) -> Self {
        ContentSpec {
            name: format!("payload-{:x}.bin", seed & 0xffff),
            paths: None,
            lengths: vec![len],
            piece_length,
            seed,
        }
    }

    /// The payload size.
    pub fn total_len(&self) -> u64 {
        self.lengths.iter().sum()
    }

    /// Each file's path relative to a storage root (`<name>` or `<name>/<path…>`).
    pub fn relative_paths(&self) -> Vec<PathBuf> {
        match &self.paths {
            None => vec![PathBuf::from(&self.name)],
            Some(paths) => paths
                .iter()
                .map(|p| {
                    p.iter()
                        .fold(PathBuf::from(&self.name), |acc, c| acc.join(c))
                })
                .collect(),
        }
    }

    /// Writes the payload below `root` and builds the torrent from it (naming no tracker and
    /// no webseed).
    pub fn materialize(&self, root: &Path) -> io::Result<Content> {
        self.materialize_with(root, &[], &[])
    }

    /// Like [`ContentSpec::materialize`], with `trackers` (one tier each) as the torrent's
    /// announce URLs and `webseeds` as its `url-list`, both named in its magnet link too. The
    /// info-hash does not depend on them.
    pub fn materialize_with(
        &self,
        root: &Path,
        trackers: &[String],
        webseeds: &[String],
    ) -> io::Result<Content> {
        let mut rng = Rng::new(Seed::from_u64(self.seed));
        let mut files = Vec::new();
        for (rel, &len) in self.relative_paths().into_iter().zip(&self.lengths) {
            let mut bytes = vec![0u8; len as usize];
            rng.fill(&mut bytes);
            let path = root.join(&rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, &bytes)?;
            files.push((rel, bytes));
        }
        let opts = CreateOptions {
            paths: vec![root.join(&self.name)],
            piece_length: Some(self.piece_length),
            threads: 1,
            trackers: trackers.iter().map(|t| vec![t.clone()]).collect(),
            webseeds: webseeds.to_vec(),
            ..CreateOptions::default()
        };
        let torrent = create_torrent(&opts).map_err(io::Error::other)?;
        let mi = Metainfo::from_bytes(&torrent, &Limits::default()).map_err(io::Error::other)?;
        Ok(Content {
            spec: self.clone(),
            info_hash: mi.info_hash,
            pieces: mi.info.piece_count(),
            torrent,
            files,
            trackers: trackers.to_vec(),
            webseeds: webseeds.to_vec(),
        })
    }
}

/// A generated torrent with its payload.
#[derive(Clone)]
pub struct Content {
    /// What it was generated from.
    pub spec: ContentSpec,
    /// The `.torrent` bytes.
    pub torrent: Vec<u8>,
    /// The info-hash.
    pub info_hash: InfoHash,
    /// Number of pieces.
    pub pieces: u32,
    /// Each file's path relative to a storage root and its bytes.
    pub files: Vec<(PathBuf, Vec<u8>)>,
    /// The announce URLs the torrent and the magnet link name.
    pub trackers: Vec<String>,
    /// The webseed URLs the torrent and the magnet link name.
    pub webseeds: Vec<String>,
}

impl fmt::Debug for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Content")
            .field("spec", &self.spec)
            .field("info_hash", &self.info_hash.to_hex())
            .field("pieces", &self.pieces)
            .finish_non_exhaustive()
    }
}

impl Content {
    /// A magnet link with the info-hash, the name, the trackers and the webseeds, if any
    /// (metadata must come from peers).
    pub fn magnet(&self) -> String {
        Magnet {
            info_hash: self.info_hash,
            btmh: None,
            name: Some(self.spec.name.clone()),
            trackers: self.trackers.iter().map(|t| vec![t.clone()]).collect(),
            webseeds: self.webseeds.clone(),
            peers: Vec::new(),
            select_only: Vec::new(),
        }
        .to_string()
    }

    /// The payload as a webseed serves it: URL path below `base` (ending in `/`) → bytes,
    /// laid out as BEP 19 asks (`base` + name, and + each file's path for a multi-file
    /// torrent), each segment percent-decoded as the server will see it.
    pub fn web_files(&self, base: &str) -> std::collections::BTreeMap<String, Vec<u8>> {
        self.files
            .iter()
            .map(|(rel, bytes)| {
                let segments: Vec<String> = rel
                    .iter()
                    .map(|c| c.to_string_lossy().into_owned())
                    .collect();
                (format!("{base}{}", segments.join("/")), bytes.clone())
            })
            .collect()
    }

    /// Copies the payload below `root` (a seeder's storage root).
    pub fn write_to(&self, root: &Path) -> io::Result<()> {
        for (rel, bytes) in &self.files {
            let path = root.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, bytes)?;
        }
        Ok(())
    }

    /// Which pieces are intact below `root`, by their hashes in the torrent (a missing or
    /// short file leaves its pieces not intact).
    pub fn intact_pieces(&self, root: &Path) -> io::Result<Vec<bool>> {
        let mi =
            Metainfo::from_bytes(&self.torrent, &Limits::default()).map_err(io::Error::other)?;
        let storage = FileStorage::new(
            &mi.info,
            root.to_owned(),
            0o750,
            Arc::new(FileCache::new(8)),
        )
        .map_err(io::Error::other)?;
        let opts = VerifyOptions {
            threads: 1,
            only: None,
            cancel: None,
        };
        verify(&storage, &mi.info.pieces, &opts, |_| {}).map_err(io::Error::other)
    }

    /// Compares the files below `root` with the payload; `Err` names the first difference.
    pub fn check(&self, root: &Path) -> Result<(), String> {
        for (rel, bytes) in &self.files {
            let path = root.join(rel);
            let got = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            if got.len() != bytes.len() {
                return Err(format!(
                    "{}: {} bytes, want {}",
                    rel.display(),
                    got.len(),
                    bytes.len()
                ));
            }
            if let Some(at) = got.iter().zip(bytes).position(|(a, b)| a != b) {
                return Err(format!("{}: differs at byte {at}", rel.display()));
            }
        }
        Ok(())
    }
}

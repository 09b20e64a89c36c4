use std::collections::{BTreeMap, BTreeSet};

use super::path::{MAX_RENAME_TRIES, numbered, sanitize_component, sanitize_path};
use super::{Error, File, Info, Limits, Metainfo};
use crate::InfoHash;
use crate::bencode::{self, Kind, Value};

impl Metainfo {
    /// Parses and validates a `.torrent` file.
    pub fn from_bytes(data: &[u8], limits: &Limits) -> Result<Metainfo, Error> {
        if data.len() > limits.max_torrent_size {
            return Err(Error::TooLarge {
                size: data.len(),
                limit: limits.max_torrent_size,
            });
        }
        let blimits = bencode::Limits {
            max_depth: limits.max_depth,
            max_size: limits.max_torrent_size,
            strict: false,
            max_tokens: bencode::Limits::DEFAULT_MAX_TOKENS,
        };
        let root = bencode::decode(data, &blimits)?;
        if root.as_dict().is_none() {
            return Err(Error::Invalid("torrent"));
        }
        let info_value = root.get(b"info").ok_or(Error::Missing("info"))?;
        let info_bytes = info_value.raw().to_vec();
        let info_hash = InfoHash::of(&info_bytes);
        let info = Info::from_value(info_value, info_hash, limits)?;
        Ok(Metainfo {
            info_hash,
            info,
            info_bytes,
            trackers: trackers(&root),
            webseeds: webseeds(&root),
            creation_date: root.get(b"creation date").and_then(Value::as_int),
            comment: text(&root, b"comment"),
            created_by: text(&root, b"created by"),
        })
    }
}

impl Info {
    /// Parses the raw bytes of an `info` dictionary, as received with ut_metadata (BEP 9).
    /// The caller has checked that they hash to the info-hash it wanted.
    pub fn from_bytes(info_bytes: &[u8], limits: &Limits) -> Result<Info, Error> {
        if info_bytes.len() > limits.max_torrent_size {
            return Err(Error::TooLarge {
                size: info_bytes.len(),
                limit: limits.max_torrent_size,
            });
        }
        let blimits = bencode::Limits {
            max_depth: limits.max_depth,
            max_size: limits.max_torrent_size,
            strict: false,
            max_tokens: bencode::Limits::DEFAULT_MAX_TOKENS,
        };
        let value = bencode::decode(info_bytes, &blimits)?;
        Info::from_value(&value, InfoHash::of(info_bytes), limits)
    }

    fn from_value(v: &Value<'_>, info_hash: InfoHash, limits: &Limits) -> Result<Info, Error> {
        if v.as_dict().is_none() {
            return Err(Error::Invalid("info"));
        }
        let Some(pieces) = v.get(b"pieces") else {
            if v.get(b"meta version").and_then(Value::as_int) == Some(2) {
                return Err(Error::V2Only);
            }
            return Err(Error::Missing("pieces"));
        };
        let pieces = pieces.as_bytes().ok_or(Error::Invalid("pieces"))?;
        let piece_length = v
            .get(b"piece length")
            .ok_or(Error::Missing("piece length"))?;
        let piece_length = piece_length
            .as_int()
            .ok_or(Error::Invalid("piece length"))?;
        if piece_length <= 0 || piece_length > i64::from(limits.max_piece_length) {
            return Err(Error::PieceLength(piece_length));
        }
        let piece_length = piece_length as u32;
        if pieces.is_empty() || pieces.len() % 20 != 0 {
            return Err(Error::PiecesLength(pieces.len()));
        }
        let count = pieces.len() / 20;
        if count > limits.max_pieces as usize {
            return Err(Error::TooManyPieces {
                count,
                limit: limits.max_pieces,
            });
        }

        let name = match utf8_override(v, b"name.utf-8", b"name") {
            Some(raw) => sanitize_component(raw)?.unwrap_or_else(|| info_hash.to_hex()),
            None => info_hash.to_hex(),
        };
        let (multi_file, mut files) = if let Some(list) = v.get(b"files") {
            (true, multi_files(list)?)
        } else {
            let length = file_length(v.get(b"length").ok_or(Error::Missing("length"))?)?;
            let attr = v.get(b"attr").and_then(Value::as_str).unwrap_or("");
            (
                false,
                vec![file_entry(vec![name.clone()], length, attr, false)],
            )
        };
        let mut offset = 0u64;
        for f in &mut files {
            f.offset = offset;
            offset = offset
                .checked_add(f.length)
                .ok_or(Error::Invalid("length"))?;
        }
        let total_length = offset;
        let capacity = u64::from(piece_length) * count as u64;
        if total_length > capacity || total_length <= capacity - u64::from(piece_length) {
            return Err(Error::LengthMismatch {
                total: total_length,
                pieces: count,
                piece_length,
            });
        }
        if multi_file {
            check_unique(&files)?;
            rename_case_clashes(&mut files)?;
        }
        Ok(Info {
            name,
            piece_length,
            pieces: pieces
                .chunks_exact(20)
                .map(|c| c.try_into().expect("20-byte chunk"))
                .collect(),
            private: v.get(b"private").is_some_and(private_flag),
            source: text(v, b"source"),
            multi_file,
            files,
            total_length,
        })
    }
}

fn multi_files(list: &Value<'_>) -> Result<Vec<File>, Error> {
    let items = list.as_list().ok_or(Error::Invalid("files"))?;
    if items.is_empty() {
        return Err(Error::NoFiles);
    }
    let mut files = Vec::with_capacity(items.len());
    for item in items {
        if item.as_dict().is_none() {
            return Err(Error::Invalid("files"));
        }
        let length = file_length(item.get(b"length").ok_or(Error::Missing("length"))?)?;
        let raw_path = item
            .get(b"path.utf-8")
            .filter(|p| p.as_list().is_some())
            .or_else(|| item.get(b"path"))
            .ok_or(Error::Missing("path"))?;
        let parts = raw_path.as_list().ok_or(Error::Invalid("path"))?;
        let mut components = Vec::with_capacity(parts.len());
        for p in parts {
            components.push(p.as_bytes().ok_or(Error::Invalid("path"))?);
        }
        let attr = item.get(b"attr").and_then(Value::as_str).unwrap_or("");
        let bitcomet_pad = components
            .last()
            .is_some_and(|last| last.starts_with(b"_____padding_file"));
        let path = sanitize_path(components)?;
        files.push(file_entry(path, length, attr, bitcomet_pad));
    }
    Ok(files)
}

fn file_entry(path: Vec<String>, length: u64, attr: &str, bitcomet_pad: bool) -> File {
    File {
        path,
        length,
        offset: 0,
        padding: bitcomet_pad || attr.contains('p'),
        attr: attr.chars().filter(|c| *c != 'p').collect(),
    }
}

fn file_length(v: &Value<'_>) -> Result<u64, Error> {
    v.as_int()
        .and_then(|n| u64::try_from(n).ok())
        .ok_or(Error::Invalid("length"))
}

/// Rule 7 of [`super::path`]: no two real files share a path, and no file sits where another
/// needs a directory.
fn check_unique(files: &[File]) -> Result<(), Error> {
    let mut paths: BTreeSet<&[String]> = BTreeSet::new();
    let mut dirs: BTreeSet<&[String]> = BTreeSet::new();
    for f in files.iter().filter(|f| !f.padding) {
        if !paths.insert(&f.path) || dirs.contains(f.path.as_slice()) {
            return Err(Error::DuplicatePath(f.path.join("/")));
        }
        for n in 1..f.path.len() {
            dirs.insert(&f.path[..n]);
        }
    }
    if let Some(clash) = paths.iter().find(|p| dirs.contains(*p)) {
        return Err(Error::DuplicatePath(clash.join("/")));
    }
    Ok(())
}

/// Rule 8 of [`super::path`]: a file whose path equals an earlier file's, or a directory's,
/// once letter case is ignored gets a numbered name that is free under the same comparison.
/// Runs after [`check_unique`], so the clashes left differ in case only. Directories that
/// differ in case are left alone: on a case-insensitive file system they merge, which loses
/// nothing.
fn rename_case_clashes(files: &mut [File]) -> Result<(), Error> {
    fn fold(path: &[String]) -> Vec<String> {
        path.iter().map(|c| c.to_lowercase()).collect()
    }
    let mut dirs: BTreeSet<Vec<String>> = BTreeSet::new();
    for f in files.iter().filter(|f| !f.padding) {
        let folded = fold(&f.path);
        for n in 1..folded.len() {
            dirs.insert(folded[..n].to_vec());
        }
    }
    // Folded paths that are taken: first every file that keeps its name, then each new name.
    let mut taken: BTreeSet<Vec<String>> = BTreeSet::new();
    let mut clashing = Vec::new();
    for (i, f) in files.iter().enumerate().filter(|(_, f)| !f.padding) {
        let folded = fold(&f.path);
        if dirs.contains(&folded) || !taken.insert(folded) {
            clashing.push(i);
        }
    }
    // The next number to try for each folded path, so a thousand `readme`s cost a thousand
    // tries, not half a million.
    let mut next: BTreeMap<Vec<String>, u32> = BTreeMap::new();
    for i in clashing {
        let path = &mut files[i].path;
        let mut key = fold(path);
        let n = next.entry(key.clone()).or_insert(1);
        let name = path.last().expect("sanitised paths are not empty").clone();
        let mut tries = 0;
        loop {
            if tries == MAX_RENAME_TRIES {
                return Err(Error::DuplicatePath(path.join("/")));
            }
            tries += 1;
            let candidate = numbered(&name, *n);
            *n = n.saturating_add(1);
            *key.last_mut().expect("not empty") = candidate.to_lowercase();
            if !dirs.contains(&key) && taken.insert(key.clone()) {
                *path.last_mut().expect("not empty") = candidate;
                break;
            }
        }
    }
    Ok(())
}

/// BEP 27 `private`, read as rain does: a non-zero integer, or any string but "" and "0";
/// anything else that is present but unreadable counts as private, the safe side.
fn private_flag(v: &Value<'_>) -> bool {
    match v.kind() {
        Kind::Int(i) => *i != 0,
        Kind::Bytes(b) => !b.is_empty() && *b != b"0",
        _ => true,
    }
}

fn utf8_override<'a>(v: &Value<'a>, utf8_key: &[u8], key: &[u8]) -> Option<&'a [u8]> {
    v.get(utf8_key)
        .and_then(Value::as_bytes)
        .or_else(|| v.get(key).and_then(Value::as_bytes))
}

fn text(v: &Value<'_>, key: &[u8]) -> Option<String> {
    v.get(key)
        .and_then(Value::as_bytes)
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

/// `announce-list` tiers, or `announce` as one tier. A URL listed twice, in the same tier or
/// another, stays only where it first appears: a duplicate would be announced to twice as often.
fn trackers(root: &Value<'_>) -> Vec<Vec<String>> {
    let mut seen = BTreeSet::new();
    let tiers: Vec<Vec<String>> = root
        .get(b"announce-list")
        .and_then(Value::as_list)
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_list)
        .map(|tier| {
            tier.iter()
                .filter_map(url)
                .filter(|u| seen.insert(u.clone()))
                .collect::<Vec<_>>()
        })
        .filter(|tier| !tier.is_empty())
        .collect();
    if !tiers.is_empty() {
        return tiers;
    }
    root.get(b"announce")
        .and_then(url)
        .map(|u| vec![vec![u]])
        .unwrap_or_default()
}

/// `url-list` as a string or a list, each URL kept once, in first-seen order.
fn webseeds(root: &Value<'_>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    match root.get(b"url-list") {
        Some(v) if v.as_bytes().is_some() => url(v).into_iter().collect(),
        Some(v) => v
            .as_list()
            .unwrap_or_default()
            .iter()
            .filter_map(url)
            .filter(|u| seen.insert(u.clone()))
            .collect(),
        None => Vec::new(),
    }
}

/// A URL with surrounding whitespace trimmed (torrent makers leave spaces and newlines around
/// pasted URLs); `None` for a non-UTF-8 or empty one.
fn url(v: &Value<'_>) -> Option<String> {
    let s = v.as_str()?.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

//! `rain torrent show|infohash|create`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rain_proto::InfoHash;
use rain_proto::bencode::{self, Kind, Value};
use rain_proto::metainfo;
use rain_runtime::create::{CreateOptions, create_torrent};
use serde_json::{Map, Value as Json};

use crate::cli::{CliError, CreateArgs};
use crate::expand_env;

fn failed(msg: impl std::fmt::Display) -> CliError {
    CliError::Failed(msg.to_string())
}

fn write_out(out: &mut dyn Write, text: &str) -> Result<(), CliError> {
    out.write_all(text.as_bytes())
        .map_err(|e| failed(format!("cannot write output: {e}")))
}

/// Reads a .torrent file, refusing files above `max-torrent-size` before reading them whole.
fn read_torrent(path: &Path) -> Result<Vec<u8>, CliError> {
    let limit = metainfo::Limits::default().max_torrent_size;
    let meta = std::fs::metadata(path)
        .map_err(|e| failed(format!("cannot read {}: {e}", path.display())))?;
    if meta.is_dir() {
        return Err(failed(format!(
            "cannot read {}: is a directory",
            path.display()
        )));
    }
    if meta.len() > limit as u64 {
        return Err(failed(format!(
            "{}: file is larger than the {limit}-byte torrent limit",
            path.display()
        )));
    }
    std::fs::read(path).map_err(|e| failed(format!("cannot read {}: {e}", path.display())))
}

fn decode_root<'a>(path: &Path, data: &'a [u8]) -> Result<Value<'a>, CliError> {
    let root = bencode::decode(data, &bencode::Limits::lenient()).map_err(|e| {
        failed(format!(
            "{} is not a torrent file: invalid bencode: {e}",
            path.display()
        ))
    })?;
    if root.as_dict().is_none() {
        return Err(failed(format!(
            "{} is not a torrent file: not a dictionary",
            path.display()
        )));
    }
    Ok(root)
}

/// `rain torrent show`: the whole file as JSON, with `info.pieces` elided as rain does.
pub fn show(path: &Path, out: &mut dyn Write) -> Result<(), CliError> {
    let data = read_torrent(path)?;
    let root = decode_root(path, &data)?;
    let mut json = to_json(&root);
    if let Some(Json::Object(info)) = json.get_mut("info")
        && let Some(Json::String(_)) = info.get("pieces")
    {
        let n = root
            .get(b"info")
            .and_then(|i| i.get(b"pieces"))
            .and_then(Value::as_bytes)
            .map_or(0, <[u8]>::len);
        info.insert(
            "pieces".into(),
            Json::String(format!("<<< {n} bytes of data >>>")),
        );
    }
    let text = serde_json::to_string_pretty(&json).map_err(failed)?;
    write_out(out, &format!("{text}\n"))
}

fn to_json(v: &Value<'_>) -> Json {
    match v.kind() {
        Kind::Int(i) => Json::from(*i),
        Kind::Bytes(b) => Json::String(String::from_utf8_lossy(b).into_owned()),
        Kind::List(items) => Json::Array(items.iter().map(to_json).collect()),
        Kind::Dict(d) => {
            let mut map = Map::new();
            for (k, v) in d.iter() {
                map.entry(String::from_utf8_lossy(k).into_owned())
                    .or_insert_with(|| to_json(v));
            }
            Json::Object(map)
        }
    }
}

/// `rain torrent infohash`: SHA-1 of the raw `info` value.
pub fn infohash(path: &Path, out: &mut dyn Write) -> Result<(), CliError> {
    let data = read_torrent(path)?;
    let root = decode_root(path, &data)?;
    let info = root.get(b"info").filter(|i| i.as_dict().is_some());
    let info = info.ok_or_else(|| {
        failed(format!(
            "{} is not a torrent file: no info dictionary",
            path.display()
        ))
    })?;
    write_out(out, &format!("{}\n", InfoHash::of(info.raw())))
}

/// `rain torrent create`.
pub fn create(args: &CreateArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let piece_length = match args.piece_length {
        None => None,
        Some(kib)
            if kib > 0 && kib % 16 == 0 && kib <= metainfo::Limits::MAX_PIECE_LENGTH / 1024 =>
        {
            Some(kib * 1024)
        }
        Some(kib) => {
            return Err(failed(format!(
                "piece length must be a positive multiple of 16 KiB, got {kib}"
            )));
        }
    };
    let creation_date = if args.no_creation_date {
        None
    } else if let Some(d) = args.creation_date {
        Some(d)
    } else if let Some(epoch) = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .filter(|s| !s.is_empty())
    {
        Some(
            epoch
                .parse()
                .map_err(|_| failed(format!("SOURCE_DATE_EPOCH is not a number: {epoch}")))?,
        )
    } else {
        Some(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
        )
    };
    let opts = CreateOptions {
        paths: args
            .files
            .iter()
            .map(|f| PathBuf::from(expand_env(f)))
            .collect(),
        root: args.root.as_deref().map(|r| PathBuf::from(expand_env(r))),
        name: args.name.clone(),
        piece_length,
        private: args.private,
        trackers: args.trackers.iter().map(|t| vec![t.clone()]).collect(),
        webseeds: args.webseeds.clone(),
        comment: args.comment.clone(),
        source: args.source.clone(),
        created_by: Some(format!("Rain {}", env!("CARGO_PKG_VERSION"))),
        creation_date,
        threads: 0,
    };
    let bytes = create_torrent(&opts).map_err(|e| failed(format!("cannot create torrent: {e}")))?;
    let out_path = PathBuf::from(expand_env(&args.out));
    std::fs::write(&out_path, &bytes)
        .map_err(|e| failed(format!("cannot write {}: {e}", out_path.display())))?;
    let m = metainfo::Metainfo::from_bytes(&bytes, &metainfo::Limits::default())
        .map_err(|e| failed(format!("created torrent does not read back: {e}")))?;
    write_out(
        out,
        &format!(
            "{}: {} ({} files, {} bytes, {} pieces of {} KiB)\n",
            out_path.display(),
            m.info_hash,
            m.info.files.len(),
            m.info.total_length,
            m.info.piece_count(),
            m.info.piece_length / 1024
        ),
    )
}

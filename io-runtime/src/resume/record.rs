//! What the resume database stores for each torrent (reference/rain-behaviour.md §6.12), and
//! its encoding.
//!
//! A torrent's record is kept in three values under its id, so the frequent writes stay small:
//! - the metadata ([`TorrentRecord`] minus `info` and `progress`), MessagePack with field
//!   names (`rmp-serde`), carrying [`RECORD_VERSION`] for future migrations; fields added later
//!   take `#[serde(default)]` so older records still decode;
//! - the `info` dictionary, raw bencode exactly as received (it is hashed, so it is kept
//!   byte for byte; it can be megabytes and is written once);
//! - the [`Progress`] (bitfield and counters), MessagePack, rewritten every
//!   `resume-write-interval`.

use std::time::Duration;

use rain_proto::InfoHash;
use serde::{Deserialize, Serialize};

/// Version of the stored record layout. Bump it when a change needs a migration; records
/// with a higher version (written by a newer rain) are refused rather than misread.
pub const RECORD_VERSION: u32 = 1;

/// Everything stored for one torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorrentRecord {
    /// The info-hash.
    pub info_hash: InfoHash,
    /// The torrent's listen port (drawn from `port-begin..port-end`, reused after restart).
    pub port: u16,
    /// Initial or display name.
    pub name: String,
    /// Tracker tiers.
    pub trackers: Vec<Vec<String>>,
    /// WebSeed URLs (`url-list`).
    pub url_list: Vec<String>,
    /// Peers added by hand, as `host:port`.
    pub fixed_peers: Vec<String>,
    /// The raw bencoded `info` dictionary; empty for a magnet until metadata arrives.
    pub info: Vec<u8>,
    /// Bitfield and counters, the part written often.
    pub progress: Progress,
    /// When the torrent was added, in Unix seconds.
    pub added_at: i64,
    /// Whether the torrent was running (started again at startup with `resume-on-startup`).
    pub started: bool,
    /// Stop once the download completes.
    pub stop_after_download: bool,
    /// Stop once metadata arrives.
    pub stop_after_metadata: bool,
    /// The `on-complete-cmd` hook has run for this torrent.
    pub complete_cmd_run: bool,
    /// Download pieces in order.
    pub sequential: bool,
    /// Version of the metainfo parser that read `info` (rain's `version` key; 1 when absent,
    /// 3 is rain's latest).
    pub parser_version: u32,
}

/// The frequently written part of a torrent's record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Pieces known complete, MSB-first, spare bits zero. `None` when unknown (never verified,
    /// or a verification was requested): the next start verifies the data.
    #[serde(default, with = "serde_bytes")]
    pub bitfield: Option<Vec<u8>>,
    /// Bytes downloaded (payload), all sessions together.
    #[serde(default)]
    pub bytes_downloaded: u64,
    /// Bytes uploaded (payload).
    #[serde(default)]
    pub bytes_uploaded: u64,
    /// Bytes downloaded and discarded (failed hash checks).
    #[serde(default)]
    pub bytes_wasted: u64,
    /// Time spent seeding.
    #[serde(default)]
    pub seeded_for: Duration,
}

/// The stored form of the metadata part.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StoredMeta {
    pub record_version: u32,
    #[serde(with = "serde_bytes")]
    pub info_hash: Vec<u8>,
    pub port: u16,
    pub name: String,
    #[serde(default)]
    pub trackers: Vec<Vec<String>>,
    #[serde(default)]
    pub url_list: Vec<String>,
    #[serde(default)]
    pub fixed_peers: Vec<String>,
    #[serde(default)]
    pub added_at: i64,
    #[serde(default)]
    pub started: bool,
    #[serde(default)]
    pub stop_after_download: bool,
    #[serde(default)]
    pub stop_after_metadata: bool,
    #[serde(default)]
    pub complete_cmd_run: bool,
    #[serde(default)]
    pub sequential: bool,
    #[serde(default = "default_parser_version")]
    pub parser_version: u32,
}

fn default_parser_version() -> u32 {
    1
}

/// Why a stored value could not be turned back into a record.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes are not the expected MessagePack.
    #[error("undecodable value: {0}")]
    MessagePack(#[from] rmp_serde::decode::Error),
    /// A record written by a newer rain.
    #[error("record version {0} is newer than this program understands")]
    NewerVersion(u32),
    /// An info-hash that is not 20 bytes.
    #[error("info-hash is {0} bytes, not 20")]
    InfoHash(usize),
    /// The stored `info` dictionary does not hash to the stored info-hash (a damaged or
    /// tampered record: trusting it would serve and verify against the wrong torrent).
    #[error("info dictionary does not hash to the info-hash")]
    InfoMismatch,
}

impl StoredMeta {
    pub(crate) fn from_record(r: &TorrentRecord) -> Self {
        StoredMeta {
            record_version: RECORD_VERSION,
            info_hash: r.info_hash.0.to_vec(),
            port: r.port,
            name: r.name.clone(),
            trackers: r.trackers.clone(),
            url_list: r.url_list.clone(),
            fixed_peers: r.fixed_peers.clone(),
            added_at: r.added_at,
            started: r.started,
            stop_after_download: r.stop_after_download,
            stop_after_metadata: r.stop_after_metadata,
            complete_cmd_run: r.complete_cmd_run,
            sequential: r.sequential,
            parser_version: r.parser_version,
        }
    }

    pub(crate) fn encode(&self) -> Result<Vec<u8>, rmp_serde::encode::Error> {
        rmp_serde::to_vec_named(self)
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let meta: StoredMeta = rmp_serde::from_slice(bytes)?;
        if meta.record_version > RECORD_VERSION {
            return Err(DecodeError::NewerVersion(meta.record_version));
        }
        if meta.info_hash.len() != 20 {
            return Err(DecodeError::InfoHash(meta.info_hash.len()));
        }
        Ok(meta)
    }

    /// The whole record, once `info` (empty for a magnet without metadata) is checked
    /// against the info-hash.
    pub(crate) fn into_record(
        self,
        info: Vec<u8>,
        progress: Progress,
    ) -> Result<TorrentRecord, DecodeError> {
        let mut hash = [0; 20];
        hash.copy_from_slice(&self.info_hash);
        if !info.is_empty() && InfoHash::of(&info) != InfoHash(hash) {
            return Err(DecodeError::InfoMismatch);
        }
        Ok(TorrentRecord {
            info_hash: InfoHash(hash),
            port: self.port,
            name: self.name,
            trackers: self.trackers,
            url_list: self.url_list,
            fixed_peers: self.fixed_peers,
            info,
            progress,
            added_at: self.added_at,
            started: self.started,
            stop_after_download: self.stop_after_download,
            stop_after_metadata: self.stop_after_metadata,
            complete_cmd_run: self.complete_cmd_run,
            sequential: self.sequential,
            parser_version: self.parser_version,
        })
    }
}

/// A record from its three stored values (the metadata, the raw `info` dictionary, empty for
/// a magnet without metadata, and the progress if one was written): how a record is read
/// back, whatever wrote the bytes.
pub fn decode_record(
    meta: &[u8],
    info: Vec<u8>,
    progress: Option<&[u8]>,
) -> Result<TorrentRecord, DecodeError> {
    let meta = StoredMeta::decode(meta)?;
    let progress = progress
        .map(Progress::decode)
        .transpose()?
        .unwrap_or_default();
    meta.into_record(info, progress)
}

/// The stored values of `record` (metadata, progress), as [`decode_record`] reads them.
pub fn encode_record(
    record: &TorrentRecord,
) -> Result<(Vec<u8>, Vec<u8>), rmp_serde::encode::Error> {
    Ok((
        StoredMeta::from_record(record).encode()?,
        record.progress.encode()?,
    ))
}

impl Progress {
    pub(crate) fn encode(&self) -> Result<Vec<u8>, rmp_serde::encode::Error> {
        rmp_serde::to_vec_named(self)
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Ok(rmp_serde::from_slice(bytes)?)
    }
}

/// Packs per-piece flags into a bitfield, MSB-first with spare bits zero (the stored form).
pub fn pack_bitfield(pieces: &[bool]) -> Vec<u8> {
    let mut out = vec![0u8; pieces.len().div_ceil(8)];
    for (i, _) in pieces.iter().enumerate().filter(|(_, have)| **have) {
        out[i / 8] |= 0x80 >> (i % 8);
    }
    out
}

/// Unpacks a stored bitfield into `count` per-piece flags; `None` if its length does not fit
/// `count` or a spare bit is set (the record belongs to other metadata: do not trust it).
pub fn unpack_bitfield(bytes: &[u8], count: usize) -> Option<Vec<bool>> {
    if bytes.len() != count.div_ceil(8) {
        return None;
    }
    let bit = |i: usize| bytes[i / 8] & (0x80 >> (i % 8)) != 0;
    if (count..bytes.len() * 8).any(bit) {
        return None;
    }
    Some((0..count).map(bit).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitfields_pack_msb_first() {
        let flags = [true, false, false, false, false, false, false, true, true];
        let packed = pack_bitfield(&flags);
        assert_eq!(packed, [0x81, 0x80]);
        assert_eq!(unpack_bitfield(&packed, 9).unwrap(), flags);
        assert_eq!(unpack_bitfield(&packed, 17), None, "wrong length");
        assert_eq!(unpack_bitfield(&[0x81, 0xc0], 9), None, "spare bit set");
        assert_eq!(pack_bitfield(&[]), Vec::<u8>::new());
    }

    #[test]
    fn older_records_without_new_fields_decode_with_defaults() {
        #[derive(Serialize)]
        struct Old {
            record_version: u32,
            #[serde(with = "serde_bytes")]
            info_hash: Vec<u8>,
            port: u16,
            name: String,
        }
        let bytes = rmp_serde::to_vec_named(&Old {
            record_version: 1,
            info_hash: vec![7; 20],
            port: 20001,
            name: "n".into(),
        })
        .unwrap();
        let meta = StoredMeta::decode(&bytes).unwrap();
        assert_eq!((meta.port, meta.parser_version), (20001, 1));
        assert!(!meta.started && meta.trackers.is_empty());
        let newer = rmp_serde::to_vec_named(&Old {
            record_version: RECORD_VERSION + 1,
            info_hash: vec![7; 20],
            port: 1,
            name: String::new(),
        })
        .unwrap();
        assert!(matches!(
            StoredMeta::decode(&newer),
            Err(DecodeError::NewerVersion(_))
        ));
        assert_eq!(
            Progress::decode(&Progress::default().encode().unwrap()).unwrap(),
            Progress::default()
        );
    }
}

//! Building `.torrent` files. Hashing the data is the caller's job (it reads files); this
//! module turns the file list, the piece hashes and the options into canonical bencode.

use crate::bencode::Item;

/// Smallest automatic piece length (rain: 32 KiB).
pub const MIN_AUTO_PIECE_LENGTH: u32 = 32 * 1024;
/// Largest automatic piece length (rain: 16 MiB).
pub const MAX_AUTO_PIECE_LENGTH: u32 = 16 * 1024 * 1024;
/// Automatic piece length aims at this many pieces (rain's rule).
pub const AUTO_PIECE_TARGET: u64 = 2000;
/// A user-given piece length must be a multiple of the block size, 16 KiB.
pub const PIECE_LENGTH_MULTIPLE: u32 = 16 * 1024;

/// rain's automatic piece length: `total / 2000` rounded up to a power of two, clamped to
/// 32 KiB ..= 16 MiB.
pub fn auto_piece_length(total: u64) -> u32 {
    let target = total.div_ceil(AUTO_PIECE_TARGET).max(1).next_power_of_two();
    target.clamp(
        u64::from(MIN_AUTO_PIECE_LENGTH),
        u64::from(MAX_AUTO_PIECE_LENGTH),
    ) as u32
}

/// Everything a new torrent holds. [`TorrentSpec::to_bytes`] is deterministic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TorrentSpec {
    /// The torrent's name (the file name for a single file, the directory name otherwise).
    pub name: String,
    /// Bytes per piece.
    pub piece_length: u32,
    /// SHA-1 of each piece, in order.
    pub pieces: Vec<[u8; 20]>,
    /// `None` for a single-file torrent of `single_length` bytes; otherwise the files with
    /// their path components under the torrent directory, in stream order.
    pub files: Option<Vec<(Vec<String>, u64)>>,
    /// Length of a single-file torrent.
    pub single_length: u64,
    /// BEP 27 private flag. Written only when set, as mktorrent and libtorrent do, so that
    /// their info-hashes match ours for the same data.
    pub private: bool,
    /// `source` inside the info dictionary.
    pub source: Option<String>,
    /// Tracker tiers.
    pub trackers: Vec<Vec<String>>,
    /// WebSeed URLs.
    pub webseeds: Vec<String>,
    /// `comment`.
    pub comment: Option<String>,
    /// `created by`.
    pub created_by: Option<String>,
    /// `creation date`, seconds since the Unix epoch; `None` leaves it out.
    pub creation_date: Option<i64>,
}

impl TorrentSpec {
    /// The bencoded `info` dictionary.
    pub fn info(&self) -> Item {
        let pieces: Vec<u8> = self.pieces.iter().flatten().copied().collect();
        let mut info = Item::dict()
            .with("name", self.name.as_str())
            .with("piece length", i64::from(self.piece_length))
            .with("pieces", pieces);
        info = match &self.files {
            None => info.with("length", self.single_length as i64),
            Some(files) => {
                let list = files
                    .iter()
                    .map(|(path, len)| {
                        let parts = path
                            .iter()
                            .map(|p| Item::from(p.as_str()))
                            .collect::<Vec<_>>();
                        Item::dict().with("length", *len as i64).with("path", parts)
                    })
                    .collect::<Vec<_>>();
                info.with("files", list)
            }
        };
        if self.private {
            info = info.with("private", 1);
        }
        if let Some(source) = &self.source {
            info = info.with("source", source.as_str());
        }
        info
    }

    /// The whole `.torrent` file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut root = Item::dict().with("info", self.info());
        let mut urls = self.trackers.iter().flatten();
        if let Some(first) = urls.next() {
            // `announce` for clients without BEP 12; the full tiers when there is more than one URL.
            root = root.with("announce", first.as_str());
            if urls.next().is_some() {
                let tiers = self
                    .trackers
                    .iter()
                    .filter(|t| !t.is_empty())
                    .map(|t| Item::List(t.iter().map(|u| Item::from(u.as_str())).collect()))
                    .collect::<Vec<_>>();
                root = root.with("announce-list", tiers);
            }
        }
        match self.webseeds.as_slice() {
            [] => {}
            [one] => root = root.with("url-list", one.as_str()),
            many => {
                root = root.with(
                    "url-list",
                    many.iter()
                        .map(|u| Item::from(u.as_str()))
                        .collect::<Vec<_>>(),
                );
            }
        }
        if let Some(c) = &self.comment {
            root = root.with("comment", c.as_str());
        }
        if let Some(c) = &self.created_by {
            root = root.with("created by", c.as_str());
        }
        if let Some(d) = self.creation_date {
            root = root.with("creation date", d);
        }
        root.to_bytes()
    }
}

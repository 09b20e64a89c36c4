//! A real libtorrent (python bindings) seeding a small multi-file torrent on 127.0.0.1:
//! three files (one in a subdirectory, pieces straddling files, a short last piece).
//!
//! The payload is written by [`write_payload`], its torrent made by libtorrent
//! ([`create_torrent`]: hybrid v1+v2, 32 KiB pieces), and an [`LtPeer`] seeds it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::libtorrent::{LtOptions, LtPeer, create_torrent};
use crate::process::free_port;
use crate::rain_peer::write_payload;

/// The payload's files, relative to [`LibtorrentSeeder::dir`].
pub const FILES: [&str; 3] = ["payload/x.bin", "payload/sub/y.bin", "payload/z.bin"];

/// The files of [`FILES`] under `payload/`, and their sizes.
const SIZES: [(&str, usize); 3] = [
    ("x.bin", 1_500_000),
    ("sub/y.bin", 800_001),
    ("z.bin", 12_345),
];

/// Piece size of the torrent.
const PIECE: u32 = 32 * 1024;

/// A running libtorrent seeder; killed when dropped.
#[derive(Debug)]
pub struct LibtorrentSeeder {
    dir: PathBuf,
    peer: LtPeer,
}

impl LibtorrentSeeder {
    /// Writes the payload and `t.torrent` under `dir`, starts the seeder on a fresh port and
    /// waits (at most `wait`) until it seeds. Panics if it does not.
    pub fn start(dir: &Path, wait: Duration) -> LibtorrentSeeder {
        std::fs::create_dir_all(dir).unwrap();
        let (files, top) = write_payload(dir, "payload", &SIZES, 7);
        assert!(
            files
                .iter()
                .map(|(rel, _)| rel.as_path())
                .eq(FILES.map(Path::new)),
            "FILES and SIZES disagree"
        );
        let torrent = dir.join("t.torrent");
        create_torrent(&top, PIECE, false, &torrent);
        let peer = LtPeer::start(
            free_port(),
            &torrent,
            dir,
            &LtOptions {
                seed: true,
                ready_within: Some(wait),
                ..LtOptions::default()
            },
        );
        LibtorrentSeeder {
            dir: dir.to_owned(),
            peer,
        }
    }

    /// Where the payload and `t.torrent` are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its listen port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.peer.addr.port()
    }

    /// The `.torrent` file.
    pub fn torrent(&self) -> PathBuf {
        self.dir.join("t.torrent")
    }
}

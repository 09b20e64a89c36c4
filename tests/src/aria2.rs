//! A real aria2 (aria2c 1.3x) on 127.0.0.1.
//!
//! aria2 cannot be told a peer's address on the command line: it learns peers from trackers
//! (and dials 127.0.0.1 peers from a tracker's reply), or accepts connections on its listen
//! port.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::{Guard, logged};

/// What aria2 does with the torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Checks the data in its directory and seeds it until killed.
    Seed,
    /// Downloads into its directory and exits (status 0) once complete.
    Leech,
}

/// Starts aria2c for `torrent` in `dir`, listening on 127.0.0.1:`port`, logging to `log`.
pub fn start(torrent: &Path, dir: &Path, port: u16, role: Role, log: &Path) -> Guard {
    let mut cmd = Command::new("aria2c");
    cmd.args([
        "--no-conf=true",
        "--enable-dht=false",
        "--enable-dht6=false",
        "--bt-enable-lpd=false",
        "--enable-peer-exchange=false",
        "--disable-ipv6=true",
        "--interface=127.0.0.1",
        "--file-allocation=none",
        "--summary-interval=0",
        "--console-log-level=notice",
        "--bt-tracker-connect-timeout=5",
        "--bt-tracker-timeout=5",
        "--allow-overwrite=true",
        "--auto-file-renaming=false",
    ])
    .arg(format!("--listen-port={port}"))
    .arg(format!("--dir={}", dir.display()));
    match role {
        Role::Seed => cmd.args(["--check-integrity=true", "--seed-ratio=0.0"]),
        Role::Leech => cmd.args(["--seed-time=0"]),
    };
    cmd.arg(torrent);
    Guard::spawn("aria2c", logged(&mut cmd, log))
}

/// The log file next to `dir`.
pub fn log_path(dir: &Path) -> PathBuf {
    dir.with_extension("aria2.log")
}

//! A real Transmission (transmission-daemon 3) on 127.0.0.1, driven with transmission-remote.
//!
//! Each [`Transmission`] has its own configuration directory (settings.json written before it
//! starts), a fresh peer port and a fresh RPC port, no DHT, LSD, uTP or port mapping, and no
//! ratio or idle limits. Transmission 3 never dials peers on 127.0.0.0/8 (it treats them as
//! martian, whether they come from a tracker or PEX), so on loopback it only gets connections
//! that the other side dials.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::process::{Guard, free_port, logged, tail};

/// Transmission's `encryption` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encryption {
    /// 0: plaintext preferred.
    Tolerated,
    /// 1: encryption preferred (the default).
    Preferred,
    /// 2: encryption required.
    Required,
}

/// A running transmission-daemon; killed when dropped.
#[derive(Debug)]
pub struct Transmission {
    /// Its BitTorrent port on 127.0.0.1.
    pub peer_port: u16,
    rpc_port: u16,
    config: PathBuf,
    log: PathBuf,
    _guard: Guard,
}

impl Transmission {
    /// Starts a daemon whose configuration lives in `config` and whose downloads go to
    /// `downloads`; returns once its RPC answers.
    pub fn start(config: &Path, downloads: &Path, encryption: Encryption) -> Transmission {
        std::fs::create_dir_all(config).unwrap();
        std::fs::create_dir_all(downloads).unwrap();
        let (peer_port, rpc_port) = (free_port(), free_port());
        let encryption = match encryption {
            Encryption::Tolerated => 0,
            Encryption::Preferred => 1,
            Encryption::Required => 2,
        };
        let settings = format!(
            r#"{{
  "bind-address-ipv4": "127.0.0.1",
  "bind-address-ipv6": "::1",
  "peer-port": {peer_port},
  "peer-port-random-on-start": false,
  "port-forwarding-enabled": false,
  "dht-enabled": false,
  "lpd-enabled": false,
  "utp-enabled": false,
  "pex-enabled": true,
  "encryption": {encryption},
  "rpc-enabled": true,
  "rpc-bind-address": "127.0.0.1",
  "rpc-port": {rpc_port},
  "rpc-authentication-required": false,
  "rpc-whitelist-enabled": false,
  "rpc-host-whitelist-enabled": false,
  "download-dir": "{downloads}",
  "incomplete-dir-enabled": false,
  "rename-partial-files": false,
  "ratio-limit-enabled": false,
  "idle-seeding-limit-enabled": false,
  "speed-limit-down-enabled": false,
  "speed-limit-up-enabled": false,
  "alt-speed-enabled": false,
  "blocklist-enabled": false,
  "start-added-torrents": true,
  "message-level": 2
}}"#,
            downloads = downloads.display()
        );
        std::fs::write(config.join("settings.json"), settings).unwrap();
        let log = config.join("daemon.log");
        let guard = Guard::spawn(
            "transmission-daemon",
            logged(
                Command::new("transmission-daemon")
                    .arg("-f")
                    .arg("-g")
                    .arg(config),
                &log,
            ),
        );
        let t = Transmission {
            peer_port,
            rpc_port,
            config: config.to_owned(),
            log,
            _guard: guard,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while t.remote(&["-l"]).is_err() {
            assert!(
                Instant::now() < deadline,
                "transmission-daemon did not answer on RPC port {rpc_port}:\n{}",
                tail(&t.log, 30)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        t
    }

    /// Runs transmission-remote against this daemon; its stdout, or its stderr as the error.
    pub fn remote(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("transmission-remote")
            .arg(self.rpc_port.to_string())
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Adds a torrent whose data lives (or goes) in `dir`; it starts at once.
    pub fn add(&self, torrent: &Path, dir: &Path) {
        let out = self
            .remote(&["-a", torrent.to_str().unwrap(), "-w", dir.to_str().unwrap()])
            .unwrap_or_else(|e| panic!("transmission-remote -a: {e}"));
        assert!(out.contains("success"), "transmission-remote -a: {out}");
    }

    /// `Percent Done` of its (only) torrent.
    pub fn percent_done(&self) -> Option<f64> {
        let info = self.remote(&["-t", "1", "-i"]).ok()?;
        info.lines()
            .find_map(|l| l.trim().strip_prefix("Percent Done:"))
            .and_then(|p| p.trim().trim_end_matches('%').parse().ok())
    }

    /// Its peer table for the torrent (`transmission-remote -t 1 -pi`): one row per peer,
    /// `Address Flags Done Down Up Client`; flag `E` means encrypted.
    pub fn peers(&self) -> Vec<String> {
        self.remote(&["-t", "1", "-pi"])
            .unwrap_or_default()
            .lines()
            .skip(1)
            .map(str::to_owned)
            .collect()
    }

    /// Everything useful after a failure: torrent info, peers and the daemon's log.
    pub fn diagnostics(&self) -> String {
        format!(
            "transmission ({}): {}\npeers: {:?}\nlog:\n{}",
            self.config.display(),
            self.remote(&["-t", "1", "-i"]).unwrap_or_else(|e| e),
            self.peers(),
            tail(&self.log, 30)
        )
    }
}

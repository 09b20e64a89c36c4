//! A real opentracker (Debian's build, which serves only whitelisted info-hashes) on
//! 127.0.0.1, HTTP and UDP on one fresh port.

use std::process::{Command, Stdio};
use std::time::Duration;

use rain_proto::InfoHash;
use rain_proto::rng::Seed;
use rain_proto::tracker::{Announce, Event, TrackerError};
use rain_runtime::net::TokioNet;
use rain_runtime::tracker_client::{TrackerClient, TrackerConfig};

use crate::process::{Guard, free_tcp_udp_port};

/// Announced until the whitelist is loaded.
const PROBE: InfoHash = InfoHash([0x5a; 20]);

/// True when opentracker can be started.
pub fn installed() -> bool {
    Command::new("opentracker")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A running opentracker; killed when dropped.
#[derive(Debug)]
pub struct OpenTracker {
    /// Its port (TCP and UDP).
    pub port: u16,
    _guard: Guard,
    _dir: tempfile::TempDir,
}

impl OpenTracker {
    /// Starts opentracker serving `hashes`; returns once it answers announces.
    pub async fn start(hashes: &[InfoHash]) -> OpenTracker {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        // opentracker chroots into the directory and drops to `nobody` when run as root.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let wl = dir.path().join("whitelist");
        let list: String = hashes
            .iter()
            .chain([&PROBE])
            .map(|h| h.to_hex() + "\n")
            .collect();
        std::fs::write(&wl, list).unwrap();
        std::fs::set_permissions(&wl, std::fs::Permissions::from_mode(0o644)).unwrap();
        for _ in 0..5 {
            let port = free_tcp_udp_port();
            let p = port.to_string();
            let mut guard = Guard::spawn(
                "opentracker",
                Command::new("opentracker")
                    .args(["-i", "127.0.0.1", "-p", &p, "-P", &p])
                    .args(["-w", "whitelist", "-d"])
                    .arg(dir.path())
                    .current_dir(dir.path())
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null()),
            );
            if ready(&mut guard, port).await {
                return OpenTracker {
                    port,
                    _guard: guard,
                    _dir: dir,
                };
            }
        }
        panic!("opentracker did not start");
    }

    /// Its HTTP announce URL.
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}/announce", self.port)
    }

    /// Its UDP announce URL.
    pub fn udp_url(&self) -> String {
        format!("udp://127.0.0.1:{}/announce", self.port)
    }
}

/// Waits (bounded) until the tracker answers an announce for the whitelisted probe hash.
async fn ready(guard: &mut Guard, port: u16) -> bool {
    let mut config = TrackerConfig::default();
    config.http.timeout = Duration::from_secs(2);
    let client = TrackerClient::new(TokioNet, config, Seed::from_u64(5));
    let url = format!("http://127.0.0.1:{port}/announce");
    let probe = Announce {
        info_hash: PROBE,
        peer_id: *b"-RN0010-probeprobe00",
        port: 9,
        uploaded: 0,
        downloaded: 0,
        left: 0,
        event: Event::Started,
        num_want: 0,
        key: 5,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        if guard.try_wait().is_some() {
            return false; // exited: the port was taken, probably
        }
        match client.announce(&url, &probe, None, false).await {
            Ok(_) => return true,
            // The whitelist is loaded by a thread shortly after start.
            Err(TrackerError::Refused { .. } | TrackerError::Transport(_)) => {}
            Err(e) => panic!("opentracker probe: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

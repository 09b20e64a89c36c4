//! A real libtorrent peer (python3 libtorrent 2.x) driven over its stdin and stdout.
//!
//! [`LtPeer::start`] runs one libtorrent session on `127.0.0.1:<port>` (or another loopback
//! address) with one torrent (a
//! `.torrent` file; its data in `save_path` when seeding; or a magnet link,
//! [`LtPeer::start_magnet`]; or none, [`LtPeer::start_bare`]). No LSD, UPnP, NAT-PMP or uTP;
//! no DHT unless [`LtOptions::dht_bootstrap`] asks for it (on the listen address, UDP).
//! It prints `READY` once the torrent runs (for a seeder: once its data checked), then one line
//! per event:
//!
//! - `COMPLETE` when the torrent becomes a seed;
//! - `PEER <ip>:<port> <rc4|plain> src=<source flags> <client>` when a connected peer is first
//!   seen, or its encryption changes (source flags: 1 tracker, 4 PEX, 0x20 incoming…);
//! - `PEX_SENT <ip>:<port>` when it sends a ut_pex message to that peer (needs `peer_log`);
//! - `REMOVED` after the `remove` command;
//! - `DHT_PEERS <info-hash hex> <ip>:<port>…` for each reply to `dht_get_peers` that carries
//!   peers; `DHT_NODES <n>` (routing table size) after `dht_stats`.
//!
//! Commands, one per line on stdin: `connect <ip> <port>`, `remove`, `status` (answers
//! `STATUS progress=<0..1> seeding=<0|1> peers=<n>`, or `STATUS removed` without a torrent),
//! `dht_announce` (announce the torrent to the DHT now), `dht_get_peers <info-hash hex>`,
//! `dht_stats`. It exits when stdin closes; the
//! [`Guard`] kills it anyway when dropped.

use std::io::Write;
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::time::Duration;

use crate::process::{Guard, Lines};
use crate::run_ok;

/// The driver program.
const DRIVER: &str = r#"
import argparse, queue, sys, threading, time, warnings
warnings.simplefilter("ignore")
import libtorrent as lt

ap = argparse.ArgumentParser()
ap.add_argument("--host", default="127.0.0.1")
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--torrent")
ap.add_argument("--magnet")
ap.add_argument("--dht-bootstrap", help="enable the DHT, bootstrapping from these host:port nodes")
ap.add_argument("--save", required=True)
ap.add_argument("--seed", action="store_true")
ap.add_argument("--forced-encryption", action="store_true")
ap.add_argument("--peer-log", action="store_true")
ap.add_argument("--set", action="append", default=[], help="settings_pack key=int|true|false")
ap.add_argument("--verbose", action="store_true")
a = ap.parse_args()

cat = lt.alert.category_t
mask = cat.error_notification | cat.status_notification | cat.peer_notification | cat.connect_notification
if a.peer_log:
    mask |= cat.peer_log_notification
if a.dht_bootstrap is not None:
    mask |= cat.dht_operation_notification
if a.verbose:
    mask = cat.all_categories
settings = {
    "listen_interfaces": "%s:%d" % (a.host, a.port),
    "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
    "enable_outgoing_utp": False, "enable_incoming_utp": False,
    "allow_multiple_connections_per_ip": True,
    "alert_mask": int(mask),
}
if a.dht_bootstrap is not None:
    # The DHT on the listen address (UDP), allowed to use loopback nodes: no one-node-per-IP
    # rules, no "dark internet" filter, no preference for BEP 42 ids; announces every 2 s.
    settings.update({
        "enable_dht": True, "dht_bootstrap_nodes": a.dht_bootstrap,
        "dht_restrict_routing_ips": False, "dht_restrict_search_ips": False,
        "dht_ignore_dark_internet": False, "dht_prefer_verified_node_ids": False,
        "dht_enforce_node_id": False, "dht_announce_interval": 2,
    })
if a.forced_encryption:
    # pe_forced both ways, RC4 only.
    settings.update({"out_enc_policy": 0, "in_enc_policy": 0, "allowed_enc_level": 2, "prefer_rc4": True})
for kv in a.set:
    k, v = kv.split("=", 1)
    settings[k] = {"true": True, "false": False}.get(v) if v in ("true", "false") else int(v)
s = lt.session(settings)
# Rate limits apply to loopback peers too (libtorrent exempts "local" peers by default).
f = lt.ip_filter()
f.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
s.set_peer_class_filter(f)

h = None
if a.torrent or a.magnet:
    if a.torrent:
        p = lt.add_torrent_params()
        p.ti = lt.torrent_info(a.torrent)
    else:
        p = lt.parse_magnet_uri(a.magnet)
    p.save_path = a.save
    # Start at once: not paused, not queued by the auto-manager.
    p.flags &= ~(lt.torrent_flags.paused | lt.torrent_flags.auto_managed)
    h = s.add_torrent(p)

def out(*words):
    print(*words, flush=True)

deadline = time.time() + 30
while True:
    if h is None:
        if s.is_listening():
            break
        if time.time() > deadline:
            sys.exit("libtorrent: not listening")
        time.sleep(0.02)
        continue
    st = h.status()
    checking = st.state in (lt.torrent_status.checking_files, lt.torrent_status.checking_resume_data)
    if s.is_listening() and not checking and (st.is_seeding or not a.seed):
        break
    if time.time() > deadline:
        sys.exit("libtorrent: torrent not ready: %s" % st.state)
    time.sleep(0.02)
out("READY")

cmds = queue.Queue()
def reader():
    for line in sys.stdin:
        cmds.put(line.split())
    cmds.put(None)
threading.Thread(target=reader, daemon=True).start()

complete = h is None or h.status().is_seeding
peers = {}
removed = False
while True:
    try:
        c = cmds.get(timeout=0.02)
    except queue.Empty:
        c = []
    if c is None:
        break
    if c and c[0] == "connect":
        h.connect_peer((c[1], int(c[2])))
    elif c and c[0] == "remove":
        s.remove_torrent(h)
        removed = True
        out("REMOVED")
    elif c and c[0] == "dht_announce" and h is not None:
        h.force_dht_announce()
    elif c and c[0] == "dht_get_peers":
        s.dht_get_peers(lt.sha1_hash(bytes.fromhex(c[1])))
    elif c and c[0] == "dht_stats":
        s.post_dht_stats()
    elif c and c[0] == "status":
        if removed or h is None:
            out("STATUS removed")
        else:
            st = h.status()
            out("STATUS progress=%.4f seeding=%d peers=%d" % (st.progress, int(st.is_seeding), st.num_peers))
    for al in s.pop_alerts():
        if isinstance(al, lt.peer_log_alert) and ("PEX_FULL" in al.message() or "PEX_DIFF" in al.message()):
            out("PEX_SENT %s:%d" % (al.ip[0], al.ip[1]))
        if isinstance(al, lt.dht_get_peers_reply_alert):
            out("DHT_PEERS", str(al.info_hash), *["%s:%d" % (ip, port) for ip, port in al.peers()])
        if isinstance(al, lt.dht_stats_alert):
            out("DHT_NODES %d" % sum(b["num_nodes"] for b in al.routing_table))
        if a.verbose:
            print("lt:", al.what(), al.message(), file=sys.stderr, flush=True)
    if removed or h is None:
        continue
    if not complete and h.status().is_seeding:
        complete = True
        out("COMPLETE")
    for pi in h.get_peer_info():
        if pi.flags & lt.peer_info.connecting or pi.flags & lt.peer_info.handshake:
            continue
        enc = "rc4" if pi.flags & lt.peer_info.rc4_encrypted else "plain"
        ep = "%s:%d" % (pi.ip[0], pi.ip[1])
        if peers.get(ep) != enc:
            peers[ep] = enc
            client = pi.client.decode("utf-8", "replace") if isinstance(pi.client, bytes) else pi.client
            out("PEER %s %s src=%d %s" % (ep, enc, pi.source, client))
"#;

/// How to run a libtorrent peer.
#[derive(Debug, Clone, Default)]
pub struct LtOptions {
    /// Wait until its data is checked complete before `READY`.
    pub seed: bool,
    /// `out_enc_policy` and `in_enc_policy` = `pe_forced`, RC4 only.
    pub forced_encryption: bool,
    /// Report `PEX_SENT` (peer log alerts).
    pub peer_log: bool,
    /// Its address (default 127.0.0.1).
    pub host: Option<&'static str>,
    /// Extra settings (`settings_pack` names; integers, `true` or `false`), e.g.
    /// `("upload_rate_limit", "1048576")`.
    pub settings: Vec<(&'static str, &'static str)>,
    /// Bound on `READY` (default 60 s).
    pub ready_within: Option<Duration>,
    /// Runs libtorrent's DHT on its listen address (UDP), with the settings that let it use
    /// loopback nodes and a 2 s announce interval, bootstrapping from these comma-separated
    /// `host:port` nodes (empty: none). `None`: no DHT.
    pub dht_bootstrap: Option<String>,
}

/// A running libtorrent peer; killed when dropped.
#[derive(Debug)]
pub struct LtPeer {
    /// Its listen address.
    pub addr: std::net::SocketAddr,
    stdin: Option<ChildStdin>,
    /// Its stdout, line by line.
    pub lines: Lines,
    stderr: std::path::PathBuf,
    guard: Guard,
}

impl LtPeer {
    /// Starts the peer for `torrent` (data in `save`) on `port` and waits for `READY`.
    pub fn start(port: u16, torrent: &Path, save: &Path, opts: &LtOptions) -> LtPeer {
        Self::spawn(
            port,
            &["--torrent".as_ref(), torrent.as_os_str()],
            save,
            opts,
        )
    }

    /// Starts the peer for a magnet link (data saved in `save`) on `port` and waits for
    /// `READY` (listening).
    pub fn start_magnet(port: u16, magnet: &str, save: &Path, opts: &LtOptions) -> LtPeer {
        Self::spawn(port, &["--magnet".as_ref(), magnet.as_ref()], save, opts)
    }

    /// Starts a session without a torrent (a bare DHT node when `opts.dht_bootstrap` is set)
    /// on `port`, its log next to `dir`, and waits for `READY` (listening).
    pub fn start_bare(port: u16, dir: &Path, opts: &LtOptions) -> LtPeer {
        Self::spawn(port, &[], dir, opts)
    }

    fn spawn(port: u16, source: &[&std::ffi::OsStr], save: &Path, opts: &LtOptions) -> LtPeer {
        let stderr = save.with_extension(format!("lt-{port}.log"));
        let host = opts.host.unwrap_or("127.0.0.1");
        let mut cmd = Command::new("python3");
        cmd.args(["-c", DRIVER, "--host", host, "--port", &port.to_string()])
            .args(source)
            .arg("--save")
            .arg(save);
        if let Some(nodes) = &opts.dht_bootstrap {
            cmd.arg(format!("--dht-bootstrap={nodes}"));
        }
        if opts.seed {
            cmd.arg("--seed");
        }
        if opts.forced_encryption {
            cmd.arg("--forced-encryption");
        }
        if opts.peer_log {
            cmd.arg("--peer-log");
        }
        if std::env::var_os("RAIN_LT_DEBUG").is_some() {
            cmd.arg("--verbose");
        }
        for (k, v) in &opts.settings {
            cmd.arg("--set").arg(format!("{k}={v}"));
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap());
        let mut guard = Guard::spawn("python3 libtorrent", &mut cmd);
        let stdin = guard.child().stdin.take();
        let lines = Lines::new(guard.child().stdout.take().unwrap());
        let mut peer = LtPeer {
            addr: std::net::SocketAddr::new(host.parse().unwrap(), port),
            stdin,
            lines,
            stderr,
            guard,
        };
        if peer
            .lines
            .wait_for(opts.ready_within.unwrap_or(Duration::from_secs(60)), |l| {
                l == "READY"
            })
            .is_none()
        {
            panic!("libtorrent peer did not start:\n{}", peer.diagnostics());
        }
        peer
    }

    /// Sends one command line.
    pub fn command(&mut self, line: &str) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = writeln!(stdin, "{line}");
            let _ = stdin.flush();
        }
    }

    /// Asks it to connect to a peer.
    pub fn connect(&mut self, addr: std::net::SocketAddr) {
        self.command(&format!("connect {} {}", addr.ip(), addr.port()));
    }

    /// The first line (seen before or within `limit`) starting with `prefix`.
    pub fn wait_for(&mut self, prefix: &str, limit: Duration) -> Option<String> {
        self.lines.wait_for(limit, |l| l.starts_with(prefix))
    }

    /// Its output and error log so far, for failure messages.
    pub fn diagnostics(&mut self) -> String {
        let exited = self
            .guard
            .try_wait()
            .map_or_else(String::new, |s| format!(" (exited: {s})"));
        format!(
            "libtorrent on {}{exited}, stdout:\n{}\nstderr:\n{}",
            self.addr,
            self.lines.transcript(),
            crate::process::tail(&self.stderr, 40)
        )
    }
}

/// Makes a torrent of `path` with libtorrent (`piece_size` bytes; v1-only or hybrid v1+v2,
/// with BEP 47 padding), writes it to `out` and returns its bytes.
pub fn create_torrent(path: &Path, piece_size: u32, v1_only: bool, out: &Path) -> Vec<u8> {
    let script = r#"
import os, sys, libtorrent as lt
path, piece, v1, out = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
fs = lt.file_storage()
lt.add_files(fs, path)
t = lt.create_torrent(fs, piece, flags=lt.create_torrent.v1_only if v1 else 0)
lt.set_piece_hashes(t, os.path.dirname(os.path.abspath(path)))
open(out, "wb").write(lt.bencode(t.generate()))
"#;
    run_ok(Command::new("python3").args([
        "-c",
        script,
        path.to_str().unwrap(),
        &piece_size.to_string(),
        if v1_only { "1" } else { "0" },
        out.to_str().unwrap(),
    ]));
    std::fs::read(out).unwrap()
}

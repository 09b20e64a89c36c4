//! Shared helpers for the daemon's end-to-end tests: real `raind` processes with temp
//! configs on loopback, driven by the real `rain` binary.

#![allow(dead_code)] // Each test file uses its own subset.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const RAIND: &str = env!("CARGO_BIN_EXE_raind");
pub const RAIN: &str = env!("CARGO_BIN_EXE_rain");
pub const WAIT: Duration = Duration::from_secs(60);

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A port range nobody listens on: `n` consecutive free ports.
pub fn free_range(n: u16) -> (u16, u16) {
    loop {
        let begin = free_port();
        let Some(end) = begin.checked_add(n) else {
            continue;
        };
        if (begin..end).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return (begin, end);
        }
    }
}

/// One `raind` with its own directory, config and RPC port.
pub struct Raind {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub url: String,
    /// `rpc-token`, passed to the client through `RAIN_RPC_TOKEN`.
    token: String,
    child: Option<Child>,
}

impl Raind {
    /// Writes a config under `dir` (loopback only, no DHT) and starts the server.
    pub fn start(dir: &Path, extra: &str) -> Raind {
        std::fs::create_dir_all(dir).unwrap();
        let rpc = free_port();
        let (begin, end) = free_range(8);
        let config = dir.join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "database: {db}\ndata-dir: {data}\nhost: 127.0.0.1\nrpc-port: {rpc}\n\
                 port-begin: {begin}\nport-end: {end}\ndht-enabled: false\n{extra}",
                db = dir.join("session.db").display(),
                data = dir.join("data").display(),
            ),
        )
        .unwrap();
        let mut d = Raind {
            dir: dir.to_owned(),
            config,
            url: format!("http://127.0.0.1:{rpc}"),
            token: extra
                .lines()
                .find_map(|l| l.strip_prefix("rpc-token: "))
                .unwrap_or_default()
                .to_owned(),
            child: None,
        };
        d.spawn();
        d
    }

    pub fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.join("raind.log")).unwrap();
        // Its own directory as the working directory: anything it (or a hook) creates by a
        // relative path lands there.
        let child = Command::new(RAIND)
            .arg("--config")
            .arg(&self.config)
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("raind starts");
        self.child = Some(child);
        let deadline = Instant::now() + WAIT;
        while !self.client(&["version"]).status.success() {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("raind exited with {status}: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "raind never answered: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("raind.log")).unwrap_or_default()
    }

    /// Stops it as an operator would (SIGTERM) and checks it exits cleanly.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("running");
        let killed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "raind exit: {status}: {}", self.log());
                return;
            }
            assert!(Instant::now() < deadline, "raind ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills it without warning (SIGKILL), as a crash or power cut would.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    pub fn client(&self, args: &[&str]) -> Output {
        Command::new(RAIN)
            .args(["client", "--url", &self.url, "--timeout", "20s"])
            .args(args)
            .env("RAIN_RPC_TOKEN", &self.token)
            .output()
            .expect("rain starts")
    }

    /// Runs `rain client …`, which must succeed, and returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.client(args);
        assert!(
            out.status.success(),
            "rain client {args:?}: {}\nraind log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let text = self.ok(args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?} printed {text:?}: {e}"))
    }

    pub fn stats(&self, id: &str) -> Value {
        self.json(&["stats", "--id", id, "--json"])
    }

    /// Polls the torrent's stats until `done` holds.
    pub fn wait_for(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = self.stats(id);
            if done(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{id} never {what}: {s}\nlog:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A raw JSON-RPC call exactly as rain's Go client sends it.
    pub fn raw(&self, method: &str, params: Option<Value>) -> Value {
        let mut body = json!({"jsonrpc": "2.0", "method": method, "id": 1});
        if let Some(p) = params {
            body["params"] = p;
        }
        let (status, text) = http_post(
            &self.url,
            &[
                ("Content-Type", "application/json"),
                ("Accept", "application/json"),
            ],
            &body.to_string(),
        );
        assert_eq!(status, 200, "{method}: {text}");
        serde_json::from_str(&text).unwrap()
    }
}

impl Drop for Raind {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A minimal HTTP/1.1 POST; returns the status and body.
pub fn http_post(url: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let addr = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut req = format!("POST / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req += &[k, ": ", v, "\r\n"].concat();
    }
    let length = body.len().to_string();
    req += &["Content-Length: ", &length, "\r\n\r\n", body].concat();
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    status_and_body(&resp)
}

/// The status code (0 if there is none) and the body of a raw HTTP/1.1 response. jsonrpsee
/// answers with Content-Length; a chunked body would need decoding.
pub fn status_and_body(resp: &str) -> (u16, String) {
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_owned())
}

/// An executable `sh` script at `path` with `body` after its `#!/bin/sh` line.
pub fn shell_script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Writes `len` pseudo-random bytes to `path`.
pub fn payload(path: &Path, len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, &data).unwrap();
    data
}

pub fn rain(args: &[&str]) -> Output {
    Command::new(RAIN).args(args).output().expect("rain starts")
}

/// A torrent of one file `name` with `len` bytes, created by `rain torrent create`; returns
/// the .torrent path and the data.
pub fn make_torrent(dir: &Path, name: &str, len: usize) -> (PathBuf, Vec<u8>) {
    make_torrent_with(dir, name, len, 32)
}

/// [`make_torrent`] with pieces of `piece_kib` KiB.
pub fn make_torrent_with(dir: &Path, name: &str, len: usize, piece_kib: u32) -> (PathBuf, Vec<u8>) {
    let src = dir.join("src").join(name);
    let data = payload(&src, len, len as u32);
    let torrent = dir.join(format!("{name}.torrent"));
    let piece = piece_kib.to_string();
    let out = rain(&[
        "torrent",
        "create",
        "-f",
        src.to_str().unwrap(),
        "-o",
        torrent.to_str().unwrap(),
        "-l",
        &piece,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (torrent, data)
}

pub fn one_error_line(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "exit status of {out:?}");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

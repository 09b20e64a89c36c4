//! Child processes for interop tests: a guard that kills its process however the test ends,
//! bounded waits, line-by-line reading of a child's output, and fresh loopback ports.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// A child process that is killed (and reaped) when the guard drops.
#[derive(Debug)]
pub struct Guard {
    child: Child,
    name: String,
}

impl Guard {
    /// Starts `cmd`; panics with `name` if it cannot be started.
    pub fn spawn(name: &str, cmd: &mut Command) -> Guard {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Guard {
            child,
            name: name.to_owned(),
        }
    }

    /// The process itself (for its pipes).
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Its pid.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` once it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits up to `limit` for it to exit; `None` if it is still running then.
    pub fn wait_bounded(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its name, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port free on 127.0.0.1 right now (the kernel's choice, so fresh per run).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A port free for both TCP and UDP on 127.0.0.1 right now.
pub fn free_tcp_udp_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The lines a child writes to one of its pipes, read by a thread and kept for messages.
#[derive(Debug)]
pub struct Lines {
    rx: Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    /// Reads `pipe` (a child's stdout or stderr) line by line.
    pub fn new(pipe: impl Read + Send + 'static) -> Lines {
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
        }
    }

    /// The first line (already seen or arriving within `limit`) that `matches`; `None` on
    /// timeout or when the pipe closes first.
    pub fn wait_for(
        &mut self,
        limit: Duration,
        mut matches: impl FnMut(&str) -> bool,
    ) -> Option<String> {
        if let Some(l) = self.seen.iter().find(|l| matches(l)) {
            return Some(l.clone());
        }
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    let hit = matches(&line);
                    self.seen.push(line.clone());
                    if hit {
                        return Some(line);
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Takes in whatever has arrived, without waiting.
    pub fn drain(&mut self) -> &[String] {
        while let Ok(line) = self.rx.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }

    /// Every line so far, for failure messages.
    pub fn transcript(&mut self) -> String {
        self.drain().join("\n")
    }
}

/// A command with no stdin and both outputs appended to `log` (no pipe to fill up).
pub fn logged<'a>(cmd: &'a mut Command, log: &std::path::Path) -> &'a mut Command {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    cmd.stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
}

/// The last `n` lines of a log file, for failure messages.
pub fn tail(log: &std::path::Path, n: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Waits up to `limit` until something listens on TCP 127.0.0.1:`port` (read from
/// /proc/net/tcp, so the listener sees no probe connection). Where /proc/net/tcp is missing,
/// falls back to connecting.
pub fn wait_listening(port: u16, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let local = format!("0100007F:{port:04X}");
    loop {
        let listening = match std::fs::read_to_string("/proc/net/tcp") {
            Ok(table) => table.lines().skip(1).any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 3
                    && f[3] == "0A"
                    && (f[1] == local || f[1] == format!("00000000:{port:04X}"))
            }),
            Err(_) => std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        };
        if listening {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

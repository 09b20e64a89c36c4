//! Embedding rain-proto in your own runtime: a whole BitTorrent download driven by hand.
//!
//! ```text
//! cargo run -p rain-proto --example blocking_download -- <file.torrent> <ip:port> <out-dir>
//! ```
//!
//! Downloads the torrent from the one peer given, hashes and writes every piece under
//! `<out-dir>`, and exits 0 once complete (1 with a one-line error otherwise: the peer is gone
//! or [`OVERALL_TIMEOUT`] passed). One thread, `std` plus rain-proto only (and `bytes`, which
//! is part of its API): non-blocking `std::net` sockets in a poll loop, `std::fs` files,
//! `std::time` for the clock. It shares nothing with rain's tokio runtime.
//!
//! The [`Torrent`] machine decides everything (whom to dial, what to request, when a piece is
//! complete, when to give up on a peer); this file only moves bytes and reports back:
//! 1. **Inputs** are `handle_*(now, …)` calls: a peer finished its handshake, a message arrived,
//!    a connection closed, a dial failed, a piece was written, a timer is due.
//! 2. **Outputs** are drained after *every* input, actions first, then events, until both
//!    queues are empty ([`Driver::drain`]). Performing an action may itself be an input (we
//!    write pieces synchronously and report at once), which is why the drain loops.
//! 3. **Time** is ours to give: [`Driver::now`] maps `std::time::Instant` onto the machine's
//!    `Instant` (nanoseconds since we started). When `poll_timeout()` has passed we call
//!    `handle_timeout(now)`; `None` means no timer is pending.
//! 4. **Randomness** is a seed handed to the machine at construction (`RAIN_SEED=<n>` fixes it).
//!
//! Limits of this example: plaintext connections only (no MSE), no trackers, no listening
//! socket, PEX off (we talk to exactly the peer given), and a 1 ms sleep instead of a real
//! readiness API (epoll/kqueue) when nothing is happening.

// Examples are drivers, not the core: they own the clock, files and sockets that proto-core's
// clippy.toml keeps out of the library.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::hash::BuildHasher;
use std::io::{self, ErrorKind, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use rain_proto::address_book::{AddressBookConfig, PeerSource};
use rain_proto::metainfo::{self, Info, Metainfo};
use rain_proto::picker::PeerKey;
use rain_proto::rng::{Rng, Seed};
use rain_proto::time::Instant;
use rain_proto::torrent::{
    Action, Direction, DiskError, PeerInfo, Resume, Torrent, TorrentConfig, TorrentEvent,
    TorrentParams,
};
use rain_proto::tracker::TrackerError;
use rain_proto::wire::{Decoder, Handshake, Limits, PeerId, Reserved};
use rain_proto::{Decode, hash};

/// The whole run, however it goes.
const OVERALL_TIMEOUT: Duration = Duration::from_secs(300);
/// A dial: TCP connect, then the 68-byte handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes read per socket per turn, and unsent bytes allowed per peer (every buffer is bounded).
const READ_CHUNK: usize = 256 * 1024;
const MAX_UNSENT: usize = 8 * 1024 * 1024;

fn main() {
    if let Err(e) = run() {
        eprintln!("blocking_download: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let [_, torrent, peer, out] = args.as_slice() else {
        return Err("usage: blocking_download <file.torrent> <ip:port> <out-dir>".into());
    };
    let raw = fs::read(torrent).map_err(|e| format!("{torrent}: {e}"))?;
    let meta = Metainfo::from_bytes(&raw, &metainfo::Limits::default())
        .map_err(|e| format!("{torrent}: {e}"))?;
    let peer: SocketAddr = peer.parse().map_err(|e| format!("{peer}: {e}"))?;
    let storage = Storage::create(Path::new(out), &meta.info).map_err(|e| format!("{out}: {e}"))?;

    // Randomness: the machine draws only from the seed it is given (peer id, choker, picker
    // ties). `std`'s RandomState is keyed from the OS, which is enough for an example.
    let seed = match std::env::var("RAIN_SEED") {
        Ok(s) => s
            .parse()
            .map_err(|_| format!("RAIN_SEED={s}: not a number"))?,
        Err(_) => std::hash::RandomState::new().hash_one(0u8),
    };
    let mut rng = Rng::new(Seed::from_u64(seed));
    let peer_id = PeerId::generate("0010", &mut rng).map_err(|e| e.to_string())?;

    let params = TorrentParams {
        info_hash: meta.info_hash,
        info: Some((meta.info, Bytes::from(meta.info_bytes))),
        peer_id,
        port: 0, // we do not listen; only trackers and PEX would be told
        trackers: Vec::new(),
        resume: Resume::default(), // fresh files: no verified piece yet
        stop_after_download: true, // the machine stops itself once complete
        stop_after_metadata: false,
        our_addr: None,
        blocklist: None,
        webseeds: Vec::new(), // BEP 19 url-list: none here, so no webseed actions
    };
    // One peer, no PEX, no retries: a failed dial drops the address at once.
    let address_book = AddressBookConfig {
        max_dial_failures: 1,
        ..AddressBookConfig::default()
    };
    let config = TorrentConfig {
        pex_enabled: false,
        address_book,
        ..TorrentConfig::default()
    };
    let epoch = std::time::Instant::now();
    let mut d = Driver {
        t: Torrent::new(params, config, rng.child(), Instant::ZERO),
        epoch,
        ours: Handshake {
            reserved: Reserved::rain(false), // BEP 10 + BEP 6; the machine speaks both
            info_hash: meta.info_hash,
            peer_id,
        },
        decoder: Decoder::new(Limits::default()),
        conns: BTreeMap::new(),
        next_conn: 0,
        storage,
        stopped: None,
    };

    // Commands are inputs too: start, then offer the peer. The machine answers with a Dial.
    let now = d.now();
    d.t.start(now);
    d.t.add_peer_addr(now, peer, PeerSource::Manual);
    d.drain();

    let deadline = epoch + OVERALL_TIMEOUT;
    while d.stopped.is_none() {
        if std::time::Instant::now() > deadline {
            let s = d.t.stats();
            return Err(format!(
                "timed out after {OVERALL_TIMEOUT:?} with {}/{} pieces",
                s.pieces.have, s.pieces.total
            ));
        }
        if !d.turn() {
            // Nobody connected, dialling or left to dial: nothing more can happen.
            let s = d.t.stats();
            if s.peers.total + s.handshakes.total + s.addresses.total == 0 {
                let (have, total) = (s.pieces.have, s.pieces.total);
                return Err(format!(
                    "no peer left to download from ({have}/{total} pieces)"
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    d.stopped.unwrap_or(Ok(()))?;
    if !d.t.is_complete() {
        return Err("stopped before completion".into());
    }
    println!("complete: {} pieces", d.t.stats().pieces.have);
    Ok(())
}

/// One TCP connection. `key` stays `None` until the BitTorrent handshake is done: the machine
/// only hears of peers that finished it ([`Torrent::handle_peer_connected`]).
struct Conn {
    sock: TcpStream,
    addr: SocketAddr,
    key: Option<PeerKey>,
    opened: std::time::Instant,
    rx: BytesMut,
    tx: Vec<u8>,
}

struct Driver {
    t: Torrent,
    epoch: std::time::Instant,
    ours: Handshake,
    decoder: Decoder,
    conns: BTreeMap<u64, Conn>,
    next_conn: u64,
    storage: Storage,
    /// Set by the `Stopped` event: `Err` if it stopped on an error.
    stopped: Option<Result<(), String>>,
}

impl Driver {
    /// The machine's clock: nanoseconds since we started.
    fn now(&self) -> Instant {
        Instant::from_nanos(self.epoch.elapsed().as_nanos() as u64)
    }

    /// One pass of the poll loop: the timer, then every socket. True if anything happened.
    fn turn(&mut self) -> bool {
        let mut busy = false;
        let now = self.now();
        if self.t.poll_timeout().is_some_and(|t| t <= now) {
            self.t.handle_timeout(now);
            self.drain();
            busy = true;
        }
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        for id in ids {
            busy |= self.pump(id);
        }
        busy
    }

    /// Non-blocking I/O on one connection, then one input per complete frame, each followed
    /// by a drain; a close is reported after the frames that arrived before it. True if
    /// anything happened.
    fn pump(&mut self, id: u64) -> bool {
        let Some(c) = self.conns.get_mut(&id) else {
            return false; // closed while draining an earlier input
        };
        let (open, moved) = c.io();
        loop {
            let now = self.now();
            let Some(c) = self.conns.get_mut(&id) else {
                return true; // the last input closed it
            };
            match c.key {
                // First the peer's handshake (ours went out first), checked for our torrent.
                None => match Handshake::decode(&c.rx) {
                    Decode::Complete { value, used } if value.info_hash == self.ours.info_hash => {
                        c.rx.advance(used);
                        let info = PeerInfo {
                            addr: c.addr,
                            direction: Direction::Outgoing,
                            peer_id: value.peer_id,
                            reserved: value.reserved,
                            encrypted: false,
                        };
                        match self.t.handle_peer_connected(now, info) {
                            Ok(key) => c.key = Some(key),
                            Err(_) => drop(self.conns.remove(&id)), // refused: just close
                        }
                    }
                    Decode::Incomplete if open && c.opened.elapsed() < HANDSHAKE_TIMEOUT => {
                        return moved;
                    }
                    _ => self.lost(id), // closed, timed out, or not our torrent
                },
                // Then length-prefixed messages; piece payloads stay slices of `rx`.
                Some(key) => match self.decoder.decode(&mut c.rx) {
                    Decode::Complete { value, .. } => self.t.handle_message(now, key, value),
                    Decode::Incomplete if open => return moved,
                    _ => self.lost(id), // closed, or a peer fault: close, tell the machine
                },
            }
            self.drain();
        }
    }

    /// Closes a connection and tells the machine: before the handshake that is a failed dial,
    /// after it a closed peer. The caller drains.
    fn lost(&mut self, id: u64) {
        let now = self.now();
        match self.conns.remove(&id) {
            Some(Conn { key: Some(key), .. }) => self.t.handle_peer_closed(now, key),
            Some(c) => self.t.handle_dial_failed(now, c.addr),
            None => {}
        }
    }

    /// The drain order: every action, then every event, until both queues stay empty.
    fn drain(&mut self) {
        loop {
            let mut any = false;
            while let Some(a) = self.t.poll_action() {
                any = true;
                self.perform(a);
            }
            while let Some(e) = self.t.poll_event() {
                any = true;
                match e {
                    TorrentEvent::PeerDisconnected { addr, reason, .. } => {
                        eprintln!("peer {addr} disconnected: {reason:?}");
                    }
                    TorrentEvent::Stopped { error } => {
                        self.stopped = Some(error.map_or(Ok(()), |e| Err(e.to_string())));
                    }
                    _ => {} // status, pieces, Completed: an application would show them
                }
            }
            if !any {
                return;
            }
        }
    }

    /// What to do with each action.
    fn perform(&mut self, action: Action) {
        let now = self.now();
        match action {
            // Encode into the peer's send buffer; `pump` flushes it as the socket takes it.
            // A peer that does not read what we send is dropped: the buffer is bounded.
            Action::Send { peer, message } => {
                let conn = self.conns.iter_mut().find(|(_, c)| c.key == Some(peer));
                if let Some((&id, c)) = conn {
                    message.encode(&mut c.tx);
                    if c.tx.len() > MAX_UNSENT {
                        self.lost(id);
                    }
                }
            }
            // The machine has already forgotten the key: just close the socket.
            Action::Disconnect { peer, .. } => self.conns.retain(|_, c| c.key != Some(peer)),
            // std has no non-blocking connect, so this blocks up to CONNECT_TIMEOUT: fine for
            // one peer. We send our handshake at once; the peer's arrives in `pump`.
            Action::Dial { addr } => match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
                .and_then(|s| s.set_nonblocking(true).map(|()| s))
            {
                Ok(sock) => {
                    let _ = sock.set_nodelay(true);
                    let conn = Conn {
                        sock,
                        addr,
                        key: None,
                        opened: std::time::Instant::now(),
                        rx: BytesMut::new(),
                        tx: self.ours.to_bytes().to_vec(),
                    };
                    self.conns.insert(self.next_conn, conn);
                    self.next_conn += 1;
                }
                Err(e) => {
                    eprintln!("dial {addr}: {e}");
                    self.t.handle_dial_failed(now, addr);
                }
            },
            // Uploads: read the block and hand it back (a seeder gets many of these).
            Action::ReadBlock {
                peer,
                piece,
                begin,
                len,
            } => {
                let mut buf = vec![0u8; len as usize];
                let result = match self.storage.io(piece, begin, &mut buf, false) {
                    Ok(()) => Ok(Bytes::from(buf)),
                    Err(e) => Err(DiskError(e.kind())),
                };
                self.t.handle_block_read(now, peer, piece, begin, result);
            }
            // Hash, write if it matches, report. rain's runtime hashes on a thread pool and
            // reports later; a driver may report in any order, at any later input.
            Action::VerifyAndWrite {
                piece,
                expected,
                blocks,
            } => {
                let result = self.verify_and_write(piece, expected, &blocks);
                self.t.handle_piece_written(now, piece, result);
            }
            // We gave no trackers, so this does not happen. A real driver performs the HTTP or
            // UDP announce (rain_proto::tracker has both codecs) and reports the reply.
            Action::Announce { request, .. } => {
                let e = TrackerError::Transport("no tracker client in this example".into());
                self.t.handle_announce_reply(now, request.id, Err(e));
            }
            // We gave no webseeds, so these do not happen either. A real driver GETs the
            // range and feeds the body to `handle_webseed_data`.
            Action::WebseedRequest(_) | Action::WebseedCancel { .. } => {}
        }
    }

    /// Lays the blocks out in one buffer (bytes no block covers are BEP 47 padding: zeros) and
    /// checks the SHA-1: `Ok(false)` on a mismatch, `Ok(true)` once written. rain's runtime
    /// hashes the `Bytes` slices in place; we copy once to keep this short.
    fn verify_and_write(
        &mut self,
        piece: u32,
        want: [u8; 20],
        blocks: &[Bytes],
    ) -> Result<bool, DiskError> {
        let layout = self.t.picker().expect("metadata").layout();
        let mut buf = vec![0u8; layout.piece_len(piece) as usize];
        for (k, b) in blocks.iter().enumerate() {
            let at = layout.block(piece, k as u32).begin as usize;
            buf[at..at + b.len()].copy_from_slice(b);
        }
        if hash::sha1(&buf) != want {
            return Ok(false);
        }
        let written = self.storage.io(piece, 0, &mut buf, true);
        written.map_err(|e| DiskError(e.kind()))?;
        Ok(true)
    }
}

impl Conn {
    /// Sends what the socket takes, reads what is there. Returns (still open, bytes moved).
    fn io(&mut self) -> (bool, bool) {
        let quiet =
            |e: &io::Error| matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted);
        let mut moved = false;
        while !self.tx.is_empty() {
            match self.sock.write(&self.tx) {
                Ok(n) if n > 0 => drop(self.tx.drain(..n)),
                Err(e) if quiet(&e) => break,
                _ => return (false, moved),
            }
            moved = true;
        }
        let have = self.rx.len();
        self.rx.resize(have + READ_CHUNK, 0);
        let read = self.sock.read(&mut self.rx[have..]);
        self.rx.truncate(have + *read.as_ref().unwrap_or(&0));
        match read {
            Ok(n) => (n > 0, true), // 0: the peer closed
            Err(e) => (quiet(&e), moved),
        }
    }
}

/// The torrent's files: one handle per non-padding file, with its offset in the torrent's
/// byte stream. Paths come sanitised from the metainfo parser (no `..`, never absolute).
struct Storage {
    piece_length: u64,
    files: Vec<(u64, u64, File)>,
}

impl Storage {
    fn create(dir: &Path, info: &Info) -> io::Result<Storage> {
        let mut files = Vec::new();
        for f in info.files.iter().filter(|f| !f.padding) {
            let path = dir.join(info.file_path(f).iter().collect::<PathBuf>());
            fs::create_dir_all(path.parent().unwrap_or(dir))?;
            let mut open = File::options();
            let file = open
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)?;
            file.set_len(f.length)?;
            files.push((f.offset, f.length, file));
        }
        let piece_length = u64::from(info.piece_length);
        Ok(Storage {
            piece_length,
            files,
        })
    }

    /// Reads or writes `buf.len()` bytes at `begin` in `piece`, in every file they touch, with
    /// positioned I/O (seek, then read or write) that works on every std platform.
    fn io(&mut self, piece: u32, begin: u32, buf: &mut [u8], write: bool) -> io::Result<()> {
        let at = u64::from(piece) * self.piece_length + u64::from(begin);
        for (offset, length, file) in &mut self.files {
            let start = at.max(*offset);
            let end = (at + buf.len() as u64).min(*offset + *length);
            if start < end {
                file.seek(SeekFrom::Start(start - *offset))?;
                let part = &mut buf[(start - at) as usize..(end - at) as usize];
                let done = if write {
                    file.write_all(part)
                } else {
                    file.read_exact(part)
                };
                done?;
            }
        }
        Ok(())
    }
}

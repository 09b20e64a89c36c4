//! Fuzz body for the whole [`Torrent`] machine: a leecher fed a sequence of peer inputs decoded
//! from the fuzz bytes (connections, every wire message with hostile indices and lengths,
//! extension messages, closes, clock jumps, disk results). It must never panic, and after
//! every input the machine's invariants hold and no block is requested twice from one peer
//! while the first request is outstanding.
//!
//! Each input takes a few bytes: an opcode, then its arguments; running out of bytes ends the
//! run. The same driver backs the proptest in `torrent/tests.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

use crate::extension::ExtHandshake;
use crate::hash::sha1;
use crate::picker::PeerKey;
use crate::rng::Seed;
use crate::time::Instant;
use crate::torrent::swarm::TestTorrent;
use crate::torrent::{Action, Direction, PeerInfo, Resume, Torrent, TorrentConfig, TorrentParams};
use crate::wire::{self, Message, PeerId, Reserved};

const SLOTS: usize = 4;

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.byte()?, self.byte()?]))
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a.to_vec()
    }
}

/// The driver: one leecher, up to four fake peers, and a checker of what it sends.
struct Driver {
    t: Torrent,
    tt: TestTorrent,
    now: Instant,
    slots: [Option<(PeerKey, bool)>; SLOTS],
    outstanding: BTreeMap<PeerKey, BTreeSet<wire::Block>>,
    verifies: Vec<(u32, [u8; 20], Vec<Bytes>)>,
    reads: Vec<(PeerKey, u32, u32, u32)>,
    next_id: u8,
}

impl Driver {
    fn new(seed: u8) -> Driver {
        let tt = TestTorrent::generate(u64::from(seed % 4), 48 * 1024, 160 * 1024, true);
        let half = seed & 0x80 != 0;
        let n = tt.info.piece_count();
        let have = half.then(|| {
            let mut b = crate::bitfield::Bitfield::new(n);
            for i in (0..n).step_by(2) {
                b.set(i);
            }
            b
        });
        let params = TorrentParams {
            info_hash: tt.info_hash,
            info: Some((tt.info.clone(), tt.info_bytes.clone())),
            peer_id: PeerId([b'U'; 20]),
            port: 6881,
            trackers: Vec::new(),
            resume: Resume {
                have,
                ..Resume::default()
            },
            stop_after_download: false,
            stop_after_metadata: false,
            our_addr: None,
            blocklist: None,
            webseeds: Vec::new(),
        };
        let now = Instant::ZERO;
        let mut t = Torrent::new(params, TorrentConfig::default(), Seed::from_u64(1), now);
        t.start(now);
        let mut d = Driver {
            t,
            tt,
            now,
            slots: [None; SLOTS],
            outstanding: BTreeMap::new(),
            verifies: Vec::new(),
            reads: Vec::new(),
            next_id: 0,
        };
        d.drain();
        d
    }

    fn drain(&mut self) {
        while let Some(a) = self.t.poll_action() {
            match a {
                Action::Send { peer, message } => match message {
                    Message::Request(b) => {
                        let set = self.outstanding.entry(peer).or_default();
                        assert!(set.insert(b), "{b:?} requested twice from {peer:?}");
                    }
                    Message::Cancel(b) => {
                        if let Some(s) = self.outstanding.get_mut(&peer) {
                            s.remove(&b);
                        }
                    }
                    _ => {}
                },
                Action::Disconnect { peer, .. } => self.forget(peer),
                Action::VerifyAndWrite {
                    piece,
                    expected,
                    blocks,
                } => self.verifies.push((piece, expected, blocks)),
                Action::ReadBlock {
                    peer,
                    piece,
                    begin,
                    len,
                } => self.reads.push((peer, piece, begin, len)),
                Action::Dial { .. }
                | Action::Announce { .. }
                | Action::WebseedRequest(_)
                | Action::WebseedCancel { .. } => {}
            }
        }
        while self.t.poll_event().is_some() {}
        self.t.check_invariants();
        let st = self.t.stats();
        assert_eq!(
            Some(st.pieces.have),
            self.t.bitfield().map(crate::bitfield::Bitfield::count)
        );
        assert!(st.bytes.wasted <= st.bytes.downloaded);
        assert!(st.bytes.completed <= st.bytes.total);
    }

    fn forget(&mut self, peer: PeerKey) {
        self.outstanding.remove(&peer);
        for s in &mut self.slots {
            if s.is_some_and(|(k, _)| k == peer) {
                *s = None;
            }
        }
    }

    fn block_data(&self, b: wire::Block) -> Option<Bytes> {
        let off = u64::from(b.index) * u64::from(self.tt.info.piece_length) + u64::from(b.begin);
        let end = off + u64::from(b.length);
        (end <= self.tt.data.len() as u64)
            .then(|| Bytes::copy_from_slice(&self.tt.data[off as usize..end as usize]))
    }

    #[allow(clippy::many_single_char_names, clippy::too_many_lines)]
    fn step(&mut self, c: &mut Cursor<'_>) -> Option<()> {
        let op = c.byte()?;
        let slot = usize::from(op >> 5) % SLOTS;
        let n = self.tt.info.piece_count();
        let arg = c.byte()?;
        let now = self.now;
        let key = self.slots[slot];
        if op % 18 == 0 || key.is_none() {
            if key.is_none() {
                self.next_id = self.next_id.wrapping_add(1);
                let mut id = [b'P'; 20];
                id[19] = self.next_id;
                let fast = arg & 1 != 0;
                let info = PeerInfo {
                    addr: SocketAddr::from(([10, 3, slot as u8, self.next_id], 7000)),
                    direction: if arg & 4 != 0 {
                        Direction::Outgoing
                    } else {
                        Direction::Incoming
                    },
                    peer_id: PeerId(id),
                    reserved: Reserved::default()
                        .with_fast(fast)
                        .with_extension(arg & 2 != 0),
                    encrypted: false,
                };
                if let Ok(k) = self.t.handle_peer_connected(now, info) {
                    self.slots[slot] = Some((k, fast));
                }
                self.drain();
            }
            return Some(());
        }
        let Some((k, fast)) = key else {
            return Some(());
        };
        let index = u32::from(arg) % (n + 2);
        let msg = match op % 18 {
            1 => {
                self.t.handle_peer_closed(now, k);
                self.forget(k);
                self.drain();
                return Some(());
            }
            2 => Message::Have(index),
            3 => Message::Bitfield(Bytes::from(c.take(usize::from(arg % 5)))),
            4 => Message::HaveAll,
            5 => Message::HaveNone,
            6 => {
                if !fast {
                    self.outstanding.remove(&k);
                }
                Message::Choke
            }
            7 => Message::Unchoke,
            8 if arg & 1 == 0 => Message::Interested,
            8 => Message::NotInterested,
            9 => Message::Request(wire::Block {
                index: index.min(n),
                begin: u32::from(c.u16()?) * 4,
                length: 1 + u32::from(c.byte()?) * 128,
            }),
            10 | 11 => {
                let mine: Vec<wire::Block> = self
                    .outstanding
                    .get(&k)
                    .map(|s| s.iter().copied().collect())
                    .unwrap_or_default();
                let b = if mine.is_empty() || arg & 0x80 != 0 {
                    wire::Block {
                        index,
                        begin: u32::from(c.byte()?) * 1024,
                        length: 1 + u32::from(c.byte()?) * 64,
                    }
                } else {
                    mine[usize::from(arg) % mine.len()]
                };
                if let Some(s) = self.outstanding.get_mut(&k) {
                    s.remove(&b);
                }
                if op % 18 == 11 {
                    Message::Reject(b)
                } else {
                    let mut data = self
                        .block_data(b)
                        .unwrap_or_else(|| Bytes::from(vec![0; b.length.min(16384) as usize]));
                    if arg & 0x40 != 0 && !data.is_empty() {
                        let mut v = data.to_vec();
                        v[0] ^= 1;
                        data = Bytes::from(v);
                    }
                    Message::Piece {
                        index: b.index,
                        begin: b.begin,
                        data,
                    }
                }
            }
            12 => Message::AllowedFast(index),
            13 => Message::Cancel(wire::Block {
                index,
                begin: 0,
                length: 1 + u32::from(c.byte()?) * 128,
            }),
            14 => {
                self.now = self.now + Duration::from_millis(u64::from(arg) * 500);
                self.t.handle_timeout(self.now);
                self.drain();
                return Some(());
            }
            15 => {
                for (piece, expected, blocks) in std::mem::take(&mut self.verifies) {
                    let layout = self.t.picker()?.layout().clone();
                    let mut buf = vec![0u8; layout.piece_len(piece) as usize];
                    for (i, b) in blocks.iter().enumerate() {
                        let blk = layout.block(piece, i as u32);
                        buf[blk.begin as usize..blk.begin as usize + b.len()].copy_from_slice(b);
                    }
                    self.t
                        .handle_piece_written(now, piece, Ok(sha1(&buf) == expected));
                }
                for (p, piece, begin, len) in std::mem::take(&mut self.reads) {
                    let data = self.block_data(wire::Block {
                        index: piece,
                        begin,
                        length: len,
                    });
                    self.t.handle_block_read(
                        now,
                        p,
                        piece,
                        begin,
                        data.ok_or(crate::torrent::DiskError(std::io::ErrorKind::Other)),
                    );
                }
                self.drain();
                return Some(());
            }
            16 => {
                let mut h = ExtHandshake::default();
                h.m.insert("ut_metadata".to_owned(), arg % 4);
                h.m.insert("ut_pex".to_owned(), arg / 4 % 4);
                h.reqq = Some(u32::from(c.byte()?));
                h.metadata_size = Some(u64::from(c.u16()?));
                let mut payload = Vec::new();
                h.encode(&mut payload);
                Message::Extended {
                    id: 0,
                    payload: Bytes::from(payload),
                }
            }
            _ => {
                let len = usize::from(c.byte()?) % 48;
                Message::Extended {
                    id: arg % 4,
                    payload: Bytes::from(c.take(len)),
                }
            }
        };
        self.t.handle_message(now, k, msg);
        self.drain();
        Some(())
    }
}

/// Runs the inputs decoded from `data` against one leecher. Never panics unless an
/// invariant breaks.
pub fn torrent_machine(data: &[u8]) {
    let Some((&seed, rest)) = data.split_first() else {
        return;
    };
    let mut d = Driver::new(seed);
    let mut c = Cursor(rest);
    let mut steps = 0;
    while steps < 4096 && d.step(&mut c).is_some() {
        steps += 1;
    }
}

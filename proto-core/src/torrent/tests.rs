//! Behaviour tests of the `Torrent` machine: whole swarms through the pure harness, and single
//! machines driven message by message by fake peers.
#![allow(clippy::many_single_char_names)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use super::swarm::{NetConfig, NodeSpec, Role, Swarm, TestTorrent};
use super::*;
use crate::extension::MetadataMessage;

#[path = "abuse_tests.rs"]
mod abuse;

fn leechers(n: usize) -> Vec<NodeSpec> {
    let mut v = vec![NodeSpec::new(Role::Seeder)];
    v.extend((0..n).map(|_| NodeSpec::new(Role::Leecher)));
    v
}

fn run_swarm(seed: u64, nodes: &[NodeSpec]) -> Swarm {
    let t = TestTorrent::generate(seed, 64 * 1024, 256 * 1024, true);
    let mut s = Swarm::new(
        seed,
        t,
        nodes,
        &TorrentConfig::default(),
        NetConfig::default(),
    );
    let done = s.run_until(Swarm::all_complete);
    assert!(
        done,
        "seed {seed}: not complete after {} steps at {:?}: {:?}",
        s.steps(),
        s.now(),
        s.nodes()
            .iter()
            .map(|n| n.torrent.stats().pieces.have)
            .collect::<Vec<_>>()
    );
    for n in s.nodes() {
        n.torrent.check_invariants();
    }
    s
}

#[test]
fn one_seeder_twenty_leechers_complete_with_identical_data() {
    for seed in [1u64, 2, 3] {
        let s = run_swarm(seed, &leechers(20));
        for (i, n) in s.nodes().iter().enumerate() {
            assert_eq!(n.data, s.torrent().data, "seed {seed} node {i} data");
            let st = n.torrent.stats();
            assert_eq!(st.status, Status::Seeding, "node {i}");
            assert_eq!(st.pieces.have, st.pieces.total);
            assert_eq!(st.bytes.allocated, st.bytes.total, "node {i} allocated");
            assert_eq!(
                (st.bytes.completed, st.bytes.incomplete),
                (st.bytes.total, 0),
                "node {i}"
            );
            if i > 0 {
                assert!(st.bytes.downloaded >= st.bytes.total - st.bytes.padding);
                assert!(n.events.iter().any(|e| e.1 == TorrentEvent::Completed));
            }
        }
        let uploaded: u64 = s
            .nodes()
            .iter()
            .map(|n| n.torrent.stats().bytes.uploaded)
            .sum();
        let downloaded: u64 = s
            .nodes()
            .iter()
            .map(|n| n.torrent.stats().bytes.downloaded)
            .sum();
        assert!(
            uploaded >= downloaded,
            "{uploaded} uploaded < {downloaded} downloaded"
        );
        // Leechers traded among themselves: the seeder did not upload everything alone.
        let seeder_up = s.nodes()[0].torrent.stats().bytes.uploaded;
        assert!(seeder_up < uploaded, "leechers uploaded too");
    }
}

#[test]
fn same_seed_same_trace_and_different_seed_differs() {
    let a = run_swarm(7, &leechers(20));
    let b = run_swarm(7, &leechers(20));
    let c = run_swarm(8, &leechers(20));
    assert_eq!(a.trace_hash(), b.trace_hash());
    assert_eq!(a.now(), b.now());
    assert_ne!(a.trace_hash(), c.trace_hash());
}

#[test]
fn corrupt_peer_is_banned_and_pieces_complete_from_others() {
    let mut nodes = vec![
        NodeSpec::new(Role::Seeder),
        NodeSpec {
            corrupt: true,
            ..NodeSpec::new(Role::Seeder)
        },
    ];
    nodes.extend((0..4).map(|_| NodeSpec::new(Role::Leecher)));
    let mut banned_somewhere = false;
    let mut total_wasted = 0;
    for seed in [11u64, 12, 13] {
        let s = run_swarm(seed, &nodes);
        let bad_ip = s.nodes()[1].addr.ip();
        let mut wasted = 0;
        for n in &s.nodes()[2..] {
            for (_, e) in &n.events {
                if let TorrentEvent::PeerBanned { ip, .. } = e {
                    assert_eq!(*ip, bad_ip, "only the corrupt node is banned");
                    banned_somewhere = true;
                }
            }
            wasted += n.torrent.stats().bytes.wasted;
        }
        total_wasted += wasted;
    }
    assert!(total_wasted > 0, "corrupt data was wasted");
    assert!(banned_somewhere, "the corrupt node was banned");
}

#[test]
fn last_piece_is_not_stranded_by_corrupt_and_stalling_peers() {
    // The shape the turmoil search found (seed 2333718968750658632): one honest seed, one
    // corrupt and one stalling peer, three leechers, a few big pieces.
    let mut nodes = vec![
        NodeSpec::new(Role::Seeder),
        NodeSpec {
            corrupt: true,
            ..NodeSpec::new(Role::Seeder)
        },
        NodeSpec {
            stall: true,
            ..NodeSpec::new(Role::Seeder)
        },
    ];
    nodes.extend((0..3).map(|_| NodeSpec::new(Role::Leecher)));
    for seed in 0..40u64 {
        let t = TestTorrent::generate(seed, 700 * 1024, 900 * 1024, false);
        let mut s = Swarm::new(
            seed,
            t,
            &nodes,
            &TorrentConfig::default(),
            NetConfig {
                max_steps: 300_000,
                ..NetConfig::default()
            },
        );
        let done = s.run_until(Swarm::all_complete);
        assert!(
            done,
            "seed {seed}: stranded at {:?}: {:?}",
            s.now(),
            s.nodes()
                .iter()
                .map(|n| {
                    let st = n.torrent.stats();
                    (st.pieces.have, st.downloads)
                })
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn magnet_leechers_fetch_metadata_then_complete() {
    let mut nodes = vec![NodeSpec::new(Role::Seeder), NodeSpec::new(Role::Leecher)];
    nodes.extend((0..4).map(|_| NodeSpec::new(Role::MagnetLeecher)));
    let s = run_swarm(21, &nodes);
    for n in &s.nodes()[2..] {
        let got = n.events.iter().find_map(|(_, e)| match e {
            TorrentEvent::MetadataReceived { info_bytes } => Some(info_bytes.clone()),
            _ => None,
        });
        assert_eq!(got.as_deref(), Some(&s.torrent().info_bytes[..]));
        assert!(n.events.iter().any(|(_, e)| matches!(
            e,
            TorrentEvent::StatusChanged {
                from: Status::DownloadingMetadata,
                to: Status::Downloading
            }
        )));
    }
}

// ---------------------------------------------------------------- single machine, fake peers

struct Solo {
    t: Torrent,
    now: Instant,
    actions: Vec<Action>,
    events: Vec<TorrentEvent>,
    tt: TestTorrent,
}

const LEN_32K: u64 = 32 * 1024;

impl Solo {
    fn new(role: Role, tt: TestTorrent, config: TorrentConfig) -> Solo {
        let n = tt.info.piece_count();
        let params = TorrentParams {
            info_hash: tt.info_hash,
            info: (role != Role::MagnetLeecher).then(|| (tt.info.clone(), tt.info_bytes.clone())),
            peer_id: PeerId([b'U'; 20]),
            port: 6881,
            trackers: Vec::new(),
            resume: Resume {
                have: (role == Role::Seeder).then(|| Bitfield::full(n)),
                ..Resume::default()
            },
            stop_after_download: false,
            stop_after_metadata: false,
            our_addr: None,
            blocklist: None,
            webseeds: Vec::new(),
        };
        let mut s = Solo {
            t: Torrent::new(params, config, Seed::from_u64(5), Instant::ZERO),
            now: Instant::ZERO,
            actions: Vec::new(),
            events: Vec::new(),
            tt,
        };
        s.t.start(s.now);
        s.drain();
        s.actions.clear();
        s
    }

    fn drain(&mut self) {
        while let Some(a) = self.t.poll_action() {
            self.actions.push(a);
        }
        while let Some(e) = self.t.poll_event() {
            self.events.push(e);
        }
    }

    fn connect(&mut self, i: u8, fast: bool, ext: bool) -> PeerKey {
        let mut id = [b'P'; 20];
        id[19] = i;
        let k = self
            .t
            .handle_peer_connected(
                self.now,
                PeerInfo {
                    addr: SocketAddr::from(([10, 9, 0, i], 7000)),
                    direction: Direction::Incoming,
                    peer_id: PeerId(id),
                    reserved: wire::Reserved::default()
                        .with_fast(fast)
                        .with_extension(ext),
                    encrypted: false,
                },
            )
            .expect("accepted");
        self.drain();
        k
    }

    fn msg(&mut self, k: PeerKey, m: Message) {
        self.t.handle_message(self.now, k, m);
        self.drain();
        self.t.check_invariants();
    }

    fn take(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    fn sent(actions: &[Action], to: PeerKey) -> Vec<Message> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send { peer, message } if *peer == to => Some(message.clone()),
                _ => None,
            })
            .collect()
    }
}

fn ext_handshake(metadata_size: Option<u64>) -> Message {
    let mut h = ExtHandshake::default();
    h.m.insert("ut_metadata".to_owned(), 3);
    h.m.insert("ut_pex".to_owned(), 4);
    h.metadata_size = metadata_size;
    let mut payload = Vec::new();
    h.encode(&mut payload);
    Message::Extended {
        id: 0,
        payload: Bytes::from(payload),
    }
}

#[test]
fn endgame_requests_duplicates_and_cancels_them_on_arrival() {
    let tt = TestTorrent::generate(3, LEN_32K, LEN_32K, false);
    let mut s = Solo::new(Role::Leecher, tt, TorrentConfig::default());
    let a = s.connect(1, true, false);
    let b = s.connect(2, true, false);
    s.msg(a, Message::HaveAll);
    s.msg(a, Message::Unchoke);
    let to_a: Vec<wire::Block> = Solo::sent(&s.take(), a)
        .into_iter()
        .filter_map(|m| match m {
            Message::Request(b) => Some(b),
            _ => None,
        })
        .collect();
    assert_eq!(to_a.len(), 2, "both blocks requested from a");
    s.msg(b, Message::HaveAll);
    s.msg(b, Message::Unchoke);
    let to_b: Vec<wire::Block> = Solo::sent(&s.take(), b)
        .into_iter()
        .filter_map(|m| match m {
            Message::Request(b) => Some(b),
            _ => None,
        })
        .collect();
    assert!(s.t.picker().unwrap().in_endgame());
    assert_eq!(
        to_b.len(),
        2,
        "endgame duplicates the outstanding blocks to b"
    );
    let first = to_a[0];
    let off = first.index as usize * s.tt.info.piece_length as usize + first.begin as usize;
    let data = Bytes::copy_from_slice(&s.tt.data[off..off + first.length as usize]);
    s.msg(
        a,
        Message::Piece {
            index: first.index,
            begin: first.begin,
            data,
        },
    );
    let acts = s.take();
    assert_eq!(
        Solo::sent(&acts, b),
        vec![Message::Cancel(first)],
        "b is cancelled"
    );
    assert!(
        !Solo::sent(&acts, a)
            .iter()
            .any(|m| matches!(m, Message::Cancel(_)))
    );
}

#[test]
fn choked_peer_requests_are_rejected_if_fast_and_dropped_otherwise() {
    let tt = TestTorrent::generate(4, 128 * 1024, 128 * 1024, false);
    let mut s = Solo::new(Role::Seeder, tt, TorrentConfig::default());
    let fast = s.connect(1, true, false);
    let slow = s.connect(2, false, false);
    let first = Solo::sent(&s.take(), fast);
    let allowed: Vec<u32> = first
        .iter()
        .filter_map(|m| match m {
            Message::AllowedFast(i) => Some(*i),
            _ => None,
        })
        .collect();
    let n = s.tt.info.piece_count();
    let outside = (0..n).find(|i| !allowed.contains(i)).unwrap();
    let req = wire::Block {
        index: outside,
        begin: 0,
        length: 1024,
    };
    s.msg(fast, Message::Request(req));
    assert_eq!(
        s.take(),
        vec![Action::Send {
            peer: fast,
            message: Message::Reject(req)
        }]
    );
    s.msg(slow, Message::Request(req));
    assert!(
        s.take().is_empty(),
        "a non-fast peer's request is silently dropped"
    );
    // Once unchoked, the same request is served.
    s.msg(fast, Message::Interested);
    assert_eq!(Solo::sent(&s.take(), fast), vec![Message::Unchoke]);
    s.msg(fast, Message::Request(req));
    let acts = s.take();
    assert!(matches!(acts[..], [Action::ReadBlock { piece, len: 1024, .. }] if piece == outside));
    // A request for a piece out of range is a protocol violation.
    s.msg(
        slow,
        Message::Request(wire::Block {
            index: n,
            begin: 0,
            length: 1,
        }),
    );
    assert!(s.take().iter().any(|a| matches!(
        a,
        Action::Disconnect {
            reason: DisconnectReason::Misbehaved(Violation::PieceIndex(_)),
            ..
        }
    )));
}

#[test]
fn request_flood_is_bounded_by_max_requests_in() {
    let tt = TestTorrent::generate(4, 128 * 1024, 128 * 1024, false);
    let config = TorrentConfig::default();
    let max_in = config.max_requests_in as usize;
    let mut s = Solo::new(Role::Seeder, tt, config);
    for (i, fast) in [(1u8, true), (2, false)] {
        let p = s.connect(i, fast, false);
        s.msg(p, Message::Interested);
        s.take();
        for k in 0..max_in as u32 + 50 {
            s.msg(
                p,
                Message::Request(wire::Block {
                    index: 0,
                    begin: k,
                    length: 1,
                }),
            );
        }
        let acts = s.take();
        let reads = acts
            .iter()
            .filter(|a| matches!(a, Action::ReadBlock { .. }))
            .count();
        let rejects = Solo::sent(&acts, p)
            .iter()
            .filter(|m| matches!(m, Message::Reject(_)))
            .count();
        assert_eq!(reads, max_in, "fast={fast}");
        assert_eq!(rejects, if fast { 50 } else { 0 }, "fast={fast}");
        assert_eq!(
            s.t.peers().iter().find(|v| v.key == p).unwrap().requests_in,
            max_in
        );
        // Choking a fast peer rejects its queue (BEP 6).
        s.t.choke(s.now, p);
        s.drain();
        let rejects = Solo::sent(&s.take(), p)
            .iter()
            .filter(|m| matches!(m, Message::Reject(_)))
            .count();
        assert_eq!(rejects, if fast { max_in } else { 0 });
    }
}

#[test]
fn pex_flood_is_bounded() {
    let tt = TestTorrent::generate(4, 128 * 1024, 128 * 1024, false);
    let mut s = Solo::new(Role::Leecher, tt, TorrentConfig::default());
    let p = s.connect(1, true, true);
    s.msg(p, ext_handshake(None));
    for round in 0..20u32 {
        let added: Vec<extension::PexPeer> = (0..50u32)
            .map(|k| extension::PexPeer {
                addr: SocketAddr::from(([172, 16, round as u8, k as u8 + 1], 6881)),
                flags: extension::PexFlags(0),
            })
            .collect();
        let mut payload = Vec::new();
        extension::PexMessage {
            added,
            dropped: Vec::new(),
        }
        .encode(&mut payload)
        .unwrap();
        s.msg(
            p,
            Message::Extended {
                id: extension::id::UT_PEX,
                payload: Bytes::from(payload),
            },
        );
    }
    assert_eq!(
        s.t.stats().addresses.pex,
        50,
        "one message per interval is taken"
    );
    let dials = s
        .take()
        .iter()
        .filter(|a| matches!(a, Action::Dial { .. }))
        .count();
    assert_eq!(dials, 50);
    // After the interval, the next message is accepted.
    s.now = s.now + Duration::from_secs(31);
    let mut payload = Vec::new();
    extension::PexMessage {
        added: vec![extension::PexPeer {
            addr: SocketAddr::from(([172, 17, 0, 1], 6881)),
            flags: extension::PexFlags(0),
        }],
        dropped: Vec::new(),
    }
    .encode(&mut payload)
    .unwrap();
    s.msg(
        p,
        Message::Extended {
            id: extension::id::UT_PEX,
            payload: Bytes::from(payload),
        },
    );
    assert_eq!(s.t.stats().addresses.pex, 51);
}

#[test]
fn magnet_refuses_metadata_with_a_wrong_hash_then_accepts_the_right_one() {
    let tt = TestTorrent::generate(6, 128 * 1024, 128 * 1024, false);
    let size = tt.info_bytes.len() as u64;
    let mut s = Solo::new(Role::MagnetLeecher, tt, TorrentConfig::default());
    assert_eq!(s.t.status(), Status::DownloadingMetadata);
    let liar = s.connect(1, true, true);
    s.msg(liar, ext_handshake(Some(size)));
    let reqs: Vec<u32> = Solo::sent(&s.take(), liar)
        .into_iter()
        .filter_map(|m| match m {
            Message::Extended { id: 3, payload } => match MetadataMessage::decode(&payload) {
                Ok(MetadataMessage::Request { piece }) => Some(piece),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(
        reqs.len(),
        extension::ut_metadata::piece_count(size as usize) as usize
    );
    for piece in reqs {
        let start = piece as usize * extension::ut_metadata::PIECE_LEN;
        let end = (start + extension::ut_metadata::PIECE_LEN).min(size as usize);
        let mut payload = Vec::new();
        MetadataMessage::Data {
            piece,
            total_size: size,
            data: Bytes::from(vec![0x55; end - start]),
        }
        .encode(&mut payload);
        s.msg(
            liar,
            Message::Extended {
                id: extension::id::UT_METADATA,
                payload: Bytes::from(payload),
            },
        );
    }
    assert!(s.take().iter().any(|a| matches!(
        a,
        Action::Disconnect {
            peer,
            reason: DisconnectReason::Misbehaved(Violation::Metadata(MetadataFault::HashMismatch))
        } if *peer == liar
    )));
    assert_eq!(s.t.status(), Status::DownloadingMetadata);
    assert!(s.t.info().is_none());
    // An honest peer then serves the real thing.
    let honest = s.connect(2, true, true);
    s.msg(honest, Message::HaveAll);
    s.msg(honest, ext_handshake(Some(size)));
    for _ in 0..4 {
        let acts = s.take();
        for m in Solo::sent(&acts, honest) {
            let Message::Extended { id: 3, payload } = m else {
                continue;
            };
            let Ok(MetadataMessage::Request { piece }) = MetadataMessage::decode(&payload) else {
                continue;
            };
            let info = s.tt.info_bytes.clone();
            let start = piece as usize * extension::ut_metadata::PIECE_LEN;
            let end = (start + extension::ut_metadata::PIECE_LEN).min(info.len());
            let mut out = Vec::new();
            MetadataMessage::Data {
                piece,
                total_size: size,
                data: info.slice(start..end),
            }
            .encode(&mut out);
            s.msg(
                honest,
                Message::Extended {
                    id: extension::id::UT_METADATA,
                    payload: Bytes::from(out),
                },
            );
        }
    }
    assert!(
        s.events
            .iter()
            .any(|e| matches!(e, TorrentEvent::MetadataReceived { .. }))
    );
    assert_eq!(s.t.status(), Status::Downloading);
    assert_eq!(s.t.info_bytes(), Some(&s.tt.info_bytes));
    // The have-all sent before the metadata now counts: we are interested.
    assert!(
        s.t.peers()
            .iter()
            .any(|v| v.key == honest && v.am_interested && v.seed)
    );
}

#[test]
fn snub_cancels_and_reassigns_keepalive_and_idle_timeout() {
    let tt = TestTorrent::generate(4, 128 * 1024, 128 * 1024, false);
    let config = TorrentConfig::default();
    let mut s = Solo::new(Role::Leecher, tt, config.clone());
    let a = s.connect(1, true, false);
    s.msg(a, Message::HaveAll);
    s.msg(a, Message::Unchoke);
    let reqs = Solo::sent(&s.take(), a)
        .iter()
        .filter(|m| matches!(m, Message::Request(_)))
        .count();
    assert_eq!(reqs as u32, config.initial_requests_out);
    assert!(s.t.poll_timeout() <= Some(Instant::ZERO + config.request_timeout));
    // 20 s without a block: snubbed, its requests cancelled, its depth 1.
    s.now = Instant::ZERO + config.request_timeout;
    s.t.handle_timeout(s.now);
    s.drain();
    let msgs = Solo::sent(&s.take(), a);
    let cancels = msgs
        .iter()
        .filter(|m| matches!(m, Message::Cancel(_)))
        .count();
    let again = msgs
        .iter()
        .filter(|m| matches!(m, Message::Request(_)))
        .count();
    assert_eq!(cancels, reqs);
    assert_eq!(again, 1, "a snubbed peer gets one request at a time");
    let v = &s.t.peers()[0];
    assert!(v.snubbed && v.pipeline_depth == 1);
    assert_eq!(s.t.stats().downloads.snubbed, 1);
    // Keep-alive after 60 s of our silence (a peer we want nothing from).
    let mut q = Solo::new(Role::Leecher, s.tt.clone(), config.clone());
    let b = q.connect(2, true, false);
    q.msg(b, Message::HaveNone);
    q.take();
    q.now = Instant::ZERO + config.keep_alive_interval;
    q.t.handle_timeout(q.now);
    q.drain();
    assert_eq!(Solo::sent(&q.take(), b), vec![Message::KeepAlive]);
    // Nothing from the peer for 2 min: disconnected.
    s.now = Instant::ZERO + config.idle_timeout;
    s.t.handle_timeout(s.now);
    s.drain();
    assert!(s.take().contains(&Action::Disconnect {
        peer: a,
        reason: DisconnectReason::TimedOut
    }));
    assert!(s.t.peers().is_empty());
    s.t.check_invariants();
}

#[test]
fn fast_peer_gets_several_pieces_in_flight() {
    // One fast seed on a 256 KiB torrent of 16 KiB pieces: the depth grows past one piece.
    let tt = loop_torrent_with_small_pieces();
    let nodes = [NodeSpec::new(Role::Seeder), NodeSpec::new(Role::Leecher)];
    let mut s = Swarm::new(
        1,
        tt,
        &nodes,
        &TorrentConfig::default(),
        NetConfig {
            latency: Duration::from_millis(50),
            bandwidth: Some(4 * 1024 * 1024),
            ..NetConfig::default()
        },
    );
    let mut max_pieces = 0;
    let mut max_depth = 0;
    let done = s.run_until(|s| {
        let t = &s.nodes()[1].torrent;
        if let (Some(p), Some(v)) = (t.picker(), t.peers().first()) {
            let pieces: BTreeSet<u32> = p.requests_of(v.key).map(|b| b.piece).collect();
            max_pieces = max_pieces.max(pieces.len());
            max_depth = max_depth.max(v.pipeline_depth);
        }
        s.all_complete()
    });
    assert!(done);
    assert!(
        max_pieces >= 3,
        "pieces in flight from one peer: {max_pieces}"
    );
    assert!(max_depth > TorrentConfig::default().initial_requests_out);
}

fn loop_torrent_with_small_pieces() -> TestTorrent {
    (0..64)
        .map(|seed| TestTorrent::generate(seed, 1024 * 1024, 1024 * 1024, false))
        .find(|t| t.info.piece_length == 16 * 1024)
        .expect("a 16 KiB-piece torrent")
}

mod prop {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        /// Random peer inputs (hostile indices and lengths included): no panic, invariants
        /// hold, no block requested twice from one peer while outstanding.
        #[test]
        fn random_peer_inputs_keep_invariants(data in proptest::collection::vec(any::<u8>(), 0..1200)) {
            crate::fuzz::torrent_machine::torrent_machine(&data);
        }
    }
}

#[test]
fn blocklist_filters_dials_and_refuses_incoming() {
    use crate::blocklist::{Blocklist, BlocklistLimits};

    let tt = TestTorrent::generate(6, LEN_32K, LEN_32K, false);
    let mut s = Solo::new(Role::Leecher, tt, TorrentConfig::default());
    let list = Blocklist::parse(b"# test\n10.9.0.0/16\n", BlocklistLimits::default()).unwrap();
    let mut use_list = BlocklistUse {
        list: std::sync::Arc::new(list),
        outgoing: true,
        incoming: true,
    };
    s.t.set_blocklist(Some(use_list.clone()));
    let blocked = SocketAddr::from(([10, 9, 1, 2], 7000));
    let allowed = SocketAddr::from(([192, 0, 2, 1], 7000));
    s.t.add_peer_addr(s.now, blocked, PeerSource::Tracker);
    s.t.add_peer_addr(s.now, allowed, PeerSource::Tracker);
    s.drain();
    let dials: Vec<SocketAddr> = s
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Dial { addr } => Some(*addr),
            _ => None,
        })
        .collect();
    assert_eq!(dials, [allowed], "a blocked address is never dialled");

    let incoming = |addr: SocketAddr| PeerInfo {
        addr,
        direction: Direction::Incoming,
        peer_id: PeerId([b'Q'; 20]),
        reserved: wire::Reserved::default(),
        encrypted: false,
    };
    let from_blocked = SocketAddr::from(([10, 9, 0, 3], 7000));
    assert_eq!(
        s.t.handle_peer_connected(s.now, incoming(from_blocked)),
        Err(Refused::Blocked)
    );
    // With incoming checks off (rain's per-direction switches) the same peer is accepted.
    use_list.incoming = false;
    s.t.set_blocklist(Some(use_list));
    assert!(
        s.t.handle_peer_connected(s.now, incoming(from_blocked))
            .is_ok()
    );
}

// ---------------------------------------------------------------- dialing and memory budget

fn dials(actions: &[Action]) -> Vec<SocketAddr> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Dial { addr } => Some(*addr),
            _ => None,
        })
        .collect()
}

fn requests(actions: &[Action], to: PeerKey) -> Vec<wire::Block> {
    Solo::sent(actions, to)
        .into_iter()
        .filter_map(|m| match m {
            Message::Request(b) => Some(b),
            _ => None,
        })
        .collect()
}

#[test]
fn seeding_torrent_dials_added_peers() {
    // Transmission never dials a loopback tracker peer: a seed must dial it.
    let tt = TestTorrent::generate(4, 128 * 1024, 128 * 1024, false);
    let mut s = Solo::new(Role::Seeder, tt, TorrentConfig::default());
    let addr = SocketAddr::from(([10, 1, 1, 1], 7000));
    s.t.add_peer_addr(s.now, addr, PeerSource::Manual);
    s.drain();
    assert_eq!(dials(&s.take()), vec![addr]);
}

#[test]
fn closed_outgoing_peer_is_dialled_again_after_reconnect_delay() {
    let tt = TestTorrent::generate(4, 128 * 1024, 128 * 1024, false);
    let config = TorrentConfig::default();
    let delay = config.address_book.reconnect_delay;
    let mut s = Solo::new(Role::Leecher, tt, config);
    let addr = SocketAddr::from(([10, 1, 1, 1], 7000));
    s.t.add_peer_addr(s.now, addr, PeerSource::Manual);
    s.drain();
    assert_eq!(dials(&s.take()), vec![addr]);
    let k =
        s.t.handle_peer_connected(
            s.now,
            PeerInfo {
                addr,
                direction: Direction::Outgoing,
                peer_id: PeerId([b'Q'; 20]),
                reserved: wire::Reserved::default(),
                encrypted: false,
            },
        )
        .expect("accepted");
    s.t.handle_peer_closed(s.now, k);
    s.drain();
    assert!(dials(&s.take()).is_empty(), "not at once");
    let later = s.now + delay;
    assert!(s.t.poll_timeout().is_some_and(|t| t <= later));
    s.now = later;
    s.t.handle_timeout(s.now);
    s.drain();
    assert_eq!(dials(&s.take()), vec![addr], "dialled again");
}

#[test]
fn one_connection_per_ip_except_loopback() {
    let tt = TestTorrent::generate(4, 128 * 1024, 128 * 1024, false);
    let mut s = Solo::new(Role::Leecher, tt, TorrentConfig::default());
    let lo = [7001u16, 7002].map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
    let same = [7001u16, 7002].map(|p| SocketAddr::from(([10, 1, 1, 1], p)));
    for a in lo.iter().chain(&same) {
        s.t.add_peer_addr(s.now, *a, PeerSource::Tracker);
    }
    s.drain();
    let mut d = dials(&s.take());
    d.sort();
    assert_eq!(
        d.len(),
        3,
        "both loopback ports and one of the shared IP: {d:?}"
    );
    assert!(lo.iter().all(|a| d.contains(a)));
    let dialled = *same.iter().find(|a| d.contains(a)).unwrap();
    let other = *same.iter().find(|a| **a != dialled).unwrap();
    // The other port of the shared IP waits in the book, it is not forgotten.
    s.t.handle_dial_failed(s.now, dialled);
    s.now = s.now + TorrentConfig::default().address_book.reconnect_delay;
    s.t.handle_timeout(s.now);
    s.drain();
    assert!(dials(&s.take()).contains(&other));
}

#[test]
fn written_pieces_free_memory_for_new_pieces() {
    // A budget of one piece: the next piece starts only once the first is written.
    let tt = TestTorrent::generate(6, 2048 * 1024, 2048 * 1024, false);
    let piece_len = u64::from(tt.info.piece_length);
    let config = TorrentConfig {
        max_piece_memory: piece_len,
        ..TorrentConfig::default()
    };
    let mut s = Solo::new(Role::Leecher, tt, config);
    let p = s.connect(1, true, false);
    s.msg(p, Message::HaveAll);
    s.msg(p, Message::Unchoke);
    let mut verifying = Vec::new();
    let mut pending = requests(&s.take(), p);
    assert!(!pending.is_empty());
    // Serve every request, oldest first, until nothing more is asked for.
    while !pending.is_empty() {
        serve(&mut s, p, pending.remove(0));
        let acts = s.take();
        pending.extend(requests(&acts, p));
        verifying.extend(acts.iter().filter_map(|a| match a {
            Action::VerifyAndWrite { piece, .. } => Some(*piece),
            _ => None,
        }));
    }
    assert!(!verifying.is_empty(), "a piece completed");
    let n = s.tt.info.piece_count() as usize;
    assert!(verifying.len() < n, "the budget held new pieces back");
    // Writing them frees the budget: requests resume without any new message from the peer.
    for piece in verifying {
        s.t.handle_piece_written(s.now, piece, Ok(true));
    }
    s.drain();
    s.t.check_invariants();
    assert!(!requests(&s.take(), p).is_empty(), "requests resumed");
}

/// Answers request `b` with the test data.
fn serve(s: &mut Solo, p: PeerKey, b: wire::Block) {
    let piece_len = s.tt.info.piece_length as usize;
    let off = b.index as usize * piece_len + b.begin as usize;
    let data = Bytes::copy_from_slice(&s.tt.data[off..off + b.length as usize]);
    s.msg(
        p,
        Message::Piece {
            index: b.index,
            begin: b.begin,
            data,
        },
    );
}

/// Reserved bytes of `pieces` (whole piece lengths).
fn reserved_for(s: &Solo, pieces: &BTreeSet<u32>) -> u64 {
    let layout = s.t.picker().unwrap().layout();
    pieces.iter().map(|&i| u64::from(layout.piece_len(i))).sum()
}

/// A leecher with a deep first pipeline (several pieces per top-up) and `limit` of piece
/// memory, and a connected seed that unchoked it.
fn memory_limited(limit: u64) -> (Solo, PeerKey) {
    let tt = TestTorrent::generate(21, 1024 * 1024, 1024 * 1024, false);
    let config = TorrentConfig {
        max_piece_memory: limit,
        initial_requests_out: 64,
        ..TorrentConfig::default()
    };
    let mut s = Solo::new(Role::Leecher, tt, config);
    let p = s.connect(1, true, false);
    s.msg(p, Message::HaveAll);
    s.msg(p, Message::Unchoke);
    (s, p)
}

#[test]
fn raising_the_piece_memory_limit_lets_held_back_peers_start_pieces() {
    let (mut s, p) = memory_limited(0);
    let piece_len = u64::from(s.tt.info.piece_length);
    assert!(
        requests(&s.take(), p).is_empty(),
        "a zero limit starts nothing"
    );
    assert_eq!((s.t.piece_memory(), s.t.piece_buffers()), (0, 0));
    assert!(
        s.t.piece_memory_wanted() >= piece_len,
        "the held-back peer wants memory"
    );
    // Raised to two pieces: the peer starts exactly two, without any message from it.
    s.t.set_piece_memory_limit(s.now, 2 * piece_len);
    s.drain();
    s.t.check_invariants();
    let pieces: BTreeSet<u32> = requests(&s.take(), p).iter().map(|b| b.index).collect();
    assert_eq!(pieces.len(), 2, "{pieces:?}");
    assert_eq!(s.t.piece_memory(), reserved_for(&s, &pieces));
    assert_eq!(s.t.piece_buffers(), 2);
    assert!(s.t.piece_memory_wanted() > 0, "its pipeline wants more");
    // A held-back peer that leaves wants nothing any more.
    s.t.handle_peer_closed(s.now, p);
    s.t.check_invariants();
    assert_eq!(s.t.piece_memory_wanted(), 0);
}

#[test]
fn lowering_the_piece_memory_limit_starts_no_new_piece_but_started_ones_finish() {
    let (mut s, p) = memory_limited(TorrentConfig::default().max_piece_memory);
    let mut pending = requests(&s.take(), p);
    let started: BTreeSet<u32> = pending.iter().map(|b| b.index).collect();
    assert!(started.len() > 1);
    assert_eq!(s.t.piece_memory(), reserved_for(&s, &started));
    s.t.set_piece_memory_limit(s.now, 0);
    s.drain();
    let acts = s.take();
    assert!(
        !Solo::sent(&acts, p)
            .iter()
            .any(|m| matches!(m, Message::Cancel(_))),
        "lowering cancels nothing"
    );
    let mut verifying = BTreeSet::new();
    while !pending.is_empty() {
        let b = pending.remove(0);
        serve(&mut s, p, b);
        let acts = s.take();
        for r in requests(&acts, p) {
            assert!(started.contains(&r.index), "new piece {} started", r.index);
            pending.push(r);
        }
        verifying.extend(acts.iter().filter_map(|a| match a {
            Action::VerifyAndWrite { piece, .. } => Some(*piece),
            _ => None,
        }));
    }
    assert_eq!(verifying, started, "every started piece finished");
    // Waiting for their write, they still hold their memory; written, they free it, and
    // with a zero limit nothing new starts: the peer is held back.
    assert_eq!(s.t.piece_memory(), reserved_for(&s, &started));
    for &piece in &verifying {
        s.t.handle_piece_written(s.now, piece, Ok(true));
    }
    s.drain();
    s.t.check_invariants();
    assert_eq!((s.t.piece_memory(), s.t.piece_buffers()), (0, 0));
    assert!(requests(&s.take(), p).is_empty());
    assert!(s.t.piece_memory_wanted() > 0);
}

#[test]
fn a_piece_longer_than_the_limit_starts_alone() {
    let (mut s, p) = memory_limited(1);
    let pieces: BTreeSet<u32> = requests(&s.take(), p).iter().map(|b| b.index).collect();
    assert_eq!(pieces.len(), 1, "{pieces:?}");
    assert_eq!(s.t.piece_memory(), reserved_for(&s, &pieces));
}

#[test]
fn an_unrequested_block_without_piece_memory_is_dropped() {
    let (mut s, p) = memory_limited(0);
    s.take();
    serve(
        &mut s,
        p,
        wire::Block {
            index: 3,
            begin: 0,
            length: 16 * 1024,
        },
    );
    assert_eq!((s.t.piece_memory(), s.t.piece_buffers()), (0, 0));
    assert_eq!(s.t.stats().bytes.wasted, 16 * 1024);
}

#[test]
fn a_block_served_once_is_served_again_when_asked_again() {
    // After a hash failure caused by another peer's garbage, the honest seed is asked for the
    // same blocks again; refusing them (rain's rule) strands the piece for ever.
    let tt = TestTorrent::generate(4, 128 * 1024, 128 * 1024, false);
    let mut s = Solo::new(Role::Seeder, tt, TorrentConfig::default());
    let p = s.connect(1, true, false);
    s.msg(p, Message::Interested);
    s.take();
    let req = wire::Block {
        index: 0,
        begin: 0,
        length: 16 * 1024,
    };
    for round in 0..2 {
        s.msg(p, Message::Request(req));
        let acts = s.take();
        assert!(
            acts.iter().any(|a| matches!(
                a,
                Action::ReadBlock {
                    piece: 0,
                    begin: 0,
                    ..
                }
            )),
            "round {round}: {acts:?}"
        );
        let data = Bytes::copy_from_slice(&s.tt.data[..16 * 1024]);
        s.t.handle_block_read(s.now, p, 0, 0, Ok(data));
        s.drain();
        assert!(
            Solo::sent(&s.take(), p).iter().any(|m| matches!(
                m,
                Message::Piece {
                    index: 0,
                    begin: 0,
                    ..
                }
            )),
            "round {round}: served"
        );
    }
}

#[test]
fn dht_port_is_exchanged_only_when_the_dht_runs_and_the_torrent_is_public() {
    for (dht_port, private) in [(Some(7246u16), false), (None, false), (Some(7246), true)] {
        let mut tt = TestTorrent::generate(4, 128 * 1024, 128 * 1024, false);
        tt.info.private = private;
        let config = TorrentConfig {
            dht_port,
            ..TorrentConfig::default()
        };
        let mut s = Solo::new(Role::Leecher, tt, config);
        let k =
            s.t.handle_peer_connected(
                s.now,
                PeerInfo {
                    addr: SocketAddr::from(([10, 9, 0, 1], 7000)),
                    direction: Direction::Incoming,
                    peer_id: PeerId([b'P'; 20]),
                    reserved: wire::Reserved::default().with_fast(true).with_dht(true),
                    encrypted: false,
                },
            )
            .unwrap();
        s.drain();
        let works = dht_port.is_some() && !private;
        let sent_port = Solo::sent(&s.take(), k).contains(&Message::Port(7246));
        assert_eq!(sent_port, works, "{dht_port:?} private={private}");
        s.msg(k, Message::Port(6999));
        let heard = s.events.iter().any(|e| {
            *e == TorrentEvent::DhtNode {
                addr: SocketAddr::from(([10, 9, 0, 1], 6999)),
            }
        });
        assert_eq!(heard, works, "{dht_port:?} private={private}");
    }
}

#[test]
fn metadata_serving_is_capped_per_connection() {
    let tt = TestTorrent::generate(6, 128 * 1024, 128 * 1024, false);
    let pieces = extension::ut_metadata::piece_count(tt.info_bytes.len());
    let mut s = Solo::new(Role::Seeder, tt, TorrentConfig::default());
    let p = s.connect(1, true, true);
    s.msg(p, ext_handshake(None));
    s.take();
    let (mut data, mut rejects) = (0, 0);
    for _ in 0..50 {
        let mut payload = Vec::new();
        MetadataMessage::Request { piece: 0 }.encode(&mut payload);
        s.msg(
            p,
            Message::Extended {
                id: extension::id::UT_METADATA,
                payload: Bytes::from(payload),
            },
        );
        for m in Solo::sent(&s.take(), p) {
            if let Message::Extended { id: 3, payload } = m {
                match MetadataMessage::decode(&payload) {
                    Ok(MetadataMessage::Data { .. }) => data += 1,
                    Ok(MetadataMessage::Reject { .. }) => rejects += 1,
                    other => panic!("{other:?}"),
                }
            }
        }
    }
    let cap = pieces * super::metadata::METADATA_SERVES_PER_PIECE;
    assert_eq!(data, cap);
    assert_eq!(rejects, 50 - cap);
}

// ---------------------------------------------------------------- protocol violations (R22–R30)

/// The reason `k` was disconnected with, if it was.
fn disconnect_reason(actions: &[Action], k: PeerKey) -> Option<DisconnectReason> {
    actions.iter().find_map(|a| match a {
        Action::Disconnect { peer, reason } if *peer == k => Some(*reason),
        _ => None,
    })
}

#[test]
fn each_protocol_violation_disconnects_with_its_reason() {
    let tt = TestTorrent::generate(4, 256 * 1024, 256 * 1024, false);
    let n = tt.info.piece_count();
    let plen = tt.info.piece_length;
    let cases: Vec<(bool, Message, Violation)> = vec![
        // R22: a bitfield of the wrong length.
        (
            true,
            Message::Bitfield(Bytes::from(vec![0u8; n.div_ceil(8) as usize + 1])),
            Violation::BitfieldLength,
        ),
        // R23: have / allowed-fast for a piece that does not exist.
        (true, Message::Have(n), Violation::PieceIndex(n)),
        (
            true,
            Message::AllowedFast(n + 7),
            Violation::PieceIndex(n + 7),
        ),
        // R26: requests longer than a block or past the piece end.
        (
            true,
            Message::Request(wire::Block {
                index: 0,
                begin: 0,
                length: 32 * 1024,
            }),
            Violation::BadRequest,
        ),
        (
            true,
            Message::Request(wire::Block {
                index: 0,
                begin: plen - 1024,
                length: 2048,
            }),
            Violation::BadRequest,
        ),
        // R30: fast-extension messages from a peer that did not negotiate it.
        (false, Message::HaveAll, Violation::NotFast),
        (false, Message::AllowedFast(0), Violation::NotFast),
    ];
    for (i, (fast, message, want)) in cases.into_iter().enumerate() {
        let mut s = Solo::new(Role::Leecher, tt.clone(), TorrentConfig::default());
        let k = s.connect(1, fast, false);
        s.take();
        s.msg(k, message.clone());
        assert_eq!(
            disconnect_reason(&s.take(), k),
            Some(DisconnectReason::Misbehaved(want)),
            "case {i}: {message:?}"
        );
        assert!(s.t.peers().is_empty(), "case {i}: forgotten");
    }
}

#[test]
fn a_misaligned_piece_disconnects_with_bad_block() {
    // R25: a block that is not on a 16 KiB boundary.
    let tt = TestTorrent::generate(4, 256 * 1024, 256 * 1024, false);
    let mut s = Solo::new(Role::Leecher, tt, TorrentConfig::default());
    let k = s.connect(1, true, false);
    s.msg(k, Message::HaveAll);
    s.msg(k, Message::Unchoke);
    s.take();
    s.msg(
        k,
        Message::Piece {
            index: 0,
            begin: 3,
            data: Bytes::from(vec![0u8; 100]),
        },
    );
    assert_eq!(
        disconnect_reason(&s.take(), k),
        Some(DisconnectReason::Misbehaved(Violation::BadBlock))
    );
}

/// Crossed connections (each side dialled the other): both ends keep the one opened by the
/// lower peer id, whichever handshake finished first, so exactly one survives. Keeping the
/// first one instead left each end with the connection the other had dropped (sim seed
/// 6270039573118102423: a magnet leecher lost its only seed that way).
#[test]
fn crossed_connections_keep_the_one_opened_by_the_lower_peer_id() {
    let tt = TestTorrent::generate(4, 128 * 1024, 128 * 1024, false);
    let mut s = Solo::new(Role::Leecher, tt, TorrentConfig::default());
    let conn = |id: u8, direction: Direction, port: u16| PeerInfo {
        addr: SocketAddr::from(([10, 0, 0, id], port)),
        direction,
        peer_id: PeerId([id; 20]),
        reserved: wire::Reserved::default(),
        encrypted: false,
    };
    let directions = |s: &Solo, id: u8| -> Vec<Direction> {
        s.t.peers()
            .iter()
            .filter(|p| p.addr.ip() == std::net::IpAddr::from([10, 0, 0, id]))
            .map(|p| p.direction)
            .collect()
    };
    // Ours is [b'U'; 20]. A lower id (1): its incoming connection is the keeper, whether it
    // comes first or second.
    let lower = 1;
    s.t.handle_peer_connected(s.now, conn(lower, Direction::Incoming, 7000))
        .unwrap();
    assert_eq!(
        s.t.handle_peer_connected(s.now, conn(lower, Direction::Outgoing, 6881)),
        Err(Refused::DuplicatePeerId)
    );
    assert_eq!(directions(&s, lower), [Direction::Incoming]);
    let lower = 2;
    let first =
        s.t.handle_peer_connected(s.now, conn(lower, Direction::Outgoing, 6881))
            .unwrap();
    s.drain();
    s.take();
    s.t.handle_peer_connected(s.now, conn(lower, Direction::Incoming, 7000))
        .unwrap();
    assert_eq!(
        {
            s.drain();
            disconnect_reason(&s.take(), first)
        },
        Some(DisconnectReason::Duplicate)
    );
    assert_eq!(directions(&s, lower), [Direction::Incoming]);
    // A higher id (0xf0): our outgoing connection is the keeper.
    let higher = 0xf0;
    let first =
        s.t.handle_peer_connected(s.now, conn(higher, Direction::Incoming, 7000))
            .unwrap();
    s.drain();
    s.take();
    s.t.handle_peer_connected(s.now, conn(higher, Direction::Outgoing, 6881))
        .unwrap();
    assert_eq!(
        {
            s.drain();
            disconnect_reason(&s.take(), first)
        },
        Some(DisconnectReason::Duplicate)
    );
    assert_eq!(directions(&s, higher), [Direction::Outgoing]);
    assert_eq!(
        s.t.handle_peer_connected(s.now, conn(higher, Direction::Incoming, 7001)),
        Err(Refused::DuplicatePeerId)
    );
    assert_eq!(s.t.peers().len(), 3);
}

/// A crossed connection that would replace the old one but is refused on another count (here
/// the incoming limit) leaves the old one in place: the pair keeps a connection.
#[test]
fn a_refused_crossed_connection_leaves_the_old_one() {
    let tt = TestTorrent::generate(4, 128 * 1024, 128 * 1024, false);
    let config = TorrentConfig {
        max_peer_accept: 1,
        ..TorrentConfig::default()
    };
    let mut s = Solo::new(Role::Leecher, tt, config);
    let conn = |id: u8, direction: Direction| PeerInfo {
        addr: SocketAddr::from(([10, 0, 0, id], 7000)),
        direction,
        peer_id: PeerId([id; 20]),
        reserved: wire::Reserved::default(),
        encrypted: false,
    };
    // The only incoming slot is taken by another peer.
    s.t.handle_peer_connected(s.now, conn(9, Direction::Incoming))
        .unwrap();
    // Ours is [b'U'; 20]; peer 2 is lower, so its incoming connection would be the keeper.
    let old =
        s.t.handle_peer_connected(s.now, conn(2, Direction::Outgoing))
            .unwrap();
    s.drain();
    s.take();
    assert_eq!(
        s.t.handle_peer_connected(s.now, conn(2, Direction::Incoming)),
        Err(Refused::TooManyPeers)
    );
    s.drain();
    assert_eq!(disconnect_reason(&s.take(), old), None);
    assert!(s.t.peers().iter().any(|p| p.key == old));
}

#[test]
fn self_connections_and_duplicates_are_refused() {
    // R28: our own peer id, a second connection of a known peer id, a second one of an IP.
    let tt = TestTorrent::generate(4, 128 * 1024, 128 * 1024, false);
    let mut s = Solo::new(Role::Leecher, tt, TorrentConfig::default());
    let info = |ip: [u8; 4], id: [u8; 20]| PeerInfo {
        addr: SocketAddr::from((ip, 7000)),
        direction: Direction::Incoming,
        peer_id: PeerId(id),
        reserved: wire::Reserved::default(),
        encrypted: false,
    };
    let ours = PeerId([b'U'; 20]);
    assert_eq!(
        s.t.handle_peer_connected(s.now, info([10, 0, 0, 1], ours.0)),
        Err(Refused::OwnConnection)
    );
    s.t.handle_peer_connected(s.now, info([10, 0, 0, 2], [b'A'; 20]))
        .unwrap();
    assert_eq!(
        s.t.handle_peer_connected(s.now, info([10, 0, 0, 3], [b'A'; 20])),
        Err(Refused::DuplicatePeerId)
    );
    assert_eq!(
        s.t.handle_peer_connected(s.now, info([10, 0, 0, 2], [b'B'; 20])),
        Err(Refused::DuplicateIp)
    );
    assert_eq!(s.t.peers().len(), 1);
}

//! Abuse by connected peers (reliability catalogue R25, R31, R35, R36): requests while choked,
//! duplicate requests, allowed-fast abuse, metadata sources that lie, PEX on private torrents.
//! Single machines driven message by message through [`Solo`].

use super::*;

/// Rejects sent to `k`.
fn rejects(actions: &[Action], k: PeerKey) -> usize {
    Solo::sent(actions, k)
        .iter()
        .filter(|m| matches!(m, Message::Reject(_)))
        .count()
}

/// `piece` messages sent to `k`, with their total payload.
fn pieces_sent(actions: &[Action], k: PeerKey) -> (usize, u64) {
    Solo::sent(actions, k)
        .iter()
        .filter_map(|m| match m {
            Message::Piece { data, .. } => Some(data.len() as u64),
            _ => None,
        })
        .fold((0, 0), |(n, b), len| (n + 1, b + len))
}

/// The allowed-fast pieces we announced to `k`.
fn allowed_fast_sent(actions: &[Action], k: PeerKey) -> Vec<u32> {
    Solo::sent(actions, k)
        .iter()
        .filter_map(|m| match m {
            Message::AllowedFast(i) => Some(*i),
            _ => None,
        })
        .collect()
}

/// Serves every `ReadBlock` in `actions` from the torrent's data.
fn serve_reads(s: &mut Solo, actions: &[Action]) {
    for a in actions {
        if let Action::ReadBlock {
            peer,
            piece,
            begin,
            len,
        } = *a
        {
            let off = piece as usize * s.tt.info.piece_length as usize + begin as usize;
            let data = Bytes::copy_from_slice(&s.tt.data[off..off + len as usize]);
            s.t.handle_block_read(s.now, peer, piece, begin, Ok(data));
        }
    }
    s.drain();
}

// ---------------------------------------------------------------- R25 requests while choked

/// Sends `count` distinct one-byte requests of piece `index` to the machine, starting at
/// offset `from`.
fn request_bytes(s: &mut Solo, k: PeerKey, index: u32, from: u32, count: u32) {
    for begin in from..from + count {
        s.msg(
            k,
            Message::Request(wire::Block {
                index,
                begin,
                length: 1,
            }),
        );
    }
}

#[test]
fn requests_while_choked_past_max_choked_requests_disconnect() {
    let tt = loop_torrent_with_small_pieces();
    let limit = TorrentConfig::default().max_choked_requests;
    assert!(limit >= TorrentConfig::default().max_requests_in);
    for fast in [true, false] {
        let mut s = Solo::new(Role::Seeder, tt.clone(), TorrentConfig::default());
        let p = s.connect(1, fast, false);
        let allowed = allowed_fast_sent(&s.take(), p);
        let n = s.tt.info.piece_count();
        let outside = (0..n).find(|i| !allowed.contains(i)).unwrap();
        // Up to the limit: refused (rejected if fast), still connected.
        request_bytes(&mut s, p, outside, 0, limit);
        let acts = s.take();
        assert_eq!(disconnect_reason(&acts, p), None, "fast={fast}");
        assert_eq!(rejects(&acts, p), if fast { limit as usize } else { 0 });
        assert!(!acts.iter().any(|a| matches!(a, Action::ReadBlock { .. })));
        // One more: it ignores our choke, so it goes.
        request_bytes(&mut s, p, outside, limit, 1);
        let acts = s.take();
        assert_eq!(
            disconnect_reason(&acts, p),
            Some(DisconnectReason::Misbehaved(
                Violation::TooManyChokedRequests
            )),
            "fast={fast}"
        );
        assert_eq!(rejects(&acts, p), 0, "no reject after the disconnect");
        assert!(s.t.peers().is_empty());
        assert!(s.events.iter().any(|e| matches!(
            e,
            TorrentEvent::PeerDisconnected {
                peer,
                reason: DisconnectReason::Misbehaved(Violation::TooManyChokedRequests),
                ..
            } if *peer == p
        )));
    }
}

#[test]
fn choked_request_count_restarts_at_unchoke_and_never_undercuts_max_requests_in() {
    let tt = loop_torrent_with_small_pieces();
    // A limit below `max_requests_in` is raised to it: a full pipeline in flight when our
    // choke lands is no offence.
    let config = TorrentConfig {
        max_choked_requests: 10,
        ..TorrentConfig::default()
    };
    let limit = config.max_requests_in;
    let mut s = Solo::new(Role::Seeder, tt, config);
    let p = s.connect(1, false, false);
    s.take();
    request_bytes(&mut s, p, 0, 0, limit);
    assert_eq!(disconnect_reason(&s.take(), p), None);
    // Unchoked and choked again: the count starts over.
    s.msg(p, Message::Interested);
    assert_eq!(Solo::sent(&s.take(), p), vec![Message::Unchoke]);
    s.t.choke(s.now, p);
    s.drain();
    s.take();
    request_bytes(&mut s, p, 0, 0, limit);
    assert_eq!(disconnect_reason(&s.take(), p), None);
    request_bytes(&mut s, p, 0, limit, 1);
    assert_eq!(
        disconnect_reason(&s.take(), p),
        Some(DisconnectReason::Misbehaved(
            Violation::TooManyChokedRequests
        ))
    );
}

#[test]
fn duplicate_requests_are_ignored() {
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
    // Far more copies than the queue holds: each one after the first costs nothing.
    for _ in 0..1000 {
        s.msg(p, Message::Request(req));
    }
    let acts = s.take();
    let reads = acts
        .iter()
        .filter(|a| matches!(a, Action::ReadBlock { .. }))
        .count();
    assert_eq!(reads, 1, "one read for one block");
    assert_eq!(rejects(&acts, p), 0, "duplicates are not rejected");
    assert_eq!(disconnect_reason(&acts, p), None);
    assert_eq!(s.t.peers()[0].requests_in, 1);
    serve_reads(&mut s, &acts);
    assert_eq!(pieces_sent(&s.take(), p), (1, 16 * 1024), "served once");
}

// ---------------------------------------------------------------- R31 allowed-fast abuse

#[test]
fn incoming_allowed_fast_list_is_capped_at_max_allowed_fast_in() {
    let tt = loop_torrent_with_small_pieces();
    let config = TorrentConfig::default();
    let cap = config.max_allowed_fast_in;
    let n = tt.info.piece_count();
    assert!(n as usize > cap, "the test needs more pieces than the cap");
    let mut s = Solo::new(Role::Leecher, tt, config);
    let p = s.connect(1, true, false);
    s.msg(p, Message::HaveAll);
    // It keeps choking us but allows every piece, highest first (and some twice).
    let offered: Vec<u32> = (0..n).rev().collect();
    for &i in offered.iter().chain(&offered[..4]) {
        s.msg(p, Message::AllowedFast(i));
    }
    // Serve whatever is requested until nothing more is asked for while choked.
    let mut requested = BTreeSet::new();
    let mut pending = requests(&s.take(), p);
    while let Some(b) = pending.pop() {
        requested.insert(b.index);
        serve(&mut s, p, b);
        pending.extend(requests(&s.take(), p));
    }
    let kept: BTreeSet<u32> = offered[..cap].iter().copied().collect();
    assert_eq!(
        requested, kept,
        "only the first {cap} allowed-fast pieces are used"
    );
}

#[test]
fn allowed_fast_upload_to_a_choked_peer_is_budgeted() {
    let tt = loop_torrent_with_small_pieces();
    let mut s = Solo::new(Role::Seeder, tt, TorrentConfig::default());
    let p = s.connect(1, true, false);
    let allowed = allowed_fast_sent(&s.take(), p);
    assert!(!allowed.is_empty());
    let set_bytes: u64 = allowed
        .iter()
        .map(|&i| u64::from(s.tt.info.piece_len(i).unwrap()))
        .sum();
    let budget = set_bytes * upload::ALLOWED_FAST_SERVES_PER_PIECE;
    // Choked, it asks for its allowed-fast pieces over and over.
    let rounds = upload::ALLOWED_FAST_SERVES_PER_PIECE + 3;
    let (mut served, mut bytes, mut rejected, mut asked) = (0, 0, 0, 0);
    for _ in 0..rounds {
        for &i in &allowed {
            let plen = s.tt.info.piece_len(i).unwrap();
            for begin in (0..plen).step_by(16 * 1024) {
                let length = (plen - begin).min(16 * 1024);
                s.msg(
                    p,
                    Message::Request(wire::Block {
                        index: i,
                        begin,
                        length,
                    }),
                );
                asked += 1;
                let acts = s.take();
                rejected += rejects(&acts, p);
                serve_reads(&mut s, &acts);
                let (n, b) = pieces_sent(&s.take(), p);
                served += n;
                bytes += b;
            }
        }
    }
    assert_eq!(bytes, budget, "exactly the budget is served while choked");
    assert_eq!(served + rejected, asked, "the rest is rejected");
    assert!(rejected > 0);
    assert_eq!(disconnect_reason(&s.take(), p), None);
    // Unchoked, it is served like anyone.
    s.msg(p, Message::Interested);
    s.take();
    s.msg(
        p,
        Message::Request(wire::Block {
            index: allowed[0],
            begin: 0,
            length: 16 * 1024,
        }),
    );
    let acts = s.take();
    serve_reads(&mut s, &acts);
    assert_eq!(pieces_sent(&s.take(), p), (1, 16 * 1024));
}

// ---------------------------------------------------------------- R35 metadata sources

/// ut_metadata requests sent to `k` (under the id of [`ext_handshake`]).
fn metadata_requests(actions: &[Action], k: PeerKey) -> Vec<u32> {
    Solo::sent(actions, k)
        .into_iter()
        .filter_map(|m| match m {
            Message::Extended { id: 3, payload } => match MetadataMessage::decode(&payload) {
                Ok(MetadataMessage::Request { piece }) => Some(piece),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// A ut_metadata message from a peer (under our id).
fn metadata_msg(m: &MetadataMessage) -> Message {
    let mut payload = Vec::new();
    m.encode(&mut payload);
    Message::Extended {
        id: extension::id::UT_METADATA,
        payload: Bytes::from(payload),
    }
}

#[test]
fn magnet_asks_only_sources_with_a_sane_consistent_size_and_handles_rejects() {
    let tt = TestTorrent::generate(6, 128 * 1024, 128 * 1024, false);
    let size = tt.info_bytes.len() as u64;
    let config = TorrentConfig::default();
    let max = config.max_metadata_size;
    let mut s = Solo::new(Role::MagnetLeecher, tt, config);
    // Sizes of 0 and over the cap: never asked.
    let zero = s.connect(1, true, true);
    s.msg(zero, ext_handshake(Some(0)));
    let huge = s.connect(2, true, true);
    s.msg(huge, ext_handshake(Some(max + 1)));
    let acts = s.take();
    assert!(metadata_requests(&acts, zero).is_empty());
    assert!(metadata_requests(&acts, huge).is_empty());
    // A sane size: asked for every piece.
    let good = s.connect(3, true, true);
    s.msg(good, ext_handshake(Some(size)));
    let asked = metadata_requests(&s.take(), good);
    assert_eq!(
        asked.len(),
        extension::ut_metadata::piece_count(size as usize) as usize
    );
    // A second source claiming another size is not used, although a slot is free.
    let other = s.connect(4, true, true);
    s.msg(other, ext_handshake(Some(size + 1)));
    assert!(metadata_requests(&s.take(), other).is_empty());
    // Rejects of pieces never asked for are ignored (no disconnect, no effect).
    for _ in 0..100 {
        s.msg(zero, metadata_msg(&MetadataMessage::Reject { piece: 0 }));
    }
    assert_eq!(disconnect_reason(&s.take(), zero), None);
    // Data never asked for closes the peer.
    s.msg(
        huge,
        metadata_msg(&MetadataMessage::Data {
            piece: 0,
            total_size: size,
            data: Bytes::from(vec![0u8; 100]),
        }),
    );
    assert_eq!(
        disconnect_reason(&s.take(), huge),
        Some(DisconnectReason::Misbehaved(Violation::BadMetadataMessage))
    );
    // The good source rejects: it stops being a source and its pieces go to the next one
    // with the same size (not to the one with another size).
    for &piece in &asked {
        s.msg(good, metadata_msg(&MetadataMessage::Reject { piece }));
    }
    let acts = s.take();
    assert_eq!(disconnect_reason(&acts, good), None);
    assert!(
        metadata_requests(&acts, good).is_empty(),
        "a source that rejected is not asked again (no request/reject ping-pong)"
    );
    assert!(metadata_requests(&acts, other).is_empty());
    let next = s.connect(5, true, true);
    s.msg(next, ext_handshake(Some(size)));
    let mut again = metadata_requests(&s.take(), next);
    again.sort_unstable();
    assert_eq!(
        again, asked,
        "the rejected pieces are asked from another source"
    );
}

#[test]
fn an_ip_that_sent_metadata_with_a_wrong_hash_is_not_asked_again() {
    let tt = TestTorrent::generate(6, 128 * 1024, 128 * 1024, false);
    let size = tt.info_bytes.len() as u64;
    let mut s = Solo::new(Role::MagnetLeecher, tt, TorrentConfig::default());
    let liar = s.connect(1, true, true);
    s.msg(liar, ext_handshake(Some(size)));
    for piece in metadata_requests(&s.take(), liar) {
        let start = piece as usize * extension::ut_metadata::PIECE_LEN;
        let end = (start + extension::ut_metadata::PIECE_LEN).min(size as usize);
        s.msg(
            liar,
            metadata_msg(&MetadataMessage::Data {
                piece,
                total_size: size,
                data: Bytes::from(vec![0x55; end - start]),
            }),
        );
    }
    assert_eq!(
        disconnect_reason(&s.take(), liar),
        Some(DisconnectReason::Misbehaved(Violation::Metadata(
            MetadataFault::HashMismatch
        )))
    );
    // It comes back on a new connection from the same IP: not a source any more.
    let back = s.connect(1, true, true);
    s.msg(back, ext_handshake(Some(size)));
    assert!(metadata_requests(&s.take(), back).is_empty());
    // Another IP is.
    let honest = s.connect(2, true, true);
    s.msg(honest, ext_handshake(Some(size)));
    assert!(!metadata_requests(&s.take(), honest).is_empty());
}

// ---------------------------------------------------------------- R36 PEX on private torrents

/// A PEX message from a peer (under our id) adding `n` addresses.
fn pex_msg(n: u8) -> Message {
    let added = (1..=n)
        .map(|k| extension::PexPeer {
            addr: SocketAddr::from(([172, 16, 0, k], 6881)),
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
    Message::Extended {
        id: extension::id::UT_PEX,
        payload: Bytes::from(payload),
    }
}

/// The extension handshake we sent `k`.
fn our_ext_handshake(actions: &[Action], k: PeerKey) -> ExtHandshake {
    Solo::sent(actions, k)
        .into_iter()
        .find_map(|m| match m {
            Message::Extended { id: 0, payload } => {
                Some(ExtHandshake::decode(&payload, &ExtLimits::default()).unwrap())
            }
            _ => None,
        })
        .expect("an extension handshake")
}

/// PEX messages sent to `k` (under the id of [`ext_handshake`]).
fn pex_sent(actions: &[Action], k: PeerKey) -> usize {
    Solo::sent(actions, k)
        .iter()
        .filter(|m| matches!(m, Message::Extended { id: 4, .. }))
        .count()
}

#[test]
fn pex_is_never_advertised_sent_or_accepted_on_a_private_torrent() {
    for private in [false, true] {
        let mut tt = TestTorrent::generate(4, 128 * 1024, 128 * 1024, false);
        tt.info.private = private;
        let config = TorrentConfig::default();
        let interval = config.pex_interval;
        let mut s = Solo::new(Role::Leecher, tt, config);
        let a = s.connect(1, true, true);
        let hs = our_ext_handshake(&s.take(), a);
        assert_eq!(
            hs.id_of(extension::name::UT_PEX).is_some(),
            !private,
            "private={private}: ut_pex in our handshake"
        );
        assert!(hs.id_of(extension::name::UT_METADATA).is_some());
        // A second peer with a listen port: something to tell `a` about.
        let b = s.connect(2, true, true);
        let mut h = ExtHandshake::default();
        h.m.insert("ut_pex".to_owned(), 4);
        h.p = Some(7000);
        let mut payload = Vec::new();
        h.encode(&mut payload);
        s.msg(
            b,
            Message::Extended {
                id: 0,
                payload: Bytes::from(payload),
            },
        );
        s.msg(a, ext_handshake(None));
        let mut sent = pex_sent(&s.take(), a);
        s.now = s.now + interval;
        s.t.handle_timeout(s.now);
        s.drain();
        sent += pex_sent(&s.take(), a);
        assert_eq!(sent > 0, !private, "private={private}: PEX sent");
        // Its PEX message, even unadvertised, adds nothing and costs it nothing.
        s.msg(a, pex_msg(5));
        let acts = s.take();
        let want = if private { 0 } else { 5 };
        assert_eq!(s.t.stats().addresses.pex, want, "private={private}");
        assert_eq!(dials(&acts).len(), want, "private={private}");
        assert_eq!(disconnect_reason(&acts, a), None);
    }
}

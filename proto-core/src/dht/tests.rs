//! Tests of the [`Dht`] machine through its public inputs and outputs.

use std::net::SocketAddr;
use std::time::Duration;

use super::krpc::{Body, ErrorCode, ErrorMessage, Message, Query, Response, Want};
use super::sim::{Sim, SimConfig, node_addr};
use super::{Dht, DhtConfig, DhtError, DhtEvent, NodeId, Transmit};
use crate::InfoHash;
use crate::rng::Seed;
use crate::time::Instant;

const T0: Instant = Instant::ZERO;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn query_msg(tid: &[u8], id: NodeId, query: Query) -> Message {
    Message {
        tid: tid.to_vec(),
        version: None,
        read_only: false,
        ip: None,
        body: Body::Query {
            id,
            query,
            want: Want::default(),
        },
    }
}

/// Feeds `msg` from `from` and returns the decoded replies sent back to `from`.
fn ask(dht: &mut Dht, now: Instant, from: SocketAddr, msg: &Message) -> Vec<Message> {
    dht.handle_datagram(now, from, &msg.to_bytes());
    let mut out = Vec::new();
    while let Some(t) = dht.poll_transmit() {
        let m = Message::decode(&t.data).unwrap();
        // Skip our own verification pings.
        if t.to == from && !matches!(m.body, Body::Query { .. }) {
            out.push(m);
        }
    }
    out
}

fn response(m: &Message) -> &Response {
    match &m.body {
        Body::Response(r) => r,
        other => panic!("not a response: {other:?}"),
    }
}

#[test]
fn answers_ping_and_find_node_and_reports_the_source_address() {
    let mut dht = Dht::new(DhtConfig::default(), Seed::from_u64(1), T0);
    let from = addr("10.0.0.2:1234");
    let replies = ask(
        &mut dht,
        T0,
        from,
        &query_msg(b"p1", NodeId([1; 20]), Query::Ping),
    );
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].tid, b"p1");
    assert_eq!(replies[0].ip, Some(from));
    assert_eq!(response(&replies[0]).id, dht.id());
    // The querier went into the table and gets pinged to verify it.
    assert_eq!(dht.routing_table().len(), 1);
    assert_eq!(dht.stats().in_flight, 1);
    assert!(dht.poll_timeout().is_some());
}

#[test]
fn a_lookup_before_the_table_fills_starts_from_the_bootstrap_nodes() {
    let mut dht = Dht::new(DhtConfig::default(), Seed::from_u64(2), T0);
    let router = addr("10.0.0.9:6881");
    dht.bootstrap(T0, &[router]);
    while dht.poll_transmit().is_some() {}
    dht.get_peers(T0, InfoHash([7; 20]), Some(6881)).unwrap();
    let t = dht
        .poll_transmit()
        .expect("a query, not a lookup finished empty");
    assert_eq!(t.to, router);
    let Body::Query { query, .. } = Message::decode(&t.data).unwrap().body else {
        panic!()
    };
    assert!(matches!(query, Query::GetPeers { .. }), "{query:?}");
}

#[test]
fn idle_node_has_no_deadline_and_queries_time_out() {
    let mut dht = Dht::new(DhtConfig::default(), Seed::from_u64(2), T0);
    assert_eq!(dht.poll_timeout(), None);
    dht.add_node(T0, addr("10.0.0.9:6881"));
    let t = dht.poll_transmit().unwrap();
    let Body::Query { query, .. } = Message::decode(&t.data).unwrap().body else {
        panic!()
    };
    assert_eq!(query, Query::Ping);
    let deadline = dht.poll_timeout().unwrap();
    assert_eq!(deadline, T0 + Duration::from_secs(2));
    dht.handle_timeout(deadline);
    assert_eq!(dht.stats().in_flight, 0);
    assert_eq!(dht.poll_timeout(), None);
}

#[test]
fn tokens_gate_announces_and_peers_are_served() {
    let mut dht = Dht::new(DhtConfig::default(), Seed::from_u64(3), T0);
    let peer = addr("10.0.0.7:7000");
    let ih = InfoHash([5; 20]);
    let id = NodeId([7; 20]);
    let r = ask(
        &mut dht,
        T0,
        peer,
        &query_msg(b"g1", id, Query::GetPeers { info_hash: ih }),
    );
    let token = response(&r[0]).token.clone().unwrap();
    assert!(response(&r[0]).values.is_empty());

    // A wrong token is refused with error 203.
    let bad = Query::AnnouncePeer {
        info_hash: ih,
        port: 51413,
        implied_port: false,
        token: b"nope".to_vec(),
    };
    let r = ask(&mut dht, T0, peer, &query_msg(b"a1", id, bad));
    assert!(matches!(
        r[0].body,
        Body::Error(ErrorMessage {
            code: ErrorCode::Protocol,
            ..
        })
    ));
    // The right one stores the peer; with implied_port its UDP port is used.
    let good = Query::AnnouncePeer {
        info_hash: ih,
        port: 51413,
        implied_port: true,
        token: token.clone(),
    };
    let r = ask(&mut dht, T0, peer, &query_msg(b"a2", id, good));
    assert!(matches!(r[0].body, Body::Response(_)));
    assert_eq!(dht.stats().stored_info_hashes, 1);
    // Another address cannot use that token.
    let other = addr("10.0.0.8:7000");
    let stolen = Query::AnnouncePeer {
        info_hash: ih,
        port: 1,
        implied_port: false,
        token,
    };
    let r = ask(
        &mut dht,
        T0,
        other,
        &query_msg(b"a3", NodeId([8; 20]), stolen),
    );
    assert!(matches!(r[0].body, Body::Error(_)));

    let asker = addr("10.0.0.9:1");
    let r = ask(
        &mut dht,
        T0,
        asker,
        &query_msg(b"g2", NodeId([9; 20]), Query::GetPeers { info_hash: ih }),
    );
    assert_eq!(response(&r[0]).values, vec![peer]);
    // Peers expire after 30 minutes.
    let later = T0 + Duration::from_mins(31);
    let r = ask(
        &mut dht,
        later,
        asker,
        &query_msg(b"g3", NodeId([9; 20]), Query::GetPeers { info_hash: ih }),
    );
    assert!(response(&r[0]).values.is_empty());
}

#[test]
fn malformed_queries_get_krpc_errors_and_garbage_gets_nothing() {
    let mut dht = Dht::new(DhtConfig::default(), Seed::from_u64(4), T0);
    let from = addr("10.0.0.2:1234");
    dht.handle_datagram(
        T0,
        from,
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:fooo1:t2:aa1:y1:qe",
    );
    let m = Message::decode(&dht.poll_transmit().unwrap().data).unwrap();
    assert!(matches!(
        m.body,
        Body::Error(ErrorMessage {
            code: ErrorCode::MethodUnknown,
            ..
        })
    ));
    dht.handle_datagram(T0, from, b"d1:ad2:id3:abce1:q4:ping1:t2:bb1:y1:qe");
    let m = Message::decode(&dht.poll_transmit().unwrap().data).unwrap();
    assert!(matches!(
        m.body,
        Body::Error(ErrorMessage {
            code: ErrorCode::Protocol,
            ..
        })
    ));
    dht.handle_datagram(T0, from, b"\xff\x00garbage");
    // An unsolicited response is ignored.
    let stray = Message {
        tid: b"zz".to_vec(),
        version: None,
        read_only: false,
        ip: None,
        body: Body::Response(Response {
            id: NodeId([3; 20]),
            ..Response::default()
        }),
    };
    dht.handle_datagram(T0, from, &stray.to_bytes());
    assert!(dht.poll_transmit().is_none());
    assert_eq!(dht.stats().malformed, 3);
    assert_eq!(dht.stats().unexpected, 1);
    assert_eq!(dht.routing_table().len(), 0);
}

#[test]
fn per_source_and_global_rate_limits() {
    let mut dht = Dht::new(DhtConfig::default(), Seed::from_u64(5), T0);
    let from = addr("10.0.0.2:1234");
    let mut replies = 0;
    for i in 0..80u16 {
        replies += ask(
            &mut dht,
            T0,
            from,
            &query_msg(&i.to_be_bytes(), NodeId([1; 20]), Query::Ping),
        )
        .len();
    }
    assert_eq!(replies, 50, "50 packets per minute per source");
    let mut replies = 0;
    for i in 0..300u32 {
        let from = SocketAddr::new(std::net::Ipv4Addr::from(0x0b00_0000 + i).into(), 1);
        replies += ask(
            &mut dht,
            T0,
            from,
            &query_msg(b"x", NodeId([2; 20]), Query::Ping),
        )
        .len();
    }
    assert!(replies <= 100, "{replies}");
    assert!(dht.stats().rate_limited >= 230);
}

#[test]
fn replies_to_unverified_sources_are_not_amplified() {
    let cfg = DhtConfig {
        max_packets_per_minute_per_source: 0,
        max_packets_per_second: 0,
        ..DhtConfig::default()
    };
    let mut dht = Dht::new(cfg, Seed::from_u64(6), T0);
    let ih = InfoHash([1; 20]);
    // 50 peers announce.
    for i in 0..50u32 {
        let from = SocketAddr::new(std::net::Ipv4Addr::from(0x0a00_1000 + i).into(), 6881);
        let id = NodeId([i as u8; 20]);
        let r = ask(
            &mut dht,
            T0,
            from,
            &query_msg(b"g", id, Query::GetPeers { info_hash: ih }),
        );
        let token = response(&r[0]).token.clone().unwrap();
        let q = Query::AnnouncePeer {
            info_hash: ih,
            port: 6881,
            implied_port: false,
            token,
        };
        ask(&mut dht, T0, from, &query_msg(b"a", id, q));
    }
    let spoofed = addr("192.0.2.1:80");
    let q = query_msg(b"g", NodeId([0xee; 20]), Query::GetPeers { info_hash: ih });
    let len = q.to_bytes().len();
    dht.handle_datagram(T0, spoofed, &q.to_bytes());
    let mut sent = 0;
    while let Some(t) = dht.poll_transmit() {
        let m = Message::decode(&t.data).unwrap();
        if t.to == spoofed && !matches!(m.body, Body::Query { .. }) {
            sent += t.data.len();
            assert!(
                !response(&m).values.is_empty(),
                "still useful, just trimmed"
            );
        }
    }
    assert!(
        sent > 0 && sent <= 3 * len,
        "{sent} bytes for a {len}-byte query"
    );
    assert!(dht.stats().trimmed_replies >= 1);
}

#[test]
fn read_only_nodes_answer_nothing_and_are_not_added() {
    let cfg = DhtConfig {
        read_only: true,
        ..DhtConfig::default()
    };
    let mut ro = Dht::new(cfg, Seed::from_u64(7), T0);
    let from = addr("10.0.0.2:1234");
    assert!(
        ask(
            &mut ro,
            T0,
            from,
            &query_msg(b"p", NodeId([1; 20]), Query::Ping)
        )
        .is_empty()
    );
    ro.add_node(T0, from);
    let t = ro.poll_transmit().unwrap();
    let m = Message::decode(&t.data).unwrap();
    assert!(m.read_only, "queries carry ro=1");

    let mut normal = Dht::new(DhtConfig::default(), Seed::from_u64(8), T0);
    normal.handle_datagram(T0, addr("10.0.0.3:1"), &t.data);
    assert!(
        normal.poll_transmit().is_some(),
        "a read-only node's query is answered"
    );
    assert_eq!(normal.routing_table().len(), 0, "but it is not added");
}

#[test]
fn external_ip_gives_a_bep42_id() {
    let mut dht = Dht::new(DhtConfig::default(), Seed::from_u64(9), T0);
    let ip = "203.0.113.5".parse().unwrap();
    assert!(!dht.id().is_secure_for(ip));
    dht.set_external_ip(T0, ip);
    assert!(dht.id().is_secure_for(ip));
    assert_eq!(dht.poll_event(), Some(DhtEvent::IdChanged { id: dht.id() }));
    let id = dht.id();
    dht.set_external_ip(T0, ip);
    assert_eq!(dht.id(), id, "unchanged when already secure");

    let cfg = DhtConfig {
        external_ip: Some(ip),
        ..DhtConfig::default()
    };
    assert!(Dht::new(cfg, Seed::from_u64(1), T0).id().is_secure_for(ip));
}

/// Pings `voter` through `add_node` and answers the ping from it, reporting that it saw us at
/// `seen_as`.
fn answer_ping_reporting(dht: &mut Dht, now: Instant, voter: SocketAddr, seen_as: SocketAddr) {
    dht.add_node(now, voter);
    let mut tid = None;
    while let Some(t) = dht.poll_transmit() {
        if t.to == voter {
            tid = Some(Message::decode(&t.data).unwrap().tid);
        }
    }
    let reply = Message {
        tid: tid.expect("the voter was pinged"),
        version: None,
        read_only: false,
        ip: Some(seen_as),
        body: Body::Response(Response {
            id: NodeId::from(InfoHash::of(voter.to_string().as_bytes())),
            ..Response::default()
        }),
    };
    dht.handle_datagram(now, voter, &reply.to_bytes());
}

/// A public voter address in its own /24 for each `i`.
fn voter(i: u32) -> SocketAddr {
    SocketAddr::new(
        std::net::Ipv4Addr::from(0x5000_0000 + (i << 8) + 9).into(),
        6881,
    )
}

#[test]
fn voted_external_ip_gives_a_bep42_id() {
    use super::ip_voter::MIN_VOTES_TO_ADOPT;
    let ours: SocketAddr = addr("203.0.113.5:40000");
    let mut dht = Dht::new(DhtConfig::default(), Seed::from_u64(12), T0);
    let first = dht.id();
    assert!(!first.is_secure_for(ours.ip()));
    // Unsolicited responses are not votes (no matching transaction).
    for i in 0..2 * MIN_VOTES_TO_ADOPT as u32 {
        let m = Message {
            tid: b"zz".to_vec(),
            version: None,
            read_only: false,
            ip: Some(ours),
            body: Body::Response(Response {
                id: NodeId([i as u8; 20]),
                ..Response::default()
            }),
        };
        dht.handle_datagram(T0, voter(500 + i), &m.to_bytes());
    }
    assert_eq!(dht.voted_external_ip(false), None);
    // Many answers from one /24 are one vote.
    for host in 1..=2 * MIN_VOTES_TO_ADOPT as u8 {
        let from = SocketAddr::new(std::net::Ipv4Addr::new(80, 9, 9, host).into(), 6881);
        answer_ping_reporting(&mut dht, T0, from, ours);
    }
    assert_eq!(dht.voted_external_ip(false), None);
    assert_eq!(dht.id(), first);
    // Distinct subnets agree: the address is adopted and the id follows it.
    for i in 0..MIN_VOTES_TO_ADOPT as u32 {
        answer_ping_reporting(&mut dht, T0, voter(i), ours);
    }
    assert_eq!(dht.voted_external_ip(false), Some(ours.ip()));
    assert_eq!(dht.external_ip(), Some(ours.ip()));
    assert!(dht.id().is_secure_for(ours.ip()));
    let events: Vec<DhtEvent> = std::iter::from_fn(|| dht.poll_event()).collect();
    assert_eq!(events, vec![DhtEvent::IdChanged { id: dht.id() }]);

    // Our address moves: a later round votes the new one in, and the id moves too.
    let moved: SocketAddr = addr("198.51.100.20:40000");
    let mut i = 1000;
    while dht.voted_external_ip(false) != Some(moved.ip()) && i < 1400 {
        answer_ping_reporting(&mut dht, T0, voter(i), moved);
        i += 1;
    }
    assert_eq!(dht.external_ip(), Some(moved.ip()));
    assert!(dht.id().is_secure_for(moved.ip()));

    // The caller-set path still works, and a voted address that matches it keeps the id.
    let mut dht = Dht::new(DhtConfig::default(), Seed::from_u64(13), T0);
    dht.set_external_ip(T0, ours.ip());
    let set = dht.id();
    assert!(set.is_secure_for(ours.ip()));
    for i in 0..MIN_VOTES_TO_ADOPT as u32 {
        answer_ping_reporting(&mut dht, T0, voter(i), ours);
    }
    assert_eq!(dht.voted_external_ip(false), Some(ours.ip()));
    assert_eq!(dht.id(), set);

    // With voting off, the reports are ignored.
    let cfg = DhtConfig {
        vote_external_ip: false,
        ..DhtConfig::default()
    };
    let mut dht = Dht::new(cfg, Seed::from_u64(12), T0);
    for i in 0..MIN_VOTES_TO_ADOPT as u32 {
        answer_ping_reporting(&mut dht, T0, voter(i), ours);
    }
    assert_eq!(dht.external_ip(), None);
    assert_eq!(dht.id(), first);
}

/// Steps `dht` from deadline to deadline until `until`, calling `on_send` for every datagram
/// (with the time) and answering nothing unless `on_send` returns a reply.
fn run_dht(
    dht: &mut Dht,
    now: &mut Instant,
    until: Instant,
    mut on_send: impl FnMut(Instant, &Transmit) -> Option<Vec<u8>>,
) {
    loop {
        while let Some(t) = dht.poll_transmit() {
            if let Some(reply) = on_send(*now, &t) {
                dht.handle_datagram(*now, t.to, &reply);
            }
        }
        match dht.poll_timeout() {
            Some(next) if next <= until => {
                *now = next.max(*now);
                dht.handle_timeout(*now);
            }
            _ => break,
        }
    }
    *now = until;
}

fn is_find_node(t: &Transmit) -> bool {
    matches!(
        Message::decode(&t.data).map(|m| m.body),
        Ok(Body::Query {
            query: Query::FindNode { .. },
            ..
        })
    )
}

#[test]
fn unreachable_bootstrap_nodes_are_retried_with_a_bounded_backoff() {
    let cfg = DhtConfig::default();
    let mut dht = Dht::new(cfg.clone(), Seed::from_u64(30), T0);
    let router = addr("10.0.0.9:6881");
    let mut now = T0;
    dht.bootstrap(now, &[router]);
    // The router never answers for an hour.
    let mut sends = Vec::new();
    run_dht(&mut dht, &mut now, T0 + Duration::from_hours(1), |at, t| {
        if t.to == router && is_find_node(t) {
            sends.push(at);
        }
        None
    });
    let gaps: Vec<Duration> = sends
        .windows(2)
        .map(|w| w[1].saturating_duration_since(w[0]))
        .collect();
    // Each retry comes one query timeout plus a doubling delay after the last, capped.
    let want: Vec<Duration> = (0..gaps.len() as u32)
        .map(|i| {
            let delay = (cfg.bootstrap_retry_interval * 2u32.pow(i.min(16)))
                .min(cfg.max_bootstrap_retry_interval);
            cfg.query_timeout + delay
        })
        .collect();
    assert!(gaps.len() >= 10, "{} retries in an hour", gaps.len());
    assert_eq!(gaps, want);
    let failed = std::iter::from_fn(|| dht.poll_event())
        .filter(|e| *e == DhtEvent::BootstrapDone { nodes: 0 })
        .count();
    assert_eq!(failed, sends.len());

    // The router comes back: the next retry fills the table and the retries stop.
    let router_id = NodeId([0x42; 20]);
    let answer = |t: &Transmit| {
        let m = Message::decode(&t.data).unwrap();
        Message {
            tid: m.tid,
            version: None,
            read_only: false,
            ip: None,
            body: Body::Response(Response {
                id: router_id,
                ..Response::default()
            }),
        }
        .to_bytes()
    };
    let healed = now;
    let mut after = Vec::new();
    run_dht(
        &mut dht,
        &mut now,
        healed + Duration::from_mins(10),
        |at, t| {
            (t.to == router).then(|| {
                after.push(at);
                answer(t)
            })
        },
    );
    assert_eq!(after.len(), 1, "one retry, answered: {after:?}");
    assert!(
        after[0].saturating_duration_since(healed)
            <= cfg.max_bootstrap_retry_interval + cfg.query_timeout
    );
    assert_eq!(dht.routing_table().len(), 1);
    assert!(
        std::iter::from_fn(|| dht.poll_event()).any(|e| e == DhtEvent::BootstrapDone { nodes: 1 })
    );

    // Later every node we know goes silent (here: the router) and turns bad. The node does
    // not sit on a dead table until the next bucket refresh: it bootstraps again, with the
    // same bounded backoff.
    let silent = now;
    let mut dead = Vec::new();
    run_dht(
        &mut dht,
        &mut now,
        silent + Duration::from_hours(1),
        |at, t| {
            if t.to == router && is_find_node(t) {
                dead.push(at);
            }
            None
        },
    );
    let t = dht.routing_table();
    assert!(
        t.iter()
            .all(|n| n.state(now, t.config()) == super::routing::NodeState::Bad)
    );
    let late: Vec<Instant> = dead
        .into_iter()
        .filter(|at| *at >= silent + Duration::from_mins(20))
        .collect();
    let max_gap = late
        .windows(2)
        .map(|w| w[1].saturating_duration_since(w[0]))
        .max()
        .unwrap();
    assert!(late.len() >= 8, "{} bootstrap queries", late.len());
    assert!(
        max_gap <= cfg.max_bootstrap_retry_interval + cfg.query_timeout,
        "{max_gap:?} between two bootstrap attempts"
    );
}

#[test]
fn routing_table_export_and_import() {
    let mut sim = Sim::new(SimConfig {
        nodes: 40,
        seed: 2,
        ..SimConfig::default()
    });
    sim.run_for(Duration::from_secs(30));
    let node = &sim.nodes()[10].dht;
    let saved = node.export_nodes();
    let mut fresh = Dht::new(DhtConfig::default(), Seed::from_u64(99), T0);
    let added = fresh.import_nodes(T0, &saved).unwrap();
    assert!(added >= 8, "{added}");
    assert_eq!(fresh.id(), node.id(), "the saved id is taken back");
    assert_eq!(
        fresh.import_nodes(T0, b"garbage"),
        Err(DhtError::InvalidNodeList)
    );
    assert_eq!(
        fresh.import_nodes(T0, b"d2:id20:abcdefghij01234567895:nodes3:abce"),
        Err(DhtError::InvalidNodeList)
    );
    // The imported nodes seed the next bootstrap, with no bootstrap address at all.
    fresh.bootstrap(T0, &[]);
    assert!(fresh.poll_transmit().is_some());
}

#[test]
fn lookups_beyond_the_limit_queue_then_refuse() {
    let cfg = DhtConfig {
        max_lookups: 1,
        max_pending_lookups: 1,
        ..DhtConfig::default()
    };
    let mut dht = Dht::new(cfg, Seed::from_u64(10), T0);
    dht.add_node(T0, node_addr(1));
    // With an empty table a lookup finishes at once.
    let l = dht.get_peers(T0, InfoHash([1; 20]), None).unwrap();
    assert!(
        matches!(dht.poll_event(), Some(DhtEvent::LookupDone { lookup, peers: 0, .. }) if lookup == l)
    );
    // Give it a node so lookups stay running.
    let mut sim = Sim::new(SimConfig {
        nodes: 20,
        seed: 3,
        ..SimConfig::default()
    });
    sim.run_for(Duration::from_secs(10));
    dht.import_nodes(T0, &sim.nodes()[3].dht.export_nodes())
        .unwrap();
    assert!(dht.get_peers(T0, InfoHash([2; 20]), None).is_ok());
    assert!(dht.get_peers(T0, InfoHash([3; 20]), None).is_ok());
    assert_eq!(dht.stats().pending_lookups, 1);
    assert_eq!(
        dht.get_peers(T0, InfoHash([4; 20]), None),
        Err(DhtError::TooManyLookups)
    );
}

#[test]
fn ipv6_nodes_go_to_their_own_table() {
    let cfg = DhtConfig {
        ipv6: true,
        ..DhtConfig::default()
    };
    let mut dht = Dht::new(cfg, Seed::from_u64(11), T0);
    let v6 = addr("[fd00::2]:6881");
    let r = ask(
        &mut dht,
        T0,
        v6,
        &query_msg(b"p", NodeId([1; 20]), Query::Ping),
    );
    assert_eq!(r.len(), 1);
    assert_eq!(dht.routing_table6().unwrap().len(), 1);
    assert_eq!(dht.routing_table().len(), 0);
    // Without IPv6, v6 datagrams are ignored.
    let mut v4only = Dht::new(DhtConfig::default(), Seed::from_u64(12), T0);
    assert!(
        ask(
            &mut v4only,
            T0,
            v6,
            &query_msg(b"p", NodeId([1; 20]), Query::Ping)
        )
        .is_empty()
    );
}

#[test]
fn a_lookup_reports_the_peers_announced_to_us() {
    // Seen while writing the libtorrent interop test (tests/tests/interop_dht.rs): in a
    // two-node DHT the other node announces to us, and our own lookup, which only asks other
    // nodes, never returned the peer stored here.
    let mut dht = Dht::new(DhtConfig::default(), Seed::from_u64(21), T0);
    let peer = addr("10.0.0.7:7000");
    let ih = InfoHash([0x21; 20]);
    let id = NodeId([7; 20]);
    let r = ask(
        &mut dht,
        T0,
        peer,
        &query_msg(b"g1", id, Query::GetPeers { info_hash: ih }),
    );
    let token = response(&r[0]).token.clone().unwrap();
    let announce = Query::AnnouncePeer {
        info_hash: ih,
        port: 51413,
        implied_port: false,
        token,
    };
    let r = ask(&mut dht, T0, peer, &query_msg(b"a1", id, announce));
    assert!(matches!(r[0].body, Body::Response(_)));
    while dht.poll_event().is_some() {}

    let lookup = dht.get_peers(T0, ih, None).unwrap();
    let mut found = Vec::new();
    while let Some(e) = dht.poll_event() {
        if let DhtEvent::Peers {
            lookup: l, peers, ..
        } = e
        {
            assert_eq!(l, lookup);
            found.extend(peers);
        }
    }
    assert_eq!(found, vec![addr("10.0.0.7:51413")]);
    // Reported once per lookup: the same peer in a reply is not new.
    while dht.poll_transmit().is_some() {}
    let other = dht.get_peers(T0, InfoHash([0x22; 20]), None).unwrap();
    assert_ne!(other, lookup);
    assert!(
        std::iter::from_fn(|| dht.poll_event()).all(|e| !matches!(e, DhtEvent::Peers { .. })),
        "no peers stored for another info-hash"
    );
}

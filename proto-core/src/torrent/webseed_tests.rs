//! Webseeds through the swarm harness: simulated HTTP servers alone, beside a seeding peer,
//! and failing in every way they can.

use std::time::Duration;

use super::swarm::{NetConfig, NodeSpec, Role, SimWebseed, Swarm, TestTorrent, WebseedMode};
use super::*;
use crate::webseed::{SourceState, WebseedConfig};

fn swarm(
    seed: u64,
    torrent: TestTorrent,
    nodes: &[NodeSpec],
    config: &TorrentConfig,
    net: NetConfig,
    webseeds: Vec<SimWebseed>,
) -> Swarm {
    let mut s = Swarm::with_webseeds(seed, torrent, nodes, config, net, webseeds);
    let done = s.run_until(Swarm::all_complete);
    assert!(
        done,
        "seed {seed}: not complete after {} steps at {:?}: {:?}",
        s.steps(),
        s.now(),
        s.nodes()
            .iter()
            .map(|n| (n.torrent.stats().pieces.have, n.torrent.webseeds()))
            .collect::<Vec<_>>()
    );
    for n in s.nodes() {
        n.torrent.check_invariants();
    }
    s
}

fn payload(s: &Swarm) -> u64 {
    let st = s.nodes()[0].torrent.stats();
    st.bytes.total - st.bytes.padding
}

#[test]
fn a_webseed_alone_completes_padded_multi_file_torrents() {
    for seed in 1..=6u64 {
        let t = TestTorrent::generate(seed, 64 * 1024, 600 * 1024, true);
        let good = SimWebseed::new("http://ws.test/data/", WebseedMode::Good);
        let s = swarm(
            seed,
            t,
            &[NodeSpec::new(Role::Leecher)],
            &TorrentConfig::default(),
            NetConfig::default(),
            vec![good],
        );
        let n = &s.nodes()[0];
        let st = n.torrent.stats();
        assert_eq!(st.status, Status::Seeding);
        // Every payload byte exactly once: padding never fetched, nothing wasted.
        assert_eq!(st.bytes.downloaded, payload(&s), "seed {seed}");
        assert_eq!(st.bytes.wasted, 0, "seed {seed}");
        assert_eq!(n.webseed_bytes[0], payload(&s));
        // Completion stopped the webseed.
        let ws = n.torrent.webseeds();
        assert_eq!(ws.len(), 1);
        assert_eq!(ws[0].state, SourceState::Idle);
        assert_eq!(ws[0].range, None);
        assert_eq!(ws[0].error, None);
    }
}

#[test]
fn webseed_and_seeding_peer_both_contribute_without_fetching_twice() {
    for seed in [31u64, 32, 33] {
        let t = TestTorrent::generate(seed, 3 << 20, 4 << 20, true);
        let net = NetConfig {
            bandwidth: Some(2 << 20),
            ..NetConfig::default()
        };
        let mut ws = SimWebseed::new("http://ws.test/", WebseedMode::Good);
        ws.bandwidth = Some(2 << 20);
        let nodes = [NodeSpec::new(Role::Seeder), NodeSpec::new(Role::Leecher)];
        let s = swarm(seed, t, &nodes, &TorrentConfig::default(), net, vec![ws]);
        let n = &s.nodes()[1];
        let st = n.torrent.stats();
        let from_webseed = n.webseed_bytes[0];
        let from_peer = st.bytes.downloaded - from_webseed;
        let size = payload(&s);
        assert!(
            from_webseed > size / 10,
            "seed {seed}: webseed gave {from_webseed}"
        );
        assert!(from_peer > size / 10, "seed {seed}: peer gave {from_peer}");
        // No byte fetched twice beyond an endgame margin (and the bytes in flight when a
        // peer took a range's tail).
        let margin = 32 * u64::from(BLOCK_LEN);
        assert!(
            st.bytes.downloaded <= size + margin,
            "seed {seed}: downloaded {} for {size} ({} wasted)",
            st.bytes.downloaded,
            st.bytes.wasted
        );
        assert_eq!(n.torrent.webseeds()[0].range, None);
    }
}

#[test]
fn a_corrupt_webseed_is_banned_for_the_run() {
    let t = TestTorrent::generate(41, 512 * 1024, 1 << 20, true);
    let nodes = [NodeSpec::new(Role::Seeder), NodeSpec::new(Role::Leecher)];
    let bad = SimWebseed::new("http://bad.test/", WebseedMode::Corrupt);
    let s = swarm(
        41,
        t,
        &nodes,
        &TorrentConfig::default(),
        NetConfig::default(),
        vec![bad],
    );
    let n = &s.nodes()[1];
    let ws = &n.torrent.webseeds()[0];
    assert_eq!(ws.state, SourceState::Banned);
    assert_eq!(ws.error, Some(WebseedError::CorruptData));
    assert!(n.torrent.stats().bytes.wasted > 0);
    // Banned after its first bad piece: it was not asked again and again.
    assert!(n.webseed_requests[0] <= 8, "{}", n.webseed_requests[0]);
    // The seeder is not blamed for the webseed's data.
    assert!(
        !n.events
            .iter()
            .any(|(_, e)| matches!(e, TorrentEvent::PeerBanned { .. }))
    );
}

#[test]
fn failing_webseeds_are_disabled_and_retried_after_the_configured_interval() {
    let t = TestTorrent::generate(51, 1 << 20, 1 << 20, false);
    let mut good = SimWebseed::new("http://good.test/", WebseedMode::Good);
    // Slow enough that the download outlasts several retry intervals.
    good.bandwidth = Some(64 * 1024);
    let missing = SimWebseed::new("http://missing.test/", WebseedMode::Status(404));
    let short = SimWebseed::new("http://short.test/", WebseedMode::Short);
    let config = TorrentConfig {
        webseed: WebseedConfig {
            retry_interval: Duration::from_secs(3),
            ..WebseedConfig::default()
        },
        ..TorrentConfig::default()
    };
    let s = swarm(
        51,
        t,
        &[NodeSpec::new(Role::Leecher)],
        &config,
        NetConfig::default(),
        vec![good, missing, short],
    );
    let n = &s.nodes()[0];
    assert!(s.now() > Instant::ZERO + Duration::from_secs(10));
    let ws = n.torrent.webseeds();
    assert_eq!(ws[0].error, None);
    assert_eq!(ws[1].error, Some(WebseedError::Status(404)));
    assert_eq!(ws[2].error, Some(WebseedError::ShortBody));
    // Retried every 3 s (rain would wait a fixed minute).
    assert!(n.webseed_requests[1] >= 3, "{:?}", n.webseed_requests);
    assert!(n.webseed_requests[2] >= 3, "{:?}", n.webseed_requests);
    // Half bodies were stored up to the last whole block; the rest is wasted, never
    // verified as a piece.
    let st = n.torrent.stats();
    assert_eq!(st.status, Status::Seeding);
    assert_eq!(n.data, s.torrent().data);
}

#[test]
fn the_default_retry_interval_is_a_minute() {
    let t = TestTorrent::generate(52, 256 * 1024, 256 * 1024, false);
    let mut good = SimWebseed::new("http://good.test/", WebseedMode::Good);
    good.bandwidth = Some(16 * 1024);
    let missing = SimWebseed::new("http://missing.test/", WebseedMode::Status(404));
    let s = swarm(
        52,
        t,
        &[NodeSpec::new(Role::Leecher)],
        &TorrentConfig::default(),
        NetConfig::default(),
        vec![good, missing],
    );
    let n = &s.nodes()[0];
    let secs = s.now().saturating_duration_since(Instant::ZERO).as_secs();
    assert!((10..60).contains(&secs), "{secs}");
    assert_eq!(n.webseed_requests[1], 1);
}

#[test]
fn magnet_leechers_use_webseeds_once_metadata_arrives() {
    let t = TestTorrent::generate(61, 1 << 20, 2 << 20, true);
    let nodes = [
        NodeSpec::new(Role::Seeder),
        NodeSpec::new(Role::MagnetLeecher),
    ];
    let net = NetConfig {
        bandwidth: Some(1 << 20),
        ..NetConfig::default()
    };
    let ws = SimWebseed::new("http://ws.test/", WebseedMode::Good);
    let s = swarm(61, t, &nodes, &TorrentConfig::default(), net, vec![ws]);
    assert!(s.nodes()[1].webseed_bytes[0] > 0);
}

#[test]
fn webseed_runs_are_deterministic() {
    let run = |seed| {
        let t = TestTorrent::generate(71, 1 << 20, 1 << 20, true);
        let nodes = [NodeSpec::new(Role::Seeder), NodeSpec::new(Role::Leecher)];
        let ws = vec![
            SimWebseed::new("http://a.test/", WebseedMode::Good),
            SimWebseed::new("http://b.test/", WebseedMode::Good),
        ];
        let net = NetConfig {
            bandwidth: Some(1 << 20),
            ..NetConfig::default()
        };
        let s = swarm(seed, t, &nodes, &TorrentConfig::default(), net, ws);
        (s.trace_hash(), s.now(), s.nodes()[1].webseed_bytes.clone())
    };
    assert_eq!(run(5), run(5));
}

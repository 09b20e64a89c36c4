//! The UDP tracker transport runs over the simulated network: its socket comes from the
//! [`Network`](rain_runtime::net::Network) it is given, so a turmoil host serving
//! [`rain_sim::tracker`] (the simulated swarms' BEP 15 tracker) is reachable from simulated
//! sessions; and that tracker keeps its swarm as BEP 15 asks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rain_proto::InfoHash;
use rain_proto::rng::Seed;
use rain_proto::tracker::{Announce, Event};
use rain_runtime::tracker_client::TrackerClient;
use rain_sim::net::TurmoilNet;
use rain_sim::run::sim_tracker_config;
use rain_sim::tracker::{self, TRACKER_PORT, TrackerStats};

const HASH: InfoHash = InfoHash([9; 20]);

fn announce(port: u16, event: Event, left: u64) -> Announce {
    Announce {
        info_hash: HASH,
        peer_id: *b"-RN0010-abcdefghijkl",
        port,
        uploaded: 0,
        downloaded: 0,
        left,
        event,
        num_want: 50,
        key: 1,
    }
}

fn client(seed: u64) -> TrackerClient<TurmoilNet> {
    TrackerClient::new(
        TurmoilNet::new(),
        sim_tracker_config(),
        Seed::from_u64(seed),
    )
}

/// Two clients announce: each learns the other's IP and announced port (not the UDP source
/// port), the counts follow `left`, a `stopped` peer is no longer handed out, and a scrape
/// counts the swarm.
#[test]
fn a_simulated_host_serves_udp_tracker_announces() {
    let stats = Arc::new(TrackerStats::default());
    let mut sim = turmoil::Builder::new()
        .simulation_duration(Duration::from_secs(120))
        .build();
    let s = stats.clone();
    sim.host("tracker", move || tracker::serve(7, s.clone()));
    let url = tracker::announce_url();
    sim.client("seeder", {
        let url = url.clone();
        async move {
            let c = client(1);
            let r = c
                .announce(&url, &announce(6881, Event::Started, 0), None, false)
                .await
                .expect("announce over the simulated network");
            assert!(r.peers.is_empty(), "alone in the swarm: {:?}", r.peers);
            assert_eq!((r.seeders, r.leechers), (Some(1), Some(0)));
            assert_eq!(r.interval, tracker::ANNOUNCE_INTERVAL);
            // Leave once the leecher has seen us.
            tokio::time::sleep(Duration::from_secs(5)).await;
            c.announce(&url, &announce(6881, Event::Stopped, 0), None, false)
                .await
                .expect("stopped");
            Ok(())
        }
    });
    sim.client("leecher", async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let c = client(2);
        let r = c
            .announce(&url, &announce(6882, Event::Started, 100), None, false)
            .await
            .expect("announce over the simulated network");
        let seeder: SocketAddr = (turmoil::lookup("seeder"), 6881).into();
        assert_eq!(r.peers, vec![seeder]);
        assert_eq!((r.seeders, r.leechers), (Some(1), Some(1)));
        let s = c.scrape(&url, &HASH, false).await.expect("scrape");
        assert_eq!((s.seeders, s.leechers), (1, 1));
        tokio::time::sleep(Duration::from_secs(10)).await;
        let r = c
            .announce(&url, &announce(6882, Event::None, 100), None, false)
            .await
            .expect("second announce");
        assert!(r.peers.is_empty(), "the seeder stopped: {:?}", r.peers);
        assert_eq!((r.seeders, r.leechers), (Some(0), Some(1)));
        Ok(())
    });
    sim.run().unwrap();
    assert_eq!(stats.announces(), 4);
    assert_eq!(stats.scrapes.load(Ordering::Relaxed), 1);
    assert_eq!(stats.bad_connection_ids.load(Ordering::Relaxed), 0);
}

/// A request with a connection id the tracker did not give this address gets no answer: the
/// client times out instead of learning the swarm.
#[test]
fn unknown_connection_ids_are_refused() {
    let stats = Arc::new(TrackerStats::default());
    let mut sim = turmoil::Builder::new()
        .simulation_duration(Duration::from_secs(60))
        .build();
    let s = stats.clone();
    sim.host("tracker", move || tracker::serve(7, s.clone()));
    sim.client("forger", async {
        let socket = turmoil::net::UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0)).await?;
        let to: SocketAddr = (turmoil::lookup("tracker"), TRACKER_PORT).into();
        let mut p = Vec::new();
        p.extend_from_slice(&0x1234_5678_9abc_def0u64.to_be_bytes());
        p.extend_from_slice(&1u32.to_be_bytes());
        p.extend_from_slice(&42u32.to_be_bytes());
        p.resize(98, 0);
        socket.send_to(&p, to).await?;
        let mut buf = [0u8; 512];
        let got = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf)).await;
        assert!(got.is_err(), "a forged connection id was answered");
        Ok(())
    });
    sim.run().unwrap();
    assert_eq!(stats.bad_connection_ids.load(Ordering::Relaxed), 1);
    assert_eq!(stats.announces(), 0);
}

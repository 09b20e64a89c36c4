//! The UDP tracker transport runs over the simulated network: its socket comes from the
//! [`Network`](rain_runtime::net::Network) it is given, so a turmoil host can serve as a UDP
//! tracker (BEP 15) for simulated sessions.

use std::net::SocketAddr;
use std::time::Duration;

use rain_proto::InfoHash;
use rain_proto::rng::Seed;
use rain_proto::tracker::{Announce, Event};
use rain_runtime::tracker_client::{TrackerClient, TrackerConfig};
use rain_sim::net::TurmoilNet;

const PORT: u16 = 6969;
const CONNECTION_ID: u64 = 0x0123_4567_89ab_cdef;

/// A minimal BEP 15 tracker: answers connect, and announces with one peer, 10.1.2.3:6881.
async fn fake_tracker() -> turmoil::Result {
    let socket = turmoil::net::UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, PORT)).await?;
    let mut buf = [0u8; 2048];
    loop {
        let (n, from) = socket.recv_from(&mut buf).await?;
        if n < 16 {
            continue;
        }
        let p = &buf[..n];
        let action = u32::from_be_bytes(p[8..12].try_into().unwrap());
        let tid = &p[12..16];
        let mut reply = Vec::new();
        match action {
            0 => {
                reply.extend_from_slice(&0u32.to_be_bytes());
                reply.extend_from_slice(tid);
                reply.extend_from_slice(&CONNECTION_ID.to_be_bytes());
            }
            1 if p[..8] == CONNECTION_ID.to_be_bytes() => {
                reply.extend_from_slice(&1u32.to_be_bytes());
                reply.extend_from_slice(tid);
                for v in [1800u32, 4, 5] {
                    reply.extend_from_slice(&v.to_be_bytes());
                }
                reply.extend_from_slice(&[10, 1, 2, 3, 0x1a, 0xe1]);
            }
            _ => continue,
        }
        socket.send_to(&reply, from).await?;
    }
}

#[test]
fn a_simulated_host_serves_udp_tracker_announces() {
    let mut sim = turmoil::Builder::new()
        .simulation_duration(Duration::from_secs(120))
        .build();
    sim.host("tracker", fake_tracker);
    sim.client("client", async {
        let client = TrackerClient::new(
            TurmoilNet::new(),
            TrackerConfig::default(),
            Seed::from_u64(1),
        );
        let announce = Announce {
            info_hash: InfoHash([9; 20]),
            peer_id: *b"-RN0010-abcdefghijkl",
            port: 6881,
            uploaded: 0,
            downloaded: 0,
            left: 100,
            event: Event::Started,
            num_want: 50,
            key: 1,
        };
        let reply = client
            .announce(
                &format!("udp://tracker:{PORT}/announce"),
                &announce,
                None,
                false,
            )
            .await
            .expect("announce over the simulated network");
        let peer: SocketAddr = "10.1.2.3:6881".parse().unwrap();
        assert_eq!(reply.peers, vec![peer]);
        assert_eq!((reply.leechers, reply.seeders), (Some(4), Some(5)));
        Ok(())
    });
    sim.run().unwrap();
}

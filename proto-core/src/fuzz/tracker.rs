//! Fuzz bodies for tracker replies: HTTP announce/scrape bodies and a UDP transaction fed a
//! stream of packets.

use crate::InfoHash;
use crate::rng::{Rng, Seed};
use crate::time::Instant;
use crate::tracker::udp::{Reply, Request, UdpTransaction};
use crate::tracker::{
    Announce, Event, MAX_PEERS_PER_REPLY, MIN_INTERVAL_FLOOR, TrackerError, http,
};

/// HTTP tracker bodies: parsing never panics, and an accepted reply respects the limits.
pub fn http_tracker(data: &[u8]) {
    for status in [200, 500] {
        if let Ok(r) = http::parse_announce(status, data) {
            assert!(r.peers.len() <= MAX_PEERS_PER_REPLY);
            assert!(r.interval >= MIN_INTERVAL_FLOOR);
            assert!(r.peers.iter().all(|p| p.port() != 0));
        }
        let _ = http::parse_scrape(status, data, &InfoHash([0; 20]));
    }
}

/// A UDP announce transaction fed packets cut from the input: a length byte (low 7 bits; the
/// high bit asks for bytes 4..8 to be replaced by the transaction id the machine expects, so
/// the fuzzer gets past the id check), then that many bytes.
pub fn udp_tracker(data: &[u8]) {
    let _ = udp_outcome(data);
}

fn udp_outcome(data: &[u8]) -> Option<Result<Reply, TrackerError>> {
    let mut rng = Rng::new(Seed::from_u64(5));
    let now = Instant::from_nanos(1_000_000_000);
    let announce = Announce {
        info_hash: InfoHash([1; 20]),
        peer_id: [2; 20],
        port: 6881,
        uploaded: 0,
        downloaded: 0,
        left: 1,
        event: Event::Started,
        num_want: 50,
        key: 7,
    };
    let ipv6 = data.first().is_some_and(|b| b & 1 == 1);
    let mut t = UdpTransaction::new(
        now,
        Request::Announce(announce),
        "/announce",
        ipv6,
        None,
        8,
        &mut rng,
    );
    let mut last_sent = t.poll_transmit().expect("first packet");
    let mut rest = data.get(1..).unwrap_or_default();
    while let Some((&len, tail)) = rest.split_first() {
        let take = usize::from(len & 0x7f).min(tail.len());
        let mut packet = tail[..take].to_vec();
        rest = &tail[take..];
        if len & 0x80 != 0 && packet.len() >= 8 {
            packet[4..8].copy_from_slice(&last_sent[12..16]);
        }
        t.handle_datagram(now, &packet);
        if let Some(p) = t.poll_transmit() {
            last_sent = p;
        }
        if t.outcome().is_some() {
            break;
        }
    }
    if let Some(deadline) = t.poll_timeout() {
        t.handle_timeout(deadline);
    }
    t.outcome().cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(out: &mut Vec<u8>, with_tid: bool, fields: &[u8]) {
        out.push(u8::try_from(fields.len()).unwrap() | if with_tid { 0x80 } else { 0 });
        out.extend_from_slice(fields);
    }

    #[test]
    fn crafted_input_reaches_an_announce_reply() {
        let mut data = vec![0];
        let mut connect = vec![0, 0, 0, 0, 0, 0, 0, 0];
        connect.extend_from_slice(&42u64.to_be_bytes());
        packet(&mut data, true, &connect);
        let mut reply = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 7, 8, 0, 0, 0, 2, 0, 0, 0, 3];
        reply.extend_from_slice(&[127, 0, 0, 1, 0x1a, 0xe1]);
        packet(&mut data, true, &reply);
        let Some(Ok(Reply::Announce(r))) = udp_outcome(&data) else {
            panic!("{:?}", udp_outcome(&data))
        };
        assert_eq!(r.peers, ["127.0.0.1:6881".parse().unwrap()]);
        // Without the transaction id the replies are ignored and the machine times out.
        let mut ignored = vec![0];
        packet(&mut ignored, false, &connect);
        assert_eq!(udp_outcome(&ignored), None);
    }
}

//! Fuzz body for the DHT: KRPC decoding and a whole [`Dht`] machine fed arbitrary datagrams.

use std::net::SocketAddr;
use std::time::Duration;

use crate::dht::krpc::{Body, Message};
use crate::dht::{Dht, DhtConfig};
use crate::rng::Seed;
use crate::time::Instant;

/// Decodes `data` as KRPC (a decoded message must re-encode and decode to itself), then feeds
/// it to a [`Dht`] as a datagram, both as is and, if it decodes, as the answer to a query the
/// machine has in flight. Never panics; everything the machine sends must be valid KRPC.
pub fn krpc(data: &[u8]) {
    let decoded = Message::decode(data);
    if let Ok(m) = &decoded {
        let again = Message::decode(&m.to_bytes());
        assert_eq!(again.as_ref(), Ok(m), "re-encoding changed the message");
    }

    let cfg = DhtConfig {
        ipv6: data.first().is_some_and(|b| b & 1 == 1),
        ..DhtConfig::default()
    };
    let now = Instant::ZERO;
    let mut dht = Dht::new(cfg, Seed::from_u64(1), now);
    let peer: SocketAddr = "10.0.0.2:6881".parse().expect("valid address");
    dht.handle_datagram(now, peer, data);
    check_outputs(&mut dht);

    // Again as the answer to our own ping, so the response paths run too.
    let node: SocketAddr = "10.0.0.3:6881".parse().expect("valid address");
    dht.add_node(now, node);
    let mut tid = None;
    while let Some(t) = dht.poll_transmit() {
        let m = Message::decode(&t.data).expect("the machine sends valid KRPC");
        if t.to == node && matches!(m.body, Body::Query { .. }) {
            tid = Some(m.tid);
        }
    }
    if let (Ok(mut m), Some(tid)) = (decoded, tid) {
        m.tid = tid;
        dht.handle_datagram(now, node, &m.to_bytes());
        check_outputs(&mut dht);
    }
    // Let everything time out.
    let mut t = now;
    for _ in 0..4 {
        let Some(deadline) = dht.poll_timeout() else {
            break;
        };
        t = deadline.max(t + Duration::from_millis(1));
        dht.handle_timeout(t);
        check_outputs(&mut dht);
    }
}

fn check_outputs(dht: &mut Dht) {
    while let Some(t) = dht.poll_transmit() {
        assert!(
            Message::decode(&t.data).is_ok(),
            "the machine sends valid KRPC"
        );
    }
    while dht.poll_event().is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn krpc_fuzz_body_handles_samples() {
        let samples: [&[u8]; 7] = [
            b"",
            b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe",
            b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe",
            b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe",
            b"d1:rd2:id20:abcdefghij01234567895:nodes26:mnopqrstuvwxyz123456\x0a\x00\x00\x05\x1a\xe1e1:t2:aa1:y1:re",
            b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee",
            b"d1:rd2:id20:abcdefghij01234567896:valuesl6:\x0a\x00\x00\x09\x1a\xe1e5:token4:abcde1:t2:aa1:y1:re",
        ];
        for s in samples {
            krpc(s);
        }
    }
}

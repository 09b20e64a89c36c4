//! Per-torrent listen ports (rain-behaviour §6.13): each torrent gets a port drawn at random
//! from `port-begin..port-end`, persisted in its record and reused after a restart.
//!
//! rain keeps a drawn or stored port even when another program holds it, and the torrent then
//! runs without incoming connections for good. Here a port is probed (bound and released)
//! when a torrent is added and when it is restored; one that cannot be bound is swapped for
//! another free port of the range, up to [`MAX_PORT_PROBES`] tries. The ports that failed go
//! back to the pool, since they may be released later.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use rain_proto::rng::Rng;

use crate::net::Network;

/// Replacement ports tried for one torrent before keeping the port it had.
pub(crate) const MAX_PORT_PROBES: usize = 16;

/// Draws a random port from `free` and takes it out of the pool.
pub(crate) fn draw(free: &mut BTreeSet<u16>, rng: &mut Rng) -> Option<u16> {
    if free.is_empty() {
        return None;
    }
    let n = rng.below(free.len() as u64) as usize;
    let port = *free.iter().nth(n)?;
    free.remove(&port);
    Some(port)
}

/// Whether a listener can be bound on `host:port` right now.
pub(crate) async fn can_listen<N: Network>(net: &N, host: IpAddr, port: u16) -> bool {
    net.listen(SocketAddr::new(host, port)).await.is_ok()
}

/// A port for a torrent that holds `port`: `port` itself when it can be bound, else the first
/// of up to [`MAX_PORT_PROBES`] ports taken with `draw` that can. Also returns the ports to
/// put back in the pool: every drawn port not chosen, and `port` when it was replaced. When
/// nothing binds, `port` is kept (rain's behaviour: no incoming connections).
pub(crate) async fn bindable<N: Network>(
    net: &N,
    host: IpAddr,
    port: u16,
    mut draw: impl FnMut() -> Option<u16>,
) -> (u16, Vec<u16>) {
    if can_listen(net, host, port).await {
        return (port, Vec::new());
    }
    let mut back = Vec::new();
    for _ in 0..MAX_PORT_PROBES {
        let Some(candidate) = draw() else { break };
        if can_listen(net, host, candidate).await {
            back.push(port);
            return (candidate, back);
        }
        back.push(candidate);
    }
    tracing::warn!("port {port} is taken and no other port of the range binds; keeping it");
    (port, back)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::TokioNet;
    use rain_proto::rng::Seed;

    #[tokio::test]
    async fn a_taken_port_is_swapped_for_a_free_one() {
        let host: IpAddr = "127.0.0.1".parse().unwrap();
        // Two ports held by "another program", one free.
        let mut held: Vec<_> = (0..3)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let ports: Vec<u16> = held
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        let free_port = ports[2];
        drop(held.pop());
        let net = TokioNet;

        assert_eq!(
            bindable(&net, host, free_port, || None).await,
            (free_port, vec![]),
            "a free port is kept"
        );
        let mut pool: BTreeSet<u16> = [ports[1], free_port].into();
        let mut rng = Rng::new(Seed::from_u64(7));
        let (got, back) = bindable(&net, host, ports[0], || draw(&mut pool, &mut rng)).await;
        assert_eq!(got, free_port, "replaced by the port that binds");
        assert!(
            back.contains(&ports[0]),
            "the taken port goes back to the pool"
        );
        assert!(!back.contains(&free_port));
        // Nothing binds: the port is kept.
        let (got, back) = bindable(&net, host, ports[0], || None).await;
        assert_eq!((got, back), (ports[0], vec![]));
    }

    #[test]
    fn draw_takes_ports_out_of_the_pool() {
        let mut pool: BTreeSet<u16> = (100..104).collect();
        let mut rng = Rng::new(Seed::from_u64(1));
        let mut seen = BTreeSet::new();
        while let Some(p) = draw(&mut pool, &mut rng) {
            assert!((100..104).contains(&p));
            assert!(seen.insert(p), "drawn twice");
        }
        assert_eq!(seen.len(), 4);
    }
}

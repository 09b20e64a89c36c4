//! Safety checks each rain host runs on every statistics sample, so they hold throughout a
//! run and not only at its end (issue #9): counters consistent and never going back, every
//! queue within its configured bound.

use std::net::SocketAddr;

use rain_proto::torrent::{ByteStats, PeerView, PieceStats};
use rain_runtime::session::SessionConfig;

/// The bounds a host's torrent must stay within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// `max-requests-in`: requests queued from one peer.
    pub max_requests_in: usize,
    /// `max-requests-out`: requests outstanding to one peer.
    pub max_requests_out: usize,
    /// `max-peer-dial` + `max-peer-accept`: connected peers.
    pub max_peers: usize,
}

impl Bounds {
    /// The bounds `config` sets.
    pub fn of(config: &SessionConfig) -> Self {
        Bounds {
            max_requests_in: config.max_requests_in as usize,
            max_requests_out: config.max_requests_out as usize,
            max_peers: config.max_peer_dial + config.max_peer_accept,
        }
    }
}

/// One connected peer's queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerLoad {
    /// The peer.
    pub addr: SocketAddr,
    /// Its requests we have queued.
    pub requests_in: usize,
    /// Our requests outstanding to it.
    pub requests_out: usize,
}

impl From<&PeerView> for PeerLoad {
    fn from(p: &PeerView) -> Self {
        PeerLoad {
            addr: p.addr,
            requests_in: p.requests_in,
            requests_out: p.requests_out,
        }
    }
}

/// What is wrong in one sample; `prev` is the previous sample's byte counters of the same
/// incarnation (counters restart with the software).
pub fn violations(
    bounds: &Bounds,
    prev: Option<&ByteStats>,
    p: &PieceStats,
    b: &ByteStats,
    peers: &[PeerLoad],
) -> Vec<String> {
    let mut v = Vec::new();
    if p.have > p.total {
        v.push(format!("{} pieces verified of {}", p.have, p.total));
    }
    if b.completed > b.total {
        v.push(format!("{} bytes completed of {}", b.completed, b.total));
    }
    if b.wasted > b.downloaded {
        v.push(format!(
            "{} bytes wasted of {} downloaded",
            b.wasted, b.downloaded
        ));
    }
    if let Some(prev) = prev {
        for (name, before, now) in [
            ("downloaded", prev.downloaded, b.downloaded),
            ("uploaded", prev.uploaded, b.uploaded),
            ("wasted", prev.wasted, b.wasted),
        ] {
            if now < before {
                v.push(format!("{name} went back from {before} to {now}"));
            }
        }
    }
    if peers.len() > bounds.max_peers {
        v.push(format!(
            "{} peers connected, bound {}",
            peers.len(),
            bounds.max_peers
        ));
    }
    for peer in peers {
        if peer.requests_in > bounds.max_requests_in {
            v.push(format!(
                "{} requests queued from {}, bound {}",
                peer.requests_in, peer.addr, bounds.max_requests_in
            ));
        }
        if peer.requests_out > bounds.max_requests_out {
            v.push(format!(
                "{} requests outstanding to {}, bound {}",
                peer.requests_out, peer.addr, bounds.max_requests_out
            ));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds() -> Bounds {
        Bounds {
            max_requests_in: 4,
            max_requests_out: 8,
            max_peers: 2,
        }
    }

    fn load(requests_in: usize, requests_out: usize) -> PeerLoad {
        PeerLoad {
            addr: "127.0.0.1:6881".parse().unwrap(),
            requests_in,
            requests_out,
        }
    }

    #[test]
    fn a_consistent_sample_passes_and_each_breach_is_named() {
        let pieces = PieceStats {
            total: 10,
            have: 3,
            ..PieceStats::default()
        };
        let bytes = ByteStats {
            total: 100,
            completed: 30,
            downloaded: 40,
            wasted: 5,
            ..ByteStats::default()
        };
        let ok = [load(4, 8), load(0, 0)];
        assert!(violations(&bounds(), Some(&bytes), &pieces, &bytes, &ok).is_empty());

        let worse_pieces = PieceStats { have: 11, ..pieces };
        let worse_bytes = ByteStats {
            downloaded: 39,
            ..bytes
        };
        let v = violations(&bounds(), Some(&bytes), &worse_pieces, &worse_bytes, &ok);
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v[0].contains("pieces verified") && v[1].contains("downloaded went back"));

        let v = violations(
            &bounds(),
            None,
            &pieces,
            &bytes,
            &[load(5, 9), load(0, 0), load(0, 0)],
        );
        assert_eq!(v.len(), 3, "{v:?}");
        assert!(v[0].contains("3 peers") && v[1].contains("5 requests queued"));
        assert!(v[2].contains("9 requests outstanding"));
    }
}

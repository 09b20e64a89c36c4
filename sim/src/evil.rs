//! Misbehaving peers: small hosts that speak the peer wire protocol with [`rain_proto::wire`]
//! and then lie. A [`Misbehaviour::Corrupt`] peer claims every piece and answers each request
//! with random bytes; a [`Misbehaviour::Stall`] peer claims every piece, unchokes, and never
//! answers a request; a [`Misbehaviour::Flood`] peer claims nothing and sends requests as fast
//! as its link takes them, far past any request queue.
//!
//! They dial the honest peers (an incoming plaintext connection, which every rain session
//! accepts) and redial a few times after being dropped, so bans are exercised too.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rain_proto::Decode;
use rain_proto::InfoHash;
use rain_proto::rng::{Rng, Seed};
use rain_proto::wire::{Decoder, HANDSHAKE_LEN, Handshake, Limits, Message, PeerId, Reserved};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::net::TurmoilNet;

/// How a misbehaving peer lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Serves random bytes for every block.
    Corrupt,
    /// Never serves a block.
    Stall,
    /// Has nothing and floods requests (and reads what it is sent, so it is never the one
    /// that stalls the connection).
    Flood,
}

/// Requests a flooding peer writes at once.
pub const FLOOD_BATCH: usize = 512;
/// Batches a flooding peer writes per connection.
pub const FLOOD_BATCHES: usize = 200;
/// The block size of flood requests.
const BLOCK: u32 = 16 * 1024;
/// Pause between two flood batches.
pub const FLOOD_PAUSE: Duration = Duration::from_millis(20);

/// Times a misbehaving peer dials each target (the first dial and the redials after drops).
pub const DIALS_PER_TARGET: usize = 3;
/// Pause between dials of one target.
pub const REDIAL_DELAY: Duration = Duration::from_secs(5);

/// What a misbehaving host needs to know.
#[derive(Debug, Clone)]
pub struct EvilPeer {
    /// How it lies.
    pub kind: Misbehaviour,
    /// The torrent.
    pub info_hash: InfoHash,
    /// Its piece count (for the bitfield).
    pub pieces: u32,
    /// Its piece length (for valid requests).
    pub piece_length: u32,
    /// `host:port` of each peer to pester.
    pub targets: Vec<String>,
    /// Seed of its peer id and garbage.
    pub seed: u64,
    /// Counts the corrupt blocks sent (shared by all misbehaving hosts of a run).
    pub served: Arc<AtomicU64>,
    /// Counts the flood requests sent (shared by all misbehaving hosts of a run).
    pub flooded: Arc<AtomicU64>,
}

impl EvilPeer {
    /// Runs the host: one task per target, each dialing up to [`DIALS_PER_TARGET`] times.
    /// Returns when every target gave up on it.
    pub async fn run(self, net: TurmoilNet) {
        let mut rng = Rng::new(Seed::from_u64(self.seed));
        let mut tasks = tokio::task::JoinSet::new();
        for target in &self.targets {
            let me = self.clone();
            let target = target.clone();
            let net = net.clone();
            let seed = rng.child();
            tasks.spawn_local(async move {
                let mut rng = Rng::new(seed);
                for _ in 0..DIALS_PER_TARGET {
                    let _ = me.pester(&net, &target, &mut rng).await;
                    tokio::time::sleep(REDIAL_DELAY).await;
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }

    async fn pester(&self, net: &TurmoilNet, target: &str, rng: &mut Rng) -> std::io::Result<()> {
        let addr = net.resolve_now(target)?[0];
        let mut s = turmoil::net::TcpStream::connect(addr).await?;
        let peer_id = PeerId::generate("evil", rng).map_err(std::io::Error::other)?;
        let hs = Handshake {
            reserved: Reserved::default(),
            info_hash: self.info_hash,
            peer_id,
        };
        s.write_all(&hs.to_bytes()).await?;
        let mut theirs = [0u8; HANDSHAKE_LEN];
        s.read_exact(&mut theirs).await?;
        if !matches!(Handshake::decode(&theirs), Decode::Complete { .. }) {
            return Ok(());
        }
        let mut bits = vec![0u8; self.pieces.div_ceil(8) as usize];
        if self.kind == Misbehaviour::Flood {
            return self.flood(s, bits, rng).await;
        }
        for i in 0..self.pieces {
            bits[(i / 8) as usize] |= 0x80 >> (i % 8);
        }
        let mut out = BytesMut::new();
        Message::Bitfield(Bytes::from(bits)).encode(&mut out);
        Message::Unchoke.encode(&mut out);
        s.write_all(&out).await?;
        let decoder = Decoder::new(Limits::default());
        let mut buf = BytesMut::with_capacity(64 * 1024);
        loop {
            match decoder.decode(&mut buf) {
                Decode::Complete { value, .. } => {
                    if let (Message::Request(b), Misbehaviour::Corrupt) = (value, self.kind) {
                        let mut data = vec![0u8; b.length as usize];
                        rng.fill(&mut data);
                        let mut out = BytesMut::new();
                        Message::Piece {
                            index: b.index,
                            begin: b.begin,
                            data: Bytes::from(data),
                        }
                        .encode(&mut out);
                        s.write_all(&out).await?;
                        self.served.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Decode::Incomplete => {
                    if s.read_buf(&mut buf).await? == 0 {
                        return Ok(());
                    }
                }
                Decode::Invalid(_) => return Ok(()),
            }
        }
    }

    /// Says it has nothing, is interested, then writes [`FLOOD_BATCHES`] batches of
    /// [`FLOOD_BATCH`] valid requests (a random block of a random piece but the last), reading
    /// and dropping whatever comes back.
    async fn flood(
        &self,
        s: turmoil::net::TcpStream,
        empty_bitfield: Vec<u8>,
        rng: &mut Rng,
    ) -> std::io::Result<()> {
        let (mut rx, mut tx) = s.into_split();
        let drain = tokio::task::spawn_local(async move {
            let mut buf = vec![0u8; 64 * 1024];
            while matches!(rx.read(&mut buf).await, Ok(n) if n > 0) {}
        });
        let mut out = BytesMut::new();
        Message::Bitfield(Bytes::from(empty_bitfield)).encode(&mut out);
        Message::Interested.encode(&mut out);
        let result = async {
            tx.write_all(&out).await?;
            // Every piece but the last is whole.
            let whole = self.pieces.saturating_sub(1).max(1);
            let blocks = (self.piece_length / BLOCK).max(1);
            for _ in 0..FLOOD_BATCHES {
                out.clear();
                for _ in 0..FLOOD_BATCH {
                    let index = rng.below(u64::from(whole)) as u32;
                    let begin = rng.below(u64::from(blocks)) as u32 * BLOCK;
                    Message::Request(rain_proto::wire::Block {
                        index,
                        begin,
                        length: BLOCK,
                    })
                    .encode(&mut out);
                }
                tx.write_all(&out).await?;
                self.flooded
                    .fetch_add(FLOOD_BATCH as u64, Ordering::Relaxed);
                tokio::time::sleep(FLOOD_PAUSE).await;
            }
            Ok(())
        }
        .await;
        drain.abort();
        result
    }
}

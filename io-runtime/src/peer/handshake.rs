//! Setting up a connection: the encryption policy, MSE, and the BitTorrent handshake.

use std::net::SocketAddr;

use bytes::BytesMut;
use rain_proto::mse::{
    Cipher, CryptoMethod, EncryptionPolicy, IncomingKind, MseHandshake, Outcome, OutgoingAttempt,
    detect_incoming,
};
use rain_proto::rng::Rng;
use rain_proto::wire::{Handshake, Limits};
use rain_proto::{Decode, InfoHash};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

use super::{Connection, Local, PeerError, Remote, Timeouts};
use crate::net::Network;

/// An error, and whether it happened inside the MSE handshake (where rain's default policy
/// redials in plaintext: a peer without MSE just drops the connection).
struct Failed {
    during_mse: bool,
    error: PeerError,
}

impl From<PeerError> for Failed {
    fn from(error: PeerError) -> Self {
        Failed {
            during_mse: false,
            error,
        }
    }
}

fn mse_failed(error: PeerError) -> Failed {
    Failed {
        during_mse: true,
        error,
    }
}

/// Dials `addr` and sets up a connection under `policy`: MSE first unless disabled, and, as
/// rain does, a plaintext redial when MSE fails and encryption is not forced.
pub async fn dial<N: Network>(
    net: &N,
    addr: SocketAddr,
    local: &Local,
    policy: &EncryptionPolicy,
    timeouts: Timeouts,
    limits: Limits,
    rng: &mut Rng,
) -> Result<Connection<N::Stream>, PeerError> {
    let mut attempt = policy.first_attempt();
    loop {
        let stream = timeout(timeouts.connect, net.connect(addr))
            .await
            .map_err(|_| PeerError::Timeout("connect"))??;
        let result = match timeout(
            timeouts.handshake,
            outgoing(stream, local, attempt, limits, rng),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(Failed {
                during_mse: attempt != OutgoingAttempt::Plaintext,
                error: PeerError::Timeout("handshake"),
            }),
        };
        match result {
            Ok(c) => return Ok(c),
            Err(Failed {
                during_mse: true,
                error,
            }) => match policy.retry_after(attempt) {
                Some(next) => attempt = next,
                None => return Err(error),
            },
            Err(Failed { error, .. }) => return Err(error),
        }
    }
}

async fn outgoing<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    local: &Local,
    attempt: OutgoingAttempt,
    limits: Limits,
    rng: &mut Rng,
) -> Result<Connection<S>, Failed> {
    let ours = Handshake {
        reserved: local.reserved,
        info_hash: local.info_hash,
        peer_id: local.peer_id,
    };
    let (mut cipher, mut input, encrypted_handshake) = match attempt {
        OutgoingAttempt::Plaintext => {
            stream
                .write_all(&ours.to_bytes())
                .await
                .map_err(PeerError::from)?;
            (None, BytesMut::new(), false)
        }
        OutgoingAttempt::Encrypted(provide) => {
            let mse =
                MseHandshake::initiator(rng, local.info_hash, provide, ours.to_bytes().to_vec())
                    .expect("rain's policies always offer a method");
            let ((_, cipher), leftover) =
                run_mse(&mut stream, mse, &[]).await.map_err(mse_failed)?;
            (cipher, BytesMut::from(&leftover[..]), true)
        }
    };
    let theirs = read_handshake(&mut stream, &mut cipher, &mut input).await?;
    if theirs.info_hash != local.info_hash {
        return Err(PeerError::BadHandshake.into());
    }
    let encrypted_stream = cipher.is_some();
    let remote = Remote {
        info_hash: theirs.info_hash,
        peer_id: theirs.peer_id,
        reserved: theirs.reserved,
        encrypted_handshake,
        encrypted_stream,
    };
    Ok(Connection::new(stream, cipher, &input, remote, limits))
}

/// Sets up an incoming connection: detects plaintext or MSE from the first bytes, applies
/// `policy`, and finds the torrent with `lookup` (rain gives each torrent its own port, so
/// there is usually one candidate).
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    candidates: &[InfoHash],
    lookup: impl Fn(&InfoHash) -> Option<Local>,
    policy: &EncryptionPolicy,
    timeouts: Timeouts,
    limits: Limits,
    rng: &mut Rng,
) -> Result<Connection<S>, PeerError> {
    let work = async {
        let mut first = BytesMut::new();
        let kind = loop {
            if let Some(kind) = detect_incoming(&first) {
                break kind;
            }
            read_more(&mut stream, &mut first).await?;
        };
        let (mut cipher, mut input, encrypted_handshake) = match kind {
            IncomingKind::Plaintext if !policy.accepts_incoming_plaintext() => {
                return Err(PeerError::Policy);
            }
            IncomingKind::Plaintext => (None, first, false),
            IncomingKind::Encrypted => {
                let mse = MseHandshake::receiver(rng, candidates, policy.incoming_methods())
                    .expect("rain's policies always allow a method")
                    .prefer(policy.incoming_preference());
                let ((method, cipher), leftover) = run_mse(&mut stream, mse, &first).await?;
                if !policy.accepts_incoming(method) {
                    return Err(PeerError::Policy);
                }
                (cipher, BytesMut::from(&leftover[..]), true)
            }
        };
        let theirs = read_handshake(&mut stream, &mut cipher, &mut input)
            .await
            .map_err(|f| f.error)?;
        let local = lookup(&theirs.info_hash).ok_or(PeerError::UnknownTorrent(theirs.info_hash))?;
        let mut ours = Handshake {
            reserved: local.reserved,
            info_hash: local.info_hash,
            peer_id: local.peer_id,
        }
        .to_bytes();
        if let Some(c) = &mut cipher {
            c.encrypt(&mut ours);
        }
        stream.write_all(&ours).await?;
        let remote = Remote {
            info_hash: theirs.info_hash,
            peer_id: theirs.peer_id,
            reserved: theirs.reserved,
            encrypted_handshake,
            encrypted_stream: cipher.is_some(),
        };
        Ok(Connection::new(stream, cipher, &input, remote, limits))
    };
    timeout(timeouts.handshake, work)
        .await
        .map_err(|_| PeerError::Timeout("handshake"))?
}

/// Drives an MSE machine over the stream until it finishes. Returns the method, the cipher
/// and the plaintext that followed the handshake.
async fn run_mse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    mut mse: MseHandshake,
    already_read: &[u8],
) -> Result<((CryptoMethod, Option<Cipher>), Vec<u8>), PeerError> {
    let mut out = Vec::new();
    if !already_read.is_empty() {
        mse.handle_bytes(already_read).expect("machine is running");
    }
    let mut buf = BytesMut::new();
    loop {
        out.clear();
        if mse.poll_transmit(&mut out) > 0 {
            stream.write_all(&out).await?;
        }
        if mse.is_finished() {
            break;
        }
        buf.clear();
        read_more(stream, &mut buf).await?;
        mse.handle_bytes(&buf).expect("machine is running");
    }
    match mse.poll_outcome() {
        Some(Outcome::Established(e)) => Ok(((e.method, e.cipher), e.leftover)),
        Some(Outcome::Failed(f)) => Err(PeerError::Mse(f)),
        None => Err(PeerError::Closed),
    }
}

/// Reads the peer's 68-byte handshake from `input` plus the stream, decrypting new bytes.
async fn read_handshake<S: AsyncRead + Unpin>(
    stream: &mut S,
    cipher: &mut Option<Cipher>,
    input: &mut BytesMut,
) -> Result<Handshake, Failed> {
    loop {
        match Handshake::decode(input) {
            Decode::Complete { value, used } => {
                let _ = input.split_to(used);
                return Ok(value);
            }
            Decode::Invalid(_) => return Err(PeerError::BadHandshake.into()),
            Decode::Incomplete => {}
        }
        let before = input.len();
        read_more(stream, input).await?;
        if let Some(c) = cipher {
            c.decrypt(&mut input[before..]);
        }
    }
}

async fn read_more<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> Result<(), PeerError> {
    buf.reserve(4096);
    if stream.read_buf(buf).await? == 0 {
        return Err(PeerError::Closed);
    }
    Ok(())
}

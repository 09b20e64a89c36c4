use bytes::Bytes;
use rain_proto::mse::{EncryptionPolicy, Outgoing};
use rain_proto::rng::{Rng, Seed};
use rain_proto::wire::{Limits, Message, PeerId, Reserved};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::net::{Listener, Network, TokioNet};

const IH: InfoHash = InfoHash([0x5a; 20]);

fn local(id: u8) -> Local {
    Local {
        info_hash: IH,
        peer_id: PeerId([id; 20]),
        reserved: Reserved::rain(false),
    }
}

fn policy(outgoing: Outgoing, force_incoming: bool) -> EncryptionPolicy {
    EncryptionPolicy {
        outgoing,
        force_incoming,
        prefer_plaintext: false,
    }
}

/// Dials a rain listener with `dialer`'s policy; returns both ends or the dial error.
async fn pair(
    dialer: EncryptionPolicy,
    listener: EncryptionPolicy,
) -> Result<
    (
        Connection<tokio::net::TcpStream>,
        Connection<tokio::net::TcpStream>,
    ),
    PeerError,
> {
    let mut l = TokioNet
        .listen("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = Listener::local_addr(&l).unwrap();
    let server = tokio::spawn(async move {
        let mut rng = Rng::new(Seed::from_u64(2));
        loop {
            let (stream, _) = Listener::accept(&mut l).await.unwrap();
            let r = accept(
                stream,
                &[IH],
                |ih| (*ih == IH).then(|| local(2)),
                &listener,
                Timeouts::default(),
                Limits::default(),
                &mut rng,
            )
            .await;
            // A refused plaintext retry may follow a refused MSE attempt: keep accepting
            // until one succeeds or the dialer gives up.
            if r.is_ok() {
                return r;
            }
        }
    });
    let mut rng = Rng::new(Seed::from_u64(1));
    match dial(
        &TokioNet,
        addr,
        &local(1),
        &dialer,
        Timeouts::default(),
        Limits::default(),
        &mut rng,
    )
    .await
    {
        Ok(a) => Ok((a, server.await.unwrap()?)),
        Err(e) => {
            server.abort();
            Err(e)
        }
    }
}

async fn exchange(
    a: &mut Connection<tokio::net::TcpStream>,
    b: &mut Connection<tokio::net::TcpStream>,
) {
    let payload = Bytes::from((0..16384u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    let piece = Message::Piece {
        index: 3,
        begin: 16384,
        data: payload.clone(),
    };
    a.send(&[Message::Interested, piece.clone()]).await.unwrap();
    assert_eq!(b.read_message().await.unwrap(), Message::Interested);
    assert_eq!(b.read_message().await.unwrap(), piece);
    b.send(&[Message::Have(7)]).await.unwrap();
    assert_eq!(a.read_message().await.unwrap(), Message::Have(7));
}

#[tokio::test]
async fn every_policy_pair_connects_or_refuses_as_rain_does() {
    for outgoing in [
        Outgoing::PreferEncrypted,
        Outgoing::ForceEncrypted,
        Outgoing::Plaintext,
    ] {
        for force_incoming in [false, true] {
            let result = pair(
                policy(outgoing, false),
                policy(Outgoing::PreferEncrypted, force_incoming),
            )
            .await;
            if outgoing == Outgoing::Plaintext && force_incoming {
                assert!(
                    result.is_err(),
                    "plaintext dialer vs forcing listener must fail"
                );
                continue;
            }
            let (mut a, mut b) =
                result.unwrap_or_else(|e| panic!("{outgoing:?}/{force_incoming}: {e}"));
            let encrypted = outgoing != Outgoing::Plaintext;
            assert_eq!(a.remote.encrypted_stream, encrypted);
            assert_eq!(b.remote.encrypted_stream, encrypted);
            assert_eq!(b.remote.encrypted_handshake, encrypted);
            assert_eq!(a.remote.peer_id, PeerId([2; 20]));
            assert_eq!(b.remote.peer_id, PeerId([1; 20]));
            exchange(&mut a, &mut b).await;
        }
    }
}

#[tokio::test]
async fn a_listener_preferring_plaintext_keeps_the_handshake_obfuscated_and_the_stream_plain() {
    let listener = EncryptionPolicy {
        prefer_plaintext: true,
        ..EncryptionPolicy::default()
    };
    let (mut a, mut b) = pair(EncryptionPolicy::default(), listener).await.unwrap();
    assert!(b.remote.encrypted_handshake);
    assert!(!a.remote.encrypted_stream);
    assert!(!b.remote.encrypted_stream);
    exchange(&mut a, &mut b).await;
}

/// A peer that knows no MSE: it drops connections that do not start with the BitTorrent
/// header and answers plain handshakes.
async fn plaintext_only_peer(listener: tokio::net::TcpListener) -> usize {
    let mut refused = 0;
    loop {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut first = [0u8; 68];
        if s.read_exact(&mut first[..20]).await.is_err()
            || first[..20] != rain_proto::wire::PROTOCOL_HEADER[..]
        {
            refused += 1;
            continue;
        }
        s.read_exact(&mut first[20..]).await.unwrap();
        let reply = rain_proto::wire::Handshake {
            reserved: Reserved::rain(false),
            info_hash: IH,
            peer_id: PeerId([9; 20]),
        };
        s.write_all(&reply.to_bytes()).await.unwrap();
        s.write_all(&[0, 0, 0, 1, 2]).await.unwrap(); // interested
        return refused;
    }
}

#[tokio::test]
async fn default_policy_retries_in_plaintext_and_forced_does_not() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let peer = tokio::spawn(plaintext_only_peer(l));
    let mut rng = Rng::new(Seed::from_u64(3));
    let mut c = dial(
        &TokioNet,
        addr,
        &local(1),
        &EncryptionPolicy::default(),
        Timeouts::default(),
        Limits::default(),
        &mut rng,
    )
    .await
    .unwrap();
    assert!(!c.remote.encrypted_handshake);
    assert_eq!(c.read_message().await.unwrap(), Message::Interested);
    assert_eq!(
        peer.await.unwrap(),
        1,
        "one refused MSE attempt, then plaintext"
    );

    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let peer = tokio::spawn(plaintext_only_peer(l));
    let forced = policy(Outgoing::ForceEncrypted, false);
    let err = dial(
        &TokioNet,
        addr,
        &local(1),
        &forced,
        Timeouts::default(),
        Limits::default(),
        &mut rng,
    )
    .await;
    assert!(err.is_err(), "forced encryption never falls back");
    peer.abort();
}

#[tokio::test]
async fn unknown_torrents_and_garbage_are_refused() {
    let mut l = TokioNet
        .listen("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = Listener::local_addr(&l).unwrap();
    let server = tokio::spawn(async move {
        let mut rng = Rng::new(Seed::from_u64(4));
        let mut errors = Vec::new();
        for _ in 0..2 {
            let (stream, _) = Listener::accept(&mut l).await.unwrap();
            let r = accept(
                stream,
                &[IH],
                |_| None,
                &EncryptionPolicy::default(),
                Timeouts::default(),
                Limits::default(),
                &mut rng,
            )
            .await;
            errors.push(r.err().map(|e| e.to_string()).unwrap_or_default());
        }
        errors
    });
    let mut rng = Rng::new(Seed::from_u64(5));
    let other = Local {
        info_hash: InfoHash([1; 20]),
        ..local(1)
    };
    let plain = policy(Outgoing::Plaintext, false);
    assert!(
        dial(
            &TokioNet,
            addr,
            &other,
            &plain,
            Timeouts::default(),
            Limits::default(),
            &mut rng
        )
        .await
        .is_err()
    );
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(&[0x13; 200]).await.unwrap();
    drop(s);
    let errors = server.await.unwrap();
    assert!(errors[0].contains("unknown info-hash"), "{errors:?}");
    assert!(!errors[1].is_empty(), "{errors:?}");
}

/// R28: a peer that trickles its handshake a byte at a time, never finishing, is dropped
/// when `peer-handshake-timeout` runs out (the bound is on the whole handshake, not on each
/// read, so steady trickling does not keep the connection alive).
#[tokio::test]
async fn a_slowloris_handshake_is_dropped_at_the_handshake_timeout() {
    let mut l = TokioNet
        .listen("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = Listener::local_addr(&l).unwrap();
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (stream, _) = Listener::accept(&mut l).await.unwrap();
    let timeouts = Timeouts {
        handshake: Duration::from_millis(300),
        ..Timeouts::default()
    };
    let server = tokio::spawn(async move {
        let mut rng = Rng::new(Seed::from_u64(6));
        let plain = policy(Outgoing::Plaintext, false);
        accept(
            stream,
            &[IH],
            |_| None,
            &plain,
            timeouts,
            Limits::default(),
            &mut rng,
        )
        .await
    });
    // The plaintext handshake's first bytes, one every 50 ms: the server's reads never wait
    // long, yet the handshake never completes.
    let mut sent = 0;
    let closed = loop {
        let byte = b"\x13BitTorrent protocol"[sent % 20];
        if client.write_all(&[byte]).await.is_err() || server.is_finished() {
            break true;
        }
        sent += 1;
        if sent > 200 {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        closed,
        "still trickling after 10 s: the handshake is not bounded"
    );
    let err = server.await.unwrap().err().map(|e| e.to_string());
    assert_eq!(err.as_deref(), Some("timed out during handshake"));
    assert!(
        sent >= 4,
        "the peer kept sending for a while ({sent} bytes)"
    );
}

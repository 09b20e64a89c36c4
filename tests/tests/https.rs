//! https end to end on 127.0.0.1 (issues #6 and #11): TLS servers with a certificate made at
//! test time (rcgen, self-signed), serving rain-sim's tracker and webseed.
//!
//! - `tracker-http-verify-tls: false`: an https announce and scrape succeed;
//! - on (the default): the self-signed certificate is refused as a TLS error, as a real
//!   man-in-the-middle's would be;
//! - `webseed-verify-tls: false`: a torrent completes from an https webseed; on: the webseed
//!   shows `TLS handshake has failed` and fetches nothing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rain_proto::InfoHash;
use rain_proto::rng::Seed;
use rain_proto::torrent::Status;
use rain_proto::tracker::{Announce, Event, TrackerError};
use rain_proto::webseed::WebseedError;
use rain_runtime::create::{CreateOptions, create_torrent};
use rain_runtime::http::HttpConfig;
use rain_runtime::net::TokioNet;
use rain_runtime::session::{AddOptions, Session, SessionConfig};
use rain_runtime::tracker_client::{TrackerClient, TrackerConfig};
use rain_sim::http_server::{read_request, respond};
use rain_sim::tracker::TrackerState;
use rain_sim::web::{WebMode, WebServer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// Longest wait for anything.
const BOUND: Duration = Duration::from_secs(30);
const HASH: [u8; 20] = [9; 20];

/// A TLS acceptor with a fresh self-signed certificate for 127.0.0.1.
fn acceptor() -> TlsAcceptor {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

/// Accepts TLS connections on 127.0.0.1 and hands each decrypted stream to `serve`.
async fn tls_server<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(tokio_rustls::server::TlsStream<tokio::net::TcpStream>, SocketAddr) -> Fut
        + Send
        + Sync
        + 'static,
    Fut: Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = acceptor();
    let serve = Arc::new(serve);
    tokio::spawn(async move {
        while let Ok((sock, from)) = listener.accept().await {
            let (tls, serve) = (tls.clone(), serve.clone());
            tokio::spawn(async move {
                if let Ok(stream) = tls.accept(sock).await {
                    serve(stream, from).await;
                }
            });
        }
    });
    addr
}

/// rain-sim's tracker over https, already knowing one peer (10.0.0.1:7000) of [`HASH`].
async fn https_tracker() -> SocketAddr {
    let mut state = TrackerState::new(1, Arc::default());
    let hash = "%09".repeat(20); // HASH, percent-encoded
    let known = rain_sim::http_server::Request {
        path: "/announce".to_owned(),
        query: format!("info_hash={hash}&port=7000&left=5"),
        range: None,
    };
    let from = SocketAddr::from(([10, 0, 0, 1], 1234));
    state.handle_http(Duration::ZERO, from, &known);
    let state = Arc::new(Mutex::new(state));
    tls_server(move |mut stream, from| {
        let state = state.clone();
        async move {
            if let Ok(Some(req)) = read_request(&mut stream).await {
                let (status, body) = state
                    .lock()
                    .unwrap()
                    .handle_http(Duration::ZERO, from, &req);
                let _ = respond(&mut stream, status, "", &body, None, |_| {}).await;
            }
        }
    })
    .await
}

fn tracker_client(verify_tls: bool) -> TrackerClient<TokioNet> {
    let config = TrackerConfig {
        http: HttpConfig {
            verify_tls,
            timeout: Duration::from_secs(5),
            ..HttpConfig::default()
        },
        ..TrackerConfig::default()
    };
    TrackerClient::new(TokioNet, config, Seed::from_u64(3))
}

fn announce() -> Announce {
    Announce {
        info_hash: InfoHash(HASH),
        peer_id: *b"-RN0010-abcdefghijkl",
        port: 6881,
        uploaded: 0,
        downloaded: 0,
        left: 1000,
        event: Event::Started,
        num_want: 50,
        key: 1,
    }
}

#[tokio::test]
async fn https_tracker_announce_and_scrape_without_verification() {
    let addr = https_tracker().await;
    let client = tracker_client(false);
    let url = format!("https://{addr}/announce");
    let reply = tokio::time::timeout(BOUND, client.announce(&url, &announce(), None, false))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.peers, [SocketAddr::from(([10, 0, 0, 1], 7000))]);
    let scrape = tokio::time::timeout(BOUND, client.scrape(&url, &InfoHash(HASH), false))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((scrape.seeders, scrape.leechers), (0, 2), "{scrape:?}");
}

#[tokio::test]
async fn https_tracker_with_a_self_signed_certificate_is_refused_when_verifying() {
    let addr = https_tracker().await;
    let url = format!("https://{addr}/announce");
    let e = tokio::time::timeout(
        BOUND,
        tracker_client(true).announce(&url, &announce(), None, false),
    )
    .await
    .unwrap()
    .unwrap_err();
    // Worded as tracker_transport.rs's plain-http-on-an-https-port case is.
    assert_eq!(
        e,
        TrackerError::Transport("TLS handshake has failed".to_owned())
    );
}

/// A leecher with only an https webseed, `webseed-verify-tls` as given; the session, its
/// torrent id and the payload.
async fn https_webseed_leecher(
    dir: &std::path::Path,
    verify: bool,
) -> (Session, String, Vec<u8>, Arc<WebServer>) {
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let files = BTreeMap::from([("/w/f.bin".to_owned(), data.clone())]);
    let web = Arc::new(WebServer::new(files, WebMode::Partial));
    let server = web.clone();
    let addr = tls_server(move |stream, _| {
        let server = server.clone();
        async move {
            let _ = server.serve_connection(stream).await;
        }
    })
    .await;
    let src = dir.join("src/f.bin");
    std::fs::create_dir_all(src.parent().unwrap()).unwrap();
    std::fs::write(&src, &data).unwrap();
    let torrent = create_torrent(&CreateOptions {
        paths: vec![src],
        piece_length: Some(16 * 1024),
        webseeds: vec![format!("https://{addr}/w/")],
        ..CreateOptions::default()
    })
    .unwrap();
    let s = Session::new(SessionConfig {
        database: dir.join("session.db"),
        data_dir: dir.join("data"),
        data_dir_includes_torrent_id: false,
        host: "127.0.0.1".parse().unwrap(),
        seed: Some(5),
        webseed_verify_tls: verify,
        ..SessionConfig::default()
    })
    .await
    .unwrap();
    let t = s
        .add_torrent(&torrent, AddOptions::default())
        .await
        .unwrap();
    (s, t.id, data, web)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_webseed_completes_without_verification() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, id, data, web) = https_webseed_leecher(tmp.path(), false).await;
    let deadline = tokio::time::Instant::now() + BOUND;
    while s.stats(&id).await.unwrap().status != Status::Seeding {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            s.webseeds(&id).await
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(std::fs::read(tmp.path().join("data/f.bin")).unwrap(), data);
    assert_eq!(web.counters().bytes, data.len() as u64);
    s.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_webseed_with_a_self_signed_certificate_is_refused_when_verifying() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, id, _, web) = https_webseed_leecher(tmp.path(), true).await;
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let ws = s.webseeds(&id).await.unwrap();
        if ws[0].error.is_some() {
            assert_eq!(ws[0].error, Some(WebseedError::Tls), "{ws:?}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{ws:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        web.counters().requests,
        0,
        "no request over an unverified connection"
    );
    s.close().await.unwrap();
}

//! Hostile-input tests of the tracker transport: local HTTP servers writing canned (and
//! broken) responses, and fake UDP trackers, all on 127.0.0.1.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rain_proto::InfoHash;
use rain_proto::rng::Seed;
use rain_proto::tracker::{Announce, Event, TrackerError};
use rain_runtime::http::{HttpClient, HttpConfig, HttpError, Purpose, StreamTimeouts};
use rain_runtime::net::TokioNet;
use rain_runtime::tracker_client::{TrackerClient, TrackerConfig, default_user_agent};
use rain_runtime::udp_tracker::UdpTrackerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;

const HASH: InfoHash = InfoHash([7; 20]);
/// Every test is bounded by this, whatever happens.
const TEST_BOUND: Duration = Duration::from_secs(10);

fn announce() -> Announce {
    Announce {
        info_hash: HASH,
        peer_id: *b"-RN0010-abcdefghijkl",
        port: 6881,
        uploaded: 0,
        downloaded: 0,
        left: 1000,
        event: Event::Started,
        num_want: 50,
        key: 0x1234_5678,
    }
}

fn config() -> TrackerConfig {
    TrackerConfig {
        http: HttpConfig {
            timeout: Duration::from_secs(3),
            max_body: 1000,
            ..HttpConfig::default()
        },
        udp: UdpTrackerConfig {
            retransmit_base: Duration::from_millis(20),
            max_retries: 2,
            timeout: Duration::from_secs(3),
            ..UdpTrackerConfig::default()
        },
        private_user_agent: "Private/1.0".into(),
        ..TrackerConfig::default()
    }
}

fn client(config: TrackerConfig) -> TrackerClient<TokioNet> {
    TrackerClient::new(TokioNet, config, Seed::from_u64(1))
}

fn good_body() -> Vec<u8> {
    let mut b = b"d8:intervali1800e5:peers6:".to_vec();
    b.extend_from_slice(&[10, 0, 0, 1, 0x1a, 0xe1]);
    b.push(b'e');
    b
}

fn response(status: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 {status}\r\n").into_bytes();
    for h in headers {
        r.extend_from_slice(h.as_bytes());
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(b"Connection: close\r\n\r\n");
    r.extend_from_slice(body);
    r
}

fn with_length(status: &str, extra: &[&str], body: &[u8]) -> Vec<u8> {
    let len = format!("Content-Length: {}", body.len());
    let mut headers = vec![len.as_str()];
    headers.extend_from_slice(extra);
    response(status, &headers, body)
}

/// What a canned server does with a connection.
#[derive(Clone)]
enum Canned {
    /// Writes these bytes and closes.
    Write(Vec<u8>),
    /// Reads the request and never answers.
    Silent,
    /// Closes at once without reading.
    Close,
}

/// An HTTP server on 127.0.0.1 that answers every request with `f(request head)`, sending the
/// request heads it saw on the returned channel.
async fn serve(
    f: impl Fn(&str) -> Canned + Send + Sync + 'static,
) -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let f = Arc::new(f);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let f = f.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let canned = f(&head);
                let _ = tx.send(head);
                match canned {
                    Canned::Write(bytes) => {
                        let _ = s.write_all(&bytes).await;
                        let _ = s.shutdown().await;
                    }
                    Canned::Silent => tokio::time::sleep(TEST_BOUND).await,
                    Canned::Close => {}
                }
            });
        }
    });
    (addr, rx)
}

async fn serve_one(canned: Canned) -> SocketAddr {
    serve(move |_| canned.clone()).await.0
}

async fn announce_to(url: &str, config: TrackerConfig) -> Result<Vec<SocketAddr>, TrackerError> {
    tokio::time::timeout(
        TEST_BOUND,
        client(config).announce(url, &announce(), None, false),
    )
    .await
    .expect("bounded")
    .map(|r| r.peers)
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}/announce")
}

#[tokio::test]
async fn http_good_compact_reply_and_user_agents() {
    let (addr, mut heads) =
        serve(|_| Canned::Write(with_length("200 OK", &[], &good_body()))).await;
    let c = client(config());
    let r = c
        .announce(&url(addr), &announce(), None, false)
        .await
        .unwrap();
    assert_eq!(r.peers, vec!["10.0.0.1:6881".parse().unwrap()]);
    assert_eq!(r.interval, Duration::from_secs(1800));
    let head = heads.recv().await.unwrap();
    assert!(head.starts_with("GET /announce?info_hash=%07%07"), "{head}");
    let ua = format!("user-agent: {}", default_user_agent());
    assert!(
        head.to_ascii_lowercase().contains(&ua.to_ascii_lowercase()),
        "{head}"
    );

    c.announce(&url(addr), &announce(), Some(b"tid"), true)
        .await
        .unwrap();
    // The reply has no swarm counts, so each announce is followed by a scrape for them.
    let head = loop {
        let h = heads.recv().await.unwrap();
        if !h.starts_with("GET /scrape?") {
            break h;
        }
    };
    assert!(head.contains("Private/1.0"), "{head}");
    assert!(head.contains("trackerid=tid"), "{head}");
}

#[tokio::test]
async fn http_failure_reason() {
    let addr = serve_one(Canned::Write(with_length(
        "200 OK",
        &[],
        b"d14:failure reason7:go awaye",
    )))
    .await;
    let e = announce_to(&url(addr), config()).await.unwrap_err();
    assert!(matches!(e, TrackerError::Refused { .. }), "{e:?}");
    assert_eq!(e.to_string(), "announce error: go away");
}

#[tokio::test]
async fn http_garbage() {
    let addr = serve_one(Canned::Write(with_length(
        "200 OK",
        &[],
        b"<html>hi</html>",
    )))
    .await;
    let e = announce_to(&url(addr), config()).await.unwrap_err();
    assert!(matches!(e, TrackerError::InvalidResponse(_)), "{e:?}");
    assert!(e.to_string().starts_with("invalid response from tracker"));
}

#[tokio::test]
async fn http_404_text_plain_is_quoted() {
    let addr = serve_one(Canned::Write(with_length(
        "404 Not Found",
        &["Content-Type: text/plain; charset=utf-8"],
        b"no such torrent",
    )))
    .await;
    let e = announce_to(&url(addr), config()).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "tracker returned HTTP status: 404 message: no such torrent"
    );
    // Without text/plain only the status is reported.
    let addr = serve_one(Canned::Write(with_length(
        "503 Busy",
        &["Content-Type: text/html"],
        b"<p>busy</p>",
    )))
    .await;
    let e = announce_to(&url(addr), config()).await.unwrap_err();
    assert_eq!(e, TrackerError::HttpStatus(503));
    assert_eq!(e.to_string(), "tracker returned HTTP status: 503");
}

#[tokio::test]
async fn http_body_over_the_limit() {
    // Declared: fails on the header, before any body.
    let addr = serve_one(Canned::Write(response(
        "200 OK",
        &["Content-Length: 1001"],
        b"d8:interval",
    )))
    .await;
    let e = announce_to(&url(addr), config()).await.unwrap_err();
    assert!(e.to_string().contains("response too large"), "{e}");

    // Undeclared (read until close): fails when the limit is crossed.
    let addr = serve_one(Canned::Write(response("200 OK", &[], &[b'x'; 5000]))).await;
    let e = announce_to(&url(addr), config()).await.unwrap_err();
    assert!(e.to_string().contains("response too large"), "{e}");

    // Chunked, too.
    let mut chunked = Vec::new();
    for _ in 0..4 {
        chunked.extend_from_slice(b"190\r\n");
        chunked.extend_from_slice(&[b'y'; 400]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let addr = serve_one(Canned::Write(response(
        "200 OK",
        &["Transfer-Encoding: chunked"],
        &chunked,
    )))
    .await;
    let e = announce_to(&url(addr), config()).await.unwrap_err();
    assert!(e.to_string().contains("response too large"), "{e}");

    // Exactly the limit is fine (and then is garbage, here).
    let addr = serve_one(Canned::Write(with_length("200 OK", &[], &[b'z'; 1000]))).await;
    let e = announce_to(&url(addr), config()).await.unwrap_err();
    assert!(matches!(e, TrackerError::InvalidResponse(_)), "{e:?}");
    assert!(!e.to_string().contains("too large"), "{e}");
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[tokio::test]
async fn http_gzip_body() {
    let (addr, mut heads) = serve(|_| {
        Canned::Write(with_length(
            "200 OK",
            &["Content-Encoding: gzip"],
            &gzip(&good_body()),
        ))
    })
    .await;
    let peers = announce_to(&url(addr), config()).await.unwrap();
    assert_eq!(peers, vec!["10.0.0.1:6881".parse().unwrap()]);
    let head = heads.recv().await.unwrap().to_ascii_lowercase();
    assert!(head.contains("accept-encoding: gzip"), "{head}");

    // A gzip bomb is bounded after decompression.
    let bomb = gzip(&vec![b'a'; 100_000]);
    assert!(bomb.len() < 1000);
    let addr = serve_one(Canned::Write(with_length(
        "200 OK",
        &["Content-Encoding: gzip"],
        &bomb,
    )))
    .await;
    let e = announce_to(&url(addr), config()).await.unwrap_err();
    assert!(e.to_string().contains("response too large"), "{e}");
}

#[tokio::test]
async fn http_redirects_followed_then_bounded() {
    // One hop to the real announce path works. (The old path ends in `/announce` too: a
    // loopback tracker must have one, see `ssrf_loopback_tracker_needs_an_announce_path`.)
    let (addr, _heads) = serve(|head| {
        if head.starts_with("GET /old/") {
            Canned::Write(response(
                "302 Found",
                &["Location: /announce?from=old"],
                b"",
            ))
        } else {
            Canned::Write(with_length("200 OK", &[], &good_body()))
        }
    })
    .await;
    let peers = announce_to(&format!("http://{addr}/old/announce"), config())
        .await
        .unwrap();
    assert_eq!(peers.len(), 1);

    // A loop fails after the bound.
    let (addr, mut heads) =
        serve(|_| Canned::Write(response("301 Moved", &["Location: /announce"], b""))).await;
    let e = announce_to(&url(addr), config()).await.unwrap_err();
    assert_eq!(e.to_string(), "tracker redirected more than 5 times");
    let mut n = 0;
    while heads.try_recv().is_ok() {
        n += 1;
    }
    assert_eq!(n, 6, "the first request and 5 redirects");
}

#[tokio::test]
async fn http_silent_server_times_out() {
    let addr = serve_one(Canned::Silent).await;
    let mut cfg = config();
    cfg.http.timeout = Duration::from_millis(300);
    let start = std::time::Instant::now();
    let e = announce_to(&url(addr), cfg).await.unwrap_err();
    assert_eq!(e, TrackerError::Timeout);
    assert_eq!(e.to_string(), "timeout contacting tracker");
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn http_connection_errors() {
    // Refused: a port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = announce_to(&format!("http://127.0.0.1:{port}/announce"), config())
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "tracker refused the connection");

    // Closed before answering.
    let addr = serve_one(Canned::Close).await;
    let e = announce_to(&url(addr), config()).await.unwrap_err();
    assert_eq!(e.to_string(), "tracker closed the connection");

    // Not HTTP at all.
    let addr = serve_one(Canned::Write(b"SSH-2.0-OpenSSH\r\n\r\n".to_vec())).await;
    let e = announce_to(&url(addr), config()).await.unwrap_err();
    assert_eq!(e.to_string(), "invalid server response");

    // https to a server that is not TLS: the handshake fails.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        if let Ok((mut s, _)) = listener.accept().await {
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            let _ = s.shutdown().await;
        }
    });
    let e = announce_to(&format!("https://{addr}/announce"), config())
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "TLS handshake has failed");

    // Unknown host (the .invalid TLD never resolves).
    let e = announce_to("http://tracker.invalid/announce", config())
        .await
        .unwrap_err();
    assert!(
        e.to_string().starts_with("host not found: tracker.invalid") || e == TrackerError::Timeout,
        "{e}"
    );

    // Unsupported schemes.
    let e = announce_to("wss://tracker.example/announce", config())
        .await
        .unwrap_err();
    assert!(matches!(e, TrackerError::UnsupportedUrl(_)), "{e:?}");
}

#[tokio::test]
async fn http_scrape() {
    let (addr, mut heads) = serve(|_| {
        let mut b = b"d5:filesd20:".to_vec();
        b.extend_from_slice(&HASH.0);
        b.extend_from_slice(b"d8:completei3e10:downloadedi7e10:incompletei2eeee");
        Canned::Write(with_length("200 OK", &[], &b))
    })
    .await;
    let s = client(config())
        .scrape(&url(addr), &HASH, false)
        .await
        .unwrap();
    assert_eq!((s.seeders, s.leechers, s.completed), (3, 2, 7));
    assert!(
        heads
            .recv()
            .await
            .unwrap()
            .starts_with("GET /scrape?info_hash=")
    );
}

#[tokio::test]
async fn http_client_get_plain() {
    let addr = serve_one(Canned::Write(with_length(
        "200 OK",
        &["Content-Type: application/x-bittorrent"],
        b"hello",
    )))
    .await;
    let c = HttpClient::new(TokioNet, HttpConfig::default());
    let r = c
        .get(&format!("http://{addr}/x.torrent"), &[])
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(&r.body[..], b"hello");
    assert_eq!(r.content_type.as_deref(), Some("application/x-bittorrent"));
    let e = c.get("ftp://x/y", &[]).await.unwrap_err();
    assert!(matches!(e, HttpError::UnsupportedScheme(_)), "{e:?}");
}

// ---------------------------------------------------------------- UDP

/// How a fake UDP tracker behaves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fake {
    /// Answers connect, announce and scrape.
    Good,
    /// Answers connect, then an error for the announce.
    Error,
    /// Never answers.
    Silent,
    /// Answers everything, but from another port.
    OtherPort,
}

struct FakeTracker {
    addr: SocketAddr,
    connects: Arc<AtomicUsize>,
    datagrams: Arc<AtomicUsize>,
}

async fn fake_udp(kind: Fake) -> FakeTracker {
    fake_udp_on(kind, "127.0.0.1:0").await.unwrap()
}

async fn fake_udp_on(kind: Fake, bind: &str) -> std::io::Result<FakeTracker> {
    let socket = UdpSocket::bind(bind).await?;
    let other = UdpSocket::bind(bind).await?;
    let addr = socket.local_addr().unwrap();
    let connects = Arc::new(AtomicUsize::new(0));
    let datagrams = Arc::new(AtomicUsize::new(0));
    let (c, d) = (connects.clone(), datagrams.clone());
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                return;
            };
            d.fetch_add(1, Ordering::SeqCst);
            if n < 16 {
                continue;
            }
            let p = &buf[..n];
            let action = u32::from_be_bytes(p[8..12].try_into().unwrap());
            let tid = &p[12..16];
            let mut reply = Vec::new();
            match (kind, action) {
                (Fake::Silent, _) => continue,
                (_, 0) => {
                    c.fetch_add(1, Ordering::SeqCst);
                    reply.extend_from_slice(&0u32.to_be_bytes());
                    reply.extend_from_slice(tid);
                    reply.extend_from_slice(&0xdead_beef_u64.to_be_bytes());
                }
                (Fake::Error, _) => {
                    reply.extend_from_slice(&3u32.to_be_bytes());
                    reply.extend_from_slice(tid);
                    reply.extend_from_slice(b"go away");
                }
                (_, 1) => {
                    assert_eq!(&p[..8], &0xdead_beef_u64.to_be_bytes());
                    reply.extend_from_slice(&1u32.to_be_bytes());
                    reply.extend_from_slice(tid);
                    for n in [1800u32, 1, 2] {
                        reply.extend_from_slice(&n.to_be_bytes());
                    }
                    if from.is_ipv6() {
                        let ip: std::net::Ipv6Addr = "2001:db8::2".parse().unwrap();
                        reply.extend_from_slice(&ip.octets());
                        reply.extend_from_slice(&6882u16.to_be_bytes());
                    } else {
                        reply.extend_from_slice(&[10, 0, 0, 2, 0x1a, 0xe2]);
                    }
                }
                (_, 2) => {
                    reply.extend_from_slice(&2u32.to_be_bytes());
                    reply.extend_from_slice(tid);
                    for n in [5u32, 9, 4] {
                        reply.extend_from_slice(&n.to_be_bytes());
                    }
                }
                _ => continue,
            }
            let from_socket = if kind == Fake::OtherPort {
                &other
            } else {
                &socket
            };
            let _ = from_socket.send_to(&reply, from).await;
        }
    });
    Ok(FakeTracker {
        addr,
        connects,
        datagrams,
    })
}

#[tokio::test]
async fn udp_connect_announce_scrape_and_connection_cache() {
    let t = fake_udp(Fake::Good).await;
    let c = client(config());
    let url = format!("udp://{}/announce?passkey=x", t.addr);
    let r = c.announce(&url, &announce(), None, false).await.unwrap();
    assert_eq!(r.peers, vec!["10.0.0.2:6882".parse().unwrap()]);
    assert_eq!((r.leechers, r.seeders), (Some(1), Some(2)));
    assert_eq!(r.interval, Duration::from_secs(1800));
    // The connection id is reused: no second connect.
    c.announce(&url, &announce(), None, false).await.unwrap();
    let s = c.scrape(&url, &HASH, false).await.unwrap();
    assert_eq!((s.seeders, s.completed, s.leechers), (5, 9, 4));
    assert_eq!(t.connects.load(Ordering::SeqCst), 1);
    assert!(c.udp().local_addr_v4().await.is_some());
}

#[tokio::test]
async fn udp_concurrent_requests_share_the_socket() {
    let a = fake_udp(Fake::Good).await;
    let b = fake_udp(Fake::Good).await;
    let c = client(config());
    let ua = format!("udp://{}/announce", a.addr);
    let ub = format!("udp://{}/announce", b.addr);
    let ann = announce();
    let (ra, rb) = tokio::join!(
        c.announce(&ua, &ann, None, false),
        c.announce(&ub, &ann, None, false)
    );
    assert_eq!(ra.unwrap().peers.len(), 1);
    assert_eq!(rb.unwrap().peers.len(), 1);
}

#[tokio::test]
async fn udp_error_reply() {
    let t = fake_udp(Fake::Error).await;
    let e = announce_to(&format!("udp://{}/announce", t.addr), config())
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "announce error: go away");
}

#[tokio::test]
async fn udp_silent_tracker_retransmits_then_times_out() {
    let t = fake_udp(Fake::Silent).await;
    let start = std::time::Instant::now();
    let e = announce_to(&format!("udp://{}/announce", t.addr), config())
        .await
        .unwrap_err();
    assert_eq!(e, TrackerError::Timeout);
    // 20 + 40 + 80 ms with the test's base; far below the 3 s overall deadline.
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        t.datagrams.load(Ordering::SeqCst),
        3,
        "first send and 2 retries"
    );

    // The overall deadline bounds it too.
    let mut cfg = config();
    cfg.udp.max_retries = 8;
    cfg.udp.timeout = Duration::from_millis(300);
    let e = announce_to(&format!("udp://{}/announce", t.addr), cfg)
        .await
        .unwrap_err();
    assert_eq!(e, TrackerError::Timeout);
}

#[tokio::test]
async fn udp_replies_from_another_port_are_ignored() {
    let t = fake_udp(Fake::OtherPort).await;
    let e = announce_to(&format!("udp://{}/announce", t.addr), config())
        .await
        .unwrap_err();
    assert_eq!(e, TrackerError::Timeout);
    assert_eq!(
        t.connects.load(Ordering::SeqCst),
        3,
        "every connect went unanswered"
    );
}

#[tokio::test]
async fn udp_bad_urls() {
    let e = announce_to("udp://127.0.0.1/announce", config())
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "missing port in tracker address");
}

#[tokio::test]
async fn udp_ipv6_tracker() {
    let Ok(t) = fake_udp_on(Fake::Good, "[::1]:0").await else {
        eprintln!("SKIP udp_ipv6_tracker: no IPv6 loopback");
        return;
    };
    let r = announce_to(&format!("udp://{}/announce", t.addr), config())
        .await
        .unwrap();
    assert_eq!(r, vec!["[2001:db8::2]:6882".parse().unwrap()]);
}

/// The real network, counting the UDP sockets bound through the [`Network`] trait.
#[derive(Debug, Clone, Default)]
struct CountingNet {
    udp_binds: Arc<AtomicUsize>,
}

impl rain_runtime::net::Network for CountingNet {
    type Stream = <TokioNet as rain_runtime::net::Network>::Stream;
    type Listener = <TokioNet as rain_runtime::net::Network>::Listener;
    type Udp = <TokioNet as rain_runtime::net::Network>::Udp;

    async fn connect(&self, addr: SocketAddr) -> std::io::Result<Self::Stream> {
        rain_runtime::net::Network::connect(&TokioNet, addr).await
    }

    async fn listen(&self, addr: SocketAddr) -> std::io::Result<Self::Listener> {
        rain_runtime::net::Network::listen(&TokioNet, addr).await
    }

    async fn resolve(&self, host: &str) -> std::io::Result<Vec<SocketAddr>> {
        rain_runtime::net::Network::resolve(&TokioNet, host).await
    }

    async fn bind_udp(&self, addr: SocketAddr) -> std::io::Result<Self::Udp> {
        self.udp_binds.fetch_add(1, Ordering::SeqCst);
        rain_runtime::net::Network::bind_udp(&TokioNet, addr).await
    }
}

/// The UDP tracker socket comes from the session's [`Network`], so a simulated network
/// (turmoil) can carry UDP tracker traffic; one socket serves every request.
#[tokio::test]
async fn udp_tracker_binds_its_socket_through_the_network() {
    let t = fake_udp(Fake::Good).await;
    let net = CountingNet::default();
    let c = TrackerClient::new(net.clone(), config(), Seed::from_u64(3));
    let url = format!("udp://{}/announce", t.addr);
    c.announce(&url, &announce(), None, false).await.unwrap();
    c.scrape(&url, &HASH, false).await.unwrap();
    assert_eq!(net.udp_binds.load(Ordering::SeqCst), 1);
}

/// A tracker whose announce replies carry no `complete`/`incomplete` is scraped for them, so
/// its status still shows seeders and leechers; one that has them is not scraped.
#[tokio::test]
async fn http_counts_missing_from_the_announce_come_from_a_scrape() {
    let (addr, mut heads) = serve(|head| {
        if head.starts_with("GET /scrape?") {
            let mut b = b"d5:filesd20:".to_vec();
            b.extend_from_slice(&HASH.0);
            b.extend_from_slice(b"d8:completei3e10:downloadedi7e10:incompletei2eeee");
            Canned::Write(with_length("200 OK", &[], &b))
        } else {
            Canned::Write(with_length("200 OK", &[], &good_body()))
        }
    })
    .await;
    let r = client(config())
        .announce(&url(addr), &announce(), None, false)
        .await
        .unwrap();
    assert_eq!((r.seeders, r.leechers), (Some(3), Some(2)));
    assert!(heads.recv().await.unwrap().starts_with("GET /announce?"));
    assert!(heads.recv().await.unwrap().starts_with("GET /scrape?"));

    let (addr, mut heads) = serve(|_| {
        let body = b"d8:completei9e10:incompletei8e8:intervali1800e5:peers0:e";
        Canned::Write(with_length("200 OK", &[], body))
    })
    .await;
    let r = client(config())
        .announce(&url(addr), &announce(), None, false)
        .await
        .unwrap();
    assert_eq!((r.seeders, r.leechers), (Some(9), Some(8)));
    assert!(heads.recv().await.unwrap().starts_with("GET /announce?"));
    assert!(
        heads.try_recv().is_err(),
        "scraped although the counts were there"
    );
}

// ---------------------------------------------------------------- fake DNS

/// A global address (example.com's) that the fake network routes to 127.0.0.1.
const GLOBAL: IpAddr = IpAddr::V4(Ipv4Addr::new(93, 184, 216, 34));

/// The real network, except for two host names: `slow.example` never resolves (a DNS server
/// that does not answer), and `global.example` resolves to [`GLOBAL`], whose connections go to
/// 127.0.0.1 on the same port, so that a loopback server plays a host on the Internet.
#[derive(Debug, Clone, Default)]
struct FakeDns {
    resolves: Arc<AtomicUsize>,
}

impl rain_runtime::net::Network for FakeDns {
    type Stream = <TokioNet as rain_runtime::net::Network>::Stream;
    type Listener = <TokioNet as rain_runtime::net::Network>::Listener;
    type Udp = <TokioNet as rain_runtime::net::Network>::Udp;

    async fn connect(&self, addr: SocketAddr) -> std::io::Result<Self::Stream> {
        let addr = if addr.ip() == GLOBAL {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        } else {
            addr
        };
        rain_runtime::net::Network::connect(&TokioNet, addr).await
    }

    async fn listen(&self, addr: SocketAddr) -> std::io::Result<Self::Listener> {
        rain_runtime::net::Network::listen(&TokioNet, addr).await
    }

    async fn resolve(&self, host: &str) -> std::io::Result<Vec<SocketAddr>> {
        self.resolves.fetch_add(1, Ordering::SeqCst);
        let (name, port) = host.rsplit_once(':').expect("host:port");
        match name {
            "slow.example" => std::future::pending().await,
            "global.example" => Ok(vec![SocketAddr::new(GLOBAL, port.parse().unwrap())]),
            _ => rain_runtime::net::Network::resolve(&TokioNet, host).await,
        }
    }

    async fn bind_udp(&self, addr: SocketAddr) -> std::io::Result<Self::Udp> {
        rain_runtime::net::Network::bind_udp(&TokioNet, addr).await
    }
}

/// R72: a DNS server that never answers fails the announce with a timeout after
/// `dns-resolve-timeout`, well before the exchange's own bound, for HTTP and UDP trackers.
#[tokio::test]
async fn slow_dns_times_out_the_announce() {
    let net = FakeDns::default();
    let mut cfg = config();
    cfg.http.timeout = Duration::from_secs(8);
    cfg.http.resolve_timeout = Duration::from_millis(200);
    cfg.udp.timeout = Duration::from_secs(8);
    cfg.udp.resolve_timeout = Duration::from_millis(200);
    let c = TrackerClient::new(net.clone(), cfg, Seed::from_u64(4));
    for url in [
        "http://slow.example/announce",
        "https://slow.example/announce",
        "udp://slow.example:6969/announce",
    ] {
        let before = net.resolves.load(Ordering::SeqCst);
        let start = std::time::Instant::now();
        let e = tokio::time::timeout(TEST_BOUND, c.announce(url, &announce(), None, false))
            .await
            .expect("the announce hangs on a DNS server that never answers")
            .unwrap_err();
        let took = start.elapsed();
        assert_eq!(e, TrackerError::Timeout, "{url}");
        assert_eq!(e.to_string(), "timeout contacting tracker");
        assert_eq!(net.resolves.load(Ordering::SeqCst), before + 1, "{url}");
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(2),
            "{url}: {took:?}, not the 200 ms resolve bound"
        );
    }
}

/// R38: a loopback HTTP tracker must have a URL path ending in `/announce`; otherwise the
/// announce (and the scrape) is refused before anything is sent. `ssrf-mitigation: false`
/// lifts the rule.
#[tokio::test]
async fn ssrf_loopback_tracker_needs_an_announce_path() {
    let (addr, mut heads) = serve(|head| {
        if head
            .split(' ')
            .nth(1)
            .is_some_and(|p| p.contains("/scrape?"))
        {
            let mut b = b"d5:filesd20:".to_vec();
            b.extend_from_slice(&HASH.0);
            b.extend_from_slice(b"d8:completei3e10:downloadedi7e10:incompletei2eeee");
            Canned::Write(with_length("200 OK", &[], &b))
        } else {
            Canned::Write(with_length("200 OK", &[], &good_body()))
        }
    })
    .await;
    let port = addr.port();
    for url in [
        format!("http://{addr}/admin"),
        format!("http://{addr}/"),
        format!("http://{addr}/announce.php"),
        format!("http://localhost:{port}/admin?announce"),
    ] {
        let e = announce_to(&url, config()).await.unwrap_err();
        assert!(
            e.to_string()
                .starts_with("tracker refused by SSRF mitigation: a tracker on loopback address")
                && e.to_string()
                    .ends_with("must have a URL path ending in /announce"),
            "{url}: {e}"
        );
        let e = client(config()).scrape(&url, &HASH, false).await;
        assert!(e.is_err(), "{url}: scrape {e:?}");
    }
    assert!(heads.try_recv().is_err(), "a refused tracker was contacted");

    // An announce path is fine, and so is its scrape.
    let c = client(config());
    let ok = format!("http://{addr}/x/announce?passkey=1");
    assert_eq!(
        c.announce(&ok, &announce(), None, false)
            .await
            .unwrap()
            .peers
            .len(),
        1
    );
    assert_eq!(c.scrape(&ok, &HASH, false).await.unwrap().seeders, 3);
    while heads.try_recv().is_ok() {}

    // Without the mitigation, any path may be used.
    let mut off = config();
    off.http.ssrf_mitigation = false;
    let peers = announce_to(&format!("http://{addr}/admin"), off)
        .await
        .unwrap();
    assert_eq!(peers.len(), 1);
    assert!(
        heads
            .recv()
            .await
            .unwrap()
            .starts_with("GET /admin?info_hash=")
    );
}

/// A server at `global.example` (really 127.0.0.1, through [`FakeDns`]) whose `/announce`
/// redirects to `target` on 127.0.0.1 and whose other paths answer a good reply.
async fn redirecting_to_loopback() -> (u16, mpsc::UnboundedReceiver<String>) {
    let (addr, heads) = serve(move |head| {
        if head.starts_with("GET /announce") || head.starts_with("GET /f.bin") {
            let port = head
                .lines()
                .find_map(|l| l.strip_prefix("host: ").or(l.strip_prefix("Host: ")))
                .and_then(|h| h.trim().rsplit_once(':'))
                .map(|(_, p)| p.to_owned())
                .unwrap_or_default();
            let location = format!("Location: http://127.0.0.1:{port}/moved/announce");
            Canned::Write(response("302 Found", &[location.as_str()], b""))
        } else {
            Canned::Write(with_length("200 OK", &[], &good_body()))
        }
    })
    .await;
    (addr.port(), heads)
}

/// R38: a tracker on a global address may not redirect to a loopback (or LAN) address: the
/// redirect is refused before connecting to it. The same redirect from a loopback tracker,
/// or with `ssrf-mitigation: false`, is followed.
#[tokio::test]
async fn ssrf_global_tracker_may_not_redirect_to_loopback() {
    let (port, mut heads) = redirecting_to_loopback().await;
    let net = FakeDns::default();
    let global = format!("http://global.example:{port}/announce");
    let c = TrackerClient::new(net.clone(), config(), Seed::from_u64(5));
    let e = tokio::time::timeout(TEST_BOUND, c.announce(&global, &announce(), None, false))
        .await
        .expect("bounded")
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "tracker refused by SSRF mitigation: a request to global address 93.184.216.34 may \
         not be redirected to local address 127.0.0.1"
    );
    let head = heads.recv().await.unwrap();
    assert!(head.starts_with("GET /announce?"), "{head}");
    assert!(heads.try_recv().is_err(), "the redirect was followed");

    // From a loopback tracker the same redirect is followed.
    let peers = announce_to(&format!("http://127.0.0.1:{port}/announce"), config())
        .await
        .unwrap();
    assert_eq!(peers.len(), 1);
    while heads.try_recv().is_ok() {}

    // So it is without the mitigation.
    let mut off = config();
    off.http.ssrf_mitigation = false;
    let c = TrackerClient::new(net, off, Seed::from_u64(6));
    let r = tokio::time::timeout(TEST_BOUND, c.announce(&global, &announce(), None, false))
        .await
        .expect("bounded")
        .unwrap();
    assert_eq!(r.peers.len(), 1);
    assert!(heads.recv().await.unwrap().starts_with("GET /announce?"));
    assert!(
        heads
            .recv()
            .await
            .unwrap()
            .starts_with("GET /moved/announce")
    );
}

/// R38 for other HTTP users: a `.torrent` URL and a web seed on a global address may not
/// redirect to loopback either, and a web seed on a loopback address may not carry a query
/// string.
#[tokio::test]
async fn ssrf_rules_for_torrent_urls_and_web_seeds() {
    let (port, mut heads) = redirecting_to_loopback().await;
    let c = HttpClient::new(FakeDns::default(), HttpConfig::default());
    let e = c
        .get(&format!("http://global.example:{port}/announce"), &[])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, HttpError::Ssrf(why) if why.contains("redirected to local address")),
        "{e:?}"
    );
    let t = StreamTimeouts {
        connect: Duration::from_secs(2),
        tls: Duration::from_secs(2),
        headers: Duration::from_secs(2),
        body_idle: Duration::from_secs(2),
    };
    let e = c
        .get_streamed(
            &format!("http://global.example:{port}/f.bin"),
            &[],
            t,
            Purpose::Webseed,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, HttpError::Ssrf(why) if why.contains("redirected to local address")),
        "{e:?}"
    );
    assert_eq!(
        heads.recv().await.unwrap().split(' ').nth(1),
        Some("/announce")
    );
    assert_eq!(
        heads.recv().await.unwrap().split(' ').nth(1),
        Some("/f.bin")
    );
    assert!(heads.try_recv().is_err(), "a redirect was followed");

    // A loopback web seed with a query string is refused before connecting; without one it
    // is fetched.
    let e = c
        .get_streamed(
            &format!("http://127.0.0.1:{port}/x?token=1"),
            &[],
            t,
            Purpose::Webseed,
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "refused by SSRF mitigation: a web seed on local address 127.0.0.1 may not have a \
         query string in its URL"
    );
    assert!(
        heads.try_recv().is_err(),
        "the refused web seed was contacted"
    );
    let r = c
        .get_streamed(
            &format!("http://127.0.0.1:{port}/x"),
            &[],
            t,
            Purpose::Webseed,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    // The query rule is for web seeds only.
    let r = c
        .get(&format!("http://127.0.0.1:{port}/x?token=1"), &[])
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    // Off, everything goes.
    let off = HttpClient::new(
        FakeDns::default(),
        HttpConfig {
            ssrf_mitigation: false,
            ..HttpConfig::default()
        },
    );
    let r = off
        .get_streamed(
            &format!("http://127.0.0.1:{port}/x?token=1"),
            &[],
            t,
            Purpose::Webseed,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let r = off
        .get(&format!("http://global.example:{port}/announce"), &[])
        .await
        .unwrap();
    assert_eq!(r.status, 200);
}

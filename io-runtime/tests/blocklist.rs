//! The IP blocklist end to end (rain's `blocklist-*` keys): a session downloads the list from
//! a loopback HTTP server, refuses peers and trackers on blocked IPs, keeps the list in its
//! resume database, and falls back to the stored copy when the URL stops answering. Every
//! address is on 127.0.0.x (all of 127/8 is loopback on Linux).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rain_proto::metainfo::{Limits, Metainfo};
use rain_proto::tracker::announcer::Status as TrackerState;
use rain_proto::wire::{Handshake, PeerId, Reserved};
use rain_runtime::create::{CreateOptions, create_torrent};
use rain_runtime::session::{AddOptions, Session, SessionConfig, SessionEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, UdpSocket};

/// Every test is bounded by this, whatever happens (a safety net, not an assertion).
const TEST_BOUND: Duration = Duration::from_secs(60);

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

fn config(dir: &Path, url: &str) -> SessionConfig {
    let port = free_port();
    SessionConfig {
        database: dir.join("session.db"),
        data_dir: dir.join("data"),
        host: ip(1),
        port_begin: port,
        port_end: port + 1,
        blocklist_url: url.to_owned(),
        seed: Some(7),
        ..SessionConfig::default()
    }
}

/// A loopback HTTP server answering every request with `body` (and `content_type`); counts
/// the requests. Dropping the returned handle stops it.
struct Server {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    fn url(&self) -> String {
        format!("http://{}/list.txt", self.addr)
    }
}

async fn serve(at: IpAddr, content_type: &'static str, body: Vec<u8>) -> Server {
    let listener = TcpListener::bind((at, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let mut r = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                r.extend_from_slice(&body);
                let _ = s.write_all(&r).await;
                let _ = s.shutdown().await;
            });
        }
    });
    Server { addr, hits, task }
}

/// A torrent of one small file under `dir`, with `trackers` (one tier each) and `webseeds`.
fn torrent(dir: &Path, trackers: &[String], webseeds: &[String]) -> Vec<u8> {
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.bin"), vec![7u8; 50_000]).unwrap();
    create_torrent(&CreateOptions {
        paths: vec![src.join("a.bin")],
        trackers: trackers.iter().map(|t| vec![t.clone()]).collect(),
        webseeds: webseeds.to_vec(),
        ..CreateOptions::default()
    })
    .unwrap()
}

/// Adds `bytes` and returns the port the torrent listens on.
async fn add_listening(s: &Session, bytes: &[u8]) -> u16 {
    let mut events = s.subscribe();
    let t = s
        .add_torrent(
            bytes,
            AddOptions {
                id: Some("t".into()),
                ..AddOptions::default()
            },
        )
        .await
        .unwrap();
    loop {
        if let SessionEvent::Listening { id, port } = events.recv().await.unwrap()
            && id == t.id
        {
            return port;
        }
    }
}

/// Connects from `from` to the torrent on 127.0.0.1:`port` and sends a handshake; true if
/// the torrent answers with its own handshake, false if it closes the connection instead.
async fn answered_from(from: IpAddr, port: u16, torrent: &[u8]) -> bool {
    let info_hash = Metainfo::from_bytes(torrent, &Limits::default())
        .unwrap()
        .info_hash;
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let mut c = socket.connect(SocketAddr::new(ip(1), port)).await.unwrap();
    let ours = Handshake {
        reserved: Reserved::default(),
        info_hash,
        peer_id: PeerId(*b"-XX0000-abcdefghijkl"),
    };
    // A refused connection may be closed before or while we write.
    let _ = c.write_all(&ours.to_bytes()).await;
    let mut theirs = [0u8; 68];
    c.read_exact(&mut theirs).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_from_blocked_ips_are_refused_and_others_accepted() {
    tokio::time::timeout(TEST_BOUND, async {
        let tmp = tempfile::tempdir().unwrap();
        // A comment, a bad line (skipped, as rain does) and one rule.
        let list = serve(
            ip(1),
            "text/plain",
            b"# test\nnot a rule\n127.0.0.2\n".to_vec(),
        )
        .await;
        let s = Session::new(config(tmp.path(), &list.url())).await.unwrap();
        let stats = s.session_stats().await;
        assert_eq!(stats.blocklist_rules, 1);
        assert!(stats.blocklist_recency.is_some());
        let bytes = torrent(tmp.path(), &[], &[]);
        let port = add_listening(&s, &bytes).await;
        assert!(
            !answered_from(ip(2), port, &bytes).await,
            "a peer on a blocked IP was answered"
        );
        assert!(
            answered_from(ip(3), port, &bytes).await,
            "a peer on another IP was refused"
        );
        s.close().await.unwrap();
    })
    .await
    .expect("test bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_is_kept_in_the_database_and_used_when_the_url_is_down() {
    tokio::time::timeout(TEST_BOUND, async {
        let tmp = tempfile::tempdir().unwrap();
        // Served gzipped, as iblocklist does.
        let gz = {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(b"127.0.0.2/32\n10.0.0.0/8\n").unwrap();
            e.finish().unwrap()
        };
        let list = serve(ip(1), "application/x-gzip", gz).await;
        let url = list.url();

        let s = Session::new(config(tmp.path(), &url)).await.unwrap();
        assert_eq!(s.session_stats().await.blocklist_rules, 2);
        s.close().await.unwrap();
        assert_eq!(list.hits.load(Ordering::SeqCst), 1);

        // Fresh (younger than blocklist-update-interval): loaded from the database, the URL
        // is not asked again.
        let s = Session::new(config(tmp.path(), &url)).await.unwrap();
        assert_eq!(s.session_stats().await.blocklist_rules, 2);
        s.close().await.unwrap();
        assert_eq!(list.hits.load(Ordering::SeqCst), 1);

        // Stale and the URL down: the download fails, the stored copy is used.
        drop(list);
        let mut c = config(tmp.path(), &url);
        c.blocklist_update_interval = Duration::ZERO;
        let s = Session::new(c).await.unwrap();
        assert_eq!(s.session_stats().await.blocklist_rules, 2);
        let bytes = torrent(tmp.path(), &[], &[]);
        let port = add_listening(&s, &bytes).await;
        assert!(!answered_from(ip(2), port, &bytes).await);
        assert!(answered_from(ip(3), port, &bytes).await);
        s.close().await.unwrap();

        // The stored copy belongs to its URL: another (dead) URL starts without a list.
        let mut c = config(tmp.path(), &format!("{url}?other"));
        c.blocklist_update_timeout = Duration::from_secs(5);
        let s = Session::new(c).await.unwrap();
        let stats = s.session_stats().await;
        assert_eq!(stats.blocklist_rules, 0);
        assert_eq!(stats.blocklist_recency, None);
        s.close().await.unwrap();
    })
    .await
    .expect("test bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_without_valid_rules_is_refused_without_harm() {
    tokio::time::timeout(TEST_BOUND, async {
        let tmp = tempfile::tempdir().unwrap();
        let list = serve(
            ip(1),
            "text/plain",
            b"garbage\n\xff\xfe\n1.2.3/99\n".to_vec(),
        )
        .await;
        let s = Session::new(config(tmp.path(), &list.url())).await.unwrap();
        let stats = s.session_stats().await;
        assert_eq!(stats.blocklist_rules, 0);
        assert_eq!(stats.blocklist_recency, None);
        let bytes = torrent(tmp.path(), &[], &[]);
        let port = add_listening(&s, &bytes).await;
        assert!(answered_from(ip(2), port, &bytes).await);
        s.close().await.unwrap();
    })
    .await
    .expect("test bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trackers_on_blocked_ips_are_not_contacted() {
    tokio::time::timeout(TEST_BOUND, async {
        let tmp = tempfile::tempdir().unwrap();
        let list = serve(ip(1), "text/plain", b"127.0.0.2\n".to_vec()).await;
        let reply = b"d8:intervali1800e5:peers0:e".to_vec();
        let blocked_http = serve(ip(2), "text/plain", reply.clone()).await;
        let allowed_http = serve(ip(3), "text/plain", reply).await;
        let blocked_udp = UdpSocket::bind((ip(2), 0)).await.unwrap();
        let trackers = vec![
            format!("http://{}/announce", blocked_http.addr),
            format!("udp://{}/announce", blocked_udp.local_addr().unwrap()),
            format!("http://{}/announce", allowed_http.addr),
        ];
        let s = Session::new(config(tmp.path(), &list.url())).await.unwrap();
        let bytes = torrent(tmp.path(), &trackers, &[]);
        add_listening(&s, &bytes).await;
        // Every tracker has been tried once it has a state other than "not contacted" and
        // "contacting".
        let statuses = loop {
            let t = s.trackers("t").await.unwrap();
            if t.len() == 3
                && t.iter()
                    .all(|t| matches!(t.status, TrackerState::Working | TrackerState::NotWorking))
            {
                break t;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        for t in &statuses[..2] {
            assert_eq!(t.status, TrackerState::NotWorking, "{}", t.url);
            assert_eq!(
                t.error.as_ref().map(ToString::to_string).as_deref(),
                Some("tracker IP is blocked"),
                "{}",
                t.url
            );
        }
        assert_eq!(statuses[2].status, TrackerState::Working);
        assert_eq!(blocked_http.hits.load(Ordering::SeqCst), 0);
        assert!(allowed_http.hits.load(Ordering::SeqCst) > 0);
        let mut buf = [0u8; 64];
        assert!(
            blocked_udp.try_recv_from(&mut buf).is_err(),
            "the blocked UDP tracker received a datagram"
        );
        s.close().await.unwrap();
    })
    .await
    .expect("test bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webseeds_on_blocked_ips_are_not_contacted() {
    tokio::time::timeout(TEST_BOUND, async {
        let tmp = tempfile::tempdir().unwrap();
        let list = serve(ip(1), "text/plain", b"127.0.0.2\n".to_vec()).await;
        let webseed = serve(ip(2), "application/octet-stream", vec![7u8; 50_000]).await;
        let bytes = torrent(tmp.path(), &[], &[format!("http://{}/", webseed.addr)]);
        let s = Session::new(config(tmp.path(), &list.url())).await.unwrap();
        add_listening(&s, &bytes).await;
        // The source has been tried once it reports an error.
        let error = loop {
            let w = s.webseeds("t").await.unwrap();
            if let Some(e) = w.first().and_then(|w| w.error) {
                break e;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(
            error,
            rain_proto::webseed::WebseedError::Connect(std::io::ErrorKind::PermissionDenied)
        );
        assert_eq!(webseed.hits.load(Ordering::SeqCst), 0);
        s.close().await.unwrap();
    })
    .await
    .expect("test bound");
}

/// Single-threaded, so that a dial to the blocked address, had it been made, would be queued
/// at its listener before the dial to the allowed address that was asked for after it.
#[tokio::test]
async fn blocked_addresses_are_never_dialled() {
    tokio::time::timeout(TEST_BOUND, async {
        let tmp = tempfile::tempdir().unwrap();
        let list = serve(ip(1), "text/plain", b"127.0.0.2\n".to_vec()).await;
        let blocked = std::net::TcpListener::bind((ip(2), 0)).unwrap();
        blocked.set_nonblocking(true).unwrap();
        let allowed = TcpListener::bind((ip(3), 0)).await.unwrap();
        let s = Session::new(config(tmp.path(), &list.url())).await.unwrap();
        let bytes = torrent(tmp.path(), &[], &[]);
        add_listening(&s, &bytes).await;
        s.add_peer("t", &blocked.local_addr().unwrap().to_string())
            .await
            .unwrap();
        s.add_peer("t", &allowed.local_addr().unwrap().to_string())
            .await
            .unwrap();
        let (_conn, _) = allowed.accept().await.unwrap();
        assert_eq!(
            blocked.accept().map(|_| ()).map_err(|e| e.kind()),
            Err(std::io::ErrorKind::WouldBlock),
            "the blocked address was dialled"
        );
        s.close().await.unwrap();
    })
    .await
    .expect("test bound");
}

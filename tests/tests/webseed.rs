//! Acceptance of BEP 19 webseeds against a real HTTP server on 127.0.0.1: a small file server
//! with `Range` support (rain-sim's [`WebServer`], the one the simulation runs, so nothing
//! needs installing) that can also answer 200 instead of 206, 404, a short body, or corrupt
//! data.
//!
//! - a single-file torrent and a multi-file torrent complete from the webseed alone;
//! - a webseed plus a seeding rain peer complete together, both contributing, with no byte
//!   fetched twice beyond an endgame margin;
//! - a server ignoring `Range` (200) still gives correct data;
//! - 404 and short bodies disable the webseed with its error and it is retried after
//!   `webseed-retry-interval`; corrupt data bans it for the run and the peer finishes;
//! - a `Content-Range` other than the one asked for, and a body trickled slower than
//!   `webseed-response-body-read-timeout`, fail the request and the webseed is retried;
//! - `ssrf-mitigation`: a loopback webseed with a query string is never contacted.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rain_proto::torrent::Status;
use rain_proto::webseed::{SourceState, WebseedError};
use rain_runtime::create::{CreateOptions, create_torrent};
use rain_runtime::net::{Network, TokioNet};
use rain_runtime::session::{AddOptions, Session, SessionConfig, TorrentSummary};
use rain_sim::web::{WebMode, WebServer};

/// Longest wait for a download.
const BOUND: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------- the server

/// rain-sim's webseed server (the one the simulation runs) on a real socket.
struct Server {
    addr: SocketAddr,
    web: Arc<WebServer>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    async fn start(files: BTreeMap<String, Vec<u8>>, mode: WebMode) -> Server {
        let listener = TokioNet
            .listen("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let web = Arc::new(WebServer::new(files, mode));
        let task = tokio::spawn(web.clone().serve(listener));
        Server { addr, web, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn set_mode(&self, mode: WebMode) {
        self.web.set_mode(mode);
    }

    fn set_rate(&self, rate: Option<u64>) {
        self.web.set_rate(rate);
    }

    /// (requests, requests with `Range`, body bytes sent).
    fn counters(&self) -> (u64, u64, u64) {
        let c = self.web.counters();
        (c.requests, c.ranged, c.bytes)
    }
}

// ---------------------------------------------------------------- helpers

/// Deterministic payload bytes.
fn payload(len: usize, salt: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(salt) >> 13) as u8)
        .collect()
}

fn session_config(dir: &Path, seed: u64, retry: Duration) -> SessionConfig {
    // A port the kernel just handed out: free, unlike a range derived from it, which a
    // parallel test or an ephemeral connection may already hold (a seeder then runs without a
    // listener and its leecher stalls).
    let ports = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    SessionConfig {
        database: dir.join("session.db"),
        data_dir: dir.join("data"),
        data_dir_includes_torrent_id: false,
        host: "127.0.0.1".parse().unwrap(),
        port_begin: ports,
        port_end: ports + 1,
        seed: Some(seed),
        webseed_retry_interval: retry,
        ..SessionConfig::default()
    }
}

/// Waits until the torrent is seeding; panics with its stats and webseeds otherwise.
async fn wait_seeding(s: &Session, t: &TorrentSummary, what: &str) {
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let st = s.stats(&t.id).await.unwrap();
        if st.status == Status::Seeding {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: still {:?} ({} of {} pieces), webseeds {:?}",
            st.status,
            st.stats.pieces.have,
            st.stats.pieces.total,
            s.webseeds(&t.id).await
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until `cond` holds, polling.
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + BOUND;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A single-file torrent of `data` named `name`, with `webseeds`, created from `dir`.
fn single_torrent(dir: &Path, name: &str, data: &[u8], piece: u32, webseeds: &[String]) -> Vec<u8> {
    let file = dir.join("src").join(name);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, data).unwrap();
    create_torrent(&CreateOptions {
        paths: vec![file],
        piece_length: Some(piece),
        webseeds: webseeds.to_vec(),
        ..CreateOptions::default()
    })
    .unwrap()
}

/// A leecher session in `dir` that downloads `torrent`.
async fn leecher(
    dir: &Path,
    seed: u64,
    retry: Duration,
    torrent: &[u8],
) -> (Session, TorrentSummary) {
    leecher_with(session_config(dir, seed, retry), torrent).await
}

/// A leecher session with `config` that downloads `torrent`.
async fn leecher_with(config: SessionConfig, torrent: &[u8]) -> (Session, TorrentSummary) {
    let s = Session::new(config).await.unwrap();
    let t = s.add_torrent(torrent, AddOptions::default()).await.unwrap();
    (s, t)
}

/// A seeding session in `dir` holding `name` = `data`.
async fn seeder(dir: &Path, name: &str, data: &[u8], torrent: &[u8]) -> (Session, TorrentSummary) {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("data").join(name), data).unwrap();
    let s = Session::new(session_config(dir, 1, Duration::from_mins(1)))
        .await
        .unwrap();
    let t = s.add_torrent(torrent, AddOptions::default()).await.unwrap();
    wait_seeding(&s, &t, "seeder").await;
    (s, t)
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn sub(t: &tempfile::TempDir, name: &str) -> PathBuf {
    let p = t.path().join(name);
    std::fs::create_dir_all(&p).unwrap();
    p
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_file_torrent_completes_from_the_webseed_alone() {
    let tmp = tmp();
    let data = payload(1_500_000, 1);
    let files = BTreeMap::from([("/files/one file.bin".to_owned(), data.clone())]);
    let server = Server::start(files, WebMode::Partial).await;
    // A single-file URL ending in `/` gets the escaped name appended.
    let torrent = single_torrent(
        &sub(&tmp, "make"),
        "one file.bin",
        &data,
        32 * 1024,
        &[server.url("/files/")],
    );
    let dir = sub(&tmp, "leecher");
    let (s, t) = leecher(&dir, 2, Duration::from_mins(1), &torrent).await;
    wait_seeding(&s, &t, "webseed only").await;
    assert_eq!(std::fs::read(dir.join("data/one file.bin")).unwrap(), data);
    let st = s.stats(&t.id).await.unwrap().stats;
    assert_eq!(st.bytes.downloaded, data.len() as u64);
    assert_eq!(st.bytes.wasted, 0);
    let ws = s.webseeds(&t.id).await.unwrap();
    assert_eq!(ws.len(), 1);
    assert_eq!(ws[0].url, server.url("/files/"));
    assert_eq!(ws[0].error, None);
    assert_eq!(ws[0].downloaded, data.len() as u64);
    assert_eq!(ws[0].state, SourceState::Idle, "completion stops webseeds");
    let (requests, ranged, bytes) = server.counters();
    assert_eq!(requests, ranged);
    assert_eq!(bytes, data.len() as u64);
    s.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_file_torrent_completes_from_the_webseed_alone() {
    let tmp = tmp();
    let make = sub(&tmp, "make");
    let root = make.join("My Set");
    let names = [
        "a.bin",
        "sub dir/b #2.bin",
        "sub dir/empty.txt",
        "c+d=e.bin",
        "z/zz/tiny",
    ];
    let sizes = [70_000usize, 300_001, 0, 123_457, 5];
    let mut files = BTreeMap::new();
    for (k, (n, len)) in names.iter().zip(sizes).enumerate() {
        let d = payload(len, k as u32 * 7 + 3);
        let path = root.join(n);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &d).unwrap();
        files.insert(format!("/seed/My Set/{n}"), d);
    }
    let server = Server::start(files.clone(), WebMode::Partial).await;
    let torrent = create_torrent(&CreateOptions {
        paths: vec![root],
        piece_length: Some(16 * 1024),
        webseeds: vec![server.url("/seed")],
        ..CreateOptions::default()
    })
    .unwrap();
    let dir = sub(&tmp, "leecher");
    let (s, t) = leecher(&dir, 3, Duration::from_mins(1), &torrent).await;
    wait_seeding(&s, &t, "multi-file webseed").await;
    for (path, d) in &files {
        let local = dir.join("data").join(path.trim_start_matches("/seed/"));
        assert_eq!(&std::fs::read(&local).unwrap(), d, "{path}");
    }
    let total: u64 = files.values().map(|d| d.len() as u64).sum();
    let st = s.stats(&t.id).await.unwrap().stats;
    assert_eq!(st.bytes.downloaded, total);
    assert_eq!(st.bytes.wasted, 0);
    assert_eq!(s.webseeds(&t.id).await.unwrap()[0].error, None);
    s.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webseed_and_seeding_peer_share_the_download() {
    let tmp = tmp();
    let data = payload(8 << 20, 5);
    let files = BTreeMap::from([("/big.bin".to_owned(), data.clone())]);
    let server = Server::start(files, WebMode::Partial).await;
    // Slow enough that the peer gets its share, fast enough to matter.
    server.set_rate(None);
    let url = server.url("/big.bin");
    let torrent = single_torrent(&sub(&tmp, "make"), "big.bin", &data, 64 * 1024, &[url]);
    let (a, ta) = seeder(&sub(&tmp, "seeder"), "big.bin", &data, &torrent).await;
    let dir = sub(&tmp, "leecher");
    let (b, tb) = leecher(&dir, 4, Duration::from_mins(1), &torrent).await;
    b.add_peer(&tb.id, &format!("127.0.0.1:{}", ta.port))
        .await
        .unwrap();
    wait_seeding(&b, &tb, "webseed + peer").await;
    assert_eq!(std::fs::read(dir.join("data/big.bin")).unwrap(), data);
    let st = b.stats(&tb.id).await.unwrap().stats;
    let from_webseed = b.webseeds(&tb.id).await.unwrap()[0].downloaded;
    let from_peer = st.bytes.downloaded - from_webseed;
    let size = data.len() as u64;
    assert!(
        from_webseed > size / 20,
        "webseed gave {from_webseed} of {size}"
    );
    assert!(from_peer > size / 20, "peer gave {from_peer} of {size}");
    // No byte twice beyond an endgame margin (plus what was in flight when a peer took the
    // tail of a webseed range).
    let margin = 64 * 16 * 1024;
    assert!(
        st.bytes.downloaded <= size + margin,
        "downloaded {} for {size}: {from_webseed} webseed, {from_peer} peer, {} wasted",
        st.bytes.downloaded,
        st.bytes.wasted
    );
    b.close().await.unwrap();
    a.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_ignoring_range_still_gives_correct_data() {
    let tmp = tmp();
    let data = payload(700_000, 9);
    let files = BTreeMap::from([("/f.bin".to_owned(), data.clone())]);
    let server = Server::start(files, WebMode::Full).await;
    let torrent = single_torrent(
        &sub(&tmp, "make"),
        "f.bin",
        &data,
        32 * 1024,
        &[server.url("/f.bin")],
    );
    let dir = sub(&tmp, "leecher");
    let (s, t) = leecher(&dir, 5, Duration::from_mins(1), &torrent).await;
    wait_seeding(&s, &t, "200 instead of 206").await;
    // rain would have stored each range's file start at the range offset.
    assert_eq!(std::fs::read(dir.join("data/f.bin")).unwrap(), data);
    let st = s.stats(&t.id).await.unwrap().stats;
    assert_eq!(st.bytes.wasted, 0);
    assert_eq!(s.webseeds(&t.id).await.unwrap()[0].error, None);
    s.close().await.unwrap();
}

/// A failing server: the source shows the error, is retried every `webseed-retry-interval`,
/// and the download completes once the server recovers.
async fn failing_then_recovering(mode: WebMode, want: WebseedError) {
    let tmp = tmp();
    let data = payload(400_000, 11);
    let files = BTreeMap::from([("/f.bin".to_owned(), data.clone())]);
    let server = Server::start(files, mode).await;
    let torrent = single_torrent(
        &sub(&tmp, "make"),
        "f.bin",
        &data,
        16 * 1024,
        &[server.url("/f.bin")],
    );
    let dir = sub(&tmp, "leecher");
    let (s, t) = leecher(&dir, 6, Duration::from_millis(300), &torrent).await;
    wait_for(&format!("{mode:?}: three attempts"), || {
        server.counters().0 >= 3
    })
    .await;
    let ws = s.webseeds(&t.id).await.unwrap();
    assert_eq!(ws[0].error, Some(want), "{mode:?}: {ws:?}");
    assert_ne!(s.stats(&t.id).await.unwrap().status, Status::Seeding);
    server.set_mode(WebMode::Partial);
    wait_seeding(&s, &t, &format!("{mode:?} then recovered")).await;
    assert_eq!(std::fs::read(dir.join("data/f.bin")).unwrap(), data);
    s.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_404_disables_the_webseed_until_the_retry_interval() {
    failing_then_recovering(WebMode::NotFound, WebseedError::Status(404)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_body_disables_the_webseed_until_the_retry_interval() {
    failing_then_recovering(WebMode::Short, WebseedError::ShortBody).await;
}

/// R42: a 206 whose `Content-Range` (and body) starts elsewhere than asked is refused before
/// any byte is used (without the check its bytes would land at the wrong offset, fail the
/// hash check and ban the webseed); the webseed is retried and finishes once it answers right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mismatched_content_range_disables_the_webseed_until_the_retry_interval() {
    failing_then_recovering(WebMode::BadRange, WebseedError::BadRange).await;
}

/// R42 (slowloris): a body trickled one byte every two seconds fails the request after
/// `webseed-response-body-read-timeout` of silence, and the webseed is disabled until
/// `webseed-retry-interval`; it is retried and finishes once it answers at speed. (Each
/// attempt's first byte clears the error shown, so the failure is watched for, not sampled.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_body_times_out_and_the_webseed_is_retried() {
    let idle = Duration::from_millis(300);
    assert!(rain_sim::web::TRICKLE_PAUSE > idle * 3);
    let tmp = tmp();
    let data = payload(400_000, 23);
    let files = BTreeMap::from([("/f.bin".to_owned(), data.clone())]);
    let server = Server::start(files, WebMode::Trickle).await;
    let torrent = single_torrent(
        &sub(&tmp, "make"),
        "f.bin",
        &data,
        16 * 1024,
        &[server.url("/f.bin")],
    );
    let dir = sub(&tmp, "leecher");
    let mut config = session_config(&dir, 12, Duration::from_millis(300));
    config.webseed_response_body_read_timeout = idle;
    let (s, t) = leecher_with(config, &torrent).await;
    let start = tokio::time::Instant::now();
    loop {
        let ws = s.webseeds(&t.id).await.unwrap();
        if ws[0].error == Some(WebseedError::Timeout) {
            assert!(
                matches!(ws[0].state, SourceState::Disabled { .. }),
                "{ws:?}"
            );
            assert!(ws[0].downloaded >= 1, "the first byte came: {ws:?}");
            break;
        }
        assert!(
            start.elapsed() < BOUND,
            "a trickling webseed never timed out: {ws:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        start.elapsed() < rain_sim::web::TRICKLE_PAUSE * 2,
        "timed out only after {:?}",
        start.elapsed()
    );
    wait_for("Trickle: three attempts", || server.counters().0 >= 3).await;
    assert_ne!(s.stats(&t.id).await.unwrap().status, Status::Seeding);
    server.set_mode(WebMode::Partial);
    wait_seeding(&s, &t, "Trickle then recovered").await;
    assert_eq!(std::fs::read(dir.join("data/f.bin")).unwrap(), data);
    s.close().await.unwrap();
}

/// R38/R42 (`ssrf-mitigation`): a webseed on a loopback address whose URL has a query string
/// is refused before connecting, and the peer finishes the download; with the mitigation off,
/// the same webseed serves the whole file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_webseed_with_a_query_string_is_never_contacted() {
    let tmp = tmp();
    let data = payload(300_000, 19);
    let files = BTreeMap::from([("/f.bin".to_owned(), data.clone())]);
    let server = Server::start(files, WebMode::Partial).await;
    let url = server.url("/f.bin?token=secret");
    let torrent = single_torrent(&sub(&tmp, "make"), "f.bin", &data, 16 * 1024, &[url]);
    let (a, ta) = seeder(&sub(&tmp, "seeder"), "f.bin", &data, &torrent).await;
    let dir = sub(&tmp, "leecher");
    let (b, tb) = leecher(&dir, 9, Duration::from_millis(100), &torrent).await;
    b.add_peer(&tb.id, &format!("127.0.0.1:{}", ta.port))
        .await
        .unwrap();
    wait_seeding(&b, &tb, "query-string webseed + peer").await;
    assert_eq!(std::fs::read(dir.join("data/f.bin")).unwrap(), data);
    let ws = b.webseeds(&tb.id).await.unwrap();
    assert_eq!(
        ws[0].error,
        Some(WebseedError::Connect(std::io::ErrorKind::PermissionDenied)),
        "{ws:?}"
    );
    assert_eq!(ws[0].downloaded, 0);
    assert_eq!(server.counters().0, 0, "the refused webseed was contacted");
    b.close().await.unwrap();
    a.close().await.unwrap();

    let dir = sub(&tmp, "unprotected");
    let mut config = session_config(&dir, 10, Duration::from_mins(1));
    config.ssrf_mitigation = false;
    let (c, tc) = leecher_with(config, &torrent).await;
    wait_seeding(&c, &tc, "query-string webseed, mitigation off").await;
    assert_eq!(std::fs::read(dir.join("data/f.bin")).unwrap(), data);
    assert_eq!(c.webseeds(&tc.id).await.unwrap()[0].error, None);
    assert!(server.counters().0 > 0);
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_404_webseed_beside_a_peer_does_not_block_the_download() {
    let tmp = tmp();
    let data = payload(600_000, 13);
    let files = BTreeMap::new();
    let server = Server::start(files, WebMode::NotFound).await;
    let torrent = single_torrent(
        &sub(&tmp, "make"),
        "f.bin",
        &data,
        32 * 1024,
        &[server.url("/missing.bin")],
    );
    let (a, ta) = seeder(&sub(&tmp, "seeder"), "f.bin", &data, &torrent).await;
    let dir = sub(&tmp, "leecher");
    let (b, tb) = leecher(&dir, 7, Duration::from_mins(1), &torrent).await;
    b.add_peer(&tb.id, &format!("127.0.0.1:{}", ta.port))
        .await
        .unwrap();
    wait_seeding(&b, &tb, "404 webseed + peer").await;
    assert_eq!(std::fs::read(dir.join("data/f.bin")).unwrap(), data);
    let ws = b.webseeds(&tb.id).await.unwrap();
    assert_eq!(ws[0].error, Some(WebseedError::Status(404)));
    assert_eq!(server.counters().0, 1, "not retried within the minute");
    b.close().await.unwrap();
    a.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_webseed_is_banned_and_the_peer_finishes() {
    let tmp = tmp();
    let data = payload(1_000_000, 17);
    let files = BTreeMap::from([("/f.bin".to_owned(), data.clone())]);
    let server = Server::start(files, WebMode::Corrupt).await;
    let torrent = single_torrent(
        &sub(&tmp, "make"),
        "f.bin",
        &data,
        32 * 1024,
        &[server.url("/f.bin")],
    );
    let (a, ta) = seeder(&sub(&tmp, "seeder"), "f.bin", &data, &torrent).await;
    let dir = sub(&tmp, "leecher");
    // A short retry interval: a ban must not expire like a failure does.
    let (b, tb) = leecher(&dir, 8, Duration::from_millis(100), &torrent).await;
    b.add_peer(&tb.id, &format!("127.0.0.1:{}", ta.port))
        .await
        .unwrap();
    wait_seeding(&b, &tb, "corrupt webseed + peer").await;
    assert_eq!(std::fs::read(dir.join("data/f.bin")).unwrap(), data);
    let ws = b.webseeds(&tb.id).await.unwrap();
    assert_eq!(ws[0].state, SourceState::Banned);
    assert_eq!(ws[0].error, Some(WebseedError::CorruptData));
    let st = b.stats(&tb.id).await.unwrap().stats;
    assert!(st.bytes.wasted > 0);
    b.close().await.unwrap();
    a.close().await.unwrap();
}

//! `rain client` against an in-process jsonrpsee server that answers every `Session.*` method
//! with a canned rain-shaped value and records what it received.

use std::io::{BufRead, BufReader, Read, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonrpsee::server::{RpcModule, Server, ServerHandle};
use jsonrpsee::types::ErrorObjectOwned;
use serde_json::{Value, json};

use super::format::{format_session_stats, format_stats, go_duration, size};
use super::{TOKEN_ENV, resolve_token};
use crate::rpc::types::{
    AddressStats, ByteStats, DirectionStats, DownloadStats, MetadataDownloadStats, PieceStats,
    SessionStats, SpeedStats, Stats,
};

/// One request the fake server received.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    /// The raw `params`, parsed; `None` when the request had none.
    params: Option<Value>,
    /// The `Authorization` header.
    auth: Option<String>,
}

/// The `Authorization` header, carried from the HTTP layer to the method handlers.
#[derive(Debug, Clone)]
struct AuthHeader(Option<String>);

fn record_auth<B>(mut req: http::Request<B>) -> http::Request<B> {
    let auth = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    req.extensions_mut().insert(AuthHeader(auth));
    req
}

type Reply = Result<Value, (i32, &'static str)>;

struct FakeServer {
    url: String,
    calls: Arc<Mutex<Vec<Call>>>,
    handle: ServerHandle,
    runtime: tokio::runtime::Runtime,
}

impl FakeServer {
    fn start() -> Self {
        Self::with_replies(&[])
    }

    /// A server answering `overrides` for the methods named there and [`canned`] otherwise.
    fn with_replies(overrides: &[(&'static str, Reply)]) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let mut module = RpcModule::new(());
        for method in crate::rpc::METHODS {
            let reply = overrides
                .iter()
                .find(|(m, _)| *m == method)
                .map_or_else(|| Ok(canned(method)), |(_, r)| r.clone());
            let calls = Arc::clone(&calls);
            module
                .register_method(method, move |params, (), ext| {
                    let auth = ext.get::<AuthHeader>().and_then(|a| a.0.clone());
                    let params = params
                        .as_str()
                        .map(|raw| serde_json::from_str::<Value>(raw).unwrap());
                    calls.lock().unwrap().push(Call {
                        method: method.to_owned(),
                        params,
                        auth,
                    });
                    reply
                        .clone()
                        .map_err(|(code, msg)| ErrorObjectOwned::owned(code, msg, None::<()>))
                })
                .unwrap();
        }
        let (url, handle) = runtime.block_on(async {
            let server = Server::builder()
                .set_http_middleware(tower::ServiceBuilder::new().map_request(record_auth))
                .build("127.0.0.1:0")
                .await
                .unwrap();
            let addr = server.local_addr().unwrap();
            (format!("http://{addr}"), server.start(module))
        });
        FakeServer {
            url,
            calls,
            handle,
            runtime,
        }
    }

    /// Runs `rain client --url <this server> <args>`.
    fn rain(&self, args: &[&str]) -> Result<String, String> {
        let mut argv = vec!["client", "--url", &self.url];
        argv.extend_from_slice(args);
        rain(&argv)
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// The only call received; fails when there were more or none.
    fn only_call(&self) -> Call {
        let calls = self.calls();
        assert_eq!(calls.len(), 1, "calls: {calls:?}");
        calls[0].clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        let _ = self.handle.stop();
        let handle = self.handle.clone();
        self.runtime.block_on(handle.stopped());
    }
}

/// Runs `rain <args>`: stdout, or the one-line error.
fn rain(args: &[&str]) -> Result<String, String> {
    let mut out = Vec::new();
    let argv = std::iter::once("rain").chain(args.iter().copied());
    crate::cli::run(argv, &mut out)
        .map(|()| String::from_utf8(out).unwrap())
        .map_err(|e| e.to_string())
}

const HASH: &str = "0123456789abcdef0123456789abcdef01234567";
const MAGNET: &str = "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&dn=ubuntu.iso";
/// Bytes whose base64 needs padding: "AAEC/w==".
const TORRENT_BYTES: [u8; 4] = [0, 1, 2, 255];

fn torrent_json() -> Value {
    json!({
        "ID": "t1",
        "Name": "ubuntu.iso",
        "InfoHash": HASH,
        "Port": 50001,
        "AddedAt": "2024-05-01T12:00:00Z",
    })
}

fn tracker_json() -> Value {
    json!({
        "URL": "http://tracker.example/announce",
        "Status": "Working",
        "Leechers": 4,
        "Seeders": 9,
        "Warning": "",
        "Error": "",
        "ErrorUnknown": false,
        "ErrorInternal": "",
        "LastAnnounce": "2024-05-01T12:00:00Z",
        "NextAnnounce": "0001-01-01T00:00:00Z",
    })
}

fn peer_json() -> Value {
    json!({
        "ID": HASH,
        "Client": "rain 2.0.0",
        "Addr": "10.0.0.2:6881",
        "Source": "DHT",
        "ConnectedAt": "2024-05-01T12:00:00Z",
        "Downloading": true,
        "ClientInterested": true,
        "ClientChoking": false,
        "PeerInterested": false,
        "PeerChoking": false,
        "OptimisticUnchoked": false,
        "Snubbed": false,
        "EncryptedHandshake": true,
        "EncryptedStream": true,
        "DownloadSpeed": 2048,
        "UploadSpeed": 0,
    })
}

fn sample_stats() -> Stats {
    Stats {
        info_hash: HASH.to_owned(),
        port: 50001,
        status: "Downloading".to_owned(),
        error: String::new(),
        name: "ubuntu.iso".to_owned(),
        private: false,
        file_count: 1,
        piece_length: 262_144,
        seeded_for: Duration::ZERO,
        eta: 3725,
        pieces: PieceStats {
            checked: 0,
            have: 50,
            missing: 150,
            available: 180,
            total: 200,
        },
        bytes: ByteStats {
            total: 700 * 1024 * 1024,
            padding: 0,
            allocated: 700 * 1024 * 1024,
            completed: 175 * 1024 * 1024,
            incomplete: 525 * 1024 * 1024,
            downloaded: 1000,
            uploaded: 1500,
            wasted: 0,
        },
        peers: DirectionStats {
            total: 10,
            incoming: 3,
            outgoing: 7,
        },
        handshakes: DirectionStats::default(),
        addresses: AddressStats::default(),
        downloads: DownloadStats::default(),
        metadata_downloads: MetadataDownloadStats::default(),
        speed: SpeedStats {
            download: 1_536_000,
            upload: 10_240,
        },
    }
}

const SAMPLE_STATS_TEXT: &str = "\
Name: ubuntu.iso
Private: false
Status: Downloading
Progress: 25%
Ratio: 1.50
Size: 700 MiB
Peers: 3 in / 7 out
Download speed:  1500 KiB/s
Upload speed:      10 KiB/s
ETA: 1h2m5s
";

fn sample_session_stats() -> SessionStats {
    SessionStats {
        uptime: 90_061,
        torrents: 3,
        peers: 12,
        ports_available: 40,
        block_list_rules: 1234,
        block_list_recency: 300,
        read_cache_objects: 5,
        read_cache_size: 3 * 1024 * 1024 + 1,
        read_cache_utilization: 42,
        reads_per_second: 7,
        reads_active: 1,
        reads_pending: 2,
        write_cache_objects: 6,
        write_cache_size: 8 * 1024 * 1024,
        write_cache_pending_keys: 1,
        writes_per_second: 4,
        writes_active: 3,
        writes_pending: 0,
        speed_download: 204_800,
        speed_upload: 2047,
        speed_read: 10_240,
        speed_write: 5 * 1024,
        bytes_downloaded: 100 * 1024 * 1024,
        bytes_uploaded: 1024 * 1024 - 1,
        bytes_read: 2 * 1024 * 1024,
        bytes_written: 50 * 1024 * 1024,
    }
}

const SAMPLE_SESSION_TEXT: &str = "\
Torrents: 3, Peers: 12, Uptime: 25h1m1s
BlocklistRules: 1234, Updated: 5m0s ago
Reads: 7/s, 10KB/s, Active: 1, Pending: 2
Writes: 4/s, 5KB/s, Active: 3, Pending: 0
ReadCache Objects: 5, Size: 3MB, Utilization: 42%
WriteCache Objects: 6, Size: 8MB, PendingKeys: 1
DownloadSpeed: 200KB/s, UploadSpeed: 1KB/s
BytesDownloaded: 100MB, BytesUploaded: 0MB
BytesRead: 2MB, BytesWritten: 50MB
";

/// What the fake server answers for `method` unless told otherwise.
fn canned(method: &str) -> Value {
    match method {
        "Session.Version" => json!("2.0.0-test"),
        "Session.ListTorrents" => json!({ "Torrents": [torrent_json()] }),
        "Session.AddTorrent" | "Session.AddURI" => json!({ "Torrent": torrent_json() }),
        "Session.GetTorrentStats" => json!({ "Stats": sample_stats() }),
        "Session.GetSessionStats" => json!({ "Stats": sample_session_stats() }),
        "Session.GetTorrentTrackers" => json!({ "Trackers": [tracker_json()] }),
        "Session.GetTorrentPeers" => json!({ "Peers": [peer_json()] }),
        "Session.GetTorrentWebseeds" => json!({
            "Webseeds": [{ "URL": "http://seed.example/x", "Error": "", "DownloadSpeed": 77 }]
        }),
        "Session.GetTorrentFiles" => json!({
            "Files": [{ "Path": "dir/a.bin", "Length": 10 }, { "Path": "dir/b.bin", "Length": 20 }]
        }),
        "Session.GetTorrentFileStats" => json!({
            "FileStats": [{ "File": { "Path": "dir/a.bin", "Length": 10 }, "BytesCompleted": 4 }]
        }),
        "Session.GetMagnet" => json!({ "Magnet": MAGNET }),
        "Session.GetTorrent" => json!({ "Torrent": "AAEC/w==" }),
        _ => json!({}),
    }
}

fn parse(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"))
}

/// The header a request without `--token` carries: none, unless the environment sets one.
fn ambient_auth() -> Option<String> {
    resolve_token(None, std::env::var(TOKEN_ENV).ok()).map(|t| format!("Bearer {t}"))
}

#[test]
fn version_sends_no_params_and_prints_the_string() {
    let server = FakeServer::start();
    assert_eq!(server.rain(&["version"]).unwrap(), "2.0.0-test\n");
    let call = server.only_call();
    assert_eq!(call.method, "Session.Version");
    assert_eq!(call.params, None);
}

#[test]
fn list_sends_no_params_and_prints_the_array() {
    let server = FakeServer::start();
    let out = server.rain(&["list"]).unwrap();
    assert_eq!(parse(&out), json!([torrent_json()]));
    // Pretty-printed, not compact.
    assert!(out.starts_with("[\n  {\n    \"ID\": \"t1\",\n"), "{out}");
    let call = server.only_call();
    assert_eq!(call.method, "Session.ListTorrents");
    assert_eq!(call.params, None);
    // `--json` is accepted and changes nothing.
    assert_eq!(server.rain(&["list", "--json"]).unwrap(), out);
}

#[test]
fn add_magnet_uses_add_uri_with_every_option_field() {
    let server = FakeServer::start();
    let out = server.rain(&["add", "-t", MAGNET]).unwrap();
    assert_eq!(parse(&out), torrent_json());
    let call = server.only_call();
    assert_eq!(call.method, "Session.AddURI");
    assert_eq!(
        call.params,
        Some(json!({
            "URI": MAGNET,
            "ID": "",
            "Stopped": false,
            "StopAfterDownload": false,
            "StopAfterMetadata": false,
            "Sequential": false,
        }))
    );
}

#[test]
fn add_http_url_with_flags_uses_add_uri() {
    let server = FakeServer::start();
    server
        .rain(&[
            "add",
            "--torrent",
            "https://example.org/x.torrent",
            "--stopped",
            "--stop-after-download",
            "--stop-after-metadata",
            "--sequential",
            "--id",
            "custom",
        ])
        .unwrap();
    let call = server.only_call();
    assert_eq!(call.method, "Session.AddURI");
    assert_eq!(
        call.params,
        Some(json!({
            "URI": "https://example.org/x.torrent",
            "ID": "custom",
            "Stopped": true,
            "StopAfterDownload": true,
            "StopAfterMetadata": true,
            "Sequential": true,
        }))
    );
}

#[test]
fn add_file_uploads_padded_base64_with_add_torrent() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.torrent");
    std::fs::write(&path, TORRENT_BYTES).unwrap();
    let out = server
        .rain(&["add", "-t", path.to_str().unwrap(), "--stopped"])
        .unwrap();
    assert_eq!(parse(&out), torrent_json());
    let call = server.only_call();
    assert_eq!(call.method, "Session.AddTorrent");
    assert_eq!(
        call.params,
        Some(json!({
            "Torrent": "AAEC/w==",
            "ID": "",
            "Stopped": true,
            "StopAfterDownload": false,
            "StopAfterMetadata": false,
            "Sequential": false,
        }))
    );
}

#[test]
fn add_missing_file_fails_before_any_request() {
    let server = FakeServer::start();
    let err = server
        .rain(&["add", "-t", "/nonexistent/x.torrent"])
        .unwrap_err();
    assert!(
        err.starts_with("cannot read /nonexistent/x.torrent: "),
        "{err}"
    );
    assert!(!err.contains('\n'));
    assert!(server.calls().is_empty());
}

#[test]
fn remove_sends_id_and_keep_data() {
    let server = FakeServer::start();
    assert_eq!(
        server
            .rain(&["remove", "--id", "t1", "--keep-data"])
            .unwrap(),
        ""
    );
    let call = server.only_call();
    assert_eq!(call.method, "Session.RemoveTorrent");
    assert_eq!(call.params, Some(json!({ "ID": "t1", "KeepData": true })));

    let server = FakeServer::start();
    server.rain(&["remove", "--id", "t2"]).unwrap();
    assert_eq!(
        server.only_call().params,
        Some(json!({ "ID": "t2", "KeepData": false }))
    );
}

#[test]
fn id_subcommands_send_an_id_object() {
    let cases = [
        ("stats", "Session.GetTorrentStats"),
        ("trackers", "Session.GetTorrentTrackers"),
        ("webseeds", "Session.GetTorrentWebseeds"),
        ("files", "Session.GetTorrentFiles"),
        ("file-stats", "Session.GetTorrentFileStats"),
        ("peers", "Session.GetTorrentPeers"),
        ("announce", "Session.AnnounceTorrent"),
        ("verify", "Session.VerifyTorrent"),
        ("start", "Session.StartTorrent"),
        ("stop", "Session.StopTorrent"),
        ("magnet", "Session.GetMagnet"),
    ];
    let server = FakeServer::start();
    for (sub, _) in cases {
        // Generated ids are base64url: one in 64 starts with `-`.
        server.rain(&[sub, "--id", "-EQ_abc"]).unwrap();
    }
    let calls = server.calls();
    assert_eq!(calls.len(), cases.len());
    for ((sub, method), call) in cases.iter().zip(&calls) {
        assert_eq!(call.method, *method, "{sub}");
        assert_eq!(call.params, Some(json!({ "ID": "-EQ_abc" })), "{sub}");
    }
}

#[test]
fn actions_print_nothing() {
    let server = FakeServer::start();
    for args in [
        &["announce", "--id", "a"][..],
        &["verify", "--id", "a"],
        &["start", "--id", "a"],
        &["stop", "--id", "a"],
        &["start-all"],
        &["stop-all"],
        &["clean-database"],
        &["add-peer", "--id", "a", "--addr", "1.2.3.4:5"],
        &["add-tracker", "--id", "a", "-t", "udp://t.example:80"],
        &["move", "--id", "a", "--target", "http://h:7246"],
    ] {
        assert_eq!(server.rain(args).unwrap(), "", "{args:?}");
    }
}

#[test]
fn empty_argument_methods_send_an_empty_object() {
    let cases = [
        ("start-all", "Session.StartAllTorrents"),
        ("stop-all", "Session.StopAllTorrents"),
        ("clean-database", "Session.CleanDatabase"),
        ("session-stats", "Session.GetSessionStats"),
    ];
    let server = FakeServer::start();
    for (sub, _) in cases {
        server.rain(&[sub]).unwrap();
    }
    let calls = server.calls();
    assert_eq!(calls.len(), cases.len());
    for ((sub, method), call) in cases.iter().zip(&calls) {
        assert_eq!(call.method, *method, "{sub}");
        assert_eq!(call.params, Some(json!({})), "{sub}");
    }
}

#[test]
fn add_peer_add_tracker_and_move_use_rain_names() {
    let server = FakeServer::start();
    server
        .rain(&["add-peer", "--id", "t1", "--addr", "10.0.0.9:6881"])
        .unwrap();
    server
        .rain(&[
            "add-tracker",
            "--id",
            "t1",
            "--tracker",
            "udp://t.example:80",
        ])
        .unwrap();
    server
        .rain(&["move", "--id", "t1", "--target", "http://other:7246"])
        .unwrap();
    // rain's help suggests host:port; the server needs a scheme.
    server
        .rain(&["move", "--id", "t1", "--target", "other:7246"])
        .unwrap();
    let calls = server.calls();
    let got: Vec<(&str, Value)> = calls
        .iter()
        .map(|c| (c.method.as_str(), c.params.clone().unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "Session.AddPeer",
                json!({ "ID": "t1", "Addr": "10.0.0.9:6881" })
            ),
            (
                "Session.AddTracker",
                json!({ "ID": "t1", "URL": "udp://t.example:80" })
            ),
            (
                "Session.MoveTorrent",
                json!({ "ID": "t1", "Target": "http://other:7246" })
            ),
            (
                "Session.MoveTorrent",
                json!({ "ID": "t1", "Target": "http://other:7246" })
            ),
        ]
    );
}

#[test]
fn stats_prints_the_human_summary_or_json() {
    let server = FakeServer::start();
    assert_eq!(
        server.rain(&["stats", "--id", "t1"]).unwrap(),
        SAMPLE_STATS_TEXT
    );
    let out = server.rain(&["stats", "--id", "t1", "--json"]).unwrap();
    let json = parse(&out);
    assert_eq!(json, serde_json::to_value(sample_stats()).unwrap());
    // The Stats object itself, not the {Stats: …} envelope.
    assert_eq!(json["ETA"], json!(3725));
    assert_eq!(json["Pieces"]["Have"], json!(50));
}

#[test]
fn session_stats_prints_the_human_summary_or_json() {
    let server = FakeServer::start();
    assert_eq!(
        server.rain(&["session-stats"]).unwrap(),
        SAMPLE_SESSION_TEXT
    );
    let json = parse(&server.rain(&["session-stats", "--json"]).unwrap());
    assert_eq!(json, serde_json::to_value(sample_session_stats()).unwrap());
    assert_eq!(json["BlockListRules"], json!(1234));
}

#[test]
fn getters_print_the_unwrapped_lists() {
    let server = FakeServer::start();
    let get = |sub: &str| parse(&server.rain(&[sub, "--id", "t1"]).unwrap());
    assert_eq!(get("trackers"), json!([tracker_json()]));
    assert_eq!(get("peers"), json!([peer_json()]));
    assert_eq!(
        get("webseeds"),
        json!([{ "URL": "http://seed.example/x", "Error": "", "DownloadSpeed": 77 }])
    );
    assert_eq!(
        get("files"),
        json!([{ "Path": "dir/a.bin", "Length": 10 }, { "Path": "dir/b.bin", "Length": 20 }])
    );
    assert_eq!(
        get("file-stats"),
        json!([{ "File": { "Path": "dir/a.bin", "Length": 10 }, "BytesCompleted": 4 }])
    );
    let with_json = server.rain(&["peers", "--id", "t1", "--json"]).unwrap();
    assert_eq!(parse(&with_json), json!([peer_json()]));
}

#[test]
fn magnet_prints_the_link() {
    let server = FakeServer::start();
    assert_eq!(
        server.rain(&["magnet", "--id", "t1"]).unwrap(),
        format!("{MAGNET}\n")
    );
}

#[test]
fn torrent_decodes_and_writes_the_file() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.torrent");
    let out = server
        .rain(&["torrent", "--id", "t1", "-o", path.to_str().unwrap()])
        .unwrap();
    assert_eq!(out, "");
    assert_eq!(std::fs::read(&path).unwrap(), TORRENT_BYTES);
    let call = server.only_call();
    assert_eq!(call.method, "Session.GetTorrent");
    assert_eq!(call.params, Some(json!({ "ID": "t1" })));
}

#[test]
fn torrent_with_bad_base64_is_one_line() {
    let server = FakeServer::with_replies(&[(
        "Session.GetTorrent",
        Ok(json!({ "Torrent": "not base64!" })),
    )]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.torrent");
    let err = server
        .rain(&["torrent", "--id", "t1", "-o", path.to_str().unwrap()])
        .unwrap_err();
    assert!(
        err.starts_with(&format!(
            "unexpected reply from the rain server at {}: the torrent is not valid base64",
            server.url
        )),
        "{err}"
    );
    assert!(!path.exists());
}

#[test]
fn torrent_not_found_is_the_server_message() {
    let server = FakeServer::with_replies(&[
        ("Session.GetTorrentStats", Err((1, "torrent not found"))),
        ("Session.StartTorrent", Err((1, "torrent not found"))),
        (
            "Session.AddURI",
            Err((2, "input error: invalid magnet link")),
        ),
        ("Session.GetMagnet", Err((-32000, ""))),
    ]);
    assert_eq!(
        server.rain(&["stats", "--id", "nope"]).unwrap_err(),
        "torrent not found"
    );
    assert_eq!(
        server.rain(&["start", "--id", "nope"]).unwrap_err(),
        "torrent not found"
    );
    assert_eq!(
        server.rain(&["add", "-t", "magnet:?bad"]).unwrap_err(),
        "input error: invalid magnet link"
    );
    assert_eq!(
        server.rain(&["magnet", "--id", "x"]).unwrap_err(),
        "server error -32000"
    );
}

#[test]
fn server_error_code_is_kept() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server =
        FakeServer::with_replies(&[("Session.StopTorrent", Err((1, "torrent not found")))]);
    let err = rt.block_on(async {
        let client = super::RpcClient::new(&server.url, Duration::from_secs(5), None).unwrap();
        client.stop("x").await.unwrap_err()
    });
    assert_eq!(err.code(), Some(crate::rpc::ERROR_TORRENT_NOT_FOUND));
    assert_eq!(err.to_string(), "torrent not found");
}

#[test]
fn server_down_is_one_line() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let err = rain(&["client", "--url", &url, "version"]).unwrap_err();
    assert_eq!(
        err,
        format!("cannot reach the rain server at {url}: connection refused")
    );
}

#[test]
fn silent_server_times_out() {
    // Accepted by the kernel, never answered.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let err = rain(&["client", "--url", &url, "--timeout", "200ms", "list"]).unwrap_err();
    assert_eq!(
        err,
        format!("the rain server at {url} did not answer within 200ms")
    );
    drop(listener);
}

/// Answers one HTTP request with `status_line` and an empty body.
fn one_shot_http(status_line: &'static str) -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let thread = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let mut stream = reader.into_inner();
        write!(
            stream,
            "{status_line}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
    });
    (url, thread)
}

#[test]
fn unauthorized_points_at_the_token() {
    let (url, thread) = one_shot_http("HTTP/1.1 401 Unauthorized");
    let err = rain(&["client", "--url", &url, "version"]).unwrap_err();
    thread.join().unwrap();
    assert_eq!(
        err,
        format!(
            "the rain server at {url} refused the request: HTTP 401 Unauthorized \
             (check --token or RAIN_RPC_TOKEN)"
        )
    );
}

#[test]
fn invalid_url_is_one_line() {
    let err = rain(&["client", "--url", "ftp://x", "version"]).unwrap_err();
    assert!(err.starts_with("invalid server URL \"ftp://x\": "), "{err}");
    assert!(!err.contains('\n'));
}

#[test]
fn token_is_sent_as_bearer() {
    let server = FakeServer::start();
    server.rain(&["--token", "s3cret", "version"]).unwrap();
    server.rain(&["version"]).unwrap();
    let calls = server.calls();
    assert_eq!(calls[0].auth.as_deref(), Some("Bearer s3cret"));
    assert_eq!(calls[1].auth, ambient_auth());
}

#[test]
fn token_comes_from_the_flag_then_the_environment() {
    assert_eq!(
        resolve_token(Some("flag"), Some("env".into())).as_deref(),
        Some("flag")
    );
    assert_eq!(
        resolve_token(None, Some("env".into())).as_deref(),
        Some("env")
    );
    assert_eq!(resolve_token(None, None), None);
    assert_eq!(resolve_token(None, Some(String::new())), None);
    assert_eq!(resolve_token(Some(""), Some("env".into())), None);
}

#[test]
fn client_flags_also_work_after_the_subcommand() {
    let server = FakeServer::start();
    let out = rain(&["client", "version", "--url", &server.url]).unwrap();
    assert_eq!(out, "2.0.0-test\n");
}

#[test]
fn usage_errors_are_one_line() {
    let err = rain(&["client", "stats"]).unwrap_err();
    assert!(err.contains("--id"), "{err}");
    assert!(!err.contains('\n'), "{err}");
    let err = rain(&["client", "--timeout", "soon", "version"]).unwrap_err();
    assert!(err.contains("--timeout"), "{err}");
    assert!(!err.contains('\n'), "{err}");
}

#[test]
fn human_stats_format() {
    assert_eq!(format_stats(&sample_stats()), SAMPLE_STATS_TEXT);

    let mut stopped = sample_stats();
    stopped.status = "Stopped".into();
    stopped.error = "disk full".into();
    stopped.eta = -1;
    stopped.bytes.downloaded = 0;
    stopped.speed = SpeedStats::default();
    let text = format_stats(&stopped);
    assert!(text.contains("Status: Stopped: disk full\n"), "{text}");
    assert!(text.contains("Ratio: 0.00\n"), "{text}");
    assert!(text.contains("Download speed:     0 KiB/s\n"), "{text}");
    assert!(text.ends_with("ETA: \n"), "{text}");

    let mut verifying = sample_stats();
    verifying.status = "Verifying".into();
    verifying.pieces.checked = 199;
    assert!(format_stats(&verifying).contains("Progress: 99%\n"));

    let mut allocating = sample_stats();
    allocating.status = "Allocating".into();
    allocating.bytes.allocated = allocating.bytes.total / 10;
    assert!(format_stats(&allocating).contains("Progress: 10%\n"));

    let mut magnet = sample_stats();
    magnet.status = "Downloading Metadata".into();
    magnet.pieces = PieceStats::default();
    magnet.bytes.total = 0;
    let text = format_stats(&magnet);
    assert!(
        text.contains("Progress: 0%\nRatio: 1.50\nSize: 0 bytes\n"),
        "{text}"
    );
}

#[test]
fn human_session_stats_format() {
    assert_eq!(
        format_session_stats(&sample_session_stats()),
        SAMPLE_SESSION_TEXT
    );
    let mut never = sample_session_stats();
    never.block_list_recency = -1;
    never.uptime = 0;
    let text = format_session_stats(&never);
    assert!(
        text.starts_with(
            "Torrents: 3, Peers: 12, Uptime: 0s\nBlocklistRules: 1234, Updated: never\n"
        ),
        "{text}"
    );
}

#[test]
fn go_durations_and_sizes() {
    assert_eq!(go_duration(0), "0s");
    assert_eq!(go_duration(59), "59s");
    assert_eq!(go_duration(60), "1m0s");
    assert_eq!(go_duration(3600), "1h0m0s");
    assert_eq!(go_duration(3725), "1h2m5s");
    assert_eq!(go_duration(-1), "-1s");
    assert_eq!(go_duration(-61), "-1m1s");
    assert_eq!(size(1023), "1023 bytes");
    assert_eq!(size(1024), "1 KiB");
    assert_eq!(size((1 << 20) - 1), "1023 KiB");
    assert_eq!(size(5 << 20), "5 MiB");
}

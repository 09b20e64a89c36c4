//! A typed JSON-RPC client for rain's `Session.*` API (reference/rain-behaviour.md §3) over
//! jsonrpsee's HTTP client. Params always go out as a JSON object with rain's field names, or
//! are left out for the methods rain's own client calls without params.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use jsonrpsee::core::ClientError as RpcError;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::core::traits::ToRpcParams;
use jsonrpsee::http_client::transport::Error as TransportError;
use jsonrpsee::http_client::{HeaderMap, HeaderValue, HttpClient, HttpClientBuilder};
use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::value::RawValue;

use crate::rpc::types::{
    AddOptions, AddPeerRequest, AddTorrentRequest, AddTrackerRequest, AddUriRequest, Empty, File,
    FileStats, FileStatsResponse, FilesResponse, IdRequest, ListTorrentsResponse, MagnetResponse,
    MoveTorrentRequest, Peer, PeersResponse, RemoveTorrentRequest, SessionStats,
    SessionStatsResponse, Stats, StatsResponse, Torrent, TorrentFileResponse, TorrentResponse,
    Tracker, TrackersResponse, Webseed, WebseedsResponse,
};

/// rain's default RPC address.
pub const DEFAULT_URL: &str = "http://127.0.0.1:7246";

/// Largest request or reply accepted: a base64 `.torrent` well above `max-torrent-size`.
const MAX_BODY_SIZE: u32 = 128 * 1024 * 1024;

/// Stands in for "no timeout" (`--timeout 0`, as with Go's `http.Client`).
const NO_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Why a call failed, worded for the one-line `rain: …` message.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a JSON-RPC error; its message is shown as is.
    #[error("{}", server_message(*.code, .message))]
    Server {
        /// The JSON-RPC error code (1 torrent not found, 2 input error, -32000 other).
        code: i32,
        /// The server's message.
        message: String,
    },
    /// `--url` is not a usable http(s) URL.
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `--token` cannot be sent in an HTTP header.
    #[error("invalid token: it must be printable ASCII")]
    InvalidToken,
    /// No connection could be made, or it broke.
    #[error("cannot reach the rain server at {url}: {reason}")]
    Unreachable {
        /// The server URL.
        url: String,
        /// What went wrong, e.g. "connection refused".
        reason: String,
    },
    /// No answer within `--timeout`.
    #[error("the rain server at {url} did not answer within {}", humantime::format_duration(*.timeout))]
    Timeout {
        /// The server URL.
        url: String,
        /// The timeout that ran out.
        timeout: Duration,
    },
    /// The server answered with a non-success HTTP status.
    #[error("the rain server at {url} refused the request: HTTP {status}{}", status_hint(*.status))]
    Rejected {
        /// The server URL.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The reply was not the JSON-RPC answer expected.
    #[error("unexpected reply from the rain server at {url}: {reason}")]
    BadReply {
        /// The server URL.
        url: String,
        /// What was wrong with it.
        reason: String,
    },
}

impl ClientError {
    /// The JSON-RPC error code, when the server sent one.
    pub fn code(&self) -> Option<i32> {
        match self {
            ClientError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }
}

fn server_message(code: i32, message: &str) -> String {
    if !message.is_empty() {
        return message.to_owned();
    }
    match code {
        crate::rpc::ERROR_TORRENT_NOT_FOUND => "torrent not found".to_owned(),
        crate::rpc::ERROR_INPUT => "input error".to_owned(),
        _ => format!("server error {code}"),
    }
}

fn status_hint(status: u16) -> String {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .map(|r| format!(" {r}"))
        .unwrap_or_default();
    let hint = match status {
        401 | 403 => " (check --token or RAIN_RPC_TOKEN)",
        _ => "",
    };
    format!("{reason}{hint}")
}

/// Params already serialised to JSON (or absent), handed to jsonrpsee as they are.
struct RawParams(Option<Box<RawValue>>);

impl ToRpcParams for RawParams {
    fn to_rpc_params(self) -> Result<Option<Box<RawValue>>, serde_json::Error> {
        Ok(self.0)
    }
}

/// A connection to one rain RPC server.
pub struct RpcClient {
    inner: HttpClient,
    url: String,
    timeout: Duration,
}

impl fmt::Debug for RpcClient {
    // The inner client holds the Authorization header: keep it out of debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcClient")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RpcClient {
    /// A client for the server at `url` (`http://` or `https://`). Each call fails after
    /// `timeout` (zero: never). With a `token`, every request carries
    /// `Authorization: Bearer <token>`. Must be called inside a tokio runtime.
    pub fn new(url: &str, timeout: Duration, token: Option<&str>) -> Result<Self, ClientError> {
        let mut headers = HeaderMap::new();
        if let Some(token) = token {
            let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| ClientError::InvalidToken)?;
            value.set_sensitive(true);
            headers.insert(http::header::AUTHORIZATION, value);
        }
        let effective = if timeout.is_zero() {
            NO_TIMEOUT
        } else {
            timeout
        };
        let inner = HttpClientBuilder::default()
            .request_timeout(effective)
            .max_request_size(MAX_BODY_SIZE)
            .max_response_size(MAX_BODY_SIZE)
            .set_headers(headers)
            .build(url)
            .map_err(|e| ClientError::InvalidUrl {
                url: url.to_owned(),
                reason: invalid_url_reason(&e),
            })?;
        Ok(RpcClient {
            inner,
            url: url.to_owned(),
            timeout,
        })
    }

    /// The server URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Calls `method` with `params`, which must serialise to a JSON object.
    pub async fn request<P, R>(&self, method: &str, params: &P) -> Result<R, ClientError>
    where
        P: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let raw = serde_json::value::to_raw_value(params).map_err(|e| ClientError::BadReply {
            url: self.url.clone(),
            reason: format!("cannot encode params: {e}"),
        })?;
        debug_assert!(raw.get().starts_with('{'), "rain's params are JSON objects");
        self.send(method, Some(raw)).await
    }

    /// Calls `method` without params.
    pub async fn request_without_params<R: DeserializeOwned>(
        &self,
        method: &str,
    ) -> Result<R, ClientError> {
        self.send(method, None).await
    }

    async fn send<R: DeserializeOwned>(
        &self,
        method: &str,
        params: Option<Box<RawValue>>,
    ) -> Result<R, ClientError> {
        self.inner
            .request(method, RawParams(params))
            .await
            .map_err(|e| self.map_error(e))
    }

    fn map_error(&self, err: RpcError) -> ClientError {
        let url = self.url.clone();
        match err {
            RpcError::Call(obj) => ClientError::Server {
                code: obj.code(),
                message: obj.message().to_owned(),
            },
            RpcError::RequestTimeout => ClientError::Timeout {
                url,
                timeout: self.timeout,
            },
            RpcError::Transport(e) => match e.downcast_ref::<TransportError>() {
                Some(TransportError::Rejected { status_code }) => ClientError::Rejected {
                    url,
                    status: *status_code,
                },
                Some(TransportError::RequestTooLarge) => ClientError::BadReply {
                    url,
                    reason: "the request is too large".to_owned(),
                },
                _ => ClientError::Unreachable {
                    url,
                    reason: describe_transport(&*e),
                },
            },
            RpcError::ParseError(e) => ClientError::BadReply {
                url,
                reason: e.to_string(),
            },
            other => ClientError::BadReply {
                url,
                reason: other.to_string(),
            },
        }
    }

    /// `Session.Version`: the server's version string.
    pub async fn version(&self) -> Result<String, ClientError> {
        self.request_without_params("Session.Version").await
    }

    /// `Session.ListTorrents`.
    pub async fn list_torrents(&self) -> Result<Vec<Torrent>, ClientError> {
        let r: ListTorrentsResponse = self.request_without_params("Session.ListTorrents").await?;
        Ok(r.torrents)
    }

    /// `Session.AddTorrent`: uploads the bytes of a `.torrent` file (base64 on the wire).
    pub async fn add_torrent(
        &self,
        torrent: &[u8],
        options: AddOptions,
    ) -> Result<Torrent, ClientError> {
        let params = AddTorrentRequest {
            torrent: data_encoding::BASE64.encode(torrent),
            options,
        };
        let r: TorrentResponse = self.request("Session.AddTorrent", &params).await?;
        Ok(r.torrent)
    }

    /// `Session.AddURI`: a magnet link or an http(s) URL of a `.torrent`.
    pub async fn add_uri(&self, uri: &str, options: AddOptions) -> Result<Torrent, ClientError> {
        let params = AddUriRequest {
            uri: uri.to_owned(),
            options,
        };
        let r: TorrentResponse = self.request("Session.AddURI", &params).await?;
        Ok(r.torrent)
    }

    /// `Session.RemoveTorrent`.
    pub async fn remove_torrent(&self, id: &str, keep_data: bool) -> Result<(), ClientError> {
        let params = RemoveTorrentRequest {
            id: id.to_owned(),
            keep_data,
        };
        self.action("Session.RemoveTorrent", &params).await
    }

    /// `Session.CleanDatabase`.
    pub async fn clean_database(&self) -> Result<(), ClientError> {
        self.action("Session.CleanDatabase", &Empty {}).await
    }

    /// `Session.GetSessionStats`.
    pub async fn session_stats(&self) -> Result<SessionStats, ClientError> {
        let r: SessionStatsResponse = self.request("Session.GetSessionStats", &Empty {}).await?;
        Ok(r.stats)
    }

    /// `Session.GetTorrentStats`.
    pub async fn torrent_stats(&self, id: &str) -> Result<Stats, ClientError> {
        let r: StatsResponse = self.request("Session.GetTorrentStats", &id_req(id)).await?;
        Ok(r.stats)
    }

    /// `Session.GetTorrentTrackers`.
    pub async fn trackers(&self, id: &str) -> Result<Vec<Tracker>, ClientError> {
        let r: TrackersResponse = self
            .request("Session.GetTorrentTrackers", &id_req(id))
            .await?;
        Ok(r.trackers)
    }

    /// `Session.GetTorrentPeers`.
    pub async fn peers(&self, id: &str) -> Result<Vec<Peer>, ClientError> {
        let r: PeersResponse = self.request("Session.GetTorrentPeers", &id_req(id)).await?;
        Ok(r.peers)
    }

    /// `Session.GetTorrentWebseeds`.
    pub async fn webseeds(&self, id: &str) -> Result<Vec<Webseed>, ClientError> {
        let r: WebseedsResponse = self
            .request("Session.GetTorrentWebseeds", &id_req(id))
            .await?;
        Ok(r.webseeds)
    }

    /// `Session.GetTorrentFiles`.
    pub async fn files(&self, id: &str) -> Result<Vec<File>, ClientError> {
        let r: FilesResponse = self.request("Session.GetTorrentFiles", &id_req(id)).await?;
        Ok(r.files)
    }

    /// `Session.GetTorrentFileStats`.
    pub async fn file_stats(&self, id: &str) -> Result<Vec<FileStats>, ClientError> {
        let r: FileStatsResponse = self
            .request("Session.GetTorrentFileStats", &id_req(id))
            .await?;
        Ok(r.file_stats)
    }

    /// `Session.GetMagnet`.
    pub async fn magnet(&self, id: &str) -> Result<String, ClientError> {
        let r: MagnetResponse = self.request("Session.GetMagnet", &id_req(id)).await?;
        Ok(r.magnet)
    }

    /// `Session.GetTorrent`: the `.torrent` file's bytes, base64-decoded.
    pub async fn torrent_file(&self, id: &str) -> Result<Vec<u8>, ClientError> {
        let r: TorrentFileResponse = self.request("Session.GetTorrent", &id_req(id)).await?;
        data_encoding::BASE64
            .decode(r.torrent.as_bytes())
            .map_err(|e| ClientError::BadReply {
                url: self.url.clone(),
                reason: format!("the torrent is not valid base64: {e}"),
            })
    }

    /// `Session.StartTorrent`.
    pub async fn start(&self, id: &str) -> Result<(), ClientError> {
        self.action("Session.StartTorrent", &id_req(id)).await
    }

    /// `Session.StopTorrent`.
    pub async fn stop(&self, id: &str) -> Result<(), ClientError> {
        self.action("Session.StopTorrent", &id_req(id)).await
    }

    /// `Session.AnnounceTorrent`.
    pub async fn announce(&self, id: &str) -> Result<(), ClientError> {
        self.action("Session.AnnounceTorrent", &id_req(id)).await
    }

    /// `Session.VerifyTorrent`.
    pub async fn verify(&self, id: &str) -> Result<(), ClientError> {
        self.action("Session.VerifyTorrent", &id_req(id)).await
    }

    /// `Session.StartAllTorrents`.
    pub async fn start_all(&self) -> Result<(), ClientError> {
        self.action("Session.StartAllTorrents", &Empty {}).await
    }

    /// `Session.StopAllTorrents`.
    pub async fn stop_all(&self) -> Result<(), ClientError> {
        self.action("Session.StopAllTorrents", &Empty {}).await
    }

    /// `Session.AddPeer`: `addr` is `host:port`.
    pub async fn add_peer(&self, id: &str, addr: &str) -> Result<(), ClientError> {
        let params = AddPeerRequest {
            id: id.to_owned(),
            addr: addr.to_owned(),
        };
        self.action("Session.AddPeer", &params).await
    }

    /// `Session.AddTracker`.
    pub async fn add_tracker(&self, id: &str, url: &str) -> Result<(), ClientError> {
        let params = AddTrackerRequest {
            id: id.to_owned(),
            url: url.to_owned(),
        };
        self.action("Session.AddTracker", &params).await
    }

    /// `Session.MoveTorrent`: `target` is the other server's base URL.
    pub async fn move_torrent(&self, id: &str, target: &str) -> Result<(), ClientError> {
        let params = MoveTorrentRequest {
            id: id.to_owned(),
            target: target.to_owned(),
        };
        self.action("Session.MoveTorrent", &params).await
    }

    /// An action: its result (`{}` from rain) is not looked at.
    async fn action<P: Serialize + ?Sized>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<(), ClientError> {
        let _: IgnoredAny = self.request(method, params).await?;
        Ok(())
    }
}

fn id_req(id: &str) -> IdRequest {
    IdRequest { id: id.to_owned() }
}

fn invalid_url_reason(err: &RpcError) -> String {
    if let RpcError::Transport(e) = err
        && let Some(TransportError::Url(reason)) = e.downcast_ref::<TransportError>()
    {
        return reason.clone();
    }
    err.to_string()
}

/// The most specific cause of a transport failure: the innermost I/O error when there is one
/// (e.g. "connection refused"), otherwise the innermost error.
fn describe_transport(err: &(dyn StdError + 'static)) -> String {
    let mut current = Some(err);
    let mut innermost = err;
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return describe_io(io);
        }
        innermost = e;
        current = e.source();
    }
    lower_first(&innermost.to_string())
}

fn describe_io(err: &std::io::Error) -> String {
    let text = err.to_string();
    // "Connection refused (os error 111)" → "connection refused".
    let text = match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => &text[..i],
        _ => &text,
    };
    lower_first(text)
}

fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

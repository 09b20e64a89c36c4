//! Moving a torrent to another raind (reference §3.4), both halves:
//!
//! - [`send`]: `Session.MoveTorrent` on the source streams `POST <target>/move-torrent?id=…`
//!   (multipart: `id`, `metadata`, `data` tar) and, on 200, removes the torrent keeping its
//!   data; on failure the torrent is put back, stopped.
//! - [`MoveLayer`]: the `/move-torrent` route on the target, behind the same
//!   [`GuardLayer`](super::GuardLayer) checks as JSON-RPC (Host, token, and no browser
//!   requests). The tar is extracted while it arrives, never held in memory; its size is
//!   bounded by the torrent's length plus [`MOVE_DATA_SLACK`].

use std::collections::HashSet;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Method, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::{Body, Bytes, Frame};
use jsonrpsee::core::BoxError;
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};
use rain_runtime::migrate::{ExtractError, MoveExport, MoveSpec, extract_data_tar, write_data_tar};
use rain_runtime::session::{Session, SessionError};
use tokio::sync::mpsc;

pub use rain_runtime::migrate::MOVE_DATA_SLACK;

/// The route.
pub const MOVE_TORRENT_PATH: &str = "/move-torrent";
/// Largest `id` part.
const MAX_ID_PART: u64 = 1024;
/// Connecting to the target.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest error body read back from the target.
const MAX_REPLY: usize = 64 * 1024;
/// Tar chunks in flight between the network and the disk.
const CHUNKS_IN_FLIGHT: usize = 16;
/// Size of the chunks the source sends.
const CHUNK: usize = 64 * 1024;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Ids this process is sending away right now: moving a torrent to its own server would
/// otherwise delete the data being sent.
static MOVING_OUT: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Marks an id as moving out until dropped.
struct MovingOut(String);

impl MovingOut {
    fn start(id: &str) -> Result<Self, SessionError> {
        let mut ids = MOVING_OUT.lock().map_err(|_| other("poisoned".into()))?;
        if ids.iter().any(|i| i == id) {
            return Err(other(format!("torrent {id} is already being moved")));
        }
        ids.push(id.to_owned());
        Ok(MovingOut(id.to_owned()))
    }

    fn contains(id: &str) -> bool {
        MOVING_OUT
            .lock()
            .is_ok_and(|ids| ids.iter().any(|i| i == id))
    }
}

impl Drop for MovingOut {
    fn drop(&mut self) {
        if let Ok(mut ids) = MOVING_OUT.lock() {
            ids.retain(|i| *i != self.0);
        }
    }
}

// ------------------------------------------------------------------ target

/// Serves `/move-torrent`; every other path goes to the JSON-RPC service inside.
#[derive(Debug, Clone)]
pub struct MoveLayer {
    session: Arc<Session>,
    /// Largest `metadata` part: a base64 info dictionary of up to `max-torrent-size`.
    max_metadata: u64,
    file_permissions: u32,
    owns_root: bool,
    /// Ids being moved in right now.
    busy: Arc<Mutex<HashSet<String>>>,
}

impl MoveLayer {
    /// The route for `session`; `max_metadata` bounds the spec JSON.
    pub fn new(
        session: Arc<Session>,
        max_metadata: u64,
        file_permissions: u32,
        data_dir_includes_torrent_id: bool,
    ) -> Self {
        MoveLayer {
            session,
            max_metadata,
            file_permissions,
            owns_root: data_dir_includes_torrent_id,
            busy: Arc::default(),
        }
    }
}

impl<S> tower::Layer<S> for MoveLayer {
    type Service = MoveService<S>;

    fn layer(&self, inner: S) -> MoveService<S> {
        MoveService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`MoveLayer`] wraps around the RPC handler.
#[derive(Debug, Clone)]
pub struct MoveService<S> {
    inner: S,
    layer: MoveLayer,
}

impl<S, B> tower::Service<HttpRequest<B>> for MoveService<S>
where
    S: tower::Service<HttpRequest<B>, Response = HttpResponse>,
    S::Error: Into<BoxError> + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = BoxFuture<Result<HttpResponse, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: HttpRequest<B>) -> Self::Future {
        if request.uri().path() != MOVE_TORRENT_PATH {
            let fut = self.inner.call(request);
            return Box::pin(async move { fut.await.map_err(Into::into) });
        }
        let layer = self.layer.clone();
        Box::pin(async move {
            let (status, text) = match layer.receive(request).await {
                Ok(id) => {
                    tracing::info!(torrent = %id, "torrent moved in");
                    (StatusCode::OK, String::new())
                }
                Err((status, text)) => {
                    tracing::warn!(%status, "move-torrent refused: {text}");
                    (status, text)
                }
            };
            Ok(reply(status, text))
        })
    }
}

fn reply(status: StatusCode, text: String) -> HttpResponse {
    http::Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(HttpBody::from(text))
        .unwrap_or_else(|_| http::Response::new(HttpBody::empty()))
}

type Refusal = (StatusCode, String);

fn bad(what: impl std::fmt::Display) -> Refusal {
    (StatusCode::BAD_REQUEST, what.to_string())
}

fn failed(what: impl std::fmt::Display) -> Refusal {
    (StatusCode::INTERNAL_SERVER_ERROR, what.to_string())
}

/// Removes `id` from the busy set when dropped.
struct BusyGuard(Arc<Mutex<HashSet<String>>>, String);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        if let Ok(mut set) = self.0.lock() {
            set.remove(&self.1);
        }
    }
}

async fn next_field<'r>(
    form: &mut multer::Multipart<'r>,
    name: &str,
) -> Result<multer::Field<'r>, Refusal> {
    let field = form
        .next_field()
        .await
        .map_err(bad)?
        .ok_or_else(|| bad(format!("missing form part {name:?}")))?;
    if field.name() != Some(name) {
        return Err(bad(format!(
            "expected form part {name:?}, got {:?}",
            field.name().unwrap_or_default()
        )));
    }
    Ok(field)
}

impl MoveLayer {
    async fn receive<B>(&self, request: HttpRequest<B>) -> Result<String, Refusal>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        if request.method() != Method::POST {
            return Err((StatusCode::METHOD_NOT_ALLOWED, "POST only".into()));
        }
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let boundary = multer::parse_boundary(content_type).map_err(bad)?;
        let query_id = request.uri().query().and_then(form_id);
        let constraints = multer::Constraints::new()
            .allowed_fields(vec!["id", "metadata", "data"])
            .size_limit(
                multer::SizeLimit::new()
                    .for_field("id", MAX_ID_PART)
                    .for_field("metadata", self.max_metadata),
            );
        let stream = request.into_body().into_data_stream();
        let mut form = multer::Multipart::with_constraints(stream, boundary, constraints);

        let id = next_field(&mut form, "id")
            .await?
            .text()
            .await
            .map_err(bad)?;
        if query_id.as_ref().is_some_and(|q| *q != id) {
            return Err(bad("the id in the URL and in the form differ"));
        }
        let metadata = next_field(&mut form, "metadata")
            .await?
            .bytes()
            .await
            .map_err(bad)?;
        let spec: MoveSpec =
            serde_json::from_slice(&metadata).map_err(|e| bad(format!("invalid metadata: {e}")))?;
        let limit = self
            .session
            .move_data_limit(&spec)
            .map_err(|e| bad(format!("invalid metadata: {e}")))?;

        if MovingOut::contains(&id) {
            return Err(failed(format!(
                "torrent {id} is being moved out of this server"
            )));
        }
        let _busy = {
            let mut set = self.busy.lock().map_err(|_| failed("poisoned"))?;
            if !set.insert(id.clone()) {
                return Err(failed(format!("torrent {id} is already being moved in")));
            }
            BusyGuard(self.busy.clone(), id.clone())
        };
        let root = self
            .session
            .prepare_move_in(&id)
            .await
            .map_err(|e| match e {
                SessionError::InvalidId(_) => bad(e),
                e => failed(e),
            })?;

        let mut data = next_field(&mut form, "data").await?;
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHUNKS_IN_FLIGHT);
        let perms = self.file_permissions;
        let dir = root.clone();
        let extract = tokio::task::spawn_blocking(move || {
            let mut created = Vec::new();
            let reader = ChannelReader {
                rx,
                chunk: Bytes::new(),
            };
            let r = extract_data_tar(reader, &dir, perms, &mut created);
            (r, created)
        });
        let mut total = 0u64;
        let mut upload: Result<(), Refusal> = Ok(());
        loop {
            match data.chunk().await {
                Ok(Some(chunk)) => {
                    total += chunk.len() as u64;
                    if total > limit {
                        upload = Err((
                            StatusCode::PAYLOAD_TOO_LARGE,
                            format!("data is larger than {limit} bytes"),
                        ));
                        break;
                    }
                    if tx.send(Ok(chunk)).await.is_err() {
                        break; // The extraction stopped; its error says why.
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    upload = Err(bad(e));
                    break;
                }
            }
        }
        if upload.is_err() {
            let _ = tx.send(Err(io::Error::other("upload failed"))).await;
        }
        drop(tx);
        let (extracted, created) = extract.await.map_err(failed)?;
        let result = upload
            .and_then(|()| {
                extracted.map_err(|e| match e {
                    ExtractError::Io(_) => failed(e),
                    e => bad(e),
                })
            })
            .map(|()| data);
        let result = match result {
            Ok(data) => {
                drop(data);
                match form.next_field().await {
                    Ok(None) => Ok(()),
                    Ok(Some(f)) => Err(bad(format!(
                        "unexpected form part {:?}",
                        f.name().unwrap_or_default()
                    ))),
                    Err(e) => Err(bad(e)),
                }
            }
            Err(e) => Err(e),
        };
        let result = match result {
            Ok(()) => self.session.import_moved(&id, &spec).await.map_err(failed),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            let owns = self.owns_root;
            let _ = tokio::task::spawn_blocking(move || cleanup(&root, &created, owns)).await;
            return Err(e);
        }
        Ok(id)
    }
}

/// `id` from a query string.
fn form_id(query: &str) -> Option<String> {
    form_urlencoded_pairs(query)
        .into_iter()
        .find_map(|(k, v)| (k == "id").then_some(v))
}

fn form_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent_decode(k)?, percent_decode(v)?))
        })
        .collect()
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Deletes what a failed move-in wrote: the torrent's own directory, or the files created
/// in a shared data directory.
fn cleanup(root: &Path, created: &[PathBuf], owns_root: bool) {
    if owns_root {
        let _ = std::fs::remove_dir_all(root);
    } else {
        for f in created {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// A blocking reader over the chunks the upload delivers.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    chunk: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(c)) => self.chunk = c,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

// ------------------------------------------------------------------ source

/// `Session.MoveTorrent`: sends torrent `id` to the raind at `target` (a base URL with
/// `http://`), then removes it here keeping its data. `token` is sent as the bearer token
/// (the target's `rpc-token`; this server's own is used). On failure the torrent stays here,
/// stopped.
pub async fn send(
    session: &Session,
    id: &str,
    target: &str,
    token: Option<&str>,
) -> Result<(), SessionError> {
    let url = format!(
        "{}{MOVE_TORRENT_PATH}?id={}",
        target.trim_end_matches('/'),
        percent_encode(id)
    );
    let uri: http::Uri = url
        .parse()
        .map_err(|_| other(format!("invalid target URL {target:?}")))?;
    if uri.scheme_str() != Some("http") {
        return Err(other(format!(
            "invalid target URL {target:?}: only http:// is supported"
        )));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| other(format!("invalid target URL {target:?}: no host")))?
        .clone();
    session
        .get(id)
        .ok_or_else(|| SessionError::NotFound(id.to_owned()))?;
    let _moving = MovingOut::start(id)?;
    let export = session.export_for_move(id).await;
    let export = match export {
        Ok(e) => e,
        Err(e) => {
            let _ = session.abort_move(id).await;
            return Err(e);
        }
    };
    match post(&export, id, &uri, &authority, token).await {
        Ok(()) => session.remove(id, true).await,
        Err(e) => {
            if let Err(again) = session.abort_move(id).await {
                tracing::error!(torrent = %id, "cannot restore the torrent after a failed move: {again}");
            }
            Err(other(e))
        }
    }
}

fn other(msg: String) -> SessionError {
    SessionError::Io(io::Error::other(msg))
}

/// A boundary that no file content will contain by chance.
fn boundary() -> String {
    let state = std::collections::hash_map::RandomState::new();
    let (mut a, mut b) = (state.build_hasher(), state.build_hasher());
    a.write_u8(1);
    b.write_u8(2);
    format!("rain-move-{:016x}{:016x}", a.finish(), b.finish())
}

async fn post(
    export: &MoveExport,
    id: &str,
    uri: &http::Uri,
    authority: &http::uri::Authority,
    token: Option<&str>,
) -> Result<(), String> {
    let metadata = serde_json::to_string(&export.spec).map_err(|e| e.to_string())?;
    let b = boundary();
    let prefix = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"id\"\r\n\r\n{id}\r\n\
         --{b}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\
         Content-Type: application/json\r\n\r\n{metadata}\r\n\
         --{b}\r\nContent-Disposition: form-data; name=\"data\"; filename=\"data.tar\"\r\n\
         Content-Type: application/x-tar\r\n\r\n"
    );
    let trailer = format!("\r\n--{b}--\r\n");

    let port = authority.port_u16().unwrap_or(80);
    let stream = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((authority.host().trim_matches(['[', ']']), port)),
    )
    .await
    .map_err(|_| format!("connecting to {authority}: timed out"))?
    .map_err(|e| format!("connecting to {authority}: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("{authority}: {e}"))?;
    let conn = tokio::spawn(conn);

    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHUNKS_IN_FLIGHT);
    let (root, files) = (export.root.clone(), export.files.clone());
    let writer = tokio::task::spawn_blocking(move || {
        if tx.blocking_send(Ok(Bytes::from(prefix))).is_err() {
            return;
        }
        let out = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        match write_data_tar(out, &root, &files).and_then(|mut w| w.flush()) {
            Ok(()) => {
                let _ = tx.blocking_send(Ok(Bytes::from(trailer)));
            }
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
            }
        }
    });
    let path = uri
        .path_and_query()
        .map_or(MOVE_TORRENT_PATH, http::uri::PathAndQuery::as_str);
    let mut request = http::Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::HOST, authority.as_str())
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={b}"),
        );
    if let Some(t) = token.filter(|t| !t.is_empty()) {
        request = request.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let request = request
        .body(ChannelBody { rx })
        .map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await;
    writer.abort();
    let response = response.map_err(|e| format!("{authority}: {e}"))?;
    let status = response.status();
    let body = http_body_util::Limited::new(response.into_body(), MAX_REPLY)
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_owned())
        .unwrap_or_default();
    conn.abort();
    if status != StatusCode::OK {
        return Err(format!(
            "move-torrent at {authority}: HTTP {status}: {body}"
        ));
    }
    Ok(())
}

/// A blocking writer sending full chunks to the request body.
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the target stopped reading"))
    }
}

/// The request body: whatever the writer sends.
struct ChannelBody {
    rx: mpsc::Receiver<io::Result<Bytes>>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.rx.poll_recv(cx).map(|c| c.map(|r| r.map(Frame::data)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_survive_the_query_string() {
        for id in ["abc", "a b/c?d&e=f%", "ünï"] {
            let q = format!("x=1&id={}", percent_encode(id));
            assert_eq!(form_id(&q).as_deref(), Some(id));
        }
        assert_eq!(form_id("other=1"), None);
    }

    #[test]
    fn the_channel_reader_ends_at_close_and_fails_on_error() {
        let (tx, rx) = mpsc::channel(4);
        tx.try_send(Ok(Bytes::from_static(b"abc"))).unwrap();
        tx.try_send(Ok(Bytes::from_static(b"de"))).unwrap();
        drop(tx);
        let mut r = ChannelReader {
            rx,
            chunk: Bytes::new(),
        };
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abcde");
        let (tx, rx) = mpsc::channel(4);
        tx.try_send(Err(io::Error::other("cut"))).unwrap();
        let mut r = ChannelReader {
            rx,
            chunk: Bytes::new(),
        };
        assert!(r.read(&mut [0; 4]).is_err());
    }
}

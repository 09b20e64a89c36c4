//! A BEP 19 webseed: an HTTP file server with `Range` support that can also misbehave (answer
//! 200 instead of 206, 404, a short body, corrupt data, a `Content-Range` other than the one
//! asked for, or a body trickled slower than any read timeout). The simulation runs it on the host
//! `web` of a [`Scenario`](crate::Scenario) with a webseed; tests/tests/webseed.rs runs the
//! same server on 127.0.0.1.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rain_runtime::net::Listener;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::http_server::{self, Request};

/// The TCP port of the simulated webseed host.
pub const WEB_PORT: u16 = 80;
/// The path below which the simulated webseed serves the payload.
pub const FILES_PATH: &str = "/files/";
/// [`WebMode::Trickle`]'s pause between two body bytes.
pub const TRICKLE_PAUSE: Duration = Duration::from_secs(2);

/// The `url-list` entry of the simulated webseed: a base URL ending in `/`, so the client
/// appends the torrent name (and, for a multi-file torrent, each file's path).
pub fn webseed_url() -> String {
    format!("http://web:{WEB_PORT}{FILES_PATH}")
}

/// How the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WebMode {
    /// `206` with the requested range (`200` with the whole file without `Range`).
    Partial,
    /// `200` with the whole file, whatever the `Range`.
    Full,
    /// `404` for everything.
    NotFound,
    /// `206` with a correct `Content-Range` but only half the bytes (and a matching
    /// `Content-Length`).
    Short,
    /// `206` with the first byte of the body flipped.
    Corrupt,
    /// `206` with a `Content-Range` (and the body of that range) starting one byte after the
    /// requested start (one byte before, when the request starts at the last byte).
    BadRange,
    /// `206` with the right headers, then the body one byte per [`TRICKLE_PAUSE`] (a
    /// slowloris server that never quite stops).
    Trickle,
}

/// What the server has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebCounters {
    /// Requests answered.
    pub requests: u64,
    /// Requests that carried `Range`.
    pub ranged: u64,
    /// Body bytes sent.
    pub bytes: u64,
}

#[derive(Debug)]
struct State {
    mode: WebMode,
    rate: Option<u64>,
    counters: WebCounters,
}

/// The files (URL path → bytes) and how to serve them; share it in an `Arc` between the
/// accept loop and whoever changes the mode or reads the counters.
#[derive(Debug)]
pub struct WebServer {
    files: BTreeMap<String, Vec<u8>>,
    state: Mutex<State>,
}

impl WebServer {
    /// A server of `files` (keys are URL paths such as `/files/a.bin`) answering as `mode`.
    pub fn new(files: BTreeMap<String, Vec<u8>>, mode: WebMode) -> Self {
        WebServer {
            files,
            state: Mutex::new(State {
                mode,
                rate: None,
                counters: WebCounters::default(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes how it answers from the next request on.
    pub fn set_mode(&self, mode: WebMode) {
        self.state().mode = mode;
    }

    /// Limits each response body to `rate` bytes per second (`None`: as fast as possible).
    pub fn set_rate(&self, rate: Option<u64>) {
        self.state().rate = rate;
    }

    /// The counters so far.
    pub fn counters(&self) -> WebCounters {
        self.state().counters
    }

    /// Accepts connections on `listener` and serves each on its own task, until the runtime
    /// (or the simulated host) ends.
    pub async fn serve<L>(self: std::sync::Arc<Self>, mut listener: L)
    where
        L: Listener,
        L::Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                // Out of descriptors, say: wait rather than spin.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            };
            let me = self.clone();
            tokio::spawn(async move {
                let _ = me.serve_connection(sock).await;
            });
        }
    }

    /// Answers the one request of a connection.
    pub async fn serve_connection<S>(&self, mut sock: S) -> std::io::Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let Some(req) = http_server::read_request(&mut sock).await? else {
            return Ok(());
        };
        let (mode, rate) = {
            let mut s = self.state();
            s.counters.requests += 1;
            s.counters.ranged += u64::from(req.range.is_some());
            (s.mode, s.rate)
        };
        let (status, headers, body) = self.answer(&req, mode);
        if mode == WebMode::Trickle && status.starts_with("206") {
            return self.trickle(&mut sock, status, &headers, &body).await;
        }
        http_server::respond(&mut sock, status, &headers, &body, rate, |n| {
            self.state().counters.bytes += n as u64;
        })
        .await
    }

    /// Writes the head at once and then `body` one byte per [`TRICKLE_PAUSE`].
    async fn trickle<S>(
        &self,
        sock: &mut S,
        status: &str,
        headers: &str,
        body: &[u8],
    ) -> std::io::Result<()>
    where
        S: AsyncWrite + Unpin,
    {
        let head = format!(
            "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        sock.write_all(head.as_bytes()).await?;
        sock.flush().await?;
        for byte in body.chunks(1) {
            sock.write_all(byte).await?;
            sock.flush().await?;
            self.state().counters.bytes += 1;
            tokio::time::sleep(TRICKLE_PAUSE).await;
        }
        sock.shutdown().await
    }

    /// Status line, extra headers and body for `req` in `mode`.
    fn answer(&self, req: &Request, mode: WebMode) -> (&'static str, String, Vec<u8>) {
        let Some(file) = self
            .files
            .get(&req.path)
            .filter(|_| mode != WebMode::NotFound)
        else {
            return ("404 Not Found", String::new(), Vec::new());
        };
        let range = req
            .range
            .as_deref()
            .and_then(|r| http_server::parse_range(r, file.len() as u64));
        let (Some((a, b)), false) = (range, mode == WebMode::Full) else {
            return ("200 OK", String::new(), file.clone());
        };
        let len = file.len() as u64;
        let (a, b) = if mode == WebMode::BadRange {
            // Another range of the same length (clipped at the end of the file).
            let start = if a + 1 < len {
                a + 1
            } else {
                a.saturating_sub(1)
            };
            (start, (start + (b - a)).min(len - 1))
        } else {
            (a, b)
        };
        let mut body = file[a as usize..=b as usize].to_vec();
        match mode {
            WebMode::Short => body.truncate(body.len() / 2),
            WebMode::Corrupt => body[0] ^= 0xff,
            _ => {}
        }
        let headers = format!("Content-Range: bytes {a}-{b}/{}\r\n", file.len());
        ("206 Partial Content", headers, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The response to `head`: (head as text, body bytes).
    async fn get(server: &WebServer, head: &str) -> (String, Vec<u8>) {
        let (mut client, conn) = tokio::io::duplex(1 << 16);
        client.write_all(head.as_bytes()).await.unwrap();
        server.serve_connection(conn).await.unwrap();
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.unwrap();
        let end = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let body = out.split_off(end);
        (String::from_utf8(out).unwrap(), body)
    }

    #[tokio::test]
    async fn every_mode_answers_as_named() {
        let files = BTreeMap::from([("/files/a b".to_owned(), b"0123456789".to_vec())]);
        let s = WebServer::new(files, WebMode::Partial);
        let ranged = "GET /files/a%20b HTTP/1.1\r\nRange: bytes=2-5\r\n\r\n";
        let (h, b) = get(&s, ranged).await;
        assert!(
            h.starts_with("HTTP/1.1 206") && h.contains("bytes 2-5/10"),
            "{h}"
        );
        assert_eq!(b, b"2345");
        s.set_mode(WebMode::Full);
        let (h, b) = get(&s, ranged).await;
        assert!(h.starts_with("HTTP/1.1 200"), "{h}");
        assert_eq!(b, b"0123456789");
        s.set_mode(WebMode::Short);
        let (h, b) = get(&s, ranged).await;
        assert!(
            h.contains("bytes 2-5/10") && h.contains("Content-Length: 2"),
            "{h}"
        );
        assert_eq!(b, b"23");
        s.set_mode(WebMode::Corrupt);
        assert_eq!(get(&s, ranged).await.1, [b'2' ^ 0xff, b'3', b'4', b'5']);
        s.set_mode(WebMode::BadRange);
        let (h, b) = get(&s, ranged).await;
        assert!(
            h.starts_with("HTTP/1.1 206") && h.contains("bytes 3-6/10"),
            "{h}"
        );
        assert_eq!(b, b"3456");
        let (h, b) = get(&s, "GET /files/a%20b HTTP/1.1\r\nRange: bytes=9-9\r\n\r\n").await;
        assert!(h.contains("bytes 8-8/10"), "{h}");
        assert_eq!(b, b"8");
        s.set_mode(WebMode::NotFound);
        assert!(get(&s, ranged).await.0.starts_with("HTTP/1.1 404"));
        s.set_mode(WebMode::Partial);
        let (h, b) = get(&s, "GET /files/a%20b HTTP/1.1\r\n\r\n").await;
        assert!(h.starts_with("HTTP/1.1 200"), "{h}");
        assert_eq!(b, b"0123456789");
        assert!(
            get(&s, "GET /files/other HTTP/1.1\r\n\r\n")
                .await
                .0
                .starts_with("HTTP/1.1 404")
        );
        let c = s.counters();
        assert_eq!((c.requests, c.ranged), (9, 7));
        assert_eq!(c.bytes, 4 + 10 + 2 + 4 + 4 + 1 + 10);
    }

    /// The head comes at once, then one byte per pause.
    #[tokio::test(start_paused = true)]
    async fn trickle_sends_one_byte_per_pause() {
        let files = BTreeMap::from([("/f".to_owned(), b"0123456789".to_vec())]);
        let s = std::sync::Arc::new(WebServer::new(files, WebMode::Trickle));
        let (mut client, conn) = tokio::io::duplex(1 << 16);
        client
            .write_all(b"GET /f HTTP/1.1\r\nRange: bytes=2-5\r\n\r\n")
            .await
            .unwrap();
        let server = s.clone();
        let task = tokio::spawn(async move { server.serve_connection(conn).await });
        let start = tokio::time::Instant::now();
        let mut out = Vec::new();
        let mut buf = [0u8; 256];
        while !out.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = client.read(&mut buf).await.unwrap();
            out.extend_from_slice(&buf[..n]);
        }
        let head = String::from_utf8_lossy(&out).into_owned();
        assert!(
            head.starts_with("HTTP/1.1 206") && head.contains("bytes 2-5/10"),
            "{head}"
        );
        client.read_to_end(&mut out).await.unwrap();
        let end = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert_eq!(&out[end..], b"2345");
        assert_eq!(start.elapsed(), TRICKLE_PAUSE * 4);
        task.await.unwrap().unwrap();
        assert_eq!(s.counters().bytes, 4);
    }
}

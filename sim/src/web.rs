//! A BEP 19 webseed: an HTTP file server with `Range` support that can also misbehave (answer
//! 200 instead of 206, 404, a short body, or corrupt data). The simulation runs it on the host
//! `web` of a [`Scenario`](crate::Scenario) with a webseed; tests/tests/webseed.rs runs the
//! same server on 127.0.0.1.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use rain_runtime::net::Listener;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::http_server::{self, Request};

/// The TCP port of the simulated webseed host.
pub const WEB_PORT: u16 = 80;
/// The path below which the simulated webseed serves the payload.
pub const FILES_PATH: &str = "/files/";

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
        http_server::respond(&mut sock, status, &headers, &body, rate, |n| {
            self.state().counters.bytes += n as u64;
        })
        .await
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
        assert_eq!((c.requests, c.ranged), (7, 5));
        assert_eq!(c.bytes, 4 + 10 + 2 + 4 + 10);
    }
}

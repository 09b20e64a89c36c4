//! The smallest HTTP/1.1 server the test hosts need (the webseed file server of [`crate::web`]
//! and the HTTP face of [`crate::tracker`]): one request per connection, `Connection: close`.
//! It is generic over the stream, so the same code serves turmoil's simulated TCP and real
//! sockets on 127.0.0.1 (tests/tests/webseed.rs).

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest request head read; a longer one closes the connection unanswered.
pub const MAX_HEAD: usize = 16 * 1024;
/// Bodies are written in chunks of this size (the unit of rate limiting and counting).
pub const CHUNK: usize = 16 * 1024;

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The path, percent-decoded, without the query (`/files/a b.bin`).
    pub path: String,
    /// The raw query after `?` (empty without one).
    pub query: String,
    /// The `Range` header's value, if sent.
    pub range: Option<String>,
}

impl Request {
    /// Every value of query parameter `key`, in order, percent-decoded to bytes (binary
    /// info-hashes; a scrape repeats `info_hash`).
    pub fn params<'a>(&'a self, key: &'a str) -> impl Iterator<Item = Vec<u8>> + 'a {
        self.query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .filter(move |(k, _)| *k == key)
            .map(|(_, v)| percent_decode(v))
    }

    /// The first value of query parameter `key`.
    pub fn param(&self, key: &str) -> Option<Vec<u8>> {
        self.params(key).next()
    }

    /// Query parameter `key` parsed as a number.
    pub fn number<T: std::str::FromStr>(&self, key: &str) -> Option<T> {
        String::from_utf8(self.param(key)?).ok()?.parse().ok()
    }
}

/// Reads one request head; `None` when the peer closed first or the head is too long.
pub async fn read_request<S: AsyncRead + Unpin>(sock: &mut S) -> io::Result<Option<Request>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = sock.read(&mut buf).await?;
        if n == 0 || head.len() > MAX_HEAD {
            return Ok(None);
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let mut lines = head.split("\r\n");
    let target = lines.next().unwrap_or("").split(' ').nth(1).unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let range = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("range"))
        .map(|(_, v)| v.trim().to_owned());
    Ok(Some(Request {
        path: String::from_utf8_lossy(&percent_decode(path)).into_owned(),
        query: query.to_owned(),
        range,
    }))
}

/// Writes a response (`status` like `"206 Partial Content"`, `headers` as `"Name: v\r\n"`
/// lines) and closes the write side. The body goes out in [`CHUNK`]s, each reported to
/// `sent`, at most `rate` bytes per second if set.
pub async fn respond<S: AsyncWrite + Unpin>(
    sock: &mut S,
    status: &str,
    headers: &str,
    body: &[u8],
    rate: Option<u64>,
    mut sent: impl FnMut(usize),
) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).await?;
    for chunk in body.chunks(CHUNK) {
        sock.write_all(chunk).await?;
        sent(chunk.len());
        if let Some(r) = rate {
            let nanos = chunk.len() as u64 * 1_000_000_000 / r.max(1);
            tokio::time::sleep(Duration::from_nanos(nanos)).await;
        }
    }
    sock.shutdown().await
}

/// `%xx` escapes decoded (`+` left alone: paths and BEP 3 queries don't use it for spaces).
pub fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// `bytes=a-b` → `(a, b)` inclusive, `b` clipped to `len - 1`; `None` when unsatisfiable or
/// not of that form (suffix and multi-range requests are not served).
pub fn parse_range(v: &str, len: u64) -> Option<(u64, u64)> {
    let (a, b) = v.trim().strip_prefix("bytes=")?.split_once('-')?;
    let a: u64 = a.trim().parse().ok()?;
    let b: u64 = b.trim().parse().ok()?;
    (a <= b && a < len).then_some((a, b.min(len - 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_keeps_bad_escapes() {
        assert_eq!(percent_decode("a%20b%zz%4"), b"a b%zz%4");
        assert_eq!(percent_decode("%00%ff"), vec![0, 0xff]);
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-200", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=100-200", 100), None);
        assert_eq!(parse_range("bytes=5-4", 100), None);
        assert_eq!(parse_range("bytes=-5", 100), None);
    }

    #[tokio::test]
    async fn request_head_and_query() {
        let (mut a, mut b) = tokio::io::duplex(4096);
        a.write_all(
            b"GET /announce?info_hash=%01%02&port=6881&info_hash=%03 HTTP/1.1\r\nrange: bytes=1-2\r\n\r\n",
        )
        .await
        .unwrap();
        let r = read_request(&mut b).await.unwrap().unwrap();
        assert_eq!(r.path, "/announce");
        assert_eq!(r.param("info_hash"), Some(vec![1, 2]));
        assert_eq!(
            r.params("info_hash").collect::<Vec<_>>(),
            [vec![1, 2], vec![3]]
        );
        assert_eq!(r.number::<u16>("port"), Some(6881));
        assert_eq!(r.number::<u16>("left"), None);
        assert_eq!(r.range.as_deref(), Some("bytes=1-2"));
    }
}

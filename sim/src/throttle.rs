//! Bandwidth faults: a host's uplink as one token bucket in simulated time, shared by every TCP
//! stream the host opens or accepts and charged on each write (turmoil itself models latency
//! and loss, not bandwidth).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The least burst an uplink allows, and the most a stream reserves at once: one block.
const QUANTUM: f64 = 16.0 * 1024.0;
/// The shortest wait for budget. Simulated time stands still while a task runs, so a wait
/// rounded down to nothing would spin for ever.
const MIN_WAIT: Duration = Duration::from_millis(1);

/// A host's upload bandwidth.
///
/// Shared fairly: a write reserves at most [`QUANTUM`] bytes and may take the bucket into
/// debt, waiting until the debt is paid, so writers queue in turn (a writer that always
/// wins the race for fresh tokens would starve the others, which no real link does).
#[derive(Debug)]
pub struct Uplink {
    rate: f64,
    burst: f64,
    /// Tokens (bytes; negative while in debt) and when they were last topped up.
    state: Mutex<(f64, Option<Instant>)>,
}

impl Uplink {
    /// An uplink of `bytes_per_sec`, bursting a twentieth of a second's worth.
    pub fn new(bytes_per_sec: u64) -> Arc<Self> {
        let rate = bytes_per_sec.max(1) as f64;
        let burst = (rate / 20.0).max(QUANTUM);
        Arc::new(Uplink {
            rate,
            burst,
            state: Mutex::new((burst, None)),
        })
    }

    /// Reserves `bytes` (at most [`QUANTUM`]) and returns how long to wait before sending
    /// them.
    fn reserve(&self, bytes: usize) -> Duration {
        let now = Instant::now();
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let elapsed = s.1.map_or(0.0, |t| now.duration_since(t).as_secs_f64());
        s.0 = (s.0 + elapsed * self.rate).min(self.burst) - bytes as f64;
        s.1 = Some(now);
        if s.0 >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-s.0 / self.rate).max(MIN_WAIT)
        }
    }
}

/// A simulated TCP stream, its writes limited by its host's [`Uplink`] if it has one.
pub struct SimStream {
    inner: turmoil::net::TcpStream,
    uplink: Option<Arc<Uplink>>,
    /// Bytes reserved on the uplink and not yet written.
    paid: usize,
    wait: Option<Pin<Box<Sleep>>>,
}

impl std::fmt::Debug for SimStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimStream")
            .field("peer", &self.inner.peer_addr().ok())
            .field("uplink", &self.uplink)
            .finish_non_exhaustive()
    }
}

impl SimStream {
    /// Wraps `inner`, charging its writes to `uplink`.
    pub fn new(inner: turmoil::net::TcpStream, uplink: Option<Arc<Uplink>>) -> Self {
        SimStream {
            inner,
            uplink,
            paid: 0,
            wait: None,
        }
    }
}

impl AsyncRead for SimStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let Some(uplink) = this.uplink.clone() else {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        };
        if let Some(wait) = this.wait.as_mut() {
            ready!(wait.as_mut().poll(cx));
            this.wait = None;
        }
        if this.paid == 0 && !buf.is_empty() {
            let n = buf.len().min(QUANTUM as usize);
            this.paid = n;
            let wait = uplink.reserve(n);
            if !wait.is_zero() {
                let mut sleep = Box::pin(tokio::time::sleep(wait));
                if sleep.as_mut().poll(cx).is_pending() {
                    this.wait = Some(sleep);
                    return Poll::Pending;
                }
            }
        }
        let n = this.paid.min(buf.len());
        let r = Pin::new(&mut this.inner).poll_write(cx, &buf[..n]);
        if let Poll::Ready(Ok(k)) = r {
            this.paid -= k;
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_bucket_paces_writes_at_its_rate_in_turn() {
        let up = Uplink::new(100 * 1024);
        // The burst goes at once.
        assert_eq!(up.reserve(16 * 1024), Duration::ZERO);
        // Then each reservation queues behind the debt before it: a second's worth of
        // quanta waits about a second, whoever asks.
        let mut last = Duration::ZERO;
        for _ in 0..6 {
            last = up.reserve(16 * 1024);
        }
        assert!(
            (Duration::from_millis(900)..Duration::from_millis(1000)).contains(&last),
            "{last:?}"
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(up.reserve(1), Duration::ZERO, "the debt is paid in time");
        // A wait never rounds down to nothing.
        let up = Uplink::new(1 << 30);
        up.reserve(64 * 1024 * 1024);
        assert!(up.reserve(1) >= MIN_WAIT);
    }
}

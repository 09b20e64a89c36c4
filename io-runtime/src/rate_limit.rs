//! Session-wide speed limits (rain's `speed-limit-download` / `speed-limit-upload`, KiB/s,
//! 0 = unlimited): one token bucket per direction shared by every connection of the session.
//!
//! Bytes are charged after they are read (download: peer blocks and webseed chunks) or before
//! they are written (upload: piece messages). A charge may take the bucket below zero; the
//! caller then sleeps until the debt is paid, so a connection that is throttled stops reading
//! and TCP flow control slows the sender. The bucket holds at most one second of rate, so an
//! idle session cannot save up a burst larger than that.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// One direction's token bucket.
#[derive(Debug)]
pub struct RateLimiter {
    /// Bytes per second.
    rate: f64,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// Bytes that may pass now; negative while in debt.
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// A limiter of `kib_per_sec` KiB/s, or `None` for 0 (unlimited).
    pub fn from_kib(kib_per_sec: u32) -> Option<RateLimiter> {
        (kib_per_sec > 0).then(|| RateLimiter::new(f64::from(kib_per_sec) * 1024.0))
    }

    fn new(rate: f64) -> RateLimiter {
        RateLimiter {
            rate,
            state: Mutex::new(Bucket {
                tokens: rate,
                last: Instant::now(),
            }),
        }
    }

    /// Charges `bytes` and returns how long the caller must wait before going on.
    pub fn reserve(&self, bytes: usize) -> Duration {
        let mut b = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.last = now;
        b.tokens = (b.tokens + elapsed * self.rate).min(self.rate);
        b.tokens -= bytes as f64;
        if b.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-b.tokens / self.rate)
        }
    }

    /// Charges `bytes` and waits until they fit in the rate.
    pub async fn acquire(&self, bytes: usize) {
        let wait = self.reserve(bytes);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// The session's two limits; `None` is unlimited.
#[derive(Debug, Clone, Default)]
pub struct SpeedLimits {
    /// `speed-limit-download`: peer blocks and webseed bodies.
    pub download: Option<Arc<RateLimiter>>,
    /// `speed-limit-upload`: piece messages sent.
    pub upload: Option<Arc<RateLimiter>>,
}

impl SpeedLimits {
    /// From rain's KiB/s settings (0 = unlimited).
    pub fn from_kib(download: u32, upload: u32) -> SpeedLimits {
        SpeedLimits {
            download: RateLimiter::from_kib(download).map(Arc::new),
            upload: RateLimiter::from_kib(upload).map(Arc::new),
        }
    }
}

/// Charges `bytes` to `limiter` if there is one.
pub async fn charge(limiter: Option<&RateLimiter>, bytes: usize) {
    if let Some(l) = limiter
        && bytes > 0
    {
        l.acquire(bytes).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn throughput_is_held_to_the_rate_after_one_second_of_burst() {
        let l = RateLimiter::from_kib(256).unwrap();
        let start = Instant::now();
        // 1 MiB in 16 KiB blocks: the first 256 KiB pass at once, the rest at 256 KiB/s.
        for _ in 0..64 {
            l.acquire(16 * 1024).await;
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_secs(3), "{took:?}");
        assert!(took < Duration::from_millis(3100), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_time_saves_at_most_one_second() {
        let l = RateLimiter::from_kib(100).unwrap();
        l.acquire(100 * 1024).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        // Only one second of rate was saved: 200 KiB need one more second.
        assert_eq!(l.reserve(200 * 1024), Duration::from_secs(1));
    }

    #[test]
    fn zero_is_unlimited() {
        assert!(RateLimiter::from_kib(0).is_none());
    }
}

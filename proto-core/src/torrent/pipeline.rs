//! Request pipelining: how many block requests to keep in flight to one peer.
//!
//! rain keeps a fixed queue (the peer's `reqq`, else 50) inside one piece per peer; a fast link
//! with a long round trip then idles between pieces, and a slow peer holds many blocks hostage.
//! Here the depth follows the bandwidth-delay product of each link:
//!
//! - `base_rtt` is the smallest request→block latency seen (it slowly forgets: each larger
//!   sample pulls it up by 1/64 of the difference, so a route change is learnt);
//! - `rate` is the delivered payload rate, measured over windows of at least 4 × `base_rtt`
//!   (and 250 ms), smoothed with weight 1/2;
//! - **slow start**: until the first rate sample, every block received adds one to the depth
//!   (the depth doubles per round trip, as in TCP);
//! - afterwards `depth = ceil(1.5 × rate × base_rtt / 16 KiB) + 4`: while the pipeline limits
//!   the rate, the rate grows with the depth and the depth grows by half each window; once
//!   the link is the limit the depth settles at 1.5 × the bandwidth-delay product;
//! - the depth is clamped to `[min, cap]` where `cap = min(reqq or default-requests-out,
//!   max-requests-out)`; a snubbed peer gets 1.
//!
//! The depth counts blocks, and the picker hands blocks from several pieces to one peer when
//! the depth exceeds a piece, so a fast peer works on many pieces at once.

use std::time::Duration;

use crate::picker::BLOCK_LEN;
use crate::time::Instant;

/// Pipeline depth state of one peer.
#[derive(Debug, Clone)]
pub struct Pipeline {
    depth: u32,
    min: u32,
    cap: u32,
    base_rtt: Option<Duration>,
    rate: Option<f64>,
    window_start: Instant,
    window_bytes: u64,
}

impl Pipeline {
    /// A pipeline starting at `initial` blocks, within `[min, cap]`.
    pub fn new(now: Instant, initial: u32, min: u32, cap: u32) -> Self {
        let cap = cap.max(1);
        let min = min.clamp(1, cap);
        Pipeline {
            depth: initial.clamp(min, cap),
            min,
            cap,
            base_rtt: None,
            rate: None,
            window_start: now,
            window_bytes: 0,
        }
    }

    /// The current depth in blocks (1 if `snubbed`).
    pub fn depth(&self, snubbed: bool) -> u32 {
        if snubbed { 1 } else { self.depth }
    }

    /// The upper bound (from `reqq` and `max-requests-out`).
    pub fn cap(&self) -> u32 {
        self.cap
    }

    /// The peer told us its `reqq`: the cap becomes `min(reqq, max_requests_out)`.
    pub fn set_cap(&mut self, cap: u32) {
        self.cap = cap.max(1);
        self.min = self.min.min(self.cap);
        self.depth = self.depth.clamp(self.min, self.cap);
    }

    /// Smallest latency seen, if any.
    pub fn base_rtt(&self) -> Option<Duration> {
        self.base_rtt
    }

    /// Measured delivery rate in bytes per second, if a window has closed.
    pub fn rate(&self) -> Option<f64> {
        self.rate
    }

    /// A requested block of `len` bytes arrived `latency` after its request.
    pub fn on_block(&mut self, now: Instant, latency: Option<Duration>, len: u32) {
        if let Some(l) = latency {
            self.base_rtt = Some(match self.base_rtt {
                None => l,
                Some(b) if l < b => l,
                Some(b) => b + l.saturating_sub(b) / 64,
            });
        }
        self.window_bytes += u64::from(len);
        let rtt = self.base_rtt.unwrap_or(Duration::from_millis(100));
        let window = (rtt * 4).max(Duration::from_millis(250));
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= window {
            let sample = self.window_bytes as f64 / elapsed.as_secs_f64();
            self.rate = Some(match self.rate {
                None => sample,
                Some(r) => f64::midpoint(r, sample),
            });
            self.window_start = now;
            self.window_bytes = 0;
            let bdp = self.rate.unwrap_or(0.0) * rtt.as_secs_f64() / f64::from(BLOCK_LEN);
            let target = (1.5 * bdp).ceil().min(f64::from(u32::MAX - 8)) as u32 + 4;
            self.depth = target.clamp(self.min, self.cap);
        } else if self.rate.is_none() {
            self.depth = (self.depth + 1).clamp(self.min, self.cap);
        }
    }

    /// The window restarts (e.g. after an unchoke) so idle time is not measured as slowness.
    pub fn restart_window(&mut self, now: Instant) {
        self.window_start = now;
        self.window_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(n)
    }

    #[test]
    fn slow_start_then_settles_at_bdp() {
        let mut p = Pipeline::new(ms(0), 8, 2, 250);
        // A link of 1 MiB/s with a 100 ms round trip: BDP = 6.4 blocks.
        let per_block = 1000 * 16 / 1024; // ms per 16 KiB at 1 MiB/s (~15 ms)
        let mut t = 0;
        for _ in 0..20 {
            t += per_block;
            p.on_block(ms(t), Some(Duration::from_millis(100)), BLOCK_LEN);
        }
        assert!(
            p.depth(false) > 8,
            "slow start grew the depth: {}",
            p.depth(false)
        );
        for _ in 0..2000 {
            t += per_block;
            p.on_block(ms(t), Some(Duration::from_millis(100)), BLOCK_LEN);
        }
        let d = p.depth(false);
        assert!((10..=20).contains(&d), "depth {d} near 1.5 × BDP + 4");
        assert_eq!(p.depth(true), 1);
    }

    #[test]
    fn depth_respects_cap() {
        let mut p = Pipeline::new(ms(0), 8, 2, 250);
        p.set_cap(5);
        assert_eq!(p.depth(false), 5);
        for i in 0..100 {
            p.on_block(ms(i), Some(Duration::from_secs(1)), BLOCK_LEN);
        }
        assert!(p.depth(false) <= 5);
    }
}

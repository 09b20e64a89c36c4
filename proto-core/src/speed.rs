//! Transfer rate meters: a 1-minute exponentially weighted moving average.
//!
//! rain measures peer and torrent speeds with go-metrics' 1-minute EWMA meters: bytes are
//! counted as they move, and every 5 s the average absorbs the 5-second rate with
//! `alpha = 1 - exp(-5/60)`; the first tick sets the average directly. [`Meter`] does the same,
//! driven by `now` arguments: ticks that fell due are applied lazily on the next call, so the
//! owner need not wake up every 5 s (a long gap decays the average in closed form).

use std::time::Duration;

use crate::time::Instant;

/// Interval between EWMA ticks.
pub const TICK: Duration = Duration::from_secs(5);

/// `1 - exp(-5 / 60)`: the weight of each 5-second sample in a 1-minute average.
pub const ALPHA_1MIN: f64 = 0.079_955_585_370_676_7;

/// A 1-minute EWMA rate meter plus a running total.
#[derive(Debug, Clone, PartialEq)]
pub struct Meter {
    /// Bytes per second.
    rate: f64,
    initialised: bool,
    uncounted: u64,
    total: u64,
    next_tick: Instant,
}

impl Meter {
    /// A meter whose first tick is [`TICK`] after `now`.
    pub fn new(now: Instant) -> Self {
        Meter {
            rate: 0.0,
            initialised: false,
            uncounted: 0,
            total: 0,
            next_tick: now + TICK,
        }
    }

    /// Counts `bytes` moved at `now`.
    pub fn add(&mut self, now: Instant, bytes: u64) {
        self.handle_timeout(now);
        self.uncounted = self.uncounted.saturating_add(bytes);
        self.total = self.total.saturating_add(bytes);
    }

    /// Applies every tick due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now < self.next_tick {
            return;
        }
        let tick = TICK.as_nanos() as u64;
        let due = 1 + (now.as_nanos() - self.next_tick.as_nanos()) / tick;
        // The first due tick absorbs the bytes counted since the last one; the rest saw none.
        let instant = self.uncounted as f64 / TICK.as_secs_f64();
        self.uncounted = 0;
        if self.initialised {
            self.rate += ALPHA_1MIN * (instant - self.rate);
        } else {
            self.rate = instant;
            self.initialised = true;
        }
        let idle = (due - 1).min(i32::MAX as u64) as i32;
        self.rate *= (1.0 - ALPHA_1MIN).powi(idle);
        self.next_tick = Instant::from_nanos(self.next_tick.as_nanos() + due * tick);
    }

    /// The average rate in bytes per second, as of the last tick applied.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The rate rounded to whole bytes per second (for RPC and ranking).
    pub fn rate_u64(&self) -> u64 {
        self.rate.round() as u64
    }

    /// Every byte counted so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// When the next tick is due. A meter is never idle; owners usually apply ticks lazily
    /// through [`Meter::add`] and [`Meter::handle_timeout`] instead of waking for them.
    pub fn poll_timeout(&self) -> Option<Instant> {
        Some(self.next_tick)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> Instant {
        Instant::ZERO + Duration::from_secs(secs)
    }

    #[test]
    fn alpha_matches_its_definition() {
        assert!((ALPHA_1MIN - (1.0 - (-5.0f64 / 60.0).exp())).abs() < 1e-15);
    }

    #[test]
    fn first_tick_sets_then_averages() {
        let mut m = Meter::new(Instant::ZERO);
        m.add(at(1), 5000);
        assert!(m.rate() == 0.0, "no tick yet");
        m.handle_timeout(at(5));
        assert!((m.rate() - 1000.0).abs() < 1e-9);
        m.add(at(6), 10_000);
        m.handle_timeout(at(10));
        let expect = 1000.0 + ALPHA_1MIN * (2000.0 - 1000.0);
        assert!((m.rate() - expect).abs() < 1e-9);
        assert_eq!(m.total(), 15_000);
        assert_eq!(m.poll_timeout(), Some(at(15)));
    }

    #[test]
    fn steady_rate_converges_and_idle_decays() {
        let mut m = Meter::new(Instant::ZERO);
        m.add(at(0), 500);
        m.handle_timeout(at(5));
        for s in (5..600).step_by(5) {
            m.add(at(s), 50_000);
        }
        m.handle_timeout(at(600));
        assert!((m.rate() - 10_000.0).abs() < 1.0, "{}", m.rate());
        // A one-minute silence applied lazily equals twelve idle ticks.
        let mut lazy = m.clone();
        lazy.handle_timeout(at(660));
        let mut eager = m.clone();
        for s in (605..=660).step_by(5) {
            eager.handle_timeout(at(s));
        }
        assert!((lazy.rate() - eager.rate()).abs() < 1e-6);
        assert!(lazy.rate() < 10_000.0 * (1.0 - ALPHA_1MIN).powi(11));
    }
}

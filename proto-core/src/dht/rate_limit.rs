//! Incoming packet rate limits: per source address and overall.
//!
//! Both limits are GCRA (a token bucket in one timestamp): `rate` packets per `window`, with a
//! burst of the whole window's allowance. The per-source table holds at most `max_sources`
//! addresses; when it is full, idle entries are swept out, and if none are idle packets from new
//! sources are refused (a full table is a handled outcome, not growth).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::time::Instant;

/// One GCRA limiter: `rate` events per `window`.
#[derive(Debug, Clone, Copy)]
struct Gcra {
    /// Theoretical arrival time of the next event.
    tat: Instant,
}

impl Gcra {
    fn allow(&mut self, now: Instant, interval: Duration, window: Duration) -> bool {
        let start = self.tat.max(now);
        let next = start + interval;
        if next.saturating_duration_since(now) > window {
            return false;
        }
        self.tat = next;
        true
    }
}

/// Why a packet was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The overall rate is exhausted.
    Global,
    /// This source sent too much.
    Source,
    /// The per-source table is full of active sources.
    TableFull,
}

/// Per-source and global incoming rate limits.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    global: Gcra,
    global_interval: Duration,
    sources: BTreeMap<IpAddr, Gcra>,
    source_interval: Duration,
    max_sources: usize,
}

/// The window for the global limit.
const GLOBAL_WINDOW: Duration = Duration::from_secs(1);
/// The window for the per-source limit.
const SOURCE_WINDOW: Duration = Duration::from_mins(1);

impl RateLimiter {
    /// `packets_per_second` overall, `packets_per_minute_per_source` per address, and at most
    /// `max_sources` addresses tracked. A rate of 0 disables that limit.
    pub fn new(
        packets_per_second: u32,
        packets_per_minute_per_source: u32,
        max_sources: usize,
    ) -> Self {
        let interval = |window: Duration, rate: u32| {
            if rate == 0 {
                Duration::ZERO
            } else {
                window / rate
            }
        };
        RateLimiter {
            global: Gcra { tat: Instant::ZERO },
            global_interval: interval(GLOBAL_WINDOW, packets_per_second),
            sources: BTreeMap::new(),
            source_interval: interval(SOURCE_WINDOW, packets_per_minute_per_source),
            max_sources,
        }
    }

    /// Accounts one packet from `ip`; `Err` means drop it.
    pub fn check(&mut self, now: Instant, ip: IpAddr) -> Result<(), Refusal> {
        if !self.source_interval.is_zero() {
            if !self.sources.contains_key(&ip) && self.sources.len() >= self.max_sources {
                self.sources.retain(|_, g| g.tat > now);
                if self.sources.len() >= self.max_sources {
                    return Err(Refusal::TableFull);
                }
            }
            let interval = self.source_interval;
            let entry = self.sources.entry(ip).or_insert(Gcra { tat: now });
            if !entry.allow(now, interval, SOURCE_WINDOW) {
                return Err(Refusal::Source);
            }
        }
        if !self.global_interval.is_zero()
            && !self.global.allow(now, self.global_interval, GLOBAL_WINDOW)
        {
            return Err(Refusal::Global);
        }
        Ok(())
    }

    /// Number of addresses tracked.
    pub fn sources(&self) -> usize {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(i: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i))
    }

    #[test]
    fn per_source_limit_and_refill() {
        let mut r = RateLimiter::new(0, 50, 100);
        let t = Instant::ZERO + Duration::from_secs(1000);
        let ok = (0..80).filter(|_| r.check(t, ip(1)).is_ok()).count();
        assert_eq!(ok, 50);
        assert_eq!(r.check(t, ip(1)), Err(Refusal::Source));
        // Another source is unaffected.
        assert!(r.check(t, ip(2)).is_ok());
        // 1.2 s later one more packet is allowed, and only one.
        let t2 = t + Duration::from_millis(1200);
        assert!(r.check(t2, ip(1)).is_ok());
        assert!(r.check(t2, ip(1)).is_err());
    }

    #[test]
    fn global_limit() {
        let mut r = RateLimiter::new(100, 0, 100);
        let t = Instant::ZERO + Duration::from_secs(5);
        let ok = (0..500u32).filter(|i| r.check(t, ip(*i)).is_ok()).count();
        assert_eq!(ok, 100);
        assert_eq!(r.sources(), 0, "per-source table unused when disabled");
        let ok = (0..500u32)
            .filter(|i| r.check(t + Duration::from_millis(100), ip(*i)).is_ok())
            .count();
        assert_eq!(ok, 10);
    }

    #[test]
    fn source_table_is_bounded() {
        let mut r = RateLimiter::new(0, 50, 10);
        let t = Instant::ZERO + Duration::from_secs(5);
        for i in 0..10 {
            assert!(r.check(t, ip(i)).is_ok());
        }
        assert_eq!(r.check(t, ip(99)), Err(Refusal::TableFull));
        assert_eq!(r.sources(), 10);
        // Once the entries are idle they are swept out.
        let later = t + Duration::from_secs(2);
        assert!(r.check(later, ip(99)).is_ok());
        assert!(r.sources() <= 10);
    }
}

//! Write tokens: `get_peers` hands one out, `announce_peer` must bring it back.
//!
//! A token is the first [`TOKEN_LEN`] bytes of SHA-1(secret | address). The secret rotates
//! every `rotation` (5 minutes by default); tokens made with the current or the previous secret
//! are accepted, so a token lives between one and two rotation periods. Rotation is lazy: it
//! happens when the machine is next called after the deadline, so tokens need no timer.

use std::net::IpAddr;
use std::time::Duration;

use sha1::{Digest, Sha1};

use crate::rng::Rng;
use crate::time::Instant;

/// Length of the tokens we hand out.
pub const TOKEN_LEN: usize = 8;

/// The rotating secrets behind our tokens.
#[derive(Debug, Clone)]
pub struct TokenSecrets {
    current: [u8; 20],
    previous: [u8; 20],
    rotation: Duration,
    next_rotation: Instant,
}

impl TokenSecrets {
    /// Fresh secrets; the first rotation is due at `now + rotation`.
    pub fn new(rng: &mut Rng, now: Instant, rotation: Duration) -> Self {
        let mut current = [0u8; 20];
        let mut previous = [0u8; 20];
        rng.fill(&mut current);
        rng.fill(&mut previous);
        TokenSecrets {
            current,
            previous,
            rotation,
            next_rotation: now + rotation,
        }
    }

    /// Rotates the secrets if the deadline passed (twice if two periods passed).
    pub fn maybe_rotate(&mut self, now: Instant, rng: &mut Rng) {
        let mut rotations = 0;
        while now >= self.next_rotation && rotations < 2 {
            self.previous = self.current;
            rng.fill(&mut self.current);
            self.next_rotation = self.next_rotation + self.rotation;
            rotations += 1;
        }
        if now >= self.next_rotation {
            // Asleep for longer than two periods: both secrets are already fresh.
            self.next_rotation = now + self.rotation;
        }
    }

    /// When the next rotation is due.
    pub fn next_rotation(&self) -> Instant {
        self.next_rotation
    }

    /// The token for a node at `ip`.
    pub fn token_for(&self, ip: IpAddr) -> [u8; TOKEN_LEN] {
        make(&self.current, ip)
    }

    /// True if `token` was made for `ip` with the current or the previous secret.
    pub fn verify(&self, ip: IpAddr, token: &[u8]) -> bool {
        token == make(&self.current, ip) || token == make(&self.previous, ip)
    }
}

fn make(secret: &[u8; 20], ip: IpAddr) -> [u8; TOKEN_LEN] {
    let mut h = Sha1::new();
    h.update(secret);
    match ip {
        IpAddr::V4(v4) => h.update(v4.octets()),
        IpAddr::V6(v6) => h.update(v6.octets()),
    }
    let digest: [u8; 20] = h.finalize().into();
    let mut out = [0u8; TOKEN_LEN];
    out.copy_from_slice(&digest[..TOKEN_LEN]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Seed;

    #[test]
    fn valid_across_one_rotation_invalid_after_two() {
        let mut rng = Rng::new(Seed::from_u64(1));
        let period = Duration::from_mins(5);
        let t0 = Instant::ZERO;
        let mut s = TokenSecrets::new(&mut rng, t0, period);
        let ip: IpAddr = "1.2.3.4".parse().unwrap();
        let other: IpAddr = "1.2.3.5".parse().unwrap();
        let tok = s.token_for(ip);
        assert!(s.verify(ip, &tok));
        assert!(!s.verify(other, &tok));
        assert!(!s.verify(ip, &tok[..4]));

        s.maybe_rotate(t0 + Duration::from_secs(299), &mut rng);
        assert_eq!(s.token_for(ip), tok, "no rotation before the deadline");
        s.maybe_rotate(t0 + period, &mut rng);
        assert_ne!(s.token_for(ip), tok);
        assert!(s.verify(ip, &tok), "valid for one rotation");
        s.maybe_rotate(t0 + period * 2, &mut rng);
        assert!(!s.verify(ip, &tok), "invalid after two rotations");
    }

    #[test]
    fn a_long_sleep_invalidates_everything() {
        let mut rng = Rng::new(Seed::from_u64(2));
        let period = Duration::from_mins(5);
        let mut s = TokenSecrets::new(&mut rng, Instant::ZERO, period);
        let ip: IpAddr = "::1".parse().unwrap();
        let tok = s.token_for(ip);
        let later = Instant::ZERO + Duration::from_hours(1);
        s.maybe_rotate(later, &mut rng);
        assert!(!s.verify(ip, &tok));
        assert_eq!(s.next_rotation(), later + period);
    }
}

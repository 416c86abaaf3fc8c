//! Reconnect pacing: exponential backoff with full jitter, a floor and a cap.
//!
//! Attempt `n` (0-based) waits a uniformly random time in `[0, min(cap, floor * 2^n)]`, clamped
//! up to `floor`, measured from the start of the previous attempt. So no two attempts are ever
//! closer than `floor` (the protocol asks for 15 s), and after a long outage attempts spread out
//! up to `cap` (5 min) without a thundering herd of restaurants reconnecting in step. A link that
//! stayed up for `reset_after` resets `n` to 0.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    floor: Duration,
    cap: Duration,
    attempt: u32,
    rng: XorShift,
}

impl Backoff {
    pub fn new(floor: Duration, cap: Duration, seed: u64) -> Self {
        Backoff {
            floor,
            cap: cap.max(floor),
            attempt: 0,
            rng: XorShift::new(seed),
        }
    }

    /// The wait before the next attempt, measured from the start of the previous one.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self
            .floor
            .saturating_mul(1u32.checked_shl(self.attempt.min(20)).unwrap_or(u32::MAX))
            .min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let jittered = Duration::from_nanos(self.rng.below(exp.as_nanos() as u64 + 1));
        jittered.max(self.floor)
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

/// Tiny PRNG for jitter (not for anything secret).
#[derive(Debug, Clone)]
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        XorShift(seed | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// A seed that differs between restaurants and restarts.
pub fn seed() -> u64 {
    let (s, ns) = crate::clock::unix_now();
    (s as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(u64::from(ns))
        ^ (u64::from(std::process::id()) << 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_below_floor_never_above_cap() {
        let (floor, cap) = (Duration::from_secs(15), Duration::from_secs(300));
        for seed in 1..200 {
            let mut b = Backoff::new(floor, cap, seed);
            for _ in 0..40 {
                let d = b.next_delay();
                assert!(d >= floor && d <= cap, "{d:?}");
            }
        }
    }

    #[test]
    fn grows_then_resets() {
        let (floor, cap) = (Duration::from_secs(15), Duration::from_secs(300));
        let mut b = Backoff::new(floor, cap, 42);
        // After many attempts the mean delay is well above the floor (full jitter up to the cap).
        for _ in 0..10 {
            b.next_delay();
        }
        let late: Duration = (0..200).map(|_| b.next_delay()).sum::<Duration>() / 200;
        assert!(late > Duration::from_secs(100), "{late:?}");
        b.reset();
        assert_eq!(b.attempts(), 0);
        // First attempt after a reset: range [0, floor] clamped to floor.
        assert_eq!(b.next_delay(), floor);
    }
}

//! Bounded exponential backoff with jitter, for the long-running loops (`watch`, `watch --queue`):
//! after the n-th consecutive failure wait about `base · 2ⁿ⁻¹`, never more than `max`, with the
//! upper half of that delay randomised ("equal jitter") so that several loaders hit by one outage
//! do not retry in lockstep.

use std::time::Duration;

/// Retry pacing for one kind of failure. [`Backoff::reset`] after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    /// The loops' pacing: 1 s after the first failure, doubling up to one minute.
    pub fn new() -> Backoff {
        Backoff::with_limits(Duration::from_secs(1), Duration::from_secs(60))
    }

    /// A backoff from `base` doubling up to `max`.
    pub fn with_limits(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base,
            max: max.max(base),
            failures: 0,
        }
    }

    /// Records one more failure and returns how long to wait before the next try: between half
    /// and all of `min(max, base · 2^(failures-1))`.
    pub fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let ceiling = self.ceiling();
        let half = ceiling / 2;
        let spread = (ceiling - half).as_millis() as u64;
        half + Duration::from_millis(fastrand::u64(0..=spread))
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Back to the first delay (after a success).
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    fn ceiling(&self) -> Duration {
        let doublings = self.failures.saturating_sub(1).min(31);
        self.base
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::new()
    }
}

/// Sleeps for `delay` unless Ctrl-C comes first; returns false when interrupted.
pub async fn pause(delay: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = crate::shutdown::requested_wait() => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_within_bounds_and_reset() {
        let base = Duration::from_millis(100);
        let max = Duration::from_millis(1000);
        let mut backoff = Backoff::with_limits(base, max);
        let mut ceilings = Vec::new();
        for _ in 0..8 {
            let delay = backoff.next_delay();
            let ceiling = backoff.ceiling();
            assert!(delay <= ceiling, "{delay:?} > {ceiling:?}");
            assert!(delay >= ceiling / 2, "{delay:?} < half of {ceiling:?}");
            ceilings.push(ceiling.as_millis());
        }
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000, 1000, 1000]);
        assert_eq!(backoff.failures(), 8);
        backoff.reset();
        assert_eq!(backoff.failures(), 0);
        assert!(backoff.next_delay() <= base);
    }

    #[test]
    fn delays_are_jittered_and_never_overflow() {
        let mut backoff = Backoff::with_limits(Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..200 {
            assert!(backoff.next_delay() <= Duration::from_secs(60));
        }
        // At the cap, 50 draws from [30 s, 60 s] are not all the same value.
        let delays: std::collections::HashSet<Duration> =
            (0..50).map(|_| backoff.next_delay()).collect();
        assert!(delays.len() > 1, "no jitter: {delays:?}");
        assert!(delays.iter().all(|d| *d >= Duration::from_secs(30)));
    }
}

//! Retrying with backoff, the one way every trigger does it ([`retry`]): bounded exponential
//! backoff with jitter — after the n-th consecutive failure wait about `base · 2ⁿ⁻¹`, never more
//! than `max`, with the upper half of that delay randomised ("equal jitter") so that several
//! loaders hit by one outage do not retry in lockstep.

use std::future::Future;
use std::time::Duration;

use crate::error::Error;

/// Retry pacing for one kind of failure: the delays, a floor ([`Backoff::at_least`]) and how many
/// tries [`retry`] makes ([`Backoff::tries`], unlimited by default). [`Backoff::reset`] after a
/// success when pacing by hand (as `watch` does per marker).
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    floor: Duration,
    tries: Option<u32>,
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
            floor: Duration::ZERO,
            tries: None,
            failures: 0,
        }
    }

    /// Never waits less than `floor` (a poll is not retried sooner than its interval).
    pub fn at_least(mut self, floor: Duration) -> Backoff {
        self.floor = floor;
        self
    }

    /// [`retry`] stops after `tries` failed tries (at least one) and returns the last error.
    pub fn tries(mut self, tries: u32) -> Backoff {
        self.tries = Some(tries.max(1));
        self
    }

    /// Records one more failure and returns how long to wait before the next try: between half
    /// and all of `min(max, base · 2^(failures-1))`, and never less than the floor.
    pub fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let ceiling = self.ceiling();
        let half = ceiling / 2;
        let spread = (ceiling - half).as_millis() as u64;
        (half + Duration::from_millis(fastrand::u64(0..=spread))).max(self.floor)
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

/// How a [`retry`] ended.
#[derive(Debug)]
pub enum Retried<T> {
    /// A try succeeded.
    Done(T),
    /// The tries ran out ([`Backoff::tries`]): the last try's error.
    Exhausted(Error),
    /// A stop was requested while waiting for the next try.
    Interrupted,
}

impl<T> Retried<T> {
    /// The value (`None` when a stop was requested), or the last error when the tries ran out.
    pub fn into_result(self) -> Result<Option<T>, Error> {
        match self {
            Retried::Done(value) => Ok(Some(value)),
            Retried::Exhausted(err) => Err(err),
            Retried::Interrupted => Ok(None),
        }
    }
}

/// Calls `op` until it succeeds, waiting `backoff`'s delays between tries (a stop request ends
/// the wait). Each failure is logged once as `{what} failed: {error}; retrying in N s`, and a
/// success after failures as `{what} works again`; when the tries run out nothing more is
/// logged — the caller says what becomes of the work. Every trigger retries through here.
pub async fn retry<T, F, Fut>(what: &str, mut backoff: Backoff, mut op: F) -> Retried<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    loop {
        match op().await {
            Ok(value) => {
                if backoff.failures() > 0 {
                    tracing::info!(failed_tries = backoff.failures(), "{what} works again");
                }
                return Retried::Done(value);
            }
            Err(err) if backoff.tries.is_some_and(|t| backoff.failures() + 1 >= t) => {
                return Retried::Exhausted(err);
            }
            Err(err) => {
                let delay = backoff.next_delay();
                tracing::warn!(
                    retry = backoff.failures(),
                    "{what} failed: {err}; retrying in {:.1} s",
                    delay.as_secs_f64()
                );
                if !pause(delay).await {
                    return Retried::Interrupted;
                }
            }
        }
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

    #[test]
    fn the_floor_holds_under_jitter() {
        let floor = Duration::from_millis(700);
        let mut backoff = Backoff::with_limits(Duration::from_millis(100), Duration::from_secs(2))
            .at_least(floor);
        for _ in 0..20 {
            assert!(backoff.next_delay() >= floor);
        }
    }

    /// A quick backoff for the tests of [`retry`] (milliseconds, so nothing waits long).
    fn quick() -> Backoff {
        Backoff::with_limits(Duration::from_millis(1), Duration::from_millis(4))
    }

    /// An operation failing its first `failures` calls, then returning the call number; counts
    /// its calls.
    fn flaky(
        failures: u32,
        calls: &std::cell::Cell<u32>,
    ) -> impl FnMut() -> std::future::Ready<Result<u32, Error>> + '_ {
        move || {
            calls.set(calls.get() + 1);
            let call = calls.get();
            std::future::ready(if call <= failures {
                Err(Error::Config(format!("failure {call}")))
            } else {
                Ok(call)
            })
        }
    }

    #[tokio::test]
    async fn retry_tries_until_the_operation_succeeds() {
        let calls = std::cell::Cell::new(0);
        match retry("testing", quick(), flaky(3, &calls)).await {
            Retried::Done(call) => assert_eq!(call, 4),
            other => panic!("expected success on the fourth call, got {other:?}"),
        }
        assert_eq!(calls.get(), 4);
    }

    #[tokio::test]
    async fn retry_stops_after_its_tries_with_the_last_error() {
        let calls = std::cell::Cell::new(0);
        match retry("testing", quick().tries(3), flaky(10, &calls)).await {
            Retried::Exhausted(err) => assert_eq!(err.to_string(), "failure 3"),
            other => panic!("expected the third failure, got {other:?}"),
        }
        assert_eq!(calls.get(), 3);
        // One try: the first failure is returned at once (`--once`), never waited on.
        let calls = std::cell::Cell::new(0);
        let started = std::time::Instant::now();
        let slow = Backoff::with_limits(Duration::from_secs(30), Duration::from_secs(60)).tries(1);
        match retry("testing", slow, flaky(10, &calls)).await {
            Retried::Exhausted(err) => assert_eq!(err.to_string(), "failure 1"),
            other => panic!("expected the first failure, got {other:?}"),
        }
        assert_eq!(calls.get(), 1);
        assert!(started.elapsed() < Duration::from_secs(30));
    }
}

//! How `process` retries a command whose commit hit a version conflict.

use std::time::Duration;

use rand::Rng;

/// Retries of a command handler after a [`VersionConflict`](crate::Error::VersionConflict).
///
/// The handler runs again from scratch (it reloads what it reads), after a wait with
/// *decorrelated jitter*: each wait is a random duration between the base delay and three
/// times the previous wait, at most the maximum delay. Waits grow while the conflicts go on,
/// so competing writers spread out instead of colliding again, and never fall below the base,
/// so a retry does not run straight back into the collision it has just lost.
///
/// **The default** makes up to 30 attempts, waiting from 2 ms, growing to at most 50 ms.
/// Four writers (each with its own domain and pool, as four processes would be) depositing
/// into one hot account on PostgreSQL, where the old default (5 attempts, full jitter up to
/// 2–16 ms) sent a version conflict back to 13–21% of the commands, see none with it
/// (`tests/tests/contention.rs`); on a SQLite file, 1–3% before, none after. More attempts
/// with a lower cap measured better there than 20 attempts up to 100 ms (which still let one
/// conflict through in 6,000 commands) and had shorter tails: a writer that has just
/// committed starts its next command at once, so a loser that sleeps long comes back to as
/// much competition as before, having used up its time.
///
/// The price is latency when a conflict does not go away: a command that loses every attempt
/// waits up to about 1.4 s in all (at most 6 and 18 ms, then 50 ms per retry, besides each
/// attempt's own time) before its conflict is returned. In the workload above the slowest
/// deposit took 0.3–1.3 s, the median 1–9 ms. A service that prefers failing fast (and
/// retrying elsewhere) sets fewer attempts or a lower maximum; writers that do not contend
/// never wait.
///
/// ```
/// use std::time::Duration;
/// use fidelis_core::RetryPolicy;
///
/// assert_eq!(RetryPolicy::default().max_attempts(), 30);
/// let fail_fast = RetryPolicy::attempts(4)
///     .with_backoff(Duration::from_millis(1), Duration::from_millis(20));
/// assert_eq!(fail_fast.max_attempts(), 4);
/// assert_eq!(RetryPolicy::none().max_attempts(), 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    base_delay: Duration,
    max_delay: Duration,
}

impl RetryPolicy {
    /// `n` attempts in all (at least 1), with the default backoff.
    pub fn attempts(n: u32) -> Self {
        Self {
            max_attempts: n.max(1),
            ..Self::default()
        }
    }

    /// No retry: a conflict fails the command at once.
    pub fn none() -> Self {
        Self::attempts(1)
    }

    /// Sets the backoff: each wait is a random duration between `base` and three times the
    /// previous wait (the first: between `base` and `3 × base`), at most `max`.
    pub fn with_backoff(self, base: Duration, max: Duration) -> Self {
        Self {
            base_delay: base,
            max_delay: max,
            ..self
        }
    }

    /// Attempts in all, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The wait before the next retry, given the wait before the previous one
    /// (`Duration::ZERO` before the first retry).
    pub(crate) fn next_delay(&self, previous: Duration) -> Duration {
        let floor = self.base_delay.min(self.max_delay);
        let ceiling = previous
            .max(self.base_delay)
            .saturating_mul(3)
            .min(self.max_delay);
        let (floor, ceiling) = (nanos(floor), nanos(ceiling));
        if ceiling <= floor {
            return Duration::from_nanos(ceiling);
        }
        Duration::from_nanos(rand::rng().random_range(floor..=ceiling))
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 30,
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(50),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn waits_grow_between_the_base_and_three_times_the_last_wait() {
        let policy = RetryPolicy::default();
        let mut previous = Duration::ZERO;
        for _ in 0..1_000 {
            let delay = policy.next_delay(previous);
            let ceiling = (previous.max(2 * MS) * 3).min(50 * MS);
            assert!(
                (2 * MS..=ceiling).contains(&delay),
                "{delay:?} after {previous:?}"
            );
            previous = delay;
        }
    }

    #[test]
    fn the_default_waits_at_most_about_one_and_a_half_seconds_in_all() {
        let policy = RetryPolicy::default();
        for _ in 0..200 {
            let mut previous = Duration::ZERO;
            let mut total = Duration::ZERO;
            for _ in 1..policy.max_attempts() {
                previous = policy.next_delay(previous);
                total += previous;
            }
            // At most 6 and 18 ms, then 27 waits of at most 50 ms.
            assert!(total <= 1_374 * MS, "{total:?}");
        }
    }

    #[test]
    fn a_zero_backoff_does_not_wait() {
        let policy = RetryPolicy::attempts(3).with_backoff(Duration::ZERO, Duration::ZERO);
        assert_eq!(policy.next_delay(Duration::ZERO), Duration::ZERO);
        assert_eq!(policy.next_delay(MS), Duration::ZERO);
    }
}

//! How `process` retries a command whose commit hit a version conflict.

use std::time::Duration;

use rand::Rng;

/// Retries of a command handler after a [`VersionConflict`](crate::Error::VersionConflict).
///
/// The handler runs again from scratch (it reloads what it reads), after an exponential
/// backoff with full jitter, so that competing writers spread out instead of colliding again.
///
/// The default makes 5 attempts in all, waiting up to 2 ms, 4 ms, 8 ms, 16 ms (each a random
/// fraction of that) between them.
///
/// ```
/// use fidelis_core::RetryPolicy;
/// let policy = RetryPolicy::attempts(10);
/// assert_eq!(policy.max_attempts(), 10);
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

    /// Sets the backoff: the wait before retry `k` is a random duration up to
    /// `min(base × 2^(k-1), max)`.
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

    /// The (jittered) wait before the given retry (1 = first retry).
    pub(crate) fn delay(&self, retry: u32) -> Duration {
        let ceiling = self
            .base_delay
            .saturating_mul(1 << retry.saturating_sub(1).min(16))
            .min(self.max_delay);
        if ceiling.is_zero() {
            return ceiling;
        }
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::rng().random_range(0..=nanos))
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(100),
        }
    }
}

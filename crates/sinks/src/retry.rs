//! Failures of delivery attempts and the retry schedule shared by the destinations outside
//! the object store: 1 s doubling, ±15% jitter, capped at 120 s, until the destination's
//! `RetryOptions.DurationInSeconds` has passed since the first failure (Firehose's HTTP endpoint
//! schedule, used for every such destination).

use std::time::Duration;

/// The first retry's wait.
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(1);
/// The longest wait between two attempts.
pub const BACKOFF_CAP: Duration = Duration::from_secs(120);
/// The jitter applied to every wait: ±15%.
pub const BACKOFF_JITTER: f64 = 0.15;

/// Why a delivery attempt did not succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Firehose's error code (`HttpEndpoint.DestinationException`, ...).
    pub code: String,
    /// What happened.
    pub message: String,
    /// Not worth retrying (an HTTP 413, a document the destination rejects as malformed).
    pub permanent: bool,
}

impl Failure {
    /// A failure that retrying cannot fix.
    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            permanent: true,
        }
    }

    /// A failure worth retrying.
    pub fn retry(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            permanent: false,
        }
    }
}

/// The wait after the `attempt`-th failure (0-based), with `jitter` in `[-0.15, 0.15]`:
/// 1 s · 2^attempt · (1 + jitter), at most 120 s.
pub fn backoff(attempt: u32, jitter: f64) -> Duration {
    let base = BACKOFF_INITIAL.as_secs_f64() * 2f64.powi(attempt.min(16) as i32);
    let jitter = jitter.clamp(-BACKOFF_JITTER, BACKOFF_JITTER);
    Duration::from_secs_f64((base * (1.0 + jitter)).min(BACKOFF_CAP.as_secs_f64()))
}

/// The wait before the next attempt, or `None` when the retry duration has passed:
/// `elapsed_ms` since the first failure, `retry_ms` the configured duration. The wait is
/// shortened so the last attempt is made when the duration ends.
pub fn next_wait(attempt: u32, elapsed_ms: i64, retry_ms: i64, jitter: f64) -> Option<Duration> {
    let left = retry_ms - elapsed_ms;
    if left <= 0 {
        return None;
    }
    Some(backoff(attempt, jitter).min(Duration::from_millis(left as u64)))
}

/// A jitter drawn uniformly from `[-0.15, 0.15]`.
pub fn random_jitter() -> f64 {
    rand::random_range(-BACKOFF_JITTER..=BACKOFF_JITTER)
}

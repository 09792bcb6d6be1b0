//! The pipeline: everything between an accepted request and a delivered object.
//!
//! - [`engine`]: the set of streams and the [`lakehose_api::StreamService`] the API calls —
//!   admission ([`admit`]), durable append to each stream's write-ahead log, persistence of specs.
//! - [`delivery`]: per stream, the loop that reads durable records, buffers them by
//!   `BufferingHints`, writes objects through a sink with retries, and commits the log position.
//! - [`fresh`]: the undelivered records of a table's streams as Arrow rows, for queries.
//! - [`recent`]: the newest error documents of each stream (bounded), for the console.

pub mod admit;
pub(crate) mod convert;
pub(crate) mod delivery;
pub mod engine;
pub(crate) mod flush;
pub mod fresh;
pub(crate) mod http;
pub(crate) mod opensearch;
pub mod recent;
pub(crate) mod redshift;
pub(crate) mod remote;
pub(crate) mod splunk;

pub use engine::{Engine, EngineConfig, StreamRuntime, parse_record_id, record_id, write_atomic};
pub use fresh::FreshRows;

/// Why the pipeline failed (internal to the server: the API maps these to AWS errors).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The write-ahead log failed.
    #[error(transparent)]
    Log(#[from] lakehose_log::Error),
    /// Local file I/O outside the log (specs, folders).
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A stored spec or plan could not be (de)serialised.
    #[error("serialisation: {0}")]
    Json(#[from] serde_json::Error),
    /// A stored plan does not fit the log.
    #[error("corrupt state: {0}")]
    Corrupt(String),
    /// A task failed unexpectedly.
    #[error("internal: {0}")]
    Internal(String),
    /// Encryption at rest cannot be set up as the stream's spec asks (a key missing from the
    /// keyring, no keyring): the stream is not started rather than run unencrypted.
    #[error("encryption: {0}")]
    Encryption(String),
}

/// `Result` with the pipeline's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// The clock of a stream's time rules: arrival stamps, buffering intervals, data freshness and
/// the retention of undelivered records. Sleeps always use tokio's timer, so with
/// [`Clock::Tokio`] a test that pauses tokio's clock (`start_paused`) runs hours of outage in
/// milliseconds and every rule keeps its meaning.
#[derive(Clone, Copy, Debug, Default)]
pub enum Clock {
    /// The system's wall clock.
    #[default]
    System,
    /// Starts at `base_ms` and advances with tokio's clock.
    Tokio {
        /// Epoch milliseconds at `base`.
        base_ms: i64,
        /// The tokio instant that maps to `base_ms`.
        base: tokio::time::Instant,
    },
}

impl Clock {
    /// A clock that reads `base_ms` now and then follows tokio's (possibly paused) clock.
    pub fn tokio_from(base_ms: i64) -> Self {
        Clock::Tokio {
            base_ms,
            base: tokio::time::Instant::now(),
        }
    }

    /// Milliseconds since the Unix epoch by this clock.
    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System => now_ms(),
            Clock::Tokio { base_ms, base } => base_ms + base.elapsed().as_millis() as i64,
        }
    }
}

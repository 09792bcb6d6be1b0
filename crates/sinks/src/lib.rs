//! Destinations. Each sink stores what the delivery loop hands it and says, when it fails,
//! whether trying again can help ([`SinkError::is_retryable`]) — the delivery loop chooses
//! between retry and error output from that alone.
//!
//! - [`object`]: S3 buckets (a local folder by default, any S3-compatible endpoint when mapped).
//! - [`sealed`]: reading encrypted (`KMSEncryptionConfig`) objects of local buckets.
//! - [`keys`]: Firehose's object key naming (prefix expressions and the fixed suffix).
//! - [`egress`]: which URLs a destination may connect to (the SSRF guard).
//! - [`transport`]: one HTTP POST within the egress policy (HTTP endpoint, OpenSearch, Splunk).
//! - [`retry`]: failures of delivery attempts and the retry schedule.
//! - [`http`]: Firehose's HTTP endpoint delivery protocol v1.0.
//! - [`splunk`]: Splunk's HTTP Event Collector protocol with indexer acknowledgement.
//! - [`opensearch`]: the OpenSearch / Elasticsearch `_bulk` protocol (index rotation, document ids).
//! - [`postgres`]: the Redshift destination's COPY into PostgreSQL.

pub mod egress;
pub mod http;
pub mod keys;
pub mod object;
pub mod opensearch;
pub mod postgres;
pub mod retry;
pub mod sealed;
pub mod splunk;
pub mod transport;

pub use object::{Buckets, ObjectSink, S3BucketConfig, StoreSink};

/// Why a destination write failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A transient failure (network, 5xx, throttling, local I/O): retry with backoff.
    #[error("destination temporarily failed: {0}")]
    Retryable(String),
    /// The request can never succeed as it is (invalid key, access denied).
    #[error("destination rejected the write: {0}")]
    Permanent(String),
    /// The destination is misconfigured (bad endpoint, credentials missing).
    #[error("destination is misconfigured: {0}")]
    Config(String),
    /// The object does not exist (reads only).
    #[error("object not found: {0}")]
    NotFound(String),
}

impl SinkError {
    /// Whether retrying the same write may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SinkError::Retryable(_) | SinkError::Config(_))
    }
}

/// `Result` with [`SinkError`].
pub type SinkResult<T> = Result<T, SinkError>;

//! The crate's error type.

use std::io;
use std::path::PathBuf;

/// Errors of the write-ahead log.
#[non_exhaustive]
#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// A file operation failed. During an append or checkpoint this also poisons the log.
    #[error("{op} {path}: {source}")]
    Io {
        /// The operation, e.g. `"fdatasync"`.
        op: &'static str,
        /// The file or directory it was applied to.
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// An earlier write or fsync failed; the log refuses all writes until it is reopened
    /// (fail-stop). Carries the original reason.
    #[error("log is poisoned after an I/O failure: {0}")]
    Poisoned(String),
    /// The log was closed.
    #[error("log is closed")]
    Closed,
    /// A file the log cannot safely interpret (only raised where skipping would lose
    /// information, e.g. a damaged checkpoint; damaged records are counted, not raised).
    #[error("corrupt {path}: {reason}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A segment written by a newer format version.
    #[error("{path}: unsupported log format version {version}")]
    UnsupportedVersion {
        /// The segment file.
        path: PathBuf,
        /// The version found in its header.
        version: u32,
    },
    /// Encrypted data that cannot be used, and is therefore refused (fail closed): a segment
    /// whose master key is not in the keyring (or no keyring is configured), a data key that
    /// does not unwrap (another key under the same id), or a record whose CRC is right but
    /// whose authentication fails (tampering, or data moved between positions or logs). Never
    /// skipped like a damaged record, never returned as data.
    #[error("{path}: encryption: {reason}")]
    Encryption {
        /// The segment file (or log directory).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Another `Log` (in this or another process) has the directory open.
    #[error("log directory {path} is in use: {source}")]
    Locked {
        /// The directory.
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A record is larger than [`crate::MAX_RECORD_BYTES`].
    #[error("record of {len} bytes exceeds the maximum of {max} bytes")]
    RecordTooLarge {
        /// Size of the offending record.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The requested sequence number was already reclaimed.
    #[error("sequence number {seq} is no longer retained (oldest retained is {oldest})")]
    NotRetained {
        /// The requested sequence number.
        seq: u64,
        /// The oldest retained one.
        oldest: u64,
    },
    /// The requested sequence number is beyond the durable end of the log.
    #[error("sequence number {seq} is beyond the durable end {durable}")]
    BeyondEnd {
        /// The requested sequence number.
        seq: u64,
        /// The durable end (next sequence number to be assigned).
        durable: u64,
    },
    /// A checkpoint that would move backwards or past the durable end.
    #[error("invalid checkpoint {committed}: {reason}")]
    InvalidCheckpoint {
        /// The committed position that was passed.
        committed: u64,
        /// Why it was refused.
        reason: String,
    },
    /// A retention hold with an invalid name or position.
    #[error("invalid hold {name:?}: {reason}")]
    InvalidHold {
        /// The hold name that was passed.
        name: String,
        /// Why it was refused.
        reason: String,
    },
}

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn encryption(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Error {
        Error::Encryption {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}

//! The write-ahead log of Lakehose.
//!
//! Every record accepted by the ingest API is appended here and acknowledged only after it
//! is on disk: [`Log::append`] resolves after the bytes were written **and `fdatasync`ed**.
//! The delivery loop reads records back with a [`LogReader`], and after delivering them
//! calls [`Log::checkpoint`], which persists the delivered position and deletes segments
//! that are no longer needed. Other readers that consume the log at their own pace pin the
//! segments they still need with a named, persisted *hold* ([`Log::set_hold`],
//! [`Log::release_hold`]): segments are only ever reclaimed below
//! `min(checkpoint, every hold)`.
//!
//! # Durability contract
//!
//! - **Ack = durable.** `append` returns `Ok(seqs)` only after the records are in the log
//!   and fsync'd. Concurrent appends share one write and one `fdatasync` (group commit,
//!   see the `writer` module for the loop); a group holds everything pending, up to
//!   [`LogConfig::max_commit_bytes`].
//! - **Integrity.** Every record and segment header carries a CRC32C. Damaged records are
//!   counted and never returned — neither by recovery nor by readers.
//! - **Fail-stop.** The first write or fsync error poisons the log: the affected appends
//!   fail, every later append fails with [`Error::Poisoned`] carrying the reason, and the
//!   fsync is never retried (after a failed fsync Linux may have dropped the dirty pages, so
//!   a retry could "succeed" without the data on disk). Restart the process: recovery
//!   rebuilds a consistent log from what is on disk, using the CRCs. The one exception is
//!   the holds file, which no acknowledged record depends on and which is always rewritten
//!   whole: a failure to write it is returned by [`Log::set_hold`] / [`Log::release_hold`]
//!   without poisoning, and the previous holds stay in effect.
//! - **Monotonic seqs.** Sequence numbers are assigned contiguously and never go backwards,
//!   across restarts and even after every segment was reclaimed.
//! - **Recovery always finishes** without manual intervention: torn tails are truncated,
//!   corrupt records skipped and counted ([`Recovery`]). The only files that stop an open
//!   are ones whose loss could not be counted: a damaged checkpoint, a segment of an unknown
//!   format version, an encrypted segment holding undelivered records whose key is not
//!   available (see "Encryption").
//!
//! # Encryption
//!
//! With [`LogConfig::encryption`] set and a `write_key`, new segments are encrypted (format
//! version 2): each gets a fresh AES-256-GCM data key, stored in its header wrapped by a master
//! key of the [`Keyring`] (`lakehose_crypto`), and every record's data is sealed with it.
//! [`Log::set_encryption`] switches an open log; the switch starts a new segment at once (or
//! replaces the active one if it holds no record), so every append acknowledged after it is in
//! the new mode. Plaintext (version 1) and encrypted segments mix freely in one log.
//!
//! - **Same durability contract.** The record CRC covers the bytes as stored (ciphertext and
//!   tag), so torn writes and bit rot are found exactly as in plaintext segments; an encrypted
//!   record's CRC is continued from a different seed, so a segment whose header was damaged
//!   cannot have its ciphertext taken for plaintext records.
//! - **Fail closed.** A segment whose data key cannot be unwrapped (master key not in the
//!   keyring, another key under that id, no keyring) refuses the open with
//!   [`Error::Encryption`] if it holds a record at or above the checkpoint; if all its records
//!   were delivered it is only unreadable. A record whose CRC is right but whose
//!   authentication fails (tampering, a record moved to another position, segment or log) is
//!   never skipped: the reader returns [`Error::Encryption`].
//! - **Nonce uniqueness.** A record is sealed with nonce = its seq under its segment's data
//!   key. Seqs only grow within a segment, and an encrypted segment is never appended to after
//!   the log is reopened (recovery starts a new segment under a new key), so records torn by a
//!   crash are never followed by other data under the same (key, nonce).
//!
//! # On-disk format
//!
//! A log directory contains:
//!
//! ```text
//! 00000000000000000000.seg   segment files, named by the seq of their first record
//! 00000000000000001234.seg   (20 zero-padded decimal digits)
//! checkpoint                 the delivered position (see `checkpoint` below)
//! checkpoint.tmp             possibly, a checkpoint being written; ignored on open
//! holds                      the retention holds (see `holds` below); absent = no holds
//! holds.tmp                  possibly, holds being written; ignored on open
//! LOCK                       advisory lock held by the open `Log`
//! ```
//!
//! All integers are little-endian. A segment is a header (32 bytes in version 1, 192 in
//! version 2) followed by records:
//!
//! ```text
//! segment header, version 1 (plaintext), 32 bytes
//!   0  magic        8  b"LHWAL\0\0\x01"
//!   8  version      4  u32 = 1
//!  12  reserved     4  zero
//!  16  base_seq     8  u64, seq of the first record (= the file name)
//!  24  header_crc   4  u32, CRC32C of bytes 0..24
//!  28  pad          4  zero
//!
//! segment header, version 2 (encrypted), 192 bytes
//!   0  the 32 bytes above, with version = 2
//!  32  key_id_len   1  u8, 1..=64
//!  33  key_id       n  the master key id (ASCII [A-Za-z0-9_.-])
//! 33+n wrap_nonce  12  random nonce of the wrap
//! 45+n wrapped_key 48  the segment's data key, AES-256-GCM-wrapped by the master key, with
//!                      associated data "lakehose-wrap-v1" | id_len | key_id |
//!                      "lakehose-log-segment-v2" | base_seq u64 | log context
//! 93+n zero padding up to byte 188
//! 188  key_crc      4  u32, CRC32C of bytes 0..188
//!
//! record (24 + len bytes), repeated
//!   0  crc          4  u32, CRC32C of bytes 4..24+len (len, seq, arrival_ms, data);
//!                      in version 2, CRC32C continued from 0x4C484532 (crc32c_append)
//!   4  len          4  u32, data length, <= MAX_RECORD_BYTES; 0 is valid
//!                      (version 2: the sealed length, plaintext + 16)
//!   8  seq          8  u64
//!  16  arrival_ms   8  i64, milliseconds since the Unix epoch
//!  24  data       len  version 1: as appended. Version 2: AES-256-GCM ciphertext and 16-byte
//!                      tag under the segment's data key, nonce = seq u64 | 0u32, associated
//!                      data "lakehose-log-record-v2" | context_len u32 | log context |
//!                      base_seq u64 | seq u64 | arrival_ms i64
//! ```
//!
//! The checkpoint file is
//! `magic b"LHCKPT\0\x01" | committed u64 | pending_len u32 | pending | crc32c u32`
//! (the CRC covers everything before it); it is replaced atomically by writing
//! `checkpoint.tmp`, `fdatasync`, rename, directory fsync.
//!
//! The holds file is
//! `magic b"LHHOLD\0\x01" | count u32 | (name_len u16 | name | seq u64)* | crc32c u32`
//! (entries sorted by name, names 1..=128 bytes of `[A-Za-z0-9_.:-]`, the CRC covers everything
//! before it), replaced atomically the same way through `holds.tmp`. A damaged holds file
//! does not stop the open, but suspends reclamation until the holds are written again (the
//! `holds` module has the invariants).
//!
//! ## Invariants
//!
//! 1. Seqs are contiguous in write order: within a segment each record's seq is the
//!    previous one + 1, and a segment's first record has `base_seq`. Only damage creates
//!    gaps, which is why recovery may count the number of missing seqs as lost records.
//! 2. Only the last segment is ever appended to. A new segment is created (header written,
//!    `fdatasync`, directory fsync) only after everything in the previous one is durable,
//!    so damage past the last valid record of an *earlier* segment is corruption, while in
//!    the *last* segment it is a torn write that was never acknowledged.
//! 3. Bytes are acknowledged only after `fdatasync`; so a torn tail never holds an
//!    acknowledged record (unless the disk damaged fsync'd data, which is then counted).
//! 4. Segments are deleted oldest first, and only when all their records are below the
//!    retention limit `min(committed checkpoint, every hold)` and the next segment starts at
//!    or below it; the last segment is never deleted. Hence the oldest retained seq is `<=`
//!    the committed position and `<=` every hold that was set at or above the oldest
//!    retained seq of its time. Nothing is deleted while the holds are unknown (damaged
//!    holds file, until rewritten).
//! 5. On open, `next_seq = max(checkpoint.committed, every segment base, last valid seq + 1)`.
//! 6. The last segment is appended to after an open only if it is plaintext and the log
//!    writes plaintext; otherwise recovery starts a new segment at `next_seq` (replacing the
//!    last one when it holds no record and `next_seq` is its base). Each encrypted segment has
//!    its own data key, and no seq is sealed twice under one key.
//!
//! # Recovery
//!
//! The `recovery` module has the full rules. In short, a record is valid if it is
//! complete, its CRC matches and its seq is at least the expected one. A failing record
//! followed by a later valid record in the same segment is corrupt (counted, skipped; the
//! next valid record is found via the failing record's length when plausible, else by
//! scanning forward byte by byte). With nothing valid after it, it starts a torn tail in
//! the last segment (truncated and counted) or a corrupt tail in an earlier one.
//!
//! # Design notes
//!
//! - *Why a dedicated OS thread for writing, not a tokio task?* The writer spends its life
//!   in blocking `write`/`fdatasync` calls; a thread keeps them off the async runtime and
//!   makes group commit natural: everything queued while one fsync runs forms the next group.
//! - *Why not retry a failed fsync?* See "fail-stop" above (PostgreSQL "fsyncgate").
//! - *Why not delete a segment's records individually?* Deleting whole files is the only
//!   reclamation that needs no rewrite; `segment_bytes` bounds the retained excess.
//! - *Why are removals not followed by a directory fsync?* A removal that is lost in a
//!   crash only resurrects a segment wholly below the checkpoint; recovery deletes it again.
//! - *How is durability tested?* The [`sim`] module's `SimFs` simulates crashes (unsynced
//!   data and directory entries dropped, kept or torn) and I/O faults; `tests/model.rs`
//!   (a proptest state machine) and `tests/crash.rs` (every crash point of small
//!   workloads, power loss with an fsync-less control) check every recovery against what
//!   was acknowledged.
//! - *Why can appends overshoot `segment_bytes`?* A group is written to one segment with one
//!   fsync; a segment may exceed `segment_bytes` by at most one group.

use std::sync::Arc;

mod checkpoint;
mod error;
mod format;
mod fs;
mod handle;
mod holds;
mod reader;
mod recovery;
mod segment;
mod shared;
pub mod sim;
pub mod testing;
mod writer;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_encryption;
#[cfg(test)]
mod tests_holds;

pub use checkpoint::{CHECKPOINT_FILE, CHECKPOINT_TMP_FILE, Checkpoint};
pub use error::{Error, Result};
pub use format::{
    ENCRYPTED_FORMAT_VERSION, ENCRYPTED_SEGMENT_HEADER_LEN, FORMAT_VERSION, MAX_RECORD_BYTES,
    RECORD_HEADER_LEN, SEGMENT_HEADER_LEN,
};
pub use fs::{Fs, FsFile, FsLock, StdFs};
pub use handle::Log;
pub use holds::{HOLDS_FILE, HOLDS_TMP_FILE, MAX_HOLD_NAME_LEN};
pub use lakehose_crypto::Keyring;
pub use reader::LogReader;
pub use recovery::Recovery;
pub use segment::{parse_segment_file_name, segment_file_name};

/// Tuning of a [`Log`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll to a new segment once the active one reaches this size. Default 64 MiB.
    pub segment_bytes: u64,
    /// Upper bound of one group commit (encoded bytes); a single larger append is committed
    /// alone. Default 16 MiB.
    pub max_commit_bytes: usize,
    /// Bound of appended-but-unanswered bytes; further appends wait (async) for room.
    /// Default 64 MiB.
    pub max_pending_bytes: usize,
    /// `fdatasync` commits, new segments and checkpoints. Default true; false only for
    /// control tests that must show data loss without fsync.
    pub fsync: bool,
    /// Encryption at rest. `None`: new segments are plaintext, and an encrypted segment
    /// holding undelivered records refuses the open. Default `None`.
    pub encryption: Option<LogEncryption>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 64 * 1024 * 1024,
            max_commit_bytes: 16 * 1024 * 1024,
            max_pending_bytes: 64 * 1024 * 1024,
            fsync: true,
            encryption: None,
        }
    }
}

/// Encryption at rest of a [`Log`] (see "Encryption" in the crate docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEncryption {
    /// Unwraps the data keys of existing encrypted segments and wraps those of new ones.
    pub keyring: Arc<Keyring>,
    /// The master key that wraps the data keys of new segments; `None` writes new segments in
    /// plaintext (the keyring still reads the encrypted ones). Changed on an open log with
    /// [`Log::set_encryption`].
    pub write_key: Option<String>,
    /// Bound into every encrypted record's authenticated data and every segment's wrapped
    /// key (the engine uses the stream's name): must be the same at every open.
    pub context: Vec<u8>,
}

/// The durable end of the log, published after every group commit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Durable {
    /// Every record with `seq < next_seq` is fsync'd and readable.
    pub next_seq: u64,
    /// Payload bytes made durable since open (monotonic).
    pub bytes: u64,
}

/// A record read back from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    /// Its sequence number.
    pub seq: u64,
    /// Arrival time, milliseconds since the Unix epoch.
    pub arrival_ms: i64,
    /// The payload.
    pub data: bytes::Bytes,
}

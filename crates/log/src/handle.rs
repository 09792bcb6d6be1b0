//! [`Log`], the cloneable handle.
//!
//! Lock order: `Inner::retention` (held across checkpoint and holds file writes), then
//! `Shared::segments` (innermost, no I/O under it). The writer thread and readers only take
//! `segments`, so they never wait for a checkpoint's or a hold's fsync.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;

use bytes::Bytes;
use tokio::sync::{Semaphore, oneshot, watch};

use crate::checkpoint::{self, Checkpoint};
use crate::error::{Error, Result};
use crate::format::MAX_RECORD_BYTES;
use crate::fs::{Fs, FsLock, StdFs};
use crate::holds::{self, Loaded};
use crate::reader::LogReader;
use crate::recovery::{Recovery, recover};
use crate::shared::{Shared, lock};
use crate::writer::{Msg, Request, Writer};
use crate::{Durable, LogConfig};

/// Name of the lock file in the log directory.
const LOCK_FILE: &str = "LOCK";

/// A write-ahead log. Cheap to clone; all clones share one writer thread. Usable from any
/// number of tokio tasks and threads concurrently.
///
/// The writer thread stops on [`Log::close`] or when the last clone is dropped, after
/// finishing the appends already submitted.
#[derive(Clone)]
pub struct Log {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    tx: Sender<Msg>,
    /// Backpressure on appended-but-unanswered bytes.
    pending: Arc<Semaphore>,
    pending_cap: usize,
    closed: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The checkpoint and the holds; the mutex serializes `checkpoint`, `set_hold` and
    /// `release_hold`, and every reclaim decision is taken under it.
    retention: Mutex<Retention>,
    _lock: Box<dyn FsLock>,
}

/// What limits reclamation (see the `holds` module for the invariants).
struct Retention {
    /// The last checkpoint, as recovered on open or last written.
    checkpoint: Checkpoint,
    /// The holds, as last written successfully (or loaded on open).
    holds: BTreeMap<String, u64>,
    /// False while the holds file found on open was damaged and has not been rewritten yet:
    /// the holds are unknown, and nothing is reclaimed.
    holds_known: bool,
}

impl Retention {
    /// Segments whose records are all below this may be reclaimed; `None`: reclaim nothing.
    fn limit(&self) -> Option<u64> {
        self.holds_known
            .then(|| holds::retention_limit(self.checkpoint.committed, &self.holds))
    }
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.inner.shared.dir)
            .field("durable", &*self.inner.shared.durable.borrow())
            .field("poisoned", &self.inner.shared.poison.get())
            .finish_non_exhaustive()
    }
}

impl Log {
    /// Opens (creating if needed) the log in `dir`, running recovery.
    pub fn open(dir: &Path, config: LogConfig) -> Result<(Log, Recovery)> {
        Log::open_with_fs(dir, config, Arc::new(StdFs))
    }

    /// Same as [`Log::open`] with an injectable filesystem.
    pub fn open_with_fs(dir: &Path, config: LogConfig, fs: Arc<dyn Fs>) -> Result<(Log, Recovery)> {
        fs.create_dir_all(dir)
            .map_err(|e| Error::io("create directory", dir, e))?;
        let fs_lock = fs
            .lock(&dir.join(LOCK_FILE))
            .map_err(|source| Error::Locked {
                path: dir.to_path_buf(),
                source,
            })?;
        let recovered = recover(&*fs, dir, &config)?;

        let (durable, _) = watch::channel(Durable {
            next_seq: recovered.next_seq,
            bytes: 0,
        });
        let pending_cap = config
            .max_pending_bytes
            .clamp(1, u32::MAX as usize)
            .min(Semaphore::MAX_PERMITS);
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            fs,
            config,
            segments: Mutex::new(recovered.table),
            poison: OnceLock::new(),
            durable,
        });
        let (tx, rx) = mpsc::channel();
        let writer = Writer::new(shared.clone(), rx, recovered.active, recovered.next_seq);
        let thread = std::thread::Builder::new()
            .name("lakehose-log-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| Error::io("spawn writer thread for", dir, e))?;

        let log = Log {
            inner: Arc::new(Inner {
                shared,
                tx,
                pending: Arc::new(Semaphore::new(pending_cap)),
                pending_cap,
                closed: AtomicBool::new(false),
                thread: Mutex::new(Some(thread)),
                retention: Mutex::new(Retention {
                    checkpoint: recovered.checkpoint,
                    holds_known: matches!(recovered.holds, Loaded::Known(_)),
                    holds: match recovered.holds {
                        Loaded::Known(holds) => holds,
                        Loaded::Damaged(_) => BTreeMap::new(),
                    },
                }),
                _lock: fs_lock,
            }),
        };
        Ok((log, recovered.report))
    }

    /// Appends `records`, all with arrival time `arrival_ms` (milliseconds since the Unix
    /// epoch). Resolves only after the records are fsync'd, with the contiguous seqs they
    /// got. Zero-length records are valid; an empty `records` returns an empty range.
    ///
    /// Dropping the future before it resolves does not cancel the write: the records may
    /// still become durable, they are just not acknowledged.
    pub async fn append(&self, records: Vec<Bytes>, arrival_ms: i64) -> Result<Range<u64>> {
        self.check_writable()?;
        if let Some(r) = records.iter().find(|r| r.len() > MAX_RECORD_BYTES) {
            return Err(Error::RecordTooLarge {
                len: r.len(),
                max: MAX_RECORD_BYTES,
            });
        }
        if records.is_empty() {
            let next = self.inner.shared.durable.borrow().next_seq;
            return Ok(next..next);
        }
        let encoded = Request::encoded_len(&records);
        let permits = encoded.min(self.inner.pending_cap) as u32;
        let permit = self
            .inner
            .pending
            .clone()
            .acquire_many_owned(permits)
            .await
            .map_err(|_| Error::Closed)?;
        // Re-check: the log may have been poisoned or closed while waiting for room.
        self.check_writable()?;
        let (reply, answer) = oneshot::channel();
        self.inner
            .tx
            .send(Msg::Append(Request {
                records,
                arrival_ms,
                encoded,
                reply,
                _permit: permit,
            }))
            .map_err(|_| Error::Closed)?;
        // A dropped reply means the writer stopped without answering: the log was closed.
        answer.await.map_err(|_| Error::Closed)?
    }

    /// Writes new records encrypted under master key `master_key_id` of the configured
    /// keyring from now on (`None`: in plaintext). Takes effect before it returns: the writer
    /// starts a new segment (or replaces the active one if it holds no record), so every
    /// append submitted after this call resolved is stored in the new mode. Appends submitted
    /// before it are written before it, in the old mode. Existing segments keep their mode.
    ///
    /// Fails without changing anything ([`Error::Encryption`]) when no keyring is configured
    /// or it lacks `master_key_id`; a failure to create the new segment poisons the log.
    /// Lasts until the log is closed: reopen with the same setting in
    /// [`crate::LogEncryption::write_key`].
    pub async fn set_encryption(&self, master_key_id: Option<&str>) -> Result<()> {
        self.check_writable()?;
        if let Some(id) = master_key_id {
            let shared = &self.inner.shared;
            let keyring = shared.config.encryption.as_ref().map(|e| &e.keyring);
            match keyring {
                None => {
                    return Err(Error::encryption(
                        &shared.dir,
                        "no keyring is configured, and encryption needs one",
                    ));
                }
                Some(k) if !k.contains(id) => {
                    return Err(Error::encryption(
                        &shared.dir,
                        lakehose_crypto::Error::MissingKey(id.to_string()),
                    ));
                }
                Some(_) => {}
            }
        }
        let (reply, answer) = oneshot::channel();
        self.inner
            .tx
            .send(Msg::Encrypt {
                master_key_id: master_key_id.map(str::to_string),
                reply,
            })
            .map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }

    /// The master key id the active segment's data key is wrapped with; `None` when the
    /// active segment is plaintext.
    pub fn active_master_key(&self) -> Option<String> {
        let table = self.inner.shared.segments();
        table
            .segments
            .back()
            .and_then(|s| s.sealing.master_key_id().map(str::to_string))
    }

    /// A watch of the durable end; changes after every group commit.
    pub fn durable(&self) -> watch::Receiver<Durable> {
        self.inner.shared.durable.subscribe()
    }

    /// A reader over durable records starting at `from_seq`, which must be between
    /// [`Log::oldest_retained_seq`] and the durable end.
    pub fn reader(&self, from_seq: u64) -> Result<LogReader> {
        LogReader::new(self.inner.shared.clone(), from_seq)
    }

    /// Persists the checkpoint — every record with `seq < committed` is delivered, and
    /// `pending` is opaque bytes stored with it — then deletes the segments whose records
    /// are all below `committed` and below every hold (never the active segment; nothing
    /// while the holds are unknown, see [`Log::set_hold`]).
    ///
    /// `committed` may not move backwards nor beyond the durable end. Blocks for the
    /// checkpoint's fsyncs. A failure to write the checkpoint poisons the log; a failure to
    /// delete a segment is returned but harmless (it is retried by the next checkpoint or
    /// open).
    pub fn checkpoint(&self, committed: u64, pending: &[u8]) -> Result<()> {
        self.check_writable()?;
        let shared = &self.inner.shared;
        let mut retention = lock(&self.inner.retention);
        let last = &retention.checkpoint;
        let invalid = |reason: String| Error::InvalidCheckpoint { committed, reason };
        if committed < last.committed {
            return Err(invalid(format!("moves backwards from {}", last.committed)));
        }
        let durable = shared.durable.borrow().next_seq;
        if committed > durable {
            return Err(invalid(format!("beyond the durable end {durable}")));
        }
        if u32::try_from(pending.len()).is_err() {
            return Err(invalid(format!("{} pending bytes", pending.len())));
        }
        let new = Checkpoint {
            committed,
            pending: pending.to_vec(),
        };
        if let Err(e) = checkpoint::write(&*shared.fs, &shared.dir, &new, shared.config.fsync) {
            shared.poison(format!("writing the checkpoint: {e}"));
            return Err(e);
        }
        retention.checkpoint = new;
        self.reclaim(retention)
    }

    /// Pins retention: no record with seq >= `seq` is reclaimed while the hold named `name`
    /// exists, across restarts (persisted atomically in the log dir before returning). `seq`
    /// may be anything <= the durable end; setting a hold below
    /// [`Log::oldest_retained_seq`] is allowed (it protects only what is still there).
    /// Replaces an existing hold of that name; moving a hold forward reclaims what it no
    /// longer pins (and the checkpoint and the other holds allow).
    ///
    /// Names are 1..=128 bytes of `[A-Za-z0-9_.:-]`; an invalid name or a `seq` beyond the
    /// durable end fails with [`Error::InvalidHold`] and changes nothing. Blocks for the
    /// holds file's fsyncs.
    ///
    /// A failure to write the holds file is returned but does not poison the log (holds do
    /// not affect acknowledged records, and the file is always rewritten whole): the holds
    /// in effect stay the previous ones, while the file may hold the old or the new ones
    /// until the next successful write. A failure to delete a reclaimed segment is returned
    /// but harmless, as for [`Log::checkpoint`].
    ///
    /// If the holds file was damaged when the log was opened, the holds are unknown and no
    /// segment is reclaimed (not even by checkpoints) until the first successful `set_hold`
    /// or [`Log::release_hold`], which rewrites the file with the holds set since the open:
    /// owners of holds should set them again after every open.
    pub fn set_hold(&self, name: &str, seq: u64) -> Result<()> {
        self.check_writable()?;
        let invalid = |reason: String| Error::InvalidHold {
            name: name.to_string(),
            reason,
        };
        holds::validate_name(name).map_err(invalid)?;
        let mut retention = lock(&self.inner.retention);
        let durable = self.inner.shared.durable.borrow().next_seq;
        if seq > durable {
            return Err(invalid(format!(
                "seq {seq} is beyond the durable end {durable}"
            )));
        }
        let mut new = retention.holds.clone();
        new.insert(name.to_string(), seq);
        self.write_holds(&mut retention, new)?;
        self.reclaim(retention)
    }

    /// Removes the hold named `name` (a no-op when absent, unless the holds are unknown
    /// after a damaged holds file, which this then rewrites), persisted atomically before
    /// returning, then reclaims what the checkpoint and the remaining holds allow.
    ///
    /// An invalid name fails with [`Error::InvalidHold`]. Errors are as for
    /// [`Log::set_hold`]: a failed write keeps the hold in effect.
    pub fn release_hold(&self, name: &str) -> Result<()> {
        self.check_writable()?;
        holds::validate_name(name).map_err(|reason| Error::InvalidHold {
            name: name.to_string(),
            reason,
        })?;
        let mut retention = lock(&self.inner.retention);
        if retention.holds_known && !retention.holds.contains_key(name) {
            return Ok(());
        }
        let mut new = retention.holds.clone();
        new.remove(name);
        self.write_holds(&mut retention, new)?;
        self.reclaim(retention)
    }

    /// The current holds (name -> seq): those written since the open or loaded on open
    /// (none when the holds file was damaged).
    pub fn holds(&self) -> BTreeMap<String, u64> {
        lock(&self.inner.retention).holds.clone()
    }

    /// Persists `new` as the holds and makes it the holds in effect; on failure the holds
    /// in effect are unchanged.
    fn write_holds(&self, retention: &mut Retention, new: BTreeMap<String, u64>) -> Result<()> {
        let shared = &self.inner.shared;
        if let Err(e) = holds::write(&*shared.fs, &shared.dir, &new, shared.config.fsync) {
            tracing::warn!(dir = %shared.dir.display(), error = %e, "cannot write the holds");
            return Err(e);
        }
        retention.holds = new;
        retention.holds_known = true;
        Ok(())
    }

    /// Removes the reclaimable segments from the table while `retention` is held (so no
    /// later hold can be overtaken by this decision), then deletes their files.
    fn reclaim(&self, retention: MutexGuard<'_, Retention>) -> Result<()> {
        let shared = &self.inner.shared;
        let gone = match retention.limit() {
            Some(limit) => shared.segments().take_reclaimable(limit),
            None => Vec::new(),
        };
        drop(retention);
        let mut result = Ok(());
        for seg in gone {
            match shared.fs.remove(&seg.path) {
                Ok(()) => tracing::debug!(path = %seg.path.display(), "reclaimed segment"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %seg.path.display(), error = %e, "cannot remove reclaimed segment");
                    if result.is_ok() {
                        result = Err(Error::io("remove", seg.path, e));
                    }
                }
            }
        }
        result
    }

    /// The last checkpoint, as recovered on open or last written.
    pub fn last_checkpoint(&self) -> Checkpoint {
        lock(&self.inner.retention).checkpoint.clone()
    }

    /// The reason the log was poisoned, if it was.
    pub fn poisoned(&self) -> Option<String> {
        self.inner.shared.poison.get().cloned()
    }

    /// Bytes of segment files currently on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.inner.shared.segments().disk_bytes
    }

    /// Number of retained segment files (the active one included).
    pub fn segment_count(&self) -> usize {
        self.inner.shared.segments().segments.len()
    }

    /// The smallest seq a reader may start at (base of the oldest retained segment).
    pub fn oldest_retained_seq(&self) -> u64 {
        let oldest = self.inner.shared.segments().oldest_base();
        oldest.unwrap_or_else(|| self.inner.shared.durable.borrow().next_seq)
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.inner.shared.dir
    }

    /// Stops the writer thread after it finished the appends already submitted; later
    /// appends fail with [`Error::Closed`]. Blocks until the thread has stopped (at most
    /// one group commit). Also done when the last clone is dropped. Idempotent.
    pub fn close(&self) {
        self.inner.close();
    }

    fn check_writable(&self) -> Result<()> {
        self.inner.shared.check_poison()?;
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }
}

impl Inner {
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.pending.close();
        let _ = self.tx.send(Msg::Close);
        let thread = lock(&self.thread).take();
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            tracing::error!(dir = %self.shared.dir.display(), "log writer thread panicked");
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.close();
    }
}

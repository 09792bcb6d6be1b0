//! The writer thread: group commit.
//!
//! One dedicated OS thread per log owns the active segment's file handle and is the only
//! code that appends to segments. Its loop:
//!
//! 1. block for the first request (or take the one carried over from the last round);
//! 2. drain every request already queued, up to `max_commit_bytes` of encoded records (a
//!    single larger request is committed alone; the one that does not fit is carried over);
//! 3. assign contiguous seqs, encode all records with their CRC into one buffer;
//! 4. one `write_at`, one `fdatasync`;
//! 5. publish the new end in the segment table, then on the `durable` watch;
//! 6. if the active segment reached `segment_bytes`, roll: create the next segment (header,
//!    `fdatasync`, directory fsync);
//! 7. answer every request of the group.
//!
//! In an encrypted active segment, step 3 seals each record's data with the segment's data
//! key (nonce = the record's seq, which is never sealed twice under one key: seqs only grow
//! within a segment, and a segment is never appended to after a reopen). An encryption
//! change ([`Msg::Encrypt`]) is handled between groups, in queue order: appends submitted
//! after it are written in the new mode. It takes effect at once by starting a new segment
//! (or, if the active segment has no record, by replacing it under the same name).
//!
//! Invariants:
//! - a request is answered `Ok` only after step 4 succeeded for its bytes;
//! - seqs are assigned in commit order without gaps; `next_seq` only grows;
//! - the first write or fsync error poisons the log: the group is failed, every later
//!   request is failed with [`Error::Poisoned`], nothing is written or fsync'd again (an
//!   fsync is never retried: after a failure the kernel may have dropped the dirty pages
//!   and a retry could falsely succeed).

use std::io;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use crate::Durable;
use crate::error::{Error, Result};
use crate::format::{
    SEGMENT_HEADER_LEN, encode_record, encode_sealed_record, encoded_len, record_aad,
};
use crate::fs::FsFile;
use crate::segment::{SealWith, Sealing, create_segment, maybe_index};
use crate::shared::Shared;

/// A message to the writer thread.
pub(crate) enum Msg {
    Append(Request),
    /// From now on write new segments encrypted under this master key (`None`: plaintext),
    /// starting with a new active segment unless the active one already matches.
    Encrypt {
        master_key_id: Option<String>,
        reply: oneshot::Sender<Result<()>>,
    },
    /// Finish what is queued, then stop.
    Close,
}

pub(crate) struct Request {
    pub records: Vec<Bytes>,
    pub arrival_ms: i64,
    /// Encoded size of `records`.
    pub encoded: usize,
    pub reply: oneshot::Sender<Result<Range<u64>>>,
    /// Backpressure: released when the request is answered.
    pub _permit: OwnedSemaphorePermit,
}

impl Request {
    pub fn encoded_len(records: &[Bytes]) -> usize {
        records.iter().map(|r| encoded_len(r.len())).sum()
    }
}

pub(crate) struct Writer {
    shared: Arc<Shared>,
    rx: Receiver<Msg>,
    active: Box<dyn FsFile>,
    active_path: PathBuf,
    /// Base seq of the active segment.
    active_base: u64,
    /// How the active segment stores records.
    active_sealing: Sealing,
    /// Master key of new segments (`None`: plaintext).
    write_key: Option<String>,
    /// Write offset in the active segment (= its durable end while not poisoned).
    end: u64,
    next_seq: u64,
    durable_bytes: u64,
    buf: Vec<u8>,
    /// Scratch for the associated data of sealed records.
    aad: Vec<u8>,
    /// A message taken from the queue that did not fit the last group.
    carry: Option<Msg>,
}

impl Writer {
    pub fn new(
        shared: Arc<Shared>,
        rx: Receiver<Msg>,
        active: Box<dyn FsFile>,
        next_seq: u64,
    ) -> Writer {
        let (active_path, end, active_base, active_sealing) = {
            let table = shared.segments();
            let last = table
                .segments
                .back()
                .expect("recovery leaves an active segment");
            (last.path.clone(), last.end, last.base, last.sealing.clone())
        };
        let write_key = shared
            .config
            .encryption
            .as_ref()
            .and_then(|e| e.write_key.clone());
        Writer {
            shared,
            rx,
            active,
            active_path,
            active_base,
            active_sealing,
            write_key,
            end,
            next_seq,
            durable_bytes: 0,
            buf: Vec::new(),
            aad: Vec::new(),
            carry: None,
        }
    }

    pub fn run(mut self) {
        let max = self.shared.config.max_commit_bytes;
        let mut closing = false;
        loop {
            let msg = match self.carry.take() {
                Some(msg) => Some(msg),
                None if closing => self.rx.try_recv().ok(),
                None => self.rx.recv().ok(),
            };
            let first = match msg {
                Some(Msg::Append(req)) => req,
                Some(Msg::Encrypt {
                    master_key_id,
                    reply,
                }) => {
                    let _ = reply.send(self.switch(master_key_id));
                    continue;
                }
                Some(Msg::Close) => {
                    closing = true;
                    continue;
                }
                None => break,
            };
            let mut bytes = first.encoded;
            let mut group = vec![first];
            while bytes < max {
                match self.rx.try_recv() {
                    Ok(Msg::Append(req)) if bytes + req.encoded > max => {
                        self.carry = Some(Msg::Append(req));
                        break;
                    }
                    // Appends after an encryption change are written after it, in its mode.
                    Ok(msg @ Msg::Encrypt { .. }) => {
                        self.carry = Some(msg);
                        break;
                    }
                    Ok(Msg::Append(req)) => {
                        bytes += req.encoded;
                        group.push(req);
                    }
                    Ok(Msg::Close) => closing = true,
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            self.commit(group);
        }
        tracing::debug!(dir = %self.shared.dir.display(), next_seq = self.next_seq, "log writer stopped");
    }

    fn commit(&mut self, group: Vec<Request>) {
        if let Some(reason) = self.shared.poison.get() {
            for req in group {
                let _ = req.reply.send(Err(Error::Poisoned(reason.clone())));
            }
            return;
        }

        self.buf.clear();
        let first_seq = self.next_seq;
        // The last seq a log may assign is u64::MAX - 1 (format.rs never accepts u64::MAX), so
        // `next_seq` stays representable. Only a stray segment file named near u64::MAX can
        // bring a log here.
        let count: u64 = group.iter().map(|r| r.records.len() as u64).sum();
        if first_seq.checked_add(count).is_none() {
            let e = io::Error::other("sequence numbers are exhausted");
            return self.fail(group, "assign sequence numbers in", e);
        }
        let mut seq = first_seq;
        let mut payload = 0u64;
        let mut ranges = Vec::with_capacity(group.len());
        let context = self
            .shared
            .config
            .encryption
            .as_ref()
            .map_or(&[][..], |e| &e.context[..]);
        let mut failure = None;
        'encode: for req in &group {
            let start = seq;
            for data in &req.records {
                match &self.active_sealing {
                    Sealing::Plain => encode_record(&mut self.buf, seq, req.arrival_ms, data),
                    Sealing::Sealed { key, .. } => {
                        record_aad(
                            &mut self.aad,
                            context,
                            self.active_base,
                            seq,
                            req.arrival_ms,
                        );
                        if let Err(e) = encode_sealed_record(
                            &mut self.buf,
                            key,
                            &self.aad,
                            seq,
                            req.arrival_ms,
                            data,
                        ) {
                            failure = Some(format!("encrypting a record: {e}"));
                            break 'encode;
                        }
                    }
                    // Recovery never leaves a locked segment active.
                    Sealing::Locked(reason) => {
                        failure = Some(format!("the active segment is locked: {reason}"));
                        break 'encode;
                    }
                }
                payload += data.len() as u64;
                seq += 1;
            }
            ranges.push(start..seq);
        }
        if let Some(reason) = failure {
            return self.fail(group, "encrypt for", io::Error::other(reason));
        }
        let offset = self.end;

        if let Err(e) = self.active.write_at(&self.buf, offset) {
            return self.fail(group, "write", e);
        }
        if self.shared.config.fsync
            && let Err(e) = self.active.sync_data()
        {
            return self.fail(group, "fdatasync", e);
        }

        let written = self.buf.len() as u64;
        self.end += written;
        self.next_seq = seq;
        self.durable_bytes += payload;
        {
            let mut table = self.shared.segments();
            table.disk_bytes += written;
            let active = table.segments.back_mut().expect("active segment");
            active.end = self.end;
            active.next_seq = seq;
            active.disk_len += written;
            if seq > first_seq {
                maybe_index(&mut active.index, first_seq, offset);
            }
        }
        self.shared.durable.send_replace(Durable {
            next_seq: seq,
            bytes: self.durable_bytes,
        });
        // Roll before answering, so that when an append returns the log is quiescent
        // (tests and callers observe a deterministic segment layout). Under load the next
        // group would wait for the roll anyway. A failed roll poisons the log, but this
        // group is durable and is acknowledged.
        if self.end >= self.shared.config.segment_bytes.max(SEGMENT_HEADER_LEN + 1) {
            self.roll();
        }
        for (req, range) in group.into_iter().zip(ranges) {
            let _ = req.reply.send(Ok(range));
        }
        // Do not keep the memory of an unusually large group around.
        let keep = self.shared.config.max_commit_bytes.saturating_mul(2);
        if self.buf.capacity() > keep {
            self.buf = Vec::new();
        }
    }

    /// Starts the next segment at `next_seq` (encrypted under `write_key` if set). The old
    /// one is sealed as is. With `replace`, the active segment has no record and `next_seq`
    /// is its base: it is replaced by the new one under the same name (readers notice by its
    /// new epoch; none read it, as it had no record).
    fn roll_to(&mut self, replace: bool) {
        let shared = &self.shared;
        let seal = match (&shared.config.encryption, &self.write_key) {
            (Some(enc), Some(id)) => Some(SealWith {
                keyring: &enc.keyring,
                master_key_id: id,
                context: &enc.context,
            }),
            _ => None,
        };
        match create_segment(
            &*shared.fs,
            &shared.dir,
            self.next_seq,
            shared.config.fsync,
            seal,
        ) {
            Ok((file, meta)) => {
                tracing::debug!(path = %meta.path.display(), replace, encrypted = seal.is_some(), "rolled to a new segment");
                self.active = file;
                self.active_path = meta.path.clone();
                self.active_base = meta.base;
                self.active_sealing = meta.sealing.clone();
                self.end = meta.end;
                let mut table = shared.segments();
                if replace {
                    table.pop_last();
                }
                table.push(meta);
            }
            // A replacement may have truncated the active segment's header already: either
            // way the state of the active segment is unknown, so stop writing.
            Err(e) => shared.poison(format!("rolling to a new segment: {e}")),
        }
    }

    fn roll(&mut self) {
        self.roll_to(false);
    }

    /// Handles [`Msg::Encrypt`]: new segments are written under `master_key_id` from now on,
    /// starting now unless the active segment already is.
    fn switch(&mut self, master_key_id: Option<String>) -> Result<()> {
        self.shared.check_poison()?;
        let matches = match (&self.active_sealing, &master_key_id) {
            (Sealing::Plain, None) => true,
            (Sealing::Sealed { master_key_id, .. }, Some(id)) => &**master_key_id == id,
            _ => false,
        };
        self.write_key = master_key_id;
        if !matches {
            let replace = self.next_seq == self.active_base;
            self.roll_to(replace);
            tracing::info!(dir = %self.shared.dir.display(), encrypted = self.write_key.is_some(),
                master_key_id = self.write_key.as_deref().unwrap_or(""), "log encryption changed");
        }
        self.shared.check_poison()
    }

    /// Poisons the log and fails the whole group with the I/O error.
    fn fail(&mut self, group: Vec<Request>, op: &'static str, e: io::Error) {
        self.shared
            .poison(format!("{op} {} failed: {e}", self.active_path.display()));
        for req in group {
            let source = io::Error::new(e.kind(), e.to_string());
            let _ = req
                .reply
                .send(Err(Error::io(op, self.active_path.clone(), source)));
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // A bug, not an I/O error, but the state of the active segment is unknown either
        // way: stop writing. Pending and later appends see the channel closed.
        if std::thread::panicking() {
            self.shared.poison("log writer thread panicked".to_string());
        }
    }
}

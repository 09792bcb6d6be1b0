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
use crate::format::{SEGMENT_HEADER_LEN, encode_record, encoded_len};
use crate::fs::FsFile;
use crate::segment::{create_segment, maybe_index};
use crate::shared::Shared;

/// A message to the writer thread.
pub(crate) enum Msg {
    Append(Request),
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
    /// Write offset in the active segment (= its durable end while not poisoned).
    end: u64,
    next_seq: u64,
    durable_bytes: u64,
    buf: Vec<u8>,
    carry: Option<Request>,
}

impl Writer {
    pub fn new(
        shared: Arc<Shared>,
        rx: Receiver<Msg>,
        active: Box<dyn FsFile>,
        next_seq: u64,
    ) -> Writer {
        let (active_path, end) = {
            let table = shared.segments();
            let last = table
                .segments
                .back()
                .expect("recovery leaves an active segment");
            (last.path.clone(), last.end)
        };
        Writer {
            shared,
            rx,
            active,
            active_path,
            end,
            next_seq,
            durable_bytes: 0,
            buf: Vec::new(),
            carry: None,
        }
    }

    pub fn run(mut self) {
        let max = self.shared.config.max_commit_bytes;
        let mut closing = false;
        loop {
            let first = match self.carry.take() {
                Some(req) => req,
                None => {
                    let msg = if closing {
                        self.rx.try_recv().ok()
                    } else {
                        self.rx.recv().ok()
                    };
                    match msg {
                        Some(Msg::Append(req)) => req,
                        Some(Msg::Close) => {
                            closing = true;
                            continue;
                        }
                        None => break,
                    }
                }
            };
            let mut bytes = first.encoded;
            let mut group = vec![first];
            while bytes < max {
                match self.rx.try_recv() {
                    Ok(Msg::Append(req)) if bytes + req.encoded > max => {
                        self.carry = Some(req);
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
        for req in &group {
            let start = seq;
            for data in &req.records {
                encode_record(&mut self.buf, seq, req.arrival_ms, data);
                payload += data.len() as u64;
                seq += 1;
            }
            ranges.push(start..seq);
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

    /// Starts the next segment at `next_seq`. The old one is sealed as is.
    fn roll(&mut self) {
        let shared = &self.shared;
        match create_segment(&*shared.fs, &shared.dir, self.next_seq, shared.config.fsync) {
            Ok((file, meta)) => {
                tracing::debug!(path = %meta.path.display(), "rolled to a new segment");
                self.active = file;
                self.active_path = meta.path.clone();
                self.end = meta.end;
                shared.segments().push(meta);
            }
            Err(e) => shared.poison(format!("rolling to a new segment: {e}")),
        }
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

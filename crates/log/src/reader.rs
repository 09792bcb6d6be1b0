//! Readers over durable records.
//!
//! A reader walks segments in order, one open file at a time, reading in chunks. It only
//! reads below a segment's `end` from the segment table, which the writer advances after
//! each fsync, so it never sees non-durable bytes. Every record's CRC is checked again on
//! read: bit rot after recovery is detected, counted and skipped like in recovery, never
//! returned.
//!
//! Records of encrypted segments are decrypted after their CRC checked; one that fails
//! authentication (tampering, a record moved to another position or log, another key under
//! the same id) is not skipped: `next` returns [`Error::Encryption`] and stays there (fail
//! closed: no plaintext garbage, no silent loss).
//!
//! Invariants: `position()` only grows; records are returned in seq order, each at most
//! once; a record returned has a matching CRC (and, if encrypted, authenticated) and
//! `seq >= position()` before the call. A reader never reads a segment file under a different
//! epoch than the one its cursor was opened with (an active segment without records may be
//! replaced under the same name when encryption is switched).

use std::io;
use std::sync::Arc;

use bytes::Bytes;

use crate::LogRecord;
use crate::error::{Error, Result};
use crate::format::{
    Parsed, RECORD_HEADER_LEN, RecordHeader, find_next_valid, parse_record, record_aad,
};
use crate::fs::FsFile;
use crate::segment::Sealing;
use crate::shared::Shared;

/// Bytes read from a segment at a time.
const READ_CHUNK: u64 = 1024 * 1024;

/// A reader over durable records; see [`crate::Log::reader`].
pub struct LogReader {
    shared: Arc<Shared>,
    /// Next seq to return.
    pos: u64,
    cursor: Cursor,
    /// Bytes of the current segment starting at `buf_start`. Records handed out are slices
    /// of it (no copy per record); a chunk lives as long as any record from it.
    buf: Bytes,
    buf_start: u64,
    corrupt: u64,
    /// One past the seq of the last valid record passed in file order: the smallest seq a
    /// record found by resynchronising after damage may have, as recovery's expected seq.
    /// Resynchronising by `pos` instead would, for a reader still positioning, refuse the
    /// record recovery accepted there and scan on into later payloads.
    scan_min: u64,
}

struct Cursor {
    base: u64,
    file: Box<dyn FsFile>,
    offset: u64,
    /// Readable end (durable, valid) as last seen in the segment table.
    end: u64,
    /// How the segment's records are stored.
    sealing: Sealing,
    /// The segment file's epoch when the cursor was opened.
    epoch: u64,
}

impl std::fmt::Debug for LogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader")
            .field("position", &self.pos)
            .field("segment", &self.cursor.base)
            .field("offset", &self.cursor.offset)
            .field("corrupt_records", &self.corrupt)
            .finish()
    }
}

impl LogReader {
    pub(crate) fn new(shared: Arc<Shared>, from_seq: u64) -> Result<LogReader> {
        let durable = shared.durable.borrow().next_seq;
        if from_seq > durable {
            return Err(Error::BeyondEnd {
                seq: from_seq,
                durable,
            });
        }
        let (base, path, offset, end, oldest, sealing, epoch) = {
            let table = shared.segments();
            let oldest = table.oldest_base().unwrap_or(durable);
            let seg = table.locate(from_seq).ok_or(Error::NotRetained {
                seq: from_seq,
                oldest,
            })?;
            (
                seg.base,
                seg.path.clone(),
                seg.seek_offset(from_seq),
                seg.end,
                oldest,
                seg.sealing.clone(),
                seg.epoch,
            )
        };
        let file = shared.fs.open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NotRetained {
                seq: from_seq,
                oldest,
            },
            _ => Error::io("open", path.clone(), e),
        })?;
        Ok(LogReader {
            shared,
            pos: from_seq,
            cursor: Cursor {
                base,
                file,
                offset,
                end,
                sealing,
                epoch,
            },
            buf: Bytes::new(),
            buf_start: 0,
            corrupt: 0,
            scan_min: 0,
        })
    }

    /// The next durable record, or `None` at the durable end (call again after
    /// [`crate::Log::durable`] changed). Skips and counts corrupt records.
    #[allow(clippy::should_implement_trait)] // fallible and resumable after `None`
    pub fn next(&mut self) -> Result<Option<LogRecord>> {
        loop {
            if self.cursor.offset >= self.cursor.end {
                // Refresh the end or move to the next segment, which may itself hold no
                // durable record yet: check again rather than read past `end`.
                if !self.advance()? {
                    return Ok(None);
                }
                continue;
            }
            let start = self.cursor.offset;
            let avail = self.cursor.end - start;
            let header = if avail >= RECORD_HEADER_LEN as u64 {
                RecordHeader::decode(self.fill(start, RECORD_HEADER_LEN)?)
            } else {
                None
            };
            let flavor = self.cursor.sealing.flavor();
            let Some(header) =
                header.filter(|h| h.plausible_len(flavor) && h.total_len() as u64 <= avail)
            else {
                self.skip_damage()?;
                continue;
            };
            let bytes = self.fill_bytes(start, header.total_len())?;
            if !matches!(
                parse_record(&bytes, self.scan_min, flavor),
                Parsed::Valid(_)
            ) {
                self.skip_damage()?;
                continue;
            }
            if header.seq < self.pos {
                // Positioning: the segment index points at or before the wanted seq.
                self.scan_min = header.seq + 1;
                self.cursor.offset += header.total_len() as u64;
                continue;
            }
            // Decrypt before moving on: a record that fails stays the next one (fail closed).
            let data = self.open_record(bytes.slice(RECORD_HEADER_LEN..), &header)?;
            self.scan_min = header.seq + 1;
            self.cursor.offset += header.total_len() as u64;
            self.pos = header.seq + 1;
            return Ok(Some(LogRecord {
                seq: header.seq,
                arrival_ms: header.arrival_ms,
                data,
            }));
        }
    }

    /// The data of a valid record: as stored, or decrypted and authenticated.
    fn open_record(&self, stored: Bytes, header: &RecordHeader) -> Result<Bytes> {
        match &self.cursor.sealing {
            Sealing::Plain => Ok(stored),
            Sealing::Sealed { key, .. } => {
                let context = self
                    .shared
                    .config
                    .encryption
                    .as_ref()
                    .map_or(&[][..], |e| &e.context[..]);
                let mut aad = Vec::new();
                record_aad(
                    &mut aad,
                    context,
                    self.cursor.base,
                    header.seq,
                    header.arrival_ms,
                );
                let mut buf = stored.to_vec();
                let len = key
                    .open_in_place(lakehose_crypto::nonce(header.seq, 0), &aad, &mut buf)
                    .map_err(|e| {
                        tracing::error!(segment = self.cursor.base, seq = header.seq, error = %e,
                            "an encrypted record failed authentication");
                        Error::encryption(
                            self.segment_path(),
                            format!(
                                "record {} failed authentication (tampered, moved, or written \
                                 under another key): {e}",
                                header.seq
                            ),
                        )
                    })?
                    .len();
                buf.truncate(len);
                Ok(Bytes::from(buf))
            }
            Sealing::Locked(reason) => Err(Error::encryption(
                self.segment_path(),
                format!("record {} cannot be decrypted: {reason}", header.seq),
            )),
        }
    }

    fn segment_path(&self) -> std::path::PathBuf {
        self.shared
            .dir
            .join(crate::segment::segment_file_name(self.cursor.base))
    }

    /// The next seq this reader will return (or a larger one, if records are missing).
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Corrupt records this reader skipped.
    pub fn corrupt_records(&self) -> u64 {
        self.corrupt
    }

    /// At the end of what is known readable: refresh it, or move to the next segment.
    /// Returns false at the durable end of the log.
    fn advance(&mut self) -> Result<bool> {
        let next = {
            let table = self.shared.segments();
            match table.get(self.cursor.base) {
                Some(seg) if seg.epoch == self.cursor.epoch => {
                    if seg.end > self.cursor.offset {
                        // The same file, grown.
                        self.cursor.end = seg.end;
                        return Ok(true);
                    }
                    table.after(self.cursor.base).cloned()
                }
                // Replaced under the same name (it had no record): open the new file.
                Some(seg) => {
                    tracing::debug!(segment = seg.base, "reader reopens a replaced segment");
                    Some(seg.clone())
                }
                None => table.after(self.cursor.base).cloned(),
            }
        };
        // Sealed (a later segment exists) or reclaimed: move on.
        let Some(seg) = next else {
            return Ok(false);
        };
        let file = self
            .shared
            .fs
            .open(&seg.path)
            .map_err(|e| Error::io("open", &seg.path, e))?;
        self.cursor = Cursor {
            base: seg.base,
            file,
            offset: seg.start,
            end: seg.end,
            sealing: seg.sealing,
            epoch: seg.epoch,
        };
        self.buf = Bytes::new();
        Ok(true)
    }

    /// Returns `len` bytes at `offset` of the current segment, reading ahead in chunks.
    /// The caller guarantees `offset + len <= self.cursor.end`.
    fn fill(&mut self, offset: u64, len: usize) -> Result<&[u8]> {
        let (at, len) = self.fill_range(offset, len)?;
        Ok(&self.buf[at..at + len])
    }

    /// Like [`Self::fill`], but returns a shared slice of the chunk.
    fn fill_bytes(&mut self, offset: u64, len: usize) -> Result<Bytes> {
        let (at, len) = self.fill_range(offset, len)?;
        Ok(self.buf.slice(at..at + len))
    }

    /// Makes `[offset, offset + len)` buffered; returns its position in `buf`.
    fn fill_range(&mut self, offset: u64, len: usize) -> Result<(usize, usize)> {
        let buffered = offset >= self.buf_start
            && offset + len as u64 <= self.buf_start + self.buf.len() as u64;
        if !buffered {
            let want = (len as u64)
                .max(READ_CHUNK)
                .min(self.cursor.end - offset)
                .max(len as u64);
            let mut chunk = vec![0u8; want as usize];
            self.buf = Bytes::new();
            self.buf_start = offset;
            if let Err(e) = self.cursor.file.read_exact_at(&mut chunk, offset) {
                return Err(self.read_error(e));
            }
            self.buf = Bytes::from(chunk);
        }
        Ok(((offset - self.buf_start) as usize, len))
    }

    /// The record at the cursor is not valid: find the next valid one in this segment, or
    /// give up on the rest of it.
    fn skip_damage(&mut self) -> Result<()> {
        let start = self.cursor.offset;
        let mut rest = vec![0u8; (self.cursor.end - start) as usize];
        self.cursor
            .file
            .read_exact_at(&mut rest, start)
            .map_err(|e| self.read_error(e))?;
        self.buf = Bytes::new();
        let flavor = self.cursor.sealing.flavor();
        let (skipped, lost) = match find_next_valid(&rest, self.scan_min, flavor) {
            Some((off, h)) => (off as u64, h.seq.saturating_sub(self.pos).max(1)),
            None => (rest.len() as u64, 1),
        };
        tracing::warn!(
            segment = self.cursor.base,
            offset = start,
            skipped_bytes = skipped,
            "reader skipped a corrupt record"
        );
        self.corrupt += lost;
        self.cursor.offset += skipped;
        Ok(())
    }

    fn read_error(&self, e: io::Error) -> Error {
        Error::io("read", self.segment_path(), e)
    }
}

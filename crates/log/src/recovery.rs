//! Recovery: turn whatever is in the log directory into a consistent, appendable log.
//!
//! Rules (see the crate docs for the format):
//! - Segments are processed in base order; records in file order. A record is valid if it
//!   is complete, its CRC matches and its seq is at least the next expected one.
//! - When a record is not valid, look ahead in the same segment for a later valid record
//!   ([`find_next_valid`]). If one exists, the bytes in between are a *corrupt region*:
//!   counted, skipped, never returned. If none exists, the rest of the segment is a
//!   *damaged tail*: in the last segment it is a torn write and is truncated (counted in
//!   `torn_tail_bytes`); in an earlier segment it is corruption (counted, left on disk,
//!   excluded by the segment's `end`).
//! - Counting: the log assigns contiguous seqs, so the number of corrupt records is the
//!   number of seqs missing between valid records (only those `>= committed` count: older
//!   ones were delivered and may legitimately be gone); a damaged region that hides no
//!   missing seq counts as one.
//! - A segment header that does not decode: in the last segment with no valid record it is
//!   a torn segment creation — the file is removed (its length counts as torn) and a fresh
//!   segment is created. Otherwise the segment is counted in `corrupt_segments` and its
//!   records, which carry their own CRC and seq, are still recovered (read-only); appending
//!   continues in a new segment.
//! - A header of an unknown format version stops the open with an error: never guess.
//! - `next_seq = max(checkpoint.committed, every segment base, last valid seq + 1)`, so
//!   seqs never go backwards, even when every segment was reclaimed.
//! - With `fsync` on, the state recovery built on is made durable (the active segment's
//!   data and the directory) before the log acknowledges anything: after a failed fsync
//!   and a restart, what recovery read may exist only in the page cache.
//! - Segments wholly below the checkpoint (e.g. resurrected after a crash because their
//!   removal was not yet durable) are reclaimed.
//!
//! Recovery is a bounded forward walk over each file: it cannot loop or hang.

use std::path::Path;

use crate::checkpoint::{self, Checkpoint};
use crate::error::{Error, Result};
use crate::format::{
    Header, Parsed, SEGMENT_HEADER_LEN, decode_segment_header, find_next_valid, parse_record,
};
use crate::fs::{Fs, FsFile};
use crate::segment::{
    SegmentMeta, SegmentTable, create_segment, maybe_index, parse_segment_file_name,
    segment_file_name,
};

/// What recovery found on open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Segment files found.
    pub segments: usize,
    /// Valid records found (including ones below the checkpoint).
    pub records: u64,
    /// Payload bytes of those records.
    pub bytes: u64,
    /// Bytes cut off the end of the last segment (torn writes), plus the length of a
    /// removed torn last segment.
    pub torn_tail_bytes: u64,
    /// Records detected as corrupt; they are never returned.
    pub corrupt_records: u64,
    /// Segments (other than a torn last one) whose header is damaged. Their records are
    /// still recovered.
    pub corrupt_segments: u64,
    /// Segments removed on open because all their records are below the checkpoint.
    pub reclaimed_segments: u64,
    /// The sequence number the next appended record gets.
    pub next_seq: u64,
    /// The checkpoint's committed position (0 without checkpoint).
    pub committed: u64,
}

/// The recovered state handed to the writer and the `Log`.
pub(crate) struct Recovered {
    pub report: Recovery,
    pub checkpoint: Checkpoint,
    pub table: SegmentTable,
    /// Open handle of the last segment in `table`, the active one.
    pub active: Box<dyn FsFile>,
    pub next_seq: u64,
}

/// Tracks expected seqs across segments and turns gaps and damaged regions into counts.
struct Damage {
    expected: u64,
    committed: u64,
    /// A damaged region was skipped since the last valid record.
    dirty: bool,
    corrupt_records: u64,
}

impl Damage {
    fn valid(&mut self, seq: u64) {
        let lost = seq.saturating_sub(self.expected.max(self.committed));
        self.corrupt_records += if lost == 0 && self.dirty { 1 } else { lost };
        self.dirty = false;
        self.expected = seq + 1;
    }

    fn damaged(&mut self) {
        self.dirty = true;
    }

    fn finish(&mut self) {
        if self.dirty {
            self.corrupt_records += 1;
            self.dirty = false;
        }
    }
}

/// Result of scanning the records of one segment.
struct Scan {
    records: u64,
    bytes: u64,
    /// Offset just past the last valid record.
    end: u64,
    next_seq: Option<u64>,
    index: Vec<(u64, u64)>,
    /// Start of a damaged tail with no valid record after it.
    tail: Option<u64>,
}

fn scan_segment(data: &[u8], damage: &mut Damage) -> Scan {
    let mut scan = Scan {
        records: 0,
        bytes: 0,
        end: SEGMENT_HEADER_LEN,
        next_seq: None,
        index: Vec::new(),
        tail: None,
    };
    let mut pos = SEGMENT_HEADER_LEN as usize;
    while pos < data.len() {
        match parse_record(&data[pos..], damage.expected) {
            Parsed::Valid(h) => {
                damage.valid(h.seq);
                maybe_index(&mut scan.index, h.seq, pos as u64);
                scan.records += 1;
                scan.bytes += u64::from(h.len);
                scan.next_seq = Some(h.seq + 1);
                pos += h.total_len();
                scan.end = pos as u64;
            }
            Parsed::Incomplete | Parsed::Invalid => {
                match find_next_valid(&data[pos..], damage.expected) {
                    Some((skip, _)) => {
                        tracing::warn!(
                            offset = pos,
                            skipped_bytes = skip,
                            "corrupt record skipped"
                        );
                        damage.damaged();
                        pos += skip;
                    }
                    None => {
                        scan.tail = Some(pos as u64);
                        break;
                    }
                }
            }
        }
    }
    scan
}

pub(crate) fn recover(fs: &dyn Fs, dir: &Path, fsync: bool) -> Result<Recovered> {
    fs.create_dir_all(dir)
        .map_err(|e| Error::io("create directory", dir, e))?;
    let checkpoint = checkpoint::read(fs, dir)?.unwrap_or_default();
    let committed = checkpoint.committed;

    let mut bases: Vec<u64> = fs
        .list(dir)
        .map_err(|e| Error::io("list", dir, e))?
        .iter()
        .filter_map(|name| parse_segment_file_name(name))
        .collect();
    bases.sort_unstable();

    let mut report = Recovery {
        segments: bases.len(),
        committed,
        ..Recovery::default()
    };
    let mut damage = Damage {
        expected: bases.first().copied().unwrap_or(0),
        committed,
        dirty: false,
        corrupt_records: 0,
    };
    let mut table = SegmentTable::default();
    let mut next_seq = committed;
    // Handle of the last retained segment, if it can take appends (valid header).
    let mut appendable: Option<Box<dyn FsFile>> = None;
    let mut data = Vec::new();

    for (i, &base) in bases.iter().enumerate() {
        let last = i + 1 == bases.len();
        let path = dir.join(segment_file_name(base));
        next_seq = next_seq.max(base);

        let file = fs.open(&path).map_err(|e| Error::io("open", &path, e))?;
        let len = file.len().map_err(|e| Error::io("stat", &path, e))?;
        data.clear();
        data.resize(len as usize, 0);
        file.read_exact_at(&mut data, 0)
            .map_err(|e| Error::io("read", &path, e))?;

        let header_ok = match decode_segment_header(&data) {
            Header::Valid { base_seq } if base_seq == base => true,
            Header::Valid { base_seq } => {
                tracing::warn!(path = %path.display(), header_base = base_seq, "segment header does not match its file name");
                false
            }
            Header::Unsupported { version } => {
                return Err(Error::UnsupportedVersion { path, version });
            }
            Header::Invalid(reason) => {
                tracing::warn!(path = %path.display(), reason, "damaged segment header");
                false
            }
        };

        let scan = scan_segment(&data, &mut damage);

        if !header_ok && scan.records == 0 && last {
            // Torn segment creation: nothing in it was ever acknowledged.
            tracing::warn!(path = %path.display(), bytes = len, "removing torn last segment");
            drop(file);
            fs.remove(&path)
                .map_err(|e| Error::io("remove", &path, e))?;
            if fsync {
                fs.sync_dir(dir)
                    .map_err(|e| Error::io("fsync directory", dir, e))?;
            }
            report.torn_tail_bytes += len;
            continue;
        }
        if !header_ok {
            report.corrupt_segments += 1;
        }

        let mut disk_len = len;
        if let Some(tail) = scan.tail {
            if last {
                tracing::warn!(path = %path.display(), offset = tail, bytes = len - tail, "truncating torn tail");
                file.truncate(tail)
                    .map_err(|e| Error::io("truncate", &path, e))?;
                if fsync {
                    file.sync_data()
                        .map_err(|e| Error::io("fdatasync", &path, e))?;
                }
                report.torn_tail_bytes += len - tail;
                disk_len = tail;
            } else {
                tracing::warn!(path = %path.display(), offset = tail, bytes = len - tail, "corrupt segment tail skipped");
                damage.damaged();
            }
        }

        report.records += scan.records;
        report.bytes += scan.bytes;
        table.push(SegmentMeta {
            base,
            path,
            end: scan.end,
            next_seq: scan.next_seq.unwrap_or(base),
            index: scan.index,
            disk_len,
        });
        appendable = (last && header_ok).then_some(file);
    }
    damage.finish();
    report.corrupt_records = damage.corrupt_records;
    next_seq = next_seq.max(damage.expected);

    let active = match appendable {
        // What recovery read may be only in the page cache: after a failed roll (its
        // fdatasync or directory fsync failed, the log was poisoned) a clean restart finds
        // the new segment complete but neither its header nor its directory entry durable,
        // and appends acknowledged there would vanish with it on power loss (found by the
        // crash simulator, `tests/model.rs`). So make the recovered state durable before
        // anything is acknowledged on top of it. This is not the forbidden fsync retry:
        // whatever a failed fsync dropped is simply absent from what is synced now, and
        // nothing acknowledged depends on it.
        Some(file) => {
            if fsync {
                let path = table
                    .segments
                    .back()
                    .map(|s| s.path.clone())
                    .unwrap_or_default();
                file.sync_data()
                    .map_err(|e| Error::io("fdatasync", &path, e))?;
                fs.sync_dir(dir)
                    .map_err(|e| Error::io("fsync directory", dir, e))?;
            }
            file
        }
        None => {
            // Never reuse the name of a retained segment (one whose header is damaged may end
            // below `next_seq` only through garbage, but `create` would truncate it).
            if let Some(last) = table.segments.back() {
                next_seq = next_seq.max(last.base.saturating_add(1));
            }
            let (file, meta) = create_segment(fs, dir, next_seq, fsync)?;
            table.push(meta);
            file
        }
    };

    for seg in table.take_reclaimable(committed) {
        match fs.remove(&seg.path) {
            Ok(()) => report.reclaimed_segments += 1,
            // Not fatal: it will be reclaimed on the next open.
            Err(e) => {
                tracing::warn!(path = %seg.path.display(), error = %e, "cannot remove reclaimed segment")
            }
        }
    }

    report.next_seq = next_seq;
    tracing::info!(
        dir = %dir.display(),
        segments = report.segments,
        records = report.records,
        torn_tail_bytes = report.torn_tail_bytes,
        corrupt_records = report.corrupt_records,
        corrupt_segments = report.corrupt_segments,
        next_seq,
        committed,
        "log recovered"
    );
    Ok(Recovered {
        report,
        checkpoint,
        table,
        active,
        next_seq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn damage() -> Damage {
        Damage {
            expected: 0,
            committed: 0,
            dirty: false,
            corrupt_records: 0,
        }
    }

    #[test]
    fn counts_missing_seqs_or_one_per_region() {
        let mut d = damage();
        d.valid(0);
        d.damaged();
        d.valid(4); // seqs 1..4 lost
        assert_eq!(d.corrupt_records, 3);
        d.damaged();
        d.valid(5); // garbage region hiding no seq
        assert_eq!(d.corrupt_records, 4);
        d.damaged();
        d.finish();
        assert_eq!(d.corrupt_records, 5);
    }

    #[test]
    fn gaps_below_committed_are_not_corruption() {
        let mut d = Damage {
            committed: 10,
            ..damage()
        };
        d.valid(0);
        d.valid(12); // 1..10 delivered and reclaimed; 10 and 11 lost
        assert_eq!(d.corrupt_records, 2);
    }
}

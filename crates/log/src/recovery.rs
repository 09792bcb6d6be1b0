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
//! - Encrypted (version-2) segments: their records are scanned with the sealed CRC flavor
//!   (no key is needed to find them), and the data key in the header is unwrapped with the
//!   keyring. If that fails (master key missing, another key under its id, no keyring) and
//!   the segment holds a record at or above the checkpoint, the open fails with
//!   [`Error::Encryption`]: fail closed, nothing is truncated or written. A segment whose
//!   records were all delivered only becomes unreadable ("locked").
//! - A segment whose header is damaged and whose records only check as encrypted lost its
//!   data key with its header: its records are counted as corrupt (never returned) and
//!   `next_seq` moves past them.
//! - The last segment is appended to again only if it is plaintext and the log writes
//!   plaintext. Otherwise (an encrypted segment, whose nonces must never be reused after a
//!   crash tore records under its key, or a mode change) appends go to a new segment at
//!   `next_seq` under a fresh data key — replacing the last segment if it has no record
//!   (same name).
//! - `next_seq = max(checkpoint.committed, every segment base, last valid seq + 1)`, so
//!   seqs never go backwards, even when every segment was reclaimed.
//! - With `fsync` on, the state recovery built on is made durable (the active segment's
//!   data and the directory) before the log acknowledges anything: after a failed fsync
//!   and a restart, what recovery read may exist only in the page cache.
//! - Segments wholly below the retention limit, `min(checkpoint.committed, every hold)` (e.g.
//!   resurrected after a crash because their removal was not yet durable), are reclaimed. A
//!   damaged `holds` file does not stop the open, but then nothing is reclaimed (fail safe:
//!   the holds it held are unknown; see the `holds` module).
//!
//! Recovery is a bounded forward walk over each file: it cannot loop or hang.

use std::path::Path;

use std::sync::Arc;

use crate::LogConfig;
use crate::checkpoint::{self, Checkpoint};
use crate::error::{Error, Result};
use crate::format::{
    Flavor, Header, Parsed, SEGMENT_HEADER_LEN, decode_segment_header, find_next_valid,
    parse_record, segment_wrap_context,
};
use crate::fs::{Fs, FsFile};
use crate::holds::{self, HOLDS_FILE, Loaded};
use crate::segment::{
    SealWith, Sealing, SegmentMeta, SegmentTable, create_segment, maybe_index, next_epoch,
    parse_segment_file_name, segment_file_name,
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
    /// Segments removed on open because all their records are below the checkpoint and
    /// every hold.
    pub reclaimed_segments: u64,
    /// The sequence number the next appended record gets.
    pub next_seq: u64,
    /// The checkpoint's committed position (0 without checkpoint).
    pub committed: u64,
    /// Encrypted segments among the retained ones (after recovery), the new active one
    /// included.
    pub encrypted_segments: u64,
    /// Holds loaded from the `holds` file.
    pub holds: usize,
    /// The `holds` file exists but is damaged: the holds are unknown, nothing was reclaimed
    /// on open, and nothing will be until the next `Log::set_hold` or `Log::release_hold`.
    pub holds_damaged: bool,
}

/// The recovered state handed to the writer and the `Log`.
pub(crate) struct Recovered {
    pub report: Recovery,
    pub checkpoint: Checkpoint,
    pub holds: Loaded,
    pub table: SegmentTable,
    /// Open handle of the last segment in `table`, the active one.
    pub active: Box<dyn FsFile>,
    pub next_seq: u64,
}

/// Tracks expected seqs across segments and turns gaps and damaged regions into counts.
#[derive(Clone)]
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

    /// Seqs up to `end` were lost (an encrypted segment without its key): counted like a gap.
    fn lost_until(&mut self, end: u64) {
        self.corrupt_records += end.saturating_sub(self.expected.max(self.committed));
        self.dirty = false;
        self.expected = self.expected.max(end);
    }

    fn finish(&mut self) {
        if self.dirty {
            self.corrupt_records += 1;
            self.dirty = false;
        }
    }
}

/// Bytes a record of `flavor` stores beyond its payload.
fn flavor_overhead(flavor: Flavor) -> u64 {
    match flavor {
        Flavor::Plain => 0,
        Flavor::Sealed => lakehose_crypto::TAG_LEN as u64,
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

fn scan_segment(data: &[u8], start: u64, flavor: Flavor, damage: &mut Damage) -> Scan {
    let mut scan = Scan {
        records: 0,
        bytes: 0,
        end: start,
        next_seq: None,
        index: Vec::new(),
        tail: None,
    };
    let mut pos = start as usize;
    while pos < data.len() {
        match parse_record(&data[pos..], damage.expected, flavor) {
            Parsed::Valid(h) => {
                damage.valid(h.seq);
                maybe_index(&mut scan.index, h.seq, pos as u64);
                scan.records += 1;
                scan.bytes += u64::from(h.len) - flavor_overhead(flavor);
                scan.next_seq = Some(h.seq + 1);
                pos += h.total_len();
                scan.end = pos as u64;
            }
            Parsed::Incomplete | Parsed::Invalid => {
                match find_next_valid(&data[pos..], damage.expected, flavor) {
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

/// How recovery treats one segment's header.
enum Kind {
    /// Good header: records start at `start`.
    Good { start: u64 },
    /// Damaged header.
    Damaged,
}

/// The sealing of a segment with a good version-2 header: its data key unwrapped, or
/// `Locked` when that fails and every record is below `committed` (else the open fails).
fn unwrap_segment_key(
    config: &LogConfig,
    path: &std::path::Path,
    base: u64,
    wrapped: &lakehose_crypto::WrappedKey,
    holds_undelivered: bool,
) -> Result<Sealing> {
    let unwrapped = match &config.encryption {
        Some(enc) => enc
            .keyring
            .unwrap(wrapped, &segment_wrap_context(&enc.context, base))
            .map_err(|e| e.to_string()),
        None => Err(format!(
            "the segment is encrypted with master key '{}' but no keyring is configured",
            wrapped.master_key_id
        )),
    };
    match unwrapped {
        Ok(key) => Ok(Sealing::Sealed {
            key: Arc::new(key),
            master_key_id: wrapped.master_key_id.as_str().into(),
        }),
        Err(reason) if holds_undelivered => Err(Error::encryption(
            path,
            format!("{reason}; refusing to open the log (its undelivered records cannot be read)"),
        )),
        Err(reason) => {
            tracing::warn!(path = %path.display(), %reason,
                "encrypted segment cannot be decrypted; all its records were delivered, so it is only kept until reclaimed");
            Ok(Sealing::Locked(reason.into()))
        }
    }
}

pub(crate) fn recover(fs: &dyn Fs, dir: &Path, config: &LogConfig) -> Result<Recovered> {
    let fsync = config.fsync;
    let write_key = config
        .encryption
        .as_ref()
        .and_then(|e| e.write_key.as_deref());
    let seal = match (&config.encryption, write_key) {
        (Some(enc), Some(id)) => {
            if !enc.keyring.contains(id) {
                return Err(Error::encryption(
                    dir,
                    lakehose_crypto::Error::MissingKey(id.to_string()),
                ));
            }
            Some(SealWith {
                keyring: &enc.keyring,
                master_key_id: id,
                context: &enc.context,
            })
        }
        _ => None,
    };
    fs.create_dir_all(dir)
        .map_err(|e| Error::io("create directory", dir, e))?;
    let checkpoint = checkpoint::read(fs, dir)?.unwrap_or_default();
    let committed = checkpoint.committed;
    let holds = holds::read(fs, dir)?;
    let limit = match &holds {
        Loaded::Known(holds) => Some(holds::retention_limit(committed, holds)),
        Loaded::Damaged(reason) => {
            let path = dir.join(HOLDS_FILE);
            tracing::warn!(path = %path.display(), reason,
                "damaged holds file: holds are unknown, nothing is reclaimed until a hold is set or released");
            None
        }
    };

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
        holds: match &holds {
            Loaded::Known(holds) => holds.len(),
            Loaded::Damaged(_) => 0,
        },
        holds_damaged: matches!(holds, Loaded::Damaged(_)),
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
    // Handle of the last retained segment, if it can take appends (valid plaintext header,
    // and the log writes plaintext).
    let mut appendable: Option<Box<dyn FsFile>> = None;
    // Whether the last retained segment's header is good (it may then be replaced when it
    // holds no record).
    let mut last_header_ok = false;
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

        let (kind, wrapped) = match decode_segment_header(&data) {
            Header::Valid { base_seq, key } if base_seq == base => {
                let flavor = if key.is_some() {
                    Flavor::Sealed
                } else {
                    Flavor::Plain
                };
                (
                    Kind::Good {
                        start: flavor.data_start(),
                    },
                    key,
                )
            }
            Header::Valid { base_seq, .. } => {
                tracing::warn!(path = %path.display(), header_base = base_seq, "segment header does not match its file name");
                (Kind::Damaged, None)
            }
            Header::Unsupported { version } => {
                return Err(Error::UnsupportedVersion { path, version });
            }
            Header::Invalid(reason) => {
                tracing::warn!(path = %path.display(), reason, "damaged segment header");
                (Kind::Damaged, None)
            }
        };
        let header_ok = matches!(kind, Kind::Good { .. });

        let (scan, sealing, start) = match kind {
            Kind::Good { start } => {
                let flavor = if wrapped.is_some() {
                    Flavor::Sealed
                } else {
                    Flavor::Plain
                };
                // The scan needs no key (CRCs only); whether the key is needed depends on it.
                let scan = scan_segment(&data, start, flavor, &mut damage);
                let sealing = match &wrapped {
                    Some(w) => {
                        let undelivered = scan.next_seq.is_some_and(|n| n > committed);
                        unwrap_segment_key(config, &path, base, w, undelivered)?
                    }
                    None => Sealing::Plain,
                };
                (scan, sealing, start)
            }
            Kind::Damaged => {
                let mut plain_damage = damage.clone();
                let scan =
                    scan_segment(&data, SEGMENT_HEADER_LEN, Flavor::Plain, &mut plain_damage);
                let mut sealed_damage = damage.clone();
                let sealed = (scan.records == 0).then(|| {
                    scan_segment(
                        &data,
                        SEGMENT_HEADER_LEN,
                        Flavor::Sealed,
                        &mut sealed_damage,
                    )
                });
                match sealed {
                    Some(sealed) if sealed.records > 0 => {
                        // An encrypted segment that lost its data key with its header: its
                        // records can never be read. Count them lost, keep seqs monotonic.
                        let end = sealed.next_seq.unwrap_or(base);
                        tracing::error!(path = %path.display(), records = sealed.records,
                            "encrypted segment with a damaged header: its records are lost");
                        damage.lost_until(end);
                        report.corrupt_segments += 1;
                        let meta = SegmentMeta {
                            base,
                            path,
                            start: SEGMENT_HEADER_LEN,
                            end: SEGMENT_HEADER_LEN,
                            next_seq: end,
                            index: Vec::new(),
                            disk_len: len,
                            sealing: Sealing::Locked(
                                "the segment's header (with its data key) is damaged".into(),
                            ),
                            epoch: next_epoch(),
                        };
                        next_seq = next_seq.max(end);
                        table.push(meta);
                        appendable = None;
                        last_header_ok = false;
                        continue;
                    }
                    _ => {
                        damage = plain_damage;
                        (scan, Sealing::Plain, SEGMENT_HEADER_LEN)
                    }
                }
            }
        };

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
        let reusable = matches!(sealing, Sealing::Plain) && seal.is_none();
        table.push(SegmentMeta {
            base,
            path,
            start,
            end: scan.end,
            next_seq: scan.next_seq.unwrap_or(base),
            index: scan.index,
            disk_len,
            sealing,
            epoch: next_epoch(),
        });
        appendable = (last && header_ok && reusable).then_some(file);
        last_header_ok = header_ok;
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
            if let Some(last) = table.segments.back() {
                if last_header_ok && last.base == next_seq {
                    // A good last segment without records, of the wrong kind (encrypted, or
                    // not the mode the log writes now): replace it, under a fresh data key.
                    table.pop_last();
                } else {
                    // Never reuse the name of a retained segment (one whose header is
                    // damaged may end below `next_seq` only through garbage, but `create`
                    // would truncate it).
                    next_seq = next_seq.max(last.base.saturating_add(1));
                }
            }
            let (file, meta) = create_segment(fs, dir, next_seq, fsync, seal)?;
            table.push(meta);
            file
        }
    };

    let reclaimable = match limit {
        Some(limit) => table.take_reclaimable(limit),
        None => Vec::new(),
    };
    for seg in reclaimable {
        match fs.remove(&seg.path) {
            Ok(()) => report.reclaimed_segments += 1,
            // Not fatal: it will be reclaimed on the next open.
            Err(e) => {
                tracing::warn!(path = %seg.path.display(), error = %e, "cannot remove reclaimed segment")
            }
        }
    }

    report.next_seq = next_seq;
    report.encrypted_segments = table
        .segments
        .iter()
        .filter(|s| !matches!(s.sealing, Sealing::Plain))
        .count() as u64;
    tracing::info!(
        dir = %dir.display(),
        segments = report.segments,
        records = report.records,
        torn_tail_bytes = report.torn_tail_bytes,
        corrupt_records = report.corrupt_records,
        corrupt_segments = report.corrupt_segments,
        encrypted_segments = report.encrypted_segments,
        next_seq,
        committed,
        "log recovered"
    );
    Ok(Recovered {
        report,
        checkpoint,
        holds,
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

//! Segment files and the in-memory table of retained segments.
//!
//! Invariants of [`SegmentTable`] (checked by `debug_assert`s and the tests):
//! - segments are sorted by `base`, bases are distinct;
//! - the last segment is the active one, the only one the writer appends to; every other
//!   segment is sealed and its `end` never changes;
//! - `end` is the offset just past the last *valid, durable* record: readers never read
//!   at or beyond it;
//! - `next_seq` is one past the largest valid seq in the segment (`base` if it has none);
//! - `index` holds sparse `(seq, offset)` pairs of valid record starts, increasing in both,
//!   used to position readers without scanning a whole segment;
//! - segments are reclaimed only from the front, so the retained ones are contiguous;
//! - a segment's `sealing` and `start` never change; a segment *replaced* under the same name
//!   (only ever an active segment without records, see `writer::Writer::switch`) gets a new
//!   `epoch`, which is how readers notice the file is not the one they opened.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use lakehose_crypto::{DataKey, Keyring};

use crate::error::{Error, Result};
use crate::format::{
    Flavor, SEGMENT_HEADER_LEN, encode_encrypted_segment_header, encode_segment_header,
    segment_wrap_context,
};
use crate::fs::{Fs, FsFile};

/// Suffix of segment file names.
pub const SEGMENT_SUFFIX: &str = ".seg";
/// A new index entry is added once this many bytes were written since the previous one.
pub(crate) const INDEX_INTERVAL: u64 = 1024 * 1024;

/// File name of the segment whose first record has `base`: 20 zero-padded digits + `.seg`.
pub fn segment_file_name(base: u64) -> String {
    format!("{base:020}{SEGMENT_SUFFIX}")
}

/// Parses a segment file name back into its base sequence number.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// How a segment's records are stored, and what reading them needs.
#[derive(Debug, Clone)]
pub(crate) enum Sealing {
    /// Version 1: plaintext.
    Plain,
    /// Version 2: encrypted with `key`, which master key `master_key_id` wrapped.
    Sealed {
        key: Arc<DataKey>,
        master_key_id: Arc<str>,
    },
    /// Version 2, but the data key could not be unwrapped (`reason`); recovery allows this
    /// only for segments whose records are all below the checkpoint. Reading one fails.
    Locked(Arc<str>),
}

impl Sealing {
    pub fn flavor(&self) -> Flavor {
        match self {
            Sealing::Plain => Flavor::Plain,
            Sealing::Sealed { .. } | Sealing::Locked(_) => Flavor::Sealed,
        }
    }

    /// The master key id of a sealed segment.
    pub fn master_key_id(&self) -> Option<&str> {
        match self {
            Sealing::Sealed { master_key_id, .. } => Some(master_key_id),
            Sealing::Plain | Sealing::Locked(_) => None,
        }
    }
}

/// How a new segment is encrypted: a fresh data key wrapped by `master_key_id` of `keyring`,
/// bound to the log's `context`.
#[derive(Clone, Copy)]
pub(crate) struct SealWith<'a> {
    pub keyring: &'a Keyring,
    pub master_key_id: &'a str,
    pub context: &'a [u8],
}

static EPOCH: AtomicU64 = AtomicU64::new(1);

/// A number no other segment meta of this process has.
pub(crate) fn next_epoch() -> u64 {
    EPOCH.fetch_add(1, Ordering::Relaxed)
}

/// What the log knows about one retained segment.
#[derive(Debug, Clone)]
pub(crate) struct SegmentMeta {
    pub base: u64,
    pub path: PathBuf,
    /// Offset of the first record (the header's length).
    pub start: u64,
    pub end: u64,
    pub next_seq: u64,
    pub index: Vec<(u64, u64)>,
    /// Length of the file on disk (may exceed `end` when a sealed segment has a damaged tail).
    pub disk_len: u64,
    /// How its records are stored.
    pub sealing: Sealing,
    /// Identifies this file (see the module docs).
    pub epoch: u64,
}

impl SegmentMeta {
    /// Offset of the last indexed record with `seq <= target`, or the first record.
    pub fn seek_offset(&self, target: u64) -> u64 {
        let i = self.index.partition_point(|&(seq, _)| seq <= target);
        if i == 0 {
            self.start
        } else {
            self.index[i - 1].1
        }
    }
}

/// Records the start of a valid record in a segment's sparse index: an entry is added only
/// [`INDEX_INTERVAL`] bytes after the previous one (or the first record).
pub(crate) fn maybe_index(index: &mut Vec<(u64, u64)>, seq: u64, offset: u64) {
    let last = index.last().map_or(SEGMENT_HEADER_LEN, |&(_, o)| o);
    if offset >= last + INDEX_INTERVAL {
        index.push((seq, offset));
    }
}

/// The retained segments, oldest first.
#[derive(Debug, Default)]
pub(crate) struct SegmentTable {
    pub segments: VecDeque<SegmentMeta>,
    /// Sum of `disk_len` over `segments`.
    pub disk_bytes: u64,
}

impl SegmentTable {
    /// Removes the last segment (recovery and the writer replace an empty active segment).
    pub fn pop_last(&mut self) -> Option<SegmentMeta> {
        let meta = self.segments.pop_back()?;
        self.disk_bytes -= meta.disk_len;
        Some(meta)
    }

    pub fn push(&mut self, meta: SegmentMeta) {
        debug_assert!(
            self.segments
                .back()
                .is_none_or(|last| last.base < meta.base)
        );
        self.disk_bytes += meta.disk_len;
        self.segments.push_back(meta);
    }

    /// The segment a reader at `seq` starts in: the last one with `base <= seq`.
    pub fn locate(&self, seq: u64) -> Option<&SegmentMeta> {
        let i = self.segments.partition_point(|s| s.base <= seq);
        i.checked_sub(1).map(|i| &self.segments[i])
    }

    pub fn get(&self, base: u64) -> Option<&SegmentMeta> {
        let i = self.segments.partition_point(|s| s.base < base);
        self.segments.get(i).filter(|s| s.base == base)
    }

    /// The first segment with a base above `base`.
    pub fn after(&self, base: u64) -> Option<&SegmentMeta> {
        let i = self.segments.partition_point(|s| s.base <= base);
        self.segments.get(i)
    }

    pub fn oldest_base(&self) -> Option<u64> {
        self.segments.front().map(|s| s.base)
    }

    /// Removes from the table the leading segments whose records are all `< committed`,
    /// never the last (active) one, and returns them for deletion.
    ///
    /// A segment goes only when the *next* segment also starts at or below `committed`, so
    /// the oldest retained base stays `<= committed` and a reader at `committed` always
    /// finds its segment.
    pub fn take_reclaimable(&mut self, committed: u64) -> Vec<SegmentMeta> {
        let mut out = Vec::new();
        while self.segments.len() > 1 {
            let first = &self.segments[0];
            let next = &self.segments[1];
            if first.next_seq > committed || next.base > committed {
                break;
            }
            let meta = self.segments.pop_front().expect("len > 1");
            self.disk_bytes -= meta.disk_len;
            out.push(meta);
        }
        out
    }
}

/// Creates a new, empty segment file with its header, durable before returning (file and
/// directory entry) when `fsync` is set. With `seal`, the segment is encrypted (version 2)
/// under a fresh data key. An existing file of that name is truncated (only ever an active
/// segment without records).
pub(crate) fn create_segment(
    fs: &dyn Fs,
    dir: &Path,
    base: u64,
    fsync: bool,
    seal: Option<SealWith<'_>>,
) -> Result<(Box<dyn FsFile>, SegmentMeta)> {
    let path = dir.join(segment_file_name(base));
    // Make the key first: nothing is created when the keyring cannot wrap it.
    let sealed = match seal {
        Some(s) => {
            let key = DataKey::generate().map_err(|e| Error::encryption(&path, e))?;
            let wrapped = s
                .keyring
                .wrap(
                    s.master_key_id,
                    &key,
                    &segment_wrap_context(s.context, base),
                )
                .map_err(|e| Error::encryption(&path, e))?;
            Some((key, wrapped))
        }
        None => None,
    };
    let (header, sealing) = match sealed {
        Some((key, wrapped)) => (
            encode_encrypted_segment_header(base, &wrapped).to_vec(),
            Sealing::Sealed {
                key: Arc::new(key),
                master_key_id: wrapped.master_key_id.as_str().into(),
            },
        ),
        None => (encode_segment_header(base).to_vec(), Sealing::Plain),
    };
    let file = fs
        .create(&path)
        .map_err(|e| Error::io("create", &path, e))?;
    file.write_at(&header, 0)
        .map_err(|e| Error::io("write", &path, e))?;
    if fsync {
        file.sync_data()
            .map_err(|e| Error::io("fdatasync", &path, e))?;
        fs.sync_dir(dir)
            .map_err(|e| Error::io("fsync directory", dir, e))?;
    }
    let start = header.len() as u64;
    let meta = SegmentMeta {
        base,
        path,
        start,
        end: start,
        next_seq: base,
        index: Vec::new(),
        disk_len: start,
        sealing,
        epoch: next_epoch(),
    };
    Ok((file, meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert_eq!(segment_file_name(42), "00000000000000000042.seg");
        assert_eq!(segment_file_name(u64::MAX), "18446744073709551615.seg");
        assert_eq!(
            parse_segment_file_name("00000000000000000042.seg"),
            Some(42)
        );
        assert_eq!(
            parse_segment_file_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
        assert_eq!(parse_segment_file_name("42.seg"), None);
        assert_eq!(parse_segment_file_name("0000000000000000004x.seg"), None);
        assert_eq!(parse_segment_file_name("99999999999999999999.seg"), None);
        assert_eq!(parse_segment_file_name("checkpoint"), None);
    }

    fn meta(base: u64, next_seq: u64) -> SegmentMeta {
        SegmentMeta {
            base,
            path: PathBuf::new(),
            start: SEGMENT_HEADER_LEN,
            end: SEGMENT_HEADER_LEN,
            next_seq,
            index: Vec::new(),
            disk_len: 100,
            sealing: Sealing::Plain,
            epoch: next_epoch(),
        }
    }

    #[test]
    fn reclaim_keeps_active_and_committed_segment() {
        let mut t = SegmentTable::default();
        t.push(meta(0, 10));
        t.push(meta(10, 20));
        t.push(meta(20, 25));
        assert!(t.take_reclaimable(9).is_empty());
        assert_eq!(t.take_reclaimable(15).len(), 1);
        assert_eq!(t.oldest_base(), Some(10));
        assert_eq!(t.disk_bytes, 200);
        assert_eq!(t.take_reclaimable(1000).len(), 1, "active segment is kept");
        assert_eq!(t.oldest_base(), Some(20));
        assert_eq!(t.locate(22).map(|s| s.base), Some(20));
        assert!(t.locate(3).is_none());
    }
}

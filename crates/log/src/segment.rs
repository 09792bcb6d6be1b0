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
//! - segments are reclaimed only from the front, so the retained ones are contiguous.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::{SEGMENT_HEADER_LEN, encode_segment_header};
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

/// What the log knows about one retained segment.
#[derive(Debug, Clone)]
pub(crate) struct SegmentMeta {
    pub base: u64,
    pub path: PathBuf,
    pub end: u64,
    pub next_seq: u64,
    pub index: Vec<(u64, u64)>,
    /// Length of the file on disk (may exceed `end` when a sealed segment has a damaged tail).
    pub disk_len: u64,
}

impl SegmentMeta {
    /// Offset of the last indexed record with `seq <= target`, or the first record.
    pub fn seek_offset(&self, target: u64) -> u64 {
        let i = self.index.partition_point(|&(seq, _)| seq <= target);
        if i == 0 {
            SEGMENT_HEADER_LEN
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
/// directory entry) when `fsync` is set.
pub(crate) fn create_segment(
    fs: &dyn Fs,
    dir: &Path,
    base: u64,
    fsync: bool,
) -> Result<(Box<dyn FsFile>, SegmentMeta)> {
    let path = dir.join(segment_file_name(base));
    let file = fs
        .create(&path)
        .map_err(|e| Error::io("create", &path, e))?;
    file.write_at(&encode_segment_header(base), 0)
        .map_err(|e| Error::io("write", &path, e))?;
    if fsync {
        file.sync_data()
            .map_err(|e| Error::io("fdatasync", &path, e))?;
        fs.sync_dir(dir)
            .map_err(|e| Error::io("fsync directory", dir, e))?;
    }
    let meta = SegmentMeta {
        base,
        path,
        end: SEGMENT_HEADER_LEN,
        next_seq: base,
        index: Vec::new(),
        disk_len: SEGMENT_HEADER_LEN,
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
            end: SEGMENT_HEADER_LEN,
            next_seq,
            index: Vec::new(),
            disk_len: 100,
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

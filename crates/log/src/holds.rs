//! Retention holds: named positions that pin segments against reclamation.
//!
//! A hold `name -> seq` promises that no record with a seq `>= seq` is reclaimed while the
//! hold exists, across restarts. Readers that consume the log independently of the delivery
//! loop (which owns the checkpoint) set one at their own position and move it forward as
//! they go.
//!
//! Layout of `holds` (all integers little-endian):
//!
//! ```text
//! magic b"LHHOLD\0\x01" (8) | count u32 | (name_len u16 | name[name_len] | seq u64) * count | crc32c u32
//! ```
//!
//! The CRC covers every byte before it. Entries are sorted by name, names are distinct.
//!
//! # Invariants
//!
//! 1. **Retention limit.** Segments are reclaimed only up to
//!    `min(checkpoint.committed, min over holds)` ([`retention_limit`]); with the usual rule of
//!    `SegmentTable::take_reclaimable`, a reader starting at any hold's seq (if that seq was
//!    still retained when the hold was set) finds its segment and every record after it.
//! 2. **Persisted before acknowledged.** `Log::set_hold` and `Log::release_hold` return `Ok`
//!    only after the whole new set of holds is durable: the file is replaced atomically exactly
//!    like the checkpoint (write `holds.tmp`, `fdatasync` it, rename it over `holds`, fsync
//!    the directory). A crash leaves either the old or the new holds; a leftover `holds.tmp`
//!    is ignored on open and overwritten by the next write.
//! 3. **Memory never less protective than what was acknowledged.** The in-memory holds are the
//!    last set that was written successfully; a failed write leaves them unchanged (the file
//!    on disk may then hold the old or the new set; the next successful write replaces it
//!    whole from memory). Reclaiming uses the in-memory holds under the same mutex that
//!    serializes the writes, so a hold is in effect before `set_hold` returns and no reclaim
//!    computed from an older set can run after it.
//! 4. **Fail safe on damage.** A `holds` file that exists but does not decode does not stop
//!    the open (holds never affect acknowledged data), but the holds are then *unknown*: no
//!    segment is reclaimed — neither at open nor by checkpoints — until the first successful
//!    `set_hold` or `release_hold` rewrites the file from the in-memory holds (empty, plus
//!    what that call sets). Owners of holds are expected to re-assert them after an open.
//!    A missing file means no holds.
//! 5. **No poisoning.** A failure to write the holds file is returned but does not poison
//!    the log: acknowledged records and the checkpoint do not depend on it, and the file is
//!    always rewritten whole (a fresh `holds.tmp`, every byte re-written and re-synced), so
//!    a later successful write cannot be a silent retry of a failed `fdatasync`.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use crate::error::{Error, Result};
use crate::fs::Fs;

/// File name of the holds inside the log directory.
pub const HOLDS_FILE: &str = "holds";
/// File name of the holds being written.
pub const HOLDS_TMP_FILE: &str = "holds.tmp";
/// Magic bytes at the start of the holds file.
pub const HOLDS_MAGIC: [u8; 8] = *b"LHHOLD\0\x01";
/// Longest hold name, in bytes.
pub const MAX_HOLD_NAME_LEN: usize = 128;

/// Magic, count and CRC.
const FIXED_LEN: usize = 8 + 4 + 4;

/// The holds as loaded on open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Loaded {
    /// The file decoded, or there was none (empty).
    Known(BTreeMap<String, u64>),
    /// The file exists but is damaged; the reason.
    Damaged(String),
}

/// Checks that `name` is 1..=[`MAX_HOLD_NAME_LEN`] bytes of `[A-Za-z0-9_.:-]`.
pub(crate) fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if name.len() > MAX_HOLD_NAME_LEN {
        return Err(format!(
            "the name is {} bytes long, more than the maximum of {MAX_HOLD_NAME_LEN}",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')))
    {
        return Err(format!(
            "the name contains {c:?}; only [A-Za-z0-9_.:-] are allowed"
        ));
    }
    Ok(())
}

/// The seq below which segments may be reclaimed: `min(committed, min over holds)`.
pub(crate) fn retention_limit(committed: u64, holds: &BTreeMap<String, u64>) -> u64 {
    holds.values().copied().fold(committed, u64::min)
}

pub(crate) fn encode(holds: &BTreeMap<String, u64>) -> Vec<u8> {
    let body: usize = holds.keys().map(|n| 2 + n.len() + 8).sum();
    let mut out = Vec::with_capacity(FIXED_LEN + body);
    out.extend_from_slice(&HOLDS_MAGIC);
    // Callers validate names (<= 128 bytes), and a map with more than u32::MAX entries
    // cannot exist in memory with such keys.
    out.extend_from_slice(&(holds.len() as u32).to_le_bytes());
    for (name, seq) in holds {
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&seq.to_le_bytes());
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Splits `n` bytes off the front of `rest`.
fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], &'static str> {
    if rest.len() < n {
        return Err("holds file ends inside an entry");
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

pub(crate) fn decode(bytes: &[u8]) -> Result<BTreeMap<String, u64>, &'static str> {
    if bytes.len() < FIXED_LEN {
        return Err("holds file is truncated");
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
        return Err("holds CRC mismatch");
    }
    if body[..8] != HOLDS_MAGIC {
        return Err("bad holds magic");
    }
    let count = u32::from_le_bytes(body[8..12].try_into().expect("4 bytes"));
    let mut rest = &body[12..];
    let mut holds = BTreeMap::new();
    for _ in 0..count {
        let len = u16::from_le_bytes(take(&mut rest, 2)?.try_into().expect("2 bytes"));
        let name = std::str::from_utf8(take(&mut rest, len.into())?)
            .map_err(|_| "hold name is not UTF-8")?;
        validate_name(name).map_err(|_| "invalid hold name")?;
        let seq = u64::from_le_bytes(take(&mut rest, 8)?.try_into().expect("8 bytes"));
        if holds.insert(name.to_string(), seq).is_some() {
            return Err("duplicate hold name");
        }
    }
    if !rest.is_empty() {
        return Err("holds file has bytes after its last entry");
    }
    Ok(holds)
}

/// Reads the holds of `dir`. A missing file is no holds; a damaged one is reported as
/// [`Loaded::Damaged`], not as an error; only I/O errors fail.
pub(crate) fn read(fs: &dyn Fs, dir: &Path) -> Result<Loaded> {
    let path = dir.join(HOLDS_FILE);
    let file = match fs.open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Loaded::Known(BTreeMap::new()));
        }
        Err(e) => return Err(Error::io("open", path, e)),
    };
    let len = file.len().map_err(|e| Error::io("stat", &path, e))?;
    let len = usize::try_from(len).map_err(|_| Error::Corrupt {
        path: path.clone(),
        reason: format!("holds file of {len} bytes"),
    })?;
    let mut bytes = vec![0u8; len];
    file.read_exact_at(&mut bytes, 0)
        .map_err(|e| Error::io("read", &path, e))?;
    Ok(match decode(&bytes) {
        Ok(holds) => Loaded::Known(holds),
        Err(reason) => Loaded::Damaged(reason.to_string()),
    })
}

/// Atomically replaces the holds of `dir`. Any error means the new holds may or may not be
/// durable; the old file is intact or replaced, never damaged.
pub(crate) fn write(
    fs: &dyn Fs,
    dir: &Path,
    holds: &BTreeMap<String, u64>,
    fsync: bool,
) -> Result<()> {
    let bytes = encode(holds);
    crate::checkpoint::replace_file(fs, dir, HOLDS_FILE, HOLDS_TMP_FILE, &bytes, fsync)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BTreeMap<String, u64> {
        BTreeMap::from([
            ("sql:query-1".to_string(), 42),
            ("a".to_string(), 0),
            ("Z_9.-:".to_string(), u64::MAX),
        ])
    }

    #[test]
    fn round_trip_and_damage() {
        for holds in [BTreeMap::new(), sample()] {
            let bytes = encode(&holds);
            assert_eq!(decode(&bytes), Ok(holds.clone()));
            for i in 0..bytes.len() {
                let mut b = bytes.clone();
                b[i] ^= 0x04;
                assert!(decode(&b).is_err(), "flip in byte {i} not detected");
            }
            for n in 0..bytes.len() {
                assert!(
                    decode(&bytes[..n]).is_err(),
                    "truncation to {n} not detected"
                );
            }
        }
    }

    #[test]
    fn layout_is_as_documented() {
        let holds = BTreeMap::from([("ab".to_string(), 7u64)]);
        let bytes = encode(&holds);
        let mut expected = b"LHHOLD\0\x01".to_vec();
        expected.extend_from_slice(&1u32.to_le_bytes());
        expected.extend_from_slice(&2u16.to_le_bytes());
        expected.extend_from_slice(b"ab");
        expected.extend_from_slice(&7u64.to_le_bytes());
        let crc = crc32c::crc32c(&expected);
        expected.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(bytes, expected);
    }

    #[test]
    fn names_are_validated() {
        for ok in ["a", "sql:q-1.v_2", &"x".repeat(MAX_HOLD_NAME_LEN)] {
            assert_eq!(validate_name(ok), Ok(()), "{ok:?}");
        }
        for bad in [
            "",
            "has space",
            "slash/",
            "é",
            "nul\0",
            &"x".repeat(MAX_HOLD_NAME_LEN + 1),
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn limit_is_the_minimum() {
        assert_eq!(retention_limit(10, &BTreeMap::new()), 10);
        assert_eq!(retention_limit(10, &sample()), 0);
        let high = BTreeMap::from([("h".to_string(), 99)]);
        assert_eq!(retention_limit(10, &high), 10);
    }
}

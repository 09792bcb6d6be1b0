//! The checkpoint file: the delivered position plus the caller's opaque pending bytes.
//!
//! Layout of `checkpoint` (all integers little-endian):
//!
//! ```text
//! magic b"LHCKPT\0\x01" (8) | committed u64 | pending_len u32 | pending[pending_len] | crc32c u32
//! ```
//!
//! The CRC covers every byte before it. The file is replaced atomically: write
//! `checkpoint.tmp`, `fdatasync` it, rename it over `checkpoint`, fsync the directory. A
//! crash leaves either the old or the new checkpoint; a leftover `checkpoint.tmp` is
//! ignored on open and overwritten by the next checkpoint.
//!
//! A `checkpoint` that exists but does not decode is an error on open, never a silent reset
//! to zero: resetting would redeliver (or, with reclaimed segments, lose track of)
//! everything.

use std::io;
use std::path::Path;

use crate::error::{Error, Result};
use crate::fs::Fs;

/// File name of the checkpoint inside the log directory.
pub const CHECKPOINT_FILE: &str = "checkpoint";
/// File name of the checkpoint being written.
pub const CHECKPOINT_TMP_FILE: &str = "checkpoint.tmp";
/// Magic bytes at the start of the checkpoint file.
pub const CHECKPOINT_MAGIC: [u8; 8] = *b"LHCKPT\0\x01";

const FIXED_LEN: usize = 8 + 8 + 4 + 4;

/// The delivered position, as persisted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Every record with `seq < committed` was delivered.
    pub committed: u64,
    /// Opaque bytes stored by the caller with the checkpoint (the in-flight delivery plan).
    pub pending: Vec<u8>,
}

pub(crate) fn encode(committed: u64, pending: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FIXED_LEN + pending.len());
    out.extend_from_slice(&CHECKPOINT_MAGIC);
    out.extend_from_slice(&committed.to_le_bytes());
    out.extend_from_slice(&(pending.len() as u32).to_le_bytes());
    out.extend_from_slice(pending);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

pub(crate) fn decode(bytes: &[u8]) -> Result<Checkpoint, &'static str> {
    if bytes.len() < FIXED_LEN {
        return Err("checkpoint file is truncated");
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
        return Err("checkpoint CRC mismatch");
    }
    if body[..8] != CHECKPOINT_MAGIC {
        return Err("bad checkpoint magic");
    }
    let committed = u64::from_le_bytes(body[8..16].try_into().expect("8 bytes"));
    let pending_len = u32::from_le_bytes(body[16..20].try_into().expect("4 bytes")) as usize;
    if body.len() != 20 + pending_len {
        return Err("checkpoint length does not match its pending length");
    }
    Ok(Checkpoint {
        committed,
        pending: body[20..].to_vec(),
    })
}

/// Reads the checkpoint of `dir`; `None` if there is none.
pub(crate) fn read(fs: &dyn Fs, dir: &Path) -> Result<Option<Checkpoint>> {
    let path = dir.join(CHECKPOINT_FILE);
    let file = match fs.open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open", path, e)),
    };
    let len = file.len().map_err(|e| Error::io("stat", &path, e))?;
    let mut bytes = vec![0u8; len as usize];
    file.read_exact_at(&mut bytes, 0)
        .map_err(|e| Error::io("read", &path, e))?;
    decode(&bytes).map(Some).map_err(|reason| Error::Corrupt {
        path,
        reason: reason.to_string(),
    })
}

/// Atomically replaces the checkpoint of `dir`. Any error means the new checkpoint may or
/// may not be durable; the old one is intact or replaced, never damaged.
pub(crate) fn write(fs: &dyn Fs, dir: &Path, cp: &Checkpoint, fsync: bool) -> Result<()> {
    let bytes = encode(cp.committed, &cp.pending);
    replace_file(fs, dir, CHECKPOINT_FILE, CHECKPOINT_TMP_FILE, &bytes, fsync)
}

/// Atomically replaces `dir/name` by `bytes`: write `dir/tmp_name`, `fdatasync` it, rename it
/// over `name`, fsync the directory (the syncs only with `fsync`). A crash leaves the old or
/// the new file, never a mix; a leftover temporary file is the caller's to ignore.
pub(crate) fn replace_file(
    fs: &dyn Fs,
    dir: &Path,
    name: &str,
    tmp_name: &str,
    bytes: &[u8],
    fsync: bool,
) -> Result<()> {
    let tmp = dir.join(tmp_name);
    let path = dir.join(name);
    let file = fs.create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
    file.write_at(bytes, 0)
        .map_err(|e| Error::io("write", &tmp, e))?;
    if fsync {
        file.sync_data()
            .map_err(|e| Error::io("fdatasync", &tmp, e))?;
    }
    drop(file);
    fs.rename(&tmp, &path)
        .map_err(|e| Error::io("rename", &tmp, e))?;
    if fsync {
        fs.sync_dir(dir)
            .map_err(|e| Error::io("fsync directory", dir, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let bytes = encode(42, b"plan");
        assert_eq!(
            decode(&bytes),
            Ok(Checkpoint {
                committed: 42,
                pending: b"plan".to_vec()
            })
        );
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

//! The filesystem seam: every byte the log reads or writes goes through [`Fs`] and
//! [`FsFile`], so tests can inject I/O errors, latency, torn writes and (later) whole crash
//! states without touching the log's code.
//!
//! # Guarantees an implementation must provide (what the log relies on)
//!
//! - [`FsFile::write_at`] writes the whole buffer or fails. A failed write may leave any
//!   prefix of the buffer in the file (torn write).
//! - Data written to a file is durable only after [`FsFile::sync_data`] on that file returned
//!   `Ok`. A failed `sync_data` means *some* earlier unsynced writes may be lost, and a
//!   later `sync_data` succeeding does not bring them back (Linux "fsyncgate"): the log
//!   therefore never retries it.
//! - Creating, renaming or removing a directory entry is durable only after
//!   [`Fs::sync_dir`] on the containing directory.
//! - Reads see all earlier writes of the same process, synced or not (page cache).
//! - All methods may be called concurrently from several threads.
//!
//! A simulated filesystem implements these rules with a durable image plus an unsynced
//! overlay per file and per directory; `crash()` then drops or tears the overlay.

use std::fmt;
use std::io;
use std::path::Path;

/// Directory-level operations.
pub trait Fs: Send + Sync + fmt::Debug {
    /// Creates `path` and its parents if missing.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Creates `path` empty (truncating an existing file), open for reading and writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Opens the existing file `path` for reading and writing.
    fn open(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Atomically replaces `to` with `from`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes the file `path`.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// File names (not paths) of the entries of `dir`, in no particular order.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Makes the entries of `dir` (creates, renames, removes) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Takes an exclusive advisory lock on `path` (created if missing), held until the
    /// returned guard is dropped. Fails with `WouldBlock` if someone else holds it.
    /// The default takes no lock, which is right for in-memory filesystems.
    fn lock(&self, path: &Path) -> io::Result<Box<dyn FsLock>> {
        let _ = path;
        Ok(Box::new(NoLock))
    }
}

/// An open file. Positional I/O only, so one handle can be shared by threads.
pub trait FsFile: Send + Sync + fmt::Debug {
    /// Reads up to `buf.len()` bytes at `offset`; returns 0 at end of file.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `offset`, extending the file if needed.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes the file's data (and the size needed to read it) durable: `fdatasync`.
    fn sync_data(&self) -> io::Result<()>;
    /// Sets the file length to `len`.
    fn truncate(&self, len: u64) -> io::Result<()>;
    /// Current file length.
    fn len(&self) -> io::Result<u64>;

    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Writes `buf` at the end of the file and returns the offset it was written at.
    fn append(&self, buf: &[u8]) -> io::Result<u64> {
        let offset = self.len()?;
        self.write_at(buf, offset)?;
        Ok(offset)
    }
    /// Fills `buf` from `offset`, failing with `UnexpectedEof` if the file is too short.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file ends before the expected length",
                    ));
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// A held lock; released on drop.
pub trait FsLock: Send + Sync + fmt::Debug {}

#[derive(Debug)]
struct NoLock;
impl FsLock for NoLock {}

/// The real filesystem (`std::fs`, `pread`/`pwrite`, `fdatasync`).
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFs;

#[derive(Debug)]
struct StdFile(std::fs::File);

/// Holds the `flock` until dropped.
#[derive(Debug)]
struct StdLock {
    _file: std::fs::File,
}
impl FsLock for StdLock {}

impl Fs for StdFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(StdFile(f)))
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        Ok(Box::new(StdFile(f)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            // Names that are not UTF-8 cannot be ours; skip them.
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::File::open(dir)?.sync_all()
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn FsLock>> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        match f.try_lock() {
            Ok(()) => Ok(Box::new(StdLock { _file: f })),
            Err(std::fs::TryLockError::WouldBlock) => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "locked by another open log",
            )),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

impl FsFile for StdFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(&self.0, buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(&self.0, buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
}

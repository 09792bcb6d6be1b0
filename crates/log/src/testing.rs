//! Test support: [`FaultFs`], an [`Fs`] wrapper that counts calls and injects I/O errors
//! and latency. Meant for tests of this crate and of the crates above it (fail-stop
//! handling end to end); it is not a crash simulator — that is a separate filesystem.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::fs::{Fs, FsFile, FsLock, StdFs};
use crate::shared::lock;

/// Wraps another [`Fs`] (by default [`StdFs`]); all clones share counters and faults.
#[derive(Debug, Clone)]
pub struct FaultFs {
    inner: Arc<dyn Fs>,
    state: Arc<State>,
}

#[derive(Debug, Default)]
struct State {
    sync_data_calls: AtomicU64,
    sync_dir_calls: AtomicU64,
    write_calls: AtomicU64,
    faults: Mutex<Faults>,
}

#[derive(Debug, Default, Clone)]
struct Faults {
    sync_data: Option<io::ErrorKind>,
    sync_dir: Option<io::ErrorKind>,
    /// Error kind, and how many bytes of the buffer reach the file before the error.
    write: Option<(io::ErrorKind, usize)>,
    sync_delay: Duration,
}

impl Default for FaultFs {
    fn default() -> Self {
        FaultFs::new(Arc::new(StdFs))
    }
}

impl FaultFs {
    /// Wraps `inner`, with no faults.
    pub fn new(inner: Arc<dyn Fs>) -> FaultFs {
        FaultFs {
            inner,
            state: Arc::default(),
        }
    }

    /// Every `sync_data` fails with `kind` (without syncing) while set.
    pub fn fail_sync_data(&self, kind: Option<io::ErrorKind>) {
        lock(&self.state.faults).sync_data = kind;
    }

    /// Every directory fsync fails with `kind` while set.
    pub fn fail_sync_dir(&self, kind: Option<io::ErrorKind>) {
        lock(&self.state.faults).sync_dir = kind;
    }

    /// Every `write_at` writes at most `prefix` bytes of its buffer (a torn write), then
    /// fails with `kind`, while set.
    pub fn fail_writes(&self, fault: Option<(io::ErrorKind, usize)>) {
        lock(&self.state.faults).write = fault;
    }

    /// Sleeps this long in every `sync_data`, like a real disk (≈4 ms on the CI machines).
    pub fn set_sync_delay(&self, delay: Duration) {
        lock(&self.state.faults).sync_delay = delay;
    }

    /// Number of `sync_data` calls so far, failed ones included.
    pub fn sync_data_calls(&self) -> u64 {
        self.state.sync_data_calls.load(Ordering::SeqCst)
    }

    /// Number of directory fsyncs so far.
    pub fn sync_dir_calls(&self) -> u64 {
        self.state.sync_dir_calls.load(Ordering::SeqCst)
    }

    /// Number of `write_at` calls so far, failed ones included.
    pub fn write_calls(&self) -> u64 {
        self.state.write_calls.load(Ordering::SeqCst)
    }
}

fn injected(kind: io::ErrorKind) -> io::Error {
    io::Error::new(kind, format!("injected fault: {kind}"))
}

impl Fs for FaultFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let inner = self.inner.create(path)?;
        Ok(Box::new(FaultFile {
            inner,
            state: self.state.clone(),
        }))
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let inner = self.inner.open(path)?;
        Ok(Box::new(FaultFile {
            inner,
            state: self.state.clone(),
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.inner.remove(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.state.sync_dir_calls.fetch_add(1, Ordering::SeqCst);
        if let Some(kind) = lock(&self.state.faults).sync_dir {
            return Err(injected(kind));
        }
        self.inner.sync_dir(dir)
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn FsLock>> {
        self.inner.lock(path)
    }
}

#[derive(Debug)]
struct FaultFile {
    inner: Box<dyn FsFile>,
    state: Arc<State>,
}

impl FsFile for FaultFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.state.write_calls.fetch_add(1, Ordering::SeqCst);
        let fault = lock(&self.state.faults).write;
        if let Some((kind, prefix)) = fault {
            self.inner.write_at(&buf[..prefix.min(buf.len())], offset)?;
            return Err(injected(kind));
        }
        self.inner.write_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.state.sync_data_calls.fetch_add(1, Ordering::SeqCst);
        let faults = lock(&self.state.faults).clone();
        if !faults.sync_delay.is_zero() {
            std::thread::sleep(faults.sync_delay);
        }
        if let Some(kind) = faults.sync_data {
            return Err(injected(kind));
        }
        self.inner.sync_data()
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        self.inner.truncate(len)
    }

    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
}

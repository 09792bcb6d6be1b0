//! State shared by the `Log` handles, the writer thread and readers.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::fs::Fs;
use crate::segment::SegmentTable;
use crate::{Durable, LogConfig};

pub(crate) struct Shared {
    pub dir: PathBuf,
    pub fs: Arc<dyn Fs>,
    pub config: LogConfig,
    /// Retained segments. Lock order: this is the innermost lock; no I/O under it.
    pub segments: Mutex<SegmentTable>,
    /// Set once, on the first write/fsync failure; never cleared (fail-stop).
    pub poison: OnceLock<String>,
    /// The durable end, published by the writer after each fsync'd commit.
    pub durable: watch::Sender<Durable>,
}

impl Shared {
    pub fn segments(&self) -> MutexGuard<'_, SegmentTable> {
        // The table is consistent after every statement that mutates it, so a panic
        // elsewhere while holding the lock cannot leave it half-updated.
        self.segments.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Poisons the log with `reason` (the first reason wins) and logs it.
    pub fn poison(&self, reason: String) {
        tracing::error!(dir = %self.dir.display(), %reason, "log poisoned; refusing further writes");
        let _ = self.poison.set(reason);
    }

    pub fn check_poison(&self) -> Result<()> {
        match self.poison.get() {
            Some(reason) => Err(Error::Poisoned(reason.clone())),
            None => Ok(()),
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

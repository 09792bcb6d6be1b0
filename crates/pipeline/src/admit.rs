//! Admission: how much a stream may hold that is not yet durable (bytes in flight) and not yet
//! delivered (bytes on disk). Above either budget, records are refused at once with
//! `ServiceUnavailableException` ("Slow down.") instead of queueing: memory and disk stay bounded
//! and clients back off, as Firehose's own throttling makes them do.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A byte budget shared by concurrent requests. Reservations are released on drop.
#[derive(Debug)]
pub struct ByteBudget {
    used: AtomicU64,
    limit: u64,
}

/// Bytes reserved from a [`ByteBudget`], given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<ByteBudget>,
    bytes: u64,
}

impl ByteBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(Self {
            used: AtomicU64::new(0),
            limit,
        })
    }

    /// Reserves as many leading `sizes` as fit; returns how many fit and the reservation.
    /// A first item larger than the whole budget is admitted alone when nothing else is in
    /// flight, so a single large record can always make progress.
    pub fn reserve_prefix(self: &Arc<Self>, sizes: &[usize]) -> (usize, Reservation) {
        let mut current = self.used.load(Ordering::Relaxed);
        loop {
            let mut count = 0;
            let mut total = 0u64;
            for &size in sizes {
                let next = total + size as u64;
                let fits = current + next <= self.limit || (current == 0 && count == 0);
                if !fits {
                    break;
                }
                total = next;
                count += 1;
            }
            match self.used.compare_exchange_weak(
                current,
                current + total,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return (
                        count,
                        Reservation {
                            budget: self.clone(),
                            bytes: total,
                        },
                    );
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// Bytes currently reserved.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_a_prefix_and_releases() {
        let budget = ByteBudget::new(100);
        let (n, r1) = budget.reserve_prefix(&[40, 40, 40]);
        assert_eq!(n, 2);
        assert_eq!(budget.used(), 80);
        let (n2, _r2) = budget.reserve_prefix(&[30]);
        assert_eq!(n2, 0);
        drop(r1);
        assert_eq!(budget.used(), 0);
        let (n3, _r3) = budget.reserve_prefix(&[500]);
        assert_eq!(
            n3, 1,
            "an oversized record is admitted alone into an idle budget"
        );
    }
}

/// The free space of the filesystem holding the data dir, checked on every put (one `statvfs`,
/// about a microsecond). Records are refused while it is below the reserve, so a full disk
/// answers `ServiceUnavailableException` at once instead of failing the log's write (which
/// would fail the whole group commit), and admission resumes as soon as space is freed.
#[derive(Debug)]
pub(crate) struct DiskSpace {
    path: PathBuf,
    reserve: u64,
    warned: AtomicBool,
}

impl DiskSpace {
    pub(crate) fn new(path: PathBuf, reserve: u64) -> Self {
        Self {
            path,
            reserve,
            warned: AtomicBool::new(false),
        }
    }

    /// Whether fewer than the reserved bytes are free. An unreadable figure counts as
    /// enough space (the log's own write errors still protect the data).
    pub(crate) fn is_low(&self) -> bool {
        if self.reserve == 0 {
            return false;
        }
        match rustix::fs::statvfs(&self.path) {
            Ok(st) => {
                let low = st.f_bavail.saturating_mul(st.f_frsize) < self.reserve;
                if low != self.warned.swap(low, Ordering::Relaxed) {
                    if low {
                        tracing::warn!(path = %self.path.display(), reserve = self.reserve,
                            "the data dir's disk is full: refusing records until space is freed");
                    } else {
                        tracing::info!(path = %self.path.display(), "disk space freed: accepting records again");
                    }
                }
                low
            }
            Err(e) => {
                tracing::debug!(path = %self.path.display(), error = %e, "statvfs failed");
                false
            }
        }
    }
}

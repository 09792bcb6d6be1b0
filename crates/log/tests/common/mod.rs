//! Shared harness of the crash tests: drives a real [`Log`] on a [`SimFs`] and checks what
//! every recovery returns against a model of what was acknowledged.
//!
//! # The invariant (checked after every open, clean or after a crash)
//!
//! Let `committed` be the recovered checkpoint. Then:
//! 1. the recovered checkpoint is the last acknowledged one or one attempted after it
//!    (an attempt that failed may or may not have become durable);
//! 2. records come back in strictly increasing seq order (no duplicates);
//! 3. every acknowledged record with `seq >= committed` is returned, at its seq, with
//!    identical bytes and arrival time; so is every record an earlier crash recovery
//!    returned (it was durable then and nothing may remove it but reclamation);
//! 4. every other returned record belongs to an append that was *not* acknowledged
//!    (failed or cut off by a crash): its bytes are one of that append's records, all of
//!    that append's returned records agree on one base seq (`seq - index`), and its seq is
//!    not below the acknowledged end when that append was submitted; nothing that was
//!    never appended appears (every record is traced to its append by its arrival time);
//! 5. `next_seq` is past every acknowledged and every returned record, and later appends
//!    never reuse such a seq;
//! 6. the oldest retained seq is at most `committed`.
//!
//! Besides, once an injected fault fired on a write, fsync, create, rename, truncate or
//! directory fsync of an open log (not on the removal of a reclaimed segment, which is
//! harmless by design), the log must be poisoned and refuse every later append and
//! checkpoint.

#![allow(dead_code)] // each test binary uses a different part

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use lakehose_log::sim::{CrashMode, Op, SimFs};
use lakehose_log::{
    Checkpoint, Error, Keyring, Log, LogConfig, LogEncryption, LogRecord, Recovery,
};
use tokio::runtime::Runtime;

pub const DIR: &str = "/sim/log";

pub fn dir() -> PathBuf {
    PathBuf::from(DIR)
}

/// Encryption of the crash tests' logs: a fixed keyring of `k1` and `k2`, writing new
/// segments under `write` (`None`: plaintext, the keyring only reads).
pub fn encryption(write: Option<&str>) -> Option<LogEncryption> {
    let keyring = Keyring::new(
        vec![
            ("k1".to_string(), [0x11; 32]),
            ("k2".to_string(), [0x22; 32]),
        ],
        None,
    )
    .expect("keyring");
    Some(LogEncryption {
        keyring: Arc::new(keyring),
        write_key: write.map(str::to_string),
        context: b"sim-stream".to_vec(),
    })
}

pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime")
}

/// The deterministic payload of record `idx` of append call `call`.
pub fn payload(call: u64, idx: usize, len: usize) -> Bytes {
    let mut x = call.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (idx as u64).wrapping_mul(0xD6E8_FEB8);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes()[..(len - out.len()).min(8)]);
    }
    Bytes::from(out)
}

/// Arrival time of append call `call`: identifies the call a record came from.
pub fn arrival(call: u64) -> i64 {
    1_700_000_000_000 + call as i64
}

fn call_of(arrival_ms: i64) -> Option<u64> {
    u64::try_from(arrival_ms - 1_700_000_000_000).ok()
}

#[derive(Debug, Clone)]
struct AppendCall {
    records: Vec<Bytes>,
    /// The acknowledged end of the log when this call was submitted.
    floor: u64,
    /// The seqs it was acknowledged with.
    acked: Option<Range<u64>>,
}

/// What the log acknowledged; see the module docs for how recoveries are checked.
#[derive(Debug, Default, Clone)]
pub struct Model {
    calls: Vec<AppendCall>,
    /// seq -> (call, index): every record that must survive (unless below the checkpoint).
    durable: BTreeMap<u64, (u64, usize)>,
    /// One past the largest acknowledged seq.
    acked_end: u64,
    /// The last acknowledged (or since recovered from durable state) checkpoint.
    checkpoint: Checkpoint,
    /// Checkpoints attempted (failed) since then.
    checkpoint_attempts: Vec<Checkpoint>,
    /// Number of records acknowledged so far.
    pub acked_records: u64,
    /// Number of recoveries checked.
    pub checks: u64,
}

pub type Check = Result<(), String>;

impl Model {
    fn new_call(&mut self, records: Vec<Bytes>) -> u64 {
        self.calls.push(AppendCall {
            records,
            floor: self.acked_end,
            acked: None,
        });
        self.calls.len() as u64 - 1
    }

    fn record(&self, call: u64, idx: usize) -> &Bytes {
        &self.calls[call as usize].records[idx]
    }

    /// An append returned `Ok(range)`.
    fn ack(&mut self, call: u64, range: Range<u64>) -> Check {
        let n = self.calls[call as usize].records.len() as u64;
        if range.end - range.start != n {
            return Err(format!(
                "call {call}: {n} records acknowledged as {range:?}"
            ));
        }
        for (idx, seq) in range.clone().enumerate() {
            if let Some(prev) = self.durable.insert(seq, (call, idx)) {
                return Err(format!(
                    "call {call}: seq {seq} acknowledged, but it already holds durable record {prev:?}"
                ));
            }
        }
        self.acked_end = self.acked_end.max(range.end);
        self.acked_records += n;
        self.calls[call as usize].acked = Some(range);
        Ok(())
    }

    /// Checks what a freshly opened log holds; `crashed` if the open followed a crash.
    pub fn check_recovered(&mut self, log: &Log, rec: &Recovery, crashed: bool) -> Check {
        self.checks += 1;
        let cp = log.last_checkpoint();
        if cp != self.checkpoint && !self.checkpoint_attempts.contains(&cp) {
            return Err(format!(
                "recovered checkpoint {cp:?} is neither the acknowledged {:?} nor an attempt {:?}",
                self.checkpoint, self.checkpoint_attempts
            ));
        }
        let committed = cp.committed;
        if rec.committed != committed {
            return Err(format!("report committed {} != {committed}", rec.committed));
        }
        let oldest = log.oldest_retained_seq();
        if oldest > committed {
            return Err(format!("oldest retained {oldest} > committed {committed}"));
        }
        let records = read_all(log)?;
        let next_seq = log.durable().borrow().next_seq;
        if rec.next_seq != next_seq {
            return Err(format!(
                "report next_seq {} != durable {next_seq}",
                rec.next_seq
            ));
        }

        // 2. Strictly increasing seqs.
        if let Some(w) = records.windows(2).find(|w| w[0].seq >= w[1].seq) {
            return Err(format!(
                "seqs out of order or duplicated: {} then {}",
                w[0].seq, w[1].seq
            ));
        }
        // 3. Every durable record is there.
        let got: BTreeMap<u64, &LogRecord> = records.iter().map(|r| (r.seq, r)).collect();
        for (&seq, &(call, idx)) in self.durable.range(committed..) {
            if !got.contains_key(&seq) {
                let acked = self.calls[call as usize].acked.is_some();
                return Err(format!(
                    "lost {} record seq {seq} (call {call} #{idx}, {} bytes); committed {committed}, \
                     recovered {} records, next_seq {next_seq}: {rec:?}",
                    if acked { "ACKNOWLEDGED" } else { "durable" },
                    self.record(call, idx).len(),
                    records.len()
                ));
            }
        }
        // 4. Every record is accounted for.
        let mut bases: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
        for r in &records {
            let Some(call) = call_of(r.arrival_ms).filter(|&c| c < self.calls.len() as u64) else {
                return Err(format!(
                    "seq {}: record from no append (arrival {})",
                    r.seq, r.arrival_ms
                ));
            };
            if let Some(&(c, idx)) = self.durable.get(&r.seq) {
                if c != call || r.data != *self.record(c, idx) {
                    return Err(format!(
                        "seq {}: expected call {c} #{idx}, got call {call} with {} bytes",
                        r.seq,
                        r.data.len()
                    ));
                }
                continue;
            }
            let c = &self.calls[call as usize];
            if let Some(range) = &c.acked {
                return Err(format!(
                    "seq {}: record of call {call}, which was acknowledged as {range:?}",
                    r.seq
                ));
            }
            if r.seq < c.floor {
                return Err(format!(
                    "seq {}: unacknowledged record of call {call} below the acknowledged end {} \
                     at its submission",
                    r.seq, c.floor
                ));
            }
            let candidates: BTreeSet<u64> = c
                .records
                .iter()
                .enumerate()
                .filter(|(_, d)| **d == r.data)
                .filter_map(|(i, _)| r.seq.checked_sub(i as u64))
                .collect();
            let set = bases.entry(call).or_insert_with(|| candidates.clone());
            *set = set.intersection(&candidates).copied().collect();
            if set.is_empty() {
                return Err(format!(
                    "seq {}: {} bytes that are not a record of call {call} at a consistent position",
                    r.seq,
                    r.data.len()
                ));
            }
        }
        // 5. Seqs never go back.
        let max_seen = records.last().map_or(0, |r| r.seq + 1);
        if next_seq < self.acked_end || next_seq < max_seen {
            return Err(format!(
                "next_seq {next_seq} below acknowledged end {} or returned end {max_seen}",
                self.acked_end
            ));
        }
        if let Some((&seq, _)) = self.durable.iter().next_back()
            && next_seq <= seq
        {
            return Err(format!("next_seq {next_seq} would reuse durable seq {seq}"));
        }

        if crashed {
            // What a crash recovery returns is on disk: it must never go away again.
            for r in &records {
                self.durable.entry(r.seq).or_insert_with(|| {
                    let call = call_of(r.arrival_ms).expect("checked");
                    let base = bases[&call].first().copied().expect("checked");
                    (call, (r.seq - base) as usize)
                });
            }
            self.checkpoint = cp;
            self.checkpoint_attempts.clear();
        }
        Ok(())
    }
}

pub fn read_all(log: &Log) -> Result<Vec<LogRecord>, String> {
    let from = log.oldest_retained_seq();
    let mut reader = log
        .reader(from)
        .map_err(|e| format!("reader at {from}: {e}"))?;
    let mut out = Vec::new();
    while let Some(r) = reader.next().map_err(|e| format!("read: {e}"))? {
        out.push(r);
    }
    Ok(out)
}

/// A log on a [`SimFs`] plus its model.
pub struct Harness {
    pub fs: SimFs,
    pub config: LogConfig,
    pub log: Option<Log>,
    pub model: Model,
    rt: Runtime,
    /// Injected faults already accounted for.
    seen_faults: usize,
    /// A fault fired on an open log: it must stay poisoned.
    pub expect_poisoned: bool,
    /// Crashes simulated, and how many of them dropped or tore something unsynced.
    pub crashes: u64,
    pub lossy_crashes: u64,
}

impl Harness {
    pub fn new(fs: SimFs, config: LogConfig) -> Harness {
        Harness {
            fs,
            config,
            log: None,
            model: Model::default(),
            rt: runtime(),
            seen_faults: 0,
            expect_poisoned: false,
            crashes: 0,
            lossy_crashes: 0,
        }
    }

    fn fs(&self) -> Arc<SimFs> {
        Arc::new(self.fs.clone())
    }

    /// Opens the log, retrying when an injected fault fails the open, and checks the
    /// recovered state. Does nothing if the process is dead (crash point reached).
    pub fn open(&mut self, crashed: bool) -> Check {
        assert!(self.log.is_none(), "open with a log still open");
        let mut attempts = 0;
        loop {
            if self.fs.is_dead() {
                return Ok(());
            }
            match Log::open_with_fs(&dir(), self.config.clone(), self.fs()) {
                Ok((log, rec)) => {
                    // Faults that fired during the open failed the open or were harmless.
                    self.seen_faults = self.fs.fired_faults().len();
                    self.expect_poisoned = false;
                    // A process that died late in the open (say, removing a reclaimed
                    // segment) cannot read; the crash that follows is checked instead.
                    if !self.fs.is_dead() {
                        self.model.check_recovered(&log, &rec, crashed)?;
                    }
                    self.log = Some(log);
                    return Ok(());
                }
                Err(e) => {
                    attempts += 1;
                    let faults = self.fs.fired_faults().len();
                    if (faults == self.seen_faults && !self.fs.is_dead()) || attempts > 10 {
                        return Err(format!("open failed without a fault to blame: {e}"));
                    }
                    self.seen_faults = faults;
                }
            }
        }
    }

    /// Closes the log (clean shutdown, as on drop).
    pub fn close(&mut self) {
        if let Some(log) = self.log.take() {
            log.close();
        }
    }

    /// Notes faults that fired on the open log.
    fn note_faults(&mut self) -> Check {
        let fired = self.fs.fired_faults();
        if fired[self.seen_faults..]
            .iter()
            .any(|&(_, op, _)| op != Op::Remove)
        {
            self.expect_poisoned = true;
        }
        self.seen_faults = fired.len();
        if self.expect_poisoned
            && let Some(log) = &self.log
            && log.poisoned().is_none()
        {
            return Err(format!(
                "a fault fired ({fired:?}) but the log is not poisoned"
            ));
        }
        Ok(())
    }

    /// Appends the batches concurrently (one task each), records sizes given.
    pub fn append(&mut self, batches: &[Vec<usize>]) -> Check {
        let Some(log) = self.log.clone() else {
            return Ok(());
        };
        let mut jobs = Vec::new();
        for sizes in batches {
            let call = self.model.calls.len() as u64;
            let records: Vec<Bytes> = sizes
                .iter()
                .enumerate()
                .map(|(i, &len)| payload(call, i, len))
                .collect();
            let call = if records.is_empty() {
                None
            } else {
                Some(self.model.new_call(records.clone()))
            };
            jobs.push((call, records));
        }
        let was_poisoned = self.expect_poisoned || log.poisoned().is_some();
        let results = self.rt.block_on(async {
            let mut handles = Vec::new();
            for (call, records) in jobs {
                let log = log.clone();
                let arrival_ms = arrival(call.unwrap_or(u64::MAX >> 2));
                handles.push(tokio::spawn(async move {
                    (call, log.append(records, arrival_ms).await)
                }));
            }
            let mut out = Vec::new();
            for h in handles {
                out.push(h.await.expect("append task"));
            }
            out
        });
        for (call, result) in results {
            match (call, result) {
                (_, Ok(_)) if was_poisoned => {
                    return Err("an append was acknowledged by a poisoned log".into());
                }
                (None, Ok(r)) if !r.is_empty() => {
                    return Err(format!("empty append returned {r:?}"));
                }
                (None, Ok(_)) => {}
                (Some(call), Ok(range)) => self.model.ack(call, range)?,
                (_, Err(Error::Poisoned(_))) if was_poisoned || log.poisoned().is_some() => {}
                (_, Err(Error::Io { .. }))
                    if self.fs.is_dead() || self.fs.fired_faults().len() > self.seen_faults => {}
                (_, Err(e)) => return Err(format!("append failed unexpectedly: {e}")),
            }
        }
        self.note_faults()
    }

    /// Checkpoints at `frac`/255 of the way from the last checkpoint to the durable end.
    pub fn checkpoint(&mut self, frac: u8) -> Check {
        let Some(log) = self.log.clone() else {
            return Ok(());
        };
        let last = log.last_checkpoint().committed;
        let durable = log.durable().borrow().next_seq;
        let committed = last + durable.saturating_sub(last) * u64::from(frac) / 255;
        let cp = Checkpoint {
            committed,
            pending: format!("plan-{}", self.model.checks).into_bytes(),
        };
        let was_poisoned = self.expect_poisoned || log.poisoned().is_some();
        match log.checkpoint(cp.committed, &cp.pending) {
            Ok(()) if was_poisoned => return Err("a poisoned log wrote a checkpoint".into()),
            Ok(()) => self.model.acked_checkpoint(cp),
            // The checkpoint is durable; only the deletion of a reclaimed segment failed.
            Err(Error::Io { op: "remove", .. }) => self.model.acked_checkpoint(cp),
            Err(Error::Poisoned(_)) if was_poisoned => {}
            Err(Error::Io { .. }) => self.model.checkpoint_attempts.push(cp),
            Err(e) => return Err(format!("checkpoint {committed} failed unexpectedly: {e}")),
        }
        self.note_faults()
    }

    /// Switches the open log's encryption (`Log::set_encryption`) to master key `key`
    /// (`None`: plaintext). The setting is "persisted" first (the harness's config, used by
    /// every later open, as the engine persists its stream spec before switching), so a crash
    /// at any point reopens in the new mode. Without a keyring, a key is refused unchanged.
    pub fn set_encryption(&mut self, key: Option<&str>) -> Check {
        let Some(log) = self.log.clone() else {
            return Ok(());
        };
        let was_poisoned = self.expect_poisoned || log.poisoned().is_some();
        let Some(enc) = self.config.encryption.as_mut() else {
            let count = log.segment_count();
            return match (key, self.rt.block_on(log.set_encryption(key))) {
                (Some(_), Err(Error::Encryption { .. })) if log.segment_count() == count => Ok(()),
                (_, Err(Error::Poisoned(_))) if was_poisoned => Ok(()),
                (None, Ok(())) if !was_poisoned => Ok(()),
                (_, other) => Err(format!(
                    "set_encryption({key:?}) without keyring: {other:?}"
                )),
            };
        };
        enc.write_key = key.map(str::to_string);
        match self.rt.block_on(log.set_encryption(key)) {
            Ok(()) if was_poisoned => return Err("a poisoned log switched encryption".into()),
            Ok(()) => {
                let active = log.active_master_key();
                if active.as_deref() != key {
                    return Err(format!(
                        "set_encryption({key:?}) left the active segment under {active:?}"
                    ));
                }
            }
            // A failed roll (fault, or the process died) poisons the log.
            Err(Error::Poisoned(_)) if log.poisoned().is_some() => {}
            Err(e) => return Err(format!("set_encryption({key:?}) failed unexpectedly: {e}")),
        }
        self.note_faults()
    }

    /// Clean shutdown and open (no crash).
    pub fn reopen(&mut self) -> Check {
        self.close();
        self.open(false)
    }

    /// The process dies (if not already) and the machine crashes as `mode` says; then the
    /// log is opened and checked.
    pub fn crash(&mut self, mode: CrashMode) -> Check {
        self.close();
        let report = self.fs.crash(mode);
        self.crashes += 1;
        if report.lost_anything() {
            self.lossy_crashes += 1;
        }
        self.seen_faults = self.fs.fired_faults().len();
        self.open(true)
    }

    /// Checks that power loss *now* would lose nothing acknowledged, on a copy of the
    /// filesystem, while the log goes on running on the original.
    pub fn probe_power_loss(&self, mode: CrashMode) -> Check {
        let fork = self.fs.fork();
        fork.crash(mode);
        let mut probe = Harness::new(fork, self.config.clone());
        probe.model = self.model.clone();
        probe
            .open(true)
            .map_err(|e| format!("power-loss probe ({mode:?}): {e}"))
    }

    /// The next I/O call `after` calls from now fails with `kind`.
    pub fn inject(&mut self, after: u64, kind: io::ErrorKind) {
        self.fs.fail_call(self.fs.calls() + after, kind);
    }

    /// The process dies at the I/O call `after` calls from now.
    pub fn die_in(&mut self, after: u64) {
        self.fs.crash_at_call(self.fs.calls() + after);
    }
}

impl Model {
    fn acked_checkpoint(&mut self, cp: Checkpoint) {
        self.checkpoint = cp;
        self.checkpoint_attempts.clear();
    }
}

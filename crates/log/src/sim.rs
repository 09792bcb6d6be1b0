//! Test support: [`SimFs`], an in-memory [`Fs`] that simulates crashes (power loss or the
//! process dying) and I/O faults, following exactly the rules of the `fs` module.
//!
//! # The model
//!
//! - **Files** are inodes. Each has a *durable image* (what the disk holds) and an ordered
//!   list of *unsynced operations* (`write_at` and `truncate`, a `create` of an existing
//!   file being a truncation to 0). Reads, `len` and everything else the process sees use
//!   the *view*: the durable image with every operation applied (the page cache).
//!   [`FsFile::sync_data`] applies the unsynced operations to the durable image in order.
//! - **Directory entries** likewise: a durable map `path -> inode` plus an ordered list of
//!   unsynced entry operations (link on `create` of a new file, `rename`, `remove`).
//!   [`Fs::sync_dir`] makes the operations on the entries of that directory durable.
//!   Directories themselves (`create_dir_all`) are durable at once: the log creates its
//!   directory but never fsyncs its parent, so a log directory created just before a power
//!   loss could vanish on a real disk; this model does not cover that (known gap).
//! - **[`SimFs::crash`]** computes the state after a crash from the durable images plus
//!   *some* of the unsynced operations, chosen by a [`CrashMode`]: none (`DropAll`, power
//!   loss with a perfectly lazy disk), all (`KeepAll`, a process crash: the page cache
//!   survives) or a seeded random choice (`Random`): per file either a prefix of its
//!   operations or an arbitrary subset, each kept write possibly torn to a prefix of its
//!   bytes; per directory an arbitrary subset of its entry operations. Kept operations are
//!   applied *in their original order*: writeback can persist a later write without an
//!   earlier one (the reordering a crash can show), but it cannot make older page-cache
//!   contents overwrite newer ones. A write that lands beyond the end of the durable image
//!   extends the file with zeros (a hole). Files reachable only through unsynced entries
//!   are gone; files no durable entry points to are dropped. The view becomes the new
//!   durable image, every open handle becomes stale (its calls fail), locks are released.
//!
//! # Faults
//!
//! Every call that changes state is an *I/O call* and is counted (failed ones included):
//! `write_at`, `sync_data`, `create`, `rename`, `remove`, `truncate`, `sync_dir` (see
//! [`Op`]). Reads, `len`, `open`, `list`, `create_dir_all` and `lock` are not.
//!
//! - [`SimFs::fail_call`]: the I/O call with that index fails once with the given kind
//!   (EIO = `ErrorKind::Other` or any other kind, ENOSPC = `ErrorKind::StorageFull`). A
//!   failed write leaves a (seeded) random strict prefix of its buffer in the file, unsynced.
//!   A failed `sync_data` models Linux's "fsyncgate": a random prefix of the file's
//!   unsynced operations is made durable (partial writeback), and each of the others is
//!   either kept unsynced or *lost for good*: still visible to reads, but no later sync nor
//!   crash can bring it to disk. A failed `sync_dir` makes a random prefix of the
//!   directory's operations durable. Other failed calls have no effect. (Operations only
//!   ever become durable in their original order.)
//! - [`SimFs::crash_at_call`]: the process dies at that call: it and every later I/O call
//!   fail (a write at the crash point is kept as an unsynced operation, the rest have no
//!   effect). Call [`SimFs::crash`] afterwards to get the post-crash state.
//!
//! # Invariants
//!
//! - The view always equals the durable image with the unsynced (not lost) operations
//!   applied, except for operations lost to a failed sync, which only the view has.
//! - Nothing becomes durable except by `sync_data`/`sync_dir` (or a failed one), or by a
//!   crash choosing to keep it; after a crash, view = durable and nothing is unsynced.
//! - Given the same sequence of calls, seed and crash mode, the result is identical.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::fs::{Fs, FsFile, FsLock};
use crate::shared::lock;

/// The kinds of counted I/O calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// [`FsFile::write_at`] (and the default `append`).
    Write,
    /// [`FsFile::sync_data`].
    SyncData,
    /// [`FsFile::truncate`].
    Truncate,
    /// [`Fs::create`].
    Create,
    /// [`Fs::rename`].
    Rename,
    /// [`Fs::remove`].
    Remove,
    /// [`Fs::sync_dir`].
    SyncDir,
}

/// One counted I/O call, as recorded by [`SimFs::trace`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// Its index (0 is the first I/O call on this filesystem).
    pub index: u64,
    /// What it was.
    pub op: Op,
    /// The file or directory it applied to.
    pub path: PathBuf,
    /// The error it returned, if it failed.
    pub error: Option<io::ErrorKind>,
}

/// Which unsynced operations survive a [`SimFs::crash`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// None: only what was synced survives (power loss, nothing written back).
    DropAll,
    /// All of them: the page cache survives (the process died, the machine did not).
    KeepAll,
    /// A deterministic random choice from this seed (prefixes, subsets, torn writes).
    Random(u64),
}

/// What a crash did with the unsynced operations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CrashReport {
    /// File operations applied whole.
    pub kept_file_ops: usize,
    /// Writes applied torn (a strict prefix of their bytes).
    pub torn_writes: usize,
    /// File operations dropped (including ones lost to a failed sync).
    pub dropped_file_ops: usize,
    /// Directory entry operations applied.
    pub kept_dir_ops: usize,
    /// Directory entry operations dropped.
    pub dropped_dir_ops: usize,
}

impl CrashReport {
    /// Whether anything unsynced was lost or torn.
    pub fn lost_anything(&self) -> bool {
        self.torn_writes + self.dropped_file_ops + self.dropped_dir_ops > 0
    }
}

/// An in-memory crash-simulating filesystem; see the module docs. Clones share the state.
#[derive(Clone, Default)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for SimFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = lock(&self.state);
        f.debug_struct("SimFs")
            .field("calls", &s.calls)
            .field("files", &s.entries.keys().collect::<Vec<_>>())
            .field("unsynced_dir_ops", &s.dir_ops.len())
            .finish_non_exhaustive()
    }
}

type Ino = u64;

#[derive(Default, Clone)]
struct State {
    /// Bumped by every crash; handles of an older generation are stale.
    generation: u64,
    dirs: BTreeSet<PathBuf>,
    /// The view of the directory entries.
    entries: BTreeMap<PathBuf, Ino>,
    /// The durable directory entries.
    durable_entries: BTreeMap<PathBuf, Ino>,
    /// Unsynced entry operations, oldest first.
    dir_ops: Vec<DirOp>,
    inodes: HashMap<Ino, Inode>,
    next_ino: Ino,
    calls: u64,
    /// One-shot errors by call index.
    faults: BTreeMap<u64, io::ErrorKind>,
    crash_at: Option<u64>,
    trace: Vec<Call>,
    /// Injected faults that fired: (call, op, kind).
    fired: Vec<(u64, Op, io::ErrorKind)>,
    locks: BTreeSet<PathBuf>,
    rng: Rng,
}

#[derive(Default, Clone)]
struct Inode {
    /// What reads see.
    view: Vec<u8>,
    /// What is on disk.
    durable: Vec<u8>,
    /// Unsynced operations, oldest first.
    unsynced: Vec<FileOp>,
    /// Operations lost to a failed sync: in the view, never durable.
    lost: usize,
}

#[derive(Clone)]
enum FileOp {
    Write { offset: u64, data: Vec<u8> },
    Truncate(u64),
}

impl FileOp {
    fn apply(&self, image: &mut Vec<u8>) {
        match self {
            FileOp::Write { offset, data } => write_into(image, *offset, data),
            FileOp::Truncate(len) => image.resize(*len as usize, 0),
        }
    }
}

fn write_into(image: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let offset = offset as usize;
    let end = offset + data.len();
    if image.len() < end {
        image.resize(end, 0);
    }
    image[offset..end].copy_from_slice(data);
}

#[derive(Clone)]
enum DirOp {
    Link {
        path: PathBuf,
        ino: Ino,
    },
    Rename {
        from: PathBuf,
        to: PathBuf,
        ino: Ino,
    },
    Unlink {
        path: PathBuf,
        ino: Ino,
    },
}

impl DirOp {
    /// The directory whose `sync_dir` makes this durable.
    fn dir(&self) -> &Path {
        let path = match self {
            DirOp::Link { path, .. } | DirOp::Unlink { path, .. } => path,
            DirOp::Rename { to, .. } => to,
        };
        path.parent().unwrap_or(Path::new(""))
    }

    fn apply(&self, entries: &mut BTreeMap<PathBuf, Ino>) {
        match self {
            DirOp::Link { path, ino } => {
                entries.insert(path.clone(), *ino);
            }
            DirOp::Rename { from, to, ino } => {
                if entries.get(from) == Some(ino) {
                    entries.remove(from);
                }
                entries.insert(to.clone(), *ino);
            }
            DirOp::Unlink { path, ino } => {
                if entries.get(path) == Some(ino) {
                    entries.remove(path);
                }
            }
        }
    }
}

/// SplitMix64: tiny, deterministic, good enough to pick crash outcomes.
#[derive(Clone, Default)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

fn injected(kind: io::ErrorKind) -> io::Error {
    io::Error::new(kind, format!("injected fault: {kind}"))
}

fn crashed() -> io::Error {
    io::Error::other("simulated crash: the process is dead")
}

fn stale() -> io::Error {
    io::Error::other("stale handle from before a simulated crash")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", path.display()),
    )
}

/// How a counted call proceeds.
enum Verdict {
    Go,
    /// Fail with this error (an injected fault).
    Fault(io::ErrorKind),
    /// The process is dead from this call on; `first` for the call it died at.
    Dead {
        first: bool,
    },
}

impl State {
    /// Counts an I/O call and decides its fate.
    fn begin(&mut self, op: Op, path: &Path) -> Verdict {
        let index = self.calls;
        self.calls += 1;
        let (verdict, error) = match self.crash_at {
            Some(at) if index >= at => (
                Verdict::Dead { first: index == at },
                Some(io::ErrorKind::Other),
            ),
            _ => match self.faults.remove(&index) {
                Some(kind) => {
                    self.fired.push((index, op, kind));
                    (Verdict::Fault(kind), Some(kind))
                }
                None => (Verdict::Go, None),
            },
        };
        self.trace.push(Call {
            index,
            op,
            path: path.to_path_buf(),
            error,
        });
        verdict
    }

    fn inode(&mut self, ino: Ino) -> &mut Inode {
        self.inodes.entry(ino).or_default()
    }

    fn check_parent(&self, path: &Path) -> io::Result<()> {
        match path.parent() {
            Some(dir) if self.dirs.contains(dir) => Ok(()),
            _ => Err(not_found(path)),
        }
    }

    fn push_file_op(&mut self, ino: Ino, op: FileOp) {
        let inode = self.inode(ino);
        op.apply(&mut inode.view);
        inode.unsynced.push(op);
    }
}

impl SimFs {
    /// An empty filesystem whose random choices (torn prefixes of failed writes, the
    /// effects of failed syncs) come from `seed`.
    pub fn with_seed(seed: u64) -> SimFs {
        let fs = SimFs::default();
        lock(&fs.state).rng = Rng(seed);
        fs
    }

    /// An empty filesystem with seed 0.
    pub fn new() -> SimFs {
        SimFs::default()
    }

    /// Number of I/O calls so far (see the module docs for which calls count).
    pub fn calls(&self) -> u64 {
        lock(&self.state).calls
    }

    /// Every I/O call so far, in order.
    pub fn trace(&self) -> Vec<Call> {
        lock(&self.state).trace.clone()
    }

    /// Makes I/O call number `index` (0-based, see [`SimFs::calls`]) fail once with
    /// `kind`. Replaces an earlier fault at the same index.
    pub fn fail_call(&self, index: u64, kind: io::ErrorKind) {
        lock(&self.state).faults.insert(index, kind);
    }

    /// Removes every pending injected fault (not a crash point).
    pub fn clear_faults(&self) {
        lock(&self.state).faults.clear();
    }

    /// Injected faults that have fired, as `(call, op, kind)`.
    pub fn fired_faults(&self) -> Vec<(u64, Op, io::ErrorKind)> {
        lock(&self.state).fired.clone()
    }

    /// The process dies at I/O call `index`: it and every later one fail. Undone by
    /// [`SimFs::crash`].
    pub fn crash_at_call(&self, index: u64) {
        lock(&self.state).crash_at = Some(index);
    }

    /// Whether the crash point was reached.
    pub fn is_dead(&self) -> bool {
        let s = lock(&self.state);
        s.crash_at.is_some_and(|at| s.calls > at)
    }

    /// Number of unsynced operations (file and directory), lost ones excluded.
    pub fn unsynced_ops(&self) -> usize {
        let s = lock(&self.state);
        s.dir_ops.len() + s.inodes.values().map(|i| i.unsynced.len()).sum::<usize>()
    }

    /// The current contents of `path` as the process sees them, if it exists.
    pub fn read(&self, path: &Path) -> Option<Vec<u8>> {
        let s = lock(&self.state);
        let ino = s.entries.get(path)?;
        Some(
            s.inodes
                .get(ino)
                .map(|i| i.view.clone())
                .unwrap_or_default(),
        )
    }

    /// An independent copy of the whole filesystem (synced and unsynced state, faults,
    /// counters), e.g. to crash the copy while the log keeps running on the original.
    /// Handles and locks stay with the original.
    pub fn fork(&self) -> SimFs {
        let mut state = lock(&self.state).clone();
        state.locks.clear();
        state.generation += 1;
        SimFs {
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// Simulates a crash; see the module docs. Everything unsynced is dropped, kept or
    /// torn according to `mode`; the result is durable; open handles become stale; faults
    /// and the crash point are cleared, so the filesystem is ready for a fresh open.
    ///
    /// Drop (or close) the `Log` first: its writer thread must not be mid-call.
    pub fn crash(&self, mode: CrashMode) -> CrashReport {
        let mut s = lock(&self.state);
        let mut report = CrashReport::default();
        let mut rng = match mode {
            CrashMode::Random(seed) => Rng(seed ^ 0x5EED_C4A5_0000_0000),
            _ => Rng(0),
        };

        // Directory entries: a subset of the unsynced operations, in order.
        let dir_ops = std::mem::take(&mut s.dir_ops);
        let mut entries = std::mem::take(&mut s.durable_entries);
        for op in &dir_ops {
            let keep = match mode {
                CrashMode::DropAll => false,
                CrashMode::KeepAll => true,
                CrashMode::Random(_) => rng.chance(2),
            };
            if keep {
                op.apply(&mut entries);
                report.kept_dir_ops += 1;
            } else {
                report.dropped_dir_ops += 1;
            }
        }

        // File contents, for the files that still exist.
        let mut inodes = std::mem::take(&mut s.inodes);
        let mut survivors = HashMap::new();
        // Deterministic order: by inode number.
        let mut live: Vec<Ino> = entries.values().copied().collect();
        live.sort_unstable();
        live.dedup();
        for ino in live {
            let mut inode = inodes.remove(&ino).unwrap_or_default();
            let mut image = std::mem::take(&mut inode.durable);
            report.dropped_file_ops += inode.lost;
            let ops = std::mem::take(&mut inode.unsynced);
            let n = ops.len();
            // Random: half the time a prefix of the operations (the last kept one maybe
            // torn), else an arbitrary subset, each write maybe torn.
            let prefix = match mode {
                CrashMode::Random(_) if n > 0 && rng.chance(2) => Some(rng.below(n as u64 + 1)),
                _ => None,
            };
            for (i, op) in ops.into_iter().enumerate() {
                let (keep, may_tear) = match mode {
                    CrashMode::DropAll => (false, false),
                    CrashMode::KeepAll => (true, false),
                    CrashMode::Random(_) => match prefix {
                        Some(p) => ((i as u64) < p, i as u64 + 1 == p),
                        None => (!rng.chance(3), true),
                    },
                };
                if !keep {
                    report.dropped_file_ops += 1;
                    continue;
                }
                match op {
                    FileOp::Write { offset, data } if may_tear && rng.chance(2) => {
                        let cut = rng.below(data.len() as u64 + 1) as usize;
                        if cut < data.len() {
                            report.torn_writes += 1;
                        } else {
                            report.kept_file_ops += 1;
                        }
                        write_into(&mut image, offset, &data[..cut]);
                    }
                    op => {
                        op.apply(&mut image);
                        report.kept_file_ops += 1;
                    }
                }
            }
            survivors.insert(
                ino,
                Inode {
                    view: image.clone(),
                    durable: image,
                    unsynced: Vec::new(),
                    lost: 0,
                },
            );
        }
        for inode in inodes.values() {
            report.dropped_file_ops += inode.unsynced.len() + inode.lost;
        }

        s.inodes = survivors;
        s.entries = entries.clone();
        s.durable_entries = entries;
        s.generation += 1;
        s.faults.clear();
        s.crash_at = None;
        s.locks.clear();
        report
    }
}

impl Fs for SimFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut s = lock(&self.state);
        for dir in path.ancestors() {
            if s.entries.contains_key(dir) {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} is a file", dir.display()),
                ));
            }
            s.dirs.insert(dir.to_path_buf());
        }
        Ok(())
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let mut s = lock(&self.state);
        match s.begin(Op::Create, path) {
            Verdict::Go => {}
            Verdict::Fault(kind) => return Err(injected(kind)),
            Verdict::Dead { .. } => return Err(crashed()),
        }
        s.check_parent(path)?;
        let ino = match s.entries.get(path) {
            Some(&ino) => {
                s.push_file_op(ino, FileOp::Truncate(0));
                ino
            }
            None => {
                let ino = s.next_ino;
                s.next_ino += 1;
                s.inodes.insert(ino, Inode::default());
                s.entries.insert(path.to_path_buf(), ino);
                s.dir_ops.push(DirOp::Link {
                    path: path.to_path_buf(),
                    ino,
                });
                ino
            }
        };
        Ok(Box::new(SimFile {
            state: self.state.clone(),
            ino,
            generation: s.generation,
            path: path.to_path_buf(),
        }))
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let s = lock(&self.state);
        if s.crash_at.is_some_and(|at| s.calls > at) {
            return Err(crashed());
        }
        let ino = *s.entries.get(path).ok_or_else(|| not_found(path))?;
        Ok(Box::new(SimFile {
            state: self.state.clone(),
            ino,
            generation: s.generation,
            path: path.to_path_buf(),
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = lock(&self.state);
        match s.begin(Op::Rename, from) {
            Verdict::Go => {}
            Verdict::Fault(kind) => return Err(injected(kind)),
            Verdict::Dead { .. } => return Err(crashed()),
        }
        s.check_parent(to)?;
        let ino = s.entries.remove(from).ok_or_else(|| not_found(from))?;
        s.entries.insert(to.to_path_buf(), ino);
        s.dir_ops.push(DirOp::Rename {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
            ino,
        });
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut s = lock(&self.state);
        match s.begin(Op::Remove, path) {
            Verdict::Go => {}
            Verdict::Fault(kind) => return Err(injected(kind)),
            Verdict::Dead { .. } => return Err(crashed()),
        }
        let ino = s.entries.remove(path).ok_or_else(|| not_found(path))?;
        s.dir_ops.push(DirOp::Unlink {
            path: path.to_path_buf(),
            ino,
        });
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let s = lock(&self.state);
        if s.crash_at.is_some_and(|at| s.calls > at) {
            return Err(crashed());
        }
        if !s.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let files = s.entries.keys().filter(|p| p.parent() == Some(dir));
        let subdirs = s.dirs.iter().filter(|p| p.parent() == Some(dir));
        Ok(files
            .chain(subdirs)
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .collect())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = lock(&self.state);
        let fault = match s.begin(Op::SyncDir, dir) {
            Verdict::Go => None,
            Verdict::Fault(kind) => Some(kind),
            Verdict::Dead { .. } => return Err(crashed()),
        };
        if !s.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let ops = std::mem::take(&mut s.dir_ops);
        let ours = ops.iter().filter(|op| op.dir() == dir).count() as u64;
        // A failed directory fsync may still have written some of it: a prefix, so that
        // operations become durable in order (applying a later one before an earlier one
        // could build states no filesystem can, such as a rename undone into a hard link).
        let mut budget = match fault {
            None => ours,
            Some(_) => s.rng.below(ours + 1),
        };
        let mut rest = Vec::new();
        for op in ops {
            let durable = op.dir() == dir && budget > 0;
            if durable {
                budget -= 1;
                op.apply(&mut s.durable_entries);
            } else {
                rest.push(op);
            }
        }
        s.dir_ops = rest;
        match fault {
            Some(kind) => Err(injected(kind)),
            None => Ok(()),
        }
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn FsLock>> {
        let mut s = lock(&self.state);
        if !s.locks.insert(path.to_path_buf()) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "locked by another open log",
            ));
        }
        Ok(Box::new(SimLock {
            state: self.state.clone(),
            path: path.to_path_buf(),
            generation: s.generation,
        }))
    }
}

struct SimLock {
    state: Arc<Mutex<State>>,
    path: PathBuf,
    generation: u64,
}

impl fmt::Debug for SimLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimLock").field("path", &self.path).finish()
    }
}

impl FsLock for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut s = lock(&self.state);
        // A crash released every lock; a new holder may exist by now.
        if s.generation == self.generation {
            s.locks.remove(&self.path);
        }
    }
}

struct SimFile {
    state: Arc<Mutex<State>>,
    ino: Ino,
    generation: u64,
    path: PathBuf,
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFile")
            .field("path", &self.path)
            .field("ino", &self.ino)
            .finish()
    }
}

impl SimFile {
    fn state(&self) -> io::Result<std::sync::MutexGuard<'_, State>> {
        let s = lock(&self.state);
        if s.generation != self.generation {
            return Err(stale());
        }
        Ok(s)
    }
}

impl FsFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut s = self.state()?;
        let view = &s.inode(self.ino).view;
        let start = (offset as usize).min(view.len());
        let n = buf.len().min(view.len() - start);
        buf[..n].copy_from_slice(&view[start..start + n]);
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut s = self.state()?;
        match s.begin(Op::Write, &self.path) {
            Verdict::Go => {
                s.push_file_op(
                    self.ino,
                    FileOp::Write {
                        offset,
                        data: buf.to_vec(),
                    },
                );
                Ok(())
            }
            Verdict::Fault(kind) => {
                // A failed write may leave any strict prefix of the buffer.
                let cut = if buf.is_empty() {
                    0
                } else {
                    s.rng.below(buf.len() as u64) as usize
                };
                if cut > 0 {
                    s.push_file_op(
                        self.ino,
                        FileOp::Write {
                            offset,
                            data: buf[..cut].to_vec(),
                        },
                    );
                }
                Err(injected(kind))
            }
            Verdict::Dead { first } => {
                // Died inside this write: its bytes may be in the page cache, unsynced;
                // the crash decides what survives.
                if first {
                    s.push_file_op(
                        self.ino,
                        FileOp::Write {
                            offset,
                            data: buf.to_vec(),
                        },
                    );
                }
                Err(crashed())
            }
        }
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut s = self.state()?;
        let fault = match s.begin(Op::SyncData, &self.path) {
            Verdict::Go => None,
            Verdict::Fault(kind) => Some(kind),
            Verdict::Dead { .. } => return Err(crashed()),
        };
        let mut rng = s.rng.clone();
        let inode = s.inode(self.ino);
        let ops = std::mem::take(&mut inode.unsynced);
        let mut durable = std::mem::take(&mut inode.durable);
        match fault {
            None => {
                for op in &ops {
                    op.apply(&mut durable);
                }
            }
            Some(_) => {
                // fsyncgate: a prefix reached the disk (in order, as for directories);
                // of the rest, some stays dirty and some is dropped for good (the kernel
                // marked the pages clean).
                let written = rng.below(ops.len() as u64 + 1) as usize;
                for (i, op) in ops.into_iter().enumerate() {
                    if i < written {
                        op.apply(&mut durable);
                    } else if rng.chance(2) {
                        inode.unsynced.push(op);
                    } else {
                        inode.lost += 1;
                    }
                }
            }
        }
        inode.durable = durable;
        s.rng = rng;
        match fault {
            Some(kind) => Err(injected(kind)),
            None => Ok(()),
        }
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        let mut s = self.state()?;
        match s.begin(Op::Truncate, &self.path) {
            Verdict::Go => {
                s.push_file_op(self.ino, FileOp::Truncate(len));
                Ok(())
            }
            Verdict::Fault(kind) => Err(injected(kind)),
            Verdict::Dead { .. } => Err(crashed()),
        }
    }

    fn len(&self) -> io::Result<u64> {
        let mut s = self.state()?;
        Ok(s.inode(self.ino).view.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        PathBuf::from("/sim/d")
    }

    fn setup() -> (SimFs, Box<dyn FsFile>) {
        let fs = SimFs::new();
        fs.create_dir_all(&dir()).unwrap();
        let f = fs.create(&dir().join("a")).unwrap();
        (fs, f)
    }

    #[test]
    fn unsynced_data_and_entries_are_lost_on_power_loss() {
        let (fs, f) = setup();
        f.write_at(b"hello", 0).unwrap();
        assert_eq!(fs.read(&dir().join("a")).unwrap(), b"hello");
        drop(f);
        let r = fs.crash(CrashMode::DropAll);
        assert!(r.lost_anything());
        assert_eq!(fs.read(&dir().join("a")), None, "entry was never synced");
        assert_eq!(fs.list(&dir()).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn synced_data_and_entries_survive() {
        let (fs, f) = setup();
        f.write_at(b"hello", 0).unwrap();
        f.sync_data().unwrap();
        fs.sync_dir(&dir()).unwrap();
        f.write_at(b" world", 5).unwrap();
        assert_eq!(fs.unsynced_ops(), 1);
        fs.crash(CrashMode::DropAll);
        assert_eq!(fs.read(&dir().join("a")).unwrap(), b"hello");
        assert!(f.len().is_err(), "handles are stale after a crash");
        let f = fs.open(&dir().join("a")).unwrap();
        f.write_at(b"!", 5).unwrap();
        fs.crash(CrashMode::KeepAll);
        assert_eq!(fs.read(&dir().join("a")).unwrap(), b"hello!");
    }

    #[test]
    fn rename_is_atomic_and_needs_sync_dir() {
        let (fs, f) = setup();
        f.write_at(b"old", 0).unwrap();
        f.sync_data().unwrap();
        fs.sync_dir(&dir()).unwrap();
        let t = fs.create(&dir().join("t")).unwrap();
        t.write_at(b"new", 0).unwrap();
        t.sync_data().unwrap();
        fs.rename(&dir().join("t"), &dir().join("a")).unwrap();
        assert_eq!(fs.read(&dir().join("a")).unwrap(), b"new");
        drop((f, t));
        fs.crash(CrashMode::DropAll);
        assert_eq!(fs.read(&dir().join("a")).unwrap(), b"old");
        assert_eq!(fs.read(&dir().join("t")), None);
    }

    #[test]
    fn random_crashes_are_deterministic_and_varied() {
        let run = |seed| {
            let (fs, f) = setup();
            fs.sync_dir(&dir()).unwrap();
            for i in 0..8u8 {
                f.write_at(&[i + 1; 10], u64::from(i) * 10).unwrap();
            }
            drop(f);
            let r = fs.crash(CrashMode::Random(seed));
            (r, fs.read(&dir().join("a")).unwrap())
        };
        assert_eq!(run(7), run(7));
        let outcomes: BTreeSet<Vec<u8>> = (0..50).map(|s| run(s).1).collect();
        assert!(outcomes.len() > 20, "{} distinct outcomes", outcomes.len());
        // Some outcome has a hole: a later write kept without an earlier one.
        assert!(outcomes.iter().any(|o| o.windows(10).any(|w| w == [0; 10])));
    }

    #[test]
    fn faults_and_crash_points() {
        let (fs, f) = setup();
        let n = fs.calls();
        fs.fail_call(n + 1, io::ErrorKind::StorageFull);
        f.write_at(b"abc", 0).unwrap();
        let err = f.write_at(b"defgh", 3).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        let len = f.len().unwrap();
        assert!((3..8).contains(&len), "torn prefix, not whole: {len}");
        assert_eq!(
            fs.fired_faults(),
            vec![(n + 1, Op::Write, io::ErrorKind::StorageFull)]
        );
        f.write_at(b"x", 0).unwrap();

        fs.crash_at_call(fs.calls() + 1);
        f.sync_data().unwrap();
        assert!(!fs.is_dead());
        assert!(fs.sync_dir(&dir()).is_err());
        assert!(fs.is_dead());
        assert!(f.sync_data().is_err());
        assert!(fs.create(&dir().join("b")).is_err());
        fs.crash(CrashMode::DropAll);
        assert!(!fs.is_dead());
        assert_eq!(
            fs.read(&dir().join("a")),
            None,
            "the entry never got synced"
        );
        fs.create(&dir().join("b")).unwrap();
    }

    #[test]
    fn failed_sync_can_lose_writes_for_good() {
        let mut lost_seen = false;
        for seed in 0..20 {
            let fs = SimFs::with_seed(seed);
            fs.create_dir_all(&dir()).unwrap();
            let f = fs.create(&dir().join("a")).unwrap();
            fs.sync_dir(&dir()).unwrap();
            for i in 0..6u8 {
                f.write_at(&[i + 1], u64::from(i)).unwrap();
            }
            fs.fail_call(fs.calls(), io::ErrorKind::Other);
            assert!(f.sync_data().is_err());
            assert_eq!(f.len().unwrap(), 6, "reads still see everything");
            f.sync_data().unwrap();
            drop(f);
            fs.crash(CrashMode::KeepAll);
            let after = fs.read(&dir().join("a")).unwrap();
            lost_seen |= after != [1, 2, 3, 4, 5, 6];
        }
        assert!(lost_seen, "a failed fsync never lost anything");
    }
}

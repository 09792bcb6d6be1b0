//! Retention holds ([`Log::set_hold`], [`Log::release_hold`]): they pin segments against the
//! checkpoint's reclamation, survive reopens, fail safe on a damaged file and are replaced
//! atomically (checked at every crash point on the simulated filesystem).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::sim::{CrashMode, SimFs};
use crate::*;

/// One record per segment, so every seq has its own segment file.
fn one_per_segment() -> LogConfig {
    LogConfig {
        segment_bytes: 1,
        ..LogConfig::default()
    }
}

fn payload(i: u64) -> Bytes {
    Bytes::from(format!("held-{i:04}"))
}

async fn append_each(log: &Log, from: u64, to: u64) {
    for i in from..to {
        let r = log.append(vec![payload(i)], i as i64).await.unwrap();
        assert_eq!(r, i..i + 1);
    }
}

/// Reads from `from` to the durable end, checking every record is there, in order.
fn assert_reads(log: &Log, from: u64, to: u64) {
    let mut reader = log.reader(from).unwrap();
    let mut seqs = Vec::new();
    while let Some(rec) = reader.next().unwrap() {
        assert_eq!(rec.data, payload(rec.seq), "data of seq {}", rec.seq);
        seqs.push(rec.seq);
    }
    assert_eq!(seqs, (from..to).collect::<Vec<_>>());
}

fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(segment_file_name(base))
}

fn holds_of(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|&(n, s)| (n.to_string(), s)).collect()
}

#[tokio::test]
async fn hold_below_the_checkpoint_keeps_what_its_reader_needs() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), one_per_segment()).unwrap();
    append_each(&log, 0, 20).await;
    assert!(log.holds().is_empty());

    log.set_hold("sql:q1", 5).unwrap();
    // A hold above the checkpoint does not stop it.
    log.set_hold("ahead", 18).unwrap();
    log.checkpoint(15, b"").unwrap();
    assert_eq!(log.holds(), holds_of(&[("ahead", 18), ("sql:q1", 5)]));
    assert_eq!(log.oldest_retained_seq(), 5);
    assert!(!segment_path(dir.path(), 4).exists());
    assert!(segment_path(dir.path(), 5).exists());
    assert_reads(&log, 5, 20);

    // Moving the hold forward reclaims what it no longer pins.
    log.set_hold("sql:q1", 9).unwrap();
    assert_eq!(log.oldest_retained_seq(), 9);
    assert!(!segment_path(dir.path(), 8).exists());
    assert_reads(&log, 9, 20);

    // Moving it back is allowed; it protects only what is still there.
    log.set_hold("sql:q1", 2).unwrap();
    assert_eq!(log.holds()["sql:q1"], 2);
    assert_eq!(log.oldest_retained_seq(), 9);
    log.checkpoint(16, b"").unwrap();
    assert_eq!(log.oldest_retained_seq(), 9);

    // Releasing reclaims what the checkpoint (and the other hold) allows.
    log.release_hold("sql:q1").unwrap();
    assert_eq!(log.holds(), holds_of(&[("ahead", 18)]));
    assert_eq!(log.oldest_retained_seq(), 16);
    assert!(!segment_path(dir.path(), 9).exists());
    assert_reads(&log, 16, 20);
    // Releasing an absent hold is a no-op.
    log.release_hold("sql:q1").unwrap();
    log.release_hold("never-set").unwrap();
    log.release_hold("ahead").unwrap();
    assert!(log.holds().is_empty());
    assert_eq!(log.poisoned(), None);
}

#[tokio::test]
async fn holds_survive_reopen_and_limit_reclaim_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), one_per_segment()).unwrap();
    append_each(&log, 0, 20).await;
    let saved: Vec<(PathBuf, Vec<u8>)> = (0..5)
        .map(|b| segment_path(dir.path(), b))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    log.set_hold("sql:q1", 5).unwrap();
    log.checkpoint(15, b"").unwrap();
    log.close();
    drop(log);
    // A leftover tmp file from a crash mid-write is ignored.
    std::fs::write(dir.path().join(HOLDS_TMP_FILE), b"half").unwrap();
    // Segments whose removal a crash undid come back.
    for (p, bytes) in &saved {
        std::fs::write(p, bytes).unwrap();
    }

    let (log, rec) = Log::open(dir.path(), one_per_segment()).unwrap();
    assert_eq!((rec.holds, rec.holds_damaged), (1, false));
    assert_eq!(rec.reclaimed_segments, 5, "0..5 are below the hold");
    assert_eq!(log.holds(), holds_of(&[("sql:q1", 5)]));
    assert_eq!(log.oldest_retained_seq(), 5);
    assert!(segment_path(dir.path(), 5).exists());
    assert_reads(&log, 5, 20);
    log.close();
    drop(log);

    // A hold further on (as if its move was persisted but not the removals) limits the
    // reclaim at open the same way.
    let moved = holds_of(&[("sql:q1", 10)]);
    std::fs::write(dir.path().join(HOLDS_FILE), crate::holds::encode(&moved)).unwrap();
    let (log, rec) = Log::open(dir.path(), one_per_segment()).unwrap();
    assert_eq!(rec.reclaimed_segments, 5, "5..10 are below the moved hold");
    assert_eq!(log.holds(), moved);
    assert_eq!(log.oldest_retained_seq(), 10);
    assert_reads(&log, 10, 20);

    // A released hold stays released.
    log.release_hold("sql:q1").unwrap();
    assert_eq!(log.oldest_retained_seq(), 15);
    log.close();
    drop(log);
    let (log, rec) = Log::open(dir.path(), one_per_segment()).unwrap();
    assert_eq!(rec.holds, 0);
    assert!(log.holds().is_empty());
    assert_eq!(log.oldest_retained_seq(), 15);
}

#[tokio::test]
async fn damaged_holds_file_opens_without_reclaiming() {
    for damage in ["flip", "truncate", "empty"] {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = Log::open(dir.path(), one_per_segment()).unwrap();
        append_each(&log, 0, 20).await;
        let saved: Vec<(PathBuf, Vec<u8>)> = (0..2)
            .map(|b| segment_path(dir.path(), b))
            .map(|p| {
                let bytes = std::fs::read(&p).unwrap();
                (p, bytes)
            })
            .collect();
        log.set_hold("sql:q1", 2).unwrap();
        log.checkpoint(15, b"").unwrap();
        log.close();
        drop(log);
        for (p, bytes) in &saved {
            std::fs::write(p, bytes).unwrap();
        }
        let holds_path = dir.path().join(HOLDS_FILE);
        let mut bytes = std::fs::read(&holds_path).unwrap();
        match damage {
            "flip" => bytes[14] ^= 0x20,
            "truncate" => bytes.truncate(bytes.len() - 1),
            _ => bytes.clear(),
        }
        std::fs::write(&holds_path, &bytes).unwrap();

        let (log, rec) = Log::open(dir.path(), one_per_segment()).unwrap();
        assert!(rec.holds_damaged, "{damage}");
        assert_eq!((rec.holds, rec.reclaimed_segments), (0, 0), "{damage}");
        assert!(log.holds().is_empty());
        assert_eq!(
            log.oldest_retained_seq(),
            0,
            "{damage}: nothing was reclaimed"
        );
        assert_reads(&log, 0, 20);
        // Checkpoints reclaim nothing either while the holds are unknown.
        log.checkpoint(16, b"").unwrap();
        assert_eq!(log.oldest_retained_seq(), 0, "{damage}");
        // The first hold operation rewrites the file, and reclamation resumes.
        if damage == "flip" {
            log.set_hold("sql:q1", 3).unwrap();
            assert_eq!(log.oldest_retained_seq(), 3);
        } else {
            log.release_hold("sql:q1").unwrap();
            assert_eq!(log.oldest_retained_seq(), 16);
        }
        let expected = log.holds();
        log.close();
        drop(log);
        let (log, rec) = Log::open(dir.path(), one_per_segment()).unwrap();
        assert!(!rec.holds_damaged, "{damage}");
        assert_eq!(log.holds(), expected);
    }
}

#[tokio::test]
async fn invalid_holds_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), one_per_segment()).unwrap();
    append_each(&log, 0, 3).await;
    let long = "x".repeat(MAX_HOLD_NAME_LEN + 1);
    for name in ["", "has space", "a/b", "tab\t", "é", "nul\0", long.as_str()] {
        let err = log.set_hold(name, 1).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidHold { name: n, .. } if n == name),
            "{name:?}: {err}"
        );
        let err = log.release_hold(name).unwrap_err();
        assert!(matches!(err, Error::InvalidHold { .. }), "{name:?}: {err}");
    }
    let err = log.set_hold("ok", 4).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidHold { reason, .. } if reason.contains("durable end")),
        "{err}"
    );
    assert!(log.holds().is_empty());
    assert!(!dir.path().join(HOLDS_FILE).exists(), "nothing was written");

    let longest = "A-z_0.9:".repeat(MAX_HOLD_NAME_LEN / 8);
    log.set_hold(&longest, 3).unwrap();
    assert_eq!(log.holds(), holds_of(&[(&longest, 3)]));

    log.close();
    assert!(matches!(log.set_hold("ok", 0), Err(Error::Closed)));
    assert!(matches!(log.release_hold(&longest), Err(Error::Closed)));
}

const SIM_DIR: &str = "/sim/log";

fn sim_open(fs: &SimFs) -> (Log, Recovery) {
    Log::open_with_fs(Path::new(SIM_DIR), one_per_segment(), Arc::new(fs.clone())).unwrap()
}

/// 0..12 appended, hold `q` at 2, checkpoint 10: segments 2.. retained.
async fn sim_setup(fs: &SimFs) -> Log {
    let (log, _) = sim_open(fs);
    append_each(&log, 0, 12).await;
    log.set_hold("q", 2).unwrap();
    log.checkpoint(10, b"").unwrap();
    assert_eq!(log.oldest_retained_seq(), 2);
    log
}

#[tokio::test]
async fn crash_during_set_hold_leaves_the_old_or_the_new_holds() {
    let old = holds_of(&[("q", 2)]);
    let new = holds_of(&[("q", 6)]);

    // Count the I/O calls of the step: write the holds, then reclaim 2..6.
    let fs = SimFs::new();
    let log = sim_setup(&fs).await;
    let start = fs.calls();
    log.set_hold("q", 6).unwrap();
    let end = fs.calls();
    let ops: Vec<_> = fs.trace()[start as usize..].iter().map(|c| c.op).collect();
    use crate::sim::Op;
    assert_eq!(
        ops[..5],
        [Op::Create, Op::Write, Op::SyncData, Op::Rename, Op::SyncDir],
        "the holds file is replaced like the checkpoint"
    );
    assert_eq!(ops[5..], [Op::Remove; 4], "then 2..6 are reclaimed");
    drop(log);

    let modes = [
        CrashMode::DropAll,
        CrashMode::KeepAll,
        CrashMode::Random(1),
        CrashMode::Random(2),
        CrashMode::Random(3),
        CrashMode::Random(4),
    ];
    let (mut saw_old, mut saw_new) = (false, false);
    for at in start..end {
        for mode in modes {
            let fs = SimFs::new();
            let log = sim_setup(&fs).await;
            fs.crash_at_call(at);
            let result = log.set_hold("q", 6);
            assert!(result.is_err(), "crash at call {at}: set_hold succeeded");
            drop(log);
            fs.crash(mode);

            let (log, rec) = sim_open(&fs);
            let ctx = format!(
                "crash at call {at} ({:?}), {mode:?}",
                ops[(at - start) as usize]
            );
            assert!(!rec.holds_damaged, "{ctx}: holds damaged");
            let holds = log.holds();
            assert!(holds == old || holds == new, "{ctx}: holds {holds:?}");
            saw_old |= holds == old;
            saw_new |= holds == new;
            if at >= start + 5 {
                // Past the directory fsync the new holds are durable.
                assert_eq!(holds, new, "{ctx}");
            }
            // The reader at the recovered hold finds every record from there on.
            let hold = holds["q"];
            assert!(log.oldest_retained_seq() <= hold, "{ctx}");
            assert_reads(&log, hold, 12);
            // And the log goes on: the next hold write succeeds and is durable.
            log.set_hold("q", 7).unwrap();
            drop(log);
            fs.crash(CrashMode::DropAll);
            let (log, _) = sim_open(&fs);
            assert_eq!(log.holds(), holds_of(&[("q", 7)]), "{ctx}");
            assert_reads(&log, 7, 12);
        }
    }
    assert!(saw_old && saw_new, "both outcomes occur");
}

#[tokio::test]
async fn failed_holds_write_keeps_the_old_holds_without_poisoning() {
    use crate::sim::Op;
    for failing in [Op::Write, Op::SyncData, Op::Rename, Op::SyncDir] {
        let fs = SimFs::with_seed(7);
        let log = sim_setup(&fs).await;
        let start = fs.calls();
        let index = match failing {
            Op::Write => start + 1,
            Op::SyncData => start + 2,
            Op::Rename => start + 3,
            _ => start + 4,
        };
        fs.fail_call(index, io::ErrorKind::Other);
        let err = log.set_hold("q", 6).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{failing:?}: {err}");
        assert_eq!(log.poisoned(), None, "{failing:?}");
        assert_eq!(log.holds(), holds_of(&[("q", 2)]), "{failing:?}");
        assert_eq!(
            log.oldest_retained_seq(),
            2,
            "{failing:?}: the old hold is in effect"
        );
        // Appends and checkpoints go on; the next hold write succeeds.
        append_each(&log, 12, 13).await;
        log.checkpoint(11, b"").unwrap();
        assert_eq!(log.oldest_retained_seq(), 2, "{failing:?}");
        log.set_hold("q", 6).unwrap();
        assert_eq!(log.oldest_retained_seq(), 6, "{failing:?}");
        drop(log);
        fs.crash(CrashMode::DropAll);
        let (log, _) = sim_open(&fs);
        assert_eq!(log.holds(), holds_of(&[("q", 6)]), "{failing:?}");
        assert_reads(&log, 6, 13);
    }
}

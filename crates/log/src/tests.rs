//! Behaviour tests of the log through its public API, with on-disk damage applied by hand.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand::{Rng, SeedableRng};

use crate::testing::FaultFs;
use crate::*;

fn config() -> LogConfig {
    LogConfig::default()
}

/// For loops that open a log hundreds of times: no fsync.
fn no_fsync() -> LogConfig {
    LogConfig {
        fsync: false,
        ..LogConfig::default()
    }
}

fn payload(i: u64) -> Bytes {
    Bytes::from(format!("record-{i:04}-{}", "x".repeat((i % 7) as usize)))
}

/// Appends records `from..to` one per call (one group each), returning their seqs.
async fn append_each(log: &Log, from: u64, to: u64) -> Vec<u64> {
    let mut seqs = Vec::new();
    for i in from..to {
        let r = log
            .append(vec![payload(i)], 1_000 + i as i64)
            .await
            .unwrap();
        assert_eq!(r.end - r.start, 1);
        seqs.push(r.start);
    }
    seqs
}

fn read_from(log: &Log, from: u64) -> Vec<LogRecord> {
    let mut reader = log.reader(from).unwrap();
    let mut out = Vec::new();
    while let Some(rec) = reader.next().unwrap() {
        out.push(rec);
    }
    out
}

fn read_all(log: &Log) -> Vec<LogRecord> {
    read_from(log, log.oldest_retained_seq())
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

/// Offset of record `k` in a segment holding `payload(base)..` written by `append_each`.
fn record_offset(base: u64, k: u64) -> u64 {
    SEGMENT_HEADER_LEN
        + (base..base + k)
            .map(|i| (RECORD_HEADER_LEN + payload(i).len()) as u64)
            .sum::<u64>()
}

fn assert_records(records: &[LogRecord], seqs: impl IntoIterator<Item = u64>) {
    let seqs: Vec<u64> = seqs.into_iter().collect();
    assert_eq!(
        records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        seqs,
        "returned seqs"
    );
    for r in records {
        assert_eq!(r.data, payload(r.seq), "data of seq {}", r.seq);
        assert_eq!(
            r.arrival_ms,
            1_000 + r.seq as i64,
            "arrival of seq {}",
            r.seq
        );
    }
}

fn files_bytes(dir: &Path) -> u64 {
    segment_files(dir)
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum()
}

fn flip_bit(path: &Path, offset: u64, mask: u8) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= mask;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn handles_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Log>();
    assert_send_sync::<LogReader>();
    assert_send_sync::<Error>();
    assert_send_sync::<FaultFs>();
}

#[tokio::test]
async fn append_reopen_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (log, rec) = Log::open(dir.path(), config()).unwrap();
    assert_eq!(rec.next_seq, 0);
    assert_eq!(append_each(&log, 0, 5).await, vec![0, 1, 2, 3, 4]);
    let batch: Vec<Bytes> = (5..10).map(payload).collect();
    // A batch shares one arrival time; use one that matches the helper's convention for seq 5.
    let r = log.append(batch, 1_005).await.unwrap();
    assert_eq!(r, 5..10);
    assert_eq!(log.durable().borrow().next_seq, 10);
    log.close();
    drop(log);

    let (log, rec) = Log::open(dir.path(), config()).unwrap();
    assert_eq!(
        (
            rec.segments,
            rec.records,
            rec.next_seq,
            rec.torn_tail_bytes,
            rec.corrupt_records
        ),
        (1, 10, 10, 0, 0)
    );
    assert_eq!(
        rec.bytes,
        (0..10).map(|i| payload(i).len() as u64).sum::<u64>()
    );
    let records = read_all(&log);
    assert_records(&records[..5], 0..5);
    for r in &records[5..] {
        assert_eq!((r.data.clone(), r.arrival_ms), (payload(r.seq), 1_005));
    }
    assert_eq!(log.append(vec![payload(10)], 0).await.unwrap(), 10..11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultFs::default();
    // Like a real disk: while one fsync runs, the next group forms.
    fs.set_sync_delay(Duration::from_millis(5));
    let (log, _) = Log::open_with_fs(dir.path(), config(), Arc::new(fs.clone())).unwrap();
    let syncs_before = fs.sync_data_calls();

    const TASKS: u64 = 400;
    let mut handles = Vec::new();
    for i in 0..TASKS {
        let log = log.clone();
        handles.push(tokio::spawn(async move {
            let r = log.append(vec![payload(i), payload(i)], 7).await.unwrap();
            (i, r)
        }));
    }
    let mut ranges = Vec::new();
    for h in handles {
        ranges.push(h.await.unwrap());
    }
    let syncs = fs.sync_data_calls() - syncs_before;
    assert!(
        syncs * 4 < TASKS,
        "{syncs} fsyncs for {TASKS} appends: group commit is not grouping"
    );

    // Every append got its own contiguous pair of seqs; together they tile 0..2*TASKS.
    let mut seqs: Vec<u64> = ranges.iter().flat_map(|(_, r)| r.clone()).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..2 * TASKS).collect::<Vec<_>>());
    let records = read_all(&log);
    for (i, r) in &ranges {
        assert_eq!(r.end - r.start, 2);
        for seq in r.clone() {
            assert_eq!(records[seq as usize].data, payload(*i));
        }
    }
}

#[tokio::test]
async fn torn_tail_mid_record_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), config()).unwrap();
    append_each(&log, 0, 5).await;
    drop(log);

    let seg = &segment_files(dir.path())[0];
    let full = std::fs::metadata(seg).unwrap().len();
    let cut = record_offset(0, 4) + 10; // inside the header of the last record
    std::fs::OpenOptions::new()
        .write(true)
        .open(seg)
        .unwrap()
        .set_len(cut)
        .unwrap();

    let (log, rec) = Log::open(dir.path(), config()).unwrap();
    assert_eq!(rec.torn_tail_bytes, 10);
    assert_eq!(rec.corrupt_records, 0);
    assert_eq!((rec.records, rec.next_seq), (4, 4));
    assert_eq!(std::fs::metadata(seg).unwrap().len(), record_offset(0, 4));
    assert!(record_offset(0, 4) < full);
    assert_records(&read_all(&log), 0..4);
    assert_eq!(append_each(&log, 4, 6).await, vec![4, 5]);
    drop(log);

    let (log, rec) = Log::open(dir.path(), config()).unwrap();
    assert_eq!(
        (rec.torn_tail_bytes, rec.corrupt_records, rec.next_seq),
        (0, 0, 6)
    );
    assert_records(&read_all(&log), 0..6);
}

#[tokio::test]
async fn torn_tail_of_garbage_or_zeros_is_truncated() {
    for (name, tail) in [
        ("zeros", vec![0u8; 4096]),
        (
            "garbage",
            (0..1000u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ),
        ("partial header", vec![0xAB; 7]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = Log::open(dir.path(), config()).unwrap();
        append_each(&log, 0, 3).await;
        drop(log);
        let seg = &segment_files(dir.path())[0];
        let mut bytes = std::fs::read(seg).unwrap();
        bytes.extend_from_slice(&tail);
        std::fs::write(seg, bytes).unwrap();

        let (log, rec) = Log::open(dir.path(), config()).unwrap();
        assert_eq!(rec.torn_tail_bytes, tail.len() as u64, "{name}");
        assert_eq!(rec.corrupt_records, 0, "{name}");
        assert_records(&read_all(&log), 0..3);
        assert_eq!(append_each(&log, 3, 4).await, vec![3], "{name}");
        drop(log);
        let (log, rec) = Log::open(dir.path(), config()).unwrap();
        assert_eq!(rec.torn_tail_bytes, 0, "{name}");
        assert_records(&read_all(&log), 0..4);
    }
}

#[tokio::test]
async fn flipped_bit_in_middle_record_is_counted_and_skipped() {
    // (what is damaged, offset within record 2)
    for (what, within) in [
        ("data", RECORD_HEADER_LEN as u64 + 3),
        ("crc", 1),
        ("seq", 9),
        ("len, implausible", 7),
        ("len, plausible", 4),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = Log::open(dir.path(), config()).unwrap();
        append_each(&log, 0, 6).await;
        drop(log);
        let seg = &segment_files(dir.path())[0];
        flip_bit(seg, record_offset(0, 2) + within, 0x80);

        let (log, rec) = Log::open(dir.path(), config()).unwrap();
        assert_eq!(rec.corrupt_records, 1, "{what}");
        assert_eq!(rec.torn_tail_bytes, 0, "{what}");
        assert_eq!((rec.records, rec.next_seq), (5, 6), "{what}");
        assert_records(&read_all(&log), [0, 1, 3, 4, 5]);

        // The damaged record is still on disk: a reader positioned at it skips it too.
        let mut reader = log.reader(2).unwrap();
        assert_eq!(reader.next().unwrap().map(|r| r.seq), Some(3), "{what}");
        assert_eq!(reader.corrupt_records(), 1, "{what}");
        assert_eq!(append_each(&log, 6, 7).await, vec![6]);
    }
}

#[tokio::test]
async fn reader_detects_corruption_after_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), config()).unwrap();
    append_each(&log, 0, 6).await;
    // Bit rot while the log is open.
    let seg = &segment_files(dir.path())[0];
    let file = std::fs::OpenOptions::new().write(true).open(seg).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, b"\xff", record_offset(0, 3) + 30).unwrap();
    let mut reader = log.reader(0).unwrap();
    let mut seqs = Vec::new();
    while let Some(r) = reader.next().unwrap() {
        assert_eq!(r.data, payload(r.seq));
        seqs.push(r.seq);
    }
    assert_eq!(seqs, vec![0, 1, 2, 4, 5]);
    assert_eq!(reader.corrupt_records(), 1);
}

#[tokio::test]
async fn zero_length_records_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), config()).unwrap();
    let r = log
        .append(
            vec![Bytes::new(), Bytes::from_static(b"x"), Bytes::new()],
            5,
        )
        .await
        .unwrap();
    assert_eq!(r, 0..3);
    assert_eq!(log.append(vec![Bytes::new()], 6).await.unwrap(), 3..4);
    assert_eq!(
        log.append(vec![], 6).await.unwrap(),
        4..4,
        "no records, no seqs"
    );
    drop(log);

    let (log, rec) = Log::open(dir.path(), config()).unwrap();
    assert_eq!((rec.records, rec.bytes, rec.next_seq), (4, 1, 4));
    let records = read_all(&log);
    let got: Vec<(u64, i64, &[u8])> = records
        .iter()
        .map(|r| (r.seq, r.arrival_ms, &r.data[..]))
        .collect();
    assert_eq!(
        got,
        vec![(0, 5, &b""[..]), (1, 5, b"x"), (2, 5, b""), (3, 6, b"")]
    );
}

#[tokio::test]
async fn truncated_header_of_last_segment_is_torn() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), config()).unwrap();
    append_each(&log, 0, 3).await;
    drop(log);
    // A crash while rolling: the next segment exists with a partial header.
    let next = dir.path().join(segment_file_name(3));
    std::fs::write(&next, &crate::format::encode_segment_header(3)[..10]).unwrap();

    let (log, rec) = Log::open(dir.path(), config()).unwrap();
    assert_eq!(rec.segments, 2);
    assert_eq!(
        (
            rec.torn_tail_bytes,
            rec.corrupt_records,
            rec.corrupt_segments
        ),
        (10, 0, 0)
    );
    assert_eq!(rec.next_seq, 3);
    assert_records(&read_all(&log), 0..3);
    assert_eq!(append_each(&log, 3, 5).await, vec![3, 4]);
    drop(log);

    let (log, rec) = Log::open(dir.path(), config()).unwrap();
    assert_eq!((rec.torn_tail_bytes, rec.next_seq), (0, 5));
    assert_records(&read_all(&log), 0..5);
}

#[tokio::test]
async fn damaged_header_of_earlier_segment_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let small = LogConfig {
        segment_bytes: 1,
        ..config()
    };
    let (log, _) = Log::open(dir.path(), small.clone()).unwrap();
    append_each(&log, 0, 4).await; // one record per segment
    drop(log);
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 5, "4 full segments + the empty active one");

    // Segment 1: CRC of the header broken, record intact -> its record is salvaged.
    flip_bit(&files[1], 20, 0x01);
    // Segment 2: header truncated away entirely -> nothing to salvage.
    std::fs::write(&files[2], b"LHW").unwrap();

    let (log, rec) = Log::open(dir.path(), small).unwrap();
    assert_eq!(rec.corrupt_segments, 2);
    assert_eq!(rec.corrupt_records, 1, "seq 2 is lost");
    assert_eq!(rec.torn_tail_bytes, 0);
    assert_eq!(rec.next_seq, 4);
    assert_records(&read_all(&log), [0, 1, 3]);
    assert_eq!(append_each(&log, 4, 5).await, vec![4]);
}

#[tokio::test]
async fn unknown_format_version_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), config()).unwrap();
    append_each(&log, 0, 1).await;
    drop(log);
    let seg = &segment_files(dir.path())[0];
    let mut bytes = std::fs::read(seg).unwrap();
    bytes[8..12].copy_from_slice(&9u32.to_le_bytes());
    let crc = crc32c::crc32c(&bytes[..24]);
    bytes[24..28].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(seg, &bytes).unwrap();
    let err = Log::open(dir.path(), config()).unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedVersion { version: 9, .. }),
        "{err}"
    );
    assert_eq!(std::fs::read(seg).unwrap(), bytes, "left untouched");
}

#[tokio::test]
async fn restart_with_empty_or_missing_dir() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("does/not/exist");
    let (log, rec) = Log::open(&dir, config()).unwrap();
    assert_eq!(rec, Recovery::default());
    assert_eq!(log.last_checkpoint(), Checkpoint::default());
    assert_eq!(log.reader(0).unwrap().next().unwrap(), None);
    drop(log);
    let (log, rec) = Log::open(&dir, config()).unwrap();
    assert_eq!((rec.segments, rec.records, rec.next_seq), (1, 0, 0));
    assert_eq!(append_each(&log, 0, 1).await, vec![0]);

    let empty = tempfile::tempdir().unwrap();
    let (log, rec) = Log::open(empty.path(), config()).unwrap();
    assert_eq!((rec.segments, rec.next_seq), (0, 0));
    assert_eq!(append_each(&log, 0, 1).await, vec![0]);
}

#[tokio::test]
async fn seqs_stay_monotonic_after_all_segments_are_reclaimed() {
    let dir = tempfile::tempdir().unwrap();
    let small = LogConfig {
        segment_bytes: 1,
        ..config()
    };
    let (log, _) = Log::open(dir.path(), small.clone()).unwrap();
    append_each(&log, 0, 5).await;
    log.checkpoint(5, b"").unwrap();
    assert_eq!(
        segment_files(dir.path()).len(),
        1,
        "only the empty active segment"
    );
    drop(log);

    let (log, rec) = Log::open(dir.path(), small.clone()).unwrap();
    assert_eq!((rec.records, rec.next_seq, rec.committed), (0, 5, 5));
    assert_eq!(append_each(&log, 5, 6).await, vec![5]);
    log.checkpoint(6, b"").unwrap();
    drop(log);

    // Even with no segment file at all (say, removed by an operator), the checkpoint keeps
    // seqs from going backwards.
    for f in segment_files(dir.path()) {
        std::fs::remove_file(f).unwrap();
    }
    let (log, rec) = Log::open(dir.path(), small).unwrap();
    assert_eq!((rec.segments, rec.next_seq), (0, 6));
    assert_eq!(log.oldest_retained_seq(), 6);
    assert_eq!(append_each(&log, 6, 7).await, vec![6]);
    assert_records(&read_from(&log, 6), [6]);
}

#[tokio::test]
async fn checkpoint_reclaims_segments_and_keeps_pending() {
    let dir = tempfile::tempdir().unwrap();
    let small = LogConfig {
        segment_bytes: 200,
        ..config()
    };
    let (log, _) = Log::open(dir.path(), small.clone()).unwrap();
    append_each(&log, 0, 40).await;
    assert_eq!(log.disk_bytes(), files_bytes(dir.path()));
    let files_before = segment_files(dir.path()).len();
    assert_eq!(log.segment_count(), files_before);
    let disk_before = log.disk_bytes();
    assert!(files_before > 5, "{files_before} segments");

    log.checkpoint(25, b"plan-A").unwrap();
    let files_after = segment_files(dir.path()).len();
    assert!(files_after < files_before);
    assert!(log.disk_bytes() < disk_before);
    assert_eq!(log.disk_bytes(), files_bytes(dir.path()));
    let oldest = log.oldest_retained_seq();
    assert!(oldest <= 25 && oldest > 0, "oldest retained {oldest}");
    assert_records(&read_from(&log, 25), 25..40);
    assert!(matches!(
        log.reader(oldest - 1),
        Err(Error::NotRetained { .. })
    ));
    assert_eq!(
        log.last_checkpoint(),
        Checkpoint {
            committed: 25,
            pending: b"plan-A".to_vec()
        }
    );

    // Invalid checkpoints are refused and change nothing.
    assert!(matches!(
        log.checkpoint(24, b""),
        Err(Error::InvalidCheckpoint { committed: 24, .. })
    ));
    assert!(matches!(
        log.checkpoint(41, b""),
        Err(Error::InvalidCheckpoint { committed: 41, .. })
    ));
    assert_eq!(log.last_checkpoint().committed, 25);
    assert_eq!(log.poisoned(), None);
    drop(log);

    // A leftover tmp file from a crash mid-checkpoint is ignored.
    std::fs::write(dir.path().join(CHECKPOINT_TMP_FILE), b"half").unwrap();
    let (log, rec) = Log::open(dir.path(), small).unwrap();
    assert_eq!((rec.committed, rec.next_seq), (25, 40));
    assert_eq!(log.last_checkpoint().pending, b"plan-A".to_vec());
    assert_eq!(log.oldest_retained_seq(), oldest);
    assert_records(&read_from(&log, 25), 25..40);
    log.checkpoint(40, b"").unwrap();
    assert_eq!(segment_files(dir.path()).len(), 1);
    assert!(log.oldest_retained_seq() <= 40);
}

#[tokio::test]
async fn resurrected_reclaimed_segments_are_reclaimed_again() {
    // A crash can undo removals that were not yet durable in the directory.
    let dir = tempfile::tempdir().unwrap();
    let small = LogConfig {
        segment_bytes: 1,
        ..config()
    };
    let (log, _) = Log::open(dir.path(), small.clone()).unwrap();
    append_each(&log, 0, 6).await; // one record per segment
    let files = segment_files(dir.path());
    let saved: Vec<(PathBuf, Vec<u8>)> = [&files[0], &files[2]]
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(p).unwrap()))
        .collect();
    log.checkpoint(4, b"").unwrap();
    assert_eq!(log.oldest_retained_seq(), 4);
    drop(log);
    for (p, bytes) in &saved {
        std::fs::write(p, bytes).unwrap();
    }

    let (log, rec) = Log::open(dir.path(), small).unwrap();
    assert_eq!(rec.reclaimed_segments, 2);
    assert_eq!(
        rec.corrupt_records, 0,
        "gaps below the checkpoint are not corruption"
    );
    assert_eq!((rec.next_seq, log.oldest_retained_seq()), (6, 4));
    assert!(saved.iter().all(|(p, _)| !p.exists()));
    assert_records(&read_from(&log, 4), [4, 5]);
}

#[tokio::test]
async fn corrupt_checkpoint_fails_open() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), config()).unwrap();
    append_each(&log, 0, 3).await;
    log.checkpoint(2, b"pending").unwrap();
    drop(log);
    let cp = dir.path().join(CHECKPOINT_FILE);
    flip_bit(&cp, 9, 0x01);
    let err = Log::open(dir.path(), config()).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");

    std::fs::write(&cp, b"").unwrap();
    let err = Log::open(dir.path(), config()).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
}

#[tokio::test]
async fn fsync_eio_poisons_the_log_and_acked_records_survive() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultFs::default();
    let (log, _) = Log::open_with_fs(dir.path(), config(), Arc::new(fs.clone())).unwrap();
    append_each(&log, 0, 5).await;

    fs.fail_sync_data(Some(io::ErrorKind::Other));
    let err = log.append(vec![payload(5)], 0).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Io {
                op: "fdatasync",
                ..
            }
        ),
        "{err}"
    );
    let reason = log.poisoned().expect("poisoned");
    assert!(reason.contains("fdatasync"), "{reason}");

    // The fault is gone, but the log stays poisoned and never fsyncs again.
    fs.fail_sync_data(None);
    let syncs = fs.sync_data_calls();
    let writes = fs.write_calls();
    for _ in 0..3 {
        let err = log.append(vec![payload(6)], 0).await.unwrap_err();
        assert!(matches!(&err, Error::Poisoned(r) if *r == reason), "{err}");
    }
    let err = log.checkpoint(5, b"").unwrap_err();
    assert!(matches!(err, Error::Poisoned(_)), "{err}");
    assert_eq!(fs.sync_data_calls(), syncs, "no fsync retry");
    assert_eq!(fs.write_calls(), writes, "no write after poisoning");
    // Durable records stay readable.
    assert_records(&read_all(&log), 0..5);
    assert_eq!(log.durable().borrow().next_seq, 5);
    drop(log);

    let (log, rec) = Log::open(dir.path(), config()).unwrap();
    assert!(rec.next_seq >= 5);
    let records = read_all(&log);
    assert_records(&records[..5], 0..5);
    assert!(
        records.len() <= 6,
        "at most the unacknowledged record in addition"
    );
}

#[tokio::test]
async fn torn_write_eio_poisons_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultFs::default();
    let (log, _) = Log::open_with_fs(dir.path(), config(), Arc::new(fs.clone())).unwrap();
    append_each(&log, 0, 3).await;
    fs.fail_writes(Some((io::ErrorKind::StorageFull, 10)));
    let err = log.append(vec![payload(3)], 0).await.unwrap_err();
    assert!(matches!(err, Error::Io { op: "write", .. }), "{err}");
    fs.fail_writes(None);
    assert!(matches!(
        log.append(vec![payload(3)], 0).await,
        Err(Error::Poisoned(_))
    ));
    drop(log);

    let (log, rec) = Log::open(dir.path(), config()).unwrap();
    assert_eq!((rec.torn_tail_bytes, rec.next_seq), (10, 3));
    assert_records(&read_all(&log), 0..3);
}

#[tokio::test]
async fn failed_segment_roll_poisons_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultFs::default();
    let small = LogConfig {
        segment_bytes: 1,
        ..config()
    };
    let (log, _) = Log::open_with_fs(dir.path(), small.clone(), Arc::new(fs.clone())).unwrap();
    fs.fail_sync_dir(Some(io::ErrorKind::Other));
    // The record itself is durable and acknowledged; the roll after it fails.
    assert_eq!(log.append(vec![payload(0)], 1_000).await.unwrap(), 0..1);
    assert!(log.poisoned().is_some());
    assert!(matches!(
        log.append(vec![payload(1)], 0).await,
        Err(Error::Poisoned(_))
    ));
    drop(log);
    let (log, rec) = Log::open(dir.path(), small).unwrap();
    assert_eq!(rec.next_seq, 1);
    assert_records(&read_all(&log), [0]);
}

#[tokio::test]
async fn reader_tails_across_segment_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let small = LogConfig {
        segment_bytes: 150,
        ..config()
    };
    let (log, _) = Log::open(dir.path(), small).unwrap();
    let mut durable = log.durable();
    let mut reader = log.reader(0).unwrap();
    assert_eq!(reader.next().unwrap(), None);
    assert_eq!(reader.position(), 0);

    let mut expected = 0;
    for round in 0..6u64 {
        let (from, to) = (round * 5, round * 5 + 5);
        let writer = log.clone();
        let task = tokio::spawn(async move { append_each(&writer, from, to).await });
        // Follow the durable watch like the delivery loop does.
        while expected < to {
            durable.changed().await.unwrap();
            while let Some(r) = reader.next().unwrap() {
                assert_eq!(r.seq, expected);
                assert_eq!(r.data, payload(r.seq));
                expected += 1;
            }
            assert_eq!(reader.position(), expected);
            assert_eq!(reader.next().unwrap(), None, "at the durable end");
        }
        task.await.unwrap();
    }
    assert!(segment_files(dir.path()).len() > 5);
    assert_eq!(reader.corrupt_records(), 0);
}

#[tokio::test]
async fn reader_positions_within_large_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), no_fsync()).unwrap();
    // ~6 MiB in one segment, so the sparse index has entries.
    let big = |i: u64| Bytes::from(vec![(i % 251) as u8; 60_000 + i as usize]);
    for chunk in 0..10u64 {
        let batch: Vec<Bytes> = (chunk * 10..chunk * 10 + 10).map(big).collect();
        log.append(batch, 1).await.unwrap();
    }
    assert_eq!(segment_files(dir.path()).len(), 1);
    for from in [0, 1, 17, 50, 99, 100] {
        let mut reader = log.reader(from).unwrap();
        let first = reader.next().unwrap();
        assert_eq!(first.as_ref().map(|r| r.seq), (from < 100).then_some(from));
        if let Some(r) = first {
            assert_eq!(r.data, big(from));
        }
    }
    assert!(matches!(log.reader(101), Err(Error::BeyondEnd { .. })));
    drop(log);
    let (log, _) = Log::open(dir.path(), no_fsync()).unwrap();
    let mut reader = log.reader(77).unwrap();
    assert_eq!(reader.next().unwrap().unwrap().data, big(77));
}

#[tokio::test]
async fn close_finishes_submitted_appends_then_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), config()).unwrap();
    let pending: Vec<_> = (0..20)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move { log.append(vec![payload(i)], 0).await })
        })
        .collect();
    tokio::task::yield_now().await;
    let closer = log.clone();
    tokio::task::spawn_blocking(move || closer.close())
        .await
        .unwrap();
    let mut ok = 0;
    for p in pending {
        match p.await.unwrap() {
            Ok(_) => ok += 1,
            Err(Error::Closed) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(matches!(
        log.append(vec![payload(0)], 0).await,
        Err(Error::Closed)
    ));
    drop(log);
    let (_, rec) = Log::open(dir.path(), config()).unwrap();
    assert!(
        rec.records >= ok,
        "{} durable, {ok} acknowledged",
        rec.records
    );
}

#[tokio::test]
async fn second_open_of_the_same_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), config()).unwrap();
    let err = Log::open(dir.path(), config()).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    drop(log);
    Log::open(dir.path(), config()).unwrap();
}

#[tokio::test]
async fn oversized_record_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), config()).unwrap();
    let huge = Bytes::from(vec![0u8; MAX_RECORD_BYTES + 1]);
    let err = log.append(vec![Bytes::new(), huge], 0).await.unwrap_err();
    assert!(matches!(err, Error::RecordTooLarge { .. }), "{err}");
    assert_eq!(log.append(vec![Bytes::new()], 0).await.unwrap(), 0..1);
}

/// Writes a small multi-segment log and returns its directory and file images.
async fn small_log_image(
    n: u64,
    segment_bytes: u64,
) -> (tempfile::TempDir, Vec<(PathBuf, Vec<u8>)>) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes,
        ..no_fsync()
    };
    let (log, _) = Log::open(dir.path(), cfg).unwrap();
    append_each(&log, 0, n).await;
    drop(log);
    let files = segment_files(dir.path())
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    (dir, files)
}

fn restore(files: &[(PathBuf, Vec<u8>)]) {
    let dir = files[0].0.parent().unwrap();
    for f in segment_files(dir) {
        std::fs::remove_file(f).unwrap();
    }
    for (p, bytes) in files {
        std::fs::write(p, bytes).unwrap();
    }
}

#[tokio::test]
async fn truncation_at_every_offset_recovers_a_prefix() {
    let (dir, files) = small_log_image(8, u64::MAX).await;
    let (seg, image) = &files[0];
    for cut in 0..image.len() as u64 {
        restore(&files);
        std::fs::OpenOptions::new()
            .write(true)
            .open(seg)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let (log, rec) = Log::open(dir.path(), no_fsync()).unwrap();
        // Records wholly before the cut survive, nothing else.
        let whole = (0..=8)
            .rev()
            .find(|&k| record_offset(0, k) <= cut)
            .unwrap_or(0);
        assert_eq!(
            (rec.records, rec.next_seq, rec.corrupt_records),
            (whole, whole, 0),
            "cut {cut}"
        );
        assert_records(&read_all(&log), 0..whole);
        assert_eq!(
            log.append(vec![payload(whole)], 1_000 + whole as i64)
                .await
                .unwrap(),
            whole..whole + 1,
            "cut {cut}"
        );
    }
}

#[tokio::test]
async fn bit_flip_anywhere_is_never_returned() {
    let (dir, files) = small_log_image(12, 250).await;
    assert!(files.len() >= 3);
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x1a4e);
    for (i, (seg, image)) in files.iter().enumerate() {
        for offset in 0..image.len() {
            restore(&files);
            let mask = 1u8 << rng.random_range(0..8);
            flip_bit(seg, offset as u64, mask);
            let (log, rec) = Log::open(dir.path(), no_fsync())
                .unwrap_or_else(|e| panic!("segment {i} offset {offset}: {e}"));
            let records = read_all(&log);
            // Whatever is returned is exactly what was written, in order, nothing twice.
            for r in &records {
                assert_eq!(r.data, payload(r.seq), "segment {i} offset {offset}");
                assert_eq!(r.arrival_ms, 1_000 + r.seq as i64);
            }
            assert!(records.windows(2).all(|w| w[0].seq < w[1].seq));
            // At most one record is lost, and the loss is reported.
            let lost = 12 - records.len() as u64;
            assert!(lost <= 1, "segment {i} offset {offset}: lost {lost}");
            if lost == 1 {
                assert!(
                    rec.corrupt_records + rec.corrupt_segments >= 1 || rec.torn_tail_bytes > 0,
                    "segment {i} offset {offset}: silent loss, {rec:?}"
                );
            }
            let r = log.append(vec![payload(99)], 0).await.unwrap();
            assert!(
                r.start >= 12 || lost == 1,
                "segment {i} offset {offset}: seq went back"
            );
        }
    }
}

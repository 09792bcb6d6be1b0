//! Encryption at rest of the log, through its public API, with on-disk inspection and damage
//! applied by hand: no plaintext in encrypted segments, mixed plaintext and encrypted segments,
//! switching on an open log, rotation, and failing closed on wrong or missing keys and on
//! tampering.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::format::{RECORD_HEADER_LEN, SEALED_CRC_SEED};
use crate::*;

const MARKER: &str = "MARKER-7f3a";

/// A keyring of `(id, fill byte)` keys: the same pair always gives the same key, another
/// byte under the same id a different one. The last key is active.
fn keyring(keys: &[(&str, u8)]) -> Arc<Keyring> {
    Arc::new(
        Keyring::new(
            keys.iter()
                .map(|(id, b)| (id.to_string(), [*b; 32]))
                .collect(),
            None,
        )
        .unwrap(),
    )
}

fn encrypted(keys: &[(&str, u8)], write: Option<&str>) -> LogConfig {
    LogConfig {
        encryption: Some(LogEncryption {
            keyring: keyring(keys),
            write_key: write.map(str::to_string),
            context: b"stream-a".to_vec(),
        }),
        ..LogConfig::default()
    }
}

fn marked(i: u64) -> Bytes {
    Bytes::from(format!("{{\"n\":{i},\"m\":\"{MARKER}-{i:03}\"}}"))
}

async fn append_marked(log: &Log, from: u64, to: u64) {
    for i in from..to {
        log.append(vec![marked(i)], 5_000 + i as i64).await.unwrap();
    }
}

fn read_all(log: &Log) -> Result<Vec<LogRecord>> {
    let mut reader = log.reader(log.oldest_retained_seq())?;
    let mut out = Vec::new();
    while let Some(r) = reader.next()? {
        out.push(r);
    }
    Ok(out)
}

fn assert_marked(records: &[LogRecord], from: u64, to: u64) {
    let got: Vec<(u64, Bytes)> = records.iter().map(|r| (r.seq, r.data.clone())).collect();
    let want: Vec<(u64, Bytes)> = (from..to).map(|i| (i, marked(i))).collect();
    assert_eq!(got, want);
    for r in records {
        assert_eq!(r.arrival_ms, 5_000 + r.seq as i64);
    }
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    files.sort();
    files
}

fn contains(bytes: &[u8], needle: &[u8]) -> bool {
    bytes.windows(needle.len()).any(|w| w == needle)
}

fn version(path: &Path) -> u32 {
    let b = std::fs::read(path).unwrap();
    u32::from_le_bytes(b[8..12].try_into().unwrap())
}

fn encryption_error(e: &Error) -> bool {
    matches!(e, Error::Encryption { .. })
}

#[tokio::test]
async fn encrypted_segments_hold_no_plaintext_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 400,
        ..encrypted(&[("k1", 1)], Some("k1"))
    };
    let (log, rec) = Log::open(dir.path(), config.clone()).unwrap();
    assert_eq!(rec.encrypted_segments, 1);
    assert_eq!(log.active_master_key().as_deref(), Some("k1"));
    append_marked(&log, 0, 20).await;
    log.append(vec![Bytes::new()], 5_020).await.unwrap();
    let records = read_all(&log).unwrap();
    assert_marked(&records[..20], 0, 20);
    assert!(records[20].data.is_empty());
    drop(log);
    let files = segments(dir.path());
    assert!(files.len() > 3, "segments rolled: {files:?}");
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        assert!(
            !contains(&bytes, MARKER.as_bytes()),
            "{} holds plaintext",
            f.display()
        );
        assert!(
            !contains(&bytes, b"\"n\":"),
            "{} holds plaintext",
            f.display()
        );
        assert_eq!(version(f), ENCRYPTED_FORMAT_VERSION);
        assert!(contains(&bytes, b"k1"), "the header names its master key");
    }

    // Recovery and readers after a restart; appends go to a new segment under a new data key.
    let (log, rec) = Log::open(dir.path(), config).unwrap();
    assert_eq!(rec.records, 21);
    assert_eq!(
        rec.bytes,
        records.iter().map(|r| r.data.len() as u64).sum::<u64>()
    );
    assert_eq!(
        segments(dir.path()).len(),
        files.len() + 1,
        "a fresh segment"
    );
    append_marked(&log, 21, 23).await;
    let again = read_all(&log).unwrap();
    assert_eq!(again.len(), 23);
    assert_marked(&again[21..], 21, 23);
    // A reader positioned mid-log.
    let mut reader = log.reader(10).unwrap();
    assert_eq!(reader.next().unwrap().unwrap().data, marked(10));
}

#[tokio::test]
async fn plaintext_and_encrypted_segments_read_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), encrypted(&[("k1", 1)], None)).unwrap();
    append_marked(&log, 0, 3).await;
    assert_eq!(log.active_master_key(), None);
    // A reader following the log across the switches.
    let mut follower = log.reader(0).unwrap();
    log.set_encryption(Some("k1")).await.unwrap();
    assert_eq!(log.active_master_key().as_deref(), Some("k1"));
    append_marked(&log, 3, 6).await;
    log.set_encryption(None).await.unwrap();
    append_marked(&log, 6, 9).await;
    // Switching to the mode already in use changes nothing.
    let count = log.segment_count();
    log.set_encryption(None).await.unwrap();
    assert_eq!(log.segment_count(), count);
    let mut followed = Vec::new();
    while let Some(r) = follower.next().unwrap() {
        followed.push(r);
    }
    assert_marked(&followed, 0, 9);
    drop(log);

    let files = segments(dir.path());
    assert_eq!(files.len(), 3, "{files:?}");
    let plain_markers = |f: &Path| {
        let bytes = std::fs::read(f).unwrap();
        (0..9)
            .filter(|i| contains(&bytes, format!("{MARKER}-{i:03}").as_bytes()))
            .collect::<Vec<_>>()
    };
    assert_eq!(plain_markers(&files[0]), [0, 1, 2]);
    assert_eq!(plain_markers(&files[1]), Vec::<u64>::new());
    assert_eq!(version(&files[1]), ENCRYPTED_FORMAT_VERSION);
    assert_eq!(plain_markers(&files[2]), [6, 7, 8]);

    // After a restart (the keyring still reads the encrypted segment).
    let (log, rec) = Log::open(dir.path(), encrypted(&[("k1", 1)], None)).unwrap();
    assert_eq!(rec.records, 9);
    assert_eq!(rec.encrypted_segments, 1);
    assert_marked(&read_all(&log).unwrap(), 0, 9);
    assert_eq!(
        segments(dir.path()).len(),
        3,
        "the plaintext last segment is reused"
    );
}

#[tokio::test]
async fn switching_an_empty_active_segment_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), encrypted(&[("k1", 1)], None)).unwrap();
    // A reader waiting at the durable end of the (empty) plaintext segment.
    let mut reader = log.reader(0).unwrap();
    assert!(reader.next().unwrap().is_none());
    log.set_encryption(Some("k1")).await.unwrap();
    assert_eq!(log.segment_count(), 1, "replaced, not rolled");
    let files = segments(dir.path());
    assert_eq!(version(&files[0]), ENCRYPTED_FORMAT_VERSION);
    append_marked(&log, 0, 2).await;
    let a = reader
        .next()
        .unwrap()
        .expect("the reader reopened the replaced segment");
    assert_eq!(a.data, marked(0));
    assert_eq!(reader.next().unwrap().unwrap().data, marked(1));
    drop(log);
    let bytes = std::fs::read(&files[0]).unwrap();
    assert!(!contains(&bytes, MARKER.as_bytes()));
}

#[tokio::test]
async fn missing_wrong_or_absent_keys_fail_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), encrypted(&[("k1", 1)], Some("k1"))).unwrap();
    append_marked(&log, 0, 5).await;
    drop(log);
    let before: Vec<(PathBuf, Vec<u8>)> = segments(dir.path())
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    for (what, config) in [
        ("no keyring", LogConfig::default()),
        ("keyring without k1", encrypted(&[("k2", 2)], None)),
        ("another key named k1", encrypted(&[("k1", 9)], None)),
        (
            "writing under a key the keyring lacks",
            encrypted(&[("k1", 1)], Some("k3")),
        ),
    ] {
        let err = Log::open(dir.path(), config).unwrap_err();
        assert!(encryption_error(&err), "{what}: {err}");
        let text = err.to_string();
        assert!(text.contains("encryption"), "{what}: {text}");
        // Nothing was changed or written: no plaintext, no truncation, no new segment.
        let after: Vec<(PathBuf, Vec<u8>)> = segments(dir.path())
            .into_iter()
            .map(|p| {
                let b = std::fs::read(&p).unwrap();
                (p, b)
            })
            .collect();
        assert_eq!(after, before, "{what}: files changed");
    }
    let err = Log::open(dir.path(), LogConfig::default()).unwrap_err();
    assert!(err.to_string().contains("no keyring"), "{err}");
    let err = Log::open(dir.path(), encrypted(&[("k2", 2)], None)).unwrap_err();
    assert!(
        err.to_string().contains("'k1' is not in the keyring"),
        "{err}"
    );

    // On an open log, a key the keyring lacks is refused without any change.
    let (log, _) = Log::open(dir.path(), encrypted(&[("k1", 1)], None)).unwrap();
    let count = log.segment_count();
    let err = log.set_encryption(Some("nope")).await.unwrap_err();
    assert!(encryption_error(&err), "{err}");
    assert_eq!(log.segment_count(), count);
    assert!(log.poisoned().is_none());
    let (plain_dir, plain) = {
        let d = tempfile::tempdir().unwrap();
        let (l, _) = Log::open(d.path(), LogConfig::default()).unwrap();
        (d, l)
    };
    let err = plain.set_encryption(Some("k1")).await.unwrap_err();
    assert!(err.to_string().contains("no keyring"), "{err}");
    drop(plain_dir);
}

#[tokio::test]
async fn delivered_encrypted_segments_do_not_need_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), encrypted(&[("old", 1)], Some("old"))).unwrap();
    append_marked(&log, 0, 4).await;
    log.checkpoint(4, b"").unwrap();
    drop(log);
    // The old key is retired after everything it protected was delivered.
    let (log, rec) = Log::open(dir.path(), encrypted(&[("new", 2)], Some("new"))).unwrap();
    assert_eq!(rec.next_seq, 4);
    assert_eq!(rec.reclaimed_segments, 1, "the locked segment is reclaimed");
    assert_eq!(log.active_master_key().as_deref(), Some("new"));
    append_marked(&log, 4, 6).await;
    assert_marked(&read_all(&log).unwrap(), 4, 6);
}

/// Rewrites the CRC of the sealed record at `offset` so that only authentication can tell.
fn fix_sealed_crc(bytes: &mut [u8], offset: usize) {
    let len = u32::from_le_bytes(bytes[offset + 4..offset + 8].try_into().unwrap()) as usize;
    let end = offset + RECORD_HEADER_LEN + len;
    let crc = crc32c::crc32c_append(SEALED_CRC_SEED, &bytes[offset + 4..end]);
    bytes[offset..offset + 4].copy_from_slice(&crc.to_le_bytes());
}

fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut pos = ENCRYPTED_SEGMENT_HEADER_LEN as usize;
    while pos + RECORD_HEADER_LEN <= bytes.len() {
        out.push(pos);
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
        pos += RECORD_HEADER_LEN + len;
    }
    out
}

#[tokio::test]
async fn tampered_or_moved_records_fail_closed() {
    let dir = tempfile::tempdir().unwrap();
    let config = encrypted(&[("k1", 1)], Some("k1"));
    let (log, _) = Log::open(dir.path(), config.clone()).unwrap();
    append_marked(&log, 0, 4).await;
    drop(log);
    let seg = segments(dir.path())[0].clone();
    let pristine = std::fs::read(&seg).unwrap();
    let offsets = record_offsets(&pristine);
    assert_eq!(offsets.len(), 4);

    // A flipped ciphertext byte with a matching CRC: recovery keeps the record (the CRC is
    // right), readers refuse it and stay there.
    let mut bytes = pristine.clone();
    bytes[offsets[1] + RECORD_HEADER_LEN + 3] ^= 0x20;
    fix_sealed_crc(&mut bytes, offsets[1]);
    std::fs::write(&seg, &bytes).unwrap();
    let (log, rec) = Log::open(dir.path(), config.clone()).unwrap();
    assert_eq!((rec.records, rec.corrupt_records), (4, 0));
    let mut reader = log.reader(0).unwrap();
    assert_eq!(reader.next().unwrap().unwrap().data, marked(0));
    for _ in 0..2 {
        let err = reader.next().unwrap_err();
        assert!(encryption_error(&err), "{err}");
        assert!(
            err.to_string().contains("record 1 failed authentication"),
            "{err}"
        );
    }
    drop(log);

    // Two records of equal length swapped (seqs and CRCs rewritten to fit their place): the
    // position is authenticated, so neither decrypts.
    let mut swapped = pristine.clone();
    let (a, b) = (offsets[2], offsets[3]);
    let len = b - a;
    assert_eq!(pristine.len() - b, len, "equal lengths");
    swapped[a + RECORD_HEADER_LEN..b].copy_from_slice(&pristine[b + RECORD_HEADER_LEN..]);
    swapped[b + RECORD_HEADER_LEN..].copy_from_slice(&pristine[a + RECORD_HEADER_LEN..b]);
    fix_sealed_crc(&mut swapped, a);
    fix_sealed_crc(&mut swapped, b);
    std::fs::write(&seg, &swapped).unwrap();
    let (log, _) = Log::open(dir.path(), config.clone()).unwrap();
    let mut reader = log.reader(2).unwrap();
    assert!(encryption_error(&reader.next().unwrap_err()));
    drop(log);

    // The segment copied into another log (another context): its key does not even unwrap.
    std::fs::write(&seg, &pristine).unwrap();
    let other = LogConfig {
        encryption: Some(LogEncryption {
            context: b"stream-b".to_vec(),
            ..config.encryption.clone().unwrap()
        }),
        ..config.clone()
    };
    let err = Log::open(dir.path(), other).unwrap_err();
    assert!(encryption_error(&err), "{err}");

    // Untouched, everything reads.
    let (log, _) = Log::open(dir.path(), config).unwrap();
    assert_marked(&read_all(&log).unwrap(), 0, 4);
}

#[tokio::test]
async fn rotation_keeps_old_segments_readable() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), encrypted(&[("2024", 1)], Some("2024"))).unwrap();
    append_marked(&log, 0, 3).await;
    drop(log);
    // A new active key is added: old segments still read, new ones use the new key.
    let rotated = encrypted(&[("2024", 1), ("2025", 2)], Some("2025"));
    let (log, _) = Log::open(dir.path(), rotated.clone()).unwrap();
    assert_eq!(log.active_master_key().as_deref(), Some("2025"));
    append_marked(&log, 3, 6).await;
    assert_marked(&read_all(&log).unwrap(), 0, 6);
    drop(log);
    let files = segments(dir.path());
    let last = std::fs::read(files.last().unwrap()).unwrap();
    assert!(contains(&last, b"2025") && !contains(&last, MARKER.as_bytes()));
    let (log, _) = Log::open(dir.path(), rotated).unwrap();
    assert_marked(&read_all(&log).unwrap(), 0, 6);
    drop(log);
    // Removing the old key while its segment holds undelivered records: fail closed.
    let err = Log::open(dir.path(), encrypted(&[("2025", 2)], Some("2025"))).unwrap_err();
    assert!(
        err.to_string().contains("'2024' is not in the keyring"),
        "{err}"
    );
}

#[tokio::test]
async fn damaged_header_of_an_encrypted_segment_loses_only_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1,
        ..encrypted(&[("k1", 1)], Some("k1"))
    };
    let (log, _) = Log::open(dir.path(), config.clone()).unwrap();
    append_marked(&log, 0, 3).await;
    log.append(vec![marked(3), marked(4)], 5_003).await.unwrap();
    drop(log);
    // Segments: [0], [1], [2], [3, 4], [] (empty active). Damage the key block of [1].
    let files = segments(dir.path());
    let mut bytes = std::fs::read(&files[1]).unwrap();
    bytes[60] ^= 0xff;
    std::fs::write(&files[1], &bytes).unwrap();
    let (log, rec) = Log::open(dir.path(), config.clone()).unwrap();
    assert_eq!(rec.corrupt_segments, 1);
    assert_eq!(rec.corrupt_records, 1);
    let got: Vec<u64> = read_all(&log).unwrap().iter().map(|r| r.seq).collect();
    assert_eq!(got, [0, 2, 3, 4]);
    drop(log);
    // The damaged segment is the last with records: seqs never go back.
    for f in &files[2..] {
        std::fs::remove_file(f).unwrap();
    }
    for f in segments(dir.path())
        .into_iter()
        .filter(|f| !files.contains(f))
    {
        std::fs::remove_file(f).unwrap();
    }
    let (log, rec) = Log::open(dir.path(), config).unwrap();
    assert_eq!(rec.next_seq, 2, "{rec:?}");
    assert_eq!(log.append(vec![marked(9)], 1).await.unwrap(), 2..3);
}

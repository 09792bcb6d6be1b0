//! The write-ahead log's decoders: segment headers, records and checkpoints, reached through
//! the public `Log::open_with_fs` (recovery) and `LogReader`, on an in-memory filesystem.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use lakehose_log::{
    CHECKPOINT_FILE, Error, Fs, FsFile, Keyring, Log, LogConfig, LogEncryption, LogRecord,
    Recovery, segment_file_name,
};

use crate::encode;
use crate::split_selector;

type Files = Arc<Mutex<BTreeMap<PathBuf, Arc<Mutex<Vec<u8>>>>>>;

/// A filesystem in memory: a map of paths to shared byte vectors (an open handle keeps its
/// bytes after the name is removed, as on Unix).
#[derive(Debug, Default, Clone)]
struct MemFs {
    files: Files,
}

#[derive(Debug)]
struct MemFile(Arc<Mutex<Vec<u8>>>);

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, path.display().to_string())
}

impl MemFs {
    fn put(&self, path: PathBuf, bytes: Vec<u8>) {
        self.files
            .lock()
            .expect("fs lock")
            .insert(path, Arc::new(Mutex::new(bytes)));
    }
}

impl MemFs {
    fn count_segments(&self) -> usize {
        let files = self.files.lock().expect("fs lock");
        files
            .keys()
            .filter_map(|p| p.file_name()?.to_str())
            .filter(|n| lakehose_log::parse_segment_file_name(n).is_some())
            .count()
    }
}

impl Fs for MemFs {
    fn create_dir_all(&self, _path: &Path) -> io::Result<()> {
        Ok(())
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let file = Arc::new(Mutex::new(Vec::new()));
        self.files
            .lock()
            .expect("fs lock")
            .insert(path.to_path_buf(), file.clone());
        Ok(Box::new(MemFile(file)))
    }
    fn open(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let files = self.files.lock().expect("fs lock");
        let file = files.get(path).ok_or_else(|| not_found(path))?;
        Ok(Box::new(MemFile(file.clone())))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut files = self.files.lock().expect("fs lock");
        let file = files.remove(from).ok_or_else(|| not_found(from))?;
        files.insert(to.to_path_buf(), file);
        Ok(())
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut files = self.files.lock().expect("fs lock");
        files
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let files = self.files.lock().expect("fs lock");
        Ok(files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect())
    }
    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
}

impl FsFile for MemFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let data = self.0.lock().expect("file lock");
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut data = self.0.lock().expect("file lock");
        let start = offset as usize;
        if data.len() < start + buf.len() {
            data.resize(start + buf.len(), 0);
        }
        data[start..start + buf.len()].copy_from_slice(buf);
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }
    fn truncate(&self, len: u64) -> io::Result<()> {
        self.0.lock().expect("file lock").resize(len as usize, 0);
        Ok(())
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.lock().expect("file lock").len() as u64)
    }
}

fn dir() -> PathBuf {
    PathBuf::from("/wal")
}

/// The keyring every fuzzed log is opened with (one key, `fuzz`), and the log's context.
const KEY_ID: &str = "fuzz";
const CONTEXT: &[u8] = b"fuzz-stream";

fn keyring() -> Arc<Keyring> {
    Arc::new(Keyring::new(vec![(KEY_ID.to_string(), [0x5a; 32])], None).expect("keyring"))
}

/// Target `log_recovery`: selector byte, then
/// - `0`: the bytes of one segment file (named after the base in its header bytes 16..24);
/// - `1`: several files, each `[kind u8][base u8][len u16 LE][bytes]`: kind bit 0 = a
///   checkpoint (else a segment named `base`); bit 1 = the harness writes a valid segment
///   header for `base` (a valid checkpoint with `committed = base`) in front of the bytes;
///   bit 2 = the harness rewrites every record CRC found by walking the `len` fields;
///   bits 2-3 both set with bit 1 = the header claims format version 3 (unknown);
/// - `2`: `[op u8][pos u16 LE][base u8]` then NUL-separated payloads: the harness writes a
///   valid segment of them and applies `op` (0 none, 1 flip the byte at `pos`, 2 truncate at
///   `pos`); recovery plus a reader must return exactly the records the damage spared. When
///   `selector / 3` is odd the segment is encrypted (version 2, under the harness's keyring),
///   where damage to the header (which holds the data key) spares no record, and the log
///   then writes encrypted segments too.
///
/// Every log is opened with a keyring (the harness's one key); an encrypted segment it
/// cannot decrypt may refuse the open with `Error::Encryption` (fail closed).
///
/// Always: open succeeds (or refuses a damaged checkpoint / an unknown version); readers
/// return strictly increasing seqs, all below the recovered `next_seq`, no more records than
/// recovery counted; and the recovered log accepts an append that reads back at `next_seq`.
pub fn log_recovery(data: &[u8]) {
    let Some((sel, rest)) = split_selector(data) else {
        return;
    };
    let fs = MemFs::default();
    let mut expect: Option<Vec<Vec<u8>>> = None;
    let encrypted = sel % 3 == 2 && (sel / 3) % 2 == 1;
    match sel % 3 {
        0 => {
            let base = rest
                .get(16..24)
                .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
            fs.put(dir().join(segment_file_name(base)), rest.to_vec());
        }
        1 => container(&fs, rest),
        _ => expect = structured(&fs, rest, encrypted),
    }
    let segments = fs.count_segments();
    let config = LogConfig {
        segment_bytes: 4096,
        encryption: Some(LogEncryption {
            keyring: keyring(),
            write_key: encrypted.then(|| KEY_ID.to_string()),
            context: CONTEXT.to_vec(),
        }),
        ..LogConfig::default()
    };
    let (log, recovery) = match Log::open_with_fs(&dir(), config, Arc::new(fs.clone())) {
        Ok(opened) => opened,
        Err(Error::Corrupt { .. } | Error::UnsupportedVersion { .. }) => return,
        // Only a fuzzed version-2 header can name a key that does not unwrap; the harness's
        // own encrypted segments always open.
        Err(Error::Encryption { .. }) if !encrypted => return,
        Err(e) => panic!("recovery failed: {e}"),
    };
    let records = read_all(&log, &recovery);
    // A reader started at any seq returns the same records as one from the start. (Only
    // with one segment: readers locate a seq by segment bases, so a CRC-valid record whose
    // seq lies beyond the next segment's base — which no writer or random damage produces —
    // is found only from the start.)
    if let Some(mid) = records.get(records.len() / 2).filter(|_| segments <= 1) {
        let suffix: Vec<&LogRecord> = records.iter().filter(|r| r.seq >= mid.seq).collect();
        let mut reader = log
            .reader(mid.seq)
            .unwrap_or_else(|e| panic!("reader at {}: {e}", mid.seq));
        let mut got = Vec::new();
        while let Some(r) = next_record(&mut reader) {
            got.push(r);
        }
        let got: Vec<&LogRecord> = got.iter().collect();
        assert_eq!(got, suffix, "a reader started at seq {} disagrees", mid.seq);
    }
    if let Some(expect) = expect {
        let got: Vec<&[u8]> = records.iter().map(|r| &r.data[..]).collect();
        let want: Vec<&[u8]> = expect.iter().map(Vec::as_slice).collect();
        assert_eq!(
            got, want,
            "recovery returned other records than the damage spared"
        );
    }
    // The recovered log takes appends at next_seq, and they read back; only a log whose
    // next_seq is u64::MAX (a stray segment named so) has no seq left to assign.
    let appended = match crate::rt::block_on(log.append(vec![Bytes::from_static(b"after")], 7)) {
        Ok(range) => range,
        Err(e) => {
            assert_eq!(
                recovery.next_seq,
                u64::MAX,
                "append after recovery failed: {e}"
            );
            log.close();
            return;
        }
    };
    assert_eq!(appended, recovery.next_seq..recovery.next_seq + 1);
    let mut reader = log
        .reader(recovery.next_seq)
        .unwrap_or_else(|e| panic!("reader at next_seq: {e}"));
    let record = reader
        .next()
        .unwrap_or_else(|e| panic!("read after append: {e}"))
        .expect("the appended record");
    assert_eq!(
        (record.seq, &record.data[..]),
        (recovery.next_seq, &b"after"[..])
    );
    log.close();
}

/// The reader's next record; `None` at the end or where it refuses a record it cannot
/// decrypt (fail closed: a fuzzed encrypted segment whose key does not unwrap; the
/// harness's own encrypted segments are checked record by record against what it wrote).
fn next_record(reader: &mut lakehose_log::LogReader) -> Option<LogRecord> {
    match reader.next() {
        Ok(r) => r,
        Err(Error::Encryption { .. }) => None,
        Err(e) => panic!("read: {e}"),
    }
}

/// Every record from the oldest retained seq, checking the reader's invariants.
fn read_all(log: &Log, recovery: &Recovery) -> Vec<LogRecord> {
    let mut reader = log
        .reader(log.oldest_retained_seq())
        .unwrap_or_else(|e| panic!("reader at the oldest retained seq: {e}"));
    let mut out: Vec<LogRecord> = Vec::new();
    while let Some(r) = next_record(&mut reader) {
        assert!(
            out.last().is_none_or(|p| p.seq < r.seq),
            "seqs strictly increase"
        );
        assert!(
            r.seq < recovery.next_seq,
            "record {} at or beyond next_seq {}",
            r.seq,
            recovery.next_seq
        );
        out.push(r);
    }
    assert!(
        out.len() as u64 <= recovery.records,
        "read more than recovered"
    );
    out
}

fn container(fs: &MemFs, mut rest: &[u8]) {
    while rest.len() >= 4 {
        let (kind, base) = (rest[0], u64::from(rest[1]));
        let len = usize::from(u16::from_le_bytes([rest[2], rest[3]])).min(rest.len() - 4);
        let body = &rest[4..4 + len];
        rest = &rest[4 + len..];
        if kind & 1 == 1 {
            let bytes = if kind & 2 != 0 {
                encode::checkpoint(base, body)
            } else {
                body.to_vec()
            };
            fs.put(dir().join(CHECKPOINT_FILE), bytes);
            continue;
        }
        let mut bytes = Vec::new();
        if kind & 2 != 0 {
            let version = if kind & 0x0c == 0x0c { 3 } else { 1 };
            bytes.extend_from_slice(&encode::segment_header(base, version));
        }
        let records_start = bytes.len();
        bytes.extend_from_slice(body);
        if kind & 4 != 0 {
            encode::fix_record_crcs(&mut bytes[records_start..]);
        }
        fs.put(dir().join(segment_file_name(base)), bytes);
    }
}

fn structured(fs: &MemFs, rest: &[u8], encrypted: bool) -> Option<Vec<Vec<u8>>> {
    if rest.len() < 4 {
        return None;
    }
    let op = rest[0] % 3;
    let pos = usize::from(u16::from_le_bytes([rest[1], rest[2]]));
    let base = u64::from(rest[3]);
    // Payload bytes below 5 are raised so that no payload contains a plausible record
    // header (its `len` would need a top byte <= 4): a payload that embeds a valid record
    // is indistinguishable from one, and not what this mode checks.
    let payloads: Vec<Vec<u8>> = rest[4..]
        .split(|b| *b == 0)
        .map(|p| p.iter().map(|b| (*b).max(5)).collect())
        .collect();
    let data_key = lakehose_crypto::DataKey::generate().expect("data key");
    let mut bytes = if encrypted {
        let wrapped = keyring()
            .wrap(
                KEY_ID,
                &data_key,
                &encode::segment_wrap_context(CONTEXT, base),
            )
            .expect("wrap");
        encode::encrypted_segment_header(base, &wrapped).to_vec()
    } else {
        encode::segment_header(base, 1).to_vec()
    };
    let header_len = bytes.len();
    let mut spans = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        let start = bytes.len();
        let seq = base + i as u64;
        if encrypted {
            encode::sealed_log_record(&mut bytes, &data_key, CONTEXT, base, seq, i as i64, p);
        } else {
            encode::log_record(&mut bytes, seq, i as i64, p);
        }
        spans.push((start, bytes.len()));
    }
    let at = pos % bytes.len();
    let spared: Vec<Vec<u8>> = match op {
        0 => payloads,
        // The header of an encrypted segment holds its data key: damage there loses it all.
        1 | 2 if encrypted && at < header_len => {
            if op == 1 {
                bytes[at] ^= 0xA5;
            } else {
                bytes.truncate(at);
            }
            Vec::new()
        }
        1 => {
            bytes[at] ^= 0xA5;
            payloads
                .into_iter()
                .zip(&spans)
                .filter(|(_, (s, e))| !(*s..*e).contains(&at))
                .map(|(p, _)| p)
                .collect()
        }
        _ => {
            bytes.truncate(at);
            payloads
                .into_iter()
                .zip(&spans)
                .filter(|(_, (_, e))| *e <= at)
                .map(|(p, _)| p)
                .collect()
        }
    };
    fs.put(dir().join(segment_file_name(base)), bytes);
    Some(spared)
}

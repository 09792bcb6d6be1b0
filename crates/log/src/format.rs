//! Byte layout of segment headers and records, and the record scanner shared by recovery
//! and readers.
//!
//! Everything here is pure (no I/O) so it can be tested byte by byte. The layout itself is
//! documented in the crate docs; the constants below are the single source of truth.
//!
//! Validity of a record at an offset (used identically by recovery and readers):
//! 1. the 24-byte header is complete and `len` is plausible for the segment's [`Flavor`]
//!    (`<= MAX_RECORD_BYTES`, plus the tag and at least the tag for encrypted records),
//! 2. the record (`24 + len` bytes) ends within the bytes considered,
//! 3. `seq >= min_seq` (sequence numbers only grow within a log) and `seq < u64::MAX` (never
//!    assigned: the writer stops before it, as the seq after it could not be represented),
//! 4. the stored CRC32C equals the CRC32C of bytes `4 .. 24 + len` (`len` through the data);
//!    for encrypted records the CRC is continued from [`SEALED_CRC_SEED`] instead, so a record
//!    of one flavor never checks as the other (a segment whose header was damaged cannot pass
//!    its ciphertext off as plaintext records).
//!
//! Authentication of encrypted records (AES-GCM) is not part of validity: the CRC decides
//! what is a record (torn writes, bit rot), and a valid record that fails authentication is
//! tampering or a wrong key, which readers refuse with an error instead of skipping.

use lakehose_crypto::{DataKey, TAG_LEN, WrappedKey};

/// Magic bytes at the start of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"LHWAL\0\0\x01";
/// Format version of plaintext segments.
pub const FORMAT_VERSION: u32 = 1;
/// Format version of encrypted segments (header carries the wrapped data key).
pub const ENCRYPTED_FORMAT_VERSION: u32 = 2;
/// Length of the version-1 segment header (and of the common part of every header).
pub const SEGMENT_HEADER_LEN: u64 = 32;
/// Length of the version-2 (encrypted) segment header; its first record starts here.
pub const ENCRYPTED_SEGMENT_HEADER_LEN: u64 = 192;
/// Length of a record header: crc32c u32 | len u32 | seq u64 | arrival_ms i64.
pub const RECORD_HEADER_LEN: usize = 24;
/// Largest accepted record payload. Appends of larger records are refused, and recovery
/// treats a larger `len` field as implausible (corrupt).
pub const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;
/// The CRC32C of an encrypted record's bytes is continued from this value
/// (`crc32c_append(SEALED_CRC_SEED, bytes)`), not started from zero.
pub const SEALED_CRC_SEED: u32 = 0x4c48_4532;
/// Offset of the key block in a version-2 header, and where its CRC is stored.
const KEY_BLOCK: usize = 32;
const KEY_BLOCK_CRC: usize = ENCRYPTED_SEGMENT_HEADER_LEN as usize - 4;
/// Domain prefix of the associated data of encrypted records.
const RECORD_AAD_DOMAIN: &[u8] = b"lakehose-log-record-v2";
/// Domain prefix of the wrap context of segment data keys.
const SEGMENT_WRAP_DOMAIN: &[u8] = b"lakehose-log-segment-v2";

/// How a segment's records are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Version 1: the data as appended.
    Plain,
    /// Version 2: the data sealed with the segment's data key (AES-256-GCM, tag appended).
    Sealed,
}

impl Flavor {
    fn crc(self, bytes: &[u8]) -> u32 {
        match self {
            Flavor::Plain => crc32c::crc32c(bytes),
            Flavor::Sealed => crc32c::crc32c_append(SEALED_CRC_SEED, bytes),
        }
    }

    /// Whether a record `len` could have been written in this flavor.
    fn plausible(self, len: u32) -> bool {
        let len = len as usize;
        match self {
            Flavor::Plain => len <= MAX_RECORD_BYTES,
            Flavor::Sealed => (TAG_LEN..=MAX_RECORD_BYTES + TAG_LEN).contains(&len),
        }
    }

    /// The offset of the first record of a segment of this flavor.
    pub fn data_start(self) -> u64 {
        match self {
            Flavor::Plain => SEGMENT_HEADER_LEN,
            Flavor::Sealed => ENCRYPTED_SEGMENT_HEADER_LEN,
        }
    }
}

/// The common 32 bytes of every segment header (the whole version-1 header).
fn header_prefix(base_seq: u64, version: u32) -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    h[0..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&version.to_le_bytes());
    // h[12..16]: reserved, zero.
    h[16..24].copy_from_slice(&base_seq.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..24]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    // h[28..32]: zero pad.
    h
}

/// Encodes the 32-byte segment header for a segment whose first record has `base_seq`.
pub fn encode_segment_header(base_seq: u64) -> [u8; SEGMENT_HEADER_LEN as usize] {
    header_prefix(base_seq, FORMAT_VERSION)
}

/// Encodes the 192-byte header of an encrypted segment: the common 32 bytes (version 2),
/// the wrapped data key (`id_len u8 | master key id | nonce | wrapped key`), zero padding,
/// and at bytes 188..192 the CRC32C of bytes 0..188.
pub fn encode_encrypted_segment_header(
    base_seq: u64,
    key: &WrappedKey,
) -> [u8; ENCRYPTED_SEGMENT_HEADER_LEN as usize] {
    let mut h = [0u8; ENCRYPTED_SEGMENT_HEADER_LEN as usize];
    h[..SEGMENT_HEADER_LEN as usize]
        .copy_from_slice(&header_prefix(base_seq, ENCRYPTED_FORMAT_VERSION));
    let mut block = Vec::with_capacity(WrappedKey::encoded_len(lakehose_crypto::MAX_KEY_ID_LEN));
    key.encode(&mut block);
    debug_assert!(KEY_BLOCK + block.len() <= KEY_BLOCK_CRC);
    h[KEY_BLOCK..KEY_BLOCK + block.len()].copy_from_slice(&block);
    let crc = crc32c::crc32c(&h[..KEY_BLOCK_CRC]);
    h[KEY_BLOCK_CRC..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Outcome of decoding a segment header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Header {
    /// Magic, CRCs and version are good. `key` is the wrapped data key of an encrypted
    /// (version-2) segment.
    Valid {
        base_seq: u64,
        key: Option<WrappedKey>,
    },
    /// A well-formed header (good magic and CRC) of a format version this crate cannot read.
    /// Never treated as corruption: opening refuses instead of discarding data.
    Unsupported { version: u32 },
    /// Short, wrong magic or CRC mismatch.
    Invalid(&'static str),
}

/// Decodes a segment header from the first bytes of a segment file.
pub fn decode_segment_header(bytes: &[u8]) -> Header {
    let Some(h) = bytes.get(..SEGMENT_HEADER_LEN as usize) else {
        return Header::Invalid("segment header is truncated");
    };
    if h[0..8] != SEGMENT_MAGIC {
        return Header::Invalid("bad segment magic");
    }
    if crc32c::crc32c(&h[0..24]) != le_u32(&h[24..28]) {
        return Header::Invalid("segment header CRC mismatch");
    }
    let base_seq = le_u64(&h[16..24]);
    match le_u32(&h[8..12]) {
        FORMAT_VERSION => Header::Valid {
            base_seq,
            key: None,
        },
        ENCRYPTED_FORMAT_VERSION => {
            let Some(h) = bytes.get(..ENCRYPTED_SEGMENT_HEADER_LEN as usize) else {
                return Header::Invalid("encrypted segment header is truncated");
            };
            if crc32c::crc32c(&h[..KEY_BLOCK_CRC]) != le_u32(&h[KEY_BLOCK_CRC..]) {
                return Header::Invalid("encrypted segment key block CRC mismatch");
            }
            match WrappedKey::decode(&h[KEY_BLOCK..KEY_BLOCK_CRC]) {
                Ok((key, _)) => Header::Valid {
                    base_seq,
                    key: Some(key),
                },
                Err(_) => Header::Invalid("encrypted segment key block is malformed"),
            }
        }
        version => Header::Unsupported { version },
    }
}

/// The context a segment's data key is wrapped with: it binds the wrapped key to this log
/// (`context`) and this segment (`base_seq`).
pub fn segment_wrap_context(context: &[u8], base_seq: u64) -> Vec<u8> {
    let mut c = Vec::with_capacity(SEGMENT_WRAP_DOMAIN.len() + 8 + context.len());
    c.extend_from_slice(SEGMENT_WRAP_DOMAIN);
    c.extend_from_slice(&base_seq.to_le_bytes());
    c.extend_from_slice(context);
    c
}

/// Writes into `out` the associated data of an encrypted record: the log's `context`, the
/// segment's base, the record's seq and arrival time. A record moved to another log, segment
/// or position, or given another arrival time, fails authentication.
pub fn record_aad(out: &mut Vec<u8>, context: &[u8], base_seq: u64, seq: u64, arrival_ms: i64) {
    out.clear();
    out.extend_from_slice(RECORD_AAD_DOMAIN);
    out.extend_from_slice(&(context.len() as u32).to_le_bytes());
    out.extend_from_slice(context);
    out.extend_from_slice(&base_seq.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&arrival_ms.to_le_bytes());
}

/// Number of bytes `data` occupies once encoded as a record.
pub fn encoded_len(data_len: usize) -> usize {
    RECORD_HEADER_LEN + data_len
}

/// Appends one encoded record to `out`.
///
/// The caller guarantees `data.len() <= MAX_RECORD_BYTES`.
pub fn encode_record(out: &mut Vec<u8>, seq: u64, arrival_ms: i64, data: &[u8]) {
    debug_assert!(data.len() <= MAX_RECORD_BYTES);
    let start = out.len();
    out.extend_from_slice(&[0u8; 4]); // CRC placeholder
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&arrival_ms.to_le_bytes());
    out.extend_from_slice(data);
    let crc = crc32c::crc32c(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Appends one encrypted record to `out`: the header of [`encode_record`], then `data` sealed
/// with `key` (nonce: the seq, see [`lakehose_crypto::nonce`]; associated data: `aad`, from
/// [`record_aad`]) and its tag, so `len = data.len() + TAG_LEN`; the CRC (flavor
/// [`Flavor::Sealed`]) covers the bytes as stored.
///
/// The caller guarantees `data.len() <= MAX_RECORD_BYTES` and that `seq` was never sealed
/// with `key` before (the nonce-uniqueness invariant of `lakehose_crypto`).
pub fn encode_sealed_record(
    out: &mut Vec<u8>,
    key: &DataKey,
    aad: &[u8],
    seq: u64,
    arrival_ms: i64,
    data: &[u8],
) -> Result<(), lakehose_crypto::Error> {
    debug_assert!(data.len() <= MAX_RECORD_BYTES);
    let start = out.len();
    out.extend_from_slice(&[0u8; 4]); // CRC placeholder
    out.extend_from_slice(&((data.len() + TAG_LEN) as u32).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&arrival_ms.to_le_bytes());
    let body = out.len();
    out.extend_from_slice(data);
    let tag = key.seal_in_place(lakehose_crypto::nonce(seq, 0), aad, &mut out[body..])?;
    out.extend_from_slice(&tag);
    let crc = Flavor::Sealed.crc(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// A record header decoded without checking the CRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub crc: u32,
    pub len: u32,
    pub seq: u64,
    pub arrival_ms: i64,
}

impl RecordHeader {
    /// Decodes the first [`RECORD_HEADER_LEN`] bytes of `bytes`, if present.
    pub fn decode(bytes: &[u8]) -> Option<RecordHeader> {
        let h = bytes.get(..RECORD_HEADER_LEN)?;
        Some(RecordHeader {
            crc: le_u32(&h[0..4]),
            len: le_u32(&h[4..8]),
            seq: le_u64(&h[8..16]),
            arrival_ms: le_u64(&h[16..24]) as i64,
        })
    }

    /// Whether `len` could belong to a record of this flavor written by this crate.
    pub fn plausible_len(&self, flavor: Flavor) -> bool {
        flavor.plausible(self.len)
    }

    /// Total encoded length of the record.
    pub fn total_len(&self) -> usize {
        RECORD_HEADER_LEN + self.len as usize
    }
}

/// Result of checking the bytes at one offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A valid record occupying `bytes[..header.total_len()]`.
    Valid(RecordHeader),
    /// The bytes end before the record does (header or data cut off).
    Incomplete,
    /// Complete but not valid: implausible length, seq too small or CRC mismatch.
    Invalid,
}

/// Checks whether a valid record of `flavor` with `seq >= min_seq` starts at `bytes[0]`.
pub fn parse_record(bytes: &[u8], min_seq: u64, flavor: Flavor) -> Parsed {
    let Some(h) = RecordHeader::decode(bytes) else {
        return Parsed::Incomplete;
    };
    if !h.plausible_len(flavor) {
        return Parsed::Invalid;
    }
    let Some(rec) = bytes.get(..h.total_len()) else {
        return Parsed::Incomplete;
    };
    // Cheap checks first: the CRC is the expensive one.
    if h.seq < min_seq || h.seq == u64::MAX || flavor.crc(&rec[4..]) != h.crc {
        return Parsed::Invalid;
    }
    Parsed::Valid(h)
}

/// Finds the first offset `> 0` in `bytes` where a valid record of `flavor` with
/// `seq >= min_seq` starts, given that the record at offset 0 is not valid.
///
/// The failed record's own length is tried first when it is plausible (the usual case of
/// a flipped bit in the data), and taken only when the record found there has the seq right
/// after the failed one's (or after `min_seq`): a damaged `len` can point exactly at a later
/// record and would skip the valid ones in between. Otherwise every later offset is tried.
/// The scan is a finite forward walk, so it always terminates.
pub fn find_next_valid(
    bytes: &[u8],
    min_seq: u64,
    flavor: Flavor,
) -> Option<(usize, RecordHeader)> {
    if let Some(h) = RecordHeader::decode(bytes)
        && h.plausible_len(flavor)
        && h.total_len() < bytes.len()
        && let Parsed::Valid(next) = parse_record(&bytes[h.total_len()..], min_seq, flavor)
        && (Some(next.seq) == h.seq.checked_add(1) || Some(next.seq) == min_seq.checked_add(1))
    {
        return Some((h.total_len(), next));
    }
    (1..bytes.len().saturating_sub(RECORD_HEADER_LEN - 1)).find_map(|off| {
        match parse_record(&bytes[off..], min_seq, flavor) {
            Parsed::Valid(h) => Some((off, h)),
            Parsed::Incomplete | Parsed::Invalid => None,
        }
    })
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn crc32c_known_vector() {
        // RFC 3720 / iSCSI check value: proves we use Castagnoli, not IEEE CRC-32.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn segment_header_fixture() {
        let h = encode_segment_header(0x0102_0304_0506_0708);
        let crc = crc32c::crc32c(&h[..24]);
        let expected = format!(
            "4c4857414c000001{}00000000{}{}00000000",
            "01000000",
            "0807060504030201",
            hex(&crc.to_le_bytes())
        );
        assert_eq!(hex(&h), expected);
        assert_eq!(
            decode_segment_header(&h),
            Header::Valid {
                base_seq: 0x0102_0304_0506_0708,
                key: None,
            }
        );
    }

    #[test]
    fn record_fixture() {
        let mut out = Vec::new();
        encode_record(&mut out, 7, -2, b"hi");
        // crc | len=2 | seq=7 | arrival=-2 | "hi"; CRC pinned so a format change is noticed.
        assert_eq!(
            hex(&out[4..]),
            "02000000\
             0700000000000000\
             feffffffffffffff\
             6869"
        );
        assert_eq!(
            u32::from_le_bytes(out[..4].try_into().unwrap()),
            crc32c::crc32c(&out[4..])
        );
        assert_eq!(hex(&out[..4]), "c8fc19dd");
        match parse_record(&out, 0, Flavor::Plain) {
            Parsed::Valid(h) => {
                assert_eq!((h.len, h.seq, h.arrival_ms), (2, 7, -2));
            }
            other => panic!("expected a valid record, got {other:?}"),
        }
    }

    #[test]
    fn header_rejects_damage() {
        let good = encode_segment_header(5);
        assert!(matches!(
            decode_segment_header(&good[..31]),
            Header::Invalid(_)
        ));
        for i in 0..28 {
            let mut h = good;
            h[i] ^= 0x10;
            assert!(
                matches!(decode_segment_header(&h), Header::Invalid(_)),
                "flip in byte {i} not detected"
            );
        }
    }

    #[test]
    fn header_with_other_version_is_unsupported() {
        let mut h = encode_segment_header(5);
        h[8..12].copy_from_slice(&3u32.to_le_bytes());
        let crc = crc32c::crc32c(&h[..24]);
        h[24..28].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode_segment_header(&h),
            Header::Unsupported { version: 3 }
        );
    }

    #[test]
    fn parse_classifies() {
        let mut out = Vec::new();
        encode_record(&mut out, 3, 0, b"abcdef");
        assert!(matches!(
            parse_record(&out, 3, Flavor::Plain),
            Parsed::Valid(_)
        ));
        assert_eq!(
            parse_record(&out, 4, Flavor::Plain),
            Parsed::Invalid,
            "seq below minimum"
        );
        assert_eq!(
            parse_record(&out[..out.len() - 1], 0, Flavor::Plain),
            Parsed::Incomplete
        );
        assert_eq!(
            parse_record(&out[..10], 0, Flavor::Plain),
            Parsed::Incomplete
        );
        let mut bad = out.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(parse_record(&bad, 0, Flavor::Plain), Parsed::Invalid);
        let mut huge = out.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse_record(&huge, 0, Flavor::Plain), Parsed::Invalid);
        let mut last = Vec::new();
        encode_record(&mut last, u64::MAX, 0, b"x");
        assert_eq!(
            parse_record(&last, 0, Flavor::Plain),
            Parsed::Invalid,
            "u64::MAX is never assigned"
        );
    }

    #[test]
    fn find_next_valid_uses_len_or_scans() {
        let mut out = Vec::new();
        encode_record(&mut out, 0, 0, b"first");
        let second = out.len();
        encode_record(&mut out, 1, 0, b"second");

        // Data damaged, length intact: skip by length.
        let mut a = out.clone();
        a[RECORD_HEADER_LEN] ^= 0xff;
        assert_eq!(
            find_next_valid(&a, 0, Flavor::Plain).map(|(o, h)| (o, h.seq)),
            Some((second, 1))
        );

        // Length damaged to something implausible: scan.
        let mut b = out.clone();
        b[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            find_next_valid(&b, 0, Flavor::Plain).map(|(o, h)| (o, h.seq)),
            Some((second, 1))
        );

        // Length damaged to point exactly at a later record: the one in between is still
        // found (records of equal size make this a single-bit flip away).
        let mut equal = Vec::new();
        for seq in 0..3 {
            encode_record(&mut equal, seq, 0, b"same");
        }
        let size = encoded_len(4);
        let mut d = equal.clone();
        d[4..8].copy_from_slice(&((size + 4) as u32).to_le_bytes());
        assert_eq!(
            find_next_valid(&d, 0, Flavor::Plain).map(|(o, h)| (o, h.seq)),
            Some((size, 1))
        );

        // Nothing valid after the damage.
        let mut c = out.clone();
        c[second + RECORD_HEADER_LEN] ^= 1;
        c[0] ^= 1;
        assert_eq!(find_next_valid(&c, 0, Flavor::Plain), None);
        assert_eq!(find_next_valid(&[0u8; 100], 0, Flavor::Plain), None);
    }

    fn test_keyring() -> lakehose_crypto::Keyring {
        lakehose_crypto::Keyring::parse(&lakehose_crypto::generate_key_line("k1").unwrap()).unwrap()
    }

    #[test]
    fn encrypted_header_round_trip_and_damage() {
        let ring = test_keyring();
        let dk = DataKey::generate().unwrap();
        let wrapped = ring
            .wrap("k1", &dk, &segment_wrap_context(b"s", 9))
            .unwrap();
        let h = encode_encrypted_segment_header(9, &wrapped);
        assert_eq!(h.len() as u64, ENCRYPTED_SEGMENT_HEADER_LEN);
        assert_eq!(&h[8..12], &2u32.to_le_bytes());
        assert_eq!(
            decode_segment_header(&h),
            Header::Valid {
                base_seq: 9,
                key: Some(wrapped.clone()),
            }
        );
        assert!(matches!(
            decode_segment_header(&h[..100]),
            Header::Invalid(_)
        ));
        for i in 0..h.len() {
            let mut d = h;
            d[i] ^= 0x04;
            assert!(
                matches!(decode_segment_header(&d), Header::Invalid(_)),
                "flip in byte {i} not detected"
            );
        }
    }

    #[test]
    fn sealed_records_hide_data_and_never_check_as_plain() {
        let dk = DataKey::generate().unwrap();
        let mut aad = Vec::new();
        record_aad(&mut aad, b"stream", 5, 7, -2);
        let mut out = Vec::new();
        encode_sealed_record(&mut out, &dk, &aad, 7, -2, b"MARKER-secret").unwrap();
        assert_eq!(out.len(), encoded_len(13) + TAG_LEN);
        assert!(!out.windows(6).any(|w| w == b"MARKER"));
        let Parsed::Valid(h) = parse_record(&out, 0, Flavor::Sealed) else {
            panic!("sealed record does not parse");
        };
        assert_eq!((h.len as usize, h.seq, h.arrival_ms), (13 + TAG_LEN, 7, -2));
        assert_eq!(parse_record(&out, 0, Flavor::Plain), Parsed::Invalid);
        let mut plain = Vec::new();
        encode_record(&mut plain, 7, -2, b"MARKER-secret");
        assert_eq!(parse_record(&plain, 0, Flavor::Sealed), Parsed::Invalid);
        let mut body = out[RECORD_HEADER_LEN..].to_vec();
        assert_eq!(
            dk.open_in_place(lakehose_crypto::nonce(7, 0), &aad, &mut body)
                .unwrap(),
            b"MARKER-secret"
        );
        // Another position (seq, base, arrival or log) does not authenticate.
        for (ctx, base, seq, arrival) in [
            (&b"stream"[..], 5, 8, -2),
            (&b"stream"[..], 6, 7, -2),
            (&b"stream"[..], 5, 7, -1),
            (&b"other"[..], 5, 7, -2),
        ] {
            let mut wrong = Vec::new();
            record_aad(&mut wrong, ctx, base, seq, arrival);
            let mut body = out[RECORD_HEADER_LEN..].to_vec();
            assert!(
                dk.open_in_place(lakehose_crypto::nonce(7, 0), &wrong, &mut body)
                    .is_err()
            );
        }
    }
}

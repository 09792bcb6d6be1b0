//! Byte layout of segment headers and records, and the record scanner shared by recovery
//! and readers.
//!
//! Everything here is pure (no I/O) so it can be tested byte by byte. The layout itself is
//! documented in the crate docs; the constants below are the single source of truth.
//!
//! Validity of a record at an offset (used identically by recovery and readers):
//! 1. the 24-byte header is complete and `len <= MAX_RECORD_BYTES` (a *plausible* length),
//! 2. the record (`24 + len` bytes) ends within the bytes considered,
//! 3. `seq >= min_seq` (sequence numbers only grow within a log) and `seq < u64::MAX` (never
//!    assigned: the writer stops before it, as the seq after it could not be represented),
//! 4. the stored CRC32C equals the CRC32C of bytes `4 .. 24 + len` (`len` through the data).

/// Magic bytes at the start of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"LHWAL\0\0\x01";
/// Segment format version written by this crate.
pub const FORMAT_VERSION: u32 = 1;
/// Length of the segment header; the first record starts at this offset.
pub const SEGMENT_HEADER_LEN: u64 = 32;
/// Length of a record header: crc32c u32 | len u32 | seq u64 | arrival_ms i64.
pub const RECORD_HEADER_LEN: usize = 24;
/// Largest accepted record payload. Appends of larger records are refused, and recovery
/// treats a larger `len` field as implausible (corrupt).
pub const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;

/// Encodes the 32-byte segment header for a segment whose first record has `base_seq`.
pub fn encode_segment_header(base_seq: u64) -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    h[0..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    // h[12..16]: reserved, zero.
    h[16..24].copy_from_slice(&base_seq.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..24]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    // h[28..32]: zero pad.
    h
}

/// Outcome of decoding a segment header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Header {
    /// Magic, CRC and version are good.
    Valid { base_seq: u64 },
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
    let version = le_u32(&h[8..12]);
    if version != FORMAT_VERSION {
        return Header::Unsupported { version };
    }
    Header::Valid {
        base_seq: le_u64(&h[16..24]),
    }
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

    /// Whether `len` could belong to a record written by this crate.
    pub fn plausible_len(&self) -> bool {
        self.len as usize <= MAX_RECORD_BYTES
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

/// Checks whether a valid record with `seq >= min_seq` starts at `bytes[0]`.
pub fn parse_record(bytes: &[u8], min_seq: u64) -> Parsed {
    let Some(h) = RecordHeader::decode(bytes) else {
        return Parsed::Incomplete;
    };
    if !h.plausible_len() {
        return Parsed::Invalid;
    }
    let Some(rec) = bytes.get(..h.total_len()) else {
        return Parsed::Incomplete;
    };
    // Cheap checks first: the CRC is the expensive one.
    if h.seq < min_seq || h.seq == u64::MAX || crc32c::crc32c(&rec[4..]) != h.crc {
        return Parsed::Invalid;
    }
    Parsed::Valid(h)
}

/// Finds the first offset `> 0` in `bytes` where a valid record with `seq >= min_seq`
/// starts, given that the record at offset 0 is not valid.
///
/// The failed record's own length is tried first when it is plausible (the usual case of
/// a flipped bit in the data), and taken only when the record found there has the seq right
/// after the failed one's (or after `min_seq`): a damaged `len` can point exactly at a later
/// record and would skip the valid ones in between. Otherwise every later offset is tried.
/// The scan is a finite forward walk, so it always terminates.
pub fn find_next_valid(bytes: &[u8], min_seq: u64) -> Option<(usize, RecordHeader)> {
    if let Some(h) = RecordHeader::decode(bytes)
        && h.plausible_len()
        && h.total_len() < bytes.len()
        && let Parsed::Valid(next) = parse_record(&bytes[h.total_len()..], min_seq)
        && (Some(next.seq) == h.seq.checked_add(1) || Some(next.seq) == min_seq.checked_add(1))
    {
        return Some((h.total_len(), next));
    }
    (1..bytes.len().saturating_sub(RECORD_HEADER_LEN - 1)).find_map(|off| {
        match parse_record(&bytes[off..], min_seq) {
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
                base_seq: 0x0102_0304_0506_0708
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
        match parse_record(&out, 0) {
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
        h[8..12].copy_from_slice(&2u32.to_le_bytes());
        let crc = crc32c::crc32c(&h[..24]);
        h[24..28].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode_segment_header(&h),
            Header::Unsupported { version: 2 }
        );
    }

    #[test]
    fn parse_classifies() {
        let mut out = Vec::new();
        encode_record(&mut out, 3, 0, b"abcdef");
        assert!(matches!(parse_record(&out, 3), Parsed::Valid(_)));
        assert_eq!(parse_record(&out, 4), Parsed::Invalid, "seq below minimum");
        assert_eq!(parse_record(&out[..out.len() - 1], 0), Parsed::Incomplete);
        assert_eq!(parse_record(&out[..10], 0), Parsed::Incomplete);
        let mut bad = out.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(parse_record(&bad, 0), Parsed::Invalid);
        let mut huge = out.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse_record(&huge, 0), Parsed::Invalid);
        let mut last = Vec::new();
        encode_record(&mut last, u64::MAX, 0, b"x");
        assert_eq!(
            parse_record(&last, 0),
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
            find_next_valid(&a, 0).map(|(o, h)| (o, h.seq)),
            Some((second, 1))
        );

        // Length damaged to something implausible: scan.
        let mut b = out.clone();
        b[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            find_next_valid(&b, 0).map(|(o, h)| (o, h.seq)),
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
            find_next_valid(&d, 0).map(|(o, h)| (o, h.seq)),
            Some((size, 1))
        );

        // Nothing valid after the damage.
        let mut c = out.clone();
        c[second + RECORD_HEADER_LEN] ^= 1;
        c[0] ^= 1;
        assert_eq!(find_next_valid(&c, 0), None);
        assert_eq!(find_next_valid(&[0u8; 100], 0), None);
    }
}

//! Reference encoders, written from the documented formats (not from the decoders' code):
//! the harness uses them to wrap fuzz bytes into well-formed envelopes, and the seed generator
//! (`examples/gen_seeds.rs`) to build corpus files.

use std::io::Write as _;

use md5::{Digest as _, Md5};

/// gzip of `data` (one member).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("write to memory");
    e.finish().expect("finish gzip in memory")
}

/// The KPL aggregated-record magic number.
pub const KPL_MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// Appends a protobuf varint.
pub fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a length-delimited protobuf field.
pub fn bytes_field(number: u64, data: &[u8], out: &mut Vec<u8>) {
    varint(number << 3 | 2, out);
    varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

/// Wraps a protobuf `AggregatedRecord` body as the KPL does: magic, body, MD5 of the body.
pub fn kpl_envelope(body: &[u8]) -> Vec<u8> {
    let mut out = KPL_MAGIC.to_vec();
    out.extend_from_slice(body);
    out.extend_from_slice(&Md5::digest(body));
    out
}

/// A KPL aggregated record holding `records` (two partition keys, one explicit hash key,
/// a tag on every other record), as the KPL writes it.
pub fn kpl_aggregate(records: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::new();
    bytes_field(1, b"partition-key-a", &mut body);
    bytes_field(1, b"partition-key-b", &mut body);
    bytes_field(2, b"170141183460469231731687303715884105728", &mut body);
    for (i, data) in records.iter().enumerate() {
        let mut record = Vec::new();
        varint(1 << 3, &mut record);
        varint((i % 2) as u64, &mut record);
        if i % 3 == 1 {
            varint(2 << 3, &mut record);
            varint(0, &mut record);
        }
        bytes_field(3, data, &mut record);
        if i % 2 == 1 {
            let mut tag = Vec::new();
            bytes_field(1, b"k", &mut tag);
            bytes_field(2, b"v", &mut tag);
            bytes_field(4, &tag, &mut record);
        }
        bytes_field(3, &record, &mut body);
    }
    kpl_envelope(&body)
}

/// Log segment magic (crate docs of `lakehose-log`).
pub const SEGMENT_MAGIC: [u8; 8] = *b"LHWAL\0\0\x01";
/// Log checkpoint magic.
pub const CHECKPOINT_MAGIC: [u8; 8] = *b"LHCKPT\0\x01";
/// Segment header length.
pub const SEGMENT_HEADER_LEN: usize = 32;
/// Record header length.
pub const RECORD_HEADER_LEN: usize = 24;

/// The 32-byte header of a segment whose first record has `base_seq`, version `version`.
pub fn segment_header(base_seq: u64, version: u32) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[0..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&version.to_le_bytes());
    h[16..24].copy_from_slice(&base_seq.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..24]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The 192-byte header of an encrypted (version 2) segment: the 32 common bytes, then
/// `id_len u8 | master key id | wrap nonce (12) | wrapped data key (48)`, zero padding, and
/// at 188..192 the CRC32C of bytes 0..188. The data key is wrapped with the context
/// `b"lakehose-log-segment-v2" | base_seq u64 | log context`.
pub fn encrypted_segment_header(base_seq: u64, wrapped: &lakehose_crypto::WrappedKey) -> [u8; 192] {
    let mut h = [0u8; 192];
    h[..SEGMENT_HEADER_LEN].copy_from_slice(&segment_header(base_seq, 2));
    let mut block = Vec::new();
    wrapped.encode(&mut block);
    h[32..32 + block.len()].copy_from_slice(&block);
    let crc = crc32c::crc32c(&h[..188]);
    h[188..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The wrap context of the data key of segment `base_seq` of a log with `context`.
pub fn segment_wrap_context(context: &[u8], base_seq: u64) -> Vec<u8> {
    let mut c = b"lakehose-log-segment-v2".to_vec();
    c.extend_from_slice(&base_seq.to_le_bytes());
    c.extend_from_slice(context);
    c
}

/// Appends one encrypted record: `crc | len | seq | arrival_ms | sealed data | tag` with
/// `len = data + 16`, the data sealed with nonce `seq u64 | 0u32` and associated data
/// `b"lakehose-log-record-v2" | context_len u32 | context | base u64 | seq u64 | arrival i64`,
/// and the CRC32C continued from `0x4C484532` over bytes 4.. .
pub fn sealed_log_record(
    out: &mut Vec<u8>,
    key: &lakehose_crypto::DataKey,
    context: &[u8],
    base: u64,
    seq: u64,
    arrival_ms: i64,
    data: &[u8],
) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&((data.len() + 16) as u32).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&arrival_ms.to_le_bytes());
    let mut aad = b"lakehose-log-record-v2".to_vec();
    aad.extend_from_slice(&(context.len() as u32).to_le_bytes());
    aad.extend_from_slice(context);
    aad.extend_from_slice(&base.to_le_bytes());
    aad.extend_from_slice(&seq.to_le_bytes());
    aad.extend_from_slice(&arrival_ms.to_le_bytes());
    let body = out.len();
    out.extend_from_slice(data);
    let tag = key
        .seal_in_place(lakehose_crypto::nonce(seq, 0), &aad, &mut out[body..])
        .expect("seal");
    out.extend_from_slice(&tag);
    let crc = crc32c::crc32c_append(0x4c48_4532, &out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Appends one record: `crc | len | seq | arrival_ms | data`, CRC32C over bytes 4.. .
pub fn log_record(out: &mut Vec<u8>, seq: u64, arrival_ms: i64, data: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&arrival_ms.to_le_bytes());
    out.extend_from_slice(data);
    let crc = crc32c::crc32c(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Rewrites the CRC of every record found by walking `bytes` (records only, no segment
/// header) by their `len` fields, so arbitrary headers and payloads pass the CRC check.
/// Stops at the first record that does not fit.
pub fn fix_record_crcs(bytes: &mut [u8]) {
    let mut pos = 0;
    while pos + RECORD_HEADER_LEN <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().expect("4 bytes")) as usize;
        let Some(end) = (pos + RECORD_HEADER_LEN)
            .checked_add(len)
            .filter(|e| *e <= bytes.len())
        else {
            break;
        };
        let crc = crc32c::crc32c(&bytes[pos + 4..end]);
        bytes[pos..pos + 4].copy_from_slice(&crc.to_le_bytes());
        pos = end;
    }
}

/// A checkpoint file: `magic | committed u64 | pending_len u32 | pending | crc32c u32`.
pub fn checkpoint(committed: u64, pending: &[u8]) -> Vec<u8> {
    let mut out = CHECKPOINT_MAGIC.to_vec();
    out.extend_from_slice(&committed.to_le_bytes());
    out.extend_from_slice(&(pending.len() as u32).to_le_bytes());
    out.extend_from_slice(pending);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

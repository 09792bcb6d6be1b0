//! `RecordDeAggregation`: KPL aggregated records, then JSON or DELIMITED sub-records.
//!
//! Invariants:
//! - A KPL aggregate (magic `F3 89 9A C2` + protobuf `AggregatedRecord` + MD5 of the protobuf)
//!   is split only when the magic, the MD5 and the whole protobuf structure check out (every
//!   record has data and in-range table indexes); anything else is an ordinary record, as the
//!   KPL/KCL de-aggregators do.
//! - JSON mode yields the exact bytes of each top-level object (the whitespace and newlines
//!   between objects are stripped); a top-level value that is not an object, or a syntax error,
//!   fails the record. DELIMITED mode splits on the delimiter and discards empty pieces.
//! - More than [`MAX_SUB_RECORDS`] sub-records in one (KPL user) record fails that record.
//! - Sub-records are zero-copy slices of the input.

use bytes::Bytes;
use md5::{Digest as _, Md5};

use crate::{MAX_SUB_RECORDS, Outcomes, Work, codes, error_output};

/// `SubRecordType`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SubRecordType {
    /// Concatenated or newline-separated JSON objects.
    Json,
    /// Pieces separated by this (base64-decoded) delimiter.
    Delimited(Vec<u8>),
}

/// The KPL aggregated record magic number.
pub(crate) const KPL_MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const MD5_LEN: usize = 16;

pub(crate) fn process(w: Work, kind: &SubRecordType, out: &mut Vec<Work>, o: &mut Outcomes) {
    let parts = match kpl_deaggregate(&w.data) {
        Some(parts) => parts,
        None => vec![w.data.clone()],
    };
    for part in parts {
        let pw = w.with_data(part);
        let subs = match kind {
            SubRecordType::Json => match split_json(&pw.data) {
                Ok(subs) => subs,
                Err(SplitError::InvalidJson(msg)) => {
                    o.fail(
                        &pw,
                        error_output::PROCESSING_FAILED,
                        codes::DEAGGREGATION_INVALID_JSON,
                        msg,
                    );
                    continue;
                }
                Err(SplitError::TooMany) => {
                    too_many(&pw, o);
                    continue;
                }
            },
            SubRecordType::Delimited(delimiter) => match split_delimited(&pw.data, delimiter) {
                Some(subs) => subs,
                None => {
                    too_many(&pw, o);
                    continue;
                }
            },
        };
        out.extend(subs.into_iter().map(|s| pw.with_data(s)));
    }
}

fn too_many(w: &Work, o: &mut Outcomes) {
    o.fail(
        w,
        error_output::PROCESSING_FAILED,
        codes::DEAGGREGATION_TOO_MANY,
        format!("The record holds more than {MAX_SUB_RECORDS} sub-records."),
    );
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SplitError {
    InvalidJson(String),
    TooMany,
}

/// Splits consecutive JSON objects (`{..}{..}` or JSON lines).
pub(crate) fn split_json(data: &Bytes) -> Result<Vec<Bytes>, SplitError> {
    // JSON text is UTF-8; serde_json skips ignored strings without checking them, so check
    // here or invalid bytes would pass as part of a "JSON" sub-record.
    let text = std::str::from_utf8(data).map_err(|e| {
        SplitError::InvalidJson(format!(
            "JSON de-aggregation failed: the record is not UTF-8: {e}"
        ))
    })?;
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<serde::de::IgnoredAny>();
    let mut subs = Vec::new();
    let mut prev = 0;
    while let Some(item) = stream.next() {
        if let Err(e) = item {
            return Err(SplitError::InvalidJson(format!(
                "JSON de-aggregation failed after {} sub-record(s): {e}",
                subs.len()
            )));
        }
        let end = stream.byte_offset();
        let start = prev
            + data[prev..end]
                .iter()
                .take_while(|b| b.is_ascii_whitespace())
                .count();
        if data.get(start) != Some(&b'{') {
            return Err(SplitError::InvalidJson(format!(
                "JSON de-aggregation expects consecutive JSON objects; sub-record {} is not an object.",
                subs.len() + 1
            )));
        }
        if subs.len() == MAX_SUB_RECORDS {
            return Err(SplitError::TooMany);
        }
        subs.push(data.slice(start..end));
        prev = end;
    }
    Ok(subs)
}

/// Splits on `delimiter`, discarding empty pieces; `None` beyond [`MAX_SUB_RECORDS`].
pub(crate) fn split_delimited(data: &Bytes, delimiter: &[u8]) -> Option<Vec<Bytes>> {
    let mut subs = Vec::new();
    let mut start = 0;
    let push = |from: usize, to: usize, subs: &mut Vec<Bytes>| {
        if to > from {
            if subs.len() == MAX_SUB_RECORDS {
                return false;
            }
            subs.push(data.slice(from..to));
        }
        true
    };
    let mut i = 0;
    while i + delimiter.len() <= data.len() {
        if data[i..].starts_with(delimiter) {
            if !push(start, i, &mut subs) {
                return None;
            }
            i += delimiter.len();
            start = i;
        } else {
            i += 1;
        }
    }
    if !push(start, data.len(), &mut subs) {
        return None;
    }
    Some(subs)
}

/// The user records of a KPL aggregated record, or `None` if `data` is not a valid aggregate.
pub(crate) fn kpl_deaggregate(data: &Bytes) -> Option<Vec<Bytes>> {
    if data.len() < KPL_MAGIC.len() + MD5_LEN || data[..KPL_MAGIC.len()] != KPL_MAGIC {
        return None;
    }
    let body_end = data.len() - MD5_LEN;
    let body = &data[KPL_MAGIC.len()..body_end];
    if Md5::digest(body).as_slice() != &data[body_end..] {
        return None;
    }
    let ranges = parse_aggregated(body)?;
    Some(
        ranges
            .into_iter()
            .map(|(s, e)| data.slice(KPL_MAGIC.len() + s..KPL_MAGIC.len() + e))
            .collect(),
    )
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// One protobuf field: number and value.
enum Field {
    Varint(u64),
    /// Byte range of a length-delimited value.
    Bytes(usize, usize),
    Fixed,
}

fn read_field(buf: &[u8], pos: &mut usize) -> Option<(u64, Field)> {
    let key = read_varint(buf, pos)?;
    let number = key >> 3;
    if number == 0 {
        return None;
    }
    let field = match key & 7 {
        0 => Field::Varint(read_varint(buf, pos)?),
        1 | 5 => {
            let n = if key & 7 == 1 { 8 } else { 4 };
            *pos = pos.checked_add(n).filter(|p| *p <= buf.len())?;
            Field::Fixed
        }
        2 => {
            let len = usize::try_from(read_varint(buf, pos)?).ok()?;
            let start = *pos;
            let end = start.checked_add(len).filter(|e| *e <= buf.len())?;
            *pos = end;
            Field::Bytes(start, end)
        }
        _ => return None,
    };
    Some((number, field))
}

/// Parses `AggregatedRecord { repeated string partition_key_table = 1; repeated string
/// explicit_hash_key_table = 2; repeated Record records = 3; }` and returns the data ranges.
fn parse_aggregated(buf: &[u8]) -> Option<Vec<(usize, usize)>> {
    let mut pos = 0;
    let (mut partition_keys, mut hash_keys) = (0u64, 0u64);
    let mut records = Vec::new();
    while pos < buf.len() {
        match read_field(buf, &mut pos)? {
            (1, Field::Bytes(..)) => partition_keys += 1,
            (2, Field::Bytes(..)) => hash_keys += 1,
            (3, Field::Bytes(s, e)) => records.push(parse_record(&buf[s..e], s)?),
            (1..=3, _) => return None,
            _ => {}
        }
    }
    records
        .into_iter()
        .map(|(pk, ehk, data)| {
            let ok = pk < partition_keys && ehk.is_none_or(|i| i < hash_keys);
            ok.then_some(data)
        })
        .collect()
}

/// Parses `Record { required uint64 partition_key_index = 1; optional uint64
/// explicit_hash_key_index = 2; required bytes data = 3; repeated Tag tags = 4; }`.
fn parse_record(buf: &[u8], offset: usize) -> Option<(u64, Option<u64>, (usize, usize))> {
    let mut pos = 0;
    let (mut pk, mut ehk, mut data) = (None, None, None);
    while pos < buf.len() {
        match read_field(buf, &mut pos)? {
            (1, Field::Varint(v)) => pk = Some(v),
            (2, Field::Varint(v)) => ehk = Some(v),
            (3, Field::Bytes(s, e)) => data = Some((offset + s, offset + e)),
            (4, Field::Bytes(..)) => {}
            (1..=4, _) => return None,
            _ => {}
        }
    }
    Some((pk?, ehk, data?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn json_split_strips_whitespace_and_keeps_bytes() {
        let subs = split_json(&b("{\"a\":1}{\"a\":2}\n{\"b\": [1, 2]}\r\n  {}\n")).unwrap();
        assert_eq!(
            subs,
            vec![
                b("{\"a\":1}"),
                b("{\"a\":2}"),
                b("{\"b\": [1, 2]}"),
                b("{}")
            ]
        );
        assert_eq!(split_json(&b("  \n")).unwrap(), Vec::<Bytes>::new());
    }

    #[test]
    fn json_split_refuses_arrays_scalars_and_garbage() {
        for bad in [
            "[{\"a\":1},{\"a\":2}]",
            "{\"a\":1} 42",
            "{\"a\":1}{\"a\":",
            "not json",
        ] {
            assert!(
                matches!(split_json(&b(bad)), Err(SplitError::InvalidJson(_))),
                "{bad}"
            );
        }
        // Invalid UTF-8 inside a string is not JSON (serde_json skips ignored strings).
        assert!(matches!(
            split_json(&Bytes::from_static(b"{\"a\":\"\xa6\"}")),
            Err(SplitError::InvalidJson(_))
        ));
        let many = "{}".repeat(MAX_SUB_RECORDS + 1);
        assert_eq!(split_json(&b(&many)), Err(SplitError::TooMany));
        assert_eq!(
            split_json(&b(&"{}".repeat(MAX_SUB_RECORDS))).unwrap().len(),
            MAX_SUB_RECORDS
        );
    }

    #[test]
    fn delimited_split() {
        assert_eq!(
            split_delimited(&b("a####b########c####"), b"####").unwrap(),
            vec![b("a"), b("b"), b("c")]
        );
        assert_eq!(split_delimited(&b("abc"), b"####").unwrap(), vec![b("abc")]);
        assert_eq!(
            split_delimited(&b("a|b|"), b"|").unwrap(),
            vec![b("a"), b("b")]
        );
        assert!(split_delimited(&b(&"x|".repeat(MAX_SUB_RECORDS + 1)), b"|").is_none());
        assert_eq!(
            split_delimited(&b(&"x|".repeat(MAX_SUB_RECORDS)), b"|")
                .unwrap()
                .len(),
            MAX_SUB_RECORDS
        );
    }

    #[test]
    fn varint() {
        let mut pos = 0;
        assert_eq!(read_varint(&[0xac, 0x02], &mut pos), Some(300));
        assert_eq!(pos, 2);
        assert_eq!(read_varint(&[0x80], &mut 0), None);
    }

    #[test]
    fn non_aggregates_pass_through() {
        assert!(kpl_deaggregate(&b("plain")).is_none());
        let mut bad = KPL_MAGIC.to_vec();
        bad.extend([0u8; 20]);
        assert!(kpl_deaggregate(&Bytes::from(bad)).is_none());
    }
}

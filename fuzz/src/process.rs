//! The record processors of `lakehose-process`, driven through the public
//! `ProcessorChain::process`: CloudWatch Logs decompression and extraction, KPL
//! de-aggregation, JSON and DELIMITED de-aggregation.

use std::collections::BTreeSet;

use base64::Engine as _;
use bytes::Bytes;
use lakehose_process::{
    InputRecord, LambdaEndpoints, MAX_DECOMPRESSED_BYTES, MAX_SUB_RECORDS, ProcessedBatch,
    ProcessorChain, codes, error_output,
};
use serde_json::{Value, json};

use crate::{encode, is_subslice, offset_in, split_selector};

fn chain(processors: Value) -> ProcessorChain {
    let config = json!({ "Enabled": true, "Processors": processors });
    ProcessorChain::from_config(
        Some(&config),
        false,
        &LambdaEndpoints::new(),
        "arn:aws:firehose:us-east-1:000000000000:deliverystream/fuzz",
        "us-east-1",
    )
    .unwrap_or_else(|e| panic!("harness configuration rejected: {e}"))
}

fn processor(kind: &str, params: &[(&str, &str)]) -> Value {
    let params: Vec<Value> = params
        .iter()
        .map(|(n, v)| json!({ "ParameterName": n, "ParameterValue": v }))
        .collect();
    json!({ "Type": kind, "Parameters": params })
}

fn run(chain: &ProcessorChain, records: &[Bytes]) -> ProcessedBatch {
    let input: Vec<InputRecord> = records
        .iter()
        .enumerate()
        .map(|(i, data)| InputRecord {
            id: i as u64 + 1,
            arrival_ms: 1_700_000_000_000 + i as i64,
            data: data.clone(),
        })
        .collect();
    let batch = crate::rt::block_on(chain.process(&input));
    check_accounting(&input, &batch);
    batch
}

/// The crate's "no record is lost" and "order is kept" invariants.
fn check_accounting(input: &[InputRecord], batch: &ProcessedBatch) {
    let ids: BTreeSet<u64> = input.iter().map(|r| r.id).collect();
    let mut seen = BTreeSet::new();
    seen.extend(batch.records.iter().map(|r| r.source_id));
    seen.extend(batch.dropped.iter().copied());
    seen.extend(batch.failed.iter().map(|f| f.source_id));
    assert_eq!(seen, ids, "every input id ends in exactly the input ids");
    assert!(
        batch
            .records
            .windows(2)
            .all(|w| w[0].source_id <= w[1].source_id),
        "output records keep input order"
    );
    for f in &batch.failed {
        assert_eq!(f.attempts_made, 1);
        assert!(
            f.error_output_type == error_output::PROCESSING_FAILED
                || f.error_output_type == error_output::DECOMPRESSION_FAILED
        );
        let doc: Value = serde_json::from_str(&f.to_error_document(1)).expect("error document");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(doc["rawData"].as_str().expect("rawData"))
            .expect("rawData is base64");
        assert_eq!(raw, f.raw_data, "the error document carries the raw data");
    }
}

/// Independent gunzip (flate2 directly), `None` when not gzip.
fn gunzip(data: &[u8]) -> Option<Vec<u8>> {
    use std::io::Read as _;
    if !data.starts_with(&[0x1f, 0x8b]) {
        return None;
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data)
        .take(MAX_DECOMPRESSED_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}

/// Target `cwl`: selector byte (bits 0-1: `Decompression` alone, with
/// `CloudWatchLogProcessing` without / with `DataMessageExtraction`; bit 2: the harness gzips
/// the rest; bit 3: send the record twice), then the record.
pub fn cwl(data: &[u8]) {
    let Some((sel, rest)) = split_selector(data) else {
        return;
    };
    let mode = sel & 3;
    let mut processors = vec![processor("Decompression", &[("CompressionFormat", "GZIP")])];
    if mode > 0 {
        let extract = if mode >= 2 { "true" } else { "false" };
        processors.push(processor(
            "CloudWatchLogProcessing",
            &[("DataMessageExtraction", extract)],
        ));
    }
    let chain = chain(Value::Array(processors));
    let record = if sel & 4 != 0 {
        Bytes::from(encode::gzip(rest))
    } else {
        Bytes::copy_from_slice(rest)
    };
    let copies = if sel & 8 != 0 { 2 } else { 1 };
    let batch = run(&chain, &vec![record.clone(); copies]);

    let decompressed = gunzip(&record);
    if sel & 4 != 0 {
        assert_eq!(decompressed.as_deref(), Some(rest), "harness gzip");
    }
    let Some(d) = decompressed.filter(|d| d.len() <= MAX_DECOMPRESSED_BYTES) else {
        // Not gzip (or a bomb): every copy fails as a decompression failure, unchanged.
        assert!(batch.records.is_empty() && batch.dropped.is_empty());
        assert_eq!(batch.failed.len(), copies);
        for f in &batch.failed {
            assert_eq!(f.error_output_type, error_output::DECOMPRESSION_FAILED);
            assert!(
                f.error_code == codes::DECOMPRESSION_FAILED
                    || f.error_code == codes::DECOMPRESSION_TOO_LARGE
            );
            assert_eq!(
                f.raw_data, record,
                "a failed record keeps its original bytes"
            );
        }
        return;
    };
    for f in &batch.failed {
        assert_eq!(
            f.error_code,
            codes::CLOUDWATCH_LOGS_INVALID,
            "{}",
            f.error_message
        );
        assert_eq!(f.error_output_type, error_output::PROCESSING_FAILED);
        assert_eq!(f.raw_data, d, "a failed payload is the decompressed record");
        assert!(mode > 0);
    }
    // The crate skips unknown members unchecked (invalid UTF-8 and lone surrogate escapes
    // pass there), so judge the payload leniently and skip what cannot be judged.
    let value: Option<Value> = match serde_json::from_str(&String::from_utf8_lossy(&d)) {
        Ok(v) => Some(v),
        Err(e) if e.to_string().contains("surrogate") => return,
        Err(_) => None,
    };
    let message_type = value
        .as_ref()
        .and_then(|v| v.get("messageType"))
        .and_then(Value::as_str);
    if !batch.dropped.is_empty() {
        // Dropped: a control message, or a data message without events.
        let v = value.as_ref().expect("a dropped record is JSON");
        if v.is_object() {
            assert!(
                message_type == Some("CONTROL_MESSAGE")
                    || (mode >= 2
                        && message_type == Some("DATA_MESSAGE")
                        && v["logEvents"].as_array().is_none_or(Vec::is_empty)),
                "dropped a record that is not a control message: {v}"
            );
        }
    }
    let per_copy = batch.records.len() / copies;
    assert_eq!(batch.records.len(), per_copy * copies);
    if mode < 2 {
        for r in &batch.records {
            assert_eq!(
                r.data, d,
                "without extraction the record is the decompressed payload"
            );
        }
        if mode == 1 && !batch.records.is_empty() && value.as_ref().is_some_and(Value::is_object) {
            assert_eq!(message_type, Some("DATA_MESSAGE"));
        }
    } else if !batch.records.is_empty() {
        let total: usize = batch.records.iter().map(|r| r.data.len()).sum();
        assert!(
            total <= d.len() * copies,
            "messages are never longer than the payload"
        );
        if let Some(v) = value.as_ref().filter(|v| v.is_object()) {
            assert_eq!(message_type, Some("DATA_MESSAGE"));
            let events = v["logEvents"].as_array().expect("logEvents");
            assert_eq!(events.len(), per_copy, "one record per log event");
            for (r, e) in batch.records.iter().zip(events.iter().cycle()) {
                // (serde also accepts an event in sequence form, `["message"]`.)
                if e.is_object() {
                    let message = e["message"].as_str().expect("message");
                    assert_eq!(
                        &r.data[..],
                        message.as_bytes(),
                        "record = the event's message"
                    );
                }
            }
        }
    }
}

/// The DELIMITED delimiter the KPL target splits on: 16 NULs, which harness-built user
/// records (split on NUL) never contain, so each one comes out whole.
const KPL_DELIMITER: [u8; 16] = [0; 16];

/// Target `kpl_deagg`: selector byte, then
/// - `0`: a raw record;
/// - `1`: an `AggregatedRecord` protobuf body, wrapped by the harness in magic + MD5 so the
///   protobuf parser is reached;
/// - `2`: NUL-separated user records, aggregated by the harness: de-aggregation must yield
///   exactly the non-empty ones, in order.
///
/// Always: sub-records are zero-copy, ordered, non-overlapping slices of the input.
pub fn kpl_deagg(data: &[u8]) {
    let Some((sel, rest)) = split_selector(data) else {
        return;
    };
    let delimiter = base64::engine::general_purpose::STANDARD.encode(KPL_DELIMITER);
    let chain = chain(json!([processor(
        "RecordDeAggregation",
        &[("SubRecordType", "DELIMITED"), ("Delimiter", &delimiter)]
    )]));
    let (record, users): (Bytes, Option<Vec<&[u8]>>) = match sel % 3 {
        0 => (Bytes::copy_from_slice(rest), None),
        1 => (Bytes::from(encode::kpl_envelope(rest)), None),
        _ => {
            let users: Vec<&[u8]> = rest.split(|b| *b == 0).collect();
            (Bytes::from(encode::kpl_aggregate(&users)), Some(users))
        }
    };
    let batch = run(&chain, std::slice::from_ref(&record));
    check_slices(&record, batch.records.iter().map(|r| &r.data[..]));
    if let Some(users) = users {
        let want: Vec<&[u8]> = users.into_iter().filter(|u| !u.is_empty()).collect();
        let got: Vec<&[u8]> = batch.records.iter().map(|r| &r.data[..]).collect();
        assert_eq!(got, want, "KPL round trip");
        assert!(batch.failed.is_empty());
    }
}

/// Outputs are zero-copy slices of `whole`, in order, not overlapping; returns their ranges.
fn check_slices<'a>(whole: &[u8], parts: impl Iterator<Item = &'a [u8]>) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    let mut prev_end = 0;
    for p in parts {
        assert!(
            is_subslice(whole, p),
            "a sub-record is not a slice of its record"
        );
        let start = offset_in(whole, p);
        assert!(start >= prev_end, "sub-records overlap or are out of order");
        prev_end = start + p.len();
        ranges.push((start, prev_end));
    }
    ranges
}

/// Non-empty pieces of `data` split on `delimiter`, scanning left to right.
fn reference_split<'a>(data: &'a [u8], delimiter: &[u8]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    let mut rest = data;
    loop {
        match rest.windows(delimiter.len()).position(|w| w == delimiter) {
            Some(i) => {
                pieces.push(&rest[..i]);
                rest = &rest[i + delimiter.len()..];
            }
            None => {
                pieces.push(rest);
                break;
            }
        }
    }
    pieces.retain(|p| !p.is_empty());
    pieces
}

/// A record that starts with the KPL magic may be an aggregate, de-aggregated first (the
/// `kpl_deagg` target checks that): only the slice invariants are checked then.
fn kpl_magic(record: &Bytes, batch: &ProcessedBatch) -> bool {
    if !record.starts_with(&encode::KPL_MAGIC) {
        return false;
    }
    check_slices(record, batch.records.iter().map(|r| &r.data[..]));
    true
}

/// Target `record_deagg`: selector byte (bit 0: JSON / DELIMITED); for DELIMITED one length
/// byte (1 + n % 4) and the delimiter; then the record.
/// - JSON: each sub-record is exactly one JSON object, everything between them is whitespace;
///   more than 500 fails the record whole.
/// - DELIMITED: the sub-records are the non-empty pieces between delimiters (checked against
///   a reference split); more than 500 fails the record whole.
pub fn record_deagg(data: &[u8]) {
    let Some((sel, rest)) = split_selector(data) else {
        return;
    };
    if sel & 1 == 0 {
        let chain = chain(json!([processor(
            "RecordDeAggregation",
            &[("SubRecordType", "JSON")]
        )]));
        let record = Bytes::copy_from_slice(rest);
        let batch = run(&chain, std::slice::from_ref(&record));
        if kpl_magic(&record, &batch) {
            return;
        }
        if let Some(f) = batch.failed.first() {
            assert_eq!(batch.failed.len(), 1);
            assert!(batch.records.is_empty(), "a failed record yields nothing");
            assert_eq!(f.raw_data, record);
            if f.error_code == codes::DEAGGREGATION_TOO_MANY {
                let objects = serde_json::Deserializer::from_slice(rest)
                    .into_iter::<serde::de::IgnoredAny>()
                    .take(MAX_SUB_RECORDS + 1)
                    .filter(Result::is_ok)
                    .count();
                assert!(objects > MAX_SUB_RECORDS);
            } else {
                assert_eq!(f.error_code, codes::DEAGGREGATION_INVALID_JSON);
            }
            return;
        }
        assert!(batch.records.len() <= MAX_SUB_RECORDS);
        let ranges = check_slices(&record, batch.records.iter().map(|r| &r.data[..]));
        for r in &batch.records {
            assert!(
                std::str::from_utf8(&r.data).is_ok(),
                "a sub-record is UTF-8"
            );
            match serde_json::from_slice::<Value>(&r.data) {
                Ok(v) => assert!(v.is_object(), "a sub-record is an object"),
                // A lone surrogate escape is valid JSON grammar that serde_json's Value refuses.
                Err(e) if e.to_string().contains("surrogate") => {
                    assert!(r.data.starts_with(b"{"));
                    serde_json::from_slice::<serde::de::IgnoredAny>(&r.data)
                        .expect("a sub-record is JSON");
                }
                Err(e) => panic!("a sub-record is not JSON: {e}"),
            }
        }
        let mut covered = vec![false; rest.len()];
        for (s, e) in ranges {
            covered[s..e].iter_mut().for_each(|c| *c = true);
        }
        assert!(
            rest.iter()
                .zip(&covered)
                .all(|(b, c)| *c || b.is_ascii_whitespace()),
            "only whitespace lies between JSON sub-records"
        );
    } else {
        let Some((&n, rest)) = rest.split_first() else {
            return;
        };
        let len = 1 + usize::from(n % 4);
        if rest.len() < len {
            return;
        }
        let (delimiter, body) = rest.split_at(len);
        let encoded = base64::engine::general_purpose::STANDARD.encode(delimiter);
        let chain = chain(json!([processor(
            "RecordDeAggregation",
            &[("SubRecordType", "DELIMITED"), ("Delimiter", &encoded)]
        )]));
        let record = Bytes::copy_from_slice(body);
        let batch = run(&chain, std::slice::from_ref(&record));
        if kpl_magic(&record, &batch) {
            return;
        }
        let want = reference_split(body, delimiter);
        if want.len() > MAX_SUB_RECORDS {
            assert!(batch.records.is_empty());
            assert_eq!(batch.failed.len(), 1);
            assert_eq!(batch.failed[0].error_code, codes::DEAGGREGATION_TOO_MANY);
            return;
        }
        assert!(batch.failed.is_empty());
        check_slices(&record, batch.records.iter().map(|r| &r.data[..]));
        let got: Vec<&[u8]> = batch.records.iter().map(|r| &r.data[..]).collect();
        assert_eq!(got, want, "DELIMITED split");
    }
}

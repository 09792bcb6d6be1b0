//! `Decompression` (GZIP) and `CloudWatchLogProcessing`.
//!
//! Invariants: decompression reads at most [`crate::MAX_DECOMPRESSED_BYTES`] + 1 bytes of
//! output per record, so a gzip bomb costs bounded memory and fails the record
//! (`decompression-failed`); a record that is not gzip fails the same way with its original
//! (compressed) bytes. A decompressed CloudWatch Logs `CONTROL_MESSAGE` is dropped. With
//! `DataMessageExtraction=true` each log event's `message` becomes one record, in order; a
//! `DATA_MESSAGE` with no events is counted as dropped.

use std::io::Read as _;

use bytes::Bytes;
use serde::Deserialize;

use crate::{MAX_DECOMPRESSED_BYTES, Outcomes, Work, codes, error_output};

#[derive(Debug)]
pub(crate) enum GunzipError {
    Invalid(String),
    TooLarge,
}

/// Gunzips `data` (one or more concatenated members), refusing more than `cap` bytes of output.
pub(crate) fn gunzip(data: &[u8], cap: usize) -> Result<Vec<u8>, GunzipError> {
    if data.len() < 2 || data[0] != 0x1f || data[1] != 0x8b {
        return Err(GunzipError::Invalid(
            "not gzip data (bad magic bytes)".into(),
        ));
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data)
        .take(cap as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| GunzipError::Invalid(e.to_string()))?;
    if out.len() > cap {
        return Err(GunzipError::TooLarge);
    }
    Ok(out)
}

#[derive(Deserialize)]
struct MessageType {
    #[serde(rename = "messageType")]
    message_type: Option<String>,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(rename = "messageType")]
    message_type: String,
    #[serde(rename = "logEvents", default)]
    log_events: Vec<LogEvent>,
}

#[derive(Deserialize)]
struct LogEvent {
    message: String,
}

const CONTROL_MESSAGE: &str = "CONTROL_MESSAGE";
const DATA_MESSAGE: &str = "DATA_MESSAGE";

/// Runs decompression (when on) and CloudWatch Logs processing (`Some(extract)` when on).
/// `budget` is what is left of the batch's [`crate::MAX_BATCH_DECOMPRESSED_BYTES`]: a record
/// that would decompress past it fails like one past the per-record cap, so a batch of
/// small bombs cannot make the server hold (and write) a thousand times its size.
pub(crate) fn process(
    w: Work,
    decompression: bool,
    cloudwatch_logs: Option<bool>,
    budget: &mut usize,
    out: &mut Vec<Work>,
    o: &mut Outcomes,
) {
    let w = if decompression {
        let cap = MAX_DECOMPRESSED_BYTES.min(*budget);
        match gunzip(&w.data, cap) {
            Ok(d) => {
                *budget -= d.len();
                w.with_data(Bytes::from(d))
            }
            Err(GunzipError::TooLarge) if cap < MAX_DECOMPRESSED_BYTES => {
                o.fail(
                    &w,
                    error_output::DECOMPRESSION_FAILED,
                    codes::DECOMPRESSION_TOO_LARGE,
                    format!(
                        "The batch's records decompress to more than {} bytes.",
                        crate::MAX_BATCH_DECOMPRESSED_BYTES
                    ),
                );
                return;
            }
            Err(GunzipError::Invalid(e)) => {
                o.fail(
                    &w,
                    error_output::DECOMPRESSION_FAILED,
                    codes::DECOMPRESSION_FAILED,
                    format!("The record could not be decompressed as GZIP: {e}"),
                );
                return;
            }
            Err(GunzipError::TooLarge) => {
                o.fail(
                    &w,
                    error_output::DECOMPRESSION_FAILED,
                    codes::DECOMPRESSION_TOO_LARGE,
                    format!("The record decompresses to more than {MAX_DECOMPRESSED_BYTES} bytes."),
                );
                return;
            }
        }
    } else {
        w
    };

    let Some(extract) = cloudwatch_logs else {
        // Decompression alone: the decompressed bytes are the record, except that
        // CloudWatch Logs control messages (subscription health checks) are dropped.
        let is_control = serde_json::from_slice::<MessageType>(&w.data)
            .ok()
            .and_then(|m| m.message_type)
            .is_some_and(|t| t == CONTROL_MESSAGE);
        if is_control {
            o.drop_record(&w);
        } else {
            out.push(w);
        }
        return;
    };

    let payload: Payload = match serde_json::from_slice(&w.data) {
        Ok(p) => p,
        Err(e) => {
            o.fail(
                &w,
                error_output::PROCESSING_FAILED,
                codes::CLOUDWATCH_LOGS_INVALID,
                format!(
                    "The decompressed record is not a CloudWatch Logs subscription payload: {e}"
                ),
            );
            return;
        }
    };
    match payload.message_type.as_str() {
        CONTROL_MESSAGE => o.drop_record(&w),
        DATA_MESSAGE if extract => {
            for event in payload.log_events {
                out.push(w.with_data(Bytes::from(event.message.into_bytes())));
            }
        }
        DATA_MESSAGE => out.push(w),
        other => o.fail(
            &w,
            error_output::PROCESSING_FAILED,
            codes::CLOUDWATCH_LOGS_INVALID,
            format!("Unknown CloudWatch Logs messageType {other:?}."),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gunzip_round_trip_and_concatenated_members() {
        assert_eq!(gunzip(&gzip(b"hello"), 100).unwrap(), b"hello");
        let mut two = gzip(b"ab");
        two.extend(gzip(b"cd"));
        assert_eq!(gunzip(&two, 100).unwrap(), b"abcd");
    }

    #[test]
    fn gunzip_refuses_garbage_truncation_and_bombs() {
        assert!(matches!(gunzip(b"", 10), Err(GunzipError::Invalid(_))));
        assert!(matches!(
            gunzip(b"plain text", 10),
            Err(GunzipError::Invalid(_))
        ));
        let z = gzip(b"hello world hello world");
        assert!(matches!(
            gunzip(&z[..z.len() - 6], 100),
            Err(GunzipError::Invalid(_))
        ));
        let bomb = gzip(&vec![0u8; 1 << 20]);
        assert!(bomb.len() < 4096);
        assert!(matches!(gunzip(&bomb, 1 << 19), Err(GunzipError::TooLarge)));
        assert_eq!(gunzip(&bomb, 1 << 20).unwrap().len(), 1 << 20);
    }
}

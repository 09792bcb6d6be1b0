//! Fuzz target bodies for every decoder of Lakehose.
//!
//! Each `pub fn <target>(data: &[u8])` is one cargo-fuzz target (`fuzz_targets/<target>.rs`
//! only calls it) and is also run over the committed corpus by `tests/replay.rs`, so CI replays
//! every interesting input without libFuzzer. A body never panics on any input unless the
//! decoder it drives broke one of its invariants; see README.md for what each one asserts.
//!
//! Inputs usually start with a selector byte that picks a mode (raw bytes, or bytes that the
//! harness wraps into a well-formed envelope — gzip, a KPL aggregate with its MD5, a segment
//! with valid CRCs — so that the fuzzer reaches the layer behind the checksum).

#![forbid(unsafe_code)]

mod api;
mod compression;
pub mod encode;
mod log;
mod prefix;
mod process;
mod rt;

pub use api::{api_json, api_put_records};
pub use compression::decompress;
pub use log::log_recovery;
pub use prefix::prefix;
pub use process::{cwl, kpl_deagg, record_deagg};

/// A target body.
pub type Target = fn(&[u8]);

/// Every target, by the name of its `fuzz_targets/<name>.rs` and `corpus/<name>/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("api_json", api_json),
    ("api_put_records", api_put_records),
    ("decompress", decompress),
    ("cwl", cwl),
    ("kpl_deagg", kpl_deagg),
    ("record_deagg", record_deagg),
    ("prefix", prefix),
    ("log_recovery", log_recovery),
];

/// Splits `data` into its selector byte and the rest (`None` for empty input).
fn split_selector(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(s, rest)| (*s, rest))
}

/// JSON equality where numbers compare by value with a relative tolerance on floats:
/// serde_json's default float parser is not correctly rounded for every input, so a
/// serialize -> parse round trip of an opaque JSON member may move a float by one ulp.
fn json_eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if x.is_f64() || y.is_f64() {
                let (x, y) = (
                    x.as_f64().unwrap_or(f64::NAN),
                    y.as_f64().unwrap_or(f64::NAN),
                );
                x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs())
            } else {
                x == y
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Whether `part` lies inside `whole`'s memory (a zero-copy slice of it).
fn is_subslice(whole: &[u8], part: &[u8]) -> bool {
    let (w, p) = (whole.as_ptr() as usize, part.as_ptr() as usize);
    part.is_empty() || (p >= w && p + part.len() <= w + whole.len())
}

/// Offset of `part` (a subslice) inside `whole`.
fn offset_in(whole: &[u8], part: &[u8]) -> usize {
    part.as_ptr() as usize - whole.as_ptr() as usize
}

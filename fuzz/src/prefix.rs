//! Firehose prefix expressions: parsing and validation (`lakehose_api::prefix`) and their
//! evaluation into object keys (`lakehose_sinks::keys`).

use std::collections::BTreeMap;

use chrono_tz::Tz;
use lakehose_api::prefix::{
    MAX_EVALUATED_PREFIX_LEN, PrefixTemplate, Segment, parse_timestamp_pattern, validate_prefixes,
};
use lakehose_sinks::keys::{
    KeyContext, KeyError, error_object_key, error_prefix, evaluate_prefix, format_java_datetime,
    object_key,
};

use crate::split_selector;

/// Zones with DST, half- and quarter-hour offsets, +14h and the date line.
const ZONES: [Tz; 8] = [
    Tz::UTC,
    Tz::America__New_York,
    Tz::Asia__Kolkata,
    Tz::Asia__Kathmandu,
    Tz::Australia__Lord_Howe,
    Tz::Pacific__Chatham,
    Tz::Pacific__Kiritimati,
    Tz::America__St_Johns,
];

/// Target `prefix`: selector byte (bit 0: dynamic partitioning; bit 1: an ErrorOutputPrefix
/// follows; bits 2-4: time zone), 8 bytes of arrival time (ms, little-endian), then the
/// Prefix and, after a NUL, the ErrorOutputPrefix (lossy UTF-8).
///
/// Asserts: a parsed template prints back to exactly its text and has no empty or adjacent
/// literals; every timestamp pattern the parser accepts can be formatted; a validated pair
/// evaluates (given its partition keys) without any error other than "too long" / "time out
/// of range", deterministically, to at most 512 characters.
pub fn prefix(data: &[u8]) {
    let Some((sel, rest)) = split_selector(data) else {
        return;
    };
    if rest.len() < 8 {
        return;
    }
    let (time, text) = rest.split_at(8);
    let arrival_ms = i64::from_le_bytes(time.try_into().expect("8 bytes"));
    let dynamic = sel & 1 != 0;
    let zone = ZONES[usize::from(sel >> 2) % ZONES.len()];
    let text = String::from_utf8_lossy(text);
    let (prefix, error) = match text.split_once('\0') {
        Some((p, e)) if sel & 2 != 0 => (p, Some(e)),
        Some((p, _)) => (p, None),
        None => (&*text, None),
    };

    let instant =
        chrono::DateTime::from_timestamp_millis(arrival_ms).map(|t| t.with_timezone(&zone));
    for s in std::iter::once(prefix).chain(error) {
        let Ok(t) = PrefixTemplate::parse(s) else {
            continue;
        };
        check_template(s, &t);
        for segment in &t.segments {
            if let Segment::Timestamp(pattern) = segment {
                parse_timestamp_pattern(pattern).expect("an accepted pattern parses again");
                if let Some(instant) = &instant {
                    format_java_datetime(pattern, instant).unwrap_or_else(|e| {
                        panic!("accepted pattern {pattern:?} cannot be formatted: {e}")
                    });
                }
            }
        }
    }
    // The timestamp-pattern parser alone, on the whole text.
    if let (Ok(_), Some(instant)) = (parse_timestamp_pattern(prefix), &instant) {
        format_java_datetime(prefix, instant)
            .unwrap_or_else(|e| panic!("accepted pattern {prefix:?} cannot be formatted: {e}"));
    }

    let Ok((data_t, error_t)) = validate_prefixes(Some(prefix), error, dynamic) else {
        return;
    };
    let mut keys = BTreeMap::new();
    for segment in &data_t.segments {
        if let Segment::PartitionKeyFromQuery(k) | Segment::PartitionKeyFromLambda(k) = segment {
            keys.insert(k.clone(), format!("v{}", k.len()));
        }
    }
    let ctx = KeyContext {
        stream_name: "fuzz-stream",
        stream_version: 7,
        oldest_arrival_ms: arrival_ms,
        time_zone: zone,
        seed: arrival_ms as u64 ^ 0x5eed,
        error_output_type: Some("processing-failed"),
        partition_keys: &keys,
    };
    let evaluated = allowed_prefix(evaluate_prefix(&data_t, &ctx));
    assert_eq!(
        evaluated,
        allowed(evaluate_prefix(&data_t, &ctx)),
        "evaluation is deterministic"
    );
    if let Some(p) = &evaluated {
        let key =
            allowed(object_key(&data_t, &ctx, ".gz")).expect("the key of an evaluated prefix");
        assert!(key.starts_with(p.as_str()) && key.ends_with(".gz"));
        if !data_t.has_expressions() {
            assert!(
                p.starts_with(&data_t.literal_text()),
                "a literal prefix is kept"
            );
        }
    }
    let err = allowed_prefix(error_prefix(&data_t, error_t.as_ref(), &ctx));
    if let Some(e) = &err {
        let key = allowed(error_object_key(&data_t, error_t.as_ref(), &ctx, ""))
            .expect("the key of an evaluated error prefix");
        assert!(key.starts_with(e.as_str()));
        if error_t.is_none() {
            assert!(e.contains("processing-failed/"));
        }
    }
}

/// Parsing is exact: the template prints back to its text, literals are never empty and
/// never adjacent.
fn check_template(s: &str, t: &PrefixTemplate) {
    assert_eq!(t.to_string(), s, "a template prints back to its text");
    assert_eq!(
        PrefixTemplate::parse(&t.to_string()).as_ref(),
        Ok(t),
        "parse . print . parse = parse"
    );
    let mut previous_literal = false;
    for segment in &t.segments {
        let literal = matches!(segment, Segment::Literal(_));
        if let Segment::Literal(text) = segment {
            assert!(!text.is_empty(), "empty literal");
        }
        assert!(!(literal && previous_literal), "adjacent literals");
        previous_literal = literal;
    }
    if !s.contains("!{") {
        assert!(!t.has_expressions());
        assert_eq!(t.literal_text(), s);
    }
}

/// A key evaluation whose only allowed failures are length and time range.
fn allowed(r: Result<String, KeyError>) -> Option<String> {
    match r {
        Ok(s) => Some(s),
        Err(KeyError::PrefixTooLong { len, max }) => {
            assert!(len > max);
            None
        }
        Err(KeyError::TimestampOutOfRange(_)) => None,
        Err(e) => panic!("a validated prefix failed to evaluate: {e}"),
    }
}

/// An evaluated prefix: as [`allowed`], and at most [`MAX_EVALUATED_PREFIX_LEN`] characters.
fn allowed_prefix(r: Result<String, KeyError>) -> Option<String> {
    let s = allowed(r)?;
    assert!(
        s.chars().count() <= MAX_EVALUATED_PREFIX_LEN,
        "an evaluated prefix of {} characters was accepted",
        s.chars().count()
    );
    Some(s)
}

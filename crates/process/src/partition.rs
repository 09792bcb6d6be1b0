//! Partition key value validation.
//!
//! Invariant: a value accepted by [`validate_partition_value`] can be substituted into an
//! object key as one path segment without escaping it, creating extra folders, or walking up
//! the tree: it is 1..=512 bytes, not `.` or `..`, and has no `/`, `\` or control character.

/// Longest partition key value, in bytes.
pub const MAX_PARTITION_VALUE_BYTES: usize = 512;

/// Checks that a dynamic partition key value is a safe object-key segment. A refused value
/// fails its record with `DynamicPartitioning.InvalidPartitionKey` in `processing-failed`.
/// (Firehose itself accepts any value; Lakehose refuses the ones that would escape or split
/// the prefix on a local file system bucket.)
pub fn validate_partition_value(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err("partition key value is empty".into());
    }
    if v == "." || v == ".." {
        return Err(format!("partition key value {v:?} is not allowed"));
    }
    if v.len() > MAX_PARTITION_VALUE_BYTES {
        return Err(format!(
            "partition key value is {} bytes long; the limit is {MAX_PARTITION_VALUE_BYTES}",
            v.len()
        ));
    }
    if let Some(c) = v
        .chars()
        .find(|c| *c == '/' || *c == '\\' || c.is_control())
    {
        return Err(format!(
            "partition key value {v:?} contains the character {c:?}, which is not allowed"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_values() {
        for v in [
            "a",
            "customer-42",
            "2024",
            "…ünïcødé",
            "a.b",
            "...",
            "a b",
            &"x".repeat(512),
        ] {
            assert!(validate_partition_value(v).is_ok(), "{v}");
        }
    }

    #[test]
    fn refuses_unsafe_values() {
        for v in [
            "",
            ".",
            "..",
            "a/b",
            "/",
            "a\\b",
            "a\nb",
            "\0",
            "tab\there",
            "\u{7f}",
            &"x".repeat(513),
        ] {
            assert!(validate_partition_value(v).is_err(), "{v:?}");
        }
    }
}

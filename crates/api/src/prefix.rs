//! The Firehose S3 prefix expression language: parsing and validation.
//!
//! An S3 / ExtendedS3 destination's `Prefix` and `ErrorOutputPrefix` are
//! literal text mixed with `!{namespace:value}` expressions:
//!
//! | Expression | Meaning |
//! |---|---|
//! | `!{timestamp:PATTERN}` | the oldest record's arrival time, formatted with a Java `DateTimeFormatter` pattern |
//! | `!{firehose:random-string}` | 11 random characters, a new value for each use |
//! | `!{firehose:error-output-type}` | the error folder name (`processing-failed`, ...); `ErrorOutputPrefix` only |
//! | `!{partitionKeyFromQuery:KEY}` | a dynamic-partitioning key extracted by the JQ processor |
//! | `!{partitionKeyFromLambda:KEY}` | a dynamic-partitioning key returned by the Lambda processor |
//!
//! [`PrefixTemplate::parse`] checks the syntax of one field (including the
//! timestamp patterns) and [`validate_prefixes`] applies Firehose's rules that
//! tie the two fields together. Evaluation into object keys lives in the sinks
//! crate; it uses [`parse_timestamp_pattern`] so that the patterns accepted
//! here are exactly the ones it can format.

use std::fmt;

/// Maximum length, in characters, of `Prefix` and `ErrorOutputPrefix` as configured.
pub const MAX_PREFIX_LEN: usize = 1024;

/// Maximum length, in characters, of an evaluated prefix.
pub const MAX_EVALUATED_PREFIX_LEN: usize = 512;

/// Timestamp pattern Firehose appends to a `Prefix` without any timestamp
/// expression, and uses alone when no `Prefix` is set.
pub const DEFAULT_TIMESTAMP_PATTERN: &str = "yyyy/MM/dd/HH/";

/// The expression an `ErrorOutputPrefix` must contain.
pub const ERROR_OUTPUT_TYPE_EXPRESSION: &str = "!{firehose:error-output-type}";

const NAMESPACE_TIMESTAMP: &str = "timestamp";
const NAMESPACE_FIREHOSE: &str = "firehose";
const NAMESPACE_QUERY: &str = "partitionKeyFromQuery";
const NAMESPACE_LAMBDA: &str = "partitionKeyFromLambda";
const FIREHOSE_RANDOM_STRING: &str = "random-string";
const FIREHOSE_ERROR_OUTPUT_TYPE: &str = "error-output-type";

/// One piece of a prefix template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// Text copied as is (never empty; adjacent literals are merged).
    Literal(String),
    /// `!{timestamp:PATTERN}`, holding the Java `DateTimeFormatter` pattern.
    Timestamp(String),
    /// `!{firehose:random-string}`.
    RandomString,
    /// `!{firehose:error-output-type}`.
    ErrorOutputType,
    /// `!{partitionKeyFromQuery:KEY}`, holding the key name.
    PartitionKeyFromQuery(String),
    /// `!{partitionKeyFromLambda:KEY}`, holding the key name.
    PartitionKeyFromLambda(String),
}

impl fmt::Display for Segment {
    /// Writes the segment back in prefix syntax.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Segment::Literal(text) => f.write_str(text),
            Segment::Timestamp(pattern) => write!(f, "!{{{NAMESPACE_TIMESTAMP}:{pattern}}}"),
            Segment::RandomString => {
                write!(f, "!{{{NAMESPACE_FIREHOSE}:{FIREHOSE_RANDOM_STRING}}}")
            }
            Segment::ErrorOutputType => f.write_str(ERROR_OUTPUT_TYPE_EXPRESSION),
            Segment::PartitionKeyFromQuery(key) => write!(f, "!{{{NAMESPACE_QUERY}:{key}}}"),
            Segment::PartitionKeyFromLambda(key) => write!(f, "!{{{NAMESPACE_LAMBDA}:{key}}}"),
        }
    }
}

/// A parsed `Prefix` or `ErrorOutputPrefix`. The default (no segments) is the
/// empty / absent prefix.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PrefixTemplate {
    /// The pieces in order.
    pub segments: Vec<Segment>,
}

impl PrefixTemplate {
    /// Parses one prefix field. Does not check the length nor the rules that
    /// involve the other field or the destination (see [`validate_prefixes`]).
    pub fn parse(s: &str) -> Result<Self, PrefixError> {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut rest = s;
        let mut consumed = 0; // bytes of `s` before `rest`
        while let Some(open) = rest.find("!{") {
            literal.push_str(&rest[..open]);
            let start = consumed + open;
            let body_start = start + 2;
            let after = &s[body_start..];
            let Some(close) = after.find('}') else {
                return Err(PrefixError::UnclosedExpression {
                    position: char_position(s, start),
                });
            };
            let body = &after[..close];
            if let Some(nested) = body.find("!{") {
                return Err(PrefixError::NestedExpression {
                    position: char_position(s, body_start + nested),
                });
            }
            let segment = parse_expression(body)?;
            if !literal.is_empty() {
                segments.push(Segment::Literal(std::mem::take(&mut literal)));
            }
            segments.push(segment);
            consumed = body_start + close + 1;
            rest = &s[consumed..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        Ok(Self { segments })
    }

    /// True when the template is empty (no `Prefix` configured).
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// True when the template holds at least one `!{...}` expression.
    pub fn has_expressions(&self) -> bool {
        self.segments
            .iter()
            .any(|s| !matches!(s, Segment::Literal(_)))
    }

    /// True when the template holds a `!{timestamp:...}` expression.
    pub fn has_timestamp(&self) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s, Segment::Timestamp(_)))
    }

    /// True when the template holds `!{firehose:error-output-type}`.
    pub fn has_error_output_type(&self) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s, Segment::ErrorOutputType))
    }

    /// True when the template holds a `partitionKeyFromQuery` or
    /// `partitionKeyFromLambda` expression.
    pub fn has_partition_keys(&self) -> bool {
        self.segments.iter().any(|s| {
            matches!(
                s,
                Segment::PartitionKeyFromQuery(_) | Segment::PartitionKeyFromLambda(_)
            )
        })
    }

    /// The concatenated literal text (the whole prefix when it has no expressions).
    pub fn literal_text(&self) -> String {
        self.segments
            .iter()
            .filter_map(|s| match s {
                Segment::Literal(text) => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }
}

impl fmt::Display for PrefixTemplate {
    /// Writes the template back in prefix syntax (round-trips through `parse`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.segments.iter().try_for_each(|s| s.fmt(f))
    }
}

impl std::str::FromStr for PrefixTemplate {
    type Err = PrefixError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Which destination field a [`PrefixError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrefixField {
    /// `Prefix`.
    Prefix,
    /// `ErrorOutputPrefix`.
    ErrorOutputPrefix,
}

impl fmt::Display for PrefixField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PrefixField::Prefix => "Prefix",
            PrefixField::ErrorOutputPrefix => "ErrorOutputPrefix",
        })
    }
}

/// Why a prefix was rejected. The text is meant for the message of an
/// `InvalidArgumentException`.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum PrefixError {
    /// A field is longer than [`MAX_PREFIX_LEN`] characters.
    #[error("{field} must have length less than or equal to {max}, but has length {len}")]
    TooLong {
        /// The field.
        field: PrefixField,
        /// Its length in characters.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// A syntax error inside one field.
    #[error("{field} '{value}' is not a valid prefix: {source}")]
    InField {
        /// The field.
        field: PrefixField,
        /// The value as supplied.
        value: String,
        /// The syntax error.
        source: Box<PrefixError>,
    },
    /// `!{` without a closing `}`.
    #[error(
        "the expression opened by '!{{' at position {position} is not closed with '}}'; \
         expressions must have the form !{{namespace:value}}"
    )]
    UnclosedExpression {
        /// 0-based character position of the `!{`.
        position: usize,
    },
    /// `!{` inside another expression.
    #[error(
        "'!{{' at position {position} is inside another expression; \
         the sequence '!{{' can only appear as the start of an expression !{{namespace:value}}"
    )]
    NestedExpression {
        /// 0-based character position of the inner `!{`.
        position: usize,
    },
    /// `!{...}` without `namespace:`.
    #[error("'!{{{expression}}}' is not an expression of the form !{{namespace:value}}")]
    MissingNamespace {
        /// The text between the braces.
        expression: String,
    },
    /// An unknown namespace.
    #[error(
        "'!{{{namespace}:{value}}}' uses the unknown namespace '{namespace}'; \
         supported namespaces are timestamp, firehose, partitionKeyFromQuery and partitionKeyFromLambda"
    )]
    UnknownNamespace {
        /// The namespace.
        namespace: String,
        /// The value after the colon.
        value: String,
    },
    /// An unknown value in the `firehose` namespace.
    #[error(
        "'!{{firehose:{value}}}' is not supported; \
         the firehose namespace accepts only random-string and error-output-type"
    )]
    UnknownFirehoseValue {
        /// The value.
        value: String,
    },
    /// `!{namespace:}`.
    #[error("'!{{{namespace}:}}' has an empty value")]
    EmptyValue {
        /// The namespace.
        namespace: String,
    },
    /// A timestamp pattern that is not a supported Java `DateTimeFormatter` pattern.
    #[error("'!{{timestamp:{pattern}}}' is not a valid DateTimeFormatter pattern: {reason}")]
    InvalidTimestampPattern {
        /// The pattern.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `Prefix` contains `!{firehose:error-output-type}`.
    #[error(
        "The supplied prefix(es) do not satisfy the following constraint: \
         Prefix cannot contain !{{firehose:error-output-type}}; it is allowed only in ErrorOutputPrefix"
    )]
    ErrorOutputTypeInPrefix,
    /// `Prefix` has expressions but `ErrorOutputPrefix` is null or empty.
    #[error(
        "The supplied prefix(es) do not satisfy the following constraint: \
         ErrorOutputPrefix cannot be null or empty when Prefix contains expressions"
    )]
    ErrorOutputPrefixRequired,
    /// Dynamic partitioning is enabled but `ErrorOutputPrefix` is null or empty.
    #[error(
        "The supplied prefix(es) do not satisfy the following constraint: \
         ErrorOutputPrefix cannot be null or empty when dynamic partitioning is enabled"
    )]
    ErrorOutputPrefixRequiredForDynamicPartitioning,
    /// `ErrorOutputPrefix` lacks `!{firehose:error-output-type}`.
    #[error(
        "The supplied prefix(es) do not satisfy the following constraint: \
         ErrorOutputPrefix must contain at least one !{{firehose:error-output-type}} expression \
         when Prefix or ErrorOutputPrefix contains expressions"
    )]
    ErrorOutputTypeMissing,
    /// `ErrorOutputPrefix` contains a partition key expression.
    #[error(
        "The supplied prefix(es) do not satisfy the following constraint: \
         ErrorOutputPrefix cannot contain partitionKeyFromQuery or partitionKeyFromLambda expressions"
    )]
    PartitionKeyInErrorOutputPrefix,
    /// `Prefix` contains a partition key expression without dynamic partitioning.
    #[error(
        "The supplied prefix(es) do not satisfy the following constraint: \
         Prefix can contain partitionKeyFromQuery or partitionKeyFromLambda expressions \
         only when dynamic partitioning is enabled"
    )]
    PartitionKeyWithoutDynamicPartitioning,
}

/// Validates the Prefix / ErrorOutputPrefix pair of an S3 / ExtendedS3 destination as Firehose does, returning the parsed pair.
///
/// An absent or empty `prefix` gives the empty template; an absent or empty
/// `error_output_prefix` gives `None`. Rules, in the order checked:
/// 1. each field is at most [`MAX_PREFIX_LEN`] characters and parses;
/// 2. `Prefix` has no `!{firehose:error-output-type}`;
/// 3. `Prefix` has partition key expressions only with dynamic partitioning;
/// 4. `ErrorOutputPrefix` has no partition key expressions;
/// 5. `ErrorOutputPrefix` is required with dynamic partitioning, and when
///    `Prefix` contains expressions;
/// 6. a given `ErrorOutputPrefix` contains `!{firehose:error-output-type}`
///    when either field contains expressions (a literal `ErrorOutputPrefix`
///    beside a literal `Prefix` is accepted).
pub fn validate_prefixes(
    prefix: Option<&str>,
    error_output_prefix: Option<&str>,
    dynamic_partitioning: bool,
) -> Result<(PrefixTemplate, Option<PrefixTemplate>), PrefixError> {
    let prefix = prefix.unwrap_or("");
    let error_output_prefix = error_output_prefix.filter(|s| !s.is_empty());

    let data = parse_field(PrefixField::Prefix, prefix)?;
    let error = error_output_prefix
        .map(|s| parse_field(PrefixField::ErrorOutputPrefix, s))
        .transpose()?;

    if data.has_error_output_type() {
        return Err(PrefixError::ErrorOutputTypeInPrefix);
    }
    if data.has_partition_keys() && !dynamic_partitioning {
        return Err(PrefixError::PartitionKeyWithoutDynamicPartitioning);
    }
    match &error {
        Some(error) => {
            if error.has_partition_keys() {
                return Err(PrefixError::PartitionKeyInErrorOutputPrefix);
            }
            if (data.has_expressions() || error.has_expressions()) && !error.has_error_output_type()
            {
                return Err(PrefixError::ErrorOutputTypeMissing);
            }
        }
        None if dynamic_partitioning => {
            return Err(PrefixError::ErrorOutputPrefixRequiredForDynamicPartitioning);
        }
        None if data.has_expressions() => return Err(PrefixError::ErrorOutputPrefixRequired),
        None => {}
    }
    Ok((data, error))
}

fn parse_field(field: PrefixField, value: &str) -> Result<PrefixTemplate, PrefixError> {
    let len = value.chars().count();
    if len > MAX_PREFIX_LEN {
        return Err(PrefixError::TooLong {
            field,
            len,
            max: MAX_PREFIX_LEN,
        });
    }
    PrefixTemplate::parse(value).map_err(|e| PrefixError::InField {
        field,
        value: value.to_owned(),
        source: Box::new(e),
    })
}

fn char_position(s: &str, byte: usize) -> usize {
    s[..byte].chars().count()
}

/// Parses the text between `!{` and `}`.
fn parse_expression(body: &str) -> Result<Segment, PrefixError> {
    let Some((namespace, value)) = body.split_once(':') else {
        return Err(PrefixError::MissingNamespace {
            expression: body.to_owned(),
        });
    };
    let known = [
        NAMESPACE_TIMESTAMP,
        NAMESPACE_FIREHOSE,
        NAMESPACE_QUERY,
        NAMESPACE_LAMBDA,
    ];
    if !known.contains(&namespace) {
        return Err(PrefixError::UnknownNamespace {
            namespace: namespace.to_owned(),
            value: value.to_owned(),
        });
    }
    if value.is_empty() {
        return Err(PrefixError::EmptyValue {
            namespace: namespace.to_owned(),
        });
    }
    match namespace {
        NAMESPACE_TIMESTAMP => {
            parse_timestamp_pattern(value)?;
            Ok(Segment::Timestamp(value.to_owned()))
        }
        NAMESPACE_FIREHOSE => match value {
            FIREHOSE_RANDOM_STRING => Ok(Segment::RandomString),
            FIREHOSE_ERROR_OUTPUT_TYPE => Ok(Segment::ErrorOutputType),
            _ => Err(PrefixError::UnknownFirehoseValue {
                value: value.to_owned(),
            }),
        },
        NAMESPACE_QUERY => Ok(Segment::PartitionKeyFromQuery(value.to_owned())),
        _ => Ok(Segment::PartitionKeyFromLambda(value.to_owned())),
    }
}

/// One element of a parsed Java `DateTimeFormatter` pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatternItem {
    /// Text output as is (quoted text, `''`, and non-letter characters).
    Literal(String),
    /// A run of `count` identical pattern letters, e.g. `yyyy`.
    Field {
        /// The pattern letter.
        letter: char,
        /// How many times it is repeated.
        count: usize,
    },
}

/// Parses a Java `DateTimeFormatter` pattern into literal text and fields,
/// accepting only the letters the key evaluator can format:
///
/// | Letters | Field |
/// |---|---|
/// | `u` `y` `Y` | year, year-of-era, week-based year (`yy` = 2 digits) |
/// | `M` `L` | month: `M` 8, `MM` 08, `MMM` Aug, `MMMM` August, `MMMMM` A |
/// | `Q` | quarter: `Q` 3, `QQ` 03, `QQQ` Q3, `QQQQ` 3rd quarter |
/// | `d` `D` `w` | day-of-month, day-of-year, week-of-week-based-year |
/// | `E` | day-of-week: `E`..`EEE` Mon, `EEEE` Monday, `EEEEE` M |
/// | `a` | AM / PM |
/// | `H` `k` `K` `h` | hour 0-23, 1-24, 0-11, 1-12 |
/// | `m` `s` `S` | minute, second, fraction of second (1-9 digits) |
/// | `VV` `z` `Z` `X` `x` | zone id, zone abbreviation, offsets |
///
/// `'text'` is literal, `''` is a single quote, optional-section brackets
/// `[` `]` are accepted (all fields are always available, so their content is
/// always printed), and other non-letter characters are literal. The reserved
/// characters `#`, `{` and `}` and all other letters are rejected.
pub fn parse_timestamp_pattern(pattern: &str) -> Result<Vec<PatternItem>, PrefixError> {
    let invalid = |reason: String| PrefixError::InvalidTimestampPattern {
        pattern: pattern.to_owned(),
        reason,
    };
    if pattern.is_empty() {
        return Err(invalid("the pattern is empty".to_owned()));
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut items = Vec::new();
    let mut literal = String::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() {
            let mut count = 1;
            while i + count < chars.len() && chars[i + count] == c {
                count += 1;
            }
            check_field(c, count).map_err(invalid)?;
            if !literal.is_empty() {
                items.push(PatternItem::Literal(std::mem::take(&mut literal)));
            }
            items.push(PatternItem::Field { letter: c, count });
            i += count;
            continue;
        }
        match c {
            '\'' => {
                if chars.get(i + 1) == Some(&'\'') {
                    literal.push('\'');
                    i += 2;
                    continue;
                }
                // Quoted text up to the closing quote; '' inside is a quote.
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => {
                            return Err(invalid(
                                "the pattern ends with an unclosed quoted literal".to_owned(),
                            ));
                        }
                        Some('\'') if chars.get(j + 1) == Some(&'\'') => {
                            literal.push('\'');
                            j += 2;
                        }
                        Some('\'') => break,
                        Some(&other) => {
                            literal.push(other);
                            j += 1;
                        }
                    }
                }
                i = j + 1;
            }
            '[' => {
                depth += 1;
                i += 1;
            }
            ']' => {
                if depth == 0 {
                    return Err(invalid("']' without a previous '['".to_owned()));
                }
                depth -= 1;
                i += 1;
            }
            '#' | '{' | '}' => {
                return Err(invalid(format!("the character '{c}' is reserved")));
            }
            _ => {
                literal.push(c);
                i += 1;
            }
        }
    }
    if !literal.is_empty() {
        items.push(PatternItem::Literal(literal));
    }
    Ok(items)
}

/// Checks that `count` repetitions of `letter` are supported.
fn check_field(letter: char, count: usize) -> Result<(), String> {
    let max = match letter {
        'u' | 'y' | 'Y' => 19,
        'M' | 'L' | 'Q' | 'E' | 'Z' | 'X' | 'x' => 5,
        'd' | 'w' | 'H' | 'k' | 'K' | 'h' | 'm' | 's' => 2,
        'D' => 3,
        'S' => 9,
        'a' => 1,
        'z' if count == 4 => {
            return Err("'zzzz' (full time-zone name) is not supported".to_owned());
        }
        'z' => 3,
        'V' if count != 2 => return Err("pattern letter 'V' must be used as 'VV'".to_owned()),
        'V' => 2,
        _ => {
            return Err(format!(
                "pattern letter '{letter}' is not supported (supported: u y Y M L Q d D w E a H k K h m s S VV z Z X x)"
            ));
        }
    };
    if count > max {
        let run: String = std::iter::repeat_n(letter, count).collect();
        return Err(format!("too many pattern letters: '{run}'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Segment {
        Segment::Literal(s.to_owned())
    }

    fn ts(s: &str) -> Segment {
        Segment::Timestamp(s.to_owned())
    }

    fn parse(s: &str) -> PrefixTemplate {
        PrefixTemplate::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn validate(
        prefix: Option<&str>,
        error: Option<&str>,
        dynamic: bool,
    ) -> Result<(PrefixTemplate, Option<PrefixTemplate>), PrefixError> {
        validate_prefixes(prefix, error, dynamic)
    }

    #[test]
    fn parses_literals_and_every_namespace() {
        let t = parse(
            "a/!{timestamp:yyyy}/!{firehose:random-string}!{firehose:error-output-type}\
             /!{partitionKeyFromQuery:customer_id}/!{partitionKeyFromLambda:k}",
        );
        assert_eq!(
            t.segments,
            vec![
                lit("a/"),
                ts("yyyy"),
                lit("/"),
                Segment::RandomString,
                Segment::ErrorOutputType,
                lit("/"),
                Segment::PartitionKeyFromQuery("customer_id".into()),
                lit("/"),
                Segment::PartitionKeyFromLambda("k".into()),
            ]
        );
        assert!(t.has_expressions());
        assert!(t.has_timestamp());
        assert!(t.has_error_output_type());
        assert!(t.has_partition_keys());
    }

    #[test]
    fn empty_and_literal_templates() {
        let empty = parse("");
        assert!(empty.is_empty());
        assert_eq!(empty, PrefixTemplate::default());
        assert!(!empty.has_expressions());

        let t = parse("myPrefix/sub dir/!/}{/");
        assert_eq!(t.segments, vec![lit("myPrefix/sub dir/!/}{/")]);
        assert!(!t.has_expressions());
        assert!(!t.has_timestamp());
        assert_eq!(t.literal_text(), "myPrefix/sub dir/!/}{/");
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "",
            "plain/",
            "myPrefix/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/",
            "myErrorPrefix/!{timestamp:'year='yyyy'/month='MM'/day='dd'/hour='HH}/!{firehose:error-output-type}",
            "r=!{firehose:random-string}/!{partitionKeyFromQuery:a}!{partitionKeyFromLambda:b}",
        ] {
            let t = parse(s);
            assert_eq!(t.to_string(), s);
            assert_eq!(s.parse::<PrefixTemplate>().unwrap(), t);
        }
    }

    #[test]
    fn quoted_timestamp_patterns() {
        let t = parse("!{timestamp:yyyy'-'MM'-'dd}/h=!{timestamp:HH}/");
        assert_eq!(
            t.segments,
            vec![ts("yyyy'-'MM'-'dd"), lit("/h="), ts("HH"), lit("/")]
        );
        assert_eq!(
            parse_timestamp_pattern("'year='yyyy''").unwrap(),
            vec![
                PatternItem::Literal("year=".into()),
                PatternItem::Field {
                    letter: 'y',
                    count: 4
                },
                PatternItem::Literal("'".into()),
            ]
        );
        assert_eq!(
            parse_timestamp_pattern("'it''s' HH").unwrap(),
            vec![
                PatternItem::Literal("it's ".into()),
                PatternItem::Field {
                    letter: 'H',
                    count: 2
                },
            ]
        );
    }

    #[test]
    fn unclosed_expression_is_rejected() {
        assert_eq!(
            PrefixTemplate::parse("abc/!{timestamp:yyyy"),
            Err(PrefixError::UnclosedExpression { position: 4 })
        );
        assert_eq!(
            PrefixTemplate::parse("!{"),
            Err(PrefixError::UnclosedExpression { position: 0 })
        );
    }

    #[test]
    fn bang_brace_only_as_expression_opener() {
        assert_eq!(
            PrefixTemplate::parse("a!{timestamp:yyyy!{timestamp:MM}"),
            Err(PrefixError::NestedExpression { position: 17 })
        );
        assert_eq!(
            PrefixTemplate::parse("!{timestamp:'!{'}"),
            Err(PrefixError::NestedExpression { position: 13 })
        );
        // `!` and `{` apart are plain text.
        assert_eq!(parse("a!b{c}").segments, vec![lit("a!b{c}")]);
    }

    #[test]
    fn unknown_or_malformed_expressions_are_rejected() {
        assert_eq!(
            PrefixTemplate::parse("!{timestamp}"),
            Err(PrefixError::MissingNamespace {
                expression: "timestamp".into()
            })
        );
        assert_eq!(
            PrefixTemplate::parse("!{}"),
            Err(PrefixError::MissingNamespace {
                expression: String::new()
            })
        );
        assert!(matches!(
            PrefixTemplate::parse("!{Timestamp:yyyy}"),
            Err(PrefixError::UnknownNamespace { namespace, .. }) if namespace == "Timestamp"
        ));
        assert!(matches!(
            PrefixTemplate::parse("!{partitionKey:x}"),
            Err(PrefixError::UnknownNamespace { .. })
        ));
        assert_eq!(
            PrefixTemplate::parse("!{firehose:uuid}"),
            Err(PrefixError::UnknownFirehoseValue {
                value: "uuid".into()
            })
        );
        for ns in [
            "timestamp",
            "firehose",
            "partitionKeyFromQuery",
            "partitionKeyFromLambda",
        ] {
            assert_eq!(
                PrefixTemplate::parse(&format!("!{{{ns}:}}")),
                Err(PrefixError::EmptyValue {
                    namespace: ns.into()
                })
            );
        }
    }

    #[test]
    fn timestamp_pattern_validation() {
        for ok in [
            "yyyy/MM/dd/HH/",
            "yy-M-d H:m:s",
            "uuuu.DDD",
            "yyyy-MM-dd'T'HH:mm:ss.SSSXXX",
            "EEE EEEE MMM MMMM a hh h K k",
            "YYYY-'W'ww",
            "Q QQQ QQQQ",
            "VV z zzz Z ZZZZ ZZZZZ X xx xxx",
            "[yyyy]/MM",
            "[yyyy",
            "S SSSSSSSSS",
            "-_ /.,:é",
        ] {
            assert!(parse_timestamp_pattern(ok).is_ok(), "{ok}");
            assert!(PrefixTemplate::parse(&format!("!{{timestamp:{ok}}}")).is_ok());
        }
        for (bad, reason) in [
            ("yyyy-'MM", "unclosed quoted literal"),
            ("ddd", "too many pattern letters: 'ddd'"),
            ("HHH", "too many pattern letters"),
            ("aa", "too many pattern letters"),
            ("SSSSSSSSSS", "too many pattern letters"),
            ("MMMMMM", "too many pattern letters"),
            ("DDDD", "too many pattern letters"),
            ("yyyy]", "']' without a previous '['"),
            ("yyyy#", "reserved"),
            ("yyyy{", "reserved"),
            ("G", "pattern letter 'G' is not supported"),
            ("b", "pattern letter 'b' is not supported"),
            ("zzzz", "full time-zone name"),
            ("V", "'VV'"),
        ] {
            match parse_timestamp_pattern(bad) {
                Err(PrefixError::InvalidTimestampPattern { pattern, reason: r }) => {
                    assert_eq!(pattern, bad);
                    assert!(r.contains(reason), "{bad}: {r}");
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert!(matches!(
            PrefixTemplate::parse("x/!{timestamp:yyyy/MM/dd/ddd}/"),
            Err(PrefixError::InvalidTimestampPattern { .. })
        ));
    }

    #[test]
    fn doc_example_prefix_unset_with_error_prefix() {
        let (data, error) = validate(
            None,
            Some("myFirehoseFailures/!{firehose:error-output-type}/"),
            false,
        )
        .unwrap();
        assert!(data.is_empty());
        assert_eq!(
            error.unwrap().segments,
            vec![
                lit("myFirehoseFailures/"),
                Segment::ErrorOutputType,
                lit("/")
            ]
        );
    }

    #[test]
    fn doc_example_expressions_without_error_prefix_is_invalid() {
        let err = validate(Some("!{timestamp:yyyy/MM/dd}"), None, false).unwrap_err();
        assert_eq!(err, PrefixError::ErrorOutputPrefixRequired);
        assert_eq!(
            err.to_string(),
            "The supplied prefix(es) do not satisfy the following constraint: \
             ErrorOutputPrefix cannot be null or empty when Prefix contains expressions"
        );
        // Empty counts as null.
        assert_eq!(
            validate(Some("!{timestamp:yyyy/MM/dd}"), Some(""), false),
            Err(PrefixError::ErrorOutputPrefixRequired)
        );
    }

    #[test]
    fn doc_example_random_string_and_timestamps() {
        let (data, error) = validate(
            Some("myFirehose/DeliveredYear=!{timestamp:yyyy}/anyMonth/rand=!{firehose:random-string}"),
            Some("myFirehoseFailures/!{firehose:error-output-type}/!{timestamp:yyyy}/anyMonth/!{timestamp:dd}"),
            false,
        )
        .unwrap();
        assert!(data.has_timestamp());
        assert!(error.unwrap().has_error_output_type());
    }

    #[test]
    fn doc_example_hive_style_and_quoted_error_prefix() {
        let (data, error) = validate(
            Some("myPrefix/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/"),
            Some("myErrorPrefix/!{timestamp:'year='yyyy'/month='MM'/day='dd'/hour='HH}/!{firehose:error-output-type}"),
            false,
        )
        .unwrap();
        assert_eq!(data.segments.len(), 9);
        assert_eq!(
            error.unwrap().segments,
            vec![
                lit("myErrorPrefix/"),
                ts("'year='yyyy'/month='MM'/day='dd'/hour='HH"),
                lit("/"),
                Segment::ErrorOutputType,
            ]
        );
    }

    #[test]
    fn doc_example_literal_prefix_without_error_prefix() {
        let (data, error) = validate(Some("myFirehosePrefix"), None, false).unwrap();
        assert_eq!(data.segments, vec![lit("myFirehosePrefix")]);
        assert_eq!(error, None);
        assert_eq!(
            validate(None, None, false),
            Ok((PrefixTemplate::default(), None))
        );
        assert_eq!(
            validate(Some(""), Some(""), false),
            Ok((PrefixTemplate::default(), None))
        );
    }

    #[test]
    fn prefix_cannot_contain_error_output_type() {
        assert_eq!(
            validate(
                Some("data/!{firehose:error-output-type}/"),
                Some("err/!{firehose:error-output-type}/"),
                false
            ),
            Err(PrefixError::ErrorOutputTypeInPrefix)
        );
    }

    #[test]
    fn error_prefix_must_contain_error_output_type() {
        assert_eq!(
            validate(
                Some("data/!{timestamp:yyyy}/"),
                Some("errors/!{timestamp:yyyy}/"),
                false
            ),
            Err(PrefixError::ErrorOutputTypeMissing)
        );
        assert_eq!(
            validate(Some("data/!{timestamp:yyyy}/"), Some("errors/"), false),
            Err(PrefixError::ErrorOutputTypeMissing)
        );
        // Expressions in the error prefix alone also require it.
        assert_eq!(
            validate(Some("data/"), Some("errors/!{timestamp:yyyy}/"), false),
            Err(PrefixError::ErrorOutputTypeMissing)
        );
        // Both literal: accepted.
        assert!(validate(Some("data/"), Some("errors/"), false).is_ok());
        assert!(validate(None, Some("errors/"), false).is_ok());
    }

    #[test]
    fn random_string_alone_needs_error_prefix() {
        assert_eq!(
            validate(Some("!{firehose:random-string}/"), None, false),
            Err(PrefixError::ErrorOutputPrefixRequired)
        );
    }

    #[test]
    fn partition_keys_need_dynamic_partitioning() {
        let prefix = Some("data/customer_id=!{partitionKeyFromQuery:customer_id}/");
        let error = Some("errors/!{firehose:error-output-type}/");
        assert_eq!(
            validate(prefix, error, false),
            Err(PrefixError::PartitionKeyWithoutDynamicPartitioning)
        );
        assert_eq!(
            validate(Some("d/!{partitionKeyFromLambda:k}/"), error, false),
            Err(PrefixError::PartitionKeyWithoutDynamicPartitioning)
        );
        let (data, err) = validate(prefix, error, true).unwrap();
        assert!(data.has_partition_keys());
        assert!(err.is_some());
    }

    #[test]
    fn error_prefix_cannot_contain_partition_keys() {
        for expr in [
            "!{partitionKeyFromQuery:customer_id}",
            "!{partitionKeyFromLambda:k}",
        ] {
            let error = format!("errors/!{{firehose:error-output-type}}/{expr}/");
            assert_eq!(
                validate(Some("d/!{partitionKeyFromQuery:k}/"), Some(&error), true),
                Err(PrefixError::PartitionKeyInErrorOutputPrefix)
            );
        }
    }

    #[test]
    fn dynamic_partitioning_requires_error_prefix() {
        assert_eq!(
            validate(Some("d/!{partitionKeyFromQuery:k}/"), None, true),
            Err(PrefixError::ErrorOutputPrefixRequiredForDynamicPartitioning)
        );
        assert_eq!(
            validate(Some("literal/"), None, true),
            Err(PrefixError::ErrorOutputPrefixRequiredForDynamicPartitioning)
        );
        assert_eq!(
            validate(None, Some(""), true),
            Err(PrefixError::ErrorOutputPrefixRequiredForDynamicPartitioning)
        );
    }

    #[test]
    fn length_limits() {
        let max = "a".repeat(MAX_PREFIX_LEN);
        assert!(validate(Some(&max), Some(&max), false).is_ok());
        let long = "a".repeat(MAX_PREFIX_LEN + 1);
        assert_eq!(
            validate(Some(&long), None, false),
            Err(PrefixError::TooLong {
                field: PrefixField::Prefix,
                len: 1025,
                max: 1024
            })
        );
        assert_eq!(
            validate(None, Some(&long), false),
            Err(PrefixError::TooLong {
                field: PrefixField::ErrorOutputPrefix,
                len: 1025,
                max: 1024
            })
        );
        // Characters, not bytes.
        let wide = "é".repeat(MAX_PREFIX_LEN);
        assert!(validate(Some(&wide), None, false).is_ok());
    }

    #[test]
    fn syntax_errors_name_the_field() {
        let err = validate(Some("x/!{timestamp:yyyy"), None, false).unwrap_err();
        assert_eq!(
            err,
            PrefixError::InField {
                field: PrefixField::Prefix,
                value: "x/!{timestamp:yyyy".into(),
                source: Box::new(PrefixError::UnclosedExpression { position: 2 }),
            }
        );
        assert_eq!(
            err.to_string(),
            "Prefix 'x/!{timestamp:yyyy' is not a valid prefix: the expression opened by '!{' \
             at position 2 is not closed with '}'; expressions must have the form !{namespace:value}"
        );
        let err = validate(None, Some("e/!{firehose:oops}"), false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ErrorOutputPrefix 'e/!{firehose:oops}' is not a valid prefix: '!{firehose:oops}' is not \
             supported; the firehose namespace accepts only random-string and error-output-type"
        );
    }

    #[test]
    fn messages_render_braces() {
        assert_eq!(
            PrefixError::ErrorOutputTypeInPrefix.to_string(),
            "The supplied prefix(es) do not satisfy the following constraint: Prefix cannot contain \
             !{firehose:error-output-type}; it is allowed only in ErrorOutputPrefix"
        );
        assert_eq!(
            PrefixError::EmptyValue {
                namespace: "timestamp".into()
            }
            .to_string(),
            "'!{timestamp:}' has an empty value"
        );
        assert_eq!(
            PrefixError::MissingNamespace {
                expression: "foo".into()
            }
            .to_string(),
            "'!{foo}' is not an expression of the form !{namespace:value}"
        );
    }
}

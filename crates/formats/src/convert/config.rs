//! `DataFormatConversionConfiguration` (the AWS JSON shape) parsed and validated into
//! [`ConversionConfig`]. Validation messages are written for `InvalidArgumentException`.

use std::collections::HashMap;

use serde_json::Value;

use super::ConvertError;
use super::time::TimestampFormat;

const MIB: u64 = 1024 * 1024;

/// A stream's record format conversion settings.
#[derive(Clone, Debug, PartialEq)]
pub struct ConversionConfig {
    /// `Enabled` (default true). When false the stream delivers records unconverted.
    pub enabled: bool,
    /// `SchemaConfiguration.DatabaseName`.
    pub database: String,
    /// `SchemaConfiguration.TableName`.
    pub table: String,
    /// `SchemaConfiguration.VersionId`; `None` (or `LATEST`) means the newest table version.
    pub version_id: Option<String>,
    /// The JSON deserializer.
    pub input: InputSerde,
    /// The columnar serializer.
    pub output: OutputFormat,
}

/// `InputFormatConfiguration.Deserializer`.
#[derive(Clone, Debug, PartialEq)]
pub enum InputSerde {
    /// `OpenXJsonSerDe`: lenient (strings are parsed into numbers and booleans, objects and
    /// arrays given to a string column keep their JSON text, a scalar given to an array column
    /// becomes a one-element array, a non-object given to a struct column becomes null).
    OpenX {
        /// `CaseInsensitive` (default true): JSON keys match columns whatever their case.
        case_insensitive: bool,
        /// `ConvertDotsInJsonKeysToUnderscores` (default false): key `a.b` fills column `a_b`.
        convert_dots_to_underscores: bool,
        /// `ColumnToJsonKeyMappings`: column name (lower case) -> the JSON key that fills it.
        column_to_json_key: HashMap<String, String>,
    },
    /// `HiveJsonSerDe`: strict (a string in a numeric column, an object in a string column, a
    /// scalar in an array or struct column fail the record). Keys match case-insensitively.
    Hive {
        /// `TimestampFormats`: Joda-Time patterns tried in order, or `millis` (epoch
        /// milliseconds), before the default `yyyy-MM-dd HH:mm:ss[.fffffffff]` / ISO-8601 forms.
        timestamp_formats: Vec<String>,
    },
}

impl Default for InputSerde {
    fn default() -> Self {
        InputSerde::OpenX {
            case_insensitive: true,
            convert_dots_to_underscores: false,
            column_to_json_key: HashMap::new(),
        }
    }
}

/// `OutputFormatConfiguration.Serializer`.
#[derive(Clone, Debug, PartialEq)]
pub enum OutputFormat {
    /// `ParquetSerDe`.
    Parquet(ParquetOptions),
    /// `OrcSerDe`.
    Orc(OrcOptions),
}

impl Default for OutputFormat {
    fn default() -> Self {
        OutputFormat::Parquet(ParquetOptions::default())
    }
}

/// Parquet compression codecs (`ParquetSerDe.Compression`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParquetCompression {
    /// `UNCOMPRESSED`.
    Uncompressed,
    /// `SNAPPY` (the default).
    Snappy,
    /// `GZIP`.
    Gzip,
    /// `ZSTD`: a Lakehose extension (Firehose rejects it).
    Zstd,
}

/// Parquet writer versions (`ParquetSerDe.WriterVersion`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParquetWriterVersion {
    /// `V1` (the default): data page v1, PLAIN fallback encodings.
    V1,
    /// `V2`: data page v2, DELTA fallback encodings.
    V2,
}

/// `ParquetSerDe` settings, with Firehose's defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct ParquetOptions {
    /// `BlockSizeBytes` (default 256 MiB, min 64 MiB): a row group is closed once its encoded
    /// size reaches this (checked between chunks of a few MiB of JSON).
    pub block_size_bytes: u64,
    /// `PageSizeBytes` (default 1 MiB, min 64 KiB): the target data page size.
    pub page_size_bytes: u64,
    /// `Compression` (default SNAPPY).
    pub compression: ParquetCompression,
    /// `EnableDictionaryCompression` (default true).
    pub enable_dictionary: bool,
    /// `MaxPaddingBytes` (default 0). Accepted; Lakehose does not align row groups to HDFS
    /// blocks, so it has no effect.
    pub max_padding_bytes: u64,
    /// `WriterVersion` (default V1).
    pub writer_version: ParquetWriterVersion,
}

impl Default for ParquetOptions {
    fn default() -> Self {
        ParquetOptions {
            block_size_bytes: 256 * MIB,
            page_size_bytes: MIB,
            compression: ParquetCompression::Snappy,
            enable_dictionary: true,
            max_padding_bytes: 0,
            writer_version: ParquetWriterVersion::V1,
        }
    }
}

/// ORC compression codecs (`OrcSerDe.Compression`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrcCompression {
    /// `NONE`.
    None,
    /// `ZLIB`.
    Zlib,
    /// `SNAPPY` (the default).
    Snappy,
}

/// `OrcSerDe` settings, with Firehose's defaults. Only the stripe size and the compression
/// change the file Lakehose writes; the others are validated and kept for `Describe`.
#[derive(Clone, Debug, PartialEq)]
pub struct OrcOptions {
    /// `StripeSizeBytes` (default 64 MiB, min 8 MiB).
    pub stripe_size_bytes: u64,
    /// `BlockSizeBytes` (default 256 MiB, min 64 MiB).
    pub block_size_bytes: u64,
    /// `RowIndexStride` (default 10,000, min 1,000).
    pub row_index_stride: u64,
    /// `EnablePadding` (default false).
    pub enable_padding: bool,
    /// `PaddingTolerance` (default 0.05).
    pub padding_tolerance: f64,
    /// `Compression` (default SNAPPY).
    pub compression: OrcCompression,
    /// `BloomFilterColumns`.
    pub bloom_filter_columns: Vec<String>,
    /// `BloomFilterFalsePositiveProbability` (default 0.05).
    pub bloom_filter_false_positive_probability: f64,
    /// `DictionaryKeyThreshold` (default 0.8 in Hive's ORC writer).
    pub dictionary_key_threshold: f64,
    /// `FormatVersion` (default `V0_12`).
    pub format_version: String,
}

impl Default for OrcOptions {
    fn default() -> Self {
        OrcOptions {
            stripe_size_bytes: 64 * MIB,
            block_size_bytes: 256 * MIB,
            row_index_stride: 10_000,
            enable_padding: false,
            padding_tolerance: 0.05,
            compression: OrcCompression::Snappy,
            bloom_filter_columns: Vec::new(),
            bloom_filter_false_positive_probability: 0.05,
            dictionary_key_threshold: 0.8,
            format_version: "V0_12".to_owned(),
        }
    }
}

fn invalid(msg: impl Into<String>) -> ConvertError {
    ConvertError::InvalidConfig(msg.into())
}

/// The object at `key`, `None` when absent or null, an error when not an object.
fn object<'a>(
    v: &'a Value,
    key: &str,
    path: &str,
) -> Result<Option<&'a serde_json::Map<String, Value>>, ConvertError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(invalid(format!("{path}{key} must be an object."))),
    }
}

fn boolean(
    m: &serde_json::Map<String, Value>,
    key: &str,
    default: bool,
    path: &str,
) -> Result<bool, ConvertError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(invalid(format!("{path}.{key} must be a boolean."))),
    }
}

fn string<'a>(
    m: &'a serde_json::Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, ConvertError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(format!("{path}.{key} must be a string."))),
    }
}

fn integer(
    m: &serde_json::Map<String, Value>,
    key: &str,
    default: u64,
    min: u64,
    path: &str,
) -> Result<u64, ConvertError> {
    let v = match m.get(key) {
        None | Some(Value::Null) => return Ok(default),
        Some(v) => v,
    };
    let n = v
        .as_u64()
        .ok_or_else(|| invalid(format!("{path}.{key} must be a non-negative integer.")))?;
    if n < min {
        return Err(invalid(format!(
            "1 validation error detected: Value '{n}' at '{path}.{key}' failed to satisfy \
             constraint: Member must have value greater than or equal to {min}"
        )));
    }
    Ok(n)
}

fn fraction(
    m: &serde_json::Map<String, Value>,
    key: &str,
    default: f64,
    path: &str,
) -> Result<f64, ConvertError> {
    let v = match m.get(key) {
        None | Some(Value::Null) => return Ok(default),
        Some(v) => v,
    };
    let n = v
        .as_f64()
        .ok_or_else(|| invalid(format!("{path}.{key} must be a number.")))?;
    if !(0.0..=1.0).contains(&n) {
        return Err(invalid(format!(
            "1 validation error detected: Value '{n}' at '{path}.{key}' failed to satisfy \
             constraint: Member must have value between 0 and 1"
        )));
    }
    Ok(n)
}

impl ConversionConfig {
    /// Parses `DataFormatConversionConfiguration` as sent on `CreateDeliveryStream` /
    /// `UpdateDestination`. Errors carry a message suitable for `InvalidArgumentException`.
    /// When `Enabled` is false the missing parts default (and present parts are still checked).
    pub fn from_json(v: &Value) -> Result<Self, ConvertError> {
        if !v.is_object() {
            return Err(invalid(
                "DataFormatConversionConfiguration must be an object.",
            ));
        }
        let enabled = match v.get("Enabled") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(invalid(
                    "DataFormatConversionConfiguration.Enabled must be a boolean.",
                ));
            }
        };
        let schema = object(v, "SchemaConfiguration", "")?;
        let input = object(v, "InputFormatConfiguration", "")?;
        let output = object(v, "OutputFormatConfiguration", "")?;
        if enabled {
            if schema.is_none() {
                return Err(invalid(
                    "SchemaConfiguration is required when data format conversion is enabled.",
                ));
            }
            if input.is_none() {
                return Err(invalid(
                    "InputFormatConfiguration is required when data format conversion is enabled.",
                ));
            }
            if output.is_none() {
                return Err(invalid(
                    "OutputFormatConfiguration is required when data format conversion is enabled.",
                ));
            }
        }

        let (mut database, mut table, mut version_id) = (String::new(), String::new(), None);
        if let Some(s) = schema {
            let p = "SchemaConfiguration";
            database = string(s, "DatabaseName", p)?.unwrap_or_default().to_owned();
            table = string(s, "TableName", p)?.unwrap_or_default().to_owned();
            version_id = string(s, "VersionId", p)?
                .filter(|v| !v.is_empty() && *v != "LATEST")
                .map(str::to_owned);
            if enabled && database.is_empty() {
                return Err(invalid("SchemaConfiguration.DatabaseName is required."));
            }
            if enabled && table.is_empty() {
                return Err(invalid("SchemaConfiguration.TableName is required."));
            }
        }

        let input = match input {
            None => InputSerde::default(),
            Some(i) => parse_input(i, enabled)?,
        };
        let output = match output {
            None => OutputFormat::default(),
            Some(o) => parse_output(o, enabled)?,
        };
        Ok(ConversionConfig {
            enabled,
            database,
            table,
            version_id,
            input,
            output,
        })
    }

    /// The file extension of converted objects: `.parquet` or `.orc`.
    pub fn extension(&self) -> &'static str {
        match self.output {
            OutputFormat::Parquet(_) => ".parquet",
            OutputFormat::Orc(_) => ".orc",
        }
    }

    /// A configuration converting with `input` and `output` into `database.table`.
    pub fn new(database: &str, table: &str, input: InputSerde, output: OutputFormat) -> Self {
        ConversionConfig {
            enabled: true,
            database: database.to_owned(),
            table: table.to_owned(),
            version_id: None,
            input,
            output,
        }
    }
}

fn parse_input(
    i: &serde_json::Map<String, Value>,
    enabled: bool,
) -> Result<InputSerde, ConvertError> {
    let wrapper = Value::Object(i.clone());
    let Some(d) = object(&wrapper, "Deserializer", "InputFormatConfiguration.")? else {
        if enabled {
            return Err(invalid(
                "InputFormatConfiguration.Deserializer is required.",
            ));
        }
        return Ok(InputSerde::default());
    };
    let d = Value::Object(d.clone());
    let openx = object(&d, "OpenXJsonSerDe", "Deserializer.")?;
    let hive = object(&d, "HiveJsonSerDe", "Deserializer.")?;
    match (openx, hive) {
        (Some(_), Some(_)) => Err(invalid(
            "Only one of OpenXJsonSerDe or HiveJsonSerDe can be specified in Deserializer.",
        )),
        (None, None) => {
            if enabled {
                Err(invalid(
                    "Deserializer must specify either OpenXJsonSerDe or HiveJsonSerDe.",
                ))
            } else {
                Ok(InputSerde::default())
            }
        }
        (Some(o), None) => {
            let p = "OpenXJsonSerDe";
            let mut column_to_json_key = HashMap::new();
            match o.get("ColumnToJsonKeyMappings") {
                None | Some(Value::Null) => {}
                Some(Value::Object(m)) => {
                    for (col, key) in m {
                        let Value::String(key) = key else {
                            return Err(invalid(format!(
                                "OpenXJsonSerDe.ColumnToJsonKeyMappings value for '{col}' must be a string."
                            )));
                        };
                        if col.is_empty() || key.is_empty() {
                            return Err(invalid(
                                "OpenXJsonSerDe.ColumnToJsonKeyMappings keys and values must not be empty.",
                            ));
                        }
                        column_to_json_key.insert(col.to_lowercase(), key.clone());
                    }
                }
                Some(_) => {
                    return Err(invalid(
                        "OpenXJsonSerDe.ColumnToJsonKeyMappings must be an object.",
                    ));
                }
            }
            Ok(InputSerde::OpenX {
                case_insensitive: boolean(o, "CaseInsensitive", true, p)?,
                convert_dots_to_underscores: boolean(
                    o,
                    "ConvertDotsInJsonKeysToUnderscores",
                    false,
                    p,
                )?,
                column_to_json_key,
            })
        }
        (None, Some(h)) => {
            let mut timestamp_formats = Vec::new();
            match h.get("TimestampFormats") {
                None | Some(Value::Null) => {}
                Some(Value::Array(a)) => {
                    for f in a {
                        let Value::String(f) = f else {
                            return Err(invalid(
                                "HiveJsonSerDe.TimestampFormats must be a list of strings.",
                            ));
                        };
                        TimestampFormat::compile(f).map_err(|e| {
                            invalid(format!(
                                "HiveJsonSerDe.TimestampFormats: invalid format '{f}': {e}"
                            ))
                        })?;
                        timestamp_formats.push(f.clone());
                    }
                }
                Some(_) => {
                    return Err(invalid(
                        "HiveJsonSerDe.TimestampFormats must be a list of strings.",
                    ));
                }
            }
            Ok(InputSerde::Hive { timestamp_formats })
        }
    }
}

fn parse_output(
    o: &serde_json::Map<String, Value>,
    enabled: bool,
) -> Result<OutputFormat, ConvertError> {
    let wrapper = Value::Object(o.clone());
    let Some(s) = object(&wrapper, "Serializer", "OutputFormatConfiguration.")? else {
        if enabled {
            return Err(invalid("OutputFormatConfiguration.Serializer is required."));
        }
        return Ok(OutputFormat::default());
    };
    let s = Value::Object(s.clone());
    let parquet = object(&s, "ParquetSerDe", "Serializer.")?;
    let orc = object(&s, "OrcSerDe", "Serializer.")?;
    match (parquet, orc) {
        (Some(_), Some(_)) => Err(invalid(
            "Only one of ParquetSerDe or OrcSerDe can be specified in Serializer.",
        )),
        (None, None) => {
            if enabled {
                Err(invalid(
                    "Serializer must specify either ParquetSerDe or OrcSerDe.",
                ))
            } else {
                Ok(OutputFormat::default())
            }
        }
        (Some(p), None) => {
            let path = "ParquetSerDe";
            let d = ParquetOptions::default();
            let compression = match string(p, "Compression", path)? {
                None => d.compression,
                Some("SNAPPY") => ParquetCompression::Snappy,
                Some("GZIP") => ParquetCompression::Gzip,
                Some("UNCOMPRESSED") => ParquetCompression::Uncompressed,
                Some("ZSTD") => ParquetCompression::Zstd,
                Some(other) => {
                    return Err(invalid(format!(
                        "1 validation error detected: Value '{other}' at 'ParquetSerDe.Compression' \
                         failed to satisfy constraint: Member must satisfy enum value set: \
                         [UNCOMPRESSED, GZIP, SNAPPY]"
                    )));
                }
            };
            let writer_version = match string(p, "WriterVersion", path)? {
                None | Some("V1") => ParquetWriterVersion::V1,
                Some("V2") => ParquetWriterVersion::V2,
                Some(other) => {
                    return Err(invalid(format!(
                        "1 validation error detected: Value '{other}' at 'ParquetSerDe.WriterVersion' \
                         failed to satisfy constraint: Member must satisfy enum value set: [V1, V2]"
                    )));
                }
            };
            Ok(OutputFormat::Parquet(ParquetOptions {
                block_size_bytes: integer(p, "BlockSizeBytes", d.block_size_bytes, 64 * MIB, path)?,
                page_size_bytes: integer(p, "PageSizeBytes", d.page_size_bytes, 64 * 1024, path)?,
                compression,
                enable_dictionary: boolean(
                    p,
                    "EnableDictionaryCompression",
                    d.enable_dictionary,
                    path,
                )?,
                max_padding_bytes: integer(p, "MaxPaddingBytes", 0, 0, path)?,
                writer_version,
            }))
        }
        (None, Some(o)) => {
            let path = "OrcSerDe";
            let d = OrcOptions::default();
            let compression = match string(o, "Compression", path)? {
                None | Some("SNAPPY") => OrcCompression::Snappy,
                Some("ZLIB") => OrcCompression::Zlib,
                Some("NONE") => OrcCompression::None,
                Some(other) => {
                    return Err(invalid(format!(
                        "1 validation error detected: Value '{other}' at 'OrcSerDe.Compression' \
                         failed to satisfy constraint: Member must satisfy enum value set: \
                         [NONE, ZLIB, SNAPPY]"
                    )));
                }
            };
            let format_version = match string(o, "FormatVersion", path)? {
                None => d.format_version.clone(),
                Some(v @ ("V0_11" | "V0_12")) => v.to_owned(),
                Some(other) => {
                    return Err(invalid(format!(
                        "1 validation error detected: Value '{other}' at 'OrcSerDe.FormatVersion' \
                         failed to satisfy constraint: Member must satisfy enum value set: \
                         [V0_11, V0_12]"
                    )));
                }
            };
            let bloom_filter_columns = match o.get("BloomFilterColumns") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|c| {
                        c.as_str().map(str::to_lowercase).ok_or_else(|| {
                            invalid("OrcSerDe.BloomFilterColumns must be a list of strings.")
                        })
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => {
                    return Err(invalid(
                        "OrcSerDe.BloomFilterColumns must be a list of strings.",
                    ));
                }
            };
            Ok(OutputFormat::Orc(OrcOptions {
                stripe_size_bytes: integer(
                    o,
                    "StripeSizeBytes",
                    d.stripe_size_bytes,
                    8 * MIB,
                    path,
                )?,
                block_size_bytes: integer(o, "BlockSizeBytes", d.block_size_bytes, 64 * MIB, path)?,
                row_index_stride: integer(o, "RowIndexStride", d.row_index_stride, 1000, path)?,
                enable_padding: boolean(o, "EnablePadding", d.enable_padding, path)?,
                padding_tolerance: fraction(o, "PaddingTolerance", d.padding_tolerance, path)?,
                compression,
                bloom_filter_columns,
                bloom_filter_false_positive_probability: fraction(
                    o,
                    "BloomFilterFalsePositiveProbability",
                    d.bloom_filter_false_positive_probability,
                    path,
                )?,
                dictionary_key_threshold: fraction(
                    o,
                    "DictionaryKeyThreshold",
                    d.dictionary_key_threshold,
                    path,
                )?,
                format_version,
            }))
        }
    }
}

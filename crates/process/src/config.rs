//! Parsing and validation of `ProcessingConfiguration`.
//!
//! Invariant: [`parse`] either returns a [`Plan`] whose every value is in range and whose
//! processors can all be built, or a [`ConfigError`] whose message names the processor and
//! parameter at fault (shown to API users as `InvalidArgumentException`). Each processor type
//! may appear once and each parameter once per processor; `RoleArn` is accepted (and ignored)
//! on every processor.

use base64::Engine as _;
use serde::Deserialize;

use crate::deagg::SubRecordType;
use crate::processor_types as t;

/// An invalid processing configuration; the message is meant for API users.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(rename = "Enabled", default)]
    enabled: Option<bool>,
    #[serde(rename = "Processors", default)]
    processors: Option<Vec<RawProcessor>>,
}

#[derive(Deserialize)]
struct RawProcessor {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "Parameters", default)]
    parameters: Option<Vec<RawParameter>>,
}

#[derive(Deserialize)]
struct RawParameter {
    #[serde(rename = "ParameterName")]
    name: String,
    #[serde(rename = "ParameterValue")]
    value: String,
}

/// Lambda processor parameters.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct LambdaParams {
    pub(crate) arn: String,
    pub(crate) retries: u32,
    pub(crate) buffer_bytes: usize,
    pub(crate) interval_seconds: u32,
}

/// The validated configuration.
#[derive(Clone, Debug, Default)]
pub(crate) struct Plan {
    pub(crate) enabled: bool,
    pub(crate) decompression: bool,
    pub(crate) cloudwatch_logs: Option<bool>,
    pub(crate) deaggregation: Option<SubRecordType>,
    pub(crate) lambda: Option<LambdaParams>,
    pub(crate) jq_transform: Option<String>,
    pub(crate) metadata_query: Option<String>,
    pub(crate) append_delimiter: bool,
}

const DEFAULT_RETRIES: u32 = 3;
const DEFAULT_BUFFER_MB: f64 = 1.0;
const DEFAULT_INTERVAL_SECONDS: u32 = 60;
const MIB: f64 = 1024.0 * 1024.0;

/// Parameters each processor type accepts (`RoleArn` is accepted everywhere).
fn allowed_parameters(kind: &str) -> &'static [&'static str] {
    match kind {
        t::LAMBDA => &[
            "LambdaArn",
            "NumberOfRetries",
            "BufferSizeInMBs",
            "BufferIntervalInSeconds",
        ],
        t::METADATA_EXTRACTION | t::LAKEHOSE_JQ => {
            &["MetadataExtractionQuery", "JsonParsingEngine"]
        }
        t::RECORD_DE_AGGREGATION => &["SubRecordType", "Delimiter"],
        t::DECOMPRESSION => &["CompressionFormat"],
        t::CLOUDWATCH_LOG_PROCESSING => &["DataMessageExtraction"],
        // Some examples pass `Delimiter` = `\\n`; it is accepted and ignored (UNCONFIRMED
        // whether Firehose honours it).
        t::APPEND_DELIMITER_TO_RECORD => &["Delimiter"],
        _ => &[],
    }
}

struct Params<'a> {
    kind: &'a str,
    values: Vec<(&'a str, &'a str)>,
}

impl<'a> Params<'a> {
    fn get(&self, name: &str) -> Option<&'a str> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }

    fn required(&self, name: &str) -> Result<&'a str, ConfigError> {
        match self.get(name) {
            Some(v) => Ok(v),
            None => err(format!(
                "Processor {} requires the parameter {name}.",
                self.kind
            )),
        }
    }
}

/// Parses and validates a `ProcessingConfiguration` (absent or `null`: processing disabled).
pub(crate) fn parse(processing: Option<&serde_json::Value>) -> Result<Plan, ConfigError> {
    let Some(value) = processing.filter(|v| !v.is_null()) else {
        return Ok(Plan::default());
    };
    let raw: RawConfig = serde_json::from_value(value.clone())
        .map_err(|e| ConfigError(format!("Invalid ProcessingConfiguration: {e}")))?;
    let mut plan = Plan {
        enabled: raw.enabled.unwrap_or(false),
        ..Plan::default()
    };
    let mut seen: Vec<&str> = Vec::new();
    let processors = raw.processors.unwrap_or_default();
    for p in &processors {
        let kind = p.kind.as_str();
        if !t::ALL.contains(&kind) {
            return err(format!(
                "Unsupported processor type {kind}; expected one of: {}.",
                t::ALL.join(", ")
            ));
        }
        if seen.contains(&kind) {
            return err(format!(
                "Processor type {kind} is specified more than once."
            ));
        }
        seen.push(kind);
        let mut params = Params {
            kind,
            values: Vec::new(),
        };
        for param in p.parameters.iter().flatten() {
            let name = param.name.as_str();
            if name != "RoleArn" && !allowed_parameters(kind).contains(&name) {
                return err(format!(
                    "Parameter {name} is not valid for processor {kind}."
                ));
            }
            if params.get(name).is_some() {
                return err(format!(
                    "Parameter {name} is specified more than once for processor {kind}."
                ));
            }
            params.values.push((name, param.value.as_str()));
        }
        apply(&mut plan, &params)?;
    }
    if plan.cloudwatch_logs.is_some() && !plan.decompression {
        return err(format!(
            "Processor {} requires the {} processor (CompressionFormat=GZIP).",
            t::CLOUDWATCH_LOG_PROCESSING,
            t::DECOMPRESSION
        ));
    }
    Ok(plan)
}

fn apply(plan: &mut Plan, p: &Params<'_>) -> Result<(), ConfigError> {
    match p.kind {
        t::LAMBDA => {
            let arn = p.required("LambdaArn")?.to_owned();
            let retries = match p.get("NumberOfRetries") {
                None => DEFAULT_RETRIES,
                Some(v) => match v.trim().parse::<u32>() {
                    Ok(n) if n <= 10 => n,
                    _ => {
                        return err(format!(
                            "NumberOfRetries must be an integer between 0 and 10, got {v:?}."
                        ));
                    }
                },
            };
            let buffer_mb = match p.get("BufferSizeInMBs") {
                None => DEFAULT_BUFFER_MB,
                Some(v) => match v.trim().parse::<f64>() {
                    Ok(n) if n.is_finite() && (0.2..=3.0).contains(&n) => n,
                    _ => {
                        return err(format!(
                            "BufferSizeInMBs must be a number between 0.2 and 3, got {v:?}."
                        ));
                    }
                },
            };
            let interval_seconds = match p.get("BufferIntervalInSeconds") {
                None => DEFAULT_INTERVAL_SECONDS,
                Some(v) => match v.trim().parse::<u32>() {
                    Ok(n) if n <= 900 => n,
                    _ => {
                        return err(format!(
                            "BufferIntervalInSeconds must be an integer between 0 and 900, got {v:?}."
                        ));
                    }
                },
            };
            plan.lambda = Some(LambdaParams {
                arn,
                retries,
                buffer_bytes: (buffer_mb * MIB).round() as usize,
                interval_seconds,
            });
        }
        t::METADATA_EXTRACTION | t::LAKEHOSE_JQ => {
            let query = p.required("MetadataExtractionQuery")?.to_owned();
            if let Some(engine) = p.get("JsonParsingEngine")
                && engine != "JQ-1.6"
            {
                return err(format!("JsonParsingEngine must be JQ-1.6, got {engine:?}."));
            }
            if p.kind == t::LAKEHOSE_JQ {
                plan.jq_transform = Some(query);
            } else {
                plan.metadata_query = Some(query);
            }
        }
        t::RECORD_DE_AGGREGATION => {
            let kind = p.required("SubRecordType")?;
            plan.deaggregation = Some(match kind {
                "JSON" => SubRecordType::Json,
                "DELIMITED" => {
                    let encoded = p.required("Delimiter")?;
                    let delimiter = base64::engine::general_purpose::STANDARD
                        .decode(encoded.trim())
                        .map_err(|_| {
                            ConfigError(format!(
                                "Delimiter must be base64 encoded (for example IyMjIw== for ####), got {encoded:?}."
                            ))
                        })?;
                    if delimiter.is_empty() {
                        return err("Delimiter must not be empty.");
                    }
                    SubRecordType::Delimited(delimiter)
                }
                other => {
                    return err(format!(
                        "SubRecordType must be JSON or DELIMITED, got {other:?}."
                    ));
                }
            });
        }
        t::DECOMPRESSION => {
            if let Some(format) = p.get("CompressionFormat")
                && format != "GZIP"
            {
                return err(format!(
                    "CompressionFormat must be GZIP for the {} processor, got {format:?}.",
                    t::DECOMPRESSION
                ));
            }
            plan.decompression = true;
        }
        t::CLOUDWATCH_LOG_PROCESSING => {
            let extract = match p.get("DataMessageExtraction") {
                None => false,
                Some(v) if v.eq_ignore_ascii_case("true") => true,
                Some(v) if v.eq_ignore_ascii_case("false") => false,
                Some(v) => {
                    return err(format!(
                        "DataMessageExtraction must be true or false, got {v:?}."
                    ));
                }
            };
            plan.cloudwatch_logs = Some(extract);
        }
        t::APPEND_DELIMITER_TO_RECORD => plan.append_delimiter = true,
        _ => unreachable!("processor type checked against processor_types::ALL"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(kind: &str, params: &[(&str, &str)]) -> serde_json::Value {
        json!({"Enabled": true, "Processors": [{
            "Type": kind,
            "Parameters": params.iter().map(|(n, v)| json!({"ParameterName": n, "ParameterValue": v})).collect::<Vec<_>>()
        }]})
    }

    fn parse_err(v: serde_json::Value) -> String {
        parse(Some(&v)).unwrap_err().0
    }

    #[test]
    fn absent_or_null_is_disabled() {
        assert!(!parse(None).unwrap().enabled);
        assert!(!parse(Some(&serde_json::Value::Null)).unwrap().enabled);
        let p = parse(Some(&json!({"Processors": []}))).unwrap();
        assert!(!p.enabled);
    }

    #[test]
    fn lambda_parameters() {
        let p = parse(Some(&one(
            "Lambda",
            &[
                ("LambdaArn", "arn:aws:lambda:us-east-1:1:function:f"),
                ("NumberOfRetries", "0"),
                ("BufferSizeInMBs", "0.2"),
                ("BufferIntervalInSeconds", "0"),
                ("RoleArn", "arn:aws:iam::1:role/r"),
            ],
        )))
        .unwrap();
        let l = p.lambda.unwrap();
        assert_eq!(l.retries, 0);
        assert_eq!(l.buffer_bytes, 209_715);
        assert_eq!(l.interval_seconds, 0);
        let d = parse(Some(&one("Lambda", &[("LambdaArn", "x")])))
            .unwrap()
            .lambda
            .unwrap();
        assert_eq!(
            (d.retries, d.buffer_bytes, d.interval_seconds),
            (3, 1 << 20, 60)
        );

        for (name, bad) in [
            ("NumberOfRetries", "11"),
            ("NumberOfRetries", "-1"),
            ("NumberOfRetries", "x"),
            ("BufferSizeInMBs", "0.1"),
            ("BufferSizeInMBs", "3.5"),
            ("BufferSizeInMBs", "NaN"),
            ("BufferIntervalInSeconds", "901"),
            ("BufferIntervalInSeconds", "1.5"),
        ] {
            let msg = parse_err(one("Lambda", &[("LambdaArn", "x"), (name, bad)]));
            assert!(msg.contains(name), "{msg}");
        }
        assert!(parse_err(one("Lambda", &[])).contains("LambdaArn"));
    }

    #[test]
    fn builtin_parameters() {
        assert!(
            parse_err(one("RecordDeAggregation", &[("SubRecordType", "XML")]))
                .contains("SubRecordType")
        );
        assert!(
            parse_err(one(
                "RecordDeAggregation",
                &[("SubRecordType", "DELIMITED")]
            ))
            .contains("Delimiter")
        );
        assert!(
            parse_err(one(
                "RecordDeAggregation",
                &[("SubRecordType", "DELIMITED"), ("Delimiter", "###")]
            ))
            .contains("base64")
        );
        let p = parse(Some(&one(
            "RecordDeAggregation",
            &[("SubRecordType", "DELIMITED"), ("Delimiter", "IyMjIw==")],
        )))
        .unwrap();
        assert_eq!(
            p.deaggregation,
            Some(SubRecordType::Delimited(b"####".to_vec()))
        );
        assert!(parse_err(one("Decompression", &[("CompressionFormat", "ZIP")])).contains("GZIP"));
        assert!(
            parse_err(one(
                "MetadataExtraction",
                &[
                    ("MetadataExtractionQuery", "."),
                    ("JsonParsingEngine", "JQ-1.5")
                ]
            ))
            .contains("JQ-1.6")
        );
        assert!(
            parse_err(one(
                "MetadataExtraction",
                &[("JsonParsingEngine", "JQ-1.6")]
            ))
            .contains("MetadataExtractionQuery")
        );
        assert!(
            parse_err(one("Decompression", &[("SubRecordType", "JSON")])).contains("not valid")
        );
        assert!(parse_err(one("Nope", &[])).contains("Unsupported processor type"));
        // CloudWatchLogProcessing needs Decompression.
        assert!(
            parse_err(one(
                "CloudWatchLogProcessing",
                &[("DataMessageExtraction", "true")]
            ))
            .contains("Decompression")
        );
        let v = json!({"Enabled": true, "Processors": [
            {"Type": "Decompression", "Parameters": [{"ParameterName": "CompressionFormat", "ParameterValue": "GZIP"}]},
            {"Type": "CloudWatchLogProcessing", "Parameters": [{"ParameterName": "DataMessageExtraction", "ParameterValue": "maybe"}]}
        ]});
        assert!(parse_err(v).contains("DataMessageExtraction"));
        let dup = json!({"Enabled": true, "Processors": [{"Type": "AppendDelimiterToRecord"}, {"Type": "AppendDelimiterToRecord"}]});
        assert!(parse_err(dup).contains("more than once"));
    }
}

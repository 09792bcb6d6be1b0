//! A delivery stream's validated specification ([`StreamSpec`]): what CreateDeliveryStream and
//! UpdateDestination accept, what the pipeline runs, and what DescribeDeliveryStream shows.
//!
//! Invariants of a `StreamSpec` (established by [`StreamSpec::from_create`] and kept by
//! [`StreamSpec::apply_update`]): the name and bucket are safe to use as folder names, the
//! prefixes parse and follow Firehose's rules, buffering hints are in range, and the
//! destination is an S3 (or Extended S3) destination.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{ApiError, ErrorKind, Result};
use crate::model::*;
use crate::prefix::{PrefixTemplate, validate_prefixes};

mod remote;
pub use remote::{validate_opensearch, validate_redshift, validate_splunk};

/// The only destination id a Lakehose stream has (one destination per stream, as in AWS).
pub const DESTINATION_ID: &str = "destinationId-000000000001";
/// The account id shown in ARNs.
pub const ACCOUNT_ID: &str = "000000000000";
/// Start/Stop encryption calls allowed per stream in 24 hours.
pub const ENCRYPTION_TOGGLES_PER_DAY: usize = 25;

/// Compression of delivered objects (`CompressionFormat`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompressionFormat {
    /// As sent.
    #[serde(rename = "UNCOMPRESSED")]
    Uncompressed,
    /// gzip, `.gz`.
    #[serde(rename = "GZIP")]
    Gzip,
    /// A zip archive with one entry, `.zip`.
    #[serde(rename = "ZIP")]
    Zip,
    /// Snappy framing format, `.snappy`.
    #[serde(rename = "Snappy")]
    Snappy,
    /// Hadoop's block Snappy format, `.hsnappy`.
    #[serde(rename = "HADOOP_SNAPPY")]
    HadoopSnappy,
}

impl CompressionFormat {
    /// Parses the wire value.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "UNCOMPRESSED" => Self::Uncompressed,
            "GZIP" => Self::Gzip,
            "ZIP" => Self::Zip,
            "Snappy" => Self::Snappy,
            "HADOOP_SNAPPY" => Self::HadoopSnappy,
            other => {
                return Err(ApiError::invalid(format!(
                    "1 validation error detected: Value '{other}' at 'compressionFormat' failed to \
                     satisfy constraint: Member must satisfy enum value set: \
                     [UNCOMPRESSED, GZIP, ZIP, Snappy, HADOOP_SNAPPY]"
                )));
            }
        })
    }
    /// Firehose's default file extension for this format.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Uncompressed => "",
            Self::Gzip => ".gz",
            Self::Zip => ".zip",
            Self::Snappy => ".snappy",
            Self::HadoopSnappy => ".hsnappy",
        }
    }
}

/// Server-side encryption state of a stream.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamEncryption {
    /// `AWS_OWNED_CMK | CUSTOMER_MANAGED_CMK`, when enabled.
    pub key_type: Option<String>,
    /// The customer key, for `CUSTOMER_MANAGED_CMK`.
    pub key_arn: Option<String>,
    /// `ENABLED | DISABLED`.
    pub status: String,
    /// Times (ms) of recent Start/Stop calls, for the 25-per-24h limit.
    #[serde(default)]
    pub toggles_ms: Vec<i64>,
}

/// Which destination member the stream was created with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DestinationKind {
    /// `S3DestinationConfiguration` (described as both S3 and Extended S3, as AWS does).
    S3,
    /// `ExtendedS3DestinationConfiguration`.
    ExtendedS3,
    /// `HttpEndpointDestinationConfiguration`: records are POSTed to an endpoint; the
    /// destination (`StreamSpec::destination`) is its `S3Configuration`, the backup bucket.
    HttpEndpoint,
    /// `RedshiftDestinationConfiguration`: staged to its `S3Configuration` bucket, then loaded
    /// into a PostgreSQL table with COPY.
    Redshift,
    /// `AmazonopensearchserviceDestinationConfiguration`: indexed with `_bulk`.
    AmazonOpenSearchService,
    /// `ElasticsearchDestinationConfiguration`: indexed with `_bulk`.
    Elasticsearch,
    /// `SplunkDestinationConfiguration`: sent to an HTTP Event Collector.
    Splunk,
}

impl DestinationKind {
    /// The destination's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::S3 | Self::ExtendedS3 => "S3",
            Self::HttpEndpoint => "HTTP endpoint",
            Self::Redshift => "Redshift",
            Self::AmazonOpenSearchService => "Amazon OpenSearch Service",
            Self::Elasticsearch => "Elasticsearch",
            Self::Splunk => "Splunk",
        }
    }

    /// The `UpdateDestination` member that updates this kind of destination.
    pub fn update_member(self) -> &'static str {
        match self {
            Self::S3 | Self::ExtendedS3 => "ExtendedS3DestinationUpdate",
            Self::HttpEndpoint => "HttpEndpointDestinationUpdate",
            Self::Redshift => "RedshiftDestinationUpdate",
            Self::AmazonOpenSearchService => "AmazonopensearchserviceDestinationUpdate",
            Self::Elasticsearch => "ElasticsearchDestinationUpdate",
            Self::Splunk => "SplunkDestinationUpdate",
        }
    }

    /// The metric namespace of deliveries: `DeliveryTo<name>.Records` and so on.
    pub fn metric_name(self) -> &'static str {
        match self {
            Self::S3 | Self::ExtendedS3 => "S3",
            Self::HttpEndpoint => "HttpEndpoint",
            Self::Redshift => "Redshift",
            Self::AmazonOpenSearchService => "AmazonOpenSearchService",
            Self::Elasticsearch => "Elasticsearch",
            Self::Splunk => "Splunk",
        }
    }
}

/// A validated delivery stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamSpec {
    /// The stream's name (`[a-zA-Z0-9_.-]{1,64}`).
    pub name: String,
    /// `arn:aws:firehose:<region>:<account>:deliverystream/<name>`.
    pub arn: String,
    /// The region named in the ARN.
    pub region: String,
    /// `DirectPut`.
    pub stream_type: String,
    /// Starts at 1; incremented by each UpdateDestination.
    pub version: u64,
    /// Creation time, ms since the epoch.
    pub created_ms: i64,
    /// Last update time, ms since the epoch.
    pub updated_ms: Option<i64>,
    /// How the destination was given.
    pub kind: DestinationKind,
    /// The destination's configuration, normalised to the Extended S3 shape.
    pub destination: ExtendedS3DestinationConfiguration,
    /// `DirectPutSourceConfiguration`, echoed by Describe.
    pub direct_put_source: Option<Value>,
    /// Tags in insertion order.
    pub tags: Vec<Tag>,
    /// Server-side encryption state.
    pub encryption: StreamEncryption,
    /// The HTTP endpoint destination (kind `HttpEndpoint`); its `S3Configuration` is also
    /// in `destination`, with its processors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpEndpointDestinationConfiguration>,
    /// The Redshift destination (kind `Redshift`); its staging bucket is `destination`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redshift: Option<RedshiftDestinationConfiguration>,
    /// The OpenSearch or Elasticsearch destination; its backup bucket is `destination`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opensearch: Option<OpenSearchDestinationConfiguration>,
    /// The Splunk destination; its backup bucket is `destination`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub splunk: Option<SplunkDestinationConfiguration>,
}

fn validation(field: &str, value: &str, constraint: &str) -> ApiError {
    ApiError::invalid(format!(
        "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {constraint}"
    ))
}

/// Checks a stream name against `[a-zA-Z0-9_.-]{1,64}`.
pub fn validate_stream_name(name: &str) -> Result<()> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if name.is_empty() || name.len() > 64 || !ok_chars {
        return Err(validation(
            "deliveryStreamName",
            name,
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+ and have length between 1 and 64",
        ));
    }
    Ok(())
}

/// The bucket name of `arn:<partition>:s3:::NAME`, checked to be a safe folder name.
pub fn bucket_name(bucket_arn: &str) -> Result<&str> {
    let name = bucket_arn
        .strip_prefix("arn:")
        .and_then(|rest| rest.split_once(":s3:::"))
        .map(|(_, name)| name)
        .unwrap_or("");
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && name.bytes().any(|b| b != b'.');
    if !ok {
        return Err(validation(
            "bucketARN",
            bucket_arn,
            r"Member must satisfy regular expression pattern: arn:.*:s3:::[\w\.\-]{1,255}",
        ));
    }
    Ok(name)
}

fn validate_role(role: Option<&str>) -> Result<()> {
    let role = role.ok_or_else(|| ApiError::invalid("RoleARN is required."))?;
    let ok = role.starts_with("arn:")
        && role
            .split_once(":iam::")
            .and_then(|(_, rest)| rest.split_once(":role/"))
            .is_some_and(|(acct, name)| {
                acct.len() == 12 && acct.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty()
            });
    if !ok {
        return Err(validation(
            "roleARN",
            role,
            r"Member must satisfy regular expression pattern: arn:.*:iam::\d{12}:role/[a-zA-Z_0-9+=,.@\-_/]+",
        ));
    }
    Ok(())
}

fn validate_buffering(hints: Option<&BufferingHints>) -> Result<()> {
    let Some(h) = hints else { return Ok(()) };
    match (h.size_in_mbs, h.interval_in_seconds) {
        (Some(_), None) | (None, Some(_)) => {
            return Err(ApiError::invalid(
                "BufferingHints: SizeInMBs and IntervalInSeconds must be specified together.",
            ));
        }
        _ => {}
    }
    if let Some(size) = h.size_in_mbs
        && !(1..=128).contains(&size)
    {
        return Err(validation(
            "bufferingHints.sizeInMBs",
            &size.to_string(),
            "Member must have value between 1 and 128",
        ));
    }
    if let Some(interval) = h.interval_in_seconds
        && !(0..=900).contains(&interval)
    {
        return Err(validation(
            "bufferingHints.intervalInSeconds",
            &interval.to_string(),
            "Member must have value between 0 and 900",
        ));
    }
    Ok(())
}

fn validate_encryption_config(e: Option<&EncryptionConfiguration>) -> Result<()> {
    let Some(e) = e else { return Ok(()) };
    match (&e.no_encryption_config, &e.kms_encryption_config) {
        (Some(v), None) if v == "NoEncryption" => Ok(()),
        (None, Some(kms)) if kms.get("AWSKMSKeyARN").and_then(Value::as_str).is_some() => Ok(()),
        (None, None) => Ok(()),
        _ => Err(ApiError::invalid(
            "EncryptionConfiguration must be either NoEncryptionConfig=NoEncryption or \
             KMSEncryptionConfig with AWSKMSKeyARN.",
        )),
    }
}

const PROCESSOR_TYPES: &[&str] = &[
    "RecordDeAggregation",
    "Decompression",
    "CloudWatchLogProcessing",
    "Lambda",
    "MetadataExtraction",
    "AppendDelimiterToRecord",
    // Lakehose extension: a jq program (in MetadataExtractionQuery) mapping each record to
    // zero, one or many records.
    "Lakehose.Jq",
];
const PARAMETER_NAMES: &[&str] = &[
    "LambdaArn",
    "NumberOfRetries",
    "MetadataExtractionQuery",
    "JsonParsingEngine",
    "RoleArn",
    "BufferSizeInMBs",
    "BufferIntervalInSeconds",
    "SubRecordType",
    "Delimiter",
    "CompressionFormat",
    "DataMessageExtraction",
];

fn validate_processing(p: Option<&ProcessingConfiguration>) -> Result<()> {
    let Some(p) = p else { return Ok(()) };
    for processor in p.processors.iter().flatten() {
        if !PROCESSOR_TYPES.contains(&processor.kind.as_str()) {
            return Err(validation(
                "processingConfiguration.processors.member.type",
                &processor.kind,
                &format!(
                    "Member must satisfy enum value set: [{}]",
                    PROCESSOR_TYPES.join(", ")
                ),
            ));
        }
        for param in processor.parameters.iter().flatten() {
            if !PARAMETER_NAMES.contains(&param.name.as_str()) {
                return Err(validation(
                    "processingConfiguration.processors.member.parameters.member.parameterName",
                    &param.name,
                    &format!(
                        "Member must satisfy enum value set: [{}]",
                        PARAMETER_NAMES.join(", ")
                    ),
                ));
            }
            if param.value.is_empty() || param.value.chars().count() > 5120 {
                return Err(validation(
                    "processingConfiguration.processors.member.parameters.member.parameterValue",
                    &param.value,
                    "Member must have length between 1 and 5120",
                ));
            }
        }
    }
    Ok(())
}

fn validate_file_extension(ext: Option<&str>) -> Result<()> {
    let Some(ext) = ext else { return Ok(()) };
    let ok = ext.is_empty()
        || (ext.len() <= 128
            && ext.starts_with('.')
            && ext.len() > 1
            && ext[1..]
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b"!-_.*'()".contains(&b)));
    if !ok {
        return Err(validation(
            "fileExtension",
            ext,
            r"Member must satisfy regular expression pattern: ^$|\.[0-9a-z!\-_.*'()]+",
        ));
    }
    Ok(())
}

fn validate_time_zone(tz: Option<&str>) -> Result<()> {
    let Some(tz) = tz else { return Ok(()) };
    let ok = tz.len() <= 50
        && tz
            .bytes()
            .all(|b| b.is_ascii_alphabetic() || b"/_".contains(&b));
    if !ok {
        return Err(validation(
            "customTimeZone",
            tz,
            "Member must satisfy regular expression pattern: ^$|[a-zA-Z/_]+",
        ));
    }
    Ok(())
}

/// Validates the members S3 and Extended S3 share (bucket, role, prefixes, hints,
/// compression, encryption).
fn validate_s3_common(
    d: &ExtendedS3DestinationConfiguration,
    dynamic_partitioning: bool,
) -> Result<()> {
    validate_role(d.role_arn.as_deref())?;
    bucket_name(
        d.bucket_arn
            .as_deref()
            .ok_or_else(|| ApiError::invalid("BucketARN is required."))?,
    )?;
    let (prefix, error_prefix) = (d.prefix.as_deref(), d.error_output_prefix.as_deref());
    for (field, value) in [("prefix", prefix), ("errorOutputPrefix", error_prefix)] {
        if value.is_some_and(|v| v.chars().count() > 1024) {
            return Err(validation(
                field,
                "...",
                "Member must have length less than or equal to 1024",
            ));
        }
    }
    validate_prefixes(prefix, error_prefix, dynamic_partitioning)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    validate_buffering(d.buffering_hints.as_ref())?;
    if let Some(c) = d.compression_format.as_deref() {
        CompressionFormat::parse(c)?;
    }
    validate_encryption_config(d.encryption_configuration.as_ref())
}

/// Validates an Extended S3 destination configuration.
pub fn validate_destination(d: &ExtendedS3DestinationConfiguration) -> Result<()> {
    let dynamic = d
        .dynamic_partitioning_configuration
        .as_ref()
        .and_then(|c| c.enabled)
        .unwrap_or(false);
    validate_s3_common(d, dynamic)?;
    if let Some(retry) = d
        .dynamic_partitioning_configuration
        .as_ref()
        .and_then(|c| c.retry_options.as_ref())
        .and_then(|r| r.duration_in_seconds)
        && !(0..=7200).contains(&retry)
    {
        return Err(validation(
            "dynamicPartitioningConfiguration.retryOptions.durationInSeconds",
            &retry.to_string(),
            "Member must have value between 0 and 7200",
        ));
    }
    validate_processing(d.processing_configuration.as_ref())?;
    validate_file_extension(d.file_extension.as_deref())?;
    validate_time_zone(d.custom_time_zone.as_deref())?;
    match d.s3_backup_mode.as_deref() {
        None | Some("Disabled") => {}
        Some("Enabled") => {
            let backup = d.s3_backup_configuration.as_ref().ok_or_else(|| {
                ApiError::invalid("S3BackupConfiguration is required when S3BackupMode is Enabled.")
            })?;
            validate_s3_common(&s3_to_extended(backup.clone()), false)?;
        }
        Some(other) => {
            return Err(validation(
                "s3BackupMode",
                other,
                "Member must satisfy enum value set: [Disabled, Enabled]",
            ));
        }
    }
    if let Some(conversion) = &d.data_format_conversion_configuration {
        let enabled = conversion
            .get("Enabled")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let compression = d.compression_format.as_deref().unwrap_or("UNCOMPRESSED");
        if enabled && compression != "UNCOMPRESSED" {
            return Err(ApiError::invalid(
                "CompressionFormat must be UNCOMPRESSED when DataFormatConversionConfiguration is enabled.",
            ));
        }
    }
    Ok(())
}

/// Validates an HTTP endpoint destination (the URL's egress policy is checked by the engine).
pub fn validate_http_destination(h: &HttpEndpointDestinationConfiguration) -> Result<()> {
    let endpoint = h
        .endpoint_configuration
        .as_ref()
        .ok_or_else(|| ApiError::invalid("EndpointConfiguration is required."))?;
    let url = endpoint
        .url
        .as_deref()
        .ok_or_else(|| ApiError::invalid("EndpointConfiguration.Url is required."))?;
    if url.is_empty() || url.chars().count() > 1000 {
        return Err(validation(
            "endpointConfiguration.url",
            url,
            "Member must have length between 1 and 1000",
        ));
    }
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(validation(
            "endpointConfiguration.url",
            url,
            "Member must satisfy regular expression pattern: ^https://.*",
        ));
    }
    if let Some(name) = &endpoint.name
        && (name.is_empty() || name.chars().count() > 256)
    {
        return Err(validation(
            "endpointConfiguration.name",
            name,
            "Member must have length between 1 and 256",
        ));
    }
    if let Some(key) = &endpoint.access_key
        && key.len() > 4096
    {
        return Err(validation(
            "endpointConfiguration.accessKey",
            "***",
            "Member must have length less than or equal to 4096",
        ));
    }
    validate_buffering(h.buffering_hints.as_ref())?;
    if let Some(size) = h.buffering_hints.as_ref().and_then(|b| b.size_in_mbs)
        && !(1..=64).contains(&size)
    {
        return Err(validation(
            "bufferingHints.sizeInMBs",
            &size.to_string(),
            "Member must have value between 1 and 64",
        ));
    }
    if let Some(r) = &h.request_configuration {
        match r.content_encoding.as_deref() {
            None | Some("NONE") | Some("GZIP") => {}
            Some(other) => {
                return Err(validation(
                    "requestConfiguration.contentEncoding",
                    other,
                    "Member must satisfy enum value set: [NONE, GZIP]",
                ));
            }
        }
        let attrs = r.common_attributes.as_deref().unwrap_or_default();
        if attrs.len() > 50 {
            return Err(validation(
                "requestConfiguration.commonAttributes",
                "[...]",
                "Member must have length less than or equal to 50",
            ));
        }
        for a in attrs {
            if a.name.is_empty() || a.name.chars().count() > 256 {
                return Err(validation(
                    "requestConfiguration.commonAttributes.member.attributeName",
                    &a.name,
                    "Member must have length between 1 and 256",
                ));
            }
            if a.value.chars().count() > 1024 {
                return Err(validation(
                    "requestConfiguration.commonAttributes.member.attributeValue",
                    "...",
                    "Member must have length less than or equal to 1024",
                ));
            }
        }
    }
    if let Some(retry) = h.retry_options.as_ref().and_then(|r| r.duration_in_seconds)
        && !(0..=7200).contains(&retry)
    {
        return Err(validation(
            "retryOptions.durationInSeconds",
            &retry.to_string(),
            "Member must have value between 0 and 7200",
        ));
    }
    match h.s3_backup_mode.as_deref() {
        None | Some("FailedDataOnly") | Some("AllData") => {}
        Some(other) => {
            return Err(validation(
                "s3BackupMode",
                other,
                "Member must satisfy enum value set: [FailedDataOnly, AllData]",
            ));
        }
    }
    if h.secrets_manager_configuration.is_some() {
        return Err(ApiError::invalid(
            "SecretsManagerConfiguration is not supported by Lakehose; use EndpointConfiguration.AccessKey.",
        ));
    }
    validate_processing(h.processing_configuration.as_ref())?;
    let s3 = h
        .s3_configuration
        .as_ref()
        .ok_or_else(|| ApiError::invalid("S3Configuration is required."))?;
    validate_s3_common(&s3_to_extended(s3.clone()), false)
}

/// The backup bucket's destination of an HTTP endpoint stream: its `S3Configuration`, with
/// the endpoint's processors (so the pipeline runs them as for S3 streams).
fn http_backing(h: &HttpEndpointDestinationConfiguration) -> ExtendedS3DestinationConfiguration {
    remote::backing(
        h.s3_configuration.as_ref(),
        h.processing_configuration.as_ref(),
    )
}

fn validate_tags(tags: &[Tag]) -> Result<()> {
    for tag in tags {
        if tag.key.is_empty() || tag.key.chars().count() > 128 {
            return Err(validation(
                "tags.member.key",
                &tag.key,
                "Member must have length between 1 and 128",
            ));
        }
        if tag.key.starts_with("aws:") {
            return Err(ApiError::invalid(format!(
                "Tag key '{}' is invalid: keys must not start with 'aws:'.",
                tag.key
            )));
        }
        if tag
            .value
            .as_deref()
            .is_some_and(|v| v.chars().count() > 256)
        {
            return Err(validation(
                "tags.member.value",
                tag.value.as_deref().unwrap_or_default(),
                "Member must have length less than or equal to 256",
            ));
        }
    }
    Ok(())
}

fn validate_encryption_input(input: &EncryptionInput) -> Result<()> {
    match (input.key_type.as_deref(), input.key_arn.as_deref()) {
        (Some("AWS_OWNED_CMK"), None) => Ok(()),
        (Some("AWS_OWNED_CMK"), Some(_)) => Err(ApiError::invalid(
            "KeyARN must not be specified when KeyType is AWS_OWNED_CMK.",
        )),
        (Some("CUSTOMER_MANAGED_CMK"), Some(arn))
            if arn.starts_with("arn:") && arn.contains(":key/") =>
        {
            Ok(())
        }
        (Some("CUSTOMER_MANAGED_CMK"), Some(arn)) => Err(ApiError::new(
            ErrorKind::InvalidKmsResource,
            format!(
                "KeyARN '{arn}' is not a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)."
            ),
        )),
        (Some("CUSTOMER_MANAGED_CMK"), None) => Err(ApiError::invalid(
            "KeyARN is required when KeyType is CUSTOMER_MANAGED_CMK.",
        )),
        (Some(other), _) => Err(validation(
            "deliveryStreamEncryptionConfigurationInput.keyType",
            other,
            "Member must satisfy enum value set: [AWS_OWNED_CMK, CUSTOMER_MANAGED_CMK]",
        )),
        (None, _) => Err(ApiError::invalid("KeyType is required.")),
    }
}

fn s3_to_extended(s3: S3DestinationConfiguration) -> ExtendedS3DestinationConfiguration {
    ExtendedS3DestinationConfiguration {
        role_arn: s3.role_arn,
        bucket_arn: s3.bucket_arn,
        prefix: s3.prefix,
        error_output_prefix: s3.error_output_prefix,
        buffering_hints: s3.buffering_hints,
        compression_format: s3.compression_format,
        encryption_configuration: s3.encryption_configuration,
        cloud_watch_logging_options: s3.cloud_watch_logging_options,
        ..Default::default()
    }
}

/// Names of the destination members that are set, for "exactly one destination".
fn other_destinations(fields: &[(&'static str, bool)]) -> Vec<&'static str> {
    fields
        .iter()
        .filter(|(_, set)| *set)
        .map(|(name, _)| *name)
        .collect()
}

impl StreamSpec {
    /// Validates a CreateDeliveryStream request into a spec (version 1, created `now_ms`).
    pub fn from_create(
        input: CreateDeliveryStreamInput,
        region: &str,
        now_ms: i64,
    ) -> Result<Self> {
        let name = input
            .delivery_stream_name
            .ok_or_else(|| ApiError::invalid("DeliveryStreamName is required."))?;
        validate_stream_name(&name)?;
        let stream_type = input
            .delivery_stream_type
            .unwrap_or_else(|| "DirectPut".into());
        match stream_type.as_str() {
            "DirectPut" => {}
            "KinesisStreamAsSource" | "MSKAsSource" | "DatabaseAsSource" => {
                return Err(ApiError::invalid(format!(
                    "DeliveryStreamType {stream_type} is not supported by Lakehose; use DirectPut."
                )));
            }
            other => {
                return Err(validation(
                    "deliveryStreamType",
                    other,
                    "Member must satisfy enum value set: [DirectPut, KinesisStreamAsSource, MSKAsSource, DatabaseAsSource]",
                ));
            }
        }
        let set = other_destinations(&[
            (
                "S3DestinationConfiguration",
                input.s3_destination_configuration.is_some(),
            ),
            (
                "ExtendedS3DestinationConfiguration",
                input.extended_s3_destination_configuration.is_some(),
            ),
            (
                "RedshiftDestinationConfiguration",
                input.redshift_destination_configuration.is_some(),
            ),
            (
                "ElasticsearchDestinationConfiguration",
                input.elasticsearch_destination_configuration.is_some(),
            ),
            (
                "AmazonopensearchserviceDestinationConfiguration",
                input
                    .amazonopensearchservice_destination_configuration
                    .is_some(),
            ),
            (
                "AmazonOpenSearchServerlessDestinationConfiguration",
                input
                    .amazon_open_search_serverless_destination_configuration
                    .is_some(),
            ),
            (
                "SplunkDestinationConfiguration",
                input.splunk_destination_configuration.is_some(),
            ),
            (
                "HttpEndpointDestinationConfiguration",
                input.http_endpoint_destination_configuration.is_some(),
            ),
            (
                "SnowflakeDestinationConfiguration",
                input.snowflake_destination_configuration.is_some(),
            ),
            (
                "IcebergDestinationConfiguration",
                input.iceberg_destination_configuration.is_some(),
            ),
        ]);
        if set.len() != 1 {
            return Err(ApiError::invalid(format!(
                "Exactly one destination configuration must be specified; got {}.",
                if set.is_empty() {
                    "none".to_string()
                } else {
                    set.join(", ")
                }
            )));
        }
        let (mut http, mut redshift, mut opensearch, mut splunk) = (None, None, None, None);
        let (kind, destination) = match (
            input.s3_destination_configuration,
            input.extended_s3_destination_configuration,
            input.http_endpoint_destination_configuration,
        ) {
            (Some(s3), None, None) => (DestinationKind::S3, s3_to_extended(s3)),
            (None, Some(ext), None) => (DestinationKind::ExtendedS3, ext),
            _ if input.redshift_destination_configuration.is_some() => {
                let r = input.redshift_destination_configuration.unwrap_or_default();
                if r.s3_update.is_some() || r.s3_backup_update.is_some() {
                    return Err(ApiError::invalid(
                        "S3Update and S3BackupUpdate are only valid in RedshiftDestinationUpdate.",
                    ));
                }
                validate_redshift(&r)?;
                let backing = remote::redshift_backing(&r);
                redshift = Some(r);
                (DestinationKind::Redshift, backing)
            }
            _ if input
                .amazonopensearchservice_destination_configuration
                .is_some()
                || input.elasticsearch_destination_configuration.is_some() =>
            {
                let (kind, o) = match input.amazonopensearchservice_destination_configuration {
                    Some(o) => (DestinationKind::AmazonOpenSearchService, o),
                    None => (
                        DestinationKind::Elasticsearch,
                        input
                            .elasticsearch_destination_configuration
                            .unwrap_or_default(),
                    ),
                };
                if o.s3_update.is_some() {
                    return Err(ApiError::invalid(
                        "S3Update is only valid in destination updates; use S3Configuration.",
                    ));
                }
                validate_opensearch(&o)?;
                let backing = remote::backing(
                    o.s3_configuration.as_ref(),
                    o.processing_configuration.as_ref(),
                );
                opensearch = Some(o);
                (kind, backing)
            }
            _ if input.splunk_destination_configuration.is_some() => {
                let sp = input.splunk_destination_configuration.unwrap_or_default();
                if sp.s3_update.is_some() {
                    return Err(ApiError::invalid(
                        "S3Update is only valid in SplunkDestinationUpdate; use S3Configuration.",
                    ));
                }
                validate_splunk(&sp)?;
                let backing = remote::backing(
                    sp.s3_configuration.as_ref(),
                    sp.processing_configuration.as_ref(),
                );
                splunk = Some(sp);
                (DestinationKind::Splunk, backing)
            }
            (None, None, Some(mut h)) => {
                if h.s3_update.is_some() {
                    return Err(ApiError::invalid(
                        "S3Update is only valid in HttpEndpointDestinationUpdate; use S3Configuration.",
                    ));
                }
                validate_http_destination(&h)?;
                h.s3_backup_mode
                    .get_or_insert_with(|| "FailedDataOnly".into());
                let backing = http_backing(&h);
                http = Some(h);
                (DestinationKind::HttpEndpoint, backing)
            }
            _ => {
                return Err(ApiError::invalid(format!(
                    "{} is not supported by this Lakehose version; use ExtendedS3DestinationConfiguration.",
                    set[0]
                )));
            }
        };
        if matches!(kind, DestinationKind::S3 | DestinationKind::ExtendedS3) {
            validate_destination(&destination)?;
        }
        let tags = input.tags.unwrap_or_default();
        if tags.len() > 50 {
            return Err(ApiError::new(
                ErrorKind::LimitExceeded,
                "A stream can have at most 50 tags.",
            ));
        }
        validate_tags(&tags)?;
        let mut encryption = StreamEncryption {
            status: "DISABLED".into(),
            ..Default::default()
        };
        if let Some(input) = &input.delivery_stream_encryption_configuration_input {
            validate_encryption_input(input)?;
            encryption.key_type = input.key_type.clone();
            encryption.key_arn = input.key_arn.clone();
            encryption.status = "ENABLED".into();
        }
        let arn = format!("arn:aws:firehose:{region}:{ACCOUNT_ID}:deliverystream/{name}");
        let mut spec = StreamSpec {
            name,
            arn,
            region: region.to_string(),
            stream_type,
            version: 1,
            created_ms: now_ms,
            updated_ms: None,
            kind,
            destination,
            direct_put_source: input.direct_put_source_configuration,
            tags,
            encryption,
            http,
            redshift,
            opensearch,
            splunk,
        };
        remote::fill_defaults(&mut spec);
        Ok(spec)
    }

    /// Applies an UpdateDestination request (version check, merge, re-validation, version+1).
    pub fn apply_update(&mut self, input: &UpdateDestinationInput, now_ms: i64) -> Result<()> {
        let current = input
            .current_delivery_stream_version_id
            .as_deref()
            .ok_or_else(|| ApiError::invalid("CurrentDeliveryStreamVersionId is required."))?;
        if current.parse::<u64>().ok() != Some(self.version) {
            return Err(ApiError::new(
                ErrorKind::ConcurrentModification,
                format!(
                    "Cannot update firehose {}: the current version id {current} does not match the \
                     stream's version id {}.",
                    self.name, self.version
                ),
            ));
        }
        let destination_id = input.destination_id.as_deref().unwrap_or_default();
        if destination_id != DESTINATION_ID {
            return Err(ApiError::invalid(format!(
                "Destination {destination_id} not found in firehose {}.",
                self.name
            )));
        }
        let others = [
            input.redshift_destination_update.is_some(),
            input.elasticsearch_destination_update.is_some(),
            input.amazonopensearchservice_destination_update.is_some(),
            input
                .amazon_open_search_serverless_destination_update
                .is_some(),
            input.splunk_destination_update.is_some(),
            input.http_endpoint_destination_update.is_some(),
            input.snowflake_destination_update.is_some(),
            input.iceberg_destination_update.is_some(),
        ];
        let count = others.iter().filter(|x| **x).count()
            + usize::from(input.s3_destination_update.is_some())
            + usize::from(input.extended_s3_destination_update.is_some());
        if count != 1 {
            return Err(ApiError::invalid(
                "Exactly one destination update must be specified.",
            ));
        }
        if let Some(update) = &input.http_endpoint_destination_update {
            return self.apply_http_update(update, now_ms);
        }
        let opensearch_update = input
            .amazonopensearchservice_destination_update
            .as_ref()
            .map(|u| (DestinationKind::AmazonOpenSearchService, u))
            .or(input
                .elasticsearch_destination_update
                .as_ref()
                .map(|u| (DestinationKind::Elasticsearch, u)));
        match (
            self.kind,
            &input.redshift_destination_update,
            opensearch_update,
            &input.splunk_destination_update,
        ) {
            (DestinationKind::Redshift, Some(update), None, None) => {
                let next = remote::update_redshift(
                    self.redshift.as_ref().unwrap_or(&Default::default()),
                    update,
                )?;
                self.destination = remote::redshift_backing(&next);
                self.redshift = Some(next);
            }
            (kind, None, Some((update_kind, update)), None) if kind == update_kind => {
                let next = remote::update_opensearch(
                    self.opensearch.as_ref().unwrap_or(&Default::default()),
                    update,
                )?;
                self.destination = remote::backing(
                    next.s3_configuration.as_ref(),
                    next.processing_configuration.as_ref(),
                );
                self.opensearch = Some(next);
            }
            (DestinationKind::Splunk, None, None, Some(update)) => {
                let next = remote::update_splunk(
                    self.splunk.as_ref().unwrap_or(&Default::default()),
                    update,
                )?;
                self.destination = remote::backing(
                    next.s3_configuration.as_ref(),
                    next.processing_configuration.as_ref(),
                );
                self.splunk = Some(next);
            }
            (DestinationKind::S3 | DestinationKind::ExtendedS3, None, None, None) => {}
            (kind, ..) => {
                return Err(ApiError::invalid(format!(
                    "This stream has a {} destination; update it with {}. Changing the destination type is not supported by this Lakehose version.",
                    kind.name(),
                    kind.update_member()
                )));
            }
        }
        if !matches!(self.kind, DestinationKind::S3 | DestinationKind::ExtendedS3) {
            remote::fill_defaults(self);
            self.version += 1;
            self.updated_ms = Some(now_ms);
            return Ok(());
        }
        let mut merged = self.destination.clone();
        if let Some(s3) = &input.s3_destination_update {
            merge_common(&mut merged, s3_to_extended(s3.clone()));
        } else if let Some(ext) = &input.extended_s3_destination_update {
            let was_dynamic = self.dynamic_partitioning();
            let update = ext.clone();
            if let Some(dp) = &update.dynamic_partitioning_configuration
                && dp.enabled.is_some_and(|e| e != was_dynamic)
            {
                return Err(ApiError::invalid(
                    "Dynamic partitioning can only be enabled at creation and cannot be disabled.",
                ));
            }
            if merged.s3_backup_mode.as_deref() == Some("Enabled")
                && update.s3_backup_mode.as_deref() == Some("Disabled")
            {
                return Err(ApiError::invalid(
                    "S3BackupMode cannot be changed from Enabled to Disabled.",
                ));
            }
            merge_extended(&mut merged, update);
            self.kind = DestinationKind::ExtendedS3;
        } else {
            return Err(ApiError::invalid(
                "Changing the destination type is not supported by this Lakehose version.",
            ));
        }
        validate_destination(&merged)?;
        self.destination = merged;
        self.version += 1;
        self.updated_ms = Some(now_ms);
        Ok(())
    }

    fn apply_http_update(
        &mut self,
        update: &HttpEndpointDestinationConfiguration,
        now_ms: i64,
    ) -> Result<()> {
        let Some(current) = &self.http else {
            return Err(ApiError::invalid(
                "Changing the destination type is not supported by this Lakehose version.",
            ));
        };
        if update.s3_configuration.is_some() {
            return Err(ApiError::invalid(
                "Use S3Update, not S3Configuration, in HttpEndpointDestinationUpdate.",
            ));
        }
        let mut next = current.clone();
        if let Some(e) = &update.endpoint_configuration {
            let mut endpoint = e.clone();
            // The access key is kept unless the update names one (it is never described).
            if endpoint.access_key.is_none() {
                endpoint.access_key = current
                    .endpoint_configuration
                    .as_ref()
                    .and_then(|c| c.access_key.clone());
            }
            next.endpoint_configuration = Some(endpoint);
        }
        macro_rules! take {
            ($($f:ident),*) => { $( if update.$f.is_some() { next.$f = update.$f.clone(); } )* };
        }
        take!(
            buffering_hints,
            cloud_watch_logging_options,
            request_configuration,
            processing_configuration,
            role_arn,
            retry_options,
            s3_backup_mode,
            secrets_manager_configuration
        );
        if current.s3_backup_mode.as_deref() == Some("AllData")
            && next.s3_backup_mode.as_deref() == Some("FailedDataOnly")
        {
            return Err(ApiError::invalid(
                "S3BackupMode cannot be changed from AllData to FailedDataOnly.",
            ));
        }
        if let Some(s3) = &update.s3_update {
            next.s3_configuration = Some(remote::merge_s3(next.s3_configuration.as_ref(), s3));
        }
        validate_http_destination(&next)?;
        self.destination = http_backing(&next);
        self.http = Some(next);
        self.version += 1;
        self.updated_ms = Some(now_ms);
        Ok(())
    }

    /// How long a destination outside the object store retries a failed batch, in seconds
    /// (`RetryOptions.DurationInSeconds`, with each destination's default; 0 for S3 streams).
    pub fn retry_seconds(&self) -> u64 {
        let (options, default) = match self.kind {
            DestinationKind::HttpEndpoint => (
                self.http.as_ref().and_then(|h| h.retry_options.as_ref()),
                300,
            ),
            DestinationKind::Redshift => (
                self.redshift
                    .as_ref()
                    .and_then(|r| r.retry_options.as_ref()),
                remote::REDSHIFT_RETRY_DEFAULT_S,
            ),
            DestinationKind::AmazonOpenSearchService | DestinationKind::Elasticsearch => (
                self.opensearch
                    .as_ref()
                    .and_then(|o| o.retry_options.as_ref()),
                remote::OPENSEARCH_RETRY_DEFAULT_S,
            ),
            DestinationKind::Splunk => (
                self.splunk.as_ref().and_then(|s| s.retry_options.as_ref()),
                remote::SPLUNK_RETRY_DEFAULT_S,
            ),
            DestinationKind::S3 | DestinationKind::ExtendedS3 => (None, 0),
        };
        options
            .and_then(|r| r.duration_in_seconds)
            .unwrap_or(default)
            .clamp(0, 7200) as u64
    }

    /// Whether records are delivered somewhere other than the object store (the bucket then
    /// only receives failures and backups, or, for Redshift, the staged batches).
    pub fn is_remote(&self) -> bool {
        !matches!(self.kind, DestinationKind::S3 | DestinationKind::ExtendedS3)
    }

    /// Whether dynamic partitioning is enabled.
    pub fn dynamic_partitioning(&self) -> bool {
        self.destination
            .dynamic_partitioning_configuration
            .as_ref()
            .and_then(|c| c.enabled)
            .unwrap_or(false)
    }

    /// The bucket name of the destination.
    pub fn bucket(&self) -> &str {
        bucket_name(self.destination.bucket_arn.as_deref().unwrap_or_default()).unwrap_or_default()
    }

    /// `(size in bytes, interval in seconds)` with Firehose's defaults (5 MiB, 300 s).
    pub fn buffering(&self) -> (u64, u64) {
        let (h, default_interval) = match (&self.http, &self.opensearch, &self.splunk) {
            (Some(http), _, _) => (http.buffering_hints.clone(), 300),
            (_, Some(o), _) => (o.buffering_hints.clone(), 300),
            (_, _, Some(s)) => (s.buffering_hints.clone(), 60),
            _ => (self.destination.buffering_hints.clone(), 300),
        };
        let h = h.unwrap_or_default();
        let size = h.size_in_mbs.unwrap_or(5).clamp(1, 128) as u64;
        let interval = h
            .interval_in_seconds
            .unwrap_or(default_interval)
            .clamp(0, 900) as u64;
        (size * 1024 * 1024, interval)
    }

    /// The compression of delivered objects.
    pub fn compression(&self) -> CompressionFormat {
        self.destination
            .compression_format
            .as_deref()
            .and_then(|c| CompressionFormat::parse(c).ok())
            .unwrap_or(CompressionFormat::Uncompressed)
    }

    /// The file extension of delivered objects (`FileExtension` or the compression's default).
    pub fn file_extension(&self) -> String {
        self.destination
            .file_extension
            .clone()
            .unwrap_or_else(|| self.compression().extension().to_string())
    }

    /// The parsed prefix and error-output prefix (validated at creation).
    pub fn prefixes(&self) -> (PrefixTemplate, Option<PrefixTemplate>) {
        validate_prefixes(
            self.destination.prefix.as_deref(),
            self.destination.error_output_prefix.as_deref(),
            self.dynamic_partitioning(),
        )
        .unwrap_or_default()
    }

    /// The `DeliveryStreamDescription` shape, with AWS's defaults filled in.
    pub fn describe(&self) -> Value {
        let d = &self.destination;
        let (size, interval) = self.buffering();
        let extended = {
            let mut m = serde_json::Map::new();
            m.insert("RoleARN".into(), json!(d.role_arn));
            m.insert("BucketARN".into(), json!(d.bucket_arn));
            m.insert("Prefix".into(), json!(d.prefix.clone().unwrap_or_default()));
            if let Some(p) = &d.error_output_prefix {
                m.insert("ErrorOutputPrefix".into(), json!(p));
            }
            m.insert(
                "BufferingHints".into(),
                json!({"SizeInMBs": size / (1024 * 1024), "IntervalInSeconds": interval}),
            );
            m.insert("CompressionFormat".into(), json!(self.compression()));
            m.insert(
                "EncryptionConfiguration".into(),
                serde_json::to_value(d.encryption_configuration.clone().unwrap_or(
                    EncryptionConfiguration {
                        no_encryption_config: Some("NoEncryption".into()),
                        kms_encryption_config: None,
                    },
                ))
                .unwrap_or_default(),
            );
            m.insert(
                "CloudWatchLoggingOptions".into(),
                serde_json::to_value(d.cloud_watch_logging_options.clone().unwrap_or(
                    CloudWatchLoggingOptions {
                        enabled: Some(false),
                        ..Default::default()
                    },
                ))
                .unwrap_or_default(),
            );
            m
        };
        let mut ext = extended.clone();
        ext.insert(
            "ProcessingConfiguration".into(),
            serde_json::to_value(d.processing_configuration.clone().unwrap_or(
                ProcessingConfiguration {
                    enabled: Some(false),
                    processors: Some(vec![]),
                },
            ))
            .unwrap_or_default(),
        );
        ext.insert(
            "S3BackupMode".into(),
            json!(
                d.s3_backup_mode
                    .clone()
                    .unwrap_or_else(|| "Disabled".into())
            ),
        );
        if let Some(backup) = &d.s3_backup_configuration {
            let mut b = serde_json::to_value(backup).unwrap_or_default();
            if let Some(obj) = b.as_object_mut() {
                obj.entry("BufferingHints")
                    .or_insert(json!({"SizeInMBs": 5, "IntervalInSeconds": 300}));
                obj.entry("CompressionFormat")
                    .or_insert(json!("UNCOMPRESSED"));
                obj.entry("EncryptionConfiguration")
                    .or_insert(json!({"NoEncryptionConfig": "NoEncryption"}));
            }
            ext.insert("S3BackupDescription".into(), b);
        }
        if let Some(v) = &d.data_format_conversion_configuration {
            ext.insert("DataFormatConversionConfiguration".into(), v.clone());
        }
        if let Some(v) = &d.dynamic_partitioning_configuration {
            ext.insert(
                "DynamicPartitioningConfiguration".into(),
                serde_json::to_value(v).unwrap_or_default(),
            );
        }
        if let Some(v) = &d.file_extension {
            ext.insert("FileExtension".into(), json!(v));
        }
        if let Some(v) = &d.custom_time_zone {
            ext.insert("CustomTimeZone".into(), json!(v));
        }
        let mut destination = match &self.http {
            None if self.redshift.is_some()
                || self.opensearch.is_some()
                || self.splunk.is_some() =>
            {
                let mut s3 = extended.clone();
                s3.insert(
                    "BufferingHints".into(),
                    serde_json::to_value(d.buffering_hints.clone().unwrap_or(BufferingHints {
                        size_in_mbs: Some(5),
                        interval_in_seconds: Some(300),
                    }))
                    .unwrap_or_default(),
                );
                let mut out = json!({ "DestinationId": DESTINATION_ID });
                if let Some((member, value)) = self.describe_remote(s3) {
                    out[member] = value;
                }
                out
            }
            Some(h) => {
                let mut s3 = extended.clone();
                // The backup bucket's own hints (the endpoint's are described below).
                let hints = d.buffering_hints.clone().unwrap_or(BufferingHints {
                    size_in_mbs: Some(5),
                    interval_in_seconds: Some(300),
                });
                s3.insert(
                    "BufferingHints".into(),
                    serde_json::to_value(hints).unwrap_or_default(),
                );
                json!({
                    "DestinationId": DESTINATION_ID,
                    "HttpEndpointDestinationDescription": self.describe_http(h, size, interval, s3),
                })
            }
            None => json!({
                "DestinationId": DESTINATION_ID,
                "ExtendedS3DestinationDescription": Value::Object(ext),
            }),
        };
        if self.kind == DestinationKind::S3 {
            destination["S3DestinationDescription"] = Value::Object(extended);
        }
        let mut encryption = json!({ "Status": self.encryption.status });
        if let Some(t) = &self.encryption.key_type {
            encryption["KeyType"] = json!(t);
        }
        if let Some(a) = &self.encryption.key_arn {
            encryption["KeyARN"] = json!(a);
        }
        let mut out = json!({
            "DeliveryStreamName": self.name,
            "DeliveryStreamARN": self.arn,
            "DeliveryStreamStatus": "ACTIVE",
            "DeliveryStreamEncryptionConfiguration": encryption,
            "DeliveryStreamType": self.stream_type,
            "VersionId": self.version.to_string(),
            "CreateTimestamp": self.created_ms as f64 / 1000.0,
            "Destinations": [destination],
            "HasMoreDestinations": false,
        });
        if let Some(updated) = self.updated_ms {
            out["LastUpdateTimestamp"] = json!(updated as f64 / 1000.0);
        }
        if let Some(source) = &self.direct_put_source {
            out["Source"] = json!({ "DirectPutSourceDescription": source });
        }
        out
    }

    fn describe_http(
        &self,
        h: &HttpEndpointDestinationConfiguration,
        size: u64,
        interval: u64,
        s3: serde_json::Map<String, Value>,
    ) -> Value {
        let endpoint = h.endpoint_configuration.clone().unwrap_or_default();
        let mut e = serde_json::Map::new();
        e.insert("Url".into(), json!(endpoint.url));
        if let Some(name) = endpoint.name {
            e.insert("Name".into(), json!(name));
        }
        let request = h.request_configuration.clone().unwrap_or_default();
        json!({
            "EndpointConfiguration": Value::Object(e),
            "BufferingHints": {"SizeInMBs": size / (1024 * 1024), "IntervalInSeconds": interval},
            "CloudWatchLoggingOptions": serde_json::to_value(h.cloud_watch_logging_options.clone().unwrap_or(
                CloudWatchLoggingOptions { enabled: Some(false), ..Default::default() },
            )).unwrap_or_default(),
            "RequestConfiguration": {
                "ContentEncoding": request.content_encoding.unwrap_or_else(|| "NONE".into()),
                "CommonAttributes": serde_json::to_value(request.common_attributes.unwrap_or_default()).unwrap_or_default(),
            },
            "ProcessingConfiguration": serde_json::to_value(h.processing_configuration.clone().unwrap_or(
                ProcessingConfiguration { enabled: Some(false), processors: Some(vec![]) },
            )).unwrap_or_default(),
            "RoleARN": h.role_arn,
            "RetryOptions": {"DurationInSeconds": self.retry_seconds()},
            "S3BackupMode": h.s3_backup_mode.clone().unwrap_or_else(|| "FailedDataOnly".into()),
            "S3DestinationDescription": Value::Object(s3),
        })
    }

    /// Adds or replaces tags (at most 50 in all).
    pub fn tag(&mut self, tags: &[Tag]) -> Result<()> {
        if tags.is_empty() || tags.len() > 50 {
            return Err(validation(
                "tags",
                "[...]",
                "Member must have length between 1 and 50",
            ));
        }
        validate_tags(tags)?;
        let mut next = self.tags.clone();
        for tag in tags {
            match next.iter_mut().find(|t| t.key == tag.key) {
                Some(existing) => existing.value = tag.value.clone(),
                None => next.push(tag.clone()),
            }
        }
        if next.len() > 50 {
            return Err(ApiError::new(
                ErrorKind::LimitExceeded,
                format!(
                    "Firehose {} would have {} tags; the limit is 50.",
                    self.name,
                    next.len()
                ),
            ));
        }
        self.tags = next;
        Ok(())
    }

    /// Removes tags by key (unknown keys are ignored, as AWS does).
    pub fn untag(&mut self, keys: &[String]) -> Result<()> {
        if keys.is_empty() || keys.len() > 50 {
            return Err(validation(
                "tagKeys",
                "[...]",
                "Member must have length between 1 and 50",
            ));
        }
        self.tags.retain(|t| !keys.contains(&t.key));
        Ok(())
    }

    /// Start or stop server-side encryption (status set to ENABLED/DISABLED; the engine
    /// moves a change through ENABLING/DISABLING while it switches the stream's log).
    pub fn set_encryption(&mut self, input: Option<&EncryptionInput>, now_ms: i64) -> Result<()> {
        let day_ago = now_ms - 24 * 3600 * 1000;
        self.encryption.toggles_ms.retain(|t| *t > day_ago);
        if self.encryption.toggles_ms.len() >= ENCRYPTION_TOGGLES_PER_DAY {
            return Err(ApiError::new(
                ErrorKind::LimitExceeded,
                format!(
                    "Firehose {}: at most {ENCRYPTION_TOGGLES_PER_DAY} Start/StopDeliveryStreamEncryption \
                     calls are allowed in 24 hours.",
                    self.name
                ),
            ));
        }
        match input {
            Some(input) => {
                validate_encryption_input(input)?;
                self.encryption.key_type = input.key_type.clone();
                self.encryption.key_arn = input.key_arn.clone();
                self.encryption.status = "ENABLED".into();
            }
            None => {
                self.encryption.key_type = None;
                self.encryption.key_arn = None;
                self.encryption.status = "DISABLED".into();
            }
        }
        self.encryption.toggles_ms.push(now_ms);
        Ok(())
    }
}

fn merge_common(
    into: &mut ExtendedS3DestinationConfiguration,
    from: ExtendedS3DestinationConfiguration,
) {
    macro_rules! take {
        ($($f:ident),*) => { $( if from.$f.is_some() { into.$f = from.$f; } )* };
    }
    take!(
        role_arn,
        bucket_arn,
        prefix,
        error_output_prefix,
        buffering_hints,
        compression_format,
        encryption_configuration,
        cloud_watch_logging_options
    );
}

fn merge_extended(
    into: &mut ExtendedS3DestinationConfiguration,
    from: ExtendedS3DestinationConfiguration,
) {
    macro_rules! take {
        ($($f:ident),*) => { $( if from.$f.is_some() { into.$f = from.$f.clone(); } )* };
    }
    take!(
        processing_configuration,
        s3_backup_mode,
        data_format_conversion_configuration,
        dynamic_partitioning_configuration,
        file_extension,
        custom_time_zone
    );
    if let Some(backup) = from.s3_backup_update.clone() {
        let mut current = into.s3_backup_configuration.clone().unwrap_or_default();
        let mut as_ext = s3_to_extended(current.clone());
        merge_common(&mut as_ext, s3_to_extended(backup));
        current = S3DestinationConfiguration {
            role_arn: as_ext.role_arn,
            bucket_arn: as_ext.bucket_arn,
            prefix: as_ext.prefix,
            error_output_prefix: as_ext.error_output_prefix,
            buffering_hints: as_ext.buffering_hints,
            compression_format: as_ext.compression_format,
            encryption_configuration: as_ext.encryption_configuration,
            cloud_watch_logging_options: as_ext.cloud_watch_logging_options,
        };
        into.s3_backup_configuration = Some(current);
    }
    merge_common(into, from);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(dest: Value) -> Result<StreamSpec> {
        let mut body = json!({"DeliveryStreamName": "s1"});
        body.as_object_mut()
            .unwrap()
            .extend(dest.as_object().unwrap().clone());
        let input: CreateDeliveryStreamInput = serde_json::from_value(body).unwrap();
        StreamSpec::from_create(input, "us-east-1", 1_000)
    }

    fn s3() -> Value {
        json!({"ExtendedS3DestinationConfiguration": {
            "RoleARN": "arn:aws:iam::123456789012:role/r", "BucketARN": "arn:aws:s3:::b"}})
    }

    #[test]
    fn defaults_in_describe() {
        let spec = create(s3()).unwrap();
        let d = spec.describe();
        let ext = &d["Destinations"][0]["ExtendedS3DestinationDescription"];
        assert_eq!(
            ext["BufferingHints"],
            json!({"SizeInMBs": 5, "IntervalInSeconds": 300})
        );
        assert_eq!(ext["CompressionFormat"], "UNCOMPRESSED");
        assert_eq!(
            ext["EncryptionConfiguration"],
            json!({"NoEncryptionConfig": "NoEncryption"})
        );
        assert_eq!(d["VersionId"], "1");
        assert_eq!(d["Destinations"][0]["DestinationId"], DESTINATION_ID);
        assert_eq!(
            d["DeliveryStreamARN"],
            "arn:aws:firehose:us-east-1:000000000000:deliverystream/s1"
        );
    }

    #[test]
    fn exactly_one_destination() {
        let mut two = s3();
        two["S3DestinationConfiguration"] =
            json!({"RoleARN": "arn:aws:iam::123456789012:role/r", "BucketARN": "arn:aws:s3:::b"});
        assert_eq!(create(two).unwrap_err().kind, ErrorKind::InvalidArgument);
        assert_eq!(
            create(json!({})).unwrap_err().kind,
            ErrorKind::InvalidArgument
        );
    }

    #[test]
    fn hint_ranges_and_pairs() {
        for hints in [
            json!({"SizeInMBs": 0, "IntervalInSeconds": 60}),
            json!({"SizeInMBs": 129, "IntervalInSeconds": 60}),
            json!({"SizeInMBs": 5, "IntervalInSeconds": 901}),
            json!({"SizeInMBs": 5}),
        ] {
            let mut d = s3();
            d["ExtendedS3DestinationConfiguration"]["BufferingHints"] = hints.clone();
            assert!(create(d).is_err(), "{hints} accepted");
        }
    }

    #[test]
    fn update_checks_version_and_merges() {
        let mut spec = create(s3()).unwrap();
        let update: UpdateDestinationInput = serde_json::from_value(json!({
            "DeliveryStreamName": "s1", "CurrentDeliveryStreamVersionId": "1",
            "DestinationId": DESTINATION_ID,
            "ExtendedS3DestinationUpdate": {"CompressionFormat": "GZIP"}}))
        .unwrap();
        spec.apply_update(&update, 2_000).unwrap();
        assert_eq!(spec.version, 2);
        assert_eq!(spec.compression(), CompressionFormat::Gzip);
        assert_eq!(spec.bucket(), "b");
        let err = spec.apply_update(&update, 3_000).unwrap_err();
        assert_eq!(err.kind, ErrorKind::ConcurrentModification);
    }

    fn http(extra: Value) -> Value {
        let mut h = json!({
            "EndpointConfiguration": {"Url": "https://collector.example.com/in", "Name": "c", "AccessKey": "k"},
            "S3Configuration": {"RoleARN": "arn:aws:iam::123456789012:role/r", "BucketARN": "arn:aws:s3:::bk"}});
        h.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({ "HttpEndpointDestinationConfiguration": h })
    }

    #[test]
    fn http_endpoint_create_and_describe() {
        let spec = create(http(json!({
            "BufferingHints": {"SizeInMBs": 2, "IntervalInSeconds": 0},
            "RequestConfiguration": {"ContentEncoding": "GZIP",
                "CommonAttributes": [{"AttributeName": "a", "AttributeValue": "b"}]},
            "RetryOptions": {"DurationInSeconds": 30},
        })))
        .unwrap();
        assert_eq!(spec.kind, DestinationKind::HttpEndpoint);
        assert_eq!(spec.bucket(), "bk");
        assert_eq!(spec.buffering(), (2 * 1024 * 1024, 0));
        assert_eq!(spec.retry_seconds(), 30);
        let d = spec.describe();
        let h = &d["Destinations"][0]["HttpEndpointDestinationDescription"];
        assert_eq!(
            h["EndpointConfiguration"],
            json!({"Url": "https://collector.example.com/in", "Name": "c"})
        );
        assert!(!d.to_string().contains("AccessKey"));
        assert_eq!(h["S3BackupMode"], "FailedDataOnly");
        assert_eq!(h["RequestConfiguration"]["ContentEncoding"], "GZIP");
        assert_eq!(
            h["S3DestinationDescription"]["BucketARN"],
            "arn:aws:s3:::bk"
        );
        assert!(
            d["Destinations"][0]
                .get("ExtendedS3DestinationDescription")
                .is_none()
        );
        // Survives a round trip through the stored spec.
        let stored: StreamSpec =
            serde_json::from_slice(&serde_json::to_vec(&spec).unwrap()).unwrap();
        assert_eq!(stored, spec);
        let defaults = create(http(json!({}))).unwrap();
        assert_eq!(defaults.buffering(), (5 * 1024 * 1024, 300));
        assert_eq!(defaults.retry_seconds(), 300);
    }

    #[test]
    fn http_endpoint_validation() {
        for bad in [
            json!({"BufferingHints": {"SizeInMBs": 65, "IntervalInSeconds": 60}}),
            json!({"RetryOptions": {"DurationInSeconds": 7201}}),
            json!({"S3BackupMode": "Enabled"}),
            json!({"RequestConfiguration": {"ContentEncoding": "ZSTD"}}),
            json!({"EndpointConfiguration": {"Url": "ftp://x/"}}),
            json!({"EndpointConfiguration": {"Name": "no url"}}),
            json!({"S3Configuration": null}),
        ] {
            let err = create(http(bad.clone())).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn http_endpoint_update() {
        let mut spec = create(http(json!({}))).unwrap();
        let update: UpdateDestinationInput = serde_json::from_value(json!({
            "DeliveryStreamName": "s1", "CurrentDeliveryStreamVersionId": "1",
            "DestinationId": DESTINATION_ID,
            "HttpEndpointDestinationUpdate": {
                "EndpointConfiguration": {"Url": "https://other.example.com/"},
                "S3Update": {"Prefix": "p/"}}}))
        .unwrap();
        spec.apply_update(&update, 2_000).unwrap();
        let h = spec.http.as_ref().unwrap();
        let e = h.endpoint_configuration.as_ref().unwrap();
        assert_eq!(e.url.as_deref(), Some("https://other.example.com/"));
        assert_eq!(e.access_key.as_deref(), Some("k"), "the key is kept");
        assert_eq!(spec.destination.prefix.as_deref(), Some("p/"));
        assert_eq!(spec.version, 2);
        let s3: UpdateDestinationInput = serde_json::from_value(json!({
            "DeliveryStreamName": "s1", "CurrentDeliveryStreamVersionId": "2",
            "DestinationId": DESTINATION_ID,
            "ExtendedS3DestinationUpdate": {"Prefix": "x/"}}))
        .unwrap();
        assert!(spec.apply_update(&s3, 3_000).is_err());
    }

    #[test]
    fn unsafe_bucket_names_rejected() {
        for arn in [
            "arn:aws:s3:::..",
            "arn:aws:s3:::a/b",
            "arn:aws:s3:::",
            "s3://b",
        ] {
            assert!(bucket_name(arn).is_err(), "{arn}");
        }
        assert_eq!(
            bucket_name("arn:aws:s3:::my-bucket.x").unwrap(),
            "my-bucket.x"
        );
    }
}

//! Destinations outside the object store besides the HTTP endpoint: Redshift (loaded into
//! PostgreSQL), OpenSearch / Elasticsearch and Splunk. For each: validation with AWS's ranges
//! and messages, the backing bucket the pipeline writes to (its `S3Configuration`, with the
//! destination's processors), Describe's shape, and the merge of an update.
//!
//! Invariants:
//! - A stored spec of one of these kinds holds its configuration in exactly one of
//!   `StreamSpec::{redshift, opensearch, splunk}`, validated, with defaults the pipeline
//!   relies on filled in (`S3BackupMode`, `HECEndpointType`, `IndexRotationPeriod`).
//! - Secrets (`Password`) are stored but never described; an update that does not name them
//!   keeps them.

use serde_json::{Value, json};

use super::{
    StreamSpec, s3_to_extended, validate_buffering, validate_processing, validate_role,
    validate_s3_common, validation,
};
use crate::error::{ApiError, Result};
use crate::model::{
    BufferingHints, CloudWatchLoggingOptions, ExtendedS3DestinationConfiguration,
    OpenSearchDestinationConfiguration, ProcessingConfiguration, RedshiftDestinationConfiguration,
    RetryOptions, S3DestinationConfiguration, SplunkDestinationConfiguration,
};

/// Default `RetryOptions.DurationInSeconds` of Redshift (AWS: 3600).
pub const REDSHIFT_RETRY_DEFAULT_S: i64 = 3600;
/// Default `RetryOptions.DurationInSeconds` of OpenSearch / Elasticsearch (AWS: 300).
pub const OPENSEARCH_RETRY_DEFAULT_S: i64 = 300;
/// Default `RetryOptions.DurationInSeconds` of Splunk (the console's default, 60).
pub const SPLUNK_RETRY_DEFAULT_S: i64 = 60;
/// Default `HECAcknowledgmentTimeoutInSeconds` (the model's minimum, 180).
pub const SPLUNK_ACK_TIMEOUT_DEFAULT_S: i64 = 180;

fn check_enum(field: &str, value: Option<&str>, allowed: &[&str]) -> Result<()> {
    match value {
        Some(v) if !allowed.contains(&v) => Err(validation(
            field,
            v,
            &format!(
                "Member must satisfy enum value set: [{}]",
                allowed.join(", ")
            ),
        )),
        _ => Ok(()),
    }
}

fn check_len(field: &str, value: Option<&str>, min: usize, max: usize, shown: &str) -> Result<()> {
    match value {
        Some(v) if v.chars().count() < min || v.chars().count() > max => Err(validation(
            field,
            shown,
            &format!("Member must have length between {min} and {max}"),
        )),
        _ => Ok(()),
    }
}

fn check_retry(r: Option<&RetryOptions>) -> Result<()> {
    if let Some(d) = r.and_then(|r| r.duration_in_seconds)
        && !(0..=7200).contains(&d)
    {
        return Err(validation(
            "retryOptions.durationInSeconds",
            &d.to_string(),
            "Member must have value between 0 and 7200",
        ));
    }
    Ok(())
}

fn check_hint_ranges(h: Option<&BufferingHints>, max_mb: i64, max_s: i64) -> Result<()> {
    validate_buffering(h)?;
    let Some(h) = h else { return Ok(()) };
    if let Some(size) = h.size_in_mbs
        && !(1..=max_mb).contains(&size)
    {
        return Err(validation(
            "bufferingHints.sizeInMBs",
            &size.to_string(),
            &format!("Member must have value between 1 and {max_mb}"),
        ));
    }
    if let Some(s) = h.interval_in_seconds
        && !(0..=max_s).contains(&s)
    {
        return Err(validation(
            "bufferingHints.intervalInSeconds",
            &s.to_string(),
            &format!("Member must have value between 0 and {max_s}"),
        ));
    }
    Ok(())
}

fn refuse_secrets_manager(v: Option<&Value>, instead: &str) -> Result<()> {
    let enabled = v.is_some_and(|v| v.get("Enabled").and_then(Value::as_bool) != Some(false));
    if enabled {
        return Err(ApiError::invalid(format!(
            "SecretsManagerConfiguration is not supported by Lakehose; use {instead}."
        )));
    }
    Ok(())
}

fn backup_bucket(
    s3: Option<&S3DestinationConfiguration>,
) -> Result<ExtendedS3DestinationConfiguration> {
    let s3 = s3.ok_or_else(|| ApiError::invalid("S3Configuration is required."))?;
    let d = s3_to_extended(s3.clone());
    validate_s3_common(&d, false)?;
    Ok(d)
}

/// The bucket the pipeline writes a destination's failures (and backups) to, with the
/// destination's processors.
pub(super) fn backing(
    s3: Option<&S3DestinationConfiguration>,
    processing: Option<&ProcessingConfiguration>,
) -> ExtendedS3DestinationConfiguration {
    let mut d = s3_to_extended(s3.cloned().unwrap_or_default());
    d.processing_configuration = processing.cloned();
    d
}

/// The staging bucket of a Redshift destination: its `S3Configuration` with its processors and
/// its source-record backup (`S3BackupMode: Enabled`), so the pipeline stages the batches as
/// it writes an S3 stream's objects.
pub(super) fn redshift_backing(
    r: &RedshiftDestinationConfiguration,
) -> ExtendedS3DestinationConfiguration {
    let mut d = backing(
        r.s3_configuration.as_ref(),
        r.processing_configuration.as_ref(),
    );
    d.s3_backup_mode = r.s3_backup_mode.clone();
    d.s3_backup_configuration = r.s3_backup_configuration.clone();
    d
}

/// `S3Configuration` with an `S3Update` applied (members the update names replace the
/// current ones).
pub(super) fn merge_s3(
    current: Option<&S3DestinationConfiguration>,
    update: &S3DestinationConfiguration,
) -> S3DestinationConfiguration {
    let mut next = current.cloned().unwrap_or_default();
    macro_rules! take {
        ($($f:ident),*) => { $( if update.$f.is_some() { next.$f = update.$f.clone(); } )* };
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
    next
}

/// Whether `url` is `jdbc:(redshift|postgresql)://host:port/database`.
fn is_jdbc_url(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("jdbc:redshift://")
        .or_else(|| url.strip_prefix("jdbc:postgresql://"))
    else {
        return false;
    };
    let Some((authority, db)) = rest.split_once('/') else {
        return false;
    };
    let Some((host, port)) = authority.rsplit_once(':') else {
        return false;
    };
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
        && !port.is_empty()
        && port.len() <= 5
        && port.bytes().all(|b| b.is_ascii_digit())
        && !db.is_empty()
        && db
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_$-".contains(&b))
}

/// Validates a Redshift destination (the COPY options are checked by the engine, which
/// knows how to translate them).
pub fn validate_redshift(r: &RedshiftDestinationConfiguration) -> Result<()> {
    validate_role(r.role_arn.as_deref())?;
    let url = r
        .cluster_jdbc_url
        .as_deref()
        .ok_or_else(|| ApiError::invalid("ClusterJDBCURL is required."))?;
    if !is_jdbc_url(url) {
        return Err(validation(
            "clusterJDBCURL",
            url,
            "Member must satisfy regular expression pattern: jdbc:(redshift|postgresql)://host:port/database",
        ));
    }
    let copy = r
        .copy_command
        .as_ref()
        .ok_or_else(|| ApiError::invalid("CopyCommand is required."))?;
    let table = copy
        .data_table_name
        .as_deref()
        .ok_or_else(|| ApiError::invalid("CopyCommand.DataTableName is required."))?;
    check_len("copyCommand.dataTableName", Some(table), 1, 512, table)?;
    check_len("username", r.username.as_deref(), 1, 512, "***")?;
    check_len("password", r.password.as_deref(), 6, 512, "***")?;
    refuse_secrets_manager(
        r.secrets_manager_configuration.as_ref(),
        "Username and Password",
    )?;
    if r.secrets_manager_configuration.is_none() && (r.username.is_none() || r.password.is_none()) {
        return Err(ApiError::invalid(
            "Username and Password are required when SecretsManagerConfiguration is not enabled.",
        ));
    }
    check_retry(r.retry_options.as_ref())?;
    validate_processing(r.processing_configuration.as_ref())?;
    let staging = backup_bucket(r.s3_configuration.as_ref())?;
    if let Some(c) = staging.compression_format.as_deref()
        && ["SNAPPY", "ZIP", "HADOOP_SNAPPY"].contains(&c)
    {
        return Err(ApiError::invalid(format!(
            "CompressionFormat {c} is not supported for the intermediate S3 bucket of a Redshift destination; use UNCOMPRESSED or GZIP."
        )));
    }
    if staging.prefix.as_deref().is_some_and(|p| p.contains("!{")) {
        return Err(ApiError::invalid(
            "The Prefix of a Redshift destination's S3Configuration must not contain expressions.",
        ));
    }
    if staging.error_output_prefix.is_some() {
        return Err(ApiError::invalid(
            "ErrorOutputPrefix must not be set in a Redshift destination's S3Configuration.",
        ));
    }
    check_enum(
        "s3BackupMode",
        r.s3_backup_mode.as_deref(),
        &["Disabled", "Enabled"],
    )?;
    if r.s3_backup_mode.as_deref() == Some("Enabled") {
        let backup = r.s3_backup_configuration.as_ref().ok_or_else(|| {
            ApiError::invalid("S3BackupConfiguration is required when S3BackupMode is Enabled.")
        })?;
        validate_s3_common(&s3_to_extended(backup.clone()), false)?;
    }
    Ok(())
}

/// Validates an OpenSearch Service or Elasticsearch destination.
pub fn validate_opensearch(o: &OpenSearchDestinationConfiguration) -> Result<()> {
    validate_role(o.role_arn.as_deref())?;
    let index = o
        .index_name
        .as_deref()
        .ok_or_else(|| ApiError::invalid("IndexName is required."))?;
    check_len("indexName", Some(index), 1, 80, index)?;
    if index.contains(['/', '\\', '*', '?', '"', '<', '>', '|', ' ', ',', '#'])
        || index.starts_with(['_', '-', '+'])
        || index != index.to_lowercase()
    {
        return Err(ApiError::invalid(format!(
            "IndexName '{index}' is not a valid index name: lowercase, without \\ / * ? \" < > | space , #, not starting with _ - +."
        )));
    }
    check_len(
        "typeName",
        o.type_name.as_deref(),
        0,
        100,
        o.type_name.as_deref().unwrap_or_default(),
    )?;
    match (o.domain_arn.as_deref(), o.cluster_endpoint.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "Specify either DomainARN or ClusterEndpoint, not both.",
            ));
        }
        (None, None) => {
            return Err(ApiError::invalid(
                "Either DomainARN or ClusterEndpoint is required.",
            ));
        }
        (Some(arn), None) => {
            if !(arn.starts_with("arn:") && arn.contains(":domain/")) {
                return Err(validation(
                    "domainARN",
                    arn,
                    "Member must satisfy regular expression pattern: arn:.*:es:.*:.*:domain/.*",
                ));
            }
        }
        (None, Some(url)) => {
            check_len("clusterEndpoint", Some(url), 1, 512, url)?;
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(validation(
                    "clusterEndpoint",
                    url,
                    "Member must satisfy regular expression pattern: https:.*",
                ));
            }
        }
    }
    check_enum(
        "indexRotationPeriod",
        o.index_rotation_period.as_deref(),
        &["NoRotation", "OneHour", "OneDay", "OneWeek", "OneMonth"],
    )?;
    check_hint_ranges(o.buffering_hints.as_ref(), 100, 900)?;
    check_retry(o.retry_options.as_ref())?;
    check_enum(
        "s3BackupMode",
        o.s3_backup_mode.as_deref(),
        &["FailedDocumentsOnly", "AllDocuments"],
    )?;
    if let Some(ids) = &o.document_id_options {
        let format = ids.default_document_id_format.as_deref().ok_or_else(|| {
            ApiError::invalid("DocumentIdOptions.DefaultDocumentIdFormat is required.")
        })?;
        check_enum(
            "documentIdOptions.defaultDocumentIdFormat",
            Some(format),
            &["FIREHOSE_DEFAULT", "NO_DOCUMENT_ID"],
        )?;
    }
    if o.vpc_configuration.is_some() {
        return Err(ApiError::invalid(
            "VpcConfiguration is not supported by Lakehose: the cluster is reached at its ClusterEndpoint (or the endpoint lakehose.toml maps the DomainARN to).",
        ));
    }
    validate_processing(o.processing_configuration.as_ref())?;
    backup_bucket(o.s3_configuration.as_ref()).map(|_| ())
}

/// Validates a Splunk destination.
pub fn validate_splunk(s: &SplunkDestinationConfiguration) -> Result<()> {
    let url = s
        .hec_endpoint
        .as_deref()
        .ok_or_else(|| ApiError::invalid("HECEndpoint is required."))?;
    check_len("hECEndpoint", Some(url), 1, 2048, url)?;
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(validation(
            "hECEndpoint",
            url,
            "Member must satisfy regular expression pattern: https?://.*",
        ));
    }
    let kind = s
        .hec_endpoint_type
        .as_deref()
        .ok_or_else(|| ApiError::invalid("HECEndpointType is required."))?;
    check_enum("hECEndpointType", Some(kind), &["Raw", "Event"])?;
    refuse_secrets_manager(s.secrets_manager_configuration.as_ref(), "HECToken")?;
    let token = s
        .hec_token
        .as_deref()
        .ok_or_else(|| ApiError::invalid("HECToken is required."))?;
    check_len("hECToken", Some(token), 1, 2048, "***")?;
    if let Some(t) = s.hec_acknowledgment_timeout_in_seconds
        && !(180..=600).contains(&t)
    {
        return Err(validation(
            "hECAcknowledgmentTimeoutInSeconds",
            &t.to_string(),
            "Member must have value between 180 and 600",
        ));
    }
    check_retry(s.retry_options.as_ref())?;
    check_enum(
        "s3BackupMode",
        s.s3_backup_mode.as_deref(),
        &["FailedEventsOnly", "AllEvents"],
    )?;
    check_hint_ranges(s.buffering_hints.as_ref(), 5, 60)?;
    validate_processing(s.processing_configuration.as_ref())?;
    backup_bucket(s.s3_configuration.as_ref()).map(|_| ())
}

/// Fills the defaults the pipeline relies on.
pub(super) fn fill_defaults(spec: &mut StreamSpec) {
    if let Some(r) = &mut spec.redshift {
        r.s3_backup_mode.get_or_insert_with(|| "Disabled".into());
    }
    if let Some(o) = &mut spec.opensearch {
        o.s3_backup_mode
            .get_or_insert_with(|| "FailedDocumentsOnly".into());
        o.index_rotation_period
            .get_or_insert_with(|| "OneDay".into());
    }
    if let Some(s) = &mut spec.splunk {
        s.s3_backup_mode
            .get_or_insert_with(|| "FailedEventsOnly".into());
        s.hec_acknowledgment_timeout_in_seconds
            .get_or_insert(SPLUNK_ACK_TIMEOUT_DEFAULT_S);
    }
}

macro_rules! take {
    ($next:ident, $update:ident: $($f:ident),*) => {
        $( if $update.$f.is_some() { $next.$f = $update.$f.clone(); } )*
    };
}

/// Applies a `RedshiftDestinationUpdate`.
pub(super) fn update_redshift(
    current: &RedshiftDestinationConfiguration,
    update: &RedshiftDestinationConfiguration,
) -> Result<RedshiftDestinationConfiguration> {
    if update.s3_configuration.is_some() || update.s3_backup_configuration.is_some() {
        return Err(ApiError::invalid(
            "Use S3Update and S3BackupUpdate, not S3Configuration and S3BackupConfiguration, in RedshiftDestinationUpdate.",
        ));
    }
    let mut next = current.clone();
    take!(next, update: role_arn, cluster_jdbc_url, username, password, retry_options,
        processing_configuration, s3_backup_mode, cloud_watch_logging_options,
        secrets_manager_configuration);
    if let Some(copy) = &update.copy_command {
        let mut merged = next.copy_command.clone().unwrap_or_default();
        take!(merged, copy: data_table_name, data_table_columns, copy_options);
        next.copy_command = Some(merged);
    }
    if let Some(s3) = &update.s3_update {
        next.s3_configuration = Some(merge_s3(next.s3_configuration.as_ref(), s3));
    }
    if let Some(s3) = &update.s3_backup_update {
        next.s3_backup_configuration = Some(merge_s3(next.s3_backup_configuration.as_ref(), s3));
    }
    if current.s3_backup_mode.as_deref() == Some("Enabled")
        && next.s3_backup_mode.as_deref() == Some("Disabled")
    {
        return Err(ApiError::invalid(
            "S3BackupMode cannot be changed from Enabled to Disabled.",
        ));
    }
    validate_redshift(&next)?;
    Ok(next)
}

/// Applies an `AmazonopensearchserviceDestinationUpdate` / `ElasticsearchDestinationUpdate`.
pub(super) fn update_opensearch(
    current: &OpenSearchDestinationConfiguration,
    update: &OpenSearchDestinationConfiguration,
) -> Result<OpenSearchDestinationConfiguration> {
    if update.s3_configuration.is_some() || update.s3_backup_mode.is_some() {
        return Err(ApiError::invalid(
            "S3Configuration and S3BackupMode cannot be changed by an update; use S3Update for the bucket.",
        ));
    }
    let mut next = current.clone();
    if update.domain_arn.is_some() {
        next.cluster_endpoint = None;
    }
    if update.cluster_endpoint.is_some() {
        next.domain_arn = None;
    }
    take!(next, update: role_arn, domain_arn, cluster_endpoint, index_name, type_name,
        index_rotation_period, buffering_hints, retry_options, processing_configuration,
        cloud_watch_logging_options, document_id_options);
    if let Some(s3) = &update.s3_update {
        next.s3_configuration = Some(merge_s3(next.s3_configuration.as_ref(), s3));
    }
    validate_opensearch(&next)?;
    Ok(next)
}

/// Applies a `SplunkDestinationUpdate`.
pub(super) fn update_splunk(
    current: &SplunkDestinationConfiguration,
    update: &SplunkDestinationConfiguration,
) -> Result<SplunkDestinationConfiguration> {
    if update.s3_configuration.is_some() {
        return Err(ApiError::invalid(
            "Use S3Update, not S3Configuration, in SplunkDestinationUpdate.",
        ));
    }
    let mut next = current.clone();
    take!(next, update: hec_endpoint, hec_endpoint_type, hec_token,
        hec_acknowledgment_timeout_in_seconds, retry_options, s3_backup_mode,
        processing_configuration, cloud_watch_logging_options, buffering_hints,
        secrets_manager_configuration);
    if let Some(s3) = &update.s3_update {
        next.s3_configuration = Some(merge_s3(next.s3_configuration.as_ref(), s3));
    }
    if current.s3_backup_mode.as_deref() == Some("AllEvents")
        && next.s3_backup_mode.as_deref() == Some("FailedEventsOnly")
    {
        return Err(ApiError::invalid(
            "S3BackupMode cannot be changed from AllEvents to FailedEventsOnly.",
        ));
    }
    validate_splunk(&next)?;
    Ok(next)
}

fn processing_or_disabled(p: Option<&ProcessingConfiguration>) -> Value {
    serde_json::to_value(p.cloned().unwrap_or(ProcessingConfiguration {
        enabled: Some(false),
        processors: Some(vec![]),
    }))
    .unwrap_or_default()
}

fn logging_or_disabled(c: Option<&CloudWatchLoggingOptions>) -> Value {
    serde_json::to_value(c.cloned().unwrap_or(CloudWatchLoggingOptions {
        enabled: Some(false),
        ..Default::default()
    }))
    .unwrap_or_default()
}

impl StreamSpec {
    /// `(DestinationDescription member, its value)` for Redshift, OpenSearch, Elasticsearch and
    /// Splunk streams; `s3` is the described backing bucket.
    pub(super) fn describe_remote(
        &self,
        s3: serde_json::Map<String, Value>,
    ) -> Option<(&'static str, Value)> {
        let (size, interval) = self.buffering();
        let hints = json!({"SizeInMBs": size / (1024 * 1024), "IntervalInSeconds": interval});
        let retry = json!({"DurationInSeconds": self.retry_seconds()});
        if let Some(r) = &self.redshift {
            let mut d = json!({
                "RoleARN": r.role_arn,
                "ClusterJDBCURL": r.cluster_jdbc_url,
                "CopyCommand": r.copy_command,
                "Username": r.username,
                "RetryOptions": retry,
                "S3DestinationDescription": Value::Object(s3),
                "ProcessingConfiguration": processing_or_disabled(r.processing_configuration.as_ref()),
                "S3BackupMode": r.s3_backup_mode,
                "CloudWatchLoggingOptions": logging_or_disabled(r.cloud_watch_logging_options.as_ref()),
            });
            if let Some(b) = &r.s3_backup_configuration {
                d["S3BackupDescription"] = serde_json::to_value(b).unwrap_or_default();
            }
            return Some(("RedshiftDestinationDescription", d));
        }
        if let Some(o) = &self.opensearch {
            let mut d = json!({
                "RoleARN": o.role_arn,
                "IndexName": o.index_name,
                "IndexRotationPeriod": o.index_rotation_period,
                "BufferingHints": hints,
                "RetryOptions": retry,
                "S3BackupMode": o.s3_backup_mode,
                "S3DestinationDescription": Value::Object(s3),
                "ProcessingConfiguration": processing_or_disabled(o.processing_configuration.as_ref()),
                "CloudWatchLoggingOptions": logging_or_disabled(o.cloud_watch_logging_options.as_ref()),
                "DocumentIdOptions": {"DefaultDocumentIdFormat": o
                    .document_id_options
                    .as_ref()
                    .and_then(|d| d.default_document_id_format.clone())
                    .unwrap_or_else(|| "FIREHOSE_DEFAULT".into())},
            });
            for (member, value) in [
                ("DomainARN", &o.domain_arn),
                ("ClusterEndpoint", &o.cluster_endpoint),
                ("TypeName", &o.type_name),
            ] {
                if let Some(v) = value {
                    d[member] = json!(v);
                }
            }
            let member = if self.kind == super::DestinationKind::Elasticsearch {
                "ElasticsearchDestinationDescription"
            } else {
                "AmazonopensearchserviceDestinationDescription"
            };
            return Some((member, d));
        }
        if let Some(s) = &self.splunk {
            let d = json!({
                "HECEndpoint": s.hec_endpoint,
                "HECEndpointType": s.hec_endpoint_type,
                "HECToken": s.hec_token,
                "HECAcknowledgmentTimeoutInSeconds": s.hec_acknowledgment_timeout_in_seconds,
                "RetryOptions": retry,
                "S3BackupMode": s.s3_backup_mode,
                "S3DestinationDescription": Value::Object(s3),
                "ProcessingConfiguration": processing_or_disabled(s.processing_configuration.as_ref()),
                "CloudWatchLoggingOptions": logging_or_disabled(s.cloud_watch_logging_options.as_ref()),
                "BufferingHints": hints,
            });
            return Some(("SplunkDestinationDescription", d));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CreateDeliveryStreamInput, UpdateDestinationInput};
    use crate::stream::DestinationKind;

    const ROLE: &str = "arn:aws:iam::123456789012:role/firehose";

    fn create(dest: Value) -> Result<StreamSpec> {
        let mut body = json!({"DeliveryStreamName": "s1"});
        body.as_object_mut()
            .unwrap()
            .extend(dest.as_object().unwrap().clone());
        let input: CreateDeliveryStreamInput = serde_json::from_value(body).unwrap();
        StreamSpec::from_create(input, "us-east-1", 1_000)
    }

    fn update(spec: &mut StreamSpec, member: &str, value: Value) -> Result<()> {
        let input: UpdateDestinationInput = serde_json::from_value(json!({
            "DeliveryStreamName": "s1",
            "CurrentDeliveryStreamVersionId": spec.version.to_string(),
            "DestinationId": "destinationId-000000000001",
            member: value,
        }))
        .unwrap();
        spec.apply_update(&input, 2_000)
    }

    fn bucket(name: &str) -> Value {
        json!({"RoleARN": ROLE, "BucketARN": format!("arn:aws:s3:::{name}")})
    }

    fn redshift() -> Value {
        json!({"RedshiftDestinationConfiguration": {
            "RoleARN": ROLE,
            "ClusterJDBCURL": "jdbc:redshift://c.abc.us-east-1.redshift.amazonaws.com:5439/dev",
            "CopyCommand": {"DataTableName": "events", "CopyOptions": "JSON 'auto'"},
            "Username": "loader", "Password": "secret-password",
            "S3Configuration": bucket("stage"),
        }})
    }

    fn opensearch(member: &str) -> Value {
        json!({member: {
            "RoleARN": ROLE, "IndexName": "logs", "ClusterEndpoint": "https://search.example.com",
            "S3Configuration": bucket("backup"),
        }})
    }

    fn splunk() -> Value {
        json!({"SplunkDestinationConfiguration": {
            "HECEndpoint": "https://splunk.example.com:8088", "HECEndpointType": "Event",
            "HECToken": "token", "S3Configuration": bucket("backup"),
        }})
    }

    #[test]
    fn defaults_retry_windows_and_descriptions() {
        let r = create(redshift()).unwrap();
        assert_eq!(r.kind, DestinationKind::Redshift);
        assert_eq!(r.retry_seconds(), 3600);
        assert_eq!(r.bucket(), "stage");
        let d = r.describe();
        let rd = &d["Destinations"][0]["RedshiftDestinationDescription"];
        assert_eq!(rd["Username"], "loader");
        assert!(
            rd.get("Password").is_none(),
            "passwords are never described"
        );
        assert_eq!(rd["S3BackupMode"], "Disabled");
        assert_eq!(
            rd["S3DestinationDescription"]["BucketARN"],
            "arn:aws:s3:::stage"
        );

        let o = create(opensearch(
            "AmazonopensearchserviceDestinationConfiguration",
        ))
        .unwrap();
        assert_eq!(o.kind, DestinationKind::AmazonOpenSearchService);
        assert_eq!(o.retry_seconds(), 300);
        assert_eq!(o.buffering(), (5 * 1024 * 1024, 300));
        let od = &o.describe()["Destinations"][0]["AmazonopensearchserviceDestinationDescription"];
        assert_eq!(od["IndexRotationPeriod"], "OneDay");
        assert_eq!(od["S3BackupMode"], "FailedDocumentsOnly");
        assert_eq!(
            od["DocumentIdOptions"]["DefaultDocumentIdFormat"],
            "FIREHOSE_DEFAULT"
        );
        let e = create(opensearch("ElasticsearchDestinationConfiguration")).unwrap();
        assert_eq!(e.kind, DestinationKind::Elasticsearch);
        assert!(e.describe()["Destinations"][0]["ElasticsearchDestinationDescription"].is_object());

        let s = create(splunk()).unwrap();
        assert_eq!(s.retry_seconds(), 60);
        assert_eq!(s.buffering(), (5 * 1024 * 1024, 60));
        let sd = &s.describe()["Destinations"][0]["SplunkDestinationDescription"];
        assert_eq!(sd["HECAcknowledgmentTimeoutInSeconds"], 180);
        assert_eq!(sd["S3BackupMode"], "FailedEventsOnly");
    }

    #[test]
    fn invalid_configurations_name_the_member() {
        for (dest, says) in [
            (
                json!({"RedshiftDestinationConfiguration": {"RoleARN": ROLE}}),
                "ClusterJDBCURL",
            ),
            (
                json!({"SplunkDestinationConfiguration": {"HECEndpoint": "https://x", "HECEndpointType": "Json", "HECToken": "t", "S3Configuration": bucket("b")}}),
                "hECEndpointType",
            ),
            (
                json!({"AmazonopensearchserviceDestinationConfiguration": {"RoleARN": ROLE, "IndexName": "Logs", "ClusterEndpoint": "https://x", "S3Configuration": bucket("b")}}),
                "IndexName",
            ),
            (
                json!({"AmazonopensearchserviceDestinationConfiguration": {"RoleARN": ROLE, "IndexName": "logs", "S3Configuration": bucket("b")}}),
                "DomainARN or ClusterEndpoint",
            ),
        ] {
            let e = create(dest).unwrap_err();
            assert!(e.message.contains(says), "{says}: {}", e.message);
        }
    }

    #[test]
    fn updates_merge_keep_secrets_and_refuse_type_changes() {
        let mut r = create(redshift()).unwrap();
        update(
            &mut r,
            "RedshiftDestinationUpdate",
            json!({"CopyCommand": {"CopyOptions": "CSV"}, "S3Update": {"Prefix": "staged/"},
                   "RetryOptions": {"DurationInSeconds": 10}}),
        )
        .unwrap();
        let rs = r.redshift.as_ref().unwrap();
        let copy = rs.copy_command.as_ref().unwrap();
        assert_eq!(copy.data_table_name.as_deref(), Some("events"), "kept");
        assert_eq!(copy.copy_options.as_deref(), Some("CSV"));
        assert_eq!(rs.password.as_deref(), Some("secret-password"), "kept");
        assert_eq!(r.destination.prefix.as_deref(), Some("staged/"));
        assert_eq!(
            r.destination.bucket_arn.as_deref(),
            Some("arn:aws:s3:::stage")
        );
        assert_eq!((r.version, r.retry_seconds()), (2, 10));
        let e = update(&mut r, "SplunkDestinationUpdate", json!({"HECToken": "x"})).unwrap_err();
        assert!(
            e.message.contains("RedshiftDestinationUpdate"),
            "{}",
            e.message
        );
        assert_eq!(r.version, 2, "a refused update changes nothing");

        let mut s = create(splunk()).unwrap();
        update(
            &mut s,
            "SplunkDestinationUpdate",
            json!({"S3BackupMode": "AllEvents"}),
        )
        .unwrap();
        let e = update(
            &mut s,
            "SplunkDestinationUpdate",
            json!({"S3BackupMode": "FailedEventsOnly"}),
        )
        .unwrap_err();
        assert!(e.message.contains("AllEvents"), "{}", e.message);

        let mut o = create(opensearch(
            "AmazonopensearchserviceDestinationConfiguration",
        ))
        .unwrap();
        update(
            &mut o,
            "AmazonopensearchserviceDestinationUpdate",
            json!({"DomainARN": "arn:aws:es:us-east-1:123456789012:domain/logs"}),
        )
        .unwrap();
        let os = o.opensearch.as_ref().unwrap();
        assert!(
            os.cluster_endpoint.is_none(),
            "a DomainARN replaces the ClusterEndpoint"
        );
        let e = update(
            &mut o,
            "ElasticsearchDestinationUpdate",
            json!({"IndexName": "x"}),
        )
        .unwrap_err();
        assert!(
            e.message
                .contains("AmazonopensearchserviceDestinationUpdate"),
            "{}",
            e.message
        );
    }

    #[test]
    fn jdbc_urls() {
        for ok in [
            "jdbc:redshift://c1.abc.us-east-1.redshift.amazonaws.com:5439/dev",
            "jdbc:postgresql://localhost:5432/my_db",
        ] {
            assert!(is_jdbc_url(ok), "{ok}");
        }
        for bad in [
            "postgresql://localhost:5432/db",
            "jdbc:redshift://host/db",
            "jdbc:redshift://host:port/db",
            "jdbc:redshift://host:5439/",
            "jdbc:redshift://ho st:5439/db",
            "jdbc:mysql://host:3306/db",
        ] {
            assert!(!is_jdbc_url(bad), "{bad}");
        }
    }

    #[test]
    fn s3_updates_merge_member_by_member() {
        let current = S3DestinationConfiguration {
            bucket_arn: Some("arn:aws:s3:::a".into()),
            prefix: Some("p/".into()),
            ..Default::default()
        };
        let next = merge_s3(
            Some(&current),
            &S3DestinationConfiguration {
                prefix: Some("q/".into()),
                ..Default::default()
            },
        );
        assert_eq!(next.bucket_arn.as_deref(), Some("arn:aws:s3:::a"));
        assert_eq!(next.prefix.as_deref(), Some("q/"));
    }
}

//! Request and response shapes of the Firehose API, exactly as the AWS service model names them
//! (`../shared/reference/firehose-service-2.json`).
//!
//! Shapes Lakehose fully understands are typed and reject unknown members
//! (`SerializationException`), so a misspelt option never passes silently. Shapes owned by later
//! features (format conversion, other destinations, sources) are kept as JSON values: parsed,
//! stored and echoed back by Describe, and validated by the feature that uses them.

use serde::de::{Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A deserializer that reads a struct only from a JSON object. serde's derived structs also
/// accept an array, member by member in declaration order (`"Record": ["aGk="]`,
/// `"Tags": [["k", "v"]]`); AWS accepts only objects, and so does every request shape here.
pub(crate) struct ObjectOnly<D>(pub(crate) D);

/// Forwards `deserialize_*` methods to the same method of the wrapped deserializer.
macro_rules! forward {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            self.0.$method($($arg,)* visitor)
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for ObjectOnly<D> {
    type Error = D::Error;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(visitor)
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }

    forward! {
        deserialize_any(); deserialize_bool(); deserialize_i8(); deserialize_i16();
        deserialize_i32(); deserialize_i64(); deserialize_i128(); deserialize_u8();
        deserialize_u16(); deserialize_u32(); deserialize_u64(); deserialize_u128();
        deserialize_f32(); deserialize_f64(); deserialize_char(); deserialize_str();
        deserialize_string(); deserialize_bytes(); deserialize_byte_buf(); deserialize_option();
        deserialize_unit(); deserialize_seq(); deserialize_map(); deserialize_identifier();
        deserialize_ignored_any();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
    }
}

/// `Serialize` and `Deserialize` for a type derived with `#[serde(remote = "Self")]`, reading
/// it only from an object ([`ObjectOnly`]).
macro_rules! object_only {
    ($name:ident) => {
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                $name::serialize(self, s)
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $name::deserialize(ObjectOnly(d))
            }
        }
    };
}

/// Skips `None` when serializing; every optional member of an AWS shape is omitted when unset.
macro_rules! shape {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty = $wire:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, remote = "Self")]
        pub struct $name {
            $(
                $(#[$fmeta])*
                #[serde(rename = $wire, default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
        }
        object_only!($name);
    };
}

shape! {
    /// `BufferingHints`: flush when either threshold is reached.
    pub struct BufferingHints {
        /// 1..=128 MiB (default 5).
        size_in_mbs: i64 = "SizeInMBs",
        /// 0..=900 seconds (default 300); 0 delivers as soon as a batch is durable.
        interval_in_seconds: i64 = "IntervalInSeconds",
    }
}

shape! {
    /// `EncryptionConfiguration` of an S3 destination.
    pub struct EncryptionConfiguration {
        /// `"NoEncryption"`.
        no_encryption_config: String = "NoEncryptionConfig",
        /// `{"AWSKMSKeyARN": "..."}`.
        kms_encryption_config: Value = "KMSEncryptionConfig",
    }
}

shape! {
    /// `CloudWatchLoggingOptions` (stored and described; logs go to the server log).
    pub struct CloudWatchLoggingOptions {
        /// Whether delivery errors are logged.
        enabled: bool = "Enabled",
        /// Log group name.
        log_group_name: String = "LogGroupName",
        /// Log stream name.
        log_stream_name: String = "LogStreamName",
    }
}

shape! {
    /// `ProcessingConfiguration`: the record processors, applied in Firehose's order.
    pub struct ProcessingConfiguration {
        /// Whether processing is on.
        enabled: bool = "Enabled",
        /// The processors.
        processors: Vec<Processor> = "Processors",
    }
}

/// One processor: its type and parameters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, remote = "Self")]
pub struct Processor {
    /// `ProcessorType`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// Its parameters.
    #[serde(
        rename = "Parameters",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub parameters: Option<Vec<ProcessorParameter>>,
}
object_only!(Processor);

/// `ProcessorParameter`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, remote = "Self")]
pub struct ProcessorParameter {
    /// `ProcessorParameterName`.
    #[serde(rename = "ParameterName")]
    pub name: String,
    /// Its value, 1..=5120 characters.
    #[serde(rename = "ParameterValue")]
    pub value: String,
}
object_only!(ProcessorParameter);

shape! {
    /// `RetryOptions`.
    pub struct RetryOptions {
        /// 0..=7200 seconds.
        duration_in_seconds: i64 = "DurationInSeconds",
    }
}

shape! {
    /// `DynamicPartitioningConfiguration`.
    pub struct DynamicPartitioningConfiguration {
        /// Retry options for partitioned delivery.
        retry_options: RetryOptions = "RetryOptions",
        /// Enabled only at creation, never disabled.
        enabled: bool = "Enabled",
    }
}

shape! {
    /// `S3DestinationConfiguration`, also used as `S3BackupConfiguration`, and (with every
    /// member optional) as `S3DestinationUpdate`.
    pub struct S3DestinationConfiguration {
        /// IAM role (stored, not enforced).
        role_arn: String = "RoleARN",
        /// `arn:aws:s3:::NAME`.
        bucket_arn: String = "BucketARN",
        /// Object key prefix template.
        prefix: String = "Prefix",
        /// Error output prefix template.
        error_output_prefix: String = "ErrorOutputPrefix",
        /// Buffering thresholds.
        buffering_hints: BufferingHints = "BufferingHints",
        /// `UNCOMPRESSED | GZIP | ZIP | Snappy | HADOOP_SNAPPY`.
        compression_format: String = "CompressionFormat",
        /// Server-side encryption of objects.
        encryption_configuration: EncryptionConfiguration = "EncryptionConfiguration",
        /// Error logging.
        cloud_watch_logging_options: CloudWatchLoggingOptions = "CloudWatchLoggingOptions",
    }
}

shape! {
    /// `ExtendedS3DestinationConfiguration`, and (with `S3BackupUpdate`) `ExtendedS3DestinationUpdate`.
    pub struct ExtendedS3DestinationConfiguration {
        /// IAM role (stored, not enforced).
        role_arn: String = "RoleARN",
        /// `arn:aws:s3:::NAME`.
        bucket_arn: String = "BucketARN",
        /// Object key prefix template.
        prefix: String = "Prefix",
        /// Error output prefix template.
        error_output_prefix: String = "ErrorOutputPrefix",
        /// Buffering thresholds.
        buffering_hints: BufferingHints = "BufferingHints",
        /// `UNCOMPRESSED | GZIP | ZIP | Snappy | HADOOP_SNAPPY`.
        compression_format: String = "CompressionFormat",
        /// Server-side encryption of objects.
        encryption_configuration: EncryptionConfiguration = "EncryptionConfiguration",
        /// Error logging.
        cloud_watch_logging_options: CloudWatchLoggingOptions = "CloudWatchLoggingOptions",
        /// Record processors.
        processing_configuration: ProcessingConfiguration = "ProcessingConfiguration",
        /// `Disabled | Enabled`.
        s3_backup_mode: String = "S3BackupMode",
        /// Where source records are backed up.
        s3_backup_configuration: S3DestinationConfiguration = "S3BackupConfiguration",
        /// `S3BackupUpdate` (update requests only).
        s3_backup_update: S3DestinationConfiguration = "S3BackupUpdate",
        /// JSON -> Parquet/ORC conversion (validated by the format-conversion feature).
        data_format_conversion_configuration: Value = "DataFormatConversionConfiguration",
        /// Dynamic partitioning.
        dynamic_partitioning_configuration: DynamicPartitioningConfiguration = "DynamicPartitioningConfiguration",
        /// Overrides the default file extension.
        file_extension: String = "FileExtension",
        /// Time zone for prefixes and suffixes (default UTC).
        custom_time_zone: String = "CustomTimeZone",
    }
}

shape! {
    /// `HttpEndpointConfiguration`.
    pub struct HttpEndpointConfiguration {
        /// The endpoint's URL (1..=1000 characters).
        url: String = "Url",
        /// A display name (1..=256 characters).
        name: String = "Name",
        /// Sent verbatim in `X-Amz-Firehose-Access-Key` (never described).
        access_key: String = "AccessKey",
    }
}

/// `HttpEndpointCommonAttribute`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, remote = "Self")]
pub struct HttpEndpointCommonAttribute {
    /// 1..=256 characters.
    #[serde(rename = "AttributeName")]
    pub name: String,
    /// 0..=1024 characters.
    #[serde(rename = "AttributeValue")]
    pub value: String,
}
object_only!(HttpEndpointCommonAttribute);

shape! {
    /// `HttpEndpointRequestConfiguration`.
    pub struct HttpEndpointRequestConfiguration {
        /// `NONE | GZIP`.
        content_encoding: String = "ContentEncoding",
        /// Sent in `X-Amz-Firehose-Common-Attributes` (0..=50).
        common_attributes: Vec<HttpEndpointCommonAttribute> = "CommonAttributes",
    }
}

shape! {
    /// `HttpEndpointDestinationConfiguration`, and (with `S3Update`) `HttpEndpointDestinationUpdate`.
    pub struct HttpEndpointDestinationConfiguration {
        /// The endpoint.
        endpoint_configuration: HttpEndpointConfiguration = "EndpointConfiguration",
        /// Buffering thresholds (1..=64 MiB, 0..=900 s).
        buffering_hints: BufferingHints = "BufferingHints",
        /// Error logging.
        cloud_watch_logging_options: CloudWatchLoggingOptions = "CloudWatchLoggingOptions",
        /// Body encoding and common attributes.
        request_configuration: HttpEndpointRequestConfiguration = "RequestConfiguration",
        /// Record processors.
        processing_configuration: ProcessingConfiguration = "ProcessingConfiguration",
        /// IAM role (stored, not enforced).
        role_arn: String = "RoleARN",
        /// How long failed requests are retried (0..=7200 s, default 300).
        retry_options: RetryOptions = "RetryOptions",
        /// `FailedDataOnly | AllData`.
        s3_backup_mode: String = "S3BackupMode",
        /// The backup bucket.
        s3_configuration: S3DestinationConfiguration = "S3Configuration",
        /// `S3Update` (update requests only).
        s3_update: S3DestinationConfiguration = "S3Update",
        /// Secrets Manager instead of `AccessKey` (not supported).
        secrets_manager_configuration: Value = "SecretsManagerConfiguration",
    }
}

shape! {
    /// `CopyCommand`: how staged objects are loaded into a Redshift (here PostgreSQL) table.
    pub struct CopyCommand {
        /// The target table (`schema.table` or `table`).
        data_table_name: String = "DataTableName",
        /// Comma-separated column list, in the order of the staged fields.
        data_table_columns: String = "DataTableColumns",
        /// Redshift COPY options (`JSON 'auto'`, `CSV`, `DELIMITER '|'`, `GZIP`, ...).
        copy_options: String = "CopyOptions",
    }
}

shape! {
    /// `RedshiftDestinationConfiguration`, and (with `S3Update`/`S3BackupUpdate`)
    /// `RedshiftDestinationUpdate`.
    pub struct RedshiftDestinationConfiguration {
        /// IAM role (stored, not enforced).
        role_arn: String = "RoleARN",
        /// `jdbc:(redshift|postgresql)://host:port/db`, mapped to a PostgreSQL server in
        /// `lakehose.toml`.
        cluster_jdbc_url: String = "ClusterJDBCURL",
        /// The COPY to run for each staged batch.
        copy_command: CopyCommand = "CopyCommand",
        /// Database user.
        username: String = "Username",
        /// Database password (never described).
        password: String = "Password",
        /// How long failed loads are retried (0..=7200 s, default 3600).
        retry_options: RetryOptions = "RetryOptions",
        /// The intermediate bucket data is staged in.
        s3_configuration: S3DestinationConfiguration = "S3Configuration",
        /// `S3Update` (update requests only).
        s3_update: S3DestinationConfiguration = "S3Update",
        /// Record processors.
        processing_configuration: ProcessingConfiguration = "ProcessingConfiguration",
        /// `Disabled | Enabled`: a copy of the source records in `S3BackupConfiguration`.
        s3_backup_mode: String = "S3BackupMode",
        /// The source-record backup bucket.
        s3_backup_configuration: S3DestinationConfiguration = "S3BackupConfiguration",
        /// `S3BackupUpdate` (update requests only).
        s3_backup_update: S3DestinationConfiguration = "S3BackupUpdate",
        /// Error logging.
        cloud_watch_logging_options: CloudWatchLoggingOptions = "CloudWatchLoggingOptions",
        /// Secrets Manager instead of `Username`/`Password` (not supported).
        secrets_manager_configuration: Value = "SecretsManagerConfiguration",
    }
}

shape! {
    /// `DocumentIdOptions`.
    pub struct DocumentIdOptions {
        /// `FIREHOSE_DEFAULT` (ids stable across retries) or `NO_DOCUMENT_ID`.
        default_document_id_format: String = "DefaultDocumentIdFormat",
    }
}

shape! {
    /// `AmazonopensearchserviceDestinationConfiguration` and
    /// `ElasticsearchDestinationConfiguration` (the same members), and (with `S3Update`) their
    /// updates.
    pub struct OpenSearchDestinationConfiguration {
        /// IAM role (stored, not enforced).
        role_arn: String = "RoleARN",
        /// The domain, mapped to a cluster endpoint in `lakehose.toml`.
        domain_arn: String = "DomainARN",
        /// The cluster's URL (instead of `DomainARN`).
        cluster_endpoint: String = "ClusterEndpoint",
        /// The index (1..=80 characters), suffixed by the rotation period.
        index_name: String = "IndexName",
        /// The document type (Elasticsearch 6 and older).
        type_name: String = "TypeName",
        /// `NoRotation | OneHour | OneDay | OneWeek | OneMonth`.
        index_rotation_period: String = "IndexRotationPeriod",
        /// Buffering thresholds (1..=100 MiB, 0..=900 s).
        buffering_hints: BufferingHints = "BufferingHints",
        /// How long failed documents are retried (0..=7200 s, default 300).
        retry_options: RetryOptions = "RetryOptions",
        /// `FailedDocumentsOnly | AllDocuments`.
        s3_backup_mode: String = "S3BackupMode",
        /// The backup bucket.
        s3_configuration: S3DestinationConfiguration = "S3Configuration",
        /// `S3Update` (update requests only).
        s3_update: S3DestinationConfiguration = "S3Update",
        /// Record processors.
        processing_configuration: ProcessingConfiguration = "ProcessingConfiguration",
        /// Error logging.
        cloud_watch_logging_options: CloudWatchLoggingOptions = "CloudWatchLoggingOptions",
        /// VPC delivery (not applicable; refused).
        vpc_configuration: Value = "VpcConfiguration",
        /// Document ids.
        document_id_options: DocumentIdOptions = "DocumentIdOptions",
    }
}

shape! {
    /// `SplunkDestinationConfiguration`, and (with `S3Update`) `SplunkDestinationUpdate`.
    pub struct SplunkDestinationConfiguration {
        /// The HTTP Event Collector's base URL.
        hec_endpoint: String = "HECEndpoint",
        /// `Raw | Event`.
        hec_endpoint_type: String = "HECEndpointType",
        /// The HEC token (never described in full).
        hec_token: String = "HECToken",
        /// How long to wait for indexer acknowledgement (180..=600 s, default 180).
        hec_acknowledgment_timeout_in_seconds: i64 = "HECAcknowledgmentTimeoutInSeconds",
        /// How long failed requests are retried (0..=7200 s, default 60).
        retry_options: RetryOptions = "RetryOptions",
        /// `FailedEventsOnly | AllEvents`.
        s3_backup_mode: String = "S3BackupMode",
        /// The backup bucket.
        s3_configuration: S3DestinationConfiguration = "S3Configuration",
        /// `S3Update` (update requests only).
        s3_update: S3DestinationConfiguration = "S3Update",
        /// Record processors.
        processing_configuration: ProcessingConfiguration = "ProcessingConfiguration",
        /// Error logging.
        cloud_watch_logging_options: CloudWatchLoggingOptions = "CloudWatchLoggingOptions",
        /// Buffering thresholds (1..=5 MiB, 0..=60 s).
        buffering_hints: BufferingHints = "BufferingHints",
        /// Secrets Manager instead of `HECToken` (not supported).
        secrets_manager_configuration: Value = "SecretsManagerConfiguration",
    }
}

/// `Tag`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, remote = "Self")]
pub struct Tag {
    /// 1..=128 characters, not starting with `aws:`.
    #[serde(rename = "Key")]
    pub key: String,
    /// 0..=256 characters.
    #[serde(rename = "Value", default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}
object_only!(Tag);

shape! {
    /// `DeliveryStreamEncryptionConfigurationInput`.
    pub struct EncryptionInput {
        /// KMS key ARN for `CUSTOMER_MANAGED_CMK`.
        key_arn: String = "KeyARN",
        /// `AWS_OWNED_CMK | CUSTOMER_MANAGED_CMK`.
        key_type: String = "KeyType",
    }
}

shape! {
    /// `CreateDeliveryStreamInput`.
    pub struct CreateDeliveryStreamInput {
        /// The stream's name.
        delivery_stream_name: String = "DeliveryStreamName",
        /// `DirectPut` (default) and the source-driven types.
        delivery_stream_type: String = "DeliveryStreamType",
        /// `{ThroughputHintInMBs}`, informational.
        direct_put_source_configuration: Value = "DirectPutSourceConfiguration",
        /// Kinesis Data Streams source.
        kinesis_stream_source_configuration: Value = "KinesisStreamSourceConfiguration",
        /// MSK source.
        msk_source_configuration: Value = "MSKSourceConfiguration",
        /// Database source.
        database_source_configuration: Value = "DatabaseSourceConfiguration",
        /// Server-side encryption of the stream.
        delivery_stream_encryption_configuration_input: EncryptionInput = "DeliveryStreamEncryptionConfigurationInput",
        /// Deprecated S3 destination.
        s3_destination_configuration: S3DestinationConfiguration = "S3DestinationConfiguration",
        /// Extended S3 destination.
        extended_s3_destination_configuration: ExtendedS3DestinationConfiguration = "ExtendedS3DestinationConfiguration",
        /// Redshift destination.
        redshift_destination_configuration: RedshiftDestinationConfiguration = "RedshiftDestinationConfiguration",
        /// Elasticsearch destination.
        elasticsearch_destination_configuration: OpenSearchDestinationConfiguration = "ElasticsearchDestinationConfiguration",
        /// OpenSearch destination.
        amazonopensearchservice_destination_configuration: OpenSearchDestinationConfiguration = "AmazonopensearchserviceDestinationConfiguration",
        /// OpenSearch Serverless destination.
        amazon_open_search_serverless_destination_configuration: Value = "AmazonOpenSearchServerlessDestinationConfiguration",
        /// Splunk destination.
        splunk_destination_configuration: SplunkDestinationConfiguration = "SplunkDestinationConfiguration",
        /// HTTP endpoint destination.
        http_endpoint_destination_configuration: HttpEndpointDestinationConfiguration = "HttpEndpointDestinationConfiguration",
        /// Snowflake destination.
        snowflake_destination_configuration: Value = "SnowflakeDestinationConfiguration",
        /// Iceberg destination.
        iceberg_destination_configuration: Value = "IcebergDestinationConfiguration",
        /// Initial tags.
        tags: Vec<Tag> = "Tags",
    }
}

shape! {
    /// `UpdateDestinationInput`.
    pub struct UpdateDestinationInput {
        /// The stream's name.
        delivery_stream_name: String = "DeliveryStreamName",
        /// Must equal the stream's `VersionId`.
        current_delivery_stream_version_id: String = "CurrentDeliveryStreamVersionId",
        /// `destinationId-000000000001`.
        destination_id: String = "DestinationId",
        /// S3 update.
        s3_destination_update: S3DestinationConfiguration = "S3DestinationUpdate",
        /// Extended S3 update.
        extended_s3_destination_update: ExtendedS3DestinationConfiguration = "ExtendedS3DestinationUpdate",
        /// Redshift update.
        redshift_destination_update: RedshiftDestinationConfiguration = "RedshiftDestinationUpdate",
        /// Elasticsearch update.
        elasticsearch_destination_update: OpenSearchDestinationConfiguration = "ElasticsearchDestinationUpdate",
        /// OpenSearch update.
        amazonopensearchservice_destination_update: OpenSearchDestinationConfiguration = "AmazonopensearchserviceDestinationUpdate",
        /// OpenSearch Serverless update.
        amazon_open_search_serverless_destination_update: Value = "AmazonOpenSearchServerlessDestinationUpdate",
        /// Splunk update.
        splunk_destination_update: SplunkDestinationConfiguration = "SplunkDestinationUpdate",
        /// HTTP endpoint update.
        http_endpoint_destination_update: HttpEndpointDestinationConfiguration = "HttpEndpointDestinationUpdate",
        /// Snowflake update.
        snowflake_destination_update: Value = "SnowflakeDestinationUpdate",
        /// Iceberg update.
        iceberg_destination_update: Value = "IcebergDestinationUpdate",
    }
}

shape! {
    /// `DeleteDeliveryStreamInput`.
    pub struct DeleteDeliveryStreamInput {
        /// The stream's name.
        delivery_stream_name: String = "DeliveryStreamName",
        /// Delete even when a KMS grant cannot be retired.
        allow_force_delete: bool = "AllowForceDelete",
    }
}

shape! {
    /// `DescribeDeliveryStreamInput`.
    pub struct DescribeDeliveryStreamInput {
        /// The stream's name.
        delivery_stream_name: String = "DeliveryStreamName",
        /// 1..=10000 destinations.
        limit: i64 = "Limit",
        /// Start after this destination id.
        exclusive_start_destination_id: String = "ExclusiveStartDestinationId",
    }
}

shape! {
    /// `ListDeliveryStreamsInput`.
    pub struct ListDeliveryStreamsInput {
        /// 1..=10000 names (default 10).
        limit: i64 = "Limit",
        /// Only streams of this type.
        delivery_stream_type: String = "DeliveryStreamType",
        /// Start after this name.
        exclusive_start_delivery_stream_name: String = "ExclusiveStartDeliveryStreamName",
    }
}

shape! {
    /// `TagDeliveryStreamInput`.
    pub struct TagDeliveryStreamInput {
        /// The stream's name.
        delivery_stream_name: String = "DeliveryStreamName",
        /// 1..=50 tags.
        tags: Vec<Tag> = "Tags",
    }
}

shape! {
    /// `UntagDeliveryStreamInput`.
    pub struct UntagDeliveryStreamInput {
        /// The stream's name.
        delivery_stream_name: String = "DeliveryStreamName",
        /// 1..=50 keys.
        tag_keys: Vec<String> = "TagKeys",
    }
}

shape! {
    /// `ListTagsForDeliveryStreamInput`.
    pub struct ListTagsForDeliveryStreamInput {
        /// The stream's name.
        delivery_stream_name: String = "DeliveryStreamName",
        /// Start after this key.
        exclusive_start_tag_key: String = "ExclusiveStartTagKey",
        /// 1..=50 tags (default 50).
        limit: i64 = "Limit",
    }
}

shape! {
    /// `StartDeliveryStreamEncryptionInput`.
    pub struct StartEncryptionInput {
        /// The stream's name.
        delivery_stream_name: String = "DeliveryStreamName",
        /// Key type and ARN.
        delivery_stream_encryption_configuration_input: EncryptionInput = "DeliveryStreamEncryptionConfigurationInput",
    }
}

shape! {
    /// `StopDeliveryStreamEncryptionInput`.
    pub struct StopEncryptionInput {
        /// The stream's name.
        delivery_stream_name: String = "DeliveryStreamName",
    }
}

/// The outcome of one record of a put: its id, or why it was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordOutcome {
    /// Durable and acknowledged under this `RecordId`.
    Accepted(String),
    /// Not accepted; the client should retry it (`ServiceUnavailableException` or `InternalFailure`).
    Failed {
        /// `ServiceUnavailableException` or `InternalFailure`.
        code: &'static str,
        /// Human-readable reason.
        message: String,
    },
}

/// The result of putting records: one outcome per record, in request order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutOutcome {
    /// One per record, same order as the request.
    pub records: Vec<RecordOutcome>,
    /// Whether server-side encryption was on for these records.
    pub encrypted: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_read_only_from_objects() {
        let hints: BufferingHints =
            serde_json::from_str(r#"{"SizeInMBs": 1, "IntervalInSeconds": 60}"#).unwrap();
        assert_eq!(hints.size_in_mbs, Some(1));
        assert!(serde_json::from_str::<BufferingHints>("[1, 60]").is_err());
        assert!(serde_json::from_str::<BufferingHints>("[]").is_err());
        assert!(serde_json::from_str::<Tag>(r#"["k", "v"]"#).is_err());
        assert!(
            serde_json::from_str::<CreateDeliveryStreamInput>(
                r#"{"DeliveryStreamName": "s", "Tags": [["k", "v"]]}"#
            )
            .is_err()
        );
        let nested: CreateDeliveryStreamInput = serde_json::from_str(
            r#"{"ExtendedS3DestinationConfiguration": {"BufferingHints": {"SizeInMBs": 2}}}"#,
        )
        .unwrap();
        let ext = nested.extended_s3_destination_configuration.unwrap();
        assert_eq!(ext.buffering_hints.unwrap().size_in_mbs, Some(2));
        // Serialization is unchanged: unset members are omitted.
        let tag = Tag {
            key: "k".into(),
            value: None,
        };
        assert_eq!(serde_json::to_string(&tag).unwrap(), r#"{"Key":"k"}"#);
    }
}

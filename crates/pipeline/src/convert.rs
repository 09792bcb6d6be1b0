//! The format-conversion stage of a flush: records -> one Parquet/ORC object with the Glue
//! table's schema, records that do not fit -> `format-conversion-failed` error documents, and
//! the object's Hive-style partition registered in the catalog.
//!
//! Lakehose extensions (documented in README.md):
//! - **Schema inference**: when the configured table does not exist, it is created from the
//!   batch (and its database with it), with the stream prefix's `key=value` folders as string
//!   partition keys, and marked `lakehose.schema_evolution=true`.
//! - **Schema evolution**: on a table so marked, JSON keys that have no column become new
//!   nullable columns appended at the end — a new table version; files already written keep
//!   their (older) schema and stay readable.
//!
//! Invariants: every record of the batch is either a row of the object or one error document;
//! the table version used is the latest one when the batch is converted (or the stream's
//! configured `VersionId`).

use std::sync::Arc;

use base64::Engine;
use lakehose_catalog::{CatalogError, CatalogStore, Column, Database, Table};
use lakehose_formats::convert::{ConversionConfig, Converted, convert, infer_schema, merge_schema};
use lakehose_log::LogRecord;
use serde_json::json;

use crate::flush::ErrorRecord;
use crate::{Error, Result, now_ms};

/// Table parameter that turns schema evolution on.
pub const SCHEMA_EVOLUTION_PARAM: &str = "lakehose.schema_evolution";
/// The error-output folder of records that could not be converted.
pub const CONVERSION_FAILED: &str = "format-conversion-failed";

/// What converting one batch produced.
#[derive(Debug, Default)]
pub(crate) struct ConvertOutcome {
    /// The Parquet/ORC bytes (empty when no record converted).
    pub file: Vec<u8>,
    /// Rows in the file.
    pub rows: usize,
    /// Records that failed, as error documents.
    pub errors: Vec<ErrorRecord>,
    /// The table the batch was converted with.
    pub table: Table,
}

fn catalog_error(e: CatalogError) -> Error {
    Error::Internal(format!("catalog: {}", e.message()))
}

/// The `key=value` folders of a prefix template's literal text, in order: the partition keys
/// an inferred table gets (`logs/year=!{timestamp:yyyy}/` -> `["year"]`).
fn hive_keys(prefix_text: &str) -> Vec<String> {
    prefix_text
        .split('/')
        .filter_map(|seg| seg.split_once('='))
        .map(|(k, _)| k.trim().to_ascii_lowercase())
        .filter(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .collect()
}

/// The values of `table`'s partition keys found as `key=value` folders of `object_key`, and the
/// location of the partition (`s3://bucket/<folders up to the last key>/`).
pub(crate) fn partition_of(
    table: &Table,
    bucket: &str,
    object_key: &str,
) -> Option<(Vec<String>, String)> {
    let keys = table.partition_columns();
    if keys.is_empty() {
        return None;
    }
    let folders: Vec<&str> = object_key.split('/').collect();
    let folders = &folders[..folders.len().saturating_sub(1)];
    let mut values = Vec::with_capacity(keys.len());
    let mut last = 0;
    for key in keys {
        let (i, value) = folders.iter().enumerate().skip(last).find_map(|(i, f)| {
            let (k, v) = f.split_once('=')?;
            k.eq_ignore_ascii_case(&key.name).then_some((i, v))
        })?;
        values.push(value.to_string());
        last = i + 1;
    }
    Some((
        values,
        format!("s3://{bucket}/{}/", folders[..last].join("/")),
    ))
}

/// Gets the table, creating it from the batch when it does not exist (schema inference).
async fn resolve_table(
    catalog: &Arc<dyn CatalogStore>,
    config: &ConversionConfig,
    records: &[&[u8]],
    bucket: &str,
    prefix_text: &str,
    stream: &str,
) -> Result<Table> {
    let (db, name) = (
        config.database.to_ascii_lowercase(),
        config.table.to_ascii_lowercase(),
    );
    if let Some(version) = config.version_id.as_deref().filter(|v| *v != "LATEST") {
        return catalog
            .get_table_version(&db, &name, version)
            .await
            .map_err(catalog_error);
    }
    match catalog.get_table(&db, &name).await {
        Ok(t) => return Ok(t),
        Err(CatalogError::EntityNotFound(_)) => {}
        Err(e) => return Err(catalog_error(e)),
    }
    let inferred = infer_schema(records).map_err(|e| Error::Internal(e.to_string()))?;
    let partition_keys: Vec<Column> = hive_keys(prefix_text)
        .into_iter()
        .map(|k| Column::new(k, "string"))
        .collect();
    let columns: Vec<Column> = inferred
        .fields()
        .iter()
        .filter(|f| !partition_keys.iter().any(|k| k.name == f.name().as_str()))
        .filter_map(|f| Column::from_arrow_field(f))
        .collect();
    let static_prefix = prefix_text.split("!{").next().unwrap_or_default();
    let static_prefix = &static_prefix[..static_prefix.rfind('/').map_or(0, |i| i + 1)];
    let mut table = Table::new(
        &name,
        columns,
        partition_keys,
        Some(format!("s3://{bucket}/{static_prefix}")),
    );
    table
        .parameters
        .insert(SCHEMA_EVOLUTION_PARAM.into(), "true".into());
    table
        .parameters
        .insert("classification".into(), parquet_or_orc(config).into());
    table
        .parameters
        .insert("lakehose.created_by_stream".into(), stream.into());
    set_formats(&mut table, config);
    if let Err(e) = catalog.get_database(&db).await {
        if !matches!(e, CatalogError::EntityNotFound(_)) {
            return Err(catalog_error(e));
        }
        match catalog.create_database(Database::new(&db)).await {
            Ok(()) | Err(CatalogError::AlreadyExists(_)) => {}
            Err(e) => return Err(catalog_error(e)),
        }
    }
    match catalog.create_table(&db, table).await {
        Ok(()) | Err(CatalogError::AlreadyExists(_)) => {}
        Err(e) => return Err(catalog_error(e)),
    }
    tracing::info!(stream, database = %db, table = %name, "created the table from the first batch (schema inference)");
    catalog.get_table(&db, &name).await.map_err(catalog_error)
}

fn parquet_or_orc(config: &ConversionConfig) -> &'static str {
    if config.extension() == ".orc" {
        "orc"
    } else {
        "parquet"
    }
}

/// Hive's input/output formats and SerDe for the output format, as Glue crawlers set them.
fn set_formats(table: &mut Table, config: &ConversionConfig) {
    let sd = table
        .storage_descriptor
        .get_or_insert_with(Default::default);
    let (input, output, serde) = if parquet_or_orc(config) == "orc" {
        (
            "org.apache.hadoop.hive.ql.io.orc.OrcInputFormat",
            "org.apache.hadoop.hive.ql.io.orc.OrcOutputFormat",
            "org.apache.hadoop.hive.ql.io.orc.OrcSerde",
        )
    } else {
        (
            "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
            "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
            "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
        )
    };
    sd.input_format = Some(input.into());
    sd.output_format = Some(output.into());
    sd.serde_info = Some(lakehose_catalog::SerDeInfo {
        serialization_library: Some(serde.into()),
        ..Default::default()
    });
}

/// Converts with `table`'s schema. A batch the converter cannot take at all (a schema it
/// cannot write, a writer failure) is not retried forever: every record of it fails with the
/// converter's error code and goes to the error output, as Firehose does.
async fn run_convert(
    records: Vec<bytes::Bytes>,
    table: &Table,
    config: &ConversionConfig,
) -> Result<Converted> {
    let count = records.len();
    let all_failed = |code: &str, message: String| Converted {
        failed: (0..count)
            .map(|index| lakehose_formats::convert::FailedRecord {
                index,
                error_code: code.to_string(),
                error_message: message.clone(),
            })
            .collect(),
        ..Converted::default()
    };
    let schema = match table.arrow_schema() {
        Ok(schema) => Arc::new(schema),
        Err(e) => {
            return Ok(all_failed(
                "DataFormatConversion.InvalidSchema",
                format!("The table's schema cannot be used: {}", e.message()),
            ));
        }
    };
    let config = config.clone();
    let result = tokio::task::spawn_blocking(move || {
        let slices: Vec<&[u8]> = records.iter().map(|r| r.as_ref()).collect();
        convert(&slices, &schema, &config)
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?;
    Ok(result.unwrap_or_else(|e| {
        tracing::warn!(table = %table.name, error = %e, "the batch cannot be converted; its records go to the error output");
        all_failed(e.error_code(), e.to_string())
    }))
}

/// Converts `records` for the stream, evolving the table first when new keys appear.
pub(crate) async fn convert_batch(
    catalog: &Arc<dyn CatalogStore>,
    config: &ConversionConfig,
    records: &[LogRecord],
    bucket: &str,
    prefix_text: &str,
    stream: &str,
    region: &str,
) -> Result<ConvertOutcome> {
    let data: Vec<bytes::Bytes> = records.iter().map(|r| r.data.clone()).collect();
    let slices: Vec<&[u8]> = data.iter().map(|r| r.as_ref()).collect();
    let mut table = resolve_table(catalog, config, &slices, bucket, prefix_text, stream).await?;
    let mut converted = run_convert(data.clone(), &table, config).await?;
    let evolves = table
        .parameters
        .get(SCHEMA_EVOLUTION_PARAM)
        .is_some_and(|v| v == "true");
    if evolves && !converted.unknown_keys.is_empty() && config.version_id.is_none() {
        let current = table.arrow_schema().map_err(catalog_error)?;
        let seen = infer_schema(&slices).map_err(|e| Error::Internal(e.to_string()))?;
        let partition_names: Vec<String> = table
            .partition_columns()
            .iter()
            .map(|c| c.name.clone())
            .collect();
        let seen = arrow_schema::Schema::new(
            seen.fields()
                .iter()
                .filter(|f| !partition_names.contains(f.name()))
                .cloned()
                .collect::<Vec<_>>(),
        );
        if let Some(evolved) = merge_schema(&current, &seen) {
            let mut next = table.clone();
            let sd = next.storage_descriptor.get_or_insert_with(Default::default);
            sd.columns = evolved
                .fields()
                .iter()
                .filter_map(|f| Column::from_arrow_field(f))
                .collect();
            let db = config.database.to_ascii_lowercase();
            table = catalog
                .update_table(&db, next)
                .await
                .map_err(catalog_error)?;
            tracing::info!(stream, table = %table.name, version = ?table.version_id,
                "schema evolved: new columns from the batch");
            converted = run_convert(data, &table, config).await?;
        }
    }
    let ending = now_ms();
    let catalog_arn = format!(
        "arn:aws:glue:{region}:{}:catalog",
        lakehose_catalog::CATALOG_ID
    );
    let errors = converted
        .failed
        .iter()
        .map(|f| {
            let r = &records[f.index];
            let doc = json!({
                "attemptsMade": 1,
                "arrivalTimestamp": r.arrival_ms,
                "lastErrorCode": f.error_code,
                "lastErrorMessage": f.error_message,
                "attemptEndingTimestamp": ending,
                "rawData": base64::engine::general_purpose::STANDARD.encode(&r.data),
                "sequenceNumber": r.seq.to_string(),
                "subSequenceNumber": 0,
                "dataCatalogTable": {
                    "catalogId": lakehose_catalog::CATALOG_ID,
                    "databaseName": config.database.to_ascii_lowercase(),
                    "tableName": table.name,
                    "region": region,
                    "versionId": table.version_id.clone().unwrap_or_else(|| "LATEST".into()),
                    "catalogArn": catalog_arn,
                },
            });
            ErrorRecord {
                error_output_type: CONVERSION_FAILED,
                document: doc.to_string(),
            }
        })
        .collect();
    Ok(ConvertOutcome {
        file: converted.file,
        rows: converted.rows,
        errors,
        table,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hive_keys_come_from_literal_folders() {
        assert_eq!(
            hive_keys("logs/year=!{timestamp:yyyy}/Month=!{timestamp:MM}/x/"),
            vec!["year", "month"]
        );
        assert!(hive_keys("plain/!{timestamp:yyyy}/").is_empty());
    }

    #[test]
    fn partitions_are_read_from_the_key() {
        let table = Table::new(
            "t",
            vec![],
            vec![Column::new("year", "string"), Column::new("day", "string")],
            None,
        );
        let got = partition_of(&table, "b", "events/year=2026/day=23/s-1-x.parquet");
        assert_eq!(
            got,
            Some((
                vec!["2026".into(), "23".into()],
                "s3://b/events/year=2026/day=23/".into()
            ))
        );
        assert_eq!(
            partition_of(&table, "b", "events/year=2026/s-1-x.parquet"),
            None,
            "a key is missing"
        );
        let plain = Table::new("t", vec![], vec![], None);
        assert_eq!(
            partition_of(&plain, "b", "events/year=2026/s.parquet"),
            None
        );
    }
}

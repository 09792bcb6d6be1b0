//! Undelivered records as rows of the table their stream converts into: what a query unions
//! with the delivered files so a record is visible as soon as it is acknowledged.
//!
//! For every stream whose `DataFormatConversionConfiguration` names the table, the records
//! from the committed log position to the durable end are processed, partitioned and decoded
//! the way their flush will write them (same processors, same partition keys, same table
//! schema; records that would fail go nowhere here, as they go to the error output there).
//!
//! Invariant (no double counting): the rows returned are those from the committed position `c`
//! on. Every object holding any of them belongs to a flush starting at or after `c`, and such a
//! flush is announced before its first object is written; [`FreshRows::excludes`] answers from
//! the announcements at the time it is asked, so a query that lists files *after* taking the
//! rows skips exactly those objects — also the ones written between the two steps.
//!
//! Approximations (documented in README.md): every undelivered record's `!{timestamp:...}`
//! partition is evaluated with the oldest undelivered record's arrival time (a flush cut later
//! may land a few records of an hour boundary in the next hour's folder); Lambda processors are
//! invoked for the look (the function sees these records again when they are delivered).

use std::sync::Arc;

use arrow_array::RecordBatch;
use lakehose_catalog::{CatalogError, Table};
use lakehose_log::LogRecord;

use crate::engine::{Engine, StreamRuntime};
use crate::{Error, Result};

/// Undelivered rows of one table.
#[derive(Default)]
pub struct FreshRows {
    /// (partition values in the table's key order, rows with the table's data columns).
    pub batches: Vec<(Vec<String>, RecordBatch)>,
    /// For each stream read, the committed position the rows start at.
    from: Vec<(Arc<StreamRuntime>, u64)>,
}

impl std::fmt::Debug for FreshRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FreshRows")
            .field("batches", &self.batches.len())
            .field("streams", &self.from.len())
            .finish()
    }
}

impl FreshRows {
    /// Whether the object `url` (`s3://bucket/key`) holds rows that are in `batches`: it
    /// belongs to a flush announced, by now, with records at or after the position these rows
    /// start at. Ask after the object was seen (listed).
    pub fn excludes(&self, url: &str) -> bool {
        self.from
            .iter()
            .any(|(rt, from)| rt.announced_since(*from, url))
    }
}

impl Engine {
    /// The undelivered rows of `database.table` across every stream converting into it.
    pub async fn fresh_rows(&self, database: &str, table: &str) -> Result<FreshRows> {
        let mut out = FreshRows::default();
        for rt in self.all_streams() {
            let Some(conversion) = rt.conversion() else {
                continue;
            };
            if !conversion.database.eq_ignore_ascii_case(database)
                || !conversion.table.eq_ignore_ascii_case(table)
            {
                continue;
            }
            let rows = stream_rows(&rt).await?;
            out.batches.extend(rows.batches);
            out.from.extend(rows.from);
        }
        Ok(out)
    }
}

/// Reads the records at or after the committed position, retrying when a commit reclaims a
/// segment under the reader.
async fn undelivered(rt: &Arc<StreamRuntime>) -> Result<(Vec<LogRecord>, u64)> {
    let mut attempt = 0;
    loop {
        let (mut reader, committed) = rt.delivery_snapshot()?;
        let read = tokio::task::spawn_blocking(move || {
            let mut records = Vec::new();
            while let Some(r) = reader.next()? {
                records.push(r);
            }
            Ok::<_, Error>(records)
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
        match read {
            Ok(records) => return Ok((records, committed)),
            Err(e) if attempt < 3 => {
                tracing::debug!(error = %e, "undelivered records moved while read; retrying");
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn stream_rows(rt: &Arc<StreamRuntime>) -> Result<FreshRows> {
    let Some(config) = rt.conversion() else {
        return Ok(FreshRows::default());
    };
    let (records, committed) = undelivered(rt).await?;
    let mut out = FreshRows {
        batches: Vec::new(),
        from: vec![(rt.clone(), committed)],
    };
    if records.is_empty() {
        return Ok(out);
    }
    let catalog = rt.catalog();
    let (db, name) = (
        config.database.to_ascii_lowercase(),
        config.table.to_ascii_lowercase(),
    );
    let table: Table = match config.version_id.as_deref().filter(|v| *v != "LATEST") {
        Some(v) => catalog.get_table_version(&db, &name, v).await,
        None => catalog.get_table(&db, &name).await,
    }
    .or_else(|e| match e {
        // Not created yet (schema inference creates it with the first flush): nothing to see.
        CatalogError::EntityNotFound(_) => Ok(Table::default()),
        e => Err(Error::Internal(format!("catalog: {}", e.message()))),
    })?;
    if table.columns().is_empty() {
        return Ok(out);
    }
    let schema = Arc::new(
        table
            .arrow_schema()
            .map_err(|e| Error::Internal(format!("catalog: {}", e.message())))?,
    );
    let plan = crate::delivery::plan_for(rt, &records);
    let mut errors = Vec::new();
    let groups = crate::flush::process(rt, &records, &mut errors, false).await?;
    let bucket = rt.spec().bucket().to_string();
    let has_keys = !table.partition_columns().is_empty();
    for group in groups {
        let Ok(key) = crate::flush::group_key(rt, &plan.key, plan.seed, plan.oldest_ms, &group)
        else {
            continue;
        };
        let values = match crate::convert::partition_of(&table, &bucket, &key) {
            Some((values, _)) => values,
            None if !has_keys => Vec::new(),
            // The object will not be in any catalog partition: a query would not read it.
            None => continue,
        };
        let schema = schema.clone();
        let config = config.clone();
        let decoded = tokio::task::spawn_blocking(move || {
            let slices: Vec<&[u8]> = group.records.iter().map(|r| r.data.as_ref()).collect();
            lakehose_formats::convert::decode(&slices, &schema, &config)
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
        // A batch the converter cannot take at all goes to the error output when flushed.
        let Ok((batches, _failed)) = decoded else {
            continue;
        };
        out.batches
            .extend(batches.into_iter().map(|b| (values.clone(), b)));
    }
    Ok(out)
}

//! [`GlueTable`]: a Glue table as a DataFusion [`TableProvider`].
//!
//! Schema: the data columns (in catalog order) followed by the partition keys (Athena's
//! order). A scan:
//!
//! 1. takes the table's snapshot, once per statement: the fresh (undelivered) rows **first**,
//!    then the catalog partitions (or the table location for an unpartitioned table);
//! 2. prunes partitions — and fresh rows — with the pushed-down filters that only reference
//!    partition keys, evaluated on a batch of the partition values cast to the keys' types;
//! 3. lists each remaining location recursively (concurrently, at most [`LIST_CONCURRENCY`]
//!    at a time), skipping objects whose name under the location has a part starting with `_`
//!    or `.`, empty objects, folder markers and the objects the fresh snapshot excludes
//!    ([`FreshSnapshot::excludes`], asked after the object was listed);
//! 4. plans one file scan per (bucket, format, compression) with the partition values of
//!    every file, unioned with the fresh rows aligned to the table's schema.
//!
//! Invariants: every object listed is read at most once per scan and never when the fresh
//! snapshot excludes it (so fresh rows are not double counted); the listing of a location
//! is reused by every scan of the table within the statement (self-joins see one snapshot);
//! partition filters are `Inexact` (DataFusion re-applies them), everything else
//! `Unsupported` (applied above the scan, and pushed into Parquet by DataFusion's physical
//! filter pushdown for row-group pruning).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions, StringArray};
use arrow_schema::{DataType, FieldRef, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, ScalarValue, Statistics};
use datafusion::datasource::file_format::FileFormat as DfFileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::listing::helpers::expr_applicable_for_cols;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::{
    FileGroup, FileScanConfig, FileScanConfigBuilder, FileSource, JsonSource, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use lakehose_catalog::{CatalogStore, Partition, Table};
use object_store::ObjectMeta;

use crate::QueryError;
use crate::adapt::{SAFE_CAST, align, with_view_types};
use crate::catalog::StatementContext;
use crate::errors::user_df;
use crate::format::{self, Compression, FileFormat};
use crate::fresh::FreshSnapshot;
use crate::orc::OrcSource;
use crate::stores::{Location, parse_location};
use crate::text::TextSource;

/// How many locations are listed at the same time.
pub(crate) const LIST_CONCURRENCY: usize = 16;

/// Hive's name for a NULL partition value.
const HIVE_DEFAULT_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// A Glue table, as of the statement that looked it up.
#[derive(Debug)]
pub(crate) struct GlueTable {
    database: String,
    table: Table,
    store: Arc<dyn CatalogStore>,
    data_schema: SchemaRef,
    partition_fields: Vec<FieldRef>,
    schema: SchemaRef,
    snapshot: tokio::sync::OnceCell<Arc<Snapshot>>,
}

/// What one statement sees of the table.
#[derive(Debug)]
struct Snapshot {
    fresh: FreshSnapshot,
    /// The locations to read: the partitions, or the table location.
    units: Vec<Unit>,
    /// Listings by location, shared by every scan of the statement.
    listings: Mutex<HashMap<String, Arc<Vec<ObjectMeta>>>>,
}

/// One location with its partition values and format.
#[derive(Debug, Clone)]
struct Unit {
    values: Vec<String>,
    location: String,
    format: Result<FileFormat, String>,
}

impl GlueTable {
    pub fn try_new(database: &str, table: Table, store: Arc<dyn CatalogStore>) -> DfResult<Self> {
        let name = format!("{database}.{}", table.name);
        if table.table_type.as_deref() == Some("VIRTUAL_VIEW") {
            return Err(user_df(format!(
                "Table '{name}' is a view: views are not supported"
            )));
        }
        let data_schema = table
            .arrow_schema()
            .map_err(|e| user_df(format!("Table '{name}' cannot be queried: {e}")))?;
        let partition_schema = table
            .partition_schema()
            .map_err(|e| user_df(format!("Table '{name}' cannot be queried: {e}")))?;
        // Scans produce strings as views (see `with_view_types`); results are cast back.
        let data_schema = with_view_types(&data_schema);
        let partition_fields: Vec<FieldRef> = partition_schema.fields().iter().cloned().collect();
        let mut fields: Vec<FieldRef> = data_schema.fields().iter().cloned().collect();
        fields.extend(partition_fields.iter().cloned());
        Ok(GlueTable {
            database: database.to_string(),
            table,
            store,
            data_schema: Arc::new(data_schema),
            partition_fields,
            schema: Arc::new(Schema::new(fields)),
            snapshot: tokio::sync::OnceCell::new(),
        })
    }

    fn partition_names(&self) -> Vec<&str> {
        self.partition_fields
            .iter()
            .map(|f| f.name().as_str())
            .collect()
    }

    /// The statement's snapshot: fresh rows first, then partitions.
    async fn snapshot(&self, ctx: Option<&StatementContext>) -> DfResult<Arc<Snapshot>> {
        let fresh_source = ctx.and_then(|c| c.fresh.clone());
        self.snapshot
            .get_or_try_init(|| async {
                let fresh = match fresh_source {
                    Some(f) => f
                        .snapshot(&self.database, &self.table.name)
                        .await
                        .map_err(|e| {
                            DataFusionError::External(Box::new(QueryError::Internal(format!(
                                "reading the undelivered records of {}.{} failed: {e}",
                                self.database, self.table.name
                            ))))
                        })?,
                    None => FreshSnapshot::default(),
                };
                let units = if self.partition_fields.is_empty() {
                    let location = self.table_location()?;
                    vec![Unit {
                        values: Vec::new(),
                        location,
                        format: format::detect(&self.table, None),
                    }]
                } else {
                    let parts = self
                        .store
                        .list_partitions(&self.database, &self.table.name)
                        .await
                        .map_err(|e| {
                            DataFusionError::External(Box::new(crate::errors::from_catalog(e)))
                        })?;
                    parts.into_iter().filter_map(|p| self.unit_of(p)).collect()
                };
                Ok(Arc::new(Snapshot {
                    fresh,
                    units,
                    listings: Mutex::new(HashMap::new()),
                }))
            })
            .await
            .cloned()
    }

    fn table_location(&self) -> DfResult<String> {
        self.table
            .storage_descriptor
            .as_ref()
            .and_then(|sd| sd.location.clone())
            .filter(|l| !l.is_empty())
            .ok_or_else(|| {
                user_df(format!(
                    "Table '{}.{}' has no location",
                    self.database, self.table.name
                ))
            })
    }

    /// A partition as a unit; partitions without a location (or with the wrong number of
    /// values) are skipped, as Athena skips them.
    fn unit_of(&self, p: Partition) -> Option<Unit> {
        if p.values.len() != self.partition_fields.len() {
            return None;
        }
        let location = p.location()?.to_string();
        let sd = p
            .storage_descriptor
            .as_ref()
            .filter(|sd| sd.serde_info.is_some() || sd.input_format.is_some());
        Some(Unit {
            format: format::detect(&self.table, sd),
            values: p.values,
            location,
        })
    }

    /// Which of `values` (one entry per partition) pass every filter.
    fn prune(
        &self,
        state: &dyn Session,
        filters: &[&Expr],
        values: &[&[String]],
    ) -> DfResult<Vec<bool>> {
        if filters.is_empty() || values.is_empty() || self.partition_fields.is_empty() {
            return Ok(vec![true; values.len()]);
        }
        let schema = Arc::new(Schema::new(self.partition_fields.to_vec()));
        let columns = self
            .partition_fields
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let strings: StringArray = values
                    .iter()
                    .map(|v| {
                        v.get(i)
                            .map(String::as_str)
                            .filter(|s| *s != HIVE_DEFAULT_PARTITION)
                    })
                    .collect();
                datafusion::arrow::compute::cast_with_options(
                    &(Arc::new(strings) as ArrayRef),
                    f.data_type(),
                    &SAFE_CAST,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let batch = RecordBatch::try_new_with_options(
            Arc::clone(&schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(values.len())),
        )?;
        let df_schema = DFSchema::try_from(Arc::clone(&schema))?;
        let mut keep = vec![true; values.len()];
        for filter in filters {
            // The filters are qualified with the table name; the batch is not.
            let unqualified = (*filter)
                .clone()
                .transform(|e| match e {
                    Expr::Column(c) => Ok(Transformed::yes(Expr::Column(Column::new_unqualified(
                        c.name,
                    )))),
                    other => Ok(Transformed::no(other)),
                })?
                .data;
            let Ok(physical) = state.create_physical_expr(unqualified, &df_schema) else {
                continue;
            };
            let Ok(result) = physical
                .evaluate(&batch)
                .and_then(|r| r.into_array(values.len()))
            else {
                continue;
            };
            let Some(mask) = result.as_any().downcast_ref::<BooleanArray>() else {
                continue;
            };
            for (i, k) in keep.iter_mut().enumerate() {
                *k = *k && mask.is_valid(i) && mask.value(i);
            }
        }
        Ok(keep)
    }

    /// The typed partition values of one unit.
    fn partition_scalars(&self, values: &[String]) -> Vec<ScalarValue> {
        self.partition_fields
            .iter()
            .zip(values)
            .map(|(f, v)| partition_scalar(v, f.data_type()))
            .collect()
    }

    /// Lists `unit`'s location (once per statement).
    async fn list(
        &self,
        state: &dyn Session,
        snapshot: &Snapshot,
        unit: &Unit,
    ) -> DfResult<(Location, Arc<Vec<ObjectMeta>>)> {
        let loc = parse_location(&unit.location).map_err(user_df)?;
        let cached = snapshot
            .listings
            .lock()
            .ok()
            .and_then(|l| l.get(&unit.location).cloned());
        if let Some(objects) = cached {
            return Ok((loc, objects));
        }
        let store = state.runtime_env().object_store(loc.store_url()?)?;
        let prefix = loc.path();
        let mut objects = Vec::new();
        let mut stream = store.list(Some(&prefix));
        while let Some(item) = stream.next().await {
            match item {
                Ok(meta) => {
                    if is_data_object(&loc.prefix, meta.location.as_ref(), meta.size)
                        && !snapshot
                            .fresh
                            .excludes(&loc.object_url(meta.location.as_ref()))
                    {
                        objects.push(meta);
                    }
                }
                Err(object_store::Error::NotFound { .. }) => break,
                Err(e) => return Err(e.into()),
            }
        }
        objects.sort_by(|a, b| a.location.cmp(&b.location));

        let objects = Arc::new(objects);
        if let Ok(mut l) = snapshot.listings.lock() {
            l.insert(unit.location.clone(), Arc::clone(&objects));
        }
        Ok((loc, objects))
    }

    /// The fresh rows of the kept partitions, aligned to the table's full schema.
    fn fresh_batches(&self, snapshot: &Snapshot, keep: &[bool]) -> DfResult<Vec<RecordBatch>> {
        let mut out = Vec::new();
        for (fb, kept) in snapshot.fresh.batches.iter().zip(keep) {
            if !kept || fb.batch.num_rows() == 0 {
                continue;
            }
            if fb.partition_values.len() != self.partition_fields.len() {
                return Err(DataFusionError::External(Box::new(QueryError::Internal(
                    format!(
                        "undelivered records of {}.{} have {} partition values, the table has {} \
                     partition keys",
                        self.database,
                        self.table.name,
                        fb.partition_values.len(),
                        self.partition_fields.len()
                    ),
                ))));
            }
            let data = align(&fb.batch, &self.data_schema)?;
            let rows = data.num_rows();
            let mut columns = data.columns().to_vec();
            for s in self.partition_scalars(&fb.partition_values) {
                columns.push(s.to_array_of_size(rows)?);
            }
            out.push(RecordBatch::try_new_with_options(
                Arc::clone(&self.schema),
                columns,
                &RecordBatchOptions::new().with_row_count(Some(rows)),
            )?);
        }
        Ok(out)
    }

    /// One file scan over `files` of one bucket, format and compression.
    async fn file_scan(
        &self,
        state: &dyn Session,
        key: &GroupKey,
        files: Vec<PartitionedFile>,
        projection: Option<&Vec<usize>>,
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let table_schema = TableSchema::builder(Arc::clone(&self.data_schema))
            .with_table_partition_cols(self.partition_fields.clone())
            .build();
        let source: Arc<dyn FileSource> = match &key.format {
            FileFormat::Parquet => Arc::new(ParquetSource::new(table_schema)),
            FileFormat::Json => Arc::new(JsonSource::new(table_schema)),
            FileFormat::Orc => Arc::new(OrcSource::new(table_schema)),
            FileFormat::Text(options) => Arc::new(TextSource::new(table_schema, options.clone())),
        };
        // Object sizes are the only statistics known without reading footers; as an inexact
        // byte size they still let the optimizer pick the smaller side of a join as its build
        // side (a dimension table joined with a large fact table), as DataFusion's own
        // listing tables do.
        let bytes: u64 = files.iter().map(|f| f.object_meta.size).sum();
        let mut statistics = Statistics::new_unknown(&self.schema);
        statistics.total_byte_size = Precision::Inexact(bytes as usize);
        let groups = spread(files, state.config().target_partitions());
        let mut builder = FileScanConfigBuilder::new(
            Location {
                bucket: key.bucket.clone(),
                prefix: String::new(),
            }
            .store_url()?,
            source,
        )
        .with_file_groups(groups)
        .with_statistics(statistics)
        .with_projection_indices(projection.cloned())?
        .with_limit(limit);
        if let Some(c) = key.compression {
            builder = builder.with_file_compression_type(c.file_compression_type());
        }
        let config: FileScanConfig = builder.build();
        match key.format {
            FileFormat::Parquet => {
                ParquetFormat::default()
                    .with_options(state.table_options().parquet.clone())
                    .create_physical_plan(state, config)
                    .await
            }
            _ => Ok(DataSourceExec::from_data_source(config)),
        }
    }
}

/// Files of one scan: same bucket, format and compression.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct GroupKey {
    bucket: String,
    format: FileFormat,
    compression: Option<Compression>,
}

/// The typed value of a partition key (NULL for Hive's default partition or a value that
/// does not convert).
fn partition_scalar(value: &str, data_type: &DataType) -> ScalarValue {
    if value == HIVE_DEFAULT_PARTITION {
        return ScalarValue::try_from(data_type).unwrap_or(ScalarValue::Null);
    }
    ScalarValue::try_from_string(value.to_string(), data_type)
        .or_else(|_| ScalarValue::try_from(data_type))
        .unwrap_or(ScalarValue::Null)
}

/// Whether the object `key` (under `prefix`) holds data: not hidden (no part of its name
/// under the prefix starts with `_` or `.`), not empty, not a folder marker.
pub(crate) fn is_data_object(prefix: &str, key: &str, size: u64) -> bool {
    if size == 0 || key.ends_with('/') || key.ends_with("$folder$") {
        return false;
    }
    let rel = if prefix.is_empty() {
        key
    } else {
        key.strip_prefix(prefix)
            .map(|r| r.trim_start_matches('/'))
            .unwrap_or(key)
    };
    !rel.split('/')
        .any(|part| part.starts_with('_') || part.starts_with('.'))
}

/// Splits files into at most `n` groups of similar total size (largest first).
fn spread(mut files: Vec<PartitionedFile>, n: usize) -> Vec<FileGroup> {
    let n = n.clamp(1, files.len().max(1));
    files.sort_by(|a, b| {
        b.object_meta
            .size
            .cmp(&a.object_meta.size)
            .then_with(|| a.object_meta.location.cmp(&b.object_meta.location))
    });
    let mut groups: Vec<(u64, Vec<PartitionedFile>)> = (0..n).map(|_| (0, Vec::new())).collect();
    for f in files {
        let Some(slot) = groups.iter_mut().min_by_key(|(size, _)| *size) else {
            break;
        };
        slot.0 += f.object_meta.size;
        slot.1.push(f);
    }
    groups
        .into_iter()
        .filter(|(_, g)| !g.is_empty())
        .map(|(_, g)| FileGroup::new(g))
        .collect()
}

#[async_trait]
impl TableProvider for GlueTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        let names = self.partition_names();
        Ok(filters
            .iter()
            .map(|f| {
                if !names.is_empty() && expr_applicable_for_cols(&names, f) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let ctx = state.config().get_extension::<StatementContext>();
        let snapshot = self.snapshot(ctx.as_deref()).await?;
        let names = self.partition_names();
        let partition_filters: Vec<&Expr> = filters
            .iter()
            .filter(|f| !names.is_empty() && expr_applicable_for_cols(&names, f))
            .collect();

        // Prune the partitions and the fresh rows with the same filters.
        let unit_values: Vec<&[String]> =
            snapshot.units.iter().map(|u| u.values.as_slice()).collect();
        let keep_units = self.prune(state, &partition_filters, &unit_values)?;
        let fresh_values: Vec<&[String]> = snapshot
            .fresh
            .batches
            .iter()
            .map(|b| b.partition_values.as_slice())
            .collect();
        let keep_fresh = self.prune(state, &partition_filters, &fresh_values)?;

        let units: Vec<&Unit> = snapshot
            .units
            .iter()
            .zip(&keep_units)
            .filter(|(_, k)| **k)
            .map(|(u, _)| u)
            .collect();
        // List the locations concurrently, in order, at most LIST_CONCURRENCY at a time.
        let mut listings: Vec<(Location, Arc<Vec<ObjectMeta>>)> = Vec::with_capacity(units.len());
        let mut in_flight = FuturesOrdered::new();
        let mut next = 0;
        while next < units.len() || !in_flight.is_empty() {
            while in_flight.len() < LIST_CONCURRENCY && next < units.len() {
                in_flight.push_back(self.list(state, &snapshot, units[next]));
                next += 1;
            }
            if let Some(listing) = in_flight.next().await {
                listings.push(listing?);
            }
        }

        let mut groups: Vec<(GroupKey, Vec<PartitionedFile>)> = Vec::new();
        for (unit, (loc, objects)) in units.iter().zip(&listings) {
            if objects.is_empty() {
                continue;
            }
            let format = unit.format.clone().map_err(user_df)?;
            let values = self.partition_scalars(&unit.values);
            for meta in objects.iter() {
                let compression = match format {
                    FileFormat::Json | FileFormat::Text(_) => {
                        format::compression_of(meta.location.as_ref())
                    }
                    _ => None,
                };
                let key = GroupKey {
                    bucket: loc.bucket.clone(),
                    format: format.clone(),
                    compression,
                };
                let file = PartitionedFile::new_from_meta(meta.clone())
                    .with_partition_values(values.clone());
                match groups.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, files)) => files.push(file),
                    None => groups.push((key, vec![file])),
                }
            }
        }

        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::with_capacity(groups.len() + 1);
        for (key, files) in groups {
            inputs.push(
                self.file_scan(state, &key, files, projection, limit)
                    .await?,
            );
        }
        let fresh = self.fresh_batches(&snapshot, &keep_fresh)?;
        if !fresh.is_empty() {
            inputs.push(MemorySourceConfig::try_new_exec(
                &[fresh],
                Arc::clone(&self.schema),
                projection.cloned(),
            )?);
        }
        if inputs.is_empty() {
            let projected = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => Arc::clone(&self.schema),
            };
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        UnionExec::try_new(inputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_and_empty_objects_are_skipped() {
        assert!(is_data_object("t", "t/dt=1/part-0.parquet", 10));
        assert!(!is_data_object("t", "t/dt=1/_SUCCESS", 10));
        assert!(!is_data_object("t", "t/.hidden/x", 10));
        assert!(!is_data_object("t", "t/_temporary/x", 10));
        assert!(!is_data_object("t", "t/x", 0));
        assert!(!is_data_object("t", "t/dt=1_$folder$", 1));
        // The table's own prefix may start with `_`.
        assert!(is_data_object("_t", "_t/x", 1));
        assert!(is_data_object("", "x/y", 1));
    }

    #[test]
    fn partition_values_are_typed() {
        assert_eq!(
            partition_scalar("7", &DataType::Int32),
            ScalarValue::Int32(Some(7))
        );
        assert_eq!(
            partition_scalar("x", &DataType::Int32),
            ScalarValue::Int32(None)
        );
        assert_eq!(
            partition_scalar(HIVE_DEFAULT_PARTITION, &DataType::Utf8),
            ScalarValue::Utf8(None)
        );
    }

    #[test]
    fn files_spread_by_size() {
        let files: Vec<_> = [5u64, 1, 4, 2]
            .iter()
            .enumerate()
            .map(|(i, s)| PartitionedFile::new(format!("f{i}"), *s))
            .collect();
        let groups = spread(files, 2);
        let sizes: Vec<u64> = groups
            .iter()
            .map(|g| g.iter().map(|f| f.object_meta.size).sum())
            .collect();
        assert_eq!(sizes, vec![6, 6]);
        assert_eq!(spread(Vec::new(), 4).len(), 0);
    }
}

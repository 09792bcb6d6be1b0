//! ORC objects as a DataFusion [`FileSource`], read with orc-rust's async reader through the
//! object store (footer and stripes fetched by range, never the whole object at once).
//!
//! (DataFusion 55 has no ORC reader of its own; `datafusion-orc` 0.10 targets DataFusion 55
//! but drags in DataFusion's default features, and does not fill partition columns.)
//!
//! Invariants: the opener yields batches of exactly the projected *logical* file schema
//! (columns matched by name, case-insensitively; Hive's positional `_colN` names matched by
//! position; missing columns NULL; types cast to the table's); partition columns and any
//! remaining projection are applied by DataFusion's [`ProjectionOpener`].

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, Field, Schema, SchemaRef};
use bytes::Bytes;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{
    FileOpenFuture, FileOpener, FileScanConfig, FileSource,
};
use datafusion::datasource::projection::{ProjectionOpener, SplitProjection};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::physical_expr::projection::ProjectionExprs;
use datafusion::physical_plan::PhysicalExpr;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryFutureExt, TryStreamExt};
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use orc_rust::ArrowReaderBuilder;
use orc_rust::projection::ProjectionMask;
use orc_rust::reader::AsyncChunkReader;

use crate::adapt::align;

/// Reads ORC objects.
#[derive(Clone)]
pub(crate) struct OrcSource {
    table_schema: TableSchema,
    projection: SplitProjection,
    batch_size: usize,
    metrics: ExecutionPlanMetricsSet,
}

impl OrcSource {
    pub fn new(table_schema: TableSchema) -> Self {
        OrcSource {
            projection: SplitProjection::unprojected(&table_schema),
            table_schema,
            batch_size: 8192,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl FileSource for OrcSource {
    fn create_file_opener(
        &self,
        object_store: Arc<dyn ObjectStore>,
        base_config: &FileScanConfig,
        _partition: usize,
    ) -> DfResult<Arc<dyn FileOpener>> {
        let file_schema = self.table_schema.file_schema();
        let projected = Arc::new(file_schema.project(&self.projection.file_indices)?);
        let opener = Arc::new(OrcOpener {
            store: object_store,
            file_schema: Arc::clone(file_schema),
            projected,
            batch_size: base_config.batch_size.unwrap_or(self.batch_size),
        });
        ProjectionOpener::try_new(self.projection.clone(), opener, file_schema)
    }

    fn table_schema(&self) -> &TableSchema {
        &self.table_schema
    }

    fn with_batch_size(&self, batch_size: usize) -> Arc<dyn FileSource> {
        Arc::new(OrcSource {
            batch_size,
            ..self.clone()
        })
    }

    fn projection(&self) -> Option<&ProjectionExprs> {
        Some(&self.projection.source)
    }

    fn metrics(&self) -> &ExecutionPlanMetricsSet {
        &self.metrics
    }

    fn file_type(&self) -> &str {
        "orc"
    }

    fn supports_repartitioning(&self) -> bool {
        false
    }

    fn try_pushdown_projection(
        &self,
        projection: &ProjectionExprs,
    ) -> DfResult<Option<Arc<dyn FileSource>>> {
        let mut source = self.clone();
        let merged = self.projection.source.try_merge(projection)?;
        source.projection = SplitProjection::new(self.table_schema.file_schema(), &merged);
        Ok(Some(Arc::new(source)))
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        datafusion::physical_plan::apply_expression_roots(self.projection.source.iter(), f)
    }
}

struct OrcOpener {
    store: Arc<dyn ObjectStore>,
    /// Every logical file column (the table's data columns).
    file_schema: SchemaRef,
    /// The logical file columns to produce.
    projected: SchemaRef,
    batch_size: usize,
}

impl FileOpener for OrcOpener {
    fn open(&self, file: PartitionedFile) -> DfResult<FileOpenFuture> {
        let reader = StoreReader {
            store: Arc::clone(&self.store),
            meta: file.object_meta.clone(),
        };
        let target = Arc::clone(&self.projected);
        let file_schema = Arc::clone(&self.file_schema);
        let batch_size = self.batch_size;
        Ok(Box::pin(async move {
            let builder = ArrowReaderBuilder::try_new_async(reader)
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            let root = builder.file_metadata().root_data_type();
            let names: Vec<String> = root
                .children()
                .iter()
                .map(|c| c.name().to_string())
                .collect();
            // Files written by Hive may name their columns `_col0`, `_col1`, ...: those are
            // matched to the table's columns by position.
            let positional = !names.is_empty()
                && names
                    .iter()
                    .enumerate()
                    .all(|(i, n)| *n == format!("_col{i}"));
            let logical: Vec<String> = names
                .iter()
                .enumerate()
                .map(|(i, n)| match file_schema.fields().get(i) {
                    Some(f) if positional => f.name().clone(),
                    _ => n.clone(),
                })
                .collect();
            let wanted: Vec<usize> = root
                .children()
                .iter()
                .enumerate()
                .filter(|(i, _)| {
                    target
                        .fields()
                        .iter()
                        .any(|f| f.name().eq_ignore_ascii_case(&logical[*i]))
                })
                .map(|(_, c)| c.data_type().column_index())
                .collect();
            let mask = ProjectionMask::roots(root, wanted);
            let stream = builder
                .with_batch_size(batch_size)
                .with_projection(mask)
                .build_async();
            let stream = stream
                .map_err(DataFusionError::from)
                .and_then(move |batch| {
                    let target = Arc::clone(&target);
                    let batch = if positional {
                        rename(batch, &names, &logical)
                    } else {
                        Ok(batch)
                    };
                    async move { Ok(align(&batch?, &target)?) }
                })
                .boxed();
            Ok(stream)
        }))
    }
}

/// `batch` with each column named `names[i]` renamed to `logical[i]`.
fn rename(
    batch: RecordBatch,
    names: &[String],
    logical: &[String],
) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema();
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let name = names
                .iter()
                .position(|n| n == f.name())
                .map_or_else(|| f.name().clone(), |i| logical[i].clone());
            f.as_ref().clone().with_name(name)
        })
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), batch.columns().to_vec())
}

/// Ranged reads of one object for orc-rust.
struct StoreReader {
    store: Arc<dyn ObjectStore>,
    meta: ObjectMeta,
}

impl AsyncChunkReader for StoreReader {
    fn len(&mut self) -> BoxFuture<'_, std::io::Result<u64>> {
        let size = self.meta.size;
        async move { Ok(size) }.boxed()
    }

    fn get_bytes(&mut self, offset: u64, length: u64) -> BoxFuture<'_, std::io::Result<Bytes>> {
        if length == 0 {
            // Object stores refuse empty ranges; ORC has empty streams.
            return async { Ok(Bytes::new()) }.boxed();
        }
        self.store
            .get_range(&self.meta.location, offset..offset + length)
            .map_err(std::io::Error::from)
            .boxed()
    }
}

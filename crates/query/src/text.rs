//! Delimited text objects (Hive's LazySimpleSerDe and OpenCSVSerde) as a DataFusion
//! [`FileSource`].
//!
//! Columns are positional. Every field is split as a string (arrow-csv's push decoder over
//! the object's byte stream, decompressed by extension) and then cast to the column's type
//! the way Hive does it: a value that does not convert is NULL, not an error; the SerDe's
//! NULL marker (`\N` for LazySimpleSerDe) is NULL; lines with fewer fields than columns read
//! the missing ones as NULL (older files of an evolved table).
//!
//! Limitation: nested columns (`array`, `map`, `struct`) of text tables read as NULL (Hive's
//! collection delimiters are not parsed).
//!
//! Invariant: the opener yields batches of exactly the projected logical file schema;
//! partition columns are added by DataFusion's [`ProjectionOpener`].

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, RecordBatchOptions, new_null_array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use bytes::{Buf, Bytes};
use datafusion::arrow::csv::ReaderBuilder;
use datafusion::arrow::csv::reader::Decoder;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
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
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStore, ObjectStoreExt};

use crate::adapt::coerce;
use crate::format::TextOptions;

/// Reads delimited text objects.
#[derive(Clone)]
pub(crate) struct TextSource {
    table_schema: TableSchema,
    projection: SplitProjection,
    options: TextOptions,
    batch_size: usize,
    metrics: ExecutionPlanMetricsSet,
}

impl TextSource {
    pub fn new(table_schema: TableSchema, options: TextOptions) -> Self {
        TextSource {
            projection: SplitProjection::unprojected(&table_schema),
            table_schema,
            options,
            batch_size: 8192,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl FileSource for TextSource {
    fn create_file_opener(
        &self,
        object_store: Arc<dyn ObjectStore>,
        base_config: &FileScanConfig,
        _partition: usize,
    ) -> DfResult<Arc<dyn FileOpener>> {
        let file_schema = self.table_schema.file_schema();
        let indices = self.projection.file_indices.clone();
        let projected = Arc::new(file_schema.project(&indices)?);
        let opener = Arc::new(TextOpener {
            store: object_store,
            columns: file_schema.fields().len(),
            indices,
            projected,
            options: self.options.clone(),
            batch_size: base_config.batch_size.unwrap_or(self.batch_size),
            compression: base_config.file_compression_type,
        });
        ProjectionOpener::try_new(self.projection.clone(), opener, file_schema)
    }

    fn table_schema(&self) -> &TableSchema {
        &self.table_schema
    }

    fn with_batch_size(&self, batch_size: usize) -> Arc<dyn FileSource> {
        Arc::new(TextSource {
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
        "text"
    }

    fn supports_repartitioning(&self) -> bool {
        // Lines could be split at byte ranges, but headers and quoting make that unsafe.
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

struct TextOpener {
    store: Arc<dyn ObjectStore>,
    /// Number of columns in a line (the table's data columns).
    columns: usize,
    /// Which of them to produce.
    indices: Vec<usize>,
    /// Their logical fields.
    projected: SchemaRef,
    options: TextOptions,
    batch_size: usize,
    compression: FileCompressionType,
}

/// The regular expression matching exactly `marker` (or nothing when it is empty).
fn null_regex(marker: &str) -> DfResult<regex::Regex> {
    let pattern = if marker.is_empty() {
        // Never matches: OpenCSVSerde has no NULL marker, empty fields are empty strings.
        r"[^\s\S]".to_string()
    } else {
        format!("^{}$", regex::escape(marker))
    };
    regex::Regex::new(&pattern)
        .map_err(|e| DataFusionError::Execution(format!("bad NULL marker '{marker}': {e}")))
}

impl TextOpener {
    fn decoder(&self) -> DfResult<Decoder> {
        let strings = Arc::new(Schema::new(
            (0..self.columns)
                .map(|i| Field::new(format!("c{i}"), DataType::Utf8, true))
                .collect::<Vec<_>>(),
        ));
        let mut builder = ReaderBuilder::new(strings)
            .with_header(false)
            .with_delimiter(self.options.delimiter)
            // LazySimpleSerDe has no quoting: a NUL quote byte never starts a field.
            .with_quote(self.options.quote.unwrap_or(0))
            .with_truncated_rows(true)
            .with_batch_size(self.batch_size)
            .with_projection(self.indices.clone())
            .with_bounds(self.options.skip_header, usize::MAX);
        if let Some(e) = self.options.escape {
            builder = builder.with_escape(e);
        }
        builder = builder.with_null_regex(null_regex(&self.options.null_marker)?);
        Ok(builder.build_decoder())
    }
}

impl FileOpener for TextOpener {
    fn open(&self, file: PartitionedFile) -> DfResult<FileOpenFuture> {
        let store = Arc::clone(&self.store);
        let decoder = self.decoder()?;
        let compression = self.compression;
        let projected = Arc::clone(&self.projected);
        Ok(Box::pin(async move {
            let got = store.get(&file.object_meta.location).await?;
            let input = got.into_stream().map_err(DataFusionError::from).boxed();
            let input = compression.convert_stream(input)?;
            let state = DecodeState {
                input,
                buf: Bytes::new(),
                eof: false,
                done: false,
                decoder,
                projected,
            };
            let stream = futures::stream::try_unfold(state, |mut st| async move {
                let batch = st.next_batch().await?;
                Ok(batch.map(|b| (b, st)))
            });
            Ok(stream.boxed())
        }))
    }
}

struct DecodeState {
    input: BoxStream<'static, DfResult<Bytes>>,
    buf: Bytes,
    eof: bool,
    done: bool,
    decoder: Decoder,
    projected: SchemaRef,
}

impl DecodeState {
    async fn next_batch(&mut self) -> DfResult<Option<RecordBatch>> {
        if self.done {
            return Ok(None);
        }
        loop {
            if self.buf.is_empty() && !self.eof {
                match self.input.next().await {
                    Some(chunk) => self.buf = chunk?,
                    None => self.eof = true,
                }
            }
            let consumed = self.decoder.decode(&self.buf)?;
            self.buf.advance(consumed);
            let full = self.decoder.capacity() == 0;
            if full || (self.eof && self.buf.is_empty()) {
                match self.decoder.flush()? {
                    Some(batch) if batch.num_rows() > 0 => return self.convert(batch).map(Some),
                    _ if self.eof && self.buf.is_empty() => {
                        self.done = true;
                        return Ok(None);
                    }
                    _ => {}
                }
            }
        }
    }

    /// The string columns cast to the table's types.
    fn convert(&self, batch: RecordBatch) -> DfResult<RecordBatch> {
        let rows = batch.num_rows();
        let columns = self
            .projected
            .fields()
            .iter()
            .zip(batch.columns())
            .map(|(field, col)| match field.data_type() {
                DataType::List(_) | DataType::Map(..) | DataType::Struct(_) => {
                    Ok(new_null_array(field.data_type(), rows))
                }
                other => coerce(col, other),
            })
            .collect::<Result<Vec<ArrayRef>, _>>()?;
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.projected),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?)
    }
}

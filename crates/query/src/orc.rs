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
//!
//! Stripe pruning: the query's filters reach the source (`try_pushdown_filters`; they stay in
//! the plan above it too, so pruning only has to be safe, not exact). A stripe whose column
//! statistics show no row can match is neither fetched (stripes before the first and after the
//! last kept one are outside the reader's byte range) nor decoded (stripes between are skipped
//! by a row selection). A statistic that is missing, inexact in the unsafe direction, or of a
//! type that does not map to the table's keeps the stripe.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_array::{ArrayRef, UInt64Array};
use arrow_schema::DataType;
use arrow_schema::{ArrowError, Field, Schema, SchemaRef};
use bytes::Bytes;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Column, ScalarValue};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{
    FileOpenFuture, FileOpener, FileScanConfig, FileSource,
};
use datafusion::datasource::projection::{ProjectionOpener, SplitProjection};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::physical_expr::conjunction;
use datafusion::physical_expr::projection::ProjectionExprs;
use datafusion::physical_optimizer::pruning::{PruningPredicateBuilder, PruningStatistics};
use datafusion::physical_plan::PhysicalExpr;
use datafusion::physical_plan::filter_pushdown::{FilterPushdownPropagation, PushedDown};
use datafusion::physical_plan::metrics::{Count, ExecutionPlanMetricsSet, MetricBuilder};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryFutureExt, TryStreamExt};
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use orc_rust::ArrowReaderBuilder;
use orc_rust::projection::ProjectionMask;
use orc_rust::reader::AsyncChunkReader;
use orc_rust::reader::metadata::FileMetadata;
use orc_rust::row_selection::{RowSelection, RowSelector};
use orc_rust::statistics::TypeStatistics;

use crate::adapt::align;

/// Reads ORC objects.
#[derive(Clone)]
pub(crate) struct OrcSource {
    table_schema: TableSchema,
    projection: SplitProjection,
    batch_size: usize,
    metrics: ExecutionPlanMetricsSet,
    /// The query's filters over the table's columns, for stripe pruning.
    predicate: Option<Arc<dyn PhysicalExpr>>,
}

impl OrcSource {
    pub fn new(table_schema: TableSchema) -> Self {
        OrcSource {
            projection: SplitProjection::unprojected(&table_schema),
            table_schema,
            batch_size: 8192,
            metrics: ExecutionPlanMetricsSet::new(),
            predicate: None,
        }
    }
}

impl FileSource for OrcSource {
    fn create_file_opener(
        &self,
        object_store: Arc<dyn ObjectStore>,
        base_config: &FileScanConfig,
        partition: usize,
    ) -> DfResult<Arc<dyn FileOpener>> {
        let file_schema = self.table_schema.file_schema();
        let projected = Arc::new(file_schema.project(&self.projection.file_indices)?);
        let opener = Arc::new(OrcOpener {
            store: object_store,
            file_schema: Arc::clone(file_schema),
            projected,
            batch_size: base_config.batch_size.unwrap_or(self.batch_size),
            predicate: self.predicate.clone(),
            table_schema: Arc::clone(self.table_schema.table_schema()),
            stripes_pruned: MetricBuilder::new(&self.metrics).counter("stripes_pruned", partition),
            bytes_scanned: MetricBuilder::new(&self.metrics).counter("bytes_scanned", partition),
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

    fn try_pushdown_filters(
        &self,
        filters: Vec<Arc<dyn PhysicalExpr>>,
        _config: &ConfigOptions,
    ) -> DfResult<FilterPushdownPropagation<Arc<dyn FileSource>>> {
        // Kept for stripe pruning only: the filters stay above the scan (`No`), which still
        // drops the rows of kept stripes that do not match.
        let pushed = vec![PushedDown::No; filters.len()];
        if filters.is_empty() {
            return Ok(FilterPushdownPropagation::with_parent_pushdown_result(
                pushed,
            ));
        }
        let mut source = self.clone();
        source.predicate = Some(conjunction(self.predicate.iter().cloned().chain(filters)));
        Ok(
            FilterPushdownPropagation::with_parent_pushdown_result(pushed)
                .with_updated_node(Arc::new(source) as Arc<dyn FileSource>),
        )
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
    /// The query's filters over the table's columns (`table_schema`), for stripe pruning.
    predicate: Option<Arc<dyn PhysicalExpr>>,
    table_schema: SchemaRef,
    stripes_pruned: Count,
    /// Bytes fetched from the object store (footers included), as Parquet's scan counts them.
    bytes_scanned: Count,
}

impl FileOpener for OrcOpener {
    fn open(&self, file: PartitionedFile) -> DfResult<FileOpenFuture> {
        let reader = StoreReader {
            store: Arc::clone(&self.store),
            meta: file.object_meta.clone(),
            bytes_scanned: self.bytes_scanned.clone(),
        };
        let target = Arc::clone(&self.projected);
        let file_schema = Arc::clone(&self.file_schema);
        let batch_size = self.batch_size;
        // Built at each open: a dynamic filter (a TopK's, a join's) is read as it is now. A
        // predicate that cannot prune (or keeps everything) is `None`.
        let pruning = self.predicate.as_ref().and_then(|p| {
            PruningPredicateBuilder::new()
                .with_file_schema(Arc::clone(&self.table_schema))
                .build(Arc::clone(p))
        });
        let stripes_pruned = self.stripes_pruned.clone();
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
            let mut builder = builder.with_batch_size(batch_size).with_projection(mask);
            if let Some(pruning) = pruning {
                let stats = StripeStatistics {
                    metadata: builder.file_metadata(),
                    logical: &logical,
                    file_schema: &file_schema,
                };
                let keep = pruning.prune(&stats)?;
                let pruned = keep.iter().filter(|k| !**k).count();
                stripes_pruned.add(pruned);
                if pruned == keep.len() {
                    return Ok(futures::stream::empty().boxed());
                }
                if pruned > 0 {
                    let (range, selection) = kept_stripes(builder.file_metadata(), &keep);
                    builder = builder
                        .with_file_byte_range(range)
                        .with_row_selection(selection);
                }
            }
            let stream = builder.build_async();
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

/// The byte range of the stripes from the first to the last kept one (the reader fetches only
/// stripes that start in it), and the row selection over those stripes that skips the rows of
/// the ones not kept in between.
fn kept_stripes(metadata: &FileMetadata, keep: &[bool]) -> (std::ops::Range<usize>, RowSelection) {
    let stripes = metadata.stripe_metadatas();
    let first = keep.iter().position(|k| *k).unwrap_or(0);
    let last = keep.iter().rposition(|k| *k).unwrap_or(0);
    let range = stripes[first].offset() as usize..stripes[last].offset() as usize + 1;
    let selection = (first..=last)
        .map(|i| {
            let rows = stripes[i].number_of_rows() as usize;
            if keep[i] {
                RowSelector::select(rows)
            } else {
                RowSelector::skip(rows)
            }
        })
        .collect::<Vec<_>>()
        .into();
    (range, selection)
}

/// The column statistics of each stripe of one file, for DataFusion's `PruningPredicate`: each table
/// column is found among the file's top-level columns as the opener matches them, and each
/// bound is cast to the table's type (or left unknown).
struct StripeStatistics<'a> {
    metadata: &'a FileMetadata,
    /// The table's name of each top-level file column.
    logical: &'a [String],
    file_schema: &'a SchemaRef,
}

impl StripeStatistics<'_> {
    /// The file's ORC column ID and the table's type for `column`.
    fn find(&self, column: &Column) -> Option<(usize, DataType)> {
        let field = self
            .file_schema
            .fields()
            .iter()
            .find(|f| f.name().eq_ignore_ascii_case(column.name()))?;
        let i = self
            .logical
            .iter()
            .position(|n| n.eq_ignore_ascii_case(column.name()))?;
        let root = self.metadata.root_data_type();
        let id = root.children().get(i)?.data_type().column_index();
        Some((id, field.data_type().clone()))
    }

    /// Each stripe's minimum (`max == false`) or maximum of `column`, cast to the table's type;
    /// `None` when a bound of some stripe is not known.
    fn bounds(&self, column: &Column, max: bool) -> Option<ArrayRef> {
        let (id, target) = self.find(column)?;
        let values = self
            .metadata
            .stripe_metadatas()
            .iter()
            .map(|stripe| {
                let stats = stripe.column_statistics().get(id)?;
                if stats.number_of_values() == 0 {
                    // Only nulls: no bound, and the null count says the rest.
                    return ScalarValue::try_from(&target).ok();
                }
                bound(stats.type_statistics()?, max, &target)
            })
            .collect::<Option<Vec<_>>>()?;
        ScalarValue::iter_to_array(values).ok()
    }
}

/// One stripe's bound as a value of `target`, or `None` when it cannot be stated safely.
fn bound(stats: &TypeStatistics, max: bool, target: &DataType) -> Option<ScalarValue> {
    // Bounds order like the values only within one kind of type: the file's strings cast to a
    // table's integers (or the reverse) would compare lexicographically against numerically.
    let same_kind = match stats {
        TypeStatistics::Integer { .. } => target.is_integer(),
        TypeStatistics::Double { .. } => target.is_floating(),
        TypeStatistics::String { .. } => {
            matches!(
                target,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            )
        }
        TypeStatistics::Date { .. } => *target == DataType::Date32,
        TypeStatistics::Timestamp { .. } => matches!(target, DataType::Timestamp(..)),
        TypeStatistics::Decimal { .. } => matches!(target, DataType::Decimal128(..)),
        _ => false,
    };
    if !same_kind {
        return None;
    }
    let value = match stats {
        TypeStatistics::Integer { min, max: hi, .. } => {
            ScalarValue::Int64(Some(if max { *hi } else { *min }))
        }
        // A NaN makes the sum NaN in every writer; the Java and C++ writers then leave it out of
        // the bounds (or make the bounds NaN), so only a finite sum vouches for them.
        TypeStatistics::Double { min, max: hi, sum } if sum.is_some_and(f64::is_finite) => {
            ScalarValue::Float64(Some(if max { *hi } else { *min }))
        }
        TypeStatistics::String {
            lower_bound,
            upper_bound,
            is_exact_max,
            ..
        } => {
            // A missing minimum reads as "", still a lower bound; a missing maximum is none.
            if max && !is_exact_max {
                return None;
            }
            ScalarValue::Utf8(Some(if max {
                upper_bound.clone()
            } else {
                lower_bound.clone()
            }))
        }
        TypeStatistics::Date { min, max: hi } => {
            ScalarValue::Date32(Some(if max { *hi } else { *min }))
        }
        // Writers before ORC-135 stored no UTC bounds, which orc-rust reads as 0: two zeros
        // are taken as unknown.
        TypeStatistics::Timestamp {
            min_utc: 0,
            max_utc: 0,
            ..
        } => return None,
        // Milliseconds, rounded down: the maximum may hide up to 999,999 ns more.
        TypeStatistics::Timestamp {
            min_utc, max_utc, ..
        } => ScalarValue::TimestampMillisecond(
            Some(if max {
                max_utc.checked_add(1)?
            } else {
                *min_utc
            }),
            None,
        ),
        TypeStatistics::Decimal { min, max: hi, .. } => {
            let DataType::Decimal128(precision, scale) = target else {
                return None;
            };
            let text = if max { hi } else { min };
            let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
            // Only the table's own scale is read; another would need rounding outward.
            if fraction.len() != usize::from(scale.unsigned_abs()) || *scale < 0 {
                return None;
            }
            let unscaled = format!("{whole}{fraction}").parse::<i128>().ok()?;
            return Some(ScalarValue::Decimal128(Some(unscaled), *precision, *scale));
        }
        _ => return None,
    };
    // The opener casts the file's values to the table's type with the same monotonic casts,
    // so a bound cast alike stays a bound of what the query sees.
    value.cast_to(target).ok()
}

impl PruningStatistics for StripeStatistics<'_> {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        self.bounds(column, false)
    }

    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        self.bounds(column, true)
    }

    fn num_containers(&self) -> usize {
        self.metadata.stripe_metadatas().len()
    }

    fn null_counts(&self, column: &Column) -> Option<ArrayRef> {
        let (id, _) = self.find(column)?;
        let counts = self
            .metadata
            .stripe_metadatas()
            .iter()
            .map(|stripe| {
                let values = stripe.column_statistics().get(id)?.number_of_values();
                Some(stripe.number_of_rows().saturating_sub(values))
            })
            .collect::<Option<Vec<u64>>>()?;
        Some(Arc::new(UInt64Array::from(counts)))
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        let rows: Vec<u64> = self
            .metadata
            .stripe_metadatas()
            .iter()
            .map(|s| s.number_of_rows())
            .collect();
        Some(Arc::new(UInt64Array::from(rows)))
    }

    fn contained(
        &self,
        _column: &Column,
        _values: &std::collections::HashSet<ScalarValue>,
    ) -> Option<arrow_array::BooleanArray> {
        None
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
    bytes_scanned: Count,
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
        self.bytes_scanned.add(length as usize);
        self.store
            .get_range(&self.meta.location, offset..offset + length)
            .map_err(std::io::Error::from)
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use arrow_schema::TimeUnit;

    use super::*;

    #[test]
    fn bounds_are_safe_or_unknown() {
        let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
        let stamps = |min_utc, max_utc| TypeStatistics::Timestamp {
            min: 0,
            max: 0,
            min_utc,
            max_utc,
        };
        // The maximum in milliseconds may hide nanoseconds: widened by one millisecond.
        assert_eq!(
            bound(&stamps(5, 9), true, &ts),
            Some(ScalarValue::TimestampMillisecond(Some(10), None))
        );
        assert_eq!(
            bound(&stamps(5, 9), false, &ts),
            Some(ScalarValue::TimestampMillisecond(Some(5), None))
        );
        // A file from before ORC-135 (no UTC bounds, read as zeros): unknown.
        assert_eq!(bound(&stamps(0, 0), false, &ts), None);

        let strings = |exact| TypeStatistics::String {
            lower_bound: "a".into(),
            upper_bound: "b".into(),
            sum: 2,
            is_exact_min: exact,
            is_exact_max: exact,
        };
        assert_eq!(bound(&strings(false), true, &DataType::Utf8), None);
        assert_eq!(
            bound(&strings(false), false, &DataType::Utf8),
            Some(ScalarValue::Utf8(Some("a".into())))
        );

        let decimal = TypeStatistics::Decimal {
            min: "-1.25".into(),
            max: "3.50".into(),
            sum: "2.25".into(),
        };
        assert_eq!(
            bound(&decimal, false, &DataType::Decimal128(10, 2)),
            Some(ScalarValue::Decimal128(Some(-125), 10, 2))
        );
        assert_eq!(bound(&decimal, true, &DataType::Decimal128(10, 3)), None);
        assert_eq!(
            bound(
                &TypeStatistics::Bucket { true_count: 1 },
                true,
                &DataType::Boolean
            ),
            None
        );

        let doubles = |sum| TypeStatistics::Double {
            min: 1.0,
            max: 2.0,
            sum,
        };
        assert_eq!(
            bound(&doubles(Some(3.0)), true, &DataType::Float64),
            Some(ScalarValue::Float64(Some(2.0)))
        );
        assert_eq!(
            bound(&doubles(Some(f64::NAN)), true, &DataType::Float64),
            None
        );
        assert_eq!(bound(&doubles(None), false, &DataType::Float64), None);

        // A file's strings under a table's integers (or the reverse): no bounds.
        let ints = TypeStatistics::Integer {
            min: 9,
            max: 100,
            sum: Some(109),
        };
        assert_eq!(bound(&ints, true, &DataType::Utf8), None);
        assert_eq!(bound(&strings(true), false, &DataType::Int64), None);
        assert_eq!(
            bound(&ints, true, &DataType::Int32),
            Some(ScalarValue::Int32(Some(100)))
        );
    }
}

//! Aligning record batches to a table's schema: by column name, missing columns as NULL,
//! extra columns dropped, differing types cast.
//!
//! Used for rows that do not come through DataFusion's Parquet reader (which has its own
//! adapter): ORC objects, fresh (undelivered) rows and text columns read as strings.
//! Invariant: the output always has exactly the target schema, whatever the input.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, RecordBatchOptions, new_null_array};
use arrow_schema::{ArrowError, DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::arrow::compute::{CastOptions, can_cast_types, cast_with_options};

/// Casts that never fail: a value that does not convert becomes NULL (Hive's behaviour).
pub(crate) const SAFE_CAST: CastOptions<'static> = CastOptions {
    safe: true,
    format_options: datafusion::arrow::util::display::FormatOptions::new(),
};

/// `column` as `to`: unchanged when the type is already right, cast when Arrow can, NULLs
/// otherwise.
pub(crate) fn coerce(column: &ArrayRef, to: &DataType) -> Result<ArrayRef, ArrowError> {
    if column.data_type() == to {
        return Ok(Arc::clone(column));
    }
    if can_cast_types(column.data_type(), to) {
        return cast_with_options(column, to, &SAFE_CAST);
    }
    Ok(new_null_array(to, column.len()))
}

/// `schema` with its top-level `Utf8` / `Binary` columns as `Utf8View` / `BinaryView`: the
/// types scans produce (faster to decode, hash and compare than the offset-based ones).
pub(crate) fn with_view_types(schema: &Schema) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let t = match f.data_type() {
                DataType::Utf8 => DataType::Utf8View,
                DataType::Binary => DataType::BinaryView,
                other => other.clone(),
            };
            f.as_ref().clone().with_data_type(t)
        })
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// `dt` with every `Utf8View` / `BinaryView` (at any depth) as `Utf8` / `Binary`: the types
/// results are returned with.
pub(crate) fn without_view_types(dt: &DataType) -> DataType {
    let field = |f: &FieldRef| -> FieldRef {
        Arc::new(
            f.as_ref()
                .clone()
                .with_data_type(without_view_types(f.data_type())),
        )
    };
    match dt {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::List(f) => DataType::List(field(f)),
        DataType::LargeList(f) => DataType::LargeList(field(f)),
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(field(f), *n),
        DataType::Struct(fs) => DataType::Struct(fs.iter().map(field).collect()),
        DataType::Map(f, sorted) => DataType::Map(field(f), *sorted),
        other => other.clone(),
    }
}

/// `batch` with the types of [`without_view_types`] (unchanged when it has no view types).
pub(crate) fn result_batch(batch: RecordBatch) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema();
    if !schema
        .fields()
        .iter()
        .any(|f| without_view_types(f.data_type()) != *f.data_type())
    {
        return Ok(batch);
    }
    let target = result_schema(&schema);
    let columns = batch
        .columns()
        .iter()
        .zip(target.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(Arc::clone(c))
            } else {
                cast_with_options(c, f.data_type(), &CastOptions::default())
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new_with_options(
        target,
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
}

/// `schema` with the types of [`without_view_types`].
pub(crate) fn result_schema(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            f.as_ref()
                .clone()
                .with_data_type(without_view_types(f.data_type()))
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `batch` with the columns of `target`, matched by name (exactly, then ignoring case).
pub(crate) fn align(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    let source = batch.schema();
    let rows = batch.num_rows();
    let columns = target
        .fields()
        .iter()
        .map(|field| {
            let idx = source.index_of(field.name()).ok().or_else(|| {
                source
                    .fields()
                    .iter()
                    .position(|f| f.name().eq_ignore_ascii_case(field.name()))
            });
            match idx {
                Some(i) => coerce(batch.column(i), field.data_type()),
                None => Ok(new_null_array(field.data_type(), rows)),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new_with_options(
        Arc::clone(target),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, Int32Array, Int64Array, StringArray};

    #[test]
    fn aligns_by_name() {
        let batch = RecordBatch::try_from_iter(vec![
            ("B", Arc::new(StringArray::from(vec!["x", "y"])) as ArrayRef),
            ("a", Arc::new(Int32Array::from(vec![1, 2])) as ArrayRef),
            ("extra", Arc::new(Int32Array::from(vec![9, 9])) as ArrayRef),
        ])
        .unwrap();
        let target = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Utf8, true),
            Field::new("c", DataType::Int32, true),
        ]));
        let out = align(&batch, &target).unwrap();
        assert_eq!(out.schema(), target);
        let a = out.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(a.value(1), 2);
        assert_eq!(out.column(2).null_count(), 2);
    }

    #[test]
    fn view_types_round_trip() {
        let schema = Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("i", DataType::Int32, true),
        ]);
        let views = with_view_types(&schema);
        assert_eq!(views.field(0).data_type(), &DataType::Utf8View);
        let batch = RecordBatch::try_new(
            Arc::new(views),
            vec![
                Arc::new(arrow_array::StringViewArray::from(vec!["a"])) as ArrayRef,
                Arc::new(Int32Array::from(vec![1])) as ArrayRef,
            ],
        )
        .unwrap();
        let out = result_batch(batch).unwrap();
        assert_eq!(out.schema().as_ref(), &schema);
        let nested = DataType::List(Arc::new(Field::new("item", DataType::Utf8View, true)));
        assert_eq!(
            without_view_types(&nested),
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
        );
    }

    #[test]
    fn bad_values_become_null() {
        let col: ArrayRef = Arc::new(StringArray::from(vec!["1", "x"]));
        let out = coerce(&col, &DataType::Int32).unwrap();
        assert_eq!(out.null_count(), 1);
    }
}

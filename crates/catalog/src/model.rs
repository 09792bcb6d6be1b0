//! Catalog entities with Glue's member names: the same types are read from API requests
//! (`DatabaseInput`, `TableInput`, `PartitionInput` — the input shapes are subsets of these),
//! written to storage, and answered to clients (`Database`, `Table`, `Partition`).
//!
//! Timestamps are Glue's wire encoding: seconds since the Unix epoch as a JSON number
//! (millisecond fractions allowed). Members Lakehose does not interpret but Glue stores
//! (`TargetTable`, `ViewDefinition`, `SchemaReference`, ...) are kept as raw JSON so they round
//! trip. Server-managed members (`DatabaseName`, `CreateTime`, `UpdateTime`, `VersionId`,
//! `CatalogId`, ...) are overwritten by the store, whatever the caller put there.

use std::collections::BTreeMap;

use arrow_schema::{Field, Schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::hive::{HiveType, arrow_to_hive};
use crate::{CatalogError, Result};

/// Key/value parameters (`ParametersMap`), ordered for stable output.
pub type Parameters = BTreeMap<String, String>;

/// A database (`Database` / `DatabaseInput`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Database {
    /// Lower-cased name.
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Default location of the database's tables (`s3://...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_uri: Option<String>,
    /// Arbitrary parameters.
    #[serde(default)]
    pub parameters: Parameters,
    /// Set by the store when the database is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<f64>,
    /// Lake Formation default permissions; kept as given (Glue's default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_table_default_permissions: Option<Value>,
    /// Resource link target; kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_database: Option<Value>,
    /// Federation source; kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federated_database: Option<Value>,
    /// Set by the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<String>,
}

impl Database {
    /// A database named `name` with nothing else set.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }
}

/// A column (`Column`): a name and a Hive type string.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Column {
    /// Column name, kept as given (Athena compares case-insensitively).
    pub name: String,
    /// Hive type, e.g. `bigint` or `array<struct<a:int>>`. Glue allows it to be absent; a table
    /// with an untyped column is stored but has no Arrow schema.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub r#type: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Arbitrary parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: Parameters,
}

impl Column {
    /// A column `name` of Hive type `hive_type`.
    pub fn new(name: impl Into<String>, hive_type: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            r#type: hive_type.into(),
            ..Self::default()
        }
    }

    /// The column for an Arrow field (schema inference); `None` when the Arrow type has no Hive
    /// equivalent (e.g. `Null`, unions, durations).
    pub fn from_arrow_field(field: &Field) -> Option<Self> {
        Some(Self::new(field.name(), arrow_to_hive(field.data_type())?))
    }

    /// The parsed Hive type.
    pub fn hive_type(&self) -> Result<HiveType> {
        if self.r#type.trim().is_empty() {
            return Err(CatalogError::InvalidInput(format!(
                "Column '{}' has no type.",
                self.name
            )));
        }
        HiveType::parse(&self.r#type)
    }

    /// The nullable Arrow field of this column.
    pub fn arrow_field(&self) -> Result<Field> {
        Ok(Field::new(&self.name, self.hive_type()?.to_arrow()?, true))
    }
}

/// Serialisation library and its parameters (`SerDeInfo`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SerDeInfo {
    /// SerDe name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// e.g. `org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serialization_library: Option<String>,
    /// e.g. `{"serialization.format": "1"}`.
    #[serde(default)]
    pub parameters: Parameters,
}

/// A sort column (`Order`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Order {
    /// Column name.
    pub column: String,
    /// 1 ascending, 0 descending.
    pub sort_order: i32,
}

/// Where and how a table's or partition's data is stored (`StorageDescriptor`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StorageDescriptor {
    /// Data columns (not the partition keys).
    #[serde(default)]
    pub columns: Vec<Column>,
    /// `s3://bucket/prefix/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// More locations; kept as given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_locations: Vec<String>,
    /// e.g. `org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_format: Option<String>,
    /// e.g. `org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_format: Option<String>,
    /// Whether the data is compressed.
    #[serde(default)]
    pub compressed: bool,
    /// Hive bucketing; 0 when unused (crawlers write -1).
    #[serde(default)]
    pub number_of_buckets: i32,
    /// The SerDe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serde_info: Option<SerDeInfo>,
    /// Hive bucketing columns.
    #[serde(default)]
    pub bucket_columns: Vec<String>,
    /// Sort order within buckets.
    #[serde(default)]
    pub sort_columns: Vec<Order>,
    /// Arbitrary parameters.
    #[serde(default)]
    pub parameters: Parameters,
    /// Skew information; kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skewed_info: Option<Value>,
    /// Whether the data is in sub-directories.
    #[serde(default)]
    pub stored_as_sub_directories: bool,
    /// Schema registry reference; kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_reference: Option<Value>,
}

/// A table (`Table` / `TableInput`), one version of it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Table {
    /// Lower-cased name.
    pub name: String,
    /// Set by the store: the lower-cased database name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_name: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Set by the store when the table is created; kept by updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<f64>,
    /// Set by the store at creation and by every update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_time: Option<f64>,
    /// Kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_access_time: Option<f64>,
    /// Kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_analyzed_time: Option<f64>,
    /// Retention time (non-negative).
    #[serde(default)]
    pub retention: i32,
    /// Columns, location, formats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_descriptor: Option<StorageDescriptor>,
    /// Partition columns, in path order (primitive types only).
    #[serde(default)]
    pub partition_keys: Vec<Column>,
    /// View text; kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_original_text: Option<String>,
    /// View text; kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_expanded_text: Option<String>,
    /// e.g. `EXTERNAL_TABLE`, `VIRTUAL_VIEW`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_type: Option<String>,
    /// e.g. `{"classification": "parquet"}`.
    #[serde(default)]
    pub parameters: Parameters,
    /// Kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Always false here.
    #[serde(default)]
    pub is_registered_with_lake_formation: bool,
    /// Resource link target; kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_table: Option<Value>,
    /// Set by the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<String>,
    /// Set by the store: `"0"` at creation, incremented by every update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Multi-dialect view definition; kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_definition: Option<Value>,
}

impl Table {
    /// A table `name` with data `columns`, `partition_keys` and data `location`; no formats set.
    pub fn new(
        name: impl Into<String>,
        columns: Vec<Column>,
        partition_keys: Vec<Column>,
        location: Option<String>,
    ) -> Self {
        Self {
            name: name.into(),
            storage_descriptor: Some(StorageDescriptor {
                columns,
                location,
                ..StorageDescriptor::default()
            }),
            partition_keys,
            table_type: Some("EXTERNAL_TABLE".to_string()),
            ..Self::default()
        }
    }

    /// The data columns (from the storage descriptor; empty without one).
    pub fn columns(&self) -> &[Column] {
        self.storage_descriptor
            .as_ref()
            .map(|sd| sd.columns.as_slice())
            .unwrap_or_default()
    }

    /// The partition columns, in path order.
    pub fn partition_columns(&self) -> &[Column] {
        &self.partition_keys
    }

    /// The Arrow schema of the data columns (partition keys excluded), every field nullable.
    pub fn arrow_schema(&self) -> Result<Schema> {
        let fields = self
            .columns()
            .iter()
            .map(Column::arrow_field)
            .collect::<Result<Vec<_>>>()?;
        Ok(Schema::new(fields))
    }

    /// The Arrow schema of the partition keys, every field nullable.
    pub fn partition_schema(&self) -> Result<Schema> {
        let fields = self
            .partition_keys
            .iter()
            .map(Column::arrow_field)
            .collect::<Result<Vec<_>>>()?;
        Ok(Schema::new(fields))
    }

    /// The version number (`VersionId` parsed); 0 when unset.
    pub fn version(&self) -> u64 {
        self.version_id
            .as_deref()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// A partition of this table with `values` stored at `location`, inheriting the table's
    /// columns, formats and SerDe (what Glue crawlers and Firehose register).
    pub fn partition_for(&self, values: Vec<String>, location: impl Into<String>) -> Partition {
        let mut sd = self.storage_descriptor.clone().unwrap_or_default();
        sd.location = Some(location.into());
        Partition {
            values,
            storage_descriptor: Some(sd),
            ..Partition::default()
        }
    }
}

/// One partition of a table (`Partition` / `PartitionInput`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Partition {
    /// One value per partition key, in key order.
    #[serde(default)]
    pub values: Vec<String>,
    /// Set by the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_name: Option<String>,
    /// Set by the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_name: Option<String>,
    /// Set by the store when the partition is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<f64>,
    /// Kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_access_time: Option<f64>,
    /// Location and formats of this partition's data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_descriptor: Option<StorageDescriptor>,
    /// Arbitrary parameters.
    #[serde(default)]
    pub parameters: Parameters,
    /// Kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_analyzed_time: Option<f64>,
    /// Set by the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<String>,
}

impl Partition {
    /// A partition with `values` at `location` (no columns or formats; see
    /// [`Table::partition_for`] to inherit the table's).
    pub fn new(values: Vec<String>, location: Option<String>) -> Self {
        Self {
            values,
            storage_descriptor: location.map(|location| StorageDescriptor {
                location: Some(location),
                ..StorageDescriptor::default()
            }),
            ..Self::default()
        }
    }

    /// The partition's data location, if set.
    pub fn location(&self) -> Option<&str> {
        self.storage_descriptor.as_ref()?.location.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::DataType;
    use serde_json::json;

    #[test]
    fn table_input_parses_with_glue_member_names() {
        let input = json!({
            "Name": "Events",
            "Description": "d",
            "Owner": "me",
            "Retention": 0,
            "StorageDescriptor": {
                "Columns": [{"Name": "id", "Type": "bigint", "Comment": "c"}, {"Name": "tags", "Type": "array<string>"}],
                "Location": "s3://b/events/",
                "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe", "Parameters": {"serialization.format": "1"}},
                "Compressed": false,
                "SomethingNew": 1
            },
            "PartitionKeys": [{"Name": "dt", "Type": "string"}],
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {"classification": "parquet"},
            "TargetTable": {"CatalogId": "1", "DatabaseName": "x", "Name": "y"}
        });
        let t: Table = serde_json::from_value(input).unwrap();
        assert_eq!(t.columns().len(), 2);
        assert_eq!(t.partition_columns()[0].name, "dt");
        let schema = t.arrow_schema().unwrap();
        assert_eq!(schema.field(0).data_type(), &DataType::Int64);
        assert!(schema.field(0).is_nullable());
        assert_eq!(
            t.partition_schema().unwrap().field(0).data_type(),
            &DataType::Utf8
        );
        let back = serde_json::to_value(&t).unwrap();
        assert_eq!(back["StorageDescriptor"]["Columns"][0]["Type"], "bigint");
        assert_eq!(
            back["StorageDescriptor"]["SerdeInfo"]["Parameters"]["serialization.format"],
            "1"
        );
        assert_eq!(back["TargetTable"]["Name"], "y");
        assert_eq!(back["PartitionKeys"][0]["Name"], "dt");
        assert!(back.get("VersionId").is_none());
    }

    #[test]
    fn partition_for_inherits_the_table_descriptor() {
        let t = Table::new(
            "t",
            vec![Column::new("a", "int")],
            vec![Column::new("dt", "string")],
            Some("s3://b/t/".into()),
        );
        let p = t.partition_for(vec!["2024".into()], "s3://b/t/dt=2024/");
        assert_eq!(p.location(), Some("s3://b/t/dt=2024/"));
        assert_eq!(p.storage_descriptor.unwrap().columns, t.columns());
    }

    #[test]
    fn untyped_column_has_no_schema() {
        let t = Table::new("t", vec![Column::new("a", "")], vec![], None);
        assert!(matches!(
            t.arrow_schema(),
            Err(CatalogError::InvalidInput(_))
        ));
    }

    #[test]
    fn column_from_arrow_field() {
        let f = Field::new("x", DataType::Float64, true);
        assert_eq!(Column::from_arrow_field(&f).unwrap().r#type, "double");
        assert!(Column::from_arrow_field(&Field::new("n", DataType::Null, true)).is_none());
    }
}

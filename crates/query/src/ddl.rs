//! Athena DDL over the catalog.
//!
//! Statements (keywords case-insensitive, identifiers bare, `` `quoted` `` or `"quoted"`):
//!
//! ```text
//! CREATE (DATABASE|SCHEMA) [IF NOT EXISTS] db [COMMENT '..'] [LOCATION 's3://..']
//!        [WITH DBPROPERTIES ('k'='v', ...)]
//! DROP (DATABASE|SCHEMA) [IF EXISTS] db [RESTRICT|CASCADE]
//! CREATE EXTERNAL TABLE [IF NOT EXISTS] [db.]t (col type [COMMENT '..'], ...)
//!        [COMMENT '..'] [PARTITIONED BY (k type [COMMENT '..'], ...)]
//!        [CLUSTERED BY (c, ...) INTO n BUCKETS]
//!        [ROW FORMAT DELIMITED [FIELDS TERMINATED BY 'c' [ESCAPED BY 'c']]
//!              [COLLECTION ITEMS TERMINATED BY 'c'] [MAP KEYS TERMINATED BY 'c']
//!              [LINES TERMINATED BY 'c'] [NULL DEFINED AS 'c']
//!         | ROW FORMAT SERDE 'class' [WITH SERDEPROPERTIES ('k'='v', ...)]]
//!        [STORED AS PARQUET|ORC|TEXTFILE|JSON|JSONFILE|AVRO|SEQUENCEFILE|RCFILE|ION
//!         | STORED AS INPUTFORMAT 'class' OUTPUTFORMAT 'class']
//!        LOCATION 's3://bucket/prefix/' [TBLPROPERTIES ('k'='v', ...)]
//! DROP TABLE [IF EXISTS] [db.]t
//! MSCK REPAIR TABLE [db.]t
//! ALTER TABLE [db.]t ADD [IF NOT EXISTS] PARTITION (k='v', ...) [LOCATION '..'] [PARTITION ...]
//! ALTER TABLE [db.]t DROP [IF EXISTS] PARTITION (k='v', ...) [, PARTITION (...)]...
//! ALTER TABLE [db.]t ADD COLUMNS (col type [COMMENT '..'], ...)
//! ALTER TABLE [db.]t SET TBLPROPERTIES ('k'='v', ...)
//! ALTER TABLE [db.]t SET LOCATION 's3://..'
//! ```
//!
//! Column types are Hive types, parsed (and normalised) by [`HiveType`], so nested types such
//! as `array<struct<a:int,`b c`:string>>` work; column names are lower-cased as Athena does.
//! Formats and SerDes are set the way Athena sets them for each `STORED AS`.
//!
//! Results: `MSCK REPAIR TABLE` returns one `result` column (one row per partition added, then
//! `Added N partition(s)`); every other statement returns an empty result with no columns.
//!
//! Invariants: a statement is fully parsed and validated before the catalog is touched; a
//! statement that fails changes nothing, except `MSCK REPAIR` and multi-partition `ALTER`,
//! which apply each partition independently (as Glue's batch calls do) after checking them.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};
use futures::StreamExt;
use lakehose_catalog::{CatalogError, CatalogStore, Column, Database, HiveType, SerDeInfo, Table};

use crate::command::{partition_spec, require_database, require_table, string_result};
use crate::errors::from_catalog;
use crate::lexer::{Cursor, TableName, Tok, user_at};
use crate::stores::{BucketRegistry, parse_location};
use crate::table::is_data_object;
use crate::{Position, QueryError, Result};

const PARQUET_SERDE: &str = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe";
const ORC_SERDE: &str = "org.apache.hadoop.hive.ql.io.orc.OrcSerde";
const LAZY_SIMPLE_SERDE: &str = "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe";
const JSON_SERDE: &str = "org.openx.data.jsonserde.JsonSerDe";
const TEXT_INPUT: &str = "org.apache.hadoop.mapred.TextInputFormat";
const TEXT_OUTPUT: &str = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat";

/// Runs one DDL statement.
pub(crate) async fn execute(
    sql: &str,
    catalog: &dyn CatalogStore,
    buckets: &BucketRegistry,
    default_db: &str,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let statement = parse(sql)?;
    run(statement, catalog, buckets, default_db).await
}

/// An empty result with no columns.
fn empty() -> (SchemaRef, Vec<RecordBatch>) {
    (Arc::new(Schema::empty()), Vec::new())
}

/// A parsed DDL statement.
#[derive(Debug, Clone)]
pub(crate) enum Statement {
    CreateDatabase {
        name: String,
        if_not_exists: bool,
        comment: Option<String>,
        location: Option<String>,
        properties: BTreeMap<String, String>,
    },
    DropDatabase {
        name: String,
        pos: Position,
        if_exists: bool,
        cascade: bool,
    },
    CreateTable {
        name: TableName,
        if_not_exists: bool,
        table: Box<Table>,
    },
    DropTable {
        name: TableName,
        if_exists: bool,
    },
    Repair {
        name: TableName,
    },
    AddPartitions {
        name: TableName,
        if_not_exists: bool,
        partitions: Vec<PartitionSpec>,
    },
    DropPartitions {
        name: TableName,
        if_exists: bool,
        partitions: Vec<PartitionSpec>,
    },
    AddColumns {
        name: TableName,
        columns: Vec<Column>,
    },
    SetProperties {
        name: TableName,
        properties: BTreeMap<String, String>,
    },
    SetLocation {
        name: TableName,
        location: String,
    },
}

/// `PARTITION (k='v', ...) [LOCATION '..']` as written.
#[derive(Debug, Clone)]
pub(crate) struct PartitionSpec {
    pub values: Vec<(String, String)>,
    pub location: Option<String>,
    pub pos: Position,
}

/// Parses one DDL statement.
pub(crate) fn parse(sql: &str) -> Result<Statement> {
    let mut cur = Cursor::new(sql)?;
    let statement = if cur.eat_kw("CREATE") {
        if cur.eat_kw("DATABASE") || cur.eat_kw("SCHEMA") {
            create_database(&mut cur)?
        } else if cur.eat_kw("EXTERNAL") {
            cur.expect_kw("TABLE")?;
            create_table(&mut cur)?
        } else if cur.is_kw("TABLE") {
            return Err(cur.error(
                "Only external tables are supported: use CREATE EXTERNAL TABLE ... LOCATION \
                 's3://...' (managed, Iceberg and CTAS tables are not supported)",
            ));
        } else {
            return Err(cur.expected("DATABASE, SCHEMA or EXTERNAL TABLE"));
        }
    } else if cur.eat_kw("DROP") {
        if cur.eat_kw("DATABASE") || cur.eat_kw("SCHEMA") {
            let if_exists = cur.eat_kws(&["IF", "EXISTS"]);
            let (name, pos) = cur.ident()?;
            let cascade = if cur.eat_kw("CASCADE") {
                true
            } else {
                let _ = cur.eat_kw("RESTRICT");
                false
            };
            Statement::DropDatabase {
                name: name.to_lowercase(),
                pos,
                if_exists,
                cascade,
            }
        } else if cur.eat_kw("TABLE") {
            let if_exists = cur.eat_kws(&["IF", "EXISTS"]);
            let name = cur.table_name()?;
            Statement::DropTable { name, if_exists }
        } else {
            return Err(cur.expected("DATABASE, SCHEMA or TABLE"));
        }
    } else if cur.eat_kw("MSCK") {
        cur.expect_kw("REPAIR")?;
        cur.expect_kw("TABLE")?;
        Statement::Repair {
            name: cur.table_name()?,
        }
    } else if cur.eat_kw("ALTER") {
        cur.expect_kw("TABLE")?;
        let name = cur.table_name()?;
        alter_table(&mut cur, name)?
    } else {
        return Err(cur.expected("CREATE, DROP, ALTER or MSCK"));
    };
    cur.expect_end()?;
    Ok(statement)
}

fn create_database(cur: &mut Cursor<'_>) -> Result<Statement> {
    let if_not_exists = cur.eat_kws(&["IF", "NOT", "EXISTS"]);
    let (name, _) = cur.ident()?;
    let (mut comment, mut location, mut properties) = (None, None, BTreeMap::new());
    loop {
        if cur.eat_kw("COMMENT") {
            comment = Some(cur.string()?);
        } else if cur.eat_kw("LOCATION") {
            let at = cur.here();
            let l = cur.string()?;
            parse_location(&l).map_err(|e| user_at(e, at))?;
            location = Some(l);
        } else if cur.eat_kws(&["WITH", "DBPROPERTIES"]) {
            properties = property_list(cur)?;
        } else {
            break;
        }
    }
    Ok(Statement::CreateDatabase {
        name: name.to_lowercase(),
        if_not_exists,
        comment,
        location,
        properties,
    })
}

/// `('k'='v', ...)`.
fn property_list(cur: &mut Cursor<'_>) -> Result<BTreeMap<String, String>> {
    cur.expect_sym('(')?;
    let mut out = BTreeMap::new();
    if cur.eat_sym(')') {
        return Ok(out);
    }
    loop {
        let k = cur.string()?;
        cur.expect_sym('=')?;
        let v = cur.string()?;
        out.insert(k, v);
        if cur.eat_sym(')') {
            return Ok(out);
        }
        cur.expect_sym(',')?;
    }
}

/// A Hive type: the text up to the next `,` / `)` / `COMMENT` outside brackets, parsed and
/// normalised.
fn hive_type(cur: &mut Cursor<'_>) -> Result<String> {
    let at = cur.here();
    let first = cur.i;
    let mut depth = 0usize;
    while let Some(t) = cur.peek() {
        match &t.tok {
            Tok::Sym('<' | '(') => depth += 1,
            Tok::Sym('>' | ')') if depth > 0 => depth -= 1,
            Tok::Sym(',' | ')') if depth == 0 => break,
            Tok::Word(w) if depth == 0 && w.eq_ignore_ascii_case("COMMENT") => break,
            _ => {}
        }
        cur.i += 1;
    }
    if cur.i == first {
        return Err(cur.expected("a column type"));
    }
    let text = &cur.sql[cur.toks[first].start..cur.toks[cur.i - 1].end];
    let parsed = HiveType::parse(text).map_err(|e| user_at(e.message(), at))?;
    Ok(parsed.to_string())
}

/// `(name type [COMMENT '..'], ...)`.
fn column_list(cur: &mut Cursor<'_>) -> Result<Vec<Column>> {
    cur.expect_sym('(')?;
    let mut out: Vec<Column> = Vec::new();
    let mut seen = HashSet::new();
    loop {
        let (name, pos) = cur.ident()?;
        let name = name.to_lowercase();
        if !seen.insert(name.clone()) {
            return Err(user_at(format!("Duplicate column name '{name}'"), pos));
        }
        let mut col = Column::new(&name, hive_type(cur)?);
        if cur.eat_kw("COMMENT") {
            col.comment = Some(cur.string()?);
        }
        out.push(col);
        if cur.eat_sym(')') {
            return Ok(out);
        }
        cur.expect_sym(',')?;
    }
}

/// The input format, output format and SerDe of `STORED AS <name>`.
fn stored_as(name: &str) -> Option<(&'static str, &'static str, &'static str)> {
    Some(match name.to_ascii_uppercase().as_str() {
        "PARQUET" => (
            "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
            "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
            PARQUET_SERDE,
        ),
        "ORC" => (
            "org.apache.hadoop.hive.ql.io.orc.OrcInputFormat",
            "org.apache.hadoop.hive.ql.io.orc.OrcOutputFormat",
            ORC_SERDE,
        ),
        "TEXTFILE" => (TEXT_INPUT, TEXT_OUTPUT, LAZY_SIMPLE_SERDE),
        "JSON" | "JSONFILE" => (TEXT_INPUT, TEXT_OUTPUT, JSON_SERDE),
        "AVRO" => (
            "org.apache.hadoop.hive.ql.io.avro.AvroContainerInputFormat",
            "org.apache.hadoop.hive.ql.io.avro.AvroContainerOutputFormat",
            "org.apache.hadoop.hive.serde2.avro.AvroSerDe",
        ),
        "SEQUENCEFILE" => (
            "org.apache.hadoop.mapred.SequenceFileInputFormat",
            "org.apache.hadoop.hive.ql.io.HiveSequenceFileOutputFormat",
            LAZY_SIMPLE_SERDE,
        ),
        "RCFILE" => (
            "org.apache.hadoop.hive.ql.io.RCFileInputFormat",
            "org.apache.hadoop.hive.ql.io.RCFileOutputFormat",
            "org.apache.hadoop.hive.serde2.columnar.LazyBinaryColumnarSerDe",
        ),
        "ION" => (
            "com.amazon.ionhiveserde.formats.IonInputFormat",
            "com.amazon.ionhiveserde.formats.IonOutputFormat",
            "com.amazon.ionhiveserde.IonHiveSerDe",
        ),
        _ => return None,
    })
}

fn create_table(cur: &mut Cursor<'_>) -> Result<Statement> {
    let if_not_exists = cur.eat_kws(&["IF", "NOT", "EXISTS"]);
    let name = cur.table_name()?;
    let columns = if cur.is_sym('(') {
        column_list(cur)?
    } else {
        return Err(cur.expected("'(' and the column list"));
    };
    let mut comment = None;
    let mut partition_keys: Vec<Column> = Vec::new();
    let mut serde: Option<SerDeInfo> = None;
    let mut formats: Option<(String, String, Option<&'static str>)> = None;
    let mut location: Option<String> = None;
    let mut properties = BTreeMap::new();
    let mut buckets: Option<(Vec<String>, i32)> = None;
    loop {
        if cur.eat_kw("COMMENT") {
            comment = Some(cur.string()?);
        } else if cur.eat_kws(&["PARTITIONED", "BY"]) {
            let at = cur.here();
            partition_keys = column_list(cur)?;
            for k in &partition_keys {
                if columns.iter().any(|c| c.name == k.name) {
                    return Err(user_at(
                        format!(
                            "Column '{}' cannot be both a data column and a partition key",
                            k.name
                        ),
                        at,
                    ));
                }
                if HiveType::parse(&k.r#type).is_ok_and(|t| !t.is_primitive()) {
                    return Err(user_at(
                        format!(
                            "Partition key '{}' has type '{}': only primitive types can be \
                             partition keys",
                            k.name, k.r#type
                        ),
                        at,
                    ));
                }
            }
        } else if cur.eat_kws(&["CLUSTERED", "BY"]) {
            cur.expect_sym('(')?;
            let mut cols = vec![cur.ident()?.0.to_lowercase()];
            while cur.eat_sym(',') {
                cols.push(cur.ident()?.0.to_lowercase());
            }
            cur.expect_sym(')')?;
            cur.expect_kw("INTO")?;
            let at = cur.here();
            let n = match cur.peek().map(|t| t.tok.clone()) {
                Some(Tok::Num(n)) => {
                    cur.i += 1;
                    n.parse::<i32>()
                        .map_err(|_| user_at("Expected a number of buckets", at))?
                }
                _ => return Err(cur.expected("a number of buckets")),
            };
            cur.expect_kw("BUCKETS")?;
            buckets = Some((cols, n));
        } else if cur.eat_kws(&["ROW", "FORMAT"]) {
            serde = Some(row_format(cur)?);
        } else if cur.eat_kws(&["STORED", "AS"]) {
            if cur.eat_kw("INPUTFORMAT") {
                let input = cur.string()?;
                cur.expect_kw("OUTPUTFORMAT")?;
                let output = cur.string()?;
                formats = Some((input, output, None));
            } else {
                let (word, at) = cur.ident()?;
                let (i, o, s) = stored_as(&word).ok_or_else(|| {
                    user_at(format!("Unsupported file format '{word}' in STORED AS"), at)
                })?;
                formats = Some((i.to_string(), o.to_string(), Some(s)));
            }
        } else if cur.eat_kw("LOCATION") {
            let at = cur.here();
            let l = cur.string()?;
            parse_location(&l).map_err(|e| user_at(e, at))?;
            location = Some(l);
        } else if cur.eat_kw("TBLPROPERTIES") {
            properties = property_list(cur)?;
        } else if cur.eat_kw("AS") {
            return Err(cur.error("CREATE TABLE AS SELECT is not supported"));
        } else if cur.at_end() {
            break;
        } else {
            return Err(cur.expected(
                "COMMENT, PARTITIONED BY, CLUSTERED BY, ROW FORMAT, STORED AS, LOCATION or \
                 TBLPROPERTIES",
            ));
        }
    }
    let Some(location) = location else {
        return Err(cur.error("LOCATION 's3://bucket/prefix/' is required for an external table"));
    };
    // The SerDe: the ROW FORMAT's, else the STORED AS one's, else LazySimpleSerDe.
    let (input, output, default_serde) = match formats {
        Some(f) => f,
        None => {
            let lib = serde
                .as_ref()
                .and_then(|s| s.serialization_library.clone())
                .unwrap_or_default()
                .to_ascii_lowercase();
            let (i, o, s) = if lib.contains("parquet") {
                stored_as("PARQUET")
            } else if lib.contains(".orc.") {
                stored_as("ORC")
            } else {
                stored_as("TEXTFILE")
            }
            .unwrap_or((TEXT_INPUT, TEXT_OUTPUT, LAZY_SIMPLE_SERDE));
            (i.to_string(), o.to_string(), Some(s))
        }
    };
    let serde = serde.unwrap_or_else(|| {
        let lib = default_serde.unwrap_or(LAZY_SIMPLE_SERDE);
        let mut parameters = BTreeMap::new();
        if lib == PARQUET_SERDE || lib == LAZY_SIMPLE_SERDE {
            parameters.insert("serialization.format".to_string(), "1".to_string());
        }
        SerDeInfo {
            serialization_library: Some(lib.to_string()),
            parameters,
            ..SerDeInfo::default()
        }
    });
    let (_, table_name) = name.resolve("");
    let mut table = Table::new(table_name, columns, partition_keys, Some(location));
    table.description = comment;
    table.parameters = properties;
    table
        .parameters
        .entry("EXTERNAL".to_string())
        .or_insert_with(|| "TRUE".to_string());
    if let Some(sd) = table.storage_descriptor.as_mut() {
        sd.input_format = Some(input);
        sd.output_format = Some(output);
        sd.serde_info = Some(serde);
        if let Some((cols, n)) = buckets {
            sd.bucket_columns = cols;
            sd.number_of_buckets = n;
        }
    }
    Ok(Statement::CreateTable {
        name,
        if_not_exists,
        table: Box::new(table),
    })
}

/// `DELIMITED ...` or `SERDE 'class' [WITH SERDEPROPERTIES (...)]` (after `ROW FORMAT`).
fn row_format(cur: &mut Cursor<'_>) -> Result<SerDeInfo> {
    if cur.eat_kw("SERDE") {
        let lib = cur.string()?;
        let parameters = if cur.eat_kws(&["WITH", "SERDEPROPERTIES"]) {
            property_list(cur)?
        } else {
            BTreeMap::new()
        };
        return Ok(SerDeInfo {
            serialization_library: Some(lib),
            parameters,
            ..SerDeInfo::default()
        });
    }
    cur.expect_kw("DELIMITED")?;
    let mut parameters = BTreeMap::new();
    loop {
        if cur.eat_kws(&["FIELDS", "TERMINATED", "BY"]) {
            let d = cur.string()?;
            parameters.insert("field.delim".to_string(), d.clone());
            parameters.insert("serialization.format".to_string(), d);
            if cur.eat_kws(&["ESCAPED", "BY"]) {
                parameters.insert("escape.delim".to_string(), cur.string()?);
            }
        } else if cur.eat_kws(&["COLLECTION", "ITEMS", "TERMINATED", "BY"]) {
            parameters.insert("collection.delim".to_string(), cur.string()?);
        } else if cur.eat_kws(&["MAP", "KEYS", "TERMINATED", "BY"]) {
            parameters.insert("mapkey.delim".to_string(), cur.string()?);
        } else if cur.eat_kws(&["LINES", "TERMINATED", "BY"]) {
            parameters.insert("line.delim".to_string(), cur.string()?);
        } else if cur.eat_kws(&["NULL", "DEFINED", "AS"]) {
            parameters.insert("serialization.null.format".to_string(), cur.string()?);
        } else {
            break;
        }
    }
    parameters
        .entry("serialization.format".to_string())
        .or_insert_with(|| "1".to_string());
    Ok(SerDeInfo {
        serialization_library: Some(LAZY_SIMPLE_SERDE.to_string()),
        parameters,
        ..SerDeInfo::default()
    })
}

/// `PARTITION (k='v', ...)`.
fn partition_spec_clause(cur: &mut Cursor<'_>) -> Result<PartitionSpec> {
    let pos = cur.here();
    cur.expect_kw("PARTITION")?;
    cur.expect_sym('(')?;
    let mut values = Vec::new();
    loop {
        let (k, _) = cur.ident()?;
        cur.expect_sym('=')?;
        let v = match cur.peek().map(|t| t.tok.clone()) {
            Some(Tok::Str(s) | Tok::Num(s)) => {
                cur.i += 1;
                s
            }
            Some(Tok::Sym('-')) => {
                cur.i += 1;
                match cur.peek().map(|t| t.tok.clone()) {
                    Some(Tok::Num(n)) => {
                        cur.i += 1;
                        format!("-{n}")
                    }
                    _ => return Err(cur.expected("a number")),
                }
            }
            _ => return Err(cur.expected("a partition value")),
        };
        values.push((k.to_lowercase(), v));
        if cur.eat_sym(')') {
            break;
        }
        cur.expect_sym(',')?;
    }
    Ok(PartitionSpec {
        values,
        location: None,
        pos,
    })
}

fn alter_table(cur: &mut Cursor<'_>, name: TableName) -> Result<Statement> {
    if cur.eat_kw("ADD") {
        if cur.eat_kw("COLUMNS") {
            let columns = column_list(cur)?;
            return Ok(Statement::AddColumns { name, columns });
        }
        let if_not_exists = cur.eat_kws(&["IF", "NOT", "EXISTS"]);
        let mut partitions = Vec::new();
        while cur.is_kw("PARTITION") {
            let mut spec = partition_spec_clause(cur)?;
            if cur.eat_kw("LOCATION") {
                let at = cur.here();
                let l = cur.string()?;
                parse_location(&l).map_err(|e| user_at(e, at))?;
                spec.location = Some(l);
            }
            partitions.push(spec);
        }
        if partitions.is_empty() {
            return Err(cur.expected("PARTITION or COLUMNS"));
        }
        return Ok(Statement::AddPartitions {
            name,
            if_not_exists,
            partitions,
        });
    }
    if cur.eat_kw("DROP") {
        let if_exists = cur.eat_kws(&["IF", "EXISTS"]);
        let mut partitions = vec![partition_spec_clause(cur)?];
        while cur.eat_sym(',') {
            partitions.push(partition_spec_clause(cur)?);
        }
        return Ok(Statement::DropPartitions {
            name,
            if_exists,
            partitions,
        });
    }
    if cur.eat_kw("SET") {
        if cur.eat_kw("TBLPROPERTIES") {
            let properties = property_list(cur)?;
            return Ok(Statement::SetProperties { name, properties });
        }
        if cur.eat_kw("LOCATION") {
            let at = cur.here();
            let location = cur.string()?;
            parse_location(&location).map_err(|e| user_at(e, at))?;
            return Ok(Statement::SetLocation { name, location });
        }
        return Err(cur.expected("TBLPROPERTIES or LOCATION"));
    }
    Err(cur.expected("ADD, DROP or SET"))
}

/// The values of `spec` in the order of `table`'s partition keys.
fn ordered_values(table: &Table, spec: &PartitionSpec) -> Result<Vec<String>> {
    let keys = table.partition_columns();
    if keys.is_empty() {
        return Err(user_at(
            format!("Table '{}' is not partitioned", table.name),
            spec.pos,
        ));
    }
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        let found: Vec<&String> = spec
            .values
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case(&k.name))
            .map(|(_, v)| v)
            .collect();
        match found.as_slice() {
            [v] => out.push((*v).clone()),
            [] => {
                return Err(user_at(
                    format!(
                        "Partition key '{}' is missing from the partition spec",
                        k.name
                    ),
                    spec.pos,
                ));
            }
            _ => {
                return Err(user_at(
                    format!("Partition key '{}' is given more than once", k.name),
                    spec.pos,
                ));
            }
        }
    }
    if let Some((name, _)) = spec
        .values
        .iter()
        .find(|(name, _)| !keys.iter().any(|k| k.name.eq_ignore_ascii_case(name)))
    {
        return Err(user_at(
            format!("'{name}' is not a partition key of table '{}'", table.name),
            spec.pos,
        ));
    }
    Ok(out)
}

/// `location` with exactly one trailing `/`.
fn with_slash(location: &str) -> String {
    format!("{}/", location.trim_end_matches('/'))
}

/// The default location of a partition: the table's plus `k=v/...`.
fn default_partition_location(table: &Table, values: &[String]) -> Result<String> {
    let base = table
        .storage_descriptor
        .as_ref()
        .and_then(|sd| sd.location.clone())
        .ok_or_else(|| QueryError::user(format!("Table '{}' has no location", table.name)))?;
    Ok(format!(
        "{}{}/",
        with_slash(&base),
        table
            .partition_keys
            .iter()
            .zip(values)
            .map(|(k, v)| format!("{}={}", k.name, escape_path(v)))
            .collect::<Vec<_>>()
            .join("/")
    ))
}

/// Hive's escaping of partition values in paths.
fn escape_path(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if c.is_control()
            || matches!(
                c,
                '"' | '#' | '%' | '\'' | '*' | '/' | ':' | '=' | '?' | '\\' | '{' | '[' | ']' | '^'
            )
        {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Undoes [`escape_path`].
fn unescape_path(v: &str) -> String {
    let bytes = v.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn run(
    statement: Statement,
    catalog: &dyn CatalogStore,
    buckets: &BucketRegistry,
    default_db: &str,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    match statement {
        Statement::CreateDatabase {
            name,
            if_not_exists,
            comment,
            location,
            properties,
        } => {
            let mut db = Database::new(name);
            db.description = comment;
            db.location_uri = location;
            db.parameters = properties;
            match catalog.create_database(db).await {
                Ok(()) => Ok(empty()),
                Err(CatalogError::AlreadyExists(_)) if if_not_exists => Ok(empty()),
                Err(CatalogError::AlreadyExists(_)) => {
                    Err(QueryError::user("Database already exists"))
                }
                Err(e) => Err(from_catalog(e)),
            }
        }
        Statement::DropDatabase {
            name,
            pos,
            if_exists,
            cascade,
        } => {
            match catalog.get_database(&name).await {
                Ok(_) => {}
                Err(CatalogError::EntityNotFound(_)) if if_exists => return Ok(empty()),
                Err(CatalogError::EntityNotFound(_)) => {
                    return Err(user_at(format!("Database '{name}' does not exist"), pos));
                }
                Err(e) => return Err(from_catalog(e)),
            }
            if !cascade
                && !catalog
                    .list_tables(&name)
                    .await
                    .map_err(from_catalog)?
                    .is_empty()
            {
                return Err(user_at(
                    format!("Database '{name}' is not empty: drop its tables first or use CASCADE"),
                    pos,
                ));
            }
            catalog.delete_database(&name).await.map_err(from_catalog)?;
            Ok(empty())
        }
        Statement::CreateTable {
            name,
            if_not_exists,
            table,
        } => {
            let (db, _) = name.resolve(default_db);
            require_database(catalog, &db, name.pos).await?;
            match catalog.create_table(&db, *table).await {
                Ok(()) => Ok(empty()),
                Err(CatalogError::AlreadyExists(_)) if if_not_exists => Ok(empty()),
                Err(CatalogError::AlreadyExists(_)) => Err(user_at(
                    format!("Table '{db}.{}' already exists", name.name.to_lowercase()),
                    name.pos,
                )),
                Err(e) => Err(from_catalog(e)),
            }
        }
        Statement::DropTable { name, if_exists } => {
            let (db, t) = name.resolve(default_db);
            match catalog.delete_table(&db, &t).await {
                Ok(()) => Ok(empty()),
                Err(CatalogError::EntityNotFound(_)) if if_exists => Ok(empty()),
                Err(CatalogError::EntityNotFound(_)) => {
                    require_database(catalog, &db, name.pos).await?;
                    Err(user_at(
                        format!("Table '{db}.{t}' does not exist"),
                        name.pos,
                    ))
                }
                Err(e) => Err(from_catalog(e)),
            }
        }
        Statement::Repair { name } => {
            let (db, table) = require_table(catalog, &name, default_db).await?;
            repair(catalog, buckets, &db, &table, name.pos).await
        }
        Statement::AddPartitions {
            name,
            if_not_exists,
            partitions,
        } => {
            let (db, table) = require_table(catalog, &name, default_db).await?;
            let mut parts = Vec::new();
            let mut seen = HashSet::new();
            for spec in &partitions {
                let values = ordered_values(&table, spec)?;
                let exists = match catalog.get_partition(&db, &table.name, &values).await {
                    Ok(_) => true,
                    Err(CatalogError::EntityNotFound(_)) => false,
                    Err(e) => return Err(from_catalog(e)),
                };
                if exists || !seen.insert(values.clone()) {
                    if if_not_exists {
                        continue;
                    }
                    return Err(user_at(
                        format!(
                            "Partition {} of table '{db}.{}' already exists",
                            partition_spec(&table, &values),
                            table.name
                        ),
                        spec.pos,
                    ));
                }
                let location = match &spec.location {
                    Some(l) => l.clone(),
                    None => default_partition_location(&table, &values)?,
                };
                parts.push(table.partition_for(values, location));
            }
            if !parts.is_empty() {
                let errors = catalog
                    .create_partitions(&db, &table.name, parts)
                    .await
                    .map_err(from_catalog)?;
                if let Some((_, e)) = errors
                    .into_iter()
                    .find(|(_, e)| !(if_not_exists && matches!(e, CatalogError::AlreadyExists(_))))
                {
                    return Err(from_catalog(e));
                }
            }
            Ok(empty())
        }
        Statement::DropPartitions {
            name,
            if_exists,
            partitions,
        } => {
            let (db, table) = require_table(catalog, &name, default_db).await?;
            let mut values = Vec::new();
            for spec in &partitions {
                let v = ordered_values(&table, spec)?;
                match catalog.get_partition(&db, &table.name, &v).await {
                    Ok(_) => values.push(v),
                    Err(CatalogError::EntityNotFound(_)) if if_exists => {}
                    Err(CatalogError::EntityNotFound(_)) => {
                        return Err(user_at(
                            format!(
                                "Partition {} of table '{db}.{}' does not exist",
                                partition_spec(&table, &v),
                                table.name
                            ),
                            spec.pos,
                        ));
                    }
                    Err(e) => return Err(from_catalog(e)),
                }
            }
            if !values.is_empty() {
                let errors = catalog
                    .delete_partitions(&db, &table.name, values)
                    .await
                    .map_err(from_catalog)?;
                if let Some((_, e)) = errors
                    .into_iter()
                    .find(|(_, e)| !matches!(e, CatalogError::EntityNotFound(_)))
                {
                    return Err(from_catalog(e));
                }
            }
            Ok(empty())
        }
        Statement::AddColumns { name, columns } => {
            let (db, mut table) = require_table(catalog, &name, default_db).await?;
            for c in &columns {
                if table
                    .columns()
                    .iter()
                    .chain(table.partition_columns())
                    .any(|e| e.name.eq_ignore_ascii_case(&c.name))
                {
                    return Err(user_at(
                        format!("Column '{}' already exists", c.name),
                        name.pos,
                    ));
                }
            }
            table
                .storage_descriptor
                .get_or_insert_with(Default::default)
                .columns
                .extend(columns);
            catalog
                .update_table(&db, table)
                .await
                .map_err(from_catalog)?;
            Ok(empty())
        }
        Statement::SetProperties { name, properties } => {
            let (db, mut table) = require_table(catalog, &name, default_db).await?;
            table.parameters.extend(properties);
            catalog
                .update_table(&db, table)
                .await
                .map_err(from_catalog)?;
            Ok(empty())
        }
        Statement::SetLocation { name, location } => {
            let (db, mut table) = require_table(catalog, &name, default_db).await?;
            table
                .storage_descriptor
                .get_or_insert_with(Default::default)
                .location = Some(location);
            catalog
                .update_table(&db, table)
                .await
                .map_err(from_catalog)?;
            Ok(empty())
        }
    }
}

/// `MSCK REPAIR TABLE`: registers every `k1=v1/.../kn=vn/` folder under the table location
/// (keys in the table's order) that holds data and is not a partition yet.
async fn repair(
    catalog: &dyn CatalogStore,
    buckets: &BucketRegistry,
    db: &str,
    table: &Table,
    pos: Position,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let keys = table.partition_columns();
    if keys.is_empty() {
        return Err(user_at(
            format!("Table '{db}.{}' is not partitioned", table.name),
            pos,
        ));
    }
    let location = table
        .storage_descriptor
        .as_ref()
        .and_then(|sd| sd.location.clone())
        .ok_or_else(|| user_at(format!("Table '{db}.{}' has no location", table.name), pos))?;
    let loc = parse_location(&location).map_err(|e| user_at(e, pos))?;
    let store = buckets
        .bucket(&loc.bucket)
        .map_err(|e| QueryError::Internal(format!("bucket '{}': {e}", loc.bucket)))?;
    let mut found: BTreeMap<Vec<String>, String> = BTreeMap::new();
    let mut stream = store.list(Some(&loc.path()));
    while let Some(item) = stream.next().await {
        let meta = match item {
            Ok(m) => m,
            Err(object_store::Error::NotFound { .. }) => break,
            Err(e) => return Err(QueryError::Internal(format!("listing {location}: {e}"))),
        };
        let key = meta.location.as_ref();
        if !is_data_object(&loc.prefix, key, meta.size) {
            continue;
        }
        let rel = if loc.prefix.is_empty() {
            key
        } else {
            match key.strip_prefix(loc.prefix.as_str()) {
                Some(r) => r.trim_start_matches('/'),
                None => continue,
            }
        };
        let segments: Vec<&str> = rel.split('/').collect();
        if segments.len() <= keys.len() {
            continue;
        }
        let mut values = Vec::with_capacity(keys.len());
        for (seg, k) in segments.iter().zip(keys) {
            match seg.split_once('=') {
                Some((name, value)) if name.eq_ignore_ascii_case(&k.name) && !value.is_empty() => {
                    values.push(unescape_path(value))
                }
                _ => break,
            }
        }
        if values.len() != keys.len() {
            continue;
        }
        found.entry(values).or_insert_with(|| {
            format!(
                "{}{}/",
                with_slash(&location),
                segments[..keys.len()].join("/")
            )
        });
    }
    let existing: BTreeSet<Vec<String>> = catalog
        .list_partitions(db, &table.name)
        .await
        .map_err(from_catalog)?
        .into_iter()
        .map(|p| p.values)
        .collect();
    let missing: Vec<(Vec<String>, String)> = found
        .into_iter()
        .filter(|(v, _)| !existing.contains(v))
        .collect();
    let mut rows = Vec::new();
    let mut added = 0usize;
    if !missing.is_empty() {
        let parts = missing
            .iter()
            .map(|(v, l)| table.partition_for(v.clone(), l.clone()))
            .collect();
        let errors = catalog
            .create_partitions(db, &table.name, parts)
            .await
            .map_err(from_catalog)?;
        let failed: Vec<&Vec<String>> = errors.iter().map(|(v, _)| v).collect();
        for (values, _) in &missing {
            if failed.contains(&values) {
                continue;
            }
            added += 1;
            rows.push(vec![format!(
                "Repair: Added partition to metastore {}:{}",
                table.name,
                partition_spec(table, values)
            )]);
        }
        for (values, e) in &errors {
            rows.push(vec![format!(
                "Repair: Could not add partition {}:{}: {}",
                table.name,
                partition_spec(table, values),
                e.message()
            )]);
        }
    }
    rows.push(vec![format!(
        "Added {added} partition{}",
        if added == 1 { "" } else { "s" }
    )]);
    string_result(&["result"], rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_table_parses() {
        let s = parse(
            "CREATE EXTERNAL TABLE IF NOT EXISTS lake.`Events` (\n\
               id BIGINT COMMENT 'the id',\n\
               tags ARRAY<STRUCT<a:INT, `b c`:STRING>>,\n\
               price DECIMAL(10, 2),\n\
               m map<string,int>\n\
             ) COMMENT 'events'\n\
             PARTITIONED BY (dt string, hour int)\n\
             ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe' WITH SERDEPROPERTIES ('ignore.malformed.json'='true')\n\
             LOCATION 's3://bucket/events/'\n\
             TBLPROPERTIES ('classification'='json');",
        )
        .unwrap();
        let Statement::CreateTable {
            name,
            if_not_exists,
            table,
        } = s
        else {
            panic!("{s:?}")
        };
        assert!(if_not_exists);
        assert_eq!(name.database.as_deref(), Some("lake"));
        assert_eq!(table.name, "events");
        let cols: Vec<_> = table
            .columns()
            .iter()
            .map(|c| (c.name.as_str(), c.r#type.as_str()))
            .collect();
        assert_eq!(
            cols,
            vec![
                ("id", "bigint"),
                ("tags", "array<struct<a:int,b c:string>>"),
                ("price", "decimal(10,2)"),
                ("m", "map<string,int>"),
            ]
        );
        assert_eq!(table.columns()[0].comment.as_deref(), Some("the id"));
        assert_eq!(table.partition_keys.len(), 2);
        let sd = table.storage_descriptor.as_ref().unwrap();
        assert_eq!(sd.input_format.as_deref(), Some(TEXT_INPUT));
        let serde = sd.serde_info.as_ref().unwrap();
        assert_eq!(serde.serialization_library.as_deref(), Some(JSON_SERDE));
        assert_eq!(serde.parameters["ignore.malformed.json"], "true");
        assert_eq!(table.parameters["classification"], "json");
        assert_eq!(table.description.as_deref(), Some("events"));
    }

    #[test]
    fn stored_as_and_delimited() {
        let Statement::CreateTable { table, .. } =
            parse("create external table t (a int) stored as parquet location 's3://b/t'").unwrap()
        else {
            panic!()
        };
        let sd = table.storage_descriptor.unwrap();
        assert_eq!(
            sd.serde_info.unwrap().serialization_library.as_deref(),
            Some(PARQUET_SERDE)
        );
        let Statement::CreateTable { table, .. } = parse(
            "create external table t (a int) row format delimited fields terminated by '\\t' \
             escaped by '\\\\' null defined as '' location 's3://b/t'",
        )
        .unwrap() else {
            panic!()
        };
        let serde = table.storage_descriptor.unwrap().serde_info.unwrap();
        assert_eq!(serde.parameters["field.delim"], "\t");
        assert_eq!(serde.parameters["escape.delim"], "\\");
        assert_eq!(serde.parameters["serialization.null.format"], "");
    }

    #[test]
    fn errors_have_positions() {
        let e = parse("CREATE EXTERNAL TABLE t (a integr) LOCATION 's3://b/'").unwrap_err();
        assert!(
            matches!(&e, QueryError::User { message, position: Some(Position { line: 1, column: 28 }) } if message.contains("integr")),
            "{e:?}"
        );
        let e = parse("CREATE EXTERNAL TABLE t (a int)").unwrap_err();
        assert!(e.to_string().contains("LOCATION"), "{e}");
        let e = parse("CREATE EXTERNAL TABLE t (a int) LOCATION '/tmp/x'").unwrap_err();
        assert!(e.to_string().contains("s3://"), "{e}");
        let e = parse("CREATE TABLE t (a int)").unwrap_err();
        assert!(e.to_string().contains("EXTERNAL"), "{e}");
        let e = parse("DROP TABLE").unwrap_err();
        assert!(e.to_string().contains("identifier"), "{e}");
        let e = parse(
            "CREATE EXTERNAL TABLE t (a int) PARTITIONED BY (p array<int>) LOCATION 's3://b/'",
        )
        .unwrap_err();
        assert!(e.to_string().contains("primitive"), "{e}");
    }

    #[test]
    fn alter_parses() {
        let Statement::AddPartitions {
            partitions,
            if_not_exists,
            ..
        } = parse(
            "ALTER TABLE db.t ADD IF NOT EXISTS PARTITION (dt='2024-01-01', hour=3) \
             LOCATION 's3://b/x/' PARTITION (dt='2024-01-02', hour=-1)",
        )
        .unwrap()
        else {
            panic!()
        };
        assert!(if_not_exists);
        assert_eq!(partitions.len(), 2);
        assert_eq!(
            partitions[0].values[1],
            ("hour".to_string(), "3".to_string())
        );
        assert_eq!(partitions[0].location.as_deref(), Some("s3://b/x/"));
        assert_eq!(partitions[1].values[1].1, "-1");
        let Statement::DropPartitions { partitions, .. } =
            parse("ALTER TABLE t DROP PARTITION (dt='a'), PARTITION (dt='b')").unwrap()
        else {
            panic!()
        };
        assert_eq!(partitions.len(), 2);
        assert!(matches!(
            parse("MSCK REPAIR TABLE awsdatacatalog.db.t").unwrap(),
            Statement::Repair { .. }
        ));
    }

    #[test]
    fn path_escaping_round_trips() {
        for v in ["2024-01-01", "a/b", "x=y", "50%", "héllo"] {
            assert_eq!(unescape_path(&escape_path(v)), v);
        }
        assert_eq!(escape_path("a/b"), "a%2Fb");
    }
}

//! Statement classification and the utility statements answered from the catalog:
//! `SHOW DATABASES|SCHEMAS`, `SHOW TABLES`, `SHOW PARTITIONS`, `SHOW COLUMNS`,
//! `SHOW TBLPROPERTIES`, `DESCRIBE`.
//!
//! Result shapes follow Athena's: one `database_name` / `tab_name` / `partition` / `field`
//! column; `DESCRIBE` has `col_name`, `data_type` (the Hive type), `comment`, with the
//! partition keys repeated under a `# Partition Information` section as Hive prints it.
//! Invariant: every result is sorted (names, partition values) and all columns are
//! non-null strings.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use lakehose_catalog::{CatalogError, CatalogStore, Table};

use crate::errors::from_catalog;
use crate::lexer::{Cursor, TableName, Tok, user_at};
use crate::{Position, QueryError, Result};

/// What kind of statement a text is, from its first words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Athena DDL, answered by [`crate::ddl`].
    Ddl,
    /// `SHOW ...`.
    Show,
    /// `DESCRIBE` / `DESC`.
    Describe,
    /// `EXPLAIN ...` (planned by DataFusion).
    Explain,
    /// Anything else: a query for DataFusion.
    Query,
}

/// Classifies `sql` by its leading keywords (comments and parentheses skipped).
pub(crate) fn kind(sql: &str) -> Kind {
    let Ok(cur) = Cursor::new(sql) else {
        return Kind::Query;
    };
    let first = cur
        .toks
        .iter()
        .find(|t| t.tok != Tok::Sym('('))
        .and_then(|t| match &t.tok {
            Tok::Word(w) => Some(w.to_ascii_uppercase()),
            _ => None,
        });
    match first.as_deref() {
        Some("CREATE" | "DROP" | "ALTER" | "MSCK") => Kind::Ddl,
        Some("SHOW") => Kind::Show,
        Some("DESCRIBE" | "DESC") => Kind::Describe,
        Some("EXPLAIN") => Kind::Explain,
        _ => Kind::Query,
    }
}

/// A result of string columns.
pub(crate) fn string_result(
    names: &[&str],
    rows: Vec<Vec<String>>,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let schema = Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    ));
    let columns: Vec<ArrayRef> = (0..names.len())
        .map(|i| {
            Arc::new(StringArray::from_iter_values(
                rows.iter()
                    .map(|r| r.get(i).map(String::as_str).unwrap_or("")),
            )) as ArrayRef
        })
        .collect();
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)
        .map_err(|e| QueryError::Internal(e.to_string()))?;
    Ok((schema, vec![batch]))
}

/// Athena's `SHOW` patterns: `*` matches anything, `|` separates alternatives; case-insensitive.
pub(crate) fn matches_pattern(pattern: &str, name: &str) -> bool {
    pattern
        .split('|')
        .any(|alt| glob(&alt.trim().to_lowercase(), &name.to_lowercase()))
}

fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// An optional `[LIKE] 'pattern'`.
fn pattern(cur: &mut Cursor<'_>) -> Result<Option<String>> {
    let like = cur.eat_kw("LIKE");
    if like || matches!(cur.peek(), Some(t) if matches!(t.tok, Tok::Str(_))) {
        return Ok(Some(cur.string()?));
    }
    Ok(None)
}

/// The database `name` must exist.
pub(crate) async fn require_database(
    catalog: &dyn CatalogStore,
    name: &str,
    pos: Position,
) -> Result<()> {
    match catalog.get_database(name).await {
        Ok(_) => Ok(()),
        Err(CatalogError::EntityNotFound(_)) => {
            Err(user_at(format!("Database '{name}' does not exist"), pos))
        }
        Err(e) => Err(from_catalog(e)),
    }
}

/// The table `name` (in `default_db` unless qualified); a user error when it or its
/// database does not exist.
pub(crate) async fn require_table(
    catalog: &dyn CatalogStore,
    name: &TableName,
    default_db: &str,
) -> Result<(String, Table)> {
    let (db, t) = name.resolve(default_db);
    match catalog.get_table(&db, &t).await {
        Ok(table) => Ok((db, table)),
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

/// Runs a `SHOW` statement.
pub(crate) async fn show(
    sql: &str,
    catalog: &dyn CatalogStore,
    default_db: &str,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let mut cur = Cursor::new(sql)?;
    cur.expect_kw("SHOW")?;
    if cur.eat_kw("DATABASES") || cur.eat_kw("SCHEMAS") {
        let pat = pattern(&mut cur)?;
        cur.expect_end()?;
        let dbs = catalog.list_databases().await.map_err(from_catalog)?;
        let rows = dbs
            .into_iter()
            .filter(|d| pat.as_deref().is_none_or(|p| matches_pattern(p, &d.name)))
            .map(|d| vec![d.name])
            .collect();
        return string_result(&["database_name"], rows);
    }
    if cur.eat_kw("TABLES") {
        let (db, pos) = if cur.eat_kw("IN") || cur.eat_kw("FROM") {
            let (db, pos) = cur.ident()?;
            (db.to_lowercase(), pos)
        } else {
            (default_db.to_lowercase(), cur.here())
        };
        let pat = pattern(&mut cur)?;
        cur.expect_end()?;
        require_database(catalog, &db, pos).await?;
        let tables = catalog.list_tables(&db).await.map_err(from_catalog)?;
        let rows = tables
            .into_iter()
            .filter(|t| pat.as_deref().is_none_or(|p| matches_pattern(p, &t.name)))
            .map(|t| vec![t.name])
            .collect();
        return string_result(&["tab_name"], rows);
    }
    if cur.eat_kw("PARTITIONS") {
        let name = cur.table_name()?;
        cur.expect_end()?;
        let (db, table) = require_table(catalog, &name, default_db).await?;
        if table.partition_keys.is_empty() {
            return Err(user_at(
                format!("Table '{db}.{}' is not partitioned", table.name),
                name.pos,
            ));
        }
        let parts = catalog
            .list_partitions(&db, &table.name)
            .await
            .map_err(from_catalog)?;
        let rows = parts
            .iter()
            .map(|p| vec![partition_spec(&table, &p.values)])
            .collect();
        return string_result(&["partition"], rows);
    }
    if cur.eat_kw("COLUMNS") {
        if !(cur.eat_kw("IN") || cur.eat_kw("FROM")) {
            return Err(cur.expected("IN or FROM"));
        }
        let mut name = cur.table_name()?;
        if cur.eat_kw("IN") || cur.eat_kw("FROM") {
            name.database = Some(cur.ident()?.0);
        }
        cur.expect_end()?;
        let (_, table) = require_table(catalog, &name, default_db).await?;
        let rows = table
            .columns()
            .iter()
            .chain(table.partition_columns())
            .map(|c| vec![c.name.clone()])
            .collect();
        return string_result(&["field"], rows);
    }
    if cur.eat_kw("TBLPROPERTIES") {
        let name = cur.table_name()?;
        let key = if cur.eat_sym('(') {
            let k = cur.string()?;
            cur.expect_sym(')')?;
            Some(k)
        } else {
            None
        };
        cur.expect_end()?;
        let (_, table) = require_table(catalog, &name, default_db).await?;
        let rows = table
            .parameters
            .iter()
            .filter(|(k, _)| key.as_deref().is_none_or(|want| want == k.as_str()))
            .map(|(k, v)| vec![k.clone(), v.clone()])
            .collect();
        return string_result(&["prpt_name", "prpt_value"], rows);
    }
    Err(cur.expected("DATABASES, SCHEMAS, TABLES, PARTITIONS, COLUMNS or TBLPROPERTIES"))
}

/// `k1=v1/k2=v2` of a partition.
pub(crate) fn partition_spec(table: &Table, values: &[String]) -> String {
    table
        .partition_keys
        .iter()
        .zip(values)
        .map(|(k, v)| format!("{}={v}", k.name))
        .collect::<Vec<_>>()
        .join("/")
}

/// Runs `DESCRIBE [EXTENDED|FORMATTED] [db.]table`.
pub(crate) async fn describe(
    sql: &str,
    catalog: &dyn CatalogStore,
    default_db: &str,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let mut cur = Cursor::new(sql)?;
    if !(cur.eat_kw("DESCRIBE") || cur.eat_kw("DESC")) {
        return Err(cur.expected("DESCRIBE"));
    }
    let _ = cur.eat_kw("EXTENDED") || cur.eat_kw("FORMATTED");
    let name = cur.table_name()?;
    cur.expect_end()?;
    let (_, table) = require_table(catalog, &name, default_db).await?;
    let row = |c: &lakehose_catalog::Column| {
        vec![
            c.name.clone(),
            c.r#type.clone(),
            c.comment.clone().unwrap_or_default(),
        ]
    };
    let mut rows: Vec<Vec<String>> = table
        .columns()
        .iter()
        .chain(table.partition_columns())
        .map(row)
        .collect();
    if !table.partition_keys.is_empty() {
        rows.push(vec![String::new(), String::new(), String::new()]);
        rows.push(vec![
            "# Partition Information".into(),
            String::new(),
            String::new(),
        ]);
        rows.push(vec![
            "# col_name".into(),
            "data_type".into(),
            "comment".into(),
        ]);
        rows.extend(table.partition_columns().iter().map(row));
    }
    string_result(&["col_name", "data_type", "comment"], rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(kind("  create external table x"), Kind::Ddl);
        assert_eq!(kind("-- c\nMSCK REPAIR TABLE t"), Kind::Ddl);
        assert_eq!(kind("show tables"), Kind::Show);
        assert_eq!(kind("desc t"), Kind::Describe);
        assert_eq!(kind("EXPLAIN select 1"), Kind::Explain);
        assert_eq!(kind("(select 1)"), Kind::Query);
        assert_eq!(kind("with x as (select 1) select * from x"), Kind::Query);
        assert_eq!(kind("'unterminated"), Kind::Query);
    }

    #[test]
    fn patterns() {
        assert!(matches_pattern("ev*", "events"));
        assert!(matches_pattern("x|EVENTS", "events"));
        assert!(!matches_pattern("ev", "events"));
        assert!(matches_pattern("*nt*", "events"));
        assert!(matches_pattern("*", ""));
    }
}

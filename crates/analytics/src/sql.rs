//! The application language: what a streaming SQL application's text declares.
//!
//! An application is a sequence of statements separated by `;` (comments allowed):
//!
//! - `CREATE TABLE name (column type, ..., [WATERMARK FOR col AS col - INTERVAL '5' SECOND])
//!   WITH ('connector' = 'firehose', 'stream' = 'clicks', ...)` — a **source** (a delivery
//!   stream whose records are JSON objects) or, with or without columns, a **sink**
//!   (`'connector' = 'firehose'` another delivery stream, `'connector' = 'http'` an HTTP
//!   endpoint). `name AS PROCTIME()` declares a processing-time column (the record's arrival
//!   time). Every source also has a hidden `rowtime` column: the arrival time.
//! - `INSERT INTO sink SELECT ...` — a **pump**: a continuous query. Its `FROM` may be a
//!   source, or one of Flink's windowing table functions over a source:
//!   `TABLE(TUMBLE(TABLE src, DESCRIPTOR(ts), size [, offset]))`,
//!   `TABLE(HOP(TABLE src, DESCRIPTOR(ts), slide, size))`,
//!   `TABLE(CUMULATE(TABLE src, DESCRIPTOR(ts), step, size))`,
//!   `TABLE(SESSION(TABLE src PARTITION BY key, DESCRIPTOR(ts), gap))`, which add the columns
//!   `window_start`, `window_end` and `window_time`. Two sources joined, each through the same
//!   windowing function (not SESSION), make a **window join**.
//! - `CREATE TABLE name WITH ('connector' = 'catalog', 'database' = 'db', 'table' = 't')` — a
//!   **reference table**: a catalog table read when the application starts, which pumps may
//!   join with (Kinesis Analytics' reference data).
//! - The legacy Kinesis Analytics (SQL) forms: `CREATE [OR REPLACE] STREAM` (= `CREATE TABLE`),
//!   `CREATE [OR REPLACE] PUMP name AS INSERT INTO ... SELECT STREAM ...` with
//!   `STEP(src.ROWTIME BY INTERVAL '1' MINUTE)` or `FLOOR(src.ROWTIME TO MINUTE)` in the `GROUP
//!   BY` (a tumbling window over the time column, usable in the select list too).
//!
//! This module only recognises that structure, token by token (sqlparser's tokenizer, so
//! quoting and comments follow SQL's rules); the `SELECT` itself is left to DataFusion, with
//! the windowing function replaced by the source's name and `STEP`/`FLOOR` by `window_start`.
//! Invariant: every error names the statement and what was expected.

use std::collections::BTreeMap;

use arrow_schema::{DataType, Field, TimeUnit};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer, Whitespace, Word};

use crate::window::{WindowKind, WindowSpec};
use crate::{Error, Result};

/// Name of the hidden arrival-time column of every source.
pub const ROWTIME: &str = "rowtime";

/// A whole application, as declared.
#[derive(Debug, Clone, PartialEq)]
pub struct AppSql {
    /// Sources and sinks, by normalised name.
    pub tables: BTreeMap<String, TableDef>,
    /// The continuous queries, in declaration order.
    pub pumps: Vec<PumpDef>,
}

impl AppSql {
    /// The reference tables' names.
    pub fn references(&self) -> Vec<String> {
        self.tables
            .values()
            .filter(|t| t.is_reference())
            .map(|t| t.name.clone())
            .collect()
    }
}

/// A `CREATE TABLE` / `CREATE STREAM`.
#[derive(Debug, Clone, PartialEq)]
pub struct TableDef {
    pub name: String,
    /// Declared columns (without the hidden `rowtime`); empty for a sink that takes the
    /// query's columns.
    pub columns: Vec<Field>,
    /// `col AS PROCTIME()` columns: filled with the arrival time.
    pub proctime_columns: Vec<String>,
    pub watermark: Option<WatermarkDef>,
    /// `WITH (...)` options, keys lower-cased.
    pub options: BTreeMap<String, String>,
}

impl TableDef {
    /// Whether this is a reference table (`'connector' = 'catalog'`): a catalog table read
    /// when the application starts, to join with.
    pub fn is_reference(&self) -> bool {
        self.options.get("connector").map(String::as_str) == Some("catalog")
    }
}

/// `WATERMARK FOR column AS column - INTERVAL ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatermarkDef {
    pub column: String,
    /// How far the watermark trails the largest event time seen, in milliseconds.
    pub delay_ms: i64,
}

/// One continuous query.
#[derive(Debug, Clone, PartialEq)]
pub struct PumpDef {
    /// The pump's name (`CREATE PUMP name`), or `insert_<n>`.
    pub name: String,
    /// The sink it inserts into.
    pub sink: String,
    /// The source it reads (the first one, for a window join).
    pub source: String,
    /// Every source it reads: one, or the sides of a window join.
    pub sources: Vec<String>,
    /// The window, if the query uses a windowing function (or `STEP`/`FLOOR`); for a window
    /// join, the first side's (every side has the same window on its own time column, see
    /// [`PumpDef::time_columns`]).
    pub window: Option<WindowSpec>,
    /// A window join's time column per source.
    pub time_columns: BTreeMap<String, String>,
    /// The `SELECT`, rewritten for DataFusion (the windowing function replaced by the
    /// source's name).
    pub select: String,
}

/// Parses an application's text.
pub fn parse(text: &str) -> Result<AppSql> {
    let tokens = Tokenizer::new(&GenericDialect {}, text)
        .tokenize()
        .map_err(|e| Error::Sql(format!("cannot tokenize the application: {e}")))?;
    let mut app = AppSql {
        tables: BTreeMap::new(),
        pumps: Vec::new(),
    };
    for statement in split_statements(tokens) {
        let mut s = Cursor::new(&statement);
        if s.is_done() {
            continue;
        }
        let head = s.describe();
        if s.keyword("CREATE") {
            let or_replace = s.keyword("OR");
            if or_replace {
                s.expect_keyword("REPLACE", &head)?;
            }
            if s.keyword("TABLE") || s.keyword("STREAM") {
                let mut table = parse_create_table(&mut s, &head)?;
                match app.tables.get(&table.name) {
                    // Kinesis Analytics style: an application output (declared from the API's
                    // `Outputs`) re-declared by the code keeps its connector options.
                    Some(before) if or_replace => {
                        for (k, v) in &before.options {
                            table.options.entry(k.clone()).or_insert_with(|| v.clone());
                        }
                        if table.columns.is_empty() {
                            table.columns = before.columns.clone();
                        }
                    }
                    Some(_) => {
                        return Err(Error::Sql(format!(
                            "`{}` is declared twice (CREATE OR REPLACE to redefine it)",
                            table.name
                        )));
                    }
                    None => {}
                }
                app.tables.insert(table.name.clone(), table);
            } else if s.keyword("PUMP") {
                let name = s.identifier(&head)?;
                s.expect_keyword("AS", &head)?;
                s.expect_keyword("INSERT", &head)?;
                let pump = parse_insert(&mut s, name, &head)?;
                app.pumps.push(pump);
            } else {
                return Err(Error::Sql(format!(
                    "{head}: expected CREATE TABLE, CREATE STREAM or CREATE PUMP"
                )));
            }
        } else if s.keyword("INSERT") {
            let name = format!("insert_{}", app.pumps.len() + 1);
            let pump = parse_insert(&mut s, name, &head)?;
            app.pumps.push(pump);
        } else {
            return Err(Error::Sql(format!(
                "{head}: an application holds CREATE TABLE / CREATE STREAM, INSERT INTO and CREATE PUMP statements"
            )));
        }
    }
    if app.pumps.is_empty() {
        return Err(Error::Sql(
            "the application has no INSERT INTO (or CREATE PUMP) statement: nothing would run"
                .into(),
        ));
    }
    for pump in &mut app.pumps {
        // `sources` holds every name that followed FROM or JOIN so far (`EXTRACT(x FROM col)`
        // adds non-tables): the declared streams among them are what the pump reads.
        let mut seen = std::collections::BTreeSet::new();
        let read: Vec<String> = std::mem::take(&mut pump.sources)
            .into_iter()
            .filter(|n| app.tables.get(n).is_some_and(|t| !t.is_reference()))
            .filter(|n| seen.insert(n.clone()))
            .collect();
        let window_join = read.len() > 1 && read.iter().all(|n| pump.time_columns.contains_key(n));
        pump.source = match read.as_slice() {
            [one] => one.to_string(),
            [first, ..] if window_join => first.to_string(),
            [] => {
                return Err(Error::Sql(format!(
                    "pump `{}`: the query reads no declared source (SELECT ... FROM source)",
                    pump.name
                )));
            }
            _ => {
                return Err(Error::Sql(format!(
                    "pump `{}`: two streams are joined only window by window: read each through the same windowing function (FROM TABLE(TUMBLE(TABLE a, ...)) ... JOIN TABLE(TUMBLE(TABLE b, ...)) ...); or join with a reference table: WITH ('connector' = 'catalog', ...)",
                    pump.name
                )));
            }
        };
        pump.sources = read;
        for (role, name) in [("source", &pump.source), ("sink", &pump.sink)] {
            if !app.tables.contains_key(name) {
                return Err(Error::Sql(format!(
                    "pump `{}`: its {role} `{name}` is not declared (CREATE TABLE {name} ...)",
                    pump.name
                )));
            }
        }
        if app.tables[&pump.source].columns.is_empty() {
            return Err(Error::Sql(format!(
                "pump `{}`: source `{}` declares no columns",
                pump.name, pump.source
            )));
        }
    }
    Ok(app)
}

/// Statements without whitespace-only ones, split at top-level `;`, comments dropped.
fn split_statements(tokens: Vec<Token>) -> Vec<Vec<Token>> {
    let mut out = vec![Vec::new()];
    for t in tokens {
        match t {
            Token::SemiColon => out.push(Vec::new()),
            Token::Whitespace(Whitespace::SingleLineComment { .. })
            | Token::Whitespace(Whitespace::MultiLineComment(_)) => {
                out.last_mut()
                    .expect("never empty")
                    .push(Token::Whitespace(Whitespace::Space));
            }
            t => out.last_mut().expect("never empty").push(t),
        }
    }
    out
}

/// Normalises an identifier as DataFusion does: unquoted ones are lower-cased.
fn normalise(w: &Word) -> String {
    match w.quote_style {
        Some(_) => w.value.clone(),
        None => w.value.to_ascii_lowercase(),
    }
}

/// A position in one statement's tokens, skipping whitespace.
struct Cursor<'a> {
    tokens: &'a [Token],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(tokens: &'a [Token]) -> Self {
        let mut c = Cursor { tokens, pos: 0 };
        c.skip_ws();
        c
    }

    fn skip_ws(&mut self) {
        while matches!(self.tokens.get(self.pos), Some(Token::Whitespace(_))) {
            self.pos += 1;
        }
    }

    fn is_done(&self) -> bool {
        self.pos >= self.tokens.len()
    }

    fn peek(&self) -> Option<&'a Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<&'a Token> {
        let t = self.tokens.get(self.pos);
        if t.is_some() {
            self.pos += 1;
            self.skip_ws();
        }
        t
    }

    /// The statement's first words, for error messages.
    fn describe(&self) -> String {
        let text: String = self.tokens[self.pos..]
            .iter()
            .map(|t| t.to_string())
            .collect();
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        match text.char_indices().nth(48) {
            Some((i, _)) => format!("`{}...`", &text[..i]),
            None => format!("`{text}`"),
        }
    }

    fn keyword(&mut self, kw: &str) -> bool {
        match self.peek() {
            Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(kw) => {
                self.next();
                true
            }
            _ => false,
        }
    }

    fn expect_keyword(&mut self, kw: &str, head: &str) -> Result<()> {
        if self.keyword(kw) {
            Ok(())
        } else {
            Err(Error::Sql(format!(
                "{head}: expected {kw} at {}",
                self.here()
            )))
        }
    }

    fn token(&mut self, t: &Token) -> bool {
        if self.peek() == Some(t) {
            self.next();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, t: &Token, head: &str) -> Result<()> {
        if self.token(t) {
            Ok(())
        } else {
            Err(Error::Sql(format!(
                "{head}: expected `{t}` at {}",
                self.here()
            )))
        }
    }

    fn here(&self) -> String {
        match self.peek() {
            Some(t) => format!("`{t}`"),
            None => "the end of the statement".into(),
        }
    }

    fn identifier(&mut self, head: &str) -> Result<String> {
        match self.peek() {
            Some(Token::Word(w)) => {
                let name = normalise(w);
                self.next();
                Ok(name)
            }
            _ => Err(Error::Sql(format!(
                "{head}: expected a name at {}",
                self.here()
            ))),
        }
    }

    fn string(&mut self, head: &str) -> Result<String> {
        match self.peek() {
            Some(Token::SingleQuotedString(s)) => {
                let s = s.clone();
                self.next();
                Ok(s)
            }
            _ => Err(Error::Sql(format!(
                "{head}: expected a quoted string at {}",
                self.here()
            ))),
        }
    }

    /// The tokens up to the parenthesis closing the one just consumed (exclusive), leaving the
    /// cursor after it.
    fn until_close(&mut self, head: &str) -> Result<&'a [Token]> {
        let start = self.pos;
        let mut depth = 0usize;
        while let Some(t) = self.tokens.get(self.pos) {
            match t {
                Token::LParen => depth += 1,
                Token::RParen if depth == 0 => {
                    let inner = &self.tokens[start..self.pos];
                    self.pos += 1;
                    self.skip_ws();
                    return Ok(inner);
                }
                Token::RParen => depth -= 1,
                _ => {}
            }
            self.pos += 1;
        }
        Err(Error::Sql(format!("{head}: unbalanced parentheses")))
    }
}

/// Splits tokens at top-level commas, each part trimmed of whitespace.
fn split_commas(tokens: &[Token]) -> Vec<&[Token]> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, t) in tokens.iter().enumerate() {
        match t {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            Token::Comma if depth == 0 => {
                parts.push(&tokens[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&tokens[start..]);
    parts
        .into_iter()
        .map(trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn trim(mut t: &[Token]) -> &[Token] {
    while let [Token::Whitespace(_), rest @ ..] = t {
        t = rest;
    }
    while let [rest @ .., Token::Whitespace(_)] = t {
        t = rest;
    }
    t
}

fn text(tokens: &[Token]) -> String {
    tokens.iter().map(|t| t.to_string()).collect()
}

fn parse_create_table(s: &mut Cursor<'_>, head: &str) -> Result<TableDef> {
    let name = s.identifier(head)?;
    let mut table = TableDef {
        name,
        columns: Vec::new(),
        proctime_columns: Vec::new(),
        watermark: None,
        options: BTreeMap::new(),
    };
    if s.token(&Token::LParen) {
        let body = s.until_close(head)?;
        for element in split_commas(body) {
            parse_table_element(element, &mut table, head)?;
        }
    }
    if s.keyword("WITH") {
        s.expect(&Token::LParen, head)?;
        let body = s.until_close(head)?;
        for option in split_commas(body) {
            let mut o = Cursor::new(option);
            let key = o.string(head)?.to_ascii_lowercase();
            o.expect(&Token::Eq, head)?;
            let value = o.string(head)?;
            if !o.is_done() {
                return Err(Error::Sql(format!(
                    "{head}: WITH options are 'key' = 'value' pairs; unexpected {}",
                    o.here()
                )));
            }
            table.options.insert(key, value);
        }
    }
    if !s.is_done() {
        return Err(Error::Sql(format!("{head}: unexpected {}", s.here())));
    }
    if let Some(v) = table.options.get(IDLE_TIMEOUT_OPTION)
        && parse_duration_ms(v).is_none()
    {
        return Err(Error::Sql(format!(
            "{head}: '{IDLE_TIMEOUT_OPTION}' = '{v}' is not a duration (e.g. '10 s')"
        )));
    }
    if let Some(w) = &table.watermark {
        let column = table.columns.iter().find(|f| f.name() == &w.column);
        match column.map(|f| f.data_type()) {
            Some(DataType::Timestamp(..)) => {}
            Some(other) => {
                return Err(Error::Sql(format!(
                    "{head}: the watermark column `{}` is {other}; it must be a TIMESTAMP",
                    w.column
                )));
            }
            None => {
                return Err(Error::Sql(format!(
                    "{head}: the watermark column `{}` is not a column of `{}`",
                    w.column, table.name
                )));
            }
        }
    }
    Ok(table)
}

fn parse_table_element(element: &[Token], table: &mut TableDef, head: &str) -> Result<()> {
    let mut e = Cursor::new(element);
    if e.keyword("WATERMARK") {
        e.expect_keyword("FOR", head)?;
        let column = e.identifier(head)?;
        e.expect_keyword("AS", head)?;
        let of = e.identifier(head)?;
        if of != column {
            return Err(Error::Sql(format!(
                "{head}: the watermark must be `{column}` or `{column} - INTERVAL ...`"
            )));
        }
        let delay_ms = if e.is_done() {
            0
        } else {
            e.expect(&Token::Minus, head)?;
            e.expect_keyword("INTERVAL", head)?;
            parse_interval_rest(&mut e, head)?
        };
        if !e.is_done() {
            return Err(Error::Sql(format!("{head}: unexpected {}", e.here())));
        }
        if table.watermark.is_some() {
            return Err(Error::Sql(format!("{head}: two WATERMARK clauses")));
        }
        table.watermark = Some(WatermarkDef { column, delay_ms });
        return Ok(());
    }
    let name = e.identifier(head)?;
    if e.keyword("AS") {
        if e.keyword("PROCTIME") {
            e.expect(&Token::LParen, head)?;
            e.expect(&Token::RParen, head)?;
            table.columns.push(Field::new(
                &name,
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ));
            table.proctime_columns.push(name);
            return Ok(());
        }
        return Err(Error::Sql(format!(
            "{head}: a computed column may only be `{name} AS PROCTIME()`"
        )));
    }
    let data_type = parse_type(&mut e, head)?;
    // NOT NULL / NULL are accepted; every column is nullable (a record may lack the key).
    if e.keyword("NOT") {
        e.expect_keyword("NULL", head)?;
    } else {
        e.keyword("NULL");
    }
    if !e.is_done() {
        return Err(Error::Sql(format!(
            "{head}: unexpected {} after column `{name}`",
            e.here()
        )));
    }
    if name == ROWTIME {
        return Err(Error::Sql(format!(
            "{head}: `{ROWTIME}` is the arrival time every source has; choose another column name"
        )));
    }
    table.columns.push(Field::new(name, data_type, true));
    Ok(())
}

/// A column type: the SQL names Flink and Kinesis Analytics applications use.
fn parse_type(e: &mut Cursor<'_>, head: &str) -> Result<DataType> {
    let name = match e.next() {
        Some(Token::Word(w)) => w.value.to_ascii_uppercase(),
        _ => return Err(Error::Sql(format!("{head}: expected a column type"))),
    };
    let mut args = Vec::new();
    if e.token(&Token::LParen) {
        for part in split_commas(e.until_close(head)?) {
            args.push(text(part));
        }
    }
    let t = match name.as_str() {
        "VARCHAR" | "STRING" | "TEXT" | "CHAR" | "CHARACTER" => {
            if name == "CHARACTER" {
                e.keyword("VARYING");
            }
            DataType::Utf8
        }
        "BOOLEAN" | "BOOL" => DataType::Boolean,
        "TINYINT" => DataType::Int8,
        "SMALLINT" => DataType::Int16,
        "INT" | "INTEGER" => DataType::Int32,
        "BIGINT" => DataType::Int64,
        "REAL" | "FLOAT" => DataType::Float32,
        "DOUBLE" => {
            e.keyword("PRECISION");
            DataType::Float64
        }
        "DECIMAL" | "NUMERIC" => {
            let p: u8 = args.first().and_then(|a| a.parse().ok()).unwrap_or(38);
            let s: i8 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(0);
            if p == 0 || p > 38 || s < 0 || s as u8 > p {
                return Err(Error::Sql(format!("{head}: invalid DECIMAL({p},{s})")));
            }
            DataType::Decimal128(p, s)
        }
        "DATE" => DataType::Date32,
        "TIMESTAMP" => {
            if e.keyword("WITH") || e.keyword("WITHOUT") {
                e.expect_keyword("TIME", head)?;
                e.expect_keyword("ZONE", head)?;
            }
            DataType::Timestamp(TimeUnit::Millisecond, None)
        }
        other => {
            return Err(Error::Sql(format!(
                "{head}: unsupported column type {other} (use VARCHAR, BOOLEAN, INT, BIGINT, DOUBLE, DECIMAL(p,s), DATE or TIMESTAMP)"
            )));
        }
    };
    Ok(t)
}

/// The part of an interval literal after `INTERVAL`: `'5' SECOND`, `'5' SECONDS`,
/// `'5 seconds'`, `'1.5' MINUTE`. Milliseconds, strictly positive.
fn parse_interval_rest(e: &mut Cursor<'_>, head: &str) -> Result<i64> {
    let literal = match e.next() {
        Some(Token::SingleQuotedString(s)) => s.clone(),
        Some(Token::Number(n, _)) => n.clone(),
        _ => return Err(Error::Sql(format!("{head}: expected an interval literal"))),
    };
    // Intervals end their clause here, so a word that follows can only be the unit.
    let unit = match e.peek() {
        Some(Token::Word(w)) => {
            let u = w.value.clone();
            e.next();
            Some(u)
        }
        _ => None,
    };
    let (amount, unit) = match unit {
        Some(u) => (literal.trim().to_string(), u),
        None => {
            let mut parts = literal.split_whitespace();
            match (parts.next(), parts.next(), parts.next()) {
                (Some(a), Some(u), None) => (a.to_string(), u.to_string()),
                _ => {
                    return Err(Error::Sql(format!(
                        "{head}: interval '{literal}' needs a unit (INTERVAL '5' SECOND)"
                    )));
                }
            }
        }
    };
    let per = unit_ms(&unit).ok_or_else(|| {
        Error::Sql(format!(
            "{head}: unknown interval unit {unit} (MILLISECOND, SECOND, MINUTE, HOUR, DAY)"
        ))
    })?;
    let amount: f64 = amount
        .parse()
        .map_err(|_| Error::Sql(format!("{head}: invalid interval amount '{amount}'")))?;
    let ms = amount * per as f64;
    if !(1.0..1e15).contains(&ms) || ms.fract() != 0.0 {
        return Err(Error::Sql(format!(
            "{head}: an interval must be a whole, positive number of milliseconds"
        )));
    }
    Ok(ms as i64)
}

/// The option `'watermark.idle-timeout'` of a source: how long it may be silent before its
/// event time is taken to advance with the clock.
pub const IDLE_TIMEOUT_OPTION: &str = "watermark.idle-timeout";

/// A duration written `'10 s'`, `'10 seconds'`, `'500 ms'` or `'2 minutes'`, in milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (amount, unit) = text.split_at(split);
    let amount: f64 = amount.parse().ok()?;
    let per = match unit.trim().to_ascii_lowercase().as_str() {
        "ms" => 1,
        "s" => 1_000,
        "min" => 60_000,
        "h" => 3_600_000,
        other => unit_ms(other)?,
    };
    let ms = amount * per as f64;
    (1.0..1e15).contains(&ms).then_some(ms as i64)
}

fn unit_ms(unit: &str) -> Option<i64> {
    let u = unit.to_ascii_uppercase();
    let u = u.strip_suffix('S').unwrap_or(&u);
    Some(match u {
        "MILLISECOND" => 1,
        "SECOND" => 1_000,
        "MINUTE" => 60_000,
        "HOUR" => 3_600_000,
        "DAY" => 86_400_000,
        _ => return None,
    })
}

fn parse_insert(s: &mut Cursor<'_>, name: String, head: &str) -> Result<PumpDef> {
    s.expect_keyword("INTO", head)?;
    let sink = s.identifier(head)?;
    let query = &s.tokens[s.pos..];
    let (select, candidates, windows) = rewrite_select(query, head)?;
    let time_columns: BTreeMap<String, String> = match windows.as_slice() {
        [_, _, ..] => windows
            .iter()
            .map(|(source, w)| (source.clone(), w.time_column.clone()))
            .collect(),
        _ => BTreeMap::new(),
    };
    Ok(PumpDef {
        name,
        sink,
        // Both resolved by `parse` once every table is declared.
        source: String::new(),
        sources: candidates,
        window: windows.into_iter().next().map(|(_, w)| w),
        time_columns,
        select,
    })
}

/// Rewrites a pump's query for DataFusion: drops `STREAM` after `SELECT`, replaces a windowing
/// table function by its source's name, and `STEP(...)`/`FLOOR(... TO unit)` over the time
/// column by `window_start`. Returns the text, the names that follow `FROM`/`JOIN` (the
/// source among them; [`parse`] picks the declared ones) and the windows by source (several
/// for a window join: then each source's, with the same kind and intervals).
#[allow(clippy::type_complexity)]
fn rewrite_select(
    query: &[Token],
    head: &str,
) -> Result<(String, Vec<String>, Vec<(String, WindowSpec)>)> {
    let mut out: Vec<Token> = Vec::with_capacity(query.len());
    let mut windows: Vec<(String, WindowSpec)> = Vec::new();
    let mut sources: Vec<String> = Vec::new();
    let mut i = 0;
    let mut after_from = false;
    while i < query.len() {
        let t = &query[i];
        let word = |t: &Token, kw: &str| matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(kw));
        let next_sig = |from: usize| -> Option<usize> {
            (from..query.len()).find(|&j| !matches!(query[j], Token::Whitespace(_)))
        };
        // SELECT STREAM -> SELECT
        if word(t, "SELECT") {
            out.push(t.clone());
            if let Some(j) = next_sig(i + 1)
                && word(&query[j], "STREAM")
            {
                i = j + 1;
                continue;
            }
            i += 1;
            continue;
        }
        if word(t, "FROM") || word(t, "JOIN") {
            after_from = true;
            out.push(t.clone());
            i += 1;
            continue;
        }
        // TABLE(TUMBLE(...))
        if word(t, "TABLE")
            && let Some(j) = next_sig(i + 1)
            && query[j] == Token::LParen
            && let Some(k) = next_sig(j + 1)
            && let Token::Word(f) = &query[k]
            && let Some(kind) = WindowKind::from_function(&f.value)
        {
            let mut c = Cursor {
                tokens: query,
                pos: k + 1,
            };
            c.skip_ws();
            c.expect(&Token::LParen, head)?;
            let args = c.until_close(head)?;
            c.expect(&Token::RParen, head)?;
            let (source, spec) = parse_window_call(kind, args, head)?;
            if let Some((first_source, first)) = windows.first() {
                let same = WindowSpec {
                    time_column: first.time_column.clone(),
                    partition_by: first.partition_by.clone(),
                    ..spec.clone()
                };
                if &same != first || spec.kind == WindowKind::Session || *first_source == source {
                    return Err(Error::Sql(format!(
                        "{head}: a query has one windowing function, or one per side of a window join with the same kind and intervals (not SESSION), each over its own source"
                    )));
                }
            }
            windows.push((source.clone(), spec));
            sources.push(source.clone());
            after_from = false;
            out.push(Token::make_word(&source, Some('"')));
            out.push(Token::Whitespace(Whitespace::Space));
            i = c.pos;
            continue;
        }
        // STEP(x.ROWTIME BY INTERVAL '1' MINUTE) / FLOOR(x.ROWTIME TO MINUTE)
        if (word(t, "STEP") || word(t, "FLOOR"))
            && let Some(j) = next_sig(i + 1)
            && query[j] == Token::LParen
        {
            let mut c = Cursor {
                tokens: query,
                pos: j + 1,
            };
            c.skip_ws();
            let args = c.until_close(head)?;
            let step = word(t, "STEP");
            if let Some((column, size_ms)) = parse_step(args, step, head)? {
                let spec = WindowSpec {
                    kind: WindowKind::Tumble,
                    time_column: column,
                    size_ms,
                    slide_ms: size_ms,
                    offset_ms: 0,
                    partition_by: Vec::new(),
                };
                match windows.first().map(|(_, w)| w) {
                    Some(w) if *w != spec => {
                        return Err(Error::Sql(format!(
                            "{head}: every STEP/FLOOR of a query must use the same column and interval"
                        )));
                    }
                    Some(_) => {}
                    None => windows.push((String::new(), spec)),
                }
                out.push(Token::make_word("window_start", None));
                i = c.pos;
                continue;
            }
        }
        if after_from && let Token::Word(w) = t {
            sources.push(normalise(w));
            after_from = false;
        } else if !matches!(t, Token::Whitespace(_)) {
            after_from = false;
        }
        out.push(t.clone());
        i += 1;
    }
    // STEP/FLOOR name no source: theirs is the query's.
    if let [(source, _)] = windows.as_mut_slice()
        && source.is_empty()
    {
        *source = sources.first().cloned().unwrap_or_default();
    }
    Ok((text(&out), sources, windows))
}

/// `TABLE src, DESCRIPTOR(col), INTERVAL ..., INTERVAL ...` of a windowing function.
fn parse_window_call(kind: WindowKind, args: &[Token], head: &str) -> Result<(String, WindowSpec)> {
    let parts = split_commas(args);
    let usage = kind.usage();
    if parts.len() < 3 {
        return Err(Error::Sql(format!("{head}: expected {usage}")));
    }
    let mut t = Cursor::new(parts[0]);
    t.expect_keyword("TABLE", head)?;
    let source = t.identifier(head)?;
    let mut partition_by = Vec::new();
    if kind == WindowKind::Session && t.keyword("PARTITION") {
        t.expect_keyword("BY", head)?;
        if t.token(&Token::LParen) {
            for column in split_commas(t.until_close(head)?) {
                let mut c = Cursor::new(column);
                partition_by.push(c.identifier(head)?);
            }
        } else {
            partition_by.push(t.identifier(head)?);
        }
    }
    if !t.is_done() {
        return Err(Error::Sql(format!("{head}: expected {usage}")));
    }
    let mut d = Cursor::new(parts[1]);
    d.expect_keyword("DESCRIPTOR", head)?;
    d.expect(&Token::LParen, head)?;
    let time_column = d.identifier(head)?;
    d.expect(&Token::RParen, head)?;
    let mut intervals = Vec::new();
    for p in &parts[2..] {
        let mut c = Cursor::new(p);
        c.expect_keyword("INTERVAL", head)?;
        intervals.push(parse_interval_rest(&mut c, head)?);
        if !c.is_done() {
            return Err(Error::Sql(format!("{head}: expected {usage}")));
        }
    }
    let mut spec = WindowSpec::new(kind, time_column, &intervals)
        .map_err(|m| Error::Sql(format!("{head}: {m}; expected {usage}")))?;
    spec.partition_by = partition_by;
    Ok((source, spec))
}

/// `x.ROWTIME BY INTERVAL '1' MINUTE` (STEP) or `x.ROWTIME TO MINUTE` (FLOOR): the time
/// column and the window size. `None` for a FLOOR of something else (left to DataFusion).
fn parse_step(args: &[Token], step: bool, head: &str) -> Result<Option<(String, i64)>> {
    let mut c = Cursor::new(args);
    let mut column = c.identifier(head)?;
    while c.token(&Token::Period) {
        column = c.identifier(head)?;
    }
    if step {
        c.expect_keyword("BY", head)?;
        c.expect_keyword("INTERVAL", head)?;
        let size = parse_interval_rest(&mut c, head)?;
        Ok(Some((column, size)))
    } else {
        if !c.keyword("TO") {
            return Ok(None);
        }
        let unit = c.identifier(head)?;
        let size = unit_ms(&unit)
            .ok_or_else(|| Error::Sql(format!("{head}: FLOOR(... TO {unit}): unknown unit")))?;
        Ok(Some((column, size)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flink_tumble_application() {
        let app = parse(
            "-- clicks per user and minute
            CREATE TABLE clicks (
                user_id VARCHAR, url STRING, amount DECIMAL(10, 2), event_time TIMESTAMP(3),
                WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
            ) WITH ('connector' = 'firehose', 'stream' = 'clicks');
            CREATE TABLE clicks_per_minute WITH ('connector' = 'firehose', 'stream' = 'out');
            INSERT INTO clicks_per_minute
            SELECT user_id, window_start, COUNT(*) AS clicks
            FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
            GROUP BY user_id, window_start, window_end;",
        )
        .unwrap();
        let clicks = &app.tables["clicks"];
        assert_eq!(clicks.columns.len(), 4);
        assert_eq!(clicks.columns[2].data_type(), &DataType::Decimal128(10, 2));
        assert_eq!(
            clicks.watermark,
            Some(WatermarkDef {
                column: "event_time".into(),
                delay_ms: 5000
            })
        );
        assert_eq!(clicks.options["stream"], "clicks");
        let pump = &app.pumps[0];
        assert_eq!(
            (pump.source.as_str(), pump.sink.as_str()),
            ("clicks", "clicks_per_minute")
        );
        let w = pump.window.as_ref().unwrap();
        assert_eq!(
            (w.kind, w.size_ms, w.time_column.as_str()),
            (WindowKind::Tumble, 60_000, "event_time")
        );
        assert!(pump.select.contains("FROM \"clicks\""), "{}", pump.select);
        assert!(!pump.select.contains("TUMBLE"));
    }

    #[test]
    fn hop_and_cumulate_arguments() {
        let base = "CREATE TABLE s (k VARCHAR, ts TIMESTAMP) WITH ('stream'='s');
                    CREATE TABLE o WITH ('stream'='o');";
        let app = parse(&format!(
            "{base} INSERT INTO o SELECT k, window_end, COUNT(*) FROM TABLE(HOP(TABLE s, DESCRIPTOR(ts), INTERVAL '10' SECONDS, INTERVAL '1' MINUTE)) GROUP BY k, window_start, window_end"
        ))
        .unwrap();
        let w = app.pumps[0].window.clone().unwrap();
        assert_eq!(
            (w.kind, w.slide_ms, w.size_ms),
            (WindowKind::Hop, 10_000, 60_000)
        );
        let app = parse(&format!(
            "{base} INSERT INTO o SELECT k, window_end, COUNT(*) FROM TABLE(CUMULATE(TABLE s, DESCRIPTOR(ts), INTERVAL '2 minutes', INTERVAL '10' MINUTE)) GROUP BY k, window_start, window_end"
        ))
        .unwrap();
        let w = app.pumps[0].window.clone().unwrap();
        assert_eq!(
            (w.kind, w.slide_ms, w.size_ms),
            (WindowKind::Cumulate, 120_000, 600_000)
        );
        let err = parse(&format!(
            "{base} INSERT INTO o SELECT k FROM TABLE(HOP(TABLE s, DESCRIPTOR(ts), INTERVAL '7' SECOND, INTERVAL '1' MINUTE)) GROUP BY k, window_start"
        ))
        .unwrap_err();
        assert!(err.to_string().contains("multiple"), "{err}");
    }

    #[test]
    fn legacy_kinesis_analytics_pump() {
        let app = parse(
            r#"CREATE OR REPLACE STREAM "SOURCE_SQL_STREAM_001" (ticker_symbol VARCHAR(4), price DOUBLE)
                 WITH ('connector' = 'firehose', 'stream' = 'ticks');
               CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (ticker_symbol VARCHAR(4), ticker_count INTEGER)
                 WITH ('connector' = 'firehose', 'stream' = 'counts');
               CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
               SELECT STREAM ticker_symbol, COUNT(*) AS ticker_count
               FROM "SOURCE_SQL_STREAM_001"
               GROUP BY ticker_symbol, STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '60' SECOND);"#,
        )
        .unwrap();
        let pump = &app.pumps[0];
        assert_eq!(pump.name, "STREAM_PUMP");
        assert_eq!(pump.source, "SOURCE_SQL_STREAM_001");
        let w = pump.window.clone().unwrap();
        assert_eq!((w.time_column.as_str(), w.size_ms), ("rowtime", 60_000));
        assert!(
            pump.select.contains("GROUP BY ticker_symbol, window_start"),
            "{}",
            pump.select
        );
        assert!(!pump.select.contains("STREAM ticker"), "{}", pump.select);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let cases = [
            ("SELECT 1", "INSERT INTO"),
            (
                "CREATE TABLE s (a VARCHAR) WITH ('stream'='s')",
                "nothing would run",
            ),
            ("CREATE TABLE s (a BLOB)", "unsupported column type"),
            (
                "CREATE TABLE s (a VARCHAR, WATERMARK FOR a AS a - INTERVAL '1' SECOND)",
                "must be a TIMESTAMP",
            ),
            (
                "CREATE TABLE s (a TIMESTAMP) WITH ('stream'='s'); INSERT INTO o SELECT a FROM s",
                "sink `o` is not declared",
            ),
            (
                "CREATE TABLE s (ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '5' FORTNIGHT)",
                "unknown interval unit",
            ),
            ("CREATE TABLE s (rowtime TIMESTAMP)", "arrival time"),
        ];
        for (sql, expected) in cases {
            let err = parse(sql).unwrap_err().to_string();
            assert!(err.contains(expected), "{sql}: {err}");
        }
    }
}

//! The load step of the Redshift destination, on PostgreSQL (Redshift speaks its protocol):
//! a staged batch is loaded with `COPY ... FROM STDIN`, translated from the stream's
//! `CopyCommand`.
//!
//! - [`CopySpec::parse`] translates Redshift's `CopyOptions` into a PostgreSQL COPY: `JSON
//!   'auto'` / `JSON 'auto ignorecase'` (the records' top-level keys are matched to the columns
//!   and sent as CSV rows), `CSV` with `QUOTE`, `DELIMITER`, `NULL AS`, `IGNOREHEADER`, `GZIP`;
//!   without a format, Redshift's default pipe-delimited text. Options with no effect here
//!   (`COMPUPDATE`, `STATUPDATE`, `REGION`, `TIMEFORMAT 'auto'`, `DATEFORMAT 'auto'`) are
//!   accepted; anything else is refused when the stream is created, never ignored silently.
//! - [`load`] runs one batch in one transaction that first claims the batch in the
//!   `lakehose_loads` table (primary key stream + batch id). A batch already claimed by a
//!   committed load is skipped, so a retried or replayed batch never loads twice, and two
//!   loads of one batch cannot both commit.
//! - Failures carry Firehose's codes (`Redshift.TableNotFound`, `Redshift.ColumnMismatch`,
//!   `Redshift.AuthenticationFailed`, ...). Data errors (the batch itself is malformed for the
//!   table: SQLSTATE class 22, invalid JSON) are permanent: retrying the same bytes cannot
//!   succeed. Everything else (no connection, missing table, privileges) is retried within the
//!   stream's `RetryOptions`, since an operator may fix it meanwhile.

use std::io::Read as _;

use bytes::{BufMut, Bytes, BytesMut};
use futures::SinkExt;
use serde_json::Value;
use tokio_postgres::error::SqlState;

use crate::retry::Failure;

/// The table that records which batches were loaded (in the connection's current schema).
pub const LOADS_TABLE: &str = "lakehose_loads";

/// How the staged bytes are read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// `JSON 'auto'`: one JSON object per record, keys matched to column names (exactly, or
    /// ignoring case with `'auto ignorecase'`).
    JsonAuto {
        /// `'auto ignorecase'`.
        ignore_case: bool,
    },
    /// `CSV`.
    Csv {
        /// `DELIMITER` (default `,`).
        delimiter: char,
        /// `QUOTE` (default `"`).
        quote: char,
    },
    /// Delimited text (Redshift's default: `|`).
    Text {
        /// `DELIMITER` (default `|`).
        delimiter: char,
    },
}

/// A validated `CopyCommand`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopySpec {
    /// `DataTableName`, split on `.` and lowercased (Redshift folds unquoted names).
    pub table: Vec<String>,
    /// `DataTableColumns`, lowercased; `None`: every column of the table, in order.
    pub columns: Option<Vec<String>>,
    /// How the staged bytes are read.
    pub format: Format,
    /// `GZIP`: the staged objects are gzip-compressed.
    pub gzip: bool,
    /// `IGNOREHEADER n`: lines skipped at the start of each batch.
    pub ignore_header: usize,
    /// `NULL AS 'x'`.
    pub null_as: Option<String>,
}

/// Splits `CopyOptions` into words, keeping `'quoted strings'` (with `''` or `\'` inside) as
/// one word, their quotes removed and marked by a leading `'`.
fn words(options: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = options.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '\'' {
            chars.next();
            let mut s = String::from("'");
            loop {
                match chars.next() {
                    None => return Err("an unterminated quoted string in CopyOptions".into()),
                    Some('\\') => match chars.next() {
                        Some(n) => s.push(n),
                        None => return Err("an unterminated quoted string in CopyOptions".into()),
                    },
                    Some('\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                        s.push('\'');
                    }
                    Some('\'') => break,
                    Some(other) => s.push(other),
                }
            }
            out.push(s);
        } else {
            let mut w = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '\'' {
                    break;
                }
                w.push(c);
                chars.next();
            }
            out.push(w.to_ascii_uppercase());
        }
    }
    Ok(out)
}

fn identifier_parts(name: &str, what: &str) -> Result<Vec<String>, String> {
    let parts: Vec<String> = name.split('.').map(|p| p.trim().to_lowercase()).collect();
    let ok = !parts.is_empty()
        && parts.len() <= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 127
                && p.chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
                && !p.starts_with(|c: char| c.is_ascii_digit())
        });
    if !ok {
        return Err(format!(
            "{what} '{name}' is not a table or column name (letters, digits, _ and $, separated by dots)"
        ));
    }
    Ok(parts)
}

/// A double-quoted identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A single-quoted string literal.
fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn one_char(word: &str, option: &str) -> Result<char, String> {
    let mut chars = word.strip_prefix('\'').unwrap_or(word).chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Ok(c),
        _ => Err(format!(
            "{option} takes one character in quotes, not {word:?}"
        )),
    }
}

impl CopySpec {
    /// Translates a `CopyCommand`; the error says which option is not supported and why.
    pub fn parse(
        table: &str,
        columns: Option<&str>,
        options: Option<&str>,
    ) -> Result<Self, String> {
        let table = identifier_parts(table, "DataTableName")?;
        let columns = match columns.map(str::trim).filter(|c| !c.is_empty()) {
            None => None,
            Some(list) => Some(
                list.split(',')
                    .map(|c| {
                        identifier_parts(c, "DataTableColumns entry").and_then(|p| {
                            if p.len() == 1 {
                                Ok(p[0].clone())
                            } else {
                                Err(format!("column '{c}' must not be qualified"))
                            }
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        let words = words(options.unwrap_or_default())?;
        let mut spec = CopySpec {
            table,
            columns,
            format: Format::Text { delimiter: '|' },
            gzip: false,
            ignore_header: 0,
            null_as: None,
        };
        let (mut json, mut csv, mut delimiter, mut quote) = (None, false, None, None);
        let mut i = 0;
        // The argument after an option, skipping an optional AS.
        let arg = |i: &mut usize, option: &str| -> Result<String, String> {
            *i += 1;
            if words.get(*i).map(String::as_str) == Some("AS") {
                *i += 1;
            }
            words
                .get(*i)
                .cloned()
                .ok_or_else(|| format!("{option} needs an argument"))
        };
        while i < words.len() {
            let word = words[i].clone();
            match word.as_str() {
                "FORMAT" => {
                    let f = arg(&mut i, "FORMAT")?;
                    match f.as_str() {
                        "JSON" => json = Some(arg(&mut i, "JSON")?),
                        "CSV" => csv = true,
                        other => return Err(format!("FORMAT {other} is not supported")),
                    }
                }
                "JSON" => json = Some(arg(&mut i, "JSON")?),
                "CSV" => csv = true,
                "DELIMITER" => delimiter = Some(one_char(&arg(&mut i, "DELIMITER")?, "DELIMITER")?),
                "QUOTE" => quote = Some(one_char(&arg(&mut i, "QUOTE")?, "QUOTE")?),
                "GZIP" => spec.gzip = true,
                "IGNOREHEADER" => {
                    let n = arg(&mut i, "IGNOREHEADER")?;
                    spec.ignore_header = n
                        .parse()
                        .map_err(|_| format!("IGNOREHEADER takes a number, not {n:?}"))?;
                }
                "NULL" => {
                    let n = arg(&mut i, "NULL AS")?;
                    let Some(n) = n.strip_prefix('\'') else {
                        return Err("NULL AS takes a quoted string".into());
                    };
                    spec.null_as = Some(n.to_string());
                }
                "TIMEFORMAT" | "DATEFORMAT" => {
                    let v = arg(&mut i, &word)?;
                    if !v.eq_ignore_ascii_case("'auto") {
                        return Err(format!(
                            "{word} {} is not supported; only 'auto' (PostgreSQL's own parsing)",
                            v.trim_start_matches('\'')
                        ));
                    }
                }
                "COMPUPDATE" | "STATUPDATE" => {
                    if matches!(
                        words.get(i + 1).map(String::as_str),
                        Some("ON" | "OFF" | "TRUE" | "FALSE")
                    ) {
                        i += 1;
                    }
                }
                "REGION" => {
                    arg(&mut i, "REGION")?;
                }
                other => {
                    return Err(format!(
                        "the COPY option {} is not supported by Lakehose's PostgreSQL loader \
                         (supported: JSON 'auto', JSON 'auto ignorecase', CSV, QUOTE, DELIMITER, \
                         NULL AS, IGNOREHEADER, GZIP, TIMEFORMAT 'auto', DATEFORMAT 'auto', \
                         COMPUPDATE, STATUPDATE, REGION)",
                        other.trim_start_matches('\'')
                    ));
                }
            }
            i += 1;
        }
        spec.format = match (json, csv) {
            (Some(_), true) => return Err("JSON and CSV cannot both be given".into()),
            (Some(path), false) => {
                let path = path.trim_start_matches('\'').to_ascii_lowercase();
                let ignore_case = match path.as_str() {
                    "auto" => false,
                    "auto ignorecase" => true,
                    _ => {
                        return Err(format!(
                            "JSON '{path}' is not supported: JSONPaths files cannot be read; use JSON 'auto' or 'auto ignorecase'"
                        ));
                    }
                };
                if delimiter.is_some() || quote.is_some() || spec.null_as.is_some() {
                    return Err("DELIMITER, QUOTE and NULL AS do not apply to JSON".into());
                }
                Format::JsonAuto { ignore_case }
            }
            (None, true) => Format::Csv {
                delimiter: delimiter.unwrap_or(','),
                quote: quote.unwrap_or('"'),
            },
            (None, false) => {
                if quote.is_some() {
                    return Err("QUOTE needs CSV".into());
                }
                Format::Text {
                    delimiter: delimiter.unwrap_or('|'),
                }
            }
        };
        Ok(spec)
    }

    /// The quoted table name.
    pub fn table_sql(&self) -> String {
        self.table
            .iter()
            .map(|p| quote_ident(p))
            .collect::<Vec<_>>()
            .join(".")
    }

    /// The COPY statement for `columns`.
    pub fn copy_sql(&self, columns: &[String]) -> String {
        let cols = columns
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let mut options = Vec::new();
        match &self.format {
            Format::JsonAuto { .. } => options.push("FORMAT csv".to_string()),
            Format::Csv { delimiter, quote } => {
                options.push("FORMAT csv".into());
                options.push(format!(
                    "DELIMITER {}",
                    quote_literal(&delimiter.to_string())
                ));
                options.push(format!("QUOTE {}", quote_literal(&quote.to_string())));
            }
            Format::Text { delimiter } => {
                options.push("FORMAT text".into());
                options.push(format!(
                    "DELIMITER {}",
                    quote_literal(&delimiter.to_string())
                ));
            }
        }
        if let Some(n) = &self.null_as {
            options.push(format!("NULL {}", quote_literal(n)));
        }
        format!(
            "COPY {} ({cols}) FROM STDIN WITH ({})",
            self.table_sql(),
            options.join(", ")
        )
    }

    /// The bytes COPY reads for a staged batch: gunzipped, header lines skipped, and JSON
    /// records turned into CSV rows of `columns`.
    pub fn copy_data(&self, staged: &[u8], columns: &[String]) -> Result<Bytes, Failure> {
        let mut data = staged.to_vec();
        if self.gzip {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(staged)
                .read_to_end(&mut out)
                .map_err(|e| {
                    Failure::permanent(
                        "Redshift.IncorrectCopyOptions",
                        format!("GZIP is set but the staged object is not gzip: {e}"),
                    )
                })?;
            data = out;
        }
        let mut start = 0;
        for _ in 0..self.ignore_header {
            match memchr_newline(&data[start..]) {
                Some(n) => start += n + 1,
                None => start = data.len(),
            }
        }
        let data = &data[start..];
        match &self.format {
            Format::JsonAuto { ignore_case } => json_to_csv(data, columns, *ignore_case),
            _ => Ok(Bytes::copy_from_slice(data)),
        }
    }
}

fn memchr_newline(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

/// JSON objects (concatenated, any whitespace between) as CSV rows of `columns`: strings as
/// they are, numbers and booleans as text, objects and arrays as JSON, `null` and missing
/// keys as NULL (an unquoted empty field).
fn json_to_csv(data: &[u8], columns: &[String], ignore_case: bool) -> Result<Bytes, Failure> {
    let mut out = BytesMut::with_capacity(data.len());
    for (n, value) in serde_json::Deserializer::from_slice(data)
        .into_iter::<Value>()
        .enumerate()
    {
        let value = value.map_err(|e| {
            Failure::permanent(
                "Redshift.InvalidJson",
                format!("record {} of the batch is not JSON: {e}", n + 1),
            )
        })?;
        let Value::Object(map) = value else {
            return Err(Failure::permanent(
                "Redshift.InvalidJson",
                format!("record {} of the batch is not a JSON object", n + 1),
            ));
        };
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                out.put_u8(b',');
            }
            let field = match map.get(column) {
                Some(v) => Some(v),
                None if ignore_case => map
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(column))
                    .map(|(_, v)| v),
                None => None,
            };
            let text = match field {
                None | Some(Value::Null) => continue,
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            };
            out.put_u8(b'"');
            out.put_slice(text.replace('"', "\"\"").as_bytes());
            out.put_u8(b'"');
        }
        out.put_u8(b'\n');
    }
    Ok(out.freeze())
}

/// How a load ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loaded {
    /// COPY loaded this many rows.
    Rows(u64),
    /// A committed load of this batch already exists; nothing was loaded.
    AlreadyLoaded,
}

/// The Firehose error code of a PostgreSQL error, and whether retrying may help.
fn classify(e: &tokio_postgres::Error) -> Failure {
    let message = match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    };
    let Some(code) = e.code() else {
        return Failure::retry("Redshift.ConnectionFailed", message);
    };
    let c = code.code();
    if *code == SqlState::UNDEFINED_TABLE || *code == SqlState::INVALID_SCHEMA_NAME {
        Failure::retry("Redshift.TableNotFound", message)
    } else if *code == SqlState::UNDEFINED_COLUMN {
        Failure::retry("Redshift.ColumnMismatch", message)
    } else if *code == SqlState::INVALID_PASSWORD || c.starts_with("28") {
        Failure::retry("Redshift.AuthenticationFailed", message)
    } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
        Failure::retry("Redshift.InsufficientPrivileges", message)
    } else if *code == SqlState::INVALID_CATALOG_NAME {
        Failure::retry("Redshift.DatabaseNotFound", message)
    } else if c.starts_with("22") || c.starts_with("23") {
        Failure::permanent("Redshift.DataLoadFailed", message)
    } else if c.starts_with("08") || c.starts_with("57") || c.starts_with("53") {
        Failure::retry("Redshift.ConnectionFailed", message)
    } else {
        Failure::retry("Redshift.CopyFailed", message)
    }
}

/// Connects with `config` (a libpq string or URL; `user`/`password` fill what it does not
/// name).
pub async fn connect(
    config: &str,
    user: Option<&str>,
    password: Option<&str>,
) -> Result<tokio_postgres::Client, Failure> {
    let mut cfg: tokio_postgres::Config = config.parse().map_err(|e| {
        Failure::retry(
            "Redshift.ConnectionFailed",
            format!("the [redshift_clusters] connection string is invalid: {e}"),
        )
    })?;
    if cfg.get_user().is_none()
        && let Some(u) = user
    {
        cfg.user(u);
    }
    if cfg.get_password().is_none()
        && let Some(p) = password
    {
        cfg.password(p);
    }
    cfg.connect_timeout(std::time::Duration::from_secs(30));
    cfg.application_name("lakehose");
    let (client, connection) = cfg
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| classify(&e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "PostgreSQL connection closed");
        }
    });
    Ok(client)
}

/// The table's columns in order, or `Redshift.TableNotFound`.
async fn table_columns(
    client: &tokio_postgres::Client,
    spec: &CopySpec,
) -> Result<Vec<String>, Failure> {
    let (schema, table) = match spec.table.as_slice() {
        [t] => (None, t.as_str()),
        [.., s, t] => (Some(s.as_str()), t.as_str()),
        [] => unreachable!("parse gives at least one part"),
    };
    let rows = client
        .query(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_name = $1 AND table_schema = COALESCE($2, current_schema()) \
             ORDER BY ordinal_position",
            &[&table, &schema],
        )
        .await
        .map_err(|e| classify(&e))?;
    if rows.is_empty() {
        return Err(Failure::retry(
            "Redshift.TableNotFound",
            format!("the table {} does not exist", spec.table.join(".")),
        ));
    }
    Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
}

/// Loads one staged batch (see the module's invariants).
pub async fn load(
    client: &mut tokio_postgres::Client,
    spec: &CopySpec,
    stream: &str,
    batch_id: &str,
    staged: &[u8],
) -> Result<Loaded, Failure> {
    let columns = match &spec.columns {
        Some(c) => c.clone(),
        None => table_columns(client, spec).await?,
    };
    let data = spec.copy_data(staged, &columns)?;
    // Created outside the load's transaction. `IF NOT EXISTS` does not make two first loads
    // at once safe: the one that loses the race fails on the catalog's unique indexes, with
    // the table's row type (42710), its name (42P07) or a plain unique violation (23505).
    // The table then exists, which is all this needs.
    let created = client
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {LOADS_TABLE} (stream text NOT NULL, batch text NOT NULL, \
             rows bigint, loaded_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (stream, batch))"
        ))
        .await;
    if let Err(e) = created
        && !e.code().is_some_and(|code| {
            [
                SqlState::UNIQUE_VIOLATION,
                SqlState::DUPLICATE_OBJECT,
                SqlState::DUPLICATE_TABLE,
            ]
            .contains(code)
        })
    {
        return Err(classify(&e));
    }
    let tx = client.transaction().await.map_err(|e| classify(&e))?;
    let claimed = tx
        .execute(
            &format!(
                "INSERT INTO {LOADS_TABLE} (stream, batch) VALUES ($1, $2) ON CONFLICT DO NOTHING"
            ),
            &[&stream, &batch_id],
        )
        .await
        .map_err(|e| classify(&e))?;
    if claimed == 0 {
        tx.rollback().await.map_err(|e| classify(&e))?;
        return Ok(Loaded::AlreadyLoaded);
    }
    let sink = tx
        .copy_in::<_, Bytes>(&spec.copy_sql(&columns))
        .await
        .map_err(|e| classify(&e))?;
    let mut sink = std::pin::pin!(sink);
    sink.send(data).await.map_err(|e| classify(&e))?;
    let rows = sink.finish().await.map_err(|e| classify(&e))?;
    tx.execute(
        &format!("UPDATE {LOADS_TABLE} SET rows = $3 WHERE stream = $1 AND batch = $2"),
        &[&stream, &batch_id, &(rows as i64)],
    )
    .await
    .map_err(|e| classify(&e))?;
    tx.commit().await.map_err(|e| classify(&e))?;
    Ok(Loaded::Rows(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(options: &str) -> Result<CopySpec, String> {
        CopySpec::parse("public.Events", None, Some(options))
    }

    #[test]
    fn options_translate_to_postgres() {
        let s = parse("JSON 'auto'").unwrap();
        assert_eq!(s.format, Format::JsonAuto { ignore_case: false });
        assert_eq!(s.table, vec!["public", "events"]);
        assert_eq!(
            s.copy_sql(&["a".into(), "b".into()]),
            "COPY \"public\".\"events\" (\"a\", \"b\") FROM STDIN WITH (FORMAT csv)"
        );
        let s = parse("format as json 'auto ignorecase' gzip").unwrap();
        assert_eq!(s.format, Format::JsonAuto { ignore_case: true });
        assert!(s.gzip);
        let s = parse("CSV DELIMITER AS ';' QUOTE '''' IGNOREHEADER 1 NULL AS 'NA'").unwrap();
        assert_eq!(
            s.format,
            Format::Csv {
                delimiter: ';',
                quote: '\''
            }
        );
        assert_eq!(s.ignore_header, 1);
        assert_eq!(
            s.copy_sql(&["x".into()]),
            "COPY \"public\".\"events\" (\"x\") FROM STDIN WITH (FORMAT csv, DELIMITER ';', QUOTE '''', NULL 'NA')"
        );
        let s = parse("").unwrap();
        assert_eq!(s.format, Format::Text { delimiter: '|' });
        let s =
            parse("TIMEFORMAT 'auto' COMPUPDATE OFF STATUPDATE ON REGION 'us-east-1' CSV").unwrap();
        assert_eq!(
            s.format,
            Format::Csv {
                delimiter: ',',
                quote: '"'
            }
        );
    }

    #[test]
    fn unsupported_options_are_refused_with_the_reason() {
        for (bad, says) in [
            ("JSON 's3://bucket/paths.json'", "JSONPaths"),
            ("MAXERROR 10", "MAXERROR"),
            ("TIMEFORMAT 'epochsecs'", "epochsecs"),
            ("CSV JSON 'auto'", "cannot both"),
            ("DELIMITER '||'", "one character"),
            ("JSON 'auto' DELIMITER ','", "do not apply"),
            ("QUOTE '\"'", "needs CSV"),
            ("CSV 'unterminated", "unterminated"),
            ("IGNOREHEADER x", "number"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        for bad_table in ["", "a;drop", "a.b.c.d", "1abc", "a..b"] {
            assert!(
                CopySpec::parse(bad_table, None, None).is_err(),
                "{bad_table}"
            );
        }
        assert!(CopySpec::parse("t", Some("a, b.c"), None).is_err());
        assert_eq!(
            CopySpec::parse("t", Some(" A ,b "), None).unwrap().columns,
            Some(vec!["a".to_string(), "b".to_string()])
        );
    }

    #[test]
    fn json_records_become_csv_rows() {
        let cols = vec!["id".to_string(), "name".to_string(), "tags".to_string()];
        let data = br#"{"id":1,"name":"a \"q\", b","tags":["x"]}{"id":2}
{"ID":3,"Name":"c","extra":true}"#;
        let exact = json_to_csv(data, &cols, false).unwrap();
        assert_eq!(
            std::str::from_utf8(&exact).unwrap(),
            "\"1\",\"a \"\"q\"\", b\",\"[\"\"x\"\"]\"\n\"2\",,\n,,\n"
        );
        let folded = json_to_csv(data, &cols, true).unwrap();
        assert!(
            std::str::from_utf8(&folded)
                .unwrap()
                .ends_with("\"3\",\"c\",\n")
        );
        let e = json_to_csv(b"{\"id\":1} [1]", &cols, false).unwrap_err();
        assert_eq!(e.code, "Redshift.InvalidJson");
        assert!(e.permanent);
        assert!(
            json_to_csv(b"{\"id\":", &cols, false)
                .unwrap_err()
                .permanent
        );
    }

    #[test]
    fn staged_bytes_are_gunzipped_and_headers_skipped() {
        use std::io::Write as _;
        let spec = parse("CSV IGNOREHEADER 1 GZIP").unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"h1,h2\n1,2\n3,4\n").unwrap();
        let staged = gz.finish().unwrap();
        assert_eq!(&spec.copy_data(&staged, &[]).unwrap()[..], b"1,2\n3,4\n");
        let e = spec.copy_data(b"plain", &[]).unwrap_err();
        assert_eq!(e.code, "Redshift.IncorrectCopyOptions");
    }
}

//! Golden SQL tests: every `tests/sql/*.slt` file runs against a fresh fixture lake
//! (`common::lake`).
//!
//! File format (sqllogictest-like), records separated by blank lines:
//!
//! ```text
//! # a comment
//! database lake                  -- default database of the following records
//!
//! statement ok
//! CREATE EXTERNAL TABLE ...
//!
//! statement error <substring of "line L, column C: message">
//! SELECT nope FROM t
//!
//! query [nofresh] [rowlimit=N]
//! SELECT a, b FROM t ORDER BY a
//! ----
//! 1 | x
//! 2 | NULL
//! ```
//!
//! Query output: one line per row, values separated by ` | `, NULL as `NULL`; with
//! `rowlimit=N` a last line `(truncated)` when the result was cut. Results must be
//! deterministic (use ORDER BY). `LAKEHOSE_BLESS=1` rewrites the expected outputs.

mod common;

use std::path::{Path, PathBuf};

use lakehose_query::QueryOptions;

#[derive(Debug)]
enum Record {
    /// Comment lines, kept as they are (`tight`: the next record follows without a blank line).
    Comment {
        lines: Vec<String>,
        tight: bool,
    },
    Database(String),
    Statement {
        line: usize,
        error: Option<String>,
        sql: String,
    },
    Query {
        line: usize,
        header: String,
        sql: String,
        expected: Vec<String>,
    },
}

fn parse(text: &str) -> Vec<Record> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim().is_empty() {
            i += 1;
            continue;
        }
        if line.starts_with('#') {
            let mut c = Vec::new();
            while i < lines.len() && lines[i].starts_with('#') {
                c.push(lines[i].to_string());
                i += 1;
            }
            let tight = i < lines.len() && !lines[i].trim().is_empty();
            out.push(Record::Comment { lines: c, tight });
            continue;
        }
        if let Some(db) = line.strip_prefix("database ") {
            out.push(Record::Database(db.trim().to_string()));
            i += 1;
            continue;
        }
        let start = i + 1;
        if line.starts_with("statement") {
            let error = match line.trim() {
                "statement ok" => None,
                other => Some(
                    other
                        .strip_prefix("statement error")
                        .unwrap_or_else(|| panic!("line {start}: bad header '{line}'"))
                        .trim()
                        .to_string(),
                ),
            };
            i += 1;
            let mut sql = Vec::new();
            while i < lines.len() && !lines[i].trim().is_empty() {
                sql.push(lines[i]);
                i += 1;
            }
            out.push(Record::Statement {
                line: start,
                error,
                sql: sql.join("\n"),
            });
            continue;
        }
        if line.starts_with("query") {
            i += 1;
            let mut sql = Vec::new();
            while i < lines.len() && lines[i].trim() != "----" {
                assert!(
                    !lines[i].trim().is_empty(),
                    "line {start}: query without ----"
                );
                sql.push(lines[i]);
                i += 1;
            }
            i += 1;
            let mut expected = Vec::new();
            while i < lines.len() && !lines[i].trim().is_empty() {
                expected.push(lines[i].to_string());
                i += 1;
            }
            out.push(Record::Query {
                line: start,
                header: line.trim().to_string(),
                sql: sql.join("\n"),
                expected,
            });
            continue;
        }
        panic!("line {start}: unexpected '{line}'");
    }
    out
}

fn write(records: &[Record]) -> String {
    let mut out = String::new();
    let mut separator = "";
    for r in records {
        out.push_str(separator);
        separator = "\n\n";
        out.push_str(&match r {
            Record::Comment { lines, tight } => {
                if *tight {
                    separator = "\n";
                }
                lines.join("\n")
            }
            Record::Database(d) => format!("database {d}"),
            Record::Statement { error, sql, .. } => match error {
                None => format!("statement ok\n{sql}"),
                Some(e) => format!("statement error {e}\n{sql}"),
            },
            Record::Query {
                header,
                sql,
                expected,
                ..
            } => {
                let mut s = format!("{header}\n{sql}\n----");
                for e in expected {
                    s.push('\n');
                    s.push_str(e);
                }
                s
            }
        });
    }
    out + "\n"
}

async fn run_file(path: &Path, bless: bool) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut records = parse(&text);
    let lake = common::lake().await;
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let mut failures = Vec::new();
    let mut database = "default".to_string();
    for r in records.iter_mut() {
        match r {
            Record::Comment { .. } => {}
            Record::Database(d) => database = d.clone(),
            Record::Statement { line, error, sql } => {
                let options = QueryOptions {
                    database: database.clone(),
                    ..QueryOptions::default()
                };
                let result = lake.engine.execute(sql, &options).await;
                match (error.as_deref(), result) {
                    (None, Ok(_)) => {}
                    (None, Err(e)) => failures.push(format!(
                        "{name}:{line}: expected success, got error: {}",
                        e.display_with_position()
                    )),
                    (Some(want), Err(e)) => {
                        let got = e.display_with_position();
                        if !got.contains(want) {
                            failures.push(format!(
                                "{name}:{line}: expected an error containing '{want}', got '{got}'"
                            ));
                        }
                    }
                    (Some(want), Ok(_)) => failures.push(format!(
                        "{name}:{line}: expected an error containing '{want}', but it succeeded"
                    )),
                }
            }
            Record::Query {
                line,
                header,
                sql,
                expected,
            } => {
                let mut options = QueryOptions {
                    database: database.clone(),
                    ..QueryOptions::default()
                };
                for opt in header.split_whitespace().skip(1) {
                    if opt == "nofresh" {
                        options.include_fresh = false;
                    } else if let Some(n) = opt.strip_prefix("rowlimit=") {
                        options.row_limit = Some(n.parse().unwrap());
                    } else {
                        panic!("{name}:{line}: unknown query option '{opt}'");
                    }
                }
                let got = match lake.engine.execute(sql, &options).await {
                    Ok(out) => {
                        let mut lines: Vec<String> = common::render(&out)
                            .into_iter()
                            .map(|l| l.trim_end().to_string())
                            .collect();
                        if out.truncated {
                            lines.push("(truncated)".to_string());
                        }
                        lines
                    }
                    Err(e) => vec![format!("ERROR: {}", e.display_with_position())],
                };
                if bless {
                    *expected = got;
                } else if expected
                    .iter()
                    .map(|l| l.trim_end())
                    .ne(got.iter().map(|l| l.as_str()))
                {
                    failures.push(format!(
                        "{name}:{line}: {sql}\n--- expected\n{}\n--- got\n{}",
                        expected.join("\n"),
                        got.join("\n")
                    ));
                }
            }
        }
    }
    if bless {
        std::fs::write(path, write(&records)).unwrap();
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_sql() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sql");
    let bless = std::env::var("LAKEHOSE_BLESS").is_ok_and(|v| v == "1");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files in {}", dir.display());
    let mut failures = Vec::new();
    for f in &files {
        failures.extend(run_file(f, bless).await);
    }
    assert!(
        failures.is_empty(),
        "{} golden failure(s):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn format_round_trips() {
    let text = "# c\ndatabase lake\n\n# d\n\nstatement ok\nDROP TABLE x\n\nstatement error nope\nSELECT\n\nquery nofresh\nSELECT 1\n----\n1\n";
    assert_eq!(write(&parse(text)), text);
}

//! `lakehose query`: SQL against a running server (`POST /v1/query`, Arrow IPC answers) or
//! directly against a data dir, printed as a table or written as CSV, JSON, NDJSON or Parquet.
//!
//! - `lakehose query "SELECT ..."`, `lakehose query -f FILE.sql` (statements separated by `;`),
//!   or, with neither, an interactive prompt with history (`~/.lakehose_history`) when stdin is
//!   a terminal, else the SQL read from stdin.
//! - After each statement a line on stderr: rows, bytes scanned, elapsed time. A spinner shows
//!   on a terminal while a statement runs.
//! - Direct mode (`--data-dir`) reads the catalog and buckets as they are on disk; it cannot
//!   see a running server's undelivered records (those live in the server's memory-mapped
//!   logs), and DDL run there is not seen by a running server until it restarts.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use lakehose_query::{QueryEngine, QueryError, QueryOptions, QueryStats};
use serde_json::json;

use crate::client::FirehoseClient;

/// Output formats of `lakehose query`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// An aligned text table.
    Table,
    Csv,
    /// One JSON array of row objects.
    Json,
    /// One JSON object per line.
    Ndjson,
    Parquet,
}

#[derive(clap::Args, Debug)]
pub struct QueryArgs {
    /// SQL to run (several statements separated by `;`).
    pub sql: Option<String>,
    /// Read the SQL from this file.
    #[arg(short = 'f', long = "file", conflicts_with = "sql")]
    pub file: Option<PathBuf>,
    /// Query this data dir directly instead of a server.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Configuration file for direct mode (mapped S3 buckets); default ./lakehose.toml.
    #[arg(long, requires = "data_dir")]
    pub config: Option<PathBuf>,
    /// Database unqualified table names resolve in.
    #[arg(short = 'd', long, default_value = "default")]
    pub database: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Write results to this file instead of stdout.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// Leave out acknowledged records that are not delivered yet.
    #[arg(long)]
    pub no_fresh: bool,
    /// Stop after this many rows.
    #[arg(long)]
    pub limit: Option<usize>,
}

/// Where statements run.
enum Backend {
    Server(Box<FirehoseClient>),
    Direct(QueryEngine),
}

/// A statement's rows and figures.
struct Answer {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    truncated: bool,
    stats: QueryStats,
}

/// Runs the command; the exit status is an error if any statement failed.
pub async fn run(endpoint: &str, args: QueryArgs) -> anyhow::Result<()> {
    let backend = match &args.data_dir {
        Some(dir) => Backend::Direct(direct_engine(dir, args.config.as_deref())?),
        None => Backend::Server(Box::new(FirehoseClient::new(endpoint)?)),
    };
    let text = match (&args.sql, &args.file) {
        (Some(sql), _) => Some(sql.clone()),
        (None, Some(file)) => Some(
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?,
        ),
        (None, None) if !std::io::stdin().is_terminal() => {
            let mut sql = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut sql)?;
            Some(sql)
        }
        (None, None) => None,
    };
    match text {
        Some(text) => {
            let statements = split_statements(&text);
            if statements.is_empty() {
                bail!("no SQL statement given");
            }
            let mut out = Output::open(&args)?;
            for sql in statements {
                let answer = execute(&backend, &sql, &args)
                    .await
                    .map_err(|e| anyhow::anyhow!("{}", e.display_with_position()))?;
                out.write(&answer)?;
                summary(&answer);
            }
            out.finish()
        }
        None => interactive(&backend, &args).await,
    }
}

fn direct_engine(
    dir: &std::path::Path,
    config: Option<&std::path::Path>,
) -> anyhow::Result<QueryEngine> {
    let cfg = crate::config::Config::load(config)?;
    let catalog = lakehose_catalog::FileCatalog::open_in_data_dir(dir)
        .with_context(|| format!("opening the catalog in {}", dir.display()))?;
    // Sealed objects of local buckets are read with the configured keyring.
    let keyring = cfg.encryption.keyring()?;
    let buckets =
        lakehose_sinks::Buckets::new(dir.join("buckets"), cfg.buckets).with_keyring(keyring);
    Ok(QueryEngine::new(
        Arc::new(catalog),
        Arc::new(crate::lake::LakeBuckets(Arc::new(buckets))),
    ))
}

async fn execute(backend: &Backend, sql: &str, args: &QueryArgs) -> Result<Answer, QueryError> {
    let spinner = spinner();
    let result = match backend {
        Backend::Direct(engine) => {
            let options = QueryOptions {
                database: args.database.clone(),
                include_fresh: !args.no_fresh,
                row_limit: args.limit,
            };
            engine.execute(sql, &options).await.map(|o| Answer {
                schema: o.schema,
                batches: o.batches,
                truncated: o.truncated,
                stats: o.stats,
            })
        }
        Backend::Server(client) => remote(client, sql, args).await,
    };
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    result
}

fn spinner() -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} running… {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    Some(bar)
}

async fn remote(
    client: &FirehoseClient,
    sql: &str,
    args: &QueryArgs,
) -> Result<Answer, QueryError> {
    let body = json!({
        "sql": sql,
        "database": args.database,
        "fresh": !args.no_fresh,
        "limit": args.limit,
        "format": "arrow",
    });
    let (status, headers, bytes) = client
        .post("/v1/query", Bytes::from(body.to_string()))
        .await
        .map_err(|e| QueryError::Internal(e.to_string()))?;
    if status != 200 {
        return Err(remote_error(status, &bytes));
    }
    let header = |name: &str| -> Option<String> {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let reader =
        datafusion::arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
            .map_err(|e| QueryError::Internal(format!("reading the answer: {e}")))?;
    let schema = reader.schema();
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| QueryError::Internal(format!("reading the answer: {e}")))?;
    let number = |name: &str| {
        header(name)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(Answer {
        schema,
        truncated: header("x-lakehose-truncated").as_deref() == Some("true"),
        stats: QueryStats {
            rows: batches.iter().map(|b| b.num_rows() as u64).sum(),
            bytes_scanned: number("x-lakehose-bytes-scanned"),
            elapsed: Duration::from_millis(number("x-lakehose-elapsed-ms")),
        },
        batches,
    })
}

fn remote_error(status: u16, body: &[u8]) -> QueryError {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let e = &value["error"];
    let message = e["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| {
            format!(
                "the server answered {status}: {}",
                String::from_utf8_lossy(body)
            )
        });
    match e["type"].as_str() {
        Some("USER_ERROR") => QueryError::User {
            message,
            position: match (e["line"].as_u64(), e["column"].as_u64()) {
                (Some(line), Some(column)) => Some(lakehose_query::Position { line, column }),
                _ => None,
            },
        },
        Some("CANCELLED") => QueryError::Cancelled,
        _ => QueryError::Internal(message),
    }
}

/// Where results go: stdout or a file.
struct Output {
    sink: Box<dyn Write>,
    /// Parquet needs one writer across statements of one file; other formats stream.
    parquet: Option<datafusion::parquet::arrow::ArrowWriter<Box<dyn Write + Send>>>,
    format: Format,
    /// The file Parquet goes to (stdout when none).
    path: Option<PathBuf>,
}

impl Output {
    fn open(args: &QueryArgs) -> anyhow::Result<Self> {
        let to_terminal = args.output.is_none() && std::io::stdout().is_terminal();
        if args.format == Format::Parquet && to_terminal {
            bail!("Parquet output is binary: give --output FILE or redirect stdout");
        }
        let sink: Box<dyn Write> = match &args.output {
            Some(path) => Box::new(std::io::BufWriter::new(
                std::fs::File::create(path)
                    .with_context(|| format!("creating {}", path.display()))?,
            )),
            None => Box::new(std::io::BufWriter::new(std::io::stdout())),
        };
        Ok(Output {
            sink,
            parquet: None,
            format: args.format,
            path: args.output.clone(),
        })
    }

    /// A table on stdout (the interactive prompt).
    fn terminal() -> Self {
        Output {
            sink: Box::new(std::io::stdout()),
            parquet: None,
            format: Format::Table,
            path: None,
        }
    }

    fn write(&mut self, answer: &Answer) -> anyhow::Result<()> {
        use datafusion::arrow::{csv, json};
        let batches = &answer.batches;
        if answer.schema.fields().is_empty() {
            if self.format == Format::Table {
                writeln!(self.sink, "OK")?;
            }
            return Ok(());
        }
        match self.format {
            Format::Table => {
                let text = datafusion::arrow::util::pretty::pretty_format_batches(batches)?;
                if batches.iter().all(|b| b.num_rows() == 0) {
                    let names: Vec<&str> = answer
                        .schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect();
                    writeln!(self.sink, "{}\n(no rows)", names.join(" | "))?;
                } else {
                    writeln!(self.sink, "{text}")?;
                }
                if answer.truncated {
                    writeln!(self.sink, "(truncated at {} rows)", answer.stats.rows)?;
                }
            }
            Format::Csv => {
                let mut w = csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut self.sink);
                for b in batches {
                    w.write(b)?;
                }
            }
            Format::Json => {
                let mut w = json::ArrayWriter::new(&mut self.sink);
                for b in batches {
                    w.write(b)?;
                }
                w.finish()?;
                writeln!(self.sink)?;
            }
            Format::Ndjson => {
                let mut w = json::LineDelimitedWriter::new(&mut self.sink);
                for b in batches {
                    w.write(b)?;
                }
                w.finish()?;
            }
            Format::Parquet => {
                if self.parquet.is_some() {
                    bail!("Parquet output holds one statement's rows; run one query per file");
                }
                let target: Box<dyn Write + Send> = match &self.path {
                    Some(path) => Box::new(std::fs::File::create(path)?),
                    None => Box::new(std::io::stdout()),
                };
                let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(
                    target,
                    answer.schema.clone(),
                    None,
                )?;
                for b in batches {
                    w.write(b)?;
                }
                self.parquet = Some(w);
            }
        }
        self.sink.flush()?;
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<()> {
        if let Some(w) = self.parquet.take() {
            w.close()?;
        }
        self.sink.flush()?;
        Ok(())
    }
}

fn summary(answer: &Answer) {
    let s = &answer.stats;
    eprintln!(
        "{} row{} · {} scanned · {:.3} s",
        s.rows,
        if s.rows == 1 { "" } else { "s" },
        human_bytes(s.bytes_scanned),
        s.elapsed.as_secs_f64()
    );
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Splits SQL text into statements at `;` outside quotes and comments; blank statements are
/// dropped.
pub fn split_statements(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' | '`' => {
                current.push(c);
                while let Some(d) = chars.next() {
                    current.push(d);
                    if d == c {
                        // A doubled quote stays inside the literal.
                        if chars.peek() == Some(&c) {
                            current.push(c);
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        current.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for d in chars.by_ref() {
                    if prev == '*' && d == '/' {
                        break;
                    }
                    prev = d;
                }
                current.push(' ');
            }
            ';' => {
                if !current.trim().is_empty() {
                    out.push(current.trim().to_string());
                }
                current.clear();
            }
            _ => current.push(c),
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_string());
    }
    out
}

/// The interactive prompt: statements end with `;`, `\q` or `exit` quits, history is kept.
async fn interactive(backend: &Backend, args: &QueryArgs) -> anyhow::Result<()> {
    let mut editor = rustyline::DefaultEditor::new()?;
    let history = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".lakehose_history"));
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    eprintln!("lakehose query — statements end with ';', \\q to quit");
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            format!("{}> ", args.database)
        } else {
            "   ...> ".to_string()
        };
        let line = match editor.readline(&prompt) {
            Ok(line) => line,
            Err(rustyline::error::ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(rustyline::error::ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        let trimmed = line.trim();
        if buffer.is_empty() && matches!(trimmed, "\\q" | "exit" | "quit") {
            break;
        }
        buffer.push_str(&line);
        buffer.push('\n');
        if !trimmed.ends_with(';') {
            continue;
        }
        let _ = editor.add_history_entry(buffer.trim());
        for sql in split_statements(&buffer) {
            match execute(backend, &sql, args).await {
                Ok(answer) => {
                    Output::terminal().write(&answer)?;
                    summary(&answer);
                }
                Err(e) => eprintln!("error: {}", e.display_with_position()),
            }
        }
        buffer.clear();
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_outside_quotes_and_comments() {
        let got = split_statements(
            "SELECT 'a;b' AS x; -- note; here\nSELECT \"c;d\" FROM t /* ; */ ;\n\n ; SELECT 'it''s;'",
        );
        assert_eq!(
            got,
            vec![
                "SELECT 'a;b' AS x".to_string(),
                "SELECT \"c;d\" FROM t".to_string(),
                "SELECT 'it''s;'".to_string(),
            ]
        );
    }

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}

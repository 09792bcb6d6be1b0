//! Streaming SQL over live delivery streams: Kinesis Data Analytics' job.
//!
//! An **application** ([`Application`]) is SQL text ([`sql`]) declaring sources (delivery
//! streams whose records are JSON), sinks (delivery streams or HTTP endpoints) and pumps
//! (`INSERT INTO sink SELECT ... FROM source`, continuous queries). A pump ([`pump::Pump`])
//! is planned once by DataFusion ([`plan`]) and then fed records in log order; windowed
//! aggregates keep per-window state made of DataFusion's own accumulators and emit a
//! window's rows when the watermark passes its end ([`window`]).
//!
//! This crate is pure computation: it reads no log and writes no output. The binary's
//! runtime feeds it records from the streams' write-ahead logs, delivers what it emits, and
//! stores its snapshots with the log positions they cover, which is how a restart neither
//! loses nor repeats a result (see ARCHITECTURE.md, "Streaming SQL").

pub mod plan;
pub mod pump;
pub mod sql;
pub mod window;

use std::collections::BTreeMap;

pub use plan::ReferenceTable;
pub use pump::{Input, Outcome, Pump, PumpStats, Rejected, to_json_records};
pub use sql::{AppSql, PumpDef, TableDef};

/// Why an application cannot be defined or run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The application's text is not a valid application.
    #[error("{0}")]
    Sql(String),
    /// A query cannot run over a stream (DataFusion's planning error, or an operator a stream
    /// cannot support).
    #[error("{0}")]
    Plan(String),
    /// Running a query failed.
    #[error("{0}")]
    Execution(String),
    /// A snapshot cannot be written or read.
    #[error("{0}")]
    State(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A parsed and planned application.
#[derive(Debug)]
pub struct Application {
    pub sql: AppSql,
    /// One per pump, in declaration order.
    pub pumps: Vec<Pump>,
}

impl Application {
    /// Parses and plans `text` (which must declare no reference table).
    pub async fn new(text: &str) -> Result<Self> {
        Self::with_references(sql::parse(text)?, &[]).await
    }

    /// Plans a parsed application whose reference tables ([`AppSql::references`]) were read
    /// into `references`.
    pub async fn with_references(sql: AppSql, references: &[ReferenceTable]) -> Result<Self> {
        for name in sql.references() {
            if !references.iter().any(|r| r.name == name) {
                return Err(Error::Plan(format!(
                    "reference table `{name}` was not read"
                )));
            }
        }
        let mut pumps = Vec::with_capacity(sql.pumps.len());
        for def in &sql.pumps {
            let sources = def
                .sources
                .iter()
                .map(|name| sql.tables[name].clone())
                .collect();
            pumps.push(Pump::new(def.clone(), sources, references).await?);
        }
        let mut names = BTreeMap::new();
        for p in &pumps {
            if names.insert(p.name().to_string(), ()).is_some() {
                return Err(Error::Sql(format!("two pumps are named `{}`", p.name())));
            }
        }
        Ok(Application { sql, pumps })
    }

    /// The `WITH` option `key` of table `name`.
    pub fn option(&self, name: &str, key: &str) -> Option<&str> {
        self.sql
            .tables
            .get(name)?
            .options
            .get(key)
            .map(String::as_str)
    }
}

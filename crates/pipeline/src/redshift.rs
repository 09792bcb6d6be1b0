//! Delivery of one plan to a Redshift destination, loaded into PostgreSQL.
//!
//! ```text
//!   plan records --processors--> staged object(s) in the S3Configuration bucket (+ source
//!   backup, + processing errors) --COPY FROM STDIN, retried within RetryOptions--> table
//!   --(failed for good)--> manifest under <Prefix>errors/manifests/ --> commit
//! ```
//!
//! Invariants:
//! - The staged objects are written (and stored) before any load, exactly as an S3 stream's
//!   objects are: same keys on replay, so a crash between staging and loading re-stages the
//!   same bytes under the same keys.
//! - Each staged object is one load, identified by its key. [`lakehose_sinks::postgres::load`]
//!   claims it in `lakehose_loads` inside the COPY's transaction, so a retried or replayed
//!   load never adds rows twice.
//! - Loads of one stream run one after another (a new COPY starts when the previous one ended,
//!   as in Firehose). The log position is committed only after every load succeeded or its
//!   manifest was stored.
//! - The connection comes only from `[redshift_clusters]` in lakehose.toml (the stream's
//!   `ClusterJDBCURL` is a key into it), so API callers cannot make the server connect to
//!   arbitrary hosts.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{TimeZone, Utc};
use lakehose_api::StreamSpec;
use lakehose_api::stream::CompressionFormat;
use lakehose_log::LogRecord;
use lakehose_sinks::postgres::{self, CopySpec, Loaded};
use lakehose_sinks::retry::Failure;
use tokio::sync::watch;

use crate::delivery::Plan;
use crate::engine::{EngineConfig, StreamRuntime};
use crate::flush::{Flush, Output, OutputKind};
use crate::remote::{self, Sender};
use crate::{Error, Result};

/// Checks what only the engine knows: the cluster is mapped, the COPY options translate, and
/// `GZIP` matches the staging compression.
pub(crate) fn check(config: &EngineConfig, spec: &StreamSpec) -> lakehose_api::Result<()> {
    let Some(r) = &spec.redshift else {
        return Ok(());
    };
    let url = r.cluster_jdbc_url.as_deref().unwrap_or_default();
    if !config.redshift_clusters.contains_key(url) {
        return Err(lakehose_api::ApiError::invalid(format!(
            "ClusterJDBCURL '{url}' is not mapped to a PostgreSQL server: add it under \
             [redshift_clusters] in lakehose.toml."
        )));
    }
    let copy = copy_spec(spec)
        .map_err(|e| lakehose_api::ApiError::invalid(format!("CopyCommand: {e}.")))?;
    let gzip_staged = spec.compression() == CompressionFormat::Gzip;
    if copy.gzip != gzip_staged {
        return Err(lakehose_api::ApiError::invalid(if copy.gzip {
            "CopyCommand.CopyOptions has GZIP but S3Configuration.CompressionFormat is not GZIP."
        } else {
            "S3Configuration.CompressionFormat is GZIP: add GZIP to CopyCommand.CopyOptions."
        }));
    }
    Ok(())
}

fn copy_spec(spec: &StreamSpec) -> std::result::Result<CopySpec, String> {
    let copy = spec
        .redshift
        .as_ref()
        .and_then(|r| r.copy_command.clone())
        .unwrap_or_default();
    CopySpec::parse(
        copy.data_table_name.as_deref().unwrap_or_default(),
        copy.data_table_columns.as_deref(),
        copy.copy_options.as_deref(),
    )
}

/// One staged object to load.
pub(crate) struct Staged {
    /// Its key in the staging bucket (also the load's id).
    key: String,
    /// Its bytes as stored (compressed when the staging compression is GZIP).
    body: Bytes,
    records: u64,
    bytes: u64,
}

/// Loads staged objects into the mapped PostgreSQL server.
struct Loader {
    stream: String,
    connection: String,
    user: Option<String>,
    password: Option<String>,
    copy: CopySpec,
}

impl Sender for Loader {
    type Item = Staged;

    async fn send(&self, items: &[&Staged]) -> Vec<std::result::Result<(), Failure>> {
        let mut client = match postgres::connect(
            &self.connection,
            self.user.as_deref(),
            self.password.as_deref(),
        )
        .await
        {
            Ok(c) => c,
            Err(e) => return items.iter().map(|_| Err(e.clone())).collect(),
        };
        let mut out = Vec::with_capacity(items.len());
        for staged in items {
            let result = postgres::load(
                &mut client,
                &self.copy,
                &self.stream,
                &staged.key,
                &staged.body,
            )
            .await;
            out.push(match result {
                Ok(Loaded::Rows(rows)) => {
                    tracing::debug!(stream = %self.stream, key = %staged.key, rows, "loaded");
                    Ok(())
                }
                Ok(Loaded::AlreadyLoaded) => {
                    tracing::info!(stream = %self.stream, key = %staged.key,
                        "batch already loaded by an earlier attempt; not loading it again");
                    Ok(())
                }
                Err(e) => Err(e),
            });
        }
        out
    }
}

/// The manifest of a batch that could not be loaded, in Redshift's manifest format, so it can
/// be loaded by hand (`COPY ... MANIFEST`) once the cause is fixed.
fn manifest(bucket: &str, staged: &Staged) -> String {
    serde_json::json!({
        "entries": [{"url": format!("s3://{bucket}/{}", staged.key), "mandatory": true}]
    })
    .to_string()
}

/// `<Prefix>errors/manifests/YYYY/MM/dd/HH/<staged object's name>` (the hour of the plan's
/// oldest arrival, UTC; the name is `<stream>-<version>-<time>-<id>` and unique).
fn manifest_key(spec: &StreamSpec, plan: &Plan, staged: &Staged) -> String {
    let at = Utc
        .timestamp_millis_opt(plan.oldest_ms)
        .single()
        .unwrap_or_default();
    let prefix = spec.destination.prefix.clone().unwrap_or_default();
    let object = staged.key.rsplit('/').next().unwrap_or_default();
    let name = object.strip_suffix(".gz").unwrap_or(object);
    format!(
        "{prefix}errors/manifests/{}/{name}",
        at.format("%Y/%m/%d/%H")
    )
}

/// Stages `plan`, loads it, writes manifests of what failed for good, then commits. Returns
/// `false` if shutdown interrupted (the plan stays pending and is replayed at the next start).
pub(crate) async fn deliver(
    rt: &Arc<StreamRuntime>,
    plan: &Plan,
    records: &[LogRecord],
    shutdown: &mut watch::Receiver<bool>,
) -> Result<bool> {
    let spec = rt.spec();
    let flush = crate::flush::build(rt, plan, records).await?;
    rt.begin_delivery(plan.start, &flush);
    if !crate::flush::write(rt, plan, &flush, shutdown).await? {
        return Ok(false);
    }
    let staged: Vec<Staged> = flush
        .outputs
        .iter()
        .filter(|o| o.kind == OutputKind::Data)
        .map(|o| Staged {
            key: o.key.clone(),
            body: o.parts.concat().into(),
            records: o.records,
            bytes: o.bytes,
        })
        .collect();
    let r = spec.redshift.clone().unwrap_or_default();
    let url = r.cluster_jdbc_url.clone().unwrap_or_default();
    let connection = rt
        .config()
        .redshift_clusters
        .get(&url)
        .cloned()
        .ok_or_else(|| {
            Error::Internal(format!(
                "ClusterJDBCURL {url} is no longer mapped under [redshift_clusters]"
            ))
        })?;
    let loader = Loader {
        stream: spec.name.clone(),
        connection,
        user: r.username.clone(),
        password: r.password.clone(),
        copy: copy_spec(&spec).map_err(Error::Internal)?,
    };
    let name = spec.name.clone();
    let failed = remote::send_with_retries(
        rt,
        &loader,
        staged,
        (spec.retry_seconds() * 1000) as i64,
        shutdown,
        |s| {
            metrics::counter!("DeliveryToRedshift.Success", "stream" => name.clone()).increment(1);
            metrics::counter!("DeliveryToRedshift.Records", "stream" => name.clone())
                .increment(s.records);
            metrics::counter!("DeliveryToRedshift.Bytes", "stream" => name.clone())
                .increment(s.bytes);
        },
    )
    .await;
    let Some(failed) = failed else {
        return Ok(false);
    };
    let mut manifests = Flush::default();
    for f in failed {
        tracing::error!(stream = %name, key = %f.item.key, records = f.item.records,
            code = %f.failure.code, error = %f.failure.message, attempts = f.attempts,
            "loading into the table failed for good; a manifest of the batch goes to errors/");
        metrics::counter!("DeliveryToRedshift.ProcessingFailed", "stream" => name.clone())
            .increment(f.item.records);
        let text = manifest(spec.bucket(), &f.item);
        manifests.outputs.push(Output {
            key: manifest_key(&spec, plan, &f.item),
            records: f.item.records,
            bytes: text.len() as u64,
            parts: vec![Bytes::from(text)],
            kind: OutputKind::Error,
        });
    }
    if !crate::flush::write(rt, plan, &manifests, shutdown).await? {
        return Ok(false);
    }
    rt.commit_delivery(plan.end)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_name_the_staged_object() {
        let staged = Staged {
            key: "stage/2026/11/24/10/s-1-2026-11-24-10-00-00-abcd-ef.gz".into(),
            body: Bytes::new(),
            records: 1,
            bytes: 1,
        };
        let m: serde_json::Value = serde_json::from_str(&manifest("b", &staged)).unwrap();
        assert_eq!(
            m["entries"][0]["url"],
            "s3://b/stage/2026/11/24/10/s-1-2026-11-24-10-00-00-abcd-ef.gz"
        );
        assert_eq!(m["entries"][0]["mandatory"], true);
    }
}

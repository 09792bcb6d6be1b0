//! Wiring between the query engine and the rest: buckets as object stores, the pipeline's
//! undelivered records as the engine's fresh rows.

use std::sync::Arc;

use async_trait::async_trait;
use lakehose_pipeline::Engine;
use lakehose_query::{BucketStores, FreshBatch, FreshSnapshot, FreshSource};
use lakehose_sinks::Buckets;

/// The buckets (local folders and mapped S3 endpoints) a query reads.
#[derive(Debug)]
pub struct LakeBuckets(pub Arc<Buckets>);

impl BucketStores for LakeBuckets {
    fn store(&self, bucket: &str) -> Result<Arc<dyn object_store::ObjectStore>, String> {
        self.0
            .sink(bucket)
            .map(|s| s.store())
            .map_err(|e| e.to_string())
    }
}

/// The pipeline's acknowledged, undelivered records.
pub struct PipelineFresh(pub Arc<Engine>);

impl std::fmt::Debug for PipelineFresh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PipelineFresh")
    }
}

#[async_trait]
impl FreshSource for PipelineFresh {
    async fn snapshot(&self, database: &str, table: &str) -> Result<FreshSnapshot, String> {
        let mut rows = self
            .0
            .fresh_rows(database, table)
            .await
            .map_err(|e| e.to_string())?;
        let batches = std::mem::take(&mut rows.batches)
            .into_iter()
            .map(|(partition_values, batch)| FreshBatch {
                partition_values,
                batch,
            })
            .collect();
        Ok(FreshSnapshot {
            batches,
            exclude: Default::default(),
            exclude_fn: Some(Arc::new(move |url: &str| rows.excludes(url))),
        })
    }
}

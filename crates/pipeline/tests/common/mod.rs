//! Shared by the engine-level tests: open an engine on a data dir, create a stream delivering to
//! a local bucket, read the bucket back.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use lakehose_api::{StreamService, StreamSpec};
use lakehose_catalog::FileCatalog;
use lakehose_pipeline::{Engine, EngineConfig};
use lakehose_sinks::Buckets;

/// An engine on `dir` whose buckets are folders under `dir/buckets`.
pub async fn open(dir: &Path, config: EngineConfig) -> Arc<Engine> {
    let catalog = Arc::new(FileCatalog::open_in_data_dir(dir).unwrap());
    let buckets = Buckets::new(dir.join("buckets"), HashMap::new());
    Engine::open(dir, buckets, catalog, config).await.unwrap()
}

/// Creates stream `name` delivering to bucket `name` with 1 MB / `interval_s` buffering.
pub async fn create(engine: &Engine, name: &str, interval_s: u32, created_ms: i64) {
    let input = serde_json::from_value(serde_json::json!({
        "DeliveryStreamName": name,
        "ExtendedS3DestinationConfiguration": {
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": format!("arn:aws:s3:::{name}"),
            "BufferingHints": { "SizeInMBs": 1, "IntervalInSeconds": interval_s },
        },
    }))
    .unwrap();
    let spec = StreamSpec::from_create(input, "us-east-1", created_ms).unwrap();
    engine.create_stream(spec).await.unwrap();
}

/// The lines of every object in the bucket folder, one `Vec` per object (unordered).
pub fn objects(bucket: &Path) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![bucket.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if !path.to_string_lossy().contains('#') {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push(text.lines().map(str::to_string).collect());
            }
        }
    }
    out
}

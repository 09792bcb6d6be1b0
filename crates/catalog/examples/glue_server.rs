//! A stand-alone server answering only `AWSGlue.*` (no Firehose streams) over a `FileCatalog`,
//! with the `lakehose serve` command line the Python harness uses:
//!
//! ```text
//! cargo run -p lakehose-catalog --example glue_server -- serve --listen 127.0.0.1:0 --data-dir DIR
//! LAKEHOSE_BIN=$CARGO_TARGET_DIR/debug/examples/glue_server pytest tests/python/test_glue.py
//! ```
//!
//! It lets the catalog's client tests run before (or without) the full binary; the real server
//! registers `GlueApi` in `lakehose serve`.

use std::path::PathBuf;
use std::sync::Arc;

use lakehose_api::{ApiError, ApiState, StreamService, StreamSpec};
use lakehose_catalog::{FileCatalog, GlueApi};

struct NoStreams;

#[async_trait::async_trait]
impl StreamService for NoStreams {
    async fn create_stream(&self, _: StreamSpec) -> lakehose_api::Result<()> {
        Err(ApiError::unavailable("this server only answers AWSGlue"))
    }
    async fn delete_stream(&self, _: &str) -> lakehose_api::Result<()> {
        Err(ApiError::unavailable("this server only answers AWSGlue"))
    }
    fn stream(&self, _: &str) -> Option<StreamSpec> {
        None
    }
    fn stream_names(&self) -> Vec<String> {
        Vec::new()
    }
    async fn modify_stream(
        &self,
        _: &str,
        _: lakehose_api::SpecChange<'_>,
    ) -> lakehose_api::Result<StreamSpec> {
        Err(ApiError::unavailable("this server only answers AWSGlue"))
    }
    async fn put_records(
        &self,
        _: &str,
        _: Vec<bytes::Bytes>,
    ) -> lakehose_api::Result<lakehose_api::model::PutOutcome> {
        Err(ApiError::unavailable("this server only answers AWSGlue"))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut listen = "127.0.0.1:4573".to_string();
    let mut data_dir = PathBuf::from("lakehose-data");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "serve" => {}
            "--listen" => listen = args.next().ok_or("--listen needs a value")?,
            "--data-dir" => data_dir = args.next().ok_or("--data-dir needs a value")?.into(),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    std::fs::create_dir_all(&data_dir)?;
    let store = Arc::new(FileCatalog::open_in_data_dir(&data_dir)?);
    let app = lakehose_api::router(ApiState {
        service: Arc::new(NoStreams),
        default_region: "us-east-1".into(),
        services: vec![Arc::new(GlueApi::new(store))],
    });
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("lakehose listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        })
        .await?;
    Ok(())
}

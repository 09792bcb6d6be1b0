//! `lakehose serve`: open the engine, serve the API and `/metrics`, stop cleanly on SIGINT or
//! SIGTERM (in-flight requests finish, delivery loops stop, logs close; undelivered data stays
//! in the logs for the next start).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::routing::get;
use lakehose_api::ApiState;
use lakehose_catalog::{CatalogStore, FileCatalog, GlueApi};
use lakehose_pipeline::Engine;
use lakehose_sinks::Buckets;
use metrics_exporter_prometheus::PrometheusBuilder;

use lakehose_query::athena::AthenaApi;
use lakehose_query::{BucketStores, QueryEngine};

use crate::config::Config;
use crate::lake::{LakeBuckets, PipelineFresh};

/// Runs the server until a shutdown signal.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let recorder = PrometheusBuilder::new().build_recorder();
    let metrics = recorder.handle();
    metrics::set_global_recorder(recorder).context("installing the metrics recorder")?;

    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let catalog: Arc<dyn CatalogStore> =
        Arc::new(FileCatalog::open_in_data_dir(&config.data_dir).context("opening the catalog")?);
    let buckets = Buckets::new(config.data_dir.join("buckets"), config.buckets.clone());
    let engine = Engine::open(&config.data_dir, buckets, catalog.clone(), config.engine())
        .await
        .context("opening the data dir")?;

    let stores: Arc<dyn BucketStores> = Arc::new(LakeBuckets(engine.buckets().clone()));
    let query_engine = QueryEngine::new(catalog.clone(), stores.clone())
        .with_fresh(Arc::new(PipelineFresh(engine.clone())));
    let state = ApiState {
        service: engine.clone(),
        default_region: config.region.clone(),
        services: vec![
            Arc::new(GlueApi::new(catalog.clone())),
            Arc::new(AthenaApi::new(query_engine.clone(), stores)),
        ],
    };
    let app = lakehose_api::router(state)
        .merge(lakehose_query::http::router(query_engine))
        .route(
            "/metrics",
            get(move || std::future::ready(metrics.render())),
        )
        .route("/health", get(|| async { "ok" }));

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "lakehose serving");
    // Tests and scripts read this line to learn the port when listening on port 0.
    println!("lakehose listening on http://{addr}");

    serve_http(listener, app).await;
    tracing::info!("shutting down: stopping delivery loops");
    Arc::clone(&engine).shutdown().await;
    Ok(())
}

/// Seconds a client may take to send a request's headers before the connection is closed
/// (slow-loris protection).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Concurrent HTTP/2 streams per connection.
const MAX_H2_STREAMS: u32 = 256;

/// Accepts connections until a shutdown signal, serving HTTP/1.1 and HTTP/2 (h2c) with explicit
/// limits, then lets in-flight requests finish (up to 30 s).
async fn serve_http(listener: tokio::net::TcpListener, app: axum::Router) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::server::graceful::GracefulShutdown;

    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_H2_STREAMS)
        .max_header_list_size(64 * 1024)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let graceful = GracefulShutdown::new();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(30)) => {
            tracing::warn!("in-flight requests did not finish within 30 s of shutdown");
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

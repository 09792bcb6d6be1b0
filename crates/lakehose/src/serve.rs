//! `lakehose serve`: open the engine, serve the API and `/metrics`, stop cleanly on SIGINT or
//! SIGTERM (in-flight requests finish, delivery loops stop, logs close; undelivered data stays
//! in the logs for the next start).

use std::sync::Arc;

use anyhow::Context;
use axum::routing::get;
use lakehose_api::ApiState;
use lakehose_pipeline::Engine;
use lakehose_sinks::Buckets;
use metrics_exporter_prometheus::PrometheusBuilder;

use crate::config::Config;

/// Runs the server until a shutdown signal.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let recorder = PrometheusBuilder::new().build_recorder();
    let metrics = recorder.handle();
    metrics::set_global_recorder(recorder).context("installing the metrics recorder")?;

    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let buckets = Buckets::new(config.data_dir.join("buckets"), config.buckets.clone());
    let engine = Engine::open(&config.data_dir, buckets, config.engine())
        .await
        .context("opening the data dir")?;

    let state = ApiState {
        service: engine.clone(),
        default_region: config.region.clone(),
        services: Vec::new(),
    };
    let app = lakehose_api::router(state)
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

    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving")?;
    tracing::info!("shutting down: stopping delivery loops");
    Arc::clone(&engine).shutdown().await;
    Ok(())
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

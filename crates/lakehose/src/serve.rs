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
    config.server.validate()?;
    // Authentication is decided before anything is opened: a key mistake, or a public address
    // without keys, stops the start.
    let access_keys = access_keys(&config)?;
    // A missing or broken certificate stops the start before the data dir is opened.
    let tls = match config.tls.files()? {
        Some(files) => {
            let resolver = Arc::new(crate::tls::CertResolver::open(files)?);
            crate::tls::reload_on_sighup(resolver.clone())?;
            Some(crate::tls::acceptor(resolver)?)
        }
        None => None,
    };
    let recorder = PrometheusBuilder::new().build_recorder();
    let metrics = recorder.handle();
    metrics::set_global_recorder(recorder).context("installing the metrics recorder")?;

    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let catalog: Arc<dyn CatalogStore> =
        Arc::new(FileCatalog::open_in_data_dir(&config.data_dir).context("opening the catalog")?);
    // Encryption at rest: a keyring that cannot be read stops the start; a stream whose key is
    // not in it makes `Engine::open` fail (fail closed, nothing written in plaintext).
    let keyring = config
        .encryption
        .keyring()
        .context("loading the encryption keyring")?;
    if let Some(k) = &keyring {
        tracing::info!(keys = ?k.ids().collect::<Vec<_>>(), active = k.active_id(), "encryption keyring loaded");
    }
    let buckets = Buckets::new(config.data_dir.join("buckets"), config.buckets.clone())
        .with_keyring(keyring.clone());
    let engine_config = lakehose_pipeline::EngineConfig {
        keyring,
        ..config.engine()
    };
    // jq programs (Lakehose.Jq, MetadataExtractionQuery) run in worker processes of this
    // binary, so a runaway program fails its records instead of the server.
    let exe = std::env::current_exe().context("locating the lakehose binary for jq workers")?;
    lakehose_process::sandbox::install(lakehose_process::sandbox::SandboxConfig {
        command: lakehose_process::sandbox::worker_command(exe, config.limits.jq_memory_mib),
        timeout: std::time::Duration::from_millis(config.limits.jq_timeout_ms.max(1)),
    });
    let engine = Engine::open(&config.data_dir, buckets, catalog.clone(), engine_config)
        .await
        .context("opening the data dir")?;
    create_declared_streams(&engine, &config).await?;

    // The audit log: one line per control-plane call and console sign-in.
    let audit = config
        .audit
        .open(&config.data_dir)
        .context("opening the audit log")?;
    let stores: Arc<dyn BucketStores> = Arc::new(LakeBuckets(engine.buckets().clone()));
    let query_engine = QueryEngine::new(catalog.clone(), stores.clone())
        .with_fresh(Arc::new(PipelineFresh(engine.clone())));
    // Streaming SQL applications: those that were running start again where they stopped.
    let applications = crate::apps::Applications::open(
        &config.data_dir,
        engine.clone(),
        query_engine.clone(),
        config.egress.clone(),
    )
    .await
    .context("opening the streaming SQL applications")?;
    let state = ApiState {
        service: engine.clone(),
        default_region: config.region.clone(),
        services: vec![
            Arc::new(GlueApi::new(catalog.clone())),
            Arc::new(AthenaApi::new(query_engine.clone(), stores)),
            Arc::new(crate::apps::AnalyticsApi(applications.clone())),
        ],
        audit: audit.clone(),
    };
    // SigV4 on every API route (the AWS APIs and /v1/query), each service's requests scoped
    // to its signing name; `/health` stays open, `/metrics` needs the bearer token when one
    // is configured.
    // The console signs in with the same keys and gets each key's permissions.
    let sessions = access_keys.as_ref().map(|keys| {
        Arc::new(
            lakehose_auth::Sessions::new(keys.clone(), &config.region).with_audit(audit.clone()),
        )
    });
    let authenticator = access_keys.map(|keys| {
        let mut auth = lakehose_auth::Authenticator::new(keys);
        for service in &state.services {
            auth = auth.scope_target(service.target_prefix(), &[service.iam_prefix()]);
        }
        if let Some(sessions) = &sessions {
            auth = auth.with_sessions(sessions.clone());
        }
        Arc::new(auth)
    });
    let authenticated = |router: axum::Router| match &authenticator {
        Some(auth) => router.layer(axum::middleware::from_fn_with_state(
            auth.clone(),
            lakehose_auth::authenticate,
        )),
        None => router,
    };
    // The console's JSON API: monitoring over the engine (metric history sampled from the
    // registry `/metrics` renders) and saved dashboards.
    let console = Arc::new(crate::console_data::EngineConsole::new(
        engine.clone(),
        config.console.sample_interval(),
    ));
    console.start_sampler(metrics.clone());
    let dashboards = Arc::new(
        lakehose_console::dashboards::Dashboards::open(&config.data_dir)
            .context("opening the console's dashboards")?,
    );
    let console_api =
        lakehose_console::api::router(console, dashboards, audit.clone(), config.region.clone());
    let mut metrics_route = axum::Router::new().route(
        "/metrics",
        get(move || std::future::ready(metrics.render())),
    );
    if let Some(token) = &config.auth.metrics_bearer_token {
        anyhow::ensure!(
            !token.trim().is_empty(),
            "[auth] metrics_bearer_token is empty"
        );
        metrics_route = metrics_route.layer(axum::middleware::from_fn_with_state(
            Arc::new(lakehose_auth::BearerToken::new(token.trim())),
            lakehose_auth::require_bearer,
        ));
    }
    // Request bodies held at once, across all API calls: beyond it, calls are shed undecoded.
    // Shedding comes first (outermost), so authentication reads bodies within the budget.
    let budget = lakehose_api::shed::RequestBudget::new(config.limits.max_request_mib << 20);
    let app = authenticated(lakehose_api::router(state))
        .layer(axum::middleware::from_fn_with_state(
            budget,
            lakehose_api::shed::shed,
        ))
        .merge(authenticated(lakehose_query::http::router(
            query_engine,
            audit,
        )))
        .merge(authenticated(console_api))
        .merge(lakehose_auth::session::router(sessions))
        .merge(lakehose_console::router())
        .merge(metrics_route)
        .route("/health", get(|| async { "ok" }));

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, scheme, data_dir = %config.data_dir.display(), "lakehose serving");
    // Tests and scripts read this line to learn the port when listening on port 0.
    println!("lakehose listening on {scheme}://{addr}");

    serve_http(listener, app, config.server.clone(), tls).await;
    tracing::info!("shutting down: stopping streaming SQL applications");
    applications.shutdown().await;
    tracing::info!("shutting down: stopping delivery loops");
    Arc::clone(&engine).shutdown().await;
    Ok(())
}

/// The keys of `[auth]` (`None`: authentication off), after the loopback rule: without keys
/// the server only serves a loopback address, unless `--insecure-no-auth` was given (then it
/// warns).
fn access_keys(config: &Config) -> anyhow::Result<Option<lakehose_auth::Keyring>> {
    let keys = lakehose_auth::Keyring::from_config(&config.auth)?;
    if !keys.is_empty() {
        tracing::info!(keys = keys.len(), "SigV4 authentication on");
        return Ok(Some(keys));
    }
    if config.listen.ip().to_canonical().is_loopback() {
        return Ok(None);
    }
    anyhow::ensure!(
        config.auth.insecure_no_auth,
        "refusing to serve {} without authentication: anyone who can reach it could read and \
         change every stream. Configure access keys ([[auth.keys]] in lakehose.toml, see \
         docs/SECURITY.md), listen on a loopback address, or pass --insecure-no-auth",
        config.listen
    );
    tracing::warn!(
        listen = %config.listen,
        "--insecure-no-auth: serving a non-loopback address WITHOUT authentication; anyone \
         who can reach it can read and change every stream"
    );
    Ok(None)
}

/// Accepts connections until a shutdown signal, serving HTTP/1.1 and HTTP/2 (h2c, or h2 by
/// ALPN over TLS) with the limits of `[server]`, then lets in-flight requests finish (up to
/// 30 s).
///
/// With `tls`, each connection's handshake runs in its own task (never in the accept loop)
/// and must finish within `header_read_timeout`, so a client that connects and sends nothing
/// holds its connection slot no longer than one that sends no request head. A failed
/// handshake (plain HTTP included) closes the connection.
///
/// Slow and idle clients are bounded three ways:
/// - hyper's `header_read_timeout` for an HTTP/1 request head (hyper restarts it when a
///   kept-alive connection goes idle);
/// - an idle timeout per connection: no request in flight for `idle_timeout` (also before the
///   first request, while the protocol is not even known) closes it;
/// - a body deadline per request: a body not received within `body_read_timeout` of its head
///   makes the read fail with `io::ErrorKind::TimedOut`, which the API answers 408.
///
/// HTTP/2 floods meet h2's own guards (rapid-reset and local-error reset limits, on by
/// default) plus `h2_max_concurrent_streams`.
async fn serve_http(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: crate::config::Server,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::server::graceful::GracefulShutdown;

    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout())
        .max_buf_size(limits.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let builder = Arc::new(builder);
    let (idle_timeout, body_timeout) = (limits.idle_timeout(), limits.body_read_timeout());
    let handshake_timeout = limits.header_read_timeout();
    let graceful = GracefulShutdown::new();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    // Each connection holds hyper's read and write buffers whatever it sends: at the cap, the
    // next connection waits for a slot (and those after it in the kernel's accept queue)
    // instead of growing memory, and connections idle for a while are asked to close to make
    // room for it (see `conn_limits::permit`).
    let connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let make_room = Arc::new(tokio::sync::Notify::new());
    loop {
        let (stream, peer) = tokio::select! {
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
        // Accepted first, so that room is only made for a client that is there; it waits
        // here, holding no buffers, and the clients after it in the kernel's queue.
        let permit = tokio::select! {
            permit = conn_limits::permit(&connections, &make_room) => permit,
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let activity = conn_limits::Activity::new();
        let service = conn_limits::service(app.clone(), activity.clone(), body_timeout, peer);
        // Taken here, before any shutdown signal, so a connection still in its TLS handshake
        // at shutdown is drained like the others once the handshake ends.
        let watcher = graceful.watcher();
        let (builder, tls, make_room) = (builder.clone(), tls.clone(), make_room.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let serve = async move {
                let Some(io) = handshake(stream, peer, tls, handshake_timeout).await else {
                    return;
                };
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
                if let Err(e) = watcher.watch(conn.into_owned()).await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            };
            tokio::select! {
                () = serve => {},
                () = activity.idle_for(idle_timeout) => {
                    tracing::debug!("closing a connection idle for {idle_timeout:?}");
                }
                () = activity.idle_when_asked(&make_room) => {
                    tracing::debug!("closing an idle connection to make room for a new one");
                }
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

/// Creates the streams `[[streams]]` declares that do not exist yet, each checked as the API's
/// `CreateDeliveryStream` checks it; a declaration the API would refuse stops the start.
async fn create_declared_streams(engine: &Engine, config: &Config) -> anyhow::Result<()> {
    use lakehose_api::StreamService;
    for (i, declared) in config.streams.iter().enumerate() {
        let name = declared
            .get("DeliveryStreamName")
            .and_then(|n| n.as_str())
            .with_context(|| format!("[[streams]] entry {} has no DeliveryStreamName", i + 1))?;
        if engine.stream(name).is_some() {
            tracing::info!(stream = name, "declared stream exists; left as it is");
            continue;
        }
        let body = serde_json::to_vec(declared)?;
        let spec = lakehose_api::handler::create_request_spec(&body, &config.region)
            .map_err(|e| anyhow::anyhow!("[[streams]] entry {} ({name}): {e}", i + 1))?;
        engine
            .create_stream(spec)
            .await
            .map_err(|e| anyhow::anyhow!("creating declared stream {name}: {e}"))?;
        tracing::info!(stream = name, "declared stream created");
    }
    Ok(())
}

/// The connection's byte stream: the TCP stream as accepted, or with `tls` the TLS stream once
/// its handshake is done within `timeout` (`None` when it failed or timed out; the connection
/// is then dropped).
async fn handshake(
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    timeout: Duration,
) -> Option<Box<dyn conn_limits::Io>> {
    let Some(acceptor) = tls else {
        return Some(Box::new(stream));
    };
    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Some(Box::new(stream)),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "no TLS handshake within {timeout:?}");
            None
        }
    }
}

/// Per-connection bookkeeping for the idle timeout and the request body deadline.
mod conn_limits {
    use std::convert::Infallible;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};
    use std::time::Duration;

    use axum::body::Body;
    use bytes::Bytes;
    use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
    use hyper::{Request, Response};
    use tokio::io::{AsyncRead, AsyncWrite};
    use tokio::time::{Instant, Sleep};

    /// A connection's byte stream, plain TCP or TLS, behind one type so both are served by
    /// the same code.
    pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
    impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

    /// Requests in flight on one connection, and since when none has been. Requests only
    /// update it (no wake-ups); the idle check sleeps until the earliest time the connection
    /// could have been idle long enough, then looks again.
    #[derive(Clone)]
    pub(super) struct Activity(Arc<Mutex<(usize, Instant)>>);

    /// One request in flight; dropped when its response body is done (or abandoned).
    pub(super) struct InFlight(Activity);

    impl Activity {
        pub(super) fn new() -> Self {
            Self(Arc::new(Mutex::new((0, Instant::now()))))
        }

        fn state(&self) -> std::sync::MutexGuard<'_, (usize, Instant)> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }

        fn begin(&self) -> InFlight {
            self.state().0 += 1;
            InFlight(self.clone())
        }

        /// Completes once the connection has had no request in flight for `limit`.
        pub(super) async fn idle_for(&self, limit: Duration) {
            loop {
                let (in_flight, since) = *self.state();
                let now = Instant::now();
                let next = if in_flight == 0 {
                    if now >= since + limit {
                        return;
                    }
                    since + limit
                } else {
                    now + limit
                };
                tokio::time::sleep_until(next).await;
            }
        }
    }

    /// How long a connection must have been idle to be closed for a new one at the cap: the
    /// clients most likely to send on a kept-alive connection are the ones that just used it,
    /// and closing one as its next request arrives costs that client a retry.
    const IDLE_BEFORE_MAKING_ROOM: Duration = Duration::from_secs(1);
    /// How often, while the connection cap is reached, idle connections are asked again.
    const MAKE_ROOM_EVERY: Duration = Duration::from_millis(100);

    /// A connection slot: at once when one is free; at the cap, idle connections are asked to
    /// close (`make_room`) every [`MAKE_ROOM_EVERY`] until one frees up. Without it a client
    /// pool holding the cap's worth of kept-alive connections idle locks new clients out (in
    /// the accept queue, then in SYN retries) until hyper's header timeout closes them, 10 s by
    /// default. The overload test's release runs at 5x showed 1,024 connections open, more
    /// queued, and the server mostly idle.
    pub(super) async fn permit(
        connections: &Arc<tokio::sync::Semaphore>,
        make_room: &tokio::sync::Notify,
    ) -> tokio::sync::OwnedSemaphorePermit {
        loop {
            if let Ok(permit) = connections.clone().try_acquire_owned() {
                return permit;
            }
            make_room.notify_waiters();
            if let Ok(permit) =
                tokio::time::timeout(MAKE_ROOM_EVERY, connections.clone().acquire_owned()).await
            {
                return permit.expect("never closed");
            }
        }
    }

    impl Activity {
        /// Completes when `make_room` is notified while the connection has had no request in
        /// flight for [`IDLE_BEFORE_MAKING_ROOM`].
        pub(super) async fn idle_when_asked(&self, make_room: &tokio::sync::Notify) {
            loop {
                make_room.notified().await;
                let (in_flight, since) = *self.state();
                if in_flight == 0 && since.elapsed() >= IDLE_BEFORE_MAKING_ROOM {
                    return;
                }
            }
        }
    }

    impl Drop for InFlight {
        fn drop(&mut self) {
            let mut state = self.0.state();
            state.0 -= 1;
            if state.0 == 0 {
                state.1 = Instant::now();
            }
        }
    }

    /// The connection's service: `app`, with each request counted in `activity` until its
    /// response body is done, each request body bounded by `body_timeout`, and the peer's
    /// address in each request's extensions (`ConnectInfo`, for the audit log).
    pub(super) fn service(
        app: axum::Router,
        activity: Activity,
        body_timeout: Duration,
        peer: std::net::SocketAddr,
    ) -> impl hyper::service::Service<
        Request<Incoming>,
        Response = Response<Body>,
        Error = Infallible,
        Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
    > + Clone {
        let inner = hyper_util::service::TowerToHyperService::new(app);
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let in_flight = activity.begin();
            let mut req = req;
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            let req = req.map(|body| DeadlineBody {
                inner: body,
                timeout: body_timeout,
                started: Instant::now(),
                deadline: None,
            });
            let response = hyper::service::Service::call(&inner, req);
            async move {
                let response = response.await?;
                Ok(response.map(|body| {
                    Body::new(CountedBody {
                        inner: body,
                        _in_flight: in_flight,
                    })
                }))
            }
        })
    }

    /// A request body that fails with `io::ErrorKind::TimedOut` once `timeout` has passed
    /// since the request head and the next frame is still not there.
    struct DeadlineBody {
        inner: Incoming,
        timeout: Duration,
        started: Instant,
        deadline: Option<Pin<Box<Sleep>>>,
    }

    impl HttpBody for DeadlineBody {
        type Data = Bytes;
        type Error = Box<dyn std::error::Error + Send + Sync>;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            let this = &mut *self;
            if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
                return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
            }
            let (started, timeout) = (this.started, this.timeout);
            let deadline = this
                .deadline
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(started + timeout)));
            match deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("the request body was not received within {timeout:?}"),
                ))))),
                Poll::Pending => Poll::Pending,
            }
        }

        fn is_end_stream(&self) -> bool {
            self.inner.is_end_stream()
        }

        fn size_hint(&self) -> SizeHint {
            self.inner.size_hint()
        }
    }

    /// A response body holding its request's [`InFlight`] until it is done or dropped.
    struct CountedBody {
        inner: Body,
        _in_flight: InFlight,
    }

    impl HttpBody for CountedBody {
        type Data = Bytes;
        type Error = axum::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Pin::new(&mut self.inner).poll_frame(cx)
        }

        fn is_end_stream(&self) -> bool {
            self.inner.is_end_stream()
        }

        fn size_hint(&self) -> SizeHint {
            self.inner.size_hint()
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

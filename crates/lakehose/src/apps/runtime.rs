//! Running one streaming SQL application: the streams' logs in, results out, exactly once.
//!
//! The loop reads each source stream's write-ahead log from its own position, feeds the
//! records to the pumps ([`lakehose_analytics::Pump`]), and handles what they emit in three
//! durable steps:
//!
//! 1. **Checkpoint** (`state.json`, replaced atomically): the new read positions, every
//!    pump's snapshot and the emitted records (the *outbox*), all at once. Only then is the
//!    source logs' retention hold moved up to the new positions.
//! 2. **Deliver** the outbox: records for a delivery stream are put through the same path as
//!    `PutRecordBatch`; records for an HTTP endpoint are POSTed (retried until accepted).
//!    Before the first record goes to a stream, a hold named after the application is set on
//!    that stream's log at its durable end.
//! 3. **Clear** the outbox in a second checkpoint, then release the output holds.
//!
//! Why nothing is lost or repeated after a crash: a crash before (1) replays the log from the
//! previous positions, and pumps are deterministic ([`lakehose_analytics::pump`]), so the same
//! results come again. A crash after (1) restarts with the outbox: records for an HTTP
//! endpoint are sent again with the same request id; records for a stream are first looked
//! for in the stream's log from the output hold on, and only those not found are put (a
//! record counts as found when its exact bytes are there, as many times as the outbox holds
//! it). Pumps keep no wall-clock state except processing-time firing, which is checkpointed
//! with the results it produced.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use lakehose_analytics::{Application, Input, Rejected, to_json_records};
use lakehose_api::model::RecordOutcome;
use lakehose_api::service::StreamService;
use lakehose_pipeline::{Engine, StreamRuntime};
use lakehose_sinks::transport::HttpClient;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// Records read from one source per round, at most.
const ROUND_RECORDS: usize = 50_000;
/// Bytes read from one source per round, at most.
const ROUND_BYTES: usize = 32 << 20;
/// A checkpoint is written at least this often while input flows (bounds replay after a
/// crash), and always before results are delivered.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Processing-time windows close this long after the clock passes their end (records stamped
/// just before the end may still be on their way into the log).
const PROCESSING_TIME_GRACE_MS: i64 = 1_000;
/// How often the loop wakes without new input (processing-time windows, stop requests).
const TICK: Duration = Duration::from_millis(200);
/// Rejected records remembered for DescribeApplication when no error output is configured.
const RECENT_REJECTED: usize = 100;

/// Where a pump's rows go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Target {
    Stream(String),
    Http(String),
}

/// Where an application reads from when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartingPosition {
    /// The end of each source's log: only records that arrive from now on.
    Now,
    /// The oldest record each source's log still holds.
    TrimHorizon,
    /// Where the application stopped (`Now` when it never ran).
    LastStoppedPoint,
}

/// The checkpoint: positions, pump snapshots and the outbox.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// The application version the snapshots belong to (a new version starts empty windows).
    version: u64,
    /// Next seq to read, by source stream.
    positions: BTreeMap<String, u64>,
    /// Pump snapshots (base64), by pump name.
    pumps: BTreeMap<String, String>,
    /// Number of the last outbox (request ids of HTTP deliveries).
    outbox_id: u64,
    /// Results checkpointed but not known to be delivered.
    outbox: Vec<Outgoing>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Outgoing {
    target: Target,
    /// One JSON document per record.
    records: Vec<String>,
}

/// What a running application shows (DescribeApplication, the console, `/metrics`).
#[derive(Debug, Default)]
pub(crate) struct RunStatus {
    /// Why the application stopped by itself.
    pub failure: Mutex<Option<String>>,
    /// The newest rejected records, when no error output is configured.
    pub recent_rejected: Mutex<std::collections::VecDeque<serde_json::Value>>,
    pub pumps: Mutex<BTreeMap<String, PumpStatus>>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct PumpStatus {
    pub input_records: u64,
    pub output_records: u64,
    pub late_records: u64,
    pub failed_records: u64,
    pub watermark_ms: Option<i64>,
    pub open_windows: usize,
}

/// One source stream and the pumps that read it.
struct Source {
    table: String,
    stream: String,
    runtime: Arc<StreamRuntime>,
    position: u64,
    pumps: Vec<usize>,
    /// Where rejected records go (`'error-output.stream'`).
    errors: Option<String>,
}

/// What one application run needs from the server.
pub(crate) struct RunContext {
    pub name: String,
    pub version: u64,
    pub dir: PathBuf,
    pub engine: Arc<Engine>,
    pub http: Arc<HttpClient>,
    pub status: Arc<RunStatus>,
}

impl RunContext {
    fn hold_name(&self) -> String {
        format!("analytics.{}", self.name)
    }
}

fn state_path(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

fn load_state(dir: &Path) -> Result<State, String> {
    match std::fs::read(state_path(dir)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| format!("the application's checkpoint is damaged: {e}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(format!("reading the application's checkpoint: {e}")),
    }
}

fn save_state(dir: &Path, state: &State) -> Result<(), String> {
    let bytes = serde_json::to_vec(state).map_err(|e| e.to_string())?;
    crate::apps::write_atomic(&state_path(dir), &bytes)
        .map_err(|e| format!("writing the application's checkpoint: {e}"))
}

/// Removes what a run leaves in the logs (the source and output holds), for a deleted
/// application.
pub(crate) fn release_holds(engine: &Engine, name: &str) {
    let hold = format!("analytics.{name}");
    for stream in engine.all_streams() {
        let log = stream.log();
        for h in [hold.clone(), format!("{hold}.out")] {
            if log.holds().contains_key(&h)
                && let Err(e) = log.release_hold(&h)
            {
                tracing::warn!(application = name, error = %e, "cannot release a retention hold");
            }
        }
    }
}

/// Binds the application to the server's streams: every source and sink must exist.
fn bind(
    ctx: &RunContext,
    app: &Application,
) -> Result<(Vec<Source>, BTreeMap<String, Target>), String> {
    let stream_of = |table: &str| -> Result<String, String> {
        app.option(table, "stream").map(str::to_string).ok_or_else(|| {
            format!("`{table}` names no delivery stream: add WITH ('connector' = 'firehose', 'stream' = 'NAME')")
        })
    };
    let mut sources: Vec<Source> = Vec::new();
    let mut sinks = BTreeMap::new();
    for (i, pump) in app.pumps.iter().enumerate() {
        let def = pump.definition();
        // A window join reads several sources: it is fed by each.
        for table in pump.sources() {
            match sources.iter_mut().find(|s| s.table == table) {
                Some(s) => s.pumps.push(i),
                None => {
                    let stream = stream_of(table)?;
                    // Positions and retention holds are kept per stream.
                    if let Some(other) = sources.iter().find(|s| s.stream == stream) {
                        return Err(format!(
                            "sources `{}` and `{table}` read the same delivery stream {stream}; an application reads a stream through one source",
                            other.table
                        ));
                    }
                    let runtime = ctx.engine.runtime(&stream).ok_or_else(|| {
                        format!("source `{table}`: delivery stream {stream} does not exist")
                    })?;
                    let errors = app.option(table, "error-output.stream").map(str::to_string);
                    if let Some(e) = &errors
                        && ctx.engine.runtime(e).is_none()
                    {
                        return Err(format!(
                            "source `{table}`: error output stream {e} does not exist"
                        ));
                    }
                    sources.push(Source {
                        table: table.to_string(),
                        stream,
                        runtime,
                        position: 0,
                        pumps: vec![i],
                        errors,
                    });
                }
            }
        }
        let connector = app.option(&def.sink, "connector").unwrap_or("firehose");
        let target = match connector {
            "firehose" => {
                let stream = stream_of(&def.sink)?;
                if ctx.engine.runtime(&stream).is_none() {
                    return Err(format!(
                        "sink `{}`: delivery stream {stream} does not exist",
                        def.sink
                    ));
                }
                Target::Stream(stream)
            }
            "http" => {
                let url = app.option(&def.sink, "url").ok_or_else(|| {
                    format!(
                        "sink `{}`: an HTTP sink needs WITH ('url' = 'https://...')",
                        def.sink
                    )
                })?;
                Target::Http(url.to_string())
            }
            other => {
                return Err(format!(
                    "sink `{}`: unknown connector '{other}' (firehose or http)",
                    def.sink
                ));
            }
        };
        sinks.insert(def.sink.clone(), target);
    }
    Ok((sources, sinks))
}

/// Checks that `app` can run here (its streams exist) and fixes where it starts reading
/// each source stream, pinning those positions with the application's retention hold. Called
/// before StartApplication answers, so `NOW` means the moment of the call: a record
/// acknowledged after it is read, however long the application's thread takes to start.
pub(crate) fn starting_positions(
    ctx: &RunContext,
    app: &Application,
    start: StartingPosition,
) -> Result<BTreeMap<String, u64>, String> {
    let (sources, _) = bind(ctx, app)?;
    let state = load_state(&ctx.dir)?;
    let mut positions = BTreeMap::new();
    for s in &sources {
        let log = s.runtime.log();
        let end = log.durable().borrow().next_seq;
        let oldest = log.oldest_retained_seq();
        let position = match (start, state.positions.get(&s.stream)) {
            (StartingPosition::TrimHorizon, _) => oldest,
            (StartingPosition::LastStoppedPoint, Some(&p)) => p.clamp(oldest, end),
            _ => end,
        };
        log.set_hold(&ctx.hold_name(), position)
            .map_err(|e| format!("stream {}: {e}", s.stream))?;
        positions.insert(s.stream.clone(), position);
    }
    Ok(positions)
}

/// Runs `app` until `stop` turns true or it fails; the failure is returned (and kept in the
/// status).
pub(crate) async fn run(
    ctx: RunContext,
    mut app: Application,
    positions: BTreeMap<String, u64>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), String> {
    if failpoint_set("slow-start") {
        // Test hook: a thread that is slow to start must not move the starting positions.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let result = run_inner(&ctx, &mut app, &positions, &mut stop).await;
    if let Err(e) = &result {
        tracing::error!(application = %ctx.name, error = %e, "streaming SQL application stopped");
        *ctx.status.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.clone());
    }
    result
}

async fn run_inner(
    ctx: &RunContext,
    app: &mut Application,
    positions: &BTreeMap<String, u64>,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let (mut sources, sinks) = bind(ctx, app)?;
    let mut state = load_state(&ctx.dir)?;
    if state.version == ctx.version {
        for pump in &mut app.pumps {
            if let Some(snapshot) = state.pumps.get(pump.name()) {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(snapshot)
                    .map_err(|e| format!("pump {}: damaged snapshot: {e}", pump.name()))?;
                pump.restore(&bytes).map_err(|e| e.to_string())?;
            }
        }
    } else {
        // New code: windows start empty; reading goes on from the saved positions.
        state.pumps.clear();
        state.version = ctx.version;
    }
    // Counters continue from the snapshot: /metrics counts only what this run adds.
    publish_status(ctx, app, false);
    for s in &mut sources {
        // Fixed (and held) by `starting_positions` when the application was started.
        s.position = *positions
            .get(&s.stream)
            .ok_or_else(|| format!("no starting position for stream {}", s.stream))?;
    }
    // Results checkpointed before a crash or stop: deliver them first.
    if !state.outbox.is_empty() {
        deliver(ctx, &state, true, stop).await?;
        state.outbox.clear();
        save_state(&ctx.dir, &state)?;
    }
    release_output_holds(ctx, &sinks);

    // Subscribed once, so a commit that lands while a round runs still wakes the next wait.
    let mut watches: Vec<_> = sources.iter().map(|s| s.runtime.log().durable()).collect();
    let mut last_checkpoint = Instant::now();
    let mut dirty = false;
    loop {
        if *stop.borrow() {
            break;
        }
        let mut outgoing: Vec<Outgoing> = Vec::new();
        let mut read_any = false;
        let mut caught_up = true;
        for s in &mut sources {
            let (records, next, more) = read_round(&s.runtime, s.position)
                .map_err(|e| format!("reading stream {}: {e}", s.stream))?;
            caught_up &= !more;
            if records.is_empty() {
                s.position = next;
                continue;
            }
            read_any = true;
            let inputs: Vec<Input> = records
                .iter()
                .map(|r| Input {
                    data: &r.data,
                    arrival_ms: r.arrival_ms,
                })
                .collect();
            for &i in &s.pumps {
                let pump = &mut app.pumps[i];
                let outcome = pump
                    .push_from(&s.table, &inputs)
                    .await
                    .map_err(|e| e.to_string())?;
                let target = &sinks[&pump.definition().sink];
                push_rows(&mut outgoing, target, &outcome.rows)?;
                reject(
                    ctx,
                    &mut outgoing,
                    s,
                    pump.name(),
                    &records,
                    &outcome.rejected,
                );
            }
            s.position = next;
        }
        if caught_up {
            // The clock moves processing-time windows, and event-time sources silent beyond
            // their idle timeout.
            let now = chrono_now_ms() - PROCESSING_TIME_GRACE_MS;
            for pump in app.pumps.iter_mut() {
                let outcome = pump.tick(now).await.map_err(|e| e.to_string())?;
                let target = &sinks[&pump.definition().sink];
                push_rows(&mut outgoing, target, &outcome.rows)?;
            }
        }
        dirty |= read_any;
        publish_status(ctx, app, true);
        let has_output = outgoing.iter().any(|o| !o.records.is_empty());
        if has_output || (dirty && last_checkpoint.elapsed() >= CHECKPOINT_EVERY) {
            outgoing.retain(|o| !o.records.is_empty());
            state.outbox = outgoing;
            if has_output {
                state.outbox_id += 1;
            }
            checkpoint(ctx, app, &sources, &mut state)?;
            last_checkpoint = Instant::now();
            dirty = false;
            if has_output {
                failpoint("after-checkpoint");
                deliver(ctx, &state, false, stop).await?;
                state.outbox.clear();
                save_state(&ctx.dir, &state)?;
                release_output_holds(ctx, &sinks);
            }
        }
        if read_any && !caught_up {
            continue;
        }
        wait_for_input(&mut watches, stop).await;
    }
    // A clean stop: remember where every pump is.
    checkpoint(ctx, app, &sources, &mut state)?;
    Ok(())
}

/// Crash-test hook: with `LAKEHOSE_ANALYTICS_FAILPOINT=NAME` in the environment the process
/// aborts at the point called `NAME` (`after-checkpoint`: results checkpointed, none delivered;
/// `mid-delivery`: some delivered), so the recovery of each can be tested deterministically.
/// (`slow-start` instead delays each application's start by 2 s.)
fn failpoint(name: &str) {
    if failpoint_set(name) {
        eprintln!("lakehose: failpoint {name}: aborting");
        std::process::abort();
    }
}

fn failpoint_set(name: &str) -> bool {
    std::env::var("LAKEHOSE_ANALYTICS_FAILPOINT").is_ok_and(|v| v == name)
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Reads from `from` up to the durable end (bounded per round). Returns the records, the next
/// position, and whether more remain. A position below what the log still holds (the
/// application was stopped while delivery reclaimed) moves to the oldest record, and the
/// skipped records are counted.
fn read_round(
    runtime: &StreamRuntime,
    from: u64,
) -> Result<(Vec<lakehose_log::LogRecord>, u64, bool), String> {
    let log = runtime.log();
    let end = log.durable().borrow().next_seq;
    let oldest = log.oldest_retained_seq();
    let mut from = from;
    if from < oldest {
        tracing::warn!(
            stream = runtime.spec().name,
            skipped = oldest - from,
            "records were reclaimed before the application read them"
        );
        metrics::counter!("Analytics.SkippedRecords", "stream" => runtime.spec().name)
            .increment(oldest - from);
        from = oldest;
    }
    if from >= end {
        return Ok((Vec::new(), from, false));
    }
    let mut reader = log.reader(from).map_err(|e| e.to_string())?;
    let mut records = Vec::new();
    let mut bytes = 0;
    let mut next = from;
    while next < end && records.len() < ROUND_RECORDS && bytes < ROUND_BYTES {
        match reader.next().map_err(|e| e.to_string())? {
            Some(r) if r.seq < end => {
                next = r.seq + 1;
                bytes += r.data.len();
                records.push(r);
            }
            _ => break,
        }
    }
    if next == from {
        // Only damaged records (skipped by the reader) up to the end.
        next = end;
    }
    Ok((records, next, next < end))
}

fn push_rows(
    outgoing: &mut Vec<Outgoing>,
    target: &Target,
    rows: &[datafusion::arrow::array::RecordBatch],
) -> Result<(), String> {
    if rows.is_empty() {
        return Ok(());
    }
    let records = to_json_records(rows).map_err(|e| e.to_string())?;
    let records = records
        .into_iter()
        .map(|r| String::from_utf8(r).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    match outgoing.iter_mut().find(|o| &o.target == target) {
        Some(o) => o.records.extend(records),
        None => outgoing.push(Outgoing {
            target: target.clone(),
            records,
        }),
    }
    Ok(())
}

/// Rejected records: an error document each, to the source's error output or the status.
fn reject(
    ctx: &RunContext,
    outgoing: &mut Vec<Outgoing>,
    source: &Source,
    pump: &str,
    records: &[lakehose_log::LogRecord],
    rejected: &[Rejected],
) {
    for r in rejected {
        let record = &records[r.index];
        let doc = serde_json::json!({
            "application": ctx.name,
            "pump": pump,
            "stream": source.stream,
            "errorCode": r.code,
            "errorMessage": r.message,
            "approximateArrivalTimestamp": record.arrival_ms,
            "rawData": base64::engine::general_purpose::STANDARD.encode(&record.data),
        });
        match &source.errors {
            Some(stream) => {
                let target = Target::Stream(stream.clone());
                let line = format!("{doc}\n");
                match outgoing.iter_mut().find(|o| o.target == target) {
                    Some(o) => o.records.push(line),
                    None => outgoing.push(Outgoing {
                        target,
                        records: vec![line],
                    }),
                }
            }
            None => {
                let mut recent = ctx
                    .status
                    .recent_rejected
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                if recent.len() == RECENT_REJECTED {
                    recent.pop_front();
                }
                recent.push_back(doc);
            }
        }
    }
}

fn checkpoint(
    ctx: &RunContext,
    app: &mut Application,
    sources: &[Source],
    state: &mut State,
) -> Result<(), String> {
    for pump in &mut app.pumps {
        let bytes = pump.snapshot().map_err(|e| e.to_string())?;
        state.pumps.insert(
            pump.name().to_string(),
            base64::engine::general_purpose::STANDARD.encode(bytes),
        );
    }
    for s in sources {
        state.positions.insert(s.stream.clone(), s.position);
    }
    save_state(&ctx.dir, state)?;
    for s in sources {
        s.runtime
            .log()
            .set_hold(&ctx.hold_name(), s.position)
            .map_err(|e| format!("stream {}: {e}", s.stream))?;
    }
    metrics::counter!("Analytics.Checkpoints", "application" => ctx.name.clone()).increment(1);
    Ok(())
}

fn release_output_holds(ctx: &RunContext, sinks: &BTreeMap<String, Target>) {
    let hold = format!("{}.out", ctx.hold_name());
    for target in sinks.values() {
        if let Target::Stream(stream) = target
            && let Some(rt) = ctx.engine.runtime(stream)
            && rt.log().holds().contains_key(&hold)
            && let Err(e) = rt.log().release_hold(&hold)
        {
            tracing::warn!(application = %ctx.name, stream, error = %e, "cannot release an output hold");
        }
    }
}

/// Delivers the checkpointed outbox, retrying until done or stopped.
async fn deliver(
    ctx: &RunContext,
    state: &State,
    recovering: bool,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    for (n, out) in state.outbox.iter().enumerate() {
        match &out.target {
            Target::Stream(stream) => {
                deliver_to_stream(ctx, stream, &out.records, recovering, stop).await?
            }
            Target::Http(url) => {
                let request_id = format!("{}-{}-{n}", ctx.name, state.outbox_id);
                deliver_to_http(ctx, url, &request_id, &out.records, stop).await?;
            }
        }
        metrics::counter!("Analytics.DeliveredRecords", "application" => ctx.name.clone())
            .increment(out.records.len() as u64);
    }
    Ok(())
}

async fn backoff(attempt: &mut u32, stop: &mut watch::Receiver<bool>) -> Result<(), String> {
    let wait = Duration::from_millis(200u64 << (*attempt).min(7));
    *attempt += 1;
    tokio::select! {
        _ = tokio::time::sleep(wait) => Ok(()),
        _ = stop.changed() => Err("stopped before the results were delivered; they will be on the next start".into()),
    }
}

async fn deliver_to_stream(
    ctx: &RunContext,
    stream: &str,
    records: &[String],
    recovering: bool,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let hold = format!("{}.out", ctx.hold_name());
    let runtime = ctx
        .engine
        .runtime(stream)
        .ok_or_else(|| format!("output stream {stream} no longer exists"))?;
    let log = runtime.log();
    let mut pending: Vec<&String> = records.iter().collect();
    match log.holds().get(&hold) {
        Some(&from) if recovering => {
            let delivered = find_delivered(log, from, records)?;
            pending = remove_delivered(records, delivered);
        }
        _ => {
            let end = log.durable().borrow().next_seq;
            log.set_hold(&hold, end)
                .map_err(|e| format!("stream {stream}: {e}"))?;
        }
    }
    let mut attempt = 0;
    while !pending.is_empty() {
        let mut chunk = Vec::new();
        let mut size = 0;
        for r in pending.iter().take(500) {
            if size + r.len() > 4 << 20 && !chunk.is_empty() {
                break;
            }
            size += r.len();
            chunk.push(Bytes::copy_from_slice(r.as_bytes()));
        }
        let n = chunk.len();
        let outcome = ctx.engine.put_records(stream, chunk).await;
        let failed: Vec<usize> = match outcome {
            Ok(o) => o
                .records
                .iter()
                .enumerate()
                .filter(|(_, r)| matches!(r, RecordOutcome::Failed { .. }))
                .map(|(i, _)| i)
                .collect(),
            Err(e) if e.kind.retryable() => (0..n).collect(),
            Err(e) => return Err(format!("putting results into {stream}: {e}")),
        };
        let retry: Vec<&String> = failed.iter().map(|&i| pending[i]).collect();
        pending = retry
            .into_iter()
            .chain(pending[n..].iter().copied())
            .collect();
        if !pending.is_empty() {
            failpoint("mid-delivery");
        }
        if !failed.is_empty() {
            backoff(&mut attempt, stop).await?;
        }
    }
    Ok(())
}

/// How many times each record of `records` is in the log from `from` on.
fn find_delivered(
    log: &lakehose_log::Log,
    from: u64,
    records: &[String],
) -> Result<HashMap<Vec<u8>, usize>, String> {
    let mut wanted: HashMap<&[u8], usize> = HashMap::new();
    for r in records {
        *wanted.entry(r.as_bytes()).or_default() += 1;
    }
    let mut found: HashMap<Vec<u8>, usize> = HashMap::new();
    let end = log.durable().borrow().next_seq;
    let mut reader = log
        .reader(from.max(log.oldest_retained_seq()))
        .map_err(|e| e.to_string())?;
    while let Some(r) = reader.next().map_err(|e| e.to_string())? {
        if r.seq >= end {
            break;
        }
        if let Some(&want) = wanted.get(r.data.as_ref()) {
            let n = found.entry(r.data.to_vec()).or_default();
            if *n < want {
                *n += 1;
            }
        }
    }
    Ok(found)
}

fn remove_delivered(records: &[String], mut delivered: HashMap<Vec<u8>, usize>) -> Vec<&String> {
    records
        .iter()
        .filter(|r| match delivered.get_mut(r.as_bytes()) {
            Some(n) if *n > 0 => {
                *n -= 1;
                false
            }
            _ => true,
        })
        .collect()
}

async fn deliver_to_http(
    ctx: &RunContext,
    url: &str,
    request_id: &str,
    records: &[String],
    stop: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let rows: Vec<serde_json::Value> = records
        .iter()
        .map(|r| serde_json::from_str(r).unwrap_or(serde_json::Value::String(r.clone())))
        .collect();
    let body = serde_json::json!({
        "application": ctx.name,
        "requestId": request_id,
        "timestamp": chrono_now_ms(),
        "records": rows,
    });
    let body = Bytes::from(serde_json::to_vec(&body).map_err(|e| e.to_string())?);
    let headers = [
        ("Content-Type", "application/json".to_string()),
        ("X-Lakehose-Request-Id", request_id.to_string()),
    ];
    let mut attempt = 0;
    loop {
        match ctx
            .http
            .post(
                url,
                &headers,
                body.clone(),
                64 << 10,
                Duration::from_secs(30),
            )
            .await
        {
            Ok(r) if (200..300).contains(&r.status) => return Ok(()),
            Ok(r) => {
                tracing::warn!(application = %ctx.name, url, status = r.status, "HTTP sink refused the results; retrying");
            }
            Err(e) => {
                tracing::warn!(application = %ctx.name, url, error = %e, "HTTP sink unreachable; retrying");
            }
        }
        metrics::counter!("Analytics.DeliveryRetries", "application" => ctx.name.clone())
            .increment(1);
        backoff(&mut attempt, stop).await?;
    }
}

/// Updates the status and, with `count`, adds what the pumps did since the last call to the
/// `/metrics` counters.
fn publish_status(ctx: &RunContext, app: &Application, count: bool) {
    let now = chrono_now_ms();
    let mut pumps = ctx.status.pumps.lock().unwrap_or_else(|e| e.into_inner());
    for pump in &app.pumps {
        let stats = pump.stats();
        let name = pump.name().to_string();
        let labels = [("application", ctx.name.clone()), ("pump", name.clone())];
        let prev = pumps.get(&name).cloned().unwrap_or_default();
        if count {
            add_counts(&labels, &stats, &prev);
        }
        if let Some(wm) = pump.watermark() {
            metrics::gauge!("Analytics.WatermarkLagMillis", &labels).set((now - wm).max(0) as f64);
        }
        metrics::gauge!("Analytics.OpenWindows", &labels).set(pump.open_windows() as f64);
        pumps.insert(
            name,
            PumpStatus {
                input_records: stats.input_records,
                output_records: stats.output_rows,
                late_records: stats.late_records,
                failed_records: stats.failed_records,
                watermark_ms: pump.watermark(),
                open_windows: pump.open_windows(),
            },
        );
    }
}

fn add_counts(
    labels: &[(&'static str, String); 2],
    stats: &lakehose_analytics::PumpStats,
    prev: &PumpStatus,
) {
    metrics::counter!("Analytics.InputRecords", labels)
        .increment(stats.input_records.saturating_sub(prev.input_records));
    metrics::counter!("Analytics.OutputRecords", labels)
        .increment(stats.output_rows.saturating_sub(prev.output_records));
    metrics::counter!("Analytics.LateRecords", labels)
        .increment(stats.late_records.saturating_sub(prev.late_records));
    metrics::counter!("Analytics.FailedRecords", labels)
        .increment(stats.failed_records.saturating_sub(prev.failed_records));
}

/// Waits until a source has new durable records, the tick passes, or a stop is asked.
async fn wait_for_input(
    watches: &mut [watch::Receiver<lakehose_log::Durable>],
    stop: &mut watch::Receiver<bool>,
) {
    let any = !watches.is_empty();
    let changed = futures::future::select_all(
        watches
            .iter_mut()
            .map(|w| Box::pin(async move { w.changed().await.ok() })),
    );
    tokio::select! {
        _ = changed, if any => {}
        _ = tokio::time::sleep(TICK) => {}
        _ = stop.changed() => {}
    }
}

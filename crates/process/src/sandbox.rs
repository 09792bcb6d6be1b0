//! jq programs run in worker processes, so that a hostile or runaway program (`def f: [f];
//! f` overflows the stack, `[range(1e10)]` exhausts memory, `def f: f; f` never ends) fails
//! its records instead of taking the server down.
//!
//! The server installs a [`JqSandbox`] at start ([`install`]); from then on every
//! `Lakehose.Jq` transform and every `MetadataExtractionQuery` that is not a plain field
//! projection runs in a worker: the same binary started as `lakehose __jq-worker`, which limits
//! its own address space (`RLIMIT_AS`) and serves requests on stdin/stdout ([`serve`]). Without
//! an installed sandbox (libraries, unit tests) programs run in-process.
//!
//! Invariants:
//! - A worker computes exactly what the in-process path computes (`jq::transform_one`,
//!   `jq::keys_of`), so results do not depend on where a program ran.
//! - Every record sent gets exactly one result. A worker that dies (stack overflow, memory
//!   limit, crash) is replaced and its request is split in halves and retried until the
//!   records that kill a worker are alone; those fail with `Lakehose.JqResourceLimit`. A request
//!   that outlives the timeout fails all its records with the same code (a program that loops
//!   usually loops on every record; splitting would multiply the wait) and its worker is
//!   killed.
//! - Requests hold at most [`MAX_REQUEST_RECORDS`] records and about [`MAX_REQUEST_BYTES`];
//!   at most [`MAX_IDLE_WORKERS`] idle workers are kept.
//!
//! Protocol: one JSON line per request, `{"op":"transform"|"keys","program":"...",
//! "records":["...", ...]}`, answered by one JSON line `{"results":[...]}` with one entry per
//! record: `{"ok":["<json>", ...]}` (transform outputs), `{"keys":{"k":"v"}}`, or
//! `{"err":["<code>","<message>"]}`.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::codes::{self, JQ_RESOURCE_LIMIT};
use crate::jq::{self, JqProgram, KeysResult, TransformResult};

/// Most records in one request.
pub const MAX_REQUEST_RECORDS: usize = 1000;
/// Bytes of records after which a request is closed.
pub const MAX_REQUEST_BYTES: usize = 4 << 20;
/// Idle workers kept for the next requests.
pub const MAX_IDLE_WORKERS: usize = 4;
/// Compiled programs a worker keeps.
const PROGRAM_CACHE: usize = 64;

/// What a request asks of each record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Op {
    /// `Lakehose.Jq`.
    Transform,
    /// `MetadataExtractionQuery`.
    Keys,
}

#[derive(Serialize, Deserialize)]
struct Request {
    op: Op,
    program: String,
    records: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Answer {
    Ok(Vec<String>),
    Keys(BTreeMap<String, String>),
    Err((String, String)),
}

#[derive(Serialize, Deserialize)]
struct Response {
    results: Vec<Answer>,
}

/// One record's result.
pub(crate) enum Outcome {
    Transform(TransformResult),
    Keys(KeysResult),
}

/// How workers are started and limited.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// The worker command: program and arguments (`lakehose __jq-worker --memory-mib N`).
    pub command: Vec<String>,
    /// How long one request may take.
    pub timeout: Duration,
}

/// The worker pool.
pub struct JqSandbox {
    config: SandboxConfig,
    idle: Mutex<Vec<Worker>>,
}

static SANDBOX: OnceLock<JqSandbox> = OnceLock::new();

/// Installs the process-wide sandbox (once; later calls are ignored and return `false`).
pub fn install(config: SandboxConfig) -> bool {
    SANDBOX
        .set(JqSandbox {
            config,
            idle: Mutex::new(Vec::new()),
        })
        .is_ok()
}

/// The installed sandbox, if any.
pub(crate) fn installed() -> Option<&'static JqSandbox> {
    SANDBOX.get()
}

/// The worker command for `exe` (normally `std::env::current_exe()`).
pub fn worker_command(exe: PathBuf, memory_mib: u64) -> Vec<String> {
    vec![
        exe.to_string_lossy().into_owned(),
        "__jq-worker".into(),
        "--memory-mib".into(),
        memory_mib.to_string(),
    ]
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Why a request got no answer.
enum Lost {
    /// The worker died or answered garbage: retry smaller.
    Died(String),
    /// No answer within the timeout.
    TimedOut,
}

impl JqSandbox {
    fn spawn(&self) -> std::io::Result<Worker> {
        let (program, args) = self
            .config
            .command
            .split_first()
            .ok_or_else(|| std::io::Error::other("empty jq worker command"))?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Ok(Worker {
            child,
            stdin,
            stdout,
        })
    }

    /// Sends one request to a worker (idle or new) and waits for its answer.
    fn exchange(&self, request: &[u8], expected: usize) -> Result<Vec<Answer>, Lost> {
        let worker = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut worker = match worker {
            Some(w) => w,
            None => self
                .spawn()
                .map_err(|e| Lost::Died(format!("could not start a jq worker: {e}")))?,
        };
        let pid = worker.child.id();
        // The exchange runs on its own thread so the wait can time out; a timed-out worker is
        // killed, which ends the thread's read.
        let (tx, rx) = mpsc::channel();
        let request = request.to_vec();
        std::thread::spawn(move || {
            let result = (|| {
                worker.stdin.write_all(&request)?;
                worker.stdin.flush()?;
                let mut line = String::new();
                worker.stdout.read_line(&mut line)?;
                Ok::<_, std::io::Error>(line)
            })();
            let _ = tx.send((result, worker));
        });
        let (result, worker) = match rx.recv_timeout(self.config.timeout) {
            Ok(done) => done,
            Err(_) => {
                let _ = rustix::process::kill_process(
                    rustix::process::Pid::from_raw(pid as i32).expect("a child's pid is positive"),
                    rustix::process::Signal::KILL,
                );
                return Err(Lost::TimedOut);
            }
        };
        let line = result.map_err(|e| Lost::Died(e.to_string()))?;
        if line.is_empty() {
            return Err(Lost::Died("the jq worker exited".into()));
        }
        let response: Response = serde_json::from_str(&line)
            .map_err(|e| Lost::Died(format!("unreadable jq worker answer: {e}")))?;
        if response.results.len() != expected {
            return Err(Lost::Died(
                "the jq worker answered the wrong number of results".into(),
            ));
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE_WORKERS {
            idle.push(worker);
        }
        Ok(response.results)
    }

    /// Runs `program` on `records` in workers: one outcome per record, in order.
    pub(crate) fn run(&self, op: Op, program: &str, records: &[&[u8]]) -> Vec<Outcome> {
        let mut out: Vec<Option<Outcome>> = (0..records.len()).map(|_| None).collect();
        // Records that are not UTF-8 are not JSON: answered here, as the in-process path would.
        let mut texts: Vec<(usize, &str)> = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            match std::str::from_utf8(r) {
                Ok(t) => texts.push((i, t)),
                Err(_) => out[i] = Some(local_failure(op, r)),
            }
        }
        let mut start = 0;
        while start < texts.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < texts.len()
                && end - start < MAX_REQUEST_RECORDS
                && (end == start || bytes + texts[end].1.len() <= MAX_REQUEST_BYTES)
            {
                bytes += texts[end].1.len();
                end += 1;
            }
            self.run_chunk(op, program, &texts[start..end], &mut out);
            start = end;
        }
        out.into_iter()
            .map(|o| o.expect("every record gets a result"))
            .collect()
    }

    /// `Lakehose.Jq` on each record.
    pub(crate) fn transform(&self, program: &str, records: &[&[u8]]) -> Vec<TransformResult> {
        self.run(Op::Transform, program, records)
            .into_iter()
            .map(|o| match o {
                Outcome::Transform(r) => r,
                Outcome::Keys(r) => Err((
                    JQ_RESOURCE_LIMIT,
                    format!("a keys result for a transform request: {r:?}"),
                )),
            })
            .collect()
    }

    /// `MetadataExtractionQuery` on each record.
    pub(crate) fn keys(&self, program: &str, records: &[&[u8]]) -> Vec<KeysResult> {
        self.run(Op::Keys, program, records)
            .into_iter()
            .map(|o| match o {
                Outcome::Keys(r) => r,
                Outcome::Transform(r) => Err((
                    JQ_RESOURCE_LIMIT,
                    format!("a transform result for a keys request: {r:?}"),
                )),
            })
            .collect()
    }

    /// One request; on a dead worker, the halves are retried until single records.
    fn run_chunk(
        &self,
        op: Op,
        program: &str,
        chunk: &[(usize, &str)],
        out: &mut [Option<Outcome>],
    ) {
        let request = Request {
            op,
            program: program.to_string(),
            records: chunk.iter().map(|(_, t)| (*t).to_string()).collect(),
        };
        let mut line = serde_json::to_vec(&request).expect("requests serialize");
        line.push(b'\n');
        match self.exchange(&line, chunk.len()) {
            Ok(answers) => {
                for ((i, _), answer) in chunk.iter().zip(answers) {
                    out[*i] = Some(from_answer(op, answer));
                }
            }
            Err(Lost::TimedOut) => {
                let msg = format!(
                    "the jq program did not finish within {} ms (the sandbox's limit)",
                    self.config.timeout.as_millis()
                );
                for (i, _) in chunk {
                    out[*i] = Some(limit_failure(op, msg.clone()));
                }
            }
            Err(Lost::Died(why)) if chunk.len() == 1 => {
                out[chunk[0].0] = Some(limit_failure(
                    op,
                    format!(
                        "the jq program crashed its sandbox on this record (stack overflow, \
                         memory limit or abort): {why}"
                    ),
                ));
            }
            Err(Lost::Died(why)) => {
                tracing::warn!(records = chunk.len(), error = %why,
                    "a jq worker died; retrying its records in halves to isolate the cause");
                let (a, b) = chunk.split_at(chunk.len() / 2);
                self.run_chunk(op, program, a, out);
                self.run_chunk(op, program, b, out);
            }
        }
    }
}

fn limit_failure(op: Op, msg: String) -> Outcome {
    match op {
        Op::Transform => Outcome::Transform(Err((JQ_RESOURCE_LIMIT, msg))),
        Op::Keys => Outcome::Keys(Err((JQ_RESOURCE_LIMIT, msg))),
    }
}

/// The in-process result for a record that is not UTF-8 (no jq runs for it).
fn local_failure(op: Op, data: &[u8]) -> Outcome {
    let e = jq::parse_json(data).err().unwrap_or_default();
    match op {
        Op::Transform => Outcome::Transform(Err((
            codes::JQ_TRANSFORM_FAILED,
            format!("The record is not a single JSON value: {e}"),
        ))),
        Op::Keys => Outcome::Keys(Err((
            codes::METADATA_EXTRACTION_FAILED,
            format!("Non JSON record provided: {e}"),
        ))),
    }
}

/// Error codes a worker may return, as the static strings the outcomes carry.
fn static_code(code: &str) -> &'static str {
    [
        codes::METADATA_EXTRACTION_FAILED,
        codes::INVALID_PARTITION_KEY,
        codes::JQ_TRANSFORM_FAILED,
    ]
    .into_iter()
    .find(|c| *c == code)
    .unwrap_or(JQ_RESOURCE_LIMIT)
}

fn from_answer(op: Op, answer: Answer) -> Outcome {
    match (op, answer) {
        (Op::Transform, Answer::Ok(records)) => {
            Outcome::Transform(Ok(records.into_iter().map(Bytes::from).collect()))
        }
        (Op::Transform, Answer::Err((code, msg))) => {
            Outcome::Transform(Err((static_code(&code), msg)))
        }
        (Op::Keys, Answer::Keys(keys)) => Outcome::Keys(Ok(keys)),
        (Op::Keys, Answer::Err((code, msg))) => Outcome::Keys(Err((static_code(&code), msg))),
        (op, other) => limit_failure(
            op,
            format!("the jq worker answered {other:?} to a {op:?} request"),
        ),
    }
}

/// The address space the process already has (the binary's mappings, the allocator's
/// reservations): `VmSize` of `/proc/self/status`; 0 where that file does not exist.
fn current_address_space() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmSize:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// The worker: limits its address space to what it already has plus `memory_bytes` for jq,
/// then answers requests from stdin on stdout until stdin closes.
pub fn serve(memory_bytes: u64) -> std::io::Result<()> {
    let cap = current_address_space().saturating_add(memory_bytes);
    let limit = rustix::process::Rlimit {
        current: Some(cap),
        maximum: Some(cap),
    };
    rustix::process::setrlimit(rustix::process::Resource::As, limit)
        .map_err(|e| std::io::Error::other(format!("setting RLIMIT_AS: {e}")))?;
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    let mut programs: HashMap<String, Result<JqProgram, String>> = HashMap::new();
    for line in stdin.lines() {
        let line = line?;
        let request: Request = serde_json::from_str(&line)
            .map_err(|e| std::io::Error::other(format!("bad request: {e}")))?;
        if programs.len() >= PROGRAM_CACHE && !programs.contains_key(&request.program) {
            programs.clear();
        }
        let program = programs
            .entry(request.program.clone())
            .or_insert_with(|| JqProgram::compile(&request.program));
        let results = request
            .records
            .iter()
            .map(|r| match (&*program, request.op) {
                (Err(e), _) => Answer::Err((codes::JQ_TRANSFORM_FAILED.into(), e.clone())),
                (Ok(p), Op::Transform) => match jq::transform_one(p, r.as_bytes()) {
                    Ok(records) => Answer::Ok(
                        records
                            .into_iter()
                            .map(|b| String::from_utf8_lossy(&b).into_owned())
                            .collect(),
                    ),
                    Err((code, msg)) => Answer::Err((code.into(), msg)),
                },
                (Ok(p), Op::Keys) => match jq::keys_of(p, r.as_bytes()) {
                    Ok(keys) => Answer::Keys(keys),
                    Err((code, msg)) => Answer::Err((code.into(), msg)),
                },
            })
            .collect();
        serde_json::to_writer(&mut stdout, &Response { results })?;
        stdout.write_all(b"\n")?;
        stdout.flush()?;
    }
    Ok(())
}

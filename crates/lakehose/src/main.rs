//! `lakehose`: a self-hosted, Firehose-compatible streaming ingest service.
//!
//! Commands: `serve` (the service), `put` (send newline-delimited records), `query` (SQL),
//! `streams` (control plane), `bench` (benchmarks). See README.md for the quick start.

mod apps;
mod bench;
mod bench_analytics;
mod bench_query;
mod client;
mod config;
mod console_data;
mod crypt;
mod lake;
mod put;
mod query;
mod serve;
mod streams;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc malloc: glibc keeps per-thread arenas (up to 8 per core) that the
/// blocking pool's threads fill and never give back, which made RSS grow with load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "lakehose",
    version,
    about = "Self-hosted, Firehose-compatible streaming ingest"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the service.
    Serve {
        /// Configuration file (default: ./lakehose.toml when present).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on (default 127.0.0.1:4573).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Data folder (default ./lakehose-data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Serve HTTPS with this PEM certificate chain (server certificate first); needs
        /// --tls-key. Replaces `[tls]` of the config file. SIGHUP reloads both files.
        #[arg(long, requires = "tls_key", value_name = "PATH")]
        tls_cert: Option<PathBuf>,
        /// The PEM private key (PKCS#8, RSA or SEC1) of --tls-cert.
        #[arg(long, requires = "tls_cert", value_name = "PATH")]
        tls_key: Option<PathBuf>,
        /// Serve a non-loopback address even though no access keys are configured (every
        /// request is then accepted unauthenticated). Keys configured still turn SigV4 on.
        #[arg(long)]
        insecure_no_auth: bool,
    },
    /// Send newline-delimited records to a stream.
    Put {
        /// The Lakehose (or Firehose) endpoint.
        #[arg(
            long,
            env = "LAKEHOSE_ENDPOINT",
            default_value = "http://127.0.0.1:4573"
        )]
        endpoint: String,
        #[command(flatten)]
        args: put::PutArgs,
    },
    /// Run SQL over the catalog's tables (a server's, or a data dir's).
    Query {
        /// The Lakehose endpoint.
        #[arg(
            long,
            env = "LAKEHOSE_ENDPOINT",
            default_value = "http://127.0.0.1:4573"
        )]
        endpoint: String,
        #[command(flatten)]
        args: query::QueryArgs,
    },
    /// Manage delivery streams.
    Streams {
        /// The Lakehose (or Firehose) endpoint.
        #[arg(
            long,
            env = "LAKEHOSE_ENDPOINT",
            default_value = "http://127.0.0.1:4573"
        )]
        endpoint: String,
        #[command(subcommand)]
        command: streams::StreamsCommand,
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Print a new random master key as a keyring file line (`KEYID = "BASE64"`).
    Keygen(crypt::KeygenArgs),
    /// Print (or write) the plaintext of an encrypted object of a local bucket.
    Decrypt(crypt::DecryptArgs),
    /// Internal: a jq sandbox worker (started by `serve`; see `lakehose_process::sandbox`).
    #[command(name = "__jq-worker", hide = true)]
    JqWorker {
        /// The worker's address-space limit.
        #[arg(long)]
        memory_mib: u64,
    },
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Durable ingest throughput, ack latency, delivery rate and RSS.
    Ingest(bench::IngestArgs),
    /// Query speed against DuckDB on the same Parquet files, and freshness latency.
    Query(bench_query::QueryBenchArgs),
    /// Streaming SQL: windowed aggregation events/s and ack-to-result latency.
    Analytics(bench_analytics::AnalyticsBenchArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::JqWorker { memory_mib } = cli.command {
        // No runtime, no logging: requests on stdin, answers on stdout.
        return Ok(lakehose_process::sandbox::serve(memory_mib << 20)?);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                // The service logs its life; client commands only what went wrong.
                let serving = matches!(cli.command, Command::Serve { .. });
                tracing_subscriber::EnvFilter::new(if serving { "info" } else { "warn" })
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve {
                config,
                listen,
                data_dir,
                tls_cert,
                tls_key,
                insecure_no_auth,
            } => {
                let mut cfg = config::Config::load(config.as_deref())?;
                if let Some(l) = listen {
                    cfg.listen = l;
                }
                if let Some(d) = data_dir {
                    cfg.data_dir = d;
                }
                if tls_cert.is_some() || tls_key.is_some() {
                    cfg.tls = config::Tls {
                        cert: tls_cert,
                        key: tls_key,
                    };
                }
                cfg.auth.insecure_no_auth = insecure_no_auth;
                serve::run(cfg).await
            }
            Command::Put { endpoint, args } => {
                put::run(client::FirehoseClient::new(&endpoint)?, args).await
            }
            Command::Query { endpoint, args } => query::run(&endpoint, args).await,
            Command::Streams { endpoint, command } => {
                streams::run(client::FirehoseClient::new(&endpoint)?, command).await
            }
            Command::Bench {
                command: BenchCommand::Ingest(args),
            } => bench::ingest(args).await,
            Command::Bench {
                command: BenchCommand::Query(args),
            } => bench_query::run(args).await,
            Command::Bench {
                command: BenchCommand::Analytics(args),
            } => bench_analytics::run(args).await,
            Command::Keygen(args) => crypt::keygen(args),
            Command::Decrypt(args) => crypt::decrypt(args),
            Command::JqWorker { .. } => unreachable!("handled before the runtime starts"),
        }
    })
}

//! Model-based test of the log's durability: a proptest state machine drives the real
//! `Log` on the crash-simulating `SimFs` — appends of every size (empty, multi-KB,
//! concurrent ones that share a group commit), checkpoints that reclaim segments, clean
//! reopens, crashes with random survival of unsynced data, injected EIO/ENOSPC and the
//! process dying at a random I/O call — and checks every recovery against what was
//! acknowledged (the invariant is in `common/mod.rs`). Logs are plaintext, encrypted, or
//! switched between plaintext and two master keys while running (`Log::set_encryption`):
//! the durability contract is the same for encrypted segments.
//!
//! Cases: `LOG_MODEL_CASES` (default 2000). Seed: `LOG_MODEL_SEED` (a number; `random` for
//! a fresh one, printed), default fixed so that CI is reproducible.
//!
//! ```text
//! cargo test -p lakehose-log --test model                # CI tier: ~20 s in debug
//! LOG_MODEL_CASES=100000 LOG_MODEL_SEED=random \
//!     cargo test -p lakehose-log --test model -- --nocapture  # long tier: ~18 min in debug
//! ```

mod common;

use std::io;
use std::time::Instant;

use common::Harness;
use lakehose_log::LogConfig;
use lakehose_log::sim::{CrashMode, SimFs};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

#[derive(Debug, Clone)]
enum Action {
    /// One append of records of these sizes (possibly none).
    Append(Vec<usize>),
    /// Several appends submitted at once: group commit.
    Concurrent(Vec<Vec<usize>>),
    /// Checkpoint at this fraction (of 255) between the last checkpoint and the durable end.
    Checkpoint(u8),
    /// Clean close and open.
    Reopen,
    /// The machine crashes; the log is reopened.
    Crash(CrashMode),
    /// A copy of the filesystem crashes: whatever was acknowledged must be durable right
    /// now. The log goes on running.
    Probe(CrashMode),
    /// The I/O call `after` calls from now fails with EIO or ENOSPC.
    Fault { after: u64, enospc: bool },
    /// The process dies at the I/O call `after` calls from now, amid these appends and
    /// maybe a checkpoint; then the machine crashes as `mode` says.
    DieAmid {
        after: u64,
        appends: Vec<Vec<usize>>,
        checkpoint: Option<u8>,
        mode: CrashMode,
    },
    /// The process dies during the recovery of a clean reopen.
    DieInReopen { after: u64, mode: CrashMode },
    /// Switch encryption: plaintext (`None`) or master key `k1`/`k2`.
    Encrypt(Option<&'static str>),
}

fn record_size() -> impl Strategy<Value = usize> {
    prop_oneof![
        3 => Just(0usize),
        10 => 1usize..64,
        4 => 64usize..600,
        2 => 1000usize..6000,
    ]
}

fn batch() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        1 => Just(Vec::new()),
        6 => prop::collection::vec(record_size(), 1..4),
        1 => prop::collection::vec(record_size(), 4..12),
    ]
}

fn crash_mode() -> impl Strategy<Value = CrashMode> {
    prop_oneof![
        1 => Just(CrashMode::DropAll),
        1 => Just(CrashMode::KeepAll),
        4 => any::<u64>().prop_map(CrashMode::Random),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        12 => batch().prop_map(Action::Append),
        5 => prop::collection::vec(batch(), 2..5).prop_map(Action::Concurrent),
        3 => any::<u8>().prop_map(Action::Checkpoint),
        2 => Just(Action::Reopen),
        4 => crash_mode().prop_map(Action::Crash),
        3 => crash_mode().prop_map(Action::Probe),
        2 => (0u64..12, any::<bool>()).prop_map(|(after, enospc)| Action::Fault { after, enospc }),
        2 => (
            0u64..10,
            prop::collection::vec(batch(), 1..4),
            prop::option::of(any::<u8>()),
            crash_mode()
        )
            .prop_map(|(after, appends, checkpoint, mode)| Action::DieAmid {
                after,
                appends,
                checkpoint,
                mode
            }),
        1 => (0u64..8, crash_mode()).prop_map(|(after, mode)| Action::DieInReopen { after, mode }),
        2 => prop_oneof![Just(None), Just(Some("k1")), Just(Some("k2"))].prop_map(Action::Encrypt),
    ]
}

fn log_config() -> impl Strategy<Value = LogConfig> {
    (
        prop_oneof![Just(1u64), Just(300), Just(4096), Just(1 << 20)],
        prop_oneof![3 => Just(16usize << 20), 1 => Just(200usize)],
        // No keyring; a keyring writing plaintext; encrypted under k1.
        prop_oneof![2 => Just(None), 1 => Just(common::encryption(None)), 2 => Just(common::encryption(Some("k1")))],
    )
        .prop_map(|(segment_bytes, max_commit_bytes, encryption)| LogConfig {
            segment_bytes,
            max_commit_bytes,
            encryption,
            ..LogConfig::default()
        })
}

fn run_case(seed: u64, config: LogConfig, actions: &[Action]) -> Result<(), String> {
    let mut h = Harness::new(SimFs::with_seed(seed), config);
    h.open(false)?;
    for (i, action) in actions.iter().enumerate() {
        let step = |e: String| format!("step {i} {action:?}: {e}");
        match action {
            // After every append, acknowledged must mean durable: power loss now loses
            // none of it.
            Action::Append(sizes) => h
                .append(std::slice::from_ref(sizes))
                .and_then(|()| h.probe_power_loss(CrashMode::DropAll)),
            Action::Concurrent(batches) => h
                .append(batches)
                .and_then(|()| h.probe_power_loss(CrashMode::DropAll)),
            Action::Checkpoint(frac) => h.checkpoint(*frac),
            Action::Reopen => h.reopen(),
            Action::Crash(mode) => h.crash(*mode),
            Action::Probe(mode) => h.probe_power_loss(*mode),
            Action::Fault { after, enospc } => {
                let kind = if *enospc {
                    io::ErrorKind::StorageFull
                } else {
                    io::ErrorKind::Other
                };
                h.inject(*after, kind);
                Ok(())
            }
            Action::DieAmid {
                after,
                appends,
                checkpoint,
                mode,
            } => {
                h.die_in(*after);
                h.append(appends)
                    .and_then(|()| checkpoint.map_or(Ok(()), |f| h.checkpoint(f)))
                    .and_then(|()| h.crash(*mode))
            }
            Action::DieInReopen { after, mode } => {
                h.close();
                h.die_in(*after);
                h.open(false).and_then(|()| h.crash(*mode))
            }
            Action::Encrypt(key) => h
                .set_encryption(*key)
                .and_then(|()| h.probe_power_loss(CrashMode::DropAll)),
        }
        .map_err(step)?;
    }
    // Finally, power loss: everything acknowledged must still be there.
    h.crash(CrashMode::DropAll)
        .map_err(|e| format!("final power loss: {e}"))?;
    // And the recovered log must take appends again.
    h.append(&[vec![10, 0]])
        .and_then(|()| h.crash(CrashMode::DropAll))
        .map_err(|e| format!("append after recovery: {e}"))?;
    Ok(())
}

fn env_u64(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[test]
fn log_matches_model_under_crashes_and_faults() {
    let cases: u32 = env_u64("LOG_MODEL_CASES")
        .map(|v| v.parse().expect("LOG_MODEL_CASES must be a number"))
        .unwrap_or(2000);
    let seed: u64 = match env_u64("LOG_MODEL_SEED").as_deref() {
        None => 0x1a4e_c0de,
        Some("random") => {
            let s = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_nanos() as u64;
            eprintln!("LOG_MODEL_SEED={s}");
            s
        }
        Some(v) => v
            .parse()
            .expect("LOG_MODEL_SEED must be a number or `random`"),
    };
    let config = Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..Config::default()
    };
    let strategy = (
        any::<u64>(),
        log_config(),
        prop::collection::vec(action(), 1..30),
    );
    let start = Instant::now();
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |(seed, config, actions)| {
        run_case(seed, config, &actions).map_err(TestCaseError::fail)
    });
    eprintln!(
        "{cases} model cases in {:.1}s (seed {seed})",
        start.elapsed().as_secs_f64()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The concurrent appends of the model really share group commits (else the state machine
/// would not exercise them).
#[test]
fn concurrent_appends_share_group_commits() {
    let mut h = Harness::new(SimFs::new(), LogConfig::default());
    h.open(false).unwrap();
    let before = h.fs.trace().len();
    let mut appends = 0;
    for _ in 0..50 {
        h.append(&[vec![1], vec![2, 3], vec![4], vec![0]]).unwrap();
        appends += 4;
    }
    let writes = h.fs.trace()[before..]
        .iter()
        .filter(|c| c.op == lakehose_log::sim::Op::Write)
        .count();
    eprintln!("{appends} appends, {writes} group commits");
    assert!(writes < appends, "{writes} writes for {appends} appends");
    h.crash(CrashMode::DropAll).unwrap();
}

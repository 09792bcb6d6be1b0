//! Crash tests of the log on the simulated filesystem ([`SimFs`]), checked with the model
//! of `common/mod.rs`:
//!
//! - **Exhaustive crash points**: small workloads (1–3 appends, a forced segment roll, a
//!   checkpoint that reclaims, a reopen) are run once to count their I/O calls; then, for
//!   every call, the process dies exactly there, the machine crashes with each survival
//!   mode (nothing unsynced survives, everything does, several random choices), and the
//!   recovered log is checked, then appended to and crashed again.
//! - **Exhaustive faults**: the same workloads with EIO or ENOSPC at every call instead.
//! - **Power loss with a control**: many rounds of appends and power losses with fsync on
//!   must lose nothing acknowledged; the same run with `fsync: false` must be caught losing
//!   acknowledged records, which proves the checker can see the bug.
//!
//! The workloads include encrypted logs and encryption switched on and off while running
//! (rolling to a new segment, or replacing an empty active one), so every crash point of
//! those is checked the same way; the power-loss rounds run encrypted too.

mod common;

use std::io;

use common::{Check, Harness};
use lakehose_log::LogConfig;
use lakehose_log::sim::{CrashMode, SimFs};

#[derive(Debug, Clone)]
enum Step {
    Append(Vec<usize>),
    /// Checkpoint at the durable end.
    CheckpointAll,
    Reopen,
    /// `Log::set_encryption`: write new segments under this master key (`None`: plaintext).
    Encrypt(Option<&'static str>),
}

struct Workload {
    name: &'static str,
    config: LogConfig,
    steps: Vec<Step>,
}

fn workloads() -> Vec<Workload> {
    use Step::*;
    let default = LogConfig::default;
    let roll_each = || LogConfig {
        segment_bytes: 1,
        ..LogConfig::default()
    };
    vec![
        Workload {
            name: "1 append",
            config: default(),
            steps: vec![Append(vec![5])],
        },
        Workload {
            name: "2 appends",
            config: default(),
            steps: vec![Append(vec![5]), Append(vec![0, 3000])],
        },
        Workload {
            name: "3 appends",
            config: default(),
            steps: vec![Append(vec![1]), Append(vec![200, 0]), Append(vec![0])],
        },
        Workload {
            name: "3 appends, a segment roll after each",
            config: roll_each(),
            steps: vec![Append(vec![7]), Append(vec![0]), Append(vec![4000, 1])],
        },
        Workload {
            name: "2 appends, checkpoint reclaiming segments, append",
            config: roll_each(),
            steps: vec![
                Append(vec![7]),
                Append(vec![8]),
                CheckpointAll,
                Append(vec![9]),
            ],
        },
        Workload {
            name: "append, reopen, append",
            config: LogConfig {
                segment_bytes: 100,
                ..LogConfig::default()
            },
            steps: vec![Append(vec![30]), Reopen, Append(vec![60])],
        },
        Workload {
            name: "encrypted: 3 appends, a segment roll after each",
            config: LogConfig {
                encryption: common::encryption(Some("k1")),
                ..roll_each()
            },
            steps: vec![Append(vec![7]), Append(vec![0]), Append(vec![4000, 1])],
        },
        Workload {
            name: "encrypted: 2 appends, checkpoint reclaiming segments, reopen, append",
            config: LogConfig {
                encryption: common::encryption(Some("k1")),
                ..roll_each()
            },
            steps: vec![
                Append(vec![7]),
                Append(vec![8, 0]),
                CheckpointAll,
                Reopen,
                Append(vec![9]),
            ],
        },
        Workload {
            name: "encryption switched on, off and to another key amid appends",
            config: LogConfig {
                encryption: common::encryption(None),
                ..default()
            },
            steps: vec![
                Append(vec![5]),
                Encrypt(Some("k1")),
                Append(vec![0, 300]),
                Encrypt(Some("k2")),
                Append(vec![1]),
                Encrypt(None),
                Append(vec![2]),
            ],
        },
        Workload {
            name: "encryption switched on an empty segment (replaced), append, reopen",
            config: LogConfig {
                encryption: common::encryption(None),
                ..default()
            },
            steps: vec![
                Encrypt(Some("k2")),
                Append(vec![40]),
                Reopen,
                Encrypt(None),
                Append(vec![3]),
            ],
        },
    ]
}

/// Runs `steps` on a fresh harness, after `prepare` set up faults or a crash point.
fn run(w: &Workload, seed: u64, prepare: impl FnOnce(&SimFs)) -> Result<Harness, String> {
    let fs = SimFs::with_seed(seed);
    prepare(&fs);
    let mut h = Harness::new(fs, w.config.clone());
    h.open(false)?;
    for step in &w.steps {
        match step {
            Step::Append(sizes) => h.append(std::slice::from_ref(sizes))?,
            Step::CheckpointAll => h.checkpoint(255)?,
            Step::Reopen => h.reopen()?,
            Step::Encrypt(key) => h.set_encryption(*key)?,
        }
    }
    Ok(h)
}

/// After the checked recovery: the log takes appends, and they survive power loss.
fn append_after_recovery(h: &mut Harness) -> Check {
    h.append(&[vec![3], vec![]])?;
    h.crash(CrashMode::DropAll)
}

const RANDOM_MODES: u64 = 6;

fn modes() -> impl Iterator<Item = CrashMode> {
    [CrashMode::DropAll, CrashMode::KeepAll]
        .into_iter()
        .chain((0..RANDOM_MODES).map(CrashMode::Random))
}

#[test]
fn every_crash_point_of_small_workloads() {
    let mut checked = 0;
    for w in workloads() {
        let reference = run(&w, 0, |_| {}).unwrap_or_else(|e| panic!("{}: {e}", w.name));
        let trace = reference.fs.trace();
        let total = reference.fs.calls();
        assert!(
            reference.model.acked_records > 0,
            "{}: nothing acknowledged",
            w.name
        );
        drop(reference);
        for n in 0..=total {
            for mode in modes() {
                let what = || {
                    format!(
                        "{}: crash at call {n} of {total} ({:?}), {mode:?}",
                        w.name,
                        trace.get(n as usize)
                    )
                };
                let mut h = run(&w, 0, |fs| fs.crash_at_call(n))
                    .unwrap_or_else(|e| panic!("{}: {e}", what()));
                // The run is deterministic: the crash hit the call it was meant to.
                let calls = h.fs.trace();
                assert_eq!(
                    calls
                        .iter()
                        .take(n as usize)
                        .map(|c| (c.op, &c.path))
                        .collect::<Vec<_>>(),
                    trace
                        .iter()
                        .take(n as usize)
                        .map(|c| (c.op, &c.path))
                        .collect::<Vec<_>>(),
                    "{}",
                    what()
                );
                h.crash(mode)
                    .and_then(|()| append_after_recovery(&mut h))
                    .unwrap_or_else(|e| panic!("{}: {e}", what()));
                checked += 1;
            }
        }
    }
    eprintln!("{checked} crash recoveries checked");
    assert!(checked > 500, "{checked}");
}

#[test]
fn every_fault_point_of_small_workloads() {
    let mut checked = 0;
    let mut poisoned = 0;
    for w in workloads() {
        let total = run(&w, 0, |_| {}).expect("reference run").fs.calls();
        for n in 0..total {
            for kind in [io::ErrorKind::Other, io::ErrorKind::StorageFull] {
                for seed in 0..3 {
                    let what =
                        || format!("{}: {kind:?} at call {n} of {total}, seed {seed}", w.name);
                    let mut h = run(&w, seed, |fs| fs.fail_call(n, kind))
                        .unwrap_or_else(|e| panic!("{}: {e}", what()));
                    // (The harness checked that a fault on the open log poisoned it.)
                    assert_eq!(h.fs.fired_faults().len(), 1, "{}", what());
                    if h.expect_poisoned {
                        poisoned += 1;
                    }
                    // Restart without losing the page cache, then lose power.
                    h.reopen()
                        .and_then(|()| h.crash(CrashMode::DropAll))
                        .and_then(|()| append_after_recovery(&mut h))
                        .unwrap_or_else(|e| panic!("{}: {e}", what()));
                    checked += 1;
                }
            }
        }
    }
    eprintln!("{checked} faults checked, {poisoned} of them poisoned an open log");
    assert!(poisoned > 100, "{poisoned}");
}

/// Rounds of appends (some concurrent) and checkpoints, each ended by power loss; returns
/// the first violation the checker found.
fn power_loss_rounds(fsync: bool, rounds: u64) -> Result<Harness, String> {
    power_loss_rounds_with(fsync, rounds, None)
}

fn power_loss_rounds_with(
    fsync: bool,
    rounds: u64,
    encryption: Option<lakehose_log::LogEncryption>,
) -> Result<Harness, String> {
    let config = LogConfig {
        fsync,
        segment_bytes: 2048,
        encryption,
        ..LogConfig::default()
    };
    let mut h = Harness::new(SimFs::with_seed(7), config);
    h.open(false)?;
    for round in 0..rounds {
        let n = 1 + (round % 4) as usize;
        let batches: Vec<Vec<usize>> = (0..n)
            .map(|i| vec![(round as usize * 37 + i * 11) % 700; 1 + i % 3])
            .collect();
        h.append(&batches)?;
        h.append(&[vec![0, 5]])?;
        if round % 5 == 4 {
            h.checkpoint(128)?;
        }
        let mode = if round % 3 == 2 {
            CrashMode::Random(round)
        } else {
            CrashMode::DropAll
        };
        h.crash(mode)
            .map_err(|e| format!("round {round}, {mode:?}: {e}"))?;
    }
    Ok(h)
}

#[test]
fn power_loss_never_loses_acknowledged_records() {
    let h = power_loss_rounds(true, 300).unwrap_or_else(|e| panic!("{e}"));
    assert!(h.model.acked_records > 1000, "{}", h.model.acked_records);
    assert_eq!(h.crashes, 300);
    assert!(h.model.checks >= 300);
}

#[test]
fn power_loss_never_loses_acknowledged_encrypted_records() {
    let h = power_loss_rounds_with(true, 150, common::encryption(Some("k1")))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(h.model.acked_records > 500, "{}", h.model.acked_records);
    assert_eq!(h.crashes, 150);
}

/// The control: without fsync the same run must be caught losing acknowledged records.
#[test]
fn control_without_fsync_the_checker_sees_the_loss() {
    let err = match power_loss_rounds(false, 300) {
        Ok(h) => panic!(
            "no violation found without fsync after {} crashes ({} lossy): the checker is blind",
            h.crashes, h.lossy_crashes
        ),
        Err(e) => e,
    };
    assert!(err.contains("lost ACKNOWLEDGED record"), "{err}");
}

//! CI replay: every committed corpus file (`corpus/<target>/*`) through every target body,
//! without libFuzzer. A file that makes a body panic fails the test that names the target;
//! all failures are listed before the test fails.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// libFuzzer reports any single allocation above its malloc limit (2 GiB with run.sh's
/// `-rss_limit_mb=2048`) as a crash; without libFuzzer, Linux would hand out such a
/// zeroed buffer lazily and the bug would go unseen. This allocator refuses allocations
/// above 1 GiB, which aborts the replay with "memory allocation of N bytes failed".
struct Limited;

const MAX_ALLOCATION: usize = 1 << 30;

// SAFETY: forwards to `System`, only refusing (null) some allocations, which `GlobalAlloc`
// allows.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Limited {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOCATION {
            return std::ptr::null_mut();
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOCATION {
            return std::ptr::null_mut();
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > MAX_ALLOCATION {
            return std::ptr::null_mut();
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Limited = Limited;

fn corpus_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut files = Vec::new();
    for (name, _) in lakehose_fuzz::TARGETS {
        let dir = root.join(name);
        let before = files.len();
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("corpus entry").path();
            if path.is_file() {
                files.push(path);
            }
        }
        assert!(files.len() > before, "corpus/{name} is empty");
    }
    files.sort();
    files
}

fn replay(target: &str) {
    let body = lakehose_fuzz::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, body)| *body)
        .expect("known target");
    let started = Instant::now();
    let files = corpus_files();
    let mut failures = Vec::new();
    for path in &files {
        let data = std::fs::read(path).expect("read corpus file");
        if std::panic::catch_unwind(|| body(&data)).is_err() {
            failures.push(path.display().to_string());
        }
    }
    eprintln!(
        "{target}: {} corpus files in {:.2?}",
        files.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{target} panicked on {} file(s):\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

macro_rules! replay_tests {
    ($($target:ident),* $(,)?) => {
        $(
            #[test]
            fn $target() {
                replay(stringify!($target));
            }
        )*

        #[test]
        fn every_target_has_a_test() {
            let tested = [$(stringify!($target)),*];
            for (name, _) in lakehose_fuzz::TARGETS {
                assert!(tested.contains(name), "no replay test for {name}");
            }
        }
    };
}

replay_tests!(
    api_json,
    api_put_records,
    decompress,
    cwl,
    kpl_deagg,
    record_deagg,
    prefix,
    log_recovery,
);

//! One current-thread Tokio runtime per thread, for the async entry points (the API router,
//! `ProcessorChain::process`, `Log::append`).

use std::future::Future;

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("build a current-thread runtime");
}

/// Runs `fut` to completion on this thread's runtime.
pub(crate) fn block_on<F: Future>(fut: F) -> F::Output {
    RUNTIME.with(|rt| rt.block_on(fut))
}

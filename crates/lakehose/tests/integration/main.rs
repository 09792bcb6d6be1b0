//! One integration-test binary: the real `lakehose` binary driven by the official AWS SDK.

mod api;
mod cli;
mod common;
mod crash;
mod delivery;
mod disk_full;

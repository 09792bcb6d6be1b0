//! One integration-test binary: the real `lakehose` binary driven by the official AWS SDK.

mod api;
mod bad_input;
mod cli;
mod common;
mod crash;
mod delivery;
mod disk_full;
mod overload;
mod slow_clients;

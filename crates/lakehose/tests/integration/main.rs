//! One integration-test binary: the real `lakehose` binary driven by the official AWS SDK.

mod analytics;
mod api;
mod audit;
mod auth;
mod bad_input;
mod cli;
mod common;
mod conformance;
mod console;
mod crash;
mod declared_streams;
mod delivery;
mod disk_full;
mod encryption;
mod http_endpoint;
mod jq_sandbox;
mod lambda_https;
mod opensearch;
pub mod opensearch_server;
mod overload;
mod pki;
mod redshift;
mod slow_clients;
mod splunk;
pub mod splunk_server;
mod tls;

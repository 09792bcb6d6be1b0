//! Authentication (AWS Signature Version 4) and IAM-like authorization for every API request.
//!
//! - [`sigv4`]: verification exactly as AWS verifies header-signed requests: canonical
//!   request, string to sign, key derivation, scope and clock checks, constant-time compare;
//!   AWS's error codes and wording. Also a signer for Lakehose's own clients.
//! - [`policy`]: allow-only statements per key (`firehose:PutRecord*` on
//!   `arn:aws:firehose:*:*:deliverystream/clicks`), deny by default, and the [`Principal`]
//!   the handlers ask.
//! - [`config`]: the `[auth]` section of `lakehose.toml` and the [`Keyring`] built from it
//!   (inline keys and an AWS credentials file).
//! - [`layer`]: the axum middleware ([`layer::authenticate`]) and the `/metrics` bearer guard.
//! - [`session`]: console sign-in with a key pair, the session cookie and CSRF protection.
//!
//! Invariants:
//! - Authentication is on exactly when the keyring has a key. Then every request that reaches
//!   an API handler carries a [`Principal`] whose signature was verified over the method, path,
//!   query, every signed header and every byte of the body as received, or that comes from a
//!   console session opened with the key's secret (cookie plus CSRF token, see [`session`]);
//!   there is no other way in (no anonymous access, no presigned URLs, no session tokens).
//! - Nothing a refused client receives helps forge a signature: the mismatch message is AWS's
//!   fixed text, the canonical request is never shown, and signatures are compared in
//!   constant time. Secrets never appear in `Debug` output or logs.
//! - Authorization is deny by default and happens before an operation reads or changes
//!   anything (in `lakehose-api`'s handlers and `/v1/query`, where the operation and its
//!   resources are known).
//! - A configuration mistake refuses to start; it never leaves the server open.

pub mod config;
pub mod layer;
pub mod policy;
pub mod session;
pub mod sigv4;

pub use config::{AuthConfig, ConfigError, Keyring};
pub use layer::{Authenticator, BearerToken, authenticate, require_bearer};
pub use policy::{Policy, Principal, Statement};
pub use session::Sessions;

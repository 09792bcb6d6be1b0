//! The Firehose wire protocol (AWS JSON 1.1): request and response shapes, validation, the
//! error table and the axum handlers. No storage code lives here: handlers call a
//! [`StreamService`], which the pipeline crate implements.
//!
//! A record enters Lakehose in [`handler`]: the body is decoded (base64 into one shared buffer),
//! every limit is checked, and only then is [`StreamService::put_records`] called. With
//! authentication on, every call is first authorized through the [`Caller`] the SigV4 layer
//! (`lakehose-auth`) attached to the request ([`authz`]).

pub mod audit;
pub mod authz;
pub mod error;
pub mod handler;
pub mod model;
pub mod prefix;
pub mod service;
pub mod shed;
pub mod stream;

pub use authz::{Authorizer, Caller};
pub use error::{ApiError, ErrorKind, Result};
pub use handler::{ApiState, router};
pub use service::{JsonService, SpecChange, StreamService};
pub use stream::StreamSpec;

/// The content type of AWS JSON 1.1 bodies.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

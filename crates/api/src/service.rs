//! The seam between the wire protocol and the engine: [`StreamService`] is what the handlers
//! need from whoever stores and runs streams. The API crate owns every protocol rule; the
//! implementation (the pipeline crate) owns state, durability and delivery.

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::Result;
use crate::model::PutOutcome;
use crate::stream::StreamSpec;

/// A change applied atomically to one stream's spec; returning an error leaves it unchanged.
pub type SpecChange<'a> = &'a mut (dyn FnMut(&mut StreamSpec) -> Result<()> + Send);

/// Stores, runs and feeds delivery streams.
#[async_trait]
pub trait StreamService: Send + Sync + 'static {
    /// Creates and starts a stream. `ResourceInUseException` if the name exists,
    /// `LimitExceededException` past the stream quota.
    async fn create_stream(&self, spec: StreamSpec) -> Result<()>;
    /// Stops and deletes a stream and its undelivered data.
    async fn delete_stream(&self, name: &str) -> Result<()>;
    /// The stream's current spec, if it exists.
    fn stream(&self, name: &str) -> Option<StreamSpec>;
    /// All stream names, sorted.
    fn stream_names(&self) -> Vec<String>;
    /// Applies `change` to the stream's spec atomically, persists it and reconfigures delivery.
    async fn modify_stream(&self, name: &str, change: SpecChange<'_>) -> Result<StreamSpec>;
    /// Makes `records` durable on the stream; one outcome per record, in order.
    async fn put_records(&self, name: &str, records: Vec<Bytes>) -> Result<PutOutcome>;
}

/// Another AWS JSON 1.1 service answered on the same endpoint, chosen by the
/// `X-Amz-Target` prefix (`AWSGlue` for `AWSGlue.GetTable`). Errors use the shared table in
/// [`crate::error`], so every service answers AWS's error shape.
#[async_trait]
pub trait JsonService: Send + Sync + 'static {
    /// The target prefix before the `.`, e.g. `AWSGlue`.
    fn target_prefix(&self) -> &'static str;
    /// The service's IAM prefix (`glue` in `glue:GetTable`), which is also the SigV4 signing
    /// name its requests must be scoped to.
    fn iam_prefix(&self) -> &'static str;
    /// The resources (ARNs) operation `op` with the JSON request `body` acts on, for
    /// authorization (see [`crate::authz`]); `*` where the operation names none, or when they
    /// cannot be read from the body. Called before [`JsonService::call`], only when
    /// authentication is on.
    fn resources(&self, op: &str, region: &str, body: &[u8]) -> Vec<String> {
        let _ = (op, region, body);
        vec!["*".into()]
    }
    /// Answers operation `op` with the JSON request `body`; `region` is the caller's region.
    async fn call(&self, op: &str, region: &str, body: &[u8]) -> Result<serde_json::Value>;
}

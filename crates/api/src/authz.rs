//! The seam between authentication and the handlers: who is calling, and may they do this?
//!
//! When authentication is on, the authentication layer (the `lakehose-auth` crate) verifies
//! each request's SigV4 signature and puts a [`Caller`] into the request's extensions. The
//! handlers, which know the operation and have the body, name the IAM-style action
//! (`firehose:PutRecord`) and the resources it acts on (ARNs), and ask the caller before doing
//! anything: [`Caller::authorize`] answers `AccessDeniedException` unless the caller's policy
//! allows the action on every resource.
//!
//! Invariants:
//! - A request without a [`Caller`] is unauthenticated: the server runs without keys (the
//!   loopback default). With keys configured, every API route is behind the layer, so every
//!   request that reaches a handler has one.
//! - Authorization happens before the operation changes or reads anything.
//! - A resource that cannot be read from the request (a body that is not JSON, a missing
//!   name) is `*`: only a statement allowing every resource allows such a request, and the
//!   operation itself then rejects the malformed request.

use std::sync::Arc;

use crate::error::Result;
use crate::stream::ACCOUNT_ID;

/// Decides whether the authenticated caller may perform an action.
pub trait Authorizer: Send + Sync + std::fmt::Debug + 'static {
    /// `Ok` when the caller may perform `action` (`service:Operation`) on every one of
    /// `resources` (ARNs, or `*`); otherwise `AccessDeniedException` naming the first resource
    /// refused. An empty list is checked as `["*"]`.
    fn authorize(&self, action: &str, resources: &[String]) -> Result<()>;
    /// The region of the caller's credential scope: the region ARNs of this request use.
    fn region(&self) -> &str;
    /// The access key id the request was signed with (for logs and the audit trail).
    fn access_key_id(&self) -> &str;
}

/// The authenticated caller of a request, found in its extensions.
#[derive(Clone, Debug)]
pub struct Caller(pub Arc<dyn Authorizer>);

impl Caller {
    /// See [`Authorizer::authorize`].
    pub fn authorize(&self, action: &str, resources: &[String]) -> Result<()> {
        self.0.authorize(action, resources)
    }
    /// See [`Authorizer::region`].
    pub fn region(&self) -> &str {
        self.0.region()
    }
    /// See [`Authorizer::access_key_id`].
    pub fn access_key_id(&self) -> &str {
        self.0.access_key_id()
    }
}

/// `arn:aws:SERVICE:REGION:ACCOUNT:RESOURCE` with the account every ARN of Lakehose uses.
pub fn arn(service: &str, region: &str, resource: &str) -> String {
    format!("arn:aws:{service}:{region}:{ACCOUNT_ID}:{resource}")
}

/// The resource a Firehose operation acts on: the stream named by `DeliveryStreamName` in the
/// body (`arn:aws:firehose:REGION:ACCOUNT:deliverystream/NAME`); `*` for
/// `ListDeliveryStreams` (as in IAM, listing needs a statement on every resource) and when no
/// name can be read from the body.
pub fn firehose_resource(op: &str, region: &str, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Named {
        #[serde(rename = "DeliveryStreamName")]
        name: Option<String>,
    }
    if op == "ListDeliveryStreams" {
        return "*".into();
    }
    // Duplicate members fail here as in the operation's own parse, so both read one name.
    match serde_json::from_slice::<Named>(body) {
        Ok(Named { name: Some(name) }) => firehose_stream_arn(region, &name),
        _ => "*".into(),
    }
}

/// The ARN of the Firehose stream `name` in `region`.
pub fn firehose_stream_arn(region: &str, name: &str) -> String {
    arn("firehose", region, &format!("deliverystream/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firehose_resources() {
        let body = br#"{"DeliveryStreamName":"clicks","Record":{"Data":"eA=="}}"#;
        assert_eq!(
            firehose_resource("PutRecord", "eu-west-1", body),
            "arn:aws:firehose:eu-west-1:000000000000:deliverystream/clicks"
        );
        assert_eq!(firehose_resource("ListDeliveryStreams", "r", body), "*");
        assert_eq!(firehose_resource("PutRecord", "r", b"{}"), "*");
        assert_eq!(firehose_resource("PutRecord", "r", b"not json"), "*");
        assert_eq!(
            firehose_resource(
                "PutRecord",
                "r",
                br#"{"DeliveryStreamName":"a","DeliveryStreamName":"b"}"#
            ),
            "*",
            "duplicate names are not guessed at"
        );
    }
}

//! Authorization: a small, allow-only policy per access key, in the spirit of IAM.
//!
//! A policy is a list of statements, each allowing some actions on some resources:
//!
//! ```toml
//! allow = [ { actions = ["firehose:PutRecord*"], resources = ["arn:aws:firehose:*:*:deliverystream/clicks"] },
//!           { actions = ["glue:Get*", "athena:*"] } ]   # resources default to ["*"]
//! ```
//!
//! Rules (as IAM evaluates identity policies without `Deny`):
//! - Deny by default: a request is allowed only when, for **every** resource it acts on, some
//!   statement matches both the action and that resource. A key without statements can do
//!   nothing.
//! - Actions are `service:Operation` (`firehose:PutRecordBatch`) or `*`, matched
//!   case-insensitively; resources are ARNs or `*`, matched case-sensitively. In both, `*`
//!   matches any run of characters (`/` and `:` included) and `?` any one character.
//! - A request's resource is `*` when the operation names none (listing: `ListDeliveryStreams`,
//!   `ListWorkGroups`) or it cannot be read from the request: only a statement whose resources
//!   include the pattern `*` allows it (a pattern such as `arn:aws:firehose:*:*:deliverystream/*`
//!   does not match the literal `*`), as in IAM, where list operations need `"Resource": "*"`.
//! - A refusal is `AccessDeniedException` worded as AWS words it: "User:
//!   arn:aws:iam::ACCOUNT:user/AKID is not authorized to perform: ACTION on resource: ARN".

use std::sync::Arc;

use lakehose_api::stream::ACCOUNT_ID;
use lakehose_api::{ApiError, Authorizer, ErrorKind};

/// One allow statement: actions and resource patterns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// Action patterns, lower-cased.
    actions: Vec<String>,
    /// Resource patterns.
    resources: Vec<String>,
}

impl Statement {
    /// A statement allowing `actions` on `resources`; an error names a pattern that is not an
    /// action (`*` or `service:Operation`) or not a resource (`*` or starting with `arn:`), or
    /// an empty list.
    pub fn new<A: AsRef<str>, R: AsRef<str>>(
        actions: &[A],
        resources: &[R],
    ) -> Result<Self, String> {
        if actions.is_empty() {
            return Err("a statement needs at least one action".into());
        }
        if resources.is_empty() {
            return Err(
                "a statement needs at least one resource (or leave it out for \"*\")".into(),
            );
        }
        let mut checked = Vec::with_capacity(actions.len());
        for action in actions {
            let action = action.as_ref();
            let valid = action == "*"
                || action.split_once(':').is_some_and(|(service, op)| {
                    !service.is_empty()
                        && !op.is_empty()
                        && service
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'*' | b'?'))
                        && !op.contains(':')
                });
            if !valid {
                return Err(format!(
                    "action {action:?} is not \"*\" or \"service:Operation\" (e.g. \"firehose:PutRecord*\")"
                ));
            }
            checked.push(action.to_ascii_lowercase());
        }
        let mut patterns = Vec::with_capacity(resources.len());
        for resource in resources {
            let resource = resource.as_ref();
            if resource != "*" && !resource.starts_with("arn:") {
                return Err(format!(
                    "resource {resource:?} is not \"*\" or an ARN pattern (\"arn:aws:firehose:*:*:deliverystream/NAME\")"
                ));
            }
            patterns.push(resource.to_string());
        }
        Ok(Self {
            actions: checked,
            resources: patterns,
        })
    }

    fn allows_action(&self, action_lower: &str) -> bool {
        self.actions
            .iter()
            .any(|p| glob_match(p.as_bytes(), action_lower.as_bytes()))
    }

    fn allows_resource(&self, resource: &str) -> bool {
        self.resources
            .iter()
            .any(|p| glob_match(p.as_bytes(), resource.as_bytes()))
    }
}

/// The statements of one access key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    statements: Vec<Statement>,
}

impl Policy {
    /// A policy of `statements`.
    pub fn new(statements: Vec<Statement>) -> Self {
        Self { statements }
    }

    /// The policy that allows nothing.
    pub fn deny_all() -> Self {
        Self::default()
    }

    /// Whether some statement allows `action` on `resource`.
    pub fn allows(&self, action: &str, resource: &str) -> bool {
        let action = action.to_ascii_lowercase();
        self.statements
            .iter()
            .any(|s| s.allows_action(&action) && s.allows_resource(resource))
    }

    /// `Ok` when `action` is allowed on every one of `resources` (an empty list is `["*"]`);
    /// otherwise the first resource refused.
    pub fn check<'a>(&self, action: &str, resources: &'a [String]) -> Result<(), &'a str> {
        if resources.is_empty() {
            return if self.allows(action, "*") {
                Ok(())
            } else {
                Err("*")
            };
        }
        match resources.iter().find(|r| !self.allows(action, r)) {
            Some(denied) => Err(denied),
            None => Ok(()),
        }
    }
}

/// `*` (any run, possibly empty) and `?` (one byte) wildcards; everything else literal.
/// Iterative with one backtrack point: linear in practice, O(n·m) at worst.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// The IAM user ARN Lakehose shows for an access key: `arn:aws:iam::ACCOUNT:user/AKID`.
pub fn user_arn(access_key_id: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT_ID}:user/{access_key_id}")
}

/// An authenticated caller: the access key that signed the request, the region it signed
/// for, and the key's policy. Put into the request's extensions by the authentication layer
/// (as itself and as a [`lakehose_api::Caller`]).
#[derive(Clone, Debug)]
pub struct Principal {
    /// The access key id that signed the request.
    pub access_key_id: String,
    /// The region of the credential scope (the region of the request's ARNs).
    pub region: String,
    /// What the key may do.
    pub policy: Arc<Policy>,
}

impl Authorizer for Principal {
    fn authorize(&self, action: &str, resources: &[String]) -> lakehose_api::Result<()> {
        self.policy.check(action, resources).map_err(|denied| {
            ApiError::new(
                ErrorKind::AccessDenied,
                format!(
                    "User: {} is not authorized to perform: {action} on resource: {denied}",
                    user_arn(&self.access_key_id)
                ),
            )
        })
    }

    fn region(&self) -> &str {
        &self.region
    }

    fn access_key_id(&self) -> &str {
        &self.access_key_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(p: &str, t: &str) -> bool {
        glob_match(p.as_bytes(), t.as_bytes())
    }

    #[test]
    fn globs() {
        assert!(g("*", ""));
        assert!(g("*", "anything/at:all"));
        assert!(g("firehose:putrecord*", "firehose:putrecordbatch"));
        assert!(g("firehose:putrecord*", "firehose:putrecord"));
        assert!(!g("firehose:putrecord*", "firehose:putrecor"));
        assert!(!g("firehose:put*", "glue:put"));
        assert!(g("a?c", "abc"));
        assert!(!g("a?c", "ac"));
        assert!(g("*a*b*c", "xxaxxbxxc"));
        assert!(!g("*a*b*c", "xxaxxbxxcx"));
        assert!(g(
            "arn:aws:firehose:*:*:deliverystream/*",
            "arn:aws:firehose:r:0:deliverystream/x"
        ));
        assert!(!g("arn:aws:firehose:*:*:deliverystream/*", "*"));
        assert!(!g("", "a"));
        assert!(g("", ""));
        // Pathological input stays fast.
        let text = "a".repeat(10_000);
        assert!(!g(&format!("{}b", "*a".repeat(50)), &text));
    }

    #[test]
    fn statements_are_validated() {
        assert!(Statement::new(&["firehose:PutRecord"], &["*"]).is_ok());
        assert!(Statement::new(&["*"], &["arn:aws:firehose:*:*:deliverystream/x"]).is_ok());
        assert!(Statement::new::<&str, &str>(&[], &["*"]).is_err());
        assert!(Statement::new(&["firehose:x"], &[] as &[&str]).is_err());
        for bad in [
            "PutRecord",
            "firehose:",
            ":PutRecord",
            "fire hose:x",
            "a:b:c",
        ] {
            assert!(Statement::new(&[bad], &["*"]).is_err(), "{bad}");
        }
        assert!(Statement::new(&["firehose:*"], &["deliverystream/x"]).is_err());
    }

    #[test]
    fn every_resource_must_be_allowed() {
        let policy = Policy::new(vec![
            Statement::new(&["glue:DeleteTable"], &["arn:aws:glue:*:*:table/db/a"]).unwrap(),
            Statement::new(&["glue:*"], &["arn:aws:glue:*:*:table/db/b"]).unwrap(),
        ]);
        let a = "arn:aws:glue:r:0:table/db/a".to_string();
        let b = "arn:aws:glue:r:0:table/db/b".to_string();
        let c = "arn:aws:glue:r:0:table/db/c".to_string();
        assert_eq!(
            policy.check("glue:deletetable", &[a.clone(), b.clone()]),
            Ok(())
        );
        assert_eq!(
            policy.check("glue:DeleteTable", &[a, b, c.clone()]),
            Err(c.as_str())
        );
        assert_eq!(policy.check("glue:GetTable", &[]), Err("*"));
        assert!(
            Policy::deny_all()
                .check("firehose:PutRecord", &["*".into()])
                .is_err()
        );
    }

    #[test]
    fn denial_is_worded_as_aws() {
        let p = Principal {
            access_key_id: "AKIDEXAMPLE".into(),
            region: "us-east-1".into(),
            policy: Arc::new(Policy::deny_all()),
        };
        let e = p
            .authorize(
                "firehose:PutRecord",
                &["arn:aws:firehose:us-east-1:000000000000:deliverystream/s".into()],
            )
            .unwrap_err();
        assert_eq!(e.body()["__type"], "AccessDeniedException");
        assert_eq!(
            e.message,
            "User: arn:aws:iam::000000000000:user/AKIDEXAMPLE is not authorized to perform: \
             firehose:PutRecord on resource: arn:aws:firehose:us-east-1:000000000000:deliverystream/s"
        );
    }
}

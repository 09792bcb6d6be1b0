//! The axum middleware that authenticates every API request, and the bearer-token guard of
//! `/metrics`.
//!
//! [`authenticate`] (applied with `axum::middleware::from_fn_with_state` to the AWS API router
//! and `/v1/query`, inside the load-shedding layer) does, in order:
//! 1. everything that needs neither the body nor a key ([`Authorization::from_headers`],
//!    [`Authorization::check_scope`] with the signing names the endpoint accepts), then looks
//!    the key up (`UnrecognizedClientException`); a request refused here has its body drained
//!    (up to the body limit, never kept) so the client reads the answer instead of a reset;
//! 2. reads the body exactly as the API handlers do
//!    ([`lakehose_api::handler::read_body_parts`]: the 8 MiB limit and its 413, the request
//!    budget's meter, the body timeout's 408);
//! 3. verifies the signature over the body as received;
//! 4. passes the request on with the body in memory and a [`Principal`] (also as a
//!    [`lakehose_api::Caller`]) in its extensions. Authorization happens in the handlers,
//!    which know the operation and its resources.
//!
//! A request with no `Authorization` header but the console's session cookie is instead
//! authenticated by [`crate::session::Sessions`] (origin and CSRF checks, then the session's
//! key and policy), when the authenticator has sessions.
//!
//! Refusals carry `x-amzn-RequestId` like every API answer, and say nothing that helps an
//! attacker (see [`crate::sigv4`]); the reason is logged at debug level.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use lakehose_api::ApiError;
use lakehose_api::handler::MAX_BODY_BYTES;
use ring::hmac;

use crate::config::{Key, Keyring};
use crate::policy::Principal;
use crate::sigv4::{self, Authorization, RequestParts};

/// Verifies SigV4 signatures against a [`Keyring`], knowing which signing names each endpoint
/// accepts.
#[derive(Debug)]
pub struct Authenticator {
    keyring: Keyring,
    /// `X-Amz-Target` prefix (before the `.`) -> accepted signing names.
    targets: Vec<(String, Vec<String>)>,
    /// Path (exact, or followed by `/`) -> accepted signing names.
    paths: Vec<(String, Vec<String>)>,
    /// Console sessions, accepted for requests without an `Authorization` header.
    sessions: Option<Arc<crate::session::Sessions>>,
}

impl Authenticator {
    /// An authenticator over `keyring`, knowing Firehose (`Firehose_20150804` -> `firehose`)
    /// and `/v1/query` (`athena` or `lakehose`); add the other JSON services with
    /// [`Authenticator::scope_target`]. Requests to an endpoint it does not know may be scoped
    /// to any service (their signature is still verified).
    pub fn new(keyring: Keyring) -> Self {
        Self {
            keyring,
            targets: Vec::new(),
            paths: Vec::new(),
            sessions: None,
        }
        .scope_target(lakehose_api::handler::TARGET_PREFIX, &["firehose"])
        .scope_path("/v1/query", &["athena", "lakehose"])
    }

    /// Requests whose `X-Amz-Target` starts with `prefix` (`AWSGlue`, with or without the
    /// trailing `.`) must be scoped to one of `services` (the first is the one named in the
    /// error).
    pub fn scope_target(mut self, prefix: &str, services: &[&str]) -> Self {
        let prefix = prefix.trim_end_matches('.').to_string();
        self.targets.retain(|(p, _)| *p != prefix);
        self.targets
            .push((prefix, services.iter().map(|s| s.to_string()).collect()));
        self
    }

    /// Requests to `path` (or below it) must be scoped to one of `services`.
    pub fn scope_path(mut self, path: &str, services: &[&str]) -> Self {
        self.paths.retain(|(p, _)| p != path);
        self.paths.push((
            path.to_string(),
            services.iter().map(|s| s.to_string()).collect(),
        ));
        self
    }

    /// Also accepts console sessions (a request with the session cookie and no
    /// `Authorization` header is authenticated by `sessions`).
    pub fn with_sessions(mut self, sessions: Arc<crate::session::Sessions>) -> Self {
        self.sessions = Some(sessions);
        self
    }

    /// The keys.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// The signing names a request to `path` with `target` may be scoped to (empty: any).
    pub fn services_for(&self, path: &str, target: Option<&str>) -> Vec<&str> {
        if let Some(target) = target {
            let prefix = target.split_once('.').map_or(target, |(p, _)| p);
            if let Some((_, names)) = self.targets.iter().find(|(p, _)| p == prefix) {
                return names.iter().map(String::as_str).collect();
            }
        }
        self.paths
            .iter()
            .find(|(p, _)| {
                path.strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
            .map(|(_, names)| names.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// Everything that needs no body: the header, the scope, the clock (`now`, Unix seconds)
    /// and the key.
    pub fn precheck(&self, parts: &Parts, now: i64) -> Result<(Authorization, Key), ApiError> {
        let authorization = Authorization::from_headers(&parts.headers)?;
        let target = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok());
        authorization.check_scope(&self.services_for(parts.uri.path(), target), now)?;
        let key = self
            .keyring
            .get(&authorization.access_key_id)
            .ok_or_else(sigv4::unrecognized)?;
        // There is no STS: a session token cannot be valid.
        if parts.headers.contains_key("x-amz-security-token") {
            return Err(sigv4::unrecognized());
        }
        Ok((authorization, key.clone()))
    }

    /// The whole verification of a request whose body is at hand; the caller on success.
    pub fn authenticate(
        &self,
        parts: &Parts,
        body: &[u8],
        now: i64,
    ) -> Result<Principal, ApiError> {
        let (authorization, key) = self.precheck(parts, now)?;
        authorization.verify(&key.secret, &request_parts(parts), body)?;
        Ok(Principal {
            access_key_id: authorization.access_key_id,
            region: authorization.region,
            policy: key.policy,
        })
    }
}

/// What SigV4 signs, from the request head.
pub fn request_parts(parts: &Parts) -> RequestParts<'_> {
    RequestParts {
        method: parts.method.as_str().as_bytes(),
        path: parts.uri.path().as_bytes(),
        query: parts.uri.query().unwrap_or_default().as_bytes(),
        headers: &parts.headers,
        authority: parts.uri.authority().map(|a| a.as_str()),
    }
}

/// The middleware; see the module docs.
pub async fn authenticate(
    State(auth): State<Arc<Authenticator>>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let session = match &auth.sessions {
        Some(sessions)
            if !parts
                .headers
                .contains_key(axum::http::header::AUTHORIZATION) =>
        {
            sessions.principal_for(&parts)
        }
        _ => None,
    };
    if let Some(session) = session {
        return match session {
            Ok(principal) => pass(parts, body, principal, next).await,
            Err(refused) => {
                drain(&parts, body).await;
                refused.into_response()
            }
        };
    }
    let (authorization, key) = match auth.precheck(&parts, sigv4::unix_now()) {
        Ok(found) => found,
        Err(e) => {
            drain(&parts, body).await;
            return refuse(e);
        }
    };
    let bytes = match lakehose_api::handler::read_body_parts(&parts, body).await {
        Ok(bytes) => bytes,
        Err(e) => return refuse(e),
    };
    if let Err(e) = authorization.verify(&key.secret, &request_parts(&parts), &bytes) {
        return refuse(e);
    }
    // The body is in memory now: the handler must not meter it a second time (the budget
    // reservation stays with the shedding layer until the answer).
    parts.extensions.remove::<lakehose_api::shed::Meter>();
    let principal = Principal {
        access_key_id: authorization.access_key_id,
        region: authorization.region,
        policy: key.policy,
    };
    forward(parts, Body::from(bytes), principal, next).await
}

/// A session-authenticated request: its body read as the handlers read it, then forwarded.
async fn pass(parts: Parts, body: Body, principal: Principal, next: Next) -> Response {
    let bytes = match lakehose_api::handler::read_body_parts(&parts, body).await {
        Ok(bytes) => bytes,
        Err(e) => return refuse(e),
    };
    let mut parts = parts;
    parts.extensions.remove::<lakehose_api::shed::Meter>();
    forward(parts, Body::from(bytes), principal, next).await
}

/// Passes an authenticated request on with its [`Principal`] (also as a
/// [`lakehose_api::Caller`]) in its extensions.
async fn forward(mut parts: Parts, body: Body, principal: Principal, next: Next) -> Response {
    parts
        .extensions
        .insert(lakehose_api::Caller(Arc::new(principal.clone())));
    parts.extensions.insert(principal);
    next.run(Request::from_parts(parts, body)).await
}

fn refuse(error: ApiError) -> Response {
    tracing::debug!(error = %error, "request not authenticated");
    let mut response = error.into_response();
    if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        response.headers_mut().insert("x-amzn-requestid", v);
    }
    response
}

/// Reads and discards a refused request's body, up to the body limit (a larger declared body
/// is not read at all).
async fn drain(parts: &Parts, mut body: Body) {
    use http_body_util::BodyExt;
    let declared = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64)
        || axum::body::HttpBody::size_hint(&body).exact() == Some(0)
    {
        return;
    }
    let mut seen = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        seen += frame.data_ref().map_or(0, |d| d.len());
        if seen > MAX_BODY_BYTES {
            break;
        }
    }
}

/// A bearer token (`/metrics`), compared in constant time: the presented token's HMAC under a
/// random key is checked against the configured token's with `ring::hmac::verify`.
#[derive(Clone)]
pub struct BearerToken {
    key: hmac::Key,
    tag: hmac::Tag,
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(..)")
    }
}

impl BearerToken {
    /// The guard of `token`.
    pub fn new(token: &str) -> Self {
        let rng = ring::rand::SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).unwrap_or_else(|_| {
            // The system RNG failing is not recoverable in any useful way; a fixed key still
            // compares correctly, it only loses the blinding.
            hmac::Key::new(hmac::HMAC_SHA256, b"lakehose-bearer")
        });
        let tag = hmac::sign(&key, token.as_bytes());
        Self { key, tag }
    }

    /// Whether `authorization` is `Bearer <token>` (scheme case-insensitive).
    pub fn matches(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some(value) = authorization.map(HeaderValue::as_bytes) else {
            return false;
        };
        let Some(token) = value
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case(b"bearer "))
            .map(|_| value[7..].trim_ascii())
        else {
            return false;
        };
        hmac::verify(&self.key, token, self.tag.as_ref()).is_ok()
    }
}

/// Middleware: `401` unless the request carries the bearer token.
pub async fn require_bearer(
    State(token): State<Arc<BearerToken>>,
    request: Request,
    next: Next,
) -> Response {
    if token.matches(request.headers().get(axum::http::header::AUTHORIZATION)) {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(
            axum::http::header::WWW_AUTHENTICATE,
            "Bearer realm=\"lakehose\"",
        )],
        "A valid bearer token is required.\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        let t = BearerToken::new("s3cret");
        let h = |s: &str| HeaderValue::from_str(s).unwrap();
        assert!(t.matches(Some(&h("Bearer s3cret"))));
        assert!(t.matches(Some(&h("bearer s3cret"))));
        assert!(!t.matches(Some(&h("Bearer s3cre"))));
        assert!(!t.matches(Some(&h("Bearer s3cretx"))));
        assert!(!t.matches(Some(&h("Basic s3cret"))));
        assert!(!t.matches(Some(&h("s3cret"))));
        assert!(!t.matches(None));
        assert!(!format!("{t:?}").contains("s3cret"));
    }

    #[test]
    fn services_by_endpoint() {
        let a = Authenticator::new(Keyring::new()).scope_target("AWSGlue", &["glue"]);
        assert_eq!(
            a.services_for("/", Some("Firehose_20150804.PutRecord")),
            ["firehose"]
        );
        assert_eq!(a.services_for("/", Some("AWSGlue.GetTable")), ["glue"]);
        assert_eq!(a.services_for("/v1/query", None), ["athena", "lakehose"]);
        assert_eq!(
            a.services_for("/v1/query/abc", None),
            ["athena", "lakehose"]
        );
        assert!(a.services_for("/v1/queryx", None).is_empty());
        assert!(a.services_for("/", Some("Other.Op")).is_empty());
    }
}

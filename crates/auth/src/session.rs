//! Console sessions: sign in once with an access key pair, then a cookie authenticates the
//! console's API calls, guarded against cross-site request forgery.
//!
//! - `POST /console/api/login` with `{"accessKeyId", "secretAccessKey"}` checks the pair
//!   against the keyring (the secret compared in constant time) and answers the session's CSRF
//!   token, setting `lakehose_session=<id>; Path=/; HttpOnly; Secure; SameSite=Strict`.
//! - `GET /console/api/session` says whether sign-in is needed and, for a live session, who is
//!   signed in and the CSRF token.
//! - `POST /console/api/logout` ends the session on the server.
//! - Any API request without an `Authorization` header but with the cookie is authenticated
//!   by [`Sessions::principal_for`] (called from the authentication middleware) as the
//!   session's key, with that key's policy: a session can do exactly what its key can.
//!
//! Invariants:
//! - Session ids and CSRF tokens are 256 bits from the system RNG. Only SHA-256 digests of
//!   session ids are kept, so lookups time nothing secret; tokens are compared as digests too.
//! - Every state-changing request (any method but GET and HEAD) made with a session carries
//!   its CSRF token in `X-CSRF-Token`; a request whose `Origin` is not this server, or that the
//!   browser marks `Sec-Fetch-Site: cross-site`, is refused before anything else. Sign-in
//!   checks the origin too (no login CSRF).
//! - Sessions expire after [`SESSION_TTL`] and at most [`MAX_SESSIONS`] live at once (the
//!   oldest is dropped first), so memory stays bounded whatever clients do.
//! - Refusals say only that the session is missing or the token wrong; sign-in failures do not
//!   say whether the key id or the secret was wrong.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use lakehose_api::audit::{AuditEvent, AuditLog, Outcome};
use lakehose_api::{ApiError, ErrorKind};
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::json;

use crate::config::Keyring;
use crate::policy::{Policy, Principal};

/// The session cookie's name.
pub const COOKIE: &str = "lakehose_session";
/// The header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lives after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Most sessions alive at once.
pub const MAX_SESSIONS: usize = 10_000;
/// Largest sign-in body read.
const MAX_LOGIN_BYTES: usize = 16 * 1024;

/// The live sessions and the keys they may be opened with.
#[derive(Debug)]
pub struct Sessions {
    keyring: Keyring,
    region: String,
    audit: Option<Arc<AuditLog>>,
    ttl: Duration,
    max_sessions: usize,
    live: Mutex<HashMap<[u8; 32], Session>>,
    rng: SystemRandom,
}

#[derive(Debug)]
struct Session {
    access_key_id: String,
    policy: Arc<Policy>,
    csrf: String,
    created: Instant,
}

/// Why a session-authenticated request is refused.
fn no_session() -> ApiError {
    ApiError::new(
        ErrorKind::MissingAuthenticationToken,
        "The console session is missing, expired or ended; sign in again.",
    )
}

fn bad_csrf() -> ApiError {
    ApiError::new(
        ErrorKind::AccessDenied,
        "The request's CSRF token is missing or does not belong to this session.",
    )
}

fn cross_site() -> ApiError {
    ApiError::new(
        ErrorKind::AccessDenied,
        "Cross-site requests are not allowed.",
    )
}

/// Why a session request is refused; answered by [`Refusal::into_response`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No live session for the cookie (`MissingAuthenticationTokenException`, 403).
    NoSession,
    /// The CSRF token is missing or wrong (`AccessDeniedException`, 403).
    BadCsrf,
    /// The request comes from another origin (`AccessDeniedException`, 403).
    CrossSite,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::NoSession => no_session().into_response(),
            Refusal::BadCsrf => forbidden(bad_csrf()),
            Refusal::CrossSite => forbidden(cross_site()),
        }
    }
}

/// `error` answered with 403, whatever its kind's usual status.
fn forbidden(error: ApiError) -> Response {
    let mut response = error.into_response();
    *response.status_mut() = StatusCode::FORBIDDEN;
    response
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

impl Sessions {
    /// Sessions opened with the keys of `keyring`; `region` is the region of the ARNs the
    /// console's calls act on.
    pub fn new(keyring: Keyring, region: &str) -> Self {
        Self {
            keyring,
            region: region.to_string(),
            audit: None,
            ttl: SESSION_TTL,
            max_sessions: MAX_SESSIONS,
            live: Mutex::new(HashMap::new()),
            rng: SystemRandom::new(),
        }
    }

    /// Records sign-ins in `audit`.
    pub fn with_audit(mut self, audit: Option<Arc<AuditLog>>) -> Self {
        self.audit = audit;
        self
    }

    /// Sessions that live `ttl`, at most `max_sessions` at once (defaults: [`SESSION_TTL`],
    /// [`MAX_SESSIONS`]).
    pub fn with_limits(mut self, ttl: Duration, max_sessions: usize) -> Self {
        self.ttl = ttl;
        self.max_sessions = max_sessions.max(1);
        self
    }

    fn random_hex(&self) -> Option<String> {
        let mut bytes = [0u8; 32];
        self.rng.fill(&mut bytes).ok()?;
        Some(hex::encode(bytes))
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new session for `access_key_id`: (session id, CSRF token).
    fn open(&self, access_key_id: &str, policy: Arc<Policy>) -> Option<(String, String)> {
        let (id, csrf) = (self.random_hex()?, self.random_hex()?);
        let mut live = self.live();
        let ttl = self.ttl;
        if live.len() >= self.max_sessions {
            live.retain(|_, s| s.created.elapsed() < ttl);
        }
        while live.len() >= self.max_sessions {
            let oldest = live
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(k, _)| *k)?;
            live.remove(&oldest);
        }
        live.insert(
            sha256(id.as_bytes()),
            Session {
                access_key_id: access_key_id.to_string(),
                policy,
                csrf: csrf.clone(),
                created: Instant::now(),
            },
        );
        Some((id, csrf))
    }

    /// The live session of `id`: (access key id, policy, CSRF token).
    fn find(&self, id: &str) -> Option<(String, Arc<Policy>, String)> {
        let key = sha256(id.as_bytes());
        let mut live = self.live();
        match live.get(&key) {
            Some(s) if s.created.elapsed() < self.ttl => {
                Some((s.access_key_id.clone(), s.policy.clone(), s.csrf.clone()))
            }
            Some(_) => {
                live.remove(&key);
                None
            }
            None => None,
        }
    }

    fn close(&self, id: &str) {
        self.live().remove(&sha256(id.as_bytes()));
    }

    /// For a request that carries the session cookie (and no `Authorization` header): the
    /// session's principal, or why it is refused (module docs: origin, CSRF). `None` when the
    /// request has no session cookie.
    pub fn principal_for(&self, parts: &Parts) -> Option<Result<Principal, Refusal>> {
        let id = session_cookie(&parts.headers)?;
        Some(self.check(parts, &id))
    }

    fn check(&self, parts: &Parts, id: &str) -> Result<Principal, Refusal> {
        if !same_origin(&parts.headers) {
            return Err(Refusal::CrossSite);
        }
        let Some((access_key_id, policy, csrf)) = self.find(id) else {
            return Err(Refusal::NoSession);
        };
        if parts.method != Method::GET && parts.method != Method::HEAD {
            let presented = parts
                .headers
                .get(CSRF_HEADER)
                .map(HeaderValue::as_bytes)
                .unwrap_or_default();
            if sha256(presented) != sha256(csrf.as_bytes()) {
                return Err(Refusal::BadCsrf);
            }
        }
        Ok(Principal {
            access_key_id,
            region: self.region.clone(),
            policy,
        })
    }

    fn audit_login(&self, parts: &Parts, access_key_id: &str, outcome: Outcome) {
        let Some(audit) = &self.audit else { return };
        audit.record(&AuditEvent {
            event_source: "lakehose.console",
            event_name: "ConsoleLogin",
            region: &self.region,
            access_key_id: Some(access_key_id),
            source_ip: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
            resources: Vec::new(),
            request_id: "",
            read_only: false,
            outcome,
        });
    }
}

/// The value of the session cookie, if the request has one.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

/// Whether the request comes from this server's own pages: no `Origin` (same-origin GETs,
/// non-browser clients) or an `Origin` whose host is the request's `Host`, and not marked
/// cross-site by the browser.
fn same_origin(headers: &HeaderMap) -> bool {
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let origin = origin.to_str().unwrap_or_default();
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    origin_host.is_some_and(|h| h.eq_ignore_ascii_case(host))
}

fn json_response(status: StatusCode, value: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, lakehose_api::CONTENT_TYPE)],
        value.to_string(),
    )
        .into_response()
}

fn set_cookie(response: &mut Response, value: &str, max_age: u64) {
    let cookie =
        format!("{COOKIE}={value}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={max_age}");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// The console's session routes. With `sessions` = `None` (authentication off) the console
/// needs no sign-in and `/console/api/session` says so.
pub fn router(sessions: Option<Arc<Sessions>>) -> Router {
    Router::new()
        .route("/console/api/session", get(session_info))
        .route("/console/api/login", post(login))
        .route("/console/api/logout", post(logout))
        .with_state(sessions)
}

async fn session_info(
    State(sessions): State<Option<Arc<Sessions>>>,
    headers: HeaderMap,
) -> Response {
    let Some(sessions) = sessions else {
        return json_response(
            StatusCode::OK,
            json!({"authRequired": false, "signedIn": false, "accessKeyId": null, "csrfToken": null}),
        );
    };
    let found = session_cookie(&headers).and_then(|id| sessions.find(&id));
    let mut response = match found {
        Some((key, _, csrf)) => json_response(
            StatusCode::OK,
            json!({"authRequired": true, "signedIn": true, "accessKeyId": key, "csrfToken": csrf}),
        ),
        None => json_response(
            StatusCode::OK,
            json!({"authRequired": true, "signedIn": false, "accessKeyId": null, "csrfToken": null}),
        ),
    };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct LoginInput {
    access_key_id: String,
    secret_access_key: String,
}

async fn login(State(sessions): State<Option<Arc<Sessions>>>, request: Request) -> Response {
    let Some(sessions) = sessions else {
        return ApiError::new(
            ErrorKind::InvalidArgument,
            "Authentication is off: the console needs no sign-in.",
        )
        .into_response();
    };
    let (parts, body) = request.into_parts();
    if !same_origin(&parts.headers) {
        return forbidden(cross_site());
    }
    let bytes = match axum::body::to_bytes(Body::new(body), MAX_LOGIN_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return ApiError::new(ErrorKind::RequestTooLarge, "The sign-in body is too large.")
                .into_response();
        }
    };
    let Ok(input) = serde_json::from_slice::<LoginInput>(&bytes) else {
        return ApiError::new(
            ErrorKind::Serialization,
            "Expected {\"accessKeyId\": ..., \"secretAccessKey\": ...}.",
        )
        .into_response();
    };
    let key = sessions.keyring.get(&input.access_key_id);
    // The secret is checked even for an unknown key id (against a fixed one), so the answer
    // takes as long either way.
    let known = match key {
        Some(key) => key.secret.matches(&input.secret_access_key),
        None => {
            let _ =
                crate::sigv4::Secret::new("lakehose-unknown-key").matches(&input.secret_access_key);
            false
        }
    };
    let opened = key
        .filter(|_| known)
        .and_then(|key| sessions.open(&input.access_key_id, key.policy.clone()));
    let Some((id, csrf)) = opened else {
        sessions.audit_login(
            &parts,
            &input.access_key_id,
            Outcome::Failure {
                code: "UnrecognizedClientException".into(),
                message: "sign-in failed".into(),
            },
        );
        return forbidden(ApiError::new(
            ErrorKind::UnrecognizedClient,
            "The access key ID or the secret access key is not valid.",
        ));
    };
    sessions.audit_login(&parts, &input.access_key_id, Outcome::Success);
    let mut response = json_response(
        StatusCode::OK,
        json!({"accessKeyId": input.access_key_id, "csrfToken": csrf}),
    );
    set_cookie(&mut response, &id, sessions.ttl.as_secs());
    response
}

async fn logout(State(sessions): State<Option<Arc<Sessions>>>, request: Request) -> Response {
    let Some(sessions) = sessions else {
        return json_response(StatusCode::OK, json!({}));
    };
    let (parts, _) = request.into_parts();
    let Some(id) = session_cookie(&parts.headers) else {
        return no_session().into_response();
    };
    if let Err(refused) = sessions.check(&parts, &id) {
        return refused.into_response();
    }
    sessions.close(&id);
    let mut response = json_response(StatusCode::OK, json!({}));
    set_cookie(&mut response, "", 0);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: Method, headers: &[(&str, &str)]) -> Parts {
        let mut builder = axum::http::Request::builder().method(method).uri("/");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn sessions() -> Sessions {
        Sessions::new(
            Keyring::new().with_key("AKID", "secret", Policy::deny_all()),
            "us-east-1",
        )
    }

    #[test]
    fn a_session_needs_its_own_csrf_token_for_changes() {
        let s = sessions();
        let (id, csrf) = s.open("AKID", Arc::new(Policy::deny_all())).unwrap();
        let (other_id, other_csrf) = s.open("AKID", Arc::new(Policy::deny_all())).unwrap();
        assert_ne!(id, other_id);
        assert_eq!(id.len(), 64);
        let cookie = format!("a=b; {COOKIE}={id}");
        let ok = parts(
            Method::POST,
            &[("cookie", &cookie), (CSRF_HEADER, &csrf), ("host", "h:1")],
        );
        let principal = s.principal_for(&ok).unwrap().unwrap();
        assert_eq!(principal.access_key_id, "AKID");
        for token in [None, Some(other_csrf.as_str()), Some(""), Some("x")] {
            let mut headers = vec![("cookie", cookie.as_str())];
            if let Some(t) = token {
                headers.push((CSRF_HEADER, t));
            }
            let refused = s.principal_for(&parts(Method::POST, &headers)).unwrap();
            assert_eq!(refused.unwrap_err(), Refusal::BadCsrf);
            assert_eq!(
                Refusal::BadCsrf.into_response().status(),
                StatusCode::FORBIDDEN
            );
        }
        // Reads need no token.
        assert!(
            s.principal_for(&parts(Method::GET, &[("cookie", &cookie)]))
                .unwrap()
                .is_ok()
        );
        // No cookie: not a session request at all.
        assert!(s.principal_for(&parts(Method::POST, &[])).is_none());
        // Closed: refused.
        s.close(&id);
        assert!(
            s.principal_for(&ok).unwrap().is_err(),
            "a closed session must not authenticate"
        );
    }

    #[test]
    fn cross_origin_requests_are_refused() {
        let s = sessions();
        let (id, csrf) = s.open("AKID", Arc::new(Policy::deny_all())).unwrap();
        let cookie = format!("{COOKIE}={id}");
        let base = [
            ("cookie", cookie.as_str()),
            (CSRF_HEADER, csrf.as_str()),
            ("host", "127.0.0.1:4573"),
        ];
        let with = |extra: (&'static str, &'static str)| {
            let mut h = base.to_vec();
            h.push(extra);
            s.principal_for(&parts(Method::POST, &h)).unwrap()
        };
        assert!(with(("origin", "http://127.0.0.1:4573")).is_ok());
        assert!(with(("origin", "https://127.0.0.1:4573")).is_ok());
        assert!(with(("origin", "http://evil.example")).is_err());
        assert!(with(("origin", "null")).is_err());
        assert!(with(("sec-fetch-site", "cross-site")).is_err());
        assert!(with(("sec-fetch-site", "same-origin")).is_ok());
    }

    #[test]
    fn sessions_are_bounded_and_expire() {
        let s = sessions().with_limits(SESSION_TTL, 10);
        let (first, _) = s.open("AKID", Arc::new(Policy::deny_all())).unwrap();
        let (second, _) = s.open("AKID", Arc::new(Policy::deny_all())).unwrap();
        for _ in 0..10 {
            s.open("AKID", Arc::new(Policy::deny_all())).unwrap();
        }
        assert_eq!(s.live().len(), 10);
        assert!(s.find(&first).is_none(), "the oldest session is dropped");
        assert!(s.find(&second).is_none(), "and the next oldest");
        let expiring = sessions().with_limits(Duration::from_millis(50), 10);
        let (id, _) = expiring.open("AKID", Arc::new(Policy::deny_all())).unwrap();
        assert!(expiring.find(&id).is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(expiring.find(&id).is_none(), "an expired session is gone");
    }

    #[test]
    fn secrets_compare_exactly() {
        let secret = crate::sigv4::Secret::new("s3cret");
        assert!(secret.matches("s3cret"));
        assert!(!secret.matches("s3cre"));
        assert!(!secret.matches("s3cret "));
        assert!(!secret.matches(""));
    }
}

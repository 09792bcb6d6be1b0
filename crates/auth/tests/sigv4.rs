//! SigV4 verification against an independent signer: `aws-sigv4`, the crate the AWS SDK for
//! Rust signs with.
//!
//! - 1,000 random requests (method, percent-encoded path segments, query parameters, extra
//!   signed headers, body) signed by aws-sigv4 verify; then every byte of the method, the path,
//!   the query, every signed header's value and the body is changed (to 3 other values each, and
//!   to all 255 other values for the first requests), and every change is refused, except
//!   changes to the query that decode to the same parameters (the same request). Changing an
//!   unsigned header (`user-agent`) never matters.
//! - Clock skew, scope, missing parts, unknown keys, unsigned requests: each refused with AWS's
//!   error code.
//!
//! The random requests come from a seeded RNG: `SIGV4_SEED=<n>` replays a run; a failure
//! prints its seed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use lakehose_api::{ApiError, ErrorKind};
use lakehose_auth::sigv4::{self, Authorization, RequestParts};
use lakehose_auth::{Authenticator, Keyring, Policy};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const AKID: &str = "AKIDLAKEHOSETEST";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const HOST: &str = "lakehose.test:4573";

fn keyring() -> Keyring {
    Keyring::new().with_key(AKID, SECRET, Policy::deny_all())
}

/// A request as sent: raw (percent-encoded) path and query, headers, body.
#[derive(Clone)]
struct Raw {
    method: Vec<u8>,
    path: Vec<u8>,
    query: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl std::fmt::Debug for Raw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let mut d = f.debug_struct("Raw");
        d.field("method", &text(&self.method))
            .field("path", &text(&self.path))
            .field("query", &text(&self.query));
        for (name, value) in &self.headers {
            d.field(name, &text(value));
        }
        d.field("body", &self.body).finish()
    }
}

impl Raw {
    fn header_map(&self) -> Option<HeaderMap> {
        let mut map = HeaderMap::new();
        for (name, value) in &self.headers {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).ok()?,
                HeaderValue::from_bytes(value).ok()?,
            );
        }
        Some(map)
    }

    fn uri(&self) -> String {
        let mut uri = format!("http://{HOST}{}", String::from_utf8_lossy(&self.path));
        if !self.query.is_empty() {
            uri.push('?');
            uri.push_str(&String::from_utf8_lossy(&self.query));
        }
        uri
    }
}

/// Signs `raw` with aws-sigv4 (header form, default settings) at `time` for `service`, adding
/// `authorization` and `x-amz-date` to its headers.
fn sign_with_aws(raw: &mut Raw, time: SystemTime, service: &str, secret: &str) {
    sign_with_settings(raw, time, service, secret, SigningSettings::default(), None);
}

fn sign_with_settings(
    raw: &mut Raw,
    time: SystemTime,
    service: &str,
    secret: &str,
    settings: SigningSettings,
    body: Option<SignableBody<'_>>,
) {
    let identity = Credentials::new(AKID, secret, None, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("eu-west-1")
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let method = String::from_utf8(raw.method.clone()).unwrap();
    let uri = raw.uri();
    let headers: Vec<(String, String)> = raw
        .headers
        .iter()
        .map(|(n, v)| (n.clone(), String::from_utf8(v.clone()).unwrap()))
        .collect();
    let signable = SignableRequest::new(
        &method,
        uri.as_str(),
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        body.unwrap_or(SignableBody::Bytes(&raw.body)),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    for (name, value) in instructions.headers() {
        raw.headers.retain(|(n, _)| n != name);
        raw.headers
            .push((name.to_string(), value.as_bytes().to_vec()));
    }
}

/// Verifies `raw` as the server does (all three steps), at `now`.
fn verify(keys: &Keyring, raw: &Raw, services: &[&str], now: i64) -> Result<(), ApiError> {
    let Some(headers) = raw.header_map() else {
        panic!("verify() of a request with an invalid header");
    };
    let authorization = Authorization::from_headers(&headers)?;
    authorization.check_scope(services, now)?;
    let key = keys
        .get(&authorization.access_key_id)
        .ok_or_else(sigv4::unrecognized)?;
    let parts = RequestParts {
        method: &raw.method,
        path: &raw.path,
        query: &raw.query,
        headers: &headers,
        authority: None,
    };
    authorization.verify(&key.secret, &parts, &raw.body)
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

// --- random requests ---------------------------------------------------------------------

/// Characters a path or query component is made of: safe ones, ones that need encoding,
/// and non-ASCII.
const ALPHABET: &[&str] = &[
    "a",
    "b",
    "Z",
    "0",
    "9",
    "-",
    "_",
    "~",
    ".",
    " ",
    "%",
    "/",
    "?",
    "#",
    "&",
    "=",
    "+",
    ":",
    "@",
    "!",
    "$",
    "'",
    "(",
    ")",
    "*",
    ",",
    ";",
    "[",
    "]",
    "é",
    "日",
    "\u{1F600}",
    "\"",
    "<",
    "^",
];

fn random_text(rng: &mut StdRng, min: usize, max: usize) -> String {
    let len = rng.random_range(min..=max);
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
        .collect()
}

/// Percent-encodes every byte but `A-Za-z0-9-._~` (what SDKs send), leaving some
/// sub-delimiters raw at random in paths (they are legal there).
fn percent_encode(rng: &mut StdRng, s: &str, path: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        let raw_ok = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (path
                && matches!(
                    b,
                    b':' | b'@'
                        | b'!'
                        | b'$'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b','
                        | b';'
                        | b'='
                        | b'&'
                        | b'+'
                )
                && rng.random_bool(0.5));
        if raw_ok {
            out.push(b as char);
        } else if rng.random_bool(0.8) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

fn random_request(rng: &mut StdRng) -> Raw {
    let method = ["POST", "GET", "PUT"][rng.random_range(0..3)];
    let mut path = String::new();
    for _ in 0..rng.random_range(0..=4) {
        let segment = loop {
            let s = random_text(rng, 1, 8);
            // Dot segments are normalized away by every signer; they are not generated.
            if s != "." && s != ".." {
                break s;
            }
        };
        path.push('/');
        path.push_str(&percent_encode(rng, &segment, true));
    }
    if path.is_empty() || rng.random_bool(0.1) {
        path.push('/');
    }
    let mut params = Vec::new();
    for _ in 0..rng.random_range(0..=4) {
        let key = random_text(rng, 1, 6);
        let key = percent_encode(rng, &key, false);
        let value = random_text(rng, 0, 8);
        let value = percent_encode(rng, &value, false);
        if value.is_empty() && rng.random_bool(0.3) {
            params.push(key);
        } else {
            params.push(format!("{key}={value}"));
        }
    }
    let query = params.join("&");
    let mut headers = vec![
        ("host".to_string(), HOST.as_bytes().to_vec()),
        (
            "content-type".to_string(),
            b"application/x-amz-json-1.1".to_vec(),
        ),
        (
            "user-agent".to_string(),
            b"aws-sdk-rust/1.0 os/linux lang/rust".to_vec(),
        ),
    ];
    for i in 0..rng.random_range(0..=3) {
        let name = format!("x-amz-meta-{i}{}", rng.random_range(0..1000));
        // Visible ASCII, single inner spaces (what a canonical value looks like).
        let len = rng.random_range(1..=20);
        let mut value = String::new();
        for j in 0..len {
            let c = rng.random_range(0x21u8..0x7f) as char;
            if j > 0 && j + 1 < len && rng.random_bool(0.15) && !value.ends_with(' ') {
                value.push(' ');
            }
            value.push(c);
        }
        headers.push((name, value.into_bytes()));
    }
    let body: Vec<u8> = (0..rng.random_range(0..=200))
        .map(|_| rng.random())
        .collect();
    Raw {
        method: method.as_bytes().to_vec(),
        path: path.into_bytes(),
        query: query.into_bytes(),
        headers,
        body,
    }
}

/// The query's parameters as a server decodes them (form decoding, sorted).
fn decoded_query(query: &[u8]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = url::form_urlencoded::parse(query)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    pairs.sort();
    pairs
}

/// What a byte of a request is.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Field {
    Method,
    Path,
    Query,
    Header(usize),
    Body,
}

fn field_mut(raw: &mut Raw, field: Field) -> &mut Vec<u8> {
    match field {
        Field::Method => &mut raw.method,
        Field::Path => &mut raw.path,
        Field::Query => &mut raw.query,
        Field::Header(i) => &mut raw.headers[i].1,
        Field::Body => &mut raw.body,
    }
}

struct Tally {
    refused: u64,
    same_request: u64,
    unsendable: u64,
    unsigned_accepted: u64,
}

/// Changes one byte of `field` at `at` to `value` and checks the outcome.
fn check_mutation(
    keys: &Keyring,
    signed: &Raw,
    field: Field,
    at: usize,
    value: u8,
    now: i64,
    tally: &mut Tally,
) -> Result<(), String> {
    let mut m = signed.clone();
    field_mut(&mut m, field)[at] = value;
    if let Field::Header(i) = field
        && HeaderValue::from_bytes(&m.headers[i].1).is_err()
    {
        // HTTP cannot carry this value (a control character): nothing to verify.
        tally.unsendable += 1;
        return Ok(());
    }
    if field == Field::Path && m.path.first() != Some(&b'/') {
        // An HTTP request target (origin form) starts with `/`: nothing to verify.
        tally.unsendable += 1;
        return Ok(());
    }
    let unsigned = matches!(field, Field::Header(i) if signed.headers[i].0 == "user-agent");
    let same = field == Field::Query && decoded_query(&m.query) == decoded_query(&signed.query);
    let outcome = verify(keys, &m, &["firehose"], now);
    let describe = format!(
        "{field:?} byte {at} -> {value:#04x}: {:?}\nsigned: {signed:?}",
        outcome.as_ref().err().map(|e| e.to_string())
    );
    if unsigned {
        tally.unsigned_accepted += 1;
        return outcome.map_err(|_| format!("unsigned header change refused: {describe}"));
    }
    if same {
        tally.same_request += 1;
        return outcome.map_err(|_| format!("equivalent query refused: {describe}"));
    }
    match outcome {
        Ok(()) => Err(format!("change accepted: {describe}")),
        Err(_) => {
            tally.refused += 1;
            Ok(())
        }
    }
}

#[test]
fn random_requests_verify_and_every_byte_change_is_refused() {
    let seed: u64 = std::env::var("SIGV4_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let mut rng = StdRng::seed_from_u64(seed);
    let keys = keyring();
    let mut tally = Tally {
        refused: 0,
        same_request: 0,
        unsendable: 0,
        unsigned_accepted: 0,
    };
    let started = std::time::Instant::now();
    for n in 0..1000 {
        let mut raw = random_request(&mut rng);
        // A time within the last few years, and the server's clock a little off from it.
        let time = UNIX_EPOCH + Duration::from_secs(rng.random_range(1_600_000_000..1_800_000_000));
        let now = unix(time) + rng.random_range(-299..=299);
        sign_with_aws(&mut raw, time, "firehose", SECRET);
        if let Err(e) = verify(&keys, &raw, &["firehose"], now) {
            panic!("seed {seed}: request {n} signed by aws-sigv4 refused: {e}\n{raw:?}");
        }
        let mut fields = vec![Field::Method, Field::Path, Field::Query, Field::Body];
        // Every header but `authorization` (which carries the signature and is not signed
        // itself); `user-agent` is not signed either and must not matter.
        fields.extend(
            (0..raw.headers.len())
                .filter(|&i| raw.headers[i].0 != "authorization")
                .map(Field::Header),
        );
        // All 255 other values for the first requests, 3 for the rest (one flips case).
        let exhaustive = n < 10;
        for field in fields {
            let len = field_mut(&mut raw.clone(), field).len();
            for at in 0..len {
                let original = field_mut(&mut raw.clone(), field)[at];
                let values: Vec<u8> = if exhaustive {
                    (0..=255u8).filter(|&v| v != original).collect()
                } else {
                    vec![
                        original ^ 0x20,
                        original ^ 0x01,
                        original ^ rng.random_range(1..=255u8),
                    ]
                };
                for value in values {
                    if let Err(e) = check_mutation(&keys, &raw, field, at, value, now, &mut tally) {
                        panic!("seed {seed}: request {n}: {e}");
                    }
                }
            }
        }
    }
    assert!(tally.unsigned_accepted > 0, "user-agent was mutated");
    eprintln!(
        "seed {seed}: {} changes refused, {} equivalent queries accepted, {} unsigned-header \
         changes accepted, {} unsendable changes (control characters in header values, a path not starting with /) skipped, in {:?}",
        tally.refused,
        tally.same_request,
        tally.unsigned_accepted,
        tally.unsendable,
        started.elapsed()
    );
}

// --- one request, one rule -------------------------------------------------------------------

fn firehose_request() -> Raw {
    Raw {
        method: b"POST".to_vec(),
        path: b"/".to_vec(),
        query: Vec::new(),
        headers: vec![
            ("host".into(), HOST.as_bytes().to_vec()),
            (
                "content-type".into(),
                b"application/x-amz-json-1.1".to_vec(),
            ),
            (
                "x-amz-target".into(),
                b"Firehose_20150804.PutRecord".to_vec(),
            ),
        ],
        body: br#"{"DeliveryStreamName":"s","Record":{"Data":"aGk="}}"#.to_vec(),
    }
}

fn signed_at(time: SystemTime) -> Raw {
    let mut raw = firehose_request();
    sign_with_aws(&mut raw, time, "firehose", SECRET);
    raw
}

fn kind(r: Result<(), ApiError>) -> (ErrorKind, String) {
    let e = r.expect_err("refused");
    (e.kind, e.message)
}

fn set_header(raw: &mut Raw, name: &str, value: &str) {
    raw.headers.retain(|(n, _)| n != name);
    raw.headers.push((name.into(), value.as_bytes().to_vec()));
}

fn header(raw: &Raw, name: &str) -> String {
    let (_, v) = raw.headers.iter().find(|(n, _)| n == name).unwrap();
    String::from_utf8(v.clone()).unwrap()
}

#[test]
fn clock_skew_of_299_seconds_is_accepted_and_301_refused() {
    let keys = keyring();
    let now = SystemTime::now();
    let n = unix(now);
    for offset in [-299i64, 0, 299, -300, 300] {
        let t = UNIX_EPOCH + Duration::from_secs((n + offset) as u64);
        verify(&keys, &signed_at(t), &["firehose"], n)
            .unwrap_or_else(|e| panic!("signed {offset} s from now: {e}"));
    }
    let past = UNIX_EPOCH + Duration::from_secs((n - 301) as u64);
    let (k, m) = kind(verify(&keys, &signed_at(past), &["firehose"], n));
    assert_eq!(k, ErrorKind::InvalidSignature);
    assert!(m.starts_with("Signature expired: "), "{m}");
    assert!(m.contains(" is now earlier than "), "{m}");
    assert!(m.ends_with(" - 5 min.)"), "{m}");
    let future = UNIX_EPOCH + Duration::from_secs((n + 301) as u64);
    let (k, m) = kind(verify(&keys, &signed_at(future), &["firehose"], n));
    assert_eq!(k, ErrorKind::InvalidSignature);
    assert!(m.starts_with("Signature not yet current: "), "{m}");
    assert!(m.contains(" is still later than "), "{m}");
}

#[test]
fn wrong_scope_is_refused() {
    let keys = keyring();
    let now = SystemTime::now();
    let n = unix(now);
    let good = signed_at(now);
    let auth = header(&good, "authorization");

    // Signed for another service (valid signature, wrong endpoint).
    let mut glue = firehose_request();
    sign_with_aws(&mut glue, now, "glue", SECRET);
    let (k, m) = kind(verify(&keys, &glue, &["firehose"], n));
    assert_eq!(k, ErrorKind::InvalidSignature);
    assert_eq!(
        m,
        "Credential should be scoped to correct service: 'firehose'."
    );
    verify(&keys, &glue, &["glue"], n).unwrap();
    // Any region is accepted (it is the region of the ARNs).
    verify(&keys, &good, &[], n).unwrap();

    // Scope date not the X-Amz-Date day.
    let date = &header(&good, "x-amz-date")[..8];
    let mut wrong_date = good.clone();
    set_header(
        &mut wrong_date,
        "authorization",
        &auth.replace(&format!("/{date}/"), "/20000101/"),
    );
    let (k, m) = kind(verify(&keys, &wrong_date, &["firehose"], n));
    assert_eq!(k, ErrorKind::InvalidSignature);
    assert!(m.starts_with("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20000101' != "), "{m}");

    // Wrong terminator.
    let mut wrong_term = good.clone();
    set_header(
        &mut wrong_term,
        "authorization",
        &auth.replace("/aws4_request", "/aws5_request"),
    );
    let (k, m) = kind(verify(&keys, &wrong_term, &["firehose"], n));
    assert_eq!(k, ErrorKind::InvalidSignature);
    assert_eq!(
        m,
        "Credential should be scoped with a valid terminator: 'aws4_request', not 'aws5_request'."
    );

    // A credential with 4 parts.
    let mut short = good.clone();
    set_header(
        &mut short,
        "authorization",
        &auth.replace("/eu-west-1/", "/"),
    );
    assert_eq!(
        kind(verify(&keys, &short, &["firehose"], n)).0,
        ErrorKind::IncompleteSignature
    );
}

#[test]
fn host_and_date_must_be_signed() {
    let keys = keyring();
    let now = SystemTime::now();
    let n = unix(now);
    let good = signed_at(now);
    let auth = header(&good, "authorization");
    assert!(
        auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-target,"),
        "{auth}"
    );
    for (from, to, needle) in [
        (
            "SignedHeaders=content-type;host;",
            "SignedHeaders=content-type;",
            "'Host' must be a 'SignedHeader'",
        ),
        (";x-amz-date;", ";", "'X-Amz-Date' must be a 'SignedHeader'"),
    ] {
        let mut raw = good.clone();
        set_header(&mut raw, "authorization", &auth.replace(from, to));
        let (k, m) = kind(verify(&keys, &raw, &["firehose"], n));
        assert_eq!(k, ErrorKind::IncompleteSignature, "{m}");
        assert!(m.contains(needle), "{m}");
    }
    // `Date` does not stand in for `X-Amz-Date`.
    let mut dated = good.clone();
    dated.headers.retain(|(n, _)| n != "x-amz-date");
    set_header(&mut dated, "date", "Mon, 01 Jan 2024 00:00:00 GMT");
    let (k, m) = kind(verify(&keys, &dated, &["firehose"], n));
    assert_eq!(k, ErrorKind::IncompleteSignature);
    assert!(m.contains("'X-Amz-Date'"), "{m}");
    // Malformed headers.
    for bad in [
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA256 Credential=x",
        "AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature=00",
        "AWS4-HMAC-SHA256 Credential, SignedHeaders=host, Signature=0",
        "Basic dXNlcjpwYXNz",
        "AWS4-ECDSA-P256-SHA256 Credential=a/b/c/d/e, SignedHeaders=host;x-amz-date, Signature=0",
    ] {
        let mut raw = good.clone();
        set_header(&mut raw, "authorization", bad);
        assert_eq!(
            kind(verify(&keys, &raw, &["firehose"], n)).0,
            ErrorKind::IncompleteSignature,
            "{bad}"
        );
    }
    let mut raw = good.clone();
    set_header(&mut raw, "x-amz-date", "2024-01-01T00:00:00Z");
    assert_eq!(
        kind(verify(&keys, &raw, &["firehose"], n)).0,
        ErrorKind::IncompleteSignature
    );
}

#[test]
fn unknown_keys_wrong_secrets_and_unsigned_requests() {
    let now = SystemTime::now();
    let n = unix(now);
    let good = signed_at(now);
    // Unknown access key.
    let (k, m) = kind(verify(&Keyring::new(), &good, &["firehose"], n));
    assert_eq!(k, ErrorKind::UnrecognizedClient);
    assert_eq!(m, "The security token included in the request is invalid.");
    // Wrong secret: AWS's fixed message, nothing more.
    let mut wrong = firehose_request();
    sign_with_aws(&mut wrong, now, "firehose", "not-the-secret");
    let (k, m) = kind(verify(&keyring(), &wrong, &["firehose"], n));
    assert_eq!(k, ErrorKind::InvalidSignature);
    assert_eq!(
        m,
        "The request signature we calculated does not match the signature you provided. Check \
         your AWS Secret Access Key and signing method. Consult the service documentation for \
         details."
    );
    // No Authorization header at all.
    let mut unsigned = good.clone();
    unsigned.headers.retain(|(n, _)| n != "authorization");
    let (k, m) = kind(verify(&keyring(), &unsigned, &["firehose"], n));
    assert_eq!(k, ErrorKind::MissingAuthenticationToken);
    assert_eq!(m, "Missing Authentication Token");
    assert_eq!(k.status(), axum::http::StatusCode::FORBIDDEN);
    // A signature that is not hex.
    let mut garbage = good.clone();
    let auth = header(&good, "authorization");
    let sig = auth.rsplit("Signature=").next().unwrap().to_string();
    set_header(&mut garbage, "authorization", &auth.replace(&sig, "zz"));
    assert_eq!(
        kind(verify(&keyring(), &garbage, &["firehose"], n)).0,
        ErrorKind::InvalidSignature
    );
}

#[test]
fn the_body_as_received_is_what_is_signed() {
    let keys = keyring();
    let now = SystemTime::now();
    let n = unix(now);
    // UNSIGNED-PAYLOAD (with x-amz-content-sha256 announcing it) is refused.
    let mut raw = firehose_request();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    sign_with_settings(
        &mut raw,
        now,
        "firehose",
        SECRET,
        settings.clone(),
        Some(SignableBody::UnsignedPayload),
    );
    assert_eq!(header(&raw, "x-amz-content-sha256"), "UNSIGNED-PAYLOAD");
    assert_eq!(
        kind(verify(&keys, &raw, &["firehose"], n)).0,
        ErrorKind::InvalidSignature
    );
    // The real digest in x-amz-content-sha256 (signed) is fine.
    let mut raw = firehose_request();
    sign_with_settings(&mut raw, now, "firehose", SECRET, settings, None);
    verify(&keys, &raw, &["firehose"], n).unwrap();
    // ... and changing the body is refused even though the header still says the old digest.
    raw.body.push(b' ');
    assert_eq!(
        kind(verify(&keys, &raw, &["firehose"], n)).0,
        ErrorKind::InvalidSignature
    );
}

#[test]
fn session_tokens_are_refused_and_full_requests_verify() {
    let now = SystemTime::now();
    let n = unix(now);
    let auth = Authenticator::new(keyring());
    let good = signed_at(now);
    let request = |raw: &Raw| {
        let mut builder = axum::http::Request::builder()
            .method(std::str::from_utf8(&raw.method).unwrap())
            .uri(String::from_utf8(raw.path.clone()).unwrap());
        for (name, value) in &raw.headers {
            builder = builder.header(name, value.as_slice());
        }
        builder.body(()).unwrap().into_parts().0
    };
    let principal = auth.authenticate(&request(&good), &good.body, n).unwrap();
    assert_eq!(principal.access_key_id, AKID);
    assert_eq!(principal.region, "eu-west-1");
    let mut with_token = good.clone();
    set_header(&mut with_token, "x-amz-security-token", "FQoGZXIvYXdzE");
    let e = auth
        .authenticate(&request(&with_token), &with_token.body, n)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::UnrecognizedClient);
    // The scope's service is checked against the target called.
    let mut glue_target = good.clone();
    set_header(&mut glue_target, "x-amz-target", "AWSGlue.GetTable");
    let auth = auth.scope_target("AWSGlue", &["glue"]);
    let e = auth
        .authenticate(&request(&glue_target), &glue_target.body, n)
        .unwrap_err();
    assert_eq!(
        e.message,
        "Credential should be scoped to correct service: 'glue'."
    );
}

#[test]
fn our_signer_matches_aws_sigv4() {
    let mut rng = StdRng::seed_from_u64(7);
    let keys = keyring();
    for _ in 0..200 {
        let mut raw = random_request(&mut rng);
        // Sign only what our signer signs (host, content-type, x-amz-*).
        raw.headers.retain(|(n, _)| n != "user-agent");
        let time = UNIX_EPOCH + Duration::from_secs(rng.random_range(1_600_000_000..1_800_000_000));
        let mut theirs = raw.clone();
        sign_with_aws(&mut theirs, time, "firehose", SECRET);
        let mut headers = raw.header_map().unwrap();
        sigv4::sign(
            std::str::from_utf8(&raw.method).unwrap(),
            std::str::from_utf8(&raw.path).unwrap(),
            std::str::from_utf8(&raw.query).unwrap(),
            &mut headers,
            &raw.body,
            AKID,
            SECRET,
            "eu-west-1",
            "firehose",
            unix(time),
        );
        assert_eq!(
            headers["authorization"].to_str().unwrap(),
            header(&theirs, "authorization"),
            "{raw:?}"
        );
        let mut ours = raw.clone();
        ours.headers = headers
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
            .collect();
        verify(&keys, &ours, &["firehose"], unix(time)).unwrap();
    }
}

/// The AWS SigV4 test suite's `get-vanilla` case.
#[test]
fn aws_test_suite_get_vanilla() {
    let keys = Keyring::new().with_key(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        Policy::deny_all(),
    );
    let raw = Raw {
        method: b"GET".to_vec(),
        path: b"/".to_vec(),
        query: Vec::new(),
        headers: vec![
            ("host".into(), b"example.amazonaws.com".to_vec()),
            ("x-amz-date".into(), b"20150830T123600Z".to_vec()),
            (
                "authorization".into(),
                b"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                  SignedHeaders=host;x-amz-date, \
                  Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
                    .to_vec(),
            ),
        ],
        body: Vec::new(),
    };
    let now = sigv4::parse_amz_date("20150830T123600Z").unwrap();
    verify(&keys, &raw, &["service"], now).unwrap();
}

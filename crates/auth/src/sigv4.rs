//! AWS Signature Version 4, header form (`Authorization: AWS4-HMAC-SHA256 Credential=AKID/DATE/
//! REGION/SERVICE/aws4_request, SignedHeaders=..., Signature=...`), verified as AWS verifies it.
//!
//! Verification runs in three steps, so the cheap refusals need neither a key nor the body:
//! 1. [`Authorization::from_headers`]: the header is there (else
//!    `MissingAuthenticationTokenException`, 403), uses `AWS4-HMAC-SHA256`, has `Credential`,
//!    `SignedHeaders` and `Signature`, the request has one `X-Amz-Date` in ISO-8601 basic format
//!    (`20150830T123600Z`), `SignedHeaders` lists `host` and `x-amz-date`, and the credential has
//!    five parts (else `IncompleteSignatureException`). The `Date` header is not accepted in
//!    place of `X-Amz-Date`.
//! 2. [`Authorization::check_scope`]: the scope's date is the `X-Amz-Date` day, its service is
//!    one the endpoint answers (`firehose`, `glue`, `athena`, ...), its terminator is
//!    `aws4_request`, its region is a plain name (any region is accepted; it is the region ARNs
//!    of the request use), and `|now - X-Amz-Date| <= 300 s` (else
//!    `InvalidSignatureException`, with AWS's wording: "Signature expired: ... is now earlier
//!    than ...", "Signature not yet current: ... is still later than ...").
//! 3. [`Authorization::verify`]: the signature recomputed with the key's secret over the
//!    canonical request must match, compared in constant time (`ring::hmac::verify`); a
//!    mismatch answers AWS's fixed message and nothing else (no canonical request, no
//!    string to sign).
//!
//! What is signed (the canonical request), exactly as the AWS SDKs build it (aws-sigv4's
//! defaults for every service but S3):
//! - the method, byte for byte;
//! - the path as received (still percent-encoded), with `.`/`..` and empty segments removed
//!   (RFC 3986 5.2.4) and then percent-encoded again (every byte but `A-Za-z0-9-._~/`);
//! - the query: `&`-separated pairs, form-decoded (`+` is a space), re-encoded (every byte but
//!   `A-Za-z0-9-._~`), sorted; decoding is byte-exact (no lossy UTF-8), so two queries share
//!   a canonical form only if they decode to the same bytes;
//! - each signed header, in the order `SignedHeaders` lists them: lower-cased name, values
//!   with spaces trimmed and runs of spaces collapsed, several values joined by `,`. `host`
//!   falls back to the URI authority (HTTP/2 sends `:authority`, no `Host`). A signed header
//!   the request does not carry fails verification;
//! - the payload hash: SHA-256 of the body **as received**. `X-Amz-Content-Sha256` is never
//!   trusted in place of it: a client that signed another value (`UNSIGNED-PAYLOAD`,
//!   `STREAMING-...`, a wrong digest) fails verification, so every byte of every accepted body
//!   is covered by the signature.
//!
//! Not supported: query-string (presigned) authentication and session tokens (a request with
//! `X-Amz-Security-Token` is refused as `UnrecognizedClientException`: there is no STS).

use axum::http::HeaderMap;
use lakehose_api::{ApiError, ErrorKind};
use ring::{digest, hmac};

/// The only algorithm accepted.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Largest accepted difference, in seconds, between `X-Amz-Date` and the server's clock.
pub const MAX_SKEW_SECS: i64 = 300;
/// The credential scope's terminator.
pub const TERMINATOR: &str = "aws4_request";

/// AWS's message for a signature that does not match (nothing else is said).
pub const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the \
     signature you provided. Check your AWS Secret Access Key and signing method. Consult the \
     service documentation for details.";
/// AWS's message for an unknown access key id (or a session token).
pub const UNRECOGNIZED_CLIENT: &str = "The security token included in the request is invalid.";
/// The message of a request without `Authorization`.
pub const MISSING_TOKEN: &str = "Missing Authentication Token";

/// The parts of a request that SigV4 signs, as received.
#[derive(Clone, Copy, Debug)]
pub struct RequestParts<'a> {
    /// The method, e.g. `POST`.
    pub method: &'a [u8],
    /// The path as received, still percent-encoded (`/` for the AWS JSON APIs).
    pub path: &'a [u8],
    /// The query as received, without the `?` (empty when there is none).
    pub query: &'a [u8],
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The URI authority, used as `host` when there is no `Host` header (HTTP/2).
    pub authority: Option<&'a str>,
}

/// A signing secret: `"AWS4" + secret access key`, the root of the key derivation. Its `Debug`
/// shows nothing.
#[derive(Clone)]
pub struct Secret(std::sync::Arc<[u8]>);

impl Secret {
    /// The secret of `secret_access_key`.
    pub fn new(secret_access_key: &str) -> Self {
        let mut k = Vec::with_capacity(4 + secret_access_key.len());
        k.extend_from_slice(b"AWS4");
        k.extend_from_slice(secret_access_key.as_bytes());
        Self(k.into())
    }

    /// The signing key of one credential scope (`kSigning`).
    fn signing_key(&self, date: &str, region: &str, service: &str) -> hmac::Key {
        let step = |key: &[u8], data: &str| {
            hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
        };
        let k_date = step(&self.0, date);
        let k_region = step(k_date.as_ref(), region);
        let k_service = step(k_region.as_ref(), service);
        let k_signing = step(k_service.as_ref(), TERMINATOR);
        hmac::Key::new(hmac::HMAC_SHA256, k_signing.as_ref())
    }
}

impl Secret {
    /// Whether `secret_access_key` is this secret, compared in constant time (both derive a
    /// signing key for a fixed scope; the tags are compared by `ring::hmac::verify`). For the
    /// console's sign-in, where the secret itself is presented.
    pub fn matches(&self, secret_access_key: &str) -> bool {
        const SCOPE: (&str, &str, &str) = ("19700101", "lakehose", "console");
        let message = b"lakehose console sign-in";
        let expected = hmac::sign(&self.signing_key(SCOPE.0, SCOPE.1, SCOPE.2), message);
        let presented = Secret::new(secret_access_key).signing_key(SCOPE.0, SCOPE.1, SCOPE.2);
        hmac::verify(&presented, message, expected.as_ref()).is_ok()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A parsed `Authorization` header with its `X-Amz-Date`: complete, not yet verified.
#[derive(Clone, Debug)]
pub struct Authorization {
    /// The access key id of the credential.
    pub access_key_id: String,
    /// The credential scope's date (`YYYYMMDD`).
    pub date: String,
    /// The credential scope's region.
    pub region: String,
    /// The credential scope's service (signing name).
    pub service: String,
    /// The credential scope's terminator (checked by [`Authorization::check_scope`]).
    pub terminator: String,
    /// The signed header names, lower-cased, in the order given.
    pub signed_headers: Vec<String>,
    /// The signature as sent (hex).
    pub signature: String,
    /// `X-Amz-Date` as sent.
    pub amz_date: String,
    /// `X-Amz-Date` in seconds since the Unix epoch.
    pub time: i64,
}

fn incomplete(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::IncompleteSignature, message)
}

fn invalid_signature(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::InvalidSignature, message)
}

/// `InvalidSignatureException` with AWS's fixed mismatch message.
pub fn mismatch() -> ApiError {
    invalid_signature(SIGNATURE_MISMATCH)
}

/// `UnrecognizedClientException`.
pub fn unrecognized() -> ApiError {
    ApiError::new(ErrorKind::UnrecognizedClient, UNRECOGNIZED_CLIENT)
}

/// `MissingAuthenticationTokenException` (403).
pub fn missing() -> ApiError {
    ApiError::new(ErrorKind::MissingAuthenticationToken, MISSING_TOKEN)
}

impl Authorization {
    /// Step 1: reads the `Authorization` and `X-Amz-Date` headers. Needs neither a key nor the
    /// body.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        let mut values = headers.get_all(axum::http::header::AUTHORIZATION).iter();
        let Some(value) = values.next() else {
            return Err(missing());
        };
        if values.next().is_some() {
            return Err(incomplete("Only one Authorization header may be sent."));
        }
        let value = value
            .to_str()
            .map_err(|_| incomplete("The Authorization header is not ASCII text."))?
            .trim();
        let (algorithm, rest) = value.split_once(' ').unwrap_or((value, ""));
        if algorithm != ALGORITHM {
            return Err(incomplete(format!(
                "Unsupported AWS 'algorithm': '{}' (only {ALGORITHM} for now).",
                truncate(algorithm)
            )));
        }
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, value)) = part.split_once('=') else {
                return Err(incomplete(format!(
                    "'{}' not a valid key=value pair (missing equal-sign) in Authorization header.",
                    truncate(part)
                )));
            };
            let slot = match key.trim() {
                "Credential" => &mut credential,
                "SignedHeaders" => &mut signed,
                "Signature" => &mut signature,
                _ => continue,
            };
            if slot.replace(value.trim()).is_some() {
                return Err(incomplete(format!(
                    "'{key}' is repeated in the Authorization header."
                )));
            }
        }
        let mut dates = headers.get_all("x-amz-date").iter();
        let amz_date = dates.next();
        if dates.next().is_some() {
            return Err(incomplete("Only one X-Amz-Date header may be sent."));
        }
        let mut missing_parts = String::new();
        for (name, found) in [
            ("Credential", credential.is_some_and(|v| !v.is_empty())),
            ("Signature", signature.is_some_and(|v| !v.is_empty())),
            ("SignedHeaders", signed.is_some_and(|v| !v.is_empty())),
        ] {
            if !found {
                missing_parts.push_str(&format!(
                    "Authorization header requires '{name}' parameter. "
                ));
            }
        }
        if amz_date.is_none() {
            missing_parts
                .push_str("Authorization header requires existence of a 'X-Amz-Date' header. ");
        }
        if !missing_parts.is_empty() {
            return Err(incomplete(missing_parts.trim_end()));
        }
        let (credential, signed, signature) = (
            credential.unwrap_or_default(),
            signed.unwrap_or_default(),
            signature.unwrap_or_default(),
        );
        let signed_headers: Vec<String> = signed.split(';').map(str::to_ascii_lowercase).collect();
        for (name, shown) in [("host", "Host"), ("x-amz-date", "X-Amz-Date")] {
            if !signed_headers.iter().any(|h| h == name) {
                return Err(incomplete(format!(
                    "'{shown}' must be a 'SignedHeader' in the AWS Authorization."
                )));
            }
        }
        let scope: Vec<&str> = credential.split('/').collect();
        let [access_key_id, date, region, service, terminator] = scope[..] else {
            return Err(incomplete(format!(
                "Credential must have exactly 5 slash-delimited elements, e.g. \
                 keyid/date/region/service/term, got '{}'",
                truncate(credential)
            )));
        };
        let amz_date = amz_date
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let time = parse_amz_date(&amz_date).ok_or_else(|| {
            incomplete(format!(
                "Date must be in ISO-8601 'basic format'. Got '{}'. See \
                 http://en.wikipedia.org/wiki/ISO_8601",
                truncate(&amz_date)
            ))
        })?;
        Ok(Self {
            access_key_id: access_key_id.to_string(),
            date: date.to_string(),
            region: region.to_string(),
            service: service.to_string(),
            terminator: terminator.to_string(),
            signed_headers,
            signature: signature.to_string(),
            amz_date,
            time,
        })
    }

    /// Step 2: the credential scope and the clock. `services` are the signing names the
    /// endpoint called accepts (empty: any); `now` is the server's time in Unix seconds.
    pub fn check_scope(&self, services: &[&str], now: i64) -> Result<(), ApiError> {
        let mut problems = Vec::new();
        if !valid_region(&self.region) {
            problems.push(format!(
                "Credential should be scoped to a valid region, not '{}'.",
                truncate(&self.region)
            ));
        }
        if let Some(expected) = services.first()
            && !services.contains(&self.service.as_str())
        {
            problems.push(format!(
                "Credential should be scoped to correct service: '{expected}'."
            ));
        }
        if self.terminator != TERMINATOR {
            problems.push(format!(
                "Credential should be scoped with a valid terminator: '{TERMINATOR}', not '{}'.",
                truncate(&self.terminator)
            ));
        }
        if self.date != self.amz_date[..8] {
            problems.push(format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
                 from HTTP: '{}' != '{}', from '{}'.",
                truncate(&self.date),
                &self.amz_date[..8],
                self.amz_date
            ));
        }
        if !problems.is_empty() {
            return Err(invalid_signature(problems.join(" ")));
        }
        if self.time < now - MAX_SKEW_SECS {
            return Err(invalid_signature(format!(
                "Signature expired: {} is now earlier than {} ({} - 5 min.)",
                self.amz_date,
                format_amz_date(now - MAX_SKEW_SECS),
                format_amz_date(now)
            )));
        }
        if self.time > now + MAX_SKEW_SECS {
            return Err(invalid_signature(format!(
                "Signature not yet current: {} is still later than {} ({} + 5 min.)",
                self.amz_date,
                format_amz_date(now + MAX_SKEW_SECS),
                format_amz_date(now)
            )));
        }
        Ok(())
    }

    /// Step 3: the signature over `request` and `body`, with the access key's `secret`.
    pub fn verify(
        &self,
        secret: &Secret,
        request: &RequestParts<'_>,
        body: &[u8],
    ) -> Result<(), ApiError> {
        let Ok(provided) = hex::decode(&self.signature) else {
            return Err(mismatch());
        };
        let payload_hash = hex::encode(digest::digest(&digest::SHA256, body));
        let canonical =
            canonical_request(request, &self.signed_headers, &payload_hash).ok_or_else(mismatch)?;
        let to_sign = string_to_sign(&self.amz_date, &self.scope(), &canonical);
        let key = secret.signing_key(&self.date, &self.region, &self.service);
        hmac::verify(&key, to_sign.as_bytes(), &provided).map_err(|_| mismatch())
    }

    /// `DATE/REGION/SERVICE/aws4_request`.
    fn scope(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.date, self.region, self.service, self.terminator
        )
    }
}

/// At most 64 characters of client input in an error message.
fn truncate(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// A region name: 1 to 64 of `A-Za-z0-9-` (what ARNs of the request will carry).
fn valid_region(region: &str) -> bool {
    (1..=64).contains(&region.len())
        && region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The string to sign: algorithm, request time, scope, SHA-256 of the canonical request.
fn string_to_sign(amz_date: &str, scope: &str, canonical: &[u8]) -> String {
    let hash = hex::encode(digest::digest(&digest::SHA256, canonical));
    format!("{ALGORITHM}\n{amz_date}\n{scope}\n{hash}")
}

/// The canonical request, as bytes (header values and the method are signed byte for byte);
/// `None` when a signed header is missing from the request.
pub fn canonical_request(
    request: &RequestParts<'_>,
    signed_headers: &[String],
    payload_hash: &str,
) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(request.method);
    out.push(b'\n');
    out.extend_from_slice(canonical_uri(request.path).as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_query(request.query).as_bytes());
    out.push(b'\n');
    for name in signed_headers {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        let mut values = request.headers.get_all(name.as_str()).iter().peekable();
        if values.peek().is_none() {
            // HTTP/2 carries the host as `:authority`, which hyper puts in the URI.
            match (name.as_str(), request.authority) {
                ("host", Some(authority)) => push_trimmed(&mut out, authority.as_bytes()),
                _ => return None,
            }
        }
        let mut first = true;
        for value in values {
            if !first {
                out.push(b',');
            }
            first = false;
            push_trimmed(&mut out, value.as_bytes());
        }
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(signed_headers.join(";").as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload_hash.as_bytes());
    Some(out)
}

/// Appends `value` without leading and trailing spaces and with runs of spaces collapsed
/// (spaces only, as AWS does).
fn push_trimmed(out: &mut Vec<u8>, value: &[u8]) {
    let mut pending_space = false;
    let mut written = false;
    for &b in value {
        if b == b' ' {
            pending_space = written;
            continue;
        }
        if pending_space {
            out.push(b' ');
            pending_space = false;
        }
        out.push(b);
        written = true;
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Percent-encodes every byte but the unreserved ones (and `/` when `keep_slash`), upper-case hex.
fn encode(bytes: &[u8], keep_slash: bool, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if is_unreserved(b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
}

/// The canonical URI of a path as received: made absolute, dot and empty segments removed
/// (when there are any), then percent-encoded again (`%` becomes `%25`).
pub fn canonical_uri(path: &[u8]) -> String {
    let mut absolute = Vec::with_capacity(path.len() + 1);
    if path.first() != Some(&b'/') {
        absolute.push(b'/');
    }
    absolute.extend_from_slice(path);
    let normalized = if absolute.contains(&b'.') || absolute.windows(2).any(|w| w == b"//") {
        remove_dot_segments(&absolute)
    } else {
        absolute
    };
    let mut out = String::with_capacity(normalized.len() + 8);
    encode(&normalized, true, &mut out);
    out
}

/// RFC 3986 5.2.4 on an absolute path, as the AWS SDKs apply it: empty and `.` segments are
/// dropped, `..` removes the one before; a trailing slash is kept.
fn remove_dot_segments(path: &[u8]) -> Vec<u8> {
    let mut kept: Vec<&[u8]> = Vec::new();
    for segment in path.split(|&b| b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => {
                kept.pop();
            }
            other => kept.push(other),
        }
    }
    let mut out = vec![b'/'];
    out.extend(kept.join(&b'/'));
    let trailing = [&b"/"[..], b"/.", b"/./", b"/..", b"/../"]
        .iter()
        .any(|end| path.ends_with(end));
    if trailing && !out.ends_with(b"/") {
        out.push(b'/');
    }
    out
}

/// Form-decoding of one query component: `+` is a space, `%XY` a byte, anything else itself.
fn form_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => match (hex(s[i + 1]), hex(s[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h << 4) | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// The canonical query: pairs form-decoded, re-encoded, sorted, joined with `&`.
pub fn canonical_query(query: &[u8]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split(|&b| b == b'&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (k, v) = match piece.iter().position(|&b| b == b'=') {
                Some(i) => (&piece[..i], &piece[i + 1..]),
                None => (piece, &b""[..]),
            };
            let (mut key, mut value) = (String::new(), String::new());
            encode(&form_decode(k), false, &mut key);
            encode(&form_decode(v), false, &mut value);
            (key, value)
        })
        .collect();
    pairs.sort();
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `YYYYMMDDTHHMMSSZ` in Unix seconds; `None` unless exactly that shape with valid values.
pub fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let digits = &b[r];
        digits
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| digits.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m) || d < 1 || d > month_days[(m - 1) as usize] {
        return None;
    }
    if hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// Unix seconds as `YYYYMMDDTHHMMSSZ`.
pub fn format_amz_date(t: i64) -> String {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The current time in Unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Signs a request the way the AWS SDKs do (header form, SHA-256 of `body` as the payload
/// hash), for Lakehose's own clients: sets `X-Amz-Date` and `Authorization` in `headers`.
/// Signed: `host` (which must be in `headers`), `x-amz-date`, `content-type` when present, and
/// every `x-amz-*` header.
#[allow(clippy::too_many_arguments)]
pub fn sign(
    method: &str,
    path: &str,
    query: &str,
    headers: &mut HeaderMap,
    body: &[u8],
    access_key_id: &str,
    secret_access_key: &str,
    region: &str,
    service: &str,
    time: i64,
) {
    use axum::http::HeaderValue;
    let amz_date = format_amz_date(time);
    if let Ok(v) = HeaderValue::from_str(&amz_date) {
        headers.insert("x-amz-date", v);
    }
    let mut signed: Vec<String> = headers
        .keys()
        .map(|k| k.as_str().to_string())
        .filter(|k| k == "host" || k == "content-type" || k.starts_with("x-amz-"))
        .collect();
    signed.sort();
    signed.dedup();
    let date = &amz_date[..8];
    let scope = format!("{date}/{region}/{service}/{TERMINATOR}");
    let payload_hash = hex::encode(digest::digest(&digest::SHA256, body));
    let request = RequestParts {
        method: method.as_bytes(),
        path: path.as_bytes(),
        query: query.as_bytes(),
        headers,
        authority: None,
    };
    let canonical = canonical_request(&request, &signed, &payload_hash).unwrap_or_default();
    let to_sign = string_to_sign(&amz_date, &scope, &canonical);
    let key = Secret::new(secret_access_key).signing_key(date, region, service);
    let signature = hex::encode(hmac::sign(&key, to_sign.as_bytes()));
    let value = format!(
        "{ALGORITHM} Credential={access_key_id}/{scope}, SignedHeaders={}, Signature={signature}",
        signed.join(";")
    );
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(axum::http::header::AUTHORIZATION, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(1_440_938_160));
        assert_eq!(format_amz_date(1_440_938_160), "20150830T123600Z");
        assert_eq!(
            parse_amz_date("20240229T235959Z")
                .map(format_amz_date)
                .as_deref(),
            Some("20240229T235959Z")
        );
        for bad in [
            "20230229T000000Z",
            "20151330T000000Z",
            "20150830T246000Z",
            "20150830 123600Z",
            "2015083T123600Z",
            "20150830T123600",
            "+0150830T123600Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
        for t in [0i64, 951_782_400, 1_700_000_000, 4_102_444_799] {
            assert_eq!(parse_amz_date(&format_amz_date(t)), Some(t));
        }
    }

    #[test]
    fn uris_are_normalized_and_encoded_twice() {
        assert_eq!(canonical_uri(b""), "/");
        assert_eq!(canonical_uri(b"/"), "/");
        assert_eq!(canonical_uri(b"/a%20b/c"), "/a%2520b/c");
        assert_eq!(canonical_uri(b"/a/./b/../c"), "/a/c");
        assert_eq!(canonical_uri(b"//a//b/"), "/a/b/");
        assert_eq!(canonical_uri(b"/a/.."), "/");
        assert_eq!(canonical_uri(b"/~user/x:y@z"), "/~user/x%3Ay%40z");
    }

    #[test]
    fn queries_are_decoded_encoded_and_sorted() {
        assert_eq!(canonical_query(b""), "");
        assert_eq!(canonical_query(b"b=2&a=1"), "a=1&b=2");
        assert_eq!(canonical_query(b"a=2&a=1"), "a=1&a=2");
        assert_eq!(canonical_query(b"k"), "k=");
        assert_eq!(canonical_query(b"a+b=c%20d&&"), "a%20b=c%20d");
        assert_eq!(canonical_query(b"x=%2f"), "x=%2F");
        assert_eq!(canonical_query(b"x=%zz%"), "x=%25zz%25");
        assert_eq!(canonical_query(b"x=%C3%A9"), "x=%C3%A9");
        assert_eq!(canonical_query(b"x=\xff"), "x=%FF");
    }

    #[test]
    fn header_values_are_trimmed() {
        let mut s = Vec::new();
        push_trimmed(&mut s, b"  a   b c  ");
        assert_eq!(s, b"a b c");
        s.clear();
        push_trimmed(&mut s, b"   ");
        assert_eq!(s, b"");
    }
}

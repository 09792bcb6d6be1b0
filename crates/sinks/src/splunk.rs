//! The Splunk destination: Splunk's HTTP Event Collector (HEC) protocol with indexer
//! acknowledgement, as Firehose uses it.
//!
//! Requests (all `POST`, with `Authorization: Splunk <HECToken>` and
//! `X-Splunk-Request-Channel: <channel>`):
//! - `Event` endpoints: `{HECEndpoint}/services/collector/event`, a body of concatenated HEC
//!   events ([`encode`]).
//! - `Raw` endpoints: `{HECEndpoint}/services/collector/raw?channel=<channel>`, the records'
//!   bytes concatenated with no delimiter added (as Firehose does).
//! - Acknowledgement: `{HECEndpoint}/services/collector/ack?channel=<channel>` with
//!   `{"acks":[N, ...]}`, answered `{"acks":{"N":true|false}}`.
//!
//! Event wrapping (a decision, documented for users): a record that is one JSON object with an
//! `event` member is taken as an HEC event and sent byte for byte. Any other record is wrapped
//! as `{"event":<record>,"time":<arrival seconds>.<ms>}`: the record's own text when it is
//! JSON (any value, embedded verbatim), else the record as a JSON string (UTF-8, invalid bytes
//! replaced by U+FFFD, one trailing `\n` or `\r\n` dropped since it delimits rather than
//! belongs to the event).
//!
//! Invariants:
//! - The channel is a UUID derived only from the stream's ARN ([`channel_id`]): every request,
//!   retry and replay of a stream uses the same channel, so its ack ids stay meaningful.
//! - A request is delivered only when the indexers acknowledge its `ackId`; a success answer
//!   without `ackId` (acknowledgement disabled on the token) is a failure, never a delivery.
//! - Every failure carries Firehose's `Splunk.*` code ([`failure_for`], [`transport_code`]);
//!   only `Splunk.InvalidDataFormat` and `Splunk.PayloadTooLarge` are permanent (the same
//!   body can never succeed), every other code is retried within `RetryOptions`.
//!
//! Error codes:
//!
//! | HEC answer | code | retried |
//! |---|---|---|
//! | code 2, 3, 4 (token missing/invalid), HTTP 401, 403 | `Splunk.InvalidToken` | yes |
//! | code 1 (token disabled) | `Splunk.DisabledToken` | yes |
//! | code 7 (incorrect index) | `Splunk.InvalidIndex` | yes |
//! | code 14 (ack disabled), success without `ackId` | `Splunk.DisabledAck` | yes |
//! | code 10, 11 (channel missing/invalid: a load balancer without sticky sessions) | `Splunk.ProxyWithoutStickySessions` | yes |
//! | code 5, 6, 12, 13 (no data, invalid data format, event missing/blank), HTTP 400 | `Splunk.InvalidDataFormat` | no |
//! | HTTP 413 | `Splunk.PayloadTooLarge` | no |
//! | code 8, 9 (internal error, server busy), HTTP 5xx | `Splunk.ServerError` | yes |
//! | HTTP 404 and other statuses, a body that is not HEC's | `Splunk.InvalidEndpoint` | yes |
//! | no ack within `HECAcknowledgmentTimeoutInSeconds` | `Splunk.AckTimeout` | yes |
//! | refused by `[egress]`, unresolvable | `Splunk.InvalidEndpoint` | yes |
//! | connection refused / TLS handshake / connection broken / no answer in time | `Splunk.ConnectionRefused` / `Splunk.SSLHandshake` / `Splunk.ConnectionClosed` / `Splunk.ConnectionTimeout` | yes |
//!
//! Ack polling ([`HecClient::wait_for_acks`]): the first poll 100 ms after the send, then
//! doubling up to every 2 s, until every id is acknowledged or its deadline (send time +
//! acknowledgement timeout) passes. Polls that fail transiently (5xx, connection) are retried
//! until the deadline; other poll failures (token, ack disabled) end the wait at once. Sleeps
//! use tokio's clock.

use std::ops::Range;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::egress::EgressPolicy;
pub use crate::retry::Failure;
use crate::transport::{HttpClient, TransportError};

/// Error output type (folder) of records that could not be delivered.
pub const ERROR_OUTPUT_TYPE: &str = "splunk-failed";
/// How long HEC has to answer one event or raw request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(180);
/// How long one acknowledgement poll may take (never beyond the ack deadline).
pub const ACK_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The wait before the first acknowledgement poll.
pub const ACK_POLL_INITIAL: Duration = Duration::from_millis(100);
/// The longest wait between two acknowledgement polls.
pub const ACK_POLL_CAP: Duration = Duration::from_secs(2);
/// The largest HEC answer read.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// `HECEndpointType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointType {
    /// `/services/collector/raw`: the records' bytes.
    Raw,
    /// `/services/collector/event`: HEC JSON events.
    Event,
}

impl EndpointType {
    /// `Raw` or `Event` (the API's values); anything else is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Raw" => Some(Self::Raw),
            "Event" => Some(Self::Event),
            _ => None,
        }
    }
}

/// What a stream's configuration says about its HEC requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HecSettings {
    /// `HECEndpoint`: the collector's base URL (scheme, host, port).
    pub endpoint: String,
    /// `HECEndpointType`.
    pub endpoint_type: EndpointType,
    /// `HECToken`.
    pub token: String,
    /// The request channel ([`channel_id`]).
    pub channel: String,
    /// How long to wait for the indexers' acknowledgement of a request.
    pub ack_timeout: Duration,
}

impl HecSettings {
    fn base(&self) -> &str {
        self.endpoint.trim_end_matches('/')
    }

    /// The URL events or raw data are POSTed to.
    pub fn send_url(&self) -> String {
        match self.endpoint_type {
            EndpointType::Event => format!("{}/services/collector/event", self.base()),
            EndpointType::Raw => format!(
                "{}/services/collector/raw?channel={}",
                self.base(),
                self.channel
            ),
        }
    }

    /// The URL acknowledgements are polled at.
    pub fn ack_url(&self) -> String {
        format!(
            "{}/services/collector/ack?channel={}",
            self.base(),
            self.channel
        )
    }

    /// The headers of every request (besides `Host` and `Content-Length`).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        vec![
            ("authorization", format!("Splunk {}", self.token)),
            ("x-splunk-request-channel", self.channel.clone()),
            (
                "content-type",
                match self.endpoint_type {
                    EndpointType::Event => "application/json",
                    EndpointType::Raw => "text/plain",
                }
                .to_string(),
            ),
        ]
    }
}

/// FNV-1a, 64 bits: a hash that never changes across builds.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The request channel of the stream `stream_arn`: a UUID (version 4 layout) that depends only
/// on the ARN, so the stream keeps its channel across retries and restarts.
pub fn channel_id(stream_arn: &str) -> String {
    let a = splitmix(fnv1a(stream_arn.as_bytes()));
    let b = splitmix(a ^ 0x5851_f42d_4c95_7f2d);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_le_bytes());
    bytes[8..].copy_from_slice(&b.to_le_bytes());
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// The `EventId` of error documents: `<16 hex digits of the stream>.<sequence number>.<index>`,
/// where `index` is the record's position among the records delivered with it (a processor may
/// make several records of one sequence number). Stable across retries and replays.
pub fn event_id(stream_arn: &str, seq: u64, index: usize) -> String {
    format!("{:016x}.{seq}.{index}", fnv1a(stream_arn.as_bytes()))
}

/// `<seconds>.<milliseconds>` of an epoch-milliseconds instant, as HEC's `time`.
fn hec_time(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// The bytes one record contributes to a request body (see the module's event wrapping rule);
/// for `Raw` endpoints the record itself.
pub fn encode(kind: EndpointType, data: &Bytes, arrival_ms: i64) -> Bytes {
    if kind == EndpointType::Raw {
        return data.clone();
    }
    match serde_json::from_slice::<serde_json::Value>(data) {
        Ok(serde_json::Value::Object(o)) if o.contains_key("event") => data.clone(),
        Ok(_) => {
            // Valid JSON: embed its text verbatim (numbers keep their precision).
            let text = String::from_utf8_lossy(data);
            Bytes::from(format!(
                "{{\"event\":{},\"time\":{}}}",
                text.trim(),
                hec_time(arrival_ms)
            ))
        }
        Err(_) => {
            let text = String::from_utf8_lossy(data);
            let text = text
                .strip_suffix("\r\n")
                .or_else(|| text.strip_suffix('\n'))
                .unwrap_or(&text);
            Bytes::from(format!(
                "{{\"event\":{},\"time\":{}}}",
                serde_json::Value::from(text),
                hec_time(arrival_ms)
            ))
        }
    }
}

/// Splits encoded records into consecutive ranges whose concatenation stays within `max_body`
/// bytes; a record larger than that alone is a range of its own.
pub fn split(encoded: &[Bytes], max_body: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut size = 0;
    for (i, e) in encoded.iter().enumerate() {
        if i > start && size + e.len() > max_body {
            out.push(start..i);
            start = i;
            size = 0;
        }
        size += e.len();
    }
    if start < encoded.len() {
        out.push(start..encoded.len());
    }
    out
}

/// The body of a request: the encoded records, concatenated.
pub fn body(encoded: &[Bytes]) -> Bytes {
    let mut out = Vec::with_capacity(encoded.iter().map(|e| e.len()).sum());
    for e in encoded {
        out.extend_from_slice(e);
    }
    Bytes::from(out)
}

/// The failure of an HEC answer that is not a success (see the module's table): `status` the
/// HTTP status, `code` and `text` HEC's JSON answer, when it had one.
pub fn failure_for(status: u16, code: Option<i64>, text: &str) -> Failure {
    let what = match code {
        Some(c) => format!("HEC answered HTTP {status}, code {c}: {text}"),
        None if text.is_empty() => format!("HEC answered HTTP {status}"),
        None => format!("HEC answered HTTP {status}: {text}"),
    };
    let retry = |c: &str| Failure::retry(c, what.clone());
    // HEC's own code says more than the status; the status decides when there is none.
    match code {
        Some(2..=4) => retry("Splunk.InvalidToken"),
        Some(1) => retry("Splunk.DisabledToken"),
        Some(7) => retry("Splunk.InvalidIndex"),
        Some(14) => retry("Splunk.DisabledAck"),
        Some(10 | 11) => retry("Splunk.ProxyWithoutStickySessions"),
        Some(5 | 6 | 12 | 13) => Failure::permanent("Splunk.InvalidDataFormat", what.clone()),
        Some(8 | 9) => retry("Splunk.ServerError"),
        _ => match status {
            401 | 403 => retry("Splunk.InvalidToken"),
            400 => Failure::permanent("Splunk.InvalidDataFormat", what.clone()),
            413 => Failure::permanent("Splunk.PayloadTooLarge", what.clone()),
            500..=599 => retry("Splunk.ServerError"),
            _ => retry("Splunk.InvalidEndpoint"),
        },
    }
}

/// `(code, text)` of an HEC JSON answer, if it is one.
fn hec_answer(body: &[u8]) -> Option<(Option<i64>, String, serde_json::Value)> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    if !v.is_object() {
        return None;
    }
    let code = v.get("code").and_then(|c| c.as_i64());
    let text = v
        .get("text")
        .and_then(|t| t.as_str())
        .unwrap_or_default()
        .to_string();
    Some((code, text, v))
}

/// Applies the answer contract of an event or raw request: the `ackId` of a success.
pub fn check_send(status: u16, body: &[u8]) -> Result<u64, Failure> {
    let Some((code, text, value)) = hec_answer(body) else {
        let shown = String::from_utf8_lossy(&body[..body.len().min(200)]).to_string();
        if status == 200 {
            return Err(Failure::retry(
                "Splunk.InvalidEndpoint",
                format!("HEC answered HTTP 200 with a body that is not HEC's: {shown:?}"),
            ));
        }
        return Err(failure_for(status, None, &shown));
    };
    if status != 200 || code.is_some_and(|c| c != 0) {
        return Err(failure_for(status, code, &text));
    }
    match value.get("ackId").and_then(|a| a.as_u64()) {
        Some(id) => Ok(id),
        None => Err(Failure::retry(
            "Splunk.DisabledAck",
            "HEC accepted the request without an ackId: indexer acknowledgement is disabled for the token",
        )),
    }
}

/// Applies the answer contract of an acknowledgement poll: for each of `ids`, whether it is
/// acknowledged (an id missing from the answer is not).
pub fn check_ack(status: u16, body: &[u8], ids: &[u64]) -> Result<Vec<bool>, Failure> {
    let Some((code, text, value)) = hec_answer(body) else {
        let shown = String::from_utf8_lossy(&body[..body.len().min(200)]).to_string();
        if status == 200 {
            return Err(Failure::retry(
                "Splunk.InvalidEndpoint",
                format!(
                    "the ack endpoint answered HTTP 200 with a body that is not HEC's: {shown:?}"
                ),
            ));
        }
        return Err(failure_for(status, None, &shown));
    };
    if status != 200 || code.is_some_and(|c| c != 0) {
        return Err(failure_for(status, code, &text));
    }
    let Some(acks) = value.get("acks").and_then(|a| a.as_object()) else {
        return Err(Failure::retry(
            "Splunk.InvalidEndpoint",
            "the ack endpoint's answer has no \"acks\" object",
        ));
    };
    Ok(ids
        .iter()
        .map(|id| {
            acks.get(&id.to_string())
                .and_then(|v| v.as_bool())
                .unwrap_or(false)
        })
        .collect())
}

/// Firehose's error code for a request that got no usable answer.
pub fn transport_code(e: &TransportError) -> &'static str {
    match e {
        TransportError::NotAllowed(_) => "Splunk.InvalidEndpoint",
        TransportError::Connect(_) => "Splunk.ConnectionRefused",
        TransportError::Tls(_) => "Splunk.SSLHandshake",
        TransportError::Reset(_) => "Splunk.ConnectionClosed",
        TransportError::Timeout(_) => "Splunk.ConnectionTimeout",
        TransportError::TooLarge { .. } => "Splunk.InvalidEndpoint",
    }
}

/// Whether a failed acknowledgement poll is worth polling again before the deadline.
fn transient(f: &Failure) -> bool {
    matches!(
        f.code.as_str(),
        "Splunk.ServerError"
            | "Splunk.ConnectionRefused"
            | "Splunk.ConnectionClosed"
            | "Splunk.ConnectionTimeout"
    )
}

/// The wait before acknowledgement poll number `poll` (0-based): 100 ms doubling, at most 2 s.
pub fn poll_interval(poll: u32) -> Duration {
    ACK_POLL_INITIAL
        .saturating_mul(1u32 << poll.min(16))
        .min(ACK_POLL_CAP)
}

/// Sends HEC requests within an egress policy.
#[derive(Clone, Debug)]
pub struct HecClient {
    http: HttpClient,
}

impl HecClient {
    /// A client under `policy`, trusting the system's root certificates.
    pub fn new(policy: EgressPolicy) -> Self {
        Self {
            http: HttpClient::new(policy),
        }
    }

    async fn post(
        &self,
        settings: &HecSettings,
        url: &str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<(u16, Bytes), Failure> {
        match self
            .http
            .post(url, &settings.headers(), body, MAX_RESPONSE_BYTES, timeout)
            .await
        {
            Ok(r) => Ok((r.status, r.body)),
            Err(TransportError::TooLarge { status, .. }) if status != 200 => {
                Err(failure_for(status, None, "(an oversized answer)"))
            }
            Err(e) => Err(Failure::retry(transport_code(&e), e.to_string())),
        }
    }

    /// Sends one event or raw body; the `ackId` HEC assigned to it.
    pub async fn send(&self, settings: &HecSettings, body: Bytes) -> Result<u64, Failure> {
        let (status, answer) = self
            .post(settings, &settings.send_url(), body, REQUEST_TIMEOUT)
            .await?;
        check_send(status, &answer)
    }

    /// Asks once whether `ids` are acknowledged, within `timeout`.
    pub async fn poll_acks(
        &self,
        settings: &HecSettings,
        ids: &[u64],
        timeout: Duration,
    ) -> Result<Vec<bool>, Failure> {
        let body = serde_json::json!({ "acks": ids }).to_string();
        let (status, answer) = self
            .post(settings, &settings.ack_url(), Bytes::from(body), timeout)
            .await?;
        check_ack(status, &answer, ids)
    }

    /// Waits for the acknowledgement of each `(ackId, sent at)`; per id, the time from its
    /// send to its acknowledgement, or why it was not acknowledged (see the module's polling
    /// rule).
    pub async fn wait_for_acks(
        &self,
        settings: &HecSettings,
        sent: &[(u64, Instant)],
    ) -> Vec<Result<Duration, Failure>> {
        let mut out: Vec<Option<Result<Duration, Failure>>> = vec![None; sent.len()];
        let deadline = |i: usize| sent[i].1 + settings.ack_timeout;
        let mut last_error: Option<Failure> = None;
        let mut poll = 0u32;
        loop {
            let open: Vec<usize> = (0..sent.len()).filter(|i| out[*i].is_none()).collect();
            let Some(latest) = open.iter().map(|i| deadline(*i)).max() else {
                break;
            };
            let earliest = open.iter().map(|i| deadline(*i)).min().unwrap_or(latest);
            let now = Instant::now();
            tokio::time::sleep(poll_interval(poll).min(earliest.saturating_duration_since(now)))
                .await;
            poll += 1;
            let ids: Vec<u64> = open.iter().map(|i| sent[*i].0).collect();
            let timeout = ACK_REQUEST_TIMEOUT
                .min(latest.saturating_duration_since(Instant::now()))
                .max(Duration::from_millis(100));
            match self.poll_acks(settings, &ids, timeout).await {
                Ok(flags) => {
                    let now = Instant::now();
                    for (i, acked) in open.iter().zip(flags) {
                        if acked {
                            out[*i] = Some(Ok(now.saturating_duration_since(sent[*i].1)));
                        }
                    }
                }
                Err(f) if transient(&f) => last_error = Some(f),
                Err(f) => {
                    for i in &open {
                        out[*i] = Some(Err(f.clone()));
                    }
                }
            }
            let now = Instant::now();
            for i in open {
                if out[i].is_none() && now >= deadline(i) {
                    let mut message = format!(
                        "no indexer acknowledgement of ackId {} within {} s",
                        sent[i].0,
                        settings.ack_timeout.as_secs_f64()
                    );
                    if let Some(e) = &last_error {
                        message.push_str(&format!(" (last poll: {}: {})", e.code, e.message));
                    }
                    out[i] = Some(Err(Failure::retry("Splunk.AckTimeout", message)));
                }
            }
        }
        out.into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(Failure::retry(
                        "Splunk.AckTimeout",
                        "the acknowledgement wait ended without an answer",
                    ))
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(kind: EndpointType) -> HecSettings {
        HecSettings {
            endpoint: "https://hec.example.com:8088/".into(),
            endpoint_type: kind,
            token: "tok-1".into(),
            channel: channel_id("arn:aws:firehose:us-east-1:000000000000:deliverystream/s"),
            ack_timeout: Duration::from_secs(180),
        }
    }

    fn json(b: &Bytes) -> serde_json::Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn urls_and_headers() {
        let s = settings(EndpointType::Event);
        assert_eq!(
            s.send_url(),
            "https://hec.example.com:8088/services/collector/event"
        );
        assert_eq!(
            s.ack_url(),
            format!(
                "https://hec.example.com:8088/services/collector/ack?channel={}",
                s.channel
            )
        );
        let raw = settings(EndpointType::Raw);
        assert_eq!(
            raw.send_url(),
            format!(
                "https://hec.example.com:8088/services/collector/raw?channel={}",
                raw.channel
            )
        );
        let h = s.headers();
        assert!(h.contains(&("authorization", "Splunk tok-1".to_string())));
        assert!(h.contains(&("x-splunk-request-channel", s.channel.clone())));
        assert_eq!(EndpointType::parse("Raw"), Some(EndpointType::Raw));
        assert_eq!(EndpointType::parse("Event"), Some(EndpointType::Event));
        assert_eq!(EndpointType::parse("event"), None);
    }

    #[test]
    fn channels_are_stable_uuids_per_stream() {
        let a = channel_id("arn:aws:firehose:us-east-1:1:deliverystream/a");
        assert_eq!(
            a,
            channel_id("arn:aws:firehose:us-east-1:1:deliverystream/a")
        );
        assert_ne!(
            a,
            channel_id("arn:aws:firehose:us-east-1:1:deliverystream/b")
        );
        let u = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(u.get_version_num(), 4);
        // Fixed forever: a change would give running streams a new channel.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        let e = event_id("arn:x", 42, 3);
        assert_eq!(e, event_id("arn:x", 42, 3));
        assert!(e.ends_with(".42.3"), "{e}");
        assert_ne!(e, event_id("arn:y", 42, 3));
        assert_ne!(e, event_id("arn:x", 42, 4));
    }

    #[test]
    fn hec_events_pass_through_and_other_records_are_wrapped() {
        let ev = Bytes::from_static(b"{\"event\":{\"a\":1},\"sourcetype\":\"x\"}\n");
        assert_eq!(encode(EndpointType::Event, &ev, 5), ev);
        let obj = Bytes::from_static(b"{\"a\":12345678901234567890}\n");
        let wrapped = encode(EndpointType::Event, &obj, 1_700_000_000_123);
        assert_eq!(
            &wrapped[..],
            b"{\"event\":{\"a\":12345678901234567890},\"time\":1700000000.123}"
        );
        let text = encode(
            EndpointType::Event,
            &Bytes::from_static(b"hello \"w\"\r\n"),
            7,
        );
        assert_eq!(
            json(&text),
            serde_json::json!({"event": "hello \"w\"", "time": 0.007})
        );
        let number = encode(EndpointType::Event, &Bytes::from_static(b"42"), 1000);
        assert_eq!(json(&number), serde_json::json!({"event": 42, "time": 1.0}));
        let binary = encode(
            EndpointType::Event,
            &Bytes::from_static(&[0xff, b'a']),
            1000,
        );
        assert_eq!(json(&binary)["event"], "\u{fffd}a");
        // `event` must be a member of an object, not just text in it.
        let not_event = encode(EndpointType::Event, &Bytes::from_static(b"[\"event\"]"), 0);
        assert_eq!(json(&not_event)["event"], serde_json::json!(["event"]));
        // Raw: the bytes themselves, and bodies concatenate with nothing added.
        let r = Bytes::from_static(b"line 1\n");
        assert_eq!(encode(EndpointType::Raw, &r, 0), r);
        let parts = [
            Bytes::from_static(b"a"),
            Bytes::from_static(b"b\n"),
            Bytes::from_static(b"c"),
        ];
        assert_eq!(&body(&parts)[..], b"ab\nc");
        // Event bodies are a stream of JSON values.
        let events: Vec<Bytes> = (0..3)
            .map(|i| encode(EndpointType::Event, &Bytes::from(format!("r{i}\n")), 0))
            .collect();
        let b = body(&events);
        let parsed: Vec<serde_json::Value> = serde_json::Deserializer::from_slice(&b)
            .into_iter()
            .map(|v| v.unwrap())
            .collect();
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[2]["event"], "r2");
    }

    #[test]
    fn bodies_are_split_to_fit() {
        let encoded: Vec<Bytes> = (0..10).map(|_| Bytes::from(vec![b'x'; 300])).collect();
        let ranges = split(&encoded, 1000);
        assert_eq!(ranges, vec![0..3, 3..6, 6..9, 9..10]);
        let big = vec![Bytes::from(vec![0u8; 10]), Bytes::from(vec![0u8; 5000])];
        assert_eq!(split(&big, 1000), vec![0..1, 1..2]);
        assert!(split(&[], 1000).is_empty());
    }

    #[test]
    fn send_answers_and_error_codes() {
        assert_eq!(
            check_send(200, br#"{"text":"Success","code":0,"ackId":7}"#),
            Ok(7)
        );
        let cases: &[(u16, &[u8], &str, bool)] = &[
            (
                200,
                br#"{"text":"Success","code":0}"#,
                "Splunk.DisabledAck",
                false,
            ),
            (
                400,
                br#"{"text":"ACK is disabled","code":14}"#,
                "Splunk.DisabledAck",
                false,
            ),
            (
                401,
                br#"{"text":"Token is required","code":2}"#,
                "Splunk.InvalidToken",
                false,
            ),
            (
                403,
                br#"{"text":"Invalid token","code":4}"#,
                "Splunk.InvalidToken",
                false,
            ),
            (
                403,
                br#"{"text":"Token disabled","code":1}"#,
                "Splunk.DisabledToken",
                false,
            ),
            (401, b"", "Splunk.InvalidToken", false),
            (
                400,
                br#"{"text":"Incorrect index","code":7}"#,
                "Splunk.InvalidIndex",
                false,
            ),
            (
                400,
                br#"{"text":"Invalid data format","code":6}"#,
                "Splunk.InvalidDataFormat",
                true,
            ),
            (
                400,
                br#"{"text":"Event field is required","code":12}"#,
                "Splunk.InvalidDataFormat",
                true,
            ),
            (400, b"garbage", "Splunk.InvalidDataFormat", true),
            (
                400,
                br#"{"text":"Data channel is missing","code":10}"#,
                "Splunk.ProxyWithoutStickySessions",
                false,
            ),
            (
                503,
                br#"{"text":"Server is busy","code":9}"#,
                "Splunk.ServerError",
                false,
            ),
            (
                500,
                br#"{"text":"Internal server error","code":8}"#,
                "Splunk.ServerError",
                false,
            ),
            (502, b"bad gateway", "Splunk.ServerError", false),
            (413, b"", "Splunk.PayloadTooLarge", true),
            (404, b"not found", "Splunk.InvalidEndpoint", false),
            (200, b"<html>", "Splunk.InvalidEndpoint", false),
        ];
        for (status, body, code, permanent) in cases {
            let e = check_send(*status, body).unwrap_err();
            assert_eq!(
                (e.code.as_str(), e.permanent),
                (*code, *permanent),
                "{status} {}",
                String::from_utf8_lossy(body)
            );
            assert!(
                e.message.contains(&status.to_string()) || *status == 200,
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn ack_answers() {
        assert_eq!(
            check_ack(200, br#"{"acks":{"1":true,"2":false}}"#, &[1, 2, 3]),
            Ok(vec![true, false, false])
        );
        assert_eq!(
            check_ack(200, br#"{"text":"x"}"#, &[1]).unwrap_err().code,
            "Splunk.InvalidEndpoint"
        );
        assert_eq!(
            check_ack(400, br#"{"text":"ACK is disabled","code":14}"#, &[1])
                .unwrap_err()
                .code,
            "Splunk.DisabledAck"
        );
        assert!(transient(
            &check_ack(503, br#"{"code":9}"#, &[1]).unwrap_err()
        ));
    }

    #[test]
    fn transport_codes_and_poll_schedule() {
        assert_eq!(
            transport_code(&TransportError::Connect("x".into())),
            "Splunk.ConnectionRefused"
        );
        assert_eq!(
            transport_code(&TransportError::Tls("x".into())),
            "Splunk.SSLHandshake"
        );
        assert_eq!(
            transport_code(&TransportError::Reset("x".into())),
            "Splunk.ConnectionClosed"
        );
        assert_eq!(
            transport_code(&TransportError::Timeout(Duration::from_secs(1))),
            "Splunk.ConnectionTimeout"
        );
        assert_eq!(
            transport_code(&TransportError::NotAllowed("x".into())),
            "Splunk.InvalidEndpoint"
        );
        assert_eq!(poll_interval(0), Duration::from_millis(100));
        assert_eq!(poll_interval(1), Duration::from_millis(200));
        assert_eq!(poll_interval(4), Duration::from_millis(1600));
        assert_eq!(poll_interval(5), ACK_POLL_CAP);
        assert_eq!(poll_interval(40), ACK_POLL_CAP);
    }

    /// A tiny HEC on 127.0.0.1: answers event requests with ackIds 0, 1, ...; the ack
    /// endpoint acknowledges an id from its `ack_after`-th poll on (never when `None`).
    async fn fake_hec(ack_after: Option<usize>) -> (String, tokio::task::JoinHandle<()>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let mut next_ack = 0u64;
            let mut polls = 0usize;
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                let mut req = Vec::new();
                let mut buf = vec![0u8; 64 * 1024];
                let (head, body) = loop {
                    let n = sock.read(&mut buf).await.unwrap();
                    req.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&req).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length: "))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if req.len() >= end + 4 + len {
                            break (text[..end].to_string(), req[end + 4..].to_vec());
                        }
                    }
                    assert!(n > 0, "the client closed early");
                };
                assert!(head.contains("authorization: Splunk tok-1\r\n"), "{head}");
                let answer = if head.starts_with("POST /services/collector/event ") {
                    next_ack += 1;
                    format!(r#"{{"text":"Success","code":0,"ackId":{}}}"#, next_ack - 1)
                } else {
                    assert!(
                        head.starts_with("POST /services/collector/ack?channel="),
                        "{head}"
                    );
                    polls += 1;
                    let asked: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let acked = ack_after.is_some_and(|n| polls >= n);
                    let acks: serde_json::Map<String, serde_json::Value> = asked["acks"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|id| (id.to_string(), serde_json::Value::from(acked)))
                        .collect();
                    serde_json::json!({ "acks": acks }).to_string()
                };
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                    answer.len()
                );
                sock.write_all(response.as_bytes()).await.unwrap();
                sock.shutdown().await.ok();
            }
        });
        (url, task)
    }

    fn local_client() -> HecClient {
        HecClient::new(EgressPolicy {
            allow_http_hosts: vec!["127.0.0.1".into()],
            allow_private: vec!["127.0.0.0/8".into()],
        })
    }

    #[tokio::test]
    async fn sends_then_waits_for_the_acknowledgements() {
        let (url, _server) = fake_hec(Some(3)).await;
        let mut s = settings(EndpointType::Event);
        s.endpoint = url;
        let client = local_client();
        let a = client
            .send(&s, Bytes::from_static(b"{\"event\":1}"))
            .await
            .unwrap();
        let b = client
            .send(&s, Bytes::from_static(b"{\"event\":2}"))
            .await
            .unwrap();
        assert_eq!((a, b), (0, 1));
        let started = Instant::now();
        let results = client
            .wait_for_acks(&s, &[(a, started), (b, started)])
            .await;
        assert_eq!(results.len(), 2);
        for r in results {
            // Acknowledged at the third poll: after 100 + 200 + 400 ms of waiting.
            assert!(r.unwrap() >= Duration::from_millis(700));
        }
    }

    #[tokio::test]
    async fn acknowledgements_that_never_come_time_out() {
        let (url, _server) = fake_hec(None).await;
        let mut s = settings(EndpointType::Event);
        s.endpoint = url;
        s.ack_timeout = Duration::from_millis(1500);
        let client = local_client();
        let id = client
            .send(&s, Bytes::from_static(b"{\"event\":1}"))
            .await
            .unwrap();
        let started = Instant::now();
        let results = client.wait_for_acks(&s, &[(id, started)]).await;
        let e = results[0].clone().unwrap_err();
        assert_eq!(e.code, "Splunk.AckTimeout");
        assert!(!e.permanent);
        assert!(e.message.contains("ackId 0"), "{}", e.message);
        assert!(started.elapsed() >= Duration::from_millis(1500));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn unreachable_collectors_are_classified() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut s = settings(EndpointType::Raw);
        s.endpoint = format!("http://127.0.0.1:{port}");
        let e = local_client()
            .send(&s, Bytes::from_static(b"x"))
            .await
            .unwrap_err();
        assert_eq!(e.code, "Splunk.ConnectionRefused");
        let e = HecClient::new(EgressPolicy::default())
            .send(&s, Bytes::from_static(b"x"))
            .await
            .unwrap_err();
        assert_eq!(e.code, "Splunk.InvalidEndpoint");
        assert!(e.message.contains("not allowed"), "{}", e.message);
    }
}

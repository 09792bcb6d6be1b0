//! A protocol-level Splunk HTTP Event Collector for tests (axum on 127.0.0.1, its own thread):
//! `/services/collector/event`, `/services/collector/raw` and `/services/collector/ack`, as
//! Splunk documents them.
//!
//! What it checks, as Splunk does: `Authorization: Splunk <token>` (missing: 401 code 2; wrong:
//! 403 code 4), a GUID request channel (`X-Splunk-Request-Channel`, or `?channel=` for raw;
//! missing: 400 code 10, not a GUID: 400 code 11), and that event bodies are a stream of JSON
//! objects each with an `event` member (else 400 code 12).
//!
//! Invariants:
//! - ackIds are assigned per channel, from 0, one per accepted request.
//! - An accepted request is "indexed"; it is "acknowledged" once an ack poll answered `true`
//!   for its ackId (each id is answered `true` once; later polls answer `false`, as Splunk
//!   forgets acknowledged ids).
//!
//! Scripting ([`Hec::fail_next`], [`Hec::set_never_ack`], [`Hec::set_reject_token`],
//! [`Hec::set_disable_acks`]): answer the next N event/raw requests 503 code 9 (server busy);
//! never acknowledge (polls answer `false`); reject every token (403 code 4); acknowledgement
//! disabled (sends succeed without `ackId`, polls answer 400 code 14).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};

/// Which endpoint a request went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `/services/collector/event`.
    Event,
    /// `/services/collector/raw`.
    Raw,
}

/// One event or raw request the collector got.
#[derive(Clone, Debug)]
pub struct Received {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// Its headers.
    pub headers: HeaderMap,
    /// The `channel` query parameter, if any.
    pub query_channel: Option<String>,
    /// The channel it was accepted on (header, else query).
    pub channel: Option<String>,
    /// The body.
    pub body: Vec<u8>,
    /// The HTTP status it was answered with.
    pub status: u16,
    /// The ackId assigned (accepted with acknowledgement enabled).
    pub ack_id: Option<u64>,
    /// Whether an ack poll answered `true` for it.
    pub acknowledged: bool,
}

#[derive(Default)]
struct Script {
    fail_next: usize,
    never_ack: bool,
    reject_token: bool,
    disable_acks: bool,
}

#[derive(Default)]
struct Inner {
    script: Script,
    received: Vec<Received>,
    next_ack: HashMap<String, u64>,
    /// (channel, ackId) -> index in `received`, of indexed requests not yet acknowledged.
    unacked: HashMap<(String, u64), usize>,
    polls: usize,
}

/// A running collector.
pub struct Hec {
    /// Its base URL (`http://127.0.0.1:<port>`), the `HECEndpoint`.
    pub url: String,
    token: String,
    inner: Mutex<Inner>,
}

impl Hec {
    /// Starts a collector accepting `token`.
    pub fn start(token: &str) -> Arc<Hec> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let hec = Arc::new(Hec {
            url: format!("http://{}", listener.local_addr().unwrap()),
            token: token.to_string(),
            inner: Mutex::default(),
        });
        let state = hec.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new().fallback(handle).with_state(state);
                axum::serve(listener, app).await.unwrap();
            });
        });
        hec
    }

    /// Answers the next `n` event/raw requests 503 code 9 (server busy).
    pub fn fail_next(&self, n: usize) {
        self.inner.lock().unwrap().script.fail_next = n;
    }

    /// Never acknowledges (ack polls answer `false`).
    pub fn set_never_ack(&self, on: bool) {
        self.inner.lock().unwrap().script.never_ack = on;
    }

    /// Rejects every token (403 code 4).
    pub fn set_reject_token(&self, on: bool) {
        self.inner.lock().unwrap().script.reject_token = on;
    }

    /// Indexer acknowledgement disabled: sends succeed without `ackId`, polls get code 14.
    pub fn set_disable_acks(&self, on: bool) {
        self.inner.lock().unwrap().script.disable_acks = on;
    }

    /// Every event/raw request, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    /// Ack polls answered so far.
    pub fn polls(&self) -> usize {
        self.inner.lock().unwrap().polls
    }

    /// The events of acknowledged event requests, in order.
    pub fn acknowledged_events(&self) -> Vec<serde_json::Value> {
        self.received()
            .iter()
            .filter(|r| r.acknowledged && r.endpoint == Endpoint::Event)
            .flat_map(|r| events(&r.body).unwrap())
            .collect()
    }

    /// The bodies of acknowledged raw requests, concatenated.
    pub fn acknowledged_raw(&self) -> Vec<u8> {
        self.received()
            .iter()
            .filter(|r| r.acknowledged && r.endpoint == Endpoint::Raw)
            .flat_map(|r| r.body.clone())
            .collect()
    }

    /// The events of every indexed (accepted) event request, acknowledged or not, in order.
    pub fn indexed_events(&self) -> Vec<serde_json::Value> {
        self.received()
            .iter()
            .filter(|r| r.status == 200 && r.endpoint == Endpoint::Event)
            .flat_map(|r| events(&r.body).unwrap())
            .collect()
    }
}

/// The JSON values of an event body, if it is a stream of objects with an `event` member.
pub fn events(body: &[u8]) -> Option<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    for v in serde_json::Deserializer::from_slice(body).into_iter::<serde_json::Value>() {
        let v = v.ok()?;
        v.get("event")?;
        out.push(v);
    }
    (!out.is_empty()).then_some(out)
}

fn is_guid(s: &str) -> bool {
    s.len() == 36 && uuid_like(s)
}

fn uuid_like(s: &str) -> bool {
    s.char_indices().all(|(i, c)| {
        if [8, 13, 18, 23].contains(&i) {
            c == '-'
        } else {
            c.is_ascii_hexdigit()
        }
    })
}

fn answer(status: u16, value: serde_json::Value) -> (StatusCode, String) {
    (StatusCode::from_u16(status).unwrap(), value.to_string())
}

fn hec_error(status: u16, code: i64, text: &str) -> (StatusCode, String) {
    answer(status, serde_json::json!({"text": text, "code": code}))
}

async fn handle(
    State(hec): State<Arc<Hec>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, String) {
    let endpoint = match uri.path() {
        "/services/collector/event" => Some(Endpoint::Event),
        "/services/collector/raw" => Some(Endpoint::Raw),
        "/services/collector/ack" => None,
        _ => return hec_error(404, 404, "The requested URL was not found on this server."),
    };
    if method != Method::POST {
        return hec_error(405, 405, "Method not allowed");
    }
    let query_channel = uri.query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("channel="))
            .map(str::to_string)
    });
    let header_channel = headers
        .get("x-splunk-request-channel")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let channel = header_channel.or(query_channel.clone());
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut inner = hec.inner.lock().unwrap();
    let token_answer = match auth.as_deref().and_then(|a| a.strip_prefix("Splunk ")) {
        None => Some(hec_error(401, 2, "Token is required")),
        Some(t) if t != hec.token || inner.script.reject_token => {
            Some(hec_error(403, 4, "Invalid token"))
        }
        Some(_) => None,
    };
    let Some(endpoint) = endpoint else {
        // The ack endpoint.
        if let Some(a) = token_answer {
            return a;
        }
        let Some(channel) = channel.filter(|c| is_guid(c)) else {
            return hec_error(400, 10, "Data channel is missing");
        };
        if inner.script.disable_acks {
            return hec_error(400, 14, "ACK is disabled");
        }
        let asked: serde_json::Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => return hec_error(400, 6, "Invalid data format"),
        };
        let Some(ids) = asked["acks"].as_array() else {
            return hec_error(400, 6, "Invalid data format");
        };
        inner.polls += 1;
        let mut acks = serde_json::Map::new();
        for id in ids {
            let Some(id) = id.as_u64() else {
                return hec_error(400, 6, "Invalid data format");
            };
            let key = (channel.clone(), id);
            let acked = !inner.script.never_ack && inner.unacked.contains_key(&key);
            if acked {
                let i = inner.unacked.remove(&key).unwrap();
                inner.received[i].acknowledged = true;
            }
            acks.insert(id.to_string(), serde_json::Value::from(acked));
        }
        return answer(200, serde_json::json!({ "acks": acks }));
    };
    let mut got = Received {
        endpoint,
        headers: headers.clone(),
        query_channel,
        channel: channel.clone(),
        body: body.to_vec(),
        status: 0,
        ack_id: None,
        acknowledged: false,
    };
    let (status, text) = if let Some(a) = token_answer {
        a
    } else if inner.script.fail_next > 0 {
        inner.script.fail_next -= 1;
        hec_error(503, 9, "Server is busy")
    } else if channel.is_none() {
        hec_error(400, 10, "Data channel is missing")
    } else if !channel.as_deref().is_some_and(is_guid) {
        hec_error(400, 11, "Invalid data channel")
    } else if endpoint == Endpoint::Event && events(&body).is_none() {
        hec_error(400, 12, "Event field is required")
    } else if inner.script.disable_acks {
        answer(200, serde_json::json!({"text": "Success", "code": 0}))
    } else {
        let channel = channel.unwrap();
        let next = inner.next_ack.entry(channel.clone()).or_insert(0);
        let id = *next;
        *next += 1;
        got.ack_id = Some(id);
        let index = inner.received.len();
        inner.unacked.insert((channel, id), index);
        answer(
            200,
            serde_json::json!({"text": "Success", "code": 0, "ackId": id}),
        )
    };
    got.status = status.as_u16();
    inner.received.push(got);
    (status, text)
}

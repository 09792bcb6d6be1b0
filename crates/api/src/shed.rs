//! Load shedding at the door: a byte budget for request bodies being received or processed.
//!
//! Every API request reserves its declared `Content-Length` before a byte of the body is read
//! (a body of unknown length, chunked or HTTP/2 without `Content-Length`, reserves each chunk
//! as it arrives, see [`Meter`]), and gives it back when its answer is produced. A request
//! that does not fit is answered `ServiceUnavailableException` without being decoded: its body
//! is read and discarded a chunk at a time (never held, see [`drain`]), so under overload
//! memory stays bounded by the budget, and clients back off as they do with Firehose's own
//! throttling. A request larger than the whole budget is admitted alone when nothing else is
//! in flight, so no valid request is refused forever.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::ApiError;
use crate::handler::MAX_BODY_BYTES;

/// The bytes of request bodies the server holds at once.
#[derive(Debug)]
pub struct RequestBudget {
    used: std::sync::atomic::AtomicU64,
    limit: u64,
}

impl RequestBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(Self {
            used: std::sync::atomic::AtomicU64::new(0),
            limit,
        })
    }

    fn try_reserve(self: &Arc<Self>, bytes: u64) -> Option<Reserved> {
        use std::sync::atomic::Ordering;
        let mut current = self.used.load(Ordering::Relaxed);
        loop {
            if current + bytes > self.limit && current > 0 {
                return None;
            }
            match self.used.compare_exchange_weak(
                current,
                current + bytes,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Some(Reserved {
                        budget: self.clone(),
                        bytes,
                    });
                }
                Err(actual) => current = actual,
            }
        }
    }
}

struct Reserved {
    budget: Arc<RequestBudget>,
    bytes: u64,
}

impl Drop for Reserved {
    fn drop(&mut self) {
        self.budget
            .used
            .fetch_sub(self.bytes, std::sync::atomic::Ordering::AcqRel);
    }
}

/// The budget a body of unknown length (chunked, or HTTP/2 without `Content-Length`) reserves
/// from as its bytes arrive, found in the request's extensions by the handler. Reserving the
/// largest body up front instead would let two stalled chunked requests (or a few HTTP/2
/// streams that never send their body) hold the whole budget until the body timeout, and
/// shed every other client meanwhile.
#[derive(Clone)]
pub struct Meter {
    budget: Arc<RequestBudget>,
    held: Arc<std::sync::Mutex<Vec<Reserved>>>,
}

impl Meter {
    /// Reserves `bytes` more for this request; `false` when the budget cannot hold them
    /// (the request is then answered `ServiceUnavailableException`).
    pub fn take(&self, bytes: usize) -> bool {
        match self.budget.try_reserve(bytes as u64) {
            Some(r) => {
                self.held.lock().unwrap_or_else(|e| e.into_inner()).push(r);
                true
            }
            None => {
                metrics::counter!("ShedRequests").increment(1);
                false
            }
        }
    }
}

/// Middleware (`axum::middleware::from_fn_with_state`) applying the budget.
pub async fn shed(
    State(budget): State<Arc<RequestBudget>>,
    mut req: Request,
    next: Next,
) -> Response {
    // The body's exact size when known: `Content-Length`, or 0 for an HTTP/2 request whose
    // HEADERS ended the stream (it has no `Content-Length`).
    let exact = axum::body::HttpBody::size_hint(req.body())
        .exact()
        .or_else(|| {
            req.headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        });
    let Some(declared) = exact else {
        // Unknown length: reserved as it arrives (see [`Meter`]), held until the answer.
        let meter = Meter {
            budget,
            held: Arc::default(),
        };
        req.extensions_mut().insert(meter.clone());
        let response = next.run(req).await;
        drop(meter);
        return response;
    };
    let declared = declared.min(MAX_BODY_BYTES as u64);
    let Some(_reserved) = budget.try_reserve(declared) else {
        metrics::counter!("ShedRequests").increment(1);
        if declared != 0 {
            drain(req).await;
        }
        return ApiError::unavailable("Slow down.").into_response();
    };
    next.run(req).await
}

/// Reads and discards the body a chunk at a time (up to [`MAX_BODY_BYTES`]), so the
/// connection stays usable for the client's retry: an HTTP/1.1 server that answers before the
/// body is read must close the connection, and a client still sending sees a reset instead of
/// the answer.
async fn drain(req: Request) {
    use http_body_util::BodyExt;
    let mut body = req.into_body();
    let mut seen = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        seen += frame.data_ref().map_or(0, |d| d.len());
        if seen > MAX_BODY_BYTES {
            break;
        }
    }
}

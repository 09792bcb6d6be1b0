//! One HTTP/1.1 POST to a destination, within the egress policy: the transport shared by the
//! HTTP endpoint, OpenSearch and Splunk destinations.
//!
//! Invariants:
//! - The URL is resolved through [`EgressPolicy::resolve`] at every request, and only the
//!   addresses that call returned are connected to (the egress module's invariant). The URL's
//!   host still names the server for the `Host` header and TLS (SNI and certificate checks,
//!   rustls with the ring provider and the system's roots).
//! - Redirects are never followed; every status is returned to the caller, who applies its
//!   destination's response contract.
//! - A response body is read up to the caller's limit and no further.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::egress::EgressPolicy;

/// A complete response.
#[derive(Clone, Debug)]
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// The body (at most the limit the caller gave).
    pub body: Bytes,
}

/// Why no complete response was received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// The URL is refused by the egress policy or does not resolve.
    NotAllowed(String),
    /// No connection could be made (refused, unreachable).
    Connect(String),
    /// The TLS handshake failed.
    Tls(String),
    /// The connection broke while sending or reading.
    Reset(String),
    /// No complete answer within the timeout.
    Timeout(Duration),
    /// The response body exceeded the limit; the status is kept.
    TooLarge {
        /// The status of the oversized response.
        status: u16,
        /// The limit in bytes.
        limit: usize,
    },
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotAllowed(e) => write!(f, "the address is not allowed or not resolvable: {e}"),
            Self::Connect(e) => write!(f, "could not connect: {e}"),
            Self::Tls(e) => write!(f, "the TLS handshake failed: {e}"),
            Self::Reset(e) => write!(f, "the connection failed: {e}"),
            Self::Timeout(t) => write!(f, "no answer within {} s", t.as_secs()),
            Self::TooLarge { limit, .. } => {
                write!(f, "the response body is larger than {limit} bytes")
            }
        }
    }
}

/// Sends POST requests within an egress policy.
#[derive(Clone)]
pub struct HttpClient {
    policy: EgressPolicy,
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client under `policy`, trusting the system's root certificates.
    pub fn new(policy: EgressPolicy) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        for cert in found.certs {
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            tracing::warn!(
                "no system root certificates found; https destinations will fail verification"
            );
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| b.with_root_certificates(roots).with_no_client_auth())
            .unwrap_or_else(|_| {
                rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_protocol_versions(&[&rustls::version::TLS13])
                .expect("TLS 1.3 with ring")
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
            });
        Self {
            policy,
            tls: Arc::new(tls),
        }
    }

    /// The egress policy.
    pub fn policy(&self) -> &EgressPolicy {
        &self.policy
    }

    /// POSTs `body` with `headers` (besides `Host` and `Content-Length`) to `url` and returns
    /// the response, whose body is read up to `max_response` bytes, all within `timeout`.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: Bytes,
        max_response: usize,
        timeout: Duration,
    ) -> Result<Response, TransportError> {
        tokio::time::timeout(timeout, self.post_inner(url, headers, body, max_response))
            .await
            .unwrap_or(Err(TransportError::Timeout(timeout)))
    }

    async fn post_inner(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: Bytes,
        max_response: usize,
    ) -> Result<Response, TransportError> {
        let dest = self
            .policy
            .resolve(url)
            .await
            .map_err(|e| TransportError::NotAllowed(e.to_string()))?;
        let mut last = None;
        let mut tcp = None;
        for addr in &dest.addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp = tcp.ok_or_else(|| {
            TransportError::Connect(last.map(|e| e.to_string()).unwrap_or_default())
        })?;
        let _ = tcp.set_nodelay(true);
        let host = dest.url.host_str().unwrap_or_default().to_string();
        if dest.url.scheme() == "https" {
            let name = rustls::pki_types::ServerName::try_from(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
            )
            .map_err(|e| TransportError::Tls(e.to_string()))?;
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| TransportError::Tls(e.to_string()))?;
            exchange(tls, &dest.url, headers, body, max_response).await
        } else {
            exchange(tcp, &dest.url, headers, body, max_response).await
        }
    }
}

async fn exchange<S>(
    io: S,
    url: &url::Url,
    headers: &[(&str, String)],
    body: Bytes,
    max_response: usize,
) -> Result<Response, TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let reset = |e: hyper::Error| TransportError::Reset(e.to_string());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(reset)?;
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut host = url.host_str().unwrap_or_default().to_string();
    if let Some(port) = url.port() {
        host = format!("{host}:{port}");
    }
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let mut builder = hyper::Request::post(path)
        .header("host", host)
        .header("content-length", body.len().to_string());
    for (name, value) in headers {
        builder = builder.header(*name, value);
    }
    let req = builder
        .body(Full::new(body))
        .map_err(|e| TransportError::Reset(e.to_string()))?;
    let response = sender.send_request(req).await.map_err(reset)?;
    let status = response.status().as_u16();
    let body = Limited::new(response.into_body(), max_response)
        .collect()
        .await;
    conn.abort();
    match body {
        Ok(b) => Ok(Response {
            status,
            body: b.to_bytes(),
        }),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(TransportError::TooLarge {
            status,
            limit: max_response,
        }),
        Err(e) => Err(TransportError::Reset(format!(
            "reading the response failed: {e}"
        ))),
    }
}

//! TLS on the listener (`--tls-cert`/`--tls-key`, `[tls]`): HTTP/1.1 and h2 chosen by ALPN,
//! the official Rust SDK over HTTPS, plain HTTP refused on the TLS port, TLS 1.2 and 1.3 only,
//! certificate reload on SIGHUP (and a broken reload keeping the old certificate), the
//! handshake bounded by `header_read_timeout_secs`, and the startup errors of half a
//! configuration.
//!
//! A throwaway CA and server certificates for `localhost` and 127.0.0.1 are made at test time
//! with rcgen. TLS 1.1 is checked with `openssl s_client` when it is installed (rustls clients
//! cannot offer it; tests/python/test_tls.py checks it with Python's ssl module too).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::Record;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::common::*;
use crate::pki::{Pki, ServerCert};

/// The certificate files of one server, in their own folder.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new(cert: &ServerCert) -> Self {
        let files = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        files.write(cert);
        files
    }

    fn cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }

    /// Replaces both files, each atomically (write a temp file, rename).
    fn write(&self, cert: &ServerCert) {
        self.write_raw(cert.cert_pem.as_bytes(), cert.key_pem.as_bytes());
    }

    fn write_raw(&self, cert: &[u8], key: &[u8]) {
        for (path, bytes) in [(self.cert(), cert), (self.key(), key)] {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, bytes).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        }
    }
}

/// A server started with `--tls-cert`/`--tls-key` (and an optional config file).
fn start_tls(data_dir: &Path, files: &Files, config: Option<&str>) -> Server {
    let (cert, key) = (files.cert(), files.key());
    let server = Server::start_args(
        data_dir,
        config,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(
        server.endpoint.starts_with("https://127.0.0.1:"),
        "{}",
        server.endpoint
    );
    server
}

fn addr(server: &Server) -> String {
    server.endpoint.trim_start_matches("https://").to_string()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A TLS connection to `server` as `localhost`.
async fn connect(
    server: &Server,
    connector: &TlsConnector,
) -> std::io::Result<TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr(server)).await?;
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::other("TLS handshake timed out"))?
}

/// `GET /health` over an established TLS connection, by the ALPN protocol it negotiated
/// (h2 or HTTP/1.1); returns the status and body.
async fn get_health(tls: TlsStream<tokio::net::TcpStream>) -> (u16, String) {
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(tls);
    let response = if h2 {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        tokio::spawn(conn);
        let request = hyper::Request::get("https://localhost/health")
            .body(Empty::<Bytes>::new())
            .unwrap();
        sender.send_request(request).await.unwrap()
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        let request = hyper::Request::get("/health")
            .header("host", "localhost")
            .body(Empty::<Bytes>::new())
            .unwrap();
        sender.send_request(request).await.unwrap()
    };
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The DER of the certificate a new connection to `server` is shown.
async fn peer_cert(server: &Server, pki: &Pki) -> Vec<u8> {
    let tls = connect(server, &pki.client(rustls::ALL_VERSIONS, &[b"http/1.1"]))
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[test]
fn http1_and_h2_by_alpn_and_the_sdk_over_https() {
    let pki = Pki::new();
    let files = Files::new(&pki.server_cert(1));
    let tmp = tempfile::tempdir().unwrap();
    let server = start_tls(tmp.path(), &files, None);
    rt().block_on(async {
        for (offered, expected) in [
            (&[b"http/1.1".as_slice()][..], b"http/1.1".as_slice()),
            (&[b"h2".as_slice()][..], b"h2".as_slice()),
            // Both offered: the server prefers h2.
            (
                &[b"http/1.1".as_slice(), b"h2".as_slice()][..],
                b"h2".as_slice(),
            ),
        ] {
            let tls = connect(&server, &pki.client(rustls::ALL_VERSIONS, offered))
                .await
                .unwrap();
            assert_eq!(tls.get_ref().1.alpn_protocol(), Some(expected));
            assert_eq!(get_health(tls).await, (200, "ok".to_string()));
        }

        // The official SDK, trusting the test CA, end to end over HTTPS.
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .tls_context(
                aws_smithy_http_client::tls::TlsContext::builder()
                    .with_trust_store(
                        aws_smithy_http_client::tls::TrustStore::empty()
                            .with_pem_certificate(pki.ca_pem.as_bytes()),
                    )
                    .build()
                    .unwrap(),
            )
            .build_https();
        let conf = aws_sdk_firehose::Config::builder()
            .behavior_version(aws_sdk_firehose::config::BehaviorVersion::latest())
            .region(aws_sdk_firehose::config::Region::new("us-east-1"))
            .endpoint_url(&server.endpoint)
            .credentials_provider(aws_credential_types::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .http_client(http)
            .build();
        let client = aws_sdk_firehose::Client::from_conf(conf);
        client
            .create_delivery_stream()
            .delivery_stream_name("tls")
            .extended_s3_destination_configuration(s3_dest("tls", 1, 0))
            .send()
            .await
            .unwrap();
        let put = client
            .put_record()
            .delivery_stream_name("tls")
            .record(
                Record::builder()
                    .data(Blob::new(b"over tls\n".to_vec()))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert!(!put.record_id.is_empty());
        let listed = client.list_delivery_streams().send().await.unwrap();
        assert_eq!(listed.delivery_stream_names, vec!["tls".to_string()]);
    });
    let objects = wait_for_objects(&server.bucket("tls"), Duration::from_secs(15), |o| {
        !o.is_empty()
    });
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert_eq!(objects[0].1, b"over tls\n");
}

#[test]
fn plain_http_on_the_tls_port_gets_no_http_response() {
    let pki = Pki::new();
    let files = Files::new(&pki.server_cert(1));
    let tmp = tempfile::tempdir().unwrap();
    let server = start_tls(tmp.path(), &files, None);

    let mut tcp = TcpStream::connect(addr(&server)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    // The server answers with at most a TLS alert, then closes (EOF or reset, not a timeout).
    match tcp.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) => assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "the connection stayed open: {e}"
        ),
    }
    assert!(
        !got.starts_with(b"HTTP/"),
        "an HTTP response on the TLS port: {:?}",
        String::from_utf8_lossy(&got)
    );
    assert!(got.len() < 64, "more than an alert: {got:?}");

    // curl over plain HTTP gets no status either (0 = no HTTP response).
    let http_url = format!("http://{}/health", addr(&server));
    assert_eq!(curl_status("GET", &http_url), 0);

    // And the port still serves TLS afterwards.
    let status = rt().block_on(async {
        let tls = connect(&server, &pki.client(rustls::ALL_VERSIONS, &[b"http/1.1"]))
            .await
            .unwrap();
        get_health(tls).await.0
    });
    assert_eq!(status, 200);
}

#[test]
fn tls_1_2_and_1_3_only() {
    let pki = Pki::new();
    let files = Files::new(&pki.server_cert(1));
    let tmp = tempfile::tempdir().unwrap();
    let server = start_tls(tmp.path(), &files, None);
    rt().block_on(async {
        for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
            let tls = connect(&server, &pki.client(&[version], &[b"http/1.1"]))
                .await
                .unwrap();
            assert_eq!(tls.get_ref().1.protocol_version(), Some(version.version));
            assert_eq!(get_health(tls).await.0, 200);
        }
    });

    // rustls cannot offer TLS 1.0/1.1; OpenSSL can (at security level 0).
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("openssl is not installed: TLS 1.0/1.1 checked by tests/python/test_tls.py only");
        return;
    }
    for flag in ["-tls1_1", "-tls1"] {
        let out = Command::new("openssl")
            .args(["s_client", "-connect", &addr(&server), flag])
            .args(["-cipher", "DEFAULT@SECLEVEL=0", "-servername", "localhost"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{flag} handshake succeeded: {text}");
        // The server refused it with an alert (rustls sends handshake_failure, 40, to a client
        // without TLS 1.2), rather than OpenSSL declining to offer the version at all.
        assert!(
            text.contains("SSL alert number 40") || text.contains("SSL alert number 70"),
            "{flag}: unexpected failure: {text}"
        );
        assert!(!text.contains("no protocols available"), "{text}");
    }
}

#[test]
fn sighup_reloads_the_certificate_and_a_broken_one_is_refused() {
    let pki = Pki::new();
    let (first, second, third) = (pki.server_cert(1), pki.server_cert(2), pki.server_cert(3));
    let files = Files::new(&first);
    let tmp = tempfile::tempdir().unwrap();
    let mut server = start_tls(tmp.path(), &files, None);
    let hup = |server: &Server| {
        let status = Command::new("kill")
            .args(["-HUP", &server.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    rt().block_on(async {
        assert_eq!(peer_cert(&server, &pki).await, first.der);
        // A connection made before the reload keeps working on its certificate.
        let old = connect(&server, &pki.client(rustls::ALL_VERSIONS, &[b"h2"]))
            .await
            .unwrap();
        let io = TokioIo::new(old);
        let (mut old, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        tokio::spawn(conn);

        files.write(&second);
        hup(&server);
        let deadline = Instant::now() + Duration::from_secs(10);
        while peer_cert(&server, &pki).await != second.der {
            assert!(
                Instant::now() < deadline,
                "SIGHUP did not load the new cert"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let request = hyper::Request::get("https://localhost/health")
            .body(Empty::<Bytes>::new())
            .unwrap();
        assert_eq!(old.send_request(request).await.unwrap().status(), 200);

        // Broken files: not PEM; an empty chain; a key that does not fit the certificate.
        // Each reload fails and the second certificate stays in use.
        let broken: [(&[u8], &[u8]); 3] = [
            (b"not a certificate", second.key_pem.as_bytes()),
            (b"", second.key_pem.as_bytes()),
            (third.cert_pem.as_bytes(), second.key_pem.as_bytes()),
        ];
        for (cert, key) in broken {
            files.write_raw(cert, key);
            hup(&server);
            // The reload runs on its own task; give it time to (fail to) happen.
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(peer_cert(&server, &pki).await, second.der);
            let tls = connect(&server, &pki.client(rustls::ALL_VERSIONS, &[b"h2"]))
                .await
                .unwrap();
            assert_eq!(get_health(tls).await.0, 200);
        }

        // Fixed files load again.
        files.write(&third);
        hup(&server);
        let deadline = Instant::now() + Duration::from_secs(10);
        while peer_cert(&server, &pki).await != third.der {
            assert!(
                Instant::now() < deadline,
                "SIGHUP did not load the fixed cert"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    server.stop();
}

#[test]
fn a_silent_client_is_dropped_after_the_handshake_timeout() {
    let pki = Pki::new();
    let files = Files::new(&pki.server_cert(1));
    let tmp = tempfile::tempdir().unwrap();
    let config = "[server]\nheader_read_timeout_secs = 1\nidle_timeout_secs = 60\n";
    let server = start_tls(tmp.path(), &files, Some(config));

    let started = Instant::now();
    let mut silent = TcpStream::connect(addr(&server)).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 64];
    let result = silent.read(&mut buf);
    let waited = started.elapsed();
    assert!(
        matches!(result, Ok(0))
            || result.as_ref().is_err_and(|e| !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            )),
        "the silent connection was not closed: {result:?}"
    );
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "closed after {waited:?}, expected about 1 s"
    );

    // A client that stops halfway through its handshake (a ClientHello's first bytes) too.
    let started = Instant::now();
    let mut partial = TcpStream::connect(addr(&server)).unwrap();
    partial
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();
    let result = partial.read(&mut buf);
    let waited = started.elapsed();
    assert!(
        matches!(result, Ok(0)) || result.is_err(),
        "{result:?} after {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "closed after {waited:?}");
}

#[test]
fn config_file_tls_and_startup_errors() {
    let pki = Pki::new();
    let files = Files::new(&pki.server_cert(1));
    let tmp = tempfile::tempdir().unwrap();

    // `[tls]` in the config file alone turns TLS on.
    let config = format!(
        "[tls]\ncert = {:?}\nkey = {:?}\n",
        files.cert().to_str().unwrap(),
        files.key().to_str().unwrap()
    );
    let server = Server::start_in(&tmp.path().join("a"), Some(&config));
    assert!(
        server.endpoint.starts_with("https://"),
        "{}",
        server.endpoint
    );
    drop(server);

    // Flags replace `[tls]` (here naming files that do not exist).
    let broken = "[tls]\ncert = \"/nonexistent/c.pem\"\nkey = \"/nonexistent/k.pem\"\n";
    let server = start_tls(&tmp.path().join("b"), &files, Some(broken));
    drop(server);

    // Errors that stop the start, with a message saying why.
    let fails = |args: &[&str], config: Option<&str>, expected: &str| {
        let dir = tmp.path().join(format!("fail-{}", expected.len()));
        let mut cmd = Command::new(lakehose_binary());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&dir)
            .args(args);
        if let Some(config) = config {
            let path = dir.with_extension("toml");
            std::fs::write(&path, config).unwrap();
            cmd.arg("--config").arg(path);
        }
        let out = cmd.stdin(Stdio::null()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started with {args:?} {config:?}");
        assert!(stderr.contains(expected), "{expected:?} not in: {stderr}");
        assert!(String::from_utf8_lossy(&out.stdout).is_empty());
    };
    let cert = files.cert().to_str().unwrap().to_string();
    let key = files.key().to_str().unwrap().to_string();
    fails(&["--tls-cert", &cert], None, "--tls-key");
    fails(&["--tls-key", &key], None, "--tls-cert");
    fails(
        &[],
        Some(&format!("[tls]\ncert = {cert:?}\n")),
        "tls.cert is set but tls.key is not",
    );
    fails(
        &["--tls-cert", "/nonexistent/c.pem", "--tls-key", &key],
        None,
        "reading the TLS certificate /nonexistent/c.pem",
    );
    fails(
        &["--tls-cert", &key, "--tls-key", &key],
        None,
        "no certificate (BEGIN CERTIFICATE)",
    );
    fails(
        &["--tls-cert", &cert, "--tls-key", &cert],
        None,
        "parsing the TLS key",
    );
    let other = pki.server_cert(2);
    let other_files = Files::new(&other);
    let other_key = other_files.key().to_str().unwrap().to_string();
    fails(
        &["--tls-cert", &cert, "--tls-key", &other_key],
        None,
        "does not fit the certificate",
    );
}

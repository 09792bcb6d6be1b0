//! TLS for the listener: rustls (ring provider), TLS 1.2 and 1.3 only, ALPN `h2` and
//! `http/1.1`, and a certificate that SIGHUP reloads from the same files.
//!
//! The certificate lives in [`CertResolver`], a `ResolvesServerCert` holding the current
//! `CertifiedKey`: every handshake reads it, a reload swaps it. Handshakes already done keep
//! the certificate they were made with; a reload that fails (unreadable file, bad PEM, a key
//! that does not match the certificate) is logged and changes nothing.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use anyhow::Context;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The certificate chain and key files of the listener (PEM).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// Certificate chain: the server certificate first, then any intermediates.
    pub cert: PathBuf,
    /// Private key: PKCS#8 (`BEGIN PRIVATE KEY`), RSA (`BEGIN RSA PRIVATE KEY`) or SEC1
    /// (`BEGIN EC PRIVATE KEY`).
    pub key: PathBuf,
}

/// The crypto provider of the listener: ring, named explicitly, so the choice never depends
/// on which rustls features other crates in the build enable.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads and checks a certificate chain and its key.
pub fn load(files: &TlsFiles, provider: &CryptoProvider) -> anyhow::Result<CertifiedKey> {
    let cert_pem = std::fs::read(&files.cert)
        .with_context(|| format!("reading the TLS certificate {}", files.cert.display()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing the TLS certificate {}", files.cert.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "no certificate (BEGIN CERTIFICATE) in {}",
        files.cert.display()
    );
    let key_pem = std::fs::read(&files.key)
        .with_context(|| format!("reading the TLS key {}", files.key.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).with_context(|| {
        format!(
            "parsing the TLS key {} (PKCS#8, RSA or SEC1 PEM expected)",
            files.key.display()
        )
    })?;
    CertifiedKey::from_der(chain, key, provider).with_context(|| {
        format!(
            "the TLS key {} does not fit the certificate {}",
            files.key.display(),
            files.cert.display()
        )
    })
}

/// The listener's current certificate; every handshake asks it, [`CertResolver::reload`]
/// replaces it.
#[derive(Debug)]
pub struct CertResolver {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertResolver {
    /// Loads the files once; an error here stops the server from starting.
    pub fn open(files: TlsFiles) -> anyhow::Result<Self> {
        let provider = provider();
        let key = load(&files, &provider)?;
        Ok(Self {
            files,
            provider,
            current: RwLock::new(Arc::new(key)),
        })
    }

    /// Re-reads the files; on success new handshakes use them, on failure the old certificate
    /// stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let key = load(&self.files, &self.provider)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
        Ok(())
    }

    fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The acceptor for `resolver`: TLS 1.3 and 1.2 only, ALPN `h2` then `http/1.1`, no client
/// certificates.
pub fn acceptor(resolver: Arc<CertResolver>) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let mut config = rustls::ServerConfig::builder_with_provider(resolver.provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("configuring TLS protocol versions")?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Reloads the certificate on every SIGHUP for the life of the process. The handler is
/// installed before this returns, so a SIGHUP sent once the server is listening never takes
/// the default action (exit).
pub fn reload_on_sighup(resolver: Arc<CertResolver>) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            let task = resolver.clone();
            match tokio::task::spawn_blocking(move || task.reload()).await {
                Ok(Ok(())) => tracing::info!(
                    cert = %resolver.files.cert.display(),
                    "SIGHUP: TLS certificate reloaded"
                ),
                Ok(Err(e)) => tracing::error!(
                    error = format!("{e:#}"),
                    "SIGHUP: TLS certificate not reloaded; still serving the previous one"
                ),
                Err(e) => tracing::error!(error = %e, "SIGHUP: the reload task failed"),
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &std::path::Path, cert: &str, key: &str) -> TlsFiles {
        let files = TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&files.cert, cert).unwrap();
        std::fs::write(&files.key, key).unwrap();
        files
    }

    fn self_signed(alg: &'static rcgen::SignatureAlgorithm) -> (String, String) {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    #[test]
    fn loads_pkcs8_keys_and_refuses_mismatches() {
        let dir = tempfile::tempdir().unwrap();
        for alg in [
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P384_SHA384,
            &rcgen::PKCS_ED25519,
        ] {
            let (cert, key) = self_signed(alg);
            load(&files(dir.path(), &cert, &key), &provider()).unwrap();
        }
        let (cert, _) = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256);
        let (_, other_key) = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256);
        let err = load(&files(dir.path(), &cert, &other_key), &provider()).unwrap_err();
        assert!(format!("{err:#}").contains("does not fit"), "{err:#}");
        let err = load(&files(dir.path(), "", &other_key), &provider()).unwrap_err();
        assert!(format!("{err:#}").contains("no certificate"), "{err:#}");
        let err = load(&files(dir.path(), &cert, "junk"), &provider()).unwrap_err();
        assert!(
            format!("{err:#}").contains("parsing the TLS key"),
            "{err:#}"
        );
    }

    /// RSA (`BEGIN RSA PRIVATE KEY`) and SEC1 (`BEGIN EC PRIVATE KEY`) keys, made by the
    /// `openssl` CLI when it is installed (rcgen with ring cannot make RSA keys).
    #[test]
    fn loads_rsa_and_sec1_keys() {
        let dir = tempfile::tempdir().unwrap();
        let openssl = |args: &[&str]| {
            std::process::Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .map(|out| assert!(out.status.success(), "openssl {args:?}: {out:?}"))
        };
        if openssl(&["version"]).is_err() {
            eprintln!("openssl is not installed: RSA and SEC1 keys not checked");
            return;
        }
        let req = [
            "req",
            "-x509",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ];
        // OpenSSL 3 writes PKCS#8; `rsa -traditional` and `ec` write the older formats.
        let rsa: &[&str] = &["rsa", "-in", "k8.pem", "-out", "k.pem", "-traditional"];
        let ec: &[&str] = &["ec", "-in", "k8.pem", "-out", "k.pem"];
        for (newkey, convert) in [("rsa:2048", rsa), ("ec", ec)] {
            let mut args = req.to_vec();
            args.extend(["-newkey", newkey, "-keyout", "k8.pem", "-out", "c.pem"]);
            if newkey == "ec" {
                args.extend(["-pkeyopt", "ec_paramgen_curve:P-256"]);
            }
            openssl(&args).unwrap();
            openssl(convert).unwrap();
            let key = std::fs::read_to_string(dir.path().join("k.pem")).unwrap();
            let begin = if newkey == "ec" {
                "BEGIN EC PRIVATE KEY"
            } else {
                "BEGIN RSA PRIVATE KEY"
            };
            assert!(key.contains(begin), "{key}");
            let files = TlsFiles {
                cert: dir.path().join("c.pem"),
                key: dir.path().join("k.pem"),
            };
            load(&files, &provider()).unwrap();
        }
    }

    #[test]
    fn reload_swaps_the_certificate_only_when_the_files_are_good() {
        let dir = tempfile::tempdir().unwrap();
        let (cert1, key1) = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256);
        let resolver = CertResolver::open(files(dir.path(), &cert1, &key1)).unwrap();
        let first = resolver.current();
        let (cert2, key2) = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256);
        files(dir.path(), &cert2, &key1);
        assert!(resolver.reload().is_err());
        assert!(Arc::ptr_eq(&resolver.current(), &first));
        files(dir.path(), &cert2, &key2);
        resolver.reload().unwrap();
        assert_ne!(resolver.current().cert, first.cert);
    }
}

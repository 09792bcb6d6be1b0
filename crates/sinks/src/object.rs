//! The object-store destination: a bucket named in a `BucketARN` is a folder under
//! `DATA_DIR/buckets/NAME/` by default, or any S3-compatible endpoint mapped in `lakehose.toml`.
//!
//! Invariant: [`ObjectSink::put`] returns `Ok` only when the whole object is stored durably under
//! its key — for local buckets the file is written to a temporary name, renamed into place
//! (object_store's put, or its multipart upload for an object in many parts: both stage the
//! file and rename it) and then fsync'd together with its folders, so a power loss after
//! the delivery was committed cannot lose it. A put of the same key again replaces the object
//! whole, which is what makes redelivery after a crash idempotent.
//!
//! Encryption (`KMSEncryptionConfig` of a destination, see [`Buckets::sink_with_kms`]): a bucket
//! mapped to S3 gets the objects with SSE-KMS (`x-amz-server-side-encryption: aws:kms` and the
//! key id headers, set by object_store on every put of a store built for that key: one store
//! per bucket and key, as object_store sets SSE on the builder, not per request). A local
//! bucket stores each object sealed (`lakehose_crypto::object`) under the keyring key the
//! ARN names; without that key nothing is written (fail closed).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use lakehose_crypto::Keyring;

use crate::{SinkError, SinkResult};

/// A bucket mapped to an S3-compatible endpoint (a `[buckets.NAME]` table in `lakehose.toml`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3BucketConfig {
    /// Endpoint URL, e.g. `http://127.0.0.1:9000`; absent means AWS S3 itself.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Region for signing.
    #[serde(default = "default_region")]
    pub region: String,
    /// The bucket's name at the endpoint, when it differs from the name in the ARN.
    #[serde(default)]
    pub bucket: Option<String>,
    /// Access key id (falls back to `AWS_ACCESS_KEY_ID`).
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// Secret access key (falls back to `AWS_SECRET_ACCESS_KEY`).
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Allow `http://` endpoints.
    #[serde(default)]
    pub allow_http: bool,
    /// Path-style requests (`endpoint/bucket/key`), which most self-hosted servers need.
    #[serde(default = "default_true")]
    pub path_style: bool,
}

fn default_region() -> String {
    "us-east-1".into()
}
fn default_true() -> bool {
    true
}

/// Where objects go: durable `put` of a whole object under a key.
#[async_trait]
pub trait ObjectSink: Send + Sync + std::fmt::Debug {
    /// Stores the concatenation of `parts` under `key`, replacing any object there. Parts let
    /// uncompressed objects go out without copying the records into one buffer.
    async fn put(&self, key: &str, parts: Vec<Bytes>) -> SinkResult<()>;
    /// Reads an object back (used by tests and tools).
    async fn get(&self, key: &str) -> SinkResult<Bytes>;
    /// Lists keys under `prefix`.
    async fn list(&self, prefix: &str) -> SinkResult<Vec<String>>;
}

/// An [`ObjectSink`] on an `object_store` backend.
#[derive(Debug)]
pub struct StoreSink {
    store: Arc<dyn ObjectStore>,
    /// For local buckets, the folder, so puts can be fsync'd.
    local_root: Option<PathBuf>,
    /// Folders already fsync'd as entries of their parents: only a new object's own folder
    /// needs an fsync for its new entry, not every ancestor every time.
    durable_dirs: Arc<Mutex<std::collections::HashSet<PathBuf>>>,
    /// Local buckets with `KMSEncryptionConfig`: objects are sealed under this keyring key.
    seal: Option<(Arc<Keyring>, String)>,
    /// Local buckets with a keyring configured: reads open sealed objects.
    keyring: Option<Arc<Keyring>>,
}

fn object_path(key: &str) -> ObjectPath {
    ObjectPath::parse(key).unwrap_or_else(|_| ObjectPath::from(key))
}

fn classify(e: object_store::Error) -> SinkError {
    match e {
        object_store::Error::NotFound { .. } => SinkError::NotFound(e.to_string()),
        object_store::Error::InvalidPath { .. } => SinkError::Permanent(e.to_string()),
        other => SinkError::Retryable(other.to_string()),
    }
}

/// fsyncs `file` and its folder (which gained an entry), then, walking up to `root`, the parent
/// of every folder not yet known durable (a folder created for this object is a new entry of
/// its parent). Known-durable folders are remembered, so steady state costs two fsyncs.
fn sync_path(
    root: &Path,
    file: &Path,
    durable: &Mutex<std::collections::HashSet<PathBuf>>,
) -> std::io::Result<()> {
    let object = std::fs::File::open(file)?;
    object.sync_all()?;
    // Durable, so its pages are clean: drop them from the page cache. Nothing here reads an
    // object soon after writing it, and a server in a memory-limited container (cgroup) is
    // charged for its page cache: objects written at hundreds of MB/s otherwise keep it at
    // the limit, and the kernel reclaims memory in the server's own allocations (the overload
    // test's 512 MiB cgroup hit its limit about 11,000 times a run before this, and no more
    // after). Advice only: a failure changes nothing about durability.
    let _ = rustix::fs::fadvise(&object, 0, None, rustix::fs::Advice::DontNeed);
    drop(object);
    let Some(mut dir) = file.parent() else {
        return Ok(());
    };
    std::fs::File::open(dir)?.sync_all()?;
    while dir != root && dir.starts_with(root) {
        if durable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(dir)
        {
            break;
        }
        let Some(parent) = dir.parent() else { break };
        std::fs::File::open(parent)?.sync_all()?;
        durable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(dir.to_path_buf());
        dir = parent;
    }
    Ok(())
}

impl StoreSink {
    /// The object store under the sink (keys are object keys), for readers such as queries.
    /// For a local bucket with a keyring configured it opens sealed objects transparently
    /// ([`crate::sealed::OpenSealed`]); writes through it are stored as given.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        match (&self.keyring, &self.local_root) {
            (Some(keyring), Some(_)) => Arc::new(crate::sealed::OpenSealed::new(
                self.store.clone(),
                keyring.clone(),
            )),
            _ => self.store.clone(),
        }
    }

    /// Whether puts are sealed (a local bucket with `KMSEncryptionConfig`).
    pub fn seals(&self) -> bool {
        self.seal.is_some()
    }
}

/// The size [`Coalesced`] gathers small parts into.
const PUT_CHUNK_BYTES: usize = 1 << 20;

/// Stores `parts` in a local bucket as one object, written [`PUT_CHUNK_BYTES`] at a time.
///
/// Uncompressed objects arrive as one part per record, and object_store's local store writes
/// a payload a part at a time: a plain put made one `write` system call per record (about
/// 1 KiB each), some 15% of a busy server's CPU. Gathering the parts into chunks costs one
/// copy of the bytes; a multipart upload (a staging file renamed into place on completion,
/// as a put does) lets the copy be made a chunk at a time, so memory grows by a chunk, not
/// by a second copy of the object.
async fn put_in_chunks(
    store: &dyn ObjectStore,
    path: &ObjectPath,
    parts: Vec<Bytes>,
) -> SinkResult<()> {
    let mut upload = store.put_multipart(path).await.map_err(classify)?;
    for chunk in Coalesced::new(parts, PUT_CHUNK_BYTES) {
        if let Err(e) = upload.put_part(chunk.into()).await {
            // Removes the staging file; the object is left as it was.
            let _ = upload.abort().await;
            return Err(classify(e));
        }
    }
    upload.complete().await.map_err(classify)?;
    Ok(())
}

/// Parts gathered into chunks of at least `chunk` bytes (the last may be shorter), one chunk
/// at a time. A part of `chunk` bytes or more is passed on as it is, without a copy.
struct Coalesced {
    parts: std::vec::IntoIter<Bytes>,
    chunk: usize,
    /// A large part met while gathering, passed on after the gathered chunk.
    large: Option<Bytes>,
}

impl Coalesced {
    fn new(parts: Vec<Bytes>, chunk: usize) -> Self {
        Self {
            parts: parts.into_iter(),
            chunk,
            large: None,
        }
    }
}

impl Iterator for Coalesced {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        if let Some(large) = self.large.take() {
            return Some(large);
        }
        let mut gathering = bytes::BytesMut::new();
        for part in self.parts.by_ref() {
            if part.len() >= self.chunk {
                if gathering.is_empty() {
                    return Some(part);
                }
                self.large = Some(part);
                break;
            }
            if gathering.is_empty() {
                gathering.reserve(self.chunk);
            }
            gathering.extend_from_slice(&part);
            if gathering.len() >= self.chunk {
                break;
            }
        }
        (!gathering.is_empty()).then(|| gathering.freeze())
    }
}

#[async_trait]
impl ObjectSink for StoreSink {
    async fn put(&self, key: &str, parts: Vec<Bytes>) -> SinkResult<()> {
        let path = object_path(key);
        let parts = match &self.seal {
            Some((keyring, key_id)) => {
                let (keyring, key_id) = (keyring.clone(), key_id.clone());
                let sealed = tokio::task::spawn_blocking(move || {
                    let slices: Vec<&[u8]> = parts.iter().map(|p| p.as_ref()).collect();
                    lakehose_crypto::object::seal(&keyring, &key_id, &slices)
                })
                .await
                .map_err(|e| SinkError::Retryable(e.to_string()))?
                .map_err(|e| SinkError::Config(format!("sealing the object: {e}")))?;
                vec![Bytes::from(sealed)]
            }
            None => parts,
        };
        if self.local_root.is_some() && parts.len() > 1 {
            put_in_chunks(self.store.as_ref(), &path, parts).await?;
        } else {
            let payload: PutPayload = parts.into_iter().collect();
            self.store.put(&path, payload).await.map_err(classify)?;
        }
        if let Some(root) = &self.local_root {
            let file = root.join(path.as_ref());
            let root = root.clone();
            let durable = self.durable_dirs.clone();
            tokio::task::spawn_blocking(move || sync_path(&root, &file, &durable))
                .await
                .map_err(|e| SinkError::Retryable(e.to_string()))?
                .map_err(|e| SinkError::Retryable(format!("fsync of delivered object: {e}")))?;
        }
        Ok(())
    }

    async fn get(&self, key: &str) -> SinkResult<Bytes> {
        let result = self.store.get(&object_path(key)).await.map_err(classify)?;
        let bytes = result.bytes().await.map_err(classify)?;
        match &self.keyring {
            Some(keyring)
                if self.local_root.is_some() && lakehose_crypto::object::is_sealed(&bytes) =>
            {
                lakehose_crypto::object::open(keyring, &bytes)
                    .map(Bytes::from)
                    .map_err(|e| SinkError::Permanent(format!("opening sealed object {key}: {e}")))
            }
            _ => Ok(bytes),
        }
    }

    async fn list(&self, prefix: &str) -> SinkResult<Vec<String>> {
        use futures::TryStreamExt;
        let prefix = (!prefix.is_empty()).then(|| object_path(prefix));
        let items: Vec<_> = self
            .store
            .list(prefix.as_ref())
            .try_collect()
            .await
            .map_err(classify)?;
        let mut keys: Vec<String> = items.into_iter().map(|m| m.location.to_string()).collect();
        keys.sort();
        Ok(keys)
    }
}

/// Resolves bucket names to sinks: mapped buckets to their S3 endpoint, the rest to folders.
#[derive(Debug)]
pub struct Buckets {
    local_root: PathBuf,
    mapped: HashMap<String, S3BucketConfig>,
    /// Master keys for sealed objects of local buckets.
    keyring: Option<Arc<Keyring>>,
    /// By bucket and KMS key ARN (`None`: no encryption).
    cache: Mutex<HashMap<SinkKey, Arc<StoreSink>>>,
}

/// A cached sink's bucket and KMS key ARN.
type SinkKey = (String, Option<String>);

impl Buckets {
    /// Local buckets live in `local_root/NAME/`; `mapped` buckets at their endpoints.
    pub fn new(local_root: PathBuf, mapped: HashMap<String, S3BucketConfig>) -> Self {
        Self {
            local_root,
            mapped,
            keyring: None,
            cache: Mutex::default(),
        }
    }

    /// Uses `keyring` to seal objects of local buckets whose destination has a
    /// `KMSEncryptionConfig`, and to open them when read.
    pub fn with_keyring(mut self, keyring: Option<Arc<Keyring>>) -> Self {
        self.keyring = keyring;
        self
    }

    /// The keyring, if one is configured.
    pub fn keyring(&self) -> Option<&Arc<Keyring>> {
        self.keyring.as_ref()
    }

    /// The folder a local bucket lives in.
    pub fn local_path(&self, bucket: &str) -> Option<PathBuf> {
        (!self.mapped.contains_key(bucket)).then(|| self.local_root.join(bucket))
    }

    /// Why objects of `bucket` cannot be encrypted under `kms_key_arn`, if they cannot: a
    /// local bucket needs a keyring holding the key the ARN names
    /// (`arn:aws:kms:REGION:ACCOUNT:key/KEYID` names keyring key `KEYID`); a mapped bucket
    /// leaves the key to S3.
    pub fn kms_problem(&self, bucket: &str, kms_key_arn: &str) -> Option<String> {
        if self.mapped.contains_key(bucket) {
            return None;
        }
        let Some(id) = lakehose_crypto::key_id_from_arn(kms_key_arn) else {
            return Some(format!(
                "AWSKMSKeyARN '{kms_key_arn}' is not a KMS key ARN \
                 (arn:aws:kms:<region>:<account>:key/<key id>)."
            ));
        };
        match &self.keyring {
            None => Some(format!(
                "Bucket '{bucket}' is a local bucket and no keyring is configured to encrypt its \
                 objects with key '{id}' ([encryption] in lakehose.toml or {}).",
                lakehose_crypto::MASTER_KEY_ENV
            )),
            Some(k) if !k.contains(id) => Some(format!(
                "The keyring has no key '{id}' (named by AWSKMSKeyARN '{kms_key_arn}')."
            )),
            Some(_) => None,
        }
    }

    /// The sink for `bucket` (created on first use and cached).
    pub fn sink(&self, bucket: &str) -> SinkResult<Arc<StoreSink>> {
        self.sink_with_kms(bucket, None)
    }

    /// The sink for `bucket` that encrypts objects under `kms_key_arn` (`None`: no
    /// encryption): SSE-KMS for a mapped bucket, sealed objects for a local one (an error,
    /// and nothing written, when the keyring lacks the key).
    pub fn sink_with_kms(
        &self,
        bucket: &str,
        kms_key_arn: Option<&str>,
    ) -> SinkResult<Arc<StoreSink>> {
        let cache_key = (bucket.to_string(), kms_key_arn.map(str::to_string));
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sink) = cache.get(&cache_key) {
            return Ok(sink.clone());
        }
        let sink = match self.mapped.get(bucket) {
            Some(cfg) => {
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(cfg.bucket.clone().unwrap_or_else(|| bucket.to_string()))
                    .with_region(&cfg.region)
                    .with_allow_http(cfg.allow_http)
                    .with_virtual_hosted_style_request(!cfg.path_style)
                    // A few quick retries inside one put; the delivery loop owns the long
                    // retry window (with backoff, retention and metrics).
                    .with_retry(object_store::RetryConfig {
                        max_retries: 2,
                        retry_timeout: std::time::Duration::from_secs(20),
                        ..Default::default()
                    });
                if let Some(endpoint) = &cfg.endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                if let Some(k) = &cfg.access_key_id {
                    builder = builder.with_access_key_id(k);
                }
                if let Some(s) = &cfg.secret_access_key {
                    builder = builder.with_secret_access_key(s);
                }
                if let Some(arn) = kms_key_arn {
                    builder = builder.with_sse_kms_encryption(arn);
                }
                let store = builder
                    .build()
                    .map_err(|e| SinkError::Config(e.to_string()))?;
                StoreSink {
                    store: Arc::new(store),
                    local_root: None,
                    durable_dirs: Arc::default(),
                    seal: None,
                    keyring: None,
                }
            }
            None => {
                let seal = match kms_key_arn {
                    Some(arn) => {
                        if let Some(problem) = self.kms_problem(bucket, arn) {
                            return Err(SinkError::Config(problem));
                        }
                        let id = lakehose_crypto::key_id_from_arn(arn).expect("checked");
                        let keyring = self.keyring.clone().expect("checked");
                        Some((keyring, id.to_string()))
                    }
                    None => None,
                };
                let root = self.local_root.join(bucket);
                std::fs::create_dir_all(&root).map_err(|e| {
                    SinkError::Retryable(format!("creating {}: {e}", root.display()))
                })?;
                let store = LocalFileSystem::new_with_prefix(&root)
                    .map_err(|e| SinkError::Config(e.to_string()))?;
                StoreSink {
                    store: Arc::new(store),
                    local_root: Some(root),
                    durable_dirs: Arc::default(),
                    seal,
                    keyring: self.keyring.clone(),
                }
            }
        };
        let sink = Arc::new(sink);
        cache.insert(cache_key, sink.clone());
        Ok(sink)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_bucket_put_get_list_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let buckets = Buckets::new(dir.path().to_path_buf(), HashMap::new());
        let sink = buckets.sink("b1").unwrap();
        sink.put("2024/01/02/03/s-1-x", vec![Bytes::from_static(b"one")])
            .await
            .unwrap();
        let parts = vec![
            Bytes::from_static(b"tw"),
            Bytes::new(),
            Bytes::from_static(b"o"),
        ];
        sink.put("2024/01/02/03/s-1-x", parts).await.unwrap();
        assert_eq!(&sink.get("2024/01/02/03/s-1-x").await.unwrap()[..], b"two");
        assert_eq!(
            sink.list("").await.unwrap(),
            vec!["2024/01/02/03/s-1-x".to_string()]
        );
        assert!(dir.path().join("b1/2024/01/02/03/s-1-x").is_file());
        assert!(matches!(
            sink.get("nope").await,
            Err(SinkError::NotFound(_))
        ));
    }

    #[test]
    fn small_parts_are_gathered_into_chunks_and_large_ones_passed_on() {
        let record = |i: usize| Bytes::from(format!("{{\"n\":{i}}}\n").repeat(10));
        let large = Bytes::from(vec![b'x'; 300]);
        let mut parts: Vec<Bytes> = (0..50).map(record).collect();
        parts.push(large.clone());
        parts.push(Bytes::new());
        parts.extend((50..53).map(record));
        let whole: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
        let chunks: Vec<Bytes> = Coalesced::new(parts, 256).collect();
        assert_eq!(chunks.concat(), whole);
        // About 4 KiB of small parts in chunks of at least 256 bytes (the last one before the
        // large part may be shorter), the large part itself, then the tail in one chunk.
        let large_at = chunks
            .iter()
            .position(|c| c.as_ptr() == large.as_ptr())
            .expect("a part of at least a chunk is passed on without a copy");
        assert!(
            large_at <= 4500 / 256 + 1,
            "{large_at} chunks before the large part"
        );
        assert!(chunks[..large_at - 1].iter().all(|c| c.len() >= 256));
        assert_eq!(chunks.len() - large_at - 1, 1, "the tail is one chunk");
        assert_eq!(Coalesced::new(Vec::new(), 256).count(), 0);
    }

    #[tokio::test]
    async fn a_local_object_of_many_parts_is_written_whole_in_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let buckets = Buckets::new(dir.path().to_path_buf(), HashMap::new());
        let sink = buckets.sink("b1").unwrap();
        // 3 MiB in 1 KiB records: three chunks and a tail.
        let parts: Vec<Bytes> = (0..3100u32)
            .map(|i| Bytes::from(vec![(i % 251) as u8; 1024]))
            .collect();
        let whole = parts.concat();
        sink.put("2024/many", parts).await.unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("b1/2024/many")).unwrap(),
            whole
        );
        // Replacing it leaves no staging file behind.
        sink.put(
            "2024/many",
            vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")],
        )
        .await
        .unwrap();
        assert_eq!(&sink.get("2024/many").await.unwrap()[..], b"ab");
        let left: Vec<_> = std::fs::read_dir(dir.path().join("b1/2024"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("many")]);
    }

    fn keyring(ids: &[&str]) -> Arc<Keyring> {
        let lines: Vec<String> = ids
            .iter()
            .map(|id| lakehose_crypto::generate_key_line(id).unwrap())
            .collect();
        Arc::new(Keyring::parse(&lines.join("\n")).unwrap())
    }

    const ARN: &str = "arn:aws:kms:us-east-1:123456789012:key/objects";

    #[tokio::test]
    async fn kms_objects_of_local_buckets_are_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let buckets = Buckets::new(dir.path().to_path_buf(), HashMap::new())
            .with_keyring(Some(keyring(&["objects"])));
        let sink = buckets.sink_with_kms("b1", Some(ARN)).unwrap();
        assert!(sink.seals());
        let parts = vec![
            Bytes::from_static(b"{\"m\":\"SECRET-MARKER\"}\n"),
            Bytes::from_static(b"{\"m\":2}\n"),
        ];
        sink.put("2024/k", parts).await.unwrap();
        let raw = std::fs::read(dir.path().join("b1/2024/k")).unwrap();
        assert!(lakehose_crypto::object::is_sealed(&raw));
        assert!(!raw.windows(13).any(|w| w == b"SECRET-MARKER"));
        // Reads (the plain sink of the same bucket too) open it.
        let plain = "{\"m\":\"SECRET-MARKER\"}\n{\"m\":2}\n";
        assert_eq!(&sink.get("2024/k").await.unwrap()[..], plain.as_bytes());
        let unsealed = buckets.sink("b1").unwrap();
        assert!(!unsealed.seals());
        assert_eq!(&unsealed.get("2024/k").await.unwrap()[..], plain.as_bytes());
        // And so does the store queries read through, sizes included.
        let store = unsealed.store();
        let meta = store.head(&object_path("2024/k")).await.unwrap();
        assert_eq!(meta.size, plain.len() as u64);
        let range = store
            .get_range(&object_path("2024/k"), 3..14)
            .await
            .unwrap();
        assert_eq!(&range[..], &plain.as_bytes()[3..14]);
    }

    #[tokio::test]
    async fn kms_without_the_key_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let none = Buckets::new(dir.path().to_path_buf(), HashMap::new());
        assert!(none.kms_problem("b1", ARN).unwrap().contains("no keyring"));
        assert!(matches!(
            none.sink_with_kms("b1", Some(ARN)),
            Err(SinkError::Config(_))
        ));
        let other = Buckets::new(dir.path().to_path_buf(), HashMap::new())
            .with_keyring(Some(keyring(&["other"])));
        assert!(
            other
                .kms_problem("b1", ARN)
                .unwrap()
                .contains("no key 'objects'")
        );
        assert!(other.kms_problem("b1", "arn:aws:s3:::x").is_some());
        assert!(other.sink_with_kms("b1", Some(ARN)).is_err());
        // Mapped buckets leave the key to S3.
        let mut mapped = HashMap::new();
        mapped.insert("s3b".to_string(), S3BucketConfig::default());
        let m = Buckets::new(dir.path().to_path_buf(), mapped);
        assert_eq!(m.kms_problem("s3b", ARN), None);
        assert!(
            !dir.path()
                .join("b1")
                .read_dir()
                .is_ok_and(|mut d| d.next().is_some())
        );
    }
}

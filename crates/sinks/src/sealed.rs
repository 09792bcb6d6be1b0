//! [`OpenSealed`]: an `ObjectStore` over a local bucket that opens sealed objects (written by
//! destinations with `KMSEncryptionConfig`, format in `lakehose_crypto::object`) so queries
//! read them like any other object.
//!
//! - `get` (any range) of a sealed object reads the whole object, opens it with the keyring
//!   and serves the requested range of the plaintext (so each ranged read of a sealed Parquet
//!   file decrypts all of it: fine for Firehose-sized objects, not for huge ones); other
//!   objects pass through (a `head` and a read of their first bytes tell them apart).
//! - `list` and `head` report the plaintext size of sealed objects, computed from the header
//!   and the stored size (readers such as Parquet's locate the footer from it).
//! - An object that fails to open (wrong or missing key, tampering) is an error, never
//!   returned as data.
//! - Writes, copies and deletes pass through unchanged: what is written through this store
//!   (query results) is stored as given.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use lakehose_crypto::Keyring;
use lakehose_crypto::object::{MAX_HEADER_LEN, is_sealed, parse_header};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// Opens sealed objects of the store it wraps; see the module docs.
#[derive(Debug)]
pub struct OpenSealed {
    inner: Arc<dyn ObjectStore>,
    keyring: Arc<Keyring>,
}

impl OpenSealed {
    /// Wraps `inner`; sealed objects are opened with `keyring`.
    pub fn new(inner: Arc<dyn ObjectStore>, keyring: Arc<Keyring>) -> Self {
        Self { inner, keyring }
    }
}

impl fmt::Display for OpenSealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OpenSealed({})", self.inner)
    }
}

fn generic(e: impl fmt::Display) -> object_store::Error {
    object_store::Error::Generic {
        store: "OpenSealed",
        source: e.to_string().into(),
    }
}

/// The first bytes of `location` (up to the longest sealed header), and its meta.
async fn head_bytes(inner: &dyn ObjectStore, location: &Path) -> Result<(Bytes, ObjectMeta)> {
    let meta = inner.head(location).await?;
    if meta.size == 0 {
        return Ok((Bytes::new(), meta));
    }
    let end = meta.size.min(MAX_HEADER_LEN as u64);
    Ok((inner.get_range(location, 0..end).await?, meta))
}

/// `meta` with the plaintext size if `head` (the object's first bytes) is a sealed header.
fn plaintext_meta(mut meta: ObjectMeta, head: &[u8]) -> ObjectMeta {
    if is_sealed(head)
        && let Ok(h) = parse_header(head)
        && let Some(size) = h.plaintext_len(meta.size)
    {
        meta.size = size;
    }
    meta
}

impl OpenSealed {
    async fn fix_meta(&self, meta: ObjectMeta) -> Result<ObjectMeta> {
        if meta.size < lakehose_crypto::object::MAGIC.len() as u64 {
            return Ok(meta);
        }
        let end = meta.size.min(MAX_HEADER_LEN as u64);
        let head = self.inner.get_range(&meta.location, 0..end).await?;
        Ok(plaintext_meta(meta, &head))
    }
}

#[async_trait]
impl ObjectStore for OpenSealed {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let (head, meta) = head_bytes(&*self.inner, location).await?;
        if !is_sealed(&head) {
            return self.inner.get_opts(location, options).await;
        }
        if options.head {
            // The plaintext size follows from the header; nothing to decrypt.
            let meta = plaintext_meta(meta, &head);
            let range = 0..meta.size;
            return Ok(GetResult {
                payload: GetResultPayload::Stream(futures::stream::empty().boxed()),
                meta,
                range,
                attributes: Default::default(),
            });
        }
        let whole = self
            .inner
            .get_opts(
                location,
                GetOptions {
                    range: None,
                    head: false,
                    ..options.clone()
                },
            )
            .await?;
        let attributes = whole.attributes.clone();
        let sealed = whole.bytes().await?;
        let keyring = self.keyring.clone();
        let plain =
            tokio::task::spawn_blocking(move || lakehose_crypto::object::open(&keyring, &sealed))
                .await
                .map_err(generic)?
                .map_err(|e| generic(format!("{location}: {e}")))?;
        let mut meta = meta;
        meta.size = plain.len() as u64;
        let range: Range<u64> = match &options.range {
            Some(r) => r.as_range(meta.size).map_err(generic)?,
            None => 0..meta.size,
        };
        let body = Bytes::from(plain).slice(range.start as usize..range.end as usize);
        Ok(GetResult {
            payload: GetResultPayload::Stream(
                futures::stream::once(async move { Ok(body) }).boxed(),
            ),
            meta,
            range,
            attributes,
        })
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let inner = self.inner.clone();
        let keyring = self.keyring.clone();
        self.inner
            .list(prefix)
            .then(move |meta| {
                let this = OpenSealed {
                    inner: inner.clone(),
                    keyring: keyring.clone(),
                };
                async move { this.fix_meta(meta?).await }
            })
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let mut result = self.inner.list_with_delimiter(prefix).await?;
        let mut objects = Vec::with_capacity(result.objects.len());
        for meta in result.objects {
            objects.push(self.fix_meta(meta).await?);
        }
        result.objects = objects;
        Ok(result)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

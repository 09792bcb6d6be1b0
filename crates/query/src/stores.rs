//! `s3://BUCKET` URLs resolved through [`BucketStores`] for DataFusion.
//!
//! Invariants: a bucket's store is asked of [`BucketStores`] at most once per engine (then
//! kept), and only when a scan first needs it; locations are parsed by [`parse_location`]
//! only, so `s3://`, `s3a://` and `s3n://` are treated alike everywhere.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::object_store::{ObjectStoreRegistry, ObjectStoreUrl};
use object_store::ObjectStore;
use object_store::path::Path;
use url::Url;

use crate::BucketStores;

/// An object store registry over [`BucketStores`], caching each bucket's store.
#[derive(Debug)]
pub(crate) struct BucketRegistry {
    stores: Arc<dyn BucketStores>,
    cache: RwLock<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl BucketRegistry {
    pub fn new(stores: Arc<dyn BucketStores>) -> Self {
        BucketRegistry {
            stores,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// The store of `bucket` (cached).
    pub fn bucket(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>, String> {
        if let Ok(cache) = self.cache.read()
            && let Some(s) = cache.get(bucket)
        {
            return Ok(Arc::clone(s));
        }
        let store = self.stores.store(bucket)?;
        if let Ok(mut cache) = self.cache.write() {
            cache.insert(bucket.to_string(), Arc::clone(&store));
        }
        Ok(store)
    }
}

impl ObjectStoreRegistry for BucketRegistry {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        let bucket = url.host_str().unwrap_or_default().to_string();
        self.cache.write().ok()?.insert(bucket, store)
    }

    fn get_store(&self, url: &Url) -> DfResult<Arc<dyn ObjectStore>> {
        if !matches!(url.scheme(), "s3" | "s3a" | "s3n") {
            return Err(DataFusionError::Plan(format!(
                "unsupported location scheme '{}': only s3:// locations can be read",
                url.scheme()
            )));
        }
        let bucket = url.host_str().unwrap_or_default();
        self.bucket(bucket).map_err(|e| {
            DataFusionError::Execution(format!("bucket '{bucket}' is not available: {e}"))
        })
    }
}

/// A parsed `s3://bucket/prefix` location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Location {
    pub bucket: String,
    /// The key prefix without leading or trailing `/` (empty for the bucket root).
    pub prefix: String,
}

impl Location {
    /// The object store URL of the bucket (`s3://bucket`).
    pub fn store_url(&self) -> DfResult<ObjectStoreUrl> {
        ObjectStoreUrl::parse(format!("s3://{}", self.bucket))
    }

    /// The prefix as an object store path (lists everything under `prefix/`).
    pub fn path(&self) -> Path {
        Path::from(self.prefix.as_str())
    }

    /// `s3://bucket/key` of an object in this bucket.
    pub fn object_url(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, key)
    }
}

/// Parses `s3://bucket/prefix/` (also `s3a://`, `s3n://`).
pub(crate) fn parse_location(location: &str) -> Result<Location, String> {
    let rest = ["s3://", "s3a://", "s3n://"]
        .iter()
        .find_map(|scheme| {
            location
                .get(..scheme.len())
                .filter(|p| p.eq_ignore_ascii_case(scheme))
                .map(|_| &location[scheme.len()..])
        })
        .ok_or_else(|| format!("location '{location}' is not an s3:// location"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("location '{location}' has no bucket"));
    }
    Ok(Location {
        bucket: bucket.to_string(),
        prefix: prefix.trim_matches('/').to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        let l = parse_location("s3://b/a/b/").unwrap();
        assert_eq!(l.bucket, "b");
        assert_eq!(l.prefix, "a/b");
        assert_eq!(parse_location("S3A://b").unwrap().prefix, "");
        assert!(parse_location("/tmp/x").is_err());
        assert!(parse_location("s3:///x").is_err());
        assert_eq!(l.object_url("a/b/c"), "s3://b/a/b/c");
    }
}

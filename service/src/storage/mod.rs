//! Object storage for photo bytes, behind our own small type over the `object_store` crate:
//! a local directory (default), memory (tests) or any S3-compatible service.

mod delete;
pub mod keys;
mod presign;

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};

pub use delete::DeleteObjects;
pub use presign::{PresignedPut, ResponseHeaders, S3Presigner};

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("the object does not exist")]
    NotFound,
    #[error("invalid storage configuration: {0}")]
    Config(String),
    #[error("this needs an S3 store")]
    NotS3,
    #[error("object storage failed: {0}")]
    Backend(#[from] object_store::Error),
}

/// Which kind of store this is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageKind {
    Local(PathBuf),
    Memory,
    S3 { bucket: String },
}

/// The object store.
#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    kind: StorageKind,
    presigner: Option<Arc<S3Presigner>>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage").field("kind", &self.kind).finish()
    }
}

/// Size of the parts an upload is sent in (S3's minimum part size is 5 MiB).
const PART_SIZE: usize = 5 * 1024 * 1024;
/// Parts in flight at once per upload: bounds an upload's memory to about 3 parts.
const PARTS_IN_FLIGHT: usize = 2;

impl Storage {
    /// `file://DIR` (created if missing), `memory://`, or `s3://BUCKET` with endpoint, region
    /// and keys from the usual `AWS_*` variables (`AWS_ENDPOINT_URL` for MinIO, R2, s3s...).
    pub fn from_url(url: &str) -> Result<Self, StorageError> {
        Self::from_url_with_env(url, |name| std::env::var(name).ok())
    }

    /// [`Self::from_url`] reading `AWS_*` settings through `env`.
    pub fn from_url_with_env(
        url: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, StorageError> {
        match url.split_once("://") {
            Some(("memory", _)) => Ok(Storage {
                store: Arc::new(InMemory::new()),
                kind: StorageKind::Memory,
                presigner: None,
            }),
            Some(("file", dir)) if !dir.is_empty() => {
                let dir = PathBuf::from(dir);
                std::fs::create_dir_all(&dir).map_err(|error| {
                    StorageError::Config(format!("cannot create {}: {error}", dir.display()))
                })?;
                let store = LocalFileSystem::new_with_prefix(&dir)?;
                Ok(Storage {
                    store: Arc::new(store),
                    kind: StorageKind::Local(dir),
                    presigner: None,
                })
            }
            Some(("s3", bucket)) if !bucket.trim_end_matches('/').is_empty() => {
                let bucket = bucket.trim_end_matches('/').to_owned();
                let endpoint = env("AWS_ENDPOINT_URL_S3").or_else(|| env("AWS_ENDPOINT_URL"));
                let region = env("AWS_REGION")
                    .or_else(|| env("AWS_DEFAULT_REGION"))
                    .unwrap_or_else(|| "us-east-1".to_owned());
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(&bucket)
                    .with_region(&region);
                if let Some(key) = env("AWS_ACCESS_KEY_ID") {
                    builder = builder.with_access_key_id(key);
                }
                if let Some(secret) = env("AWS_SECRET_ACCESS_KEY") {
                    builder = builder.with_secret_access_key(secret);
                }
                if let Some(token) = env("AWS_SESSION_TOKEN") {
                    builder = builder.with_token(token);
                }
                if let Some(endpoint) = &endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_allow_http(endpoint.starts_with("http://"))
                        .with_virtual_hosted_style_request(false);
                }
                let store = builder.build()?;
                let presigner = S3Presigner::new(
                    endpoint,
                    bucket.clone(),
                    region,
                    env("AWS_ACCESS_KEY_ID"),
                    env("AWS_SECRET_ACCESS_KEY"),
                    env("AWS_SESSION_TOKEN"),
                )
                .map(Arc::new);
                Ok(Storage {
                    store: Arc::new(store),
                    kind: StorageKind::S3 { bucket },
                    presigner,
                })
            }
            _ => Err(StorageError::Config(format!(
                "{url:?} is not file://DIR, memory:// or s3://BUCKET"
            ))),
        }
    }

    pub fn kind(&self) -> &StorageKind {
        &self.kind
    }

    /// Whether [`Self::presign_put`] can work: an S3 store with credentials.
    pub fn supports_direct_upload(&self) -> bool {
        self.presigner.is_some()
    }

    /// Starts a streamed upload to `key`. Nothing is visible under `key` until
    /// [`Upload::finish`]; [`Upload::abort`] (or dropping it) leaves nothing behind.
    pub async fn start_upload(&self, key: &str) -> Result<Upload, StorageError> {
        let upload = self.store.put_multipart(&Path::from(key)).await?;
        Ok(Upload {
            writer: Some(WriteMultipart::new_with_chunk_size(upload, PART_SIZE)),
        })
    }

    /// Stores `bytes` under `key` in one request (small objects, tests).
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StorageError> {
        self.store.put(&Path::from(key), bytes.into()).await?;
        Ok(())
    }

    /// The object's size in bytes.
    pub async fn size(&self, key: &str) -> Result<u64, StorageError> {
        match self.store.head(&Path::from(key)).await {
            Ok(meta) => Ok(meta.size),
            Err(object_store::Error::NotFound { .. }) => Err(StorageError::NotFound),
            Err(error) => Err(error.into()),
        }
    }

    /// The object's bytes as a stream.
    pub async fn stream(
        &self,
        key: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, StorageError>>, StorageError> {
        match self.store.get(&Path::from(key)).await {
            Ok(result) => Ok(result.into_stream().map_err(StorageError::from).boxed()),
            Err(object_store::Error::NotFound { .. }) => Err(StorageError::NotFound),
            Err(error) => Err(error.into()),
        }
    }

    /// The whole object in memory (bounded by the upload limit; workers decode photos).
    pub async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        match self.store.get(&Path::from(key)).await {
            Ok(result) => Ok(result.bytes().await?),
            Err(object_store::Error::NotFound { .. }) => Err(StorageError::NotFound),
            Err(error) => Err(error.into()),
        }
    }

    /// A byte range of the object.
    pub async fn range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StorageError> {
        match self.store.get_range(&Path::from(key), range).await {
            Ok(bytes) => Ok(bytes),
            Err(object_store::Error::NotFound { .. }) => Err(StorageError::NotFound),
            Err(error) => Err(error.into()),
        }
    }

    /// Copies an object within the store (server-side on S3).
    pub async fn copy(&self, from: &str, to: &str) -> Result<(), StorageError> {
        match self.store.copy(&Path::from(from), &Path::from(to)).await {
            Ok(()) => Ok(()),
            Err(object_store::Error::NotFound { .. }) => Err(StorageError::NotFound),
            Err(error) => Err(error.into()),
        }
    }

    /// Deletes the object; a missing one is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self.store.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Whether an object exists under `key`.
    pub async fn exists(&self, key: &str) -> Result<bool, StorageError> {
        match self.size(key).await {
            Ok(_) => Ok(true),
            Err(StorageError::NotFound) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Every key under `prefix` (tests and sweeps).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let prefix = Path::from(prefix);
        let metas: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        Ok(metas
            .into_iter()
            .map(|meta| meta.location.to_string())
            .collect())
    }

    /// A presigned PUT for direct upload to the bucket (S3 stores only).
    pub fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        content_length: u64,
        expires_in: Duration,
    ) -> Result<PresignedPut, StorageError> {
        match &self.presigner {
            Some(presigner) => {
                Ok(presigner.presign_put(key, content_type, content_length, expires_in))
            }
            None if matches!(self.kind, StorageKind::S3 { .. }) => Err(StorageError::Config(
                "presigned uploads need AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".to_owned(),
            )),
            None => Err(StorageError::NotS3),
        }
    }
}

impl Storage {
    /// Whether this store can sign download URLs (an S3 store with credentials).
    pub fn can_presign(&self) -> bool {
        self.presigner.is_some()
    }

    /// A presigned GET of `key`, valid for `expires_in`, whose answer carries `headers`.
    pub fn presign_get(
        &self,
        key: &str,
        headers: &ResponseHeaders,
        expires_in: Duration,
    ) -> Result<String, StorageError> {
        match &self.presigner {
            Some(presigner) => Ok(presigner.presign_get(key, headers, expires_in)),
            None if matches!(self.kind, StorageKind::S3 { .. }) => Err(StorageError::Config(
                "presigned downloads need AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".to_owned(),
            )),
            None => Err(StorageError::NotS3),
        }
    }
}

/// A streamed upload in progress.
pub struct Upload {
    writer: Option<WriteMultipart>,
}

impl Upload {
    /// Appends bytes, waiting while too many parts are in flight (backpressure).
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        let Some(writer) = self.writer.as_mut() else {
            return Err(StorageError::Config(
                "the upload is already finished".to_owned(),
            ));
        };
        writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
        writer.write(bytes);
        Ok(())
    }

    /// Completes the upload: the object appears, whole.
    pub async fn finish(mut self) -> Result<(), StorageError> {
        match self.writer.take() {
            Some(writer) => writer.finish().await.map(|_| ()).map_err(Into::into),
            None => Ok(()),
        }
    }

    /// Abandons the upload: no object appears and the parts are removed.
    pub async fn abort(mut self) -> Result<(), StorageError> {
        match self.writer.take() {
            Some(writer) => writer.abort().await.map_err(Into::into),
            None => Ok(()),
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        // Dropped mid-way (the client went away): abort in the background.
        if let Some(writer) = self.writer.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                if let Err(error) = writer.abort().await {
                    tracing::warn!(%error, "aborting an abandoned upload failed");
                }
            });
        }
    }
}

//! Photos: upload (streamed to object storage), direct-to-bucket upload, listing, reading,
//! renaming, deleting, and the status lifecycle every change of status goes through.

pub mod changes;
pub mod lifecycle;
mod session;
pub mod sweep;
pub mod thumbnails;
pub mod watch;

use std::time::Duration;

use bytes::Bytes;
use entity::photo;
use entity::photo_status::PhotoStatus;
use futures_util::{Stream, StreamExt};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use sha2::{Digest, Sha256};

use crate::ServiceError;
use crate::images::{self, ACCEPTED, HEADER_BYTES, ImageKind, ImageLimits, SNIFF_BYTES};
use crate::reads::HotReads;
use crate::storage::{DeleteObjects, PresignedPut, Storage, StorageError, keys};
use crate::worker::BackgroundJob;

pub use crate::domain::Title;
pub use lifecycle::change_status;
pub use session::UploadSession;

/// How long a presigned upload URL stays valid.
pub const DIRECT_UPLOAD_EXPIRY: Duration = Duration::from_secs(15 * 60);

impl From<StorageError> for ServiceError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::NotFound => ServiceError::NotFound {
                what: "photo content",
            },
            StorageError::NotS3 => ServiceError::BadRequest {
                detail: "direct upload needs an S3 store (AISTORY_STORAGE_URL=s3://BUCKET); \
                         upload with POST /api/v1/photos instead"
                    .to_owned(),
            },
            other => ServiceError::Unexpected(anyhow::anyhow!(other)),
        }
    }
}

/// An error of the incoming byte stream (the client went away, a broken body).
#[derive(Debug, thiserror::Error)]
#[error("the upload was interrupted: {0}")]
pub struct StreamError(pub String);

/// Removes a pending photo's row and object unless disarmed: runs when an upload fails or its
/// request is dropped mid-way (client disconnect), so nothing half-done remains.
struct PendingCleanup {
    pool: DatabaseConnection,
    storage: Storage,
    photo_id: i64,
    key: String,
    armed: bool,
}

impl PendingCleanup {
    async fn run_now(mut self) {
        self.armed = false;
        cleanup_pending(&self.pool, &self.storage, self.photo_id, &self.key).await;
    }
}

impl Drop for PendingCleanup {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (pool, storage, id, key) = (
            self.pool.clone(),
            self.storage.clone(),
            self.photo_id,
            std::mem::take(&mut self.key),
        );
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { cleanup_pending(&pool, &storage, id, &key).await });
        }
    }
}

/// Removes a failed upload: the row first, and the object only if the row was still
/// `pending` (had the photo meanwhile become `uploaded`, e.g. a commit that reported an error
/// but went through, its object must stay).
async fn cleanup_pending(pool: &DatabaseConnection, storage: &Storage, photo_id: i64, key: &str) {
    let deleted = photo::Entity::delete_many()
        .filter(photo::Column::Id.eq(photo_id))
        .filter(photo::Column::Status.eq(PhotoStatus::Pending))
        .exec(pool)
        .await;
    let row_gone = match deleted {
        Ok(result) if result.rows_affected == 1 => true,
        Ok(_) => matches!(
            photo::Entity::find_by_id(photo_id).one(pool).await,
            Ok(None)
        ),
        Err(error) => {
            tracing::warn!(%error, photo_id, "removing the row of a failed upload failed");
            false
        }
    };
    if row_gone && let Err(error) = storage.delete(key).await {
        tracing::warn!(%error, key, "removing the object of a failed upload failed");
    }
}

/// What the bytes of an upload turned out to be.
struct Inspected {
    size: u64,
    sha256: String,
    width: i32,
    height: i32,
    taken_at: Option<images::TakenAt>,
}

/// What the stored bytes are: an image of `kind` within `limits` (else refused).
fn inspect(
    header: &[u8],
    kind: ImageKind,
    limits: ImageLimits,
    size: u64,
    hasher: Sha256,
) -> Result<Inspected, ServiceError> {
    let (width, height) = images::checked_dimensions(header, kind, limits)?;
    Ok(Inspected {
        size,
        sha256: hex::encode(hasher.finalize()),
        width,
        height,
        taken_at: images::taken_at(header),
    })
}

/// What an upload may be: its bytes, and the image's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadLimits {
    pub max_bytes: u64,
    pub image: ImageLimits,
    /// The user's quotas (photos and bytes held).
    pub quotas: settings::Quotas,
}

impl UploadLimits {
    pub fn from_settings(settings: &settings::Settings) -> Self {
        UploadLimits {
            max_bytes: settings.storage.max_upload_bytes,
            image: ImageLimits::from_settings(&settings.storage),
            quotas: settings.quotas,
        }
    }
}

/// Refuses a new photo of `adding` bytes (0 when not known yet) when user `user_id` already
/// holds `quotas.photos` photos or `quotas.bytes` bytes, or would with it. Checked before each
/// upload: concurrent uploads may pass it together (by at most one photo each).
pub async fn check_quota<C: ConnectionTrait>(
    db: &C,
    user_id: i64,
    quotas: settings::Quotas,
    adding: u64,
) -> Result<(), ServiceError> {
    use sea_orm::QuerySelect;
    use sea_orm::sea_query::ExprTrait;
    let integer = crate::db::integer_type(db.get_database_backend());
    let held: Option<(i64, Option<i64>)> = photo::Entity::find()
        .select_only()
        .column_as(photo::Column::Id.count(), "photos")
        .column_as(photo::Column::SizeBytes.sum().cast_as(integer), "bytes")
        .filter(photo::Column::UserId.eq(user_id))
        .into_tuple()
        .one(db)
        .await?;
    let (photos, bytes) = held.unwrap_or((0, None));
    let photos = u64::try_from(photos).unwrap_or(0);
    let bytes = u64::try_from(bytes.unwrap_or(0)).unwrap_or(0);
    if photos >= quotas.photos {
        return Err(ServiceError::Quota {
            detail: format!(
                "you have {photos} photos, the most an account may hold \
                 (AISTORY_QUOTA_PHOTOS = {}); delete some to upload more",
                quotas.photos
            ),
            retry_after_secs: None,
        });
    }
    if bytes.saturating_add(adding) > quotas.bytes || (adding == 0 && bytes >= quotas.bytes) {
        return Err(ServiceError::Quota {
            detail: format!(
                "your photos take {bytes} bytes{}; an account may hold {} bytes \
                 (AISTORY_QUOTA_BYTES); delete some to upload more",
                if adding > 0 {
                    format!(" and this one {adding}")
                } else {
                    String::new()
                },
                quotas.bytes
            ),
            retry_after_secs: None,
        });
    }
    Ok(())
}

async fn mark_uploaded(
    pool: &DatabaseConnection,
    photo_id: i64,
    inspected: Inspected,
) -> Result<photo::Model, ServiceError> {
    let txn = crate::db::begin_write(pool).await?;
    let model = change_status(&txn, photo_id, PhotoStatus::Uploaded, |active| {
        active.size_bytes = Set(Some(i64::try_from(inspected.size).unwrap_or(i64::MAX)));
        active.checksum_sha256 = Set(Some(inspected.sha256.clone()));
        active.width = Set(Some(inspected.width));
        active.height = Set(Some(inspected.height));
        active.taken_at = Set(inspected.taken_at.and_then(|taken| taken.instant));
        active.taken_at_local = Set(inspected.taken_at.map(|taken| taken.local));
    })
    .await?;
    thumbnails::MakeThumbnails { photo_id }
        .enqueue(&txn)
        .await?;
    txn.commit().await?;
    crate::metrics::upload_stored(inspected.size);
    Ok(model)
}

/// The `pending` row a new photo starts as.
async fn insert_pending(
    pool: &DatabaseConnection,
    user_id: i64,
    key: &str,
    kind: ImageKind,
    title: Option<Title>,
) -> Result<photo::Model, ServiceError> {
    photo::ActiveModel {
        user_id: Set(user_id),
        object_key: Set(key.to_owned()),
        status: Set(PhotoStatus::Pending),
        title: Set(title.map(String::from)),
        content_type: Set(Some(kind.content_type().to_owned())),
        ..Default::default()
    }
    .insert(pool)
    .await
    .map_err(|error| match ServiceError::from(error) {
        // The token outlived its account (deleted meanwhile): the owner is gone.
        ServiceError::NotFound { .. } => ServiceError::Unauthenticated {
            reason: "the account no longer exists".to_owned(),
        },
        other => other,
    })
}

/// Streams an upload into the store while it arrives: the type is decided from the first
/// bytes, the size limit enforced as bytes come (whatever the client declared), SHA-256,
/// dimensions and EXIF read on the way. The row goes `pending` -> `uploaded`; on any failure,
/// or if this future is dropped, neither the object nor the row remains.
pub async fn upload<S>(
    pool: &DatabaseConnection,
    storage: &Storage,
    user_id: i64,
    title: Option<Title>,
    limits: UploadLimits,
    mut chunks: S,
) -> Result<photo::Model, ServiceError>
where
    S: Stream<Item = Result<Bytes, StreamError>> + Unpin,
{
    let max_bytes = limits.max_bytes;
    // Enough bytes to tell the type, before anything is created.
    let mut head: Vec<u8> = Vec::new();
    while head.len() < SNIFF_BYTES {
        match chunks.next().await {
            Some(Ok(chunk)) => head.extend_from_slice(&chunk),
            Some(Err(error)) => {
                return Err(ServiceError::BadRequest {
                    detail: error.to_string(),
                });
            }
            None => break,
        }
    }
    let Some(kind) = images::sniff(&head) else {
        return Err(ServiceError::UnsupportedMedia {
            detail: format!(
                "the file is not an image we accept ({ACCEPTED}); its type is decided from its bytes"
            ),
        });
    };
    if head.len() as u64 > max_bytes {
        return Err(ServiceError::TooLarge {
            limit_bytes: max_bytes,
        });
    }

    check_quota(pool, user_id, limits.quotas, 0).await?;
    let key = keys::photo(user_id, kind.extension());
    let row = insert_pending(pool, user_id, &key, kind, title).await?;
    let cleanup = PendingCleanup {
        pool: pool.clone(),
        storage: storage.clone(),
        photo_id: row.id,
        key: key.clone(),
        armed: true,
    };

    let result = async {
        let mut upload = storage.start_upload(&key).await?;
        let mut hasher = Sha256::new();
        let mut size = head.len() as u64;
        hasher.update(&head);
        upload.write(&head).await?;
        let mut header = head;
        while let Some(chunk) = chunks.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(error) => {
                    upload.abort().await.ok();
                    return Err(ServiceError::BadRequest {
                        detail: error.to_string(),
                    });
                }
            };
            size += chunk.len() as u64;
            if size > max_bytes {
                upload.abort().await.ok();
                return Err(ServiceError::TooLarge {
                    limit_bytes: max_bytes,
                });
            }
            if header.len() < HEADER_BYTES {
                let take = (HEADER_BYTES - header.len()).min(chunk.len());
                header.extend_from_slice(&chunk[..take]);
            }
            hasher.update(&chunk);
            upload.write(&chunk).await?;
        }
        upload.finish().await?;
        inspect(&header, kind, limits.image, size, hasher)
    }
    .await;

    match result {
        Ok(inspected) => match mark_uploaded(pool, row.id, inspected).await {
            Ok(model) => {
                let mut cleanup = cleanup;
                cleanup.armed = false;
                Ok(model)
            }
            Err(error) => {
                cleanup.run_now().await;
                Err(error)
            }
        },
        Err(error) => {
            cleanup.run_now().await;
            Err(error)
        }
    }
}

/// Starts a direct-to-bucket upload: a `pending` row and a presigned PUT bound to the
/// declared type and size.
pub async fn create_direct_upload(
    pool: &DatabaseConnection,
    storage: &Storage,
    user_id: i64,
    content_type: &str,
    size_bytes: u64,
    limits: UploadLimits,
    title: Option<Title>,
) -> Result<(photo::Model, PresignedPut), ServiceError> {
    let max_bytes = limits.max_bytes;
    let Some(kind) = ImageKind::from_content_type(content_type) else {
        return Err(ServiceError::UnsupportedMedia {
            detail: format!("content_type must be an image type we accept ({ACCEPTED})"),
        });
    };
    if size_bytes > max_bytes {
        // A field of a small JSON body, not a large body: 422 on the field (not 413).
        return Err(ServiceError::Validation(
            [(
                "size_bytes".to_owned(),
                vec![format!(
                    "must be at most {max_bytes} bytes (the upload limit, AISTORY_MAX_UPLOAD_BYTES)"
                )],
            )]
            .into(),
        ));
    }
    let key = keys::photo(user_id, kind.extension());
    // The client writes to a staging key; completion copies the checked bytes to the photo's
    // own key, so a second PUT with the (still valid) URL cannot replace a verified photo.
    let presigned = storage.presign_put(
        &keys::staging(&key),
        kind.content_type(),
        size_bytes,
        DIRECT_UPLOAD_EXPIRY,
    )?;
    check_quota(pool, user_id, limits.quotas, size_bytes).await?;
    let row = insert_pending(pool, user_id, &key, kind, title).await?;
    Ok((row, presigned))
}

/// Finishes a direct upload: the object must be there, within the limit and an accepted
/// image; then the photo is `uploaded`. A refused object is deleted with its row.
pub async fn complete_direct_upload(
    pool: &DatabaseConnection,
    storage: &Storage,
    user_id: i64,
    photo_id: i64,
    limits: UploadLimits,
) -> Result<photo::Model, ServiceError> {
    let max_bytes = limits.max_bytes;
    let photo = get_photo(pool, user_id, photo_id).await?;
    if !matches!(storage.kind(), crate::storage::StorageKind::S3 { .. }) {
        return Err(StorageError::NotS3.into());
    }
    if photo.status != PhotoStatus::Pending {
        return Err(ServiceError::InvalidTransition {
            from: photo.status.to_string(),
            to: PhotoStatus::Uploaded.to_string(),
        });
    }
    let staging = keys::staging(&photo.object_key);
    let size = match storage.size(&staging).await {
        Ok(size) => size,
        Err(StorageError::NotFound) => {
            return Err(ServiceError::Conflict {
                what: "the object has not been uploaded yet: PUT it to the presigned URL first"
                    .to_owned(),
            });
        }
        Err(error) => return Err(error.into()),
    };
    let refuse = |error: ServiceError| async {
        storage.delete(&staging).await.ok();
        cleanup_pending(pool, storage, photo.id, &photo.object_key).await;
        Err(error)
    };
    if size > max_bytes {
        return refuse(ServiceError::TooLarge {
            limit_bytes: max_bytes,
        })
        .await;
    }
    // Check the copy, which the client cannot touch, in one pass: size, type, hash, header.
    storage.copy(&staging, &photo.object_key).await?;
    storage.delete(&staging).await.ok();
    let mut hasher = Sha256::new();
    let mut header: Vec<u8> = Vec::new();
    let mut size = 0u64;
    let mut stream = storage.stream(&photo.object_key).await?;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        size += chunk.len() as u64;
        if size > max_bytes {
            return refuse(ServiceError::TooLarge {
                limit_bytes: max_bytes,
            })
            .await;
        }
        if header.len() < HEADER_BYTES {
            let take = (HEADER_BYTES - header.len()).min(chunk.len());
            header.extend_from_slice(&chunk[..take]);
        }
        hasher.update(&chunk);
    }
    let Some(kind) = images::sniff(&header) else {
        return refuse(ServiceError::UnsupportedMedia {
            detail: format!("the uploaded object is not an image we accept ({ACCEPTED})"),
        })
        .await;
    };
    let inspected = match inspect(&header, kind, limits.image, size, hasher) {
        Ok(inspected) => inspected,
        Err(error) => return refuse(error).await,
    };
    mark_uploaded(pool, photo.id, inspected).await
}

/// One of the user's photos; another user's answers `NotFound` exactly like a missing one.
pub async fn get_photo<C: HotReads>(
    db: &C,
    user_id: i64,
    photo_id: i64,
) -> Result<photo::Model, ServiceError> {
    let statement = one_photo_statement(db.get_database_backend(), photo_id, user_id);
    db.photo_rows(statement)
        .await?
        .into_iter()
        .next()
        .ok_or(ServiceError::NotFound { what: "photo" })
}

/// [`one_photo`] with its text from the cache.
fn one_photo_statement(
    backend: sea_orm::DbBackend,
    photo_id: i64,
    user_id: i64,
) -> sea_orm::Statement {
    static SQL: crate::statements::Cached = crate::statements::Cached::new();
    SQL.statement(
        backend,
        || one_photo(0, 0),
        vec![photo_id.into(), user_id.into(), 1u64.into()],
    )
}

/// [`photo_page`] with its text from the cache (one per shape: with or without a status, with
/// or without a cursor).
fn photo_page_statement(
    backend: sea_orm::DbBackend,
    user_id: i64,
    status: Option<PhotoStatus>,
    after: Option<i64>,
    fetch: u64,
) -> sea_orm::Statement {
    use crate::statements::Cached;
    static SQL: [Cached; 4] = [Cached::new(), Cached::new(), Cached::new(), Cached::new()];
    let shape = usize::from(status.is_some()) * 2 + usize::from(after.is_some());
    let mut values: Vec<sea_orm::Value> = vec![user_id.into()];
    if let Some(status) = status {
        values.push(status.into());
    }
    if let Some(after) = after {
        values.push(after.into());
    }
    values.push(fetch.into());
    SQL[shape].statement(backend, || photo_page(0, status, after, 0), values)
}

/// The query of [`get_photo`] (its text is cached: the values go in that order).
fn one_photo(photo_id: i64, user_id: i64) -> sea_orm::Select<photo::Entity> {
    photo::Entity::find_by_id(photo_id)
        .filter(photo::Column::UserId.eq(user_id))
        .limit(1)
}

/// The query of a page of [`list_photos`] (its text is cached per shape: the values go in
/// that order: user, status, after, rows to fetch).
fn photo_page(
    user_id: i64,
    status: Option<PhotoStatus>,
    after: Option<i64>,
    fetch: u64,
) -> sea_orm::Select<photo::Entity> {
    let mut query = photo::Entity::find().filter(photo::Column::UserId.eq(user_id));
    if let Some(status) = status {
        query = query.filter(photo::Column::Status.eq(status));
    }
    if let Some(after) = after {
        query = query.filter(photo::Column::Id.lt(after));
    }
    query.order_by_desc(photo::Column::Id).limit(fetch)
}

/// A page of the user's photos, newest first. `after` is the id the previous page ended at;
/// ids only grow, so pages stay stable while new photos arrive.
pub async fn list_photos<C: HotReads>(
    db: &C,
    user_id: i64,
    status: Option<PhotoStatus>,
    limit: u64,
    after: Option<i64>,
) -> Result<(Vec<photo::Model>, Option<i64>), ServiceError> {
    let statement =
        photo_page_statement(db.get_database_backend(), user_id, status, after, limit + 1);
    let rows = db.photo_rows(statement).await?;
    Ok(crate::paging::split_page(rows, limit, |row| row.id))
}

/// Sets (or clears) a photo's title.
pub async fn rename_photo<C: HotReads>(
    db: &C,
    user_id: i64,
    photo_id: i64,
    title: Option<Title>,
) -> Result<photo::Model, ServiceError> {
    let photo = get_photo(db, user_id, photo_id).await?;
    let mut active: photo::ActiveModel = photo.into();
    active.title = Set(title.map(String::from));
    Ok(active.update(db).await?)
}

/// Deletes the photo (its stories go with it by cascade) and queues the deletion of its
/// object, both on `db` (the caller's transaction): the object goes once the row is surely
/// gone, retried until the store confirms.
pub async fn delete_photo<C: HotReads>(
    db: &C,
    user_id: i64,
    photo_id: i64,
) -> Result<(), ServiceError> {
    let photo = get_photo(db, user_id, photo_id).await?;
    photo::Entity::delete_many()
        .filter(photo::Column::Id.eq(photo.id))
        .exec(db)
        .await?;
    let mut objects = vec![keys::staging(&photo.object_key)];
    objects.extend(
        thumbnails::SIZES
            .iter()
            .map(|size| keys::thumbnail(&photo.object_key, *size)),
    );
    objects.push(photo.object_key);
    DeleteObjects {
        keys: objects,
        prefixes: vec![],
    }
    .enqueue(db)
    .await?;
    Ok(())
}

#[cfg(test)]
mod cached_statements {
    use super::*;
    use crate::statements::tests::{BACKENDS, assert_same};
    use sea_orm::QueryTrait;

    #[test]
    fn the_cached_reads_are_what_sea_query_builds() {
        for backend in BACKENDS {
            assert_same(
                one_photo_statement(backend, 7, 3),
                one_photo(7, 3).build(backend),
            );
            for status in [None, Some(PhotoStatus::Completed)] {
                for after in [None, Some(99)] {
                    assert_same(
                        photo_page_statement(backend, 3, status, after, 21),
                        photo_page(3, status, after, 21).build(backend),
                    );
                }
            }
        }
    }
}

//! One upload request's photo: the file streamed in ([`super::upload`]) and a title that may
//! arrive before or after it, in either order.

use entity::photo;
use futures_util::Stream;
use sea_orm::DatabaseConnection;

use super::{StreamError, Title, UploadLimits, delete_photo, rename_photo, upload};
use crate::ServiceError;
use crate::storage::Storage;

/// Collects an upload's parts. If the request fails, or is dropped, after the file was
/// stored, the photo goes again (row and object): a client that got no answer has no photo.
pub struct UploadSession {
    pool: DatabaseConnection,
    storage: Storage,
    user_id: i64,
    limits: UploadLimits,
    title: Option<Title>,
    stored: Option<photo::Model>,
}

impl UploadSession {
    pub fn new(
        pool: &DatabaseConnection,
        storage: &Storage,
        user_id: i64,
        limits: UploadLimits,
    ) -> UploadSession {
        UploadSession {
            pool: pool.clone(),
            storage: storage.clone(),
            user_id,
            limits,
            title: None,
            stored: None,
        }
    }

    /// Whether the file has been stored.
    pub fn has_file(&self) -> bool {
        self.stored.is_some()
    }

    /// Sets the title: of the photo to be stored, or of the one already stored.
    pub async fn set_title(&mut self, title: Option<Title>) -> Result<(), ServiceError> {
        if let Some(photo) = &self.stored {
            let renamed = rename_photo(&self.pool, self.user_id, photo.id, title.clone()).await?;
            self.stored = Some(renamed);
        }
        self.title = title;
        Ok(())
    }

    /// Streams the file into the store (see [`upload`]).
    pub async fn store_file<S>(&mut self, chunks: S) -> Result<(), ServiceError>
    where
        S: Stream<Item = Result<bytes::Bytes, StreamError>> + Unpin,
    {
        let photo = upload(
            &self.pool,
            &self.storage,
            self.user_id,
            self.title.clone(),
            self.limits,
            chunks,
        )
        .await?;
        self.stored = Some(photo);
        Ok(())
    }

    /// The stored photo, kept; `None` when no file came.
    pub fn finish(mut self) -> Option<photo::Model> {
        self.stored.take()
    }

    /// The request failed: removes the stored photo, if any.
    pub async fn abandon(mut self) -> Result<(), ServiceError> {
        match self.stored.take() {
            Some(photo) => remove(&self.pool, self.user_id, photo.id).await,
            None => Ok(()),
        }
    }
}

/// Deletes the photo in a transaction of its own.
async fn remove(
    pool: &DatabaseConnection,
    user_id: i64,
    photo_id: i64,
) -> Result<(), ServiceError> {
    let txn = crate::db::begin_write(pool).await?;
    delete_photo(&txn, user_id, photo_id).await?;
    txn.commit().await?;
    Ok(())
}

impl Drop for UploadSession {
    fn drop(&mut self) {
        // Dropped mid-request (the client went away) with a stored photo: remove it.
        let Some(photo) = self.stored.take() else {
            return;
        };
        let (pool, user_id) = (self.pool.clone(), self.user_id);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = remove(&pool, user_id, photo.id).await {
                    tracing::warn!(%error, photo_id = photo.id, "removing an abandoned upload failed");
                }
            });
        }
    }
}

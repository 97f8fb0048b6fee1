//! No orphan objects: deleting rows queues the deletion of their objects in the same
//! transaction ([`enqueue_delete`]), retried until the store confirms; and `pending` photos
//! whose upload never finished are swept with their objects ([`sweep_pending`]).

use std::time::Duration;

use entity::photo;
use entity::photo_status::PhotoStatus;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect,
};
use serde::{Deserialize, Serialize};

use crate::storage::Storage;
use crate::worker::{Handler, JobContext, JobError};
use crate::{ServiceError, queue};

/// The job kind that deletes objects.
pub const DELETE: &str = "objects.delete";
/// Attempts before an object deletion is given up (backoff grows to 10 minutes: days).
pub const DELETE_ATTEMPTS: i32 = 500;
/// How old a `pending` photo must be before it is swept.
pub const PENDING_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// What to delete: single keys, and everything under prefixes.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Deletion {
    #[serde(default)]
    pub keys: Vec<String>,
    #[serde(default)]
    pub prefixes: Vec<String>,
}

/// Queues the deletion on `db` (the deleting transaction: if it rolls back, nothing is deleted).
pub async fn enqueue_delete<C: ConnectionTrait>(
    db: &C,
    deletion: &Deletion,
) -> Result<(), ServiceError> {
    let payload =
        serde_json::to_value(deletion).map_err(|error| ServiceError::Unexpected(error.into()))?;
    queue::enqueue_at(
        db,
        DELETE,
        &payload,
        entity::timestamps::now(),
        DELETE_ATTEMPTS,
    )
    .await?;
    Ok(())
}

/// Runs [`DELETE`] jobs. Deleting a missing object succeeds, so a rerun is harmless.
pub struct DeleteObjects {
    pub storage: Storage,
}

#[async_trait::async_trait]
impl Handler for DeleteObjects {
    fn kind(&self) -> &'static str {
        DELETE
    }

    async fn run(&self, ctx: &JobContext<'_>) -> Result<(), JobError> {
        let deletion: Deletion = serde_json::from_str(&ctx.job.payload)
            .map_err(|error| JobError::Fail(format!("the job's payload is malformed: {error}")))?;
        let mut keys = deletion.keys;
        for prefix in &deletion.prefixes {
            let listed =
                self.storage.list(prefix).await.map_err(|error| {
                    JobError::Retry(format!("listing {prefix} failed: {error}"))
                })?;
            keys.extend(listed);
        }
        for key in keys {
            self.storage
                .delete(&key)
                .await
                .map_err(|error| JobError::Retry(format!("deleting {key} failed: {error}")))?;
        }
        Ok(())
    }
}

/// Removes `pending` photos created more than `older_than` ago (uploads that never finished)
/// and queues the deletion of whatever bytes they left. Safe to run from many processes at
/// once: each row is deleted by one of them. Returns how many were swept.
pub async fn sweep_pending(
    pool: &DatabaseConnection,
    older_than: Duration,
) -> Result<u64, ServiceError> {
    let cutoff = entity::timestamps::now()
        - chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::MAX);
    let stale: Vec<(i64, String)> = photo::Entity::find()
        .select_only()
        .column(photo::Column::Id)
        .column(photo::Column::ObjectKey)
        .filter(photo::Column::Status.eq(PhotoStatus::Pending))
        .filter(photo::Column::CreatedAt.lt(cutoff))
        .limit(500)
        .into_tuple()
        .all(pool)
        .await?;
    let mut swept = 0;
    for (id, key) in stale {
        let txn = crate::db::begin_write(pool).await?;
        let deleted = photo::Entity::delete_many()
            .filter(photo::Column::Id.eq(id))
            .filter(photo::Column::Status.eq(PhotoStatus::Pending))
            .exec(&txn)
            .await?;
        if deleted.rows_affected == 1 {
            enqueue_delete(
                &txn,
                &Deletion {
                    keys: vec![crate::photos::staging_key(&key), key],
                    prefixes: vec![],
                },
            )
            .await?;
            swept += 1;
        }
        txn.commit().await?;
    }
    Ok(swept)
}

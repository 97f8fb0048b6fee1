//! Uploads that never finished: `pending` photos older than [`PENDING_MAX_AGE`] are removed
//! with whatever bytes they left, by the scheduled [`SweepPending`] job.

use std::time::Duration;

use async_trait::async_trait;
use entity::photo;
use entity::photo_status::PhotoStatus;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect};
use serde::{Deserialize, Serialize};

use crate::ServiceError;
use crate::storage::{DeleteObjects, keys};
use crate::worker::{BackgroundJob, JobContext, JobError};

/// How old a `pending` photo must be before it is swept.
pub const PENDING_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);
/// How often the sweep runs (it is queued again this long after each run).
pub const SWEEP_EVERY: Duration = Duration::from_secs(60 * 60);

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
            DeleteObjects {
                keys: vec![keys::staging(&key), key],
                prefixes: vec![],
            }
            .enqueue(&txn)
            .await?;
            swept += 1;
        }
        txn.commit().await?;
    }
    Ok(swept)
}

/// The scheduled sweep of abandoned uploads (every [`SWEEP_EVERY`], see
/// [`crate::worker::Registry::every`]).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct SweepPending {}

#[async_trait]
impl BackgroundJob for SweepPending {
    const KIND: &'static str = "photos.sweep_pending";
    type Context = ();

    async fn run(&self, _context: &(), job: &JobContext<'_>) -> Result<(), JobError> {
        match sweep_pending(job.pool, PENDING_MAX_AGE).await? {
            0 => {}
            swept => tracing::info!(swept, "swept abandoned uploads"),
        }
        Ok(())
    }
}

//! The durable job queue, in the database.
//!
//! - [`enqueue_at`] (through a typed job's `enqueue`) takes the caller's connection: inside a transaction, the job commits or rolls
//!   back with the change that caused it.
//! - [`claim`] hands out due jobs with `FOR UPDATE SKIP LOCKED` on PostgreSQL and MySQL/MariaDB
//!   (an `IMMEDIATE` transaction on SQLite), each under a lease: a live worker extends it
//!   ([`extend_lease`]), a dead one lets it expire and the job is claimed again.
//! - [`fail`] retries after the job's backoff (exponential with jitter by default), up to `max_attempts`, then leaves the
//!   job `failed` with the last error. [`release`] hands a stopping worker's jobs back.
//!
//! Handlers must be idempotent: a job whose worker died after doing the work but before
//! [`complete`] runs again. Times come from the workers' clocks (keep them in sync).

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::job::{self, JobStatus};
use rand::Rng;
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait,
    DatabaseConnection, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use crate::ServiceError;

/// Attempts before a job is given up by default.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 5;
/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10 * 60);

fn later(now: DateTime<Utc>, by: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX)
}

/// Adds a job due at `run_at`, tried at most `max_attempts` times, on `db` (the caller's
/// transaction, so it commits with the change). `payload` is the job's serialized
/// [`BackgroundJob`](crate::worker::BackgroundJob): queue one with its `enqueue`.
pub(crate) async fn enqueue_at<C: ConnectionTrait>(
    db: &C,
    kind: &str,
    payload: &str,
    run_at: DateTime<Utc>,
    max_attempts: i32,
) -> Result<job::Model, ServiceError> {
    Ok(job::ActiveModel {
        kind: Set(kind.to_owned()),
        payload: Set(payload.to_owned()),
        status: Set(JobStatus::Queued),
        attempts: Set(0),
        max_attempts: Set(Ord::max(max_attempts, 1)),
        run_at: Set(run_at),
        ..Default::default()
    }
    .insert(db)
    .await?)
}

/// Adds a job of `kind` due at `run_at` unless one is already waiting (queued or running):
/// what keeps a scheduled job scheduled. Returns whether it added one.
pub(crate) async fn ensure_waiting(
    pool: &DatabaseConnection,
    kind: &str,
    payload: &str,
    run_at: DateTime<Utc>,
    max_attempts: i32,
) -> Result<bool, ServiceError> {
    let waiting = job::Entity::find()
        .filter(job::Column::Kind.eq(kind))
        .filter(job::Column::Status.is_in([JobStatus::Queued, JobStatus::Running]))
        .one(pool)
        .await?;
    if waiting.is_some() {
        return Ok(false);
    }
    enqueue_at(pool, kind, payload, run_at, max_attempts).await?;
    Ok(true)
}

/// Claims up to `limit` due jobs of `kinds` for `worker`, each leased for `lease`: queued jobs
/// whose time has come, and running jobs whose lease has expired (their worker died).
///
/// A claimed job with `attempts > max_attempts` is one whose holders all died: the caller
/// must not run it again but [`give_up`] (so its handler can record the failure).
pub async fn claim(
    pool: &DatabaseConnection,
    worker: &str,
    kinds: &[&str],
    limit: u64,
    lease: Duration,
) -> Result<Vec<job::Model>, ServiceError> {
    let txn = crate::db::begin_write(pool).await?;
    let now = entity::timestamps::now();
    let due = Condition::any()
        .add(
            Condition::all()
                .add(job::Column::Status.eq(JobStatus::Queued))
                .add(job::Column::RunAt.lte(now)),
        )
        .add(
            Condition::all()
                .add(job::Column::Status.eq(JobStatus::Running))
                .add(job::Column::LockedUntil.lt(now)),
        );
    let mut query = job::Entity::find()
        .filter(due)
        .filter(job::Column::Kind.is_in(kinds.iter().copied()))
        .order_by_asc(job::Column::RunAt)
        .order_by_asc(job::Column::Id)
        .limit(limit);
    if txn.get_database_backend() != DbBackend::Sqlite {
        // Other workers skip the rows this one is taking instead of waiting for them.
        query = query.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let candidates = query.all(&txn).await?;
    let until = later(now, lease);
    let mut claimed = Vec::with_capacity(candidates.len());
    for mut candidate in candidates {
        if candidate.status == JobStatus::Running {
            crate::metrics::lease_expired(&candidate.kind);
        }
        job::Entity::update_many()
            .col_expr(job::Column::Status, Expr::value(JobStatus::Running))
            .col_expr(job::Column::LockedBy, Expr::value(worker))
            .col_expr(job::Column::LockedUntil, Expr::value(until))
            .col_expr(
                job::Column::Attempts,
                Expr::col(job::Column::Attempts).add(1),
            )
            .col_expr(job::Column::UpdatedAt, Expr::value(now))
            .filter(job::Column::Id.eq(candidate.id))
            .exec(&txn)
            .await?;
        candidate.status = JobStatus::Running;
        candidate.locked_by = Some(worker.to_owned());
        candidate.locked_until = Some(until);
        candidate.attempts += 1;
        candidate.updated_at = now;
        claimed.push(candidate);
    }
    txn.commit().await?;
    Ok(claimed)
}

/// Only the worker holding a running job may change it.
fn held_by(job_id: i64, worker: &str) -> Condition {
    Condition::all()
        .add(job::Column::Id.eq(job_id))
        .add(job::Column::LockedBy.eq(worker))
        .add(job::Column::Status.eq(JobStatus::Running))
}

/// Extends a running job's lease; `false` when `worker` no longer holds it.
pub async fn extend_lease<C: ConnectionTrait>(
    db: &C,
    job_id: i64,
    worker: &str,
    lease: Duration,
) -> Result<bool, ServiceError> {
    let now = entity::timestamps::now();
    let result = job::Entity::update_many()
        .col_expr(job::Column::LockedUntil, Expr::value(later(now, lease)))
        .col_expr(job::Column::UpdatedAt, Expr::value(now))
        .filter(held_by(job_id, worker))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Marks a job done; `false` when `worker` lost it (its lease expired and another worker
/// claimed it), in which case the other worker's run counts.
pub async fn complete<C: ConnectionTrait>(
    db: &C,
    job_id: i64,
    worker: &str,
) -> Result<bool, ServiceError> {
    let now = entity::timestamps::now();
    let result = job::Entity::update_many()
        .col_expr(job::Column::Status, Expr::value(JobStatus::Succeeded))
        .col_expr(job::Column::LockedBy, Expr::value(Option::<String>::None))
        .col_expr(
            job::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(job::Column::UpdatedAt, Expr::value(now))
        .filter(held_by(job_id, worker))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// The wait before attempt `attempts + 1`: 1 s, 2 s, 4 s ... up to [`MAX_BACKOFF`], each
/// with up to 25% random jitter so failed jobs do not retry in lockstep.
pub fn backoff(attempts: i32) -> Duration {
    let exponent = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    let base = Duration::from_secs(1u64 << exponent).min(MAX_BACKOFF);
    let jitter = rand::thread_rng().gen_range(0.0..0.25);
    base.mul_f64(1.0 + jitter).min(MAX_BACKOFF)
}

/// Records a failed attempt: retried `retry_in` later (the job's backoff, [`backoff`] by
/// default) while attempts remain, else `failed` with `error` kept. Returns the job's new
/// status, or `None` when `worker` had lost it.
pub async fn fail<C: ConnectionTrait>(
    db: &C,
    job: &job::Model,
    worker: &str,
    error: &str,
    retry_in: Duration,
) -> Result<Option<JobStatus>, ServiceError> {
    let outcome = if job.attempts >= job.max_attempts {
        Ok(())
    } else {
        Err(retry_in)
    };
    finish_failed(db, job, worker, error, outcome).await
}

/// Ends a job `failed` with `error` whatever attempts remain (a failure retrying cannot fix).
/// Returns `false` when `worker` had lost it.
pub async fn give_up<C: ConnectionTrait>(
    db: &C,
    job: &job::Model,
    worker: &str,
    error: &str,
) -> Result<bool, ServiceError> {
    Ok(finish_failed(db, job, worker, error, Ok(()))
        .await?
        .is_some())
}

/// `outcome`: `Ok` gives the job up, `Err(wait)` retries it after `wait`.
async fn finish_failed<C: ConnectionTrait>(
    db: &C,
    job: &job::Model,
    worker: &str,
    error: &str,
    outcome: Result<(), Duration>,
) -> Result<Option<JobStatus>, ServiceError> {
    let now = entity::timestamps::now();
    let status = if outcome.is_ok() {
        JobStatus::Failed
    } else {
        JobStatus::Queued
    };
    let mut update = job::Entity::update_many()
        .col_expr(job::Column::Status, Expr::value(status))
        .col_expr(job::Column::LockedBy, Expr::value(Option::<String>::None))
        .col_expr(
            job::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(job::Column::LastError, Expr::value(error.to_owned()))
        .col_expr(job::Column::UpdatedAt, Expr::value(now));
    if let Err(wait) = outcome {
        update = update.col_expr(job::Column::RunAt, Expr::value(later(now, wait)));
    }
    let result = update.filter(held_by(job.id, worker)).exec(db).await?;
    Ok((result.rows_affected == 1).then_some(status))
}

/// Hands back every job `worker` holds (a clean shutdown): queued again at once, and the
/// interrupted attempt not counted.
pub async fn release<C: ConnectionTrait>(db: &C, worker: &str) -> Result<u64, ServiceError> {
    let now = entity::timestamps::now();
    let result = job::Entity::update_many()
        .col_expr(job::Column::Status, Expr::value(JobStatus::Queued))
        .col_expr(job::Column::LockedBy, Expr::value(Option::<String>::None))
        .col_expr(
            job::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            job::Column::Attempts,
            Expr::col(job::Column::Attempts).sub(1),
        )
        .col_expr(job::Column::RunAt, Expr::value(now))
        .col_expr(job::Column::UpdatedAt, Expr::value(now))
        .filter(job::Column::LockedBy.eq(worker))
        .filter(job::Column::Status.eq(JobStatus::Running))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Jobs by kind and status (succeeded ones left out), for operators (`api jobs`): (kind,
/// status, how many, how many of them were tried before).
pub async fn summary<C: ConnectionTrait>(
    db: &C,
) -> Result<Vec<(String, JobStatus, i64, i64)>, ServiceError> {
    use sea_orm::sea_query::Expr as E;
    let tried = E::case(job::Column::Attempts.gt(0), 1).finally(0);
    let rows: Vec<(String, JobStatus, i64, Option<i64>)> = job::Entity::find()
        .select_only()
        .column(job::Column::Kind)
        .column(job::Column::Status)
        .column_as(job::Column::Id.count(), "jobs")
        .column_as(
            E::expr(tried)
                .sum()
                .cast_as(crate::db::integer_type(db.get_database_backend())),
            "tried",
        )
        .filter(job::Column::Status.ne(JobStatus::Succeeded))
        .group_by(job::Column::Kind)
        .group_by(job::Column::Status)
        .order_by_asc(job::Column::Kind)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(kind, status, jobs, tried)| (kind, status, jobs, tried.unwrap_or(0)))
        .collect())
}

/// The `limit` most recently failed jobs, newest first (their `last_error` says why).
pub async fn failed<C: ConnectionTrait>(
    db: &C,
    limit: u64,
) -> Result<Vec<job::Model>, ServiceError> {
    Ok(job::Entity::find()
        .filter(job::Column::Status.eq(JobStatus::Failed))
        .order_by_desc(job::Column::UpdatedAt)
        .order_by_desc(job::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// Queues failed job `id` again, due now, with its attempts counted from zero. `false` when
/// there is no failed job with that id.
pub async fn retry_failed<C: ConnectionTrait>(db: &C, id: i64) -> Result<bool, ServiceError> {
    let now = entity::timestamps::now();
    let result = job::Entity::update_many()
        .col_expr(job::Column::Status, Expr::value(JobStatus::Queued))
        .col_expr(job::Column::Attempts, Expr::value(0))
        .col_expr(job::Column::RunAt, Expr::value(now))
        .col_expr(job::Column::UpdatedAt, Expr::value(now))
        .filter(job::Column::Id.eq(id))
        .filter(job::Column::Status.eq(JobStatus::Failed))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Deletes failed job `id`. `false` when there is no failed job with that id.
pub async fn discard_failed<C: ConnectionTrait>(db: &C, id: i64) -> Result<bool, ServiceError> {
    let result = job::Entity::delete_many()
        .filter(job::Column::Id.eq(id))
        .filter(job::Column::Status.eq(JobStatus::Failed))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Records the queue's gauges (`crate::metrics::queue`): jobs by kind and state (`queued`,
/// `retrying`: queued after a failed attempt, `running`, `failed`) and the age of the oldest
/// job that is due and not yet claimed. Read when metrics are scraped.
pub async fn record_metrics<C: ConnectionTrait>(db: &C) -> Result<(), ServiceError> {
    let rows = summary(db).await?;
    let now = entity::timestamps::now();
    let oldest: Option<Option<DateTime<Utc>>> = job::Entity::find()
        .select_only()
        .column_as(job::Column::RunAt.min(), "oldest")
        .filter(job::Column::Status.eq(JobStatus::Queued))
        .filter(job::Column::RunAt.lte(now))
        .into_tuple()
        .one(db)
        .await?;
    let age = oldest.flatten().map_or(0.0, |at| {
        std::cmp::Ord::max((now - at).num_milliseconds(), 0) as f64 / 1000.0
    });
    let mut counts: std::collections::BTreeMap<(String, &'static str), f64> = Default::default();
    for (kind, status, jobs, tried) in rows {
        let mut add = |state: &'static str, jobs: i64| {
            *counts.entry((kind.clone(), state)).or_default() += jobs as f64;
        };
        match status {
            JobStatus::Queued => {
                add("queued", jobs - tried);
                add("retrying", tried);
            }
            JobStatus::Running => add("running", jobs),
            JobStatus::Failed => add("failed", jobs),
            JobStatus::Succeeded => {}
        }
    }
    crate::metrics::queue(&counts, age);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) >= Duration::from_secs(1) && backoff(1) < Duration::from_millis(1260));
        assert!(backoff(4) >= Duration::from_secs(8) && backoff(4) < Duration::from_secs(11));
        assert_eq!(backoff(40), MAX_BACKOFF);
        assert!(backoff(0) >= Duration::from_secs(1));
    }
}

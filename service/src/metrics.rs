//! What the service counts (through the `metrics` facade: nothing is recorded until a binary
//! installs an exporter; see `api::metrics`). Every metric is named `aistory_*`; each function
//! here is one event of the domain, so call sites stay one line. The meaning of each metric:
//! docs/operations.md (Metrics).

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use entity::job::{self, JobStatus};
use metrics::{counter, gauge, histogram};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter, QuerySelect,
};

use crate::reads::ReadPool;

/// One statement on `pool` (`main` or `reads`).
pub fn statement(pool: &'static str, elapsed: Duration, ok: bool) {
    let outcome = if ok { "ok" } else { "error" };
    counter!("aistory_db_statements_total", "pool" => pool, "outcome" => outcome).increment(1);
    histogram!("aistory_db_statement_duration_seconds", "pool" => pool)
        .record(elapsed.as_secs_f64());
}

/// Getting a connection of `pool` took `elapsed` (on `main`: with its `BEGIN`); `ok`: one was
/// had (else the acquire time-out ran out, or the server refused).
pub fn acquired(pool: &'static str, elapsed: Duration, ok: bool) {
    histogram!("aistory_db_acquire_duration_seconds", "pool" => pool).record(elapsed.as_secs_f64());
    if !ok {
        counter!("aistory_db_acquire_failures_total", "pool" => pool).increment(1);
    }
}

/// Tasks waiting for a connection of the main pool (and its `BEGIN`) right now.
pub struct Waiting;

impl Waiting {
    pub fn start() -> Waiting {
        gauge!("aistory_db_acquire_waiting", "pool" => "main").increment(1.0);
        Waiting
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        gauge!("aistory_db_acquire_waiting", "pool" => "main").decrement(1.0);
    }
}

/// The pools' connections now (read when metrics are scraped).
pub fn record_pools(db: &DatabaseConnection, reads: &ReadPool) {
    let (size, idle) = match db.get_database_backend() {
        DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (pool.size(), pool.num_idle())
        }
        DbBackend::MySql => {
            let pool = db.get_mysql_connection_pool();
            (pool.size(), pool.num_idle())
        }
        _ => {
            let pool = db.get_sqlite_connection_pool();
            (pool.size(), pool.num_idle())
        }
    };
    let idle = idle as f64;
    gauge!("aistory_db_connections", "pool" => "main", "state" => "idle").set(idle);
    gauge!("aistory_db_connections", "pool" => "main", "state" => "in_use")
        .set((f64::from(size) - idle).max(0.0));
    if let Some((size, available, waiting)) = reads.status() {
        gauge!("aistory_db_connections", "pool" => "reads", "state" => "idle")
            .set(available as f64);
        gauge!("aistory_db_connections", "pool" => "reads", "state" => "in_use")
            .set(size.saturating_sub(available) as f64);
        gauge!("aistory_db_acquire_waiting", "pool" => "reads").set(waiting as f64);
    }
}

/// Migrations applied and pending when the process started.
pub fn migrations(applied: usize, pending: usize) {
    gauge!("aistory_migrations_applied").set(applied as f64);
    gauge!("aistory_migrations_pending").set(pending as f64);
}

/// Label sets of the queue gauges seen so far: one that no longer has jobs is set to 0.
static QUEUE_SEEN: Mutex<BTreeSet<(String, &'static str)>> = Mutex::new(BTreeSet::new());

/// The queue now (read when metrics are scraped): jobs by kind and state (`queued`, `retrying`:
/// queued after a failed attempt, `running`, `failed`), and the age of the oldest job that is
/// due and not yet claimed.
pub async fn record_queue(db: &DatabaseConnection) -> Result<(), DbErr> {
    let rows = crate::queue::summary(db)
        .await
        .map_err(|error| match error {
            crate::ServiceError::Unavailable(error) => error,
            other => DbErr::Custom(other.to_string()),
        })?;
    let now = entity::timestamps::now();
    let oldest: Option<Option<chrono::DateTime<chrono::Utc>>> = job::Entity::find()
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
    gauge!("aistory_jobs_oldest_due_age_seconds").set(age);

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
    let mut seen = QUEUE_SEEN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    seen.extend(counts.keys().cloned());
    for (kind, state) in seen.iter() {
        let jobs = counts.get(&(kind.clone(), state)).copied().unwrap_or(0.0);
        gauge!("aistory_jobs", "kind" => kind.clone(), "state" => *state).set(jobs);
    }
    Ok(())
}

/// How one run of a job of `kind` ended: `succeeded`, `retry` (it will run again), `failed`
/// (given up), `lost` (its lease expired meanwhile) or `handed_back` (shutdown).
pub fn job_ran(kind: &str, outcome: &'static str, elapsed: Duration) {
    let kind = kind.to_owned();
    histogram!("aistory_job_duration_seconds", "kind" => kind.clone(), "outcome" => outcome)
        .record(elapsed.as_secs_f64());
    match outcome {
        "retry" => counter!("aistory_job_retries_total", "kind" => kind).increment(1),
        "failed" => counter!("aistory_job_give_ups_total", "kind" => kind).increment(1),
        _ => {}
    }
}

/// A job of `kind` was claimed after its holder's lease expired (the holder died or hung).
pub fn lease_expired(kind: &str) {
    counter!("aistory_job_lease_expiries_total", "kind" => kind.to_owned()).increment(1);
}

/// One call of story provider `provider`: `ok`, or the kind of error.
pub fn provider_call(provider: &'static str, elapsed: Duration, outcome: &'static str) {
    histogram!("aistory_story_provider_duration_seconds", "provider" => provider)
        .record(elapsed.as_secs_f64());
    if outcome != "ok" {
        counter!("aistory_story_provider_errors_total", "provider" => provider, "kind" => outcome)
            .increment(1);
    }
}

/// A photo's bytes were stored.
pub fn upload_stored(bytes: u64) {
    counter!("aistory_upload_bytes_total").increment(bytes);
    counter!("aistory_uploads_total").increment(1);
}

/// An upload was refused (`too_large`, `unsupported_media`, `timeout`, `malformed`,
/// `invalid`).
pub fn upload_refused(reason: &'static str) {
    counter!("aistory_upload_refusals_total", "reason" => reason).increment(1);
}

/// A login attempt: `success`, `failure` (wrong credentials) or `throttled`.
pub fn login(outcome: &'static str) {
    counter!("aistory_logins_total", "outcome" => outcome).increment(1);
}

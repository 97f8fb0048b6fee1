//! The durable job queue on every backend: transactional enqueue, leases, retries with
//! backoff, release on shutdown, and concurrent workers running each job exactly once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aistory_tests::{Backend, TestDatabase, backend_tests};
use entity::job::{self, JobStatus};
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, DatabaseConnection, EntityTrait, IntoActiveModel,
    PaginatorTrait, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use service::queue;
use service::worker::{BackgroundJob, JobContext, JobError};
use settings::DatabaseSettings;

backend_tests!(
    a_job_commits_or_rolls_back_with_its_change,
    a_dead_workers_lease_expires_and_the_job_runs_again,
    failures_back_off_and_finally_fail,
    release_hands_jobs_back,
    concurrent_workers_run_each_job_exactly_once,
    operators_see_and_mend_the_queue,
);

async fn migrated(backend: Backend) -> (TestDatabase, DatabaseConnection) {
    let database = TestDatabase::create(backend).await;
    let db = database.connect().await;
    Migrator::up(&db, None).await.unwrap();
    (database, db)
}

const KINDS: &[&str] = &[Count::KIND];

/// A job these tests queue and claim by hand (no worker runs it).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Count {
    #[serde(default)]
    n: usize,
}

#[async_trait::async_trait]
impl BackgroundJob for Count {
    const KIND: &'static str = "count";
    type Context = ();

    async fn run(&self, _context: &(), _job: &JobContext<'_>) -> Result<(), JobError> {
        Ok(())
    }
}

/// [`Count`] given up after two attempts.
#[derive(Debug, Default, Serialize, Deserialize)]
struct CountTwice {}

#[async_trait::async_trait]
impl BackgroundJob for CountTwice {
    const KIND: &'static str = Count::KIND;
    const MAX_ATTEMPTS: i32 = 2;
    type Context = ();

    async fn run(&self, _context: &(), _job: &JobContext<'_>) -> Result<(), JobError> {
        Ok(())
    }
}

async fn a_job_commits_or_rolls_back_with_its_change(backend: Backend) {
    let (_database, db) = migrated(backend).await;
    let txn = db.begin().await.unwrap();
    Count { n: 1 }.enqueue(&txn).await.unwrap();
    txn.rollback().await.unwrap();
    assert_eq!(job::Entity::find().count(&db).await.unwrap(), 0);

    let txn = db.begin().await.unwrap();
    Count { n: 2 }.enqueue(&txn).await.unwrap();
    txn.commit().await.unwrap();
    let jobs = job::Entity::find().all(&db).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].status, JobStatus::Queued);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&jobs[0].payload).unwrap(),
        json!({"n": 2})
    );
    // Another kind is not handed to a worker that does not ask for it.
    assert!(
        queue::claim(&db, "w", &["other"], 10, Duration::from_secs(5))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_dead_workers_lease_expires_and_the_job_runs_again(backend: Backend) {
    let (_database, db) = migrated(backend).await;
    Count::default().enqueue(&db).await.unwrap();
    let first = queue::claim(&db, "w1", KINDS, 10, Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].attempts, 1);
    // Held: nobody else gets it, and only its holder may finish it.
    assert!(
        queue::claim(&db, "w2", KINDS, 10, Duration::from_secs(5))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!queue::complete(&db, first[0].id, "w2").await.unwrap());
    // A live worker keeps its lease; w1 "dies" instead.
    assert!(
        queue::extend_lease(&db, first[0].id, "w1", Duration::from_millis(500))
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    let again = queue::claim(&db, "w2", KINDS, 10, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "the expired lease was not reclaimed");
    assert_eq!(again[0].attempts, 2);
    assert!(
        !queue::complete(&db, first[0].id, "w1").await.unwrap(),
        "w1 lost its lease"
    );
    assert!(queue::complete(&db, first[0].id, "w2").await.unwrap());
    let done = job::Entity::find_by_id(first[0].id)
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    assert!(done.locked_by.is_none());
}

async fn make_due(db: &DatabaseConnection, id: i64) {
    let mut active = job::Entity::find_by_id(id)
        .one(db)
        .await
        .unwrap()
        .unwrap()
        .into_active_model();
    active.run_at = Set(entity::timestamps::now() - chrono::Duration::seconds(1));
    active.update(db).await.unwrap();
}

async fn failures_back_off_and_finally_fail(backend: Backend) {
    let (_database, db) = migrated(backend).await;
    let created = CountTwice::default().enqueue(&db).await.unwrap();
    let claimed = queue::claim(&db, "w", KINDS, 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        queue::fail(&db, &claimed[0], "w", "boom 1", queue::backoff(1))
            .await
            .unwrap(),
        Some(JobStatus::Queued)
    );
    let waiting = job::Entity::find_by_id(created.id)
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(waiting.last_error.as_deref(), Some("boom 1"));
    assert!(
        waiting.run_at > entity::timestamps::now(),
        "no backoff before the retry"
    );
    assert!(
        queue::claim(&db, "w", KINDS, 1, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty()
    );
    make_due(&db, created.id).await;
    let retried = queue::claim(&db, "w", KINDS, 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(retried[0].attempts, 2);
    assert_eq!(
        queue::fail(&db, &retried[0], "w", "boom 2", queue::backoff(2))
            .await
            .unwrap(),
        Some(JobStatus::Failed)
    );
    let failed = job::Entity::find_by_id(created.id)
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.last_error.as_deref(), Some("boom 2"));
    make_due(&db, created.id).await;
    assert!(
        queue::claim(&db, "w", KINDS, 1, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn release_hands_jobs_back(backend: Backend) {
    let (_database, db) = migrated(backend).await;
    for _ in 0..3 {
        Count::default().enqueue(&db).await.unwrap();
    }
    let claimed = queue::claim(&db, "stopping", KINDS, 10, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    assert_eq!(queue::release(&db, "stopping").await.unwrap(), 3);
    let again = queue::claim(&db, "other", KINDS, 10, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(again.len(), 3);
    assert!(
        again.iter().all(|job| job.attempts == 1),
        "a released attempt must not count"
    );
}

async fn concurrent_workers_run_each_job_exactly_once(backend: Backend) {
    let (database, db) = migrated(backend).await;
    const JOBS: usize = 300;
    for n in 0..JOBS {
        Count { n }.enqueue(&db).await.unwrap();
    }
    let runs: Arc<Mutex<HashMap<i64, usize>>> = Arc::default();
    let mut workers = Vec::new();
    for w in 0..4 {
        // Each worker with a pool of its own, as separate processes would have.
        let pool = if backend == Backend::Sqlite {
            db.clone()
        } else {
            sea_orm::Database::connect(
                DatabaseSettings::for_url(database.url.clone()).connect_options(),
            )
            .await
            .unwrap()
        };
        let runs = runs.clone();
        workers.push(tokio::spawn(async move {
            let name = format!("worker-{w}");
            loop {
                let batch = queue::claim(&pool, &name, KINDS, 5, Duration::from_secs(60))
                    .await
                    .unwrap();
                if batch.is_empty() {
                    break;
                }
                for job in batch {
                    *runs.lock().unwrap().entry(job.id).or_default() += 1;
                    assert!(queue::complete(&pool, job.id, &name).await.unwrap());
                }
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.len(), JOBS, "every job ran");
    assert!(runs.values().all(|count| *count == 1), "a job ran twice");
    let succeeded = job::Entity::find().all(&db).await.unwrap();
    assert!(
        succeeded
            .iter()
            .all(|job| job.status == JobStatus::Succeeded)
    );
}

/// What `api jobs` and the metrics read: counts by kind and state, the failed jobs; and what
/// an operator does: retry or discard a failed job (nothing else).
async fn operators_see_and_mend_the_queue(backend: Backend) {
    let (_database, db) = migrated(backend).await;
    let waiting = Count::default().enqueue(&db).await.unwrap();
    let retried = CountTwice::default().enqueue(&db).await.unwrap();
    let given_up = CountTwice::default().enqueue(&db).await.unwrap();
    // One attempt failed (queued again after its backoff), one failed for good.
    let claimed = queue::claim(&db, "w", KINDS, 3, Duration::from_secs(30))
        .await
        .unwrap();
    for job in &claimed {
        if job.id == retried.id {
            queue::fail(&db, job, "w", "boom", queue::backoff(1))
                .await
                .unwrap();
        } else if job.id == given_up.id {
            queue::give_up(&db, job, "w", "hopeless").await.unwrap();
        }
    }
    assert_eq!(claimed.len(), 3, "{claimed:?}");
    // The third is handed back untried.
    queue::release(&db, "w").await.unwrap();
    let summary = queue::summary(&db).await.unwrap();
    let row = |status: JobStatus| {
        summary
            .iter()
            .find(|(kind, s, _, _)| kind == Count::KIND && *s == status)
            .map(|(_, _, jobs, tried)| (*jobs, *tried))
    };
    assert_eq!(row(JobStatus::Queued), Some((2, 1)), "{summary:?}");
    assert_eq!(row(JobStatus::Failed), Some((1, 1)), "{summary:?}");
    queue::record_metrics(&db).await.unwrap();

    let failed = queue::failed(&db, 10).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].id, given_up.id);
    assert_eq!(failed[0].last_error.as_deref(), Some("hopeless"));
    // Only failed jobs are retried or discarded.
    assert!(!queue::retry_failed(&db, waiting.id).await.unwrap());
    assert!(!queue::discard_failed(&db, waiting.id).await.unwrap());
    assert!(queue::retry_failed(&db, given_up.id).await.unwrap());
    let again = job::Entity::find_by_id(given_up.id)
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.status, again.attempts), (JobStatus::Queued, 0));
    assert!(again.run_at <= entity::timestamps::now());
    let claimed = queue::claim(&db, "w", KINDS, 3, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(
        claimed.iter().any(|job| job.id == given_up.id),
        "the retried job is due"
    );
    let gone = claimed.iter().find(|job| job.id == given_up.id).unwrap();
    queue::give_up(&db, gone, "w", "hopeless again")
        .await
        .unwrap();
    assert!(queue::discard_failed(&db, given_up.id).await.unwrap());
    assert!(
        job::Entity::find_by_id(given_up.id)
            .one(&db)
            .await
            .unwrap()
            .is_none()
    );
}

//! Workers: claim jobs from the durable queue ([`crate::queue`]) and run them. A job is a
//! typed [`BackgroundJob`]; the worker knows no domain, only the kinds registered with it.
//!
//! Any number of workers, in any number of processes on any number of machines, share one
//! database. Each claimed job is leased; a heartbeat extends the lease while the handler
//! runs, so a job outlives no dead worker by more than one lease. On shutdown a worker stops
//! claiming, gives its running job a grace period, and hands back what it still holds.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::job;
use futures_util::FutureExt;
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::{ServiceError, queue};

/// Why a job did not finish.
#[derive(Debug)]
pub enum JobError {
    /// Worth trying again later (a store or service that is down, a time-out): retried with
    /// backoff while attempts remain. The message is kept as the job's last error.
    Retry(String),
    /// Retrying cannot help (a bad payload, a refused request): the job ends `failed` now.
    Fail(String),
    /// The worker lost the job (its lease expired and another worker took it): do nothing.
    Lost,
}

/// What users see (as a failed photo's `error`) when our side failed: the details go to the
/// log, never to them.
pub const INTERNAL_FAILURE: &str = "a temporary problem on our side";

impl From<ServiceError> for JobError {
    fn from(error: ServiceError) -> Self {
        tracing::warn!(%error, "a job hit a database error");
        JobError::Retry(INTERNAL_FAILURE.to_owned())
    }
}

impl From<sea_orm::DbErr> for JobError {
    fn from(error: sea_orm::DbErr) -> Self {
        tracing::warn!(%error, "a job hit a database error");
        JobError::Retry(INTERNAL_FAILURE.to_owned())
    }
}

/// What a handler runs with.
pub struct JobContext<'a> {
    pub pool: &'a DatabaseConnection,
    /// The claiming worker's id (the job's `locked_by`).
    pub worker: &'a str,
    pub job: &'a job::Model,
}

impl JobContext<'_> {
    /// Completes the job inside `txn`, so the job's effects and its completion commit
    /// together: a handler whose results are rows runs them exactly once. `Lost` when this
    /// worker no longer holds the job (then roll back).
    pub async fn complete_in(&self, txn: &DatabaseTransaction) -> Result<(), JobError> {
        if queue::complete(txn, self.job.id, self.worker).await? {
            Ok(())
        } else {
            Err(JobError::Lost)
        }
    }
}

/// A job: a payload struct that declares, once, its kind, how often it is tried and how long
/// to wait between tries, and the code that runs it. It lives beside the domain it serves
/// (story generation with stories, object deletion with storage); the worker knows no domain.
///
/// `run` must be idempotent: a worker can die after doing the work and before completing the
/// job, and then the job runs again.
#[async_trait::async_trait]
pub trait BackgroundJob: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// `jobs.kind`: stable, never reused for another payload.
    const KIND: &'static str;
    /// Attempts before the job is given up.
    const MAX_ATTEMPTS: i32 = queue::DEFAULT_MAX_ATTEMPTS;
    /// What the job runs with (a store, a provider ...), given when it is registered.
    type Context: Send + Sync + 'static;

    /// The wait before attempt `attempts + 1` after a retryable failure.
    fn backoff(attempts: i32) -> Duration {
        queue::backoff(attempts)
    }

    /// Runs the job. On `Ok` the worker completes the job, unless the job already did (see
    /// [`JobContext::complete_in`]).
    async fn run(&self, context: &Self::Context, job: &JobContext<'_>) -> Result<(), JobError>;

    /// Called in the transaction that marks the job `failed` for good, to record the failure
    /// where users see it.
    async fn gave_up(
        &self,
        _context: &Self::Context,
        _txn: &DatabaseTransaction,
        _reason: &str,
    ) -> Result<(), ServiceError> {
        Ok(())
    }

    /// Queues the job on `db`, due now: pass the caller's transaction, so the job commits or
    /// rolls back with the change that caused it.
    async fn enqueue<C: ConnectionTrait>(&self, db: &C) -> Result<job::Model, ServiceError> {
        self.enqueue_at(db, entity::timestamps::now()).await
    }

    /// Queues the job on `db`, due at `run_at`.
    async fn enqueue_at<C: ConnectionTrait>(
        &self,
        db: &C,
        run_at: DateTime<Utc>,
    ) -> Result<job::Model, ServiceError> {
        let payload =
            serde_json::to_string(self).map_err(|error| ServiceError::Unexpected(error.into()))?;
        queue::enqueue_at(db, Self::KIND, &payload, run_at, Self::MAX_ATTEMPTS).await
    }
}

/// A registered job kind, its payload type erased so one registry holds every kind.
#[async_trait::async_trait]
trait Handler: Send + Sync + 'static {
    async fn run(&self, ctx: &JobContext<'_>) -> Result<(), JobError>;
    async fn gave_up(
        &self,
        txn: &DatabaseTransaction,
        job: &job::Model,
        reason: &str,
    ) -> Result<(), ServiceError>;
    fn backoff(&self, attempts: i32) -> Duration;
}

/// Runs the jobs of type `J` with its context.
struct Typed<J: BackgroundJob> {
    context: J::Context,
}

fn payload<J: BackgroundJob>(job: &job::Model) -> Result<J, JobError> {
    serde_json::from_str(&job.payload)
        .map_err(|error| JobError::Fail(format!("the job's payload is not a {}: {error}", J::KIND)))
}

#[async_trait::async_trait]
impl<J: BackgroundJob> Handler for Typed<J> {
    async fn run(&self, ctx: &JobContext<'_>) -> Result<(), JobError> {
        payload::<J>(ctx.job)?.run(&self.context, ctx).await
    }

    async fn gave_up(
        &self,
        txn: &DatabaseTransaction,
        job: &job::Model,
        reason: &str,
    ) -> Result<(), ServiceError> {
        match payload::<J>(job) {
            Ok(payload) => payload.gave_up(&self.context, txn, reason).await,
            // Nothing to record against: the payload itself was the failure.
            Err(_) => Ok(()),
        }
    }

    fn backoff(&self, attempts: i32) -> Duration {
        J::backoff(attempts)
    }
}

/// A job kind queued again after every run, every `period` (see [`Registry::every`]).
#[derive(Clone)]
struct Schedule {
    kind: &'static str,
    period: Duration,
    max_attempts: i32,
    payload: String,
}

/// The job kinds a worker runs, and the ones it keeps scheduled.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<&'static str, Arc<dyn Handler>>,
    schedules: Vec<Schedule>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs jobs of type `J` with `context`.
    pub fn register<J: BackgroundJob>(mut self, context: J::Context) -> Self {
        self.handlers
            .insert(J::KIND, Arc::new(Typed::<J> { context }));
        self
    }

    /// Keeps `job` scheduled: one is queued when workers start (unless one is waiting
    /// already) and, after each run, again `period` later. Several processes may do so at
    /// once; a duplicate finds the other waiting and is not queued again.
    pub fn every<J: BackgroundJob>(
        mut self,
        period: Duration,
        job: &J,
        context: J::Context,
    ) -> Result<Self, ServiceError> {
        let payload =
            serde_json::to_string(job).map_err(|error| ServiceError::Unexpected(error.into()))?;
        self.schedules.push(Schedule {
            kind: J::KIND,
            period,
            max_attempts: J::MAX_ATTEMPTS,
            payload,
        });
        Ok(self.register::<J>(context))
    }

    pub fn kinds(&self) -> Vec<&'static str> {
        let mut kinds: Vec<_> = self.handlers.keys().copied().collect();
        kinds.sort_unstable();
        kinds
    }

    fn schedule(&self, kind: &str) -> Option<&Schedule> {
        self.schedules.iter().find(|schedule| schedule.kind == kind)
    }

    /// Queues each scheduled kind due at `now + delay(schedule)` unless one is waiting.
    async fn keep_scheduled(&self, pool: &DatabaseConnection, only: Option<&str>, at_start: bool) {
        for schedule in &self.schedules {
            if only.is_some_and(|kind| kind != schedule.kind) {
                continue;
            }
            let delay = if at_start {
                Duration::ZERO
            } else {
                schedule.period
            };
            let run_at = entity::timestamps::now()
                + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
            if let Err(error) = queue::ensure_waiting(
                pool,
                schedule.kind,
                &schedule.payload,
                run_at,
                schedule.max_attempts,
            )
            .await
            {
                tracing::warn!(%error, kind = schedule.kind, "scheduling a job failed");
            }
        }
    }
}

/// How workers hold and look for jobs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// A claimed job's lease; the heartbeat renews it every third of it.
    pub lease: Duration,
    /// How long an idle worker waits before looking for jobs again.
    pub poll_interval: Duration,
    /// How long a running job may go on after shutdown begins before it is handed back.
    pub shutdown_grace: Duration,
}

impl WorkerConfig {
    pub fn from_settings(settings: &settings::WorkerSettings) -> Self {
        WorkerConfig {
            lease: settings.lease,
            poll_interval: settings.poll_interval,
            shutdown_grace: settings.shutdown_grace,
        }
    }
}

/// A running set of workers (see [`Workers::start`]).
pub struct Workers {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    ids: Vec<String>,
}

/// A name for this process, unique among the processes sharing the database.
fn process_tag() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    let host: String = host.chars().take(32).collect();
    let nonce = &uuid::Uuid::new_v4().simple().to_string()[..8];
    format!("{host}-{}-{nonce}", std::process::id())
}

impl Workers {
    /// Starts `count` workers on the current Tokio runtime.
    pub fn start(
        pool: DatabaseConnection,
        registry: Registry,
        config: WorkerConfig,
        count: u16,
    ) -> Workers {
        let (stop, stopped) = watch::channel(false);
        let registry = Arc::new(registry);
        let tag = process_tag();
        let mut tasks = Vec::new();
        let mut ids = Vec::new();
        for n in 0..count {
            let id = format!("{tag}-{n}");
            ids.push(id.clone());
            let worker = Worker {
                id,
                pool: pool.clone(),
                registry: registry.clone(),
                config: config.clone(),
                stopped: stopped.clone(),
            };
            tasks.push(tokio::spawn(worker.run()));
        }
        if count > 0 {
            tracing::info!(count, kinds = ?registry.kinds(), "workers started");
            let registry = registry.clone();
            tasks.push(tokio::spawn(async move {
                registry.keep_scheduled(&pool, None, true).await;
            }));
        }
        Workers { stop, tasks, ids }
    }

    /// The workers' ids (`jobs.locked_by` of the jobs they hold).
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// Tells the workers to stop claiming; running jobs get the grace period, then what is
    /// still held is handed back. Returns at once; [`Self::shutdown`] waits.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Stops claiming, lets running jobs finish within the grace period, hands back what is
    /// still held, and waits for every worker to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "a worker task ended abnormally");
            }
        }
    }
}

struct Worker {
    id: String,
    pool: DatabaseConnection,
    registry: Arc<Registry>,
    config: WorkerConfig,
    stopped: watch::Receiver<bool>,
}

impl Worker {
    async fn run(mut self) {
        let kinds = self.registry.kinds();
        let mut idle = self.config.poll_interval;
        while !*self.stopped.borrow() {
            match queue::claim(&self.pool, &self.id, &kinds, 1, self.config.lease).await {
                Ok(jobs) if !jobs.is_empty() => {
                    idle = self.config.poll_interval;
                    for job in jobs {
                        self.execute(job).await;
                    }
                    continue;
                }
                Ok(_) => idle = self.config.poll_interval,
                Err(error) => {
                    // The database is away: look again later, backing off to 5 s.
                    tracing::warn!(%error, worker = self.id, "claiming jobs failed");
                    idle = (idle * 2).clamp(self.config.poll_interval, Duration::from_secs(5));
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(idle) => {}
                _ = self.stopped.changed() => {}
            }
        }
        match queue::release(&self.pool, &self.id).await {
            Ok(0) => {}
            Ok(released) => tracing::info!(released, worker = self.id, "handed jobs back"),
            Err(error) => {
                tracing::warn!(%error, worker = self.id, "handing jobs back failed; their leases will expire")
            }
        }
    }

    async fn execute(&self, job: job::Model) {
        let span = tracing::info_span!("job", id = job.id, kind = job.kind, attempt = job.attempts);
        self.execute_in_span(job).instrument(span).await
    }

    async fn execute_in_span(&self, job: job::Model) {
        let Some(handler) = self.registry.handlers.get(job.kind.as_str()).cloned() else {
            // claim() only hands out the kinds we asked for.
            return;
        };
        if job.attempts > job.max_attempts {
            let reason = format!(
                "its worker stopped before finishing, {} times",
                job.max_attempts
            );
            self.record_failure(handler.as_ref(), &job, &reason, true)
                .await;
            return;
        }
        let started = std::time::Instant::now();
        let ctx = JobContext {
            pool: &self.pool,
            worker: &self.id,
            job: &job,
        };
        let result = {
            // A panicking handler fails its attempt instead of taking its worker down.
            let run = async {
                match std::panic::AssertUnwindSafe(handler.run(&ctx))
                    .catch_unwind()
                    .await
                {
                    Ok(result) => result,
                    Err(_) => {
                        tracing::error!("the job's handler panicked");
                        Err(JobError::Retry(INTERNAL_FAILURE.to_owned()))
                    }
                }
            };
            let heartbeat = heartbeat(&self.pool, &self.id, job.id, self.config.lease);
            let mut stopped = self.stopped.clone();
            let grace = self.config.shutdown_grace;
            let stop_after_grace = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
                tokio::time::sleep(grace).await;
            };
            tokio::select! {
                result = run => result,
                lost = heartbeat => lost,
                _ = stop_after_grace => {
                    tracing::info!("shutting down: the job is handed back");
                    crate::metrics::job_ran(&job.kind, "handed_back", started.elapsed());
                    return;
                }
            }
        };
        let elapsed = started.elapsed();
        let elapsed_ms = elapsed.as_millis() as u64;
        let lost = matches!(result, Err(JobError::Lost));
        let outcome = match &result {
            Ok(()) => "succeeded",
            Err(JobError::Lost) => "lost",
            Err(JobError::Fail(_)) => "failed",
            Err(JobError::Retry(_)) if job.attempts >= job.max_attempts => "failed",
            Err(JobError::Retry(_)) => "retry",
        };
        crate::metrics::job_ran(&job.kind, outcome, elapsed);
        match result {
            Ok(()) => {
                match queue::complete(&self.pool, job.id, &self.id).await {
                    Err(error) => {
                        tracing::warn!(%error, "completing the job failed; it will run again")
                    }
                    // Completed (by us, or already by the handler in its own transaction).
                    Ok(_) => tracing::info!(elapsed_ms, "job done"),
                }
            }
            Err(JobError::Lost) => {
                tracing::warn!(
                    elapsed_ms,
                    "the job's lease was lost; another worker has it"
                )
            }
            Err(JobError::Retry(reason)) => {
                self.record_failure(handler.as_ref(), &job, &reason, false)
                    .await
            }
            Err(JobError::Fail(reason)) => {
                self.record_failure(handler.as_ref(), &job, &reason, true)
                    .await
            }
        }
        if !lost && self.registry.schedule(&job.kind).is_some() {
            self.registry
                .keep_scheduled(&self.pool, Some(&job.kind), false)
                .await;
        }
    }

    /// Records a failed attempt (and, when it is the last, the handler's view of it) in one
    /// transaction.
    async fn record_failure(
        &self,
        handler: &dyn Handler,
        job: &job::Model,
        reason: &str,
        now: bool,
    ) {
        let result = async {
            let txn = crate::db::begin_write(&self.pool).await?;
            // None: the lease was lost (another worker has the job).
            let outcome = if now || job.attempts >= job.max_attempts {
                queue::give_up(&txn, job, &self.id, reason)
                    .await?
                    .then_some(true)
            } else {
                queue::fail(&txn, job, &self.id, reason, handler.backoff(job.attempts))
                    .await?
                    .map(|_| false)
            };
            if outcome == Some(true) {
                handler.gave_up(&txn, job, reason).await?;
            }
            txn.commit().await?;
            Ok::<_, ServiceError>(outcome)
        }
        .await;
        match result {
            Ok(Some(true)) => tracing::warn!(reason, "the job failed for good"),
            Ok(Some(false)) => tracing::info!(reason, "the job failed; it will be retried"),
            Ok(None) => tracing::warn!(reason, "the job failed, but its lease was lost meanwhile"),
            Err(error) => {
                tracing::warn!(%error, reason, "recording a job failure failed; its lease will expire")
            }
        }
    }
}

/// Extends the lease every third of it; resolves (with `Lost`) only if the job was lost.
async fn heartbeat(
    pool: &DatabaseConnection,
    worker: &str,
    job_id: i64,
    lease: Duration,
) -> Result<(), JobError> {
    loop {
        tokio::time::sleep(lease / 3).await;
        match queue::extend_lease(pool, job_id, worker, lease).await {
            Ok(true) => {}
            Ok(false) => return Err(JobError::Lost),
            // A blip: the next beat tries again, well before the lease runs out.
            Err(error) => tracing::warn!(%error, "extending the lease failed"),
        }
    }
}

/// Claims and runs due jobs one at a time, as worker `worker`, until none is due; returns how
/// many ran. For tests and one-off runs: jobs retried with backoff are not due yet and stay.
pub async fn run_pending(
    pool: &DatabaseConnection,
    registry: &Registry,
    config: &WorkerConfig,
    worker: &str,
) -> Result<usize, ServiceError> {
    let (_stop, stopped) = watch::channel(false);
    let runner = Worker {
        id: worker.to_owned(),
        pool: pool.clone(),
        registry: Arc::new(registry.clone()),
        config: config.clone(),
        stopped,
    };
    let kinds = registry.kinds();
    let mut ran = 0;
    loop {
        let jobs = queue::claim(pool, worker, &kinds, 1, config.lease).await?;
        if jobs.is_empty() {
            return Ok(ran);
        }
        for job in jobs {
            runner.execute(job).await;
            ran += 1;
        }
    }
}

/// The `diagnostic.count` job (cargo feature `diagnostics`, for tests of worker processes):
/// appends its job id to the registered file, one line per run, so a test can check that
/// each job ran exactly once; `sleep_ms` makes it take a while (to kill a worker mid-job).
#[cfg(feature = "diagnostics")]
#[derive(Debug, Default, Serialize, serde::Deserialize)]
pub struct CountRun {
    #[serde(default)]
    pub sleep_ms: u64,
}

#[cfg(feature = "diagnostics")]
#[async_trait::async_trait]
impl BackgroundJob for CountRun {
    const KIND: &'static str = "diagnostic.count";
    type Context = std::path::PathBuf;

    async fn run(&self, path: &Self::Context, ctx: &JobContext<'_>) -> Result<(), JobError> {
        use std::io::Write;
        let line = format!("{}\n", ctx.job.id);
        let path = path.clone();
        tokio::time::sleep(Duration::from_millis(self.sleep_ms.min(60_000))).await;
        tokio::task::spawn_blocking(move || {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            file.write_all(line.as_bytes())
        })
        .await
        .map_err(|error| JobError::Retry(error.to_string()))?
        .map_err(|error| JobError::Retry(format!("writing the count file failed: {error}")))
    }
}

//! Hot reads from a PostgreSQL streaming replica (`AISTORY_DATABASE_READ_URL`), never older
//! than the read itself.
//!
//! **The guarantee.** A read sent to the replica sees every transaction that had committed on
//! the primary when the read reached this process: its own user's writes from an earlier
//! request (on any API process), and everyone else's. No client cooperation, no sticky
//! sessions. How:
//!
//! 1. The read waits for a sample of the primary's `pg_current_wal_insert_lsn()` taken *after*
//!    it arrived: the target. Every commit acknowledged before that moment has its commit
//!    record at or before the target (inserted into the WAL, whether or not
//!    `synchronous_commit` waited for the flush).
//! 2. It goes to the replica only once the replica (still in recovery) reports a
//!    `pg_last_wal_replay_lsn()` at or past the target: those commits are replayed, so the
//!    snapshot the read then takes contains them.
//! 3. Otherwise, after waiting [`settings::DatabaseSettings::replica_max_wait`] for the replica
//!    to catch up, it goes to the primary (`lagging`), and so do the reads of the next second
//!    or more (the replica is marked down, see below), so that a replica that stays behind
//!    does not make every read wait.
//!
//! Samples are shared: one `SELECT` is in flight on each server at a time, on a connection of
//! its own, and it answers every read that arrived before it was sent ([`Sampler`]). Under
//! load one round trip to the primary serves a whole batch of reads, so the primary sees one
//! tiny statement per round trip instead of every read; the last replay position is
//! remembered, so while nothing is written the replica is not asked again.
//!
//! **Failures.** A replica that refuses connections, breaks one, fails a read, gives no answer
//! within the connect time-out, lags past the wait bound, or is not in recovery (promoted) is
//! marked down: reads go to the primary for 1 s, doubling to 30 s while it stays down, and the
//! read that found it failing is sent to the primary at once, so clients see no error. Marking
//! it down forgets the remembered replay position (a standby restarted after a crash may come
//! back at an older one), and a sample taken before that cannot bring it back (a generation
//! number). Reads are never retried on another replica connection: a new connection might
//! reach a restarted server. A replica whose connections are all busy for the wait bound
//! hands the read to the primary without being marked down (`replica_busy`). The counter
//! `aistory_db_replica_reads_total{served_by, reason}` and the gauge `aistory_db_replica_up`
//! say where reads go and why.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use sea_orm::sqlx::postgres::{PgDatabaseError, PgSeverity};
use sea_orm::sqlx::{self, Row as _};
use sea_orm::{ConnAcquireErr, DbBackend, DbErr, QueryResult, RuntimeErr, Statement};
use tokio::sync::{mpsc, oneshot};

use super::{Inner, Own};

/// Where the primary inserts WAL now, in bytes since `0/0`.
const PRIMARY_LSN: &str = "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint";
/// Whether the server is a standby, and how far it has replayed, in bytes since `0/0`.
const REPLAYED_LSN: &str =
    "SELECT pg_is_in_recovery(), (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint";

/// How long the replica is left alone after it failed, at first and at most.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Between two looks at a replica that has not caught up yet.
const CATCH_UP_PAUSE: Duration = Duration::from_millis(1);

pub(super) struct Replica {
    primary: Inner,
    pool: Arc<Own>,
    probes: [Arc<Own>; 2],
    primary_lsn: Sampler,
    replayed_lsn: Sampler,
    /// The replay position last seen in this generation (0: unknown). Read without the lock.
    replayed: AtomicU64,
    /// Milliseconds since `epoch` until which reads stay on the primary (0: the replica is up).
    down_until: AtomicU64,
    epoch: Instant,
    health: Mutex<Health>,
    max_wait: Duration,
    /// A read on the replica that takes longer is abandoned and sent to the primary.
    read_limit: Duration,
}

struct Health {
    /// Bumped each time the replica is marked down: samples asked for before do not count.
    generation: u64,
    /// How long the next failure keeps the replica down.
    backoff: Duration,
}

/// Why a sample could not be had.
#[derive(Clone, Debug)]
enum SampleError {
    /// No connection was free in time: the server is busy, not broken.
    Busy,
    Failed(String),
}

impl SampleError {
    fn from_db(error: DbErr) -> SampleError {
        match error {
            DbErr::ConnectionAcquire(ConnAcquireErr::Timeout) => SampleError::Busy,
            other => SampleError::Failed(other.to_string()),
        }
    }
}

impl Replica {
    /// The replica at `url`, with `primary` for the fallback. Its connections (opened on
    /// first use): up to `read_pool_size` for the reads, and one each, on the replica and on
    /// the primary, for the position samples, so that they never queue behind the reads they
    /// decide.
    pub(super) fn open(
        primary: Inner,
        url: &str,
        database: &settings::DatabaseSettings,
        observer: Option<crate::observe::StatementObserver>,
    ) -> Result<Replica, DbErr> {
        // A replica whose connections are all busy sends the read to the primary rather than
        // keep it waiting.
        let busy_after = database.replica_max_wait.max(Duration::from_millis(50));
        let size = database.read_pool_size.max(1);
        let pool = Arc::new(Own::open(
            url, "replica", size, database, observer, busy_after, false,
        )?);
        let primary_probe = Own::open(
            &database.url,
            "reads",
            1,
            database,
            None,
            database.acquire_timeout,
            true,
        )?;
        let replica_probe = Own::open(
            url,
            "replica",
            1,
            database,
            None,
            database.connect_timeout,
            false,
        )?;
        let limit = database.connect_timeout;
        let (primary_probe, replica_probe) = (Arc::new(primary_probe), Arc::new(replica_probe));
        let on_primary = primary_probe.clone();
        let primary_lsn = Sampler::spawn(move || {
            let primary = on_primary.clone();
            Box::pin(async move {
                let row = probe_row(&primary, PRIMARY_LSN, limit).await?;
                let lsn: Option<i64> = row.try_get(0).map_err(failed)?;
                lsn.and_then(|lsn| u64::try_from(lsn).ok()).ok_or_else(|| {
                    SampleError::Failed("the primary has no WAL position: it is a standby".into())
                })
            })
        });
        let on_replica = replica_probe.clone();
        let replayed_lsn = Sampler::spawn(move || {
            let replica = on_replica.clone();
            Box::pin(async move {
                let row = probe_row(&replica, REPLAYED_LSN, limit).await?;
                let in_recovery: bool = row.try_get(0).map_err(failed)?;
                let lsn: Option<i64> = row.try_get(1).map_err(failed)?;
                match (in_recovery, lsn.and_then(|lsn| u64::try_from(lsn).ok())) {
                    (true, Some(lsn)) => Ok(lsn),
                    _ => Err(SampleError::Failed(
                        "the server at AISTORY_DATABASE_READ_URL is not in recovery (promoted, \
                         or a primary): it is not a replica of the database"
                            .into(),
                    )),
                }
            })
        });
        crate::metrics::replica_up(true);
        Ok(Replica {
            primary,
            pool,
            probes: [primary_probe, replica_probe],
            primary_lsn,
            replayed_lsn,
            replayed: AtomicU64::new(0),
            down_until: AtomicU64::new(0),
            epoch: Instant::now(),
            health: Mutex::new(Health {
                generation: 0,
                backoff: FIRST_BACKOFF,
            }),
            max_wait: database.replica_max_wait,
            read_limit: database.connect_timeout,
        })
    }

    pub(super) fn pool(&self) -> &Own {
        &self.pool
    }

    /// Closes every connection to the replica, and the primary's probe.
    pub(super) async fn close(&self) {
        self.pool.close().await;
        for probe in &self.probes {
            probe.close().await;
        }
    }

    pub(super) async fn query_one(
        &self,
        statement: Statement,
    ) -> Result<Option<QueryResult>, DbErr> {
        let read = self
            .pool
            .run(statement.clone(), false, async |query, connection| {
                query.fetch_optional(connection).await
            });
        match self.on_replica(read).await {
            Some(row) => Ok(row.map(QueryResult::from)),
            None => self.primary.query_one_raw(statement).await,
        }
    }

    pub(super) async fn query_all(&self, statement: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let read = self
            .pool
            .run(statement.clone(), false, async |query, connection| {
                query.fetch_all(connection).await
            });
        match self.on_replica(read).await {
            Some(rows) => Ok(rows.into_iter().map(QueryResult::from).collect()),
            None => self.primary.query_all_raw(statement).await,
        }
    }

    /// The answer of `read` (not started yet) from the replica, when the read may go there and
    /// the replica answers; `None`: the caller sends it to the primary. Counted either way.
    async fn on_replica<T>(&self, read: impl Future<Output = Result<T, DbErr>>) -> Option<T> {
        let outcome = match self.route().await {
            Ok(()) => self.bounded(read).await,
            Err(reason) => Err(reason),
        };
        match outcome {
            Ok(answer) => {
                crate::metrics::replica_read("replica", "caught_up");
                Some(answer)
            }
            Err(reason) => {
                crate::metrics::replica_read("primary", reason);
                None
            }
        }
    }

    /// `read` on the replica, within the read limit; else why it goes to the primary
    /// (`replica_busy`, or `replica_failed`, marking the replica down unless the server merely
    /// refused that statement: the primary then answers it, refusal or not).
    async fn bounded<T>(
        &self,
        read: impl Future<Output = Result<T, DbErr>>,
    ) -> Result<T, &'static str> {
        let error = match tokio::time::timeout(self.read_limit, read).await {
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(error)) => error,
            Err(_) => {
                self.mark_down(&format!(
                    "a read got no answer within {} s",
                    self.read_limit.as_secs()
                ));
                return Err("replica_failed");
            }
        };
        let refused_statement = match &error {
            DbErr::ConnectionAcquire(ConnAcquireErr::Timeout) => return Err("replica_busy"),
            DbErr::Query(RuntimeErr::SqlxError(error)) => match error.as_ref() {
                sqlx::Error::Database(error) => !error
                    .try_downcast_ref::<PgDatabaseError>()
                    .is_some_and(|error| {
                        matches!(error.severity(), PgSeverity::Fatal | PgSeverity::Panic)
                    }),
                _ => false,
            },
            _ => false,
        };
        if !refused_statement {
            self.mark_down(&error.to_string());
        }
        Err("replica_failed")
    }

    /// `Ok` when a read that arrived now may go to the replica; else why it goes to the
    /// primary: `replica_down`, `replica_busy`, `no_target` (the primary's position could not
    /// be read), or `lagging`.
    async fn route(&self) -> Result<(), &'static str> {
        if self.is_down() {
            return Err("replica_down");
        }
        let started = Instant::now();
        let target = self.primary_lsn.sample().await.map_err(|_| "no_target")?;
        let deadline = tokio::time::Instant::now() + self.max_wait;
        let outcome = loop {
            if self.replayed.load(Ordering::Acquire) >= target {
                break Ok(());
            }
            let generation = self.health().generation;
            match tokio::time::timeout_at(deadline, self.replayed_lsn.sample()).await {
                Err(_) => break Err("lagging"),
                Ok(Err(SampleError::Busy)) => break Err("replica_busy"),
                Ok(Err(SampleError::Failed(error))) => {
                    self.mark_down(&error);
                    break Err("replica_down");
                }
                Ok(Ok(replayed)) => {
                    self.saw(generation, replayed);
                    if replayed >= target {
                        break Ok(());
                    }
                }
            }
            if tokio::time::Instant::now() + CATCH_UP_PAUSE >= deadline {
                break Err("lagging");
            }
            tokio::time::sleep(CATCH_UP_PAUSE).await;
        };
        if outcome == Err("lagging") {
            self.mark_down(&format!(
                "it had not replayed the primary's position of {} ms ago",
                self.max_wait.as_millis()
            ));
        }
        crate::metrics::replica_wait(started.elapsed());
        outcome
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn is_down(&self) -> bool {
        self.now_ms() < self.down_until.load(Ordering::Acquire)
    }

    /// A replay position sampled after `generation` was current: remembered (and the replica
    /// is up again) unless the replica was marked down since.
    fn saw(&self, generation: u64, replayed: u64) {
        let mut health = self.health();
        if health.generation != generation {
            return;
        }
        // Stored, not maximised: a lower position (a restarted standby) lowers it.
        self.replayed.store(replayed, Ordering::Release);
        if self.down_until.swap(0, Ordering::AcqRel) != 0 {
            health.backoff = FIRST_BACKOFF;
            drop(health);
            crate::metrics::replica_up(true);
            tracing::info!("the read replica answers again; hot reads may use it");
        }
    }

    fn mark_down(&self, why: &str) {
        let mut health = self.health();
        health.generation += 1;
        self.replayed.store(0, Ordering::Release);
        let now = self.now_ms();
        if now < self.down_until.load(Ordering::Acquire) {
            return;
        }
        let backoff = health.backoff;
        self.down_until.store(
            now.saturating_add(u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX))
                .max(1),
            Ordering::Release,
        );
        health.backoff = (backoff * 2).min(MAX_BACKOFF);
        drop(health);
        crate::metrics::replica_up(false);
        tracing::warn!(
            error = why,
            retry_in_ms = backoff.as_millis() as u64,
            "the read replica failed; hot reads go to the primary"
        );
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The one row of `sql` on `probe`, within `limit`.
async fn probe_row(
    probe: &Own,
    sql: &'static str,
    limit: Duration,
) -> Result<sqlx::postgres::PgRow, SampleError> {
    let statement = Statement::from_string(DbBackend::Postgres, sql);
    let row = probe.run(statement, false, async |query, connection| {
        query.fetch_one(connection).await
    });
    tokio::time::timeout(limit, row)
        .await
        .map_err(|_| SampleError::Failed(format!("no answer within {} s", limit.as_secs())))?
        .map_err(SampleError::from_db)
}

fn failed(error: sqlx::Error) -> SampleError {
    SampleError::Failed(error.to_string())
}

type Answer = oneshot::Sender<Result<u64, SampleError>>;
type Probe = dyn Fn() -> BoxFuture<'static, Result<u64, SampleError>> + Send + Sync;

/// One `SELECT` of a position at a time, shared by every read that asked before it was sent.
/// The task ends when the sampler is dropped.
struct Sampler {
    requests: mpsc::UnboundedSender<Answer>,
}

impl Sampler {
    fn spawn(
        probe: impl Fn() -> BoxFuture<'static, Result<u64, SampleError>> + Send + Sync + 'static,
    ) -> Sampler {
        let (requests, waiting) = mpsc::unbounded_channel();
        tokio::spawn(sample_for_waiting(waiting, Box::new(probe)));
        Sampler { requests }
    }

    /// A position read after this call began.
    async fn sample(&self) -> Result<u64, SampleError> {
        let stopped = || SampleError::Failed("the sampler has stopped".to_owned());
        let (answer, answered) = oneshot::channel();
        self.requests.send(answer).map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

async fn sample_for_waiting(mut waiting: mpsc::UnboundedReceiver<Answer>, probe: Box<Probe>) {
    let mut batch = Vec::new();
    while let Some(first) = waiting.recv().await {
        // Everyone who asked so far asked before this statement is sent.
        batch.push(first);
        while let Ok(more) = waiting.try_recv() {
            batch.push(more);
        }
        // Those who gave up waiting need no answer.
        batch.retain(|answer: &Answer| !answer.is_closed());
        if batch.is_empty() {
            continue;
        }
        let sample = probe().await;
        for answer in batch.drain(..) {
            let _ = answer.send(sample.clone());
        }
    }
}

//! Hot reads from a PostgreSQL streaming replica (`AISTORY_DATABASE_READ_URL`), never older
//! than the read itself.
//!
//! **The guarantee.** A read sent to the replica sees every transaction that had committed on
//! the primary when the read reached this process: its own user's writes from an earlier
//! request (on any API process), and everyone else's. No client cooperation, no sticky
//! sessions. How:
//!
//! 1. The read waits for a sample of the primary's `pg_current_wal_lsn()` taken *after* it
//!    arrived: the target. Every commit acknowledged before that moment ends at or before the
//!    target (a commit returns once its WAL is flushed, and the write position is past the
//!    flush position).
//! 2. It goes to the replica only once the replica's `pg_last_wal_replay_lsn()` is at or past
//!    the target: the commits are replayed, so the snapshot the read then takes contains them.
//! 3. Otherwise, after waiting [`settings::DatabaseSettings::replica_max_wait`] for the replica
//!    to catch up, it goes to the primary (`lagging`).
//!
//! Samples are shared: one `SELECT` is in flight on each server at a time, and it answers
//! every read that arrived before it was sent ([`Sampler`]). Under load a round trip to the
//! primary serves a whole batch of reads, so the primary sees one tiny statement per round
//! trip instead of every read; the last replay position is remembered, so while nothing is
//! written the replica is not asked again.
//!
//! **Failures.** A replica that refuses connections, fails a statement, stops answering or
//! is not a standby (`pg_last_wal_replay_lsn()` is NULL: promoted, or the URL names a primary)
//! is marked down; reads go to the primary for 1 s, doubling to 30 s while it stays down, and
//! the read that failed is sent to the primary at once: clients see no error. The counter
//! `aistory_db_replica_reads_total{served_by, reason}` and the gauge `aistory_db_replica_up`
//! say where reads go and why.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use sea_orm::sqlx::postgres::{PgDatabaseError, PgSeverity};
use sea_orm::sqlx::{self, Row as _};
use sea_orm::{DbBackend, DbErr, QueryResult, RuntimeErr, Statement};
use tokio::sync::{mpsc, oneshot};

use super::{Inner, Own};
use std::sync::Arc;

/// The write position of the primary, in bytes since `0/0`.
const PRIMARY_LSN: &str = "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint";
/// The replay position of a standby, in bytes since `0/0`; NULL on a server not in recovery.
const REPLAYED_LSN: &str = "SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint";

/// How long the replica is left alone after it failed, at first and at most.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Between two looks at a replica that has not caught up yet.
const CATCH_UP_PAUSE: Duration = Duration::from_millis(1);

pub(super) struct Replica {
    primary: Inner,
    pool: Arc<Own>,
    primary_lsn: Sampler,
    replayed_lsn: Sampler,
    /// The highest replay position seen since the replica was last marked down.
    replayed: AtomicU64,
    health: Mutex<Health>,
    max_wait: Duration,
}

struct Health {
    /// Reads stay on the primary until then.
    down_until: Option<Instant>,
    /// How long the next failure keeps the replica down.
    backoff: Duration,
}

impl Replica {
    /// The replica reached through `pool`, with `primary` for the targets and the fallback.
    pub(super) fn start(
        primary: Inner,
        pool: Arc<Own>,
        database: &settings::DatabaseSettings,
    ) -> Replica {
        let limit = database.connect_timeout;
        let on_primary = primary.clone();
        let primary_lsn = Sampler::spawn(move || {
            let primary = on_primary.clone();
            Box::pin(async move {
                let statement = Statement::from_string(DbBackend::Postgres, PRIMARY_LSN);
                let row = tokio::time::timeout(limit, primary.query_one_raw(statement))
                    .await
                    .map_err(|_| format!("no answer within {} s", limit.as_secs()))?
                    .map_err(|error| error.to_string())?
                    .ok_or("no row")?;
                let lsn: Option<i64> =
                    row.try_get_by_index(0).map_err(|error| error.to_string())?;
                lsn.and_then(|lsn| u64::try_from(lsn).ok())
                    .ok_or_else(|| "pg_current_wal_lsn() is NULL: the primary is a standby".into())
            })
        });
        let on_replica = pool.clone();
        let replayed_lsn = Sampler::spawn(move || {
            let replica = on_replica.clone();
            Box::pin(async move {
                let statement = Statement::from_string(DbBackend::Postgres, REPLAYED_LSN);
                let row = tokio::time::timeout(
                    limit,
                    replica.run(statement, true, async |query, connection| {
                        query.fetch_one(connection).await
                    }),
                )
                .await
                .map_err(|_| format!("no answer within {} s", limit.as_secs()))?
                .map_err(|error| error.to_string())?;
                let lsn: Option<i64> = row.try_get(0).map_err(|error| error.to_string())?;
                lsn.and_then(|lsn| u64::try_from(lsn).ok()).ok_or_else(|| {
                    "pg_last_wal_replay_lsn() is NULL: the server at AISTORY_DATABASE_READ_URL \
                     is not a standby (promoted, or a primary)"
                        .into()
                })
            })
        });
        crate::metrics::replica_up(true);
        Replica {
            primary,
            pool,
            primary_lsn,
            replayed_lsn,
            replayed: AtomicU64::new(0),
            health: Mutex::new(Health {
                down_until: None,
                backoff: FIRST_BACKOFF,
            }),
            max_wait: database.replica_max_wait,
        }
    }

    pub(super) fn pool(&self) -> &Own {
        &self.pool
    }

    pub(super) async fn query_one(
        &self,
        statement: Statement,
    ) -> Result<Option<QueryResult>, DbErr> {
        if let Err(reason) = self.route().await {
            crate::metrics::replica_read("primary", reason);
            return self.primary.query_one_raw(statement).await;
        }
        let sent = self
            .pool
            .run(statement.clone(), true, async |query, connection| {
                query.fetch_optional(connection).await
            })
            .await;
        match sent {
            Ok(row) => {
                crate::metrics::replica_read("replica", "caught_up");
                Ok(row.map(QueryResult::from))
            }
            Err(error) => {
                self.failed(&error);
                crate::metrics::replica_read("primary", "replica_failed");
                self.primary.query_one_raw(statement).await
            }
        }
    }

    pub(super) async fn query_all(&self, statement: Statement) -> Result<Vec<QueryResult>, DbErr> {
        if let Err(reason) = self.route().await {
            crate::metrics::replica_read("primary", reason);
            return self.primary.query_all_raw(statement).await;
        }
        let sent = self
            .pool
            .run(statement.clone(), true, async |query, connection| {
                query.fetch_all(connection).await
            })
            .await;
        match sent {
            Ok(rows) => {
                crate::metrics::replica_read("replica", "caught_up");
                Ok(rows.into_iter().map(QueryResult::from).collect())
            }
            Err(error) => {
                self.failed(&error);
                crate::metrics::replica_read("primary", "replica_failed");
                self.primary.query_all_raw(statement).await
            }
        }
    }

    /// `Ok` when a read that arrived now may go to the replica; else why it goes to the
    /// primary: `replica_down`, `no_target` (the primary's position could not be read), or
    /// `lagging`.
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
            match tokio::time::timeout_at(deadline, self.replayed_lsn.sample()).await {
                Err(_) => break Err("lagging"),
                Ok(Err(error)) => {
                    self.mark_down(&error);
                    break Err("replica_down");
                }
                Ok(Ok(replayed)) => {
                    self.replayed.fetch_max(replayed, Ordering::AcqRel);
                    self.mark_up();
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
        crate::metrics::replica_wait(started.elapsed());
        outcome
    }

    fn is_down(&self) -> bool {
        let health = self.health();
        health
            .down_until
            .is_some_and(|until| Instant::now() < until)
    }

    /// A read sent to the replica failed: unless the server merely refused that statement
    /// (the same statement would fail on the primary too, which then answers), the replica is
    /// marked down.
    fn failed(&self, error: &DbErr) {
        let refused_statement = match error {
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
    }

    fn mark_down(&self, why: &str) {
        // After a restart a standby may start from an older position than it had replayed.
        self.replayed.store(0, Ordering::Release);
        let mut health = self.health();
        let now = Instant::now();
        if health.down_until.is_some_and(|until| now < until) {
            return;
        }
        let backoff = health.backoff;
        health.down_until = Some(now + backoff);
        health.backoff = (backoff * 2).min(MAX_BACKOFF);
        drop(health);
        crate::metrics::replica_up(false);
        tracing::warn!(
            error = why,
            retry_in_ms = backoff.as_millis() as u64,
            "the read replica failed; hot reads go to the primary"
        );
    }

    fn mark_up(&self) {
        let mut health = self.health();
        if health.down_until.is_none() {
            return;
        }
        health.down_until = None;
        health.backoff = FIRST_BACKOFF;
        drop(health);
        crate::metrics::replica_up(true);
        tracing::info!("the read replica answers again; hot reads may use it");
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

type Probe = dyn Fn() -> BoxFuture<'static, Result<u64, String>> + Send + Sync;

/// One `SELECT` of a position at a time, shared by every read that asked before it was sent.
/// The task ends when the sampler is dropped.
struct Sampler {
    requests: mpsc::UnboundedSender<oneshot::Sender<Result<u64, String>>>,
}

impl Sampler {
    fn spawn(
        probe: impl Fn() -> BoxFuture<'static, Result<u64, String>> + Send + Sync + 'static,
    ) -> Sampler {
        let (requests, waiting) = mpsc::unbounded_channel();
        tokio::spawn(sample_for_waiting(waiting, Box::new(probe)));
        Sampler { requests }
    }

    /// A position read after this call began.
    async fn sample(&self) -> Result<u64, String> {
        let (answer, answered) = oneshot::channel();
        self.requests
            .send(answer)
            .map_err(|_| "the sampler has stopped".to_owned())?;
        answered
            .await
            .map_err(|_| "the sampler has stopped".to_owned())?
    }
}

async fn sample_for_waiting(
    mut waiting: mpsc::UnboundedReceiver<oneshot::Sender<Result<u64, String>>>,
    probe: Box<Probe>,
) {
    let mut batch = Vec::new();
    while let Some(first) = waiting.recv().await {
        // Everyone who asked so far asked before this statement is sent.
        batch.push(first);
        while let Ok(more) = waiting.try_recv() {
            batch.push(more);
        }
        let sample = probe().await;
        for answer in batch.drain(..) {
            let _ = answer.send(sample.clone());
        }
    }
}

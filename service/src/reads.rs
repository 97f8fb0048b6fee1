//! The connections of the busiest reads (one photo, a page of photos).
//!
//! sqlx's pool tests every connection on its way back (`ping`: a `Sync` message and a wait for
//! the server's answer), so each statement sent through the pool costs the database two round
//! trips. `bench db_loop` measured it on PostgreSQL: one prepared `SELECT` per acquire reaches
//! 44% of `pgbench -S`, the same `SELECT` on connections held by their tasks 89%.
//!
//! On PostgreSQL the hot reads therefore run on connections of their own, lent by a
//! [`deadpool`] pool that checks a connection without asking the server: a connection whose
//! last statement did not end cleanly (an I/O or protocol error, a fatal server error, a
//! request cancelled half-way) is discarded and replaced; one last lent [`PING_IF_IDLE_FOR`] ago
//! or more is pinged first, as the main pool does; one last lent [`IDLE_RECYCLE`] ago is closed.
//! Connections are lent last-in first-out, so a quiet pool's extra connections do go idle.
//! Getting a connection (waiting, pinging, connecting) is bounded by the acquire time-out, as
//! on the main pool. The connections show as `aistory-reads` in `pg_stat_activity` (unless the
//! URL names an `application_name`). SeaORM still builds every statement and maps every row:
//! only the connection that carries them differs. On SQLite and MySQL, and when
//! `AISTORY_DB_READ_POOL_SIZE` is 0, [`ReadPool`] is the main pool itself.
//!
//! With `AISTORY_DATABASE_READ_URL`, the reads go to a streaming replica when it has replayed
//! every write they must see, and to these connections otherwise ([`replica`]).
//!
//! The three hottest reads (one photo, a page of photos, one account: [`HotReads`]) go further
//! when there is no replica: one tokio-postgres connection per thread, pipelined, rows decoded
//! by position ([`pipelined`]).
//!
//! Only single statements outside any transaction belong here: a read that must see the
//! request's own writes (in its own transaction) goes through the unit of work.

use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{
    self, Metrics, PoolError, QueueMode, RecycleError, RecycleResult, TimeoutType,
};
use entity::{photo, user};
use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection, PgDatabaseError, PgSeverity};
use sea_orm::sqlx::{self, ConnectOptions as _, Connection as _};
use sea_orm::{
    ConnAcquireErr, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, ExecResult,
    FromQueryResult, QueryResult, RuntimeErr, Statement,
};
use sea_query_sqlx::SqlxValues;
use settings::DatabaseSettings;
use settings::{IDLE_RECYCLE, PING_IF_IDLE_FOR};

use crate::observe::{Instruments, StatementObserver};

mod pipelined;
mod replica;

/// Where the hot reads run: the main pool, or (PostgreSQL) connections of their own; and,
/// when `AISTORY_DATABASE_READ_URL` names one, a streaming replica (see [`replica`]).
/// Cheap to clone. Implements [`ConnectionTrait`], so any SeaORM query runs on it.
#[derive(Clone)]
pub struct ReadPool {
    primary: Inner,
    replica: Option<Arc<replica::Replica>>,
}

#[derive(Clone)]
enum Inner {
    Shared(DatabaseConnection),
    Own(Arc<Own>),
}

struct Own {
    pool: managed::Pool<Manager>,
    /// The hot reads' connections, one per thread (primary only; see [`pipelined`]).
    pipelined: Option<pipelined::Pipelined>,
    /// `reads` or `replica`: the `pool` label of its metrics.
    name: &'static str,
    instruments: Instruments,
    acquire_timeout: Duration,
    /// Whether opening a connection is tried again, until the acquire time-out, while the
    /// server refuses (the primary's restart); a replica's refusal is answered at once, so that
    /// the read goes to the primary instead.
    retry_refused: bool,
}

/// The name the read connections give themselves (`pg_stat_activity.application_name`).
pub const APPLICATION_NAME: &str = "aistory-reads";

impl ReadPool {
    /// Reads on `pool` itself (no connections of their own).
    pub fn shared(pool: &DatabaseConnection) -> ReadPool {
        ReadPool {
            primary: Inner::Shared(pool.clone()),
            replica: None,
        }
    }

    /// The read pool for `database`: own connections on PostgreSQL when `read_pool_size` > 0
    /// (opened on first use), else `shared`; and the replica at `read_url`, if set. `observer`
    /// sees every statement, as on the main pool. Call from within a Tokio runtime: a task
    /// closes connections idle too long.
    pub fn new(
        shared: &DatabaseConnection,
        database: &DatabaseSettings,
        observer: Option<StatementObserver>,
    ) -> Result<ReadPool, DbErr> {
        let postgres = shared.get_database_backend() == DbBackend::Postgres;
        let primary = if database.read_pool_size == 0 || !postgres {
            Inner::Shared(shared.clone())
        } else {
            let mut own = Own::open(
                &database.url,
                "reads",
                database.read_pool_size,
                database,
                observer.clone(),
                database.acquire_timeout,
                true,
            )?;
            own.pipelined =
                pipelined::Pipelined::new(&database.url, database, own.instruments.clone());
            Inner::Own(Arc::new(own))
        };
        let replica = match &database.read_url {
            Some(url) if postgres => Some(Arc::new(replica::Replica::open(
                primary.clone(),
                url,
                database,
                observer,
            )?)),
            _ => None,
        };
        Ok(ReadPool { primary, replica })
    }

    /// Records the connection gauges of the main pool `main` and of these reads' own pool
    /// (`crate::metrics::connections`). Read when metrics are scraped.
    pub fn record_pool_metrics(&self, main: &DatabaseConnection) {
        let (size, idle) = match main.get_database_backend() {
            DbBackend::Postgres => {
                let pool = main.get_postgres_connection_pool();
                (pool.size(), pool.num_idle())
            }
            DbBackend::MySql => {
                let pool = main.get_mysql_connection_pool();
                (pool.size(), pool.num_idle())
            }
            _ => {
                let pool = main.get_sqlite_connection_pool();
                (pool.size(), pool.num_idle())
            }
        };
        let idle = idle as f64;
        crate::metrics::connections("main", (f64::from(size) - idle).max(0.0), idle, None);
        let own = match &self.primary {
            Inner::Own(own) => Some(&**own),
            Inner::Shared(_) => None,
        };
        for own in own
            .into_iter()
            .chain(self.replica.as_ref().map(|r| r.pool()))
        {
            let status = own.pool.status();
            crate::metrics::connections(
                own.name,
                status.size.saturating_sub(status.available) as f64,
                status.available as f64,
                Some(status.waiting as f64),
            );
        }
    }

    /// The own connections' numbers: (open, idle, tasks waiting for one); `None` when the
    /// reads share the main pool.
    pub fn status(&self) -> Option<(usize, usize, usize)> {
        match &self.primary {
            Inner::Shared(_) => None,
            Inner::Own(own) => {
                let status = own.pool.status();
                Some((status.size, status.available, status.waiting))
            }
        }
    }

    /// Whether the reads have connections of their own (else they share the main pool).
    pub fn is_own(&self) -> bool {
        matches!(self.primary, Inner::Own(_))
    }

    /// Whether hot reads may go to a replica (`AISTORY_DATABASE_READ_URL`).
    pub fn has_replica(&self) -> bool {
        self.replica.is_some()
    }

    /// Closes the own connections, telling the server (the main pool is closed by its owner).
    /// Connections still lent are dropped when they come back.
    pub async fn close(&self) {
        if let Inner::Own(own) = &self.primary {
            own.close().await;
        }
        if let Some(replica) = &self.replica {
            replica.close().await;
        }
    }
}

impl Own {
    /// A pool of up to `size` connections to `url` (opened on first use), named `name` in
    /// metrics, with `database`'s time-outs.
    fn open(
        url: &str,
        name: &'static str,
        size: u32,
        database: &DatabaseSettings,
        observer: Option<StatementObserver>,
        acquire_timeout: Duration,
        retry_refused: bool,
    ) -> Result<Own, DbErr> {
        let options: PgConnectOptions = url.parse().map_err(|error: sqlx::Error| {
            DbErr::Custom(format!("the database URL ({name}): {error}"))
        })?;
        let options = match options.get_application_name() {
            Some(_) => options,
            None => options.application_name(APPLICATION_NAME),
        };
        let options = if database.echo {
            options.log_statements(tracing::log::LevelFilter::Info)
        } else {
            options.disable_statement_logging()
        };
        let pool = managed::Pool::builder(Manager { options })
            .max_size(size as usize)
            .wait_timeout(Some(acquire_timeout))
            .create_timeout(Some(database.connect_timeout))
            .recycle_timeout(Some(database.connect_timeout))
            .queue_mode(QueueMode::Lifo)
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|error| DbErr::Custom(format!("the {name} pool: {error}")))?;
        tokio::spawn(close_idle(pool.weak()));
        Ok(Own {
            pool,
            pipelined: None,
            name,
            instruments: Instruments {
                slow: database.slow_statement,
                observer,
            },
            acquire_timeout,
            retry_refused,
        })
    }

    /// Closes the connections, telling the server; connections still lent are dropped when
    /// they come back.
    async fn close(&self) {
        if let Some(pipelined) = &self.pipelined {
            pipelined.close();
        }
        let idle = self.pool.retain(|_, _| false).removed;
        self.pool.close();
        close_all(idle).await;
    }
}

/// Says goodbye on each connection (else the server logs an unexpected EOF), briefly.
async fn close_all(connections: Vec<Held>) {
    for held in connections {
        let _ = tokio::time::timeout(Duration::from_secs(1), held.connection.close()).await;
    }
}

/// Every minute, closes the connections idle for [`IDLE_RECYCLE`]; ends with the pool.
async fn close_idle(pool: managed::WeakPool<Manager>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        if pool.is_closed() {
            return;
        }
        let idle = pool
            .retain(|_, metrics| metrics.last_used() < IDLE_RECYCLE)
            .removed;
        drop(pool);
        close_all(idle).await;
    }
}

/// A connection and whether its last statement ended cleanly.
struct Held {
    connection: PgConnection,
    clean: bool,
}

struct Manager {
    options: PgConnectOptions,
}

impl managed::Manager for Manager {
    type Type = Held;
    type Error = sqlx::Error;

    // Connecting and pinging are rare next to lending, and their futures are large (sqlx's
    // connect alone is kilobytes): boxed, they stay out of every `get()`'s state, which each
    // read's future holds and moves.
    async fn create(&self) -> Result<Held, sqlx::Error> {
        Ok(Held {
            connection: Box::pin(self.options.connect()).await?,
            clean: true,
        })
    }

    async fn recycle(&self, held: &mut Held, metrics: &Metrics) -> RecycleResult<sqlx::Error> {
        if !held.clean {
            return Err(RecycleError::message(
                "its last statement did not end cleanly",
            ));
        }
        let idle = metrics.last_used();
        if idle >= IDLE_RECYCLE {
            return Err(RecycleError::message("idle too long"));
        }
        if idle >= PING_IF_IDLE_FOR {
            Box::pin(held.connection.ping())
                .await
                .map_err(RecycleError::Backend)?;
        }
        Ok(())
    }
}

impl Own {
    /// A connection, within the acquire time-out (deadpool's own time-outs bound each step).
    /// While the server refuses connections (a restart), opening one is tried again, as the
    /// main pool does, until the time-out; then the last refusal is the answer.
    async fn connection(&self) -> Result<managed::Object<Manager>, DbErr> {
        let started = std::time::Instant::now();
        let held = self.acquire().await;
        crate::metrics::acquired(self.name, started.elapsed(), held.is_ok());
        held
    }

    async fn acquire(&self) -> Result<managed::Object<Manager>, DbErr> {
        let deadline = tokio::time::Instant::now() + self.acquire_timeout;
        let mut pause = Duration::from_millis(10);
        loop {
            let error = match tokio::time::timeout_at(deadline, self.pool.get()).await {
                Err(_) => return Err(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)),
                Ok(Ok(held)) => return Ok(held),
                Ok(Err(error)) => error,
            };
            if self.retry_refused
                && matches!(error, PoolError::Backend(_))
                && tokio::time::Instant::now() + pause < deadline
            {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(250));
                continue;
            }
            return Err(match error {
                PoolError::Timeout(TimeoutType::Wait) => {
                    DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)
                }
                PoolError::Closed => DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
                PoolError::Backend(error) => DbErr::Conn(RuntimeErr::SqlxError(Arc::new(error))),
                other => DbErr::Conn(RuntimeErr::Internal(format!(
                    "no connection for the read: {other}"
                ))),
            });
        }
    }

    /// Runs `statement` on a connection of the pool, marking the connection unusable unless
    /// the statement ends cleanly (a cancelled future leaves it marked). When the connection
    /// turns out broken (the server restarted, a proxy cut it), the idle connections are
    /// dropped too, being likely just as dead, and a `read` is sent once more on a new one.
    async fn run<T>(
        &self,
        statement: Statement,
        read: bool,
        send: impl AsyncFn(
            sqlx::query::Query<'_, sqlx::Postgres, SqlxValues>,
            &mut PgConnection,
        ) -> Result<T, sqlx::Error>,
    ) -> Result<T, DbErr> {
        let values = statement.values.unwrap_or(sea_orm::Values(Vec::new()));
        let mut retried = !read;
        loop {
            let mut held = self.connection().await?;
            held.clean = false;
            let query = sqlx::query_with(
                sqlx::AssertSqlSafe(statement.sql.as_str()),
                SqlxValues(values.clone()),
            );
            let started = std::time::Instant::now();
            let result = send(query, &mut held.connection).await;
            self.instruments.statement(
                self.name,
                &statement.sql,
                started.elapsed(),
                result.is_ok(),
            );
            held.clean = match &result {
                Ok(_) => true,
                // A statement the server refused leaves the connection ready for the next one,
                // unless the server ended the session (FATAL: 57P01 on a restart, ...).
                Err(sqlx::Error::Database(error)) => !error
                    .try_downcast_ref::<PgDatabaseError>()
                    .is_some_and(|error| {
                        matches!(error.severity(), PgSeverity::Fatal | PgSeverity::Panic)
                    }),
                Err(_) => false,
            };
            if !held.clean {
                drop(held);
                self.pool.retain(|_, _| false);
                if !retried {
                    retried = true;
                    continue;
                }
            }
            return result.map_err(|error| DbErr::Query(RuntimeErr::SqlxError(Arc::new(error))));
        }
    }
}

impl Inner {
    fn get_database_backend(&self) -> DbBackend {
        match self {
            Inner::Shared(pool) => pool.get_database_backend(),
            Inner::Own(_) => DbBackend::Postgres,
        }
    }

    async fn execute_raw(&self, statement: Statement) -> Result<ExecResult, DbErr> {
        match self {
            Inner::Shared(pool) => pool.execute_raw(statement).await,
            Inner::Own(own) => own
                .run(statement, false, async |query, connection| {
                    query.execute(connection).await
                })
                .await
                .map(ExecResult::from),
        }
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        match self {
            Inner::Shared(pool) => pool.execute_unprepared(sql).await,
            Inner::Own(_) => Err(DbErr::Custom(
                "the read pool runs SeaORM statements only".to_owned(),
            )),
        }
    }

    async fn query_one_raw(&self, statement: Statement) -> Result<Option<QueryResult>, DbErr> {
        match self {
            Inner::Shared(pool) => pool.query_one_raw(statement).await,
            Inner::Own(own) => own
                .run(statement, true, async |query, connection| {
                    query.fetch_optional(connection).await
                })
                .await
                .map(|row| row.map(QueryResult::from)),
        }
    }

    async fn query_all_raw(&self, statement: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match self {
            Inner::Shared(pool) => pool.query_all_raw(statement).await,
            Inner::Own(own) => own
                .run(statement, true, async |query, connection| {
                    query.fetch_all(connection).await
                })
                .await
                .map(|rows| rows.into_iter().map(QueryResult::from).collect()),
        }
    }
}

impl ReadPool {
    /// The pipelined connections, when the hot reads use them (own reads on PostgreSQL, no
    /// replica to route to, a URL they can take).
    fn pipelined(&self) -> Option<&pipelined::Pipelined> {
        match (&self.primary, &self.replica) {
            (Inner::Own(own), None) => own.pipelined.as_ref(),
            _ => None,
        }
    }
}

/// The hottest reads' rows (photos, an account), decoded by position
/// ([`crate::statements`]): on any SeaORM connection through SeaORM, on the [`ReadPool`]
/// through its pipelined connections where it has them.
#[async_trait::async_trait]
pub trait HotReads: ConnectionTrait + Sync {
    /// The photos `statement` selects (every column of `photos`, in `photo::Column` order).
    async fn photo_rows(&self, statement: Statement) -> Result<Vec<photo::Model>, DbErr> {
        crate::statements::photos_from_rows(&self.query_all_raw(statement).await?)
    }

    /// The account `statement` selects (every column of `users`, in `user::Column` order).
    async fn user_row(&self, statement: Statement) -> Result<Option<user::Model>, DbErr> {
        match self.query_one_raw(statement).await? {
            Some(row) => Ok(Some(user::Model::from_query_result(&row, "")?)),
            None => Ok(None),
        }
    }
}

impl HotReads for DatabaseConnection {}
impl HotReads for sea_orm::DatabaseTransaction {}

#[async_trait::async_trait]
impl HotReads for ReadPool {
    async fn photo_rows(&self, statement: Statement) -> Result<Vec<photo::Model>, DbErr> {
        if let Some(pipelined) = self.pipelined()
            && let Some(rows) = pipelined.query(&statement).await?
        {
            return crate::statements::photos_from_pipelined(&rows);
        }
        crate::statements::photos_from_rows(&self.query_all_raw(statement).await?)
    }

    async fn user_row(&self, statement: Statement) -> Result<Option<user::Model>, DbErr> {
        if let Some(pipelined) = self.pipelined()
            && let Some(rows) = pipelined.query(&statement).await?
        {
            return rows
                .first()
                .map(crate::statements::user_from_pipelined)
                .transpose();
        }
        match self.query_one_raw(statement).await? {
            Some(row) => Ok(Some(user::Model::from_query_result(&row, "")?)),
            None => Ok(None),
        }
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for ReadPool {
    fn get_database_backend(&self) -> DbBackend {
        self.primary.get_database_backend()
    }

    async fn execute_raw(&self, statement: Statement) -> Result<ExecResult, DbErr> {
        self.primary.execute_raw(statement).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.primary.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, statement: Statement) -> Result<Option<QueryResult>, DbErr> {
        match &self.replica {
            // Boxed: the replica's routing is a larger future than a read on the primary, which
            // would otherwise carry (and move) that size on every deployment without one.
            Some(replica) => Box::pin(replica.query_one(statement)).await,
            None => self.primary.query_one_raw(statement).await,
        }
    }

    async fn query_all_raw(&self, statement: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match &self.replica {
            Some(replica) => Box::pin(replica.query_all(statement)).await,
            None => self.primary.query_all_raw(statement).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every read's future holds the pool's `get()` future, and is moved (into the boxed
    /// `ConnectionTrait` future and on) on every request: connecting (sqlx's connect future is
    /// kilobytes) must stay boxed out of it. 11 KiB before it was.
    #[test]
    fn a_read_is_a_small_future() {
        let settings = DatabaseSettings::for_url("postgres://u@127.0.0.1:1/db");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let own = Own::open(
                &settings.url,
                "reads",
                2,
                &settings,
                None,
                settings.acquire_timeout,
                true,
            )
            .expect("opened without connecting");
            let reads = Inner::Own(Arc::new(own));
            let statement = Statement::from_string(DbBackend::Postgres, "SELECT 1");
            let one = reads.query_one_raw(statement.clone());
            let all = reads.query_all_raw(statement);
            for (what, size) in [
                ("one", std::mem::size_of_val(&one)),
                ("all", std::mem::size_of_val(&all)),
            ] {
                assert!(size <= 2048, "a read ({what}) is a future of {size} bytes");
            }
        });
    }
}

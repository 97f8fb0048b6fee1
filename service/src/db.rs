//! The database utilities of the original guide that need no migrations, under the same
//! names: [`verify_database_connection`], [`close_db_connection`] and
//! [`get_db`](crate::get_db). `init_db` and `create_database_tables` apply or check
//! migrations, so they live with the server (`api::database`), the one layer that knows them.

use std::time::Duration;

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbErr, Statement};
use settings::DatabaseSettings;
use thiserror::Error;

/// Why the database layer could not start. Messages are for the operator.
#[derive(Debug, Error)]
pub enum DbError {
    /// The server could not be reached or refused us.
    #[error("{0}")]
    Connect(String),
    /// Production with migrations not applied: we never change a production schema ourselves.
    #[error(
        "the database schema is out of date: {count} migration(s) pending:\n{list}\n\
         Apply them with `cargo run -p migration -- up` (with the same AISTORY_* settings), \
         then start the server again",
        count = .0.len(),
        list = .0.iter().map(|name| format!("  - {name}")).collect::<Vec<_>>().join("\n")
    )]
    PendingMigrations(Vec<String>),
    /// An operation not allowed in this environment.
    #[error("{0}")]
    Refused(String),
    /// Applying migrations failed.
    #[error("applying migrations failed: {0}")]
    Migration(#[source] DbErr),
    /// Reading which migrations are applied failed (nothing was changed).
    #[error("reading the applied migrations (seaql_migrations) failed: {0}")]
    MigrationState(#[source] DbErr),
}

/// Opens the pool, bounded by the connect time-out, with a message that says what was tried.
pub async fn connect(database: &DatabaseSettings) -> Result<DatabaseConnection, DbError> {
    // sqlx's own time-out covers each attempt; this bounds the whole call, retries included.
    let limit = database.connect_timeout + Duration::from_millis(500);
    match tokio::time::timeout(limit, Database::connect(database.connect_options())).await {
        Ok(Ok(mut db)) => {
            crate::observe::instrument(
                &mut db,
                crate::observe::Instruments::from_settings(database),
            );
            Ok(db)
        }
        Ok(Err(error)) => Err(DbError::Connect(database.connection_failure(&error))),
        Err(_) => Err(DbError::Connect(database.connection_failure(&format!(
            "no answer within {} s",
            limit.as_secs_f32()
        )))),
    }
}

/// `SELECT 1`, bounded by `timeout`: proves a connection can be had and the server answers.
pub async fn verify_database_connection(
    db: &DatabaseConnection,
    timeout: Duration,
) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let query = db.query_one_raw(Statement::from_string(backend, "SELECT 1"));
    match tokio::time::timeout(timeout, query).await {
        Ok(Ok(Some(_))) => Ok(()),
        Ok(Ok(None)) => Err(DbErr::Custom("SELECT 1 returned no row".to_owned())),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(DbErr::Custom(format!(
            "the database did not answer SELECT 1 within {} ms",
            timeout.as_millis()
        ))),
    }
}

/// Closes every pooled connection; waits for connections in use to be returned first.
pub async fn close_db_connection(db: DatabaseConnection) -> Result<(), DbErr> {
    db.close().await
}

/// Begins a transaction meant to write. On SQLite it starts `IMMEDIATE`, taking the write
/// lock up front: a deferred transaction that reads and then writes fails at once with
/// "database is locked" when another writer got in between, and the busy time-out cannot
/// help it; an immediate one waits its turn. Other backends begin as usual.
pub async fn begin_write(pool: &DatabaseConnection) -> Result<sea_orm::DatabaseTransaction, DbErr> {
    use sea_orm::{SqliteTransactionMode, TransactionOptions, TransactionTrait};
    let waiting = crate::metrics::Waiting::start();
    let started = std::time::Instant::now();
    let txn = pool
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..Default::default()
        })
        .await;
    drop(waiting);
    crate::metrics::acquired("main", started.elapsed(), txn.is_ok());
    txn
}

/// The type a SUM (or another aggregate) is cast to so it decodes as an `i64` on every backend:
/// PostgreSQL's SUM of integers is a `numeric`, MySQL's a `DECIMAL` (cast to `SIGNED` there).
pub fn integer_type(backend: sea_orm::DbBackend) -> sea_orm::sea_query::Alias {
    sea_orm::sea_query::Alias::new(if backend == sea_orm::DbBackend::MySql {
        "signed"
    } else {
        "bigint"
    })
}

//! The database utilities of the original guide, under the same names: [`init_db`],
//! [`verify_database_connection`], [`close_db_connection`], [`create_database_tables`] and
//! [`get_db`](crate::get_db).

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbErr, Statement};
use settings::{DatabaseSettings, Environment, redact_url};
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
}

/// Builds the connection pool for the selected environment, verifies it, and brings the
/// schema in line: applied automatically in development and testing, checked (never changed)
/// in production.
#[tracing::instrument(skip_all, fields(database = %redact_url(&database.url)))]
pub async fn init_db(
    database: &DatabaseSettings,
    environment: Environment,
) -> Result<DatabaseConnection, DbError> {
    let db = connect(database).await?;
    verify_database_connection(&db, database.connect_timeout)
        .await
        .map_err(|error| DbError::Connect(database.connection_failure(&error)))?;
    match environment {
        Environment::Production => {
            let pending = migration::pending_migrations(&db)
                .await
                .map_err(DbError::Migration)?;
            if !pending.is_empty() {
                db.close().await.ok();
                return Err(DbError::PendingMigrations(pending));
            }
        }
        Environment::Development | Environment::Testing => {
            let applied = create_database_tables(&db, database, environment).await?;
            if !applied.is_empty() {
                tracing::info!(?applied, "applied pending migrations");
            }
        }
    }
    Ok(db)
}

/// Opens the pool, bounded by the connect time-out, with a message that says what was tried.
pub async fn connect(database: &DatabaseSettings) -> Result<DatabaseConnection, DbError> {
    // sqlx's own time-out covers each attempt; this bounds the whole call, retries included.
    let limit = database.connect_timeout + Duration::from_millis(500);
    match tokio::time::timeout(limit, Database::connect(database.connect_options())).await {
        Ok(Ok(db)) => Ok(db),
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

/// Applies pending migrations (the tables appear on first run), under the database-wide
/// migration lock so several processes may start at once. Development and testing only:
/// production schemas change through `cargo run -p migration -- up`, never at start-up.
/// Returns the names of the migrations applied.
pub async fn create_database_tables(
    db: &DatabaseConnection,
    database: &DatabaseSettings,
    environment: Environment,
) -> Result<Vec<String>, DbError> {
    if environment == Environment::Production {
        return Err(DbError::Refused(
            "create_database_tables refuses to run in production: apply migrations with \
             `cargo run -p migration -- up`"
                .to_owned(),
        ));
    }
    if database.is_sqlite() {
        // SQLite locks the file itself, and an in-memory database exists only on `db`'s own
        // connection: migrate through the pool.
        return apply_pending(db).await.map_err(DbError::Migration);
    }
    // Advisory locks belong to a session: hold the lock and migrate on one dedicated connection.
    let options = migration::single_connection(database.connect_options());
    let lock_connection = Database::connect(options)
        .await
        .map_err(|error| DbError::Connect(database.connection_failure(&error)))?;
    let result = migration::with_migration_lock(&lock_connection, apply_pending).await;
    lock_connection.close().await.ok();
    result.map_err(DbError::Migration)
}

async fn apply_pending(db: &DatabaseConnection) -> Result<Vec<String>, DbErr> {
    let pending = migration::pending_migrations(db).await?;
    if !pending.is_empty() {
        Migrator::up(db, None).await?;
    }
    Ok(pending)
}

/// Begins a transaction meant to write. On SQLite it starts `IMMEDIATE`, taking the write
/// lock up front: a deferred transaction that reads and then writes fails at once with
/// "database is locked" when another writer got in between, and the busy time-out cannot
/// help it; an immediate one waits its turn. Other backends begin as usual.
pub async fn begin_write(pool: &DatabaseConnection) -> Result<sea_orm::DatabaseTransaction, DbErr> {
    use sea_orm::{SqliteTransactionMode, TransactionOptions, TransactionTrait};
    pool.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}

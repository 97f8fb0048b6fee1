//! The guide's start-up utilities that touch migrations: [`init_db`] and
//! [`create_database_tables`]. They live here, not in `service`, because the business layer
//! knows nothing of migrations (`api -> migration`, see docs/architecture.md).

use migration::{Migrator, MigratorTrait};
use sea_orm::{Database, DatabaseConnection, DbErr};
use service::DbError;
use service::db::{connect, verify_database_connection};
use settings::{DatabaseSettings, Environment, redact_url};

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

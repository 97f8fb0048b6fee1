//! The guide's start-up utilities that touch migrations: [`init_db`] and
//! [`create_database_tables`]. They live here, not in `service`, because the business layer
//! knows nothing of migrations (`api -> migration`, see docs/architecture.md).

use sea_orm::{Database, DatabaseConnection};
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
    if environment != Environment::Production {
        let applied = create_database_tables(&db, database, environment).await?;
        if !applied.is_empty() {
            tracing::info!(?applied, "applied pending migrations");
        }
    }
    let state = migration::schema_state(&db)
        .await
        .map_err(DbError::MigrationState)?;
    service::metrics::migrations(state.applied.len(), state.pending.len());
    if !state.pending.is_empty() {
        // Production never changes its schema at start-up (elsewhere nothing is pending now).
        db.close().await.ok();
        return Err(DbError::PendingMigrations(state.pending));
    }
    if !state.unknown.is_empty() {
        // A newer release migrated this database (a rolling deploy, or this release rolled
        // back): every migration of this build is applied, so it serves.
        tracing::warn!(
            unknown = ?state.unknown,
            "the database has migrations this build does not know (a newer release applied \
             them); starting anyway, since every migration of this build is applied"
        );
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
    // Not SeaORM's `Migrator::up`: it refuses to run at all beside a newer release's migrations.
    let wait = migration::LockWait::from_settings(database);
    if database.is_sqlite() {
        // SQLite locks the file itself, and an in-memory database exists only on `db`'s own
        // connection: migrate through the pool.
        return migration::apply_pending(db, None, wait)
            .await
            .map_err(DbError::Migration);
    }
    // Advisory locks belong to a session: hold the lock and migrate on one dedicated connection.
    let options = migration::single_connection(database.connect_options());
    let lock_connection = Database::connect(options)
        .await
        .map_err(|error| DbError::Connect(database.connection_failure(&error)))?;
    let result = migration::with_migration_lock(&lock_connection, async |db| {
        migration::apply_pending(db, None, wait).await
    })
    .await;
    lock_connection.close().await.ok();
    result.map_err(DbError::Migration)
}

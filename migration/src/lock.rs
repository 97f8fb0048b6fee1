//! A database-wide lock around schema changes, so several processes (deploy scripts, API
//! servers applying migrations at start-up) can run `up` at once safely: one applies, the
//! others wait and then find nothing pending.

use std::time::{Duration, Instant};

use sea_orm_migration::sea_orm::{
    ConnectOptions, ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, Statement,
};

/// Key of the PostgreSQL advisory lock ("aistory" in ASCII).
const PG_LOCK_KEY: i64 = 0x61_6973_746f_7279;
/// Name of the MySQL/MariaDB `GET_LOCK` lock.
const MYSQL_LOCK_NAME: &str = "aistory_migrations";
/// How often a waiting process asks for the lock again.
const POLL: Duration = Duration::from_millis(100);
/// How long a process waits for another one's migrations before giving up.
const MAX_WAIT: Duration = Duration::from_secs(600);

/// Turns pool options into a pool of exactly one long-lived connection. Advisory locks belong
/// to a database session, so the lock and the migrations must share one connection.
pub fn single_connection(mut options: ConnectOptions) -> ConnectOptions {
    options
        .min_connections(1)
        .max_connections(1)
        .idle_timeout(None)
        .max_lifetime(None);
    options
}

/// Runs `action` while holding the migration lock. On PostgreSQL and MySQL/MariaDB `db` must
/// be a single-connection pool (see [`single_connection`]); SQLite serialises writers itself.
pub async fn with_migration_lock<T>(
    db: &DatabaseConnection,
    action: impl AsyncFnOnce(&DatabaseConnection) -> Result<T, DbErr>,
) -> Result<T, DbErr> {
    let backend = db.get_database_backend();
    if backend == DatabaseBackend::Sqlite {
        return action(db).await;
    }
    acquire(db, backend).await?;
    let result = action(db).await;
    let released = release(db, backend).await;
    let value = result?;
    released?;
    Ok(value)
}

async fn acquire(db: &DatabaseConnection, backend: DatabaseBackend) -> Result<(), DbErr> {
    let started = Instant::now();
    let mut announced = false;
    loop {
        let statement = match backend {
            DatabaseBackend::Postgres => Statement::from_sql_and_values(
                backend,
                "SELECT pg_try_advisory_lock($1) AS locked",
                [PG_LOCK_KEY.into()],
            ),
            _ => Statement::from_sql_and_values(
                backend,
                "SELECT GET_LOCK(?, 0) = 1 AS locked",
                [MYSQL_LOCK_NAME.into()],
            ),
        };
        let locked = match db.query_one_raw(statement).await? {
            Some(row) => row.try_get::<Option<bool>>("", "locked")?.unwrap_or(false),
            None => false,
        };
        if locked {
            return Ok(());
        }
        if started.elapsed() > MAX_WAIT {
            return Err(DbErr::Custom(format!(
                "another process has held the migration lock for over {} s; \
                 is a migration stuck?",
                MAX_WAIT.as_secs()
            )));
        }
        if !announced {
            tracing::info!("another process is migrating this database; waiting for it");
            announced = true;
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn release(db: &DatabaseConnection, backend: DatabaseBackend) -> Result<(), DbErr> {
    let statement = match backend {
        DatabaseBackend::Postgres => Statement::from_sql_and_values(
            backend,
            "SELECT pg_advisory_unlock($1)",
            [PG_LOCK_KEY.into()],
        ),
        _ => Statement::from_sql_and_values(
            backend,
            "SELECT RELEASE_LOCK(?)",
            [MYSQL_LOCK_NAME.into()],
        ),
    };
    db.execute_raw(statement).await.map(|_| ())
}

//! Where a database stands against this build's migrations, read from `seaql_migrations`
//! without SeaORM's migrator, which refuses to work at all when the database has applied a
//! migration this build does not know ("Migration file of version '...' is missing"). A newer
//! release's migrations are normal during a rolling deploy and after an application rollback:
//! they are reported as `unknown`, never an error, and this build's pending migrations can
//! still be applied beside them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{
    ActiveValue, ConnectionTrait, DbBackend, EntityTrait, QueryOrder, Statement, TransactionTrait,
};
use sea_orm_migration::seaql_migrations;

use crate::Migrator;

/// The migrations of this build against one database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaState {
    /// This build's migrations that are applied, in file order.
    pub applied: Vec<String>,
    /// This build's migrations that are not applied, in file order.
    pub pending: Vec<String>,
    /// Applied migrations this build does not know (a newer release's), by name.
    pub unknown: Vec<String>,
    /// Pending migrations older than the newest applied one of this build: a branch merged
    /// after a later migration was applied (they still apply, but out of order).
    pub out_of_order: Vec<String>,
}

/// Whether `seaql_migrations` exists (nothing recorded yet when it does not).
async fn has_bookkeeping<C: ConnectionTrait>(db: &C) -> Result<bool, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT CAST(count(*) AS BIGINT) AS n FROM pg_catalog.pg_tables \
             WHERE tablename = 'seaql_migrations' AND schemaname = ANY(current_schemas(false))"
        }
        DbBackend::MySql => {
            "SELECT CAST(count(*) AS SIGNED) AS n FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_name = 'seaql_migrations'"
        }
        _ => {
            "SELECT count(*) AS n FROM sqlite_master \
             WHERE type = 'table' AND name = 'seaql_migrations'"
        }
    };
    let row = db
        .query_one_raw(Statement::from_string(backend, sql))
        .await?
        .ok_or_else(|| DbErr::Custom("the catalog answered no row".to_owned()))?;
    Ok(row.try_get::<i64>("", "n")? > 0)
}

/// Reads where `db` stands, changing nothing (works for a read-only user).
pub async fn schema_state<C: ConnectionTrait>(db: &C) -> Result<SchemaState, DbErr> {
    let recorded: Vec<String> = if has_bookkeeping(db).await? {
        seaql_migrations::Entity::find()
            .order_by_asc(seaql_migrations::Column::Version)
            .all(db)
            .await?
            .into_iter()
            .map(|row| row.version)
            .collect()
    } else {
        Vec::new()
    };
    let names = crate::migration_names();
    let (applied, pending): (Vec<String>, Vec<String>) = names
        .iter()
        .cloned()
        .partition(|name| recorded.contains(name));
    let newest_applied = applied
        .iter()
        .filter_map(|name| names.iter().position(|known| known == name))
        .max();
    let out_of_order = pending
        .iter()
        .filter(|name| {
            names
                .iter()
                .position(|known| known == *name)
                .zip(newest_applied)
                .is_some_and(|(position, newest)| position < newest)
        })
        .cloned()
        .collect();
    let unknown = recorded
        .into_iter()
        .filter(|version| !names.contains(version))
        .collect();
    Ok(SchemaState {
        applied,
        pending,
        unknown,
        out_of_order,
    })
}

/// How long a migration statement may wait for a lock, and how often a migration that gave
/// up is tried again (from `AISTORY_MIGRATION_LOCK_TIMEOUT_SECS` / `_RETRIES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockWait {
    pub timeout: Duration,
    pub retries: u32,
}

impl LockWait {
    pub fn from_settings(database: &settings::DatabaseSettings) -> LockWait {
        LockWait {
            timeout: database.migration_lock_timeout,
            retries: database.migration_lock_retries,
        }
    }
}

/// Applies this build's pending migrations (all, or the next `steps`), in file order, each
/// recorded in `seaql_migrations` (in one transaction with it where the backend and the
/// migration allow, as SeaORM does), whatever unknown migrations the database also has.
/// Returns the names applied.
///
/// On PostgreSQL and MySQL/MariaDB a statement waits at most `wait.timeout` for a table lock
/// (so a migration stuck behind a long transaction does not queue every later query on that
/// table behind itself); the migration is then rolled back and tried again after a backoff,
/// `wait.retries` times, before it fails naming who holds the lock. Run it on one dedicated
/// connection (see [`crate::single_connection`]): the time-out is a session setting.
pub async fn apply_pending(
    db: &sea_orm_migration::sea_orm::DatabaseConnection,
    steps: Option<u32>,
    wait: LockWait,
) -> Result<Vec<String>, DbErr> {
    // SeaORM's own `install`: creates `seaql_migrations` when missing.
    Migrator::install(db).await?;
    let state = schema_state(db).await?;
    let take = steps.map_or(usize::MAX, |steps| steps as usize);
    let mut applied = Vec::new();
    for migration in Migrator::migrations() {
        if applied.len() >= take {
            break;
        }
        let name = migration.name().to_owned();
        if !state.pending.contains(&name) {
            continue;
        }
        let mut tries = 0;
        loop {
            tracing::info!(migration = name, "applying migration");
            match apply_one(db, migration.as_ref(), &name, wait.timeout).await {
                Ok(()) => break,
                Err(error) if is_lock_timeout(&error) => {
                    let holders = lock_holders(db).await;
                    if tries >= wait.retries {
                        return Err(DbErr::Migration(format!(
                            "{name} gave up waiting for a lock ({} tries, each waiting at \
                             most {} s; a deadlock with traffic counts as a try): {holders}. End that transaction, or run the migration when the \
                             table is quiet, then run `up` again",
                            tries + 1,
                            wait.timeout.as_secs()
                        )));
                    }
                    tries += 1;
                    let pause = Duration::from_secs(1 << Ord::min(tries, 5));
                    tracing::warn!(
                        migration = name,
                        %holders,
                        "the migration gave up waiting for a lock; trying again in {} s",
                        pause.as_secs()
                    );
                    tokio::time::sleep(pause).await;
                }
                Err(error) => return Err(error),
            }
        }
        applied.push(name);
    }
    Ok(applied)
}

/// Runs one migration and records it; its lock waits bounded by `lock_timeout`.
async fn apply_one(
    db: &sea_orm_migration::sea_orm::DatabaseConnection,
    migration: &dyn MigrationTrait,
    name: &str,
    lock_timeout: Duration,
) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let millis = lock_timeout.as_millis();
    if uses_transaction(migration, backend) {
        let txn = db.begin().await?;
        if backend == DbBackend::Postgres {
            // LOCAL: for this transaction only.
            txn.execute_unprepared(&format!("SET LOCAL lock_timeout = '{millis}ms'"))
                .await?;
        }
        migration.up(&SchemaManager::new(&txn)).await?;
        record(&txn, name).await?;
        txn.commit().await?;
        return Ok(());
    }
    match backend {
        DbBackend::Postgres => {
            db.execute_unprepared(&format!("SET lock_timeout = '{millis}ms'"))
                .await?;
        }
        DbBackend::MySql => {
            // MySQL counts whole seconds, at least one.
            let seconds = Ord::max(lock_timeout.as_secs(), 1);
            db.execute_unprepared(&format!("SET SESSION lock_wait_timeout = {seconds}"))
                .await?;
        }
        _ => {}
    }
    let result = async {
        migration.up(&SchemaManager::new(db)).await?;
        record(db, name).await
    }
    .await;
    if backend == DbBackend::Postgres {
        db.execute_unprepared("RESET lock_timeout").await.ok();
    }
    result
}

/// A lock the migration could not get: PostgreSQL's `lock_not_available` (55P03, "canceling
/// statement due to lock timeout") and `deadlock_detected` (40P01: the migration was chosen as
/// the victim of a deadlock with traffic, e.g. an index dropped while a request that read the
/// table waits to write it), MySQL's 1205 ("Lock wait timeout exceeded") and 1213 ("Deadlock
/// found"). Each rolled the migration back whole (on PostgreSQL), so it can be tried again.
fn is_lock_timeout(error: &DbErr) -> bool {
    let text = error.to_string();
    text.contains("lock timeout")
        || text.contains("Lock wait timeout exceeded")
        || text.contains("deadlock detected")
        || text.contains("Deadlock found")
}

/// Who holds locks on tables right now (other sessions), for the message of a migration that
/// gave up waiting: table, lock mode, session and what it is doing.
async fn lock_holders(db: &sea_orm_migration::sea_orm::DatabaseConnection) -> String {
    let backend = db.get_database_backend();
    if backend != DbBackend::Postgres {
        return "another session holds a lock on the table (MySQL: see SHOW PROCESSLIST and \
                performance_schema.metadata_locks)"
            .to_owned();
    }
    let sql = "SELECT c.relname AS table_name, l.mode AS mode, a.pid AS pid, \
               coalesce(a.state, '') AS state, left(coalesce(a.query, ''), 120) AS query \
               FROM pg_catalog.pg_locks l \
               JOIN pg_catalog.pg_class c ON c.oid = l.relation \
               JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid \
               WHERE l.granted AND l.pid <> pg_backend_pid() AND c.relkind = 'r' \
               AND c.relnamespace = ANY(SELECT oid FROM pg_catalog.pg_namespace \
                                        WHERE nspname = ANY(current_schemas(false))) \
               ORDER BY c.relname, a.pid";
    let rows = match db.query_all_raw(Statement::from_string(backend, sql)).await {
        Ok(rows) => rows,
        Err(error) => return format!("the lock holders could not be read: {error}"),
    };
    let holders: Vec<String> = rows
        .iter()
        .filter_map(|row| {
            let table: String = row.try_get("", "table_name").ok()?;
            let mode: String = row.try_get("", "mode").ok()?;
            let pid: i32 = row.try_get("", "pid").ok()?;
            let state: String = row.try_get("", "state").ok()?;
            let query: String = row.try_get("", "query").ok()?;
            Some(format!(
                "{table} is locked ({mode}) by session {pid} ({state}: {query})"
            ))
        })
        .collect();
    if holders.is_empty() {
        "the lock was released meanwhile".to_owned()
    } else {
        holders.join("; ")
    }
}

/// SeaORM's rule: a migration runs in a transaction if it asks to, or on PostgreSQL (whose DDL
/// is transactional).
fn uses_transaction(migration: &dyn MigrationTrait, backend: DbBackend) -> bool {
    migration
        .use_transaction()
        .unwrap_or(backend == DbBackend::Postgres)
}

async fn record<C: ConnectionTrait>(db: &C, name: &str) -> Result<(), DbErr> {
    let applied_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| <i64 as TryFrom<u64>>::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    seaql_migrations::Entity::insert(seaql_migrations::ActiveModel {
        version: ActiveValue::Set(name.to_owned()),
        applied_at: ActiveValue::Set(applied_at),
    })
    .exec(db)
    .await?;
    Ok(())
}

/// Why a rollback must not run while `state` has unknown migrations: they are a newer
/// release's, built on this build's schema; rolling this build's back under them would leave
/// them on a schema they were not written for.
pub fn refuse_rollback_under_unknown(state: &SchemaState) -> Result<(), DbErr> {
    if state.unknown.is_empty() {
        return Ok(());
    }
    Err(DbErr::Migration(format!(
        "the database has {} migration(s) this build does not know, applied by a newer release: \
         {}. Roll those back first with that release's migration CLI (or deploy it); this \
         build will not roll back beneath them",
        state.unknown.len(),
        state.unknown.join(", ")
    )))
}

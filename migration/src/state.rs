//! Where a database stands against this build's migrations, read from `seaql_migrations`
//! without SeaORM's migrator, which refuses to work at all when the database has applied a
//! migration this build does not know ("Migration file of version '...' is missing"). A newer
//! release's migrations are normal during a rolling deploy and after an application rollback:
//! they are reported as `unknown`, never an error, and this build's pending migrations can
//! still be applied beside them.

use std::time::{SystemTime, UNIX_EPOCH};

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

/// Applies this build's pending migrations (all, or the next `steps`), in file order, each
/// recorded in `seaql_migrations` (in one transaction with it where the backend and the
/// migration allow, as SeaORM does), whatever unknown migrations the database also has.
/// Returns the names applied.
pub async fn apply_pending(
    db: &sea_orm_migration::sea_orm::DatabaseConnection,
    steps: Option<u32>,
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
        tracing::info!(migration = name, "applying migration");
        if uses_transaction(migration.as_ref(), db.get_database_backend()) {
            let txn = db.begin().await?;
            migration.up(&SchemaManager::new(&txn)).await?;
            record(&txn, &name).await?;
            txn.commit().await?;
        } else {
            migration.up(&SchemaManager::new(db)).await?;
            record(db, &name).await?;
        }
        applied.push(name);
    }
    Ok(applied)
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

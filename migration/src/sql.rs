//! `--sql`: the SQL a migration command would run, printed for review (Alembic's offline
//! mode), changing nothing. Each migration runs against a recording connection of the target
//! backend (SeaORM's mock database): its statements are collected in order instead of being
//! sent, and the bookkeeping of `seaql_migrations` is written out beside them.
//!
//! What cannot be rendered this way: a migration that reads the database while it runs (its
//! statements may depend on the answer). Such a migration is marked `-- CANNOT RENDER` with the
//! query it tried, and nothing after it is rendered. None of this project's migrations reads.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{
    DatabaseConnection, DbBackend, MockDatabase, MockExecResult, Statement,
};

use crate::Migrator;

/// Which way a migration is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
}

fn bookkeeping(backend: DbBackend, name: &str, direction: Direction) -> String {
    let table = Alias::new("seaql_migrations");
    let statement = match direction {
        Direction::Up => {
            let mut insert = Query::insert();
            insert
                .into_table(table)
                .columns([Alias::new("version"), Alias::new("applied_at")])
                .values_panic([name.into(), Expr::cust("EXTRACT_UNIX_TIME_PLACEHOLDER")]);
            backend.build(&insert)
        }
        Direction::Down => backend.build(
            Query::delete()
                .from_table(table)
                .and_where(Expr::col(Alias::new("version")).eq(name)),
        ),
    };
    let now = match backend {
        DbBackend::Postgres => "CAST(EXTRACT(EPOCH FROM now()) AS BIGINT)",
        DbBackend::MySql => "UNIX_TIMESTAMP()",
        _ => "CAST(strftime('%s', 'now') AS INTEGER)",
    };
    statement
        .to_string()
        .replace("EXTRACT_UNIX_TIME_PLACEHOLDER", now)
}

/// The SQL of `names` (this build's migrations, in the order they would run), for `backend`.
/// The lock time-out statements are the ones `up` sends itself (see [`crate::apply_pending`]).
pub async fn render(
    backend: DbBackend,
    names: &[String],
    direction: Direction,
    lock_timeout: std::time::Duration,
) -> Result<String, DbErr> {
    let mut out = String::new();
    if names.is_empty() {
        out.push_str("-- nothing to do\n");
        return Ok(out);
    }
    for name in names {
        let Some(migration) = Migrator::migrations()
            .into_iter()
            .find(|migration| migration.name() == name)
        else {
            return Err(DbErr::Custom(format!("no migration {name} in this build")));
        };
        // Answers every statement "done" and no query (reads cannot be rendered offline).
        let db: DatabaseConnection = MockDatabase::new(backend)
            .append_exec_results((0..10_000).map(|_| MockExecResult {
                last_insert_id: 0,
                rows_affected: 0,
            }))
            .into_connection();
        let manager = SchemaManager::new(&db);
        let ran = match direction {
            Direction::Up => migration.up(&manager).await,
            Direction::Down => migration.down(&manager).await,
        };
        let in_transaction = migration
            .use_transaction()
            .unwrap_or(backend == DbBackend::Postgres);
        let verb = match direction {
            Direction::Up => "apply",
            Direction::Down => "roll back",
        };
        out.push_str(&format!("-- {verb} {name}\n"));
        let millis = lock_timeout.as_millis();
        // `up` bounds its lock waits; `down` and `to` run through SeaORM's migrator, which
        // does not: their SQL carries no time-out.
        let bounded = direction == Direction::Up;
        match (in_transaction, backend) {
            (true, DbBackend::Postgres) if !bounded => out.push_str("BEGIN;\n"),
            (false, _) if !bounded => {}
            (true, DbBackend::Postgres) => {
                out.push_str(&format!("BEGIN;\nSET LOCAL lock_timeout = '{millis}ms';\n"))
            }
            (true, _) => out.push_str("BEGIN;\n"),
            (false, DbBackend::Postgres) => {
                out.push_str(&format!("SET lock_timeout = '{millis}ms';\n"))
            }
            (false, DbBackend::MySql) => out.push_str(&format!(
                "SET SESSION lock_wait_timeout = {};\n",
                Ord::max(lock_timeout.as_secs(), 1)
            )),
            (false, _) => {}
        }
        drop(manager);
        let statements: Vec<Statement> = db
            .into_transaction_log()
            .iter()
            .flat_map(|transaction| transaction.statements().to_vec())
            .collect();
        for statement in statements {
            out.push_str(&statement.to_string());
            out.push_str(";\n");
        }
        if let Err(error) = ran {
            out.push_str(&format!(
                "-- CANNOT RENDER the rest of {name}: {error}\n-- (stopped here: what follows \
                 depends on it)\n"
            ));
            return Ok(out);
        }
        out.push_str(&bookkeeping(backend, name, direction));
        out.push_str(";\n");
        if in_transaction {
            out.push_str("COMMIT;\n");
        }
        out.push('\n');
    }
    Ok(out)
}

//! `cargo run -p migration -- <command>`: the migration CLI. It picks its database the way the
//! server does (`AISTORY_ENVIRONMENT` and `AISTORY_DATABASE_URL*`, `.env` included); an explicit
//! `-u URL` or `DATABASE_URL` wins. Every command that changes the schema runs under the
//! database-wide migration lock.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{Database, DbBackend};
use settings::{Environment, redact_url};

use crate::{
    Migrator, SchemaState, migrate_to, migration_names, resolve_target, single_connection,
};

#[derive(Debug, Parser)]
#[command(
    name = "migration",
    about = "Apply, roll back and inspect database migrations"
)]
pub struct Cli {
    /// Database URL; wins over the AISTORY_* configuration.
    #[arg(
        short = 'u',
        long,
        global = true,
        env = "DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    /// PostgreSQL schema to use (search_path).
    #[arg(short = 's', long, global = true, env = "DATABASE_SCHEMA")]
    pub database_schema: Option<String>,

    /// Confirm a destructive command (fresh, refresh, reset, down, to) in production.
    #[arg(long, global = true)]
    pub yes: bool,

    /// With up, down or to: print the SQL the command would run (statements in order, with
    /// the bookkeeping of seaql_migrations) and change nothing.
    #[arg(long, global = true)]
    pub sql: bool,

    /// With --sql: render for this backend without any database, as for a database where
    /// nothing is applied yet (up, to) or everything is (down).
    #[arg(long, global = true, value_enum, requires = "sql")]
    pub backend: Option<SqlBackend>,

    #[command(subcommand)]
    pub command: Command,
}

/// A backend to render `--sql` for without a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SqlBackend {
    Postgres,
    Mysql,
    Sqlite,
}

impl SqlBackend {
    fn db_backend(self) -> DbBackend {
        match self {
            SqlBackend::Postgres => DbBackend::Postgres,
            SqlBackend::Mysql => DbBackend::MySql,
            SqlBackend::Sqlite => DbBackend::Sqlite,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List every migration and whether it is applied.
    Status,
    /// Apply pending migrations (all, or the next N).
    Up {
        #[arg(short = 'n', long = "num")]
        num: Option<u32>,
        /// Apply pending migrations older than the newest applied one (a branch merged late)
        /// in production too; elsewhere they are applied with a note.
        #[arg(long)]
        allow_out_of_order: bool,
    },
    /// Roll back applied migrations (the last one, or the last N).
    Down {
        #[arg(short = 'n', long = "num", default_value_t = 1)]
        num: u32,
    },
    /// Drop every table, then apply all migrations.
    Fresh,
    /// Roll back all applied migrations, then apply them all again.
    Refresh,
    /// Roll back all applied migrations.
    Reset,
    /// Write a new, empty migration `mYYYYMMDD_HHMMSS_NAME.rs` into migration/src and
    /// register it (needs no database). To fill it from the entities' changes:
    /// `cargo run -p schema -- generate NAME --autogenerate`.
    Generate {
        /// e.g. add_photo_rating (a-z, 0-9, _)
        name: String,
        /// Write into this directory instead of this crate's src/ (tests).
        #[arg(long, hide = true)]
        dir: Option<std::path::PathBuf>,
    },
    /// Migrate up or down to a revision: `base`, `head`, a migration name or a unique prefix.
    To {
        /// e.g. m20261125_000001_create_users, m20261125_000001, base, head
        revision: String,
    },
}

impl Command {
    fn is_destructive(&self) -> bool {
        !matches!(
            self,
            Command::Status | Command::Up { .. } | Command::Generate { .. }
        )
    }
}

/// Parses the command line, runs the command, prints what happened.
pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match execute(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs one parsed command; errors are returned as the message to show.
pub async fn execute(cli: Cli) -> Result<(), String> {
    if let Command::Generate { name, dir } = &cli.command {
        let dir = dir.clone().unwrap_or_else(crate::generate::default_dir);
        let module = crate::generate::generate(&dir, name, chrono::Utc::now())?;
        println!("created {}", dir.join(format!("{module}.rs")).display());
        println!("registered it in {}", dir.join("lib.rs").display());
        return Ok(());
    }
    if cli.sql
        && !matches!(
            cli.command,
            Command::Up { .. } | Command::Down { .. } | Command::To { .. }
        )
    {
        return Err("--sql works with up, down and to".to_owned());
    }
    if let Some(backend) = cli.backend {
        let fresh = SchemaState {
            pending: migration_names(),
            ..SchemaState::default()
        };
        let everything = SchemaState {
            applied: migration_names(),
            ..SchemaState::default()
        };
        let state = if matches!(cli.command, Command::Down { .. }) {
            everything
        } else {
            fresh
        };
        // As `up` would run with the AISTORY_* settings (or their defaults).
        // No database here: any URL stands in for the AISTORY_DATABASE_URL* variables.
        let lock_timeout = settings::database_from_lookup(|name| {
            if name.starts_with("AISTORY_DATABASE_URL") {
                Some("sqlite::memory:".to_owned())
            } else {
                std::env::var(name).ok()
            }
        })
        .map(|(_, database)| database.migration_lock_timeout)
        .map_err(|error| error.to_string())?;
        return print_sql(&cli.command, backend.db_backend(), &state, lock_timeout).await;
    }
    // An explicit URL stands in for every AISTORY_DATABASE_URL* variable; pool settings and
    // the environment still come from AISTORY_*.
    let explicit = cli
        .database_url
        .clone()
        .filter(|url| !url.trim().is_empty());
    settings::load_dotenv().map_err(|error| error.to_string())?;
    let (environment, mut database) = settings::database_from_lookup(|name| {
        match (&explicit, name.starts_with("AISTORY_DATABASE_URL")) {
            (Some(url), true) => Some(url.clone()),
            _ => std::env::var(name).ok(),
        }
    })
    .map_err(|error| error.to_string())?;
    if explicit.is_some() {
        database.url_source = "-u/DATABASE_URL".to_owned();
    }
    if environment == Environment::Production
        && cli.command.is_destructive()
        && !cli.yes
        && !cli.sql
    {
        return Err(
            "AISTORY_ENVIRONMENT=production: this command can destroy data; back the database \
             up, then run it again with --yes"
                .to_owned(),
        );
    }
    let target = match &cli.command {
        Command::To { revision } => Some(resolve_target(revision)?),
        _ => None,
    };

    let mut options = single_connection(database.connect_options());
    if let Some(schema) = &cli.database_schema {
        options.set_schema_search_path(schema.clone());
    }
    let db = Database::connect(options)
        .await
        .map_err(|error| database.connection_failure(&error))?;
    eprintln!(
        "database: {} ({})",
        redact_url(&database.url),
        database.backend_name()
    );

    if cli.sql {
        // Read only: no lock, no bookkeeping table created.
        let state = crate::schema_state(&db).await;
        let backend = db.get_database_backend();
        db.close().await.ok();
        let state =
            state.map_err(|error| format!("reading the applied migrations failed: {error}"))?;
        return print_sql(
            &cli.command,
            backend,
            &state,
            database.migration_lock_timeout,
        )
        .await;
    }
    // `before` is read under the lock: with several processes migrating at once, each reports
    // only what it changed itself.
    let result = crate::with_migration_lock(&db, async |db| {
        let before = crate::schema_state(db).await?;
        match &cli.command {
            Command::Status | Command::Generate { .. } => {}
            Command::Up {
                num,
                allow_out_of_order,
            } => {
                if environment == Environment::Production
                    && !before.out_of_order.is_empty()
                    && !allow_out_of_order
                {
                    return Err(DbErr::Migration(format!(
                        "{} pending migration(s) are older than the newest applied one ({}): \
                         a branch merged after a later migration was applied. Check that they \
                         do not conflict with what is applied, then run `up \
                         --allow-out-of-order`",
                        before.out_of_order.len(),
                        before.out_of_order.join(", ")
                    )));
                }
                crate::apply_pending(db, *num, crate::LockWait::from_settings(&database)).await?;
            }
            Command::Down { num } => {
                crate::refuse_rollback_under_unknown(&before)?;
                Migrator::down(db, Some(*num)).await?
            }
            Command::Fresh => Migrator::fresh(db).await?,
            Command::Refresh => {
                crate::refuse_rollback_under_unknown(&before)?;
                Migrator::refresh(db).await?
            }
            Command::Reset => {
                crate::refuse_rollback_under_unknown(&before)?;
                Migrator::reset(db).await?
            }
            Command::To { .. } => {
                if let Some(target) = &target {
                    migrate_to(db, target).await?;
                }
            }
        }
        Ok((before, crate::schema_state(db).await?))
    })
    .await;
    db.close().await.ok();
    let (before, after) = result.map_err(|error| format!("migration failed: {error}"))?;

    if matches!(cli.command, Command::Status) {
        print_status(&after);
    } else {
        print_changes(&cli.command, &before, &after);
    }
    Ok(())
}

fn print_status(state: &SchemaState) {
    for name in migration_names() {
        let label = if state.applied.contains(&name) {
            "applied"
        } else if state.out_of_order.contains(&name) {
            "pending (out of order: older than the newest applied migration)"
        } else {
            "pending"
        };
        println!("{label:<8} {name}");
    }
    for name in &state.unknown {
        println!("applied  {name} (not in this build: a newer release's)");
    }
    println!(
        "{} applied, {} pending, {} applied but not in this build",
        state.applied.len(),
        state.pending.len(),
        state.unknown.len()
    );
}

fn print_changes(command: &Command, before: &SchemaState, after: &SchemaState) {
    if matches!(command, Command::Fresh | Command::Refresh) {
        println!("re-applied all {} migrations", after.applied.len());
        return;
    }
    // Newest first: the order they were rolled back in.
    let rolled_back: Vec<&String> = before
        .applied
        .iter()
        .rev()
        .filter(|name| !after.applied.contains(name))
        .collect();
    let applied: Vec<&String> = after
        .applied
        .iter()
        .filter(|name| !before.applied.contains(name))
        .collect();
    for name in &rolled_back {
        println!("rolled back {name}");
    }
    for name in &applied {
        let note = if before.out_of_order.contains(name) {
            " (out of order: older than the newest migration applied before it)"
        } else {
            ""
        };
        println!("applied     {name}{note}");
    }
    if rolled_back.is_empty() && applied.is_empty() {
        println!("nothing to do: {} migrations applied", after.applied.len());
    }
    for name in &after.unknown {
        println!("left alone  {name} (applied, not in this build: a newer release's)");
    }
}

/// `--sql`: what `command` would run from `state`, printed; nothing is changed.
async fn print_sql(
    command: &Command,
    backend: DbBackend,
    state: &SchemaState,
    lock_timeout: std::time::Duration,
) -> Result<(), String> {
    use crate::sql::{Direction, render};
    let names = migration_names();
    let (roll_back, apply): (Vec<String>, Vec<String>) = match command {
        Command::Up { num, .. } => (
            Vec::new(),
            state
                .pending
                .iter()
                .take(num.map_or(usize::MAX, |num| num as usize))
                .cloned()
                .collect(),
        ),
        Command::Down { num } => {
            crate::refuse_rollback_under_unknown(state).map_err(|error| error.to_string())?;
            (
                state
                    .applied
                    .iter()
                    .rev()
                    .take(*num as usize)
                    .cloned()
                    .collect(),
                Vec::new(),
            )
        }
        Command::To { revision } => {
            crate::refuse_rollback_under_unknown(state).map_err(|error| error.to_string())?;
            let keep = match resolve_target(revision)? {
                crate::Target::Base => 0,
                crate::Target::Head => names.len(),
                crate::Target::Revision(name) => names
                    .iter()
                    .position(|known| *known == name)
                    .map_or(0, |index| index + 1),
            };
            (
                state
                    .applied
                    .iter()
                    .rev()
                    .filter(|name| names.iter().position(|known| known == *name) >= Some(keep))
                    .cloned()
                    .collect(),
                names
                    .iter()
                    .take(keep)
                    .filter(|name| !state.applied.contains(name))
                    .cloned()
                    .collect(),
            )
        }
        _ => (Vec::new(), Vec::new()),
    };
    println!(
        "-- SQL for {backend:?}; nothing was changed. Review, then run the command without --sql."
    );
    if !roll_back.is_empty() {
        print!(
            "{}",
            render(backend, &roll_back, Direction::Down, lock_timeout)
                .await
                .map_err(|e| e.to_string())?
        );
    }
    if !apply.is_empty() || roll_back.is_empty() {
        print!(
            "{}",
            render(backend, &apply, Direction::Up, lock_timeout)
                .await
                .map_err(|e| e.to_string())?
        );
    }
    Ok(())
}

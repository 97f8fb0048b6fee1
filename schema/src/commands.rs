//! `cargo run -p schema -- check` and `cargo run -p schema -- generate NAME [--autogenerate]`:
//! the schema commands that need the entities (the `migration` crate never imports them).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use migration::MigratorTrait;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend};

use crate::{Declared, diff, drift, summary};

#[derive(Debug, Parser)]
#[command(
    name = "schema",
    about = "Compare the migrations with the entities, and write migrations",
    after_help = "The comparison runs on scratch databases: SQLite in memory by default, or two \
                  databases created (and dropped afterwards) through --database-url ADMIN_URL, \
                  e.g. postgres://postgres@127.0.0.1/postgres or mysql://root@127.0.0.1/mysql, \
                  to see the schema exactly as that backend builds it."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compare the schema the migrations build with the one the entities declare; exit 1 and
    /// list every difference if they disagree.
    #[command(alias = "check-schema")]
    Check {
        /// Admin URL of a PostgreSQL or MySQL server for the scratch databases.
        #[arg(long, value_name = "ADMIN_URL")]
        database_url: Option<String>,
    },
    /// Write migration/src/mYYYYMMDD_HHMMSS_NAME.rs and register it.
    Generate {
        /// The migration's name (letters, digits, underscores), e.g. add_photo_rating.
        name: String,
        /// Fill `up` and `down` with the changes that turn the migrations' schema into the
        /// entities'.
        #[arg(long)]
        autogenerate: bool,
        /// Admin URL of a PostgreSQL or MySQL server for the scratch databases.
        #[arg(long, value_name = "ADMIN_URL")]
        database_url: Option<String>,
    },
}

/// Parses the arguments (exit 2 with usage on misuse) and runs the command.
pub async fn run() -> ExitCode {
    match Cli::parse().command {
        Command::Check { database_url } => check(database_url.as_deref()).await,
        Command::Generate {
            name,
            autogenerate,
            database_url,
        } => generate(&name, autogenerate, database_url.as_deref()).await,
    }
}

/// Two empty databases of one backend: one for the migrations, one for the entities.
struct Scratch {
    migrations: DatabaseConnection,
    declared: DatabaseConnection,
    /// The admin connection and the databases to drop afterwards.
    cleanup: Option<(DatabaseConnection, Vec<String>)>,
}

impl Scratch {
    async fn open(admin_url: Option<&str>) -> Result<Scratch, String> {
        let Some(admin_url) = admin_url else {
            let connect = || Database::connect("sqlite::memory:");
            let error =
                |e: sea_orm::DbErr| format!("opening a scratch SQLite database failed: {e}");
            return Ok(Scratch {
                migrations: connect().await.map_err(error)?,
                declared: connect().await.map_err(error)?,
                cleanup: None,
            });
        };
        let admin = Database::connect(admin_url).await.map_err(|e| {
            format!(
                "connecting to {} failed: {e}",
                settings::redact_url(admin_url)
            )
        })?;
        let backend = admin.get_database_backend();
        if backend == DbBackend::Sqlite {
            return Err(
                "--database-url must be a PostgreSQL or MySQL admin URL (SQLite is the default)"
                    .to_owned(),
            );
        }
        let mut names = Vec::new();
        let mut connections = Vec::new();
        let nonce = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let mut opened = Ok(());
        for side in ["migrations", "entities"] {
            let name = format!("aistory_scratch_{}_{nonce}_{side}", std::process::id());
            if let Err(e) = admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
            {
                opened = Err(format!("creating scratch database {name} failed: {e}"));
                break;
            }
            names.push(name.clone());
            let connected = match url::Url::parse(admin_url) {
                Ok(mut url) => {
                    url.set_path(&format!("/{name}"));
                    Database::connect(url.as_str())
                        .await
                        .map_err(|e| format!("connecting to scratch database {name} failed: {e}"))
                }
                Err(e) => Err(format!("--database-url: {e}")),
            };
            match connected {
                Ok(connection) => connections.push(connection),
                Err(error) => {
                    opened = Err(error);
                    break;
                }
            }
        }
        if let (Ok(()), Some(declared), Some(migrations)) =
            (&opened, connections.pop(), connections.pop())
        {
            return Ok(Scratch {
                migrations,
                declared,
                cleanup: Some((admin, names)),
            });
        }
        // Drop whatever was created before the failure.
        for connection in connections {
            connection.close().await.ok();
        }
        drop_all(&admin, &names).await;
        Err(opened
            .err()
            .unwrap_or_else(|| "no scratch database".to_owned()))
    }

    async fn close(self) {
        self.migrations.close().await.ok();
        self.declared.close().await.ok();
        if let Some((admin, names)) = self.cleanup {
            drop_all(&admin, &names).await;
            admin.close().await.ok();
        }
    }
}

async fn drop_all(admin: &DatabaseConnection, names: &[String]) {
    let force = if admin.get_database_backend() == DbBackend::Postgres {
        " WITH (FORCE)"
    } else {
        ""
    };
    for name in names {
        if let Err(error) = admin
            .execute_unprepared(&format!("DROP DATABASE {name}{force}"))
            .await
        {
            eprintln!("warning: dropping scratch database {name} failed: {error}");
        }
    }
}

/// `check`.
pub async fn check(database_url: Option<&str>) -> ExitCode {
    // The migrations must have one order before their schema means anything.
    let problems = migration::registration_problems(&migration::migration_names());
    if !problems.is_empty() {
        eprintln!("the migrations cannot be ordered ({}):", problems.len());
        for problem in problems {
            eprintln!("  - {problem}");
        }
        return ExitCode::FAILURE;
    }
    match crate::lint::lint_dir(&migration::generate::default_dir()) {
        Ok(findings) if findings.is_empty() => {}
        Ok(findings) => {
            eprintln!(
                "migrations that would hold up live traffic ({}):",
                findings.len()
            );
            for finding in findings {
                eprintln!(
                    "  - {} [{}]: {}",
                    finding.migration, finding.rule, finding.message
                );
            }
            eprintln!(
                "a reviewed exception is marked in the migration: `// lint: allow RULE -- why`"
            );
            return ExitCode::FAILURE;
        }
        Err(error) => {
            eprintln!("error: linting the migrations failed: {error}");
            return ExitCode::FAILURE;
        }
    }
    let result = async {
        let scratch = Scratch::open(database_url).await?;
        let drift = drift(&scratch.migrations, &scratch.declared).await;
        scratch.close().await;
        drift.map_err(|error| format!("the drift check failed: {error}"))
    }
    .await;
    match result {
        Ok(differences) if differences.is_empty() => {
            println!("no drift: the migrations build exactly the schema the entities declare");
            ExitCode::SUCCESS
        }
        Ok(differences) => {
            eprintln!(
                "the entities and the migrations disagree ({}):",
                differences.len()
            );
            for line in differences {
                eprintln!("  - {line}");
            }
            eprintln!(
                "write the migration: `cargo run -p schema -- generate NAME --autogenerate`, review \
                 it, then `cargo run -p migration -- up` (docs/extending-entities.md)"
            );
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `generate NAME [--autogenerate]`.
pub async fn generate(name: &str, autogenerate: bool, database_url: Option<&str>) -> ExitCode {
    let dir = migration::generate::default_dir();
    let result = async {
        if !autogenerate {
            return migration::generate::generate(&dir, name, chrono::Utc::now()).map(Some);
        }
        let scratch = Scratch::open(database_url).await?;
        let planned = async {
            migration::Migrator::up(&scratch.migrations, None).await?;
            let declared = Declared::from_entities(scratch.declared.get_database_backend());
            diff::autogenerate(&scratch.migrations, &scratch.declared, &declared).await
        }
        .await;
        scratch.close().await;
        let plan = planned.map_err(|error| format!("comparing the schemas failed: {error}"))?;
        if plan.is_empty() {
            println!("no changes: the migrations already build what the entities declare; nothing written");
            return Ok(None);
        }
        let summary = format!("{name}: {}", summary(&plan));
        let module = migration::generate::write_migration(&dir, name, chrono::Utc::now(), &plan.render(&summary))?;
        // Formatted like the rest of the code, when rustfmt is at hand.
        let file = dir.join(format!("{module}.rs"));
        if let Err(error) = std::process::Command::new("rustfmt")
            .args(["--edition", "2024"])
            .arg(&file)
            .status()
        {
            println!("note: rustfmt did not run ({error}); run `cargo fmt` before committing");
        }
        for note in &plan.notes {
            println!("check: {note}");
        }
        Ok(Some(module))
    }
    .await;
    match result {
        Ok(Some(module)) => {
            println!("created {}", dir.join(format!("{module}.rs")).display());
            println!("registered it in {}", dir.join("lib.rs").display());
            if autogenerate {
                println!("review it, then apply it: cargo run -p migration -- up");
            }
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

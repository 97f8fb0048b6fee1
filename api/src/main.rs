#![recursion_limit = "256"]
use std::process::ExitCode;

/// mimalloc returns freed memory to the system promptly; glibc's per-thread arenas kept the
/// 19 MiB argon2 buffers of past logins resident.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use api::{Application, telemetry};
use settings::{Settings, redact_url};

#[actix_web::main]
async fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => serve().await,
        Some("check-schema") => check_schema().await,
        Some("-h" | "--help" | "help") => {
            println!(
                "usage: api [serve | check-schema]\n  serve         run the HTTP server (default)\n  \
                 check-schema  compare the schema the migrations build with the one the entities \
                 declare (scratch SQLite in memory); exit 1 and list every difference if they disagree"
            );
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("error: unknown command {other:?}; try `api --help`");
            ExitCode::from(2)
        }
    }
}

/// Drift check: entities and migrations must describe the same schema.
async fn check_schema() -> ExitCode {
    let scratch = || sea_orm::Database::connect("sqlite::memory:");
    let (migrations_db, entities_db) = match (scratch().await, scratch().await) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(error), _) | (_, Err(error)) => {
            eprintln!("error: opening a scratch SQLite database failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    match service::schema::drift(&migrations_db, &entities_db).await {
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
            eprintln!("write a migration for the entity change (see README, Migrations)");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("error: the drift check failed: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("error: invalid configuration: {error}");
            return ExitCode::FAILURE;
        }
    };
    telemetry::init(settings.log_format, settings.database.echo);
    tracing::info!(
        environment = %settings.environment,
        database = %redact_url(&settings.database.url),
        "starting"
    );
    if settings.auth.insecure_key {
        tracing::warn!(
            "AISTORY_SECRET_KEY is unset or shorter than {} bytes: tokens are signed with an \
             INSECURE key. Fine for development, refused in production.",
            settings::MIN_SECRET_BYTES
        );
    }
    let application = match Application::build(&settings).await {
        Ok(application) => application,
        Err(error) => {
            tracing::error!("start-up failed: {error}");
            eprintln!("error: start-up failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        "listening on http://{}:{}",
        settings.host,
        application.port()
    );
    match application.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: the server failed: {error}");
            ExitCode::FAILURE
        }
    }
}

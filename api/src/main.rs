#![recursion_limit = "256"]
use std::process::ExitCode;

/// mimalloc returns freed memory to the system promptly; glibc's per-thread arenas kept the
/// 19 MiB argon2 buffers of past logins resident.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod schema_commands;

use api::{Application, telemetry};
use settings::{Settings, redact_url};

#[actix_web::main]
async fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => serve().await,
        Some("check" | "check-schema") => schema_commands::check(&rest()).await,
        Some("generate") => schema_commands::generate(&rest()).await,
        Some("worker") => worker().await,
        Some("-h" | "--help" | "help") => {
            println!(
                "usage: api [serve | worker | check | generate NAME [--autogenerate]]\n  serve         run the HTTP server (default), \
                 with AISTORY_WORKERS workers inside\n  worker        run max(AISTORY_WORKERS, 1) workers \
                 alone, no HTTP: scale them apart from the API, on any machine sharing the database\n  \
                 check         compare the schema the migrations build with the one the entities \
                 declare (scratch SQLite in memory); exit 1 and list every difference if they disagree\n  \
                 generate      write a new migration; --autogenerate fills it with the changes \
                 from the migrations' schema to the entities' (see `api generate --help`)"
            );
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("error: unknown command {other:?}; try `api --help`");
            ExitCode::from(2)
        }
    }
}

/// Workers only: claim and run jobs until SIGTERM / Ctrl-C, then hand back what is held.
async fn worker() -> ExitCode {
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
        "starting workers"
    );
    let started = async {
        let storage = service::storage::Storage::from_url(&settings.storage.url)
            .map_err(|error| format!("object storage (AISTORY_STORAGE_URL): {error}"))?;
        let provider = service::stories::provider_from_settings(&settings.story_provider)
            .map_err(|error| format!("story provider (AISTORY_STORY_PROVIDER): {error}"))?;
        let db = service::init_db(&settings.database, settings.environment)
            .await
            .map_err(|error| error.to_string())?;
        let count = settings.workers.count.max(1);
        let workers = service::worker::Workers::start(
            db.clone(),
            service::job_handlers(&storage, provider, &settings.workers),
            service::worker::WorkerConfig::from_settings(&settings.workers),
            count,
        );
        Ok::<_, String>((db, workers))
    }
    .await;
    let (db, workers) = match started {
        Ok(started) => started,
        Err(error) => {
            tracing::error!("start-up failed: {error}");
            eprintln!("error: start-up failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    api::shutdown_signal().await;
    tracing::info!("stopping: finishing or handing back running jobs");
    workers.shutdown().await;
    if let Err(error) = service::close_db_connection(db).await {
        tracing::warn!(%error, "closing the database pool failed");
    }
    tracing::info!("workers stopped");
    ExitCode::SUCCESS
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

/// The arguments after the command.
fn rest() -> Vec<String> {
    std::env::args().skip(2).collect()
}

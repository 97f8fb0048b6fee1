#![recursion_limit = "256"]
use std::process::ExitCode;

/// mimalloc returns freed memory to the system promptly; glibc's per-thread arenas kept the
/// 19 MiB argon2 buffers of past logins resident.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use api::{Application, telemetry};
use clap::{Parser, Subcommand};
use settings::{Settings, redact_url};

/// The AI Story Creator server.
#[derive(Debug, Parser)]
#[command(
    name = "api",
    about = "The AI Story Creator server: HTTP API and story workers",
    after_help = "Configuration comes from AISTORY_* environment variables (and .env); see \
                  docs/configuration.md. Schema tooling: `cargo run -p schema -- --help`; \
                  migrations: `cargo run -p migration -- --help`."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server (the default), with AISTORY_WORKERS story workers inside.
    Serve,
    /// Run max(AISTORY_WORKERS, 1) workers alone, no HTTP: scale them apart from the API, on
    /// any machine that shares the database.
    Worker,
}

#[actix_web::main]
async fn main() -> ExitCode {
    // Misuse exits 2 with the usage (clap's own code for usage errors).
    match Cli::parse().command {
        None | Some(Command::Serve) => serve().await,
        Some(Command::Worker) => worker().await,
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
    let signal = api::ShutdownSignal::install();
    let started = async {
        let storage = service::storage::Storage::from_url(&settings.storage.url)
            .map_err(|error| format!("object storage (AISTORY_STORAGE_URL): {error}"))?;
        let provider = service::stories::provider_from_settings(&settings.story_provider)
            .map_err(|error| format!("story provider (AISTORY_STORY_PROVIDER): {error}"))?;
        let db = api::init_db(&settings.database, settings.environment)
            .await
            .map_err(|error| error.to_string())?;
        let count = settings.workers.count.max(1);
        let workers = service::worker::Workers::start(
            db.clone(),
            service::job_handlers(&storage, provider, &settings.workers)
                .map_err(|error| format!("the job registry: {error}"))?,
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
    signal.recv().await;
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

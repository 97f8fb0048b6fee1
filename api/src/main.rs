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
    /// The job queue, for operators: counts by kind and state and the last failures
    /// (`api jobs`), or retry / discard failed jobs by id.
    Jobs {
        #[command(subcommand)]
        action: Option<JobsAction>,
    },
}

#[derive(Debug, Subcommand)]
enum JobsAction {
    /// Jobs by kind and state, and the most recent failed jobs with their errors (the default).
    List {
        /// How many failed jobs to show.
        #[arg(long, default_value_t = 10)]
        failed: u64,
    },
    /// Queue failed jobs again (due now, attempts counted from zero).
    Retry {
        #[arg(required = true)]
        ids: Vec<i64>,
    },
    /// Delete failed jobs.
    Discard {
        #[arg(required = true)]
        ids: Vec<i64>,
    },
}

#[actix_web::main]
async fn main() -> ExitCode {
    // Misuse exits 2 with the usage (clap's own code for usage errors).
    match Cli::parse().command {
        None | Some(Command::Serve) => serve().await,
        Some(Command::Worker) => worker().await,
        Some(Command::Jobs { action }) => {
            jobs(action.unwrap_or(JobsAction::List { failed: 10 })).await
        }
    }
}

/// `api jobs ...`: reads (and for retry / discard, changes) the queue table; needs the
/// database and nothing else (it does not migrate).
async fn jobs(action: JobsAction) -> ExitCode {
    let database = match settings::database_from_env() {
        Ok((_, database)) => database,
        Err(error) => {
            eprintln!("error: invalid configuration: {error}");
            return ExitCode::FAILURE;
        }
    };
    let db = match service::db::connect(&database).await {
        Ok(db) => db,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = run_jobs_command(&db, action).await;
    db.close().await.ok();
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `Ok(false)`: some id was not a failed job (said on stderr).
async fn run_jobs_command(
    db: &sea_orm::DatabaseConnection,
    action: JobsAction,
) -> Result<bool, service::ServiceError> {
    use service::queue;
    match action {
        JobsAction::List { failed } => {
            let rows = queue::summary(db).await?;
            println!(
                "{:<24} {:<10} {:>8} {:>8}",
                "KIND", "STATE", "JOBS", "TRIED"
            );
            for (kind, status, jobs, tried) in &rows {
                let state = sea_orm::ActiveEnum::to_value(status);
                println!("{kind:<24} {state:<10} {jobs:>8} {tried:>8}");
            }
            if rows.is_empty() {
                println!("(no queued, running or failed jobs)");
            }
            let failed = queue::failed(db, failed).await?;
            if !failed.is_empty() {
                println!();
                println!("failed jobs, newest first:");
                for job in failed {
                    println!(
                        "  #{} {} (attempts {}/{}, at {}): {}",
                        job.id,
                        job.kind,
                        job.attempts,
                        job.max_attempts,
                        job.updated_at.format("%Y-%m-%d %H:%M:%S UTC"),
                        job.last_error.as_deref().unwrap_or("no error recorded")
                    );
                }
            }
            Ok(true)
        }
        JobsAction::Retry { ids } | JobsAction::Discard { ids } if ids.is_empty() => Ok(true),
        JobsAction::Retry { ids } => {
            let mut all = true;
            for id in ids {
                if queue::retry_failed(db, id).await? {
                    println!("queued #{id} again");
                } else {
                    eprintln!("#{id} is not a failed job; nothing done");
                    all = false;
                }
            }
            Ok(all)
        }
        JobsAction::Discard { ids } => {
            let mut all = true;
            for id in ids {
                if queue::discard_failed(db, id).await? {
                    println!("discarded #{id}");
                } else {
                    eprintln!("#{id} is not a failed job; nothing done");
                    all = false;
                }
            }
            Ok(all)
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
    let signal = api::ShutdownSignal::install();
    if settings.metrics_addr.is_some() {
        api::metrics::recorder();
    }
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
            service::job_handlers(
                &storage,
                provider,
                service::images::ImageLimits::from_settings(&settings.storage),
                &settings.workers,
            )
            .map_err(|error| format!("the job registry: {error}"))?,
            service::worker::WorkerConfig::from_settings(&settings.workers),
            count,
        );
        let metrics = match &settings.metrics_addr {
            None => None,
            Some(address) => api::metrics::listen(
                address,
                api::metrics::Sources {
                    db: db.clone(),
                    reads: None,
                },
            )
            .map_err(|error| {
                format!("could not listen on {address} (AISTORY_METRICS_ADDR): {error}")
            })?,
        };
        Ok::<_, String>((db, workers, metrics))
    }
    .await;
    let (db, workers, metrics) = match started {
        Ok(started) => started,
        Err(error) => {
            tracing::error!("start-up failed: {error}");
            eprintln!("error: start-up failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    let metrics = metrics.map(|metrics| {
        tracing::info!(
            "metrics on http://{}/metrics",
            metrics_address(&settings, metrics.port)
        );
        let handle = metrics.server.handle();
        actix_web::rt::spawn(metrics.server);
        handle
    });
    signal.recv().await;
    tracing::info!("stopping: finishing or handing back running jobs");
    workers.shutdown().await;
    if let Some(metrics) = metrics {
        metrics.stop(true).await;
    }
    if let Err(error) = service::close_db_connection(db).await {
        tracing::warn!(%error, "closing the database pool failed");
    }
    tracing::info!("workers stopped");
    ExitCode::SUCCESS
}

/// `AISTORY_METRICS_ADDR` with the port it got (port 0 picks a free one).
fn metrics_address(settings: &Settings, port: u16) -> String {
    let host = settings
        .metrics_addr
        .as_deref()
        .and_then(|address| address.parse::<std::net::SocketAddr>().ok())
        .map_or_else(
            || "127.0.0.1".to_owned(),
            |address| address.ip().to_string(),
        );
    format!("{host}:{port}")
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
            "AISTORY_SECRET_KEY is shorter than {} bytes: tokens are signed with a weak key. \
             Refused in production.",
            settings::MIN_SECRET_BYTES
        );
    }
    if settings.auth.generated_key {
        tracing::warn!(
            "AISTORY_SECRET_KEY is unset: tokens are signed with a random key of this process \
             (they stop working when it restarts, and other API processes refuse them); set \
             one to keep sessions or to run several API processes"
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
    if let Some(port) = application.metrics_port() {
        tracing::info!(
            "metrics on http://{}/metrics",
            metrics_address(&settings, port)
        );
    }
    match application.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: the server failed: {error}");
            ExitCode::FAILURE
        }
    }
}

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

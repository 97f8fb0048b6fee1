//! Logging: pretty lines in development, JSON in production. `RUST_LOG` overrides the level.

use settings::LogFormat;
use tracing_subscriber::EnvFilter;

/// Initialises the global subscriber once; later calls are ignored.
/// With `echo` (AISTORY_DB_ECHO) every SQL statement is logged at info level.
pub fn init(format: LogFormat, echo: bool) {
    let default = if echo {
        "info,sqlx=warn,sqlx::query=info,sea_orm_migration=warn"
    } else {
        "info,sqlx=warn,sea_orm_migration=warn"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // sqlx logs statements through the `log` crate (AISTORY_DB_ECHO): bridge them to tracing.
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

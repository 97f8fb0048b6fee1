use std::time::Duration;

use sea_orm::ConnectOptions;

use crate::{ConfigError, Environment, Vars};

/// How long an idle pooled connection is kept before it is closed and replaced (the guide's
/// "recycled after 5 minutes of inactivity").
pub const IDLE_RECYCLE: Duration = Duration::from_secs(300);
/// Pre-ping: a pooled connection idle at least this long is tested before it is handed out.
/// Busy connections are not pinged, so a read costs one round trip; a connection that broke
/// while busy fails its statement and is discarded by the pool.
pub const PING_IF_IDLE_FOR: Duration = Duration::from_secs(5);
/// PostgreSQL: the size of the busiest reads' own pool (`AISTORY_DB_READ_POOL_SIZE`).
pub const DEFAULT_READ_POOL_SIZE: u32 = 8;

/// Database connection and pool settings.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseSettings {
    /// The selected URL. May hold a password: print it with [`redact_url`] only.
    pub url: String,
    /// Which variable the URL came from (or `default`), for error messages.
    pub url_source: String,
    /// Connections kept open (pool minimum).
    pub pool_size: u32,
    /// Extra connections allowed above `pool_size`.
    pub max_overflow: u32,
    /// PostgreSQL: connections of the busiest reads' own pool (opened on demand; 0 = the
    /// reads share the main pool). See `service::reads`.
    pub read_pool_size: u32,
    /// PostgreSQL: a streaming replica the hot reads may use (`AISTORY_DATABASE_READ_URL`).
    /// May hold a password: print it with [`redact_url`] only. See `service::replica`.
    pub read_url: Option<String>,
    /// How long a read waits for the replica to replay the writes it must see before it goes
    /// to the primary instead (`AISTORY_DB_REPLICA_MAX_WAIT_MS`).
    pub replica_max_wait: Duration,
    /// Log every SQL statement.
    pub echo: bool,
    /// A statement slower than this is logged once, with its SQL text (no parameter values),
    /// its duration and the request or job that ran it. `None`: never.
    pub slow_statement: Option<Duration>,
    /// Bound on opening a new connection.
    pub connect_timeout: Duration,
    /// Bound on waiting for a free pooled connection.
    pub acquire_timeout: Duration,
    /// How long one migration statement may wait for a table lock before it gives up
    /// (PostgreSQL `lock_timeout`, MySQL `lock_wait_timeout`), so a migration blocked behind a
    /// long transaction does not queue all traffic on that table behind itself.
    pub migration_lock_timeout: Duration,
    /// How many times a migration that gave up waiting for a lock is tried again (with
    /// backoff) before `up` fails naming the lock.
    pub migration_lock_retries: u32,
}

impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &redact_url(&self.url))
            .field("url_source", &self.url_source)
            .field("pool_size", &self.pool_size)
            .field("max_overflow", &self.max_overflow)
            .field("read_pool_size", &self.read_pool_size)
            .field("read_url", &self.read_url.as_deref().map(redact_url))
            .field("replica_max_wait", &self.replica_max_wait)
            .field("echo", &self.echo)
            .field("slow_statement", &self.slow_statement)
            .field("connect_timeout", &self.connect_timeout)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("migration_lock_timeout", &self.migration_lock_timeout)
            .field("migration_lock_retries", &self.migration_lock_retries)
            .finish()
    }
}

/// The backends we accept, by URL scheme.
const SCHEMES: &str = "sqlite:, postgres://, postgresql://, mysql:// or mariadb://";

impl DatabaseSettings {
    pub(crate) fn from_vars(
        vars: &Vars<'_>,
        environment: Environment,
    ) -> Result<Self, ConfigError> {
        let specific = format!("AISTORY_DATABASE_URL_{}", environment.url_suffix());
        let (url, url_source) = if let Some(url) = vars.get(&specific) {
            (url, specific)
        } else if let Some(url) = vars.get("AISTORY_DATABASE_URL") {
            (url, "AISTORY_DATABASE_URL".to_owned())
        } else {
            match environment {
                Environment::Development => (
                    "sqlite://aistory.db?mode=rwc".to_owned(),
                    "default".to_owned(),
                ),
                Environment::Testing => ("sqlite::memory:".to_owned(), "default".to_owned()),
                Environment::Production => {
                    return Err(ConfigError::Missing {
                        var: "AISTORY_DATABASE_URL_PROD (or AISTORY_DATABASE_URL)".to_owned(),
                        why: "production has no default database; set it to e.g. \
                              postgres://USER:PASSWORD@HOST:5432/DBNAME"
                            .to_owned(),
                    });
                }
            }
        };
        let url = normalize_url(&url)
            .ok_or_else(|| ConfigError::invalid(&url_source, &redact_url(&url), SCHEMES))?;

        let pool_size = connections(vars, "AISTORY_DB_POOL_SIZE", 5, 1)?;
        let max_overflow = connections(vars, "AISTORY_DB_MAX_OVERFLOW", 10, 0)?;
        let read_pool_size =
            connections(vars, "AISTORY_DB_READ_POOL_SIZE", DEFAULT_READ_POOL_SIZE, 0)?;
        let read_url = match vars.get("AISTORY_DATABASE_READ_URL") {
            None => None,
            Some(read_url) => {
                let expected = "a postgres:// URL of a streaming replica of the database \
                                (a read replica is supported on PostgreSQL only)";
                let normalized = normalize_url(&read_url)
                    .filter(|read_url| read_url.starts_with("postgres:"))
                    .ok_or_else(|| {
                        ConfigError::invalid(
                            "AISTORY_DATABASE_READ_URL",
                            &redact_url(&read_url),
                            expected,
                        )
                    })?;
                if !url.starts_with("postgres:") {
                    return Err(ConfigError::invalid(
                        "AISTORY_DATABASE_READ_URL",
                        &redact_url(&read_url),
                        &format!(
                            "unset: {url_source} is not PostgreSQL, and only a PostgreSQL database has read replicas here"
                        ),
                    ));
                }
                Some(normalized)
            }
        };
        let replica_max_wait = Duration::from_millis(vars.parse_in(
            "AISTORY_DB_REPLICA_MAX_WAIT_MS",
            100,
            0..=10_000,
            "milliseconds from 0 to 10000",
        )?);
        let echo = vars.bool_or("AISTORY_DB_ECHO", false)?;
        let slow_statement = {
            let expected = "milliseconds from 0 (off) to 3600000";
            let value = vars.parse_in("AISTORY_DB_SLOW_MS", 200u64, 0..=3_600_000, expected)?;
            (value > 0).then(|| Duration::from_millis(value))
        };
        let connect_timeout = seconds(vars, "AISTORY_DB_CONNECT_TIMEOUT_SECS", 5)?;
        let acquire_timeout = seconds(vars, "AISTORY_DB_ACQUIRE_TIMEOUT_SECS", 5)?;
        let migration_lock_timeout = seconds(vars, "AISTORY_MIGRATION_LOCK_TIMEOUT_SECS", 5)?;
        let migration_lock_retries = vars.parse_in(
            "AISTORY_MIGRATION_LOCK_RETRIES",
            3,
            0..=100,
            "a whole number from 0 to 100",
        )?;
        Ok(DatabaseSettings {
            url,
            url_source,
            pool_size,
            max_overflow,
            read_pool_size,
            read_url,
            replica_max_wait,
            echo,
            slow_statement,
            connect_timeout,
            acquire_timeout,
            migration_lock_timeout,
            migration_lock_retries,
        })
    }

    /// Settings for `url` with every pool option at its default (tests, tools).
    pub fn for_url(url: impl Into<String>) -> Self {
        let url = url.into();
        DatabaseSettings {
            url: normalize_url(&url).unwrap_or(url),
            url_source: "argument".to_owned(),
            pool_size: 5,
            max_overflow: 10,
            read_pool_size: DEFAULT_READ_POOL_SIZE,
            read_url: None,
            replica_max_wait: Duration::from_millis(100),
            echo: false,
            slow_statement: Some(Duration::from_millis(200)),
            connect_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
            migration_lock_timeout: Duration::from_secs(5),
            migration_lock_retries: 3,
        }
    }

    pub fn backend_name(&self) -> &'static str {
        if self.is_sqlite() {
            "SQLite"
        } else if self.url.starts_with("postgres") {
            "PostgreSQL"
        } else {
            "MySQL/MariaDB"
        }
    }

    pub fn is_sqlite(&self) -> bool {
        self.url.starts_with("sqlite:")
    }

    fn is_sqlite_memory(&self) -> bool {
        self.is_sqlite() && (self.url.contains(":memory:") || self.url.contains("mode=memory"))
    }

    /// Pool options: min = pool size, max = pool size + overflow, pre-ping, idle recycle,
    /// bounded connect and acquire time-outs, statement logging when `echo` is on.
    pub fn connect_options(&self) -> ConnectOptions {
        let mut options = ConnectOptions::new(self.url.clone());
        options
            .connect_timeout(self.connect_timeout)
            .acquire_timeout(self.acquire_timeout)
            .test_before_acquire_if_idle_for(PING_IF_IDLE_FOR)
            .sqlx_logging(self.echo)
            .sqlx_logging_level(tracing::log::LevelFilter::Info);
        if self.is_sqlite_memory() {
            // Every connection to `sqlite::memory:` is a separate, empty database: keep exactly
            // one connection, forever, or the data vanishes when the pool recycles it.
            options
                .min_connections(1)
                .max_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        } else {
            options
                .min_connections(self.pool_size)
                .max_connections(self.pool_size + self.max_overflow)
                .idle_timeout(IDLE_RECYCLE);
        }
        if self.is_sqlite() {
            let busy = self.acquire_timeout;
            options.map_sqlx_sqlite_opts(move |opts| {
                // WAL lets readers run beside a writer; writers wait instead of failing at once.
                opts.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .busy_timeout(busy)
                    .foreign_keys(true)
            });
        }
        options
    }
}

impl DatabaseSettings {
    /// A message for an operator whose database could not be reached: what was tried (never
    /// the password) and what to check.
    pub fn connection_failure(&self, error: &dyn std::fmt::Display) -> String {
        format!(
            "could not connect to the {backend} database at {url} (from {source}): {error}\n\
             Check that:\n  \
             1. the database server is running and reachable from this machine;\n  \
             2. the URL is right (set AISTORY_DATABASE_URL, or the _DEV/_TEST/_PROD variant for \
             AISTORY_ENVIRONMENT);\n  \
             3. the user may connect to that database (and it exists);\n  \
             4. nothing (firewall, container network) blocks the port.",
            backend = self.backend_name(),
            url = redact_url(&self.url),
            source = self.url_source,
        )
    }
}

/// A number of connections from `least` to 1000.
fn connections(vars: &Vars<'_>, name: &str, default: u32, least: u32) -> Result<u32, ConfigError> {
    let expected = format!("a whole number from {least} to 1000");
    vars.parse_in(name, default, least..=1000, &expected)
}

fn seconds(vars: &Vars<'_>, name: &str, default: u64) -> Result<Duration, ConfigError> {
    let expected = "a whole number of seconds from 1 to 3600";
    let value = vars.parse_in(name, default, 1..=3600, expected)?;
    Ok(Duration::from_secs(value))
}

/// Accepts the URL spellings people use (including SQLAlchemy's `postgresql+asyncpg://` from
/// the original backend) and returns the one the driver understands, or `None` if the scheme
/// is not a database we support.
fn normalize_url(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once(':')?;
    let base = scheme
        .split('+')
        .next()
        .unwrap_or(scheme)
        .to_ascii_lowercase();
    let scheme = match base.as_str() {
        "sqlite" => "sqlite",
        "postgres" | "postgresql" => "postgres",
        "mysql" | "mariadb" => "mysql",
        _ => return None,
    };
    if scheme != "sqlite" && !rest.starts_with("//") {
        return None;
    }
    if scheme != "sqlite" && url::Url::parse(&format!("{scheme}:{rest}")).is_err() {
        return None;
    }
    Some(format!("{scheme}:{rest}"))
}

/// The URL with any password replaced by `***`, safe to log or show.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // set_password only fails for URLs that cannot have one, which `password()` ruled out.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        // Unparseable: show the scheme only, the rest may hold a secret.
        Err(_) => match url.split_once(':') {
            Some((scheme, _)) => format!("{scheme}:***"),
            None => "***".to_owned(),
        },
    }
}

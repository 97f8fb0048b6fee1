//! Configuration read from `AISTORY_*` environment variables (and a `.env` file).
//!
//! Shared by the server (`api`), the database layer (`service`) and the migration CLI, so all
//! three pick the same database the same way. Parsing takes a lookup function instead of
//! reading the process environment directly, which keeps it testable without mutating
//! global state.

mod auth;
mod database;
mod error;
mod storage;
mod stories;

use std::fmt;
use std::str::FromStr;

pub use auth::{AuthSettings, MIN_SECRET_BYTES, ThrottleSettings};
pub use database::{DatabaseSettings, IDLE_RECYCLE, PING_IF_IDLE_FOR, redact_url};
pub use error::ConfigError;
pub use storage::{DownloadMode, StorageSettings};
pub use stories::{OpenAiSettings, StoryProviderSettings, WorkerSettings};

/// Which environment the process runs in; selects the database URL and start-up behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Testing,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Testing => "testing",
            Environment::Production => "production",
        }
    }

    /// Suffix of the environment-specific database URL variable (`AISTORY_DATABASE_URL_DEV`...).
    fn url_suffix(self) -> &'static str {
        match self {
            Environment::Development => "DEV",
            Environment::Testing => "TEST",
            Environment::Production => "PROD",
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Environment {
    type Err = ();

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim().to_ascii_lowercase().as_str() {
            "development" | "dev" => Ok(Environment::Development),
            "testing" | "test" => Ok(Environment::Testing),
            "production" | "prod" => Ok(Environment::Production),
            _ => Err(()),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

impl FromStr for LogFormat {
    type Err = ();

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim().to_ascii_lowercase().as_str() {
            "pretty" | "text" => Ok(LogFormat::Pretty),
            "json" => Ok(LogFormat::Json),
            _ => Err(()),
        }
    }
}

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    pub environment: Environment,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub storage: StorageSettings,
    pub host: String,
    pub port: u16,
    pub log_format: LogFormat,
    /// Background workers (story generation, object deletion, sweeps).
    pub workers: WorkerSettings,
    /// Who writes the stories.
    pub story_provider: StoryProviderSettings,
    /// `AISTORY_CORS_ORIGINS`: browser origins (`https://app.example.com`, comma-separated,
    /// or `*` for any) whose pages may call the API. Empty (the default): no cross-origin
    /// access.
    pub cors_origins: Vec<String>,
    /// `AISTORY_METRICS_ADDR`: where Prometheus metrics are served (`host:port`, port 0 for any
    /// free one), on a listener of their own. `None` (the default): not served.
    pub metrics_addr: Option<String>,
    /// Per-user limits (`AISTORY_QUOTA_*`).
    pub quotas: Quotas,
    /// `AISTORY_TRUSTED_PROXIES`: the reverse proxies (CIDRs such as `10.0.0.0/8`, comma
    /// separated) whose `Forwarded` / `X-Forwarded-For` say who the client is. Empty (the
    /// default): the client is the TCP peer, whatever the headers say.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `AISTORY_FORWARDED_HEADER`: which header the trusted proxies write the client into
    /// (`x-forwarded-for`, the default, or `forwarded`). Only that one is read: the other may
    /// be passed through from the client unchanged.
    pub forwarded_header: ForwardedHeader,
    /// `AISTORY_HTTP_WORKERS`: the threads that serve HTTP, each with its own single-threaded
    /// runtime. `None` (the default): one per CPU core the process may use.
    pub http_workers: Option<usize>,
}

/// The header a trusted proxy names the client in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For` (nginx `$proxy_add_x_forwarded_for`, HAProxy, AWS ALB, Caddy).
    #[default]
    XForwardedFor,
    /// `Forwarded` (RFC 7239).
    Forwarded,
}

/// What one user may have or do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Photos stored (`AISTORY_QUOTA_PHOTOS`).
    pub photos: u64,
    /// Bytes of photos stored (`AISTORY_QUOTA_BYTES`).
    pub bytes: u64,
    /// Stories asked for within an hour (`AISTORY_QUOTA_STORIES_PER_HOUR`).
    pub stories_per_hour: u64,
    /// Event streams open at once, per API process (`AISTORY_QUOTA_STREAMS`).
    pub streams: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            photos: 10_000,
            bytes: 10 * 1024 * 1024 * 1024,
            stories_per_hour: 60,
            streams: 10,
        }
    }
}

impl Settings {
    /// Reads `.env` (if present; real environment variables win) and then the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        load_dotenv()?;
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Parses the settings from any variable source: `lookup("AISTORY_PORT")` returns the value.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let (environment, database) = database_from_lookup(&lookup)?;
        let vars = Vars(&lookup);
        let auth = AuthSettings::from_vars(&vars, environment)?;
        let storage = StorageSettings::from_vars(&vars)?;
        let host = vars
            .get("AISTORY_HOST")
            .unwrap_or_else(|| "127.0.0.1".to_owned());
        if host.is_empty() {
            return Err(ConfigError::invalid(
                "AISTORY_HOST",
                "",
                "a host name or IP address such as 127.0.0.1 or 0.0.0.0",
            ));
        }
        let port = vars.parse_or("AISTORY_PORT", 8000u16, "a port number from 0 to 65535")?;
        if auth.generated_key && !is_loopback(&host) {
            // Reachable by others: tokens must be signed with a key the operator chose (and
            // that every instance shares).
            return Err(ConfigError::Missing {
                var: "AISTORY_SECRET_KEY".to_owned(),
                why: format!(
                    "the server listens on {host}, not only on this machine; set a random \
                     secret of at least {} bytes, e.g. from `openssl rand -base64 48`",
                    auth::MIN_SECRET_BYTES
                ),
            });
        }
        let default_format = match environment {
            Environment::Production => LogFormat::Json,
            _ => LogFormat::Pretty,
        };
        let log_format = vars.parse_or("AISTORY_LOG_FORMAT", default_format, "pretty or json")?;
        let workers = WorkerSettings::from_vars(&vars)?;
        let story_provider = StoryProviderSettings::from_vars(&vars)?;
        let cors_origins = cors_origins(vars.get("AISTORY_CORS_ORIGINS").as_deref())?;
        let defaults = Quotas::default();
        let quota = |name: &str, default: u64| {
            let expected = "a whole number from 1 to 10000000000000";
            vars.parse_in(name, default, 1..=10_000_000_000_000, expected)
        };
        let quotas = Quotas {
            photos: quota("AISTORY_QUOTA_PHOTOS", defaults.photos)?,
            bytes: quota("AISTORY_QUOTA_BYTES", defaults.bytes)?,
            stories_per_hour: quota("AISTORY_QUOTA_STORIES_PER_HOUR", defaults.stories_per_hour)?,
            streams: quota("AISTORY_QUOTA_STREAMS", defaults.streams)?,
        };
        let trusted_proxies = trusted_proxies(vars.get("AISTORY_TRUSTED_PROXIES").as_deref())?;
        let forwarded_header = match vars.get("AISTORY_FORWARDED_HEADER") {
            None => ForwardedHeader::default(),
            Some(value) => match value.trim().to_ascii_lowercase().as_str() {
                "x-forwarded-for" => ForwardedHeader::XForwardedFor,
                "forwarded" => ForwardedHeader::Forwarded,
                _ => {
                    return Err(ConfigError::invalid(
                        "AISTORY_FORWARDED_HEADER",
                        &value,
                        "x-forwarded-for or forwarded",
                    ));
                }
            },
        };
        let http_workers = match vars.get("AISTORY_HTTP_WORKERS") {
            None => None,
            Some(_) => Some(vars.parse_in(
                "AISTORY_HTTP_WORKERS",
                1,
                1..=256,
                "a whole number from 1 to 256",
            )?),
        };
        let metrics_addr = vars.get("AISTORY_METRICS_ADDR");
        if let Some(address) = &metrics_addr
            && address.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(ConfigError::invalid(
                "AISTORY_METRICS_ADDR",
                address,
                "an IP address and port such as 127.0.0.1:9100 (port 0: any free one)",
            ));
        }
        Ok(Settings {
            environment,
            database,
            auth,
            storage,
            host,
            port,
            log_format,
            workers,
            story_provider,
            cors_origins,
            metrics_addr,
            quotas,
            trusted_proxies,
            forwarded_header,
            http_workers,
        })
    }
}

/// Whether `host` is only reachable from this machine (`127.0.0.0/8`, `::1`, `localhost`).
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// `AISTORY_TRUSTED_PROXIES`: networks (`10.0.0.0/8`, `fd00::/8`) or single addresses
/// (`192.0.2.7`), separated by commas.
fn trusted_proxies(value: Option<&str>) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    let expected = "comma-separated networks or addresses such as 10.0.0.0/8,192.0.2.7,fd00::/8";
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(|network| network.trunc())
                .map_err(|_| ConfigError::invalid("AISTORY_TRUSTED_PROXIES", item, expected))
        })
        .collect()
}

/// `AISTORY_CORS_ORIGINS`: `*`, or origins (`scheme://host[:port]`, no path) separated by
/// commas, each normalised to its serialised form (`https://App.example.com:443` becomes
/// `https://app.example.com`), which is what browsers send in `Origin`.
fn cors_origins(value: Option<&str>) -> Result<Vec<String>, ConfigError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let expected = "`*` or comma-separated origins such as https://app.example.com,http://localhost:5173 \
                    (scheme, host and optional port; no path)";
    let mut origins = Vec::new();
    for item in value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        if item == "*" {
            origins.push("*".to_owned());
            continue;
        }
        let parsed = url::Url::parse(item)
            .map_err(|_| ConfigError::invalid("AISTORY_CORS_ORIGINS", item, expected))?;
        let plain = matches!(parsed.scheme(), "http" | "https")
            && parsed.host_str().is_some()
            && parsed.path() == "/"
            && parsed.query().is_none()
            && parsed.fragment().is_none()
            && parsed.username().is_empty()
            && parsed.password().is_none();
        if !plain {
            return Err(ConfigError::invalid("AISTORY_CORS_ORIGINS", item, expected));
        }
        origins.push(parsed.origin().ascii_serialization());
    }
    if origins.len() > 1 && origins.iter().any(|origin| origin == "*") {
        return Err(ConfigError::invalid(
            "AISTORY_CORS_ORIGINS",
            value,
            "either `*` alone or a list of origins, not both",
        ));
    }
    Ok(origins)
}

/// Only the environment and database settings: what the migration CLI needs. A bad
/// `AISTORY_PORT` should not stop an operator from migrating.
pub fn database_from_env() -> Result<(Environment, DatabaseSettings), ConfigError> {
    load_dotenv()?;
    database_from_lookup(|name| std::env::var(name).ok())
}

/// [`database_from_env`] over any variable source.
pub fn database_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(Environment, DatabaseSettings), ConfigError> {
    let vars = Vars(&lookup);
    let environment = vars.parse_or(
        "AISTORY_ENVIRONMENT",
        Environment::Development,
        "one of development, testing, production",
    )?;
    Ok((
        environment,
        DatabaseSettings::from_vars(&vars, environment)?,
    ))
}

/// Loads `.env` from the current directory or a parent; a missing file is fine, a broken one
/// is reported (silently ignoring a typo in `.env` would run against the wrong database).
pub fn load_dotenv() -> Result<(), ConfigError> {
    match dotenvy::dotenv() {
        Ok(_) => Ok(()),
        Err(error) if error.not_found() => Ok(()),
        Err(error) => Err(ConfigError::DotEnv(error.to_string())),
    }
}

/// A variable source with typed accessors that name the variable in their errors.
pub(crate) struct Vars<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
    /// The value, with surrounding blanks removed; an empty value counts as unset.
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    }

    pub(crate) fn parse_or<T: FromStr>(
        &self,
        name: &str,
        default: T,
        expected: &str,
    ) -> Result<T, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|_| ConfigError::invalid(name, &raw, expected)),
        }
    }

    /// [`Self::parse_or`], refused unless within `range` (`expected` says what is accepted).
    pub(crate) fn parse_in<T: FromStr + PartialOrd + std::fmt::Display>(
        &self,
        name: &str,
        default: T,
        range: std::ops::RangeInclusive<T>,
        expected: &str,
    ) -> Result<T, ConfigError> {
        let value = self.parse_or(name, default, expected)?;
        if !range.contains(&value) {
            return Err(ConfigError::invalid(name, &value.to_string(), expected));
        }
        Ok(value)
    }

    pub(crate) fn bool_or(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => match raw.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(ConfigError::invalid(name, &raw, "true or false")),
            },
        }
    }
}

#[cfg(test)]
mod tests;

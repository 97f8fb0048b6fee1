use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};

/// A database server kind the tests run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MySql,
}

/// How long finding out whether a backend is there may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

impl Backend {
    /// Its name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
            Backend::MySql => "MariaDB/MySQL",
        }
    }

    /// The variable that names the backend's admin URL (`None` for SQLite, always in memory).
    pub fn variable(self) -> Option<&'static str> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some("AISTORY_TEST_POSTGRES_URL"),
            Backend::MySql => Some("AISTORY_TEST_MYSQL_URL"),
        }
    }

    /// The URL used when the variable is not set: the standard local server.
    pub fn default_url(self) -> Option<&'static str> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some("postgres://postgres@127.0.0.1:5432/postgres"),
            Backend::MySql => Some("mysql://root@127.0.0.1:3306/mysql"),
        }
    }

    /// The admin URL tests create their databases from: the variable, else the standard local
    /// server (`None` for SQLite).
    pub fn admin_url(self) -> Option<String> {
        let variable = self.variable()?;
        match std::env::var(variable) {
            Ok(url) if !url.trim().is_empty() => Some(url),
            _ => self.default_url().map(str::to_owned),
        }
    }

    /// `host:port` of `url` (the backend's default port when it names none).
    fn address(self, url: &str) -> String {
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let host_port = authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host);
        let has_port = host_port
            .rsplit_once(':')
            .is_some_and(|(_, port)| port.parse::<u16>().is_ok());
        if has_port {
            host_port.to_owned()
        } else {
            let port = if self == Backend::MySql { 3306 } else { 5432 };
            format!("{host_port}:{port}")
        }
    }

    /// Whether the backend can be used: connects to its admin URL once, within 3 s. The error
    /// says where it looked and why that failed.
    pub async fn probe(self) -> Result<(), String> {
        let Some(url) = self.admin_url() else {
            return Ok(());
        };
        let address = self.address(&url);
        let probe = async {
            // A refused connection is told at once (the pool would retry it until its
            // time-out, and then say only that).
            tokio::net::TcpStream::connect(&address)
                .await
                .map_err(|error| format!("{address}: {error}"))?;
            let admin = admin_connection(&url, PROBE_TIMEOUT)
                .await
                .map_err(|error| error.to_string())?;
            admin.close().await.ok();
            Ok(())
        };
        let outcome = tokio::time::timeout(PROBE_TIMEOUT, probe)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())));
        outcome.map_err(|why| format!("{} at {}: {why}", self.name(), redacted(&url)))
    }
}

/// Whether this runs in CI (`CI=true` or `CI=1`), where every backend and store must be used.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
}

/// `url` without its password (for messages).
pub fn redacted(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => format!(
                "{}{}:***{}",
                &url[..scheme_end],
                &rest[..colon],
                &rest[at..]
            ),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// A database that exists for one test and is dropped when this value is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    pub backend: Backend,
    /// URL of the test's own database.
    pub url: String,
    admin_url: Option<String>,
    name: String,
    /// SQLite in a file ([`Self::create_on_disk`]): removed on drop.
    file: Option<std::path::PathBuf>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDatabase {
    /// Creates a uniquely named, empty database on `backend` (SQLite: in memory). Panics when
    /// the backend cannot be reached: the e2e harness reports such a backend's tests as
    /// ignored before they run (and fails them under CI=true), see [`crate::harness`].
    pub async fn create(backend: Backend) -> TestDatabase {
        let name = format!(
            "aistory_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let Some(admin_url) = backend.admin_url() else {
            return TestDatabase {
                backend,
                url: "sqlite::memory:".to_owned(),
                admin_url: None,
                name,
                file: None,
            };
        };
        let admin = admin_connection(&admin_url, Duration::from_secs(5))
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "{} at {} cannot be reached: {error}",
                    backend.name(),
                    redacted(&admin_url)
                )
            });
        let quoted = quote(backend, &name);
        let create = format!("CREATE DATABASE {quoted}");
        if let Err(error) = admin.execute_unprepared(&create).await {
            panic!("creating test database {name} failed: {error}");
        }
        admin.close().await.ok();
        let url = replace_database(&admin_url, &name);
        TestDatabase {
            backend,
            url,
            admin_url: Some(admin_url),
            name,
            file: None,
        }
    }

    /// As [`Self::create`], but SQLite in a file of its own (under the temporary directory,
    /// removed on drop), which several servers can open: what two processes would share.
    pub async fn create_on_disk(backend: Backend) -> TestDatabase {
        let mut database = TestDatabase::create(backend).await;
        if backend == Backend::Sqlite {
            let path = std::env::temp_dir().join(format!("{}.sqlite", database.name));
            database.url = format!("sqlite://{}?mode=rwc", path.display());
            database.file = Some(path);
        }
        database
    }

    /// A plain pool on this database (no migrations run).
    pub async fn connect(&self) -> DatabaseConnection {
        let mut options = ConnectOptions::new(self.url.clone());
        options.sqlx_logging(false);
        if self.backend == Backend::Sqlite {
            options
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None);
        } else {
            options.max_connections(5);
        }
        Database::connect(options)
            .await
            .unwrap_or_else(|error| panic!("connecting to {} failed: {error}", self.url))
    }

    /// Name of the database (for messages).
    pub fn name(&self) -> &str {
        &self.name
    }
}

async fn admin_connection(
    url: &str,
    connect_timeout: Duration,
) -> Result<DatabaseConnection, sea_orm::DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(1)
        .connect_timeout(connect_timeout)
        .acquire_timeout(connect_timeout * 2)
        .sqlx_logging(false);
    let db = Database::connect(options).await?;
    db.query_one_raw(Statement::from_string(
        db.get_database_backend(),
        "SELECT 1",
    ))
    .await?;
    Ok(db)
}

fn quote(backend: Backend, name: &str) -> String {
    match backend {
        Backend::MySql => format!("`{name}`"),
        _ => format!("\"{name}\""),
    }
}

/// The admin URL with its database path replaced by `name` (query string kept).
fn replace_database(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_part = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{host_part}/{name}?{query}"),
        None => format!("{host_part}/{name}"),
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(path) = &self.file {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let mut name = path.clone().into_os_string();
                name.push(suffix);
                std::fs::remove_file(name).ok();
            }
        }
        let Some(admin_url) = self.admin_url.clone() else {
            return;
        };
        let statement = match self.backend {
            Backend::Postgres => format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote(self.backend, &self.name)
            ),
            _ => format!(
                "DROP DATABASE IF EXISTS {}",
                quote(self.backend, &self.name)
            ),
        };
        let name = self.name.clone();
        // Drop runs inside the test's runtime: do the async work on a thread of its own.
        let outcome = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|error| error.to_string())?;
            runtime.block_on(async move {
                let admin = admin_connection(&admin_url, Duration::from_secs(5))
                    .await
                    .map_err(|error| error.to_string())?;
                let result = admin.execute_unprepared(&statement).await;
                admin.close().await.ok();
                result.map(|_| ()).map_err(|error| error.to_string())
            })
        })
        .join();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("warning: dropping test database {name} failed: {error}"),
            Err(_) => eprintln!("warning: dropping test database {name} panicked"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Backend, redacted, replace_database};

    #[test]
    fn the_address_to_probe() {
        assert_eq!(
            Backend::Postgres.address("postgres://postgres@127.0.0.1:5432/postgres"),
            "127.0.0.1:5432"
        );
        assert_eq!(
            Backend::MySql.address("mysql://root:pw@db.local/mysql?ssl-mode=disabled"),
            "db.local:3306"
        );
        assert_eq!(Backend::Postgres.address("postgres://h"), "h:5432");
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redacted("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(
            redacted("mysql://root@127.0.0.1:3306/mysql"),
            "mysql://root@127.0.0.1:3306/mysql"
        );
        assert_eq!(redacted("sqlite::memory:"), "sqlite::memory:");
    }

    #[test]
    fn replaces_the_database_path() {
        assert_eq!(
            replace_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            replace_database("mysql://root@127.0.0.1:3306", "t1"),
            "mysql://root@127.0.0.1:3306/t1"
        );
        assert_eq!(
            replace_database("postgres://u:p@h/db?sslmode=disable", "t1"),
            "postgres://u:p@h/t1?sslmode=disable"
        );
    }
}

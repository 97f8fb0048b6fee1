use std::sync::atomic::{AtomicU32, Ordering};

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};

/// A database server kind the tests run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MySql,
}

impl Backend {
    fn admin_variable(self) -> Option<&'static str> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some("AISTORY_TEST_POSTGRES_URL"),
            Backend::MySql => Some("AISTORY_TEST_MYSQL_URL"),
        }
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
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
}

impl TestDatabase {
    /// Creates a uniquely named, empty database; `None` (after printing why) when the backend
    /// is not configured outside CI. Panics when CI=true and the backend cannot be used.
    pub async fn create(backend: Backend) -> Option<TestDatabase> {
        let name = format!(
            "aistory_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let Some(variable) = backend.admin_variable() else {
            return Some(TestDatabase {
                backend,
                url: "sqlite::memory:".to_owned(),
                admin_url: None,
                name,
            });
        };
        let admin_url = match std::env::var(variable) {
            Ok(url) if !url.trim().is_empty() => url,
            _ => {
                if in_ci() {
                    panic!("CI=true but {variable} is not set: the {backend:?} tests must run");
                }
                eprintln!("skipped: {backend:?} backend ({variable} is not set)");
                return None;
            }
        };
        let admin = match admin_connection(&admin_url).await {
            Ok(admin) => admin,
            Err(error) => {
                if in_ci() {
                    panic!("CI=true but {variable} cannot be reached: {error}");
                }
                eprintln!("skipped: {backend:?} backend ({variable} unreachable: {error})");
                return None;
            }
        };
        let quoted = quote(backend, &name);
        let create = format!("CREATE DATABASE {quoted}");
        if let Err(error) = admin.execute_unprepared(&create).await {
            panic!("creating test database {name} failed: {error}");
        }
        admin.close().await.ok();
        let url = replace_database(&admin_url, &name);
        Some(TestDatabase {
            backend,
            url,
            admin_url: Some(admin_url),
            name,
        })
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

async fn admin_connection(url: &str) -> Result<DatabaseConnection, sea_orm::DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(1)
        .connect_timeout(std::time::Duration::from_secs(5))
        .acquire_timeout(std::time::Duration::from_secs(10))
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
                let admin = admin_connection(&admin_url)
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
    use super::replace_database;

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

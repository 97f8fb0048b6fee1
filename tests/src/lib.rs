//! Test support: a freshly created database per test on every backend, and the real server
//! started on port 0 against it.
//!
//! Backends: SQLite in memory always; PostgreSQL when `AISTORY_TEST_POSTGRES_URL` is set and
//! MariaDB/MySQL when `AISTORY_TEST_MYSQL_URL` is set (each an admin URL; tests create and drop
//! their own databases from it). Without the variable a test prints one line saying the backend
//! was skipped; with `CI=true` a missing variable or an unreachable server fails the test.

mod app;
mod database;
pub mod images;
mod store;

pub use app::{
    StatementLog, TestApp, Tokens, spawn_app, spawn_app_configured, spawn_app_counting,
    spawn_app_with, spawn_app_with_store, test_settings,
};
pub use database::{Backend, TestDatabase};
pub use store::{Store, TestStore};

/// Declares one test per backend for each async test function `name(backend: Backend)`:
/// `name::sqlite`, `name::postgres`, `name::mysql`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::Backend::Postgres).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn mysql() {
                    super::$name($crate::Backend::MySql).await
                }
            }
        )*
    };
}

/// Declares one test per backend and store for each async test function
/// `name(backend: Backend, store: Store)`: `name::sqlite_memory`, `name::postgres_s3`, ...
#[macro_export]
macro_rules! store_backend_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                $crate::store_backend_tests!(@one $name, sqlite_memory, Sqlite, Memory);
                $crate::store_backend_tests!(@one $name, sqlite_file, Sqlite, File);
                $crate::store_backend_tests!(@one $name, sqlite_s3, Sqlite, S3);
                $crate::store_backend_tests!(@one $name, postgres_memory, Postgres, Memory);
                $crate::store_backend_tests!(@one $name, postgres_file, Postgres, File);
                $crate::store_backend_tests!(@one $name, postgres_s3, Postgres, S3);
                $crate::store_backend_tests!(@one $name, mysql_memory, MySql, Memory);
                $crate::store_backend_tests!(@one $name, mysql_file, MySql, File);
                $crate::store_backend_tests!(@one $name, mysql_s3, MySql, S3);
            }
        )*
    };
    (@one $name:ident, $test:ident, $backend:ident, $store:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            super::$name($crate::Backend::$backend, $crate::Store::$store).await
        }
    };
}

/// Waits (up to 15 s) until `check` holds; fails the test naming `what` otherwise. For effects
/// of background workers.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

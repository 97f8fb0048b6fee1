//! Test support: a freshly created database per test on every backend, the real server
//! started on port 0 against it ([`TestApp::builder`]), and the end-to-end binary's harness
//! ([`harness`]).
//!
//! Backends: SQLite in memory always; PostgreSQL at `AISTORY_TEST_POSTGRES_URL` and
//! MariaDB/MySQL at `AISTORY_TEST_MYSQL_URL` (admin URLs: tests create and drop their own
//! databases from them), else at the standard local URLs. The harness reports the tests of a
//! backend it cannot reach as ignored; with `CI=true` they fail.

mod app;
mod database;
pub mod harness;
pub mod images;
pub mod replica;
pub mod sse;
mod store;

pub use app::{OtherServer, StatementLog, TestApp, TestAppBuilder, Tokens, test_settings};
pub use database::{Backend, TestDatabase, in_ci, redacted};
pub use store::{Store, TestStore};

#[doc(hidden)]
pub use inventory;

/// Registers one test with the harness: `$name` (within the calling module), what it needs,
/// and the call that runs it.
#[doc(hidden)]
#[macro_export]
macro_rules! __register_test {
    ($name:expr, $backend:expr, $store:expr, $call:expr) => {
        $crate::__register_test!($name, $backend, $store, false, $call);
    };
    ($name:expr, $backend:expr, $store:expr, $replica:expr, $call:expr) => {
        $crate::inventory::submit! {
            $crate::harness::E2eTest {
                module: module_path!(),
                name: $name,
                backend: $backend,
                store: $store,
                replica: $replica,
                run: {
                    fn run() -> $crate::harness::TestFuture {
                        ::std::boxed::Box::pin($call)
                    }
                    run
                },
            }
        }
    };
}

/// Registers one test per backend for each async test function `name(backend: Backend)`:
/// `name::sqlite`, `name::postgres`, `name::mysql`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        $(
            $crate::backend_tests!(@one $name, sqlite, Sqlite);
            $crate::backend_tests!(@one $name, postgres, Postgres);
            $crate::backend_tests!(@one $name, mysql, MySql);
        )*
    };
    (@one $name:ident, $variant:ident, $backend:ident) => {
        $crate::__register_test!(
            concat!(stringify!($name), "::", stringify!($variant)),
            ::std::option::Option::Some($crate::Backend::$backend),
            ::std::option::Option::None,
            $name($crate::Backend::$backend)
        );
    };
}

/// Registers one test per backend and store for each async test function
/// `name(backend: Backend, store: Store)`: `name::sqlite_memory`, `name::postgres_s3`, ...
#[macro_export]
macro_rules! store_backend_tests {
    ($($name:ident),* $(,)?) => {
        $(
            $crate::store_backend_tests!(@one $name, sqlite_memory, Sqlite, Memory);
            $crate::store_backend_tests!(@one $name, sqlite_file, Sqlite, File);
            $crate::store_backend_tests!(@one $name, sqlite_s3, Sqlite, S3);
            $crate::store_backend_tests!(@one $name, postgres_memory, Postgres, Memory);
            $crate::store_backend_tests!(@one $name, postgres_file, Postgres, File);
            $crate::store_backend_tests!(@one $name, postgres_s3, Postgres, S3);
            $crate::store_backend_tests!(@one $name, mysql_memory, MySql, Memory);
            $crate::store_backend_tests!(@one $name, mysql_file, MySql, File);
            $crate::store_backend_tests!(@one $name, mysql_s3, MySql, S3);
        )*
    };
    (@one $name:ident, $variant:ident, $backend:ident, $store:ident) => {
        $crate::__register_test!(
            concat!(stringify!($name), "::", stringify!($variant)),
            ::std::option::Option::Some($crate::Backend::$backend),
            ::std::option::Option::Some($crate::Store::$store),
            $name($crate::Backend::$backend, $crate::Store::$store)
        );
    };
}

/// Registers each async test function `name()` as the test `name`. `on Postgres:` marks
/// tests that need that backend, `on Sqlite with S3:` ones that need a store, `on Postgres
/// with replica:` ones that need a streaming replica ([`replica`]), so that they are reported
/// as ignored where it cannot be had (see [`harness`]).
#[macro_export]
macro_rules! e2e_tests {
    (on Postgres with replica: $($name:ident),* $(,)?) => {
        $(
            $crate::__register_test!(
                stringify!($name),
                ::std::option::Option::Some($crate::Backend::Postgres),
                ::std::option::Option::None,
                true,
                $name()
            );
        )*
    };
    (on $backend:ident with $store:ident: $($name:ident),* $(,)?) => {
        $(
            $crate::__register_test!(
                stringify!($name),
                ::std::option::Option::Some($crate::Backend::$backend),
                ::std::option::Option::Some($crate::Store::$store),
                $name()
            );
        )*
    };
    (on $backend:ident: $($name:ident),* $(,)?) => {
        $(
            $crate::__register_test!(
                stringify!($name),
                ::std::option::Option::Some($crate::Backend::$backend),
                ::std::option::Option::None,
                $name()
            );
        )*
    };
    ($($name:ident),* $(,)?) => {
        $(
            $crate::__register_test!(
                stringify!($name),
                ::std::option::Option::None,
                ::std::option::Option::None,
                $name()
            );
        )*
    };
}

/// Waits (up to 15 s) until `check` holds; fails the test naming `what` otherwise. Not for
/// jobs (run them with [`TestApp::run_pending_jobs`]): for what the server does on its own,
/// such as cleaning up after a dropped upload.
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

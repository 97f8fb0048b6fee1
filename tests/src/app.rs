use std::time::Duration;

use actix_web::web;
use api::Application;
use sea_orm::DatabaseConnection;
use settings::{DatabaseSettings, Environment, LogFormat, Settings};

use crate::{Backend, TestDatabase};

/// The real server, started on a free port against a test's own database.
pub struct TestApp {
    pub address: String,
    pub port: u16,
    /// The server's own pool: rows the server wrote are visible through it.
    pub db: DatabaseConnection,
    pub client: reqwest::Client,
    handle: actix_web::dev::ServerHandle,
    // Dropped last: the database goes away after the server.
    pub database: TestDatabase,
}

/// Settings for a test server on `database`: environment `testing`, port 0.
pub fn test_settings(database: &TestDatabase) -> Settings {
    let mut db_settings = DatabaseSettings::for_url(database.url.clone());
    db_settings.pool_size = 1;
    db_settings.max_overflow = 4;
    db_settings.connect_timeout = Duration::from_secs(5);
    db_settings.acquire_timeout = Duration::from_secs(5);
    Settings {
        environment: Environment::Testing,
        database: db_settings,
        host: "127.0.0.1".to_owned(),
        port: 0,
        log_format: LogFormat::Pretty,
    }
}

/// Creates a database on `backend`, starts the server on it; `None` if the backend is skipped.
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

/// [`spawn_app`] with extra routes mounted in the real request pipeline.
pub async fn spawn_app_with<F>(backend: Backend, extra_routes: F) -> Option<TestApp>
where
    F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
{
    let database = TestDatabase::create(backend).await?;
    let settings = test_settings(&database);
    let application = Application::build_with(&settings, extra_routes)
        .await
        .unwrap_or_else(|error| panic!("the server did not start: {error}"));
    let port = application.port();
    let db = application.db().clone();
    let handle = application.handle();
    tokio::spawn(application.run_until_stopped());
    Some(TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        db,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_else(|error| panic!("building the HTTP client failed: {error}")),
        handle,
        database,
    })
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|error| panic!("GET {path} failed: {error}"))
    }

    pub async fn post(&self, path: &str) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .send()
            .await
            .unwrap_or_else(|error| panic!("POST {path} failed: {error}"))
    }

    /// Stops the server and waits for it (in-flight requests finish first).
    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Stop accepting; the server task ends on its own.
        let handle = self.handle.clone();
        drop(handle.stop(false));
    }
}

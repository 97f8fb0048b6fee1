use std::time::Duration;

use actix_web::web;
use api::Application;
use sea_orm::DatabaseConnection;
use settings::{
    AuthSettings, DatabaseSettings, Environment, LogFormat, Settings, StorageSettings,
    StoryProviderSettings, WorkerSettings,
};

use crate::{Backend, TestDatabase};

/// The real server, started on a free port against a test's own database.
pub struct TestApp {
    pub address: String,
    pub port: u16,
    /// The server's own pool: rows the server wrote are visible through it.
    pub db: DatabaseConnection,
    pub client: reqwest::Client,
    handle: actix_web::dev::ServerHandle,
    // Dropped last: the database and the store go away after the server.
    pub database: TestDatabase,
    pub store: Option<crate::TestStore>,
}

/// Settings for a test server on `database`: environment `testing`, port 0.
pub fn test_settings(database: &TestDatabase) -> Settings {
    let mut db_settings = DatabaseSettings::for_url(database.url.clone());
    db_settings.pool_size = 1;
    db_settings.max_overflow = 4;
    db_settings.read_pool_size = 2;
    db_settings.connect_timeout = Duration::from_secs(5);
    db_settings.acquire_timeout = Duration::from_secs(5);
    Settings {
        environment: Environment::Testing,
        database: db_settings,
        auth: AuthSettings::for_key("test-secret-key-of-at-least-32-bytes!!"),
        storage: StorageSettings::for_url("memory://"),
        host: "127.0.0.1".to_owned(),
        port: 0,
        log_format: LogFormat::Pretty,
        workers: WorkerSettings {
            count: 1,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_millis(25),
            shutdown_grace: Duration::from_secs(5),
            count_file: None,
        },
        story_provider: StoryProviderSettings::Builtin,
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
    spawn_app_custom(backend, |_| {}, extra_routes).await
}

/// [`spawn_app`] with settings changed by `adjust` (token lifetimes, limits...).
pub async fn spawn_app_configured(
    backend: Backend,
    adjust: impl FnOnce(&mut Settings),
) -> Option<TestApp> {
    spawn_app_custom(backend, adjust, |_| {}).await
}

async fn spawn_app_custom<F>(
    backend: Backend,
    adjust: impl FnOnce(&mut Settings),
    extra_routes: F,
) -> Option<TestApp>
where
    F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
{
    spawn_full(backend, None, adjust, extra_routes).await
}

/// [`spawn_app`] on `backend` with the object store `store`, settings changed by `adjust`.
pub async fn spawn_app_with_store(
    backend: Backend,
    store: crate::Store,
    adjust: impl FnOnce(&mut Settings),
) -> Option<TestApp> {
    spawn_full(backend, Some(store), adjust, |_| {}).await
}

/// Every statement a server sent, in order (see [`spawn_app_counting`]).
#[derive(Clone, Default)]
pub struct StatementLog(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl StatementLog {
    /// Forgets what was logged so far.
    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// The statements logged since the last [`Self::clear`].
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// [`spawn_app`] whose every statement (and BEGIN/COMMIT/ROLLBACK) is logged.
pub async fn spawn_app_counting(backend: Backend) -> Option<(TestApp, StatementLog)> {
    let log = StatementLog::default();
    let sink = log.clone();
    let observer: service::StatementObserver = std::sync::Arc::new(move |sql: &str| {
        sink.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(sql.to_owned());
    });
    let app = spawn_inner(backend, None, |_| {}, |_| {}, Some(observer)).await?;
    Some((app, log))
}

async fn spawn_full<F>(
    backend: Backend,
    store: Option<crate::Store>,
    adjust: impl FnOnce(&mut Settings),
    extra_routes: F,
) -> Option<TestApp>
where
    F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
{
    spawn_inner(backend, store, adjust, extra_routes, None).await
}

async fn spawn_inner<F>(
    backend: Backend,
    store: Option<crate::Store>,
    adjust: impl FnOnce(&mut Settings),
    extra_routes: F,
    observer: Option<service::StatementObserver>,
) -> Option<TestApp>
where
    F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
{
    let store = match store {
        Some(kind) => Some(crate::TestStore::create(kind)?),
        None => None,
    };
    let database = TestDatabase::create(backend).await?;
    let mut settings = test_settings(&database);
    if let Some(store) = &store {
        settings.storage.url = store.url.clone();
    }
    adjust(&mut settings);
    let application = Application::build_observed(&settings, extra_routes, observer)
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
        store,
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

    /// POST a JSON body, with a bearer token when given.
    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
        token: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self.client.post(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request
            .send()
            .await
            .unwrap_or_else(|error| panic!("POST {path} failed: {error}"))
    }

    /// Any method with an optional JSON body and bearer token.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
        token: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self.client.request(method.clone(), self.url(path));
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request
            .send()
            .await
            .unwrap_or_else(|error| panic!("{method} {path} failed: {error}"))
    }

    /// Uploads a small PNG as `token`'s user; panics unless 201. Returns the photo.
    pub async fn upload_png(&self, token: &str) -> serde_json::Value {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(crate::images::png(4, 4)).file_name("a.png"),
        );
        let response = self
            .client
            .post(self.url("/api/v1/photos"))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .unwrap_or_else(|error| panic!("uploading failed: {error}"));
        assert_eq!(response.status(), 201, "uploading a PNG");
        response
            .json()
            .await
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// [`Self::request`], its body parsed as JSON (panics if it is not).
    pub async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
        token: Option<&str>,
    ) -> serde_json::Value {
        self.request(method, path, body, token)
            .await
            .json()
            .await
            .unwrap_or_else(|error| panic!("{path} did not answer JSON: {error}"))
    }

    /// Registers `username` (email `username@example.com`, the given password); panics unless 201.
    pub async fn register(&self, username: &str, password: &str) -> serde_json::Value {
        let response = self
            .post_json(
                "/api/v1/auth/register",
                &serde_json::json!({
                    "username": username,
                    "email": format!("{username}@example.com"),
                    "password": password,
                }),
                None,
            )
            .await;
        assert_eq!(response.status(), 201, "registering {username}");
        response
            .json()
            .await
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// Logs in; returns the token response (panics unless 200).
    pub async fn login(&self, username: &str, password: &str) -> Tokens {
        let response = self
            .post_json(
                "/api/v1/auth/login",
                &serde_json::json!({ "username": username, "password": password }),
                None,
            )
            .await;
        assert_eq!(response.status(), 200, "logging in {username}");
        let body: serde_json::Value = response
            .json()
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        Tokens {
            access: body["access_token"].as_str().unwrap_or_default().to_owned(),
            refresh: body["refresh_token"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        }
    }

    /// Registers and logs in a user; returns its tokens.
    pub async fn signed_up(&self, username: &str) -> Tokens {
        self.register(username, "correct horse battery").await;
        self.login(username, "correct horse battery").await
    }

    /// A handle that stops the server (`stop(true)` is what SIGTERM and Ctrl-C do).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.handle.clone()
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

/// An access and a refresh token.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

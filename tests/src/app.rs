use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::web;
use api::Application;
use entity::job::{self, JobStatus};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use settings::{
    AuthSettings, DatabaseSettings, Environment, LogFormat, Settings, StorageSettings,
    StoryProviderSettings, WorkerSettings,
};

use crate::{Backend, Store, TestDatabase, TestStore};

/// The real server, started on a free port against a test's own database (and store): see
/// [`TestApp::builder`].
pub struct TestApp {
    pub address: String,
    pub port: u16,
    /// The server's own pool: rows the server wrote are visible through it.
    pub db: DatabaseConnection,
    pub client: reqwest::Client,
    handle: actix_web::dev::ServerHandle,
    /// Every job kind, with the server's own store and provider (for [`Self::run_pending_jobs`]).
    jobs: service::worker::Registry,
    worker_config: service::worker::WorkerConfig,
    statements: Option<StatementLog>,
    /// What the server was started with (for [`Self::another_server`]).
    settings: Settings,
    // Dropped last: the database and the store go away after the server.
    pub database: TestDatabase,
    pub store: Option<TestStore>,
}

/// Settings for a test server on `database`: environment `testing`, port 0, no background
/// workers (a test runs queued jobs with [`TestApp::run_pending_jobs`]).
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
            count: 0,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_millis(25),
            shutdown_grace: Duration::from_secs(5),
            count_file: None,
        },
        story_provider: StoryProviderSettings::Builtin,
        cors_origins: Vec::new(),
        metrics_addr: None,
        quotas: settings::Quotas::default(),
        trusted_proxies: Vec::new(),
        forwarded_header: settings::ForwardedHeader::default(),
        http_workers: None,
    }
}

/// Every statement a server sent, in order (see [`TestAppBuilder::counting`]).
#[derive(Clone, Default)]
pub struct StatementLog(Arc<Mutex<Vec<String>>>);

impl StatementLog {
    /// Forgets what was logged so far.
    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// The statements logged since the last [`Self::clear`].
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn observer(&self) -> service::StatementObserver {
        let sink = self.clone();
        Arc::new(move |sql: &str| {
            sink.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(sql.to_owned());
        })
    }
}

type Configure<'a> = Box<dyn FnOnce(&mut Settings) + Send + 'a>;
type Routes = Box<dyn Fn(&mut web::ServiceConfig) + Send + Sync + 'static>;

/// What [`TestApp::builder`] starts: a backend, and what a test changes.
pub struct TestAppBuilder<'a> {
    backend: Backend,
    store: Option<Store>,
    configure: Vec<Configure<'a>>,
    routes: Option<Routes>,
    counting: bool,
    workers: u16,
    on_disk: bool,
}

impl<'a> TestAppBuilder<'a> {
    /// The object store (default: in memory, with no [`TestApp::store`] to look into).
    pub fn store(mut self, store: Store) -> Self {
        self.store = Some(store);
        self
    }

    /// Changes the settings (token lifetimes, limits, the story provider ...) after the
    /// test's database, store and worker count are filled in. May be called several times.
    pub fn configure(mut self, change: impl FnOnce(&mut Settings) + Send + 'a) -> Self {
        self.configure.push(Box::new(change));
        self
    }

    /// Mounts extra routes in the real request pipeline (to probe it).
    pub fn routes(
        mut self,
        routes: impl Fn(&mut web::ServiceConfig) + Send + Sync + 'static,
    ) -> Self {
        self.routes = Some(Box::new(routes));
        self
    }

    /// Logs every statement the server sends (and BEGIN/COMMIT/ROLLBACK): [`TestApp::statements`].
    pub fn counting(mut self) -> Self {
        self.counting = true;
        self
    }

    /// Runs `count` background workers in the server (default 0: only for tests of the
    /// workers themselves; others run jobs with [`TestApp::run_pending_jobs`]).
    pub fn workers(mut self, count: u16) -> Self {
        self.workers = count;
        self
    }

    /// SQLite in a file rather than in memory, so that [`TestApp::another_server`] shares it
    /// (the other backends are shared anyway).
    pub fn on_disk(mut self) -> Self {
        self.on_disk = true;
        self
    }

    /// Creates the test's database (and store), starts the server on it on a free port.
    pub async fn spawn(self) -> TestApp {
        let TestAppBuilder {
            backend,
            store,
            configure,
            routes,
            counting,
            workers,
            on_disk,
        } = self;
        let store = store.map(TestStore::create);
        let database = if on_disk {
            TestDatabase::create_on_disk(backend).await
        } else {
            TestDatabase::create(backend).await
        };
        let mut settings = test_settings(&database);
        if let Some(store) = &store {
            settings.storage.url = store.url.clone();
        }
        settings.workers.count = workers;
        for change in configure {
            change(&mut settings);
        }
        let statements = counting.then(StatementLog::default);
        let mut builder = Application::builder(&settings);
        if let Some(routes) = routes {
            builder = builder.routes(routes);
        }
        if let Some(log) = &statements {
            builder = builder.observer(log.observer());
        }
        let application = builder
            .build()
            .await
            .unwrap_or_else(|error| panic!("the server did not start: {error}"));
        let port = application.port();
        let db = application.db().clone();
        let handle = application.handle();
        let jobs = application.jobs().clone();
        tokio::spawn(application.run_until_stopped());
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            port,
            db,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_else(|error| panic!("building the HTTP client failed: {error}")),
            handle,
            jobs,
            worker_config: service::worker::WorkerConfig::from_settings(&settings.workers),
            statements,
            settings,
            database,
            store,
        }
    }
}

/// How many times [`TestApp::run_jobs_and_retries`] goes round before it gives up.
const MAX_RETRY_ROUNDS: usize = 50;

fn describe(job: &job::Model) -> String {
    format!(
        "job {} ({}, {} attempts): {}",
        job.id,
        job.kind,
        job.attempts,
        job.last_error.as_deref().unwrap_or("no error recorded")
    )
}

impl TestApp {
    /// A test server on `backend`: set it up with the builder's methods, then
    /// [`TestAppBuilder::spawn`] it.
    pub fn builder<'a>(backend: Backend) -> TestAppBuilder<'a> {
        TestAppBuilder {
            backend,
            store: None,
            configure: Vec::new(),
            routes: None,
            counting: false,
            workers: 0,
            on_disk: false,
        }
    }

    /// The statements the server sent (see [`TestAppBuilder::counting`]).
    pub fn statements(&self) -> &StatementLog {
        self.statements
            .as_ref()
            .unwrap_or_else(|| panic!("statements are logged only when built with .counting()"))
    }

    /// Claims and runs queued jobs that are due, one at a time, until none is due, as a worker
    /// of this server would (its store and provider); returns how many ran. Jobs a run queues
    /// (a retry after its backoff, the next run of a scheduled job) are not due yet and stay.
    /// Panics if a job it ran ended `failed`: where that is the point, use
    /// [`Self::run_jobs_and_retries`].
    pub async fn run_pending_jobs(&self) -> usize {
        let failed_before = self.failed_jobs().await;
        let ran = self.run_due_jobs().await;
        let failed_now: Vec<String> = self
            .failed_jobs()
            .await
            .into_iter()
            .filter(|job| !failed_before.iter().any(|before| before.id == job.id))
            .map(|job| describe(&job))
            .collect();
        assert!(
            failed_now.is_empty(),
            "a job failed unexpectedly:\n{}",
            failed_now.join("\n")
        );
        ran
    }

    /// Runs queued jobs as [`Self::run_pending_jobs`] does and, without waiting out their
    /// backoff, their retries, until every job tried has succeeded or failed for good; returns
    /// how many runs there were. A job may end `failed` here (tests of failures use this).
    pub async fn run_jobs_and_retries(&self) -> usize {
        let mut ran = 0;
        for _ in 0..MAX_RETRY_ROUNDS {
            ran += self.run_due_jobs().await;
            // Tried and queued again: waiting out its backoff. Make it due now.
            let retries: Vec<i64> = job::Entity::find()
                .filter(job::Column::Status.eq(JobStatus::Queued))
                .filter(job::Column::Attempts.gt(0))
                .all(&self.db)
                .await
                .unwrap_or_else(|error| panic!("reading the jobs failed: {error}"))
                .into_iter()
                .map(|job| job.id)
                .collect();
            if retries.is_empty() {
                return ran;
            }
            job::Entity::update_many()
                .col_expr(
                    job::Column::RunAt,
                    Expr::value(entity::timestamps::now() - chrono::Duration::seconds(1)),
                )
                .filter(job::Column::Id.is_in(retries))
                .exec(&self.db)
                .await
                .unwrap_or_else(|error| panic!("making retries due failed: {error}"));
        }
        panic!("jobs were still being retried after {MAX_RETRY_ROUNDS} rounds");
    }

    /// Panics (naming them) if any job of this test ended `failed`.
    pub async fn assert_no_failed_jobs(&self) {
        let failed: Vec<String> = self.failed_jobs().await.iter().map(describe).collect();
        assert!(failed.is_empty(), "jobs failed:\n{}", failed.join("\n"));
    }

    async fn failed_jobs(&self) -> Vec<job::Model> {
        job::Entity::find()
            .filter(job::Column::Status.eq(JobStatus::Failed))
            .all(&self.db)
            .await
            .unwrap_or_else(|error| panic!("reading the jobs failed: {error}"))
    }

    async fn run_due_jobs(&self) -> usize {
        service::worker::run_pending(&self.db, &self.jobs, &self.worker_config, "test-runner")
            .await
            .unwrap_or_else(|error| panic!("running the queued jobs failed: {error}"))
    }

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
        self.upload_bytes(token, crate::images::png(4, 4)).await
    }

    /// `GET /api/v1/photos/{id}` as the owner of `token` sees it (panics if it is not JSON).
    pub async fn photo(&self, token: &str, id: i64) -> serde_json::Value {
        self.json(
            reqwest::Method::GET,
            &format!("/api/v1/photos/{id}"),
            None,
            Some(token),
        )
        .await
    }

    /// Uploads `bytes` (an image) as the `file` of `POST /photos` and returns the 201's photo
    /// (panics on any other answer).
    pub async fn upload_bytes(&self, token: &str, bytes: Vec<u8>) -> serde_json::Value {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name("a.png"),
        );
        let response = self
            .client
            .post(self.url("/api/v1/photos"))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .unwrap_or_else(|error| panic!("uploading failed: {error}"));
        assert_eq!(response.status(), 201, "uploading an image");
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

    /// Opens photo `id`'s event stream with `token` (panics unless it opens).
    pub async fn events(&self, token: &str, id: i64) -> crate::sse::EventStream {
        let response = self
            .client
            .get(self.url(&format!("/api/v1/photos/{id}/events")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap_or_else(|error| panic!("opening the event stream failed: {error}"));
        crate::sse::EventStream::new(response)
    }

    /// A second server on the same database and settings, with its own state (what a second
    /// API process behind a load balancer is): for what must hold across processes.
    pub async fn another_server(&self) -> OtherServer {
        assert!(
            self.settings.database.url != "sqlite::memory:",
            "another server cannot share an in-memory SQLite database: build with .on_disk()"
        );
        let application = Application::builder(&self.settings)
            .build()
            .await
            .unwrap_or_else(|error| panic!("the second server did not start: {error}"));
        let address = format!("http://127.0.0.1:{}", application.port());
        let handle = application.handle();
        tokio::spawn(application.run_until_stopped());
        OtherServer { address, handle }
    }

    /// An HTTP client whose connections come from `address` (any of 127.0.0.0/8 on Linux):
    /// a client the server sees at another address.
    pub fn client_from(address: &str) -> reqwest::Client {
        let local: std::net::IpAddr = address
            .parse()
            .unwrap_or_else(|error| panic!("{address} is not an address: {error}"));
        reqwest::Client::builder()
            .local_address(local)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_else(|error| panic!("building the HTTP client failed: {error}"))
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

/// A second server of a [`TestApp`] ([`TestApp::another_server`]); stops when dropped.
pub struct OtherServer {
    pub address: String,
    handle: actix_web::dev::ServerHandle,
}

impl OtherServer {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }
}

impl Drop for OtherServer {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// An access and a refresh token.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

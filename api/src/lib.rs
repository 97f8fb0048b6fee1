//! The HTTP server: thin handlers that parse, call `service`, and map errors.

pub mod client_address;
pub mod database;
pub mod error;
pub mod extract;
pub mod head;
pub mod json;
pub mod metrics;
pub mod openapi;
pub mod problem_pages;
pub mod request_id;
pub mod routes;
pub mod telemetry;
pub mod timestamps;
pub mod unit_of_work;
pub mod validation;
pub mod web_page;

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, middleware::from_fn, web};
use sea_orm::DatabaseConnection;
use service::auth::{AccessTokens, Throttle};
use settings::Settings;
use tracing_actix_web::TracingLogger;

pub use database::{create_database_tables, init_db};
pub use error::ApiError;
pub use extract::{AuthUser, ValidJson};
pub use unit_of_work::Db;

/// How long in-flight requests get to finish after SIGTERM / Ctrl-C.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Why the server could not start; the message is for the operator.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] service::DbError),
    #[error("object storage (AISTORY_STORAGE_URL): {0}")]
    Storage(#[from] service::storage::StorageError),
    #[error("story provider (AISTORY_STORY_PROVIDER): {0}")]
    Stories(service::ServiceError),
    #[error("the job registry: {0}")]
    Jobs(service::ServiceError),
    #[error("could not listen on {address}: {source}")]
    Bind {
        address: String,
        #[source]
        source: std::io::Error,
    },
}

/// A built server: bound to its port, database ready, not yet serving.
pub struct Application {
    port: u16,
    server: Server,
    db: DatabaseConnection,
    reads: service::ReadPool,
    /// Every job kind, with the store and provider this server uses.
    jobs: service::worker::Registry,
    /// `AISTORY_WORKERS` workers running in this process.
    workers: Option<service::worker::Workers>,
    /// Set when shutdown begins: event streams end, so the server can stop.
    shutting_down: tokio::sync::watch::Sender<bool>,
    /// SIGTERM / Ctrl-C, listened for since start-up began.
    signal: ShutdownSignal,
    /// The Prometheus listener (`AISTORY_METRICS_ADDR`).
    metrics: Option<metrics::MetricsServer>,
}

impl Application {
    /// Connects the database (migrating it in development and testing), binds the listener
    /// (port 0 picks a free one) and prepares the server.
    pub async fn build(settings: &Settings) -> Result<Self, StartupError> {
        Self::builder(settings).build().await
    }

    /// [`Self::build`] with optional extras: routes mounted beside the real ones, a statement
    /// observer (tests use both).
    pub fn builder(settings: &Settings) -> ApplicationBuilder<'_> {
        ApplicationBuilder {
            settings,
            extra_routes: None,
            observer: None,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The metrics listener's port, when `AISTORY_METRICS_ADDR` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|metrics| metrics.port)
    }

    /// The pool the server uses (tests read rows through it).
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The job kinds this server's workers run, with the server's own store and provider
    /// (tests run queued jobs inline with it: `service::worker::run_pending`).
    pub fn jobs(&self) -> &service::worker::Registry {
        &self.jobs
    }

    /// Serves until SIGTERM / Ctrl-C (or the server handle stops it), lets in-flight requests
    /// finish, then closes the pool.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Application {
            server,
            db,
            reads,
            workers,
            shutting_down,
            signal,
            metrics,
            ..
        } = self;
        let metrics = metrics.map(|metrics| {
            let handle = metrics.server.handle();
            actix_web::rt::spawn(metrics.server);
            handle
        });
        // On SIGTERM / Ctrl-C the workers stop claiming and the event streams end at once, so
        // neither holds the stop up, and the server is told to stop gracefully. actix also
        // stops on these signals by itself, but only once its own handlers are installed: a
        // signal that arrives while it is still starting would otherwise be missed (seen: a
        // SIGTERM 100 ms after start left the server running).
        let handle = server.handle();
        let mut server = std::pin::pin!(server);
        let result = tokio::select! {
            result = &mut server => result,
            () = signal.recv() => {
                tracing::info!("shutting down: finishing in-flight requests and jobs");
                let _ = shutting_down.send(true);
                if let Some(workers) = &workers {
                    workers.stop();
                }
                // The command is sent now; completion is awaited through `server` itself.
                drop(handle.stop(true));
                server.await
            }
        };
        let _ = shutting_down.send(true);
        if let Some(workers) = workers {
            workers.shutdown().await;
        }
        if let Some(metrics) = metrics {
            metrics.stop(true).await;
        }
        reads.close().await;
        if let Err(error) = service::close_db_connection(db).await {
            tracing::warn!(%error, "closing the database pool failed");
        }
        tracing::info!("server stopped");
        result
    }

    /// A handle that can stop the server.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }
}

/// Builds an [`Application`]: see [`Application::builder`].
pub struct ApplicationBuilder<'a> {
    settings: &'a Settings,
    extra_routes: Option<ExtraRoutes>,
    observer: Option<service::StatementObserver>,
}

type ExtraRoutes = std::sync::Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

impl ApplicationBuilder<'_> {
    /// Mounts extra routes in the real request pipeline (tests probe it with them).
    pub fn routes(
        mut self,
        routes: impl Fn(&mut web::ServiceConfig) + Send + Sync + 'static,
    ) -> Self {
        self.extra_routes = Some(std::sync::Arc::new(routes));
        self
    }

    /// Reports every statement the server sends to `observer` (tests count round trips per
    /// request with it).
    pub fn observer(mut self, observer: service::StatementObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Connects the database (migrating it in development and testing), binds the listener
    /// (port 0 picks a free one) and prepares the server.
    pub async fn build(self) -> Result<Application, StartupError> {
        let ApplicationBuilder {
            settings,
            extra_routes,
            observer,
        } = self;
        // From here on a SIGTERM is kept for `run_until_stopped`, even one that arrives while
        // the database is being connected.
        let signal = ShutdownSignal::install();
        if settings.metrics_addr.is_some() {
            // Before the database: start-up's own figures (migrations) are recorded too.
            metrics::recorder();
        }
        let storage = service::storage::Storage::from_url(&settings.storage.url)?;
        if settings.storage.downloads == settings::DownloadMode::Redirect && !storage.can_presign()
        {
            return Err(StartupError::Storage(
                service::storage::StorageError::Config(
                    "AISTORY_DOWNLOADS=redirect signs download URLs: set AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY, or AISTORY_DOWNLOADS=proxy"
                        .to_owned(),
                ),
            ));
        }
        let mut db = database::init_db(&settings.database, settings.environment).await?;
        let stories = service::stories::provider_from_settings(&settings.story_provider)
            .map_err(StartupError::Stories)?;
        // Workers share the pool, but are started before the observer is installed: their
        // polling is not the requests' statements.
        let jobs = service::job_handlers(
            &storage,
            stories.clone(),
            service::images::ImageLimits::from_settings(&settings.storage),
            &settings.workers,
        )
        .map_err(StartupError::Jobs)?;
        let workers = (settings.workers.count > 0).then(|| {
            service::worker::Workers::start(
                db.clone(),
                jobs.clone(),
                service::worker::WorkerConfig::from_settings(&settings.workers),
                settings.workers.count,
            )
        });
        if let Some(observer) = &observer {
            service::observe_statements(
                &mut db,
                settings.database.slow_statement,
                observer.clone(),
            );
        }
        let reads =
            service::ReadPool::new(&db, &settings.database, observer.clone()).map_err(|error| {
                service::DbError::Connect(settings.database.connection_failure(&error))
            })?;
        let metrics = match &settings.metrics_addr {
            None => None,
            Some(address) => metrics::listen(
                address,
                metrics::Sources {
                    db: db.clone(),
                    reads: Some(reads.clone()),
                },
            )
            .map_err(|source| StartupError::Bind {
                address: format!("{address} (AISTORY_METRICS_ADDR)"),
                source,
            })?,
        };
        let metrics_on = metrics.is_some();
        let address = format!("{}:{}", settings.host, settings.port);
        let listener = TcpListener::bind(&address).map_err(|source| StartupError::Bind {
            address: address.clone(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind { address, source })?
            .port();
        let auth = &settings.auth;
        // The routes table knows every route; the served document only what this deployment
        // serves (see openapi::Deployment).
        let full = openapi::document();
        let routes = openapi::RouteTable::from_document(&full);
        let document = openapi::document_for(
            full,
            &openapi::Deployment {
                direct_uploads: storage.supports_direct_upload(),
                max_upload_bytes: settings.storage.max_upload_bytes,
                redirects: settings.storage.downloads == settings::DownloadMode::Redirect,
                language_pattern: stories.language_pattern(),
            },
        );
        let (shutting_down, shutdown_seen) = tokio::sync::watch::channel(false);
        let state = web::Data::new(AppState {
            db: db.clone(),
            reads: reads.clone(),
            ready_timeout: settings
                .database
                .acquire_timeout
                .min(Duration::from_secs(2)),
            access: AccessTokens::new(&auth.secret_key, auth.access_token_ttl),
            refresh_ttl: auth.refresh_token_ttl,
            throttle: Throttle::new(auth.throttle.clone()),
            trusted_proxies: settings.trusted_proxies.clone(),
            forwarded_header: settings.forwarded_header,
            storage,
            stories,
            max_upload_bytes: settings.storage.max_upload_bytes,
            downloads: settings.storage.downloads,
            download_url_ttl: settings.storage.download_url_ttl,
            upload_limits: service::photos::UploadLimits::from_settings(settings),
            quotas: settings.quotas,
            streams: service::stories::OpenStreams::default(),
            changes: service::photos::changes::PhotoChanges::start(
                &db,
                &reads,
                &settings.database.url,
                shutdown_seen.clone(),
            ),
            upload_idle_timeout: settings.storage.upload_idle_timeout,
            routes,
            shutting_down: shutdown_seen,
        });
        // Only when observed: the unit of work reports BEGIN/COMMIT/ROLLBACK to it.
        let observer_data = observer.map(web::Data::new);
        let cors_origins = settings.cors_origins.clone();
        let http_workers = settings.http_workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        let server = HttpServer::new(move || {
            let document = document.clone();
            let mut app = App::new();
            if let Some(observer) = &observer_data {
                app = app.app_data(observer.clone());
            }
            app.wrap(error::problem_for_bare_errors())
                .wrap(from_fn(head::head_as_get))
                .wrap(from_fn(unit_of_work::unit_of_work))
                .wrap(TracingLogger::<request_id::RequestSpan>::new())
                .wrap(actix_web::middleware::Condition::new(
                    !cors_origins.is_empty(),
                    cors(&cors_origins),
                ))
                .wrap(actix_web::middleware::Condition::new(
                    metrics_on,
                    from_fn(metrics::http_metrics),
                ))
                .wrap(from_fn(request_id::request_id))
                .app_data(state.clone())
                .configure(|config| {
                    routes::configure(&mut utoipa_actix_web::service_config::ServiceConfig::new(
                        config,
                    ))
                })
                .configure(move |config| openapi::configure(config, document))
                .configure(problem_pages::configure)
                .configure(web_page::configure)
                .configure({
                    let extra_routes = extra_routes.clone();
                    move |config| {
                        if let Some(routes) = &extra_routes {
                            routes(config);
                        }
                    }
                })
                .default_service(web::to(routes::not_found))
        })
        // Slow-loris guards: the request head must arrive within 5 s (else 408), idle
        // keep-alive connections close after 5 s; an upload body that stops arriving, and a
        // JSON body (at most 64 KiB) not all there, are cut by AISTORY_UPLOAD_IDLE_TIMEOUT_SECS.
        .workers(http_workers)
        .client_request_timeout(Duration::from_secs(5))
        .keep_alive(Duration::from_secs(5))
        .shutdown_timeout(SHUTDOWN_GRACE.as_secs())
        .listen(listener)
        .map_err(|source| StartupError::Bind {
            address: format!("{}:{port}", settings.host),
            source,
        })?
        .run();
        Ok(Application {
            port,
            server,
            db,
            reads,
            jobs,
            workers,
            shutting_down,
            signal,
            metrics,
        })
    }
}

/// Cross-origin access for the browser origins of `AISTORY_CORS_ORIGINS` (`*`: any). A request
/// from another origin is served without CORS headers (its browser then hides the answer),
/// not refused: same-origin pages send `Origin` too.
fn cors(origins: &[String]) -> actix_cors::Cors {
    use actix_web::http::header;
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "HEAD", "POST", "PATCH", "DELETE"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_NONE_MATCH,
            header::HeaderName::from_static("last-event-id"),
            request_id::HEADER,
        ])
        .expose_headers([
            header::LOCATION,
            header::ETAG,
            header::RETRY_AFTER,
            header::WWW_AUTHENTICATE,
            header::CONTENT_DISPOSITION,
            request_id::HEADER,
        ])
        .block_on_origin_mismatch(false)
        .max_age(3600);
    for origin in origins {
        cors = if origin == "*" {
            cors.allow_any_origin()
        } else {
            cors.allowed_origin(origin)
        };
    }
    cors
}

/// Shared state of every worker.
pub struct AppState {
    /// The pools, for the unit-of-work middleware only: handlers reach the database through
    /// the [`Db`] extractor (`db.read()` for reads, `db.txn()` for writes).
    pub(crate) db: DatabaseConnection,
    pub(crate) reads: service::ReadPool,
    /// Bound on the readiness probe's `SELECT 1`.
    pub ready_timeout: Duration,
    /// Issues and verifies access tokens.
    pub access: AccessTokens,
    pub refresh_ttl: Duration,
    /// Throttles password checks and registrations (counts in the database).
    pub throttle: Throttle,
    /// `AISTORY_TRUSTED_PROXIES` ([`client_address`]).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `AISTORY_FORWARDED_HEADER`: the one header those proxies name the client in.
    pub forwarded_header: settings::ForwardedHeader,
    pub storage: service::storage::Storage,
    /// Who writes stories (asked at request time whether it can write a language).
    pub stories: std::sync::Arc<dyn service::stories::StoryProvider>,
    pub max_upload_bytes: u64,
    /// `AISTORY_DOWNLOADS`: bytes through this server, or a redirect to the bucket.
    pub downloads: settings::DownloadMode,
    /// `AISTORY_DOWNLOAD_URL_TTL_SECS`: how long a redirect's URL works.
    pub download_url_ttl: Duration,
    /// Bytes and pixels an upload may have, and the photos and bytes a user may hold.
    pub upload_limits: service::photos::UploadLimits,
    /// Per-user limits.
    pub quotas: settings::Quotas,
    /// Event streams open in this process, by user (for `AISTORY_QUOTA_STREAMS`).
    pub streams: service::stories::OpenStreams,
    /// What wakes the event streams when their photo changes (one listener or poller).
    pub changes: service::photos::changes::PhotoChanges,
    /// An upload body that stops arriving for this long is dropped (408).
    pub upload_idle_timeout: Duration,
    /// Which methods each path serves (for `Allow` on 405).
    pub routes: openapi::RouteTable,
    /// Becomes `true` when shutdown begins (long responses such as event streams end).
    pub shutting_down: tokio::sync::watch::Receiver<bool>,
}

/// SIGTERM and Ctrl-C (SIGINT), listened for from the moment this is made: a signal that
/// arrives while the server or the workers are still starting is kept, not lost (nor left to
/// the default action, which ends the process at once).
pub struct ShutdownSignal {
    #[cfg(unix)]
    listeners: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl ShutdownSignal {
    /// Starts listening now. Call from within the Tokio runtime.
    pub fn install() -> ShutdownSignal {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let listeners = signal(SignalKind::terminate())
                .and_then(|term| Ok((term, signal(SignalKind::interrupt())?)))
                .ok();
            ShutdownSignal { listeners }
        }
        #[cfg(not(unix))]
        ShutdownSignal {}
    }

    /// Resolves on the first SIGTERM or Ctrl-C since [`Self::install`].
    pub async fn recv(self) {
        #[cfg(unix)]
        if let Some((mut term, mut interrupt)) = self.listeners {
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

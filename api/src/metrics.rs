//! Prometheus metrics: the process's recorder, the HTTP middleware, and the listener on
//! `AISTORY_METRICS_ADDR` (its own port: never the public one). What the service counts is in
//! `service::metrics`; what each metric means: docs/operations.md (Metrics).

use std::net::TcpListener;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{App, Error, HttpResponse, HttpServer, web};
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sea_orm::DatabaseConnection;

/// Buckets of every duration histogram, in seconds (1 ms to 30 s).
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The process's Prometheus recorder, installed on first use (one per process: tests start
/// several servers in one). `None` when another recorder was installed first.
pub fn recorder() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .ok()?
                .install_recorder()
                .map_err(|error| tracing::warn!(%error, "metrics: no recorder"))
                .ok()?;
            describe();
            // The process metrics (CPU, memory, file descriptors), described once.
            process_collector().describe();
            // Histogram samples wait in buffers until drained: drained at every scrape, and
            // every 5 s here, so memory stays flat when nobody scrapes.
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".to_owned())
                .spawn(move || {
                    loop {
                        std::thread::sleep(Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                });
            if let Err(error) = spawned {
                tracing::warn!(%error, "metrics: no upkeep thread; memory grows until scraped");
            }
            Some(handle)
        })
        .clone()
}

fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// The `# HELP` lines.
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "aistory_http_requests_total",
        "HTTP requests answered, by method, route template and status"
    );
    describe_histogram!(
        "aistory_http_request_duration_seconds",
        Unit::Seconds,
        "Time to the response head, by method and route template"
    );
    describe_gauge!(
        "aistory_http_requests_in_flight",
        "HTTP requests being handled now"
    );
    describe_gauge!(
        "aistory_event_streams_open",
        "Event streams (/photos/{id}/events) open now"
    );
    describe_counter!(
        "aistory_db_statements_total",
        "SQL statements sent, by pool and outcome"
    );
    describe_histogram!(
        "aistory_db_statement_duration_seconds",
        Unit::Seconds,
        "SQL statement duration, by pool"
    );
    describe_histogram!(
        "aistory_db_acquire_duration_seconds",
        Unit::Seconds,
        "Time to get a connection (main: with BEGIN), by pool"
    );
    describe_counter!(
        "aistory_db_acquire_failures_total",
        "Connections not had within the acquire time-out (or refused), by pool"
    );
    describe_gauge!(
        "aistory_db_acquire_waiting",
        "Tasks waiting for a connection now, by pool"
    );
    describe_gauge!(
        "aistory_db_connections",
        "Open connections, by pool and state (in_use, idle)"
    );
    describe_counter!(
        "aistory_db_replica_reads_total",
        "Hot reads where a read replica is configured, by served_by (replica, primary) and \
         reason (caught_up; replica_down, lagging, replica_failed, replica_busy, no_target)"
    );
    describe_gauge!(
        "aistory_db_replica_up",
        "1 while hot reads may use the read replica, 0 while it is marked down"
    );
    describe_histogram!(
        "aistory_db_replica_wait_seconds",
        Unit::Seconds,
        "Time a hot read waited to learn whether the replica had replayed what it must see"
    );
    describe_counter!(
        "aistory_downloads_total",
        "Photo and thumbnail downloads answered, by via (api: bytes streamed by this process; \
         bucket: redirected to the store)"
    );
    describe_counter!(
        "aistory_download_bytes_total",
        Unit::Bytes,
        "Bytes of photos and thumbnails downloaded, by via (api; bucket: the object's size, \
         served by the store after the redirect)"
    );
    describe_gauge!(
        "aistory_migrations_applied",
        "Migrations applied when the process started"
    );
    describe_gauge!(
        "aistory_migrations_pending",
        "Migrations pending when the process started"
    );
    describe_gauge!(
        "aistory_jobs",
        "Jobs by kind and state (queued, retrying, running, failed)"
    );
    describe_gauge!(
        "aistory_jobs_oldest_due_age_seconds",
        Unit::Seconds,
        "Age of the oldest due job not yet claimed"
    );
    describe_histogram!(
        "aistory_job_duration_seconds",
        Unit::Seconds,
        "Job run time, by kind and outcome"
    );
    describe_counter!(
        "aistory_job_retries_total",
        "Job runs that failed and will be retried, by kind"
    );
    describe_counter!(
        "aistory_job_give_ups_total",
        "Jobs failed for good, by kind"
    );
    describe_counter!(
        "aistory_job_lease_expiries_total",
        "Jobs claimed again after their worker's lease expired, by kind"
    );
    describe_histogram!(
        "aistory_story_provider_duration_seconds",
        Unit::Seconds,
        "Story provider call time, by provider"
    );
    describe_counter!(
        "aistory_story_provider_errors_total",
        "Story provider errors, by provider and kind (transient, permanent)"
    );
    describe_counter!("aistory_uploads_total", "Photos whose bytes were stored");
    describe_counter!(
        "aistory_upload_bytes_total",
        Unit::Bytes,
        "Bytes of photos stored"
    );
    describe_counter!(
        "aistory_upload_refusals_total",
        "Uploads refused, by reason"
    );
    describe_counter!(
        "aistory_logins_total",
        "Login attempts, by outcome (success, failure, throttled)"
    );
    describe_counter!(
        "aistory_photo_changes_interruptions_total",
        "Interruptions of the photo-change watch, by reason (connected, reconnected: every \
         event stream looked again; connect_failed, listen_failed: retried with backoff; \
         poll_failed)"
    );
    describe_counter!(
        "aistory_metrics_scrape_errors_total",
        "Scrapes whose database figures could not be read"
    );
}

/// A request method as a label (`other` for extension methods: no unbounded labels).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Counts and times every request by method, route template (`/api/v1/photos/{id}`, never the
/// path with its ids; `unmatched` for unknown paths) and status.
pub async fn http_metrics(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let method = method_label(req.method());
    let started = Instant::now();
    let in_flight = InFlight::start();
    let result = next.call(req).await;
    drop(in_flight);
    let (status, route) = match &result {
        Ok(response) => (response.status(), response.request().match_pattern()),
        Err(error) => (error.as_response_error().status_code(), None),
    };
    record_request(method, route, status, started.elapsed());
    result
}

/// What [`http_metrics`] records of one answered request (`route`: its template, if matched).
pub fn record_request(
    method: &'static str,
    route: Option<String>,
    status: actix_web::http::StatusCode,
    elapsed: Duration,
) {
    let route = route.unwrap_or_else(|| "unmatched".to_owned());
    histogram!("aistory_http_request_duration_seconds", "method" => method, "route" => route.clone())
        .record(elapsed.as_secs_f64());
    counter!(
        "aistory_http_requests_total",
        "method" => method,
        "route" => route,
        "status" => status.as_str().to_owned()
    )
    .increment(1);
}

/// Counts a request being handled while it lives.
pub struct InFlight;

impl InFlight {
    pub fn start() -> InFlight {
        gauge!("aistory_http_requests_in_flight").increment(1.0);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        gauge!("aistory_http_requests_in_flight").decrement(1.0);
    }
}

/// Counts an open event stream while it lives.
pub struct OpenStream;

impl OpenStream {
    pub fn start() -> OpenStream {
        gauge!("aistory_event_streams_open").increment(1.0);
        OpenStream
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        gauge!("aistory_event_streams_open").decrement(1.0);
    }
}

/// What a scrape reads from the database besides the counters.
#[derive(Clone)]
pub struct Sources {
    pub db: DatabaseConnection,
    pub reads: Option<service::ReadPool>,
}

impl Sources {
    async fn refresh(&self) {
        let reads = self
            .reads
            .clone()
            .unwrap_or_else(|| service::ReadPool::shared(&self.db));
        reads.record_pool_metrics(&self.db);
        let queue = tokio::time::timeout(
            Duration::from_secs(2),
            service::queue::record_metrics(&self.db),
        )
        .await;
        let failure = match queue {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error.to_string()),
            Err(_) => Some("no answer within 2 s".to_owned()),
        };
        if let Some(error) = failure {
            counter!("aistory_metrics_scrape_errors_total").increment(1);
            tracing::warn!(%error, "metrics: the job queue could not be read; its gauges are stale");
        }
        process_collector().collect();
    }
}

/// The metrics listener: `GET /metrics` in the Prometheus text format.
pub struct MetricsServer {
    pub port: u16,
    pub server: Server,
}

/// Binds `address` and prepares the listener (not yet serving: await `server`).
pub fn listen(address: &str, sources: Sources) -> std::io::Result<Option<MetricsServer>> {
    let Some(handle) = recorder() else {
        return Ok(None);
    };
    let listener = TcpListener::bind(address)?;
    let port = listener.local_addr()?.port();
    let sources = Arc::new(sources);
    let server = HttpServer::new(move || {
        let (handle, sources) = (handle.clone(), sources.clone());
        App::new().route(
            "/metrics",
            web::get().to(move || {
                let (handle, sources) = (handle.clone(), sources.clone());
                async move {
                    sources.refresh().await;
                    HttpResponse::Ok()
                        .content_type("text/plain; version=0.0.4; charset=utf-8")
                        .body(handle.render())
                }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    Ok(Some(MetricsServer { port, server }))
}

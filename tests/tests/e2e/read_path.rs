//! Guard for the read path: each read endpoint costs exactly one SELECT (no BEGIN/COMMIT, no
//! session lookup), so a change that adds a round trip fails here.

use std::time::Duration;

use aistory_tests::{Backend, TestApp, TestDatabase, backend_tests, e2e_tests};
use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use service::ReadPool;
use settings::DatabaseSettings;

backend_tests!(one_photo_and_one_page_cost_one_select_each);
e2e_tests!(on Postgres:
    reads_survive_their_connections_being_cut,
    a_read_cancelled_half_way_does_not_leave_its_connection_behind,
    a_refused_read_is_unavailable_after_the_acquire_time_out,
);

async fn one_photo_and_one_page_cost_one_select_each(backend: Backend) {
    let app = TestApp::builder(backend).counting().spawn().await;
    let log = app.statements();
    let tokens = app.signed_up("reader").await;
    let mut id = 0;
    for _ in 0..3 {
        id = app.upload_png(&tokens.access).await["id"].as_i64().unwrap();
    }
    app.run_pending_jobs().await; // the thumbnails

    for (path, what) in [
        (format!("/api/v1/photos/{id}"), "one photo"),
        ("/api/v1/photos?limit=2".to_owned(), "a page of photos"),
        (
            "/api/v1/photos?limit=20&status=uploaded".to_owned(),
            "a filtered page",
        ),
        (format!("/api/v1/photos/{id}/thumbnail"), "a thumbnail"),
    ] {
        log.clear();
        let response = app
            .request(Method::GET, &path, None, Some(&tokens.access))
            .await;
        assert_eq!(response.status(), StatusCode::OK, "{what}");
        let statements = log.take();
        assert_eq!(statements.len(), 1, "{what} sent {statements:#?}");
        assert!(
            statements[0]
                .trim_start()
                .to_uppercase()
                .starts_with("SELECT"),
            "{what} sent {statements:#?}"
        );
    }
}

/// PostgreSQL: the reads run on connections of their own (`service::reads`). When the server
/// cuts them (a restart, an operator, a proxy), the next reads still answer: the broken
/// connection and the idle ones are dropped, and the read is sent again on a new connection.
async fn reads_survive_their_connections_being_cut() {
    let app = TestApp::builder(Backend::Postgres).spawn().await;
    let tokens = app.signed_up("reader").await;
    let id = app.upload_png(&tokens.access).await["id"].as_i64().unwrap();
    let one = format!("/api/v1/photos/{id}");
    let page = "/api/v1/photos?limit=5";
    let get = async |path: String| {
        app.request(Method::GET, &path, None, Some(&tokens.access))
            .await
    };
    // Two reads at once: one or two read connections are open.
    let (a, b) = tokio::join!(get(one.clone()), get(page.to_owned()));
    assert_eq!((a.status(), b.status()), (StatusCode::OK, StatusCode::OK));
    // Cut them at once (a connection lent 5 s ago would be pinged, and the cut noticed, first).

    let cut = app
        .db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "SELECT count(pg_terminate_backend(pid)) AS cut FROM pg_stat_activity \
                 WHERE datname = current_database() AND application_name = '{}'",
                service::reads::APPLICATION_NAME
            ),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "cut")
        .unwrap();
    assert!(
        (1..=2).contains(&cut),
        "the read connections (at most 2) were cut: {cut}"
    );

    for round in 0..3 {
        for path in [one.clone(), page.to_owned()] {
            let response = get(path.clone()).await;
            assert_eq!(
                response.status(),
                StatusCode::OK,
                "round {round}: {path} after the cut: {}",
                response.text().await.unwrap_or_default()
            );
        }
    }
}

async fn backend_pid(reads: &ReadPool) -> Result<i32, sea_orm::DbErr> {
    let row = reads
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT pg_backend_pid() AS pid",
        ))
        .await?
        .ok_or_else(|| sea_orm::DbErr::Custom("no row".to_owned()))?;
    row.try_get("", "pid")
}

/// PostgreSQL: a connection is lent again after a clean statement or one the server refused,
/// never after a statement left half-way (the request was cancelled): that one is replaced.
async fn a_read_cancelled_half_way_does_not_leave_its_connection_behind() {
    let database = TestDatabase::create(Backend::Postgres).await;
    let pool = database.connect().await;
    let mut settings = DatabaseSettings::for_url(database.url.clone());
    settings.read_pool_size = 1;
    let reads = ReadPool::new(&pool, &settings, None).unwrap();
    assert!(reads.is_own());

    let first = backend_pid(&reads).await.unwrap();
    assert_eq!(
        backend_pid(&reads).await.unwrap(),
        first,
        "kept between reads"
    );
    let refused = reads
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT 1 / 0 AS never",
        ))
        .await;
    assert!(refused.is_err(), "division by zero is refused");
    assert_eq!(
        backend_pid(&reads).await.unwrap(),
        first,
        "kept after a refusal"
    );

    let cancelled = tokio::time::timeout(
        Duration::from_millis(200),
        reads.query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT pg_sleep(5)",
        )),
    )
    .await;
    assert!(cancelled.is_err(), "the sleep was cancelled");
    let after = backend_pid(&reads).await.unwrap();
    assert_ne!(
        after, first,
        "a connection left mid-statement is not lent again"
    );
    reads.close().await;
    pool.close().await.unwrap();
}

/// PostgreSQL: while the server refuses connections, the read pool keeps trying until the
/// acquire time-out (as the main pool does), then answers "unavailable" (a 503), not an error
/// of ours.
async fn a_refused_read_is_unavailable_after_the_acquire_time_out() {
    let database = TestDatabase::create(Backend::Postgres).await;
    let pool = database.connect().await;
    // Nothing listens on port 1.
    let mut settings = DatabaseSettings::for_url("postgres://postgres@127.0.0.1:1/nothing");
    settings.acquire_timeout = Duration::from_millis(600);
    let reads = ReadPool::new(&pool, &settings, None).unwrap();
    let started = std::time::Instant::now();
    let error = backend_pid(&reads).await.unwrap_err();
    let took = started.elapsed();
    assert!(service::error::is_unavailable(&error), "{error:?}");
    assert!(
        took >= Duration::from_millis(400),
        "tried again until the time-out, gave up after {took:?}"
    );
    assert!(took < Duration::from_secs(5), "bounded: {took:?}");
    reads.close().await;
    pool.close().await.unwrap();
}

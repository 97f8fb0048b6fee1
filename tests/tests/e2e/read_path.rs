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
    the_hot_reads_share_one_pipelined_connection_per_thread,
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
    // Two reads at once: one or two read connections are open (pipelined ones, per thread).
    let (a, b) = tokio::join!(get(one.clone()), get(page.to_owned()));
    assert_eq!((a.status(), b.status()), (StatusCode::OK, StatusCode::OK));
    // Cut them at once (a connection lent 5 s ago would be pinged, and the cut noticed, first).

    let cut = cut_read_connections(&app.db).await;
    // The hot reads' pipelined connections (one per HTTP worker that served one: one worker
    // per CPU by default) and any pooled read connection (at most 2 reads ran at once).
    let workers = std::thread::available_parallelism().map_or(1, usize::from) as i64;
    assert!(
        (1..=workers + 2).contains(&cut),
        "the read connections (at most {}) were cut: {cut}",
        workers + 2
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

/// PostgreSQL: while the server refuses connections, the read pool (its pooled connections and
/// its pipelined ones) keeps trying until the acquire time-out (as the main pool does), then
/// answers "unavailable" (a 503), not an error of ours.
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
    // The hot reads' pipelined connections the same way.
    let started = std::time::Instant::now();
    let error = service::users::find_user(&reads, 1).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(error, service::ServiceError::Unavailable(_)),
        "{error:?}"
    );
    assert!(
        took >= Duration::from_millis(400),
        "a hot read tried again until the time-out, gave up after {took:?}"
    );
    assert!(took < Duration::from_secs(5), "bounded: {took:?}");
    reads.close().await;
    pool.close().await.unwrap();
}

/// The read connections of this database (`service::reads::APPLICATION_NAME`), counted on
/// `db`.
async fn read_connections(db: &sea_orm::DatabaseConnection) -> i64 {
    count_read_connections(db, "count(*)").await
}

/// Cuts the read connections of this database (`pg_terminate_backend`), through `db`; how many.
async fn cut_read_connections(db: &sea_orm::DatabaseConnection) -> i64 {
    count_read_connections(db, "count(pg_terminate_backend(pid))").await
}

/// `SELECT {count} FROM` the read connections of this database.
async fn count_read_connections(db: &sea_orm::DatabaseConnection, count: &str) -> i64 {
    db.query_one_raw(Statement::from_string(
        DbBackend::Postgres,
        format!(
            "SELECT {count} AS n FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = '{}'",
            service::reads::APPLICATION_NAME
        ),
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get::<i64>("", "n")
    .unwrap()
}

/// PostgreSQL: the hot reads (one photo, a page, an account) of one thread go on one pipelined
/// connection (`service::reads::pipelined`), however many run at once, none through the pooled
/// connections; a cut connection is replaced by the next read, which still answers; closing
/// the read pool closes it.
async fn the_hot_reads_share_one_pipelined_connection_per_thread() {
    let app = TestApp::builder(Backend::Postgres).spawn().await;
    let tokens = app.signed_up("reader").await;
    let id = app.upload_png(&tokens.access).await["id"].as_i64().unwrap();
    let me: serde_json::Value = app
        .request(Method::GET, "/api/v1/users/me", None, Some(&tokens.access))
        .await
        .json()
        .await
        .unwrap();
    let user = me["id"].as_i64().unwrap();
    let mut settings = DatabaseSettings::for_url(app.database.url.clone());
    settings.read_pool_size = 4;
    let reads = ReadPool::new(&app.db, &settings, None).unwrap();
    let before = read_connections(&app.db).await;

    // 16 photo reads, 16 pages and 16 accounts at once, from this one thread.
    let photos = futures_util::future::join_all(
        (0..16).map(|_| service::photos::get_photo(&reads, user, id)),
    );
    let pages = futures_util::future::join_all(
        (0..16).map(|_| service::photos::list_photos(&reads, user, None, 20, None)),
    );
    let accounts =
        futures_util::future::join_all((0..16).map(|_| service::users::find_user(&reads, user)));
    let (photos, pages, accounts) = tokio::join!(photos, pages, accounts);
    for photo in photos {
        assert_eq!(photo.unwrap().id, id);
    }
    for page in pages {
        let (rows, next) = page.unwrap();
        assert_eq!((rows.len(), next), (1, None));
        assert_eq!(rows[0].id, id);
    }
    for account in accounts {
        assert_eq!(account.unwrap().username, "reader");
    }
    assert!(matches!(
        service::photos::get_photo(&reads, user, id + 1000).await,
        Err(service::ServiceError::NotFound { .. })
    ));
    assert_eq!(
        reads.status().map(|(open, _, _)| open),
        Some(0),
        "no pooled read connection was opened"
    );
    assert_eq!(
        read_connections(&app.db).await - before,
        1,
        "one pipelined connection for this thread"
    );

    // Cut every read connection of the database: the next reads still answer.
    assert!(cut_read_connections(&app.db).await >= 1);
    for _ in 0..3 {
        assert_eq!(
            service::photos::get_photo(&reads, user, id)
                .await
                .unwrap()
                .id,
            id
        );
        assert_eq!(
            service::users::find_user(&reads, user).await.unwrap().id,
            user
        );
    }

    // A migration changes the type of a column the prepared read returns (varchar to text):
    // the statement is prepared again, the read answers.
    app.db
        .execute_unprepared("ALTER TABLE photos ALTER COLUMN content_type TYPE text")
        .await
        .unwrap();
    assert_eq!(
        service::photos::get_photo(&reads, user, id)
            .await
            .unwrap()
            .id,
        id
    );

    let open = read_connections(&app.db).await;
    reads.close().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while read_connections(&app.db).await >= open && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        read_connections(&app.db).await,
        open - 1,
        "its connection closed with the pool"
    );
}

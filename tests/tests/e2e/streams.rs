//! Event streams cost nothing while nothing happens: a stream reads its photo only when told
//! the photo changed (PostgreSQL: `LISTEN`/`NOTIFY`; SQLite and MySQL: one poller per server
//! for every watched photo), and catches up when the listening connection is lost.

use std::time::Duration;

use aistory_tests::{Backend, TestApp, backend_tests, e2e_tests};
use reqwest::Method;
use sea_orm::ConnectionTrait;
use serde_json::json;

backend_tests!(idle_streams_read_nothing_until_their_photo_changes);
e2e_tests!(on Postgres: a_stream_catches_up_after_the_listening_connection_is_cut);

/// Twenty open streams on twenty photos: after their first event, a second and a half of
/// silence reads no photo at all on PostgreSQL and at most one poll per 250 ms on the others
/// (one statement for all of them, where each stream used to read on its own); a rename
/// reaches that photo's stream, and only it.
async fn idle_streams_read_nothing_until_their_photo_changes(backend: Backend) {
    let app = TestApp::builder(backend)
        .configure(|settings| settings.quotas.streams = 100)
        .counting()
        .spawn()
        .await;
    let tokens = app.signed_up("watcher").await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(app.upload_png(&tokens.access).await["id"].as_i64().unwrap());
    }
    let mut streams = Vec::new();
    for id in &ids {
        let mut stream = app.events(&tokens.access, *id).await;
        let first = stream.next(Duration::from_secs(10)).await.unwrap();
        assert_eq!(first.name, "status");
        streams.push(stream);
    }
    app.statements().clear();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let seen = app.statements().take();
    let reads: Vec<&String> = seen
        .iter()
        .filter(|statement| statement.contains("photos"))
        .collect();
    match backend {
        Backend::Postgres => assert!(reads.is_empty(), "{reads:#?}"),
        _ => {
            assert!(reads.len() <= 7, "{} reads: {reads:#?}", reads.len());
            assert!(
                reads.iter().all(|statement| statement.contains(" IN ")),
                "only the poller reads: {reads:#?}"
            );
        }
    }
    let renamed = app
        .request(
            Method::PATCH,
            &format!("/api/v1/photos/{}", ids[3]),
            Some(&json!({"title": "renamed"})),
            Some(&tokens.access),
        )
        .await;
    assert_eq!(renamed.status(), 200);
    let event = streams[3].next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(event.data["title"], "renamed");
    for (index, stream) in streams.iter_mut().enumerate().filter(|(i, _)| *i != 3) {
        assert!(
            stream.next(Duration::from_millis(20)).await.is_none(),
            "stream {index} was told something"
        );
    }
}

/// The listening connection is cut (`pg_terminate_backend`) and the photo changes meanwhile:
/// the stream still gets the change, because every stream looks again once the server
/// listens again.
async fn a_stream_catches_up_after_the_listening_connection_is_cut() {
    let app = TestApp::builder(Backend::Postgres).spawn().await;
    let tokens = app.signed_up("cut").await;
    let id = app.upload_png(&tokens.access).await["id"].as_i64().unwrap();
    let mut stream = app.events(&tokens.access, id).await;
    assert_eq!(
        stream.next(Duration::from_secs(10)).await.unwrap().name,
        "status"
    );
    for round in 0..3 {
        // Listening (again): a cut while it connects would cut nothing.
        let db = app.db.clone();
        aistory_tests::eventually("the listener is back", || {
            let db = db.clone();
            async move {
                db.query_one_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Postgres,
                    "SELECT 1 FROM pg_stat_activity WHERE application_name = 'aistory-listen' \
                     AND datname = current_database() AND query ILIKE 'LISTEN%'",
                ))
                .await
                .unwrap()
                .is_some()
            }
        })
        .await;
        let cut = app
            .db
            .execute_unprepared(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = 'aistory-listen' AND datname = current_database()",
            )
            .await
            .unwrap();
        assert_eq!(cut.rows_affected(), 1, "one listener per server");
        let title = format!("after cut {round}");
        let renamed = app
            .request(
                Method::PATCH,
                &format!("/api/v1/photos/{id}"),
                Some(&json!({"title": title})),
                Some(&tokens.access),
            )
            .await;
        assert_eq!(renamed.status(), 200);
        let event = stream.next(Duration::from_secs(10)).await.unwrap();
        assert_eq!(event.data["title"], title.as_str());
    }
}

//! The per-request unit of work (the guide's `get_db` dependency), through real HTTP requests:
//! probe routes mounted into the real server pipeline write a user in the request's
//! transaction and then succeed, fail, or panic in various ways.

use actix_web::{HttpResponse, web};
use aistory_tests::{Backend, TestApp, backend_tests};
use api::{ApiError, Db};
use entity::user;
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, Statement};
use service::users::{NewUser, create_user};

backend_tests!(
    success_commits_before_the_response,
    error_result_rolls_back,
    error_status_rolls_back,
    panic_rolls_back_and_answers_500,
    failed_commit_is_a_5xx,
    transaction_begins_only_on_first_use,
    concurrent_requests_get_their_own_transactions,
);

/// What the probe handler does after inserting its user.
#[derive(serde::Deserialize)]
struct Probe {
    then: String,
}

async fn probe(
    db: Db,
    name: web::Path<String>,
    probe: web::Query<Probe>,
) -> Result<HttpResponse, ApiError> {
    let active_before = db.is_active().await;
    let txn = db.txn().await?;
    let created = create_user(
        &*txn,
        NewUser {
            username: name.clone(),
            email: format!("{name}@example.com"),
            password_hash: "not-a-real-hash".to_owned(),
        },
    )
    .await?;
    match probe.then.as_str() {
        "ok" => Ok(HttpResponse::Created().json(serde_json::json!({
            "id": created.id,
            "active_before": active_before,
        }))),
        "error" => Err(ApiError::Conflict {
            detail: "the probe failed on purpose".to_owned(),
        }),
        "status" => Ok(HttpResponse::BadRequest().finish()),
        "panic" => panic!("the probe panicked on purpose"),
        "break_commit" => {
            break_commit(&txn, db.pool()).await;
            Ok(HttpResponse::Created().finish())
        }
        other => Ok(HttpResponse::NotImplemented().body(other.to_owned())),
    }
}

/// Makes the coming COMMIT fail: on SQLite a deferred foreign-key violation, elsewhere the
/// transaction's connection is killed from another session.
async fn break_commit(txn: &sea_orm::DatabaseTransaction, pool: &sea_orm::DatabaseConnection) {
    let backend = txn.get_database_backend();
    match backend {
        DbBackend::Sqlite => {
            txn.execute_unprepared("PRAGMA defer_foreign_keys = ON")
                .await
                .unwrap();
            txn.execute_unprepared(
                "INSERT INTO photos (user_id, object_key, status, created_at, updated_at) \
                 VALUES (999999, 'orphan', 'pending', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
            )
            .await
            .unwrap();
        }
        DbBackend::Postgres => {
            let row = txn
                .query_one_raw(Statement::from_string(
                    backend,
                    "SELECT pg_backend_pid() AS id",
                ))
                .await
                .unwrap()
                .unwrap();
            let pid: i32 = row.try_get("", "id").unwrap();
            pool.execute_unprepared(&format!("SELECT pg_terminate_backend({pid})"))
                .await
                .unwrap();
        }
        _ => {
            let row = txn
                .query_one_raw(Statement::from_string(
                    backend,
                    "SELECT CONNECTION_ID() AS id",
                ))
                .await
                .unwrap()
                .unwrap();
            let id: u64 = row.try_get("", "id").unwrap();
            pool.execute_unprepared(&format!("KILL {id}"))
                .await
                .unwrap();
        }
    }
}

async fn untouched(db: Db) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "active": db.is_active().await }))
}

fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/probe/users/{name}", web::post().to(probe))
        .route("/probe/untouched", web::get().to(untouched));
}

async fn app(backend: Backend) -> TestApp {
    TestApp::builder(backend).routes(routes).spawn().await
}

async fn user_exists(app: &TestApp, name: &str) -> bool {
    user::Entity::find()
        .filter(user::Column::Username.eq(name))
        .one(&app.db)
        .await
        .unwrap()
        .is_some()
}

async fn success_commits_before_the_response(backend: Backend) {
    let app = app(backend).await;
    let response = app.post("/probe/users/alice?then=ok").await;
    assert_eq!(response.status(), StatusCode::CREATED);
    // Visible to another connection as soon as the response arrives: committed before sending.
    assert!(user_exists(&app, "alice").await);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["active_before"], false,
        "the transaction began before first use"
    );
}

async fn error_result_rolls_back(backend: Backend) {
    let app = app(backend).await;
    let response = app.post("/probe/users/bob?then=error").await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert!(!user_exists(&app, "bob").await);
}

async fn error_status_rolls_back(backend: Backend) {
    let app = app(backend).await;
    let response = app.post("/probe/users/carol?then=status").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(!user_exists(&app, "carol").await);
}

async fn panic_rolls_back_and_answers_500(backend: Backend) {
    let app = app(backend).await;
    let response = app.post("/probe/users/dave?then=panic").await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body = response.text().await.unwrap();
    assert!(
        !body.contains("on purpose"),
        "the panic message leaked: {body}"
    );
    assert!(!user_exists(&app, "dave").await);
    // The server keeps serving, and the connection went back to the pool clean.
    let again = app.post("/probe/users/dave?then=ok").await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert!(user_exists(&app, "dave").await);
}

async fn failed_commit_is_a_5xx(backend: Backend) {
    let app = app(backend).await;
    let response = app.post("/probe/users/erin?then=break_commit").await;
    assert!(
        response.status().is_server_error(),
        "a failed commit answered {}",
        response.status()
    );
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert!(!user_exists(&app, "erin").await);
    // The pool recovers from the broken connection.
    let again = app.post("/probe/users/erin?then=ok").await;
    assert_eq!(again.status(), StatusCode::CREATED);
}

async fn transaction_begins_only_on_first_use(backend: Backend) {
    let app = app(backend).await;
    let response = app.get("/probe/untouched").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["active"], false);
}

async fn concurrent_requests_get_their_own_transactions(backend: Backend) {
    let app = app(backend).await;
    let mut requests = Vec::new();
    for i in 0..8 {
        let then = if i % 2 == 0 { "ok" } else { "error" };
        requests.push(
            app.client
                .post(app.url(&format!("/probe/users/user{i}?then={then}")))
                .send(),
        );
    }
    let responses = futures_join_all(requests).await;
    for (i, response) in responses.into_iter().enumerate() {
        let response = response.unwrap();
        let expected = if i % 2 == 0 {
            StatusCode::CREATED
        } else {
            StatusCode::CONFLICT
        };
        assert_eq!(response.status(), expected, "request {i}");
    }
    for i in 0..8 {
        assert_eq!(
            user_exists(&app, &format!("user{i}")).await,
            i % 2 == 0,
            "user{i}"
        );
    }
}

async fn futures_join_all<F>(futures: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

use aistory_tests::{Backend, TestApp, backend_tests, e2e_tests};
use reqwest::StatusCode;

backend_tests!(
    health_and_ready_answer,
    ready_is_503_when_the_database_is_gone,
    unknown_paths_are_problem_json
);
e2e_tests!(a_graceful_stop_lets_in_flight_requests_finish);

async fn health_and_ready_answer(backend: Backend) {
    let app = TestApp::builder(backend).spawn().await;
    let health = app.get("/health").await;
    assert_eq!(health.status(), StatusCode::OK);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["status"], "ok");

    let ready = app.get("/ready").await;
    assert_eq!(ready.status(), StatusCode::OK);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
}

async fn ready_is_503_when_the_database_is_gone(backend: Backend) {
    let app = TestApp::builder(backend).spawn().await;
    // Closing the server's pool is the database going away as far as the server can tell.
    app.db.clone().close().await.unwrap();

    let ready = app.get("/ready").await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.headers()["content-type"], "application/problem+json");
    assert!(ready.headers().contains_key("retry-after"));
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["status"], 503);
    // Liveness does not depend on the database.
    assert_eq!(app.get("/health").await.status(), StatusCode::OK);
}

async fn unknown_paths_are_problem_json(backend: Backend) {
    let app = TestApp::builder(backend).spawn().await;
    let response = app.get("/no/such/thing").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], 404);
    assert_eq!(body["title"], "Not found");
    assert!(body["type"].is_string());
    assert!(body["detail"].as_str().unwrap().contains("/no/such/thing"));
}

/// Graceful stop (what SIGTERM and Ctrl-C trigger): in-flight requests finish, new ones are
/// refused, the pool is closed.
async fn a_graceful_stop_lets_in_flight_requests_finish() {
    async fn slow() -> actix_web::HttpResponse {
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        actix_web::HttpResponse::Ok().body("finished")
    }
    let app = TestApp::builder(Backend::Sqlite)
        .routes(|config| {
            config.route("/probe/slow", actix_web::web::get().to(slow));
        })
        .spawn()
        .await;
    let in_flight = tokio::spawn(app.client.get(app.url("/probe/slow")).send());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let stopped = tokio::spawn({
        let handle = app.handle();
        async move { handle.stop(true).await }
    });
    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "finished");
    stopped.await.unwrap();
    // Stopped: no new connections are served.
    let after = reqwest::Client::new()
        .get(app.url("/health"))
        .timeout(std::time::Duration::from_secs(2))
        .send()
        .await;
    assert!(
        after.is_err(),
        "the server still answers after a graceful stop"
    );
}

//! Guard for the read path: each read endpoint costs exactly one SELECT (no BEGIN/COMMIT, no
//! session lookup), so a change that adds a round trip fails here.

use aistory_tests::{Backend, backend_tests, spawn_app_counting};
use reqwest::{Method, StatusCode};

backend_tests!(one_photo_and_one_page_cost_one_select_each);

async fn one_photo_and_one_page_cost_one_select_each(backend: Backend) {
    let Some((app, log)) = spawn_app_counting(backend).await else {
        return;
    };
    let tokens = app.signed_up("reader").await;
    let mut id = 0;
    for _ in 0..3 {
        id = app.upload_png(&tokens.access).await["id"].as_i64().unwrap();
    }

    for (path, what) in [
        (format!("/api/v1/photos/{id}"), "one photo"),
        ("/api/v1/photos?limit=2".to_owned(), "a page of photos"),
        (
            "/api/v1/photos?limit=20&status=uploaded".to_owned(),
            "a filtered page",
        ),
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

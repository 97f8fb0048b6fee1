//! The OpenAPI document describes exactly what is served, and /docs renders it offline.

use aistory_tests::{Backend, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Every route the server serves. A new route must be added here and, by being registered
/// through utoipa's `service(...)`, appears in the document automatically.
const SERVED: &[(&str, &str)] = &[
    ("get", "/health"),
    ("get", "/ready"),
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/refresh"),
    ("post", "/api/v1/auth/logout"),
    ("get", "/api/v1/users/me"),
    ("patch", "/api/v1/users/me"),
    ("delete", "/api/v1/users/me"),
    ("post", "/api/v1/photos"),
    ("get", "/api/v1/photos"),
    ("post", "/api/v1/photos/uploads"),
    ("get", "/api/v1/photos/{id}"),
    ("patch", "/api/v1/photos/{id}"),
    ("delete", "/api/v1/photos/{id}"),
    ("get", "/api/v1/photos/{id}/content"),
    ("post", "/api/v1/photos/{id}/complete"),
    ("post", "/api/v1/photos/{id}/story"),
    ("get", "/api/v1/photos/{id}/story"),
    ("get", "/api/v1/photos/{id}/events"),
    ("get", "/api/v1/stories"),
    ("get", "/api/v1/stories/{id}"),
    ("delete", "/api/v1/stories/{id}"),
];

#[tokio::test]
async fn every_served_route_is_documented_and_every_documented_one_is_served() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let response = app.get("/api/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = document["paths"].as_object().unwrap();

    let mut documented = Vec::new();
    for (path, item) in paths {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                documented.push((method.to_owned(), path.clone()));
            }
        }
    }
    for (method, path) in SERVED {
        assert!(
            documented.iter().any(|(m, p)| m == method && p == path),
            "{method} {path} is served but missing from the OpenAPI document"
        );
    }
    for (method, path) in &documented {
        // A documented operation reaches a handler: not the unknown-path 404, not a 405.
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let concrete = path.replace("{id}", "1");
        let response = app.request(method.clone(), &concrete, None, None).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let unknown_path = status == StatusCode::NOT_FOUND
            && body["detail"]
                .as_str()
                .is_some_and(|d| d.ends_with(" not found") && d.contains(path.as_str()));
        assert!(
            !unknown_path && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is documented but not served ({status})"
        );
        assert!(
            SERVED
                .iter()
                .any(|(m, p)| m.eq_ignore_ascii_case(method.as_str()) && p == path),
            "{method} {path} is documented; add it to SERVED"
        );
    }
    // Protected operations declare the bearer scheme; every error status is problem+json.
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(paths["/api/v1/users/me"]["get"]["security"].is_array());
    assert!(paths["/api/v1/auth/login"]["post"]["responses"]["429"].is_object());
    assert!(document["components"]["schemas"]["Problem"].is_object());
}

#[tokio::test]
async fn routes_are_only_registered_through_the_documented_path() {
    // Routes added with `.route(...)` or `web::resource(...)` would bypass the document.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../api/src/routes");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let source = std::fs::read_to_string(&path).unwrap();
        for forbidden in [".route(", "web::resource(", "web::get()", "web::post()"] {
            assert!(
                !source.contains(forbidden),
                "{} registers a route with {forbidden}: use a #[utoipa::path] handler and \
                 `service(...)` so it is documented",
                path.display()
            );
        }
    }
}

#[tokio::test]
async fn docs_are_served_offline() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let page = app.get("/docs/").await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    // The UI's assets come from this server, not a CDN.
    assert!(
        !html.contains("https://"),
        "the docs page loads something from the internet"
    );
    let bundle = app.get("/docs/swagger-ui-bundle.js").await;
    assert_eq!(bundle.status(), StatusCode::OK);
    let init = app
        .get("/docs/swagger-initializer.js")
        .await
        .text()
        .await
        .unwrap();
    assert!(init.contains("/api/openapi.json"));
}

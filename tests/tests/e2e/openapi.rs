//! The OpenAPI document describes exactly what is served, and /docs renders it offline.

use aistory_tests::{Backend, Store, TestApp, e2e_tests};
use reqwest::{Method, StatusCode};
use serde_json::Value;

e2e_tests!(
    every_served_route_is_documented_and_every_documented_one_is_served,
    every_reference_resolves,
    routes_are_only_registered_through_the_documented_path,
    docs_are_served_offline,
);
e2e_tests!(on Sqlite with S3: the_document_describes_this_deployment);

/// Every route the server serves. A new route must be added here and, by being registered
/// through utoipa's `service(...)`, appears in the document automatically.
const SERVED: &[(&str, &str)] = &[
    ("get", "/health"),
    ("get", "/ready"),
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/refresh"),
    ("post", "/api/v1/auth/logout"),
    ("post", "/api/v1/auth/logout-all"),
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
    ("get", "/api/v1/photos/{id}/thumbnail"),
    ("post", "/api/v1/photos/{id}/complete"),
    ("post", "/api/v1/photos/{id}/story"),
    ("get", "/api/v1/photos/{id}/story"),
    ("get", "/api/v1/photos/{id}/events"),
    ("post", "/api/v1/photos/{id}/events/ticket"),
    ("get", "/api/v1/stories"),
    ("get", "/api/v1/stories/{id}"),
    ("delete", "/api/v1/stories/{id}"),
];

/// Served everywhere, documented only where they work: an S3 store with credentials.
const S3_ONLY: &[(&str, &str)] = &[
    ("post", "/api/v1/photos/uploads"),
    ("post", "/api/v1/photos/{id}/complete"),
];

fn operations(document: &Value) -> Vec<(String, String)> {
    let mut documented = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                documented.push((method.to_owned(), path.clone()));
            }
        }
    }
    documented
}

async fn every_served_route_is_documented_and_every_documented_one_is_served() {
    let app = TestApp::builder(Backend::Sqlite).spawn().await;
    let response = app.get("/api/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = document["paths"].as_object().unwrap();

    let documented = operations(&document);
    for (method, path) in SERVED {
        if S3_ONLY.contains(&(method, path)) {
            continue;
        }
        assert!(
            documented.iter().any(|(m, p)| m == method && p == path),
            "{method} {path} is served but missing from the OpenAPI document"
        );
    }
    // On this (directory) store the direct uploads are left out, and say why when called.
    for (method, path) in S3_ONLY {
        assert!(
            !documented.iter().any(|(m, p)| m == method && p == path),
            "{method} {path} is documented on a store that cannot serve it"
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

/// The document says what this deployment accepts: the direct uploads on S3, the upload limit,
/// the accepted image types, the story languages of the configured writer; operation ids are
/// unique and links lead from a new photo to what can be done with it.
async fn the_document_describes_this_deployment() {
    let app = TestApp::builder(Backend::Sqlite)
        .store(Store::S3)
        .configure(|settings| settings.storage.max_upload_bytes = 12_345)
        .spawn()
        .await;
    let document: Value = app.get("/api/openapi.json").await.json().await.unwrap();
    let documented = operations(&document);
    for (method, path) in SERVED {
        assert!(
            documented.iter().any(|(m, p)| m == method && p == path),
            "{method} {path} is served by an S3 deployment but missing from its document"
        );
    }
    let schemas = &document["components"]["schemas"];
    let direct = &schemas["DirectUploadRequest"]["properties"];
    assert_eq!(direct["size_bytes"]["maximum"], 12_345, "{direct}");
    let types = direct["content_type"]["enum"].as_array().unwrap();
    assert!(types.contains(&Value::from("image/jpeg")), "{types:?}");
    assert!(types.contains(&Value::from("image/heic")), "{types:?}");
    // The built-in writer writes English only.
    let language = schemas["StoryRequestBody"]["properties"]["language"]["pattern"]
        .as_str()
        .unwrap();
    assert_eq!(language, "^[Ee][Nn](-[A-Za-z0-9]{1,8})*$");
    let upload = &document["paths"]["/api/v1/photos"]["post"];
    let file_types =
        upload["requestBody"]["content"]["multipart/form-data"]["encoding"]["file"]["contentType"]
            .as_str()
            .unwrap();
    assert!(file_types.contains("image/png"), "{file_types}");
    // A new password or email needs the current password.
    for field in ["password", "email"] {
        assert_eq!(
            schemas["UpdateMeRequest"]["dependentRequired"][field],
            serde_json::json!(["current_password"]),
            "{field}"
        );
    }

    let mut ids = Vec::new();
    for (method, path) in &documented {
        let id = document["paths"][path][method]["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
        assert!(!ids.contains(&id), "operationId {id} is used twice");
        ids.push(id);
    }
    let links = upload["responses"]["201"]["links"].as_object().unwrap();
    assert_eq!(links["get_photo"]["operationId"], "get_photo");
    assert_eq!(links["get_photo"]["parameters"]["id"], "$response.body#/id");
    for link in links.values() {
        let target = link["operationId"].as_str().unwrap();
        assert!(ids.contains(&target), "a link leads to unknown {target}");
    }
}

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

async fn docs_are_served_offline() {
    let app = TestApp::builder(Backend::Sqlite).spawn().await;
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

/// Every `$ref` names a schema the document has (generators refuse the operation otherwise),
/// on a local store and on an S3 store (where more operations are documented).
async fn every_reference_resolves() {
    fn refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map {
                    match (key.as_str(), inner) {
                        ("$ref", Value::String(target)) => out.push(target.clone()),
                        _ => refs(inner, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| refs(item, out)),
            _ => {}
        }
    }
    let app = TestApp::builder(Backend::Sqlite).spawn().await;
    let document: Value = app.get("/api/openapi.json").await.json().await.unwrap();
    let mut found = Vec::new();
    refs(&document, &mut found);
    assert!(found.len() > 20, "{found:?}");
    for target in found {
        let pointer = target.trim_start_matches('#');
        assert!(
            target.starts_with("#/") && document.pointer(pointer).is_some(),
            "{target} does not resolve"
        );
    }
}

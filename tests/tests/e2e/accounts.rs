//! Accounts over HTTP: register, login, tokens, refresh rotation and reuse, throttling,
//! /users/me, and the error conventions.

use std::time::Duration;

use aistory_tests::{Backend, Store, TestApp, backend_tests, e2e_tests};
use entity::prelude::*;
use reqwest::{Method, StatusCode};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait, PaginatorTrait};
use serde_json::{Value, json};

backend_tests!(
    register_login_and_me,
    registration_errors_name_what_to_fix,
    wrong_credentials_look_the_same,
    failed_logins_are_throttled,
    failed_logins_from_one_address_are_throttled,
    expired_and_forged_tokens_are_refused,
    refresh_rotates_and_reuse_revokes_the_family,
    logout_revokes,
    patch_me_changes_email_and_password,
    delete_me_removes_everything_owned,
    request_ids_and_bare_errors,
    a_token_signed_with_the_old_development_key_is_refused,
);
e2e_tests!(a_stalled_json_body_times_out);

async fn problem(response: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json",
        "a {status} must be problem+json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16());
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    body
}

async fn register_login_and_me(backend: Backend) {
    let app = TestApp::builder(backend).spawn().await;
    let user = app.register("ada", "correct horse battery").await;
    assert_eq!(user["username"], "ada");
    assert_eq!(user["email"], "ada@example.com");
    assert!(
        user.get("password_hash").is_none() && user.get("password").is_none(),
        "{user}"
    );

    // By username and by email (any case).
    let tokens = app.login("ada", "correct horse battery").await;
    app.login("ADA@example.com", "correct horse battery").await;
    let response = app
        .post_json(
            "/api/v1/auth/login",
            &json!({"username": "ada", "password": "correct horse battery"}),
            None,
        )
        .await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 900);

    let me = app
        .request(Method::GET, "/api/v1/users/me", None, Some(&tokens.access))
        .await;
    assert_eq!(me.status(), StatusCode::OK);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["id"], user["id"]);

    let anonymous = app
        .request(Method::GET, "/api/v1/users/me", None, None)
        .await;
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        r#"Bearer realm="aistory""#
    );
    problem(anonymous, StatusCode::UNAUTHORIZED).await;
}

async fn registration_errors_name_what_to_fix(backend: Backend) {
    let app = TestApp::builder(backend).spawn().await;
    let register = |body: Value| {
        let app = &app;
        async move { app.post_json("/api/v1/auth/register", &body, None).await }
    };
    let good =
        json!({"username": "grace", "email": "grace@example.com", "password": "long enough"});

    for (field, value) in [
        ("username", json!("ab")),
        ("username", json!("has space")),
        ("username", json!("x".repeat(33))),
        ("email", json!("not-an-email")),
        ("email", json!("nul\u{0}@example.com")),
        ("password", json!("short")),
        ("password", json!("x".repeat(129))),
        ("password", json!("nul byte \u{0} inside")),
        ("username", json!(42)),
    ] {
        let mut body = good.clone();
        body[field] = value.clone();
        let answer = problem(register(body).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(
            answer["errors"][field].is_array(),
            "{field}={value}: {answer}"
        );
    }
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("password");
    let answer = problem(register(missing).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        answer["errors"]["password"][0]
            .as_str()
            .unwrap()
            .contains("required")
    );
    let mut extra = good.clone();
    extra["is_admin"] = json!(true);
    let answer = problem(register(extra).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(answer["errors"]["is_admin"].is_array(), "{answer}");

    let malformed = app
        .client
        .post(app.url("/api/v1/auth/register"))
        .header("content-type", "application/json")
        .body("{\"username\": ")
        .send()
        .await
        .unwrap();
    problem(malformed, StatusCode::BAD_REQUEST).await;
    let wrong_type = app
        .client
        .post(app.url("/api/v1/auth/register"))
        .header("content-type", "text/plain")
        .body(good.to_string())
        .send()
        .await
        .unwrap();
    problem(wrong_type, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    let huge = app
        .client
        .post(app.url("/api/v1/auth/register"))
        .header("content-type", "application/json")
        .body(format!("{{\"username\": \"{}\"}}", "x".repeat(200_000)))
        .send()
        .await
        .unwrap();
    problem(huge, StatusCode::PAYLOAD_TOO_LARGE).await;

    assert_eq!(register(good.clone()).await.status(), StatusCode::CREATED);
    let mut same_name = good.clone();
    same_name["email"] = json!("other@example.com");
    let answer = problem(register(same_name).await, StatusCode::CONFLICT).await;
    assert!(
        answer["detail"].as_str().unwrap().contains("username"),
        "{answer}"
    );
    let mut same_email = good.clone();
    same_email["username"] = json!("grace2");
    same_email["email"] = json!("GRACE@example.com");
    let answer = problem(register(same_email).await, StatusCode::CONFLICT).await;
    assert!(
        answer["detail"].as_str().unwrap().contains("email"),
        "{answer}"
    );
}

async fn wrong_credentials_look_the_same(backend: Backend) {
    let app = TestApp::builder(backend).spawn().await;
    app.register("alan", "correct horse battery").await;
    let wrong_password = app
        .post_json(
            "/api/v1/auth/login",
            &json!({"username": "alan", "password": "wrong password"}),
            None,
        )
        .await;
    let wrong_password = problem(wrong_password, StatusCode::UNAUTHORIZED).await;
    let unknown = app
        .post_json(
            "/api/v1/auth/login",
            &json!({"username": "nobody", "password": "wrong password"}),
            None,
        )
        .await;
    let unknown = problem(unknown, StatusCode::UNAUTHORIZED).await;
    assert_eq!(wrong_password["detail"], unknown["detail"]);
}

async fn attempt(app: &TestApp, username: &str, password: &str) -> reqwest::Response {
    app.post_json(
        "/api/v1/auth/login",
        &json!({"username": username, "password": password}),
        None,
    )
    .await
}

async fn failed_logins_are_throttled(backend: Backend) {
    let app = TestApp::builder(backend).spawn().await;
    app.register("eve", "correct horse battery").await;
    for _ in 0..5 {
        assert_eq!(
            attempt(&app, "eve", "wrong password").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let blocked = attempt(&app, "eve", "correct horse battery").await;
    let retry_after: u64 = blocked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    problem(blocked, StatusCode::TOO_MANY_REQUESTS).await;
    // Other accounts are not affected.
    app.register("frank", "correct horse battery").await;
    app.login("frank", "correct horse battery").await;
}

async fn failed_logins_from_one_address_are_throttled(backend: Backend) {
    let app = TestApp::builder(backend)
        .configure(|settings| {
            settings.auth.throttle.max_failures_per_address = 3;
        })
        .spawn()
        .await;
    for name in ["u1", "u2", "u3"] {
        assert_eq!(
            attempt(&app, name, "wrong password").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    problem(
        attempt(&app, "u4", "wrong password").await,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
}

async fn expired_and_forged_tokens_are_refused(backend: Backend) {
    let app = TestApp::builder(backend)
        .configure(|settings| {
            settings.auth.access_token_ttl = Duration::from_secs(1);
        })
        .spawn()
        .await;
    let tokens = app.signed_up("tess").await;
    let ok = app
        .request(Method::GET, "/api/v1/users/me", None, Some(&tokens.access))
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let expired = app
        .request(Method::GET, "/api/v1/users/me", None, Some(&tokens.access))
        .await;
    assert!(
        expired.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    let body = problem(expired, StatusCode::UNAUTHORIZED).await;
    assert!(
        body["detail"].as_str().unwrap().contains("expired"),
        "{body}"
    );

    // Signed with another key, garbage, wrong scheme.
    let foreign = service::auth::AccessTokens::new(&"z".repeat(40), Duration::from_secs(60))
        .issue(service::auth::TokenUser {
            user_id: 1,
            generation: 0,
        })
        .unwrap()
        .0;
    for token in [foreign.as_str(), "garbage", "a.b.c"] {
        let response = app
            .request(Method::GET, "/api/v1/users/me", None, Some(token))
            .await;
        problem(response, StatusCode::UNAUTHORIZED).await;
    }
    let basic = app
        .client
        .get(app.url("/api/v1/users/me"))
        .header("authorization", "Basic YWRhOnB3")
        .send()
        .await
        .unwrap();
    problem(basic, StatusCode::UNAUTHORIZED).await;
}

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.post_json(
        "/api/v1/auth/refresh",
        &json!({"refresh_token": token}),
        None,
    )
    .await
}

async fn refresh_rotates_and_reuse_revokes_the_family(backend: Backend) {
    let app = TestApp::builder(backend).spawn().await;
    let first = app.signed_up("rita").await;
    let rotated = refresh(&app, &first.refresh).await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let rotated: Value = rotated.json().await.unwrap();
    let second = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first.refresh);
    let access = rotated["access_token"].as_str().unwrap();
    let me = app
        .request(Method::GET, "/api/v1/users/me", None, Some(access))
        .await;
    assert_eq!(me.status(), StatusCode::OK);

    // Reusing the rotated token: refused, and the whole family is revoked.
    let reuse = problem(
        refresh(&app, &first.refresh).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert!(
        reuse["detail"].as_str().unwrap().contains("already used"),
        "{reuse}"
    );
    problem(refresh(&app, &second).await, StatusCode::UNAUTHORIZED).await;

    // Another login is another family, unaffected.
    let other = app.login("rita", "correct horse battery").await;
    assert_eq!(refresh(&app, &other.refresh).await.status(), StatusCode::OK);
    problem(
        refresh(&app, "never-issued").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // Stored only as hashes.
    let stored = entity::refresh_token::Entity::find()
        .all(&app.db)
        .await
        .unwrap();
    assert!(
        stored
            .iter()
            .all(|row| row.token_hash.len() == 64 && row.token_hash != other.refresh)
    );
}

async fn logout_revokes(backend: Backend) {
    let app = TestApp::builder(backend).spawn().await;
    let tokens = app.signed_up("lou").await;
    let out = app
        .post_json(
            "/api/v1/auth/logout",
            &json!({"refresh_token": tokens.refresh}),
            None,
        )
        .await;
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    problem(
        refresh(&app, &tokens.refresh).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // Logging out twice, or with an unknown token, is fine.
    let again = app
        .post_json(
            "/api/v1/auth/logout",
            &json!({"refresh_token": tokens.refresh}),
            None,
        )
        .await;
    assert_eq!(again.status(), StatusCode::NO_CONTENT);
}

async fn patch_me_changes_email_and_password(backend: Backend) {
    let app = TestApp::builder(backend).spawn().await;
    let tokens = app.signed_up("pat").await;
    app.register("taken", "correct horse battery").await;
    let patch = |body: Value| {
        let app = &app;
        let access = tokens.access.clone();
        async move {
            app.request(
                Method::PATCH,
                "/api/v1/users/me",
                Some(&body),
                Some(&access),
            )
            .await
        }
    };
    // A new address needs the password: missing (422), wrong (403), right (200).
    let body = problem(
        patch(json!({"email": "Pat.New@Example.com"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(body["errors"]["current_password"].is_array(), "{body}");
    problem(
        patch(json!({"email": "Pat.New@Example.com", "current_password": "guess"})).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    let changed = patch(json!({
        "email": "Pat.New@Example.com",
        "current_password": "correct horse battery",
    }))
    .await;
    assert_eq!(changed.status(), StatusCode::OK);
    let changed: Value = changed.json().await.unwrap();
    assert_eq!(changed["email"], "pat.new@example.com");

    problem(
        patch(json!({"email": "taken@example.com", "current_password": "correct horse battery"}))
            .await,
        StatusCode::CONFLICT,
    )
    .await;
    let body = problem(
        patch(json!({"password": "brand new password"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(body["errors"]["current_password"].is_array(), "{body}");
    let body = problem(
        patch(json!({"password": "brand new password", "current_password": "wrong one"})).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("current_password is wrong")),
        "{body}"
    );
    problem(
        patch(json!({"username": "renamed"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    let ok = patch(
        json!({"password": "brand new password", "current_password": "correct horse battery"}),
    )
    .await;
    assert_eq!(ok.status(), StatusCode::OK);
    // Every refresh token of the account is revoked; the new password works, the old does not.
    problem(
        refresh(&app, &tokens.refresh).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    app.login("pat", "brand new password").await;
    problem(
        attempt(&app, "pat", "correct horse battery").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

async fn delete_me_removes_everything_owned(backend: Backend) {
    let app = TestApp::builder(backend).store(Store::File).spawn().await;
    let tokens = app.signed_up("dana").await;
    let keep = app.signed_up("kim").await;
    let me: Value = app
        .json(Method::GET, "/api/v1/users/me", None, Some(&tokens.access))
        .await;
    let id = me["id"].as_i64().unwrap();
    for key in ["a.jpg", "b.jpg"] {
        entity::photo::ActiveModel {
            user_id: Set(id),
            object_key: Set(format!("users/{id}/photos/{key}")),
            ..sea_orm::ActiveModelBehavior::new()
        }
        .insert(&app.db)
        .await
        .unwrap();
    }
    // And one real upload, whose object must go too.
    app.upload_png(&tokens.access).await;
    assert_eq!(app.store.as_ref().unwrap().files().len(), 1);
    // The password is needed: none (422), a wrong one (403), then the right one.
    for (body, status) in [
        (None, StatusCode::UNSUPPORTED_MEDIA_TYPE),
        (Some(json!({})), StatusCode::UNPROCESSABLE_ENTITY),
        (
            Some(json!({"current_password": "guess"})),
            StatusCode::FORBIDDEN,
        ),
    ] {
        let refused = app
            .request(
                Method::DELETE,
                "/api/v1/users/me",
                body.as_ref(),
                Some(&tokens.access),
            )
            .await;
        assert_eq!(refused.status(), status, "{body:?}");
    }
    assert!(User::find_by_id(id).one(&app.db).await.unwrap().is_some());
    let deleted = app
        .request(
            Method::DELETE,
            "/api/v1/users/me",
            Some(&json!({"current_password": "correct horse battery"})),
            Some(&tokens.access),
        )
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert!(User::find_by_id(id).one(&app.db).await.unwrap().is_none());
    // The objects go through a job queued in the deleting transaction.
    app.run_pending_jobs().await;
    let files = app.store.as_ref().unwrap().files();
    assert!(
        files.is_empty(),
        "the account's objects are left: {files:?}"
    );
    assert_eq!(Photo::find().count(&app.db).await.unwrap(), 0);
    let tokens_left = entity::refresh_token::Entity::find()
        .all(&app.db)
        .await
        .unwrap();
    assert!(tokens_left.iter().all(|row| row.user_id != id));
    // The old access token no longer works; the account cannot log in; others are untouched.
    problem(
        app.request(Method::GET, "/api/v1/users/me", None, Some(&tokens.access))
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    problem(
        attempt(&app, "dana", "correct horse battery").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let other = app
        .request(Method::GET, "/api/v1/users/me", None, Some(&keep.access))
        .await;
    assert_eq!(other.status(), StatusCode::OK);
}

async fn request_ids_and_bare_errors(backend: Backend) {
    let app = TestApp::builder(backend).spawn().await;
    let echoed = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "client-id_1.2")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "client-id_1.2");
    let replaced = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "bad id!")
        .send()
        .await
        .unwrap();
    let generated = replaced.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(generated, "bad id!");
    assert!(!generated.is_empty());
    // Errors carry it too; a wrong method on a known path is problem+json.
    let wrong_method = app
        .request(Method::GET, "/api/v1/auth/login", None, None)
        .await;
    assert!(wrong_method.headers().contains_key("x-request-id"));
    assert_eq!(wrong_method.headers()["allow"], "POST");
    problem(wrong_method, StatusCode::METHOD_NOT_ALLOWED).await;
}

/// A JSON body that stops arriving (slow loris on an endpoint that needs no token) is cut off
/// with 408 after the upload idle time-out; other clients are served meanwhile.
async fn a_stalled_json_body_times_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::builder(Backend::Sqlite)
        .configure(|settings| {
            settings.storage.upload_idle_timeout = Duration::from_secs(1);
        })
        .spawn()
        .await;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    stream
        .write_all(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n\
              Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"username\": \"a",
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let health = app.get("/health").await;
    assert_eq!(health.status(), StatusCode::OK, "another client is served");
    let mut response = vec![0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut response))
        .await
        .expect("the stalled JSON body was never answered")
        .unwrap();
    let text = String::from_utf8_lossy(&response[..read]).to_string();
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("did not arrive within 1 s"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// No shared development key: a token signed with the constant earlier releases used
/// outside production is refused by a server started without `AISTORY_SECRET_KEY`.
async fn a_token_signed_with_the_old_development_key_is_refused(backend: Backend) {
    let app = TestApp::builder(backend)
        .configure(|settings| {
            settings.auth = settings::Settings::from_lookup(|_| None)
                .expect("the default settings")
                .auth;
        })
        .spawn()
        .await;
    let user = app.register("victim", "correct horse battery").await;
    let id = user["id"].as_i64().unwrap();
    let old = service::auth::AccessTokens::new(
        "insecure-development-key-do-not-use-in-production!!",
        Duration::from_secs(900),
    );
    let (forged, _) = old
        .issue(service::auth::TokenUser {
            user_id: id,
            generation: 0,
        })
        .unwrap();
    let response = app
        .request(Method::GET, "/api/v1/users/me", None, Some(&forged))
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // The server's own tokens work.
    let tokens = app.login("victim", "correct horse battery").await;
    let me = app
        .request(Method::GET, "/api/v1/users/me", None, Some(&tokens.access))
        .await;
    assert_eq!(me.status(), StatusCode::OK);
}

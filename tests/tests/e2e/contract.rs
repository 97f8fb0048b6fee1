//! The HTTP contract generated clients and browsers rely on: HEAD, weak ETags, one 422 shape
//! wherever the mistake is, problem types that resolve to pages, `Location` on creation,
//! event streams that stay open and resume, stream tickets, CORS, and `taken_at`.

use std::time::Duration;

use aistory_tests::images::jpeg_taken;
use aistory_tests::sse::EventStream;
use aistory_tests::{Backend, TestApp, e2e_tests};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

e2e_tests!(
    head_answers_every_get_route,
    weak_etags_match_if_none_match,
    invalid_input_is_the_same_422_wherever_it_is,
    problem_types_resolve_to_pages,
    register_has_a_location_and_taken_fields_are_named,
    a_story_request_needs_no_body,
    event_streams_stay_open_and_resume_with_last_event_id,
    a_browser_follows_a_photo_with_a_stream_ticket,
    cors_preflight_is_allowed_for_configured_origins_only,
    taken_at_is_an_instant_only_with_an_exif_offset,
);

async fn upload(app: &TestApp, token: &str, bytes: Vec<u8>) -> Value {
    app.upload_bytes(token, bytes).await
}

async fn send(request: reqwest::RequestBuilder) -> reqwest::Response {
    request.send().await.unwrap()
}

async fn head_answers_every_get_route() {
    let app = TestApp::builder(Backend::Sqlite).spawn().await;
    let tokens = app.signed_up("header").await;
    let photo = app.upload_png(&tokens.access).await;
    let id = photo["id"].as_i64().unwrap();
    for (path, token) in [
        ("/health".to_owned(), None),
        ("/api/openapi.json".to_owned(), None),
        ("/api/v1/users/me".to_owned(), Some(&tokens.access)),
        (format!("/api/v1/photos/{id}"), Some(&tokens.access)),
        (format!("/api/v1/photos/{id}/content"), Some(&tokens.access)),
        ("/api/v1/photos?limit=5".to_owned(), Some(&tokens.access)),
    ] {
        let with_token = |request: reqwest::RequestBuilder| match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let get = send(with_token(app.client.get(app.url(&path)))).await;
        let head = send(with_token(app.client.head(app.url(&path)))).await;
        assert_eq!(head.status(), StatusCode::OK, "HEAD {path}");
        assert_eq!(get.status(), StatusCode::OK, "GET {path}");
        for name in ["content-type", "content-length", "etag", "cache-control"] {
            assert_eq!(
                head.headers().get(name),
                get.headers().get(name),
                "HEAD {path}: {name}"
            );
        }
        assert!(head.headers().contains_key("x-request-id"));
        assert!(
            head.bytes().await.unwrap().is_empty(),
            "HEAD {path} sent a body"
        );
    }
    // An event stream: the headers, and the answer ends at once.
    let head = tokio::time::timeout(
        Duration::from_secs(5),
        send(
            app.client
                .head(app.url(&format!("/api/v1/photos/{id}/events")))
                .bearer_auth(&tokens.access),
        ),
    )
    .await
    .expect("HEAD on an event stream ends at once");
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["content-type"], "text/event-stream");
    // A path without GET: 405 with its methods.
    let refused = send(app.client.head(app.url("/api/v1/auth/login"))).await;
    assert_eq!(refused.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(refused.headers()["allow"], "POST");
    // HEAD needs the same credentials as GET.
    let anonymous = send(app.client.head(app.url(&format!("/api/v1/photos/{id}")))).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

async fn weak_etags_match_if_none_match() {
    let app = TestApp::builder(Backend::Sqlite).spawn().await;
    let tokens = app.signed_up("cacher").await;
    let photo = app.upload_png(&tokens.access).await;
    let id = photo["id"].as_i64().unwrap();
    let checksum = photo["checksum_sha256"].as_str().unwrap();
    let path = format!("/api/v1/photos/{id}/content");
    let conditional = async |value: String| {
        send(
            app.client
                .get(app.url(&path))
                .bearer_auth(&tokens.access)
                .header("if-none-match", value),
        )
        .await
    };
    let strong = conditional(format!("\"{checksum}\"")).await;
    assert_eq!(strong.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(strong.headers()["etag"], format!("\"{checksum}\""));
    let weak = conditional(format!("W/\"{checksum}\"")).await;
    assert_eq!(
        weak.status(),
        StatusCode::NOT_MODIFIED,
        "a weak tag matches"
    );
    let listed = conditional(format!("\"other\", W/\"{checksum}\"")).await;
    assert_eq!(listed.status(), StatusCode::NOT_MODIFIED);
    let other = conditional("W/\"other\"".to_owned()).await;
    assert_eq!(other.status(), StatusCode::OK);
    let any = conditional("*".to_owned()).await;
    assert_eq!(any.status(), StatusCode::NOT_MODIFIED);
}

/// A problem+json answer's body, after checking the shape shared by every 422.
async fn validation_problem(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["detail", "errors", "status", "title", "type"],
        "{body}"
    );
    assert_eq!(body["type"], "/problems/validation");
    assert_eq!(body["status"], 422);
    body
}

async fn invalid_input_is_the_same_422_wherever_it_is() {
    let app = TestApp::builder(Backend::Sqlite).spawn().await;
    let tokens = app.signed_up("mistaken").await;
    let token = Some(tokens.access.as_str());
    let photo = app.upload_png(&tokens.access).await;
    let id = photo["id"].as_i64().unwrap();

    let query = validation_problem(
        app.request(Method::GET, "/api/v1/photos?limit=abc", None, token)
            .await,
    )
    .await;
    assert_eq!(query["errors"]["limit"], json!(["must be a whole number"]));
    let range = validation_problem(
        app.request(Method::GET, "/api/v1/photos?limit=0", None, token)
            .await,
    )
    .await;
    assert!(range["errors"]["limit"].is_array(), "{range}");
    let status = validation_problem(
        app.request(Method::GET, "/api/v1/photos?status=lost", None, token)
            .await,
    )
    .await;
    assert!(
        status["errors"]["status"][0]
            .as_str()
            .unwrap()
            .contains("`uploaded`"),
        "{status}"
    );
    let path = validation_problem(
        app.request(Method::GET, "/api/v1/photos/abc", None, token)
            .await,
    )
    .await;
    assert_eq!(
        path["errors"]["id"],
        json!(["must be a whole number (an id)"])
    );
    assert!(
        !path.to_string().contains("deserialize"),
        "no parser internals: {path}"
    );
    let story = validation_problem(
        app.request(Method::GET, "/api/v1/stories?photo_id=x", None, token)
            .await,
    )
    .await;
    assert!(story["errors"]["photo_id"].is_array(), "{story}");
    let body = validation_problem(
        app.request(
            Method::PATCH,
            &format!("/api/v1/photos/{id}"),
            Some(&json!({"title": 5})),
            token,
        )
        .await,
    )
    .await;
    assert!(body["errors"]["title"].is_array(), "{body}");
    let long = validation_problem(
        app.request(
            Method::PATCH,
            &format!("/api/v1/photos/{id}"),
            Some(&json!({"title": "x".repeat(201)})),
            token,
        )
        .await,
    )
    .await;
    let message = long["errors"]["title"][0].as_str().unwrap();
    assert!(message.contains("200"), "a message in words: {long}");

    // Unknown query parameters are ignored.
    let page = app
        .request(
            Method::GET,
            "/api/v1/photos?limit=5&utm_source=mail",
            None,
            token,
        )
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    let page: Value = page.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert!(
        page.as_object().unwrap().contains_key("next_cursor") && page["next_cursor"].is_null(),
        "the last page says null: {page}"
    );
}

async fn problem_types_resolve_to_pages() {
    let app = TestApp::builder(Backend::Sqlite).spawn().await;
    let mut seen = Vec::new();
    for response in [
        app.get("/api/v1/users/me").await,
        app.get("/nowhere").await,
        app.post_json("/api/v1/auth/register", &json!({"username": 1}), None)
            .await,
        app.request(Method::DELETE, "/health", None, None).await,
    ] {
        let body: Value = response.json().await.unwrap();
        let kind = body["type"].as_str().unwrap().to_owned();
        assert!(kind.starts_with("/problems/"), "{body}");
        let page = app.get(&kind).await;
        assert_eq!(page.status(), StatusCode::OK, "{kind}");
        assert!(
            page.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let text = page.text().await.unwrap();
        assert!(text.contains(body["title"].as_str().unwrap()), "{text}");
        assert!(text.contains("What to do"), "{text}");
        seen.push(kind);
    }
    let index = app.get("/problems").await.text().await.unwrap();
    for kind in &seen {
        assert!(
            index.contains(kind.as_str()),
            "{kind} missing from the list"
        );
    }
    let unknown = app.get("/problems/no-such-kind").await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

async fn register_has_a_location_and_taken_fields_are_named() {
    let app = TestApp::builder(Backend::Sqlite).spawn().await;
    let account = json!({"username": "unique", "email": "unique@example.com", "password": "correct horse battery"});
    let created = app.post_json("/api/v1/auth/register", &account, None).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(created.headers()["location"], "/api/v1/users/me");
    for (body, field) in [
        (
            json!({"username": "unique", "email": "other@example.com", "password": "correct horse battery"}),
            "username",
        ),
        (
            json!({"username": "other", "email": "UNIQUE@example.com", "password": "correct horse battery"}),
            "email",
        ),
    ] {
        let response = app.post_json("/api/v1/auth/register", &body, None).await;
        assert_eq!(response.status(), StatusCode::CONFLICT);
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["type"], "/problems/already-taken", "{problem}");
        let fields: Vec<&String> = problem["errors"].as_object().unwrap().keys().collect();
        assert_eq!(fields, [field], "{problem}");
    }
}

async fn a_story_request_needs_no_body() {
    let app = TestApp::builder(Backend::Sqlite).spawn().await;
    let tokens = app.signed_up("terse").await;
    let photo = app.upload_png(&tokens.access).await;
    let id = photo["id"].as_i64().unwrap();
    let response = send(
        app.client
            .post(app.url(&format!("/api/v1/photos/{id}/story")))
            .bearer_auth(&tokens.access),
    )
    .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    app.run_pending_jobs().await;
    let story = app
        .json(
            Method::GET,
            &format!("/api/v1/photos/{id}/story"),
            None,
            Some(&tokens.access),
        )
        .await;
    assert_eq!(story["style"], "adventure");
    assert_eq!(story["language"], "en");
    // A body that is not JSON is still refused.
    let text = send(
        app.client
            .post(app.url(&format!("/api/v1/photos/{id}/story")))
            .bearer_auth(&tokens.access)
            .header("content-type", "text/plain")
            .body("adventure"),
    )
    .await;
    assert_eq!(text.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

async fn open_events(app: &TestApp, token: &str, id: i64, last: Option<&str>) -> EventStream {
    let mut request = app
        .client
        .get(app.url(&format!("/api/v1/photos/{id}/events")))
        .bearer_auth(token);
    if let Some(last) = last {
        request = request.header("last-event-id", last);
    }
    EventStream::new(request.send().await.unwrap())
}

async fn event_streams_stay_open_and_resume_with_last_event_id() {
    let app = TestApp::builder(Backend::Sqlite).spawn().await;
    let tokens = app.signed_up("follower").await;
    let token = tokens.access.as_str();
    let photo = app.upload_png(token).await;
    let id = photo["id"].as_i64().unwrap();

    let mut first = open_events(&app, token, id, None).await;
    let now = first
        .next(Duration::from_secs(5))
        .await
        .expect("the photo now");
    assert_eq!(now.data["status"], "uploaded");
    let version = now.id.clone().expect("an event id");
    // Idle: the stream stays open, saying nothing new.
    assert!(first.next(Duration::from_millis(1500)).await.is_none());

    // Resuming at that event: nothing missed, so nothing is sent at once...
    let mut resumed = open_events(&app, token, id, Some(&version)).await;
    assert!(resumed.next(Duration::from_millis(1500)).await.is_none());
    // ...and the next change reaches both streams.
    let renamed = app
        .request(
            Method::PATCH,
            &format!("/api/v1/photos/{id}"),
            Some(&json!({"title": "Renamed"})),
            Some(token),
        )
        .await;
    assert_eq!(renamed.status(), StatusCode::OK);
    for stream in [&mut first, &mut resumed] {
        let change = stream
            .next(Duration::from_secs(5))
            .await
            .expect("the change");
        assert_eq!(change.data["title"], "Renamed");
        assert_ne!(change.id.as_deref(), Some(version.as_str()));
    }
    // Resuming at an old event: the current state at once.
    let mut behind = open_events(&app, token, id, Some(&version)).await;
    let caught_up = behind
        .next(Duration::from_secs(5))
        .await
        .expect("the current state");
    assert_eq!(caught_up.data["title"], "Renamed");

    // A deleted photo: a `deleted` event, then the stream ends.
    let deleted = app
        .request(
            Method::DELETE,
            &format!("/api/v1/photos/{id}"),
            None,
            Some(token),
        )
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = first
        .next(Duration::from_secs(5))
        .await
        .expect("a deleted event");
    assert_eq!(gone.name, "deleted");
    assert_eq!(gone.data["id"], id);
    assert!(
        first.next(Duration::from_secs(5)).await.is_none(),
        "the stream ended"
    );
}

async fn a_browser_follows_a_photo_with_a_stream_ticket() {
    let app = TestApp::builder(Backend::Sqlite).spawn().await;
    let tokens = app.signed_up("browser").await;
    let token = tokens.access.as_str();
    let photo = app.upload_png(token).await;
    let id = photo["id"].as_i64().unwrap();
    let other = app.upload_png(token).await["id"].as_i64().unwrap();

    let issued = app
        .request(
            Method::POST,
            &format!("/api/v1/photos/{id}/events/ticket"),
            None,
            Some(token),
        )
        .await;
    assert_eq!(issued.status(), StatusCode::OK);
    assert_eq!(issued.headers()["cache-control"], "no-store");
    let issued: Value = issued.json().await.unwrap();
    let ticket = issued["ticket"].as_str().unwrap();
    let url = issued["url"].as_str().unwrap();
    assert_eq!(url, format!("/api/v1/photos/{id}/events?ticket={ticket}"));
    assert!(issued["expires_in"].as_u64().unwrap() > 0);

    // No Authorization header, as an EventSource sends it.
    let mut stream = EventStream::new(app.get(url).await);
    let first = stream.next(Duration::from_secs(5)).await.expect("an event");
    assert_eq!(first.data["id"], id);

    // The ticket opens that photo's stream and nothing else.
    let elsewhere = app
        .get(&format!("/api/v1/photos/{other}/events?ticket={ticket}"))
        .await;
    assert_eq!(elsewhere.status(), StatusCode::UNAUTHORIZED);
    let as_token = app
        .request(Method::GET, "/api/v1/users/me", None, Some(ticket))
        .await;
    assert_eq!(as_token.status(), StatusCode::UNAUTHORIZED);
    let forged = app
        .get(&format!("/api/v1/photos/{id}/events?ticket=not-a-ticket"))
        .await;
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    let anonymous = app.get(&format!("/api/v1/photos/{id}/events")).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    // Someone else's photo: no ticket.
    let stranger = app.signed_up("stranger").await;
    let refused = app
        .request(
            Method::POST,
            &format!("/api/v1/photos/{id}/events/ticket"),
            None,
            Some(&stranger.access),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::NOT_FOUND);
}

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    send(
        app.client
            .request(Method::OPTIONS, app.url("/api/v1/photos"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            ),
    )
    .await
}

async fn cors_preflight_is_allowed_for_configured_origins_only() {
    let app = TestApp::builder(Backend::Sqlite)
        .configure(|settings| settings.cors_origins = vec!["https://app.example".to_owned()])
        .spawn()
        .await;
    let allowed = preflight(&app, "https://app.example").await;
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let methods = allowed.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(methods.contains("POST"), "{methods}");
    let headers = allowed.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(headers.contains("authorization"), "{headers}");

    let refused = preflight(&app, "https://evil.example").await;
    assert!(
        !refused
            .headers()
            .contains_key("access-control-allow-origin"),
        "{:?}",
        refused.headers()
    );
    // An actual request from the allowed origin may read the headers clients need.
    let health = send(
        app.client
            .get(app.url("/health"))
            .header("origin", "https://app.example"),
    )
    .await;
    assert_eq!(
        health.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let exposed = health.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for header in ["location", "etag", "x-request-id", "retry-after"] {
        assert!(exposed.contains(header), "{header} not exposed: {exposed}");
    }
    // Same-origin requests (which send Origin too) are not refused, only not shared.
    let other = send(
        app.client
            .get(app.url("/health"))
            .header("origin", "https://evil.example"),
    )
    .await;
    assert_eq!(other.status(), StatusCode::OK);
    assert!(!other.headers().contains_key("access-control-allow-origin"));

    // Without AISTORY_CORS_ORIGINS: no cross-origin access at all.
    let closed = TestApp::builder(Backend::Sqlite).spawn().await;
    let response = preflight(&closed, "https://app.example").await;
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin")
    );
}

async fn taken_at_is_an_instant_only_with_an_exif_offset() {
    let app = TestApp::builder(Backend::Sqlite).spawn().await;
    let tokens = app.signed_up("traveller").await;
    let local = upload(
        &app,
        &tokens.access,
        jpeg_taken(32, 24, "2021:07:04 12:30:00", None),
    )
    .await;
    assert!(
        local["taken_at"].is_null(),
        "no offset, no instant: {local}"
    );
    assert_eq!(local["taken_at_local"], "2021-07-04T12:30:00");
    let placed = upload(
        &app,
        &tokens.access,
        jpeg_taken(32, 24, "2021:07:04 12:30:00", Some("+02:00")),
    )
    .await;
    assert_eq!(placed["taken_at"], "2021-07-04T10:30:00Z");
    assert_eq!(placed["taken_at_local"], "2021-07-04T12:30:00");
}

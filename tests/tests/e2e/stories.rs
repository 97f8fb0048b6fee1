//! Stories end to end: upload, request a story, follow the photo's events, read the story;
//! with the built-in writer and with the `openai` provider against a local fake of an
//! OpenAI-compatible endpoint (which checks what we send and plays failures).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, HttpServer, web};
use aistory_tests::images::jpeg;
use aistory_tests::sse::Event;
use aistory_tests::{Backend, Store, TestApp, backend_tests, e2e_tests};
use base64::Engine;
use entity::photo_status::PhotoStatus;
use entity::prelude::*;
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
};
use serde_json::{Value, json};
use settings::{OpenAiSettings, StoryProviderSettings};

backend_tests!(
    a_story_is_written_by_the_builtin_provider,
    a_story_is_written_by_the_openai_provider,
    abandoned_uploads_are_swept_with_their_objects
);
e2e_tests!(
    the_servers_own_workers_write_a_story,
    story_requests_are_validated,
    openai_repeated_server_errors_fail_the_story_after_the_retries,
    openai_a_hanging_service_times_out,
    openai_a_malformed_answer_fails_at_once,
    openai_a_refused_key_fails_at_once,
    openai_an_oversized_answer_fails_at_once,
    openai_an_unreachable_service_fails_without_leaking_its_address,
);

async fn upload_jpeg(app: &TestApp, token: &str, bytes: Vec<u8>, title: &str) -> Value {
    let form = Form::new()
        .text("title", title.to_owned())
        .part("file", Part::bytes(bytes).file_name("photo.jpg"));
    let response = app
        .client
        .post(app.url("/api/v1/photos"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

/// Asks for a story about photo `id` (202), runs the queued job and its retries (a failure
/// may be the point); returns the photo as its owner then sees it.
async fn ask_and_settle(app: &TestApp, token: &str, id: i64) -> Value {
    let path = format!("/api/v1/photos/{id}/story");
    assert_eq!(
        app.request(Method::POST, &path, Some(&json!({})), Some(token))
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    app.run_jobs_and_retries().await;
    app.photo(token, id).await
}

/// Whether an event says the photo settled: its story written or failed, or the photo gone.
fn settled(event: &Event) -> bool {
    event.name == "deleted"
        || (event.name == "status"
            && matches!(event.data["status"].as_str(), Some("completed" | "failed")))
}

/// Follows photo `id`'s events until it settles: (event name, data) pairs.
async fn read_events(app: &TestApp, token: &str, id: i64) -> Vec<(String, Value)> {
    let mut stream = app.events(token, id).await;
    stream
        .until(Duration::from_secs(40), settled)
        .await
        .into_iter()
        .map(|event| (event.name, event.data))
        .collect()
}

async fn a_story_is_written_by_the_builtin_provider(backend: Backend) {
    let app = TestApp::builder(backend).spawn().await;
    let tokens = app.signed_up("writer").await;
    let token = tokens.access.as_str();
    let photo = upload_jpeg(
        &app,
        token,
        jpeg(160, 90, Some("2024:07:14 21:30:00")),
        "Harbour lights",
    )
    .await;
    let id = photo["id"].as_i64().unwrap();
    app.run_pending_jobs().await; // its thumbnails: the story's job runs alone below

    let story_path = format!("/api/v1/photos/{id}/story");
    assert_eq!(
        app.request(Method::GET, &story_path, None, Some(token))
            .await
            .status(),
        StatusCode::NOT_FOUND,
        "no story before one is asked for"
    );
    // A stream opened before the story is asked for: the photo as it is, then it stays open
    // and reports the run.
    let mut stream = app.events(token, id).await;
    let first = stream
        .next(Duration::from_secs(10))
        .await
        .expect("the first event");
    assert_eq!(first.name, "status");
    assert_eq!(first.data["status"], "uploaded", "{first:?}");
    assert!(first.id.is_some(), "events carry an id for Last-Event-ID");
    let accepted = app
        .request(
            Method::POST,
            &story_path,
            Some(&json!({"style": "mystery", "language": "en"})),
            Some(token),
        )
        .await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    assert_eq!(
        accepted.headers()["location"].to_str().unwrap(),
        format!("/api/v1/photos/{id}")
    );
    let accepted: Value = accepted.json().await.unwrap();
    assert_eq!(accepted["status"], "processing");

    // The stream opened before the request follows the run; so does one opened now.
    let (events, later, ran) = tokio::join!(
        stream.until(Duration::from_secs(40), settled),
        read_events(&app, token, id),
        app.run_pending_jobs()
    );
    assert_eq!(ran, 1, "one job writes the story");
    let statuses: Vec<&str> = events
        .iter()
        .map(|event| event.data["status"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(statuses.last(), Some(&"completed"), "{events:?}");
    assert!(
        statuses.contains(&"processing") || statuses.len() == 1,
        "{events:?}"
    );
    assert_eq!(
        later.last().map(|(_, data)| data["status"].clone()),
        Some(json!("completed"))
    );

    let story = app.json(Method::GET, &story_path, None, Some(token)).await;
    assert_eq!(story["photo_id"], id);
    assert_eq!(story["style"], "mystery");
    assert_eq!(story["language"], "en");
    assert_eq!(story["provider"], "builtin");
    assert!(
        story["title"].as_str().unwrap().contains("Harbour lights"),
        "{story}"
    );
    let body = story["body"].as_str().unwrap();
    assert!(body.split("\n\n").count() >= 3, "{body}");
    // Written from the photo: its EXIF date and its size.
    assert!(
        body.contains("July 2024") && body.contains("160 by 90"),
        "{body}"
    );
    assert!(
        body.contains("in the evening on Sunday, 14 July 2024"),
        "{body}"
    );

    // A completed photo may have a new story; the newest is "the" story.
    let again = app
        .request(
            Method::POST,
            &story_path,
            Some(&json!({"style": "poem"})),
            Some(token),
        )
        .await;
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    // A second request while one is being written (its job not run yet) is a conflict.
    let during = app
        .request(
            Method::POST,
            &story_path,
            Some(&json!({"style": "poem"})),
            Some(token),
        )
        .await;
    assert_eq!(during.status(), StatusCode::CONFLICT);
    assert_eq!(
        app.run_pending_jobs().await,
        1,
        "one story for two requests"
    );
    let photo = app.photo(token, id).await;
    assert_eq!(photo["status"], "completed");
    assert!(photo["error"].is_null());
    let newest = app.json(Method::GET, &story_path, None, Some(token)).await;
    assert_eq!(newest["style"], "poem");
    assert!(newest["id"].as_i64() > story["id"].as_i64());

    // Stories list, newest first, with pages; one story; delete.
    let page = app
        .json(Method::GET, "/api/v1/stories?limit=1", None, Some(token))
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["id"], newest["id"]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = app
        .json(
            Method::GET,
            &format!("/api/v1/stories?limit=100&cursor={cursor}"),
            None,
            Some(token),
        )
        .await;
    assert!(
        rest["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == story["id"])
    );
    let of_photo = app
        .json(
            Method::GET,
            &format!("/api/v1/stories?photo_id={id}"),
            None,
            Some(token),
        )
        .await;
    assert!(of_photo["items"].as_array().unwrap().len() >= 2);
    let one_path = format!("/api/v1/stories/{}", story["id"]);
    assert_eq!(
        app.json(Method::GET, &one_path, None, Some(token)).await["id"],
        story["id"]
    );

    // Another user sees none of it.
    let other = app.signed_up("stranger").await;
    for path in [story_path.as_str(), one_path.as_str()] {
        assert_eq!(
            app.request(Method::GET, path, None, Some(&other.access))
                .await
                .status(),
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(
        app.request(
            Method::POST,
            &story_path,
            Some(&json!({})),
            Some(&other.access)
        )
        .await
        .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.request(Method::DELETE, &one_path, None, Some(&other.access))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let other_page = app
        .json(Method::GET, "/api/v1/stories", None, Some(&other.access))
        .await;
    assert!(other_page["items"].as_array().unwrap().is_empty());

    assert_eq!(
        app.request(Method::DELETE, &one_path, None, Some(token))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.request(Method::GET, &one_path, None, Some(token))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    // The same photo and style always give the same built-in story.
    assert_eq!(
        app.request(
            Method::POST,
            &story_path,
            Some(&json!({"style": "mystery"})),
            Some(token)
        )
        .await
        .status(),
        StatusCode::ACCEPTED
    );
    app.run_pending_jobs().await;
    let repeat = app.json(Method::GET, &story_path, None, Some(token)).await;
    assert_ne!(repeat["id"], story["id"]);
    assert_eq!(repeat["body"], story["body"]);
    assert_eq!(repeat["title"], story["title"]);

    // Deleting the photo deletes its stories.
    assert_eq!(
        app.request(
            Method::DELETE,
            &format!("/api/v1/photos/{id}"),
            None,
            Some(token)
        )
        .await
        .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(Story::find().count(&app.db).await.unwrap(), 0);
}

/// The server's own workers (`AISTORY_WORKERS`; the other tests run none): nobody runs the
/// job by hand, and the event stream follows the photo until a worker has written the story.
async fn the_servers_own_workers_write_a_story() {
    let app = TestApp::builder(Backend::Sqlite).workers(1).spawn().await;
    let tokens = app.signed_up("night_shift").await;
    let token = tokens.access.as_str();
    let photo = upload_jpeg(&app, token, jpeg(64, 48, None), "Night shift").await;
    let id = photo["id"].as_i64().unwrap();
    let story_path = format!("/api/v1/photos/{id}/story");
    let accepted = app
        .request(Method::POST, &story_path, Some(&json!({})), Some(token))
        .await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let events = read_events(&app, token, id).await;
    let (_, last) = events.last().expect("at least one event");
    assert_eq!(last["status"], "completed", "{events:?}");
    let story = app.json(Method::GET, &story_path, None, Some(token)).await;
    assert_eq!(story["provider"], "builtin", "{story}");
    assert!(
        story["title"].as_str().unwrap().contains("Night shift"),
        "{story}"
    );
    app.assert_no_failed_jobs().await;
}

async fn story_requests_are_validated() {
    let app = TestApp::builder(Backend::Sqlite).spawn().await;
    let tokens = app.signed_up("picky").await;
    let token = tokens.access.as_str();
    let photo = app.upload_png(token).await;
    let id = photo["id"].as_i64().unwrap();
    let path = format!("/api/v1/photos/{id}/story");
    let problem = |body: Value| {
        let app = &app;
        let path = path.clone();
        async move {
            let response = app
                .request(Method::POST, &path, Some(&body), Some(token))
                .await;
            let status = response.status();
            assert_eq!(
                response.headers()["content-type"].to_str().unwrap(),
                "application/problem+json"
            );
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = problem(json!({"style": "saga"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["errors"]["style"].is_array(), "{body}");
    let (status, body) = problem(json!({"language": "fr"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["errors"]["language"][0]
            .as_str()
            .unwrap()
            .contains("English"),
        "{body}"
    );
    let (status, body) = problem(json!({"language": "english please"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["errors"]["language"].is_array(), "{body}");
    let (status, _) = problem(json!({"style": "poem", "extra": 1})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // Nothing changed by the refusals.
    assert_eq!(
        app.json(
            Method::GET,
            &format!("/api/v1/photos/{id}"),
            None,
            Some(token)
        )
        .await["status"],
        "uploaded"
    );
    // No worker runs here: the first request stays processing, the second is a conflict.
    let first = app
        .request(Method::POST, &path, Some(&json!({})), Some(token))
        .await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let (status, body) = problem(json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("already"),
        "{body}"
    );
    assert_eq!(
        entity::job::Entity::find()
            .filter(entity::job::Column::Kind.eq("story.generate"))
            .count(&app.db)
            .await
            .unwrap(),
        1,
        "one story job for one accepted request"
    );
    // A pending photo (bytes not uploaded) cannot have a story yet.
    let user_id = app
        .json(Method::GET, "/api/v1/users/me", None, Some(token))
        .await["id"]
        .as_i64()
        .unwrap();
    let pending = entity::photo::ActiveModel {
        user_id: Set(user_id),
        object_key: Set(format!("users/{user_id}/photos/pending.png")),
        status: Set(PhotoStatus::Pending),
        ..Default::default()
    }
    .insert(&app.db)
    .await
    .unwrap();
    let response = app
        .request(
            Method::POST,
            &format!("/api/v1/photos/{}/story", pending.id),
            Some(&json!({})),
            Some(token),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let missing = app
        .request(
            Method::POST,
            "/api/v1/photos/999999/story",
            Some(&json!({})),
            Some(token),
        )
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    // The stream of an unknown photo is a 404.
    assert_eq!(
        app.request(
            Method::GET,
            "/api/v1/photos/999999/events",
            None,
            Some(token)
        )
        .await
        .status(),
        StatusCode::NOT_FOUND
    );
}

/// What the fake endpoint answers, in order; the last one repeats.
#[derive(Clone, Debug)]
enum Reply {
    Story,
    Status(u16, Option<&'static str>),
    Hang,
    Malformed,
    /// A 200 of 6 MiB (JSON padded with spaces).
    Huge,
}

/// One request the fake received: path, `Authorization` header, JSON body.
type Seen = (String, Option<String>, Value);

#[derive(Clone, Default)]
struct Fake {
    script: Arc<Mutex<VecDeque<Reply>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn fake_endpoint(req: HttpRequest, body: web::Bytes, fake: web::Data<Fake>) -> HttpResponse {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let parsed = serde_json::from_slice(&body).unwrap_or(Value::Null);
    fake.seen
        .lock()
        .unwrap()
        .push((req.path().to_owned(), auth, parsed));
    let reply = {
        let mut script = fake.script.lock().unwrap();
        if script.len() > 1 {
            script.pop_front()
        } else {
            script.front().cloned()
        }
    };
    match reply.unwrap_or(Reply::Story) {
        Reply::Story => HttpResponse::Ok().json(json!({
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "choices": [{
                "index": 0,
                "finish_reason": "stop",
                "message": {
                    "role": "assistant",
                    "content": json!({
                        "title": "The Lighthouse Keeper",
                        "body": "The lamp turned.\n\nThe sea listened.\n\nMorning came."
                    }).to_string()
                }
            }]
        })),
        Reply::Status(code, retry_after) => {
            let mut response = HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap());
            if let Some(seconds) = retry_after {
                response.insert_header(("Retry-After", seconds));
            }
            response.json(json!({"error": {"message": "scripted failure"}}))
        }
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            HttpResponse::Ok().finish()
        }
        Reply::Malformed => HttpResponse::Ok().json(json!({
            "choices": [{"message": {"role": "assistant", "content": "Once upon a time (not JSON)"}}]
        })),
        Reply::Huge => HttpResponse::Ok()
            .content_type("application/json")
            .body(format!("{{{}}}", " ".repeat(6 * 1024 * 1024))),
    }
}

/// Starts the fake on a free port; returns its base URL (with `/v1`) and its state.
fn start_fake(script: Vec<Reply>) -> (String, Fake) {
    let fake = Fake {
        script: Arc::new(Mutex::new(script.into())),
        ..Fake::default()
    };
    let data = web::Data::new(fake.clone());
    let server = HttpServer::new(move || {
        actix_web::App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
            .default_service(web::to(fake_endpoint))
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    (format!("http://127.0.0.1:{port}/v1"), fake)
}

async fn spawn_with_fake(backend: Backend, script: Vec<Reply>, retries: u32) -> (TestApp, Fake) {
    let (base_url, fake) = start_fake(script);
    let app = TestApp::builder(backend)
        .configure(move |settings| {
            let mut openai = OpenAiSettings::new(base_url, "fake-vision-1");
            openai.api_key = Some("test-key".to_owned());
            openai.timeout = Duration::from_secs(1);
            openai.max_retries = retries;
            settings.story_provider = StoryProviderSettings::OpenAi(openai);
        })
        .spawn()
        .await;
    (app, fake)
}

async fn a_story_is_written_by_the_openai_provider(backend: Backend) {
    let (app, fake) = spawn_with_fake(
        backend,
        vec![Reply::Status(429, Some("1")), Reply::Story],
        2,
    )
    .await;
    let tokens = app.signed_up("openai_user").await;
    let token = tokens.access.as_str();
    let photo = upload_jpeg(&app, token, jpeg(1600, 1200, None), "Lighthouse").await;
    let id = photo["id"].as_i64().unwrap();
    app.run_pending_jobs().await; // its thumbnails: the story's job runs alone below
    let accepted = app
        .request(
            Method::POST,
            &format!("/api/v1/photos/{id}/story"),
            Some(&json!({"style": "bedtime", "language": "pt-BR"})),
            Some(token),
        )
        .await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let started = std::time::Instant::now();
    assert_eq!(app.run_pending_jobs().await, 1);
    let photo = app.photo(token, id).await;
    assert_eq!(photo["status"], "completed", "{photo}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After: 1 was not honoured"
    );
    let story = app
        .json(
            Method::GET,
            &format!("/api/v1/photos/{id}/story"),
            None,
            Some(token),
        )
        .await;
    assert_eq!(story["title"], "The Lighthouse Keeper");
    assert_eq!(story["provider"], "openai");
    assert_eq!(story["model"], "fake-vision-1");
    assert_eq!(story["language"], "pt-BR");

    // What we sent: the right path, key, model, instructions and a downscaled image.
    let seen = fake.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "one 429, then the story");
    for (path, auth, body) in &seen {
        assert_eq!(path, "/v1/chat/completions");
        assert_eq!(auth.as_deref(), Some("Bearer test-key"));
        assert_eq!(body["model"], "fake-vision-1");
        assert_eq!(body["response_format"]["type"], "json_schema");
        let text = body["messages"][1]["content"][0]["text"].as_str().unwrap();
        assert!(
            text.contains("bedtime") && text.contains("pt-BR") && text.contains("Lighthouse"),
            "{text}"
        );
        let url = body["messages"][1]["content"][1]["image_url"]["url"]
            .as_str()
            .unwrap();
        let encoded = url
            .strip_prefix("data:image/jpeg;base64,")
            .expect("a JPEG data URL");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap();
        let image = image::load_from_memory(&bytes).unwrap();
        assert_eq!((image.width(), image.height()), (1024, 768));
    }
}

/// One failure scenario against the fake: the photo ends `failed` with a readable reason.
async fn fails_with(script: Vec<Reply>, retries: u32, expect_reason: &str, expect_calls: usize) {
    let (app, fake) = spawn_with_fake(Backend::Sqlite, script, retries).await;
    let tokens = app.signed_up("unlucky").await;
    let token = tokens.access.as_str();
    let photo = upload_jpeg(&app, token, jpeg(64, 48, None), "Fog").await;
    let id = photo["id"].as_i64().unwrap();
    let path = format!("/api/v1/photos/{id}/story");
    let photo = ask_and_settle(&app, token, id).await;
    assert_eq!(photo["status"], "failed", "{photo}");
    let reason = photo["error"].as_str().unwrap();
    assert!(reason.contains(expect_reason), "{reason}");
    assert!(
        !reason.contains("reqwest")
            && !reason.contains("127.0.0.1")
            && !reason.contains("AISTORY_"),
        "leaks internals: {reason}"
    );
    assert_eq!(fake.seen.lock().unwrap().len(), expect_calls);
    let job = entity::job::Entity::find()
        .filter(entity::job::Column::Kind.eq("story.generate"))
        .all(&app.db)
        .await
        .unwrap();
    assert_eq!(job[0].status, entity::job::JobStatus::Failed);
    assert_eq!(
        app.request(Method::GET, &path, None, Some(token))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    // A failed photo may ask again; this time the service answers.
    *fake.script.lock().unwrap() = VecDeque::from([Reply::Story]);
    let photo = ask_and_settle(&app, token, id).await;
    assert_eq!(photo["status"], "completed", "{photo}");
    assert!(photo["error"].is_null());
}

async fn openai_repeated_server_errors_fail_the_story_after_the_retries() {
    // 2 tries per attempt, 3 attempts.
    fails_with(vec![Reply::Status(500, None)], 1, "HTTP 500", 6).await;
}

async fn openai_a_hanging_service_times_out() {
    fails_with(vec![Reply::Hang], 0, "did not answer within 1 s", 3).await;
}

async fn openai_a_malformed_answer_fails_at_once() {
    fails_with(vec![Reply::Malformed], 2, "could not use", 1).await;
}

async fn openai_an_oversized_answer_fails_at_once() {
    fails_with(vec![Reply::Huge], 2, "answer over 4 MiB", 1).await;
}

async fn openai_a_refused_key_fails_at_once() {
    fails_with(vec![Reply::Status(401, None)], 2, "not set up correctly", 1).await;
}

async fn abandoned_uploads_are_swept_with_their_objects(backend: Backend) {
    // No workers (the default): nothing sweeps before this test's own sweep.
    let app = TestApp::builder(backend).store(Store::File).spawn().await;
    let test_store = app.store.as_ref().unwrap();
    let storage = service::storage::Storage::from_url(&test_store.url).unwrap();
    let tokens = app.signed_up("sweeper").await;
    let user_id = app
        .json(Method::GET, "/api/v1/users/me", None, Some(&tokens.access))
        .await["id"]
        .as_i64()
        .unwrap();
    let kept = app.upload_png(&tokens.access).await;
    app.run_pending_jobs().await; // its thumbnails
    let insert_pending = |age_hours: i64, key: String| {
        let db = app.db.clone();
        async move {
            let created = entity::timestamps::now() - chrono::Duration::hours(age_hours);
            entity::photo::ActiveModel {
                user_id: Set(user_id),
                object_key: Set(key),
                status: Set(PhotoStatus::Pending),
                created_at: Set(created),
                updated_at: Set(created),
                ..Default::default()
            }
            .insert(&db)
            .await
            .unwrap()
        }
    };
    let old_key = format!("users/{user_id}/photos/abandoned.png");
    let old = insert_pending(30, old_key.clone()).await;
    let young = insert_pending(1, format!("users/{user_id}/photos/in-flight.png")).await;
    // The abandoned direct upload left its bytes in the staging area.
    storage
        .put(
            &format!("staging/{old_key}"),
            bytes::Bytes::from_static(b"half an upload"),
        )
        .await
        .unwrap();
    let before = test_store.files().len();

    let swept =
        service::photos::sweep::sweep_pending(&app.db, service::photos::sweep::PENDING_MAX_AGE)
            .await
            .unwrap();
    assert_eq!(swept, 1);
    assert!(
        Photo::find_by_id(old.id)
            .one(&app.db)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        Photo::find_by_id(young.id)
            .one(&app.db)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        Photo::find_by_id(kept["id"].as_i64().unwrap())
            .one(&app.db)
            .await
            .unwrap()
            .is_some()
    );
    // The sweep queued the deletion of the abandoned upload's bytes.
    assert_eq!(app.run_pending_jobs().await, 1);
    let files = test_store.files();
    assert_eq!(
        files.len() + 1,
        before,
        "the abandoned upload's bytes are deleted: {files:?}"
    );
    // Sweeping again finds nothing.
    assert_eq!(
        service::photos::sweep::sweep_pending(&app.db, service::photos::sweep::PENDING_MAX_AGE)
            .await
            .unwrap(),
        0
    );
}

async fn openai_an_unreachable_service_fails_without_leaking_its_address() {
    let app = TestApp::builder(Backend::Sqlite)
        .configure(|settings| {
            let mut openai = OpenAiSettings::new("http://127.0.0.1:9/v1", "fake-vision-1");
            openai.timeout = Duration::from_secs(1);
            openai.max_retries = 0;
            settings.story_provider = StoryProviderSettings::OpenAi(openai);
        })
        .spawn()
        .await;
    let tokens = app.signed_up("nowhere").await;
    let token = tokens.access.as_str();
    let photo = upload_jpeg(&app, token, jpeg(32, 32, None), "Void").await;
    let id = photo["id"].as_i64().unwrap();
    let photo = ask_and_settle(&app, token, id).await;
    assert_eq!(photo["status"], "failed", "{photo}");
    let reason = photo["error"].as_str().unwrap();
    assert_eq!(reason, "the story service could not be reached");
}

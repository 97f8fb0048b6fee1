//! Hostile input and hostile users: downloads that cannot be turned into pages, uploads that
//! are not the images they claim to be.

use std::time::Duration;

use aistory_tests::images::png;
use aistory_tests::{Backend, Store, TestApp, backend_tests, e2e_tests};
use entity::prelude::*;
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::Value;

backend_tests!(
    downloads_are_hardened,
    images_that_are_not_what_they_claim_are_refused,
    ended_sessions_stop_writing_and_streaming,
    each_quota_holds,
    usernames_are_unique_without_regard_to_case,
    throttling_is_shared_by_processes_and_keyed_by_account,
    trusted_proxies_are_the_only_ones_believed,
    current_password_guessing_is_throttled,
    registration_is_rate_limited_per_address,
    old_throttling_rows_are_pruned,
);
e2e_tests!(titles_refuse_text_direction_controls);

async fn upload(app: &TestApp, token: &str, bytes: Vec<u8>) -> reqwest::Response {
    let form = Form::new().part("file", Part::bytes(bytes).file_name("upload.bin"));
    app.client
        .post(app.url("/api/v1/photos"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// A GIF 2 x 2 whose bytes also hold an HTML page (a polyglot: browsers that sniff would run
/// it).
fn gif_with_html() -> Vec<u8> {
    let mut bytes = b"GIF89a\x02\x00\x02\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff".to_vec();
    bytes.extend_from_slice(b"!\xfe\x3c<html><script>alert(document.cookie)</script></html>\x00");
    bytes.extend_from_slice(b",\x00\x00\x00\x00\x02\x00\x02\x00\x00\x02\x02\x44\x01\x00;");
    bytes
}

async fn downloads_are_hardened(backend: Backend) {
    let app = TestApp::builder(backend).spawn().await;
    let tokens = app.signed_up("careful").await;
    for (bytes, content_type, extension) in [
        (png(4, 4), "image/png", "png"),
        (gif_with_html(), "image/gif", "gif"),
    ] {
        let response = upload(&app, &tokens.access, bytes).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let photo: Value = response.json().await.unwrap();
        let id = photo["id"].as_i64().unwrap();
        let download = app
            .request(
                Method::GET,
                &format!("/api/v1/photos/{id}/content"),
                None,
                Some(&tokens.access),
            )
            .await;
        assert_eq!(download.status(), StatusCode::OK);
        let headers = download.headers();
        assert_eq!(headers["content-type"], content_type);
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(
            headers["content-security-policy"],
            "sandbox; default-src 'none'"
        );
        assert_eq!(
            headers["content-disposition"],
            format!("inline; filename=\"photo-{id}.{extension}\"")
        );
    }
}

async fn images_that_are_not_what_they_claim_are_refused(backend: Backend) {
    let app = TestApp::builder(backend).store(Store::File).spawn().await;
    let tokens = app.signed_up("trickster").await;

    // A PNG signature, then garbage.
    let mut fake_png = b"\x89PNG\r\n\x1a\n".to_vec();
    fake_png.extend(std::iter::repeat_n(0x41u8, 4096));
    let response = upload(&app, &tokens.access, fake_png).await;
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("not a valid image"),
        "{body}"
    );

    // A JPEG header that claims 65535 x 65535 pixels (4.3 gigapixels).
    let mut huge = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
    huge.extend_from_slice(b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00");
    huge.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0x03]);
    huge.extend_from_slice(&[1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
    huge.extend_from_slice(&[0xFF, 0xD9]);
    let response = upload(&app, &tokens.access, huge).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    let message = body["errors"]["file"][0].as_str().unwrap();
    assert!(message.contains("65535 x 65535"), "{body}");

    // Nothing was kept of either: no row, no object.
    assert_eq!(Photo::find().count(&app.db).await.unwrap(), 0);
    let files = app
        .store
        .as_ref()
        .map(|store| store.files())
        .unwrap_or_default();
    assert!(files.is_empty(), "objects left: {files:?}");
}

/// A title cannot reorder how it displays (U+202E makes `gpj.exe` read `exe.jpg`).
async fn titles_refuse_text_direction_controls() {
    let app = TestApp::builder(Backend::Sqlite).spawn().await;
    let tokens = app.signed_up("reverser").await;
    let photo = app.upload_png(&tokens.access).await;
    let id = photo["id"].as_i64().unwrap();
    for title in ["holiday \u{202E}gpj.exe", "a\u{2066}b"] {
        let response = app
            .request(
                Method::PATCH,
                &format!("/api/v1/photos/{id}"),
                Some(&serde_json::json!({ "title": title })),
                Some(&tokens.access),
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{title:?}"
        );
        let body: Value = response.json().await.unwrap();
        assert!(
            body["errors"]["title"][0]
                .as_str()
                .unwrap()
                .contains("direction"),
            "{body}"
        );
    }
}

async fn patch_title(app: &TestApp, token: &str, id: i64, title: &str) -> reqwest::Response {
    app.request(
        Method::PATCH,
        &format!("/api/v1/photos/{id}"),
        Some(&serde_json::json!({ "title": title })),
        Some(token),
    )
    .await
}

/// `logout-all`, a password change and a stolen refresh token end every session: the old
/// access token can no longer write, and its open event stream ends (reads go on until the
/// token expires, as documented).
async fn ended_sessions_stop_writing_and_streaming(backend: Backend) {
    let app = TestApp::builder(backend).spawn().await;
    let tokens = app.signed_up("leaver").await;
    let photo = app.upload_png(&tokens.access).await;
    let id = photo["id"].as_i64().unwrap();
    let response = app
        .client
        .get(app.url(&format!("/api/v1/photos/{id}/events")))
        .bearer_auth(&tokens.access)
        .send()
        .await
        .unwrap();
    let mut stream = aistory_tests::sse::EventStream::new(response);
    assert!(stream.next(Duration::from_secs(5)).await.is_some());

    let ended = app
        .request(
            Method::POST,
            "/api/v1/auth/logout-all",
            None,
            Some(&tokens.access),
        )
        .await;
    assert_eq!(ended.status(), StatusCode::NO_CONTENT);
    let refused = patch_title(&app, &tokens.access, id, "after").await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("session has ended"),
        "{body}"
    );
    // The open stream ends, without another event.
    assert!(
        stream.next(Duration::from_secs(5)).await.is_none(),
        "the stream went on"
    );
    // A new stream is refused; reading one photo still works until the token expires.
    let reopened = app
        .request(
            Method::GET,
            &format!("/api/v1/photos/{id}/events"),
            None,
            Some(&tokens.access),
        )
        .await;
    assert_eq!(reopened.status(), StatusCode::UNAUTHORIZED);
    let read = app
        .request(
            Method::GET,
            &format!("/api/v1/photos/{id}"),
            None,
            Some(&tokens.access),
        )
        .await;
    assert_eq!(read.status(), StatusCode::OK);
    // The refresh token is revoked too.
    let refresh = app
        .post_json(
            "/api/v1/auth/refresh",
            &serde_json::json!({ "refresh_token": tokens.refresh }),
            None,
        )
        .await;
    assert_eq!(refresh.status(), StatusCode::UNAUTHORIZED);

    // A new login writes again; a password change ends that session as well.
    let again = app.login("leaver", "correct horse battery").await;
    assert_eq!(
        patch_title(&app, &again.access, id, "again").await.status(),
        StatusCode::OK
    );
    let changed = app
        .request(
            Method::PATCH,
            "/api/v1/users/me",
            Some(&serde_json::json!({
                "password": "a brand new passphrase",
                "current_password": "correct horse battery",
            })),
            Some(&again.access),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::OK);
    assert_eq!(
        patch_title(&app, &again.access, id, "stale").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let fresh = app.login("leaver", "a brand new passphrase").await;
    assert_eq!(
        patch_title(&app, &fresh.access, id, "fresh").await.status(),
        StatusCode::OK
    );

    // A rotated refresh token presented again (a thief): that session's access token too.
    let rotated = app
        .post_json(
            "/api/v1/auth/refresh",
            &serde_json::json!({ "refresh_token": fresh.refresh }),
            None,
        )
        .await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let reused = app
        .post_json(
            "/api/v1/auth/refresh",
            &serde_json::json!({ "refresh_token": fresh.refresh }),
            None,
        )
        .await;
    assert_eq!(reused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        patch_title(&app, &fresh.access, id, "thief").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

fn quotas(photos: u64, bytes: u64, stories_per_hour: u64, streams: u64) -> settings::Quotas {
    settings::Quotas {
        photos,
        bytes,
        stories_per_hour,
        streams,
    }
}

/// Each quota holds: photos and bytes held (403 until something is deleted), stories per hour
/// and open streams (429 with Retry-After), each per user.
async fn each_quota_holds(backend: Backend) {
    // Photos held.
    let app = TestApp::builder(backend)
        .configure(|settings| settings.quotas = quotas(2, u64::MAX / 2, 1, 1))
        .spawn()
        .await;
    let tokens = app.signed_up("hoarder").await;
    let first = app.upload_png(&tokens.access).await["id"].as_i64().unwrap();
    let second = app.upload_png(&tokens.access).await["id"].as_i64().unwrap();
    let refused = upload(&app, &tokens.access, png(4, 4)).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["type"], "/problems/quota-exceeded", "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("AISTORY_QUOTA_PHOTOS"),
        "{body}"
    );
    let deleted = app
        .request(
            Method::DELETE,
            &format!("/api/v1/photos/{first}"),
            None,
            Some(&tokens.access),
        )
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let id = app.upload_png(&tokens.access).await["id"].as_i64().unwrap();

    // Stories per hour: the second request within the hour is a 429.
    let story = |photo: i64| {
        let app = &app;
        let token = tokens.access.clone();
        async move {
            app.request(
                Method::POST,
                &format!("/api/v1/photos/{photo}/story"),
                None,
                Some(&token),
            )
            .await
        }
    };
    assert_eq!(story(second).await.status(), StatusCode::ACCEPTED);
    app.run_pending_jobs().await;
    let limited = story(id).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["type"], "/problems/rate-limited", "{body}");

    // Open streams: one at a time for this user; another user is not affected.
    let open = |token: String, photo: i64| {
        let app = &app;
        async move {
            app.client
                .get(app.url(&format!("/api/v1/photos/{photo}/events")))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    let held = open(tokens.access.clone(), id).await;
    assert_eq!(held.status(), StatusCode::OK);
    let second_stream = open(tokens.access.clone(), id).await;
    assert_eq!(second_stream.status(), StatusCode::TOO_MANY_REQUESTS);
    let other = app.signed_up("neighbour").await;
    let theirs = app.upload_png(&other.access).await["id"].as_i64().unwrap();
    assert_eq!(
        open(other.access.clone(), theirs).await.status(),
        StatusCode::OK
    );
    drop(held);

    // Bytes held: once the photos reach the limit, no more (a streamed upload's size is known
    // only at its end: the one that crosses the limit is kept).
    let small = TestApp::builder(backend)
        .configure(|settings| settings.quotas = quotas(100, 50, 10, 10))
        .spawn()
        .await;
    let tokens = small.signed_up("heavy").await;
    small.upload_png(&tokens.access).await;
    let refused = upload(&small, &tokens.access, png(4, 4)).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("AISTORY_QUOTA_BYTES"),
        "{body}"
    );
}

/// `Ada` and `ada` are one account: the second registration is a 409 on `username`, and
/// logging in with any case of the name works.
async fn usernames_are_unique_without_regard_to_case(backend: Backend) {
    let app = TestApp::builder(backend).spawn().await;
    let created = app
        .post_json(
            "/api/v1/auth/register",
            &serde_json::json!({"username": "Ada", "email": "ada@example.com", "password": "correct horse battery"}),
            None,
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let twin = app
        .post_json(
            "/api/v1/auth/register",
            &serde_json::json!({"username": "aDA", "email": "other@example.com", "password": "correct horse battery"}),
            None,
        )
        .await;
    assert_eq!(twin.status(), StatusCode::CONFLICT);
    let body: Value = twin.json().await.unwrap();
    assert!(body["errors"]["username"].is_array(), "{body}");
    // The email address too: stored in lower case, so another case of it is taken.
    let same_email = app
        .post_json(
            "/api/v1/auth/register",
            &serde_json::json!({"username": "grace", "email": "ADA@Example.COM", "password": "correct horse battery"}),
            None,
        )
        .await;
    assert_eq!(same_email.status(), StatusCode::CONFLICT);
    let body: Value = same_email.json().await.unwrap();
    assert!(body["errors"]["email"].is_array(), "{body}");
    let tokens = app.login("ADA", "correct horse battery").await;
    let me = app
        .json(Method::GET, "/api/v1/users/me", None, Some(&tokens.access))
        .await;
    assert_eq!(me["username"], "Ada", "shown as written");
}

/// One login attempt from `client` to `base` (a server's address).
async fn login_from(
    client: &reqwest::Client,
    base: &str,
    username: &str,
    password: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": username, "password": password}));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

fn retry_after(response: &reqwest::Response) -> u64 {
    response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

const RIGHT: &str = "correct horse battery";

/// Throttling is counted in the database: two servers (two API processes' worth of state)
/// share the counts; the username, the email and case variants are one account; an
/// attacker's address is blocked for that account while the owner, from another address,
/// still logs in; failures from many addresses only delay the account, growing.
async fn throttling_is_shared_by_processes_and_keyed_by_account(backend: Backend) {
    let app = TestApp::builder(backend)
        .configure(|settings| {
            settings.auth.throttle.max_failures_per_account_address = 4;
            settings.auth.throttle.free_failures_per_account = 8;
            settings.auth.throttle.max_delay = Duration::from_secs(2);
        })
        .on_disk()
        .spawn()
        .await;
    let other = app.another_server().await;
    let servers = [app.address.clone(), other.address.clone()];
    app.register("Ada", RIGHT).await;
    let attacker = TestApp::client_from("127.0.0.2");
    let owner = TestApp::client_from("127.0.0.3");
    // Four names of one account, alternating between the two servers.
    for (round, name) in ["Ada", "ADA", "ada@example.com", "Ada@Example.COM"]
        .iter()
        .enumerate()
    {
        let wrong = login_from(&attacker, &servers[round % 2], name, "guess", &[]).await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "attempt {round}");
    }
    // The attacker's address is done with this account, on both servers, right password or not.
    for server in &servers {
        let blocked = login_from(&attacker, server, "ada", RIGHT, &[]).await;
        assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!((1..=900).contains(&retry_after(&blocked)));
    }
    // The owner, elsewhere, is not locked out.
    let owner_in = login_from(&owner, &servers[1], "Ada", RIGHT, &[]).await;
    assert_eq!(owner_in.status(), StatusCode::OK);
    // Four more failures from a second attacker address: 8 on the account, its free ones.
    let attacker2 = TestApp::client_from("127.0.0.4");
    for round in 0..4 {
        let wrong = login_from(&attacker2, &servers[round % 2], "ada", "guess", &[]).await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "attempt {round}");
    }
    // Now every attempt on the account waits: 1 s after the last failure, then 2 s.
    let third = TestApp::client_from("127.0.0.5");
    let delayed = login_from(&third, &servers[0], "ada", "guess", &[]).await;
    assert_eq!(delayed.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after(&delayed), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let counted = login_from(&third, &servers[1], "ada", "guess", &[]).await;
    assert_eq!(counted.status(), StatusCode::UNAUTHORIZED);
    // The owner from a new address waits too (2 s now) ...
    let new_place = TestApp::client_from("127.0.0.6");
    let delayed = login_from(&new_place, &servers[0], "ada", RIGHT, &[]).await;
    assert_eq!(delayed.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after(&delayed), 2);
    // ... but not from an address it logged in from before: attackers who keep the delay
    // running cannot keep the owner out there.
    let owner_in = login_from(&owner, &servers[1], "ada", RIGHT, &[]).await;
    assert_eq!(owner_in.status(), StatusCode::OK);
    // And from the new address after the delay, at most AISTORY_LOGIN_MAX_DELAY_SECS.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let owner_in = login_from(&new_place, &servers[0], "ada", RIGHT, &[]).await;
    assert_eq!(owner_in.status(), StatusCode::OK);
    // An unknown name is throttled like a known one (the answers do not say which exist).
    for _ in 0..4 {
        let wrong = login_from(&attacker, &servers[0], "Nobody", "guess", &[]).await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    let blocked = login_from(&attacker, &servers[1], "NOBODY", "guess", &[]).await;
    assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// `Forwarded` / `X-Forwarded-For` name the client only when the peer is a trusted proxy.
async fn trusted_proxies_are_the_only_ones_believed(backend: Backend) {
    let app = TestApp::builder(backend)
        .configure(|settings| {
            settings.auth.throttle.max_failures_per_account_address = 2;
            settings.trusted_proxies = vec!["127.0.0.2/32".parse().unwrap()];
        })
        .spawn()
        .await;
    app.register("grace", RIGHT).await;
    let proxy = TestApp::client_from("127.0.0.2");
    let stranger = TestApp::client_from("127.0.0.3");
    let base = app.address.as_str();
    let first = [("x-forwarded-for", "203.0.113.50, 198.51.100.7")];
    for _ in 0..2 {
        let wrong = login_from(&proxy, base, "grace", "guess", &first).await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    let blocked = login_from(&proxy, base, "grace", RIGHT, &first).await;
    assert_eq!(
        blocked.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "198.51.100.7 is done"
    );
    // Another client behind the same proxy is another address (the header is believed); a
    // `Forwarded` the client wrote itself is not read (X-Forwarded-For is the proxy's header).
    let other_client = [
        ("x-forwarded-for", "203.0.113.60"),
        ("forwarded", "for=198.51.100.8"),
    ];
    let through = login_from(&proxy, base, "grace", RIGHT, &other_client).await;
    assert_eq!(through.status(), StatusCode::OK);
    let spoofed = [
        ("x-forwarded-for", "198.51.100.7"),
        ("forwarded", "for=198.51.100.9"),
    ];
    let blocked = login_from(&proxy, base, "grace", RIGHT, &spoofed).await;
    assert_eq!(
        blocked.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "Forwarded is not read"
    );
    // A stranger's headers are not: its failures count for 127.0.0.3 whatever it claims.
    for claimed in ["192.0.2.1", "192.0.2.2"] {
        let wrong = login_from(
            &stranger,
            base,
            "grace",
            "guess",
            &[("x-forwarded-for", claimed)],
        )
        .await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    let blocked = login_from(
        &stranger,
        base,
        "grace",
        RIGHT,
        &[("x-forwarded-for", "192.0.2.3")],
    )
    .await;
    assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
    let addresses: Vec<Option<String>> = entity::throttle_event::Entity::find()
        .filter(entity::throttle_event::Column::Action.is_in(["login", "password"]))
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.address)
        .collect();
    for address in &addresses {
        assert!(
            matches!(address.as_deref(), Some("198.51.100.7" | "127.0.0.3")),
            "{addresses:?}"
        );
    }
}

/// `current_password` guesses count with the login failures: past the limit, 429 (not 403),
/// on PATCH and DELETE /users/me, and logins from that address are blocked too.
async fn current_password_guessing_is_throttled(backend: Backend) {
    let app = TestApp::builder(backend)
        .configure(|settings| {
            settings.auth.throttle.max_failures_per_account_address = 3;
        })
        .spawn()
        .await;
    let tokens = app.signed_up("heidi").await;
    let change = |password: &str| serde_json::json!({"email": "heidi@new.example.com", "current_password": password});
    for guess in ["guess1", "guess2"] {
        let wrong = app
            .request(
                Method::PATCH,
                "/api/v1/users/me",
                Some(&change(guess)),
                Some(&tokens.access),
            )
            .await;
        assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    }
    let wrong = app
        .request(
            Method::DELETE,
            "/api/v1/users/me",
            Some(&serde_json::json!({"current_password": "guess3"})),
            Some(&tokens.access),
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    for (method, body) in [
        (Method::PATCH, change(RIGHT)),
        (
            Method::DELETE,
            serde_json::json!({"current_password": RIGHT}),
        ),
    ] {
        let blocked = app
            .request(
                method,
                "/api/v1/users/me",
                Some(&body),
                Some(&tokens.access),
            )
            .await;
        assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(retry_after(&blocked) >= 1);
    }
    let login = login_from(&app.client, &app.address, "heidi", RIGHT, &[]).await;
    assert_eq!(login.status(), StatusCode::TOO_MANY_REQUESTS);
    // Nothing was changed.
    let me = app
        .json(Method::GET, "/api/v1/users/me", None, Some(&tokens.access))
        .await;
    assert_eq!(me["email"], "heidi@example.com");
}

/// Registrations are limited per client address and per hour (429, the limit named), across
/// servers; another address still registers.
async fn registration_is_rate_limited_per_address(backend: Backend) {
    let app = TestApp::builder(backend)
        .configure(|settings| settings.auth.throttle.registrations_per_hour = 2)
        .on_disk()
        .spawn()
        .await;
    let other = app.another_server().await;
    let client = TestApp::client_from("127.0.0.2");
    let register = |base: String, name: &'static str, client: reqwest::Client| async move {
        client
            .post(format!("{base}/api/v1/auth/register"))
            .json(&serde_json::json!({
                "username": name,
                "email": format!("{name}@example.com"),
                "password": RIGHT,
            }))
            .send()
            .await
            .unwrap()
    };
    let created = register(app.address.clone(), "ivan", client.clone()).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created = register(other.address.clone(), "judy", client.clone()).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let refused = register(app.address.clone(), "ken", client.clone()).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&refused);
    assert!((3500..=3600).contains(&wait), "{wait}");
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .ends_with("/problems/rate-limited"),
        "{body}"
    );
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("at most 2 accounts"),
        "{body}"
    );
    let elsewhere = register(
        other.address.clone(),
        "ken",
        TestApp::client_from("127.0.0.3"),
    )
    .await;
    assert_eq!(elsewhere.status(), StatusCode::CREATED);
}

/// The scheduled job removes throttling rows older than a day (a client address is kept no
/// longer) and keeps the recent ones.
async fn old_throttling_rows_are_pruned(backend: Backend) {
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    use service::worker::BackgroundJob;
    let app = TestApp::builder(backend).spawn().await;
    let now = entity::timestamps::now();
    for (address, age_hours) in [("192.0.2.1", 25), ("192.0.2.2", 23), ("192.0.2.3", 0)] {
        let at = now - chrono::Duration::hours(age_hours);
        entity::throttle_event::ActiveModel {
            action: Set("login".to_owned()),
            account: Set(Some("user:1".to_owned())),
            address: Set(Some(address.to_owned())),
            created_at: Set(at),
            updated_at: Set(at),
            ..Default::default()
        }
        .insert(&app.db)
        .await
        .unwrap();
    }
    service::auth::throttle::PruneThrottleEvents::default()
        .enqueue(&app.db)
        .await
        .unwrap();
    assert!(app.run_pending_jobs().await >= 1);
    app.assert_no_failed_jobs().await;
    let mut left: Vec<String> = entity::throttle_event::Entity::find()
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|row| row.address)
        .collect();
    left.sort();
    assert_eq!(left, ["192.0.2.2", "192.0.2.3"]);
}

//! Photos over HTTP on every database and every store: upload, list, page, download, rename,
//! delete, the refusals, disconnects, and direct-to-bucket uploads.

use std::time::Duration;

use aistory_tests::images::{jpeg, png, webp};
use aistory_tests::{
    Backend, Store, TestApp, Tokens, backend_tests, e2e_tests, eventually, store_backend_tests,
};
use entity::prelude::*;
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

store_backend_tests!(
    upload_list_download_rename_delete,
    direct_upload_to_the_bucket
);
backend_tests!(
    refusals_are_clear,
    another_users_photo_is_not_found,
    lying_and_oversized_uploads_leave_nothing,
    a_stalled_upload_times_out_and_leaves_nothing,
    fifty_uploads_aborted_at_random_points_leave_nothing
);
e2e_tests!(literal_paths_answer_405_and_a_deleted_account_cannot_upload);

fn form(bytes: Vec<u8>, declared_type: &str, title: Option<&str>) -> Form {
    let part = Part::bytes(bytes)
        .file_name("../../etc/passwd.jpg")
        .mime_str(declared_type)
        .unwrap();
    let form = Form::new();
    let form = match title {
        Some(title) => form.text("title", title.to_owned()),
        None => form,
    };
    form.part("file", part)
}

async fn upload(app: &TestApp, token: &str, form: Form) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/photos"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn upload_ok(app: &TestApp, tokens: &Tokens, bytes: Vec<u8>, declared: &str) -> Value {
    let response = upload(app, &tokens.access, form(bytes, declared, Some("a title"))).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn problem(response: reqwest::Response, status: StatusCode) -> Value {
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(body["status"], status.as_u16(), "{body}");
    body
}

/// The ids of a page of photos, in order.
fn page_ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect()
}

fn sha256(bytes: &[u8]) -> String {
    hex_string(&Sha256::digest(bytes))
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn upload_list_download_rename_delete(backend: Backend, store: Store) {
    let app = TestApp::builder(backend).store(store).spawn().await;
    let tokens = app.signed_up("pia").await;

    let jpeg_bytes = jpeg(64, 48, Some("2021:07:04 12:30:00"));
    let png_bytes = png(20, 10);
    let webp_bytes = webp(16, 16);
    // The declared type is ignored: the bytes decide.
    let first = upload_ok(
        &app,
        &tokens,
        jpeg_bytes.clone(),
        "application/octet-stream",
    )
    .await;
    assert_eq!(first["status"], "uploaded");
    assert_eq!(first["content_type"], "image/jpeg");
    assert_eq!(first["width"], 64);
    assert_eq!(first["height"], 48);
    assert_eq!(first["size_bytes"], jpeg_bytes.len());
    assert_eq!(first["checksum_sha256"], sha256(&jpeg_bytes));
    // The camera's clock, without a time zone (the EXIF has no offset).
    assert!(first["taken_at"].is_null(), "{first}");
    assert_eq!(first["taken_at_local"], "2021-07-04T12:30:00");
    assert_eq!(first["title"], "a title");
    let second = upload_ok(&app, &tokens, png_bytes.clone(), "image/jpeg").await;
    assert_eq!(second["content_type"], "image/png");
    assert_eq!(
        (second["width"].as_i64(), second["height"].as_i64()),
        (Some(20), Some(10))
    );
    let third = upload_ok(&app, &tokens, webp_bytes.clone(), "image/webp").await;
    assert_eq!(third["content_type"], "image/webp");
    assert_eq!(third["width"], 16);

    // Keys are ours, never from the client's file name.
    let rows = Photo::find().all(&app.db).await.unwrap();
    for row in &rows {
        assert!(
            row.object_key
                .starts_with(&format!("users/{}/photos/", row.user_id)),
            "{}",
            row.object_key
        );
        assert!(!row.object_key.contains("passwd") && !row.object_key.contains(".."));
    }

    // Newest first, in pages.
    let page: Value = app
        .json(
            Method::GET,
            "/api/v1/photos?limit=2",
            None,
            Some(&tokens.access),
        )
        .await;
    let ids: Vec<i64> = page_ids(&page);
    assert_eq!(
        ids,
        vec![
            third["id"].as_i64().unwrap(),
            second["id"].as_i64().unwrap()
        ]
    );
    // A photo arriving between pages does not disturb the next page.
    upload_ok(&app, &tokens, png(8, 8), "image/png").await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let next: Value = app
        .json(
            Method::GET,
            &format!("/api/v1/photos?limit=2&cursor={cursor}"),
            None,
            Some(&tokens.access),
        )
        .await;
    let ids: Vec<i64> = page_ids(&next);
    assert_eq!(ids, vec![first["id"].as_i64().unwrap()]);
    assert!(next["next_cursor"].is_null());
    let filtered: Value = app
        .json(
            Method::GET,
            "/api/v1/photos?status=pending",
            None,
            Some(&tokens.access),
        )
        .await;
    assert_eq!(filtered["items"].as_array().unwrap().len(), 0);

    // Download: identical bytes, type, length, ETag; If-None-Match answers 304.
    let id = first["id"].as_i64().unwrap();
    let download = app
        .request(
            Method::GET,
            &format!("/api/v1/photos/{id}/content"),
            None,
            Some(&tokens.access),
        )
        .await;
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(download.headers()["content-type"], "image/jpeg");
    assert_eq!(
        download.headers()["content-length"],
        jpeg_bytes.len().to_string().as_str()
    );
    let etag = download.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(etag, format!("\"{}\"", sha256(&jpeg_bytes)));
    assert_eq!(download.bytes().await.unwrap().to_vec(), jpeg_bytes);
    let cached = app
        .client
        .get(app.url(&format!("/api/v1/photos/{id}/content")))
        .bearer_auth(&tokens.access)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);

    // Rename, clear the title.
    let renamed: Value = app
        .json(
            Method::PATCH,
            &format!("/api/v1/photos/{id}"),
            Some(&json!({"title": "Beach"})),
            Some(&tokens.access),
        )
        .await;
    assert_eq!(renamed["title"], "Beach");
    let cleared: Value = app
        .json(
            Method::PATCH,
            &format!("/api/v1/photos/{id}"),
            Some(&json!({"title": null})),
            Some(&tokens.access),
        )
        .await;
    assert!(cleared["title"].is_null());

    // Delete: row, object and thumbnails gone (the thumbnails are made first).
    app.run_pending_jobs().await;
    let files_before = app.store.as_ref().map(|s| s.files().len()).unwrap_or(0);
    let deleted = app
        .request(
            Method::DELETE,
            &format!("/api/v1/photos/{id}"),
            None,
            Some(&tokens.access),
        )
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = app
        .request(
            Method::GET,
            &format!("/api/v1/photos/{id}"),
            None,
            Some(&tokens.access),
        )
        .await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    // Deleted by a job queued in the deleting transaction.
    app.run_pending_jobs().await;
    if store != Store::Memory {
        let files = app.store.as_ref().unwrap().files();
        assert_eq!(
            files.len() + 3,
            files_before,
            "the photo's object and its two thumbnails are deleted: {files:?}"
        );
    }
    assert_eq!(Photo::find().count(&app.db).await.unwrap(), 3);
}

async fn refusals_are_clear(backend: Backend) {
    let app = TestApp::builder(backend)
        .store(Store::Memory)
        .configure(|s| s.storage.max_upload_bytes = 4096)
        .spawn()
        .await;
    let tokens = app.signed_up("rex").await;
    // Not an image, whatever it claims.
    let body = problem(
        upload(
            &app,
            &tokens.access,
            form(b"%PDF-1.7 not an image at all".to_vec(), "image/jpeg", None),
        )
        .await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("JPEG"), "{body}");
    // Not multipart.
    let json_body = app
        .post_json(
            "/api/v1/photos",
            &json!({"file": "x"}),
            Some(&tokens.access),
        )
        .await;
    problem(json_body, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    // Too large (the limit is 4 KiB here).
    let mut big = png(30, 30);
    big.resize(20 * 1024, 0);
    problem(
        upload(&app, &tokens.access, form(big, "image/png", None)).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    // No file; unknown field; a title too long.
    let no_file = Form::new().text("title", "x");
    let body = problem(
        upload(&app, &tokens.access, no_file).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(body["errors"]["file"].is_array());
    let unknown = form(png(4, 4), "image/png", None).text("owner", "someone");
    let body = problem(
        upload(&app, &tokens.access, unknown).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(body["errors"]["owner"].is_array(), "{body}");
    let long_title = form(png(4, 4), "image/png", Some(&"t".repeat(201)));
    problem(
        upload(&app, &tokens.access, long_title).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    // A bad title after the file: refused, and the stored file is removed again.
    let late_title = Form::new()
        .part("file", Part::bytes(png(4, 4)).file_name("a.png"))
        .text("title", "t".repeat(201));
    problem(
        upload(&app, &tokens.access, late_title).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let two_titles = form(png(4, 4), "image/png", Some("one")).text("title", "two");
    problem(
        upload(&app, &tokens.access, two_titles).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    // Bad listing parameters.
    for query in [
        "limit=0",
        "limit=101",
        "status=lost",
        "cursor=%%%",
        "cursor=bm9wZQ",
    ] {
        let response = app
            .request(
                Method::GET,
                &format!("/api/v1/photos?{query}"),
                None,
                Some(&tokens.access),
            )
            .await;
        assert!(
            response.status().is_client_error(),
            "{query}: {}",
            response.status()
        );
    }
    // Direct upload needs S3.
    let direct = app
        .post_json(
            "/api/v1/photos/uploads",
            &json!({"content_type": "image/png", "size_bytes": 10}),
            Some(&tokens.access),
        )
        .await;
    let body = problem(direct, StatusCode::BAD_REQUEST).await;
    assert!(body["detail"].as_str().unwrap().contains("S3"), "{body}");
    // Nothing was left behind by any refusal.
    assert_eq!(
        Photo::find().count(&app.db).await.unwrap(),
        0,
        "a refused upload left a row"
    );
}

async fn another_users_photo_is_not_found(backend: Backend) {
    let app = TestApp::builder(backend).store(Store::Memory).spawn().await;
    let owner = app.signed_up("olive").await;
    let other = app.signed_up("oscar").await;
    let photo = upload_ok(&app, &owner, png(4, 4), "image/png").await;
    let id = photo["id"].as_i64().unwrap();
    let missing = id + 1000;
    for (method, suffix, body) in [
        (Method::GET, "", None),
        (Method::PATCH, "", Some(json!({"title": "mine now"}))),
        (Method::DELETE, "", None),
        (Method::GET, "/content", None),
        (Method::POST, "/complete", None),
    ] {
        let theirs = app
            .request(
                method.clone(),
                &format!("/api/v1/photos/{id}{suffix}"),
                body.as_ref(),
                Some(&other.access),
            )
            .await;
        let theirs_status = theirs.status();
        let theirs_body: Value = theirs.json().await.unwrap_or(Value::Null);
        let absent = app
            .request(
                method.clone(),
                &format!("/api/v1/photos/{missing}{suffix}"),
                body.as_ref(),
                Some(&other.access),
            )
            .await;
        let absent_status = absent.status();
        let absent_body: Value = absent.json().await.unwrap_or(Value::Null);
        assert_eq!(theirs_status, absent_status, "{method} {suffix}");
        assert_eq!(
            theirs_body["detail"], absent_body["detail"],
            "{method} {suffix}"
        );
        if suffix != "/complete" {
            assert_eq!(theirs_status, StatusCode::NOT_FOUND, "{method} {suffix}");
        }
    }
    // Ids that are not ids: a 422 naming the parameter; a negative one is no one's photo.
    for (bad, status) in [
        ("abc", StatusCode::UNPROCESSABLE_ENTITY),
        ("99999999999999999999999", StatusCode::UNPROCESSABLE_ENTITY),
        ("1.5", StatusCode::UNPROCESSABLE_ENTITY),
        ("-1", StatusCode::NOT_FOUND),
    ] {
        let response = app
            .request(
                Method::GET,
                &format!("/api/v1/photos/{bad}"),
                None,
                Some(&other.access),
            )
            .await;
        assert_eq!(response.status(), status, "{bad}");
        if status == StatusCode::UNPROCESSABLE_ENTITY {
            let body: Value = response.json().await.unwrap();
            assert!(body["errors"]["id"].is_array(), "{bad}: {body}");
        }
    }
    // The owner's photo is untouched.
    let still: Value = app
        .json(
            Method::GET,
            &format!("/api/v1/photos/{id}"),
            None,
            Some(&owner.access),
        )
        .await;
    assert_eq!(still["title"], "a title");
}

/// Sends a multipart request by hand and stops mid-body (or lies about its length).
/// The request head of a raw multipart upload (boundary `XyZ`): `Content-Length: length`, or
/// chunked without one.
fn upload_head(token: &str, length: Option<usize>) -> String {
    let framing = match length {
        Some(length) => format!("Content-Length: {length}"),
        None => "Transfer-Encoding: chunked".to_owned(),
    };
    format!(
        "POST /api/v1/photos HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary=XyZ\r\n{framing}\r\n\r\n"
    )
}

/// A connection that sent an upload's head (declaring all of `body`) and `body[..sent]`.
async fn partial_upload(
    app: &TestApp,
    token: &str,
    body: &[u8],
    sent: usize,
) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    stream
        .write_all(upload_head(token, Some(body.len())).as_bytes())
        .await
        .unwrap();
    stream.write_all(&body[..sent]).await.unwrap();
    stream
}

async fn raw_upload(
    app: &TestApp,
    token: &str,
    declared_length: Option<usize>,
    body: &[u8],
    close_early: bool,
) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    stream
        .write_all(upload_head(token, declared_length).as_bytes())
        .await
        .unwrap();
    if declared_length.is_some() {
        stream.write_all(body).await.unwrap();
    } else {
        for piece in body.chunks(16 * 1024) {
            stream
                .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                .await
                .unwrap();
            stream.write_all(piece).await.unwrap();
            stream.write_all(b"\r\n").await.unwrap();
        }
        if !close_early {
            stream.write_all(b"0\r\n\r\n").await.unwrap();
        }
    }
    if close_early {
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(stream);
        return None;
    }
    let mut response = vec![0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut response))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&response[..read]).to_string();
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
}

fn multipart_body(file: &[u8], close: bool) -> Vec<u8> {
    let mut body = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n".to_vec();
    body.extend_from_slice(file);
    if close {
        body.extend_from_slice(b"\r\n--XyZ--\r\n");
    }
    body
}

async fn lying_and_oversized_uploads_leave_nothing(backend: Backend) {
    for store in [Store::File, Store::S3] {
        if !store.available() {
            continue;
        }
        let app = TestApp::builder(backend)
            .store(store)
            .configure(|s| s.storage.max_upload_bytes = 64 * 1024)
            .spawn()
            .await;
        let tokens = app.signed_up("lia").await;
        let big = {
            let mut bytes = png(8, 8);
            bytes.resize(300 * 1024, 0);
            bytes
        };
        // Chunked, no length declared, over the limit: refused as it streams.
        let status = raw_upload(
            &app,
            &tokens.access,
            None,
            &multipart_body(&big, true),
            false,
        )
        .await;
        assert_eq!(status, Some(413), "{store:?}");
        // Declared length over the limit: refused before reading.
        let status = raw_upload(
            &app,
            &tokens.access,
            Some(10 * 1024 * 1024),
            &multipart_body(&png(4, 4), true),
            true,
        )
        .await;
        assert_eq!(status, None);
        // A client that goes away mid-upload.
        let small = {
            let mut bytes = png(8, 8);
            bytes.resize(40 * 1024, 0);
            bytes
        };
        let body = multipart_body(&small, false);
        raw_upload(&app, &tokens.access, Some(body.len() + 50_000), &body, true).await;
        raw_upload(&app, &tokens.access, None, &body, true).await;
        // Give the server a moment to notice and clean up.
        let mut clean = false;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let rows = Photo::find().count(&app.db).await.unwrap();
            let files = app.store.as_ref().map(|s| s.files()).unwrap_or_default();
            if rows == 0 && files.is_empty() {
                clean = true;
                break;
            }
        }
        let files = app.store.as_ref().map(|s| s.files()).unwrap_or_default();
        assert!(
            clean,
            "{store:?}: rows or objects left: {} rows, files {files:?}",
            Photo::find().count(&app.db).await.unwrap()
        );
        // And the server still serves.
        upload_ok(&app, &tokens, png(4, 4), "image/png").await;
    }
}

async fn direct_upload_to_the_bucket(backend: Backend, store: Store) {
    if store != Store::S3 {
        return; // the refusal on other stores is covered by refusals_are_clear
    }
    let app = TestApp::builder(backend)
        .store(store)
        .configure(|s| s.storage.max_upload_bytes = 64 * 1024)
        .spawn()
        .await;
    let tokens = app.signed_up("dora").await;
    let start = |content_type: &str, size: usize| {
        let app = &app;
        let access = tokens.access.clone();
        let body = json!({"content_type": content_type, "size_bytes": size, "title": "direct"});
        async move {
            let response = app
                .post_json("/api/v1/photos/uploads", &body, Some(&access))
                .await;
            assert_eq!(response.status(), StatusCode::CREATED);
            response.json::<Value>().await.unwrap()
        }
    };
    let put = |upload: &Value, bytes: Vec<u8>| {
        let client = app.client.clone();
        let url = upload["url"].as_str().unwrap().to_owned();
        let content_type = upload["headers"]["Content-Type"]
            .as_str()
            .unwrap()
            .to_owned();
        async move {
            client
                .put(url)
                .header("content-type", content_type)
                .body(bytes)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let complete = |id: i64| {
        let app = &app;
        let access = tokens.access.clone();
        async move {
            app.request(
                Method::POST,
                &format!("/api/v1/photos/{id}/complete"),
                None,
                Some(&access),
            )
            .await
        }
    };

    // The happy path.
    let bytes = jpeg(32, 32, None);
    let started = start("image/jpeg", bytes.len()).await;
    assert_eq!(started["photo"]["status"], "pending");
    let id = started["photo"]["id"].as_i64().unwrap();
    assert!(put(&started["upload"], bytes.clone()).await.is_success());
    let done = complete(id).await;
    assert_eq!(done.status(), StatusCode::OK);
    let done: Value = done.json().await.unwrap();
    assert_eq!(done["status"], "uploaded");
    assert_eq!(done["checksum_sha256"], sha256(&bytes));
    assert_eq!(done["width"], 32);
    let download = app
        .request(
            Method::GET,
            &format!("/api/v1/photos/{id}/content"),
            None,
            Some(&tokens.access),
        )
        .await;
    assert_eq!(download.bytes().await.unwrap().to_vec(), bytes);
    // The presigned URL is still valid, but writing again cannot replace the verified photo.
    let mut other_bytes = bytes.clone();
    other_bytes[bytes.len() / 2] ^= 0xFF;
    put(&started["upload"], other_bytes).await;
    let again = app
        .request(
            Method::GET,
            &format!("/api/v1/photos/{id}/content"),
            None,
            Some(&tokens.access),
        )
        .await;
    assert_eq!(
        again.bytes().await.unwrap().to_vec(),
        bytes,
        "a second PUT replaced the photo"
    );
    // Completing twice is an invalid transition, naming both states.
    let again = problem(complete(id).await, StatusCode::CONFLICT).await;
    assert!(
        again["detail"].as_str().unwrap().contains("uploaded"),
        "{again}"
    );

    // The signature binds length and type: a bigger body or another type is refused by the store.
    let other = start("image/png", 100).await;
    assert!(!put(&other["upload"], vec![0u8; 5000]).await.is_success());
    let wrong_type = app
        .client
        .put(other["upload"]["url"].as_str().unwrap())
        .header("content-type", "text/plain")
        .body(vec![0u8; 100])
        .send()
        .await
        .unwrap();
    assert!(!wrong_type.status().is_success());
    // Nothing uploaded yet: complete says so.
    problem(
        complete(other["photo"]["id"].as_i64().unwrap()).await,
        StatusCode::CONFLICT,
    )
    .await;

    // Not an image: refused at completion, object and row removed.
    let fake = b"this is not an image, only text".to_vec();
    let not_image = start("image/png", fake.len()).await;
    assert!(put(&not_image["upload"], fake).await.is_success());
    problem(
        complete(not_image["photo"]["id"].as_i64().unwrap()).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;

    // Declared over the limit: refused up front, on the field (the document's `maximum`).
    let too_big = app
        .post_json(
            "/api/v1/photos/uploads",
            &json!({"content_type": "image/png", "size_bytes": 1_000_000}),
            Some(&tokens.access),
        )
        .await;
    let body = problem(too_big, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(body["errors"]["size_bytes"].is_array(), "{body}");
    // Too large after the fact (an object bigger than the limit under a pending photo's key).
    let sneaky = start("image/png", 100).await;
    let sneaky_id = sneaky["photo"]["id"].as_i64().unwrap();
    let key = Photo::find_by_id(sneaky_id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap()
        .object_key;
    let storage = service::storage::Storage::from_url(&app.store.as_ref().unwrap().url).unwrap();
    let mut large = png(8, 8);
    large.resize(100 * 1024, 0);
    let staging = service::storage::keys::staging(&key);
    storage.put(&staging, large.into()).await.unwrap();
    problem(complete(sneaky_id).await, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert!(
        !storage.exists(&staging).await.unwrap(),
        "the oversized object was not deleted"
    );
    assert!(!storage.exists(&key).await.unwrap());
    assert!(
        Photo::find_by_id(sneaky_id)
            .one(&app.db)
            .await
            .unwrap()
            .is_none()
    );
}

/// Found by schemathesis: a method a literal path does not serve is a 405 (not the 404 of the
/// `{id}` route it also matches), and a token that outlived its account cannot upload (401,
/// not a foreign-key 404).
async fn literal_paths_answer_405_and_a_deleted_account_cannot_upload() {
    let app = TestApp::builder(Backend::Sqlite).spawn().await;
    let tokens = app.signed_up("ghost").await;
    let response = app
        .request(
            Method::PATCH,
            "/api/v1/photos/uploads",
            Some(&json!({})),
            Some(&tokens.access),
        )
        .await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "POST");
    let deleted = app
        .request(
            Method::DELETE,
            "/api/v1/users/me",
            Some(&json!({"current_password": "correct horse battery"})),
            Some(&tokens.access),
        )
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let response = upload(&app, &tokens.access, form(png(2, 2), "image/png", None)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(Photo::find().count(&app.db).await.unwrap(), 0);
}

/// A slow-loris upload (the body stops arriving) is cut off with 408 after the idle time-out,
/// and leaves neither a row nor an object; other clients are served meanwhile.
async fn a_stalled_upload_times_out_and_leaves_nothing(backend: Backend) {
    use tokio::io::AsyncReadExt;
    let app = TestApp::builder(backend)
        .store(Store::File)
        .configure(|s| s.storage.upload_idle_timeout = Duration::from_secs(1))
        .spawn()
        .await;
    let tokens = app.signed_up("loris").await;
    let body = multipart_body(&png(64, 64), true);
    // Half the body, then nothing.
    let mut stream = partial_upload(&app, &tokens.access, &body, body.len() / 2).await;
    let started = std::time::Instant::now();
    // Meanwhile another client is served.
    let me = app
        .request(Method::GET, "/api/v1/users/me", None, Some(&tokens.access))
        .await;
    assert_eq!(me.status(), StatusCode::OK);
    let mut response = vec![0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut response))
        .await
        .expect("the stalled upload was never answered")
        .unwrap();
    let text = String::from_utf8_lossy(&response[..read]).to_string();
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("stopped arriving"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5));
    eventually("the stalled upload left nothing", || async {
        Photo::find().count(&app.db).await.unwrap() == 0
            && app.store.as_ref().unwrap().files().is_empty()
    })
    .await;
}

/// 50 uploads cut off at random points (headers sent, part of the body, then the connection
/// dropped) leave no row and no object, and the server keeps serving.
async fn fifty_uploads_aborted_at_random_points_leave_nothing(backend: Backend) {
    let app = TestApp::builder(backend).store(Store::File).spawn().await;
    let tokens = app.signed_up("quitter").await;
    let body = {
        let mut file = png(64, 64);
        // Past the sniffed header, so some aborts happen mid-stream to the store.
        file.resize(300 * 1024, 7);
        multipart_body(&file, true)
    };
    // A fixed sequence of "random" cut points (reproducible): xorshift.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..50 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let cut = 1 + (state % (body.len() as u64 - 1)) as usize;
        drop(partial_upload(&app, &tokens.access, &body, cut).await);
    }
    let me = app
        .request(Method::GET, "/api/v1/users/me", None, Some(&tokens.access))
        .await;
    assert_eq!(me.status(), StatusCode::OK, "the server keeps serving");
    eventually("the aborted uploads left nothing", || async {
        Photo::find().count(&app.db).await.unwrap() == 0
            && app.store.as_ref().unwrap().files().is_empty()
    })
    .await;
    // And a complete upload still works.
    let ok = upload(&app, &tokens.access, form(png(4, 4), "image/png", None)).await;
    assert_eq!(ok.status(), StatusCode::CREATED);
}

//! Thumbnails on every database and every store: made by the job after an upload, `not ready`
//! until then, served with a year's caching and ETag, refused in other sizes, another user's
//! answers 404, deleted with the photo; a photo that cannot be decoded has none (until a retry
//! finds bytes it can decode).

use aistory_tests::images::{jpeg, png};
use aistory_tests::{Backend, Store, TestApp, backend_tests, store_backend_tests};
use reqwest::{Method, StatusCode, header};
use sea_orm::EntityTrait;
use serde_json::Value;

store_backend_tests!(thumbnails_are_made_served_and_deleted_with_the_photo);
backend_tests!(a_photo_that_cannot_be_decoded_has_no_thumbnail);

/// The thumbnail files in the store (none for the memory store, which has no directory).
fn thumbnail_files(app: &TestApp) -> Vec<String> {
    app.store
        .as_ref()
        .map(|store| store.files())
        .unwrap_or_default()
        .iter()
        .map(|path| path.display().to_string())
        .filter(|path| path.contains(".thumb-"))
        .collect()
}

async fn thumbnails_are_made_served_and_deleted_with_the_photo(backend: Backend, store: Store) {
    let app = TestApp::builder(backend).store(store).spawn().await;
    let tokens = app.signed_up("tina").await;
    let photo = app
        .upload_bytes(&tokens.access, jpeg(1200, 800, None))
        .await;
    let id = photo["id"].as_i64().unwrap();
    assert_eq!(photo["thumbnail_status"], "pending", "{photo}");
    let url = format!("/api/v1/photos/{id}/thumbnail");
    assert_eq!(photo["thumbnail_url"], url.as_str());

    // Before the job: 404 "not ready yet", with when to retry.
    let early = app
        .request(Method::GET, &url, None, Some(&tokens.access))
        .await;
    assert_eq!(early.status(), StatusCode::NOT_FOUND);
    assert_eq!(early.headers()[header::RETRY_AFTER], "1");
    let problem: Value = early.json().await.unwrap();
    assert_eq!(
        problem["type"], "/problems/thumbnail-not-ready",
        "{problem}"
    );

    assert!(app.run_pending_jobs().await >= 1);
    app.assert_no_failed_jobs().await;
    let photo = app.photo(&tokens.access, id).await;
    assert_eq!(photo["thumbnail_status"], "ready", "{photo}");
    if store != Store::Memory {
        let files = thumbnail_files(&app);
        assert_eq!(
            files.len(),
            2,
            "one object per size beside the photo: {files:?}"
        );
    }

    // Each size: a JPEG whose long side is the size, the aspect kept; cached for a year.
    let mut etags = Vec::new();
    for (query, expected) in [
        ("", (256, 171)),
        ("?size=256", (256, 171)),
        ("?size=1024", (1024, 683)),
    ] {
        let response = app
            .request(
                Method::GET,
                &format!("{url}{query}"),
                None,
                Some(&tokens.access),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "{query}");
        let headers = response.headers().clone();
        assert_eq!(headers[header::CONTENT_TYPE], "image/jpeg");
        assert_eq!(
            headers[header::CACHE_CONTROL],
            "private, max-age=31536000, immutable"
        );
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        let etag = headers[header::ETAG].to_str().unwrap().to_owned();
        let bytes = response.bytes().await.unwrap();
        let decoded = image::load_from_memory(&bytes).unwrap();
        assert_eq!((decoded.width(), decoded.height()), expected, "{query}");
        // Revalidation: 304, no body.
        let again = app
            .client
            .get(app.url(&format!("{url}{query}")))
            .bearer_auth(&tokens.access)
            .header(header::IF_NONE_MATCH, &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{query}");
        etags.push(etag);
    }
    assert_eq!(etags[0], etags[1]);
    assert_ne!(etags[0], etags[2], "each size has its own ETag");

    // Other sizes are refused, by name.
    let odd = app
        .request(
            Method::GET,
            &format!("{url}?size=500"),
            None,
            Some(&tokens.access),
        )
        .await;
    assert_eq!(odd.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = odd.json().await.unwrap();
    assert!(problem["errors"]["size"].is_array(), "{problem}");

    // Another user's photo: 404 like a missing one.
    let other = app.signed_up("otto").await;
    let theirs = app
        .request(Method::GET, &url, None, Some(&other.access))
        .await;
    assert_eq!(theirs.status(), StatusCode::NOT_FOUND);
    let problem: Value = theirs.json().await.unwrap();
    assert_eq!(problem["type"], "/problems/not-found");

    // Deleted with the photo.
    let deleted = app
        .request(
            Method::DELETE,
            &format!("/api/v1/photos/{id}"),
            None,
            Some(&tokens.access),
        )
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    app.run_pending_jobs().await;
    app.assert_no_failed_jobs().await;
    assert_eq!(thumbnail_files(&app), Vec::<String>::new());
    let gone = app
        .request(Method::GET, &url, None, Some(&tokens.access))
        .await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    let problem: Value = gone.json().await.unwrap();
    assert_eq!(problem["type"], "/problems/not-found");
}

async fn a_photo_that_cannot_be_decoded_has_no_thumbnail(backend: Backend) {
    let app = TestApp::builder(backend).store(Store::File).spawn().await;
    let tokens = app.signed_up("dora").await;
    // A PNG whose header is whole (the upload reads its size from it) and whose pixels are not.
    let mut damaged = png(300, 200);
    damaged.truncate(80);
    let photo = app.upload_bytes(&tokens.access, damaged).await;
    let id = photo["id"].as_i64().unwrap();
    app.run_pending_jobs().await;
    app.assert_no_failed_jobs().await;
    let photo = app.photo(&tokens.access, id).await;
    assert_eq!(photo["thumbnail_status"], "unavailable", "{photo}");
    let response = app
        .request(
            Method::GET,
            &format!("/api/v1/photos/{id}/thumbnail"),
            None,
            Some(&tokens.access),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.headers().get(header::RETRY_AFTER).is_none());
    let problem: Value = response.json().await.unwrap();
    assert_eq!(
        problem["type"], "/problems/thumbnail-unavailable",
        "{problem}"
    );
    assert!(
        problem["detail"].as_str().unwrap().contains("image/png"),
        "{problem}"
    );

    // An operator's retry runs the job again for an `unavailable` photo (as after a store that
    // failed every attempt): once the bytes can be read, the thumbnails are made.
    let key = entity::photo::Entity::find_by_id(id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap()
        .object_key;
    let store = service::storage::Storage::from_url(&app.store.as_ref().unwrap().url).unwrap();
    store.put(&key, png(300, 200).into()).await.unwrap();
    use service::worker::BackgroundJob;
    service::photos::thumbnails::MakeThumbnails { photo_id: id }
        .enqueue(&app.db)
        .await
        .unwrap();
    assert_eq!(app.run_pending_jobs().await, 1);
    app.assert_no_failed_jobs().await;
    let photo = app.photo(&tokens.access, id).await;
    assert_eq!(photo["thumbnail_status"], "ready", "{photo}");
}

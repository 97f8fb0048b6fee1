//! Downloads from the bucket (`AISTORY_DOWNLOADS=redirect`, an S3 store's default): the API
//! authorizes, then answers 302 to a presigned GET; a plain HTTP client (no credentials)
//! follows it and gets the same bytes, type and disposition from the bucket; the URL stops
//! working when it expires; the ETag still answers 304 at the API; another user learns nothing.

use std::time::Duration;

use aistory_tests::images::jpeg;
use aistory_tests::{Store, TestApp, e2e_tests};
use reqwest::{StatusCode, header};
use settings::DownloadMode;

e2e_tests!(on Sqlite with S3:
    downloads_redirect_to_the_bucket_and_the_bytes_match,
    an_expired_download_url_is_refused_by_the_store,
);

/// A client that does not follow redirects (to look at the 302 itself).
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn redirected_app(ttl: Duration) -> TestApp {
    TestApp::builder(aistory_tests::Backend::Sqlite)
        .store(Store::S3)
        .configure(move |settings| {
            settings.storage.downloads = DownloadMode::Redirect;
            settings.storage.download_url_ttl = ttl;
        })
        .spawn()
        .await
}

/// The 302 of `path` for `token`: its `Location`, after checking the answer's headers.
async fn location(app: &TestApp, path: &str, token: &str) -> String {
    let response = no_redirects()
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND, "{path}");
    assert_eq!(
        response.headers()[header::CACHE_CONTROL],
        "private, max-age=150"
    );
    assert!(response.headers().contains_key(header::ETAG));
    let location = response.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    assert!(
        location.starts_with(&endpoint),
        "{location} is the bucket's"
    );
    assert!(location.contains("X-Amz-Signature="), "{location}");
    location
}

async fn downloads_redirect_to_the_bucket_and_the_bytes_match() {
    let app = redirected_app(Duration::from_secs(300)).await;
    let tokens = app.signed_up("rita").await;
    let bytes = jpeg(640, 480, None);
    let photo = app.upload_bytes(&tokens.access, bytes.clone()).await;
    let id = photo["id"].as_i64().unwrap();

    let url = location(
        &app,
        &format!("/api/v1/photos/{id}/content"),
        &tokens.access,
    )
    .await;
    // A plain client, no token: the bucket serves it, with our type and disposition.
    let fetched = reqwest::get(&url).await.unwrap();
    assert_eq!(fetched.status(), StatusCode::OK);
    assert_eq!(fetched.headers()[header::CONTENT_TYPE], "image/jpeg");
    assert_eq!(
        fetched.headers()[header::CONTENT_DISPOSITION],
        format!("inline; filename=\"photo-{id}.jpg\"").as_str()
    );
    assert_eq!(
        fetched.headers()[header::CACHE_CONTROL],
        "private, max-age=300, immutable"
    );
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), bytes.as_slice());
    // The test client follows the redirect by itself, like a browser.
    let followed = app
        .client
        .get(app.url(&format!("/api/v1/photos/{id}/content")))
        .bearer_auth(&tokens.access)
        .send()
        .await
        .unwrap();
    assert_eq!(followed.status(), StatusCode::OK);
    assert_eq!(followed.bytes().await.unwrap().as_ref(), bytes.as_slice());

    // The ETag still answers 304 here, without a URL.
    let etag = format!("\"{}\"", photo["checksum_sha256"].as_str().unwrap());
    let again = no_redirects()
        .get(app.url(&format!("/api/v1/photos/{id}/content")))
        .bearer_auth(&tokens.access)
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert!(again.headers().get(header::LOCATION).is_none());

    // Thumbnails too, once made.
    app.run_pending_jobs().await;
    let url = location(
        &app,
        &format!("/api/v1/photos/{id}/thumbnail?size=256"),
        &tokens.access,
    )
    .await;
    let thumbnail = reqwest::get(&url).await.unwrap();
    assert_eq!(thumbnail.status(), StatusCode::OK);
    assert_eq!(thumbnail.headers()[header::CONTENT_TYPE], "image/jpeg");
    let decoded = image::load_from_memory(&thumbnail.bytes().await.unwrap()).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (256, 192));

    // Another user: the same 404 as for a missing photo, no URL.
    let other = app.signed_up("otto").await;
    let theirs = no_redirects()
        .get(app.url(&format!("/api/v1/photos/{id}/content")))
        .bearer_auth(&other.access)
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), StatusCode::NOT_FOUND);
    assert!(theirs.headers().get(header::LOCATION).is_none());

    // A URL is bound to its headers: asking the bucket for another type breaks the signature.
    let forged = url.replace(
        "response-content-type=image%2Fjpeg",
        "response-content-type=text%2Fhtml",
    );
    assert_ne!(forged, url);
    assert_eq!(
        reqwest::get(&forged).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
}

async fn an_expired_download_url_is_refused_by_the_store() {
    let app = redirected_app(Duration::from_secs(1)).await;
    let tokens = app.signed_up("ezra").await;
    let photo = app.upload_bytes(&tokens.access, jpeg(64, 48, None)).await;
    let id = photo["id"].as_i64().unwrap();
    let response = no_redirects()
        .get(app.url(&format!("/api/v1/photos/{id}/content")))
        .bearer_auth(&tokens.access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(
        response.headers()[header::CACHE_CONTROL],
        "private, max-age=0"
    );
    let url = response.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    // X-Amz-Date has a one-second resolution: wait past the whole second after it, and more.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let expired = reqwest::get(&url).await.unwrap();
    assert_eq!(expired.status(), StatusCode::FORBIDDEN, "{url}");
    // A new request gets a new URL that works.
    let fresh = app
        .client
        .get(app.url(&format!("/api/v1/photos/{id}/content")))
        .bearer_auth(&tokens.access)
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), StatusCode::OK);
}

//! Hot reads from a real streaming replica (`AISTORY_DATABASE_READ_URL`; `.ci/replica.sh`
//! makes it with `pg_basebackup -R`): a read never misses a write that committed before it
//! arrived, even on another server process and with the replica replaying 20 ms late; and
//! stopping the replica under read load loses no read (they go to the primary) until it is
//! back (they return to it).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aistory_tests::replica::{caught_up, control, exclusive, reads_served_by, url_for};
use aistory_tests::{Backend, TestApp, e2e_tests};
use reqwest::Method;
use serde_json::json;

e2e_tests!(on Postgres with replica:
    a_read_after_a_write_never_misses_it_on_a_lagging_replica,
    stopping_the_replica_under_load_loses_no_read,
    a_read_url_that_is_not_a_standby_is_never_read,
);

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn replicated_app() -> TestApp {
    let app = TestApp::builder(Backend::Postgres)
        .configure(|settings| {
            settings.database.read_url = Some(url_for(&settings.database.url));
            // Generous: CI's other tests write a lot of WAL (a database each) for it to replay.
            settings.database.replica_max_wait = Duration::from_secs(5);
        })
        .spawn()
        .await;
    caught_up(&app.database.url).await;
    app
}

async fn a_read_after_a_write_never_misses_it_on_a_lagging_replica() {
    let _replica = exclusive().await;
    control(&["start"]).await;
    let app = replicated_app().await;
    // Reads on a second process: what one process wrote, the other must see.
    let other = app.another_server().await;
    control(&["delay", "20"]).await;
    let tokens = app.signed_up("reader").await;
    let token = tokens.access.as_str();
    let client = client();
    let (replica_before, primary_before) = (reads_served_by("replica"), reads_served_by("primary"));

    let mut violations = Vec::new();
    for round in 0..30 {
        let photo = app.upload_png(token).await;
        let id = photo["id"].as_i64().unwrap();
        // At once, on the other process: the photo, then the first page with it on top.
        let response = client
            .get(other.url(&format!("/api/v1/photos/{id}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        if response.status() != 200 {
            violations.push(format!(
                "round {round}: GET photo {id} -> {}",
                response.status()
            ));
        }
        let page: serde_json::Value = client
            .get(other.url("/api/v1/photos?limit=1"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if page["items"][0]["id"].as_i64() != Some(id) {
            violations.push(format!(
                "round {round}: first page lacks photo {id}: {page}"
            ));
        }
        // A change, read back at once on the same process.
        let title = format!("title {round}");
        let renamed = app
            .json(
                Method::PATCH,
                &format!("/api/v1/photos/{id}"),
                Some(&json!({ "title": title })),
                Some(token),
            )
            .await;
        assert_eq!(renamed["title"], title.as_str());
        let read = app.photo(token, id).await;
        if read["title"] != title.as_str() {
            violations.push(format!(
                "round {round}: title {} after renaming to {title}",
                read["title"]
            ));
        }
    }
    control(&["delay", "0"]).await;
    let replica = reads_served_by("replica") - replica_before;
    let primary = reads_served_by("primary") - primary_before;
    eprintln!("hot reads: {replica} by the replica, {primary} by the primary");
    assert!(
        violations.is_empty(),
        "reads missed writes: {violations:#?}"
    );
    // 30 rounds of 3 hot reads (plus the sign-up's): the replica served at least half.
    assert!(
        replica >= 45.0 && replica >= primary,
        "the replica served {replica} hot reads, the primary {primary}"
    );
}

async fn stopping_the_replica_under_load_loses_no_read() {
    let _replica = exclusive().await;
    control(&["start"]).await;
    control(&["delay", "0"]).await;
    let app = Arc::new(replicated_app().await);
    let tokens = app.signed_up("loaded").await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(app.upload_png(&tokens.access).await["id"].as_i64().unwrap());
    }

    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    for reader in 0..4 {
        let (app, stop, served, ids) = (app.clone(), stop.clone(), served.clone(), ids.clone());
        let token = tokens.access.clone();
        readers.push(tokio::spawn(async move {
            let client = client();
            let mut failures = Vec::new();
            let mut turn = reader;
            while !stop.load(Ordering::Relaxed) {
                turn += 1;
                let path = if turn % 2 == 0 {
                    format!("/api/v1/photos/{}", ids[turn % ids.len()])
                } else {
                    "/api/v1/photos?limit=3".to_owned()
                };
                match client.get(app.url(&path)).bearer_auth(&token).send().await {
                    Ok(response) if response.status() == 200 => {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(response) => failures.push(format!(
                        "{path}: {} {}",
                        response.status(),
                        response.text().await.unwrap_or_default()
                    )),
                    Err(error) => failures.push(format!("{path}: {error}")),
                }
            }
            failures
        }));
    }

    let wait_for = async |what: &str, check: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(40);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let replica_at_start = reads_served_by("replica");
    wait_for("the replica serves reads", &|| {
        reads_served_by("replica") >= replica_at_start + 50.0
    })
    .await;

    control(&["stop"]).await;
    let stopped_at = (reads_served_by("replica"), reads_served_by("primary"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let while_stopped = (
        reads_served_by("replica") - stopped_at.0,
        reads_served_by("primary") - stopped_at.1,
    );

    control(&["start"]).await;
    let restarted_at = reads_served_by("replica");
    wait_for("reads go to the replica again", &|| {
        reads_served_by("replica") >= restarted_at + 50.0
    })
    .await;

    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for reader in readers {
        failures.extend(reader.await.unwrap());
    }
    eprintln!(
        "{} reads answered 200; while the replica was stopped: {} by it, {} by the primary",
        served.load(Ordering::Relaxed),
        while_stopped.0,
        while_stopped.1
    );
    assert!(failures.is_empty(), "reads failed: {failures:#?}");
    assert_eq!(while_stopped.0, 0.0, "the stopped replica served reads");
    assert!(
        while_stopped.1 >= 50.0,
        "the primary served {} reads while the replica was stopped",
        while_stopped.1
    );
    assert!(served.load(Ordering::Relaxed) >= 200);
}

/// `AISTORY_DATABASE_READ_URL` naming a server that is not in recovery (the primary itself, or
/// a promoted replica that no longer follows it): never read from, no error either.
async fn a_read_url_that_is_not_a_standby_is_never_read() {
    let _replica = exclusive().await;
    let app = TestApp::builder(Backend::Postgres)
        .configure(|settings| {
            settings.database.read_url = Some(settings.database.url.clone());
        })
        .spawn()
        .await;
    let tokens = app.signed_up("promoted").await;
    let (replica_before, primary_before) = (reads_served_by("replica"), reads_served_by("primary"));
    for _ in 0..5 {
        let id = app.upload_png(&tokens.access).await["id"].as_i64().unwrap();
        assert_eq!(app.photo(&tokens.access, id).await["id"], id);
    }
    assert_eq!(reads_served_by("replica"), replica_before);
    assert!(reads_served_by("primary") >= primary_before + 5.0);
}

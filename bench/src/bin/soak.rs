//! Soak (issue 8): the release server on PostgreSQL (2 in-process workers, builtin stories)
//! under a steady mixed load for a long time: each client uploads a photo, asks for a story,
//! reads the photo and a page of photos while the story is written, reads the story, and
//! starts again. Prints requests by kind, errors (any unexpected status or transport error),
//! stories completed, and the server's RSS after the first minute and at the end.
//!
//! Run: `cargo build --release -p api -p bench && target/release/soak [MINUTES] [CLIENTS] [PAUSE_MS] [RATE]`
//! (defaults 10, 8, 20, 0: each client pauses PAUSE_MS between requests; RATE caps the
//! requests per second of all clients together, 0 = no cap). Capacity: `soak 1 16 0`; the
//! soak at half of it: `soak 10 16 0 HALF`. With
//! `AISTORY_TEST_POSTGRES_URL` (default postgres://postgres@127.0.0.1:5432/postgres).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bench::rss_mib;
use tokio::sync::Mutex;

/// Caps the request rate of all clients together (see its use in `run`).
struct Governor {
    period: Duration,
    next: Mutex<Instant>,
}

impl Governor {
    async fn wait(&self) {
        let at = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let earliest = now.checked_sub(Duration::from_millis(50)).unwrap_or(now);
            let at = (*next).max(earliest);
            *next = at + self.period;
            at
        };
        tokio::time::sleep_until(at.into()).await;
    }
}

#[derive(Default)]
struct Tally {
    requests: BTreeMap<&'static str, u64>,
    errors: BTreeMap<String, u64>,
    stories: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let minutes: u64 = args.next().map(|n| n.parse()).transpose()?.unwrap_or(10);
    let clients: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(8);
    let pause_ms: u64 = args.next().map(|n| n.parse()).transpose()?.unwrap_or(20);
    let rate: u64 = args.next().map(|n| n.parse()).transpose()?.unwrap_or(0);
    let scratch = bench::Scratch::create("soak").await?;
    let port = 18_950u16;
    let mut server = scratch
        .server(port)?
        .env("AISTORY_WORKERS", "2")
        .env("AISTORY_WORKER_POLL_MS", "100")
        .env("AISTORY_LOGIN_MAX_FAILURES_PER_ADDRESS", "1000")
        .env("AISTORY_REGISTRATIONS_PER_HOUR", "1000000")
        .spawn()?;
    let result = run(port, server.id(), minutes, clients, pause_ms, rate).await;
    server.kill().ok();
    server.wait().ok();
    scratch.finish().await?;
    result
}

async fn run(
    port: u16,
    pid: u32,
    minutes: u64,
    clients: usize,
    pause_ms: u64,
    rate: u64,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let base = format!("http://127.0.0.1:{port}/api/v1");
    bench::wait_ready(&client, port, Duration::from_secs(20)).await?;
    let mut tokens = Vec::new();
    for n in 0..clients {
        tokens.push(bench::sign_up(&client, &base, &format!("soak{n}")).await?);
    }
    let tally = Arc::new(Mutex::new(Tally::default()));
    // The cap, shared by all clients: request n may start at start + n / rate. A backlog (when
    // the clients fell behind) is kept for 50 ms at most, so a stall is not made up by a burst
    // above the rate; within it, requests due together go together, so the average holds
    // below the timer's 1 ms resolution.
    let governor = Arc::new((rate > 0).then(|| Governor {
        period: Duration::from_secs_f64(1.0 / rate.max(1) as f64),
        next: Mutex::new(Instant::now()),
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for token in tokens {
        let (client, base, tally, stop, governor) = (
            client.clone(),
            base.clone(),
            tally.clone(),
            stop.clone(),
            governor.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let pause = Duration::from_millis(pause_ms);
            // One request: its kind, the status expected, and the body when it matched.
            async fn call(
                governor: &Option<Governor>,
                tally: &Mutex<Tally>,
                kind: &'static str,
                expected: u16,
                request: reqwest::RequestBuilder,
            ) -> Option<serde_json::Value> {
                if let Some(governor) = governor {
                    governor.wait().await;
                }
                let response = request.send().await;
                let mut tally = tally.lock().await;
                *tally.requests.entry(kind).or_default() += 1;
                match response {
                    Ok(response) if response.status().as_u16() == expected => {
                        drop(tally);
                        Some(response.json().await.unwrap_or(serde_json::Value::Null))
                    }
                    Ok(response) => {
                        *tally
                            .errors
                            .entry(format!("{kind}: {}", response.status()))
                            .or_default() += 1;
                        None
                    }
                    Err(error) => {
                        *tally.errors.entry(format!("{kind}: {error}")).or_default() += 1;
                        None
                    }
                }
            }
            while !stop.load(Ordering::Relaxed) {
                let form = reqwest::multipart::Form::new().text("title", "soak").part(
                    "file",
                    reqwest::multipart::Part::bytes(bench::PNG.to_vec()).file_name("dot.png"),
                );
                let upload = client
                    .post(format!("{base}/photos"))
                    .bearer_auth(&token)
                    .multipart(form);
                let Some(photo) = call(&governor, &tally, "upload", 201, upload).await else {
                    tokio::time::sleep(pause).await;
                    continue;
                };
                let Some(id) = photo["id"].as_i64() else {
                    continue;
                };
                tokio::time::sleep(pause).await;
                let ask = client
                    .post(format!("{base}/photos/{id}/story"))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({"style": "bedtime"}));
                if call(&governor, &tally, "story request", 202, ask)
                    .await
                    .is_none()
                {
                    continue;
                }
                // Read while the story is written, until it is there.
                let waiting = Instant::now();
                loop {
                    tokio::time::sleep(pause).await;
                    let read = client
                        .get(format!("{base}/photos/{id}"))
                        .bearer_auth(&token);
                    let Some(photo) = call(&governor, &tally, "read photo", 200, read).await else {
                        break;
                    };
                    let page = client
                        .get(format!("{base}/photos?limit=20"))
                        .bearer_auth(&token);
                    call(&governor, &tally, "read page", 200, page).await;
                    match photo["status"].as_str() {
                        Some("completed") => {
                            let story = client
                                .get(format!("{base}/photos/{id}/story"))
                                .bearer_auth(&token);
                            if call(&governor, &tally, "read story", 200, story)
                                .await
                                .is_some()
                            {
                                tally.lock().await.stories += 1;
                            }
                            break;
                        }
                        Some("failed") => {
                            *tally
                                .lock()
                                .await
                                .errors
                                .entry("story failed".to_owned())
                                .or_default() += 1;
                            break;
                        }
                        _ if waiting.elapsed() > Duration::from_secs(60) => {
                            *tally
                                .lock()
                                .await
                                .errors
                                .entry("story not written within 60 s".to_owned())
                                .or_default() += 1;
                            break;
                        }
                        _ => {}
                    }
                }
            }
        }));
    }
    let minutes = minutes.max(1);
    let total = Duration::from_secs(minutes * 60);
    let started = Instant::now();
    // RSS and throughput minute by minute: a leak climbs steadily, a warm-up levels off.
    let mut rss_first_minute = 0.0;
    let mut served_before = 0u64;
    for minute in 1..=minutes.max(1) {
        tokio::time::sleep(Duration::from_secs(60).min(total)).await;
        let rss = rss_mib(pid);
        if minute == 1 {
            rss_first_minute = rss;
        }
        let served: u64 = tally.lock().await.requests.values().sum();
        println!(
            "minute {minute}: RSS {rss:.1} MiB, {} req/s",
            (served - served_before) / 60
        );
        served_before = served;
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await?;
    }
    // Clients finish the loop they are in (a story may take a while): the rate is over the
    // time until the last one stopped.
    let elapsed = started.elapsed();
    let rss_end = rss_mib(pid);
    let tally = tally.lock().await;
    let requests: u64 = tally.requests.values().sum();
    let errors: u64 = tally.errors.values().sum();
    println!(
        "{minutes} min, {clients} clients: {requests} requests ({:.0}/s) {:?}",
        requests as f64 / elapsed.as_secs_f64(),
        tally.requests
    );
    println!("stories completed and read: {}", tally.stories);
    println!("errors: {errors} {:?}", tally.errors);
    let growth = (rss_end - rss_first_minute) / rss_first_minute.max(1.0) * 100.0;
    println!(
        "RSS: after 1 min {rss_first_minute:.1} MiB, at the end {rss_end:.1} MiB ({growth:+.1}%)"
    );
    Ok(())
}

//! Scale-out rehearsal (issues 8 and 21): `migration up` as its own step, then API processes
//! (`SCALEOUT_APIS`, default 4, no workers) and two `api worker` processes, all in production
//! mode, on one PostgreSQL database, its streaming replica (when
//! `AISTORY_TEST_POSTGRES_REPLICA_URL` names one: `bash .ci/replica.sh start`), and one
//! S3-protocol server (s3s-fs, started here) with downloads redirected to it (the S3 default).
//! Clients spread a mixed load across the APIs: upload, download the photo from another API
//! (following the redirect; the bytes must match), read it at once on a third (never a 404:
//! read-your-writes across processes), ask for a story, follow it to `completed`, and walk
//! their photo pages through alternating APIs while new photos arrive. Prints requests,
//! errors, stories, read-your-writes violations, the replica's share of the hot reads and the
//! bytes served by the APIs versus the bucket (from each API's `/metrics` and the clients' own
//! count), and checks in the database that every story was written exactly once and that no
//! page walk saw a photo twice or out of order.
//!
//! Run: `cargo build --release -p api -p migration -p bench && target/release/scaleout [SECONDS] [CLIENTS]`
//! (defaults 60, 8; needs `s3s-fs` on the PATH), with `AISTORY_TEST_POSTGRES_URL`.

use std::collections::{BTreeMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bench::sibling_binary;
use sea_orm::{ConnectionTrait, Database, Statement};
use tokio::sync::Mutex;

const S3_PORT: u16 = 19_400;
const S3_KEY: &str = "scaleout";
const S3_SECRET: &str = "scaleout-secret";
const SECRET: &str = "scale-out-rehearsal-secret-key-0123456789";

#[derive(Default)]
struct Tally {
    requests: u64,
    /// A read of a photo, on another API, right after its upload answered 404.
    read_your_writes_violations: u64,
    downloads: u64,
    /// Bytes of downloads as received, by where they came from (`api` or `bucket`).
    download_bytes: BTreeMap<&'static str, u64>,
    errors: BTreeMap<String, u64>,
    stories_requested: u64,
    stories_read: u64,
    page_walks: u64,
    page_problems: u64,
}

struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

fn app_env(command: &mut Command, url: &str) {
    command
        .env("AISTORY_ENVIRONMENT", "production")
        .env("AISTORY_DATABASE_URL_PROD", url)
        .env("AISTORY_SECRET_KEY", SECRET)
        .env("AISTORY_STORAGE_URL", "s3://photos")
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{S3_PORT}"))
        .env("AWS_ACCESS_KEY_ID", S3_KEY)
        .env("AWS_SECRET_ACCESS_KEY", S3_SECRET)
        .env("AWS_REGION", "us-east-1")
        .env("AISTORY_WORKER_POLL_MS", "100")
        .env("AISTORY_LOGIN_MAX_FAILURES_PER_ADDRESS", "1000")
        .env("AISTORY_REGISTRATIONS_PER_HOUR", "1000000")
        // A client asks for a story per loop: far more than a person's hourly quota.
        .env("AISTORY_QUOTA_STORIES_PER_HOUR", "1000000")
        .env("AISTORY_QUOTA_PHOTOS", "1000000")
        // 4 APIs and 2 workers stay well inside PostgreSQL's 100 connections.
        .env("AISTORY_DB_POOL_SIZE", "2")
        .env("AISTORY_DB_MAX_OVERFLOW", "4")
        .env("AISTORY_DB_READ_POOL_SIZE", "4")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().map(|n| n.parse()).transpose()?.unwrap_or(60);
    let clients: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(8);
    let (admin_url, base) = bench::postgres_admin()?;
    let name = format!("aistory_bench_scaleout_{}", std::process::id());
    let url = format!("{base}/{name}");
    let admin = Database::connect(admin_url.as_str()).await?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await?;
    let s3_root = std::env::temp_dir().join(format!("aistory-scaleout-{}", std::process::id()));
    std::fs::create_dir_all(s3_root.join("photos"))?;
    let result = async {
        let mut processes = Processes(Vec::new());
        processes.0.push(
            Command::new("s3s-fs")
                .args(["--host", "127.0.0.1", "--port", &S3_PORT.to_string()])
                .args(["--access-key", S3_KEY, "--secret-key", S3_SECRET])
                .arg(&s3_root)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| anyhow::anyhow!("starting s3s-fs failed ({e}); cargo install s3s-fs@0.14.1 --features binary"))?,
        );
        // Migrations are a deployment step of their own; production servers refuse to start
        // with pending ones.
        let migrated = Command::new(sibling_binary("migration")?)
            .args(["-u", &url, "up"])
            .env("AISTORY_ENVIRONMENT", "production")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        anyhow::ensure!(migrated.success(), "migration up failed");
        let api = sibling_binary("api")?;
        let apis: u16 = match std::env::var("SCALEOUT_APIS") {
            Ok(count) => count.parse()?,
            Err(_) => 4,
        };
        anyhow::ensure!((2..=16).contains(&apis), "SCALEOUT_APIS: 2 to 16");
        let ports: Vec<u16> = (0..apis).map(|n| 18_961 + n).collect();
        let metrics_ports: Vec<u16> = (0..apis).map(|n| 18_981 + n).collect();
        let read_url = replica_base()?.map(|base| format!("{base}/{name}"));
        match &read_url {
            Some(read_url) => {
                wait_replicated(read_url).await?;
                println!("{apis} APIs reading from the replica at {read_url}; downloads redirect to the bucket");
            }
            None => println!(
                "{apis} APIs, no replica (set AISTORY_TEST_POSTGRES_REPLICA_URL); downloads redirect to the bucket"
            ),
        }
        for (port, metrics_port) in ports.iter().zip(&metrics_ports) {
            let mut command = Command::new(&api);
            app_env(&mut command, &url);
            command
                .env("AISTORY_PORT", port.to_string())
                .env("AISTORY_METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
                .env("AISTORY_DOWNLOADS", "redirect")
                .env("AISTORY_WORKERS", "0");
            if let Some(read_url) = &read_url {
                command.env("AISTORY_DATABASE_READ_URL", read_url);
            }
            processes.0.push(command.spawn()?);
        }
        for _ in 0..2 {
            let mut command = Command::new(&api);
            app_env(&mut command, &url);
            command.arg("worker").env("AISTORY_WORKERS", "2");
            processes.0.push(command.spawn()?);
        }
        let before = transactions(&url, read_url.as_deref(), &name).await?;
        let tally = drive(&ports, seconds, clients).await?;
        let after = transactions(&url, read_url.as_deref(), &name).await?;
        println!(
            "transactions (pg_stat_database, this database) during the load: primary {}, replica {} = {:.2} and {:.2} per request",
            after.0 - before.0,
            after.1 - before.1,
            (after.0 - before.0) as f64 / tally.requests.max(1) as f64,
            (after.1 - before.1) as f64 / tally.requests.max(1) as f64,
        );
        let served = scrape(&metrics_ports).await?;
        drop(processes);
        check(&url, &tally, &served, read_url.is_some()).await
    }
    .await;
    admin
        .execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .ok();
    std::fs::remove_dir_all(&s3_root).ok();
    result
}

async fn drive(ports: &[u16], seconds: u64, clients: usize) -> anyhow::Result<Tally> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    for port in ports {
        bench::wait_ready(&client, *port, Duration::from_secs(30)).await?;
    }
    let apis: Vec<String> = ports
        .iter()
        .map(|port| format!("http://127.0.0.1:{port}/api/v1"))
        .collect();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for n in 0..clients {
        let (client, apis, tally, stop) =
            (client.clone(), apis.clone(), tally.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let username = format!("scale{n}");
            let register = serde_json::json!({"username": username, "email": format!("{username}@example.com"), "password": "correct horse battery"});
            let _ = client.post(format!("{}/auth/register", apis[0])).json(&register).send().await;
            let login = serde_json::json!({"username": username, "password": "correct horse battery"});
            let token = match client.post(format!("{}/auth/login", apis[1])).json(&login).send().await {
                Ok(response) => response
                    .json::<serde_json::Value>()
                    .await
                    .ok()
                    .and_then(|body| body["access_token"].as_str().map(str::to_owned)),
                Err(_) => None,
            };
            let Some(token) = token else {
                *tally.lock().await.errors.entry("login".to_owned()).or_default() += 1;
                return;
            };
            let mut turn = n;
            let mut next = |apis: &[String]| {
                turn += 1;
                apis[turn % apis.len()].clone()
            };
            async fn expect(
                tally: &Mutex<Tally>,
                what: &str,
                status: u16,
                request: reqwest::RequestBuilder,
            ) -> Option<serde_json::Value> {
                let response = request.send().await;
                let mut tally = tally.lock().await;
                tally.requests += 1;
                match response {
                    Ok(response) if response.status().as_u16() == status => {
                        drop(tally);
                        response.json().await.ok()
                    }
                    Ok(response) => {
                        *tally.errors.entry(format!("{what}: {}", response.status())).or_default() += 1;
                        None
                    }
                    Err(error) => {
                        *tally.errors.entry(format!("{what}: {error}")).or_default() += 1;
                        None
                    }
                }
            }
            while !stop.load(Ordering::Relaxed) {
                let form = reqwest::multipart::Form::new()
                    .part("file", reqwest::multipart::Part::bytes(bench::PNG.to_vec()).file_name("dot.png"));
                let upload = client.post(format!("{}/photos", next(&apis))).bearer_auth(&token).multipart(form);
                let Some(photo) = expect(&tally, "upload", 201, upload).await else { continue };
                let Some(id) = photo["id"].as_i64() else { continue };
                // At once, on another API: the photo must be there.
                let read = client.get(format!("{}/photos/{id}", next(&apis))).bearer_auth(&token).send().await;
                {
                    let mut tally = tally.lock().await;
                    tally.requests += 1;
                    match read {
                        Ok(response) if response.status() == 200 => {}
                        Ok(response) if response.status() == 404 => tally.read_your_writes_violations += 1,
                        Ok(response) => *tally.errors.entry(format!("read after upload: {}", response.status())).or_default() += 1,
                        Err(error) => *tally.errors.entry(format!("read after upload: {error}")).or_default() += 1,
                    }
                }
                // Its bytes, through yet another API: followed to wherever they are served.
                let download = client.get(format!("{}/photos/{id}/content", next(&apis))).bearer_auth(&token).send().await;
                let received = match download {
                    Ok(response) if response.status() == 200 => {
                        let from = if response.url().port() == Some(S3_PORT) { "bucket" } else { "api" };
                        response.bytes().await.ok().map(|bytes| (from, bytes))
                    }
                    _ => None,
                };
                {
                    let mut tally = tally.lock().await;
                    tally.requests += 1;
                    match received {
                        Some((from, bytes)) if bytes.as_ref() == bench::PNG => {
                            tally.downloads += 1;
                            *tally.download_bytes.entry(from).or_default() += bytes.len() as u64;
                        }
                        _ => *tally.errors.entry("download".to_owned()).or_default() += 1,
                    }
                }
                let ask = client
                    .post(format!("{}/photos/{id}/story", next(&apis)))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({"style": "mystery"}));
                if expect(&tally, "story request", 202, ask).await.is_none() {
                    continue;
                }
                tally.lock().await.stories_requested += 1;
                let waiting = Instant::now();
                loop {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let read = client.get(format!("{}/photos/{id}", next(&apis))).bearer_auth(&token);
                    let Some(photo) = expect(&tally, "read photo", 200, read).await else { break };
                    if photo["status"] == "completed" {
                        let story = client.get(format!("{}/photos/{id}/story", next(&apis))).bearer_auth(&token);
                        if expect(&tally, "read story", 200, story).await.is_some() {
                            tally.lock().await.stories_read += 1;
                        }
                        break;
                    }
                    if photo["status"] == "failed" || waiting.elapsed() > Duration::from_secs(60) {
                        *tally.lock().await.errors.entry(format!("story {}", photo["status"])).or_default() += 1;
                        break;
                    }
                }
                // Walk every page through alternating APIs while others upload.
                let mut cursor: Option<String> = None;
                let mut seen = HashSet::new();
                let mut last_id = i64::MAX;
                let mut problem = false;
                loop {
                    let mut path = format!("{}/photos?limit=7", next(&apis));
                    if let Some(cursor) = &cursor {
                        path += &format!("&cursor={cursor}");
                    }
                    let Some(page) = expect(&tally, "page", 200, client.get(path).bearer_auth(&token)).await else {
                        problem = true;
                        break;
                    };
                    for item in page["items"].as_array().into_iter().flatten() {
                        let id = item["id"].as_i64().unwrap_or_default();
                        problem |= !seen.insert(id) || id >= last_id;
                        last_id = id;
                    }
                    match page["next_cursor"].as_str() {
                        Some(next) => cursor = Some(next.to_owned()),
                        None => break,
                    }
                }
                let mut tally = tally.lock().await;
                tally.page_walks += 1;
                tally.page_problems += u64::from(problem);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await?;
    }
    Arc::try_unwrap(tally)
        .map(Mutex::into_inner)
        .map_err(|_| anyhow::anyhow!("tally still shared"))
}

/// Transactions committed and rolled back in database `name` so far, on the primary and on
/// the replica (0 without one); statistics are flushed about once a second.
async fn transactions(url: &str, read_url: Option<&str>, name: &str) -> anyhow::Result<(i64, i64)> {
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let sql = format!(
        "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database WHERE datname = '{name}'"
    );
    let mut counts = [0i64; 2];
    for (count, url) in counts.iter_mut().zip([Some(url), read_url]) {
        let Some(url) = url else { continue };
        let db = Database::connect(url).await?;
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                sql.clone(),
            ))
            .await?
            .ok_or_else(|| anyhow::anyhow!("no statistics for {name}"))?;
        *count = row.try_get_by_index(0)?;
        db.close().await.ok();
    }
    Ok((counts[0], counts[1]))
}

/// The replica's admin URL without its database name, if one is configured.
fn replica_base() -> anyhow::Result<Option<String>> {
    match std::env::var("AISTORY_TEST_POSTGRES_REPLICA_URL") {
        Ok(url) if !url.trim().is_empty() => url
            .rsplit_once('/')
            .map(|(base, _)| Some(base.to_owned()))
            .ok_or_else(|| anyhow::anyhow!("no database path in {url}")),
        _ => Ok(None),
    }
}

/// Waits (30 s at most) until the replica has the migrated database.
async fn wait_replicated(read_url: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if let Ok(db) = Database::connect(read_url).await {
            let migrated = db
                .query_one_raw(Statement::from_string(
                    db.get_database_backend(),
                    "SELECT count(*) FROM seaql_migrations",
                ))
                .await;
            db.close().await.ok();
            if migrated.is_ok() {
                return Ok(());
            }
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "the replica did not get the database within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the APIs' `/metrics` say, summed over the processes: (metric and label, value).
async fn scrape(metrics_ports: &[u16]) -> anyhow::Result<BTreeMap<String, f64>> {
    let client = reqwest::Client::new();
    let mut sums = BTreeMap::new();
    for port in metrics_ports {
        let text = client
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        for line in text.lines() {
            let wanted = line.starts_with("aistory_db_replica_reads_total{")
                || line.starts_with("aistory_download_bytes_total{")
                || line.starts_with("aistory_downloads_total{");
            if let (true, Some((series, value))) = (wanted, line.rsplit_once(' ')) {
                *sums.entry(series.to_owned()).or_insert(0.0) +=
                    value.parse::<f64>().unwrap_or(0.0);
            }
        }
    }
    Ok(sums)
}

/// The sum of the series of `metric` whose labels contain `label`.
fn sum(served: &BTreeMap<String, f64>, metric: &str, label: &str) -> f64 {
    served
        .iter()
        .filter(|(series, _)| series.starts_with(&format!("{metric}{{")) && series.contains(label))
        .map(|(_, value)| value)
        .fold(0.0, |total, value| total + value)
}

async fn check(
    url: &str,
    tally: &Tally,
    served: &BTreeMap<String, f64>,
    replica: bool,
) -> anyhow::Result<()> {
    let db = Database::connect(url).await?;
    let backend = db.get_database_backend();
    let number = |sql: &str| {
        let db = &db;
        let sql = sql.to_owned();
        async move {
            let row = db
                .query_one_raw(Statement::from_string(backend, sql))
                .await?
                .ok_or_else(|| anyhow::anyhow!("no row"))?;
            Ok::<i64, anyhow::Error>(row.try_get_by_index(0)?)
        }
    };
    let stories = number("SELECT count(*) FROM stories").await?;
    let photos_with_two = number(
        "SELECT count(*) FROM (SELECT photo_id FROM stories GROUP BY photo_id HAVING count(*) > 1) t",
    )
    .await?;
    let jobs_rerun =
        number("SELECT count(*) FROM jobs WHERE kind = 'story.generate' AND attempts > 1").await?;
    let errors: u64 = tally.errors.values().sum();
    println!(
        "requests: {}, errors: {errors} {:?}",
        tally.requests, tally.errors
    );
    println!(
        "stories: requested {}, read back {}, rows {stories}, photos with more than one story {photos_with_two}, story jobs run more than once {jobs_rerun}",
        tally.stories_requested, tally.stories_read
    );
    println!(
        "page walks across the APIs: {}, with a duplicate or out-of-order photo: {}",
        tally.page_walks, tally.page_problems
    );
    let by_replica = sum(
        served,
        "aistory_db_replica_reads_total",
        "served_by=\"replica\"",
    );
    let by_primary = sum(
        served,
        "aistory_db_replica_reads_total",
        "served_by=\"primary\"",
    );
    let share = by_replica / (by_replica + by_primary).max(1.0);
    println!(
        "read-your-writes violations (404 on another API right after the upload): {}",
        tally.read_your_writes_violations
    );
    println!(
        "hot reads by the replica: {by_replica}, by the primary: {by_primary} ({:.1}% replica); by reason: {:?}",
        share * 100.0,
        served
            .iter()
            .filter(
                |(series, _)| series.starts_with("aistory_db_replica_reads_total{")
                    && series.contains("primary")
            )
            .map(|(series, value)| (
                series
                    .split("reason=")
                    .nth(1)
                    .unwrap_or(series)
                    .trim_end_matches('}'),
                *value
            ))
            .collect::<Vec<_>>()
    );
    let api_bytes = sum(served, "aistory_download_bytes_total", "via=\"api\"");
    let bucket_bytes = sum(served, "aistory_download_bytes_total", "via=\"bucket\"");
    println!(
        "downloads: {} (bytes matched); photo bytes received from the bucket {}, from the APIs {}; the APIs' own count: streamed {api_bytes}, redirected {bucket_bytes}",
        tally.downloads,
        tally.download_bytes.get("bucket").copied().unwrap_or(0),
        tally.download_bytes.get("api").copied().unwrap_or(0),
    );
    db.close().await?;
    anyhow::ensure!(
        tally.read_your_writes_violations == 0
            && tally.downloads > 0
            && tally.download_bytes.get("api").copied().unwrap_or(0) == 0
            && api_bytes == 0.0
            && (!replica || share >= 0.5),
        "the rehearsal found problems (read-your-writes, bytes through the APIs, or replica share under half)"
    );
    anyhow::ensure!(
        errors == 0
            && photos_with_two == 0
            && tally.page_problems == 0
            && u64::try_from(stories).unwrap_or(0) == tally.stories_requested,
        "the rehearsal found problems"
    );
    Ok(())
}

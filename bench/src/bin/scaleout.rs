//! Scale-out rehearsal (issue 8): `migration up` as its own step, then two API processes
//! (no workers) and two `api worker` processes, all in production mode, on one PostgreSQL
//! database and one S3-protocol server (s3s-fs, started here). Clients spread a mixed load
//! across both APIs: upload, ask for a story, follow it to `completed`, and walk their photo
//! pages through alternating APIs while new photos arrive. Prints requests, errors, stories,
//! and checks in the database that every story was written exactly once and that no page walk
//! saw a photo twice or out of order.
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
        let ports = [18_961u16, 18_962u16];
        for port in ports {
            let mut command = Command::new(&api);
            app_env(&mut command, &url);
            command
                .env("AISTORY_PORT", port.to_string())
                .env("AISTORY_WORKERS", "0");
            processes.0.push(command.spawn()?);
        }
        for _ in 0..2 {
            let mut command = Command::new(&api);
            app_env(&mut command, &url);
            command.arg("worker").env("AISTORY_WORKERS", "2");
            processes.0.push(command.spawn()?);
        }
        let tally = drive(&ports, seconds, clients).await?;
        drop(processes);
        check(&url, &tally).await
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

async fn check(url: &str, tally: &Tally) -> anyhow::Result<()> {
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
        "page walks across both APIs: {}, with a duplicate or out-of-order photo: {}",
        tally.page_walks, tally.page_problems
    );
    db.close().await?;
    anyhow::ensure!(
        errors == 0
            && photos_with_two == 0
            && tally.page_problems == 0
            && u64::try_from(stories).unwrap_or(0) == tally.stories_requested,
        "the rehearsal found problems"
    );
    Ok(())
}

//! Database outage under steady load (issue 8): the release server on PostgreSQL takes a
//! steady stream of small uploads (each a new row), and of reads of a page of photos (on the
//! reads' own pool, `service::reads`), while PostgreSQL is stopped for a few seconds and
//! started again. Prints requests served, failed (by status), hung (slower than the
//! acquire time-out plus a second), the time from PostgreSQL answering again to the first
//! success and to `/ready` saying 200, and checks that every upload that got a 201 left its row.
//!
//! Run (root, PostgreSQL from Debian's packages, restarts the local cluster!):
//! `cargo build --release -p api -p bench && target/release/outage [OUTAGE_SECS]`
//! with `AISTORY_TEST_POSTGRES_URL` (default postgres://postgres@127.0.0.1:5432/postgres);
//! `OUTAGE_SERVER_LOG=FILE` keeps the server's log.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bench::sibling_binary;
use sea_orm::{ConnectionTrait, Database};
use tokio::sync::Mutex;

const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

fn cluster(action: &str) -> anyhow::Result<()> {
    let version = std::fs::read_dir("/etc/postgresql")?
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .next()
        .ok_or_else(|| anyhow::anyhow!("no cluster under /etc/postgresql"))?;
    let status = Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &version, "main", action])
        .status()?;
    anyhow::ensure!(status.success(), "pg_ctlcluster {action} failed");
    Ok(())
}

#[derive(Default)]
struct Tally {
    statuses: BTreeMap<String, u64>,
    hung: u64,
    slowest: Duration,
    created: Vec<i64>,
    first_success_after_up: Option<Instant>,
}

impl Tally {
    /// Counts one answer, `status`, to a request sent at `sent` that took `took`; `up` is when
    /// PostgreSQL answered again (if it has).
    fn record(
        &mut self,
        sent: Instant,
        took: Duration,
        status: &str,
        success: bool,
        up: Option<Instant>,
    ) {
        self.slowest = self.slowest.max(took);
        if took > ACQUIRE_TIMEOUT + Duration::from_secs(1) {
            self.hung += 1;
        }
        if success && self.first_success_after_up.is_none() && up.is_some_and(|up| sent >= up) {
            self.first_success_after_up = Some(Instant::now());
        }
        *self.statuses.entry(status.to_owned()).or_default() += 1;
    }
}

/// What every load task shares.
#[derive(Clone)]
struct Load {
    client: reqwest::Client,
    base: String,
    token: String,
    stop: Arc<AtomicBool>,
    up_again: Arc<Mutex<Option<Instant>>>,
}

fn status_of(response: &reqwest::Result<reqwest::Response>) -> String {
    response
        .as_ref()
        .map_or("transport error".to_owned(), |response| {
            response.status().as_u16().to_string()
        })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let outage_secs: u64 = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(5);
    let (admin_url, base) = bench::postgres_admin()?;
    let name = format!("aistory_bench_outage_{}", std::process::id());
    let admin = Database::connect(admin_url.as_str()).await?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await?;
    admin.close().await?;
    let url = format!("{base}/{name}");
    let port = 18_900u16;
    let api = sibling_binary("api")?;
    let mut server = Command::new(&api)
        .env("AISTORY_ENVIRONMENT", "testing")
        .env("AISTORY_DATABASE_URL", &url)
        .env("AISTORY_STORAGE_URL", "memory://")
        .env("AISTORY_PORT", port.to_string())
        .env("AISTORY_DB_POOL_SIZE", "4")
        .env("AISTORY_DB_MAX_OVERFLOW", "4")
        .env(
            "AISTORY_DB_ACQUIRE_TIMEOUT_SECS",
            ACQUIRE_TIMEOUT.as_secs().to_string(),
        )
        .env("AISTORY_DB_CONNECT_TIMEOUT_SECS", "2")
        .env("AISTORY_WORKERS", "0")
        .env("RUST_LOG", "warn")
        .env("AISTORY_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(match std::env::var_os("OUTAGE_SERVER_LOG") {
            Some(path) => Stdio::from(std::fs::File::create(path)?),
            None => Stdio::null(),
        })
        .spawn()?;
    let result = run(port, outage_secs).await;
    server.kill().ok();
    server.wait().ok();
    // Whatever happened, the cluster must be up again for what follows.
    if Database::connect(admin_url.as_str()).await.is_err() {
        cluster("start").ok();
    }
    let tally = result?;

    // Every 201 left its row.
    let db = Database::connect(url.as_str()).await?;
    let mut missing = 0u64;
    for id in &tally.created {
        let rows = db
            .query_all_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                format!("SELECT id FROM photos WHERE id = {id}"),
            ))
            .await?;
        if rows.is_empty() {
            missing += 1;
        }
    }
    db.close().await?;
    let admin = Database::connect(admin_url.as_str()).await?;
    admin
        .execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await?;
    println!(
        "rows checked: {} (uploads answered 201), missing: {missing}",
        tally.created.len()
    );
    anyhow::ensure!(
        missing == 0,
        "{missing} acknowledged uploads lost their row"
    );
    Ok(())
}

async fn run(port: u16, outage_secs: u64) -> anyhow::Result<Tally> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let base = format!("http://127.0.0.1:{port}");
    bench::wait_ready(&client, port, Duration::from_secs(20)).await?;
    let token = bench::sign_up(&client, &format!("{base}/api/v1"), "outage").await?;

    let tally = Arc::new(Mutex::new(Tally::default()));
    let reads = Arc::new(Mutex::new(Tally::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let up_again: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let load = Load {
        client: client.clone(),
        base: base.clone(),
        token,
        stop: stop.clone(),
        up_again: up_again.clone(),
    };
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let (load, reads) = (load.clone(), reads.clone());
        tasks.push(tokio::spawn(async move {
            while !load.stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let response = load
                    .client
                    .get(format!("{}/api/v1/photos?limit=5", load.base))
                    .bearer_auth(&load.token)
                    .send()
                    .await;
                let took = sent.elapsed();
                let status = status_of(&response);
                let up = *load.up_again.lock().await;
                reads
                    .lock()
                    .await
                    .record(sent, took, &status, status == "200", up);
                if status == "503" {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    for _ in 0..8 {
        let (load, tally) = (load.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            while !load.stop.load(Ordering::Relaxed) {
                let form = reqwest::multipart::Form::new().part(
                    "file",
                    reqwest::multipart::Part::bytes(bench::PNG.to_vec()).file_name("dot.png"),
                );
                let sent = Instant::now();
                let response = load
                    .client
                    .post(format!("{}/api/v1/photos", load.base))
                    .bearer_auth(&load.token)
                    .multipart(form)
                    .send()
                    .await;
                let took = sent.elapsed();
                let status = status_of(&response);
                let mut created = None;
                if status == "201"
                    && let Ok(response) = response
                    && let Ok(photo) = response.json::<serde_json::Value>().await
                {
                    created = photo["id"].as_i64();
                }
                let up = *load.up_again.lock().await;
                let mut tally = tally.lock().await;
                tally.record(sent, took, &status, status == "201", up);
                tally.created.extend(created);
                drop(tally);
                if status == "503" {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!("stopping PostgreSQL for {outage_secs} s");
    tokio::task::spawn_blocking(|| cluster("stop")).await??;
    let down_at = Instant::now();
    // /ready during the outage.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ready_during = client
        .get(format!("{base}/ready"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(outage_secs.saturating_sub(1))).await;
    tokio::task::spawn_blocking(|| cluster("start")).await??;
    let up = Instant::now();
    *up_again.lock().await = Some(up);
    println!(
        "PostgreSQL answering again after {:.1} s down",
        (up - down_at).as_secs_f64()
    );
    let mut ready_after = None;
    while up.elapsed() < Duration::from_secs(30) {
        if client
            .get(format!("{base}/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            ready_after = Some(up.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await?;
    }
    let tally = Arc::try_unwrap(tally)
        .map_err(|_| anyhow::anyhow!("tally still shared"))?
        .into_inner();
    let served: u64 = tally.statuses.values().sum();
    println!("uploads: {served} ({:?})", tally.statuses);
    let reads = Arc::try_unwrap(reads)
        .map_err(|_| anyhow::anyhow!("reads still shared"))?
        .into_inner();
    let read: u64 = reads.statuses.values().sum();
    println!(
        "reads of a page: {read} ({:?}); hung: {}; slowest {:.2} s; first 200 {} after PostgreSQL was back",
        reads.statuses,
        reads.hung,
        reads.slowest.as_secs_f64(),
        reads
            .first_success_after_up
            .map_or("never".to_owned(), |at| format!(
                "{:.2} s",
                (at - up).as_secs_f64()
            ))
    );
    println!(
        "hung (> acquire time-out {} s + 1 s): {}; slowest {:.2} s",
        ACQUIRE_TIMEOUT.as_secs(),
        tally.hung,
        tally.slowest.as_secs_f64()
    );
    println!("/ready during the outage: {ready_during}");
    match ready_after {
        Some(after) => println!(
            "/ready 200 again {:.2} s after PostgreSQL was back",
            after.as_secs_f64()
        ),
        None => println!("/ready never answered 200 again within 30 s"),
    }
    match tally.first_success_after_up {
        Some(at) => println!(
            "first 201 {:.2} s after PostgreSQL was back",
            (at - up).as_secs_f64()
        ),
        None => println!("no 201 after PostgreSQL was back"),
    }
    Ok(tally)
}

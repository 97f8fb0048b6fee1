//! Event streams at rest and at the moment everything happens (issue 18): the release server
//! on PostgreSQL, 1,000 photos of 10 users held in `processing`, one open
//! `/photos/{id}/events` stream on each. While they idle: the server's CPU (utime + stime from
//! `/proc/PID/stat`) and the database's transactions per second on the bench database
//! (`pg_stat_database`: every statement outside a transaction is one; the two snapshots'
//! own are subtracted). Then one transaction completes all 1,000: the time from its commit to
//! each stream's `completed` event (p50, p99, max, how many within 100 ms), and the server's
//! peak RSS.
//!
//! Run: `bash bench/streams.sh` (raises the open-file limit, builds, runs this). Arguments:
//! `streams [IDLE_SECONDS] [STREAMS]` (defaults 30, 1000). `AISTORY_BENCH_API=/path/to/api`
//! measures another build of the server (an older one, for a before/after).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use sea_orm::{ConnectionTrait, Statement, TransactionTrait};

const USERS: usize = 10;

/// utime + stime of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command (which may hold spaces) start after the last ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the state (field 3).
    (ticks(11) + ticks(12)) / 100.0
}

async fn transactions(db: &sea_orm::DatabaseConnection) -> anyhow::Result<i64> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT (xact_commit + xact_rollback)::bigint AS n FROM pg_stat_database \
             WHERE datname = current_database()",
        ))
        .await?
        .context("no pg_stat_database row")?;
    Ok(row.try_get("", "n")?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let idle_seconds: u64 = args.next().map(|n| n.parse()).transpose()?.unwrap_or(30);
    let streams: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(1000);
    let scratch = bench::Scratch::create("streams").await?;
    let port = 18_960u16;
    let mut server = scratch
        .server(port)?
        .env("AISTORY_WORKERS", "0")
        .env("AISTORY_QUOTA_STREAMS", "100000")
        .env("AISTORY_QUOTA_PHOTOS", "100000")
        .env("AISTORY_REGISTRATIONS_PER_HOUR", "1000000")
        .env(
            "AISTORY_SECRET_KEY",
            "bench-secret-key-bench-secret-key-123456",
        )
        .spawn()?;
    let result = run(&scratch, port, server.id(), idle_seconds, streams).await;
    server.kill().ok();
    server.wait().ok();
    scratch.finish().await?;
    result
}

async fn run(
    scratch: &bench::Scratch,
    port: u16,
    pid: u32,
    idle_seconds: u64,
    streams: usize,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let base = format!("http://127.0.0.1:{port}/api/v1");
    bench::wait_ready(&client, port, Duration::from_secs(20)).await?;
    let mut tokens = Vec::new();
    for n in 0..USERS {
        tokens.push(bench::sign_up(&client, &base, &format!("watcher{n}")).await?);
    }
    // The photos, uploaded through the API; then all put in `processing` at once.
    let mut photos: Vec<(i64, String)> = Vec::new();
    for n in 0..streams {
        let token = &tokens[n % USERS];
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bench::PNG).file_name("p.png"),
        );
        let response = client
            .post(format!("{base}/photos"))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await?;
        anyhow::ensure!(response.status() == 201, "upload: {}", response.status());
        let body: serde_json::Value = response.json().await?;
        photos.push((body["id"].as_i64().context("no id")?, token.clone()));
    }
    let db = sea_orm::Database::connect(scratch.database_url.as_str()).await?;
    db.execute_unprepared("UPDATE photos SET status = 'processing'")
        .await?;

    // One stream per photo: each task reports when it is open (its first event) and when it
    // sees `completed`.
    let stream_client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let (opened_tx, mut opened_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let completed: Arc<std::sync::Mutex<Vec<Instant>>> = Arc::default();
    let mut tasks = Vec::new();
    for (id, token) in &photos {
        let request = stream_client
            .get(format!("{base}/photos/{id}/events"))
            .bearer_auth(token);
        let (opened, completed) = (opened_tx.clone(), completed.clone());
        tasks.push(tokio::spawn(async move {
            let response = request.send().await?;
            anyhow::ensure!(response.status() == 200, "stream: {}", response.status());
            let mut body = response.bytes_stream();
            let mut text = String::new();
            let mut first = true;
            while let Some(chunk) = body.next().await {
                text.push_str(&String::from_utf8_lossy(&chunk?));
                while let Some(end) = text.find("\n\n") {
                    let block: String = text.drain(..end + 2).collect();
                    if !block.contains("event: status") {
                        continue;
                    }
                    if first {
                        first = false;
                        opened.send(()).ok();
                    }
                    if block.contains("\"status\":\"completed\"") {
                        let at = Instant::now();
                        completed
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner())
                            .push(at);
                        return Ok(());
                    }
                }
            }
            anyhow::bail!("the stream ended before `completed`")
        }));
    }
    drop(opened_tx);
    for n in 0..streams {
        tokio::time::timeout(Duration::from_secs(60), opened_rx.recv())
            .await
            .with_context(|| format!("only {n} streams opened within 60 s"))?
            .context("a stream failed before its first event")?;
    }
    println!("{streams} streams open (photos in processing)");

    // Idle: let the counters of everything before settle (a backend reports its statistics
    // within 10 s of going idle), then measure over the idle window plus that settling time.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let cpu_before = cpu_seconds(pid);
    let xacts_before = transactions(&db).await?;
    let wall = Instant::now();
    tokio::time::sleep(Duration::from_secs(idle_seconds)).await;
    let cpu_idle = cpu_seconds(pid) - cpu_before;
    let idle_wall = wall.elapsed().as_secs_f64();
    // The database side: wait for the server's backends to report, then read.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let xacts_after = transactions(&db).await?;
    let settle_wall = wall.elapsed().as_secs_f64();
    // Snapshots' own transactions: the first snapshot's one shows in the second.
    let statements = (xacts_after - xacts_before - 1).max(0);
    println!(
        "idle {idle_wall:.1} s: server CPU {:.2} s = {:.2}% of a core; database {} transactions \
         in {settle_wall:.1} s = {:.2}/s",
        cpu_idle,
        100.0 * cpu_idle / idle_wall,
        statements,
        statements as f64 / settle_wall,
    );

    // Everything happens at once: one transaction completes every photo.
    let cpu_before = cpu_seconds(pid);
    let txn = db.begin().await?;
    txn.execute_unprepared("UPDATE photos SET status = 'completed'")
        .await?;
    txn.commit().await?;
    let committed = Instant::now();
    for task in tasks {
        task.await??;
    }
    let cpu_burst = cpu_seconds(pid) - cpu_before;
    let mut latencies: Vec<Duration> = completed
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .iter()
        .map(|at| at.saturating_duration_since(committed))
        .collect();
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    let within = latencies
        .iter()
        .filter(|latency| **latency <= Duration::from_millis(100))
        .count();
    println!(
        "commit to `completed` on {} streams: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {within} \
         within 100 ms; server CPU for the burst {:.3} s",
        latencies.len(),
        at(0.5).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0,
        latencies[latencies.len() - 1].as_secs_f64() * 1000.0,
        cpu_burst,
    );
    println!("server peak RSS {:.0} MiB", bench::peak_rss_mib(pid));
    db.close().await.ok();
    Ok(())
}

//! Upload abuse (issue 8): the release server on PostgreSQL with a directory store; one honest
//! client uploads and reads the whole time while, all at once:
//! - 50 uploads are cut off at random points (reproducible xorshift) and the connection dropped;
//! - 100 slow-loris bodies send half a body, then nothing (expected: 408 after the upload idle
//!   time-out);
//! - 50 slow-loris heads send half a request head, then nothing (expected: cut after the 5 s
//!   head time-out);
//! - 50 slow-loris JSON bodies on `POST /auth/login` (no token needed) send half a body, then
//!   nothing (expected: 408 after the upload idle time-out);
//! - 50 lying lengths declare 50,000 bytes more than they send, then nothing (expected: 408);
//! - 50 lying lengths declare 50,000 bytes fewer than they send (expected: a 4xx, the body
//!   is cut short);
//! - 50 declare a length over the limit (expected: 413 before the body is read);
//! - 20 chunked bodies run past the limit (expected: 413 while they stream).
//!
//! The wave runs WAVES times (default 3) on the same server (memory that is only retained levels off; a leak
//! climbs). Prints the abusive requests by outcome, the honest requests served, failed and the
//! slowest, the abuser's rows and objects left behind (orphans) and the server's RSS at the
//! start, after each wave and at the peak.
//!
//! Run: `cargo build --release -p api -p bench && target/release/abuse [WAVES]`, with
//! `AISTORY_TEST_POSTGRES_URL` (default postgres://postgres@127.0.0.1:5432/postgres).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bench::rss_mib;
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

const PORT: u16 = 18_960;
const LIMIT: usize = 1024 * 1024;
const IDLE_TIMEOUT_SECS: u64 = 2;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let scratch = bench::Scratch::create("abuse").await?;
    let mut server = scratch
        .server(PORT)?
        .env("AISTORY_WORKERS", "1")
        .env("AISTORY_MAX_UPLOAD_BYTES", LIMIT.to_string())
        .env(
            "AISTORY_UPLOAD_IDLE_TIMEOUT_SECS",
            IDLE_TIMEOUT_SECS.to_string(),
        )
        .spawn()?;
    let result = run(server.id(), &scratch.database_url, &scratch.objects).await;
    server.kill().ok();
    server.wait().ok();
    scratch.finish().await?;
    result
}

async fn account(
    client: &reqwest::Client,
    api: &str,
    username: &str,
) -> anyhow::Result<(String, i64)> {
    let token = bench::sign_up(client, api, username).await?;
    let me: serde_json::Value = client
        .get(format!("{api}/users/me"))
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    let id = me["id"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("no id: {me}"))?;
    Ok((token, id))
}

/// A multipart body with one `file` part: a PNG padded to `size` bytes.
fn multipart(size: usize) -> Vec<u8> {
    let mut file = bench::PNG.to_vec();
    file.resize(size, 7);
    let mut body = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n".to_vec();
    body.extend_from_slice(&file);
    body.extend_from_slice(b"\r\n--XyZ--\r\n");
    body
}

fn head(token: &str, length: Option<usize>) -> String {
    let framing = match length {
        Some(length) => format!("Content-Length: {length}"),
        None => "Transfer-Encoding: chunked".to_owned(),
    };
    format!(
        "POST /api/v1/photos HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary=XyZ\r\n{framing}\r\n\r\n"
    )
}

/// What the server did with a request that was then left waiting: its status, a closed
/// connection, or nothing within 20 s (hung).
async fn outcome(stream: &mut TcpStream) -> String {
    let mut response = vec![0u8; 1024];
    match tokio::time::timeout(Duration::from_secs(20), stream.read(&mut response)).await {
        Err(_) => "hung (no answer in 20 s)".to_owned(),
        Ok(Ok(0)) | Ok(Err(_)) => "connection closed".to_owned(),
        Ok(Ok(read)) => {
            let text = String::from_utf8_lossy(&response[..read]);
            text.split_whitespace()
                .nth(1)
                .map(|status| format!("HTTP {status}"))
                .unwrap_or_else(|| "unreadable answer".to_owned())
        }
    }
}

type Outcomes = Arc<Mutex<BTreeMap<String, u64>>>;

async fn record(outcomes: &Outcomes, scenario: &str, result: String, took: Duration) {
    *outcomes
        .lock()
        .await
        .entry(format!(
            "{scenario}: {result} (<= {} s)",
            took.as_secs() + 1
        ))
        .or_default() += 1;
}

/// One abusive request: `send` writes to the connection, then the outcome is read (or, for
/// `abort`, the connection is dropped).
async fn abusive(
    outcomes: Outcomes,
    scenario: &'static str,
    head: String,
    body: Vec<u8>,
    abort: bool,
) {
    let started = Instant::now();
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", PORT)).await else {
        record(
            &outcomes,
            scenario,
            "connect failed".to_owned(),
            started.elapsed(),
        )
        .await;
        return;
    };
    // The server may answer (and close) before everything is written: not an error here.
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(&body).await;
    if abort {
        drop(stream);
        record(
            &outcomes,
            scenario,
            "dropped by the client".to_owned(),
            started.elapsed(),
        )
        .await;
        return;
    }
    let result = outcome(&mut stream).await;
    record(&outcomes, scenario, result, started.elapsed()).await;
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

async fn run(pid: u32, database_url: &str, objects: &Path) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let api = format!("http://127.0.0.1:{PORT}/api/v1");
    bench::wait_ready(&client, PORT, Duration::from_secs(20)).await?;
    let (abuser, abuser_id) = account(&client, &api, "abuser").await?;
    let (honest, _) = account(&client, &api, "honest").await?;
    let rss_start = rss_mib(pid);

    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(Mutex::new(rss_start));
    let sampler = {
        let (done, peak) = (done.clone(), peak.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let rss = rss_mib(pid);
                let mut peak = peak.lock().await;
                *peak = peak.max(rss);
                drop(peak);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    // The honest client: upload, read it back, again, until the abuse is over.
    let honest_client = {
        let (client, api, done) = (client.clone(), api.clone(), done.clone());
        tokio::spawn(async move {
            let (mut served, mut uploaded, mut failed) = (0u64, 0u64, Vec::new());
            let mut slowest = Duration::ZERO;
            while !done.load(Ordering::Relaxed) {
                let started = Instant::now();
                let form = reqwest::multipart::Form::new().part(
                    "file",
                    reqwest::multipart::Part::bytes(bench::PNG.to_vec()).file_name("dot.png"),
                );
                let upload = client
                    .post(format!("{api}/photos"))
                    .bearer_auth(&honest)
                    .multipart(form)
                    .send()
                    .await;
                let id = match upload {
                    Ok(response) if response.status().as_u16() == 201 => {
                        uploaded += 1;
                        let photo: serde_json::Value = response.json().await.unwrap_or_default();
                        photo["id"].as_i64()
                    }
                    Ok(response) => {
                        failed.push(format!("upload: {}", response.status()));
                        None
                    }
                    Err(error) => {
                        failed.push(format!("upload: {error}"));
                        None
                    }
                };
                served += 1;
                slowest = slowest.max(started.elapsed());
                if let Some(id) = id {
                    let started = Instant::now();
                    match client
                        .get(format!("{api}/photos/{id}"))
                        .bearer_auth(&honest)
                        .send()
                        .await
                    {
                        Ok(response) if response.status().is_success() => {}
                        Ok(response) => failed.push(format!("read: {}", response.status())),
                        Err(error) => failed.push(format!("read: {error}")),
                    }
                    served += 1;
                    slowest = slowest.max(started.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (served, uploaded, failed, slowest)
        })
    };

    let outcomes: Outcomes = Arc::default();
    let body = multipart(300 * 1024);
    let unclosed = body[..body.len() - b"\r\n--XyZ--\r\n".len()].to_vec();
    let mut after_wave = Vec::new();
    let abuse_started = Instant::now();
    let waves: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(3);
    for _wave in 0..waves {
        let mut abuse = tokio::task::JoinSet::new();
        // Reproducible "random" cut points: xorshift.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..50 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let cut = 1 + usize::try_from(state % (body.len() as u64 - 1)).unwrap_or(0);
            abuse.spawn(abusive(
                outcomes.clone(),
                "aborted at a random point",
                head(&abuser, Some(body.len())),
                body[..cut].to_vec(),
                true,
            ));
        }
        for _ in 0..100 {
            abuse.spawn(abusive(
                outcomes.clone(),
                "slow-loris body (half sent)",
                head(&abuser, Some(body.len())),
                body[..body.len() / 2].to_vec(),
                false,
            ));
        }
        for _ in 0..50 {
            let login = br#"{"username": "abuser", "password": "correct horse battery"}"#;
            abuse.spawn(abusive(
                outcomes.clone(),
                "slow-loris JSON body (half sent)",
                format!(
                    "POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                     Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    login.len()
                ),
                login[..login.len() / 2].to_vec(),
                false,
            ));
        }
        for _ in 0..50 {
            let full = head(&abuser, Some(body.len()));
            abuse.spawn(abusive(
                outcomes.clone(),
                "slow-loris head (half sent)",
                full[..full.len() / 2].to_owned(),
                Vec::new(),
                false,
            ));
        }
        for _ in 0..50 {
            abuse.spawn(abusive(
                outcomes.clone(),
                "lying length (+50,000 bytes)",
                head(&abuser, Some(unclosed.len() + 50_000)),
                unclosed.clone(),
                false,
            ));
            abuse.spawn(abusive(
                outcomes.clone(),
                "lying length (-50,000 bytes)",
                head(&abuser, Some(body.len() - 50_000)),
                body.clone(),
                false,
            ));
        }
        for _ in 0..50 {
            abuse.spawn(abusive(
                outcomes.clone(),
                "declared over the limit",
                head(&abuser, Some(10 * LIMIT)),
                body[..1024].to_vec(),
                false,
            ));
        }
        let chunked = {
            let big = multipart(LIMIT + 512 * 1024);
            let mut chunks = Vec::new();
            for chunk in big.chunks(64 * 1024) {
                chunks.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                chunks.extend_from_slice(chunk);
                chunks.extend_from_slice(b"\r\n");
            }
            chunks.extend_from_slice(b"0\r\n\r\n");
            chunks
        };
        for _ in 0..20 {
            abuse.spawn(abusive(
                outcomes.clone(),
                "chunked over the limit",
                head(&abuser, None),
                chunked.clone(),
                false,
            ));
        }
        while abuse.join_next().await.is_some() {}
        // Let the server finish cleaning up, keep the honest client going meanwhile.
        tokio::time::sleep(Duration::from_secs(3)).await;
        after_wave.push(rss_mib(pid));
    }
    let abuse_took = abuse_started.elapsed();
    done.store(true, Ordering::Relaxed);
    let (served, uploaded, failed, slowest) = honest_client.await?;
    sampler.await?;
    let rss_end = rss_mib(pid);

    let db = Database::connect(database_url).await?;
    let count = |sql: String| {
        let db = db.clone();
        async move {
            let row = db
                .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
                .await?
                .ok_or_else(|| anyhow::anyhow!("no row"))?;
            anyhow::Ok(row.try_get_by_index::<i64>(0)?)
        }
    };
    let abuser_rows = count(format!(
        "SELECT count(*) FROM photos WHERE user_id = {abuser_id}"
    ))
    .await?;
    let honest_rows = count(format!(
        "SELECT count(*) FROM photos WHERE user_id <> {abuser_id}"
    ))
    .await?;
    let files = files_under(objects);
    let abuser_files = files
        .iter()
        .filter(|path| path.contains(&format!("users/{abuser_id}/")))
        .count();
    let stray_files = files.len() as i64 - abuser_files as i64 - honest_rows;

    println!(
        "abusive requests, {waves} waves ({:.1} s in all, 3 s of rest after each):",
        abuse_took.as_secs_f64()
    );
    for (outcome, n) in outcomes.lock().await.iter() {
        println!("  {n:>4}  {outcome}");
    }
    println!(
        "honest client: {served} requests ({uploaded} uploads), {} failed {:?}, slowest {:.0} ms",
        failed.len(),
        failed.iter().take(5).collect::<Vec<_>>(),
        slowest.as_secs_f64() * 1e3
    );
    println!(
        "left behind by the abuser: {abuser_rows} rows, {abuser_files} objects; stray objects \
         (no row): {stray_files}; honest photos: {honest_rows} rows"
    );
    println!(
        "server RSS: start {rss_start:.1} MiB, after each wave {:.1?} MiB, peak {:.1} MiB, end \
         {rss_end:.1} MiB",
        after_wave,
        *peak.lock().await
    );
    Ok(())
}

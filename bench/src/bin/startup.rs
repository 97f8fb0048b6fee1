//! Time from process start to `/ready` answering 200, on the embedded default (SQLite file).
//! Run: `cargo build --release -p api -p bench && target/release/startup [RUNS]`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bench::{sibling_binary, summary};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(20);
    let api = sibling_binary("api")?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()?;
    let dir = std::env::temp_dir().join(format!("aistory-startup-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let mut fresh = Vec::new();
    let mut existing = Vec::new();
    for run in 0..runs * 2 {
        // Even runs start on a new database file (migrations applied), odd runs reuse it.
        let database = dir.join(format!("run{}.db", run / 2));
        let port = 18_000 + (run % 1000) as u16;
        let started = Instant::now();
        let mut child = Command::new(&api)
            .env(
                "AISTORY_DATABASE_URL",
                format!("sqlite://{}?mode=rwc", database.display()),
            )
            .env("AISTORY_PORT", port.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let url = format!("http://127.0.0.1:{port}/ready");
        loop {
            if let Ok(response) = client.get(&url).send().await
                && response.status().is_success()
            {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(10),
                "not ready in 10 s"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let elapsed = started.elapsed();
        child.kill()?;
        child.wait()?;
        if run % 2 == 0 {
            fresh.push(elapsed)
        } else {
            existing.push(elapsed)
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    println!(
        "start-up to /ready, new SQLite file (migrations applied): {}",
        summary(&mut fresh)
    );
    println!(
        "start-up to /ready, existing SQLite file:                 {}",
        summary(&mut existing)
    );
    Ok(())
}

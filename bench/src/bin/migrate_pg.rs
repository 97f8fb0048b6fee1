//! `migration up` on a fresh, empty PostgreSQL database, as an operator runs it (a process).
//! Run: `cargo build --release -p migration -p bench && target/release/migrate_pg [RUNS]`
//! with `AISTORY_TEST_POSTGRES_URL` (default postgres://postgres@127.0.0.1:5432/postgres).

use std::process::Command;
use std::time::{Duration, Instant};

use bench::{sibling_binary, summary};
use sea_orm::{ConnectionTrait, Database};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(10);
    let (admin_url, base) = bench::postgres_admin()?;
    let migration = sibling_binary("migration")?;
    let admin = Database::connect(admin_url.as_str()).await?;
    let mut samples: Vec<Duration> = Vec::new();
    for run in 0..runs {
        let name = format!("aistory_bench_migrate_{run}_{}", std::process::id());
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await?;
        let started = Instant::now();
        let output = Command::new(&migration)
            .arg("up")
            .env("DATABASE_URL", format!("{base}/{name}"))
            .env("RUST_LOG", "warn")
            .output()?;
        samples.push(started.elapsed());
        admin
            .execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .await?;
        anyhow::ensure!(
            output.status.success(),
            "migration up failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    println!(
        "`migration up` on an empty PostgreSQL database (whole process): {}",
        summary(&mut samples)
    );
    Ok(())
}

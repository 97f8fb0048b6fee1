//! Queue throughput with a no-op job kind at 1, 2 and 4 workers on PostgreSQL, each worker
//! with a pool of its own (as separate processes would):
//! - raw: a loop that claims batches of BATCH and completes each job (the queue's ceiling);
//! - runtime: the real workers (`service::worker::Workers`, as `api worker` runs them): one
//!   job per claim, a heartbeat per job, completion after the handler.
//!
//! Run: `cargo build --release -p bench && target/release/queue [JOBS] [BATCH]` with
//! `AISTORY_TEST_POSTGRES_URL` (default postgres://postgres@127.0.0.1:5432/postgres).

use std::time::{Duration, Instant};

use entity::job;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, Database, EntityTrait, PaginatorTrait, QueryFilter};
use service::queue;
use service::settings::DatabaseSettings;
use service::worker::{BackgroundJob, JobContext, JobError, Registry, WorkerConfig, Workers};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let jobs: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(2000);
    let batch: u64 = args.next().map(|n| n.parse()).transpose()?.unwrap_or(10);
    let (admin_url, base) = bench::postgres_admin()?;
    let admin = Database::connect(admin_url.as_str()).await?;
    for workers in [1usize, 2, 4] {
        let name = format!("aistory_bench_queue_{workers}_{}", std::process::id());
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await?;
        let url = format!("{base}/{name}?sslmode=disable");
        let result = run(&url, workers, jobs, batch).await;
        admin
            .execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .await?;
        let (elapsed, done) = result?;
        println!(
            "raw, {workers} worker(s): {done} no-op jobs in {:.2} s = {:.0} jobs/s (batch {batch})",
            elapsed.as_secs_f64(),
            done as f64 / elapsed.as_secs_f64()
        );
    }
    for workers in [1usize, 2, 4] {
        let name = format!("aistory_bench_runtime_{workers}_{}", std::process::id());
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await?;
        let url = format!("{base}/{name}?sslmode=disable");
        let result = run_runtime(&url, workers, jobs).await;
        admin
            .execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .await?;
        let elapsed = result?;
        println!(
            "runtime, {workers} worker(s): {jobs} no-op jobs in {:.2} s = {:.0} jobs/s",
            elapsed.as_secs_f64(),
            jobs as f64 / elapsed.as_secs_f64()
        );
    }
    Ok(())
}

/// A job that does nothing: what is measured is the queue itself.
#[derive(serde::Serialize, serde::Deserialize)]
struct Noop {
    n: usize,
}

#[async_trait::async_trait]
impl BackgroundJob for Noop {
    const KIND: &'static str = "noop";
    type Context = ();

    async fn run(&self, _context: &(), _job: &JobContext<'_>) -> Result<(), JobError> {
        Ok(())
    }
}

async fn run_runtime(url: &str, workers: usize, jobs: usize) -> anyhow::Result<Duration> {
    let db = Database::connect(DatabaseSettings::for_url(url).connect_options()).await?;
    Migrator::up(&db, None).await?;
    for n in 0..jobs {
        Noop { n }.enqueue(&db).await?;
    }
    let config = WorkerConfig {
        lease: Duration::from_secs(60),
        poll_interval: Duration::from_millis(50),
        shutdown_grace: Duration::from_secs(5),
    };
    let started = Instant::now();
    let mut running = Vec::new();
    for _ in 0..workers {
        let mut options = DatabaseSettings::for_url(url).connect_options();
        options.max_connections(3).min_connections(1);
        let pool = Database::connect(options).await?;
        running.push(Workers::start(
            pool,
            Registry::new().register::<Noop>(()),
            config.clone(),
            1,
        ));
    }
    loop {
        let left = job::Entity::find()
            .filter(job::Column::Status.ne(job::JobStatus::Succeeded))
            .count(&db)
            .await?;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed();
    for workers in running {
        workers.shutdown().await;
    }
    Ok(elapsed)
}

async fn run(
    url: &str,
    workers: usize,
    jobs: usize,
    batch: u64,
) -> anyhow::Result<(Duration, usize)> {
    let db = Database::connect(DatabaseSettings::for_url(url).connect_options()).await?;
    Migrator::up(&db, None).await?;
    for n in 0..jobs {
        Noop { n }.enqueue(&db).await?;
    }
    let started = Instant::now();
    let mut handles = Vec::new();
    for w in 0..workers {
        let mut options = DatabaseSettings::for_url(url).connect_options();
        options.max_connections(2).min_connections(1);
        let pool = Database::connect(options).await?;
        handles.push(tokio::spawn(async move {
            let name = format!("bench-worker-{w}");
            let mut done = 0usize;
            loop {
                let claimed =
                    queue::claim(&pool, &name, &[Noop::KIND], batch, Duration::from_secs(60))
                        .await?;
                if claimed.is_empty() {
                    break;
                }
                for job in claimed {
                    if queue::complete(&pool, job.id, &name).await? {
                        done += 1;
                    }
                }
            }
            Ok::<_, anyhow::Error>(done)
        }));
    }
    let mut done = 0;
    for handle in handles {
        done += handle.await??;
    }
    Ok((started.elapsed(), done))
}

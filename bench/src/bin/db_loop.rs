//! The database client's own ceiling: 16 tasks sending pgbench's `-S` query through SeaORM
//! (sqlx) for a few seconds, no HTTP involved. Compares what the server adds on top.
//! Run: `target/release/db_loop URL_OF_A_PGBENCH_DATABASE [TASKS] [SECONDS] [CLIENT]`, CLIENT
//! `seaorm` (default), `sqlx-pool` (sqlx's own pool, no SeaORM), `sqlx-connection` (one sqlx
//! connection per task, no pool), `read-pool` (SeaORM on `service::ReadPool`, the server's pool
//! for the hot reads) or `tokio-postgres` (one connection per task, the statement prepared
//! once), or `tokio-postgres-shared[=N]` (the tasks share N tokio-postgres connections, default
//! 2, their queries pipelined on each): which layer costs what on the same query.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DbBackend, Statement};

/// `DB_LOOP_RUNTIME=current` runs every task on one thread (as one actix worker does: a
/// connection's I/O and its task on the same thread); default: Tokio's two worker threads.
fn main() -> anyhow::Result<()> {
    let runtime = match std::env::var("DB_LOOP_RUNTIME").as_deref() {
        Ok("current") => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        Ok("multi") | Err(_) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?,
        Ok(other) => anyhow::bail!("DB_LOOP_RUNTIME={other}: current or multi"),
    };
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or_else(|| {
        anyhow::anyhow!(
            "usage: db_loop URL [TASKS] [SECONDS] \
             [seaorm|sqlx-pool|sqlx-connection|read-pool|tokio-postgres|tokio-postgres-shared[=N]]"
        )
    })?;
    let tasks: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(16);
    let seconds: u64 = args.next().map(|n| n.parse()).transpose()?.unwrap_or(5);
    let client = args.next();
    match client.as_deref() {
        Some("tokio-postgres") => return tokio_postgres_loop(&url, tasks, seconds, tasks).await,
        Some(shared) if shared.starts_with("tokio-postgres-shared") => {
            // tokio-postgres-shared[=N]: the tasks share N connections (default 2), their
            // queries pipelined on each.
            let connections = match shared.split_once('=') {
                Some((_, n)) => n.parse()?,
                None => 2,
            };
            return tokio_postgres_loop(&url, tasks, seconds, connections).await;
        }
        Some("sqlx-pool") => return sqlx_loop(&url, tasks, seconds, true).await,
        Some("sqlx-connection") => return sqlx_loop(&url, tasks, seconds, false).await,
        None | Some("seaorm" | "read-pool") => {}
        Some(other) => anyhow::bail!(
            "unknown client {other:?}: seaorm, sqlx-pool, sqlx-connection, read-pool, \
             tokio-postgres or tokio-postgres-shared[=N]"
        ),
    }
    let mut options = ConnectOptions::new(url.clone());
    // As the server does (settings::DatabaseSettings): no ping before handing out a
    // connection that was in use a moment ago.
    options
        .max_connections(tasks as u32)
        .min_connections(tasks as u32)
        .test_before_acquire_if_idle_for(Duration::from_secs(5))
        .sqlx_logging(false);
    let db = Database::connect(options).await?;
    if client.as_deref() == Some("read-pool") {
        let mut settings = service::settings::DatabaseSettings::for_url(url);
        settings.read_pool_size = tasks as u32;
        let reads = service::ReadPool::new(&db, &settings, None)?;
        return seaorm_loop(reads, tasks, seconds, "SeaORM on the read pool").await;
    }
    seaorm_loop(db, tasks, seconds, "SeaORM").await
}

/// `tasks` tasks sending the query through `db` for `seconds`.
async fn seaorm_loop<C>(db: C, tasks: usize, seconds: u64, what: &str) -> anyhow::Result<()>
where
    C: ConnectionTrait + Clone + Send + 'static,
{
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let cpu_before = process_cpu()?;
    let mut handles = Vec::new();
    for task in 0..tasks {
        let db = db.clone();
        let done = done.clone();
        handles.push(tokio::spawn(async move {
            let mut aid: i64 = task as i64 * 7919;
            while Instant::now() < deadline {
                aid = (aid * 48271 + 11) % 1_000_000 + 1;
                let statement = Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
                    [aid.into()],
                );
                if db.query_one_raw(statement).await.is_ok() {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for handle in handles {
        handle.await?;
    }
    report(tasks, &done, seconds, what, cpu_before)
}

async fn tokio_postgres_loop(
    url: &str,
    tasks: usize,
    seconds: u64,
    connections: usize,
) -> anyhow::Result<()> {
    let done = Arc::new(AtomicU64::new(0));
    let mut shared = Vec::new();
    for _ in 0..connections.max(1) {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        shared.push(Arc::new(client));
    }
    let clients: Vec<_> = (0..tasks)
        .map(|task| shared[task % shared.len()].clone())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let cpu_before = process_cpu()?;
    let mut handles = Vec::new();
    for (task, client) in clients.into_iter().enumerate() {
        let done = done.clone();
        handles.push(tokio::spawn(async move {
            let statement = client
                .prepare("SELECT abalance FROM pgbench_accounts WHERE aid = $1")
                .await?;
            let mut aid: i32 = task as i32 * 7919;
            while Instant::now() < deadline {
                aid = ((i64::from(aid) * 48271 + 11) % 1_000_000 + 1) as i32;
                if client.query_opt(&statement, &[&aid]).await.is_ok() {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
            anyhow::Ok(())
        }));
    }
    for handle in handles {
        handle.await??;
    }
    let what = if connections == tasks {
        "tokio-postgres (a connection per task)".to_owned()
    } else {
        format!("tokio-postgres ({connections} connections shared, pipelined)")
    };
    report(tasks, &done, seconds, &what, cpu_before)
}

async fn sqlx_loop(url: &str, tasks: usize, seconds: u64, pooled: bool) -> anyhow::Result<()> {
    use sea_orm::sqlx::{self, Connection};
    const SQL: &str = "SELECT abalance FROM pgbench_accounts WHERE aid = $1";
    let pool = sqlx::postgres::PgPoolOptions::new()
        .test_before_acquire(false)
        .max_connections(tasks as u32)
        .min_connections(tasks as u32)
        .connect(url)
        .await?;
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let cpu_before = process_cpu()?;
    let mut handles = Vec::new();
    for task in 0..tasks {
        let done = done.clone();
        let pool = pool.clone();
        let mut own = if pooled {
            None
        } else {
            Some(sqlx::PgConnection::connect(url).await?)
        };
        handles.push(tokio::spawn(async move {
            let mut aid: i32 = task as i32 * 7919;
            while Instant::now() < deadline {
                aid = ((i64::from(aid) * 48271 + 11) % 1_000_000 + 1) as i32;
                let query = sqlx::query(SQL).bind(aid);
                let ok = match own.as_mut() {
                    Some(connection) => query.fetch_optional(connection).await.is_ok(),
                    None => query.fetch_optional(&pool).await.is_ok(),
                };
                if ok {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for handle in handles {
        handle.await?;
    }
    let what = if pooled {
        "sqlx (its pool)"
    } else {
        "sqlx (a connection per task, no pool)"
    };
    report(tasks, &done, seconds, what, cpu_before)
}

/// This process's CPU time so far (user + system, every thread), from `/proc/self/stat`.
fn process_cpu() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow::anyhow!("unexpected /proc/self/stat: {stat}"))?;
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks = |index: usize| -> anyhow::Result<u64> {
        Ok(fields
            .get(index)
            .ok_or_else(|| anyhow::anyhow!("short /proc/self/stat: {stat}"))?
            .parse()?)
    };
    // utime and stime: fields 14 and 15 of the whole line, 12 and 13 after the name. The
    // kernel counts in USER_HZ, which is 100 on Linux whatever the kernel's own tick.
    Ok(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}

/// Queries per second, and the client's own CPU time per query (the database's is not in it).
fn report(
    tasks: usize,
    done: &AtomicU64,
    seconds: u64,
    what: &str,
    cpu_before: Duration,
) -> anyhow::Result<()> {
    let queries = done.load(Ordering::Relaxed);
    let cpu = process_cpu()?.saturating_sub(cpu_before);
    println!(
        "{tasks} tasks: {:.0} queries/s through {what}, client CPU {:.1} us per query",
        queries as f64 / seconds as f64,
        cpu.as_secs_f64() * 1e6 / queries.max(1) as f64
    );
    Ok(())
}

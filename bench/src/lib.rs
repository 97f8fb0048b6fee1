//! Shared helpers of the benchmark binaries.

use std::path::PathBuf;
use std::time::Duration;

/// Path of a binary built next to this one (`target/release/api` beside
/// `target/release/startup`).
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let dir = me
        .parent()
        .ok_or_else(|| anyhow::anyhow!("the benchmark binary has no directory"))?;
    let path = dir.join(name);
    anyhow::ensure!(
        path.exists(),
        "{} is missing: build it first with `cargo build --release -p {name}`",
        path.display()
    );
    Ok(path)
}

/// Median, 90th percentile and maximum of `samples` (sorted in place).
pub fn summary(samples: &mut [Duration]) -> String {
    samples.sort();
    let pick = |q: f64| {
        let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[index.min(samples.len() - 1)]
    };
    format!(
        "n={} median={:.1} ms p90={:.1} ms max={:.1} ms",
        samples.len(),
        pick(0.5).as_secs_f64() * 1e3,
        pick(0.9).as_secs_f64() * 1e3,
        pick(1.0).as_secs_f64() * 1e3
    )
}

/// A 1x1 PNG: the smallest photo the server accepts.
pub const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x00, 0x00, 0x00, 0x3A, 0x7E, 0x9B,
    0x55, 0x00, 0x00, 0x00, 0x0A, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x60, 0x00, 0x00, 0x00,
    0x02, 0x00, 0x01, 0x48, 0xAF, 0xA4, 0x71, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE,
    0x42, 0x60, 0x82,
];

/// The PostgreSQL admin URL (`AISTORY_TEST_POSTGRES_URL`, default the local `postgres`
/// database) and its base without the database name, to build URLs of scratch databases.
pub fn postgres_admin() -> anyhow::Result<(String, String)> {
    let admin_url = std::env::var("AISTORY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let base = admin_url
        .rsplit_once('/')
        .map(|(base, _)| base.to_owned())
        .ok_or_else(|| anyhow::anyhow!("no database path in {admin_url}"))?;
    Ok((admin_url, base))
}

/// Waits until the server on `port` answers `/ready` with 200 (at most `within`).
pub async fn wait_ready(
    client: &reqwest::Client,
    port: u16,
    within: Duration,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let url = format!("http://127.0.0.1:{port}/ready");
    while !client
        .get(&url)
        .send()
        .await
        .is_ok_and(|response| response.status().is_success())
    {
        anyhow::ensure!(
            started.elapsed() < within,
            "the server on port {port} is not ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Registers `username` (password "correct horse battery") on the API at `api`
/// (`http://HOST:PORT/api/v1`) and logs it in: its access token.
pub async fn sign_up(
    client: &reqwest::Client,
    api: &str,
    username: &str,
) -> anyhow::Result<String> {
    client
        .post(format!("{api}/auth/register"))
        .json(&serde_json::json!({"username": username, "email": format!("{username}@example.com"), "password": "correct horse battery"}))
        .send()
        .await?;
    let login: serde_json::Value = client
        .post(format!("{api}/auth/login"))
        .json(&serde_json::json!({"username": username, "password": "correct horse battery"}))
        .send()
        .await?
        .json()
        .await?;
    login["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no token: {login}"))
}

/// The resident memory of process `pid`, in MiB (0 when it cannot be read).
pub fn rss_mib(pid: u32) -> f64 {
    status_mib(pid, "VmRSS:")
}

/// The peak resident memory of process `pid` so far, in MiB (0 when it cannot be read).
pub fn peak_rss_mib(pid: u32) -> f64 {
    status_mib(pid, "VmHWM:")
}

/// A `kB` field of `/proc/PID/status` (`VmRSS:`, `VmHWM:`), in MiB.
fn status_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with(field))
                .and_then(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kib| kib as f64 / 1024.0)
        .unwrap_or(0.0)
}

/// A scratch PostgreSQL database and object directory for one benchmark's server, removed by
/// [`Scratch::finish`] (soak, abuse).
pub struct Scratch {
    admin: sea_orm::DatabaseConnection,
    name: String,
    /// The scratch database's URL.
    pub database_url: String,
    /// The directory store's root (`file://` it).
    pub objects: PathBuf,
}

impl Scratch {
    /// Creates `aistory_bench_{what}_{pid}` and a temporary directory for the objects.
    pub async fn create(what: &str) -> anyhow::Result<Scratch> {
        use sea_orm::ConnectionTrait;
        let (admin_url, base) = postgres_admin()?;
        let name = format!("aistory_bench_{what}_{}", std::process::id());
        let admin = sea_orm::Database::connect(admin_url.as_str()).await?;
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await?;
        let objects = std::env::temp_dir().join(format!("aistory-{what}-{}", std::process::id()));
        std::fs::create_dir_all(&objects)?;
        Ok(Scratch {
            admin,
            database_url: format!("{base}/{name}"),
            name,
            objects,
        })
    }

    /// The release `api` on `port` with this database, the directory store (the memory store
    /// would count the photos in the server's RSS), testing mode, errors-only logs and its
    /// output discarded; add more with `.env(...)` and `.spawn()` it. `AISTORY_BENCH_API`, when
    /// set, is the server binary to run instead of the one built beside the benchmark.
    pub fn server(&self, port: u16) -> anyhow::Result<std::process::Command> {
        // AISTORY_BENCH_API: another build of the server (an older one, for a before/after).
        let binary = match std::env::var_os("AISTORY_BENCH_API") {
            Some(path) => PathBuf::from(path),
            None => sibling_binary("api")?,
        };
        let mut command = std::process::Command::new(binary);
        command
            .env("AISTORY_ENVIRONMENT", "testing")
            .env("AISTORY_DATABASE_URL", &self.database_url)
            .env(
                "AISTORY_STORAGE_URL",
                format!("file://{}", self.objects.display()),
            )
            .env("AISTORY_PORT", port.to_string())
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        Ok(command)
    }

    /// Drops the database and the directory.
    pub async fn finish(self) -> anyhow::Result<()> {
        use sea_orm::ConnectionTrait;
        std::fs::remove_dir_all(&self.objects).ok();
        self.admin
            .execute_unprepared(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .await?;
        Ok(())
    }
}

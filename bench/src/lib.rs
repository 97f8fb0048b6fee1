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

/// The resident memory of process `pid`, in MiB (0 when it cannot be read).
pub fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kib| kib as f64 / 1024.0)
        .unwrap_or(0.0)
}

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

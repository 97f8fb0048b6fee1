//! What the Prometheus metrics add to one request's CPU time, measured on the recording code
//! the server runs (`api::metrics`): per request, the in-flight gauge, the HTTP counter and
//! histogram (a route template, a status) and one statement's counter and histogram, with the
//! recorder installed as `AISTORY_METRICS_ADDR` installs it, its upkeep included. Compared with
//! the same calls without a recorder (what a server without metrics pays: nothing but the
//! facade's check). Single thread, release build.
//!
//! Usage: `cargo run --release -p bench --bin metrics_cost [REQUESTS]` (default 2,000,000).

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;

fn one_request(route: &str, status: StatusCode) {
    let in_flight = api::metrics::InFlight::start();
    service::metrics::statement("reads", Duration::from_micros(180), true);
    drop(in_flight);
    api::metrics::record_request(
        "GET",
        Some(route.to_owned()),
        status,
        Duration::from_micros(900),
    );
}

/// Nanoseconds per simulated request over `n`.
fn measure(n: u64) -> f64 {
    let routes = [
        "/api/v1/photos/{id}",
        "/api/v1/photos",
        "/api/v1/users/me",
        "/health",
    ];
    let started = Instant::now();
    for i in 0..n {
        let route = routes[(i % 4) as usize];
        one_request(route, StatusCode::OK);
    }
    started.elapsed().as_nanos() as f64 / n as f64
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(2_000_000);
    // Without a recorder: the facade alone (a server with AISTORY_METRICS_ADDR unset does not
    // even run the middleware; this is the statement counters' cost there).
    measure(n / 10);
    let without = measure(n);
    let Some(handle) = api::metrics::recorder() else {
        eprintln!("error: no recorder could be installed");
        std::process::exit(1);
    };
    measure(n / 10);
    let mut runs = Vec::new();
    for _ in 0..3 {
        runs.push(measure(n));
    }
    let rendered = handle.render();
    println!("requests per run: {n}");
    println!("without a recorder: {without:.0} ns per request");
    for (index, run) in runs.iter().enumerate() {
        println!(
            "with the recorder, run {}: {run:.0} ns per request",
            index + 1
        );
    }
    println!(
        "exposition after the runs: {} bytes, {} series lines",
        rendered.len(),
        rendered
            .lines()
            .filter(|line| !line.starts_with('#'))
            .count()
    );
}

//! What the service counts (through the `metrics` facade: nothing is recorded until a binary
//! installs an exporter; see `api::metrics`). Every metric is named `aistory_*`; each function
//! here is one event of the domain, so call sites stay one line. The meaning of each metric:
//! docs/operations.md (Metrics).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use metrics::{counter, gauge, histogram};

/// One statement on `pool` (`main` or `reads`).
pub fn statement(pool: &'static str, elapsed: Duration, ok: bool) {
    let outcome = if ok { "ok" } else { "error" };
    counter!("aistory_db_statements_total", "pool" => pool, "outcome" => outcome).increment(1);
    histogram!("aistory_db_statement_duration_seconds", "pool" => pool)
        .record(elapsed.as_secs_f64());
}

/// Getting a connection of `pool` took `elapsed` (on `main`: with its `BEGIN`); `ok`: one was
/// had (else the acquire time-out ran out, or the server refused).
pub fn acquired(pool: &'static str, elapsed: Duration, ok: bool) {
    histogram!("aistory_db_acquire_duration_seconds", "pool" => pool).record(elapsed.as_secs_f64());
    if !ok {
        counter!("aistory_db_acquire_failures_total", "pool" => pool).increment(1);
    }
}

/// Tasks waiting for a connection of the main pool (and its `BEGIN`) right now.
pub struct Waiting;

impl Waiting {
    pub fn start() -> Waiting {
        gauge!("aistory_db_acquire_waiting", "pool" => "main").increment(1.0);
        Waiting
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        gauge!("aistory_db_acquire_waiting", "pool" => "main").decrement(1.0);
    }
}

/// A pool's connections now (read when metrics are scraped): `waiting` where it is known.
pub fn connections(pool: &'static str, in_use: f64, idle: f64, waiting: Option<f64>) {
    gauge!("aistory_db_connections", "pool" => pool, "state" => "idle").set(idle);
    gauge!("aistory_db_connections", "pool" => pool, "state" => "in_use").set(in_use);
    if let Some(waiting) = waiting {
        gauge!("aistory_db_acquire_waiting", "pool" => pool).set(waiting);
    }
}

/// Migrations applied and pending when the process started.
pub fn migrations(applied: usize, pending: usize) {
    gauge!("aistory_migrations_applied").set(applied as f64);
    gauge!("aistory_migrations_pending").set(pending as f64);
}

/// Label sets of the queue gauges seen so far: one that no longer has jobs is set to 0.
static QUEUE_SEEN: Mutex<BTreeSet<(String, &'static str)>> = Mutex::new(BTreeSet::new());

/// The queue now (read when metrics are scraped): jobs by (kind, state) and the age of the
/// oldest job that is due and not yet claimed. A (kind, state) seen before and missing now is 0.
pub fn queue(counts: &BTreeMap<(String, &'static str), f64>, oldest_due_age_secs: f64) {
    gauge!("aistory_jobs_oldest_due_age_seconds").set(oldest_due_age_secs);
    let mut seen = QUEUE_SEEN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    seen.extend(counts.keys().cloned());
    for (kind, state) in seen.iter() {
        let jobs = counts.get(&(kind.clone(), *state)).copied().unwrap_or(0.0);
        gauge!("aistory_jobs", "kind" => kind.clone(), "state" => *state).set(jobs);
    }
}

/// How one run of a job of `kind` ended: `succeeded`, `retry` (it will run again), `failed`
/// (given up), `lost` (its lease expired meanwhile) or `handed_back` (shutdown).
pub fn job_ran(kind: &str, outcome: &'static str, elapsed: Duration) {
    let kind = kind.to_owned();
    histogram!("aistory_job_duration_seconds", "kind" => kind.clone(), "outcome" => outcome)
        .record(elapsed.as_secs_f64());
    match outcome {
        "retry" => counter!("aistory_job_retries_total", "kind" => kind).increment(1),
        "failed" => counter!("aistory_job_give_ups_total", "kind" => kind).increment(1),
        _ => {}
    }
}

/// A job of `kind` was claimed after its holder's lease expired (the holder died or hung).
pub fn lease_expired(kind: &str) {
    counter!("aistory_job_lease_expiries_total", "kind" => kind.to_owned()).increment(1);
}

/// One call of story provider `provider`: `ok`, or the kind of error.
pub fn provider_call(provider: &'static str, elapsed: Duration, outcome: &'static str) {
    histogram!("aistory_story_provider_duration_seconds", "provider" => provider)
        .record(elapsed.as_secs_f64());
    if outcome != "ok" {
        counter!("aistory_story_provider_errors_total", "provider" => provider, "kind" => outcome)
            .increment(1);
    }
}

/// A photo's bytes were stored.
pub fn upload_stored(bytes: u64) {
    counter!("aistory_upload_bytes_total").increment(bytes);
    counter!("aistory_uploads_total").increment(1);
}

/// An upload was refused (`too_large`, `unsupported_media`, `timeout`, `malformed`,
/// `invalid`).
pub fn upload_refused(reason: &'static str) {
    counter!("aistory_upload_refusals_total", "reason" => reason).increment(1);
}

/// A login attempt: `success`, `failure` (wrong credentials) or `throttled`.
pub fn login(outcome: &'static str) {
    counter!("aistory_logins_total", "outcome" => outcome).increment(1);
}

/// The photo-change watch was interrupted: the listener (PostgreSQL) listens again after
/// losing its connection (`connected`, `reconnected`: every open stream looks at its photo),
/// could not connect or stopped answering (`connect_failed`, `listen_failed`: retried with
/// backoff), or a round of the poller (SQLite, MySQL) failed (`poll_failed`: tried again next
/// round).
pub fn photo_changes_interrupted(reason: &'static str) {
    counter!("aistory_photo_changes_interruptions_total", "reason" => reason).increment(1);
}

/// A hot read on a deployment with a read replica: `served_by` `replica` (`caught_up`), or
/// `primary` because the replica is `replica_down`, was `lagging` past the wait bound, failed
/// this read (`replica_failed`), had no connection free in time (`replica_busy`), or the
/// primary's position could not be read (`no_target`).
pub fn replica_read(served_by: &'static str, reason: &'static str) {
    counter!("aistory_db_replica_reads_total", "served_by" => served_by, "reason" => reason)
        .increment(1);
}

/// Whether hot reads may use the read replica (0 while it is marked down).
pub fn replica_up(up: bool) {
    gauge!("aistory_db_replica_up").set(if up { 1.0 } else { 0.0 });
}

/// How long a read waited to know whether the replica had replayed what it must see.
pub fn replica_wait(elapsed: Duration) {
    histogram!("aistory_db_replica_wait_seconds").record(elapsed.as_secs_f64());
}

/// A photo or thumbnail download of `bytes`: streamed by this process (`api`) or redirected
/// to the store (`bucket`, which then serves the bytes).
pub fn download(via: &'static str, bytes: u64) {
    counter!("aistory_downloads_total", "via" => via).increment(1);
    counter!("aistory_download_bytes_total", "via" => via).increment(bytes);
}

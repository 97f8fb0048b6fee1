//! A real PostgreSQL streaming replica for the replica tests: made and controlled by
//! `.ci/replica.sh` (`pg_basebackup -R` of the test PostgreSQL, on its own port).
//!
//! `AISTORY_TEST_POSTGRES_REPLICA_URL` is its admin URL (a test's database, created on the
//! primary, appears there under the same name) and `AISTORY_TEST_REPLICA_CTL` the script
//! that stops and starts it. Without them the e2e harness reports the replica tests as
//! ignored; with CI=true they fail. Tests that use it hold [`exclusive`]: one of them stops it.

use std::time::Duration;

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

const URL: &str = "AISTORY_TEST_POSTGRES_REPLICA_URL";
const CTL: &str = "AISTORY_TEST_REPLICA_CTL";

fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// Why the replica tests cannot run here, if they cannot.
pub fn missing() -> Option<String> {
    match (var(URL), var(CTL)) {
        (Some(_), Some(_)) => None,
        _ => Some(format!(
            "the replica tests need {URL} and {CTL} set (`bash .ci/replica.sh start` makes one)"
        )),
    }
}

/// The replica's URL of the database at `primary_url` (same name, on the replica).
pub fn url_for(primary_url: &str) -> String {
    let admin = var(URL).unwrap_or_else(|| panic!("{URL} is not set"));
    let name = primary_url
        .rsplit_once('/')
        .map(|(_, name)| name.split('?').next().unwrap_or(name))
        .unwrap_or_else(|| panic!("no database name in {primary_url}"));
    let (base, _) = admin
        .rsplit_once('/')
        .unwrap_or_else(|| panic!("{URL} has no database path"));
    format!("{base}/{name}")
}

/// Held by a test that uses the replica, so that no other one stops it meanwhile.
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// Runs `$AISTORY_TEST_REPLICA_CTL action` (`start`, `stop`, `delay MS`), failing the test if
/// it fails.
pub async fn control(args: &[&str]) {
    let ctl = var(CTL).unwrap_or_else(|| panic!("{CTL} is not set"));
    let mut command = std::process::Command::new("bash");
    command.arg(&ctl).args(args);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap_or_else(|error| panic!("running {ctl}: {error}"))
        .unwrap_or_else(|error| panic!("running {ctl}: {error}"));
    assert!(
        output.status.success(),
        "{ctl} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn lsn(db: &DatabaseConnection, sql: &str) -> Option<i64> {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .ok()??;
    row.try_get_by_index::<Option<i64>>(0).ok()?
}

/// Waits (up to 30 s) until the replica has the database at `primary_url` and has replayed
/// everything the primary had written when this was called (its tables, the migrations).
pub async fn caught_up(primary_url: &str) {
    let primary = Database::connect(primary_url)
        .await
        .unwrap_or_else(|error| panic!("connecting to the primary: {error}"));
    let target = lsn(
        &primary,
        "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint",
    )
    .await
    .unwrap_or_else(|| panic!("the primary's WAL position could not be read"));
    primary.close().await.ok();
    let url = url_for(primary_url);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(replica) = Database::connect(&url).await {
            let replayed = lsn(
                &replica,
                "SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint",
            )
            .await;
            replica.close().await.ok();
            if replayed.is_some_and(|replayed| replayed >= target) {
                return;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the replica did not replay the test database's creation within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `aistory_db_replica_reads_total` of this process, by `served_by` (summed over reasons).
/// Only replica tests (serialized by [`exclusive`]) move it.
pub fn reads_served_by(served_by: &str) -> f64 {
    let Some(recorder) = api::metrics::recorder() else {
        panic!("no metrics recorder in this process");
    };
    let wanted = format!("served_by=\"{served_by}\"");
    recorder
        .render()
        .lines()
        .filter(|line| {
            line.starts_with("aistory_db_replica_reads_total{") && line.contains(&wanted)
        })
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

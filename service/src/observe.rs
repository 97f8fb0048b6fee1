//! Watching the statements sent: every statement is counted and timed (metrics), a slow one is
//! logged (`AISTORY_DB_SLOW_MS`), and tests count round trips per request with an observer.

use std::time::Duration;

use sea_orm::DatabaseConnection;

/// Sees every statement sent (tests count round trips with it): the SQL of each statement
/// through SeaORM, and `BEGIN` / `COMMIT` / `ROLLBACK` from the unit of work.
pub type StatementObserver = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// What is done with each statement of a pool.
#[derive(Clone, Default)]
pub struct Instruments {
    /// Log statements slower than this (with their SQL text, never their values).
    pub slow: Option<Duration>,
    /// Also report each statement here (tests).
    pub observer: Option<StatementObserver>,
}

impl Instruments {
    pub fn from_settings(settings: &settings::DatabaseSettings) -> Self {
        Instruments {
            slow: settings.slow_statement,
            observer: None,
        }
    }

    /// Counts, times, maybe logs and reports one statement that ran on `pool`.
    pub(crate) fn statement(&self, pool: &'static str, sql: &str, elapsed: Duration, ok: bool) {
        crate::metrics::statement(pool, elapsed, ok);
        if let Some(slow) = self.slow
            && elapsed >= slow
        {
            // Inside the request's (or job's) span: the log line carries its id. The SQL has
            // placeholders; the values are never logged.
            tracing::warn!(
                target: "aistory::slow_statement",
                pool,
                duration_ms = elapsed.as_millis() as u64,
                threshold_ms = slow.as_millis() as u64,
                ok,
                sql = %one_line(sql),
                "slow statement"
            );
        }
        if let Some(observer) = &self.observer {
            observer(sql);
        }
    }
}

/// The SQL on one line (a log record per statement).
fn one_line(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Installs `instruments` on a pool (the main one): every statement sent through it is counted,
/// timed, logged when slow and reported to the observer. Clones made before keep what they had.
pub fn instrument(pool: &mut DatabaseConnection, instruments: Instruments) {
    pool.set_metric_callback(move |info| {
        instruments.statement("main", &info.statement.sql, info.elapsed, !info.failed);
    });
}

/// Installs `observer` on a pool, with the statement metrics and the slow-statement log of
/// `slow`.
pub fn observe_statements(
    pool: &mut DatabaseConnection,
    slow: Option<Duration>,
    observer: StatementObserver,
) {
    instrument(
        pool,
        Instruments {
            slow,
            observer: Some(observer),
        },
    );
}

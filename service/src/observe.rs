//! Watching the statements sent: tests count round trips per request with it.

use sea_orm::DatabaseConnection;

/// Sees every statement sent (tests count round trips with it): the SQL of each statement
/// through SeaORM, and `BEGIN` / `COMMIT` / `ROLLBACK` from the unit of work.
pub type StatementObserver = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// Installs `observer` on a pool, so every statement sent through it is reported.
pub fn observe_statements(pool: &mut DatabaseConnection, observer: StatementObserver) {
    pool.set_metric_callback(move |info| observer(&info.statement.sql));
}

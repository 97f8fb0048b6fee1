//! The hottest reads (one photo, a page of photos, one account) on PostgreSQL, pipelined on a
//! connection per thread.
//!
//! Each thread that runs them (an actix worker: one single-threaded runtime) opens one
//! [`tokio_postgres`] connection of its own on first use, driven by a task on that same thread,
//! and sends every hot read of its requests on it: statements prepared once per connection,
//! concurrent reads pipelined (several go out in one write and come back in one read), and a
//! request, its connection and the socket's wake-ups stay on one thread. `bench db_loop`
//! measured the client's CPU per query at 12-13 us on one thread this way, against 17.5-18.7
//! for SeaORM on the pooled sqlx connections ([`super::Own`]); `bench/server_cost.sh` the
//! server's CPU per request (bench/RESULTS.md).
//!
//! Rows are decoded by position (`crate::statements`). A statement whose values this module
//! does not bind (anything but integers and text) returns `None`: the caller sends it the
//! pooled way. A connection that fails other than by the server refusing the statement (closed,
//! I/O) is forgotten and the read sent once more on a new one. Opening one is tried again while
//! the server refuses (a restart) until the acquire time-out, each try bounded by
//! `AISTORY_DB_CONNECT_TIMEOUT_SECS`, as for the pooled reads; the connections show as
//! `aistory-reads` in `pg_stat_activity` (unless the URL names an `application_name`), and each
//! statement is observed (metrics, slow-statement log) as the pooled reads' are, under the pool
//! name `reads`.
//! These connections have no TLS: they are used with `sslmode=disable`, or with the default
//! `prefer` when the server is on this machine (loopback, `localhost`, a Unix socket); otherwise
//! (and with an option tokio-postgres does not read) the hot reads stay on the pooled
//! connections, which use TLS when the server offers it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sea_orm::{ConnAcquireErr, DbErr, RuntimeErr, Statement, Value};
use settings::DatabaseSettings;
use thread_local::ThreadLocal;
use tokio_postgres::config::SslMode;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row};

use crate::observe::Instruments;

/// One connection per thread, opened on first use.
pub(crate) struct Pipelined {
    config: tokio_postgres::Config,
    connections: ThreadLocal<Mutex<Option<Arc<Connection>>>>,
    /// Set by [`Self::close`]: no more reads here.
    closed: std::sync::atomic::AtomicBool,
    instruments: Instruments,
    acquire_timeout: Duration,
}

struct Connection {
    client: Client,
    /// Statements prepared on this connection, by SQL text (a handful: the hot reads' shapes).
    prepared: Mutex<HashMap<String, tokio_postgres::Statement>>,
}

/// A bound value.
type Param = Box<dyn ToSql + Sync + Send>;

impl Pipelined {
    /// Pipelined reads on `url`, or `None` (said in the log) when tokio-postgres cannot take
    /// the URL as it is.
    pub(crate) fn new(
        url: &str,
        database: &DatabaseSettings,
        instruments: Instruments,
    ) -> Option<Pipelined> {
        let mut config: tokio_postgres::Config = match url.parse() {
            Ok(config) => config,
            Err(error) => {
                tracing::info!(
                    "hot reads on the pooled connections: the database URL has an option the \
                     pipelined client does not read ({error})"
                );
                return None;
            }
        };
        // sqlx (rustls) uses TLS when the server offers it unless told `sslmode=disable`;
        // these connections have no TLS: only where that changes nothing.
        let plain = match config.get_ssl_mode() {
            SslMode::Disable => true,
            SslMode::Prefer => is_local(&config),
            _ => false,
        };
        if !plain {
            tracing::info!(
                "hot reads on the pooled connections: the database may use TLS (the pipelined \
                 reads need sslmode=disable, or a server on this machine)"
            );
            return None;
        }
        if config.get_application_name().is_none() {
            config.application_name(super::APPLICATION_NAME);
        }
        config.connect_timeout(database.connect_timeout);
        Some(Pipelined {
            config,
            connections: ThreadLocal::new(),
            closed: std::sync::atomic::AtomicBool::new(false),
            instruments,
            acquire_timeout: database.acquire_timeout,
        })
    }

    /// The rows of `statement`, or `None` when its values are not of a type bound here (the
    /// caller sends it the pooled way).
    pub(crate) async fn query(&self, statement: &Statement) -> Result<Option<Vec<Row>>, DbErr> {
        if self.closed.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(None);
        }
        let Some(params) = params(statement) else {
            return Ok(None);
        };
        let params: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|param| param.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let mut retried = false;
        loop {
            let connection = self.connection().await?;
            let started = Instant::now();
            let result = connection.query(&statement.sql, &params).await;
            self.instruments
                .statement("reads", &statement.sql, started.elapsed(), result.is_ok());
            let error = match result {
                Ok(rows) => return Ok(Some(rows)),
                Err(error) => error,
            };
            if let Some(db) = error.as_db_error() {
                // FATAL: the server ended the session (57P01 on a restart or
                // pg_terminate_backend): the connection is gone, the read is sent again. Else
                // it refused the statement and the connection is fine; a refusal of class 08 or
                // 57 (a statement time-out, cannot connect now) means "unavailable", as on the
                // pooled reads (`crate::error::is_unavailable`).
                if !matches!(db.severity(), "FATAL" | "PANIC") {
                    let code = db.code().code();
                    // The table changed under the prepared statement (a migration altered a
                    // column it returns: "cached plan must not change result type"): prepared
                    // again and sent once more.
                    if code == "0A000" && !retried {
                        connection.unprepare(&statement.sql);
                        retried = true;
                        continue;
                    }
                    let message = RuntimeErr::Internal(format!("{error}: {}", db.message()));
                    return Err(if crate::error::is_unavailable_code(code) {
                        DbErr::Conn(message)
                    } else {
                        DbErr::Query(message)
                    });
                }
            } else {
                let broken = error.is_closed()
                    || std::error::Error::source(&error)
                        .is_some_and(|source| source.is::<std::io::Error>());
                if !broken {
                    return Err(DbErr::Query(RuntimeErr::Internal(error.to_string())));
                }
            }
            self.forget(&connection);
            if retried {
                return Err(DbErr::Conn(RuntimeErr::Internal(format!(
                    "the read connection: {error}"
                ))));
            }
            retried = true;
        }
    }

    /// This thread's connection, opened if there is none or it closed.
    async fn connection(&self) -> Result<Arc<Connection>, DbErr> {
        if let Some(connection) = lock(self.connections.get_or_default()).as_ref()
            && !connection.client.is_closed()
        {
            return Ok(connection.clone());
        }
        // While the server refuses connections (a restart), tried again until the acquire
        // time-out, as the pooled reads do; then the last refusal is the answer.
        let deadline = tokio::time::Instant::now() + self.acquire_timeout;
        let mut pause = Duration::from_millis(10);
        let opened = loop {
            let error = match tokio::time::timeout_at(deadline, self.config.connect(NoTls)).await {
                Err(_) => return Err(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)),
                Ok(Ok(opened)) => break opened,
                Ok(Err(error)) => error,
            };
            if tokio::time::Instant::now() + pause >= deadline {
                return Err(DbErr::Conn(RuntimeErr::Internal(format!(
                    "opening a read connection: {error}"
                ))));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(250));
        };
        let (client, driver) = opened;
        tokio::spawn(async move {
            if let Err(error) = driver.await {
                tracing::debug!("a read connection ended: {error}");
            }
        });
        let connection = Arc::new(Connection {
            client,
            prepared: Mutex::default(),
        });
        // On this thread's slot (the task may have moved on a multi-threaded runtime: then
        // that thread's; either serves).
        *lock(self.connections.get_or_default()) = Some(connection.clone());
        Ok(connection)
    }

    /// Drops `connection` from this thread's slot (if it is still there).
    fn forget(&self, connection: &Arc<Connection>) {
        let mut slot = lock(self.connections.get_or_default());
        if slot
            .as_ref()
            .is_some_and(|held| Arc::ptr_eq(held, connection))
        {
            *slot = None;
        }
    }
}

impl Pipelined {
    /// Closes every thread's connection (tokio-postgres says goodbye to the server when its
    /// client goes); reads after it go the pooled way.
    pub(crate) fn close(&self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        for slot in self.connections.iter() {
            lock(slot).take();
        }
    }
}

/// A lock that a panic elsewhere does not spoil (what it guards stays consistent).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Connection {
    /// Forgets the statement prepared for `sql` (the next read prepares it again).
    fn unprepare(&self, sql: &str) {
        lock(&self.prepared).remove(sql);
    }

    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let known = lock(&self.prepared).get(sql).cloned();
        let statement = match known {
            Some(statement) => statement,
            None => {
                let statement = self.client.prepare(sql).await?;
                lock(&self.prepared).insert(sql.to_owned(), statement.clone());
                statement
            }
        };
        self.client.query(&statement, params).await
    }
}

/// Whether every host of `config` is this machine (a loopback address, `localhost` or a Unix
/// socket).
fn is_local(config: &tokio_postgres::Config) -> bool {
    use tokio_postgres::config::Host;
    !config.get_hosts().is_empty()
        && config.get_hosts().iter().all(|host| match host {
            Host::Tcp(name) => {
                name == "localhost"
                    || name
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|address| address.is_loopback())
            }
            #[cfg(unix)]
            Host::Unix(_) => true,
        })
        && config
            .get_hostaddrs()
            .iter()
            .all(|address| address.is_loopback())
}

/// `statement`'s values bound for tokio-postgres, or `None` if one is of another type than
/// integers (`u64`, as SeaORM binds `LIMIT`, as `int8`) and text.
fn params(statement: &Statement) -> Option<Vec<Param>> {
    let Some(values) = &statement.values else {
        return Some(Vec::new());
    };
    values
        .0
        .iter()
        .map(|value| -> Option<Param> {
            Some(match value {
                Value::BigInt(value) => Box::new(*value),
                Value::Int(value) => Box::new(*value),
                Value::BigUnsigned(value) => Box::new(match value {
                    Some(value) => Some(i64::try_from(*value).ok()?),
                    None => None,
                }),
                Value::String(value) => Box::new(value.clone()),
                _ => return None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::DbBackend;

    #[test]
    fn integers_and_text_are_bound_other_values_are_not() {
        let statement = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT $1, $2, $3, $4",
            [
                7i64.into(),
                3i32.into(),
                21u64.into(),
                Value::String(Some("uploaded".to_owned())),
            ],
        );
        assert_eq!(params(&statement).map(|params| params.len()), Some(4));
        let too_big =
            Statement::from_sql_and_values(DbBackend::Postgres, "SELECT $1", [u64::MAX.into()]);
        assert!(params(&too_big).is_none());
        let other = Statement::from_sql_and_values(DbBackend::Postgres, "SELECT $1", [true.into()]);
        assert!(params(&other).is_none());
        let none = Statement::from_string(DbBackend::Postgres, "SELECT 1");
        assert_eq!(params(&none).map(|params| params.len()), Some(0));
    }

    #[test]
    fn urls_that_need_tls_or_unknown_options_stay_pooled() {
        let settings = DatabaseSettings::for_url("postgres://u@127.0.0.1:1/db");
        let instruments = || Instruments {
            slow: None,
            observer: None,
        };
        assert!(Pipelined::new("postgres://u@127.0.0.1:1/db", &settings, instruments()).is_some());
        assert!(
            Pipelined::new(
                "postgres://u@127.0.0.1:1/db?sslmode=disable",
                &settings,
                instruments()
            )
            .is_some()
        );
        assert!(
            Pipelined::new(
                "postgres://u@127.0.0.1:1/db?sslmode=require",
                &settings,
                instruments()
            )
            .is_none()
        );
        for remote in [
            "postgres://u@db.example.com:5432/db",
            "postgres://u@10.0.0.5/db?sslmode=prefer",
        ] {
            assert!(Pipelined::new(remote, &settings, instruments()).is_none());
        }
        assert!(
            Pipelined::new(
                "postgres://u@db.example.com/db?sslmode=disable",
                &settings,
                instruments()
            )
            .is_some()
        );
        assert!(Pipelined::new("postgres://u@localhost/db", &settings, instruments()).is_some());
        assert!(
            Pipelined::new(
                "postgres://u@127.0.0.1:1/db?statement-cache-capacity=10",
                &settings,
                instruments()
            )
            .is_none()
        );
    }
}

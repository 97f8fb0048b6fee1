//! The migration CLI as an operator runs it: a real process per command, on SQLite, and on
//! PostgreSQL / MariaDB at `AISTORY_TEST_POSTGRES_URL` / `AISTORY_TEST_MYSQL_URL`, else at the
//! standard local URLs. A server that cannot be reached has its tests reported as ignored
//! (this binary has its own harness, below); under CI=true they fail.
//! Each test creates and drops its own database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};
use std::time::Duration;

use sea_orm_migration::sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DbBackend, Statement, TransactionTrait,
};

const BIN: &str = env!("CARGO_BIN_EXE_migration");

/// This binary's own harness (`harness = false`, libtest-mimic): each server is looked for once,
/// and a test whose server cannot be reached is reported as ignored (failed under CI=true),
/// so the summary line counts it.
fn main() {
    let args = libtest_mimic::Arguments::from_args();
    let unreachable: std::collections::BTreeMap<&str, String> =
        ["AISTORY_TEST_POSTGRES_URL", "AISTORY_TEST_MYSQL_URL"]
            .into_iter()
            .filter_map(|variable| Some((variable, block_on(probe(variable)).err()?)))
            .collect();
    // A test needs the server its name ends with.
    let needs = |name: &str| match name.rsplit('_').next() {
        Some("postgres") => Some("AISTORY_TEST_POSTGRES_URL"),
        Some("mysql") => Some("AISTORY_TEST_MYSQL_URL"),
        _ => None,
    };
    let tests: [(&str, fn()); 15] = [
        ("every_command_on_sqlite", || {
            block_on(every_command_on_sqlite())
        }),
        ("every_command_on_postgres", || {
            block_on(every_command_on_postgres())
        }),
        ("every_command_on_mysql", || {
            block_on(every_command_on_mysql())
        }),
        ("newer_and_out_of_order_migrations_on_sqlite", || {
            block_on(newer_and_out_of_order_migrations(None))
        }),
        ("newer_and_out_of_order_migrations_on_postgres", || {
            block_on(newer_and_out_of_order_migrations(Some(
                "AISTORY_TEST_POSTGRES_URL",
            )))
        }),
        (
            "a_blocked_migration_gives_up_without_stopping_traffic_postgres",
            || block_on(a_blocked_migration_gives_up_without_stopping_traffic()),
        ),
        ("sql_prints_and_changes_nothing_on_sqlite", || {
            block_on(sql_prints_and_changes_nothing(None))
        }),
        ("sql_prints_and_changes_nothing_on_postgres", || {
            block_on(sql_prints_and_changes_nothing(Some(
                "AISTORY_TEST_POSTGRES_URL",
            )))
        }),
        ("sql_prints_and_changes_nothing_on_mysql", || {
            block_on(sql_prints_and_changes_nothing(Some(
                "AISTORY_TEST_MYSQL_URL",
            )))
        }),
        (
            "sql_renders_offline_for_each_backend",
            sql_renders_offline_for_each_backend,
        ),
        ("newer_and_out_of_order_migrations_on_mysql", || {
            block_on(newer_and_out_of_order_migrations(Some(
                "AISTORY_TEST_MYSQL_URL",
            )))
        }),
        ("four_concurrent_ups_on_postgres", || {
            block_on(four_concurrent_ups_on_postgres())
        }),
        ("four_concurrent_ups_on_mysql", || {
            block_on(four_concurrent_ups_on_mysql())
        }),
        (
            "production_refuses_destructive_commands_without_yes",
            production_refuses_destructive_commands_without_yes,
        ),
        (
            "generate_writes_and_registers_from_any_directory",
            generate_writes_and_registers_from_any_directory,
        ),
    ];
    let trials = tests
        .into_iter()
        .map(|(name, test)| {
            let why = needs(name).and_then(|variable| unreachable.get(variable).cloned());
            let ignored = why.is_some() && !in_ci();
            libtest_mimic::Trial::test(name, move || match why {
                Some(why) => {
                    Err(format!("CI=true, and every backend must be tested: {why}").into())
                }
                None => {
                    test();
                    Ok(())
                }
            })
            .with_ignored_flag(ignored)
        })
        .collect();
    for why in unreachable.values() {
        eprintln!("note: tests on {why} are reported as ignored (CI=true: they fail)");
    }
    libtest_mimic::run(&args, trials).exit()
}

fn block_on<T>(test: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(test)
}

/// An admin connection that gives up after 3 s.
fn admin_options(admin_url: &str) -> ConnectOptions {
    let mut options = ConnectOptions::new(admin_url);
    options
        .connect_timeout(Duration::from_secs(3))
        .acquire_timeout(Duration::from_secs(3))
        .sqlx_logging(false);
    options
}

/// Whether the server named by `variable` (or the standard local one) answers, within 3 s.
async fn probe(variable: &str) -> Result<(), String> {
    let admin_url = admin_url(variable);
    match Database::connect(admin_options(&admin_url)).await {
        Ok(admin) => {
            admin.close().await.ok();
            Ok(())
        }
        Err(error) => Err(format!(
            "{} ({variable}), which cannot be reached: {error}",
            without_credentials(&admin_url)
        )),
    }
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
}

/// The admin URL named by `variable`, else the standard local server's.
fn admin_url(variable: &str) -> String {
    match std::env::var(variable) {
        Ok(url) if !url.trim().is_empty() => url,
        _ if variable.contains("MYSQL") => "mysql://root@127.0.0.1:3306/mysql".to_owned(),
        _ => "postgres://postgres@127.0.0.1:5432/postgres".to_owned(),
    }
}

/// `url` without its user and password (for messages).
fn without_credentials(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// A database for one test; dropped at the end.
struct Scratch {
    url: String,
    admin: Option<(String, String)>,
    _dir: Option<std::path::PathBuf>,
}

impl Scratch {
    async fn new(variable: Option<&str>) -> Option<Scratch> {
        let name = format!(
            "aistory_cli_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let Some(variable) = variable else {
            let dir = std::env::temp_dir().join(&name);
            std::fs::create_dir_all(&dir).unwrap();
            return Some(Scratch {
                url: format!("sqlite://{}?mode=rwc", dir.join("cli.db").display()),
                admin: None,
                _dir: Some(dir),
            });
        };
        let admin_url = admin_url(variable);
        let admin = match Database::connect(admin_options(&admin_url)).await {
            Ok(admin) => admin,
            Err(error) => {
                let why = format!(
                    "{} ({variable}) cannot be reached: {error}",
                    without_credentials(&admin_url)
                );
                assert!(!in_ci(), "CI=true, and every backend must be tested: {why}");
                eprintln!("skipped: {why}");
                return None;
            }
        };
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        admin.close().await.ok();
        let base = admin_url.rsplit_once('/').map(|(base, _)| base).unwrap();
        Some(Scratch {
            url: format!("{base}/{name}"),
            admin: Some((admin_url, name)),
            _dir: None,
        })
    }

    fn run(&self, args: &[&str]) -> Output {
        let output = Command::new(BIN)
            .args(args)
            .env("DATABASE_URL", &self.url)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "migration {args:?} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    fn stdout(&self, args: &[&str]) -> String {
        String::from_utf8(self.run(args).stdout).unwrap()
    }

    /// Runs a command that must fail, with `env` set; returns what it printed on stderr.
    fn refused(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let output = Command::new(BIN)
            .args(args)
            .env("DATABASE_URL", &self.url)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(
            !output.status.success(),
            "migration {args:?} should have failed:\n{}",
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8(output.stderr).unwrap()
    }

    /// Every table, column and index of the database, and the rows of `seaql_migrations`, as
    /// sorted text: what `--sql` must leave as it found.
    async fn schema_objects(&self) -> Vec<String> {
        let db = Database::connect(self.url.as_str()).await.unwrap();
        let backend = db.get_database_backend();
        let sql = match backend {
            DbBackend::Postgres => {
                "SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type AS o \
                 FROM information_schema.columns WHERE table_schema = current_schema() \
                 UNION ALL SELECT 'index ' || tablename || ' ' || indexdef FROM pg_indexes \
                 WHERE schemaname = current_schema() \
                 UNION ALL SELECT 'applied ' || version FROM seaql_migrations"
            }
            DbBackend::MySql => {
                "SELECT CONCAT('column ', table_name, '.', column_name, ' ', column_type) AS o \
                 FROM information_schema.columns WHERE table_schema = DATABASE() \
                 UNION ALL SELECT CONCAT('index ', table_name, ' ', index_name, ' ', column_name) \
                 FROM information_schema.statistics WHERE table_schema = DATABASE() \
                 UNION ALL SELECT CONCAT('applied ', version) FROM seaql_migrations"
            }
            _ => {
                "SELECT type || ' ' || name || ' ' || coalesce(sql, '') AS o FROM sqlite_master \
                 UNION ALL SELECT 'applied ' || version FROM seaql_migrations"
            }
        };
        let rows = db
            .query_all_raw(Statement::from_string(backend, sql))
            .await
            .unwrap();
        let mut objects: Vec<String> = rows
            .iter()
            .map(|row| row.try_get::<String>("", "o").unwrap())
            .collect();
        objects.sort();
        db.close().await.ok();
        assert!(objects.len() > 10, "{objects:?}");
        objects
    }

    /// Runs `sql` on the database itself (what another release or a person would do).
    async fn execute(&self, sql: &str) {
        let db = Database::connect(self.url.as_str()).await.unwrap();
        db.execute_unprepared(sql).await.unwrap();
        db.close().await.ok();
    }

    async fn drop_database(self) {
        if let Some((admin_url, name)) = &self.admin {
            let admin = Database::connect(admin_url.as_str()).await.unwrap();
            let force = if admin_url.starts_with("postgres") {
                " WITH (FORCE)"
            } else {
                ""
            };
            admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}{force}"))
                .await
                .unwrap();
            admin.close().await.ok();
        }
        if let Some(dir) = &self._dir {
            std::fs::remove_dir_all(dir).ok();
        }
    }
}

async fn every_command(variable: Option<&str>) {
    let Some(db) = Scratch::new(variable).await else {
        return;
    };
    let names = migration::migration_names();
    let n = names.len();
    let status = db.stdout(&["status"]);
    assert!(
        status.contains(&format!("0 applied, {n} pending")),
        "{status}"
    );

    let up = db.stdout(&["up", "-n", "1"]);
    assert!(
        up.contains("applied     m20261125_000001_create_users"),
        "{up}"
    );
    let up = db.stdout(&["up"]);
    assert!(up.contains("m20261125_000002_create_photos"), "{up}");
    assert!(
        db.stdout(&["status"])
            .contains(&format!("{n} applied, 0 pending"))
    );

    let down = db.stdout(&["down", "-n", "1"]);
    assert!(
        down.contains(&format!("rolled back {}", names[n - 1])),
        "{down}"
    );
    assert!(
        db.stdout(&["status"])
            .contains(&format!("{} applied, 1 pending", n - 1))
    );

    let to = db.stdout(&["to", "m20261125_000001"]);
    assert!(
        to.contains("rolled back m20261125_000002_create_photos"),
        "{to}"
    );
    assert!(
        db.stdout(&["status"])
            .contains(&format!("1 applied, {} pending", n - 1))
    );
    let to = db.stdout(&["to", "base"]);
    assert!(
        to.contains("rolled back m20261125_000001_create_users"),
        "{to}"
    );
    let to = db.stdout(&["to", "head"]);
    assert!(
        to.contains("applied     m20261125_000002_create_photos"),
        "{to}"
    );

    assert!(
        db.stdout(&["refresh"])
            .contains(&format!("re-applied all {n} migrations"))
    );
    assert!(
        db.stdout(&["fresh"])
            .contains(&format!("re-applied all {n} migrations"))
    );
    let reset = db.stdout(&["reset"]);
    assert!(
        reset.contains("rolled back m20261125_000001_create_users"),
        "{reset}"
    );
    assert!(
        db.stdout(&["status"])
            .contains(&format!("0 applied, {n} pending"))
    );

    // A revision that does not exist is refused with the known ones listed.
    let output = Command::new(BIN)
        .args(["to", "m1999"])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("m20261125_000001_create_users"), "{stderr}");
    db.drop_database().await;
}

/// What a rolling deploy and a late-merged branch look like to the CLI: a migration applied by
/// a newer release is listed and left alone (never an error), a rollback beneath it is
/// refused, and a pending migration older than the newest applied one is flagged, applied in
/// production only with `--allow-out-of-order`.
async fn newer_and_out_of_order_migrations(variable: Option<&str>) {
    let Some(db) = Scratch::new(variable).await else {
        return;
    };
    let n = migration::migration_names().len();
    db.stdout(&["up"]);
    let newer = "m20991231_000000_from_a_newer_release";
    db.execute(&format!(
        "INSERT INTO seaql_migrations (version, applied_at) VALUES ('{newer}', 0)"
    ))
    .await;

    let status = db.stdout(&["status"]);
    assert!(
        status.contains(&format!("applied  {newer} (not in this build")),
        "{status}"
    );
    assert!(
        status.contains(&format!(
            "{n} applied, 0 pending, 1 applied but not in this build"
        )),
        "{status}"
    );
    let up = db.stdout(&["up"]);
    assert!(up.contains("nothing to do"), "{up}");
    assert!(up.contains(&format!("left alone  {newer}")), "{up}");
    let down = db.refused(&["down"], &[]);
    assert!(
        down.contains("does not know") && down.contains(newer),
        "{down}"
    );
    assert!(
        db.stdout(&["status"])
            .contains(&format!("{n} applied, 0 pending"))
    );

    // A branch merged late: jobs (000004) pending while stories (000005) is recorded applied.
    db.execute(&format!(
        "DELETE FROM seaql_migrations WHERE version = '{newer}'"
    ))
    .await;
    db.stdout(&["to", "m20261125_000003"]);
    db.execute(
        "INSERT INTO seaql_migrations (version, applied_at) \
         VALUES ('m20261125_000005_create_stories', 0)",
    )
    .await;
    let status = db.stdout(&["status"]);
    assert!(
        status.contains(
            "pending (out of order: older than the newest applied migration) \
             m20261125_000004_create_jobs"
        ),
        "{status}"
    );
    let production = [("AISTORY_ENVIRONMENT", "production")];
    let refused = db.refused(&["up", "-n", "1"], &production);
    assert!(
        refused.contains("m20261125_000004_create_jobs")
            && refused.contains("--allow-out-of-order"),
        "{refused}"
    );
    let output = Command::new(BIN)
        .args(["up", "-n", "1", "--allow-out-of-order"])
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .envs(production)
        .output()
        .unwrap();
    let up = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{up}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        up.contains("applied     m20261125_000004_create_jobs (out of order"),
        "{up}"
    );
    db.drop_database().await;
}

/// PostgreSQL, the classic outage: a session keeps a transaction open after reading `photos`
/// (ACCESS SHARE); the pending migration drops an index of `photos`, which needs ACCESS
/// EXCLUSIVE, like an `ALTER TABLE`, and waits; every later read and write of `photos` queues
/// behind it. With the lock time-out the migration gives up within it (and its retries),
/// naming the lock, and other sessions' reads and writes wait at most about one time-out.
async fn a_blocked_migration_gives_up_without_stopping_traffic() {
    let Some(db) = Scratch::new(Some("AISTORY_TEST_POSTGRES_URL")).await else {
        return;
    };
    // The page indexes (CREATE INDEX on photos, which waits for writers) left to apply.
    db.stdout(&["to", "m20261125_000005"]);
    let before = db.stdout(&["status"]);
    let holder = Database::connect(db.url.as_str()).await.unwrap();
    let holding = holder.begin().await.unwrap();
    holding
        .execute_unprepared("SELECT count(*) FROM photos")
        .await
        .unwrap();

    // Two other sessions: one writes to photos (a ROW EXCLUSIVE lock, as an INSERT takes), one
    // reads it, each timing its statements, until the migration has given up. Separate
    // sessions: a write queued behind the migration must not keep the reads from being sent.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = |write: bool| {
        let (url, done) = (db.url.clone(), done.clone());
        tokio::spawn(async move {
            let session = Database::connect(url.as_str()).await.unwrap();
            let mut slowest = Duration::ZERO;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let started = std::time::Instant::now();
                if write {
                    let txn = session.begin().await.unwrap();
                    txn.execute_unprepared("LOCK TABLE photos IN ROW EXCLUSIVE MODE")
                        .await
                        .unwrap();
                    txn.commit().await.unwrap();
                } else {
                    session
                        .execute_unprepared("SELECT count(*) FROM photos")
                        .await
                        .unwrap();
                }
                slowest = slowest.max(started.elapsed());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            slowest
        })
    };
    let (writes, reads) = (traffic(true), traffic(false));
    let url = db.url.clone();
    let started = std::time::Instant::now();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["up"])
            .env("DATABASE_URL", url)
            .env("RUST_LOG", "warn")
            .env("AISTORY_MIGRATION_LOCK_TIMEOUT_SECS", "1")
            .env("AISTORY_MIGRATION_LOCK_RETRIES", "1")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let took = started.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (slowest_write, slowest_read) = (writes.await.unwrap(), reads.await.unwrap());
    holding.rollback().await.ok();
    holder.close().await.ok();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "the migration went through: {stderr}"
    );
    assert!(
        stderr.contains("gave up waiting for a lock (2 tries, each waiting at most 1 s")
            && stderr.contains("photos is locked (AccessShareLock) by session"),
        "{stderr}"
    );
    // Two waits of 1 s and a pause of 2 s between them, with room for process start-up.
    assert!(took < Duration::from_secs(10), "took {took:?}");
    // Reads did queue behind the waiting migration (else this proves nothing), and reads and
    // writes waited at most about one time-out.
    assert!(
        slowest_read > Duration::from_millis(300),
        "no read was ever blocked: {slowest_read:?}"
    );
    assert!(
        slowest_write < Duration::from_millis(1500),
        "a write waited {slowest_write:?}"
    );
    assert!(
        slowest_read < Duration::from_millis(1500),
        "a read waited {slowest_read:?}"
    );
    eprintln!(
        "blocked migration: gave up after {took:?}; slowest write {slowest_write:?}, slowest read {slowest_read:?}"
    );
    assert_eq!(db.stdout(&["status"]), before, "nothing was applied");
    db.drop_database().await;
}

/// `--sql` prints the SQL of up, down and to, and changes nothing: the bookkeeping and the
/// tables are the same before and after.
async fn sql_prints_and_changes_nothing(variable: Option<&str>) {
    let Some(db) = Scratch::new(variable).await else {
        return;
    };
    db.stdout(&["to", "m20261125_000003"]);
    let before = db.stdout(&["status"]);
    let schema_before = db.schema_objects().await;
    let up = db.stdout(&["--sql", "up"]);
    assert!(up.contains("-- apply m20261125_000004_create_jobs"), "{up}");
    assert!(up.contains("CREATE TABLE") && up.contains("jobs"), "{up}");
    assert!(
        up.contains("seaql_migrations") && up.contains("m20261125_234326_page_indexes"),
        "{up}"
    );
    let down = db.stdout(&["--sql", "down", "-n", "1"]);
    assert!(
        down.contains("-- roll back m20261125_000003_create_refresh_tokens")
            && down.contains("DROP TABLE"),
        "{down}"
    );
    let to = db.stdout(&["--sql", "to", "base"]);
    assert!(
        to.contains("-- roll back m20261125_000001_create_users"),
        "{to}"
    );
    assert_eq!(
        db.stdout(&["status"]),
        before,
        "--sql changed the bookkeeping"
    );
    // The schema is as it was: every table, column and index, and the bookkeeping rows.
    assert_eq!(
        db.schema_objects().await,
        schema_before,
        "--sql changed the schema"
    );
    let conn = Database::connect(db.url.as_str()).await.unwrap();
    conn.execute_unprepared("SELECT count(*) FROM refresh_tokens")
        .await
        .unwrap();
    assert!(
        conn.execute_unprepared("SELECT count(*) FROM jobs")
            .await
            .is_err(),
        "--sql created the jobs table"
    );
    conn.close().await.ok();
    db.drop_database().await;
}

/// `--sql --backend` needs no database at all.
fn sql_renders_offline_for_each_backend() {
    for (backend, quote) in [("postgres", '"'), ("mysql", '`'), ("sqlite", '"')] {
        let output = Command::new(BIN)
            .args(["--sql", "--backend", backend, "up"])
            .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
            .output()
            .unwrap();
        let sql = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{backend}: {sql}");
        assert!(
            sql.contains(&format!("CREATE TABLE {quote}users{quote}")),
            "{backend}: {sql}"
        );
        assert!(!sql.contains("CANNOT RENDER"), "{backend}: {sql}");
    }
}

async fn four_concurrent_processes(variable: &str) {
    let Some(db) = Scratch::new(Some(variable)).await else {
        return;
    };
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(BIN)
                .arg("up")
                .env("DATABASE_URL", &db.url)
                .env("RUST_LOG", "warn")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut applied_lines = 0;
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "a concurrent `up` failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        applied_lines += String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|line| line.starts_with("applied "))
            .count();
    }
    // Each migration was applied by exactly one of the four processes.
    assert_eq!(applied_lines, migration::migration_names().len());
    let n = migration::migration_names().len();
    assert!(
        db.stdout(&["status"])
            .contains(&format!("{n} applied, 0 pending"))
    );
    db.drop_database().await;
}

async fn every_command_on_sqlite() {
    every_command(None).await;
}

async fn every_command_on_postgres() {
    every_command(Some("AISTORY_TEST_POSTGRES_URL")).await;
}

async fn every_command_on_mysql() {
    every_command(Some("AISTORY_TEST_MYSQL_URL")).await;
}

async fn four_concurrent_ups_on_postgres() {
    four_concurrent_processes("AISTORY_TEST_POSTGRES_URL").await;
}

async fn four_concurrent_ups_on_mysql() {
    four_concurrent_processes("AISTORY_TEST_MYSQL_URL").await;
}

fn production_refuses_destructive_commands_without_yes() {
    let output = Command::new(BIN)
        .args(["reset"])
        .env("AISTORY_ENVIRONMENT", "production")
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--yes"), "{stderr}");
}

fn generate_writes_and_registers_from_any_directory() {
    let dir = std::env::temp_dir().join(format!("aistory-cli-generate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lib = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs");
    std::fs::copy(lib, dir.join("lib.rs")).unwrap();
    let output = Command::new(BIN)
        .current_dir(std::env::temp_dir())
        .args(["generate", "add_photo_rating", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let created: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().to_string())
        .filter(|name| name.ends_with("_add_photo_rating.rs"))
        .collect();
    assert_eq!(created.len(), 1, "{created:?}");
    let module = created[0].trim_end_matches(".rs");
    let registered = std::fs::read_to_string(dir.join("lib.rs")).unwrap();
    assert!(registered.contains(&format!("mod {module};")));
    assert!(registered.contains(&format!("Box::new({module}::Migration),")));
    std::fs::remove_dir_all(&dir).ok();
}

//! The guide's database utilities and environments: init_db, verify_database_connection,
//! close_db_connection, create_database_tables, and start-up behaviour per environment.

use std::time::{Duration, Instant};

use aistory_tests::{Backend, TestDatabase, backend_tests, e2e_tests, test_settings};
use api::{create_database_tables, init_db};
use service::{DbError, verify_database_connection};
use settings::{DatabaseSettings, Environment};

backend_tests!(
    development_and_testing_create_the_tables,
    production_refuses_pending_migrations_and_changes_nothing,
    production_starts_when_migrated,
    verify_and_close,
    server_start_in_production_lists_pending_migrations,
    a_newer_releases_migration_does_not_stop_start_up,
);
e2e_tests!(
    an_unreachable_database_fails_fast_with_a_useful_message,
    an_unopenable_sqlite_file_fails_with_a_useful_message,
    environments_pick_their_database,
);

async fn development_and_testing_create_the_tables(backend: Backend) {
    for environment in [Environment::Development, Environment::Testing] {
        let database = TestDatabase::create(backend).await;
        let settings = test_settings(&database);
        let db = init_db(&settings.database, environment).await.unwrap();
        assert!(migration::pending_migrations(&db).await.unwrap().is_empty());
        // Running it again is a no-op.
        let applied = create_database_tables(&db, &settings.database, environment)
            .await
            .unwrap();
        assert!(applied.is_empty());
        service::close_db_connection(db).await.unwrap();
    }
}

async fn production_refuses_pending_migrations_and_changes_nothing(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    if backend == Backend::Sqlite {
        // Each in-memory connection is a new empty database; use a file to observe the schema.
        return production_on_sqlite_file().await;
    }
    let settings = test_settings(&database);
    match init_db(&settings.database, Environment::Production).await {
        Err(DbError::PendingMigrations(pending)) => {
            assert_eq!(pending, migration::migration_names());
            let message = DbError::PendingMigrations(pending).to_string();
            assert!(
                message.contains("cargo run -p migration -- up"),
                "{message}"
            );
        }
        other => panic!("expected pending migrations, got {:?}", other.map(|_| ())),
    }
    let db = database.connect().await;
    assert!(
        schema::inspect(&db).await.unwrap().tables.is_empty(),
        "production changed the schema"
    );
    match create_database_tables(&db, &settings.database, Environment::Production).await {
        Err(DbError::Refused(message)) => assert!(message.contains("production"), "{message}"),
        other => panic!("create_database_tables ran in production: {other:?}"),
    }
}

async fn production_on_sqlite_file() {
    let dir = std::env::temp_dir().join(format!("aistory-prod-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("prod.db").display());
    let settings = DatabaseSettings::for_url(url);
    let result = init_db(&settings, Environment::Production).await;
    assert!(matches!(result, Err(DbError::PendingMigrations(_))));
    let db = service::db::connect(&settings).await.unwrap();
    assert!(schema::inspect(&db).await.unwrap().tables.is_empty());
    db.close().await.ok();
    std::fs::remove_dir_all(&dir).ok();
}

/// Settings for `database`; on SQLite a file instead of memory (an in-memory database is
/// new on every connection, so what one start-up migrated the next would not see). The
/// returned guard removes the file.
fn durable_settings(database: &TestDatabase) -> (settings::Settings, Option<SqliteFile>) {
    let mut settings = test_settings(database);
    if database.backend != Backend::Sqlite {
        return (settings, None);
    }
    let file = SqliteFile::new();
    settings.database.url = file.url();
    (settings, Some(file))
}

/// A SQLite database file in a scratch directory, removed when dropped.
struct SqliteFile(std::path::PathBuf);

impl SqliteFile {
    fn new() -> SqliteFile {
        let dir = std::env::temp_dir().join(format!("aistory-db-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        SqliteFile(dir)
    }

    fn url(&self) -> String {
        format!("sqlite://{}?mode=rwc", self.0.join("aistory.db").display())
    }
}

impl Drop for SqliteFile {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

async fn production_starts_when_migrated(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let (settings, _file) = durable_settings(&database);
    let db = init_db(&settings.database, Environment::Testing)
        .await
        .unwrap();
    db.close().await.ok();
    let db = init_db(&settings.database, Environment::Production)
        .await
        .unwrap();
    verify_database_connection(&db, Duration::from_secs(2))
        .await
        .unwrap();
    db.close().await.ok();
}

async fn verify_and_close(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let settings = test_settings(&database);
    let db = init_db(&settings.database, Environment::Testing)
        .await
        .unwrap();
    verify_database_connection(&db, Duration::from_secs(2))
        .await
        .unwrap();
    let handle = db.clone();
    service::close_db_connection(db).await.unwrap();
    assert!(
        verify_database_connection(&handle, Duration::from_secs(2))
            .await
            .is_err()
    );
}

async fn server_start_in_production_lists_pending_migrations(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let (mut settings, _file) = durable_settings(&database);
    settings.environment = Environment::Production;
    match api::Application::build(&settings).await {
        Err(api::StartupError::Database(DbError::PendingMigrations(pending))) => {
            assert!(!pending.is_empty())
        }
        Err(other) => panic!("unexpected start-up error: {other}"),
        Ok(_) => panic!("the server started in production with pending migrations"),
    }
}

async fn an_unreachable_database_fails_fast_with_a_useful_message() {
    for url in [
        "postgres://postgres:secret@127.0.0.1:1/nowhere",
        "mysql://root:secret@127.0.0.1:1/nowhere",
    ] {
        let mut settings = DatabaseSettings::for_url(url);
        settings.connect_timeout = Duration::from_secs(1);
        settings.acquire_timeout = Duration::from_secs(1);
        let started = Instant::now();
        let result = init_db(&settings, Environment::Development).await;
        let elapsed = started.elapsed();
        let message = match result {
            Err(DbError::Connect(message)) => message,
            other => panic!(
                "expected a connection error for {url}, got {:?}",
                other.map(|_| ())
            ),
        };
        assert!(
            elapsed < Duration::from_secs(3),
            "took {elapsed:?} for {url}"
        );
        assert!(message.contains("127.0.0.1:1"), "{message}");
        assert!(message.contains("running"), "{message}");
        assert!(
            !message.contains("secret"),
            "the password leaked: {message}"
        );
    }
}

async fn an_unopenable_sqlite_file_fails_with_a_useful_message() {
    let settings = DatabaseSettings::for_url("sqlite:///nonexistent-dir/for/sure/x.db?mode=rwc");
    match init_db(&settings, Environment::Development).await {
        Err(DbError::Connect(message)) => assert!(message.contains("SQLite"), "{message}"),
        other => panic!("expected a connection error, got {:?}", other.map(|_| ())),
    }
}

async fn environments_pick_their_database() {
    let vars = |env: &'static str| {
        move |name: &str| match name {
            "AISTORY_ENVIRONMENT" => Some(env.to_owned()),
            "AISTORY_DATABASE_URL" => Some("postgres://h/generic".to_owned()),
            "AISTORY_DATABASE_URL_TEST" => Some("sqlite::memory:".to_owned()),
            _ => None,
        }
    };
    let testing = settings::Settings::from_lookup(vars("testing")).unwrap();
    assert_eq!(testing.database.url, "sqlite::memory:");
    let development = settings::Settings::from_lookup(vars("development")).unwrap();
    assert_eq!(development.database.url, "postgres://h/generic");
    // The testing environment's database really works end to end.
    let db = init_db(&testing.database, testing.environment)
        .await
        .unwrap();
    verify_database_connection(&db, Duration::from_secs(1))
        .await
        .unwrap();
}

/// A rolling deploy: a newer release has applied a migration this build does not know. Every
/// migration of this build is applied, so the server starts (production and development), the
/// newer one left alone; a migration of this build that is truly pending still refuses
/// production.
async fn a_newer_releases_migration_does_not_stop_start_up(backend: Backend) {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    use sea_orm_migration::seaql_migrations;

    let database = TestDatabase::create(backend).await;
    let (mut settings, _file) = durable_settings(&database);
    let db = init_db(&settings.database, Environment::Testing)
        .await
        .unwrap();
    let newer = "m20991231_000000_from_a_newer_release";
    seaql_migrations::Entity::insert(seaql_migrations::ActiveModel {
        version: sea_orm::ActiveValue::Set(newer.to_owned()),
        applied_at: sea_orm::ActiveValue::Set(0),
    })
    .exec(&db)
    .await
    .unwrap();
    let state = migration::schema_state(&db).await.unwrap();
    assert_eq!(state.unknown, vec![newer.to_owned()]);
    assert!(state.pending.is_empty(), "{state:?}");

    for environment in [Environment::Production, Environment::Development] {
        settings.environment = environment;
        let started = init_db(&settings.database, environment).await;
        assert!(started.is_ok(), "{environment:?}: {:?}", started.err());
        started.unwrap().close().await.ok();
        let server = api::Application::build(&settings).await;
        assert!(server.is_ok(), "{environment:?}: {:?}", server.err());
    }
    // The newer migration is still recorded, untouched.
    let state = migration::schema_state(&db).await.unwrap();
    assert_eq!(state.unknown, vec![newer.to_owned()]);

    // One of this build's own migrations pending (its row gone): production refuses.
    let last = migration::migration_names().pop().unwrap();
    seaql_migrations::Entity::delete_many()
        .filter(seaql_migrations::Column::Version.eq(last.as_str()))
        .exec(&db)
        .await
        .unwrap();
    match init_db(&settings.database, Environment::Production).await {
        Err(DbError::PendingMigrations(pending)) => assert_eq!(pending, vec![last]),
        other => panic!(
            "expected the pending migration, got {:?}",
            other.map(|_| ())
        ),
    }
    db.close().await.ok();
}

//! The migrations on every backend: up, down to nothing, up again, to a named revision in both
//! directions, concurrent runs, and the resulting schema against what the entities declare.

use aistory_tests::{Backend, TestDatabase, backend_tests};
use migration::{Migrator, MigratorTrait, Target, migrate_to, resolve_target};
use schema::create_tables_from_entities;
use schema::inspect::{SchemaDescription, inspect};
use sea_orm::{ConnectionTrait, Database};
use settings::DatabaseSettings;

backend_tests!(
    up_down_up_and_the_schema_matches_the_entities,
    migrate_to_a_named_revision_in_both_directions,
    four_concurrent_ups_apply_each_migration_once,
    the_schema_has_its_constraints,
    usernames_differing_only_in_case_stop_the_username_key_migration,
    photos_stored_before_thumbnails_get_a_thumbnail_job,
);

async fn up_down_up_and_the_schema_matches_the_entities(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let db = database.connect().await;

    Migrator::up(&db, None).await.unwrap();
    let migrated = inspect(&db).await.unwrap();
    assert!(migrated.tables.contains_key("users"), "{migrated:?}");
    assert!(migrated.tables.contains_key("photos"), "{migrated:?}");
    assert!(migration::pending_migrations(&db).await.unwrap().is_empty());

    // What the entities declare, built by SeaORM from the models on a second database.
    let entity_database = TestDatabase::create(backend).await;
    let entity_db = entity_database.connect().await;
    create_tables_from_entities(&entity_db).await.unwrap();
    let declared = inspect(&entity_db).await.unwrap();
    assert_same(
        &migrated.clone().without_checks(),
        &declared.without_checks(),
        "migrations vs entities",
    );

    Migrator::down(&db, Some(u32::MAX)).await.unwrap();
    let emptied = inspect(&db).await.unwrap();
    assert!(
        emptied.tables.is_empty(),
        "tables left after down: {emptied:?}"
    );
    assert_eq!(
        migration::pending_migrations(&db).await.unwrap(),
        migration::migration_names()
    );

    Migrator::up(&db, None).await.unwrap();
    assert_same(
        &inspect(&db).await.unwrap(),
        &migrated,
        "second up vs first up",
    );
}

fn assert_same(left: &SchemaDescription, right: &SchemaDescription, what: &str) {
    let differences = left.differences(right);
    assert!(
        differences.is_empty(),
        "{what} differ:\n{}",
        differences.join("\n")
    );
}

async fn migrate_to_a_named_revision_in_both_directions(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let db = database.connect().await;
    let names = migration::migration_names();

    let first = resolve_target(&names[0][..16]).unwrap();
    assert_eq!(first, Target::Revision(names[0].clone()));
    let moved = migrate_to(&db, &first).await.unwrap();
    assert_eq!(moved.applied, vec![names[0].clone()]);
    assert_eq!(
        migration::applied_migrations(&db).await.unwrap(),
        vec![names[0].clone()]
    );

    let moved = migrate_to(&db, &Target::Head).await.unwrap();
    assert_eq!(moved.applied, names[1..].to_vec());
    assert!(inspect(&db).await.unwrap().tables.contains_key("photos"));

    // Back down to the first revision: the later tables go, the first stays.
    let moved = migrate_to(&db, &first).await.unwrap();
    assert_eq!(
        moved.rolled_back,
        names[1..].iter().rev().cloned().collect::<Vec<_>>()
    );
    let schema = inspect(&db).await.unwrap();
    assert!(schema.tables.contains_key("users"));
    assert!(!schema.tables.contains_key("photos"));

    migrate_to(&db, &Target::Base).await.unwrap();
    assert!(migration::applied_migrations(&db).await.unwrap().is_empty());
    assert!(inspect(&db).await.unwrap().tables.is_empty());

    // Unknown and ambiguous revisions are refused with the list of known ones.
    let error = resolve_target("m1999").unwrap_err();
    assert!(error.contains(&names[0]), "{error}");
    assert!(resolve_target("m2026").unwrap_err().contains("several"));
}

async fn four_concurrent_ups_apply_each_migration_once(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    if backend == Backend::Sqlite {
        // An in-memory SQLite database exists on one connection only: nothing to race.
        return;
    }
    let settings = DatabaseSettings::for_url(database.url.clone());
    let mut runs = Vec::new();
    for _ in 0..4 {
        let options = migration::single_connection(settings.connect_options());
        runs.push(tokio::spawn(async move {
            let db = Database::connect(options).await.unwrap();
            let result = migration::with_migration_lock(&db, async |db| {
                let before = migration::pending_migrations(db).await?;
                Migrator::up(db, None).await?;
                Ok(before)
            })
            .await;
            db.close().await.ok();
            result
        }));
    }
    let mut applied_by_someone = 0;
    for run in runs {
        let pending_seen = run.await.unwrap().unwrap();
        applied_by_someone += pending_seen.len();
    }
    // Exactly one run saw (and applied) the pending migrations; the others found none.
    assert_eq!(applied_by_someone, migration::migration_names().len());
    let db = database.connect().await;
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT version FROM seaql_migrations",
        ))
        .await
        .unwrap();
    assert_eq!(rows.len(), migration::migration_names().len());
}

async fn the_schema_has_its_constraints(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let db = database.connect().await;
    Migrator::up(&db, None).await.unwrap();
    let schema = inspect(&db).await.unwrap();

    let users = &schema.tables["users"];
    let unique: Vec<_> = users
        .indexes
        .iter()
        .filter(|i| i.unique)
        .map(|i| i.columns.clone())
        .collect();
    assert!(unique.contains(&vec!["username".to_owned()]), "{users:?}");
    assert!(unique.contains(&vec!["email".to_owned()]), "{users:?}");

    let photos = &schema.tables["photos"];
    assert!(
        photos
            .indexes
            .iter()
            .any(|i| i.columns == ["status"] && !i.unique),
        "no index on photos.status: {photos:?}"
    );
    // A user's photos and stories: `(user_id, id)`, which pages read newest first (and which
    // serves every lookup by user_id, the foreign key's included).
    for table in ["photos", "stories"] {
        let table = &schema.tables[table];
        assert!(
            table
                .indexes
                .iter()
                .any(|i| i.columns == ["user_id", "id"] && !i.unique),
            "no (user_id, id) index: {table:?}"
        );
    }
    assert!(
        photos
            .indexes
            .iter()
            .any(|i| i.columns == ["object_key"] && i.unique)
    );
    let fk = photos
        .foreign_keys
        .iter()
        .next()
        .expect("photos has a foreign key");
    assert_eq!(fk.columns, ["user_id"]);
    assert_eq!(fk.references_table, "users");
    assert_eq!(fk.on_delete, "CASCADE");
    assert!(
        photos
            .checks
            .iter()
            .any(|c| c.contains("processing") && c.contains("status")),
        "no CHECK on photos.status: {photos:?}"
    );
    // Timestamps carry a time zone where the backend has such a type.
    let created = &users.columns["created_at"].data_type.to_lowercase();
    match backend {
        Backend::Postgres => assert_eq!(created, "timestamp with time zone"),
        Backend::MySql => assert_eq!(created, "utc timestamp"),
        Backend::Sqlite => assert!(created.contains("timezone"), "{created}"),
    }
}

/// `username_key` stops, naming them, on accounts whose usernames differ only in case (nothing
/// merged, nothing changed), and fills every other account.
async fn usernames_differing_only_in_case_stop_the_username_key_migration(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let db = database.connect().await;
    let before = Target::Revision("m20261201_131538_user_token_generation".to_owned());
    migrate_to(&db, &before).await.unwrap();
    let now = "2026-12-01 12:00:00";
    let insert = |name: &str, email: &str| {
        format!(
            "INSERT INTO users (username, email, password_hash, token_generation, created_at, \
             updated_at) VALUES ('{name}', '{email}', 'x', 0, '{now}', '{now}')"
        )
    };
    for (name, email) in [("Ada", "ada1@example.com"), ("Bob", "bob@example.com")] {
        db.execute_unprepared(&insert(name, email)).await.unwrap();
    }
    let twin = db
        .execute_unprepared(&insert("ada", "ada2@example.com"))
        .await;
    if backend == Backend::MySql {
        // MariaDB's default collation compares case-insensitively: the clash cannot exist.
        assert!(twin.is_err(), "MariaDB took a second `ada`");
        db.execute_unprepared(&insert("ada_two", "ada2@example.com"))
            .await
            .unwrap();
    } else {
        twin.unwrap();
        let refused = migrate_to(&db, &Target::Head)
            .await
            .unwrap_err()
            .to_string();
        assert!(refused.contains("differ only in case"), "{refused}");
        if backend == Backend::Postgres {
            assert!(
                refused.contains("differ only in case: ada."),
                "names them: {refused}"
            );
        }
        let applied = migration::applied_migrations(&db).await.unwrap();
        assert_eq!(
            applied.last().map(String::as_str),
            Some("m20261201_131538_user_token_generation")
        );
        // Renamed by an operator: the migration goes through.
        db.execute_unprepared("UPDATE users SET username = 'ada_two' WHERE username = 'ada'")
            .await
            .unwrap();
    }
    migrate_to(&db, &Target::Head).await.unwrap();
    let keys = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT username_key FROM users ORDER BY username_key",
        ))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get::<String>("", "username_key").unwrap())
        .collect::<Vec<_>>();
    assert_eq!(keys, ["ada", "ada_two", "bob"]);
}

/// `photo_thumbnails` queues a thumbnail job for each photo whose bytes were stored before it
/// (not for `pending` ones), which the application's queue reads and its job type parses.
async fn photos_stored_before_thumbnails_get_a_thumbnail_job(backend: Backend) {
    use sea_orm::{EntityTrait, QueryOrder};
    let database = TestDatabase::create(backend).await;
    let db = database.connect().await;
    let before = Target::Revision("m20261201_153000_photo_change_notify".to_owned());
    migrate_to(&db, &before).await.unwrap();
    let now = "2026-12-01 12:00:00";
    db.execute_unprepared(&format!(
        "INSERT INTO users (username, username_key, email, password_hash, token_generation, \
         created_at, updated_at) VALUES ('ada', 'ada', 'ada@example.com', 'x', 0, '{now}', '{now}')"
    ))
    .await
    .unwrap();
    for (key, status) in [("a", "uploaded"), ("b", "pending"), ("c", "completed")] {
        db.execute_unprepared(&format!(
            "INSERT INTO photos (user_id, object_key, status, created_at, updated_at) \
             SELECT id, 'users/1/photos/{key}.png', '{status}', '{now}', '{now}' FROM users"
        ))
        .await
        .unwrap();
    }
    let started = chrono::Utc::now();
    migrate_to(&db, &Target::Head).await.unwrap();

    let photos = entity::photo::Entity::find()
        .order_by_asc(entity::photo::Column::Id)
        .all(&db)
        .await
        .unwrap();
    assert!(
        photos
            .iter()
            .all(|photo| photo.thumbnail_status
                == entity::thumbnail_status::ThumbnailStatus::Pending)
    );
    let jobs = entity::job::Entity::find()
        .order_by_asc(entity::job::Column::Id)
        .all(&db)
        .await
        .unwrap();
    let mut queued: Vec<i64> = jobs
        .iter()
        .map(|job| {
            assert_eq!(job.kind, "photos.thumbnails");
            assert_eq!(job.status, entity::job::JobStatus::Queued);
            assert!(
                job.run_at >= started - chrono::Duration::seconds(1),
                "{job:?}"
            );
            assert!(job.run_at <= chrono::Utc::now(), "due now: {job:?}");
            serde_json::from_str::<service::photos::thumbnails::MakeThumbnails>(&job.payload)
                .unwrap()
                .photo_id
        })
        .collect();
    queued.sort_unstable();
    assert_eq!(
        queued,
        vec![photos[0].id, photos[2].id],
        "not the pending photo"
    );

    // Down: the column and the jobs that have not run go.
    migrate_to(&db, &before).await.unwrap();
    let left = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM jobs",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap();
    assert_eq!(left, 0);
}

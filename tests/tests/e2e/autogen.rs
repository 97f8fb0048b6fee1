//! Autogenerate: pairs of schemas that differ by one kind of change each. For every pair and
//! backend: plan the migration from the old schema (what the migrations built) to the new one
//! (what the entities declare), render it, check the source is the reviewed snapshot in
//! tests/snapshots/autogen (regenerate with UPDATE_SNAPSHOTS=1 and review the diff), then run
//! that very source, compiled into this binary ([`crate::generated`]): its `up` (no difference
//! remains), then its `down` (the old schema is back).

use aistory_tests::{Backend, TestDatabase, backend_tests, e2e_tests};
use schema::{Declared, inspect};
use sea_orm::sea_query::{
    Alias, ColumnDef, ForeignKey, ForeignKeyAction, Index, IndexCreateStatement, Table,
    TableCreateStatement,
};
use sea_orm_migration::SchemaManager;

backend_tests!(
    a_table_is_added,
    a_table_is_dropped,
    a_column_is_added,
    a_column_is_dropped,
    a_column_changes_type,
    a_column_changes_nullability,
    a_column_changes_default,
    a_column_becomes_unique,
    a_column_stops_being_unique,
    an_index_is_added,
    an_index_is_dropped,
    a_foreign_keys_index_is_replaced,
    a_foreign_key_is_added,
    a_foreign_key_is_dropped,
    a_rename_is_a_drop_and_an_add,
    the_real_entities_need_no_change
);
e2e_tests!(adding_a_field_to_a_real_entity_is_found_and_generated);

/// The books table and what can vary in it.
#[derive(Clone)]
struct Books {
    title_text: bool,
    title_unique: bool,
    pages: Option<&'static str>,
    pages_not_null: bool,
    status_default: &'static str,
    rating: bool,
    author_fk: bool,
    author_index: bool,
    /// `(author_id, id)` in place of the one-column index.
    author_id_id_index: bool,
    status_index: bool,
    reviews: bool,
}

impl Default for Books {
    fn default() -> Self {
        Books {
            title_text: false,
            title_unique: false,
            pages: Some("pages"),
            pages_not_null: false,
            status_default: "draft",
            rating: false,
            author_fk: true,
            author_index: true,
            author_id_id_index: false,
            status_index: false,
            reviews: false,
        }
    }
}

fn id() -> ColumnDef {
    ColumnDef::new(Alias::new("id"))
        .big_integer()
        .not_null()
        .auto_increment()
        .primary_key()
        .to_owned()
}

fn schema(books: &Books) -> Declared {
    let authors: TableCreateStatement = Table::create()
        .table(Alias::new("authors"))
        .col(id())
        .col(
            ColumnDef::new(Alias::new("name"))
                .string_len(100)
                .not_null(),
        )
        .to_owned();
    let mut table = Table::create();
    table.table(Alias::new("books")).col(id()).col(
        ColumnDef::new(Alias::new("author_id"))
            .big_integer()
            .not_null(),
    );
    let mut title = ColumnDef::new(Alias::new("title"));
    if books.title_text {
        title.text();
    } else {
        title.string_len(200);
    }
    title.not_null();
    if books.title_unique {
        title.unique_key();
    }
    table.col(title);
    if let Some(pages) = books.pages {
        let mut column = ColumnDef::new(Alias::new(pages));
        column.integer();
        if books.pages_not_null {
            column.not_null().default(0);
        } else {
            column.null();
        }
        table.col(column);
    }
    table.col(
        ColumnDef::new(Alias::new("status"))
            .string_len(16)
            .not_null()
            .default(books.status_default),
    );
    if books.rating {
        table.col(ColumnDef::new(Alias::new("rating")).small_integer().null());
    }
    if books.author_fk {
        table.foreign_key(
            ForeignKey::create()
                .name("fk-books-author_id")
                .from(Alias::new("books"), Alias::new("author_id"))
                .to(Alias::new("authors"), Alias::new("id"))
                .on_delete(ForeignKeyAction::Cascade)
                .on_update(ForeignKeyAction::NoAction),
        );
    }
    let mut indexes: Vec<(String, IndexCreateStatement)> = Vec::new();
    let index = |name: &str, table: &str, column: &str| -> (String, IndexCreateStatement) {
        (
            table.to_owned(),
            Index::create()
                .name(name)
                .table(Alias::new(table))
                .col(Alias::new(column))
                .to_owned(),
        )
    };
    if books.author_index {
        indexes.push(index("idx-books-author_id", "books", "author_id"));
    }
    if books.author_id_id_index {
        indexes.push((
            "books".to_owned(),
            Index::create()
                .name("idx-books-author_id-id")
                .table(Alias::new("books"))
                .col(Alias::new("author_id"))
                .col(Alias::new("id"))
                .to_owned(),
        ));
    }
    if books.status_index {
        indexes.push(index("idx-books-status", "books", "status"));
    }
    let mut tables = vec![authors, table.to_owned()];
    if books.reviews {
        tables.push(
            Table::create()
                .table(Alias::new("reviews"))
                .col(id())
                .col(
                    ColumnDef::new(Alias::new("book_id"))
                        .big_integer()
                        .not_null(),
                )
                .col(ColumnDef::new(Alias::new("body")).text().not_null())
                .col(
                    ColumnDef::new(Alias::new("created_at"))
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk-reviews-book_id")
                        .from(Alias::new("reviews"), Alias::new("book_id"))
                        .to(Alias::new("books"), Alias::new("id"))
                        .on_delete(ForeignKeyAction::Cascade)
                        .on_update(ForeignKeyAction::NoAction),
                )
                .to_owned(),
        );
        indexes.push(index("idx-reviews-book_id", "reviews", "book_id"));
    }
    Declared { tables, indexes }
}

/// Plans old -> new on `backend`, applies up and down, compares with the snapshot (SQLite).
/// `sqlite_refuses`: SQLite cannot do this in place, so `up` must fail saying why.
async fn round_trip(backend: Backend, name: &str, old: Books, new: Books, sqlite_refuses: bool) {
    let migrated_db = TestDatabase::create(backend).await;
    let declared_db = TestDatabase::create(backend).await;
    let migrated = migrated_db.connect().await;
    let declared = declared_db.connect().await;
    schema(&old).apply(&migrated).await.unwrap();
    let before = inspect(&migrated).await.unwrap().without_checks();
    let plan = schema::autogenerate(&migrated, &declared, &schema(&new))
        .await
        .unwrap();
    assert!(!plan.is_empty(), "{name}: no change found");
    let source = plan.render(&format!("{name}: {}", schema::summary(&plan)));
    // The reviewed snapshot is exactly what was rendered, and it is what runs below.
    let key = check_snapshot(name, backend, &source);
    let generated = crate::generated::migration(&key);
    let manager = SchemaManager::new(&migrated);
    if backend == Backend::Sqlite && sqlite_refuses {
        let error = generated.up(&manager).await.unwrap_err().to_string();
        assert!(error.contains("SQLite cannot"), "{name}: {error}");
        assert!(
            source.contains("DbBackend::Sqlite"),
            "{name}: the code must refuse too"
        );
    } else {
        generated
            .up(&manager)
            .await
            .unwrap_or_else(|e| panic!("{name}: up failed: {e}\n{source}"));
        let after = inspect(&migrated).await.unwrap().without_checks();
        let wanted = inspect(&declared).await.unwrap().without_checks();
        let left = after.differences_named(&wanted, "after up", "entities");
        assert!(left.is_empty(), "{name}: {left:#?}\n{source}");
        generated
            .down(&manager)
            .await
            .unwrap_or_else(|e| panic!("{name}: down failed: {e}\n{source}"));
        let back = inspect(&migrated).await.unwrap().without_checks();
        let left = back.differences_named(&before, "after down", "before");
        assert!(left.is_empty(), "{name}: {left:#?}\n{source}");
    }
    migrated.close().await.ok();
    declared.close().await.ok();
}

/// `source` as rustfmt writes it (what `schema generate` leaves on disk, and what `cargo fmt`
/// keeps the snapshots as: [`crate::generated`] includes them).
fn formatted(source: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("rustfmt")
        .args(["--edition", "2024"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("rustfmt (rustup component add rustfmt)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(source.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "rustfmt refused the generated code:\n{source}"
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Compares `source` (rendered on `backend`) with its reviewed snapshot and returns the
/// snapshot's key for [`crate::generated::migration`]. `NAME.rs.snap` is what SQLite renders;
/// a backend that reads a type back differently gets its own `NAME.BACKEND.rs.snap`.
fn check_snapshot(name: &str, backend: Backend, source: &str) -> String {
    let source = formatted(source);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots/autogen");
    let common = dir.join(format!("{name}.rs.snap"));
    let suffix = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some("postgres"),
        Backend::MySql => Some("mysql"),
    };
    let own = suffix.map(|suffix| dir.join(format!("{name}.{suffix}.rs.snap")));
    if std::env::var("UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1") {
        match &own {
            None => std::fs::write(&common, &source).unwrap(),
            Some(own) if std::fs::read_to_string(&common).ok().as_deref() == Some(&source) => {
                std::fs::remove_file(own).ok();
            }
            Some(own) => std::fs::write(own, &source).unwrap(),
        }
    }
    let (path, key) = match (&own, suffix) {
        (Some(own), Some(suffix)) if own.exists() => (own.clone(), format!("{name}_{suffix}")),
        _ => (common, name.to_owned()),
    };
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "no snapshot {}; run with UPDATE_SNAPSHOTS=1, review it, commit it.\n{source}",
            path.display()
        )
    });
    assert_eq!(
        source, expected,
        "{name} on {backend:?}: the generated source changed; if intended, UPDATE_SNAPSHOTS=1 and review"
    );
    key
}

async fn a_table_is_added(backend: Backend) {
    let new = Books {
        reviews: true,
        ..Books::default()
    };
    round_trip(backend, "add_table", Books::default(), new, false).await;
}

async fn a_table_is_dropped(backend: Backend) {
    let old = Books {
        reviews: true,
        ..Books::default()
    };
    round_trip(backend, "drop_table", old, Books::default(), false).await;
}

async fn a_column_is_added(backend: Backend) {
    let new = Books {
        rating: true,
        ..Books::default()
    };
    round_trip(backend, "add_column", Books::default(), new, false).await;
}

async fn a_column_is_dropped(backend: Backend) {
    let new = Books {
        pages: None,
        ..Books::default()
    };
    round_trip(backend, "drop_column", Books::default(), new, false).await;
}

async fn a_column_changes_type(backend: Backend) {
    let new = Books {
        title_text: true,
        ..Books::default()
    };
    round_trip(backend, "change_type", Books::default(), new, true).await;
}

async fn a_column_changes_nullability(backend: Backend) {
    let new = Books {
        pages_not_null: true,
        ..Books::default()
    };
    round_trip(backend, "change_nullability", Books::default(), new, true).await;
}

async fn a_column_changes_default(backend: Backend) {
    let new = Books {
        status_default: "new",
        ..Books::default()
    };
    round_trip(backend, "change_default", Books::default(), new, true).await;
}

async fn a_column_becomes_unique(backend: Backend) {
    let new = Books {
        title_unique: true,
        ..Books::default()
    };
    round_trip(backend, "add_unique", Books::default(), new, false).await;
}

async fn a_column_stops_being_unique(backend: Backend) {
    let old = Books {
        title_unique: true,
        ..Books::default()
    };
    round_trip(backend, "drop_unique", old, Books::default(), true).await;
}

async fn an_index_is_added(backend: Backend) {
    let new = Books {
        status_index: true,
        ..Books::default()
    };
    round_trip(backend, "add_index", Books::default(), new, false).await;
}

async fn an_index_is_dropped(backend: Backend) {
    // (Not the index on author_id: MySQL keeps an index on a foreign key's columns anyway.)
    let old = Books {
        status_index: true,
        ..Books::default()
    };
    round_trip(backend, "drop_index", old, Books::default(), false).await;
}

/// The new index is created before the old one is dropped, both ways: MySQL refuses to drop
/// the only index a foreign key can use.
async fn a_foreign_keys_index_is_replaced(backend: Backend) {
    let new = Books {
        author_index: false,
        author_id_id_index: true,
        ..Books::default()
    };
    round_trip(backend, "replace_index", Books::default(), new, false).await;
}

async fn a_foreign_key_is_added(backend: Backend) {
    let old = Books {
        author_fk: false,
        ..Books::default()
    };
    round_trip(backend, "add_foreign_key", old, Books::default(), true).await;
}

async fn a_foreign_key_is_dropped(backend: Backend) {
    let new = Books {
        author_fk: false,
        ..Books::default()
    };
    round_trip(backend, "drop_foreign_key", Books::default(), new, true).await;
}

async fn a_rename_is_a_drop_and_an_add(backend: Backend) {
    let new = Books {
        pages: Some("page_count"),
        ..Books::default()
    };
    round_trip(
        backend,
        "rename_column",
        Books::default(),
        new.clone(),
        false,
    )
    .await;
    if backend == Backend::Sqlite {
        let source = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("snapshots/autogen/rename_column.rs.snap"),
        )
        .unwrap();
        assert!(source.contains("if this is a rename"), "{source}");
    }
}

/// On the real project, the migrations build exactly what the entities declare.
async fn the_real_entities_need_no_change(backend: Backend) {
    use migration::MigratorTrait;
    let migrated_db = TestDatabase::create(backend).await;
    let declared_db = TestDatabase::create(backend).await;
    let migrated = migrated_db.connect().await;
    let declared = declared_db.connect().await;
    migration::Migrator::up(&migrated, None).await.unwrap();
    let entities = Declared::from_entities(declared.get_database_backend());
    let plan = schema::autogenerate(&migrated, &declared, &entities)
        .await
        .unwrap();
    assert!(plan.is_empty(), "{plan:#?}");
}

/// The project's workflow on its real schema: add a field to an entity (here: a column added
/// to the photos table the entities declare), the check names it, the generated migration
/// adds it, and the check is clean again.
async fn adding_a_field_to_a_real_entity_is_found_and_generated() {
    use migration::MigratorTrait;
    let migrated_db = TestDatabase::create(Backend::Sqlite).await;
    let declared_db = TestDatabase::create(Backend::Sqlite).await;
    let migrated = migrated_db.connect().await;
    let declared = declared_db.connect().await;
    migration::Migrator::up(&migrated, None).await.unwrap();
    let mut entities = Declared::from_entities(sea_orm::DbBackend::Sqlite);
    let photos = entities
        .tables
        .iter_mut()
        .find(|table| {
            matches!(table.get_table_name(), Some(sea_orm::sea_query::TableRef::Table(name, _)) if name.1.to_string() == "photos")
        })
        .unwrap();
    photos.col(
        ColumnDef::new(Alias::new("rating"))
            .integer()
            .not_null()
            .default(0),
    );
    let plan = schema::autogenerate(&migrated, &declared, &entities)
        .await
        .unwrap();
    let wanted = inspect(&declared).await.unwrap().without_checks();
    let drift = inspect(&migrated)
        .await
        .unwrap()
        .without_checks()
        .differences_named(&wanted, "migrations", "entities");
    assert_eq!(
        drift,
        vec!["column photos.rating: in entities, not in migrations"]
    );
    let source = plan.render("add_photo_rating");
    let key = check_snapshot("add_photo_rating", Backend::Sqlite, &source);
    assert!(source.contains(".add_column("), "{source}");
    assert!(
        source.contains(r#"ColumnDef::new(Alias::new("rating")).integer().not_null().default(0)"#),
        "{source}"
    );
    crate::generated::migration(&key)
        .up(&SchemaManager::new(&migrated))
        .await
        .unwrap();
    let after = inspect(&migrated).await.unwrap().without_checks();
    assert!(after.differences(&wanted).is_empty());
}

//! username_key: users (2 changes)
//!
//! Written by `cargo run -p schema -- generate NAME --autogenerate` from the differences
//! between the migrations and the entities. Review it before applying it.
//!
//! `users.username_key`: the username in lower case, unique, so `Ada` and `ada` are one
//! account. Added by hand to what was generated: the existing accounts are checked first (two
//! usernames that differ only in case stop the migration, naming them, before anything
//! changes: an operator decides which one is renamed; nothing is merged), then filled in one
//! `UPDATE` (one row per account: brief on a users table), then indexed.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        // Statements only (no reads), so `--sql` renders the migration offline.
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                // Raises, naming them, when usernames differ only in case.
                db.execute_unprepared(
                    "DO $$ DECLARE clashes text; BEGIN \
                     SELECT string_agg(k, ', ' ORDER BY k) INTO clashes FROM \
                     (SELECT LOWER(username) AS k FROM users GROUP BY 1 HAVING COUNT(*) > 1) c; \
                     IF clashes IS NOT NULL THEN RAISE EXCEPTION \
                     'accounts whose usernames differ only in case: %. Rename all but one of \
                     each, then run the migration again; nothing was changed', clashes; \
                     END IF; END $$",
                )
                .await?;
            }
            // MariaDB/MySQL's default collations compare case-insensitively: the unique
            // `username` already made such a clash impossible.
            DbBackend::MySql => {}
            _ => {
                // SQLite: a scratch table whose key refuses a second spelling (a real table,
                // not TEMP: the pool may run each statement on another connection).
                db.execute_unprepared("DROP TABLE IF EXISTS username_clash_check")
                    .await?;
                db.execute_unprepared("CREATE TABLE username_clash_check (k TEXT PRIMARY KEY)")
                    .await?;
                let checked = db
                    .execute_unprepared(
                        "INSERT INTO username_clash_check SELECT LOWER(username) FROM users",
                    )
                    .await;
                db.execute_unprepared("DROP TABLE username_clash_check")
                    .await?;
                if checked.is_err() {
                    return Err(DbErr::Migration(
                        "accounts whose usernames differ only in case exist (list them: SELECT \
                         LOWER(username) FROM users GROUP BY 1 HAVING COUNT(*) > 1). Rename all \
                         but one of each, then run the migration again; nothing was changed"
                            .to_owned(),
                    ));
                }
            }
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("users"))
                    .add_column(
                        ColumnDef::new(Alias::new("username_key"))
                            .string_len(32)
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        db.execute_unprepared(
            "UPDATE users SET username_key = LOWER(username) WHERE username_key IS NULL",
        )
        .await?;
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                // CONCURRENTLY: writes to users go on while it builds (outside a transaction:
                // see use_transaction). If it fails half-way, PostgreSQL leaves an INVALID index:
                // DROP INDEX CONCURRENTLY "idx-users-username_key-unique"; then run the migration again.
                manager
                    .get_connection()
                    .execute_unprepared("CREATE UNIQUE INDEX CONCURRENTLY \"idx-users-username_key-unique\" ON \"users\" (\"username_key\")")
                    .await?;
            }
            DbBackend::MySql => {
                // INPLACE, LOCK=NONE: reads and writes go on while it builds (MySQL refuses, rather
                // than locking the table, where it cannot).
                manager
                    .get_connection()
                    .execute_unprepared("CREATE UNIQUE INDEX `idx-users-username_key-unique` ON `users` (`username_key`) ALGORITHM=INPLACE LOCK=NONE")
                    .await?;
            }
            _ => {
                manager
                    .create_index(
                        Index::create()
                            .name("idx-users-username_key-unique")
                            .table(Alias::new("users"))
                            .col(Alias::new("username_key"))
                            .unique()
                            .to_owned(),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx-users-username_key-unique")
                    .table(Alias::new("users"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("users"))
                    .drop_column(Alias::new("username_key"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        // CREATE INDEX CONCURRENTLY cannot run inside a transaction.
        Some(false)
    }
}

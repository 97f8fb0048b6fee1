//! photo_thumbnails: photos (1 change), jobs (rows)
//!
//! `thumbnail_status` (`pending`, `ready`, `unavailable`): whether the photo's thumbnails are
//! in the store beside it. A column with a constant default: no table rewrite on PostgreSQL
//! (11+), an instant change on MariaDB, an `ALTER TABLE ... ADD COLUMN` on SQLite.
//!
//! Added by hand: one thumbnail job (`photos.thumbnails`, payload `{"photo_id": ID}`, the
//! payload of `service::photos::thumbnails::MakeThumbnails` on this day) for every photo whose
//! bytes were stored before this migration, so their thumbnails get made by the workers like a
//! new upload's. `down` drops the column and deletes the jobs of that kind that have not run
//! (the objects they made are deleted with their photos, by key).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{DbBackend, Statement, Value};

#[derive(DeriveMigrationName)]
pub struct Migration;

const STATUSES: [&str; 3] = ["pending", "ready", "unavailable"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("photos"))
                    .add_column(
                        ColumnDef::new(Alias::new("thumbnail_status"))
                            .string_len(16)
                            .not_null()
                            .default("pending")
                            .check(Expr::col(Alias::new("thumbnail_status")).is_in(STATUSES)),
                    )
                    .to_owned(),
            )
            .await?;
        let backend = manager.get_database_backend();
        let (payload, now) = match backend {
            DbBackend::MySql => ("CONCAT('{\"photo_id\":', id, '}')", "?"),
            DbBackend::Postgres => ("'{\"photo_id\":' || id || '}'", "$1"),
            _ => ("'{\"photo_id\":' || id || '}'", "?"),
        };
        // One bound instant for every timestamp: written the way the application writes them
        // on each backend (SQLite compares them as text).
        let sql = format!(
            "INSERT INTO jobs (kind, payload, status, attempts, max_attempts, run_at, created_at, \
             updated_at) SELECT 'photos.thumbnails', {payload}, 'queued', 0, 5, {now}, {now}, \
             {now} FROM photos WHERE status <> 'pending' ORDER BY id DESC"
        );
        let now = chrono::Utc::now();
        let values: Vec<Value> = match backend {
            DbBackend::Postgres => vec![now.into()],
            _ => vec![now.into(), now.into(), now.into()],
        };
        manager
            .get_connection()
            .execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "DELETE FROM jobs WHERE kind = 'photos.thumbnails' AND status = 'queued'",
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("photos"))
                    .drop_column(Alias::new("thumbnail_status"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}

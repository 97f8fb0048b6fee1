//! jobs: the durable queue. Enqueued in the same transaction as the change that causes the
//! job; claimed with `FOR UPDATE SKIP LOCKED` and a lease that a dead worker lets expire.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    Kind,
    Payload,
    Status,
    Attempts,
    MaxAttempts,
    RunAt,
    LockedBy,
    LockedUntil,
    LastError,
    CreatedAt,
    UpdatedAt,
}

/// The job states as they were when this migration was written.
const STATUSES: [&str; 4] = ["queued", "running", "succeeded", "failed"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Jobs::Table)
                    .col(
                        ColumnDef::new(Jobs::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Jobs::Kind).string_len(64).not_null())
                    .col(ColumnDef::new(Jobs::Payload).text().not_null())
                    .col(
                        ColumnDef::new(Jobs::Status)
                            .string_len(16)
                            .not_null()
                            .default("queued"),
                    )
                    .col(
                        ColumnDef::new(Jobs::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(Jobs::MaxAttempts)
                            .integer()
                            .not_null()
                            .default(5),
                    )
                    .col(utc_timestamp(manager, Jobs::RunAt).not_null())
                    .col(ColumnDef::new(Jobs::LockedBy).string_len(64).null())
                    .col(utc_timestamp(manager, Jobs::LockedUntil).null())
                    .col(ColumnDef::new(Jobs::LastError).text().null())
                    .col(utc_timestamp(manager, Jobs::CreatedAt).not_null())
                    .col(utc_timestamp(manager, Jobs::UpdatedAt).not_null())
                    .check(("chk-jobs-status", Expr::col(Jobs::Status).is_in(STATUSES)))
                    .to_owned(),
            )
            .await?;
        // What the claim query filters and orders by. (One column each: entities can declare
        // single-column indexes only, and the drift check compares the two.)
        for (name, column) in [
            ("idx-jobs-status", Jobs::Status),
            ("idx-jobs-run_at", Jobs::RunAt),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Jobs::Table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Jobs::Table).to_owned())
            .await
    }
}

/// A UTC timestamp column: `timestamp with time zone` on PostgreSQL; `datetime(6)` on
/// MySQL/MariaDB (microseconds and no 2038 limit, unlike its `timestamp`; always written in
/// UTC); text on SQLite. Kept in this file so the migration never changes meaning.
fn utc_timestamp(manager: &SchemaManager, column: impl IntoIden) -> ColumnDef {
    let mut def = ColumnDef::new(column);
    if manager.get_database_backend() == DbBackend::MySql {
        def.custom(Alias::new("datetime(6)"));
    } else {
        def.timestamp_with_time_zone();
    }
    def
}

//! photos: one row per uploaded photo, owned by a user (deleted with it).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Photos {
    Table,
    Id,
    UserId,
    ObjectKey,
    Status,
    Title,
    ContentType,
    SizeBytes,
    Width,
    Height,
    ChecksumSha256,
    TakenAt,
    Error,
    CreatedAt,
    UpdatedAt,
}

/// The photo states as they were when this migration was written.
const STATUSES: [&str; 5] = ["pending", "uploaded", "processing", "completed", "failed"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Photos::Table)
                    .col(
                        ColumnDef::new(Photos::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Photos::UserId).big_integer().not_null())
                    .col(
                        ColumnDef::new(Photos::ObjectKey)
                            .string_len(512)
                            .not_null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(Photos::Status)
                            .string_len(16)
                            .not_null()
                            .default("pending"),
                    )
                    .col(ColumnDef::new(Photos::Title).string_len(200).null())
                    .col(ColumnDef::new(Photos::ContentType).string_len(100).null())
                    .col(ColumnDef::new(Photos::SizeBytes).big_integer().null())
                    .col(ColumnDef::new(Photos::Width).integer().null())
                    .col(ColumnDef::new(Photos::Height).integer().null())
                    .col(ColumnDef::new(Photos::ChecksumSha256).string_len(64).null())
                    .col(utc_timestamp(manager, Photos::TakenAt).null())
                    .col(ColumnDef::new(Photos::Error).text().null())
                    .col(utc_timestamp(manager, Photos::CreatedAt).not_null())
                    .col(utc_timestamp(manager, Photos::UpdatedAt).not_null())
                    .check((
                        "chk-photos-status",
                        Expr::col(Photos::Status).is_in(STATUSES),
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk-photos-user_id")
                            .from(Photos::Table, Photos::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::NoAction),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("idx-photos-user_id", Photos::UserId),
            ("idx-photos-status", Photos::Status),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Photos::Table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Dropping the table drops its indexes, constraints and foreign key with it.
        manager
            .drop_table(Table::drop().table(Photos::Table).to_owned())
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

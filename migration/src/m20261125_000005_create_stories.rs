//! stories: what the workers write about a photo. Deleted with the photo and with the user.

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
}

#[derive(DeriveIden)]
enum Stories {
    Table,
    Id,
    PhotoId,
    UserId,
    Title,
    Body,
    Style,
    Language,
    Provider,
    Model,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Stories::Table)
                    .col(
                        ColumnDef::new(Stories::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Stories::PhotoId).big_integer().not_null())
                    .col(ColumnDef::new(Stories::UserId).big_integer().not_null())
                    .col(ColumnDef::new(Stories::Title).string_len(200).not_null())
                    .col(ColumnDef::new(Stories::Body).text().not_null())
                    .col(ColumnDef::new(Stories::Style).string_len(32).not_null())
                    .col(ColumnDef::new(Stories::Language).string_len(35).not_null())
                    .col(ColumnDef::new(Stories::Provider).string_len(32).not_null())
                    .col(ColumnDef::new(Stories::Model).string_len(100).null())
                    .col(utc_timestamp(manager, Stories::CreatedAt).not_null())
                    .col(utc_timestamp(manager, Stories::UpdatedAt).not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk-stories-photo_id")
                            .from(Stories::Table, Stories::PhotoId)
                            .to(Photos::Table, Photos::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::NoAction),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk-stories-user_id")
                            .from(Stories::Table, Stories::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::NoAction),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("idx-stories-photo_id", Stories::PhotoId),
            ("idx-stories-user_id", Stories::UserId),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Stories::Table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Stories::Table).to_owned())
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

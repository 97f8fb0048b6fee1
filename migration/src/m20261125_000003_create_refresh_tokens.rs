//! refresh_tokens: opaque refresh tokens stored as SHA-256 hashes, grouped in families for
//! rotation and reuse detection; deleted with their user.

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
enum RefreshTokens {
    Table,
    Id,
    UserId,
    TokenHash,
    FamilyId,
    ExpiresAt,
    RevokedAt,
    ReplacedById,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RefreshTokens::Table)
                    .col(
                        ColumnDef::new(RefreshTokens::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(RefreshTokens::UserId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RefreshTokens::TokenHash)
                            .string_len(64)
                            .not_null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(RefreshTokens::FamilyId)
                            .string_len(36)
                            .not_null(),
                    )
                    .col(utc_timestamp(manager, RefreshTokens::ExpiresAt).not_null())
                    .col(utc_timestamp(manager, RefreshTokens::RevokedAt).null())
                    .col(
                        ColumnDef::new(RefreshTokens::ReplacedById)
                            .big_integer()
                            .null(),
                    )
                    .col(utc_timestamp(manager, RefreshTokens::CreatedAt).not_null())
                    .col(utc_timestamp(manager, RefreshTokens::UpdatedAt).not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk-refresh_tokens-user_id")
                            .from(RefreshTokens::Table, RefreshTokens::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::NoAction),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("idx-refresh_tokens-user_id", RefreshTokens::UserId),
            ("idx-refresh_tokens-family_id", RefreshTokens::FamilyId),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(RefreshTokens::Table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RefreshTokens::Table).to_owned())
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

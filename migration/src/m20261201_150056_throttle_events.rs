//! throttle_events: throttle_events (1 change)
//!
//! Written by `cargo run -p schema -- generate NAME --autogenerate` from the differences
//! between the migrations and the entities. Review it before applying it.
//!
//! The counts of the throttling of password checks and registrations, shared by every API
//! process (`service::auth::throttle`). A new table: nothing existing is locked or rewritten.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("throttle_events"))
                    .col(
                        ColumnDef::new(Alias::new("id"))
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Alias::new("account")).string_len(330).null())
                    .col(
                        ColumnDef::new(Alias::new("action"))
                            .string_len(16)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Alias::new("address")).string_len(45).null())
                    .col(utc_timestamp(manager, Alias::new("created_at")).not_null())
                    .col(utc_timestamp(manager, Alias::new("updated_at")).not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx-throttle_events-account-created_at")
                    .table(Alias::new("throttle_events"))
                    .col(Alias::new("account"))
                    .col(Alias::new("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx-throttle_events-address-created_at")
                    .table(Alias::new("throttle_events"))
                    .col(Alias::new("address"))
                    .col(Alias::new("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx-throttle_events-created_at")
                    .table(Alias::new("throttle_events"))
                    .col(Alias::new("created_at"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(Alias::new("throttle_events"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}

/// A UTC timestamp column: `timestamp with time zone` on PostgreSQL; `datetime(6)` on
/// MySQL/MariaDB; text on SQLite. Kept in this file so the migration never changes meaning.
fn utc_timestamp(manager: &SchemaManager, column: impl IntoIden) -> ColumnDef {
    let mut def = ColumnDef::new(column);
    if manager.get_database_backend() == DbBackend::MySql {
        def.custom(Alias::new("datetime(6)"));
    } else {
        def.timestamp_with_time_zone();
    }
    def
}

//! photo_taken_at_local: photos (1 change)
//!
//! Written by `cargo run -p schema -- generate NAME --autogenerate` from the differences
//! between the migrations and the entities. Review it before applying it.
//!
//! `taken_at_local`: the camera's clock reading (EXIF `DateTimeOriginal`), which has no time
//! zone; `taken_at` stays the instant, set only when the photo gives its offset. A date-time
//! without time zone (`datetime` on MySQL, whose `timestamp` cannot hold dates before 1970;
//! the generator wrote `timestamp`, changed by hand). Adding a nullable column without a
//! default rewrites no rows on PostgreSQL, and is an instant or in-place change on MariaDB.
//! Photos uploaded before this keep their `taken_at` as stored (the local time read as UTC
//! when their EXIF had no offset) and a null `taken_at_local`.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("photos"))
                    .add_column(
                        ColumnDef::new(Alias::new("taken_at_local"))
                            .date_time()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("photos"))
                    .drop_column(Alias::new("taken_at_local"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}

//! page_indexes: photos (2 changes), stories (2 changes)
//!
//! Written by `cargo run -p api -- generate NAME --autogenerate` from the differences
//! between the migrations and the entities. Review it before applying it.
//!
//! A page of a user's photos (or stories), newest first, becomes a range of a `(user_id, id)`
//! index instead of every row of the user, sorted. The one-column `user_id` indexes are
//! prefixes of the new ones and go. The new indexes are created before the old ones are
//! dropped (both ways), because MySQL refuses to drop the only index of a foreign key (this
//! file was reordered by hand; autogenerate has written that order itself since). On a large
//! PostgreSQL table, `CREATE INDEX` blocks writes while it builds.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("idx-photos-user_id-id")
                    .table(Alias::new("photos"))
                    .col(Alias::new("user_id"))
                    .col(Alias::new("id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx-stories-user_id-id")
                    .table(Alias::new("stories"))
                    .col(Alias::new("user_id"))
                    .col(Alias::new("id"))
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx-photos-user_id")
                    .table(Alias::new("photos"))
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx-stories-user_id")
                    .table(Alias::new("stories"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("idx-stories-user_id")
                    .table(Alias::new("stories"))
                    .col(Alias::new("user_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx-photos-user_id")
                    .table(Alias::new("photos"))
                    .col(Alias::new("user_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx-stories-user_id-id")
                    .table(Alias::new("stories"))
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx-photos-user_id-id")
                    .table(Alias::new("photos"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}

//! user_token_generation: users (1 change)
//!
//! Written by `cargo run -p schema -- generate NAME --autogenerate` from the differences
//! between the migrations and the entities. Review it before applying it.
//!
//! `users.token_generation`: access tokens carry it; bumping it ends every session of the
//! account. A NOT NULL column with a constant default: no table rewrite on PostgreSQL 11+,
//! an instant change on MariaDB 10.3+. Existing tokens (no generation claim) count as 0.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("users"))
                    .add_column(
                        ColumnDef::new(Alias::new("token_generation"))
                            .integer()
                            .not_null()
                            .default(0),
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
                    .table(Alias::new("users"))
                    .drop_column(Alias::new("token_generation"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}

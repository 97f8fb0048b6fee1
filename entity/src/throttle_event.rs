use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// One event that counts against a throttling limit: a password check that has not (yet)
/// succeeded, or a registration. Every API process counts the same rows; rows older than the
/// longest window are pruned by a scheduled job. No foreign key: an account's events outlive
/// it by at most that window.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "throttle_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// `login`, `password` (a `current_password` check) or `register`.
    #[sea_orm(column_type = "String(StringLen::N(16))")]
    pub action: String,
    /// Whose password was tried: `user:{id}` for an account, `name:{lower-case name}` for a
    /// name no account has (so that unknown names throttle like known ones). Null for
    /// registrations.
    #[sea_orm(column_type = "String(StringLen::N(330))", nullable)]
    pub account: Option<String>,
    /// The client's address as the server trusts it (`AISTORY_TRUSTED_PROXIES`); null when
    /// the server cannot tell.
    #[sea_orm(column_type = "String(StringLen::N(45))", nullable)]
    pub address: Option<String>,
    #[sea_orm(indexed)]
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

#[async_trait::async_trait]
impl ActiveModelBehavior for ActiveModel {
    async fn before_save<C>(mut self, _db: &C, insert: bool) -> Result<Self, DbErr>
    where
        C: ConnectionTrait,
    {
        crate::timestamps::touch(&mut self.created_at, &mut self.updated_at, insert);
        Ok(self)
    }
}

/// The counts read an account's and an address's recent events.
pub fn indexes() -> Vec<sea_orm::sea_query::IndexCreateStatement> {
    vec![
        sea_orm::sea_query::Index::create()
            .name("idx-throttle_events-account-created_at")
            .table(Entity)
            .col(Column::Account)
            .col(Column::CreatedAt)
            .to_owned(),
        sea_orm::sea_query::Index::create()
            .name("idx-throttle_events-address-created_at")
            .table(Entity)
            .col(Column::Address)
            .col(Column::CreatedAt)
            .to_owned(),
    ]
}

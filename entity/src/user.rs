use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// An account.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// 3-32 of `[A-Za-z0-9_]`, as the user wrote it.
    #[sea_orm(column_type = "String(StringLen::N(32))", unique)]
    pub username: String,
    /// `username` in lower case, unique: `Ada` and `ada` are one account. Set on every insert;
    /// null only on rows older than its migration that it could not fill (it fills them all,
    /// or stops and names the clashing usernames).
    #[sea_orm(column_type = "String(StringLen::N(32))", unique, nullable)]
    pub username_key: Option<String>,
    /// Stored lower-case, unique.
    #[sea_orm(column_type = "String(StringLen::N(254))", unique)]
    pub email: String,
    /// argon2id PHC string. Never serialized.
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    #[serde(skip_serializing, default)]
    pub password_hash: String,
    /// Bumped to end every session at once (logout everywhere, a password change, a stolen
    /// refresh token): access tokens carry the generation they were issued in, and writes
    /// with an older one are refused.
    #[sea_orm(default_value = 0)]
    pub token_generation: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::photo::Entity")]
    Photos,
    #[sea_orm(has_many = "super::refresh_token::Entity")]
    RefreshTokens,
}

impl Related<super::refresh_token::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::RefreshTokens.def()
    }
}

impl Related<super::photo::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Photos.def()
    }
}

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

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// An opaque refresh token, stored only as its SHA-256 hash. Tokens descending from one login
/// share a `family_id`: each use rotates the token (the old one is revoked, `replaced_by_id`
/// points to the new one), and presenting a revoked token again revokes the whole family.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "refresh_tokens")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(indexed)]
    pub user_id: i64,
    /// Hex SHA-256 of the token. Never serialized.
    #[sea_orm(column_type = "String(StringLen::N(64))", unique)]
    #[serde(skip_serializing, default)]
    pub token_hash: String,
    #[sea_orm(column_type = "String(StringLen::N(36))", indexed)]
    pub family_id: String,
    pub expires_at: DateTimeUtc,
    pub revoked_at: Option<DateTimeUtc>,
    pub replaced_by_id: Option<i64>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id",
        on_update = "NoAction",
        on_delete = "Cascade",
        fk_name = "fk-refresh_tokens-user_id"
    )]
    User,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
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

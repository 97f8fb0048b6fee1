use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A story written about a photo. A photo may have several (each request writes a new one);
/// the newest is "the" story.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "stories")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(indexed)]
    pub photo_id: i64,
    /// The photo's owner, kept here so a user's stories list without a join. Indexed with
    /// `id` (see [`indexes`]).
    pub user_id: i64,
    #[sea_orm(column_type = "String(StringLen::N(200))")]
    pub title: String,
    #[sea_orm(column_type = "Text")]
    pub body: String,
    /// `adventure`, `bedtime`, `mystery`, `poem`.
    #[sea_orm(column_type = "String(StringLen::N(32))")]
    pub style: String,
    /// BCP 47 language tag the story is written in (`en`, `fr-CA`...).
    #[sea_orm(column_type = "String(StringLen::N(35))")]
    pub language: String,
    /// Who wrote it: `builtin` or `openai`.
    #[sea_orm(column_type = "String(StringLen::N(32))")]
    pub provider: String,
    /// The provider's model, when it has one.
    #[sea_orm(column_type = "String(StringLen::N(100))", nullable)]
    pub model: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::photo::Entity",
        from = "Column::PhotoId",
        to = "super::photo::Column::Id",
        on_update = "NoAction",
        on_delete = "Cascade",
        fk_name = "fk-stories-photo_id"
    )]
    Photo,
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id",
        on_update = "NoAction",
        on_delete = "Cascade",
        fk_name = "fk-stories-user_id"
    )]
    User,
}

impl Related<super::photo::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Photo.def()
    }
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

/// Indexes over several columns, which `#[sea_orm(indexed)]` cannot declare; the migrations
/// create them and `schema check` compares them like the others.
///
/// `(user_id, id)`: a page of a user's stories, newest first, is a range of this index.
pub fn indexes() -> Vec<sea_orm::sea_query::IndexCreateStatement> {
    vec![
        sea_orm::sea_query::Index::create()
            .name("idx-stories-user_id-id")
            .table(Entity)
            .col(Column::UserId)
            .col(Column::Id)
            .to_owned(),
    ]
}

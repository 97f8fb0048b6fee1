//! SeaORM models of the AI Story Creator. No business logic lives here.
//!
//! Every model gets what the original backend's SQLAlchemy `Base` gave: a table name,
//! `created_at` / `updated_at` kept by [`timestamps`], and [`ToDict::to_dict`] for a JSON
//! view of the row.

pub mod job;
pub mod photo;
pub mod photo_status;
pub mod refresh_token;
pub mod story;
pub mod throttle_event;
pub mod thumbnail_status;
pub mod timestamps;
pub mod user;

/// One table the entities declare: its `CREATE TABLE` and every index on it (SeaORM's
/// derived ones and the entity's own multi-column `indexes()`).
pub struct DeclaredTable {
    pub name: &'static str,
    pub create: sea_orm::sea_query::TableCreateStatement,
    pub indexes: Vec<sea_orm::sea_query::IndexCreateStatement>,
}

fn declared<E: sea_orm::EntityTrait>(
    schema: &sea_orm::Schema,
    entity: E,
    more: Vec<sea_orm::sea_query::IndexCreateStatement>,
) -> DeclaredTable {
    let mut indexes = schema.create_index_from_entity(entity);
    indexes.extend(more);
    DeclaredTable {
        name: entity.table_name(),
        create: schema.create_table_from_entity(entity),
        indexes,
    }
}

/// Every table of the application, in dependency order (a table after the tables it
/// references), as `backend` would create it. A new entity is added here, and only here.
pub fn tables(backend: sea_orm::DbBackend) -> Vec<DeclaredTable> {
    let schema = sea_orm::Schema::new(backend);
    vec![
        declared(&schema, user::Entity, Vec::new()),
        declared(&schema, photo::Entity, photo::indexes()),
        declared(&schema, refresh_token::Entity, Vec::new()),
        declared(&schema, job::Entity, Vec::new()),
        declared(&schema, story::Entity, story::indexes()),
        declared(&schema, throttle_event::Entity, throttle_event::indexes()),
    ]
}

pub mod prelude {
    pub use crate::ToDict;
    pub use crate::photo::{
        ActiveModel as PhotoActiveModel, Column as PhotoColumn, Entity as Photo,
        Model as PhotoModel,
    };
    pub use crate::photo_status::PhotoStatus;
    pub use crate::story::{
        ActiveModel as StoryActiveModel, Column as StoryColumn, Entity as Story,
        Model as StoryModel,
    };
    pub use crate::thumbnail_status::ThumbnailStatus;
    pub use crate::user::{
        ActiveModel as UserActiveModel, Column as UserColumn, Entity as User, Model as UserModel,
    };
}

/// The guide's `to_dict()`: a model as a JSON object. Secret columns (a user's
/// `password_hash`) are marked `#[serde(skip_serializing)]` and never appear.
pub trait ToDict: serde::Serialize {
    fn to_dict(&self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => map,
            // Our models are plain structs of scalars: they always serialize to an object.
            _ => serde_json::Map::new(),
        }
    }
}

impl ToDict for user::Model {}
impl ToDict for photo::Model {}
impl ToDict for refresh_token::Model {}
impl ToDict for job::Model {}
impl ToDict for story::Model {}

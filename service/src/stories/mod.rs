//! Stories: requested for a photo (the photo goes `processing` and a job is queued in the
//! same transaction), written by a worker through a [`StoryProvider`], stored, and read back.

pub mod builtin;
mod job;
pub mod openai;
pub mod provider;

use std::sync::Arc;

use entity::photo;
use entity::photo_status::PhotoStatus;
use entity::story;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
};
use settings::StoryProviderSettings;

pub use builtin::BuiltinProvider;
pub use job::{GenerateStory, StoryJobs};
pub use openai::OpenAiProvider;
pub use provider::{
    ProviderError, StoryDraft, StoryProvider, StoryRequest, Style, is_language_tag,
};

use crate::worker::BackgroundJob;
use crate::{ServiceError, photos};

/// The provider `settings` choose.
pub fn provider_from_settings(
    settings: &StoryProviderSettings,
) -> Result<Arc<dyn StoryProvider>, ServiceError> {
    Ok(match settings {
        StoryProviderSettings::Builtin => Arc::new(BuiltinProvider),
        StoryProviderSettings::OpenAi(openai) => {
            Arc::new(OpenAiProvider::new(openai.clone()).map_err(|error| {
                ServiceError::Unexpected(anyhow::anyhow!(
                    "the HTTP client of the openai provider: {error}"
                ))
            })?)
        }
    })
}

fn field_error(field: &str, message: String) -> ServiceError {
    ServiceError::Validation([(field.to_owned(), vec![message])].into())
}

/// Asks for a story about one of the user's photos: the photo goes to `processing` and the
/// job is queued, both on `db` (the request's transaction). A photo already `processing` is a
/// conflict; a `completed` or `failed` one gets a new story (its old ones stay).
pub async fn request_story<C: ConnectionTrait>(
    db: &C,
    provider: &dyn StoryProvider,
    user_id: i64,
    photo_id: i64,
    style: Style,
    language: &str,
) -> Result<photo::Model, ServiceError> {
    if !is_language_tag(language) {
        return Err(field_error(
            "language",
            "must be a BCP 47 language tag such as en or pt-BR".to_owned(),
        ));
    }
    if let Err(why) = provider.check_language(language) {
        return Err(field_error("language", why));
    }
    let photo = photos::get_photo(db, user_id, photo_id).await?;
    match photo.status {
        PhotoStatus::Pending => {
            return Err(ServiceError::Conflict {
                what: "the photo's bytes have not been uploaded yet; finish the upload first"
                    .to_owned(),
            });
        }
        PhotoStatus::Processing => {
            return Err(ServiceError::Conflict {
                what: "a story is already being written for this photo; follow it at \
                       GET /api/v1/photos/{id}/events and ask again when it is done"
                    .replace("{id}", &photo.id.to_string()),
            });
        }
        PhotoStatus::Completed | PhotoStatus::Failed => {
            photos::change_status(db, photo.id, PhotoStatus::Uploaded, |_| {}).await?;
        }
        PhotoStatus::Uploaded => {}
    }
    let processing = photos::change_status(db, photo.id, PhotoStatus::Processing, |active| {
        active.error = Set(None);
    })
    .await?;
    GenerateStory {
        photo_id: photo.id,
        style,
        language: language.to_owned(),
    }
    .enqueue(db)
    .await?;
    Ok(processing)
}

/// The newest story of one of the user's photos.
pub async fn latest_story<C: ConnectionTrait>(
    db: &C,
    user_id: i64,
    photo_id: i64,
) -> Result<story::Model, ServiceError> {
    story::Entity::find()
        .filter(story::Column::PhotoId.eq(photo_id))
        .filter(story::Column::UserId.eq(user_id))
        .order_by_desc(story::Column::Id)
        .one(db)
        .await?
        .ok_or(ServiceError::NotFound { what: "story" })
}

/// One of the user's stories.
pub async fn get_story<C: ConnectionTrait>(
    db: &C,
    user_id: i64,
    story_id: i64,
) -> Result<story::Model, ServiceError> {
    story::Entity::find_by_id(story_id)
        .filter(story::Column::UserId.eq(user_id))
        .one(db)
        .await?
        .ok_or(ServiceError::NotFound { what: "story" })
}

/// A page of the user's stories, newest first, optionally of one photo; `after` is the id the
/// previous page ended at.
pub async fn list_stories<C: ConnectionTrait>(
    db: &C,
    user_id: i64,
    photo_id: Option<i64>,
    limit: u64,
    after: Option<i64>,
) -> Result<(Vec<story::Model>, Option<i64>), ServiceError> {
    let mut query = story::Entity::find().filter(story::Column::UserId.eq(user_id));
    if let Some(photo_id) = photo_id {
        query = query.filter(story::Column::PhotoId.eq(photo_id));
    }
    crate::paging::newest_first(db, query, story::Column::Id, |row| row.id, limit, after).await
}

/// Deletes one of the user's stories (the photo stays).
pub async fn delete_story<C: ConnectionTrait>(
    db: &C,
    user_id: i64,
    story_id: i64,
) -> Result<(), ServiceError> {
    let result = story::Entity::delete_many()
        .filter(story::Column::Id.eq(story_id))
        .filter(story::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    if result.rows_affected == 0 {
        return Err(ServiceError::NotFound { what: "story" });
    }
    Ok(())
}

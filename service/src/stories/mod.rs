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

/// Refuses a story request when user `user_id` already asked for `per_hour` within the last
/// hour: the stories written in that hour, and the ones being written now (failed attempts do
/// not count). 429, with the seconds until the oldest of them leaves the hour.
async fn check_story_rate<C: ConnectionTrait>(
    db: &C,
    user_id: i64,
    per_hour: u64,
) -> Result<(), ServiceError> {
    use sea_orm::{PaginatorTrait, QueryOrder};
    let hour_ago = entity::timestamps::now() - chrono::Duration::hours(1);
    let written = story::Entity::find()
        .filter(story::Column::UserId.eq(user_id))
        .filter(story::Column::CreatedAt.gt(hour_ago));
    let being_written = photo::Entity::find()
        .filter(photo::Column::UserId.eq(user_id))
        .filter(photo::Column::Status.eq(PhotoStatus::Processing))
        .count(db)
        .await?;
    let asked = written.clone().count(db).await? + being_written;
    if asked < per_hour {
        return Ok(());
    }
    let oldest = written
        .order_by_asc(story::Column::CreatedAt)
        .one(db)
        .await?
        .map(|story| story.created_at);
    let retry_after_secs = oldest.map_or(60, |at| {
        let frees = at + chrono::Duration::hours(1) - entity::timestamps::now();
        std::cmp::Ord::max(frees.num_seconds(), 1) as u64
    });
    Err(ServiceError::Quota {
        detail: format!(
            "you asked for {asked} stories within the last hour, the most allowed \
             (AISTORY_QUOTA_STORIES_PER_HOUR = {per_hour}); retry in {retry_after_secs} s"
        ),
        retry_after_secs: Some(retry_after_secs),
    })
}

/// Event streams open in this process, by user: at most `AISTORY_QUOTA_STREAMS` each. A
/// [`StreamSlot`] frees its place when dropped (the stream ended or its client left).
#[derive(Clone, Default)]
pub struct OpenStreams(Arc<std::sync::Mutex<std::collections::HashMap<i64, u64>>>);

/// One open stream's place.
pub struct StreamSlot {
    streams: OpenStreams,
    user_id: i64,
}

impl OpenStreams {
    /// A place for one more stream of `user_id`, or 429 when `limit` are open.
    pub fn open(&self, user_id: i64, limit: u64) -> Result<StreamSlot, ServiceError> {
        let mut open = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = open.entry(user_id).or_default();
        if *count >= limit {
            return Err(ServiceError::Quota {
                detail: format!(
                    "you have {count} event streams open, the most allowed \
                     (AISTORY_QUOTA_STREAMS = {limit}); close one first"
                ),
                retry_after_secs: Some(5),
            });
        }
        *count += 1;
        Ok(StreamSlot {
            streams: self.clone(),
            user_id,
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self
            .streams
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = open.get_mut(&self.user_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.user_id);
            }
        }
    }
}

/// Asks for a story about one of the user's photos: the photo goes to `processing` and the
/// job is queued, both on `db` (the request's transaction). A photo already `processing` is a
/// conflict; a `completed` or `failed` one gets a new story (its old ones stay).
/// At most `per_hour` requests of the user within an hour (429 past it).
pub async fn request_story<C: crate::reads::HotReads>(
    db: &C,
    provider: &dyn StoryProvider,
    user_id: i64,
    photo_id: i64,
    style: Style,
    language: &str,
    per_hour: u64,
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
    check_story_rate(db, user_id, per_hour).await?;
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

//! Stories: requested for a photo (the photo goes `processing` and a job is queued in the
//! same transaction), written by a worker through a [`StoryProvider`], stored, and read back.

pub mod builtin;
pub mod openai;
pub mod provider;

use std::sync::Arc;

use entity::photo;
use entity::photo_status::PhotoStatus;
use entity::story;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction,
    EntityTrait, QueryFilter, QueryOrder,
};
use serde::{Deserialize, Serialize};
use settings::StoryProviderSettings;

pub use builtin::BuiltinProvider;
pub use openai::OpenAiProvider;
pub use provider::{
    ProviderError, StoryDraft, StoryProvider, StoryRequest, Style, is_language_tag,
};

use crate::storage::{Storage, StorageError};
use crate::worker::{Handler, JobContext, JobError};
use crate::{ServiceError, photos, queue};

/// The job kind that writes a story.
pub const GENERATE: &str = "story.generate";
/// Attempts of a story job (each attempt may itself retry the provider a few times).
pub const GENERATE_ATTEMPTS: i32 = 3;

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

#[derive(Debug, Serialize, Deserialize)]
struct GeneratePayload {
    photo_id: i64,
    style: String,
    language: String,
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
    let payload = GeneratePayload {
        photo_id: photo.id,
        style: style.as_str().to_owned(),
        language: language.to_owned(),
    };
    let payload =
        serde_json::to_value(&payload).map_err(|error| ServiceError::Unexpected(error.into()))?;
    queue::enqueue_at(
        db,
        GENERATE,
        &payload,
        entity::timestamps::now(),
        GENERATE_ATTEMPTS,
    )
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

/// Runs [`GENERATE`] jobs: reads the photo, has the provider write, and stores the story,
/// completes the photo and the job in one transaction (so a story is stored exactly once).
pub struct GenerateStory {
    pub storage: Storage,
    pub provider: Arc<dyn StoryProvider>,
}

fn payload_of(job: &entity::job::Model) -> Result<GeneratePayload, JobError> {
    serde_json::from_str(&job.payload)
        .map_err(|error| JobError::Fail(format!("the job's payload is malformed: {error}")))
}

#[async_trait::async_trait]
impl Handler for GenerateStory {
    fn kind(&self) -> &'static str {
        GENERATE
    }

    async fn run(&self, ctx: &JobContext<'_>) -> Result<(), JobError> {
        let payload = payload_of(ctx.job)?;
        let style: Style = payload
            .style
            .parse()
            .map_err(|()| JobError::Fail(format!("unknown story style {:?}", payload.style)))?;
        let Some(photo) = photo::Entity::find_by_id(payload.photo_id)
            .one(ctx.pool)
            .await?
        else {
            // Deleted meanwhile: nothing to write.
            return Ok(());
        };
        if photo.status != PhotoStatus::Processing {
            // Already written by an earlier run, or the photo moved on.
            return Ok(());
        }
        let image = match self.storage.get(&photo.object_key).await {
            Ok(image) => image,
            Err(StorageError::NotFound) => {
                return Err(JobError::Fail(
                    "the photo's file is missing from storage".to_owned(),
                ));
            }
            Err(error) => {
                tracing::warn!(%error, key = photo.object_key, "reading a photo for its story failed");
                return Err(JobError::Retry(
                    "the photo could not be read from storage".to_owned(),
                ));
            }
        };
        let request = StoryRequest {
            image,
            content_type: photo.content_type.clone(),
            title: photo.title.clone(),
            taken_at: photo.taken_at,
            style,
            language: payload.language.clone(),
            checksum: photo.checksum_sha256.clone(),
        };
        let draft = self
            .provider
            .write(&request)
            .await
            .map_err(|error| match error {
                ProviderError::Transient(why) => JobError::Retry(why),
                ProviderError::Permanent(why) => JobError::Fail(why),
            })?;

        let txn = crate::db::begin_write(ctx.pool).await?;
        let completed = photos::change_status(&txn, photo.id, PhotoStatus::Completed, |active| {
            active.error = Set(None);
        })
        .await;
        match completed {
            Ok(_) => {}
            // Deleted or moved on while we wrote: the story has no home; the job is done.
            Err(ServiceError::NotFound { .. } | ServiceError::InvalidTransition { .. }) => {
                ctx.complete_in(&txn).await?;
                txn.commit().await?;
                return Ok(());
            }
            Err(error) => return Err(error.into()),
        }
        story::ActiveModel {
            photo_id: Set(photo.id),
            user_id: Set(photo.user_id),
            title: Set(draft.title),
            body: Set(draft.body),
            style: Set(style.as_str().to_owned()),
            language: Set(payload.language),
            provider: Set(self.provider.name().to_owned()),
            model: Set(self.provider.model().map(str::to_owned)),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        ctx.complete_in(&txn).await?;
        txn.commit().await?;
        Ok(())
    }

    async fn gave_up(
        &self,
        txn: &DatabaseTransaction,
        job: &entity::job::Model,
        reason: &str,
    ) -> Result<(), ServiceError> {
        let Ok(payload) = payload_of(job) else {
            return Ok(());
        };
        let failed = photos::change_status(txn, payload.photo_id, PhotoStatus::Failed, |active| {
            active.error = Set(Some(reason.to_owned()));
        })
        .await;
        match failed {
            Ok(_) | Err(ServiceError::NotFound { .. } | ServiceError::InvalidTransition { .. }) => {
                Ok(())
            }
            Err(error) => Err(error),
        }
    }
}

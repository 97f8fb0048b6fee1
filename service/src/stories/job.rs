//! The job that writes a story: reads the photo, has the provider write, and stores the
//! story, completing the photo and the job in one transaction (a story is stored exactly once).

use std::sync::Arc;

use async_trait::async_trait;
use entity::photo;
use entity::photo_status::PhotoStatus;
use entity::story;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, DatabaseTransaction, EntityTrait};
use serde::{Deserialize, Serialize};

use super::{ProviderError, StoryProvider, StoryRequest, Style};
use crate::storage::{Storage, StorageError};
use crate::worker::{BackgroundJob, JobContext, JobError};
use crate::{ServiceError, photos};

/// What story jobs run with.
#[derive(Clone)]
pub struct StoryJobs {
    pub storage: Storage,
    pub provider: Arc<dyn StoryProvider>,
}

/// Write a story for `photo_id` (queued by [`super::request_story`] with the photo going
/// `processing` in the same transaction).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GenerateStory {
    pub photo_id: i64,
    pub style: Style,
    pub language: String,
}

#[async_trait]
impl BackgroundJob for GenerateStory {
    const KIND: &'static str = "story.generate";
    /// Each attempt may itself retry the provider a few times.
    const MAX_ATTEMPTS: i32 = 3;
    type Context = StoryJobs;

    async fn run(&self, context: &StoryJobs, job: &JobContext<'_>) -> Result<(), JobError> {
        let Some(photo) = photo::Entity::find_by_id(self.photo_id)
            .one(job.pool)
            .await?
        else {
            // Deleted meanwhile: nothing to write.
            return Ok(());
        };
        if photo.status != PhotoStatus::Processing {
            // Already written by an earlier run, or the photo moved on.
            return Ok(());
        }
        let image = match context.storage.get(&photo.object_key).await {
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
            taken_at: photo.taken_at_local,
            style: self.style,
            language: self.language.clone(),
            checksum: photo.checksum_sha256.clone(),
        };
        let started = std::time::Instant::now();
        let draft = context.provider.write(&request).await;
        let outcome = match &draft {
            Ok(_) => "ok",
            Err(ProviderError::Transient(_)) => "transient",
            Err(ProviderError::Permanent(_)) => "permanent",
        };
        crate::metrics::provider_call(context.provider.name(), started.elapsed(), outcome);
        let draft = draft.map_err(|error| match error {
            ProviderError::Transient(why) => JobError::Retry(why),
            ProviderError::Permanent(why) => JobError::Fail(why),
        })?;

        let txn = crate::db::begin_write(job.pool).await?;
        let completed = photos::change_status(&txn, photo.id, PhotoStatus::Completed, |active| {
            active.error = Set(None);
        })
        .await;
        match completed {
            Ok(_) => {}
            // Deleted or moved on while we wrote: the story has no home; the job is done.
            Err(ServiceError::NotFound { .. } | ServiceError::InvalidTransition { .. }) => {
                job.complete_in(&txn).await?;
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
            style: Set(self.style.as_str().to_owned()),
            language: Set(self.language.clone()),
            provider: Set(context.provider.name().to_owned()),
            model: Set(context.provider.model().map(str::to_owned)),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        job.complete_in(&txn).await?;
        txn.commit().await?;
        Ok(())
    }

    async fn gave_up(
        &self,
        _context: &StoryJobs,
        txn: &DatabaseTransaction,
        reason: &str,
    ) -> Result<(), ServiceError> {
        let failed = photos::change_status(txn, self.photo_id, PhotoStatus::Failed, |active| {
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

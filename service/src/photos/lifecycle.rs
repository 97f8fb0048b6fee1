//! The photo status lifecycle, enforced in one place: every change of status goes through
//! [`change_status`].
//!
//! `pending` -> `uploaded` -> `processing` -> `completed` | `failed`; `completed` and `failed`
//! may go back to `uploaded` when a new story is requested. Nothing else.

use entity::photo;
use entity::photo_status::PhotoStatus;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use crate::ServiceError;

/// Whether the lifecycle allows `from` -> `to`.
pub fn allowed(from: PhotoStatus, to: PhotoStatus) -> bool {
    use PhotoStatus::*;
    matches!(
        (from, to),
        (Pending, Uploaded)
            | (Uploaded, Processing)
            | (Processing, Completed)
            | (Processing, Failed)
            | (Completed, Uploaded)
            | (Failed, Uploaded)
    )
}

/// Moves photo `photo_id` to `to`, applying `also` to the row in the same update. The update
/// is conditional on the status read, so two concurrent changes cannot both win; a transition
/// the lifecycle does not allow is `InvalidTransition` naming both states.
pub async fn change_status<C: ConnectionTrait>(
    db: &C,
    photo_id: i64,
    to: PhotoStatus,
    also: impl FnOnce(&mut photo::ActiveModel),
) -> Result<photo::Model, ServiceError> {
    let current = photo::Entity::find_by_id(photo_id)
        .one(db)
        .await?
        .ok_or(ServiceError::NotFound { what: "photo" })?;
    if !allowed(current.status, to) {
        return Err(ServiceError::InvalidTransition {
            from: current.status.to_string(),
            to: to.to_string(),
        });
    }
    let from = current.status;
    let mut active: photo::ActiveModel = current.into();
    active.status = Set(to);
    // A bulk update skips the model hooks: keep `updated_at` here.
    active.updated_at = Set(entity::timestamps::now());
    also(&mut active);
    // Conditional on the status we read: a concurrent change makes this affect no row.
    let updated = photo::Entity::update_many()
        .set(active.clone())
        .filter(photo::Column::Id.eq(photo_id))
        .filter(photo::Column::Status.eq(from))
        .exec(db)
        .await?;
    if updated.rows_affected != 1 {
        let now = photo::Entity::find_by_id(photo_id)
            .one(db)
            .await?
            .ok_or(ServiceError::NotFound { what: "photo" })?;
        return Err(ServiceError::InvalidTransition {
            from: now.status.to_string(),
            to: to.to_string(),
        });
    }
    photo::Entity::find_by_id(photo_id)
        .one(db)
        .await?
        .ok_or(ServiceError::NotFound { what: "photo" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::Iterable;

    #[test]
    fn only_the_designed_transitions_are_allowed() {
        let allowed_pairs: Vec<_> = PhotoStatus::iter()
            .flat_map(|from| PhotoStatus::iter().map(move |to| (from, to)))
            .filter(|(from, to)| allowed(*from, *to))
            .collect();
        assert_eq!(allowed_pairs.len(), 6);
        assert!(!allowed(PhotoStatus::Uploaded, PhotoStatus::Uploaded));
        assert!(!allowed(PhotoStatus::Pending, PhotoStatus::Completed));
        assert!(!allowed(PhotoStatus::Completed, PhotoStatus::Processing));
    }
}

//! Accounts.

use entity::user;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait};

use crate::error::{ServiceError, on_unique_violation};

/// A user to create; the password is already hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub email: String,
    pub password_hash: String,
}

/// Inserts a user. A taken username or email is a [`ServiceError::Conflict`] naming the field.
pub async fn create_user<C: ConnectionTrait>(
    db: &C,
    new_user: NewUser,
) -> Result<user::Model, ServiceError> {
    let model = user::ActiveModel {
        username: Set(new_user.username),
        email: Set(new_user.email.to_lowercase()),
        password_hash: Set(new_user.password_hash),
        ..Default::default()
    };
    model.insert(db).await.map_err(|error| {
        on_unique_violation(error, |message| {
            if message.contains("email") {
                Some("this email address is already registered".to_owned())
            } else if message.contains("username") {
                Some("this username is already taken".to_owned())
            } else {
                None
            }
        })
    })
}

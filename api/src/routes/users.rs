//! `/api/v1/users/me`: one's own account.

use actix_web::{HttpResponse, delete, get, patch, web};
use chrono::{DateTime, Utc};
use entity::user;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::error::Problem;
use crate::extract::{AuthUser, ValidJson};
use crate::json::{JsonWritten, WriteJson};
use service::domain::{Email, Password};

use crate::client_address::ClientAddress;
use crate::{ApiError, AppState, Db};

/// An account as clients see it (never the password hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPublic {
    pub id: i64,
    pub username: String,
    pub email: String,
    #[serde(serialize_with = "crate::timestamps::utc")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::timestamps::utc")]
    pub updated_at: DateTime<Utc>,
}

impl From<user::Model> for UserPublic {
    fn from(model: user::Model) -> Self {
        UserPublic {
            id: model.id,
            username: model.username,
            email: model.email,
            created_at: model.created_at,
            updated_at: model.updated_at,
        }
    }
}

impl WriteJson for UserPublic {
    /// What `#[derive(Serialize)]` writes, by hand (`crate::json`; test below).
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        use crate::json::{option_integer, string};
        use crate::timestamps::push_utc;
        out.extend_from_slice(b"{\"id\":");
        option_integer(out, Some(self.id));
        out.extend_from_slice(b",\"username\":");
        string(out, &self.username)?;
        out.extend_from_slice(b",\"email\":");
        string(out, &self.email)?;
        out.extend_from_slice(b",\"created_at\":");
        push_utc(out, &self.created_at)?;
        out.extend_from_slice(b",\"updated_at\":");
        push_utc(out, &self.updated_at)?;
        out.push(b'}');
        Ok(())
    }
}

/// Changes to one's own account; every field optional.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeRequest {
    /// Unique; stored lower-case. A new address needs `current_password`.
    #[schema(value_type = Option<String>, format = Email, max_length = 254)]
    pub email: Option<Email>,
    /// The new password; needs `current_password`. Ends every session of the account, this
    /// one included: log in again with the new password.
    #[schema(value_type = Option<String>, format = Password, min_length = 8, max_length = 128, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub password: Option<Password>,
    /// Your password now: needed to send `email` or `password`.
    #[validate(length(min = 1, max = 128))]
    #[schema(format = Password, min_length = 1, max_length = 128, nullable = false)]
    pub current_password: Option<String>,
}

/// Deleting the account needs the password.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteMeRequest {
    /// Your password now.
    #[validate(length(min = 1, max = 128))]
    #[schema(format = Password, min_length = 1, max_length = 128)]
    pub current_password: String,
}

/// A token whose account is gone no longer works: the service's "user not found" is a 401.
fn account_gone(error: service::ServiceError) -> ApiError {
    match error {
        service::ServiceError::NotFound { what: "user" } => ApiError::Unauthenticated {
            detail: "the account of this token no longer exists".to_owned(),
            invalid_token: true,
        },
        other => other.into(),
    }
}

/// The user whose token this is.
async fn current(db: &Db, auth: AuthUser) -> Result<user::Model, ApiError> {
    service::users::find_user(db.read(), auth.id)
        .await
        .map_err(account_gone)
}

/// Your account.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Your account", body = UserPublic),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/me")]
pub async fn get_me(db: Db, auth: AuthUser) -> Result<HttpResponse, ApiError> {
    // An account in JSON: about 150 bytes with short names, under 512 with the longest email.
    Ok(HttpResponse::Ok().json_written(&UserPublic::from(current(&db, auth).await?), 512))
}

/// Change your email or password.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    request_body = UpdateMeRequest,
    responses(
        (status = 200, description = "Updated account", body = UserPublic),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Wrong current_password", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Email taken (`errors` names it)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (or a new password or email without current_password)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many wrong passwords (the login throttle's counts); see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[patch("/me")]
pub async fn patch_me(
    db: Db,
    auth: AuthUser,
    state: web::Data<AppState>,
    client: ClientAddress,
    body: ValidJson<UpdateMeRequest>,
) -> Result<HttpResponse, ApiError> {
    // Both read the account themselves (a missing one is a 401 via account_gone).
    let body = body.0;
    let changes = service::users::AccountChanges {
        email: body.email,
        new_password: body.password,
        current_password: body.current_password,
    };
    // The password check (throttled) before the transaction: its count must stay.
    let proof = service::users::reauthenticate(
        db.pool(),
        &state.throttle,
        auth.id,
        &changes,
        client.as_deref(),
    )
    .await
    .map_err(account_gone)?;
    let txn = db.txn().await?;
    let updated = service::users::update_account(&*txn, auth.id, changes, proof)
        .await
        .map_err(account_gone)?;
    Ok(HttpResponse::Ok().json(UserPublic::from(updated)))
}

/// Delete your account and everything it owns (needs your password).
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    request_body = DeleteMeRequest,
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Wrong current_password", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing or invalid current_password", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many wrong passwords (the login throttle's counts); see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/me")]
pub async fn delete_me(
    db: Db,
    auth: AuthUser,
    state: web::Data<AppState>,
    client: ClientAddress,
    body: ValidJson<DeleteMeRequest>,
) -> Result<HttpResponse, ApiError> {
    service::users::confirm_password(
        db.pool(),
        &state.throttle,
        auth.id,
        &body.0.current_password,
        client.as_deref(),
    )
    .await
    .map_err(account_gone)?;
    // The rows go first (committed), then the objects: never a row without its bytes. A
    // missing account is a 401 via account_gone.
    let txn = db.txn().await?;
    service::users::delete_account_with_objects(&*txn, auth.id)
        .await
        .map_err(account_gone)?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_written_as_serde_json_writes_them() {
        let texts = [
            "ada",
            "Ada_Lovelace_1815",
            "a\"b\\c",
            "é@例え.jp",
            "x\u{1}y@example.com",
        ];
        for (index, (username, email)) in texts
            .iter()
            .flat_map(|username| texts.iter().map(move |email| (username, email)))
            .enumerate()
        {
            let at = |seconds: i64| {
                DateTime::from_timestamp(seconds, (index as u32 % 3) * 123_456_789)
                    .unwrap_or_default()
            };
            let account = UserPublic {
                id: (index as i64 - 3) * 1_000_000_007,
                username: (*username).to_owned(),
                email: (*email).to_owned(),
                created_at: at(index as i64 * 86_399),
                updated_at: at(1_700_000_000 + index as i64),
            };
            let mut ours = Vec::new();
            assert!(account.write_json(&mut ours).is_ok());
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&serde_json::to_vec(&account).unwrap_or_default())
            );
        }
    }
}

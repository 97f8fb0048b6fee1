//! `/api/v1/auth`: register, login, refresh, logout.

use actix_web::{HttpResponse, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::error::Problem;
use crate::extract::ValidJson;
use crate::routes::users::UserPublic;
use service::domain::{Email, Password, Username};

use crate::client_address::ClientAddress;
use crate::{ApiError, AppState, Db, validation};

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// 3-32 of `[A-Za-z0-9_]`, unique.
    #[schema(
        value_type = String,
        example = "ada",
        min_length = 3,
        max_length = 32,
        pattern = "^[A-Za-z0-9_]+$"
    )]
    pub username: Username,
    /// Unique; stored lower-case.
    #[schema(value_type = String, example = "ada@example.com", format = Email, max_length = 254)]
    pub email: Email,
    /// 8-128 characters.
    #[schema(value_type = String, example = "correct horse battery staple", format = Password, min_length = 8, max_length = 128, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub password: Password,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The username or the email address.
    #[validate(
        length(min = 1, max = 254),
        custom(function = "validation::no_control_characters")
    )]
    #[schema(
        example = "ada",
        min_length = 1,
        max_length = 254,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub username: String,
    #[validate(length(min = 1, max = 128))]
    #[schema(example = "correct horse battery staple", format = Password, min_length = 1, max_length = 128)]
    pub password: String,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    #[validate(length(min = 1, max = 256))]
    #[schema(min_length = 1, max_length = 256)]
    pub refresh_token: String,
}

/// Tokens handed out by login and refresh.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// Send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    #[schema(example = "bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    #[schema(example = 900)]
    pub expires_in: u64,
    /// Exchange at `POST /api/v1/auth/refresh` for new tokens; single use.
    pub refresh_token: String,
}

/// Create an account.
#[utoipa::path(
    operation_id = "register",
    tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created", body = UserPublic,
            headers(("Location" = String, description = "The account: `/api/v1/users/me` (log in to read it)"))),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Username or email taken (`errors` names the field)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),        (status = 429, description = "Too many registrations from this address (`AISTORY_REGISTRATIONS_PER_HOUR`); see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/register")]
pub async fn register(
    db: Db,
    state: web::Data<AppState>,
    client: ClientAddress,
    body: ValidJson<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    // Counted on its own connection: a refused or failed registration still counts.
    state
        .throttle
        .register(db.pool(), client.as_deref())
        .await?;
    let txn = db.txn().await?;
    let user = service::users::register(&*txn, body.username, body.email, &body.password).await?;
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::LOCATION, "/api/v1/users/me"))
        .json(UserPublic::from(user)))
}

/// Log in with username (or email) and password.
#[utoipa::path(
    operation_id = "login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Wrong username or password", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed logins; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/login")]
pub async fn login(
    db: Db,
    state: web::Data<AppState>,
    client: ClientAddress,
    body: ValidJson<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    // The TCP peer, or what a trusted proxy says: a client never chooses its throttling key.
    let user = service::auth::check_login(
        db.pool(),
        &state.throttle,
        &body.username,
        &body.password,
        client.as_deref(),
    )
    .await?;
    let txn = db.txn().await?;
    let tokens =
        service::auth::issue_tokens(&*txn, &state.access, state.refresh_ttl, &user).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(TokenResponse {
            access_token: tokens.access_token,
            token_type: "bearer",
            expires_in: tokens.expires_in,
            refresh_token: tokens.refresh_token,
        }))
}

/// Exchange a refresh token for new tokens (the old one stops working).
#[utoipa::path(
    operation_id = "refresh",
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens", body = TokenResponse),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Refresh token unknown, expired, revoked (logged out) or reused", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/refresh")]
pub async fn refresh(
    db: Db,
    state: web::Data<AppState>,
    body: ValidJson<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    // Its own transaction: a detected reuse revokes the family even though we answer 401.
    let (user, refresh_token) =
        service::auth::refresh::rotate(db.pool(), &body.0.refresh_token, state.refresh_ttl).await?;
    let (access_token, expires_in) = state.access.issue(user)?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(TokenResponse {
            access_token,
            token_type: "bearer",
            expires_in,
            refresh_token,
        }))
}

/// Revoke a refresh token (and every token rotated from the same login).
#[utoipa::path(
    operation_id = "logout",
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "Logged out (also when the token was unknown)"),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/logout")]
pub async fn logout(db: Db, body: ValidJson<RefreshRequest>) -> Result<HttpResponse, ApiError> {
    service::auth::refresh::revoke(db.pool(), &body.0.refresh_token).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// End every session of your account: every refresh token is revoked, and every access token
/// (this one too) can no longer write, nor keep an event stream open. Reads with an access
/// token already issued still work until it expires (at most `AISTORY_ACCESS_TOKEN_TTL_SECS`).
#[utoipa::path(
    operation_id = "logout_all",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Every session ended; log in again"),
        (status = 401, description = "Missing or invalid token, or a session already ended", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/logout-all")]
pub async fn logout_all(db: Db, auth: crate::AuthUser) -> Result<HttpResponse, ApiError> {
    let txn = db.txn().await?;
    service::auth::end_sessions(&*txn, auth.id).await?;
    Ok(HttpResponse::NoContent().finish())
}

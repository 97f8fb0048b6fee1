//! Stories: request one for a photo, follow the photo's progress as server-sent events, read
//! and delete stories.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use entity::story;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use service::photos::watch::{PhotoChange, WatchTiming};
use service::stories::Style;
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use super::photos::PhotoPublic;
use crate::error::Problem;
use crate::extract::{AuthUser, OptionalJson, ValidQuery};
use crate::{ApiError, AppState, Db};

/// Who writes stories: `builtin` (the built-in writer) or `openai`.
#[derive(Debug, ToSchema)]
#[schema(as = StoryProvider)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // documents `stories.provider`
pub enum StoryProviderName {
    Builtin,
    Openai,
}

/// A story as clients see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoryPublic {
    pub id: i64,
    pub photo_id: i64,
    pub title: String,
    /// Paragraphs separated by blank lines.
    pub body: String,
    #[schema(value_type = service::stories::Style, example = "adventure")]
    pub style: String,
    #[schema(example = "en")]
    pub language: String,
    /// Who wrote it.
    #[schema(value_type = StoryProviderName, example = "builtin")]
    pub provider: String,
    /// The provider's model (`null` for the built-in writer).
    #[schema(required = true)]
    pub model: Option<String>,
    #[serde(serialize_with = "crate::timestamps::utc")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::timestamps::utc")]
    pub updated_at: DateTime<Utc>,
}

impl From<story::Model> for StoryPublic {
    fn from(model: story::Model) -> Self {
        StoryPublic {
            id: model.id,
            photo_id: model.photo_id,
            title: model.title,
            body: model.body,
            style: model.style,
            language: model.language,
            provider: model.provider,
            model: model.model,
            created_at: model.created_at,
            updated_at: model.updated_at,
        }
    }
}

fn default_language() -> String {
    "en".to_owned()
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StoryRequestBody {
    /// `adventure` (default), `bedtime`, `mystery` or `poem`.
    #[serde(default)]
    pub style: Style,
    /// BCP 47 language tag (default `en`). The built-in writer writes English only.
    #[serde(default = "default_language")]
    #[validate(length(min = 2, max = 35))]
    #[schema(
        example = "en",
        min_length = 2,
        max_length = 35,
        pattern = "^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$"
    )]
    pub language: String,
}

impl Default for StoryRequestBody {
    fn default() -> Self {
        StoryRequestBody {
            style: Style::default(),
            language: default_language(),
        }
    }
}

/// Ask for a story about a photo. The photo goes to `processing` and a worker writes the story;
/// follow it at `/api/v1/photos/{id}/events` or poll the photo.
#[utoipa::path(
    operation_id = "request_story",
    tag = "stories",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Photo id")),
    request_body(content = Option<StoryRequestBody>, description = "Optional: without a body (or with `{}`), an `adventure` in `en`"),
    responses(
        (status = 202, description = "Queued; the photo, now `processing`, whose status says when the story is there (or follow /events)",
            body = PhotoPublic,
            headers(("Location" = String, description = "The photo: `/api/v1/photos/{id}`"))),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such photo of yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A story is already being written, or the photo is not uploaded yet", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "A body that is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "AISTORY_QUOTA_STORIES_PER_HOUR reached; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown style, or a language the story writer cannot write", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/{id}/story")]
pub async fn request_story(
    db: Db,
    auth: AuthUser,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: OptionalJson<StoryRequestBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let txn = db.txn().await?;
    let photo = service::stories::request_story(
        &*txn,
        state.stories.as_ref(),
        auth.id,
        id.into_inner(),
        body.style,
        &body.language,
        state.quotas.stories_per_hour,
    )
    .await?;
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, format!("/api/v1/photos/{}", photo.id)))
        .json(PhotoPublic::from(photo)))
}

/// The photo's newest story.
#[utoipa::path(
    operation_id = "photo_story",
    tag = "stories",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Photo id")),
    responses(
        (status = 200, description = "The newest story of the photo", body = StoryPublic),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such photo of yours, or no story yet", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/{id}/story")]
pub async fn photo_story(
    db: Db,
    auth: AuthUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let story = service::stories::latest_story(db.read(), auth.id, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(StoryPublic::from(story)))
}

/// After a failed read of the photo, the event stream tries again this much later. Otherwise
/// it reads the photo only when told it changed (`service::photos::changes`).
const EVENTS_RETRY: Duration = Duration::from_millis(500);
/// A comment line this often keeps proxies from closing a quiet stream.
const EVENTS_KEEPALIVE: Duration = Duration::from_secs(15);
/// The longest one stream stays open; clients reconnect (with `Last-Event-ID`).
const EVENTS_MAX: Duration = Duration::from_secs(30 * 60);

/// One event: `event`, `id` (the photo's version, what `Last-Event-ID` echoes) and one JSON
/// `data` line.
fn event(name: &str, id: &str, data: &impl Serialize) -> web::Bytes {
    let json = serde_json::to_string(data).unwrap_or_else(|_| "{}".to_owned());
    web::Bytes::from(format!("event: {name}\nid: {id}\ndata: {json}\n\n"))
}

/// The `data` of a `deleted` event.
#[derive(Debug, Serialize, ToSchema)]
pub struct PhotoDeleted {
    pub id: i64,
}

/// The query of `/photos/{id}/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// A stream ticket from `POST /api/v1/photos/{id}/events/ticket`, for clients that cannot
    /// send an `Authorization` header (a browser's `EventSource`). Not needed with a bearer
    /// token.
    #[param(max_length = 1024)]
    pub ticket: Option<String>,
}

/// The user a stream is for: the ticket's, or the bearer token's.
fn stream_user(
    req: &HttpRequest,
    state: &AppState,
    photo_id: i64,
    ticket: Option<&str>,
) -> Result<service::auth::TokenUser, ApiError> {
    let Some(ticket) = ticket else {
        return crate::extract::authenticate(req).map(crate::AuthUser::token);
    };
    state
        .access
        .verify_stream_ticket(ticket, photo_id)
        .map_err(|error| ApiError::Unauthenticated {
            detail: match error {
                service::auth::TokenError::Expired => {
                    "the stream ticket has expired; get a new one with \
                     POST /api/v1/photos/{id}/events/ticket"
                }
                service::auth::TokenError::Invalid => {
                    "the stream ticket is not valid for this photo"
                }
            }
            .to_owned(),
            invalid_token: true,
        })
}

/// Follow a photo as server-sent events (`text/event-stream`). The first event is the photo as
/// it is now; then one at every change (status, error, title), as long as the stream is open:
/// ask for a story while following, and the run shows up (`processing`, then `completed` or
/// `failed`). Events: `status` (data: the photo, as `GET /photos/{id}`), `deleted` (data:
/// `{"id": N}`, then the stream ends). Comment lines (`: keep-alive`) every 15 s of silence.
/// A stream lasts at most 30 minutes; reconnect with `Last-Event-ID` (an `EventSource` does)
/// and you get the photo at once only if it changed since that event. Authenticate with the
/// bearer token, or with `?ticket=` from `POST .../events/ticket` (browsers).
#[utoipa::path(
    operation_id = "photo_events",
    tag = "stories",
    security(("bearer" = []), ()),
    params(
        ("id" = i64, Path, description = "Photo id"),
        EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "The `id` of the last event received: the photo is sent at once only when it changed since"),
    ),
    responses(
        (status = 200, description = "Server-sent events (`event: status` or `event: deleted`, `id:` the photo's version, `data:` one line of JSON), until the photo is deleted or 30 minutes pass",
            content_type = "text/event-stream", body = String),
        (status = 401, description = "Missing or invalid token or ticket", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such photo of yours", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "AISTORY_QUOTA_STREAMS streams already open; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/{id}/events")]
pub async fn events(
    req: HttpRequest,
    db: Db,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    query: ValidQuery<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let photo_id = id.into_inner();
    let user = stream_user(&req, &state, photo_id, query.0.ticket.as_deref())?;
    // An ended session opens no stream; unknown photos are a 404 before any stream starts.
    service::auth::ensure_session(db.read(), user).await?;
    service::photos::get_photo(db.read(), user.user_id, photo_id).await?;
    let slot = state.streams.open(user.user_id, state.quotas.streams)?;
    let seen = req
        .headers()
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty());
    let timing = WatchTiming {
        retry: EVENTS_RETRY,
        keepalive: EVENTS_KEEPALIVE,
        max: EVENTS_MAX,
    };
    let changes = service::photos::watch::watch(
        db.read(),
        &state.changes,
        user,
        photo_id,
        timing,
        state.shutting_down.clone(),
        seen,
    );
    let open = crate::metrics::OpenStream::start();
    let stream = changes.map(move |change| {
        let _open = (&open, &slot);
        let chunk = match change {
            PhotoChange::Status { photo } => {
                let id = service::photos::watch::version(&photo);
                event("status", &id, &PhotoPublic::from(*photo))
            }
            PhotoChange::Deleted => event("deleted", "deleted", &PhotoDeleted { id: photo_id }),
            PhotoChange::Quiet => web::Bytes::from_static(b": keep-alive\n\n"),
            PhotoChange::Waiting => web::Bytes::from_static(b": waiting\n\n"),
        };
        Ok::<_, actix_web::Error>(chunk)
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream))
}

/// A ticket for one photo's event stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamTicket {
    /// Pass as `?ticket=` to the event stream. Opens this photo's stream (reconnections
    /// included) until it expires, and nothing else.
    pub ticket: String,
    /// Seconds the ticket can open the stream.
    #[schema(example = 60)]
    pub expires_in: u64,
    /// The stream's URL with the ticket: give it to `new EventSource(url)`.
    #[schema(example = "/api/v1/photos/1/events?ticket=...")]
    pub url: String,
}

/// Get a short-lived ticket to follow a photo's events without an `Authorization` header (a
/// browser's `EventSource`). Keep it out of logs and shared links: it works for its lifetime.
#[utoipa::path(
    operation_id = "photo_events_ticket",
    tag = "stories",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Photo id")),
    responses(
        (status = 200, description = "The ticket and the stream URL", body = StreamTicket,
            headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such photo of yours", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/{id}/events/ticket")]
pub async fn events_ticket(
    db: Db,
    auth: AuthUser,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let photo_id = id.into_inner();
    service::photos::get_photo(db.read(), auth.id, photo_id).await?;
    let (ticket, expires_in) = state.access.issue_stream_ticket(auth.token(), photo_id)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(StreamTicket {
            url: format!("/api/v1/photos/{photo_id}/events?ticket={ticket}"),
            ticket,
            expires_in,
        }))
}

/// Unknown parameters are ignored.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StoryListQuery {
    /// Only the stories of this photo.
    pub photo_id: Option<i64>,
    /// Page size, 1-100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{0,18}$")]
    pub cursor: Option<String>,
}

/// A page of stories.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoryPage {
    pub items: Vec<StoryPublic>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// Your stories, newest first.
#[utoipa::path(
    operation_id = "list_stories",
    tag = "stories",
    security(("bearer" = [])),
    params(StoryListQuery),
    responses(
        (status = 200, description = "A page of stories", body = StoryPage),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A photo_id or limit that is not a number (limit: 1-100), or a malformed cursor", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("")]
pub async fn list(
    db: Db,
    auth: AuthUser,
    query: ValidQuery<StoryListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.0;
    let limit = super::paging::limit(query.limit)?;
    let after = super::paging::decode_cursor(query.cursor.as_deref())?;
    let (rows, next) =
        service::stories::list_stories(db.read(), auth.id, query.photo_id, limit, after).await?;
    Ok(HttpResponse::Ok().json(StoryPage {
        items: rows.into_iter().map(StoryPublic::from).collect(),
        next_cursor: next.map(super::paging::encode_cursor),
    }))
}

/// One story.
#[utoipa::path(
    operation_id = "get_story",
    tag = "stories",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Story id")),
    responses(
        (status = 200, description = "The story", body = StoryPublic),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such story of yours", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/{id}")]
pub async fn get_one(db: Db, auth: AuthUser, id: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    let story = service::stories::get_story(db.read(), auth.id, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(StoryPublic::from(story)))
}

/// Delete a story (the photo stays).
#[utoipa::path(
    operation_id = "delete_story",
    tag = "stories",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Story id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such story of yours", body = Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/{id}")]
pub async fn delete_one(
    db: Db,
    auth: AuthUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let txn = db.txn().await?;
    service::stories::delete_story(&*txn, auth.id, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

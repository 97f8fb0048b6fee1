//! Stories: request one for a photo, follow the photo's progress as server-sent events, read
//! and delete stories.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpResponse, delete, get, post, web};
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
use crate::extract::{AuthUser, ValidJson};
use crate::{ApiError, AppState, Db};

/// A story as clients see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoryPublic {
    pub id: i64,
    pub photo_id: i64,
    pub title: String,
    /// Paragraphs separated by blank lines.
    pub body: String,
    #[schema(example = "adventure")]
    pub style: String,
    #[schema(example = "en")]
    pub language: String,
    /// Who wrote it: `builtin` or `openai`.
    #[schema(example = "builtin")]
    pub provider: String,
    pub model: Option<String>,
    pub created_at: DateTime<Utc>,
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

/// Ask for a story about a photo. The photo goes to `processing` and a worker writes the story;
/// follow it at `/api/v1/photos/{id}/events` or poll the photo.
#[utoipa::path(
    operation_id = "request_story",
    tag = "stories",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Photo id")),
    request_body = StoryRequestBody,
    responses(
        (status = 202, description = "Queued; the photo, now `processing`. Location: the photo, whose status says when the story is there (or follow /events)",
            body = PhotoPublic),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such photo of yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A story is already being written, or the photo is not uploaded yet", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown style, or a language the story writer cannot write", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/{id}/story")]
pub async fn request_story(
    db: Db,
    auth: AuthUser,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: ValidJson<StoryRequestBody>,
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

/// How often the event stream looks at the photo.
const EVENTS_POLL: Duration = Duration::from_millis(250);
/// A comment line this often keeps proxies from closing a quiet stream.
const EVENTS_KEEPALIVE: Duration = Duration::from_secs(15);
/// The longest one stream stays open; clients reconnect.
const EVENTS_MAX: Duration = Duration::from_secs(30 * 60);

/// One event. The `last` of a stream also tells an EventSource to wait an hour before it
/// reconnects (it would otherwise reconnect about every 3 s to a stream with nothing more to
/// say); a stream cut by the network sends no such event, so that reconnection stays quick.
fn event(name: &str, id: u64, data: &impl Serialize, last: bool) -> web::Bytes {
    let json = serde_json::to_string(data).unwrap_or_else(|_| "{}".to_owned());
    let retry = if last { "retry: 3600000\n" } else { "" };
    web::Bytes::from(format!("{retry}event: {name}\nid: {id}\ndata: {json}\n\n"))
}

/// One server-sent event of `/photos/{id}/events`, as its `text/event-stream` fields.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the wire format; the events are written by `event`
pub struct PhotoEvent {
    /// `status` (data: the photo) or `deleted` (data: `{"id": ...}`).
    #[schema(example = "status", pattern = "^(status|deleted)$")]
    event: String,
    /// The event's number in this stream, from 1.
    #[schema(example = "1", pattern = "^[0-9]+$")]
    id: String,
    /// JSON: the photo (as GET /photos/{id}) for `status`, `{"id": N}` for `deleted`.
    #[schema(content_media_type = "application/json")]
    data: String,
    /// On the last event only: `3600000`, so an EventSource does not reconnect at once to a
    /// stream that has ended.
    #[schema(example = "3600000", pattern = "^[0-9]+$")]
    retry: Option<String>,
}

/// Follow a photo's status as server-sent events (`text/event-stream`): a `status` event with
/// the photo now, then at every change while a story is being written (`processing`), until it
/// is `completed` or `failed` (or deleted: a `deleted` event). A photo in any other status
/// changes only when you act, so it gets one event and the stream ends: ask for the story
/// first, then follow its events.
#[utoipa::path(
    operation_id = "photo_events",
    tag = "stories",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Photo id")),
    responses(
        (status = 200, description = "Server-sent events: `event: status` with the photo as `data` (JSON), at each change",
            content_type = "text/event-stream", body = PhotoEvent),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such photo of yours", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/{id}/events")]
pub async fn events(
    db: Db,
    auth: AuthUser,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let photo_id = id.into_inner();
    // Unknown photos are a 404 before any stream starts.
    service::photos::get_photo(db.read(), auth.id, photo_id).await?;
    let timing = WatchTiming {
        poll: EVENTS_POLL,
        keepalive: EVENTS_KEEPALIVE,
        max: EVENTS_MAX,
    };
    let changes = service::photos::watch::watch(
        db.read(),
        auth.id,
        photo_id,
        timing,
        state.shutting_down.clone(),
    );
    let mut sent = 0;
    let stream = changes.map(move |change| {
        let chunk = match change {
            PhotoChange::Status { photo, last } => {
                sent += 1;
                event("status", sent, &PhotoPublic::from(*photo), last)
            }
            PhotoChange::Deleted => {
                sent += 1;
                event(
                    "deleted",
                    sent,
                    &serde_json::json!({ "id": photo_id }),
                    true,
                )
            }
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
    /// Pass as `cursor` for the next page; absent on the last page.
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
        (status = 400, description = "Malformed query string", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A limit outside 1-100, or a malformed cursor", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("")]
pub async fn list(
    db: Db,
    auth: AuthUser,
    query: web::Query<StoryListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
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

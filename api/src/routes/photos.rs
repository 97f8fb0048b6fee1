//! `/api/v1/photos`: upload (streamed), direct-to-bucket upload, list, read, rename, delete,
//! download.

use actix_multipart::Multipart;
use actix_web::http::header;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use entity::photo;
use entity::photo_status::PhotoStatus;
use entity::thumbnail_status::ThumbnailStatus;
use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::error::Problem;
use crate::extract::{AuthUser, ValidJson, ValidQuery};
use crate::json::{JsonWritten, WriteJson};
use service::photos::{Title, UploadSession};
use settings::DownloadMode;

use crate::{ApiError, AppState, Db, validation};

/// Where a photo is in its life: `pending` (bytes not stored yet: a direct upload),
/// `uploaded`, `processing` (a story is being written), `completed` (its story is there) or
/// `failed` (`error` says why).
#[derive(Debug, ToSchema)]
#[schema(as = PhotoStatus)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // documents `entity::photo_status::PhotoStatus`, which has no schema
pub enum PhotoStatusName {
    Pending,
    Uploaded,
    Processing,
    Completed,
    Failed,
}

/// Whether the photo's thumbnails exist: `pending` (being made), `ready` (`thumbnail_url`
/// serves them) or `unavailable` (a format the server cannot decode, like HEIC: there will be
/// none).
#[derive(Debug, ToSchema)]
#[schema(as = ThumbnailStatus)]
#[allow(dead_code)] // documents `entity::thumbnail_status::ThumbnailStatus`
pub enum ThumbnailStatusName {
    #[schema(rename = "pending")]
    Pending,
    #[schema(rename = "ready")]
    Ready,
    #[schema(rename = "unavailable")]
    Unavailable,
}

/// A photo as clients see it. Every field is always sent; the nullable ones are `null` when
/// unknown.
#[derive(Debug, Serialize, ToSchema)]
pub struct PhotoPublic {
    pub id: i64,
    #[schema(value_type = PhotoStatusName, example = "uploaded")]
    pub status: PhotoStatus,
    #[schema(required = true)]
    pub title: Option<String>,
    /// The type decided from the bytes (`null` while `pending`).
    #[schema(required = true, example = "image/jpeg")]
    pub content_type: Option<String>,
    #[schema(required = true)]
    pub size_bytes: Option<i64>,
    #[schema(required = true)]
    pub width: Option<i32>,
    #[schema(required = true)]
    pub height: Option<i32>,
    /// Hex SHA-256 of the bytes (also the download's ETag).
    #[schema(required = true)]
    pub checksum_sha256: Option<String>,
    /// When the photo was taken, as an instant: from EXIF `DateTimeOriginal` with its
    /// `OffsetTimeOriginal`. `null` when the photo does not say (or gives no time zone: see
    /// `taken_at_local`).
    #[schema(required = true)]
    #[serde(serialize_with = "crate::timestamps::utc_option")]
    pub taken_at: Option<DateTime<Utc>>,
    /// When the photo was taken by the camera's own clock (EXIF `DateTimeOriginal`, no time
    /// zone: `2024-05-01T18:30:00`), whether or not the photo gives its offset.
    #[schema(required = true, value_type = Option<String>, example = "2024-05-01T18:30:00", pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}$")]
    pub taken_at_local: Option<chrono::NaiveDateTime>,
    /// Why processing failed, for `failed` photos.
    #[schema(required = true)]
    pub error: Option<String>,
    /// Where to download the bytes.
    #[schema(value_type = String, example = "/api/v1/photos/1/content")]
    pub content_url: PhotoLink,
    #[schema(value_type = ThumbnailStatusName, example = "ready")]
    pub thumbnail_status: ThumbnailStatus,
    /// Where to download a thumbnail (`?size=256`, the default, or `?size=1024`) once
    /// `thumbnail_status` is `ready`.
    #[schema(value_type = String, example = "/api/v1/photos/1/thumbnail")]
    pub thumbnail_url: PhotoLink,
    #[serde(serialize_with = "crate::timestamps::utc")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::timestamps::utc")]
    pub updated_at: DateTime<Utc>,
}

/// `/api/v1/photos/{id}/{what}`, built when serialized (a page of 20 photos has 40 of them):
/// pieces pushed into one buffer and handed over as one string, not `fmt` through the JSON
/// writer's escaping adapter piece by piece.
#[derive(Debug, Clone, Copy)]
pub struct PhotoLink(pub i64, pub &'static str);

impl Serialize for PhotoLink {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        const PREFIX: &str = "/api/v1/photos/";
        let mut id = itoa::Buffer::new();
        let id = id.format(self.0);
        let mut link = String::with_capacity(PREFIX.len() + id.len() + 1 + self.1.len());
        link.push_str(PREFIX);
        link.push_str(id);
        link.push('/');
        link.push_str(self.1);
        serializer.serialize_str(&link)
    }
}

impl From<photo::Model> for PhotoPublic {
    fn from(model: photo::Model) -> Self {
        PhotoPublic {
            content_url: PhotoLink(model.id, "content"),
            thumbnail_url: PhotoLink(model.id, "thumbnail"),
            thumbnail_status: model.thumbnail_status,
            id: model.id,
            status: model.status,
            title: model.title,
            content_type: model.content_type,
            size_bytes: model.size_bytes,
            width: model.width,
            height: model.height,
            checksum_sha256: model.checksum_sha256,
            taken_at: model.taken_at,
            taken_at_local: model.taken_at_local,
            error: model.error,
            created_at: model.created_at,
            updated_at: model.updated_at,
        }
    }
}

impl WriteJson for PhotoPublic {
    /// What `#[derive(Serialize)]` writes, by hand (`crate::json`; test below).
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        use crate::json::{option_integer, option_string, string};
        use crate::timestamps::{push_utc, push_utc_option};
        let mut id = itoa::Buffer::new();
        let id = id.format(self.id).as_bytes();
        out.extend_from_slice(b"{\"id\":");
        out.extend_from_slice(id);
        out.extend_from_slice(b",\"status\":");
        string(out, self.status.as_str())?;
        out.extend_from_slice(b",\"title\":");
        option_string(out, self.title.as_deref())?;
        out.extend_from_slice(b",\"content_type\":");
        option_string(out, self.content_type.as_deref())?;
        out.extend_from_slice(b",\"size_bytes\":");
        option_integer(out, self.size_bytes);
        out.extend_from_slice(b",\"width\":");
        option_integer(out, self.width);
        out.extend_from_slice(b",\"height\":");
        option_integer(out, self.height);
        out.extend_from_slice(b",\"checksum_sha256\":");
        option_string(out, self.checksum_sha256.as_deref())?;
        out.extend_from_slice(b",\"taken_at\":");
        push_utc_option(out, self.taken_at.as_ref())?;
        out.extend_from_slice(b",\"taken_at_local\":");
        crate::json::value(out, &self.taken_at_local)?;
        out.extend_from_slice(b",\"error\":");
        option_string(out, self.error.as_deref())?;
        let link = |out: &mut Vec<u8>, link: PhotoLink| {
            out.extend_from_slice(b"\"/api/v1/photos/");
            out.extend_from_slice(itoa::Buffer::new().format(link.0).as_bytes());
            out.push(b'/');
            out.extend_from_slice(link.1.as_bytes());
            out.push(b'"');
        };
        out.extend_from_slice(b",\"content_url\":");
        link(out, self.content_url);
        out.extend_from_slice(b",\"thumbnail_status\":");
        string(out, self.thumbnail_status.as_str())?;
        out.extend_from_slice(b",\"thumbnail_url\":");
        link(out, self.thumbnail_url);
        out.extend_from_slice(b",\"created_at\":");
        push_utc(out, &self.created_at)?;
        out.extend_from_slice(b",\"updated_at\":");
        push_utc(out, &self.updated_at)?;
        out.push(b'}');
        Ok(())
    }
}

/// The multipart form of an upload.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)] // additionalProperties: false (the handler refuses other parts)
#[allow(dead_code)]
pub struct UploadForm {
    /// The image: JPEG, PNG, WebP, GIF or HEIC (decided from its bytes).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// Optional title, up to 200 characters.
    #[schema(
        max_length = 200,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u202a-\\u202e\\u2066-\\u2069]*$"
    )]
    title: Option<String>,
}

/// Multipart framing and the title field on top of the photo itself.
const MULTIPART_OVERHEAD: u64 = 64 * 1024;

/// Upload a photo (multipart: `file`, optional `title`). The bytes are streamed to storage.
#[utoipa::path(
    operation_id = "upload_photo",
    tag = "photos",
    security(("bearer" = [])),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Stored; status `uploaded`", body = PhotoPublic,
            headers(("Location" = String, description = "The photo: `/api/v1/photos/{id}`"))),
        (status = 400, description = "Malformed multipart body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "AISTORY_QUOTA_PHOTOS or AISTORY_QUOTA_BYTES reached", body = Problem, content_type = "application/problem+json"),
        (status = 408, description = "The body stopped arriving for AISTORY_UPLOAD_IDLE_TIMEOUT_SECS", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than AISTORY_MAX_UPLOAD_BYTES", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not multipart, or not an accepted image", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing file, unknown field or invalid title", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("")]
pub async fn upload(
    req: HttpRequest,
    db: Db,
    auth: AuthUser,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let result = store_upload(req, db, auth, state, payload).await;
    if let Err(error) = &result {
        let reason = match error {
            ApiError::PayloadTooLarge { .. } => Some("too_large"),
            ApiError::UnsupportedMediaType { .. } => Some("unsupported_media"),
            ApiError::RequestTimeout { .. } => Some("timeout"),
            ApiError::BadRequest { .. } => Some("malformed"),
            ApiError::Validation { .. } => Some("invalid"),
            _ => None,
        };
        if let Some(reason) = reason {
            service::metrics::upload_refused(reason);
        }
    }
    result
}

async fn store_upload(
    req: HttpRequest,
    db: Db,
    auth: AuthUser,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let is_multipart = req
        .mime_type()
        .ok()
        .flatten()
        .is_some_and(|mime| mime.essence_str() == "multipart/form-data");
    if !is_multipart {
        return Err(ApiError::UnsupportedMediaType {
            detail: "send the photo as multipart/form-data with a `file` field".to_owned(),
        });
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > state.max_upload_bytes + MULTIPART_OVERHEAD) {
        return Err(service::ServiceError::TooLarge {
            limit_bytes: state.max_upload_bytes,
        }
        .into());
    }
    // A client that stops sending (slow loris) is cut off after the idle time-out.
    let stalled = std::rc::Rc::new(std::cell::Cell::new(false));
    let mut form = Multipart::new(
        req.headers(),
        idle_timeout(payload, state.upload_idle_timeout, stalled.clone()),
    );
    let mut session = UploadSession::new(db.pool(), &state.storage, auth.id, state.upload_limits);
    let outcome = read_upload_form(&mut form, &mut session).await;
    let outcome = match outcome {
        Err(_) if stalled.get() => Err(ApiError::RequestTimeout {
            detail: format!(
                "the upload stopped arriving for {} s; send the body without pauses",
                state.upload_idle_timeout.as_secs()
            ),
        }),
        other => other,
    };
    match outcome {
        Ok(()) => match session.finish() {
            Some(photo) => Ok(HttpResponse::Created()
                .insert_header((header::LOCATION, format!("/api/v1/photos/{}", photo.id)))
                .json(PhotoPublic::from(photo))),
            None => Err(ApiError::field("file", "is required")),
        },
        Err(error) => {
            // Whatever failed after the file was stored, the client gets no photo.
            session.abandon().await?;
            Err(error)
        }
    }
}

/// `payload`, failing when no bytes arrive for `idle` (and noting it in `stalled`).
fn idle_timeout(
    payload: web::Payload,
    idle: std::time::Duration,
    stalled: std::rc::Rc<std::cell::Cell<bool>>,
) -> impl futures_util::Stream<Item = Result<web::Bytes, actix_web::error::PayloadError>> {
    futures_util::stream::unfold((payload, false), move |(mut payload, done)| {
        let stalled = stalled.clone();
        async move {
            if done {
                return None;
            }
            match tokio::time::timeout(idle, payload.next()).await {
                Ok(Some(item)) => Some((item, (payload, false))),
                Ok(None) => None,
                Err(_) => {
                    stalled.set(true);
                    let error = std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the body stopped arriving",
                    );
                    Some((Err(error.into()), (payload, true)))
                }
            }
        }
    })
    // Multipart may poll again after the end: a fused stream keeps answering "ended".
    .fuse()
}

/// Reads the parts of an upload form into `session`: one `file` (streamed to storage as it
/// arrives) and at most one `title`, in either order.
async fn read_upload_form(
    form: &mut Multipart,
    session: &mut UploadSession,
) -> Result<(), ApiError> {
    let mut seen_title = false;
    let malformed = |error: actix_multipart::MultipartError| ApiError::BadRequest {
        detail: format!("the multipart body is malformed: {error}"),
    };
    while let Some(mut field) = form.try_next().await.map_err(malformed)? {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "title" if !seen_title => {
                seen_title = true;
                let bytes = match field.bytes(4 * 1024).await {
                    Ok(Ok(bytes)) => bytes,
                    Ok(Err(error)) => return Err(malformed(error)),
                    Err(_) => {
                        return Err(ApiError::field(
                            "title",
                            "must be at most 200 characters long",
                        ));
                    }
                };
                let text = String::from_utf8(bytes.to_vec())
                    .map_err(|_| ApiError::field("title", "must be UTF-8 text"))?;
                let title = Title::parse(text).map_err(|rule| rule.on("title"))?;
                session.set_title(title.non_empty()).await?;
            }
            "file" if !session.has_file() => {
                let chunks = field.by_ref().map(|chunk| {
                    chunk.map_err(|error| service::photos::StreamError(error.to_string()))
                });
                session.store_file(chunks).await?;
            }
            other => {
                let what = match other {
                    "file" => "a second `file`",
                    "title" => "a second `title`",
                    _ => "an unknown field",
                };
                let field = if other.is_empty() { "form" } else { other };
                return Err(ApiError::field(
                    field,
                    &format!("{what}: send one `file` and an optional `title`"),
                ));
            }
        }
    }
    Ok(())
}

/// Unknown parameters are ignored.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only photos in this status.
    #[param(value_type = Option<PhotoStatusName>)]
    pub status: Option<PhotoStatus>,
    /// Page size, 1-100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{0,18}$")]
    pub cursor: Option<String>,
}

/// A page of photos.
#[derive(Debug, Serialize, ToSchema)]
pub struct PhotoPage {
    pub items: Vec<PhotoPublic>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

impl WriteJson for PhotoPage {
    /// What `#[derive(Serialize)]` writes, by hand (test below).
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"items\":");
        self.items.write_json(out)?;
        out.extend_from_slice(b",\"next_cursor\":");
        crate::json::option_string(out, self.next_cursor.as_deref())?;
        out.push(b'}');
        Ok(())
    }
}

/// Your photos, newest first.
#[utoipa::path(
    operation_id = "list_photos",
    tag = "photos",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of photos", body = PhotoPage),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An unknown status, a limit that is not a number from 1 to 100, or a malformed cursor", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("")]
pub async fn list(
    db: Db,
    auth: AuthUser,
    query: ValidQuery<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.0;
    let limit = super::paging::limit(query.limit)?;
    let status = query.status;
    let after = super::paging::decode_cursor(query.cursor.as_deref())?;
    let (rows, next) =
        service::photos::list_photos(db.read(), auth.id, status, limit, after).await?;
    let capacity = 64 + rows.len() * crate::json::PHOTO_BYTES;
    Ok(HttpResponse::Ok().json_written(
        &PhotoPage {
            items: rows.into_iter().map(PhotoPublic::from).collect(),
            next_cursor: next.map(super::paging::encode_cursor),
        },
        capacity,
    ))
}

/// One photo.
#[utoipa::path(
    operation_id = "get_photo",
    tag = "photos",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Photo id")),
    responses(
        (status = 200, description = "The photo", body = PhotoPublic),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such photo of yours", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/{id}")]
pub async fn get_one(db: Db, auth: AuthUser, id: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    let photo = service::photos::get_photo(db.read(), auth.id, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json_written(&PhotoPublic::from(photo), crate::json::PHOTO_BYTES))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameRequest {
    /// The new title (up to 200 characters), or null to clear it.
    #[schema(value_type = Option<String>, max_length = 200, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u202a-\\u202e\\u2066-\\u2069]*$")]
    pub title: Option<Title>,
}

/// Change a photo's title.
#[utoipa::path(
    operation_id = "rename_photo",
    tag = "photos",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Photo id")),
    request_body = RenameRequest,
    responses(
        (status = 200, description = "The renamed photo", body = PhotoPublic),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such photo of yours", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid title", body = Problem, content_type = "application/problem+json"),
    )
)]
#[patch("/{id}")]
pub async fn rename(
    db: Db,
    auth: AuthUser,
    id: web::Path<i64>,
    body: ValidJson<RenameRequest>,
) -> Result<HttpResponse, ApiError> {
    let title = body.0.title.and_then(Title::non_empty);
    let txn = db.txn().await?;
    let photo = service::photos::rename_photo(&*txn, auth.id, id.into_inner(), title).await?;
    Ok(HttpResponse::Ok().json(PhotoPublic::from(photo)))
}

/// Delete a photo and its bytes.
#[utoipa::path(
    operation_id = "delete_photo",
    tag = "photos",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Photo id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such photo of yours", body = Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/{id}")]
pub async fn delete_one(
    db: Db,
    auth: AuthUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let txn = db.txn().await?;
    service::photos::delete_photo(&*txn, auth.id, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A file's bytes.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // documents the download's body
pub struct PhotoBytes(Vec<u8>);

/// Download the photo's bytes. `If-None-Match` with the ETag answers 304.
#[utoipa::path(
    operation_id = "photo_content",
    tag = "photos",
    security(("bearer" = [])),
    params(
        ("id" = i64, Path, description = "Photo id"),
        ("If-None-Match" = Option<String>, Header, description = "An ETag of an earlier download (weak or strong, or `*`): answers 304 when it still matches"),
    ),
    responses(
        (status = 200, description = "The bytes, with Content-Type (the photo's own), Content-Length and ETag",
            headers(
                ("ETag" = String, description = "The strong entity tag: the SHA-256 of the bytes, quoted"),
                ("Cache-Control" = String, description = "`private, max-age=0, must-revalidate`: keep it, but revalidate with If-None-Match"),
                ("Content-Disposition" = String, description = "`inline; filename=\"photo-{id}.{ext}\"`"),
                ("X-Content-Type-Options" = String, description = "`nosniff`"),
                ("Content-Security-Policy" = String, description = "`sandbox; default-src 'none'`: never run as a page"),
            ),
            content(
                (PhotoBytes = "image/jpeg"), (PhotoBytes = "image/png"), (PhotoBytes = "image/webp"),
                (PhotoBytes = "image/gif"), (PhotoBytes = "image/heic")
            )),
        (status = 302, description = "`AISTORY_DOWNLOADS=redirect` (the default on an S3 store): the bytes are at `Location`, a presigned URL of the bucket that works for `AISTORY_DOWNLOAD_URL_TTL_SECS` without credentials; its answer carries the same Content-Type and Content-Disposition",
            headers(
                ("Location" = String, description = "The presigned URL"),
                ("ETag" = String, description = "The same entity tag as a 200's"),
                ("Cache-Control" = String, description = "`private, max-age=` half the URL's life"),
            )),
        (status = 304, description = "Not modified (ETag matched)",
            headers(("ETag" = String, description = "The entity tag that matched"))),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such photo of yours, or its bytes are not uploaded yet", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/{id}/content")]
pub async fn content(
    req: HttpRequest,
    db: Db,
    auth: AuthUser,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let photo = service::photos::get_photo(db.read(), auth.id, id.into_inner()).await?;
    let (Some(checksum), Some(size)) = (&photo.checksum_sha256, photo.size_bytes) else {
        return Err(ApiError::NotFound {
            what: "photo content (not uploaded yet)".to_owned(),
        });
    };
    let etag = format!("\"{checksum}\"");
    if none_match(&req, &etag) {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .finish());
    }
    let content_type = photo
        .content_type
        .clone()
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    // The bytes are the user's, not ours: never sniffed into something else, never run as a
    // page (a GIF that is also HTML stays an image), saved under a name we chose.
    let extension = service::images::ImageKind::from_content_type(&content_type)
        .map_or("bin", service::images::ImageKind::extension);
    if state.downloads == DownloadMode::Redirect {
        let disposition = format!("inline; filename=\"photo-{}.{extension}\"", photo.id);
        let answer =
            redirect_to_bucket(&state, &photo.object_key, &content_type, disposition, &etag)?;
        service::metrics::download("bucket", u64::try_from(size).unwrap_or(0));
        return Ok(answer);
    }
    let stream = state
        .storage
        .stream(&photo.object_key)
        .await
        .map_err(service::ServiceError::from)?;
    service::metrics::download("api", u64::try_from(size).unwrap_or(0));
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "private, max-age=0, must-revalidate"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "sandbox; default-src 'none'",
        ))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("inline; filename=\"photo-{}.{extension}\"", photo.id),
        ))
        .no_chunking(u64::try_from(size).unwrap_or(0))
        .streaming(stream.map_err(|error| {
            tracing::warn!(%error, "streaming a photo failed mid-way");
            std::io::Error::other("storage stream failed")
        })))
}

/// A thumbnail's size: its long side in pixels.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
pub enum ThumbnailSize {
    #[default]
    #[serde(rename = "256")]
    #[schema(rename = "256")]
    Small,
    #[serde(rename = "1024")]
    #[schema(rename = "1024")]
    Large,
}

impl ThumbnailSize {
    fn pixels(self) -> u32 {
        match self {
            ThumbnailSize::Small => service::photos::thumbnails::SIZES[0],
            ThumbnailSize::Large => service::photos::thumbnails::SIZES[1],
        }
    }
}

/// Unknown parameters are ignored.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ThumbnailQuery {
    /// The long side in pixels: 256 (default) or 1024 (never larger than the photo).
    #[param(value_type = Option<ThumbnailSize>)]
    pub size: Option<ThumbnailSize>,
}

/// A thumbnail of the photo: a JPEG, its long side `size` pixels (or the photo's own, if
/// smaller). Made by a job after the upload: until then 404 `thumbnail-not-ready` with
/// `Retry-After`; photos the server cannot decode (HEIC) have none (404
/// `thumbnail-unavailable`). Cached for a year: a photo's bytes never change.
#[utoipa::path(
    operation_id = "photo_thumbnail",
    tag = "photos",
    security(("bearer" = [])),
    params(
        ("id" = i64, Path, description = "Photo id"),
        ThumbnailQuery,
        ("If-None-Match" = Option<String>, Header, description = "An ETag of an earlier download: answers 304 when it still matches"),
    ),
    responses(
        (status = 200, description = "The thumbnail (image/jpeg)",
            headers(
                ("ETag" = String, description = "The strong entity tag: the photo's SHA-256 and the size, quoted"),
                ("Cache-Control" = String, description = "`private, max-age=31536000, immutable`"),
                ("X-Content-Type-Options" = String, description = "`nosniff`"),
                ("Content-Security-Policy" = String, description = "`sandbox; default-src 'none'`"),
            ),
            content((PhotoBytes = "image/jpeg"))),
        (status = 302, description = "`AISTORY_DOWNLOADS=redirect` (the default on an S3 store): the bytes are at `Location`, a presigned URL of the bucket that works for `AISTORY_DOWNLOAD_URL_TTL_SECS` without credentials; its answer carries the same Content-Type and Content-Disposition",
            headers(
                ("Location" = String, description = "The presigned URL"),
                ("ETag" = String, description = "The same entity tag as a 200's"),
                ("Cache-Control" = String, description = "`private, max-age=` half the URL's life"),
            )),
        (status = 304, description = "Not modified (ETag matched)",
            headers(("ETag" = String, description = "The entity tag that matched"))),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such photo of yours; or its thumbnail is not made yet (`/problems/thumbnail-not-ready`, with `Retry-After`) or will not be (`/problems/thumbnail-unavailable`)", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = Option<u64>, description = "Seconds to wait, when the thumbnail is being made"))),
        (status = 422, description = "A size other than 256 or 1024", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/{id}/thumbnail")]
pub async fn thumbnail(
    req: HttpRequest,
    db: Db,
    auth: AuthUser,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    query: ValidQuery<ThumbnailQuery>,
) -> Result<HttpResponse, ApiError> {
    let size = query.0.size.unwrap_or_default().pixels();
    let photo = service::photos::get_photo(db.read(), auth.id, id.into_inner()).await?;
    let checksum = match (photo.thumbnail_status, &photo.checksum_sha256) {
        (ThumbnailStatus::Ready, Some(checksum)) => checksum,
        (ThumbnailStatus::Unavailable, _) => {
            return Err(ApiError::ThumbnailUnavailable {
                detail: format!(
                    "this photo ({}) cannot be decoded by the server, so it has no thumbnail; \
                     show its content instead",
                    photo.content_type.as_deref().unwrap_or("unknown type")
                ),
            });
        }
        _ => {
            return Err(ApiError::ThumbnailNotReady {
                retry_after_secs: 1,
            });
        }
    };
    let etag = format!("\"{checksum}-{size}\"");
    if none_match(&req, &etag) {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .insert_header((header::CACHE_CONTROL, THUMBNAIL_CACHE))
            .finish());
    }
    let key = service::storage::keys::thumbnail(&photo.object_key, size);
    if state.downloads == DownloadMode::Redirect {
        let disposition = format!("inline; filename=\"photo-{}-{size}.jpg\"", photo.id);
        let answer = redirect_to_bucket(&state, &key, "image/jpeg", disposition, &etag)?;
        // The thumbnail's size is the store's to know: counted as a download, 0 bytes.
        service::metrics::download("bucket", 0);
        return Ok(answer);
    }
    let bytes = state
        .storage
        .get(&key)
        .await
        .map_err(service::ServiceError::from)?;
    service::metrics::download("api", bytes.len() as u64);
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "image/jpeg"))
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, THUMBNAIL_CACHE))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "sandbox; default-src 'none'",
        ))
        .body(bytes))
}

/// `AISTORY_DOWNLOADS=redirect`: a 302 to a presigned GET of `key` (valid for
/// `AISTORY_DOWNLOAD_URL_TTL_SECS`), whose answer the bucket gives our content type and
/// disposition; the bytes skip this server. Kept by the browser for half the URL's life.
fn redirect_to_bucket(
    state: &AppState,
    key: &str,
    content_type: &str,
    content_disposition: String,
    etag: &str,
) -> Result<HttpResponse, ApiError> {
    let ttl = state.download_url_ttl.as_secs();
    let headers = service::storage::ResponseHeaders {
        content_type: content_type.to_owned(),
        content_disposition,
        // The object under a key never changes; the URL stops working after `ttl`.
        cache_control: format!("private, max-age={ttl}, immutable"),
    };
    let url = state
        .storage
        .presign_get(key, &headers, state.download_url_ttl)
        .map_err(service::ServiceError::from)?;
    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, url))
        .insert_header((header::ETAG, etag.to_owned()))
        .insert_header((
            header::CACHE_CONTROL,
            format!("private, max-age={}", ttl / 2),
        ))
        .finish())
}

/// A thumbnail never changes (the photo's bytes do not): a browser keeps it, for its user only.
const THUMBNAIL_CACHE: &str = "private, max-age=31536000, immutable";

/// Whether `If-None-Match` holds `etag` (or `*`). RFC 9110 13.1.2 compares weakly here: `W/"x"`
/// matches `"x"`.
pub fn none_match(req: &HttpRequest, etag: &str) -> bool {
    let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    let wanted = opaque(etag);
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|tag| tag.trim() == "*" || opaque(tag) == wanted)
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DirectUploadRequest {
    /// image/jpeg, image/png, image/webp, image/gif or image/heic.
    #[validate(length(min = 1, max = 100))]
    #[schema(example = "image/jpeg", min_length = 1, max_length = 100)]
    pub content_type: String,
    /// Exact size of the file in bytes.
    #[serde(deserialize_with = "validation::whole_number")]
    #[validate(range(min = 1))]
    #[schema(minimum = 1)]
    pub size_bytes: u64,
    #[schema(value_type = Option<String>, max_length = 200, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u202a-\\u202e\\u2066-\\u2069]*$")]
    pub title: Option<Title>,
}

/// Where and how to PUT the bytes.
#[derive(Debug, Serialize, ToSchema)]
pub struct DirectUpload {
    #[schema(example = "PUT")]
    pub method: &'static str,
    pub url: String,
    /// Send exactly these headers: they are part of the signature.
    pub headers: std::collections::BTreeMap<String, String>,
    pub expires_in: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DirectUploadResponse {
    pub photo: PhotoPublic,
    pub upload: DirectUpload,
}

/// Start a direct-to-bucket upload (S3 stores): a `pending` photo and a presigned PUT URL.
#[utoipa::path(
    operation_id = "start_direct_upload",
    tag = "photos",
    security(("bearer" = [])),
    request_body = DirectUploadRequest,
    responses(
        (status = 201, description = "PUT the bytes to `upload.url`, then POST .../complete", body = DirectUploadResponse),
        (status = 400, description = "Malformed JSON, or the store is not S3", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "AISTORY_QUOTA_PHOTOS or AISTORY_QUOTA_BYTES reached", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON, or not an accepted image type", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (a size_bytes over the upload limit too)", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/uploads")]
pub async fn create_direct_upload(
    db: Db,
    auth: AuthUser,
    state: web::Data<AppState>,
    body: ValidJson<DirectUploadRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let title = body.title.and_then(Title::non_empty);
    let (photo, presigned) = service::photos::create_direct_upload(
        db.pool(),
        &state.storage,
        auth.id,
        &body.content_type,
        body.size_bytes,
        state.upload_limits,
        title,
    )
    .await?;
    Ok(HttpResponse::Created().json(DirectUploadResponse {
        photo: PhotoPublic::from(photo),
        upload: DirectUpload {
            method: "PUT",
            url: presigned.url,
            headers: presigned.headers.into_iter().collect(),
            expires_in: presigned.expires_in.as_secs(),
        },
    }))
}

/// Finish a direct upload: the object is checked (present, within the limit, an image).
#[utoipa::path(
    operation_id = "complete_direct_upload",
    tag = "photos",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Photo id")),
    responses(
        (status = 200, description = "Stored; status `uploaded`", body = PhotoPublic),
        (status = 400, description = "The store is not S3", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such photo of yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not pending, or nothing uploaded yet", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The object is over the limit (it was deleted)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The object is not an accepted image (it was deleted)", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/{id}/complete")]
pub async fn complete_direct_upload(
    db: Db,
    auth: AuthUser,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let photo = service::photos::complete_direct_upload(
        db.pool(),
        &state.storage,
        auth.id,
        id.into_inner(),
        state.upload_limits,
    )
    .await?;
    Ok(HttpResponse::Ok().json(PhotoPublic::from(photo)))
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone};

    use super::*;

    /// A photo with every optional field set from `pick` (a varying number), its strings from
    /// `texts`.
    fn photo(pick: u64, texts: &[&str]) -> PhotoPublic {
        let text = |shift: u64| {
            let index = ((pick >> shift) as usize) % (texts.len() + 1);
            texts.get(index).map(|text| (*text).to_owned())
        };
        let when = |seconds: u64, nanos: u32| {
            DateTime::from_timestamp((seconds % 300_000_000_000) as i64 - 100_000_000_000, nanos)
        };
        let statuses: Vec<PhotoStatus> = <PhotoStatus as sea_orm::Iterable>::iter().collect();
        let thumbnails: Vec<ThumbnailStatus> =
            <ThumbnailStatus as sea_orm::Iterable>::iter().collect();
        let id = (pick as i64).wrapping_mul(2_654_435_761);
        PhotoPublic {
            id,
            status: statuses[(pick % statuses.len() as u64) as usize],
            title: text(3),
            content_type: text(7),
            size_bytes: (pick & 1 == 0).then_some(pick as i64 >> 3),
            width: (pick & 2 == 0).then_some((pick >> 5) as i32),
            height: (pick & 4 == 0).then_some(-((pick >> 9) as i32)),
            checksum_sha256: text(11),
            taken_at: if pick & 8 == 0 {
                when(pick, (pick % 1_000_000_000) as u32)
            } else {
                None
            },
            taken_at_local: (pick & 16 == 0).then(|| {
                NaiveDate::from_ymd_opt(2024, 5, 1)
                    .and_then(|day| day.and_hms_nano_opt(18, 30, 0, (pick % 3) as u32 * 1_000_000))
                    .unwrap_or_default()
            }),
            error: text(13),
            content_url: PhotoLink(id, "content"),
            thumbnail_status: thumbnails[(pick % thumbnails.len() as u64) as usize],
            thumbnail_url: PhotoLink(id, "thumbnail"),
            created_at: when(pick >> 1, 0).unwrap_or_default(),
            updated_at: when(pick >> 2, (pick % 1_000) as u32 * 1_000).unwrap_or_default(),
        }
    }

    #[test]
    fn photos_are_written_as_serde_json_writes_them() {
        let texts = [
            "",
            "Sunset",
            "a \"quoted\" \\ title",
            "back\\slash",
            "tab\tline\n\u{1}",
            "é 日本 🎞 \u{202e}",
            "image/jpeg",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ];
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut photos = Vec::new();
        for _ in 0..5_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            photos.push(photo(seed, &texts));
        }
        // A leap second, and years chrono writes with a sign.
        let mut odd = photo(0, &texts);
        odd.created_at = NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|day| day.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
            .map(|at| at.and_utc())
            .unwrap_or_default();
        odd.taken_at = Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).single();
        odd.taken_at_local = NaiveDate::from_ymd_opt(-5, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0));
        photos.push(odd);
        for photo in &photos {
            let mut ours = Vec::new();
            assert!(photo.write_json(&mut ours).is_ok());
            let theirs = serde_json::to_vec(photo).unwrap_or_default();
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&theirs)
            );
        }
        for (items, next_cursor) in [
            (0, None),
            (1, Some("abc".to_owned())),
            (20, Some("a\"b".to_owned())),
            (3, None),
        ] {
            let page = PhotoPage {
                items: photos.drain(..items).collect(),
                next_cursor,
            };
            let mut ours = Vec::new();
            assert!(page.write_json(&mut ours).is_ok());
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&serde_json::to_vec(&page).unwrap_or_default())
            );
        }
    }
}

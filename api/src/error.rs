//! Errors as RFC 9457 problem details (`application/problem+json`). Client mistakes get a
//! 4xx that says what to fix; our faults get a 5xx whose cause is logged, never sent.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use service::ServiceError;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    BadRequest { detail: String },
    #[error("{detail}")]
    Unauthenticated {
        detail: String,
        /// A token was sent but is bad (adds `error="invalid_token"` to `WWW-Authenticate`).
        invalid_token: bool,
    },
    /// Authenticated, but not allowed to do this as sent (a wrong current password).
    #[error("{detail}")]
    Forbidden { detail: String },
    #[error("{what} not found")]
    NotFound { what: String },
    /// A thumbnail that is being made: 404 with `Retry-After`.
    #[error("the thumbnail is not made yet; retry in {retry_after_secs} s")]
    ThumbnailNotReady { retry_after_secs: u64 },
    /// A photo that will have no thumbnail.
    #[error("{detail}")]
    ThumbnailUnavailable { detail: String },
    /// `allow` lists the methods the path does serve (the `Allow` header).
    #[error("this method is not allowed on this path; allowed: {allow}")]
    MethodNotAllowed { allow: String },
    #[error("{detail}")]
    Conflict { detail: String },
    /// A unique value (a username, an email address) that someone already has.
    #[error("{detail}")]
    Taken { field: &'static str, detail: String },
    #[error("{detail}")]
    PayloadTooLarge { detail: String },
    /// The client stopped sending its body.
    #[error("{detail}")]
    RequestTimeout { detail: String },
    #[error("{detail}")]
    UnsupportedMediaType { detail: String },
    #[error("too many attempts; retry in {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
    /// A rate quota (stories per hour, open streams): 429 with `Retry-After`.
    #[error("{detail}")]
    RateLimited {
        detail: String,
        retry_after_secs: u64,
    },
    /// An amount quota (photos, bytes): 403 until something is deleted.
    #[error("{detail}")]
    QuotaExceeded { detail: String },
    #[error("invalid input")]
    Validation {
        errors: BTreeMap<String, Vec<String>>,
    },
    /// The database is down or saturated: try again shortly.
    #[error("service unavailable")]
    Unavailable { cause: String },
    /// Our fault. `cause` goes to the log only.
    #[error("internal error")]
    Internal { cause: String },
}

impl ApiError {
    /// A 422 with one message for one field.
    pub fn field(field: &str, message: &str) -> Self {
        ApiError::Validation {
            errors: [(field.to_owned(), vec![message.to_owned()])].into(),
        }
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ApiError::Internal {
            cause: cause.to_string(),
        }
    }

    /// The one table: each variant's kind of problem (status, `type`, title).
    fn kind(&self) -> &'static ProblemKind {
        use ApiError::*;
        let slug = match self {
            BadRequest { .. } => "bad-request",
            Unauthenticated { .. } => "unauthorized",
            Forbidden { .. } => "forbidden",
            NotFound { .. } => "not-found",
            ThumbnailNotReady { .. } => "thumbnail-not-ready",
            ThumbnailUnavailable { .. } => "thumbnail-unavailable",
            MethodNotAllowed { .. } => "method-not-allowed",
            Conflict { .. } => "conflict",
            Taken { .. } => "already-taken",
            PayloadTooLarge { .. } => "payload-too-large",
            RequestTimeout { .. } => "request-timeout",
            UnsupportedMediaType { .. } => "unsupported-media-type",
            TooManyRequests { .. } => "too-many-requests",
            RateLimited { .. } => "rate-limited",
            QuotaExceeded { .. } => "quota-exceeded",
            Validation { .. } => "validation",
            Unavailable { .. } => "unavailable",
            Internal { .. } => "internal",
        };
        ProblemKind::by_slug(slug).unwrap_or(&PROBLEM_KINDS[PROBLEM_KINDS.len() - 1])
    }

    fn detail(&self) -> String {
        match self {
            ApiError::Validation { errors } => format!(
                "the request has invalid fields: {}",
                errors.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
            ApiError::Taken { field, detail } => format!("the {field} {detail}"),
            ApiError::Unavailable { .. } => {
                "the database is unavailable right now; retry shortly".to_owned()
            }
            ApiError::Internal { .. } => {
                "something went wrong on our side; it has been logged (quote the X-Request-Id)"
                    .to_owned()
            }
            other => other.to_string(),
        }
    }
}

/// One kind of problem: its `type` (an absolute path that serves a page explaining it), status
/// and title. Every problem+json answer of this server has one of these types.
#[derive(Debug)]
pub struct ProblemKind {
    /// The problem `type`: `/problems/<slug>`.
    pub path: &'static str,
    pub status: StatusCode,
    pub title: &'static str,
    /// What it means (the page at `path`).
    pub meaning: &'static str,
    /// What to do about it.
    pub fix: &'static str,
}

impl ProblemKind {
    pub fn slug(&self) -> &'static str {
        self.path.trim_start_matches("/problems/")
    }

    pub fn by_slug(slug: &str) -> Option<&'static ProblemKind> {
        PROBLEM_KINDS.iter().find(|kind| kind.slug() == slug)
    }

    /// The kind for an answer with this status that actix produced itself (no `ApiError`).
    pub fn by_status(status: StatusCode) -> Option<&'static ProblemKind> {
        PROBLEM_KINDS.iter().find(|kind| kind.status == status)
    }
}

/// Every kind of problem, in the order of the docs (the last is the fallback).
pub const PROBLEM_KINDS: &[ProblemKind] = &[
    ProblemKind {
        path: "/problems/validation",
        status: StatusCode::UNPROCESSABLE_ENTITY,
        title: "Validation failed",
        meaning: "Some input broke a rule: a body field, a query parameter or a path id. `errors` \
                  maps each offending field to what is wrong with it.",
        fix: "Correct the fields named in `errors` and send the request again.",
    },
    ProblemKind {
        path: "/problems/bad-request",
        status: StatusCode::BAD_REQUEST,
        title: "Bad request",
        meaning: "The request could not be read at all: JSON that does not parse, a malformed \
                  multipart body, or an operation this deployment does not offer as sent.",
        fix: "Check the body's syntax against the OpenAPI document (/api/openapi.json).",
    },
    ProblemKind {
        path: "/problems/unauthorized",
        status: StatusCode::UNAUTHORIZED,
        title: "Unauthorized",
        meaning: "No valid credentials: the access token is missing, malformed or expired, the \
                  refresh token is unknown, used or revoked, or the username or password is wrong.",
        fix: "Send `Authorization: Bearer <access_token>`; when it has expired get a new one \
              with POST /api/v1/auth/refresh, and when that fails log in again.",
    },
    ProblemKind {
        path: "/problems/forbidden",
        status: StatusCode::FORBIDDEN,
        title: "Forbidden",
        meaning: "You are logged in, but the proof this change needs is wrong (for example the \
                  current password).",
        fix: "Send the right `current_password`.",
    },
    ProblemKind {
        path: "/problems/not-found",
        status: StatusCode::NOT_FOUND,
        title: "Not found",
        meaning: "There is no such resource, or it is not yours (we do not say which), or it \
                  does not exist yet (a story still being written, bytes not uploaded).",
        fix: "Check the id; list your photos or stories to find it. For a story, follow the \
              photo's events until its status is `completed`.",
    },
    ProblemKind {
        path: "/problems/thumbnail-not-ready",
        status: StatusCode::NOT_FOUND,
        title: "Thumbnail not ready yet",
        meaning: "The photo is there, but its thumbnail is still being made (a job runs after \
                  every upload, usually within a second or two).",
        fix: "Retry after the `Retry-After` header's seconds, or wait for the photo's \
              `thumbnail_status` to be `ready`.",
    },
    ProblemKind {
        path: "/problems/thumbnail-unavailable",
        status: StatusCode::NOT_FOUND,
        title: "No thumbnail for this photo",
        meaning: "The photo's format cannot be decoded by the server (HEIC), or its bytes are \
                  damaged, so it has no thumbnail (`thumbnail_status` is `unavailable`).",
        fix: "Show the original (`content_url`) or a placeholder instead; do not retry.",
    },
    ProblemKind {
        path: "/problems/method-not-allowed",
        status: StatusCode::METHOD_NOT_ALLOWED,
        title: "Method not allowed",
        meaning: "The path exists, but not with this HTTP method.",
        fix: "Use one of the methods in the `Allow` header.",
    },
    ProblemKind {
        path: "/problems/request-timeout",
        status: StatusCode::REQUEST_TIMEOUT,
        title: "Request timeout",
        meaning: "The request body stopped arriving before it was complete.",
        fix: "Send the whole body without long pauses (the server waits \
              AISTORY_UPLOAD_IDLE_TIMEOUT_SECS for the next bytes).",
    },
    ProblemKind {
        path: "/problems/conflict",
        status: StatusCode::CONFLICT,
        title: "Conflict",
        meaning: "The request collides with the resource's current state: a story is already \
                  being written, or the photo is not uploaded yet.",
        fix: "Read the resource again and retry once its status allows the change.",
    },
    ProblemKind {
        path: "/problems/already-taken",
        status: StatusCode::CONFLICT,
        title: "Already taken",
        meaning: "A value that must be unique belongs to another account. `errors` names the \
                  field (`username` or `email`).",
        fix: "Choose another value for the field named in `errors`, or log in to the account \
              that has it.",
    },
    ProblemKind {
        path: "/problems/payload-too-large",
        status: StatusCode::PAYLOAD_TOO_LARGE,
        title: "Payload too large",
        meaning: "The body is larger than the server accepts: a photo over \
                  AISTORY_MAX_UPLOAD_BYTES, or a JSON body over 64 KiB.",
        fix: "Send a smaller file (the limit is in the `detail`).",
    },
    ProblemKind {
        path: "/problems/unsupported-media-type",
        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        title: "Unsupported media type",
        meaning: "The body is not in a format this operation takes: not JSON, not \
                  multipart/form-data, or a file that is not a JPEG, PNG, WebP, GIF or HEIC image.",
        fix: "Set the Content-Type the operation documents, and upload an image.",
    },
    ProblemKind {
        path: "/problems/too-many-requests",
        status: StatusCode::TOO_MANY_REQUESTS,
        title: "Too many requests",
        meaning: "Too many attempts (failed logins) in a short time.",
        fix: "Wait the number of seconds in the `Retry-After` header, then try again.",
    },
    ProblemKind {
        path: "/problems/rate-limited",
        status: StatusCode::TOO_MANY_REQUESTS,
        title: "Rate limit reached",
        meaning: "A per-user limit on how often or how much at once was reached: stories asked \
                  for within an hour (`AISTORY_QUOTA_STORIES_PER_HOUR`), or event streams open at \
                  once (`AISTORY_QUOTA_STREAMS`). `detail` names it.",
        fix: "Wait the number of seconds in `Retry-After` (or close a stream), then try again.",
    },
    ProblemKind {
        path: "/problems/quota-exceeded",
        status: StatusCode::FORBIDDEN,
        title: "Quota exceeded",
        meaning: "Your account holds as much as it may: photos (`AISTORY_QUOTA_PHOTOS`) or their \
                  bytes (`AISTORY_QUOTA_BYTES`). `detail` says which limit and where you are.",
        fix: "Delete photos you no longer need, then upload again.",
    },
    ProblemKind {
        path: "/problems/unavailable",
        status: StatusCode::SERVICE_UNAVAILABLE,
        title: "Service unavailable",
        meaning: "The database is unreachable or saturated for a moment. Nothing was changed \
                  by a request that got this answer.",
        fix: "Retry after the `Retry-After` header's seconds.",
    },
    ProblemKind {
        path: "/problems/internal",
        status: StatusCode::INTERNAL_SERVER_ERROR,
        title: "Internal server error",
        meaning: "Something went wrong on our side. It has been logged with the request's id.",
        fix: "Retry later; if it persists, report the `X-Request-Id` of the response.",
    },
];

/// An error (RFC 9457 problem details), served as `application/problem+json`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// The kind of problem: an absolute path (`/problems/...`) whose page says what it means
    /// and what to do. One of the paths listed in docs/api.md.
    #[serde(rename = "type")]
    #[schema(example = "/problems/validation")]
    pub type_uri: &'static str,
    /// Short summary of the kind of problem.
    #[schema(example = "Validation failed")]
    pub title: &'static str,
    /// The HTTP status code.
    #[schema(example = 422)]
    pub status: u16,
    /// What went wrong with this request and how to fix it.
    pub detail: String,
    /// Validation messages by field (422 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<BTreeMap<String, Vec<String>>>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.kind().status
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            // Logged inside the request's span, which carries the request id.
            ApiError::Internal { cause } => tracing::error!(%cause, "internal error"),
            ApiError::Unavailable { cause } => tracing::warn!(%cause, "database unavailable"),
            _ => {}
        }
        let kind = self.kind();
        let problem = Problem {
            type_uri: kind.path,
            title: kind.title,
            status: status.as_u16(),
            detail: self.detail(),
            errors: match self {
                ApiError::Validation { errors } => Some(errors.clone()),
                ApiError::Taken { field, detail } => {
                    Some([((*field).to_owned(), vec![detail.clone()])].into())
                }
                _ => None,
            },
        };
        let mut response = HttpResponse::build(status);
        response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)));
        match self {
            ApiError::Unavailable { .. } => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
            }
            ApiError::MethodNotAllowed { allow } => {
                response.insert_header((header::ALLOW, allow.clone()));
            }
            ApiError::TooManyRequests { retry_after_secs }
            | ApiError::ThumbnailNotReady { retry_after_secs }
            | ApiError::RateLimited {
                retry_after_secs, ..
            } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            ApiError::Unauthenticated { invalid_token, .. } => {
                let challenge = if *invalid_token {
                    r#"Bearer realm="aistory", error="invalid_token""#
                } else {
                    r#"Bearer realm="aistory""#
                };
                response.insert_header((header::WWW_AUTHENTICATE, challenge));
            }
            _ => {}
        }
        response.json(problem)
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::NotFound { what } => ApiError::NotFound {
                what: what.to_owned(),
            },
            ServiceError::Conflict { what } => ApiError::Conflict { detail: what },
            ServiceError::Taken { field, what } => ApiError::Taken {
                field,
                detail: what,
            },
            ServiceError::Validation(errors) => ApiError::Validation { errors },
            ServiceError::InvalidTransition { from, to } => ApiError::Conflict {
                detail: format!("cannot change status from {from} to {to}"),
            },
            ServiceError::Unauthenticated { reason } => ApiError::Unauthenticated {
                detail: reason,
                invalid_token: false,
            },
            ServiceError::Forbidden { detail } => ApiError::Forbidden { detail },
            ServiceError::TooManyRequests { retry_after_secs } => {
                ApiError::TooManyRequests { retry_after_secs }
            }
            ServiceError::Quota {
                detail,
                retry_after_secs: Some(retry_after_secs),
            } => ApiError::RateLimited {
                detail,
                retry_after_secs,
            },
            ServiceError::Quota {
                detail,
                retry_after_secs: None,
            } => ApiError::QuotaExceeded { detail },
            ServiceError::TooLarge { limit_bytes } => ApiError::PayloadTooLarge {
                detail: format!("the photo is larger than the limit of {limit_bytes} bytes"),
            },
            ServiceError::UnsupportedMedia { detail } => ApiError::UnsupportedMediaType { detail },
            ServiceError::BadRequest { detail } => ApiError::BadRequest { detail },
            ServiceError::Unavailable(cause) => ApiError::Unavailable {
                cause: cause.to_string(),
            },
            ServiceError::Unexpected(cause) => ApiError::Internal {
                cause: format!("{cause:#}"),
            },
        }
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(error: sea_orm::DbErr) -> Self {
        ApiError::from(ServiceError::from(error))
    }
}

/// An error raised by middleware after the request was handed on (a panic, a failed commit):
/// it carries the request id so its response has `X-Request-Id` like every other.
#[derive(Debug)]
pub struct WithRequestId {
    pub error: ApiError,
    pub request_id: Option<String>,
}

impl std::fmt::Display for WithRequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl ResponseError for WithRequestId {
    fn status_code(&self) -> StatusCode {
        self.error.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = self.error.error_response();
        if let Some(id) = &self.request_id
            && let Ok(value) = HeaderValue::from_str(id)
        {
            response
                .headers_mut()
                .insert(crate::request_id::HEADER, value);
        }
        response
    }
}

/// Errors actix answers itself (405 on a known path, 404 from a resource, 413 from its own
/// limits...) come with an empty or plain body: give them a problem+json body too.
pub fn problem_for_bare_errors<B: actix_web::body::MessageBody + 'static>()
-> actix_web::middleware::ErrorHandlers<B> {
    actix_web::middleware::ErrorHandlers::new().default_handler(|response| {
        let is_problem = response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|value| value.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
        if is_problem {
            return Ok(actix_web::middleware::ErrorHandlerResponse::Response(
                response.map_into_left_body(),
            ));
        }
        let status = response.status();
        let title = status.canonical_reason().unwrap_or("Error");
        let detail = match status {
            StatusCode::METHOD_NOT_ALLOWED => format!(
                "{} is not allowed on {}",
                response.request().method(),
                response.request().path()
            ),
            _ => title.to_owned(),
        };
        let kind = ProblemKind::by_status(status);
        let problem = Problem {
            type_uri: kind.map_or("about:blank", |kind| kind.path),
            title: kind.map_or(title, |kind| kind.title),
            status: status.as_u16(),
            detail,
            errors: None,
        };
        let body = serde_json::to_string(&problem).unwrap_or_default();
        let (request, mut bare) = response.into_parts();
        bare.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        let new_response = bare.set_body(actix_web::body::BoxBody::new(body));
        Ok(actix_web::middleware::ErrorHandlerResponse::Response(
            actix_web::dev::ServiceResponse::new(request, new_response).map_into_right_body(),
        ))
    })
}

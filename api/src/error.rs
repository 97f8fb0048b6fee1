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
    /// `allow` lists the methods the path does serve (the `Allow` header).
    #[error("this method is not allowed on this path; allowed: {allow}")]
    MethodNotAllowed { allow: String },
    #[error("{detail}")]
    Conflict { detail: String },
    #[error("{detail}")]
    PayloadTooLarge { detail: String },
    /// The client stopped sending its body.
    #[error("{detail}")]
    RequestTimeout { detail: String },
    #[error("{detail}")]
    UnsupportedMediaType { detail: String },
    #[error("too many attempts; retry in {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
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

    /// The one table: each variant's status, problem `type` (a stable, documented identifier
    /// of the kind of problem) and title.
    fn kind(&self) -> (StatusCode, &'static str, &'static str) {
        use ApiError::*;
        match self {
            BadRequest { .. } => (
                StatusCode::BAD_REQUEST,
                "/problems/bad-request",
                "Bad request",
            ),
            Unauthenticated { .. } => (
                StatusCode::UNAUTHORIZED,
                "/problems/unauthorized",
                "Unauthorized",
            ),
            Forbidden { .. } => (StatusCode::FORBIDDEN, "/problems/forbidden", "Forbidden"),
            NotFound { .. } => (StatusCode::NOT_FOUND, "/problems/not-found", "Not found"),
            MethodNotAllowed { .. } => (
                StatusCode::METHOD_NOT_ALLOWED,
                "/problems/method-not-allowed",
                "Method not allowed",
            ),
            Conflict { .. } => (StatusCode::CONFLICT, "/problems/conflict", "Conflict"),
            PayloadTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "/problems/payload-too-large",
                "Payload too large",
            ),
            RequestTimeout { .. } => (
                StatusCode::REQUEST_TIMEOUT,
                "/problems/request-timeout",
                "Request timeout",
            ),
            UnsupportedMediaType { .. } => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "/problems/unsupported-media-type",
                "Unsupported media type",
            ),
            TooManyRequests { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "/problems/too-many-requests",
                "Too many requests",
            ),
            Validation { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "/problems/validation",
                "Validation failed",
            ),
            Unavailable { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "/problems/unavailable",
                "Service unavailable",
            ),
            Internal { .. } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "/problems/internal",
                "Internal server error",
            ),
        }
    }

    fn detail(&self) -> String {
        match self {
            ApiError::Validation { errors } => format!(
                "the request has invalid fields: {}",
                errors.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
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

/// An error (RFC 9457 problem details), served as `application/problem+json`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI reference identifying the kind of problem.
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
        self.kind().0
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            // Logged inside the request's span, which carries the request id.
            ApiError::Internal { cause } => tracing::error!(%cause, "internal error"),
            ApiError::Unavailable { cause } => tracing::warn!(%cause, "database unavailable"),
            _ => {}
        }
        let (_, type_uri, title) = self.kind();
        let problem = Problem {
            type_uri,
            title,
            status: status.as_u16(),
            detail: self.detail(),
            errors: match self {
                ApiError::Validation { errors } => Some(errors.clone()),
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
            ApiError::TooManyRequests { retry_after_secs } => {
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
        let problem = Problem {
            type_uri: "about:blank",
            title,
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

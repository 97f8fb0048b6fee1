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
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{detail}")]
    Conflict { detail: String },
    #[error("{detail}")]
    PayloadTooLarge { detail: String },
    #[error("{detail}")]
    UnsupportedMediaType { detail: String },
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
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ApiError::Internal {
            cause: cause.to_string(),
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "Bad request",
            ApiError::NotFound { .. } => "Not found",
            ApiError::MethodNotAllowed => "Method not allowed",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::PayloadTooLarge { .. } => "Payload too large",
            ApiError::UnsupportedMediaType { .. } => "Unsupported media type",
            ApiError::Validation { .. } => "Validation failed",
            ApiError::Unavailable { .. } => "Service unavailable",
            ApiError::Internal { .. } => "Internal server error",
        }
    }

    /// The `type` URI: a stable, documented identifier of the kind of problem.
    fn type_uri(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "/problems/bad-request",
            ApiError::NotFound { .. } => "/problems/not-found",
            ApiError::MethodNotAllowed => "/problems/method-not-allowed",
            ApiError::Conflict { .. } => "/problems/conflict",
            ApiError::PayloadTooLarge { .. } => "/problems/payload-too-large",
            ApiError::UnsupportedMediaType { .. } => "/problems/unsupported-media-type",
            ApiError::Validation { .. } => "/problems/validation",
            ApiError::Unavailable { .. } => "/problems/unavailable",
            ApiError::Internal { .. } => "/problems/internal",
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

/// The body of a problem response.
#[derive(Debug, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: &'static str,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<BTreeMap<String, Vec<String>>>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            // Logged inside the request's span, which carries the request id.
            ApiError::Internal { cause } => tracing::error!(%cause, "internal error"),
            ApiError::Unavailable { cause } => tracing::warn!(%cause, "database unavailable"),
            _ => {}
        }
        let problem = Problem {
            type_uri: self.type_uri(),
            title: self.title(),
            status: status.as_u16(),
            detail: self.detail(),
            errors: match self {
                ApiError::Validation { errors } => Some(errors.clone()),
                _ => None,
            },
        };
        let mut response = HttpResponse::build(status);
        response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)));
        if matches!(self, ApiError::Unavailable { .. }) {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
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

//! Route table.

mod health;

use actix_web::{HttpRequest, HttpResponse, web};

use crate::ApiError;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .app_data(json_config())
        .app_data(path_config())
        .app_data(query_config())
        .route("/health", web::get().to(health::health))
        .route("/ready", web::get().to(health::ready));
}

/// Unknown paths answer problem+json too.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound {
        what: format!("{} {}", req.method(), req.path()),
    })
}

/// Malformed JSON is a 400 that says where; a wrong content type 415; too large 413.
fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(64 * 1024)
        .error_handler(|error, _req| {
            use actix_web::error::JsonPayloadError as E;
            let api_error = match &error {
                E::ContentType => ApiError::UnsupportedMediaType {
                    detail: "send the body as application/json".to_owned(),
                },
                E::OverflowKnownLength { .. } | E::Overflow { .. } => ApiError::PayloadTooLarge {
                    detail: "the JSON body is larger than 64 KiB".to_owned(),
                },
                E::Deserialize(inner) if inner.is_data() => ApiError::Validation {
                    errors: [("body".to_owned(), vec![inner.to_string()])].into(),
                },
                other => ApiError::BadRequest {
                    detail: format!("the body is not valid JSON: {other}"),
                },
            };
            api_error.into()
        })
}

fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|error, _req| {
        ApiError::NotFound {
            what: format!("resource ({error})"),
        }
        .into()
    })
}

fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|error, _req| {
        ApiError::BadRequest {
            detail: format!("invalid query string: {error}"),
        }
        .into()
    })
}

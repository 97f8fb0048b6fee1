//! Route table. Every route is registered with `service(...)` on utoipa's `ServiceConfig`, so
//! the OpenAPI document is collected from exactly what is served.

pub mod auth;
pub mod health;
pub mod paging;
pub mod photos;
pub mod stories;
pub mod users;

use actix_web::{HttpRequest, HttpResponse, web};
use utoipa_actix_web::scope;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::ApiError;

pub fn configure(config: &mut ServiceConfig) {
    config
        .app_data(json_config())
        .app_data(path_config())
        .app_data(web::PayloadConfig::new(crate::extract::JSON_LIMIT))
        .service(health::health)
        .service(health::ready)
        .service(
            scope("/api/v1/auth")
                .service(auth::register)
                .service(auth::login)
                .service(auth::refresh)
                .service(auth::logout)
                .service(auth::logout_all),
        )
        .service(
            scope("/api/v1/photos")
                .service(photos::create_direct_upload)
                .service(photos::upload)
                .service(photos::list)
                .service(photos::get_one)
                .service(photos::rename)
                .service(photos::delete_one)
                .service(photos::content)
                .service(photos::thumbnail)
                .service(photos::complete_direct_upload)
                .service(stories::request_story)
                .service(stories::photo_story)
                .service(stories::events)
                .service(stories::events_ticket),
        )
        .service(
            scope("/api/v1/stories")
                .service(stories::list)
                .service(stories::get_one)
                .service(stories::delete_one),
        )
        .service(
            scope("/api/v1/users")
                .service(users::get_me)
                .service(users::patch_me)
                .service(users::delete_me),
        );
}

/// The methods the request's path serves (the `Allow` of a 405).
fn allowed_methods(req: &HttpRequest) -> String {
    req.app_data::<web::Data<crate::AppState>>()
        .map(|state| state.routes.allowed(req.path()))
        .unwrap_or_default()
}

/// Unknown paths answer problem+json too.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    // The path exists, only not with this method.
    if req.resource_map().has_resource(req.path()) {
        return Err(ApiError::MethodNotAllowed {
            allow: allowed_methods(&req),
        });
    }
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
    web::PathConfig::default().error_handler(|error, req| {
        // `/photos/uploads` with PATCH reaches `/photos/{id}`: say the path exists, with other
        // methods, rather than that it is missing.
        let allow = allowed_methods(req);
        if !allow.is_empty()
            && !allow
                .split(", ")
                .any(|method| method == req.method().as_str())
        {
            return ApiError::MethodNotAllowed { allow }.into();
        }
        // Every path parameter is an id: name the ones that are not.
        let errors: std::collections::BTreeMap<String, Vec<String>> = req
            .match_info()
            .iter()
            .filter(|(_, value)| value.parse::<i64>().is_err())
            .map(|(name, _)| {
                (
                    name.to_owned(),
                    vec!["must be a whole number (an id)".to_owned()],
                )
            })
            .collect();
        if errors.is_empty() {
            tracing::debug!(%error, "path parameters refused");
            return ApiError::field("path", "has a parameter that is not valid").into();
        }
        ApiError::Validation { errors }.into()
    })
}

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::{ApiError, AppState};

/// Liveness: the process answers. Touches no database.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Readiness: the database answers `SELECT 1` within a bounded time.
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    match service::verify_database_connection(&state.db, state.ready_timeout).await {
        Ok(()) => Ok(HttpResponse::Ok().json(json!({ "status": "ready", "database": "ok" }))),
        Err(error) => Err(ApiError::Unavailable {
            cause: error.to_string(),
        }),
    }
}

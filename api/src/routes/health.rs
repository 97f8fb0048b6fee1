use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::Problem;
use crate::{ApiError, AppState, Db};

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthStatus {
    #[schema(example = "ok")]
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyStatus {
    #[schema(example = "ready")]
    pub status: &'static str,
    #[schema(example = "ok")]
    pub database: &'static str,
}

/// Liveness: the process answers. Touches no database.
#[utoipa::path(tag = "health", responses((status = 200, description = "Alive", body = HealthStatus)))]
#[get("/health")]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(HealthStatus { status: "ok" })
}

/// Readiness: the database answers `SELECT 1` within a bounded time.
#[utoipa::path(
    tag = "health",
    responses(
        (status = 200, description = "Ready to serve", body = ReadyStatus),
        (status = 503, description = "The database does not answer", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/ready")]
pub async fn ready(db: Db, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    match service::verify_database_connection(db.pool(), state.ready_timeout).await {
        Ok(()) => Ok(HttpResponse::Ok().json(ReadyStatus {
            status: "ready",
            database: "ok",
        })),
        Err(error) => Err(ApiError::Unavailable {
            cause: error.to_string(),
        }),
    }
}

//! The per-request unit of work as actix middleware plus the [`Db`] extractor.
//!
//! The middleware gives each request a [`UnitOfWork`]; a handler that takes [`Db`] can begin
//! the transaction (lazily, on first use). After the handler: a 1xx-3xx response commits
//! **before the response is sent**, a 4xx/5xx response, an error or a panic rolls back, and a
//! failed commit turns the response into a 5xx.

use std::ops::Deref;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures_util::FutureExt;
use futures_util::future::{Ready, ready};
use service::UnitOfWork;

use crate::error::WithRequestId;
use crate::{ApiError, AppState};

/// The request's database access (the guide's `Depends(get_db)`).
#[derive(Clone)]
pub struct Db(Arc<UnitOfWork>);

impl Deref for Db {
    type Target = UnitOfWork;

    fn deref(&self) -> &UnitOfWork {
        &self.0
    }
}

impl FromRequest for Db {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<Arc<UnitOfWork>>()
                .cloned()
                .map(Db)
                .ok_or_else(|| ApiError::internal("the unit-of-work middleware is not installed")),
        )
    }
}

/// Middleware: one unit of work per request, finished according to the outcome.
pub async fn unit_of_work(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Err(ApiError::internal("application state is missing").into());
    };
    let observer = req
        .app_data::<web::Data<service::StatementObserver>>()
        .map(|observer| observer.get_ref().clone());
    let work = Arc::new(
        service::get_db(&state.db)
            .with_reads(state.reads.clone())
            .with_observer(observer),
    );
    req.extensions_mut().insert(work.clone());
    let request_id = req
        .extensions()
        .get::<crate::request_id::RequestId>()
        .map(|id| id.0.clone());
    let fail = |error: ApiError| -> actix_web::Error {
        WithRequestId {
            error,
            request_id: request_id.clone(),
        }
        .into()
    };

    let outcome = AssertUnwindSafe(next.call(req)).catch_unwind().await;
    match outcome {
        Ok(Ok(response)) if response.status().as_u16() < 400 => match work.commit().await {
            Ok(_) => Ok(response.map_into_boxed_body()),
            Err(error) => Err(fail(ApiError::from(error).into_commit_failure())),
        },
        Ok(Ok(response)) => {
            rollback(&work).await;
            Ok(response.map_into_boxed_body())
        }
        Ok(Err(error)) => {
            rollback(&work).await;
            Err(error)
        }
        Err(panic) => {
            rollback(&work).await;
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            Err(fail(ApiError::internal(format!(
                "handler panicked: {message}"
            ))))
        }
    }
}

async fn rollback(work: &UnitOfWork) {
    if let Err(error) = work.rollback().await {
        // The connection is discarded by the pool if it is broken; the data was not committed.
        tracing::warn!(%error, "rolling back the request's transaction failed");
    }
}

impl ApiError {
    /// A failed commit: the handler's work is lost, so the client must not see success.
    /// Always a 5xx: 503 when the database went away, 500 otherwise.
    fn into_commit_failure(self) -> ApiError {
        match self {
            ApiError::Unavailable { cause } => ApiError::Unavailable {
                cause: format!("commit failed: {cause}"),
            },
            other => ApiError::internal(format!("commit failed: {other:?}")),
        }
    }
}

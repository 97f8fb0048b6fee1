//! The one error type of the domain. The HTTP layer maps each variant to a status.

use std::collections::BTreeMap;

use sea_orm::{DbErr, RuntimeErr, SqlErr};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ServiceError {
    /// The thing does not exist (or belongs to someone else: we do not say which).
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// The change collides with existing data (a taken username, a duplicate key).
    #[error("{what}")]
    Conflict { what: String },
    /// A value that must be unique (`field`: `username`, `email`) belongs to someone else.
    #[error("{what}")]
    Taken { field: &'static str, what: String },
    /// The input breaks a rule; messages by field.
    #[error("invalid input")]
    Validation(BTreeMap<String, Vec<String>>),
    /// A status change the lifecycle does not allow.
    #[error("cannot change status from {from} to {to}")]
    InvalidTransition { from: String, to: String },
    /// No valid credentials: a missing, expired or revoked token, or a wrong password.
    #[error("{reason}")]
    Unauthenticated { reason: String },
    /// Authenticated, but the proof this change needs is wrong (a wrong current password).
    #[error("{detail}")]
    Forbidden { detail: String },
    /// A per-user quota: `retry_after_secs` for a rate (it frees up then), `None` for an amount
    /// (something must go first). `detail` names the limit.
    #[error("{detail}")]
    Quota {
        detail: String,
        retry_after_secs: Option<u64>,
    },
    /// Too many attempts; try again after this many seconds.
    #[error("too many attempts; retry in {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
    /// The upload is larger than allowed.
    #[error("the photo is larger than the limit of {limit_bytes} bytes")]
    TooLarge { limit_bytes: u64 },
    /// The bytes are not an accepted kind of image.
    #[error("{detail}")]
    UnsupportedMedia { detail: String },
    /// A request that cannot be served as sent (e.g. direct upload without an S3 store).
    #[error("{detail}")]
    BadRequest { detail: String },
    /// The database could not be reached or had no free connection: try again later.
    #[error("the database is unavailable")]
    Unavailable(#[source] DbErr),
    /// Our fault: a bug or an unexpected database answer.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<DbErr> for ServiceError {
    /// Unique violations become `Conflict`, foreign-key violations `NotFound`, lost connections
    /// `Unavailable`, the rest `Unexpected`. Callers that know which constraint means what
    /// use [`on_unique_violation`] first for a better message.
    fn from(error: DbErr) -> Self {
        match error.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => ServiceError::Conflict {
                what: "a record with these values already exists".to_owned(),
            },
            Some(SqlErr::ForeignKeyConstraintViolation(_)) => ServiceError::NotFound {
                what: "referenced record",
            },
            // The row went away between reading and updating it (a concurrent delete).
            _ if matches!(error, DbErr::RecordNotUpdated) => {
                ServiceError::NotFound { what: "record" }
            }
            _ if is_unavailable(&error) => ServiceError::Unavailable(error),
            _ => ServiceError::Unexpected(error.into()),
        }
    }
}

/// Maps a unique violation to the taken field `describe` names (with its message) from the
/// violated constraint's message (which holds the constraint or column name on every
/// backend); other errors map as in `From<DbErr>`.
pub fn on_unique_violation(
    error: DbErr,
    describe: impl Fn(&str) -> Option<(&'static str, String)>,
) -> ServiceError {
    if let Some(SqlErr::UniqueConstraintViolation(message)) = error.sql_err()
        && let Some((field, what)) = describe(&message)
    {
        return ServiceError::Taken { field, what };
    }
    ServiceError::from(error)
}

/// SQLSTATEs of a server going away: class 08 (connection exception: MySQL's "server has gone
/// away", "lost connection", "shutdown in progress") and class 57 (PostgreSQL's
/// `admin_shutdown`, `crash_shutdown`, `cannot_connect_now`...).
pub(crate) fn is_unavailable_code(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("57")
}

/// Whether the error means "no usable connection" rather than "the statement failed".
pub fn is_unavailable(error: &DbErr) -> bool {
    match error {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(inner)) | DbErr::Query(RuntimeErr::SqlxError(inner)) => {
            matches!(
                inner.as_ref(),
                sea_orm::sqlx::Error::Io(_)
                    | sea_orm::sqlx::Error::PoolTimedOut
                    | sea_orm::sqlx::Error::PoolClosed
                    | sea_orm::sqlx::Error::WorkerCrashed
            ) || inner
                .as_database_error()
                .and_then(|error| error.code())
                .is_some_and(|code| is_unavailable_code(&code))
        }
        _ => false,
    }
}

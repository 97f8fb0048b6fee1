//! Accounts' authentication: password hashing, access tokens (JWT, verified without the
//! database), refresh tokens (opaque, rotated, stored hashed) and login throttling.

pub mod passwords;
pub mod refresh;
pub mod throttle;
pub mod tokens;

use entity::user;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

pub use throttle::Throttle;
pub use tokens::{AccessTokens, TokenError, TokenUser};

use crate::ServiceError;

/// What a successful login or refresh hands out.
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub refresh_token: String,
    pub user_id: i64,
}

/// The answer to any failed login: one message, whatever went wrong.
pub fn bad_credentials() -> ServiceError {
    ServiceError::Unauthenticated {
        reason: "the username or password is wrong".to_owned(),
    }
}

/// The account a username or an email address (any case) names.
pub async fn find_account<C: ConnectionTrait>(
    db: &C,
    identifier: &str,
) -> Result<Option<user::Model>, ServiceError> {
    let identifier = identifier.trim();
    let column = if identifier.contains('@') {
        user::Column::Email
    } else {
        user::Column::UsernameKey
    };
    Ok(user::Entity::find()
        .filter(column.eq(identifier.to_lowercase()))
        .one(db)
        .await?)
}

/// A login attempt: the account is looked up, the attempt counted by the [`Throttle`] (before
/// the slow password check, so parallel guesses cannot slip through) and refused when a limit
/// is reached, then the password is checked. An unknown account costs the same argon2
/// verification as a wrong password, so neither the answer nor its timing says which it was.
/// `db` must be the primary (the attempt is written) and no transaction: argon2 takes a
/// while, and the count must stay when the login fails. `address` is the client's address as
/// the server trusts it (never a header the client chose).
pub async fn check_login(
    db: &sea_orm::DatabaseConnection,
    throttle: &Throttle,
    identifier: &str,
    password: &str,
    address: Option<&str>,
) -> Result<user::Model, ServiceError> {
    let found = find_account(db, identifier).await?;
    let subject = match &found {
        Some(account) => throttle::Subject::Account(account.id),
        None => throttle::Subject::UnknownName(identifier.to_owned()),
    };
    let attempt = match throttle
        .attempt(db, throttle::Action::Login, &subject, address)
        .await
    {
        Ok(attempt) => attempt,
        Err(error) => {
            if matches!(error, ServiceError::TooManyRequests { .. }) {
                crate::metrics::login("throttled");
            }
            return Err(error);
        }
    };
    let right = match &found {
        Some(account) => passwords::verify(password, &account.password_hash).await?,
        None => {
            passwords::verify_against_dummy(password).await?;
            false
        }
    };
    match found {
        Some(account) if right => {
            throttle.succeeded(db, attempt).await?;
            crate::metrics::login("success");
            Ok(account)
        }
        _ => {
            crate::metrics::login("failure");
            Err(bad_credentials())
        }
    }
}

/// Checks the password of user `user_id` again (`current_password`), throttled with the same
/// counts as logins: `Forbidden` when wrong (`what`: what was not changed), `TooManyRequests`
/// past a limit. Same rules for `db` and `address` as [`check_login`].
pub async fn check_password_again(
    db: &sea_orm::DatabaseConnection,
    throttle: &Throttle,
    account: &user::Model,
    password: &str,
    address: Option<&str>,
    what: &str,
) -> Result<(), ServiceError> {
    let attempt = throttle
        .attempt(
            db,
            throttle::Action::Password,
            &throttle::Subject::Account(account.id),
            address,
        )
        .await?;
    if passwords::verify(password, &account.password_hash).await? {
        throttle.succeeded(db, attempt).await
    } else {
        // 403, not 401 or 422: the request and its token are fine, the proof is wrong.
        Err(ServiceError::Forbidden {
            detail: format!("current_password is wrong; {what}"),
        })
    }
}

/// Logs a user in: a fresh access token and the first refresh token of a new family.
pub async fn issue_tokens<C: ConnectionTrait>(
    db: &C,
    access: &AccessTokens,
    refresh_ttl: std::time::Duration,
    user: &user::Model,
) -> Result<IssuedTokens, ServiceError> {
    let user_id = user.id;
    let refresh_token = refresh::issue(db, user_id, None, refresh_ttl).await?;
    let (access_token, expires_in) = access.issue(TokenUser {
        user_id,
        generation: user.token_generation,
    })?;
    Ok(IssuedTokens {
        access_token,
        expires_in,
        refresh_token,
        user_id,
    })
}

/// Refuses a token of an ended session: one issued before the account's token generation was
/// bumped (a logout everywhere, a password change, a stolen refresh token), or one whose
/// account is gone. One primary-key read; writes call it, reads do not (a revoked token may
/// still read for what is left of its lifetime, at most `AISTORY_ACCESS_TOKEN_TTL_SECS`).
pub async fn ensure_session<C: ConnectionTrait>(
    db: &C,
    token: TokenUser,
) -> Result<(), ServiceError> {
    use sea_orm::{EntityTrait, QuerySelect};
    let generation: Option<i32> = user::Entity::find_by_id(token.user_id)
        .select_only()
        .column(user::Column::TokenGeneration)
        .into_tuple()
        .one(db)
        .await?;
    match generation {
        None => Err(ServiceError::Unauthenticated {
            reason: "the account of this token no longer exists".to_owned(),
        }),
        Some(now) if now != token.generation => Err(ServiceError::Unauthenticated {
            reason: "this session has ended (logged out everywhere, or the password changed); \
                     log in again"
                .to_owned(),
        }),
        Some(_) => Ok(()),
    }
}

/// Ends every session of user `user_id`: its refresh tokens are revoked and its access tokens
/// can no longer write (their generation is bumped). Runs in the caller's transaction.
pub async fn end_sessions<C: ConnectionTrait>(db: &C, user_id: i64) -> Result<(), ServiceError> {
    use sea_orm::sea_query::{Expr, ExprTrait};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    user::Entity::update_many()
        .col_expr(
            user::Column::TokenGeneration,
            Expr::col(user::Column::TokenGeneration).add(1),
        )
        .filter(user::Column::Id.eq(user_id))
        .exec(db)
        .await?;
    refresh::revoke_all_for_user(db, user_id).await
}

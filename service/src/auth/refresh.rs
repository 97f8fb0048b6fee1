//! Opaque refresh tokens: random, stored only as a SHA-256 hash, rotated on every use.
//! Presenting a token that was already rotated revokes its whole family: a stolen token stops
//! working for the thief and the victim alike, who must log in again. A token revoked by a
//! logout (or a password change) is simply refused.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use entity::refresh_token;
use rand::RngCore;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, QueryFilter, QuerySelect,
};
use sha2::{Digest, Sha256};

use crate::ServiceError;

fn invalid(reason: &str) -> ServiceError {
    ServiceError::Unauthenticated {
        reason: reason.to_owned(),
    }
}

/// A new random token (256 bits, URL-safe).
fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The stored form of a token.
pub fn hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Stores a new token for `user_id` (in `family`, or a new family) and returns it.
pub async fn issue<C: ConnectionTrait>(
    db: &C,
    user_id: i64,
    family: Option<String>,
    ttl: Duration,
) -> Result<String, ServiceError> {
    let token = new_token();
    let expires_at = Utc::now()
        + chrono::Duration::from_std(ttl)
            .map_err(|error| ServiceError::Unexpected(error.into()))?;
    refresh_token::ActiveModel {
        user_id: Set(user_id),
        token_hash: Set(hash(&token)),
        family_id: Set(family.unwrap_or_else(|| uuid::Uuid::new_v4().to_string())),
        expires_at: Set(expires_at),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(token)
}

/// Exchanges a refresh token for a new one (same family). Runs in its own transaction on
/// `pool` and commits even when it refuses: revoking a family on reuse must stick.
/// Returns who the new tokens are for (with the account's token generation) and the new
/// refresh token.
pub async fn rotate(
    pool: &DatabaseConnection,
    presented: &str,
    ttl: Duration,
) -> Result<(crate::auth::TokenUser, String), ServiceError> {
    let txn = crate::db::begin_write(pool).await?;
    let found = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(hash(presented)))
        .one(&txn)
        .await?;
    let Some(current) = found else {
        return Err(invalid("the refresh token is not valid"));
    };
    if current.revoked_at.is_some() && current.replaced_by_id.is_none() {
        // Revoked, not rotated: a logout, a password change, or the end of a family revoked
        // for reuse. Nothing new has happened: the family is already revoked.
        return Err(invalid(
            "the refresh token was revoked (logged out, or the password changed); log in again",
        ));
    }
    if current.revoked_at.is_some() {
        // A rotated token presented again: someone copied it. Every session of the account
        // ends, its access tokens included (the thief may hold one).
        revoke_family(&txn, &current.family_id).await?;
        crate::auth::end_sessions(&txn, current.user_id).await?;
        txn.commit().await?;
        tracing::warn!(
            user_id = current.user_id,
            "refresh token reuse: every session of the account ended"
        );
        return Err(invalid(
            "the refresh token was already used; every session of that login is now revoked, \
             log in again",
        ));
    }
    if current.expires_at <= Utc::now() {
        return Err(invalid("the refresh token has expired; log in again"));
    }
    // Only one of two concurrent uses of a token can win this update.
    let now = entity::timestamps::now();
    let claimed = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(now))
        .col_expr(refresh_token::Column::UpdatedAt, Expr::value(now))
        .filter(refresh_token::Column::Id.eq(current.id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?;
    if claimed.rows_affected != 1 {
        revoke_family(&txn, &current.family_id).await?;
        crate::auth::end_sessions(&txn, current.user_id).await?;
        txn.commit().await?;
        return Err(invalid(
            "the refresh token was already used; every session of that login is now revoked, \
             log in again",
        ));
    }
    let token = issue(&txn, current.user_id, Some(current.family_id.clone()), ttl).await?;
    let successor = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(hash(&token)))
        .one(&txn)
        .await?
        .map(|model| model.id);
    refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::ReplacedById, Expr::value(successor))
        .filter(refresh_token::Column::Id.eq(current.id))
        .exec(&txn)
        .await?;
    let generation: Option<i32> = entity::user::Entity::find_by_id(current.user_id)
        .select_only()
        .column(entity::user::Column::TokenGeneration)
        .into_tuple()
        .one(&txn)
        .await?;
    let Some(generation) = generation else {
        return Err(invalid("the account of this token no longer exists"));
    };
    txn.commit().await?;
    Ok((
        crate::auth::TokenUser {
            user_id: current.user_id,
            generation,
        },
        token,
    ))
}

/// Revokes the family of `presented` (logout). Unknown tokens are ignored: logging out twice
/// is not an error. Runs on its own transaction on `pool`.
pub async fn revoke(pool: &DatabaseConnection, presented: &str) -> Result<(), ServiceError> {
    let found = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(hash(presented)))
        .one(pool)
        .await?;
    if let Some(token) = found {
        revoke_family(pool, &token.family_id).await?;
    }
    Ok(())
}

async fn revoke_family<C: ConnectionTrait>(db: &C, family_id: &str) -> Result<(), ServiceError> {
    // Lock the family's rows first: a rotation in flight holds the lock on the token it
    // rotates, so this waits for it to commit, and the UPDATE below (a new statement) then
    // also sees the successor it inserted. SQLite serialises writers by itself.
    if db.get_database_backend() != sea_orm::DbBackend::Sqlite {
        refresh_token::Entity::find()
            .filter(refresh_token::Column::FamilyId.eq(family_id))
            .lock_exclusive()
            .all(db)
            .await?;
    }
    let now = entity::timestamps::now();
    refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(now))
        .col_expr(refresh_token::Column::UpdatedAt, Expr::value(now))
        .filter(refresh_token::Column::FamilyId.eq(family_id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Revokes every refresh token of a user (password change).
pub async fn revoke_all_for_user<C: ConnectionTrait>(
    db: &C,
    user_id: i64,
) -> Result<(), ServiceError> {
    let now = entity::timestamps::now();
    refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(now))
        .col_expr(refresh_token::Column::UpdatedAt, Expr::value(now))
        .filter(refresh_token::Column::UserId.eq(user_id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

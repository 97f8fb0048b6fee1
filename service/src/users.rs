//! Accounts.

use entity::user;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait, EntityTrait};

use crate::domain::{Email, Password, Username};
use crate::error::{ServiceError, on_unique_violation};
use crate::reads::HotReads;
use crate::storage::{DeleteObjects, keys};
use crate::worker::BackgroundJob;

/// A user to create; the password is already hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub email: String,
    pub password_hash: String,
}

/// Inserts a user. A taken username or email is a [`ServiceError::Taken`] naming the field.
pub async fn create_user<C: ConnectionTrait>(
    db: &C,
    new_user: NewUser,
) -> Result<user::Model, ServiceError> {
    let model = user::ActiveModel {
        username_key: Set(Some(new_user.username.to_lowercase())),
        username: Set(new_user.username),
        email: Set(new_user.email.to_lowercase()),
        password_hash: Set(new_user.password_hash),
        ..Default::default()
    };
    model.insert(db).await.map_err(|error| {
        on_unique_violation(error, |message| {
            if message.contains("email") {
                Some(("email", "is already registered".to_owned()))
            } else if message.contains("username") {
                Some(("username", "is already taken".to_owned()))
            } else {
                None
            }
        })
    })
}

/// The user with `id`, or `NotFound`.
pub async fn find_user<C: HotReads>(db: &C, id: i64) -> Result<user::Model, ServiceError> {
    let statement = user_statement(db.get_database_backend(), id);
    db.user_row(statement)
        .await?
        .ok_or(ServiceError::NotFound { what: "user" })
}

/// The query of [`find_user`] (its text is cached: the values go in that order).
fn one_user(id: i64) -> sea_orm::Select<user::Entity> {
    use sea_orm::QuerySelect;
    user::Entity::find_by_id(id).limit(1)
}

/// [`one_user`] with its text from the cache.
fn user_statement(backend: sea_orm::DbBackend, id: i64) -> sea_orm::Statement {
    static SQL: crate::statements::Cached = crate::statements::Cached::new();
    SQL.statement(backend, || one_user(0), vec![id.into(), 1u64.into()])
}

/// Registers an account: hashes the password (off the async threads), then inserts.
pub async fn register<C: ConnectionTrait>(
    db: &C,
    username: Username,
    email: Email,
    password: &Password,
) -> Result<user::Model, ServiceError> {
    let password_hash = crate::auth::passwords::hash(password.as_str()).await?;
    create_user(
        db,
        NewUser {
            username: username.into(),
            email: email.into(),
            password_hash,
        },
    )
    .await
}

/// Changes to one's own account.
#[derive(Debug, Clone, Default)]
pub struct AccountChanges {
    pub email: Option<Email>,
    pub new_password: Option<Password>,
    /// Required to change the password or the email address.
    pub current_password: Option<String>,
}

/// Proof that the account's password was given again for this request ([`reauthenticate`]):
/// what [`update_account`] needs to change the password or the email address.
#[derive(Debug)]
pub struct Reauthenticated {
    user_id: i64,
}

/// What `changes` need the current password for, if anything (said in the answers).
fn needs_password(changes: &AccountChanges) -> Option<&'static str> {
    match (&changes.new_password, &changes.email) {
        (Some(_), Some(_)) => Some("password and the email address"),
        (Some(_), None) => Some("password"),
        (None, Some(_)) => Some("email address"),
        (None, None) => None,
    }
}

/// Checks `changes.current_password` when the changes need it (a new password or email,
/// even an unchanged address: the rule is about the request, as the schema says): 422 when
/// missing, 403 when wrong, 429 past the throttle's limits (the same counts as logins; see
/// [`crate::auth::throttle`]). Runs on the primary, outside any transaction: the count must
/// stay when the check fails, and argon2 takes a while.
pub async fn reauthenticate(
    pool: &sea_orm::DatabaseConnection,
    throttle: &crate::auth::Throttle,
    id: i64,
    changes: &AccountChanges,
    address: Option<&str>,
) -> Result<Option<Reauthenticated>, ServiceError> {
    let Some(what) = needs_password(changes) else {
        return Ok(None);
    };
    let Some(current) = &changes.current_password else {
        return Err(field_error(
            "current_password",
            &format!("is required to change the {what}"),
        ));
    };
    let account = find_user(pool, id).await?;
    crate::auth::check_password_again(
        pool,
        throttle,
        &account,
        current,
        address,
        &format!("the {what} was not changed"),
    )
    .await?;
    Ok(Some(Reauthenticated { user_id: id }))
}

/// Applies `changes` to user `id`. A password change needs the current password and revokes
/// every refresh token of the account.
pub async fn update_account<C: HotReads>(
    db: &C,
    id: i64,
    changes: AccountChanges,
    proof: Option<Reauthenticated>,
) -> Result<user::Model, ServiceError> {
    if let Some(what) = needs_password(&changes)
        && proof.is_none_or(|proof| proof.user_id != id)
    {
        return Err(field_error(
            "current_password",
            &format!("is required to change the {what}"),
        ));
    }
    let account = find_user(db, id).await?;
    let mut active: user::ActiveModel = account.clone().into();
    let mut changed = false;
    let mut ended = false;
    let new_email = changes
        .email
        .map(String::from)
        .filter(|email| *email != account.email);
    if let Some(new_password) = &changes.new_password {
        active.password_hash = Set(crate::auth::passwords::hash(new_password.as_str()).await?);
        changed = true;
        ended = true;
    }
    if let Some(email) = new_email {
        active.email = Set(email);
        changed = true;
    }
    if !changed {
        return Ok(account);
    }
    let updated = active.update(db).await.map_err(|error| {
        on_unique_violation(error, |message| {
            message
                .contains("email")
                .then(|| ("email", "is already registered".to_owned()))
        })
    })?;
    if ended {
        // A new password ends every session, this one included: log in again with it.
        crate::auth::end_sessions(db, id).await?;
        return find_user(db, id).await;
    }
    Ok(updated)
}

/// Checks the password of user `id` before something irreversible (deleting the account):
/// 403 when wrong, 429 past the throttle's limits. Same rules as [`reauthenticate`].
pub async fn confirm_password(
    pool: &sea_orm::DatabaseConnection,
    throttle: &crate::auth::Throttle,
    id: i64,
    password: &str,
    address: Option<&str>,
) -> Result<(), ServiceError> {
    let account = find_user(pool, id).await?;
    crate::auth::check_password_again(
        pool,
        throttle,
        &account,
        password,
        address,
        "nothing was changed",
    )
    .await
}

/// Deletes user `id`; the database cascades to everything the account owns.
pub async fn delete_account<C: ConnectionTrait>(db: &C, id: i64) -> Result<(), ServiceError> {
    let result = user::Entity::delete_by_id(id).exec(db).await?;
    if result.rows_affected == 0 {
        return Err(ServiceError::NotFound { what: "user" });
    }
    Ok(())
}

/// Deletes user `id` with everything it owns, on `db` (the caller's transaction): the rows
/// (by cascade) and, through a job queued in the same transaction, every object under
/// `users/{id}/` and its staging area.
pub async fn delete_account_with_objects<C: ConnectionTrait>(
    db: &C,
    id: i64,
) -> Result<(), ServiceError> {
    delete_account(db, id).await?;
    DeleteObjects {
        keys: vec![],
        prefixes: keys::user_prefixes(id),
    }
    .enqueue(db)
    .await?;
    Ok(())
}

fn field_error(field: &str, message: &str) -> ServiceError {
    ServiceError::Validation([(field.to_owned(), vec![message.to_owned()])].into())
}

#[cfg(test)]
mod cached_statements {
    use super::*;
    use crate::statements::tests::{BACKENDS, assert_same};
    use sea_orm::QueryTrait;

    #[test]
    fn the_cached_read_is_what_sea_query_builds() {
        for backend in BACKENDS {
            assert_same(user_statement(backend, 42), one_user(42).build(backend));
        }
    }
}

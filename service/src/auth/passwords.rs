//! argon2id password hashing, run on the blocking pool (it is deliberately slow).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::rngs::OsRng;
use tokio::sync::OnceCell;

use crate::ServiceError;

/// Hashes a password with argon2id and a random salt (PHC string).
pub async fn hash(password: &str) -> Result<String, ServiceError> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|error| ServiceError::Unexpected(anyhow::anyhow!("hashing failed: {error}")))
    })
    .await
    .map_err(|error| ServiceError::Unexpected(anyhow::anyhow!("hashing task failed: {error}")))?
}

/// Whether `password` matches the stored PHC `hash`.
pub async fn verify(password: &str, hash: &str) -> Result<bool, ServiceError> {
    let password = password.to_owned();
    let hash = hash.to_owned();
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&hash).map_err(|error| {
            ServiceError::Unexpected(anyhow::anyhow!(
                "a stored password hash is malformed: {error}"
            ))
        })?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(|error| {
        ServiceError::Unexpected(anyhow::anyhow!("verification task failed: {error}"))
    })?
}

static DUMMY_HASH: OnceCell<String> = OnceCell::const_new();

/// Spends the same work as [`verify`] for an account that does not exist.
pub async fn verify_against_dummy(password: &str) -> Result<(), ServiceError> {
    let dummy = DUMMY_HASH
        .get_or_try_init(|| hash("a password nobody has, used to equalise timing"))
        .await?;
    verify(password, dummy).await.map(|_| ())
}

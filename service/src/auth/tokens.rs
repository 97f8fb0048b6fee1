//! Short-lived HS256 access tokens. Verified with the key alone: no database round trip.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

use crate::ServiceError;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The user id, as a string (RFC 7519 `sub`).
    sub: String,
    iat: i64,
    exp: i64,
    /// Token type, so a token minted for something else is never taken for an access token.
    typ: String,
}

/// Why a presented token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is invalid")]
    Invalid,
}

/// Issues and verifies access tokens.
#[derive(Clone)]
pub struct AccessTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl AccessTokens {
    pub fn new(secret: &str, ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        AccessTokens {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            ttl,
        }
    }

    /// A token for `user_id` and its lifetime in seconds.
    pub fn issue(&self, user_id: i64) -> Result<(String, u64), ServiceError> {
        let now = chrono::Utc::now().timestamp();
        let ttl = self.ttl.as_secs();
        let claims = Claims {
            sub: user_id.to_string(),
            iat: now,
            exp: now + i64::try_from(ttl).unwrap_or(i64::MAX / 2),
            typ: "access".to_owned(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|error| {
            ServiceError::Unexpected(anyhow::anyhow!("signing failed: {error}"))
        })?;
        Ok((token, ttl))
    }

    /// The user id a valid token was issued to.
    pub fn verify(&self, token: &str) -> Result<i64, TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?;
        if data.claims.typ != "access" {
            return Err(TokenError::Invalid);
        }
        data.claims.sub.parse().map_err(|_| TokenError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_a_foreign_one_is_refused() {
        let tokens = AccessTokens::new("k".repeat(32).as_str(), Duration::from_secs(60));
        let (token, expires_in) = tokens.issue(42).unwrap();
        assert_eq!(expires_in, 60);
        assert_eq!(tokens.verify(&token), Ok(42));
        let other = AccessTokens::new("x".repeat(32).as_str(), Duration::from_secs(60));
        assert_eq!(other.verify(&token), Err(TokenError::Invalid));
        assert_eq!(tokens.verify("not.a.token"), Err(TokenError::Invalid));
        let mut tampered = token.clone();
        tampered.push('x');
        assert_eq!(tokens.verify(&tampered), Err(TokenError::Invalid));
    }

    #[test]
    fn an_expired_token_says_so() {
        let tokens = AccessTokens::new("k".repeat(32).as_str(), Duration::from_secs(60));
        let claims = Claims {
            sub: "1".to_owned(),
            iat: 0,
            exp: chrono::Utc::now().timestamp() - 5,
            typ: "access".to_owned(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &tokens.encoding)
            .unwrap();
        assert_eq!(tokens.verify(&token), Err(TokenError::Expired));
    }
}

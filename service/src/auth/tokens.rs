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
    /// The one photo an event-stream ticket is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    photo: Option<i64>,
    /// The account's token generation when issued (tokens from before generations: 0).
    #[serde(default)]
    generation: i32,
}

/// Who a valid token was issued to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenUser {
    pub user_id: i64,
    /// The account's token generation then: writes with an older one are refused.
    pub generation: i32,
}

impl Claims {
    fn user(&self) -> Result<TokenUser, TokenError> {
        Ok(TokenUser {
            user_id: self.sub.parse().map_err(|_| TokenError::Invalid)?,
            generation: self.generation,
        })
    }
}

/// Token type of access tokens.
const ACCESS: &str = "access";
/// Token type of event-stream tickets.
const EVENTS: &str = "events";

/// How long an event-stream ticket can open streams (reconnections included).
pub const TICKET_TTL: Duration = Duration::from_secs(60);

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

    /// A token for `user` and its lifetime in seconds.
    pub fn issue(&self, user: TokenUser) -> Result<(String, u64), ServiceError> {
        self.sign(user, ACCESS, None, self.ttl)
    }

    /// A ticket that opens the event stream of photo `photo_id` of `user_id` (for browsers'
    /// `EventSource`, which cannot send an `Authorization` header), valid for [`TICKET_TTL`].
    /// It is no access token: it opens that one stream and nothing else.
    pub fn issue_stream_ticket(
        &self,
        user: TokenUser,
        photo_id: i64,
    ) -> Result<(String, u64), ServiceError> {
        self.sign(user, EVENTS, Some(photo_id), TICKET_TTL)
    }

    fn sign(
        &self,
        user: TokenUser,
        typ: &str,
        photo: Option<i64>,
        ttl: Duration,
    ) -> Result<(String, u64), ServiceError> {
        let now = chrono::Utc::now().timestamp();
        let ttl = ttl.as_secs();
        let claims = Claims {
            sub: user.user_id.to_string(),
            iat: now,
            exp: now + i64::try_from(ttl).unwrap_or(i64::MAX / 2),
            typ: typ.to_owned(),
            photo,
            generation: user.generation,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|error| {
            ServiceError::Unexpected(anyhow::anyhow!("signing failed: {error}"))
        })?;
        Ok((token, ttl))
    }

    /// Who a valid access token was issued to.
    pub fn verify(&self, token: &str) -> Result<TokenUser, TokenError> {
        let claims = self.decode(token)?;
        if claims.typ != ACCESS {
            return Err(TokenError::Invalid);
        }
        claims.user()
    }

    /// Who a valid ticket for photo `photo_id`'s event stream was issued to.
    pub fn verify_stream_ticket(
        &self,
        ticket: &str,
        photo_id: i64,
    ) -> Result<TokenUser, TokenError> {
        let claims = self.decode(ticket)?;
        if claims.typ != EVENTS || claims.photo != Some(photo_id) {
            return Err(TokenError::Invalid);
        }
        claims.user()
    }

    fn decode(&self, token: &str) -> Result<Claims, TokenError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_a_foreign_one_is_refused() {
        let tokens = AccessTokens::new("k".repeat(32).as_str(), Duration::from_secs(60));
        let user = TokenUser {
            user_id: 42,
            generation: 3,
        };
        let (token, expires_in) = tokens.issue(user).unwrap();
        assert_eq!(expires_in, 60);
        assert_eq!(tokens.verify(&token), Ok(user));
        let other = AccessTokens::new("x".repeat(32).as_str(), Duration::from_secs(60));
        assert_eq!(other.verify(&token), Err(TokenError::Invalid));
        assert_eq!(tokens.verify("not.a.token"), Err(TokenError::Invalid));
        let mut tampered = token.clone();
        tampered.push('x');
        assert_eq!(tokens.verify(&tampered), Err(TokenError::Invalid));
    }

    #[test]
    fn a_stream_ticket_opens_one_photo_and_is_no_access_token() {
        let tokens = AccessTokens::new("k".repeat(32).as_str(), Duration::from_secs(60));
        let user = TokenUser {
            user_id: 7,
            generation: 0,
        };
        let (ticket, ttl) = tokens.issue_stream_ticket(user, 42).unwrap();
        assert_eq!(ttl, TICKET_TTL.as_secs());
        assert_eq!(tokens.verify_stream_ticket(&ticket, 42), Ok(user));
        assert_eq!(
            tokens.verify_stream_ticket(&ticket, 43),
            Err(TokenError::Invalid)
        );
        assert_eq!(tokens.verify(&ticket), Err(TokenError::Invalid));
        let (access, _) = tokens.issue(user).unwrap();
        assert_eq!(
            tokens.verify_stream_ticket(&access, 42),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn an_expired_token_says_so() {
        let tokens = AccessTokens::new("k".repeat(32).as_str(), Duration::from_secs(60));
        let claims = Claims {
            sub: "1".to_owned(),
            iat: 0,
            exp: chrono::Utc::now().timestamp() - 5,
            typ: "access".to_owned(),
            photo: None,
            generation: 0,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &tokens.encoding)
            .unwrap();
        assert_eq!(tokens.verify(&token), Err(TokenError::Expired));
    }
}

//! Short-lived HS256 access tokens. Verified with the key alone: no database round trip.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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
    verified: Arc<Mutex<Verified>>,
}

/// Access tokens verified lately: token -> (who, `exp`). A token's signature and claims give
/// the same answer for as long as the key is the same (one `AccessTokens`, one key), so a
/// token presented again needs only its expiry checked, by jsonwebtoken's own rule (expired
/// when `exp < now` in whole seconds; no leeway). Every request carries a token, the same one
/// for its whole lifetime: verifying it afresh (base64, HMAC-SHA256, two JSON documents) was a
/// third of a photo read's instructions. Only tokens that passed every check get in, at most
/// [`VERIFIED_CAPACITY`]; when full it starts over (one verification more per token in use).
type Verified = HashMap<Box<str>, (TokenUser, u64)>;

/// How many verified tokens [`AccessTokens`] remembers (about 250 bytes each).
const VERIFIED_CAPACITY: usize = 4096;

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
            verified: Arc::default(),
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
        let now = jsonwebtoken::get_current_timestamp();
        let known = self.remembered().get(token).copied();
        if let Some((user, exp)) = known {
            return if exp < now {
                Err(TokenError::Expired)
            } else {
                Ok(user)
            };
        }
        let claims = self.decode(token)?;
        if claims.typ != ACCESS {
            return Err(TokenError::Invalid);
        }
        let user = claims.user()?;
        // Passed jsonwebtoken's expiry check, so `exp` is a whole number of seconds >= 0.
        if let Ok(exp) = u64::try_from(claims.exp) {
            let mut verified = self.remembered();
            if verified.len() >= VERIFIED_CAPACITY {
                verified.clear();
            }
            verified.insert(token.into(), (user, exp));
        }
        Ok(user)
    }

    /// The verified tokens (a panic elsewhere while holding them leaves a map still usable).
    fn remembered(&self) -> std::sync::MutexGuard<'_, Verified> {
        self.verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
    fn a_remembered_token_still_expires_and_the_memory_is_bounded() {
        let tokens = AccessTokens::new("k".repeat(32).as_str(), Duration::from_secs(60));
        let user = TokenUser {
            user_id: 5,
            generation: 1,
        };
        let (token, _) = tokens.issue(user).unwrap();
        assert_eq!(tokens.verify(&token), Ok(user));
        assert_eq!(tokens.remembered().len(), 1);
        // Remembered: the same answer again, without decoding.
        assert_eq!(tokens.verify(&token), Ok(user));
        // Another key does not share the memory and refuses it.
        let other = AccessTokens::new("x".repeat(32).as_str(), Duration::from_secs(60));
        assert_eq!(other.verify(&token), Err(TokenError::Invalid));
        // Its `exp` passes: expired from the memory, as jsonwebtoken would say.
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(entry) = tokens.remembered().get_mut(token.as_str()) {
            entry.1 = now - 1;
        }
        assert_eq!(tokens.verify(&token), Err(TokenError::Expired));
        // A refused token is not remembered.
        let mut tampered = token.clone();
        tampered.push('x');
        assert_eq!(tokens.verify(&tampered), Err(TokenError::Invalid));
        assert!(!tokens.remembered().contains_key(tampered.as_str()));
        // Bounded.
        for user_id in 0..(VERIFIED_CAPACITY as i64 + 10) {
            let (token, _) = tokens
                .issue(TokenUser {
                    user_id,
                    generation: 0,
                })
                .unwrap();
            assert!(tokens.verify(&token).is_ok());
            assert!(tokens.remembered().len() <= VERIFIED_CAPACITY);
        }
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

//! Extractors: [`ValidJson`] (JSON body, parsed and validated, with problem+json errors that
//! name the field) and [`AuthUser`] (the bearer token's user, verified without the database).

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures_util::future::{LocalBoxFuture, Ready, ready};
use serde::de::DeserializeOwned;
use service::auth::TokenError;
use validator::{Validate, ValidationErrors, ValidationErrorsKind};

use crate::{ApiError, AppState};

/// Largest JSON body accepted.
pub const JSON_LIMIT: usize = 64 * 1024;

/// A JSON body of type `T`, validated. Unknown fields are refused by `T`'s
/// `#[serde(deny_unknown_fields)]`.
#[derive(Debug)]
pub struct ValidJson<T>(pub T);

impl<T> FromRequest for ValidJson<T>
where
    T: DeserializeOwned + Validate + 'static,
{
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_json = req.mime_type().ok().flatten().is_some_and(|mime| {
            mime.subtype() == "json" || mime.suffix().is_some_and(|suffix| suffix == "json")
        });
        if !is_json {
            return Box::pin(ready(Err(ApiError::UnsupportedMediaType {
                detail: "send the body as application/json".to_owned(),
            })));
        }
        let too_large = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<usize>().ok())
            .is_some_and(|length| length > JSON_LIMIT);
        if too_large {
            return Box::pin(ready(Err(body_too_large())));
        }
        // A JSON body is small: all of it must arrive within the upload idle time-out, so a
        // client that sends half a body and stops (slow loris) is cut off with 408.
        let deadline = req
            .app_data::<web::Data<AppState>>()
            .map_or(Duration::from_secs(30), |state| state.upload_idle_timeout);
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let body = tokio::time::timeout(deadline, body).await.map_err(|_| {
                ApiError::RequestTimeout {
                    detail: format!(
                        "the JSON body did not arrive within {} s (AISTORY_UPLOAD_IDLE_TIMEOUT_SECS)",
                        deadline.as_secs()
                    ),
                }
            })?;
            let bytes = body.map_err(|error| match error.as_error::<PayloadError>() {
                Some(PayloadError::Overflow) => body_too_large(),
                _ => ApiError::BadRequest {
                    detail: format!("the request body could not be read: {error}"),
                },
            })?;
            let value: T = parse(&bytes)?;
            value.validate().map_err(|errors| ApiError::Validation {
                errors: field_messages(&errors),
            })?;
            Ok(ValidJson(value))
        })
    }
}

/// A query string of type `T`, parsed with the name of the offending parameter: a value of the
/// wrong type is a 422 naming it (like a body field). Parameters `T` does not know are ignored.
#[derive(Debug)]
pub struct ValidQuery<T>(pub T);

impl<T: DeserializeOwned> FromRequest for ValidQuery<T> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(parse_query(req.query_string()).map(ValidQuery))
    }
}

fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let deserializer =
        serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let message = error.into_inner().to_string();
        let (field, message) = field_of(&path, &message);
        let field = if field == "body" {
            "query".to_owned()
        } else {
            field
        };
        ApiError::Validation {
            errors: [(field, vec![query_message(&message)])].into(),
        }
    })
}

/// serde's messages for a query value of the wrong type, in words a client can act on.
fn query_message(message: &str) -> String {
    match message {
        "invalid digit found in string" | "cannot parse integer from empty string" => {
            "must be a whole number".to_owned()
        }
        "number too large to fit in target type" => "is too large".to_owned(),
        "number too small to fit in target type" => "is too small".to_owned(),
        other if other.starts_with("unknown variant") => {
            other.split_once(", expected").map_or_else(
                || other.to_owned(),
                |(_, expected)| format!("must be{expected}"),
            )
        }
        other => other.to_owned(),
    }
}

/// [`ValidJson`] for an optional body: a request without one (no `Content-Type` and no bytes,
/// or `Content-Length: 0`), or with the JSON `null`, gets `T::default()`.
#[derive(Debug)]
pub struct OptionalJson<T>(pub T);

impl<T> FromRequest for OptionalJson<T>
where
    T: DeserializeOwned + Validate + Default + 'static,
{
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let headers = req.headers();
        let length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .map(str::trim);
        let no_body = length == Some("0")
            || (length.is_none()
                && !headers.contains_key(header::TRANSFER_ENCODING)
                && !headers.contains_key(header::CONTENT_TYPE));
        if no_body {
            return Box::pin(ready(Ok(OptionalJson(T::default()))));
        }
        let body = ValidJson::<OrNull<T>>::from_request(req, payload);
        Box::pin(async move {
            body.await
                .map(|ValidJson(OrNull(value))| OptionalJson(value.unwrap_or_default()))
        })
    }
}

/// `T` or the JSON `null`.
#[derive(Debug, serde::Deserialize)]
#[serde(transparent)]
struct OrNull<T>(Option<T>);

impl<T: Validate> Validate for OrNull<T> {
    fn validate(&self) -> Result<(), ValidationErrors> {
        self.0.as_ref().map_or(Ok(()), Validate::validate)
    }
}

fn body_too_large() -> ApiError {
    ApiError::PayloadTooLarge {
        detail: format!("the JSON body is larger than {} KiB", JSON_LIMIT / 1024),
    }
}

/// Deserialises with the path of the offending field: syntax errors are 400, a body of the
/// wrong shape is 422 naming the field.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if !inner.is_data() {
            return ApiError::BadRequest {
                detail: format!("the body is not valid JSON: {inner}"),
            };
        }
        let message = strip_position(&inner.to_string());
        let (field, message) = field_of(&path, &message);
        ApiError::Validation {
            errors: [(field, vec![message])].into(),
        }
    })?;
    deserializer.end().map_err(|error| ApiError::BadRequest {
        detail: format!("the body is not valid JSON: {error}"),
    })?;
    Ok(value)
}

/// serde's "missing field `x`" and "unknown field `x`, expected ..." name the field in the
/// message, not the path: move it to the field name.
fn field_of(path: &str, message: &str) -> (String, String) {
    let base = if path == "." {
        String::new()
    } else {
        path.to_owned()
    };
    // For an unknown field the path already ends with its name; for a missing one it does not.
    let join = |name: &str| {
        if base.is_empty() {
            name.to_owned()
        } else if base == name || base.ends_with(&format!(".{name}")) {
            base.clone()
        } else {
            format!("{base}.{name}")
        }
    };
    for (prefix, text) in [
        ("missing field `", "is required"),
        ("unknown field `", "is not a known field"),
    ] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((name, tail)) = rest.split_once('`')
        {
            let detail = tail.trim_start_matches(',').trim();
            let text = if detail.is_empty() {
                text.to_owned()
            } else {
                format!("{text} ({detail})")
            };
            return (join(name), text);
        }
    }
    let field = if base.is_empty() {
        "body".to_owned()
    } else {
        base
    };
    (field, message.to_owned())
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

/// validator's errors as `{field: [messages]}`.
pub fn field_messages(errors: &ValidationErrors) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for (field, kind) in errors.errors() {
        if let ValidationErrorsKind::Field(list) = kind {
            let messages = list
                .iter()
                .map(|error| match &error.message {
                    Some(message) => message.to_string(),
                    None => rule_message(error),
                })
                .collect();
            out.insert(field.to_string(), messages);
        }
    }
    out
}

/// A rule without a message of its own, in words (`length` with `min` 2 and `max` 35: "must be
/// 2 to 35 characters long").
fn rule_message(error: &validator::ValidationError) -> String {
    let param = |name: &str| error.params.get(name).map(ToString::to_string);
    let (min, max) = (param("min"), param("max"));
    match (error.code.as_ref(), min, max) {
        ("length", Some(min), Some(max)) => format!("must be {min} to {max} characters long"),
        ("length", Some(min), None) => format!("must be at least {min} characters long"),
        ("length", None, Some(max)) => format!("must be at most {max} characters long"),
        ("range", Some(min), Some(max)) => format!("must be from {min} to {max}"),
        ("range", Some(min), None) => format!("must be at least {min}"),
        ("range", None, Some(max)) => format!("must be at most {max}"),
        (code, _, _) => format!("is not valid ({code})"),
    }
}

/// The authenticated user of a request: `Authorization: Bearer <access token>`, verified by
/// signature and expiry alone for reads (no database round trip); for a request that may
/// write (any method but GET, HEAD, OPTIONS), also that its session has not been ended
/// ([`service::auth::ensure_session`]: one primary-key read).
#[derive(Debug, Clone, Copy)]
pub struct AuthUser {
    pub id: i64,
    /// The account's token generation the token was issued in.
    pub generation: i32,
}

impl AuthUser {
    pub fn token(self) -> service::auth::TokenUser {
        service::auth::TokenUser {
            user_id: self.id,
            generation: self.generation,
        }
    }
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let user = match authenticate(req) {
            Ok(user) => user,
            Err(error) => return Box::pin(ready(Err(error))),
        };
        let safe = matches!(
            *req.method(),
            actix_web::http::Method::GET
                | actix_web::http::Method::HEAD
                | actix_web::http::Method::OPTIONS
        );
        let state = req.app_data::<web::Data<AppState>>().cloned();
        match (safe, state) {
            (true, _) | (false, None) => Box::pin(ready(Ok(user))),
            (false, Some(state)) => Box::pin(async move {
                service::auth::ensure_session(&state.reads, user.token())
                    .await
                    .map_err(|error| match ApiError::from(error) {
                        ApiError::Unauthenticated { detail, .. } => ApiError::Unauthenticated {
                            detail,
                            invalid_token: true,
                        },
                        other => other,
                    })?;
                Ok(user)
            }),
        }
    }
}

/// The bearer token's user (what [`AuthUser`] extracts, without the session check), for
/// handlers that also take other credentials.
pub(crate) fn authenticate(req: &HttpRequest) -> Result<AuthUser, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::internal("application state is missing"))?;
    let value =
        req.headers()
            .get(header::AUTHORIZATION)
            .ok_or_else(|| ApiError::Unauthenticated {
                detail: "send an access token: Authorization: Bearer <token>".to_owned(),
                invalid_token: false,
            })?;
    let token = value
        .to_str()
        .ok()
        .and_then(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|token| !token.is_empty())
        .ok_or_else(|| ApiError::Unauthenticated {
            detail: "the Authorization header must be `Bearer <token>`".to_owned(),
            invalid_token: true,
        })?;
    match state.access.verify(token) {
        Ok(verified) => {
            let user = AuthUser {
                id: verified.user_id,
                generation: verified.generation,
            };
            req.extensions_mut().insert(user);
            Ok(user)
        }
        Err(TokenError::Expired) => Err(ApiError::Unauthenticated {
            detail: "the access token has expired; get a new one with POST /api/v1/auth/refresh"
                .to_owned(),
            invalid_token: true,
        }),
        Err(TokenError::Invalid) => Err(ApiError::Unauthenticated {
            detail: "the access token is invalid".to_owned(),
            invalid_token: true,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, Validate)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        name: String,
        #[validate(range(min = 1))]
        count: i32,
    }

    fn field_errors(body: &str) -> BTreeMap<String, Vec<String>> {
        match parse::<Sample>(body.as_bytes()) {
            Err(ApiError::Validation { errors }) => errors,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn rules_without_messages_are_worded() {
        let errors = Sample {
            name: String::new(),
            count: 0,
        }
        .validate()
        .unwrap_err();
        assert_eq!(field_messages(&errors)["count"], ["must be at least 1"]);
    }

    #[test]
    fn shape_errors_name_the_field() {
        assert!(field_errors(r#"{"name":"a"}"#)["count"][0].contains("required"));
        let unknown = field_errors(r#"{"name":"a","count":1,"extra":2}"#);
        assert!(
            unknown["extra"][0].contains("not a known field"),
            "{unknown:?}"
        );
        assert!(field_errors(r#"{"name":1,"count":1}"#).contains_key("name"));
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Paging {
        limit: Option<u64>,
        status: Option<Colour>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Colour {
        Red,
        Green,
        Blue,
    }

    fn query_errors(query: &str) -> BTreeMap<String, Vec<String>> {
        match parse_query::<Paging>(query) {
            Err(ApiError::Validation { errors }) => errors,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn query_errors_name_the_parameter() {
        assert_eq!(
            query_errors("limit=abc")["limit"],
            ["must be a whole number"]
        );
        assert_eq!(
            query_errors("limit=-1")["limit"],
            ["must be a whole number"]
        );
        assert_eq!(
            query_errors("limit=99999999999999999999")["limit"],
            ["is too large"]
        );
        assert_eq!(
            query_errors("status=yellow")["status"],
            ["must be one of `red`, `green`, `blue`"]
        );
        let fine = parse_query::<Paging>("limit=5&unknown=1&status=red").unwrap();
        assert_eq!(fine.limit, Some(5));
        assert!(parse_query::<Paging>("").unwrap().limit.is_none());
    }

    #[test]
    fn syntax_errors_are_bad_requests() {
        assert!(matches!(
            parse::<Sample>(b"{"),
            Err(ApiError::BadRequest { .. })
        ));
        assert!(matches!(
            parse::<Sample>(br#"{"name":"a","count":1} trailing"#),
            Err(ApiError::BadRequest { .. })
        ));
    }
}

//! Field rules for request fields that stay plain strings (used through
//! `#[validate(custom(...))]`). Titles, usernames, emails and passwords are checked by their
//! own types (`service::domain`) while the body is read.

use std::borrow::Cow;

use validator::ValidationError;

fn error(code: &'static str, message: &'static str) -> ValidationError {
    ValidationError::new(code).with_message(Cow::Borrowed(message))
}

/// No NUL or other control characters ([`service::domain::no_control_characters`], as a
/// `validator` rule for fields that are plain strings).
pub fn no_control_characters(value: &str) -> Result<(), ValidationError> {
    service::domain::no_control_characters(value)
        .map_err(|rule| error("control_characters", rule.0))
}

/// A JSON whole number as `u64`: JSON Schema's `integer` includes `10.0`, serde's `u64` does
/// not. Fractions, negatives and non-numbers are refused.
pub fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    use serde::Deserialize;
    use serde::de::Error;
    let number = serde_json::Number::deserialize(deserializer)?;
    if let Some(whole) = number.as_u64() {
        return Ok(whole);
    }
    match number.as_f64() {
        // 2^64 is the first float past u64::MAX.
        Some(float)
            if float.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&float) =>
        {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Ok(float as u64)
        }
        _ => Err(D::Error::custom(format!(
            "expected a whole number of at least 0, got {number}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters() {
        assert!(no_control_characters("plain").is_ok());
        assert!(no_control_characters("nul\0").is_err());
    }

    #[test]
    fn whole_numbers() {
        #[derive(serde::Deserialize)]
        struct Size {
            #[serde(deserialize_with = "whole_number")]
            n: u64,
        }
        let parse = |json: &str| serde_json::from_str::<Size>(json).map(|size| size.n);
        assert_eq!(parse(r#"{"n": 10}"#).ok(), Some(10));
        assert_eq!(parse(r#"{"n": 10492.0}"#).ok(), Some(10492));
        assert_eq!(parse(r#"{"n": 1e3}"#).ok(), Some(1000));
        assert!(parse(r#"{"n": 1.5}"#).is_err());
        assert!(parse(r#"{"n": -1}"#).is_err());
        assert!(parse(r#"{"n": -0.0}"#).is_ok());
        assert!(parse(r#"{"n": 1e300}"#).is_err());
        assert!(parse(r#"{"n": "10"}"#).is_err());
    }
}

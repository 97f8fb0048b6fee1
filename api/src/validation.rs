//! Field rules shared by request types (used through `#[validate(custom(...))]`).

use std::borrow::Cow;

use validator::ValidationError;

fn error(code: &'static str, message: &'static str) -> ValidationError {
    ValidationError::new(code).with_message(Cow::Borrowed(message))
}

/// 3-32 of `[A-Za-z0-9_]`.
pub fn username(value: &str) -> Result<(), ValidationError> {
    let length = value.chars().count();
    if !(3..=32).contains(&length) {
        return Err(error("length", "must be 3 to 32 characters long"));
    }
    if !value
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
    {
        return Err(error(
            "charset",
            "may contain only letters A-Z and a-z, digits and underscores",
        ));
    }
    Ok(())
}

/// 8-128 characters, no NUL or other control characters.
pub fn password(value: &str) -> Result<(), ValidationError> {
    let length = value.chars().count();
    if !(8..=128).contains(&length) {
        return Err(error("length", "must be 8 to 128 characters long"));
    }
    no_control_characters(value)
}

/// No NUL or other control characters (the databases refuse or mangle them).
pub fn no_control_characters(value: &str) -> Result<(), ValidationError> {
    if value.chars().any(char::is_control) {
        return Err(error(
            "control_characters",
            "must not contain control characters (such as NUL)",
        ));
    }
    Ok(())
}

/// A plausible email address of at most 254 characters.
pub fn email(value: &str) -> Result<(), ValidationError> {
    no_control_characters(value)?;
    if value.len() > 254 || !validator::ValidateEmail::validate_email(&value) {
        return Err(error("email", "must be a valid email address"));
    }
    Ok(())
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
    fn rules() {
        assert!(username("ann_1").is_ok());
        assert!(username("an").is_err());
        assert!(username("ann-1").is_err());
        assert!(username(&"a".repeat(33)).is_err());
        assert!(password("correct horse").is_ok());
        assert!(password("short").is_err());
        assert!(password("has\0nul-inside").is_err());
        assert!(email("ann@example.com").is_ok());
        assert!(email("not-an-email").is_err());
        assert!(email("ann\0@example.com").is_err());
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

//! Values checked once, when they are made, and carried typed after that: a photo's
//! [`Title`], an account's [`Username`], [`Email`] and [`Password`]. Each parses from a
//! string (also as serde's `try_from`, so a request body holding one is checked while it is
//! read) and says what to fix when it cannot.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ServiceError;

/// Why a value was refused: a message for the person who typed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldError(pub &'static str);

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for FieldError {}

impl FieldError {
    /// The error as a 422 naming `field`.
    pub fn on(self, field: &str) -> ServiceError {
        ServiceError::Validation([(field.to_owned(), vec![self.0.to_owned()])].into())
    }
}

const CONTROL_CHARACTERS: FieldError =
    FieldError("must not contain control characters (such as NUL)");

/// No NUL or other control characters (the databases refuse or mangle them).
pub fn no_control_characters(value: &str) -> Result<(), FieldError> {
    match value.chars().any(char::is_control) {
        true => Err(CONTROL_CHARACTERS),
        false => Ok(()),
    }
}

/// The embeddings, overrides and isolates of Unicode's bidirectional algorithm: in a title they
/// make text display reversed or out of place (U+202E turns `gpj.exe` into `exe.jpg`).
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

macro_rules! string_value {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = FieldError;

            fn try_from(value: String) -> Result<Self, FieldError> {
                $name::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
    };
}

/// A photo's title: at most [`Title::MAX_CHARS`] characters, no control characters, without
/// surrounding white space. An empty title means none ([`Title::non_empty`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Title(String);

impl Title {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(value: impl Into<String>) -> Result<Title, FieldError> {
        let value = value.into();
        if value.chars().count() > Self::MAX_CHARS {
            return Err(FieldError("must be at most 200 characters long"));
        }
        no_control_characters(&value)?;
        if value.chars().any(is_bidi_control) {
            return Err(FieldError(
                "must not contain text-direction controls (U+202A-U+202E, U+2066-U+2069)",
            ));
        }
        Ok(Title(value.trim().to_owned()))
    }

    /// The title, unless it is empty (then the photo has none).
    pub fn non_empty(self) -> Option<Title> {
        (!self.0.is_empty()).then_some(self)
    }
}

string_value!(Title);

/// An account's username: 3 to 32 of `[A-Za-z0-9_]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

impl Username {
    pub fn parse(value: impl Into<String>) -> Result<Username, FieldError> {
        let value = value.into();
        if !(3..=32).contains(&value.chars().count()) {
            return Err(FieldError("must be 3 to 32 characters long"));
        }
        if !value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
        {
            return Err(FieldError(
                "may contain only letters A-Z and a-z, digits and underscores",
            ));
        }
        Ok(Username(value))
    }
}

string_value!(Username);

/// An email address: plausible, at most 254 characters, stored lower-case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(value: impl Into<String>) -> Result<Email, FieldError> {
        let value = value.into();
        no_control_characters(&value)?;
        if value.len() > 254 || !validator::ValidateEmail::validate_email(&value) {
            return Err(FieldError("must be a valid email address"));
        }
        Ok(Email(value.to_lowercase()))
    }
}

string_value!(Email);

/// A new password: 8 to 128 characters, no control characters. Never printed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Password(String);

impl Password {
    pub fn parse(value: impl Into<String>) -> Result<Password, FieldError> {
        let value = value.into();
        if !(8..=128).contains(&value.chars().count()) {
            return Err(FieldError("must be 8 to 128 characters long"));
        }
        no_control_characters(&value)?;
        Ok(Password(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Password {
    type Error = FieldError;

    fn try_from(value: String) -> Result<Self, FieldError> {
        Password::parse(value)
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(Username::parse("ann_1").is_ok());
        assert!(Username::parse("an").is_err());
        assert!(Username::parse("ann-1").is_err());
        assert!(Username::parse("a".repeat(33)).is_err());
        assert!(Password::parse("correct horse").is_ok());
        assert!(Password::parse("short").is_err());
        assert!(Password::parse("has\0nul-inside").is_err());
        assert_eq!(
            Email::parse("Ann@Example.com").unwrap().as_str(),
            "ann@example.com"
        );
        assert!(Email::parse("not-an-email").is_err());
        assert!(Email::parse("ann\0@example.com").is_err());
        assert_eq!(Title::parse("  Fog  ").unwrap().as_str(), "Fog");
        assert_eq!(Title::parse("   ").unwrap().non_empty(), None);
        assert!(Title::parse("x".repeat(201)).is_err());
        assert!(Title::parse("nul\0").is_err());
        assert_eq!(
            format!("{:?}", Password::parse("correct horse").unwrap()),
            "Password(..)"
        );
    }

    #[test]
    fn a_body_is_checked_while_it_is_read() {
        let error = serde_json::from_str::<Username>("\"a b\"").unwrap_err();
        assert!(error.to_string().contains("only letters"), "{error}");
        assert!(serde_json::from_str::<Title>("\"Fog\"").is_ok());
    }
}

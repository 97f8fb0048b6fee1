use thiserror::Error;

/// A configuration problem, worded for the operator who has to fix it.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{var} has an invalid value {value:?}: expected {expected}")]
    Invalid {
        var: String,
        value: String,
        expected: String,
    },
    #[error("{var} must be set: {why}")]
    Missing { var: String, why: String },
    #[error("the .env file could not be read: {0}")]
    DotEnv(String),
}

impl ConfigError {
    pub(crate) fn invalid(var: &str, value: &str, expected: &str) -> Self {
        ConfigError::Invalid {
            var: var.to_owned(),
            value: value.to_owned(),
            expected: expected.to_owned(),
        }
    }
}

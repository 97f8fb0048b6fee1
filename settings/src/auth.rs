use std::time::Duration;

use crate::{ConfigError, Environment, Vars};

/// The shortest key production accepts (HS256 wants at least 256 bits).
pub const MIN_SECRET_BYTES: usize = 32;

/// Token signing and login throttling.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthSettings {
    /// HS256 key for access tokens.
    pub secret_key: String,
    /// Whether `secret_key` is shorter than [`MIN_SECRET_BYTES`] (tolerated outside
    /// production; start-up warns loudly).
    pub insecure_key: bool,
    /// Whether `secret_key` is random, made for this process because `AISTORY_SECRET_KEY` is
    /// unset (development and testing on a loopback address only): tokens stop working when
    /// the process ends, and no other process accepts them.
    pub generated_key: bool,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// Throttling of password checks and registrations (counted in the database).
    pub throttle: ThrottleSettings,
}

/// How password guessing and mass registration are slowed down. Counted in the database, so
/// every process sees the same counts (`service::auth::throttle` describes the design).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// How long a failure counts (`AISTORY_LOGIN_WINDOW_SECS`, 900).
    pub window: Duration,
    /// Failures allowed for one account from one client address within `window`; past them
    /// that address gets 429 for that account (`AISTORY_LOGIN_MAX_FAILURES`, 5).
    pub max_failures_per_account_address: u32,
    /// Failures allowed from one client address, whatever the account, within `window`
    /// (`AISTORY_LOGIN_MAX_FAILURES_PER_ADDRESS`, 50).
    pub max_failures_per_address: u32,
    /// Failures on one account, from every address, before each further attempt on it must
    /// wait (`AISTORY_LOGIN_FREE_FAILURES_PER_ACCOUNT`, 10). Never a hard block: the owner is
    /// delayed, not locked out.
    pub free_failures_per_account: u32,
    /// The longest such wait; it doubles with each failure past the free ones, from 1 s
    /// (`AISTORY_LOGIN_MAX_DELAY_SECS`, 60).
    pub max_delay: Duration,
    /// Accounts one client address may register per hour (`AISTORY_REGISTRATIONS_PER_HOUR`, 20).
    pub registrations_per_hour: u32,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        ThrottleSettings {
            window: Duration::from_secs(900),
            max_failures_per_account_address: 5,
            max_failures_per_address: 50,
            free_failures_per_account: 10,
            max_delay: Duration::from_secs(60),
            registrations_per_hour: 20,
        }
    }
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("secret_key", &"***")
            .field("insecure_key", &self.insecure_key)
            .field("generated_key", &self.generated_key)
            .field("access_token_ttl", &self.access_token_ttl)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .field("throttle", &self.throttle)
            .finish()
    }
}

impl AuthSettings {
    pub(crate) fn from_vars(
        vars: &Vars<'_>,
        environment: Environment,
    ) -> Result<Self, ConfigError> {
        let (secret_key, insecure_key, generated_key) = match vars.get("AISTORY_SECRET_KEY") {
            Some(key) if key.len() >= MIN_SECRET_BYTES => (key, false, false),
            Some(key) if environment != Environment::Production => {
                // Short keys are tolerated outside production, with a warning.
                (key, true, false)
            }
            Some(key) => {
                return Err(ConfigError::Invalid {
                    var: "AISTORY_SECRET_KEY".to_owned(),
                    value: format!("({} bytes, hidden)", key.len()),
                    expected: format!(
                        "a random secret of at least {MIN_SECRET_BYTES} bytes, e.g. from \
                         `openssl rand -base64 48`"
                    ),
                });
            }
            None if environment == Environment::Production => {
                return Err(ConfigError::Missing {
                    var: "AISTORY_SECRET_KEY".to_owned(),
                    why: format!(
                        "production signs tokens with it; use a random secret of at least \
                         {MIN_SECRET_BYTES} bytes, e.g. from `openssl rand -base64 48`"
                    ),
                });
            }
            // Never a shared constant: a key nobody else can know, for this process only.
            None => (random_key(), false, true),
        };
        let access_token_ttl =
            bounded_seconds(vars, "AISTORY_ACCESS_TOKEN_TTL_SECS", 900, 30, 86_400)?;
        let refresh_token_ttl = bounded_seconds(
            vars,
            "AISTORY_REFRESH_TOKEN_TTL_SECS",
            30 * 86_400,
            60,
            365 * 86_400,
        )?;
        let throttle = ThrottleSettings {
            window: bounded_seconds(vars, "AISTORY_LOGIN_WINDOW_SECS", 900, 1, 86_400)?,
            max_failures_per_account_address: bounded(
                vars,
                "AISTORY_LOGIN_MAX_FAILURES",
                5,
                1,
                1000,
            )?,
            max_failures_per_address: bounded(
                vars,
                "AISTORY_LOGIN_MAX_FAILURES_PER_ADDRESS",
                50,
                1,
                100_000,
            )?,
            free_failures_per_account: bounded(
                vars,
                "AISTORY_LOGIN_FREE_FAILURES_PER_ACCOUNT",
                10,
                1,
                100_000,
            )?,
            max_delay: bounded_seconds(vars, "AISTORY_LOGIN_MAX_DELAY_SECS", 60, 1, 3600)?,
            registrations_per_hour: bounded(
                vars,
                "AISTORY_REGISTRATIONS_PER_HOUR",
                20,
                1,
                1_000_000,
            )?,
        };
        Ok(AuthSettings {
            secret_key,
            insecure_key,
            generated_key,
            access_token_ttl,
            refresh_token_ttl,
            throttle,
        })
    }

    /// Development defaults with a given key (tests, tools).
    pub fn for_key(secret_key: impl Into<String>) -> Self {
        AuthSettings {
            secret_key: secret_key.into(),
            insecure_key: false,
            generated_key: false,
            access_token_ttl: Duration::from_secs(900),
            refresh_token_ttl: Duration::from_secs(30 * 86_400),
            throttle: ThrottleSettings::default(),
        }
    }
}

/// 48 random bytes from the operating system, as URL-safe base64 (64 characters).
fn random_key() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 48];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn bounded(
    vars: &Vars<'_>,
    name: &str,
    default: u32,
    min: u32,
    max: u32,
) -> Result<u32, ConfigError> {
    let expected = format!("a whole number from {min} to {max}");
    vars.parse_in(name, default, min..=max, &expected)
}

fn bounded_seconds(
    vars: &Vars<'_>,
    name: &str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<Duration, ConfigError> {
    let expected = format!("a whole number of seconds from {min} to {max}");
    let value = vars.parse_in(name, default, min..=max, &expected)?;
    Ok(Duration::from_secs(value))
}

use std::time::Duration;

use crate::{ConfigError, Vars};

/// Background workers: how many run inside the server and how they hold their jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSettings {
    /// Workers inside the server process (`AISTORY_WORKERS`, 0 = none: run `api worker`).
    pub count: u16,
    /// How long a claimed job stays reserved without a heartbeat (`AISTORY_WORKER_LEASE_SECS`).
    /// A worker that dies releases its jobs after this time.
    pub lease: Duration,
    /// How often an idle worker looks for due jobs (`AISTORY_WORKER_POLL_MS`).
    pub poll_interval: Duration,
    /// How long a running job may go on after shutdown begins before it is handed back
    /// (`AISTORY_WORKER_GRACE_SECS`).
    pub shutdown_grace: Duration,
    /// Diagnostics (`AISTORY_WORKER_COUNT_FILE`): when set, workers also run `diagnostic.count`
    /// jobs, each appending its job id to this file, to check that every job runs once.
    pub count_file: Option<String>,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            count: 1,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_millis(500),
            shutdown_grace: Duration::from_secs(10),
            count_file: None,
        }
    }
}

impl WorkerSettings {
    pub(crate) fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let defaults = WorkerSettings::default();
        let count = vars.parse_or("AISTORY_WORKERS", defaults.count, "a number from 0 to 64")?;
        if count > 64 {
            return Err(ConfigError::invalid(
                "AISTORY_WORKERS",
                &count.to_string(),
                "a number from 0 to 64",
            ));
        }
        let lease = bounded_secs(vars, "AISTORY_WORKER_LEASE_SECS", 60, 1, 3600)?;
        let poll = vars.parse_in(
            "AISTORY_WORKER_POLL_MS",
            500u64,
            10..=60_000,
            "a number of milliseconds from 10 to 60000",
        )?;
        Ok(WorkerSettings {
            count,
            lease,
            poll_interval: Duration::from_millis(poll),
            shutdown_grace: bounded_secs(vars, "AISTORY_WORKER_GRACE_SECS", 10, 0, 3600)?,
            count_file: vars.get("AISTORY_WORKER_COUNT_FILE"),
        })
    }
}

fn bounded_secs(
    vars: &Vars<'_>,
    name: &str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<Duration, ConfigError> {
    let expected = format!("a number of seconds from {min} to {max}");
    let value = vars.parse_in(name, default, min..=max, &expected)?;
    Ok(Duration::from_secs(value))
}

/// Which story provider writes the stories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoryProviderSettings {
    /// Offline, deterministic, written from what the photo carries (the default).
    Builtin,
    /// Any OpenAI-compatible chat-completions endpoint.
    OpenAi(OpenAiSettings),
}

/// The `openai` provider's endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct OpenAiSettings {
    /// Base URL up to the version, e.g. `https://api.openai.com/v1` (`AISTORY_AI_BASE_URL`);
    /// requests go to `{base_url}/chat/completions`.
    pub base_url: String,
    /// Model name (`AISTORY_AI_MODEL`); it must accept images.
    pub model: String,
    /// Bearer token (`AISTORY_AI_API_KEY`); optional for local endpoints.
    pub api_key: Option<String>,
    /// Bound on one request (`AISTORY_AI_TIMEOUT_SECS`, default 60).
    pub timeout: Duration,
    /// Retries of one request after 429 / 5xx / a time-out (`AISTORY_AI_MAX_RETRIES`, default 2),
    /// before the job itself is retried later.
    pub max_retries: u32,
}

impl std::fmt::Debug for OpenAiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiSettings")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .finish()
    }
}

impl OpenAiSettings {
    /// An endpoint with the default time-out and retries.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        OpenAiSettings {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            model: model.into(),
            api_key: None,
            timeout: Duration::from_secs(60),
            max_retries: 2,
        }
    }
}

impl StoryProviderSettings {
    pub(crate) fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let provider = vars
            .get("AISTORY_STORY_PROVIDER")
            .unwrap_or_else(|| "builtin".to_owned());
        match provider.to_ascii_lowercase().as_str() {
            "builtin" => Ok(StoryProviderSettings::Builtin),
            "openai" => {
                let why = "AISTORY_STORY_PROVIDER=openai needs it";
                let base_url =
                    vars.get("AISTORY_AI_BASE_URL")
                        .ok_or_else(|| ConfigError::Missing {
                            var: "AISTORY_AI_BASE_URL".to_owned(),
                            why: format!("{why} (e.g. https://api.openai.com/v1)"),
                        })?;
                match url::Url::parse(&base_url) {
                    Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {}
                    _ => {
                        return Err(ConfigError::invalid(
                            "AISTORY_AI_BASE_URL",
                            &base_url,
                            "an http:// or https:// URL such as https://api.openai.com/v1",
                        ));
                    }
                }
                let model = vars
                    .get("AISTORY_AI_MODEL")
                    .ok_or_else(|| ConfigError::Missing {
                        var: "AISTORY_AI_MODEL".to_owned(),
                        why: format!("{why} (a model that accepts images, e.g. gpt-4o-mini)"),
                    })?;
                let mut settings = OpenAiSettings::new(base_url, model);
                settings.api_key = vars.get("AISTORY_AI_API_KEY");
                settings.timeout = bounded_secs(vars, "AISTORY_AI_TIMEOUT_SECS", 60, 1, 600)?;
                settings.max_retries =
                    vars.parse_or("AISTORY_AI_MAX_RETRIES", 2u32, "a number from 0 to 10")?;
                if settings.max_retries > 10 {
                    return Err(ConfigError::invalid(
                        "AISTORY_AI_MAX_RETRIES",
                        &settings.max_retries.to_string(),
                        "a number from 0 to 10",
                    ));
                }
                Ok(StoryProviderSettings::OpenAi(settings))
            }
            _ => Err(ConfigError::invalid(
                "AISTORY_STORY_PROVIDER",
                &provider,
                "builtin or openai",
            )),
        }
    }
}

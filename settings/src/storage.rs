use crate::{ConfigError, Vars};

/// Where photo bytes live and how large they may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageSettings {
    /// `file://DIR`, `memory://` or `s3://BUCKET` (S3 settings from the `AWS_*` variables).
    pub url: String,
    /// Largest photo accepted, in bytes.
    pub max_upload_bytes: u64,
    /// An upload whose body stops arriving for this long is dropped with 408
    /// (`AISTORY_UPLOAD_IDLE_TIMEOUT_SECS`).
    pub upload_idle_timeout: std::time::Duration,
}

const SCHEMES: &str = "file://DIR, memory:// or s3://BUCKET";

impl StorageSettings {
    pub(crate) fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let url = vars
            .get("AISTORY_STORAGE_URL")
            .unwrap_or_else(|| "file://./data/objects".to_owned());
        let valid = match url.split_once("://") {
            Some(("file", rest)) => !rest.is_empty(),
            Some(("memory", _)) => true,
            Some(("s3", bucket)) => {
                let bucket = bucket.trim_end_matches('/');
                !bucket.is_empty() && !bucket.contains('/')
            }
            _ => false,
        };
        if !valid {
            return Err(ConfigError::invalid("AISTORY_STORAGE_URL", &url, SCHEMES));
        }
        let expected = "a number of bytes from 1024 to 10737418240 (10 GiB)";
        let max_upload_bytes =
            vars.parse_or("AISTORY_MAX_UPLOAD_BYTES", 20 * 1024 * 1024u64, expected)?;
        if !(1024..=10 * 1024 * 1024 * 1024).contains(&max_upload_bytes) {
            return Err(ConfigError::invalid(
                "AISTORY_MAX_UPLOAD_BYTES",
                &max_upload_bytes.to_string(),
                expected,
            ));
        }
        let idle_expected = "a number of seconds from 1 to 600";
        let idle = vars.parse_or("AISTORY_UPLOAD_IDLE_TIMEOUT_SECS", 30u64, idle_expected)?;
        if !(1..=600).contains(&idle) {
            return Err(ConfigError::invalid(
                "AISTORY_UPLOAD_IDLE_TIMEOUT_SECS",
                &idle.to_string(),
                idle_expected,
            ));
        }
        Ok(StorageSettings {
            url,
            max_upload_bytes,
            upload_idle_timeout: std::time::Duration::from_secs(idle),
        })
    }

    pub fn for_url(url: impl Into<String>) -> Self {
        StorageSettings {
            url: url.into(),
            max_upload_bytes: 20 * 1024 * 1024,
            upload_idle_timeout: std::time::Duration::from_secs(30),
        }
    }
}

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
    /// Largest image accepted, in pixels (`AISTORY_MAX_IMAGE_PIXELS`).
    pub max_image_pixels: u64,
    /// Longest side accepted, in pixels (`AISTORY_MAX_IMAGE_SIDE`).
    pub max_image_side: u32,
    /// How downloads reach clients (`AISTORY_DOWNLOADS`): through the API, or by a redirect
    /// to a presigned URL of the bucket (S3 stores only; their default).
    pub downloads: DownloadMode,
    /// How long a download's presigned URL works (`AISTORY_DOWNLOAD_URL_TTL_SECS`).
    pub download_url_ttl: std::time::Duration,
}

/// How `GET /photos/{id}/content` and `/thumbnail` deliver the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownloadMode {
    /// The API streams the object to the client.
    Proxy,
    /// The API answers 302 to a short-lived presigned GET URL: the bytes come from the bucket.
    Redirect,
}

impl DownloadMode {
    /// Redirects on an S3 store, the API itself elsewhere.
    pub fn default_for(url: &str) -> DownloadMode {
        if url.starts_with("s3://") {
            DownloadMode::Redirect
        } else {
            DownloadMode::Proxy
        }
    }
}

const SCHEMES: &str = "file://DIR, memory:// or s3://BUCKET";
/// 50 megapixels: a large camera's photo; a decoded RGBA copy is 200 MB.
pub const DEFAULT_MAX_IMAGE_PIXELS: u64 = 50_000_000;
pub const DEFAULT_MAX_IMAGE_SIDE: u32 = 20_000;

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
        let max_upload_bytes = vars.parse_in(
            "AISTORY_MAX_UPLOAD_BYTES",
            20 * 1024 * 1024u64,
            1024..=10 * 1024 * 1024 * 1024,
            expected,
        )?;
        let idle_expected = "a number of seconds from 1 to 600";
        let idle = vars.parse_in(
            "AISTORY_UPLOAD_IDLE_TIMEOUT_SECS",
            30u64,
            1..=600,
            idle_expected,
        )?;
        let pixels_expected = "a number of pixels from 1 to 1000000000";
        let max_image_pixels = vars.parse_in(
            "AISTORY_MAX_IMAGE_PIXELS",
            DEFAULT_MAX_IMAGE_PIXELS,
            1..=1_000_000_000,
            pixels_expected,
        )?;
        let side_expected = "a number of pixels from 1 to 100000";
        let max_image_side = vars.parse_in(
            "AISTORY_MAX_IMAGE_SIDE",
            DEFAULT_MAX_IMAGE_SIDE,
            1..=100_000,
            side_expected,
        )?;
        let downloads = match vars.get("AISTORY_DOWNLOADS").as_deref() {
            None | Some("") => DownloadMode::default_for(&url),
            Some("proxy") => DownloadMode::Proxy,
            Some("redirect") if url.starts_with("s3://") => DownloadMode::Redirect,
            Some(other) => {
                return Err(ConfigError::invalid(
                    "AISTORY_DOWNLOADS",
                    other,
                    if url.starts_with("s3://") {
                        "proxy or redirect"
                    } else {
                        "proxy (redirect needs an s3:// store)"
                    },
                ));
            }
        };
        let ttl_expected = "a number of seconds from 1 to 604800 (7 days)";
        let ttl = vars.parse_in(
            "AISTORY_DOWNLOAD_URL_TTL_SECS",
            300u64,
            1..=604_800,
            ttl_expected,
        )?;
        Ok(StorageSettings {
            downloads,
            download_url_ttl: std::time::Duration::from_secs(ttl),
            url,
            max_upload_bytes,
            upload_idle_timeout: std::time::Duration::from_secs(idle),
            max_image_pixels,
            max_image_side,
        })
    }

    pub fn for_url(url: impl Into<String>) -> Self {
        let url = url.into();
        StorageSettings {
            downloads: DownloadMode::default_for(&url),
            download_url_ttl: std::time::Duration::from_secs(300),
            url,
            max_upload_bytes: 20 * 1024 * 1024,
            upload_idle_timeout: std::time::Duration::from_secs(30),
            max_image_pixels: DEFAULT_MAX_IMAGE_PIXELS,
            max_image_side: DEFAULT_MAX_IMAGE_SIDE,
        }
    }
}

//! The one trait every story provider implements, and what it is given.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;

/// The kind of story to write.
// Serialized by name (`adventure`, `bedtime` ...): in job payloads and request bodies; its
// OpenAPI name stays `StyleName`, as it was when the HTTP layer had a copy of this enum.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
#[schema(as = StyleName)]
pub enum Style {
    #[default]
    Adventure,
    Bedtime,
    Mystery,
    Poem,
}

impl Style {
    pub const ALL: [Style; 4] = [
        Style::Adventure,
        Style::Bedtime,
        Style::Mystery,
        Style::Poem,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Style::Adventure => "adventure",
            Style::Bedtime => "bedtime",
            Style::Mystery => "mystery",
            Style::Poem => "poem",
        }
    }
}

impl fmt::Display for Style {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Style {
    type Err = ();

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Style::ALL
            .into_iter()
            .find(|style| style.as_str() == value)
            .ok_or(())
    }
}

/// Everything a provider gets to write one story.
#[derive(Debug, Clone)]
pub struct StoryRequest {
    /// The photo's bytes as stored.
    pub image: Bytes,
    pub content_type: Option<String>,
    /// The title the user gave the photo.
    pub title: Option<String>,
    /// When it was taken, by the camera's clock (the time of day the people in it lived).
    pub taken_at: Option<chrono::NaiveDateTime>,
    pub style: Style,
    /// A BCP 47 tag the provider said it can write ([`StoryProvider::check_language`]).
    pub language: String,
    /// A stable identity of the photo's content (its SHA-256), for deterministic providers.
    pub checksum: Option<String>,
}

/// A written story.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoryDraft {
    pub title: String,
    pub body: String,
}

/// Why a provider could not write the story; the message is shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// Worth trying later: the service was busy, down or slow.
    #[error("{0}")]
    Transient(String),
    /// Trying again will not help: the photo cannot be read, the service refused the request.
    #[error("{0}")]
    Permanent(String),
}

/// A writer of stories. Chosen by `AISTORY_STORY_PROVIDER`.
#[async_trait::async_trait]
pub trait StoryProvider: Send + Sync + 'static {
    /// Stored with each story (`builtin`, `openai`).
    fn name(&self) -> &'static str;

    /// The model, when the provider has one.
    fn model(&self) -> Option<&str>;

    /// Whether the provider can write in `language` (a BCP 47 tag, already well formed);
    /// `Err` says what it can do. Asked at request time, so a bad language is a 422, not a
    /// failed job.
    fn check_language(&self, language: &str) -> Result<(), String>;

    /// The languages [`Self::check_language`] accepts, as a regular expression over the tag
    /// (for the OpenAPI document). Every well-formed tag unless the provider says otherwise.
    fn language_pattern(&self) -> &'static str {
        LANGUAGE_TAG_PATTERN
    }

    /// Writes the story.
    async fn write(&self, request: &StoryRequest) -> Result<StoryDraft, ProviderError>;
}

/// [`is_language_tag`] as a regular expression (ECMA 262, for JSON Schema `pattern`).
pub const LANGUAGE_TAG_PATTERN: &str = "^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$";

/// Whether `tag` looks like a BCP 47 language tag: a 2-3 letter language and optional
/// subtags of 1-8 letters or digits (`en`, `pt-BR`, `zh-Hant-TW`), at most 35 characters.
pub fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let Some(language) = parts.next() else {
        return false;
    };
    tag.len() <= 35
        && (2..=3).contains(&language.len())
        && language.bytes().all(|b| b.is_ascii_alphabetic())
        && parts.all(|part| {
            (1..=8).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_tags() {
        for good in ["en", "EN", "pt-BR", "zh-Hant-TW", "fil"] {
            assert!(is_language_tag(good), "{good}");
        }
        for bad in [
            "",
            "e",
            "english",
            "en_US",
            "en-",
            "-en",
            "en-toolongsubtag",
            "日本",
        ] {
            assert!(!is_language_tag(bad), "{bad}");
        }
    }

    #[test]
    fn styles_round_trip() {
        for style in Style::ALL {
            assert_eq!(style.as_str().parse::<Style>(), Ok(style));
        }
        assert!("saga".parse::<Style>().is_err());
    }
}

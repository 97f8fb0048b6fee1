use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Whether a photo's thumbnails are in the store. Stored as a string with a CHECK constraint,
/// like [`PhotoStatus`](crate::photo_status::PhotoStatus).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum ThumbnailStatus {
    /// Not made yet: the job that makes them is queued (or the bytes are not uploaded yet).
    #[sea_orm(string_value = "pending")]
    Pending,
    /// Every size is stored beside the original.
    #[sea_orm(string_value = "ready")]
    Ready,
    /// The image cannot be decoded here (HEIC, or damaged bytes): there will be none.
    #[sea_orm(string_value = "unavailable")]
    Unavailable,
}

impl ThumbnailStatus {
    /// The status named `text` (`pending`, `ready`, `unavailable`), if there is one.
    pub fn parse(text: &str) -> Option<ThumbnailStatus> {
        match text {
            "pending" => Some(ThumbnailStatus::Pending),
            "ready" => Some(ThumbnailStatus::Ready),
            "unavailable" => Some(ThumbnailStatus::Unavailable),
            _ => None,
        }
    }

    /// The stored (and JSON) name: `pending`, `ready`, `unavailable`.
    pub fn as_str(self) -> &'static str {
        match self {
            ThumbnailStatus::Pending => "pending",
            ThumbnailStatus::Ready => "ready",
            ThumbnailStatus::Unavailable => "unavailable",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::Iterable;

    #[test]
    fn parse_reads_what_is_stored() {
        for status in ThumbnailStatus::iter() {
            assert_eq!(ThumbnailStatus::parse(&status.to_value()), Some(status));
            assert_eq!(status.as_str(), status.to_value());
        }
        assert_eq!(ThumbnailStatus::parse("Ready"), None);
    }
}

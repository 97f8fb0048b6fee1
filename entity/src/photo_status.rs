use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Where a photo is in its life. Stored as a string with a CHECK constraint (not a native
/// enum type), so adding a state is an ordinary migration.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum PhotoStatus {
    /// The row exists; the bytes are not stored yet.
    #[sea_orm(string_value = "pending")]
    Pending,
    /// The object is stored and verified.
    #[sea_orm(string_value = "uploaded")]
    Uploaded,
    /// A worker holds its story job.
    #[sea_orm(string_value = "processing")]
    Processing,
    /// The story is stored.
    #[sea_orm(string_value = "completed")]
    Completed,
    /// Something went wrong; `photos.error` says what.
    #[sea_orm(string_value = "failed")]
    Failed,
}

impl PhotoStatus {
    /// The status named `text` (`pending`, `uploaded` ...), if there is one.
    pub fn parse(text: &str) -> Option<PhotoStatus> {
        <PhotoStatus as sea_orm::Iterable>::iter().find(|status| status.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PhotoStatus::Pending => "pending",
            PhotoStatus::Uploaded => "uploaded",
            PhotoStatus::Processing => "processing",
            PhotoStatus::Completed => "completed",
            PhotoStatus::Failed => "failed",
        }
    }
}

impl std::fmt::Display for PhotoStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

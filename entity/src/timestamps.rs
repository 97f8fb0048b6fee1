//! The `created_at` / `updated_at` columns every table carries.

use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::{self, NotSet, Set};

/// A UTC instant truncated to whole microseconds: the finest precision all three databases
/// store, so a value read back equals the value written.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    let micros = now.timestamp_micros();
    DateTime::from_timestamp_micros(micros).unwrap_or(now)
}

/// Sets `created_at` on insert (unless the caller chose one) and `updated_at` on every save.
pub fn touch(
    created_at: &mut ActiveValue<DateTime<Utc>>,
    updated_at: &mut ActiveValue<DateTime<Utc>>,
    insert: bool,
) {
    let now = now();
    if insert && matches!(created_at, NotSet) {
        *created_at = Set(now);
    }
    *updated_at = Set(now);
}

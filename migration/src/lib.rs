//! Versioned schema migrations, one file per change. A migration never imports `entity`:
//! it must mean the same thing in a year as on the day it was written.

pub use sea_orm_migration::prelude::*;

pub mod cli;
pub mod generate;
mod lock;
mod revision;
pub mod sql;
mod state;

mod m20261125_000001_create_users;
mod m20261125_000002_create_photos;
mod m20261125_000003_create_refresh_tokens;
mod m20261125_000004_create_jobs;
mod m20261125_000005_create_stories;
mod m20261125_234326_page_indexes;
mod m20261201_121452_photo_taken_at_local;
mod m20261201_131538_user_token_generation;
mod m20261201_141844_username_key;
mod m20261201_150056_throttle_events;
mod m20261201_153000_photo_change_notify;
mod m20261201_183000_photo_thumbnails;

pub use lock::{single_connection, with_migration_lock};
pub use revision::{Target, migrate_to, resolve_target};
pub use state::{
    LockWait, SchemaState, apply_pending, refuse_rollback_under_unknown, schema_state,
};

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_create_users::Migration),
            Box::new(m20261125_000002_create_photos::Migration),
            Box::new(m20261125_000003_create_refresh_tokens::Migration),
            Box::new(m20261125_000004_create_jobs::Migration),
            Box::new(m20261125_000005_create_stories::Migration),
            Box::new(m20261125_234326_page_indexes::Migration),
            Box::new(m20261201_121452_photo_taken_at_local::Migration),
            Box::new(m20261201_131538_user_token_generation::Migration),
            Box::new(m20261201_141844_username_key::Migration),
            Box::new(m20261201_150056_throttle_events::Migration),
            Box::new(m20261201_153000_photo_change_notify::Migration),
            Box::new(m20261201_183000_photo_thumbnails::Migration),
        ]
    }
}

/// Names of all migrations, oldest first.
pub fn migration_names() -> Vec<String> {
    Migrator::migrations()
        .iter()
        .map(|migration| migration.name().to_owned())
        .collect()
}

/// Names of this build's migrations not yet applied, read without creating anything (works
/// for a read-only database user, as production start-up needs). Migrations the database has
/// and this build does not know are no error here: see [`schema_state`].
pub async fn pending_migrations<C: ConnectionTrait>(db: &C) -> Result<Vec<String>, DbErr> {
    Ok(schema_state(db).await?.pending)
}

/// Names of this build's applied migrations, oldest first, read without creating anything.
pub async fn applied_migrations<C: ConnectionTrait>(db: &C) -> Result<Vec<String>, DbErr> {
    Ok(schema_state(db).await?.applied)
}

/// Why the registered migrations cannot be applied in a well-defined order, if they cannot:
/// two share a timestamp (`mYYYYMMDD_HHMMSS`), or the `Migrator` lists them out of timestamp
/// order (two branches each adding one, merged in either order). CI runs this through the
/// crate's tests.
pub fn registration_problems(names: &[String]) -> Vec<String> {
    let stamp = |name: &str| name.get(..16).unwrap_or(name).to_owned();
    let mut problems = Vec::new();
    for pair in names.windows(2) {
        let (earlier, later) = (&pair[0], &pair[1]);
        if stamp(earlier) == stamp(later) {
            problems.push(format!(
                "{earlier} and {later} share the timestamp {}: give the newer one a later one",
                stamp(earlier)
            ));
        } else if stamp(earlier) > stamp(later) {
            problems.push(format!(
                "{later} is registered after {earlier} but is older: list migrations in \
                 migration/src/lib.rs in timestamp order"
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_registered_in_timestamp_order_with_unique_timestamps() {
        let problems = registration_problems(&migration_names());
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn registration_problems_are_found() {
        let names = |list: &[&str]| list.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        assert!(
            registration_problems(&names(&["m20261125_000001_a", "m20261125_000002_b"])).is_empty()
        );
        let shared = registration_problems(&names(&["m20261125_000001_a", "m20261125_000001_b"]));
        assert!(shared[0].contains("share the timestamp"), "{shared:?}");
        let swapped = registration_problems(&names(&["m20261126_000000_a", "m20261125_000001_b"]));
        assert!(swapped[0].contains("timestamp order"), "{swapped:?}");
    }
}

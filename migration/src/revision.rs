//! Migrating to a named revision in either direction (Alembic's `upgrade <revision>` /
//! `downgrade <revision>`), which sea-orm-migration does not offer.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseConnection;

use crate::{Migrator, migration_names};

/// Where to migrate to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// No migration applied (Alembic's `base`).
    Base,
    /// Every migration applied.
    Head,
    /// Exactly the migrations up to and including this one applied.
    Revision(String),
}

/// Resolves what a user typed: `base`, `head`, a full migration name or a unique prefix of one
/// (`m20261125_000001`).
pub fn resolve_target(input: &str) -> Result<Target, String> {
    let input = input.trim();
    match input {
        "base" | "0" => return Ok(Target::Base),
        "head" => return Ok(Target::Head),
        _ => {}
    }
    let names = migration_names();
    if names.iter().any(|name| name == input) {
        return Ok(Target::Revision(input.to_owned()));
    }
    let matches: Vec<&String> = names
        .iter()
        .filter(|name| !input.is_empty() && name.starts_with(input))
        .collect();
    match matches.as_slice() {
        [one] => Ok(Target::Revision((*one).clone())),
        [] => Err(format!(
            "no migration is named {input:?}; known revisions: base, head, {}",
            names.join(", ")
        )),
        many => Err(format!(
            "{input:?} matches several migrations ({}); give more of the name",
            many.iter()
                .map(|name| name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// What [`migrate_to`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Moved {
    pub rolled_back: Vec<String>,
    pub applied: Vec<String>,
}

/// Applies or rolls back migrations until exactly those up to `target` are applied.
pub async fn migrate_to(db: &DatabaseConnection, target: &Target) -> Result<Moved, DbErr> {
    let names = migration_names();
    // Number of migrations (in file order) that must be applied at the target.
    let keep = match target {
        Target::Base => 0,
        Target::Head => names.len(),
        Target::Revision(name) => match names.iter().position(|known| known == name) {
            Some(index) => index + 1,
            None => return Err(DbErr::Custom(format!("unknown migration {name:?}"))),
        },
    };
    let state = crate::schema_state(db).await?;
    crate::refuse_rollback_under_unknown(&state)?;
    let applied = state.applied;
    let position = |name: &String| names.iter().position(|known| known == name).unwrap_or(0);

    let to_roll_back: Vec<String> = applied
        .iter()
        .filter(|name| position(name) >= keep)
        .cloned()
        .collect();
    if !to_roll_back.is_empty() {
        Migrator::down(db, Some(count(to_roll_back.len())?)).await?;
    }
    let to_apply: Vec<String> = names
        .iter()
        .take(keep)
        .filter(|name| !applied.contains(name))
        .cloned()
        .collect();
    if !to_apply.is_empty() {
        Migrator::up(db, Some(count(to_apply.len())?)).await?;
    }
    Ok(Moved {
        rolled_back: to_roll_back.into_iter().rev().collect(),
        applied: to_apply,
    })
}

fn count(n: usize) -> Result<u32, DbErr> {
    <u32 as TryFrom<usize>>::try_from(n)
        .map_err(|_| DbErr::Custom("too many migrations".to_owned()))
}

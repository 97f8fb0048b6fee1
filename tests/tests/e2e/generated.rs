//! The migrations autogenerate wrote for the snapshot tests (tests/snapshots/autogen), compiled
//! into this binary so the round trips in [`crate::autogen`] run the generated source itself.
//! A new snapshot file needs its line here (the round trip names the missing one).
#![allow(clippy::all)] // generated code, kept as written (and as rustfmt formats it)

use sea_orm_migration::MigrationTrait;

#[path = "../../snapshots/autogen/add_column.rs.snap"]
mod add_column;
#[path = "../../snapshots/autogen/add_foreign_key.rs.snap"]
mod add_foreign_key;
#[path = "../../snapshots/autogen/add_index.rs.snap"]
mod add_index;
#[path = "../../snapshots/autogen/add_photo_rating.rs.snap"]
mod add_photo_rating;
#[path = "../../snapshots/autogen/add_table.rs.snap"]
mod add_table;
#[path = "../../snapshots/autogen/add_unique.rs.snap"]
mod add_unique;
#[path = "../../snapshots/autogen/add_unique.mysql.rs.snap"]
mod add_unique_mysql;
#[path = "../../snapshots/autogen/change_default.rs.snap"]
mod change_default;
#[path = "../../snapshots/autogen/change_nullability.rs.snap"]
mod change_nullability;
#[path = "../../snapshots/autogen/change_nullability.mysql.rs.snap"]
mod change_nullability_mysql;
#[path = "../../snapshots/autogen/change_nullability.postgres.rs.snap"]
mod change_nullability_postgres;
#[path = "../../snapshots/autogen/change_type.rs.snap"]
mod change_type;
#[path = "../../snapshots/autogen/drop_column.rs.snap"]
mod drop_column;
#[path = "../../snapshots/autogen/drop_column.mysql.rs.snap"]
mod drop_column_mysql;
#[path = "../../snapshots/autogen/drop_column.postgres.rs.snap"]
mod drop_column_postgres;
#[path = "../../snapshots/autogen/drop_foreign_key.rs.snap"]
mod drop_foreign_key;
#[path = "../../snapshots/autogen/drop_index.rs.snap"]
mod drop_index;
#[path = "../../snapshots/autogen/drop_table.rs.snap"]
mod drop_table;
#[path = "../../snapshots/autogen/drop_table.mysql.rs.snap"]
mod drop_table_mysql;
#[path = "../../snapshots/autogen/drop_table.postgres.rs.snap"]
mod drop_table_postgres;
#[path = "../../snapshots/autogen/drop_unique.rs.snap"]
mod drop_unique;
#[path = "../../snapshots/autogen/drop_unique.mysql.rs.snap"]
mod drop_unique_mysql;
#[path = "../../snapshots/autogen/rename_column.rs.snap"]
mod rename_column;
#[path = "../../snapshots/autogen/rename_column.mysql.rs.snap"]
mod rename_column_mysql;
#[path = "../../snapshots/autogen/rename_column.postgres.rs.snap"]
mod rename_column_postgres;
#[path = "../../snapshots/autogen/replace_index.rs.snap"]
mod replace_index;

/// The compiled snapshot whose key (file name, dots as underscores) is `key`.
pub fn migration(key: &str) -> Box<dyn MigrationTrait> {
    match key {
        "add_column" => Box::new(add_column::Migration),
        "add_foreign_key" => Box::new(add_foreign_key::Migration),
        "add_index" => Box::new(add_index::Migration),
        "add_photo_rating" => Box::new(add_photo_rating::Migration),
        "add_table" => Box::new(add_table::Migration),
        "add_unique_mysql" => Box::new(add_unique_mysql::Migration),
        "add_unique" => Box::new(add_unique::Migration),
        "change_default" => Box::new(change_default::Migration),
        "change_nullability_mysql" => Box::new(change_nullability_mysql::Migration),
        "change_nullability_postgres" => Box::new(change_nullability_postgres::Migration),
        "change_nullability" => Box::new(change_nullability::Migration),
        "change_type" => Box::new(change_type::Migration),
        "drop_column_mysql" => Box::new(drop_column_mysql::Migration),
        "drop_column_postgres" => Box::new(drop_column_postgres::Migration),
        "drop_column" => Box::new(drop_column::Migration),
        "drop_foreign_key" => Box::new(drop_foreign_key::Migration),
        "drop_index" => Box::new(drop_index::Migration),
        "drop_table_mysql" => Box::new(drop_table_mysql::Migration),
        "drop_table_postgres" => Box::new(drop_table_postgres::Migration),
        "drop_table" => Box::new(drop_table::Migration),
        "drop_unique_mysql" => Box::new(drop_unique_mysql::Migration),
        "drop_unique" => Box::new(drop_unique::Migration),
        "rename_column_mysql" => Box::new(rename_column_mysql::Migration),
        "rename_column_postgres" => Box::new(rename_column_postgres::Migration),
        "rename_column" => Box::new(rename_column::Migration),
        "replace_index" => Box::new(replace_index::Migration),
        other => panic!("no compiled snapshot {other}: add it to tests/tests/e2e/generated.rs"),
    }
}

//! The migrations autogenerate wrote for the snapshot tests (tests/snapshots/autogen) compile
//! against sea-orm-migration as they are: what `api generate --autogenerate` writes is real code.
#![allow(dead_code)]

use sea_orm_migration::MigrationName;

#[path = "../../tests/snapshots/autogen/add_column.rs.snap"]
mod add_column;
#[path = "../../tests/snapshots/autogen/add_foreign_key.rs.snap"]
mod add_foreign_key;
#[path = "../../tests/snapshots/autogen/add_index.rs.snap"]
mod add_index;
#[path = "../../tests/snapshots/autogen/add_table.rs.snap"]
mod add_table;
#[path = "../../tests/snapshots/autogen/add_unique.rs.snap"]
mod add_unique;
#[path = "../../tests/snapshots/autogen/change_default.rs.snap"]
mod change_default;
#[path = "../../tests/snapshots/autogen/change_nullability.rs.snap"]
mod change_nullability;
#[path = "../../tests/snapshots/autogen/change_type.rs.snap"]
mod change_type;
#[path = "../../tests/snapshots/autogen/drop_column.rs.snap"]
mod drop_column;
#[path = "../../tests/snapshots/autogen/drop_foreign_key.rs.snap"]
mod drop_foreign_key;
#[path = "../../tests/snapshots/autogen/drop_index.rs.snap"]
mod drop_index;
#[path = "../../tests/snapshots/autogen/drop_table.rs.snap"]
mod drop_table;
#[path = "../../tests/snapshots/autogen/drop_unique.rs.snap"]
mod drop_unique;
#[path = "../../tests/snapshots/autogen/rename_column.rs.snap"]
mod rename_column;
#[path = "../../tests/snapshots/autogen/replace_index.rs.snap"]
mod replace_index;

#[test]
fn generated_migrations_compile_and_are_named() {
    let names = [
        add_column::Migration.name(),
        add_foreign_key::Migration.name(),
        add_index::Migration.name(),
        add_table::Migration.name(),
        add_unique::Migration.name(),
        change_default::Migration.name(),
        change_nullability::Migration.name(),
        change_type::Migration.name(),
        drop_column::Migration.name(),
        drop_foreign_key::Migration.name(),
        drop_index::Migration.name(),
        drop_table::Migration.name(),
        drop_unique::Migration.name(),
        rename_column::Migration.name(),
        replace_index::Migration.name(),
    ];
    assert!(names.iter().all(|name| !name.is_empty()));
}

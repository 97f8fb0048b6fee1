//! Autogenerate (the guide's `alembic revision --autogenerate`): compare the schema the
//! migrations build with the one the entities declare, and plan the changes whose `up` turns
//! the first into the second and whose `down` turns it back.
//!
//! Both schemas are read back from scratch databases of one backend ([`crate::inspect`]), so
//! what is compared is what the database really holds. Types of the target side come from the
//! entities themselves (exact); types of what is dropped come from the database (on SQLite,
//! `INTEGER` cannot tell `integer` from `big_integer`: the generated `down` says so).
//!
//! What it cannot see (see docs/extending-entities.md): renames (written as a drop and an
//! add, with a comment), CHECK constraints, data migrations, column order.

use std::collections::BTreeSet;

use migration::MigratorTrait;
use sea_orm::{DbBackend, DbErr};

use crate::declared::{Declared, create_tables_from_entities};
use crate::inspect::{
    ForeignKeyDescription, IndexDescription, SchemaDescription, TableDescription, inspect,
};
use crate::plan::{Column, Kind, NamedForeignKey, NamedIndex, NewTable, Op, Plan};

fn unique_columns(table: &TableDescription) -> BTreeSet<String> {
    table
        .indexes
        .iter()
        .filter(|index| index.unique && index.columns.len() == 1)
        .map(|index| index.columns[0].clone())
        .collect()
}

fn is_unique_column(table: &TableDescription, index: &IndexDescription) -> bool {
    index.unique
        && index.columns.len() == 1
        && table
            .columns
            .get(&index.columns[0])
            .is_some_and(|column| !column.primary_key)
}

fn default_index_name(table: &str, index: &IndexDescription) -> String {
    let mut name = format!("idx-{table}-{}", index.columns.join("-"));
    if index.unique {
        name += "-unique";
    }
    name
}

/// Columns of a table of the migrated side (types read back).
fn existing_columns(table: &TableDescription, notes: &mut Vec<String>, name: &str) -> Vec<Column> {
    let unique = unique_columns(table);
    table
        .columns
        .iter()
        .map(|(column, description)| {
            let kind = Kind::from_inspected(&description.data_type);
            if description.data_type == "INTEGER" && !description.primary_key {
                notes.push(format!(
                    "{name}.{column}: SQLite stores every integer as INTEGER; the `down` recreates \
                     it as big_integer: check the width"
                ));
            }
            Column::from_description(column, description, kind, unique.contains(column))
        })
        .collect()
}

/// Columns of a table of the declared side (types from the entities).
fn declared_columns(table: &TableDescription, declared: &Declared, name: &str) -> Vec<Column> {
    let unique = unique_columns(table);
    table
        .columns
        .iter()
        .map(|(column, description)| {
            let kind = declared
                .kind(name, column)
                .unwrap_or_else(|| Kind::from_inspected(&description.data_type));
            Column::from_description(column, description, kind, unique.contains(column))
        })
        .collect()
}

fn new_table(
    name: &str,
    table: &TableDescription,
    columns: Vec<Column>,
    declared: Option<&Declared>,
) -> NewTable {
    // The primary key first, then the columns by name (databases do not keep our order).
    let mut columns = columns;
    columns.sort_by_key(|column| !column.primary_key);
    NewTable {
        name: name.to_owned(),
        columns,
        foreign_keys: table
            .foreign_keys
            .iter()
            .map(|key| named_key(name, key, table, declared))
            .collect(),
        indexes: table
            .indexes
            .iter()
            .filter(|index| !is_unique_column(table, index))
            .map(|index| named_index(name, index, table, declared))
            .collect(),
    }
}

fn named_key(
    table_name: &str,
    key: &ForeignKeyDescription,
    table: &TableDescription,
    declared: Option<&Declared>,
) -> NamedForeignKey {
    let name = declared
        .and_then(|declared| declared.foreign_key_name(table_name, key))
        .or_else(|| table.foreign_key_names.get(key).cloned())
        .unwrap_or_else(|| format!("fk-{table_name}-{}", key.columns.join("-")));
    NamedForeignKey {
        name,
        columns: key.columns.clone(),
        references_table: key.references_table.clone(),
        references_columns: key.references_columns.clone(),
        on_delete: key.on_delete.clone(),
    }
}

fn named_index(
    table_name: &str,
    index: &IndexDescription,
    table: &TableDescription,
    declared: Option<&Declared>,
) -> NamedIndex {
    let found = table.index_names.get(index);
    if let Some(found) = found.filter(|found| found.constraint) {
        // Kept as read: the code names it per backend (see `constraint_name`).
        return NamedIndex {
            name: found.name.clone(),
            columns: index.columns.clone(),
            unique: index.unique,
            constraint: true,
        };
    }
    let name = declared
        .and_then(|declared| declared.index_name(table_name, index))
        .or_else(|| {
            // The database's own name, unless it invented one for an inline UNIQUE.
            found
                .filter(|found| !found.name.starts_with("sqlite_autoindex"))
                .map(|found| found.name.clone())
        })
        .unwrap_or_else(|| default_index_name(table_name, index));
    NamedIndex {
        name,
        columns: index.columns.clone(),
        unique: index.unique,
        constraint: found.is_some_and(|found| found.constraint),
    }
}

/// The name of the UNIQUE constraint that owns `index` on `backend`: the name read back when
/// someone chose it, else the name the backend gives an inline UNIQUE (`{table}_{column}_key`
/// on PostgreSQL, the column's name on MySQL), whichever backend the plan was made on.
pub(crate) fn constraint_name(table: &str, index: &NamedIndex, backend: DbBackend) -> String {
    let columns = index.columns.join("_");
    let postgres = format!("{table}_{columns}_key");
    let mysql = index.columns.first().cloned().unwrap_or_default();
    let automatic =
        index.name.starts_with("sqlite_autoindex") || index.name == postgres || index.name == mysql;
    if !automatic {
        return index.name.clone();
    }
    if backend == DbBackend::Postgres {
        postgres
    } else {
        mysql
    }
}

/// The name under which a UNIQUE constraint's index is created again as an index.
pub(crate) fn created_name(table: &str, index: &NamedIndex) -> String {
    if index.constraint {
        default_index_name(
            table,
            &IndexDescription {
                columns: index.columns.clone(),
                unique: index.unique,
            },
        )
    } else {
        index.name.clone()
    }
}

/// Orders new tables so that each comes after the tables it references.
fn dependency_order(mut tables: Vec<NewTable>, existing: &BTreeSet<String>) -> Vec<NewTable> {
    let mut ordered = Vec::new();
    let mut known = existing.clone();
    while !tables.is_empty() {
        let ready = tables.iter().position(|table| {
            table.foreign_keys.iter().all(|key| {
                key.references_table == table.name || known.contains(&key.references_table)
            })
        });
        let next = tables.remove(ready.unwrap_or(0));
        known.insert(next.name.clone());
        ordered.push(next);
    }
    ordered
}

/// The changes that turn `migrated` (what the migrations build) into `wanted` (what the
/// entities declare). `declared` gives the exact types and names of the wanted side.
pub fn plan(migrated: &SchemaDescription, wanted: &SchemaDescription, declared: &Declared) -> Plan {
    let mut notes = Vec::new();
    let mut drop_keys = Vec::new();
    let mut drop_indexes = Vec::new();
    let mut add_columns = Vec::new();
    let mut change_columns = Vec::new();
    let mut create_indexes = Vec::new();
    let mut add_keys = Vec::new();
    let mut drop_columns = Vec::new();

    let created: Vec<NewTable> = wanted
        .tables
        .iter()
        .filter(|(name, _)| !migrated.tables.contains_key(*name))
        .map(|(name, table)| {
            new_table(
                name,
                table,
                declared_columns(table, declared, name),
                Some(declared),
            )
        })
        .collect();
    let dropped: Vec<NewTable> = migrated
        .tables
        .iter()
        .filter(|(name, _)| !wanted.tables.contains_key(*name))
        .map(|(name, table)| {
            let columns = existing_columns(table, &mut notes, name);
            new_table(name, table, columns, None)
        })
        .collect();
    if !created.is_empty() && !dropped.is_empty() {
        notes.push(format!(
            "tables {} dropped and {} added: if this is a rename, use Table::rename() instead \
             (autogenerate cannot tell a rename from a drop and an add)",
            dropped
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            created
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    for (name, old) in &migrated.tables {
        let Some(new) = wanted.tables.get(name) else {
            continue;
        };
        let mut added_here = Vec::new();
        let mut dropped_here = Vec::new();
        let names: BTreeSet<&String> = old.columns.keys().chain(new.columns.keys()).collect();
        for column in names {
            match (old.columns.get(column), new.columns.get(column)) {
                (None, Some(description)) => {
                    let kind = declared
                        .kind(name, column)
                        .unwrap_or_else(|| Kind::from_inspected(&description.data_type));
                    // A UNIQUE is added as an index (SQLite cannot add a UNIQUE column).
                    let column = Column::from_description(column, description, kind, false);
                    added_here.push(column.name.clone());
                    add_columns.push(Op::AddColumn {
                        table: name.clone(),
                        column,
                    });
                }
                (Some(description), None) => {
                    let kind = Kind::from_inspected(&description.data_type);
                    let column = Column::from_description(column, description, kind, false);
                    dropped_here.push(column.name.clone());
                    drop_columns.push(Op::DropColumn {
                        table: name.clone(),
                        column,
                    });
                }
                (Some(before), Some(after)) if before != after => {
                    let from = Column::from_description(
                        column,
                        before,
                        Kind::from_inspected(&before.data_type),
                        false,
                    );
                    let to_kind = declared
                        .kind(name, column)
                        .unwrap_or_else(|| Kind::from_inspected(&after.data_type));
                    let to = Column::from_description(column, after, to_kind, false);
                    if before.primary_key != after.primary_key {
                        notes.push(format!(
                            "{name}.{column}: the primary key changed; autogenerate does not write \
                             primary-key changes"
                        ));
                        continue;
                    }
                    change_columns.push(Op::ChangeColumn {
                        table: name.clone(),
                        from,
                        to,
                    });
                }
                _ => {}
            }
        }
        if !added_here.is_empty() && !dropped_here.is_empty() {
            notes.push(format!(
                "{name}: columns {} dropped and {} added: if this is a rename, use \
                 Table::alter().rename_column() instead (autogenerate cannot tell a rename from a \
                 drop and an add)",
                dropped_here.join(", "),
                added_here.join(", ")
            ));
        }
        for index in old.indexes.difference(&new.indexes) {
            drop_indexes.push(Op::DropIndex {
                table: name.clone(),
                index: named_index(name, index, old, None),
            });
        }
        for index in new.indexes.difference(&old.indexes) {
            let mut named = named_index(name, index, new, Some(declared));
            named.constraint = false;
            if named.name.starts_with("sqlite_autoindex")
                || new.index_names.get(index).is_some_and(|n| n.constraint)
            {
                named.name = default_index_name(name, index);
            }
            create_indexes.push(Op::CreateIndex {
                table: name.clone(),
                index: named,
            });
        }
        for key in old.foreign_keys.difference(&new.foreign_keys) {
            drop_keys.push(Op::DropForeignKey {
                table: name.clone(),
                key: named_key(name, key, old, None),
            });
        }
        for key in new.foreign_keys.difference(&old.foreign_keys) {
            add_keys.push(Op::AddForeignKey {
                table: name.clone(),
                key: named_key(name, key, new, Some(declared)),
            });
        }
    }

    let existing: BTreeSet<String> = migrated
        .tables
        .keys()
        .filter(|name| wanted.tables.contains_key(*name))
        .cloned()
        .collect();
    // An index that a new one replaces (same table, the new one's columns start with the old
    // one's, another name) is dropped only once the new one exists: MySQL refuses to drop the
    // only index a foreign key can use. Every other index goes first, as before: before the
    // columns change (a type change can fail on an indexed column).
    let (drop_later, drop_first): (Vec<Op>, Vec<Op>) =
        drop_indexes.into_iter().partition(|op| match op {
            Op::DropIndex { table, index } => create_indexes.iter().any(|created| {
                matches!(created, Op::CreateIndex { table: t, index: new }
                    if t == table
                        && new.name != index.name
                        && new.columns.starts_with(&index.columns))
            }),
            _ => false,
        });
    let mut ops = Vec::new();
    ops.extend(drop_keys);
    ops.extend(drop_first);
    ops.extend(
        dependency_order(created, &existing)
            .into_iter()
            .map(Op::CreateTable),
    );
    ops.extend(add_columns);
    ops.extend(change_columns);
    ops.extend(create_indexes);
    ops.extend(add_keys);
    ops.extend(drop_later);
    ops.extend(drop_columns);
    let mut dropped = dependency_order(dropped, &existing);
    dropped.reverse();
    ops.extend(dropped.into_iter().map(Op::DropTable));
    Plan { ops, notes }
}

/// Compares the schema the migrations build (`migrations_db`, migrated) with `declared`
/// (created on `declared_db`, an empty scratch database of the same backend) and plans the
/// migration between them. CHECK constraints are left out (entities cannot declare them).
pub async fn autogenerate(
    migrations_db: &sea_orm::DatabaseConnection,
    declared_db: &sea_orm::DatabaseConnection,
    declared: &Declared,
) -> Result<Plan, DbErr> {
    declared.apply(declared_db).await?;
    let migrated = inspect(migrations_db).await?.without_checks();
    let wanted = inspect(declared_db).await?.without_checks();
    Ok(plan(&migrated, &wanted, declared))
}

/// What differs between the schema the migrations produce and the one the entities declare,
/// on a scratch database of `db`'s kind: `migrations_db` and `entities_db` must be two empty
/// databases of the same backend. Empty when they agree (CHECK constraints, which entities
/// cannot declare, are left out).
pub async fn drift(
    migrations_db: &sea_orm::DatabaseConnection,
    entities_db: &sea_orm::DatabaseConnection,
) -> Result<Vec<String>, DbErr> {
    migration::Migrator::up(migrations_db, None).await?;
    create_tables_from_entities(entities_db).await?;
    let migrated = inspect(migrations_db).await?.without_checks();
    let declared = inspect(entities_db).await?.without_checks();
    Ok(migrated.differences_named(&declared, "migrations", "entities"))
}

//! The schema declared in code: the entities' tables (from [`entity::tables`]) or a test's
//! own, created on a scratch database to be read back and compared.

use sea_orm::sea_query::{IndexCreateStatement, TableCreateStatement};
use sea_orm::{ConnectionTrait, DbBackend, DbErr};

use crate::inspect::{ForeignKeyDescription, IndexDescription};
use crate::plan::Kind;

/// A schema declared in code: tables (in dependency order) and their indexes, as SeaORM's
/// schema builder derives them from entities (or as tests write them).
#[derive(Debug, Clone, Default)]
pub struct Declared {
    pub tables: Vec<TableCreateStatement>,
    /// Indexes with the name of their table.
    pub indexes: Vec<(String, IndexCreateStatement)>,
}

fn table_name(table: &TableCreateStatement) -> Option<String> {
    match table.get_table_name()? {
        sea_orm::sea_query::TableRef::Table(name, _) => Some(name.1.to_string()),
        _ => None,
    }
}

impl Declared {
    /// The application's entities, in dependency order ([`entity::tables`]).
    pub fn from_entities(backend: DbBackend) -> Declared {
        let mut declared = Declared::default();
        for table in entity::tables(backend) {
            declared.tables.push(table.create);
            declared.indexes.extend(
                table
                    .indexes
                    .into_iter()
                    .map(|index| (table.name.to_owned(), index)),
            );
        }
        declared
    }

    /// Creates the tables and indexes on `db` (an empty scratch database).
    pub async fn apply<C: ConnectionTrait>(&self, db: &C) -> Result<(), DbErr> {
        let backend = db.get_database_backend();
        for table in &self.tables {
            db.execute_raw(backend.build(table)).await?;
        }
        for (_, index) in &self.indexes {
            db.execute_raw(backend.build(index)).await?;
        }
        Ok(())
    }

    pub(crate) fn table(&self, name: &str) -> Option<&TableCreateStatement> {
        self.tables
            .iter()
            .find(|table| table_name(table).as_deref() == Some(name))
    }

    /// The declared type of `table.column`, when declared.
    pub(crate) fn kind(&self, table: &str, column: &str) -> Option<Kind> {
        self.table(table)?
            .get_columns()
            .iter()
            .find(|def| def.get_column_name() == column)?
            .get_column_type()
            .map(Kind::from_column_type)
    }

    /// The declared name of a foreign key.
    pub(crate) fn foreign_key_name(
        &self,
        table: &str,
        key: &ForeignKeyDescription,
    ) -> Option<String> {
        self.table(table)?
            .get_foreign_key_create_stmts()
            .iter()
            .map(|stmt| stmt.get_foreign_key())
            .find(|fk| fk.get_columns() == key.columns)
            .and_then(|fk| fk.get_name().map(str::to_owned))
    }

    /// The declared name of an index.
    pub(crate) fn index_name(&self, table: &str, index: &IndexDescription) -> Option<String> {
        self.indexes
            .iter()
            .find(|(owner, stmt)| {
                owner == table && stmt.get_index_spec().get_column_names() == index.columns
            })
            .and_then(|(_, stmt)| stmt.get_index_spec().get_name().map(str::to_owned))
    }
}

/// Creates the tables and indexes the entities declare, in dependency order (what SeaORM's
/// `Schema` builder derives from the models), on `db`.
pub async fn create_tables_from_entities<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    Declared::from_entities(db.get_database_backend())
        .apply(db)
        .await
}

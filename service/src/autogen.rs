//! Autogenerate migrations (the guide's `alembic revision --autogenerate`): compare the schema
//! the migrations build with the one the entities declare, and write a migration whose `up`
//! turns the first into the second and whose `down` turns it back, in SeaORM's schema builders.
//!
//! Both schemas are read back from scratch databases of one backend ([`crate::schema::inspect`]),
//! so what is compared is what the database really holds. Types of the target side come from
//! the entities themselves (exact); types of what is dropped come from the database (on
//! SQLite, `INTEGER` cannot tell `integer` from `big_integer`: the generated `down` says so).
//!
//! What it cannot see (see docs/extending-entities.md): renames (written as a drop and an
//! add, with a comment), CHECK constraints, data migrations, column order.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use sea_orm::sea_query::{
    Alias, ColumnDef, ColumnType, Expr, ForeignKey, ForeignKeyAction, Index, IndexCreateStatement,
    StringLen, Table, TableCreateStatement,
};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, EntityTrait, Schema};

use crate::schema::{
    ColumnDescription, ForeignKeyDescription, IndexDescription, SchemaDescription, TableDescription,
};

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
    /// The application's entities, in dependency order.
    pub fn from_entities(backend: DbBackend) -> Declared {
        let schema = Schema::new(backend);
        let mut declared = Declared::default();
        // `more`: the entity's indexes over several columns (its `indexes()`).
        fn add<E: EntityTrait>(
            declared: &mut Declared,
            schema: &Schema,
            entity: E,
            more: Vec<IndexCreateStatement>,
        ) {
            declared
                .tables
                .push(schema.create_table_from_entity(entity));
            let table = entity.table_name().to_owned();
            declared.indexes.extend(
                schema
                    .create_index_from_entity(entity)
                    .into_iter()
                    .chain(more)
                    .map(|index| (table.clone(), index)),
            );
        }
        add(&mut declared, &schema, entity::user::Entity, Vec::new());
        add(
            &mut declared,
            &schema,
            entity::photo::Entity,
            entity::photo::indexes(),
        );
        add(
            &mut declared,
            &schema,
            entity::refresh_token::Entity,
            Vec::new(),
        );
        add(&mut declared, &schema, entity::job::Entity, Vec::new());
        add(
            &mut declared,
            &schema,
            entity::story::Entity,
            entity::story::indexes(),
        );
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

    fn table(&self, name: &str) -> Option<&TableCreateStatement> {
        self.tables
            .iter()
            .find(|table| table_name(table).as_deref() == Some(name))
    }

    /// The declared type of `table.column`, when declared.
    fn kind(&self, table: &str, column: &str) -> Option<Kind> {
        self.table(table)?
            .get_columns()
            .iter()
            .find(|def| def.get_column_name() == column)?
            .get_column_type()
            .map(Kind::from_column_type)
    }

    /// The declared name of a foreign key.
    fn foreign_key_name(&self, table: &str, key: &ForeignKeyDescription) -> Option<String> {
        self.table(table)?
            .get_foreign_key_create_stmts()
            .iter()
            .map(|stmt| stmt.get_foreign_key())
            .find(|fk| fk.get_columns() == key.columns)
            .and_then(|fk| fk.get_name().map(str::to_owned))
    }

    /// The declared name of an index.
    fn index_name(&self, table: &str, index: &IndexDescription) -> Option<String> {
        self.indexes
            .iter()
            .find(|(owner, stmt)| {
                owner == table && stmt.get_index_spec().get_column_names() == index.columns
            })
            .and_then(|(_, stmt)| stmt.get_index_spec().get_name().map(str::to_owned))
    }
}

/// A column type, as builder code understands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    BigInteger,
    Integer,
    SmallInteger,
    TinyInteger,
    String(Option<u32>),
    Char(Option<u32>),
    Text,
    Boolean,
    Float,
    Double,
    Decimal(Option<(u32, u32)>),
    /// `timestamp with time zone`; `datetime(6)` on MySQL (the project's `utc_timestamp`).
    UtcTimestamp,
    Timestamp,
    Date,
    Time,
    Uuid,
    Json,
    JsonBinary,
    Binary,
    /// A type we have no builder for: written as a custom type name.
    Custom(String),
}

impl Kind {
    fn from_column_type(column_type: &ColumnType) -> Kind {
        match column_type {
            ColumnType::BigInteger | ColumnType::BigUnsigned => Kind::BigInteger,
            ColumnType::Integer | ColumnType::Unsigned => Kind::Integer,
            ColumnType::SmallInteger | ColumnType::SmallUnsigned => Kind::SmallInteger,
            ColumnType::TinyInteger | ColumnType::TinyUnsigned => Kind::TinyInteger,
            ColumnType::String(StringLen::N(n)) => Kind::String(Some(*n)),
            ColumnType::String(_) => Kind::String(None),
            ColumnType::Char(n) => Kind::Char(*n),
            ColumnType::Text => Kind::Text,
            ColumnType::Boolean => Kind::Boolean,
            ColumnType::Float => Kind::Float,
            ColumnType::Double => Kind::Double,
            ColumnType::Decimal(precision) => Kind::Decimal(*precision),
            ColumnType::TimestampWithTimeZone => Kind::UtcTimestamp,
            ColumnType::Timestamp | ColumnType::DateTime => Kind::Timestamp,
            ColumnType::Date => Kind::Date,
            ColumnType::Time => Kind::Time,
            ColumnType::Uuid => Kind::Uuid,
            ColumnType::Json => Kind::Json,
            ColumnType::JsonBinary => Kind::JsonBinary,
            ColumnType::Binary(_) | ColumnType::VarBinary(_) | ColumnType::Blob => Kind::Binary,
            ColumnType::Custom(name) => Kind::Custom(name.to_string()),
            other => Kind::Custom(format!("{other:?}").to_lowercase()),
        }
    }

    /// The type a database reports, read back (best effort; see the module docs).
    fn from_inspected(data_type: &str) -> Kind {
        let text = data_type.trim().to_ascii_lowercase();
        let length = |text: &str| -> Option<u32> {
            let inner = text.split_once('(')?.1.trim_end_matches(')');
            inner.split(',').next()?.trim().parse().ok()
        };
        let base = text.split('(').next().unwrap_or_default().trim();
        match base {
            "bigint" | "int8" | "integer" | "bigserial" => {
                // PostgreSQL's `integer` is 32 bits; SQLite's `INTEGER` is any width (read as
                // the widest, and the generated code says so).
                if data_type.trim() == "integer" {
                    Kind::Integer
                } else {
                    Kind::BigInteger
                }
            }
            "int" | "int4" | "mediumint" => Kind::Integer,
            "smallint" | "int2" => Kind::SmallInteger,
            "tinyint" if text == "tinyint(1)" => Kind::Boolean,
            "tinyint" => Kind::TinyInteger,
            "varchar" | "character varying" => Kind::String(length(&text)),
            "char" | "character" => Kind::Char(length(&text)),
            "text" | "longtext" | "mediumtext" => Kind::Text,
            "boolean" | "bool" => Kind::Boolean,
            "real" | "float" | "float4" => Kind::Float,
            "double" | "double precision" | "float8" => Kind::Double,
            "decimal" | "numeric" => {
                let inner = text
                    .split_once('(')
                    .map(|(_, rest)| rest.trim_end_matches(')'));
                Kind::Decimal(inner.and_then(|inner| {
                    let (p, s) = inner.split_once(',')?;
                    Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
                }))
            }
            "timestamp with time zone"
            | "timestamptz"
            | "timestamp_with_timezone_text"
            | "utc timestamp" => Kind::UtcTimestamp,
            "timestamp without time zone"
            | "timestamp"
            | "datetime_text"
            | "timestamp_text"
            | "datetime" => Kind::Timestamp,
            "date" | "date_text" => Kind::Date,
            "time" | "time without time zone" | "time_text" => Kind::Time,
            "uuid" | "uuid_text" => Kind::Uuid,
            "json" | "json_text" => Kind::Json,
            "jsonb" | "jsonb_text" => Kind::JsonBinary,
            "bytea" | "blob" | "binary" | "varbinary" => Kind::Binary,
            _ => Kind::Custom(data_type.to_owned()),
        }
    }

    /// The builder call after `ColumnDef::new(..)`.
    fn method(&self) -> String {
        match self {
            Kind::BigInteger => ".big_integer()".into(),
            Kind::Integer => ".integer()".into(),
            Kind::SmallInteger => ".small_integer()".into(),
            Kind::TinyInteger => ".tiny_integer()".into(),
            Kind::String(Some(n)) => format!(".string_len({n})"),
            Kind::String(None) => ".string()".into(),
            Kind::Char(Some(n)) => format!(".char_len({n})"),
            Kind::Char(None) => ".char()".into(),
            Kind::Text => ".text()".into(),
            Kind::Boolean => ".boolean()".into(),
            Kind::Float => ".float()".into(),
            Kind::Double => ".double()".into(),
            Kind::Decimal(Some((p, s))) => format!(".decimal_len({p}, {s})"),
            Kind::Decimal(None) => ".decimal()".into(),
            Kind::UtcTimestamp => String::new(),
            Kind::Timestamp => ".timestamp()".into(),
            Kind::Date => ".date()".into(),
            Kind::Time => ".time()".into(),
            Kind::Uuid => ".uuid()".into(),
            Kind::Json => ".json()".into(),
            Kind::JsonBinary => ".json_binary()".into(),
            Kind::Binary => ".blob()".into(),
            Kind::Custom(name) => format!(".custom(Alias::new({name:?}))"),
        }
    }

    fn apply(&self, def: &mut ColumnDef, backend: DbBackend) {
        match self {
            Kind::BigInteger => def.big_integer(),
            Kind::Integer => def.integer(),
            Kind::SmallInteger => def.small_integer(),
            Kind::TinyInteger => def.tiny_integer(),
            Kind::String(Some(n)) => def.string_len(*n),
            Kind::String(None) => def.string(),
            Kind::Char(Some(n)) => def.char_len(*n),
            Kind::Char(None) => def.char(),
            Kind::Text => def.text(),
            Kind::Boolean => def.boolean(),
            Kind::Float => def.float(),
            Kind::Double => def.double(),
            Kind::Decimal(Some((p, s))) => def.decimal_len(*p, *s),
            Kind::Decimal(None) => def.decimal(),
            Kind::UtcTimestamp if backend == DbBackend::MySql => {
                def.custom(Alias::new("datetime(6)"))
            }
            Kind::UtcTimestamp => def.timestamp_with_time_zone(),
            Kind::Timestamp => def.timestamp(),
            Kind::Date => def.date(),
            Kind::Time => def.time(),
            Kind::Uuid => def.uuid(),
            Kind::Json => def.json(),
            Kind::JsonBinary => def.json_binary(),
            Kind::Binary => def.blob(),
            Kind::Custom(name) => def.custom(Alias::new(name.as_str())),
        };
    }
}

/// A column default, read back from the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefaultValue {
    Int(i64),
    Bool(bool),
    Str(String),
    /// Anything else (an expression such as `CURRENT_TIMESTAMP`), written as is.
    Expr(String),
}

impl DefaultValue {
    fn parse(text: &str) -> DefaultValue {
        let text = text.trim();
        if let Ok(n) = text.parse::<i64>() {
            return DefaultValue::Int(n);
        }
        match text.to_ascii_lowercase().as_str() {
            "true" => return DefaultValue::Bool(true),
            "false" => return DefaultValue::Bool(false),
            _ => {}
        }
        // 'text' or PostgreSQL's 'text'::character varying
        if let Some(rest) = text.strip_prefix('\'')
            && let Some(end) = rest.rfind('\'')
            && (rest[end + 1..].is_empty() || rest[end + 1..].starts_with("::"))
        {
            return DefaultValue::Str(rest[..end].replace("''", "'"));
        }
        DefaultValue::Expr(text.to_owned())
    }

    fn code(&self) -> String {
        match self {
            DefaultValue::Int(n) => format!(".default({n})"),
            DefaultValue::Bool(b) => format!(".default({b})"),
            DefaultValue::Str(s) => format!(".default({s:?})"),
            DefaultValue::Expr(e) => format!(".default(Expr::cust({e:?}))"),
        }
    }

    fn apply(&self, def: &mut ColumnDef) {
        match self {
            DefaultValue::Int(n) => def.default(*n),
            DefaultValue::Bool(b) => def.default(*b),
            DefaultValue::Str(s) => def.default(s.clone()),
            DefaultValue::Expr(e) => def.default(Expr::cust(e.clone())),
        };
    }
}

/// One column, as a migration writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub kind: Kind,
    pub nullable: bool,
    pub default: Option<DefaultValue>,
    pub unique: bool,
    pub primary_key: bool,
    pub auto_increment: bool,
}

impl Column {
    fn from_description(
        name: &str,
        description: &ColumnDescription,
        kind: Kind,
        unique: bool,
    ) -> Column {
        let marker = description.default.as_deref();
        let auto_increment = matches!(marker, Some("identity" | "serial" | "auto_increment"))
            || (description.primary_key && description.data_type.eq_ignore_ascii_case("integer"));
        Column {
            name: name.to_owned(),
            kind,
            nullable: description.nullable,
            default: if auto_increment {
                None
            } else {
                description.default.as_deref().map(DefaultValue::parse)
            },
            unique,
            primary_key: description.primary_key,
            auto_increment,
        }
    }

    /// Builder code for this column (a `ColumnDef` expression). `for_change` leaves out what
    /// a column change must not repeat (unique, primary key).
    fn code(&self, for_change: bool) -> String {
        let mut code = if self.kind == Kind::UtcTimestamp {
            format!("utc_timestamp(manager, Alias::new({:?}))", self.name)
        } else {
            format!(
                "ColumnDef::new(Alias::new({:?})){}",
                self.name,
                self.kind.method()
            )
        };
        code += if self.nullable {
            ".null()"
        } else {
            ".not_null()"
        };
        if let Some(default) = &self.default {
            code += &default.code();
        }
        // Kept in a change too: MySQL's MODIFY COLUMN rewrites the whole definition.
        if self.auto_increment {
            code += ".auto_increment()";
        }
        if !for_change {
            if self.primary_key {
                code += ".primary_key()";
            }
            if self.unique && !self.primary_key {
                code += ".unique_key()";
            }
        }
        code
    }

    fn def(&self, backend: DbBackend, for_change: bool) -> ColumnDef {
        let mut def = ColumnDef::new(Alias::new(self.name.as_str()));
        self.kind.apply(&mut def, backend);
        if self.nullable {
            def.null();
        } else {
            def.not_null();
        }
        if let Some(default) = &self.default {
            default.apply(&mut def);
        }
        if self.auto_increment {
            def.auto_increment();
        }
        if !for_change {
            if self.primary_key {
                def.primary_key();
            }
            if self.unique && !self.primary_key {
                def.unique_key();
            }
        }
        def
    }
}

/// An index with its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedIndex {
    pub name: String,
    pub columns: Vec<String>,
    pub unique: bool,
    /// Owned by a UNIQUE constraint (dropped as a constraint on PostgreSQL; cannot be dropped
    /// on SQLite).
    pub constraint: bool,
}

/// A foreign key with its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedForeignKey {
    pub name: String,
    pub columns: Vec<String>,
    pub references_table: String,
    pub references_columns: Vec<String>,
    pub on_delete: String,
}

impl NamedForeignKey {
    fn action(&self) -> (&'static str, ForeignKeyAction) {
        match self.on_delete.to_ascii_uppercase().as_str() {
            "CASCADE" => ("Cascade", ForeignKeyAction::Cascade),
            "SET NULL" => ("SetNull", ForeignKeyAction::SetNull),
            "RESTRICT" => ("Restrict", ForeignKeyAction::Restrict),
            "SET DEFAULT" => ("SetDefault", ForeignKeyAction::SetDefault),
            _ => ("NoAction", ForeignKeyAction::NoAction),
        }
    }

    /// `ForeignKey::create()` chain (without `.to_owned()`), for `table`.
    fn code(&self, table: &str) -> String {
        let mut code = format!("ForeignKey::create()\n    .name({:?})", self.name);
        for (from, to) in self.columns.iter().zip(&self.references_columns) {
            let _ = write!(
                code,
                "\n    .from(Alias::new({table:?}), Alias::new({from:?}))\n    .to(Alias::new({:?}), Alias::new({to:?}))",
                self.references_table
            );
        }
        let _ = write!(
            code,
            "\n    .on_delete(ForeignKeyAction::{})\n    .on_update(ForeignKeyAction::NoAction)",
            self.action().0
        );
        code
    }
}

/// A table, as a migration creates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTable {
    pub name: String,
    pub columns: Vec<Column>,
    pub foreign_keys: Vec<NamedForeignKey>,
    /// Indexes created after the table (single-column unique ones are inline instead).
    pub indexes: Vec<NamedIndex>,
}

/// One change; each knows its `up` and its `down`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    CreateTable(NewTable),
    DropTable(NewTable),
    AddColumn {
        table: String,
        column: Column,
    },
    DropColumn {
        table: String,
        column: Column,
    },
    ChangeColumn {
        table: String,
        from: Column,
        to: Column,
    },
    CreateIndex {
        table: String,
        index: NamedIndex,
    },
    DropIndex {
        table: String,
        index: NamedIndex,
    },
    AddForeignKey {
        table: String,
        key: NamedForeignKey,
    },
    DropForeignKey {
        table: String,
        key: NamedForeignKey,
    },
}

/// A generated migration: the changes, in `up` order, and notes for the reviewer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub ops: Vec<Op>,
    /// Things to check by hand (possible renames, guessed types); also written as comments.
    pub notes: Vec<String>,
}

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
fn constraint_name(table: &str, index: &NamedIndex, backend: DbBackend) -> String {
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
fn created_name(table: &str, index: &NamedIndex) -> String {
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

/// Why SQLite refuses a change, as the generated migration reports it.
fn sqlite_refusal(what: &str) -> String {
    format!(
        "SQLite cannot {what} in place (it has no ALTER COLUMN or ALTER CONSTRAINT): rebuild the \
         table by hand (create the new table, copy the rows, drop the old one, rename the new \
         one) or run this migration on PostgreSQL or MySQL"
    )
}

impl Op {
    /// What SQLite cannot do in place, if this is such a change.
    fn sqlite_refuses(&self) -> Option<String> {
        match self {
            Op::ChangeColumn { table, to, .. } => {
                Some(format!("change column {table}.{}", to.name))
            }
            Op::AddForeignKey { table, key } | Op::DropForeignKey { table, key } => {
                Some(format!("change the foreign keys of {table} ({})", key.name))
            }
            Op::DropIndex { table, index } if index.constraint => Some(format!(
                "drop the UNIQUE constraint of {table}({})",
                index.columns.join(", ")
            )),
            Op::CreateIndex { table, index } if index.constraint => Some(format!(
                "add a UNIQUE constraint to {table}({})",
                index.columns.join(", ")
            )),
            _ => None,
        }
    }

    /// The opposite change.
    fn inverse(&self) -> Op {
        match self.clone() {
            Op::CreateTable(table) => Op::DropTable(table),
            Op::DropTable(table) => Op::CreateTable(table),
            Op::AddColumn { table, column } => Op::DropColumn { table, column },
            Op::DropColumn { table, column } => Op::AddColumn { table, column },
            Op::ChangeColumn { table, from, to } => Op::ChangeColumn {
                table,
                from: to,
                to: from,
            },
            Op::CreateIndex { table, index } => Op::DropIndex { table, index },
            Op::DropIndex { table, index } => Op::CreateIndex { table, index },
            Op::AddForeignKey { table, key } => Op::DropForeignKey { table, key },
            Op::DropForeignKey { table, key } => Op::AddForeignKey { table, key },
        }
    }

    fn index_create_code(table: &str, index: &NamedIndex) -> String {
        let mut code = format!(
            "Index::create()\n    .name({:?})\n    .table(Alias::new({table:?}))",
            created_name(table, index)
        );
        for column in &index.columns {
            let _ = write!(code, "\n    .col(Alias::new({column:?}))");
        }
        if index.unique {
            code += "\n    .unique()";
        }
        code
    }

    fn index_create(table: &str, index: &NamedIndex) -> sea_orm::sea_query::IndexCreateStatement {
        let mut stmt = Index::create();
        stmt.name(created_name(table, index))
            .table(Alias::new(table));
        for column in &index.columns {
            stmt.col(Alias::new(column.as_str()));
        }
        if index.unique {
            stmt.unique();
        }
        stmt
    }

    fn foreign_key(
        table: &str,
        key: &NamedForeignKey,
    ) -> sea_orm::sea_query::ForeignKeyCreateStatement {
        let mut stmt = ForeignKey::create();
        stmt.name(key.name.as_str());
        for (from, to) in key.columns.iter().zip(&key.references_columns) {
            stmt.from(Alias::new(table), Alias::new(from.as_str())).to(
                Alias::new(key.references_table.as_str()),
                Alias::new(to.as_str()),
            );
        }
        stmt.on_delete(key.action().1)
            .on_update(ForeignKeyAction::NoAction);
        stmt
    }

    /// Builder code, as statements of an `up` or `down` body.
    fn code(&self) -> String {
        let indent = |text: &str, by: usize| -> String {
            let pad = " ".repeat(by);
            text.lines()
                .map(|line| {
                    if line.is_empty() {
                        String::new()
                    } else {
                        format!("{pad}{line}")
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        let mut code = String::new();
        if let Some(what) = self.sqlite_refuses() {
            let _ = writeln!(
                code,
                "if manager.get_database_backend() == DbBackend::Sqlite {{\n    return Err(DbErr::Migration({:?}.to_owned()));\n}}",
                sqlite_refusal(&what)
            );
        }
        match self {
            Op::CreateTable(table) => {
                let mut body = format!("Table::create()\n    .table(Alias::new({:?}))", table.name);
                for column in &table.columns {
                    let _ = write!(body, "\n    .col({})", column.code(false));
                }
                for key in &table.foreign_keys {
                    let _ = write!(
                        body,
                        "\n    .foreign_key(\n{}\n    )",
                        indent(&key.code(&table.name), 8)
                    );
                }
                let _ = writeln!(
                    code,
                    "manager\n    .create_table(\n{}\n            .to_owned(),\n    )\n    .await?;",
                    indent(&body, 8)
                );
                for index in &table.indexes {
                    let _ = writeln!(
                        code,
                        "manager\n    .create_index(\n{}\n            .to_owned(),\n    )\n    .await?;",
                        indent(&Op::index_create_code(&table.name, index), 8)
                    );
                }
            }
            Op::DropTable(table) => {
                let _ = writeln!(
                    code,
                    "manager\n    .drop_table(Table::drop().table(Alias::new({:?})).to_owned())\n    .await?;",
                    table.name
                );
            }
            Op::AddColumn { table, column } => {
                if !column.nullable && column.default.is_none() {
                    code += "// NOT NULL without a default: fails on a table that has rows; add a default or\n// add it nullable, fill it, then make it NOT NULL.\n";
                }
                let _ = writeln!(
                    code,
                    "manager\n    .alter_table(\n        Table::alter()\n            .table(Alias::new({table:?}))\n            .add_column({})\n            .to_owned(),\n    )\n    .await?;",
                    column.code(false)
                );
            }
            Op::DropColumn { table, column } => {
                let _ = writeln!(
                    code,
                    "manager\n    .alter_table(\n        Table::alter()\n            .table(Alias::new({table:?}))\n            .drop_column(Alias::new({:?}))\n            .to_owned(),\n    )\n    .await?;",
                    column.name
                );
            }
            Op::ChangeColumn { table, from, to } => {
                let _ = writeln!(
                    code,
                    "manager\n    .alter_table(\n        Table::alter()\n            .table(Alias::new({table:?}))\n            .modify_column({})\n            .to_owned(),\n    )\n    .await?;",
                    to.code(true)
                );
                if from.default.is_some() && to.default.is_none() {
                    let _ = writeln!(
                        code,
                        "// No builder drops a default on PostgreSQL (MySQL's MODIFY COLUMN already did).\nif manager.get_database_backend() == DbBackend::Postgres {{\n    manager\n        .get_connection()\n        .execute_unprepared({:?})\n        .await?;\n}}",
                        format!(
                            "ALTER TABLE \"{table}\" ALTER COLUMN \"{}\" DROP DEFAULT",
                            to.name
                        )
                    );
                }
            }
            Op::CreateIndex { table, index } => {
                let _ = writeln!(
                    code,
                    "manager\n    .create_index(\n{}\n            .to_owned(),\n    )\n    .await?;",
                    indent(&Op::index_create_code(table, index), 8)
                );
            }
            Op::DropIndex { table, index } => {
                if index.constraint {
                    let _ = writeln!(
                        code,
                        "// A UNIQUE constraint owns this index: PostgreSQL drops the constraint.\nif manager.get_database_backend() == DbBackend::Postgres {{\n    manager\n        .get_connection()\n        .execute_unprepared({:?})\n        .await?;\n}} else {{\n    manager\n        .drop_index(Index::drop().name({:?}).table(Alias::new({table:?})).to_owned())\n        .await?;\n}}",
                        format!(
                            "ALTER TABLE \"{table}\" DROP CONSTRAINT \"{}\"",
                            constraint_name(table, index, DbBackend::Postgres)
                        ),
                        constraint_name(table, index, DbBackend::MySql)
                    );
                } else {
                    let _ = writeln!(
                        code,
                        "manager\n    .drop_index(Index::drop().name({:?}).table(Alias::new({table:?})).to_owned())\n    .await?;",
                        index.name
                    );
                }
            }
            Op::AddForeignKey { table, key } => {
                let _ = writeln!(
                    code,
                    "manager\n    .create_foreign_key(\n{}\n            .to_owned(),\n    )\n    .await?;",
                    indent(&key.code(table), 8)
                );
            }
            Op::DropForeignKey { table, key } => {
                let _ = writeln!(
                    code,
                    "manager\n    .drop_foreign_key(\n        ForeignKey::drop()\n            .name({:?})\n            .table(Alias::new({table:?}))\n            .to_owned(),\n    )\n    .await?;",
                    key.name
                );
            }
        }
        code
    }

    /// Runs the change (what the generated code does) on `db`.
    async fn run<C: ConnectionTrait>(&self, db: &C) -> Result<(), DbErr> {
        let backend = db.get_database_backend();
        if backend == DbBackend::Sqlite
            && let Some(what) = self.sqlite_refuses()
        {
            return Err(DbErr::Migration(sqlite_refusal(&what)));
        }
        match self {
            Op::CreateTable(table) => {
                let mut stmt = Table::create();
                stmt.table(Alias::new(table.name.as_str()));
                for column in &table.columns {
                    stmt.col(column.def(backend, false));
                }
                for key in &table.foreign_keys {
                    stmt.foreign_key(&mut Op::foreign_key(&table.name, key));
                }
                db.execute_raw(backend.build(&stmt)).await?;
                for index in &table.indexes {
                    db.execute_raw(backend.build(&Op::index_create(&table.name, index)))
                        .await?;
                }
            }
            Op::DropTable(table) => {
                db.execute_raw(backend.build(Table::drop().table(Alias::new(table.name.as_str()))))
                    .await?;
            }
            Op::AddColumn { table, column } => {
                db.execute_raw(
                    backend.build(
                        Table::alter()
                            .table(Alias::new(table.as_str()))
                            .add_column(column.def(backend, false)),
                    ),
                )
                .await?;
            }
            Op::DropColumn { table, column } => {
                db.execute_raw(
                    backend.build(
                        Table::alter()
                            .table(Alias::new(table.as_str()))
                            .drop_column(Alias::new(column.name.as_str())),
                    ),
                )
                .await?;
            }
            Op::ChangeColumn { table, from, to } => {
                db.execute_raw(
                    backend.build(
                        Table::alter()
                            .table(Alias::new(table.as_str()))
                            .modify_column(to.def(backend, true)),
                    ),
                )
                .await?;
                if from.default.is_some() && to.default.is_none() && backend == DbBackend::Postgres
                {
                    db.execute_unprepared(&format!(
                        "ALTER TABLE \"{table}\" ALTER COLUMN \"{}\" DROP DEFAULT",
                        to.name
                    ))
                    .await?;
                }
            }
            Op::CreateIndex { table, index } => {
                db.execute_raw(backend.build(&Op::index_create(table, index)))
                    .await?;
            }
            Op::DropIndex { table, index } => {
                if index.constraint && backend == DbBackend::Postgres {
                    db.execute_unprepared(&format!(
                        "ALTER TABLE \"{table}\" DROP CONSTRAINT \"{}\"",
                        constraint_name(table, index, backend)
                    ))
                    .await?;
                } else {
                    let name = if index.constraint {
                        constraint_name(table, index, backend)
                    } else {
                        index.name.clone()
                    };
                    db.execute_raw(
                        backend.build(Index::drop().name(name).table(Alias::new(table.as_str()))),
                    )
                    .await?;
                }
            }
            Op::AddForeignKey { table, key } => {
                db.execute_raw(backend.build(&Op::foreign_key(table, key)))
                    .await?;
            }
            Op::DropForeignKey { table, key } => {
                db.execute_raw(
                    backend.build(
                        ForeignKey::drop()
                            .name(key.name.as_str())
                            .table(Alias::new(table.as_str())),
                    ),
                )
                .await?;
            }
        }
        Ok(())
    }
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The `down` changes: every `up` change inverted, in reverse order.
    fn down_ops(&self) -> Vec<Op> {
        self.ops.iter().rev().map(Op::inverse).collect()
    }

    /// Applies `up` (what the generated migration does) to `db`.
    pub async fn apply_up<C: ConnectionTrait>(&self, db: &C) -> Result<(), DbErr> {
        for op in &self.ops {
            op.run(db).await?;
        }
        Ok(())
    }

    /// Applies `down` to `db`.
    pub async fn apply_down<C: ConnectionTrait>(&self, db: &C) -> Result<(), DbErr> {
        for op in self.down_ops() {
            op.run(db).await?;
        }
        Ok(())
    }

    /// Whether the code needs the `utc_timestamp` helper.
    fn uses_utc_timestamp(&self) -> bool {
        let columns = |op: &Op| -> Vec<Column> {
            match op {
                Op::CreateTable(t) | Op::DropTable(t) => t.columns.clone(),
                Op::AddColumn { column, .. } | Op::DropColumn { column, .. } => {
                    vec![column.clone()]
                }
                Op::ChangeColumn { from, to, .. } => vec![from.clone(), to.clone()],
                _ => vec![],
            }
        };
        self.ops
            .iter()
            .flat_map(columns)
            .any(|column| column.kind == Kind::UtcTimestamp)
    }

    /// The migration file: `//!` header, `up`, `down`, helpers.
    pub fn render(&self, summary: &str) -> String {
        let body = |ops: &[Op]| -> String {
            ops.iter()
                .map(|op| {
                    op.code()
                        .lines()
                        .map(|line| {
                            if line.is_empty() {
                                String::new()
                            } else {
                                format!("        {line}")
                            }
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        let mut out = String::new();
        let _ = writeln!(out, "//! {summary}");
        out += "//!\n//! Written by `cargo run -p api -- generate NAME --autogenerate` from the differences\n//! between the migrations and the entities. Review it before applying it.\n";
        for note in &self.notes {
            let _ = writeln!(out, "//!\n//! CHECK: {note}");
        }
        let up = body(&self.ops);
        let down = body(&self.down_ops());
        out += "\nuse sea_orm_migration::prelude::*;\n";
        if up.contains("DbBackend::") || down.contains("DbBackend::") || self.uses_utc_timestamp() {
            out += "use sea_orm_migration::sea_orm::DbBackend;\n";
        }
        out += "\n";
        out += "#[derive(DeriveMigrationName)]\npub struct Migration;\n\n";
        out += "#[async_trait::async_trait]\nimpl MigrationTrait for Migration {\n";
        out += "    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {\n";
        out += &up;
        out += "\n        Ok(())\n    }\n\n";
        out += "    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {\n";
        out += &down;
        out += "\n        Ok(())\n    }\n}\n";
        if self.uses_utc_timestamp() {
            out += "\n/// A UTC timestamp column: `timestamp with time zone` on PostgreSQL; `datetime(6)` on\n/// MySQL/MariaDB; text on SQLite. Kept in this file so the migration never changes meaning.\nfn utc_timestamp(manager: &SchemaManager, column: impl IntoIden) -> ColumnDef {\n    let mut def = ColumnDef::new(column);\n    if manager.get_database_backend() == DbBackend::MySql {\n        def.custom(Alias::new(\"datetime(6)\"));\n    } else {\n        def.timestamp_with_time_zone();\n    }\n    def\n}\n";
        }
        out
    }
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
    let migrated = crate::schema::inspect(migrations_db)
        .await?
        .without_checks();
    let wanted = crate::schema::inspect(declared_db).await?.without_checks();
    Ok(plan(&migrated, &wanted, declared))
}

/// Names of the tables in a plan, for messages.
pub fn summary(plan: &Plan) -> String {
    let mut tables: BTreeMap<&str, usize> = BTreeMap::new();
    for op in &plan.ops {
        let table = match op {
            Op::CreateTable(t) | Op::DropTable(t) => t.name.as_str(),
            Op::AddColumn { table, .. }
            | Op::DropColumn { table, .. }
            | Op::ChangeColumn { table, .. }
            | Op::CreateIndex { table, .. }
            | Op::DropIndex { table, .. }
            | Op::AddForeignKey { table, .. }
            | Op::DropForeignKey { table, .. } => table.as_str(),
        };
        *tables.entry(table).or_default() += 1;
    }
    tables
        .iter()
        .map(|(table, n)| format!("{table} ({n} change{})", if *n == 1 { "" } else { "s" }))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_read_back() {
        assert_eq!(DefaultValue::parse("0"), DefaultValue::Int(0));
        assert_eq!(
            DefaultValue::parse("'queued'"),
            DefaultValue::Str("queued".into())
        );
        assert_eq!(
            DefaultValue::parse("'queued'::character varying"),
            DefaultValue::Str("queued".into())
        );
        assert_eq!(
            DefaultValue::parse("'it''s'"),
            DefaultValue::Str("it's".into())
        );
        assert_eq!(DefaultValue::parse("TRUE"), DefaultValue::Bool(true));
        assert_eq!(
            DefaultValue::parse("CURRENT_TIMESTAMP"),
            DefaultValue::Expr("CURRENT_TIMESTAMP".into())
        );
    }

    #[test]
    fn types_are_read_back_on_every_backend() {
        for (text, kind) in [
            ("varchar(200)", Kind::String(Some(200))),
            ("character varying(32)", Kind::String(Some(32))),
            ("bigint", Kind::BigInteger),
            ("bigint(20)", Kind::BigInteger),
            ("integer", Kind::Integer),
            ("int(11)", Kind::Integer),
            ("INTEGER", Kind::BigInteger),
            ("TEXT", Kind::Text),
            ("timestamp with time zone", Kind::UtcTimestamp),
            ("timestamp_with_timezone_text", Kind::UtcTimestamp),
            ("utc timestamp", Kind::UtcTimestamp),
            ("tinyint(1)", Kind::Boolean),
            ("double precision", Kind::Double),
            ("numeric(10,2)", Kind::Decimal(Some((10, 2)))),
        ] {
            assert_eq!(Kind::from_inspected(text), kind, "{text}");
        }
    }
}

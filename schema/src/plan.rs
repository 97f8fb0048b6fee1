//! What a generated migration does: a list of changes ([`Op`]), each with its inverse, in
//! a form both the differ ([`crate::diff`]) and the renderer ([`crate::render`]) share.

use std::collections::BTreeMap;

use sea_orm::sea_query::{ColumnType, StringLen};

use crate::inspect::ColumnDescription;

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
    pub(crate) fn from_column_type(column_type: &ColumnType) -> Kind {
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
    pub(crate) fn from_inspected(data_type: &str) -> Kind {
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
    pub(crate) fn parse(text: &str) -> DefaultValue {
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
    pub(crate) fn from_description(
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
    pub(crate) fn action(&self) -> &'static str {
        match self.on_delete.to_ascii_uppercase().as_str() {
            "CASCADE" => "Cascade",
            "SET NULL" => "SetNull",
            "RESTRICT" => "Restrict",
            "SET DEFAULT" => "SetDefault",
            _ => "NoAction",
        }
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

/// Why SQLite refuses a change, as the generated migration reports it.
pub(crate) fn sqlite_refusal(what: &str) -> String {
    format!(
        "SQLite cannot {what} in place (it has no ALTER COLUMN or ALTER CONSTRAINT): rebuild the \
         table by hand (create the new table, copy the rows, drop the old one, rename the new \
         one) or run this migration on PostgreSQL or MySQL"
    )
}

impl Op {
    /// What SQLite cannot do in place, if this is such a change.
    pub(crate) fn sqlite_refuses(&self) -> Option<String> {
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
    pub(crate) fn inverse(&self) -> Op {
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
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The `down` changes: every `up` change inverted, in reverse order.
    pub(crate) fn down_ops(&self) -> Vec<Op> {
        self.ops.iter().rev().map(Op::inverse).collect()
    }
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

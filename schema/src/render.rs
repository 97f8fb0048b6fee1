//! A [`Plan`] written out as a SeaORM migration file: the builder code of every change, `up`
//! and `down`, and notes for the reviewer.

use std::fmt::Write as _;

use sea_orm::DbBackend;

use crate::diff::{constraint_name, created_name};
use crate::plan::{
    Column, DefaultValue, Kind, NamedForeignKey, NamedIndex, Op, Plan, sqlite_refusal,
};

impl Kind {
    /// The builder call after `ColumnDef::new(..)`.
    pub(crate) fn method(&self) -> String {
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
}

impl DefaultValue {
    pub(crate) fn code(&self) -> String {
        match self {
            DefaultValue::Int(n) => format!(".default({n})"),
            DefaultValue::Bool(b) => format!(".default({b})"),
            DefaultValue::Str(s) => format!(".default({s:?})"),
            DefaultValue::Expr(e) => format!(".default(Expr::cust({e:?}))"),
        }
    }
}

impl Column {
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
}

impl NamedForeignKey {
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
            self.action()
        );
        code
    }
}

impl Op {
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

    /// PostgreSQL's `CREATE INDEX CONCURRENTLY` for `index` on the existing `table`.
    fn concurrent_index_sql(table: &str, index: &NamedIndex) -> String {
        let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
        let columns: Vec<String> = index.columns.iter().map(|column| quote(column)).collect();
        format!(
            "CREATE {}INDEX CONCURRENTLY {} ON {} ({})",
            if index.unique { "UNIQUE " } else { "" },
            quote(&created_name(table, index)),
            quote(table),
            columns.join(", ")
        )
    }

    /// MySQL/MariaDB's online `CREATE INDEX ... ALGORITHM=INPLACE LOCK=NONE` for `index`.
    fn online_index_sql_mysql(table: &str, index: &NamedIndex) -> String {
        let quote = |name: &str| format!("`{}`", name.replace('`', "``"));
        let columns: Vec<String> = index.columns.iter().map(|column| quote(column)).collect();
        format!(
            "CREATE {}INDEX {} ON {} ({}) ALGORITHM=INPLACE LOCK=NONE",
            if index.unique { "UNIQUE " } else { "" },
            quote(&created_name(table, index)),
            quote(table),
            columns.join(", ")
        )
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
                // On an existing table: CONCURRENTLY on PostgreSQL, INPLACE/LOCK=NONE on MySQL, so
                // writes go on meanwhile (a plain CREATE INDEX blocks them for the whole build).

                let _ = writeln!(
                    code,
                    "match manager.get_database_backend() {{\n    DbBackend::Postgres => {{\n        // CONCURRENTLY: writes to {table} go on while it builds (outside a transaction:\n        // see use_transaction). If it fails half-way, PostgreSQL leaves an INVALID index:\n        // DROP INDEX CONCURRENTLY {:?}; then run the migration again.\n        manager\n            .get_connection()\n            .execute_unprepared({:?})\n            .await?;\n    }}\n    DbBackend::MySql => {{\n        // INPLACE, LOCK=NONE: reads and writes go on while it builds (MySQL refuses, rather\n        // than locking the table, where it cannot).\n        manager\n            .get_connection()\n            .execute_unprepared({:?})\n            .await?;\n    }}\n    _ => {{\n        manager\n            .create_index(\n{}\n                    .to_owned(),\n            )\n            .await?;\n    }}\n}}",
                    created_name(table, index),
                    Op::concurrent_index_sql(table, index),
                    Op::online_index_sql_mysql(table, index),
                    indent(&Op::index_create_code(table, index), 16)
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
}

impl Plan {
    /// Whether `up` or `down` builds an index on an existing table (CONCURRENTLY on
    /// PostgreSQL, which needs the migration outside a transaction).
    fn builds_index_on_existing_table(&self) -> bool {
        self.ops
            .iter()
            .chain(self.down_ops().iter())
            .any(|op| matches!(op, Op::CreateIndex { .. }))
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
        out += "//!\n//! Written by `cargo run -p schema -- generate NAME --autogenerate` from the differences\n//! between the migrations and the entities. Review it before applying it.\n";
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
        out += "\n        Ok(())\n    }\n";
        if self.builds_index_on_existing_table() {
            out += "\n    fn use_transaction(&self) -> Option<bool> {\n        // CREATE INDEX CONCURRENTLY cannot run inside a transaction.\n        Some(false)\n    }\n";
        }
        out += "}\n";
        if self.uses_utc_timestamp() {
            out += "\n/// A UTC timestamp column: `timestamp with time zone` on PostgreSQL; `datetime(6)` on\n/// MySQL/MariaDB; text on SQLite. Kept in this file so the migration never changes meaning.\nfn utc_timestamp(manager: &SchemaManager, column: impl IntoIden) -> ColumnDef {\n    let mut def = ColumnDef::new(column);\n    if manager.get_database_backend() == DbBackend::MySql {\n        def.custom(Alias::new(\"datetime(6)\"));\n    } else {\n        def.timestamp_with_time_zone();\n    }\n    def\n}\n";
        }
        out
    }
}

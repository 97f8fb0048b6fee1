//! What a live database's schema looks like, read back from the database itself, in one form
//! for every backend. Used to prove the migrations produce what the entities declare.

use std::collections::{BTreeMap, BTreeSet};

use sea_orm::{ConnectionTrait, DbBackend, DbErr, QueryResult, Statement};

/// A database schema: tables by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaDescription {
    pub tables: BTreeMap<String, TableDescription>,
}

#[derive(Debug, Clone, Default)]
pub struct TableDescription {
    pub columns: BTreeMap<String, ColumnDescription>,
    /// Indexes by (columns, unique); names are left out because backends invent them for
    /// UNIQUE constraints.
    pub indexes: BTreeSet<IndexDescription>,
    pub foreign_keys: BTreeSet<ForeignKeyDescription>,
    /// CHECK constraint expressions as the database prints them.
    pub checks: BTreeSet<String>,
    /// The names of the indexes (not compared: needed to drop one).
    pub index_names: BTreeMap<IndexDescription, IndexName>,
    /// The names of the foreign keys, where the backend has them (not compared).
    pub foreign_key_names: BTreeMap<ForeignKeyDescription, String>,
}

/// An index's name, and whether a UNIQUE constraint owns it (then the constraint is what
/// must be dropped, on PostgreSQL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexName {
    pub name: String,
    pub constraint: bool,
}

impl PartialEq for TableDescription {
    fn eq(&self, other: &Self) -> bool {
        self.columns == other.columns
            && self.indexes == other.indexes
            && self.foreign_keys == other.foreign_keys
            && self.checks == other.checks
    }
}

impl Eq for TableDescription {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDescription {
    /// The type as the backend reports it (`character varying(32)`, `bigint`, ...).
    pub data_type: String,
    pub nullable: bool,
    pub default: Option<String>,
    pub primary_key: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct IndexDescription {
    pub columns: Vec<String>,
    pub unique: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ForeignKeyDescription {
    pub columns: Vec<String>,
    pub references_table: String,
    pub references_columns: Vec<String>,
    /// Normalised: `CASCADE`, `SET NULL`, `RESTRICT`, `NO ACTION`, `SET DEFAULT`.
    pub on_delete: String,
}

impl std::fmt::Display for IndexDescription {
    /// `(user_id, id)`, `unique (email)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unique = if self.unique { "unique " } else { "" };
        write!(f, "{unique}({})", self.columns.join(", "))
    }
}

impl std::fmt::Display for ForeignKeyDescription {
    /// `(user_id) -> users (id) on delete CASCADE`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "({}) -> {} ({}) on delete {}",
            self.columns.join(", "),
            self.references_table,
            self.references_columns.join(", "),
            self.on_delete
        )
    }
}

impl SchemaDescription {
    /// The same description without CHECK constraints (entities cannot declare them).
    pub fn without_checks(mut self) -> Self {
        for table in self.tables.values_mut() {
            table.checks.clear();
        }
        self
    }

    /// Human-readable differences from `other` (empty when equal), one line per table,
    /// column, index, foreign key or check that differs. `self` is called `left_name` and
    /// `other` `right_name` in the lines (e.g. "migrations" and "entities").
    pub fn differences_named(
        &self,
        other: &SchemaDescription,
        left_name: &str,
        right_name: &str,
    ) -> Vec<String> {
        let mut out = Vec::new();
        let names: BTreeSet<&String> = self.tables.keys().chain(other.tables.keys()).collect();
        for name in names {
            let (left, right) = match (self.tables.get(name), other.tables.get(name)) {
                (Some(_), None) => {
                    out.push(format!("table {name}: in {left_name}, not in {right_name}"));
                    continue;
                }
                (None, Some(_)) => {
                    out.push(format!("table {name}: in {right_name}, not in {left_name}"));
                    continue;
                }
                (Some(left), Some(right)) => (left, right),
                (None, None) => continue,
            };
            let columns: BTreeSet<&String> =
                left.columns.keys().chain(right.columns.keys()).collect();
            for column in columns {
                match (left.columns.get(column), right.columns.get(column)) {
                    (Some(_), None) => out.push(format!(
                        "column {name}.{column}: in {left_name}, not in {right_name}"
                    )),
                    (None, Some(_)) => out.push(format!(
                        "column {name}.{column}: in {right_name}, not in {left_name}"
                    )),
                    (Some(l), Some(r)) if l != r => out.push(format!(
                        "column {name}.{column}: {left_name} {l:?}, {right_name} {r:?}"
                    )),
                    _ => {}
                }
            }
            for index in left.indexes.difference(&right.indexes) {
                out.push(format!(
                    "index on {name} {index}: in {left_name}, not in {right_name}"
                ));
            }
            for index in right.indexes.difference(&left.indexes) {
                out.push(format!(
                    "index on {name} {index}: in {right_name}, not in {left_name}"
                ));
            }
            for key in left.foreign_keys.difference(&right.foreign_keys) {
                out.push(format!(
                    "foreign key on {name} {key}: in {left_name}, not in {right_name}"
                ));
            }
            for key in right.foreign_keys.difference(&left.foreign_keys) {
                out.push(format!(
                    "foreign key on {name} {key}: in {right_name}, not in {left_name}"
                ));
            }
            for check in left.checks.symmetric_difference(&right.checks) {
                out.push(format!("check on {name}: {check} differs"));
            }
        }
        out
    }

    /// [`Self::differences_named`] with the sides called left and right.
    pub fn differences(&self, other: &SchemaDescription) -> Vec<String> {
        self.differences_named(other, "left", "right")
    }
}

/// Reads the schema of the database `db` is connected to (its current schema on PostgreSQL),
/// leaving out the migration bookkeeping table.
pub async fn inspect<C: ConnectionTrait>(db: &C) -> Result<SchemaDescription, DbErr> {
    let mut schema = match db.get_database_backend() {
        DbBackend::Postgres => inspect_postgres(db).await?,
        DbBackend::MySql => inspect_mysql(db).await?,
        DbBackend::Sqlite => inspect_sqlite(db).await?,
        other => {
            return Err(DbErr::Custom(format!(
                "schema inspection does not support {other:?}"
            )));
        }
    };
    schema.tables.remove("seaql_migrations");
    Ok(schema)
}

async fn rows<C: ConnectionTrait>(
    db: &C,
    sql: &str,
    values: Vec<sea_orm::Value>,
) -> Result<Vec<QueryResult>, DbErr> {
    let backend = db.get_database_backend();
    db.query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await
}

fn split_list(list: &str) -> Vec<String> {
    list.split(',')
        .filter(|part| !part.is_empty())
        .map(str::to_owned)
        .collect()
}

fn table(schema: &mut SchemaDescription, name: String) -> &mut TableDescription {
    schema.tables.entry(name).or_default()
}

/// Foreign keys from rows of `t`, `name`, `ref_table`, `del` (the delete rule's name), `cols`
/// and `ref_cols` (comma-separated): the shape both the PostgreSQL and the MySQL query return.
fn add_foreign_keys(schema: &mut SchemaDescription, rows: Vec<QueryResult>) -> Result<(), DbErr> {
    for row in rows {
        let cols: String = row.try_get("", "cols")?;
        let ref_cols: String = row.try_get("", "ref_cols")?;
        let name: String = row.try_get("", "name")?;
        let key = ForeignKeyDescription {
            columns: split_list(&cols),
            references_table: row.try_get("", "ref_table")?,
            references_columns: split_list(&ref_cols),
            on_delete: row.try_get("", "del")?,
        };
        let table = table(schema, row.try_get("", "t")?);
        table.foreign_key_names.insert(key.clone(), name);
        table.foreign_keys.insert(key);
    }
    Ok(())
}

/// CHECK constraints from rows of `t` and `def`.
fn add_checks(schema: &mut SchemaDescription, rows: Vec<QueryResult>) -> Result<(), DbErr> {
    for row in rows {
        table(schema, row.try_get("", "t")?)
            .checks
            .insert(row.try_get("", "def")?);
    }
    Ok(())
}

async fn inspect_postgres<C: ConnectionTrait>(db: &C) -> Result<SchemaDescription, DbErr> {
    let mut schema = SchemaDescription::default();
    let primary: BTreeSet<(String, String)> = rows(
        db,
        "SELECT tc.table_name::text AS t, kcu.column_name::text AS c
         FROM information_schema.table_constraints tc
         JOIN information_schema.key_column_usage kcu
           ON kcu.constraint_name = tc.constraint_name AND kcu.table_schema = tc.table_schema
         WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = current_schema()",
        vec![],
    )
    .await?
    .iter()
    .map(|row| Ok((row.try_get("", "t")?, row.try_get("", "c")?)))
    .collect::<Result<_, DbErr>>()?;
    for row in rows(
        db,
        "SELECT c.table_name::text AS t, c.column_name::text AS c,
                format_type(a.atttypid, a.atttypmod) AS data_type,
                c.is_nullable::text AS nullable, c.column_default::text AS dflt,
                c.is_identity::text AS is_identity
         FROM information_schema.columns c
         JOIN information_schema.tables tb
           ON tb.table_name = c.table_name AND tb.table_schema = c.table_schema
          AND tb.table_type = 'BASE TABLE'
         JOIN pg_attribute a
           ON a.attrelid = (quote_ident(c.table_schema) || '.' || quote_ident(c.table_name))::regclass
          AND a.attname = c.column_name
         WHERE c.table_schema = current_schema()",
        vec![],
    )
    .await?
    {
        let table_name: String = row.try_get("", "t")?;
        let column: String = row.try_get("", "c")?;
        let nullable: String = row.try_get("", "nullable")?;
        let identity: String = row.try_get("", "is_identity")?;
        let mut default: Option<String> = row.try_get("", "dflt")?;
        if identity == "YES" {
            default = Some("identity".to_owned());
        } else if let Some(text) = &default
            && text.starts_with("nextval(")
        {
            // A serial column's sequence name carries the table name: keep only the kind.
            default = Some("serial".to_owned());
        }
        let primary_key = primary.contains(&(table_name.clone(), column.clone()));
        table(&mut schema, table_name).columns.insert(
            column,
            ColumnDescription {
                data_type: row.try_get("", "data_type")?,
                nullable: nullable == "YES",
                default,
                primary_key,
            },
        );
    }
    for row in rows(
        db,
        "SELECT t.relname::text AS t, ix.indisunique AS is_unique, ci.relname::text AS name,
                EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = ix.indexrelid
                        AND c.contype IN ('u', 'p')) AS is_constraint,
                array_to_string(array(
                    SELECT a.attname FROM unnest(ix.indkey) WITH ORDINALITY AS k(attnum, ord)
                    JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
                    ORDER BY k.ord), ',') AS cols
         FROM pg_index ix
         JOIN pg_class t ON t.oid = ix.indrelid
         JOIN pg_class ci ON ci.oid = ix.indexrelid
         JOIN pg_namespace n ON n.oid = t.relnamespace
         WHERE n.nspname = current_schema() AND NOT ix.indisprimary",
        vec![],
    )
    .await?
    {
        let cols: String = row.try_get("", "cols")?;
        let index = IndexDescription {
            columns: split_list(&cols),
            unique: row.try_get("", "is_unique")?,
        };
        let table = table(&mut schema, row.try_get("", "t")?);
        table.index_names.insert(
            index.clone(),
            IndexName {
                name: row.try_get("", "name")?,
                constraint: row.try_get("", "is_constraint")?,
            },
        );
        table.indexes.insert(index);
    }
    let fk_rows = rows(
        db,
        "SELECT cl.relname::text AS t, con.conname::text AS name, rf.relname::text AS ref_table,
                CASE con.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL'
                     WHEN 'd' THEN 'SET DEFAULT' WHEN 'r' THEN 'RESTRICT' ELSE 'NO ACTION' END AS del,
                array_to_string(array(
                    SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
                    JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
                    ORDER BY k.ord), ',') AS cols,
                array_to_string(array(
                    SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, ord)
                    JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum
                    ORDER BY k.ord), ',') AS ref_cols
         FROM pg_constraint con
         JOIN pg_class cl ON cl.oid = con.conrelid
         JOIN pg_class rf ON rf.oid = con.confrelid
         JOIN pg_namespace n ON n.oid = cl.relnamespace
         WHERE con.contype = 'f' AND n.nspname = current_schema()",
        vec![],
    )
    .await?;
    add_foreign_keys(&mut schema, fk_rows)?;
    let check_rows = rows(
        db,
        "SELECT cl.relname::text AS t, pg_get_constraintdef(con.oid) AS def
         FROM pg_constraint con
         JOIN pg_class cl ON cl.oid = con.conrelid
         JOIN pg_namespace n ON n.oid = cl.relnamespace
         WHERE con.contype = 'c' AND n.nspname = current_schema()",
        vec![],
    )
    .await?;
    add_checks(&mut schema, check_rows)?;
    Ok(schema)
}

async fn inspect_mysql<C: ConnectionTrait>(db: &C) -> Result<SchemaDescription, DbErr> {
    let mut schema = SchemaDescription::default();
    for row in rows(
        db,
        "SELECT CAST(c.TABLE_NAME AS CHAR) AS t, CAST(c.COLUMN_NAME AS CHAR) AS c,
                CAST(c.COLUMN_TYPE AS CHAR) AS data_type, CAST(c.IS_NULLABLE AS CHAR) AS nullable,
                CAST(c.COLUMN_DEFAULT AS CHAR) AS dflt, CAST(c.EXTRA AS CHAR) AS extra,
                CAST(c.COLUMN_KEY AS CHAR) AS col_key
         FROM information_schema.COLUMNS c
         JOIN information_schema.TABLES tb
           ON tb.TABLE_SCHEMA = c.TABLE_SCHEMA AND tb.TABLE_NAME = c.TABLE_NAME
          AND tb.TABLE_TYPE = 'BASE TABLE'
         WHERE c.TABLE_SCHEMA = DATABASE()",
        vec![],
    )
    .await?
    {
        let nullable: String = row.try_get("", "nullable")?;
        let extra: String = row.try_get("", "extra")?;
        let col_key: String = row.try_get("", "col_key")?;
        let mut default: Option<String> = row.try_get("", "dflt")?;
        // MariaDB reports "no default" of a nullable column as the text NULL.
        if default.as_deref() == Some("NULL") {
            default = None;
        }
        if extra.contains("auto_increment") {
            default = Some("auto_increment".to_owned());
        }
        // MySQL 8 reports a string default bare (`queued`), MariaDB quoted (`'queued'`); an
        // expression default is marked DEFAULT_GENERATED by MySQL. Quote bare strings.
        if let Some(text) = &default
            && !extra.contains("auto_increment")
            && !extra.contains("DEFAULT_GENERATED")
            && !text.starts_with('\'')
            && text.parse::<f64>().is_err()
            && !text.eq_ignore_ascii_case("current_timestamp")
            && !text.to_ascii_lowercase().starts_with("current_timestamp(")
            && !text.ends_with(')')
        {
            default = Some(format!("'{}'", text.replace('\'', "''")));
        }
        // An entity's `DateTimeUtc` is `timestamp` in SeaORM's MySQL DDL, while our migrations
        // use `datetime(6)` (microseconds, no 2038 limit); both hold the same UTC instant, and
        // entities cannot declare a precision, so both read as one type here.
        let mut data_type: String = row.try_get("", "data_type")?;
        if data_type == "timestamp" || data_type.starts_with("datetime") {
            data_type = "utc timestamp".to_owned();
        }
        table(&mut schema, row.try_get("", "t")?).columns.insert(
            row.try_get("", "c")?,
            ColumnDescription {
                data_type,
                nullable: nullable == "YES",
                default,
                primary_key: col_key == "PRI",
            },
        );
    }
    for row in rows(
        db,
        "SELECT CAST(TABLE_NAME AS CHAR) AS t, CAST(INDEX_NAME AS CHAR) AS name,
                CAST(MIN(NON_UNIQUE) AS SIGNED) AS non_unique,
                CAST(GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX SEPARATOR ',') AS CHAR) AS cols
         FROM information_schema.STATISTICS
         WHERE TABLE_SCHEMA = DATABASE() AND INDEX_NAME <> 'PRIMARY'
         GROUP BY TABLE_NAME, INDEX_NAME",
        vec![],
    )
    .await?
    {
        let non_unique: i64 = row.try_get("", "non_unique")?;
        let cols: String = row.try_get("", "cols")?;
        let index = IndexDescription {
            columns: split_list(&cols),
            unique: non_unique == 0,
        };
        let table = table(&mut schema, row.try_get("", "t")?);
        table.index_names.insert(
            index.clone(),
            IndexName {
                name: row.try_get("", "name")?,
                constraint: false,
            },
        );
        table.indexes.insert(index);
    }
    let fk_rows = rows(
        db,
        "SELECT CAST(k.TABLE_NAME AS CHAR) AS t, CAST(k.CONSTRAINT_NAME AS CHAR) AS name,
                CAST(k.REFERENCED_TABLE_NAME AS CHAR) AS ref_table,
                CAST(r.DELETE_RULE AS CHAR) AS del,
                CAST(GROUP_CONCAT(k.COLUMN_NAME ORDER BY k.ORDINAL_POSITION SEPARATOR ',') AS CHAR) AS cols,
                CAST(GROUP_CONCAT(k.REFERENCED_COLUMN_NAME ORDER BY k.ORDINAL_POSITION SEPARATOR ',')
                     AS CHAR) AS ref_cols
         FROM information_schema.KEY_COLUMN_USAGE k
         JOIN information_schema.REFERENTIAL_CONSTRAINTS r
           ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME
          AND r.TABLE_NAME = k.TABLE_NAME
         WHERE k.TABLE_SCHEMA = DATABASE() AND k.REFERENCED_TABLE_NAME IS NOT NULL
         GROUP BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.REFERENCED_TABLE_NAME, r.DELETE_RULE",
        vec![],
    )
    .await?;
    add_foreign_keys(&mut schema, fk_rows)?;
    let check_rows = rows(
        db,
        "SELECT CAST(TABLE_NAME AS CHAR) AS t, CAST(CHECK_CLAUSE AS CHAR) AS def
         FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE()",
        vec![],
    )
    .await?;
    add_checks(&mut schema, check_rows)?;
    Ok(schema)
}

async fn inspect_sqlite<C: ConnectionTrait>(db: &C) -> Result<SchemaDescription, DbErr> {
    let mut schema = SchemaDescription::default();
    let tables = rows(
        db,
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        vec![],
    )
    .await?;
    for table_row in tables {
        let name: String = table_row.try_get("", "name")?;
        let sql: String = table_row.try_get("", "sql")?;
        let description = table(&mut schema, name.clone());
        for row in rows(
            db,
            "SELECT name, type, \"notnull\" AS not_null, dflt_value, pk FROM pragma_table_info(?)",
            vec![name.clone().into()],
        )
        .await?
        {
            let not_null: i64 = row.try_get("", "not_null")?;
            let pk: i64 = row.try_get("", "pk")?;
            description.columns.insert(
                row.try_get("", "name")?,
                ColumnDescription {
                    data_type: row.try_get("", "type")?,
                    nullable: not_null == 0,
                    default: row.try_get("", "dflt_value")?,
                    primary_key: pk > 0,
                },
            );
        }
        for row in rows(
            db,
            "SELECT name, \"unique\" AS is_unique, origin FROM pragma_index_list(?)",
            vec![name.clone().into()],
        )
        .await?
        {
            let origin: String = row.try_get("", "origin")?;
            if origin == "pk" {
                continue;
            }
            let index_name: String = row.try_get("", "name")?;
            let is_unique: i64 = row.try_get("", "is_unique")?;
            let mut columns = Vec::new();
            for column in rows(
                db,
                "SELECT name FROM pragma_index_info(?) ORDER BY seqno",
                vec![index_name.clone().into()],
            )
            .await?
            {
                columns.push(column.try_get("", "name")?);
            }
            let index = IndexDescription {
                columns,
                unique: is_unique != 0,
            };
            description.index_names.insert(
                index.clone(),
                IndexName {
                    name: index_name,
                    // An inline UNIQUE's automatic index cannot be dropped on its own.
                    constraint: origin == "u",
                },
            );
            description.indexes.insert(index);
        }
        let mut foreign_keys: BTreeMap<i64, ForeignKeyDescription> = BTreeMap::new();
        for row in rows(
            db,
            "SELECT id, \"table\" AS ref_table, \"from\" AS col, \"to\" AS ref_col, on_delete
             FROM pragma_foreign_key_list(?) ORDER BY id, seq",
            vec![name.clone().into()],
        )
        .await?
        {
            let id: i64 = row.try_get("", "id")?;
            let key = foreign_keys.entry(id).or_insert(ForeignKeyDescription {
                columns: Vec::new(),
                references_table: row.try_get("", "ref_table")?,
                references_columns: Vec::new(),
                on_delete: row.try_get("", "on_delete")?,
            });
            key.columns.push(row.try_get("", "col")?);
            key.references_columns.push(row.try_get("", "ref_col")?);
        }
        description.foreign_keys.extend(foreign_keys.into_values());
        description.checks.extend(sqlite_checks(&sql));
    }
    Ok(schema)
}

/// The `CHECK (...)` clauses of a SQLite `CREATE TABLE` statement.
fn sqlite_checks(sql: &str) -> Vec<String> {
    let mut checks = Vec::new();
    let mut rest = sql;
    while let Some(start) = rest.find("CHECK") {
        let after = &rest[start..];
        let Some(open) = after.find('(') else { break };
        let mut depth = 0usize;
        let mut end = None;
        for (offset, ch) in after[open..].char_indices() {
            match ch {
                '(' => depth += 1,
                ')' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = Some(open + offset + 1);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(end) = end else { break };
        checks.push(after[..end].to_owned());
        rest = &after[end..];
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_the_column() {
        let column = ColumnDescription {
            data_type: "integer".to_owned(),
            nullable: true,
            default: None,
            primary_key: false,
        };
        let mut left = SchemaDescription::default();
        left.tables.entry("photos".to_owned()).or_default();
        let mut right = left.clone();
        right
            .tables
            .get_mut("photos")
            .unwrap()
            .columns
            .insert("rating".to_owned(), column);
        let lines = left.differences_named(&right, "migrations", "entities");
        assert_eq!(
            lines,
            vec!["column photos.rating: in entities, not in migrations"]
        );
    }

    #[test]
    fn finds_check_clauses() {
        let sql = r#"CREATE TABLE t ("a" text, CONSTRAINT "c" CHECK ("a" IN ('x', 'y')) )"#;
        assert_eq!(sqlite_checks(sql), vec![r#"CHECK ("a" IN ('x', 'y'))"#]);
        assert!(sqlite_checks("CREATE TABLE t (a int)").is_empty());
    }
}

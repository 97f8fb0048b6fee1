//! A lint for migrations that would hold up live traffic on a table with rows: what a reviewer
//! of a production migration looks for, checked on every migration written after
//! [`LINT_SINCE`] (`cargo run -p schema -- check` runs it; CI gates on it). Each finding names
//! the safe alternative. A reviewed exception (a table known to be small or empty) is marked
//! in the migration's source with `// lint: allow RULE -- why`.

use std::path::Path;

/// Migrations at or before this one predate the lint (they created the tables on empty
/// databases, or were reviewed by hand: the page indexes).
pub const LINT_SINCE: &str = "m20261125_234326";

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub migration: String,
    pub rule: &'static str,
    pub message: &'static str,
}

struct Rule {
    name: &'static str,
    /// Whether the migration's source breaks the rule.
    applies: fn(&str) -> bool,
    message: &'static str,
}

const RULES: &[Rule] = &[
    Rule {
        name: "not-null-without-default",
        applies: adds_not_null_without_default,
        message: "adds a NOT NULL column without a default: it fails on a table with rows (and \
                  rewrites it on MySQL). Add it nullable, fill it in batches, then make it NOT \
                  NULL in a later migration; or give it a default",
    },
    Rule {
        name: "column-rewrite",
        applies: |source| source.contains(".modify_column("),
        message: "changes a column's definition: a type change rewrites the whole table under \
                  a lock that blocks reads and writes (PostgreSQL ACCESS EXCLUSIVE). Add a new \
                  column, fill it in batches, move the code to it, drop the old one in a later \
                  release",
    },
    Rule {
        name: "foreign-key-validation",
        applies: |source| source.contains(".create_foreign_key("),
        message: "adds a foreign key to an existing table: checking every row holds a lock \
                  that blocks writes. On PostgreSQL add it NOT VALID, then VALIDATE CONSTRAINT \
                  in a later migration (which lets writes go on)",
    },
    Rule {
        name: "blocking-index",
        applies: builds_index_without_concurrently,
        message: "builds an index on an existing table with a plain CREATE INDEX, which blocks \
                  writes for the whole build. Build it CONCURRENTLY on PostgreSQL (outside a \
                  transaction) and ALGORITHM=INPLACE, LOCK=NONE on MySQL, as autogenerate writes",
    },
];

/// A `.add_column(...)` whose column is `.not_null()` with no `.default(...)`.
fn adds_not_null_without_default(source: &str) -> bool {
    source.split(".add_column(").skip(1).any(|rest| {
        let definition = rest.split(".to_owned()").next().unwrap_or(rest);
        definition.contains(".not_null()") && !definition.contains(".default(")
    })
}

/// `create_index` on a table this migration does not create, with no concurrent build.
fn builds_index_without_concurrently(source: &str) -> bool {
    source.contains(".create_index(")
        && !source.contains(".create_table(")
        && !source.contains("CONCURRENTLY")
}

/// The timestamp part of a migration's name (`m20261125_234326`).
fn stamp(name: &str) -> &str {
    name.get(..16).unwrap_or(name)
}

/// Lints one migration's source (`name` is its module name).
pub fn lint_source(name: &str, source: &str) -> Vec<Finding> {
    if stamp(name) <= LINT_SINCE {
        return Vec::new();
    }
    RULES
        .iter()
        .filter(|rule| (rule.applies)(source))
        .filter(|rule| !source.contains(&format!("lint: allow {}", rule.name)))
        .map(|rule| Finding {
            migration: name.to_owned(),
            rule: rule.name,
            message: rule.message,
        })
        .collect()
}

/// Lints every migration file (`m*.rs`) in `dir`.
pub fn lint_dir(dir: &Path) -> Result<Vec<Finding>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|error| format!("reading {}: {error}", dir.display()))?;
    let mut files: Vec<_> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension().is_some_and(|ext| ext == "rs")
                && path
                    .file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| {
                        name.starts_with('m')
                            && name.as_bytes().get(1).is_some_and(u8::is_ascii_digit)
                    })
        })
        .collect();
    files.sort();
    let mut findings = Vec::new();
    for path in files {
        let source = std::fs::read_to_string(&path)
            .map_err(|error| format!("reading {}: {error}", path.display()))?;
        let name = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .unwrap_or_default();
        findings.extend(lint_source(name, &source));
    }
    Ok(findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEW: &str = "m20991231_000000_change";

    #[test]
    fn each_rule_is_found_and_can_be_allowed() {
        let not_null = r#"manager.alter_table(Table::alter().table(Alias::new("photos")).add_column(ColumnDef::new(Alias::new("rating")).integer().not_null()).to_owned())"#;
        assert_eq!(
            lint_source(NEW, not_null)[0].rule,
            "not-null-without-default"
        );
        let with_default = not_null.replace(".not_null()", ".not_null().default(0)");
        assert!(lint_source(NEW, &with_default).is_empty());
        let allowed = format!("// lint: allow not-null-without-default -- empty table\n{not_null}");
        assert!(lint_source(NEW, &allowed).is_empty());

        assert_eq!(
            lint_source(NEW, ".modify_column(x)")[0].rule,
            "column-rewrite"
        );
        assert_eq!(
            lint_source(NEW, ".create_foreign_key(x)")[0].rule,
            "foreign-key-validation"
        );
        assert_eq!(
            lint_source(NEW, ".create_index(x)")[0].rule,
            "blocking-index"
        );
        assert!(lint_source(NEW, ".create_table(t) .create_index(x)").is_empty());
        assert!(lint_source(NEW, "CONCURRENTLY .create_index(x)").is_empty());
    }

    #[test]
    fn migrations_before_the_lint_are_left_alone() {
        assert!(lint_source("m20261125_234326_page_indexes", ".create_index(x)").is_empty());
    }

    #[test]
    fn this_projects_migrations_pass() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migration/src");
        assert_eq!(lint_dir(&dir).unwrap(), Vec::new());
    }
}

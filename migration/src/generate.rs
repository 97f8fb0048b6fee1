//! `generate NAME`: a new, empty migration file named with the UTC timestamp convention
//! (`mYYYYMMDD_HHMMSS_name.rs`), written into this crate's `src/` and registered in the
//! `Migrator`, whatever directory the command is run from.

use std::path::{Path, PathBuf};

/// This crate's source directory, fixed at build time (so the working directory is irrelevant).
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Writes `m{timestamp}_{name}.rs` into `dir` and registers it in `dir/lib.rs`; returns the
/// module name. `name` is 1-60 of `[a-z0-9_]`.
pub fn generate(
    dir: &Path,
    name: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<String, String> {
    write_migration(dir, name, now, &template(name))
}

/// [`generate`] with the file's source given (`cargo run -p schema -- generate NAME --autogenerate` writes the
/// changes it found).
pub fn write_migration(
    dir: &Path,
    name: &str,
    now: chrono::DateTime<chrono::Utc>,
    source: &str,
) -> Result<String, String> {
    let valid = !name.is_empty()
        && name.len() <= 60
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !valid {
        return Err(format!(
            "{name:?} is not a migration name: use 1-60 of a-z, 0-9 and _ (e.g. add_photo_rating)"
        ));
    }
    let module = format!("m{}_{name}", now.format("%Y%m%d_%H%M%S"));
    let file = dir.join(format!("{module}.rs"));
    if file.exists() {
        return Err(format!("{} already exists", file.display()));
    }
    let lib_path = dir.join("lib.rs");
    let lib = std::fs::read_to_string(&lib_path)
        .map_err(|error| format!("cannot read {}: {error}", lib_path.display()))?;
    let registered = register(&lib, &module)?;
    std::fs::write(&file, source)
        .map_err(|error| format!("cannot write {}: {error}", file.display()))?;
    std::fs::write(&lib_path, registered)
        .map_err(|error| format!("cannot update {}: {error}", lib_path.display()))?;
    Ok(module)
}

/// `lib` with `mod {module};` after the last migration module and the migration appended to
/// `Migrator::migrations()`.
fn register(lib: &str, module: &str) -> Result<String, String> {
    let lines: Vec<&str> = lib.lines().collect();
    let last_mod = lines
        .iter()
        .rposition(|line| line.starts_with("mod m") && line.ends_with(';'))
        .ok_or("lib.rs has no `mod mYYYYMMDD_...;` line to add after")?;
    let last_box = lines
        .iter()
        .rposition(|line| line.trim_start().starts_with("Box::new(m"))
        .ok_or("lib.rs has no `Box::new(m...::Migration),` line to add after")?;
    let indent: String = lines[last_box]
        .chars()
        .take_while(|c| c.is_whitespace())
        .collect();
    let mut out: Vec<String> = Vec::with_capacity(lines.len() + 2);
    for (index, line) in lines.iter().enumerate() {
        out.push((*line).to_owned());
        if index == last_mod {
            out.push(format!("mod {module};"));
        }
        if index == last_box {
            out.push(format!("{indent}Box::new({module}::Migration),"));
        }
    }
    let mut text = out.join("\n");
    text.push('\n');
    Ok(text)
}

fn template(name: &str) -> String {
    format!(
        r#"//! {name}: describe the change here.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {{
    async fn up(&self, _manager: &SchemaManager) -> Result<(), DbErr> {{
        // Use the schema builders: manager.alter_table(...), manager.create_index(...).
        // Never import `entity` here: a migration must mean the same thing forever.
        Ok(())
    }}

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {{
        // Undo exactly what `up` did.
        Ok(())
    }}
}}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_registers_a_migration() {
        let dir = std::env::temp_dir().join(format!("aistory-generate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(default_dir().join("lib.rs"), dir.join("lib.rs")).unwrap();
        let now = chrono::DateTime::parse_from_rfc3339("2030-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let module = generate(&dir, "add_photo_rating", now).unwrap();
        assert_eq!(module, "m20300102_030405_add_photo_rating");
        let lib = std::fs::read_to_string(dir.join("lib.rs")).unwrap();
        assert!(lib.contains("mod m20300102_030405_add_photo_rating;"));
        assert!(lib.contains("Box::new(m20300102_030405_add_photo_rating::Migration),"));
        // Registered last, after the existing ones.
        let boxes: Vec<&str> = lib.lines().filter(|l| l.contains("Box::new(m")).collect();
        assert!(boxes.last().unwrap().contains("add_photo_rating"));
        let file = std::fs::read_to_string(dir.join(format!("{module}.rs"))).unwrap();
        assert!(file.contains("impl MigrationTrait for Migration"));
        assert!(
            generate(&dir, "add_photo_rating", now).is_err(),
            "same name twice"
        );
        assert!(generate(&dir, "Bad Name", now).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}

//! Developer tooling for the schema: read a live schema back from the database
//! ([`inspect`]), compare the schema the migrations build with the one the entities declare
//! ([`drift`], [`diff`]), and write the migration between them ([`render`]).
//!
//! The commands (`cargo run -p schema -- check`, `... generate NAME --autogenerate`) are in
//! [`commands`]. Nothing here runs in the server: `service` knows nothing of it.

pub mod commands;
pub mod declared;
pub mod diff;
pub mod inspect;
pub mod lint;
pub mod plan;
pub mod render;

pub use declared::{Declared, create_tables_from_entities};
pub use diff::{autogenerate, drift};
pub use inspect::{SchemaDescription, inspect};
pub use plan::{Plan, summary};

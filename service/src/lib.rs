//! Business logic and the database layer of the AI Story Creator. Nothing here knows HTTP.

pub mod auth;
pub mod db;
pub mod error;
pub mod images;
pub mod photos;
pub mod queue;
pub mod schema;
pub mod storage;
pub mod unit_of_work;
pub mod users;

pub use db::{
    DbError, close_db_connection, create_database_tables, init_db, verify_database_connection,
};
pub use error::ServiceError;
pub use unit_of_work::{StatementObserver, UnitOfWork, get_db, observe_statements};

pub use sea_orm;
pub use settings;

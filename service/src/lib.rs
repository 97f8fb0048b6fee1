//! Business logic and the database layer of the AI Story Creator. Nothing here knows HTTP.

pub mod auth;
pub mod db;
pub mod error;
pub mod images;
pub mod objects;
mod paging;
pub mod photos;
pub mod queue;
pub mod reads;
pub mod storage;
pub mod stories;
pub mod unit_of_work;
pub mod users;
pub mod worker;

pub use db::{DbError, close_db_connection, verify_database_connection};
pub use error::ServiceError;
pub use reads::ReadPool;
pub use unit_of_work::{StatementObserver, UnitOfWork, get_db, observe_statements};

pub use sea_orm;
pub use settings;

/// The handlers of every job kind the application queues.
pub fn job_handlers(
    storage: &storage::Storage,
    provider: std::sync::Arc<dyn stories::StoryProvider>,
    workers: &settings::WorkerSettings,
) -> worker::Registry {
    let mut registry = worker::Registry::new()
        .with(stories::GenerateStory {
            storage: storage.clone(),
            provider,
        })
        .with(objects::DeleteObjects {
            storage: storage.clone(),
        });
    if let Some(path) = &workers.count_file {
        registry = registry.with(worker::CountRuns { path: path.into() });
    }
    registry
}

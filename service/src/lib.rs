//! Business logic and the database layer of the AI Story Creator. Nothing here knows HTTP.

pub mod auth;
pub mod db;
pub mod domain;
pub mod error;
pub mod images;
pub mod metrics;
mod observe;
mod paging;
pub mod photos;
pub mod queue;
pub mod reads;
mod statements;
pub mod storage;
pub mod stories;
pub mod unit_of_work;
pub mod users;
pub mod worker;

pub use db::{DbError, close_db_connection, verify_database_connection};
pub use error::ServiceError;
pub use observe::{Instruments, StatementObserver, instrument, observe_statements};
pub use reads::{HotReads, ReadPool};
pub use unit_of_work::{UnitOfWork, get_db};

pub use sea_orm;
pub use settings;

/// Every job kind the application queues, with what each runs with (`images` bounds the
/// thumbnails' decoding); the sweep of abandoned
/// uploads and the pruning of old throttling rows are kept scheduled.
pub fn job_handlers(
    storage: &storage::Storage,
    provider: std::sync::Arc<dyn stories::StoryProvider>,
    images: images::ImageLimits,
    workers: &settings::WorkerSettings,
) -> Result<worker::Registry, ServiceError> {
    let registry = worker::Registry::new()
        .register::<stories::GenerateStory>(stories::StoryJobs {
            storage: storage.clone(),
            provider,
        })
        .register::<storage::DeleteObjects>(storage.clone())
        .register::<photos::thumbnails::MakeThumbnails>(photos::thumbnails::ThumbnailJobs {
            storage: storage.clone(),
            limits: images,
        })
        .every(
            photos::sweep::SWEEP_EVERY,
            &photos::sweep::SweepPending::default(),
            (),
        )?
        .every(
            auth::throttle::PRUNE_EVERY,
            &auth::throttle::PruneThrottleEvents::default(),
            (),
        )?;
    #[cfg(feature = "diagnostics")]
    let registry = match &workers.count_file {
        Some(path) => registry.register::<worker::CountRun>(path.into()),
        None => registry,
    };
    #[cfg(not(feature = "diagnostics"))]
    if workers.count_file.is_some() {
        tracing::warn!(
            "AISTORY_WORKER_COUNT_FILE is set, but this build has no diagnostic jobs (cargo \
             feature `diagnostics`): ignored"
        );
    }
    Ok(registry)
}

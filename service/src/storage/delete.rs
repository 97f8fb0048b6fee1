//! No orphan objects: deleting rows queues the deletion of their objects in the same
//! transaction ([`DeleteObjects`]), retried until the store confirms.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::Storage;
use crate::worker::{BackgroundJob, JobContext, JobError};

/// The job that deletes objects: single keys, and everything under prefixes. Deleting a
/// missing object succeeds, so a rerun is harmless.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeleteObjects {
    #[serde(default)]
    pub keys: Vec<String>,
    #[serde(default)]
    pub prefixes: Vec<String>,
}

#[async_trait]
impl BackgroundJob for DeleteObjects {
    const KIND: &'static str = "objects.delete";
    /// The backoff grows to 10 minutes: days of tries before a deletion is given up.
    const MAX_ATTEMPTS: i32 = 500;
    type Context = Storage;

    async fn run(&self, storage: &Storage, _job: &JobContext<'_>) -> Result<(), JobError> {
        let mut keys = self.keys.clone();
        for prefix in &self.prefixes {
            let listed = storage
                .list(prefix)
                .await
                .map_err(|error| JobError::Retry(format!("listing {prefix} failed: {error}")))?;
            keys.extend(listed);
        }
        for key in keys {
            storage
                .delete(&key)
                .await
                .map_err(|error| JobError::Retry(format!("deleting {key} failed: {error}")))?;
        }
        Ok(())
    }
}

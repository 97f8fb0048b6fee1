//! Following a photo while its story is written: the photo now, then each change, until it
//! settles (what `/photos/{id}/events` streams).

use std::time::Duration;

use entity::photo;
use entity::photo_status::PhotoStatus;
use futures_util::Stream;
use sea_orm::ConnectionTrait;
use tokio::sync::watch;
use tokio::time::Instant;

use super::get_photo;
use crate::ServiceError;

/// What a watcher sees.
#[derive(Debug)]
pub enum PhotoChange {
    /// The photo, first as it is now, then after each change of status or error. `last`: it
    /// is no longer `processing`, so nothing changes it without its owner acting: the end.
    Status {
        photo: Box<photo::Model>,
        last: bool,
    },
    /// The photo was deleted: the end.
    Deleted,
    /// Nothing changed for a while (a keep-alive is due).
    Quiet,
    /// The photo could not be read just now (a database blip); looking again.
    Waiting,
}

/// How often and how long to look.
#[derive(Debug, Clone, Copy)]
pub struct WatchTiming {
    /// Between two reads of the photo.
    pub poll: Duration,
    /// Longest silence before a [`PhotoChange::Quiet`].
    pub keepalive: Duration,
    /// Longest watch; the watcher comes back if it wants more.
    pub max: Duration,
}

struct Watcher<C> {
    db: C,
    user_id: i64,
    photo_id: i64,
    timing: WatchTiming,
    stop: watch::Receiver<bool>,
    last: Option<(PhotoStatus, Option<String>)>,
    last_said: Instant,
    started: Instant,
    done: bool,
}

/// Follows one of the user's photos (see [`PhotoChange`]) until it settles or is deleted,
/// `timing.max` passes, or `stop` turns true (shutdown). Check first that the photo is the
/// user's: a missing photo is a single [`PhotoChange::Deleted`].
pub fn watch<C: ConnectionTrait + Clone + Send + 'static>(
    db: &C,
    user_id: i64,
    photo_id: i64,
    timing: WatchTiming,
    stop: watch::Receiver<bool>,
) -> impl Stream<Item = PhotoChange> + use<C> {
    let now = Instant::now();
    let start = Watcher {
        db: db.clone(),
        user_id,
        photo_id,
        timing,
        stop,
        last: None,
        last_said: now,
        started: now,
        done: false,
    };
    futures_util::stream::unfold(start, |mut watcher| async move {
        let change = watcher.next().await?;
        Some((change, watcher))
    })
}

impl<C: ConnectionTrait> Watcher<C> {
    async fn next(&mut self) -> Option<PhotoChange> {
        if self.done {
            return None;
        }
        let mut first = self.last.is_none();
        loop {
            if !first {
                tokio::time::sleep(self.timing.poll).await;
            }
            first = false;
            if self.started.elapsed() > self.timing.max || *self.stop.borrow() {
                return None;
            }
            let photo = match get_photo(&self.db, self.user_id, self.photo_id).await {
                Ok(photo) => photo,
                Err(ServiceError::NotFound { .. }) => {
                    self.done = true;
                    return Some(PhotoChange::Deleted);
                }
                Err(error) => {
                    tracing::warn!(%error, "watching a photo: it could not be read");
                    if let Some(waiting) = self.quiet(PhotoChange::Waiting) {
                        return Some(waiting);
                    }
                    continue;
                }
            };
            let now = (photo.status, photo.error.clone());
            if self.last.as_ref() != Some(&now) {
                // Only a story being written changes the photo without its owner acting.
                self.done = photo.status != PhotoStatus::Processing;
                self.last = Some(now);
                self.last_said = Instant::now();
                return Some(PhotoChange::Status {
                    photo: Box::new(photo),
                    last: self.done,
                });
            }
            if let Some(quiet) = self.quiet(PhotoChange::Quiet) {
                return Some(quiet);
            }
        }
    }

    /// `change` when nothing was said for the keep-alive time.
    fn quiet(&mut self, change: PhotoChange) -> Option<PhotoChange> {
        if self.last_said.elapsed() < self.timing.keepalive {
            return None;
        }
        self.last_said = Instant::now();
        Some(change)
    }
}

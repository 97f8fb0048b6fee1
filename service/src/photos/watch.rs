//! Following a photo while its story is written: the photo now, then each change, until it
//! settles (what `/photos/{id}/events` streams).

use std::time::Duration;

use entity::photo;
use futures_util::Stream;
use sea_orm::ConnectionTrait;
use tokio::sync::watch;
use tokio::time::Instant;

use super::changes::{PhotoChanges, Subscription};
use crate::ServiceError;

/// What a watcher sees.
#[derive(Debug)]
pub enum PhotoChange {
    /// The photo: first as it is now (unless the watcher already has this version), then after
    /// each change (its status, error, title...).
    Status { photo: Box<photo::Model> },
    /// The photo was deleted: the end.
    Deleted,
    /// Nothing changed for a while (a keep-alive is due).
    Quiet,
    /// The photo could not be read just now (a database blip); looking again.
    Waiting,
}

/// How long to wait and how long to watch.
#[derive(Debug, Clone, Copy)]
pub struct WatchTiming {
    /// After a failed read, before the next.
    pub retry: Duration,
    /// Longest silence before a [`PhotoChange::Quiet`].
    pub keepalive: Duration,
    /// Longest watch; the watcher comes back if it wants more.
    pub max: Duration,
}

/// A photo's version: what a watcher that has seen it says when it comes back (the event id
/// of `/photos/{id}/events`, echoed in `Last-Event-ID`). It changes with every write of the
/// photo (`updated_at`) and with its status.
pub fn version(photo: &photo::Model) -> String {
    format!("{}-{}", photo.updated_at.timestamp_micros(), photo.status)
}

struct Watcher<C> {
    db: C,
    changes: Subscription,
    user: crate::auth::TokenUser,
    photo_id: i64,
    timing: WatchTiming,
    stop: watch::Receiver<bool>,
    /// The version the watcher has (from `Last-Event-ID`, then each one sent).
    seen: Option<String>,
    /// Whether the next wait is for a change (else: a read failed, retry after a while).
    wait_for_change: bool,
    looked: bool,
    last_said: Instant,
    started: Instant,
    done: bool,
}

/// Follows one of the user's photos (see [`PhotoChange`]), reading it when `changes` says it
/// may have changed (never while nothing happens: [`super::changes`]), until it is deleted, `timing.max`
/// passes, `stop` turns true (shutdown), or the watcher's session ends (its token generation
/// is no longer the account's: the stream ends without another event). `seen`: the version the watcher already has (it
/// gets the photo at once only when it changed since). Check first that the photo is the
/// user's: a missing photo is a single [`PhotoChange::Deleted`].
pub fn watch<C: ConnectionTrait + Clone + Send + 'static>(
    db: &C,
    changes: &PhotoChanges,
    user: crate::auth::TokenUser,
    photo_id: i64,
    timing: WatchTiming,
    stop: watch::Receiver<bool>,
    seen: Option<String>,
) -> impl Stream<Item = PhotoChange> + use<C> {
    let now = Instant::now();
    let start = Watcher {
        db: db.clone(),
        // Subscribed before the first read: a change after it wakes the watcher.
        changes: changes.subscribe(photo_id, user.user_id),
        user,
        photo_id,
        timing,
        stop,
        seen,
        wait_for_change: true,
        looked: false,
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
        loop {
            if self.looked {
                let mut stop = self.stop.clone();
                let keepalive_due = self.last_said + self.timing.keepalive;
                let end = self.started + self.timing.max;
                let changed = if self.wait_for_change {
                    tokio::select! {
                        () = self.changes.changed() => true,
                        () = tokio::time::sleep_until(keepalive_due.min(end)) => false,
                        _ = stop.wait_for(|stop| *stop) => false,
                    }
                } else {
                    tokio::select! {
                        () = tokio::time::sleep(self.timing.retry) => true,
                        _ = stop.wait_for(|stop| *stop) => false,
                    }
                };
                if self.started.elapsed() >= self.timing.max || *self.stop.borrow() {
                    return None;
                }
                if !changed {
                    // Nothing happened: a keep-alive, without reading anything.
                    if let Some(quiet) = self.quiet(PhotoChange::Quiet) {
                        return Some(quiet);
                    }
                    continue;
                }
            }
            self.looked = true;
            self.wait_for_change = true;
            if self.started.elapsed() > self.timing.max || *self.stop.borrow() {
                return None;
            }
            let photo = match self.look().await {
                Ok(Some(photo)) => photo,
                Ok(None) => {
                    self.done = true;
                    return None;
                }
                Err(ServiceError::NotFound { .. }) => {
                    self.done = true;
                    return Some(PhotoChange::Deleted);
                }
                Err(error) => {
                    tracing::warn!(%error, "watching a photo: it could not be read");
                    self.wait_for_change = false;
                    if let Some(waiting) = self.quiet(PhotoChange::Waiting) {
                        return Some(waiting);
                    }
                    continue;
                }
            };
            let now = version(&photo);
            if self.seen.as_deref() != Some(now.as_str()) {
                self.seen = Some(now);
                self.last_said = Instant::now();
                return Some(PhotoChange::Status {
                    photo: Box::new(photo),
                });
            }
            if let Some(quiet) = self.quiet(PhotoChange::Quiet) {
                return Some(quiet);
            }
        }
    }

    /// The photo and, in the same statement, its owner's token generation: `None` when the
    /// watcher's session has ended.
    async fn look(&self) -> Result<Option<photo::Model>, ServiceError> {
        use sea_orm::EntityTrait;
        let found = match self.changes.look().await {
            // Read with every other stream's look of the moment (one statement for all).
            Some(Ok(found)) => found,
            Some(Err(error)) => {
                return Err(ServiceError::Unexpected(anyhow::anyhow!(
                    "reading the watched photo: {error}"
                )));
            }
            None => photo::Entity::find_by_id(self.photo_id)
                .find_also_related(entity::user::Entity)
                .one(&self.db)
                .await?
                .map(|(photo, owner)| (photo, owner.map(|owner| owner.token_generation))),
        };
        // Another user's photo is none of this watcher's business: as if it were gone.
        let found = found.filter(|(photo, _)| photo.user_id == self.user.user_id);
        match found {
            None => Err(ServiceError::NotFound { what: "photo" }),
            Some((_, Some(generation))) if generation != self.user.generation => Ok(None),
            Some((photo, _)) => {
                self.changes.saw(&photo, self.user.generation);
                Ok(Some(photo))
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

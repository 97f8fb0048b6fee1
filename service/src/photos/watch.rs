//! Following a photo while its story is written: the photo now, then each change, until it
//! settles (what `/photos/{id}/events` streams).

use std::time::Duration;

use entity::photo;
use entity::photo_status::PhotoStatus;
use futures_util::Stream;
use sea_orm::ConnectionTrait;
use tokio::sync::watch;
use tokio::time::Instant;

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

/// How often and how long to look.
#[derive(Debug, Clone, Copy)]
pub struct WatchTiming {
    /// Between two reads of a photo whose story is being written (`processing`).
    pub poll_busy: Duration,
    /// Between two reads of a photo in any other status (it changes when its owner acts).
    pub poll_idle: Duration,
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
    user: crate::auth::TokenUser,
    photo_id: i64,
    timing: WatchTiming,
    stop: watch::Receiver<bool>,
    /// The version the watcher has (from `Last-Event-ID`, then each one sent).
    seen: Option<String>,
    busy: bool,
    looked: bool,
    last_said: Instant,
    started: Instant,
    done: bool,
}

/// Follows one of the user's photos (see [`PhotoChange`]) until it is deleted, `timing.max`
/// passes, `stop` turns true (shutdown), or the watcher's session ends (its token generation
/// is no longer the account's: the stream ends without another event). `seen`: the version the watcher already has (it
/// gets the photo at once only when it changed since). Check first that the photo is the
/// user's: a missing photo is a single [`PhotoChange::Deleted`].
pub fn watch<C: ConnectionTrait + Clone + Send + 'static>(
    db: &C,
    user: crate::auth::TokenUser,
    photo_id: i64,
    timing: WatchTiming,
    stop: watch::Receiver<bool>,
    seen: Option<String>,
) -> impl Stream<Item = PhotoChange> + use<C> {
    let now = Instant::now();
    let start = Watcher {
        db: db.clone(),
        user,
        photo_id,
        timing,
        stop,
        seen,
        busy: false,
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
                let poll = if self.busy {
                    self.timing.poll_busy
                } else {
                    self.timing.poll_idle
                };
                let mut stop = self.stop.clone();
                tokio::select! {
                    () = tokio::time::sleep(poll) => {}
                    _ = stop.wait_for(|stop| *stop) => {}
                }
            }
            self.looked = true;
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
                    if let Some(waiting) = self.quiet(PhotoChange::Waiting) {
                        return Some(waiting);
                    }
                    continue;
                }
            };
            self.busy = photo.status == PhotoStatus::Processing;
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
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let found = photo::Entity::find_by_id(self.photo_id)
            .filter(photo::Column::UserId.eq(self.user.user_id))
            .find_also_related(entity::user::Entity)
            .one(&self.db)
            .await?;
        match found {
            None => Err(ServiceError::NotFound { what: "photo" }),
            Some((_, Some(owner))) if owner.token_generation != self.user.generation => Ok(None),
            Some((photo, _)) => Ok(Some(photo)),
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

//! Who is told when a watched photo changes: one [`PhotoChanges`] per API process, which every
//! open event stream subscribes to, so that an idle stream costs the database nothing.
//!
//! - **PostgreSQL**: triggers (migration `m20261201_153000_photo_change_notify`) send
//!   `NOTIFY aistory_photos` from every transaction that updates or deletes a photo (`p:{id}`)
//!   or ends an account's sessions (`u:{id}`), delivered at commit. One connection per process
//!   `LISTEN`s (`application_name` `aistory-listen`) and wakes the streams concerned. When
//!   that connection is lost, every stream is woken once it listens again (each looks at its
//!   photo: whatever changed meanwhile is caught up), and again after each reconnection.
//! - **SQLite, MySQL**: one poller per process reads the version of every watched photo (and
//!   its owner's token generation) in one statement every [`POLL_EVERY`] while anything is
//!   watched, and wakes the streams whose photo changed or disappeared.
//!
//! A woken stream reads its photo through [`PhotoChanges::look`], which reads the photos of
//! every stream waiting at that moment in one statement (a burst of 1,000 changes is a few
//! statements, not 1,000), and says what changed, if anything.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use entity::photo;
use entity::photo_status::PhotoStatus;
use sea_orm::{ColumnTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter, QuerySelect};
use tokio::sync::watch;

/// The channel the triggers notify.
pub const CHANNEL: &str = "aistory_photos";
/// The listening connection's name in `pg_stat_activity`.
pub const LISTENER_NAME: &str = "aistory-listen";
/// After this long without a notification the listening connection is checked (`SELECT 1`).
const HEARTBEAT: Duration = Duration::from_secs(30);
/// How long that check may take before the connection is taken for dead.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the poller (SQLite, MySQL) looks while photos are watched.
pub const POLL_EVERY: Duration = Duration::from_millis(250);
/// At most this many ids in one poll statement.
const POLL_CHUNK: usize = 500;

/// A photo's state as far as a stream cares: `updated_at` (microseconds), status, and its
/// owner's token generation.
type Seen = (i64, PhotoStatus, i32);

struct Entry {
    user_id: i64,
    /// Bumped on every change; subscribers wait for it to move.
    sender: watch::Sender<u64>,
    subscribers: usize,
    /// The photo's state as last seen by the poller or told by a subscriber (`None`: not yet).
    seen: Option<Seen>,
}

#[derive(Default)]
struct Hub {
    entries: Mutex<HashMap<i64, Entry>>,
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn wake(entry: &Entry) {
        entry
            .sender
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    fn photo(&self, photo_id: i64) {
        if let Some(entry) = self.lock().get(&photo_id) {
            Hub::wake(entry);
        }
    }

    fn user(&self, user_id: i64) {
        for entry in self
            .lock()
            .values()
            .filter(|entry| entry.user_id == user_id)
        {
            Hub::wake(entry);
        }
    }

    fn all(&self) {
        for entry in self.lock().values() {
            Hub::wake(entry);
        }
    }
}

/// The process's photo watch: cheap to clone.
#[derive(Clone)]
pub struct PhotoChanges {
    hub: Arc<Hub>,
    /// Where [`Self::look`] sends its reads (`None`: each look reads on its own).
    reader: Option<tokio::sync::mpsc::UnboundedSender<Look>>,
}

/// A photo and its owner's token generation, as one look found them (`None`: no such photo).
pub type Found = Option<(photo::Model, Option<i32>)>;

/// One look waiting for the reader.
struct Look {
    photo_id: i64,
    reply: tokio::sync::oneshot::Sender<Result<Found, String>>,
}

/// At most this many photos in one read of [`read_looks`].
const LOOK_CHUNK: usize = 500;

/// Reads the photos of every look waiting, in one statement per [`LOOK_CHUNK`], until the
/// sending side is gone.
async fn read_looks(reads: crate::ReadPool, mut looks: tokio::sync::mpsc::UnboundedReceiver<Look>) {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    while let Some(first) = looks.recv().await {
        let mut batch = vec![first];
        while batch.len() < LOOK_CHUNK {
            match looks.try_recv() {
                Ok(look) => batch.push(look),
                Err(_) => break,
            }
        }
        let mut ids: Vec<i64> = batch.iter().map(|look| look.photo_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let rows = photo::Entity::find()
            .filter(photo::Column::Id.is_in(ids))
            .find_also_related(entity::user::Entity)
            .all(&reads)
            .await;
        match rows {
            Ok(rows) => {
                let found: HashMap<i64, (photo::Model, Option<i32>)> = rows
                    .into_iter()
                    .map(|(photo, owner)| {
                        (photo.id, (photo, owner.map(|owner| owner.token_generation)))
                    })
                    .collect();
                for look in batch {
                    let _ = look.reply.send(Ok(found.get(&look.photo_id).cloned()));
                }
            }
            Err(error) => {
                let error = error.to_string();
                for look in batch {
                    let _ = look.reply.send(Err(error.clone()));
                }
            }
        }
    }
}

/// A stream's subscription to one photo; ends when dropped.
pub struct Subscription {
    hub: Arc<Hub>,
    photo_id: i64,
    receiver: watch::Receiver<u64>,
    reader: Option<tokio::sync::mpsc::UnboundedSender<Look>>,
}

impl Subscription {
    /// The photo and its owner's token generation, read together with the looks of every
    /// other stream waiting now (one statement for all). `None` when this watch has no reader
    /// (the caller reads on its own); `Err` when the read failed (why; try again later).
    pub async fn look(&self) -> Option<Result<Found, String>> {
        let reader = self.reader.as_ref()?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let look = Look {
            photo_id: self.photo_id,
            reply,
        };
        if reader.send(look).is_err() {
            return Some(Err("the photo reader has stopped".to_owned()));
        }
        Some(
            answer
                .await
                .unwrap_or_else(|_| Err("the photo reader has stopped".to_owned())),
        )
    }

    /// Tells the poller what the subscriber has just read, so that it wakes the subscribers
    /// only when the photo differs from it. When it differs from what was known before (read
    /// by another subscriber or by the poller) and others watch it too, every subscriber of the
    /// photo is woken: one of them may still be at the older state, and the poller will not see
    /// a change any more.
    pub fn saw(&self, photo: &photo::Model, generation: i32) {
        if let Some(entry) = self.hub.lock().get_mut(&self.photo_id) {
            let now = Some((
                photo.updated_at.timestamp_micros(),
                photo.status,
                generation,
            ));
            // Alone, nobody can be behind (and waking would read the photo again for nothing).
            if entry.subscribers > 1 && entry.seen.is_some() && entry.seen != now {
                Hub::wake(entry);
            }
            entry.seen = now;
        }
    }

    /// Waits until the photo (or its owner's sessions) may have changed since the last call
    /// (or since the subscription began).
    pub async fn changed(&mut self) {
        if self.receiver.changed().await.is_err() {
            // The sender lives as long as a subscription does: never; wait for nothing.
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut entries = self.hub.lock();
        if let Some(entry) = entries.get_mut(&self.photo_id) {
            entry.subscribers = entry.subscribers.saturating_sub(1);
            if entry.subscribers == 0 {
                entries.remove(&self.photo_id);
            }
        }
    }
}

impl PhotoChanges {
    /// A watch nothing drives (tests of the streams' own logic; [`Self::start`] for the real
    /// one).
    pub fn idle() -> PhotoChanges {
        PhotoChanges {
            hub: Arc::new(Hub::default()),
            reader: None,
        }
    }

    /// The watch of `db`: a listener on PostgreSQL (`url` is the database URL), a poller
    /// otherwise; either runs until `stop` turns true. Looks read on `reads`. Call from within
    /// a Tokio runtime.
    pub fn start(
        db: &DatabaseConnection,
        reads: &crate::ReadPool,
        url: &str,
        stop: watch::Receiver<bool>,
    ) -> PhotoChanges {
        let (reader, looks) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(read_looks(reads.clone(), looks));
        let changes = PhotoChanges {
            hub: Arc::new(Hub::default()),
            reader: Some(reader),
        };
        let hub = changes.hub.clone();
        match db.get_database_backend() {
            DbBackend::Postgres => {
                tokio::spawn(listen(hub, url.to_owned(), stop));
            }
            _ => {
                tokio::spawn(poll(hub, db.clone(), stop));
            }
        }
        changes
    }

    /// Subscribes to photo `photo_id` of user `user_id`.
    pub fn subscribe(&self, photo_id: i64, user_id: i64) -> Subscription {
        let mut entries = self.hub.lock();
        let entry = entries.entry(photo_id).or_insert_with(|| Entry {
            user_id,
            sender: watch::Sender::new(0),
            subscribers: 0,
            seen: None,
        });
        entry.subscribers += 1;
        let receiver = entry.sender.subscribe();
        Subscription {
            hub: self.hub.clone(),
            photo_id,
            receiver,
            reader: self.reader.clone(),
        }
    }

    /// How many photos are watched now.
    pub fn watched(&self) -> usize {
        self.hub.lock().len()
    }
}

/// Holds the `LISTEN` connection, checked every [`HEARTBEAT`] of silence; reconnects (after
/// 1 s, doubling to 30 s while it keeps failing) when it fails, and wakes every stream each
/// time it listens again.
async fn listen(hub: Arc<Hub>, url: String, mut stop: watch::Receiver<bool>) {
    use sea_orm::sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
    let mut backoff = Duration::from_secs(1);
    loop {
        let connected = async {
            let options: PgConnectOptions = url.parse()?;
            let options = match options.get_application_name() {
                Some(_) => options,
                None => options.application_name(LISTENER_NAME),
            };
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .max_lifetime(None)
                .idle_timeout(None)
                .connect_with(options)
                .await?;
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.ignore_pool_close_event(true);
            listener.listen(CHANNEL).await?;
            Ok::<_, sea_orm::sqlx::Error>(listener)
        };
        let connected = tokio::select! {
            connected = connected => connected,
            _ = stop.wait_for(|stop| *stop) => return,
        };
        let mut listener = match connected {
            Ok(listener) => {
                backoff = Duration::from_secs(1);
                listener
            }
            Err(error) => {
                tracing::warn!(%error, retry_in = ?backoff, "photo changes: cannot listen");
                crate::metrics::photo_changes_interrupted("connect_failed");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = stop.wait_for(|stop| *stop) => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        // Whatever changed before this LISTEN is caught up by each stream's own look.
        if !hub.lock().is_empty() {
            crate::metrics::photo_changes_interrupted("connected");
        }
        hub.all();
        loop {
            // A quiet connection is checked every HEARTBEAT: a half-open one (a NAT or a
            // failover that dropped it silently) would otherwise wait for ever.
            let received = tokio::select! {
                received = listener.try_recv() => Some(received),
                () = tokio::time::sleep(HEARTBEAT) => None,
                _ = stop.wait_for(|stop| *stop) => return,
            };
            let failure = match received {
                Some(Ok(Some(notification))) => {
                    dispatch(&hub, notification.payload());
                    continue;
                }
                // Lost and already listening again (sqlx reconnects at once): catch up.
                Some(Ok(None)) => {
                    tracing::warn!(
                        "photo changes: the listening connection was lost; listening again"
                    );
                    crate::metrics::photo_changes_interrupted("reconnected");
                    hub.all();
                    continue;
                }
                Some(Err(error)) => error.to_string(),
                None => {
                    let ping = sea_orm::sqlx::query("SELECT 1").execute(&mut listener);
                    match tokio::time::timeout(HEARTBEAT_TIMEOUT, ping).await {
                        Ok(Ok(_)) => continue,
                        Ok(Err(error)) => error.to_string(),
                        Err(_) => format!("no answer within {HEARTBEAT_TIMEOUT:?}"),
                    }
                }
            };
            tracing::warn!(error = %failure, retry_in = ?backoff, "photo changes: listening failed; connecting again");
            crate::metrics::photo_changes_interrupted("listen_failed");
            break;
        }
        // Connecting again right away would hammer a server that just failed: the same backoff
        // as a failed connection (reset once listening works).
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

fn dispatch(hub: &Hub, payload: &str) {
    match payload.split_once(':') {
        Some(("p", id)) => match id.parse() {
            Ok(id) => hub.photo(id),
            Err(_) => hub.all(),
        },
        Some(("u", id)) => match id.parse() {
            Ok(id) => hub.user(id),
            Err(_) => hub.all(),
        },
        _ => hub.all(),
    }
}

/// A watched photo as the poller reads it: id, `updated_at`, status, owner's token generation.
type PolledRow = (i64, chrono::DateTime<chrono::Utc>, PhotoStatus, i32);

/// The poller of SQLite and MySQL: one statement per [`POLL_EVERY`] (per 500 photos) while
/// anything is watched, none otherwise.
async fn poll(hub: Arc<Hub>, db: DatabaseConnection, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(POLL_EVERY) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        let ids: Vec<i64> = hub.lock().keys().copied().collect();
        for chunk in ids.chunks(POLL_CHUNK) {
            let rows: Result<Vec<PolledRow>, _> = photo::Entity::find()
                .select_only()
                .column(photo::Column::Id)
                .column(photo::Column::UpdatedAt)
                .column(photo::Column::Status)
                .column_as(entity::user::Column::TokenGeneration, "generation")
                .inner_join(entity::user::Entity)
                .filter(photo::Column::Id.is_in(chunk.iter().copied()))
                .into_tuple()
                .all(&db)
                .await;
            let rows = match rows {
                Ok(rows) => rows,
                Err(error) => {
                    // The streams wait for the next round (nothing was missed: the next read
                    // compares with what was seen before).
                    tracing::warn!(%error, "photo changes: polling failed; trying again");
                    crate::metrics::photo_changes_interrupted("poll_failed");
                    continue;
                }
            };
            let found: HashMap<i64, Seen> = rows
                .into_iter()
                .map(|(id, updated_at, status, generation)| {
                    (id, (updated_at.timestamp_micros(), status, generation))
                })
                .collect();
            let mut entries = hub.lock();
            for id in chunk {
                let Some(entry) = entries.get_mut(id) else {
                    continue;
                };
                match found.get(id) {
                    Some(now) if entry.seen.as_ref() == Some(now) => {}
                    Some(now) => {
                        entry.seen = Some(*now);
                        Hub::wake(entry);
                    }
                    // Gone (or no longer its owner's): the stream looks and ends.
                    None => Hub::wake(entry),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_subscriber_is_woken_by_its_photo_its_owner_or_everything() {
        let changes = PhotoChanges::idle();
        let mut first = changes.subscribe(1, 10);
        let mut second = changes.subscribe(2, 20);
        let woken =
            |subscription: &mut Subscription| subscription.receiver.has_changed().unwrap_or(false);
        dispatch(&changes.hub, "p:1");
        assert!(woken(&mut first) && !woken(&mut second));
        first.changed().await;
        dispatch(&changes.hub, "u:20");
        assert!(!woken(&mut first) && woken(&mut second));
        second.changed().await;
        dispatch(&changes.hub, "garbage");
        assert!(woken(&mut first) && woken(&mut second));
        assert_eq!(changes.watched(), 2);
        drop(first);
        assert_eq!(changes.watched(), 1);
        let again = changes.subscribe(2, 20);
        drop(second);
        assert_eq!(changes.watched(), 1, "one subscriber left");
        drop(again);
        assert_eq!(changes.watched(), 0);
    }

    fn photo(updated_micros: i64, status: PhotoStatus) -> photo::Model {
        photo::Model {
            id: 1,
            user_id: 10,
            object_key: "k".to_owned(),
            status,
            title: None,
            content_type: None,
            size_bytes: None,
            width: None,
            height: None,
            checksum_sha256: None,
            taken_at: None,
            taken_at_local: None,
            error: None,
            thumbnail_status: entity::thumbnail_status::ThumbnailStatus::Pending,
            created_at: chrono::DateTime::from_timestamp_micros(0).unwrap_or_default(),
            updated_at: chrono::DateTime::from_timestamp_micros(updated_micros).unwrap_or_default(),
        }
    }

    /// A second stream that reads a newer state wakes the first (which the poller, now seeing
    /// that newer state as known, would not).
    #[tokio::test]
    async fn a_subscriber_that_reads_a_newer_state_wakes_the_others() {
        let changes = PhotoChanges::idle();
        let mut first = changes.subscribe(1, 10);
        first.saw(&photo(1, PhotoStatus::Processing), 0);
        assert!(!first.receiver.has_changed().unwrap_or(true));
        let second = changes.subscribe(1, 10);
        second.saw(&photo(1, PhotoStatus::Processing), 0);
        assert!(
            !first.receiver.has_changed().unwrap_or(true),
            "same state: nobody woken"
        );
        second.saw(&photo(2, PhotoStatus::Completed), 0);
        assert!(
            first.receiver.has_changed().unwrap_or(false),
            "newer state: first woken"
        );
        first.changed().await;
    }
}

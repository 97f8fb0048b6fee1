//! Throttling of password checks (logins and `current_password`) and of registrations,
//! counted in the database so that every API process sees the same counts.
//!
//! Every password check first writes a row to `throttle_events` (before the slow argon2
//! check, so that guesses sent in parallel, to one process or to several, are all counted),
//! then counts the recent rows of its account and of its client address:
//!
//! - **per account and address** (`AISTORY_LOGIN_MAX_FAILURES`, 5 per 15 minutes): past it,
//!   that address gets 429 for that account until the oldest failure leaves the window;
//! - **per address** (`AISTORY_LOGIN_MAX_FAILURES_PER_ADDRESS`, 50 per 15 minutes, whatever the
//!   account): 429 the same way;
//! - **per account** (every address): never a hard block. Past
//!   `AISTORY_LOGIN_FREE_FAILURES_PER_ACCOUNT` (10) failures in the window, each login must
//!   come at least 1 s, 2 s, 4 s ... (at most `AISTORY_LOGIN_MAX_DELAY_SECS`, 60 s) after the
//!   account's last failure, so many addresses together guess at most once per that delay.
//!   Spared: a login from an address the account logged in from within [`KEEP`] (a `known`
//!   row, written by each success), and every `current_password` check (the access token
//!   already says who asks): attackers who keep the delay running cannot keep the owner out
//!   where the owner has logged in before. From a new address during such an attack the
//!   owner competes with the attackers for one attempt per delay.
//!
//! An attempt that is refused takes its row back; a successful one removes its row and the
//! failures of its (account, address) pair. The account is the account's id (`user:{id}`), so
//! its username, its email and their case variants share one count; a name no account has
//! is counted as `name:{lower-case name}`, so an unknown name throttles like a known one and
//! the answers do not say which names exist.
//!
//! Refusals are decided after the row is written, against every row written before: of any
//! attempts that race, the one that counts last sees them all, so a limit is never exceeded,
//! only (while attempts race) reached a little early.
//!
//! Registrations count per address (`AISTORY_REGISTRATIONS_PER_HOUR`, 20 per hour).
//! [`PruneThrottleEvents`] removes rows older than [`KEEP`] every [`PRUNE_EVERY`].

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use entity::throttle_event;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use settings::ThrottleSettings;

use crate::ServiceError;
use crate::worker::{BackgroundJob, JobContext, JobError};

/// How long rows are kept: the longest window `AISTORY_LOGIN_WINDOW_SECS` allows (a day), so
/// a client address is kept at most a day.
pub const KEEP: Duration = Duration::from_secs(86_400);
/// How often old rows are pruned.
pub const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// The registrations window.
const REGISTRATION_WINDOW: Duration = Duration::from_secs(3600);
/// At most this many recent rows are read for one decision (the limits keep far fewer).
const READ_AT_MOST: u64 = 10_000;

/// What a row counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A login's password check.
    Login,
    /// A `current_password` check (changing the password or email, deleting the account).
    Password,
    /// A registration.
    Register,
    /// Not an attempt: the (account, address) pair logged in successfully. Such an address is
    /// spared the account's delays for [`KEEP`].
    Known,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Login => "login",
            Action::Password => "password",
            Action::Register => "register",
            Action::Known => "known",
        }
    }
}

/// Whose password is tried: an account, or a name no account has.
#[derive(Debug, Clone)]
pub enum Subject {
    Account(i64),
    UnknownName(String),
}

impl Subject {
    fn key(&self) -> String {
        match self {
            Subject::Account(id) => format!("user:{id}"),
            // The column holds 330 characters: "name:" and at most 320 of the name.
            Subject::UnknownName(name) => {
                format!(
                    "name:{}",
                    name.trim()
                        .to_lowercase()
                        .chars()
                        .take(320)
                        .collect::<String>()
                )
            }
        }
    }
}

/// A counted attempt; pass it to [`Throttle::succeeded`] when the password was right.
#[derive(Debug)]
#[must_use = "a successful attempt must be reported with Throttle::succeeded"]
pub struct Attempt {
    account: String,
    address: Option<String>,
}

/// The throttle: its limits (the counts are in the database).
#[derive(Debug, Clone)]
pub struct Throttle {
    limits: ThrottleSettings,
}

fn since(window: Duration) -> DateTime<Utc> {
    entity::timestamps::now() - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX)
}

/// Whole seconds (at least 1) until `at`.
fn seconds_until(at: DateTime<Utc>) -> u64 {
    let left = (at - entity::timestamps::now()).num_milliseconds().max(0) as u64;
    left.div_ceil(1000).max(1)
}

/// When the oldest rows have left the window so that at most `limit - 1` of `times` (sorted,
/// oldest first) remain: the moment one more is allowed.
fn frees_up(times: &[DateTime<Utc>], limit: u32, window: Duration) -> Option<DateTime<Utc>> {
    let limit = limit as usize;
    if times.len() < limit {
        return None;
    }
    let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
    times
        .get(times.len() - limit)
        .map(|oldest| *oldest + window)
}

impl Throttle {
    pub fn new(limits: ThrottleSettings) -> Self {
        Throttle { limits }
    }

    /// Counts a password check for `subject` from `address` (the client's address as the
    /// server trusts it; `None` when unknown: only the account's delays apply) and refuses it
    /// with `TooManyRequests` when a limit is reached. Writes on `db` outside any transaction:
    /// the row must stay when the request fails.
    pub async fn attempt<C: ConnectionTrait>(
        &self,
        db: &C,
        action: Action,
        subject: &Subject,
        address: Option<&str>,
    ) -> Result<Attempt, ServiceError> {
        let account = subject.key();
        let mine = insert(db, action, Some(&account), address).await?;
        let window_start = since(self.limits.window);
        let mut recent = throttle_event::Entity::find()
            .filter(
                throttle_event::Column::Action
                    .is_in([Action::Login.as_str(), Action::Password.as_str()]),
            )
            .filter(throttle_event::Column::CreatedAt.gt(window_start))
            .filter(match address {
                Some(address) => Condition::any()
                    .add(throttle_event::Column::Account.eq(account.as_str()))
                    .add(throttle_event::Column::Address.eq(address)),
                None => Condition::all().add(throttle_event::Column::Account.eq(account.as_str())),
            })
            // The newest rows when there are more than can be read (a limit is never above it).
            .order_by_desc(throttle_event::Column::CreatedAt)
            .limit(READ_AT_MOST)
            .all(db)
            .await?;
        recent.reverse();
        recent.retain(|row| row.id != mine.id);
        let times = |keep: &dyn Fn(&throttle_event::Model) -> bool| -> Vec<DateTime<Utc>> {
            recent
                .iter()
                .filter(|row| keep(row))
                .map(|row| row.created_at)
                .collect()
        };
        let mut wait_until: Option<DateTime<Utc>> = None;
        if let Some(address) = address {
            let pair = times(&|row| {
                row.account.as_deref() == Some(account.as_str())
                    && row.address.as_deref() == Some(address)
            });
            let from_address = times(&|row| row.address.as_deref() == Some(address));
            for (rows, limit) in [
                (pair, self.limits.max_failures_per_account_address),
                (from_address, self.limits.max_failures_per_address),
            ] {
                wait_until = wait_until.max(frees_up(&rows, limit, self.limits.window));
            }
        }
        let on_account = times(&|row| row.account.as_deref() == Some(account.as_str()));
        let free = self.limits.free_failures_per_account as usize;
        // The account's delays slow down guessing from many addresses. They spare a
        // `current_password` check (its access token already says who asks) and a login from
        // an address the account logged in from within [`KEEP`] (so that attackers who keep
        // the account's delay running cannot keep its owner out).
        if action == Action::Login
            && on_account.len() >= free
            && let Some(last) = on_account.last()
            && !known(db, &account, address).await?
        {
            let doublings = (on_account.len() - free).min(20) as u32;
            let delay = Duration::from_secs(1u64 << doublings).min(self.limits.max_delay);
            let allowed_at =
                *last + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
            if allowed_at > entity::timestamps::now() {
                wait_until = wait_until.max(Some(allowed_at));
            }
        }
        match wait_until {
            Some(at) if at > entity::timestamps::now() => {
                throttle_event::Entity::delete_by_id(mine.id)
                    .exec(db)
                    .await?;
                Err(ServiceError::TooManyRequests {
                    retry_after_secs: seconds_until(at),
                })
            }
            _ => Ok(Attempt {
                account,
                address: address.map(str::to_owned),
            }),
        }
    }

    /// The password was right: the failures of this (account, address) pair, this attempt's
    /// row included, no longer count. The account's failures from other addresses and the
    /// address's failures on other accounts still do.
    pub async fn succeeded<C: ConnectionTrait>(
        &self,
        db: &C,
        attempt: Attempt,
    ) -> Result<(), ServiceError> {
        let mut delete = throttle_event::Entity::delete_many()
            .filter(throttle_event::Column::Account.eq(attempt.account.as_str()))
            .filter(throttle_event::Column::Action.ne(Action::Register.as_str()));
        delete = match &attempt.address {
            Some(address) => delete.filter(throttle_event::Column::Address.eq(address.as_str())),
            None => delete.filter(throttle_event::Column::Address.is_null()),
        };
        delete.exec(db).await?;
        // Remembered (one row per pair, refreshed by each success) to spare this address the
        // account's delays.
        if attempt.address.is_some() {
            insert(
                db,
                Action::Known,
                Some(&attempt.account),
                attempt.address.as_deref(),
            )
            .await?;
        }
        Ok(())
    }

    /// Counts a registration from `address` and refuses it (429 with the limit named) past
    /// `AISTORY_REGISTRATIONS_PER_HOUR` for that address. Without an address, not counted.
    pub async fn register<C: ConnectionTrait>(
        &self,
        db: &C,
        address: Option<&str>,
    ) -> Result<(), ServiceError> {
        let Some(address) = address else {
            return Ok(());
        };
        let mine = insert(db, Action::Register, None, Some(address)).await?;
        let times: Vec<DateTime<Utc>> = throttle_event::Entity::find()
            .select_only()
            .column(throttle_event::Column::CreatedAt)
            .filter(throttle_event::Column::Action.eq(Action::Register.as_str()))
            .filter(throttle_event::Column::Address.eq(address))
            .filter(throttle_event::Column::CreatedAt.gt(since(REGISTRATION_WINDOW)))
            .filter(throttle_event::Column::Id.ne(mine.id))
            .order_by_desc(throttle_event::Column::CreatedAt)
            .limit(READ_AT_MOST)
            .into_tuple()
            .all(db)
            .await?;
        let times: Vec<DateTime<Utc>> = times.into_iter().rev().collect();
        let limit = self.limits.registrations_per_hour;
        match frees_up(&times, limit, REGISTRATION_WINDOW) {
            Some(at) if at > entity::timestamps::now() => {
                throttle_event::Entity::delete_by_id(mine.id)
                    .exec(db)
                    .await?;
                let retry_after_secs = seconds_until(at);
                Err(ServiceError::Quota {
                    detail: format!(
                        "at most {limit} accounts may be registered from one address per hour; \
                         the next one in {retry_after_secs} s"
                    ),
                    retry_after_secs: Some(retry_after_secs),
                })
            }
            _ => Ok(()),
        }
    }
}

/// Whether `account` logged in successfully from `address` within [`KEEP`].
async fn known<C: ConnectionTrait>(
    db: &C,
    account: &str,
    address: Option<&str>,
) -> Result<bool, ServiceError> {
    let Some(address) = address else {
        return Ok(false);
    };
    let found: Option<i64> = throttle_event::Entity::find()
        .select_only()
        .column(throttle_event::Column::Id)
        .filter(throttle_event::Column::Action.eq(Action::Known.as_str()))
        .filter(throttle_event::Column::Account.eq(account))
        .filter(throttle_event::Column::Address.eq(address))
        .filter(throttle_event::Column::CreatedAt.gt(since(KEEP)))
        .into_tuple()
        .one(db)
        .await?;
    Ok(found.is_some())
}

async fn insert<C: ConnectionTrait>(
    db: &C,
    action: Action,
    account: Option<&str>,
    address: Option<&str>,
) -> Result<throttle_event::Model, ServiceError> {
    Ok(throttle_event::ActiveModel {
        action: Set(action.as_str().to_owned()),
        account: Set(account.map(str::to_owned)),
        address: Set(address.map(str::to_owned)),
        ..Default::default()
    }
    .insert(db)
    .await?)
}

/// Removes rows older than `older_than`; returns how many.
pub async fn prune<C: ConnectionTrait>(db: &C, older_than: Duration) -> Result<u64, ServiceError> {
    let result = throttle_event::Entity::delete_many()
        .filter(throttle_event::Column::CreatedAt.lt(since(older_than)))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// The scheduled pruning of old throttling rows (every [`PRUNE_EVERY`]).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct PruneThrottleEvents {}

#[async_trait]
impl BackgroundJob for PruneThrottleEvents {
    const KIND: &'static str = "auth.prune_throttle_events";
    type Context = ();

    async fn run(&self, _context: &(), job: &JobContext<'_>) -> Result<(), JobError> {
        match prune(job.pool, KEEP).await? {
            0 => {}
            pruned => tracing::debug!(pruned, "pruned old throttling rows"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_700_000_000 + seconds, 0).unwrap_or_default()
    }

    #[test]
    fn a_limit_frees_up_when_enough_rows_leave_the_window() {
        let window = Duration::from_secs(100);
        let times = [at(0), at(10), at(20)];
        assert_eq!(frees_up(&times, 4, window), None);
        // Three rows, limit 3: one more is allowed once the oldest has left.
        assert_eq!(frees_up(&times, 3, window), Some(at(100)));
        // Limit 2: two must leave, so the second oldest decides.
        assert_eq!(frees_up(&times, 2, window), Some(at(110)));
        assert_eq!(frees_up(&times, 1, window), Some(at(120)));
    }

    #[test]
    fn unknown_names_are_counted_by_their_lower_case_form() {
        assert_eq!(
            Subject::UnknownName(" Nobody@Example.COM ".to_owned()).key(),
            "name:nobody@example.com"
        );
        assert_eq!(Subject::Account(7).key(), "user:7");
        let long = "x".repeat(1000);
        assert_eq!(Subject::UnknownName(long).key().chars().count(), 325);
    }
}

//! The per-request unit of work (the guide's `get_db`): one transaction, begun on first use,
//! committed or rolled back once by whoever owns the request.

use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr};

use crate::ReadPool;
use crate::observe::StatementObserver;
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

/// A request's database access, one way for each: [`Self::read`] for reads, [`Self::txn`]
/// for writes (the request's transaction). Cheap to create; opens no transaction until
/// [`Self::txn`].
pub struct UnitOfWork {
    pool: DatabaseConnection,
    reads: ReadPool,
    txn: Mutex<Option<DatabaseTransaction>>,
    observer: Option<StatementObserver>,
}

/// The guide's `get_db`: a fresh unit of work over the pool.
pub fn get_db(pool: &DatabaseConnection) -> UnitOfWork {
    UnitOfWork::new(pool.clone())
}

/// How a unit of work ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No transaction was begun: nothing to do.
    Untouched,
    Committed,
    RolledBack,
}

impl UnitOfWork {
    pub fn new(pool: DatabaseConnection) -> Self {
        UnitOfWork {
            reads: ReadPool::shared(&pool),
            pool,
            txn: Mutex::new(None),
            observer: None,
        }
    }

    /// Reads go to `reads` (connections of their own, see [`ReadPool`]).
    pub fn with_reads(mut self, reads: ReadPool) -> Self {
        self.reads = reads;
        self
    }

    /// Where reads that need not see this request's writes run.
    pub fn read(&self) -> &ReadPool {
        &self.reads
    }

    /// Reports `BEGIN`, `COMMIT` and `ROLLBACK` to `observer`.
    pub fn with_observer(mut self, observer: Option<StatementObserver>) -> Self {
        self.observer = observer;
        self
    }

    fn observe(&self, what: &str) {
        if let Some(observer) = &self.observer {
            observer(what);
        }
    }

    /// The request's transaction, begun on first call. Hold the guard only while using it.
    pub async fn txn(&self) -> Result<MappedMutexGuard<'_, DatabaseTransaction>, DbErr> {
        let mut slot = self.txn.lock().await;
        if slot.is_none() {
            self.observe("BEGIN");
            *slot = Some(crate::db::begin_write(&self.pool).await?);
        }
        MutexGuard::try_map(slot, Option::as_mut)
            .map_err(|_| DbErr::Custom("the transaction was not begun".to_owned()))
    }

    /// The pool itself, only for service operations that commit on their own, whatever the
    /// request's outcome: an upload's steps, a refresh-token rotation whose detected reuse
    /// must revoke even though the answer is 401.
    pub fn pool(&self) -> &DatabaseConnection {
        &self.pool
    }

    /// Whether a transaction has been begun (and not yet finished).
    pub async fn is_active(&self) -> bool {
        self.txn.lock().await.is_some()
    }

    /// Commits the transaction if one was begun. A failure is returned to the caller, who
    /// must not report success.
    pub async fn commit(&self) -> Result<Outcome, DbErr> {
        match self.txn.lock().await.take() {
            Some(txn) => {
                self.observe("COMMIT");
                txn.commit().await.map(|()| Outcome::Committed)
            }
            None => Ok(Outcome::Untouched),
        }
    }

    /// Rolls the transaction back if one was begun.
    pub async fn rollback(&self) -> Result<Outcome, DbErr> {
        match self.txn.lock().await.take() {
            Some(txn) => {
                self.observe("ROLLBACK");
                txn.rollback().await.map(|()| Outcome::RolledBack)
            }
            None => Ok(Outcome::Untouched),
        }
    }
}

//! The SQL text of the hottest reads (one photo, a page of photos, one account), built by
//! sea-query once per backend and shape instead of on every request: only the values change.
//! Each cached statement has a test that it is exactly what sea-query builds (text and values).

use std::sync::OnceLock;

use sea_orm::{DbBackend, QueryTrait, Statement, Value};

/// One statement's SQL text per backend, built on first use.
pub(crate) struct Cached([OnceLock<String>; 3]);

impl Cached {
    pub(crate) const fn new() -> Cached {
        Cached([OnceLock::new(), OnceLock::new(), OnceLock::new()])
    }

    /// The statement for `backend` with `values`: the text from the first `query` built here
    /// (`query` must always build the same text: the same shape, whatever its values).
    pub(crate) fn statement<Q: QueryTrait>(
        &self,
        backend: DbBackend,
        query: impl FnOnce() -> Q,
        values: Vec<Value>,
    ) -> Statement {
        let slot = match backend {
            DbBackend::MySql => 0,
            DbBackend::Postgres => 1,
            _ => 2,
        };
        let sql = self.0[slot].get_or_init(|| query().build(backend).sql);
        Statement::from_sql_and_values(backend, sql.clone(), values)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const BACKENDS: [DbBackend; 3] =
        [DbBackend::Postgres, DbBackend::MySql, DbBackend::Sqlite];

    /// `cached` (text from the cache, `values` by hand) is what sea-query builds for `fresh`.
    pub(crate) fn assert_same(cached: Statement, fresh: Statement) {
        assert_eq!(cached.sql, fresh.sql);
        assert_eq!(cached.values, fresh.values, "{}", fresh.sql);
    }
}

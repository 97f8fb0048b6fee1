//! The SQL text of the hottest reads (one photo, a page of photos, one account), built by
//! sea-query once per backend and shape instead of on every request: only the values change.
//! Each cached statement has a test that it is exactly what sea-query builds (text and values).
//! Their rows are decoded by position: a derived `FromQueryResult` finds each column by name
//! (a hash lookup per column and row in sqlx: about 7% of a page's CPU).

use std::sync::OnceLock;

use entity::photo;
use sea_orm::{DbBackend, DbErr, QueryResult, QueryTrait, Statement, Value};

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

/// A photo from a row of `photo::Entity::find()` (and its cached forms), which selects every
/// column in `photo::Column` order: each column is read at its position in that enum.
pub(crate) fn photo_from_row(row: &QueryResult) -> Result<photo::Model, DbErr> {
    use photo::Column as C;
    let at = |column: C| column as usize;
    Ok(photo::Model {
        id: row.try_get_by_index(at(C::Id))?,
        user_id: row.try_get_by_index(at(C::UserId))?,
        object_key: row.try_get_by_index(at(C::ObjectKey))?,
        status: row.try_get_by_index(at(C::Status))?,
        title: row.try_get_by_index(at(C::Title))?,
        content_type: row.try_get_by_index(at(C::ContentType))?,
        size_bytes: row.try_get_by_index(at(C::SizeBytes))?,
        width: row.try_get_by_index(at(C::Width))?,
        height: row.try_get_by_index(at(C::Height))?,
        checksum_sha256: row.try_get_by_index(at(C::ChecksumSha256))?,
        taken_at: row.try_get_by_index(at(C::TakenAt))?,
        taken_at_local: row.try_get_by_index(at(C::TakenAtLocal))?,
        error: row.try_get_by_index(at(C::Error))?,
        thumbnail_status: row.try_get_by_index(at(C::ThumbnailStatus))?,
        created_at: row.try_get_by_index(at(C::CreatedAt))?,
        updated_at: row.try_get_by_index(at(C::UpdatedAt))?,
    })
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

    /// [`photo_from_row`]'s positions are where `photo::Entity::find()` selects the columns.
    #[test]
    fn photo_columns_are_selected_in_enum_order() {
        use sea_orm::{EntityTrait, Iterable};
        let sql = photo::Entity::find().build(DbBackend::Postgres).sql;
        let select_list = &sql[..sql.find(" FROM ").unwrap_or(sql.len())];
        let mut last = 0;
        for (position, column) in photo::Column::iter().enumerate() {
            assert_eq!(column as usize, position);
            let name = format!("\"photos\".\"{}\"", sea_orm::IdenStatic::as_str(&column));
            let found = select_list
                .find(&name)
                .unwrap_or_else(|| panic!("{name} in {sql}"));
            assert!(
                position == 0 || found > last,
                "{name} out of order in {sql}"
            );
            last = found;
        }
        assert_eq!(
            select_list.matches(", ").count() + 1,
            photo::Column::iter().count()
        );
    }
}

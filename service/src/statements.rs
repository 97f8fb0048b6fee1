//! The SQL text of the hottest reads (one photo, a page of photos, one account), built by
//! sea-query once per backend and shape instead of on every request: only the values change.
//! Each cached statement has a test that it is exactly what sea-query builds (text and values).
//! Their rows are decoded by position: a derived `FromQueryResult` finds each column by name
//! (a hash lookup per column and row in sqlx: about 7% of a page's CPU). On PostgreSQL a photo
//! row is decoded straight from sqlx's row: each column's type is checked once per result (all
//! rows of one statement share one row description) instead of once per value, and a NULL is
//! `None` without SeaORM formatting an error message for it first.

use std::sync::OnceLock;

use chrono::{DateTime, NaiveDateTime, Utc};
use entity::photo;
use entity::photo_status::PhotoStatus;
use entity::thumbnail_status::ThumbnailStatus;
use sea_orm::sqlx::postgres::{PgRow, Postgres};
use sea_orm::sqlx::{Column as _, Decode, Row as _, Type, TypeInfo as _};
use sea_orm::{DbBackend, DbErr, IdenStatic as _, QueryResult, QueryTrait, Statement, Value};

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

/// The photos of `rows`, which are all the rows of one statement selecting what
/// `photo::Entity::find()` selects (see [`photo_from_row`]); on PostgreSQL, the column types
/// are checked once, on the first row.
pub(crate) fn photos_from_rows(rows: &[QueryResult]) -> Result<Vec<photo::Model>, DbErr> {
    if let Some(first) = rows.first().and_then(QueryResult::try_as_pg_row) {
        check_photo_columns(first)?;
        return rows
            .iter()
            .map(|row| match row.try_as_pg_row() {
                Some(row) => photo_from_checked_pg_row(row),
                None => photo_from_row(row),
            })
            .collect();
    }
    rows.iter().map(photo_from_row).collect()
}

/// A photo from a row of `photo::Entity::find()` (and its cached forms), which selects every
/// column in `photo::Column` order: each column is read at its position in that enum.
pub(crate) fn photo_from_row(row: &QueryResult) -> Result<photo::Model, DbErr> {
    if let Some(row) = row.try_as_pg_row() {
        check_photo_columns(row)?;
        return photo_from_checked_pg_row(row);
    }
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

/// Whether `row`'s columns have the types [`photo_from_checked_pg_row`] decodes them as.
fn check_photo_columns(row: &PgRow) -> Result<(), DbErr> {
    use photo::Column as C;
    fn is<T: Type<Postgres>>(row: &PgRow, column: C) -> Result<(), DbErr> {
        let found = row.columns().get(column as usize).ok_or_else(|| {
            DbErr::Type(format!(
                "a photo row of {} columns has no photos.{}",
                row.len(),
                column.as_str()
            ))
        })?;
        if T::compatible(found.type_info()) {
            Ok(())
        } else {
            Err(DbErr::Type(format!(
                "photos.{} is {} in the row, not {}",
                column.as_str(),
                found.type_info().name(),
                T::type_info().name()
            )))
        }
    }
    if row.len() != <C as sea_orm::Iterable>::iter().count() {
        return Err(DbErr::Type(format!(
            "a photo row has {} columns, not {}",
            row.len(),
            <C as sea_orm::Iterable>::iter().count()
        )));
    }
    is::<i64>(row, C::Id)?;
    is::<i64>(row, C::UserId)?;
    is::<&str>(row, C::ObjectKey)?;
    is::<&str>(row, C::Status)?;
    is::<&str>(row, C::Title)?;
    is::<&str>(row, C::ContentType)?;
    is::<i64>(row, C::SizeBytes)?;
    is::<i32>(row, C::Width)?;
    is::<i32>(row, C::Height)?;
    is::<&str>(row, C::ChecksumSha256)?;
    is::<DateTime<Utc>>(row, C::TakenAt)?;
    is::<NaiveDateTime>(row, C::TakenAtLocal)?;
    is::<&str>(row, C::Error)?;
    is::<&str>(row, C::ThumbnailStatus)?;
    is::<DateTime<Utc>>(row, C::CreatedAt)?;
    is::<DateTime<Utc>>(row, C::UpdatedAt)
}

/// [`photo_from_row`] on a PostgreSQL row whose column types [`check_photo_columns`] accepted
/// (or those of another row of the same result).
fn photo_from_checked_pg_row(row: &PgRow) -> Result<photo::Model, DbErr> {
    use photo::Column as C;
    fn get<'r, T: Decode<'r, Postgres>>(row: &'r PgRow, column: C) -> Result<T, DbErr> {
        row.try_get_unchecked(column as usize)
            .map_err(|error| DbErr::Type(format!("photos.{}: {error}", column.as_str())))
    }
    let status: &str = get(row, C::Status)?;
    let thumbnail_status: &str = get(row, C::ThumbnailStatus)?;
    Ok(photo::Model {
        id: get(row, C::Id)?,
        user_id: get(row, C::UserId)?,
        object_key: get(row, C::ObjectKey)?,
        status: PhotoStatus::parse(status)
            .ok_or_else(|| DbErr::Type(format!("photos.status: no status {status:?}")))?,
        title: get(row, C::Title)?,
        content_type: get(row, C::ContentType)?,
        size_bytes: get(row, C::SizeBytes)?,
        width: get(row, C::Width)?,
        height: get(row, C::Height)?,
        checksum_sha256: get(row, C::ChecksumSha256)?,
        taken_at: get(row, C::TakenAt)?,
        taken_at_local: get(row, C::TakenAtLocal)?,
        error: get(row, C::Error)?,
        thumbnail_status: ThumbnailStatus::parse(thumbnail_status).ok_or_else(|| {
            DbErr::Type(format!(
                "photos.thumbnail_status: no status {thumbnail_status:?}"
            ))
        })?,
        created_at: get(row, C::CreatedAt)?,
        updated_at: get(row, C::UpdatedAt)?,
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

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
use entity::photo_status::PhotoStatus;
use entity::thumbnail_status::ThumbnailStatus;
use entity::{photo, user};
use sea_orm::sqlx::postgres::{PgRow, PgValueFormat, Postgres};
use sea_orm::sqlx::{Column as _, Decode, Row as _, Type, TypeInfo as _, ValueRef as _};
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

/// Whether `row`'s columns have the types [`photo_from_checked_pg_row`] decodes them as: each
/// column's type OID compared with the built-in types' (fixed in PostgreSQL's catalog), and
/// sqlx's own (slower) check for anything else.
fn check_photo_columns(row: &PgRow) -> Result<(), DbErr> {
    use photo::Column as C;
    const INT8: &[u32] = &[20];
    const INT4: &[u32] = &[23];
    const TEXT: &[u32] = &[25, 1043]; // text, varchar
    const TIMESTAMP: &[u32] = &[1114];
    const TIMESTAMPTZ: &[u32] = &[1184];
    fn is<T: Type<Postgres>>(row: &PgRow, column: C, oids: &[u32]) -> Result<(), DbErr> {
        let found = row.columns().get(column as usize).ok_or_else(|| {
            DbErr::Type(format!(
                "a photo row of {} columns has no photos.{}",
                row.len(),
                column.as_str()
            ))
        })?;
        let info = found.type_info();
        if info.oid().is_some_and(|oid| oids.contains(&oid.0)) || T::compatible(info) {
            Ok(())
        } else {
            Err(DbErr::Type(format!(
                "photos.{} is {} in the row, not {}",
                column.as_str(),
                info.name(),
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
    is::<i64>(row, C::Id, INT8)?;
    is::<i64>(row, C::UserId, INT8)?;
    is::<&str>(row, C::ObjectKey, TEXT)?;
    is::<&str>(row, C::Status, TEXT)?;
    is::<&str>(row, C::Title, TEXT)?;
    is::<&str>(row, C::ContentType, TEXT)?;
    is::<i64>(row, C::SizeBytes, INT8)?;
    is::<i32>(row, C::Width, INT4)?;
    is::<i32>(row, C::Height, INT4)?;
    is::<&str>(row, C::ChecksumSha256, TEXT)?;
    is::<DateTime<Utc>>(row, C::TakenAt, TIMESTAMPTZ)?;
    is::<NaiveDateTime>(row, C::TakenAtLocal, TIMESTAMP)?;
    is::<&str>(row, C::Error, TEXT)?;
    is::<&str>(row, C::ThumbnailStatus, TEXT)?;
    is::<DateTime<Utc>>(row, C::CreatedAt, TIMESTAMPTZ)?;
    is::<DateTime<Utc>>(row, C::UpdatedAt, TIMESTAMPTZ)
}

/// A value decoded from PostgreSQL's binary format (what sqlx asks for on prepared
/// statements) without going through sqlx's `Decode` (which builds timestamps by adding a
/// `Duration` to the year 2000, day by day in chrono, and checks lengths generically); the same
/// values, by test. Text-format values still go to sqlx.
trait FromBinary<'r>: Sized {
    fn from_binary(bytes: &'r [u8]) -> Result<Self, String>;
}

impl FromBinary<'_> for i64 {
    fn from_binary(bytes: &[u8]) -> Result<i64, String> {
        <[u8; 8]>::try_from(bytes)
            .map(i64::from_be_bytes)
            .map_err(|_| format!("{} bytes for an int8", bytes.len()))
    }
}

impl FromBinary<'_> for i32 {
    fn from_binary(bytes: &[u8]) -> Result<i32, String> {
        <[u8; 4]>::try_from(bytes)
            .map(i32::from_be_bytes)
            .map_err(|_| format!("{} bytes for an int4", bytes.len()))
    }
}

impl<'r> FromBinary<'r> for &'r str {
    fn from_binary(bytes: &'r [u8]) -> Result<&'r str, String> {
        std::str::from_utf8(bytes).map_err(|error| error.to_string())
    }
}

impl FromBinary<'_> for String {
    fn from_binary(bytes: &[u8]) -> Result<String, String> {
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|error| error.to_string())
    }
}

/// Microseconds from 1970 to 2000-01-01, PostgreSQL's epoch.
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// A `timestamp`/`timestamptz` value: microseconds since 2000-01-01 (UTC).
fn timestamp_from_binary(bytes: &[u8]) -> Result<DateTime<Utc>, String> {
    let micros = i64::from_binary(bytes)?;
    micros
        .checked_add(POSTGRES_EPOCH_MICROS)
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(|| format!("the timestamp {micros} (microseconds since 2000) is out of range"))
}

impl FromBinary<'_> for DateTime<Utc> {
    fn from_binary(bytes: &[u8]) -> Result<DateTime<Utc>, String> {
        timestamp_from_binary(bytes)
    }
}

impl FromBinary<'_> for NaiveDateTime {
    fn from_binary(bytes: &[u8]) -> Result<NaiveDateTime, String> {
        timestamp_from_binary(bytes).map(|at| at.naive_utc())
    }
}

impl<'r, T: FromBinary<'r>> FromBinary<'r> for Option<T> {
    fn from_binary(bytes: &'r [u8]) -> Result<Option<T>, String> {
        T::from_binary(bytes).map(Some)
    }
}

/// `Ok(photo::Model)` from `$get($row, column)` for each column (`$get` generic over the
/// value's type, `photo::Column as C` in scope), the statuses parsed from borrowed text: the one
/// shape of the PostgreSQL row decoders.
macro_rules! photo_model {
    ($row:expr, $get:ident) => {{
        let status: &str = $get($row, C::Status)?;
        let thumbnail_status: &str = $get($row, C::ThumbnailStatus)?;
        Ok(photo::Model {
            id: $get($row, C::Id)?,
            user_id: $get($row, C::UserId)?,
            object_key: $get($row, C::ObjectKey)?,
            status: PhotoStatus::parse(status)
                .ok_or_else(|| DbErr::Type(format!("photos.status: no status {status:?}")))?,
            title: $get($row, C::Title)?,
            content_type: $get($row, C::ContentType)?,
            size_bytes: $get($row, C::SizeBytes)?,
            width: $get($row, C::Width)?,
            height: $get($row, C::Height)?,
            checksum_sha256: $get($row, C::ChecksumSha256)?,
            taken_at: $get($row, C::TakenAt)?,
            taken_at_local: $get($row, C::TakenAtLocal)?,
            error: $get($row, C::Error)?,
            thumbnail_status: ThumbnailStatus::parse(thumbnail_status).ok_or_else(|| {
                DbErr::Type(format!(
                    "photos.thumbnail_status: no status {thumbnail_status:?}"
                ))
            })?,
            created_at: $get($row, C::CreatedAt)?,
            updated_at: $get($row, C::UpdatedAt)?,
        })
    }};
}

/// [`photo_from_row`] on a PostgreSQL row whose column types [`check_photo_columns`] accepted
/// (or those of another row of the same result).
fn photo_from_checked_pg_row(row: &PgRow) -> Result<photo::Model, DbErr> {
    use photo::Column as C;
    fn get<'r, T: Decode<'r, Postgres> + FromBinary<'r>>(
        row: &'r PgRow,
        column: C,
    ) -> Result<T, DbErr> {
        let error = |error: &dyn std::fmt::Display| {
            DbErr::Type(format!("photos.{}: {error}", column.as_str()))
        };
        let value = row.try_get_raw(column as usize).map_err(|e| error(&e))?;
        if value.format() == PgValueFormat::Binary && !value.is_null() {
            let bytes = value.as_bytes().map_err(|e| error(&e))?;
            return T::from_binary(bytes).map_err(|e| error(&e));
        }
        T::decode(value).map_err(|e| error(&e))
    }
    photo_model!(row, get)
}

/// The photos of rows from the pipelined reads (`reads::pipelined`), selected as for
/// [`photo_from_row`]. tokio-postgres checks each value's type against the one asked for.
pub(crate) fn photos_from_pipelined(
    rows: &[tokio_postgres::Row],
) -> Result<Vec<photo::Model>, DbErr> {
    rows.iter().map(photo_from_pipelined).collect()
}

/// A column of a pipelined row, by position, with the column's name in the error.
fn pipelined<'r, T: tokio_postgres::types::FromSql<'r>>(
    row: &'r tokio_postgres::Row,
    table: &str,
    position: usize,
    name: &str,
) -> Result<T, DbErr> {
    row.try_get(position)
        .map_err(|error| DbErr::Type(format!("{table}.{name}: {error}")))
}

/// Whether a pipelined row has one value per column of `C` (`what`: "photo", "user").
fn check_width<C: sea_orm::Iterable>(row: &tokio_postgres::Row, what: &str) -> Result<(), DbErr> {
    let columns = C::iter().count();
    if row.len() == columns {
        Ok(())
    } else {
        Err(DbErr::Type(format!(
            "a {what} row has {} columns, not {columns}",
            row.len()
        )))
    }
}

fn photo_from_pipelined(row: &tokio_postgres::Row) -> Result<photo::Model, DbErr> {
    use photo::Column as C;
    check_width::<C>(row, "photo")?;
    fn get<'r, T: tokio_postgres::types::FromSql<'r>>(
        row: &'r tokio_postgres::Row,
        column: C,
    ) -> Result<T, DbErr> {
        pipelined(row, "photos", column as usize, column.as_str())
    }
    photo_model!(row, get)
}

/// An account from a pipelined row of `user::Entity::find()` (every column, in
/// `user::Column` order).
pub(crate) fn user_from_pipelined(row: &tokio_postgres::Row) -> Result<user::Model, DbErr> {
    use user::Column as C;
    check_width::<C>(row, "user")?;
    fn get<'r, T: tokio_postgres::types::FromSql<'r>>(
        row: &'r tokio_postgres::Row,
        column: C,
    ) -> Result<T, DbErr> {
        pipelined(row, "users", column as usize, column.as_str())
    }
    Ok(user::Model {
        id: get(row, C::Id)?,
        username: get(row, C::Username)?,
        username_key: get(row, C::UsernameKey)?,
        email: get(row, C::Email)?,
        password_hash: get(row, C::PasswordHash)?,
        token_generation: get(row, C::TokenGeneration)?,
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

    /// Timestamps from PostgreSQL's binary format are what sqlx makes of them (2000-01-01 plus
    /// a `Duration` of microseconds), and out-of-range ones are an error, not a panic.
    #[test]
    fn binary_timestamps_as_sqlx_reads_them() {
        let epoch = chrono::NaiveDate::from_ymd_opt(2000, 1, 1)
            .and_then(|day| day.and_hms_opt(0, 0, 0))
            .unwrap_or_default();
        let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
        let mut cases = vec![0i64, 1, -1, 999_999, -1_000_000, 851_472_000_000_000];
        for _ in 0..10_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Within about +-30,000 years of 2000.
            cases.push((seed % 2_000_000_000_000_000_000) as i64 - 1_000_000_000_000_000_000);
        }
        for micros in cases {
            let bytes = micros.to_be_bytes();
            let sqlx = epoch + chrono::Duration::microseconds(micros);
            assert_eq!(NaiveDateTime::from_binary(&bytes), Ok(sqlx), "{micros}");
            assert_eq!(DateTime::<Utc>::from_binary(&bytes), Ok(sqlx.and_utc()));
        }
        for infinity in [i64::MAX, i64::MIN] {
            assert!(DateTime::<Utc>::from_binary(&infinity.to_be_bytes()).is_err());
        }
        assert!(i64::from_binary(&[0; 4]).is_err());
        assert_eq!(i32::from_binary(&7i32.to_be_bytes()), Ok(7));
        assert_eq!(
            Option::<String>::from_binary("é".as_bytes()),
            Ok(Some("é".to_owned()))
        );
        assert!(String::from_binary(&[0xff]).is_err());
        assert_eq!(<&str>::from_binary(b"ready"), Ok("ready"));
        assert!(<&str>::from_binary(&[0xc3]).is_err());
    }

    /// `E::find()` selects every column of `E` in its `Column` enum's order (what the decoders
    /// by position rely on).
    fn assert_selected_in_enum_order<E: sea_orm::EntityTrait>() {
        use sea_orm::Iterable;
        let sql = E::find().build(DbBackend::Postgres).sql;
        let select_list = &sql[..sql.find(" FROM ").unwrap_or(sql.len())];
        let table = sea_orm::IdenStatic::as_str(&E::default());
        let mut last = 0;
        for (position, column) in E::Column::iter().enumerate() {
            let name = format!("\"{table}\".\"{}\"", sea_orm::IdenStatic::as_str(&column));
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
            E::Column::iter().count()
        );
    }

    /// [`photo_from_row`]'s and [`user_from_pipelined`]'s positions (`Column as usize`) are
    /// where `find()` selects the columns.
    #[test]
    fn columns_are_selected_in_enum_order() {
        use sea_orm::Iterable;
        for (position, column) in photo::Column::iter().enumerate() {
            assert_eq!(column as usize, position);
        }
        for (position, column) in user::Column::iter().enumerate() {
            assert_eq!(column as usize, position);
        }
        assert_selected_in_enum_order::<photo::Entity>();
        assert_selected_in_enum_order::<user::Entity>();
    }
}

//! Keyset pages, newest first: `after` is the id the previous page ended at. Ids only grow,
//! so pages stay stable while new rows arrive.

use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select,
};

use crate::ServiceError;

/// Up to `limit` rows of `query` with `id` below `after`, highest id first, and the id to pass
/// as `after` for the next page (`None` on the last page).
pub async fn newest_first<E, C>(
    db: &C,
    query: Select<E>,
    id: E::Column,
    id_of: fn(&E::Model) -> i64,
    limit: u64,
    after: Option<i64>,
) -> Result<(Vec<E::Model>, Option<i64>), ServiceError>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    let query = match after {
        Some(after) => query.filter(id.lt(after)),
        None => query,
    };
    let rows = query.order_by_desc(id).limit(limit + 1).all(db).await?;
    Ok(split_page(rows, limit, id_of))
}

/// `rows` (up to `limit + 1`, highest id first) as a page of `limit` and the cursor of the
/// next page (`None` when there is no row past the page).
pub fn split_page<M>(mut rows: Vec<M>, limit: u64, id_of: fn(&M) -> i64) -> (Vec<M>, Option<i64>) {
    let next = if rows.len() as u64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(id_of)
    } else {
        None
    };
    (rows, next)
}

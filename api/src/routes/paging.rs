//! Keyset pages: `?limit=` and `?cursor=`, the cursor being the id the previous page ended
//! at (ids only grow, so pages stay stable while new rows arrive). Every value the documented
//! pattern (`^[0-9]{0,18}$`, empty: the first page) allows is a valid cursor.

use crate::ApiError;

pub fn encode_cursor(id: i64) -> String {
    id.to_string()
}

/// A cursor as sent by a client; empty means "not given".
pub fn decode_cursor(cursor: Option<&str>) -> Result<Option<i64>, ApiError> {
    match cursor.filter(|cursor| !cursor.is_empty()) {
        None => Ok(None),
        Some(cursor) => cursor
            .parse::<i64>()
            .ok()
            .filter(|id| {
                *id >= 0 && cursor.len() <= 18 && cursor.bytes().all(|b| b.is_ascii_digit())
            })
            .map(Some)
            .ok_or_else(|| {
                ApiError::field(
                    "cursor",
                    "must be the next_cursor of a previous page (digits)",
                )
            }),
    }
}

/// `?limit=`, 1-100, default 20.
pub fn limit(limit: Option<u64>) -> Result<u64, ApiError> {
    let limit = limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::field("limit", "must be from 1 to 100"));
    }
    Ok(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        assert_eq!(decode_cursor(Some(&encode_cursor(42))).unwrap(), Some(42));
        assert_eq!(decode_cursor(Some("")).unwrap(), None);
        assert_eq!(decode_cursor(None).unwrap(), None);
        for junk in ["-1", "+5", "1e3", "abc", "9999999999999999999"] {
            assert!(decode_cursor(Some(junk)).is_err(), "{junk}");
        }
    }
}

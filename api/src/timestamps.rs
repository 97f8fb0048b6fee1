//! Timestamps in response bodies, written exactly as chrono's `Serialize` writes them (RFC 3339,
//! UTC as `Z`, a fraction of 3, 6 or 9 digits only when there is one), without going through
//! `fmt`: chrono's writer pushes each part through the JSON serializer's escaping `fmt::Write`
//! adapter, and a page of 20 photos has 40 timestamps or more. Dates chrono would write in
//! another form (years outside 0-9999, leap seconds) are left to chrono.
//! Use with `#[serde(serialize_with = "crate::timestamps::utc")]` (or `utc_option`).

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Serializer;

/// `2026-12-01T21:13:37.859326Z`, as chrono writes it.
pub fn utc<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    let mut buffer = [0u8; 30];
    match write(at, &mut buffer) {
        // Only ASCII digits and punctuation were written.
        Some(length) => match std::str::from_utf8(&buffer[..length]) {
            Ok(text) => serializer.serialize_str(text),
            Err(_) => serde::Serialize::serialize(at, serializer),
        },
        None => serde::Serialize::serialize(at, serializer),
    }
}

/// [`utc`] for an optional timestamp (`null` when absent).
pub fn utc_option<S: Serializer>(
    at: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => utc(at, serializer),
        None => serializer.serialize_none(),
    }
}

/// [`utc`] straight into a JSON body (quoted), for [`crate::json::WriteJson`] writers.
pub fn push_utc(out: &mut Vec<u8>, at: &DateTime<Utc>) -> serde_json::Result<()> {
    let mut buffer = [0u8; 30];
    match write(at, &mut buffer) {
        Some(length) => {
            out.reserve(length + 2);
            out.push(b'"');
            out.extend_from_slice(&buffer[..length]);
            out.push(b'"');
            Ok(())
        }
        None => serde_json::to_writer(out, at),
    }
}

/// [`push_utc`], or `null`.
pub fn push_utc_option(out: &mut Vec<u8>, at: Option<&DateTime<Utc>>) -> serde_json::Result<()> {
    match at {
        Some(at) => push_utc(out, at),
        None => {
            out.extend_from_slice(b"null");
            Ok(())
        }
    }
}

/// Writes `at` into `out`; its length, or `None` when chrono's own writer is needed.
fn write(at: &DateTime<Utc>, out: &mut [u8; 30]) -> Option<usize> {
    let year = u32::try_from(at.year()).ok().filter(|year| *year <= 9999)?;
    let nanos = at.nanosecond();
    if nanos >= 1_000_000_000 {
        return None; // a leap second
    }
    put(out, 0, year, 4);
    out[4] = b'-';
    put(out, 5, at.month(), 2);
    out[7] = b'-';
    put(out, 8, at.day(), 2);
    out[10] = b'T';
    put(out, 11, at.hour(), 2);
    out[13] = b':';
    put(out, 14, at.minute(), 2);
    out[16] = b':';
    put(out, 17, at.second(), 2);
    let (fraction, places) = if nanos == 0 {
        (0, 0)
    } else if nanos.is_multiple_of(1_000_000) {
        (nanos / 1_000_000, 3)
    } else if nanos.is_multiple_of(1_000) {
        (nanos / 1_000, 6)
    } else {
        (nanos, 9)
    };
    let mut end = 19;
    if places > 0 {
        out[19] = b'.';
        end = put(out, 20, fraction, places);
    }
    out[end] = b'Z';
    Some(end + 1)
}

/// Writes the `count` last decimal digits of `value` at `at`; where they end.
fn put(out: &mut [u8; 30], at: usize, mut value: u32, count: usize) -> usize {
    for place in (at..at + count).rev() {
        out[place] = b'0' + (value % 10) as u8;
        value /= 10;
    }
    at + count
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use chrono::{NaiveDate, TimeZone};

    use super::*;

    #[derive(serde::Serialize)]
    struct Ours(#[serde(serialize_with = "utc")] DateTime<Utc>);

    #[test]
    fn writes_what_chrono_writes() {
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut cases = vec![
            Utc.with_ymd_and_hms(2026, 12, 1, 21, 13, 37).unwrap(),
            Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-1, 6, 1, 12, 0, 0).unwrap(),
            // A leap second.
            NaiveDate::from_ymd_opt(2016, 12, 31)
                .unwrap()
                .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
                .unwrap()
                .and_utc(),
        ];
        for _ in 0..20_000 {
            let seconds = (next() % 400_000_000_000) as i64 - 100_000_000_000;
            let nanos = match next() % 4 {
                0 => 0,
                1 => (next() % 1_000) as u32 * 1_000_000,
                2 => (next() % 1_000_000) as u32 * 1_000,
                _ => (next() % 1_000_000_000) as u32,
            };
            cases.push(DateTime::from_timestamp(seconds, nanos).unwrap());
        }
        for at in cases {
            let ours = (0..=9999).contains(&at.year()) && at.nanosecond() < 1_000_000_000;
            assert_eq!(write(&at, &mut [0; 30]).is_some(), ours, "{at:?}");
            assert_eq!(
                serde_json::to_string(&Ours(at)).unwrap(),
                serde_json::to_string(&at).unwrap(),
                "{at:?}"
            );
            let mut pushed = Vec::new();
            push_utc(&mut pushed, &at).unwrap();
            assert_eq!(pushed, serde_json::to_vec(&at).unwrap(), "{at:?}");
        }
    }
}

//! JSON response bodies written into a buffer sized for them up front. actix-web's
//! `HttpResponseBuilder::json` starts from 128 bytes and grows by doubling, copying what was
//! written at each step: a page of 20 photos (about 13 KB) is copied seven times on its way.
//!
//! The hottest bodies (one photo, a page of photos, an account) are written by hand
//! ([`WriteJson`]): serde_json scans every key and string byte by byte for characters to escape
//! and writes through a `fmt` adapter for values serialized with `collect_str`; that was 40% of
//! a page's instructions (`bench/instructions.sh`). Keys here are literals, and a string is
//! copied as is when one pass finds nothing to escape, else written by serde_json itself. Every
//! implementation has a test that its bytes are serde_json's for the same value.

use actix_web::http::header::{CONTENT_TYPE, HeaderValue};
use actix_web::{HttpResponse, HttpResponseBuilder};
use serde::Serialize;

/// About what one photo takes in JSON (`PhotoPublic`, with a title and every field set: 600 to
/// 700 bytes), for sizing bodies that hold photos.
pub const PHOTO_BYTES: usize = 768;

/// A value that writes its own JSON, byte for byte what `serde_json::to_writer` writes for
/// its `Serialize` (each implementation has a test saying so).
pub trait WriteJson {
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()>;
}

impl<T: WriteJson> WriteJson for [T] {
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.push(b'[');
        for (index, item) in self.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            item.write_json(out)?;
        }
        out.push(b']');
        Ok(())
    }
}

/// [`HttpResponseBuilder::json`] for a [`WriteJson`] value, with the body's buffer sized to
/// `capacity` bytes up front (it still grows if the guess was short).
pub trait JsonWritten {
    fn json_written(&mut self, value: &impl WriteJson, capacity: usize) -> HttpResponse;
}

impl JsonWritten for HttpResponseBuilder {
    fn json_written(&mut self, value: &impl WriteJson, capacity: usize) -> HttpResponse {
        let mut body = Vec::with_capacity(capacity);
        match value.write_json(&mut body) {
            Ok(()) => self
                .insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")))
                .body(body),
            Err(error) => {
                HttpResponse::from_error(actix_web::error::JsonPayloadError::Serialize(error))
            }
        }
    }
}

/// `text` as a JSON string, as serde_json writes it: copied between quotes when it holds
/// nothing serde_json escapes (control characters, `"` and `\`), else by serde_json.
pub fn string(out: &mut Vec<u8>, text: &str) -> serde_json::Result<()> {
    // No early exit: the compiler turns this into a vectorized pass.
    let escape = text.bytes().fold(false, |found, byte| {
        found | (byte < 0x20) | (byte == b'"') | (byte == b'\\')
    });
    if escape {
        return serde_json::to_writer(out, text);
    }
    out.reserve(text.len() + 2);
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
    Ok(())
}

/// [`string`], or `null`.
pub fn option_string(out: &mut Vec<u8>, text: Option<&str>) -> serde_json::Result<()> {
    match text {
        Some(text) => string(out, text),
        None => {
            out.extend_from_slice(b"null");
            Ok(())
        }
    }
}

/// An integer, or `null` (serde_json writes integers with itoa too).
pub fn option_integer(out: &mut Vec<u8>, number: Option<impl itoa::Integer>) {
    match number {
        Some(number) => out.extend_from_slice(itoa::Buffer::new().format(number).as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
}

/// Anything else, by serde_json.
pub fn value(out: &mut Vec<u8>, value: &impl Serialize) -> serde_json::Result<()> {
    serde_json::to_writer(out, value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    #[test]
    fn the_same_answer_as_json() {
        let value = crate::routes::photos::PhotoPage {
            items: Vec::new(),
            next_cursor: Some("a \"quoted\" é".to_owned()),
        };
        for capacity in [0, 4, 4096] {
            let written = HttpResponse::Ok().json_written(&value, capacity);
            let plain = HttpResponse::Ok().json(&value);
            assert_eq!(written.status(), plain.status());
            assert_eq!(
                written.headers().get(CONTENT_TYPE),
                plain.headers().get(CONTENT_TYPE)
            );
            let written = written.into_body().try_into_bytes().ok();
            let plain = plain.into_body().try_into_bytes().ok();
            assert!(written.is_some());
            assert_eq!(written, plain);
        }
    }

    #[test]
    fn strings_as_serde_json_writes_them() {
        let mut cases: Vec<String> = [
            "",
            "plain",
            "a \"quoted\" title",
            "back\\slash",
            "tab\tnew\nline\r",
            "\u{0}\u{1f}\u{7f}\u{80}\u{9f}",
            "é ü 日本 🎞",
            "\u{2028}\u{2029}\u{202e}",
            "</script>",
        ]
        .iter()
        .map(|text| (*text).to_owned())
        .collect();
        cases.extend((0u8..=0x7f).map(|byte| format!("x{}y", char::from(byte))));
        for text in cases {
            let mut ours = Vec::new();
            string(&mut ours, &text).ok();
            assert_eq!(
                ours,
                serde_json::to_vec(&text).ok().unwrap_or_default(),
                "{text:?}"
            );
            let mut ours = Vec::new();
            option_string(&mut ours, Some(&text)).ok();
            assert_eq!(
                ours,
                serde_json::to_vec(&Some(&text)).ok().unwrap_or_default()
            );
        }
        let mut ours = Vec::new();
        option_string(&mut ours, None).ok();
        assert_eq!(ours, b"null");
        for number in [
            Some(i64::MIN),
            Some(-1),
            Some(0),
            Some(7),
            Some(i64::MAX),
            None,
        ] {
            let mut ours = Vec::new();
            option_integer(&mut ours, number);
            assert_eq!(ours, serde_json::to_vec(&number).ok().unwrap_or_default());
        }
    }
}

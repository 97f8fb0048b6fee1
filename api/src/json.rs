//! JSON response bodies written into a buffer sized for them up front. actix-web's
//! `HttpResponseBuilder::json` starts from 128 bytes and grows by doubling, copying what was
//! written at each step: a page of 20 photos (about 13 KB) is copied seven times on its way.

use actix_web::http::header::{CONTENT_TYPE, HeaderValue};
use actix_web::{HttpResponse, HttpResponseBuilder};
use serde::Serialize;

/// About what one photo takes in JSON (`PhotoPublic`, with a title and every field set: 600 to
/// 700 bytes), for sizing bodies that hold photos.
pub const PHOTO_BYTES: usize = 768;

/// [`HttpResponseBuilder::json`] with the body's buffer sized to `capacity` bytes (it still
/// grows if the guess was short).
pub trait JsonSized {
    fn json_sized(&mut self, value: impl Serialize, capacity: usize) -> HttpResponse;
}

impl JsonSized for HttpResponseBuilder {
    fn json_sized(&mut self, value: impl Serialize, capacity: usize) -> HttpResponse {
        let mut body = Vec::with_capacity(capacity);
        match serde_json::to_writer(&mut body, &value) {
            Ok(()) => self
                .insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")))
                .body(body),
            // As `json()` answers a value serde cannot write (a map with non-string keys): 500.
            Err(error) => {
                HttpResponse::from_error(actix_web::error::JsonPayloadError::Serialize(error))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    #[test]
    fn the_same_answer_as_json() {
        let value = serde_json::json!({"id": 7, "title": "a \"quoted\" é", "items": [1, 2, 3]});
        for capacity in [0, 4, 4096] {
            let sized = HttpResponse::Ok().json_sized(&value, capacity);
            let plain = HttpResponse::Ok().json(&value);
            assert_eq!(sized.status(), plain.status());
            assert_eq!(
                sized.headers().get(CONTENT_TYPE),
                plain.headers().get(CONTENT_TYPE)
            );
            let sized = sized.into_body().try_into_bytes().ok();
            let plain = plain.into_body().try_into_bytes().ok();
            assert!(sized.is_some());
            assert_eq!(sized, plain);
        }
    }
}

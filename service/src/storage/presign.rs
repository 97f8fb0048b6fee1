//! AWS Signature V4 presigned URLs: PUTs with the content type and length bound into the
//! signature (object_store's signer signs the host only, so a client could upload anything),
//! and GETs whose answer's headers are bound in too (`response-*` parameters).

use std::time::Duration;

use chrono::Utc;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// What a client needs to upload straight to the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedPut {
    pub url: String,
    /// Headers the client must send exactly (they are part of the signature).
    pub headers: Vec<(String, String)>,
    pub expires_in: Duration,
}

/// Signs requests for one bucket.
#[derive(Debug, Clone)]
pub struct S3Presigner {
    /// `scheme://host[:port]`; path-style URLs are used with an explicit endpoint.
    endpoint: Option<String>,
    bucket: String,
    region: String,
    access_key: String,
    secret_key: String,
    session_token: Option<String>,
}

impl S3Presigner {
    /// `None` without credentials.
    pub fn new(
        endpoint: Option<String>,
        bucket: String,
        region: String,
        access_key: Option<String>,
        secret_key: Option<String>,
        session_token: Option<String>,
    ) -> Option<Self> {
        Some(S3Presigner {
            endpoint: endpoint.map(|e| e.trim_end_matches('/').to_owned()),
            bucket,
            region,
            access_key: access_key?,
            secret_key: secret_key?,
            session_token,
        })
    }

    pub fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        content_length: u64,
        expires_in: Duration,
    ) -> PresignedPut {
        self.presign_put_at(key, content_type, content_length, expires_in, Utc::now())
    }

    fn presign_put_at(
        &self,
        key: &str,
        content_type: &str,
        content_length: u64,
        expires_in: Duration,
        now: chrono::DateTime<Utc>,
    ) -> PresignedPut {
        let length = content_length.to_string();
        let url = self.sign(
            "PUT",
            key,
            &[],
            &[("content-length", &length), ("content-type", content_type)],
            expires_in,
            now,
        );
        PresignedPut {
            url,
            headers: vec![
                ("Content-Type".to_owned(), content_type.to_owned()),
                ("Content-Length".to_owned(), length),
            ],
            expires_in,
        }
    }

    /// A presigned GET of `key` whose answer carries `headers` (the bucket sets them from the
    /// URL's `response-*` parameters, which the signature covers): a plain HTTP client follows
    /// it, without credentials, until it expires.
    pub fn presign_get(
        &self,
        key: &str,
        headers: &ResponseHeaders,
        expires_in: Duration,
    ) -> String {
        self.presign_get_at(key, headers, expires_in, Utc::now())
    }

    fn presign_get_at(
        &self,
        key: &str,
        headers: &ResponseHeaders,
        expires_in: Duration,
        now: chrono::DateTime<Utc>,
    ) -> String {
        let query = [
            ("response-cache-control", headers.cache_control.as_str()),
            (
                "response-content-disposition",
                headers.content_disposition.as_str(),
            ),
            ("response-content-type", headers.content_type.as_str()),
        ];
        self.sign("GET", key, &query, &[], expires_in, now)
    }

    /// A SigV4 query-string signature of `method` on `key`, with `query` parameters and the
    /// `headers` (lower-case names, sorted) the request must send, besides `host`.
    fn sign(
        &self,
        method: &str,
        key: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        expires_in: Duration,
        now: chrono::DateTime<Utc>,
    ) -> String {
        let (base, host, path) = match &self.endpoint {
            Some(endpoint) => {
                let host = endpoint
                    .split_once("://")
                    .map(|(_, rest)| rest)
                    .unwrap_or(endpoint)
                    .to_owned();
                (
                    endpoint.clone(),
                    host,
                    format!(
                        "/{}/{}",
                        uri_encode(&self.bucket, true),
                        uri_encode(key, false)
                    ),
                )
            }
            None => {
                let host = format!("{}.s3.{}.amazonaws.com", self.bucket, self.region);
                (
                    format!("https://{host}"),
                    host,
                    format!("/{}", uri_encode(key, false)),
                )
            }
        };
        let mut signed: Vec<(&str, &str)> = headers.to_vec();
        signed.push(("host", &host));
        signed.sort();
        let signed_names = signed
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(";");
        let date = now.format("%Y%m%d").to_string();
        let timestamp = now.format("%Y%m%dT%H%M%SZ").to_string();
        let scope = format!("{date}/{}/s3/aws4_request", self.region);
        let mut parameters = vec![
            ("X-Amz-Algorithm".to_owned(), "AWS4-HMAC-SHA256".to_owned()),
            (
                "X-Amz-Credential".to_owned(),
                format!("{}/{scope}", self.access_key),
            ),
            ("X-Amz-Date".to_owned(), timestamp.clone()),
            ("X-Amz-Expires".to_owned(), expires_in.as_secs().to_string()),
            ("X-Amz-SignedHeaders".to_owned(), signed_names.clone()),
        ];
        if let Some(token) = &self.session_token {
            parameters.push(("X-Amz-Security-Token".to_owned(), token.clone()));
        }
        parameters.extend(
            query
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned())),
        );
        // Sorted by the encoded name (all of ours encode to themselves).
        parameters.sort();
        let canonical_query = parameters
            .iter()
            .map(|(k, v)| format!("{}={}", uri_encode(k, true), uri_encode(v, true)))
            .collect::<Vec<_>>()
            .join("&");
        let canonical_headers: String = signed
            .iter()
            .map(|(name, value)| format!("{name}:{}\n", value.trim()))
            .collect();
        let canonical_request = format!(
            "{method}\n{path}\n{canonical_query}\n{canonical_headers}\n{signed_names}\n\
             UNSIGNED-PAYLOAD"
        );
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{timestamp}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical_request.as_bytes()))
        );
        let mut signing_key = hmac(
            format!("AWS4{}", self.secret_key).as_bytes(),
            date.as_bytes(),
        );
        for part in [self.region.as_bytes(), b"s3", b"aws4_request"] {
            signing_key = hmac(&signing_key, part);
        }
        let signature = hex::encode(hmac(&signing_key, string_to_sign.as_bytes()));
        format!("{base}{path}?{canonical_query}&X-Amz-Signature={signature}")
    }
}

/// The headers a presigned download's answer carries, set by the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHeaders {
    pub content_type: String,
    pub content_disposition: String,
    pub cache_control: String,
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return Vec::new(),
    };
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// RFC 3986 encoding as SigV4 wants it: unreserved characters kept, `/` kept in paths.
fn uri_encode(value: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            b'/' if !encode_slash => out.push('/'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer_at_noon() -> (S3Presigner, chrono::DateTime<Utc>) {
        let signer = S3Presigner::new(
            Some("http://127.0.0.1:9000".to_owned()),
            "photos".to_owned(),
            "us-east-1".to_owned(),
            Some("AKID".to_owned()),
            Some("SECRET".to_owned()),
            None,
        )
        .unwrap();
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-25T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        (signer, now)
    }

    #[test]
    fn signs_content_type_and_length() {
        let (signer, now) = signer_at_noon();
        let a = signer.presign_put_at(
            "users/1/photos/x.jpg",
            "image/jpeg",
            10,
            Duration::from_secs(300),
            now,
        );
        let b = signer.presign_put_at(
            "users/1/photos/x.jpg",
            "image/png",
            10,
            Duration::from_secs(300),
            now,
        );
        let c = signer.presign_put_at(
            "users/1/photos/x.jpg",
            "image/jpeg",
            11,
            Duration::from_secs(300),
            now,
        );
        assert!(
            a.url
                .starts_with("http://127.0.0.1:9000/photos/users/1/photos/x.jpg?")
        );
        assert!(
            a.url
                .contains("X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost")
        );
        assert_ne!(a.url, b.url);
        assert_ne!(a.url, c.url);
    }

    #[test]
    fn a_download_url_binds_the_answers_headers() {
        let (signer, now) = signer_at_noon();
        let headers = ResponseHeaders {
            content_type: "image/jpeg".to_owned(),
            content_disposition: "inline; filename=\"photo-1.jpg\"".to_owned(),
            cache_control: "private, max-age=300".to_owned(),
        };
        let url = signer.presign_get_at(
            "users/1/photos/x.jpg",
            &headers,
            Duration::from_secs(60),
            now,
        );
        assert!(
            url.starts_with("http://127.0.0.1:9000/photos/users/1/photos/x.jpg?"),
            "{url}"
        );
        assert!(url.contains("X-Amz-SignedHeaders=host&"), "{url}");
        assert!(url.contains("X-Amz-Expires=60&"), "{url}");
        assert!(
            url.contains("response-content-disposition=inline%3B%20filename%3D%22photo-1.jpg%22"),
            "{url}"
        );
        assert!(url.contains("response-content-type=image%2Fjpeg"), "{url}");
        let other = ResponseHeaders {
            content_type: "text/html".to_owned(),
            ..headers.clone()
        };
        let forged =
            signer.presign_get_at("users/1/photos/x.jpg", &other, Duration::from_secs(60), now);
        let signature = |url: &str| {
            url.rsplit_once("X-Amz-Signature=")
                .map(|(_, s)| s.to_owned())
        };
        assert_ne!(
            signature(&url),
            signature(&forged),
            "the headers are signed"
        );
    }
}

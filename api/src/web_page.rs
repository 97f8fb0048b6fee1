//! The page for people at `/`: sign up, upload, watch a story being written
//! (`api/web/`, embedded in the binary: nothing to build or install to run it). It calls the
//! same public API as any client. Not part of the OpenAPI document.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

/// Scripts and styles only from this origin, images also from the `blob:` URLs the page makes
/// of authenticated downloads; no inline code, no frames, no forms posted elsewhere.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      img-src 'self' blob: data:; connect-src 'self'; form-action 'none'; \
                      frame-ancestors 'none'; base-uri 'none'; manifest-src 'self'";

/// Path, content type and bytes of each file.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_bytes!("../web/index.html"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/app.js"),
    ),
    (
        "/app.css",
        "text/css; charset=utf-8",
        include_bytes!("../web/app.css"),
    ),
    (
        "/favicon.svg",
        "image/svg+xml",
        include_bytes!("../web/favicon.svg"),
    ),
];

pub fn configure(config: &mut web::ServiceConfig) {
    for (path, _, _) in FILES {
        config.route(path, web::get().to(serve));
    }
}

/// One file, with an ETag of this build's bytes: a browser revalidates (304) instead of
/// keeping an old page after an upgrade.
async fn serve(req: HttpRequest) -> HttpResponse {
    let Some(index) = FILES.iter().position(|(path, _, _)| *path == req.path()) else {
        return HttpResponse::NotFound().finish();
    };
    static ETAGS: std::sync::LazyLock<Vec<String>> =
        std::sync::LazyLock::new(|| FILES.iter().map(|(_, _, bytes)| etag(bytes)).collect());
    let (_, content_type, bytes) = FILES[index];
    let etag = ETAGS[index].clone();
    let fresh = crate::routes::photos::none_match(&req, &etag);
    let mut response = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header(("X-Frame-Options", "DENY"));
    if fresh {
        return response.finish();
    }
    response
        .insert_header((header::CONTENT_TYPE, content_type))
        .body(bytes)
}

/// A quoted strong ETag: a hash of the bytes (FNV-1a, 64 bits: enough to tell builds apart).
fn etag(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("\"{hash:016x}\"")
}

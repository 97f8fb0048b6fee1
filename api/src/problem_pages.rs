//! `/problems/{kind}`: the page behind each problem `type` (what it means, what to do), and
//! `/problems`, the list. Plain HTML, not part of the OpenAPI document (they are for people).

use actix_web::{HttpResponse, web};

use crate::ApiError;
use crate::error::{PROBLEM_KINDS, ProblemKind};

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/problems", web::get().to(index))
        .route("/problems/{kind}", web::get().to(page));
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Inline code (`like this`) as `<code>`, the rest escaped.
fn prose(text: &str) -> String {
    text.split('`')
        .enumerate()
        .map(|(index, part)| {
            if index % 2 == 1 {
                format!("<code>{}</code>", escape(part))
            } else {
                escape(part)
            }
        })
        .collect()
}

fn html(title: &str, body: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=86400"))
        .insert_header((
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'",
        ))
        .body(format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{title}</title><style>body{{font-family:system-ui,sans-serif;max-width:40em;\
             margin:2em auto;padding:0 1em;line-height:1.5}}code{{background:#eee;padding:0 .2em}}\
             </style></head><body>{body}</body></html>\n",
            title = escape(title),
        ))
}

fn section(kind: &ProblemKind) -> String {
    format!(
        "<p><code>type</code>: <code>{path}</code> &middot; status {status}</p>\
         <h2>What it means</h2><p>{meaning}</p><h2>What to do</h2><p>{fix}</p>",
        path = kind.path,
        status = kind.status.as_u16(),
        meaning = prose(kind.meaning),
        fix = prose(kind.fix),
    )
}

async fn page(kind: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let kind = ProblemKind::by_slug(&kind).ok_or_else(|| ApiError::NotFound {
        what: "problem type (see /problems for the list)".to_owned(),
    })?;
    Ok(html(
        kind.title,
        &format!(
            "<h1>{}</h1>{}<p><a href=\"/problems\">Every kind of problem</a></p>",
            escape(kind.title),
            section(kind)
        ),
    ))
}

async fn index() -> HttpResponse {
    let items: String = PROBLEM_KINDS
        .iter()
        .map(|kind| {
            format!(
                "<li><a href=\"{path}\"><code>{path}</code></a> ({status}): {title}</li>",
                path = kind.path,
                status = kind.status.as_u16(),
                title = escape(kind.title),
            )
        })
        .collect();
    html(
        "Problem types",
        &format!(
            "<h1>Problem types</h1><p>Every error of this API is an \
             <code>application/problem+json</code> body (RFC 9457) whose <code>type</code> is one \
             of these pages.</p><ul>{items}</ul>"
        ),
    )
}

//! The OpenAPI 3.1 document (collected from the served routes) and its offline UI at `/docs`.

use actix_web::{App, HttpResponse, web};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{self, OpenApi as Document};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "AI Story Creator API",
        description = "Upload photos and get stories written from them. Errors are \
                       application/problem+json (RFC 9457).",
        license(name = "MIT"),
    ),
    modifiers(&BearerScheme),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "auth", description = "Accounts and tokens"),
        (name = "users", description = "Your own account"),
        (name = "photos", description = "Upload, list, download and manage your photos"),
    )
)]
struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, document: &mut Document) {
        let components = document.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("Access token from POST /api/v1/auth/login"))
                    .build(),
            ),
        );
    }
}

/// The document for the routes [`crate::routes::configure`] serves.
pub fn document() -> Document {
    let (_, mut document) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(crate::routes::configure)
        .split_for_parts();
    document.openapi = openapi::OpenApiVersion::Version31;
    document
}

/// `GET /api/openapi.json` and the Swagger UI at `/docs` (vendored: works offline).
pub fn configure(config: &mut web::ServiceConfig, document: Document) {
    let json = serde_json::to_vec(&document).unwrap_or_default();
    config
        .route(
            "/api/openapi.json",
            web::get().to(move || {
                let json = json.clone();
                async move {
                    HttpResponse::Ok()
                        .content_type("application/json")
                        .body(json)
                }
            }),
        )
        .service(web::redirect("/docs", "/docs/"))
        .service(SwaggerUi::new("/docs/{_:.*}").url("/api/openapi.json", document));
}

/// The methods each documented path serves, to answer `Allow` on a 405.
#[derive(Debug, Clone, Default)]
pub struct RouteTable(Vec<(Vec<String>, Vec<&'static str>)>);

impl RouteTable {
    pub fn from_document(document: &Document) -> Self {
        let mut table = Vec::new();
        for (path, item) in &document.paths.paths {
            let segments = path.split('/').map(str::to_owned).collect();
            let mut methods = Vec::new();
            for (method, present) in [
                ("GET", item.get.is_some()),
                ("POST", item.post.is_some()),
                ("PUT", item.put.is_some()),
                ("PATCH", item.patch.is_some()),
                ("DELETE", item.delete.is_some()),
            ] {
                if present {
                    methods.push(method);
                }
            }
            if methods.contains(&"GET") {
                methods.push("HEAD");
            }
            table.push((segments, methods));
        }
        RouteTable(table)
    }

    /// `GET, HEAD` and the like for a concrete path (`{id}` segments match anything).
    pub fn allowed(&self, path: &str) -> String {
        let wanted: Vec<&str> = path.split('/').collect();
        // The most specific routes win: `/photos/uploads` over `/photos/{id}`.
        let mut best = 0usize;
        let mut methods: Vec<&str> = Vec::new();
        for (segments, serves) in &self.0 {
            let matches = segments.len() == wanted.len()
                && segments
                    .iter()
                    .zip(&wanted)
                    .all(|(pattern, actual)| pattern.starts_with('{') || pattern == actual);
            if !matches {
                continue;
            }
            let literal = segments.iter().filter(|s| !s.starts_with('{')).count();
            if literal > best {
                best = literal;
                methods.clear();
            }
            if literal == best {
                methods.extend(
                    serves
                        .iter()
                        .filter(|m| !methods.contains(m))
                        .collect::<Vec<_>>(),
                );
            }
        }
        methods.join(", ")
    }
}

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
    components(schemas(
        crate::routes::stories::PhotoDeleted,
        crate::routes::photos::ThumbnailSize
    )),
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
    add_links(&mut document);
    add_invalid_id_answers(&mut document);
    add_common_headers(&mut document);
    // A new password or email needs the current password: JSON Schema's dependentRequired,
    // which utoipa has no attribute for (written through the extensions map, serialized flat).
    if let Some(components) = document.components.as_mut()
        && let Some(openapi::RefOr::T(openapi::Schema::Object(update))) =
            components.schemas.get_mut("UpdateMeRequest")
    {
        update
            .extensions
            .get_or_insert_with(Default::default)
            .insert(
                "dependentRequired".to_owned(),
                serde_json::json!({
                    "password": ["current_password"],
                    "email": ["current_password"],
                }),
            );
    }
    document
}

/// Every operation with a path id answers 422 for an id that is not a whole number (`/photos/abc`,
/// or one past the 64-bit range); most already document a 422 for their body or query.
fn add_invalid_id_answers(document: &mut Document) {
    for (path, item) in &mut document.paths.paths {
        if !path.contains('{') {
            continue;
        }
        let operations = [
            item.get.as_mut(),
            item.post.as_mut(),
            item.put.as_mut(),
            item.patch.as_mut(),
            item.delete.as_mut(),
        ];
        for operation in operations.into_iter().flatten() {
            if operation.responses.responses.contains_key("422") {
                continue;
            }
            let response = openapi::ResponseBuilder::new()
                .description("A path id that is not a whole number in the 64-bit range")
                .content(
                    crate::error::PROBLEM_JSON,
                    openapi::ContentBuilder::new()
                        .schema(Some(openapi::Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build();
            operation
                .responses
                .responses
                .insert("422".to_owned(), openapi::RefOr::T(response));
        }
    }
}

/// The response headers every operation may send, by status: `X-Request-Id` on every answer,
/// `WWW-Authenticate` on 401, `Retry-After` on 429 and 503, `Allow` on 405.
fn add_common_headers(document: &mut Document) {
    let header = |description: &str| {
        let mut header = openapi::header::Header::default();
        header.description = Some(description.to_owned());
        header
    };
    for item in document.paths.paths.values_mut() {
        let operations = [
            item.get.as_mut(),
            item.post.as_mut(),
            item.put.as_mut(),
            item.patch.as_mut(),
            item.delete.as_mut(),
        ];
        for operation in operations.into_iter().flatten() {
            for (status, response) in &mut operation.responses.responses {
                let openapi::RefOr::T(response) = response else {
                    continue;
                };
                response.headers.insert(
                    "X-Request-Id".to_owned(),
                    header(
                        "The request's id (yours when you sent a sane one, else ours); quote it \
                         when reporting a problem",
                    ),
                );
                let extra = match status.as_str() {
                    "401" => Some((
                        "WWW-Authenticate",
                        "`Bearer realm=\"aistory\"`, with `error=\"invalid_token\"` when a token \
                         was sent but refused",
                    )),
                    "429" | "503" => Some(("Retry-After", "Seconds to wait before retrying")),
                    "405" => Some(("Allow", "The methods this path serves")),
                    _ => None,
                };
                if let Some((name, description)) = extra {
                    response
                        .headers
                        .insert(name.to_owned(), header(description));
                }
            }
        }
    }
}

/// OpenAPI links: which operations take the id a response carries (for clients, and for
/// stateful fuzzing, which follows them). Operation ids are unique (`operation_id = ...`).
/// A link's target operation ids and their link objects (without `operationId`).
type Targets = Vec<(&'static str, serde_json::Value)>;

fn add_links(document: &mut Document) {
    use serde_json::json;
    // Each target takes the id at `expression`.
    let by_id = |targets: &[&'static str], expression: &str| -> Targets {
        targets
            .iter()
            .map(|target| (*target, json!({ "parameters": { "id": expression } })))
            .collect()
    };
    // Not to `photo_story` from a new photo or a story request: a story is written later, by a
    // worker; only a listed or read story says its photo has one.
    const FROM_PHOTO: &[&str] = &[
        "get_photo",
        "rename_photo",
        "delete_photo",
        "photo_content",
        "photo_thumbnail",
        "photo_events",
        "photo_events_ticket",
        "request_story",
    ];
    let with_refresh_token = ["refresh", "logout"]
        .into_iter()
        .map(|target| {
            let body = json!({ "refresh_token": "$response.body#/refresh_token" });
            (target, json!({ "requestBody": body }))
        })
        .collect();
    let login_as_registered = vec![(
        "login",
        json!({ "requestBody": {
            "username": "$request.body#/username",
            "password": "$request.body#/password",
        } }),
    )];
    let links: Vec<(&str, &str, &str, Targets)> = vec![
        (
            "/api/v1/photos",
            "post",
            "201",
            by_id(FROM_PHOTO, "$response.body#/id"),
        ),
        (
            "/api/v1/photos",
            "get",
            "200",
            by_id(FROM_PHOTO, "$response.body#/items/0/id"),
        ),
        (
            "/api/v1/photos/{id}/story",
            "post",
            "202",
            by_id(&["get_photo", "photo_events"], "$response.body#/id"),
        ),
        (
            UPLOADS,
            "post",
            "201",
            by_id(
                &["complete_direct_upload", "get_photo"],
                "$response.body#/photo/id",
            ),
        ),
        (
            "/api/v1/photos/{id}/story",
            "get",
            "200",
            by_id(&["get_story", "delete_story"], "$response.body#/id"),
        ),
        (
            "/api/v1/stories",
            "get",
            "200",
            [
                by_id(&["get_story", "delete_story"], "$response.body#/items/0/id"),
                by_id(&["photo_story"], "$response.body#/items/0/photo_id"),
            ]
            .concat(),
        ),
        (
            "/api/v1/stories/{id}",
            "get",
            "200",
            by_id(&["photo_story"], "$response.body#/photo_id"),
        ),
        ("/api/v1/auth/login", "post", "200", with_refresh_token),
        ("/api/v1/auth/register", "post", "201", login_as_registered),
    ];
    for (path, method, status, targets) in links {
        let Some(item) = document.paths.paths.get_mut(path) else {
            continue;
        };
        let operation = match method {
            "get" => item.get.as_mut(),
            _ => item.post.as_mut(),
        };
        let Some(openapi::RefOr::T(response)) =
            operation.and_then(|operation| operation.responses.responses.get_mut(status))
        else {
            continue;
        };
        // Written as JSON: utoipa 5.5 serializes `Link::operation_id` as `operation_id`, not
        // `operationId`, which no OpenAPI tool reads.
        let links: serde_json::Map<String, serde_json::Value> = targets
            .into_iter()
            .map(|(target, mut link)| {
                link["operationId"] = json!(target);
                (target.to_owned(), link)
            })
            .collect();
        response
            .extensions
            .get_or_insert_with(Default::default)
            .insert("links".to_owned(), serde_json::Value::Object(links));
    }
}

/// What this deployment accepts beyond the code's types, written into its document so that a
/// request valid by the document is one this server takes (and a client can read the limits).
#[derive(Debug, Clone)]
pub struct Deployment {
    /// An S3 store with credentials: the direct-upload operations work. Elsewhere they are left
    /// out of the document (and answer 400 saying why).
    pub direct_uploads: bool,
    /// `AISTORY_MAX_UPLOAD_BYTES`: the `maximum` of a declared `size_bytes`.
    pub max_upload_bytes: u64,
    /// The story languages the configured writer accepts (a `pattern`).
    pub language_pattern: &'static str,
    /// `AISTORY_DOWNLOADS=redirect`: downloads answer 302 (left out of the document otherwise).
    pub redirects: bool,
}

const UPLOADS: &str = "/api/v1/photos/uploads";
const COMPLETE: &str = "/api/v1/photos/{id}/complete";

/// `document` (from [`document`]) for one deployment (see [`Deployment`]).
pub fn document_for(mut document: Document, deployment: &Deployment) -> Document {
    if !deployment.direct_uploads {
        document.paths.paths.remove(UPLOADS);
        document.paths.paths.remove(COMPLETE);
    }
    if !deployment.redirects {
        for path in [
            "/api/v1/photos/{id}/content",
            "/api/v1/photos/{id}/thumbnail",
        ] {
            let get = document
                .paths
                .paths
                .get_mut(path)
                .and_then(|item| item.get.as_mut());
            if let Some(get) = get {
                get.responses.responses.remove("302");
            }
        }
    }
    // The multipart upload says which file types it takes, so generators send images.
    let upload = document
        .paths
        .paths
        .get_mut("/api/v1/photos")
        .and_then(|item| item.post.as_mut())
        .and_then(|operation| operation.request_body.as_mut())
        .and_then(|body| body.content.get_mut("multipart/form-data"));
    if let Some(content) = upload {
        let mut encoding = openapi::encoding::Encoding::default();
        encoding.content_type = Some(
            service::images::ImageKind::CONTENT_TYPES
                .iter()
                .filter(|kind| !matches!(**kind, "image/jpg" | "image/heif"))
                .copied()
                .collect::<Vec<_>>()
                .join(", "),
        );
        content.encoding.insert("file".to_owned(), encoding);
    }
    let Some(components) = document.components.as_mut() else {
        return document;
    };
    if let Some(request) = property(components, "DirectUploadRequest", "content_type") {
        request.enum_values = Some(
            service::images::ImageKind::CONTENT_TYPES
                .iter()
                .map(|kind| serde_json::Value::from(*kind))
                .collect(),
        );
        request.min_length = None;
        request.max_length = None;
    }
    if let Some(size) = property(components, "DirectUploadRequest", "size_bytes") {
        size.maximum = Some(utoipa::Number::UInt(
            usize::try_from(deployment.max_upload_bytes).unwrap_or(usize::MAX),
        ));
    }
    if let Some(language) = property(components, "StoryRequestBody", "language") {
        language.pattern = Some(deployment.language_pattern.to_owned());
    }
    document
}

/// The inline schema of `schema.field` in the components, when it is a plain one.
fn property<'a>(
    components: &'a mut openapi::Components,
    schema: &str,
    field: &str,
) -> Option<&'a mut openapi::schema::Object> {
    let openapi::RefOr::T(openapi::Schema::Object(object)) = components.schemas.get_mut(schema)?
    else {
        return None;
    };
    match object.properties.get_mut(field)? {
        openapi::RefOr::T(openapi::Schema::Object(property)) => Some(property),
        _ => None,
    }
}

/// The served JSON: `document` with what utoipa's types cannot say (JSON Schema's
/// `contentMediaType` / `contentSchema` for the events' `data`).
pub fn served_json(document: &Document) -> serde_json::Value {
    let mut json = serde_json::to_value(document).unwrap_or_default();
    describe_events(&mut json);
    inline_downloads(&mut json);
    json
}

/// The download's bytes as an inline `{type: string, format: binary}` per image type, which
/// tools read as a file (a `$ref` to a string schema looks like structured data to some).
fn inline_downloads(json: &mut serde_json::Value) {
    for path in [
        "/paths/~1api~1v1~1photos~1{id}~1content/get/responses/200/content",
        "/paths/~1api~1v1~1photos~1{id}~1thumbnail/get/responses/200/content",
    ] {
        if let Some(content) = json
            .pointer_mut(path)
            .and_then(serde_json::Value::as_object_mut)
        {
            for media in content.values_mut() {
                media["schema"] = serde_json::json!({ "type": "string", "format": "binary" });
            }
        }
    }
    if let Some(schemas) = json
        .pointer_mut("/components/schemas")
        .and_then(serde_json::Value::as_object_mut)
    {
        schemas.remove("PhotoBytes");
    }
}

/// One server-sent event of `/photos/{id}/events` (`PhotoEvent`: its fields, `data` being JSON
/// of the photo or of `{"id": N}`), and the stream's schema: an event (what SSE-aware tools
/// such as schemathesis check each event against), or the raw text (what generated clients
/// that read the body whole get).
fn describe_events(json: &mut serde_json::Value) {
    use serde_json::json;
    let event = json!({
        "type": "object",
        "description": "One server-sent event of `/photos/{id}/events`, as its fields.",
        "required": ["event", "id", "data"],
        "properties": {
            "event": { "type": "string", "enum": ["status", "deleted"],
                       "description": "`status`: the photo changed; `deleted`: it is gone (the last event)" },
            "id": { "type": "string", "pattern": "^([0-9]+-[a-z]+|deleted)$",
                    "description": "The photo's version: send it back as `Last-Event-ID`" },
            "data": { "type": "string", "description": "JSON: the photo, or `{\"id\": N}` for `deleted`" }
        },
        "oneOf": [
            { "properties": { "event": { "const": "status" }, "data": {
                "contentMediaType": "application/json",
                "contentSchema": { "$ref": "#/components/schemas/PhotoPublic" } } } },
            { "properties": { "event": { "const": "deleted" }, "data": {
                "contentMediaType": "application/json",
                "contentSchema": { "$ref": "#/components/schemas/PhotoDeleted" } } } }
        ]
    });
    if let Some(schemas) = json
        .pointer_mut("/components/schemas")
        .and_then(serde_json::Value::as_object_mut)
    {
        schemas.insert("PhotoEvent".to_owned(), event);
    }
    if let Some(stream) = json.pointer_mut(
        "/paths/~1api~1v1~1photos~1{id}~1events/get/responses/200/content/text~1event-stream",
    ) {
        stream["schema"] = json!({
            "anyOf": [
                { "$ref": "#/components/schemas/PhotoEvent" },
                { "type": "string", "description": "The raw `text/event-stream` body" }
            ]
        });
    }
}

/// `GET /api/openapi.json` and the Swagger UI at `/docs` (vendored: works offline).
pub fn configure(config: &mut web::ServiceConfig, document: Document) {
    let json = serde_json::to_vec(&served_json(&document)).unwrap_or_default();
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

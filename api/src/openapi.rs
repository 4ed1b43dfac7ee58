//! The OpenAPI 3.1 document, generated from the handlers' annotations, then completed from the
//! access-policy table: security requirements and the error responses every route shares are
//! added here once, so no handler can forget them.

use axum::Router;
use serde_json::{Value, json};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::AppState;
use crate::policy::{Access, access_of};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "stridelog API",
        description = "Running efficiency for endurance athletes. Every write is an event and \
answers with its log position; pass it as `?min_position=` (or `X-Min-Position`) to a read to \
see the write reflected. Errors are RFC 9457 problem+json.",
        license(name = "AGPL-3.0-only", identifier = "AGPL-3.0-only")
    ),
    components(schemas(
        crate::problem::Problem,
        crate::problem::FieldProblem,
        projections::activities::ActivitySort,
        projections::activities::SortDirection,
        domain::activity::Sport,
        domain::athlete::OnboardingStep,
        crate::routes::journal::Day,
        crate::routes::journal::Block,
    )),
    tags(
        (name = "auth", description = "Accounts and sessions"),
        (name = "me", description = "The caller's profile, preferences and onboarding"),
        (name = "activities", description = "Runs and other sessions"),
        (name = "efficiency", description = "Efficiency factor, decoupling, trends and training load"),
        (name = "correlations", description = "Which habits go with better or worse efficiency: associations with false-discovery control"),
        (name = "journal", description = "Check-ins, nutrition, work and body composition"),
        (name = "coach", description = "Read-only access a coach was granted"),
        (name = "admin", description = "Users, audit, replay, security log, metrics and health in detail: admins and owners only"),
        (name = "ops", description = "Health")
    )
)]
struct Base;

pub fn base() -> utoipa::openapi::OpenApi {
    Base::openapi()
}

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    })
}

/// Adds what the policy table implies to every operation.
pub fn finish(doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let mut v = serde_json::to_value(&doc).expect("an OpenAPI document serialises");
    v["components"]["securitySchemes"]["bearer"] = json!({
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": "An access token from /v1/auth/login, /register or /refresh (15 minutes)."
    });
    if let Some(paths) = v["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, op) in item.iter_mut() {
                let Some(op) = op.as_object_mut() else {
                    continue;
                };
                let access = access_of(&method.to_uppercase(), path);
                complete(path, method, access, op);
            }
        }
    }
    serde_json::from_value(v).expect("the completed document is still OpenAPI")
}

/// What opens a parameter in a path template (`/v1/activities/{activity_id}`).
const PATH_PARAMETER: char = '{';

fn complete(
    path: &str,
    method: &str,
    access: Option<Access>,
    op: &mut serde_json::Map<String, Value>,
) {
    let signed_in = access.filter(|a| *a != Access::Public);
    let mut errors = request_errors(op);
    if method != "get" && signed_in.is_some() {
        errors.push((
            "409",
            "Changed by another request meanwhile (read again and retry), or not allowed in its current state",
        ));
    }
    let reads_models = op
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|p| p.iter().any(|p| p["name"] == "min_position"));
    if reads_models {
        errors.push((
            "503",
            "The read model has not reached `min_position` within 5 s; see Retry-After",
        ));
    }
    // Health and documentation are not limited (api/src/limits.rs `public_checks`).
    let limited = access.is_some()
        && !(path.starts_with("/health") || path == "/openapi.json" || path.starts_with("/docs"));
    if limited {
        errors.push((
            "429",
            "Rate limited (see RateLimit-Policy, RateLimit and Retry-After)",
        ));
    }
    if let Some(a) = signed_in {
        errors.push(("401", "No valid access token"));
        if a == Access::Coach {
            errors.push(("403", "The caller is not a coach"));
        }
        if a == Access::Admin {
            errors.push((
                "403",
                "The caller is not an admin or owner, or may not act on this account",
            ));
        }
        if a == Access::CoachOfAthlete || path.contains(PATH_PARAMETER) {
            errors.push(("404", "Not found, or not visible to the caller"));
        }
    }
    let responses = op
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("responses is an object");
    // A response the handler documented itself keeps its description.
    for (status, description) in errors {
        responses
            .entry(status.to_string())
            .or_insert_with(|| problem(description));
    }
    if signed_in.is_some() && !op.contains_key("security") {
        op.insert("security".into(), json!([{"bearer": []}]));
    }
    problem_json_errors(op);
}

/// The errors that what the request carries can cause: a multipart body, a JSON body,
/// parameters. In the order they are documented.
fn request_errors(op: &serde_json::Map<String, Value>) -> Vec<(&'static str, &'static str)> {
    let has_body = op.contains_key("requestBody");
    let multipart = op
        .get("requestBody")
        .and_then(|b| b.get("content"))
        .and_then(Value::as_object)
        .is_some_and(|c| c.contains_key("multipart/form-data"));
    let has_params = op
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|p| !p.is_empty());
    let mut errors = Vec::new();
    if multipart {
        errors.extend([
            ("400", "The body is not valid multipart/form-data"),
            ("413", "A file or the request is over its size limit"),
            ("415", "The body is not `multipart/form-data`"),
            (
                "422",
                "No file could be imported; `errors` names each file and its problem",
            ),
            (
                "503",
                "The read models are not caught up within 5 s; see Retry-After",
            ),
        ]);
    }
    if has_body {
        errors.extend([
            ("400", "The body is not valid JSON"),
            ("413", "The body is too large"),
            ("415", "The body is not `application/json`"),
            ("422", "A value was refused; `errors` names the fields"),
        ]);
    }
    if has_params {
        errors.push(("422", "A parameter was refused; `errors` names it"));
    }
    errors
}

/// Every error is problem+json, including those a handler annotated itself.
fn problem_json_errors(op: &mut serde_json::Map<String, Value>) {
    if let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) {
        for (status, response) in responses.iter_mut() {
            let is_error = status.starts_with('4') || status.starts_with('5');
            if let Some(content) = response
                .get_mut("content")
                .and_then(Value::as_object_mut)
                .filter(|_| is_error)
                && let Some(json) = content.remove("application/json")
            {
                content.insert("application/problem+json".into(), json);
            }
        }
    }
}

/// `/openapi.json` and the Swagger UI at `/docs`, served from files compiled into the binary.
pub fn docs_router(doc: utoipa::openapi::OpenApi) -> Router<AppState> {
    Router::from(SwaggerUi::new("/docs").url("/openapi.json", doc))
}

//! Data injection: an admin writes on an athlete's behalf (an activity, a check-in, a nutrition
//! entry, a correction) through the athlete's own route, so the same validation and the same
//! commands apply. Two steps: without `confirmation_token` the request is a dry run (decided,
//! nothing appended) answered with what would be appended and a token; the same request with
//! that token within 5 minutes appends, once. The events carry the admin as `impersonator_id`
//! and share a correlation id with the `AdminDataInjected` marker appended beside them.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::extract::State;
use axum::http::Request;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use domain::athlete::{Athlete, AthleteCommand, Role};
use identity::db::{SecurityFilter, role_str};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tower::ServiceExt;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::extract::{Json, Path};
use crate::policy::{Caller, OnBehalf};
use crate::problem::{ApiResult, Problem};

/// How long a dry run's confirmation token is good for.
pub const CONFIRM_WITHIN_S: i64 = 5 * 60;

/// The athlete routes an admin may write through: data, never credentials, sharing or erasure.
const INJECTABLE: &[(&str, &str)] = &[
    ("POST", "/v1/activities"),
    ("PATCH", "/v1/activities/{activity_id}"),
    ("DELETE", "/v1/activities/{activity_id}"),
    ("PUT", "/v1/activities/{activity_id}/workout-type"),
    ("POST", "/v1/activities/{activity_id}/feedback"),
    ("PUT", "/v1/activities/{activity_id}/feedback"),
    ("PUT", "/v1/checkins/{date}"),
    ("POST", "/v1/nutrition"),
    ("PATCH", "/v1/nutrition/{entry_id}"),
    ("DELETE", "/v1/nutrition/{entry_id}"),
    ("PUT", "/v1/work/{date}"),
    ("PUT", "/v1/body/{date}"),
];

/// Whether `path` is an instance of `template`: `{name}` matches one non-empty segment of
/// letters, digits and `-`.
fn matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter().zip(&p).all(|(t, p)| {
            if t.starts_with('{') {
                !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            } else {
                t == p
            }
        })
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InjectBody {
    /// Why: a snake_case code of at most 40 characters (`support_fix`, `import_repair`, ...).
    #[schema(min_length = 1, max_length = 40, pattern = "^[a-z][a-z0-9_]*$")]
    pub reason: String,
    /// The athlete route's method: `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: String,
    /// The athlete route's path, e.g. `/v1/checkins/2026-03-02` (no query string).
    #[schema(max_length = 200)]
    pub path: String,
    /// The athlete route's JSON body, exactly as the athlete would send it.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub body: Option<Value>,
    /// From the dry run's answer; absent for a dry run.
    #[serde(default)]
    pub confirmation_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InjectAnswer {
    /// True for the first step: nothing was appended.
    pub dry_run: bool,
    /// The athlete route's status and body (in a dry run: what it would answer).
    pub status: u16,
    #[schema(value_type = Object)]
    pub response: Value,
    /// Event types appended (or, in a dry run, that would be).
    pub events: Vec<String>,
    /// Send the same request again with this, before `expires_at`, to append. Absent when
    /// nothing would be appended.
    pub confirmation_token: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Log position of the `AdminDataInjected` marker.
    pub position: Option<i64>,
}

/// Keys sorted at every level: the confirmation covers the request's meaning, not its bytes.
fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let sorted: std::collections::BTreeMap<_, _> =
                m.iter().map(|(k, v)| (k.clone(), canonical(v))).collect();
            Value::Object(sorted.into_iter().collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// What a confirmation token covers: who, for whom, and the whole request.
fn subject(admin: Uuid, athlete: Uuid, b: &InjectBody) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!([
        "inject",
        admin,
        athlete,
        b.reason,
        b.method,
        b.path,
        b.body.as_ref().map(canonical),
    ]))
    .unwrap_or_default()
}

fn check_reason(reason: &str) -> ApiResult<()> {
    if domain::athlete::is_reason_code(reason) {
        Ok(())
    } else {
        Err(Problem::invalid(
            "reason",
            "a snake_case code of at most 40 characters",
        ))
    }
}

/// Writes on an athlete's behalf through their own route, in two steps (dry run, then
/// confirmed within 5 minutes).
#[utoipa::path(post, path = "/v1/admin/users/{account_id}/inject", tag = "admin",
    params(("account_id" = Uuid, Path)), request_body = InjectBody,
    responses((status = 200, body = InjectAnswer),
        (status = 409, description = "Suspended, or this confirmation was used", body = Problem)))]
pub async fn inject(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<InjectBody>,
) -> ApiResult<axum::response::Response> {
    check_reason(&body.reason)?;
    let method = body.method.to_ascii_uppercase();
    let target = target(&state, &caller, id, &method, &body.path).await?;
    let subject = subject(caller.account_id, id, &body);
    let now_s = Utc::now().timestamp();
    let (confirmed, used_code) = confirmation(&state, id, &body, &subject, now_s).await?;
    let correlation_id = Uuid::now_v7();
    let on_behalf = Caller {
        account_id: id,
        session_id: Uuid::nil(),
        role: target.role,
        impersonator: Some(caller.account_id),
        correlation_id: Some(correlation_id),
    };
    let replayed = replay(&state, on_behalf, &method, &body, confirmed.is_none()).await?;
    let (status, response, events) = match replayed {
        Ok(replayed) => replayed,
        Err(refusal) => return Ok(refusal),
    };
    if confirmed.is_none() {
        let token = (!events.is_empty()).then(|| {
            let expires = now_s + CONFIRM_WITHIN_S;
            let token = state
                .auth
                .confirmation(&subject, u64::try_from(expires).unwrap_or(0));
            (token, DateTime::from_timestamp(expires, 0))
        });
        return Ok(axum::Json(InjectAnswer {
            dry_run: true,
            status: status.as_u16(),
            response,
            events,
            confirmation_token: token.as_ref().map(|t| t.0.clone()),
            expires_at: token.and_then(|t| t.1),
            position: None,
        })
        .into_response());
    }
    let position = record(&state, &caller, id, correlation_id, &body.reason, &events).await?;
    state
        .auth
        .db
        .log_by(
            Some(caller.account_id),
            "data_injected",
            Some(id),
            None,
            used_code.as_deref(),
        )
        .await?;
    Ok(axum::Json(InjectAnswer {
        dry_run: false,
        status: status.as_u16(),
        response,
        events,
        confirmation_token: None,
        expires_at: None,
        position,
    })
    .into_response())
}

/// The account data is injected into, once the route is one data can be injected through and
/// the account one it can be injected into.
async fn target(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    method: &str,
    path: &str,
) -> ApiResult<identity::db::Account> {
    if path.len() > 200
        || !INJECTABLE
            .iter()
            .any(|(m, t)| *m == method && matches(t, path))
    {
        return Err(Problem::invalid(
            "path",
            "not a route data can be injected through (activities, feedback, check-ins, \
             nutrition entries, work, body composition)",
        ));
    }
    let target = super::admin::account(state, id).await?;
    if id == caller.account_id || matches!(target.role, Role::Admin | Role::Owner) {
        return Err(Problem::forbidden(
            "Data is injected into athlete and coach accounts only, never one's own.",
        ));
    }
    if target.suspended {
        return Err(Problem::conflict(
            "This account is suspended; reinstate it first.",
        ));
    }
    Ok(target)
}

/// The confirmation token, when the request carries a valid one, and the code its use is
/// recorded under. A confirmation appends once: a second use is refused.
async fn confirmation(
    state: &AppState,
    id: Uuid,
    body: &InjectBody,
    subject: &[u8],
    now_s: i64,
) -> ApiResult<(Option<String>, Option<String>)> {
    let now_u = u64::try_from(now_s).unwrap_or(0);
    let confirmed = match &body.confirmation_token {
        None => return Ok((None, None)),
        Some(token) if state.auth.confirms(token, subject, now_u) => token.clone(),
        Some(_) => {
            return Err(Problem::invalid(
                "confirmation_token",
                "expired, or made for a different request; send the dry run again",
            ));
        }
    };
    let code = format!(
        "{}:{}",
        body.reason,
        &confirmed[confirmed.len().saturating_sub(16)..]
    );
    let used = !state
        .auth
        .db
        .security_log_search(&SecurityFilter {
            account_id: Some(id),
            kind: Some("data_injected".into()),
            detail: Some(code.clone()),
            limit: 1,
            ..Default::default()
        })
        .await?
        .is_empty();
    if used {
        return Err(Problem::conflict("This confirmation was used already."));
    }
    Ok((Some(confirmed), Some(code)))
}

/// What the athlete's own route does with the request, on their behalf: its status, its
/// answer and the events it decided (appended unless `dry_run`). A refusal is the route's own
/// problem, unchanged, as the `Err` of the inner result.
async fn replay(
    state: &AppState,
    on_behalf: Caller,
    method: &str,
    body: &InjectBody,
    dry_run: bool,
) -> ApiResult<Result<(axum::http::StatusCode, Value, Vec<String>), axum::response::Response>> {
    let mut req = Request::builder()
        .method(method)
        .uri(&body.path)
        .header("content-type", "application/json")
        .body(match &body.body {
            Some(b) => Body::from(serde_json::to_vec(b).unwrap_or_default()),
            None => Body::empty(),
        })
        .map_err(|_| Problem::invalid("path", "not a valid request path"))?;
    req.extensions_mut().insert(OnBehalf(on_behalf));
    let scope = commands::scope::Injection::new(dry_run);
    let router = crate::inner_router(state.clone());
    let res = commands::scope::run(scope.clone(), async move { router.oneshot(req).await })
        .await
        .map_err(Problem::internal)?;
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .map_err(Problem::internal)?;
    let response: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !status.is_success() {
        let mut res = (status, axum::Json(response)).into_response();
        res.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/problem+json"),
        );
        return Ok(Err(res));
    }
    Ok(Ok((status, response, scope.decided())))
}

/// The marker event on the athlete's stream naming the admin, the reason and what was
/// appended; its log position. Nothing when the route appended nothing.
async fn record(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    correlation_id: Uuid,
    reason: &str,
    events: &[String],
) -> ApiResult<Option<i64>> {
    if events.is_empty() {
        return Ok(None);
    }
    let ctx = commands::CommandContext {
        actor: store::Actor::user(caller.account_id, role_str(caller.role)),
        correlation_id,
        ..commands::CommandContext::athlete(id)
    };
    let executed = state
        .commands
        .execute_with_retry::<Athlete>(
            &ctx,
            &id.to_string(),
            AthleteCommand::RecordAdminDataInjection {
                admin_id: caller.account_id,
                reason: reason.to_string(),
                event_types: events.iter().cloned().collect::<BTreeSet<_>>(),
                event_count: u32::try_from(events.len()).unwrap_or(u32::MAX),
            },
        )
        .await?;
    Ok(executed.outcome.map(|o| o.cursor.position))
}

//! Who may call what. [`ROUTES`] is the one table of access policies; a middleware enforces it
//! for every matched route before any handler runs, and a route missing from it is refused.
//! Handlers then read the caller from [`Caller`], never from a body or query.

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use domain::athlete::{Athlete, Role};
use uuid::Uuid;

use crate::AppState;
use crate::limits;
use crate::problem::Problem;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, unauthenticated: health, documentation, and the login flow.
    Public,
    /// Any signed-in account, acting on its own data. Ids in the path name the caller's own
    /// objects; anyone else's answer 404.
    Account,
    /// A signed-in account with the coach role.
    Coach,
    /// A coach whom the athlete in the path has granted read access. Anyone else: 404.
    CoachOfAthlete,
    /// An admin or owner account. What an admin may do to staff accounts is narrower
    /// (docs/admin.md); the handlers check that against the target.
    Admin,
}

/// (method, path template, access). Every route the router serves is here; a test checks both
/// directions against the router's OpenAPI document.
pub const ROUTES: &[(&str, &str, Access)] = &[
    ("GET", "/health", Access::Public),
    ("GET", "/health/live", Access::Public),
    ("GET", "/openapi.json", Access::Public),
    ("GET", "/docs", Access::Public),
    ("GET", "/docs/", Access::Public),
    ("GET", "/docs/{*rest}", Access::Public),
    ("POST", "/v1/auth/register", Access::Public),
    ("POST", "/v1/auth/login", Access::Public),
    ("POST", "/v1/auth/refresh", Access::Public),
    // Authorised by possession of the refresh token it revokes.
    ("POST", "/v1/auth/logout", Access::Public),
    ("POST", "/v1/auth/password", Access::Account),
    ("GET", "/v1/me", Access::Account),
    ("PATCH", "/v1/me", Access::Account),
    ("DELETE", "/v1/me", Access::Account),
    ("GET", "/v1/me/preferences", Access::Account),
    ("PATCH", "/v1/me/preferences", Access::Account),
    ("GET", "/v1/me/onboarding", Access::Account),
    ("POST", "/v1/me/onboarding/{step}", Access::Account),
    ("GET", "/v1/me/coaches", Access::Account),
    ("POST", "/v1/me/coaches/{coach_id}", Access::Account),
    ("DELETE", "/v1/me/coaches/{coach_id}", Access::Account),
    ("POST", "/v1/activities", Access::Account),
    ("POST", "/v1/activities/import", Access::Account),
    ("GET", "/v1/activities", Access::Account),
    ("GET", "/v1/activities/{activity_id}", Access::Account),
    ("PATCH", "/v1/activities/{activity_id}", Access::Account),
    ("DELETE", "/v1/activities/{activity_id}", Access::Account),
    (
        "PUT",
        "/v1/activities/{activity_id}/workout-type",
        Access::Account,
    ),
    (
        "GET",
        "/v1/activities/{activity_id}/efficiency",
        Access::Account,
    ),
    ("GET", "/v1/efficiency/trends", Access::Account),
    ("GET", "/v1/training-load", Access::Account),
    ("GET", "/v1/correlations", Access::Account),
    ("GET", "/v1/correlations/what-works", Access::Account),
    ("GET", "/v1/correlations/what-doesnt-work", Access::Account),
    ("GET", "/v1/correlations/combinations", Access::Account),
    ("POST", "/v1/correlations/recompute", Access::Account),
    ("GET", "/v1/correlations/jobs/{job_id}", Access::Account),
    (
        "POST",
        "/v1/activities/{activity_id}/feedback",
        Access::Account,
    ),
    (
        "GET",
        "/v1/activities/{activity_id}/feedback",
        Access::Account,
    ),
    (
        "PUT",
        "/v1/activities/{activity_id}/feedback",
        Access::Account,
    ),
    (
        "DELETE",
        "/v1/activities/{activity_id}/feedback",
        Access::Account,
    ),
    ("GET", "/v1/feedback/pending", Access::Account),
    ("PUT", "/v1/checkins/{date}", Access::Account),
    ("GET", "/v1/checkins/{date}", Access::Account),
    ("GET", "/v1/checkins", Access::Account),
    ("POST", "/v1/nutrition", Access::Account),
    ("GET", "/v1/nutrition", Access::Account),
    ("GET", "/v1/nutrition/presets", Access::Account),
    ("POST", "/v1/nutrition/presets", Access::Account),
    ("GET", "/v1/nutrition/{entry_id}", Access::Account),
    ("PATCH", "/v1/nutrition/{entry_id}", Access::Account),
    ("DELETE", "/v1/nutrition/{entry_id}", Access::Account),
    ("PUT", "/v1/work/{date}", Access::Account),
    ("GET", "/v1/work/{date}", Access::Account),
    ("GET", "/v1/work", Access::Account),
    ("PUT", "/v1/body/{date}", Access::Account),
    ("GET", "/v1/body/{date}", Access::Account),
    ("GET", "/v1/body", Access::Account),
    ("GET", "/v1/availability", Access::Account),
    ("PUT", "/v1/availability", Access::Account),
    ("PATCH", "/v1/availability/{day}/{block}", Access::Account),
    ("POST", "/v1/insights/feedback", Access::Account),
    ("GET", "/v1/insights/feedback/stats", Access::Account),
    ("GET", "/v1/coach/athletes", Access::Coach),
    (
        "GET",
        "/v1/coach/athletes/{athlete_id}/profile",
        Access::CoachOfAthlete,
    ),
    (
        "GET",
        "/v1/coach/athletes/{athlete_id}/activities",
        Access::CoachOfAthlete,
    ),
    (
        "GET",
        "/v1/coach/athletes/{athlete_id}/activities/{activity_id}",
        Access::CoachOfAthlete,
    ),
    (
        "GET",
        "/v1/coach/athletes/{athlete_id}/checkins",
        Access::CoachOfAthlete,
    ),
    (
        "GET",
        "/v1/coach/athletes/{athlete_id}/nutrition",
        Access::CoachOfAthlete,
    ),
    (
        "GET",
        "/v1/coach/athletes/{athlete_id}/work",
        Access::CoachOfAthlete,
    ),
    (
        "GET",
        "/v1/coach/athletes/{athlete_id}/body",
        Access::CoachOfAthlete,
    ),
    (
        "GET",
        "/v1/coach/athletes/{athlete_id}/availability",
        Access::CoachOfAthlete,
    ),
    ("GET", "/v1/admin/users", Access::Admin),
    ("GET", "/v1/admin/users/{account_id}", Access::Admin),
    (
        "POST",
        "/v1/admin/users/{account_id}/suspend",
        Access::Admin,
    ),
    (
        "POST",
        "/v1/admin/users/{account_id}/reinstate",
        Access::Admin,
    ),
    ("PUT", "/v1/admin/users/{account_id}/role", Access::Admin),
    ("GET", "/v1/admin/users/{account_id}/audit", Access::Admin),
    ("GET", "/v1/admin/users/{account_id}/replay", Access::Admin),
    ("GET", "/v1/admin/security-log", Access::Admin),
    ("GET", "/v1/admin/metrics", Access::Admin),
    ("GET", "/v1/admin/health", Access::Admin),
    (
        "POST",
        "/v1/admin/users/{account_id}/impersonate",
        Access::Admin,
    ),
    ("DELETE", "/v1/me/impersonation", Access::Account),
    ("GET", "/v1/me/access-log", Access::Account),
    ("POST", "/v1/admin/users/{account_id}/inject", Access::Admin),
    (
        "POST",
        "/v1/admin/users/{account_id}/correlations/run",
        Access::Admin,
    ),
    ("POST", "/v1/me/export", Access::Account),
    ("GET", "/v1/me/export/{export_id}", Access::Account),
    // The one-time link's token is the credential.
    ("GET", "/v1/exports/download", Access::Public),
    ("GET", "/v1/admin/aggregates", Access::Admin),
    ("GET", "/v1/admin/aggregates/{query_id}", Access::Admin),
    // The admin console (api/src/console): HTML pages, the session in cookies, refusals as
    // pages (a redirect to the login page, a 403 page). Its POSTs also check a CSRF token.
    ("GET", "/admin", Access::Admin),
    ("GET", "/admin/login", Access::Public),
    ("POST", "/admin/login", Access::Public),
    // Ends the session its cookies name, with that session's CSRF token: also a refused
    // non-admin's, who cannot reach an Admin route.
    ("POST", "/admin/logout", Access::Public),
    ("GET", "/admin/console.css", Access::Public),
    ("GET", "/admin/users", Access::Admin),
    ("GET", "/admin/users/{account_id}", Access::Admin),
    ("POST", "/admin/users/{account_id}/suspend", Access::Admin),
    ("POST", "/admin/users/{account_id}/reinstate", Access::Admin),
    (
        "POST",
        "/admin/users/{account_id}/impersonate",
        Access::Admin,
    ),
    ("GET", "/admin/users/{account_id}/audit", Access::Admin),
    ("GET", "/admin/health", Access::Admin),
    ("GET", "/admin/metrics", Access::Admin),
    ("GET", "/admin/aggregates", Access::Admin),
];

pub fn access_of(method: &str, path: &str) -> Option<Access> {
    ROUTES
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map(|(_, _, a)| *a)
}

/// The verified caller of a non-public route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub account_id: Uuid,
    pub session_id: Uuid,
    /// From the account as it is now, not from the token.
    pub role: Role,
    /// The admin acting as this account, in an impersonation session or a data injection.
    pub impersonator: Option<Uuid>,
    /// Set by a data injection, so its events and its `AdminDataInjected` marker share one.
    pub correlation_id: Option<Uuid>,
}

/// A request the server makes to itself on an athlete's behalf (a data injection): the
/// caller is given, not authenticated. Only server code can put an extension on a request,
/// so no client can present one.
#[derive(Debug, Clone, Copy)]
pub struct OnBehalf(pub Caller);

impl Caller {
    /// The context of a command the caller sends about their own data: in an impersonation
    /// session the events carry the admin as `impersonator_id`.
    pub fn context(&self) -> commands::CommandContext {
        let ctx = commands::CommandContext::athlete(self.account_id);
        commands::CommandContext {
            impersonator_id: self.impersonator,
            correlation_id: self.correlation_id.unwrap_or(ctx.correlation_id),
            ..ctx
        }
    }
}

/// What an impersonating admin may not do as the athlete: the athlete's credentials, their
/// erasure, and whom they share their data with stay the athlete's own acts.
pub const NOT_WHILE_IMPERSONATING: &[(&str, &str)] = &[
    ("POST", "/v1/auth/password"),
    ("DELETE", "/v1/me"),
    ("POST", "/v1/me/export"),
    ("POST", "/v1/me/coaches/{coach_id}"),
    ("DELETE", "/v1/me/coaches/{coach_id}"),
];

/// The response header that marks every answer given in an impersonation session.
pub const IMPERSONATED_BY: &str = "x-impersonated-by";

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .copied()
            .ok_or_else(|| Problem::unauthenticated("Send `Authorization: Bearer <access token>`."))
    }
}

/// The middleware: look the matched route up in [`ROUTES`], authenticate unless public,
/// check the role, and hand the caller to the handler.
pub async fn enforce(
    State(state): State<AppState>,
    matched: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    let Some(path) = matched.as_ref().map(MatchedPath::as_str) else {
        return next.run(req).await;
    };
    // HEAD is served by GET routes. Owned: the request moves on to the handler.
    let method = req.method().clone();
    let method = match method.as_str() {
        "HEAD" => "GET",
        m => m,
    };
    let Some(access) = access_of(method, path) else {
        tracing::error!(%method, path, "route without an access policy refused");
        return Problem::forbidden("This route has no access policy.").into_response();
    };
    let given = req.extensions().get::<OnBehalf>().map(|o| o.0);
    // Anonymous callers (and the console, whose session is checked later) are counted per
    // client address; the server's own requests on an athlete's behalf are not counted.
    let client = crate::auth::routes::ClientAddr::of(&state, req.extensions(), req.headers())
        .0
        .map(|a| a.ip());
    let anonymous_checks = if given.is_some() {
        Vec::new()
    } else if access == Access::Public {
        limits::public_checks(&state, method, path, client)
    } else if crate::console::is_console(path) {
        let class = if access == Access::Admin {
            limits::Class::Admin
        } else {
            limits::Class::General
        };
        vec![(class, limits::client_key(&state, client))]
    } else {
        Vec::new()
    };
    let anonymous = match limits::gate(&state.limits, &anonymous_checks).await {
        Ok(d) => d,
        Err(refused) => return refused,
    };
    if access == Access::Public {
        return limits::annotate(next.run(req).await, anonymous);
    }
    // The console's pages carry the session in cookies and answer in HTML: same verification,
    // its own credentials and refusals.
    if crate::console::is_console(path) {
        return limits::annotate(
            crate::console::enforce(state, access, req, next).await,
            anonymous,
        );
    }
    let caller = match given {
        Some(c) => c,
        None => match authenticate(&state, req.headers()).await {
            Ok(c) => c,
            Err(p) => return p.into_response(),
        },
    };
    if access == Access::Coach && caller.role != Role::Coach {
        return Problem::forbidden("Only coach accounts may use this route.").into_response();
    }
    if access == Access::Admin && !matches!(caller.role, Role::Admin | Role::Owner) {
        return Problem::forbidden("Only admin and owner accounts may use this route.")
            .into_response();
    }
    // After authentication, so the account is what is counted: clients behind one address
    // (an office, a carrier's NAT) do not share a quota.
    let checks = if given.is_some() {
        Vec::new()
    } else {
        limits::account_checks(method, path, access, caller.account_id)
    };
    let decision = match limits::gate(&state.limits, &checks).await {
        Ok(d) => d,
        Err(refused) => return refused,
    };
    limits::annotate(admitted(caller, method, path, req, next).await, decision)
}

/// The caller passed every check: the handler runs, except what an impersonating admin may not
/// do, and answers in an impersonation session are marked.
async fn admitted(
    caller: Caller,
    method: &str,
    path: &str,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(admin) = caller.impersonator else {
        req.extensions_mut().insert(caller);
        return next.run(req).await;
    };
    let mut response = if NOT_WHILE_IMPERSONATING.contains(&(method, path)) {
        Problem::forbidden("Not in an impersonation session: this is the athlete's own act.")
            .into_response()
    } else {
        req.extensions_mut().insert(caller);
        next.run(req).await
    };
    if let Ok(v) = axum::http::HeaderValue::from_str(&admin.to_string()) {
        response.headers_mut().insert(IMPERSONATED_BY, v);
    }
    response
}

async fn authenticate(
    state: &AppState,
    headers: &axum::http::HeaderMap,
) -> Result<Caller, Problem> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Err(Problem::unauthenticated(
            "Send `Authorization: Bearer <access token>`.",
        ));
    };
    let token = value
        .to_str()
        .ok()
        // The scheme is case-insensitive (RFC 7235 section 2.1).
        .and_then(|v| {
            v.get(..7)
                .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
                .map(|_| &v[7..])
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Problem::unauthenticated("The Authorization header must be `Bearer <token>`.")
        })?;
    authenticate_token(state, token).await
}

/// Verifies an access token and its live session, exactly as for every API route.
pub(crate) async fn authenticate_token(state: &AppState, token: &str) -> Result<Caller, Problem> {
    let verified = state
        .auth
        .tokens
        .verify(token, identity::tokens::now_s())
        .map_err(|_| {
            Problem::unauthenticated(
                "The access token is invalid or expired; refresh it or log in again.",
            )
        })?;
    let live = state
        .auth
        .db
        .live_session(verified.session_id, verified.account_id)
        .await?
        .ok_or_else(|| Problem::unauthenticated("This session has ended; log in again."))?;
    // The token and the session must agree on who is acting: an impersonation token is only
    // good for its own session, and a plain token never opens one.
    if live.impersonator_id != verified.impersonator_id {
        return Err(Problem::unauthenticated(
            "This session has ended; log in again.",
        ));
    }
    Ok(Caller {
        account_id: live.account_id,
        session_id: verified.session_id,
        role: live.role,
        impersonator: live.impersonator_id,
        correlation_id: None,
    })
}

/// For `/coach/athletes/{athlete_id}/...`: the athlete, when the caller is a coach they granted
/// access to. The grant is read from the athlete's stream, so a revocation applies at once.
pub async fn coached_athlete(
    state: &AppState,
    caller: &Caller,
    athlete_id: Uuid,
) -> Result<Uuid, Problem> {
    let hidden = || Problem::not_found("athlete");
    if caller.role != Role::Coach {
        return Err(hidden());
    }
    let stream = store::StreamId::new(
        <Athlete as cqrs_es::Aggregate>::TYPE,
        athlete_id.to_string(),
    );
    let (athlete, _) = state
        .commands
        .load::<Athlete>(&stream)
        .await
        .map_err(|_| hidden())?;
    match athlete.coach_scope(caller.account_id) {
        Some(_) => Ok(athlete_id),
        None => Err(hidden()),
    }
}

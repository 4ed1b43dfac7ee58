//! Impersonation: an admin acts as an athlete, to see what they see and fix what they cannot.
//! A session lasts at most 15 minutes and has no refresh token; it cannot target an admin or
//! owner; its token carries the admin (`imp`), every response in it carries
//! `x-impersonated-by`, every event it appends carries `impersonator_id`, and its start and end
//! are events in the athlete's stream. The athlete reads all of it in `GET /v1/me/access-log`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use domain::athlete::{Athlete, AthleteCommand, MAX_IMPERSONATION, Role};
use identity::db::{SecurityFilter, role_str};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::extract::{Json, Path, Query};
use crate::policy::Caller;
use crate::problem::{ApiResult, Problem};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImpersonateBody {
    /// Why: a snake_case code of at most 40 characters (`support_ticket`, `data_fix`, ...).
    /// A code, not prose: it is kept in the athlete's history for good.
    #[schema(min_length = 1, max_length = 40, pattern = "^[a-z][a-z0-9_]*$")]
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImpersonationSession {
    pub session_id: Uuid,
    pub athlete_id: Uuid,
    /// Bearer token for the athlete's routes; there is no refresh token.
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_at: DateTime<Utc>,
    /// Log position of `ImpersonationStarted`.
    pub position: Option<i64>,
}

/// Starts an impersonation session as an athlete or coach, for at most 15 minutes.
#[utoipa::path(post, path = "/v1/admin/users/{account_id}/impersonate", tag = "admin",
    params(("account_id" = Uuid, Path)), request_body = ImpersonateBody,
    responses((status = 201, body = ImpersonationSession),
        (status = 409, description = "Suspended, or a session is already open", body = Problem)))]
pub async fn start(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<ImpersonateBody>,
) -> ApiResult<Response> {
    let session = open(&state, &caller, id, &body.reason).await?;
    Ok((StatusCode::CREATED, axum::Json(session)).into_response())
}

/// Opens an impersonation session: the API's route and the admin console's form.
/// The account, if the caller may impersonate it: not themselves, no staff, not suspended.
async fn impersonable(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
) -> ApiResult<identity::db::Account> {
    let target = super::admin::account(state, id).await?;
    if id == caller.account_id {
        return Err(Problem::forbidden("Nobody impersonates themselves."));
    }
    if matches!(target.role, Role::Admin | Role::Owner) {
        return Err(Problem::forbidden(
            "Admin and owner accounts cannot be impersonated.",
        ));
    }
    if target.suspended {
        return Err(Problem::conflict(
            "This account is suspended; reinstate it first.",
        ));
    }
    Ok(target)
}

pub(crate) async fn open(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    reason: &str,
) -> ApiResult<ImpersonationSession> {
    let target = impersonable(state, caller, id).await?;
    let session_id = Uuid::new_v4();
    let now = Utc::now();
    // Whole seconds: the token's `exp` and the session's end are the same instant.
    let expires_at = DateTime::from_timestamp(now.timestamp() + MAX_IMPERSONATION.num_seconds(), 0)
        .ok_or_else(|| Problem::internal("time out of range"))?;
    let ctx = commands::CommandContext {
        actor: store::Actor::user(caller.account_id, role_str(caller.role)),
        ..commands::CommandContext::athlete(id)
    };
    let executed = state
        .commands
        .execute_with_retry::<Athlete>(
            &ctx,
            &id.to_string(),
            AthleteCommand::StartImpersonation {
                admin_id: caller.account_id,
                session_id,
                reason: reason.to_string(),
                expires_at,
            },
        )
        .await?;
    state
        .auth
        .db
        .create_impersonation_session_with_id(
            session_id,
            id,
            caller.account_id,
            expires_at.timestamp_micros(),
        )
        .await?;
    state
        .auth
        .db
        .log_by(
            Some(caller.account_id),
            "impersonation_started",
            Some(id),
            None,
            Some(reason),
        )
        .await?;
    let now_s = u64::try_from(now.timestamp()).unwrap_or(0);
    let expires_s = u64::try_from(expires_at.timestamp()).unwrap_or(0);
    let access_token = state
        .auth
        .tokens
        .issue_impersonation(
            id,
            session_id,
            target.role,
            caller.account_id,
            now_s,
            expires_s,
        )
        .map_err(Problem::internal)?;
    let session = ImpersonationSession {
        session_id,
        athlete_id: id,
        access_token,
        token_type: "Bearer",
        expires_at,
        position: executed.outcome.map(|o| o.cursor.position),
    };
    Ok(session)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImpersonationEnd {
    pub session_id: Uuid,
    /// Log position of `ImpersonationEnded`.
    pub position: Option<i64>,
}

/// Ends the impersonation session this request is made in (with its token).
#[utoipa::path(delete, path = "/v1/me/impersonation", tag = "me",
    responses((status = 200, body = ImpersonationEnd),
        (status = 404, description = "This is not an impersonation session", body = Problem)))]
pub async fn end(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<ImpersonationEnd>> {
    let Some(admin) = caller.impersonator else {
        return Err(Problem::not_found("impersonation session"));
    };
    state
        .auth
        .db
        .revoke_session(caller.session_id, "impersonation_ended")
        .await?;
    let executed = state
        .commands
        .execute_with_retry::<Athlete>(
            &caller.context(),
            &caller.account_id.to_string(),
            AthleteCommand::EndImpersonation {
                admin_id: admin,
                session_id: caller.session_id,
            },
        )
        .await?;
    state
        .auth
        .db
        .log_by(
            Some(admin),
            "impersonation_ended",
            Some(caller.account_id),
            None,
            None,
        )
        .await?;
    Ok(axum::Json(ImpersonationEnd {
        session_id: caller.session_id,
        position: executed.outcome.map(|o| o.cursor.position),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AccessLogParams {
    /// `next_before` of the previous page.
    #[param(minimum = 1)]
    pub before: Option<i64>,
    /// 1-200, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccessEntry {
    pub at: DateTime<Utc>,
    /// `admin_viewed`, `impersonation_started`, `impersonation_ended`, `account_suspended`,
    /// `account_reinstated`, `role_changed`.
    pub kind: String,
    /// The admin who acted.
    pub admin_id: Option<String>,
    /// A code: what was viewed, the reason, the new role.
    pub detail: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccessLog {
    pub entries: Vec<AccessEntry>,
    pub next_before: Option<i64>,
}

/// What admins did with the caller's account and data, newest first: views of their history,
/// impersonation sessions, suspensions and role changes.
#[utoipa::path(get, path = "/v1/me/access-log", tag = "me",
    params(AccessLogParams), responses((status = 200, body = AccessLog)))]
pub async fn access_log(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<AccessLogParams>,
) -> ApiResult<axum::Json<AccessLog>> {
    let filter = SecurityFilter {
        account_id: Some(caller.account_id),
        before_id: p.before,
        admin_actions_only: true,
        ..Default::default()
    };
    let (rows, next_before) = super::admin::security_page(&state, filter, p.limit).await?;
    let mut entries = Vec::with_capacity(rows.len());
    for r in rows {
        entries.push(AccessEntry {
            at: super::admin::time_of(r.at_us)?,
            kind: r.kind,
            admin_id: r.actor_id,
            detail: r.detail,
        });
    }
    Ok(axum::Json(AccessLog {
        entries,
        next_before,
    }))
}

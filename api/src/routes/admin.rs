//! `/v1/admin/*`: what admins and owners do. Every route is `Access::Admin` in the policy table;
//! every change is an event (a role change) or a security-log row naming the admin as actor
//! (suspension, reinstatement), and every read of one athlete's history leaves a security-log
//! row too, so the athlete's access log can say who looked (docs/admin.md).

use axum::extract::State;
use chrono::{DateTime, NaiveDate, Utc};
use domain::athlete::{Athlete, AthleteCommand, Role};
use identity::db::{SecurityFilter, role_str};
use projections::audit::{self, AuditEntry, AuditFilter};
use projections::replay::{self, AthleteAt};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::extract::{Json, Path, Query};
use crate::policy::Caller;
use crate::problem::{ApiResult, Problem};
use crate::{AppState, Consistency, MinPosition};

const PAGE_DEFAULT: u32 = 50;
const PAGE_MAX: u32 = 200;

fn is_owner(caller: &Caller) -> bool {
    caller.role == Role::Owner
}

fn is_staff(role: Role) -> bool {
    matches!(role, Role::Admin | Role::Owner)
}

/// A page size from the query: 1-200, default 50.
pub(crate) fn page_limit(limit: Option<u32>) -> ApiResult<u32> {
    let limit = limit.unwrap_or(PAGE_DEFAULT);
    if (1..=PAGE_MAX).contains(&limit) {
        Ok(limit)
    } else {
        Err(Problem::invalid("limit", "must be 1-200"))
    }
}

/// One page of the security log, newest first, and the `before` of the next page (absent on
/// the last). `filter.limit` is set here from `limit`.
pub(crate) async fn security_page(
    state: &AppState,
    mut filter: SecurityFilter,
    limit: Option<u32>,
) -> ApiResult<(Vec<identity::db::SecurityEntry>, Option<i64>)> {
    let limit = page_limit(limit)? as usize;
    if filter.before_id.is_some_and(|b| b < 1) {
        return Err(Problem::invalid("before", "must be 1 or more"));
    }
    // One row more than the page tells whether there is a next one.
    filter.limit = limit as i64 + 1;
    let mut rows = state.auth.db.security_log_search(&filter).await?;
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|r| r.id)
    } else {
        None
    };
    Ok((rows, next))
}

pub(crate) fn time_of(us: i64) -> ApiResult<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us).ok_or_else(|| Problem::internal("timestamp out of range"))
}

/// An account that exists (pending registrations do not), or 404.
pub(crate) async fn account(state: &AppState, id: Uuid) -> ApiResult<identity::db::Account> {
    state
        .auth
        .db
        .account(id)
        .await?
        .filter(|a| a.active || a.suspended)
        .ok_or_else(|| Problem::not_found("user"))
}

fn status_of(a: &identity::db::Account) -> &'static str {
    if a.suspended { "suspended" } else { "active" }
}

// --- users -------------------------------------------------------------------------------

/// Filters of the user list. Every filter narrows; none given lists everyone, newest first.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserListParams {
    /// An email prefix, or a part of the display name (case-insensitive).
    #[param(min_length = 1, max_length = 200)]
    pub q: Option<String>,
    pub role: Option<Role>,
    /// First registration date included (UTC).
    pub registered_from: Option<NaiveDate>,
    /// Last registration date included (UTC).
    pub registered_to: Option<NaiveDate>,
    /// Only athletes with an event on one of the last N UTC days (today included).
    #[param(minimum = 1, maximum = 3660)]
    pub active_within_days: Option<u32>,
    /// 1-200, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(max_length = 100)]
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserListItem {
    pub account_id: Uuid,
    pub email: String,
    pub display_name: Option<String>,
    pub role: Role,
    /// `active` or `suspended`.
    pub status: String,
    pub registered_at: DateTime<Utc>,
    /// The last UTC day with an event of theirs.
    pub last_active_date: Option<NaiveDate>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    pub users: Vec<UserListItem>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// `created_at_us.account_id` of the last row of a page: the list is ordered by both, newest
/// first, so the next page starts strictly after it even when two accounts share a microsecond.
fn parse_cursor(cursor: &str) -> ApiResult<(i64, Uuid)> {
    let bad = || Problem::invalid("cursor", "not a cursor this list returned");
    let (at, id) = cursor.split_once('.').ok_or_else(bad)?;
    Ok((
        at.parse().map_err(|_| bad())?,
        id.parse().map_err(|_| bad())?,
    ))
}

/// `%`, `_` and the escape character itself match literally.
fn like_literal(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn day_start_us(d: NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_micros())
        .unwrap_or(i64::MIN)
}

/// Accounts, newest first, by email prefix or name, role, registration dates and recent activity.
#[utoipa::path(get, path = "/v1/admin/users", tag = "admin",
    params(UserListParams, Consistency), responses((status = 200, body = UserPage)))]
pub async fn list_users(
    State(state): State<AppState>,
    Query(p): Query<UserListParams>,
    MinPosition(min): MinPosition,
) -> ApiResult<axum::Json<UserPage>> {
    let limit = p.check()?;
    let after = p.cursor.as_deref().map(parse_cursor).transpose()?;
    state.visible(&["profile", "admin_metrics"], min).await?;
    let rows = user_rows(&state, &p, after, limit).await?;
    let users = rows
        .iter()
        .take(limit as usize)
        .map(UserRow::item)
        .collect::<ApiResult<Vec<_>>>()?;
    let next_cursor = if rows.len() > limit as usize {
        users
            .last()
            .map(|u| format!("{}.{}", u.registered_at.timestamp_micros(), u.account_id))
    } else {
        None
    };
    Ok(axum::Json(UserPage { users, next_cursor }))
}

impl UserListParams {
    /// The page size, once every filter is in range.
    fn check(&self) -> ApiResult<u32> {
        let limit = page_limit(self.limit)?;
        if let Some(q) = &self.q
            && (q.trim().is_empty() || q.chars().count() > 200)
        {
            return Err(Problem::invalid("q", "must be 1-200 characters"));
        }
        if let (Some(from), Some(to)) = (self.registered_from, self.registered_to)
            && from > to
        {
            return Err(Problem::invalid(
                "registered_to",
                "must not be before registered_from",
            ));
        }
        if self
            .active_within_days
            .is_some_and(|d| !(1..=3660).contains(&d))
        {
            return Err(Problem::invalid("active_within_days", "must be 1-3660"));
        }
        Ok(limit)
    }
}

/// One account as the user list reads it.
#[derive(sqlx::FromRow)]
struct UserRow {
    account_id: String,
    email: String,
    display_name: Option<String>,
    role: String,
    status: String,
    created_at_us: i64,
    last_day: Option<String>,
}

impl UserRow {
    fn item(&self) -> ApiResult<UserListItem> {
        Ok(UserListItem {
            account_id: self.account_id.parse().map_err(Problem::internal)?,
            email: self.email.clone(),
            display_name: self.display_name.clone(),
            role: identity::db::parse_role(&self.role).unwrap_or_default(),
            status: self.status.clone(),
            registered_at: time_of(self.created_at_us)?,
            last_active_date: self.last_day.as_deref().and_then(|d| d.parse().ok()),
        })
    }
}

/// Up to `limit + 1` accounts matching the filters after the cursor (one more tells whether a
/// next page exists).
async fn user_rows(
    state: &AppState,
    p: &UserListParams,
    after: Option<(i64, Uuid)>,
    limit: u32,
) -> ApiResult<Vec<UserRow>> {
    let profiles = state.tables("profile").await?.table("profiles");
    let days = state.tables("admin_metrics").await?.table("athlete_days");
    let q =
        p.q.as_deref()
            .map(|q| like_literal(&q.trim().to_lowercase()));
    let active_since = p
        .active_within_days
        .map(|d| (Utc::now().date_naive() - chrono::Days::new(u64::from(d) - 1)).to_string());
    let registered_to = p
        .registered_to
        .and_then(|d| d.succ_opt())
        .map_or(i64::MAX, day_start_us);
    let sql = format!(
        "SELECT a.account_id, a.email, a.role, a.status, a.created_at_us, p.display_name, \
           (SELECT MAX(d.day) FROM {days} d WHERE d.athlete_id = a.account_id) AS last_day \
         FROM auth_accounts a LEFT JOIN {profiles} p ON p.athlete_id = a.account_id \
         WHERE a.status <> 'pending' \
           AND ($1 IS NULL OR a.email LIKE $1 || '%' ESCAPE '\\' \
                OR LOWER(p.display_name) LIKE '%' || $1 || '%' ESCAPE '\\') \
           AND ($2 IS NULL OR a.role = $2) \
           AND a.created_at_us >= $3 AND a.created_at_us < $4 \
           AND ($5 IS NULL OR EXISTS (SELECT 1 FROM {days} d \
                WHERE d.athlete_id = a.account_id AND d.day >= $5)) \
           AND (a.created_at_us < $6 OR (a.created_at_us = $6 AND a.account_id < $7)) \
         ORDER BY a.created_at_us DESC, a.account_id DESC LIMIT $8"
    );
    Ok(sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql))
        .bind(q)
        .bind(p.role.map(role_str))
        .bind(p.registered_from.map_or(i64::MIN, day_start_us))
        .bind(registered_to)
        .bind(active_since)
        .bind(after.map_or(i64::MAX, |a| a.0))
        .bind(after.map_or_else(String::new, |a| a.1.to_string()))
        .bind(i64::from(limit) + 1)
        .fetch_all(state.read_pool())
        .await?)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeCount {
    pub event_type: String,
    pub events: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub session_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Why it ended: `logout`, `password_changed`, `suspended`, ...
    pub ended_because: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GrantView {
    pub account_id: Uuid,
    pub scope: domain::athlete::CoachAccessScope,
    pub granted_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserSummary {
    pub account_id: Uuid,
    pub email: String,
    pub display_name: Option<String>,
    pub role: Role,
    pub status: String,
    pub registered_at: DateTime<Utc>,
    pub last_active_date: Option<NaiveDate>,
    /// Their events per type.
    pub events: Vec<EventTypeCount>,
    pub live_sessions: usize,
    /// The 10 most recent sessions.
    pub recent_sessions: Vec<SessionView>,
    /// Coaches this athlete granted access to.
    pub coaches: Vec<GrantView>,
    /// Athletes who granted this account (a coach) access.
    pub coached_athletes: Vec<GrantView>,
}

/// One account: identity, activity, sessions and coach grants.
#[utoipa::path(get, path = "/v1/admin/users/{account_id}", tag = "admin",
    params(("account_id" = Uuid, Path), Consistency),
    responses((status = 200, body = UserSummary)))]
pub async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    MinPosition(min): MinPosition,
) -> ApiResult<axum::Json<UserSummary>> {
    let a = account(&state, id).await?;
    state
        .visible(&["profile", "admin_metrics", "audit"], min)
        .await?;
    let pool = state.read_pool();
    let profile_t = state.tables("profile").await?;
    let profile = projections::profile::profile(pool, &profile_t, id).await?;
    let days = state.tables("admin_metrics").await?.table("athlete_days");
    let last_day: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT MAX(day) FROM {days} WHERE athlete_id = $1"
    )))
    .bind(id.to_string())
    .fetch_one(pool)
    .await?;
    let events = audit::counts(pool, &state.tables("audit").await?, id)
        .await?
        .into_iter()
        .map(|(event_type, events)| EventTypeCount { event_type, events })
        .collect();
    let now_us = Utc::now().timestamp_micros();
    let sessions = state.auth.db.sessions(id, 1000).await?;
    let live_sessions = sessions
        .iter()
        .filter(|s| s.revoked_at_us.is_none() && s.expires_at_us > now_us)
        .count();
    let mut recent_sessions = Vec::new();
    for s in sessions.iter().take(10) {
        recent_sessions.push(SessionView {
            session_id: s.session_id.parse().map_err(Problem::internal)?,
            created_at: time_of(s.created_at_us)?,
            expires_at: time_of(s.expires_at_us)?,
            ended_at: s.revoked_at_us.map(time_of).transpose()?,
            ended_because: s.revoked_reason.clone(),
        });
    }
    let coaches = projections::profile::coaches(pool, &profile_t, id)
        .await?
        .into_iter()
        .map(|c| GrantView {
            account_id: c.coach_id,
            scope: c.scope,
            granted_at: c.granted_at,
        })
        .collect();
    let coached_athletes = projections::profile::athletes_of_coach(pool, &profile_t, id)
        .await?
        .into_iter()
        .map(|c| GrantView {
            account_id: c.athlete_id,
            scope: c.scope,
            granted_at: c.granted_at,
        })
        .collect();
    viewed(&state, &caller, id, "summary").await?;
    Ok(axum::Json(UserSummary {
        account_id: id,
        email: a.email.clone(),
        display_name: profile.map(|p| p.display_name),
        role: a.role,
        status: status_of(&a).into(),
        registered_at: time_of(a.created_at_us)?,
        last_active_date: last_day.and_then(|d| d.parse().ok()),
        events,
        live_sessions,
        recent_sessions,
        coaches,
        coached_athletes,
    }))
}

/// A read of one athlete's data by an admin: a security-log row the athlete's access log shows.
async fn viewed(state: &AppState, caller: &Caller, athlete: Uuid, what: &str) -> ApiResult<()> {
    state
        .auth
        .db
        .log_by(
            Some(caller.account_id),
            "admin_viewed",
            Some(athlete),
            None,
            Some(what),
        )
        .await?;
    Ok(())
}

/// Why an account is suspended: a code, never free text (the security log holds no prose).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SuspensionReason {
    TermsViolation,
    SecurityConcern,
    HolderRequest,
    Other,
}

impl SuspensionReason {
    fn code(self) -> &'static str {
        match self {
            SuspensionReason::TermsViolation => "terms_violation",
            SuspensionReason::SecurityConcern => "security_concern",
            SuspensionReason::HolderRequest => "holder_request",
            SuspensionReason::Other => "other",
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspendBody {
    pub reason: SuspensionReason,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountStatus {
    pub account_id: Uuid,
    /// `active` or `suspended`.
    pub status: String,
    /// Sessions the change ended.
    pub sessions_ended: u64,
}

/// Staff accounts are an owner's to act on; nobody acts on their own account here.
fn may_manage(caller: &Caller, target: &identity::db::Account) -> ApiResult<()> {
    if target.account_id == caller.account_id {
        return Err(Problem::forbidden(
            "Admins cannot change their own account here.",
        ));
    }
    if is_staff(target.role) && !is_owner(caller) {
        return Err(Problem::forbidden(
            "Only an owner may act on an admin or owner account.",
        ));
    }
    Ok(())
}

/// Suspends an account: no login until reinstated, and every session ends now.
#[utoipa::path(post, path = "/v1/admin/users/{account_id}/suspend", tag = "admin",
    params(("account_id" = Uuid, Path)), request_body = SuspendBody,
    responses((status = 200, body = AccountStatus),
        (status = 409, description = "Already suspended, or the last owner", body = Problem)))]
pub async fn suspend_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<SuspendBody>,
) -> ApiResult<axum::Json<AccountStatus>> {
    let target = account(&state, id).await?;
    may_manage(&caller, &target)?;
    if target.role == Role::Owner && state.auth.db.count_with_role(Role::Owner).await? <= 1 {
        return Err(Problem::conflict("The last owner cannot be suspended."));
    }
    if !state.auth.db.set_suspended(id, true).await? {
        return Err(Problem::conflict("This account is already suspended."));
    }
    let ended = state
        .auth
        .db
        .revoke_other_sessions(id, None, "suspended")
        .await?;
    state
        .auth
        .db
        .log_by(
            Some(caller.account_id),
            "account_suspended",
            Some(id),
            None,
            Some(body.reason.code()),
        )
        .await?;
    Ok(axum::Json(AccountStatus {
        account_id: id,
        status: "suspended".into(),
        sessions_ended: ended,
    }))
}

/// Reinstates a suspended account: its owner can log in again.
#[utoipa::path(post, path = "/v1/admin/users/{account_id}/reinstate", tag = "admin",
    params(("account_id" = Uuid, Path)),
    responses((status = 200, body = AccountStatus),
        (status = 409, description = "Not suspended", body = Problem)))]
pub async fn reinstate_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<AccountStatus>> {
    let target = account(&state, id).await?;
    may_manage(&caller, &target)?;
    if !state.auth.db.set_suspended(id, false).await? {
        return Err(Problem::conflict("This account is not suspended."));
    }
    state
        .auth
        .db
        .log_by(
            Some(caller.account_id),
            "account_reinstated",
            Some(id),
            None,
            None,
        )
        .await?;
    Ok(axum::Json(AccountStatus {
        account_id: id,
        status: "active".into(),
        sessions_ended: 0,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    pub role: Role,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoleChange {
    pub account_id: Uuid,
    pub role: Role,
    /// Log position of `RoleChanged`; absent when the role was already this one.
    pub position: Option<i64>,
}

/// Changes an account's role. Only an owner makes admins and owners or changes theirs; nobody
/// changes their own; the last owner stays an owner.
#[utoipa::path(put, path = "/v1/admin/users/{account_id}/role", tag = "admin",
    params(("account_id" = Uuid, Path)), request_body = RoleBody,
    responses((status = 200, body = RoleChange),
        (status = 409, description = "The last owner", body = Problem)))]
pub async fn set_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<RoleBody>,
) -> ApiResult<axum::Json<RoleChange>> {
    let target = account(&state, id).await?;
    if id == caller.account_id {
        return Err(Problem::forbidden("Nobody changes their own role."));
    }
    if (is_staff(body.role) || is_staff(target.role)) && !is_owner(&caller) {
        return Err(Problem::forbidden(
            "Only an owner makes admins and owners, or changes their roles.",
        ));
    }
    if target.role == Role::Owner
        && body.role != Role::Owner
        && state.auth.db.count_with_role(Role::Owner).await? <= 1
    {
        return Err(Problem::conflict("The last owner cannot be demoted."));
    }
    let ctx = commands::CommandContext {
        actor: store::Actor::user(caller.account_id, role_str(caller.role)),
        ..commands::CommandContext::athlete(id)
    };
    let executed = state
        .commands
        .execute_with_retry::<Athlete>(
            &ctx,
            &id.to_string(),
            AthleteCommand::ChangeRole {
                to: body.role,
                changed_by: caller.account_id,
            },
        )
        .await?;
    let position = executed.outcome.as_ref().map(|o| o.cursor.position);
    // The identity row is what authorises; it follows the event, and is repaired here if an
    // earlier change reached the log but not the row.
    if position.is_some() || target.role != body.role {
        state.auth.db.set_role(id, body.role).await?;
        state
            .auth
            .db
            .log_by(
                Some(caller.account_id),
                "role_changed",
                Some(id),
                None,
                Some(role_str(body.role)),
            )
            .await?;
    }
    Ok(axum::Json(RoleChange {
        account_id: id,
        role: body.role,
        position,
    }))
}

// --- audit and replay --------------------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only entries recorded at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only entries by this account (as actor or as impersonating admin).
    pub actor: Option<Uuid>,
    /// Only events of this type, e.g. `ActivityRecorded`.
    #[param(min_length = 1, max_length = 100)]
    pub event_type: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryView {
    pub position: i64,
    pub recorded_at: DateTime<Utc>,
    pub event_type: String,
    pub stream: String,
    /// Absent for the system.
    pub actor_id: Option<String>,
    pub actor_role: String,
    pub impersonator_id: Option<String>,
    pub correlation_id: String,
}

impl From<AuditEntry> for AuditEntryView {
    fn from(e: AuditEntry) -> Self {
        AuditEntryView {
            position: e.position,
            recorded_at: e.recorded_at,
            event_type: e.event_type,
            stream: e.stream,
            actor_id: e.actor_id,
            actor_role: e.actor_role,
            impersonator_id: e.impersonator_id,
            correlation_id: e.correlation_id,
        }
    }
}

/// An athlete's audit trail, oldest first: who did what, when, and on whose behalf.
#[utoipa::path(get, path = "/v1/admin/users/{account_id}/audit", tag = "admin",
    params(("account_id" = Uuid, Path), AuditParams, Consistency),
    responses((status = 200, body = Vec<AuditEntryView>)))]
pub async fn user_audit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(p): Query<AuditParams>,
    MinPosition(min): MinPosition,
) -> ApiResult<axum::Json<Vec<AuditEntryView>>> {
    if let Some(t) = &p.event_type
        && (t.is_empty() || t.len() > 100 || !t.chars().all(|c| c.is_ascii_alphanumeric()))
    {
        return Err(Problem::invalid(
            "event_type",
            "an event type name: 1-100 letters and digits",
        ));
    }
    state.visible(&["audit"], min).await?;
    let t = state.tables("audit").await?;
    let entries = audit::trail(
        state.read_pool(),
        &t,
        id,
        &AuditFilter {
            since: p.since,
            actor: p.actor,
            event_type: p.event_type,
        },
    )
    .await?;
    viewed(&state, &caller, id, "audit").await?;
    Ok(axum::Json(entries.into_iter().map(Into::into).collect()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReplayParams {
    /// The athlete as of this log position (inclusive). Exactly one of `position` and `at`.
    #[param(minimum = 1)]
    pub position: Option<i64>,
    /// The athlete as of this time (inclusive).
    pub at: Option<DateTime<Utc>>,
}

/// An athlete as they were at a log position or a time, folded from their events by the same
/// projections that serve live reads, in a private in-memory database.
#[utoipa::path(get, path = "/v1/admin/users/{account_id}/replay", tag = "admin",
    params(("account_id" = Uuid, Path), ReplayParams),
    responses((status = 200, body = Object)))]
pub async fn user_replay(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(p): Query<ReplayParams>,
) -> ApiResult<axum::Json<AthleteAt>> {
    let as_of = match (p.position, p.at) {
        (Some(pos), None) if pos >= 1 => store::AsOf::Position(pos),
        (Some(_), None) => return Err(Problem::invalid("position", "must be 1 or more")),
        (None, Some(at)) => store::AsOf::Time(at),
        _ => {
            return Err(Problem::invalid(
                "position",
                "give exactly one of `position` and `at`",
            ));
        }
    };
    account(&state, id).await?;
    if let store::AsOf::Position(pos) = as_of
        && state
            .store
            .cursor_of(pos)
            .await
            .map_err(Problem::internal)?
            .is_none()
    {
        return Err(Problem::invalid(
            "position",
            format!("no event at log position {pos}"),
        ));
    }
    let at = replay::athlete_at(&state.store, id, as_of).await?;
    viewed(&state, &caller, id, "replay").await?;
    Ok(axum::Json(at))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SecurityLogParams {
    /// Rows about this account.
    pub account_id: Option<Uuid>,
    /// Rows of this actor's actions.
    pub actor_id: Option<Uuid>,
    /// e.g. `login_failed`, `account_suspended`, `admin_viewed`.
    #[param(min_length = 1, max_length = 64)]
    pub kind: Option<String>,
    pub since: Option<DateTime<Utc>>,
    /// `next_before` of the previous page.
    #[param(minimum = 1)]
    pub before: Option<i64>,
    /// 1-200, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SecurityEntryView {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub account_id: Option<String>,
    /// The admin who acted; absent for the account's own actions and the system's.
    pub actor_id: Option<String>,
    /// A code, never free text.
    pub detail: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SecurityPage {
    pub entries: Vec<SecurityEntryView>,
    /// Pass as `before` for the next (older) page.
    pub next_before: Option<i64>,
}

/// The security log, newest first: logins, throttling, session ends, suspensions, admin views.
#[utoipa::path(get, path = "/v1/admin/security-log", tag = "admin",
    params(SecurityLogParams), responses((status = 200, body = SecurityPage)))]
pub async fn security_log(
    State(state): State<AppState>,
    Query(p): Query<SecurityLogParams>,
) -> ApiResult<axum::Json<SecurityPage>> {
    if let Some(k) = &p.kind
        && (k.is_empty() || k.len() > 64 || !k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
    {
        return Err(Problem::invalid("kind", "lowercase letters and `_`, 1-64"));
    }
    let filter = SecurityFilter {
        account_id: p.account_id,
        actor_id: p.actor_id,
        kind: p.kind,
        since_us: p.since.map(|s| s.timestamp_micros()),
        before_id: p.before,
        ..Default::default()
    };
    let (rows, next_before) = security_page(&state, filter, p.limit).await?;
    let mut entries = Vec::with_capacity(rows.len());
    for r in rows {
        entries.push(SecurityEntryView {
            id: r.id,
            at: time_of(r.at_us)?,
            kind: r.kind,
            account_id: r.account_id,
            actor_id: r.actor_id,
            detail: r.detail,
        });
    }
    Ok(axum::Json(SecurityPage {
        entries,
        next_before,
    }))
}

// --- operations ----------------------------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MetricsParams {
    /// First UTC day included; default 29 days before `to`.
    pub from: Option<NaiveDate>,
    /// Last UTC day included; default today.
    pub to: Option<NaiveDate>,
}

/// The most days one metrics request covers.
const METRICS_MAX_DAYS: i64 = 366;

/// Site metrics over a range of UTC days, from the admin-metrics read model: sign-ups, daily
/// and weekly active athletes, events per type and day (feature usage), and the share of
/// athletes who log each kind of data. Counts only: no row names an athlete.
#[utoipa::path(get, path = "/v1/admin/metrics", tag = "admin",
    params(MetricsParams, Consistency), responses((status = 200, body = Object)))]
pub async fn metrics(
    State(state): State<AppState>,
    Query(p): Query<MetricsParams>,
    MinPosition(min): MinPosition,
) -> ApiResult<axum::Json<serde_json::Value>> {
    let to = p.to.unwrap_or_else(|| Utc::now().date_naive());
    let from = p.from.unwrap_or(to - chrono::Days::new(29));
    if from > to {
        return Err(Problem::invalid("to", "must not be before from"));
    }
    if (to - from).num_days() >= METRICS_MAX_DAYS {
        return Err(Problem::invalid(
            "from",
            format!("a range covers at most {METRICS_MAX_DAYS} days"),
        ));
    }
    state.visible(&["admin_metrics"], min).await?;
    let t = state.tables("admin_metrics").await?;
    let pool = state.read_pool();
    use projections::admin_metrics as m;
    Ok(axum::Json(serde_json::json!({
        "from": from,
        "to": to,
        "signups": m::signups(pool, &t, from, to).await?,
        "daily_active": m::active_athletes_daily(pool, &t, from, to).await?,
        "weekly_active": m::active_athletes_weekly(pool, &t, from, to).await?,
        "events_per_type": m::events_per_type(pool, &t, from, to).await?,
        "logging": m::logging_shares(pool, &t).await?,
    })))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueState {
    pub queue: &'static str,
    /// `queued`, `running`, `done`, `failed`, ...
    pub state: String,
    pub jobs: i64,
    /// Age of the oldest job in this state, by when it was requested.
    pub oldest_age_s: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PoolUsage {
    pub pool: &'static str,
    pub size: u32,
    pub idle: usize,
    pub max: u32,
}

/// Health in detail: what `/health` says, plus every unresolved skipped event, the job queues
/// by state with their oldest job's age, and connection-pool usage.
#[utoipa::path(get, path = "/v1/admin/health", tag = "admin",
    responses((status = 200, body = Object)))]
pub async fn health(State(state): State<AppState>) -> ApiResult<axum::Json<serde_json::Value>> {
    let info = state.store.info().await.map_err(Problem::internal)?;
    let horizon_lag_s = state
        .store
        .horizon_lag_s()
        .await
        .map_err(Problem::internal)?;
    let projections = state.projections.status().await?;
    let skipped = state.projections.unresolved(1000).await?;
    let now_us = Utc::now().timestamp_micros();
    let queues: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT state, COUNT(*), MIN(requested_at_us) FROM correlation_jobs GROUP BY state \
         ORDER BY state",
    )
    .fetch_all(state.read_pool())
    .await?;
    let queues: Vec<QueueState> = queues
        .into_iter()
        .map(|(s, jobs, oldest)| QueueState {
            queue: "correlation",
            state: s,
            jobs,
            oldest_age_s: (now_us - oldest).max(0) as f64 / 1e6,
        })
        .collect();
    let read = state.read_pool();
    let pools = vec![PoolUsage {
        pool: "read",
        size: read.size(),
        idle: read.num_idle(),
        max: read.options().get_max_connections(),
    }];
    let workers: Vec<serde_json::Value> = state
        .workers
        .snapshot()
        .iter()
        .map(|w| {
            serde_json::json!({
                "name": w.name,
                "state": format!("{:?}", w.state).to_lowercase(),
                "since": w.since,
                "restarts": w.restarts,
            })
        })
        .collect();
    Ok(axum::Json(serde_json::json!({
        "backend": info.backend,
        "schema_version": info.schema_version,
        "horizon_lag_s": horizon_lag_s,
        "projections": projections.iter().map(|s| serde_json::json!({
            "name": s.name,
            "state": s.state,
            "code_version": s.code_version,
            "active_version": s.active_version,
            "checkpoint_position": s.checkpoint_position,
            "events_applied": s.events_applied,
            "positions_behind": s.positions_behind,
            "seconds_behind": s.seconds_behind,
            "skipped_events": s.skipped_events,
        })).collect::<Vec<_>>(),
        "skipped_events": skipped.iter().map(|s| serde_json::json!({
            "projection": s.name,
            "position": s.position,
            "event_type": s.event_type,
            "reason": s.reason(),
            "skipped_at": s.skipped_at,
        })).collect::<Vec<_>>(),
        "workers": workers,
        "queues": queues,
        "pools": pools,
    })))
}

/// Runs one athlete's correlation analysis now, in this process, and answers its raw output:
/// per window, the tests run, the findings with their statistics, and what lacks data; with
/// the time it took. Nothing is stored: the athlete's snapshot stays the worker's.
#[utoipa::path(post, path = "/v1/admin/users/{account_id}/correlations/run", tag = "admin",
    params(("account_id" = Uuid, Path)), responses((status = 200, body = Object)))]
pub async fn run_correlations(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    account(&state, id).await?;
    state
        .caught_up(&["profile", "journal", "efficiency", "activities"])
        .await?;
    let started = std::time::Instant::now();
    let analyses = workers::correlations::compute(&state.projections, id).await?;
    let took_ms = started.elapsed().as_secs_f64() * 1e3;
    viewed(&state, &caller, id, "correlations").await?;
    let tests_run: usize = analyses.values().map(|a| a.tests_run).sum();
    Ok(axum::Json(serde_json::json!({
        "athlete_id": id,
        "computed_in_ms": took_ms,
        "tests_run": tests_run,
        "windows": analyses,
    })))
}

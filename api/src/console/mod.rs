//! The admin console at `/admin`: server-rendered HTML pages over the admin API's own handlers,
//! for people rather than programs. No JavaScript, no external assets: the templates (maud) and
//! the stylesheet are compiled into the binary, so it works offline.
//!
//! Its routes are in [`crate::policy::ROUTES`] like every other; [`enforce`] authenticates them
//! exactly as the API does (the same token verification and live-session check), but reads the
//! access token from a cookie the console's login set, and answers refusals as pages: anonymous
//! callers are sent to the login page, signed-in non-admins get a 403 page. Every POST carries
//! a per-session CSRF token (docs/admin.md, "Console"; D36).

mod pages;
mod svg;

use std::collections::HashMap;

use axum::Router;
use axum::extract::{FromRequestParts, RawQuery, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, NaiveDate, Utc};
use domain::athlete::Role;
use uuid::Uuid;

use crate::auth::routes::{ClientAddr, TokenPair, renew, sign_in};
use crate::extract::{Json, Path, Query};
use crate::policy::{Access, Caller, authenticate_token};
use crate::problem::Problem;
use crate::routes::{admin, impersonation};
use crate::{AppState, MinPosition};

/// Where the console lives; its cookies are scoped to this path.
pub const PREFIX: &str = "/admin";
const ACCESS_COOKIE: &str = "stridelog_console_access";
const REFRESH_COOKIE: &str = "stridelog_console_refresh";
/// The login form's CSRF token (double-submit: no session exists yet to tie it to).
const LOGIN_COOKIE: &str = "stridelog_console_login";
const CSRF_PURPOSE: &str = "console-csrf";
const LOGIN_COOKIE_MAX_AGE_S: u64 = 3600;
const PAGE_SIZE: u32 = 50;

/// No script may run, nothing may frame the console, and nothing is loaded from elsewhere.
const CSP: &str = "default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self' data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLESHEET: &str = include_str!("console.css");

pub(crate) fn is_console(path: &str) -> bool {
    path == PREFIX || path.starts_with("/admin/")
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(home))
        .route("/admin/login", get(login_page).post(login_submit))
        .route("/admin/logout", post(logout))
        .route("/admin/console.css", get(stylesheet))
        .route("/admin/users", get(users))
        .route("/admin/users/{account_id}", get(user))
        .route("/admin/users/{account_id}/suspend", post(suspend))
        .route("/admin/users/{account_id}/reinstate", post(reinstate))
        .route("/admin/users/{account_id}/impersonate", post(impersonate))
        .route("/admin/users/{account_id}/audit", get(audit))
        .route("/admin/health", get(health))
        .route("/admin/metrics", get(metrics))
        .route("/admin/aggregates", get(aggregates))
}

/// The signed-in admin of a console page.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub caller: Caller,
    /// This session's CSRF token, for the hidden field of every form.
    pub csrf: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or_else(|| to_login(false))
    }
}

// --- the policy for console routes ---------------------------------------------------------

/// [`crate::policy::enforce`] for `/admin...`: the same authentication, from cookies. An
/// expired access token is renewed with the refresh cookie, through the API's own refresh.
pub(crate) async fn enforce(state: AppState, access: Access, req: Request, next: Next) -> Response {
    let mut response = guard(state, access, req, next).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Console URLs carry search terms (emails): never hand them to another site.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn guard(state: AppState, access: Access, mut req: Request, next: Next) -> Response {
    if access == Access::Public {
        return next.run(req).await;
    }
    let secure = secure_cookies(req.headers());
    let jar = cookies(req.headers());
    let current = match jar.get(ACCESS_COOKIE) {
        Some(token) => authenticate_token(&state, token).await.ok(),
        None => None,
    };
    let (caller, renewed) = match current {
        Some(c) => (c, None),
        None => {
            let Some(refresh) = jar.get(REFRESH_COOKIE) else {
                return to_login(secure);
            };
            let ClientAddr(addr) = ClientAddr::of(&state, req.extensions(), req.headers());
            let pair = match renew(&state, addr, refresh).await {
                Ok(p) => p,
                Err(p) if p.status == 401 => return to_login(secure),
                Err(p) => return problem_page(None, p),
            };
            match authenticate_token(&state, &pair.access_token).await {
                Ok(c) => (c, Some(pair)),
                Err(_) => return to_login(secure),
            }
        }
    };
    let session = Session {
        csrf: state.auth.session_tag(CSRF_PURPOSE, caller.session_id),
        caller,
    };
    // An impersonation token acts as an athlete: it never opens the console.
    let admin = caller.impersonator.is_none() && matches!(caller.role, Role::Admin | Role::Owner);
    let mut response = if access == Access::Admin && admin {
        req.extensions_mut().insert(caller);
        req.extensions_mut().insert(session);
        next.run(req).await
    } else {
        pages::forbidden(&session).into_response()
    };
    if let Some(pair) = renewed {
        set_session_cookies(response.headers_mut(), &pair, secure);
    }
    response
}

// --- cookies and CSRF ----------------------------------------------------------------------

struct Jar(HashMap<String, String>);

impl Jar {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

fn cookies(headers: &HeaderMap) -> Jar {
    let mut jar = HashMap::new();
    for value in headers.get_all(header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=') {
                jar.entry(k.to_string()).or_insert_with(|| v.to_string());
            }
        }
    }
    Jar(jar)
}

/// `Secure` cookies, except when the browser reached the server by a loopback name: a developer
/// or a test serves plain HTTP on localhost, and anywhere else the console must be behind TLS.
fn secure_cookies(headers: &HeaderMap) -> bool {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    !matches!(name, "localhost" | "127.0.0.1" | "::1")
}

fn cookie(name: &str, value: &str, max_age_s: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={PREFIX}; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("stridelog_console_invalid=; Max-Age=0"))
}

fn set_session_cookies(h: &mut HeaderMap, pair: &TokenPair, secure: bool) {
    h.append(
        header::SET_COOKIE,
        cookie(ACCESS_COOKIE, &pair.access_token, pair.expires_in_s, secure),
    );
    h.append(
        header::SET_COOKIE,
        cookie(
            REFRESH_COOKIE,
            &pair.refresh_token,
            pair.refresh_expires_in_s,
            secure,
        ),
    );
}

fn clear_session_cookies(h: &mut HeaderMap, secure: bool) {
    for name in [ACCESS_COOKIE, REFRESH_COOKIE] {
        h.append(header::SET_COOKIE, cookie(name, "", 0, secure));
    }
}

fn to_login(secure: bool) -> Response {
    let mut r = Redirect::to("/admin/login").into_response();
    clear_session_cookies(r.headers_mut(), secure);
    r
}

/// Compares in time independent of where the strings differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A form's fields, whatever the Content-Type: a body that is not a form is an empty one, so
/// its CSRF check fails and the answer is a page rather than a bare 415.
fn form(raw: &[u8]) -> HashMap<String, String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(raw)
        .unwrap_or_default()
        .into_iter()
        .collect()
}

fn query(raw: Option<&str>) -> HashMap<String, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(raw.unwrap_or(""))
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.trim().to_string()))
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

fn csrf_ok(session: &Session, fields: &HashMap<String, String>) -> bool {
    fields
        .get("csrf")
        .is_some_and(|t| same_secret(t, &session.csrf))
}

fn csrf_refused() -> Problem {
    Problem::forbidden(
        "This form is stale or did not come from this console session. Reload the page and try \
         again; nothing was changed.",
    )
}

fn problem_page(session: Option<&Session>, p: Problem) -> Response {
    pages::problem(session, &p).into_response()
}

fn account_id(raw: &str) -> Result<Uuid, Problem> {
    raw.parse().map_err(|_| Problem::not_found("user"))
}

/// Renders `Ok` as a page and `Err` as the problem page, with the problem's status.
fn respond(session: &Session, r: Result<Response, Problem>) -> Response {
    r.unwrap_or_else(|p| problem_page(Some(session), p))
}

// --- login and logout ----------------------------------------------------------------------

async fn home() -> Redirect {
    Redirect::to("/admin/users")
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLESHEET,
    )
        .into_response()
}

fn random_token() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

fn login_form(headers: &HeaderMap, status: StatusCode, error: Option<&Problem>) -> Response {
    let secure = secure_cookies(headers);
    let token = random_token();
    let mut r = (status, pages::login(&token, error)).into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        cookie(LOGIN_COOKIE, &token, LOGIN_COOKIE_MAX_AGE_S, secure),
    );
    r
}

async fn login_page(headers: HeaderMap) -> Response {
    login_form(&headers, StatusCode::OK, None)
}

/// The API's login (same throttling, same security log), then the tokens go into cookies.
async fn login_submit(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    raw: axum::body::Bytes,
) -> Response {
    let fields = form(&raw);
    let jar = cookies(&headers);
    let sent = fields.get("csrf").map(String::as_str).unwrap_or("");
    if !jar
        .get(LOGIN_COOKIE)
        .is_some_and(|expected| same_secret(sent, expected))
    {
        return login_form(&headers, StatusCode::FORBIDDEN, Some(&csrf_refused()));
    }
    let email = fields.get("email").map(String::as_str).unwrap_or("");
    let password = fields.get("password").map(String::as_str).unwrap_or("");
    if email.trim().is_empty() || password.is_empty() {
        let p = Problem::invalid("email", "give an email and a password");
        return login_form(&headers, StatusCode::UNPROCESSABLE_ENTITY, Some(&p));
    }
    if email.chars().count() > 254 || password.chars().count() > 128 {
        let p = Problem::invalid("email", "email or password too long");
        return login_form(&headers, StatusCode::UNPROCESSABLE_ENTITY, Some(&p));
    }
    let pair = match sign_in(&state, addr, email, password).await {
        Ok(p) => p,
        Err(p) => {
            let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::UNAUTHORIZED);
            return login_form(&headers, status, Some(&p));
        }
    };
    if !matches!(pair.role, Role::Admin | Role::Owner) {
        // A console session for an athlete would be of no use: end it at once.
        if let Ok(v) = state
            .auth
            .tokens
            .verify(&pair.access_token, identity::tokens::now_s())
            && let Err(e) = state.auth.db.revoke_session(v.session_id, "logout").await
        {
            return problem_page(None, e.into());
        }
        let p = Problem::forbidden("Only admin and owner accounts may use the console.");
        return login_form(&headers, StatusCode::FORBIDDEN, Some(&p));
    }
    let secure = secure_cookies(&headers);
    let mut r = Redirect::to("/admin/users").into_response();
    set_session_cookies(r.headers_mut(), &pair, secure);
    r.headers_mut()
        .append(header::SET_COOKIE, cookie(LOGIN_COOKIE, "", 0, secure));
    r
}

/// Public in the policy so that any console session (also a refused non-admin's) can end
/// itself; the session's own CSRF token is still required to end a live one.
async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: axum::body::Bytes,
) -> Response {
    let secure = secure_cookies(&headers);
    let jar = cookies(&headers);
    let fields = form(&raw);
    let caller = match jar.get(ACCESS_COOKIE) {
        Some(t) => authenticate_token(&state, t).await.ok(),
        None => None,
    };
    if let Some(caller) = caller {
        let session = Session {
            csrf: state.auth.session_tag(CSRF_PURPOSE, caller.session_id),
            caller,
        };
        if !csrf_ok(&session, &fields) {
            return problem_page(Some(&session), csrf_refused());
        }
        let ended = async {
            state
                .auth
                .db
                .revoke_session(caller.session_id, "logout")
                .await?;
            state
                .auth
                .db
                .log("logout", Some(caller.account_id), None, None)
                .await
        };
        if let Err(e) = ended.await {
            return problem_page(Some(&session), e.into());
        }
    } else if let Some(refresh) = jar.get(REFRESH_COOKIE) {
        // An expired access token: the refresh token names the session to end.
        let session = async {
            let revoked = state.auth.db.revoke_by_refresh(refresh).await?;
            if let Some(account) = revoked {
                state
                    .auth
                    .db
                    .log("logout", Some(account), None, None)
                    .await?;
            }
            Ok::<_, sqlx::Error>(())
        };
        if let Err(e) = session.await {
            return problem_page(None, e.into());
        }
    }
    to_login(secure)
}

// --- users ---------------------------------------------------------------------------------

/// The user list's search form, as typed.
#[derive(Debug, Default, Clone)]
pub(crate) struct UserSearch {
    pub q: Option<String>,
    pub role: Option<String>,
    pub active_within_days: Option<String>,
    pub cursor: Option<String>,
}

impl UserSearch {
    /// The query string of the same search, at another page.
    pub fn href(&self, cursor: Option<&str>) -> String {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for (k, v) in [
            ("q", &self.q),
            ("role", &self.role),
            ("active_within_days", &self.active_within_days),
        ] {
            if let Some(v) = v {
                pairs.push((k, v));
            }
        }
        if let Some(c) = cursor {
            pairs.push(("cursor", c));
        }
        let qs = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        if qs.is_empty() {
            "/admin/users".into()
        } else {
            format!("/admin/users?{qs}")
        }
    }
}

async fn users(
    State(state): State<AppState>,
    session: Session,
    RawQuery(raw): RawQuery,
) -> Response {
    let mut f = query(raw.as_deref());
    let search = UserSearch {
        q: f.remove("q"),
        role: f.remove("role"),
        active_within_days: f.remove("active_within_days"),
        cursor: f.remove("cursor"),
    };
    let found = async {
        let role = match search.role.as_deref() {
            None => None,
            Some(r) => Some(
                identity::db::parse_role(r)
                    .ok_or_else(|| Problem::invalid("role", "athlete, coach, admin or owner"))?,
            ),
        };
        let active_within_days = match search.active_within_days.as_deref() {
            None => None,
            Some(d) => Some(
                d.parse::<u32>()
                    .map_err(|_| Problem::invalid("active_within_days", "a number of days"))?,
            ),
        };
        let params = admin::UserListParams {
            q: search.q.clone(),
            role,
            registered_from: None,
            registered_to: None,
            active_within_days,
            limit: Some(PAGE_SIZE),
            cursor: search.cursor.clone(),
        };
        let axum::Json(page) =
            admin::list_users(State(state.clone()), Query(params), MinPosition(None)).await?;
        Ok::<_, Problem>(page)
    }
    .await;
    match found {
        Ok(page) => pages::users(&session, &search, Some(&page), None).into_response(),
        Err(p) => {
            let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_REQUEST);
            (status, pages::users(&session, &search, None, Some(&p))).into_response()
        }
    }
}

async fn user(
    State(state): State<AppState>,
    session: Session,
    axum::extract::Path(raw_id): axum::extract::Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let done = query(raw.as_deref()).remove("done");
    let r = async {
        let id = account_id(&raw_id)?;
        let axum::Json(summary) = admin::get_user(
            State(state.clone()),
            session.caller,
            Path(id),
            MinPosition(None),
        )
        .await?;
        Ok(pages::user(&session, &summary, done.as_deref()).into_response())
    }
    .await;
    respond(&session, r)
}

/// The user page after a change: a GET, so a reload does not repeat it.
fn back_to_user(id: Uuid, done: &str) -> Response {
    Redirect::to(&format!("/admin/users/{id}?done={done}")).into_response()
}

async fn suspend(
    State(state): State<AppState>,
    session: Session,
    axum::extract::Path(raw_id): axum::extract::Path<String>,
    raw: axum::body::Bytes,
) -> Response {
    let fields = form(&raw);
    let r = async {
        if !csrf_ok(&session, &fields) {
            return Err(csrf_refused());
        }
        let id = account_id(&raw_id)?;
        let reason = fields.get("reason").cloned().unwrap_or_default();
        let reason: admin::SuspensionReason =
            serde_json::from_value(serde_json::Value::String(reason)).map_err(|_| {
                Problem::invalid(
                    "reason",
                    "terms_violation, security_concern, holder_request or other",
                )
            })?;
        let axum::Json(_) = admin::suspend_user(
            State(state.clone()),
            session.caller,
            Path(id),
            Json(admin::SuspendBody { reason }),
        )
        .await?;
        Ok(back_to_user(id, "suspended"))
    }
    .await;
    respond(&session, r)
}

async fn reinstate(
    State(state): State<AppState>,
    session: Session,
    axum::extract::Path(raw_id): axum::extract::Path<String>,
    raw: axum::body::Bytes,
) -> Response {
    let fields = form(&raw);
    let r = async {
        if !csrf_ok(&session, &fields) {
            return Err(csrf_refused());
        }
        let id = account_id(&raw_id)?;
        let axum::Json(_) =
            admin::reinstate_user(State(state.clone()), session.caller, Path(id)).await?;
        Ok(back_to_user(id, "reinstated"))
    }
    .await;
    respond(&session, r)
}

/// Shows the token once, on this response only (no-store): it is not kept anywhere.
async fn impersonate(
    State(state): State<AppState>,
    session: Session,
    axum::extract::Path(raw_id): axum::extract::Path<String>,
    raw: axum::body::Bytes,
) -> Response {
    let fields = form(&raw);
    let r = async {
        if !csrf_ok(&session, &fields) {
            return Err(csrf_refused());
        }
        let id = account_id(&raw_id)?;
        let reason = fields.get("reason").map(String::as_str).unwrap_or("");
        let opened = impersonation::open(&state, &session.caller, id, reason).await?;
        Ok((StatusCode::CREATED, pages::impersonation(&session, &opened)).into_response())
    }
    .await;
    respond(&session, r)
}

/// The audit filters, as typed.
#[derive(Debug, Default, Clone)]
pub(crate) struct AuditSearch {
    pub since: Option<String>,
    pub actor: Option<String>,
    pub event_type: Option<String>,
}

/// A date (the form's date field) is its UTC midnight; a full RFC 3339 time is taken as is.
fn parse_since(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

async fn audit(
    State(state): State<AppState>,
    session: Session,
    axum::extract::Path(raw_id): axum::extract::Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let mut f = query(raw.as_deref());
    let search = AuditSearch {
        since: f.remove("since"),
        actor: f.remove("actor"),
        event_type: f.remove("event_type"),
    };
    let r = async {
        let id = account_id(&raw_id)?;
        let target = state
            .auth
            .db
            .account(id)
            .await?
            .ok_or_else(|| Problem::not_found("user"))?;
        let trail = async {
            let since = match search.since.as_deref() {
                None => None,
                Some(s) => Some(parse_since(s).ok_or_else(|| {
                    Problem::invalid("since", "a date (YYYY-MM-DD) or an RFC 3339 time")
                })?),
            };
            let actor = match search.actor.as_deref() {
                None => None,
                Some(a) => Some(
                    a.parse::<Uuid>()
                        .map_err(|_| Problem::invalid("actor", "an account id (UUID)"))?,
                ),
            };
            let params = admin::AuditParams {
                since,
                actor,
                event_type: search.event_type.clone(),
            };
            let axum::Json(entries) = admin::user_audit(
                State(state.clone()),
                session.caller,
                Path(id),
                Query(params),
                MinPosition(None),
            )
            .await?;
            Ok::<_, Problem>(entries)
        }
        .await;
        let status = match &trail {
            Ok(_) => StatusCode::OK,
            Err(p) => StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_REQUEST),
        };
        Ok((
            status,
            pages::audit(&session, &target.email, id, &search, trail.as_ref()),
        )
            .into_response())
    }
    .await;
    respond(&session, r)
}

// --- operations ----------------------------------------------------------------------------

async fn health(State(state): State<AppState>, session: Session) -> Response {
    let r = async {
        let axum::Json(h) = admin::health(State(state.clone())).await?;
        Ok(pages::health(&session, &h).into_response())
    }
    .await;
    respond(&session, r)
}

async fn metrics(
    State(state): State<AppState>,
    session: Session,
    RawQuery(raw): RawQuery,
) -> Response {
    let mut f = query(raw.as_deref());
    let r = async {
        let day = |field: &str, v: Option<String>| -> Result<Option<NaiveDate>, Problem> {
            v.map(|s| {
                NaiveDate::parse_from_str(&s, "%Y-%m-%d")
                    .map_err(|_| Problem::invalid(field, "a date, YYYY-MM-DD"))
            })
            .transpose()
        };
        let params = admin::MetricsParams {
            from: day("from", f.remove("from"))?,
            to: day("to", f.remove("to"))?,
        };
        let axum::Json(m) =
            admin::metrics(State(state.clone()), Query(params), MinPosition(None)).await?;
        Ok(pages::metrics(&session, &m).into_response())
    }
    .await;
    respond(&session, r)
}

async fn aggregates(State(state): State<AppState>, session: Session) -> Response {
    let r = async {
        let mut results = Vec::new();
        for q in crate::routes::aggregates::CATALOGUE {
            let axum::Json(result) = crate::routes::aggregates::run(
                State(state.clone()),
                crate::extract::Path(q.id.to_string()),
            )
            .await?;
            results.push(result);
        }
        Ok(pages::aggregates(&session, &results).into_response())
    }
    .await;
    respond(&session, r)
}

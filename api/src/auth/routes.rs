//! `/v1/auth/*`: registration, login, refresh, logout and password change.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use commands::{CommandContext, CommandError, Executed};
use domain::athlete::{Athlete, AthleteCommand, ErasureReason, Role};
use identity::db::{Account, REFRESH_TTL, RefreshError, role_str};
use identity::password::check_password;
use identity::tokens::now_s;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::extract::Json;
use crate::policy::Caller;
use crate::problem::{ApiResult, Problem};

/// The client's address (see [`crate::client_addr::client_ip`]: the TCP peer, or what a
/// trusted proxy says), when the server was started with connect info. The port is 0: only
/// the address identifies a client.
pub struct ClientAddr(pub Option<SocketAddr>);

impl ClientAddr {
    pub(crate) fn of(
        state: &AppState,
        extensions: &axum::http::Extensions,
        headers: &axum::http::HeaderMap,
    ) -> Self {
        let peer = extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
        Self(
            crate::client_addr::client_ip(peer, headers, &state.limits.settings().trusted_proxies)
                .map(|ip| SocketAddr::new(ip, 0)),
        )
    }
}

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self::of(state, &parts.extensions, &parts.headers))
    }
}

/// Which kind of account to open. Admin and owner roles are given by an owner, never chosen.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AccountKind {
    #[default]
    Athlete,
    Coach,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    /// Compared case-insensitively and stored trimmed and lowercased.
    #[schema(
        min_length = 3,
        max_length = 254,
        pattern = r"^\s*[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s\x00-\x1f\x7f-\x9f]+\s*$"
    )]
    pub email: String,
    #[schema(min_length = 10, max_length = 128)]
    pub password: String,
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub display_name: String,
    #[serde(default)]
    pub kind: AccountKind,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    #[schema(max_length = 254)]
    pub email: String,
    #[schema(max_length = 128)]
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    #[schema(min_length = 1, max_length = 200)]
    pub refresh_token: String,
}

impl RefreshBody {
    fn check(&self) -> ApiResult<()> {
        let n = self.refresh_token.chars().count();
        if (1..=200).contains(&n) {
            Ok(())
        } else {
            Err(Problem::invalid(
                "refresh_token",
                "must be 1-200 characters",
            ))
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    #[schema(max_length = 128)]
    pub current_password: String,
    #[schema(min_length = 10, max_length = 128)]
    pub new_password: String,
}

/// A new session's tokens. The access token goes in `Authorization: Bearer`; the refresh
/// token is single-use and is exchanged at `/v1/auth/refresh` for a new pair.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPair {
    pub account_id: Uuid,
    pub role: Role,
    pub access_token: String,
    /// Always "Bearer".
    pub token_type: String,
    pub expires_in_s: u64,
    pub refresh_token: String,
    pub refresh_expires_in_s: u64,
    /// For registration: the log position of `AthleteRegistered`, for `?min_position=`.
    pub position: Option<i64>,
}

fn pair(
    state: &AppState,
    account_id: Uuid,
    role: Role,
    session_id: Uuid,
    refresh_token: String,
    position: Option<i64>,
) -> ApiResult<TokenPair> {
    let access_token = state
        .auth
        .tokens
        .issue(account_id, session_id, role, now_s())?;
    Ok(TokenPair {
        account_id,
        role,
        access_token,
        token_type: "Bearer".into(),
        expires_in_s: state.auth.tokens.access_ttl.as_secs(),
        refresh_token,
        refresh_expires_in_s: REFRESH_TTL.as_secs(),
        position,
    })
}

fn wrong_credentials() -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "invalid-credentials",
        "Email or password is incorrect",
    )
}

fn throttled(wait: std::time::Duration) -> Problem {
    let seconds = wait.as_secs() + 1;
    Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "login-throttled",
        "Too many failed attempts",
    )
    .detail(format!(
        "Login attempts from here are paused for {seconds} s after repeated failures."
    ))
    .retry_after(seconds)
}

/// One password hash in flight per client address (D39): the shared hashing pool holds a few
/// hashes at a time, and one client must not queue everyone else behind its requests.
fn hashing_slot(
    state: &AppState,
    addr: Option<SocketAddr>,
) -> ApiResult<crate::limits::HashingSlot> {
    match state.limits.hashing_slot(addr.map(|a| a.ip())) {
        Some(slot) => Ok(slot),
        None => Err(Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "busy",
            "Another request from this client is being checked",
        )
        .detail("A password from this client is being checked; retry when it has answered.")
        .retry_after(1)),
    }
}

/// A registration's fields, checked.
struct NewAccount {
    email: String,
    display_name: String,
    role: Role,
}

impl RegisterBody {
    fn check(&self) -> ApiResult<NewAccount> {
        if self.email.chars().count() > 254 {
            return Err(Problem::invalid("email", "must be at most 254 characters"));
        }
        let email = domain::athlete::check_email(&self.email)?;
        let display_name = domain::athlete::check_name("display_name", &self.display_name)?;
        check_password(&self.password).map_err(|m| Problem::invalid("password", m))?;
        let role = match self.kind {
            AccountKind::Athlete => Role::Athlete,
            AccountKind::Coach => Role::Coach,
        };
        Ok(NewAccount {
            email,
            display_name,
            role,
        })
    }
}

/// Open an account and its first session.
#[utoipa::path(
    post, path = "/v1/auth/register", tag = "auth",
    request_body = RegisterBody,
    responses(
        (status = 201, description = "Account created; signed in", body = TokenPair),
        (status = 409, description = "An account with this email exists", body = Problem),
        (status = 429, description = "Too many registrations from this client or its address \
            block, or one is being checked; see Retry-After", body = Problem),
    )
)]
pub async fn register(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Json(body): Json<RegisterBody>,
) -> ApiResult<Response> {
    let new = body.check()?;
    let role = new.role;
    let slot = hashing_slot(&state, addr)?;
    let hash = state.auth.passwords.hash(&body.password).await?;
    drop(slot);
    let client = state.auth.client_tag(addr);
    // Three writes in this order (D27): the row as `pending`, `AthleteRegistered`, the row
    // marked active. A crash between two of them is settled by the next register or login of
    // the email (`settle_pending`); the failpoints let tests/register_crash.rs crash there.
    let account_id = insert_pending_account(&state, &new, &hash, &client).await?;
    failpoint("register-after-account");
    let executed = append_registered(&state, account_id, new).await?;
    failpoint("register-after-event");
    if !state.auth.db.activate(account_id).await? {
        withdraw_registration(&state, account_id, &client).await?;
        return Err(Problem::conflict(
            "This registration took too long and was withdrawn; register again.",
        ));
    }
    let position = executed.outcome.map(|o| o.cursor.position);
    let tokens = open_first_session(&state, account_id, role, &client, position).await?;
    Ok((StatusCode::CREATED, axum::Json(tokens)).into_response())
}

/// Inserts the account's `pending` row under a new id. When the email has a row already, that
/// row is settled first: an account or a registration in flight answers 409, an abandoned row
/// is reclaimed and the insert tried again.
async fn insert_pending_account(
    state: &AppState,
    new: &NewAccount,
    hash: &str,
    client: &str,
) -> ApiResult<Uuid> {
    // Two rounds: an abandoned row reclaimed in the first frees the email for the second.
    for _ in 0..2 {
        let id = Uuid::now_v7();
        if state
            .auth
            .db
            .insert_pending(id, &new.email, hash, new.role)
            .await?
        {
            return Ok(id);
        }
        match settle_pending(state, &new.email, client).await? {
            Pending::Active => {
                return Err(Problem::conflict(
                    "An account with this email already exists; log in instead.",
                ));
            }
            Pending::InFlight { retry_after_s } => {
                return Err(Problem::conflict(
                    "A registration for this email is in progress; try again shortly.",
                )
                .retry_after(retry_after_s));
            }
            Pending::Reclaimed => {}
        }
    }
    // Someone else took the email between our reclaim and our insert.
    Err(
        Problem::conflict("A registration for this email is in progress; try again shortly.")
            .retry_after(1),
    )
}

/// Appends `AthleteRegistered` for the account whose `pending` row was just inserted.
async fn append_registered(
    state: &AppState,
    account_id: Uuid,
    new: NewAccount,
) -> ApiResult<Executed> {
    let ctx = CommandContext::athlete(account_id).with_idempotency_key("register");
    let executed = state
        .commands
        .execute::<Athlete>(
            &ctx,
            &account_id.to_string(),
            AthleteCommand::Register {
                athlete_id: account_id,
                email: new.email,
                display_name: new.display_name,
                role: new.role,
            },
        )
        .await;
    match executed {
        Ok(e) => Ok(e),
        // Refused before anything was written: the row goes with it.
        Err(e @ CommandError::Domain(_)) => {
            state.auth.db.delete_pending(account_id).await?;
            Err(e.into())
        }
        // The append may or may not have committed: the row stays pending, and the next
        // register or login of this email settles it from the log (`settle_pending`).
        Err(e) => Err(e.into()),
    }
}

/// This request stalled past [`PENDING_GRACE`] and another registration reclaimed the row (and
/// may own the email now): the account the log just gained is withdrawn.
async fn withdraw_registration(state: &AppState, account_id: Uuid, client: &str) -> ApiResult<()> {
    let ctx = CommandContext::athlete(account_id);
    state
        .commands
        .execute_with_retry::<Athlete>(
            &ctx,
            &account_id.to_string(),
            AthleteCommand::Erase {
                requested_by: account_id,
                reason: ErasureReason::AthleteRequest,
            },
        )
        .await?;
    state
        .auth
        .db
        .log(
            "registration_withdrawn",
            Some(account_id),
            Some(client),
            None,
        )
        .await?;
    Ok(())
}

/// The registered account's first session; `position` is its `AthleteRegistered`'s.
async fn open_first_session(
    state: &AppState,
    account_id: Uuid,
    role: Role,
    client: &str,
    position: Option<i64>,
) -> ApiResult<TokenPair> {
    state.auth.remember_client_quietly(account_id, client).await;
    state
        .auth
        .db
        .log(
            "registered",
            Some(account_id),
            Some(client),
            Some(role_str(role)),
        )
        .await?;
    let (session_id, refresh) = state.auth.db.create_session(account_id).await?;
    pair(state, account_id, role, session_id, refresh, position)
}

/// Exchange email and password for a session. Repeated failures pause attempts from the same
/// client, and from unfamiliar clients against the same account, for growing delays.
#[utoipa::path(
    post, path = "/v1/auth/login", tag = "auth",
    request_body = LoginBody,
    responses(
        (status = 200, description = "Signed in", body = TokenPair),
        (status = 401, description = "Email or password is incorrect", body = Problem),
        (status = 429, description = "Too many failed attempts; see Retry-After", body = Problem),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Json(body): Json<LoginBody>,
) -> ApiResult<axum::Json<TokenPair>> {
    Ok(axum::Json(
        sign_in(&state, addr, &body.email, &body.password).await?,
    ))
}

/// A login by email and password, throttled and logged: the API's login and the admin
/// console's both come here.
pub(crate) async fn sign_in(
    state: &AppState,
    addr: Option<SocketAddr>,
    email: &str,
    password: &str,
) -> ApiResult<TokenPair> {
    let client = state.auth.client_tag(addr);
    let email = email.trim().to_lowercase();
    let account = state.auth.db.account_by_email(&email).await?;
    let account_id = account.as_ref().map(|a| a.account_id);
    let pause = state.auth.login_pause(account_id, &client).await?;
    if let Some(wait) = pause.strict {
        state
            .auth
            .db
            .log("login_throttled", account_id, Some(&client), None)
            .await?;
        return Err(throttled(wait));
    }
    let _slot = hashing_slot(state, addr)?;
    let ok = state
        .auth
        .passwords
        .verify_bounded(password, account.as_ref().map(|a| a.password_hash.as_str()))
        .await?;
    // A throttled client still signs its owner in (D39); a wrong guess from it is refused as
    // throttled, and counted.
    if let Some(wait) = pause.client.filter(|_| !ok || account.is_none()) {
        state.auth.record_login_failure(account_id, &client).await?;
        state
            .auth
            .db
            .log("login_throttled", account_id, Some(&client), None)
            .await?;
        return Err(throttled(wait));
    }
    // Only the owner's password learns that the account is suspended.
    if let Some(a) = account.as_ref().filter(|a| ok && a.suspended) {
        state
            .auth
            .db
            .log("login_suspended", Some(a.account_id), Some(&client), None)
            .await?;
        return Err(Problem::forbidden(
            "This account is suspended; an administrator can reinstate it.",
        ));
    }
    // A registration cut off after its event was written is completed by its owner's login.
    let completed = match &account {
        Some(a) if ok && !a.active && registered_in_log(state, a.account_id).await? => {
            complete_registration(state, a.account_id, &client).await?;
            true
        }
        _ => false,
    };
    let account = match account {
        Some(a) if ok && (a.active || completed) => a,
        _ => {
            state.auth.record_login_failure(account_id, &client).await?;
            state
                .auth
                .db
                .log("login_failed", account_id, Some(&client), None)
                .await?;
            return Err(wrong_credentials());
        }
    };
    open_session(state, &account, &client).await
}

/// A login that succeeded: the client is remembered and a session opens.
async fn open_session(state: &AppState, account: &Account, client: &str) -> ApiResult<TokenPair> {
    state
        .auth
        .record_login_success(account.account_id, client)
        .await?;
    state
        .auth
        .db
        .log(
            "login_succeeded",
            Some(account.account_id),
            Some(client),
            None,
        )
        .await?;
    let (session_id, refresh) = state.auth.db.create_session(account.account_id).await?;
    pair(
        state,
        account.account_id,
        account.role,
        session_id,
        refresh,
        None,
    )
}

/// Exchange a refresh token for a new pair. Each refresh token works once: presenting a spent
/// one ends the session for every holder.
#[utoipa::path(
    post, path = "/v1/auth/refresh", tag = "auth",
    request_body = RefreshBody,
    responses(
        (status = 200, description = "New tokens", body = TokenPair),
        (status = 401, description = "Unknown, expired, revoked or reused refresh token", body = Problem),
    )
)]
pub async fn refresh(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Json(body): Json<RefreshBody>,
) -> ApiResult<axum::Json<TokenPair>> {
    body.check()?;
    Ok(axum::Json(renew(&state, addr, &body.refresh_token).await?))
}

/// Spends a refresh token for a new pair: the API's refresh and the admin console's renewal.
pub(crate) async fn renew(
    state: &AppState,
    addr: Option<SocketAddr>,
    refresh_token: &str,
) -> ApiResult<TokenPair> {
    match state.auth.db.rotate_refresh(refresh_token).await {
        Ok((account, session_id, next)) => pair(
            state,
            account.account_id,
            account.role,
            session_id,
            next,
            None,
        ),
        Err(RefreshError::Reused { account_id }) => {
            let client = state.auth.client_tag(addr);
            state
                .auth
                .db
                .log(
                    "refresh_token_reused",
                    Some(account_id),
                    Some(&client),
                    None,
                )
                .await?;
            Err(Problem::unauthenticated(
                "This refresh token was already used; the session has ended. Log in again.",
            ))
        }
        Err(RefreshError::Invalid) => Err(Problem::unauthenticated(
            "The refresh token is unknown, expired or revoked. Log in again.",
        )),
        Err(RefreshError::Db(e)) => Err(e.into()),
    }
}

/// End the session the refresh token belongs to. Answers 204 whether or not the token was
/// live, so it cannot be used to test tokens.
#[utoipa::path(
    post, path = "/v1/auth/logout", tag = "auth",
    request_body = RefreshBody,
    responses((status = 204, description = "The session, if any, has ended"))
)]
pub async fn logout(
    State(state): State<AppState>,
    Json(body): Json<RefreshBody>,
) -> ApiResult<StatusCode> {
    body.check()?;
    if let Some(account) = state.auth.db.revoke_by_refresh(&body.refresh_token).await? {
        state
            .auth
            .db
            .log("logout", Some(account), None, None)
            .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Change the password. Every other session of the account ends; this one continues.
#[utoipa::path(
    post, path = "/v1/auth/password", tag = "auth",
    request_body = PasswordBody,
    responses(
        (status = 204, description = "Password changed; other sessions ended"),
        (status = 403, description = "The current password is wrong", body = Problem),
        (status = 429, description = "Too many failed attempts; see Retry-After", body = Problem),
    ),
    security(("bearer" = []))
)]
pub async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    ClientAddr(addr): ClientAddr,
    Json(body): Json<PasswordBody>,
) -> ApiResult<StatusCode> {
    check_password(&body.new_password).map_err(|m| Problem::invalid("new_password", m))?;
    let client = state.auth.client_tag(addr);
    if !recheck_password(
        &state,
        caller.account_id,
        &client,
        &body.current_password,
        "password_change_refused",
    )
    .await?
    {
        return Err(Problem::forbidden("The current password is wrong."));
    }
    replace_password(&state, &caller, &client, &body.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A signed-in account's password, entered again before an act that cannot be taken back
/// (a new password, an erasure). Throttled and counted like a login, so a stolen access token
/// is no oracle for guessing it; a wrong one is logged as `refused_kind`. False when wrong.
pub(crate) async fn recheck_password(
    state: &AppState,
    account_id: Uuid,
    client: &str,
    password: &str,
    refused_kind: &str,
) -> ApiResult<bool> {
    // As at login: failures from this client against other accounts do not stop the owner.
    let pause = state.auth.login_pause(Some(account_id), client).await?;
    if let Some(wait) = pause.strict {
        return Err(throttled(wait));
    }
    let account = state
        .auth
        .db
        .account(account_id)
        .await?
        .ok_or_else(|| Problem::unauthenticated("This account no longer exists."))?;
    let ok = state
        .auth
        .passwords
        .verify_bounded(password, Some(&account.password_hash))
        .await?;
    if !ok {
        state
            .auth
            .record_login_failure(Some(account_id), client)
            .await?;
        state
            .auth
            .db
            .log(refused_kind, Some(account_id), Some(client), None)
            .await?;
        if let Some(wait) = pause.client {
            return Err(throttled(wait));
        }
    }
    Ok(ok)
}

/// Stores the new password's hash and ends every session of the account but the caller's.
async fn replace_password(
    state: &AppState,
    caller: &Caller,
    client: &str,
    new_password: &str,
) -> ApiResult<()> {
    let hash = state.auth.passwords.hash(new_password).await?;
    state.auth.db.set_password(caller.account_id, &hash).await?;
    let ended = state
        .auth
        .db
        .revoke_other_sessions(
            caller.account_id,
            Some(caller.session_id),
            "password_changed",
        )
        .await?;
    state
        .auth
        .db
        .log(
            "password_changed",
            Some(caller.account_id),
            Some(client),
            Some(&format!("sessions_ended={ended}")),
        )
        .await?;
    Ok(())
}

/// How long a `pending` account row is presumed to belong to a registration still in flight.
/// A registration takes milliseconds between its row and its event; a row older than this
/// whose event is not in the log was left by a crash, and a new registration may reclaim it.
pub const PENDING_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

enum Pending {
    /// The email belongs to an account (completed here if its event was already in the log).
    Active,
    /// Another registration of this email has its row but not yet its event.
    InFlight { retry_after_s: u64 },
    /// The row was abandoned and is gone: the email is free again.
    Reclaimed,
}

/// Whether the athlete stream has its `AthleteRegistered`: the log, not the row, says whether
/// a registration happened (the event is appended with expected version 0, so there is at most
/// one per account id).
async fn registered_in_log(state: &AppState, account_id: Uuid) -> ApiResult<bool> {
    let stream = store::StreamId::new(
        <Athlete as cqrs_es::Aggregate>::TYPE,
        account_id.to_string(),
    );
    let version = state
        .commands
        .store()
        .stream_version(&stream)
        .await
        .map_err(CommandError::from)?;
    Ok(version > 0)
}

/// Marks a `pending` row active whose `AthleteRegistered` is in the log: the registration
/// happened, and only its last write was lost.
async fn complete_registration(state: &AppState, account_id: Uuid, client: &str) -> ApiResult<()> {
    state.auth.db.activate(account_id).await?;
    state
        .auth
        .db
        .log(
            "registration_completed",
            Some(account_id),
            Some(client),
            None,
        )
        .await?;
    Ok(())
}

/// Decides what the existing row for `email` means after an insert found the email taken.
/// See docs/decisions.md ("Registration cannot strand an account") for the interleavings.
async fn settle_pending(state: &AppState, email: &str, client: &str) -> ApiResult<Pending> {
    let Some(row) = state.auth.db.account_by_email(email).await? else {
        // Reclaimed by someone else since our insert failed.
        return Ok(Pending::Reclaimed);
    };
    if row.active || row.suspended {
        return Ok(Pending::Active);
    }
    if registered_in_log(state, row.account_id).await? {
        complete_registration(state, row.account_id, client).await?;
        return Ok(Pending::Active);
    }
    let age_us = chrono::Utc::now().timestamp_micros() - row.created_at_us;
    let grace_us = i64::try_from(PENDING_GRACE.as_micros()).unwrap_or(i64::MAX);
    if age_us < grace_us {
        let left_s = u64::try_from((grace_us - age_us) / 1_000_000).unwrap_or(0);
        return Ok(Pending::InFlight {
            retry_after_s: left_s + 1,
        });
    }
    if state
        .auth
        .db
        .reclaim_pending(row.account_id, row.created_at_us)
        .await?
    {
        state
            .auth
            .db
            .log(
                "registration_reclaimed",
                Some(row.account_id),
                Some(client),
                None,
            )
            .await?;
    }
    Ok(Pending::Reclaimed)
}

/// Test-only crash points (feature `failpoints`): when `STRIDELOG_FAILPOINT` names this step,
/// the request stops here for good, so a test can SIGKILL the process between two steps.
fn failpoint(name: &str) {
    #[cfg(feature = "failpoints")]
    if std::env::var("STRIDELOG_FAILPOINT").is_ok_and(|f| f == name) {
        eprintln!("failpoint {name} reached");
        loop {
            std::thread::park();
        }
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}

//! `/v1/me*`: the caller's profile, preferences, onboarding wizard and coach grants.

use std::collections::BTreeSet;

use axum::extract::State;
use domain::athlete::{
    Athlete, AthleteCommand, CoachAccessScope, Digest, ErasureReason, NotificationChoices,
    OnboardingStep, PhysiologyPatch, ProfilePatch, Role, TrainingGoal, Units,
};
use projections::profile::{self, CoachAccess, Profile};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::routes::{ClientAddr, recheck_password};
use crate::erasure::{EraseError, EraseRequest, Eraser, ErasureReport};
use crate::extract::{Json, Path};
use crate::policy::Caller;
use crate::problem::{ApiResult, Problem};
use crate::{AppState, Consistency, MinPosition, Written};

pub(crate) async fn load_profile(
    state: &AppState,
    athlete: Uuid,
    min_position: Option<i64>,
) -> ApiResult<Profile> {
    state.visible(&["profile"], min_position).await?;
    let t = state.tables("profile").await?;
    if let Some(p) = profile::profile(state.read_pool(), &t, athlete).await? {
        return Ok(p);
    }
    // Every account has a profile; a missing one is a registration the read model has not
    // applied yet, so wait for it rather than answer 404 to a client that just signed up.
    state.caught_up(&["profile"]).await?;
    profile::profile(state.read_pool(), &t, athlete)
        .await?
        .ok_or_else(|| Problem::not_found("profile"))
}

/// The profile as of everything committed so far: for writes that take a value from it.
pub(crate) async fn current_profile(state: &AppState, athlete: Uuid) -> ApiResult<Profile> {
    state.caught_up(&["profile"]).await?;
    load_profile(state, athlete, None).await
}

/// The caller's profile: name, goals, preferences (units, timezone), physiology, onboarding.
#[utoipa::path(get, path = "/v1/me", tag = "me", params(Consistency),
    responses((status = 200, body = Profile)))]
pub async fn get_me(
    State(state): State<AppState>,
    caller: Caller,
    MinPosition(min): MinPosition,
) -> ApiResult<axum::Json<Profile>> {
    Ok(axum::Json(
        load_profile(&state, caller.account_id, min).await?,
    ))
}

/// The password, entered again: an erasure cannot be undone, so a stolen access token alone
/// must not be enough.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseBody {
    pub password: String,
}

/// Erase the caller's account and data (GDPR art. 17). The log keeps the events, sealed under
/// a key that is destroyed here, so their content can no longer be read by anyone; read
/// models, kept files, correlation snapshots and jobs, sessions, refresh tokens and the
/// account itself are deleted, and grants to and from the account end. The email may register
/// again at once. What is kept, and why: docs/privacy.md.
#[utoipa::path(delete, path = "/v1/me", tag = "me", request_body = EraseBody,
    responses(
        (status = 200, body = crate::erasure::ErasureReport),
        (status = 401, description = "Not signed in, or the password is wrong", body = Problem),
        (status = 422, description = "No password in the body", body = Problem),
        (status = 429, description = "Too many wrong passwords; see Retry-After", body = Problem),
    ),
    security(("bearer" = [])))]
pub async fn erase_me(
    State(state): State<AppState>,
    caller: Caller,
    ClientAddr(addr): ClientAddr,
    Json(body): Json<EraseBody>,
) -> ApiResult<axum::Json<ErasureReport>> {
    if body.password.is_empty() {
        return Err(Problem::invalid("password", "enter the account's password"));
    }
    let client = state.auth.client_tag(addr);
    if !recheck_password(
        &state,
        caller.account_id,
        &client,
        &body.password,
        "erasure_refused",
    )
    .await?
    {
        return Err(Problem::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "wrong-password",
            "The password is wrong",
        )
        .detail("Nothing was erased. Enter the account's current password."));
    }
    let eraser = Eraser {
        commands: &state.commands,
        projections: &state.projections,
        identity: &state.auth.db,
    };
    let erased = eraser
        .erase(&EraseRequest {
            athlete_id: caller.account_id,
            actor: store::Actor::user(caller.account_id, "athlete"),
            requested_by: caller.account_id,
            reason: ErasureReason::AthleteRequest,
            wait: crate::READ_WAIT,
        })
        .await;
    // Cached answers go too (D41), also after an interrupted erasure is finished: the token
    // is revoked so none would be served, but an erased athlete leaves nothing in the cache.
    if !matches!(erased, Err(EraseError::NotFound))
        && let Err(e) = state.cache.purge_athlete(caller.account_id).await
    {
        tracing::warn!(error = %format!("{e:#}"),
            "erasure: the read cache was not purged; its entries expire within 10 minutes");
    }
    let report = erased.map_err(|e| match e {
        EraseError::AlreadyErased => Problem::new(
            axum::http::StatusCode::CONFLICT,
            "already-erased",
            "Already erased",
        )
        .detail("This account's data was erased already."),
        EraseError::NotFound => Problem::unauthenticated("This account no longer exists."),
        EraseError::Failed(e) => Problem::internal(format!("{e:#}")),
    })?;
    Ok(axum::Json(report))
}

/// Physiology as `PATCH /v1/me` takes it: a field present is set, `null` clears it (the value
/// becomes unknown), an absent field keeps its value.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhysiologyBody {
    /// 25-250; resting < threshold <= maximum, checked on the values after the change.
    #[schema(minimum = 25, maximum = 250, value_type = Option<u16>)]
    #[serde(default, deserialize_with = "crate::de::patch_u16")]
    pub hr_max_bpm: Option<Option<u16>>,
    #[schema(minimum = 25, maximum = 250, value_type = Option<u16>)]
    #[serde(default, deserialize_with = "crate::de::patch_u16")]
    pub resting_hr_bpm: Option<Option<u16>>,
    #[schema(minimum = 25, maximum = 250, value_type = Option<u16>)]
    #[serde(default, deserialize_with = "crate::de::patch_u16")]
    pub threshold_hr_bpm: Option<Option<u16>>,
    #[schema(minimum = 120, maximum = 1200, value_type = Option<f64>)]
    #[serde(default, deserialize_with = "crate::de::patch")]
    pub threshold_pace_s_per_km: Option<Option<f64>>,
    #[schema(value_type = Option<domain::athlete::Sex>)]
    #[serde(default, deserialize_with = "crate::de::patch")]
    pub sex: Option<Option<domain::athlete::Sex>>,
    /// An age of 5-120 years.
    #[schema(value_type = Option<chrono::NaiveDate>)]
    #[serde(default, deserialize_with = "crate::de::patch")]
    pub birth_date: Option<Option<chrono::NaiveDate>>,
    #[schema(minimum = 50, maximum = 272, value_type = Option<f64>)]
    #[serde(default, deserialize_with = "crate::de::patch")]
    pub height_cm: Option<Option<f64>>,
}

impl From<PhysiologyBody> for PhysiologyPatch {
    fn from(b: PhysiologyBody) -> Self {
        PhysiologyPatch {
            hr_max_bpm: b.hr_max_bpm.into(),
            resting_hr_bpm: b.resting_hr_bpm.into(),
            threshold_hr_bpm: b.threshold_hr_bpm.into(),
            threshold_pace_s_per_km: b.threshold_pace_s_per_km.into(),
            sex: b.sex.into(),
            birth_date: b.birth_date.into(),
            height_cm: b.height_cm.into(),
        }
    }
}

/// Fields present are changed; absent ones keep their value. Within `physiology`, a field
/// present is set, `null` clears it and an absent one keeps its value. The email is changed
/// through a verified flow, not here. The change is merged into the account's current values
/// when it is written, so concurrent updates of different fields all land.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchMeBody {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub display_name: Option<String>,
    #[schema(max_items = 6)]
    #[serde(default, deserialize_with = "crate::de::opt_unique_set")]
    pub goals: Option<BTreeSet<TrainingGoal>>,
    #[serde(default, deserialize_with = "crate::de::opt_object")]
    pub physiology: Option<PhysiologyBody>,
    pub units: Option<Units>,
    #[schema(
        pattern = r"^(UTC|(Africa|America|Antarctica|Arctic|Asia|Atlantic|Australia|Europe|Indian|Pacific|Etc)(/[A-Z][A-Za-z0-9_+\-]*){1,2})$",
        max_length = 64
    )]
    pub timezone: Option<String>,
}

async fn run(
    state: &AppState,
    caller: &Caller,
    command: AthleteCommand,
) -> ApiResult<commands::Executed> {
    let ctx = caller.context();
    Ok(state
        .commands
        .execute_with_retry::<Athlete>(&ctx, &caller.account_id.to_string(), command)
        .await?)
}

/// Change profile fields, physiology, units or timezone: one append, whatever the fields.
/// `position` is `null` when nothing changed.
#[utoipa::path(patch, path = "/v1/me", tag = "me", request_body = PatchMeBody,
    responses((status = 200, body = Written)))]
pub async fn patch_me(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<PatchMeBody>,
) -> ApiResult<axum::Json<Written>> {
    let patch = ProfilePatch {
        display_name: body.display_name,
        goals: body.goals,
        units: body.units,
        timezone: body.timezone,
        physiology: body.physiology.unwrap_or_default().into(),
        ..ProfilePatch::default()
    };
    let executed = run(&state, &caller, AthleteCommand::PatchProfile(patch)).await?;
    Ok(axum::Json(Written::of(&executed)))
}

/// Units, timezone, notifications and the digest.
#[utoipa::path(get, path = "/v1/me/preferences", tag = "me", params(Consistency),
    responses((status = 200, body = profile::Preferences)))]
pub async fn get_preferences(
    State(state): State<AppState>,
    caller: Caller,
    MinPosition(min): MinPosition,
) -> ApiResult<axum::Json<profile::Preferences>> {
    Ok(axum::Json(
        load_profile(&state, caller.account_id, min)
            .await?
            .preferences,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchPreferencesBody {
    pub units: Option<Units>,
    #[schema(
        pattern = r"^(UTC|(Africa|America|Antarctica|Arctic|Asia|Atlantic|Australia|Europe|Indian|Pacific|Etc)(/[A-Z][A-Za-z0-9_+\-]*){1,2})$",
        max_length = 64
    )]
    pub timezone: Option<String>,
    #[serde(default, deserialize_with = "crate::de::opt_object")]
    pub notifications: Option<NotificationChoices>,
    #[serde(default, deserialize_with = "crate::de::opt_object")]
    pub digest: Option<Digest>,
}

/// Change any of the preferences; absent fields keep their value (merged when written, like
/// `PATCH /v1/me`). `position` is `null` when nothing changed.
#[utoipa::path(patch, path = "/v1/me/preferences", tag = "me",
    request_body = PatchPreferencesBody, responses((status = 200, body = Written)))]
pub async fn patch_preferences(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<PatchPreferencesBody>,
) -> ApiResult<axum::Json<Written>> {
    let patch = ProfilePatch {
        units: body.units,
        timezone: body.timezone,
        notifications: body.notifications,
        digest: body.digest,
        ..ProfilePatch::default()
    };
    let executed = run(&state, &caller, AthleteCommand::PatchProfile(patch)).await?;
    Ok(axum::Json(Written::of(&executed)))
}

/// The wizard's steps, in order; `initial` is where everyone starts.
const STEPS: [OnboardingStep; 6] = [
    OnboardingStep::BasicProfile,
    OnboardingStep::Goals,
    OnboardingStep::ConnectStrava,
    OnboardingStep::NutritionSetup,
    OnboardingStep::WorkSetup,
    OnboardingStep::Complete,
];

#[derive(Debug, Serialize, ToSchema)]
pub struct OnboardingState {
    /// The furthest step reached.
    pub reached: OnboardingStep,
    pub completed: BTreeSet<OnboardingStep>,
    /// Steps passed without completing them; they can be completed later.
    pub skipped: BTreeSet<OnboardingStep>,
    /// Where the wizard resumes (the step reached); `null` once complete.
    pub next_step: Option<OnboardingStep>,
    pub goals: BTreeSet<TrainingGoal>,
}

fn onboarding_state(
    reached: OnboardingStep,
    completed: BTreeSet<OnboardingStep>,
    goals: BTreeSet<TrainingGoal>,
) -> OnboardingState {
    let skipped = STEPS
        .iter()
        .copied()
        .filter(|s| *s < reached && *s != OnboardingStep::Complete && !completed.contains(s))
        .collect();
    // `reached` is the step the wizard stands on: done steps are behind it.
    let next_step = match reached {
        OnboardingStep::Complete => None,
        OnboardingStep::Initial => Some(STEPS[0]),
        step => Some(step),
    };
    OnboardingState {
        reached,
        completed,
        skipped,
        next_step,
        goals,
    }
}

/// Where the caller is in the onboarding wizard.
#[utoipa::path(get, path = "/v1/me/onboarding", tag = "me", params(Consistency),
    responses((status = 200, body = OnboardingState)))]
pub async fn get_onboarding(
    State(state): State<AppState>,
    caller: Caller,
    MinPosition(min): MinPosition,
) -> ApiResult<axum::Json<OnboardingState>> {
    let p = load_profile(&state, caller.account_id, min).await?;
    let (reached, completed) = p
        .onboarding
        .map(|o| (o.reached, o.completed))
        .unwrap_or((OnboardingStep::Initial, BTreeSet::new()));
    Ok(axum::Json(onboarding_state(reached, completed, p.goals)))
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StepAction {
    Complete,
    Skip,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OnboardingBody {
    pub action: StepAction,
    /// Only with the `goals` step: the goals to keep on the profile.
    #[schema(max_items = 6)]
    #[serde(default, deserialize_with = "crate::de::opt_unique_set")]
    pub goals: Option<BTreeSet<TrainingGoal>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OnboardingWritten {
    pub position: Option<i64>,
    pub onboarding: OnboardingState,
}

/// Complete or skip one step. Steps may be taken in any order until `complete`; a skipped step
/// can be completed later, and the wizard resumes after the furthest step reached.
#[utoipa::path(post, path = "/v1/me/onboarding/{step}", tag = "me",
    params(("step" = OnboardingStep, Path, description = "Any step but `initial`")),
    request_body = OnboardingBody,
    responses(
        (status = 200, body = OnboardingWritten),
        (status = 409, description = "Onboarding is already complete", body = crate::problem::Problem),
    ))]
pub async fn post_onboarding_step(
    State(state): State<AppState>,
    caller: Caller,
    Path(step): Path<OnboardingStep>,
    Json(body): Json<OnboardingBody>,
) -> ApiResult<axum::Json<OnboardingWritten>> {
    // Decided against the progress in the stream, not a read model that may not have the
    // previous step yet; goals and progress are one append.
    let executed = run(
        &state,
        &caller,
        AthleteCommand::TakeOnboardingStep {
            step,
            complete: matches!(body.action, StepAction::Complete),
            goals: body.goals,
        },
    )
    .await?;
    let stream = store::StreamId::new(
        <Athlete as cqrs_es::Aggregate>::TYPE,
        caller.account_id.to_string(),
    );
    let (athlete, _) = state.commands.load::<Athlete>(&stream).await?;
    let (reached, completed) = athlete.onboarding_progress();
    Ok(axum::Json(OnboardingWritten {
        position: Written::of(&executed).position,
        onboarding: onboarding_state(reached, completed, athlete.goals().clone()),
    }))
}

/// Coaches with read access to the caller's data.
#[utoipa::path(get, path = "/v1/me/coaches", tag = "me", params(Consistency),
    responses((status = 200, body = Vec<CoachAccess>)))]
pub async fn list_coaches(
    State(state): State<AppState>,
    caller: Caller,
    MinPosition(min): MinPosition,
) -> ApiResult<axum::Json<Vec<CoachAccess>>> {
    state.visible(&["profile"], min).await?;
    let t = state.tables("profile").await?;
    Ok(axum::Json(
        profile::coaches(state.read_pool(), &t, caller.account_id).await?,
    ))
}

/// Give a coach read-only access to the caller's data.
#[utoipa::path(post, path = "/v1/me/coaches/{coach_id}", tag = "me",
    params(("coach_id" = Uuid, Path)),
    responses((status = 200, body = Written)))]
pub async fn grant_coach(
    State(state): State<AppState>,
    caller: Caller,
    Path(coach_id): Path<Uuid>,
) -> ApiResult<axum::Json<Written>> {
    let coach = state.auth.db.account(coach_id).await?;
    if !coach.is_some_and(|c| c.active && c.role == Role::Coach) || coach_id == caller.account_id {
        return Err(Problem::not_found("coach"));
    }
    let executed = run(
        &state,
        &caller,
        AthleteCommand::GrantCoachAccess {
            coach_id,
            scope: CoachAccessScope::ReadOnly,
        },
    )
    .await?;
    Ok(axum::Json(Written::of(&executed)))
}

/// Withdraw a coach's access.
#[utoipa::path(delete, path = "/v1/me/coaches/{coach_id}", tag = "me",
    params(("coach_id" = Uuid, Path)),
    responses((status = 200, body = Written)))]
pub async fn revoke_coach(
    State(state): State<AppState>,
    caller: Caller,
    Path(coach_id): Path<Uuid>,
) -> ApiResult<axum::Json<Written>> {
    let stream = store::StreamId::new(
        <Athlete as cqrs_es::Aggregate>::TYPE,
        caller.account_id.to_string(),
    );
    let (athlete, _) = state.commands.load::<Athlete>(&stream).await?;
    if athlete.coach_scope(coach_id).is_none() {
        return Err(Problem::not_found("coach"));
    }
    let executed = run(
        &state,
        &caller,
        AthleteCommand::RevokeCoachAccess { coach_id },
    )
    .await?;
    Ok(axum::Json(Written::of(&executed)))
}

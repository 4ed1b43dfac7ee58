//! `/v1/coach/*`: a coach's roster, and read-only views of the athletes who granted access.
//! Every athlete-scoped route checks the grant on the athlete's own stream; without one the
//! athlete does not exist as far as the caller can tell (404).

use axum::extract::State;
use projections::activities::{ActivityDetail, ActivityPage};
use projections::profile::{self, CoachedAthlete, Profile};
use uuid::Uuid;

use super::activities::{ListParams, detail_for, list_for};
use super::journal::{
    AvailabilityView, Body, BodyPage, CheckInPage, CheckIns, NutritionPage, RangeParams, Work,
    WorkPage, availability_of, facts_of, nutrition_of,
};
use crate::extract::{Path, Query};
use crate::policy::{Caller, coached_athlete};
use crate::problem::ApiResult;
use crate::{AppState, Consistency, MinPosition};

/// The athletes who granted the calling coach access.
#[utoipa::path(get, path = "/v1/coach/athletes", tag = "coach", params(Consistency),
    responses((status = 200, body = Vec<CoachedAthlete>)))]
pub async fn roster(
    State(state): State<AppState>,
    caller: Caller,
    MinPosition(min): MinPosition,
) -> ApiResult<axum::Json<Vec<CoachedAthlete>>> {
    state.visible(&["profile"], min).await?;
    let t = state.tables("profile").await?;
    Ok(axum::Json(
        profile::athletes_of_coach(state.read_pool(), &t, caller.account_id).await?,
    ))
}

/// A coached athlete's profile.
#[utoipa::path(get, path = "/v1/coach/athletes/{athlete_id}/profile", tag = "coach",
    params(("athlete_id" = Uuid, Path), Consistency), responses((status = 200, body = Profile)))]
pub async fn athlete_profile(
    State(state): State<AppState>,
    caller: Caller,
    Path(athlete_id): Path<Uuid>,
    MinPosition(min): MinPosition,
) -> ApiResult<axum::Json<Profile>> {
    let athlete = coached_athlete(&state, &caller, athlete_id).await?;
    Ok(axum::Json(
        super::me::load_profile(&state, athlete, min).await?,
    ))
}

/// A coached athlete's activities.
#[utoipa::path(get, path = "/v1/coach/athletes/{athlete_id}/activities", tag = "coach",
    params(("athlete_id" = Uuid, Path), ListParams, Consistency),
    responses((status = 200, body = ActivityPage)))]
pub async fn athlete_activities(
    State(state): State<AppState>,
    caller: Caller,
    Path(athlete_id): Path<Uuid>,
    Query(params): Query<ListParams>,
    MinPosition(min): MinPosition,
) -> ApiResult<axum::Json<ActivityPage>> {
    let athlete = coached_athlete(&state, &caller, athlete_id).await?;
    Ok(axum::Json(list_for(&state, athlete, params, min).await?))
}

/// One of a coached athlete's activities.
#[utoipa::path(get, path = "/v1/coach/athletes/{athlete_id}/activities/{activity_id}",
    tag = "coach",
    params(("athlete_id" = Uuid, Path), ("activity_id" = Uuid, Path), Consistency),
    responses((status = 200, body = ActivityDetail)))]
pub async fn athlete_activity(
    State(state): State<AppState>,
    caller: Caller,
    Path((athlete_id, activity_id)): Path<(Uuid, Uuid)>,
    MinPosition(min): MinPosition,
) -> ApiResult<axum::Json<ActivityDetail>> {
    let athlete = coached_athlete(&state, &caller, athlete_id).await?;
    Ok(axum::Json(
        detail_for(&state, athlete, activity_id, min).await?,
    ))
}

macro_rules! ranged {
    ($name:ident, $path:literal, $ty:ty, $fetch:expr, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(get, path = $path, tag = "coach",
                                    params(("athlete_id" = Uuid, Path), RangeParams, Consistency),
                                    responses((status = 200, body = $ty)))]
        pub async fn $name(
            State(state): State<AppState>,
            caller: Caller,
            Path(athlete_id): Path<Uuid>,
            Query(range): Query<RangeParams>,
            MinPosition(min): MinPosition,
        ) -> ApiResult<axum::Json<$ty>> {
            let athlete = coached_athlete(&state, &caller, athlete_id).await?;
            Ok(axum::Json($fetch(&state, athlete, &range, min).await?))
        }
    };
}

ranged!(
    athlete_checkins,
    "/v1/coach/athletes/{athlete_id}/checkins",
    CheckInPage,
    facts_of::<CheckIns>,
    "A coached athlete's check-ins in a date range."
);
ranged!(
    athlete_nutrition,
    "/v1/coach/athletes/{athlete_id}/nutrition",
    NutritionPage,
    nutrition_of,
    "A coached athlete's nutrition in a date range."
);
ranged!(
    athlete_work,
    "/v1/coach/athletes/{athlete_id}/work",
    WorkPage,
    facts_of::<Work>,
    "A coached athlete's work patterns in a date range."
);
ranged!(
    athlete_body,
    "/v1/coach/athletes/{athlete_id}/body",
    BodyPage,
    facts_of::<Body>,
    "A coached athlete's body composition in a date range."
);

/// A coached athlete's weekly availability.
#[utoipa::path(get, path = "/v1/coach/athletes/{athlete_id}/availability", tag = "coach",
    params(("athlete_id" = Uuid, Path), Consistency),
    responses((status = 200, body = AvailabilityView)))]
pub async fn athlete_availability(
    State(state): State<AppState>,
    caller: Caller,
    Path(athlete_id): Path<Uuid>,
    MinPosition(min): MinPosition,
) -> ApiResult<axum::Json<AvailabilityView>> {
    let athlete = coached_athlete(&state, &caller, athlete_id).await?;
    Ok(axum::Json(availability_of(&state, athlete, min).await?))
}

//! `/v1/activities*` and `/v1/feedback/pending`: manual activities, their edits and the
//! athlete's perceived-effort feedback.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use commands::CommandContext;
use domain::activity::{
    Activity, ActivityCommand, ActivitySource, DeleteActivity, Lap, RecordActivity,
    RecordPerceivedEffort, RemovePerceivedEffort, SetWorkoutType, Sport, UpdateActivity,
    WorkoutType,
};
use projections::activities::{
    self, ActivityDetail, ActivityPage, ActivityQuery, ActivityQueryError, ActivitySort,
    PerceivedEffort, SortDirection,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::extract::{Json, Path, Query};
use crate::policy::Caller;
use crate::problem::{ApiResult, Problem};
use crate::{AppState, Consistency, Created, MinPosition, Written};

/// One split of a manual activity (a lap, a kilometre, an interval).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitBody {
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub distance_m: Option<f64>,
    #[schema(minimum = 0, maximum = 604_800)]
    pub moving_time_s: Option<f64>,
    #[schema(minimum = 25, maximum = 250)]
    pub avg_hr_bpm: Option<f64>,
    #[schema(minimum = 0, maximum = 20_000)]
    pub elevation_gain_m: Option<f64>,
}

/// A manually logged session: its summary and, optionally, its splits in order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewActivityBody {
    pub sport: Sport,
    #[schema(
        max_length = 200,
        pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
    )]
    pub name: Option<String>,
    /// When it started; not in the future.
    pub start_time: DateTime<Utc>,
    /// IANA zone the athlete was in; the profile's timezone when absent.
    #[schema(
        pattern = r"^(UTC|(Africa|America|Antarctica|Arctic|Asia|Atlantic|Australia|Europe|Indian|Pacific|Etc)(/[A-Z][A-Za-z0-9_+\-]*){1,2})$",
        max_length = 64
    )]
    pub timezone: Option<String>,
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub distance_m: Option<f64>,
    #[schema(minimum = 0, maximum = 604_800)]
    pub moving_time_s: f64,
    #[schema(minimum = 0, maximum = 604_800)]
    pub elapsed_time_s: Option<f64>,
    #[schema(minimum = 25, maximum = 250)]
    pub avg_hr_bpm: Option<f64>,
    #[schema(minimum = 25, maximum = 250)]
    pub max_hr_bpm: Option<f64>,
    #[schema(minimum = 0, maximum = 20_000)]
    pub elevation_gain_m: Option<f64>,
    #[schema(minimum = 0, maximum = 20_000)]
    pub elevation_loss_m: Option<f64>,
    #[serde(default, deserialize_with = "crate::de::objects")]
    #[schema(max_items = 500)]
    pub splits: Vec<SplitBody>,
}

/// The most splits a manual activity takes: the schema's `maxItems` above. (Imported files
/// may carry more laps; the domain's own limit is for those.)
pub const MAX_SPLITS: usize = 500;

fn ctx(caller: &Caller) -> CommandContext {
    caller.context()
}

async fn run(
    state: &AppState,
    caller: &Caller,
    activity_id: Uuid,
    command: ActivityCommand,
) -> ApiResult<commands::Executed> {
    Ok(state
        .commands
        .execute_with_retry::<Activity>(&ctx(caller), &activity_id.to_string(), command)
        .await?)
}

/// Log an activity by hand. Answers 201 with its id and the write's position.
#[utoipa::path(post, path = "/v1/activities", tag = "activities",
    params(IdempotencyHeader),
    request_body = NewActivityBody,
    responses((status = 201, body = Created, headers(("Location" = String)))))]
pub async fn create_activity(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(mut body): Json<NewActivityBody>,
) -> ApiResult<Response> {
    let timezone = match body.timezone.take() {
        Some(tz) => tz,
        None => {
            super::me::current_profile(&state, caller.account_id)
                .await?
                .preferences
                .timezone
        }
    };
    if body.splits.len() > MAX_SPLITS {
        return Err(Problem::invalid(
            "splits",
            format!("at most {MAX_SPLITS} splits, got {}", body.splits.len()),
        ));
    }
    let activity_id = Uuid::now_v7();
    let mut context = ctx(&caller);
    // A retried POST with the same key records one activity, not two.
    let key = idempotency_key(&headers)?;
    let aggregate_id = match &key {
        Some(k) => {
            context = context.with_idempotency_key(format!("activity:{k}"));
            // The id must be the same on the retry, so it is derived from the key.
            Uuid::new_v5(&caller.account_id, k.as_bytes())
        }
        None => activity_id,
    };
    let command = body.into_command(caller.account_id, aggregate_id, timezone);
    let executed = state
        .commands
        .execute::<Activity>(
            &context,
            &aggregate_id.to_string(),
            ActivityCommand::RecordActivity(command),
        )
        .await?;
    let created = Created {
        id: aggregate_id,
        position: Written::of(&executed).position,
    };
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/v1/activities/{aggregate_id}"))],
        axum::Json(created),
    )
        .into_response())
}

impl NewActivityBody {
    /// The command that records this activity, its splits numbered in order; `timezone`
    /// replaces the body's own.
    fn into_command(self, athlete_id: Uuid, activity_id: Uuid, timezone: String) -> RecordActivity {
        let laps = self
            .splits
            .iter()
            .enumerate()
            .map(|(i, s)| Lap {
                index: u32::try_from(i).unwrap_or(u32::MAX),
                distance_m: s.distance_m,
                moving_time_s: s.moving_time_s,
                avg_hr_bpm: s.avg_hr_bpm,
                elevation_gain_m: s.elevation_gain_m,
            })
            .collect();
        RecordActivity {
            athlete_id,
            activity_id,
            sport: self.sport,
            name: self.name,
            start_time: self.start_time,
            timezone,
            distance_m: self.distance_m,
            moving_time_s: self.moving_time_s,
            elapsed_time_s: self.elapsed_time_s,
            avg_hr_bpm: self.avg_hr_bpm,
            max_hr_bpm: self.max_hr_bpm,
            elevation_gain_m: self.elevation_gain_m,
            elevation_loss_m: self.elevation_loss_m,
            source: ActivitySource::Manual,
            external_id: None,
            laps,
            samples: None,
        }
    }
}

/// A retry with the same key and body returns the first answer and creates nothing.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(
    dead_code,
    reason = "read from the headers by `idempotency_key`; here for the document"
)]
pub struct IdempotencyHeader {
    /// 1-200 visible ASCII characters, chosen by the client per logical request.
    #[serde(rename = "Idempotency-Key")]
    #[param(pattern = r"^[!-~]{1,200}$")]
    pub idempotency_key: Option<String>,
}

/// `Idempotency-Key`: 1-200 visible ASCII characters.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|k| (1..=200).contains(&k.len()) && k.chars().all(|c| c.is_ascii_graphic()))
            .map(|k| Some(k.to_string()))
            .ok_or_else(|| {
                Problem::invalid("Idempotency-Key", "must be 1-200 visible ASCII characters")
            }),
    }
}

/// Filters, order and page of the activity list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// First local start date included.
    pub from: Option<chrono::NaiveDate>,
    /// Last local start date included.
    pub to: Option<chrono::NaiveDate>,
    #[param(minimum = 0)]
    pub min_distance_m: Option<f64>,
    #[param(minimum = 0)]
    pub max_distance_m: Option<f64>,
    pub sport: Option<Sport>,
    /// `true`: races only; `false`: everything but races.
    pub race: Option<bool>,
    pub sort: Option<ActivitySort>,
    pub direction: Option<SortDirection>,
    /// 1-200, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(max_length = 500)]
    pub cursor: Option<String>,
}

impl From<ListParams> for ActivityQuery {
    fn from(p: ListParams) -> Self {
        ActivityQuery {
            from: p.from,
            to: p.to,
            min_distance_m: p.min_distance_m,
            max_distance_m: p.max_distance_m,
            sport: p.sport,
            race: p.race,
            sort: p.sort.unwrap_or_default(),
            direction: p.direction.unwrap_or_default(),
            limit: p.limit,
            cursor: p.cursor,
        }
    }
}

pub(crate) async fn list_for(
    state: &AppState,
    athlete: Uuid,
    params: ListParams,
    min_position: Option<i64>,
) -> ApiResult<ActivityPage> {
    for (field, date) in [("from", params.from), ("to", params.to)] {
        if let Some(d) = date {
            domain::validation::plausible_date(field, d)?;
        }
    }
    for (field, value) in [
        ("min_distance_m", params.min_distance_m),
        ("max_distance_m", params.max_distance_m),
    ] {
        if value.is_some_and(|v| !(v >= 0.0 && v.is_finite())) {
            return Err(Problem::invalid(
                field,
                "must be a non-negative number of metres",
            ));
        }
    }
    state.visible(&["activities"], min_position).await?;
    let t = state.tables("activities").await?;
    match activities::list(state.read_pool(), &t, athlete, &params.into()).await {
        Ok(page) => Ok(page),
        Err(e) => match e.downcast_ref::<ActivityQueryError>() {
            Some(ActivityQueryError::MalformedCursor(_)) => Err(Problem::invalid(
                "cursor",
                "is not a cursor from this list with this sort and direction",
            )),
            Some(q) => Err(Problem::invalid("query", q.to_string())),
            None => Err(e.into()),
        },
    }
}

/// The caller's activities, newest first by default, paged by cursor.
#[utoipa::path(get, path = "/v1/activities", tag = "activities",
    params(ListParams, Consistency), responses((status = 200, body = ActivityPage)))]
pub async fn list_activities(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ListParams>,
    RawQuery(raw): RawQuery,
    MinPosition(min): MinPosition,
) -> ApiResult<Response> {
    let athlete = caller.account_id;
    state
        .cached(
            athlete,
            "activities",
            crate::cache::normalise_query(raw.as_deref()),
            &["activities"],
            min,
            async { Ok((list_for(&state, athlete, params, min).await?, true)) },
        )
        .await
}

pub(crate) async fn detail_for(
    state: &AppState,
    athlete: Uuid,
    activity_id: Uuid,
    min_position: Option<i64>,
) -> ApiResult<ActivityDetail> {
    let stream = store::StreamId::new(
        <Activity as cqrs_es::Aggregate>::TYPE,
        activity_id.to_string(),
    );
    state
        .stream_visible(&["activities"], &stream, min_position)
        .await?;
    let t = state.tables("activities").await?;
    activities::detail(state.read_pool(), &t, athlete, activity_id)
        .await?
        .ok_or_else(|| Problem::not_found("activity"))
}

/// One activity with its laps and feedback.
#[utoipa::path(get, path = "/v1/activities/{activity_id}", tag = "activities",
    params(("activity_id" = Uuid, Path), Consistency),
    responses((status = 200, body = ActivityDetail)))]
pub async fn get_activity(
    State(state): State<AppState>,
    caller: Caller,
    Path(activity_id): Path<Uuid>,
    MinPosition(min): MinPosition,
) -> ApiResult<axum::Json<ActivityDetail>> {
    Ok(axum::Json(
        detail_for(&state, caller.account_id, activity_id, min).await?,
    ))
}

/// Fields present are changed; an update cannot clear a value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchActivityBody {
    #[schema(
        max_length = 200,
        pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
    )]
    pub name: Option<String>,
    pub sport: Option<Sport>,
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub distance_m: Option<f64>,
    #[schema(minimum = 0, maximum = 604_800)]
    pub moving_time_s: Option<f64>,
    #[schema(minimum = 25, maximum = 250)]
    pub avg_hr_bpm: Option<f64>,
    #[schema(
        max_length = 2000,
        pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
    )]
    pub notes: Option<String>,
}

/// Correct an activity's summary or notes.
#[utoipa::path(patch, path = "/v1/activities/{activity_id}", tag = "activities",
    params(("activity_id" = Uuid, Path)), request_body = PatchActivityBody,
    responses((status = 200, body = Written),
        (status = 409, description = "The activity was deleted", body = Problem)))]
pub async fn patch_activity(
    State(state): State<AppState>,
    caller: Caller,
    Path(activity_id): Path<Uuid>,
    Json(body): Json<PatchActivityBody>,
) -> ApiResult<axum::Json<Written>> {
    let executed = run(
        &state,
        &caller,
        activity_id,
        ActivityCommand::UpdateActivity(UpdateActivity {
            athlete_id: caller.account_id,
            name: body.name,
            sport: body.sport,
            distance_m: body.distance_m,
            moving_time_s: body.moving_time_s,
            avg_hr_bpm: body.avg_hr_bpm,
            notes: body.notes,
        }),
    )
    .await?;
    Ok(axum::Json(Written::of(&executed)))
}

/// Delete an activity. Deleting it again succeeds and changes nothing.
#[utoipa::path(delete, path = "/v1/activities/{activity_id}", tag = "activities",
    params(("activity_id" = Uuid, Path)), responses((status = 200, body = Written)))]
pub async fn delete_activity(
    State(state): State<AppState>,
    caller: Caller,
    Path(activity_id): Path<Uuid>,
) -> ApiResult<axum::Json<Written>> {
    let executed = run(
        &state,
        &caller,
        activity_id,
        ActivityCommand::DeleteActivity(DeleteActivity {
            athlete_id: caller.account_id,
        }),
    )
    .await?;
    Ok(axum::Json(Written::of(&executed)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkoutTypeBody {
    pub workout_type: WorkoutType,
}

/// Label the session's purpose (easy, long, tempo, ...).
#[utoipa::path(put, path = "/v1/activities/{activity_id}/workout-type", tag = "activities",
    params(("activity_id" = Uuid, Path)), request_body = WorkoutTypeBody,
    responses((status = 200, body = Written),
        (status = 409, description = "The activity was deleted", body = Problem)))]
pub async fn put_workout_type(
    State(state): State<AppState>,
    caller: Caller,
    Path(activity_id): Path<Uuid>,
    Json(body): Json<WorkoutTypeBody>,
) -> ApiResult<axum::Json<Written>> {
    let executed = run(
        &state,
        &caller,
        activity_id,
        ActivityCommand::SetWorkoutType(SetWorkoutType {
            athlete_id: caller.account_id,
            workout_type: body.workout_type,
        }),
    )
    .await?;
    Ok(axum::Json(Written::of(&executed)))
}

/// How the session felt. `effort` is RPE 1-10; the others are 1-5 scales, 5 = best.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackBody {
    #[schema(minimum = 1, maximum = 10)]
    #[serde(deserialize_with = "crate::de::small")]
    pub effort: u8,
    #[schema(minimum = 1, maximum = 5)]
    #[serde(default, deserialize_with = "crate::de::opt_small")]
    pub leg_feel: Option<u8>,
    #[schema(minimum = 1, maximum = 5)]
    #[serde(default, deserialize_with = "crate::de::opt_small")]
    pub mood_before: Option<u8>,
    #[schema(minimum = 1, maximum = 5)]
    #[serde(default, deserialize_with = "crate::de::opt_small")]
    pub mood_after: Option<u8>,
    #[schema(minimum = 1, maximum = 5)]
    #[serde(default, deserialize_with = "crate::de::opt_small")]
    pub energy_before: Option<u8>,
    #[schema(minimum = 1, maximum = 5)]
    #[serde(default, deserialize_with = "crate::de::opt_small")]
    pub energy_after: Option<u8>,
    #[schema(
        max_length = 2000,
        pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
    )]
    pub notes: Option<String>,
}

async fn record_feedback(
    state: &AppState,
    caller: &Caller,
    activity_id: Uuid,
    body: FeedbackBody,
) -> ApiResult<commands::Executed> {
    run(
        state,
        caller,
        activity_id,
        ActivityCommand::RecordPerceivedEffort(RecordPerceivedEffort {
            athlete_id: caller.account_id,
            effort: body.effort,
            leg_feel: body.leg_feel,
            mood_before: body.mood_before,
            mood_after: body.mood_after,
            energy_before: body.energy_before,
            energy_after: body.energy_after,
            notes: body.notes,
        }),
    )
    .await
}

/// Rate an activity that has no rating yet (409 if it has one: use PUT to replace it).
#[utoipa::path(post, path = "/v1/activities/{activity_id}/feedback", tag = "activities",
    params(("activity_id" = Uuid, Path)), request_body = FeedbackBody,
    responses((status = 201, body = Written),
        (status = 409, description = "Already rated, or deleted", body = Problem)))]
pub async fn post_feedback(
    State(state): State<AppState>,
    caller: Caller,
    Path(activity_id): Path<Uuid>,
    Json(body): Json<FeedbackBody>,
) -> ApiResult<Response> {
    let stream = store::StreamId::new(
        <Activity as cqrs_es::Aggregate>::TYPE,
        activity_id.to_string(),
    );
    let (activity, _) = state.commands.load::<Activity>(&stream).await?;
    if activity.owner() != Some(caller.account_id) {
        return Err(Problem::not_found("activity"));
    }
    if activity.has_effort() {
        return Err(Problem::conflict(
            "This activity already has a rating; replace it with PUT.",
        ));
    }
    let executed = record_feedback(&state, &caller, activity_id, body).await?;
    Ok((StatusCode::CREATED, axum::Json(Written::of(&executed))).into_response())
}

/// Rate an activity, replacing any earlier rating.
#[utoipa::path(put, path = "/v1/activities/{activity_id}/feedback", tag = "activities",
    params(("activity_id" = Uuid, Path)), request_body = FeedbackBody,
    responses((status = 200, body = Written),
        (status = 409, description = "The activity was deleted", body = Problem)))]
pub async fn put_feedback(
    State(state): State<AppState>,
    caller: Caller,
    Path(activity_id): Path<Uuid>,
    Json(body): Json<FeedbackBody>,
) -> ApiResult<axum::Json<Written>> {
    let executed = record_feedback(&state, &caller, activity_id, body).await?;
    Ok(axum::Json(Written::of(&executed)))
}

/// The activity's rating; 404 when it has none.
#[utoipa::path(get, path = "/v1/activities/{activity_id}/feedback", tag = "activities",
    params(("activity_id" = Uuid, Path), Consistency),
    responses((status = 200, body = PerceivedEffort)))]
pub async fn get_feedback(
    State(state): State<AppState>,
    caller: Caller,
    Path(activity_id): Path<Uuid>,
    MinPosition(min): MinPosition,
) -> ApiResult<axum::Json<PerceivedEffort>> {
    detail_for(&state, caller.account_id, activity_id, min)
        .await?
        .perceived_effort
        .map(axum::Json)
        .ok_or_else(|| Problem::not_found("rating for this activity"))
}

/// Withdraw the rating. Withdrawing a rating that is not there succeeds and changes nothing.
#[utoipa::path(delete, path = "/v1/activities/{activity_id}/feedback", tag = "activities",
    params(("activity_id" = Uuid, Path)),
    responses((status = 200, body = Written),
        (status = 409, description = "The activity was deleted", body = Problem)))]
pub async fn delete_feedback(
    State(state): State<AppState>,
    caller: Caller,
    Path(activity_id): Path<Uuid>,
) -> ApiResult<axum::Json<Written>> {
    let executed = run(
        &state,
        &caller,
        activity_id,
        ActivityCommand::RemovePerceivedEffort(RemovePerceivedEffort {
            athlete_id: caller.account_id,
        }),
    )
    .await?;
    Ok(axum::Json(Written::of(&executed)))
}

/// A recent run without a rating, and a question suited to it. Rating is always optional.
#[derive(Debug, Serialize, ToSchema)]
pub struct PendingFeedback {
    pub activity_id: Uuid,
    pub name: Option<String>,
    pub sport: Sport,
    pub local_date: chrono::NaiveDate,
    pub distance_m: Option<f64>,
    pub moving_time_s: f64,
    pub workout_type: Option<WorkoutType>,
    pub prompt: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PendingParams {
    /// How far back to look, 1-30 days; default 7.
    #[param(minimum = 1, maximum = 30)]
    pub days: Option<u32>,
}

fn prompt(
    sport: Sport,
    workout: Option<WorkoutType>,
    distance_m: Option<f64>,
    moving_s: f64,
) -> String {
    let km = distance_m.map(|d| format!("{:.1} km", d / 1000.0));
    let minutes = format!("{:.0} min", moving_s / 60.0);
    let what = km.unwrap_or(minutes);
    match (sport, workout) {
        (_, Some(WorkoutType::Race)) => {
            format!("{what} race: effort 1-10, and how did the legs hold up?")
        }
        (_, Some(WorkoutType::Intervals | WorkoutType::Threshold | WorkoutType::Tempo)) => {
            format!("{what} quality session: effort 1-10 over the hard parts?")
        }
        (_, Some(WorkoutType::Long)) => {
            format!("{what} long run: effort 1-10, and energy at the end (1-5)?")
        }
        (_, Some(WorkoutType::Easy | WorkoutType::Recovery)) => {
            format!("{what} easy run: effort 1-10, and leg feel (1-5)?")
        }
        _ => format!("{what}: effort 1-10?"),
    }
}

/// Recent runs without a rating, newest first, each with a question suited to the session.
#[utoipa::path(get, path = "/v1/feedback/pending", tag = "activities",
    params(PendingParams, Consistency), responses((status = 200, body = Vec<PendingFeedback>)))]
pub async fn pending_feedback(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<PendingParams>,
    MinPosition(min): MinPosition,
) -> ApiResult<axum::Json<Vec<PendingFeedback>>> {
    let days = p.days.unwrap_or(7);
    if !(1..=30).contains(&days) {
        return Err(Problem::invalid(
            "days",
            format!("must be 1-30, got {days}"),
        ));
    }
    let profile = super::me::current_profile(&state, caller.account_id).await?;
    let today = activities::local_date(Utc::now(), &profile.preferences.timezone);
    let from = today - chrono::Duration::days(i64::from(days) - 1);
    let page = list_for(
        &state,
        caller.account_id,
        ListParams {
            from: Some(from),
            to: Some(today),
            min_distance_m: None,
            max_distance_m: None,
            sport: None,
            race: None,
            sort: None,
            direction: None,
            limit: Some(200),
            cursor: None,
        },
        min,
    )
    .await?;
    let running = [Sport::Run, Sport::TrailRun, Sport::TreadmillRun];
    Ok(axum::Json(
        page.activities
            .into_iter()
            .filter(|a| a.perceived_effort_rpe.is_none() && running.contains(&a.sport))
            .map(|a| PendingFeedback {
                prompt: prompt(a.sport, a.workout_type, a.distance_m, a.moving_time_s),
                activity_id: a.activity_id,
                name: a.name,
                sport: a.sport,
                local_date: a.local_date,
                distance_m: a.distance_m,
                moving_time_s: a.moving_time_s,
                workout_type: a.workout_type,
            })
            .collect(),
    ))
}

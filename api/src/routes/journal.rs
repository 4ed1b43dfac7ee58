//! Check-ins, nutrition (entries and presets), work, body composition, training availability
//! and insight feedback. Each kind is optional; a date with nothing logged is simply empty.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use domain::athlete::{
    Athlete, AthleteCommand, DayBlock, Nutrients, SlotStatus, Weekday, WeeklyAvailability,
};
use domain::journal::{
    CheckInValues, DeleteNutritionEntry, GiveInsightFeedback, Journal, JournalCommand,
    LogBodyComposition, LogDailyCheckIn, LogNutritionEntry, LogWorkPattern, NutritionEntryType,
    NutritionPatch, NutritionValues, PatchNutritionEntry, WorkType,
};
use projections::journal::{
    self as rm, BodyComposition, CheckIn, InsightFeedbackCount, InsightFeedbackTotals,
    NutritionEntry, WorkPattern,
};
use projections::profile::{self, Preset};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::extract::{Json, Path, Query};
use crate::policy::Caller;
use crate::problem::{ApiResult, Problem};
use crate::{AppState, Consistency, Created, MinPosition, Written};

/// The longest date range one list request covers.
pub const MAX_RANGE_DAYS: u64 = 366;

async fn journal(
    state: &AppState,
    caller: &Caller,
    command: JournalCommand,
) -> ApiResult<commands::Executed> {
    let ctx = caller.context();
    Ok(state
        .commands
        .execute_with_retry::<Journal>(&ctx, &command.aggregate_id(), command)
        .await?)
}

/// A date range, `from` and `to` included. Default: the 30 days to today (UTC). A page covers
/// at most 366 days; a longer range is answered from `from` on, with `next_from` to continue.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeParams {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

/// The dates one page covers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub(crate) from: NaiveDate,
    pub(crate) to: NaiveDate,
    pub(crate) next_from: Option<NaiveDate>,
}

impl RangeParams {
    /// `from` and `to` must fall in the years dates may hold (`validation::YEARS`).
    pub(crate) fn window(&self) -> ApiResult<Window> {
        for (field, date) in [("from", self.from), ("to", self.to)] {
            if let Some(d) = date {
                domain::validation::plausible_date(field, d)?;
            }
        }
        let to = self.to.unwrap_or_else(|| Utc::now().date_naive());
        let from = self
            .from
            .unwrap_or_else(|| to.checked_sub_days(chrono::Days::new(29)).unwrap_or(to));
        let last = from
            .checked_add_days(chrono::Days::new(MAX_RANGE_DAYS - 1))
            .unwrap_or(NaiveDate::MAX);
        Ok(if to > last {
            Window {
                from,
                to: last,
                next_from: last.succ_opt(),
            }
        } else {
            // `from` after `to` is an empty range, not an error.
            Window {
                from,
                to,
                next_from: None,
            }
        })
    }
}

/// A list's item type (one date's read, with its date) and its page type.
macro_rules! page {
    ($page:ident of $dated:ident { $field:ident: $read:ty }) => {
        #[derive(Debug, Serialize, ToSchema)]
        pub struct $dated {
            pub date: NaiveDate,
            #[serde(flatten)]
            pub $field: $read,
        }

        /// One page of a date range: the items, the dates covered, and where the next page
        /// starts when the range asked for was longer than one page.
        #[derive(Debug, Serialize, ToSchema)]
        pub struct $page {
            pub items: Vec<$dated>,
            pub from: NaiveDate,
            pub to: NaiveDate,
            pub next_from: Option<NaiveDate>,
        }

        impl From<(Window, Vec<(NaiveDate, $read)>)> for $page {
            fn from((w, items): (Window, Vec<(NaiveDate, $read)>)) -> Self {
                Self {
                    items: items
                        .into_iter()
                        .map(|(date, $field)| $dated { date, $field })
                        .collect(),
                    from: w.from,
                    to: w.to,
                    next_from: w.next_from,
                }
            }
        }
    };
}

page!(NutritionPage of DatedNutritionEntry { entry: NutritionEntry });

pub(crate) async fn days_for(
    state: &AppState,
    athlete: Uuid,
    w: Window,
    min_position: Option<i64>,
) -> ApiResult<Vec<rm::JournalDay>> {
    if w.from > w.to {
        return Ok(Vec::new());
    }
    state.visible(&["journal"], min_position).await?;
    let t = state.tables("journal").await?;
    Ok(rm::range(state.read_pool(), &t, athlete, w.from, w.to).await?)
}

fn journal_stream(athlete: Uuid, date: NaiveDate) -> store::StreamId {
    store::StreamId::new(
        <Journal as cqrs_es::Aggregate>::TYPE,
        domain::journal::journal_id(athlete, date),
    )
}

async fn day_for(
    state: &AppState,
    athlete: Uuid,
    date: NaiveDate,
    min_position: Option<i64>,
) -> ApiResult<rm::JournalDay> {
    state
        .stream_visible(&["journal"], &journal_stream(athlete, date), min_position)
        .await?;
    let t = state.tables("journal").await?;
    Ok(rm::day(state.read_pool(), &t, athlete, date).await?)
}

// --- one-per-day facts: check-ins, work, body composition -------------------------------------

/// A journal fact a date holds at most one of: `PUT` logs or replaces a date's, `GET` reads it,
/// a list reads a range. The three kinds differ only in what this says, so their routes are
/// written once (`day_fact_routes!`, `put_fact`, `get_fact`, `facts_of`).
pub(crate) trait DayFact {
    type Body: DeserializeOwned + Send;
    /// A date's fact as the read model serves it.
    type Read: Serialize + Send;
    type Page: Serialize + From<(Window, Vec<(NaiveDate, Self::Read)>)>;
    /// Completes the 404 "No … with that id is visible to you."
    const WHAT: &'static str;

    /// The command logging `body` as `athlete_id`'s fact of `date`.
    fn command(
        state: &AppState,
        athlete_id: Uuid,
        date: NaiveDate,
        body: Self::Body,
    ) -> impl Future<Output = ApiResult<JournalCommand>> + Send;

    fn of(day: rm::JournalDay) -> Option<Self::Read>;
}

async fn put_fact<F: DayFact>(
    state: &AppState,
    caller: &Caller,
    date: NaiveDate,
    body: F::Body,
) -> ApiResult<axum::Json<Written>> {
    let command = F::command(state, caller.account_id, date, body).await?;
    let executed = journal(state, caller, command).await?;
    Ok(axum::Json(Written::of(&executed)))
}

async fn get_fact<F: DayFact>(
    state: &AppState,
    caller: &Caller,
    date: NaiveDate,
    min: Option<i64>,
) -> ApiResult<axum::Json<F::Read>> {
    F::of(day_for(state, caller.account_id, date, min).await?)
        .map(axum::Json)
        .ok_or_else(|| Problem::not_found(F::WHAT))
}

/// The facts of a date range, oldest first; the coach's views read them too.
pub(crate) async fn facts_of<F: DayFact>(
    state: &AppState,
    athlete: Uuid,
    range: &RangeParams,
    min: Option<i64>,
) -> ApiResult<F::Page> {
    let w = range.window()?;
    let items = days_for(state, athlete, w, min)
        .await?
        .into_iter()
        .filter_map(|d| {
            let date = d.date;
            F::of(d).map(|fact| (date, fact))
        })
        .collect();
    Ok((w, items).into())
}

/// A [`DayFact`]'s three routes. Each keeps its own path, description and OpenAPI types.
macro_rules! day_fact_routes {
    (
        $fact:ty: $body:ty => $read:ty, $page:ty;
        #[doc = $put_doc:literal] $put:ident $path:literal;
        #[doc = $get_doc:literal] $get:ident;
        #[doc = $list_doc:literal] $list:ident $list_path:literal;
    ) => {
        #[doc = $put_doc]
        #[utoipa::path(put, path = $path, tag = "journal",
                    params(("date" = NaiveDate, Path)), request_body = $body,
                    responses((status = 200, body = Written)))]
        pub async fn $put(
            State(state): State<AppState>,
            caller: Caller,
            Path(date): Path<NaiveDate>,
            Json(b): Json<$body>,
        ) -> ApiResult<axum::Json<Written>> {
            put_fact::<$fact>(&state, &caller, date, b).await
        }

        #[doc = $get_doc]
        #[utoipa::path(get, path = $path, tag = "journal",
                    params(("date" = NaiveDate, Path), Consistency),
                    responses((status = 200, body = $read)))]
        pub async fn $get(
            State(state): State<AppState>,
            caller: Caller,
            Path(date): Path<NaiveDate>,
            MinPosition(min): MinPosition,
        ) -> ApiResult<axum::Json<$read>> {
            get_fact::<$fact>(&state, &caller, date, min).await
        }

        #[doc = $list_doc]
        #[utoipa::path(get, path = $list_path, tag = "journal",
                    params(RangeParams, Consistency), responses((status = 200, body = $page)))]
        pub async fn $list(
            State(state): State<AppState>,
            caller: Caller,
            Query(range): Query<RangeParams>,
            MinPosition(min): MinPosition,
        ) -> ApiResult<axum::Json<$page>> {
            let page = facts_of::<$fact>(&state, caller.account_id, &range, min).await?;
            Ok(axum::Json(page))
        }
    };
}

// --- check-ins -------------------------------------------------------------------------------

/// [`CheckInValues`], the one struct the command, the event and the read share (D31).
pub type CheckInBody = crate::de::Strict<CheckInValues>;

page!(CheckInPage of DatedCheckIn { check_in: CheckIn });

pub(crate) struct CheckIns;

impl DayFact for CheckIns {
    type Body = CheckInBody;
    type Read = CheckIn;
    type Page = CheckInPage;
    const WHAT: &'static str = "check-in on that date";

    async fn command(
        _: &AppState,
        athlete_id: Uuid,
        date: NaiveDate,
        body: CheckInBody,
    ) -> ApiResult<JournalCommand> {
        Ok(JournalCommand::LogDailyCheckIn(LogDailyCheckIn {
            athlete_id,
            date,
            values: body.0,
        }))
    }

    fn of(day: rm::JournalDay) -> Option<CheckIn> {
        day.check_in
    }
}

day_fact_routes! {
    CheckIns: CheckInBody => CheckIn, CheckInPage;
    /// Log (or replace) the check-in of a date.
    put_checkin "/v1/checkins/{date}";
    /// The check-in of a date; 404 when none was logged.
    get_checkin;
    /// Check-ins in a date range (at most 366 days per request), oldest first.
    list_checkins "/v1/checkins";
}

// --- nutrition -------------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NutritionBody {
    /// The local date the intake belongs to.
    pub date: NaiveDate,
    pub entry_type: NutritionEntryType,
    /// The activity it fuelled, for pre-, during- and post-activity entries.
    pub activity_id: Option<Uuid>,
    #[schema(minimum = 0, maximum = 10000)]
    pub calories_kcal: Option<f64>,
    #[schema(minimum = 0, maximum = 1000)]
    pub protein_g: Option<f64>,
    #[schema(minimum = 0, maximum = 1000)]
    pub carbohydrate_g: Option<f64>,
    #[schema(minimum = 0, maximum = 1000)]
    pub fat_g: Option<f64>,
    #[schema(minimum = 0, maximum = 1000)]
    pub fibre_g: Option<f64>,
    #[schema(minimum = 0, maximum = 2000)]
    pub caffeine_mg: Option<f64>,
    #[schema(
        max_length = 2000,
        pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
    )]
    pub notes: Option<String>,
    /// When it was eaten; now when absent. Not in the future.
    pub logged_at: Option<DateTime<Utc>>,
}

impl NutritionBody {
    fn values(&self) -> NutritionValues {
        NutritionValues {
            entry_type: self.entry_type,
            activity_id: self.activity_id,
            calories_kcal: self.calories_kcal,
            protein_g: self.protein_g,
            carbohydrate_g: self.carbohydrate_g,
            fat_g: self.fat_g,
            fibre_g: self.fibre_g,
            caffeine_mg: self.caffeine_mg,
            notes: self.notes.clone(),
        }
    }
}

/// A nutrition entry may name only one of the caller's own live activities. Someone else's
/// activity is refused with the same words as an unknown id, so ids cannot be probed.
async fn check_activity_link(
    state: &AppState,
    athlete: Uuid,
    activity_id: Option<Uuid>,
) -> ApiResult<()> {
    let Some(id) = activity_id else {
        return Ok(());
    };
    if state.commands.activity_is_live_of(athlete, id).await? {
        Ok(())
    } else {
        Err(Problem::invalid(
            "activity_id",
            format!("no activity {id} of yours; log it first, or leave activity_id out"),
        ))
    }
}

/// Log an intake. Answers 201 with the entry's id.
#[utoipa::path(post, path = "/v1/nutrition", tag = "journal", request_body = NutritionBody,
    params(super::activities::IdempotencyHeader),
    responses((status = 201, body = Created, headers(("Location" = String)))))]
pub async fn create_nutrition(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(b): Json<NutritionBody>,
) -> ApiResult<Response> {
    let key = super::activities::idempotency_key(&headers)?;
    check_activity_link(&state, caller.account_id, b.activity_id).await?;
    let entry_id = match &key {
        Some(k) => Uuid::new_v5(&caller.account_id, format!("nutrition:{k}").as_bytes()),
        None => Uuid::now_v7(),
    };
    let mut ctx = caller.context();
    if let Some(k) = key {
        ctx = ctx.with_idempotency_key(format!("nutrition:{k}"));
    }
    let command = JournalCommand::LogNutritionEntry(LogNutritionEntry {
        athlete_id: caller.account_id,
        date: b.date,
        entry_id,
        values: b.values(),
        logged_at: b.logged_at,
    });
    let executed = state
        .commands
        .execute_with_retry::<Journal>(&ctx, &command.aggregate_id(), command)
        .await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/v1/nutrition/{entry_id}"))],
        axum::Json(Created {
            id: entry_id,
            position: Written::of(&executed).position,
        }),
    )
        .into_response())
}

/// Intakes in a date range (at most 366 days per request), in the order they happened.
#[utoipa::path(get, path = "/v1/nutrition", tag = "journal",
    params(RangeParams, Consistency), responses((status = 200, body = NutritionPage)))]
pub async fn list_nutrition(
    State(state): State<AppState>,
    caller: Caller,
    Query(range): Query<RangeParams>,
    MinPosition(min): MinPosition,
) -> ApiResult<axum::Json<NutritionPage>> {
    Ok(axum::Json(
        nutrition_of(&state, caller.account_id, &range, min).await?,
    ))
}

pub(crate) async fn nutrition_of(
    state: &AppState,
    athlete: Uuid,
    range: &RangeParams,
    min: Option<i64>,
) -> ApiResult<NutritionPage> {
    let w = range.window()?;
    let items = days_for(state, athlete, w, min)
        .await?
        .into_iter()
        .flat_map(|d| {
            let date = d.date;
            d.nutrition.into_iter().map(move |entry| (date, entry))
        })
        .collect();
    Ok(NutritionPage::from((w, items)))
}

async fn find_entry(
    state: &AppState,
    athlete: Uuid,
    entry_id: Uuid,
    min: Option<i64>,
) -> ApiResult<(NaiveDate, NutritionEntry)> {
    state.visible(&["journal"], min).await?;
    let t = state.tables("journal").await?;
    let pool = state.read_pool();
    let mut found = rm::nutrition_entry(pool, &t, athlete, entry_id).await?;
    if found.is_none() {
        // Perhaps logged a moment ago: wait for what is committed, then look again.
        state.caught_up(&["journal"]).await?;
        found = rm::nutrition_entry(pool, &t, athlete, entry_id).await?;
    }
    let Some((date, _)) = found else {
        return Err(Problem::not_found("nutrition entry"));
    };
    // The entry's day may have changed since (an update, a deletion): read it as of its stream.
    state
        .stream_visible(&["journal"], &journal_stream(athlete, date), None)
        .await?;
    rm::nutrition_entry(pool, &t, athlete, entry_id)
        .await?
        .ok_or_else(|| Problem::not_found("nutrition entry"))
}

/// One intake.
#[utoipa::path(get, path = "/v1/nutrition/{entry_id}", tag = "journal",
    params(("entry_id" = Uuid, Path), Consistency),
    responses((status = 200, body = DatedNutritionEntry)))]
pub async fn get_nutrition(
    State(state): State<AppState>,
    caller: Caller,
    Path(entry_id): Path<Uuid>,
    MinPosition(min): MinPosition,
) -> ApiResult<axum::Json<DatedNutritionEntry>> {
    let (date, entry) = find_entry(&state, caller.account_id, entry_id, min).await?;
    Ok(axum::Json(DatedNutritionEntry { date, entry }))
}

/// Fields present are changed, `null` clears an optional one, absent ones keep their value.
/// The date cannot change. The change is merged into the entry's current values when it is
/// written, so concurrent corrections of different fields all land.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchNutritionBody {
    pub entry_type: Option<NutritionEntryType>,
    #[schema(value_type = Option<Uuid>)]
    #[serde(default, deserialize_with = "crate::de::patch")]
    pub activity_id: Option<Option<Uuid>>,
    #[schema(minimum = 0, maximum = 10000, value_type = Option<f64>)]
    #[serde(default, deserialize_with = "crate::de::patch")]
    pub calories_kcal: Option<Option<f64>>,
    #[schema(minimum = 0, maximum = 1000, value_type = Option<f64>)]
    #[serde(default, deserialize_with = "crate::de::patch")]
    pub protein_g: Option<Option<f64>>,
    #[schema(minimum = 0, maximum = 1000, value_type = Option<f64>)]
    #[serde(default, deserialize_with = "crate::de::patch")]
    pub carbohydrate_g: Option<Option<f64>>,
    #[schema(minimum = 0, maximum = 1000, value_type = Option<f64>)]
    #[serde(default, deserialize_with = "crate::de::patch")]
    pub fat_g: Option<Option<f64>>,
    #[schema(minimum = 0, maximum = 1000, value_type = Option<f64>)]
    #[serde(default, deserialize_with = "crate::de::patch")]
    pub fibre_g: Option<Option<f64>>,
    #[schema(minimum = 0, maximum = 2000, value_type = Option<f64>)]
    #[serde(default, deserialize_with = "crate::de::patch")]
    pub caffeine_mg: Option<Option<f64>>,
    #[schema(
        max_length = 2000,
        pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$",
        value_type = Option<String>
    )]
    #[serde(default, deserialize_with = "crate::de::patch")]
    pub notes: Option<Option<String>>,
    pub logged_at: Option<DateTime<Utc>>,
}

/// The date of an entry: it never changes, so any read model that has the entry knows it, and
/// a correction need not wait for the read model to catch up with the entry's latest values.
async fn entry_date(state: &AppState, athlete: Uuid, entry_id: Uuid) -> ApiResult<NaiveDate> {
    let t = state.tables("journal").await?;
    let pool = state.read_pool();
    if let Some((date, _)) = rm::nutrition_entry(pool, &t, athlete, entry_id).await? {
        return Ok(date);
    }
    // Perhaps logged a moment ago: wait for what is committed, then look again.
    state.caught_up(&["journal"]).await?;
    rm::nutrition_entry(pool, &t, athlete, entry_id)
        .await?
        .map(|(date, _)| date)
        .ok_or_else(|| Problem::not_found("nutrition entry"))
}

/// Correct an intake. `position` is `null` when nothing changed.
#[utoipa::path(patch, path = "/v1/nutrition/{entry_id}", tag = "journal",
    params(("entry_id" = Uuid, Path)), request_body = PatchNutritionBody,
    responses((status = 200, body = Written)))]
pub async fn patch_nutrition(
    State(state): State<AppState>,
    caller: Caller,
    Path(entry_id): Path<Uuid>,
    Json(b): Json<PatchNutritionBody>,
) -> ApiResult<axum::Json<Written>> {
    let date = entry_date(&state, caller.account_id, entry_id).await?;
    // Only a newly named activity is checked: an entry keeps its link if the activity goes.
    check_activity_link(&state, caller.account_id, b.activity_id.flatten()).await?;
    let executed = journal(
        &state,
        &caller,
        JournalCommand::PatchNutritionEntry(PatchNutritionEntry {
            athlete_id: caller.account_id,
            date,
            entry_id,
            patch: NutritionPatch {
                entry_type: b.entry_type,
                activity_id: b.activity_id.into(),
                calories_kcal: b.calories_kcal.into(),
                protein_g: b.protein_g.into(),
                carbohydrate_g: b.carbohydrate_g.into(),
                fat_g: b.fat_g.into(),
                fibre_g: b.fibre_g.into(),
                caffeine_mg: b.caffeine_mg.into(),
                notes: b.notes.into(),
                logged_at: b.logged_at,
            },
        }),
    )
    .await?;
    Ok(axum::Json(Written::of(&executed)))
}

/// Delete an intake.
#[utoipa::path(delete, path = "/v1/nutrition/{entry_id}", tag = "journal",
    params(("entry_id" = Uuid, Path)), responses((status = 200, body = Written)))]
pub async fn delete_nutrition(
    State(state): State<AppState>,
    caller: Caller,
    Path(entry_id): Path<Uuid>,
) -> ApiResult<axum::Json<Written>> {
    let date = entry_date(&state, caller.account_id, entry_id).await?;
    let executed = journal(
        &state,
        &caller,
        JournalCommand::DeleteNutritionEntry(DeleteNutritionEntry {
            athlete_id: caller.account_id,
            date,
            entry_id,
        }),
    )
    .await?;
    Ok(axum::Json(Written::of(&executed)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PresetBody {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
    #[serde(deserialize_with = "crate::de::object")]
    pub nutrients: Nutrients,
}

/// The caller's nutrition presets, by name.
#[utoipa::path(get, path = "/v1/nutrition/presets", tag = "journal", params(Consistency),
    responses((status = 200, body = Vec<Preset>)))]
pub async fn list_presets(
    State(state): State<AppState>,
    caller: Caller,
    MinPosition(min): MinPosition,
) -> ApiResult<axum::Json<Vec<Preset>>> {
    state.visible(&["profile"], min).await?;
    let t = state.tables("profile").await?;
    Ok(axum::Json(
        profile::nutrition_presets(state.read_pool(), &t, caller.account_id).await?,
    ))
}

/// Save a preset (a meal or product logged often).
#[utoipa::path(post, path = "/v1/nutrition/presets", tag = "journal", request_body = PresetBody,
    responses((status = 201, body = Created)))]
pub async fn create_preset(
    State(state): State<AppState>,
    caller: Caller,
    Json(b): Json<PresetBody>,
) -> ApiResult<Response> {
    let preset_id = Uuid::now_v7();
    let ctx = caller.context();
    let executed = state
        .commands
        .execute_with_retry::<Athlete>(
            &ctx,
            &caller.account_id.to_string(),
            AthleteCommand::SaveNutritionPreset {
                preset_id,
                name: b.name,
                nutrients: b.nutrients,
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(Created {
            id: preset_id,
            position: Written::of(&executed).position,
        }),
    )
        .into_response())
}

// --- work and body ---------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkBody {
    pub work_type: WorkType,
    #[schema(minimum = 0, maximum = 24)]
    pub hours_worked_h: Option<f64>,
    #[schema(minimum = 1, maximum = 5)]
    #[serde(default, deserialize_with = "crate::de::opt_small")]
    pub stress: Option<u8>,
    #[schema(
        max_length = 2000,
        pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
    )]
    pub notes: Option<String>,
}

page!(WorkPage of DatedWork { work: WorkPattern });

pub(crate) struct Work;

impl DayFact for Work {
    type Body = WorkBody;
    type Read = WorkPattern;
    type Page = WorkPage;
    const WHAT: &'static str = "work entry on that date";

    async fn command(
        _: &AppState,
        athlete_id: Uuid,
        date: NaiveDate,
        b: WorkBody,
    ) -> ApiResult<JournalCommand> {
        Ok(JournalCommand::LogWorkPattern(LogWorkPattern {
            athlete_id,
            date,
            work_type: b.work_type,
            hours_worked: b.hours_worked_h,
            stress: b.stress,
            notes: b.notes,
        }))
    }

    fn of(day: rm::JournalDay) -> Option<WorkPattern> {
        day.work
    }
}

day_fact_routes! {
    Work: WorkBody => WorkPattern, WorkPage;
    /// Log (or replace) the work pattern of a date.
    put_work "/v1/work/{date}";
    /// The work pattern of a date; 404 when none was logged.
    get_work;
    /// Work patterns in a date range (at most 366 days per request), oldest first.
    list_work "/v1/work";
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BodyCompositionBody {
    #[schema(minimum = 20, maximum = 400)]
    pub weight_kg: Option<f64>,
    #[schema(minimum = 0, maximum = 100)]
    pub body_fat_pct: Option<f64>,
    #[schema(minimum = 0, maximum = 400)]
    pub muscle_mass_kg: Option<f64>,
    #[schema(
        max_length = 2000,
        pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
    )]
    pub notes: Option<String>,
}

page!(BodyPage of DatedBody { body: BodyComposition });

pub(crate) struct Body;

impl DayFact for Body {
    type Body = BodyCompositionBody;
    type Read = BodyComposition;
    type Page = BodyPage;
    const WHAT: &'static str = "body composition on that date";

    /// BMI is derived from the profile's height, which the journal cannot read itself.
    async fn command(
        state: &AppState,
        athlete_id: Uuid,
        date: NaiveDate,
        b: BodyCompositionBody,
    ) -> ApiResult<JournalCommand> {
        let height_cm = super::me::current_profile(state, athlete_id)
            .await?
            .physiology
            .height_cm;
        Ok(JournalCommand::LogBodyComposition(LogBodyComposition {
            athlete_id,
            date,
            weight_kg: b.weight_kg,
            body_fat_pct: b.body_fat_pct,
            muscle_mass_kg: b.muscle_mass_kg,
            height_cm,
            notes: b.notes,
        }))
    }

    fn of(day: rm::JournalDay) -> Option<BodyComposition> {
        day.body_composition
    }
}

day_fact_routes! {
    Body: BodyCompositionBody => BodyComposition, BodyPage;
    /// Log (or replace) body composition for a date; BMI is derived from the profile's height.
    put_body "/v1/body/{date}";
    /// Body composition of a date; 404 when none was logged.
    get_body;
    /// Body composition in a date range (at most 366 days per request), oldest first.
    list_body "/v1/body";
}

// --- availability ----------------------------------------------------------------------------

/// The weekly 7 x 3 grid. `set_at` is `null` while the athlete never set one; the grid is
/// then all `unavailable`, and reading it does not store anything.
#[derive(Debug, Serialize, ToSchema)]
pub struct AvailabilityView {
    pub weekly: WeeklyAvailability,
    pub set_at: Option<DateTime<Utc>>,
}

pub(crate) async fn availability_of(
    state: &AppState,
    athlete: Uuid,
    min: Option<i64>,
) -> ApiResult<AvailabilityView> {
    state.visible(&["profile"], min).await?;
    let t = state.tables("profile").await?;
    Ok(
        match profile::availability(state.read_pool(), &t, athlete).await? {
            Some(a) => AvailabilityView {
                weekly: a.weekly,
                set_at: Some(a.set_at),
            },
            None => AvailabilityView {
                weekly: WeeklyAvailability::default(),
                set_at: None,
            },
        },
    )
}

/// The caller's weekly training availability.
#[utoipa::path(get, path = "/v1/availability", tag = "journal", params(Consistency),
    responses((status = 200, body = AvailabilityView)))]
pub async fn get_availability(
    State(state): State<AppState>,
    caller: Caller,
    MinPosition(min): MinPosition,
) -> ApiResult<axum::Json<AvailabilityView>> {
    Ok(axum::Json(
        availability_of(&state, caller.account_id, min).await?,
    ))
}

async fn set_availability(
    state: &AppState,
    caller: &Caller,
    availability: WeeklyAvailability,
) -> ApiResult<Written> {
    let ctx = caller.context();
    let executed = state
        .commands
        .execute_with_retry::<Athlete>(
            &ctx,
            &caller.account_id.to_string(),
            AthleteCommand::SetTrainingAvailability { availability },
        )
        .await?;
    Ok(Written::of(&executed))
}

/// Replace the whole grid.
#[utoipa::path(put, path = "/v1/availability", tag = "journal", request_body = WeeklyAvailability,
    responses((status = 200, body = Written)))]
pub async fn put_availability(
    State(state): State<AppState>,
    caller: Caller,
    Json(grid): Json<WeeklyAvailability>,
) -> ApiResult<axum::Json<Written>> {
    Ok(axum::Json(set_availability(&state, &caller, grid).await?))
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Block {
    Morning,
    Afternoon,
    Evening,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SlotBody {
    pub status: SlotStatus,
}

/// Change one slot of the grid. The other slots keep the values they have when the change is
/// written, so concurrent changes of different slots all land.
#[utoipa::path(patch, path = "/v1/availability/{day}/{block}", tag = "journal",
    params(("day" = Day, Path), ("block" = Block, Path)), request_body = SlotBody,
    responses((status = 200, body = Written)))]
pub async fn patch_slot(
    State(state): State<AppState>,
    caller: Caller,
    Path((day, block)): Path<(Day, Block)>,
    Json(b): Json<SlotBody>,
) -> ApiResult<axum::Json<Written>> {
    let day = match day {
        Day::Monday => Weekday::Monday,
        Day::Tuesday => Weekday::Tuesday,
        Day::Wednesday => Weekday::Wednesday,
        Day::Thursday => Weekday::Thursday,
        Day::Friday => Weekday::Friday,
        Day::Saturday => Weekday::Saturday,
        Day::Sunday => Weekday::Sunday,
    };
    let block = match block {
        Block::Morning => DayBlock::Morning,
        Block::Afternoon => DayBlock::Afternoon,
        Block::Evening => DayBlock::Evening,
    };
    let ctx = caller.context();
    let executed = state
        .commands
        .execute_with_retry::<Athlete>(
            &ctx,
            &caller.account_id.to_string(),
            AthleteCommand::SetAvailabilitySlot {
                day,
                block,
                status: b.status,
            },
        )
        .await?;
    Ok(axum::Json(Written::of(&executed)))
}

// --- insight feedback ------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InsightFeedbackBody {
    /// The `id` of a finding served by `/v1/correlations`.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub insight_id: String,
    pub helpful: bool,
    #[schema(
        max_length = 2000,
        pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
    )]
    pub notes: Option<String>,
    /// The local date it was given on; today (UTC) when absent.
    pub date: Option<NaiveDate>,
}

/// Say whether an insight was helpful.
#[utoipa::path(post, path = "/v1/insights/feedback", tag = "journal",
    request_body = InsightFeedbackBody, responses((status = 201, body = Written)))]
pub async fn post_insight_feedback(
    State(state): State<AppState>,
    caller: Caller,
    Json(b): Json<InsightFeedbackBody>,
) -> ApiResult<Response> {
    // Feedback rates a finding the caller was shown: one in their latest correlation snapshot,
    // in any window. Ids are stable across recomputes (docs/correlations.md).
    let snapshot =
        projections::correlations::snapshot(state.read_pool(), caller.account_id).await?;
    let known = snapshot.is_some_and(|s| {
        s.analyses
            .values()
            .any(|a| a.findings.iter().any(|f| f.id == b.insight_id))
    });
    if !known {
        return Err(Problem::invalid(
            "insight_id",
            "names no finding in your correlations; use a finding's id from /v1/correlations",
        ));
    }
    let executed = journal(
        &state,
        &caller,
        JournalCommand::GiveInsightFeedback(GiveInsightFeedback {
            athlete_id: caller.account_id,
            date: b.date.unwrap_or_else(|| Utc::now().date_naive()),
            insight_id: b.insight_id,
            helpful: b.helpful,
            notes: b.notes,
        }),
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(Written::of(&executed))).into_response())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InsightFeedbackStats {
    pub totals: InsightFeedbackTotals,
    pub per_insight: Vec<InsightFeedbackCount>,
}

/// How the caller rated insights: totals and per insight.
#[utoipa::path(get, path = "/v1/insights/feedback/stats", tag = "journal", params(Consistency),
    responses((status = 200, body = InsightFeedbackStats)))]
pub async fn insight_feedback_stats(
    State(state): State<AppState>,
    caller: Caller,
    MinPosition(min): MinPosition,
) -> ApiResult<axum::Json<InsightFeedbackStats>> {
    state.visible(&["journal"], min).await?;
    let t = state.tables("journal").await?;
    let pool = state.read_pool();
    Ok(axum::Json(InsightFeedbackStats {
        totals: rm::insight_feedback_totals(pool, &t, caller.account_id).await?,
        per_insight: rm::insight_feedback_counts(pool, &t, caller.account_id).await?,
    }))
}

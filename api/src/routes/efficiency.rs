//! Efficiency and load reads: one activity's metrics with its comparisons, EF trends, and
//! the training-load chart. All of them read the `efficiency` read model and weight load with
//! the athlete's current physiology (docs/efficiency.md).

use axum::extract::{RawQuery, State};
use axum::response::Response;
use chrono::{DateTime, NaiveDate, Utc};
use domain::activity::{Activity, Sport, WorkoutType};
use domain::athlete::Units;
use domain::efficiency::{DecouplingBadge, Efficiency, is_running};
use domain::load::{self, LoadDay, LoadSettings};
use domain::trends::{
    self, BestComparison, RunEf, SimilarComparison, Trend, compare_with_best, compare_with_similar,
};
use domain::units::RunDisplay;
use projections::efficiency::ActivityMetrics;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::journal::RangeParams;
use crate::cache::normalise_query;
use crate::extract::{Path, Query};
use crate::policy::Caller;
use crate::problem::{ApiResult, Problem};
use crate::{AppState, Consistency, MinPosition};

async fn history(
    state: &AppState,
    athlete: Uuid,
    min: Option<i64>,
) -> ApiResult<Vec<ActivityMetrics>> {
    state.visible(&["efficiency"], min).await?;
    let t = state.tables("efficiency").await?;
    Ok(projections::efficiency::all_of(state.read_pool(), &t, athlete).await?)
}

/// A run with a usable EF. A manual run logged with no distance has an EF of 0, which says
/// nothing about efficiency and cannot be a baseline to divide by.
fn run_ef(a: &ActivityMetrics) -> Option<RunEf> {
    let ef = a
        .metrics
        .efficiency_factor
        .filter(|e| e.is_finite() && *e > 0.0)?;
    Some(RunEf {
        activity_id: a.activity_id,
        start_time: a.start_time,
        local_date: a.local_date,
        sport: a.metrics.sport,
        workout_type: a.workout_type,
        distance_m: a.metrics.distance_m,
        efficiency_factor: ef,
    })
}

/// How this run compares with the athlete's other runs; absent without an EF.
#[derive(Debug, Serialize, ToSchema)]
pub struct Comparison {
    /// Against the mean of the (up to 10) most recent earlier runs of the same sport and
    /// workout type within 10 % of its distance.
    pub similar: SimilarComparison,
    /// Against the best EF among runs of the same sport within 10 % of its distance.
    pub best_at_distance: BestComparison,
}

/// One activity's efficiency metrics, display strings in the athlete's units, and how it
/// compares with their other runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityEfficiency {
    #[serde(flatten)]
    pub metrics: Efficiency,
    pub display: RunDisplay,
    pub comparison: Option<Comparison>,
}

/// The activity's efficiency metrics (docs/efficiency.md): grade-adjusted efficiency factor,
/// decoupling and the quantities beside them, or the reason a metric is absent; with how it
/// compares with similar earlier runs and with the best at its distance.
#[utoipa::path(get, path = "/v1/activities/{activity_id}/efficiency", tag = "efficiency",
    params(("activity_id" = Uuid, Path), Consistency),
    responses((status = 200, body = ActivityEfficiency)))]
pub async fn get_efficiency(
    State(state): State<AppState>,
    caller: Caller,
    Path(activity_id): Path<Uuid>,
    MinPosition(min): MinPosition,
) -> ApiResult<axum::Json<ActivityEfficiency>> {
    let stream = store::StreamId::new(
        <Activity as cqrs_es::Aggregate>::TYPE,
        activity_id.to_string(),
    );
    state.stream_visible(&["efficiency"], &stream, min).await?;
    let all = history(&state, caller.account_id, None).await?;
    let this = all
        .iter()
        .find(|a| a.activity_id == activity_id)
        .ok_or_else(|| Problem::not_found("activity"))?;
    let (units, _) = units_and_today(&state, caller.account_id).await?;
    let runs: Vec<RunEf> = all.iter().filter_map(run_ef).collect();
    let comparison = run_ef(this).map(|r| Comparison {
        similar: compare_with_similar(&r, &runs),
        best_at_distance: compare_with_best(&r, &runs),
    });
    let m = &this.metrics;
    Ok(axum::Json(ActivityEfficiency {
        display: RunDisplay::new(
            units,
            m.distance_m,
            m.moving_time_s,
            m.efficiency_factor,
            m.elevation_gain_m,
        ),
        metrics: m.clone(),
        comparison,
    }))
}

/// The athlete's display units and today's date on their calendar.
async fn units_and_today(state: &AppState, athlete: Uuid) -> ApiResult<(Units, NaiveDate)> {
    let t = state.tables("profile").await?;
    let preferences = projections::profile::profile(state.read_pool(), &t, athlete)
        .await?
        .map(|p| p.preferences);
    Ok(match preferences {
        Some(p) => (p.units, domain::time::local_date(Utc::now(), &p.timezone)),
        None => (Units::default(), Utc::now().date_naive()),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TrendParams {
    /// The period, in days up to today on the athlete's calendar; default 90.
    #[param(minimum = 7, maximum = 3650)]
    pub days: Option<u32>,
}

/// One run in the trend: its EF and decoupling, and the rolling means ending at it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrendRun {
    pub activity_id: Uuid,
    pub start_time: DateTime<Utc>,
    pub local_date: NaiveDate,
    pub sport: Sport,
    pub workout_type: Option<WorkoutType>,
    pub distance_m: f64,
    pub efficiency_factor: f64,
    pub decoupling_pct: Option<f64>,
    pub decoupling_badge: Option<DecouplingBadge>,
    /// Mean EF of the runs in the 7, 28 and 90 days up to this one (earlier runs outside the
    /// period included).
    pub rolling_7d: f64,
    pub rolling_28d: f64,
    pub rolling_90d: f64,
    pub display: RunDisplay,
}

/// A run picked out of the period.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunRef {
    pub activity_id: Uuid,
    pub local_date: NaiveDate,
    pub efficiency_factor: f64,
}

/// Decoupling over the period's runs that have it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecouplingSummary {
    pub runs: usize,
    pub median_pct: Option<f64>,
    pub green: usize,
    pub yellow: usize,
    pub red: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EfficiencyTrends {
    pub days: u32,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// EF unit: grade-adjusted metres per minute per beat.
    pub unit: String,
    pub gap_model: String,
    /// Runs with an EF in the period, oldest first.
    pub runs: Vec<TrendRun>,
    /// Absent when there are too few runs; `trend_note` then says how many more are needed.
    pub trend: Option<Trend>,
    pub trend_note: Option<String>,
    pub best: Option<RunRef>,
    pub latest: Option<RunRef>,
    pub decoupling: DecouplingSummary,
}

/// Efficiency factor over time: every run with an EF in the period, rolling means over 7, 28
/// and 90 days, the linear trend per 30 days with its 95 % interval, decoupling history, and
/// the best and latest run.
#[utoipa::path(get, path = "/v1/efficiency/trends", tag = "efficiency",
    params(TrendParams, Consistency), responses((status = 200, body = EfficiencyTrends)))]
pub async fn trends(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<TrendParams>,
    MinPosition(min): MinPosition,
) -> ApiResult<Response> {
    let days = p.days.unwrap_or(90);
    if !(7..=3650).contains(&days) {
        return Err(Problem::invalid(
            "days",
            format!("must be 7-3650, got {days}"),
        ));
    }
    // The period ends today on the athlete's calendar, so that date is part of the key; an
    // answer computed for another date (midnight passed, the timezone changed) is not stored.
    let (_, today) = units_and_today(&state, caller.account_id).await?;
    let athlete = caller.account_id;
    state
        .cached(
            athlete,
            "efficiency-trends",
            format!("days={days}&to={today}"),
            &["efficiency", "profile"],
            min,
            async {
                let t = trends_of(&state, athlete, days, min).await?;
                let matches = t.to == today;
                Ok((t, matches))
            },
        )
        .await
}

async fn trends_of(
    state: &AppState,
    athlete: Uuid,
    days: u32,
    min: Option<i64>,
) -> ApiResult<EfficiencyTrends> {
    let all = history(state, athlete, min).await?;
    let (units, to) = units_and_today(state, athlete).await?;
    let from = to - chrono::Duration::days(i64::from(days) - 1);
    let out = trend_runs(&all, units, from, to);
    let (trend, trend_note) = fitted_trend(&out);
    let pick = |r: &TrendRun| RunRef {
        activity_id: r.activity_id,
        local_date: r.local_date,
        efficiency_factor: r.efficiency_factor,
    };
    let best = out
        .iter()
        .max_by(|a, b| a.efficiency_factor.total_cmp(&b.efficiency_factor))
        .map(pick);
    let latest = out.last().map(pick);
    Ok(EfficiencyTrends {
        days,
        from,
        to,
        unit: "m/min/bpm".to_string(),
        gap_model: domain::efficiency::GAP_MODEL.to_string(),
        decoupling: DecouplingSummary::of(&out),
        runs: out,
        trend,
        trend_note,
        best,
        latest,
    })
}

/// The runs with an EF from `from` to `to`, each with the rolling means ending at it (over
/// all of the athlete's runs, earlier ones included).
fn trend_runs(
    all: &[ActivityMetrics],
    units: Units,
    from: NaiveDate,
    to: NaiveDate,
) -> Vec<TrendRun> {
    let runs: Vec<RunEf> = all.iter().filter_map(run_ef).collect();
    let [w7, w28, w90] = trends::ROLLING_WINDOWS_DAYS;
    let mut out = Vec::new();
    for (a, r) in all
        .iter()
        .filter_map(|a| run_ef(a).map(|r| (a, r)))
        .filter(|(_, r)| r.local_date >= from && r.local_date <= to)
    {
        let mean = |w| trends::rolling_mean(&runs, r.start_time, w).unwrap_or(r.efficiency_factor);
        out.push(TrendRun {
            activity_id: r.activity_id,
            start_time: r.start_time,
            local_date: r.local_date,
            sport: r.sport,
            workout_type: r.workout_type,
            distance_m: r.distance_m,
            efficiency_factor: r.efficiency_factor,
            decoupling_pct: a.metrics.decoupling_pct,
            decoupling_badge: a.metrics.decoupling_badge,
            rolling_7d: mean(w7),
            rolling_28d: mean(w28),
            rolling_90d: mean(w90),
            display: RunDisplay::new(
                units,
                a.metrics.distance_m,
                a.metrics.moving_time_s,
                Some(r.efficiency_factor),
                a.metrics.elevation_gain_m,
            ),
        });
    }
    out
}

/// The linear trend of EF over days since the first run, or why there is none.
fn fitted_trend(out: &[TrendRun]) -> (Option<Trend>, Option<String>) {
    let origin = out.first().map(|r| r.start_time);
    let points: Vec<(f64, f64)> = out
        .iter()
        .map(|r| {
            let since = r.start_time - origin.unwrap_or(r.start_time);
            (since.num_seconds() as f64 / 86_400.0, r.efficiency_factor)
        })
        .collect();
    match trends::trend(&points) {
        Ok(t) => (Some(t), None),
        Err(e) => (None, Some(e.message())),
    }
}

impl DecouplingSummary {
    fn of(out: &[TrendRun]) -> Self {
        let mut dec: Vec<f64> = out.iter().filter_map(|r| r.decoupling_pct).collect();
        dec.sort_by(f64::total_cmp);
        let median_pct = match dec.len() {
            0 => None,
            n if n % 2 == 1 => Some(dec[n / 2]),
            n => Some((dec[n / 2 - 1] + dec[n / 2]) / 2.0),
        };
        let count =
            |b: DecouplingBadge| out.iter().filter(|r| r.decoupling_badge == Some(b)).count();
        DecouplingSummary {
            runs: dec.len(),
            median_pct,
            green: count(DecouplingBadge::Green),
            yellow: count(DecouplingBadge::Yellow),
            red: count(DecouplingBadge::Red),
        }
    }
}

/// One activity's load.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityLoad {
    pub activity_id: Uuid,
    pub local_date: NaiveDate,
    pub sport: Sport,
    /// Banister TRIMP; absent without heart rate (the activity then adds 0 to its day).
    pub trimp: Option<f64>,
    /// Running TSS; only for runs, and only with a threshold pace in the profile.
    pub rtss: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TrainingLoad {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub next_from: Option<NaiveDate>,
    /// The daily load is the sum of the day's Banister TRIMP.
    pub load_metric: String,
    pub convention: String,
    pub ctl_tau_days: f64,
    pub atl_tau_days: f64,
    /// The values TRIMP is weighted with, and where each came from.
    pub settings: LoadSettings,
    /// The athlete's first activity: CTL and ATL start from zero on that day.
    pub started: Option<NaiveDate>,
    /// Every day of the range from `started` on, rest days included.
    pub days: Vec<LoadDay>,
    pub activities: Vec<ActivityLoad>,
    /// Set when there is nothing to chart yet.
    pub note: Option<String>,
}

/// Daily training load (TRIMP) on the athlete's local calendar, with fitness (CTL), fatigue
/// (ATL), form (TSB) and the 7-day ramp; the convention is named in the answer. At most 366
/// days per request, with `next_from` to continue.
#[utoipa::path(get, path = "/v1/training-load", tag = "efficiency",
    params(RangeParams, Consistency), responses((status = 200, body = TrainingLoad)))]
pub async fn training_load(
    State(state): State<AppState>,
    caller: Caller,
    Query(range): Query<RangeParams>,
    RawQuery(raw): RawQuery,
    MinPosition(min): MinPosition,
) -> ApiResult<Response> {
    let athlete = caller.account_id;
    state
        .cached(
            athlete,
            "training-load",
            normalise_query(raw.as_deref()),
            &["efficiency", "profile"],
            min,
            async { Ok((load_of(&state, athlete, range, min).await?, true)) },
        )
        .await
}

async fn load_of(
    state: &AppState,
    athlete: Uuid,
    range: RangeParams,
    min: Option<i64>,
) -> ApiResult<TrainingLoad> {
    let w = range.window()?;
    let all = history(state, athlete, min).await?;
    let t = state.tables("profile").await?;
    let physiology = projections::profile::profile(state.read_pool(), &t, athlete)
        .await?
        .map(|p| p.physiology)
        .unwrap_or_default();
    let settings = LoadSettings::of(&physiology);
    let per_activity: Vec<(NaiveDate, ActivityLoad)> = all
        .iter()
        .map(|a| {
            (
                a.local_date,
                ActivityLoad {
                    activity_id: a.activity_id,
                    local_date: a.local_date,
                    sport: a.metrics.sport,
                    trimp: settings.trimp(&a.load),
                    rtss: is_running(a.metrics.sport)
                        .then(|| settings.rtss(&a.load))
                        .flatten(),
                },
            )
        })
        .collect();
    let started = per_activity.iter().map(|(d, _)| *d).min();
    let (days, note) = load_days(&per_activity, started, w.from, w.to);
    Ok(TrainingLoad {
        from: w.from,
        to: w.to,
        next_from: w.next_from,
        load_metric: "banister_trimp".to_string(),
        convention: load::PMC_CONVENTION.to_string(),
        ctl_tau_days: load::CTL_TAU_DAYS,
        atl_tau_days: load::ATL_TAU_DAYS,
        settings,
        started,
        days,
        activities: per_activity
            .into_iter()
            .filter(|(d, _)| *d >= w.from && *d <= w.to)
            .map(|(_, a)| a)
            .collect(),
        note,
    })
}

/// The chart's days from `from` to `to` (those from the first activity on), or a note on why
/// there are none.
fn load_days(
    per_activity: &[(NaiveDate, ActivityLoad)],
    started: Option<NaiveDate>,
    from: NaiveDate,
    to: NaiveDate,
) -> (Vec<LoadDay>, Option<String>) {
    // The chart stops at tomorrow (any zone's today): later days hold no activity, only decay,
    // and a range in the far future must not cost a loop over every day until then.
    let tomorrow = Utc::now().date_naive() + chrono::Duration::days(1);
    let end = to.min(tomorrow);
    match started {
        Some(first) if first <= end && from <= end => {
            let loads: Vec<(NaiveDate, f64)> = per_activity
                .iter()
                .map(|(d, a)| (*d, a.trimp.unwrap_or(0.0)))
                .collect();
            let days = load::pmc(first, end, &loads)
                .into_iter()
                .filter(|d| d.date >= from)
                .collect();
            (days, None)
        }
        Some(first) if first > to => (
            Vec::new(),
            Some(format!(
                "the first activity is on {first}, after this range"
            )),
        ),
        Some(_) => (Vec::new(), Some(format!("the chart ends on {tomorrow}"))),
        None => (Vec::new(), Some("no activities yet".to_string())),
    }
}

//! `/v1/correlations*`: the athlete's correlation snapshot (computed by the worker, never in a
//! request), and on-demand recomputes. docs/correlations.md explains the method.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use domain::correlation::{Category, Finding, Insufficient, Method};
use projections::correlations::{self, Job, WINDOWS_DAYS};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::extract::{Path, Query};
use crate::policy::Caller;
use crate::problem::{ApiResult, Problem};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WindowParams {
    /// Days up to today (30-730, default 90). Snapshots hold 30, 90, 180, 365 and 730 days;
    /// the answer uses the smallest of them that covers this.
    #[param(minimum = 30, maximum = 730)]
    pub days: Option<u32>,
}

/// Findings for one window of the athlete's latest snapshot.
#[derive(Debug, Serialize, ToSchema)]
pub struct CorrelationsView {
    pub requested_days: u32,
    pub window_days: u32,
    /// When the snapshot was computed, and the log position it reflects; absent before the
    /// first one.
    pub computed_at: Option<DateTime<Utc>>,
    pub position: Option<i64>,
    /// Inputs changed after this snapshot: a new one follows within 10 minutes, or at once
    /// with `POST /v1/correlations/recompute`.
    pub stale: bool,
    /// Every test in the family the false-discovery control covered.
    pub tests_run: usize,
    pub findings: Vec<Finding>,
    /// Pairs without enough data yet, and how much more is needed.
    pub insufficient: Vec<Insufficient>,
    pub note: Option<String>,
}

/// A view through the read cache. Snapshots are written by the correlation worker, not by an
/// event, so the key names the snapshot's version besides the athlete's last event; an answer
/// built from another snapshot (one written meanwhile) is not stored.
async fn cached_view(
    state: &AppState,
    athlete: Uuid,
    route: &'static str,
    params: &WindowParams,
    keep: impl Fn(&Finding) -> bool,
) -> ApiResult<Response> {
    let snapshot = correlations::snapshot_version(&state.projections.db().pool, athlete).await?;
    let days = params.days.unwrap_or(90);
    let query = match snapshot {
        Some((position, at)) => format!("days={days}&snapshot={position}.{at}"),
        None => format!("days={days}&snapshot=none"),
    };
    state
        .cached(
            athlete,
            route,
            query,
            &["correlation_inputs"],
            None,
            async {
                let axum::Json(v) = view(state, athlete, params, keep).await?;
                let used = v.position.zip(v.computed_at.map(|c| c.timestamp_micros()));
                Ok((v, used == snapshot))
            },
        )
        .await
}

async fn view(
    state: &AppState,
    athlete: Uuid,
    params: &WindowParams,
    keep: impl Fn(&Finding) -> bool,
) -> ApiResult<axum::Json<CorrelationsView>> {
    let requested = params.days.unwrap_or(90);
    if !(30..=730).contains(&requested) {
        return Err(Problem::invalid(
            "days",
            format!("must be 30-730, got {requested}"),
        ));
    }
    let window = WINDOWS_DAYS
        .iter()
        .copied()
        .find(|w| *w >= requested)
        .unwrap_or(WINDOWS_DAYS[WINDOWS_DAYS.len() - 1]);
    let engine = &state.projections;
    let snapshot = correlations::snapshot(&engine.db().pool, athlete).await?;
    let changed = correlations::changed_at(engine, athlete).await?;
    let Some(s) = snapshot else {
        return Ok(axum::Json(CorrelationsView {
            requested_days: requested,
            window_days: window,
            computed_at: None,
            position: None,
            stale: changed.is_some(),
            tests_run: 0,
            findings: Vec::new(),
            insufficient: Vec::new(),
            note: Some(if changed.is_some() {
                "the first analysis is being prepared; it follows within 10 minutes".to_string()
            } else {
                "nothing logged yet to analyse".to_string()
            }),
        }));
    };
    let analysis =
        s.analyses
            .get(&window)
            .cloned()
            .unwrap_or_else(|| domain::correlation::Analysis {
                tests_run: 0,
                findings: Vec::new(),
                insufficient: Vec::new(),
            });
    let note = (analysis.findings.is_empty() && analysis.tests_run > 0).then(|| {
        format!(
            "no association passed the false-discovery control over {} tests",
            analysis.tests_run
        )
    });
    Ok(axum::Json(CorrelationsView {
        requested_days: requested,
        window_days: window,
        computed_at: Some(s.computed_at),
        position: Some(s.position),
        stale: changed.is_some_and(|c| c > s.position),
        tests_run: analysis.tests_run,
        findings: analysis.findings.into_iter().filter(|f| keep(f)).collect(),
        insufficient: analysis.insufficient,
        note,
    }))
}

/// Every finding of the window: single inputs and combinations, each with its lag, method,
/// r, p, q, n, effective n, interval and category. Associations, not causes.
#[utoipa::path(get, path = "/v1/correlations", tag = "correlations",
    params(WindowParams), responses((status = 200, body = CorrelationsView)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<WindowParams>,
) -> ApiResult<Response> {
    cached_view(&state, caller.account_id, "correlations", &p, |_| true).await
}

/// Single inputs whose higher values went with a better outcome.
#[utoipa::path(get, path = "/v1/correlations/what-works", tag = "correlations",
    params(WindowParams), responses((status = 200, body = CorrelationsView)))]
pub async fn what_works(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<WindowParams>,
) -> ApiResult<Response> {
    cached_view(
        &state,
        caller.account_id,
        "correlations-what-works",
        &p,
        |f| f.category == Category::WhatWorks && f.method != Method::Quadrant,
    )
    .await
}

/// Single inputs whose higher values went with a worse outcome.
#[utoipa::path(get, path = "/v1/correlations/what-doesnt-work", tag = "correlations",
    params(WindowParams), responses((status = 200, body = CorrelationsView)))]
pub async fn what_doesnt_work(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<WindowParams>,
) -> ApiResult<Response> {
    cached_view(
        &state,
        caller.account_id,
        "correlations-what-doesnt-work",
        &p,
        |f| f.category == Category::WhatDoesntWork && f.method != Method::Quadrant,
    )
    .await
}

/// Pairs of inputs: days with both above the athlete's medians against days with both at
/// or below.
#[utoipa::path(get, path = "/v1/correlations/combinations", tag = "correlations",
    params(WindowParams), responses((status = 200, body = CorrelationsView)))]
pub async fn combinations(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<WindowParams>,
) -> ApiResult<Response> {
    cached_view(
        &state,
        caller.account_id,
        "correlations-combinations",
        &p,
        |f| f.method == Method::Quadrant,
    )
    .await
}

/// Ask for a new snapshot now. 202 with the job; while one is queued or running, the same job.
#[utoipa::path(post, path = "/v1/correlations/recompute", tag = "correlations",
    responses((status = 202, body = Job)))]
pub async fn recompute(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<(StatusCode, axum::Json<Job>)> {
    let job = correlations::request(&state.projections.db().pool, caller.account_id).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(job)))
}

/// A recompute's state: queued, running, done (with the position its snapshot reflects) or
/// failed.
#[utoipa::path(get, path = "/v1/correlations/jobs/{job_id}", tag = "correlations",
    params(("job_id" = Uuid, Path)), responses((status = 200, body = Job)))]
pub async fn get_job(
    State(state): State<AppState>,
    caller: Caller,
    Path(job_id): Path<Uuid>,
) -> ApiResult<axum::Json<Job>> {
    correlations::job(&state.projections.db().pool, caller.account_id, job_id)
        .await?
        .map(axum::Json)
        .ok_or_else(|| Problem::not_found("job"))
}

//! `/health/live` (liveness: the process answers; touches no database) and `/health`
//! (readiness: the store is reachable, no read model has an unresolved poison event, and every
//! worker this process embeds is running).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::problem::Problem;

/// How many unresolved skipped events a 503 names (the rest: `stridelog projections skipped`).
const REASONS_LIMIT: i64 = 20;

#[derive(Serialize, ToSchema)]
pub(crate) struct Live {
    status: &'static str,
}

/// The process is up and its HTTP server answers. Reads no database: a store outage must not
/// make an orchestrator restart healthy processes.
#[utoipa::path(get, path = "/health/live", tag = "ops",
    responses((status = 200, body = Live)))]
pub(crate) async fn live() -> Json<Live> {
    Json(Live { status: "ok" })
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    status: &'static str,
    backend: &'static str,
    schema_version: i64,
    /// Age of the oldest open write transaction: how far log followers may be held back.
    horizon_lag_s: f64,
    /// Per read model: how far behind the log it is, and whether a runner keeps it current.
    projections: Vec<ProjectionHealth>,
    /// The workers this process runs (none with `serve --no-worker`).
    workers: Vec<WorkerHealth>,
    /// The read cache: its kind, `degraded` while Redis fails (reads then go to the read
    /// models, so the process stays ready), and its hit rate since start.
    cache: crate::cache::CacheStats,
    rate_limiter: LimiterHealth,
}

/// Where rate limits are kept. `degraded`: Redis is configured but unreachable, so each
/// process limits on its own until it answers again (the service stays up: 200).
#[derive(Serialize, ToSchema)]
pub(crate) struct LimiterHealth {
    /// `in-process` or `redis`.
    backend: &'static str,
    /// `ok` or `degraded`.
    state: &'static str,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ProjectionHealth {
    name: &'static str,
    state: String,
    positions_behind: i64,
    seconds_behind: f64,
    /// Events it could not apply that no operator has resolved yet.
    skipped_events: i64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct WorkerHealth {
    name: &'static str,
    /// `running`, `restarting` (failed; waiting to start again) or `stopped`.
    state: &'static str,
    since: DateTime<Utc>,
    /// Restarts since the process started; the errors are in its log.
    restarts: u32,
}

/// Not ready: a problem report (RFC 9457). When the store answered, `reasons` name what keeps
/// this process from serving current data, and the rest of the health report is beside them;
/// when the store or the read models are unreachable, only the problem fields are present.
#[derive(Serialize, ToSchema)]
pub(crate) struct NotReady {
    #[serde(rename = "type")]
    kind: String,
    title: String,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reasons: Vec<Reason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    backend: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    schema_version: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    horizon_lag_s: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    projections: Vec<ProjectionHealth>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    workers: Vec<WorkerHealth>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limiter: Option<LimiterHealth>,
    cache: Option<crate::cache::CacheStats>,
}

#[derive(Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Reason {
    /// A poison event: the read model lacks it until an operator runs `stridelog projections
    /// retry <projection> <position>` (after fixing the cause) or dismisses it.
    SkippedEvent {
        projection: String,
        position: i64,
        event_type: String,
        /// A fixed phrase; the full error is in `stridelog projections skipped`.
        reason: &'static str,
    },
    /// An embedded worker that is not running.
    Worker {
        worker: &'static str,
        state: &'static str,
        since: DateTime<Utc>,
    },
}

impl Reason {
    fn sentence(&self) -> String {
        match self {
            Reason::SkippedEvent {
                projection,
                position,
                event_type,
                reason,
            } => format!(
                "{projection} skipped the {event_type} event at position {position}: {reason}"
            ),
            Reason::Worker {
                worker,
                state,
                since,
            } => format!(
                "worker {worker} is {state} since {}",
                since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        }
    }
}

fn state_text(state: workers::WorkerState) -> &'static str {
    match state {
        workers::WorkerState::Running => "running",
        workers::WorkerState::Restarting => "restarting",
        workers::WorkerState::Stopped => "stopped",
    }
}

/// Readiness: the store is reachable and migrated, each read model's lag, and 503 while a
/// read model has an unresolved poison event or an embedded worker is down.
#[utoipa::path(get, path = "/health", tag = "ops",
    responses((status = 200, body = Health),
        (status = 503, description = "Not ready (a poison event, a worker down: named in \
            `reasons`), or the store or read models are unreachable", body = NotReady)))]
pub(crate) async fn health(State(state): State<AppState>) -> Response {
    let info = match state.store.info().await {
        Ok(info) => info,
        Err(e) => {
            tracing::warn!(error = %e, "health check: store unreachable");
            return Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store-unavailable",
                "The event store is unreachable",
            )
            .into_response();
        }
    };
    let horizon_lag_s = state.store.horizon_lag_s().await.unwrap_or(f64::NAN);
    let read = async {
        let status = state.projections.status().await?;
        let unresolved = state.projections.unresolved(REASONS_LIMIT).await?;
        anyhow::Ok((status, unresolved))
    };
    let (status, unresolved) = match read.await {
        Ok(read) => read,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "health check: read models unreadable");
            return Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "read-models-unavailable",
                "The read models are unreachable",
            )
            .into_response();
        }
    };
    let worker_status = state.workers.snapshot();
    let reasons = reasons(&unresolved, &worker_status);
    let (backend, limiter_state) = state.limits.health().await;
    let health = Health {
        // Degraded is still ready: limits hold per process.
        status: if limiter_state == "ok" {
            "ok"
        } else {
            "degraded"
        },
        rate_limiter: LimiterHealth {
            backend,
            state: limiter_state,
        },
        backend: info.backend,
        schema_version: info.schema_version,
        horizon_lag_s,
        projections: status.into_iter().map(ProjectionHealth::from).collect(),
        workers: worker_status.iter().map(WorkerHealth::from).collect(),
        cache: state.cache.stats().await,
    };
    if reasons.is_empty() {
        return Json(health).into_response();
    }
    not_ready(health, reasons)
}

impl From<projections::Status> for ProjectionHealth {
    fn from(s: projections::Status) -> Self {
        ProjectionHealth {
            name: s.name,
            state: s.state,
            positions_behind: s.positions_behind,
            seconds_behind: s.seconds_behind,
            skipped_events: s.skipped_events,
        }
    }
}

impl From<&workers::WorkerStatus> for WorkerHealth {
    fn from(w: &workers::WorkerStatus) -> Self {
        WorkerHealth {
            name: w.name,
            state: state_text(w.state),
            since: w.since,
            restarts: w.restarts,
        }
    }
}

/// What keeps this process from serving current data: unresolved poison events, then
/// embedded workers that are not running.
fn reasons(
    unresolved: &[projections::Skipped],
    worker_status: &[workers::WorkerStatus],
) -> Vec<Reason> {
    let mut reasons: Vec<Reason> = unresolved
        .iter()
        .map(|s| Reason::SkippedEvent {
            projection: s.name.clone(),
            position: s.position,
            event_type: s.event_type.clone(),
            reason: s.reason(),
        })
        .collect();
    reasons.extend(
        worker_status
            .iter()
            .filter(|w| w.state != workers::WorkerState::Running)
            .map(|w| Reason::Worker {
                worker: w.name,
                state: state_text(w.state),
                since: w.since,
            }),
    );
    reasons
}

/// The 503: the reasons, and the rest of the health report beside them.
fn not_ready(health: Health, reasons: Vec<Reason>) -> Response {
    let detail = reasons
        .iter()
        .map(Reason::sentence)
        .collect::<Vec<_>>()
        .join("; ");
    let body = NotReady {
        kind: "https://stridelog.dev/problems/not-ready".into(),
        title: "Not ready".into(),
        status: StatusCode::SERVICE_UNAVAILABLE.as_u16(),
        detail: Some(detail),
        reasons,
        backend: Some(health.backend),
        schema_version: Some(health.schema_version),
        horizon_lag_s: Some(health.horizon_lag_s),
        projections: health.projections,
        workers: health.workers,
        rate_limiter: Some(health.rate_limiter),
        cache: Some(health.cache),
    };
    let mut res = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    res
}

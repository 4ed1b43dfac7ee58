use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::problem::Problem;

#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    status: &'static str,
    backend: &'static str,
    schema_version: i64,
    /// Age of the oldest open write transaction: how far log followers may be held back.
    horizon_lag_s: f64,
    /// Per read model: how far behind the log it is, and whether a runner keeps it current.
    projections: Vec<ProjectionHealth>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ProjectionHealth {
    name: &'static str,
    state: String,
    positions_behind: i64,
    seconds_behind: f64,
    skipped_events: i64,
}

/// The store is reachable and migrated; each read model's lag.
#[utoipa::path(get, path = "/health", tag = "ops",
    responses((status = 200, body = Health),
        (status = 503, description = "The store or read models are unreachable", body = Problem)))]
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
    let projections = match state.projections.status().await {
        Ok(status) => status
            .into_iter()
            .map(|s| ProjectionHealth {
                name: s.name,
                state: s.state,
                positions_behind: s.positions_behind,
                seconds_behind: s.seconds_behind,
                skipped_events: s.skipped_events,
            })
            .collect(),
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
    Json(Health {
        status: "ok",
        backend: info.backend,
        schema_version: info.schema_version,
        horizon_lag_s,
        projections,
    })
    .into_response()
}

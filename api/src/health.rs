use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::AppState;
use crate::problem::Problem;

#[derive(Serialize)]
struct Health {
    status: &'static str,
    backend: &'static str,
    schema_version: i64,
    /// Age of the oldest open write transaction: how far log followers may be held back.
    horizon_lag_s: f64,
}

/// `GET /health` (public): the store is reachable and migrated.
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
    Json(Health {
        status: "ok",
        backend: info.backend,
        schema_version: info.schema_version,
        horizon_lag_s,
    })
    .into_response()
}

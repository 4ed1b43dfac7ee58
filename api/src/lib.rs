//! The HTTP API. Every route states who may call it in [`ROUTES`]; handlers get the caller
//! from the verified token (later issues), never from a body or query.

mod health;
pub mod problem;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use commands::CommandBus;
use store::EventStore;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, unauthenticated: only health and documentation.
    Public,
}

/// The route table, the single place that says who may call what.
pub const ROUTES: &[(&str, &str, Access)] = &[("GET", "/health", Access::Public)];

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub store: EventStore,
    pub commands: CommandBus,
    /// The read side: read models, their lag, read-your-writes.
    pub projections: std::sync::Arc<projections::Engine>,
}

pub fn router(state: AppState) -> Router {
    let request_id = axum::http::HeaderName::from_static("x-request-id");
    Router::new()
        .route("/health", get(health::health))
        .with_state(state)
        // Logs carry method, path and status, never bodies or query strings, which may hold
        // personal data.
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(30),
        ))
}

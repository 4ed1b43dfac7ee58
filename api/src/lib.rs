//! The HTTP API. Every route states who may call it in [`policy::ROUTES`], enforced by one
//! middleware; handlers get the caller from the verified token, never from a body or query.
//! Writes go through commands (so every change is an event) and answer with the log position;
//! reads come from read models and wait, bounded, for a `min_position` the client names.

pub mod auth;
mod bounds;
pub mod cache;
pub mod client_addr;
pub mod console;
mod de;
mod edge;
pub mod erasure;
pub mod extract;
mod health;
pub mod limits;
pub mod openapi;
pub mod policy;
pub mod problem;
mod routes;
pub mod server;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use commands::CommandBus;
use serde::{Deserialize, Serialize};
use store::EventStore;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

pub use auth::Auth;
pub use bounds::RequestLimits;
pub use policy::{Access, Caller, ROUTES};
use problem::{ApiResult, Problem};
pub use routes::activities::MAX_SPLITS;

/// JSON bodies larger than this are refused with 413.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;
/// How long the server works on one request before answering 503 (problem+json).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a read waits for the read models to reach `min_position`.
pub const READ_WAIT: Duration = Duration::from_secs(5);

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub store: EventStore,
    pub commands: CommandBus,
    /// The read side: read models, their lag, read-your-writes.
    pub projections: Arc<projections::Engine>,
    pub auth: Auth,
    /// The workers this process runs beside the API (`serve` without `--no-worker`):
    /// `/health` is not ready while one is down.
    pub workers: workers::Workers,
    /// Requests in progress, body timeouts, imports at once (set by `serve`).
    pub(crate) request_limits: RequestLimits,
    pub(crate) import_slots: Arc<tokio::sync::Semaphore>,
    /// Rate limits and the trusted proxies that name the client (D39).
    pub limits: Arc<limits::Limiter>,
    /// Hot read answers (api/src/cache.rs, D41): in process unless [`AppState::with_cache`]
    /// names another.
    pub cache: cache::ReadCache,
}

impl AppState {
    /// `jwt_secret`: at least 32 bytes. Identity tables live in the store's database.
    pub fn new(
        store: EventStore,
        commands: CommandBus,
        projections: Arc<projections::Engine>,
        jwt_secret: &[u8],
    ) -> anyhow::Result<Self> {
        let tokens = auth::TokenKeys::new(jwt_secret, "stridelog", "stridelog-api")?;
        let db = auth::IdentityDb::new(projections.db().pool.clone());
        // Each hash holds 19 MiB: four at a time caps a login burst at ~80 MiB.
        let passwords = auth::Passwords::new(4)?;
        let auth = Auth::new(db, tokens, passwords, jwt_secret);
        Ok(Self {
            store,
            commands,
            projections,
            auth,
            workers: workers::Workers::default(),
            request_limits: RequestLimits::default(),
            import_slots: Arc::new(tokio::sync::Semaphore::new(
                RequestLimits::default().import_slots,
            )),
            limits: limits::Limiter::new(limits::Settings::default())?,
            cache: cache::ReadCache::default(),
        })
    }

    /// The request bounds this process enforces (the defaults otherwise).
    pub fn with_request_limits(mut self, limits: RequestLimits) -> Self {
        self.import_slots = Arc::new(tokio::sync::Semaphore::new(limits.import_slots.max(1)));
        self.request_limits = limits;
        self
    }

    /// Replaces the default limits (the product plan's, in-process) with these.
    pub fn with_limits(mut self, settings: limits::Settings) -> anyhow::Result<Self> {
        self.limits = limits::Limiter::new(settings)?;
        Ok(self)
    }

    /// Reports these supervised workers in `/health`.
    pub fn with_workers(mut self, workers: workers::Workers) -> Self {
        self.workers = workers;
        self
    }

    /// Caches hot reads here instead of the in-process default (Redis, or off).
    pub fn with_cache(mut self, cache: cache::ReadCache) -> Self {
        self.cache = cache;
        self
    }

    /// The active tables of a read model.
    pub(crate) async fn tables(&self, projection: &str) -> ApiResult<projections::Tables> {
        Ok(self.projections.active_tables(projection).await?)
    }

    pub(crate) fn read_pool(&self) -> &sqlx::AnyPool {
        &self.projections.db().pool
    }

    /// Read-your-writes: waits until `projections` reflect the log up to `min_position` (or the
    /// log's head, if that is further than anything written yet), at most [`READ_WAIT`].
    pub(crate) async fn visible(
        &self,
        projections: &[&str],
        min_position: Option<i64>,
    ) -> ApiResult<()> {
        let Some(wanted) = min_position else {
            return Ok(());
        };
        let target = match self
            .store
            .cursor_of(wanted)
            .await
            .map_err(Problem::internal)?
        {
            Some(c) => c.position,
            // Beyond the head, or a position a rolled-back append never used: everything
            // committed so far is what the caller can have written.
            None => {
                self.store
                    .last_committed()
                    .await
                    .map_err(Problem::internal)?
                    .position
            }
        };
        if target <= 0 {
            return Ok(());
        }
        if self
            .projections
            .wait_for(projections, target, READ_WAIT)
            .await?
        {
            Ok(())
        } else {
            Err(Problem::unavailable(
                "The read model has not caught up with that position yet; retry shortly.",
                1,
            ))
        }
    }

    /// Reads of one object are consistent with that object's own stream: they wait until the
    /// read model has applied the stream's last event (and `min_position`, if given). So a
    /// client sees its own change or deletion of an object without passing a position.
    pub(crate) async fn stream_visible(
        &self,
        projections: &[&str],
        stream: &store::StreamId,
        min_position: Option<i64>,
    ) -> ApiResult<()> {
        let head = self
            .store
            .stream_head(stream)
            .await
            .map_err(Problem::internal)?;
        let wanted = match (head, min_position) {
            (Some(h), Some(m)) => Some(h.max(m)),
            (h, m) => h.or(m),
        };
        self.visible(projections, wanted).await
    }

    /// Waits for `projections` to reach everything committed so far: for writes that look an
    /// object up in a read model before deciding (its date, its current values).
    pub(crate) async fn caught_up(&self, projections: &[&str]) -> ApiResult<()> {
        let head = self
            .store
            .last_committed()
            .await
            .map_err(Problem::internal)?;
        self.visible(projections, Some(head.position)).await
    }
}

/// Read-your-writes: pass the `position` a write returned; the read waits (up to 5 s) until
/// the read model reflects it. `X-Min-Position` works the same way.
#[derive(Debug, Clone, Copy, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Consistency {
    /// A log position returned by a write.
    #[param(minimum = 0)]
    pub min_position: Option<i64>,
}

/// The position a read must reflect, from `?min_position=` or else `X-Min-Position`: the
/// extractor every read handler takes (documented in OpenAPI through [`Consistency`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct MinPosition(pub Option<i64>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for MinPosition {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let extract::Query(c) =
            extract::Query::<Consistency>::from_request_parts(parts, state).await?;
        if let Some(p) = c.min_position {
            if p < 0 {
                return Err(Problem::invalid("min_position", "must not be negative"));
            }
            return Ok(Self(Some(p)));
        }
        match parts.headers.get("x-min-position") {
            None => Ok(Self(None)),
            Some(v) => v
                .to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .filter(|p| *p >= 0)
                .map(|p| Self(Some(p)))
                .ok_or_else(|| {
                    Problem::invalid("X-Min-Position", "must be a non-negative integer")
                }),
        }
    }
}

/// What a write did: the log position of its last event, for `?min_position=`. `null` when
/// nothing needed to change.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Written {
    pub position: Option<i64>,
}

impl Written {
    pub(crate) fn of(executed: &commands::Executed) -> Self {
        Self {
            position: executed.outcome.as_ref().map(|o| o.cursor.position),
        }
    }
}

/// A created object's id and the write's log position.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Created {
    pub id: Uuid,
    pub position: Option<i64>,
}

/// The routes and their OpenAPI document, before state is attached.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .merge(routes::router())
        .routes(utoipa_axum::routes!(health::health))
        .routes(utoipa_axum::routes!(health::live))
}

/// The routes alone, with the policy, for requests the server makes to itself on an athlete's
/// behalf (`routes::inject`): no documentation, tracing or timeouts of their own.
pub(crate) fn inner_router(state: AppState) -> Router {
    let (routes, _) = api_router().split_for_parts();
    routes
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            policy::enforce,
        ))
        .with_state(state)
}

pub fn router(state: AppState) -> Router {
    let bounds = bounds::Bounds::new(state.request_limits);
    let (routes, doc) = api_router().split_for_parts();
    let doc = openapi::finish(doc);
    let request_id = axum::http::HeaderName::from_static("x-request-id");
    routes
        .merge(openapi::docs_router(doc))
        .merge(console::router())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            policy::enforce,
        ))
        .fallback(|| async {
            Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found")
                .detail("No such route. The API is described at /openapi.json.")
        })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            )
            .into_response()
        })
        .with_state(state)
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        // Logs carry method, path and status, never bodies, query strings or tokens, which
        // may hold personal data.
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
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        // Outside the timeout: a shed request never starts its clock or its work.
        .layer(axum::middleware::from_fn_with_state(bounds, bounds::bound))
        // Outermost: it sees the timeout's and the bounds' answers too.
        .layer(axum::middleware::from_fn(edge::harden))
}

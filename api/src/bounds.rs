//! Per-request bounds: a cap on requests in progress that sheds load instead of queueing
//! without bound, a body that must keep arriving, and a declared body size checked before a
//! byte of it is read. The connection-level bounds are in `server.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use tokio::sync::Semaphore;
use tower_http::timeout::{TimeoutBody, TimeoutError};

use crate::problem::Problem;

/// Request bounds (docs/operations.md, "Limits").
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// Requests in progress at once in this process; beyond it, 503 at once.
    pub max_in_flight: usize,
    /// A request body that sends nothing for this long is answered 408.
    pub body_idle_timeout: Duration,
    /// File imports parsed at once in this process (each holds up to 32 MiB of upload).
    pub import_slots: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            max_in_flight: 512,
            body_idle_timeout: Duration::from_secs(10),
            import_slots: 2,
        }
    }
}

/// Seconds an overloaded server asks a client to wait.
const OVERLOAD_RETRY_AFTER_S: u64 = 1;

#[derive(Clone)]
pub(crate) struct Bounds {
    limits: RequestLimits,
    in_flight: Arc<Semaphore>,
}

impl Bounds {
    pub(crate) fn new(limits: RequestLimits) -> Self {
        Self {
            limits,
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight)),
        }
    }
}

/// The most a route's body may be, as its `DefaultBodyLimit` says.
fn body_limit(path: &str) -> usize {
    if path == "/v1/activities/import" {
        crate::routes::import::MAX_REQUEST_BYTES
    } else {
        crate::BODY_LIMIT_BYTES
    }
}

pub(crate) async fn bound(State(bounds): State<Bounds>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    // Health stays answerable under overload: an orchestrator that cannot reach it would
    // restart a process that is merely busy.
    let _permit = if path.starts_with("/health") {
        None
    } else {
        match bounds.in_flight.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => return overloaded().into_response(),
        }
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let limit = body_limit(path);
    if declared.is_some_and(|n| n > limit as u64) {
        // Refused on the header alone: nothing of a body announced as 1 GB is waited for.
        return too_large(limit).into_response();
    }
    let stalled = Arc::new(AtomicBool::new(false));
    let req = {
        let stalled = stalled.clone();
        let timeout = bounds.limits.body_idle_timeout;
        req.map(move |body| {
            Body::new(TimeoutBody::new(timeout, body).map_err(move |e| {
                if e.is::<TimeoutError>() {
                    stalled.store(true, Ordering::Relaxed);
                }
                e
            }))
        })
    };
    let res = next.run(req).await;
    if stalled.load(Ordering::Relaxed) {
        // Whatever the handler made of a body that stopped arriving (an extractor's 400), the
        // client is told what happened; the rest of the body is not read, so the connection
        // cannot be reused.
        let mut res = Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            "body-timeout",
            "Request body timed out",
        )
        .detail(format!(
            "No part of the request body arrived for {} s. Nothing was stored.",
            bounds.limits.body_idle_timeout.as_secs()
        ))
        .into_response();
        res.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
        return res;
    }
    res
}

fn overloaded() -> Problem {
    Problem::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", "Server busy")
        .detail(
            "This server is at its limit of requests in progress; nothing was done. Retry shortly.",
        )
        .retry_after(OVERLOAD_RETRY_AFTER_S)
}

fn too_large(limit: usize) -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-large",
        "Body too large",
    )
    .detail(format!(
        "This route accepts request bodies of up to {} KiB.",
        limit / 1024
    ))
}

/// A place among the imports parsed at once, waited for at most `wait`: uploads are buffered
/// and parsed only in a slot, so memory is bounded by the slots, not by the clients.
pub(crate) async fn import_slot(
    slots: &Arc<Semaphore>,
    wait: Duration,
) -> Result<tokio::sync::OwnedSemaphorePermit, Problem> {
    match tokio::time::timeout(wait, slots.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "imports-busy",
            "Imports busy",
        )
        .detail("Other imports are being processed; nothing was stored. Retry in a few seconds.")
        .retry_after(5)),
    }
}

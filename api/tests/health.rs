//! Liveness and readiness on both stores: `/health` answers 503 naming a poison event until an
//! operator retries it, and naming an embedded worker while it is restarting.

mod common;

use std::sync::Arc;
use std::time::Duration;

use api::AppState;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use projections::testing::{BROKEN, Fault, Flaky};
use projections::{Engine, Projection, ReadDb};
use serde_json::{Value, json};
use store::testing::TestStore;
use store::{Actor, AppendRequest, ExpectedVersion, Metadata, NewEvent, StreamId};
use tower::ServiceExt;
use workers::{RestartBackoff, WorkerState, Workers};

use store::on_both_backends;

on_both_backends!(
    a_poison_event_fails_readiness_until_retried,
    a_restarting_worker_fails_readiness,
    every_response_is_hardened
);

const SECRET: &[u8] = b"stridelog-api-tests-signing-secret-32+";
async fn state(t: &TestStore, projections: Vec<Arc<dyn Projection>>) -> AppState {
    let commands = commands::CommandBus::new(
        t.store.clone(),
        domain::DomainServices::new(Arc::new(commands::SystemClock)),
        domain::upcasters(),
    );
    let engine = Engine::new(
        t.store.clone(),
        ReadDb::connect(&t.url).await.unwrap(),
        projections,
    );
    AppState::new(t.store.clone(), commands, Arc::new(engine), SECRET)
        .unwrap()
        .with_limits(api::limits::Settings::unlimited())
        .unwrap()
}

async fn get(state: &AppState, path: &str) -> (StatusCode, String, Value) {
    let res = api::router(state.clone())
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let content_type = res.headers()["content-type"].to_str().unwrap().to_string();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        content_type,
        serde_json::from_slice(&bytes).unwrap(),
    )
}

async fn a_poison_event_fails_readiness_until_retried(t: TestStore) {
    let appended = t
        .store
        .append(&AppendRequest {
            stream: StreamId::new("probe", uuid::Uuid::now_v7().to_string()),
            expected: ExpectedVersion::NoStream,
            events: ["Good", "Bad", "Good"]
                .into_iter()
                .map(|ty| NewEvent::new(ty, "1.0", json!({"type": ty}), false))
                .collect(),
            metadata: Metadata::new(Actor::system()),
            idempotency: None,
        })
        .await
        .unwrap();
    let bad = appended.positions[1];
    let flaky = Arc::new(Flaky::default());
    flaky.fail(bad, Fault::Broken, u32::MAX);
    let state = state(&t, vec![flaky.clone() as Arc<dyn Projection>]).await;
    let engine = state.projections.clone();
    engine
        .catch_up(flaky.as_ref(), Duration::from_secs(30))
        .await
        .unwrap();

    let (status, _, live) = get(&state, "/health/live").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(live, json!({"status": "ok"}));

    let (status, content_type, body) = get(&state, "/health").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(body["type"], "https://stridelog.dev/problems/not-ready");
    assert_eq!(body["status"], 503);
    assert_eq!(
        body["reasons"],
        json!([{"kind": "skipped_event", "projection": "flaky", "position": bad,
            "event_type": "Bad", "reason": "the projection failed to apply the event"}])
    );
    assert_eq!(
        body["detail"],
        format!(
            "flaky skipped the Bad event at position {bad}: the projection failed to apply the event"
        )
    );
    assert_eq!(body["projections"][0]["skipped_events"], 1);
    assert_eq!(body["backend"], t.store.backend_name());
    assert!(
        !body.to_string().contains(BROKEN),
        "the error text stays out of a public answer: {body}"
    );

    flaky.heal();
    engine.retry_skipped("flaky", bad).await.unwrap();
    let (status, _, body) = get(&state, "/health").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["projections"][0]["skipped_events"], 0);
    assert_eq!(body["workers"], json!([]));
}

async fn a_restarting_worker_fails_readiness(t: TestStore) {
    let workers = Workers::default();
    let state = state(&t, vec![]).await.with_workers(workers.clone());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (fail, failing) = tokio::sync::watch::channel(false);
    let backoff = RestartBackoff {
        first: Duration::from_secs(3600),
        ..RestartBackoff::default()
    };
    let supervisor = tokio::spawn(workers::supervise(
        "projector",
        workers.clone(),
        backoff,
        stopped,
        move |signal| {
            let mut failing = failing.clone();
            async move {
                tokio::select! {
                    _ = failing.wait_for(|f| *f) => anyhow::bail!("the read-model database is unreachable"),
                    _ = signal.wait() => Ok(()),
                }
            }
        },
    ));
    let mut changes = workers.subscribe();
    changes
        .wait_for(|all| all.iter().any(|w| w.state == WorkerState::Running))
        .await
        .unwrap();
    let (status, _, body) = get(&state, "/health").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["workers"][0]["name"], "projector");
    assert_eq!(body["workers"][0]["state"], "running");

    fail.send(true).unwrap();
    changes
        .wait_for(|all| all.iter().any(|w| w.state == WorkerState::Restarting))
        .await
        .unwrap();
    let (status, _, body) = get(&state, "/health").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["reasons"][0]["kind"], "worker");
    assert_eq!(body["reasons"][0]["worker"], "projector");
    assert_eq!(body["reasons"][0]["state"], "restarting");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("worker projector is restarting since "),
        "{body}"
    );
    assert!(!body.to_string().contains("unreachable"), "{body}");

    stop.send(true).unwrap();
    supervisor.await.unwrap();
}

/// Every answer carries the hardening headers; the API's answers are never stored by caches;
/// an over-long body is refused as problem+json; the `Bearer` scheme is case-insensitive.
async fn every_response_is_hardened(t: TestStore) {
    let api = common::Api::start(t).await;
    let a = api.register("edge@example.org", "athlete").await;
    for (path, token) in [
        ("/health/live", None),
        ("/v1/me", None),
        ("/v1/me", Some(a.access.as_str())),
        ("/nowhere", None),
    ] {
        let r = api.send("GET", path, token, None).await;
        assert_eq!(r.headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(r.headers["referrer-policy"], "no-referrer", "{path}");
        if path.starts_with("/v1/") {
            assert_eq!(r.headers["cache-control"], "no-store", "{path}");
        }
    }
    // The documentation runs only its own scripts, and cannot be framed.
    let docs = api.send("GET", "/docs/", None, None).await;
    assert_eq!(docs.status, 200);
    let csp = docs.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(docs.headers["x-frame-options"], "DENY");
    let login = api
        .send(
            "POST",
            "/v1/auth/login",
            None,
            Some(serde_json::json!({"email": "edge@example.org", "password": common::PASSWORD})),
        )
        .await;
    assert_eq!(login.status, 200);
    assert_eq!(login.headers["cache-control"], "no-store");
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let r = api
            .send_full(
                "GET",
                "/v1/me",
                None,
                None,
                None,
                &[("authorization", format!("{scheme} {}", a.access))],
            )
            .await;
        assert_eq!(r.status, 200, "{scheme}: {}", r.body);
    }
    let big = serde_json::json!({"notes": "x".repeat(api::BODY_LIMIT_BYTES + 1)});
    let r = api
        .send("PUT", "/v1/checkins/2026-03-02", Some(&a.access), Some(big))
        .await;
    common::assert_problem(&r, 413);
    api.stop().await;
}

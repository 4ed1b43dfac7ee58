//! The API in-process over a fresh store, with a projector running beside it as `serve` runs
//! one, and a small client that sends requests through the router (no sockets).

#![allow(
    dead_code,
    reason = "each test file uses a different part of the harness"
)]

use std::net::SocketAddr;
use std::sync::Arc;

use api::AppState;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use serde_json::{Value, json};
use store::testing::TestStore;
use tower::ServiceExt;
use uuid::Uuid;

pub const SECRET: &[u8] = b"stridelog-api-tests-signing-secret-32+";
pub const PASSWORD: &str = "correct horse battery";

pub struct Api {
    pub app: Router,
    pub state: AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    runner: Option<tokio::task::JoinHandle<()>>,
    pub t: TestStore,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn position(&self) -> i64 {
        self.body["position"]
            .as_i64()
            .unwrap_or_else(|| panic!("no position in {}", self.body))
    }
}

/// A signed-in account.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: Uuid,
    pub email: String,
    pub access: String,
    pub refresh: String,
}

impl Api {
    /// Limits no test reaches: tests that are not about limits register and call in bulk.
    pub async fn start(t: TestStore) -> Self {
        Self::start_full(t, api::limits::Settings::unlimited(), None).await
    }

    pub async fn start_with_limits(t: TestStore, limits: api::limits::Settings) -> Self {
        Self::start_full(t, limits, None).await
    }

    /// As [`Api::start`], with this read cache instead of the in-process default.
    pub async fn start_with_cache(t: TestStore, cache: Option<api::cache::ReadCache>) -> Self {
        Self::start_full(t, api::limits::Settings::unlimited(), cache).await
    }

    async fn start_full(
        t: TestStore,
        limits: api::limits::Settings,
        cache: Option<api::cache::ReadCache>,
    ) -> Self {
        let commands = commands::CommandBus::new(
            t.store.clone(),
            domain::DomainServices::new(Arc::new(commands::SystemClock)),
            domain::upcasters(),
        );
        let db = projections::ReadDb::connect(&t.url).await.expect("read db");
        let engine = Arc::new(projections::Engine::new(
            t.store.clone(),
            db,
            projections::all(),
        ));
        let mut state = AppState::new(t.store.clone(), commands, engine, SECRET)
            .expect("state")
            .with_limits(limits)
            .expect("limits");
        if let Some(cache) = cache {
            state = state.with_cache(cache);
        }
        let runner_db = projections::ReadDb::connect(&t.url).await.expect("read db");
        let runner = projections::Engine::new(t.store.clone(), runner_db, projections::all());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runner = tokio::spawn(async move {
            runner
                .run(async {
                    let _ = stopped.await;
                })
                .await
                .expect("projector");
        });
        Self {
            app: api::router(state.clone()),
            state,
            stop: Some(stop),
            runner: Some(runner),
            t,
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(runner) = self.runner.take() {
            let _ = runner.await;
        }
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        self.send_from(method, path, token, body, None).await
    }

    /// As [`Api::send`], from a given client address.
    pub async fn send_from(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        from: Option<SocketAddr>,
    ) -> Reply {
        self.send_full(method, path, token, body, from, &[]).await
    }

    pub async fn send_full(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        from: Option<SocketAddr>,
        headers: &[(&str, String)],
    ) -> Reply {
        let mut req = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(path);
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let mut req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&b).unwrap()))
                .unwrap(),
            None => req.body(Body::empty()).unwrap(),
        };
        if let Some(addr) = from {
            req.extensions_mut().insert(ConnectInfo(addr));
        }
        self.raw(req).await
    }

    pub async fn raw(&self, req: Request<Body>) -> Reply {
        let res = self.app.clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 24)
            .await
            .expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn register(&self, email: &str, kind: &str) -> Account {
        let r = self
            .send(
                "POST",
                "/v1/auth/register",
                None,
                Some(json!({"email": email, "password": PASSWORD, "display_name": email.split('@').next().unwrap(), "kind": kind})),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "register {email}: {}",
            r.body
        );
        Account {
            id: r.body["account_id"].as_str().unwrap().parse().unwrap(),
            email: email.to_string(),
            access: r.body["access_token"].as_str().unwrap().to_string(),
            refresh: r.body["refresh_token"].as_str().unwrap().to_string(),
        }
    }
}

pub fn assert_problem(r: &Reply, status: u16) {
    assert_eq!(r.status.as_u16(), status, "{}", r.body);
    assert_eq!(
        r.headers["content-type"], "application/problem+json",
        "{}",
        r.body
    );
    assert_eq!(r.body["status"], status, "{}", r.body);
}

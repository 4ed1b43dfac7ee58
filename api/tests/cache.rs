//! The read cache (api/src/cache.rs, D41) on both stores: a repeated read is a hit with the
//! same bytes; a write followed by a read with `min_position` sees the write, never the cached
//! older answer; two processes share answers through Redis; a dead Redis costs nothing but a
//! `degraded` in `/health`; an erasure leaves no key of the athlete in Redis.
//!
//! Redis runs at 127.0.0.1:6379; each test uses a prefix of its own and removes its keys.

mod common;

use api::cache::ReadCache;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode};
use chrono::{Duration, Utc};
use common::{Account, Api, PASSWORD};
use serde_json::{Value, json};
use store::testing::TestStore;
use tower::ServiceExt;
use uuid::Uuid;

const REDIS: &str = "redis://127.0.0.1:6379";
/// Nothing listens on port 1.
const DEAD_REDIS: &str = "redis://127.0.0.1:1";

fn unique_prefix(test: &str) -> String {
    format!("stridelog-test-{test}-{}", Uuid::new_v4().simple())
}

async fn redis_keys(prefix: &str) -> Vec<String> {
    let client = redis::Client::open(REDIS).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis at 127.0.0.1:6379");
    redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .expect("KEYS")
}

async fn remove_keys(prefix: &str) {
    let keys = redis_keys(prefix).await;
    if keys.is_empty() {
        return;
    }
    let client = redis::Client::open(REDIS).expect("redis url");
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: u64 = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// A run `days_ago` days back, with heart rate so it has an efficiency factor.
async fn record_run(api: &Api, who: &Account, days_ago: i64, distance_m: f64) -> (String, i64) {
    let start = Utc::now() - Duration::days(days_ago);
    let r = api
        .send(
            "POST",
            "/v1/activities",
            Some(&who.access),
            Some(
                json!({"sport": "run", "start_time": start, "timezone": "UTC",
                        "distance_m": distance_m, "moving_time_s": 3000.0,
                        "avg_hr_bpm": 150.0}),
            ),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    (r.body["id"].as_str().unwrap().to_string(), r.position())
}

/// A GET through `app`, with its exact body bytes.
async fn get(app: &axum::Router, path: &str, who: &Account) -> (StatusCode, HeaderMap, Bytes) {
    let req = Request::builder()
        .uri(path)
        .header("authorization", format!("Bearer {}", who.access))
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 24)
        .await
        .unwrap();
    (status, headers, bytes)
}

fn json_of(bytes: &Bytes) -> Value {
    serde_json::from_slice(bytes).expect("a JSON body")
}

async fn repeated_read_is_a_hit(t: TestStore) {
    let api = Api::start(t).await;
    let who = api.register("hit@example.com", "athlete").await;
    let (_, position) = record_run(&api, &who, 3, 10_000.0).await;
    for path in [
        format!("/v1/efficiency/trends?days=30&min_position={position}"),
        format!("/v1/activities?min_position={position}"),
        format!("/v1/training-load?min_position={position}"),
    ] {
        let before = api.state.cache.counters_now();
        let (s1, h1, first) = get(&api.app, &path, &who).await;
        assert_eq!(s1, 200, "{}", String::from_utf8_lossy(&first));
        let (s2, h2, second) = get(&api.app, &path, &who).await;
        assert_eq!(s2, 200);
        let after = api.state.cache.counters_now();
        assert_eq!(after.misses, before.misses + 1, "{path}: {after:?}");
        assert_eq!(after.hits, before.hits + 1, "{path}: {after:?}");
        assert_eq!(first, second, "{path}: a hit is the same bytes");
        for h in ["content-type", "cache-control"] {
            assert_eq!(h1.get(h), h2.get(h), "{path}: {h}");
        }
        // The same query written otherwise (order, no min_position) is the same answer.
        let (_, _, third) = get(&api.app, path.split('?').next().unwrap(), &who).await;
        if path.contains("activities") {
            assert_eq!(third, first);
        }
    }
    let stats = api.state.cache.counters_now();
    assert_eq!(stats.kind, "memory");
    assert!(stats.hit_rate.unwrap() > 0.0, "{stats:?}");
    let health = api.send("GET", "/health", None, None).await;
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.body["cache"]["kind"], "memory");
    assert_eq!(health.body["cache"]["state"], "ok");
    assert!(health.body["cache"]["hits"].as_u64().unwrap() >= 3);
    // The health report's cache part is described in the OpenAPI document.
    let doc = api.send("GET", "/openapi.json", None, None).await.body;
    assert!(
        doc["components"]["schemas"]["CacheStats"]["properties"]["hit_rate"].is_object(),
        "{}",
        doc["components"]["schemas"]["Health"]
    );
    api.stop().await;
}

/// Writes and reads alternate: each read names the write's position and must show it, though
/// the previous answer is in the cache.
async fn min_position_never_sees_the_cached_older_answer(t: TestStore) {
    let prefix = unique_prefix("ryw");
    let caches = [
        ReadCache::default(),
        ReadCache::redis(REDIS, &prefix).unwrap(),
    ];
    let api = Api::start(t).await;
    for (n, cache) in caches.into_iter().enumerate() {
        let app = api::router(api.state.clone().with_cache(cache.clone()));
        let who = api
            .register(&format!("ryw{n}@example.com"), "athlete")
            .await;
        let mut ids = Vec::new();
        for i in 0..4 {
            let (id, position) = record_run(&api, &who, 10 - i, 9_000.0 + 250.0 * i as f64).await;
            ids.push(id);
            for _ in 0..2 {
                let (s, _, body) = get(
                    &app,
                    &format!("/v1/activities?min_position={position}"),
                    &who,
                )
                .await;
                assert_eq!(s, 200);
                let listed: Vec<String> = json_of(&body)["activities"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{}", json_of(&body)))
                    .iter()
                    .map(|a| a["activity_id"].as_str().unwrap().to_string())
                    .collect();
                for id in &ids {
                    assert!(
                        listed.contains(id),
                        "write {i}: {id} missing from {listed:?}"
                    );
                }
                let (s, _, body) = get(
                    &app,
                    &format!("/v1/efficiency/trends?days=30&min_position={position}"),
                    &who,
                )
                .await;
                assert_eq!(s, 200);
                let runs = json_of(&body)["runs"].as_array().unwrap().len();
                assert_eq!(runs, ids.len(), "write {i}: {}", json_of(&body));
            }
        }
        // The second read after each write was answered from the cache: the test above ran
        // against cached answers, not around them.
        let stats = cache.counters_now();
        assert!(stats.hits >= 8, "{stats:?}");
    }
    remove_keys(&prefix).await;
    api.stop().await;
}

/// Two `serve` processes on one Redis: an answer one stored is the other's hit.
async fn redis_answers_are_shared(t: TestStore) {
    let prefix = unique_prefix("shared");
    let api = Api::start_with_cache(t, Some(ReadCache::redis(REDIS, &prefix).unwrap())).await;
    let other = api
        .state
        .clone()
        .with_cache(ReadCache::redis(REDIS, &prefix).unwrap());
    let other_app = api::router(other.clone());
    let who = api.register("shared@example.com", "athlete").await;
    let (_, position) = record_run(&api, &who, 2, 8_000.0).await;
    let path = format!("/v1/efficiency/trends?days=90&min_position={position}");
    let (s, _, first) = get(&api.app, &path, &who).await;
    assert_eq!(s, 200);
    assert_eq!(api.state.cache.counters_now().stores, 1);
    let (s, _, second) = get(&other_app, &path, &who).await;
    assert_eq!(s, 200);
    let stats = other.cache.counters_now();
    assert_eq!((stats.hits, stats.misses), (1, 0), "{stats:?}");
    assert_eq!(first, second);
    let keys = redis_keys(&prefix).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(
        keys[0].starts_with(&format!("{prefix}:v1:{}:efficiency-trends:", who.id)),
        "{}",
        keys[0]
    );
    assert!(keys[0].ends_with(&format!(":{position}")), "{}", keys[0]);
    let health = api.send("GET", "/health", None, None).await;
    assert_eq!(health.body["cache"]["kind"], "redis");
    assert_eq!(health.body["cache"]["state"], "ok");
    remove_keys(&prefix).await;
    api.stop().await;
}

/// Redis down: every read still answers from the read models, and `/health` says so.
async fn dead_redis_degrades_only_the_cache(t: TestStore) {
    let prefix = unique_prefix("dead");
    let api = Api::start_with_cache(t, Some(ReadCache::redis(DEAD_REDIS, &prefix).unwrap())).await;
    let who = api.register("dead@example.com", "athlete").await;
    let (id, position) = record_run(&api, &who, 1, 7_000.0).await;
    for _ in 0..3 {
        let (s, _, body) = get(
            &api.app,
            &format!("/v1/activities?min_position={position}"),
            &who,
        )
        .await;
        assert_eq!(s, 200);
        assert_eq!(json_of(&body)["activities"][0]["activity_id"], id.as_str());
        let (s, _, body) = get(
            &api.app,
            &format!("/v1/efficiency/trends?min_position={position}"),
            &who,
        )
        .await;
        assert_eq!(s, 200);
        assert_eq!(json_of(&body)["runs"].as_array().unwrap().len(), 1);
    }
    let stats = api.state.cache.counters_now();
    assert_eq!((stats.hits, stats.stores), (0, 0), "{stats:?}");
    assert!(stats.errors >= 1, "{stats:?}");
    let health = api.send("GET", "/health", None, None).await;
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.body["cache"]["kind"], "redis");
    assert_eq!(health.body["cache"]["state"], "degraded");
    api.stop().await;
}

/// `DELETE /v1/me` removes every key naming the athlete; another athlete's stay.
async fn erasure_leaves_nothing_in_redis(t: TestStore) {
    let prefix = unique_prefix("erase");
    let api = Api::start_with_cache(t, Some(ReadCache::redis(REDIS, &prefix).unwrap())).await;
    let gone = api.register("gone@example.com", "athlete").await;
    let stays = api.register("stays@example.com", "athlete").await;
    for who in [&gone, &stays] {
        let (_, position) = record_run(&api, who, 4, 6_000.0).await;
        for path in [
            format!("/v1/efficiency/trends?min_position={position}"),
            format!("/v1/activities?min_position={position}"),
            format!("/v1/training-load?min_position={position}"),
        ] {
            let (s, _, _) = get(&api.app, &path, who).await;
            assert_eq!(s, 200);
        }
    }
    let naming =
        |keys: &[String], id: Uuid| keys.iter().filter(|k| k.contains(&id.to_string())).count();
    let keys = redis_keys(&prefix).await;
    assert_eq!(naming(&keys, gone.id), 3, "{keys:?}");
    let r = api
        .send(
            "DELETE",
            "/v1/me",
            Some(&gone.access),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let keys = redis_keys(&prefix).await;
    assert_eq!(naming(&keys, gone.id), 0, "{keys:?}");
    assert_eq!(naming(&keys, stays.id), 3, "{keys:?}");
    remove_keys(&prefix).await;
    api.stop().await;
}

/// Correlation views come from a snapshot the worker writes (no event): a new snapshot is a
/// new answer at once, never the cached one of the snapshot before.
async fn correlation_views_follow_the_snapshot(t: TestStore) {
    let api = Api::start(t).await;
    let who = api.register("corr@example.com", "athlete").await;
    let (_, position) = record_run(&api, &who, 1, 5_000.0).await;
    // Every read model has applied the run, so the first answer may be stored.
    let names = api.state.projections.names();
    assert!(
        api.state
            .projections
            .wait_for(&names, position, std::time::Duration::from_secs(10))
            .await
            .unwrap()
    );
    let mut seen = Vec::new();
    for (n, computed_at_us) in [None, Some(1_000_000i64), Some(2_000_000)]
        .into_iter()
        .enumerate()
    {
        if let Some(at) = computed_at_us {
            // What the worker writes: the snapshot replaced, at the same log position.
            let pool = &api.state.projections.db().pool;
            sqlx::query("DELETE FROM correlation_snapshots WHERE athlete_id = $1")
                .bind(who.id.to_string())
                .execute(pool)
                .await
                .unwrap();
            sqlx::query(
                "INSERT INTO correlation_snapshots (athlete_id, position, computed_at_us, \
                 analyses_json) VALUES ($1, $2, $3, '{}')",
            )
            .bind(who.id.to_string())
            .bind(position)
            .bind(at)
            .execute(pool)
            .await
            .unwrap();
        }
        let before = api.state.cache.counters_now();
        let (s, _, first) = get(&api.app, "/v1/correlations", &who).await;
        assert_eq!(s, 200, "{}", String::from_utf8_lossy(&first));
        let (_, _, second) = get(&api.app, "/v1/correlations?days=90", &who).await;
        let after = api.state.cache.counters_now();
        assert_eq!(after.hits, before.hits + 1, "snapshot {n}: {after:?}");
        assert_eq!(first, second);
        let body = json_of(&first);
        match computed_at_us {
            None => assert!(body["computed_at"].is_null(), "{body}"),
            Some(at) => assert_eq!(
                body["computed_at"],
                json!(chrono::DateTime::from_timestamp_micros(at).unwrap()),
                "snapshot {n}"
            ),
        }
        seen.push(first);
    }
    assert_ne!(seen[1], seen[2]);
    api.stop().await;
}

store::on_both_backends!(
    correlation_views_follow_the_snapshot,
    repeated_read_is_a_hit,
    min_position_never_sees_the_cached_older_answer,
    redis_answers_are_shared,
    dead_redis_degrades_only_the_cache,
    erasure_leaves_nothing_in_redis,
);

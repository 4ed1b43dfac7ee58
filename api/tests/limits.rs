//! Rate limits (D39): the product plan's defaults per route class and per account, client
//! addresses through trusted proxies only, registration per client and per address block,
//! one password hash per client, the owner's login through a throttled address, and limits
//! shared through Redis (127.0.0.1:6379) or kept in-process while Redis is down.

mod common;

use std::net::SocketAddr;

use api::limits::{Class, Limiter, Rate, Settings};
use axum::http::StatusCode;
use common::{Api, PASSWORD, Reply, assert_problem};
use domain::athlete::Role;
use serde_json::json;
use store::testing::TestStore;

fn from(ip: &str) -> Option<SocketAddr> {
    Some(SocketAddr::new(ip.parse().unwrap(), 40_000))
}

fn header<'a>(r: &'a Reply, name: &str) -> &'a str {
    r.headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", r.headers))
        .to_str()
        .unwrap()
}

/// A 429 problem naming `policy`, with Retry-After and the RateLimit headers.
fn assert_limited(r: &Reply, policy: &str, q: u32, w: u64) {
    assert_problem(r, 429);
    assert_eq!(
        r.body["type"], "https://stridelog.dev/problems/rate-limited",
        "{}",
        r.body
    );
    let retry: u64 = header(r, "retry-after").parse().unwrap();
    assert!((1..=w).contains(&retry), "Retry-After {retry}");
    assert_eq!(
        header(r, "ratelimit-policy"),
        format!("\"{policy}\";q={q};w={w}")
    );
    assert!(
        header(r, "ratelimit").starts_with(&format!("\"{policy}\";r=0;t=")),
        "{}",
        header(r, "ratelimit")
    );
}

/// Sends requests until one is refused and returns it, checking that `quota` were served
/// first, plus at most the ones GCRA gave back meanwhile (one every `window / quota`): a slow
/// run on a loaded machine is allowed those, a limit that lets more through is not.
async fn until_refused<F, Fut>(quota: u32, window_s: u64, mut send: F) -> Reply
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = Reply>,
{
    let started = std::time::Instant::now();
    let mut served = 0u32;
    loop {
        let r = send(served).await;
        if r.status == 429 {
            let refills =
                (started.elapsed().as_secs_f64() * f64::from(quota) / window_s as f64) as u32;
            assert!(
                served >= quota && served <= quota + refills,
                "{served} served before the first refusal, quota {quota} + {refills} refilled"
            );
            return r;
        }
        assert_eq!(r.status, 200, "request {}: {}", served + 1, r.body);
        served += 1;
        assert!(served <= 3 * quota, "never refused");
    }
}

fn unique(prefix: &str) -> String {
    format!("stridelog-test:{prefix}:{}:", uuid::Uuid::new_v4())
}

async fn register_from(api: &Api, email: &str, ip: &str) -> Reply {
    api.send_from(
        "POST",
        "/v1/auth/register",
        None,
        Some(json!({"email": email, "password": PASSWORD, "display_name": "Runner"})),
        from(ip),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_101st_request_in_a_minute_is_refused_per_account() {
    let api = Api::start_with_limits(TestStore::sqlite().await, Settings::default()).await;
    let a = api.register("a@example.org", "athlete").await;
    let b = api.register("b@example.org", "athlete").await;
    let refused = until_refused(100, 60, |i| {
        let api = &api;
        let token = a.access.clone();
        async move {
            let r = api.send("GET", "/v1/me", Some(&token), None).await;
            if i == 0 {
                assert!(header(&r, "ratelimit").starts_with("\"general\";r=99;t="));
            }
            if r.status != 429 {
                assert_eq!(header(&r, "ratelimit-policy"), "\"general\";q=100;w=60");
            }
            r
        }
    })
    .await;
    assert_limited(&refused, "general", 100, 60);
    // Another account's quota is its own.
    let r = api.send("GET", "/v1/me", Some(&b.access), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recompute_allows_ten_an_hour_and_admin_routes_fifty_a_minute() {
    let api = Api::start_with_limits(TestStore::sqlite().await, Settings::default()).await;
    let a = api.register("a@example.org", "athlete").await;
    for i in 0..10 {
        let r = api
            .send("POST", "/v1/correlations/recompute", Some(&a.access), None)
            .await;
        assert_ne!(r.status, 429, "recompute {}: {}", i + 1, r.body);
        assert_eq!(header(&r, "ratelimit-policy"), "\"recompute\";q=10;w=3600");
    }
    let r = api
        .send("POST", "/v1/correlations/recompute", Some(&a.access), None)
        .await;
    assert_limited(&r, "recompute", 10, 3600);
    // The general class is separate: reads go on.
    let r = api.send("GET", "/v1/me", Some(&a.access), None).await;
    assert_eq!(r.status, 200, "{}", r.body);

    let admin = api.register("root@example.org", "athlete").await;
    api.state
        .auth
        .db
        .set_role(admin.id, Role::Admin)
        .await
        .unwrap();
    let r = until_refused(50, 60, |_| {
        let api = &api;
        let token = admin.access.clone();
        async move {
            let r = api.send("GET", "/v1/admin/users", Some(&token), None).await;
            if r.status != 429 {
                assert_eq!(header(&r, "ratelimit-policy"), "\"admin\";q=50;w=60");
            }
            r
        }
    })
    .await;
    assert_limited(&r, "admin", 50, 60);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    let settings = Settings {
        general: Rate::new(2, 60),
        trusted_proxies: api::client_addr::parse_cidrs("10.0.0.0/8").unwrap(),
        ..Settings::default()
    };
    let api = Api::start_with_limits(TestStore::sqlite().await, settings).await;
    let page = |peer: &'static str, forwarded: &'static str| {
        let api = &api;
        async move {
            api.send_full(
                "GET",
                "/admin/login",
                None,
                None,
                from(peer),
                &[("x-forwarded-for", forwarded.to_string())],
            )
            .await
        }
    };
    // An untrusted peer cannot pick a fresh address per request.
    assert_eq!(page("198.51.100.7", "203.0.113.1").await.status, 200);
    assert_eq!(page("198.51.100.7", "203.0.113.2").await.status, 200);
    assert_limited(&page("198.51.100.7", "203.0.113.3").await, "general", 2, 60);
    // Through a trusted proxy, each client has its own quota, whichever proxy relays it.
    assert_eq!(page("10.0.0.1", "203.0.113.1").await.status, 200);
    assert_eq!(page("10.0.0.2", "203.0.113.1").await.status, 200);
    assert_limited(&page("10.0.0.1", "203.0.113.1").await, "general", 2, 60);
    assert_eq!(page("10.0.0.1", "203.0.113.2").await.status, 200);
    // A forged entry left of the client's address changes nothing.
    assert_limited(
        &page("10.0.0.1", "192.0.2.99, 203.0.113.1").await,
        "general",
        2,
        60,
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registration_is_limited_per_client_and_per_block() {
    let settings = Settings {
        register_block: Rate::new(7, 3600),
        ..Settings::default()
    };
    let api = Api::start_with_limits(TestStore::sqlite().await, settings).await;
    // The default: five an hour from one address.
    for i in 0..5 {
        let r = register_from(&api, &format!("r{i}@example.org"), "203.0.113.10").await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let r = register_from(&api, "r5@example.org", "203.0.113.10").await;
    assert_limited(&r, "register", 5, 3600);
    // Neighbours in the /24 share the block's quota (7 here): two more, then none.
    assert_eq!(
        register_from(&api, "n1@example.org", "203.0.113.11")
            .await
            .status,
        201
    );
    assert_eq!(
        register_from(&api, "n2@example.org", "203.0.113.12")
            .await
            .status,
        201
    );
    let r = register_from(&api, "n3@example.org", "203.0.113.13").await;
    assert_limited(&r, "register-block", 7, 3600);
    // Another block is not affected.
    assert_eq!(
        register_from(&api, "o1@example.org", "198.51.100.1")
            .await
            .status,
        201
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_owner_signs_in_from_a_throttled_address() {
    let api = Api::start(TestStore::sqlite().await).await;
    let owner = api.register("owner@example.org", "athlete").await;
    let login = |email: &'static str, password: &'static str| {
        let api = &api;
        async move {
            api.send_from(
                "POST",
                "/v1/auth/login",
                None,
                Some(json!({"email": email, "password": password})),
                from("203.0.113.50"),
            )
            .await
        }
    };
    // Someone behind the owner's address guesses at other accounts until the address is
    // throttled.
    let mut throttled = false;
    for _ in 0..=identity::FREE_FAILURES_PER_CLIENT {
        let r = login("nobody@example.org", "wrong password!").await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            throttled = true;
            break;
        }
        assert_eq!(r.status, 401, "{}", r.body);
    }
    if !throttled {
        let r = login("nobody@example.org", "wrong password!").await;
        assert_problem(&r, 429);
    }
    // Wrong guesses from the address stay refused, also against the owner's account...
    let r = login("owner@example.org", "not the password").await;
    assert_problem(&r, 429);
    assert_eq!(
        r.body["type"],
        "https://stridelog.dev/problems/login-throttled"
    );
    // ...and the owner's own password still signs in.
    let r = login("owner@example.org", PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["account_id"], owner.id.to_string());
    let access = r.body["access_token"].as_str().unwrap().to_string();
    // Re-entering the password (to change it) from that address works the same way.
    let change = |current: &'static str| {
        let (api, access) = (&api, access.clone());
        async move {
            api.send_from(
                "POST",
                "/v1/auth/password",
                Some(&access),
                Some(json!({"current_password": current, "new_password": "a new password 1"})),
                from("203.0.113.50"),
            )
            .await
        }
    };
    assert_problem(&change("not the password").await, 429);
    let r = change(PASSWORD).await;
    assert!(r.status.is_success(), "{}: {}", r.status, r.body);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_hash_from_one_client_is_refused_not_queued() {
    let api = Api::start(TestStore::sqlite().await).await;
    let ip = "203.0.113.60".parse().unwrap();
    let held = api.state.limits.hashing_slot(Some(ip)).expect("free");
    let r = register_from(&api, "queued@example.org", "203.0.113.60").await;
    assert_problem(&r, 429);
    assert!(r.headers.contains_key("retry-after"));
    // Another client is not held up.
    assert_eq!(
        register_from(&api, "other@example.org", "203.0.113.61")
            .await
            .status,
        201
    );
    drop(held);
    assert_eq!(
        register_from(&api, "queued@example.org", "203.0.113.60")
            .await
            .status,
        201
    );
    api.stop().await;
}

#[tokio::test]
async fn two_limiters_share_one_limit_through_redis() {
    let settings = Settings {
        general: Rate::new(3, 60),
        redis_url: Some("redis://127.0.0.1:6379".into()),
        redis_prefix: unique("shared"),
        ..Settings::default()
    };
    let a = Limiter::new(settings.clone()).unwrap();
    let b = Limiter::new(settings).unwrap();
    let first = a.check(Class::General, "a:someone").await;
    assert!(first.allowed);
    assert_eq!(first.remaining, 2);
    assert_eq!(b.check(Class::General, "a:someone").await.remaining, 1);
    assert_eq!(a.check(Class::General, "a:someone").await.remaining, 0);
    let refused = b.check(Class::General, "a:someone").await;
    assert!(!refused.allowed, "{refused:?}");
    assert!((1..=20).contains(&refused.retry_after_s), "{refused:?}");
    assert!(!a.check(Class::General, "a:someone").await.allowed);
    // Another key, another quota.
    assert!(b.check(Class::General, "a:someone-else").await.allowed);
    assert_eq!(a.health().await, ("redis", "ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_redis_degrades_to_in_process_limits_and_health_says_so() {
    // Nothing listens on port 1.
    let settings = Settings {
        general: Rate::new(2, 60),
        redis_url: Some("redis://127.0.0.1:1".into()),
        redis_prefix: unique("dead"),
        ..Settings::default()
    };
    let api = Api::start_with_limits(TestStore::sqlite().await, settings).await;
    let a = api.register("a@example.org", "athlete").await;
    // The limit still holds, in this process.
    for _ in 0..2 {
        let r = api.send("GET", "/v1/me", Some(&a.access), None).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_limited(
        &api.send("GET", "/v1/me", Some(&a.access), None).await,
        "general",
        2,
        60,
    );
    let health = api.send("GET", "/health", None, None).await;
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.body["status"], "degraded", "{}", health.body);
    assert_eq!(health.body["rate_limiter"]["backend"], "redis");
    assert_eq!(health.body["rate_limiter"]["state"], "degraded");
    api.stop().await;
}

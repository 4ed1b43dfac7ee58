//! Identity: the JWT suite (every forged or stale token is refused), refresh rotation and reuse,
//! logout, password change, throttling that strangers cannot turn against the owner, and the
//! security log.

mod common;

use std::net::SocketAddr;

use base64::Engine as _;
use common::{Api, PASSWORD, SECRET, assert_problem};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use store::testing::TestStore;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Claims as the server issues them, for `sub`/`sid` of a real session.
fn claims(api_token: &str) -> serde_json::Map<String, Value> {
    let payload = api_token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn sign(alg: Algorithm, secret: &[u8], claims: &serde_json::Map<String, Value>) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret)).unwrap()
}

async fn me_status(api: &Api, token: &str) -> u16 {
    api.send("GET", "/v1/me", Some(token), None)
        .await
        .status
        .as_u16()
}

async fn forged_and_stale_tokens_are_refused(t: TestStore) {
    let api = Api::start(t).await;
    let a = api.register("ana@example.org", "athlete").await;
    // The control: a token built exactly like the server's is accepted, so the refusals below
    // are about the one thing each case changes.
    let base = claims(&a.access);
    let fresh = |edit: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut c = base.clone();
        let n = now();
        c.insert("iat".into(), json!(n));
        c.insert("nbf".into(), json!(n));
        c.insert("exp".into(), json!(n + 600));
        c.insert("jti".into(), json!(uuid::Uuid::new_v4().to_string()));
        edit(&mut c);
        c
    };
    let control = sign(Algorithm::HS256, SECRET, &fresh(&|_| {}));
    assert_eq!(me_status(&api, &control).await, 200);

    let cases: Vec<(&str, String)> = vec![
        (
            "expired beyond the 30 s leeway",
            sign(
                Algorithm::HS256,
                SECRET,
                &fresh(&|c| {
                    c.insert("iat".into(), json!(now() - 900));
                    c.insert("nbf".into(), json!(now() - 900));
                    c.insert("exp".into(), json!(now() - 31));
                }),
            ),
        ),
        (
            "not yet valid",
            sign(
                Algorithm::HS256,
                SECRET,
                &fresh(&|c| {
                    c.insert("nbf".into(), json!(now() + 120));
                }),
            ),
        ),
        (
            "issued in the future",
            sign(
                Algorithm::HS256,
                SECRET,
                &fresh(&|c| {
                    c.insert("iat".into(), json!(now() + 120));
                }),
            ),
        ),
        (
            "wrong audience",
            sign(
                Algorithm::HS256,
                SECRET,
                &fresh(&|c| {
                    c.insert("aud".into(), json!("someone-else"));
                }),
            ),
        ),
        (
            "wrong issuer",
            sign(
                Algorithm::HS256,
                SECRET,
                &fresh(&|c| {
                    c.insert("iss".into(), json!("evil"));
                }),
            ),
        ),
        (
            "lifetime over 15 minutes",
            sign(
                Algorithm::HS256,
                SECRET,
                &fresh(&|c| {
                    c.insert("exp".into(), json!(now() + 24 * 3600));
                }),
            ),
        ),
        (
            "no jti",
            sign(
                Algorithm::HS256,
                SECRET,
                &fresh(&|c| {
                    c.remove("jti");
                }),
            ),
        ),
        (
            "no exp",
            sign(
                Algorithm::HS256,
                SECRET,
                &fresh(&|c| {
                    c.remove("exp");
                }),
            ),
        ),
        (
            "wrong algorithm (HS512, same secret)",
            sign(Algorithm::HS512, SECRET, &fresh(&|_| {})),
        ),
        (
            "wrong secret",
            sign(
                Algorithm::HS256,
                b"another-secret-that-is-32-bytes-long!",
                &fresh(&|_| {}),
            ),
        ),
        ("alg none", {
            let b64 = |v: &Value| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(serde_json::to_vec(v).unwrap())
            };
            let header = b64(&json!({"alg": "none", "typ": "JWT"}));
            format!("{header}.{}.", b64(&Value::Object(fresh(&|_| {}))))
        }),
        ("tampered payload", {
            let mut parts: Vec<String> = control.split('.').map(str::to_string).collect();
            let mut c = fresh(&|_| {});
            c.insert("role".into(), json!("admin"));
            parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(serde_json::to_vec(&Value::Object(c)).unwrap());
            parts.join(".")
        }),
        ("tampered signature", {
            let (head, sig) = control.rsplit_once('.').unwrap();
            let mut sig: Vec<u8> = sig.bytes().collect();
            sig[3] = if sig[3] == b'A' { b'B' } else { b'A' };
            format!("{head}.{}", String::from_utf8(sig).unwrap())
        }),
        (
            "unknown session",
            sign(
                Algorithm::HS256,
                SECRET,
                &fresh(&|c| {
                    c.insert("sid".into(), json!(uuid::Uuid::new_v4().to_string()));
                }),
            ),
        ),
        ("not a JWT", "not-a-token".to_string()),
    ];
    for (case, token) in &cases {
        let r = api.send("GET", "/v1/me", Some(token), None).await;
        assert_eq!(r.status.as_u16(), 401, "{case}: {}", r.body);
        assert_problem(&r, 401);
        assert!(
            r.headers.contains_key("www-authenticate"),
            "{case}: no WWW-Authenticate"
        );
    }
    api.stop().await;
}

async fn refresh_tokens_rotate_and_reuse_ends_the_session(t: TestStore) {
    let api = Api::start(t).await;
    let a = api.register("ana@example.org", "athlete").await;
    let refresh = |token: &str| {
        let body = json!({"refresh_token": token});
        let api = &api;
        async move { api.send("POST", "/v1/auth/refresh", None, Some(body)).await }
    };
    let first = refresh(&a.refresh).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let next_refresh = first.body["refresh_token"].as_str().unwrap().to_string();
    let next_access = first.body["access_token"].as_str().unwrap().to_string();
    assert_ne!(next_refresh, a.refresh);
    assert_eq!(me_status(&api, &next_access).await, 200);

    // The spent token comes back: whoever holds it, the session ends for everyone.
    let reused = refresh(&a.refresh).await;
    assert_problem(&reused, 401);
    assert_eq!(me_status(&api, &next_access).await, 401);
    assert_eq!(me_status(&api, &a.access).await, 401);
    assert_problem(&refresh(&next_refresh).await, 401);

    // A new login is a new session, unaffected.
    let login = api
        .send(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"email": "ANA@Example.org ", "password": PASSWORD})),
        )
        .await;
    assert_eq!(login.status, 200, "emails are normalised: {}", login.body);
    let token = login.body["access_token"].as_str().unwrap().to_string();
    assert_eq!(me_status(&api, &token).await, 200);

    // Logout ends that session at once, not when its access token expires.
    let r = api
        .send(
            "POST",
            "/v1/auth/logout",
            None,
            Some(json!({"refresh_token": login.body["refresh_token"]})),
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(me_status(&api, &token).await, 401);

    let log = api.state.auth.db.security_log(a.id, 50).await.unwrap();
    let kinds: Vec<&str> = log.iter().rev().map(|r| r.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "registered",
            "refresh_token_reused",
            "login_succeeded",
            "logout"
        ]
    );
    api.stop().await;
}

async fn a_password_change_ends_the_other_sessions(t: TestStore) {
    let api = Api::start(t).await;
    let a = api.register("ana@example.org", "athlete").await;
    let other = api
        .send(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"email": a.email, "password": PASSWORD})),
        )
        .await;
    let other_access = other.body["access_token"].as_str().unwrap().to_string();

    let wrong = api
        .send(
            "POST",
            "/v1/auth/password",
            Some(&a.access),
            Some(json!({"current_password": "not the password", "new_password": "a brand new passphrase"})),
        )
        .await;
    assert_problem(&wrong, 403);
    assert_eq!(me_status(&api, &other_access).await, 200);

    let r = api
        .send(
            "POST",
            "/v1/auth/password",
            Some(&a.access),
            Some(json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        me_status(&api, &a.access).await,
        200,
        "this session goes on"
    );
    assert_eq!(me_status(&api, &other_access).await, 401, "the other ends");
    assert_problem(
        &api.send(
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": other.body["refresh_token"]})),
        )
        .await,
        401,
    );
    let old = api
        .send(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"email": a.email, "password": PASSWORD})),
        )
        .await;
    assert_problem(&old, 401);
    let new = api
        .send(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"email": a.email, "password": "a brand new passphrase"})),
        )
        .await;
    assert_eq!(new.status, 200);
    let kinds: Vec<String> = api
        .state
        .auth
        .db
        .security_log(a.id, 50)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.kind)
        .collect();
    assert!(kinds.contains(&"password_changed".to_string()), "{kinds:?}");
    assert!(
        kinds.contains(&"password_change_refused".to_string()),
        "{kinds:?}"
    );
    api.stop().await;
}

async fn guessing_is_throttled_without_locking_the_owner_out(t: TestStore) {
    let api = Api::start(t).await;
    let a = api.register("ana@example.org", "athlete").await;
    let home: SocketAddr = "198.51.100.7:50000".parse().unwrap();
    let login = |password: &str, from: SocketAddr| {
        let body = json!({"email": "ana@example.org", "password": password});
        let api = &api;
        async move {
            api.send_from("POST", "/v1/auth/login", None, Some(body), Some(from))
                .await
        }
    };
    assert_eq!(login(PASSWORD, home).await.status, 200);

    let stranger =
        |i: u16| -> SocketAddr { format!("203.0.113.{}:4000", i % 8 + 1).parse().unwrap() };
    // A stranger guesses from a few addresses, under each address's own limits: the account's
    // ten free failures for unfamiliar clients go, and the eleventh starts a pause.
    for i in 0..11u16 {
        let r = login("guess-guess-guess", stranger(i % 3)).await;
        assert_problem(&r, 401);
    }
    // Right after it: a device never seen for this account waits while the attack is on (the
    // documented cost)...
    let new_device: SocketAddr = "192.0.2.55:1".parse().unwrap();
    let r = login(PASSWORD, new_device).await;
    assert_problem(&r, 429);
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    // ...while the owner, from the address they logged in from before, is not affected.
    let r = login(PASSWORD, home).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Guessing on, from more addresses: mostly paused, each pause longer than the last.
    let mut throttled = 0;
    for i in 0..30u16 {
        let r = login("guess-guess-guess", stranger(i)).await;
        match r.status.as_u16() {
            401 => {}
            429 => {
                throttled += 1;
                let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
                assert!((1..=901).contains(&retry), "{retry}");
            }
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    assert!(
        throttled > 15,
        "the guessing was throttled ({throttled} of 30)"
    );

    let log = api.state.auth.db.security_log(a.id, 200).await.unwrap();
    let count = |k: &str| log.iter().filter(|r| r.kind == k).count();
    assert_eq!(count("login_succeeded"), 2);
    assert_eq!(
        count("login_failed") + count("login_throttled"),
        11 + 1 + 30
    );
    api.stop().await;
}

async fn registration_validates_and_keeps_emails_unique(t: TestStore) {
    let api = Api::start(t).await;
    api.register("ana@example.org", "athlete").await;
    let again = api
        .send(
            "POST",
            "/v1/auth/register",
            None,
            Some(json!({"email": " Ana@EXAMPLE.org", "password": PASSWORD, "display_name": "Ana"})),
        )
        .await;
    assert_problem(&again, 409);
    let short = api
        .send(
            "POST",
            "/v1/auth/register",
            None,
            Some(json!({"email": "bo@example.org", "password": "short", "display_name": "Bo"})),
        )
        .await;
    assert_problem(&short, 422);
    assert_eq!(short.body["errors"][0]["field"], "password");
    let role = api
        .send(
            "POST",
            "/v1/auth/register",
            None,
            Some(json!({"email": "cy@example.org", "password": PASSWORD, "display_name": "Cy", "kind": "admin"})),
        )
        .await;
    assert_problem(&role, 422);
    // Nothing was stored for the refused ones.
    for email in ["bo@example.org", "cy@example.org"] {
        assert!(
            api.state
                .auth
                .db
                .account_by_email(email)
                .await
                .unwrap()
                .is_none()
        );
    }
    let hash = api
        .state
        .auth
        .db
        .account_by_email("ana@example.org")
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    api.stop().await;
}

store::on_both_backends!(
    forged_and_stale_tokens_are_refused,
    refresh_tokens_rotate_and_reuse_ends_the_session,
    a_password_change_ends_the_other_sessions,
    guessing_is_throttled_without_locking_the_owner_out,
    registration_validates_and_keeps_emails_unique,
);

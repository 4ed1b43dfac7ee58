//! The admin API's rules, beyond who may call it (tests/access_policy.rs): the user list's
//! filters and paging, suspension and reinstatement, the role rules, audit and replay over
//! HTTP, the security log's record of admin actions, site metrics and health in detail. Bad
//! input gets problem+json and changes nothing.

mod common;

use common::{Account, Api, PASSWORD, assert_problem};
use domain::athlete::Role;
use serde_json::{Value, json};
use store::testing::TestStore;

async fn staff(api: &Api, email: &str, role: Role) -> Account {
    let account = api.register(email, "athlete").await;
    api.state.auth.db.set_role(account.id, role).await.unwrap();
    account
}

fn ids(page: &Value) -> Vec<String> {
    page["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap().to_string())
        .collect()
}

async fn login(api: &Api, email: &str, password: &str) -> common::Reply {
    api.send(
        "POST",
        "/v1/auth/login",
        None,
        Some(json!({"email": email, "password": password})),
    )
    .await
}

/// Security-log rows of one kind about one account, as admins read them.
async fn security_rows(api: &Api, token: &str, account: &Account, kind: &str) -> Vec<Value> {
    let r = api
        .send(
            "GET",
            &format!(
                "/v1/admin/security-log?account_id={}&kind={kind}",
                account.id
            ),
            Some(token),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["entries"].as_array().unwrap().clone()
}

async fn the_user_list_filters_and_pages(t: TestStore) {
    let api = Api::start(t).await;
    let admin = staff(&api, "root@example.org", Role::Admin).await;
    let mut athletes = Vec::new();
    for i in 0..5 {
        athletes.push(
            api.register(&format!("runner{i}@example.org"), "athlete")
                .await,
        );
    }
    let coach = api.register("zoe.coach@example.org", "coach").await;
    let mut last = 0;
    for a in [&athletes[0], &athletes[3]] {
        let r = api
            .send(
                "PUT",
                "/v1/checkins/2026-03-02",
                Some(&a.access),
                Some(json!({"sleep_h": 7.5})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        last = r.position();
    }
    let get = |path: String| {
        let api = &api;
        let token = admin.access.clone();
        async move {
            api.send_full(
                "GET",
                &path,
                Some(&token),
                None,
                None,
                &[("x-min-position", last.to_string())],
            )
            .await
        }
    };

    // Newest first; pending registrations never appear.
    let all = get("/v1/admin/users".into()).await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert_eq!(
        ids(&all.body),
        [
            "zoe.coach@example.org",
            "runner4@example.org",
            "runner3@example.org",
            "runner2@example.org",
            "runner1@example.org",
            "runner0@example.org",
            "root@example.org"
        ]
    );
    assert_eq!(all.body["users"][0]["role"], "coach");
    assert_eq!(all.body["users"][0]["display_name"], "zoe.coach");
    assert_eq!(all.body["users"][0]["status"], "active");
    assert!(all.body["next_cursor"].is_null());

    // Keyset paging: three pages of 3, 3 and 1, with no repeats and no gaps.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/admin/users?limit=3&cursor={c}"),
            None => "/v1/admin/users?limit=3".into(),
        };
        let page = get(path).await;
        assert_eq!(page.status, 200, "{}", page.body);
        seen.extend(ids(&page.body));
        pages += 1;
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids(&all.body));

    // Email prefix, and a part of the name, case-insensitive; `_` is literal.
    let by_prefix = get("/v1/admin/users?q=RUNNER1".into()).await;
    assert_eq!(ids(&by_prefix.body), ["runner1@example.org"]);
    let by_name = get("/v1/admin/users?q=coach".into()).await;
    assert_eq!(ids(&by_name.body), ["zoe.coach@example.org"]);
    let literal = get("/v1/admin/users?q=runner_".into()).await;
    assert_eq!(ids(&literal.body), Vec::<String>::new());
    let coaches = get("/v1/admin/users?role=coach".into()).await;
    assert_eq!(ids(&coaches.body), ["zoe.coach@example.org"]);
    // Every event is a sighting, a registration too: all were active today. Move runner1's
    // only sighting back in time, as if they had registered in 2000 and done nothing since.
    let today = chrono::Utc::now().date_naive();
    let days = api
        .state
        .projections
        .active_tables("admin_metrics")
        .await
        .unwrap()
        .table("athlete_days");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {days} SET day = '2000-01-01' WHERE athlete_id = $1"
    )))
    .bind(athletes[1].id.to_string())
    .execute(&api.state.projections.db().pool)
    .await
    .unwrap();
    let active = get("/v1/admin/users?active_within_days=30".into()).await;
    assert_eq!(ids(&active.body).len(), 6, "{}", active.body);
    assert!(!ids(&active.body).contains(&"runner1@example.org".to_string()));
    assert_eq!(
        active.body["users"][0]["last_active_date"],
        json!(today.to_string())
    );
    let idle = get("/v1/admin/users?q=runner1".into()).await;
    assert_eq!(idle.body["users"][0]["last_active_date"], "2000-01-01");
    let registered_today = get(format!(
        "/v1/admin/users?registered_from={today}&registered_to={today}"
    ))
    .await;
    assert_eq!(ids(&registered_today.body).len(), 7);
    let yesterday = today.pred_opt().unwrap();
    let before = get(format!("/v1/admin/users?registered_to={yesterday}")).await;
    assert_eq!(ids(&before.body), Vec::<String>::new());

    // Bad input: problem+json, field named.
    for (path, field) in [
        ("/v1/admin/users?limit=0", "limit"),
        ("/v1/admin/users?limit=201", "limit"),
        ("/v1/admin/users?cursor=nonsense", "cursor"),
        ("/v1/admin/users?cursor=12.not-a-uuid", "cursor"),
        ("/v1/admin/users?q=%20%20", "q"),
        ("/v1/admin/users?active_within_days=0", "active_within_days"),
        (
            "/v1/admin/users?registered_from=2026-03-02&registered_to=2026-03-01",
            "registered_to",
        ),
    ] {
        let r = get(path.into()).await;
        assert_problem(&r, 422);
        assert_eq!(r.body["errors"][0]["field"], field, "{path}: {}", r.body);
    }
    for path in [
        "/v1/admin/users?role=emperor",
        "/v1/admin/users?registered_from=yesterday",
        "/v1/admin/users?sort=name",
    ] {
        let r = get(path.into()).await;
        assert!(r.status.is_client_error(), "{path}: {}", r.status);
        assert_eq!(r.headers["content-type"], "application/problem+json");
    }

    // One user's summary, and the view it leaves in the security log.
    let one = get(format!("/v1/admin/users/{}", athletes[0].id)).await;
    assert_eq!(one.status, 200, "{}", one.body);
    assert_eq!(one.body["email"], "runner0@example.org");
    assert_eq!(one.body["live_sessions"], 1);
    let events: Vec<(String, i64)> = one.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event_type"].as_str().unwrap().to_string(),
                e["events"].as_i64().unwrap(),
            )
        })
        .collect();
    assert!(
        events.contains(&("AthleteRegistered".into(), 1)),
        "{events:?}"
    );
    let viewed = security_rows(&api, &admin.access, &athletes[0], "admin_viewed").await;
    assert_eq!(viewed.len(), 1);
    assert_eq!(viewed[0]["actor_id"], json!(admin.id.to_string()));
    assert_eq!(viewed[0]["detail"], "summary");
    let missing = get(format!("/v1/admin/users/{}", uuid::Uuid::new_v4())).await;
    assert_problem(&missing, 404);
    let _ = coach;
    api.stop().await;
}

async fn suspension_ends_sessions_and_login_until_reinstated(t: TestStore) {
    let api = Api::start(t).await;
    let admin = staff(&api, "root@example.org", Role::Admin).await;
    let other_admin = staff(&api, "ops@example.org", Role::Admin).await;
    let owner = staff(&api, "boss@example.org", Role::Owner).await;
    let a = api.register("a@example.org", "athlete").await;
    let suspend = |who: &Account, target: &Account, reason: Value| {
        let path = format!("/v1/admin/users/{}/suspend", target.id);
        let token = who.access.clone();
        let api = &api;
        async move {
            api.send(
                "POST",
                &path,
                Some(&token),
                Some(json!({ "reason": reason })),
            )
            .await
        }
    };

    // Bad bodies change nothing.
    for body in [
        json!({}),
        json!({"reason": "because"}),
        json!({"reason": "other", "x": 1}),
    ] {
        let r = api
            .send(
                "POST",
                &format!("/v1/admin/users/{}/suspend", a.id),
                Some(&admin.access),
                Some(body),
            )
            .await;
        assert!(r.status.is_client_error(), "{}", r.body);
        assert_eq!(r.headers["content-type"], "application/problem+json");
    }
    assert_eq!(
        api.send("GET", "/v1/me", Some(&a.access), None)
            .await
            .status,
        200
    );

    let r = suspend(&admin, &a, json!("terms_violation")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "suspended");
    assert_eq!(r.body["sessions_ended"], 1);
    assert_problem(&api.send("GET", "/v1/me", Some(&a.access), None).await, 401);
    // The owner's password learns it; a wrong one learns nothing new.
    assert_problem(&login(&api, "a@example.org", PASSWORD).await, 403);
    assert_problem(&login(&api, "a@example.org", "wrong password!").await, 401);
    // Refresh tokens of the ended sessions are dead too.
    let refreshed = api
        .send(
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": a.refresh})),
        )
        .await;
    assert_problem(&refreshed, 401);
    assert_problem(&suspend(&admin, &a, json!("other")).await, 409);
    let rows = security_rows(&api, &owner.access, &a, "account_suspended").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["actor_id"], json!(admin.id.to_string()));
    assert_eq!(rows[0]["detail"], "terms_violation");

    // Staff accounts are the owner's; nobody acts on their own.
    assert_problem(&suspend(&admin, &other_admin, json!("other")).await, 403);
    assert_problem(&suspend(&admin, &admin, json!("other")).await, 403);
    assert_problem(&suspend(&owner, &owner, json!("other")).await, 403);
    let r = suspend(&owner, &other_admin, json!("security_concern")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_problem(
        &api.send("GET", "/v1/admin/users", Some(&other_admin.access), None)
            .await,
        401,
    );

    let reinstate = |who: &Account, target: &Account| {
        let path = format!("/v1/admin/users/{}/reinstate", target.id);
        let token = who.access.clone();
        let api = &api;
        async move { api.send("POST", &path, Some(&token), None).await }
    };
    let r = reinstate(&admin, &a).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "active");
    assert_problem(&reinstate(&admin, &a).await, 409);
    let back = login(&api, "a@example.org", PASSWORD).await;
    assert_eq!(back.status, 200, "{}", back.body);
    let token = back.body["access_token"].as_str().unwrap();
    assert_eq!(
        api.send("GET", "/v1/me", Some(token), None).await.status,
        200
    );
    assert_eq!(
        security_rows(&api, &owner.access, &a, "account_reinstated")
            .await
            .len(),
        1
    );
    // A suspended email is taken: it cannot be registered anew.
    let r = suspend(&admin, &a, json!("holder_request")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let again = api
        .send(
            "POST",
            "/v1/auth/register",
            None,
            Some(json!({"email": "a@example.org", "password": PASSWORD, "display_name": "A"})),
        )
        .await;
    assert_problem(&again, 409);
    assert_problem(
        &reinstate(
            &admin,
            &Account {
                id: uuid::Uuid::new_v4(),
                ..a.clone()
            },
        )
        .await,
        404,
    );
    api.stop().await;
}

async fn role_changes_follow_the_rules(t: TestStore) {
    let api = Api::start(t).await;
    let admin = staff(&api, "root@example.org", Role::Admin).await;
    let owner = staff(&api, "boss@example.org", Role::Owner).await;
    let a = api.register("a@example.org", "athlete").await;
    let set = |who: &Account, target: &Account, role: &str| {
        let path = format!("/v1/admin/users/{}/role", target.id);
        let token = who.access.clone();
        let role = role.to_string();
        let api = &api;
        async move {
            api.send("PUT", &path, Some(&token), Some(json!({ "role": role })))
                .await
        }
    };
    // An admin makes coaches, not admins.
    let r = set(&admin, &a, "coach").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let changed_at = r.position();
    assert_eq!(
        api.state.auth.db.account(a.id).await.unwrap().unwrap().role,
        Role::Coach
    );
    assert_problem(&set(&admin, &a, "admin").await, 403);
    assert_problem(&set(&admin, &admin, "athlete").await, 403);
    assert_problem(&set(&admin, &owner, "athlete").await, 403);
    // The same role again: no event.
    let same = set(&admin, &a, "coach").await;
    assert_eq!(same.status, 200, "{}", same.body);
    assert!(same.body["position"].is_null());
    // An owner makes admins and owners; the last owner stays one.
    assert_problem(&set(&owner, &owner, "admin").await, 403);
    let r = set(&owner, &a, "owner").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let second_owner = Account {
        access: login(&api, "a@example.org", PASSWORD).await.body["access_token"]
            .as_str()
            .unwrap()
            .to_string(),
        ..a.clone()
    };
    let r = set(&second_owner, &owner, "admin").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_problem(&set(&owner, &second_owner, "athlete").await, 403);
    let last = staff(&api, "spare@example.org", Role::Admin).await;
    let r = set(&second_owner, &last, "athlete").await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Bad bodies change nothing.
    for body in [json!({"role": "emperor"}), json!({}), json!({"role": 3})] {
        let r = api
            .send(
                "PUT",
                &format!("/v1/admin/users/{}/role", last.id),
                Some(&second_owner.access),
                Some(body),
            )
            .await;
        assert!(r.status.is_client_error(), "{}", r.body);
        assert_eq!(r.headers["content-type"], "application/problem+json");
    }
    assert_eq!(
        api.state
            .auth
            .db
            .account(last.id)
            .await
            .unwrap()
            .unwrap()
            .role,
        Role::Athlete
    );

    // The change is an event with the admin as actor, in the athlete's audit trail.
    let trail = api
        .send_full(
            "GET",
            &format!("/v1/admin/users/{}/audit?event_type=RoleChanged", a.id),
            Some(&second_owner.access),
            None,
            None,
            &[("x-min-position", changed_at.to_string())],
        )
        .await;
    assert_eq!(trail.status, 200, "{}", trail.body);
    let entries = trail.body.as_array().unwrap();
    assert_eq!(entries.len(), 2, "{}", trail.body);
    assert_eq!(entries[0]["actor_id"], json!(admin.id.to_string()));
    assert_eq!(entries[0]["actor_role"], "admin");
    assert_eq!(entries[1]["actor_id"], json!(owner.id.to_string()));
    api.stop().await;
}

async fn audit_and_replay_read_history_over_http(t: TestStore) {
    let api = Api::start(t).await;
    let admin = staff(&api, "root@example.org", Role::Admin).await;
    let a = api.register("a@example.org", "athlete").await;
    let first = api
        .send(
            "PUT",
            "/v1/checkins/2026-03-02",
            Some(&a.access),
            Some(json!({"sleep_h": 6.5})),
        )
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    let second = api
        .send(
            "PUT",
            "/v1/checkins/2026-03-03",
            Some(&a.access),
            Some(json!({"sleep_h": 8.0})),
        )
        .await;
    let get = |path: String| {
        let api = &api;
        let token = admin.access.clone();
        let min = second.position();
        async move {
            api.send_full(
                "GET",
                &path,
                Some(&token),
                None,
                None,
                &[("x-min-position", min.to_string())],
            )
            .await
        }
    };
    let trail = get(format!("/v1/admin/users/{}/audit", a.id)).await;
    assert_eq!(trail.status, 200, "{}", trail.body);
    let types: Vec<&str> = trail
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types[0], "AthleteRegistered");
    assert_eq!(
        types.iter().filter(|t| t.contains("CheckIn")).count(),
        2,
        "{types:?}"
    );
    let by_admin = get(format!("/v1/admin/users/{}/audit?actor={}", a.id, admin.id)).await;
    assert_eq!(by_admin.body, json!([]));
    let later = get(format!(
        "/v1/admin/users/{}/audit?since={}",
        a.id,
        trail.body[types.len() - 1]["recorded_at"]
            .as_str()
            .unwrap()
            .replace('+', "%2B")
    ))
    .await;
    assert_eq!(later.body.as_array().unwrap().len(), 1, "{}", later.body);

    // As of the first check-in: one check-in day; as of now: two.
    let at_first = get(format!(
        "/v1/admin/users/{}/replay?position={}",
        a.id,
        first.position()
    ))
    .await;
    assert_eq!(at_first.status, 200, "{}", at_first.body);
    assert_eq!(at_first.body["last_position"], first.position());
    assert_eq!(
        at_first.body["latest_journal_days"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let now = get(format!(
        "/v1/admin/users/{}/replay?at=2100-01-01T00:00:00Z",
        a.id
    ))
    .await;
    assert_eq!(now.status, 200, "{}", now.body);
    assert_eq!(now.body["latest_journal_days"].as_array().unwrap().len(), 2);
    assert_eq!(now.body["profile"]["display_name"], "a");

    for (path, status) in [
        (format!("/v1/admin/users/{}/replay", a.id), 422),
        (
            format!(
                "/v1/admin/users/{}/replay?position=1&at=2026-01-01T00:00:00Z",
                a.id
            ),
            422,
        ),
        (format!("/v1/admin/users/{}/replay?position=0", a.id), 422),
        (
            format!(
                "/v1/admin/users/{}/replay?position=9223372036854775807",
                a.id
            ),
            422,
        ),
        (format!("/v1/admin/users/{}/replay?position=x", a.id), 422),
        (
            format!("/v1/admin/users/{}/audit?event_type=a%20b", a.id),
            422,
        ),
        (format!("/v1/admin/users/{}/audit?since=monday", a.id), 422),
        ("/v1/admin/security-log?limit=500".to_string(), 422),
        ("/v1/admin/security-log?kind=DROP%20TABLE".to_string(), 422),
        ("/v1/admin/security-log?before=0".to_string(), 422),
        (
            "/v1/admin/metrics?from=2026-01-02&to=2026-01-01".to_string(),
            422,
        ),
        (
            "/v1/admin/metrics?from=2024-01-01&to=2026-01-01".to_string(),
            422,
        ),
    ] {
        let r = get(path.clone()).await;
        assert_eq!(r.status.as_u16(), status, "{path}: {}", r.body);
        assert_eq!(
            r.headers["content-type"], "application/problem+json",
            "{path}"
        );
    }
    let unknown = get(format!(
        "/v1/admin/users/{}/replay?position=1",
        uuid::Uuid::new_v4()
    ))
    .await;
    assert_problem(&unknown, 404);

    // Each read of A's history is in the security log, newest first, with the admin as actor.
    let views = security_rows(&api, &admin.access, &a, "admin_viewed").await;
    let details: Vec<&str> = views
        .iter()
        .map(|v| v["detail"].as_str().unwrap())
        .collect();
    assert_eq!(
        details,
        ["replay", "replay", "audit", "audit", "audit"],
        "{views:?}"
    );
    assert!(
        views
            .iter()
            .all(|v| v["actor_id"] == json!(admin.id.to_string()))
    );
    // Paging the log by `before`.
    let page = get(format!(
        "/v1/admin/security-log?account_id={}&kind=admin_viewed&limit=2",
        a.id
    ))
    .await;
    assert_eq!(page.body["entries"].as_array().unwrap().len(), 2);
    let before = page.body["next_before"].as_i64().unwrap();
    let rest = get(format!(
        "/v1/admin/security-log?account_id={}&kind=admin_viewed&before={before}",
        a.id
    ))
    .await;
    assert_eq!(rest.body["entries"].as_array().unwrap().len(), 3);
    assert!(rest.body["next_before"].is_null());
    api.stop().await;
}

async fn metrics_and_health_in_detail(t: TestStore) {
    let api = Api::start(t).await;
    let admin = staff(&api, "root@example.org", Role::Admin).await;
    let a = api.register("a@example.org", "athlete").await;
    api.register("b@example.org", "athlete").await;
    let r = api
        .send(
            "PUT",
            "/v1/checkins/2026-03-02",
            Some(&a.access),
            Some(json!({"sleep_h": 7.0})),
        )
        .await;
    let today = chrono::Utc::now().date_naive().to_string();
    let m = api
        .send_full(
            "GET",
            "/v1/admin/metrics",
            Some(&admin.access),
            None,
            None,
            &[("x-min-position", r.position().to_string())],
        )
        .await;
    assert_eq!(m.status, 200, "{}", m.body);
    assert_eq!(m.body["to"], json!(today));
    assert_eq!(m.body["signups"], json!([{"date": today, "signups": 3}]));
    assert_eq!(
        m.body["daily_active"],
        json!([{"date": today, "active_athletes": 3}])
    );
    assert_eq!(m.body["logging"]["registered_athletes"], 3);
    let check_ins = m.body["logging"]["shares"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "check_ins")
        .unwrap()
        .clone();
    assert_eq!(check_ins["athletes_logging"], 1);
    let h = api
        .send("GET", "/v1/admin/health", Some(&admin.access), None)
        .await;
    assert_eq!(h.status, 200, "{}", h.body);
    let names: Vec<&str> = h.body["projections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"admin_metrics"), "{names:?}");
    assert_eq!(h.body["queues"], json!([]));
    assert_eq!(h.body["pools"][0]["pool"], "read");
    assert_eq!(h.body["skipped_events"], json!([]));
    let job = api
        .send("POST", "/v1/correlations/recompute", Some(&a.access), None)
        .await;
    assert_eq!(job.status, 202, "{}", job.body);
    let h = api
        .send("GET", "/v1/admin/health", Some(&admin.access), None)
        .await;
    assert_eq!(h.body["queues"][0]["queue"], "correlation", "{}", h.body);
    assert_eq!(h.body["queues"][0]["jobs"], 1, "{}", h.body);

    // The correlation engine on demand: raw output, nothing stored. With no runs there is
    // no outcome to test against, in any window.
    let run = api
        .send(
            "POST",
            &format!("/v1/admin/users/{}/correlations/run", a.id),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(run.status, 200, "{}", run.body);
    assert_eq!(run.body["tests_run"], 0, "{}", run.body);
    assert!(run.body["computed_in_ms"].as_f64().unwrap() >= 0.0);
    let windows = run.body["windows"].as_object().unwrap();
    let mut days: Vec<u32> = windows.keys().map(|k| k.parse().unwrap()).collect();
    days.sort_unstable();
    assert_eq!(days, projections::correlations::WINDOWS_DAYS);
    for w in windows.values() {
        assert_eq!(
            *w,
            json!({"findings": [], "insufficient": [], "tests_run": 0})
        );
    }
    let stored = projections::correlations::snapshot(&api.state.projections.db().pool, a.id)
        .await
        .unwrap();
    assert!(stored.is_none(), "the trigger stores nothing");
    api.stop().await;
}

/// The claims of a token, unverified: what any client or proxy can read.
fn claims(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

async fn impersonation_is_short_marked_and_visible(t: TestStore) {
    let api = Api::start(t).await;
    let admin = staff(&api, "root@example.org", Role::Admin).await;
    let other_admin = staff(&api, "ops@example.org", Role::Admin).await;
    let owner = staff(&api, "boss@example.org", Role::Owner).await;
    let a = api.register("a@example.org", "athlete").await;
    let start = |who: &Account, target: &Account, body: Value| {
        let path = format!("/v1/admin/users/{}/impersonate", target.id);
        let token = who.access.clone();
        let api = &api;
        async move { api.send("POST", &path, Some(&token), Some(body)).await }
    };
    let audit = |min: i64, event_type: &str| {
        let path = format!("/v1/admin/users/{}/audit?event_type={event_type}", a.id);
        let token = owner.access.clone();
        let api = &api;
        async move {
            let r = api
                .send_full(
                    "GET",
                    &path,
                    Some(&token),
                    None,
                    None,
                    &[("x-min-position", min.to_string())],
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.body.as_array().unwrap().clone()
        }
    };

    // Bad input and forbidden targets change nothing.
    for body in [
        json!({}),
        json!({"reason": "Because I said so"}),
        json!({"reason": "a".repeat(41)}),
        json!({"reason": "support_ticket", "minutes": 60}),
    ] {
        let r = start(&admin, &a, body.clone()).await;
        assert!(r.status.is_client_error(), "{body}: {}", r.body);
        assert_eq!(r.headers["content-type"], "application/problem+json");
    }
    let ticket = json!({"reason": "support_ticket"});
    assert_problem(&start(&admin, &other_admin, ticket.clone()).await, 403);
    assert_problem(&start(&admin, &owner, ticket.clone()).await, 403);
    assert_problem(&start(&owner, &owner, ticket.clone()).await, 403);
    assert_problem(&start(&admin, &admin, ticket.clone()).await, 403);
    let registered = api.send("GET", "/v1/me", Some(&a.access), None).await;
    assert_eq!(registered.status, 200);

    // 15 minutes at most, no refresh token, the admin in the token.
    let before = chrono::Utc::now();
    let s = start(&admin, &a, ticket.clone()).await;
    assert_eq!(s.status, 201, "{}", s.body);
    assert!(s.body.get("refresh_token").is_none(), "{}", s.body);
    let expires: chrono::DateTime<chrono::Utc> =
        s.body["expires_at"].as_str().unwrap().parse().unwrap();
    let lasts = expires - before;
    assert!(
        lasts <= chrono::Duration::minutes(15) && lasts > chrono::Duration::minutes(14),
        "{lasts}"
    );
    let token = s.body["access_token"].as_str().unwrap().to_string();
    let c = claims(&token);
    assert_eq!(c["imp"], json!(admin.id.to_string()));
    assert_eq!(c["sub"], json!(a.id.to_string()));
    assert_eq!(c["exp"].as_i64().unwrap(), expires.timestamp());
    assert!(claims(&a.access).get("imp").is_none());
    let session: String = s.body["session_id"].as_str().unwrap().to_string();
    let refresh_tokens: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM auth_refresh_tokens WHERE session_id = $1")
            .bind(&session)
            .fetch_one(&api.state.projections.db().pool)
            .await
            .unwrap();
    assert_eq!(refresh_tokens, 0);
    // One session at a time per athlete.
    assert_problem(&start(&owner, &a, ticket.clone()).await, 409);

    // Every response in the session is marked, errors too; the athlete's own are not.
    let me = api.send("GET", "/v1/me", Some(&token), None).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(
        me.headers["x-impersonated-by"],
        admin.id.to_string().as_str()
    );
    let missing = api
        .send(
            "GET",
            &format!("/v1/activities/{}", uuid::Uuid::new_v4()),
            Some(&token),
            None,
        )
        .await;
    assert_problem(&missing, 404);
    assert_eq!(
        missing.headers["x-impersonated-by"],
        admin.id.to_string().as_str()
    );
    let own = api.send("GET", "/v1/me", Some(&a.access), None).await;
    assert!(own.headers.get("x-impersonated-by").is_none());
    // The athlete's own acts stay theirs; admin routes stay closed (the role is the athlete's).
    let password = api
        .send(
            "POST",
            "/v1/auth/password",
            Some(&token),
            Some(json!({"current_password": PASSWORD, "new_password": "another password 9"})),
        )
        .await;
    assert_problem(&password, 403);
    let grant = api
        .send(
            "POST",
            &format!("/v1/me/coaches/{}", admin.id),
            Some(&token),
            None,
        )
        .await;
    assert_problem(&grant, 403);
    assert_problem(
        &api.send("GET", "/v1/admin/users", Some(&token), None).await,
        403,
    );

    // What the admin writes carries them as impersonator.
    let w = api
        .send(
            "PUT",
            "/v1/checkins/2026-03-02",
            Some(&token),
            Some(json!({"sleep_h": 7.0})),
        )
        .await;
    assert_eq!(w.status, 200, "{}", w.body);
    assert_eq!(
        w.headers["x-impersonated-by"],
        admin.id.to_string().as_str()
    );
    let trail = audit(w.position(), "DailyCheckInLogged").await;
    let written = trail.last().unwrap();
    assert_eq!(
        written["impersonator_id"],
        json!(admin.id.to_string()),
        "{trail:?}"
    );
    assert_eq!(written["actor_id"], json!(a.id.to_string()));
    let started = audit(w.position(), "ImpersonationStarted").await;
    assert_eq!(started.len(), 1);
    assert_eq!(started[0]["actor_id"], json!(admin.id.to_string()));

    // The athlete sees it happen, and the owner's two reads of their trail.
    let log = api
        .send("GET", "/v1/me/access-log", Some(&a.access), None)
        .await;
    assert_eq!(log.status, 200, "{}", log.body);
    let seen = |log: &Value| -> Vec<(String, String, String)> {
        log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["kind"].as_str().unwrap().to_string(),
                    e["admin_id"].as_str().unwrap_or("system").to_string(),
                    e["detail"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let (o, ad) = (owner.id.to_string(), admin.id.to_string());
    let view = |by: &str| {
        (
            "admin_viewed".to_string(),
            by.to_string(),
            "audit".to_string(),
        )
    };
    assert_eq!(
        seen(&log.body),
        [
            view(&o),
            view(&o),
            (
                "impersonation_started".into(),
                ad.clone(),
                "support_ticket".into()
            ),
        ]
    );
    assert_eq!(
        api.send("GET", "/v1/me/access-log?limit=0", Some(&a.access), None)
            .await
            .status,
        422
    );

    // Ended with its own token: the token dies, the end is an event.
    let ended = api
        .send("DELETE", "/v1/me/impersonation", Some(&token), None)
        .await;
    assert_eq!(ended.status, 200, "{}", ended.body);
    assert_problem(&api.send("GET", "/v1/me", Some(&token), None).await, 401);
    assert_eq!(audit(ended.position(), "ImpersonationEnded").await.len(), 1);
    assert_problem(
        &api.send("DELETE", "/v1/me/impersonation", Some(&a.access), None)
            .await,
        404,
    );
    let log = api
        .send("GET", "/v1/me/access-log", Some(&a.access), None)
        .await;
    assert_eq!(
        seen(&log.body)[..2],
        [
            view(&o),
            ("impersonation_ended".into(), ad.clone(), String::new()),
        ]
    );
    let page = api
        .send("GET", "/v1/me/access-log?limit=2", Some(&a.access), None)
        .await;
    let next = page.body["next_before"].as_i64().unwrap();
    let rest = api
        .send(
            "GET",
            &format!("/v1/me/access-log?before={next}"),
            Some(&a.access),
            None,
        )
        .await;
    assert_eq!(seen(&rest.body).len(), 3, "{}", rest.body);

    // Expiry: a session past its end answers 401, however fresh its token looks.
    let s = start(&owner, &a, json!({"reason": "data_fix"})).await;
    assert_eq!(s.status, 201, "{}", s.body);
    let token = s.body["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        api.send("GET", "/v1/me", Some(&token), None).await.status,
        200
    );
    sqlx::query("UPDATE auth_sessions SET expires_at_us = $1 WHERE session_id = $2")
        .bind(chrono::Utc::now().timestamp_micros() - 1)
        .bind(s.body["session_id"].as_str().unwrap())
        .execute(&api.state.projections.db().pool)
        .await
        .unwrap();
    assert_problem(&api.send("GET", "/v1/me", Some(&token), None).await, 401);
    api.stop().await;
}

async fn data_injection_is_a_dry_run_then_a_confirmed_write(t: TestStore) {
    let api = Api::start(t).await;
    let admin = staff(&api, "root@example.org", Role::Admin).await;
    let owner = staff(&api, "boss@example.org", Role::Owner).await;
    let a = api.register("a@example.org", "athlete").await;
    let inject = |who: &Account, target: &Account, body: Value| {
        let path = format!("/v1/admin/users/{}/inject", target.id);
        let token = who.access.clone();
        let api = &api;
        async move { api.send("POST", &path, Some(&token), Some(body)).await }
    };
    let events_of_a = || async { api.t.store.read_athlete(a.id, None).await.unwrap().len() };
    let before = events_of_a().await;
    let request = json!({
        "reason": "support_fix", "method": "PUT", "path": "/v1/checkins/2026-03-02",
        "body": {"sleep_h": 7.5, "notes": "entered by support"}
    });

    // Refusals change nothing: the athlete route's own validation comes back unchanged.
    let mut bad_value = request.clone();
    bad_value["body"]["sleep_h"] = json!(99);
    let r = inject(&admin, &a, bad_value).await;
    assert_problem(&r, 422);
    assert_eq!(r.body["errors"][0]["field"], "sleep_h", "{}", r.body);
    let mut prose = request.clone();
    prose["reason"] = json!("Fixing their data");
    assert_problem(&inject(&admin, &a, prose).await, 422);
    for (method, path) in [
        ("POST", "/v1/auth/password"),
        ("DELETE", "/v1/me"),
        ("PUT", "/v1/checkins/2026-03-02/../../me"),
        ("GET", "/v1/checkins/2026-03-02"),
    ] {
        let mut other = request.clone();
        other["method"] = json!(method);
        other["path"] = json!(path);
        let r = inject(&admin, &a, other).await;
        assert_problem(&r, 422);
        assert_eq!(r.body["errors"][0]["field"], "path", "{path}");
    }
    assert_problem(&inject(&admin, &owner, request.clone()).await, 403);
    assert_problem(&inject(&admin, &admin, request.clone()).await, 403);
    assert_eq!(events_of_a().await, before);

    // The dry run: what would be appended, and a token; nothing appended.
    let dry = inject(&admin, &a, request.clone()).await;
    assert_eq!(dry.status, 200, "{}", dry.body);
    assert_eq!(dry.body["dry_run"], true);
    assert_eq!(dry.body["events"], json!(["DailyCheckInLogged"]));
    assert!(dry.body["position"].is_null());
    let expires: chrono::DateTime<chrono::Utc> =
        dry.body["expires_at"].as_str().unwrap().parse().unwrap();
    let within = expires - chrono::Utc::now();
    assert!(within <= chrono::Duration::minutes(5) && within > chrono::Duration::minutes(4));
    assert_eq!(events_of_a().await, before);
    assert_problem(
        &api.send("GET", "/v1/checkins/2026-03-02", Some(&a.access), None)
            .await,
        404,
    );
    let token = dry.body["confirmation_token"].as_str().unwrap().to_string();

    // The token is for this admin and this request only.
    let mut changed = request.clone();
    changed["body"]["sleep_h"] = json!(9.0);
    changed["confirmation_token"] = json!(token);
    let r = inject(&admin, &a, changed).await;
    assert_problem(&r, 422);
    assert_eq!(r.body["errors"][0]["field"], "confirmation_token");
    let mut confirmed = request.clone();
    confirmed["confirmation_token"] = json!(token);
    assert_problem(&inject(&owner, &a, confirmed.clone()).await, 422);
    assert_eq!(events_of_a().await, before);

    // Confirmed: appended once, marked, visible to the athlete.
    let done = inject(&admin, &a, confirmed.clone()).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.body["dry_run"], false);
    assert_eq!(done.body["events"], json!(["DailyCheckInLogged"]));
    let marker_at = done.body["position"].as_i64().unwrap();
    assert_problem(&inject(&admin, &a, confirmed).await, 409);
    assert_eq!(events_of_a().await, before + 2);
    let day = api
        .send_full(
            "GET",
            "/v1/checkins/2026-03-02",
            Some(&a.access),
            None,
            None,
            &[("x-min-position", marker_at.to_string())],
        )
        .await;
    assert_eq!(day.status, 200, "{}", day.body);
    assert_eq!(day.body["sleep_h"], 7.5, "{}", day.body);
    let trail = api
        .send_full(
            "GET",
            &format!("/v1/admin/users/{}/audit?since=2000-01-01T00:00:00Z", a.id),
            Some(&owner.access),
            None,
            None,
            &[("x-min-position", marker_at.to_string())],
        )
        .await;
    let trail = trail.body.as_array().unwrap();
    let written = trail
        .iter()
        .find(|e| e["event_type"] == "DailyCheckInLogged")
        .unwrap();
    let marker = trail
        .iter()
        .find(|e| e["event_type"] == "AdminDataInjected")
        .unwrap();
    assert_eq!(written["impersonator_id"], json!(admin.id.to_string()));
    assert_eq!(written["actor_id"], json!(a.id.to_string()));
    assert_eq!(marker["actor_id"], json!(admin.id.to_string()));
    assert_eq!(written["correlation_id"], marker["correlation_id"]);
    let rows = security_rows(&api, &owner.access, &a, "data_injected").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["actor_id"], json!(admin.id.to_string()));

    api.stop().await;
}

async fn aggregates_suppress_small_groups_and_name_nobody(t: TestStore) {
    let api = Api::start(t).await;
    let admin = staff(&api, "root@example.org", Role::Admin).await;
    // Twelve women in their thirties and three men in their forties, one run each.
    let mut efs = Vec::new();
    let mut last = 0;
    for i in 0..15 {
        let (sex, birth) = if i < 12 {
            ("female", "1990-05-01")
        } else {
            ("male", "1980-05-01")
        };
        let a = api.register(&format!("r{i}@example.org"), "athlete").await;
        let r = api
            .send(
                "PATCH",
                "/v1/me",
                Some(&a.access),
                Some(json!({"physiology": {"sex": sex, "birth_date": birth}})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let run = api
            .send(
                "POST",
                "/v1/activities",
                Some(&a.access),
                Some(json!({"sport": "run", "start_time": "2026-03-02T07:00:00Z",
                    "distance_m": 8000.0 + 250.0 * f64::from(i), "moving_time_s": 2700.0,
                    "avg_hr_bpm": 140.0 + f64::from(i)})),
            )
            .await;
        assert_eq!(run.status, 201, "{}", run.body);
        last = last.max(run.position());
        let ef = api
            .send_full(
                "GET",
                &format!(
                    "/v1/activities/{}/efficiency",
                    run.body["id"].as_str().unwrap()
                ),
                Some(&a.access),
                None,
                None,
                &[("x-min-position", last.to_string())],
            )
            .await;
        assert_eq!(ef.status, 200, "{}", ef.body);
        if i < 12 {
            efs.push(ef.body["efficiency_factor"].as_f64().expect("an EF"));
        }
    }
    efs.sort_by(f64::total_cmp);
    let expected_median = (efs[5] + efs[6]) / 2.0;

    let get = |path: &str| {
        let api = &api;
        let token = admin.access.clone();
        let path = path.to_string();
        async move { api.send("GET", &path, Some(&token), None).await }
    };
    let catalogue = get("/v1/admin/aggregates").await;
    assert_eq!(catalogue.status, 200, "{}", catalogue.body);
    assert_eq!(catalogue.body.as_array().unwrap().len(), 3);
    let ef = get("/v1/admin/aggregates/median_ef_by_age_band_and_sex").await;
    assert_eq!(ef.status, 200, "{}", ef.body);
    assert_eq!(
        ef.body["cells"],
        json!([
            {"group": ["30_39", "female"], "athletes": 12, "value": expected_median,
             "suppressed": false},
            {"group": ["40_49", "male"], "athletes": null, "value": null, "suppressed": true},
        ])
    );
    let counts = get("/v1/admin/aggregates/athletes_by_age_band_and_sex").await;
    assert_eq!(counts.body["cells"][0]["athletes"], 12, "{}", counts.body);
    // Sixteen athletes: the admin's profile is an athlete's here (the test set the role on
    // the identity row only), with no age or sex given.
    assert_eq!(counts.body["cells"][0]["value"], 12.0 / 16.0);
    assert_eq!(counts.body["cells"][1]["suppressed"], true);
    assert_eq!(
        counts.body["cells"][2]["group"],
        json!(["unknown", "unknown"])
    );
    assert_eq!(counts.body["cells"][2]["suppressed"], true);
    // Nobody has a correlation snapshot: one suppressed cell.
    let sleep = get("/v1/admin/aggregates/share_with_sleep_finding").await;
    assert_eq!(sleep.body["cells"][0]["suppressed"], true, "{}", sleep.body);
    // No id of anyone, anywhere in an answer.
    for body in [&ef.body, &counts.body, &sleep.body] {
        let text = body.to_string();
        assert!(
            !text.contains(&admin.id.to_string()) && !text.contains("@example.org"),
            "{text}"
        );
    }
    assert_problem(&get("/v1/admin/aggregates/everything").await, 404);
    api.stop().await;
}

store::on_both_backends!(
    aggregates_suppress_small_groups_and_name_nobody,
    data_injection_is_a_dry_run_then_a_confirmed_write,
    impersonation_is_short_marked_and_visible,
    the_user_list_filters_and_pages,
    suspension_ends_sessions_and_login_until_reinstated,
    role_changes_follow_the_rules,
    audit_and_replay_read_history_over_http,
    metrics_and_health_in_detail,
);

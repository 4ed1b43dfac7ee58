//! The access-policy matrix: every route in `api::ROUTES`, called by six callers (anonymous,
//! athlete A who owns the objects in the paths, athlete B, a coach without A's grant, a coach
//! with it, an admin, an owner), each cell asserting its status. A route without a row here, or a row
//! without a route, fails the test; so does a route the router serves without a policy.

mod common;

use std::collections::BTreeSet;

use common::{Account, Api, PASSWORD};
use serde_json::{Value, json};
use store::testing::TestStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    B,
    CoachWithoutGrant,
    CoachWithGrant,
    Admin,
    Owner,
    /// Last in each row: A's own requests may change what the others would see.
    A,
}

const CALLERS: [Who; 7] = [
    Who::Anonymous,
    Who::B,
    Who::CoachWithoutGrant,
    Who::CoachWithGrant,
    Who::Admin,
    Who::Owner,
    Who::A,
];

/// Fixed ids and dates of A's objects.
struct Fixture {
    activity: String,
    entry: String,
    job: String,
    export: String,
    a: Account,
    b: Account,
    coach: Account,
    granted_coach: Account,
    admin: Account,
    owner: Account,
    /// The athlete the admin routes act on: none of the callers, so a suspension ends nobody's
    /// session in the matrix.
    target: Account,
}

const LOGGED: &str = "2026-03-02";
const UNLOGGED: &str = "2026-03-03";

fn row(method: &'static str, template: &'static str) -> (&'static str, &'static str) {
    (method, template)
}

/// The concrete request for a route, and the status each caller must get.
fn cell(f: &Fixture, method: &str, template: &str, who: Who) -> (String, Option<Value>, u16) {
    let path = template
        .replace("{activity_id}", &f.activity)
        .replace("{entry_id}", &f.entry)
        .replace("{job_id}", &f.job)
        .replace("{export_id}", &f.export)
        .replace("{athlete_id}", &f.a.id.to_string())
        .replace("{account_id}", &f.target.id.to_string())
        .replace("{query_id}", "median_ef_by_age_band_and_sex")
        .replace("{coach_id}", &f.granted_coach.id.to_string())
        .replace("{step}", "goals")
        .replace("{day}", "monday")
        .replace("{block}", "morning")
        .replace("{*rest}", "swagger-ui.css");
    // GETs of a date read the one A logged; PUTs write another date, so the others' writes
    // do not make A's date appear in their own data.
    let path = if method == "GET" {
        path.replace("{date}", LOGGED)
    } else {
        path.replace("{date}", UNLOGGED)
    };
    let path = if template.ends_with("/replay") {
        format!("{path}?at=2030-01-01T00:00:00Z")
    } else if template == "/v1/exports/download" {
        format!("{path}?token={}", "0".repeat(64))
    } else {
        path
    };
    let body = body_for(method, template, who);
    if let Some(expected) = console_cell(method, template, who) {
        return (path, None, expected);
    }
    let is_a = who == Who::A;
    let signed_in = who != Who::Anonymous;
    // Objects in the path belong to A: everyone else sees nothing there.
    let owns_object = |ok: u16| if is_a { ok } else { 404 };
    let expected = match (method, template) {
        ("GET", "/health" | "/health/live" | "/openapi.json" | "/docs/" | "/docs/{*rest}") => 200,
        ("GET", "/docs") => 303,
        // A link nobody was given: for anyone, signed in or not, there is nothing there.
        ("GET", "/v1/exports/download") => 404,
        ("POST", "/v1/auth/register") => 201,
        ("POST", "/v1/auth/login") => 200,
        ("POST", "/v1/auth/refresh") => 401,
        ("POST", "/v1/auth/logout") => 204,
        _ if !signed_in => 401,
        (_, t) if t.starts_with("/v1/admin/") => match who {
            Who::Admin | Who::Owner => match t {
                // The admin's change comes first; the owner finds it done.
                "/v1/admin/users/{account_id}/suspend"
                | "/v1/admin/users/{account_id}/reinstate"
                | "/v1/admin/users/{account_id}/impersonate"
                    if who == Who::Owner =>
                {
                    409
                }
                "/v1/admin/users/{account_id}/impersonate" => 201,
                _ => 200,
            },
            _ => 403,
        },
        ("POST", "/v1/auth/password") => 204,
        // Reached, and refused: every caller sends a wrong password, so the fixture (A last)
        // survives; tests/erasure.rs erases for real.
        ("DELETE", "/v1/me") => 401,
        ("POST", "/v1/activities") => 201,
        // Reached, and refused for want of a multipart body (tests/import.rs sends files).
        ("POST", "/v1/activities/import") => 415,
        ("POST", "/v1/correlations/recompute") => 202,
        ("POST", "/v1/nutrition" | "/v1/nutrition/presets") => 201,
        // Reached, and refused: nobody here has a correlation snapshot, so there is no finding
        // to rate (api/tests/correlations.rs rates a real one).
        ("POST", "/v1/insights/feedback") => 422,
        ("GET", "/v1/checkins/{date}" | "/v1/work/{date}" | "/v1/body/{date}") => owns_object(200),
        ("POST", "/v1/activities/{activity_id}/feedback") => owns_object(201),
        (_, t) if t.contains("{activity_id}") && !t.starts_with("/v1/coach") => owns_object(200),
        (_, t) if t.contains("{entry_id}") || t.contains("{job_id}") => owns_object(200),
        ("GET", "/v1/me/export/{export_id}") => owns_object(200),
        ("POST", "/v1/me/export") => 202,
        // A coach cannot coach themselves; anyone else may grant and then revoke.
        ("POST" | "DELETE", "/v1/me/coaches/{coach_id}") if who == Who::CoachWithGrant => 404,
        ("POST" | "DELETE", "/v1/me/coaches/{coach_id}") => 200,
        ("GET", "/v1/coach/athletes") => {
            if matches!(who, Who::CoachWithGrant | Who::CoachWithoutGrant) {
                200
            } else {
                403
            }
        }
        (_, t) if t.starts_with("/v1/coach/athletes/{athlete_id}") => {
            if who == Who::CoachWithGrant { 200 } else { 404 }
        }
        // Nobody here is in an impersonation session (tests/admin.rs opens one).
        ("DELETE", "/v1/me/impersonation") => 404,
        _ => 200,
    };
    (path, body, expected)
}

/// The admin console's rows: the caller's access token goes in the console's cookie (see
/// [`console_headers`]). Forms are sent without their CSRF token, so an admin's POST is
/// refused (403) before it changes anything; api/tests/console.rs sends real forms.
fn console_cell(method: &str, template: &str, who: Who) -> Option<u16> {
    if !template.starts_with("/admin") {
        return None;
    }
    let admin = matches!(who, Who::Admin | Who::Owner);
    Some(match (method, template) {
        ("GET", "/admin/login" | "/admin/console.css") => 200,
        // The login form's own CSRF cookie is missing.
        ("POST", "/admin/login") => 403,
        // Anonymous: nothing to end, back to the login page; signed in: no CSRF token.
        ("POST", "/admin/logout") if who == Who::Anonymous => 303,
        ("POST", "/admin/logout") => 403,
        _ if who == Who::Anonymous => 303,
        _ if !admin => 403,
        ("GET", "/admin") => 303,
        ("POST", _) => 403,
        _ => 200,
    })
}

fn console_headers(template: &str, token: Option<&str>) -> Vec<(&'static str, String)> {
    match token {
        Some(t) if template.starts_with("/admin") => {
            vec![("cookie", format!("stridelog_console_access={t}"))]
        }
        _ => Vec::new(),
    }
}

fn body_for(method: &str, template: &str, who: Who) -> Option<Value> {
    let unique = format!("{who:?}-{}", uuid::Uuid::new_v4().simple()).to_lowercase();
    Some(match (method, template) {
        ("POST", "/v1/auth/register") => json!({
            "email": format!("new-{unique}@example.org"), "password": PASSWORD, "display_name": "New"
        }),
        ("POST", "/v1/auth/login") => json!({"email": "a@example.org", "password": PASSWORD}),
        ("POST", "/v1/auth/refresh" | "/v1/auth/logout") => {
            json!({"refresh_token": "not-a-refresh-token"})
        }
        ("POST", "/v1/auth/password") => {
            json!({"current_password": PASSWORD, "new_password": PASSWORD})
        }
        ("PATCH", "/v1/me") => json!({"display_name": "Renamed", "units": "metric"}),
        ("DELETE", "/v1/me") => json!({"password": "not the password"}),
        ("PATCH", "/v1/me/preferences") => json!({"timezone": "Europe/Paris"}),
        ("POST", "/v1/me/onboarding/{step}") => {
            json!({"action": "complete", "goals": ["run_faster"]})
        }
        ("POST", "/v1/activities") => json!({
            "sport": "run", "start_time": "2026-03-01T07:00:00Z", "distance_m": 10000.0,
            "moving_time_s": 3000.0, "splits": [{"distance_m": 5000.0, "moving_time_s": 1500.0}]
        }),
        ("PATCH", "/v1/activities/{activity_id}") => json!({"name": "Renamed run"}),
        ("PUT", "/v1/activities/{activity_id}/workout-type") => json!({"workout_type": "easy"}),
        ("POST" | "PUT", "/v1/activities/{activity_id}/feedback") => {
            json!({"effort": 5, "leg_feel": 4})
        }
        ("PUT", "/v1/checkins/{date}") => json!({"sleep_h": 7.0, "stress": 2}),
        ("POST", "/v1/nutrition") => json!({
            "date": LOGGED, "entry_type": "daily", "calories_kcal": 500.0
        }),
        ("PATCH", "/v1/nutrition/{entry_id}") => json!({"protein_g": 30.0}),
        ("POST", "/v1/nutrition/presets") => json!({
            "name": "Oats", "nutrients": {"calories_kcal": 350.0, "protein_g": 12.0}
        }),
        ("PUT", "/v1/work/{date}") => json!({"work_type": "desk", "hours_worked_h": 8.0}),
        ("PUT", "/v1/body/{date}") => json!({"weight_kg": 61.5}),
        ("PUT", "/v1/availability") => {
            let day =
                json!({"morning": "available", "afternoon": "unavailable", "evening": "preferred"});
            json!({"monday": day, "tuesday": day, "wednesday": day, "thursday": day,
                   "friday": day, "saturday": day, "sunday": day})
        }
        ("PATCH", "/v1/availability/{day}/{block}") => json!({"status": "preferred"}),
        ("POST", "/v1/insights/feedback") => json!({"insight_id": "sleep-ef", "helpful": true}),
        ("POST", "/v1/admin/users/{account_id}/suspend") => json!({"reason": "other"}),
        ("PUT", "/v1/admin/users/{account_id}/role") => json!({"role": "coach"}),
        ("POST", "/v1/admin/users/{account_id}/impersonate") => {
            json!({"reason": "support_ticket"})
        }
        // A dry run: answered, nothing appended.
        ("POST", "/v1/admin/users/{account_id}/inject") => json!({
            "reason": "support_fix", "method": "PUT", "path": format!("/v1/checkins/{UNLOGGED}"),
            "body": {"sleep_h": 7.0}
        }),
        _ => return None,
    })
}

async fn fixture(api: &Api) -> Fixture {
    let a = api.register("a@example.org", "athlete").await;
    let b = api.register("b@example.org", "athlete").await;
    let coach = api.register("coach1@example.org", "coach").await;
    let granted_coach = api.register("coach2@example.org", "coach").await;
    let admin = api.register("admin@example.org", "athlete").await;
    let owner = api.register("owner@example.org", "athlete").await;
    let target = api.register("target@example.org", "athlete").await;
    for (account, role) in [
        (&admin, domain::athlete::Role::Admin),
        (&owner, domain::athlete::Role::Owner),
    ] {
        api.state.auth.db.set_role(account.id, role).await.unwrap();
    }
    let created = api
        .send(
            "POST",
            "/v1/activities",
            Some(&a.access),
            Some(json!({"sport": "run", "start_time": "2026-03-02T07:00:00Z",
                        "distance_m": 8000.0, "moving_time_s": 2700.0, "avg_hr_bpm": 140.0})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let entry = api
        .send(
            "POST",
            "/v1/nutrition",
            Some(&a.access),
            Some(json!({"date": LOGGED, "entry_type": "daily", "calories_kcal": 2100.0})),
        )
        .await;
    assert_eq!(entry.status, 201, "{}", entry.body);
    for (path, body) in [
        (
            format!("/v1/checkins/{LOGGED}"),
            json!({"sleep_h": 8.0, "readiness": 4}),
        ),
        (
            format!("/v1/work/{LOGGED}"),
            json!({"work_type": "desk", "hours_worked_h": 7.5}),
        ),
        (format!("/v1/body/{LOGGED}"), json!({"weight_kg": 60.2})),
    ] {
        let r = api.send("PUT", &path, Some(&a.access), Some(body)).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    let grant = api
        .send(
            "POST",
            &format!("/v1/me/coaches/{}", granted_coach.id),
            Some(&a.access),
            None,
        )
        .await;
    assert_eq!(grant.status, 200, "{}", grant.body);
    // Every read below sees the fixture.
    api.state
        .projections
        .wait_for(
            &["profile", "journal", "activities"],
            grant.position(),
            std::time::Duration::from_secs(10),
        )
        .await
        .unwrap();
    let job = api
        .send("POST", "/v1/correlations/recompute", Some(&a.access), None)
        .await;
    assert_eq!(job.status, 202, "{}", job.body);
    let export = api
        .send("POST", "/v1/me/export", Some(&a.access), None)
        .await;
    assert_eq!(export.status, 202, "{}", export.body);
    Fixture {
        export: export.body["job_id"].as_str().unwrap().to_string(),
        activity: created.body["id"].as_str().unwrap().to_string(),
        entry: entry.body["id"].as_str().unwrap().to_string(),
        job: job.body["job_id"].as_str().unwrap().to_string(),
        a,
        b,
        coach,
        granted_coach,
        admin,
        owner,
        target,
    }
}

/// Deletions run last (and the feedback before its activity), so that every other row still
/// finds A's objects.
fn ordered_routes() -> Vec<(&'static str, &'static str)> {
    let mut routes: Vec<_> = api::ROUTES.iter().map(|(m, p, _)| row(m, p)).collect();
    let rank = |(m, p): &(&str, &str)| match (*m, *p) {
        ("DELETE", "/v1/activities/{activity_id}") => 3,
        ("DELETE", _) => 2,
        // A coach's grant is revoked by a DELETE row; their reads come before it anyway.
        _ => 0,
    };
    routes.sort_by_key(rank);
    routes
}

async fn every_route_answers_every_caller_as_declared(t: TestStore) {
    let api = Api::start(t).await;
    let f = fixture(&api).await;
    let mut failures = Vec::new();
    // Reads name the last write's position (as the X-Min-Position header), so a read never
    // races the projector for what the row before it wrote.
    let mut last_position = 0i64;
    for (method, template) in ordered_routes() {
        for who in CALLERS {
            let token = match who {
                Who::Anonymous => None,
                Who::A => Some(f.a.access.as_str()),
                Who::B => Some(f.b.access.as_str()),
                Who::CoachWithoutGrant => Some(f.coach.access.as_str()),
                Who::CoachWithGrant => Some(f.granted_coach.access.as_str()),
                Who::Admin => Some(f.admin.access.as_str()),
                Who::Owner => Some(f.owner.access.as_str()),
            };
            let (path, body, expected) = cell(&f, method, template, who);
            let mut headers = console_headers(template, token);
            if method == "GET" {
                headers.push(("x-min-position", last_position.to_string()));
            }
            let r = api
                .send_full(method, &path, token, body, None, &headers)
                .await;
            if let Some(p) = r.body.get("position").and_then(Value::as_i64) {
                last_position = last_position.max(p);
            }
            if r.status.as_u16() != expected {
                failures.push(format!(
                    "{method} {path} as {who:?}: expected {expected}, got {} {}",
                    r.status, r.body
                ));
            }
            // The console answers in HTML.
            if r.status.as_u16() >= 400 && !template.starts_with("/admin") {
                assert_eq!(
                    r.headers["content-type"], "application/problem+json",
                    "{method} {path} as {who:?}"
                );
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    api.stop().await;
}

/// The policy table and the router agree in both directions.
#[test]
fn every_served_route_has_a_policy_and_every_policy_a_route() {
    let (_, doc) = api::api_router().split_for_parts();
    let doc = serde_json::to_value(&doc).unwrap();
    let mut served = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            served.insert((method.to_uppercase(), path.clone()));
        }
    }
    // Served outside the OpenAPI document: the documentation itself, and the admin console
    // (api/src/console, HTML for people).
    for (m, p) in [
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
        ("GET", "/docs/"),
        ("GET", "/docs/{*rest}"),
        ("GET", "/admin"),
        ("GET", "/admin/login"),
        ("POST", "/admin/login"),
        ("POST", "/admin/logout"),
        ("GET", "/admin/console.css"),
        ("GET", "/admin/users"),
        ("GET", "/admin/users/{account_id}"),
        ("POST", "/admin/users/{account_id}/suspend"),
        ("POST", "/admin/users/{account_id}/reinstate"),
        ("POST", "/admin/users/{account_id}/impersonate"),
        ("GET", "/admin/users/{account_id}/audit"),
        ("GET", "/admin/health"),
        ("GET", "/admin/metrics"),
        ("GET", "/admin/aggregates"),
    ] {
        served.insert((m.to_string(), p.to_string()));
    }
    let declared: BTreeSet<(String, String)> = api::ROUTES
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    let missing: Vec<_> = served.difference(&declared).collect();
    let stale: Vec<_> = declared.difference(&served).collect();
    assert!(missing.is_empty(), "served without a policy: {missing:?}");
    assert!(stale.is_empty(), "policies without a route: {stale:?}");
}

/// Non-public operations carry the bearer requirement and a documented 401 in the spec.
#[test]
fn the_spec_states_each_routes_security() {
    let api_doc = {
        let (_, doc) = api::api_router().split_for_parts();
        serde_json::to_value(api::openapi::finish(doc)).unwrap()
    };
    assert_eq!(api_doc["openapi"], "3.1.0");
    for (method, path, access) in api::ROUTES {
        let Some(op) = api_doc["paths"][path].get(method.to_lowercase()) else {
            continue;
        };
        let secured = op.get("security").is_some();
        assert_eq!(
            secured,
            *access != api::Access::Public,
            "{method} {path} security"
        );
        if *access != api::Access::Public {
            assert!(op["responses"].get("401").is_some(), "{method} {path} 401");
        }
    }
}

store::on_both_backends!(every_route_answers_every_caller_as_declared);

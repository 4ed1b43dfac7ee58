//! Partial updates are merged on the write side: a burst of concurrent PATCHes of two different
//! fields of one object (the profile, a nutrition entry, an availability slot pair, an activity)
//! all answer 2xx, and afterwards each field holds the value of its last write in log order.
//! No write reverts another's field, whichever order they commit in.

mod common;

use common::Api;
use futures::future::join_all;
use serde_json::{Value, json};
use store::testing::TestStore;

/// Writes per field.
const N: usize = 50;

/// One burst at a time in this binary: each measures contention on one stream, and four bursts
/// at once on the test machine only measure its connection pools.
static ONE_BURST: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A read after the burst. The server waits at most 5 s for `min_position` (then 503); a burst
/// leaves the projector a few hundred events behind, so ask again until it has caught up.
async fn read(api: &Api, token: &str, path: &str) -> Value {
    for _ in 0..24 {
        let r = api.send("GET", path, Some(token), None).await;
        if r.status != 503 {
            assert_eq!(r.status, 200, "GET {path}: {}", r.body);
            return r.body;
        }
    }
    panic!("GET {path}: the read models did not catch up in 2 minutes");
}

/// Sends every `(path, body)` at once, asserts each answered 200, and returns, per field
/// (0 or 1), the value written by the write with the highest log position.
async fn burst(
    api: &Api,
    token: &str,
    writes: Vec<(usize, String, Value, Value)>,
) -> (Option<Value>, Option<Value>, i64) {
    let _one = ONE_BURST.lock().await;
    let replies = join_all(
        writes
            .iter()
            .map(|(_, path, body, _)| api.send("PATCH", path, Some(token), Some(body.clone()))),
    )
    .await;
    let mut last: [Option<(i64, Value)>; 2] = [None, None];
    let mut max = 0;
    for ((field, path, body, value), r) in writes.into_iter().zip(replies) {
        assert_eq!(r.status, 200, "PATCH {path} {body}: {}", r.body);
        // A write that changed nothing has no position and cannot be the last one.
        let Some(position) = r.body["position"].as_i64() else {
            continue;
        };
        max = max.max(position);
        if last[field].as_ref().is_none_or(|(p, _)| position > *p) {
            last[field] = Some((position, value));
        }
    }
    let [a, b] = last;
    (a.map(|(_, v)| v), b.map(|(_, v)| v), max)
}

fn goals(i: usize) -> Vec<&'static str> {
    const ALL: [&str; 6] = [
        "improve_efficiency",
        "run_faster",
        "lose_weight",
        "build_endurance",
        "race_performance",
        "general_fitness",
    ];
    // Distinct non-empty subsets for i in 0..63, in the order the API lists them.
    ALL.iter()
        .enumerate()
        .filter(|(bit, _)| (i + 1) & (1 << bit) != 0)
        .map(|(_, g)| *g)
        .collect()
}

async fn concurrent_profile_patches_all_land(t: TestStore) {
    let api = Api::start(t).await;
    let a = api.register("burst@example.org", "athlete").await;
    let mut writes = Vec::new();
    for i in 0..N {
        let name = format!("Runner {i}");
        writes.push((
            0,
            "/v1/me".to_string(),
            json!({"display_name": name}),
            json!(name),
        ));
        writes.push((
            1,
            "/v1/me".to_string(),
            json!({"goals": goals(i)}),
            json!(goals(i)),
        ));
    }
    let (name, goals, max) = burst(&api, &a.access, writes).await;
    let me = read(&api, &a.access, &format!("/v1/me?min_position={max}")).await;
    assert_eq!(me["display_name"], name.unwrap(), "{me}");
    assert_eq!(me["goals"], goals.unwrap(), "{me}");
    api.stop().await;
}

async fn concurrent_nutrition_patches_all_land(t: TestStore) {
    let api = Api::start(t).await;
    let a = api.register("fuel@example.org", "athlete").await;
    let created = api
        .send(
            "POST",
            "/v1/nutrition",
            Some(&a.access),
            Some(
                json!({"date": "2026-03-01", "entry_type": "daily", "calories_kcal": 500.0,
                "protein_g": 0.5, "carbohydrate_g": 0.5}),
            ),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let path = format!("/v1/nutrition/{}", created.body["id"].as_str().unwrap());
    let mut writes = Vec::new();
    for i in 1..=N {
        let grams = i as f64;
        writes.push((0, path.clone(), json!({"protein_g": grams}), json!(grams)));
        writes.push((
            1,
            path.clone(),
            json!({"carbohydrate_g": grams + 100.0}),
            json!(grams + 100.0),
        ));
    }
    let (protein, carbohydrate, max) = burst(&api, &a.access, writes).await;
    let entry = read(&api, &a.access, &format!("{path}?min_position={max}")).await;
    assert_eq!(entry["protein_g"], protein.unwrap(), "{entry}");
    assert_eq!(entry["carbohydrate_g"], carbohydrate.unwrap(), "{entry}");
    // Untouched fields keep the values they were logged with.
    assert_eq!(entry["calories_kcal"], 500.0, "{entry}");
    api.stop().await;
}

async fn concurrent_slot_patches_all_land(t: TestStore) {
    let api = Api::start(t).await;
    let a = api.register("slots@example.org", "athlete").await;
    const STATUS: [&str; 3] = ["available", "preferred", "unavailable"];
    let mut writes = Vec::new();
    for i in 0..N {
        // Both slots end the burst away from their starting `unavailable` unless their last
        // write says so; which write is last is decided by the log, not by this loop.
        let s = STATUS[i % 3];
        writes.push((
            0,
            "/v1/availability/monday/morning".to_string(),
            json!({"status": s}),
            json!(s),
        ));
        writes.push((
            1,
            "/v1/availability/friday/evening".to_string(),
            json!({"status": s}),
            json!(s),
        ));
    }
    let (monday, friday, max) = burst(&api, &a.access, writes).await;
    let grid = read(
        &api,
        &a.access,
        &format!("/v1/availability?min_position={max}"),
    )
    .await;
    assert_eq!(
        grid["weekly"]["monday"]["morning"],
        monday.unwrap(),
        "{grid}"
    );
    assert_eq!(
        grid["weekly"]["friday"]["evening"],
        friday.unwrap(),
        "{grid}"
    );
    assert_eq!(grid["weekly"]["sunday"]["afternoon"], "unavailable");
    api.stop().await;
}

async fn concurrent_activity_patches_all_land(t: TestStore) {
    let api = Api::start(t).await;
    let a = api.register("laps@example.org", "athlete").await;
    let created = api
        .send(
            "POST",
            "/v1/activities",
            Some(&a.access),
            Some(json!({"sport": "run", "start_time": "2026-03-01T07:00:00Z",
                "distance_m": 10000.0, "moving_time_s": 3000.0})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let path = format!("/v1/activities/{}", created.body["id"].as_str().unwrap());
    let mut writes = Vec::new();
    for i in 0..N {
        let name = format!("Run {i}");
        let notes = format!("Felt {i}");
        writes.push((0, path.clone(), json!({"name": name}), json!(name)));
        writes.push((1, path.clone(), json!({"notes": notes}), json!(notes)));
    }
    let (name, notes, max) = burst(&api, &a.access, writes).await;
    let activity = read(&api, &a.access, &format!("{path}?min_position={max}")).await;
    assert_eq!(activity["name"], name.unwrap(), "{activity}");
    assert_eq!(activity["notes"], notes.unwrap(), "{activity}");
    api.stop().await;
}

/// Onboarding steps taken at once all count: each is decided against the progress in the
/// stream, and the goals land with their step.
async fn concurrent_onboarding_steps_all_count(t: TestStore) {
    let api = Api::start(t).await;
    let a = api.register("wizard@example.org", "athlete").await;
    let steps = [
        "basic_profile",
        "goals",
        "connect_strava",
        "nutrition_setup",
    ];
    let _one = ONE_BURST.lock().await;
    let requests: Vec<(String, Value)> = steps
        .iter()
        .map(|step| {
            let body = if *step == "goals" {
                json!({"action": "complete", "goals": ["run_faster"]})
            } else {
                json!({"action": "complete"})
            };
            (format!("/v1/me/onboarding/{step}"), body)
        })
        .collect();
    let replies = join_all(
        requests
            .iter()
            .map(|(path, body)| api.send("POST", path, Some(&a.access), Some(body.clone()))),
    )
    .await;
    let mut max = 0;
    for r in &replies {
        assert_eq!(r.status, 200, "{}", r.body);
        max = max.max(r.position());
    }
    let state = read(
        &api,
        &a.access,
        &format!("/v1/me/onboarding?min_position={max}"),
    )
    .await;
    assert_eq!(state["reached"], "work_setup", "{state}");
    assert_eq!(state["completed"], json!(steps), "{state}");
    assert_eq!(state["goals"], json!(["run_faster"]), "{state}");
    api.stop().await;
}

/// `null` clears a nullable field; absent keeps it.
async fn null_clears_and_absent_keeps(t: TestStore) {
    let api = Api::start(t).await;
    let a = api.register("clear@example.org", "athlete").await;
    let tok = Some(a.access.as_str());
    let r = api
        .send(
            "PATCH",
            "/v1/me",
            tok,
            Some(json!({"physiology": {"hr_max_bpm": 188, "height_cm": 170.0}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = api
        .send(
            "PATCH",
            "/v1/me",
            tok,
            Some(json!({"physiology": {"height_cm": null, "resting_hr_bpm": 48}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let me = api
        .send(
            "GET",
            &format!("/v1/me?min_position={}", r.position()),
            tok,
            None,
        )
        .await;
    let p = &me.body["physiology"];
    assert_eq!(
        (&p["hr_max_bpm"], &p["resting_hr_bpm"], &p["height_cm"]),
        (&json!(188), &json!(48), &Value::Null),
        "{}",
        me.body
    );
    // A value that does not fit the merged set is refused and changes nothing.
    let r = api
        .send(
            "PATCH",
            "/v1/me",
            tok,
            Some(json!({"physiology": {"resting_hr_bpm": 190}})),
        )
        .await;
    common::assert_problem(&r, 422);
    // Changing nothing appends nothing.
    let r = api
        .send("PATCH", "/v1/me", tok, Some(json!({"units": "metric"})))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["position"], Value::Null, "{}", r.body);

    let created = api
        .send(
            "POST",
            "/v1/nutrition",
            tok,
            Some(
                json!({"date": "2026-03-01", "entry_type": "daily", "calories_kcal": 500.0,
                "caffeine_mg": 80.0, "notes": "Coffee"}),
            ),
        )
        .await;
    let path = format!("/v1/nutrition/{}", created.body["id"].as_str().unwrap());
    let r = api
        .send(
            "PATCH",
            &path,
            tok,
            Some(json!({"caffeine_mg": null, "notes": "Decaf"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let entry = api
        .send(
            "GET",
            &format!("{path}?min_position={}", r.position()),
            tok,
            None,
        )
        .await;
    assert_eq!(
        (
            &entry.body["calories_kcal"],
            &entry.body["caffeine_mg"],
            &entry.body["notes"]
        ),
        (&json!(500.0), &Value::Null, &json!("Decaf")),
        "{}",
        entry.body
    );
    api.stop().await;
}

store::on_both_backends!(
    concurrent_profile_patches_all_land,
    concurrent_nutrition_patches_all_land,
    concurrent_slot_patches_all_land,
    concurrent_activity_patches_all_land,
    concurrent_onboarding_steps_all_count,
    null_clears_and_absent_keeps,
);

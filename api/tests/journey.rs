//! One athlete end to end: register, onboard, log a week of every kind of data, read it all
//! back through read-your-writes, delete something, read again. Each read passes the
//! position of the write before it, so none of them may race the projector.

mod common;

use common::{Api, assert_problem};
use serde_json::{Value, json};
use store::testing::TestStore;

async fn a_week_of_everything(t: TestStore) {
    let api = Api::start(t).await;
    let a = api.register("runner@example.org", "athlete").await;
    let tok = Some(a.access.as_str());
    let get = |path: String| {
        let api = &api;
        async move {
            let r = api.send("GET", &path, tok, None).await;
            assert_eq!(r.status, 200, "GET {path}: {}", r.body);
            r.body
        }
    };
    let write = |method: &'static str, path: String, body: Value, status: u16| {
        let api = &api;
        async move {
            let r = api.send(method, &path, tok, Some(body)).await;
            assert_eq!(r.status.as_u16(), status, "{method} {path}: {}", r.body);
            r
        }
    };

    // Onboarding: profile, goals (kept), skip Strava, then finish.
    let p = write(
        "PATCH",
        "/v1/me".into(),
        json!({"timezone": "Europe/Paris", "physiology": {"hr_max_bpm": 188, "resting_hr_bpm": 48, "height_cm": 170.0}}),
        200,
    )
    .await
    .position();
    let onboarding = get(format!("/v1/me/onboarding?min_position={p}")).await;
    assert_eq!(onboarding["next_step"], "basic_profile");
    write(
        "POST",
        "/v1/me/onboarding/basic_profile".into(),
        json!({"action": "complete"}),
        200,
    )
    .await;
    write(
        "POST",
        "/v1/me/onboarding/goals".into(),
        json!({"action": "complete", "goals": ["improve_efficiency", "build_endurance"]}),
        200,
    )
    .await;
    let r = write(
        "POST",
        "/v1/me/onboarding/connect_strava".into(),
        json!({"action": "skip"}),
        200,
    )
    .await;
    assert_eq!(r.body["onboarding"]["skipped"], json!(["connect_strava"]));
    assert_eq!(r.body["onboarding"]["next_step"], "nutrition_setup");
    let p = write(
        "POST",
        "/v1/me/onboarding/complete".into(),
        json!({"action": "complete"}),
        200,
    )
    .await
    .position();
    let me = get(format!("/v1/me?min_position={p}")).await;
    assert_eq!(me["preferences"]["timezone"], "Europe/Paris");
    assert_eq!(me["physiology"]["hr_max_bpm"], 188);
    assert_eq!(
        me["goals"],
        json!(["improve_efficiency", "build_endurance"])
    );
    assert_eq!(me["onboarding"]["reached"], "complete");
    assert_problem(
        &api.send(
            "POST",
            "/v1/me/onboarding/goals",
            tok,
            Some(json!({"action": "skip"})),
        )
        .await,
        409,
    );

    // A week: a run every other day, and every kind of journal entry every day.
    let mut activity_ids = Vec::new();
    let mut entry_ids = Vec::new();
    let mut last = 0;
    for day in 1..=7u32 {
        let date = format!("2026-05-{day:02}");
        if day % 2 == 1 {
            let r = write(
                "POST",
                "/v1/activities".into(),
                json!({"sport": "run", "name": format!("Run {day}"),
                       "start_time": format!("{date}T06:30:00Z"),
                       "distance_m": 8000.0 + f64::from(day) * 500.0,
                       "moving_time_s": 2400.0 + f64::from(day) * 150.0,
                       "avg_hr_bpm": 140.0 + f64::from(day),
                       "splits": [{"distance_m": 4000.0, "moving_time_s": 1200.0}]}),
                201,
            )
            .await;
            let id = r.body["id"].as_str().unwrap().to_string();
            assert_eq!(r.headers["location"], format!("/v1/activities/{id}"));
            write(
                "POST",
                format!("/v1/activities/{id}/feedback"),
                json!({"effort": 4 + day as u8 / 2, "leg_feel": 4}),
                201,
            )
            .await;
            activity_ids.push(id);
        }
        write(
            "PUT",
            format!("/v1/checkins/{date}"),
            json!({"sleep_h": 6.5 + f64::from(day) * 0.25, "hrv_ms": 60.0 + f64::from(day), "stress": 2}),
            200,
        )
        .await;
        let r = write(
            "POST",
            "/v1/nutrition".into(),
            json!({"date": date, "entry_type": "daily", "calories_kcal": 2000.0 + f64::from(day) * 10.0,
                   "protein_g": 100.0, "caffeine_mg": 0.0}),
            201,
        )
        .await;
        entry_ids.push(r.body["id"].as_str().unwrap().to_string());
        write(
            "PUT",
            format!("/v1/work/{date}"),
            json!({"work_type": if day >= 6 { "day_off" } else { "desk" }, "hours_worked_h": if day >= 6 { 0.0 } else { 8.0 }}),
            200,
        )
        .await;
        last = write(
            "PUT",
            format!("/v1/body/{date}"),
            json!({"weight_kg": 60.0 - f64::from(day) * 0.1}),
            200,
        )
        .await
        .position();
    }

    let q = format!("from=2026-05-01&to=2026-05-07&min_position={last}");
    let checkins = get(format!("/v1/checkins?{q}")).await["items"].clone();
    assert_eq!(checkins.as_array().unwrap().len(), 7);
    assert_eq!(checkins[0]["date"], "2026-05-01");
    assert_eq!(checkins[6]["sleep_h"], 8.25);
    let nutrition = get(format!("/v1/nutrition?{q}")).await["items"].clone();
    assert_eq!(nutrition.as_array().unwrap().len(), 7);
    assert_eq!(nutrition[2]["calories_kcal"], 2030.0);
    assert_eq!(
        nutrition[2]["caffeine_mg"], 0.0,
        "zero is a value, not absence"
    );
    let work = get(format!("/v1/work?{q}")).await["items"].clone();
    assert_eq!(work[6]["work_type"], "day_off");
    let body = get(format!("/v1/body?{q}")).await["items"].clone();
    assert_eq!(body[0]["weight_kg"], 59.9);
    // BMI from the profile's height: 59.9 / 1.7^2.
    assert_eq!(body[0]["bmi_kg_m2"], 20.7);
    let page = get(format!(
        "/v1/activities?min_position={last}&sort=distance&direction=asc"
    ))
    .await;
    let names: Vec<&str> = page["activities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Run 1", "Run 3", "Run 5", "Run 7"]);
    let detail = get(format!("/v1/activities/{}", activity_ids[1])).await;
    assert_eq!(detail["distance_m"], 9500.0);
    assert_eq!(detail["timezone"], "Europe/Paris");
    assert_eq!(detail["perceived_effort"]["effort"], 5);
    assert_eq!(detail["laps"][0]["distance_m"], 4000.0);
    // Efficiency of a manual run comes from its summary: 8500 m in 2550 s at 141 bpm.
    let ef = get(format!("/v1/activities/{}/efficiency", activity_ids[0])).await;
    let expected = 8500.0 / 2550.0 * 60.0 / 141.0;
    assert!(
        (ef["efficiency_factor"].as_f64().unwrap() - expected).abs() < 1e-9,
        "{ef}"
    );
    assert_eq!(ef["gap_model"], "minetti2002");
    assert_eq!(ef["analyzed_time_s"], 2550.0 - 360.0);
    let paged = get("/v1/activities?limit=3".into()).await;
    let next = paged["next_cursor"].as_str().unwrap().to_string();
    let rest = get(format!("/v1/activities?limit=3&cursor={next}")).await;
    assert_eq!(rest["activities"].as_array().unwrap().len(), 1);
    assert!(rest["next_cursor"].is_null());

    // Corrections and deletions.
    let p = write(
        "PATCH",
        format!("/v1/nutrition/{}", entry_ids[0]),
        json!({"calories_kcal": 1500.0}),
        200,
    )
    .await
    .position();
    let e = get(format!("/v1/nutrition/{}?min_position={p}", entry_ids[0])).await;
    assert_eq!(e["calories_kcal"], 1500.0);
    assert_eq!(e["protein_g"], 100.0, "a patch keeps the other fields");
    write(
        "DELETE",
        format!("/v1/activities/{}/feedback", activity_ids[0]),
        json!(null),
        200,
    )
    .await;
    let p = api
        .send(
            "DELETE",
            &format!("/v1/activities/{}", activity_ids[2]),
            tok,
            None,
        )
        .await
        .position();
    let nutrition_deleted = api
        .send(
            "DELETE",
            &format!("/v1/nutrition/{}", entry_ids[1]),
            tok,
            None,
        )
        .await;
    assert_eq!(nutrition_deleted.status, 200, "{}", nutrition_deleted.body);
    let p = p.max(nutrition_deleted.position());
    let page = get(format!("/v1/activities?min_position={p}")).await;
    assert_eq!(page["activities"].as_array().unwrap().len(), 3);
    assert!(
        page["activities"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["activity_id"] != activity_ids[2].as_str())
    );
    assert_problem(
        &api.send(
            "GET",
            &format!("/v1/activities/{}", activity_ids[2]),
            tok,
            None,
        )
        .await,
        404,
    );
    assert_problem(
        &api.send(
            "GET",
            &format!("/v1/activities/{}/feedback", activity_ids[0]),
            tok,
            None,
        )
        .await,
        404,
    );
    // Lists reflect a deletion once they are read at its position.
    let nutrition = get(format!(
        "/v1/nutrition?from=2026-05-01&to=2026-05-07&min_position={p}"
    ))
    .await["items"]
        .clone();
    assert_eq!(nutrition.as_array().unwrap().len(), 6);
    // A range longer than a page is answered a page at a time.
    let long = get("/v1/checkins?from=2025-01-01&to=2026-12-31".into()).await;
    assert_eq!(long["to"], "2026-01-01");
    assert_eq!(long["next_from"], "2026-01-02");
    let next = get("/v1/checkins?from=2026-01-02&to=2026-12-31".into()).await;
    assert_eq!(next["items"].as_array().unwrap().len(), 7);
    assert!(next["next_from"].is_null());
    // Runs 1 (rating withdrawn) and the others are older than the pending window.
    let pending = get("/v1/feedback/pending?days=30".into()).await;
    assert!(pending.as_array().unwrap().is_empty(), "{pending}");

    // Every write above is an event in the athlete's history.
    let history = api
        .state
        .store
        .read_athlete(a.id, None)
        .await
        .expect("history");
    let count = |ty: &str| history.iter().filter(|e| e.event_type == ty).count();
    assert_eq!(count("AthleteRegistered"), 1);
    assert_eq!(count("ActivityRecorded"), 4);
    assert_eq!(count("PerceivedEffortRecorded"), 4);
    assert_eq!(count("PerceivedEffortRemoved"), 1);
    assert_eq!(count("ActivityDeleted"), 1);
    assert_eq!(count("DailyCheckInLogged"), 7);
    assert_eq!(count("NutritionEntryLogged"), 7);
    assert_eq!(count("NutritionEntryUpdated"), 1);
    assert_eq!(count("NutritionEntryDeleted"), 1);
    assert_eq!(count("WorkPatternLogged"), 7);
    assert_eq!(count("BodyCompositionLogged"), 7);
    assert_eq!(count("OnboardingProgressed"), 4);
    api.stop().await;
}

/// Bad input gets a precise problem and stores nothing.
async fn refused_input_changes_nothing(t: TestStore) {
    let api = Api::start(t).await;
    let a = api.register("runner@example.org", "athlete").await;
    let tok = Some(a.access.as_str());
    let before = api.state.store.last_committed().await.unwrap();
    let r = api
        .send(
            "PUT",
            "/v1/checkins/2026-05-01",
            tok,
            Some(json!({"sleep_h": 25.0})),
        )
        .await;
    assert_problem(&r, 422);
    assert_eq!(r.body["errors"][0]["field"], "sleep_h");
    let r = api
        .send(
            "PUT",
            "/v1/checkins/2026-05-01",
            tok,
            Some(json!({"sleep_h": 7, "mood": 3})),
        )
        .await;
    assert_problem(&r, 422);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("unknown field `mood`")
    );
    let r = api
        .send(
            "PUT",
            "/v1/checkins/not-a-date",
            tok,
            Some(json!({"sleep_h": 7})),
        )
        .await;
    assert_problem(&r, 422);
    // Nested objects in their array form (which serde's derived structs would take) are
    // refused: found by schemathesis as `{"physiology": [null, null]}` answered 200.
    for (method, path, body, field) in [
        ("PATCH", "/v1/me/preferences", json!([null, null]), "body"),
        ("PUT", "/v1/checkins/2026-05-01", json!([7.5]), "body"),
        (
            "PATCH",
            "/v1/me",
            json!({"physiology": [null, null]}),
            "physiology",
        ),
        (
            "PATCH",
            "/v1/me/preferences",
            json!({"notifications": [true, true, true]}),
            "notifications",
        ),
        (
            "POST",
            "/v1/nutrition/presets",
            json!({"name": "Gel", "nutrients": [100.0]}),
            "nutrients",
        ),
    ] {
        let r = api.send(method, path, tok, Some(body)).await;
        assert_problem(&r, 422);
        let detail = r.body["detail"].as_str().unwrap();
        assert!(
            detail.contains("expected an object") || detail.contains("must be a JSON object"),
            "{path}: {}",
            r.body
        );
        assert_eq!(r.body["errors"][0]["field"], field, "{path}: {}", r.body);
    }
    let raw = axum::http::Request::builder()
        .method("PUT")
        .uri("/v1/checkins/2026-05-01")
        .header("authorization", format!("Bearer {}", a.access))
        .header("content-type", "text/plain")
        .body(axum::body::Body::from("sleep=7"))
        .unwrap();
    assert_problem(&api.raw(raw).await, 415);
    let raw = axum::http::Request::builder()
        .method("PUT")
        .uri("/v1/checkins/2026-05-01")
        .header("authorization", format!("Bearer {}", a.access))
        .header("content-type", "application/json")
        .body(axum::body::Body::from("{\"sleep_h\": "))
        .unwrap();
    assert_problem(&api.raw(raw).await, 400);
    let huge = json!({"sleep_h": 7, "notes": "x".repeat(100 * 1024)});
    assert_problem(
        &api.send("PUT", "/v1/checkins/2026-05-01", tok, Some(huge))
            .await,
        413,
    );
    let r = api.send("GET", "/v1/activities?limit=0", tok, None).await;
    assert_problem(&r, 422);
    let r = api
        .send("GET", "/v1/activities?cursor=zzz", tok, None)
        .await;
    assert_problem(&r, 422);
    let r = api.send("GET", "/v1/nope", tok, None).await;
    assert_problem(&r, 404);
    // Nothing above reached the log.
    assert_eq!(api.state.store.last_committed().await.unwrap(), before);
    api.stop().await;
}

store::on_both_backends!(a_week_of_everything, refused_input_changes_nothing);

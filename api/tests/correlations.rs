//! Correlation discovery end to end on both stores: an athlete's check-ins and runs go in over
//! HTTP, a recompute is requested and run by the worker's step, the served snapshot equals the
//! engine run offline on the same read models, and only input-changing events make it stale.

mod common;

use chrono::{Duration, NaiveDate, Utc};
use common::{Api, assert_problem};
use domain::correlation::{Options, analyze};
use domain::simulate::{Planted, Spec, athlete};
use serde_json::{Value, json};
use store::testing::TestStore;

/// Waits until the input-change projection has applied `position`.
async fn settled(engine: &projections::Engine, position: i64) {
    let reached = engine
        .wait_for(
            &["correlation_inputs"],
            position,
            std::time::Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert!(reached, "correlation_inputs did not reach {position}");
}

async fn findings_snapshots_and_invalidation(t: TestStore) {
    let api = Api::start(t).await;
    let a = api.register("runner@example.org", "athlete").await;
    let tok = Some(a.access.as_str());

    // Before anything is logged.
    let r = api.send("GET", "/v1/correlations", tok, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["computed_at"], Value::Null);
    assert_eq!(r.body["note"], "nothing logged yet to analyse");

    // 200 days of a generated athlete whose sleep the day before goes with efficiency
    // (r about 0.8), sent the way a client would: check-ins and manual runs.
    let planted = Planted {
        input: "sleep_hours",
        lag_days: 1,
        r: 0.8,
    };
    let data = athlete(
        &Spec {
            seed: 11,
            days: 200,
            planted: Some(planted),
        },
        0,
    );
    let mut last = 0i64;
    for d in &data.days {
        let sleep = d
            .inputs
            .get("sleep_hours")
            .filter(|v| (0.0..=24.0).contains(*v));
        let hrv = d
            .inputs
            .get("hrv_rmssd_ms")
            .filter(|v| (1.0..=300.0).contains(*v));
        if sleep.is_none() && hrv.is_none() {
            continue;
        }
        let r = api
            .send(
                "PUT",
                &format!("/v1/checkins/{}", d.date),
                tok,
                Some(json!({"sleep_h": sleep, "hrv_ms": hrv})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        last = r.position();
    }
    for run in &data.activities {
        // A manual run's EF is its speed per beat after the warm-up: choose the distance
        // that gives the generated EF at 150 bpm.
        let moving_time_s = run.analyzed_time_s + 360.0;
        let ef = run.efficiency_factor.unwrap();
        let distance_m = ef * 150.0 * moving_time_s / 60.0;
        let r = api
            .send(
                "POST",
                "/v1/activities",
                tok,
                Some(
                    json!({"sport": "run", "start_time": format!("{}T07:00:00Z", run.date),
                            "timezone": "UTC", "distance_m": distance_m,
                            "moving_time_s": moving_time_s, "avg_hr_bpm": 150.0}),
                ),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        last = r.position();
    }
    // Read models caught up with the last write.
    let r = api
        .send(
            "GET",
            &format!("/v1/activities?min_position={last}"),
            tok,
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    let engine = api.state.projections.clone();
    settled(&engine, last).await;

    let r = api
        .send("POST", "/v1/correlations/recompute", tok, None)
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["state"], "queued");
    let job = r.body["job_id"].as_str().unwrap().to_string();
    // Asking again while it is queued is the same job.
    let again = api
        .send("POST", "/v1/correlations/recompute", tok, None)
        .await;
    assert_eq!(again.body["job_id"].as_str().unwrap(), job);

    let step = workers::correlations::step(&engine, "test-worker", 16)
        .await
        .unwrap();
    assert_eq!((step.computed, step.failed), (1, 0));
    let j = api
        .send("GET", &format!("/v1/correlations/jobs/{job}"), tok, None)
        .await;
    assert_eq!(j.status, 200, "{}", j.body);
    assert_eq!(j.body["state"], "done", "{}", j.body);
    assert_eq!(j.body["position"].as_i64().unwrap(), last);

    let r = api
        .send("GET", "/v1/correlations?days=700", tok, None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let served = &r.body;
    assert_eq!(served["window_days"], 730);
    assert_eq!(served["stale"], false);
    assert_eq!(served["position"].as_i64().unwrap(), last);
    let sleep = served["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["input"] == "sleep_hours" && f["outcome"] == "efficiency_factor")
        .unwrap_or_else(|| panic!("no sleep finding: {served}"));
    assert_eq!(sleep["lag_days"], 1);
    assert_eq!(sleep["category"], "what_works");
    assert!(sleep["q"].as_f64().unwrap() <= 0.10);
    assert!(sleep["n"].as_u64().unwrap() >= 20);

    // The same engine offline on the same read models gives the same answer.
    let today = Utc::now().date_naive();
    let from = today - Duration::days(729);
    let offline = analyze(
        &workers::correlations::dataset(&engine, a.id, from, today)
            .await
            .unwrap(),
        &Options::default(),
    );
    assert_eq!(
        served["tests_run"].as_u64().unwrap() as usize,
        offline.tests_run
    );
    assert_eq!(
        served["findings"],
        serde_json::to_value(&offline.findings).unwrap()
    );

    let works = api
        .send("GET", "/v1/correlations/what-works?days=730", tok, None)
        .await;
    assert!(
        works.body["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["category"] == "what_works" && f["method"] != "quadrant")
    );
    assert!(
        works.body["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["input"] == "sleep_hours")
    );
    let doesnt = api
        .send(
            "GET",
            "/v1/correlations/what-doesnt-work?days=730",
            tok,
            None,
        )
        .await;
    assert!(
        doesnt.body["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["category"] == "what_doesnt_work")
    );
    let combos = api
        .send("GET", "/v1/correlations/combinations?days=730", tok, None)
        .await;
    assert!(
        combos.body["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["method"] == "quadrant" && f["input"].as_str().unwrap().contains('+'))
    );
    let r = api.send("GET", "/v1/correlations?days=20", tok, None).await;
    assert_problem(&r, 422);

    // Findings have stable ids, and feedback must name one of them.
    let sleep_id = sleep["id"].as_str().unwrap().to_string();
    assert_eq!(
        sleep_id,
        domain::correlation::finding_id(
            "sleep_hours",
            sleep["outcome"].as_str().unwrap(),
            u32::try_from(sleep["lag_days"].as_u64().unwrap()).unwrap(),
            serde_json::from_value(sleep["method"].clone()).unwrap(),
        )
    );
    let r = api
        .send(
            "POST",
            "/v1/insights/feedback",
            tok,
            Some(json!({"insight_id": "sleep-ef", "helpful": true})),
        )
        .await;
    assert_problem(&r, 422);
    assert_eq!(r.body["errors"][0]["field"], "insight_id", "{}", r.body);
    // An event that changes no input leaves the snapshot current...
    let r = api
        .send(
            "POST",
            "/v1/insights/feedback",
            tok,
            Some(json!({"insight_id": sleep_id, "helpful": true})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let p = r.position();
    settled(&engine, p).await;
    let r = api.send("GET", "/v1/correlations", tok, None).await;
    assert_eq!(r.body["stale"], false, "{}", r.body);
    // ...one that does makes it stale, and the worker waits out the debounce...
    let day: NaiveDate = data.days.last().unwrap().date + Duration::days(1);
    let r = api
        .send(
            "PUT",
            &format!("/v1/checkins/{day}"),
            tok,
            Some(json!({"sleep_h": 7.0})),
        )
        .await;
    let p = r.position();
    settled(&engine, p).await;
    let r = api.send("GET", "/v1/correlations", tok, None).await;
    assert_eq!(r.body["stale"], true, "{}", r.body);
    let step = workers::correlations::step(&engine, "test-worker", 16)
        .await
        .unwrap();
    assert_eq!(step.computed, 0, "debounced: the snapshot is minutes old");
    // ...unless asked.
    api.send("POST", "/v1/correlations/recompute", tok, None)
        .await;
    let step = workers::correlations::step(&engine, "test-worker", 16)
        .await
        .unwrap();
    assert_eq!(step.computed, 1);
    let r = api.send("GET", "/v1/correlations", tok, None).await;
    assert_eq!(r.body["stale"], false, "{}", r.body);
    assert_eq!(r.body["position"].as_i64().unwrap(), p);

    // Someone else's job is not theirs to see, nor their findings to rate.
    let b = api.register("other@example.org", "athlete").await;
    let r = api
        .send(
            "POST",
            "/v1/insights/feedback",
            Some(&b.access),
            Some(json!({"insight_id": sleep_id, "helpful": false})),
        )
        .await;
    assert_problem(&r, 422);
    let r = api
        .send(
            "GET",
            &format!("/v1/correlations/jobs/{job}"),
            Some(&b.access),
            None,
        )
        .await;
    assert_problem(&r, 404);

    // Erasure takes the snapshot and the jobs with the athlete.
    let erased = api
        .state
        .commands
        .execute::<domain::athlete::Athlete>(
            &commands::CommandContext::athlete(a.id),
            &a.id.to_string(),
            domain::athlete::AthleteCommand::Erase {
                requested_by: a.id,
                reason: domain::athlete::ErasureReason::AthleteRequest,
            },
        )
        .await
        .unwrap();
    let p = erased.outcome.unwrap().cursor.position;
    settled(&engine, p).await;
    let pool = &engine.db().pool;
    assert!(
        projections::correlations::snapshot(pool, a.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        projections::correlations::job(pool, a.id, job.parse().unwrap())
            .await
            .unwrap()
            .is_none()
    );
    api.stop().await;
}

store::on_both_backends!(findings_snapshots_and_invalidation);

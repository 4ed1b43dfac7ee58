//! Files in, efficiency out, over HTTP on both stores: multipart import of the real activity
//! files (good, duplicate, broken, too large), one run's metrics with its comparisons in the
//! athlete's units, EF trends, and the training-load chart on the athlete's calendar.

mod common;

use axum::body::Body;
use axum::http::Request;
use chrono::{Duration, NaiveDate, TimeZone, Utc};
use common::{Account, Api, Reply, assert_problem};
use serde_json::{Value, json};
use store::testing::TestStore;

fn file(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../testdata/activities/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

async fn upload(api: &Api, who: &Account, files: &[(&str, Vec<u8>)]) -> Reply {
    let boundary = "stridelog-test-boundary-7d1f";
    let mut body = Vec::new();
    for (name, bytes) in files {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let req = Request::builder()
        .method("POST")
        .uri("/v1/activities/import")
        .header("authorization", format!("Bearer {}", who.access))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Body::from(body))
        .unwrap();
    api.raw(req).await
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

async fn head(api: &Api) -> i64 {
    api.state.store.last_committed().await.unwrap().position
}

async fn import_compare_and_trend(t: TestStore) {
    let api = Api::start(t).await;
    let a = api.register("runner@example.org", "athlete").await;
    let tok = Some(a.access.as_str());
    let r = api
        .send(
            "PATCH",
            "/v1/me",
            tok,
            Some(json!({"units": "imperial", "physiology":
                {"resting_hr_bpm": 50, "hr_max_bpm": 190, "sex": "male"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Broken files: each named with its problem, nothing stored.
    let before = head(&api).await;
    let bad = [
        "bad/corrupt-header.fit",
        "bad/unexpected-eof.fit",
        "bad/truncated.gpx",
        "bad/not-xml.gpx",
    ];
    let r = upload(
        &api,
        &a,
        &bad.iter()
            .map(|n| (n.rsplit('/').next().unwrap(), file(n)))
            .collect::<Vec<_>>(),
    )
    .await;
    assert_problem(&r, 422);
    let errors = r.body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 4, "{}", r.body);
    for (e, name) in errors.iter().zip(bad) {
        let detail = e["detail"].as_str().unwrap();
        let short = name.rsplit('/').next().unwrap();
        assert!(
            detail.starts_with(&format!("{short}: ")) && detail.len() > short.len() + 10,
            "{detail}"
        );
    }
    let r = upload(&api, &a, &[("notes.txt", b"easy run".to_vec())]).await;
    assert_problem(&r, 422);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .starts_with("notes.txt: ")
    );
    let r = upload(&api, &a, &[("huge.fit", vec![0u8; 16 * 1024 * 1024 + 1])]).await;
    assert_problem(&r, 413);
    let r = api
        .send(
            "POST",
            "/v1/activities/import",
            tok,
            Some(json!({"file": "x"})),
        )
        .await;
    assert_problem(&r, 415);
    let r = upload(&api, &a, &[]).await;
    assert_problem(&r, 422);
    assert_eq!(head(&api).await, before, "a refused upload appended events");

    // The FIT, the same run as GPX, and a one-minute run; one broken file beside them is
    // reported and the rest still imported.
    let r = upload(
        &api,
        &a,
        &[
            ("run-2013-02-06.fit", file("run-2013-02-06.fit")),
            ("run-2013-02-06.gpx", file("run-2013-02-06.gpx")),
            ("run-short-fenix5.fit", file("run-short-fenix5.fit")),
            ("not-xml.gpx", file("bad/not-xml.gpx")),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let files = r.body["files"].as_array().unwrap();
    let status: Vec<&str> = files
        .iter()
        .map(|f| f["status"].as_str().unwrap())
        .collect();
    assert_eq!(status, ["recorded", "duplicate", "recorded", "error"]);
    assert_eq!(files[1]["activity_id"], files[0]["activity_id"]);
    assert!(files[3]["error"].as_str().unwrap().len() > 10);
    assert_eq!(
        (r.body["recorded"].as_u64(), r.body["failed"].as_u64()),
        (Some(2), Some(1))
    );
    let fit_id = files[0]["activity_id"].as_str().unwrap().to_string();
    let short_id = files[2]["activity_id"].as_str().unwrap().to_string();
    let position = r.body["position"].as_i64().unwrap();
    // The same file again is the same activity, and appends nothing.
    let again_before = head(&api).await;
    let r = upload(&api, &a, &[("copy.fit", file("run-2013-02-06.fit"))]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["files"][0]["status"], "already_imported");
    assert_eq!(r.body["files"][0]["activity_id"].as_str().unwrap(), fit_id);
    assert_eq!(head(&api).await, again_before);

    // The reference run's metrics, displayed in miles and Friel's yards.
    let e = api
        .send(
            "GET",
            &format!("/v1/activities/{fit_id}/efficiency?min_position={position}"),
            tok,
            None,
        )
        .await;
    assert_eq!(e.status, 200, "{}", e.body);
    let m = &e.body;
    assert!(close(f(&m["efficiency_factor"]), 0.9688, 0.0097), "{m}");
    assert!(close(f(&m["efficiency_factor_raw"]), 0.8886, 0.0089));
    assert!(close(f(&m["decoupling_pct"]), 28.9, 0.5));
    assert!(close(f(&m["moving_time_s"]), 2110.0, 21.1));
    assert_eq!(m["decoupling_badge"], "red");
    assert_eq!(m["gap_model"], "minetti2002");
    assert_eq!(m["display"]["units"], "imperial");
    assert!(m["display"]["distance"].as_str().unwrap().ends_with(" mi"));
    assert!(m["display"]["pace"].as_str().unwrap().ends_with(" /mi"));
    let yd = f(&m["efficiency_factor"]) * 1.093_613_3;
    assert_eq!(
        m["display"]["efficiency_factor"].as_str().unwrap(),
        format!("{yd:.3} yd/min/bpm")
    );
    assert_eq!(m["comparison"]["similar"]["runs"], 0);
    assert!(
        m["comparison"]["similar"]["note"]
            .as_str()
            .unwrap()
            .starts_with("no earlier run within 10 % of")
    );
    assert_eq!(m["comparison"]["best_at_distance"]["is_this_run"], true);

    let e = api
        .send(
            "GET",
            &format!("/v1/activities/{short_id}/efficiency"),
            tok,
            None,
        )
        .await;
    assert_eq!(e.status, 200, "{}", e.body);
    assert_eq!(e.body["efficiency_factor"], Value::Null);
    assert!(
        e.body["reason"]
            .as_str()
            .unwrap()
            .contains("at least 300 s"),
        "{}",
        e.body
    );
    assert_eq!(e.body["comparison"], Value::Null);

    // Eight manual runs, two days apart, each 100 m longer at the same heart rate: EF rises
    // in a straight line. Run i: 3000 s, 9000 + 100 i metres, 150 bpm, so after the 360 s
    // warm-up trim EF = (9000 + 100 i) / 3000 x 60 / 150 = (9000 + 100 i) / 7500.
    let today = Utc::now().date_naive();
    let first_day = today - Duration::days(15);
    let mut ids = Vec::new();
    let mut last_position = 0;
    for i in 0..8i64 {
        let start = Utc.from_utc_datetime(
            &(first_day + Duration::days(2 * i))
                .and_hms_opt(6, 0, 0)
                .unwrap(),
        );
        let r = api
            .send(
                "POST",
                "/v1/activities",
                tok,
                Some(
                    json!({"sport": "run", "start_time": start, "timezone": "UTC",
                            "distance_m": 9000.0 + 100.0 * i as f64,
                            "moving_time_s": 3000.0, "avg_hr_bpm": 150.0}),
                ),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        ids.push(r.body["id"].as_str().unwrap().to_string());
        last_position = r.position();
    }
    // One more, at 20:30 UTC in Auckland (UTC+12 or +13): the next day there.
    let late = Utc.from_utc_datetime(&(today - Duration::days(3)).and_hms_opt(20, 30, 0).unwrap());
    let r = api
        .send(
            "POST",
            "/v1/activities",
            tok,
            Some(
                json!({"sport": "ride", "start_time": late, "timezone": "Pacific/Auckland",
                        "distance_m": 30000.0, "moving_time_s": 3600.0, "avg_hr_bpm": 130.0}),
            ),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let ride = r.body["id"].as_str().unwrap().to_string();
    last_position = last_position.max(r.position());

    let ef = |i: i64| (9000.0 + 100.0 * i as f64) / 7500.0;
    let tr = api
        .send(
            "GET",
            &format!("/v1/efficiency/trends?days=30&min_position={last_position}"),
            tok,
            None,
        )
        .await;
    assert_eq!(tr.status, 200, "{}", tr.body);
    let runs = tr.body["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 8, "the 2013 run and the ride are not in it");
    for (i, run) in runs.iter().enumerate() {
        assert_eq!(run["activity_id"].as_str().unwrap(), ids[i]);
        assert!(close(f(&run["efficiency_factor"]), ef(i as i64), 1e-9));
    }
    // At the last run (day 14) the 7-day window (day 7, day 14] holds days 8, 10, 12, 14.
    let mean7 = (4..8).map(ef).sum::<f64>() / 4.0;
    assert!(close(f(&runs[7]["rolling_7d"]), mean7, 1e-9));
    assert!(close(
        f(&runs[7]["rolling_28d"]),
        (0..8).map(ef).sum::<f64>() / 8.0,
        1e-9
    ));
    // +100/7500 every 2 days = +0.2 per 30 days, on an exact line.
    let trend = &tr.body["trend"];
    assert!(close(f(&trend["slope_per_30d"]), 0.2, 1e-9), "{trend}");
    assert!(close(f(&trend["ci95_low_per_30d"]), 0.2, 1e-6));
    assert_eq!(trend["runs"], 8);
    assert_eq!(tr.body["trend_note"], Value::Null);
    assert_eq!(tr.body["best"]["activity_id"].as_str().unwrap(), ids[7]);
    assert_eq!(tr.body["latest"]["activity_id"].as_str().unwrap(), ids[7]);
    assert_eq!(tr.body["decoupling"]["runs"], 0, "summaries have no halves");

    // Fewer runs: no trend, and how many more are needed.
    let tr = api
        .send("GET", "/v1/efficiency/trends?days=7", tok, None)
        .await;
    assert_eq!(tr.status, 200, "{}", tr.body);
    let n = tr.body["runs"].as_array().unwrap().len();
    assert!(n < 8);
    assert_eq!(tr.body["trend"], Value::Null);
    assert_eq!(
        tr.body["trend_note"].as_str().unwrap(),
        format!(
            "{n} runs with an efficiency factor in this period; a trend needs 8, so {} more",
            8 - n
        )
    );
    let r = api
        .send("GET", "/v1/efficiency/trends?days=3", tok, None)
        .await;
    assert_problem(&r, 422);

    // The last run against the seven before it (all within 10 % of 9.7 km).
    let e = api
        .send(
            "GET",
            &format!("/v1/activities/{}/efficiency", ids[7]),
            tok,
            None,
        )
        .await;
    let similar = &e.body["comparison"]["similar"];
    assert_eq!(similar["runs"], 7, "{}", e.body);
    let mean = (0..7).map(ef).sum::<f64>() / 7.0;
    assert!(close(f(&similar["mean_efficiency_factor"]), mean, 1e-9));
    assert!(close(
        f(&similar["difference_pct"]),
        100.0 * (ef(7) - mean) / mean,
        1e-9
    ));
    assert_eq!(similar["activity_ids"][0].as_str().unwrap(), ids[6]);

    // Training load with the athlete's 50/190 bpm, male constants: each run is 50 minutes at
    // HRr = 100/140, so TRIMP = 50 x HRr x 0.64 x e^(1.92 HRr).
    let hrr: f64 = 100.0 / 140.0;
    let run_trimp = 50.0 * hrr * 0.64 * (1.92 * hrr).exp();
    let ride_hrr: f64 = 80.0 / 140.0;
    let ride_trimp = 60.0 * ride_hrr * 0.64 * (1.92 * ride_hrr).exp();
    let from = first_day;
    let tl = api
        .send(
            "GET",
            &format!("/v1/training-load?from={from}&to={today}"),
            tok,
            None,
        )
        .await;
    assert_eq!(tl.status, 200, "{}", tl.body);
    let b = &tl.body;
    assert_eq!(b["settings"]["hr_rest_bpm"], 50.0);
    assert_eq!(b["settings"]["hr_rest_source"], "profile");
    assert_eq!(b["settings"]["trimp_b"], 1.92);
    assert_eq!(b["started"], "2013-02-06");
    assert!(
        b["convention"]
            .as_str()
            .unwrap()
            .contains("1 - exp(-1/tau)")
    );
    let days = b["days"].as_array().unwrap();
    assert_eq!(days.len(), 16);
    assert_eq!(days[0]["date"], from.to_string());
    let ride_day = (late + Duration::hours(12)).date_naive();
    assert!(ride_day > late.date_naive(), "Auckland is ahead of UTC");
    for d in days {
        let date: NaiveDate = d["date"].as_str().unwrap().parse().unwrap();
        let offset = (date - first_day).num_days();
        let mut expected = if offset % 2 == 0 && offset <= 14 {
            run_trimp
        } else {
            0.0
        };
        if date == ride_day {
            expected += ride_trimp;
        }
        assert!(close(f(&d["load"]), expected, 1e-6), "{date}: {d}");
        assert!(close(f(&d["tsb"]), f(&d["ctl"]) - f(&d["atl"]), 1e-9));
        assert!(d["ramp_7d"].is_number(), "years after the first activity");
    }
    // Day to day, CTL and ATL follow the exponential update exactly.
    let (lc, la) = (1.0 - (-1.0f64 / 42.0).exp(), 1.0 - (-1.0f64 / 7.0).exp());
    for w in days.windows(2) {
        let load = f(&w[1]["load"]);
        assert!(close(
            f(&w[1]["ctl"]),
            f(&w[0]["ctl"]) + lc * (load - f(&w[0]["ctl"])),
            1e-9
        ));
        assert!(close(
            f(&w[1]["atl"]),
            f(&w[0]["atl"]) + la * (load - f(&w[0]["atl"])),
            1e-9
        ));
    }
    let ride_row = b["activities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["activity_id"].as_str() == Some(ride.as_str()))
        .unwrap();
    assert_eq!(ride_row["local_date"], ride_day.to_string());
    assert_eq!(ride_row["rtss"], Value::Null, "not a run");

    // Nothing of A's is anyone else's.
    let b2 = api.register("other@example.org", "athlete").await;
    let r = api
        .send(
            "GET",
            &format!("/v1/activities/{fit_id}/efficiency"),
            Some(&b2.access),
            None,
        )
        .await;
    assert_problem(&r, 404);
    let r = api
        .send("GET", "/v1/training-load", Some(&b2.access), None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["note"], "no activities yet");
    assert_eq!(r.body["days"], json!([]));
    api.stop().await;
}

store::on_both_backends!(import_compare_and_trend);

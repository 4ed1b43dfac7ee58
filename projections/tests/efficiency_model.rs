//! Per-activity efficiency metrics on both stores: from the kept file of an import and from a
//! manual activity's splits, through edits and deletion; and a formula version change
//! recomputes every activity from the events and the kept files.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use commands::import::{Imported, import_file};
use commands::{CommandBus, CommandContext};
use domain::DomainServices;
use domain::activity::{
    Activity, ActivityCommand, ActivitySource, DeleteActivity, Lap, RecordActivity, Sport,
    UpdateActivity,
};
use domain::athlete::{Athlete, AthleteCommand, Role};
use projections::efficiency::{EfficiencyProjection, FORMULA_VERSION, all_of, metrics};
use projections::{Engine, Projection, ReadDb, Tables};
use store::testing::TestStore;
use uuid::Uuid;

fn bus(t: &TestStore) -> CommandBus {
    CommandBus::new(
        t.store.clone(),
        DomainServices::new(Arc::new(commands::SystemClock)),
        domain::upcasters(),
    )
}

async fn caught_up(engine: &Engine, p: &dyn Projection) -> Tables {
    engine.catch_up(p, Duration::from_secs(30)).await.unwrap();
    let skipped = engine.skipped(p.name()).await.unwrap();
    assert!(skipped.is_empty(), "{skipped:?}");
    engine.active_tables(p.name()).await.unwrap()
}

fn lap(index: u32, dt: f64, dd: f64, hr: f64) -> Lap {
    Lap {
        index,
        distance_m: Some(dd),
        moving_time_s: Some(dt),
        avg_hr_bpm: Some(hr),
        elevation_gain_m: None,
    }
}

async fn metrics_follow_imports_edits_and_formula_versions(t: TestStore) {
    let bus = bus(&t);
    let athlete = Uuid::now_v7();
    let ctx = CommandContext::athlete(athlete);
    bus.execute::<Athlete>(
        &ctx,
        &athlete.to_string(),
        AthleteCommand::Register {
            athlete_id: athlete,
            email: "ef@example.org".into(),
            display_name: "EF".into(),
            role: Role::Athlete,
        },
    )
    .await
    .unwrap();
    let fit = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/activities/run-2013-02-06.fit"),
    )
    .unwrap();
    let Imported::Recorded {
        activity_id: imported,
        ..
    } = import_file(&bus, &ctx, "run.fit", &fit, "UTC", &[])
        .await
        .unwrap()
    else {
        panic!("not recorded")
    };
    let manual = Uuid::now_v7();
    bus.execute::<Activity>(
        &ctx,
        &manual.to_string(),
        ActivityCommand::RecordActivity(RecordActivity {
            athlete_id: athlete,
            activity_id: manual,
            sport: Sport::Run,
            name: Some("Track".into()),
            start_time: Utc.with_ymd_and_hms(2026, 5, 1, 7, 0, 0).unwrap(),
            timezone: "UTC".into(),
            distance_m: Some(7200.0),
            moving_time_s: 2400.0,
            elapsed_time_s: None,
            avg_hr_bpm: Some(142.0),
            max_hr_bpm: None,
            elevation_gain_m: None,
            elevation_loss_m: None,
            source: ActivitySource::Manual,
            external_id: None,
            laps: vec![
                lap(0, 600.0, 1800.0, 130.0),
                lap(1, 600.0, 1800.0, 140.0),
                lap(2, 600.0, 1800.0, 148.0),
                lap(3, 600.0, 1800.0, 150.0),
            ],
            samples: None,
        }),
    )
    .await
    .unwrap();

    let db = ReadDb::connect(&t.url).await.unwrap();
    let v1: Arc<dyn Projection> = Arc::new(EfficiencyProjection::default());
    let engine = Engine::new(t.store.clone(), db, vec![v1.clone()]);
    let t1 = caught_up(&engine, v1.as_ref()).await;
    let pool = &engine.db().pool;
    let m = metrics(pool, &t1, athlete, imported)
        .await
        .unwrap()
        .unwrap();
    assert!(
        (m.efficiency_factor.unwrap() - 0.9688).abs() < 1e-4,
        "{m:?}"
    );
    assert_eq!(m.moving_time_s, 2110.0);
    let m = metrics(pool, &t1, athlete, manual).await.unwrap().unwrap();
    // 3 m/s throughout; heart rate 130 (240 s of it), 140, 148, 150 over 2040 s.
    let hr = (240.0 * 130.0 + 600.0 * 140.0 + 600.0 * 148.0 + 600.0 * 150.0) / 2040.0;
    assert!((m.efficiency_factor.unwrap() - 180.0 / hr).abs() < 1e-9);
    assert!(m.decoupling_pct.unwrap() > 0.0);
    // Load inputs and the local date sit beside the metrics.
    let rows = all_of(pool, &t1, athlete).await.unwrap();
    assert_eq!(rows.len(), 2);
    let (file, by_hand) = (&rows[0], &rows[1]);
    assert_eq!(file.activity_id, imported);
    assert_eq!(
        file.local_date,
        chrono::NaiveDate::from_ymd_opt(2013, 2, 6).unwrap()
    );
    assert_eq!(file.load.moving_time_s, 2110.0);
    let recorded_s: f64 = file.load.hr_time.iter().map(|(_, s)| s).sum();
    // Every recorded second with a heart rate counts for load, standing ones too, but not
    // the gaps over 30 s: more than the moving time, less than first to last sample.
    let parsed = ingest::parse(ingest::Format::Fit, &fit).unwrap();
    let times: Vec<f64> = parsed.samples.iter().filter_map(|s| s.t_s).collect();
    let span = times.last().unwrap() - times.first().unwrap();
    assert!(
        recorded_s > 2110.0 && recorded_s <= span,
        "{recorded_s} of {span}"
    );
    assert!(file.load.hr_time.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(
        by_hand.load.hr_time,
        vec![
            (130.0, 600.0),
            (140.0, 600.0),
            (148.0, 600.0),
            (150.0, 600.0)
        ]
    );
    assert_eq!(
        (by_hand.load.moving_time_s, by_hand.load.gap_distance_m),
        (2400.0, 7200.0)
    );
    // Nobody else sees them.
    assert_eq!(
        metrics(pool, &t1, Uuid::now_v7(), imported).await.unwrap(),
        None
    );

    // An edit recomputes; a deletion removes.
    bus.execute::<Activity>(
        &ctx,
        &manual.to_string(),
        ActivityCommand::UpdateActivity(UpdateActivity {
            athlete_id: athlete,
            name: None,
            sport: Some(Sport::Ride),
            distance_m: None,
            moving_time_s: None,
            avg_hr_bpm: None,
            notes: None,
        }),
    )
    .await
    .unwrap();
    let t1 = caught_up(&engine, v1.as_ref()).await;
    let m = metrics(pool, &t1, athlete, manual).await.unwrap().unwrap();
    assert_eq!(m.efficiency_factor, None);
    assert!(m.reason.unwrap().contains("defined for runs"));

    // A formula change is a new version: it is built from the events and the kept files, not
    // from the old rows (spoiled here to prove it).
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {} SET metrics_json = '{{}}'",
        t1.table("metrics")
    )))
    .execute(pool)
    .await
    .unwrap();
    let v2: Arc<dyn Projection> = Arc::new(EfficiencyProjection::with_version(FORMULA_VERSION + 1));
    let engine2 = Engine::new(
        t.store.clone(),
        ReadDb::connect(&t.url).await.unwrap(),
        vec![v2.clone()],
    );
    let t2 = caught_up(&engine2, v2.as_ref()).await;
    assert_ne!(t2.generation(), t1.generation());
    let m = metrics(pool, &t2, athlete, imported)
        .await
        .unwrap()
        .unwrap();
    assert!((m.efficiency_factor.unwrap() - 0.9688).abs() < 1e-4);
    let m = metrics(pool, &t2, athlete, manual).await.unwrap().unwrap();
    assert_eq!(m.sport, Sport::Ride);

    bus.execute::<Activity>(
        &ctx,
        &imported.to_string(),
        ActivityCommand::DeleteActivity(DeleteActivity {
            athlete_id: athlete,
        }),
    )
    .await
    .unwrap();
    let t2 = caught_up(&engine2, v2.as_ref()).await;
    assert_eq!(metrics(pool, &t2, athlete, imported).await.unwrap(), None);
}

store::on_both_backends!(metrics_follow_imports_edits_and_formula_versions);

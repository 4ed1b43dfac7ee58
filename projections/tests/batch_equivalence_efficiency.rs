//! `apply_batch` of the efficiency and correlation-inputs projections leaves exactly the rows
//! that applying each event in turn does, on both stores: the same log (generated athletes, an
//! imported file with its kept samples, corrections, deletions, an erasure) is rebuilt one event
//! per batch through the trait's default and then in large (and odd-sized) batches through the
//! overrides, and every table is compared row by row.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use commands::import::{Imported, import_file};
use commands::{CommandBus, CommandContext};
use devtools::demo::{DemoConfig, seed_direct};
use domain::activity::{
    ActivityCommand, ActivitySource, DeleteActivity, RecordActivity, SetWorkoutType, Sport,
    UpdateActivity, WorkoutType,
};
use domain::athlete::{Athlete, AthleteCommand, ErasureReason};
use domain::journal::{CheckInValues, Journal, JournalCommand, LogDailyCheckIn};
use projections::correlations::{CorrelationInputsProjection, changes_inputs};
use projections::efficiency::EfficiencyProjection;
use projections::{DomainEvent, Engine, Projection, ReadDb};
use sqlx::Row;
use store::testing::TestStore;
use uuid::Uuid;

mod support;
use support::{Checked, PerEvent, assert_same, bus, dump, on_activity};

const NAMES: [&str; 2] = ["efficiency", "correlation_inputs"];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_batches_equal_single_events() {
    batches_equal_single_events(TestStore::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_batches_equal_single_events() {
    batches_equal_single_events(TestStore::postgres().await).await;
}

/// `reference`: one `apply` per event (the default `apply_batch`); otherwise the overrides.
async fn engine(t: &TestStore, batch: i64, reference: bool) -> Engine {
    let db = ReadDb::connect(&t.url).await.unwrap();
    let all: Vec<Arc<dyn Projection>> = if reference {
        vec![
            Arc::new(PerEvent(EfficiencyProjection::default())),
            Arc::new(PerEvent(CorrelationInputsProjection)),
        ]
    } else {
        vec![
            Arc::new(Checked(EfficiencyProjection::default())),
            Arc::new(Checked(CorrelationInputsProjection)),
        ]
    };
    Engine::new(t.store.clone(), db, all).with_batch(batch)
}

/// Both projections rebuilt in one pass (`rebuild --all`), then dumped.
async fn rebuilt(t: &TestStore, batch: i64, reference: bool) -> Vec<Vec<String>> {
    let engine = engine(t, batch, reference).await;
    let pool = engine.db().pool.clone();
    engine.rebuild_all(&NAMES, |_, _, _| {}).await.unwrap();
    let mut out = Vec::new();
    for name in NAMES {
        let p = engine.projection(name).unwrap().clone();
        assert!(
            engine.skipped(name).await.unwrap().is_empty(),
            "{name} skipped events with batch {batch}"
        );
        out.push(dump(&engine, &pool, p.as_ref()).await);
    }
    engine.release_leases().await.unwrap();
    out
}

fn recording(athlete: Uuid, activity: Uuid) -> ActivityCommand {
    ActivityCommand::RecordActivity(RecordActivity {
        athlete_id: athlete,
        activity_id: activity,
        sport: Sport::Run,
        name: None,
        start_time: Utc::now() - chrono::Duration::hours(3),
        timezone: "Etc/GMT-3".into(),
        distance_m: Some(8_000.0),
        moving_time_s: 2_400.0,
        elapsed_time_s: None,
        avg_hr_bpm: Some(148.0),
        max_hr_bpm: Some(181.0),
        elevation_gain_m: None,
        elevation_loss_m: None,
        source: ActivitySource::Manual,
        external_id: None,
        laps: vec![],
        samples: None,
    })
}

fn correction(athlete: Uuid, sport: Option<Sport>, distance_m: f64) -> ActivityCommand {
    ActivityCommand::UpdateActivity(UpdateActivity {
        athlete_id: athlete,
        name: Some("corrected".into()),
        sport,
        distance_m: Some(distance_m),
        moving_time_s: None,
        // Seeded activities may have a maximum below any fixed average: leave it.
        avg_hr_bpm: None,
        notes: None,
    })
}

fn workout(athlete: Uuid, workout_type: WorkoutType) -> ActivityCommand {
    ActivityCommand::SetWorkoutType(SetWorkoutType {
        athlete_id: athlete,
        workout_type,
    })
}

fn delete(athlete: Uuid) -> ActivityCommand {
    ActivityCommand::DeleteActivity(DeleteActivity {
        athlete_id: athlete,
    })
}

async fn check_in(bus: &CommandBus, athlete: Uuid, day: chrono::NaiveDate) {
    let command = JournalCommand::LogDailyCheckIn(LogDailyCheckIn {
        athlete_id: athlete,
        date: day,
        values: CheckInValues {
            sleep_h: Some(6.5),
            sleep_quality: None,
            hrv_ms: None,
            resting_hr_bpm: None,
            stress: Some(3),
            soreness: None,
            readiness: None,
            notes: None,
        },
    });
    bus.execute::<Journal>(
        &CommandContext::athlete(athlete),
        &command.aggregate_id(),
        command,
    )
    .await
    .unwrap();
}

async fn batches_equal_single_events(t: TestStore) {
    let yesterday = Utc::now().date_naive() - chrono::Duration::days(1);
    let config = DemoConfig {
        seed: 5,
        athletes: 3,
        days: 60,
        end_date: yesterday,
    };
    let seeded = seed_direct(&t.store, &config, 1, |_, _| {}).await.unwrap();
    assert!(seeded > 100, "seeded only {seeded} events");

    // Seeded activities and their athletes, from a first build.
    let first = engine(&t, 500, false).await;
    first
        .catch_up(&EfficiencyProjection::default(), Duration::from_secs(120))
        .await
        .unwrap();
    let tables = first.active_tables("efficiency").await.unwrap();
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT activity_id, athlete_id FROM {} ORDER BY athlete_id, start_time_us",
        tables.table("metrics")
    )))
    .fetch_all(&first.db().pool)
    .await
    .unwrap();
    first.release_leases().await.unwrap();
    let ids: Vec<(Uuid, Uuid)> = rows
        .iter()
        .map(|r| {
            (
                r.get::<String, _>(0).parse().unwrap(),
                r.get::<String, _>(1).parse().unwrap(),
            )
        })
        .collect();
    let a = ids[0].1;
    let mine: Vec<Uuid> = ids.iter().filter(|i| i.1 == a).map(|i| i.0).collect();
    let erased = ids.iter().map(|i| i.1).find(|&b| b != a).unwrap();
    let other = ids.iter().map(|i| i.1).find(|&b| b != a && b != erased);
    assert!(mine.len() >= 3, "athlete {a} has {} activities", mine.len());
    assert!(other.is_some(), "three athletes with activities: {ids:?}");
    let bus = bus(&t);
    let ctx = CommandContext::athlete(a);

    // Activities recorded in earlier batches: per-event updates and a deletion.
    on_activity(&bus, a, mine[0], correction(a, None, 8_100.0)).await;
    on_activity(&bus, a, mine[0], workout(a, WorkoutType::Intervals)).await;
    on_activity(&bus, a, mine[1], delete(a)).await;
    on_activity(&bus, a, mine[2], workout(a, WorkoutType::Easy)).await;

    // A file with kept samples, corrected in the same batch: the metrics come from the file.
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
    on_activity(
        &bus,
        a,
        imported,
        correction(a, Some(Sport::TrailRun), 9_000.0),
    )
    .await;
    on_activity(&bus, a, imported, workout(a, WorkoutType::Long)).await;

    // New manual activities whose later events share their batch: folded into one row.
    let folded = Uuid::now_v7();
    on_activity(&bus, a, folded, recording(a, folded)).await;
    on_activity(&bus, a, folded, workout(a, WorkoutType::Tempo)).await;
    on_activity(&bus, a, folded, correction(a, None, 8_500.0)).await;
    on_activity(&bus, a, folded, workout(a, WorkoutType::Race)).await;
    let gone = Uuid::now_v7();
    on_activity(&bus, a, gone, recording(a, gone)).await;
    on_activity(&bus, a, gone, correction(a, None, 1_000.0)).await;
    on_activity(&bus, a, gone, delete(a)).await;
    check_in(&bus, erased, yesterday).await;

    // An erasure in the middle, with the other athletes' events after it.
    bus.execute::<Athlete>(
        &CommandContext::athlete(erased),
        &erased.to_string(),
        AthleteCommand::Erase {
            requested_by: erased,
            reason: ErasureReason::AthleteRequest,
        },
    )
    .await
    .unwrap();
    let last = Uuid::now_v7();
    on_activity(&bus, a, last, recording(a, last)).await;
    on_activity(&bus, a, last, correction(a, Some(Sport::Ride), 30_000.0)).await;
    check_in(&bus, a, yesterday).await;

    let single = rebuilt(&t, 1, true).await;
    let (efficiency, changed) = (&single[0], &single[1]);
    assert!(
        efficiency.len() > 10 && changed.len() == 2,
        "too few rows to compare: {} and {changed:#?}",
        efficiency.len()
    );
    for rows in &single {
        assert!(!rows.iter().any(|r| r.contains(&erased.to_string())));
    }
    let row = |id: Uuid| efficiency.iter().find(|r| r.contains(&id.to_string()));
    assert!(row(mine[1]).is_none() && row(gone).is_none());
    let folded_row = row(folded).expect("the folded activity");
    assert!(folded_row.contains("workout_type=\"race\""), "{folded_row}");
    assert!(folded_row.contains("8500"), "{folded_row}");
    let file_row = row(imported).expect("the imported activity");
    assert!(file_row.contains("\"trail_run\""), "{file_row}");
    // From the kept samples (2110 s moving), not from the corrected summary.
    assert!(file_row.contains("moving_time_s\\\":2110.0"), "{file_row}");
    // The correlation inputs moved with a's last input-changing event: the check-in.
    let log = t.store.read_athlete(a, None).await.unwrap();
    let decoder = projections::Decoder::default();
    let last_input = log
        .iter()
        .filter(|e| changes_inputs(&decoder.decode(e).unwrap_or(DomainEvent::Foreign)))
        .map(|e| e.position)
        .max()
        .unwrap();
    assert_eq!(log.last().unwrap().event_type, "DailyCheckInLogged");
    assert!(
        changed
            .iter()
            .any(|r| r.contains(&a.to_string()) && r.ends_with(&format!("position={last_input}"))),
        "{changed:#?}"
    );

    // 1 goes through the overrides one event at a time, 37 cuts activities at odd places.
    for batch in [500, 37, 1] {
        let batched = rebuilt(&t, batch, false).await;
        assert_same(&NAMES, batch, &single, &batched);
    }
}

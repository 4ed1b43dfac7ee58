//! `apply_batch` of the activities and admin-metrics projections leaves exactly the rows that
//! applying each event in turn does, on both stores: the same log is rebuilt one event per
//! batch and then in large (and odd-sized) batches, and every table is compared row by row.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use commands::CommandContext;
use devtools::demo::{DemoConfig, seed_direct};
use domain::activity::{
    ActivityCommand, ActivitySource, DeleteActivity, MarkAsRace, RecordActivity,
    RecordPerceivedEffort, SetWorkoutType, Sport, UpdateActivity, WorkoutType,
};
use domain::athlete::{Athlete, AthleteCommand, ErasureReason};
use projections::activities::ActivitiesProjection;
use projections::admin_metrics::AdminMetricsProjection;
use projections::{Engine, Projection, ReadDb};
use sqlx::Row;
use store::testing::TestStore;
use uuid::Uuid;

mod support;
use support::{PerEvent, assert_same, bus, dump, on_activity};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_batches_equal_single_events() {
    batches_equal_single_events(TestStore::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_batches_equal_single_events() {
    batches_equal_single_events(TestStore::postgres().await).await;
}

/// `batch == 1`: the per-event reference (default `apply_batch`); otherwise the overrides.
async fn engine(t: &TestStore, batch: i64) -> Engine {
    let db = ReadDb::connect(&t.url).await.unwrap();
    let all: Vec<Arc<dyn Projection>> = if batch == 1 {
        vec![
            Arc::new(PerEvent(ActivitiesProjection)),
            Arc::new(PerEvent(AdminMetricsProjection)),
        ]
    } else {
        vec![
            Arc::new(ActivitiesProjection),
            Arc::new(AdminMetricsProjection),
        ]
    };
    Engine::new(t.store.clone(), db, all).with_batch(batch)
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
        avg_hr_bpm: None,
        max_hr_bpm: Some(181.0),
        elevation_gain_m: None,
        elevation_loss_m: None,
        source: ActivitySource::Manual,
        external_id: None,
        laps: vec![],
        samples: None,
    })
}

fn update(athlete: Uuid, name: &str) -> ActivityCommand {
    ActivityCommand::UpdateActivity(UpdateActivity {
        athlete_id: athlete,
        name: Some(name.into()),
        sport: None,
        distance_m: Some(8_123.5),
        moving_time_s: None,
        avg_hr_bpm: Some(151.0),
        notes: Some("windy".into()),
    })
}

fn race(athlete: Uuid) -> ActivityCommand {
    ActivityCommand::MarkAsRace(MarkAsRace {
        athlete_id: athlete,
        race_name: Some("Town 10k".into()),
        official_distance_m: None,
        official_time_s: Some(2_399.5),
    })
}

fn effort(athlete: Uuid, rpe: u8) -> ActivityCommand {
    ActivityCommand::RecordPerceivedEffort(RecordPerceivedEffort {
        athlete_id: athlete,
        effort: rpe,
        leg_feel: Some(3),
        mood_before: None,
        mood_after: Some(4),
        energy_before: None,
        energy_after: None,
        notes: Some("ok".into()),
    })
}

async fn rebuilt(t: &TestStore, batch: i64) -> Vec<Vec<String>> {
    let engine = engine(t, batch).await;
    let pool = engine.db().pool.clone();
    let mut out = Vec::new();
    for name in ["activities", "admin_metrics"] {
        let p = engine.projection(name).unwrap().clone();
        let p = p.as_ref();
        engine.rebuild(p.name(), |_, _| {}).await.unwrap();
        assert!(
            engine.skipped(p.name()).await.unwrap().is_empty(),
            "{} skipped events with batch {batch}",
            p.name()
        );
        out.push(dump(&engine, &pool, p).await);
    }
    engine.release_leases().await.unwrap();
    out
}

async fn batches_equal_single_events(t: TestStore) {
    let config = DemoConfig {
        seed: 7,
        athletes: 3,
        days: 60,
        end_date: Utc::now().date_naive() - chrono::Duration::days(1),
    };
    let seeded = seed_direct(&t.store, &config, 1, |_, _| {}).await.unwrap();
    assert!(seeded > 100, "seeded only {seeded} events");

    // Find seeded activities and athletes to change through the command path.
    let first = engine(&t, 500).await;
    first
        .catch_up(&ActivitiesProjection, Duration::from_secs(120))
        .await
        .unwrap();
    let tables = first.active_tables("activities").await.unwrap();
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT activity_id, athlete_id, max_hr_bpm FROM {} ORDER BY athlete_id, start_time_us",
        tables.table("activities")
    )))
    .fetch_all(&first.db().pool)
    .await
    .unwrap();
    first.release_leases().await.unwrap();
    let ids: Vec<(Uuid, Uuid, Option<f64>)> = rows
        .iter()
        .map(|r| {
            (
                r.get::<String, _>(0).parse().unwrap(),
                r.get::<String, _>(1).parse().unwrap(),
                r.get::<Option<f64>, _>(2),
            )
        })
        .collect();
    let a = ids[0].1;
    // The update sets an average of 151 bpm, which the domain refuses above the recorded
    // maximum: the activity it updates is one whose maximum allows it.
    let mut mine: Vec<Uuid> = ids.iter().filter(|i| i.1 == a).map(|i| i.0).collect();
    let updatable = ids
        .iter()
        .position(|i| i.1 == a && i.2.is_none_or(|max| max >= 151.0))
        .expect("an activity whose maximum heart rate allows the update");
    let target = ids[updatable].0;
    mine.retain(|&id| id != target);
    mine.insert(0, target);
    let erased = ids.iter().map(|i| i.1).find(|&b| b != a).unwrap();
    assert!(mine.len() >= 4, "athlete {a} has {} activities", mine.len());
    let bus = bus(&t);

    // Activities recorded in earlier batches: per-event updates.
    on_activity(&bus, a, mine[0], update(a, "Hill reps")).await;
    on_activity(
        &bus,
        a,
        mine[0],
        ActivityCommand::SetWorkoutType(SetWorkoutType {
            athlete_id: a,
            workout_type: WorkoutType::Intervals,
        }),
    )
    .await;
    on_activity(&bus, a, mine[1], race(a)).await;
    on_activity(&bus, a, mine[2], effort(a, 6)).await;
    on_activity(
        &bus,
        a,
        mine[3],
        ActivityCommand::DeleteActivity(DeleteActivity { athlete_id: a }),
    )
    .await;

    // New activities whose later events share their batch: folded into one row.
    let folded = Uuid::now_v7();
    on_activity(&bus, a, folded, recording(a, folded)).await;
    on_activity(&bus, a, folded, update(a, "Tempo")).await;
    on_activity(&bus, a, folded, race(a)).await;
    on_activity(&bus, a, folded, effort(a, 8)).await;
    on_activity(&bus, a, folded, effort(a, 7)).await;
    let gone = Uuid::now_v7();
    on_activity(&bus, a, gone, recording(a, gone)).await;
    on_activity(&bus, a, gone, update(a, "Oops")).await;
    on_activity(
        &bus,
        a,
        gone,
        ActivityCommand::DeleteActivity(DeleteActivity { athlete_id: a }),
    )
    .await;
    let after = Uuid::now_v7();
    on_activity(&bus, a, after, recording(a, after)).await;

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
    on_activity(&bus, a, last, update(a, "Cool-down")).await;

    let single = rebuilt(&t, 1).await;
    assert!(
        single[1]
            .iter()
            .any(|r| r.starts_with("active_days:") && !r.ends_with("athletes=1")),
        "no day with several active athletes: {:#?}",
        single[1]
    );
    assert!(
        single[0].len() > 10 && single[1].len() > 10,
        "too few rows to compare: {} and {}",
        single[0].len(),
        single[1].len()
    );
    assert!(
        single[0].iter().any(|r| r.contains("Tempo")),
        "the folded activity is missing"
    );
    assert!(!single[0].iter().any(|r| r.contains(&erased.to_string())));
    // 1 goes through the override one event at a time, 37 cuts streams at odd places.
    for batch in [500, 37, 1] {
        let batched = rebuilt(&t, batch).await;
        assert_same(&["activities", "admin_metrics"], batch, &single, &batched);
    }
}

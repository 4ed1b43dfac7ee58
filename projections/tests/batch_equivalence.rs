//! `apply_batch` of the journal and profile projections leaves exactly the rows that applying
//! each event in turn does, on both stores: the same log is rebuilt one event per batch through
//! the trait's default and then in large (and odd-sized) batches through the overrides, and
//! every table is compared row by row.

use std::sync::Arc;

use chrono::{NaiveDate, Utc};
use commands::{CommandBus, CommandContext};
use devtools::demo::{DemoConfig, seed_direct};
use domain::athlete::{
    Athlete, AthleteCommand, CoachAccessScope, ErasureReason, Nutrients, Physiology, TrainingGoal,
};
use domain::journal::{
    CheckInValues, DeleteNutritionEntry, GiveInsightFeedback, Journal, JournalCommand,
    LogBodyComposition, LogDailyCheckIn, LogNutritionEntry, LogWorkPattern, NutritionEntryType,
    NutritionValues, UpdateNutritionEntry, WorkType,
};
use projections::journal::JournalProjection;
use projections::profile::ProfileProjection;
use projections::{Engine, Projection, ReadDb};
use sqlx::Row;
use store::testing::TestStore;
use uuid::Uuid;

mod support;
use support::{Checked, PerEvent, assert_same, bus, dump};

const NAMES: [&str; 2] = ["journal", "profile"];

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
            Arc::new(PerEvent(JournalProjection)),
            Arc::new(PerEvent(ProfileProjection)),
        ]
    } else {
        vec![
            Arc::new(Checked(JournalProjection)),
            Arc::new(Checked(ProfileProjection)),
        ]
    };
    Engine::new(t.store.clone(), db, all).with_batch(batch)
}

async fn rebuilt(t: &TestStore, batch: i64, reference: bool) -> Vec<Vec<String>> {
    let engine = engine(t, batch, reference).await;
    let pool = engine.db().pool.clone();
    let mut out = Vec::new();
    for name in NAMES {
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

async fn journal(bus: &CommandBus, command: JournalCommand) {
    let (athlete, _) = command.journal();
    bus.execute::<Journal>(
        &CommandContext::athlete(athlete),
        &command.aggregate_id(),
        command.clone(),
    )
    .await
    .unwrap_or_else(|e| panic!("{command:?}: {e}"));
}

fn check_in(athlete: Uuid, day: NaiveDate, sleep_h: Option<f64>, notes: &str) -> JournalCommand {
    JournalCommand::LogDailyCheckIn(LogDailyCheckIn {
        athlete_id: athlete,
        date: day,
        values: CheckInValues {
            sleep_h,
            sleep_quality: Some(4),
            hrv_ms: None,
            resting_hr_bpm: Some(48.5),
            stress: None,
            soreness: Some(2),
            readiness: None,
            notes: Some(notes.into()),
        },
    })
}

fn meal(calories_kcal: Option<f64>, notes: Option<&str>) -> NutritionValues {
    NutritionValues {
        entry_type: NutritionEntryType::Daily,
        activity_id: None,
        calories_kcal,
        protein_g: Some(21.5),
        carbohydrate_g: None,
        fat_g: None,
        fibre_g: None,
        caffeine_mg: None,
        notes: notes.map(Into::into),
    }
}

fn log_meal(athlete: Uuid, day: NaiveDate, entry_id: Uuid, kcal: f64) -> JournalCommand {
    JournalCommand::LogNutritionEntry(LogNutritionEntry {
        athlete_id: athlete,
        date: day,
        entry_id,
        values: meal(Some(kcal), None),
        logged_at: Some(Utc::now() - chrono::Duration::days(2)),
    })
}

fn update_meal(athlete: Uuid, day: NaiveDate, entry_id: Uuid, notes: &str) -> JournalCommand {
    JournalCommand::UpdateNutritionEntry(UpdateNutritionEntry {
        athlete_id: athlete,
        date: day,
        entry_id,
        values: meal(None, Some(notes)),
        logged_at: Utc::now() - chrono::Duration::days(2),
    })
}

fn delete_meal(athlete: Uuid, day: NaiveDate, entry_id: Uuid) -> JournalCommand {
    JournalCommand::DeleteNutritionEntry(DeleteNutritionEntry {
        athlete_id: athlete,
        date: day,
        entry_id,
    })
}

fn feedback(athlete: Uuid, day: NaiveDate, insight: &str, helpful: bool) -> JournalCommand {
    JournalCommand::GiveInsightFeedback(GiveInsightFeedback {
        athlete_id: athlete,
        date: day,
        insight_id: insight.into(),
        helpful,
        notes: helpful.then(|| "spot on".into()),
    })
}

/// A day of athlete `a` in the command path: replacements, an entry logged, updated and
/// deleted, another logged and updated, feedback on one insight several times.
async fn busy_day(bus: &CommandBus, a: Uuid, day: NaiveDate) {
    journal(bus, check_in(a, day, Some(7.5), "first")).await;
    journal(bus, check_in(a, day, None, "second")).await;
    let (gone, kept) = (Uuid::now_v7(), Uuid::now_v7());
    journal(bus, log_meal(a, day, gone, 640.0)).await;
    journal(bus, log_meal(a, day, kept, 420.0)).await;
    journal(bus, update_meal(a, day, gone, "oops")).await;
    journal(bus, delete_meal(a, day, gone)).await;
    journal(bus, update_meal(a, day, kept, "more rice")).await;
    for work_type in [WorkType::Desk, WorkType::Travel] {
        journal(
            bus,
            JournalCommand::LogWorkPattern(LogWorkPattern {
                athlete_id: a,
                date: day,
                work_type,
                hours_worked: None,
                stress: Some(3),
                notes: None,
            }),
        )
        .await;
    }
    journal(
        bus,
        JournalCommand::LogBodyComposition(LogBodyComposition {
            athlete_id: a,
            date: day,
            weight_kg: Some(61.2),
            body_fat_pct: None,
            muscle_mass_kg: Some(30.0),
            height_cm: Some(170.0),
            notes: Some("morning".into()),
        }),
    )
    .await;
    for helpful in [true, false, true] {
        journal(bus, feedback(a, day, "sleep-debt", helpful)).await;
    }
    journal(bus, feedback(a, day, "long-run", false)).await;
}

async fn athlete(bus: &CommandBus, a: Uuid, command: AthleteCommand) {
    bus.execute::<Athlete>(&CommandContext::athlete(a), &a.to_string(), command.clone())
        .await
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
}

/// Settings changed after the seeded registration (so, with small batches, in later batches):
/// each event folds into the profile row; a coach granted twice and another revoked, a preset
/// saved twice.
async fn settings(bus: &CommandBus, a: Uuid, name: &str) {
    athlete(
        bus,
        a,
        AthleteCommand::UpdateProfile {
            display_name: name.into(),
            email: format!("{}@example.org", name.to_lowercase()),
            goals: [TrainingGoal::RunFaster].into(),
        },
    )
    .await;
    athlete(
        bus,
        a,
        AthleteCommand::ChangePhysiology(Physiology {
            hr_max_bpm: Some(191),
            resting_hr_bpm: None,
            threshold_hr_bpm: None,
            threshold_pace_s_per_km: None,
            sex: None,
            birth_date: None,
            height_cm: Some(168.5),
        }),
    )
    .await;
    let (kept, revoked) = (Uuid::now_v7(), Uuid::now_v7());
    for (coach_id, scope) in [
        (kept, CoachAccessScope::ReadOnly),
        (revoked, CoachAccessScope::ReadOnly),
        (kept, CoachAccessScope::ReadWrite),
    ] {
        athlete(bus, a, AthleteCommand::GrantCoachAccess { coach_id, scope }).await;
    }
    athlete(
        bus,
        a,
        AthleteCommand::RevokeCoachAccess { coach_id: revoked },
    )
    .await;
    let preset_id = Uuid::now_v7();
    for caffeine_mg in [Some(75.0), None] {
        athlete(
            bus,
            a,
            AthleteCommand::SaveNutritionPreset {
                preset_id,
                name: format!("{name}'s gel"),
                nutrients: Nutrients {
                    calories_kcal: Some(100.0),
                    caffeine_mg,
                    ..Nutrients::default()
                },
            },
        )
        .await;
    }
}

async fn batches_equal_single_events(t: TestStore) {
    let yesterday = Utc::now().date_naive() - chrono::Duration::days(1);
    let config = DemoConfig {
        seed: 11,
        athletes: 3,
        days: 45,
        end_date: yesterday,
    };
    let seeded = seed_direct(&t.store, &config, 1, |_, _| {}).await.unwrap();
    assert!(seeded > 100, "seeded only {seeded} events");

    // The seeded athletes, from the profiles.
    let first = engine(&t, 500, false).await;
    first
        .catch_up(&ProfileProjection, std::time::Duration::from_secs(120))
        .await
        .unwrap();
    let tables = first.active_tables("profile").await.unwrap();
    let athletes: Vec<Uuid> = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT athlete_id FROM {} ORDER BY athlete_id",
        tables.table("profiles")
    )))
    .fetch_all(&first.db().pool)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get::<String, _>(0).parse().unwrap())
    .collect();
    first.release_leases().await.unwrap();
    assert!(athletes.len() >= 3, "{athletes:?}");
    let (a, erased, other) = (athletes[0], athletes[1], athletes[2]);
    let bus = bus(&t);

    busy_day(&bus, a, yesterday - chrono::Duration::days(1)).await;
    settings(&bus, other, "Renamed").await;
    busy_day(&bus, erased, yesterday - chrono::Duration::days(1)).await;
    settings(&bus, erased, "Gone").await;
    // The same entry changed in a later batch than the one that logged it.
    let late = Uuid::now_v7();
    journal(&bus, log_meal(other, yesterday, late, 300.0)).await;
    busy_day(&bus, other, yesterday).await;
    journal(&bus, update_meal(other, yesterday, late, "later")).await;
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
    busy_day(&bus, a, yesterday).await;
    journal(&bus, feedback(other, yesterday, "sleep-debt", true)).await;
    settings(&bus, a, "Later").await;

    let single = rebuilt(&t, 1, true).await;
    assert!(
        single[0].len() > 50 && !single[1].is_empty(),
        "too few rows to compare: {} and {}",
        single[0].len(),
        single[1].len()
    );
    assert!(single[0].iter().any(|r| r.contains("more rice")));
    assert!(!single[0].iter().any(|r| r.contains("oops")));
    assert!(
        single[0]
            .iter()
            .any(|r| r.starts_with("feedback_counts:") && r.contains("helpful_count=4"))
    );
    for name in ["Renamed", "Later"] {
        let profile = single[1]
            .iter()
            .find(|r| r.starts_with("profiles:") && r.contains(&format!("display_name={name:?}")))
            .unwrap_or_else(|| panic!("no profile named {name}: {:#?}", single[1]));
        assert!(profile.contains("hr_max_bpm=191") && profile.contains("height_cm=168.5"));
        let gel = format!("name=\"{name}'s gel\"");
        let presets: Vec<_> = single[1].iter().filter(|r| r.contains(&gel)).collect();
        assert!(
            presets.len() == 1 && presets[0].contains("caffeine_mg=null"),
            "{presets:?}"
        );
    }
    assert_eq!(
        single[1]
            .iter()
            .filter(|r| r.starts_with("coaches:") && r.contains("scope=\"read_write\""))
            .count(),
        2,
        "{:#?}",
        single[1]
    );
    for rows in &single {
        assert!(!rows.iter().any(|r| r.contains(&erased.to_string())));
    }
    // 1 goes through the overrides one event at a time, 37 cuts days at odd places.
    for batch in [500, 37, 1] {
        let batched = rebuilt(&t, batch, false).await;
        assert_same(&NAMES, batch, &single, &batched);
    }
}

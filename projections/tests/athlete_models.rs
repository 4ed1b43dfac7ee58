//! The athlete's own read models (profile and journal) on both stores, fed by the real command
//! path: values, replacement rules, isolation between athletes, erasure and rebuilds.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use commands::{CommandBus, CommandContext};
use domain::DomainServices;
use domain::athlete::{
    Athlete, AthleteCommand, CoachAccessScope, DayAvailability, Digest, ErasureReason,
    NotificationChoices, Nutrients, OnboardingStep, Physiology, Role, Sex, SlotStatus,
    TrainingGoal, Units, Weekday, WeeklyAvailability,
};
use domain::journal::{
    CheckInValues, DeleteNutritionEntry, GiveInsightFeedback, Journal, JournalCommand,
    LogBodyComposition, LogDailyCheckIn, LogNutritionEntry, LogWorkPattern, NutritionEntryType,
    NutritionValues, UpdateNutritionEntry, WorkType,
};
use projections::journal::{self as journal_rm, JournalProjection};
use projections::profile::{self as profile_rm, ProfileProjection};
use projections::{Engine, Projection, ReadDb};
use store::testing::TestStore;
use store::{Actor, AppendRequest, ExpectedVersion, Metadata, NewEvent, StreamId};
use uuid::Uuid;

use store::on_both_backends;

on_both_backends!(
    the_profile_shows_the_latest_settings,
    the_journal_shows_each_day,
    erasure_empties_both_read_models,
    a_rebuild_matches_the_incremental_build,
    a_profile_event_before_registration_is_skipped,
);

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// The command bus plus the log position of the last event it appended, which the read models
/// must reach before a test reads them.
struct World {
    t: TestStore,
    bus: CommandBus,
    last_position: i64,
}

impl World {
    fn new(t: TestStore) -> Self {
        let bus = CommandBus::new(
            t.store.clone(),
            DomainServices::new(Arc::new(commands::SystemClock)),
            domain::upcasters(),
        );
        Self {
            t,
            bus,
            last_position: 0,
        }
    }

    async fn athlete(&mut self, athlete: Uuid, command: AthleteCommand) {
        let done = self
            .bus
            .execute::<Athlete>(
                &CommandContext::athlete(athlete),
                &athlete.to_string(),
                command.clone(),
            )
            .await
            .unwrap_or_else(|e| panic!("{command:?}: {e}"));
        self.note(done);
    }

    async fn journal(&mut self, command: JournalCommand) {
        let (athlete, _) = command.journal();
        let done = self
            .bus
            .execute::<Journal>(
                &CommandContext::athlete(athlete),
                &command.aggregate_id(),
                command.clone(),
            )
            .await
            .unwrap_or_else(|e| panic!("{command:?}: {e}"));
        self.note(done);
    }

    fn note(&mut self, done: commands::Executed) {
        let outcome = done.outcome.expect("the command appended events");
        self.last_position = self.last_position.max(*outcome.positions.last().unwrap());
    }

    async fn engine(&self, batch: i64) -> Engine {
        let db = ReadDb::connect(&self.t.url).await.unwrap();
        Engine::new(
            self.t.store.clone(),
            db,
            vec![Arc::new(ProfileProjection), Arc::new(JournalProjection)],
        )
        .with_batch(batch)
    }

    /// Steps both projections until each has applied everything appended so far. A pass that
    /// applies nothing is not proof of that on PostgreSQL: the log stops at the oldest
    /// transaction open anywhere in the cluster, and other tests run beside this one.
    async fn build(&self, engine: &Engine) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for p in [
            &ProfileProjection as &dyn Projection,
            &JournalProjection as &dyn Projection,
        ] {
            loop {
                if engine.step(p).await.unwrap().applied > 0 {
                    continue;
                }
                if engine
                    .wait_for(&[p.name()], self.last_position, Duration::ZERO)
                    .await
                    .unwrap()
                {
                    break;
                }
                assert!(Instant::now() < deadline, "{} did not catch up", p.name());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

fn date(day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, day).unwrap()
}

fn at(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, hour, minute, 0)
        .unwrap()
}

fn register(athlete: Uuid, name: &str) -> AthleteCommand {
    AthleteCommand::Register {
        athlete_id: athlete,
        email: format!("{}@Example.org", name.replace(' ', ".")),
        display_name: name.into(),
        role: Role::Athlete,
    }
}

fn preset(id: Uuid, name: &str, nutrients: Nutrients) -> AthleteCommand {
    AthleteCommand::SaveNutritionPreset {
        preset_id: id,
        name: name.into(),
        nutrients,
    }
}

fn grant(coach_id: Uuid, scope: CoachAccessScope) -> AthleteCommand {
    AthleteCommand::GrantCoachAccess { coach_id, scope }
}

fn grid() -> WeeklyAvailability {
    let weekday = DayAvailability {
        morning: SlotStatus::Preferred,
        afternoon: SlotStatus::Unavailable,
        evening: SlotStatus::Available,
    };
    WeeklyAvailability {
        monday: weekday,
        tuesday: weekday,
        wednesday: DayAvailability::default(),
        thursday: weekday,
        friday: weekday,
        saturday: DayAvailability {
            morning: SlotStatus::Preferred,
            afternoon: SlotStatus::Available,
            evening: SlotStatus::Unavailable,
        },
        sunday: DayAvailability {
            morning: SlotStatus::Available,
            afternoon: SlotStatus::Available,
            evening: SlotStatus::Available,
        },
    }
}

fn physiology() -> Physiology {
    Physiology {
        hr_max_bpm: Some(188),
        resting_hr_bpm: Some(48),
        threshold_hr_bpm: Some(171),
        threshold_pace_s_per_km: Some(245.0),
        sex: Some(Sex::Female),
        birth_date: NaiveDate::from_ymd_opt(1990, 6, 15),
        height_cm: Some(175.0),
    }
}

// Ids fixed so assertions can name them; every athlete gets a fresh id per test.
const GEL: Uuid = Uuid::from_u128(0x0196_0000_0000_7000_8000_0000_0000_0f01);
const COFFEE: Uuid = Uuid::from_u128(0x0196_0000_0000_7000_8000_0000_0000_0f02);
const SHAKE: Uuid = Uuid::from_u128(0x0196_0000_0000_7000_8000_0000_0000_0f03);
const COACH_1: Uuid = Uuid::from_u128(0x0196_0000_0000_7000_8000_0000_0000_0c01);
const COACH_2: Uuid = Uuid::from_u128(0x0196_0000_0000_7000_8000_0000_0000_0c02);
const BREAKFAST: Uuid = Uuid::from_u128(0x0196_0000_0000_7000_8000_0000_0000_0e01);
const GEL_ENTRY: Uuid = Uuid::from_u128(0x0196_0000_0000_7000_8000_0000_0000_0e02);
const DINNER: Uuid = Uuid::from_u128(0x0196_0000_0000_7000_8000_0000_0000_0e03);
const RUN: Uuid = Uuid::from_u128(0x0196_0000_0000_7000_8000_0000_0000_0ac1);

/// Mara's account: two preference changes, a coach granted, re-scoped and another revoked, a
/// preset saved twice.
async fn mara_settings(w: &mut World, mara: Uuid) {
    w.athlete(mara, register(mara, "Mara Okafor")).await;
    w.athlete(
        mara,
        AthleteCommand::UpdateProfile {
            display_name: "Mara O.".into(),
            email: "Mara@Example.net".into(),
            goals: [TrainingGoal::RunFaster, TrainingGoal::BuildEndurance].into(),
        },
    )
    .await;
    w.athlete(
        mara,
        AthleteCommand::ChangePreferences {
            units: Units::Imperial,
            timezone: "Europe/Paris".into(),
            notifications: NotificationChoices {
                new_insights: true,
                sync_problems: true,
                coach_messages: false,
            },
            digest: Digest::Weekly {
                weekday: Weekday::Monday,
            },
        },
    )
    .await;
    w.athlete(
        mara,
        AthleteCommand::ChangePreferences {
            units: Units::Metric,
            timezone: "America/Argentina/Buenos_Aires".into(),
            notifications: NotificationChoices {
                new_insights: false,
                sync_problems: false,
                coach_messages: true,
            },
            digest: Digest::Monthly {
                weekday: Weekday::Saturday,
            },
        },
    )
    .await;
    w.athlete(mara, AthleteCommand::ChangePhysiology(physiology()))
        .await;
    w.athlete(
        mara,
        AthleteCommand::ProgressOnboarding {
            reached: OnboardingStep::ConnectStrava,
            completed: [OnboardingStep::Initial, OnboardingStep::Goals].into(),
        },
    )
    .await;
    w.athlete(
        mara,
        AthleteCommand::ChangeRole {
            to: Role::Coach,
            changed_by: Uuid::now_v7(),
        },
    )
    .await;
    w.athlete(mara, grant(COACH_1, CoachAccessScope::ReadOnly))
        .await;
    w.athlete(mara, grant(COACH_2, CoachAccessScope::ReadWrite))
        .await;
    w.athlete(mara, grant(COACH_1, CoachAccessScope::ReadWrite))
        .await;
    w.athlete(
        mara,
        AthleteCommand::RevokeCoachAccess { coach_id: COACH_2 },
    )
    .await;
    let gel = Nutrients {
        calories_kcal: Some(100.0),
        carbohydrate_g: Some(25.0),
        caffeine_mg: Some(75.0),
        ..Nutrients::default()
    };
    w.athlete(mara, preset(GEL, "Usual gel", gel)).await;
    w.athlete(
        mara,
        preset(
            GEL,
            "Usual gel",
            Nutrients {
                caffeine_mg: Some(0.0),
                ..gel
            },
        ),
    )
    .await;
    w.athlete(
        mara,
        preset(
            COFFEE,
            "Black coffee",
            Nutrients {
                calories_kcal: Some(2.0),
                caffeine_mg: Some(95.0),
                ..Nutrients::default()
            },
        ),
    )
    .await;
    w.athlete(
        mara,
        AthleteCommand::SetTrainingAvailability {
            availability: grid(),
        },
    )
    .await;
}

/// Tomas has a coach and a preset, but never set his availability or preferences.
async fn tomas_settings(w: &mut World, tomas: Uuid) {
    w.athlete(tomas, register(tomas, "Tomas Berg")).await;
    w.athlete(tomas, grant(COACH_2, CoachAccessScope::ReadOnly))
        .await;
    w.athlete(
        tomas,
        preset(
            SHAKE,
            "Recovery shake",
            Nutrients {
                protein_g: Some(25.0),
                ..Nutrients::default()
            },
        ),
    )
    .await;
}

fn check_in(athlete: Uuid, day: NaiveDate, sleep_h: f64, quality: u8) -> JournalCommand {
    JournalCommand::LogDailyCheckIn(LogDailyCheckIn {
        athlete_id: athlete,
        date: day,
        values: CheckInValues {
            sleep_h: Some(sleep_h),
            sleep_quality: Some(quality),
            hrv_ms: None,
            resting_hr_bpm: None,
            stress: None,
            soreness: None,
            readiness: None,
            notes: None,
        },
    })
}

fn meal(entry_type: NutritionEntryType, calories_kcal: f64) -> NutritionValues {
    NutritionValues {
        entry_type,
        activity_id: None,
        calories_kcal: Some(calories_kcal),
        protein_g: None,
        carbohydrate_g: None,
        fat_g: None,
        fibre_g: None,
        caffeine_mg: None,
        notes: None,
    }
}

fn log_meal(
    athlete: Uuid,
    day: NaiveDate,
    entry_id: Uuid,
    values: NutritionValues,
    logged_at: DateTime<Utc>,
) -> JournalCommand {
    JournalCommand::LogNutritionEntry(LogNutritionEntry {
        athlete_id: athlete,
        date: day,
        entry_id,
        values,
        logged_at: Some(logged_at),
    })
}

fn feedback(athlete: Uuid, day: NaiveDate, insight: &str, helpful: bool) -> JournalCommand {
    JournalCommand::GiveInsightFeedback(GiveInsightFeedback {
        athlete_id: athlete,
        date: day,
        insight_id: insight.into(),
        helpful,
        notes: None,
    })
}

fn body(athlete: Uuid, day: NaiveDate, weight_kg: f64, height_cm: Option<f64>) -> JournalCommand {
    JournalCommand::LogBodyComposition(LogBodyComposition {
        athlete_id: athlete,
        date: day,
        weight_kg: Some(weight_kg),
        body_fat_pct: Some(12.5),
        muscle_mass_kg: Some(33.2),
        height_cm,
        notes: None,
    })
}

/// Mara's 19th and 20th of November 2026. On the 20th: two check-ins (the second wins), a
/// breakfast updated, a gel logged, updated and deleted, work, body composition, two insight
/// ratings. On the 19th: a dinner, a weigh-in without height, one rating.
async fn mara_journal(w: &mut World, mara: Uuid) {
    let day = date(20);
    w.journal(JournalCommand::LogDailyCheckIn(LogDailyCheckIn {
        athlete_id: mara,
        date: day,
        values: CheckInValues {
            sleep_h: Some(6.0),
            sleep_quality: Some(2),
            hrv_ms: Some(51.0),
            resting_hr_bpm: None,
            stress: None,
            soreness: None,
            readiness: None,
            notes: Some("Late flight".into()),
        },
    }))
    .await;
    w.journal(JournalCommand::LogDailyCheckIn(LogDailyCheckIn {
        athlete_id: mara,
        date: day,
        values: CheckInValues {
            sleep_h: Some(7.5),
            sleep_quality: Some(4),
            hrv_ms: Some(68.0),
            resting_hr_bpm: Some(48.0),
            stress: Some(2),
            soreness: Some(3),
            readiness: Some(4),
            notes: None,
        },
    }))
    .await;
    let breakfast = NutritionValues {
        activity_id: Some(RUN),
        protein_g: Some(14.0),
        carbohydrate_g: Some(68.0),
        notes: Some("Porridge".into()),
        ..meal(NutritionEntryType::PreActivity, 420.0)
    };
    w.journal(log_meal(mara, day, BREAKFAST, breakfast, at(20, 6, 45)))
        .await;
    w.journal(JournalCommand::UpdateNutritionEntry(UpdateNutritionEntry {
        athlete_id: mara,
        date: day,
        entry_id: BREAKFAST,
        values: NutritionValues {
            activity_id: Some(RUN),
            protein_g: Some(16.0),
            caffeine_mg: Some(95.0),
            ..meal(NutritionEntryType::PreActivity, 450.0)
        },
        logged_at: at(20, 6, 50),
    }))
    .await;
    let gel = NutritionValues {
        activity_id: Some(RUN),
        ..meal(NutritionEntryType::DuringActivity, 100.0)
    };
    w.journal(log_meal(mara, day, GEL_ENTRY, gel.clone(), at(20, 8, 10)))
        .await;
    w.journal(JournalCommand::UpdateNutritionEntry(UpdateNutritionEntry {
        athlete_id: mara,
        date: day,
        entry_id: GEL_ENTRY,
        values: NutritionValues {
            calories_kcal: Some(200.0),
            ..gel
        },
        logged_at: at(20, 8, 15),
    }))
    .await;
    w.journal(JournalCommand::DeleteNutritionEntry(DeleteNutritionEntry {
        athlete_id: mara,
        date: day,
        entry_id: GEL_ENTRY,
    }))
    .await;
    w.journal(JournalCommand::LogWorkPattern(LogWorkPattern {
        athlete_id: mara,
        date: day,
        work_type: WorkType::Desk,
        hours_worked: Some(8.5),
        stress: Some(3),
        notes: None,
    }))
    .await;
    w.journal(body(mara, day, 70.0, Some(175.0))).await;
    w.journal(feedback(mara, day, "cadence-drift", true)).await;
    w.journal(feedback(mara, day, "hrv-trend", true)).await;

    let before = date(19);
    w.journal(log_meal(
        mara,
        before,
        DINNER,
        meal(NutritionEntryType::Daily, 780.0),
        at(19, 19, 30),
    ))
    .await;
    w.journal(body(mara, before, 70.4, None)).await;
    w.journal(feedback(mara, before, "cadence-drift", false))
        .await;
}

/// Tomas logs on Mara's busiest day, reusing her breakfast's entry id (clients pick ids).
async fn tomas_journal(w: &mut World, tomas: Uuid) {
    w.journal(check_in(tomas, date(20), 5.0, 1)).await;
    w.journal(log_meal(
        tomas,
        date(20),
        BREAKFAST,
        meal(NutritionEntryType::Daily, 300.0),
        at(20, 7, 0),
    ))
    .await;
    w.journal(feedback(tomas, date(20), "cadence-drift", false))
        .await;
    w.journal(body(tomas, date(18), 81.0, Some(182.0))).await;
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

async fn the_profile_shows_the_latest_settings(t: TestStore) {
    let started = Utc::now();
    let mut w = World::new(t);
    let (mara, tomas) = (Uuid::now_v7(), Uuid::now_v7());
    mara_settings(&mut w, mara).await;
    tomas_settings(&mut w, tomas).await;
    let engine = w.engine(500).await;
    w.build(&engine).await;
    let t = engine.active_tables("profile").await.unwrap();
    let pool = &engine.db().pool;

    let p = profile_rm::profile(pool, &t, mara).await.unwrap().unwrap();
    assert_eq!(p.athlete_id, mara);
    assert_eq!(p.display_name, "Mara O.");
    assert_eq!(p.email, "mara@example.net", "stored lowercased");
    assert_eq!(p.role, Role::Coach);
    assert!(
        started <= p.registered_at && p.registered_at <= Utc::now(),
        "{}",
        p.registered_at
    );
    assert_eq!(
        p.goals,
        BTreeSet::from([TrainingGoal::RunFaster, TrainingGoal::BuildEndurance])
    );
    // The second preference change, whole: nothing of the first survives.
    assert_eq!(p.preferences.units, Units::Metric);
    assert_eq!(p.preferences.timezone, "America/Argentina/Buenos_Aires");
    assert_eq!(
        p.preferences.notifications,
        NotificationChoices {
            new_insights: false,
            sync_problems: false,
            coach_messages: true,
        }
    );
    assert_eq!(
        p.preferences.digest,
        Digest::Monthly {
            weekday: Weekday::Saturday
        }
    );
    assert_eq!(p.physiology, physiology());
    let onboarding = p.onboarding.unwrap();
    assert_eq!(onboarding.reached, OnboardingStep::ConnectStrava);
    assert_eq!(
        onboarding.completed,
        BTreeSet::from([OnboardingStep::Initial, OnboardingStep::Goals])
    );

    let coaches = profile_rm::coaches(pool, &t, mara).await.unwrap();
    assert_eq!(coaches.len(), 1, "{coaches:?}");
    assert_eq!(coaches[0].coach_id, COACH_1);
    assert_eq!(coaches[0].scope, CoachAccessScope::ReadWrite);

    let presets = profile_rm::nutrition_presets(pool, &t, mara).await.unwrap();
    let names: Vec<&str> = presets.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["Black coffee", "Usual gel"]);
    assert_eq!(presets[0].preset_id, COFFEE);
    assert_eq!(presets[0].nutrients.caffeine_mg, Some(95.0));
    assert_eq!(presets[0].nutrients.protein_g, None);
    assert_eq!(presets[1].preset_id, GEL);
    assert_eq!(
        presets[1].nutrients,
        Nutrients {
            calories_kcal: Some(100.0),
            carbohydrate_g: Some(25.0),
            caffeine_mg: Some(0.0),
            ..Nutrients::default()
        },
        "the second save replaced the first, and its zero stays a zero"
    );

    let availability = profile_rm::availability(pool, &t, mara)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(availability.weekly, grid());
    assert_eq!(
        availability.weekly.wednesday.morning,
        SlotStatus::Unavailable
    );
    assert_eq!(availability.weekly.saturday.morning, SlotStatus::Preferred);

    // Tomas: the documented defaults, and only his own coach and preset.
    let p = profile_rm::profile(pool, &t, tomas).await.unwrap().unwrap();
    assert_eq!(p.display_name, "Tomas Berg");
    assert_eq!(p.email, "tomas.berg@example.org");
    assert_eq!(p.role, Role::Athlete);
    assert!(p.goals.is_empty());
    assert_eq!(p.preferences.units, Units::Metric);
    assert_eq!(p.preferences.timezone, "UTC");
    assert_eq!(p.preferences.notifications, NotificationChoices::default());
    assert_eq!(p.preferences.digest, Digest::Off);
    assert_eq!(p.physiology, Physiology::default());
    assert_eq!(p.onboarding, None);
    assert_eq!(
        profile_rm::availability(pool, &t, tomas).await.unwrap(),
        None
    );
    let coaches = profile_rm::coaches(pool, &t, tomas).await.unwrap();
    assert_eq!(
        coaches
            .iter()
            .map(|c| (c.coach_id, c.scope))
            .collect::<Vec<_>>(),
        [(COACH_2, CoachAccessScope::ReadOnly)]
    );
    let presets = profile_rm::nutrition_presets(pool, &t, tomas)
        .await
        .unwrap();
    assert_eq!(
        presets.iter().map(|p| p.preset_id).collect::<Vec<_>>(),
        [SHAKE]
    );

    // The coaches' rosters: the current grants, with the athletes' current names.
    let tables = &t;
    let roster = |coach| async move {
        profile_rm::athletes_of_coach(pool, tables, coach)
            .await
            .unwrap()
            .into_iter()
            .map(|a| (a.athlete_id, a.display_name, a.scope))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        roster(COACH_1).await,
        [(mara, "Mara O.".to_string(), CoachAccessScope::ReadWrite)]
    );
    assert_eq!(
        roster(COACH_2).await,
        [(tomas, "Tomas Berg".to_string(), CoachAccessScope::ReadOnly)]
    );
    assert!(roster(Uuid::now_v7()).await.is_empty());

    assert_eq!(
        profile_rm::profile(pool, &t, Uuid::now_v7()).await.unwrap(),
        None
    );
}

async fn the_journal_shows_each_day(t: TestStore) {
    let mut w = World::new(t);
    let (mara, tomas) = (Uuid::now_v7(), Uuid::now_v7());
    mara_journal(&mut w, mara).await;
    tomas_journal(&mut w, tomas).await;
    let engine = w.engine(500).await;
    w.build(&engine).await;
    let t = engine.active_tables("journal").await.unwrap();
    let pool = &engine.db().pool;

    let d = journal_rm::day(pool, &t, mara, date(20)).await.unwrap();
    assert_eq!(d.date, date(20));
    let c = &d.check_in.as_ref().unwrap().values;
    assert_eq!(c.sleep_h, Some(7.5));
    assert_eq!(c.sleep_quality, Some(4));
    assert_eq!(c.hrv_ms, Some(68.0));
    assert_eq!(c.resting_hr_bpm, Some(48.0));
    assert_eq!(
        (c.stress, c.soreness, c.readiness),
        (Some(2), Some(3), Some(4))
    );
    assert_eq!(c.notes, None, "the later check-in replaced the notes too");

    assert_eq!(
        d.nutrition.len(),
        1,
        "the gel was deleted: {:?}",
        d.nutrition
    );
    let n = &d.nutrition[0];
    assert_eq!(n.entry_id, BREAKFAST);
    assert_eq!(n.entry_type, NutritionEntryType::PreActivity);
    assert_eq!(n.activity_id, Some(RUN));
    assert_eq!(n.calories_kcal, Some(450.0));
    assert_eq!(n.protein_g, Some(16.0));
    assert_eq!(n.caffeine_mg, Some(95.0));
    assert_eq!(n.carbohydrate_g, None, "an update leaves out what it omits");
    assert_eq!(n.notes, None);
    assert_eq!(n.logged_at, at(20, 6, 50));

    let work = d.work.as_ref().unwrap();
    assert_eq!(work.work_type, WorkType::Desk);
    assert_eq!(work.hours_worked_h, Some(8.5));
    assert_eq!(work.stress, Some(3));

    let b = d.body_composition.as_ref().unwrap();
    assert_eq!(b.weight_kg, Some(70.0));
    assert_eq!(b.body_fat_pct, Some(12.5));
    assert_eq!(b.muscle_mass_kg, Some(33.2));
    assert_eq!(b.bmi_kg_m2, Some(22.9));

    let ratings: Vec<(&str, bool)> = d
        .insight_feedback
        .iter()
        .map(|f| (f.insight_id.as_str(), f.helpful))
        .collect();
    assert_eq!(ratings, [("cadence-drift", true), ("hrv-trend", true)]);

    // Only days with data, oldest first; the 18th is Tomas's, not Mara's.
    let days = journal_rm::range(pool, &t, mara, date(17), date(22))
        .await
        .unwrap();
    assert_eq!(
        days.iter().map(|d| d.date).collect::<Vec<_>>(),
        [date(19), date(20)]
    );
    assert_eq!(days[1], d);
    let before = &days[0];
    assert_eq!(before.check_in, None);
    assert_eq!(before.work, None);
    assert_eq!(before.nutrition.len(), 1);
    assert_eq!(before.nutrition[0].entry_id, DINNER);
    assert_eq!(before.nutrition[0].calories_kcal, Some(780.0));
    assert_eq!(before.nutrition[0].activity_id, None);
    let weigh_in = before.body_composition.as_ref().unwrap();
    assert_eq!(weigh_in.weight_kg, Some(70.4));
    assert_eq!(weigh_in.bmi_kg_m2, None, "no height known that day");
    assert_eq!(before.insight_feedback.len(), 1);
    assert!(!before.insight_feedback[0].helpful);

    // Both ends are included.
    let ends = journal_rm::range(pool, &t, mara, date(19), date(20))
        .await
        .unwrap();
    assert_eq!(ends.len(), 2);
    assert!(
        journal_rm::range(pool, &t, mara, date(21), date(25))
            .await
            .unwrap()
            .is_empty()
    );
    let empty = journal_rm::day(pool, &t, mara, date(18)).await.unwrap();
    assert_eq!(empty.date, date(18));
    assert_eq!(
        (empty.check_in, empty.work, empty.body_composition),
        (None, None, None)
    );
    assert!(empty.nutrition.is_empty() && empty.insight_feedback.is_empty());

    let counts = journal_rm::insight_feedback_counts(pool, &t, mara)
        .await
        .unwrap();
    let counts: Vec<(&str, i64, i64)> = counts
        .iter()
        .map(|c| (c.insight_id.as_str(), c.helpful_count, c.not_helpful_count))
        .collect();
    assert_eq!(counts, [("cadence-drift", 1, 1), ("hrv-trend", 1, 0)]);
    let totals = journal_rm::insight_feedback_totals(pool, &t, mara)
        .await
        .unwrap();
    assert_eq!(
        (
            totals.insights_count,
            totals.helpful_count,
            totals.not_helpful_count
        ),
        (2, 2, 1)
    );

    // Tomas's day shares a date and an entry id with Mara's; neither sees the other's.
    let theirs = journal_rm::day(pool, &t, tomas, date(20)).await.unwrap();
    assert_eq!(theirs.check_in.as_ref().unwrap().values.sleep_h, Some(5.0));
    assert_eq!(theirs.nutrition.len(), 1);
    assert_eq!(theirs.nutrition[0].entry_id, BREAKFAST);
    assert_eq!(theirs.nutrition[0].calories_kcal, Some(300.0));
    assert_eq!(theirs.work, None);
    assert_eq!(
        journal_rm::day(pool, &t, tomas, date(18))
            .await
            .unwrap()
            .body_composition
            .unwrap()
            .bmi_kg_m2,
        Some(24.5)
    );
    let counts = journal_rm::insight_feedback_counts(pool, &t, tomas)
        .await
        .unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!(
        (counts[0].helpful_count, counts[0].not_helpful_count),
        (0, 1)
    );
}

async fn erasure_empties_both_read_models(t: TestStore) {
    let mut w = World::new(t);
    let (mara, tomas) = (Uuid::now_v7(), Uuid::now_v7());
    mara_settings(&mut w, mara).await;
    mara_journal(&mut w, mara).await;
    tomas_settings(&mut w, tomas).await;
    tomas_journal(&mut w, tomas).await;
    // Tomas has Mara as a coach: that grant is in his stream, under his key.
    w.athlete(tomas, grant(mara, CoachAccessScope::ReadOnly))
        .await;
    let engine = w.engine(500).await;
    w.build(&engine).await;
    let profile_t = engine.active_tables("profile").await.unwrap();
    let journal_t = engine.active_tables("journal").await.unwrap();
    let pool = &engine.db().pool;
    assert_eq!(
        profile_rm::grantors_of(pool, &profile_t, mara)
            .await
            .unwrap(),
        vec![tomas]
    );
    assert!(
        profile_rm::profile(pool, &profile_t, mara)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        journal_rm::range(pool, &journal_t, mara, date(1), date(30))
            .await
            .unwrap()
            .len(),
        2
    );

    w.athlete(
        mara,
        AthleteCommand::Erase {
            requested_by: mara,
            reason: ErasureReason::AthleteRequest,
        },
    )
    .await;
    w.build(&engine).await;

    assert_eq!(
        profile_rm::profile(pool, &profile_t, mara).await.unwrap(),
        None
    );
    assert_eq!(
        profile_rm::availability(pool, &profile_t, mara)
            .await
            .unwrap(),
        None
    );
    assert!(
        profile_rm::coaches(pool, &profile_t, mara)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        profile_rm::nutrition_presets(pool, &profile_t, mara)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        journal_rm::range(pool, &journal_t, mara, date(1), date(30))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        journal_rm::insight_feedback_counts(pool, &journal_t, mara)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        journal_rm::insight_feedback_totals(pool, &journal_t, mara)
            .await
            .unwrap()
            .insights_count,
        0
    );
    // No row anywhere still carries her id (nor, through it, anything she wrote).
    for (name, tables) in [("profile", &profile_t), ("journal", &journal_t)] {
        for base in engine.projection(name).unwrap().tables() {
            let left: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT CAST(count(*) AS BIGINT) FROM {} WHERE athlete_id = $1",
                tables.table(base)
            )))
            .bind(mara.to_string())
            .fetch_one(pool)
            .await
            .unwrap();
            assert_eq!(left, 0, "{name}.{base}");
        }
    }

    // The grant Tomas gave her is forgotten with her, before any revocation is appended; his
    // other coach stays.
    let coaches: Vec<Uuid> = profile_rm::coaches(pool, &profile_t, tomas)
        .await
        .unwrap()
        .iter()
        .map(|c| c.coach_id)
        .collect();
    assert_eq!(coaches, vec![COACH_2]);
    assert!(
        profile_rm::grantors_of(pool, &profile_t, mara)
            .await
            .unwrap()
            .is_empty()
    );

    // Tomas is otherwise untouched.
    assert!(
        profile_rm::profile(pool, &profile_t, tomas)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        profile_rm::nutrition_presets(pool, &profile_t, tomas)
            .await
            .unwrap()
            .len(),
        1
    );
    let theirs = journal_rm::day(pool, &journal_t, tomas, date(20))
        .await
        .unwrap();
    assert_eq!(theirs.nutrition.len(), 1);
    assert_eq!(theirs.insight_feedback.len(), 1);

    // A rebuild reads her payloads as erased and must land on the same rows.
    assert_eq!(
        engine.verify("profile").await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        engine.verify("journal").await.unwrap(),
        Vec::<String>::new()
    );
}

/// Built in many small batches while commands keep arriving, then compared with a rebuild from
/// the whole log in one go.
async fn a_rebuild_matches_the_incremental_build(t: TestStore) {
    let mut w = World::new(t);
    let engine = w.engine(3).await;
    let (mara, tomas) = (Uuid::now_v7(), Uuid::now_v7());
    mara_settings(&mut w, mara).await;
    w.build(&engine).await;
    mara_journal(&mut w, mara).await;
    w.build(&engine).await;
    tomas_settings(&mut w, tomas).await;
    tomas_journal(&mut w, tomas).await;
    w.build(&engine).await;

    let status = engine.status().await.unwrap();
    for s in &status {
        assert_eq!(s.skipped_events, 0, "{s:?}");
        assert!(s.events_applied > 20, "{s:?}");
    }
    assert_eq!(
        engine.verify("profile").await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        engine.verify("journal").await.unwrap(),
        Vec::<String>::new()
    );
    // The comparison saw real rows, not two empty generations.
    let t = engine.active_tables("journal").await.unwrap();
    let days = journal_rm::range(&engine.db().pool, &t, mara, date(1), date(30))
        .await
        .unwrap();
    assert_eq!(days.len(), 2);
}

/// The aggregate never allows it, but an event appended around it (an admin repair) must not
/// create a profile without a name or email: the engine lists it as skipped instead.
async fn a_profile_event_before_registration_is_skipped(t: TestStore) {
    let mut w = World::new(t);
    let ghost = Uuid::now_v7();
    let payload = serde_json::json!({
        "type": "ProfileUpdated", "display_name": "Nobody", "email": "nobody@example.org",
        "goals": [], "at": "2026-11-20T08:00:00Z"
    });
    let outcome =
        w.t.store
            .append(&AppendRequest {
                stream: StreamId::new("athlete", ghost.to_string()),
                expected: ExpectedVersion::NoStream,
                events: vec![NewEvent::new("ProfileUpdated", "1.0", payload, true)],
                metadata: Metadata::new(Actor::user(ghost, "athlete")).for_athlete(ghost),
                idempotency: None,
            })
            .await
            .unwrap();
    w.last_position = outcome.positions[0];
    let registered = Uuid::now_v7();
    w.athlete(registered, register(registered, "Ana Silva"))
        .await;
    let engine = w.engine(500).await;
    w.build(&engine).await;

    let skipped = engine.skipped("profile").await.unwrap();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0].event_type, "ProfileUpdated");
    assert_eq!(skipped[0].position, outcome.positions[0]);
    let t = engine.active_tables("profile").await.unwrap();
    let pool = &engine.db().pool;
    assert_eq!(profile_rm::profile(pool, &t, ghost).await.unwrap(), None);
    // The bad event cost only itself: the batch around it was applied.
    assert_eq!(
        profile_rm::profile(pool, &t, registered)
            .await
            .unwrap()
            .unwrap()
            .display_name,
        "Ana Silva"
    );
}

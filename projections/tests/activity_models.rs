//! The activity list/detail and the admin metrics on both stores, fed through the real command
//! path: filters, sort orders, keyset paging, updates and deletes, privacy between athletes,
//! erasure, and rebuild equality (`verify`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use commands::{CommandBus, CommandContext};
use domain::DomainServices;
use domain::activity::{
    Activity, ActivityCommand, ActivitySource, DeleteActivity, Lap, MarkAsRace, RecordActivity,
    RecordPerceivedEffort, SetWorkoutType, Sport, UpdateActivity, WorkoutType,
};
use domain::athlete::{Athlete, AthleteCommand, ErasureReason, Role};
use domain::journal::{
    CheckInValues, Journal, JournalCommand, LogDailyCheckIn, LogNutritionEntry, LogWorkPattern,
    NutritionEntryType, NutritionValues, WorkType, journal_id,
};
use projections::activities::{
    ActivitiesProjection, ActivityQuery, ActivityQueryError, ActivitySort, SortDirection, detail,
    list,
};
use projections::admin_metrics::{
    AdminMetricsProjection, DailyActiveAthletes, DailySignups, DataKind, WeeklyActiveAthletes,
    active_athletes_daily, active_athletes_weekly, events_per_type, logging_shares, signups,
};
use projections::{Engine, Projection, ReadDb, Tables};
use sqlx::AnyPool;
use store::testing::TestStore;
use uuid::Uuid;

use store::on_both_backends;

on_both_backends!(
    the_list_sorts_filters_and_pages,
    paging_is_stable_under_ties_in_every_order,
    changes_reach_the_detail_and_other_athletes_never_see_them,
    erasure_empties_the_activity_list,
    admin_metrics_count_signups_activity_and_logging,
    a_missing_value_before_a_present_one_is_applied,
);

fn bus(t: &TestStore) -> CommandBus {
    CommandBus::new(
        t.store.clone(),
        DomainServices::new(Arc::new(commands::SystemClock)),
        domain::upcasters(),
    )
}

async fn engine(t: &TestStore, projection: Arc<dyn Projection>) -> Engine {
    let db = ReadDb::connect(&t.url).await.unwrap();
    Engine::new(t.store.clone(), db, vec![projection])
}

/// Applies everything committed so far (none of it skipped as unappliable) and returns the
/// tables reads should use.
async fn caught_up(engine: &Engine, p: &dyn Projection) -> Tables {
    engine.catch_up(p, Duration::from_secs(30)).await.unwrap();
    let skipped = engine.skipped(p.name()).await.unwrap();
    assert!(
        skipped.is_empty(),
        "events the projection could not apply: {skipped:?}"
    );
    engine.active_tables(p.name()).await.unwrap()
}

async fn register(bus: &CommandBus, athlete: Uuid, name: &str) {
    bus.execute::<Athlete>(
        &CommandContext::athlete(athlete),
        &athlete.to_string(),
        AthleteCommand::Register {
            athlete_id: athlete,
            email: format!("{}@example.org", name.to_lowercase()),
            display_name: name.into(),
            role: Role::Athlete,
        },
    )
    .await
    .unwrap();
}

async fn erase(bus: &CommandBus, athlete: Uuid) {
    bus.execute::<Athlete>(
        &CommandContext::athlete(athlete),
        &athlete.to_string(),
        AthleteCommand::Erase {
            requested_by: athlete,
            reason: ErasureReason::AthleteRequest,
        },
    )
    .await
    .unwrap();
}

fn at(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, hour, minute, 0)
        .unwrap()
}

fn date(day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, day).unwrap()
}

fn run(athlete: Uuid, start: DateTime<Utc>, distance_m: f64, moving_time_s: f64) -> RecordActivity {
    RecordActivity {
        athlete_id: athlete,
        activity_id: Uuid::now_v7(),
        sport: Sport::Run,
        name: None,
        start_time: start,
        timezone: "UTC".into(),
        distance_m: Some(distance_m),
        moving_time_s,
        elapsed_time_s: Some(moving_time_s + 60.0),
        avg_hr_bpm: None,
        max_hr_bpm: None,
        elevation_gain_m: None,
        elevation_loss_m: None,
        source: ActivitySource::Manual,
        external_id: None,
        laps: vec![],
        samples: None,
    }
}

async fn on_activity(bus: &CommandBus, athlete: Uuid, activity: Uuid, command: ActivityCommand) {
    bus.execute::<Activity>(
        &CommandContext::athlete(athlete),
        &activity.to_string(),
        command,
    )
    .await
    .unwrap();
}

async fn record(bus: &CommandBus, activity: RecordActivity) -> Uuid {
    let id = activity.activity_id;
    on_activity(
        bus,
        activity.athlete_id,
        id,
        ActivityCommand::RecordActivity(activity),
    )
    .await;
    id
}

/// The ids of one page.
async fn ids(pool: &AnyPool, t: &Tables, athlete: Uuid, query: &ActivityQuery) -> Vec<Uuid> {
    list(pool, t, athlete, query)
        .await
        .unwrap()
        .activities
        .iter()
        .map(|a| a.activity_id)
        .collect()
}

/// Every page, following `next_cursor`; fails if paging does not end.
async fn all_pages(
    pool: &AnyPool,
    t: &Tables,
    athlete: Uuid,
    query: &ActivityQuery,
) -> (Vec<Uuid>, usize) {
    let mut query = query.clone();
    let mut seen = Vec::new();
    for pages in 1..=50 {
        let page = list(pool, t, athlete, &query).await.unwrap();
        assert!(page.activities.len() <= query.limit.unwrap() as usize);
        seen.extend(page.activities.iter().map(|a| a.activity_id));
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return (seen, pages),
        }
    }
    panic!("paging did not end");
}

async fn the_list_sorts_filters_and_pages(t: TestStore) {
    let bus = bus(&t);
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    register(&bus, a, "Wanjiru").await;
    register(&bus, b, "Kipchoge").await;
    // Durations deliberately out of step with distances: the 8 km is a slow trail run.
    let r5k = record(&bus, run(a, at(16, 6, 30), 5_000.0, 1_500.0)).await;
    let r8k = record(&bus, run(a, at(17, 6, 30), 8_000.0, 3_000.0)).await;
    let r10k = record(&bus, run(a, at(18, 6, 30), 10_000.0, 2_900.0)).await;
    let r12k = record(&bus, run(a, at(19, 6, 30), 12_000.0, 3_700.0)).await;
    let half = record(&bus, run(a, at(20, 7, 0), 21_097.5, 6_300.0)).await;
    // Another athlete's 10 km on the same days matches every filter below but is never listed.
    let theirs = record(&bus, run(b, at(18, 7, 0), 10_000.0, 2_700.0)).await;

    let engine = engine(&t, Arc::new(ActivitiesProjection)).await;
    let tables = caught_up(&engine, &ActivitiesProjection).await;
    let pool = &engine.db().pool;

    let newest_first = list(pool, &tables, a, &ActivityQuery::default())
        .await
        .unwrap();
    assert_eq!(
        newest_first
            .activities
            .iter()
            .map(|a| a.activity_id)
            .collect::<Vec<_>>(),
        [half, r12k, r10k, r8k, r5k]
    );
    assert_eq!(newest_first.next_cursor, None);
    let first = &newest_first.activities[0];
    assert_eq!(first.distance_m, Some(21_097.5));
    assert_eq!(first.moving_time_s, 6_300.0);
    assert_eq!(first.start_time, at(20, 7, 0));
    assert_eq!(first.local_date, date(20));
    assert_eq!(first.sport, Sport::Run);

    let by = |sort, direction| ActivityQuery {
        sort,
        direction,
        ..Default::default()
    };
    assert_eq!(
        ids(
            pool,
            &tables,
            a,
            &by(ActivitySort::Distance, SortDirection::Desc)
        )
        .await,
        [half, r12k, r10k, r8k, r5k]
    );
    assert_eq!(
        ids(
            pool,
            &tables,
            a,
            &by(ActivitySort::Distance, SortDirection::Asc)
        )
        .await,
        [r5k, r8k, r10k, r12k, half]
    );
    assert_eq!(
        ids(
            pool,
            &tables,
            a,
            &by(ActivitySort::Duration, SortDirection::Asc)
        )
        .await,
        [r5k, r10k, r8k, r12k, half]
    );
    assert_eq!(
        ids(
            pool,
            &tables,
            a,
            &by(ActivitySort::StartTime, SortDirection::Asc)
        )
        .await,
        [r5k, r8k, r10k, r12k, half]
    );

    let eight_to_twelve = ActivityQuery {
        min_distance_m: Some(8_000.0),
        max_distance_m: Some(12_000.0),
        sort: ActivitySort::Distance,
        direction: SortDirection::Desc,
        ..Default::default()
    };
    assert_eq!(
        ids(pool, &tables, a, &eight_to_twelve).await,
        [r12k, r10k, r8k]
    );
    let middle_days = ActivityQuery {
        from: Some(date(17)),
        to: Some(date(19)),
        ..Default::default()
    };
    assert_eq!(ids(pool, &tables, a, &middle_days).await, [r12k, r10k, r8k]);
    let only_runs_over_10k = ActivityQuery {
        min_distance_m: Some(10_000.5),
        sport: Some(Sport::Run),
        ..Default::default()
    };
    assert_eq!(
        ids(pool, &tables, a, &only_runs_over_10k).await,
        [half, r12k]
    );
    let walks = ActivityQuery {
        sport: Some(Sport::Walk),
        ..Default::default()
    };
    assert!(ids(pool, &tables, a, &walks).await.is_empty());

    // Limit 2 by distance: three pages, each activity exactly once, in the one-page order.
    let paged = ActivityQuery {
        limit: Some(2),
        ..by(ActivitySort::Distance, SortDirection::Desc)
    };
    let first_page = list(pool, &tables, a, &paged).await.unwrap();
    assert_eq!(first_page.activities.len(), 2);
    assert!(first_page.next_cursor.is_some());
    let (walked, pages) = all_pages(pool, &tables, a, &paged).await;
    assert_eq!(walked, [half, r12k, r10k, r8k, r5k]);
    assert_eq!(pages, 3);
    // The cursor carries its order: reusing it for another sort is refused, not misread.
    let err = list(
        pool,
        &tables,
        a,
        &ActivityQuery {
            cursor: first_page.next_cursor.clone(),
            ..by(ActivitySort::Duration, SortDirection::Desc)
        },
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("different sort order"), "{err}");

    for garbage in ["not-a-cursor", "00", "7631", ""] {
        let err = list(
            pool,
            &tables,
            a,
            &ActivityQuery {
                cursor: Some(garbage.into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert!(err.to_string().starts_with("malformed cursor"), "{err}");
        assert!(matches!(
            err.downcast_ref::<ActivityQueryError>(),
            Some(ActivityQueryError::MalformedCursor(_))
        ));
    }
    for limit in [0, 201] {
        let err = list(
            pool,
            &tables,
            a,
            &ActivityQuery {
                limit: Some(limit),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.downcast_ref::<ActivityQueryError>(),
            Some(&ActivityQueryError::Limit(limit))
        );
    }
    assert_eq!(
        ids(
            pool,
            &tables,
            a,
            &ActivityQuery {
                limit: Some(200),
                ..Default::default()
            }
        )
        .await
        .len(),
        5
    );

    assert_eq!(ids(pool, &tables, b, &eight_to_twelve).await, [theirs]);
    assert!(detail(pool, &tables, a, theirs).await.unwrap().is_none());
    assert!(detail(pool, &tables, b, theirs).await.unwrap().is_some());
    assert_eq!(
        engine.verify("activities").await.unwrap(),
        Vec::<String>::new()
    );
}

async fn paging_is_stable_under_ties_in_every_order(t: TestStore) {
    let bus = bus(&t);
    let a = Uuid::now_v7();
    register(&bus, a, "Tola").await;
    // Equal start times, equal distances (two of them unknown, which sort as 0 m) and equal
    // moving times: only the id breaks the ties.
    let mut recorded = BTreeSet::new();
    for (start, distance, moving) in [
        (at(20, 6, 0), Some(5_000.0), 1_500.0),
        (at(20, 6, 0), Some(5_000.0), 1_500.0),
        (at(20, 6, 0), None, 1_800.0),
        (at(21, 6, 0), None, 1_500.0),
        (at(21, 6, 0), Some(5_000.0), 1_800.0),
        (at(19, 6, 0), Some(0.0), 1_500.0),
        (at(22, 6, 0), Some(5_000.0), 1_500.0),
    ] {
        let mut activity = run(a, start, 0.0, moving);
        activity.distance_m = distance;
        recorded.insert(record(&bus, activity).await);
    }
    let engine = engine(&t, Arc::new(ActivitiesProjection)).await;
    let tables = caught_up(&engine, &ActivitiesProjection).await;
    let pool = &engine.db().pool;

    for sort in [
        ActivitySort::StartTime,
        ActivitySort::Distance,
        ActivitySort::Duration,
    ] {
        for direction in [SortDirection::Asc, SortDirection::Desc] {
            let whole = ActivityQuery {
                sort,
                direction,
                ..Default::default()
            };
            let one_page = ids(pool, &tables, a, &whole).await;
            assert_eq!(one_page.len(), 7);
            for limit in [1, 2, 3] {
                let (walked, _) = all_pages(
                    pool,
                    &tables,
                    a,
                    &ActivityQuery {
                        limit: Some(limit),
                        ..whole.clone()
                    },
                )
                .await;
                assert_eq!(walked, one_page, "{sort:?} {direction:?} limit {limit}");
            }
            assert_eq!(one_page.iter().copied().collect::<BTreeSet<_>>(), recorded);
        }
    }
    let by_distance = list(
        pool,
        &tables,
        a,
        &ActivityQuery {
            sort: ActivitySort::Distance,
            direction: SortDirection::Asc,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let distances: Vec<Option<f64>> = by_distance
        .activities
        .iter()
        .map(|a| a.distance_m)
        .collect();
    // Unknown distances sort with 0 m, before every measured one.
    assert!(
        distances[..3].iter().all(|d| d.unwrap_or(0.0) == 0.0),
        "{distances:?}"
    );
    assert!(distances[3..].iter().all(|d| *d == Some(5_000.0)));
}

async fn changes_reach_the_detail_and_other_athletes_never_see_them(t: TestStore) {
    let bus = bus(&t);
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    register(&bus, a, "Sifan").await;
    register(&bus, b, "Gudaf").await;
    let tempo = RecordActivity {
        name: Some("Tuesday tempo".into()),
        // Europe/Paris has no fixed offset: its local date is the UTC date here.
        timezone: "Europe/Paris".into(),
        avg_hr_bpm: Some(158.0),
        max_hr_bpm: Some(176.0),
        elevation_gain_m: Some(42.0),
        elevation_loss_m: Some(40.0),
        source: ActivitySource::Garmin,
        external_id: Some("garmin-1842".into()),
        laps: vec![
            Lap {
                index: 0,
                distance_m: Some(5_000.0),
                moving_time_s: Some(1_480.0),
                avg_hr_bpm: Some(154.0),
                elevation_gain_m: Some(20.0),
            },
            Lap {
                index: 1,
                distance_m: Some(5_000.0),
                moving_time_s: Some(1_420.0),
                avg_hr_bpm: Some(162.0),
                elevation_gain_m: Some(22.0),
            },
        ],
        ..run(a, at(17, 22, 30), 10_000.0, 2_900.0)
    };
    let tempo = record(&bus, tempo).await;
    let parkrun = record(
        &bus,
        RecordActivity {
            name: Some("Parkrun".into()),
            // A fixed-offset zone: 23:30 UTC is already the 21st at UTC+3.
            timezone: "Etc/GMT-3".into(),
            ..run(a, at(20, 23, 30), 5_000.0, 1_200.0)
        },
    )
    .await;
    let walk = record(
        &bus,
        RecordActivity {
            sport: Sport::Walk,
            ..run(a, at(19, 12, 0), 3_000.0, 2_000.0)
        },
    )
    .await;
    let theirs = record(&bus, run(b, at(18, 7, 0), 10_000.0, 2_700.0)).await;

    let engine = engine(&t, Arc::new(ActivitiesProjection)).await;
    let tables = caught_up(&engine, &ActivitiesProjection).await;
    let pool = &engine.db().pool;

    let d = detail(pool, &tables, a, tempo).await.unwrap().unwrap();
    assert_eq!(d.summary.name.as_deref(), Some("Tuesday tempo"));
    assert_eq!(d.summary.distance_m, Some(10_000.0));
    assert_eq!(d.summary.local_date, date(17));
    assert_eq!(d.summary.elapsed_time_s, Some(2_960.0));
    assert_eq!(d.summary.avg_hr_bpm, Some(158.0));
    assert_eq!(d.summary.workout_type, None);
    assert_eq!(d.summary.race, None);
    assert_eq!(d.timezone, "Europe/Paris");
    assert_eq!(d.max_hr_bpm, Some(176.0));
    assert_eq!(d.elevation_loss_m, Some(40.0));
    assert_eq!(d.source, ActivitySource::Garmin);
    assert_eq!(d.external_id.as_deref(), Some("garmin-1842"));
    assert_eq!(d.laps.len(), 2);
    assert_eq!(d.laps[1].moving_time_s, Some(1_420.0));
    assert_eq!(d.laps[1].avg_hr_bpm, Some(162.0));
    assert_eq!(d.perceived_effort, None);
    assert_eq!(d.notes, None);
    let p = detail(pool, &tables, a, parkrun).await.unwrap().unwrap();
    assert_eq!(p.summary.local_date, date(21));

    on_activity(
        &bus,
        a,
        tempo,
        ActivityCommand::UpdateActivity(UpdateActivity {
            athlete_id: a,
            name: Some("Canal tempo".into()),
            sport: None,
            distance_m: Some(10_050.0),
            moving_time_s: None,
            avg_hr_bpm: None,
            notes: Some("GPS cut the corners".into()),
        }),
    )
    .await;
    on_activity(
        &bus,
        a,
        tempo,
        ActivityCommand::SetWorkoutType(SetWorkoutType {
            athlete_id: a,
            workout_type: WorkoutType::Tempo,
        }),
    )
    .await;
    for (effort, notes) in [(6, "Controlled"), (8, "Harder than it should be")] {
        on_activity(
            &bus,
            a,
            tempo,
            ActivityCommand::RecordPerceivedEffort(RecordPerceivedEffort {
                athlete_id: a,
                effort,
                leg_feel: Some(3),
                mood_before: None,
                mood_after: Some(4),
                energy_before: None,
                energy_after: Some(2),
                notes: Some(notes.into()),
            }),
        )
        .await;
    }
    on_activity(
        &bus,
        a,
        parkrun,
        ActivityCommand::MarkAsRace(MarkAsRace {
            athlete_id: a,
            race_name: Some("Parkrun #412".into()),
            official_distance_m: Some(5_000.0),
            official_time_s: Some(1_190.0),
        }),
    )
    .await;
    let tables = caught_up(&engine, &ActivitiesProjection).await;

    let d = detail(pool, &tables, a, tempo).await.unwrap().unwrap();
    assert_eq!(d.summary.name.as_deref(), Some("Canal tempo"));
    assert_eq!(d.summary.distance_m, Some(10_050.0));
    assert_eq!(
        d.summary.moving_time_s, 2_900.0,
        "fields the update left out keep their value"
    );
    assert_eq!(d.summary.avg_hr_bpm, Some(158.0));
    assert_eq!(d.notes.as_deref(), Some("GPS cut the corners"));
    assert_eq!(d.summary.workout_type, Some(WorkoutType::Tempo));
    assert_eq!(d.summary.perceived_effort_rpe, Some(8));
    let effort = d.perceived_effort.unwrap();
    assert_eq!(effort.effort, 8);
    assert_eq!(effort.notes.as_deref(), Some("Harder than it should be"));
    assert_eq!(effort.energy_after, Some(2));
    let race = detail(pool, &tables, a, parkrun)
        .await
        .unwrap()
        .unwrap()
        .summary
        .race
        .unwrap();
    assert_eq!(race.name.as_deref(), Some("Parkrun #412"));
    assert_eq!(race.official_time_s, Some(1_190.0));
    assert_eq!(race.official_distance_m, Some(5_000.0));

    let races = ActivityQuery {
        race: Some(true),
        ..Default::default()
    };
    assert_eq!(ids(pool, &tables, a, &races).await, [parkrun]);
    let not_races = ActivityQuery {
        race: Some(false),
        ..Default::default()
    };
    assert_eq!(ids(pool, &tables, a, &not_races).await, [walk, tempo]);
    let walks = ActivityQuery {
        sport: Some(Sport::Walk),
        ..Default::default()
    };
    assert_eq!(ids(pool, &tables, a, &walks).await, [walk]);
    // The list reflects the update too: 10 050 m is now above a 10 025 m floor.
    let over = ActivityQuery {
        min_distance_m: Some(10_025.0),
        ..Default::default()
    };
    assert_eq!(ids(pool, &tables, a, &over).await, [tempo]);

    // Someone else's activity answers like a missing one, and never shows in a list.
    assert!(detail(pool, &tables, b, tempo).await.unwrap().is_none());
    assert!(detail(pool, &tables, a, theirs).await.unwrap().is_none());
    assert_eq!(
        ids(pool, &tables, b, &ActivityQuery::default()).await,
        [theirs]
    );

    on_activity(
        &bus,
        a,
        tempo,
        ActivityCommand::DeleteActivity(DeleteActivity { athlete_id: a }),
    )
    .await;
    let tables = caught_up(&engine, &ActivitiesProjection).await;
    assert!(detail(pool, &tables, a, tempo).await.unwrap().is_none());
    assert_eq!(
        ids(pool, &tables, a, &ActivityQuery::default()).await,
        [parkrun, walk]
    );
    assert_eq!(
        engine.verify("activities").await.unwrap(),
        Vec::<String>::new()
    );
}

async fn erasure_empties_the_activity_list(t: TestStore) {
    let bus = bus(&t);
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    register(&bus, a, "Faith").await;
    register(&bus, b, "Beatrice").await;
    let first = record(&bus, run(a, at(18, 6, 0), 10_000.0, 2_800.0)).await;
    record(&bus, run(a, at(19, 6, 0), 15_000.0, 4_300.0)).await;
    on_activity(
        &bus,
        a,
        first,
        ActivityCommand::MarkAsRace(MarkAsRace {
            athlete_id: a,
            race_name: Some("Club 10k".into()),
            official_distance_m: None,
            official_time_s: None,
        }),
    )
    .await;
    let theirs = record(&bus, run(b, at(18, 7, 0), 8_000.0, 2_400.0)).await;

    let engine = engine(&t, Arc::new(ActivitiesProjection)).await;
    let tables = caught_up(&engine, &ActivitiesProjection).await;
    let pool = &engine.db().pool;
    assert_eq!(
        ids(pool, &tables, a, &ActivityQuery::default()).await.len(),
        2
    );

    erase(&bus, a).await;
    let tables = caught_up(&engine, &ActivitiesProjection).await;
    let page = list(pool, &tables, a, &ActivityQuery::default())
        .await
        .unwrap();
    assert!(page.activities.is_empty());
    assert_eq!(page.next_cursor, None);
    assert!(detail(pool, &tables, a, first).await.unwrap().is_none());
    let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT CAST(count(*) AS BIGINT) FROM {} WHERE athlete_id = $1",
        tables.table("activities")
    )))
    .bind(a.to_string())
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(rows, 0, "no row of the erased athlete is left");
    assert_eq!(
        ids(pool, &tables, b, &ActivityQuery::default()).await,
        [theirs]
    );
    // A rebuild reads the erased athlete's payloads as shredded and must arrive at the same rows.
    assert_eq!(
        engine.verify("activities").await.unwrap(),
        Vec::<String>::new()
    );
}

async fn admin_metrics_count_signups_activity_and_logging(t: TestStore) {
    let bus = bus(&t);
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    register(&bus, a, "Hellen").await;
    register(&bus, b, "Letesenbet").await;
    let day = date(20);
    bus.execute::<Journal>(
        &CommandContext::athlete(a),
        &journal_id(a, day),
        JournalCommand::LogDailyCheckIn(LogDailyCheckIn {
            athlete_id: a,
            date: day,
            values: CheckInValues {
                sleep_h: Some(7.5),
                sleep_quality: Some(4),
                hrv_ms: Some(68.0),
                resting_hr_bpm: Some(44.0),
                stress: None,
                soreness: None,
                readiness: Some(4),
                notes: None,
            },
        }),
    )
    .await
    .unwrap();
    let activity = record(&bus, run(a, at(20, 6, 0), 12_000.0, 3_500.0)).await;
    on_activity(
        &bus,
        a,
        activity,
        ActivityCommand::RecordPerceivedEffort(RecordPerceivedEffort {
            athlete_id: a,
            effort: 5,
            leg_feel: None,
            mood_before: None,
            mood_after: None,
            energy_before: None,
            energy_after: None,
            notes: None,
        }),
    )
    .await;
    bus.execute::<Journal>(
        &CommandContext::athlete(b),
        &journal_id(b, day),
        JournalCommand::LogNutritionEntry(LogNutritionEntry {
            athlete_id: b,
            date: day,
            entry_id: Uuid::now_v7(),
            values: NutritionValues {
                entry_type: NutritionEntryType::Daily,
                activity_id: None,
                calories_kcal: Some(640.0),
                protein_g: Some(32.0),
                carbohydrate_g: None,
                fat_g: None,
                fibre_g: None,
                caffeine_mg: None,
                notes: None,
            },
            logged_at: Some(at(20, 12, 0)),
        }),
    )
    .await
    .unwrap();

    let engine = engine(&t, Arc::new(AdminMetricsProjection)).await;
    let tables = caught_up(&engine, &AdminMetricsProjection).await;
    let pool = &engine.db().pool;

    // Metrics are dated by when the log recorded each event (today, UTC), so the expected
    // rows come from the log itself; the totals are fixed.
    let log = Log::read(&t, &[a, b]).await;
    let (first_day, last_day) = log.range();
    let signup_rows = signups(pool, &tables, first_day, last_day).await.unwrap();
    assert_eq!(signup_rows, log.signups());
    assert_eq!(signup_rows.iter().map(|s| s.signups).sum::<i64>(), 2);
    let per_type = events_per_type(pool, &tables, first_day, last_day)
        .await
        .unwrap();
    let rows: BTreeMap<_, _> = per_type
        .iter()
        .map(|r| ((r.date, r.event_type.clone()), r.events))
        .collect();
    assert_eq!(rows, log.per_type);
    let mut totals = BTreeMap::new();
    for row in &per_type {
        *totals.entry(row.event_type.as_str()).or_insert(0) += row.events;
    }
    assert_eq!(
        totals,
        BTreeMap::from([
            ("ActivityRecorded", 1),
            ("AthleteRegistered", 2),
            ("DailyCheckInLogged", 1),
            ("NutritionEntryLogged", 1),
            ("PerceivedEffortRecorded", 1),
        ])
    );
    let active = active_athletes_daily(pool, &tables, first_day, last_day)
        .await
        .unwrap();
    assert_eq!(active, log.active_daily());
    let weekly = active_athletes_weekly(pool, &tables, first_day, last_day)
        .await
        .unwrap();
    assert_eq!(weekly, log.active_weekly());
    if first_day == last_day {
        // The usual case (the test did not straddle midnight UTC): both athletes on one day.
        assert_eq!(
            active,
            [DailyActiveAthletes {
                date: first_day,
                active_athletes: 2
            }]
        );
        assert_eq!(weekly.len(), 1);
        assert_eq!(weekly[0].active_athletes, 2);
    }
    assert!(
        signups(pool, &tables, date(1), date(2))
            .await
            .unwrap()
            .is_empty(),
        "nothing outside the range"
    );

    let shares = logging_shares(pool, &tables).await.unwrap();
    assert_eq!(shares.registered_athletes, 2);
    assert_eq!(
        share_map(&shares.shares),
        BTreeMap::from([
            (DataKind::Activities, 0.5),
            (DataKind::CheckIns, 0.5),
            (DataKind::Nutrition, 0.5),
            (DataKind::Work, 0.0),
            (DataKind::BodyComposition, 0.0),
            (DataKind::PerceivedEffort, 0.5),
        ])
    );

    // A third athlete signs up, B logs work, A is erased.
    let c = Uuid::now_v7();
    register(&bus, c, "Agnes").await;
    bus.execute::<Journal>(
        &CommandContext::athlete(b),
        &journal_id(b, day),
        JournalCommand::LogWorkPattern(LogWorkPattern {
            athlete_id: b,
            date: day,
            work_type: WorkType::Desk,
            hours_worked: Some(8.0),
            stress: Some(2),
            notes: None,
        }),
    )
    .await
    .unwrap();
    erase(&bus, a).await;
    let tables = caught_up(&engine, &AdminMetricsProjection).await;
    let log = Log::read(&t, &[a, b, c]).await;
    let (first_day, last_day) = log.range();

    let shares = logging_shares(pool, &tables).await.unwrap();
    assert_eq!(shares.registered_athletes, 2, "B and C; A was erased");
    assert_eq!(
        share_map(&shares.shares),
        BTreeMap::from([
            (DataKind::Activities, 0.0),
            (DataKind::CheckIns, 0.0),
            (DataKind::Nutrition, 0.5),
            (DataKind::Work, 0.5),
            (DataKind::BodyComposition, 0.0),
            (DataKind::PerceivedEffort, 0.0),
        ])
    );
    // Counts hold no personal data and keep A's history.
    let signup_rows = signups(pool, &tables, first_day, last_day).await.unwrap();
    assert_eq!(signup_rows, log.signups());
    assert_eq!(signup_rows.iter().map(|s| s.signups).sum::<i64>(), 3);
    let per_type = events_per_type(pool, &tables, first_day, last_day)
        .await
        .unwrap();
    let count_of = |event_type: &str| {
        per_type
            .iter()
            .filter(|r| r.event_type == event_type)
            .map(|r| r.events)
            .sum::<i64>()
    };
    assert_eq!(count_of("ActivityRecorded"), 1);
    assert_eq!(count_of("AthleteErased"), 1);
    assert_eq!(count_of("WorkPatternLogged"), 1);
    assert_eq!(
        active_athletes_daily(pool, &tables, first_day, last_day)
            .await
            .unwrap(),
        log.active_daily()
    );
    assert_eq!(
        active_athletes_weekly(pool, &tables, first_day, last_day)
            .await
            .unwrap(),
        log.active_weekly()
    );
    // But nothing per athlete is left of A.
    for base in ["athletes", "athlete_days", "athlete_weeks", "athlete_kinds"] {
        let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT CAST(count(*) AS BIGINT) FROM {} WHERE athlete_id = $1",
            tables.table(base)
        )))
        .bind(a.to_string())
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(rows, 0, "{base} still holds the erased athlete");
    }
    assert_eq!(
        engine.verify("admin_metrics").await.unwrap(),
        Vec::<String>::new()
    );
}

fn share_map(shares: &[projections::admin_metrics::LoggingShare]) -> BTreeMap<DataKind, f64> {
    assert_eq!(
        shares.iter().map(|s| s.kind).collect::<Vec<_>>(),
        DataKind::ALL
    );
    shares.iter().map(|s| (s.kind, s.share_fraction)).collect()
}

/// What the log says the admin metrics should be, computed independently of the projection.
struct Log {
    per_type: BTreeMap<(NaiveDate, String), i64>,
    athletes_per_day: BTreeMap<NaiveDate, BTreeSet<Uuid>>,
}

impl Log {
    async fn read(t: &TestStore, athletes: &[Uuid]) -> Self {
        let mut per_type = BTreeMap::new();
        let mut athletes_per_day: BTreeMap<NaiveDate, BTreeSet<Uuid>> = BTreeMap::new();
        for &athlete in athletes {
            for e in t.store.read_athlete(athlete, None).await.unwrap() {
                let day = e.recorded_at.date_naive();
                *per_type.entry((day, e.event_type.clone())).or_insert(0) += 1;
                athletes_per_day.entry(day).or_default().insert(athlete);
            }
        }
        Self {
            per_type,
            athletes_per_day,
        }
    }

    fn range(&self) -> (NaiveDate, NaiveDate) {
        let days: Vec<_> = self.athletes_per_day.keys().copied().collect();
        (days[0], days[days.len() - 1])
    }

    fn signups(&self) -> Vec<DailySignups> {
        self.per_type
            .iter()
            .filter(|((_, event_type), _)| event_type == "AthleteRegistered")
            .map(|((date, _), &signups)| DailySignups {
                date: *date,
                signups,
            })
            .collect()
    }

    fn active_weekly(&self) -> Vec<WeeklyActiveAthletes> {
        let mut weeks: BTreeMap<NaiveDate, (String, BTreeSet<Uuid>)> = BTreeMap::new();
        for (day, athletes) in &self.athletes_per_day {
            let monday = *day - chrono::Duration::days(day.weekday().num_days_from_monday().into());
            let iso = day.iso_week();
            weeks
                .entry(monday)
                .or_insert_with(|| {
                    (
                        format!("{}-W{:02}", iso.year(), iso.week()),
                        BTreeSet::new(),
                    )
                })
                .1
                .extend(athletes);
        }
        weeks
            .into_iter()
            .map(|(week_start, (iso_week, athletes))| WeeklyActiveAthletes {
                iso_week,
                week_start,
                active_athletes: athletes.len() as i64,
            })
            .collect()
    }

    fn active_daily(&self) -> Vec<DailyActiveAthletes> {
        self.athletes_per_day
            .iter()
            .map(|(date, athletes)| DailyActiveAthletes {
                date: *date,
                active_athletes: athletes.len() as i64,
            })
            .collect()
    }
}

/// sqlx 0.9's `Any` driver types a NULL f64 as float4 and PostgreSQL keeps a prepared
/// statement's first parameter types: a run without distance followed by one with distance
/// must still both be applied (regression test for the statements that bind optional reals).
async fn a_missing_value_before_a_present_one_is_applied(t: TestStore) {
    let bus = bus(&t);
    let athlete = Uuid::now_v7();
    register(&bus, athlete, "Ayla").await;
    let mut treadmill = run(athlete, at(18, 7, 0), 1.0, 1_800.0);
    treadmill.distance_m = None;
    record(&bus, treadmill).await;
    let outdoors = record(&bus, run(athlete, at(19, 7, 0), 12_000.0, 3_600.0)).await;
    let p = ActivitiesProjection;
    let e = engine(&t, Arc::new(ActivitiesProjection)).await;
    let tables = caught_up(&e, &p).await;
    let detail = projections::activities::detail(&e.db().pool, &tables, athlete, outdoors)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.summary.distance_m, Some(12_000.0));
}

//! The demo generator: deterministic plans of a plausible shape, every planned command accepted
//! by the domain, and `demo::run` writing exactly the planned events on both stores.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use commands::{CommandBus, CommandError};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use devtools::demo::{self, DemoConfig, DemoProgress, PlanCounts, PlannedCommand};
use domain::activity::{
    Activity, ActivityCommand, ActivitySource, RecordActivity, Sport, WorkoutType,
};
use domain::athlete::{Athlete, AthleteCommand};
use domain::journal::{Journal, JournalCommand, NutritionEntryType};
use domain::{DomainError, DomainServices};
use store::StreamId;
use store::testing::TestStore;
use uuid::Uuid;

use store::on_both_backends;

on_both_backends!(
    run_appends_exactly_the_planned_events,
    direct_seeding_appends_what_the_command_path_appends,
);

/// In the past whatever the machine's clock, so the domain's "not in the future" checks pass.
fn end_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()
}

fn config(seed: u64, athletes: usize, days: u32) -> DemoConfig {
    DemoConfig {
        seed,
        athletes,
        days,
        end_date: end_date(),
    }
}

fn local_date(run: &RecordActivity) -> NaiveDate {
    let offset = demo::utc_offset_minutes(&run.timezone).expect("a zone from the table");
    (run.start_time + Duration::minutes(i64::from(offset))).date_naive()
}

fn runs(commands: &[PlannedCommand]) -> impl Iterator<Item = &RecordActivity> {
    commands.iter().filter_map(|c| match c {
        PlannedCommand::Activity {
            command: ActivityCommand::RecordActivity(r),
            ..
        } => Some(r),
        _ => None,
    })
}

fn workout_types(commands: &[PlannedCommand]) -> HashMap<Uuid, WorkoutType> {
    commands
        .iter()
        .filter_map(|c| match c {
            PlannedCommand::Activity {
                activity_id,
                command: ActivityCommand::SetWorkoutType(t),
                ..
            } => Some((*activity_id, t.workout_type)),
            _ => None,
        })
        .collect()
}

/// Sleep logged per (athlete, date).
fn sleep_by_day(commands: &[PlannedCommand]) -> HashMap<(Uuid, NaiveDate), f64> {
    commands
        .iter()
        .filter_map(|c| match c {
            PlannedCommand::Journal {
                athlete_id,
                date,
                command: JournalCommand::LogDailyCheckIn(c),
            } => Some(((*athlete_id, *date), c.values.sleep_h?)),
            _ => None,
        })
        .collect()
}

/// Grade-adjusted speed per heartbeat (m/min per bpm), the usual running-efficiency measure:
/// 1 m of climb counts as 6 m of flat running.
fn efficiency(run: &RecordActivity) -> Option<f64> {
    let distance_m = run.distance_m? + 6.0 * run.elevation_gain_m?;
    Some(distance_m / (run.moving_time_s / 60.0) / run.avg_hr_bpm?)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[test]
fn the_same_seed_plans_the_same_commands_and_another_seed_does_not() {
    let a = demo::plan(&config(42, 3, 90));
    let again = demo::plan(&config(42, 3, 90));
    assert_eq!(a, again);
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&again).unwrap()
    );

    let other = demo::plan(&config(43, 3, 90));
    assert_ne!(a, other);
    let ids = |plan: &[PlannedCommand]| -> HashSet<Uuid> {
        plan.iter().map(PlannedCommand::athlete_id).collect()
    };
    assert_eq!(ids(&a).len(), 3);
    assert!(ids(&a).is_disjoint(&ids(&other)));

    // A longer window extends an athlete's history without changing who the athlete is.
    let longer = demo::plan(&config(42, 3, 120));
    assert_eq!(ids(&a), ids(&longer));
    assert_eq!(a[..3], longer[..3]);
}

#[test]
fn two_athletes_over_sixty_days_have_a_plausible_shape() {
    let config = config(2026, 2, 60);
    let plan = demo::plan(&config);
    let first = config.first_date();
    assert_eq!(first, NaiveDate::from_ymd_opt(2026, 9, 22).unwrap());
    let window = first..=config.end_date;

    let mut athletes: Vec<Uuid> = Vec::new();
    let mut activity_ids = HashSet::new();
    let mut activity_days: HashMap<Uuid, (Uuid, NaiveDate)> = HashMap::new();
    let mut entry_ids = HashSet::new();
    for command in &plan {
        match command {
            PlannedCommand::Athlete {
                athlete_id,
                command: AthleteCommand::Register { email, .. },
            } => {
                assert!(email.ends_with("@example.org"), "{email}");
                athletes.push(*athlete_id);
            }
            PlannedCommand::Athlete { .. } => {}
            PlannedCommand::Activity {
                athlete_id,
                activity_id,
                command,
            } => {
                assert_eq!(command.athlete_id(), *athlete_id);
                if let ActivityCommand::RecordActivity(r) = command {
                    assert_eq!(r.activity_id, *activity_id);
                    assert!(activity_ids.insert(*activity_id), "activity ids are unique");
                    assert!(window.contains(&local_date(r)), "{r:?}");
                    activity_days.insert(*activity_id, (*athlete_id, local_date(r)));
                } else {
                    assert!(activity_ids.contains(activity_id), "recorded before use");
                }
            }
            PlannedCommand::Journal {
                athlete_id,
                date,
                command,
            } => {
                assert!(window.contains(date), "{date}");
                assert_eq!(command.journal(), (*athlete_id, *date));
                if let JournalCommand::LogNutritionEntry(n) = command {
                    assert!(entry_ids.insert(n.entry_id), "entry ids are unique");
                    let offset = athletes_offset(&plan, *athlete_id);
                    let logged_local = n.logged_at.unwrap() + Duration::minutes(offset);
                    assert_eq!(logged_local.date_naive(), *date, "{n:?}");
                    if let Some(activity) = n.values.activity_id {
                        assert_ne!(n.values.entry_type, NutritionEntryType::Daily);
                        // Linked to a run of the same athlete on the same day.
                        assert_eq!(activity_days[&activity], (*athlete_id, *date));
                    }
                }
            }
        }
    }
    assert_eq!(athletes.len(), 2);

    // Run days per full Monday-Sunday week inside the window.
    let full_weeks: Vec<NaiveDate> = first
        .iter_days()
        .take_while(|d| *d + Duration::days(6) <= config.end_date)
        .filter(|d| d.weekday() == chrono::Weekday::Mon)
        .collect();
    assert_eq!(full_weeks.len(), 7);
    for athlete in &athletes {
        let run_days: HashSet<NaiveDate> = runs(&plan)
            .filter(|r| r.athlete_id == *athlete)
            .map(local_date)
            .filter(|d| *d >= full_weeks[0])
            .filter(|d| *d <= *full_weeks.last().unwrap() + Duration::days(6))
            .collect();
        let per_week = run_days.len() as f64 / full_weeks.len() as f64;
        assert!((3.0..=6.0).contains(&per_week), "{athlete}: {per_week}");

        let check_ins = plan
            .iter()
            .filter(|c| {
                matches!(c, PlannedCommand::Journal { athlete_id, command: JournalCommand::LogDailyCheckIn(_), .. } if athlete_id == athlete)
            })
            .count();
        assert!(
            (36..60).contains(&check_ins),
            "{athlete}: {check_ins} check-ins"
        );
    }

    let counts = PlanCounts::of(&plan);
    assert_eq!(counts.total(), plan.len());
    assert!(counts.athlete_commands >= 2 * 3, "{counts:?}");
    assert!(counts.runs >= 2 * 7 * 3, "{counts:?}");
    assert!(counts.workout_types > 0 && counts.workout_types <= counts.runs);
    assert!(counts.perceived_efforts > 0 && counts.perceived_efforts <= counts.runs);
}

fn athletes_offset(plan: &[PlannedCommand], athlete: Uuid) -> i64 {
    plan.iter()
        .find_map(|c| match c {
            PlannedCommand::Athlete {
                athlete_id,
                command: AthleteCommand::ChangePreferences { timezone, .. },
            } if *athlete_id == athlete => demo::utc_offset_minutes(timezone),
            _ => None,
        })
        .map(i64::from)
        .expect("every athlete sets a timezone")
}

/// Decides one command on in-memory state; the number of events it produced.
async fn decide<A>(aggregate: &mut A, command: A::Command, services: &DomainServices) -> usize
where
    A: Aggregate<Services = DomainServices, Error = DomainError>,
    A::Command: std::fmt::Debug + Clone,
{
    let sink = EventSink::default();
    if let Err(e) = aggregate.handle(command.clone(), services, &sink).await {
        panic!("{} refused {command:?}: {e}", A::TYPE);
    }
    sink.collect().await.len()
}

/// Many athletes over two years, through the aggregates without a store: every command is
/// accepted and decides exactly one event, at the earliest moment the plan can be run (midnight
/// UTC after `end_date`). Also checks that the plan exercises every kind of data, so the
/// validation covered all of them.
#[tokio::test]
async fn every_planned_command_passes_the_domain_rules() {
    let config = config(7, 30, 730);
    let now: DateTime<Utc> = (config.end_date + Duration::days(1))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let services = DomainServices::fixed(now);
    let mut athletes: HashMap<String, Athlete> = HashMap::new();
    let mut activities: HashMap<String, Activity> = HashMap::new();
    let mut journals: HashMap<String, Journal> = HashMap::new();
    let mut total = PlanCounts::default();
    let mut sources = HashSet::new();
    let mut sports = HashSet::new();
    let mut entry_types = HashSet::new();
    let mut zones = HashSet::new();
    for index in 0..config.athletes {
        for command in demo::plan_athlete(&config, index) {
            total.add(&command);
            let (_, id) = command.stream();
            let events = match command {
                PlannedCommand::Athlete { command, .. } => {
                    if let AthleteCommand::ChangePreferences { timezone, .. } = &command {
                        zones.insert(timezone.clone());
                    }
                    decide(athletes.entry(id).or_default(), command, &services).await
                }
                PlannedCommand::Activity { command, .. } => {
                    if let ActivityCommand::RecordActivity(r) = &command {
                        sources.insert(format!("{:?}", r.source));
                        sports.insert(format!("{:?}", r.sport));
                    }
                    decide(activities.entry(id).or_default(), command, &services).await
                }
                PlannedCommand::Journal { command, .. } => {
                    if let JournalCommand::LogNutritionEntry(n) = &command {
                        entry_types.insert(format!("{:?}", n.values.entry_type));
                    }
                    decide(journals.entry(id).or_default(), command, &services).await
                }
            };
            assert_eq!(events, 1);
        }
    }
    assert_eq!(athletes.len(), 30);
    assert_eq!(activities.len(), total.runs);
    assert!(total.races >= 30, "{total:?}");
    assert!(
        total.body_compositions > 0 && total.work_patterns > 0,
        "{total:?}"
    );
    assert_eq!(sports.len(), 2, "{sports:?}");
    assert!(
        sources.contains("Manual") && sources.len() >= 3,
        "{sources:?}"
    );
    assert_eq!(entry_types.len(), 4, "{entry_types:?}");
    assert!(zones.len() >= 8, "{zones:?}");
}

/// Speed at the same heart rate improves over the window for every athlete, by a few percent.
#[test]
fn easy_run_efficiency_improves_over_two_years() {
    for seed in [1, 2, 3] {
        let config = config(seed, 12, 730);
        let plan = demo::plan(&config);
        let types = workout_types(&plan);
        let first = config.first_date();
        let mut improvements = Vec::new();
        for index in 0..config.athletes {
            let athlete = demo::athlete_id(&config, index);
            let (mut early, mut late) = (Vec::new(), Vec::new());
            for run in runs(&plan).filter(|r| r.athlete_id == athlete) {
                let easy = types.get(&run.activity_id) == Some(&WorkoutType::Easy);
                let Some(ef) = efficiency(run).filter(|_| easy && run.sport == Sport::Run) else {
                    continue;
                };
                let day = (local_date(run) - first).num_days();
                if day < 120 {
                    early.push(ef);
                } else if day >= 730 - 120 {
                    late.push(ef);
                }
            }
            if early.len() < 10 || late.len() < 10 {
                continue; // an athlete who rarely tags runs
            }
            improvements.push(median(late) / median(early) - 1.0);
        }
        assert!(improvements.len() >= 8, "seed {seed}: {improvements:?}");
        assert!(
            improvements.iter().all(|i| *i > 0.01),
            "seed {seed}: {improvements:?}"
        );
        let mean = improvements.iter().sum::<f64>() / improvements.len() as f64;
        assert!((0.03..0.10).contains(&mean), "seed {seed}: {mean}");
    }
}

/// Longer sleep the night before goes with a more efficient easy run: a mild correlation.
#[test]
fn sleep_correlates_mildly_with_the_next_runs_efficiency() {
    let config = config(11, 40, 365);
    let plan = demo::plan(&config);
    let types = workout_types(&plan);
    let sleep = sleep_by_day(&plan);
    let first = config.first_date();

    // Efficiency relative to the athlete's median in the same 8-week block, so the fitness
    // trend and differences between athletes do not swamp the day-to-day signal.
    let mut blocks: BTreeMap<(Uuid, i64), Vec<(f64, f64)>> = BTreeMap::new();
    for run in runs(&plan) {
        let easy = types.get(&run.activity_id) == Some(&WorkoutType::Easy);
        let date = local_date(run);
        let (Some(ef), Some(sleep_h)) = (efficiency(run), sleep.get(&(run.athlete_id, date)))
        else {
            continue;
        };
        if easy && run.sport == Sport::Run && run.source != ActivitySource::Manual {
            let block = (date - first).num_days() / 56;
            blocks
                .entry((run.athlete_id, block))
                .or_default()
                .push((*sleep_h, ef));
        }
    }
    let mut pairs = Vec::new();
    for block in blocks.values().filter(|b| b.len() >= 5) {
        let m = median(block.iter().map(|(_, ef)| *ef).collect());
        pairs.extend(block.iter().map(|(s, ef)| (*s, ef / m)));
    }
    assert!(pairs.len() > 1000, "{}", pairs.len());
    let n = pairs.len() as f64;
    let (mx, my) = (
        pairs.iter().map(|p| p.0).sum::<f64>() / n,
        pairs.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let cov: f64 = pairs.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let vx: f64 = pairs.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    let vy: f64 = pairs.iter().map(|(_, y)| (y - my) * (y - my)).sum();
    let r = cov / (vx * vy).sqrt();
    assert!((0.15..0.6).contains(&r), "r = {r} over {n} runs");
}

/// The athlete `stridelog demo` shows is athlete 0 of the same config (the same person),
/// logging enough for the correlation engine to have something to say: check-ins and
/// whole days of meals on most days, four presets in use, carbohydrate that varies from day to
/// day. (projections/tests/demo_correlations.rs checks what the engine finds in it.)
#[test]
fn the_showcase_athlete_logs_most_days_and_uses_presets() {
    let config = config(demo::SHOWCASE_SEED, 1, 365);
    let plan = demo::plan_showcase(&config);
    assert_eq!(plan, demo::plan_showcase(&config));
    let everyone = demo::plan_athlete(&config, 0);
    // Registration, preferences and physiology: the same person.
    assert_eq!(plan[..3], everyone[..3]);

    let presets: BTreeMap<Uuid, String> = plan
        .iter()
        .filter_map(|c| match c {
            PlannedCommand::Athlete {
                command:
                    AthleteCommand::SaveNutritionPreset {
                        preset_id, name, ..
                    },
                ..
            } => Some((*preset_id, name.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(presets.len(), 4, "{presets:?}");
    assert!(presets.values().any(|n| n == "Oats with banana"));

    let counts = PlanCounts::of(&plan);
    assert!(counts.check_ins >= 320, "{counts:?}");
    // (date, kind of entry) -> carbohydrate.
    let mut days: BTreeMap<NaiveDate, Vec<(NutritionEntryType, String, f64)>> = BTreeMap::new();
    for c in &plan {
        if let PlannedCommand::Journal {
            date,
            command: JournalCommand::LogNutritionEntry(n),
            ..
        } = c
        {
            days.entry(*date).or_default().push((
                n.values.entry_type,
                n.values.notes.clone().unwrap_or_default(),
                n.values.carbohydrate_g.unwrap_or(0.0),
            ));
        }
    }
    assert!(days.len() >= 290, "{} days with nutrition", days.len());
    // Breakfast, lunch and dinner, every time.
    assert!(days.values().all(|entries| {
        entries
            .iter()
            .filter(|(t, _, _)| *t == NutritionEntryType::Daily)
            .count()
            >= 3
    }));
    for name in presets.values() {
        let used = days
            .values()
            .flatten()
            .filter(|(_, notes, _)| notes == name)
            .count();
        assert!(used >= 20, "{name}: used {used} times");
    }
    // Daily carbohydrate varies from day to day: the choice of meals and the planted portions.
    let totals: Vec<f64> = days
        .values()
        .map(|entries| entries.iter().map(|(_, _, g)| g).sum())
        .collect();
    let n = totals.len() as f64;
    let mean = totals.iter().sum::<f64>() / n;
    let sd = (totals.iter().map(|g| (g - mean) * (g - mean)).sum::<f64>() / n).sqrt();
    assert!((250.0..450.0).contains(&mean), "{mean} g a day");
    assert!(sd / mean > 0.2, "sd {sd} g around {mean} g");
}

fn bus(store: store::EventStore) -> CommandBus {
    CommandBus::new(
        store,
        DomainServices::new(Arc::new(commands::SystemClock)),
        domain::upcasters(),
    )
}

async fn run_appends_exactly_the_planned_events(t: TestStore) {
    let bus = bus(t.store.clone());
    let config = config(2026, 2, 60);
    let planned = demo::plan(&config);
    let expected = PlanCounts::of(&planned);

    let mut calls = 0;
    let mut last = None;
    let summary = demo::run(&bus, &config, |p| {
        calls += 1;
        last = Some(*p);
    })
    .await
    .unwrap();

    assert_eq!(
        summary.athletes,
        [demo::athlete_id(&config, 0), demo::athlete_id(&config, 1)]
    );
    assert_eq!(summary.commands, planned.len());
    assert_eq!(summary.events, planned.len(), "one event per command");
    assert_eq!(summary.counts, expected);
    assert_eq!(calls, planned.len());
    let last = last.unwrap();
    assert_eq!(
        last,
        DemoProgress {
            athletes_done: 2,
            athletes_total: 2,
            commands_done: planned.len(),
            athlete_commands_done: last.athlete_commands_total,
            athlete_commands_total: demo::plan_athlete(&config, 1).len(),
        }
    );

    let mut stored = 0;
    let mut types: BTreeMap<String, usize> = BTreeMap::new();
    for athlete in &summary.athletes {
        let events = t.store.read_athlete(*athlete, None).await.unwrap();
        stored += events.len();
        for e in events {
            assert_eq!(e.metadata.athlete_id, Some(*athlete));
            assert_eq!(e.metadata.actor.user_id, Some(*athlete));
            *types.entry(e.event_type).or_default() += 1;
        }
    }
    assert_eq!(stored, summary.events);
    let count = |t: &str| types.get(t).copied().unwrap_or(0);
    assert_eq!(count("AthleteRegistered"), 2);
    assert_eq!(count("ActivityRecorded"), expected.runs);
    assert_eq!(count("WorkoutTypeSet"), expected.workout_types);
    assert_eq!(count("MarkedAsRace"), expected.races);
    assert_eq!(count("PerceivedEffortRecorded"), expected.perceived_efforts);
    assert_eq!(count("DailyCheckInLogged"), expected.check_ins);
    assert_eq!(count("NutritionEntryLogged"), expected.nutrition_entries);
    assert_eq!(count("WorkPatternLogged"), expected.work_patterns);
    assert_eq!(count("BodyCompositionLogged"), expected.body_compositions);

    // The stored run is the planned one, in its own stream.
    let run = runs(&planned).next().unwrap();
    let stream = StreamId::new("activity", run.activity_id.to_string());
    let recorded = t.store.read_stream(&stream, 0, None).await.unwrap();
    let payload = recorded[0].payload.json().unwrap();
    assert_eq!(payload["distance_m"], run.distance_m.unwrap());
    assert_eq!(payload["moving_time_s"], run.moving_time_s);
    assert_eq!(payload["timezone"], run.timezone.as_str());
    assert_eq!(payload["laps"].as_array().unwrap().len(), run.laps.len());

    // The same config again: the athletes exist, so the first registration is refused and
    // nothing more is written.
    let err = demo::run(&bus, &config, |_| {}).await.unwrap_err();
    assert!(
        matches!(err, CommandError::Domain(DomainError::Conflict(_))),
        "{err}"
    );
    let again: usize = {
        let mut n = 0;
        for athlete in &summary.athletes {
            n += t.store.read_athlete(*athlete, None).await.unwrap().len();
        }
        n
    };
    assert_eq!(again, stored);
}

/// The benchmark seeder decides in memory and appends per stream; the log must hold the same
/// streams, versions and event types as when every command goes through the bus.
async fn direct_seeding_appends_what_the_command_path_appends(t: TestStore) {
    let cfg = config(11, 2, 21);
    let summary = demo::run(&bus(t.store.clone()), &cfg, |_| {})
        .await
        .unwrap();
    let other = TestStore::sqlite().await;
    let mut calls = 0;
    let seeded = demo::seed_direct(&other.store, &cfg, 2, |_, _| calls += 1)
        .await
        .unwrap();
    assert_eq!(seeded, summary.events);
    assert!(calls > 0, "progress is reported");
    let shape = |events: Vec<store::RecordedEvent>| {
        let mut v: Vec<(String, u64, String)> = events
            .into_iter()
            .map(|e| (e.stream.to_string(), e.stream_version, e.event_type))
            .collect();
        v.sort();
        v
    };
    for athlete in &summary.athletes {
        assert_eq!(
            shape(t.store.read_athlete(*athlete, None).await.unwrap()),
            shape(other.store.read_athlete(*athlete, None).await.unwrap())
        );
    }
}

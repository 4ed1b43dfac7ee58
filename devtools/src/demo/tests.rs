use chrono::NaiveDate;
use domain::activity::{ActivityCommand, ActivitySource, Lap, RecordActivity, Sport, WorkoutType};
use domain::athlete::AthleteCommand;

use super::dice::{Dice, SQRT_3};
use super::profile::{SECONDS_PER_HOUR, local_to_utc};
use super::runs::{LapPlan, laps};
use super::tables::RunKind;
use super::*;

fn config(seed: u64, athletes: usize, days: u32) -> DemoConfig {
    DemoConfig {
        seed,
        athletes,
        days,
        end_date: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
    }
}

fn records(commands: &[PlannedCommand]) -> impl Iterator<Item = &RecordActivity> {
    commands.iter().filter_map(|c| match c {
        PlannedCommand::Activity {
            command: ActivityCommand::RecordActivity(r),
            ..
        } => Some(r),
        _ => None,
    })
}

#[test]
fn local_times_convert_with_the_zone_offset() {
    let date = NaiveDate::from_ymd_opt(2026, 3, 14).unwrap();
    let seven_am = 7 * SECONDS_PER_HOUR;
    assert_eq!(
        local_to_utc(date, seven_am, 60).to_rfc3339(),
        "2026-03-14T06:00:00+00:00"
    );
    assert_eq!(
        local_to_utc(date, seven_am, -480).to_rfc3339(),
        "2026-03-14T15:00:00+00:00"
    );
    // East of UTC, an early local morning is still the previous UTC day.
    assert_eq!(
        local_to_utc(date, 6 * SECONDS_PER_HOUR, 720).to_rfc3339(),
        "2026-03-13T18:00:00+00:00"
    );
    assert_eq!(
        local_to_utc(date, seven_am, 330).to_rfc3339(),
        "2026-03-14T01:30:00+00:00"
    );
    assert_eq!(utc_offset_minutes("Asia/Kolkata"), Some(330));
    assert_eq!(utc_offset_minutes("Europe/Atlantis"), None);
}

#[test]
fn dice_draws_stay_in_their_ranges_with_the_expected_moments() {
    let mut dice = Dice::for_athlete(7, 0);
    let n = 20_000;
    let draws: Vec<f64> = (0..n).map(|_| dice.normal(10.0, 2.0)).collect();
    let mean = draws.iter().sum::<f64>() / n as f64;
    let var = draws.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
    assert!((mean - 10.0).abs() < 0.05, "mean {mean}");
    assert!((var.sqrt() - 2.0).abs() < 0.05, "sd {}", var.sqrt());
    assert!(draws.iter().all(|x| (x - 10.0).abs() <= 2.0 * 2.0 * SQRT_3));
    assert!((0..n).all(|_| (3..=5).contains(&dice.int(3, 5))));
    let u = dice.unit();
    assert!((0.0..1.0).contains(&u));
    // Different athletes draw different streams.
    assert_ne!(
        Dice::for_athlete(7, 0).uuid(),
        Dice::for_athlete(7, 1).uuid()
    );
    assert_ne!(
        Dice::for_athlete(7, 0).uuid(),
        Dice::for_athlete(8, 0).uuid()
    );
    assert_eq!(
        Dice::for_athlete(7, 0).uuid().get_version_num(),
        4,
        "random UUIDs"
    );
}

#[test]
fn athlete_id_matches_the_planned_registration() {
    let config = config(11, 3, 5);
    for index in 0..3 {
        let planned = plan_athlete(&config, index);
        assert!(matches!(
            &planned[0],
            PlannedCommand::Athlete { command: AthleteCommand::Register { athlete_id, .. }, .. }
                if *athlete_id == super::athlete_id(&config, index)
        ));
        assert!(
            planned
                .iter()
                .all(|c| c.athlete_id() == planned[0].athlete_id())
        );
    }
    assert_eq!(
        plan(&config),
        (0..3)
            .flat_map(|i| plan_athlete(&config, i))
            .collect::<Vec<_>>()
    );
}

#[test]
fn laps_add_up_to_the_run() {
    let mut dice = Dice::for_athlete(3, 3);
    for (distance_m, lap_m) in [(10_234.5, 1000.0), (5_020.0, 1000.0), (21_510.2, 1609.3)] {
        let laps = laps(
            &mut dice,
            LapPlan {
                kind: RunKind::Intervals,
                distance_m,
                lap_m,
                moving_time_s: 3_125.0,
                avg_hr_bpm: 150.0,
                hr_max: 186.0,
                elevation_gain_m: 87.3,
            },
        );
        let sum = |f: fn(&Lap) -> Option<f64>| laps.iter().filter_map(f).sum::<f64>();
        assert!(
            (sum(|l| l.distance_m) - distance_m).abs() < 0.05,
            "{laps:?}"
        );
        assert!((sum(|l| l.moving_time_s) - 3_125.0).abs() < 0.05);
        assert!((sum(|l| l.elevation_gain_m) - 87.3).abs() < 0.15);
        assert!(laps.iter().all(|l| l.moving_time_s.unwrap() > 0.0));
        assert!(laps.iter().all(|l| l.avg_hr_bpm.unwrap() <= 186.0));
        assert!(laps.windows(2).all(|w| w[0].index + 1 == w[1].index));
        // A 20 m remainder is merged into the last lap rather than becoming its own.
        assert!(laps.last().unwrap().distance_m.unwrap() >= 50.0);
    }
}

#[test]
fn runs_are_physically_consistent() {
    let config = config(5, 12, 180);
    let commands = plan(&config);
    let mut checked = 0;
    for r in records(&commands) {
        let distance_m = r.distance_m.unwrap();
        let pace_s_per_km = r.moving_time_s / (distance_m / 1000.0);
        // 2:50/km to 9:00/km covers a competitive 5K to a slow hilly trail run.
        assert!((170.0..540.0).contains(&pace_s_per_km), "{r:?}");
        assert!(r.moving_time_s <= r.elapsed_time_s.unwrap_or(f64::MAX));
        if let (Some(avg), Some(max)) = (r.avg_hr_bpm, r.max_hr_bpm) {
            assert!(avg <= max && (100.0..=200.0).contains(&avg), "{r:?}");
        }
        assert!(r.elevation_gain_m.unwrap_or(0.0) <= 400.0);
        assert!(matches!(r.sport, Sport::Run | Sport::TrailRun));
        checked += 1;
    }
    assert!(checked > 12 * 180 / 7 * 3, "{checked} runs");
}

#[test]
fn harder_sessions_feel_harder() {
    let config = config(9, 20, 365);
    let commands = plan(&config);
    let mut types = std::collections::HashMap::new();
    let mut efforts = Vec::new();
    for c in &commands {
        if let PlannedCommand::Activity {
            activity_id,
            command,
            ..
        } = c
        {
            match command {
                ActivityCommand::SetWorkoutType(t) => {
                    types.insert(*activity_id, t.workout_type);
                }
                ActivityCommand::RecordPerceivedEffort(e) => {
                    efforts.push((*activity_id, e.effort));
                }
                _ => {}
            }
        }
    }
    let mean_effort = |wanted: WorkoutType| {
        let values: Vec<f64> = efforts
            .iter()
            .filter(|(id, _)| types.get(id) == Some(&wanted))
            .map(|(_, e)| f64::from(*e))
            .collect();
        assert!(values.len() > 20, "{wanted:?}: {}", values.len());
        values.iter().sum::<f64>() / values.len() as f64
    };
    let easy = mean_effort(WorkoutType::Easy);
    let long = mean_effort(WorkoutType::Long);
    let intervals = mean_effort(WorkoutType::Intervals);
    let race = mean_effort(WorkoutType::Race);
    assert!(easy < long && long < intervals && intervals < race);
    assert!((2.0..4.5).contains(&easy) && race > 8.0, "{easy} {race}");
}

#[test]
fn easy_paces_sit_in_the_recreational_to_competitive_band() {
    let config = config(21, 30, 120);
    let commands = plan(&config);
    let mut paces: Vec<f64> = records(&commands)
        .filter(|r| {
            r.sport == Sport::Run
                && r.name.as_deref().is_some_and(|n| n.ends_with(" Run"))
                && r.source != ActivitySource::Manual
        })
        .filter(|r| r.elevation_gain_m.unwrap() / r.distance_m.unwrap() < 0.008)
        .map(|r| r.moving_time_s / r.distance_m.unwrap() * 1000.0)
        .collect();
    paces.sort_by(f64::total_cmp);
    let at = |q: f64| paces[(q * (paces.len() - 1) as f64) as usize];
    // 5:00-6:30 min/km for the bulk of easy running, a little either side at the extremes.
    assert!(
        at(0.1) >= 290.0 && at(0.9) <= 400.0,
        "{} {}",
        at(0.1),
        at(0.9)
    );
    assert!((300.0..390.0).contains(&at(0.5)), "median {}", at(0.5));
}

/// Planning must stay cheap: benchmarks plan hundreds of athletes over two years.
#[test]
fn a_two_year_athlete_plans_quickly() {
    let config = config(1, 1, 730);
    let started = std::time::Instant::now();
    let commands = plan_athlete(&config, 0);
    let elapsed = started.elapsed();
    assert!(commands.len() > 730, "{}", commands.len());
    // Generous for an unoptimised debug build on a loaded CI machine.
    assert!(elapsed < std::time::Duration::from_secs(2), "{elapsed:?}");
}

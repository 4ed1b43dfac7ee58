//! One run: its course, pace and heart rate, its name, the record a device (or a hand) makes of
//! it, its laps, and what the athlete tags and feels afterwards.

use chrono::{Datelike, NaiveDate};
use domain::activity::{
    ActivityCommand, ActivitySource, Lap, MarkAsRace, RecordActivity, RecordPerceivedEffort,
    SetWorkoutType, Sport,
};
use domain::athlete::Units;
use uuid::Uuid;

use super::dice::{Dice, round1, scale};
use super::planner::{AthletePlanner, RunDone};
use super::profile::{CLIMB_EQUIVALENT_M_PER_M, Profile, SECONDS_PER_HOUR, local_to_utc};
use super::tables::{EASY_RUN_NAMES, INTERVAL_SESSIONS, RUN_NOTES, RunKind, THRESHOLD_SESSIONS};

/// What one run of the day is, and the day's state it depends on.
pub(super) struct RunPlan {
    pub(super) kind: RunKind,
    pub(super) start_local_s: u32,
    pub(super) volume: f64,
    pub(super) years: f64,
    pub(super) sleep_h: f64,
    /// The night before last.
    pub(super) previous_sleep_h: f64,
    /// The day's carbohydrate portions, in standard deviations.
    pub(super) fuelling: f64,
    pub(super) fatigue: f64,
}

/// Where the run went.
struct Course {
    trail: bool,
    distance_m: f64,
    elevation_gain_m: f64,
}

/// How fast and how hard.
struct Performance {
    moving_time_s: f64,
    elapsed_time_s: f64,
    avg_hr_bpm: f64,
}

/// The run as it went, before anyone records it.
struct Outing {
    activity_id: Uuid,
    date: NaiveDate,
    start_local_s: u32,
    kind: RunKind,
    name: String,
    course: Course,
    performance: Performance,
}

impl AthletePlanner<'_> {
    pub(super) fn run(&mut self, date: NaiveDate, plan: RunPlan) -> RunDone {
        let activity_id = self.dice.uuid();
        let p = &self.p;
        let dice = &mut self.dice;
        let kind = plan.kind;
        let trail = matches!(kind, RunKind::Easy | RunKind::Long) && dice.chance(p.trail_share);
        let manual = !matches!(kind, RunKind::Race(_)) && dice.chance(p.manual_share);
        let (low, high) = kind.intensity_range();
        let intensity = dice.uniform(low, high);
        let course = course(dice, p, &plan, trail);
        let performance = performance(dice, p, &plan, &course, intensity);
        let outing = Outing {
            activity_id,
            date,
            start_local_s: plan.start_local_s,
            kind,
            name: run_name(dice, kind, trail, date, plan.start_local_s),
            course,
            performance,
        };
        let record = if manual {
            manual_record(p, outing)
        } else {
            device_record(dice, p, &mut self.external_id, outing)
        };
        let moving_time_s = record.moving_time_s;

        let race = matches!(kind, RunKind::Race(_));
        let tagged = race || dice.chance(p.tag_rate);
        let race_result = race_result(dice, p, kind, &record);
        let felt = perceived_effort(dice, p, &plan, intensity);

        self.activity(activity_id, ActivityCommand::RecordActivity(record));
        if tagged {
            let command = ActivityCommand::SetWorkoutType(SetWorkoutType {
                athlete_id: self.p.athlete_id,
                workout_type: kind.workout_type(),
            });
            self.activity(activity_id, command);
        }
        if let Some(result) = race_result {
            self.activity(activity_id, ActivityCommand::MarkAsRace(result));
        }
        if let Some(felt) = felt {
            self.activity(activity_id, ActivityCommand::RecordPerceivedEffort(felt));
        }
        RunDone {
            activity_id,
            kind,
            start_local_s: plan.start_local_s,
            moving_time_s,
        }
    }
}

fn course(dice: &mut Dice, p: &Profile, plan: &RunPlan, trail: bool) -> Course {
    let volume = plan.volume;
    let distance_km = match plan.kind {
        RunKind::Recovery => dice.uniform(6.0, 8.0),
        RunKind::Easy => (dice.uniform(p.easy_km.0, p.easy_km.1) * volume).clamp(6.0, 14.0),
        RunKind::Long => (p.long_run_km * volume * dice.uniform(0.92, 1.1)).clamp(16.0, 32.0),
        RunKind::Tempo => dice.uniform(8.0, 13.0),
        RunKind::Threshold => dice.uniform(9.0, 13.0),
        RunKind::Intervals => dice.uniform(8.0, 12.0),
        // GPS traces of a certified course measure a little long.
        RunKind::Race(d) => d.official_m() / 1000.0 * dice.uniform(1.003, 1.02),
    };
    let climb_m_per_km = if trail {
        dice.uniform(20.0, 40.0)
    } else {
        p.road_climb_m_per_km * dice.uniform(0.4, 1.6)
    };
    Course {
        trail,
        distance_m: round1(distance_km * 1000.0),
        elevation_gain_m: round1((distance_km * climb_m_per_km).min(400.0)),
    }
}

fn performance(
    dice: &mut Dice,
    p: &Profile,
    plan: &RunPlan,
    course: &Course,
    intensity: f64,
) -> Performance {
    // Speed at this intensity, anchored at threshold pace: 12 % of threshold speed at zero
    // reserve rising linearly, which puts easy runs near 1.3 × threshold pace and a 5K about
    // 6 % faster than threshold, as for real runners.
    let fitness = 1.0 + (p.fitness_gain_per_year * plan.years).min(0.08);
    let form = 1.0
        + 0.01 * (plan.sleep_h - 7.2)
        + p.sleep_debt_effect * (plan.previous_sleep_h - p.sleep_baseline_h)
        + p.carbohydrate_effect * plan.fuelling
        - 0.012 * plan.fatigue
        + dice.normal(0.0, 0.012);
    let speed_m_per_s = 1000.0 / p.threshold_pace_s_per_km
        * fitness
        * (0.12 + 0.88 * intensity / p.threshold_intensity)
        * form;
    let trail = course.trail;
    let technical = if trail { dice.uniform(1.05, 1.12) } else { 1.0 };
    let moving_time_s = ((course.distance_m + CLIMB_EQUIVALENT_M_PER_M * course.elevation_gain_m)
        / speed_m_per_s
        * technical)
        .round();
    let pause_s = match plan.kind {
        RunKind::Race(_) => dice.uniform(0.0, 10.0),
        _ if trail => moving_time_s * dice.uniform(0.02, 0.08),
        _ => moving_time_s * dice.uniform(0.005, 0.03) + dice.uniform(0.0, 120.0),
    };
    let elapsed_time_s = (moving_time_s + pause_s).round();

    let hr_reserve = f64::from(p.hr_max_bpm - p.resting_hr_bpm);
    let hr_max = f64::from(p.hr_max_bpm);
    let avg_hr_bpm = round1(
        (f64::from(p.resting_hr_bpm) + intensity * hr_reserve + dice.normal(0.0, 1.0))
            .min(hr_max - 2.0),
    );
    Performance {
        moving_time_s,
        elapsed_time_s,
        avg_hr_bpm,
    }
}

fn run_name(
    dice: &mut Dice,
    kind: RunKind,
    trail: bool,
    date: NaiveDate,
    start_local_s: u32,
) -> String {
    match kind {
        RunKind::Race(d) => format!("{} {}", dice.pick(d.names()), date.year()),
        RunKind::Long if trail => "Long Trail Run".to_string(),
        RunKind::Long => "Long Run".to_string(),
        RunKind::Tempo => format!("Tempo {} km", dice.int(4, 8)),
        RunKind::Threshold => (*dice.pick(THRESHOLD_SESSIONS)).to_string(),
        RunKind::Intervals => (*dice.pick(INTERVAL_SESSIONS)).to_string(),
        RunKind::Easy | RunKind::Recovery if !trail && dice.chance(0.15) => {
            (*dice.pick(EASY_RUN_NAMES)).to_string()
        }
        RunKind::Easy | RunKind::Recovery => {
            let part = match start_local_s / SECONDS_PER_HOUR {
                0..=10 => "Morning",
                11..=13 => "Lunch",
                14..=16 => "Afternoon",
                _ => "Evening",
            };
            let what = if trail { "Trail Run" } else { "Run" };
            format!("{part} {what}")
        }
    }
}

/// Typed in by hand: round numbers, no device data.
fn manual_record(p: &Profile, run: Outing) -> RecordActivity {
    RecordActivity {
        athlete_id: p.athlete_id,
        activity_id: run.activity_id,
        sport: sport(&run.course),
        name: Some(run.name),
        start_time: local_to_utc(run.date, run.start_local_s, p.utc_offset_min),
        timezone: p.timezone.to_string(),
        distance_m: Some((run.course.distance_m / 10.0).round() * 10.0),
        moving_time_s: (run.performance.moving_time_s / 60.0).round().max(1.0) * 60.0,
        elapsed_time_s: None,
        avg_hr_bpm: None,
        max_hr_bpm: None,
        elevation_gain_m: None,
        elevation_loss_m: None,
        source: ActivitySource::Manual,
        external_id: None,
        laps: Vec::new(),
        samples: None,
    }
}

/// What the athlete's watch uploads: auto-laps, heart rate, climb, and the provider's id.
fn device_record(
    dice: &mut Dice,
    p: &Profile,
    last_external_id: &mut u64,
    run: Outing,
) -> RecordActivity {
    let Outing {
        activity_id,
        date,
        start_local_s,
        kind,
        name,
        course,
        performance,
    } = run;
    let hr_max = f64::from(p.hr_max_bpm);
    let lap_m = if p.units == Units::Imperial {
        1609.3
    } else {
        1000.0
    };
    let laps = laps(
        dice,
        LapPlan {
            kind,
            distance_m: course.distance_m,
            lap_m,
            moving_time_s: performance.moving_time_s,
            avg_hr_bpm: performance.avg_hr_bpm,
            hr_max,
            elevation_gain_m: course.elevation_gain_m,
        },
    );
    let top_lap_hr = laps
        .iter()
        .filter_map(|l| l.avg_hr_bpm)
        .fold(performance.avg_hr_bpm, f64::max);
    let max_hr_bpm = (top_lap_hr + dice.uniform(2.0, 9.0)).round().min(hr_max);
    let external_id = match p.source {
        ActivitySource::Garmin | ActivitySource::Strava => {
            *last_external_id += u64::from(dice.int(40_000, 400_000));
            Some(last_external_id.to_string())
        }
        _ => None,
    };
    RecordActivity {
        athlete_id: p.athlete_id,
        activity_id,
        sport: sport(&course),
        name: Some(name),
        start_time: local_to_utc(date, start_local_s, p.utc_offset_min),
        timezone: p.timezone.to_string(),
        distance_m: Some(course.distance_m),
        moving_time_s: performance.moving_time_s,
        elapsed_time_s: Some(performance.elapsed_time_s),
        avg_hr_bpm: Some(performance.avg_hr_bpm),
        max_hr_bpm: Some(max_hr_bpm),
        elevation_gain_m: Some(course.elevation_gain_m),
        elevation_loss_m: Some(round1(course.elevation_gain_m * dice.uniform(0.9, 1.1))),
        source: p.source,
        external_id,
        laps,
        samples: None,
    }
}

fn sport(course: &Course) -> Sport {
    if course.trail {
        Sport::TrailRun
    } else {
        Sport::Run
    }
}

fn race_result(
    dice: &mut Dice,
    p: &Profile,
    kind: RunKind,
    record: &RecordActivity,
) -> Option<MarkAsRace> {
    let RunKind::Race(d) = kind else {
        return None;
    };
    Some(MarkAsRace {
        athlete_id: p.athlete_id,
        race_name: record.name.clone(),
        official_distance_m: Some(d.official_m()),
        // Chip time: a few seconds over the watch's moving time; not everyone looks it up.
        official_time_s: dice
            .chance(0.8)
            .then(|| (record.moving_time_s + dice.uniform(1.0, 6.0)).round()),
    })
}

fn perceived_effort(
    dice: &mut Dice,
    p: &Profile,
    plan: &RunPlan,
    intensity: f64,
) -> Option<RecordPerceivedEffort> {
    let kind = plan.kind;
    let (fatigue, sleep_h) = (plan.fatigue, plan.sleep_h);
    let (low, high) = kind.intensity_range();
    let race = matches!(kind, RunKind::Race(_));
    dice.chance(if race { 0.9 } else { p.effort_rate })
        .then(|| {
            let rpe = kind.base_effort() + 0.5 * (fatigue - 0.6) - 0.4 * (sleep_h - 7.2)
                + 8.0 * (intensity - (low + high) / 2.0)
                + dice.normal(0.0, 0.5);
            let energy_before = scale(3.4 + 0.5 * (sleep_h - 7.2) - 0.6 * fatigue, 5);
            let mood = dice.chance(0.5);
            RecordPerceivedEffort {
                athlete_id: p.athlete_id,
                effort: scale(rpe, 10),
                leg_feel: Some(scale(4.2 - 1.2 * fatigue + dice.normal(0.0, 0.6), 5)),
                mood_before: mood.then(|| scale(dice.normal(3.4, 0.7), 5)),
                mood_after: mood.then(|| scale(dice.normal(4.0, 0.6), 5)),
                energy_before: mood.then_some(energy_before),
                energy_after: mood.then(|| scale(f64::from(energy_before) - rpe / 5.0 + 1.0, 5)),
                notes: dice
                    .chance(0.12)
                    .then(|| (*dice.pick(RUN_NOTES)).to_string()),
            }
        })
}

pub(super) struct LapPlan {
    pub(super) kind: RunKind,
    pub(super) distance_m: f64,
    pub(super) lap_m: f64,
    pub(super) moving_time_s: f64,
    pub(super) avg_hr_bpm: f64,
    pub(super) hr_max: f64,
    pub(super) elevation_gain_m: f64,
}

/// Auto-laps of `lap_m` (a final partial lap only when it is at least 50 m, otherwise the last
/// full lap absorbs it). Lap distances, times and climbs add up to the run's totals, to 0.1.
pub(super) fn laps(dice: &mut Dice, plan: LapPlan) -> Vec<Lap> {
    let full = (plan.distance_m / plan.lap_m).floor() as usize;
    let rest_m = plan.distance_m - full as f64 * plan.lap_m;
    let count = if rest_m >= 50.0 || full == 0 {
        full + 1
    } else {
        full
    };
    let lap_distance = |i: usize| {
        if i + 1 < count {
            plan.lap_m
        } else {
            round1(plan.distance_m - (count - 1) as f64 * plan.lap_m)
        }
    };
    let pace_spread = if plan.kind == RunKind::Intervals {
        0.08
    } else {
        0.025
    };
    let hr_spread = if plan.kind == RunKind::Intervals {
        4.0
    } else {
        1.0
    };
    let drift = plan.kind.hr_drift_bpm();

    // Per-lap shares of time and climb, normalised so the laps add up to the run.
    let mut time_weights = Vec::with_capacity(count);
    let mut climb_weights = Vec::with_capacity(count);
    for i in 0..count {
        let d = lap_distance(i);
        time_weights.push(d * (1.0 + dice.normal(0.0, pace_spread)));
        climb_weights.push(d * dice.uniform(0.2, 1.8));
    }
    let time_total: f64 = time_weights.iter().sum();
    let climb_total: f64 = climb_weights.iter().sum();

    let mut laps = Vec::with_capacity(count);
    let (mut time_so_far, mut climb_so_far) = (0.0, 0.0);
    for i in 0..count {
        let last = i + 1 == count;
        let moving_time_s = if last {
            round1(plan.moving_time_s - time_so_far)
        } else {
            round1(plan.moving_time_s * time_weights[i] / time_total)
        };
        let gain_m = if last {
            round1((plan.elevation_gain_m - climb_so_far).max(0.0))
        } else {
            round1(plan.elevation_gain_m * climb_weights[i] / climb_total)
        };
        time_so_far += moving_time_s;
        climb_so_far += gain_m;
        let position = (i as f64 + 0.5) / count as f64 - 0.5;
        let hr = plan.avg_hr_bpm + drift * position + dice.normal(0.0, hr_spread);
        laps.push(Lap {
            index: i as u32,
            distance_m: Some(lap_distance(i)),
            moving_time_s: Some(moving_time_s),
            avg_hr_bpm: Some(round1(hr.min(plan.hr_max))),
            elevation_gain_m: Some(gain_m),
        });
    }
    laps
}

//! Planning: the account's commands, then day by day the week's structure, work, sleep and the
//! check-in, weight, the day's runs, nutrition and the work log, carrying fatigue from one day
//! to the next.

use chrono::{Datelike, Duration, NaiveDate};
use domain::activity::ActivityCommand;
use domain::athlete::{AthleteCommand, OnboardingStep, Physiology, Role};
use domain::journal::{
    CheckInValues, JournalCommand, LogBodyComposition, LogDailyCheckIn, LogWorkPattern, WorkType,
};
use uuid::Uuid;

use super::dice::{Dice, round1, scale};
use super::profile::{Job, Profile, SECONDS_PER_HOUR};
use super::runs::RunPlan;
use super::tables::{CHECK_IN_NOTES, PRESETS, RaceDistance, RunKind, WEEK_VOLUME, WORK_NOTES};
use super::{DemoConfig, PlannedCommand};

/// A run as the rest of the day sees it (nutrition, fatigue).
pub(super) struct RunDone {
    pub(super) activity_id: Uuid,
    pub(super) kind: RunKind,
    pub(super) start_local_s: u32,
    pub(super) moving_time_s: f64,
}

struct WorkDay {
    work_type: WorkType,
    hours: f64,
    stress: f64,
}

/// What the day's runs depend on.
struct Day {
    date: NaiveDate,
    weekday: usize,
    /// Weeks since a fixed Monday.
    week: i64,
    /// This week's share of the usual easy and long distances.
    volume: f64,
    years: f64,
    sleep_h: f64,
    fuelling: f64,
    fatigue: f64,
}

pub(super) struct AthletePlanner<'c> {
    pub(super) config: &'c DemoConfig,
    pub(super) dice: Dice,
    pub(super) p: Profile,
    pub(super) out: Vec<PlannedCommand>,
    /// Accumulated training load; decays by half a day.
    pub(super) fatigue: f64,
    pub(super) previous_work_stress: f64,
    /// The previous day's check-in sleep (the night before last), logged or not.
    pub(super) previous_sleep_h: f64,
    pub(super) weeks_since_race: u32,
    pub(super) race_this_week: Option<RaceDistance>,
    pub(super) vacation_week: bool,
    pub(super) busy_week: bool,
    pub(super) previous_kind: Option<RunKind>,
    pub(super) external_id: u64,
}

impl<'c> AthletePlanner<'c> {
    pub(super) fn new(config: &'c DemoConfig, index: usize, showcase: bool) -> Self {
        let mut dice = Dice::for_athlete(config.seed, index);
        let p = Profile::draw(&mut dice, config, index);
        let p = if showcase { p.showcase(&mut dice) } else { p };
        let previous_sleep_h = p.sleep_baseline_h;
        let weeks_since_race = dice.int(0, p.race_every_weeks);
        // Provider ids are large and grow over time, like Garmin's and Strava's.
        let external_id = 11_000_000_000 + u64::from(dice.int(0, 4_000_000)) * 1_000;
        // Rough size: the account, then about four commands per day.
        let capacity = 8 + config.days as usize * 5;
        Self {
            config,
            dice,
            p,
            out: Vec::with_capacity(capacity),
            fatigue: 0.3,
            previous_work_stress: 2.5,
            previous_sleep_h,
            weeks_since_race,
            race_this_week: None,
            vacation_week: false,
            busy_week: false,
            previous_kind: None,
            external_id,
        }
    }

    pub(super) fn plan(mut self) -> Vec<PlannedCommand> {
        self.account();
        for day_index in 0..self.config.days {
            self.day(day_index);
        }
        self.out
    }

    fn athlete(&mut self, command: AthleteCommand) {
        self.out.push(PlannedCommand::Athlete {
            athlete_id: self.p.athlete_id,
            command,
        });
    }

    pub(super) fn activity(&mut self, activity_id: Uuid, command: ActivityCommand) {
        self.out.push(PlannedCommand::Activity {
            athlete_id: self.p.athlete_id,
            activity_id,
            command,
        });
    }

    pub(super) fn journal(&mut self, date: NaiveDate, command: JournalCommand) {
        self.out.push(PlannedCommand::Journal {
            athlete_id: self.p.athlete_id,
            date,
            command,
        });
    }

    fn account(&mut self) {
        let p = &self.p;
        let mut commands = vec![
            AthleteCommand::Register {
                athlete_id: p.athlete_id,
                email: p.email.clone(),
                display_name: p.display_name.clone(),
                role: Role::Athlete,
            },
            AthleteCommand::ChangePreferences {
                units: p.units,
                timezone: p.timezone.to_string(),
                notifications: p.notifications,
                digest: p.digest,
            },
            AthleteCommand::ChangePhysiology(Physiology {
                hr_max_bpm: Some(p.hr_max_bpm),
                resting_hr_bpm: Some(p.resting_hr_bpm),
                threshold_hr_bpm: Some(p.threshold_hr_bpm),
                threshold_pace_s_per_km: p
                    .publishes_threshold_pace
                    .then_some(p.threshold_pace_s_per_km),
                sex: Some(p.sex),
                birth_date: Some(p.birth_date),
                height_cm: Some(p.height_cm),
            }),
        ];
        if let Some(goals) = &p.goals {
            commands.push(AthleteCommand::UpdateProfile {
                display_name: p.display_name.clone(),
                email: p.email.clone(),
                goals: goals.clone(),
            });
        }
        if p.sets_availability {
            commands.push(AthleteCommand::SetTrainingAvailability {
                availability: p.availability(),
            });
        }
        for &(preset_id, preset) in &p.presets {
            let (name, _, nutrients) = &PRESETS[preset];
            commands.push(AthleteCommand::SaveNutritionPreset {
                preset_id,
                name: (*name).to_string(),
                nutrients: *nutrients,
            });
        }
        if p.completes_onboarding {
            commands.push(AthleteCommand::ProgressOnboarding {
                reached: OnboardingStep::Complete,
                completed: p.onboarding_steps(),
            });
        }
        for command in commands {
            self.athlete(command);
        }
    }

    fn day(&mut self, day_index: u32) {
        let date = self.config.first_date() + Duration::days(i64::from(day_index));
        let weekday = date.weekday().num_days_from_monday() as usize;
        if weekday == 0 || day_index == 0 {
            self.new_week();
        }
        // Weeks counted from a fixed Monday, so the volume cycle follows the calendar rather
        // than the window's first day.
        let week =
            (date - NaiveDate::from_ymd_opt(2001, 1, 1).expect("a valid date")).num_days() / 7;
        let volume = WEEK_VOLUME[week.rem_euclid(4) as usize];
        let years = f64::from(day_index) / 365.0;

        let work = self.work_day(weekday);
        let weekend = weekday >= 5;
        let sleep_h = (self.dice.normal(
            self.p.sleep_baseline_h + if weekend { 0.35 } else { 0.0 },
            0.6,
        ) - 0.2 * (self.previous_work_stress - 2.5))
            .clamp(5.0, 9.5);
        let sleep_h = round1(sleep_h);
        let fatigue = self.fatigue;
        // The day's carbohydrate portions, in standard deviations (drawn only for an athlete
        // whose portions vary, so everyone else's draws are unchanged).
        let fuelling = if self.p.fuelling_sd > 0.0 {
            self.dice.normal(0.0, 1.0)
        } else {
            0.0
        };

        self.check_in(date, years, sleep_h, fatigue, work.as_ref());
        self.body_composition(date, day_index, weekday);
        let day = Day {
            date,
            weekday,
            week,
            volume,
            years,
            sleep_h,
            fuelling,
            fatigue,
        };
        let runs = self.runs(&day);
        self.nutrition(date, &runs, fuelling);
        if let Some(work) = &work {
            self.work_log(date, work);
        }

        self.fatigue = 0.55 * fatigue + training_load(&runs);
        self.previous_work_stress = work.as_ref().map_or(2.0, |w| w.stress);
        self.previous_kind = runs.last().map(|r| r.kind);
        self.previous_sleep_h = sleep_h;
    }

    /// The day's runs in the order they happened: the planned session, if any, and for some
    /// athletes a recovery double in the other half of the day.
    fn runs(&mut self, day: &Day) -> Vec<RunDone> {
        let mut runs = Vec::with_capacity(2);
        let Some(kind) = self.run_kind(day.weekday, day.week) else {
            return runs;
        };
        let weekend_slot = matches!(kind, RunKind::Long | RunKind::Race(_)) || day.weekday >= 5;
        let start_local_s = self.start_time(kind, weekend_slot, self.p.morning_runner);
        let run = self.run(day.date, self.run_plan(day, kind, start_local_s));
        let double = kind == RunKind::Easy && self.dice.chance(self.p.double_rate);
        runs.push(run);
        if double {
            // The other half of the day from the main run, so the two never overlap.
            let main_in_morning = start_local_s < 12 * SECONDS_PER_HOUR;
            let start_local_s = self.start_time(kind, false, !main_in_morning);
            let plan = self.run_plan(day, RunKind::Recovery, start_local_s);
            runs.push(self.run(day.date, plan));
        }
        // A double may precede the main run.
        runs.sort_by_key(|r| r.start_local_s);
        runs
    }

    fn run_plan(&self, day: &Day, kind: RunKind, start_local_s: u32) -> RunPlan {
        RunPlan {
            kind,
            start_local_s,
            volume: day.volume,
            years: day.years,
            sleep_h: day.sleep_h,
            previous_sleep_h: self.previous_sleep_h,
            fuelling: day.fuelling,
            fatigue: day.fatigue,
        }
    }

    /// Some athletes log their working day, now and then with a note.
    fn work_log(&mut self, date: NaiveDate, work: &WorkDay) {
        if !self.dice.chance(self.p.work_log_rate) {
            return;
        }
        let notes = self
            .dice
            .chance(0.03)
            .then(|| (*self.dice.pick(WORK_NOTES)).to_string());
        let command = JournalCommand::LogWorkPattern(LogWorkPattern {
            athlete_id: self.p.athlete_id,
            date,
            work_type: work.work_type,
            hours_worked: Some(work.hours),
            stress: Some(scale(work.stress, 5)),
            notes,
        });
        self.journal(date, command);
    }

    fn new_week(&mut self) {
        self.weeks_since_race += 1;
        self.vacation_week = self.dice.chance(0.04);
        self.busy_week = self.dice.chance(0.2);
        self.race_this_week = None;
        if self.weeks_since_race >= self.p.race_every_weeks && self.dice.chance(0.5) {
            self.race_this_week = Some(*self.dice.pick(self.p.race_distances));
            self.weeks_since_race = 0;
        }
    }

    fn run_kind(&mut self, weekday: usize, week: i64) -> Option<RunKind> {
        if !self.p.run_days[weekday] {
            return None;
        }
        if weekday == self.p.long_run_day {
            return Some(
                self.race_this_week
                    .take()
                    .map_or(RunKind::Long, RunKind::Race),
            );
        }
        // Three-day runners never skip: their plan is the minimum.
        if self.p.run_days_per_week >= 4 && self.dice.chance(self.p.skip_rate) {
            return None;
        }
        if self.p.quality_days[weekday] {
            let rotation = [RunKind::Tempo, RunKind::Intervals, RunKind::Threshold];
            return Some(rotation[(week + weekday as i64).rem_euclid(3) as usize]);
        }
        let after_long = matches!(
            self.previous_kind,
            Some(RunKind::Long) | Some(RunKind::Race(_))
        );
        if after_long && self.p.run_days_per_week >= 5 {
            Some(RunKind::Recovery)
        } else {
            Some(RunKind::Easy)
        }
    }

    /// Local seconds after midnight. Weekend and long sessions start in the morning whatever the
    /// athlete's habit; races start on the quarter hour.
    fn start_time(&mut self, kind: RunKind, weekend_slot: bool, morning: bool) -> u32 {
        let dice = &mut self.dice;
        match kind {
            RunKind::Race(RaceDistance::FiveK) => 9 * SECONDS_PER_HOUR,
            RunKind::Race(_) => 8 * SECONDS_PER_HOUR + 900 * dice.int(0, 6),
            _ if weekend_slot => dice.int(7 * SECONDS_PER_HOUR, 9 * SECONDS_PER_HOUR),
            _ if morning => dice.int(6 * SECONDS_PER_HOUR, 7 * SECONDS_PER_HOUR + 1800),
            _ => dice.int(17 * SECONDS_PER_HOUR + 1800, 19 * SECONDS_PER_HOUR + 1800),
        }
    }

    fn work_day(&mut self, weekday: usize) -> Option<WorkDay> {
        let job = self.p.job?;
        let dice = &mut self.dice;
        let working = match job {
            Job::Desk | Job::Physical => weekday < 5,
            // Rotating shifts: about four and a half days a week, weekends included.
            Job::Shift => dice.chance(0.64),
        };
        if !working {
            return None;
        }
        if self.vacation_week {
            return Some(WorkDay {
                work_type: WorkType::DayOff,
                hours: 0.0,
                stress: 1.0,
            });
        }
        let busy = if self.busy_week { 0.8 } else { 0.0 };
        let stress = dice.normal(self.p.work_stress_base + busy, 0.6);
        let (work_type, hours) = match job {
            Job::Desk if dice.chance(0.04) => (WorkType::Travel, dice.uniform(9.0, 12.0)),
            Job::Desk => (
                WorkType::Desk,
                dice.normal(8.4 + busy, 0.7).clamp(6.0, 11.5),
            ),
            Job::Physical => (WorkType::Physical, dice.normal(8.0, 0.6).clamp(6.0, 10.0)),
            Job::Shift => (WorkType::Shift, dice.normal(10.0, 1.0).clamp(8.0, 12.0)),
        };
        Some(WorkDay {
            work_type,
            // Quarter hours, as people log them.
            hours: (hours * 4.0).round() / 4.0,
            stress,
        })
    }

    fn check_in(
        &mut self,
        date: NaiveDate,
        years: f64,
        sleep_h: f64,
        fatigue: f64,
        work: Option<&WorkDay>,
    ) {
        // Drawn every day, logged or not, so logging habits do not change the other values.
        let p = &self.p;
        let dice = &mut self.dice;
        let sleep_effect = sleep_h - 7.2;
        let hrv_ms = p.hrv_baseline_ms.map(|base| {
            (base * (1.0 + 0.05 * sleep_effect - 0.06 * fatigue + dice.normal(0.0, 0.07)))
                .clamp(10.0, 250.0)
                .round()
        });
        let resting_hr_bpm = (f64::from(p.resting_hr_bpm) - 1.5 * years + 2.5 * fatigue
            - 0.8 * sleep_effect
            + dice.normal(0.0, 1.5))
        .round();
        let sleep_quality = scale(3.0 + 0.8 * (sleep_h - 7.0) + dice.normal(0.0, 0.7), 5);
        let stress = scale(work.map_or(2.0, |w| w.stress) + dice.normal(0.0, 0.6), 5);
        let soreness = scale(1.0 + 1.6 * fatigue + dice.normal(0.0, 0.6), 5);
        let hrv_ratio = hrv_ms.zip(p.hrv_baseline_ms).map_or(1.0, |(h, b)| h / b);
        let readiness = scale(
            3.0 + 0.6 * sleep_effect - 0.9 * (fatigue - 0.6)
                + 4.0 * (hrv_ratio - 1.0)
                + dice.normal(0.0, 0.6),
            5,
        );
        let notes = dice
            .chance(0.03)
            .then(|| (*dice.pick(CHECK_IN_NOTES)).to_string());
        if !dice.chance(p.check_in_rate) {
            return;
        }
        let command = JournalCommand::LogDailyCheckIn(LogDailyCheckIn {
            athlete_id: p.athlete_id,
            date,
            values: CheckInValues {
                sleep_h: Some(sleep_h),
                sleep_quality: Some(sleep_quality),
                hrv_ms,
                resting_hr_bpm: p.logs_resting_hr.then_some(resting_hr_bpm),
                stress: Some(stress),
                soreness: Some(soreness),
                readiness: Some(readiness),
                notes,
            },
        });
        self.journal(date, command);
    }

    fn body_composition(&mut self, date: NaiveDate, day_index: u32, weekday: usize) {
        let Some(scale) = &self.p.scale else {
            return;
        };
        let dice = &mut self.dice;
        if weekday != scale.weekday || !dice.chance(0.85) {
            return;
        }
        let weight_kg = round1(
            scale.start_weight_kg
                + scale.drift_kg_per_day * f64::from(day_index)
                + dice.normal(0.0, 0.35),
        );
        let (body_fat_pct, muscle_mass_kg) = match scale.composition {
            Some((start_fat_pct, muscle_share)) => {
                // Fat follows weight: most of a slow drift is fat.
                let fat_pct = (start_fat_pct
                    + 0.6 * scale.drift_kg_per_day * f64::from(day_index)
                    + dice.normal(0.0, 0.5))
                .clamp(5.0, 40.0);
                let muscle_kg = weight_kg * (1.0 - fat_pct / 100.0) * muscle_share;
                (Some(round1(fat_pct)), Some(round1(muscle_kg)))
            }
            None => (None, None),
        };
        let command = JournalCommand::LogBodyComposition(LogBodyComposition {
            athlete_id: self.p.athlete_id,
            date,
            weight_kg: Some(weight_kg),
            body_fat_pct,
            muscle_mass_kg,
            height_cm: Some(self.p.height_cm),
            notes: None,
        });
        self.journal(date, command);
    }
}

/// The day's training load from its runs, TRIMP-like: duration weighted by the square of
/// intensity.
fn training_load(runs: &[RunDone]) -> f64 {
    runs.iter()
        .map(|r| {
            let (low, high) = r.kind.intensity_range();
            let intensity = (low + high) / 2.0;
            r.moving_time_s / 3600.0 * (intensity / 0.7) * (intensity / 0.7) * 0.45
        })
        .sum()
}

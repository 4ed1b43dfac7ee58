//! The athlete: everything drawn once per athlete (who they are, their physiology, training
//! week and logging habits), and the showcase athlete `stridelog demo` shows.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use domain::activity::ActivitySource;
use domain::athlete::{
    DayAvailability, Digest, NotificationChoices, OnboardingStep, Sex, SlotStatus, TrainingGoal,
    Units, Weekday, WeeklyAvailability,
};
use uuid::Uuid;

use super::dice::{Dice, round1};
use super::tables::{
    FEMALE_FIRST_NAMES, LAST_NAMES, MALE_FIRST_NAMES, PRESETS, RaceDistance, SHOWCASE_PRESETS,
};
use super::{DemoConfig, TIMEZONES};

pub(super) const SECONDS_PER_HOUR: u32 = 3600;
/// Nothing is planned later than this local time (see the module comment on time zones).
pub(super) const LATEST_LOCAL_S: u32 = 22 * SECONDS_PER_HOUR + 1800;
/// Flat metres that one metre of climb costs a runner (the usual grade-adjusted-pace rule).
pub(super) const CLIMB_EQUIVALENT_M_PER_M: f64 = 6.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Job {
    Desk,
    Physical,
    Shift,
}

pub(super) struct Scale {
    pub(super) weekday: usize,
    pub(super) start_weight_kg: f64,
    pub(super) drift_kg_per_day: f64,
    /// Smart scales also report fat and muscle: (body fat % at the start, muscle share of lean mass).
    pub(super) composition: Option<(f64, f64)>,
}

/// Everything drawn once per athlete. Weekday indices count from Monday = 0.
pub(super) struct Profile {
    pub(super) athlete_id: Uuid,
    pub(super) display_name: String,
    pub(super) email: String,
    pub(super) sex: Sex,
    pub(super) birth_date: NaiveDate,
    pub(super) height_cm: f64,
    pub(super) timezone: &'static str,
    pub(super) utc_offset_min: i32,
    pub(super) units: Units,
    pub(super) notifications: NotificationChoices,
    pub(super) digest: Digest,
    pub(super) goals: Option<BTreeSet<TrainingGoal>>,
    pub(super) publishes_threshold_pace: bool,
    pub(super) sets_availability: bool,
    pub(super) completes_onboarding: bool,

    pub(super) hr_max_bpm: u16,
    pub(super) resting_hr_bpm: u16,
    pub(super) threshold_hr_bpm: u16,
    /// Fraction of heart-rate reserve at threshold; the speed model is anchored there.
    pub(super) threshold_intensity: f64,
    /// At the start of the window.
    pub(super) threshold_pace_s_per_km: f64,
    pub(super) fitness_gain_per_year: f64,

    pub(super) run_days: [bool; 7],
    pub(super) run_days_per_week: usize,
    pub(super) long_run_day: usize,
    pub(super) quality_days: [bool; 7],
    pub(super) morning_runner: bool,
    pub(super) easy_km: (f64, f64),
    pub(super) long_run_km: f64,
    pub(super) road_climb_m_per_km: f64,
    pub(super) trail_share: f64,
    pub(super) skip_rate: f64,
    pub(super) double_rate: f64,
    pub(super) race_every_weeks: u32,
    pub(super) race_distances: &'static [RaceDistance],
    pub(super) source: ActivitySource,
    pub(super) manual_share: f64,
    pub(super) tag_rate: f64,
    pub(super) effort_rate: f64,

    pub(super) sleep_baseline_h: f64,
    pub(super) hrv_baseline_ms: Option<f64>,
    pub(super) logs_resting_hr: bool,
    pub(super) check_in_rate: f64,
    pub(super) nutrition_rate: f64,
    pub(super) caffeine_habit_mg: f64,
    /// Saved presets: (preset id, index into [`PRESETS`]).
    pub(super) presets: Vec<(Uuid, usize)>,
    /// Breakfast, lunch and dinner on every day with nutrition, rather than now and then.
    pub(super) logs_every_meal: bool,
    /// How much the day's carbohydrate portions vary (sd of a factor around 1); 0 for fixed
    /// portions.
    pub(super) fuelling_sd: f64,
    /// Speed change per standard deviation of the day's carbohydrate portions.
    pub(super) carbohydrate_effect: f64,
    /// Speed change per hour of sleep above the athlete's baseline on the night before last (the
    /// previous day's check-in).
    pub(super) sleep_debt_effect: f64,
    pub(super) job: Option<Job>,
    pub(super) work_log_rate: f64,
    pub(super) work_stress_base: f64,
    pub(super) scale: Option<Scale>,
}

impl Profile {
    pub(super) fn draw(dice: &mut Dice, config: &DemoConfig, index: usize) -> Self {
        // The first draw: `athlete_id()` repeats it without planning the rest.
        let athlete_id = dice.uuid();
        // The parts draw in this order, each from the same stream: reordering them would change
        // every athlete a seed gives.
        let who = Identity::draw(dice, index);
        let body = Physique::draw(dice, config, who.female);
        let week = Training::draw(dice, body.level);
        let logs = Logging::draw(dice, &body, who.female);
        let account = Account::draw(dice, body.level);

        // The remaining draws happen in the order of the fields below.
        Profile {
            athlete_id,
            display_name: who.display_name,
            email: who.email,
            sex: if who.female { Sex::Female } else { Sex::Male },
            birth_date: body.birth_date,
            height_cm: body.height_cm,
            timezone: who.timezone,
            utc_offset_min: who.utc_offset_min,
            units: who.units,
            notifications: account.notifications,
            digest: account.digest,
            goals: account.goals,
            publishes_threshold_pace: dice.chance(0.85),
            sets_availability: dice.chance(0.6),
            completes_onboarding: dice.chance(0.85),
            hr_max_bpm: body.hr_max_bpm as u16,
            resting_hr_bpm: body.resting_hr_bpm as u16,
            threshold_hr_bpm: body.threshold_hr_bpm as u16,
            threshold_intensity: body.threshold_intensity,
            threshold_pace_s_per_km: body.threshold_pace_s_per_km,
            fitness_gain_per_year: dice.uniform(0.025, 0.05),
            run_days: week.run_days,
            run_days_per_week: week.run_days_per_week,
            long_run_day: week.long_run_day,
            quality_days: week.quality_days,
            morning_runner: week.morning_runner,
            easy_km: week.easy_km,
            long_run_km: week.long_run_km,
            road_climb_m_per_km: week.road_climb_m_per_km,
            trail_share: week.trail_share,
            skip_rate: dice.uniform(0.03, 0.10),
            double_rate: if week.run_days_per_week == 6 {
                0.12
            } else {
                0.0
            },
            race_every_weeks: dice.int(5, 12),
            race_distances: week.race_distances,
            source: week.source,
            manual_share: 0.03,
            tag_rate: dice.uniform(0.35, 0.95),
            effort_rate: dice.uniform(0.25, 0.85),
            sleep_baseline_h: dice.uniform(6.6, 7.9),
            hrv_baseline_ms: logs.hrv_baseline_ms,
            logs_resting_hr: logs.logs_resting_hr,
            check_in_rate: dice.uniform(0.72, 0.95),
            nutrition_rate: logs.nutrition_rate,
            caffeine_habit_mg: *dice.pick(&[0.0, 95.0, 95.0, 190.0]),
            presets: logs.presets,
            logs_every_meal: false,
            fuelling_sd: 0.0,
            carbohydrate_effect: 0.0,
            sleep_debt_effect: 0.0,
            job: logs.job,
            work_log_rate: logs.work_log_rate,
            work_stress_base: dice.uniform(1.8, 3.2),
            scale: logs.scale,
        }
    }

    /// The athlete `stridelog demo` shows (see [`plan_showcase`]): drawn like everyone else,
    /// then made a diligent logger whose runs respond to two habits. A road runner on gentle
    /// routes: climbs and trails slow runs at the same heart rate, which efficiency (flat pace
    /// per beat) would otherwise carry as noise of several percent.
    pub(super) fn showcase(mut self, dice: &mut Dice) -> Self {
        self.check_in_rate = 0.92;
        self.nutrition_rate = 0.85;
        self.logs_every_meal = true;
        self.caffeine_habit_mg = 95.0;
        self.presets = SHOWCASE_PRESETS
            .iter()
            .map(|name| {
                let index = PRESETS
                    .iter()
                    .position(|(n, _, _)| n == name)
                    .expect("showcase presets are in PRESETS");
                (dice.uuid(), index)
            })
            .collect();
        self.completes_onboarding = true;
        self.trail_share = 0.0;
        self.road_climb_m_per_km = 2.5;
        // Portions vary by a fifth from day to day; a standard deviation more carbohydrate goes
        // with 3.5 % faster running at the same heart rate (more glycogen for the same effort).
        // Both sizes give r near 0.5 against the rest of the day-to-day variation in efficiency.
        self.fuelling_sd = 0.2;
        self.carbohydrate_effect = 0.035;
        // Sleep debt shows with a delay: an hour more on the night before last, 4 % faster.
        self.sleep_debt_effect = 0.04;
        self
    }

    pub(super) fn availability(&self) -> WeeklyAvailability {
        let day = |weekday: usize| {
            let preferred = if self.run_days[weekday] {
                SlotStatus::Preferred
            } else {
                SlotStatus::Available
            };
            let weekend = weekday >= 5;
            if self.morning_runner || weekend {
                DayAvailability {
                    morning: preferred,
                    afternoon: if weekend {
                        SlotStatus::Available
                    } else {
                        SlotStatus::Unavailable
                    },
                    evening: SlotStatus::Available,
                }
            } else {
                DayAvailability {
                    morning: SlotStatus::Unavailable,
                    afternoon: SlotStatus::Unavailable,
                    evening: preferred,
                }
            }
        };
        WeeklyAvailability {
            monday: day(0),
            tuesday: day(1),
            wednesday: day(2),
            thursday: day(3),
            friday: day(4),
            saturday: day(5),
            sunday: day(6),
        }
    }

    pub(super) fn onboarding_steps(&self) -> BTreeSet<OnboardingStep> {
        let mut steps = BTreeSet::from([OnboardingStep::Initial, OnboardingStep::BasicProfile]);
        if self.goals.is_some() {
            steps.insert(OnboardingStep::Goals);
        }
        if self.source == ActivitySource::Strava {
            steps.insert(OnboardingStep::ConnectStrava);
        }
        if !self.presets.is_empty() {
            steps.insert(OnboardingStep::NutritionSetup);
        }
        if self.job.is_some() && self.work_log_rate > 0.0 {
            steps.insert(OnboardingStep::WorkSetup);
        }
        steps
    }
}

/// Who the athlete is and where they live: the first draws after the id.
struct Identity {
    female: bool,
    display_name: String,
    email: String,
    timezone: &'static str,
    utc_offset_min: i32,
    units: Units,
}

impl Identity {
    fn draw(dice: &mut Dice, index: usize) -> Self {
        let female = dice.chance(0.5);
        let (first, first_ascii) = *dice.pick(if female {
            FEMALE_FIRST_NAMES
        } else {
            MALE_FIRST_NAMES
        });
        let (last, last_ascii) = *dice.pick(LAST_NAMES);
        let &(timezone, utc_offset_min) = dice.pick(TIMEZONES);
        let american = timezone.starts_with("America/") && timezone != "America/Sao_Paulo";
        let units = if dice.chance(if american { 0.7 } else { 0.08 }) {
            Units::Imperial
        } else {
            Units::Metric
        };
        Self {
            female,
            display_name: format!("{first} {last}"),
            email: format!("{first_ascii}.{last_ascii}.{index}@example.org"),
            timezone,
            utc_offset_min,
            units,
        }
    }
}

/// Age, heart rates, threshold pace and build.
struct Physique {
    /// 0 = recreational, 1 = competitive club runner: ties pace, volume and resting HR together.
    level: f64,
    age_years: u32,
    birth_date: NaiveDate,
    hr_max_bpm: f64,
    resting_hr_bpm: f64,
    threshold_hr_bpm: f64,
    threshold_intensity: f64,
    threshold_pace_s_per_km: f64,
    height_cm: f64,
    start_weight_kg: f64,
}

impl Physique {
    fn draw(dice: &mut Dice, config: &DemoConfig, female: bool) -> Self {
        let level = dice.unit();
        let age_years = dice.int(22, 58);
        let birth_date = config.end_date
            - Duration::days(i64::from(age_years) * 365 + i64::from(dice.int(0, 364)));
        let hr_max_bpm = (208.0 - 0.7 * f64::from(age_years) + dice.normal(0.0, 4.0))
            .round()
            .clamp(170.0, 200.0);
        let resting_hr_bpm = (60.0 - 12.0 * level + dice.normal(0.0, 3.0))
            .round()
            .clamp(42.0, 65.0);
        let threshold_hr_bpm =
            (resting_hr_bpm + dice.uniform(0.85, 0.89) * (hr_max_bpm - resting_hr_bpm)).round();
        let threshold_intensity =
            (threshold_hr_bpm - resting_hr_bpm) / (hr_max_bpm - resting_hr_bpm);
        let threshold_pace_s_per_km = (288.0 - 43.0 * level + dice.normal(0.0, 5.0))
            .round()
            .clamp(245.0, 290.0);
        let height_cm = if female {
            dice.normal(166.0, 6.0).clamp(152.0, 182.0)
        } else {
            dice.normal(178.0, 7.0).clamp(162.0, 196.0)
        };
        let height_cm = round1(height_cm);
        let bmi = (dice.normal(22.0, 1.3) - 0.6 * level).clamp(19.0, 25.5);
        let start_weight_kg = bmi * (height_cm / 100.0) * (height_cm / 100.0);
        Self {
            level,
            age_years,
            birth_date,
            hr_max_bpm,
            resting_hr_bpm,
            threshold_hr_bpm,
            threshold_intensity,
            threshold_pace_s_per_km,
            height_cm,
            start_weight_kg,
        }
    }
}

/// The training week, where the athlete runs, their races and their device.
struct Training {
    run_days: [bool; 7],
    run_days_per_week: usize,
    long_run_day: usize,
    quality_days: [bool; 7],
    morning_runner: bool,
    easy_km: (f64, f64),
    long_run_km: f64,
    road_climb_m_per_km: f64,
    trail_share: f64,
    race_distances: &'static [RaceDistance],
    source: ActivitySource,
}

impl Training {
    fn draw(dice: &mut Dice, level: f64) -> Self {
        let run_days_per_week = (3.0 + 3.0 * level + dice.normal(0.0, 0.6))
            .round()
            .clamp(3.0, 6.0) as usize;
        let saturday_long_run = dice.chance(0.4);
        let (run_days, quality_days) = week_template(run_days_per_week, dice.chance(0.5));
        let (run_days, quality_days) = if saturday_long_run {
            (swap_weekend(run_days), swap_weekend(quality_days))
        } else {
            (run_days, quality_days)
        };
        let long_run_day = if saturday_long_run { 5 } else { 6 };
        let morning_runner = dice.chance(0.6);
        let easy_km = (6.0 + 2.0 * level, 9.0 + 5.0 * level);
        let long_run_km = (16.0 + 10.0 * level + dice.normal(0.0, 1.5)).clamp(16.0, 28.0);
        let road_climb_m_per_km = dice.uniform(1.5, 12.0);
        let trail_share = if dice.chance(0.4) {
            dice.uniform(0.1, 0.3)
        } else {
            0.0
        };
        let race_distances: &'static [RaceDistance] = if level < 0.5 {
            &[
                RaceDistance::FiveK,
                RaceDistance::TenK,
                RaceDistance::TenK,
                RaceDistance::Half,
            ]
        } else {
            &[
                RaceDistance::FiveK,
                RaceDistance::TenK,
                RaceDistance::Half,
                RaceDistance::Half,
                RaceDistance::Marathon,
            ]
        };
        let source = *dice.pick(&[
            ActivitySource::Garmin,
            ActivitySource::Garmin,
            ActivitySource::Strava,
            ActivitySource::Strava,
            ActivitySource::Fit,
        ]);
        Self {
            run_days,
            run_days_per_week,
            long_run_day,
            quality_days,
            morning_runner,
            easy_km,
            long_run_km,
            road_climb_m_per_km,
            trail_share,
            race_distances,
            source,
        }
    }
}

/// What the athlete measures and logs besides runs: HRV and resting HR, nutrition, work and
/// weight.
struct Logging {
    hrv_baseline_ms: Option<f64>,
    logs_resting_hr: bool,
    nutrition_rate: f64,
    presets: Vec<(Uuid, usize)>,
    job: Option<Job>,
    work_log_rate: f64,
    scale: Option<Scale>,
}

impl Logging {
    fn draw(dice: &mut Dice, body: &Physique, female: bool) -> Self {
        let level = body.level;
        let wearable = dice.chance(0.7);
        let hrv_baseline_ms = wearable.then(|| {
            (75.0 - 0.9 * f64::from(body.age_years) + 30.0 * level + dice.normal(0.0, 8.0))
                .clamp(25.0, 140.0)
        });
        let logs_resting_hr = wearable || dice.chance(0.25);
        let nutrition_rate = if dice.chance(0.65) {
            dice.uniform(0.2, 0.7)
        } else {
            0.0
        };
        let presets = (nutrition_rate > 0.0 || dice.chance(0.2))
            .then(|| (dice.uuid(), dice.int(0, PRESETS.len() as u32 - 1) as usize))
            .into_iter()
            .collect();
        let job = match dice.int(0, 99) {
            0..=61 => Some(Job::Desk),
            62..=73 => Some(Job::Physical),
            74..=85 => Some(Job::Shift),
            _ => None,
        };
        let work_log_rate = if dice.chance(0.85) {
            dice.uniform(0.7, 0.95)
        } else {
            0.0
        };
        let scale = dice.chance(0.45).then(|| Scale {
            weekday: dice.int(0, 6) as usize,
            start_weight_kg: body.start_weight_kg,
            drift_kg_per_day: dice.uniform(-4.0, 1.5) / 365.0,
            composition: dice.chance(0.6).then(|| {
                let body_fat_pct = if female {
                    dice.uniform(19.0, 30.0)
                } else {
                    dice.uniform(10.0, 21.0)
                } - 3.0 * level;
                (body_fat_pct, dice.uniform(0.50, 0.54))
            }),
        });
        Self {
            hrv_baseline_ms,
            logs_resting_hr,
            nutrition_rate,
            presets,
            job,
            work_log_rate,
            scale,
        }
    }
}

/// The account's settings: goals, notifications and digest.
struct Account {
    goals: Option<BTreeSet<TrainingGoal>>,
    notifications: NotificationChoices,
    digest: Digest,
}

impl Account {
    fn draw(dice: &mut Dice, level: f64) -> Self {
        let goals = dice.chance(0.7).then(|| {
            let mut goals = BTreeSet::from([*dice.pick(&[
                TrainingGoal::ImproveEfficiency,
                TrainingGoal::RunFaster,
                TrainingGoal::BuildEndurance,
            ])]);
            if level > 0.5 || dice.chance(0.3) {
                goals.insert(TrainingGoal::RacePerformance);
            }
            if dice.chance(0.25) {
                goals.insert(*dice.pick(&[TrainingGoal::LoseWeight, TrainingGoal::GeneralFitness]));
            }
            goals
        });
        let notifications = NotificationChoices {
            new_insights: dice.chance(0.6),
            sync_problems: dice.chance(0.7),
            coach_messages: dice.chance(0.3),
        };
        let digest = match dice.int(0, 19) {
            0..=9 => Digest::Off,
            10..=16 => Digest::Weekly {
                weekday: *dice.pick(&[Weekday::Monday, Weekday::Sunday]),
            },
            _ => Digest::Monthly {
                weekday: Weekday::Monday,
            },
        };
        Self {
            goals,
            notifications,
            digest,
        }
    }
}

/// Run days and quality days with the long run on Sunday (index 6); `quality_on_three_days`
/// decides whether a 3-day runner makes one of the two short runs a quality session.
fn week_template(run_days_per_week: usize, quality_on_three_days: bool) -> ([bool; 7], [bool; 7]) {
    let (runs, quality): (&[usize], &[usize]) = match run_days_per_week {
        3 if quality_on_three_days => (&[1, 3, 6], &[1]),
        3 => (&[1, 3, 6], &[]),
        4 => (&[1, 3, 5, 6], &[1]),
        5 => (&[0, 1, 3, 4, 6], &[1, 3]),
        _ => (&[0, 1, 2, 3, 4, 6], &[1, 3]),
    };
    let mut run_days = [false; 7];
    let mut quality_days = [false; 7];
    for &d in runs {
        run_days[d] = true;
    }
    for &d in quality {
        quality_days[d] = true;
    }
    (run_days, quality_days)
}

/// The same template for an athlete whose long run is on Saturday.
fn swap_weekend(mut days: [bool; 7]) -> [bool; 7] {
    days.swap(5, 6);
    days
}

/// A local wall-clock time (seconds after midnight on `date`) as UTC, with a fixed offset.
pub(super) fn local_to_utc(date: NaiveDate, local_s: u32, utc_offset_min: i32) -> DateTime<Utc> {
    let local = date.and_time(NaiveTime::MIN) + Duration::seconds(i64::from(local_s));
    (local - Duration::minutes(i64::from(utc_offset_min))).and_utc()
}

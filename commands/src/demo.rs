//! Deterministic demo data: athletes with a configurable number of days of runs, check-ins,
//! nutrition, work and body composition, written through the real command path.
//!
//! [`plan`] and [`plan_athlete`] are pure: the same [`DemoConfig`] always gives the same
//! commands, ids and values. Nothing reads the clock or the OS's randomness; every id and value
//! comes from a seeded xoshiro256++ (a named algorithm, so its output does not change with the
//! `rand` release), and values are derived with IEEE-exact operations only (+ − × ÷ √ and
//! rounding, no `ln`/`cos` whose last bit depends on the platform's libm), so a seed gives the
//! same plan on every machine. [`run`] executes a plan through [`CommandBus::execute`], so every
//! command is validated and stored exactly like an athlete's own.
//!
//! What the data contains, and what later analyses can find in it:
//! - **fitness**: each athlete's speed at a given heart-rate reserve improves by 2.5-5 % a year
//!   (capped at 8 %), so efficiency trends (speed per heartbeat) have a signal;
//! - **sleep**: the check-in of day D records the night before D; each hour of sleep above or
//!   below 7.2 h changes D's running speed at the same heart rate by about 1 % (a mild effect
//!   under about 1.5 % day-to-day noise), so sleep/efficiency correlations are findable but not
//!   obvious. The effect applies whether or not that day's check-in was logged;
//! - **load**: hard and long days raise the next days' fatigue, which shows as soreness, lower
//!   HRV and readiness, a higher resting HR and a slightly slower pace;
//! - runs follow a weekly template (3-6 run days, a long run at the weekend, one or two quality
//!   sessions, recovery runs for high-volume athletes) on a 4-week build/recovery volume cycle,
//!   with a race every 5-12 weeks in place of the long run.
//!
//! The athlete `stridelog demo` shows ([`plan_showcase`]) is athlete 0 drawn as above, then made
//! the user the product is for: check-ins on about 92 % of days, breakfast, lunch, dinner and
//! pre-run fuel on about 85 % of days, four saved presets ("Oats with banana" among them) used
//! for some of those entries, a road runner on gentle routes. Two habits move their running
//! speed at the same heart rate, each planted so that the correlation engine sees r near 0.5
//! once it has removed the known structure (docs/correlations.md):
//! - **sleep debt**: each hour of sleep above the athlete's baseline on the night before last
//!   (the previous day's check-in, so lag 1 to the engine) makes a run 4 % faster;
//! - **carbohydrate**: the day's starchy portions vary by about a fifth from day to day
//!   (breakfast, lunch, dinner and pre-run food alike, independently of the day before), and a
//!   standard deviation more makes that day's run 3.5 % faster (lag 0; the logged daily total
//!   follows the portions, so calories follow too).
//!
//! Neither depends on the engine: they are what a real athlete's log could hold, and the
//! engine's calibration (domain/tests/simulation.rs) does not know about them.
//!
//! Time zones: [`TIMEZONES`] gives each zone its standard-time UTC offset and daylight saving
//! time is ignored. Every local time the plan uses (run starts, meals) lies between 05:00 and
//! 22:30, so a reader applying the real rules sees summer times one hour later, never on another
//! date.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc};
use cqrs_es::Aggregate;
use domain::activity::{
    Activity, ActivityCommand, ActivitySource, Lap, MarkAsRace, RecordActivity,
    RecordPerceivedEffort, SetWorkoutType, Sport, WorkoutType,
};
use domain::athlete::{
    Athlete, AthleteCommand, DayAvailability, Digest, NotificationChoices, Nutrients,
    OnboardingStep, Physiology, Role, Sex, SlotStatus, TrainingGoal, Units, Weekday,
    WeeklyAvailability,
};
use domain::journal::{
    CheckInValues, Journal, JournalCommand, LogBodyComposition, LogDailyCheckIn, LogNutritionEntry,
    LogWorkPattern, NutritionEntryType, NutritionValues, WorkType, journal_id,
};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::BTreeSet;
use uuid::Uuid;

use crate::{CommandBus, CommandContext, CommandError, Executed};

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/// What to generate. The same value always plans the same commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DemoConfig {
    pub seed: u64,
    pub athletes: usize,
    /// Length of the window, which ends on (and includes) `end_date`.
    pub days: u32,
    /// The last day with data. Against a system clock it should be yesterday or earlier: an
    /// evening run on `end_date` west of UTC starts on the next UTC day, and the domain refuses
    /// instants more than a day ahead of now.
    pub end_date: NaiveDate,
}

impl DemoConfig {
    /// The first day of the window (the day after `end_date` when `days` is 0: an empty window).
    pub fn first_date(&self) -> NaiveDate {
        self.end_date - Duration::days(i64::from(self.days) - 1)
    }
}

/// One command for one aggregate, in the order it must run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(
    clippy::large_enum_variant,
    reason = "planned commands are built once and moved into the bus; boxing buys nothing"
)]
pub enum PlannedCommand {
    Athlete {
        athlete_id: Uuid,
        command: AthleteCommand,
    },
    Activity {
        athlete_id: Uuid,
        activity_id: Uuid,
        command: ActivityCommand,
    },
    Journal {
        athlete_id: Uuid,
        date: NaiveDate,
        command: JournalCommand,
    },
}

impl PlannedCommand {
    pub fn athlete_id(&self) -> Uuid {
        match self {
            Self::Athlete { athlete_id, .. }
            | Self::Activity { athlete_id, .. }
            | Self::Journal { athlete_id, .. } => *athlete_id,
        }
    }

    /// The stream the command is sent to: aggregate type and aggregate id.
    pub fn stream(&self) -> (&'static str, String) {
        use cqrs_es::Aggregate;
        match self {
            Self::Athlete { athlete_id, .. } => (Athlete::TYPE, athlete_id.to_string()),
            Self::Activity { activity_id, .. } => (Activity::TYPE, activity_id.to_string()),
            Self::Journal {
                athlete_id, date, ..
            } => (Journal::TYPE, journal_id(*athlete_id, *date)),
        }
    }
}

/// How many commands of each kind a plan holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PlanCounts {
    pub athlete_commands: usize,
    pub runs: usize,
    pub races: usize,
    pub workout_types: usize,
    pub perceived_efforts: usize,
    pub check_ins: usize,
    pub nutrition_entries: usize,
    pub work_patterns: usize,
    pub body_compositions: usize,
    /// Journal and activity commands the generator does not produce; kept so the total is exact.
    pub other: usize,
}

impl PlanCounts {
    pub fn of<'a>(commands: impl IntoIterator<Item = &'a PlannedCommand>) -> Self {
        let mut counts = Self::default();
        for command in commands {
            counts.add(command);
        }
        counts
    }

    pub fn add(&mut self, command: &PlannedCommand) {
        let slot = match command {
            PlannedCommand::Athlete { .. } => &mut self.athlete_commands,
            PlannedCommand::Activity { command, .. } => match command {
                ActivityCommand::RecordActivity(_) => &mut self.runs,
                ActivityCommand::MarkAsRace(_) => &mut self.races,
                ActivityCommand::SetWorkoutType(_) => &mut self.workout_types,
                ActivityCommand::RecordPerceivedEffort(_) => &mut self.perceived_efforts,
                _ => &mut self.other,
            },
            PlannedCommand::Journal { command, .. } => match command {
                JournalCommand::LogDailyCheckIn(_) => &mut self.check_ins,
                JournalCommand::LogNutritionEntry(_) => &mut self.nutrition_entries,
                JournalCommand::LogWorkPattern(_) => &mut self.work_patterns,
                JournalCommand::LogBodyComposition(_) => &mut self.body_compositions,
                _ => &mut self.other,
            },
        };
        *slot += 1;
    }

    pub fn total(&self) -> usize {
        self.athlete_commands
            + self.runs
            + self.races
            + self.workout_types
            + self.perceived_efforts
            + self.check_ins
            + self.nutrition_entries
            + self.work_patterns
            + self.body_compositions
            + self.other
    }
}

/// Where a [`run`] is; passed to its progress callback after every command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoProgress {
    /// Athletes whose every command has run.
    pub athletes_done: usize,
    pub athletes_total: usize,
    /// Commands run so far, over all athletes.
    pub commands_done: usize,
    /// Of the athlete in progress: commands run, and planned.
    pub athlete_commands_done: usize,
    pub athlete_commands_total: usize,
}

/// What a [`run`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DemoSummary {
    /// In plan order.
    pub athletes: Vec<Uuid>,
    pub commands: usize,
    /// Events appended (every planned command decides exactly one).
    pub events: usize,
    pub counts: PlanCounts,
}

/// Every command for every athlete, athlete by athlete. For large configs prefer
/// [`plan_athlete`], which holds one athlete's commands at a time.
pub fn plan(config: &DemoConfig) -> Vec<PlannedCommand> {
    (0..config.athletes)
        .flat_map(|index| plan_athlete(config, index))
        .collect()
}

/// The commands of athlete `index` (0-based): the account's commands first, then day by day.
/// Independent of the other athletes: each has its own random stream, so athletes can be
/// planned one at a time, in any order or in parallel.
pub fn plan_athlete(config: &DemoConfig, index: usize) -> Vec<PlannedCommand> {
    AthletePlanner::new(config, index, false).plan()
}

/// The seed `stridelog demo` uses unless told otherwise.
pub const SHOWCASE_SEED: u64 = 42;

/// The athlete `stridelog demo` shows: athlete 0 of `config` (same id, name and training), but
/// a diligent logger (check-ins on most days, every meal on most days, four saved presets)
/// whose runs respond to two habits strongly enough for the correlation engine to find them
/// in a year: sleep on the night before last (lag 1) and the day's carbohydrate (lag 0). See
/// the module comment. `config.athletes` is ignored.
pub fn plan_showcase(config: &DemoConfig) -> Vec<PlannedCommand> {
    AthletePlanner::new(config, 0, true).plan()
}

/// The id athlete `index` gets, without planning anything else.
pub fn athlete_id(config: &DemoConfig, index: usize) -> Uuid {
    Dice::for_athlete(config.seed, index).uuid()
}

/// Sends one planned command to its stream, acting as its athlete.
pub async fn execute(bus: &CommandBus, command: PlannedCommand) -> Result<Executed, CommandError> {
    let ctx = CommandContext::athlete(command.athlete_id());
    match command {
        PlannedCommand::Athlete {
            athlete_id,
            command,
        } => {
            bus.execute::<Athlete>(&ctx, &athlete_id.to_string(), command)
                .await
        }
        PlannedCommand::Activity {
            activity_id,
            command,
            ..
        } => {
            bus.execute::<Activity>(&ctx, &activity_id.to_string(), command)
                .await
        }
        PlannedCommand::Journal {
            athlete_id,
            date,
            command,
        } => {
            bus.execute::<Journal>(&ctx, &journal_id(athlete_id, date), command)
                .await
        }
    }
}

/// Plans and executes every athlete's commands, in order, one athlete at a time (memory stays at
/// one athlete's plan whatever the config). Stops at the first refused command; the athletes
/// before it are complete. Running the same config twice fails on the first `Register`: the
/// athletes already exist.
pub async fn run(
    bus: &CommandBus,
    config: &DemoConfig,
    progress: impl FnMut(&DemoProgress),
) -> Result<DemoSummary, CommandError> {
    run_plans(bus, config, config.athletes, plan_athlete, progress).await
}

/// [`run`] for the [`plan_showcase`] athlete alone.
pub async fn run_showcase(
    bus: &CommandBus,
    config: &DemoConfig,
    progress: impl FnMut(&DemoProgress),
) -> Result<DemoSummary, CommandError> {
    run_plans(bus, config, 1, |config, _| plan_showcase(config), progress).await
}

async fn run_plans(
    bus: &CommandBus,
    config: &DemoConfig,
    athletes: usize,
    plan: impl Fn(&DemoConfig, usize) -> Vec<PlannedCommand>,
    mut progress: impl FnMut(&DemoProgress),
) -> Result<DemoSummary, CommandError> {
    let mut summary = DemoSummary::default();
    for index in 0..athletes {
        let commands = plan(config, index);
        let total = commands.len();
        summary.athletes.push(athlete_id(config, index));
        for (done, command) in commands.into_iter().enumerate() {
            summary.counts.add(&command);
            let (aggregate, id) = command.stream();
            let executed = execute(bus, command).await.inspect_err(|e| {
                tracing::error!(athlete = index, aggregate, id = %id, error = %e, "demo command refused");
            })?;
            summary.events += executed.outcome.map_or(0, |o| o.event_ids.len());
            summary.commands += 1;
            progress(&DemoProgress {
                athletes_done: index + usize::from(done + 1 == total),
                athletes_total: athletes,
                commands_done: summary.commands,
                athlete_commands_done: done + 1,
                athlete_commands_total: total,
            });
        }
    }
    Ok(summary)
}

/// IANA zones demo athletes live in, with their standard-time UTC offset in minutes. Daylight
/// saving time is ignored (see the module comment for why that is safe for this data).
pub const TIMEZONES: &[(&str, i32)] = &[
    ("Europe/London", 0),
    ("Europe/Dublin", 0),
    ("Europe/Paris", 60),
    ("Europe/Berlin", 60),
    ("Europe/Madrid", 60),
    ("Europe/Stockholm", 60),
    ("Europe/Athens", 120),
    ("Africa/Nairobi", 180),
    ("Asia/Kolkata", 330),
    ("Asia/Tokyo", 540),
    ("Australia/Sydney", 600),
    ("Pacific/Auckland", 720),
    ("America/Sao_Paulo", -180),
    ("America/New_York", -300),
    ("America/Chicago", -360),
    ("America/Denver", -420),
    ("America/Los_Angeles", -480),
];

/// The offset [`TIMEZONES`] gives `timezone`, `None` for a zone the generator does not use.
pub fn utc_offset_minutes(timezone: &str) -> Option<i32> {
    TIMEZONES
        .iter()
        .find(|(name, _)| *name == timezone)
        .map(|(_, offset)| *offset)
}

// ---------------------------------------------------------------------------------------------
// Randomness
// ---------------------------------------------------------------------------------------------

/// `√3`, which scales the Irwin-Hall sum in [`Dice::normal`] to a unit standard deviation.
const SQRT_3: f64 = 1.732_050_807_568_877_2;

struct Dice(Xoshiro256PlusPlus);

impl Dice {
    /// One independent stream per athlete, so an athlete's plan does not depend on the others.
    fn for_athlete(seed: u64, index: usize) -> Self {
        let stream = splitmix64(splitmix64(seed) ^ index as u64);
        Self(Xoshiro256PlusPlus::seed_from_u64(stream))
    }

    /// Uniform in [0, 1): the top 53 bits, the precision of an f64.
    fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.unit()
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Inclusive. The modulo bias is below 2^-50 for the small ranges used here.
    fn int(&mut self, low: u32, high: u32) -> u32 {
        low + (self.0.next_u64() % u64::from(high - low + 1)) as u32
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.int(0, items.len() as u32 - 1) as usize]
    }

    /// Approximately normal: a sum of four uniforms (Irwin-Hall). Bounded at ±3.46 standard
    /// deviations, which keeps physiological values plausible without clamping every draw, and
    /// needs no transcendental functions.
    fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let sum = self.unit() + self.unit() + self.unit() + self.unit();
        mean + sd * (sum - 2.0) * SQRT_3
    }

    fn uuid(&mut self) -> Uuid {
        let high = self.0.next_u64().to_be_bytes();
        let low = self.0.next_u64().to_be_bytes();
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&high);
        bytes[8..].copy_from_slice(&low);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// A 1-5 (or 1-10) scale value from a continuous score.
fn scale(score: f64, max: u8) -> u8 {
    score.round().clamp(1.0, f64::from(max)) as u8
}

// ---------------------------------------------------------------------------------------------
// Reference tables
// ---------------------------------------------------------------------------------------------

/// (display form, ASCII form for the email address).
const FEMALE_FIRST_NAMES: &[(&str, &str)] = &[
    ("Mara", "mara"),
    ("Zoë", "zoe"),
    ("Aoife", "aoife"),
    ("Priya", "priya"),
    ("Ingrid", "ingrid"),
    ("Amara", "amara"),
    ("Mei", "mei"),
    ("Sofia", "sofia"),
    ("Élodie", "elodie"),
    ("Fatima", "fatima"),
    ("Hannah", "hannah"),
    ("Yuki", "yuki"),
    ("Camila", "camila"),
    ("Niamh", "niamh"),
];

const MALE_FIRST_NAMES: &[(&str, &str)] = &[
    ("José", "jose"),
    ("Søren", "soren"),
    ("Kenji", "kenji"),
    ("Chidi", "chidi"),
    ("Lukas", "lukas"),
    ("Mateo", "mateo"),
    ("Rahul", "rahul"),
    ("Tomás", "tomas"),
    ("Oluwaseun", "oluwaseun"),
    ("Liam", "liam"),
    ("Arjun", "arjun"),
    ("Jonas", "jonas"),
    ("Kwame", "kwame"),
    ("Diego", "diego"),
];

const LAST_NAMES: &[(&str, &str)] = &[
    ("Okafor", "okafor"),
    ("García", "garcia"),
    ("Nakamura", "nakamura"),
    ("Müller", "muller"),
    ("O'Brien", "obrien"),
    ("Lindqvist", "lindqvist"),
    ("Kowalski", "kowalski"),
    ("Haddad", "haddad"),
    ("Patel", "patel"),
    ("Rossi", "rossi"),
    ("Nguyen", "nguyen"),
    ("Dubois", "dubois"),
    ("Kariuki", "kariuki"),
    ("Silva", "silva"),
    ("Johansson", "johansson"),
    ("Fernández", "fernandez"),
    ("Mensah", "mensah"),
    ("Tanaka", "tanaka"),
    ("Cohen", "cohen"),
    ("Walker", "walker"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RaceDistance {
    FiveK,
    TenK,
    Half,
    Marathon,
}

impl RaceDistance {
    fn official_m(self) -> f64 {
        match self {
            Self::FiveK => 5_000.0,
            Self::TenK => 10_000.0,
            Self::Half => 21_097.5,
            Self::Marathon => 42_195.0,
        }
    }

    fn names(self) -> &'static [&'static str] {
        match self {
            Self::FiveK => &["Riverside 5K", "Park 5K", "Harbour Twilight 5K"],
            Self::TenK => &["Autumn 10K", "Lakeside 10K", "City Centre 10K"],
            Self::Half => &["Coastal Half Marathon", "Spring Half Marathon"],
            Self::Marathon => &["City Marathon", "Valley Marathon"],
        }
    }
}

/// What a run was for; decides its intensity, distance, name and perceived effort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunKind {
    Recovery,
    Easy,
    Long,
    Tempo,
    Threshold,
    Intervals,
    Race(RaceDistance),
}

impl RunKind {
    /// Average intensity as a fraction of heart-rate reserve (Karvonen): what the athlete's
    /// watch would show as the session's average HR.
    fn intensity_range(self) -> (f64, f64) {
        match self {
            Self::Recovery => (0.56, 0.62),
            Self::Easy => (0.63, 0.70),
            Self::Long => (0.64, 0.72),
            Self::Tempo => (0.78, 0.84),
            Self::Threshold => (0.82, 0.87),
            // Averaged over warm-up, reps and recoveries.
            Self::Intervals => (0.72, 0.80),
            Self::Race(RaceDistance::FiveK) => (0.90, 0.94),
            Self::Race(RaceDistance::TenK) => (0.88, 0.92),
            Self::Race(RaceDistance::Half) => (0.85, 0.89),
            Self::Race(RaceDistance::Marathon) => (0.79, 0.85),
        }
    }

    fn workout_type(self) -> WorkoutType {
        match self {
            Self::Recovery => WorkoutType::Recovery,
            Self::Easy => WorkoutType::Easy,
            Self::Long => WorkoutType::Long,
            Self::Tempo => WorkoutType::Tempo,
            Self::Threshold => WorkoutType::Threshold,
            Self::Intervals => WorkoutType::Intervals,
            Self::Race(_) => WorkoutType::Race,
        }
    }

    /// Typical RPE (1-10) of the session for a rested athlete.
    fn base_effort(self) -> f64 {
        match self {
            Self::Recovery => 2.0,
            Self::Easy => 3.0,
            Self::Long => 5.0,
            Self::Tempo => 6.5,
            Self::Threshold => 7.0,
            Self::Intervals => 7.5,
            Self::Race(RaceDistance::Half) => 8.5,
            Self::Race(_) => 9.0,
        }
    }

    /// How much the last lap's HR exceeds the first's (cardiac drift, or a race's finish).
    fn hr_drift_bpm(self) -> f64 {
        match self {
            Self::Recovery | Self::Easy => 4.0,
            Self::Long => 9.0,
            Self::Tempo | Self::Threshold => 6.0,
            Self::Intervals => 3.0,
            Self::Race(_) => 8.0,
        }
    }
}

/// A 4-week cycle (three building weeks, one lighter), applied to easy and long distances.
const WEEK_VOLUME: [f64; 4] = [0.95, 1.0, 1.06, 0.8];

const INTERVAL_SESSIONS: &[&str] = &[
    "6 × 800 m",
    "5 × 1 km",
    "10 × 400 m",
    "4 × 1 mile",
    "8 × 2 min hills",
];
const THRESHOLD_SESSIONS: &[&str] = &["Threshold 3 × 10 min", "Cruise intervals 4 × 2 km"];
const EASY_RUN_NAMES: &[&str] = &[
    "Canal loop",
    "Easy miles along the river",
    "Park laps",
    "Run to work",
    "Club social run",
];
const RUN_NOTES: &[&str] = &[
    "Felt smooth throughout",
    "Windy on the way back",
    "Legs heavy from yesterday",
    "Negative split, felt controlled",
    "Too hot, backed off the pace",
    "Great group run",
    "Left calf a bit tight",
];
const CHECK_IN_NOTES: &[&str] = &[
    "Slept badly, noisy neighbours",
    "Travelling for work",
    "Feeling great",
    "Slight cold coming on",
    "Kids up in the night",
];
const WORK_NOTES: &[&str] = &[
    "Quarter-end deadline",
    "Conference day",
    "Back-to-back meetings",
    "Covered a colleague's shift",
];

/// One food or drink as the athlete would log it; shares are of energy.
struct Food {
    name: &'static str,
    kcal: (f64, f64),
    carbohydrate_share: f64,
    protein_share: f64,
    fibre_g_per_100_kcal: f64,
    caffeine_mg: f64,
}

const fn food(
    name: &'static str,
    kcal: (f64, f64),
    carbohydrate_share: f64,
    protein_share: f64,
    fibre_g_per_100_kcal: f64,
    caffeine_mg: f64,
) -> Food {
    Food {
        name,
        kcal,
        carbohydrate_share,
        protein_share,
        fibre_g_per_100_kcal,
        caffeine_mg,
    }
}

const BREAKFASTS: &[Food] = &[
    food(
        "Porridge with banana and honey",
        (420.0, 560.0),
        0.66,
        0.12,
        1.6,
        0.0,
    ),
    food("Eggs on toast", (380.0, 520.0), 0.35, 0.25, 0.8, 0.0),
    food(
        "Greek yoghurt, granola and berries",
        (350.0, 480.0),
        0.50,
        0.22,
        1.2,
        0.0,
    ),
    food(
        "Bagel with peanut butter and coffee",
        (420.0, 560.0),
        0.50,
        0.15,
        0.9,
        95.0,
    ),
];
const LUNCHES: &[Food] = &[
    food(
        "Chicken and rice bowl",
        (600.0, 800.0),
        0.50,
        0.30,
        0.8,
        0.0,
    ),
    food(
        "Lentil soup with bread",
        (450.0, 620.0),
        0.58,
        0.20,
        2.2,
        0.0,
    ),
    food("Tuna salad sandwich", (480.0, 650.0), 0.45, 0.25, 1.0, 0.0),
    food("Leftover pasta", (550.0, 780.0), 0.60, 0.15, 0.9, 0.0),
];
const DINNERS: &[Food] = &[
    food(
        "Salmon, potatoes and greens",
        (650.0, 850.0),
        0.40,
        0.30,
        1.1,
        0.0,
    ),
    food(
        "Vegetable curry with rice",
        (600.0, 850.0),
        0.60,
        0.12,
        1.5,
        0.0,
    ),
    food("Spaghetti bolognese", (700.0, 950.0), 0.55, 0.20, 0.9, 0.0),
    food("Homemade pizza", (800.0, 1100.0), 0.50, 0.17, 0.7, 0.0),
];
const SNACKS: &[Food] = &[
    food("Apple and almonds", (180.0, 260.0), 0.40, 0.12, 2.5, 0.0),
    food("Flapjack", (220.0, 320.0), 0.60, 0.06, 1.0, 0.0),
    food("Toast with jam", (180.0, 250.0), 0.75, 0.10, 0.8, 0.0),
];
const PRE_RUN: &[Food] = &[
    food("Banana", (100.0, 120.0), 0.93, 0.04, 2.6, 0.0),
    food(
        "Coffee and a slice of toast",
        (150.0, 220.0),
        0.70,
        0.12,
        1.0,
        95.0,
    ),
    food("Energy bar", (200.0, 250.0), 0.65, 0.10, 1.2, 0.0),
];
const POST_RUN: &[Food] = &[
    food("Recovery shake", (200.0, 320.0), 0.45, 0.40, 0.3, 0.0),
    food("Chocolate milk", (300.0, 380.0), 0.60, 0.25, 0.5, 0.0),
    food("Recovery smoothie", (250.0, 380.0), 0.62, 0.25, 1.5, 0.0),
];

/// The presets the showcase athlete saves (by name, from [`PRESETS`]).
const SHOWCASE_PRESETS: &[&str] = &[
    "Oats with banana",
    "Toast with honey",
    "Usual gel",
    "Recovery shake",
];

/// The preset an athlete saves, and where it is used in place of a drawn food.
const PRESETS: &[(&str, NutritionEntryType, Nutrients)] = &[
    (
        "Oats with banana",
        NutritionEntryType::Daily,
        Nutrients {
            calories_kcal: Some(450.0),
            protein_g: Some(14.0),
            carbohydrate_g: Some(80.0),
            fat_g: Some(9.0),
            fibre_g: Some(8.0),
            caffeine_mg: None,
        },
    ),
    (
        "Toast with honey",
        NutritionEntryType::PreActivity,
        Nutrients {
            calories_kcal: Some(210.0),
            protein_g: Some(5.0),
            carbohydrate_g: Some(42.0),
            fat_g: Some(2.5),
            fibre_g: Some(1.5),
            caffeine_mg: None,
        },
    ),
    (
        "Usual gel",
        NutritionEntryType::DuringActivity,
        Nutrients {
            calories_kcal: Some(100.0),
            protein_g: Some(0.0),
            carbohydrate_g: Some(25.0),
            fat_g: Some(0.0),
            fibre_g: None,
            caffeine_mg: Some(0.0),
        },
    ),
    (
        "Recovery shake",
        NutritionEntryType::PostActivity,
        Nutrients {
            calories_kcal: Some(240.0),
            protein_g: Some(25.0),
            carbohydrate_g: Some(27.0),
            fat_g: Some(3.5),
            fibre_g: Some(1.0),
            caffeine_mg: None,
        },
    ),
    (
        "Black coffee",
        NutritionEntryType::PreActivity,
        Nutrients {
            calories_kcal: Some(2.0),
            protein_g: None,
            carbohydrate_g: None,
            fat_g: None,
            fibre_g: None,
            caffeine_mg: Some(95.0),
        },
    ),
];

// ---------------------------------------------------------------------------------------------
// The athlete
// ---------------------------------------------------------------------------------------------

const SECONDS_PER_HOUR: u32 = 3600;
/// Nothing is planned later than this local time (see the module comment on time zones).
const LATEST_LOCAL_S: u32 = 22 * SECONDS_PER_HOUR + 1800;
/// Flat metres that one metre of climb costs a runner (the usual grade-adjusted-pace rule).
const CLIMB_EQUIVALENT_M_PER_M: f64 = 6.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    Desk,
    Physical,
    Shift,
}

struct Scale {
    weekday: usize,
    start_weight_kg: f64,
    drift_kg_per_day: f64,
    /// Smart scales also report fat and muscle: (body fat % at the start, muscle share of lean mass).
    composition: Option<(f64, f64)>,
}

/// Everything drawn once per athlete. Weekday indices count from Monday = 0.
struct Profile {
    athlete_id: Uuid,
    display_name: String,
    email: String,
    sex: Sex,
    birth_date: NaiveDate,
    height_cm: f64,
    timezone: &'static str,
    utc_offset_min: i32,
    units: Units,
    notifications: NotificationChoices,
    digest: Digest,
    goals: Option<BTreeSet<TrainingGoal>>,
    publishes_threshold_pace: bool,
    sets_availability: bool,
    completes_onboarding: bool,

    hr_max_bpm: u16,
    resting_hr_bpm: u16,
    threshold_hr_bpm: u16,
    /// Fraction of heart-rate reserve at threshold; the speed model is anchored there.
    threshold_intensity: f64,
    /// At the start of the window.
    threshold_pace_s_per_km: f64,
    fitness_gain_per_year: f64,

    run_days: [bool; 7],
    run_days_per_week: usize,
    long_run_day: usize,
    quality_days: [bool; 7],
    morning_runner: bool,
    easy_km: (f64, f64),
    long_run_km: f64,
    road_climb_m_per_km: f64,
    trail_share: f64,
    skip_rate: f64,
    double_rate: f64,
    race_every_weeks: u32,
    race_distances: &'static [RaceDistance],
    source: ActivitySource,
    manual_share: f64,
    tag_rate: f64,
    effort_rate: f64,

    sleep_baseline_h: f64,
    hrv_baseline_ms: Option<f64>,
    logs_resting_hr: bool,
    check_in_rate: f64,
    nutrition_rate: f64,
    caffeine_habit_mg: f64,
    /// Saved presets: (preset id, index into [`PRESETS`]).
    presets: Vec<(Uuid, usize)>,
    /// Breakfast, lunch and dinner on every day with nutrition, rather than now and then.
    logs_every_meal: bool,
    /// How much the day's carbohydrate portions vary (sd of a factor around 1); 0 for fixed
    /// portions.
    fuelling_sd: f64,
    /// Speed change per standard deviation of the day's carbohydrate portions.
    carbohydrate_effect: f64,
    /// Speed change per hour of sleep above the athlete's baseline on the night before last (the
    /// previous day's check-in).
    sleep_debt_effect: f64,
    job: Option<Job>,
    work_log_rate: f64,
    work_stress_base: f64,
    scale: Option<Scale>,
}

impl Profile {
    fn draw(dice: &mut Dice, config: &DemoConfig, index: usize) -> Self {
        // The first draw: `athlete_id()` repeats it without planning the rest.
        let athlete_id = dice.uuid();
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

        // 0 = recreational, 1 = competitive club runner: ties pace, volume and resting HR together.
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

        let wearable = dice.chance(0.7);
        let hrv_baseline_ms = wearable.then(|| {
            (75.0 - 0.9 * f64::from(age_years) + 30.0 * level + dice.normal(0.0, 8.0))
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
            start_weight_kg,
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

        Profile {
            athlete_id,
            display_name: format!("{first} {last}"),
            email: format!("{first_ascii}.{last_ascii}.{index}@example.org"),
            sex: if female { Sex::Female } else { Sex::Male },
            birth_date,
            height_cm,
            timezone,
            utc_offset_min,
            units,
            notifications,
            digest,
            goals,
            publishes_threshold_pace: dice.chance(0.85),
            sets_availability: dice.chance(0.6),
            completes_onboarding: dice.chance(0.85),
            hr_max_bpm: hr_max_bpm as u16,
            resting_hr_bpm: resting_hr_bpm as u16,
            threshold_hr_bpm: threshold_hr_bpm as u16,
            threshold_intensity,
            threshold_pace_s_per_km,
            fitness_gain_per_year: dice.uniform(0.025, 0.05),
            run_days,
            run_days_per_week,
            long_run_day,
            quality_days,
            morning_runner,
            easy_km,
            long_run_km,
            road_climb_m_per_km,
            trail_share,
            skip_rate: dice.uniform(0.03, 0.10),
            double_rate: if run_days_per_week == 6 { 0.12 } else { 0.0 },
            race_every_weeks: dice.int(5, 12),
            race_distances,
            source,
            manual_share: 0.03,
            tag_rate: dice.uniform(0.35, 0.95),
            effort_rate: dice.uniform(0.25, 0.85),
            sleep_baseline_h: dice.uniform(6.6, 7.9),
            hrv_baseline_ms,
            logs_resting_hr,
            check_in_rate: dice.uniform(0.72, 0.95),
            nutrition_rate,
            caffeine_habit_mg: *dice.pick(&[0.0, 95.0, 95.0, 190.0]),
            presets,
            logs_every_meal: false,
            fuelling_sd: 0.0,
            carbohydrate_effect: 0.0,
            sleep_debt_effect: 0.0,
            job,
            work_log_rate,
            work_stress_base: dice.uniform(1.8, 3.2),
            scale,
        }
    }

    /// The athlete `stridelog demo` shows (see [`plan_showcase`]): drawn like everyone else,
    /// then made a diligent logger whose runs respond to two habits. A road runner on gentle
    /// routes: climbs and trails slow runs at the same heart rate, which efficiency (flat pace
    /// per beat) would otherwise carry as noise of several percent.
    fn showcase(mut self, dice: &mut Dice) -> Self {
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

    fn availability(&self) -> WeeklyAvailability {
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

    fn onboarding_steps(&self) -> BTreeSet<OnboardingStep> {
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
fn local_to_utc(date: NaiveDate, local_s: u32, utc_offset_min: i32) -> DateTime<Utc> {
    let local = date.and_time(NaiveTime::MIN) + Duration::seconds(i64::from(local_s));
    (local - Duration::minutes(i64::from(utc_offset_min))).and_utc()
}

// ---------------------------------------------------------------------------------------------
// Planning
// ---------------------------------------------------------------------------------------------

/// A run as the rest of the day sees it (nutrition, fatigue).
struct RunDone {
    activity_id: Uuid,
    kind: RunKind,
    start_local_s: u32,
    moving_time_s: f64,
}

struct WorkDay {
    work_type: WorkType,
    hours: f64,
    stress: f64,
}

struct NutritionDraft {
    at_local_s: u32,
    entry_type: NutritionEntryType,
    activity_id: Option<Uuid>,
    nutrients: Nutrients,
    notes: &'static str,
}

struct AthletePlanner<'c> {
    config: &'c DemoConfig,
    dice: Dice,
    p: Profile,
    out: Vec<PlannedCommand>,
    /// Accumulated training load; decays by half a day.
    fatigue: f64,
    previous_work_stress: f64,
    /// The previous day's check-in sleep (the night before last), logged or not.
    previous_sleep_h: f64,
    weeks_since_race: u32,
    race_this_week: Option<RaceDistance>,
    vacation_week: bool,
    busy_week: bool,
    previous_kind: Option<RunKind>,
    external_id: u64,
}

impl<'c> AthletePlanner<'c> {
    fn new(config: &'c DemoConfig, index: usize, showcase: bool) -> Self {
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

    fn plan(mut self) -> Vec<PlannedCommand> {
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

    fn activity(&mut self, activity_id: Uuid, command: ActivityCommand) {
        self.out.push(PlannedCommand::Activity {
            athlete_id: self.p.athlete_id,
            activity_id,
            command,
        });
    }

    fn journal(&mut self, date: NaiveDate, command: JournalCommand) {
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

        let mut runs = Vec::with_capacity(2);
        if let Some(kind) = self.run_kind(weekday, week) {
            let weekend_slot = matches!(kind, RunKind::Long | RunKind::Race(_)) || weekend;
            let start_local_s = self.start_time(kind, weekend_slot, self.p.morning_runner);
            let run = self.run(
                date,
                RunPlan {
                    kind,
                    start_local_s,
                    volume,
                    years,
                    sleep_h,
                    previous_sleep_h: self.previous_sleep_h,
                    fuelling,
                    fatigue,
                },
            );
            let double = kind == RunKind::Easy && self.dice.chance(self.p.double_rate);
            runs.push(run);
            if double {
                // The other half of the day from the main run, so the two never overlap.
                let main_in_morning = start_local_s < 12 * SECONDS_PER_HOUR;
                let start_local_s = self.start_time(kind, false, !main_in_morning);
                let run = self.run(
                    date,
                    RunPlan {
                        kind: RunKind::Recovery,
                        start_local_s,
                        volume,
                        years,
                        sleep_h,
                        previous_sleep_h: self.previous_sleep_h,
                        fuelling,
                        fatigue,
                    },
                );
                runs.push(run);
            }
        }
        // Runs are listed in the order they happened; a double may precede the main run.
        runs.sort_by_key(|r| r.start_local_s);
        self.nutrition(date, &runs, fuelling);
        if let Some(work) = &work
            && self.dice.chance(self.p.work_log_rate)
        {
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

        let load: f64 = runs
            .iter()
            .map(|r| {
                let (low, high) = r.kind.intensity_range();
                let intensity = (low + high) / 2.0;
                // TRIMP-like: duration weighted by the square of intensity.
                r.moving_time_s / 3600.0 * (intensity / 0.7) * (intensity / 0.7) * 0.45
            })
            .sum();
        self.fatigue = 0.55 * fatigue + load;
        self.previous_work_stress = work.as_ref().map_or(2.0, |w| w.stress);
        self.previous_kind = runs.last().map(|r| r.kind);
        self.previous_sleep_h = sleep_h;
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

    fn run(&mut self, date: NaiveDate, plan: RunPlan) -> RunDone {
        let RunPlan {
            kind,
            start_local_s,
            volume,
            years,
            sleep_h,
            previous_sleep_h,
            fuelling,
            fatigue,
        } = plan;
        let activity_id = self.dice.uuid();
        let p = &self.p;
        let dice = &mut self.dice;
        let trail = matches!(kind, RunKind::Easy | RunKind::Long) && dice.chance(p.trail_share);
        let manual = !matches!(kind, RunKind::Race(_)) && dice.chance(p.manual_share);
        let (low, high) = kind.intensity_range();
        let intensity = dice.uniform(low, high);

        let distance_km = match kind {
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
        let distance_m = round1(distance_km * 1000.0);
        let elevation_gain_m = round1((distance_km * climb_m_per_km).min(400.0));

        // Speed at this intensity, anchored at threshold pace: 12 % of threshold speed at zero
        // reserve rising linearly, which puts easy runs near 1.3 × threshold pace and a 5K about
        // 6 % faster than threshold, as for real runners.
        let fitness = 1.0 + (p.fitness_gain_per_year * years).min(0.08);
        let form = 1.0
            + 0.01 * (sleep_h - 7.2)
            + p.sleep_debt_effect * (previous_sleep_h - p.sleep_baseline_h)
            + p.carbohydrate_effect * fuelling
            - 0.012 * fatigue
            + dice.normal(0.0, 0.012);
        let speed_m_per_s = 1000.0 / p.threshold_pace_s_per_km
            * fitness
            * (0.12 + 0.88 * intensity / p.threshold_intensity)
            * form;
        let technical = if trail { dice.uniform(1.05, 1.12) } else { 1.0 };
        let moving_time_s = ((distance_m + CLIMB_EQUIVALENT_M_PER_M * elevation_gain_m)
            / speed_m_per_s
            * technical)
            .round();
        let pause_s = match kind {
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

        let sport = if trail { Sport::TrailRun } else { Sport::Run };
        let name = match kind {
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
        };

        let record = if manual {
            // Typed in by hand: round numbers, no device data.
            RecordActivity {
                athlete_id: p.athlete_id,
                activity_id,
                sport,
                name: Some(name),
                start_time: local_to_utc(date, start_local_s, p.utc_offset_min),
                timezone: p.timezone.to_string(),
                distance_m: Some((distance_m / 10.0).round() * 10.0),
                moving_time_s: (moving_time_s / 60.0).round().max(1.0) * 60.0,
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
        } else {
            let lap_m = if p.units == Units::Imperial {
                1609.3
            } else {
                1000.0
            };
            let laps = laps(
                dice,
                LapPlan {
                    kind,
                    distance_m,
                    lap_m,
                    moving_time_s,
                    avg_hr_bpm,
                    hr_max,
                    elevation_gain_m,
                },
            );
            let top_lap_hr = laps
                .iter()
                .filter_map(|l| l.avg_hr_bpm)
                .fold(avg_hr_bpm, f64::max);
            let max_hr_bpm = (top_lap_hr + dice.uniform(2.0, 9.0)).round().min(hr_max);
            let external_id = match p.source {
                ActivitySource::Garmin | ActivitySource::Strava => {
                    self.external_id += u64::from(dice.int(40_000, 400_000));
                    Some(self.external_id.to_string())
                }
                _ => None,
            };
            RecordActivity {
                athlete_id: p.athlete_id,
                activity_id,
                sport,
                name: Some(name),
                start_time: local_to_utc(date, start_local_s, p.utc_offset_min),
                timezone: p.timezone.to_string(),
                distance_m: Some(distance_m),
                moving_time_s,
                elapsed_time_s: Some(elapsed_time_s),
                avg_hr_bpm: Some(avg_hr_bpm),
                max_hr_bpm: Some(max_hr_bpm),
                elevation_gain_m: Some(elevation_gain_m),
                elevation_loss_m: Some(round1(elevation_gain_m * dice.uniform(0.9, 1.1))),
                source: p.source,
                external_id,
                laps,
                samples: None,
            }
        };
        let moving_time_s = record.moving_time_s;

        let race = matches!(kind, RunKind::Race(_));
        let tagged = race || dice.chance(p.tag_rate);
        let race_result = match kind {
            RunKind::Race(d) => Some(MarkAsRace {
                athlete_id: p.athlete_id,
                race_name: record.name.clone(),
                official_distance_m: Some(d.official_m()),
                // Chip time: a few seconds over the watch's moving time; not everyone looks it up.
                official_time_s: dice
                    .chance(0.8)
                    .then(|| (moving_time_s + dice.uniform(1.0, 6.0)).round()),
            }),
            _ => None,
        };
        let effort = dice
            .chance(if race { 0.9 } else { p.effort_rate })
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
                    energy_after: mood
                        .then(|| scale(f64::from(energy_before) - rpe / 5.0 + 1.0, 5)),
                    notes: dice
                        .chance(0.12)
                        .then(|| (*dice.pick(RUN_NOTES)).to_string()),
                }
            });

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
        if let Some(effort) = effort {
            self.activity(activity_id, ActivityCommand::RecordPerceivedEffort(effort));
        }
        RunDone {
            activity_id,
            kind,
            start_local_s,
            moving_time_s,
        }
    }

    /// `fuelling`: the day's carbohydrate portions, in standard deviations.
    fn nutrition(&mut self, date: NaiveDate, runs: &[RunDone], fuelling: f64) {
        if !self.dice.chance(self.p.nutrition_rate) {
            return;
        }
        let dice = &mut self.dice;
        let every_meal = self.p.logs_every_meal;
        let presets: Vec<_> = self.p.presets.iter().map(|(_, i)| &PRESETS[*i]).collect();
        let with_preset = |entry_type: NutritionEntryType| {
            presets
                .iter()
                .copied()
                .find(|(_, used_for, _)| *used_for == entry_type)
        };
        let carbohydrate_factor = (1.0 + self.p.fuelling_sd * fuelling).max(0.4);
        let mut drafts: Vec<NutritionDraft> = Vec::with_capacity(8);
        let daily = |dice: &mut Dice, foods: &'static [Food], at_local_s: u32, caffeine: f64| {
            let food = dice.pick(foods);
            NutritionDraft {
                at_local_s: at_local_s.min(LATEST_LOCAL_S),
                entry_type: NutritionEntryType::Daily,
                activity_id: None,
                nutrients: fuelled(&nutrients(dice, food, caffeine), carbohydrate_factor),
                notes: food.name,
            }
        };
        let morning_run_end = runs
            .iter()
            .filter(|r| r.start_local_s < 12 * SECONDS_PER_HOUR)
            .map(|r| r.start_local_s + r.moving_time_s as u32)
            .max();
        let evening_run_end = runs
            .iter()
            .filter(|r| r.start_local_s >= 12 * SECONDS_PER_HOUR)
            .map(|r| r.start_local_s + r.moving_time_s as u32)
            .max();

        let mut logged_any = false;
        if dice.chance(0.85) || every_meal {
            let at = dice
                .int(7 * SECONDS_PER_HOUR, 9 * SECONDS_PER_HOUR)
                .max(morning_run_end.map_or(0, |end| end + 900));
            let mut breakfast = daily(dice, BREAKFASTS, at, self.p.caffeine_habit_mg);
            if let Some((name, _, n)) = with_preset(NutritionEntryType::Daily)
                && dice.chance(0.5)
            {
                breakfast.nutrients = *n;
                breakfast.notes = *name;
            }
            drafts.push(breakfast);
            logged_any = true;
        }
        if dice.chance(0.65) || every_meal {
            let at = dice.int(12 * SECONDS_PER_HOUR, 13 * SECONDS_PER_HOUR + 1800);
            drafts.push(daily(dice, LUNCHES, at, 0.0));
            logged_any = true;
        }
        if dice.chance(0.3) {
            let at = dice.int(15 * SECONDS_PER_HOUR, 16 * SECONDS_PER_HOUR + 1800);
            drafts.push(daily(dice, SNACKS, at, 0.0));
            logged_any = true;
        }
        if dice.chance(0.75) || !logged_any || every_meal {
            let at = dice
                .int(18 * SECONDS_PER_HOUR + 1800, 20 * SECONDS_PER_HOUR + 1800)
                .max(evening_run_end.map_or(0, |end| end + 1800));
            drafts.push(daily(dice, DINNERS, at, 0.0));
        }

        for run in runs {
            let end_s = run.start_local_s + run.moving_time_s as u32;
            if dice.chance(if every_meal { 0.9 } else { 0.55 }) {
                let at = run.start_local_s - dice.int(20 * 60, 60 * 60);
                let (notes, nutrients) = match with_preset(NutritionEntryType::PreActivity) {
                    Some((name, _, n)) if dice.chance(0.7) => (*name, *n),
                    _ => {
                        let food = dice.pick(PRE_RUN);
                        let drawn = nutrients(dice, food, 0.0);
                        (food.name, fuelled(&drawn, carbohydrate_factor))
                    }
                };
                drafts.push(NutritionDraft {
                    at_local_s: at,
                    entry_type: NutritionEntryType::PreActivity,
                    activity_id: Some(run.activity_id),
                    nutrients,
                    notes,
                });
            }
            // Fuelling during the run only pays off past about 75 minutes.
            if run.moving_time_s > 4500.0 && dice.chance(0.7) {
                let gels = (run.moving_time_s / 2700.0).floor().max(1.0);
                let at = run.start_local_s + (run.moving_time_s / 2.0) as u32;
                let (notes, nutrients) = match with_preset(NutritionEntryType::DuringActivity) {
                    Some((name, _, n)) => (*name, scale_nutrients(n, gels)),
                    None => {
                        let caffeine = if dice.chance(0.3) { 25.0 * gels } else { 0.0 };
                        let gel = Nutrients {
                            calories_kcal: Some(100.0 * gels),
                            protein_g: Some(0.0),
                            carbohydrate_g: Some(25.0 * gels),
                            fat_g: Some(0.0),
                            fibre_g: None,
                            caffeine_mg: Some(caffeine),
                        };
                        ("Energy gels", gel)
                    }
                };
                drafts.push(NutritionDraft {
                    at_local_s: at,
                    entry_type: NutritionEntryType::DuringActivity,
                    activity_id: Some(run.activity_id),
                    nutrients,
                    notes,
                });
            }
            let hard = !matches!(run.kind, RunKind::Easy | RunKind::Recovery);
            if dice.chance(if hard { 0.75 } else { 0.4 }) {
                let at = (end_s + dice.int(10 * 60, 45 * 60)).min(LATEST_LOCAL_S);
                let (notes, nutrients) = match with_preset(NutritionEntryType::PostActivity) {
                    Some((name, _, n)) if dice.chance(0.7) => (*name, *n),
                    _ => {
                        let food = dice.pick(POST_RUN);
                        (food.name, nutrients(dice, food, 0.0))
                    }
                };
                drafts.push(NutritionDraft {
                    at_local_s: at,
                    entry_type: NutritionEntryType::PostActivity,
                    activity_id: Some(run.activity_id),
                    nutrients,
                    notes,
                });
            }
        }

        drafts.sort_by_key(|d| d.at_local_s);
        for draft in drafts {
            let n = draft.nutrients;
            let command = JournalCommand::LogNutritionEntry(LogNutritionEntry {
                athlete_id: self.p.athlete_id,
                date,
                entry_id: self.dice.uuid(),
                values: NutritionValues {
                    entry_type: draft.entry_type,
                    activity_id: draft.activity_id,
                    calories_kcal: n.calories_kcal,
                    protein_g: n.protein_g,
                    carbohydrate_g: n.carbohydrate_g,
                    fat_g: n.fat_g,
                    fibre_g: n.fibre_g,
                    caffeine_mg: n.caffeine_mg,
                    notes: Some(draft.notes.to_string()),
                },
                logged_at: Some(local_to_utc(date, draft.at_local_s, self.p.utc_offset_min)),
            });
            self.journal(date, command);
        }
    }
}

/// What one run of the day is, and the day's state it depends on.
struct RunPlan {
    kind: RunKind,
    start_local_s: u32,
    volume: f64,
    years: f64,
    sleep_h: f64,
    /// The night before last.
    previous_sleep_h: f64,
    /// The day's carbohydrate portions, in standard deviations.
    fuelling: f64,
    fatigue: f64,
}

/// `habit_caffeine_mg`: the coffee the athlete has with this meal anyway; a food that already
/// includes a coffee does not add a second one.
fn nutrients(dice: &mut Dice, food: &Food, habit_caffeine_mg: f64) -> Nutrients {
    let kcal = (dice.uniform(food.kcal.0, food.kcal.1) / 5.0).round() * 5.0;
    let fat_share = 1.0 - food.carbohydrate_share - food.protein_share;
    let caffeine = food.caffeine_mg.max(habit_caffeine_mg);
    Nutrients {
        calories_kcal: Some(kcal),
        protein_g: Some((kcal * food.protein_share / 4.0).round()),
        carbohydrate_g: Some((kcal * food.carbohydrate_share / 4.0).round()),
        fat_g: Some((kcal * fat_share / 9.0).round()),
        fibre_g: Some(round1(kcal / 100.0 * food.fibre_g_per_100_kcal)),
        caffeine_mg: (caffeine > 0.0).then_some(caffeine),
    }
}

/// `n` with its carbohydrate (and the energy it carries) scaled by `factor`: a bigger or smaller
/// portion of the starchy part of a meal.
fn fuelled(n: &Nutrients, factor: f64) -> Nutrients {
    let Some(carbohydrate_g) = n.carbohydrate_g else {
        return *n;
    };
    let scaled_g = (carbohydrate_g * factor).round();
    Nutrients {
        calories_kcal: n
            .calories_kcal
            .map(|kcal| kcal + 4.0 * (scaled_g - carbohydrate_g)),
        carbohydrate_g: Some(scaled_g),
        ..*n
    }
}

fn scale_nutrients(n: &Nutrients, times: f64) -> Nutrients {
    let by = |v: Option<f64>| v.map(|v| v * times);
    Nutrients {
        calories_kcal: by(n.calories_kcal),
        protein_g: by(n.protein_g),
        carbohydrate_g: by(n.carbohydrate_g),
        fat_g: by(n.fat_g),
        fibre_g: by(n.fibre_g),
        caffeine_mg: by(n.caffeine_mg),
    }
}

struct LapPlan {
    kind: RunKind,
    distance_m: f64,
    lap_m: f64,
    moving_time_s: f64,
    avg_hr_bpm: f64,
    hr_max: f64,
    elevation_gain_m: f64,
}

/// Auto-laps of `lap_m` (a final partial lap only when it is at least 50 m, otherwise the last
/// full lap absorbs it). Lap distances, times and climbs add up to the run's totals, to 0.1.
fn laps(dice: &mut Dice, plan: LapPlan) -> Vec<Lap> {
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

/// Seeds a large plan fast, for benchmarks: every athlete's commands are decided by the real
/// aggregates in memory (the same validation and the same events as the command path), and each
/// stream is then appended in one batch instead of one load and one append per command.
/// Athletes are seeded `concurrency` at a time. Returns the number of events appended.
pub async fn seed_direct(
    store: &store::EventStore,
    config: &DemoConfig,
    concurrency: usize,
    mut progress: impl FnMut(usize, usize),
) -> Result<usize, CommandError> {
    let services = domain::DomainServices::new(std::sync::Arc::new(crate::SystemClock));
    let mut total = 0;
    let mut next = 0;
    while next < config.athletes {
        let batch: Vec<usize> = (next..config.athletes.min(next + concurrency)).collect();
        next += batch.len();
        let tasks: Vec<_> = batch
            .into_iter()
            .map(|index| {
                let (store, services, config) = (store.clone(), services.clone(), *config);
                tokio::spawn(async move { seed_athlete(&store, &services, &config, index).await })
            })
            .collect();
        for task in tasks {
            total += task.await.map_err(|e| {
                CommandError::Store(store::StoreError::Invalid(format!("seeding task: {e}")))
            })??;
        }
        progress(next, config.athletes);
    }
    Ok(total)
}

async fn seed_athlete(
    store: &store::EventStore,
    services: &domain::DomainServices,
    config: &DemoConfig,
    index: usize,
) -> Result<usize, CommandError> {
    use std::collections::BTreeMap;
    let athlete_id = athlete_id(config, index);
    let mut athlete = Athlete::default();
    let mut athlete_events = Vec::new();
    let mut activities: BTreeMap<Uuid, (Activity, Vec<store::NewEvent>)> = BTreeMap::new();
    let mut journals: BTreeMap<NaiveDate, (Journal, Vec<store::NewEvent>)> = BTreeMap::new();
    for planned in plan_athlete(config, index) {
        match planned {
            PlannedCommand::Athlete { command, .. } => {
                athlete_events.extend(decide(&mut athlete, services, command).await?);
            }
            PlannedCommand::Activity {
                activity_id,
                command,
                ..
            } => {
                let (agg, events) = activities.entry(activity_id).or_default();
                events.extend(decide(agg, services, command).await?);
            }
            PlannedCommand::Journal { date, command, .. } => {
                let (agg, events) = journals.entry(date).or_default();
                events.extend(decide(agg, services, command).await?);
            }
        }
    }
    let metadata =
        store::Metadata::new(store::Actor::user(athlete_id, "athlete")).for_athlete(athlete_id);
    let mut streams = vec![(
        store::StreamId::new(Athlete::TYPE, athlete_id.to_string()),
        athlete_events,
    )];
    streams.extend(
        activities.into_iter().map(|(id, (_, events))| {
            (store::StreamId::new(Activity::TYPE, id.to_string()), events)
        }),
    );
    streams.extend(journals.into_iter().map(|(date, (_, events))| {
        (
            store::StreamId::new(Journal::TYPE, journal_id(athlete_id, date)),
            events,
        )
    }));
    let mut appended = 0;
    for (stream, events) in streams.into_iter().filter(|(_, e)| !e.is_empty()) {
        appended += events.len();
        store
            .append(&store::AppendRequest {
                stream,
                expected: store::ExpectedVersion::NoStream,
                events,
                metadata: metadata.clone(),
                idempotency: None,
            })
            .await?;
    }
    Ok(appended)
}

async fn decide<A>(
    aggregate: &mut A,
    services: &domain::DomainServices,
    command: A::Command,
) -> Result<Vec<store::NewEvent>, CommandError>
where
    A: Aggregate<Services = domain::DomainServices, Error = domain::DomainError>,
    A::Event: domain::CataloguedEvent,
{
    let sink = cqrs_es::event_sink::EventSink::default();
    aggregate.handle(command, services, &sink).await?;
    crate::new_events(&sink.collect().await)
}

#[cfg(test)]
mod tests {
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
}

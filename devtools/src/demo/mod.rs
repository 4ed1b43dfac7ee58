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

//!
//! The modules follow the generator's parts: `dice` (randomness), `tables` (reference data),
//! `profile` (everything drawn once per athlete), `planner` (the account and each day), `runs`
//! (one run and its laps), `nutrition` (a day's meals and fuel) and `seeding` (fast seeding for
//! benchmarks).

mod dice;
mod nutrition;
mod planner;
mod profile;
mod runs;
mod seeding;
mod tables;
#[cfg(test)]
mod tests;

use chrono::{Duration, NaiveDate};
use commands::{CommandBus, CommandContext, CommandError, Executed};
use domain::activity::{Activity, ActivityCommand};
use domain::athlete::{Athlete, AthleteCommand};
use domain::journal::{Journal, JournalCommand, journal_id};
use serde::Serialize;
use uuid::Uuid;

use dice::Dice;
use planner::AthletePlanner;
pub use seeding::seed_direct;

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

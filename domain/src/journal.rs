//! One athlete's journal for one calendar day: check-in, nutrition, work, body composition and
//! feedback on insights. Each day is its own stream (aggregate id = [`journal_id`]), so handling
//! a command replays that day's handful of events, never the athlete's whole history.
//!
//! There is no "create" command: whichever event comes first opens the day. Every event carries
//! `athlete_id` and `date` for that reason (any of them may be the one that records the owner),
//! and so projections need not parse the aggregate id.
//!
//! Check-in, work pattern and body composition are one-per-day facts: logging again appends a new
//! event and the latest one wins, replacing the earlier values entirely (fields it leaves out are
//! absent, not inherited). Nutrition entries and insight feedback accumulate.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::patch::Change;
use crate::validation::{self, Checked, ValidationError};
use crate::{DomainError, DomainServices, EventSchema};

const NOTES_MAX_CHARS: usize = 2000;
const INSIGHT_ID_MAX_CHARS: usize = 200;

/// The aggregate id of `athlete_id`'s journal for `date`: `"<uuid>:<YYYY-MM-DD>"`.
pub fn journal_id(athlete_id: Uuid, date: NaiveDate) -> String {
    format!("{athlete_id}:{date}")
}

// ---------------------------------------------------------------------------------------------
// Value types
// ---------------------------------------------------------------------------------------------

/// When the intake happened relative to training. The three activity types may name the
/// activity; a `daily` entry belongs to no activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NutritionEntryType {
    PreActivity,
    DuringActivity,
    PostActivity,
    Daily,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WorkType {
    Desk,
    Physical,
    Shift,
    Travel,
    DayOff,
    Other,
}

// The check-in's values are one struct, shared by the command, the event (flattened, so the
// event's JSON is unchanged) and the API (request body; with `recorded_at`, the read model's
// answer): a new field is declared here, checked in `validate` and stored by the projection
// (docs/architecture.md lists the edits, docs/decisions.md D31 says why).

/// The morning check-in. Every field is optional, but at least one must be given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckInValues {
    /// Time asleep, not time in bed.
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 24))]
    pub sleep_h: Option<f64>,
    /// 1-5 scales, 5 = best.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 5))]
    #[serde(default, deserialize_with = "crate::de::opt_small")]
    pub sleep_quality: Option<u8>,
    /// Overnight HRV (RMSSD).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 300))]
    pub hrv_ms: Option<f64>,
    #[cfg_attr(feature = "openapi", schema(minimum = 25, maximum = 250))]
    pub resting_hr_bpm: Option<f64>,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 5))]
    #[serde(default, deserialize_with = "crate::de::opt_small")]
    pub stress: Option<u8>,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 5))]
    #[serde(default, deserialize_with = "crate::de::opt_small")]
    pub soreness: Option<u8>,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 5))]
    #[serde(default, deserialize_with = "crate::de::opt_small")]
    pub readiness: Option<u8>,
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 2000,
            pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
        )
    )]
    pub notes: Option<String>,
}

impl CheckInValues {
    /// No value at all. Every field is optional, so the default is the empty check-in.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    pub fn validate(&self) -> Checked {
        if self.is_empty() {
            return Err(ValidationError::new(
                "check_in",
                "give at least one value (sleep, HRV, resting HR, a 1-5 scale or notes)",
            ));
        }
        validation::opt_in_range("sleep_h", self.sleep_h, 0.0, 24.0, "h")?;
        validation::opt_on_scale("sleep_quality", self.sleep_quality, 1, 5)?;
        validation::opt_in_range("hrv_ms", self.hrv_ms, 1.0, 300.0, "ms")?;
        validation::heart_rate("resting_hr_bpm", self.resting_hr_bpm)?;
        validation::opt_on_scale("stress", self.stress, 1, 5)?;
        validation::opt_on_scale("soreness", self.soreness, 1, 5)?;
        validation::opt_on_scale("readiness", self.readiness, 1, 5)?;
        validation::text("notes", self.notes.as_deref(), NOTES_MAX_CHARS)
    }
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/// The day's check-in; the latest one for a day replaces the earlier ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DailyCheckInLogged {
    pub athlete_id: Uuid,
    pub date: NaiveDate,
    #[serde(flatten)]
    pub values: CheckInValues,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NutritionEntryLogged {
    pub athlete_id: Uuid,
    pub date: NaiveDate,
    pub entry_id: Uuid,
    pub entry_type: NutritionEntryType,
    pub activity_id: Option<Uuid>,
    pub calories_kcal: Option<f64>,
    pub protein_g: Option<f64>,
    pub carbohydrate_g: Option<f64>,
    pub fat_g: Option<f64>,
    pub fibre_g: Option<f64>,
    pub caffeine_mg: Option<f64>,
    pub notes: Option<String>,
    /// When the intake happened.
    pub logged_at: DateTime<Utc>,
}

/// Replaces every value of the entry; a field left `null` is now absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NutritionEntryUpdated {
    pub athlete_id: Uuid,
    pub date: NaiveDate,
    pub entry_id: Uuid,
    pub entry_type: NutritionEntryType,
    pub activity_id: Option<Uuid>,
    pub calories_kcal: Option<f64>,
    pub protein_g: Option<f64>,
    pub carbohydrate_g: Option<f64>,
    pub fat_g: Option<f64>,
    pub fibre_g: Option<f64>,
    pub caffeine_mg: Option<f64>,
    pub notes: Option<String>,
    pub logged_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NutritionEntryDeleted {
    pub athlete_id: Uuid,
    pub date: NaiveDate,
    pub entry_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkPatternLogged {
    pub athlete_id: Uuid,
    pub date: NaiveDate,
    pub work_type: WorkType,
    pub hours_worked: Option<f64>,
    pub stress: Option<u8>,
    pub notes: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BodyCompositionLogged {
    pub athlete_id: Uuid,
    pub date: NaiveDate,
    pub weight_kg: Option<f64>,
    pub body_fat_pct: Option<f64>,
    pub muscle_mass_kg: Option<f64>,
    /// Derived when the command knew the athlete's height; recorded so that a later change of
    /// height does not silently rewrite past values.
    pub bmi: Option<f64>,
    pub notes: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InsightFeedbackGiven {
    pub athlete_id: Uuid,
    pub date: NaiveDate,
    pub insight_id: String,
    pub helpful: bool,
    pub notes: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum JournalEvent {
    DailyCheckInLogged(DailyCheckInLogged),
    NutritionEntryLogged(NutritionEntryLogged),
    NutritionEntryUpdated(NutritionEntryUpdated),
    NutritionEntryDeleted(NutritionEntryDeleted),
    WorkPatternLogged(WorkPatternLogged),
    BodyCompositionLogged(BodyCompositionLogged),
    InsightFeedbackGiven(InsightFeedbackGiven),
}

impl JournalEvent {
    fn owner(&self) -> (Uuid, NaiveDate) {
        match self {
            Self::DailyCheckInLogged(e) => (e.athlete_id, e.date),
            Self::NutritionEntryLogged(e) => (e.athlete_id, e.date),
            Self::NutritionEntryUpdated(e) => (e.athlete_id, e.date),
            Self::NutritionEntryDeleted(e) => (e.athlete_id, e.date),
            Self::WorkPatternLogged(e) => (e.athlete_id, e.date),
            Self::BodyCompositionLogged(e) => (e.athlete_id, e.date),
            Self::InsightFeedbackGiven(e) => (e.athlete_id, e.date),
        }
    }
}

impl DomainEvent for JournalEvent {
    fn event_type(&self) -> String {
        match self {
            Self::DailyCheckInLogged(_) => "DailyCheckInLogged",
            Self::NutritionEntryLogged(_) => "NutritionEntryLogged",
            Self::NutritionEntryUpdated(_) => "NutritionEntryUpdated",
            Self::NutritionEntryDeleted(_) => "NutritionEntryDeleted",
            Self::WorkPatternLogged(_) => "WorkPatternLogged",
            Self::BodyCompositionLogged(_) => "BodyCompositionLogged",
            Self::InsightFeedbackGiven(_) => "InsightFeedbackGiven",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1.0".to_string()
    }
}

impl crate::CataloguedEvent for JournalEvent {}

pub const CATALOGUE: &[EventSchema] = &[
    schema("DailyCheckInLogged"),
    schema("NutritionEntryLogged"),
    schema("NutritionEntryUpdated"),
    schema("NutritionEntryDeleted"),
    schema("WorkPatternLogged"),
    schema("BodyCompositionLogged"),
    schema("InsightFeedbackGiven"),
];

const fn schema(event_type: &'static str) -> EventSchema {
    EventSchema {
        aggregate_type: Journal::TYPE,
        event_type,
        version: "1.0",
        personal: true,
    }
}

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------
//
// Commands deliberately do not implement `Deserialize`: `athlete_id` comes from the caller's
// token, and a command that could be parsed from a request body would invite trusting it.
// The commands layer sends each one to the stream `journal_id(athlete_id, date)`.

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogDailyCheckIn {
    pub athlete_id: Uuid,
    pub date: NaiveDate,
    /// Flattened, so the serialised command (hashed for idempotency keys) is unchanged.
    #[serde(flatten)]
    pub values: CheckInValues,
}

/// The values of a nutrition entry, shared by logging and updating.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NutritionValues {
    pub entry_type: NutritionEntryType,
    pub activity_id: Option<Uuid>,
    pub calories_kcal: Option<f64>,
    pub protein_g: Option<f64>,
    pub carbohydrate_g: Option<f64>,
    pub fat_g: Option<f64>,
    pub fibre_g: Option<f64>,
    pub caffeine_mg: Option<f64>,
    pub notes: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogNutritionEntry {
    pub athlete_id: Uuid,
    pub date: NaiveDate,
    pub entry_id: Uuid,
    pub values: NutritionValues,
    /// `None` means "now" (the services clock).
    pub logged_at: Option<DateTime<Utc>>,
}

/// A full replacement, so `logged_at` is required: defaulting it would move the entry in time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpdateNutritionEntry {
    pub athlete_id: Uuid,
    pub date: NaiveDate,
    pub entry_id: Uuid,
    pub values: NutritionValues,
    pub logged_at: DateTime<Utc>,
}

/// A partial correction, merged by the journal into the entry's current values (so two
/// corrections of different fields both land). `None`/[`Change::Keep`] keeps a value;
/// [`Change::Clear`] removes an optional one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatchNutritionEntry {
    pub athlete_id: Uuid,
    pub date: NaiveDate,
    pub entry_id: Uuid,
    pub patch: NutritionPatch,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NutritionPatch {
    pub entry_type: Option<NutritionEntryType>,
    pub activity_id: Change<Uuid>,
    pub calories_kcal: Change<f64>,
    pub protein_g: Change<f64>,
    pub carbohydrate_g: Change<f64>,
    pub fat_g: Change<f64>,
    pub fibre_g: Change<f64>,
    pub caffeine_mg: Change<f64>,
    pub notes: Change<String>,
    pub logged_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeleteNutritionEntry {
    pub athlete_id: Uuid,
    pub date: NaiveDate,
    pub entry_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogWorkPattern {
    pub athlete_id: Uuid,
    pub date: NaiveDate,
    pub work_type: WorkType,
    pub hours_worked: Option<f64>,
    pub stress: Option<u8>,
    pub notes: Option<String>,
}

/// `height_cm` is the athlete's profile height, supplied by the commands layer so this decision
/// can derive BMI without reading another aggregate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogBodyComposition {
    pub athlete_id: Uuid,
    pub date: NaiveDate,
    pub weight_kg: Option<f64>,
    pub body_fat_pct: Option<f64>,
    pub muscle_mass_kg: Option<f64>,
    pub height_cm: Option<f64>,
    pub notes: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GiveInsightFeedback {
    pub athlete_id: Uuid,
    pub date: NaiveDate,
    pub insight_id: String,
    pub helpful: bool,
    pub notes: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum JournalCommand {
    LogDailyCheckIn(LogDailyCheckIn),
    LogNutritionEntry(LogNutritionEntry),
    UpdateNutritionEntry(UpdateNutritionEntry),
    PatchNutritionEntry(PatchNutritionEntry),
    DeleteNutritionEntry(DeleteNutritionEntry),
    LogWorkPattern(LogWorkPattern),
    LogBodyComposition(LogBodyComposition),
    GiveInsightFeedback(GiveInsightFeedback),
}

impl JournalCommand {
    /// The journal this command addresses; its aggregate id is `journal_id` of these.
    pub fn journal(&self) -> (Uuid, NaiveDate) {
        match self {
            Self::LogDailyCheckIn(c) => (c.athlete_id, c.date),
            Self::LogNutritionEntry(c) => (c.athlete_id, c.date),
            Self::UpdateNutritionEntry(c) => (c.athlete_id, c.date),
            Self::PatchNutritionEntry(c) => (c.athlete_id, c.date),
            Self::DeleteNutritionEntry(c) => (c.athlete_id, c.date),
            Self::LogWorkPattern(c) => (c.athlete_id, c.date),
            Self::LogBodyComposition(c) => (c.athlete_id, c.date),
            Self::GiveInsightFeedback(c) => (c.athlete_id, c.date),
        }
    }

    pub fn aggregate_id(&self) -> String {
        let (athlete_id, date) = self.journal();
        journal_id(athlete_id, date)
    }
}

// ---------------------------------------------------------------------------------------------
// Aggregate
// ---------------------------------------------------------------------------------------------

/// A nutrition entry's current values, which a partial correction is merged into.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct EntryValues {
    entry_type: NutritionEntryType,
    activity_id: Option<Uuid>,
    calories_kcal: Option<f64>,
    protein_g: Option<f64>,
    carbohydrate_g: Option<f64>,
    fat_g: Option<f64>,
    fibre_g: Option<f64>,
    caffeine_mg: Option<f64>,
    notes: Option<String>,
    logged_at: DateTime<Utc>,
}

impl EntryValues {
    fn merged(&self, p: NutritionPatch) -> (NutritionValues, DateTime<Utc>) {
        let values = NutritionValues {
            entry_type: p.entry_type.unwrap_or(self.entry_type),
            activity_id: p.activity_id.apply(self.activity_id),
            calories_kcal: p.calories_kcal.apply(self.calories_kcal),
            protein_g: p.protein_g.apply(self.protein_g),
            carbohydrate_g: p.carbohydrate_g.apply(self.carbohydrate_g),
            fat_g: p.fat_g.apply(self.fat_g),
            fibre_g: p.fibre_g.apply(self.fibre_g),
            caffeine_mg: p.caffeine_mg.apply(self.caffeine_mg),
            notes: p.notes.apply(self.notes.clone()),
        };
        (values, p.logged_at.unwrap_or(self.logged_at))
    }

    fn of(values: NutritionValues, logged_at: DateTime<Utc>) -> Self {
        EntryValues {
            entry_type: values.entry_type,
            activity_id: values.activity_id,
            calories_kcal: values.calories_kcal,
            protein_g: values.protein_g,
            carbohydrate_g: values.carbohydrate_g,
            fat_g: values.fat_g,
            fibre_g: values.fibre_g,
            caffeine_mg: values.caffeine_mg,
            notes: values.notes,
            logged_at,
        }
    }
}

/// What decisions read: whose day this is, which nutrition entry ids are taken, and each live
/// entry's values (for partial corrections).
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    owner: Option<Uuid>,
    date: Option<NaiveDate>,
    nutrition_entries: BTreeMap<Uuid, EntryValues>,
    /// Kept so a retried "log" of a deleted entry cannot bring it back.
    deleted_nutrition_entries: BTreeSet<Uuid>,
}

const NOT_FOUND: DomainError = DomainError::NotFound { what: "journal" };
const ENTRY_NOT_FOUND: DomainError = DomainError::NotFound {
    what: "nutrition entry",
};

impl Journal {
    /// A command for another athlete or another day answers as if this journal did not exist:
    /// it was routed to the wrong stream, and saying more would reveal someone else's data.
    fn authorise(&self, athlete_id: Uuid, date: NaiveDate) -> Result<(), DomainError> {
        match (self.owner, self.date) {
            (None, _) => Ok(()),
            (Some(owner), Some(day)) if owner == athlete_id && day == date => Ok(()),
            _ => Err(NOT_FOUND),
        }
    }

    fn existing_entry(&self, entry_id: Uuid) -> Result<(), DomainError> {
        if self.nutrition_entries.contains_key(&entry_id) {
            Ok(())
        } else {
            Err(ENTRY_NOT_FOUND)
        }
    }
}

impl Aggregate for Journal {
    const TYPE: &'static str = "journal";
    type Command = JournalCommand;
    type Event = JournalEvent;
    type Error = DomainError;
    type Services = DomainServices;

    async fn handle(
        &mut self,
        command: JournalCommand,
        services: &DomainServices,
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        let now = services.now();
        let (athlete_id, date) = command.journal();
        self.authorise(athlete_id, date)?;
        validation::date_not_in_future("date", date, now)?;
        if let Some(event) = self.decide(command, now)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: JournalEvent) {
        let (athlete_id, date) = event.owner();
        self.owner.get_or_insert(athlete_id);
        self.date.get_or_insert(date);
        match event {
            JournalEvent::NutritionEntryLogged(e) => {
                self.nutrition_entries.insert(
                    e.entry_id,
                    EntryValues {
                        entry_type: e.entry_type,
                        activity_id: e.activity_id,
                        calories_kcal: e.calories_kcal,
                        protein_g: e.protein_g,
                        carbohydrate_g: e.carbohydrate_g,
                        fat_g: e.fat_g,
                        fibre_g: e.fibre_g,
                        caffeine_mg: e.caffeine_mg,
                        notes: e.notes,
                        logged_at: e.logged_at,
                    },
                );
            }
            JournalEvent::NutritionEntryUpdated(e) => {
                self.nutrition_entries.insert(
                    e.entry_id,
                    EntryValues {
                        entry_type: e.entry_type,
                        activity_id: e.activity_id,
                        calories_kcal: e.calories_kcal,
                        protein_g: e.protein_g,
                        carbohydrate_g: e.carbohydrate_g,
                        fat_g: e.fat_g,
                        fibre_g: e.fibre_g,
                        caffeine_mg: e.caffeine_mg,
                        notes: e.notes,
                        logged_at: e.logged_at,
                    },
                );
            }
            JournalEvent::NutritionEntryDeleted(e) => {
                self.nutrition_entries.remove(&e.entry_id);
                self.deleted_nutrition_entries.insert(e.entry_id);
            }
            JournalEvent::DailyCheckInLogged(_)
            | JournalEvent::WorkPatternLogged(_)
            | JournalEvent::BodyCompositionLogged(_)
            | JournalEvent::InsightFeedbackGiven(_) => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Decisions, one per kind of event
// ---------------------------------------------------------------------------------------------

impl Journal {
    /// The event a command decides once its owner and date were checked; `None` when there is
    /// nothing to record (a correction that changes nothing).
    fn decide(
        &self,
        command: JournalCommand,
        now: DateTime<Utc>,
    ) -> Result<Option<JournalEvent>, DomainError> {
        let event = match command {
            JournalCommand::LogDailyCheckIn(c) => {
                c.values.validate()?;
                JournalEvent::DailyCheckInLogged(DailyCheckInLogged {
                    athlete_id: c.athlete_id,
                    date: c.date,
                    values: c.values,
                })
            }
            JournalCommand::LogNutritionEntry(c) => self.log_nutrition(c, now)?,
            JournalCommand::UpdateNutritionEntry(c) => self.update_nutrition(c, now)?,
            JournalCommand::PatchNutritionEntry(c) => return self.patch_nutrition(c, now),
            JournalCommand::DeleteNutritionEntry(c) => {
                self.existing_entry(c.entry_id)?;
                JournalEvent::NutritionEntryDeleted(NutritionEntryDeleted {
                    athlete_id: c.athlete_id,
                    date: c.date,
                    entry_id: c.entry_id,
                })
            }
            JournalCommand::LogWorkPattern(c) => work_pattern(c)?,
            JournalCommand::LogBodyComposition(c) => log_body_composition(c)?,
            JournalCommand::GiveInsightFeedback(c) => insight_feedback(c)?,
        };
        Ok(Some(event))
    }

    /// An entry id is used once: a retried "log" of a live or deleted entry is a conflict.
    fn log_nutrition(
        &self,
        c: LogNutritionEntry,
        now: DateTime<Utc>,
    ) -> Result<JournalEvent, DomainError> {
        if self.nutrition_entries.contains_key(&c.entry_id) {
            return Err(DomainError::Conflict(format!(
                "nutrition entry {} already exists",
                c.entry_id
            )));
        }
        if self.deleted_nutrition_entries.contains(&c.entry_id) {
            return Err(DomainError::Conflict(format!(
                "nutrition entry {} was deleted",
                c.entry_id
            )));
        }
        let logged_at = c.logged_at.unwrap_or(now);
        nutrition(&c.values, logged_at, now)?;
        let v = c.values;
        Ok(JournalEvent::NutritionEntryLogged(NutritionEntryLogged {
            athlete_id: c.athlete_id,
            date: c.date,
            entry_id: c.entry_id,
            entry_type: v.entry_type,
            activity_id: v.activity_id,
            calories_kcal: v.calories_kcal,
            protein_g: v.protein_g,
            carbohydrate_g: v.carbohydrate_g,
            fat_g: v.fat_g,
            fibre_g: v.fibre_g,
            caffeine_mg: v.caffeine_mg,
            notes: v.notes,
            logged_at,
        }))
    }

    fn update_nutrition(
        &self,
        c: UpdateNutritionEntry,
        now: DateTime<Utc>,
    ) -> Result<JournalEvent, DomainError> {
        self.existing_entry(c.entry_id)?;
        nutrition(&c.values, c.logged_at, now)?;
        Ok(nutrition_updated(
            (c.athlete_id, c.date, c.entry_id),
            c.values,
            c.logged_at,
        ))
    }

    fn patch_nutrition(
        &self,
        c: PatchNutritionEntry,
        now: DateTime<Utc>,
    ) -> Result<Option<JournalEvent>, DomainError> {
        let current = self
            .nutrition_entries
            .get(&c.entry_id)
            .ok_or(ENTRY_NOT_FOUND)?;
        let (v, logged_at) = current.merged(c.patch);
        nutrition(&v, logged_at, now)?;
        if EntryValues::of(v.clone(), logged_at) == *current {
            return Ok(None);
        }
        Ok(Some(nutrition_updated(
            (c.athlete_id, c.date, c.entry_id),
            v,
            logged_at,
        )))
    }
}

/// An update carries every value of the entry (it replaces them all), whether the command gave
/// them all or a patch was merged into the current ones.
fn nutrition_updated(
    (athlete_id, date, entry_id): (Uuid, NaiveDate, Uuid),
    v: NutritionValues,
    logged_at: DateTime<Utc>,
) -> JournalEvent {
    JournalEvent::NutritionEntryUpdated(NutritionEntryUpdated {
        athlete_id,
        date,
        entry_id,
        entry_type: v.entry_type,
        activity_id: v.activity_id,
        calories_kcal: v.calories_kcal,
        protein_g: v.protein_g,
        carbohydrate_g: v.carbohydrate_g,
        fat_g: v.fat_g,
        fibre_g: v.fibre_g,
        caffeine_mg: v.caffeine_mg,
        notes: v.notes,
        logged_at,
    })
}

fn work_pattern(c: LogWorkPattern) -> Result<JournalEvent, DomainError> {
    validation::opt_in_range("hours_worked", c.hours_worked, 0.0, 24.0, "h")?;
    validation::opt_on_scale("stress", c.stress, 1, 5)?;
    validation::text("notes", c.notes.as_deref(), NOTES_MAX_CHARS)?;
    Ok(JournalEvent::WorkPatternLogged(WorkPatternLogged {
        athlete_id: c.athlete_id,
        date: c.date,
        work_type: c.work_type,
        hours_worked: c.hours_worked,
        stress: c.stress,
        notes: c.notes,
    }))
}

fn log_body_composition(c: LogBodyComposition) -> Result<JournalEvent, DomainError> {
    body_composition(&c)?;
    Ok(JournalEvent::BodyCompositionLogged(BodyCompositionLogged {
        athlete_id: c.athlete_id,
        date: c.date,
        weight_kg: c.weight_kg,
        body_fat_pct: c.body_fat_pct,
        muscle_mass_kg: c.muscle_mass_kg,
        bmi: bmi(c.weight_kg, c.height_cm),
        notes: c.notes,
    }))
}

fn insight_feedback(c: GiveInsightFeedback) -> Result<JournalEvent, DomainError> {
    insight_id(&c.insight_id)?;
    validation::text("notes", c.notes.as_deref(), NOTES_MAX_CHARS)?;
    Ok(JournalEvent::InsightFeedbackGiven(InsightFeedbackGiven {
        athlete_id: c.athlete_id,
        date: c.date,
        insight_id: c.insight_id,
        helpful: c.helpful,
        notes: c.notes,
    }))
}

// ---------------------------------------------------------------------------------------------
// Validation and derivation
// ---------------------------------------------------------------------------------------------

fn nutrition(v: &NutritionValues, logged_at: DateTime<Utc>, now: DateTime<Utc>) -> Checked {
    if v.entry_type == NutritionEntryType::Daily && v.activity_id.is_some() {
        return Err(ValidationError::new(
            "activity_id",
            "a daily entry belongs to no activity; use pre_activity, during_activity or post_activity",
        ));
    }
    let empty = v.calories_kcal.is_none()
        && v.protein_g.is_none()
        && v.carbohydrate_g.is_none()
        && v.fat_g.is_none()
        && v.fibre_g.is_none()
        && v.caffeine_mg.is_none()
        && v.notes.is_none();
    if empty {
        return Err(ValidationError::new(
            "nutrition",
            "give at least one amount or notes",
        ));
    }
    validation::opt_in_range("calories_kcal", v.calories_kcal, 0.0, 10_000.0, "kcal")?;
    validation::opt_in_range("protein_g", v.protein_g, 0.0, 1000.0, "g")?;
    validation::opt_in_range("carbohydrate_g", v.carbohydrate_g, 0.0, 1000.0, "g")?;
    validation::opt_in_range("fat_g", v.fat_g, 0.0, 1000.0, "g")?;
    validation::opt_in_range("fibre_g", v.fibre_g, 0.0, 1000.0, "g")?;
    validation::opt_in_range("caffeine_mg", v.caffeine_mg, 0.0, 2000.0, "mg")?;
    validation::text("notes", v.notes.as_deref(), NOTES_MAX_CHARS)?;
    validation::not_in_future("logged_at", logged_at, now)
}

fn body_composition(c: &LogBodyComposition) -> Checked {
    if c.weight_kg.is_none() && c.body_fat_pct.is_none() && c.muscle_mass_kg.is_none() {
        return Err(ValidationError::new(
            "body_composition",
            "give at least one of weight_kg, body_fat_pct, muscle_mass_kg",
        ));
    }
    validation::opt_in_range("weight_kg", c.weight_kg, 20.0, 400.0, "kg")?;
    validation::opt_in_range("body_fat_pct", c.body_fat_pct, 0.0, 100.0, "%")?;
    validation::opt_in_range("muscle_mass_kg", c.muscle_mass_kg, 0.0, 400.0, "kg")?;
    if let (Some(muscle), Some(weight)) = (c.muscle_mass_kg, c.weight_kg)
        && muscle >= weight
    {
        return Err(ValidationError::new(
            "muscle_mass_kg",
            format!("must be less than weight_kg ({weight} kg), got {muscle} kg"),
        ));
    }
    // Wide enough for any athlete; it catches a height sent in metres or inches.
    validation::opt_in_range("height_cm", c.height_cm, 50.0, 300.0, "cm")?;
    validation::text("notes", c.notes.as_deref(), NOTES_MAX_CHARS)
}

/// kg / m², to one decimal, as the original product showed it.
fn bmi(weight_kg: Option<f64>, height_cm: Option<f64>) -> Option<f64> {
    let (kg, cm) = (weight_kg?, height_cm?);
    let m = cm / 100.0;
    Some((kg / (m * m) * 10.0).round() / 10.0)
}

fn insight_id(id: &str) -> Checked {
    if id.trim().is_empty() {
        return Err(ValidationError::new("insight_id", "must not be empty"));
    }
    validation::text("insight_id", Some(id), INSIGHT_ID_MAX_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CataloguedEvent;
    use chrono::{Duration, TimeZone};
    use cqrs_es::test::TestFramework;
    use serde_json::json;

    type Framework = TestFramework<Journal>;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap()
    }

    fn framework() -> Framework {
        Framework::with(DomainServices::fixed(now()))
    }

    fn athlete() -> Uuid {
        Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_00a1)
    }

    fn stranger() -> Uuid {
        Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_00b2)
    }

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 26).unwrap()
    }

    fn entry_id() -> Uuid {
        Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_0e01)
    }

    fn run_id() -> Uuid {
        Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_0ac1)
    }

    fn breakfast_at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 6, 45, 0).unwrap()
    }

    fn invalid_field(result: Result<Vec<JournalEvent>, DomainError>) -> &'static str {
        match result {
            Err(DomainError::Invalid(e)) => e.field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    fn check_in_values() -> CheckInValues {
        CheckInValues {
            sleep_h: Some(7.5),
            sleep_quality: Some(4),
            hrv_ms: Some(68.0),
            resting_hr_bpm: Some(48.0),
            stress: Some(2),
            soreness: Some(3),
            readiness: Some(4),
            notes: None,
        }
    }

    fn check_in_command() -> LogDailyCheckIn {
        LogDailyCheckIn {
            athlete_id: athlete(),
            date: day(),
            values: check_in_values(),
        }
    }

    fn check_in_event() -> DailyCheckInLogged {
        DailyCheckInLogged {
            athlete_id: athlete(),
            date: day(),
            values: check_in_values(),
        }
    }

    /// Porridge and coffee before a morning run.
    fn breakfast() -> NutritionValues {
        NutritionValues {
            entry_type: NutritionEntryType::PreActivity,
            activity_id: Some(run_id()),
            calories_kcal: Some(420.0),
            protein_g: Some(14.0),
            carbohydrate_g: Some(68.0),
            fat_g: Some(9.5),
            fibre_g: Some(8.0),
            caffeine_mg: Some(95.0),
            notes: Some("Porridge, banana, coffee".to_string()),
        }
    }

    fn log_breakfast() -> LogNutritionEntry {
        LogNutritionEntry {
            athlete_id: athlete(),
            date: day(),
            entry_id: entry_id(),
            values: breakfast(),
            logged_at: Some(breakfast_at()),
        }
    }

    fn breakfast_logged() -> NutritionEntryLogged {
        NutritionEntryLogged {
            athlete_id: athlete(),
            date: day(),
            entry_id: entry_id(),
            entry_type: NutritionEntryType::PreActivity,
            activity_id: Some(run_id()),
            calories_kcal: Some(420.0),
            protein_g: Some(14.0),
            carbohydrate_g: Some(68.0),
            fat_g: Some(9.5),
            fibre_g: Some(8.0),
            caffeine_mg: Some(95.0),
            notes: Some("Porridge, banana, coffee".to_string()),
            logged_at: breakfast_at(),
        }
    }

    fn with_breakfast() -> Vec<JournalEvent> {
        vec![JournalEvent::NutritionEntryLogged(breakfast_logged())]
    }

    fn body_command() -> LogBodyComposition {
        LogBodyComposition {
            athlete_id: athlete(),
            date: day(),
            weight_kg: Some(70.0),
            body_fat_pct: Some(12.5),
            muscle_mass_kg: Some(33.2),
            height_cm: Some(175.0),
            notes: None,
        }
    }

    // ----- aggregate id -----

    #[test]
    fn journal_id_is_athlete_and_iso_date() {
        assert_eq!(
            journal_id(athlete(), day()),
            "01950000-0000-7000-8000-0000000000a1:2026-11-26"
        );
        let command = JournalCommand::DeleteNutritionEntry(DeleteNutritionEntry {
            athlete_id: athlete(),
            date: day(),
            entry_id: entry_id(),
        });
        assert_eq!(command.aggregate_id(), journal_id(athlete(), day()));
    }

    // ----- serde and catalogue -----

    /// One of every event; the catalogue test below fails if a variant is missing here.
    fn every_event() -> Vec<JournalEvent> {
        vec![
            JournalEvent::DailyCheckInLogged(check_in_event()),
            JournalEvent::NutritionEntryLogged(breakfast_logged()),
            JournalEvent::NutritionEntryUpdated(NutritionEntryUpdated {
                athlete_id: athlete(),
                date: day(),
                entry_id: entry_id(),
                entry_type: NutritionEntryType::Daily,
                activity_id: None,
                calories_kcal: Some(0.0),
                protein_g: None,
                carbohydrate_g: None,
                fat_g: None,
                fibre_g: None,
                caffeine_mg: Some(0.0),
                notes: Some("Decaf only".to_string()),
                logged_at: breakfast_at(),
            }),
            JournalEvent::NutritionEntryDeleted(NutritionEntryDeleted {
                athlete_id: athlete(),
                date: day(),
                entry_id: entry_id(),
            }),
            JournalEvent::WorkPatternLogged(WorkPatternLogged {
                athlete_id: athlete(),
                date: day(),
                work_type: WorkType::DayOff,
                hours_worked: Some(0.0),
                stress: Some(1),
                notes: None,
            }),
            JournalEvent::BodyCompositionLogged(BodyCompositionLogged {
                athlete_id: athlete(),
                date: day(),
                weight_kg: Some(70.0),
                body_fat_pct: Some(12.5),
                muscle_mass_kg: Some(33.2),
                bmi: Some(22.9),
                notes: None,
            }),
            JournalEvent::InsightFeedbackGiven(InsightFeedbackGiven {
                athlete_id: athlete(),
                date: day(),
                insight_id: "correlation:sleep_h:efficiency".to_string(),
                helpful: false,
                notes: Some("I slept badly because of travel".to_string()),
            }),
        ]
    }

    #[test]
    fn every_event_round_trips_through_json_with_its_type_tag() {
        for event in every_event() {
            let value = serde_json::to_value(&event).unwrap();
            assert_eq!(value["type"], json!(event.event_type()), "{value}");
            assert_eq!(value["date"], "2026-11-26", "{value}");
            let back: JournalEvent = serde_json::from_value(value).unwrap();
            assert_eq!(back, event);
        }
    }

    /// A check-in as stored before its values became one struct (D31): it reads the same, the
    /// event writes exactly these bytes again, and the command (hashed for idempotency keys)
    /// serialises as it did.
    #[test]
    fn check_in_json_is_unchanged_by_the_shared_values() {
        let stored = concat!(
            r#"{"type":"DailyCheckInLogged","athlete_id":"01950000-0000-7000-8000-0000000000a1","#,
            r#""date":"2026-11-26","sleep_h":7.5,"sleep_quality":4,"hrv_ms":68.0,"#,
            r#""resting_hr_bpm":48.0,"stress":2,"soreness":3,"readiness":4,"notes":null}"#
        );
        let event: JournalEvent = serde_json::from_str(stored).unwrap();
        assert_eq!(event, JournalEvent::DailyCheckInLogged(check_in_event()));
        assert_eq!(serde_json::to_string(&event).unwrap(), stored);
        let command = JournalCommand::LogDailyCheckIn(check_in_command());
        let fields = stored
            .strip_prefix(r#"{"type":"DailyCheckInLogged","#)
            .unwrap();
        assert_eq!(
            serde_json::to_string(&command).unwrap(),
            format!(r#"{{"LogDailyCheckIn":{{{fields}}}"#)
        );
        // Fields left out are absent; fields this version does not know are ignored.
        let sparse: JournalEvent = serde_json::from_value(json!({
            "type": "DailyCheckInLogged",
            "athlete_id": athlete(),
            "date": "2026-11-26",
            "sleep_quality": 3,
            "mood": "fine",
        }))
        .unwrap();
        let expected = CheckInValues {
            sleep_quality: Some(3),
            ..CheckInValues::default()
        };
        assert!(matches!(sparse, JournalEvent::DailyCheckInLogged(e) if e.values == expected));
    }

    #[test]
    fn enums_serialize_in_snake_case() {
        let value =
            serde_json::to_value(JournalEvent::NutritionEntryLogged(breakfast_logged())).unwrap();
        assert_eq!(value["entry_type"], "pre_activity");
        let value = serde_json::to_value(WorkType::DayOff).unwrap();
        assert_eq!(value, json!("day_off"));
    }

    #[test]
    fn catalogue_lists_every_event_with_its_version() {
        let events = every_event();
        assert_eq!(events.len(), CATALOGUE.len());
        for event in events {
            let catalogued = CATALOGUE.iter().any(|s| {
                s.aggregate_type == "journal"
                    && s.event_type == event.event_type()
                    && s.version == event.event_version()
                    && s.personal == event.is_personal()
            });
            assert!(
                catalogued,
                "{} v{} not catalogued",
                event.event_type(),
                event.event_version()
            );
        }
    }

    // ----- ownership and dates (common to every command) -----

    #[test]
    fn another_athletes_journal_is_not_found() {
        framework()
            .given(vec![JournalEvent::DailyCheckInLogged(check_in_event())])
            .when(JournalCommand::LogDailyCheckIn(LogDailyCheckIn {
                athlete_id: stranger(),
                ..check_in_command()
            }))
            .then_expect_error(NOT_FOUND);
    }

    #[test]
    fn a_command_for_another_day_is_not_found() {
        framework()
            .given(vec![JournalEvent::DailyCheckInLogged(check_in_event())])
            .when(JournalCommand::LogDailyCheckIn(LogDailyCheckIn {
                date: day().pred_opt().unwrap(),
                ..check_in_command()
            }))
            .then_expect_error(NOT_FOUND);
    }

    #[test]
    fn tomorrow_is_accepted_but_not_the_day_after() {
        let tomorrow = now().date_naive() + Duration::days(1);
        assert!(
            framework()
                .given_no_previous_events()
                .when(JournalCommand::LogDailyCheckIn(LogDailyCheckIn {
                    date: tomorrow,
                    ..check_in_command()
                }))
                .inspect_result()
                .is_ok()
        );
        let result = framework()
            .given_no_previous_events()
            .when(JournalCommand::LogDailyCheckIn(LogDailyCheckIn {
                date: tomorrow + Duration::days(1),
                ..check_in_command()
            }))
            .inspect_result();
        assert_eq!(invalid_field(result), "date");
    }

    // ----- LogDailyCheckIn -----

    #[test]
    fn logs_a_check_in() {
        framework()
            .given_no_previous_events()
            .when(JournalCommand::LogDailyCheckIn(check_in_command()))
            .then_expect_events(vec![JournalEvent::DailyCheckInLogged(check_in_event())]);
    }

    #[test]
    fn logging_again_appends_a_replacement() {
        framework()
            .given(vec![JournalEvent::DailyCheckInLogged(check_in_event())])
            .when(JournalCommand::LogDailyCheckIn(LogDailyCheckIn {
                values: CheckInValues {
                    sleep_h: Some(0.0),
                    ..check_in_values()
                },
                ..check_in_command()
            }))
            .then_expect_events(vec![JournalEvent::DailyCheckInLogged(DailyCheckInLogged {
                values: CheckInValues {
                    sleep_h: Some(0.0),
                    ..check_in_values()
                },
                ..check_in_event()
            })]);
    }

    #[test]
    fn an_empty_check_in_is_invalid() {
        let result = framework()
            .given_no_previous_events()
            .when(JournalCommand::LogDailyCheckIn(LogDailyCheckIn {
                athlete_id: athlete(),
                date: day(),
                values: CheckInValues {
                    sleep_h: None,
                    sleep_quality: None,
                    hrv_ms: None,
                    resting_hr_bpm: None,
                    stress: None,
                    soreness: None,
                    readiness: None,
                    notes: None,
                },
            }))
            .inspect_result();
        assert_eq!(invalid_field(result), "check_in");
    }

    #[test]
    fn check_in_bounds_are_enforced() {
        let refused = |values: CheckInValues| {
            invalid_field(
                framework()
                    .given_no_previous_events()
                    .when(JournalCommand::LogDailyCheckIn(LogDailyCheckIn {
                        values,
                        ..check_in_command()
                    }))
                    .inspect_result(),
            )
        };
        assert_eq!(
            refused(CheckInValues {
                sleep_h: Some(24.5),
                ..check_in_values()
            }),
            "sleep_h"
        );
        assert_eq!(
            refused(CheckInValues {
                hrv_ms: Some(0.0),
                ..check_in_values()
            }),
            "hrv_ms"
        );
        assert_eq!(
            refused(CheckInValues {
                resting_hr_bpm: Some(20.0),
                ..check_in_values()
            }),
            "resting_hr_bpm"
        );
        assert_eq!(
            refused(CheckInValues {
                readiness: Some(6),
                ..check_in_values()
            }),
            "readiness"
        );
        assert_eq!(
            refused(CheckInValues {
                sleep_quality: Some(0),
                ..check_in_values()
            }),
            "sleep_quality"
        );
        let at_bounds = LogDailyCheckIn {
            values: CheckInValues {
                sleep_h: Some(24.0),
                hrv_ms: Some(300.0),
                stress: Some(1),
                soreness: Some(5),
                ..check_in_values()
            },
            ..check_in_command()
        };
        assert!(
            framework()
                .given_no_previous_events()
                .when(JournalCommand::LogDailyCheckIn(at_bounds))
                .inspect_result()
                .is_ok()
        );
    }

    // ----- nutrition -----

    #[test]
    fn logs_a_nutrition_entry() {
        framework()
            .given_no_previous_events()
            .when(JournalCommand::LogNutritionEntry(log_breakfast()))
            .then_expect_events(with_breakfast());
    }

    #[test]
    fn a_nutrition_entry_without_time_is_logged_now() {
        framework()
            .given_no_previous_events()
            .when(JournalCommand::LogNutritionEntry(LogNutritionEntry {
                logged_at: None,
                ..log_breakfast()
            }))
            .then_expect_events(vec![JournalEvent::NutritionEntryLogged(
                NutritionEntryLogged {
                    logged_at: now(),
                    ..breakfast_logged()
                },
            )]);
    }

    #[test]
    fn zero_amounts_are_values() {
        let result = framework()
            .given_no_previous_events()
            .when(JournalCommand::LogNutritionEntry(LogNutritionEntry {
                values: NutritionValues {
                    entry_type: NutritionEntryType::Daily,
                    activity_id: None,
                    calories_kcal: Some(0.0),
                    caffeine_mg: Some(0.0),
                    ..breakfast()
                },
                ..log_breakfast()
            }))
            .inspect_result()
            .unwrap();
        match &result[..] {
            [JournalEvent::NutritionEntryLogged(e)] => {
                assert_eq!(e.caffeine_mg, Some(0.0));
                assert_eq!(e.calories_kcal, Some(0.0));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_daily_entry_with_an_activity_is_invalid() {
        let result = framework()
            .given_no_previous_events()
            .when(JournalCommand::LogNutritionEntry(LogNutritionEntry {
                values: NutritionValues {
                    entry_type: NutritionEntryType::Daily,
                    ..breakfast()
                },
                ..log_breakfast()
            }))
            .inspect_result();
        assert_eq!(invalid_field(result), "activity_id");
    }

    #[test]
    fn an_activity_entry_may_omit_the_activity() {
        assert!(
            framework()
                .given_no_previous_events()
                .when(JournalCommand::LogNutritionEntry(LogNutritionEntry {
                    values: NutritionValues {
                        entry_type: NutritionEntryType::DuringActivity,
                        activity_id: None,
                        ..breakfast()
                    },
                    ..log_breakfast()
                }))
                .inspect_result()
                .is_ok()
        );
    }

    #[test]
    fn nutrition_bounds_are_enforced() {
        let refused = |values: NutritionValues, logged_at: Option<DateTime<Utc>>| {
            invalid_field(
                framework()
                    .given_no_previous_events()
                    .when(JournalCommand::LogNutritionEntry(LogNutritionEntry {
                        values,
                        logged_at,
                        ..log_breakfast()
                    }))
                    .inspect_result(),
            )
        };
        let at = Some(breakfast_at());
        assert_eq!(
            refused(
                NutritionValues {
                    calories_kcal: Some(10_001.0),
                    ..breakfast()
                },
                at
            ),
            "calories_kcal"
        );
        assert_eq!(
            refused(
                NutritionValues {
                    protein_g: Some(-1.0),
                    ..breakfast()
                },
                at
            ),
            "protein_g"
        );
        assert_eq!(
            refused(
                NutritionValues {
                    caffeine_mg: Some(2_000.5),
                    ..breakfast()
                },
                at
            ),
            "caffeine_mg"
        );
        assert_eq!(
            refused(breakfast(), Some(now() + Duration::hours(25))),
            "logged_at"
        );
        let nothing = NutritionValues {
            entry_type: NutritionEntryType::Daily,
            activity_id: None,
            calories_kcal: None,
            protein_g: None,
            carbohydrate_g: None,
            fat_g: None,
            fibre_g: None,
            caffeine_mg: None,
            notes: None,
        };
        assert_eq!(refused(nothing, at), "nutrition");
    }

    #[test]
    fn logging_an_existing_entry_id_conflicts() {
        let result = framework()
            .given(with_breakfast())
            .when(JournalCommand::LogNutritionEntry(log_breakfast()))
            .inspect_result();
        assert!(
            matches!(result, Err(DomainError::Conflict(ref m)) if m.contains("already exists")),
            "{result:?}"
        );
    }

    #[test]
    fn relogging_a_deleted_entry_id_conflicts() {
        let result = framework()
            .given(with_breakfast())
            .and(vec![JournalEvent::NutritionEntryDeleted(
                NutritionEntryDeleted {
                    athlete_id: athlete(),
                    date: day(),
                    entry_id: entry_id(),
                },
            )])
            .when(JournalCommand::LogNutritionEntry(log_breakfast()))
            .inspect_result();
        assert!(
            matches!(result, Err(DomainError::Conflict(ref m)) if m.contains("was deleted")),
            "{result:?}"
        );
    }

    #[test]
    fn updates_a_nutrition_entry_with_full_values() {
        let new_values = NutritionValues {
            calories_kcal: Some(510.0),
            caffeine_mg: None,
            notes: None,
            ..breakfast()
        };
        framework()
            .given(with_breakfast())
            .when(JournalCommand::UpdateNutritionEntry(UpdateNutritionEntry {
                athlete_id: athlete(),
                date: day(),
                entry_id: entry_id(),
                values: new_values,
                logged_at: breakfast_at(),
            }))
            .then_expect_events(vec![JournalEvent::NutritionEntryUpdated(
                NutritionEntryUpdated {
                    athlete_id: athlete(),
                    date: day(),
                    entry_id: entry_id(),
                    entry_type: NutritionEntryType::PreActivity,
                    activity_id: Some(run_id()),
                    calories_kcal: Some(510.0),
                    protein_g: Some(14.0),
                    carbohydrate_g: Some(68.0),
                    fat_g: Some(9.5),
                    fibre_g: Some(8.0),
                    caffeine_mg: None,
                    notes: None,
                    logged_at: breakfast_at(),
                },
            )]);
    }

    fn patch(p: NutritionPatch) -> JournalCommand {
        JournalCommand::PatchNutritionEntry(PatchNutritionEntry {
            athlete_id: athlete(),
            date: day(),
            entry_id: entry_id(),
            patch: p,
        })
    }

    #[test]
    fn a_patch_merges_into_the_entrys_current_values() {
        // The previous correction (calories) must survive a patch of another field.
        let corrected = NutritionEntryUpdated {
            athlete_id: athlete(),
            date: day(),
            entry_id: entry_id(),
            entry_type: NutritionEntryType::PreActivity,
            activity_id: Some(run_id()),
            calories_kcal: Some(510.0),
            protein_g: Some(14.0),
            carbohydrate_g: Some(68.0),
            fat_g: Some(9.5),
            fibre_g: Some(8.0),
            caffeine_mg: Some(95.0),
            notes: Some("Porridge, banana, coffee".to_string()),
            logged_at: breakfast_at(),
        };
        let mut given = with_breakfast();
        given.push(JournalEvent::NutritionEntryUpdated(corrected.clone()));
        framework()
            .given(given)
            .when(patch(NutritionPatch {
                protein_g: Change::Set(20.0),
                caffeine_mg: Change::Clear,
                ..NutritionPatch::default()
            }))
            .then_expect_events(vec![JournalEvent::NutritionEntryUpdated(
                NutritionEntryUpdated {
                    protein_g: Some(20.0),
                    caffeine_mg: None,
                    ..corrected
                },
            )]);
    }

    #[test]
    fn a_patch_that_changes_nothing_appends_nothing() {
        framework()
            .given(with_breakfast())
            .when(patch(NutritionPatch {
                protein_g: Change::Set(14.0),
                ..NutritionPatch::default()
            }))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_patch_is_validated_as_merged() {
        // Clearing every amount and the notes leaves an empty entry.
        let result = framework()
            .given(with_breakfast())
            .when(patch(NutritionPatch {
                calories_kcal: Change::Clear,
                protein_g: Change::Clear,
                carbohydrate_g: Change::Clear,
                fat_g: Change::Clear,
                fibre_g: Change::Clear,
                caffeine_mg: Change::Clear,
                notes: Change::Clear,
                ..NutritionPatch::default()
            }))
            .inspect_result();
        assert_eq!(invalid_field(result), "nutrition");
        let result = framework()
            .given(with_breakfast())
            .when(patch(NutritionPatch {
                entry_type: Some(NutritionEntryType::Daily),
                ..NutritionPatch::default()
            }))
            .inspect_result();
        assert_eq!(invalid_field(result), "activity_id");
    }

    #[test]
    fn patching_an_unknown_or_deleted_entry_is_not_found() {
        framework()
            .given_no_previous_events()
            .when(patch(NutritionPatch::default()))
            .then_expect_error(ENTRY_NOT_FOUND);
        let mut given = with_breakfast();
        given.push(JournalEvent::NutritionEntryDeleted(NutritionEntryDeleted {
            athlete_id: athlete(),
            date: day(),
            entry_id: entry_id(),
        }));
        framework()
            .given(given)
            .when(patch(NutritionPatch {
                protein_g: Change::Set(20.0),
                ..NutritionPatch::default()
            }))
            .then_expect_error(ENTRY_NOT_FOUND);
    }

    #[test]
    fn an_update_is_validated() {
        let result = framework()
            .given(with_breakfast())
            .when(JournalCommand::UpdateNutritionEntry(UpdateNutritionEntry {
                athlete_id: athlete(),
                date: day(),
                entry_id: entry_id(),
                values: NutritionValues {
                    fat_g: Some(1_000.1),
                    ..breakfast()
                },
                logged_at: breakfast_at(),
            }))
            .inspect_result();
        assert_eq!(invalid_field(result), "fat_g");
    }

    #[test]
    fn updating_or_deleting_an_unknown_entry_is_not_found() {
        let other_entry = Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_0e02);
        framework()
            .given(with_breakfast())
            .when(JournalCommand::UpdateNutritionEntry(UpdateNutritionEntry {
                athlete_id: athlete(),
                date: day(),
                entry_id: other_entry,
                values: breakfast(),
                logged_at: breakfast_at(),
            }))
            .then_expect_error(ENTRY_NOT_FOUND);
        framework()
            .given_no_previous_events()
            .when(JournalCommand::DeleteNutritionEntry(DeleteNutritionEntry {
                athlete_id: athlete(),
                date: day(),
                entry_id: entry_id(),
            }))
            .then_expect_error(ENTRY_NOT_FOUND);
    }

    #[test]
    fn deletes_a_nutrition_entry_once() {
        let delete = DeleteNutritionEntry {
            athlete_id: athlete(),
            date: day(),
            entry_id: entry_id(),
        };
        let deleted = NutritionEntryDeleted {
            athlete_id: athlete(),
            date: day(),
            entry_id: entry_id(),
        };
        framework()
            .given(with_breakfast())
            .when(JournalCommand::DeleteNutritionEntry(delete.clone()))
            .then_expect_events(vec![JournalEvent::NutritionEntryDeleted(deleted.clone())]);
        framework()
            .given(with_breakfast())
            .and(vec![JournalEvent::NutritionEntryDeleted(deleted)])
            .when(JournalCommand::DeleteNutritionEntry(delete))
            .then_expect_error(ENTRY_NOT_FOUND);
    }

    #[test]
    fn deleting_in_someone_elses_journal_is_not_found() {
        framework()
            .given(with_breakfast())
            .when(JournalCommand::DeleteNutritionEntry(DeleteNutritionEntry {
                athlete_id: stranger(),
                date: day(),
                entry_id: entry_id(),
            }))
            .then_expect_error(NOT_FOUND);
    }

    // ----- LogWorkPattern -----

    fn work() -> LogWorkPattern {
        LogWorkPattern {
            athlete_id: athlete(),
            date: day(),
            work_type: WorkType::Desk,
            hours_worked: Some(8.5),
            stress: Some(3),
            notes: Some("Quarter-end deadline".to_string()),
        }
    }

    #[test]
    fn logs_a_work_pattern() {
        framework()
            .given(vec![JournalEvent::DailyCheckInLogged(check_in_event())])
            .when(JournalCommand::LogWorkPattern(work()))
            .then_expect_events(vec![JournalEvent::WorkPatternLogged(WorkPatternLogged {
                athlete_id: athlete(),
                date: day(),
                work_type: WorkType::Desk,
                hours_worked: Some(8.5),
                stress: Some(3),
                notes: Some("Quarter-end deadline".to_string()),
            })]);
    }

    #[test]
    fn a_day_off_has_zero_hours() {
        assert!(
            framework()
                .given_no_previous_events()
                .when(JournalCommand::LogWorkPattern(LogWorkPattern {
                    work_type: WorkType::DayOff,
                    hours_worked: Some(0.0),
                    ..work()
                }))
                .inspect_result()
                .is_ok()
        );
    }

    #[test]
    fn work_bounds_are_enforced() {
        let refused = |command: LogWorkPattern| {
            invalid_field(
                framework()
                    .given_no_previous_events()
                    .when(JournalCommand::LogWorkPattern(command))
                    .inspect_result(),
            )
        };
        assert_eq!(
            refused(LogWorkPattern {
                hours_worked: Some(24.5),
                ..work()
            }),
            "hours_worked"
        );
        assert_eq!(
            refused(LogWorkPattern {
                stress: Some(0),
                ..work()
            }),
            "stress"
        );
    }

    // ----- LogBodyComposition -----

    #[test]
    fn derives_bmi_from_height() {
        // 70 kg at 1.75 m: 70 / 3.0625 = 22.857 → 22.9.
        framework()
            .given_no_previous_events()
            .when(JournalCommand::LogBodyComposition(body_command()))
            .then_expect_events(vec![JournalEvent::BodyCompositionLogged(
                BodyCompositionLogged {
                    athlete_id: athlete(),
                    date: day(),
                    weight_kg: Some(70.0),
                    body_fat_pct: Some(12.5),
                    muscle_mass_kg: Some(33.2),
                    bmi: Some(22.9),
                    notes: None,
                },
            )]);
    }

    #[test]
    fn no_height_or_no_weight_means_no_bmi() {
        let without_height = framework()
            .given_no_previous_events()
            .when(JournalCommand::LogBodyComposition(LogBodyComposition {
                height_cm: None,
                ..body_command()
            }))
            .inspect_result()
            .unwrap();
        let without_weight = framework()
            .given_no_previous_events()
            .when(JournalCommand::LogBodyComposition(LogBodyComposition {
                weight_kg: None,
                ..body_command()
            }))
            .inspect_result()
            .unwrap();
        for events in [without_height, without_weight] {
            match &events[..] {
                [JournalEvent::BodyCompositionLogged(e)] => assert_eq!(e.bmi, None),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn body_composition_bounds_are_enforced() {
        let refused = |command: LogBodyComposition| {
            invalid_field(
                framework()
                    .given_no_previous_events()
                    .when(JournalCommand::LogBodyComposition(command))
                    .inspect_result(),
            )
        };
        assert_eq!(
            refused(LogBodyComposition {
                weight_kg: Some(19.9),
                ..body_command()
            }),
            "weight_kg"
        );
        assert_eq!(
            refused(LogBodyComposition {
                body_fat_pct: Some(100.1),
                ..body_command()
            }),
            "body_fat_pct"
        );
        assert_eq!(
            refused(LogBodyComposition {
                muscle_mass_kg: Some(70.0),
                ..body_command()
            }),
            "muscle_mass_kg"
        );
        assert_eq!(
            refused(LogBodyComposition {
                height_cm: Some(1.75),
                ..body_command()
            }),
            "height_cm"
        );
        assert_eq!(
            refused(LogBodyComposition {
                weight_kg: None,
                body_fat_pct: None,
                muscle_mass_kg: None,
                ..body_command()
            }),
            "body_composition"
        );
        // Zero body fat is implausible but a value, and within the documented range.
        assert!(
            framework()
                .given_no_previous_events()
                .when(JournalCommand::LogBodyComposition(LogBodyComposition {
                    body_fat_pct: Some(0.0),
                    ..body_command()
                }))
                .inspect_result()
                .is_ok()
        );
    }

    // ----- GiveInsightFeedback -----

    fn feedback() -> GiveInsightFeedback {
        GiveInsightFeedback {
            athlete_id: athlete(),
            date: day(),
            insight_id: "efficiency_trend:2026-W47".to_string(),
            helpful: true,
            notes: None,
        }
    }

    #[test]
    fn records_insight_feedback() {
        framework()
            .given(with_breakfast())
            .when(JournalCommand::GiveInsightFeedback(feedback()))
            .then_expect_events(vec![JournalEvent::InsightFeedbackGiven(
                InsightFeedbackGiven {
                    athlete_id: athlete(),
                    date: day(),
                    insight_id: "efficiency_trend:2026-W47".to_string(),
                    helpful: true,
                    notes: None,
                },
            )]);
    }

    #[test]
    fn an_empty_insight_id_is_invalid() {
        let result = framework()
            .given_no_previous_events()
            .when(JournalCommand::GiveInsightFeedback(GiveInsightFeedback {
                insight_id: "  ".to_string(),
                ..feedback()
            }))
            .inspect_result();
        assert_eq!(invalid_field(result), "insight_id");
    }

    // ----- state -----

    #[test]
    fn state_tracks_owner_and_entries_and_survives_a_snapshot() {
        let mut journal = Journal::default();
        for event in every_event() {
            journal.apply(event);
        }
        assert_eq!(journal.owner, Some(athlete()));
        assert_eq!(journal.date, Some(day()));
        assert!(journal.nutrition_entries.is_empty());
        assert!(journal.deleted_nutrition_entries.contains(&entry_id()));
        let back: Journal =
            serde_json::from_value(serde_json::to_value(&journal).unwrap()).unwrap();
        assert_eq!(back, journal);
    }
}

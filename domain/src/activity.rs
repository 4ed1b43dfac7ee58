//! One recorded training session: its summary numbers, how the athlete classified it and how it
//! felt. Each activity is its own stream (aggregate id = the activity's UUID), so deciding a
//! command replays only that activity's few events.
//!
//! Raw sample streams (per-second HR, GPS, power) never enter an event: they are large and would
//! make every replay slow. [`ActivityRecorded::samples`] points at the blob that holds them.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{EventUpcaster, SemanticVersionEventUpcaster};
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::validation::{self, Checked, ValidationError};
use crate::{DomainError, DomainServices, EventSchema};

const NOTES_MAX_CHARS: usize = 2000;
const NAME_MAX_CHARS: usize = 200;
const EXTERNAL_ID_MAX_CHARS: usize = 200;
/// Bounds one event's size; a 24-hour track race with 400 m auto-laps stays well inside it.
const MAX_LAPS: usize = 2000;
const MAX_DISTANCE_M: f64 = 1_000_000.0;
/// A week: longer than any single-stage ultra, and it catches milliseconds sent as seconds.
const MAX_DURATION_S: f64 = 604_800.0;
const MAX_ELEVATION_M: f64 = 20_000.0;

// ---------------------------------------------------------------------------------------------
// Value types
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Sport {
    Run,
    TrailRun,
    TreadmillRun,
    Walk,
    Ride,
    Other,
}

/// Where the summary came from; imports keep the provider's id in `external_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ActivitySource {
    Manual,
    Fit,
    Gpx,
    Tcx,
    Strava,
    Garmin,
}

/// The athlete's (or a classifier's) label for the session's purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WorkoutType {
    Easy,
    Long,
    Tempo,
    Threshold,
    Intervals,
    Race,
    Recovery,
    Other,
}

/// One lap as the device or provider split it (not necessarily a mile or a kilometre).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Lap {
    /// 0-based, strictly increasing within an activity.
    pub index: u32,
    pub distance_m: Option<f64>,
    pub moving_time_s: Option<f64>,
    pub avg_hr_bpm: Option<f64>,
    pub elevation_gain_m: Option<f64>,
}

/// How to reach an activity's raw samples, which live in blob storage, outside the event log.
/// The hash lets a reader detect a blob that was swapped or truncated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampleStreamRef {
    pub blob_id: Uuid,
    /// The blob's file format, lowercase: "fit", "gpx", "tcx", "json".
    pub format: String,
    /// SHA-256 of the blob's bytes, 64 lowercase hex digits.
    pub sha256: String,
    pub sample_count: u64,
    pub byte_len: u64,
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/// Version history: "1.0" stored `distance_km` and no `timezone`; [`upcasters`] lifts it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityRecorded {
    pub activity_id: Uuid,
    pub athlete_id: Uuid,
    pub sport: Sport,
    pub name: Option<String>,
    pub start_time: DateTime<Utc>,
    /// IANA zone the athlete was in, so local dates and times of day can be derived later.
    pub timezone: String,
    pub distance_m: Option<f64>,
    pub moving_time_s: f64,
    pub elapsed_time_s: Option<f64>,
    pub avg_hr_bpm: Option<f64>,
    pub max_hr_bpm: Option<f64>,
    pub elevation_gain_m: Option<f64>,
    pub elevation_loss_m: Option<f64>,
    pub source: ActivitySource,
    pub external_id: Option<String>,
    pub laps: Vec<Lap>,
    pub samples: Option<SampleStreamRef>,
}

impl ActivityRecorded {
    pub const VERSION: &'static str = "2.0";
}

/// Only the fields that are `Some` changed; the others keep their value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityUpdated {
    pub name: Option<String>,
    pub sport: Option<Sport>,
    pub distance_m: Option<f64>,
    pub moving_time_s: Option<f64>,
    pub avg_hr_bpm: Option<f64>,
    pub notes: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityDeleted {
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkoutTypeSet {
    pub workout_type: WorkoutType,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarkedAsRace {
    pub race_name: Option<String>,
    /// The race's certified distance, which a GPS trace rarely matches exactly.
    pub official_distance_m: Option<f64>,
    /// Chip or gun time from the results, as opposed to the device's moving time.
    pub official_time_s: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerceivedEffortRecorded {
    /// RPE, 1 = rest, 10 = maximal.
    pub effort: u8,
    /// 1 = sore or heavy, 5 = fresh.
    pub leg_feel: Option<u8>,
    pub mood_before: Option<u8>,
    pub mood_after: Option<u8>,
    pub energy_before: Option<u8>,
    pub energy_after: Option<u8>,
    pub notes: Option<String>,
}

/// The athlete withdrew their perceived-effort rating; the activity has none again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerceivedEffortRemoved {
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[allow(
    clippy::large_enum_variant,
    reason = "events are built once and moved into the sink; boxing would only complicate matching"
)]
pub enum ActivityEvent {
    ActivityRecorded(ActivityRecorded),
    ActivityUpdated(ActivityUpdated),
    ActivityDeleted(ActivityDeleted),
    WorkoutTypeSet(WorkoutTypeSet),
    MarkedAsRace(MarkedAsRace),
    PerceivedEffortRecorded(PerceivedEffortRecorded),
    PerceivedEffortRemoved(PerceivedEffortRemoved),
}

impl DomainEvent for ActivityEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ActivityRecorded(_) => "ActivityRecorded",
            Self::ActivityUpdated(_) => "ActivityUpdated",
            Self::ActivityDeleted(_) => "ActivityDeleted",
            Self::WorkoutTypeSet(_) => "WorkoutTypeSet",
            Self::MarkedAsRace(_) => "MarkedAsRace",
            Self::PerceivedEffortRecorded(_) => "PerceivedEffortRecorded",
            Self::PerceivedEffortRemoved(_) => "PerceivedEffortRemoved",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        match self {
            Self::ActivityRecorded(_) => ActivityRecorded::VERSION,
            _ => "1.0",
        }
        .to_string()
    }
}

impl crate::CataloguedEvent for ActivityEvent {}

pub const CATALOGUE: &[EventSchema] = &[
    schema("ActivityRecorded", ActivityRecorded::VERSION),
    schema("ActivityUpdated", "1.0"),
    schema("ActivityDeleted", "1.0"),
    schema("WorkoutTypeSet", "1.0"),
    schema("MarkedAsRace", "1.0"),
    schema("PerceivedEffortRecorded", "1.0"),
    schema("PerceivedEffortRemoved", "1.0"),
];

const fn schema(event_type: &'static str, version: &'static str) -> EventSchema {
    EventSchema {
        aggregate_type: Activity::TYPE,
        event_type,
        version,
        personal: true,
    }
}

// ---------------------------------------------------------------------------------------------
// Upcasting
// ---------------------------------------------------------------------------------------------

/// Every upcaster for this aggregate's events, oldest target version first: the store applies
/// them in order, so a future "3.0" upcaster would receive what the "2.0" one produced.
pub fn upcasters() -> Vec<Box<dyn EventUpcaster>> {
    vec![Box::new(SemanticVersionEventUpcaster::new(
        "ActivityRecorded",
        ActivityRecorded::VERSION,
        Box::new(activity_recorded_v1_to_v2),
    ))]
}

/// v1.0 → v2.0: `distance_km` becomes `distance_m` (rounded to 0.1 m, so float noise from the
/// multiplication does not leak into projections) and `timezone` becomes "UTC", because v1.0
/// recorded every time in UTC and knew nothing of the athlete's zone.
fn activity_recorded_v1_to_v2(payload: Value) -> Value {
    // An upcaster cannot fail; a malformed payload passes through and deserialization reports it.
    let Value::Object(mut fields) = payload else {
        return payload;
    };
    if let Some(km) = fields.remove("distance_km") {
        let metres = km.as_f64().map_or(Value::Null, |km| {
            Value::from((km * 10_000.0).round() / 10.0)
        });
        fields.insert("distance_m".to_string(), metres);
    }
    fields
        .entry("timezone")
        .or_insert_with(|| Value::from("UTC"));
    Value::Object(fields)
}

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------
//
// Commands deliberately do not implement `Deserialize`: `athlete_id` comes from the caller's
// token, and a command that could be parsed from a request body would invite trusting it.

/// The commands layer must send this to the stream named by `activity_id`; the aggregate cannot
/// see its own id.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordActivity {
    pub athlete_id: Uuid,
    pub activity_id: Uuid,
    pub sport: Sport,
    pub name: Option<String>,
    pub start_time: DateTime<Utc>,
    pub timezone: String,
    pub distance_m: Option<f64>,
    pub moving_time_s: f64,
    pub elapsed_time_s: Option<f64>,
    pub avg_hr_bpm: Option<f64>,
    pub max_hr_bpm: Option<f64>,
    pub elevation_gain_m: Option<f64>,
    pub elevation_loss_m: Option<f64>,
    pub source: ActivitySource,
    pub external_id: Option<String>,
    pub laps: Vec<Lap>,
    pub samples: Option<SampleStreamRef>,
}

/// `None` leaves a field as it is; an update cannot clear a value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpdateActivity {
    pub athlete_id: Uuid,
    pub name: Option<String>,
    pub sport: Option<Sport>,
    pub distance_m: Option<f64>,
    pub moving_time_s: Option<f64>,
    pub avg_hr_bpm: Option<f64>,
    pub notes: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeleteActivity {
    pub athlete_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SetWorkoutType {
    pub athlete_id: Uuid,
    pub workout_type: WorkoutType,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MarkAsRace {
    pub athlete_id: Uuid,
    pub race_name: Option<String>,
    pub official_distance_m: Option<f64>,
    pub official_time_s: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordPerceivedEffort {
    pub athlete_id: Uuid,
    pub effort: u8,
    pub leg_feel: Option<u8>,
    pub mood_before: Option<u8>,
    pub mood_after: Option<u8>,
    pub energy_before: Option<u8>,
    pub energy_after: Option<u8>,
    pub notes: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemovePerceivedEffort {
    pub athlete_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(
    clippy::large_enum_variant,
    reason = "a command lives for one request; boxing would only complicate construction"
)]
pub enum ActivityCommand {
    RecordActivity(RecordActivity),
    UpdateActivity(UpdateActivity),
    DeleteActivity(DeleteActivity),
    SetWorkoutType(SetWorkoutType),
    MarkAsRace(MarkAsRace),
    RecordPerceivedEffort(RecordPerceivedEffort),
    RemovePerceivedEffort(RemovePerceivedEffort),
}

impl ActivityCommand {
    pub fn athlete_id(&self) -> Uuid {
        match self {
            Self::RecordActivity(c) => c.athlete_id,
            Self::UpdateActivity(c) => c.athlete_id,
            Self::DeleteActivity(c) => c.athlete_id,
            Self::SetWorkoutType(c) => c.athlete_id,
            Self::MarkAsRace(c) => c.athlete_id,
            Self::RecordPerceivedEffort(c) => c.athlete_id,
            Self::RemovePerceivedEffort(c) => c.athlete_id,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Aggregate
// ---------------------------------------------------------------------------------------------

/// Only what decisions read: ownership, deletion, and the two values an update is checked against.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    owner: Option<Uuid>,
    deleted: bool,
    elapsed_time_s: Option<f64>,
    max_hr_bpm: Option<f64>,
    has_effort: bool,
}

const NOT_FOUND: DomainError = DomainError::NotFound { what: "activity" };

impl Activity {
    /// The athlete who recorded it; `None` before it is recorded.
    pub fn owner(&self) -> Option<Uuid> {
        self.owner
    }

    /// Recorded by `athlete_id` and not deleted: what another stream may link to (a nutrition
    /// entry's activity).
    pub fn is_live_of(&self, athlete_id: Uuid) -> bool {
        self.owner == Some(athlete_id) && !self.deleted
    }

    /// Whether a perceived-effort rating is on record.
    pub fn has_effort(&self) -> bool {
        self.has_effort
    }

    /// Someone else's activity answers exactly like a missing one, so ids cannot be probed.
    fn authorise(&self, athlete_id: Uuid) -> Result<(), DomainError> {
        match self.owner {
            Some(owner) if owner == athlete_id => Ok(()),
            _ => Err(NOT_FOUND),
        }
    }

    fn live(&self, athlete_id: Uuid) -> Result<(), DomainError> {
        self.authorise(athlete_id)?;
        if self.deleted {
            return Err(DomainError::Conflict("activity deleted".to_string()));
        }
        Ok(())
    }

    /// Recording an id twice conflicts; someone else's id answers like a missing activity.
    fn record(&self, c: RecordActivity, now: DateTime<Utc>) -> Result<ActivityEvent, DomainError> {
        if self.owner.is_some() {
            self.live(c.athlete_id)?;
            return Err(DomainError::Conflict(
                "activity already recorded".to_string(),
            ));
        }
        check_record(&c, now)?;
        Ok(ActivityEvent::ActivityRecorded(ActivityRecorded {
            activity_id: c.activity_id,
            athlete_id: c.athlete_id,
            sport: c.sport,
            name: c.name,
            start_time: c.start_time,
            timezone: c.timezone,
            distance_m: c.distance_m,
            moving_time_s: c.moving_time_s,
            elapsed_time_s: c.elapsed_time_s,
            avg_hr_bpm: c.avg_hr_bpm,
            max_hr_bpm: c.max_hr_bpm,
            elevation_gain_m: c.elevation_gain_m,
            elevation_loss_m: c.elevation_loss_m,
            source: c.source,
            external_id: c.external_id,
            laps: c.laps,
            samples: c.samples,
        }))
    }

    fn record_effort(&self, c: RecordPerceivedEffort) -> Result<ActivityEvent, DomainError> {
        self.live(c.athlete_id)?;
        validation::on_scale("effort", c.effort, 1, 10)?;
        validation::opt_on_scale("leg_feel", c.leg_feel, 1, 5)?;
        validation::opt_on_scale("mood_before", c.mood_before, 1, 5)?;
        validation::opt_on_scale("mood_after", c.mood_after, 1, 5)?;
        validation::opt_on_scale("energy_before", c.energy_before, 1, 5)?;
        validation::opt_on_scale("energy_after", c.energy_after, 1, 5)?;
        validation::text("notes", c.notes.as_deref(), NOTES_MAX_CHARS)?;
        Ok(ActivityEvent::PerceivedEffortRecorded(
            PerceivedEffortRecorded {
                effort: c.effort,
                leg_feel: c.leg_feel,
                mood_before: c.mood_before,
                mood_after: c.mood_after,
                energy_before: c.energy_before,
                energy_after: c.energy_after,
                notes: c.notes,
            },
        ))
    }
}

impl Aggregate for Activity {
    const TYPE: &'static str = "activity";
    type Command = ActivityCommand;
    type Event = ActivityEvent;
    type Error = DomainError;
    type Services = DomainServices;

    async fn handle(
        &mut self,
        command: ActivityCommand,
        services: &DomainServices,
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        let now = services.now();
        let event = match command {
            ActivityCommand::RecordActivity(c) => self.record(c, now)?,
            ActivityCommand::UpdateActivity(c) => {
                self.live(c.athlete_id)?;
                self.check_update(&c)?;
                ActivityEvent::ActivityUpdated(ActivityUpdated {
                    name: c.name,
                    sport: c.sport,
                    distance_m: c.distance_m,
                    moving_time_s: c.moving_time_s,
                    avg_hr_bpm: c.avg_hr_bpm,
                    notes: c.notes,
                })
            }
            ActivityCommand::DeleteActivity(c) => {
                self.authorise(c.athlete_id)?;
                // Idempotent: a retried delete succeeds without a second event.
                if self.deleted {
                    return Ok(());
                }
                ActivityEvent::ActivityDeleted(ActivityDeleted { at: now })
            }
            ActivityCommand::SetWorkoutType(c) => {
                self.live(c.athlete_id)?;
                ActivityEvent::WorkoutTypeSet(WorkoutTypeSet {
                    workout_type: c.workout_type,
                })
            }
            ActivityCommand::MarkAsRace(c) => {
                self.live(c.athlete_id)?;
                validation::text("race_name", c.race_name.as_deref(), NAME_MAX_CHARS)?;
                distance("official_distance_m", c.official_distance_m)?;
                duration("official_time_s", c.official_time_s)?;
                ActivityEvent::MarkedAsRace(MarkedAsRace {
                    race_name: c.race_name,
                    official_distance_m: c.official_distance_m,
                    official_time_s: c.official_time_s,
                })
            }
            ActivityCommand::RecordPerceivedEffort(c) => self.record_effort(c)?,
            ActivityCommand::RemovePerceivedEffort(c) => {
                self.live(c.athlete_id)?;
                // Idempotent, like deleting the activity: a retried removal succeeds quietly.
                if !self.has_effort {
                    return Ok(());
                }
                ActivityEvent::PerceivedEffortRemoved(PerceivedEffortRemoved { at: now })
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: ActivityEvent) {
        match event {
            ActivityEvent::ActivityRecorded(e) => {
                self.owner = Some(e.athlete_id);
                self.elapsed_time_s = e.elapsed_time_s;
                self.max_hr_bpm = e.max_hr_bpm;
            }
            ActivityEvent::ActivityDeleted(_) => self.deleted = true,
            ActivityEvent::PerceivedEffortRecorded(_) => self.has_effort = true,
            ActivityEvent::PerceivedEffortRemoved(_) => self.has_effort = false,
            ActivityEvent::ActivityUpdated(_)
            | ActivityEvent::WorkoutTypeSet(_)
            | ActivityEvent::MarkedAsRace(_) => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

fn distance(field: &'static str, metres: Option<f64>) -> Checked {
    validation::opt_in_range(field, metres, 0.0, MAX_DISTANCE_M, "m")
}

fn duration(field: &'static str, seconds: Option<f64>) -> Checked {
    validation::opt_in_range(field, seconds, 0.0, MAX_DURATION_S, "s")
}

fn elevation(field: &'static str, metres: Option<f64>) -> Checked {
    validation::opt_in_range(field, metres, 0.0, MAX_ELEVATION_M, "m")
}

/// A maximum below the average means the two were swapped or one is wrong.
fn hr_pair(avg_hr_bpm: Option<f64>, max_hr_bpm: Option<f64>) -> Checked {
    match (avg_hr_bpm, max_hr_bpm) {
        (Some(avg), Some(max)) if max < avg => Err(ValidationError::new(
            "max_hr_bpm",
            format!("must be at least avg_hr_bpm ({avg} bpm), got {max} bpm"),
        )),
        _ => Ok(()),
    }
}

fn moving_within_elapsed(moving_time_s: Option<f64>, elapsed_time_s: Option<f64>) -> Checked {
    match (moving_time_s, elapsed_time_s) {
        (Some(moving), Some(elapsed)) if moving > elapsed => Err(ValidationError::new(
            "moving_time_s",
            format!("must not exceed elapsed_time_s ({elapsed} s), got {moving} s"),
        )),
        _ => Ok(()),
    }
}

/// A syntactic check only: this crate carries no time-zone database. It refuses offsets and
/// abbreviations ("+02:00", "") that would not resolve as IANA names anyway.
fn timezone(name: &str) -> Checked {
    let well_formed = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '+'));
    if well_formed {
        Ok(())
    } else {
        Err(ValidationError::new(
            "timezone",
            format!("must be an IANA time-zone name such as Europe/Paris, got {name:?}"),
        ))
    }
}

fn lap(lap: &Lap) -> Checked {
    distance("distance_m", lap.distance_m)?;
    duration("moving_time_s", lap.moving_time_s)?;
    validation::heart_rate("avg_hr_bpm", lap.avg_hr_bpm)?;
    elevation("elevation_gain_m", lap.elevation_gain_m)
}

fn laps(laps: &[Lap]) -> Checked {
    if laps.len() > MAX_LAPS {
        return Err(ValidationError::new(
            "laps",
            format!("at most {MAX_LAPS} laps, got {}", laps.len()),
        ));
    }
    for (position, l) in laps.iter().enumerate() {
        if position > 0 && l.index <= laps[position - 1].index {
            return Err(ValidationError::new(
                "laps",
                format!(
                    "lap indices must increase, got {} after {}",
                    l.index,
                    laps[position - 1].index
                ),
            ));
        }
        // The field name is static, so the lap's index goes into the message instead.
        lap(l).map_err(|e| {
            ValidationError::new(
                "laps",
                format!("lap {}: {}: {}", l.index, e.field, e.problem),
            )
        })?;
    }
    Ok(())
}

fn samples(samples: &SampleStreamRef) -> Checked {
    let format_ok = !samples.format.is_empty()
        && samples.format.len() <= 16
        && samples
            .format
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !format_ok {
        return Err(ValidationError::new(
            "samples.format",
            format!(
                "must be a short lowercase format name such as fit, got {:?}",
                samples.format
            ),
        ));
    }
    let hash_ok = samples.sha256.len() == 64
        && samples
            .sha256
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    if !hash_ok {
        return Err(ValidationError::new(
            "samples.sha256",
            "must be 64 lowercase hex digits",
        ));
    }
    Ok(())
}

fn check_record(c: &RecordActivity, now: DateTime<Utc>) -> Checked {
    validation::not_in_future("start_time", c.start_time, now)?;
    timezone(&c.timezone)?;
    validation::text("name", c.name.as_deref(), NAME_MAX_CHARS)?;
    distance("distance_m", c.distance_m)?;
    duration("moving_time_s", Some(c.moving_time_s))?;
    duration("elapsed_time_s", c.elapsed_time_s)?;
    moving_within_elapsed(Some(c.moving_time_s), c.elapsed_time_s)?;
    validation::heart_rate("avg_hr_bpm", c.avg_hr_bpm)?;
    validation::heart_rate("max_hr_bpm", c.max_hr_bpm)?;
    hr_pair(c.avg_hr_bpm, c.max_hr_bpm)?;
    elevation("elevation_gain_m", c.elevation_gain_m)?;
    elevation("elevation_loss_m", c.elevation_loss_m)?;
    validation::text(
        "external_id",
        c.external_id.as_deref(),
        EXTERNAL_ID_MAX_CHARS,
    )?;
    laps(&c.laps)?;
    c.samples.as_ref().map_or(Ok(()), samples)
}

impl Activity {
    /// The new values are checked against what was recorded, so an edit cannot make the
    /// activity inconsistent (moving time above elapsed time, average HR above maximum).
    fn check_update(&self, c: &UpdateActivity) -> Checked {
        let changes_nothing = c.name.is_none()
            && c.sport.is_none()
            && c.distance_m.is_none()
            && c.moving_time_s.is_none()
            && c.avg_hr_bpm.is_none()
            && c.notes.is_none();
        if changes_nothing {
            return Err(ValidationError::new(
                "update",
                "give at least one field to change",
            ));
        }
        validation::text("name", c.name.as_deref(), NAME_MAX_CHARS)?;
        distance("distance_m", c.distance_m)?;
        duration("moving_time_s", c.moving_time_s)?;
        moving_within_elapsed(c.moving_time_s, self.elapsed_time_s)?;
        validation::heart_rate("avg_hr_bpm", c.avg_hr_bpm)?;
        hr_pair(c.avg_hr_bpm, self.max_hr_bpm)?;
        validation::text("notes", c.notes.as_deref(), NOTES_MAX_CHARS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CataloguedEvent;
    use chrono::{Duration, TimeZone};
    use cqrs_es::persist::{SemanticVersion, SerializedEvent};
    use cqrs_es::test::TestFramework;
    use serde_json::json;

    type Framework = TestFramework<Activity>;

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

    fn activity_id() -> Uuid {
        Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_0ac1)
    }

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 7, 30, 0).unwrap()
    }

    /// A 10 km run in 48:00 moving at 152 bpm average, imported from a FIT file.
    fn record() -> RecordActivity {
        RecordActivity {
            athlete_id: athlete(),
            activity_id: activity_id(),
            sport: Sport::Run,
            name: Some("Morning 10k".to_string()),
            start_time: start(),
            timezone: "Europe/Paris".to_string(),
            distance_m: Some(10_000.0),
            moving_time_s: 2_880.0,
            elapsed_time_s: Some(2_950.0),
            avg_hr_bpm: Some(152.0),
            max_hr_bpm: Some(171.0),
            elevation_gain_m: Some(84.0),
            elevation_loss_m: Some(82.5),
            source: ActivitySource::Fit,
            external_id: None,
            laps: vec![
                Lap {
                    index: 0,
                    distance_m: Some(5_000.0),
                    moving_time_s: Some(1_452.0),
                    avg_hr_bpm: Some(148.0),
                    elevation_gain_m: Some(40.0),
                },
                Lap {
                    index: 1,
                    distance_m: Some(5_000.0),
                    moving_time_s: Some(1_428.0),
                    avg_hr_bpm: Some(156.0),
                    elevation_gain_m: Some(44.0),
                },
            ],
            samples: Some(SampleStreamRef {
                blob_id: Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_0b10),
                format: "fit".to_string(),
                sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
                    .to_string(),
                sample_count: 2_950,
                byte_len: 184_320,
            }),
        }
    }

    fn recorded() -> ActivityRecorded {
        let c = record();
        ActivityRecorded {
            activity_id: c.activity_id,
            athlete_id: c.athlete_id,
            sport: c.sport,
            name: c.name,
            start_time: c.start_time,
            timezone: c.timezone,
            distance_m: c.distance_m,
            moving_time_s: c.moving_time_s,
            elapsed_time_s: c.elapsed_time_s,
            avg_hr_bpm: c.avg_hr_bpm,
            max_hr_bpm: c.max_hr_bpm,
            elevation_gain_m: c.elevation_gain_m,
            elevation_loss_m: c.elevation_loss_m,
            source: c.source,
            external_id: c.external_id,
            laps: c.laps,
            samples: c.samples,
        }
    }

    fn history() -> Vec<ActivityEvent> {
        vec![ActivityEvent::ActivityRecorded(recorded())]
    }

    fn deleted_history() -> Vec<ActivityEvent> {
        vec![
            ActivityEvent::ActivityRecorded(recorded()),
            ActivityEvent::ActivityDeleted(ActivityDeleted { at: now() }),
        ]
    }

    fn update() -> UpdateActivity {
        UpdateActivity {
            athlete_id: athlete(),
            name: None,
            sport: None,
            distance_m: None,
            moving_time_s: None,
            avg_hr_bpm: None,
            notes: None,
        }
    }

    fn effort() -> RecordPerceivedEffort {
        RecordPerceivedEffort {
            athlete_id: athlete(),
            effort: 6,
            leg_feel: Some(4),
            mood_before: Some(3),
            mood_after: Some(4),
            energy_before: Some(3),
            energy_after: Some(2),
            notes: Some("Negative split, felt controlled".to_string()),
        }
    }

    fn invalid_field(result: Result<Vec<ActivityEvent>, DomainError>) -> &'static str {
        match result {
            Err(DomainError::Invalid(e)) => e.field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    // ----- serde and catalogue -----

    /// One of every event; the catalogue test below fails if a variant is missing here.
    fn every_event() -> Vec<ActivityEvent> {
        vec![
            ActivityEvent::ActivityRecorded(recorded()),
            ActivityEvent::ActivityUpdated(ActivityUpdated {
                name: Some("Tempo 10k".to_string()),
                sport: Some(Sport::TrailRun),
                distance_m: Some(10_020.5),
                moving_time_s: Some(2_875.0),
                avg_hr_bpm: Some(151.0),
                notes: Some("Course was short".to_string()),
            }),
            ActivityEvent::ActivityDeleted(ActivityDeleted { at: now() }),
            ActivityEvent::WorkoutTypeSet(WorkoutTypeSet {
                workout_type: WorkoutType::Threshold,
            }),
            ActivityEvent::MarkedAsRace(MarkedAsRace {
                race_name: Some("Paris 10k".to_string()),
                official_distance_m: Some(10_000.0),
                official_time_s: Some(2_871.0),
            }),
            ActivityEvent::PerceivedEffortRecorded(PerceivedEffortRecorded {
                effort: 8,
                leg_feel: Some(2),
                mood_before: None,
                mood_after: Some(5),
                energy_before: Some(4),
                energy_after: Some(1),
                notes: None,
            }),
            ActivityEvent::PerceivedEffortRemoved(PerceivedEffortRemoved { at: now() }),
        ]
    }

    #[test]
    fn every_event_round_trips_through_json_with_its_type_tag() {
        for event in every_event() {
            let value = serde_json::to_value(&event).unwrap();
            assert_eq!(value["type"], json!(event.event_type()), "{value}");
            let back: ActivityEvent = serde_json::from_value(value).unwrap();
            assert_eq!(back, event);
        }
    }

    #[test]
    fn enums_serialize_in_snake_case() {
        let value = serde_json::to_value(ActivityEvent::ActivityRecorded(ActivityRecorded {
            sport: Sport::TreadmillRun,
            source: ActivitySource::Garmin,
            ..recorded()
        }))
        .unwrap();
        assert_eq!(value["sport"], "treadmill_run");
        assert_eq!(value["source"], "garmin");
        assert_eq!(value["start_time"], "2026-11-26T07:30:00Z");
        let value = serde_json::to_value(WorkoutTypeSet {
            workout_type: WorkoutType::Intervals,
        })
        .unwrap();
        assert_eq!(value, json!({"workout_type": "intervals"}));
    }

    #[test]
    fn catalogue_lists_every_event_with_its_version() {
        let events = every_event();
        assert_eq!(events.len(), CATALOGUE.len());
        for event in events {
            let catalogued = CATALOGUE.iter().any(|s| {
                s.aggregate_type == "activity"
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
        assert_eq!(
            CATALOGUE
                .iter()
                .find(|s| s.event_type == "ActivityRecorded")
                .unwrap()
                .version,
            "2.0"
        );
    }

    // ----- upcasting -----

    /// What the store does on load (cqrs-es keeps its own fold crate-private).
    fn upcast(event: SerializedEvent) -> SerializedEvent {
        upcasters().iter().fold(event, |event, upcaster| {
            if upcaster.can_upcast(&event.event_type, &event.event_version) {
                upcaster.upcast(event)
            } else {
                event
            }
        })
    }

    fn stored(version: &str, payload: Value) -> SerializedEvent {
        SerializedEvent::new(
            activity_id().to_string(),
            1,
            "activity".to_string(),
            "ActivityRecorded".to_string(),
            version.to_string(),
            payload,
            json!({}),
        )
    }

    #[test]
    fn a_v1_payload_is_upcast_to_the_current_event() {
        let v1: Value = serde_json::from_str(
            r#"{
                "type": "ActivityRecorded",
                "activity_id": "01950000-0000-7000-8000-000000000ac1",
                "athlete_id": "01950000-0000-7000-8000-0000000000a1",
                "sport": "run",
                "name": null,
                "start_time": "2024-03-02T06:15:00Z",
                "distance_km": 10.0123,
                "moving_time_s": 2880.0,
                "elapsed_time_s": 2901.0,
                "avg_hr_bpm": 152.0,
                "max_hr_bpm": 168.0,
                "elevation_gain_m": 35.0,
                "elevation_loss_m": 35.0,
                "source": "strava",
                "external_id": "10593123456",
                "laps": [],
                "samples": null
            }"#,
        )
        .unwrap();

        let upcast = upcast(stored("1.0", v1));

        // cqrs-es writes the target version in three-part form ("2.0.0"); it is the same
        // version as "2.0", which is why versions must be compared semantically, not as strings.
        assert_eq!(
            upcast.event_version.parse::<SemanticVersion>(),
            ActivityRecorded::VERSION.parse::<SemanticVersion>()
        );
        assert_eq!(upcast.payload.get("distance_km"), None);
        let event: ActivityEvent = serde_json::from_value(upcast.payload).unwrap();
        assert_eq!(
            event,
            ActivityEvent::ActivityRecorded(ActivityRecorded {
                activity_id: activity_id(),
                athlete_id: athlete(),
                sport: Sport::Run,
                name: None,
                start_time: Utc.with_ymd_and_hms(2024, 3, 2, 6, 15, 0).unwrap(),
                timezone: "UTC".to_string(),
                distance_m: Some(10_012.3),
                moving_time_s: 2_880.0,
                elapsed_time_s: Some(2_901.0),
                avg_hr_bpm: Some(152.0),
                max_hr_bpm: Some(168.0),
                elevation_gain_m: Some(35.0),
                elevation_loss_m: Some(35.0),
                source: ActivitySource::Strava,
                external_id: Some("10593123456".to_string()),
                laps: vec![],
                samples: None,
            })
        );
    }

    #[test]
    fn a_v1_payload_without_distance_upcasts_to_no_distance() {
        let v1 = json!({
            "type": "ActivityRecorded",
            "activity_id": activity_id(),
            "athlete_id": athlete(),
            "sport": "other",
            "name": "Strength",
            "start_time": "2024-03-02T18:00:00Z",
            "distance_km": null,
            "moving_time_s": 1800.0,
            "elapsed_time_s": null,
            "avg_hr_bpm": null,
            "max_hr_bpm": null,
            "elevation_gain_m": null,
            "elevation_loss_m": null,
            "source": "manual",
            "external_id": null,
            "laps": [],
            "samples": null
        });
        let upcast = upcast(stored("1.0", v1));
        assert_eq!(upcast.payload["distance_m"], Value::Null);
        match serde_json::from_value(upcast.payload).unwrap() {
            ActivityEvent::ActivityRecorded(e) => {
                assert_eq!(e.distance_m, None);
                assert_eq!(e.timezone, "UTC");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_v2_payload_passes_unchanged() {
        let current = ActivityEvent::ActivityRecorded(recorded());
        let payload = serde_json::to_value(&current).unwrap();
        let event = stored("2.0", payload.clone());

        assert!(
            upcasters()
                .iter()
                .all(|u| !u.can_upcast("ActivityRecorded", "2.0"))
        );
        let after = upcast(event.clone());
        assert_eq!(after, event);
        assert_eq!(after.payload, payload);
        assert_eq!(
            serde_json::from_value::<ActivityEvent>(after.payload).unwrap(),
            current
        );
    }

    #[test]
    fn other_events_are_not_upcast() {
        assert!(
            upcasters()
                .iter()
                .all(|u| !u.can_upcast("ActivityUpdated", "1.0"))
        );
    }

    // ----- RecordActivity -----

    #[test]
    fn records_a_10k_run() {
        framework()
            .given_no_previous_events()
            .when(ActivityCommand::RecordActivity(record()))
            .then_expect_events(history());
    }

    #[test]
    fn records_a_manual_treadmill_run_with_zero_distance_and_elevation() {
        let command = RecordActivity {
            sport: Sport::TreadmillRun,
            distance_m: Some(0.0),
            elevation_gain_m: Some(0.0),
            elevation_loss_m: Some(0.0),
            moving_time_s: 0.0,
            elapsed_time_s: Some(0.0),
            avg_hr_bpm: None,
            max_hr_bpm: None,
            source: ActivitySource::Manual,
            laps: vec![],
            samples: None,
            ..record()
        };
        let result = framework()
            .given_no_previous_events()
            .when(ActivityCommand::RecordActivity(command))
            .inspect_result()
            .unwrap();
        match &result[..] {
            [ActivityEvent::ActivityRecorded(e)] => {
                assert_eq!(e.distance_m, Some(0.0));
                assert_eq!(e.moving_time_s, 0.0);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn recording_twice_conflicts() {
        framework()
            .given(history())
            .when(ActivityCommand::RecordActivity(record()))
            .then_expect_error(DomainError::Conflict(
                "activity already recorded".to_string(),
            ));
    }

    #[test]
    fn recording_over_someone_elses_activity_is_not_found() {
        framework()
            .given(history())
            .when(ActivityCommand::RecordActivity(RecordActivity {
                athlete_id: stranger(),
                ..record()
            }))
            .then_expect_error(NOT_FOUND);
    }

    #[test]
    fn recording_over_a_deleted_activity_conflicts() {
        framework()
            .given(deleted_history())
            .when(ActivityCommand::RecordActivity(record()))
            .then_expect_error(DomainError::Conflict("activity deleted".to_string()));
    }

    #[test]
    fn start_time_may_be_a_day_ahead_but_not_more() {
        let within = RecordActivity {
            start_time: now() + Duration::hours(23),
            ..record()
        };
        assert!(
            framework()
                .given_no_previous_events()
                .when(ActivityCommand::RecordActivity(within))
                .inspect_result()
                .is_ok()
        );
        let beyond = RecordActivity {
            start_time: now() + Duration::hours(25),
            ..record()
        };
        let result = framework()
            .given_no_previous_events()
            .when(ActivityCommand::RecordActivity(beyond))
            .inspect_result();
        assert_eq!(invalid_field(result), "start_time");
    }

    fn refused_record(command: RecordActivity) -> &'static str {
        invalid_field(
            framework()
                .given_no_previous_events()
                .when(ActivityCommand::RecordActivity(command))
                .inspect_result(),
        )
    }

    #[test]
    fn heart_rate_bounds_are_enforced() {
        assert_eq!(
            refused_record(RecordActivity {
                avg_hr_bpm: Some(24.0),
                ..record()
            }),
            "avg_hr_bpm"
        );
        assert_eq!(
            refused_record(RecordActivity {
                max_hr_bpm: Some(251.0),
                ..record()
            }),
            "max_hr_bpm"
        );
        assert_eq!(
            refused_record(RecordActivity {
                avg_hr_bpm: Some(172.0),
                max_hr_bpm: Some(171.0),
                ..record()
            }),
            "max_hr_bpm"
        );
        // Equal average and maximum is possible on a very short effort.
        assert!(
            framework()
                .given_no_previous_events()
                .when(ActivityCommand::RecordActivity(RecordActivity {
                    avg_hr_bpm: Some(250.0),
                    max_hr_bpm: Some(250.0),
                    ..record()
                }))
                .inspect_result()
                .is_ok()
        );
    }

    #[test]
    fn distance_duration_and_elevation_bounds_are_enforced() {
        assert_eq!(
            refused_record(RecordActivity {
                distance_m: Some(-1.0),
                ..record()
            }),
            "distance_m"
        );
        assert_eq!(
            refused_record(RecordActivity {
                distance_m: Some(1_000_000.5),
                ..record()
            }),
            "distance_m"
        );
        assert_eq!(
            refused_record(RecordActivity {
                moving_time_s: -1.0,
                ..record()
            }),
            "moving_time_s"
        );
        assert_eq!(
            refused_record(RecordActivity {
                moving_time_s: 2_951.0,
                ..record()
            }),
            "moving_time_s"
        );
        assert_eq!(
            refused_record(RecordActivity {
                elevation_gain_m: Some(20_001.0),
                ..record()
            }),
            "elevation_gain_m"
        );
        assert_eq!(
            refused_record(RecordActivity {
                distance_m: Some(f64::NAN),
                ..record()
            }),
            "distance_m"
        );
    }

    #[test]
    fn malformed_timezone_laps_and_samples_are_refused() {
        assert_eq!(
            refused_record(RecordActivity {
                timezone: "+02:00".to_string(),
                ..record()
            }),
            "timezone"
        );
        assert_eq!(
            refused_record(RecordActivity {
                timezone: String::new(),
                ..record()
            }),
            "timezone"
        );
        let mut out_of_order = record();
        out_of_order.laps[1].index = 0;
        assert_eq!(refused_record(out_of_order), "laps");
        let mut bad_lap_hr = record();
        bad_lap_hr.laps[1].avg_hr_bpm = Some(300.0);
        assert_eq!(refused_record(bad_lap_hr), "laps");
        let mut bad_hash = record();
        bad_hash.samples.as_mut().unwrap().sha256 = "ABC".to_string();
        assert_eq!(refused_record(bad_hash), "samples.sha256");
        let mut bad_format = record();
        bad_format.samples.as_mut().unwrap().format = "F I T".to_string();
        assert_eq!(refused_record(bad_format), "samples.format");
    }

    // ----- UpdateActivity -----

    #[test]
    fn updates_only_the_given_fields() {
        framework()
            .given(history())
            .when(ActivityCommand::UpdateActivity(UpdateActivity {
                distance_m: Some(10_050.0),
                notes: Some("GPS cut the corners".to_string()),
                ..update()
            }))
            .then_expect_events(vec![ActivityEvent::ActivityUpdated(ActivityUpdated {
                name: None,
                sport: None,
                distance_m: Some(10_050.0),
                moving_time_s: None,
                avg_hr_bpm: None,
                notes: Some("GPS cut the corners".to_string()),
            })]);
    }

    #[test]
    fn an_update_is_checked_against_the_recorded_values() {
        let over_elapsed = framework()
            .given(history())
            .when(ActivityCommand::UpdateActivity(UpdateActivity {
                moving_time_s: Some(2_951.0),
                ..update()
            }))
            .inspect_result();
        assert_eq!(invalid_field(over_elapsed), "moving_time_s");
        let over_max = framework()
            .given(history())
            .when(ActivityCommand::UpdateActivity(UpdateActivity {
                avg_hr_bpm: Some(172.0),
                ..update()
            }))
            .inspect_result();
        assert_eq!(invalid_field(over_max), "max_hr_bpm");
    }

    #[test]
    fn an_empty_update_is_invalid() {
        let result = framework()
            .given(history())
            .when(ActivityCommand::UpdateActivity(update()))
            .inspect_result();
        assert_eq!(invalid_field(result), "update");
    }

    #[test]
    fn updating_a_missing_or_foreign_activity_is_not_found() {
        framework()
            .given_no_previous_events()
            .when(ActivityCommand::UpdateActivity(UpdateActivity {
                sport: Some(Sport::Walk),
                ..update()
            }))
            .then_expect_error(NOT_FOUND);
        framework()
            .given(history())
            .when(ActivityCommand::UpdateActivity(UpdateActivity {
                athlete_id: stranger(),
                sport: Some(Sport::Walk),
                ..update()
            }))
            .then_expect_error(NOT_FOUND);
    }

    #[test]
    fn updating_a_deleted_activity_conflicts() {
        framework()
            .given(deleted_history())
            .when(ActivityCommand::UpdateActivity(UpdateActivity {
                sport: Some(Sport::Walk),
                ..update()
            }))
            .then_expect_error(DomainError::Conflict("activity deleted".to_string()));
    }

    // ----- DeleteActivity -----

    #[test]
    fn deletes_at_the_services_clock() {
        framework()
            .given(history())
            .when(ActivityCommand::DeleteActivity(DeleteActivity {
                athlete_id: athlete(),
            }))
            .then_expect_events(vec![ActivityEvent::ActivityDeleted(ActivityDeleted {
                at: now(),
            })]);
    }

    #[test]
    fn deleting_twice_emits_nothing() {
        framework()
            .given(deleted_history())
            .when(ActivityCommand::DeleteActivity(DeleteActivity {
                athlete_id: athlete(),
            }))
            .then_expect_events(vec![]);
    }

    #[test]
    fn deleting_someone_elses_activity_is_not_found_even_when_deleted() {
        framework()
            .given(deleted_history())
            .when(ActivityCommand::DeleteActivity(DeleteActivity {
                athlete_id: stranger(),
            }))
            .then_expect_error(NOT_FOUND);
    }

    // ----- SetWorkoutType -----

    #[test]
    fn sets_the_workout_type() {
        framework()
            .given(history())
            .when(ActivityCommand::SetWorkoutType(SetWorkoutType {
                athlete_id: athlete(),
                workout_type: WorkoutType::Tempo,
            }))
            .then_expect_events(vec![ActivityEvent::WorkoutTypeSet(WorkoutTypeSet {
                workout_type: WorkoutType::Tempo,
            })]);
    }

    #[test]
    fn setting_the_workout_type_after_deletion_conflicts() {
        framework()
            .given(deleted_history())
            .when(ActivityCommand::SetWorkoutType(SetWorkoutType {
                athlete_id: athlete(),
                workout_type: WorkoutType::Easy,
            }))
            .then_expect_error(DomainError::Conflict("activity deleted".to_string()));
    }

    #[test]
    fn setting_the_workout_type_of_someone_elses_activity_is_not_found() {
        framework()
            .given(history())
            .when(ActivityCommand::SetWorkoutType(SetWorkoutType {
                athlete_id: stranger(),
                workout_type: WorkoutType::Easy,
            }))
            .then_expect_error(NOT_FOUND);
    }

    // ----- MarkAsRace -----

    fn mark() -> MarkAsRace {
        MarkAsRace {
            athlete_id: athlete(),
            race_name: Some("Paris 10k".to_string()),
            official_distance_m: Some(10_000.0),
            official_time_s: Some(2_871.0),
        }
    }

    #[test]
    fn marks_as_race_with_official_result() {
        framework()
            .given(history())
            .when(ActivityCommand::MarkAsRace(mark()))
            .then_expect_events(vec![ActivityEvent::MarkedAsRace(MarkedAsRace {
                race_name: Some("Paris 10k".to_string()),
                official_distance_m: Some(10_000.0),
                official_time_s: Some(2_871.0),
            })]);
    }

    #[test]
    fn marks_as_race_without_details() {
        framework()
            .given(history())
            .when(ActivityCommand::MarkAsRace(MarkAsRace {
                race_name: None,
                official_distance_m: None,
                official_time_s: None,
                ..mark()
            }))
            .then_expect_events(vec![ActivityEvent::MarkedAsRace(MarkedAsRace {
                race_name: None,
                official_distance_m: None,
                official_time_s: None,
            })]);
    }

    #[test]
    fn a_negative_official_time_is_invalid() {
        let result = framework()
            .given(history())
            .when(ActivityCommand::MarkAsRace(MarkAsRace {
                official_time_s: Some(-5.0),
                ..mark()
            }))
            .inspect_result();
        assert_eq!(invalid_field(result), "official_time_s");
    }

    #[test]
    fn marking_a_missing_activity_is_not_found() {
        framework()
            .given_no_previous_events()
            .when(ActivityCommand::MarkAsRace(mark()))
            .then_expect_error(NOT_FOUND);
    }

    // ----- RecordPerceivedEffort -----

    #[test]
    fn records_perceived_effort() {
        framework()
            .given(history())
            .when(ActivityCommand::RecordPerceivedEffort(effort()))
            .then_expect_events(vec![ActivityEvent::PerceivedEffortRecorded(
                PerceivedEffortRecorded {
                    effort: 6,
                    leg_feel: Some(4),
                    mood_before: Some(3),
                    mood_after: Some(4),
                    energy_before: Some(3),
                    energy_after: Some(2),
                    notes: Some("Negative split, felt controlled".to_string()),
                },
            )]);
    }

    #[test]
    fn removing_an_effort_is_idempotent() {
        let remove = || {
            ActivityCommand::RemovePerceivedEffort(RemovePerceivedEffort {
                athlete_id: athlete(),
            })
        };
        framework()
            .given(history())
            .when(remove())
            .then_expect_events(vec![]);
        let mut rated = history();
        rated.push(ActivityEvent::PerceivedEffortRecorded(
            PerceivedEffortRecorded {
                effort: 6,
                leg_feel: None,
                mood_before: None,
                mood_after: None,
                energy_before: None,
                energy_after: None,
                notes: None,
            },
        ));
        framework()
            .given(rated)
            .when(remove())
            .then_expect_events(vec![ActivityEvent::PerceivedEffortRemoved(
                PerceivedEffortRemoved { at: now() },
            )]);
    }

    #[test]
    fn effort_scales_are_bounded() {
        let refused = |command: RecordPerceivedEffort| {
            invalid_field(
                framework()
                    .given(history())
                    .when(ActivityCommand::RecordPerceivedEffort(command))
                    .inspect_result(),
            )
        };
        assert_eq!(
            refused(RecordPerceivedEffort {
                effort: 0,
                ..effort()
            }),
            "effort"
        );
        assert_eq!(
            refused(RecordPerceivedEffort {
                effort: 11,
                ..effort()
            }),
            "effort"
        );
        assert_eq!(
            refused(RecordPerceivedEffort {
                leg_feel: Some(0),
                ..effort()
            }),
            "leg_feel"
        );
        assert_eq!(
            refused(RecordPerceivedEffort {
                energy_after: Some(6),
                ..effort()
            }),
            "energy_after"
        );
        assert_eq!(
            refused(RecordPerceivedEffort {
                notes: Some("x".repeat(2001)),
                ..effort()
            }),
            "notes"
        );
        let at_bounds = RecordPerceivedEffort {
            effort: 10,
            leg_feel: Some(1),
            mood_before: Some(5),
            notes: Some("x".repeat(2000)),
            ..effort()
        };
        assert!(
            framework()
                .given(history())
                .when(ActivityCommand::RecordPerceivedEffort(at_bounds))
                .inspect_result()
                .is_ok()
        );
    }

    #[test]
    fn effort_for_someone_elses_activity_is_not_found() {
        framework()
            .given(history())
            .when(ActivityCommand::RecordPerceivedEffort(
                RecordPerceivedEffort {
                    athlete_id: stranger(),
                    ..effort()
                },
            ))
            .then_expect_error(NOT_FOUND);
    }

    // ----- state -----

    #[test]
    fn state_survives_a_snapshot_round_trip() {
        let mut activity = Activity::default();
        for event in deleted_history() {
            activity.apply(event);
        }
        let json = serde_json::to_value(&activity).unwrap();
        let back: Activity = serde_json::from_value(json).unwrap();
        assert_eq!(back, activity);
        assert!(back.deleted);
        assert_eq!(back.owner, Some(athlete()));
    }

    #[test]
    fn command_reports_its_athlete() {
        let command = ActivityCommand::DeleteActivity(DeleteActivity {
            athlete_id: stranger(),
        });
        assert_eq!(command.athlete_id(), stranger());
    }
}

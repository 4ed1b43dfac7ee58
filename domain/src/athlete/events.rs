//! The athlete's events (docs/events.md), each versioned.

use super::*;
use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::patch::Change;
use crate::{CataloguedEvent, EventSchema};

const fn schema(event_type: &'static str, version: &'static str, personal: bool) -> EventSchema {
    EventSchema {
        aggregate_type: <Athlete as Aggregate>::TYPE,
        event_type,
        version,
        personal,
    }
}

/// An account exists. `email` is stored trimmed and lowercased: the original stored it as typed
/// and lowercased at login, which locked out mixed-case addresses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AthleteRegistered {
    pub athlete_id: Uuid,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub registered_at: DateTime<Utc>,
}

impl AthleteRegistered {
    pub const SCHEMA: EventSchema = schema("AthleteRegistered", "1.0", true);
}

/// The profile's full new state (not a patch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileUpdated {
    pub display_name: String,
    pub email: String,
    pub goals: BTreeSet<TrainingGoal>,
    pub at: DateTime<Utc>,
}

impl ProfileUpdated {
    pub const SCHEMA: EventSchema = schema("ProfileUpdated", "1.0", true);
}

/// The preferences' full new state. Before the first one: metric, "UTC", no notifications,
/// digest off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreferencesChanged {
    pub units: Units,
    /// IANA name such as "Europe/Paris"; decides where the athlete's days start and end.
    pub timezone: String,
    pub notifications: NotificationChoices,
    pub digest: Digest,
    pub at: DateTime<Utc>,
}

impl PreferencesChanged {
    pub const SCHEMA: EventSchema = schema("PreferencesChanged", "1.0", true);
}

/// The physiology's full new set; a field left `None` is now unknown, not unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhysiologyChanged {
    pub hr_max_bpm: Option<u16>,
    pub resting_hr_bpm: Option<u16>,
    pub threshold_hr_bpm: Option<u16>,
    pub threshold_pace_s_per_km: Option<f64>,
    pub sex: Option<Sex>,
    pub birth_date: Option<NaiveDate>,
    pub height_cm: Option<f64>,
    pub at: DateTime<Utc>,
}

impl PhysiologyChanged {
    pub const SCHEMA: EventSchema = schema("PhysiologyChanged", "1.0", true);

    pub fn of(p: Physiology, at: DateTime<Utc>) -> Self {
        Self {
            hr_max_bpm: p.hr_max_bpm,
            resting_hr_bpm: p.resting_hr_bpm,
            threshold_hr_bpm: p.threshold_hr_bpm,
            threshold_pace_s_per_km: p.threshold_pace_s_per_km,
            sex: p.sex,
            birth_date: p.birth_date,
            height_cm: p.height_cm,
            at,
        }
    }

    pub fn physiology(&self) -> Physiology {
        Physiology {
            hr_max_bpm: self.hr_max_bpm,
            resting_hr_bpm: self.resting_hr_bpm,
            threshold_hr_bpm: self.threshold_hr_bpm,
            threshold_pace_s_per_km: self.threshold_pace_s_per_km,
            sex: self.sex,
            birth_date: self.birth_date,
            height_cm: self.height_cm,
        }
    }
}

/// Where the athlete is in the onboarding wizard. `completed` excludes skipped steps, so
/// "finished onboarding" (`reached` = complete) and "filled everything in" stay distinct.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnboardingProgressed {
    pub reached: OnboardingStep,
    pub completed: BTreeSet<OnboardingStep>,
    pub at: DateTime<Utc>,
}

impl OnboardingProgressed {
    pub const SCHEMA: EventSchema = schema("OnboardingProgressed", "1.0", true);
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleChanged {
    pub from: Role,
    pub to: Role,
    pub changed_by: Uuid,
    pub at: DateTime<Utc>,
}

impl RoleChanged {
    pub const SCHEMA: EventSchema = schema("RoleChanged", "1.0", true);
}

/// A coach may now read (or read and write) this athlete's data. A later grant to the same coach
/// replaces the scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoachAccessGranted {
    pub coach_id: Uuid,
    pub scope: CoachAccessScope,
    pub granted_at: DateTime<Utc>,
}

impl CoachAccessGranted {
    pub const SCHEMA: EventSchema = schema("CoachAccessGranted", "1.0", true);
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoachAccessRevoked {
    pub coach_id: Uuid,
    pub at: DateTime<Utc>,
}

impl CoachAccessRevoked {
    pub const SCHEMA: EventSchema = schema("CoachAccessRevoked", "1.0", true);
}

/// A reusable nutrition entry ("usual gel", "recovery shake"). Saving an existing `preset_id`
/// replaces that preset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NutritionPresetSaved {
    pub preset_id: Uuid,
    pub name: String,
    pub calories_kcal: Option<f64>,
    pub protein_g: Option<f64>,
    pub carbohydrate_g: Option<f64>,
    pub fat_g: Option<f64>,
    pub fibre_g: Option<f64>,
    pub caffeine_mg: Option<f64>,
    pub at: DateTime<Utc>,
}

impl NutritionPresetSaved {
    pub const SCHEMA: EventSchema = schema("NutritionPresetSaved", "1.0", true);

    pub fn of(preset_id: Uuid, name: String, n: Nutrients, at: DateTime<Utc>) -> Self {
        Self {
            preset_id,
            name,
            calories_kcal: n.calories_kcal,
            protein_g: n.protein_g,
            carbohydrate_g: n.carbohydrate_g,
            fat_g: n.fat_g,
            fibre_g: n.fibre_g,
            caffeine_mg: n.caffeine_mg,
            at,
        }
    }

    pub fn nutrients(&self) -> Nutrients {
        Nutrients {
            calories_kcal: self.calories_kcal,
            protein_g: self.protein_g,
            carbohydrate_g: self.carbohydrate_g,
            fat_g: self.fat_g,
            fibre_g: self.fibre_g,
            caffeine_mg: self.caffeine_mg,
        }
    }
}

/// The whole weekly grid; it replaces the previous one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingAvailabilitySet {
    pub availability: WeeklyAvailability,
    pub at: DateTime<Utc>,
}

impl TrainingAvailabilitySet {
    pub const SCHEMA: EventSchema = schema("TrainingAvailabilitySet", "1.0", true);
}

/// The athlete's key is to be destroyed. Not personal, so it stays readable afterwards and keeps
/// the stream closed on replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AthleteErased {
    pub erased_at: DateTime<Utc>,
    pub requested_by: Uuid,
    pub reason: ErasureReason,
}

impl AthleteErased {
    pub const SCHEMA: EventSchema = schema("AthleteErased", "1.0", false);
}

/// Audit marker: an admin appended events to this athlete's history (a repair or an import).
/// Ids, codes and counts only, so it survives erasure as an audit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminDataInjected {
    pub admin_id: Uuid,
    /// Short snake_case code such as "strava_backfill"; never free text.
    pub reason: String,
    pub event_types: BTreeSet<String>,
    pub event_count: u32,
    pub at: DateTime<Utc>,
}

impl AdminDataInjected {
    pub const SCHEMA: EventSchema = schema("AdminDataInjected", "1.0", false);
}

/// Audit marker: an admin acts as this athlete until `expires_at` or an `ImpersonationEnded`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImpersonationStarted {
    pub admin_id: Uuid,
    pub session_id: Uuid,
    /// Short snake_case code such as "support_ticket"; never free text.
    pub reason: String,
    pub expires_at: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

impl ImpersonationStarted {
    pub const SCHEMA: EventSchema = schema("ImpersonationStarted", "1.0", false);
}

/// Audit marker. `admin_id` is whoever ended the session, which may differ from the admin who
/// started it (revocation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImpersonationEnded {
    pub admin_id: Uuid,
    pub session_id: Uuid,
    pub at: DateTime<Utc>,
}

impl ImpersonationEnded {
    pub const SCHEMA: EventSchema = schema("ImpersonationEnded", "1.0", false);
}

/// Everything the athlete stream carries. Internally tagged: a stored payload is
/// `{"type":"AthleteRegistered", ...fields}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum AthleteEvent {
    AthleteRegistered(AthleteRegistered),
    ProfileUpdated(ProfileUpdated),
    PreferencesChanged(PreferencesChanged),
    PhysiologyChanged(PhysiologyChanged),
    OnboardingProgressed(OnboardingProgressed),
    RoleChanged(RoleChanged),
    CoachAccessGranted(CoachAccessGranted),
    CoachAccessRevoked(CoachAccessRevoked),
    NutritionPresetSaved(NutritionPresetSaved),
    TrainingAvailabilitySet(TrainingAvailabilitySet),
    AthleteErased(AthleteErased),
    AdminDataInjected(AdminDataInjected),
    ImpersonationStarted(ImpersonationStarted),
    ImpersonationEnded(ImpersonationEnded),
}

/// A block of a day in the weekly availability grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DayBlock {
    Morning,
    Afternoon,
    Evening,
}

impl WeeklyAvailability {
    pub fn slot_mut(&mut self, day: Weekday, block: DayBlock) -> &mut SlotStatus {
        let d = match day {
            Weekday::Monday => &mut self.monday,
            Weekday::Tuesday => &mut self.tuesday,
            Weekday::Wednesday => &mut self.wednesday,
            Weekday::Thursday => &mut self.thursday,
            Weekday::Friday => &mut self.friday,
            Weekday::Saturday => &mut self.saturday,
            Weekday::Sunday => &mut self.sunday,
        };
        match block {
            DayBlock::Morning => &mut d.morning,
            DayBlock::Afternoon => &mut d.afternoon,
            DayBlock::Evening => &mut d.evening,
        }
    }
}

/// A partial update of profile, preferences and physiology: `None` (or [`Change::Keep`]) keeps
/// the current value. The aggregate merges it into its own state, so the events it produces
/// still carry whole new states (`ProfileUpdated`, `PreferencesChanged`, `PhysiologyChanged`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProfilePatch {
    pub display_name: Option<String>,
    pub goals: Option<BTreeSet<TrainingGoal>>,
    pub units: Option<Units>,
    pub timezone: Option<String>,
    pub notifications: Option<NotificationChoices>,
    pub digest: Option<Digest>,
    pub physiology: PhysiologyPatch,
}

/// Per physiology field: keep, clear (now unknown) or set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PhysiologyPatch {
    pub hr_max_bpm: Change<u16>,
    pub resting_hr_bpm: Change<u16>,
    pub threshold_hr_bpm: Change<u16>,
    pub threshold_pace_s_per_km: Change<f64>,
    pub sex: Change<Sex>,
    pub birth_date: Change<NaiveDate>,
    pub height_cm: Change<f64>,
}

impl PhysiologyPatch {
    pub fn is_empty(&self) -> bool {
        *self == PhysiologyPatch::default()
    }

    pub fn apply(self, p: Physiology) -> Physiology {
        Physiology {
            hr_max_bpm: self.hr_max_bpm.apply(p.hr_max_bpm),
            resting_hr_bpm: self.resting_hr_bpm.apply(p.resting_hr_bpm),
            threshold_hr_bpm: self.threshold_hr_bpm.apply(p.threshold_hr_bpm),
            threshold_pace_s_per_km: self
                .threshold_pace_s_per_km
                .apply(p.threshold_pace_s_per_km),
            sex: self.sex.apply(p.sex),
            birth_date: self.birth_date.apply(p.birth_date),
            height_cm: self.height_cm.apply(p.height_cm),
        }
    }
}

/// Every athlete event type, in the order of [`AthleteEvent`].
pub const CATALOGUE: &[EventSchema] = &[
    AthleteRegistered::SCHEMA,
    ProfileUpdated::SCHEMA,
    PreferencesChanged::SCHEMA,
    PhysiologyChanged::SCHEMA,
    OnboardingProgressed::SCHEMA,
    RoleChanged::SCHEMA,
    CoachAccessGranted::SCHEMA,
    CoachAccessRevoked::SCHEMA,
    NutritionPresetSaved::SCHEMA,
    TrainingAvailabilitySet::SCHEMA,
    AthleteErased::SCHEMA,
    AdminDataInjected::SCHEMA,
    ImpersonationStarted::SCHEMA,
    ImpersonationEnded::SCHEMA,
];

impl AthleteEvent {
    /// This event's catalogue row; the single place its name, version and personal flag live.
    pub fn schema(&self) -> EventSchema {
        match self {
            AthleteEvent::AthleteRegistered(_) => AthleteRegistered::SCHEMA,
            AthleteEvent::ProfileUpdated(_) => ProfileUpdated::SCHEMA,
            AthleteEvent::PreferencesChanged(_) => PreferencesChanged::SCHEMA,
            AthleteEvent::PhysiologyChanged(_) => PhysiologyChanged::SCHEMA,
            AthleteEvent::OnboardingProgressed(_) => OnboardingProgressed::SCHEMA,
            AthleteEvent::RoleChanged(_) => RoleChanged::SCHEMA,
            AthleteEvent::CoachAccessGranted(_) => CoachAccessGranted::SCHEMA,
            AthleteEvent::CoachAccessRevoked(_) => CoachAccessRevoked::SCHEMA,
            AthleteEvent::NutritionPresetSaved(_) => NutritionPresetSaved::SCHEMA,
            AthleteEvent::TrainingAvailabilitySet(_) => TrainingAvailabilitySet::SCHEMA,
            AthleteEvent::AthleteErased(_) => AthleteErased::SCHEMA,
            AthleteEvent::AdminDataInjected(_) => AdminDataInjected::SCHEMA,
            AthleteEvent::ImpersonationStarted(_) => ImpersonationStarted::SCHEMA,
            AthleteEvent::ImpersonationEnded(_) => ImpersonationEnded::SCHEMA,
        }
    }
}

impl DomainEvent for AthleteEvent {
    fn event_type(&self) -> String {
        self.schema().event_type.to_string()
    }

    fn event_version(&self) -> String {
        self.schema().version.to_string()
    }
}

impl CataloguedEvent for AthleteEvent {
    fn is_personal(&self) -> bool {
        self.schema().personal
    }

    fn is_erasure(&self) -> bool {
        matches!(self, AthleteEvent::AthleteErased(_))
    }
}

//! The athlete aggregate: identity, profile, settings, coach access, and the audit markers that
//! administrators leave on an athlete's history. The aggregate id is the athlete's UUID as a string.
//!
//! Decisions about identity, roles, coach access and impersonation use ids and flags only: after
//! erasure the personal events can no longer be decrypted, and those decisions must not depend on
//! which events were readable. The aggregate also keeps the profile's current values (personal),
//! because a partial update (`PATCH`) is merged here, against the stream it appends to, rather
//! than against a read model that may lag (docs/decisions.md, "PATCH is decided on the write
//! side"). Nothing stores this state: there are no snapshots (store/src/repository.rs refuses
//! them), and a snapshot added later would have to be sealed under the athlete's key like the
//! events. Erasure clears it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::patch::Change;
use crate::validation::{self, Checked, ValidationError};
use crate::{CataloguedEvent, DomainError, DomainServices, EventSchema};

// ---------------------------------------------------------------------------------------------
// Value types
// ---------------------------------------------------------------------------------------------

/// What an account may do. `Owner` is an admin who may also change other admins' roles; who may
/// act as an admin on whom is decided by the command layer, which sees both accounts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    Athlete,
    Coach,
    Admin,
    Owner,
}

/// Display units only: every stored quantity is metric whatever this says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Units {
    #[default]
    Metric,
    Imperial,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

/// Email notifications. All default to off: the original mailed everyone with no opt-out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationChoices {
    /// A new finding about the athlete's efficiency is available.
    pub new_insights: bool,
    /// Importing from a provider failed and needs the athlete (e.g. reconnecting Strava).
    pub sync_problems: bool,
    /// A coach with access left a comment.
    pub coach_messages: bool,
}

/// The insights digest. Opt-in, and delivered in the athlete's own timezone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "frequency", rename_all = "lowercase")]
pub enum Digest {
    #[default]
    Off,
    /// Every week on `weekday`.
    Weekly { weekday: Weekday },
    /// On the first `weekday` of each month, so it never lands on a day the athlete did not pick.
    Monthly { weekday: Weekday },
}

/// Sex as used by age-grading tables, which exist for these two categories only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Sex {
    Female,
    Male,
}

/// The physiology the analytics need (hrTSS, rTSS, HR zones, age grading). Every field is
/// optional: `None` means "not known", and a change always carries the whole new set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Physiology {
    pub hr_max_bpm: Option<u16>,
    pub resting_hr_bpm: Option<u16>,
    pub threshold_hr_bpm: Option<u16>,
    pub threshold_pace_s_per_km: Option<f64>,
    pub sex: Option<Sex>,
    pub birth_date: Option<NaiveDate>,
    pub height_cm: Option<f64>,
}

/// Onboarding wizard steps in the order the wizard shows them (the derived `Ord` relies on it).
/// Every step may be skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OnboardingStep {
    Initial,
    BasicProfile,
    Goals,
    ConnectStrava,
    NutritionSetup,
    WorkSetup,
    Complete,
}

/// Goals picked during onboarding. The original asked for them and then dropped them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TrainingGoal {
    ImproveEfficiency,
    RunFaster,
    LoseWeight,
    BuildEndurance,
    RacePerformance,
    GeneralFitness,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CoachAccessScope {
    ReadOnly,
    ReadWrite,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErasureReason {
    AthleteRequest,
    AdminAction,
}

/// Nutrient amounts of a preset. `None` = not part of the preset; `Some(0.0)` = explicitly none
/// (the original turned zeros into nulls).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Nutrients {
    pub calories_kcal: Option<f64>,
    pub protein_g: Option<f64>,
    pub carbohydrate_g: Option<f64>,
    pub fat_g: Option<f64>,
    pub fibre_g: Option<f64>,
    pub caffeine_mg: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SlotStatus {
    /// Can train then.
    Available,
    /// Can train and would rather train then; still counts as available.
    Preferred,
    #[default]
    Unavailable,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DayAvailability {
    pub morning: SlotStatus,
    pub afternoon: SlotStatus,
    pub evening: SlotStatus,
}

/// The whole 7 x 3 grid. Named fields rather than indices: the original numbered days from
/// Sunday = 0, and a fixed struct cannot have a missing or duplicated slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WeeklyAvailability {
    pub monday: DayAvailability,
    pub tuesday: DayAvailability,
    pub wednesday: DayAvailability,
    pub thursday: DayAvailability,
    pub friday: DayAvailability,
    pub saturday: DayAvailability,
    pub sunday: DayAvailability,
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

/// What can be asked of an athlete. Authorisation (who may change a role, impersonate, inject
/// data) needs other accounts and is checked by the command layer before these arrive; the
/// aggregate checks values and its own state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AthleteCommand {
    /// `athlete_id` must equal the aggregate id; the command layer builds both from one UUID.
    /// Email uniqueness across accounts is the command layer's check.
    Register {
        athlete_id: Uuid,
        email: String,
        display_name: String,
        role: Role,
    },
    /// Replaces the whole profile. A changed email must already be verified by the caller.
    UpdateProfile {
        display_name: String,
        email: String,
        goals: BTreeSet<TrainingGoal>,
    },
    ChangePreferences {
        units: Units,
        timezone: String,
        notifications: NotificationChoices,
        digest: Digest,
    },
    /// Replaces the whole physiology set.
    ChangePhysiology(Physiology),
    /// Merges a partial update into the current profile, preferences and physiology. Emits one
    /// event per part that changed, in one append; nothing when nothing changed.
    PatchProfile(ProfilePatch),
    /// Sets one slot of the weekly grid, keeping the others as they are now.
    SetAvailabilitySlot {
        day: Weekday,
        block: DayBlock,
        status: SlotStatus,
    },
    /// Going back to an earlier step is allowed until `Complete` has been reached. Sending the
    /// state already recorded is a no-op (no event).
    ProgressOnboarding {
        reached: OnboardingStep,
        completed: BTreeSet<OnboardingStep>,
    },
    /// One wizard step, completed or skipped, decided against the onboarding state in the
    /// stream (so two steps taken in quick succession both count). Goals given with a
    /// completed `Goals` step change the profile in the same append.
    TakeOnboardingStep {
        step: OnboardingStep,
        complete: bool,
        goals: Option<BTreeSet<TrainingGoal>>,
    },
    /// Changing to the current role is a no-op (no event).
    ChangeRole {
        to: Role,
        changed_by: Uuid,
    },
    /// Granting the scope a coach already has is a no-op (no event); a different scope replaces it.
    GrantCoachAccess {
        coach_id: Uuid,
        scope: CoachAccessScope,
    },
    RevokeCoachAccess {
        coach_id: Uuid,
    },
    SaveNutritionPreset {
        preset_id: Uuid,
        name: String,
        nutrients: Nutrients,
    },
    SetTrainingAvailability {
        availability: WeeklyAvailability,
    },
    Erase {
        requested_by: Uuid,
        reason: ErasureReason,
    },
    /// The admin tooling should send this alongside the injected events, so the marker and the data
    /// land together.
    RecordAdminDataInjection {
        admin_id: Uuid,
        reason: String,
        event_types: BTreeSet<String>,
        event_count: u32,
    },
    StartImpersonation {
        admin_id: Uuid,
        session_id: Uuid,
        reason: String,
        expires_at: DateTime<Utc>,
    },
    EndImpersonation {
        admin_id: Uuid,
        session_id: Uuid,
    },
}

// ---------------------------------------------------------------------------------------------
// Aggregate
// ---------------------------------------------------------------------------------------------

/// Impersonation sessions are short so a forgotten one closes itself (the original's lasted 30 days).
pub const MAX_IMPERSONATION: Duration = Duration::minutes(60);

/// Event types an admin may not inject: they would forge the account's identity or its audit trail.
const NOT_INJECTABLE: &[&str] = &[
    AthleteRegistered::SCHEMA.event_type,
    AthleteErased::SCHEMA.event_type,
    AdminDataInjected::SCHEMA.event_type,
    ImpersonationStarted::SCHEMA.event_type,
    ImpersonationEnded::SCHEMA.event_type,
];

const MAX_INJECTED_EVENTS: u32 = 100_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct OpenImpersonation {
    session_id: Uuid,
    expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Onboarding {
    reached: OnboardingStep,
    completed: BTreeSet<OnboardingStep>,
}

/// The current values partial updates are merged into: what the last registration, profile,
/// preferences, physiology and availability events said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Content {
    display_name: String,
    email: String,
    goals: BTreeSet<TrainingGoal>,
    units: Units,
    timezone: String,
    notifications: NotificationChoices,
    digest: Digest,
    physiology: Physiology,
    availability: WeeklyAvailability,
}

impl Default for Content {
    /// The documented state before the first `PreferencesChanged` (see that event).
    fn default() -> Self {
        Content {
            display_name: String::new(),
            email: String::new(),
            goals: BTreeSet::new(),
            units: Units::Metric,
            timezone: "UTC".into(),
            notifications: NotificationChoices::default(),
            digest: Digest::Off,
            physiology: Physiology::default(),
            availability: WeeklyAvailability::default(),
        }
    }
}

/// Decision state; see the module comment for what is personal in it and why.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Athlete {
    athlete_id: Option<Uuid>,
    role: Role,
    erased: bool,
    coaches: BTreeMap<Uuid, CoachAccessScope>,
    onboarding: Option<Onboarding>,
    impersonation: Option<OpenImpersonation>,
    content: Content,
}

impl Athlete {
    pub fn athlete_id(&self) -> Option<Uuid> {
        self.athlete_id
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn is_erased(&self) -> bool {
        self.erased
    }

    pub fn coach_scope(&self, coach_id: Uuid) -> Option<CoachAccessScope> {
        self.coaches.get(&coach_id).copied()
    }

    /// The events a command produces, in order; empty for a no-op.
    fn decide_all(
        &self,
        command: AthleteCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<AthleteEvent>, DomainError> {
        // Erasure is checked first: after it, replay may only see non-personal events, and the
        // answer must not depend on which ones were readable.
        if self.erased {
            return Err(DomainError::Conflict("athlete erased".into()));
        }
        let registering = matches!(command, AthleteCommand::Register { .. });
        match (registering, self.athlete_id) {
            (true, Some(_)) => {
                return Err(DomainError::Conflict("athlete already registered".into()));
            }
            (false, None) => return Err(DomainError::NotFound { what: "athlete" }),
            _ => {}
        }
        match command {
            AthleteCommand::PatchProfile(patch) => self.patch_profile(patch, now),
            AthleteCommand::TakeOnboardingStep {
                step,
                complete,
                goals,
            } => self.take_onboarding_step(step, complete, goals, now),
            other => Ok(self.decide(other, now)?.into_iter().collect()),
        }
    }

    fn take_onboarding_step(
        &self,
        step: OnboardingStep,
        complete: bool,
        goals: Option<BTreeSet<TrainingGoal>>,
        now: DateTime<Utc>,
    ) -> Result<Vec<AthleteEvent>, DomainError> {
        if step == OnboardingStep::Initial {
            return Err(invalid(
                "step",
                "`initial` is where the wizard starts; it cannot be completed or skipped",
            ));
        }
        if goals.is_some() && step != OnboardingStep::Goals {
            return Err(invalid(
                "goals",
                "goals are only taken with the `goals` step",
            ));
        }
        let (reached, mut completed) = self.onboarding_progress();
        if reached == OnboardingStep::Complete {
            return Err(DomainError::Conflict(
                "Onboarding is already complete.".into(),
            ));
        }
        if complete && step != OnboardingStep::Complete {
            completed.insert(step);
        }
        // Completing or skipping a step reaches the one after it (the derived order is the
        // wizard's), so the step itself is before `reached`.
        let reached = if step == OnboardingStep::Complete {
            OnboardingStep::Complete
        } else {
            reached.max(next_step(step))
        };
        let mut events = match goals.filter(|_| complete) {
            Some(goals) => self.patch_profile(
                ProfilePatch {
                    goals: Some(goals),
                    ..ProfilePatch::default()
                },
                now,
            )?,
            None => Vec::new(),
        };
        events.extend(self.decide(
            AthleteCommand::ProgressOnboarding { reached, completed },
            now,
        )?);
        Ok(events)
    }

    /// The step reached and the steps completed; `Initial` and none before the first step.
    pub fn onboarding_progress(&self) -> (OnboardingStep, BTreeSet<OnboardingStep>) {
        self.onboarding
            .as_ref()
            .map(|o| (o.reached, o.completed.clone()))
            .unwrap_or((OnboardingStep::Initial, BTreeSet::new()))
    }

    pub fn goals(&self) -> &BTreeSet<TrainingGoal> {
        &self.content.goals
    }

    /// Merges `patch` into the current values and validates the result as a whole (a resting
    /// HR set alone must still sit below the maximum already recorded).
    fn patch_profile(
        &self,
        patch: ProfilePatch,
        now: DateTime<Utc>,
    ) -> Result<Vec<AthleteEvent>, DomainError> {
        let c = &self.content;
        let mut events = Vec::new();
        if patch.display_name.is_some() || patch.goals.is_some() {
            let display_name = match patch.display_name {
                Some(name) => check_name("display_name", &name)?,
                None => c.display_name.clone(),
            };
            let goals = patch.goals.unwrap_or_else(|| c.goals.clone());
            if display_name != c.display_name || goals != c.goals {
                events.push(AthleteEvent::ProfileUpdated(ProfileUpdated {
                    display_name,
                    email: c.email.clone(),
                    goals,
                    at: now,
                }));
            }
        }
        let preferences = patch.units.is_some()
            || patch.timezone.is_some()
            || patch.notifications.is_some()
            || patch.digest.is_some();
        if preferences {
            let timezone = patch.timezone.unwrap_or_else(|| c.timezone.clone());
            check_timezone(&timezone)?;
            let next = PreferencesChanged {
                units: patch.units.unwrap_or(c.units),
                timezone,
                notifications: patch.notifications.unwrap_or(c.notifications),
                digest: patch.digest.unwrap_or(c.digest),
                at: now,
            };
            let same = next.units == c.units
                && next.timezone == c.timezone
                && next.notifications == c.notifications
                && next.digest == c.digest;
            if !same {
                events.push(AthleteEvent::PreferencesChanged(next));
            }
        }
        if !patch.physiology.is_empty() {
            let p = patch.physiology.apply(c.physiology);
            check_physiology(&p, now)?;
            if p != c.physiology {
                events.push(AthleteEvent::PhysiologyChanged(PhysiologyChanged {
                    hr_max_bpm: p.hr_max_bpm,
                    resting_hr_bpm: p.resting_hr_bpm,
                    threshold_hr_bpm: p.threshold_hr_bpm,
                    threshold_pace_s_per_km: p.threshold_pace_s_per_km,
                    sex: p.sex,
                    birth_date: p.birth_date,
                    height_cm: p.height_cm,
                    at: now,
                }));
            }
        }
        Ok(events)
    }

    /// The single event a command produces, `None` for a no-op. Called by
    /// [`Athlete::decide_all`] after the erasure and registration checks.
    fn decide(
        &self,
        command: AthleteCommand,
        now: DateTime<Utc>,
    ) -> Result<Option<AthleteEvent>, DomainError> {
        let event = match command {
            AthleteCommand::Register {
                athlete_id,
                email,
                display_name,
                role,
            } => {
                if athlete_id.is_nil() {
                    return Err(invalid("athlete_id", "must not be the nil UUID"));
                }
                AthleteEvent::AthleteRegistered(AthleteRegistered {
                    athlete_id,
                    email: check_email(&email)?,
                    display_name: check_name("display_name", &display_name)?,
                    role,
                    registered_at: now,
                })
            }
            AthleteCommand::UpdateProfile {
                display_name,
                email,
                goals,
            } => AthleteEvent::ProfileUpdated(ProfileUpdated {
                display_name: check_name("display_name", &display_name)?,
                email: check_email(&email)?,
                goals,
                at: now,
            }),
            AthleteCommand::ChangePreferences {
                units,
                timezone,
                notifications,
                digest,
            } => {
                check_timezone(&timezone)?;
                AthleteEvent::PreferencesChanged(PreferencesChanged {
                    units,
                    timezone,
                    notifications,
                    digest,
                    at: now,
                })
            }
            AthleteCommand::ChangePhysiology(p) => {
                check_physiology(&p, now)?;
                AthleteEvent::PhysiologyChanged(PhysiologyChanged {
                    hr_max_bpm: p.hr_max_bpm,
                    resting_hr_bpm: p.resting_hr_bpm,
                    threshold_hr_bpm: p.threshold_hr_bpm,
                    threshold_pace_s_per_km: p.threshold_pace_s_per_km,
                    sex: p.sex,
                    birth_date: p.birth_date,
                    height_cm: p.height_cm,
                    at: now,
                })
            }
            AthleteCommand::ProgressOnboarding { reached, completed } => {
                if let Some(late) = completed.iter().find(|step| **step >= reached) {
                    return Err(invalid(
                        "completed",
                        format!(
                            "step {late:?} cannot be completed before reaching it ({reached:?})"
                        ),
                    ));
                }
                if let Some(current) = &self.onboarding {
                    if current.reached == reached && current.completed == completed {
                        return Ok(None);
                    }
                    if current.reached == OnboardingStep::Complete {
                        return Err(DomainError::Conflict("onboarding already complete".into()));
                    }
                }
                AthleteEvent::OnboardingProgressed(OnboardingProgressed {
                    reached,
                    completed,
                    at: now,
                })
            }
            AthleteCommand::ChangeRole { to, changed_by } => {
                if to == self.role {
                    return Ok(None);
                }
                AthleteEvent::RoleChanged(RoleChanged {
                    from: self.role,
                    to,
                    changed_by,
                    at: now,
                })
            }
            AthleteCommand::GrantCoachAccess { coach_id, scope } => {
                if Some(coach_id) == self.athlete_id {
                    return Err(invalid("coach_id", "an athlete cannot coach themselves"));
                }
                if self.coaches.get(&coach_id) == Some(&scope) {
                    return Ok(None);
                }
                AthleteEvent::CoachAccessGranted(CoachAccessGranted {
                    coach_id,
                    scope,
                    granted_at: now,
                })
            }
            AthleteCommand::RevokeCoachAccess { coach_id } => {
                if !self.coaches.contains_key(&coach_id) {
                    return Err(DomainError::Conflict(format!(
                        "coach {coach_id} has no access to revoke"
                    )));
                }
                AthleteEvent::CoachAccessRevoked(CoachAccessRevoked { coach_id, at: now })
            }
            AthleteCommand::SaveNutritionPreset {
                preset_id,
                name,
                nutrients: n,
            } => {
                check_nutrients(&n)?;
                AthleteEvent::NutritionPresetSaved(NutritionPresetSaved {
                    preset_id,
                    name: check_name("name", &name)?,
                    calories_kcal: n.calories_kcal,
                    protein_g: n.protein_g,
                    carbohydrate_g: n.carbohydrate_g,
                    fat_g: n.fat_g,
                    fibre_g: n.fibre_g,
                    caffeine_mg: n.caffeine_mg,
                    at: now,
                })
            }
            AthleteCommand::SetTrainingAvailability { availability } => {
                AthleteEvent::TrainingAvailabilitySet(TrainingAvailabilitySet {
                    availability,
                    at: now,
                })
            }
            AthleteCommand::SetAvailabilitySlot { day, block, status } => {
                let mut availability = self.content.availability;
                *availability.slot_mut(day, block) = status;
                AthleteEvent::TrainingAvailabilitySet(TrainingAvailabilitySet {
                    availability,
                    at: now,
                })
            }
            AthleteCommand::PatchProfile(_) | AthleteCommand::TakeOnboardingStep { .. } => {
                unreachable!("decide_all decides these itself")
            }
            AthleteCommand::Erase {
                requested_by,
                reason,
            } => AthleteEvent::AthleteErased(AthleteErased {
                erased_at: now,
                requested_by,
                reason,
            }),
            AthleteCommand::RecordAdminDataInjection {
                admin_id,
                reason,
                event_types,
                event_count,
            } => {
                check_reason_code(&reason)?;
                check_injected_types(&event_types)?;
                let min_count = u32::try_from(event_types.len()).unwrap_or(u32::MAX);
                if event_count < min_count || event_count > MAX_INJECTED_EVENTS {
                    return Err(invalid(
                        "event_count",
                        format!(
                            "must be between {min_count} (one per event type) and \
                             {MAX_INJECTED_EVENTS}, got {event_count}"
                        ),
                    ));
                }
                AthleteEvent::AdminDataInjected(AdminDataInjected {
                    admin_id,
                    reason,
                    event_types,
                    event_count,
                    at: now,
                })
            }
            AthleteCommand::StartImpersonation {
                admin_id,
                session_id,
                reason,
                expires_at,
            } => {
                if Some(admin_id) == self.athlete_id {
                    return Err(invalid(
                        "admin_id",
                        "an admin cannot impersonate themselves",
                    ));
                }
                check_reason_code(&reason)?;
                if expires_at <= now || expires_at > now + MAX_IMPERSONATION {
                    return Err(invalid(
                        "expires_at",
                        format!(
                            "must be after now and at most {} minutes ahead",
                            MAX_IMPERSONATION.num_minutes()
                        ),
                    ));
                }
                // An expired session that nobody ended is over; only a live one blocks a new one.
                if let Some(open) = &self.impersonation
                    && open.expires_at > now
                {
                    return Err(DomainError::Conflict(format!(
                        "impersonation session {} is active until {}",
                        open.session_id,
                        open.expires_at.to_rfc3339()
                    )));
                }
                AthleteEvent::ImpersonationStarted(ImpersonationStarted {
                    admin_id,
                    session_id,
                    reason,
                    expires_at,
                    at: now,
                })
            }
            AthleteCommand::EndImpersonation {
                admin_id,
                session_id,
            } => {
                // Ending an expired but unended session is allowed: it closes the audit record.
                if self.impersonation.as_ref().map(|open| open.session_id) != Some(session_id) {
                    return Err(DomainError::Conflict(format!(
                        "impersonation session {session_id} is not active"
                    )));
                }
                AthleteEvent::ImpersonationEnded(ImpersonationEnded {
                    admin_id,
                    session_id,
                    at: now,
                })
            }
        };
        Ok(Some(event))
    }
}

impl Aggregate for Athlete {
    const TYPE: &'static str = "athlete";
    type Command = AthleteCommand;
    type Event = AthleteEvent;
    type Error = DomainError;
    type Services = DomainServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide_all(command, services.now())? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            AthleteEvent::AthleteRegistered(e) => {
                self.athlete_id = Some(e.athlete_id);
                self.role = e.role;
                self.content.display_name = e.display_name;
                self.content.email = e.email;
            }
            AthleteEvent::ProfileUpdated(e) => {
                self.content.display_name = e.display_name;
                self.content.email = e.email;
                self.content.goals = e.goals;
            }
            AthleteEvent::PreferencesChanged(e) => {
                self.content.units = e.units;
                self.content.timezone = e.timezone;
                self.content.notifications = e.notifications;
                self.content.digest = e.digest;
            }
            AthleteEvent::PhysiologyChanged(e) => self.content.physiology = e.physiology(),
            AthleteEvent::TrainingAvailabilitySet(e) => {
                self.content.availability = e.availability;
            }
            AthleteEvent::OnboardingProgressed(e) => {
                self.onboarding = Some(Onboarding {
                    reached: e.reached,
                    completed: e.completed,
                });
            }
            AthleteEvent::RoleChanged(e) => self.role = e.to,
            AthleteEvent::CoachAccessGranted(e) => {
                self.coaches.insert(e.coach_id, e.scope);
            }
            AthleteEvent::CoachAccessRevoked(e) => {
                self.coaches.remove(&e.coach_id);
            }
            AthleteEvent::AthleteErased(_) => {
                // Must not depend on earlier events: after erasure they may be unreadable.
                *self = Athlete {
                    athlete_id: self.athlete_id,
                    erased: true,
                    ..Athlete::default()
                };
            }
            AthleteEvent::ImpersonationStarted(e) => {
                self.impersonation = Some(OpenImpersonation {
                    session_id: e.session_id,
                    expires_at: e.expires_at,
                });
            }
            AthleteEvent::ImpersonationEnded(_) => self.impersonation = None,
            // Content the aggregate never decides on; projections read it.
            AthleteEvent::NutritionPresetSaved(_) | AthleteEvent::AdminDataInjected(_) => {}
        }
    }
}

/// The wizard step after `step`, in the wizard's order; `Complete` after the last.
fn next_step(step: OnboardingStep) -> OnboardingStep {
    use OnboardingStep::*;
    [
        BasicProfile,
        Goals,
        ConnectStrava,
        NutritionSetup,
        WorkSetup,
        Complete,
    ]
    .into_iter()
    .find(|s| *s > step)
    .unwrap_or(Complete)
}

// ---------------------------------------------------------------------------------------------
// Validation specific to athletes
// ---------------------------------------------------------------------------------------------

fn invalid(field: &'static str, problem: impl Into<String>) -> DomainError {
    DomainError::Invalid(ValidationError::new(field, problem))
}

/// A shape check, not deliverability: the address is proven by the verification mail.
/// Returns the canonical (trimmed, lowercased) form.
pub fn check_email(value: &str) -> Checked<String> {
    let email = value.trim().to_lowercase();
    let chars = email.chars().count();
    if chars > 254 {
        return Err(ValidationError::new(
            "email",
            format!("must be at most 254 characters, got {chars}"),
        ));
    }
    if email.chars().any(char::is_whitespace) {
        return Err(ValidationError::new("email", "must not contain spaces"));
    }
    validation::refuse_unstorable("email", &email, false)?;
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
        {
            Ok(email)
        }
        _ => Err(ValidationError::new(
            "email",
            "must contain exactly one @ with text on both sides",
        )),
    }
}

/// Names are shown in lists and emails: 1-100 characters after trimming, one line, nothing
/// [`validation::text`] refuses.
/// Returns the trimmed form.
pub fn check_name(field: &'static str, value: &str) -> Checked<String> {
    let name = value.trim();
    let chars = name.chars().count();
    if !(1..=100).contains(&chars) {
        return Err(ValidationError::new(
            field,
            format!("must be 1-100 characters, got {chars}"),
        ));
    }
    // One line: no tabs or line breaks either.
    validation::refuse_unstorable(field, name, false)?;
    Ok(name.to_string())
}

/// IANA areas. A zone is "UTC" or `Area/Location[/Sublocation]` with one of these areas (the
/// shape the API's schema states) and must be known to the IANA database. Legacy aliases
/// ("US/Pacific", "EST5EDT") are refused so the schema and this check agree.
const TZ_AREAS: &[&str] = &[
    "Africa",
    "America",
    "Antarctica",
    "Arctic",
    "Asia",
    "Atlantic",
    "Australia",
    "Europe",
    "Indian",
    "Pacific",
    "Etc",
];

pub fn check_timezone(value: &str) -> Checked {
    if value == "UTC" {
        return Ok(());
    }
    let segments: Vec<&str> = value.split('/').collect();
    let location_ok = |s: &&str| {
        s.starts_with(|c: char| c.is_ascii_uppercase())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'))
    };
    let well_formed = value.len() <= 64
        && (2..=3).contains(&segments.len())
        && TZ_AREAS.contains(&segments[0])
        && segments[1..].iter().all(location_ok);
    if well_formed && crate::time::zone(value).is_some() {
        Ok(())
    } else {
        Err(ValidationError::new(
            "timezone",
            format!("must be \"UTC\" or an IANA name such as \"Europe/Paris\", got {value:?}"),
        ))
    }
}

/// Reason codes stand in for free text on audit markers, which must stay free of personal data.
fn check_reason_code(value: &str) -> Checked {
    let well_formed = (1..=40).contains(&value.len())
        && value.starts_with(|c: char| c.is_ascii_lowercase())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if well_formed {
        Ok(())
    } else {
        Err(ValidationError::new(
            "reason",
            format!("must be a snake_case code of at most 40 characters, got {value:?}"),
        ))
    }
}

fn check_injected_types(event_types: &BTreeSet<String>) -> Checked {
    if event_types.is_empty() {
        return Err(ValidationError::new(
            "event_types",
            "must name at least one event type",
        ));
    }
    let known = crate::catalogue::all();
    for event_type in event_types {
        if NOT_INJECTABLE.contains(&event_type.as_str()) {
            return Err(ValidationError::new(
                "event_types",
                format!("{event_type} cannot be injected by an admin"),
            ));
        }
        if !known.iter().any(|s| s.event_type == event_type) {
            return Err(ValidationError::new(
                "event_types",
                format!("{event_type} is not a known event type"),
            ));
        }
    }
    Ok(())
}

/// Threshold pace bounds: 2:00/km is faster than any human threshold, 20:00/km is a walk.
const THRESHOLD_PACE_S_PER_KM: (f64, f64) = (120.0, 1200.0);

fn check_physiology(p: &Physiology, now: DateTime<Utc>) -> Checked {
    let bpm = |v: Option<u16>| v.map(f64::from);
    validation::heart_rate("hr_max_bpm", bpm(p.hr_max_bpm))?;
    validation::heart_rate("resting_hr_bpm", bpm(p.resting_hr_bpm))?;
    validation::heart_rate("threshold_hr_bpm", bpm(p.threshold_hr_bpm))?;
    // Zones and hrTSS divide by (threshold - resting) and (max - resting): a misordered set would
    // give negative or infinite intensities.
    let rest = ("resting_hr_bpm", p.resting_hr_bpm);
    let threshold = ("threshold_hr_bpm", p.threshold_hr_bpm);
    let max = ("hr_max_bpm", p.hr_max_bpm);
    hr_order(rest, threshold, true)?;
    hr_order(rest, max, true)?;
    hr_order(threshold, max, false)?;
    let (min_pace, max_pace) = THRESHOLD_PACE_S_PER_KM;
    validation::opt_in_range(
        "threshold_pace_s_per_km",
        p.threshold_pace_s_per_km,
        min_pace,
        max_pace,
        "s/km",
    )?;
    validation::opt_in_range("height_cm", p.height_cm, 50.0, 272.0, "cm")?;
    if let Some(birth_date) = p.birth_date {
        validation::date_not_in_future("birth_date", birth_date, now)?;
        let age_years = now.date_naive().years_since(birth_date).unwrap_or(0);
        if !(5..=120).contains(&age_years) {
            return Err(ValidationError::new(
                "birth_date",
                format!("must give an age of 5-120 years, got {age_years}"),
            ));
        }
    }
    Ok(())
}

/// `low` must be below `high` (or equal, when not `strict`); only checked when both are given.
fn hr_order(
    (low_name, low): (&'static str, Option<u16>),
    (high_name, high): (&'static str, Option<u16>),
    strict: bool,
) -> Checked {
    if let (Some(low), Some(high)) = (low, high)
        && (low > high || (strict && low == high))
    {
        let relation = if strict { "below" } else { "at most" };
        return Err(ValidationError::new(
            low_name,
            format!("must be {relation} {high_name} ({high} bpm), got {low} bpm"),
        ));
    }
    Ok(())
}

fn check_nutrients(n: &Nutrients) -> Checked {
    let all = [
        n.calories_kcal,
        n.protein_g,
        n.carbohydrate_g,
        n.fat_g,
        n.fibre_g,
        n.caffeine_mg,
    ];
    if all.iter().all(Option::is_none) {
        return Err(ValidationError::new(
            "nutrients",
            "a preset needs at least one value (0 counts)",
        ));
    }
    validation::opt_in_range("calories_kcal", n.calories_kcal, 0.0, 10_000.0, "kcal")?;
    validation::opt_in_range("protein_g", n.protein_g, 0.0, 1000.0, "g")?;
    validation::opt_in_range("carbohydrate_g", n.carbohydrate_g, 0.0, 1000.0, "g")?;
    validation::opt_in_range("fat_g", n.fat_g, 0.0, 1000.0, "g")?;
    validation::opt_in_range("fibre_g", n.fibre_g, 0.0, 1000.0, "g")?;
    validation::opt_in_range("caffeine_mg", n.caffeine_mg, 0.0, 2000.0, "mg")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use cqrs_es::test::TestFramework;
    use serde_json::{Value, json};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap()
    }

    fn earlier() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 8, 30, 0).unwrap()
    }

    const ATHLETE: Uuid = Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_00a1);
    const COACH: Uuid = Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_00c1);
    const ADMIN: Uuid = Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_00ad);
    const SESSION: Uuid = Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_5e55);
    const PRESET: Uuid = Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0f00);

    fn framework() -> TestFramework<Athlete> {
        TestFramework::with(DomainServices::fixed(now()))
    }

    fn registered() -> AthleteEvent {
        AthleteEvent::AthleteRegistered(AthleteRegistered {
            athlete_id: ATHLETE,
            email: "ana.lopez@example.org".into(),
            display_name: "Ana López".into(),
            role: Role::Athlete,
            registered_at: earlier(),
        })
    }

    fn erased() -> AthleteEvent {
        AthleteEvent::AthleteErased(AthleteErased {
            erased_at: earlier(),
            requested_by: ATHLETE,
            reason: ErasureReason::AthleteRequest,
        })
    }

    fn granted(scope: CoachAccessScope) -> AthleteEvent {
        AthleteEvent::CoachAccessGranted(CoachAccessGranted {
            coach_id: COACH,
            scope,
            granted_at: earlier(),
        })
    }

    fn impersonation_started(expires_at: DateTime<Utc>) -> AthleteEvent {
        AthleteEvent::ImpersonationStarted(ImpersonationStarted {
            admin_id: ADMIN,
            session_id: SESSION,
            reason: "support_ticket".into(),
            expires_at,
            at: expires_at - Duration::minutes(30),
        })
    }

    fn physiology() -> Physiology {
        Physiology {
            hr_max_bpm: Some(188),
            resting_hr_bpm: Some(48),
            threshold_hr_bpm: Some(171),
            threshold_pace_s_per_km: Some(245.0),
            sex: Some(Sex::Female),
            birth_date: NaiveDate::from_ymd_opt(1990, 6, 15),
            height_cm: Some(168.5),
        }
    }

    fn preferences_command(timezone: &str) -> AthleteCommand {
        AthleteCommand::ChangePreferences {
            units: Units::Imperial,
            timezone: timezone.into(),
            notifications: NotificationChoices {
                new_insights: true,
                sync_problems: true,
                coach_messages: false,
            },
            digest: Digest::Weekly {
                weekday: Weekday::Monday,
            },
        }
    }

    fn availability() -> WeeklyAvailability {
        let weekday = DayAvailability {
            morning: SlotStatus::Preferred,
            afternoon: SlotStatus::Unavailable,
            evening: SlotStatus::Available,
        };
        let weekend = DayAvailability {
            morning: SlotStatus::Preferred,
            afternoon: SlotStatus::Available,
            evening: SlotStatus::Unavailable,
        };
        WeeklyAvailability {
            monday: weekday,
            tuesday: weekday,
            wednesday: DayAvailability::default(),
            thursday: weekday,
            friday: weekday,
            saturday: weekend,
            sunday: weekend,
        }
    }

    /// One instance of every event, with realistic values.
    fn samples() -> Vec<AthleteEvent> {
        let p = physiology();
        vec![
            registered(),
            AthleteEvent::ProfileUpdated(ProfileUpdated {
                display_name: "Ana L.".into(),
                email: "ana@example.net".into(),
                goals: [
                    TrainingGoal::ImproveEfficiency,
                    TrainingGoal::RacePerformance,
                ]
                .into(),
                at: now(),
            }),
            AthleteEvent::PreferencesChanged(PreferencesChanged {
                units: Units::Imperial,
                timezone: "America/Argentina/Buenos_Aires".into(),
                notifications: NotificationChoices {
                    new_insights: true,
                    sync_problems: false,
                    coach_messages: true,
                },
                digest: Digest::Monthly {
                    weekday: Weekday::Saturday,
                },
                at: now(),
            }),
            AthleteEvent::PhysiologyChanged(PhysiologyChanged {
                hr_max_bpm: p.hr_max_bpm,
                resting_hr_bpm: p.resting_hr_bpm,
                threshold_hr_bpm: None,
                threshold_pace_s_per_km: p.threshold_pace_s_per_km,
                sex: p.sex,
                birth_date: p.birth_date,
                height_cm: p.height_cm,
                at: now(),
            }),
            AthleteEvent::OnboardingProgressed(OnboardingProgressed {
                reached: OnboardingStep::NutritionSetup,
                completed: [OnboardingStep::Initial, OnboardingStep::Goals].into(),
                at: now(),
            }),
            AthleteEvent::RoleChanged(RoleChanged {
                from: Role::Athlete,
                to: Role::Coach,
                changed_by: ADMIN,
                at: now(),
            }),
            granted(CoachAccessScope::ReadWrite),
            AthleteEvent::CoachAccessRevoked(CoachAccessRevoked {
                coach_id: COACH,
                at: now(),
            }),
            AthleteEvent::NutritionPresetSaved(NutritionPresetSaved {
                preset_id: PRESET,
                name: "Usual gel".into(),
                calories_kcal: Some(100.0),
                protein_g: Some(0.0),
                carbohydrate_g: Some(25.0),
                fat_g: None,
                fibre_g: None,
                caffeine_mg: Some(75.0),
                at: now(),
            }),
            AthleteEvent::TrainingAvailabilitySet(TrainingAvailabilitySet {
                availability: availability(),
                at: now(),
            }),
            erased(),
            AthleteEvent::AdminDataInjected(AdminDataInjected {
                admin_id: ADMIN,
                reason: "strava_backfill".into(),
                event_types: ["PhysiologyChanged".to_string()].into(),
                event_count: 3,
                at: now(),
            }),
            impersonation_started(now() + Duration::minutes(30)),
            AthleteEvent::ImpersonationEnded(ImpersonationEnded {
                admin_id: ADMIN,
                session_id: SESSION,
                at: now(),
            }),
        ]
    }

    fn invalid_field(result: Result<Vec<AthleteEvent>, DomainError>) -> &'static str {
        match result {
            Err(DomainError::Invalid(e)) => e.field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    fn is_conflict(result: Result<Vec<AthleteEvent>, DomainError>) -> bool {
        matches!(result, Err(DomainError::Conflict(_)))
    }

    // --- serde and catalogue ---------------------------------------------------------------

    #[test]
    fn every_event_round_trips_through_json_with_its_type_tag() {
        for event in samples() {
            let value = serde_json::to_value(&event).unwrap();
            assert_eq!(value["type"], Value::from(event.event_type()), "{value}");
            let back: AthleteEvent = serde_json::from_value(value).unwrap();
            assert_eq!(back, event);
        }
    }

    #[test]
    fn samples_cover_the_catalogue_exactly() {
        let sampled: Vec<EventSchema> = samples().iter().map(AthleteEvent::schema).collect();
        assert_eq!(sampled, CATALOGUE);
        for event in samples() {
            assert_eq!(event.event_version(), "1.0");
            assert_eq!(event.schema().aggregate_type, "athlete");
        }
    }

    #[test]
    fn only_erasure_and_admin_markers_are_not_personal() {
        let not_personal: Vec<String> = samples()
            .iter()
            .filter(|e| !e.is_personal())
            .map(DomainEvent::event_type)
            .collect();
        assert_eq!(
            not_personal,
            [
                "AthleteErased",
                "AdminDataInjected",
                "ImpersonationStarted",
                "ImpersonationEnded"
            ]
        );
    }

    #[test]
    fn stored_payloads_have_the_documented_shape() {
        assert_eq!(
            serde_json::to_value(registered()).unwrap(),
            json!({
                "type": "AthleteRegistered",
                "athlete_id": "01930000-0000-7000-8000-0000000000a1",
                "email": "ana.lopez@example.org",
                "display_name": "Ana López",
                "role": "athlete",
                "registered_at": "2026-03-01T08:30:00Z"
            })
        );
        let prefs = &samples()[2];
        let value = serde_json::to_value(prefs).unwrap();
        assert_eq!(
            value["digest"],
            json!({"frequency": "monthly", "weekday": "saturday"})
        );
        assert_eq!(value["units"], "imperial");
        let grid = serde_json::to_value(&samples()[9]).unwrap();
        assert_eq!(
            grid["availability"]["monday"],
            json!({"morning": "preferred", "afternoon": "unavailable", "evening": "available"})
        );
        let erased = serde_json::to_value(erased()).unwrap();
        assert_eq!(erased["reason"], "athlete_request");
    }

    // --- registration and lifecycle --------------------------------------------------------

    #[test]
    fn register_canonicalises_email_and_name() {
        framework()
            .given_no_previous_events()
            .when(AthleteCommand::Register {
                athlete_id: ATHLETE,
                email: "  Ana.Lopez@Example.org ".into(),
                display_name: " Ana López ".into(),
                role: Role::Athlete,
            })
            .then_expect_events(vec![AthleteEvent::AthleteRegistered(AthleteRegistered {
                athlete_id: ATHLETE,
                email: "ana.lopez@example.org".into(),
                display_name: "Ana López".into(),
                role: Role::Athlete,
                registered_at: now(),
            })]);
    }

    #[test]
    fn register_refuses_bad_values() {
        let register = |email: &str, name: &str| AthleteCommand::Register {
            athlete_id: ATHLETE,
            email: email.into(),
            display_name: name.into(),
            role: Role::Athlete,
        };
        for bad_email in [
            "ana.example.org",
            "ana@@example.org",
            "a@b@c",
            "@example.org",
            "ana@",
            "ana lopez@example.org",
        ] {
            let result = framework()
                .given_no_previous_events()
                .when(register(bad_email, "Ana"))
                .inspect_result();
            assert_eq!(invalid_field(result), "email", "{bad_email}");
        }
        let long_email = format!("{}@example.org", "a".repeat(243));
        assert_eq!(long_email.len(), 255);
        let result = framework()
            .given_no_previous_events()
            .when(register(&long_email, "Ana"))
            .inspect_result();
        assert_eq!(invalid_field(result), "email");

        let long_name = "x".repeat(101);
        for bad_name in ["", "   ", long_name.as_str(), "Ana\nLópez"] {
            let result = framework()
                .given_no_previous_events()
                .when(register("ana@example.org", bad_name))
                .inspect_result();
            assert_eq!(invalid_field(result), "display_name", "{bad_name:?}");
        }
        let result = framework()
            .given_no_previous_events()
            .when(AthleteCommand::Register {
                athlete_id: Uuid::nil(),
                email: "ana@example.org".into(),
                display_name: "Ana".into(),
                role: Role::Athlete,
            })
            .inspect_result();
        assert_eq!(invalid_field(result), "athlete_id");
    }

    #[test]
    fn registering_twice_conflicts() {
        framework()
            .given(vec![registered()])
            .when(AthleteCommand::Register {
                athlete_id: ATHLETE,
                email: "ana@example.org".into(),
                display_name: "Ana".into(),
                role: Role::Athlete,
            })
            .then_expect_error(DomainError::Conflict("athlete already registered".into()));
    }

    #[test]
    fn commands_before_registration_are_not_found() {
        let commands = vec![
            preferences_command("UTC"),
            AthleteCommand::ChangePhysiology(physiology()),
            AthleteCommand::RevokeCoachAccess { coach_id: COACH },
            AthleteCommand::Erase {
                requested_by: ATHLETE,
                reason: ErasureReason::AthleteRequest,
            },
            AthleteCommand::EndImpersonation {
                admin_id: ADMIN,
                session_id: SESSION,
            },
        ];
        for command in commands {
            framework()
                .given_no_previous_events()
                .when(command)
                .then_expect_error(DomainError::NotFound { what: "athlete" });
        }
    }

    #[test]
    fn erase_emits_a_non_personal_marker() {
        framework()
            .given(vec![registered(), granted(CoachAccessScope::ReadOnly)])
            .when(AthleteCommand::Erase {
                requested_by: ADMIN,
                reason: ErasureReason::AdminAction,
            })
            .then_expect_events(vec![AthleteEvent::AthleteErased(AthleteErased {
                erased_at: now(),
                requested_by: ADMIN,
                reason: ErasureReason::AdminAction,
            })]);
    }

    #[test]
    fn every_command_after_erasure_conflicts() {
        let commands = vec![
            AthleteCommand::Register {
                athlete_id: ATHLETE,
                email: "ana@example.org".into(),
                display_name: "Ana".into(),
                role: Role::Athlete,
            },
            preferences_command("UTC"),
            AthleteCommand::ChangeRole {
                to: Role::Athlete,
                changed_by: ADMIN,
            },
            AthleteCommand::Erase {
                requested_by: ATHLETE,
                reason: ErasureReason::AthleteRequest,
            },
            AthleteCommand::StartImpersonation {
                admin_id: ADMIN,
                session_id: SESSION,
                reason: "support_ticket".into(),
                expires_at: now() + Duration::minutes(10),
            },
        ];
        for command in commands {
            framework()
                .given(vec![registered(), erased()])
                .when(command)
                .then_expect_error(DomainError::Conflict("athlete erased".into()));
        }
    }

    #[test]
    fn erasure_alone_closes_the_stream_on_replay() {
        // After crypto-shredding only the non-personal events may be readable.
        framework()
            .given(vec![erased()])
            .when(AthleteCommand::SetTrainingAvailability {
                availability: availability(),
            })
            .then_expect_error(DomainError::Conflict("athlete erased".into()));
    }

    // --- profile, preferences, physiology --------------------------------------------------

    #[test]
    fn update_profile_replaces_the_profile() {
        framework()
            .given(vec![registered()])
            .when(AthleteCommand::UpdateProfile {
                display_name: "Ana L.".into(),
                email: "Ana@Example.net".into(),
                goals: [TrainingGoal::BuildEndurance].into(),
            })
            .then_expect_events(vec![AthleteEvent::ProfileUpdated(ProfileUpdated {
                display_name: "Ana L.".into(),
                email: "ana@example.net".into(),
                goals: [TrainingGoal::BuildEndurance].into(),
                at: now(),
            })]);
        let result = framework()
            .given(vec![registered()])
            .when(AthleteCommand::UpdateProfile {
                display_name: "Ana".into(),
                email: "not-an-email".into(),
                goals: BTreeSet::new(),
            })
            .inspect_result();
        assert_eq!(invalid_field(result), "email");
    }

    #[test]
    fn change_preferences_accepts_iana_shaped_zones() {
        for zone in [
            "UTC",
            "Europe/Paris",
            "America/Argentina/Buenos_Aires",
            "America/Port-au-Prince",
            "Etc/GMT+5",
        ] {
            framework()
                .given(vec![registered()])
                .when(preferences_command(zone))
                .then_expect_events(vec![AthleteEvent::PreferencesChanged(PreferencesChanged {
                    units: Units::Imperial,
                    timezone: zone.into(),
                    notifications: NotificationChoices {
                        new_insights: true,
                        sync_problems: true,
                        coach_messages: false,
                    },
                    digest: Digest::Weekly {
                        weekday: Weekday::Monday,
                    },
                    at: now(),
                })]);
        }
    }

    #[test]
    fn change_preferences_refuses_malformed_zones() {
        for zone in [
            "",
            "utc",
            "Paris",
            "CET",
            "Europe/",
            "europe/paris",
            "Mars/Olympus_Mons",
            "Europe/Atlantis",
            "Europe/Paris/Left/Bank",
            "Europe/Par is",
        ] {
            let result = framework()
                .given(vec![registered()])
                .when(preferences_command(zone))
                .inspect_result();
            assert_eq!(invalid_field(result), "timezone", "{zone:?}");
        }
    }

    fn physiology_changed(p: Physiology) -> AthleteEvent {
        AthleteEvent::PhysiologyChanged(PhysiologyChanged {
            hr_max_bpm: p.hr_max_bpm,
            resting_hr_bpm: p.resting_hr_bpm,
            threshold_hr_bpm: p.threshold_hr_bpm,
            threshold_pace_s_per_km: p.threshold_pace_s_per_km,
            sex: p.sex,
            birth_date: p.birth_date,
            height_cm: p.height_cm,
            at: earlier(),
        })
    }

    fn profile_updated(display_name: &str, goals: &[TrainingGoal]) -> AthleteEvent {
        AthleteEvent::ProfileUpdated(ProfileUpdated {
            display_name: display_name.into(),
            email: "ana.lopez@example.org".into(),
            goals: goals.iter().copied().collect(),
            at: earlier(),
        })
    }

    #[test]
    fn a_profile_patch_merges_into_the_current_values_in_one_decision() {
        // Goals set by an earlier update, and the physiology, must survive a patch of the name,
        // the timezone and one physiology field.
        let given = vec![
            registered(),
            profile_updated("Ana López", &[TrainingGoal::RunFaster]),
            physiology_changed(physiology()),
        ];
        let patch = ProfilePatch {
            display_name: Some("  Ana L.  ".into()),
            timezone: Some("Europe/Madrid".into()),
            physiology: PhysiologyPatch {
                resting_hr_bpm: Change::Set(45),
                height_cm: Change::Clear,
                ..PhysiologyPatch::default()
            },
            ..ProfilePatch::default()
        };
        framework()
            .given(given)
            .when(AthleteCommand::PatchProfile(patch))
            .then_expect_events(vec![
                AthleteEvent::ProfileUpdated(ProfileUpdated {
                    display_name: "Ana L.".into(),
                    email: "ana.lopez@example.org".into(),
                    goals: [TrainingGoal::RunFaster].into_iter().collect(),
                    at: now(),
                }),
                AthleteEvent::PreferencesChanged(PreferencesChanged {
                    units: Units::Metric,
                    timezone: "Europe/Madrid".into(),
                    notifications: NotificationChoices::default(),
                    digest: Digest::Off,
                    at: now(),
                }),
                AthleteEvent::PhysiologyChanged(PhysiologyChanged {
                    resting_hr_bpm: Some(45),
                    height_cm: None,
                    at: now(),
                    ..match physiology_changed(physiology()) {
                        AthleteEvent::PhysiologyChanged(e) => e,
                        _ => unreachable!(),
                    }
                }),
            ]);
    }

    #[test]
    fn a_profile_patch_that_changes_nothing_appends_nothing() {
        framework()
            .given(vec![
                registered(),
                profile_updated("Ana López", &[TrainingGoal::RunFaster]),
            ])
            .when(AthleteCommand::PatchProfile(ProfilePatch {
                display_name: Some("Ana López".into()),
                timezone: Some("UTC".into()),
                ..ProfilePatch::default()
            }))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_physiology_patch_is_validated_against_the_merged_set() {
        // 190 alone is a fine resting HR reading, but not above the recorded maximum of 188.
        let result = framework()
            .given(vec![registered(), physiology_changed(physiology())])
            .when(AthleteCommand::PatchProfile(ProfilePatch {
                physiology: PhysiologyPatch {
                    resting_hr_bpm: Change::Set(190),
                    ..PhysiologyPatch::default()
                },
                ..ProfilePatch::default()
            }))
            .inspect_result();
        assert!(matches!(result, Err(DomainError::Invalid(_))), "{result:?}");
        let result = framework()
            .given(vec![registered()])
            .when(AthleteCommand::PatchProfile(ProfilePatch {
                timezone: Some("Mars/Olympus".into()),
                ..ProfilePatch::default()
            }))
            .inspect_result();
        assert_eq!(invalid_field(result), "timezone");
    }

    #[test]
    fn a_slot_change_keeps_the_rest_of_the_grid() {
        let mut grid = WeeklyAvailability::default();
        grid.monday.morning = SlotStatus::Preferred;
        grid.sunday.evening = SlotStatus::Available;
        let mut expected = grid;
        expected.wednesday.afternoon = SlotStatus::Available;
        framework()
            .given(vec![
                registered(),
                AthleteEvent::TrainingAvailabilitySet(TrainingAvailabilitySet {
                    availability: grid,
                    at: earlier(),
                }),
            ])
            .when(AthleteCommand::SetAvailabilitySlot {
                day: Weekday::Wednesday,
                block: DayBlock::Afternoon,
                status: SlotStatus::Available,
            })
            .then_expect_events(vec![AthleteEvent::TrainingAvailabilitySet(
                TrainingAvailabilitySet {
                    availability: expected,
                    at: now(),
                },
            )]);
    }

    #[test]
    fn erasure_forgets_the_profile_values() {
        let mut athlete = Athlete::default();
        for e in [
            registered(),
            profile_updated("Ana López", &[TrainingGoal::RunFaster]),
            physiology_changed(physiology()),
            erased(),
        ] {
            athlete.apply(e);
        }
        assert_eq!(athlete.content, Content::default());
    }

    fn progressed(reached: OnboardingStep, completed: &[OnboardingStep]) -> AthleteEvent {
        AthleteEvent::OnboardingProgressed(OnboardingProgressed {
            reached,
            completed: completed.iter().copied().collect(),
            at: now(),
        })
    }

    #[test]
    fn an_onboarding_step_builds_on_the_recorded_progress() {
        use OnboardingStep::*;
        // The basic profile was completed earlier; completing goals keeps it, and the goals
        // land on the profile in the same decision.
        let goals: BTreeSet<TrainingGoal> = [TrainingGoal::BuildEndurance].into_iter().collect();
        framework()
            .given(vec![registered(), progressed(Goals, &[BasicProfile])])
            .when(AthleteCommand::TakeOnboardingStep {
                step: Goals,
                complete: true,
                goals: Some(goals.clone()),
            })
            .then_expect_events(vec![
                AthleteEvent::ProfileUpdated(ProfileUpdated {
                    display_name: "Ana López".into(),
                    email: "ana.lopez@example.org".into(),
                    goals,
                    at: now(),
                }),
                progressed(ConnectStrava, &[BasicProfile, Goals]),
            ]);
        // Skipping an earlier step later neither completes it nor moves `reached` back.
        framework()
            .given(vec![registered(), progressed(WorkSetup, &[BasicProfile])])
            .when(AthleteCommand::TakeOnboardingStep {
                step: Goals,
                complete: false,
                goals: None,
            })
            .then_expect_events(vec![]);
        framework()
            .given(vec![registered(), progressed(Complete, &[])])
            .when(AthleteCommand::TakeOnboardingStep {
                step: Goals,
                complete: true,
                goals: None,
            })
            .then_expect_error(DomainError::Conflict(
                "Onboarding is already complete.".into(),
            ));
    }

    #[test]
    fn change_physiology_records_the_full_set() {
        let p = physiology();
        framework()
            .given(vec![registered()])
            .when(AthleteCommand::ChangePhysiology(p))
            .then_expect_events(vec![AthleteEvent::PhysiologyChanged(PhysiologyChanged {
                hr_max_bpm: Some(188),
                resting_hr_bpm: Some(48),
                threshold_hr_bpm: Some(171),
                threshold_pace_s_per_km: Some(245.0),
                sex: Some(Sex::Female),
                birth_date: NaiveDate::from_ymd_opt(1990, 6, 15),
                height_cm: Some(168.5),
                at: now(),
            })]);
        // Clearing everything is a valid change: the values become unknown.
        framework()
            .given(vec![registered()])
            .when(AthleteCommand::ChangePhysiology(Physiology::default()))
            .then_expect_events(vec![AthleteEvent::PhysiologyChanged(PhysiologyChanged {
                hr_max_bpm: None,
                resting_hr_bpm: None,
                threshold_hr_bpm: None,
                threshold_pace_s_per_km: None,
                sex: None,
                birth_date: None,
                height_cm: None,
                at: now(),
            })]);
    }

    #[test]
    fn physiology_event_gives_back_the_command_values() {
        let result = framework()
            .given(vec![registered()])
            .when(AthleteCommand::ChangePhysiology(physiology()))
            .inspect_result()
            .unwrap();
        let AthleteEvent::PhysiologyChanged(changed) = &result[0] else {
            panic!("expected PhysiologyChanged, got {result:?}");
        };
        assert_eq!(changed.physiology(), physiology());
    }

    #[test]
    fn threshold_may_equal_max_but_resting_must_be_below_both() {
        let at_max = Physiology {
            threshold_hr_bpm: Some(188),
            ..physiology()
        };
        assert!(
            framework()
                .given(vec![registered()])
                .when(AthleteCommand::ChangePhysiology(at_max))
                .inspect_result()
                .is_ok()
        );
        let cases = [
            (
                Physiology {
                    threshold_hr_bpm: Some(190),
                    ..physiology()
                },
                "threshold_hr_bpm",
            ),
            (
                Physiology {
                    resting_hr_bpm: Some(171),
                    ..physiology()
                },
                "resting_hr_bpm",
            ),
            // Only resting and max given: still checked against each other.
            (
                Physiology {
                    hr_max_bpm: Some(60),
                    resting_hr_bpm: Some(60),
                    threshold_hr_bpm: None,
                    ..Physiology::default()
                },
                "resting_hr_bpm",
            ),
        ];
        for (p, field) in cases {
            let result = framework()
                .given(vec![registered()])
                .when(AthleteCommand::ChangePhysiology(p))
                .inspect_result();
            assert_eq!(invalid_field(result), field, "{p:?}");
        }
    }

    #[test]
    fn physiology_ranges_are_enforced() {
        let cases = [
            (
                Physiology {
                    hr_max_bpm: Some(251),
                    ..Physiology::default()
                },
                "hr_max_bpm",
            ),
            (
                Physiology {
                    resting_hr_bpm: Some(24),
                    ..Physiology::default()
                },
                "resting_hr_bpm",
            ),
            (
                Physiology {
                    threshold_hr_bpm: Some(0),
                    ..Physiology::default()
                },
                "threshold_hr_bpm",
            ),
            (
                Physiology {
                    height_cm: Some(49.9),
                    ..Physiology::default()
                },
                "height_cm",
            ),
            (
                Physiology {
                    height_cm: Some(272.5),
                    ..Physiology::default()
                },
                "height_cm",
            ),
            (
                Physiology {
                    threshold_pace_s_per_km: Some(f64::NAN),
                    ..Physiology::default()
                },
                "threshold_pace_s_per_km",
            ),
            (
                Physiology {
                    threshold_pace_s_per_km: Some(90.0),
                    ..Physiology::default()
                },
                "threshold_pace_s_per_km",
            ),
            // Born in 2030: in the future.
            (
                Physiology {
                    birth_date: NaiveDate::from_ymd_opt(2030, 1, 1),
                    ..Physiology::default()
                },
                "birth_date",
            ),
            // 4 years old on 2026-11-27 (turns 5 the next day).
            (
                Physiology {
                    birth_date: NaiveDate::from_ymd_opt(2021, 11, 28),
                    ..Physiology::default()
                },
                "birth_date",
            ),
            // 121 years old.
            (
                Physiology {
                    birth_date: NaiveDate::from_ymd_opt(1905, 1, 1),
                    ..Physiology::default()
                },
                "birth_date",
            ),
        ];
        for (p, field) in cases {
            let result = framework()
                .given(vec![registered()])
                .when(AthleteCommand::ChangePhysiology(p))
                .inspect_result();
            assert_eq!(invalid_field(result), field, "{p:?}");
        }
        for boundary in [
            Physiology {
                birth_date: NaiveDate::from_ymd_opt(2021, 11, 27),
                height_cm: Some(50.0),
                ..Physiology::default()
            },
            Physiology {
                birth_date: NaiveDate::from_ymd_opt(1906, 11, 27),
                height_cm: Some(272.0),
                hr_max_bpm: Some(250),
                resting_hr_bpm: Some(25),
                ..Physiology::default()
            },
        ] {
            assert!(
                framework()
                    .given(vec![registered()])
                    .when(AthleteCommand::ChangePhysiology(boundary))
                    .inspect_result()
                    .is_ok(),
                "{boundary:?}"
            );
        }
    }

    // --- onboarding ------------------------------------------------------------------------

    fn onboarding(reached: OnboardingStep, completed: &[OnboardingStep]) -> AthleteEvent {
        AthleteEvent::OnboardingProgressed(OnboardingProgressed {
            reached,
            completed: completed.iter().copied().collect(),
            at: earlier(),
        })
    }

    #[test]
    fn progress_onboarding_records_reached_and_completed_steps() {
        use OnboardingStep::*;
        framework()
            .given(vec![registered(), onboarding(Goals, &[Initial])])
            .when(AthleteCommand::ProgressOnboarding {
                reached: NutritionSetup,
                completed: [Initial, BasicProfile].into(),
            })
            .then_expect_events(vec![AthleteEvent::OnboardingProgressed(
                OnboardingProgressed {
                    reached: NutritionSetup,
                    completed: [Initial, BasicProfile].into(),
                    at: now(),
                },
            )]);
    }

    #[test]
    fn onboarding_may_go_back_until_complete() {
        use OnboardingStep::*;
        framework()
            .given(vec![registered(), onboarding(WorkSetup, &[Initial, Goals])])
            .when(AthleteCommand::ProgressOnboarding {
                reached: Goals,
                completed: [Initial].into(),
            })
            .then_expect_events(vec![AthleteEvent::OnboardingProgressed(
                OnboardingProgressed {
                    reached: Goals,
                    completed: [Initial].into(),
                    at: now(),
                },
            )]);
        framework()
            .given(vec![registered(), onboarding(Complete, &[Initial])])
            .when(AthleteCommand::ProgressOnboarding {
                reached: Goals,
                completed: [Initial].into(),
            })
            .then_expect_error(DomainError::Conflict("onboarding already complete".into()));
    }

    #[test]
    fn repeating_the_recorded_onboarding_state_is_a_no_op() {
        use OnboardingStep::*;
        framework()
            .given(vec![registered(), onboarding(Complete, &[Initial, Goals])])
            .when(AthleteCommand::ProgressOnboarding {
                reached: Complete,
                completed: [Initial, Goals].into(),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_step_cannot_be_completed_before_it_is_reached() {
        use OnboardingStep::*;
        for (reached, completed) in [
            (Goals, vec![Goals]),
            (BasicProfile, vec![Initial, WorkSetup]),
        ] {
            let result = framework()
                .given(vec![registered()])
                .when(AthleteCommand::ProgressOnboarding {
                    reached,
                    completed: completed.into_iter().collect(),
                })
                .inspect_result();
            assert_eq!(invalid_field(result), "completed");
        }
    }

    // --- role and coach access -------------------------------------------------------------

    #[test]
    fn change_role_records_from_and_to() {
        framework()
            .given(vec![registered()])
            .when(AthleteCommand::ChangeRole {
                to: Role::Coach,
                changed_by: ADMIN,
            })
            .then_expect_events(vec![AthleteEvent::RoleChanged(RoleChanged {
                from: Role::Athlete,
                to: Role::Coach,
                changed_by: ADMIN,
                at: now(),
            })]);
    }

    #[test]
    fn changing_to_the_current_role_is_a_no_op() {
        let promoted = AthleteEvent::RoleChanged(RoleChanged {
            from: Role::Athlete,
            to: Role::Admin,
            changed_by: ADMIN,
            at: earlier(),
        });
        framework()
            .given(vec![registered(), promoted])
            .when(AthleteCommand::ChangeRole {
                to: Role::Admin,
                changed_by: ADMIN,
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn grant_coach_access_and_change_its_scope() {
        framework()
            .given(vec![registered()])
            .when(AthleteCommand::GrantCoachAccess {
                coach_id: COACH,
                scope: CoachAccessScope::ReadOnly,
            })
            .then_expect_events(vec![AthleteEvent::CoachAccessGranted(CoachAccessGranted {
                coach_id: COACH,
                scope: CoachAccessScope::ReadOnly,
                granted_at: now(),
            })]);
        framework()
            .given(vec![registered(), granted(CoachAccessScope::ReadOnly)])
            .when(AthleteCommand::GrantCoachAccess {
                coach_id: COACH,
                scope: CoachAccessScope::ReadWrite,
            })
            .then_expect_events(vec![AthleteEvent::CoachAccessGranted(CoachAccessGranted {
                coach_id: COACH,
                scope: CoachAccessScope::ReadWrite,
                granted_at: now(),
            })]);
    }

    #[test]
    fn regranting_the_same_scope_is_a_no_op() {
        framework()
            .given(vec![registered(), granted(CoachAccessScope::ReadWrite)])
            .when(AthleteCommand::GrantCoachAccess {
                coach_id: COACH,
                scope: CoachAccessScope::ReadWrite,
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn an_athlete_cannot_grant_access_to_themselves() {
        let result = framework()
            .given(vec![registered()])
            .when(AthleteCommand::GrantCoachAccess {
                coach_id: ATHLETE,
                scope: CoachAccessScope::ReadOnly,
            })
            .inspect_result();
        assert_eq!(invalid_field(result), "coach_id");
    }

    #[test]
    fn revoke_coach_access() {
        framework()
            .given(vec![registered(), granted(CoachAccessScope::ReadOnly)])
            .when(AthleteCommand::RevokeCoachAccess { coach_id: COACH })
            .then_expect_events(vec![AthleteEvent::CoachAccessRevoked(CoachAccessRevoked {
                coach_id: COACH,
                at: now(),
            })]);
    }

    #[test]
    fn revoking_access_that_is_not_granted_conflicts() {
        let never = framework()
            .given(vec![registered()])
            .when(AthleteCommand::RevokeCoachAccess { coach_id: COACH })
            .inspect_result();
        assert!(is_conflict(never), "never granted");
        let revoked = AthleteEvent::CoachAccessRevoked(CoachAccessRevoked {
            coach_id: COACH,
            at: earlier(),
        });
        let twice = framework()
            .given(vec![
                registered(),
                granted(CoachAccessScope::ReadOnly),
                revoked,
            ])
            .when(AthleteCommand::RevokeCoachAccess { coach_id: COACH })
            .inspect_result();
        assert!(is_conflict(twice), "already revoked");
    }

    // --- nutrition presets and availability ------------------------------------------------

    #[test]
    fn save_nutrition_preset_keeps_zeros_as_values() {
        framework()
            .given(vec![registered()])
            .when(AthleteCommand::SaveNutritionPreset {
                preset_id: PRESET,
                name: " Black coffee ".into(),
                nutrients: Nutrients {
                    calories_kcal: Some(0.0),
                    caffeine_mg: Some(95.0),
                    ..Nutrients::default()
                },
            })
            .then_expect_events(vec![AthleteEvent::NutritionPresetSaved(
                NutritionPresetSaved {
                    preset_id: PRESET,
                    name: "Black coffee".into(),
                    calories_kcal: Some(0.0),
                    protein_g: None,
                    carbohydrate_g: None,
                    fat_g: None,
                    fibre_g: None,
                    caffeine_mg: Some(95.0),
                    at: now(),
                },
            )]);
    }

    #[test]
    fn nutrition_preset_bounds_are_enforced() {
        let nutrients = |n: Nutrients| AthleteCommand::SaveNutritionPreset {
            preset_id: PRESET,
            name: "Recovery shake".into(),
            nutrients: n,
        };
        let cases = [
            (
                Nutrients {
                    calories_kcal: Some(10_000.5),
                    ..Nutrients::default()
                },
                "calories_kcal",
            ),
            (
                Nutrients {
                    protein_g: Some(-1.0),
                    ..Nutrients::default()
                },
                "protein_g",
            ),
            (
                Nutrients {
                    carbohydrate_g: Some(1000.1),
                    ..Nutrients::default()
                },
                "carbohydrate_g",
            ),
            (
                Nutrients {
                    fat_g: Some(f64::INFINITY),
                    ..Nutrients::default()
                },
                "fat_g",
            ),
            (
                Nutrients {
                    fibre_g: Some(-0.5),
                    ..Nutrients::default()
                },
                "fibre_g",
            ),
            (
                Nutrients {
                    caffeine_mg: Some(2001.0),
                    ..Nutrients::default()
                },
                "caffeine_mg",
            ),
            (Nutrients::default(), "nutrients"),
        ];
        for (n, field) in cases {
            let result = framework()
                .given(vec![registered()])
                .when(nutrients(n))
                .inspect_result();
            assert_eq!(invalid_field(result), field, "{n:?}");
        }
        let result = framework()
            .given(vec![registered()])
            .when(AthleteCommand::SaveNutritionPreset {
                preset_id: PRESET,
                name: "".into(),
                nutrients: Nutrients {
                    protein_g: Some(20.0),
                    ..Nutrients::default()
                },
            })
            .inspect_result();
        assert_eq!(invalid_field(result), "name");
    }

    #[test]
    fn set_training_availability_records_the_grid() {
        framework()
            .given(vec![registered()])
            .when(AthleteCommand::SetTrainingAvailability {
                availability: availability(),
            })
            .then_expect_events(vec![AthleteEvent::TrainingAvailabilitySet(
                TrainingAvailabilitySet {
                    availability: availability(),
                    at: now(),
                },
            )]);
    }

    // --- admin markers ---------------------------------------------------------------------

    fn injection(reason: &str, event_types: &[&str], event_count: u32) -> AthleteCommand {
        AthleteCommand::RecordAdminDataInjection {
            admin_id: ADMIN,
            reason: reason.into(),
            event_types: event_types.iter().map(|t| t.to_string()).collect(),
            event_count,
        }
    }

    #[test]
    fn record_admin_data_injection() {
        framework()
            .given(vec![registered()])
            .when(injection(
                "support_fix_42",
                &["PhysiologyChanged", "TrainingAvailabilitySet"],
                2,
            ))
            .then_expect_events(vec![AthleteEvent::AdminDataInjected(AdminDataInjected {
                admin_id: ADMIN,
                reason: "support_fix_42".into(),
                event_types: [
                    "PhysiologyChanged".to_string(),
                    "TrainingAvailabilitySet".to_string(),
                ]
                .into(),
                event_count: 2,
                at: now(),
            })]);
    }

    #[test]
    fn admin_data_injection_refusals() {
        let cases = [
            (
                injection("Fixed Ana's data", &["PhysiologyChanged"], 1),
                "reason",
            ),
            (injection("", &["PhysiologyChanged"], 1), "reason"),
            (injection("support_fix", &[], 1), "event_types"),
            (injection("support_fix", &["NoSuchEvent"], 1), "event_types"),
            (
                injection("support_fix", &["AthleteErased"], 1),
                "event_types",
            ),
            (
                injection("support_fix", &["ImpersonationEnded"], 1),
                "event_types",
            ),
            (
                injection("support_fix", &["PhysiologyChanged", "ProfileUpdated"], 1),
                "event_count",
            ),
            (
                injection("support_fix", &["PhysiologyChanged"], 0),
                "event_count",
            ),
            (
                injection("support_fix", &["PhysiologyChanged"], 100_001),
                "event_count",
            ),
        ];
        for (command, field) in cases {
            let result = framework()
                .given(vec![registered()])
                .when(command.clone())
                .inspect_result();
            assert_eq!(invalid_field(result), field, "{command:?}");
        }
    }

    fn start(expires_at: DateTime<Utc>) -> AthleteCommand {
        AthleteCommand::StartImpersonation {
            admin_id: ADMIN,
            session_id: SESSION,
            reason: "support_ticket".into(),
            expires_at,
        }
    }

    #[test]
    fn start_impersonation() {
        let expires_at = now() + MAX_IMPERSONATION;
        framework()
            .given(vec![registered()])
            .when(start(expires_at))
            .then_expect_events(vec![AthleteEvent::ImpersonationStarted(
                ImpersonationStarted {
                    admin_id: ADMIN,
                    session_id: SESSION,
                    reason: "support_ticket".into(),
                    expires_at,
                    at: now(),
                },
            )]);
    }

    #[test]
    fn impersonation_must_be_short_and_not_of_oneself() {
        for expires_at in [
            now(),
            now() - Duration::minutes(5),
            now() + MAX_IMPERSONATION + Duration::seconds(1),
            now() + Duration::days(30),
        ] {
            let result = framework()
                .given(vec![registered()])
                .when(start(expires_at))
                .inspect_result();
            assert_eq!(invalid_field(result), "expires_at", "{expires_at}");
        }
        let result = framework()
            .given(vec![registered()])
            .when(AthleteCommand::StartImpersonation {
                admin_id: ATHLETE,
                session_id: SESSION,
                reason: "support_ticket".into(),
                expires_at: now() + Duration::minutes(10),
            })
            .inspect_result();
        assert_eq!(invalid_field(result), "admin_id");
        let result = framework()
            .given(vec![registered()])
            .when(AthleteCommand::StartImpersonation {
                admin_id: ADMIN,
                session_id: SESSION,
                reason: "looking around".into(),
                expires_at: now() + Duration::minutes(10),
            })
            .inspect_result();
        assert_eq!(invalid_field(result), "reason");
    }

    #[test]
    fn only_one_live_impersonation_at_a_time() {
        let live = impersonation_started(now() + Duration::minutes(20));
        let result = framework()
            .given(vec![registered(), live])
            .when(start(now() + Duration::minutes(30)))
            .inspect_result();
        assert!(is_conflict(result));
        // A session past its expiry no longer blocks a new one.
        let stale = impersonation_started(now() - Duration::minutes(1));
        let expires_at = now() + Duration::minutes(30);
        framework()
            .given(vec![registered(), stale])
            .when(start(expires_at))
            .then_expect_events(vec![AthleteEvent::ImpersonationStarted(
                ImpersonationStarted {
                    admin_id: ADMIN,
                    session_id: SESSION,
                    reason: "support_ticket".into(),
                    expires_at,
                    at: now(),
                },
            )]);
    }

    #[test]
    fn end_impersonation() {
        // Ended by a different admin: revocation is allowed and recorded under their id.
        let other_admin = Uuid::from_u128(0xad2);
        framework()
            .given(vec![
                registered(),
                impersonation_started(now() + Duration::minutes(20)),
            ])
            .when(AthleteCommand::EndImpersonation {
                admin_id: other_admin,
                session_id: SESSION,
            })
            .then_expect_events(vec![AthleteEvent::ImpersonationEnded(ImpersonationEnded {
                admin_id: other_admin,
                session_id: SESSION,
                at: now(),
            })]);
    }

    #[test]
    fn ending_an_impersonation_that_is_not_active_conflicts() {
        let end = || AthleteCommand::EndImpersonation {
            admin_id: ADMIN,
            session_id: SESSION,
        };
        let never_started = framework()
            .given(vec![registered()])
            .when(end())
            .inspect_result();
        assert!(is_conflict(never_started));
        let ended = AthleteEvent::ImpersonationEnded(ImpersonationEnded {
            admin_id: ADMIN,
            session_id: SESSION,
            at: now() - Duration::minutes(1),
        });
        let already_ended = framework()
            .given(vec![
                registered(),
                impersonation_started(now() + Duration::minutes(20)),
                ended,
            ])
            .when(end())
            .inspect_result();
        assert!(is_conflict(already_ended));
        let other_session = framework()
            .given(vec![
                registered(),
                impersonation_started(now() + Duration::minutes(20)),
            ])
            .when(AthleteCommand::EndImpersonation {
                admin_id: ADMIN,
                session_id: Uuid::from_u128(0x5e56),
            })
            .inspect_result();
        assert!(is_conflict(other_session));
    }
}

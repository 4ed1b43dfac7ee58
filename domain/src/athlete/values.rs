//! The athlete's value types: roles, units, preferences, physiology, availability.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

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

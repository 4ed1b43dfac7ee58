//! What an athlete, a coach or an admin may ask of the athlete aggregate.

use super::*;
use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

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

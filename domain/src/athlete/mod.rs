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

use chrono::{DateTime, Duration, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{DomainError, DomainServices};

mod checks;
mod commands;
mod events;
#[cfg(test)]
mod tests;
mod values;

use checks::*;
pub use checks::{check_email, check_name, check_timezone, is_reason_code};
pub use commands::*;
pub use events::*;
pub use values::*;

// ---------------------------------------------------------------------------------------------
// Aggregate
// ---------------------------------------------------------------------------------------------

/// Impersonation sessions are short so a forgotten one closes itself (the original's lasted 30 days).
pub const MAX_IMPERSONATION: Duration = Duration::minutes(15);

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
                AthleteEvent::PhysiologyChanged(PhysiologyChanged::of(p, now))
            }
            AthleteCommand::ProgressOnboarding { reached, completed } => {
                return self.progress_onboarding(reached, completed, now);
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
            other => return self.decide_access(other, now),
        };
        Ok(Some(event))
    }

    /// Coach access, presets and availability.
    fn decide_access(
        &self,
        command: AthleteCommand,
        now: DateTime<Utc>,
    ) -> Result<Option<AthleteEvent>, DomainError> {
        let event = match command {
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
                nutrients,
            } => {
                check_nutrients(&nutrients)?;
                let name = check_name("name", &name)?;
                AthleteEvent::NutritionPresetSaved(NutritionPresetSaved::of(
                    preset_id, name, nutrients, now,
                ))
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
            AthleteCommand::RecordAdminDataInjection { .. }
            | AthleteCommand::StartImpersonation { .. }
            | AthleteCommand::EndImpersonation { .. } => return self.decide_admin(command, now),
            // Listed rather than `_`, so a new command must be placed in one of the three.
            AthleteCommand::Register { .. }
            | AthleteCommand::UpdateProfile { .. }
            | AthleteCommand::ChangePreferences { .. }
            | AthleteCommand::ChangePhysiology(_)
            | AthleteCommand::ProgressOnboarding { .. }
            | AthleteCommand::ChangeRole { .. }
            | AthleteCommand::PatchProfile(_)
            | AthleteCommand::TakeOnboardingStep { .. }
            | AthleteCommand::Erase { .. } => unreachable!("decide handles these"),
        };
        Ok(Some(event))
    }

    /// The admins' audit markers: data injections and impersonation sessions.
    fn decide_admin(
        &self,
        command: AthleteCommand,
        now: DateTime<Utc>,
    ) -> Result<Option<AthleteEvent>, DomainError> {
        let event = match command {
            AthleteCommand::RecordAdminDataInjection {
                admin_id,
                reason,
                event_types,
                event_count,
            } => {
                check_injection(&reason, &event_types, event_count)?;
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
                self.check_impersonation(admin_id, &reason, expires_at, now)?;
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
            _ => unreachable!("decide_access hands over only the admin commands"),
        };
        Ok(Some(event))
    }

    fn progress_onboarding(
        &self,
        reached: OnboardingStep,
        completed: BTreeSet<OnboardingStep>,
        now: DateTime<Utc>,
    ) -> Result<Option<AthleteEvent>, DomainError> {
        if let Some(late) = completed.iter().find(|step| **step >= reached) {
            return Err(invalid(
                "completed",
                format!("step {late:?} cannot be completed before reaching it ({reached:?})"),
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
        Ok(Some(AthleteEvent::OnboardingProgressed(
            OnboardingProgressed {
                reached,
                completed,
                at: now,
            },
        )))
    }

    fn check_impersonation(
        &self,
        admin_id: Uuid,
        reason: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), DomainError> {
        if Some(admin_id) == self.athlete_id {
            return Err(invalid(
                "admin_id",
                "an admin cannot impersonate themselves",
            ));
        }
        check_reason_code(reason)?;
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
        Ok(())
    }
}

/// An injection's reason code, event types and count.
fn check_injection(
    reason: &str,
    event_types: &BTreeSet<String>,
    event_count: u32,
) -> Result<(), DomainError> {
    check_reason_code(reason)?;
    check_injected_types(event_types)?;
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
    Ok(())
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

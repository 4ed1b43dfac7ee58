use super::*;
use std::collections::BTreeSet;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use cqrs_es::{Aggregate, DomainEvent};
use uuid::Uuid;

use crate::patch::Change;
use crate::{CataloguedEvent, DomainError, DomainServices, EventSchema};

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
    let live = impersonation_started(now() + Duration::minutes(10));
    let result = framework()
        .given(vec![registered(), live])
        .when(start(now() + Duration::minutes(12)))
        .inspect_result();
    assert!(is_conflict(result));
    // A session past its expiry no longer blocks a new one.
    let stale = impersonation_started(now() - Duration::minutes(1));
    let expires_at = now() + Duration::minutes(12);
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

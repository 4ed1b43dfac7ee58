//! The command path end to end on both stores: decide, append with metadata, idempotency,
//! conflicts and retries, erasure.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use commands::{CommandBus, CommandContext, CommandError};
use domain::athlete::{Athlete, AthleteCommand, ErasureReason, Role};
use domain::{DomainError, DomainServices};
use store::testing::TestStore;
use store::{Payload, StreamId};
use uuid::Uuid;

use store::on_both_backends;

on_both_backends!(
    a_command_appends_its_events_with_metadata,
    refused_commands_append_nothing,
    a_repeated_idempotency_key_returns_the_first_result,
    concurrent_commands_conflict_or_retry,
    erased_athletes_accept_no_more_commands,
    old_event_versions_load_through_upcasters,
);

fn bus(store: store::EventStore) -> CommandBus {
    CommandBus::new(
        store,
        DomainServices::new(Arc::new(commands::SystemClock)),
        domain::upcasters(),
    )
}

fn register(athlete: Uuid) -> AthleteCommand {
    AthleteCommand::Register {
        athlete_id: athlete,
        email: "Mara.Okafor@example.org".into(),
        display_name: "Mara Okafor".into(),
        role: Role::Athlete,
    }
}

fn profile(name: &str) -> AthleteCommand {
    AthleteCommand::UpdateProfile {
        display_name: name.into(),
        email: "mara.okafor@example.org".into(),
        goals: BTreeSet::new(),
    }
}

async fn a_command_appends_its_events_with_metadata(t: TestStore) {
    let bus = bus(t.store.clone());
    let athlete = Uuid::now_v7();
    let mut ctx = CommandContext::athlete(athlete);
    ctx.causation_id = Some(Uuid::now_v7());
    let done = bus
        .execute::<Athlete>(&ctx, &athlete.to_string(), register(athlete))
        .await
        .unwrap();
    let outcome = done.outcome.unwrap();
    assert_eq!(outcome.stream_version, 1);

    let events = t
        .store
        .read_stream(&StreamId::new("athlete", athlete.to_string()), 0, None)
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.event_type, "AthleteRegistered");
    assert_eq!(e.event_version, "1.0");
    assert_eq!(e.position, outcome.positions[0]);
    assert_eq!(e.metadata.actor.user_id, Some(athlete));
    assert_eq!(e.metadata.actor.role, "athlete");
    assert_eq!(e.metadata.athlete_id, Some(athlete));
    assert_eq!(e.metadata.correlation_id, ctx.correlation_id);
    assert_eq!(e.metadata.causation_id, ctx.causation_id);
    let payload = e.payload.json().unwrap();
    assert_eq!(
        payload["email"], "mara.okafor@example.org",
        "emails are stored lowercased"
    );
    assert_eq!(payload["display_name"], "Mara Okafor");

    // The aggregate loads back from the store and decides on that state.
    let (loaded, version) = bus
        .load::<Athlete>(&StreamId::new("athlete", athlete.to_string()))
        .await
        .unwrap();
    assert_eq!(version, 1);
    assert_eq!(loaded.athlete_id(), Some(athlete));
    let twice = bus
        .execute::<Athlete>(&ctx, &athlete.to_string(), register(athlete))
        .await
        .unwrap_err();
    assert!(
        matches!(twice, CommandError::Domain(DomainError::Conflict(_))),
        "{twice}"
    );
}

async fn refused_commands_append_nothing(t: TestStore) {
    let bus = bus(t.store.clone());
    let athlete = Uuid::now_v7();
    let ctx = CommandContext::athlete(athlete);
    let err = bus
        .execute::<Athlete>(&ctx, &athlete.to_string(), profile("Mara"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CommandError::Domain(DomainError::NotFound { what: "athlete" })
        ),
        "{err}"
    );
    let mut bad = register(athlete);
    if let AthleteCommand::Register { email, .. } = &mut bad {
        *email = "not-an-email".into();
    }
    let err = bus
        .execute::<Athlete>(&ctx, &athlete.to_string(), bad)
        .await
        .unwrap_err();
    assert!(
        matches!(err, CommandError::Domain(DomainError::Invalid(ref v)) if v.field == "email"),
        "{err}"
    );
    assert!(
        t.store
            .read_athlete(athlete, None)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_repeated_idempotency_key_returns_the_first_result(t: TestStore) {
    let bus = bus(t.store.clone());
    let athlete = Uuid::now_v7();
    let id = athlete.to_string();
    bus.execute::<Athlete>(&CommandContext::athlete(athlete), &id, register(athlete))
        .await
        .unwrap();
    let ctx = CommandContext::athlete(athlete).with_idempotency_key("profile-1");
    let first = bus
        .execute::<Athlete>(&ctx, &id, profile("Mara O."))
        .await
        .unwrap();
    assert!(!first.replayed());
    let again = bus
        .execute::<Athlete>(&ctx, &id, profile("Mara O."))
        .await
        .unwrap();
    assert!(again.replayed());
    assert_eq!(
        again.outcome.as_ref().unwrap().event_ids,
        first.outcome.as_ref().unwrap().event_ids
    );
    let err = bus
        .execute::<Athlete>(&ctx, &id, profile("Someone else"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CommandError::IdempotencyKeyReused(ref k) if k == "profile-1"),
        "{err}"
    );
    assert_eq!(t.store.read_athlete(athlete, None).await.unwrap().len(), 2);
}

async fn concurrent_commands_conflict_or_retry(t: TestStore) {
    let athlete = Uuid::now_v7();
    let id = athlete.to_string();
    bus(t.store.clone())
        .execute::<Athlete>(&CommandContext::athlete(athlete), &id, register(athlete))
        .await
        .unwrap();
    // Each append holds its transaction open for a while, so both commands load version 1
    // before either commits.
    let slow = bus(t
        .reopen()
        .await
        .with_commit_delay(Arc::new(|| Duration::from_millis(300))));

    let race = |retry: bool, names: [&'static str; 2]| {
        let slow = slow.clone();
        let id = id.clone();
        async move {
            let tasks: Vec<_> = names
                .into_iter()
                .map(|name| {
                    let (slow, id) = (slow.clone(), id.clone());
                    tokio::spawn(async move {
                        let ctx = CommandContext::athlete(athlete);
                        if retry {
                            slow.execute_with_retry::<Athlete>(&ctx, &id, profile(name))
                                .await
                        } else {
                            slow.execute::<Athlete>(&ctx, &id, profile(name)).await
                        }
                    })
                })
                .collect();
            let mut results = Vec::new();
            for t in tasks {
                results.push(t.await.unwrap());
            }
            results
        }
    };

    let results = race(false, ["Mara A", "Mara B"]).await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(results.iter().any(|r| matches!(
        r,
        Err(CommandError::Conflict {
            aggregate: "athlete"
        })
    )));

    let results = race(true, ["Mara C", "Mara D"]).await;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    let events = t.store.read_athlete(athlete, None).await.unwrap();
    assert_eq!(
        events.len(),
        4,
        "register, one winner, then both retried commands"
    );
}

async fn erased_athletes_accept_no_more_commands(t: TestStore) {
    let bus = bus(t.store.clone());
    let athlete = Uuid::now_v7();
    let id = athlete.to_string();
    let ctx = CommandContext::athlete(athlete);
    bus.execute::<Athlete>(&ctx, &id, register(athlete))
        .await
        .unwrap();
    bus.execute::<Athlete>(&ctx, &id, profile("Mara O."))
        .await
        .unwrap();
    bus.execute::<Athlete>(
        &ctx,
        &id,
        AthleteCommand::Erase {
            requested_by: athlete,
            reason: ErasureReason::AthleteRequest,
        },
    )
    .await
    .unwrap();

    let history = t.store.read_athlete(athlete, None).await.unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history[0].payload, Payload::Erased);
    assert_eq!(history[1].payload, Payload::Erased);
    assert_eq!(history[2].event_type, "AthleteErased");
    assert!(history[2].payload.json().is_some());

    let err = bus
        .execute::<Athlete>(&ctx, &id, profile("Back again"))
        .await
        .unwrap_err();
    assert!(matches!(err, CommandError::Erased), "{err}");
    assert_eq!(t.store.read_athlete(athlete, None).await.unwrap().len(), 3);
}

/// A v1.0 ActivityRecorded (distance in km, no time zone) already in the store: commands on
/// that activity load it through the upcaster and decide on its values.
async fn old_event_versions_load_through_upcasters(t: TestStore) {
    use domain::activity::{
        Activity, ActivityCommand, SetWorkoutType, UpdateActivity, WorkoutType,
    };
    let athlete = Uuid::now_v7();
    let activity = Uuid::now_v7();
    let v1 = serde_json::json!({
        "type": "ActivityRecorded", "activity_id": activity, "athlete_id": athlete,
        "sport": "run", "name": "Canal loop", "start_time": "2019-04-06T07:00:00Z",
        "distance_km": 10.0, "moving_time_s": 2880.0, "elapsed_time_s": 2950.0,
        "avg_hr_bpm": 152.0, "max_hr_bpm": 171.0, "elevation_gain_m": 35.0,
        "elevation_loss_m": 34.0, "source": "fit", "external_id": null, "laps": [], "samples": null
    });
    t.store
        .append(&store::AppendRequest {
            stream: StreamId::new("activity", activity.to_string()),
            expected: store::ExpectedVersion::NoStream,
            events: vec![store::NewEvent::new("ActivityRecorded", "1.0", v1, true)],
            metadata: store::Metadata::new(store::Actor::user(athlete, "athlete"))
                .for_athlete(athlete),
            idempotency: None,
        })
        .await
        .unwrap();
    let bus = bus(t.store.clone());
    let ctx = CommandContext::athlete(athlete);
    let id = activity.to_string();
    // The elapsed time recorded in v1 bounds an update's moving time.
    let err = bus
        .execute::<Activity>(
            &ctx,
            &id,
            ActivityCommand::UpdateActivity(UpdateActivity {
                athlete_id: athlete,
                name: None,
                sport: None,
                distance_m: None,
                moving_time_s: Some(3_000.0),
                avg_hr_bpm: None,
                notes: None,
            }),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, CommandError::Domain(DomainError::Invalid(ref v)) if v.field == "moving_time_s"),
        "{err}"
    );
    let done = bus
        .execute::<Activity>(
            &ctx,
            &id,
            ActivityCommand::SetWorkoutType(SetWorkoutType {
                athlete_id: athlete,
                workout_type: WorkoutType::Tempo,
            }),
        )
        .await
        .unwrap();
    assert_eq!(done.outcome.unwrap().stream_version, 2);
    // Someone else's token cannot see it.
    let stranger = Uuid::now_v7();
    let err = bus
        .execute::<Activity>(
            &CommandContext::athlete(stranger),
            &id,
            ActivityCommand::SetWorkoutType(SetWorkoutType {
                athlete_id: stranger,
                workout_type: WorkoutType::Easy,
            }),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CommandError::Domain(DomainError::NotFound { what: "activity" })
        ),
        "{err}"
    );
}

//! Importing the real activity files: the same file twice is one activity, the same run in
//! another format is a duplicate, broken files append nothing, and the file is kept sealed
//! with the athlete's key, gone with an erasure.

use std::path::PathBuf;
use std::sync::Arc;

use commands::import::{Candidate, ImportError, Imported, import_file};
use commands::{CommandBus, CommandContext};
use domain::athlete::{Athlete, AthleteCommand, ErasureReason, Role};
use store::testing::TestStore;
use uuid::Uuid;

fn file(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/activities")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn athlete(bus: &CommandBus) -> CommandContext {
    let id = Uuid::now_v7();
    let ctx = CommandContext::athlete(id);
    bus.execute::<Athlete>(
        &ctx,
        &id.to_string(),
        AthleteCommand::Register {
            athlete_id: id,
            email: format!("{id}@example.org"),
            display_name: "Importer".into(),
            role: Role::Athlete,
        },
    )
    .await
    .unwrap();
    ctx
}

async fn files_import_once_and_duplicates_are_recognised(t: TestStore) {
    let bus = CommandBus::new(
        t.store.clone(),
        domain::DomainServices::new(Arc::new(commands::SystemClock)),
        domain::upcasters(),
    );
    let ctx = athlete(&bus).await;
    let fit = file("run-2013-02-06.fit");
    let first = import_file(&bus, &ctx, "run-2013-02-06.fit", &fit, "Europe/Paris", &[])
        .await
        .unwrap();
    let Imported::Recorded {
        activity_id,
        start_time,
        distance_m,
        efficiency,
        ..
    } = first
    else {
        panic!("{first:?}")
    };
    assert!((efficiency.efficiency_factor.unwrap() - 0.9688).abs() < 1e-4);
    let again = import_file(&bus, &ctx, "copy.fit", &fit, "Europe/Paris", &[])
        .await
        .unwrap();
    assert_eq!(again, Imported::AlreadyImported { activity_id });

    let earlier = [Candidate {
        activity_id,
        start_time,
        distance_m,
    }];
    let gpx = file("run-2013-02-06.gpx");
    let dup = import_file(
        &bus,
        &ctx,
        "run-2013-02-06.gpx",
        &gpx,
        "Europe/Paris",
        &earlier,
    )
    .await
    .unwrap();
    assert_eq!(dup, Imported::DuplicateOf { activity_id });

    // One ActivityRecorded, with the kept file's reference; the file reads back intact.
    let events = t.store.read_athlete(ctx.athlete_id, None).await.unwrap();
    let recorded: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "ActivityRecorded")
        .collect();
    assert_eq!(recorded.len(), 1);
    let payload = recorded[0].payload.json().unwrap();
    assert_eq!(payload["source"], "fit");
    assert_eq!(payload["moving_time_s"], 2110.0);
    assert_eq!(payload["samples"]["sample_count"], 590);
    let blob_id: Uuid = payload["samples"]["blob_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        t.store
            .get_blob(ctx.athlete_id, blob_id)
            .await
            .unwrap()
            .unwrap(),
        fit
    );
    assert_eq!(
        t.store.get_blob(Uuid::now_v7(), blob_id).await.unwrap(),
        None
    );

    // Broken files: a named reason, nothing appended.
    let before = t.store.last_committed().await.unwrap();
    for name in [
        "bad/unexpected-eof.fit",
        "bad/corrupt-header.fit",
        "bad/truncated.gpx",
        "bad/not-xml.gpx",
        "NOTICE.md",
    ] {
        let err = import_file(&bus, &ctx, name, &file(name), "UTC", &[])
            .await
            .unwrap_err();
        assert!(
            matches!(err, ImportError::Unreadable { .. }),
            "{name}: {err}"
        );
        assert!(err.to_string().starts_with(name), "{err}");
    }
    assert_eq!(t.store.last_committed().await.unwrap(), before);

    // Erasure takes the kept file with it.
    bus.execute::<Athlete>(
        &ctx,
        &ctx.athlete_id.to_string(),
        AthleteCommand::Erase {
            requested_by: ctx.athlete_id,
            reason: ErasureReason::AthleteRequest,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        t.store.get_blob(ctx.athlete_id, blob_id).await.unwrap(),
        None
    );
}

/// A file's name becomes the activity's name without the characters text may not hold, so an
/// odd file name never makes a readable file unimportable.
async fn control_characters_in_a_file_name_are_dropped(t: TestStore) {
    let bus = CommandBus::new(
        t.store.clone(),
        domain::DomainServices::new(Arc::new(commands::SystemClock)),
        domain::upcasters(),
    );
    let ctx = athlete(&bus).await;
    let gpx = file("run-2013-02-06.gpx");
    let imported = import_file(
        &bus,
        &ctx,
        "Morning\u{0}\u{7}run\u{fffe} \u{1f3c3}.gpx",
        &gpx,
        "Europe/Paris",
        &[],
    )
    .await
    .unwrap();
    assert!(
        matches!(imported, Imported::Recorded { .. }),
        "{imported:?}"
    );
    let events = t.store.read_athlete(ctx.athlete_id, None).await.unwrap();
    let recorded = events
        .iter()
        .find(|e| e.event_type == "ActivityRecorded")
        .unwrap();
    assert_eq!(
        recorded.payload.json().unwrap()["name"],
        "Morningrun \u{1f3c3}"
    );
}

store::on_both_backends!(
    files_import_once_and_duplicates_are_recognised,
    control_characters_in_a_file_name_are_dropped
);

//! One behaviour, two backends: every test here runs against SQLite and PostgreSQL.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use store::testing::TestStore;
use store::*;
use uuid::Uuid;

use store::on_both_backends;

on_both_backends!(
    appends_and_reads_a_stream,
    refuses_stale_and_skipping_versions,
    any_version_appends_after_the_head,
    idempotency_key_returns_the_first_outcome,
    idempotency_key_with_another_request_is_refused,
    concurrent_commands_with_one_key_append_once,
    duplicate_event_ids_are_refused,
    invalid_appends_touch_nothing,
    follower_sees_every_event_once_in_order_under_concurrency,
    reads_an_athlete_and_travels_in_time,
    personal_payloads_are_encrypted_at_rest,
    erasure_shreds_one_athlete_and_keeps_metadata,
    followers_are_woken_by_another_handle,
    cqrs_es_aggregates_run_on_the_repository,
);

fn athlete_meta(athlete: Uuid) -> Metadata {
    Metadata::new(Actor::user(athlete, "athlete")).for_athlete(athlete)
}

fn run_event(distance_m: f64) -> NewEvent {
    NewEvent::new(
        "ActivityRecorded",
        "2.0",
        json!({"type": "ActivityRecorded", "distance_m": distance_m, "notes": "tempo by the canal"}),
        true,
    )
}

fn append(
    stream: &StreamId,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
    meta: Metadata,
) -> AppendRequest {
    AppendRequest {
        stream: stream.clone(),
        expected,
        events,
        metadata: meta,
        idempotency: None,
    }
}

/// The whole log up to the last committed event. On PostgreSQL another test's open
/// transaction (anywhere in the cluster) holds the follower horizon back for a moment, so
/// read until the log reaches what was committed.
async fn all_events(store: &EventStore) -> Vec<RecordedEvent> {
    let target = store.last_committed().await.unwrap();
    for _ in 0..1500 {
        let events = store.read_log(LogCursor::START, 100_000).await.unwrap();
        if events
            .last()
            .map_or(target == LogCursor::START, |e| e.cursor >= target)
        {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the log did not reach {target} within 30 s");
}

async fn appends_and_reads_a_stream(t: TestStore) {
    let athlete = Uuid::now_v7();
    let stream = StreamId::new("activity", Uuid::now_v7().to_string());
    let mut meta = athlete_meta(athlete);
    meta.causation_id = Some(Uuid::now_v7());
    meta.idempotency_key = Some("k-1".into());
    let first = t
        .store
        .append(&append(
            &stream,
            ExpectedVersion::NoStream,
            vec![run_event(10_000.0), run_event(5_000.0)],
            meta.clone(),
        ))
        .await
        .unwrap();
    assert_eq!(first.stream_version, 2);
    assert_eq!(first.positions.len(), 2);
    assert!(first.positions[0] < first.positions[1]);
    let second = t
        .store
        .append(&append(
            &stream,
            ExpectedVersion::Exact(2),
            vec![run_event(21_097.5)],
            meta.clone(),
        ))
        .await
        .unwrap();
    assert_eq!(second.stream_version, 3);

    let events = t.store.read_stream(&stream, 0, None).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(events[2].payload.json().unwrap()["distance_m"], 21_097.5);
    assert_eq!(events[0].event_type, "ActivityRecorded");
    assert_eq!(events[0].event_version, "2.0");
    assert_eq!(events[0].metadata, meta);
    assert_eq!(events[2].event_id, second.event_ids[0]);
    assert_eq!(events[2].position, second.positions[0]);
    let age = chrono::Utc::now() - events[0].recorded_at;
    assert!(
        age.num_seconds().abs() < 60,
        "recorded_at is the server's time"
    );

    let tail = t.store.read_stream(&stream, 2, None).await.unwrap();
    assert_eq!(tail.len(), 1);
    assert_eq!(t.store.stream_version(&stream).await.unwrap(), 3);
    assert_eq!(
        t.store
            .stream_version(&StreamId::new("activity", "none"))
            .await
            .unwrap(),
        0
    );
}

async fn refuses_stale_and_skipping_versions(t: TestStore) {
    let athlete = Uuid::now_v7();
    let stream = StreamId::new("athlete", athlete.to_string());
    let meta = athlete_meta(athlete);
    t.store
        .append(&append(
            &stream,
            ExpectedVersion::NoStream,
            vec![run_event(1.0)],
            meta.clone(),
        ))
        .await
        .unwrap();
    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(0),
        ExpectedVersion::Exact(2),
        ExpectedVersion::Exact(7),
    ] {
        let err = t
            .store
            .append(&append(
                &stream,
                expected,
                vec![run_event(2.0)],
                meta.clone(),
            ))
            .await
            .unwrap_err();
        assert!(err.is_conflict(), "{expected:?} gave {err}");
    }
    assert_eq!(
        t.store.read_stream(&stream, 0, None).await.unwrap().len(),
        1,
        "a conflict appends nothing"
    );
}

async fn any_version_appends_after_the_head(t: TestStore) {
    let athlete = Uuid::now_v7();
    let stream = StreamId::new("journal", format!("{athlete}:2026-11-27"));
    for i in 0..3 {
        let out = t
            .store
            .append(&append(
                &stream,
                ExpectedVersion::Any,
                vec![run_event(i as f64)],
                athlete_meta(athlete),
            ))
            .await
            .unwrap();
        assert_eq!(out.stream_version, i + 1);
    }
}

fn keyed(stream: &StreamId, athlete: Uuid, key: &str, hash: &str) -> AppendRequest {
    let mut meta = athlete_meta(athlete);
    meta.idempotency_key = Some(key.into());
    AppendRequest {
        stream: stream.clone(),
        expected: ExpectedVersion::Any,
        events: vec![run_event(8_000.0)],
        metadata: meta,
        idempotency: Some(Idempotency {
            scope: athlete.to_string(),
            key: key.into(),
            request_hash: hash.into(),
        }),
    }
}

async fn idempotency_key_returns_the_first_outcome(t: TestStore) {
    let athlete = Uuid::now_v7();
    let stream = StreamId::new("journal", format!("{athlete}:2026-11-26"));
    let first = t
        .store
        .append(&keyed(&stream, athlete, "retry-me", "h1"))
        .await
        .unwrap();
    assert!(!first.replayed);
    let again = t
        .store
        .append(&keyed(&stream, athlete, "retry-me", "h1"))
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.event_ids, first.event_ids);
    assert_eq!(again.positions, first.positions);
    assert_eq!(again.stream_version, 1);
    assert_eq!(
        t.store.read_stream(&stream, 0, None).await.unwrap().len(),
        1
    );
    let idem = Idempotency {
        scope: athlete.to_string(),
        key: "retry-me".into(),
        request_hash: "h1".into(),
    };
    assert_eq!(
        t.store
            .find_idempotent(&idem)
            .await
            .unwrap()
            .unwrap()
            .event_ids,
        first.event_ids
    );

    // Keys are scoped: another athlete may use the same key.
    let other = Uuid::now_v7();
    let other_stream = StreamId::new("journal", format!("{other}:2026-11-26"));
    let theirs = t
        .store
        .append(&keyed(&other_stream, other, "retry-me", "h1"))
        .await
        .unwrap();
    assert!(!theirs.replayed);
}

async fn idempotency_key_with_another_request_is_refused(t: TestStore) {
    let athlete = Uuid::now_v7();
    let stream = StreamId::new("journal", format!("{athlete}:2026-11-25"));
    t.store
        .append(&keyed(&stream, athlete, "k", "h1"))
        .await
        .unwrap();
    let err = t
        .store
        .append(&keyed(&stream, athlete, "k", "h2"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::IdempotencyKeyReused { .. }),
        "{err}"
    );
    assert_eq!(
        t.store.read_stream(&stream, 0, None).await.unwrap().len(),
        1
    );
}

async fn concurrent_commands_with_one_key_append_once(t: TestStore) {
    let athlete = Uuid::now_v7();
    let stream = StreamId::new("journal", format!("{athlete}:2026-11-24"));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = t.store.clone();
        let req = keyed(&stream, athlete, "same", "h");
        tasks.push(tokio::spawn(async move { store.append(&req).await }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap().unwrap());
    }
    assert_eq!(outcomes.iter().filter(|o| !o.replayed).count(), 1);
    assert!(
        outcomes
            .iter()
            .all(|o| o.event_ids == outcomes[0].event_ids)
    );
    assert_eq!(
        t.store.read_stream(&stream, 0, None).await.unwrap().len(),
        1
    );
}

async fn duplicate_event_ids_are_refused(t: TestStore) {
    let athlete = Uuid::now_v7();
    let event = run_event(3_000.0);
    let a = StreamId::new("activity", Uuid::now_v7().to_string());
    let b = StreamId::new("activity", Uuid::now_v7().to_string());
    t.store
        .append(&append(
            &a,
            ExpectedVersion::NoStream,
            vec![event.clone()],
            athlete_meta(athlete),
        ))
        .await
        .unwrap();
    let err = t
        .store
        .append(&append(
            &b,
            ExpectedVersion::NoStream,
            vec![event.clone()],
            athlete_meta(athlete),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::DuplicateEvent(id) if id == event.event_id),
        "{err}"
    );
    assert!(t.store.read_stream(&b, 0, None).await.unwrap().is_empty());
}

async fn invalid_appends_touch_nothing(t: TestStore) {
    let stream = StreamId::new("activity", "x");
    let err = t
        .store
        .append(&append(
            &stream,
            ExpectedVersion::NoStream,
            vec![],
            Metadata::new(Actor::system()),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)));
    let err = t
        .store
        .append(&append(
            &stream,
            ExpectedVersion::NoStream,
            vec![run_event(1.0)],
            Metadata::new(Actor::system()),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid(ref m) if m.contains("athlete_id")),
        "{err}"
    );
    assert!(all_events(&t.store).await.is_empty());
}

/// The gap test: 16 writers whose transactions sleep a random time before COMMIT, so positions
/// commit out of order, while a follower reads. It must see every event once, in log order.
async fn follower_sees_every_event_once_in_order_under_concurrency(t: TestStore) {
    const WRITERS: usize = 16;
    const APPENDS_PER_WRITER: usize = 12;
    let delay: store::testing::CommitDelay =
        Arc::new(|| Duration::from_millis(rand::random_range(0..40)));
    let writer_store = t.reopen().await.with_commit_delay(delay);

    let follower = {
        let log = t.store.clone();
        tokio::spawn(async move {
            let expected = WRITERS * APPENDS_PER_WRITER * 2;
            let mut seen = Vec::with_capacity(expected);
            let mut events = Box::pin(follow(log, LogCursor::START, 7));
            while seen.len() < expected {
                match tokio::time::timeout(Duration::from_secs(30), events.next()).await {
                    Ok(Some(Ok(e))) => seen.push(e),
                    other => panic!("follower stopped after {} events: {other:?}", seen.len()),
                }
            }
            // Nothing more arrives: no event is delivered twice.
            let extra = tokio::time::timeout(Duration::from_millis(600), events.next()).await;
            assert!(extra.is_err(), "follower saw an extra event: {extra:?}");
            seen
        })
    };

    let mut writers = Vec::new();
    let mut written = Vec::new();
    for w in 0..WRITERS {
        let store = writer_store.clone();
        writers.push(tokio::spawn(async move {
            let athlete = Uuid::now_v7();
            let stream = StreamId::new("journal", format!("{athlete}:w{w}"));
            let mut ids = Vec::new();
            for i in 0..APPENDS_PER_WRITER {
                let req = append(
                    &stream,
                    ExpectedVersion::Exact(2 * i as u64),
                    vec![run_event(i as f64), run_event(i as f64 + 0.5)],
                    athlete_meta(athlete),
                );
                ids.extend(store.append(&req).await.unwrap().event_ids);
            }
            ids
        }));
    }
    for w in writers {
        written.extend(w.await.unwrap());
    }
    let seen = follower.await.unwrap();

    let seen_ids: Vec<Uuid> = seen.iter().map(|e| e.event_id).collect();
    let unique: HashSet<Uuid> = seen_ids.iter().copied().collect();
    assert_eq!(unique.len(), seen_ids.len(), "an event was delivered twice");
    assert_eq!(
        unique,
        written.iter().copied().collect(),
        "the follower missed an event"
    );
    assert!(
        seen.windows(2).all(|w| w[0].cursor < w[1].cursor),
        "not in log order"
    );
    let mut versions: HashMap<StreamId, u64> = HashMap::new();
    for e in &seen {
        let last = versions
            .insert(e.stream.clone(), e.stream_version)
            .unwrap_or(0);
        assert_eq!(
            e.stream_version,
            last + 1,
            "stream order broken in {}",
            e.stream
        );
    }
    // The follower's order is the log's order, as a fresh reader sees it afterwards.
    let after: Vec<Uuid> = all_events(&t.store)
        .await
        .iter()
        .map(|e| e.event_id)
        .collect();
    assert_eq!(after, seen_ids);
}

async fn reads_an_athlete_and_travels_in_time(t: TestStore) {
    let athlete = Uuid::now_v7();
    let other = Uuid::now_v7();
    let activity = StreamId::new("activity", Uuid::now_v7().to_string());
    let journal = StreamId::new("journal", format!("{athlete}:2026-11-20"));
    let theirs = StreamId::new("journal", format!("{other}:2026-11-20"));
    let a1 = t
        .store
        .append(&append(
            &activity,
            ExpectedVersion::NoStream,
            vec![run_event(5_000.0)],
            athlete_meta(athlete),
        ))
        .await
        .unwrap();
    t.store
        .append(&append(
            &theirs,
            ExpectedVersion::NoStream,
            vec![run_event(1.0)],
            athlete_meta(other),
        ))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let j1 = t
        .store
        .append(&append(
            &journal,
            ExpectedVersion::NoStream,
            vec![run_event(6_000.0)],
            athlete_meta(athlete),
        ))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let a2 = t
        .store
        .append(&append(
            &activity,
            ExpectedVersion::Exact(1),
            vec![run_event(7_000.0)],
            athlete_meta(athlete),
        ))
        .await
        .unwrap();

    let all = t.store.read_athlete(athlete, None).await.unwrap();
    let ids: Vec<Uuid> = all.iter().map(|e| e.event_id).collect();
    assert_eq!(ids, [a1.event_ids[0], j1.event_ids[0], a2.event_ids[0]]);

    let as_of_j1 = t
        .store
        .read_athlete(athlete, Some(AsOf::Position(j1.positions[0])))
        .await
        .unwrap();
    assert_eq!(as_of_j1.len(), 2);
    let stream_then = t
        .store
        .read_stream(&activity, 0, Some(AsOf::Position(j1.positions[0])))
        .await
        .unwrap();
    assert_eq!(
        stream_then.len(),
        1,
        "the activity as it was before its second event"
    );
    assert_eq!(
        stream_then[0].payload.json().unwrap()["distance_m"],
        5_000.0
    );

    let at = all[1].recorded_at;
    let by_time = t
        .store
        .read_athlete(athlete, Some(AsOf::Time(at)))
        .await
        .unwrap();
    assert_eq!(by_time.len(), 2);
    let before_all = t
        .store
        .read_athlete(
            athlete,
            Some(AsOf::Time(
                all[0].recorded_at - chrono::Duration::seconds(1),
            )),
        )
        .await
        .unwrap();
    assert!(before_all.is_empty());

    let err = t
        .store
        .read_athlete(athlete, Some(AsOf::Position(999_999)))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no event at log position 999999"),
        "{err}"
    );
}

async fn personal_payloads_are_encrypted_at_rest(t: TestStore) {
    let athlete = Uuid::now_v7();
    let stream = StreamId::new("activity", Uuid::now_v7().to_string());
    let mut plain = run_event(0.0);
    plain.personal = false;
    plain.payload = json!({"marker": "plain-marker-7"});
    let mut secret = run_event(12_345.0);
    secret.payload = json!({"marker": "secret-marker-9"});
    t.store
        .append(&append(
            &stream,
            ExpectedVersion::NoStream,
            vec![secret, plain],
            athlete_meta(athlete),
        ))
        .await
        .unwrap();
    let raw: Vec<Vec<u8>> = match (t.store.pg_pool(), t.store.sqlite_pool()) {
        (Some(pg), _) => sqlx::query_scalar("SELECT payload FROM events ORDER BY global_position")
            .fetch_all(pg)
            .await
            .unwrap(),
        (_, Some(lite)) => {
            sqlx::query_scalar("SELECT payload FROM events ORDER BY global_position")
                .fetch_all(lite)
                .await
                .unwrap()
        }
        _ => unreachable!(),
    };
    let text = |b: &Vec<u8>| String::from_utf8_lossy(b).into_owned();
    assert!(
        !text(&raw[0]).contains("secret-marker-9"),
        "personal payload stored in clear"
    );
    assert!(text(&raw[1]).contains("plain-marker-7"));
    let read = t.store.read_stream(&stream, 0, None).await.unwrap();
    assert_eq!(read[0].payload.json().unwrap()["marker"], "secret-marker-9");

    // Another process with the wrong master key cannot read it, and says so.
    let wrong = EventStore::connect(&t.url, MasterKey::generate(), StoreOptions::default())
        .await
        .unwrap();
    let err = wrong.read_stream(&stream, 0, None).await.unwrap_err();
    assert!(matches!(err, StoreError::Crypto(_)), "{err}");
}

async fn erasure_shreds_one_athlete_and_keeps_metadata(t: TestStore) {
    let gone = Uuid::now_v7();
    let kept = Uuid::now_v7();
    let gone_stream = StreamId::new("athlete", gone.to_string());
    let kept_stream = StreamId::new("athlete", kept.to_string());
    let gone_activity = StreamId::new("activity", Uuid::now_v7().to_string());
    t.store
        .append(&append(
            &gone_stream,
            ExpectedVersion::NoStream,
            vec![run_event(1.0)],
            athlete_meta(gone),
        ))
        .await
        .unwrap();
    t.store
        .append(&append(
            &gone_activity,
            ExpectedVersion::NoStream,
            vec![run_event(2.0)],
            athlete_meta(gone),
        ))
        .await
        .unwrap();
    t.store
        .append(&append(
            &kept_stream,
            ExpectedVersion::NoStream,
            vec![run_event(3.0)],
            athlete_meta(kept),
        ))
        .await
        .unwrap();

    let gone_file = t
        .store
        .put_blob(gone, "gpx", b"<gpx>gone</gpx>")
        .await
        .unwrap();
    let kept_file = t
        .store
        .put_blob(kept, "gpx", b"<gpx>kept</gpx>")
        .await
        .unwrap();
    assert_eq!(blob_rows(&t, gone).await, 1);

    let erasure = NewEvent::new(
        "AthleteErased",
        "1.0",
        json!({"type": "AthleteErased", "reason": "athlete_request"}),
        false,
    );
    let admin = Uuid::now_v7();
    let mut meta = Metadata::new(Actor::user(admin, "admin")).for_athlete(gone);
    meta.correlation_id = Uuid::now_v7();
    t.store
        .erase_athlete(
            gone,
            &append(
                &gone_stream,
                ExpectedVersion::Exact(1),
                vec![erasure],
                meta.clone(),
            ),
        )
        .await
        .unwrap();

    // A second process (its own connections, nothing cached) sees the same.
    let reader = t.reopen().await;
    let history = reader.read_athlete(gone, None).await.unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history[0].payload, Payload::Erased);
    assert_eq!(history[1].payload, Payload::Erased);
    assert_eq!(history[2].event_type, "AthleteErased");
    assert_eq!(
        history[2].payload.json().unwrap()["reason"],
        "athlete_request"
    );
    assert_eq!(
        history[0].metadata.athlete_id,
        Some(gone),
        "metadata stays readable"
    );
    assert_eq!(history[2].metadata.actor.user_id, Some(admin));
    // Kept files go with the key, in the same transaction; other athletes' stay.
    assert_eq!(blob_rows(&t, gone).await, 0);
    assert_eq!(
        reader.get_blob(gone, gone_file.blob_id).await.unwrap(),
        None
    );
    assert_eq!(
        reader.get_blob(kept, kept_file.blob_id).await.unwrap(),
        Some(b"<gpx>kept</gpx>".to_vec())
    );
    let kept_events = reader.read_athlete(kept, None).await.unwrap();
    assert_eq!(kept_events[0].payload.json().unwrap()["distance_m"], 3.0);
    let log = all_events(&reader).await;
    assert_eq!(
        log.iter().filter(|e| e.payload == Payload::Erased).count(),
        2
    );

    let err = t
        .store
        .append(&append(
            &gone_activity,
            ExpectedVersion::Exact(1),
            vec![run_event(4.0)],
            athlete_meta(gone),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::AthleteErased(id) if id == gone),
        "{err}"
    );
    let again = NewEvent::new("AthleteErased", "1.0", json!({}), false);
    let err = t
        .store
        .erase_athlete(
            gone,
            &append(&gone_stream, ExpectedVersion::Exact(2), vec![again], meta),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AthleteErased(_)), "{err}");
    assert_eq!(
        all_events(&reader).await.len(),
        4,
        "refused appends wrote nothing"
    );
}

/// The athlete's stored files, counted in the table itself (sealed or not).
async fn blob_rows(t: &TestStore, athlete: Uuid) -> i64 {
    match (t.store.pg_pool(), t.store.sqlite_pool()) {
        (Some(p), _) => {
            sqlx::query_scalar("SELECT count(*) FROM sample_blobs WHERE athlete_id = $1")
                .bind(athlete)
                .fetch_one(p)
                .await
                .unwrap()
        }
        (_, Some(p)) => {
            sqlx::query_scalar("SELECT count(*) FROM sample_blobs WHERE athlete_id = ?1")
                .bind(athlete.to_string())
                .fetch_one(p)
                .await
                .unwrap()
        }
        _ => unreachable!("a store has one backend"),
    }
}

async fn followers_are_woken_by_another_handle(t: TestStore) {
    let writer = t.reopen().await;
    let head = t.store.head().await.unwrap();
    let mut events = Box::pin(follow(t.store.clone(), head, 100));
    let athlete = Uuid::now_v7();
    let stream = StreamId::new("activity", Uuid::now_v7().to_string());
    let out = writer
        .append(&append(
            &stream,
            ExpectedVersion::NoStream,
            vec![run_event(9.0)],
            athlete_meta(athlete),
        ))
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // The 5 s timeout above is the follower's contract (polling alone bounds the delay; the
    // hint usually makes it far shorter): arriving inside it is the whole assertion.
    assert_eq!(got.event_id, out.event_ids[0]);
}

mod counter {
    use cqrs_es::event_sink::EventSink;
    use cqrs_es::{Aggregate, DomainEvent};
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Default, Serialize, Deserialize)]
    pub struct Counter {
        pub total: i64,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub enum CounterEvent {
        Added { by: i64 },
    }

    impl DomainEvent for CounterEvent {
        fn event_type(&self) -> String {
            "Added".into()
        }
        fn event_version(&self) -> String {
            "1.0".into()
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    pub struct CounterError(pub String);

    impl Aggregate for Counter {
        const TYPE: &'static str = "counter";
        type Command = i64;
        type Event = CounterEvent;
        type Error = CounterError;
        type Services = ();

        async fn handle(
            &mut self,
            by: i64,
            _: &(),
            sink: &EventSink<Self>,
        ) -> Result<(), CounterError> {
            if by <= 0 {
                return Err(CounterError("add a positive amount".into()));
            }
            sink.write(CounterEvent::Added { by }, self).await;
            Ok(())
        }

        fn apply(&mut self, CounterEvent::Added { by }: CounterEvent) {
            self.total += by;
        }
    }
}

async fn cqrs_es_aggregates_run_on_the_repository(t: TestStore) {
    use cqrs_es::persist::PersistedEventStore;
    use cqrs_es::{AggregateError, CqrsFramework, EventStore as _};
    let repo = store::repository::Repository::new(t.store.clone(), Arc::new(|_| true));
    let es = PersistedEventStore::<_, counter::Counter>::new_event_store(repo.clone());
    let cqrs = CqrsFramework::new(es, vec![], ());
    let athlete = Uuid::now_v7();
    let meta = store::repository::metadata_to_map(&athlete_meta(athlete));
    cqrs.execute_with_metadata("c1", 5, meta.clone())
        .await
        .unwrap();
    cqrs.execute_with_metadata("c1", 7, meta.clone())
        .await
        .unwrap();
    let refused = cqrs
        .execute_with_metadata("c1", -1, meta.clone())
        .await
        .unwrap_err();
    assert!(matches!(refused, AggregateError::UserError(_)));

    let es = PersistedEventStore::<_, counter::Counter>::new_event_store(repo);
    let mut ctx = es.load_aggregate("c1").await.unwrap();
    use cqrs_es::AggregateContext;
    assert_eq!(ctx.aggregate().total, 12);
    let stored = t
        .store
        .read_stream(&StreamId::new("counter", "c1"), 0, None)
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[1].metadata.athlete_id, Some(athlete));
    assert!(!stored.iter().any(|e| e.payload == Payload::Erased));
}

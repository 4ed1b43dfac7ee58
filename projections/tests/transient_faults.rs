//! Fault injection into the projector on both stores: a transient failure (pool timeout,
//! connection lost) in the middle of a batch is waited out and skips nothing; only an event
//! that fails deterministically is poison, and it stays reported until an operator retries or
//! dismisses it.

use std::sync::Arc;
use std::time::Duration;

use projections::fault::{Backoff, ErrorClass, classify};
use projections::testing::{Fault, Flaky};
use projections::{Engine, Projection, ReadDb, Resolution};
use serde_json::json;
use store::testing::TestStore;
use store::{Actor, AppendRequest, ExpectedVersion, Metadata, NewEvent, StreamId};

use store::on_both_backends;

on_both_backends!(
    a_transient_fault_mid_batch_skips_nothing,
    the_daemon_waits_out_transient_faults_and_skips_only_poison,
    a_poison_event_is_reported_until_retried_or_dismissed,
    real_lock_errors_are_transient_and_constraint_errors_are_not,
);

/// `n` events in one append: consecutive positions, returned in order.
async fn append(t: &TestStore, n: usize) -> Vec<i64> {
    let events = (0..n)
        .map(|i| NewEvent::new("Tick", "1.0", json!({"type": "Tick", "i": i}), false))
        .collect();
    t.store
        .append(&AppendRequest {
            stream: StreamId::new("ticks", uuid::Uuid::now_v7().to_string()),
            expected: ExpectedVersion::NoStream,
            events,
            metadata: Metadata::new(Actor::system()),
            idempotency: None,
        })
        .await
        .unwrap()
        .positions
}

async fn engine(t: &TestStore, flaky: &Arc<Flaky>) -> Engine {
    Engine::new(
        t.store.clone(),
        ReadDb::connect(&t.url).await.unwrap(),
        vec![flaky.clone() as Arc<dyn Projection>],
    )
    .with_batch(10)
    .with_backoff(Backoff {
        first: Duration::from_millis(1),
        max: Duration::from_millis(20),
    })
}

async fn seen(engine: &Engine) -> Vec<i64> {
    let t = engine.active_tables("flaky").await.unwrap();
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT position FROM {} ORDER BY position",
        t.table("seen")
    )))
    .fetch_all(&engine.db().pool)
    .await
    .unwrap()
}

async fn status(engine: &Engine) -> projections::Status {
    engine.status().await.unwrap().remove(0)
}

async fn a_transient_fault_mid_batch_skips_nothing(t: TestStore) {
    let positions = append(&t, 30).await;
    let flaky = Arc::new(Flaky::default());
    // The 15th event: in the middle of the second batch of ten.
    let mid = positions[14];
    flaky.fail(mid, Fault::PoolTimeout, 3);
    let engine = engine(&t, &flaky).await;
    engine
        .catch_up(flaky.as_ref(), Duration::from_secs(30))
        .await
        .unwrap();

    assert_eq!(flaky.failures(mid), 3, "the fault was hit, and waited out");
    assert_eq!(seen(&engine).await, positions, "every event applied once");
    let s = status(&engine).await;
    assert_eq!(s.skipped_events, 0);
    assert_eq!(s.events_applied, 30);
    assert_eq!(s.checkpoint_position, *positions.last().unwrap());
    assert_eq!(s.positions_behind, 0);
    assert!(engine.skipped("flaky").await.unwrap().is_empty());
}

async fn the_daemon_waits_out_transient_faults_and_skips_only_poison(t: TestStore) {
    let positions = append(&t, 30).await;
    let flaky = Arc::new(Flaky::default());
    // In one batch: a poison event, then a transient fault in the one-at-a-time retry that
    // follows it. Another transient fault in a later batch.
    let (poison, after_poison, later) = (positions[12], positions[16], positions[25]);
    flaky.fail(poison, Fault::Broken, u32::MAX);
    flaky.fail(after_poison, Fault::PoolTimeout, 2);
    flaky.fail(later, Fault::PoolTimeout, 4);
    let engine = Arc::new(engine(&t, &flaky).await);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = tokio::spawn({
        let engine = engine.clone();
        async move {
            engine
                .run(async {
                    let _ = stopped.await;
                })
                .await
        }
    });
    let reached = engine
        .wait_for(
            &["flaky"],
            *positions.last().unwrap(),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    stop.send(()).unwrap();
    runner.await.unwrap().unwrap();
    assert!(reached, "the runner reached the head");

    assert_eq!(flaky.failures(after_poison), 2);
    assert_eq!(flaky.failures(later), 4);
    let expected: Vec<i64> = positions.iter().copied().filter(|p| *p != poison).collect();
    assert_eq!(seen(&engine).await, expected);
    let skipped = engine.skipped("flaky").await.unwrap();
    assert_eq!(
        skipped.iter().map(|s| s.position).collect::<Vec<_>>(),
        [poison],
        "only the deterministic failure is skipped"
    );
    assert_eq!(skipped[0].error, "the activity has no samples");
    let s = status(&engine).await;
    assert_eq!(s.skipped_events, 1);
    assert_eq!(s.events_applied, 29);
}

async fn a_poison_event_is_reported_until_retried_or_dismissed(t: TestStore) {
    let positions = append(&t, 12).await;
    let flaky = Arc::new(Flaky::default());
    let (first, second) = (positions[3], positions[8]);
    flaky.fail(first, Fault::Broken, u32::MAX);
    flaky.fail(second, Fault::Broken, u32::MAX);
    let engine = engine(&t, &flaky).await;
    engine
        .catch_up(flaky.as_ref(), Duration::from_secs(30))
        .await
        .unwrap();

    // What readiness reads: projection, position, event type and a reason that quotes nothing.
    let unresolved = engine.unresolved(20).await.unwrap();
    assert_eq!(
        unresolved
            .iter()
            .map(|s| (s.name.as_str(), s.position, s.event_type.as_str()))
            .collect::<Vec<_>>(),
        [("flaky", first, "Tick"), ("flaky", second, "Tick")]
    );
    assert_eq!(
        unresolved[0].reason(),
        "the projection failed to apply the event"
    );
    assert_eq!(status(&engine).await.skipped_events, 2);

    // Not fixed yet: the retry fails, changes nothing, and says so.
    let err = engine.retry_skipped("flaky", first).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("still cannot apply the event at position"),
        "{err:#}"
    );
    assert_eq!(engine.unresolved(20).await.unwrap().len(), 2);
    assert!(!seen(&engine).await.contains(&first));

    flaky.heal();
    engine.retry_skipped("flaky", first).await.unwrap();
    assert!(seen(&engine).await.contains(&first));
    engine.dismiss_skipped("flaky", second).await.unwrap();
    assert!(!seen(&engine).await.contains(&second));
    assert!(engine.unresolved(20).await.unwrap().is_empty());

    let skipped = engine.skipped("flaky").await.unwrap();
    assert_eq!(
        skipped
            .iter()
            .map(|s| (s.position, s.resolution, s.resolved_at.is_some()))
            .collect::<Vec<_>>(),
        [
            (first, Some(Resolution::Applied), true),
            (second, Some(Resolution::Dismissed), true)
        ]
    );
    let s = status(&engine).await;
    assert_eq!(s.skipped_events, 0);
    assert_eq!(s.events_applied, 11, "the retried event counts as applied");

    // Resolved once: a second retry or dismissal is refused.
    for err in [
        engine.retry_skipped("flaky", first).await.unwrap_err(),
        engine.dismiss_skipped("flaky", second).await.unwrap_err(),
        engine
            .retry_skipped("flaky", positions[0])
            .await
            .unwrap_err(),
    ] {
        assert!(
            err.to_string().contains("has no unresolved skipped event"),
            "{err}"
        );
    }
}

/// The classification against each store's real errors, through sqlx `Any` as projections
/// see them: a lock held by another connection is transient, a constraint violation is not.
async fn real_lock_errors_are_transient_and_constraint_errors_are_not(t: TestStore) {
    let pool = ReadDb::connect(&t.url).await.unwrap().pool;
    sqlx::query("CREATE TABLE fault_probe (id BIGINT PRIMARY KEY)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO fault_probe (id) VALUES (1)")
        .execute(&pool)
        .await
        .unwrap();
    let duplicate = sqlx::query("INSERT INTO fault_probe (id) VALUES (1)")
        .execute(&pool)
        .await
        .unwrap_err();
    assert_eq!(
        classify(&anyhow::Error::from(duplicate)),
        ErrorClass::Deterministic
    );

    let mut holder = pool.acquire().await.unwrap();
    let mut waiter = pool.acquire().await.unwrap();
    let locked = if t.store.backend_name() == "postgres" {
        sqlx::query("BEGIN").execute(&mut *holder).await.unwrap();
        sqlx::query("SELECT id FROM fault_probe WHERE id = 1 FOR UPDATE")
            .execute(&mut *holder)
            .await
            .unwrap();
        sqlx::query("SELECT id FROM fault_probe WHERE id = 1 FOR UPDATE NOWAIT")
            .execute(&mut *waiter)
            .await
            .unwrap_err()
    } else {
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *holder)
            .await
            .unwrap();
        sqlx::query("PRAGMA busy_timeout = 0")
            .execute(&mut *waiter)
            .await
            .unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *waiter)
            .await
            .unwrap_err()
    };
    let class = classify(&anyhow::Error::from(locked).context("applying a batch"));
    assert!(class.is_transient(), "{class:?}");
    sqlx::query("ROLLBACK").execute(&mut *holder).await.unwrap();
}

//! The projector engine on both stores: checkpoints, poison events, runner leases, blue/green
//! rebuilds, verify and read-your-writes, with the audit log as the read model under test.

use std::sync::Arc;
use std::time::Duration;

use commands::{CommandBus, CommandContext};
use domain::DomainServices;
use domain::athlete::{Athlete, AthleteCommand, ErasureReason, Role};
use projections::audit::{AuditFilter, AuditLog, trail};
use projections::{Engine, Projected, Projection, ReadDb, Tables};
use serde_json::json;
use sqlx::AnyConnection;
use store::testing::TestStore;
use store::{Actor, AppendRequest, ExpectedVersion, Metadata, NewEvent, StreamId};
use uuid::Uuid;

use store::on_both_backends;

on_both_backends!(
    the_audit_trail_follows_commands_and_survives_erasure,
    a_poison_event_is_skipped_and_listed,
    one_runner_per_projection_and_takeover,
    a_new_version_is_built_beside_and_switched,
    a_rebuild_switches_beside_steady_writes,
    verify_finds_tampered_rows,
    wait_for_gives_read_your_writes,
);

fn bus(t: &TestStore) -> CommandBus {
    CommandBus::new(
        t.store.clone(),
        DomainServices::new(Arc::new(commands::SystemClock)),
        domain::upcasters(),
    )
}

async fn engine(t: &TestStore, projections: Vec<Arc<dyn Projection>>) -> Engine {
    Engine::new(
        t.store.clone(),
        ReadDb::connect(&t.url).await.unwrap(),
        projections,
    )
    .with_batch(50)
}

/// Catches up and checks the live generation applied exactly `events` events.
async fn catch_up(engine: &Engine, p: &dyn Projection, events: i64) {
    engine.catch_up(p, Duration::from_secs(30)).await.unwrap();
    let status = engine.status().await.unwrap();
    let s = status.iter().find(|s| s.name == p.name()).unwrap();
    assert_eq!(s.events_applied, events, "{s:?}");
}

async fn register(bus: &CommandBus, athlete: Uuid, name: &str) {
    bus.execute::<Athlete>(
        &CommandContext::athlete(athlete),
        &athlete.to_string(),
        AthleteCommand::Register {
            athlete_id: athlete,
            email: format!("{}@example.org", name.to_lowercase()),
            display_name: name.into(),
            role: Role::Athlete,
        },
    )
    .await
    .unwrap();
}

async fn rename(bus: &CommandBus, ctx: &CommandContext, athlete: Uuid, name: &str) {
    bus.execute::<Athlete>(
        ctx,
        &athlete.to_string(),
        AthleteCommand::UpdateProfile {
            display_name: name.into(),
            email: format!("{}@example.org", name.to_lowercase().replace(' ', ".")),
            goals: Default::default(),
        },
    )
    .await
    .unwrap();
}

async fn the_audit_trail_follows_commands_and_survives_erasure(t: TestStore) {
    let bus = bus(&t);
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    register(&bus, a, "Ines").await;
    register(&bus, b, "Tomas").await;
    let admin = Uuid::now_v7();
    let mut as_admin = CommandContext::athlete(a);
    as_admin.actor = Actor::user(a, "athlete");
    as_admin.impersonator_id = Some(admin);
    rename(&bus, &as_admin, a, "Ines R").await;
    bus.execute::<Athlete>(
        &CommandContext::athlete(a),
        &a.to_string(),
        AthleteCommand::Erase {
            requested_by: a,
            reason: ErasureReason::AthleteRequest,
        },
    )
    .await
    .unwrap();

    let engine = engine(&t, vec![Arc::new(AuditLog)]).await;
    catch_up(&engine, &AuditLog, 4).await;
    let tables = engine.active_tables("audit").await.unwrap();
    let pool = &engine.db().pool;
    let trail_a = trail(pool, &tables, a, &AuditFilter::default())
        .await
        .unwrap();
    let types: Vec<&str> = trail_a.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        ["AthleteRegistered", "ProfileUpdated", "AthleteErased"]
    );
    assert_eq!(trail_a[1].impersonator_id, Some(admin.to_string()));
    assert_eq!(trail_a[0].actor_role, "athlete");
    assert_eq!(trail_a[0].stream, format!("athlete/{a}"));
    let by_admin = trail(
        pool,
        &tables,
        a,
        &AuditFilter {
            since: None,
            actor: Some(admin),
            event_type: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(by_admin.len(), 1);
    let later = trail(
        pool,
        &tables,
        a,
        &AuditFilter {
            since: Some(trail_a[2].recorded_at),
            actor: None,
            event_type: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(
        trail(pool, &tables, b, &AuditFilter::default())
            .await
            .unwrap()
            .len(),
        1
    );

    let status = engine.status().await.unwrap();
    assert_eq!(status[0].events_applied, 4);
    assert_eq!(status[0].positions_behind, 0);
    assert_eq!(status[0].skipped_events, 0);
}

async fn a_poison_event_is_skipped_and_listed(t: TestStore) {
    let bus = bus(&t);
    let a = Uuid::now_v7();
    register(&bus, a, "Ada").await;
    // A stored event this build cannot read: a journal event whose payload lacks its fields.
    let poison = t
        .store
        .append(&AppendRequest {
            stream: StreamId::new("journal", format!("{a}:2026-11-20")),
            expected: ExpectedVersion::NoStream,
            events: vec![NewEvent::new(
                "DailyCheckInLogged",
                "1.0",
                json!({"type": "DailyCheckInLogged", "sleep_h": "lots"}),
                true,
            )],
            metadata: Metadata::new(Actor::user(a, "athlete")).for_athlete(a),
            idempotency: None,
        })
        .await
        .unwrap();
    rename(&bus, &CommandContext::athlete(a), a, "Ada L").await;

    let engine = engine(&t, vec![Arc::new(AuditLog), Arc::new(Strict)]).await;
    catch_up(&engine, &AuditLog, 3).await;
    catch_up(&engine, &Strict, 2).await;
    let skipped = engine.skipped("strict").await.unwrap();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].position, poison.positions[0]);
    assert_eq!(skipped[0].event_type, "DailyCheckInLogged");
    assert!(
        skipped[0].error.contains("cannot decode"),
        "{}",
        skipped[0].error
    );
    let status = engine.status().await.unwrap();
    let strict = status.iter().find(|s| s.name == "strict").unwrap();
    assert_eq!(strict.skipped_events, 1);
    assert_eq!(
        strict.events_applied, 2,
        "the events around the poison one were applied"
    );
    assert_eq!(strict.positions_behind, 0);
    // The audit log needs only metadata, so it recorded all three.
    let audit = status.iter().find(|s| s.name == "audit").unwrap();
    assert_eq!(audit.events_applied, 3);
    let tables = engine.active_tables("strict").await.unwrap();
    let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT CAST(count(*) AS BIGINT) FROM {}",
        tables.table("seen")
    )))
    .fetch_one(&engine.db().pool)
    .await
    .unwrap();
    assert_eq!(count, 2);
}

/// Records the event types it understands; refuses events it cannot decode.
struct Strict;

#[async_trait::async_trait]
impl Projection for Strict {
    fn name(&self) -> &'static str {
        "strict"
    }
    fn version(&self) -> i64 {
        1
    }
    fn tables(&self) -> &'static [&'static str] {
        &["seen"]
    }
    fn schema(&self, t: &Tables) -> Vec<String> {
        vec![format!(
            "CREATE TABLE {} (position BIGINT PRIMARY KEY, event_type TEXT NOT NULL)",
            t.table("seen")
        )]
    }
    async fn apply(
        &self,
        conn: &mut AnyConnection,
        t: &Tables,
        e: &Projected<'_>,
    ) -> anyhow::Result<()> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {} (position, event_type) VALUES ($1, $2)",
            t.table("seen")
        )))
        .bind(e.recorded.position)
        .bind(&e.recorded.event_type)
        .execute(conn)
        .await?;
        Ok(())
    }
    fn order_by(&self, _: &str) -> &'static str {
        "position"
    }
}

async fn one_runner_per_projection_and_takeover(t: TestStore) {
    let bus = bus(&t);
    for i in 0..5 {
        register(&bus, Uuid::now_v7(), &format!("Runner{i}")).await;
    }
    let first = Arc::new(engine(&t, vec![Arc::new(AuditLog)]).await);
    let second = Arc::new(engine(&t, vec![Arc::new(AuditLog)]).await);
    assert!(first.try_lease("audit").await.unwrap());
    assert!(
        !second.try_lease("audit").await.unwrap(),
        "the lease is held"
    );

    // Both loops run; the first holds the lease, so every observation until its work is done
    // names it as the runner.
    let spawn_run = |engine: Arc<Engine>| {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            engine
                .run(async {
                    let _ = stop_rx.await;
                })
                .await
        });
        (stop_tx, task)
    };
    let (_first_stop, first_task) = spawn_run(first.clone());
    let (second_stop, second_task) = spawn_run(second.clone());
    let started = std::time::Instant::now();
    loop {
        let status = second.status().await.unwrap();
        assert_eq!(status[0].runner.as_deref(), Some(first.owner()));
        if status[0].events_applied == 5 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no progress: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The first dies without releasing its lease; the second takes over once it expires and
    // applies what came after.
    first_task.abort();
    let _ = first_task.await;
    for i in 5..10 {
        register(&bus, Uuid::now_v7(), &format!("Runner{i}")).await;
    }
    let started = std::time::Instant::now();
    loop {
        let status = second.status().await.unwrap();
        if status[0].events_applied == 10 {
            assert_eq!(status[0].runner.as_deref(), Some(second.owner()));
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no takeover: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = second_stop.send(());
    second_task.await.unwrap().unwrap();
    let status = second.status().await.unwrap();
    assert_eq!(
        status[0].runner, None,
        "a stopped runner releases its lease"
    );
}

/// The audit log at version 2: the same rows, built into a new generation.
struct AuditV2;

#[async_trait::async_trait]
impl Projection for AuditV2 {
    fn name(&self) -> &'static str {
        "audit"
    }
    fn version(&self) -> i64 {
        2
    }
    fn tables(&self) -> &'static [&'static str] {
        AuditLog.tables()
    }
    fn schema(&self, t: &Tables) -> Vec<String> {
        AuditLog.schema(t)
    }
    async fn apply(
        &self,
        conn: &mut AnyConnection,
        t: &Tables,
        e: &Projected<'_>,
    ) -> anyhow::Result<()> {
        AuditLog.apply(conn, t, e).await
    }
    fn order_by(&self, table: &str) -> &'static str {
        AuditLog.order_by(table)
    }
}

async fn table_exists(engine: &Engine, name: &str) -> bool {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT 1 FROM {name} WHERE 1 = 0"
    )))
    .fetch_optional(&engine.db().pool)
    .await
    .is_ok()
}

/// The secondary indexes on a table (not those behind its primary key).
async fn secondary_indexes(engine: &Engine, table: &str) -> Vec<String> {
    let sql = if engine.db().is_sqlite() {
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = $1 AND sql IS NOT NULL"
    } else {
        "SELECT CAST(indexname AS TEXT) FROM pg_indexes WHERE tablename = $1 AND indexname NOT LIKE '%_pkey'"
    };
    sqlx::query_scalar(sql)
        .bind(table)
        .fetch_all(&engine.db().pool)
        .await
        .unwrap()
}

async fn a_new_version_is_built_beside_and_switched(t: TestStore) {
    let bus = bus(&t);
    let a = Uuid::now_v7();
    register(&bus, a, "Noor").await;
    let v1 = engine(&t, vec![Arc::new(AuditLog)]).await;
    catch_up(&v1, &AuditLog, 1).await;
    let old = v1.active_tables("audit").await.unwrap();
    assert_eq!(old.generation(), 1);
    rename(&bus, &CommandContext::athlete(a), a, "Noor K").await;
    catch_up(&v1, &AuditLog, 2).await;

    // Batches of one event: a step that reads a short batch has reached the head and
    // switches, so one event per step leaves the first step mid-build.
    let v2 = engine(&t, vec![Arc::new(AuditV2)]).await.with_batch(1);
    // One step: the live generation keeps serving while the new one starts from zero.
    let first = v2.step(&AuditV2).await.unwrap();
    assert!(!first.switched);
    let status = v2.status().await.unwrap();
    assert_eq!(status[0].state, "building v2");
    assert_eq!(
        v2.active_tables("audit").await.unwrap(),
        old,
        "reads stay on the old tables"
    );
    let building = Tables::new("audit", 2).table("entries");
    assert!(table_exists(&v2, &building).await);
    assert_eq!(
        secondary_indexes(&v2, &building).await,
        Vec::<String>::new(),
        "a generation being built gets its secondary indexes at the switch"
    );
    assert_eq!(
        trail(&v2.db().pool, &old, a, &AuditFilter::default())
            .await
            .unwrap()
            .len(),
        2
    );

    catch_up(&v2, &AuditV2, 2).await;
    let new = v2.active_tables("audit").await.unwrap();
    assert_eq!(new.generation(), 2);
    assert_eq!(
        secondary_indexes(&v2, &building).await,
        vec![format!("{building}_athlete")]
    );
    assert_eq!(
        trail(&v2.db().pool, &new, a, &AuditFilter::default())
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(
        !table_exists(&v2, &old.table("entries")).await,
        "old tables are dropped"
    );
    let status = v2.status().await.unwrap();
    assert_eq!(status[0].active_version, 2);

    // A rebuild of the same version goes through the same path.
    v2.rebuild("audit", |_, _| {}).await.unwrap();
    assert_eq!(v2.active_tables("audit").await.unwrap().generation(), 3);
    assert_eq!(
        trail(
            &v2.db().pool,
            &Tables::new("audit", 3),
            a,
            &AuditFilter::default()
        )
        .await
        .unwrap()
        .len(),
        2
    );
}

async fn verify_finds_tampered_rows(t: TestStore) {
    let bus = bus(&t);
    let a = Uuid::now_v7();
    register(&bus, a, "Lena").await;
    rename(&bus, &CommandContext::athlete(a), a, "Lena M").await;
    let engine = engine(&t, vec![Arc::new(AuditLog)]).await;
    catch_up(&engine, &AuditLog, 2).await;
    assert!(engine.verify("audit").await.unwrap().is_empty());

    let tables = engine.active_tables("audit").await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {} SET actor_role = 'admin' WHERE event_type = 'ProfileUpdated'",
        tables.table("entries")
    )))
    .execute(&engine.db().pool)
    .await
    .unwrap();
    let diffs = engine.verify("audit").await.unwrap();
    assert_eq!(diffs.len(), 2, "{diffs:?}");
    assert!(
        diffs
            .iter()
            .any(|d| d.starts_with("entries: live only:") && d.contains("actor_role=\"admin\""))
    );
    assert!(
        diffs.iter().any(
            |d| d.starts_with("entries: rebuilt only:") && d.contains("actor_role=\"athlete\"")
        )
    );
    let err = engine.verify("nope").await.unwrap_err().to_string();
    assert!(err.contains("no projection named `nope`"), "{err}");
}

async fn wait_for_gives_read_your_writes(t: TestStore) {
    let bus = bus(&t);
    let engine = Arc::new(engine(&t, vec![Arc::new(AuditLog)]).await);
    engine.active_tables("audit").await.unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let runner = {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .run(async {
                    let _ = stop_rx.await;
                })
                .await
        })
    };
    let a = Uuid::now_v7();
    let done = bus
        .execute::<Athlete>(
            &CommandContext::athlete(a),
            &a.to_string(),
            AthleteCommand::Register {
                athlete_id: a,
                email: "kim@example.org".into(),
                display_name: "Kim".into(),
                role: Role::Athlete,
            },
        )
        .await
        .unwrap();
    let position = done.outcome.unwrap().positions[0];
    assert!(
        engine
            .wait_for(&["audit"], position, Duration::from_secs(10))
            .await
            .unwrap()
    );
    let tables = engine.active_tables("audit").await.unwrap();
    assert_eq!(
        trail(&engine.db().pool, &tables, a, &AuditFilter::default())
            .await
            .unwrap()
            .len(),
        1
    );
    let _ = stop_tx.send(());
    runner.await.unwrap().unwrap();
    // A position beyond anything applied, with nobody running: the wait times out.
    assert!(
        engine
            .wait_for(&["audit"], 999_999, Duration::from_millis(50))
            .await
            .is_err()
    );
}

/// The new generation must switch once it has read up to the head, even though the head keeps
/// moving: a rebuild that waited for the log to fall quiet never finished beside a steady
/// writer (it chased the head for minutes on a busy deployment).
async fn a_rebuild_switches_beside_steady_writes(t: TestStore) {
    let bus = bus(&t);
    let a = Uuid::now_v7();
    register(&bus, a, "Noor").await;
    let engine = engine(&t, vec![Arc::new(AuditLog)]).await;
    for i in 0..120 {
        rename(&bus, &CommandContext::athlete(a), a, &format!("Noor {i}")).await;
    }
    catch_up(&engine, &AuditLog, 121).await;

    // Four writers appending as fast as the store takes them: the head never rests.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (stop, store) = (stop.clone(), t.store.clone());
            tokio::spawn(async move {
                let mut written = 0i64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let feedback = json!({"type": "InsightFeedbackGiven", "athlete_id": a,
                        "date": "2026-11-20", "insight_id": format!("w{w}-{written}"),
                        "helpful": true, "notes": null});
                    store
                        .append(&AppendRequest {
                            stream: StreamId::new("journal", format!("{a}:w{w}-{written}")),
                            expected: ExpectedVersion::NoStream,
                            events: vec![NewEvent::new(
                                "InsightFeedbackGiven",
                                "1.0",
                                feedback,
                                true,
                            )],
                            metadata: Metadata::new(Actor::user(a, "athlete")).for_athlete(a),
                            idempotency: None,
                        })
                        .await
                        .unwrap();
                    written += 1;
                }
                written
            })
        })
        .collect();
    // A bound, not a measurement: without the fix this never returned while the writer ran.
    tokio::time::timeout(Duration::from_secs(120), engine.rebuild("audit", |_, _| {}))
        .await
        .expect("the rebuild switched while the writer kept writing")
        .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut written = 0;
    for w in writers {
        written += w.await.unwrap();
    }
    assert!(written > 0, "the writer wrote during the rebuild");
    assert_eq!(engine.active_tables("audit").await.unwrap().generation(), 2);
    // Nothing the writer appended is missing from the new generation.
    catch_up(&engine, &AuditLog, 121 + written).await;
}

//! The projector daemon as operators run it: real `stridelog worker` processes, killed and
//! restarted, two at once.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use projections::audit::AuditLog;
use projections::{Engine, ReadDb, Status};
use serde_json::json;
use store::testing::TestStore;
use store::{Actor, AppendRequest, ExpectedVersion, Metadata, NewEvent, StreamId};
use uuid::Uuid;

fn worker(t: &TestStore) -> Child {
    Command::new(env!("CARGO_BIN_EXE_stridelog"))
        .arg("worker")
        .env("STRIDELOG_DATABASE_URL", &t.url)
        .env("STRIDELOG_MASTER_KEY", t.master.to_base64())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// A worker whose log is read until it says its projector loop has started, so the test knows
/// it is competing for leases from then on.
fn started_worker(t: &TestStore) -> Child {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_stridelog"))
        .arg("worker")
        .env("STRIDELOG_DATABASE_URL", &t.url)
        .env("STRIDELOG_MASTER_KEY", t.master.to_base64())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let line = lines
            .next()
            .expect("the worker exited before its projector started")
            .unwrap();
        if line.contains("projector started") {
            break;
        }
    }
    // Keep draining the log so the worker never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    child
}

fn kill(child: &mut Child, signal: &str) {
    store::testing::send_signal(child, signal);
    child.wait().unwrap();
}

/// `events` personal events over 20 athletes, 100 per append.
async fn seed(t: &TestStore, events: usize) {
    let athletes: Vec<Uuid> = (0..20).map(|_| Uuid::now_v7()).collect();
    for (i, chunk) in (0..events).collect::<Vec<_>>().chunks(100).enumerate() {
        let athlete = athletes[i % athletes.len()];
        t.store
            .append(&AppendRequest {
                stream: StreamId::new("import", Uuid::now_v7().to_string()),
                expected: ExpectedVersion::NoStream,
                events: chunk
                    .iter()
                    .map(|n| NewEvent::new("Imported", "1.0", json!({"n": n}), true))
                    .collect(),
                metadata: Metadata::new(Actor::user(athlete, "athlete")).for_athlete(athlete),
                idempotency: None,
            })
            .await
            .unwrap();
    }
}

async fn audit_status(engine: &Engine) -> Status {
    engine.status().await.unwrap().into_iter().next().unwrap()
}

async fn observer(t: &TestStore) -> Engine {
    Engine::new(
        t.store.clone(),
        ReadDb::connect(&t.url).await.unwrap(),
        vec![Arc::new(AuditLog)],
    )
}

/// SIGKILL in the middle of the work, restart: every event applied exactly once.
async fn a_killed_worker_resumes_without_loss_or_repeats(t: TestStore) {
    const EVENTS: usize = 20_000;
    seed(&t, EVENTS).await;
    let engine = observer(&t).await;
    let mut first = worker(&t);
    let started = Instant::now();
    let applied_at_kill = loop {
        let s = audit_status(&engine).await;
        if s.events_applied > 0 || started.elapsed() > Duration::from_secs(60) {
            break s.events_applied;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    kill(&mut first, "KILL");
    assert!(applied_at_kill > 0, "the worker never started");
    let after_kill = audit_status(&engine).await.events_applied;
    assert!(
        after_kill < EVENTS as i64,
        "killed after the work was done ({after_kill}); seed more events"
    );
    eprintln!("killed at {applied_at_kill} (committed {after_kill}) of {EVENTS}");

    let mut second = worker(&t);
    let started = Instant::now();
    let status = loop {
        let s = audit_status(&engine).await;
        if s.events_applied >= EVENTS as i64 {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "restart never caught up: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    kill(&mut second, "TERM");
    assert_eq!(
        status.events_applied, EVENTS as i64,
        "an event was applied twice"
    );
    assert_eq!(status.skipped_events, 0, "{status:?}");
    let tables = engine.active_tables("audit").await.unwrap();
    let (rows, distinct): (i64, i64) = {
        use sqlx::Row;
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT CAST(count(*) AS BIGINT), CAST(count(DISTINCT event_id) AS BIGINT) FROM {}",
            tables.table("entries")
        )))
        .fetch_one(&engine.db().pool)
        .await
        .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((rows, distinct), (EVENTS as i64, EVENTS as i64));
}

/// Two daemons: one runs each projection; kill it and the other takes over within seconds.
async fn a_second_worker_takes_over(t: TestStore) {
    seed(&t, 300).await;
    let engine = observer(&t).await;
    let mut a = worker(&t);
    let started = Instant::now();
    let owner_a = loop {
        let s = audit_status(&engine).await;
        if let (Some(owner), 300) = (&s.runner, s.events_applied) {
            break owner.clone();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(owner_a.starts_with(&format!("{}-", a.id())), "{owner_a}");
    // With b's projector running, new events are still applied by a alone: every observation
    // until they are all applied names a as the runner.
    let mut b = started_worker(&t);
    seed(&t, 50).await;
    let started = Instant::now();
    loop {
        let s = audit_status(&engine).await;
        assert_eq!(
            s.runner.as_deref(),
            Some(owner_a.as_str()),
            "one runner at a time"
        );
        if s.events_applied == 350 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    kill(&mut a, "KILL");
    let killed = Instant::now();
    seed(&t, 100).await;
    let status = loop {
        let s = audit_status(&engine).await;
        if s.events_applied == 450 {
            break s;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "no takeover: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("takeover after {:.1} s", killed.elapsed().as_secs_f64());
    let owner_b = status.runner.unwrap();
    assert!(owner_b.starts_with(&format!("{}-", b.id())), "{owner_b}");
    kill(&mut b, "TERM");
    assert_eq!(
        audit_status(&engine).await.runner,
        None,
        "SIGTERM releases the lease"
    );
}

use store::on_both_backends;

on_both_backends!(
    a_killed_worker_resumes_without_loss_or_repeats,
    a_second_worker_takes_over
);

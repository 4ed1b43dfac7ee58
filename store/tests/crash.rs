//! Durability: a writer process is SIGKILLed in the middle of its write loop. Everything it
//! acknowledged must be in the store after a restart, and no append may be half-written.
//!
//! The binary plays both parts: run by cargo it is the parent; run with `STRIDELOG_CRASH_URL`
//! set it is the writer, printing each acknowledged event id on stdout.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::json;
use store::testing::TestStore;
use store::*;
use uuid::Uuid;

const EVENTS_PER_APPEND: usize = 3;
const ACKS_BEFORE_KILL: usize = 150;

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    if let Ok(url) = std::env::var("STRIDELOG_CRASH_URL") {
        rt.block_on(writer(url));
        return;
    }
    let mut failed = 0;
    for backend in ["sqlite", "postgres"] {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rt.block_on(async {
                let t = match backend {
                    "sqlite" => TestStore::sqlite().await,
                    _ => TestStore::postgres().await,
                };
                survives_sigkill(&t).await;
            })
        }));
        match result {
            Ok(()) => {
                println!("test crash::{backend}::acknowledged_appends_survive_sigkill ... ok")
            }
            Err(_) => {
                println!("test crash::{backend}::acknowledged_appends_survive_sigkill ... FAILED");
                failed += 1;
            }
        }
    }
    println!("{} passed, {failed} failed", 2 - failed);
    if failed > 0 {
        std::process::exit(1);
    }
}

/// The child: appends forever, acknowledging each committed append on stdout.
async fn writer(url: String) {
    let master = MasterKey::from_base64(&std::env::var("STRIDELOG_CRASH_KEY").unwrap()).unwrap();
    let store = EventStore::connect(&url, master, StoreOptions::default())
        .await
        .unwrap();
    let athletes: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
    let mut versions: HashMap<Uuid, u64> = HashMap::new();
    for i in 0.. {
        let athlete = athletes[i % athletes.len()];
        let version = versions.entry(athlete).or_default();
        let req = AppendRequest {
            stream: StreamId::new("journal", format!("{athlete}:crash")),
            expected: ExpectedVersion::from_loaded(*version),
            events: (0..EVENTS_PER_APPEND)
                .map(|j| {
                    NewEvent::new(
                        "DailyCheckInLogged",
                        "1.0",
                        json!({"i": i, "j": j, "sleep_h": 7.5}),
                        true,
                    )
                })
                .collect(),
            metadata: Metadata::new(Actor::user(athlete, "athlete")).for_athlete(athlete),
            idempotency: None,
        };
        let out = store.append(&req).await.unwrap();
        *version = out.stream_version;
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        for id in out.event_ids {
            writeln!(stdout, "{id}").unwrap();
        }
        stdout.flush().unwrap();
    }
}

async fn survives_sigkill(t: &TestStore) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("STRIDELOG_CRASH_URL", &t.url)
        .env("STRIDELOG_CRASH_KEY", t.master.to_base64())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn writer");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked: HashSet<Uuid> = HashSet::new();
    while acked.len() < ACKS_BEFORE_KILL * EVENTS_PER_APPEND {
        let line = lines.next().expect("writer ended early").unwrap();
        acked.insert(line.parse().unwrap());
    }
    child.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
    child.wait().unwrap();
    // Acknowledgements already in the pipe count too: the writer saw those commits succeed.
    for line in lines {
        match line.ok().and_then(|l| l.parse().ok()) {
            Some(id) => {
                acked.insert(id);
            }
            None => break, // a line cut by the kill was never a complete acknowledgement
        }
    }

    let store = t.reopen().await;
    store.migrate().await.unwrap();
    // On PostgreSQL the log is read up to the oldest transaction still open in the cluster
    // (gap-safe reading, D4), and other tests' databases share the cluster: an event committed
    // behind one of their open transactions is stored but not yet readable. So the check waits
    // for the horizon to pass, bounded, and only then counts what is missing.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (all, stored, lost) = loop {
        let all = store.read_log(LogCursor::START, 1_000_000).await.unwrap();
        let stored: HashSet<Uuid> = all.iter().map(|e| e.event_id).collect();
        let lost: Vec<Uuid> = acked.difference(&stored).copied().collect();
        if lost.is_empty() || std::time::Instant::now() > deadline {
            break (all, stored, lost);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(lost.is_empty(), "{} acknowledged events lost", lost.len());
    let mut per_stream: HashMap<StreamId, Vec<u64>> = HashMap::new();
    for e in &all {
        assert!(
            e.payload.json().is_some(),
            "unreadable payload after the crash"
        );
        per_stream
            .entry(e.stream.clone())
            .or_default()
            .push(e.stream_version);
    }
    for (stream, versions) in per_stream {
        assert_eq!(
            versions.len() % EVENTS_PER_APPEND,
            0,
            "half-written append in {stream}"
        );
        assert!(
            versions.iter().copied().eq(1..=versions.len() as u64),
            "hole in {stream}"
        );
    }
    assert!(stored.len() >= acked.len());
}

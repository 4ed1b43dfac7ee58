//! Operators' commands beside a running `serve` on the same store: while an athlete keeps
//! writing through the API, `projections rebuild --all`, `projections verify` of every read
//! model, `import`, `events athlete` and `events tail` run as separate processes at the same
//! time, then every verify again. All exit 0, verify finds the rebuilt models equal, and every acknowledged write is in the log and
//! in the read model. On SQLite this is several processes writing one file.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use chrono::NaiveDate;
use devtools::demo::{DemoConfig, seed_direct};
use serde_json::{Value, json};
use store::on_both_backends;
use store::testing::TestStore;
use uuid::Uuid;

/// Every process and wait is bounded by this; a hang fails the test instead of stalling it.
/// On PostgreSQL the whole run (seven verifies and a rebuild of every read model beside a busy
/// `serve`) took 150-250 s on a loaded 2-core CI machine, so 300 s was too close to a hang's
/// bound; this is a safety net, not a timing assertion.
const BOUND: Duration = Duration::from_secs(600);

fn stridelog(t: &TestStore) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stridelog"));
    cmd.env("STRIDELOG_DATABASE_URL", &t.url)
        .env("STRIDELOG_MASTER_KEY", t.master.to_base64())
        .env(
            "STRIDELOG_JWT_SECRET",
            "c3RyaWRlbG9nLW9wZXJhdG9ycy10ZXN0LWp3dC1zZWNyZXQtMzI=",
        )
        // Tests that are not about rate limits register and call in bulk from one address.
        .env("STRIDELOG_RATE_GENERAL", "1000000/s")
        .env("STRIDELOG_RATE_ADMIN", "1000000/s")
        .env("STRIDELOG_RATE_RECOMPUTE", "1000000/s")
        .env("STRIDELOG_RATE_REGISTER", "1000000/s")
        .env("STRIDELOG_RATE_REGISTER_BLOCK", "1000000/s")
        .env_remove("RUST_LOG");
    cmd
}

/// A child process ended when the test ends, also when an assertion fails first.
struct Stopped(Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request on a fresh connection: status and body.
fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("serve is listening");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n{auth}\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp[9..12].parse().unwrap();
    let text = resp.split_once("\r\n\r\n").map(|p| p.1).unwrap_or("");
    (status, serde_json::from_str(text).unwrap_or(Value::Null))
}

/// Waits for a child's exit on a thread, bounded.
fn finish(child: Child, what: &'static str) -> mpsc::Receiver<(&'static str, Output)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send((what, child.wait_with_output().unwrap()));
    });
    rx
}

fn succeeded(rx: mpsc::Receiver<(&'static str, Output)>) -> (&'static str, Vec<String>) {
    let (what, out) = rx
        .recv_timeout(BOUND)
        .unwrap_or_else(|_| panic!("a process did not finish within {BOUND:?}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    (what, lines)
}

fn spawn(t: &TestStore, args: &[&str]) -> Child {
    stridelog(t)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The check-in an athlete writes as write number `i`: dates cycle, so later writes replace
/// earlier ones, and the value says which write it was.
fn write_of(i: usize) -> (NaiveDate, f64) {
    let first = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap();
    let date = first + chrono::Days::new((i % 200) as u64);
    (date, 4.0 + (i % 80) as f64 / 10.0)
}

async fn operators_run_beside_serve(t: TestStore) {
    // Enough history that each rebuild and verify spans many batches.
    let config = DemoConfig {
        seed: 3,
        athletes: 5,
        days: 150,
        end_date: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
    };
    let seeded = seed_direct(&t.store, &config, 4, |_, _| {}).await.unwrap();
    assert!(seeded > 2_000, "seeded only {seeded} events");

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let _serve = Stopped(
        stridelog(&t)
            .args(["serve"])
            .env("STRIDELOG_LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + BOUND;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "serve did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, pair) = http(
        port,
        "POST",
        "/v1/auth/register",
        None,
        Some(
            &json!({"email": "ops@example.org", "password": "operators-run-too",
                     "display_name": "Ops"}),
        ),
    );
    assert_eq!(status, 201, "{pair}");
    let token = pair["access_token"].as_str().unwrap().to_string();
    let athlete: Uuid = pair["account_id"].as_str().unwrap().parse().unwrap();

    // The athlete keeps writing until the operators are done; every acknowledged write is kept.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, token) = (stop.clone(), token.clone());
        std::thread::spawn(move || {
            let mut acked: Vec<(usize, i64)> = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let (date, sleep_h) = write_of(i);
                let (status, body) = http(
                    port,
                    "PUT",
                    &format!("/v1/checkins/{date}"),
                    Some(&token),
                    Some(&json!({"sleep_h": sleep_h})),
                );
                assert_eq!(status, 200, "write {i}: {body}");
                acked.push((i, body["position"].as_i64().unwrap()));
                i += 1;
                // A steady pace rather than a flood: the point is interleaving.
                std::thread::sleep(Duration::from_millis(10));
            }
            acked
        })
    };

    // Tail from now: it ends after three events the writer appends.
    let tail = spawn(&t, &["events", "tail", "--json", "--limit", "3"]);
    let fit = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/activities/run-2013-02-06.fit"
    );
    let athlete_arg = athlete.to_string();
    let names: Vec<&str> = projections::all().iter().map(|p| p.name()).collect();
    let mut waits = vec![
        finish(
            spawn(&t, &["projections", "rebuild", "--all", "--json"]),
            "rebuild --all",
        ),
        finish(
            spawn(&t, &["import", fit, "--athlete", &athlete_arg, "--json"]),
            "import",
        ),
        finish(
            spawn(&t, &["events", "athlete", &athlete_arg, "--json"]),
            "events athlete",
        ),
        finish(tail, "events tail"),
    ];
    // Every read model verified at the same time, while the rebuild switches them.
    for name in &names {
        waits.push(finish(
            spawn(&t, &["projections", "verify", name]),
            "verify",
        ));
    }
    let outputs: Vec<(&str, Vec<String>)> = waits.into_iter().map(succeeded).collect();
    let rebuilt: Vec<Value> = outputs[0]
        .1
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rebuilt.len(), names.len(), "{rebuilt:?}");
    for r in &rebuilt {
        assert!(r["generation"].as_i64().unwrap() >= 2, "{r}");
        assert!(r["events"].as_i64().unwrap() >= seeded as i64, "{r}");
    }
    let imported: Value = serde_json::from_str(&outputs[1].1[0]).unwrap();
    assert_eq!(imported["status"], "recorded", "{imported}");
    let own: Vec<Value> = outputs[2]
        .1
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(own[0]["event_type"], "AthleteRegistered");
    assert_eq!(outputs[3].1.len(), 3, "{:?}", outputs[3].1);
    for (name, (_, lines)) in names.iter().zip(&outputs[4..]) {
        assert_eq!(lines, &["equal"], "{name}");
    }

    // And once more after the switches, still beside the writes.
    let verifies: Vec<_> = names
        .iter()
        .map(|name| finish(spawn(&t, &["projections", "verify", name]), "verify"))
        .collect();
    for (name, v) in names.iter().zip(verifies) {
        let (_, lines) = succeeded(v);
        assert_eq!(lines, ["equal"], "{name}");
    }

    stop.store(true, Ordering::Relaxed);
    let acked = writer.join().expect("every write was acknowledged");
    assert!(acked.len() >= 10, "only {} writes", acked.len());

    // Nothing acknowledged is lost: each position is the athlete's check-in in the log, and the
    // read model shows the last value written for each date.
    let log = t.store.read_athlete(athlete, None).await.unwrap();
    for (i, position) in &acked {
        let e = log
            .iter()
            .find(|e| e.position == *position)
            .unwrap_or_else(|| panic!("write {i} at {position} is not in the log"));
        assert_eq!(e.event_type, "DailyCheckInLogged");
        assert_eq!(e.payload.json().unwrap()["sleep_h"], write_of(*i).1);
    }
    let last = acked.last().unwrap().1;
    let (status, page) = http(
        port,
        "GET",
        &format!("/v1/checkins?from=2025-01-01&to=2025-12-31&min_position={last}"),
        Some(&token),
        None,
    );
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    let mut expected = std::collections::BTreeMap::new();
    for (i, _) in &acked {
        let (date, sleep_h) = write_of(*i);
        expected.insert(date.to_string(), sleep_h);
    }
    assert_eq!(items.len(), expected.len(), "{page}");
    for item in items {
        let date = item["date"].as_str().unwrap();
        assert_eq!(item["sleep_h"], expected[date], "{date}");
    }
}

on_both_backends!(operators_run_beside_serve);

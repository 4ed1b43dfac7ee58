//! The `stridelog` binary as operators use it: real processes, real stores.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;
use store::testing::TestStore;
use store::{Actor, AppendRequest, ExpectedVersion, Metadata, NewEvent, StreamId};
use uuid::Uuid;

fn stridelog(t: &TestStore) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stridelog"));
    cmd.env("STRIDELOG_DATABASE_URL", &t.url)
        .env("STRIDELOG_MASTER_KEY", t.master.to_base64())
        .env(
            "STRIDELOG_JWT_SECRET",
            "c3RyaWRlbG9nLWNsaS10ZXN0cy1qd3Qtc2VjcmV0LTMyYnl0ZXM=",
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

fn checkin(athlete: Uuid) -> AppendRequest {
    AppendRequest {
        stream: StreamId::new("journal", format!("{athlete}:2026-11-27")),
        expected: ExpectedVersion::NoStream,
        events: vec![NewEvent::new(
            "DailyCheckInLogged",
            "1.0",
            json!({"type": "DailyCheckInLogged", "sleep_h": 7.25}),
            true,
        )],
        metadata: Metadata::new(Actor::user(athlete, "athlete")).for_athlete(athlete),
        idempotency: None,
    }
}

/// `events tail --json` prints an event that another process appends while it follows.
async fn tail_prints_appends_from_another_process(t: TestStore) {
    let mut child = stridelog(&t)
        .args(["events", "tail", "--json", "--limit", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if line.starts_with("following the log") {
                let _ = ready_tx.send(());
            }
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("tail started");

    let athlete = Uuid::now_v7();
    let outcome = t.store.append(&checkin(athlete)).await.unwrap();
    let appended = Instant::now();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (line_tx, line_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = line_tx.send((line, Instant::now()));
        }
    });
    let (line, at) = line_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("tail printed the event");
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["event_id"], outcome.event_ids[0].to_string());
    assert_eq!(event["event_type"], "DailyCheckInLogged");
    assert_eq!(event["payload"]["data"]["sleep_h"], 7.25);
    assert_eq!(event["metadata"]["athlete_id"], athlete.to_string());
    eprintln!(
        "tail latency: {} ms",
        at.duration_since(appended).as_millis()
    );
    assert!(child.wait().unwrap().success());
}

async fn stream_and_athlete_time_travel(t: TestStore) {
    let athlete = Uuid::now_v7();
    let first = t.store.append(&checkin(athlete)).await.unwrap();
    let mut second = checkin(athlete);
    second.expected = ExpectedVersion::Exact(1);
    t.store.append(&second).await.unwrap();
    let stream = format!("journal/{athlete}:2026-11-27");

    let out = stridelog(&t)
        .args(["events", "stream", &stream, "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 2);

    let as_of = first.positions[0].to_string();
    let out = stridelog(&t)
        .args([
            "events",
            "athlete",
            &athlete.to_string(),
            "--as-of",
            &as_of,
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["stream_version"], 1);

    let out = stridelog(&t)
        .args(["events", "stream", &stream])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("DailyCheckInLogged v1.0"), "{text}");
    // Look for the payload's key, not its value: "7.25" also turns up in
    // recorded_at timestamps like 16:32:07.251.
    assert!(!text.contains("sleep_h"), "the text form shows no payloads");
}

async fn bad_input_is_one_line_and_a_failure(t: TestStore) {
    for (args, expected) in [
        (vec!["events", "stream", "no-slash"], "stream ids look like"),
        (vec!["events", "athlete", "not-a-uuid"], "invalid"),
        (
            vec![
                "events",
                "athlete",
                &*Uuid::nil().to_string(),
                "--as-of",
                "yesterday",
            ],
            "--as-of takes",
        ),
        (
            vec!["events", "tail", "--after", "424242"],
            "no event at log position 424242",
        ),
    ] {
        let out = stridelog(&t).args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_stridelog"))
        .args(["events", "athlete", &Uuid::nil().to_string()])
        .env("STRIDELOG_DATABASE_URL", "mysql://nope")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(
        stderr.contains("must start with postgres:// or sqlite://"),
        "{stderr}"
    );
}

async fn migrate_reports_the_schema_version(t: TestStore) {
    let out = stridelog(&t).args(["migrate", "--json"]).output().unwrap();
    assert!(out.status.success());
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["schema_version"], 7);
    assert_eq!(info["backend"], t.store.backend_name());
}

/// `serve` answers /health with the store's state, then stops cleanly on SIGTERM.
async fn serve_answers_health(t: TestStore) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = stridelog(&t)
        .args(["serve", "--log-format", "json"])
        .env("STRIDELOG_LISTEN", format!("127.0.0.1:{port}"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut body = None;
    for _ in 0..100 {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                .unwrap();
            let mut resp = String::new();
            s.read_to_string(&mut resp).unwrap();
            body = Some(resp);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let resp = body.expect("server came up");
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.to_ascii_lowercase().contains("x-request-id"), "{resp}");
    let json: serde_json::Value =
        serde_json::from_str(resp.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(json["status"], "ok");
    assert_eq!(json["backend"], t.store.backend_name());
    assert_eq!(json["schema_version"], 7);
    assert!(json["horizon_lag_s"].as_f64().unwrap() >= 0.0);
    let projections = json["projections"].as_array().unwrap();
    assert_eq!(projections.len(), projections::all().len());
    assert!(projections.iter().any(|p| p["name"] == "audit"));
    assert!(projections.iter().all(|p| p["skipped_events"] == 0));
    // The embedded workers are supervised and reported.
    let mut workers: Vec<(&str, &str)> = json["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["name"].as_str().unwrap(), w["state"].as_str().unwrap()))
        .collect();
    workers.sort();
    assert_eq!(
        workers,
        [("correlations", "running"), ("projector", "running")]
    );

    store::testing::send_signal(&child, "TERM");
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0: {status}");
    let logs = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    let first: serde_json::Value = serde_json::from_str(logs.lines().next().unwrap()).unwrap();
    assert!(first["message"].is_string(), "json logs: {logs}");
    assert!(
        !logs.contains(&t.master.to_base64()),
        "the master key is never logged"
    );
}

use store::on_both_backends;

on_both_backends!(
    demo_seeds_once,
    read_side_commands_work_end_to_end,
    tail_prints_appends_from_another_process,
    stream_and_athlete_time_travel,
    bad_input_is_one_line_and_a_failure,
    migrate_reports_the_schema_version,
    serve_answers_health,
    import_files,
    a_poison_event_is_listed_retried_and_dismissed,
    users_erase_needs_yes_and_erases_once,
);

fn json_lines(out: &std::process::Output) -> Vec<serde_json::Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Demo athletes through the command path, then the operators' read-side commands on them.
async fn read_side_commands_work_end_to_end(t: TestStore) {
    use devtools::demo::{self, DemoConfig};
    let bus = commands::CommandBus::new(
        t.store.clone(),
        domain::DomainServices::new(std::sync::Arc::new(commands::SystemClock)),
        domain::upcasters(),
    );
    let config = DemoConfig {
        seed: 7,
        athletes: 2,
        days: 14,
        end_date: chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
    };
    let summary = demo::run(&bus, &config, |_| {}).await.unwrap();
    let athlete = summary.athletes[0];

    let rebuilt = json_lines(
        &stridelog(&t)
            .args(["projections", "rebuild", "--all", "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(rebuilt.len(), projections::all().len());
    let audit = rebuilt.iter().find(|r| r["name"] == "audit").unwrap();
    assert_eq!(audit["events"], summary.events as u64);

    let listed = json_lines(
        &stridelog(&t)
            .args(["projections", "list", "--json"])
            .output()
            .unwrap(),
    );
    for p in &listed {
        assert_eq!(p["positions_behind"], 0, "{p}");
        assert_eq!(p["skipped_events"], 0, "{p}");
        assert_eq!(
            p["active_generation"], 2,
            "rebuilt once after the first build: {p}"
        );
    }

    let out = stridelog(&t)
        .args(["projections", "verify", "journal"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), "equal");
    let out = stridelog(&t)
        .args(["projections", "verify", "nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("no projection named `nope`")
    );

    let trail = json_lines(
        &stridelog(&t)
            .args(["audit", &athlete.to_string(), "--json"])
            .output()
            .unwrap(),
    );
    let own = t.store.read_athlete(athlete, None).await.unwrap();
    assert_eq!(trail.len(), own.len());
    assert_eq!(trail[0]["event_type"], "AthleteRegistered");

    // As of the athlete's tenth event: ten events counted, the profile as registered then.
    let tenth = own[9].position.to_string();
    let replay = json_lines(
        &stridelog(&t)
            .args([
                "replay",
                "athlete",
                &athlete.to_string(),
                "--as-of",
                &tenth,
                "--json",
            ])
            .output()
            .unwrap(),
    );
    assert_eq!(replay[0]["events"], 10);
    assert_eq!(replay[0]["last_position"], own[9].position);
    let counted: u64 = replay[0]["counts"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(counted, 10);
    assert!(replay[0]["profile"]["display_name"].is_string());
    let now = json_lines(
        &stridelog(&t)
            .args([
                "replay",
                "athlete",
                &athlete.to_string(),
                "--as-of",
                &chrono::Utc::now().to_rfc3339(),
                "--json",
            ])
            .output()
            .unwrap(),
    );
    assert_eq!(now[0]["events"], own.len());

    // `--actor` names the operator reading: an admin or owner, recorded in the security log;
    // reads without it are the system's.
    let db = projections::ReadDb::connect(&t.url).await.unwrap();
    let identity = identity::IdentityDb::new(db.pool.clone());
    let ops = Uuid::new_v4();
    identity
        .insert_pending(
            ops,
            "ops@example.org",
            "not-a-hash",
            domain::athlete::Role::Admin,
        )
        .await
        .unwrap();
    identity.activate(ops).await.unwrap();
    let coach = Uuid::new_v4();
    identity
        .insert_pending(
            coach,
            "coach@example.org",
            "not-a-hash",
            domain::athlete::Role::Coach,
        )
        .await
        .unwrap();
    identity.activate(coach).await.unwrap();
    for (actor, why) in [
        ("nobody@example.org", "no active account"),
        ("coach@example.org", "is not an admin or owner"),
    ] {
        let out = stridelog(&t)
            .args(["audit", &athlete.to_string(), "--actor", actor])
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(out.stdout.is_empty(), "nothing printed before the refusal");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(why), "{err}");
    }
    let out = stridelog(&t)
        .args([
            "audit",
            &athlete.to_string(),
            "--actor",
            "OPS@example.org",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = stridelog(&t)
        .args([
            "replay",
            "athlete",
            &athlete.to_string(),
            "--as-of",
            &tenth,
            "--actor",
            &ops.to_string(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let views = identity
        .security_log_search(&identity::db::SecurityFilter {
            account_id: Some(athlete),
            kind: Some("admin_viewed".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let seen: Vec<(Option<String>, Option<String>)> =
        views.into_iter().map(|v| (v.actor_id, v.detail)).collect();
    assert_eq!(
        seen,
        [
            (Some(ops.to_string()), Some("replay".into())),
            (Some(ops.to_string()), Some("audit".into())),
            (None, Some("replay".into())),
            (None, Some("replay".into())),
            (None, Some("audit".into())),
        ]
    );
}

/// `users erase`: without `--yes` one line and nothing changes; with it the account is erased
/// (the CLI catches the read models up itself when no `serve` runs), and a second run is
/// refused clearly, by email (no such account now) and by id (erased already).
async fn users_erase_needs_yes_and_erases_once(t: TestStore) {
    let out = stridelog(&t)
        .args(["demo", "--days", "3", "--no-serve"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let athlete: Uuid = stdout
        .lines()
        .find_map(|l| l.strip_prefix("demo athlete: "))
        .expect("prints the athlete")
        .parse()
        .unwrap();
    let email = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("login: "))
        .and_then(|l| l.split_once(" / "))
        .map(|(email, _)| email.to_string())
        .expect("prints a login");
    let events = t.store.read_athlete(athlete, None).await.unwrap().len();

    let refused = stridelog(&t)
        .args(["users", "erase", &email])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8(refused.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(
        t.store.read_athlete(athlete, None).await.unwrap().len(),
        events
    );

    // Answers a `serve` cached in Redis for this athlete and for another (D41).
    let prefix = format!("stridelog-test-cli-erase-{}", Uuid::new_v4().simple());
    let other = Uuid::new_v4();
    for who in [athlete, other] {
        redis_cli(&[
            "SET",
            &format!("{prefix}:v1:{who}:activities:d=x:1"),
            "{}",
            "EX",
            "600",
        ]);
    }
    let out = stridelog(&t)
        .args(["users", "erase", &email, "--yes", "--json"])
        .args([
            "--redis-url",
            "redis://127.0.0.1:6379",
            "--redis-prefix",
            &prefix,
        ])
        .output()
        .unwrap();
    let report = &json_lines(&out)[0];
    let left = redis_cli(&["--scan", "--pattern", &format!("{prefix}:*")]);
    assert_eq!(
        left.lines().collect::<Vec<_>>(),
        [format!("{prefix}:v1:{other}:activities:d=x:1")],
        "the erased athlete's keys are gone, another's stay"
    );
    redis_cli(&["DEL", &format!("{prefix}:v1:{other}:activities:d=x:1")]);
    assert_eq!(report["athlete_id"], athlete.to_string());
    assert_eq!(report["read_models_purged"], true, "{report}");
    let history = t.store.read_athlete(athlete, None).await.unwrap();
    let erased = history.last().unwrap();
    assert_eq!(erased.event_type, "AthleteErased");
    assert_eq!(erased.position, report["position"].as_i64().unwrap());
    assert_eq!(erased.metadata.actor, Actor::system());
    assert_eq!(erased.payload.json().unwrap()["reason"], "admin_action");
    let readable: Vec<&str> = history[..history.len() - 1]
        .iter()
        .filter(|e| e.payload != store::Payload::Erased)
        .map(|e| e.event_type.as_str())
        .collect();
    assert!(readable.is_empty(), "still readable: {readable:?}");
    // The read models hold nothing of the athlete.
    let db = projections::ReadDb::connect(&t.url).await.unwrap();
    let engine = projections::Engine::new(t.store.clone(), db.clone(), projections::all());
    let profiles = engine.active_tables("profile").await.unwrap();
    assert_eq!(
        projections::profile::profile(&db.pool, &profiles, athlete)
            .await
            .unwrap(),
        None
    );

    let by_email = stridelog(&t)
        .args(["users", "erase", &email, "--yes"])
        .output()
        .unwrap();
    assert!(!by_email.status.success());
    let err = String::from_utf8(by_email.stderr).unwrap();
    assert!(err.contains("no account with the email"), "{err}");
    let by_id = stridelog(&t)
        .args(["users", "erase", &athlete.to_string(), "--yes"])
        .output()
        .unwrap();
    assert!(!by_id.status.success());
    let err = String::from_utf8(by_id.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("was erased already"), "{err}");
}

/// Redis at 127.0.0.1:6379, through redis-cli: its output.
fn redis_cli(args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", "6379"])
        .args(args)
        .output()
        .expect("redis-cli");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `demo --no-serve` seeds one athlete through the command path; a second run adds nothing.
async fn demo_seeds_once(t: TestStore) {
    let out = stridelog(&t)
        .args(["demo", "--days", "21", "--no-serve"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let athlete: Uuid = stdout
        .lines()
        .find_map(|l| l.strip_prefix("demo athlete: "))
        .expect("prints the athlete")
        .parse()
        .unwrap();
    let events = t.store.read_athlete(athlete, None).await.unwrap();
    assert!(events.len() > 21, "{} events", events.len());
    assert_eq!(events[0].event_type, "AthleteRegistered");
    assert!(events.iter().any(|e| e.event_type == "ActivityRecorded"));

    let again = stridelog(&t)
        .args(["demo", "--days", "21", "--no-serve"])
        .output()
        .unwrap();
    assert!(again.status.success());
    assert!(
        String::from_utf8(again.stderr)
            .unwrap()
            .contains("already here")
    );
    assert_eq!(
        t.store.read_athlete(athlete, None).await.unwrap().len(),
        events.len()
    );

    let bad = stridelog(&t)
        .args(["demo", "--days", "0", "--no-serve"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8(bad.stderr)
            .unwrap()
            .contains("--days must be at least 1")
    );

    // The demo prints a login that works, and the operator can make that account the owner.
    let login = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("login: "))
        .expect("prints a login");
    let (email, password) = login.split_once(" / ").unwrap();
    assert_eq!(password, "stridelog-demo");
    let out = stridelog(&t)
        .args(["users", "set-role", email, "owner", "--json"])
        .output()
        .unwrap();
    let line = &json_lines(&out)[0];
    assert_eq!(line["role"], "owner");
    assert_eq!(line["account_id"], athlete.to_string());
    let events = t.store.read_athlete(athlete, None).await.unwrap();
    let changed = events.last().unwrap();
    assert_eq!(changed.event_type, "RoleChanged");
    assert_eq!(changed.payload.json().unwrap()["to"], "owner");
    let nobody = stridelog(&t)
        .args(["users", "set-role", "nobody@example.org", "admin"])
        .output()
        .unwrap();
    assert!(!nobody.status.success());
    let err = String::from_utf8(nobody.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("no account with the email nobody@example.org"),
        "{err}"
    );
}

/// `analyze activity` runs the parser and the specification offline; a broken file is one
/// line and a failure.
#[test]
fn analyze_activity_offline() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/activities/");
    let out = Command::new(env!("CARGO_BIN_EXE_stridelog"))
        .args([
            "analyze",
            "activity",
            &format!("{data}run-2013-02-06.fit"),
            "--json",
        ])
        .env("STRIDELOG_DATABASE_URL", "mysql://never-opened")
        .output()
        .unwrap();
    let v = &json_lines(&out)[0];
    assert_eq!(v["sport"], "run");
    assert_eq!(v["samples"], 590);
    assert_eq!(v["moving_time_s"], 2110.0);
    assert_eq!(v["gap_model"], "minetti2002");
    assert!((v["efficiency_factor"].as_f64().unwrap() - 0.9688).abs() < 1e-4);
    for bad in [
        "bad/corrupt-header.fit",
        "bad/unexpected-eof.fit",
        "bad/truncated.gpx",
        "bad/not-xml.gpx",
        "NOTICE.md",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_stridelog"))
            .args(["analyze", "activity", &format!("{data}{bad}")])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{bad}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(bad),
            "{bad}: {err}"
        );
    }
}

/// `import`: a FIT file is recorded, its GPX twin is a duplicate, the same file again is
/// already imported, and a broken file is named, appends nothing, and fails the run.
async fn import_files(t: TestStore) {
    let out = stridelog(&t)
        .args(["demo", "--days", "3", "--no-serve"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let athlete = stdout
        .lines()
        .find_map(|l| l.strip_prefix("demo athlete: "))
        .expect("prints the athlete")
        .to_string();
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/activities/");
    let files: Vec<String> = [
        "run-2013-02-06.fit",
        "run-2013-02-06.gpx",
        "run-2013-02-06.fit",
        "bad/truncated.gpx",
    ]
    .iter()
    .map(|f| format!("{data}{f}"))
    .collect();
    let out = stridelog(&t)
        .arg("import")
        .args(&files)
        .args(["--athlete", &athlete, "--json"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a broken file fails the run");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("[4/4]"), "{stderr}");
    assert!(
        stderr.contains("1 of 4 files could not be imported"),
        "{stderr}"
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let statuses: Vec<&str> = lines
        .iter()
        .map(|l| l["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["recorded", "duplicate", "already_imported", "error"]
    );
    assert_eq!(lines[1]["activity_id"], lines[0]["activity_id"]);
    assert!(
        (lines[0]["efficiency"]["efficiency_factor"]
            .as_f64()
            .unwrap()
            - 0.9688)
            .abs()
            < 1e-4
    );
    assert!(
        lines[3]["error"]
            .as_str()
            .unwrap()
            .contains("truncated.gpx")
    );
    let events = t
        .store
        .read_athlete(athlete.parse().unwrap(), None)
        .await
        .unwrap();
    let imported = events
        .iter()
        .filter(|e| {
            e.event_type == "ActivityRecorded" && e.payload.json().unwrap()["source"] == "fit"
        })
        .count();
    assert_eq!(imported, 1);
}

/// `correlations analyze` reads the documented input format and finds a planted effect in a
/// generated athlete; a file that is not the format is one line and a failure.
#[test]
fn correlations_analyze_offline() {
    let planted = domain::simulate::Planted {
        input: "sleep_hours",
        lag_days: 1,
        r: 0.6,
    };
    let data = domain::simulate::athlete(
        &domain::simulate::Spec {
            seed: 5,
            days: 365,
            planted: Some(planted),
        },
        0,
    );
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("athlete.json");
    std::fs::write(&input, serde_json::to_vec(&data).unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stridelog"))
        .args(["correlations", "analyze", "--input"])
        .arg(&input)
        .arg("--json")
        .env("STRIDELOG_DATABASE_URL", "mysql://never-opened")
        .output()
        .unwrap();
    let v = &json_lines(&out)[0];
    assert!(v["tests_run"].as_u64().unwrap() > 400, "{v}");
    let sleep = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["input"] == "sleep_hours" && f["outcome"] == "efficiency_factor")
        .unwrap_or_else(|| panic!("no sleep finding in {v}"));
    assert_eq!(sleep["lag_days"], 1);
    assert_eq!(sleep["category"], "what_works");
    for key in ["r", "p", "q", "n", "n_eff", "ci_low", "ci_high"] {
        assert!(sleep[key].is_number(), "{key}: {sleep}");
    }
    assert!(sleep["q"].as_f64().unwrap() <= 0.10);
    assert!(sleep["ci_low"].as_f64().unwrap() > 0.0);
    let text = sleep["text"].as_str().unwrap();
    assert!(
        text.starts_with("After nights with sleep over ") && text.contains("next day"),
        "{text}"
    );

    std::fs::write(&input, b"{\"days\": 3}").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stridelog"))
        .args(["correlations", "analyze", "--input"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("not the input format"), "{err}");
}

/// `projections skipped` lists a poison event; `projections retry` refuses while it still
/// fails (exit 1, one line, nothing changed), `--dismiss` resolves it, and a second resolution
/// is refused.
async fn a_poison_event_is_listed_retried_and_dismissed(t: TestStore) {
    let athlete = Uuid::now_v7();
    let mut poison = checkin(athlete);
    poison.events[0].payload = json!({"type": "DailyCheckInLogged", "sleep_h": "lots"});
    let position = t.store.append(&poison).await.unwrap().positions[0];
    let rebuilt = stridelog(&t)
        .args(["projections", "rebuild", "journal"])
        .output()
        .unwrap();
    assert!(rebuilt.status.success(), "{rebuilt:?}");
    let unresolved = |t: &TestStore| {
        json_lines(
            &stridelog(t)
                .args(["projections", "skipped", "journal", "--json"])
                .output()
                .unwrap(),
        )
    };
    let listed = unresolved(&t);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["position"], position);
    assert_eq!(listed[0]["event_type"], "DailyCheckInLogged");
    assert_eq!(listed[0]["resolution"], serde_json::Value::Null);

    let position_arg = position.to_string();
    let retry = stridelog(&t)
        .args(["projections", "retry", "journal", &position_arg])
        .output()
        .unwrap();
    assert!(!retry.status.success());
    let stderr = String::from_utf8(retry.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "error: journal still cannot apply the event at position {position}; it stays skipped: cannot decode"
        )),
        "{stderr}"
    );
    assert_eq!(unresolved(&t)[0]["resolution"], serde_json::Value::Null);

    let dismissed = json_lines(
        &stridelog(&t)
            .args([
                "projections",
                "retry",
                "journal",
                &position_arg,
                "--dismiss",
                "--json",
            ])
            .output()
            .unwrap(),
    );
    assert_eq!(
        dismissed,
        [
            json!({"name": "journal", "position": position, "resolution": "dismissed",
            "unresolved_left": 0})
        ]
    );
    assert_eq!(unresolved(&t)[0]["resolution"], "dismissed");
    let listed = json_lines(
        &stridelog(&t)
            .args(["projections", "list", "--json"])
            .output()
            .unwrap(),
    );
    let journal = listed.iter().find(|p| p["name"] == "journal").unwrap();
    assert_eq!(journal["skipped_events"], 0, "{journal}");

    let again = stridelog(&t)
        .args([
            "projections",
            "retry",
            "journal",
            &position_arg,
            "--dismiss",
        ])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        String::from_utf8(again.stderr)
            .unwrap()
            .contains("has no unresolved skipped event")
    );
}

/// From a fresh checkout nothing named `stridelog` is on the PATH: the commands the demo prints
/// name the binary that ran, and each runs as printed, from the same directory, on the embedded
/// default it seeded (./data, a key generated beside it).
#[test]
fn the_commands_the_demo_prints_run_as_printed() {
    let dir = tempfile::tempdir().unwrap();
    let clean = |cmd: &mut Command| {
        cmd.current_dir(dir.path())
            .env_remove("STRIDELOG_DATABASE_URL")
            .env_remove("STRIDELOG_MASTER_KEY")
            .env_remove("STRIDELOG_JWT_SECRET")
            .env_remove("RUST_LOG");
    };
    let mut demo = Command::new(env!("CARGO_BIN_EXE_stridelog"));
    clean(&mut demo);
    let out = demo
        .args(["demo", "--days", "14", "--no-serve"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("data/stridelog.db").exists());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let athlete = stdout
        .lines()
        .find_map(|l| l.strip_prefix("demo athlete: "))
        .expect("prints the athlete");
    // The binary lives outside the scratch directory, so the demo names it by its full path.
    let commands: Vec<&str> = stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with(env!("CARGO_BIN_EXE_stridelog")))
        .collect();
    assert_eq!(commands.len(), 4, "{stdout}");
    for line in commands {
        let mut shell = Command::new("bash");
        clean(&mut shell);
        let out = shell.args(["-o", "pipefail", "-c", line]).output().unwrap();
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Every command but the projection list is about the demo athlete.
        let expected = if line.ends_with(" projections list") {
            "correlation_inputs"
        } else {
            athlete
        };
        assert!(printed.contains(expected), "{line}: {printed}");
    }
}

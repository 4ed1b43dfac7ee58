//! Registration cannot strand an email: `stridelog serve` is stopped for good at a step of a
//! registration (the `failpoints` feature, enabled for this package's tests, parks the request
//! when `STRIDELOG_FAILPOINT` names the step), SIGKILLed there, and a fresh server on the same
//! database must let the email be used: reclaimed when the crash came before the event,
//! completed when it came after.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};
use store::StreamId;
use store::testing::TestStore;
use uuid::Uuid;

const EMAIL: &str = "crash@example.org";
const FIRST_PASSWORD: &str = "first password 1";
const SECOND_PASSWORD: &str = "second password 2";

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    /// Starts `serve` and waits until it answers; with `failpoint`, waits for nothing more.
    fn start(t: &TestStore, failpoint: Option<&str>) -> (Self, mpsc::Receiver<String>) {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_stridelog"));
        cmd.args(["serve"])
            .env("STRIDELOG_DATABASE_URL", &t.url)
            .env("STRIDELOG_MASTER_KEY", t.master.to_base64())
            .env(
                "STRIDELOG_JWT_SECRET",
                "c3RyaWRlbG9nLWNyYXNoLXRlc3RzLWp3dC1zZWNyZXQtMzJieXRlcw==",
            )
            .env("STRIDELOG_LISTEN", format!("127.0.0.1:{port}"))
            .env_remove("RUST_LOG")
            .env_remove("STRIDELOG_FAILPOINT")
            // Tests that are not about rate limits register and call in bulk from one address.
            .env("STRIDELOG_RATE_GENERAL", "1000000/s")
            .env("STRIDELOG_RATE_ADMIN", "1000000/s")
            .env("STRIDELOG_RATE_RECOMPUTE", "1000000/s")
            .env("STRIDELOG_RATE_REGISTER", "1000000/s")
            .env("STRIDELOG_RATE_REGISTER_BLOCK", "1000000/s")
            .stderr(Stdio::piped());
        if let Some(f) = failpoint {
            cmd.env("STRIDELOG_FAILPOINT", f);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let server = Server { child, port };
        for _ in 0..300 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return (server, rx);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("serve did not come up");
    }

    fn kill(mut self) {
        // `Child::kill` is SIGKILL on Unix: no destructor, no flush, no graceful shutdown.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request; the status and the JSON body (`Null` when empty). `None` when the
/// connection ended without a response.
fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Option<(u16, Value)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n{auth}\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let (head, body) = resp.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or(Value::String(body.to_string()))
    };
    Some((status, body))
}

/// A read as a client makes it: a 503 with `retry_after_s` is retried after that long. The
/// killed server's projection leases stay its own for up to `LEASE` (5 s) after it died, as
/// long as a read waits (`READ_WAIT`), so the first read after a crash may be told to retry.
fn read_retrying(port: u16, path: &str, token: &str) -> (u16, Value) {
    for _ in 0..30 {
        let (code, body) = http(port, "GET", path, Some(token), None).expect("a response");
        match body["retry_after_s"].as_u64() {
            Some(s) if code == 503 => std::thread::sleep(Duration::from_secs(s)),
            _ => return (code, body),
        }
    }
    panic!("{path} answered 503 for 30 retries");
}

fn register(port: u16, password: &str) -> (u16, Value) {
    http(
        port,
        "POST",
        "/v1/auth/register",
        None,
        Some(json!({"email": EMAIL, "password": password, "display_name": "Crash Test"})),
    )
    .expect("a response")
}

fn login(port: u16, password: &str) -> (u16, Value) {
    http(
        port,
        "POST",
        "/v1/auth/login",
        None,
        Some(json!({"email": EMAIL, "password": password})),
    )
    .expect("a response")
}

/// Starts a server that stops at `failpoint`, registers, SIGKILLs it there.
fn crash_at(t: &TestStore, failpoint: &str) {
    let (server, stderr) = Server::start(t, Some(failpoint));
    let port = server.port;
    let request = std::thread::spawn(move || {
        http(
            port,
            "POST",
            "/v1/auth/register",
            None,
            Some(json!({"email": EMAIL, "password": FIRST_PASSWORD, "display_name": "Crash Test"})),
        )
    });
    let marker = format!("failpoint {failpoint} reached");
    loop {
        let line = stderr
            .recv_timeout(Duration::from_secs(60))
            .expect("the registration reached the failpoint");
        if line.contains(&marker) {
            break;
        }
    }
    server.kill();
    assert_eq!(
        request.join().unwrap(),
        None,
        "the killed server never answered"
    );
}

async fn pending_row(t: &TestStore) -> (Uuid, String, u64) {
    let db = projections::ReadDb::connect(&t.url).await.unwrap();
    let (id, status): (String, String) =
        sqlx::query_as("SELECT account_id, status FROM auth_accounts WHERE email = $1")
            .bind(EMAIL)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    let id: Uuid = id.parse().unwrap();
    let version = t
        .store
        .stream_version(&StreamId::new("athlete", id.to_string()))
        .await
        .unwrap();
    (id, status, version)
}

/// The crash came before the event: the row is reclaimed once it is older than the grace
/// period, and the email registers again with a new password.
async fn a_crash_before_the_event_frees_the_email(t: TestStore) {
    crash_at(&t, "register-after-account");
    let (abandoned, status, version) = pending_row(&t).await;
    assert_eq!((status.as_str(), version), ("pending", 0));

    let (server, _) = Server::start(&t, None);
    let (code, body) = login(server.port, FIRST_PASSWORD);
    assert_eq!(code, 401, "no account exists yet: {body}");
    // Within the grace period the row may belong to a registration still running.
    let (code, body) = register(server.port, SECOND_PASSWORD);
    assert_eq!(code, 409, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("in progress"),
        "{body}"
    );

    // The crash happened a minute ago.
    let db = projections::ReadDb::connect(&t.url).await.unwrap();
    sqlx::query(
        "UPDATE auth_accounts SET created_at_us = created_at_us - 60000000 WHERE email = $1",
    )
    .bind(EMAIL)
    .execute(&db.pool)
    .await
    .unwrap();
    let (code, body) = register(server.port, SECOND_PASSWORD);
    assert_eq!(code, 201, "{body}");
    let account: Uuid = body["account_id"].as_str().unwrap().parse().unwrap();
    assert_ne!(account, abandoned);
    let (code, body) = login(server.port, SECOND_PASSWORD);
    assert_eq!(
        (code, &body["account_id"]),
        (200, &json!(account.to_string())),
        "{body}"
    );
    assert_eq!(login(server.port, FIRST_PASSWORD).0, 401);
    assert_eq!(pending_row(&t).await, (account, "active".into(), 1));
    server.kill();
}

/// The crash came after the event: the owner's login completes the account.
async fn a_crash_after_the_event_is_completed_by_login(t: TestStore) {
    crash_at(&t, "register-after-event");
    let (id, status, version) = pending_row(&t).await;
    assert_eq!((status.as_str(), version), ("pending", 1));

    let (server, _) = Server::start(&t, None);
    // A wrong password completes nothing.
    assert_eq!(login(server.port, SECOND_PASSWORD).0, 401);
    assert_eq!(pending_row(&t).await.1, "pending");
    let (code, body) = login(server.port, FIRST_PASSWORD);
    assert_eq!(
        (code, &body["account_id"]),
        (200, &json!(id.to_string())),
        "{body}"
    );
    let token = body["access_token"].as_str().unwrap().to_string();
    let (code, me) = read_retrying(server.port, "/v1/me", &token);
    assert_eq!(
        (code, &me["display_name"]),
        (200, &json!("Crash Test")),
        "{me}"
    );
    assert_eq!(register(server.port, SECOND_PASSWORD).0, 409);
    assert_eq!(pending_row(&t).await, (id, "active".into(), 1));
    server.kill();
}

/// The crash came after the event: a new registration of the email completes the account
/// (and is told to log in); the first password is the account's.
async fn a_crash_after_the_event_is_completed_by_register(t: TestStore) {
    crash_at(&t, "register-after-event");
    let (id, _, _) = pending_row(&t).await;

    let (server, _) = Server::start(&t, None);
    let (code, body) = register(server.port, SECOND_PASSWORD);
    assert_eq!(code, 409, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("log in"),
        "{body}"
    );
    assert_eq!(pending_row(&t).await, (id, "active".into(), 1));
    assert_eq!(login(server.port, SECOND_PASSWORD).0, 401);
    let (code, body) = login(server.port, FIRST_PASSWORD);
    assert_eq!(
        (code, &body["account_id"]),
        (200, &json!(id.to_string())),
        "{body}"
    );
    server.kill();
}

store::on_both_backends!(
    a_crash_before_the_event_frees_the_email,
    a_crash_after_the_event_is_completed_by_login,
    a_crash_after_the_event_is_completed_by_register,
);

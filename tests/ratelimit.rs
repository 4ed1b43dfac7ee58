//! Rate limits across processes (D39): three `stridelog serve` processes on one PostgreSQL
//! database and one Redis (127.0.0.1:6379, a key prefix of this test's own) enforce one limit
//! between them. One of them reaches Redis through a proxy the test then stops, as if Redis
//! died mid-test: that process goes on limiting on its own and says so in `/health`, and the
//! others keep sharing the limit.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use store::testing::TestStore;

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(t: &TestStore, redis_url: &str, prefix: &str) -> Self {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = Command::new(env!("CARGO_BIN_EXE_stridelog"))
            .args(["serve"])
            .env("STRIDELOG_DATABASE_URL", &t.url)
            .env("STRIDELOG_MASTER_KEY", t.master.to_base64())
            .env(
                "STRIDELOG_JWT_SECRET",
                "c3RyaWRlbG9nLXJhdGVsaW1pdC10ZXN0cy1qd3Qtc2VjcmV0LTMy",
            )
            .env("STRIDELOG_LISTEN", format!("127.0.0.1:{port}"))
            .env("STRIDELOG_REDIS_URL", redis_url)
            .env("STRIDELOG_REDIS_PREFIX", prefix)
            .env("STRIDELOG_RATE_GENERAL", "6/min")
            .env("STRIDELOG_RATE_REGISTER", "1000/s")
            .env("STRIDELOG_RATE_REGISTER_BLOCK", "1000/s")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Server { child, port };
        for _ in 0..300 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("serve did not come up");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request: the status and the JSON body (`Null` when empty).
fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
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
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").expect("a response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = serde_json::from_str(body).unwrap_or(Value::Null);
    (status, body)
}

/// A TCP proxy to Redis that can be stopped: every relayed connection is cut and no new one
/// is accepted, as a Redis that died would look to its clients.
struct RedisProxy {
    port: u16,
    stopped: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl RedisProxy {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stopped = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (stop, conns) = (stopped.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if stop.load(Ordering::SeqCst) {
                    // Accepted only to be refused: the listener itself dies with the thread.
                    let _ = client.shutdown(Shutdown::Both);
                    break;
                }
                let Ok(redis) = TcpStream::connect("127.0.0.1:6379") else {
                    continue;
                };
                let mut list = conns.lock().unwrap();
                list.push(client.try_clone().unwrap());
                list.push(redis.try_clone().unwrap());
                drop(list);
                pipe(client.try_clone().unwrap(), redis.try_clone().unwrap());
                pipe(redis, client);
            }
        });
        Self {
            port,
            stopped,
            open,
        }
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        for conn in self.open.lock().unwrap().drain(..) {
            let _ = conn.shutdown(Shutdown::Both);
        }
        // Wakes the accept loop so it sees the flag and ends.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Both);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_share_one_limit_through_redis() {
    let t = TestStore::postgres().await;
    let prefix = format!("stridelog-test:3proc:{}:", uuid::Uuid::new_v4());
    let proxy = RedisProxy::start();
    let servers = [
        Server::start(&t, "redis://127.0.0.1:6379", &prefix),
        Server::start(&t, "redis://127.0.0.1:6379", &prefix),
        Server::start(&t, &format!("redis://127.0.0.1:{}", proxy.port), &prefix),
    ];
    let (code, reg) = http(
        servers[0].port,
        "POST",
        "/v1/auth/register",
        None,
        Some(
            json!({"email": "shared@example.org", "password": "correct horse battery",
            "display_name": "Shared"}),
        ),
    );
    assert_eq!(code, 201, "{reg}");
    let token = reg["access_token"].as_str().unwrap().to_string();
    // Six a minute in all: two from each process, then none from any.
    for i in 0..6 {
        let (code, body) = http(servers[i % 3].port, "GET", "/v1/me", Some(&token), None);
        assert_eq!(code, 200, "request {}: {body}", i + 1);
    }
    for s in &servers {
        let (code, body) = http(s.port, "GET", "/v1/me", Some(&token), None);
        assert_eq!(code, 429, "{body}");
        assert_eq!(body["type"], "https://stridelog.dev/problems/rate-limited");
    }
    let (code, health) = http(servers[1].port, "GET", "/health", None, None);
    assert_eq!(code, 200, "{health}");
    assert_eq!(health["rate_limiter"]["state"], "ok", "{health}");

    let (code, health) = http(servers[2].port, "GET", "/health", None, None);
    assert_eq!(health["rate_limiter"]["state"], "ok", "{code} {health}");

    // Redis goes away for the third process. It cannot know what the others counted, so it
    // counts on its own from here: a whole quota, then refusals; never unlimited.
    proxy.stop();
    for i in 0..6 {
        let (code, body) = http(servers[2].port, "GET", "/v1/me", Some(&token), None);
        assert_eq!(code, 200, "request {} after Redis went: {body}", i + 1);
    }
    let (code, body) = http(servers[2].port, "GET", "/v1/me", Some(&token), None);
    assert_eq!(code, 429, "{body}");
    let (code, health) = http(servers[2].port, "GET", "/health", None, None);
    assert_eq!(code, 200, "{health}");
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["rate_limiter"]["backend"], "redis", "{health}");
    assert_eq!(health["rate_limiter"]["state"], "degraded", "{health}");
    // The others still share the limit through Redis.
    let (code, body) = http(servers[0].port, "GET", "/v1/me", Some(&token), None);
    assert_eq!(code, 429, "{body}");
    let (code, health) = http(servers[0].port, "GET", "/health", None, None);
    assert_eq!(health["rate_limiter"]["state"], "ok", "{code} {health}");
}

//! The server's own bounds, against a real `stridelog serve` process: thousands of idle and
//! slow-header connections leave `/health` answering and the process's descriptors under their
//! cap; connections over the per-client cap are closed at once; a body that stops arriving is
//! 408 and an announced oversized one 413, both problem+json; requests beyond the in-flight cap
//! are shed with 503 and `Retry-After`; imports beyond their slots wait, then 503.
//! The bounds do not depend on the store, so these run on the embedded default only.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use store::testing::TestStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(t: &TestStore, settings: &[(&str, &str)]) -> Self {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_stridelog"));
        cmd.args(["serve", "--no-worker"])
            .env("STRIDELOG_DATABASE_URL", &t.url)
            .env("STRIDELOG_MASTER_KEY", t.master.to_base64())
            .env(
                "STRIDELOG_JWT_SECRET",
                "c3RyaWRlbG9nLWVkZ2UtdGVzdHMtand0LXNlY3JldC0zMmJ5dGVzIQ==",
            )
            .env("STRIDELOG_LISTEN", format!("127.0.0.1:{port}"))
            .env_remove("RUST_LOG")
            // The rate limits are not what these tests are about (tests/ratelimit.rs is).
            .env("STRIDELOG_RATE_GENERAL", "100000/min")
            .env("STRIDELOG_RATE_REGISTER", "1000/h")
            .env("STRIDELOG_RATE_REGISTER_BLOCK", "1000/h")
            .stderr(Stdio::piped());
        for (k, v) in settings {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || for _ in stderr.lines().map_while(Result::ok) {});
        let server = Server { child, port };
        for _ in 0..300 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("serve did not come up");
    }

    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .unwrap()
            .count()
    }

    /// The process's soft limit on open files, as the kernel enforces it.
    fn fd_cap(&self) -> usize {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.child.id())).unwrap();
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap();
        line.split_whitespace().nth(3).unwrap().parse().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A connection from `source` (any 127/8 address is this machine), as an attacker spreads
/// connections over addresses to stay under the per-client cap.
async fn connect_from(source: Ipv4Addr, port: u16) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
    socket
        .connect(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port))
        .await
}

/// One request on a fresh connection from 127.0.0.1; status, headers (lower-cased) and body.
async fn request(port: u16, raw: String) -> (u16, String, Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(raw.as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.unwrap();
    let resp = String::from_utf8_lossy(&resp).into_owned();
    let (head, body) = resp.split_once("\r\n\r\n").expect("a response head");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = serde_json::from_str(body).unwrap_or(Value::String(body.to_string()));
    (status, head.to_ascii_lowercase(), body)
}

async fn health(port: u16) -> u16 {
    request(
        port,
        "GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".into(),
    )
    .await
    .0
}

/// Whether the server closed the connection within `within` (EOF or reset), rather than
/// keeping it open waiting for a request.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(within, s.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) => false,
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_header_connections_leave_health_answering() {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let t = TestStore::sqlite().await;
    let server = Server::start(&t, &[]);
    let port = server.port;
    let baseline_fds = server.open_fds();
    let cap = server.fd_cap();

    // 5,000 idle connections from 20 addresses (250 each, under the per-client cap of 256),
    // and 500 that trickle a request head one header line every 500 ms, never finishing it.
    let mut idle = Vec::new();
    for chunk in (0..5000u32).collect::<Vec<_>>().chunks(250) {
        let opened = futures::future::join_all(chunk.iter().map(|i| {
            let source = Ipv4Addr::new(127, 0, 1, (i % 20) as u8 + 2);
            connect_from(source, port)
        }))
        .await;
        idle.extend(opened.into_iter().map(|c| c.expect("an idle connection")));
    }
    let mut slow = futures::future::join_all((0..500u32).map(|i| async move {
        let source = Ipv4Addr::new(127, 0, 2, (i % 4) as u8 + 2);
        let mut s = connect_from(source, port).await.expect("a slow connection");
        s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        s
    }))
    .await;
    let trickle = tokio::spawn(async move {
        for n in 0..30 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            for s in slow.iter_mut() {
                let _ = s.write_all(format!("x-slow-{n}: 1\r\n").as_bytes()).await;
            }
        }
        slow
    });

    // Throughout: /health answers within a second, and the descriptors stay under the cap.
    let mut peak_fds = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        let probe = Instant::now();
        let status = tokio::time::timeout(Duration::from_secs(1), health(port))
            .await
            .expect("/health answered within 1 s under 5,500 open connections");
        assert_eq!(status, 200);
        peak_fds = peak_fds.max(server.open_fds());
        tokio::time::sleep(Duration::from_millis(250).saturating_sub(probe.elapsed())).await;
    }
    assert!(
        peak_fds >= baseline_fds + 5000,
        "the server held the connections ({peak_fds} descriptors, {baseline_fds} before)"
    );
    assert!(
        peak_fds < cap,
        "{peak_fds} descriptors against a cap of {cap}"
    );

    // After the header-read timeout every one of them is closed by the server: the idle ones
    // that never sent a byte and the slow ones still sending.
    let mut slow = trickle.await.unwrap();
    for s in idle
        .iter_mut()
        .step_by(50)
        .chain(slow.iter_mut().step_by(10))
    {
        assert!(
            closed_within(s, Duration::from_secs(15)).await,
            "a connection without a complete request head is closed"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.open_fds() > baseline_fds + 50 {
        assert!(Instant::now() < deadline, "descriptors were released");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(health(port).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_per_client_cap_are_closed_at_once() {
    let t = TestStore::sqlite().await;
    let server = Server::start(&t, &[("STRIDELOG_MAX_CONNECTIONS_PER_CLIENT", "40")]);
    let source = Ipv4Addr::new(127, 0, 3, 7);
    let mut conns = Vec::new();
    for _ in 0..50 {
        conns.push(connect_from(source, server.port).await.unwrap());
    }
    let closed = futures::future::join_all(
        conns
            .iter_mut()
            .map(|s| closed_within(s, Duration::from_secs(1))),
    )
    .await
    .into_iter()
    .filter(|c| *c)
    .count();
    assert_eq!(
        closed, 10,
        "the ten over the cap of 40 are closed, the rest kept"
    );
    // Another address is not affected by this one's connections.
    assert_eq!(health(server.port).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_that_stall_or_announce_too_much_are_refused() {
    let t = TestStore::sqlite().await;
    let server = Server::start(&t, &[("STRIDELOG_BODY_IDLE_TIMEOUT_S", "1")]);
    let port = server.port;

    // 1 GB announced: refused on the header, without waiting for any of it.
    let (status, head, body) = request(
        port,
        "POST /v1/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: 1000000000\r\n\r\n"
            .into(),
    )
    .await;
    assert_eq!(status, 413);
    assert!(head.contains("content-type: application/problem+json"));
    assert_eq!(body["status"], 413);

    // Ten bytes of a hundred, then nothing: 408 once the body has been idle for its timeout.
    let (status, head, body) = request(
        port,
        "POST /v1/auth/register HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: 100\r\n\r\n{\"email\":"
            .into(),
    )
    .await;
    assert_eq!(status, 408, "{body}");
    assert!(head.contains("content-type: application/problem+json"));
    assert_eq!(body["status"], 408);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("Nothing was stored")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_in_flight_cap_are_shed() {
    let t = TestStore::sqlite().await;
    let server = Server::start(
        &t,
        &[
            ("STRIDELOG_MAX_IN_FLIGHT", "2"),
            ("STRIDELOG_BODY_IDLE_TIMEOUT_S", "5"),
        ],
    );
    let port = server.port;
    // Two requests in progress, each waiting for a body that has not arrived.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(
            b"POST /v1/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
              content-length: 50\r\n\r\n",
        )
        .await
        .unwrap();
        held.push(s);
    }
    // The server has them once a third is shed; until then, it may still be reading them.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (status, head, body) = loop {
        let answer = request(
            port,
            "GET /v1/me HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".into(),
        )
        .await;
        if answer.0 == 503 || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status, 503, "{body}");
    assert!(head.contains("retry-after: 1"), "{head}");
    assert_eq!(body["title"], "Server busy");
    // Health is never shed.
    assert_eq!(health(port).await, 200);
    drop(held);
    // Once they are gone, requests are served again (401: no token, but served).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, _) = request(
            port,
            "GET /v1/me HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".into(),
        )
        .await;
        if status == 401 {
            break;
        }
        assert!(Instant::now() < deadline, "still shedding: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_beyond_their_slots_wait_then_get_503() {
    let t = TestStore::sqlite().await;
    let server = Server::start(
        &t,
        &[
            ("STRIDELOG_IMPORT_SLOTS", "1"),
            ("STRIDELOG_BODY_IDLE_TIMEOUT_S", "30"),
        ],
    );
    let port = server.port;
    let register = json!({"email": "edge@example.org", "password": "edge password 1",
                          "display_name": "Edge"})
    .to_string();
    let (status, _, body) = request(
        port,
        format!(
            "POST /v1/auth/register HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{register}",
            register.len()
        ),
    )
    .await;
    assert!([200, 201, 202].contains(&status), "{status} {body}");
    let login = json!({"email": "edge@example.org", "password": "edge password 1"}).to_string();
    let (status, _, body) = request(
        port,
        format!(
            "POST /v1/auth/login HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{login}",
            login.len()
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_string();
    let import_head = |len: usize| {
        format!(
            "POST /v1/activities/import HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\
             authorization: Bearer {token}\r\n\
             content-type: multipart/form-data; boundary=XyZ\r\ncontent-length: {len}\r\n\r\n"
        )
    };
    // The first import holds the one slot: its upload has begun and not finished.
    let mut first = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    first
        .write_all(format!("{}--XyZ\r\n", import_head(10_000)).as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The second waits for it (10 s), then is told to come back.
    let part = "--XyZ\r\ncontent-disposition: form-data; name=\"file\"; filename=\"a.gpx\"\r\n\
                content-type: application/gpx+xml\r\n\r\n<gpx></gpx>\r\n--XyZ--\r\n";
    let (status, head, body) = request(port, format!("{}{part}", import_head(part.len()))).await;
    assert_eq!(status, 503, "{body}");
    assert!(head.contains("retry-after: 5"), "{head}");
    assert_eq!(body["title"], "Imports busy");
    drop(first);
}

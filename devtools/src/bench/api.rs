//! `stridelog bench api`: the HTTP API under concurrent load, beside `GET /health` on the same
//! server in the same run. The server runs in this process, as `serve` runs it (embedded
//! projector, the same router); the load comes from keep-alive HTTP/1.1 connections over
//! loopback.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{ScratchDb, require_postgres};

#[derive(Debug, clap::Args)]
pub struct Options {
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 16)]
    athletes: usize,
    #[arg(long, default_value_t = 100)]
    activities_per_athlete: usize,
    #[arg(long)]
    json: bool,
}

/// Needs PostgreSQL: measures on a scratch database created on the server at `store_url`.
pub async fn run(
    store_url: &str,
    redact: fn(&str) -> String,
    options: Options,
) -> anyhow::Result<()> {
    require_postgres(store_url, "api")?;
    let scratch = ScratchDb::create(store_url, redact).await?;
    let secret: [u8; 32] = rand::random();
    let result = measure(&scratch.url, &secret, options).await;
    scratch.drop_db().await;
    result
}

/// One keep-alive connection speaking just enough HTTP/1.1 for the benchmark.
struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        Self::open_from(addr, std::net::Ipv4Addr::LOCALHOST).await
    }

    /// A connection from `source` (any 127/8 address is this machine): a distinct client, as
    /// the rate limits and the hashing pool see it.
    async fn open_from(addr: SocketAddr, source: std::net::Ipv4Addr) -> anyhow::Result<Self> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(source.into(), 0))?;
        let stream = socket.connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            reader: BufReader::new(stream),
        })
    }

    /// Sends one request and reads the whole response; returns the status and body.
    async fn call(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let mut req = format!("{method} {path} HTTP/1.1\r\nhost: bench\r\n");
        if let Some(t) = token {
            req.push_str(&format!("authorization: Bearer {t}\r\n"));
        }
        if let Some(b) = body {
            req.push_str(&format!(
                "content-type: application/json\r\ncontent-length: {}\r\n\r\n{b}",
                b.len()
            ));
        } else {
            req.push_str("\r\n");
        }
        self.reader.get_mut().write_all(req.as_bytes()).await?;
        let mut line = String::new();
        self.reader.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {line:?}"))?;
        let mut length = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line).await?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse()?;
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).await?;
        Ok((status, body))
    }
}

struct Outcome {
    requests: u64,
    errors: u64,
    latencies_us: Vec<u64>,
    elapsed: Duration,
}

impl Outcome {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile_ms(&self, q: f64) -> f64 {
        let mut l = self.latencies_us.clone();
        l.sort_unstable();
        if l.is_empty() {
            return f64::NAN;
        }
        let i = ((l.len() as f64 - 1.0) * q).round() as usize;
        l[i] as f64 / 1000.0
    }
}

#[derive(Clone, Copy)]
enum Load {
    Health,
    ListActivities,
    Trends,
    Correlations,
    PutCheckIn,
}

/// `connections` keep-alive connections issue `load` back to back for `seconds`.
async fn drive(
    addr: SocketAddr,
    load: Load,
    tokens: Arc<Vec<String>>,
    connections: usize,
    seconds: u64,
) -> anyhow::Result<Outcome> {
    // Check-ins go to distinct past dates, as athletes' logs do: no two writes share a day.
    let next_day = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let tokens = tokens.clone();
        let next_day = next_day.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await?;
            let token = tokens[c % tokens.len()].clone();
            let today = chrono::Utc::now().date_naive();
            let (mut n, mut errors, mut lat) = (0u64, 0u64, Vec::new());
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let (status, _) = match load {
                    Load::Health => conn.call("GET", "/health", None, None).await?,
                    Load::ListActivities => {
                        conn.call("GET", "/v1/activities?limit=20", Some(&token), None)
                            .await?
                    }
                    Load::Trends => {
                        conn.call("GET", "/v1/efficiency/trends?days=365", Some(&token), None)
                            .await?
                    }
                    Load::Correlations => {
                        conn.call("GET", "/v1/correlations", Some(&token), None)
                            .await?
                    }
                    Load::PutCheckIn => {
                        let day = next_day.fetch_add(1, Ordering::Relaxed);
                        let date = today - chrono::Duration::days(1 + day as i64);
                        let body = format!(
                            r#"{{"sleep_h":{:.1},"stress":{},"readiness":4}}"#,
                            6.0 + (day % 30) as f64 / 10.0,
                            1 + day % 5
                        );
                        conn.call(
                            "PUT",
                            &format!("/v1/checkins/{date}"),
                            Some(&token),
                            Some(&body),
                        )
                        .await?
                    }
                };
                lat.push(t0.elapsed().as_micros() as u64);
                n += 1;
                if status >= 400 {
                    errors += 1;
                }
            }
            anyhow::Ok((n, errors, lat))
        }));
    }
    let mut out = Outcome {
        requests: 0,
        errors: 0,
        latencies_us: Vec::new(),
        elapsed: Duration::ZERO,
    };
    for t in tasks {
        let (n, e, l) = t.await??;
        out.requests += n;
        out.errors += e;
        out.latencies_us.extend(l);
    }
    out.elapsed = started.elapsed();
    Ok(out)
}

async fn measure(url: &str, secret: &[u8], o: Options) -> anyhow::Result<()> {
    if o.connections == 0 || o.seconds == 0 || o.athletes == 0 {
        bail!("--connections, --seconds and --athletes must be positive");
    }
    let server = Server::start(url, secret).await?;
    let tokens = Arc::new(sign_up_athletes(server.addr, &o).await?);
    let mut results = measure_endpoints(&server, tokens, &o).await?;
    results.extend(registration_flood(&server).await?);
    server.stop().await;
    print_results(&results, o.json);
    Ok(())
}

/// The API as `serve` runs it (the same router, an embedded projector), on a free loopback port;
/// and the same state without the read cache (D41) on another, for uncached figures.
struct Server {
    addr: SocketAddr,
    uncached_addr: SocketAddr,
    /// The same state with the default rate limits (`serve` without settings), for the
    /// registration flood.
    limited_addr: SocketAddr,
    /// The cache behind `addr` (in process, as `serve` without Redis), for its hit rate.
    cache: api::cache::ReadCache,
    stop_server: tokio::sync::watch::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    uncached_server: tokio::task::JoinHandle<std::io::Result<()>>,
    limited_server: tokio::task::JoinHandle<std::io::Result<()>>,
    stop_worker: tokio::sync::oneshot::Sender<()>,
    worker: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Server {
    async fn start(url: &str, secret: &[u8]) -> anyhow::Result<Self> {
        let master = store::MasterKey::generate();
        let store = store::EventStore::connect(
            url,
            master,
            store::StoreOptions {
                max_connections: 40,
            },
        )
        .await?;
        store.migrate().await?;
        let commands = commands::CommandBus::new(
            store.clone(),
            domain::DomainServices::new(Arc::new(commands::SystemClock)),
            domain::upcasters(),
        );
        let engine = Arc::new(projections::Engine::new(
            store.clone(),
            projections::ReadDb::connect(url).await?,
            projections::all(),
        ));
        // The benchmark measures the API, not its rate limits.
        let state = api::AppState::new(store.clone(), commands, engine, secret)?
            .with_limits(api::limits::Settings::unlimited())?;
        let cache = state.cache.clone();
        let uncached = api::router(state.clone().with_cache(api::cache::ReadCache::off()));
        let limited = api::router(
            state
                .clone()
                .with_limits(api::limits::Settings::default())?,
        );
        let app = api::router(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let uncached_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let uncached_addr = uncached_listener.local_addr()?;
        let limited_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let limited_addr = limited_listener.local_addr()?;
        let (stop_server, stop_rx) = tokio::sync::watch::channel(());
        let serve = |listener, app: axum::Router| {
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(async move {
                    let _ = stop.changed().await;
                })
                .await
            })
        };
        let server = serve(listener, app);
        let uncached_server = serve(uncached_listener, uncached);
        let limited_server = serve(limited_listener, limited);
        let (stop_worker, worker_stopped) = tokio::sync::oneshot::channel::<()>();
        let worker = {
            let (store, url) = (store.clone(), url.to_string());
            tokio::spawn(async move {
                workers::run_projector(store, &url, async {
                    let _ = worker_stopped.await;
                })
                .await
            })
        };
        Ok(Self {
            addr,
            uncached_addr,
            limited_addr,
            cache,
            stop_server,
            server,
            uncached_server,
            limited_server,
            stop_worker,
            worker,
        })
    }

    async fn stop(self) {
        let _ = self.stop_server.send(());
        let _ = self.stop_worker.send(());
        let _ = self.server.await;
        let _ = self.uncached_server.await;
        let _ = self.limited_server.await;
        let _ = self.worker.await;
    }
}

/// Athletes with some history, signed in through the API: their access tokens, once the read
/// models hold every activity.
async fn sign_up_athletes(addr: SocketAddr, o: &Options) -> anyhow::Result<Vec<String>> {
    eprintln!(
        "bench api: {} athletes x {} activities",
        o.athletes, o.activities_per_athlete
    );
    let mut setup = Conn::open(addr).await?;
    let mut tokens = Vec::new();
    let mut last_position = 0i64;
    for i in 0..o.athletes {
        let body = json!({"email": format!("bench{i}@example.org"), "password": "bench-password-1",
                          "display_name": format!("Bench {i}")})
        .to_string();
        let (status, reply) = setup
            .call("POST", "/v1/auth/register", None, Some(&body))
            .await?;
        if status != 201 {
            bail!("register: {status} {}", String::from_utf8_lossy(&reply));
        }
        let reply: serde_json::Value = serde_json::from_slice(&reply)?;
        let token = reply["access_token"].as_str().context("token")?.to_string();
        let position = record_history(&mut setup, &token, o.activities_per_athlete).await?;
        last_position = last_position.max(position);
        tokens.push(token);
    }
    let (status, _) = setup
        .call(
            "GET",
            &format!("/v1/activities?min_position={last_position}"),
            Some(&tokens[0]),
            None,
        )
        .await?;
    if status != 200 {
        bail!("the read models did not catch up ({status})");
    }
    Ok(tokens)
}

/// `activities` runs, one a day back from yesterday; returns the last one's log position.
async fn record_history(setup: &mut Conn, token: &str, activities: usize) -> anyhow::Result<i64> {
    let mut last_position = 0i64;
    let start = chrono::Utc::now() - chrono::Duration::days(1);
    for a in 0..activities {
        let body = json!({
            "sport": "run",
            "start_time": (start - chrono::Duration::days(a as i64)).to_rfc3339(),
            "distance_m": 8000.0 + (a % 7) as f64 * 500.0,
            "moving_time_s": 2700.0 + (a % 5) as f64 * 120.0,
            "avg_hr_bpm": 140.0 + (a % 10) as f64,
        })
        .to_string();
        let (status, reply) = setup
            .call("POST", "/v1/activities", Some(token), Some(&body))
            .await?;
        if status != 201 {
            bail!("activity: {status} {}", String::from_utf8_lossy(&reply));
        }
        let reply: serde_json::Value = serde_json::from_slice(&reply)?;
        last_position = last_position.max(reply["position"].as_i64().unwrap_or(0));
    }
    Ok(last_position)
}

async fn measure_endpoints(
    server: &Server,
    tokens: Arc<Vec<String>>,
    o: &Options,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut results = Vec::new();
    let (cached, uncached) = (server.addr, server.uncached_addr);
    // Reads first, uncached then cached; the writes last, as they change the athletes' keys.
    for (name, load, addr, cache) in [
        ("GET /v1/activities", Load::ListActivities, uncached, "off"),
        ("GET /v1/activities", Load::ListActivities, cached, "memory"),
        ("GET /v1/efficiency/trends", Load::Trends, uncached, "off"),
        ("GET /v1/efficiency/trends", Load::Trends, cached, "memory"),
        ("GET /v1/correlations", Load::Correlations, uncached, "off"),
        ("GET /v1/correlations", Load::Correlations, cached, "memory"),
        (
            "PUT /v1/checkins/{date}",
            Load::PutCheckIn,
            cached,
            "memory",
        ),
    ] {
        // Warm up, then the baseline and the endpoint back to back.
        drive(addr, load, tokens.clone(), o.connections, 1).await?;
        let baseline = drive(addr, Load::Health, tokens.clone(), o.connections, o.seconds).await?;
        let before = server.cache.counters_now();
        let measured = drive(addr, load, tokens.clone(), o.connections, o.seconds).await?;
        let after = server.cache.counters_now();
        let (hits, misses) = (after.hits - before.hits, after.misses - before.misses);
        let hit_rate = (cache != "off" && hits + misses > 0)
            .then(|| (hits as f64 / (hits + misses) as f64 * 1000.0).round() / 1000.0);
        let line = json!({
            "endpoint": name,
            "cache": cache,
            "hit_rate": hit_rate,
            "connections": o.connections,
            "rps": (measured.rps() * 10.0).round() / 10.0,
            "baseline_rps": (baseline.rps() * 10.0).round() / 10.0,
            "ratio": (measured.rps() / baseline.rps() * 1000.0).round() / 1000.0,
            "p50_ms": measured.percentile_ms(0.50),
            "p99_ms": measured.percentile_ms(0.99),
            "baseline_p50_ms": baseline.percentile_ms(0.50),
            "baseline_p99_ms": baseline.percentile_ms(0.99),
            "errors": measured.errors + baseline.errors,
        });
        results.push(line);
    }
    Ok(results)
}

/// Logins per phase of the flood measurement: under the default general limit (100 a minute
/// per client) for both phases together, so the login client is never limited itself.
const FLOOD_LOGINS: usize = 40;

/// A normal login's latency while 16 other clients (one /24) register accounts back to back
/// (issue 16): quiet, then during the flood. On the server with the default limits, and on one
/// without them, where only the one-password-hash-per-client rule stands between the flood and
/// the hashing pool of four.
async fn registration_flood(server: &Server) -> anyhow::Result<Vec<serde_json::Value>> {
    eprintln!("bench api: login during a 16-client registration flood");
    let mut results = Vec::new();
    for (addr, limits) in [(server.limited_addr, "default"), (server.addr, "off")] {
        let email = format!("login-{limits}@example.org");
        let password = "bench-password-1";
        let mut conn = Conn::open(addr).await?;
        let body = json!({"email": email, "password": password, "display_name": "Login"});
        let (status, reply) = conn
            .call("POST", "/v1/auth/register", None, Some(&body.to_string()))
            .await?;
        if status != 201 {
            bail!("register: {status} {}", String::from_utf8_lossy(&reply));
        }
        let login = json!({"email": email, "password": password}).to_string();
        let quiet = logins(&mut conn, &login).await?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flooders: Vec<_> = (0..16u8)
            .map(|k| {
                let stop = stop.clone();
                tokio::spawn(async move {
                    let source = std::net::Ipv4Addr::new(127, 0, 1, k + 2);
                    let mut c = Conn::open_from(addr, source).await?;
                    let (mut created, mut refused, mut n) = (0u64, 0u64, 0u64);
                    while !stop.load(Ordering::Relaxed) {
                        let body = json!({"email": format!("flood-{limits}-{k}-{n}@example.org"),
                                          "password": "flood-password-1", "display_name": "F"});
                        n += 1;
                        match c
                            .call("POST", "/v1/auth/register", None, Some(&body.to_string()))
                            .await?
                            .0
                        {
                            201 => created += 1,
                            _ => refused += 1,
                        }
                    }
                    anyhow::Ok((created, refused))
                })
            })
            .collect();
        // The flood under way before the logins are timed.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let during = logins(&mut conn, &login).await?;
        stop.store(true, Ordering::Relaxed);
        let (mut created, mut refused) = (0, 0);
        for f in flooders {
            let (c, r) = f.await??;
            created += c;
            refused += r;
        }
        results.push(json!({
            "endpoint": "POST /v1/auth/login during a 16-client registration flood",
            "limits": limits,
            "logins": FLOOD_LOGINS,
            "p50_ms": during.percentile_ms(0.50),
            "p99_ms": during.percentile_ms(0.99),
            "baseline_p50_ms": quiet.percentile_ms(0.50),
            "baseline_p99_ms": quiet.percentile_ms(0.99),
            "ratio": (during.percentile_ms(0.50) / quiet.percentile_ms(0.50) * 1000.0).round()
                / 1000.0,
            "registrations_created": created,
            "registrations_refused": refused,
            "errors": during.errors + quiet.errors,
        }));
    }
    Ok(results)
}

/// [`FLOOD_LOGINS`] logins one after another on one connection.
async fn logins(conn: &mut Conn, body: &str) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let (mut errors, mut latencies_us) = (0, Vec::new());
    for _ in 0..FLOOD_LOGINS {
        let t0 = Instant::now();
        let (status, _) = conn
            .call("POST", "/v1/auth/login", None, Some(body))
            .await?;
        latencies_us.push(t0.elapsed().as_micros() as u64);
        if status != 200 {
            errors += 1;
        }
    }
    Ok(Outcome {
        requests: FLOOD_LOGINS as u64,
        errors,
        latencies_us,
        elapsed: started.elapsed(),
    })
}

fn print_results(results: &[serde_json::Value], json: bool) {
    for r in results {
        if json {
            println!("{r}");
        } else if r.get("limits").is_some() {
            println!(
                "{} (limits {}): login p50 {:.1} ms, quiet {:.1} ms, ratio {:.2}; {} accounts created, {} refused",
                r["endpoint"].as_str().unwrap_or_default(),
                r["limits"].as_str().unwrap_or_default(),
                r["p50_ms"].as_f64().unwrap_or_default(),
                r["baseline_p50_ms"].as_f64().unwrap_or_default(),
                r["ratio"].as_f64().unwrap_or_default(),
                r["registrations_created"],
                r["registrations_refused"]
            );
        } else {
            println!(
                "{:<26} {:<6} {:>8.1} req/s  baseline {:>8.1}  ratio {:.3}  p50 {:.2} ms  p99 {:.2} ms  errors {}",
                r["endpoint"].as_str().unwrap_or_default(),
                r["cache"].as_str().unwrap_or_default(),
                r["rps"].as_f64().unwrap_or_default(),
                r["baseline_rps"].as_f64().unwrap_or_default(),
                r["ratio"].as_f64().unwrap_or_default(),
                r["p50_ms"].as_f64().unwrap_or_default(),
                r["p99_ms"].as_f64().unwrap_or_default(),
                r["errors"]
            );
        }
    }
}

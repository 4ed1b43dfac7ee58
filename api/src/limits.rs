//! Rate limits (docs/decisions.md D39): GCRA per route class, keyed on the account for
//! signed-in callers and on the client address (and its block, for registration) otherwise.
//! With Redis configured the limit is shared by every `serve` process (one atomic Lua script
//! per check); without it, or while Redis is unreachable, each process limits on its own with
//! `governor`. A dead Redis never opens the gate and never fails requests: the process falls
//! back to its own limiter, says so once in the log and in `/health`, and tries Redis again
//! after [`CIRCUIT_OPEN`].

use std::collections::HashSet;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use governor::clock::Clock as _;
use governor::middleware::StateInformationMiddleware;
use governor::{Quota, RateLimiter};

use crate::client_addr::Cidr;
use crate::problem::Problem;

/// After a Redis failure, how long checks stay in-process before Redis is tried again: a dead
/// Redis costs one timeout per this interval, not one per request.
pub const CIRCUIT_OPEN: Duration = Duration::from_secs(5);

/// `count` requests per `window`, e.g. `100/min`, `10/h`, `5/30s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub window: Duration,
}

impl Rate {
    pub const fn new(count: u32, window_s: u64) -> Self {
        Self {
            count,
            window: Duration::from_secs(window_s),
        }
    }

    /// The GCRA emission interval: one request's share of the window.
    fn interval(&self) -> Duration {
        self.window / self.count.max(1)
    }
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?}: expected <count>/<window>, such as 100/min, 10/h or 5/30s");
        let (count, window) = s.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = count
            .trim()
            .parse()
            .ok()
            .filter(|c| *c > 0)
            .ok_or_else(bad)?;
        let window = window.trim();
        let seconds = match window {
            "s" | "sec" => 1,
            "m" | "min" => 60,
            "h" | "hour" => 3600,
            "d" | "day" => 86_400,
            w => w
                .strip_suffix('s')
                .unwrap_or(w)
                .parse::<u64>()
                .ok()
                .filter(|s| *s > 0)
                .ok_or_else(bad)?,
        };
        Ok(Self::new(count, seconds))
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}s", self.count, self.window.as_secs())
    }
}

/// What a route costs and whom it is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Every limited route not in another class.
    General,
    /// `POST /v1/correlations/recompute`: a full analysis per call.
    Recompute,
    /// Routes with `Access::Admin`.
    Admin,
    /// `POST /v1/auth/register`, per client address.
    Register,
    /// `POST /v1/auth/register`, per address block (/24, /56).
    RegisterBlock,
}

impl Class {
    const ALL: [Class; 5] = [
        Class::General,
        Class::Recompute,
        Class::Admin,
        Class::Register,
        Class::RegisterBlock,
    ];

    /// The policy name in `RateLimit-Policy` and `RateLimit`.
    pub fn name(self) -> &'static str {
        match self {
            Class::General => "general",
            Class::Recompute => "recompute",
            Class::Admin => "admin",
            Class::Register => "register",
            Class::RegisterBlock => "register-block",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Every limit and where the limiter keeps its state. The defaults are the product plan's.
#[derive(Debug, Clone)]
pub struct Settings {
    pub general: Rate,
    pub recompute: Rate,
    pub admin: Rate,
    pub register_client: Rate,
    pub register_block: Rate,
    /// Peers whose `Forwarded`/`X-Forwarded-For` name the client.
    pub trusted_proxies: Vec<Cidr>,
    /// `redis://host:port/db`: share limits across processes. `None`: in-process.
    pub redis_url: Option<String>,
    /// Prepended to every Redis key, so deployments (and tests) sharing a Redis do not collide.
    pub redis_prefix: String,
    /// How long one Redis check may take before the request is limited in-process instead.
    pub redis_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            general: Rate::new(100, 60),
            recompute: Rate::new(10, 3600),
            admin: Rate::new(50, 60),
            register_client: Rate::new(5, 3600),
            register_block: Rate::new(20, 3600),
            trusted_proxies: Vec::new(),
            redis_url: None,
            redis_prefix: "stridelog:rl:".into(),
            redis_timeout: Duration::from_millis(100),
        }
    }
}

impl Settings {
    /// Limits no realistic caller reaches, in-process: for benchmarks and for tests that are
    /// not about limits (they register and call from one address in bulk).
    pub fn unlimited() -> Self {
        let many = Rate::new(1_000_000, 1);
        Self {
            general: many,
            recompute: many,
            admin: many,
            register_client: many,
            register_block: many,
            ..Self::default()
        }
    }

    fn rate(&self, class: Class) -> Rate {
        match class {
            Class::General => self.general,
            Class::Recompute => self.recompute,
            Class::Admin => self.admin,
            Class::Register => self.register_client,
            Class::RegisterBlock => self.register_block,
        }
    }
}

/// The answer to one check, with what the `RateLimit` headers report.
#[derive(Debug, Clone, Copy)]
pub struct Decision {
    pub class: Class,
    pub rate: Rate,
    pub allowed: bool,
    pub remaining: u32,
    /// Seconds until the quota is whole again.
    pub reset_s: u64,
    /// When refused: seconds until one more request is allowed.
    pub retry_after_s: u64,
}

impl Decision {
    /// `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers).
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        let name = self.class.name();
        let policy = format!(
            "\"{name}\";q={};w={}",
            self.rate.count,
            self.rate.window.as_secs()
        );
        let state = format!("\"{name}\";r={};t={}", self.remaining, self.reset_s);
        if let (Ok(p), Ok(s)) = (
            HeaderValue::from_str(&policy),
            HeaderValue::from_str(&state),
        ) {
            headers.insert("ratelimit-policy", p);
            headers.insert("ratelimit", s);
        }
    }

    /// 429, problem+json, `Retry-After`, and the `RateLimit` headers.
    pub fn refusal(&self) -> axum::response::Response {
        use axum::response::IntoResponse as _;
        let mut res = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many requests",
        )
        .detail(format!(
            "The {} limit is {} requests per {} s; retry after {} s.",
            self.class.name(),
            self.rate.count,
            self.rate.window.as_secs(),
            self.retry_after_s
        ))
        .retry_after(self.retry_after_s)
        .into_response();
        self.write_headers(res.headers_mut());
        res
    }
}

type Local = RateLimiter<
    String,
    governor::state::keyed::DefaultKeyedStateStore<String>,
    governor::clock::DefaultClock,
    StateInformationMiddleware,
>;

/// GCRA in one atomic step. KEYS[1]: the bucket; ARGV: emission interval and window, in ms.
/// The stored value is the theoretical arrival time (TAT); the key expires when the bucket
/// would be full again, so idle clients cost nothing. Redis's clock decides, so processes with
/// skewed clocks agree. Returns {allowed, remaining, reset_ms, retry_ms}.
const GCRA: &str = r"
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - now > window then
  return {0, 0, tat - now, new_tat - window - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now)
return {1, math.floor((window - (new_tat - now)) / interval), new_tat - now, 0}
";

struct Shared {
    conn: redis::aio::ConnectionManager,
    script: redis::Script,
    prefix: String,
    timeout: Duration,
    /// Until when checks skip Redis after a failure.
    open_until: Mutex<Option<Instant>>,
    degraded: AtomicBool,
}

/// The limiter every `serve` process holds (one per [`crate::AppState`]).
pub struct Limiter {
    settings: Settings,
    local: Vec<Local>,
    shared: Option<Shared>,
    checks: AtomicU64,
    /// Client addresses with a password hash in flight for registration.
    hashing: Mutex<HashSet<IpAddr>>,
}

impl Limiter {
    /// Connects to Redis lazily: a Redis that is down at start-up only degrades the limiter.
    pub fn new(settings: Settings) -> anyhow::Result<Arc<Self>> {
        let local = Class::ALL
            .iter()
            .map(|c| {
                let rate = settings.rate(*c);
                let count = NonZeroU32::new(rate.count.max(1)).expect("at least one");
                let quota = Quota::with_period(rate.interval().max(Duration::from_nanos(1)))
                    .expect("a positive period")
                    .allow_burst(count);
                RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>()
            })
            .collect();
        let shared = match &settings.redis_url {
            None => None,
            Some(url) => {
                let client = redis::Client::open(url.as_str())
                    .map_err(|e| anyhow::anyhow!("STRIDELOG_REDIS_URL: {e}"))?;
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(settings.redis_timeout))
                    .set_response_timeout(Some(settings.redis_timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(settings.redis_timeout);
                let conn = redis::aio::ConnectionManager::new_lazy_with_config(client, config)
                    .map_err(|e| anyhow::anyhow!("redis: {e}"))?;
                Some(Shared {
                    conn,
                    script: redis::Script::new(GCRA),
                    prefix: settings.redis_prefix.clone(),
                    timeout: settings.redis_timeout,
                    open_until: Mutex::new(None),
                    degraded: AtomicBool::new(false),
                })
            }
        };
        Ok(Arc::new(Self {
            settings,
            local,
            shared,
            checks: AtomicU64::new(0),
            hashing: Mutex::new(HashSet::new()),
        }))
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Counts one request of `class` against `key` (an account or a client tag, never a raw
    /// address or email).
    pub async fn check(&self, class: Class, key: &str) -> Decision {
        let rate = self.settings.rate(class);
        if let Some(shared) = &self.shared
            && let Some(d) = shared.check(class, rate, key).await
        {
            return d;
        }
        self.check_local(class, rate, key)
    }

    fn check_local(&self, class: Class, rate: Rate, key: &str) -> Decision {
        let limiter = &self.local[class.index()];
        // Idle keys are dropped now and then, so the map does not grow with every client ever
        // seen.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            for l in &self.local {
                l.retain_recent();
            }
        }
        let interval = rate.interval();
        match limiter.check_key(&key.to_string()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let used = rate.count.saturating_sub(remaining);
                Decision {
                    class,
                    rate,
                    allowed: true,
                    remaining,
                    reset_s: ceil_s(interval * used),
                    retry_after_s: 0,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(limiter.clock().now());
                Decision {
                    class,
                    rate,
                    allowed: false,
                    remaining: 0,
                    reset_s: ceil_s(rate.window),
                    retry_after_s: ceil_s(wait).max(1),
                }
            }
        }
    }

    /// `("in-process" | "redis", "ok" | "degraded")` for `/health`. With Redis configured and
    /// not known to be down, pings it, so a Redis that died while idle shows up too.
    pub async fn health(&self) -> (&'static str, &'static str) {
        let Some(shared) = &self.shared else {
            return ("in-process", "ok");
        };
        if !shared.circuit_open() {
            let mut conn = shared.conn.clone();
            let ping = tokio::time::timeout(
                shared.timeout,
                redis::cmd("PING").query_async::<String>(&mut conn),
            )
            .await;
            match ping {
                Ok(Ok(_)) => shared.recovered(),
                Ok(Err(e)) => shared.failed(&e.to_string()),
                Err(_) => shared.failed("timed out"),
            }
        }
        let state = if shared.degraded.load(Ordering::Relaxed) {
            "degraded"
        } else {
            "ok"
        };
        ("redis", state)
    }

    /// At most one registration hash in flight per client address: a second concurrent one is
    /// refused at once rather than queueing for the shared hashing pool. `None`: refused.
    pub fn hashing_slot(self: &Arc<Self>, client: Option<IpAddr>) -> Option<HashingSlot> {
        let Some(ip) = client else {
            // The server's own requests have no address; they are not a crowd.
            return Some(HashingSlot {
                limiter: None,
                ip: None,
            });
        };
        let mut set = self.hashing.lock().expect("not poisoned");
        set.insert(ip).then(|| HashingSlot {
            limiter: Some(self.clone()),
            ip: Some(ip),
        })
    }
}

/// Frees its client's hashing slot when dropped (also when the request is cancelled).
pub struct HashingSlot {
    limiter: Option<Arc<Limiter>>,
    ip: Option<IpAddr>,
}

impl Drop for HashingSlot {
    fn drop(&mut self) {
        if let (Some(l), Some(ip)) = (&self.limiter, self.ip) {
            l.hashing.lock().expect("not poisoned").remove(&ip);
        }
    }
}

fn ceil_s(d: Duration) -> u64 {
    d.as_millis().div_ceil(1000) as u64
}

impl Shared {
    fn circuit_open(&self) -> bool {
        let open = self.open_until.lock().expect("not poisoned");
        open.is_some_and(|until| Instant::now() < until)
    }

    /// `None` when Redis could not answer: the caller limits in-process.
    async fn check(&self, class: Class, rate: Rate, key: &str) -> Option<Decision> {
        if self.circuit_open() {
            return None;
        }
        let mut conn = self.conn.clone();
        let interval_ms = rate.interval().as_millis().max(1) as u64;
        let window_ms = rate.window.as_millis() as u64;
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(format!("{}{}:{key}", self.prefix, class.name()))
            .arg(interval_ms)
            .arg(window_ms);
        let answer = tokio::time::timeout(
            self.timeout,
            invocation.invoke_async::<(i64, i64, i64, i64)>(&mut conn),
        )
        .await;
        match answer {
            Ok(Ok((allowed, remaining, reset_ms, retry_ms))) => {
                self.recovered();
                let ms = |v: i64| Duration::from_millis(u64::try_from(v).unwrap_or(0));
                Some(Decision {
                    class,
                    rate,
                    allowed: allowed == 1,
                    remaining: u32::try_from(remaining).unwrap_or(0),
                    reset_s: ceil_s(ms(reset_ms)),
                    retry_after_s: ceil_s(ms(retry_ms)).max(u64::from(allowed != 1)),
                })
            }
            Ok(Err(e)) => {
                self.failed(&e.to_string());
                None
            }
            Err(_) => {
                self.failed("timed out");
                None
            }
        }
    }

    fn failed(&self, error: &str) {
        *self.open_until.lock().expect("not poisoned") = Some(Instant::now() + CIRCUIT_OPEN);
        // Once per outage: a dead Redis must not flood the log.
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                error,
                "rate limiter: Redis unreachable; limiting in-process until it answers"
            );
        }
    }

    fn recovered(&self) {
        if self.degraded.swap(false, Ordering::Relaxed) {
            tracing::info!("rate limiter: Redis answers again; limits are shared");
        }
    }
}

/// The checks a request must pass, in order; all of them count it.
pub(crate) type Checks = Vec<(Class, String)>;

/// Anonymous routes are counted per client; registration also per address block. Health and
/// documentation are not limited: probes and browsers fetch them freely, and `/health/live`
/// must touch nothing.
pub(crate) fn public_checks(
    state: &crate::AppState,
    method: &str,
    path: &str,
    client: Option<IpAddr>,
) -> Checks {
    let unlimited = path.starts_with("/health")
        || path == "/openapi.json"
        || path.starts_with("/docs")
        || path == "/admin/console.css";
    if unlimited {
        return Vec::new();
    }
    let client_key = client_key(state, client);
    if (method, path) == ("POST", "/v1/auth/register") {
        let block = client.map_or_else(
            || client_key.clone(),
            |ip| {
                format!(
                    "b:{}",
                    state.auth.address_tag(&crate::client_addr::block_of(ip))
                )
            },
        );
        return vec![(Class::Register, client_key), (Class::RegisterBlock, block)];
    }
    vec![(Class::General, client_key)]
}

/// A signed-in caller is counted per account, in the class of the route.
pub(crate) fn account_checks(
    method: &str,
    path: &str,
    access: crate::Access,
    account: uuid::Uuid,
) -> Checks {
    let class = if (method, path) == ("POST", "/v1/correlations/recompute") {
        Class::Recompute
    } else if access == crate::Access::Admin {
        Class::Admin
    } else {
        Class::General
    };
    vec![(class, format!("a:{account}"))]
}

/// A keyed hash of the address: Redis keys carry no personal data.
pub(crate) fn client_key(state: &crate::AppState, client: Option<IpAddr>) -> String {
    format!(
        "c:{}",
        state
            .auth
            .client_tag(client.map(|ip| std::net::SocketAddr::new(ip, 0)))
    )
}

/// Runs every check; `Err` is the 429 to answer with, `Ok` the decision the `RateLimit`
/// headers report (the one with the least left), if any.
pub(crate) async fn gate(
    limiter: &Limiter,
    checks: &Checks,
) -> Result<Option<Decision>, axum::response::Response> {
    let mut tightest: Option<Decision> = None;
    for (class, key) in checks {
        let d = limiter.check(*class, key).await;
        if !d.allowed {
            return Err(d.refusal());
        }
        if tightest.is_none_or(|t| d.remaining < t.remaining) {
            tightest = Some(d);
        }
    }
    Ok(tightest)
}

/// Adds the `RateLimit` headers of `decision` to a response that passed the gate.
pub(crate) fn annotate(
    mut res: axum::response::Response,
    decision: Option<Decision>,
) -> axum::response::Response {
    if let Some(d) = decision {
        d.write_headers(res.headers_mut());
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        assert_eq!("100/min".parse::<Rate>().unwrap(), Rate::new(100, 60));
        assert_eq!("10/h".parse::<Rate>().unwrap(), Rate::new(10, 3600));
        assert_eq!("5/30s".parse::<Rate>().unwrap(), Rate::new(5, 30));
        assert_eq!("5/30".parse::<Rate>().unwrap(), Rate::new(5, 30));
        for bad in ["", "0/min", "5", "5/0s", "x/min", "5/fortnight"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn the_quota_is_counted_per_key() {
        let l = Limiter::new(Settings {
            general: Rate::new(3, 60),
            ..Settings::default()
        })
        .unwrap();
        for left in [2, 1, 0] {
            let d = l.check(Class::General, "a").await;
            assert!(d.allowed);
            assert_eq!(d.remaining, left);
        }
        let d = l.check(Class::General, "a").await;
        assert!(!d.allowed);
        assert!((1..=20).contains(&d.retry_after_s), "{d:?}");
        assert!(l.check(Class::General, "b").await.allowed, "another key");
        assert!(l.check(Class::Admin, "a").await.allowed, "another class");
    }

    #[test]
    fn one_hash_in_flight_per_client() {
        let l = Limiter::new(Settings::default()).unwrap();
        let ip: IpAddr = "203.0.113.1".parse().unwrap();
        let first = l.hashing_slot(Some(ip)).expect("free");
        assert!(l.hashing_slot(Some(ip)).is_none());
        assert!(
            l.hashing_slot(Some("203.0.113.2".parse().unwrap()))
                .is_some()
        );
        drop(first);
        assert!(l.hashing_slot(Some(ip)).is_some());
    }
}

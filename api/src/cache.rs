//! A server-side cache of hot read answers (issue 16 item 6, D41): in process (moka, bounded
//! by bytes) by default, or in Redis (`STRIDELOG_REDIS_URL`) shared by every `serve`.
//!
//! Correct by construction rather than by invalidation: a key carries the log position of the
//! athlete's last event (`athlete_version`, [`store::EventStore::athlete_head`]), so any new
//! event of theirs makes every older answer unreachable; nothing has to follow the log to
//! delete it, and old keys age out with [`TTL`] (or the memory bound). An answer is stored only
//! when the read models it came from had applied that position *before* it was computed, so a
//! cached answer is never older than the athlete's last applied event. A read that names a
//! `min_position` beyond the athlete's version (a write that is not theirs) skips the cache.
//! Whatever else an answer depends on is in the key too: the query, today's date, and for
//! correlation views the version of the snapshot the worker wrote (not an event).
//!
//! Keys: `{prefix}:v1:{athlete_id}:{route}:{normalised query}:{athlete_version}`. The athlete's
//! UUID is a pseudonymous id (it names no one without the identity tables); no email, name or
//! token is ever part of a key. Values are the JSON bodies exactly as served, so a cached and
//! an uncached answer are byte-identical (headers are set by the same layers either way).
//!
//! A Redis failure never fails a read: every call has a short timeout, and after a failure
//! Redis is skipped for [`CIRCUIT_OPEN`] (the read goes to the read models), while `/health`
//! reports the cache as degraded.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// The in-process cache's default bound: keys and bodies together.
pub const DEFAULT_MEMORY_BYTES: u64 = 64 * 1024 * 1024;
/// How long an answer is kept: keys of an athlete who wrote since are unreachable, and this
/// bounds how long they take space.
pub const TTL: Duration = Duration::from_secs(600);
/// The default Redis key prefix (`STRIDELOG_REDIS_PREFIX`).
pub const DEFAULT_PREFIX: &str = "stridelog";
/// The longest a read waits on Redis before going to the read models.
const REDIS_TIMEOUT: Duration = Duration::from_millis(100);
/// After a Redis failure, how long reads skip it: a dead Redis costs nothing per request.
pub const CIRCUIT_OPEN: Duration = Duration::from_secs(5);
/// The key layout's version: bump it when the layout or a cached body's shape changes, so a
/// process of a new release never reads a body an old one wrote.
const LAYOUT: &str = "v1";

/// The read cache held in [`crate::AppState`]. Cheap to clone (shared counters).
#[derive(Clone)]
pub struct ReadCache {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    prefix: String,
    hits: AtomicU64,
    misses: AtomicU64,
    stores: AtomicU64,
    errors: AtomicU64,
}

enum Backend {
    Off,
    Memory(moka::future::Cache<String, Bytes>),
    Redis(Redis),
}

struct Redis {
    conn: redis::aio::ConnectionManager,
    epoch: Instant,
    /// Milliseconds after `epoch` until which Redis is skipped.
    open_until_ms: AtomicU64,
    /// The last call to Redis failed (or timed out).
    degraded: AtomicBool,
}

/// Counters and state, for `/health` and the bench.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CacheStats {
    /// `memory`, `redis` or `off`.
    pub kind: &'static str,
    /// `ok`, or `degraded` while Redis is failing (reads then go to the read models).
    pub state: &'static str,
    pub hits: u64,
    pub misses: u64,
    /// Answers written to the cache.
    pub stores: u64,
    /// Redis calls that failed or timed out.
    pub errors: u64,
    /// hits / (hits + misses); absent before the first lookup.
    pub hit_rate: Option<f64>,
}

impl Default for ReadCache {
    fn default() -> Self {
        Self::memory(DEFAULT_MEMORY_BYTES)
    }
}

impl ReadCache {
    fn with(backend: Backend, prefix: &str) -> Self {
        Self {
            inner: Arc::new(Inner {
                backend,
                prefix: prefix.to_string(),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                stores: AtomicU64::new(0),
                errors: AtomicU64::new(0),
            }),
        }
    }

    /// No caching: every read goes to the read models (bench baselines).
    pub fn off() -> Self {
        Self::with(Backend::Off, DEFAULT_PREFIX)
    }

    /// In process, bounded by `max_bytes` of keys and bodies.
    pub fn memory(max_bytes: u64) -> Self {
        let cache = moka::future::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|k: &String, v: &Bytes| u32::try_from(k.len() + v.len()).unwrap_or(u32::MAX))
            .time_to_live(TTL)
            .support_invalidation_closures()
            .build();
        Self::with(Backend::Memory(cache), DEFAULT_PREFIX)
    }

    /// Redis at `url`, keys under `prefix`. Connects lazily: a Redis that is down at start
    /// leaves the cache degraded, not the process unable to start. Fails only on a malformed
    /// URL.
    pub fn redis(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1);
        let conn = redis::aio::ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self::with(
            Backend::Redis(Redis {
                conn,
                epoch: Instant::now(),
                open_until_ms: AtomicU64::new(0),
                degraded: AtomicBool::new(false),
            }),
            prefix,
        ))
    }

    pub(crate) fn enabled(&self) -> bool {
        !matches!(self.inner.backend, Backend::Off)
    }

    /// The key of one answer. `query` is already normalised (see [`normalise_query`]).
    pub(crate) fn key(&self, athlete: Uuid, route: &str, query: &str, version: i64) -> String {
        format!(
            "{}:{LAYOUT}:{athlete}:{route}:{query}:{version}",
            self.inner.prefix
        )
    }

    /// The prefix shared by every key of one athlete.
    fn athlete_prefix(&self, athlete: Uuid) -> String {
        format!("{}:{LAYOUT}:{athlete}:", self.inner.prefix)
    }

    pub(crate) async fn get(&self, key: &str) -> Option<Bytes> {
        let found = match &self.inner.backend {
            Backend::Off => return None,
            Backend::Memory(c) => c.get(key).await,
            Backend::Redis(r) => {
                let mut conn = r.conn.clone();
                let cmd = redis::cmd("GET").arg(key).to_owned();
                r.call::<Option<Vec<u8>>>(&self.inner, &cmd, &mut conn)
                    .await
                    .flatten()
                    .map(Bytes::from)
            }
        };
        let counter = if found.is_some() {
            &self.inner.hits
        } else {
            &self.inner.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    pub(crate) async fn put(&self, key: String, body: Bytes) {
        let stored = match &self.inner.backend {
            Backend::Off => false,
            Backend::Memory(c) => {
                c.insert(key, body).await;
                true
            }
            Backend::Redis(r) => {
                let mut conn = r.conn.clone();
                let cmd = redis::cmd("SET")
                    .arg(&key)
                    .arg(body.as_ref())
                    .arg("EX")
                    .arg(TTL.as_secs())
                    .to_owned();
                r.call::<()>(&self.inner, &cmd, &mut conn).await.is_some()
            }
        };
        if stored {
            self.inner.stores.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Removes every answer cached for `athlete` (erasure): SCAN + UNLINK under the athlete's
    /// key prefix in Redis, an invalidation closure in memory. Returns how many Redis keys
    /// went (0 in memory, where the count is not known).
    pub async fn purge_athlete(&self, athlete: Uuid) -> anyhow::Result<u64> {
        let prefix = self.athlete_prefix(athlete);
        match &self.inner.backend {
            Backend::Off => Ok(0),
            Backend::Memory(c) => {
                c.invalidate_entries_if(move |k, _| k.starts_with(&prefix))
                    .map_err(|e| anyhow::anyhow!("cache invalidation: {e}"))?;
                c.run_pending_tasks().await;
                Ok(0)
            }
            Backend::Redis(r) => {
                // Erasure is not a hot path: no circuit and a longer timeout, and a failure is
                // an error the caller reports (the keys would still age out within TTL).
                let mut conn = r.conn.clone();
                let pattern = format!("{}*", glob_escape(&prefix));
                let mut cursor: u64 = 0;
                let mut removed = 0u64;
                loop {
                    let (next, keys): (u64, Vec<String>) = tokio::time::timeout(
                        Duration::from_secs(5),
                        redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(&pattern)
                            .arg("COUNT")
                            .arg(1000)
                            .query_async(&mut conn),
                    )
                    .await??;
                    if !keys.is_empty() {
                        let n: u64 = tokio::time::timeout(
                            Duration::from_secs(5),
                            redis::cmd("UNLINK").arg(&keys).query_async(&mut conn),
                        )
                        .await??;
                        removed += n;
                    }
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
                Ok(removed)
            }
        }
    }

    /// The counters, and for Redis a fresh PING (unless the circuit is open), so `/health`
    /// tells whether Redis answers now.
    pub async fn stats(&self) -> CacheStats {
        let (kind, state) = match &self.inner.backend {
            Backend::Off => ("off", "ok"),
            Backend::Memory(_) => ("memory", "ok"),
            Backend::Redis(r) => {
                let mut conn = r.conn.clone();
                let ping = redis::cmd("PING").to_owned();
                let up = r.call::<String>(&self.inner, &ping, &mut conn).await;
                let degraded = up.is_none() || r.degraded.load(Ordering::Relaxed);
                ("redis", if degraded { "degraded" } else { "ok" })
            }
        };
        self.counters(kind, state)
    }

    /// The counters alone, without touching Redis.
    pub fn counters_now(&self) -> CacheStats {
        let (kind, state) = match &self.inner.backend {
            Backend::Off => ("off", "ok"),
            Backend::Memory(_) => ("memory", "ok"),
            Backend::Redis(r) if r.degraded.load(Ordering::Relaxed) => ("redis", "degraded"),
            Backend::Redis(_) => ("redis", "ok"),
        };
        self.counters(kind, state)
    }

    fn counters(&self, kind: &'static str, state: &'static str) -> CacheStats {
        let hits = self.inner.hits.load(Ordering::Relaxed);
        let misses = self.inner.misses.load(Ordering::Relaxed);
        CacheStats {
            kind,
            state,
            hits,
            misses,
            stores: self.inner.stores.load(Ordering::Relaxed),
            errors: self.inner.errors.load(Ordering::Relaxed),
            hit_rate: (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64),
        }
    }
}

impl Redis {
    /// One command with the timeout and the circuit: `None` when Redis was skipped or failed.
    async fn call<T: redis::FromRedisValue>(
        &self,
        inner: &Inner,
        cmd: &redis::Cmd,
        conn: &mut redis::aio::ConnectionManager,
    ) -> Option<T> {
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        if now_ms < self.open_until_ms.load(Ordering::Relaxed) {
            return None;
        }
        match tokio::time::timeout(REDIS_TIMEOUT, cmd.query_async::<T>(conn)).await {
            Ok(Ok(v)) => {
                self.degraded.store(false, Ordering::Relaxed);
                Some(v)
            }
            failed => {
                let error = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_string(),
                };
                // Only the error: a key names an athlete id, which stays out of the log.
                if !self.degraded.swap(true, Ordering::Relaxed) {
                    tracing::warn!(%error, "read cache: Redis failed; reads go to the read models");
                }
                inner.errors.fetch_add(1, Ordering::Relaxed);
                let until = now_ms + CIRCUIT_OPEN.as_millis() as u64;
                self.open_until_ms.store(until, Ordering::Relaxed);
                None
            }
        }
    }
}

/// Escapes Redis glob characters in a prefix an operator chose.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The query string as a key part: `min_position` dropped (it changes when to answer, not
/// what), pairs sorted by name (stable, so repeated names keep their order) and re-encoded.
/// Two strings that parse to the same parameters may still get two keys (a lost hit, never
/// a wrong answer): the answer is a function of the raw string.
pub(crate) fn normalise_query(raw: Option<&str>) -> String {
    let Some(raw) = raw else {
        return String::new();
    };
    let mut pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw).unwrap_or_default();
    if pairs.is_empty() && !raw.is_empty() {
        // Unparseable: keep it verbatim (encoded so it cannot contain the key's separators).
        return format!("raw={}", urlencode(raw));
    }
    pairs.retain(|(k, _)| k != "min_position");
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    serde_urlencoded::to_string(&pairs).unwrap_or_default()
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .map(|e| e.trim_start_matches('=').to_string())
        .unwrap_or_default()
}

impl crate::AppState {
    /// Answers a read of `athlete`'s data from the cache, or computes it (`compute` does its
    /// own read-your-writes wait) and caches it when that is safe. `projections`: the read
    /// models the answer comes from. `compute` returns the answer and whether it matches the
    /// key's parts (a handler whose key names a date says whether the answer used that date).
    pub(crate) async fn cached<T, F>(
        &self,
        athlete: Uuid,
        route: &'static str,
        query: String,
        projections: &[&str],
        min_position: Option<i64>,
        compute: F,
    ) -> crate::problem::ApiResult<axum::response::Response>
    where
        T: Serialize,
        F: Future<Output = crate::problem::ApiResult<(T, bool)>>,
    {
        use crate::problem::Problem;
        if !self.cache.enabled() {
            let (value, _) = compute.await?;
            return json_body(&value).map(respond);
        }
        let version = self
            .store
            .athlete_head(athlete)
            .await
            .map_err(Problem::internal)?
            .unwrap_or(0);
        // A position beyond the athlete's own events: the cache cannot tell whether an answer
        // reflects it, so the read goes to the read models (and waits there).
        if min_position.is_some_and(|m| m > version) {
            let (value, _) = compute.await?;
            return json_body(&value).map(respond);
        }
        // Answers that use "today" (the load chart's end, default ranges) hold for one UTC day.
        let day = chrono::Utc::now().date_naive();
        let query = if query.is_empty() {
            format!("d={day}")
        } else {
            format!("{query}&d={day}")
        };
        let key = self.cache.key(athlete, route, &query, version);
        if let Some(body) = self.cache.get(&key).await {
            return Ok(respond(body));
        }
        // The wait `compute` would do anyway, done first so the check below can pass.
        self.visible(projections, min_position).await?;
        // Checked before computing: if the read models had applied the athlete's last event
        // then, the answer computed after reflects it (or something newer).
        let applied = version <= 0
            || self
                .projections
                .wait_for(projections, version, Duration::ZERO)
                .await
                .unwrap_or(false);
        let (value, matches_key) = compute.await?;
        let body = json_body(&value)?;
        if applied && matches_key && chrono::Utc::now().date_naive() == day {
            self.cache.put(key, body.clone()).await;
        }
        Ok(respond(body))
    }
}

/// The body as `axum::Json` writes it (compact serde_json), so hits and misses are identical.
fn json_body<T: Serialize>(value: &T) -> crate::problem::ApiResult<Bytes> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(crate::problem::Problem::internal)
}

fn respond(body: Bytes) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_key_drops_min_position_and_sorts_by_name() {
        assert_eq!(normalise_query(None), "");
        assert_eq!(
            normalise_query(Some("to=2026-03-01&min_position=7&from=2026-02-01")),
            "from=2026-02-01&to=2026-03-01"
        );
        // Repeated names keep their order: the handler may read the first or the last.
        assert_eq!(normalise_query(Some("b=2&a=1&b=1")), "a=1&b=2&b=1");
        // Separators of the key cannot come from a query.
        assert!(!normalise_query(Some("cursor=a:b")).contains(':'));
    }

    #[test]
    fn keys_name_the_athlete_route_query_and_version() {
        let cache = ReadCache::off();
        let athlete = Uuid::nil();
        assert_eq!(
            cache.key(athlete, "activities", "limit=20", 42),
            format!("stridelog:v1:{athlete}:activities:limit=20:42")
        );
        assert!(
            cache
                .key(athlete, "activities", "", 1)
                .starts_with(&cache.athlete_prefix(athlete))
        );
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}

//! The event store: every fact stridelog knows, appended once and never changed.
//!
//! Two backends share one behaviour (and one conformance suite, `tests/conformance.rs`):
//! PostgreSQL for production and any number of processes, SQLite as the embedded default.
//! The write side reaches the store through [`EventStore::append`] (and cqrs-es's
//! `PersistedEventRepository`, see [`repository`]); the read side follows the global log
//! through [`EventLog`]. `docs/architecture.md` explains the schema and the ordering guarantee.

pub mod blobs;
mod codec;
pub mod crypto;
pub mod error;
pub mod follow;
pub mod model;
mod postgres;
pub mod repository;
mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

use std::sync::Arc;
use std::time::Duration;

use sqlx::{PgPool, SqlitePool};
use tokio::sync::Notify;
use uuid::Uuid;

pub use crypto::MasterKey;
pub use error::{StoreError, StoreResult};
pub use follow::{EventLog, follow};
pub use model::*;

#[derive(Clone)]
enum Backend {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// A handle on the store; cheap to clone, shared by every request and worker in a process.
#[derive(Clone)]
pub struct EventStore {
    backend: Backend,
    master: MasterKey,
    keys: Arc<crypto::KeyCache>,
    wake: Arc<WakeUp>,
    #[cfg(feature = "testing")]
    commit_delay: Option<testing::CommitDelay>,
}

/// Wake-up hints for followers. In-process waiters are woken directly; on PostgreSQL other
/// processes hear a NOTIFY. Hints may be lost (a reconnect, a crash): followers always poll too.
struct WakeUp {
    local: Notify,
    /// Set on PostgreSQL: a permit asks the notifier task to send one NOTIFY. Permits coalesce,
    /// so a burst of appends costs one NOTIFY, and none is sent inside an append's transaction
    /// (NOTIFY takes a cluster-wide lock at commit that would serialise writers).
    remote: Option<Arc<Notify>>,
    listening: std::sync::atomic::AtomicBool,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Drop for WakeUp {
    fn drop(&mut self) {
        for task in self.tasks.lock().expect("not poisoned").drain(..) {
            task.abort();
        }
    }
}

impl WakeUp {
    fn appended(&self) {
        self.local.notify_waiters();
        if let Some(remote) = &self.remote {
            remote.notify_one();
        }
    }
}

/// Connection settings beyond the URL.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_connections: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 20,
        }
    }
}

impl EventStore {
    /// Opens `postgres://…` or `sqlite://…`. Does not migrate: call [`EventStore::migrate`].
    pub async fn connect(url: &str, master: MasterKey, options: StoreOptions) -> StoreResult<Self> {
        let (backend, remote) =
            if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                let pool = postgres::connect(url, options.max_connections).await?;
                (Backend::Postgres(pool), Some(Arc::new(Notify::new())))
            } else if url.starts_with("sqlite:") {
                (
                    Backend::Sqlite(sqlite::connect(url, options.max_connections).await?),
                    None,
                )
            } else {
                return Err(StoreError::Invalid(format!(
                    "STRIDELOG_DATABASE_URL must start with postgres:// or sqlite://, got `{}`",
                    url.split(':').next().unwrap_or_default()
                )));
            };
        let wake = Arc::new(WakeUp {
            local: Notify::new(),
            remote: remote.clone(),
            listening: Default::default(),
            tasks: Default::default(),
        });
        if let (Backend::Postgres(pool), Some(remote)) = (&backend, remote) {
            let pool = pool.clone();
            let task = tokio::spawn(async move {
                loop {
                    remote.notified().await;
                    if let Err(e) = sqlx::query("SELECT pg_notify($1, '')")
                        .bind(postgres::NOTIFY_CHANNEL)
                        .execute(&pool)
                        .await
                    {
                        tracing::debug!(error = %e, "wake-up NOTIFY failed; followers poll");
                    }
                }
            });
            wake.tasks.lock().expect("not poisoned").push(task);
        }
        Ok(Self {
            backend,
            master,
            keys: Default::default(),
            wake,
            #[cfg(feature = "testing")]
            commit_delay: None,
        })
    }

    /// Test hook: every append pauses this long inside its transaction before COMMIT.
    #[cfg(feature = "testing")]
    pub fn with_commit_delay(mut self, delay: testing::CommitDelay) -> Self {
        self.commit_delay = Some(delay);
        self
    }

    fn commit_delay(&self) -> Option<Duration> {
        #[cfg(feature = "testing")]
        if let Some(d) = &self.commit_delay {
            return Some(d());
        }
        None
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Postgres(_) => "postgres",
            Backend::Sqlite(_) => "sqlite",
        }
    }

    /// The PostgreSQL pool, for code that shares the store's database (benchmarks, read models).
    pub fn pg_pool(&self) -> Option<&PgPool> {
        match &self.backend {
            Backend::Postgres(p) => Some(p),
            Backend::Sqlite(_) => None,
        }
    }

    pub fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match &self.backend {
            Backend::Sqlite(p) => Some(p),
            Backend::Postgres(_) => None,
        }
    }

    /// Applies the backend's migrations (idempotent).
    pub async fn migrate(&self) -> StoreResult<()> {
        match &self.backend {
            Backend::Postgres(p) => postgres::migrate(p).await,
            Backend::Sqlite(p) => sqlite::migrate(p).await,
        }
    }

    pub async fn info(&self) -> StoreResult<StoreInfo> {
        let schema_version = match &self.backend {
            Backend::Postgres(p) => postgres::schema_version(p).await?,
            Backend::Sqlite(p) => sqlite::schema_version(p).await?,
        };
        Ok(StoreInfo {
            backend: self.backend_name(),
            schema_version,
        })
    }

    /// Age in seconds of the oldest open write transaction: how far followers may be held back.
    /// Always 0 on SQLite, whose followers are never held back.
    pub async fn horizon_lag_s(&self) -> StoreResult<f64> {
        match &self.backend {
            Backend::Postgres(p) => postgres::oldest_open_transaction_s(p).await,
            Backend::Sqlite(_) => Ok(0.0),
        }
    }

    /// Appends atomically: all of `req.events` with consecutive stream versions, the idempotency
    /// record, or nothing. Once this returns `Ok` the events are committed.
    pub async fn append(&self, req: &AppendRequest) -> StoreResult<AppendOutcome> {
        let outcome = match &self.backend {
            Backend::Postgres(p) => {
                postgres::append(p, &self.master, &self.keys, req, self.commit_delay()).await?
            }
            Backend::Sqlite(p) => {
                sqlite::append(p, &self.master, req, None, self.commit_delay()).await?
            }
        };
        if !outcome.replayed {
            self.wake.appended();
        }
        Ok(outcome)
    }

    /// GDPR erasure: appends `req` (the non-personal erasure record), destroys the athlete's
    /// data key and deletes their kept activity files, in the same transaction. Every personal payload of theirs, in every copy of the
    /// log, becomes [`Payload::Erased`]; later appends for them are refused.
    pub async fn erase_athlete(
        &self,
        athlete: Uuid,
        req: &AppendRequest,
    ) -> StoreResult<AppendOutcome> {
        if req.events.iter().any(|e| e.personal) {
            return Err(StoreError::Invalid(
                "the erasure record must not be personal: it has to outlive the key".into(),
            ));
        }
        if req.metadata.athlete_id != Some(athlete) {
            return Err(StoreError::Invalid(
                "the erasure record's metadata.athlete_id must name the erased athlete".into(),
            ));
        }
        let outcome = match &self.backend {
            Backend::Postgres(p) => postgres::erase_athlete(p, &self.keys, athlete, req).await?,
            Backend::Sqlite(p) => sqlite::append(p, &self.master, req, Some(athlete), None).await?,
        };
        self.wake.appended();
        Ok(outcome)
    }

    /// After an erasure on SQLite: moves the write-ahead log into the database file and
    /// empties it, so the `-wal` file no longer holds page versions from before the deletes.
    /// Nothing to do on PostgreSQL (its WAL and backups age out by retention, see
    /// docs/privacy.md). `false` when a reader kept the checkpoint from completing.
    pub async fn checkpoint_wal(&self) -> StoreResult<bool> {
        match &self.backend {
            Backend::Postgres(_) => Ok(true),
            Backend::Sqlite(p) => sqlite::checkpoint_truncate(p).await,
        }
    }

    /// The outcome stored for an idempotency key, if that key was used before.
    pub async fn find_idempotent(&self, idem: &Idempotency) -> StoreResult<Option<AppendOutcome>> {
        match &self.backend {
            Backend::Postgres(p) => postgres::find_idempotent(p, idem).await,
            Backend::Sqlite(p) => sqlite::find_idempotent(p, idem).await,
        }
    }

    /// The stream's events after `after_version`, optionally as of a point in history.
    pub async fn read_stream(
        &self,
        stream: &StreamId,
        after_version: u64,
        as_of: Option<AsOf>,
    ) -> StoreResult<Vec<RecordedEvent>> {
        match &self.backend {
            Backend::Postgres(p) => {
                postgres::read_stream(p, &self.master, stream, after_version, as_of).await
            }
            Backend::Sqlite(p) => {
                sqlite::read_stream(p, &self.master, stream, after_version, as_of).await
            }
        }
    }

    /// Every event of one athlete across all their streams, in log order (audit, export).
    pub async fn read_athlete(
        &self,
        athlete: Uuid,
        as_of: Option<AsOf>,
    ) -> StoreResult<Vec<RecordedEvent>> {
        match &self.backend {
            Backend::Postgres(p) => postgres::read_athlete(p, &self.master, athlete, as_of).await,
            Backend::Sqlite(p) => sqlite::read_athlete(p, &self.master, athlete, as_of).await,
        }
    }

    /// The cursor of the last event committed so far, ignoring the follower horizon: what a
    /// follower that wants to be "caught up with everything acknowledged" must reach.
    pub async fn last_committed(&self) -> StoreResult<LogCursor> {
        match &self.backend {
            Backend::Postgres(p) => postgres::last_committed(p).await,
            Backend::Sqlite(p) => sqlite::head(p).await,
        }
    }

    /// The log cursor of the event at `position`, if there is one.
    pub async fn cursor_of(&self, position: i64) -> StoreResult<Option<LogCursor>> {
        match &self.backend {
            Backend::Postgres(p) => postgres::cursor_of(p, position).await,
            Backend::Sqlite(p) => sqlite::cursor_of(p, position).await,
        }
    }

    /// The log position of the athlete's last committed event (through the
    /// `events_by_athlete` index); `None` before their first. The read cache keys answers on it
    /// (api/src/cache.rs, D41).
    pub async fn athlete_head(&self, athlete: Uuid) -> StoreResult<Option<i64>> {
        match &self.backend {
            Backend::Postgres(p) => postgres::athlete_head(p, athlete).await,
            Backend::Sqlite(p) => sqlite::athlete_head(p, athlete).await,
        }
    }

    /// The log position of the stream's last event; `None` for a stream with no events.
    pub async fn stream_head(&self, stream: &StreamId) -> StoreResult<Option<i64>> {
        match &self.backend {
            Backend::Postgres(p) => postgres::stream_head(p, stream).await,
            Backend::Sqlite(p) => sqlite::stream_head(p, stream).await,
        }
    }

    pub async fn stream_version(&self, stream: &StreamId) -> StoreResult<u64> {
        match &self.backend {
            Backend::Postgres(p) => postgres::stream_version(p, stream).await,
            Backend::Sqlite(p) => sqlite::stream_version(p, stream).await,
        }
    }

    /// Starts the LISTEN task on first use (PostgreSQL), so processes that only write hold no
    /// extra connection.
    fn ensure_listener(&self) {
        let Backend::Postgres(pool) = &self.backend else {
            return;
        };
        if self
            .wake
            .listening
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return;
        }
        let mut tasks = self.wake.tasks.lock().expect("not poisoned");
        let pool = pool.clone();
        let wake = Arc::downgrade(&self.wake);
        tasks.push(tokio::spawn(async move {
            loop {
                match sqlx::postgres::PgListener::connect_with(&pool).await {
                    Ok(mut listener) => {
                        if listener.listen(postgres::NOTIFY_CHANNEL).await.is_ok() {
                            while listener.recv().await.is_ok() {
                                match wake.upgrade() {
                                    Some(w) => w.local.notify_waiters(),
                                    None => return,
                                }
                            }
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "LISTEN failed; followers poll"),
                }
                if wake.strong_count() == 0 {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }));
    }
}

/// A batch of the log as stored: fetched, not yet decrypted or parsed. A reader that knows
/// where the next batch starts ([`FetchedLog::last_cursor`]) can fetch it while this one is
/// decoded ([`EventStore::decode_log`]): a rebuild overlaps the database's work with its own.
pub struct FetchedLog {
    rows: Vec<codec::RawEvent>,
}

impl FetchedLog {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The cursor of the batch's last event: where the next batch starts.
    pub fn last_cursor(&self) -> Option<LogCursor> {
        self.rows.last().map(|r| LogCursor {
            tx: r.tx,
            position: r.position,
        })
    }
}

impl EventStore {
    /// The first half of [`EventLog::read_log`]: the same gap-safe read, undecoded.
    pub async fn fetch_log(&self, after: LogCursor, limit: i64) -> StoreResult<FetchedLog> {
        let rows = match &self.backend {
            Backend::Postgres(p) => postgres::fetch_log(p, after, limit).await?,
            Backend::Sqlite(p) => sqlite::fetch_log(p, after, limit).await?,
        };
        Ok(FetchedLog { rows })
    }

    /// The second half of [`EventLog::read_log`]: decrypts and parses a fetched batch.
    pub fn decode_log(&self, fetched: FetchedLog) -> StoreResult<Vec<RecordedEvent>> {
        codec::decode(fetched.rows, &self.master)
    }
}

#[async_trait::async_trait]
impl EventLog for EventStore {
    async fn read_log(&self, after: LogCursor, limit: i64) -> StoreResult<Vec<RecordedEvent>> {
        let fetched = self.fetch_log(after, limit).await?;
        self.decode_log(fetched)
    }

    async fn head(&self) -> StoreResult<LogCursor> {
        match &self.backend {
            Backend::Postgres(p) => postgres::head(p).await,
            Backend::Sqlite(p) => sqlite::head(p).await,
        }
    }

    async fn wait_for_append(&self, timeout: Duration) {
        self.ensure_listener();
        let _ = tokio::time::timeout(timeout, self.wake.local.notified()).await;
    }
}

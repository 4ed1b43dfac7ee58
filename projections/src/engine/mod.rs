//! The projector engine: follows the global log from each projection's checkpoint and applies
//! events to read models, writing the rows and the checkpoint in one transaction.
//!
//! One SQL dialect serves both stores (sqlx `Any`, `$n` placeholders, portable DDL), so every
//! read model works on PostgreSQL and on the embedded SQLite file alike.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde::Serialize;
use sqlx::AnyConnection;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Row};
use store::{EventLog, EventStore, LogCursor, RecordedEvent};

use crate::decode::{Decoder, DomainEvent};
use crate::fault::{Backoff, ErrorClass, TransientFailure, classify};
use reader::Reader;
use skipped::record_poison;

mod reader;
mod rebuild;
mod skipped;
mod verify;

pub use skipped::{Resolution, Skipped};
pub use verify::row_text;

/// The read side's connection to the store's database.
#[derive(Clone)]
pub struct ReadDb {
    pub pool: AnyPool,
    sqlite: bool,
}

/// How long a SQLite connection waits for another process's write lock before failing with
/// "database is locked": the same bound as the event store's pool.
const SQLITE_BUSY_TIMEOUT_MS: u64 = 30_000;

impl ReadDb {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        // The embedded file is shared with `serve`, workers and operators'
                        // commands in other processes: readers must not block writers (WAL),
                        // and a writer waits its turn instead of failing at once.
                        // secure_delete: the rows an erasure deletes (read models, identity)
                        // are zeroed in the file, not left in free pages (docs/privacy.md).
                        for pragma in [
                            format!("PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}"),
                            "PRAGMA journal_mode = WAL".to_string(),
                            "PRAGMA secure_delete = ON".to_string(),
                        ] {
                            sqlx::query(sqlx::AssertSqlSafe(pragma))
                                .execute(&mut *conn)
                                .await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await
            .context("cannot open the read-model database")?;
        Ok(Self { pool, sqlite })
    }

    pub fn is_sqlite(&self) -> bool {
        self.sqlite
    }

    /// A transaction that will write. On SQLite it takes the write lock up front (`BEGIN
    /// IMMEDIATE`): a deferred transaction that reads first and writes later cannot wait for
    /// the lock (in WAL mode its snapshot may be stale, SQLITE_BUSY_SNAPSHOT) and fails at once
    /// with "database is locked" whenever another process wrote in between.
    pub async fn begin_write(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Any>> {
        if self.sqlite {
            self.pool.begin_with("BEGIN IMMEDIATE").await
        } else {
            self.pool.begin().await
        }
    }
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Physical table names of one generation of one projection: `rm_<projection>_<table>_g<n>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    projection: &'static str,
    generation: i64,
}

impl Tables {
    pub fn new(projection: &'static str, generation: i64) -> Self {
        Self {
            projection,
            generation,
        }
    }

    pub fn table(&self, base: &str) -> String {
        format!("rm_{}_{}_g{}", self.projection, base, self.generation)
    }

    pub fn generation(&self) -> i64 {
        self.generation
    }
}

/// One event as a projection sees it.
pub struct Projected<'a> {
    pub recorded: &'a RecordedEvent,
    pub event: &'a DomainEvent,
    /// For what events only point to: the activity files kept beside the log.
    pub store: &'a EventStore,
    /// False while (re)building history: projections with outside effects (mail, NATS) act
    /// only on live events, so a rebuild never repeats them.
    pub live: bool,
}

/// A read model. Implementations are deterministic functions of the events they are given:
/// the property tests compare an incremental build with a full rebuild.
#[async_trait::async_trait]
pub trait Projection: Send + Sync + 'static {
    /// Stable, lowercase, a prefix of its table names.
    fn name(&self) -> &'static str;
    /// Bump whenever `schema` or `apply` changes meaning: the engine then builds the new version
    /// beside the old one and switches when it has caught up.
    fn version(&self) -> i64;
    /// Base names of its tables (for dropping old generations and for `verify`).
    fn tables(&self) -> &'static [&'static str];
    /// `CREATE TABLE` / `CREATE INDEX` statements for one generation.
    fn schema(&self, t: &Tables) -> Vec<String>;
    /// Applies one event inside the batch's transaction. Return database and store errors as
    /// they are: a transient one (pool, connection, lock) is retried later and never skips;
    /// any other error that repeats on a one-event retry skips the event as poison (recorded,
    /// and `/health` is not ready until an operator resolves it).
    async fn apply(
        &self,
        conn: &mut AnyConnection,
        t: &Tables,
        e: &Projected<'_>,
    ) -> anyhow::Result<()>;
    /// Applies a batch of consecutive events inside one transaction, in order. The default
    /// applies them one by one; projections override it to write many rows per statement
    /// (rebuild throughput is bounded by statements, not by events). It must leave exactly the
    /// rows that applying each event in turn would. When it fails, the engine retries the
    /// batch one event at a time through `apply` (unless the failure was transient: then the
    /// whole batch is retried later), so only a poison event is skipped.
    async fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        t: &Tables,
        events: &[Projected<'_>],
    ) -> anyhow::Result<()> {
        for e in events {
            self.apply(conn, t, e).await?;
        }
        Ok(())
    }

    /// Columns that order each table's rows completely, for `verify`'s comparison.
    fn order_by(&self, table: &str) -> &'static str;

    /// False for projections that read only metadata (the audit log): an event whose payload
    /// this build cannot decode is then applied as [`DomainEvent::Foreign`] instead of skipped.
    fn needs_payload(&self) -> bool {
        true
    }
}

/// One batch's events as one projection applies them to one generation.
struct Pass<'a> {
    p: &'a dyn Projection,
    generation: i64,
    t: Tables,
    cp: Checkpoint,
    events: &'a [RecordedEvent],
    decoded: Vec<Result<&'a DomainEvent, &'a serde_json::Error>>,
}

impl<'a> Pass<'a> {
    fn projected(
        &self,
        recorded: &'a RecordedEvent,
        event: &'a DomainEvent,
        store: &'a EventStore,
    ) -> Projected<'a> {
        Projected {
            recorded,
            event,
            store,
            live: recorded.cursor > self.cp.gate,
        }
    }
}

fn transient(
    p: &dyn Projection,
    position: i64,
    reason: &'static str,
    source: anyhow::Error,
) -> anyhow::Error {
    TransientFailure {
        projection: p.name(),
        position,
        reason,
        source,
    }
    .into()
}

/// Whether a batch's commit waits for the log flush (see [`Engine::begin_batch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Commit {
    Durable,
    Deferred,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Checkpoint {
    cursor: LogCursor,
    applied: i64,
    gate: LogCursor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    active_generation: i64,
    active_version: i64,
    building: Option<(i64, i64)>,
}

/// What `projections list` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub name: &'static str,
    pub code_version: i64,
    pub active_version: i64,
    pub active_generation: i64,
    pub checkpoint_position: i64,
    pub events_applied: i64,
    /// Log positions between the checkpoint and the head (approximate on PostgreSQL, where
    /// positions are not handed out in commit order).
    pub positions_behind: i64,
    /// Age of the oldest event not yet applied; 0 when caught up.
    pub seconds_behind: f64,
    /// `live`, `building vN` or `stopped`.
    pub state: String,
    pub building_checkpoint_position: Option<i64>,
    /// Skipped events no operator has resolved yet (`projections retry`).
    pub skipped_events: i64,
    pub runner: Option<String>,
}

/// How long a runner's lease lasts without renewal: the takeover delay when a runner dies.
pub const LEASE: Duration = Duration::from_secs(5);

/// Cheap to clone: the clones share the pool, the lease owner and the recent-batch cache, so a
/// rebuild can run each generation on a task of its own.
#[derive(Clone)]
pub struct Engine {
    db: ReadDb,
    log: EventStore,
    projections: Vec<Arc<dyn Projection>>,
    owner: String,
    batch: i64,
    build_batch: i64,
    backoff: Backoff,
    reader: Reader,
}

/// Events per batch while a generation is being built (see [`Engine::with_batch`]).
pub const BUILD_BATCH: i64 = 4000;

/// What a projection that reads only metadata gets for a payload this build cannot decode.
static FOREIGN: DomainEvent = DomainEvent::Foreign;

/// What one pass over a projection did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub applied: usize,
    pub switched: bool,
}

impl Engine {
    pub fn new(log: EventStore, db: ReadDb, projections: Vec<Arc<dyn Projection>>) -> Self {
        Self {
            reader: Reader::new(log.clone()),
            db,
            log,
            projections,
            owner: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            batch: 500,
            build_batch: BUILD_BATCH,
            backoff: Backoff::default(),
        }
    }

    /// How long to wait between attempts after transient failures.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Events per batch, for live generations and for those being built alike.
    pub fn with_batch(mut self, batch: i64) -> Self {
        self.batch = batch;
        self.build_batch = batch;
        self
    }

    /// Events per batch for a generation that commits `commit`: one being built takes larger
    /// batches (fewer transactions, statements and checkpoint writes per event, and more
    /// events folded into each row), since no reader waits on its progress.
    fn limit(&self, commit: Commit) -> i64 {
        match commit {
            Commit::Durable => self.batch,
            Commit::Deferred => self.build_batch,
        }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn db(&self) -> &ReadDb {
        &self.db
    }

    pub fn projection(&self, name: &str) -> anyhow::Result<&Arc<dyn Projection>> {
        self.projections
            .iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| {
                let names: Vec<_> = self.projections.iter().map(|p| p.name()).collect();
                anyhow!("no projection named `{name}` (known: {})", names.join(", "))
            })
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.projections.iter().map(|p| p.name()).collect()
    }

    /// The tables reads should use now.
    pub async fn active_tables(&self, name: &str) -> anyhow::Result<Tables> {
        let p = self.projection(name)?;
        let state = self.ensure_state(p.as_ref()).await?;
        Ok(Tables::new(p.name(), state.active_generation))
    }

    async fn load_state(&self, name: &str) -> anyhow::Result<Option<State>> {
        let row = sqlx::query(
            "SELECT active_generation, active_version, building_generation, building_version \
             FROM projection_state WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.db.pool)
        .await?;
        Ok(row.map(|r| State {
            active_generation: r.get(0),
            active_version: r.get(1),
            building: match (r.get::<Option<i64>, _>(2), r.get::<Option<i64>, _>(3)) {
                (Some(g), Some(v)) => Some((g, v)),
                _ => None,
            },
        }))
    }

    /// First sight of a projection: generation 1, built from the start of the log.
    async fn ensure_state(&self, p: &dyn Projection) -> anyhow::Result<State> {
        if let Some(s) = self.load_state(p.name()).await? {
            return Ok(s);
        }
        let head = self.log.head().await?;
        let mut tx = self.db.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO projection_state (name, active_generation, active_version, updated_at_us) \
             VALUES ($1, 1, $2, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(p.name())
        .bind(p.version())
        .bind(now_us())
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 1 {
            create_generation(&mut tx, p, 1, head, Indexes::Now).await?;
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        self.load_state(p.name())
            .await?
            .context("projection state vanished")
    }

    async fn checkpoint(&self, name: &str, generation: i64) -> anyhow::Result<Checkpoint> {
        let r = sqlx::query(
            "SELECT tx, position, events_applied, gate_tx, gate_pos FROM projection_checkpoints \
             WHERE name = $1 AND generation = $2",
        )
        .bind(name)
        .bind(generation)
        .fetch_one(&self.db.pool)
        .await
        .with_context(|| format!("no checkpoint for {name} generation {generation}"))?;
        Ok(Checkpoint {
            cursor: LogCursor {
                tx: r.get(0),
                position: r.get(1),
            },
            applied: r.get(2),
            gate: LogCursor {
                tx: r.get(3),
                position: r.get(4),
            },
        })
    }

    /// Takes or renews the runner lease; false when another live process holds it.
    pub async fn try_lease(&self, name: &str) -> anyhow::Result<bool> {
        let now = now_us();
        let done = sqlx::query(
            "INSERT INTO projection_leases (name, owner, expires_at_us) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at_us = excluded.expires_at_us \
             WHERE projection_leases.owner = excluded.owner OR projection_leases.expires_at_us < $4",
        )
        .bind(name)
        .bind(&self.owner)
        .bind(now + LEASE.as_micros() as i64)
        .bind(now)
        .execute(&self.db.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn release_leases(&self) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM projection_leases WHERE owner = $1")
            .bind(&self.owner)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// One pass over one projection: a batch for the live generation, a batch for a generation
    /// being built, and the switch when the new one has caught up. Call with the lease held.
    pub async fn step(&self, p: &dyn Projection) -> anyhow::Result<Progress> {
        let mut state = self.ensure_state(p).await?;
        if state.building.is_none() && state.active_version != p.version() {
            self.start_build(p, p.version()).await?;
            state = self.ensure_state(p).await?;
        }
        let mut progress = Progress {
            applied: self.process_batch(p, state.active_generation, None).await?,
            switched: false,
        };
        if let Some((generation, _)) = state.building {
            let cp = self.checkpoint(p.name(), generation).await?;
            let (built, cp) = self
                .apply_next(p, generation, cp, None, Commit::Deferred)
                .await?;
            progress.applied += built;
            // A short batch reached the head as it was when read (only full batches are kept
            // for other readers), so the new generation has caught up: switch, unless it is
            // behind the live one (readers must never see older data after the switch). It
            // must not also wait for the log to stay quiet: beside steady writes the new
            // generation would chase the head and never switch. What comes after is applied
            // to it as the live generation, on the next step.
            if (built as i64) < self.limit(Commit::Deferred) {
                let live = self.checkpoint(p.name(), state.active_generation).await?;
                if cp.cursor >= live.cursor {
                    self.switch(p, generation).await?;
                    progress.switched = true;
                }
            }
        }
        Ok(progress)
    }

    /// Creates the next generation (of `version`) beside the live one; `step` fills it.
    async fn start_build(&self, p: &dyn Projection, version: i64) -> anyhow::Result<i64> {
        let head = self.log.head().await?;
        let mut tx = self.db.begin_write().await?;
        let generation: i64 = sqlx::query_scalar(
            "SELECT CAST(coalesce(max(generation), 0) + 1 AS BIGINT) FROM projection_checkpoints WHERE name = $1",
        )
        .bind(p.name())
        .fetch_one(&mut *tx)
        .await?;
        let claimed = sqlx::query(
            "UPDATE projection_state SET building_generation = $2, building_version = $3, updated_at_us = $4 \
             WHERE name = $1 AND building_generation IS NULL",
        )
        .bind(p.name())
        .bind(generation)
        .bind(version)
        .bind(now_us())
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() == 0 {
            tx.rollback().await?;
            let state = self.load_state(p.name()).await?.context("no state")?;
            return Ok(state
                .building
                .map(|b| b.0)
                .unwrap_or(state.active_generation));
        }
        create_generation(&mut tx, p, generation, head, Indexes::Deferred).await?;
        tx.commit().await?;
        tracing::info!(
            projection = p.name(),
            generation,
            version,
            "building a new generation"
        );
        Ok(generation)
    }

    async fn switch(&self, p: &dyn Projection, generation: i64) -> anyhow::Result<()> {
        create_deferred_indexes(&self.db, p, generation).await?;
        let old: i64 =
            sqlx::query_scalar("SELECT active_generation FROM projection_state WHERE name = $1")
                .bind(p.name())
                .fetch_one(&self.db.pool)
                .await?;
        let switched = sqlx::query(
            "UPDATE projection_state SET active_generation = building_generation, \
               active_version = building_version, building_generation = NULL, \
               building_version = NULL, updated_at_us = $3 \
             WHERE name = $1 AND building_generation = $2",
        )
        .bind(p.name())
        .bind(generation)
        .bind(now_us())
        .execute(&self.db.pool)
        .await?;
        if switched.rows_affected() == 1 {
            tracing::info!(
                projection = p.name(),
                generation,
                "switched reads to the new generation"
            );
            drop_generation(&self.db, p, old).await?;
        }
        Ok(())
    }

    /// Applies up to one batch to `generation`, rows and checkpoint in one transaction.
    ///
    /// A batch that fails transiently (pool, connection, lock, serialization) is not touched:
    /// the error comes back as a [`TransientFailure`] and the caller retries after a backoff.
    /// Any other failure is retried one event per transaction; an event that fails again,
    /// deterministically, is poison: recorded in `projection_skipped` and passed. A transient
    /// failure in that one-at-a-time retry stops there too, so it never skips an event.
    async fn process_batch(
        &self,
        p: &dyn Projection,
        generation: i64,
        until: Option<LogCursor>,
    ) -> anyhow::Result<usize> {
        let cp = self.checkpoint(p.name(), generation).await?;
        let (applied, _) = self
            .apply_next(p, generation, cp, until, Commit::Durable)
            .await?;
        Ok(applied)
    }

    /// [`Engine::process_batch`] from a checkpoint the caller knows, returning where it left
    /// the checkpoint: a rebuild keeps it in memory instead of reading it back for every batch
    /// (the compare-and-set in [`advance`] still refuses a stale one).
    async fn apply_next(
        &self,
        p: &dyn Projection,
        generation: i64,
        cp: Checkpoint,
        until: Option<LogCursor>,
        commit: Commit,
    ) -> anyhow::Result<(usize, Checkpoint)> {
        let batch = self.reader.read(cp.cursor, self.limit(commit)).await?;
        // Cursors grow along the batch, so what `until` allows is a prefix.
        let n = match until {
            Some(until) => batch.events.partition_point(|e| e.cursor <= until),
            None => batch.events.len(),
        };
        if n == 0 {
            return Ok((0, cp));
        }
        let pass = Pass {
            p,
            generation,
            t: Tables::new(p.name(), generation),
            cp,
            events: &batch.events[..n],
            decoded: batch.decoded[..n]
                .iter()
                .map(|d| match d {
                    Ok(event) => Ok(event),
                    Err(_) if !p.needs_payload() => Ok(&FOREIGN),
                    Err(err) => Err(err),
                })
                .collect(),
        };
        if let Some(cp) = self.apply_whole(&pass, commit).await? {
            self.checkpoint_after_erasure(&pass, commit).await;
            return Ok((n, cp));
        }
        // The error text is not logged: decode errors quote payload fragments. The poison
        // event's error is kept in `projection_skipped` for the operator.
        tracing::warn!(
            projection = p.name(),
            generation,
            from_position = pass.events[0].position,
            events = n,
            "batch failed; retrying it one event at a time"
        );
        let cp = self.apply_one_by_one(&pass).await?;
        self.checkpoint_after_erasure(&pass, commit).await;
        Ok((n, cp))
    }

    /// On SQLite, after a live batch that applied an erasure: the WAL still holds the page
    /// versions from before the projection deleted the athlete's rows, so it is copied back
    /// and truncated (docs/privacy.md). The erasure itself does this once the read models
    /// have caught up; this covers those that apply it later (a lagging or restarted
    /// projector, `users erase` with no `serve` running). Best effort: a checkpoint that
    /// cannot complete now is completed by a later one.
    async fn checkpoint_after_erasure(&self, pass: &Pass<'_>, commit: Commit) {
        let erased = pass.events.iter().any(|e| e.event_type == "AthleteErased");
        if !erased || commit != Commit::Durable || !self.db.is_sqlite() {
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.db.pool)
            .await
        {
            tracing::warn!(projection = pass.p.name(), error = %e, "WAL checkpoint after an erasure failed");
        }
    }

    /// The whole batch in one transaction. `None` when it failed deterministically (or an
    /// event does not decode): the caller then retries it one event at a time.
    async fn apply_whole(
        &self,
        pass: &Pass<'_>,
        commit: Commit,
    ) -> anyhow::Result<Option<Checkpoint>> {
        let Ok(events) = pass.decoded.iter().copied().collect::<Result<Vec<_>, _>>() else {
            return Ok(None);
        };
        let projected: Vec<Projected> = pass
            .events
            .iter()
            .zip(events)
            .map(|(e, event)| pass.projected(e, event, &self.log))
            .collect();
        let mut tx = self.begin_batch(commit).await?;
        if let Err(err) = pass.p.apply_batch(&mut tx, &pass.t, &projected).await {
            // The connection may be gone: the failure, not the rollback, is what the caller
            // needs to hear about.
            let _ = tx.rollback().await;
            return match classify(&err) {
                ErrorClass::Transient(reason) => {
                    Err(transient(pass.p, pass.events[0].position, reason, err))
                }
                ErrorClass::Deterministic => Ok(None),
            };
        }
        let last = pass.events.last().expect("not empty").cursor;
        let applied = pass.events.len() as i64;
        advance(
            &mut tx,
            pass.p.name(),
            pass.generation,
            pass.cp,
            last,
            applied,
        )
        .await?;
        tx.commit().await?;
        Ok(Some(Checkpoint {
            cursor: last,
            applied: pass.cp.applied + applied,
            gate: pass.cp.gate,
        }))
    }

    /// Each event of a failed batch in a transaction of its own; one that fails again,
    /// deterministically, is recorded as poison and passed. A transient failure stops the
    /// pass there (what was applied stays), so it never skips an event.
    async fn apply_one_by_one(&self, pass: &Pass<'_>) -> anyhow::Result<Checkpoint> {
        let (p, generation) = (pass.p, pass.generation);
        let mut current = pass.cp;
        for (e, d) in pass.events.iter().zip(&pass.decoded) {
            let mut tx = self.db.begin_write().await?;
            let result = match *d {
                Ok(event) => {
                    p.apply(&mut tx, &pass.t, &pass.projected(e, event, &self.log))
                        .await
                }
                Err(err) => Err(decode_error(e, err)),
            };
            let applied = match result {
                Ok(()) => 1,
                Err(err) => {
                    let _ = tx.rollback().await;
                    if let ErrorClass::Transient(reason) = classify(&err) {
                        return Err(transient(p, e.position, reason, err));
                    }
                    tx = self.db.begin_write().await?;
                    record_poison(&mut tx, p.name(), generation, e, &err).await?;
                    0
                }
            };
            advance(&mut tx, p.name(), generation, current, e.cursor, applied).await?;
            tx.commit().await?;
            current.cursor = e.cursor;
            current.applied += applied;
        }
        Ok(current)
    }

    /// A batch's transaction. A generation being built serves no reads, so on PostgreSQL its
    /// batches commit without waiting for the WAL flush: a crash can lose only whole recent
    /// transactions, rows and checkpoint together (the batches are applied again from the
    /// log), and the synchronous commit of the switch flushes everything before it.
    async fn begin_batch(
        &self,
        commit: Commit,
    ) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Any>> {
        let mut tx = self.db.begin_write().await?;
        if commit == Commit::Deferred && !self.db.is_sqlite() {
            sqlx::query("SET LOCAL synchronous_commit = off")
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    /// Steps one projection until it has applied everything committed when called (and any
    /// build in progress has switched), waiting out the follower horizon; bounded by `timeout`.
    /// For tests, benchmarks and the rebuild CLI; daemons use [`Engine::run`].
    pub async fn catch_up(&self, p: &dyn Projection, timeout: Duration) -> anyhow::Result<()> {
        let target = self.log.last_committed().await?;
        let deadline = Instant::now() + timeout;
        let mut failures = 0;
        loop {
            let progress = match self.step(p).await {
                Ok(progress) => {
                    failures = 0;
                    progress
                }
                Err(e) => {
                    failures += 1;
                    self.wait_out(p.name(), e, failures, deadline).await?;
                    continue;
                }
            };
            let state = self.ensure_state(p).await?;
            let cp = self.checkpoint(p.name(), state.active_generation).await?;
            if cp.cursor >= target && state.building.is_none() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("{} did not catch up within {timeout:?}", p.name());
            }
            if progress.applied == 0 && !progress.switched {
                self.log.wait_for_append(Duration::from_millis(20)).await;
            }
        }
    }

    /// Runs every projection whose lease this process holds, until `stop` resolves. A
    /// projection that fails is retried after a capped exponential backoff; the others go on.
    pub async fn run(&self, stop: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        tokio::pin!(stop);
        // Per projection: consecutive failures and when to try again.
        let mut failing: HashMap<&'static str, (u32, Instant)> = HashMap::new();
        loop {
            let mut busy = false;
            for p in &self.projections {
                if failing
                    .get(p.name())
                    .is_some_and(|(_, at)| Instant::now() < *at)
                {
                    continue;
                }
                let result = async {
                    if !self.try_lease(p.name()).await? {
                        return anyhow::Ok(false);
                    }
                    let progress = self.step(p.as_ref()).await?;
                    Ok(progress.applied > 0 || progress.switched)
                }
                .await;
                match result {
                    Ok(b) => {
                        failing.remove(p.name());
                        busy |= b;
                    }
                    Err(e) => {
                        let failures = failing.get(p.name()).map_or(0, |f| f.0) + 1;
                        let delay = self.backoff.delay(failures);
                        report_failure(p.name(), &e, failures, delay);
                        failing.insert(p.name(), (failures, Instant::now() + delay));
                    }
                }
            }
            if busy {
                tokio::select! { _ = &mut stop => break, _ = tokio::task::yield_now() => {} }
            } else {
                let mut wait = Duration::from_millis(500);
                if let Some(at) = failing.values().map(|f| f.1).min() {
                    wait = wait.min(at.saturating_duration_since(Instant::now()));
                }
                tokio::select! {
                    _ = &mut stop => break,
                    _ = self.log.wait_for_append(wait) => {}
                }
            }
        }
        self.release_leases().await
    }

    /// After a failed pass in a loop with a deadline: waits out a transient failure (backoff,
    /// bounded by `deadline`) and returns Ok to try again; returns any other failure.
    async fn wait_out(
        &self,
        name: &'static str,
        e: anyhow::Error,
        failures: u32,
        deadline: Instant,
    ) -> anyhow::Result<()> {
        if !classify(&e).is_transient() {
            return Err(e);
        }
        let delay = self.backoff.delay(failures);
        if Instant::now() + delay >= deadline {
            return Err(e.context(format!("{name} kept failing transiently")));
        }
        report_failure(name, &e, failures, delay);
        tokio::time::sleep(delay).await;
        Ok(())
    }

    pub async fn status(&self) -> anyhow::Result<Vec<Status>> {
        let head = self.log.head().await?;
        let mut out = Vec::new();
        for p in &self.projections {
            let state = self.ensure_state(p.as_ref()).await?;
            let cp = self.checkpoint(p.name(), state.active_generation).await?;
            let next = self.log.read_log(cp.cursor, 1).await?;
            let seconds_behind = next.first().map_or(0.0, |e| {
                ((chrono::Utc::now() - e.recorded_at).num_milliseconds() as f64 / 1000.0).max(0.0)
            });
            let building = match state.building {
                Some((g, _)) => Some(self.checkpoint(p.name(), g).await?.cursor.position),
                None => None,
            };
            let skipped: i64 = sqlx::query_scalar(
                "SELECT CAST(count(*) AS BIGINT) FROM projection_skipped \
                 WHERE name = $1 AND generation = $2 AND resolved_at_us IS NULL",
            )
            .bind(p.name())
            .bind(state.active_generation)
            .fetch_one(&self.db.pool)
            .await?;
            let runner: Option<String> = sqlx::query_scalar(
                "SELECT owner FROM projection_leases WHERE name = $1 AND expires_at_us >= $2",
            )
            .bind(p.name())
            .bind(now_us())
            .fetch_optional(&self.db.pool)
            .await?;
            out.push(Status {
                name: p.name(),
                code_version: p.version(),
                active_version: state.active_version,
                active_generation: state.active_generation,
                checkpoint_position: cp.cursor.position,
                events_applied: cp.applied,
                positions_behind: if next.is_empty() {
                    0
                } else {
                    (head.position - cp.cursor.position).max(1)
                },
                seconds_behind,
                state: match (state.building, &runner) {
                    (Some((_, v)), _) => format!("building v{v}"),
                    (None, Some(_)) => "live".into(),
                    (None, None) => "stopped".into(),
                },
                building_checkpoint_position: building,
                skipped_events: skipped,
                runner,
            });
        }
        Ok(out)
    }

    /// Read-your-writes: waits until every named projection has applied the event at
    /// `position` (or anything after it), at most `timeout`. True when they have.
    pub async fn wait_for(
        &self,
        names: &[&str],
        position: i64,
        timeout: Duration,
    ) -> anyhow::Result<bool> {
        let Some(target) = self.log.cursor_of(position).await? else {
            bail!("no event at log position {position}");
        };
        let deadline = Instant::now() + timeout;
        loop {
            let mut reached = true;
            for name in names {
                let p = self.projection(name)?;
                let state = self.ensure_state(p.as_ref()).await?;
                if self.checkpoint(name, state.active_generation).await?.cursor < target {
                    reached = false;
                    break;
                }
            }
            if reached {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// When a new generation's secondary indexes are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Indexes {
    /// With its tables: the generation serves reads from the start (the first one).
    Now,
    /// At the switch ([`create_deferred_indexes`]): a generation built beside the live one
    /// serves no reads until then, and one sorted build of an index costs PostgreSQL less
    /// than inserting every row into it as it arrives. Primary keys and unique indexes are
    /// never deferred: the projections' upserts and reads while building rely on them.
    Deferred,
}

/// A statement of a projection's schema that makes a plain (not unique) secondary index, as
/// the idempotent statement [`create_deferred_indexes`] runs.
fn deferred_index(ddl: &str) -> Option<String> {
    ddl.trim_start()
        .strip_prefix("CREATE INDEX ")
        .map(|rest| format!("CREATE INDEX IF NOT EXISTS {rest}"))
}

/// Makes the secondary indexes a generation built with [`Indexes::Deferred`] left out. Runs
/// before the switch, and again harmlessly if a runner stopped between the two.
async fn create_deferred_indexes(
    db: &ReadDb,
    p: &dyn Projection,
    generation: i64,
) -> anyhow::Result<()> {
    let t = Tables::new(p.name(), generation);
    for ddl in p.schema(&t).iter().filter_map(|ddl| deferred_index(ddl)) {
        sqlx::query(sqlx::AssertSqlSafe(ddl))
            .execute(&db.pool)
            .await?;
    }
    Ok(())
}

async fn create_generation(
    conn: &mut AnyConnection,
    p: &dyn Projection,
    generation: i64,
    gate: LogCursor,
    indexes: Indexes,
) -> anyhow::Result<()> {
    let t = Tables::new(p.name(), generation);
    for base in p.tables() {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS {}",
            t.table(base)
        )))
        .execute(&mut *conn)
        .await?;
    }
    for ddl in p.schema(&t) {
        if indexes == Indexes::Deferred && deferred_index(&ddl).is_some() {
            continue;
        }
        sqlx::query(sqlx::AssertSqlSafe(ddl))
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query(
        "INSERT INTO projection_checkpoints (name, generation, tx, position, events_applied, gate_tx, gate_pos, updated_at_us) \
         VALUES ($1, $2, 0, 0, 0, $3, $4, $5)",
    )
    .bind(p.name())
    .bind(generation)
    .bind(gate.tx)
    .bind(gate.position)
    .bind(now_us())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn drop_generation(db: &ReadDb, p: &dyn Projection, generation: i64) -> anyhow::Result<()> {
    let t = Tables::new(p.name(), generation);
    let mut tx = db.begin_write().await?;
    for base in p.tables() {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS {}",
            t.table(base)
        )))
        .execute(&mut *tx)
        .await?;
    }
    for table in ["projection_checkpoints", "projection_skipped"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE name = $1 AND generation = $2"
        )))
        .bind(p.name())
        .bind(generation)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Moves the checkpoint from `from` to `to`, only if it is still at `from`: a runner that lost
/// its lease (paused, partitioned) cannot apply a batch twice; its transaction is refused.
async fn advance(
    conn: &mut AnyConnection,
    name: &str,
    generation: i64,
    from: Checkpoint,
    to: LogCursor,
    applied: i64,
) -> anyhow::Result<()> {
    let moved = sqlx::query(
        "UPDATE projection_checkpoints SET tx = $3, position = $4, events_applied = events_applied + $5, \
           updated_at_us = $6 \
         WHERE name = $1 AND generation = $2 AND tx = $7 AND position = $8",
    )
    .bind(name)
    .bind(generation)
    .bind(to.tx)
    .bind(to.position)
    .bind(applied)
    .bind(now_us())
    .bind(from.cursor.tx)
    .bind(from.cursor.position)
    .execute(&mut *conn)
    .await?;
    if moved.rows_affected() != 1 {
        bail!("{name} generation {generation} was advanced by another runner");
    }
    Ok(())
}

/// The error of an event this build cannot decode. Its text starts with
/// [`DECODE_FAILURE`], which `/health` uses to name the reason without quoting the error.
fn decode_error(e: &RecordedEvent, err: &impl std::fmt::Display) -> anyhow::Error {
    anyhow!(
        "{DECODE_FAILURE} {} v{}: {err}",
        e.event_type,
        e.event_version
    )
}

/// How a skipped event's error begins when the event could not be decoded.
pub const DECODE_FAILURE: &str = "cannot decode";

/// Logs a failed pass: transient ones at warn with their fixed reason, others at error. Error
/// texts of apply failures can quote payloads, so only the reason and position are logged for
/// transient ones; the others are engine failures (SQL on bookkeeping tables, lost leases).
fn report_failure(name: &str, e: &anyhow::Error, failures: u32, delay: Duration) {
    let retry_in_ms = delay.as_millis() as u64;
    match (classify(e), e.downcast_ref::<TransientFailure>()) {
        (ErrorClass::Transient(reason), Some(t)) => tracing::warn!(
            projection = name,
            position = t.position,
            reason,
            failures,
            retry_in_ms,
            "projection failed transiently; nothing skipped, retrying"
        ),
        (ErrorClass::Transient(reason), None) => tracing::warn!(
            projection = name,
            reason,
            failures,
            retry_in_ms,
            "projection pass failed transiently; retrying"
        ),
        (ErrorClass::Deterministic, _) => tracing::error!(
            projection = name,
            error = %format!("{e:#}"),
            failures,
            retry_in_ms,
            "projection pass failed"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::deferred_index;

    #[test]
    fn only_plain_secondary_indexes_are_deferred() {
        assert_eq!(
            deferred_index("CREATE INDEX t_g2_start ON t_g2 (athlete_id, start_time_us)")
                .as_deref(),
            Some("CREATE INDEX IF NOT EXISTS t_g2_start ON t_g2 (athlete_id, start_time_us)")
        );
        assert_eq!(deferred_index("CREATE UNIQUE INDEX u ON t_g2 (a)"), None);
        assert_eq!(
            deferred_index("CREATE TABLE t_g2 (a TEXT PRIMARY KEY)"),
            None
        );
    }
}

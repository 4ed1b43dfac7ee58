//! SQLite backend: the embedded default, one file, no server. Writers are serialised by SQLite
//! itself (`BEGIN IMMEDIATE` takes the write lock up front), so positions are handed out in
//! commit order and a reader can never see a later position before an earlier one.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use uuid::Uuid;

use crate::codec::{self, AppendFailure, RawEvent, conflict};
use crate::crypto::{DataKey, MasterKey};
use crate::error::{StoreError, StoreResult};
use crate::model::*;

pub(crate) async fn connect(url: &str, max_connections: u32) -> StoreResult<SqlitePool> {
    let options = SqliteConnectOptions::from_str(url)?;
    if let Some(dir) = Path::new(options.get_filename()).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Invalid(format!("cannot create {}: {e}", dir.display())))?;
    }
    // FULL makes every acknowledged commit durable across power loss, not only process crashes.
    let options = options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(30))
        .foreign_keys(true)
        // Deleted rows (an erased athlete's wrapped data key, their read-model rows) would
        // otherwise stay readable in free pages and in unused parts of live pages: zeroed,
        // erasure leaves nothing behind in the file (docs/privacy.md).
        .pragma("secure_delete", "ON");
    Ok(SqlitePoolOptions::new()
        .max_connections(max_connections)
        .connect_with(options)
        .await?)
}

pub(crate) async fn migrate(pool: &SqlitePool) -> StoreResult<()> {
    sqlx::migrate!("../migrations/sqlite").run(pool).await?;
    Ok(())
}

pub(crate) async fn schema_version(pool: &SqlitePool) -> StoreResult<i64> {
    let v: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await?;
    Ok(v.unwrap_or(0))
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_micros(us: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us)
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {us} out of range")))
}

fn parse_uuid(s: &str) -> StoreResult<Uuid> {
    Uuid::parse_str(s).map_err(|e| StoreError::Corrupt(format!("uuid `{s}`: {e}")))
}

pub(crate) async fn append(
    pool: &SqlitePool,
    master: &MasterKey,
    req: &AppendRequest,
    erase: Option<Uuid>,
    delay_before_commit: Option<Duration>,
) -> StoreResult<AppendOutcome> {
    codec::check_append(&req.events, &req.metadata)?;
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    match append_in(&mut tx, master, req).await {
        Ok(outcome) => {
            if let Some(athlete) = erase {
                sqlx::query(
                    "INSERT INTO athlete_keys (athlete_id, wrapped_key, created_at_us, destroyed_at_us) \
                     VALUES (?1, NULL, ?2, ?2) \
                     ON CONFLICT (athlete_id) DO UPDATE SET wrapped_key = NULL, destroyed_at_us = ?2",
                )
                .bind(athlete.to_string())
                .bind(micros(Utc::now()))
                .execute(&mut *tx)
                .await?;
                // See postgres::erase_athlete.
                sqlx::query("DELETE FROM sample_blobs WHERE athlete_id = ?1")
                    .bind(athlete.to_string())
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(d) = delay_before_commit {
                tokio::time::sleep(d).await;
            }
            tx.commit().await?;
            Ok(outcome)
        }
        Err(AppendFailure::Store(e)) => Err(e),
        Err(AppendFailure::IdempotencyTaken) => {
            let idem = req.idempotency.as_ref().expect("only raised with a key");
            let found = find_in(&mut tx, idem).await?;
            tx.rollback().await?;
            found.ok_or_else(|| StoreError::Corrupt("idempotency key vanished".into()))
        }
    }
}

async fn append_in(
    tx: &mut Transaction<'static, Sqlite>,
    master: &MasterKey,
    req: &AppendRequest,
) -> Result<AppendOutcome, AppendFailure> {
    if let Some(idem) = &req.idempotency {
        // Writers are serialised, so a check before the insert is race-free here.
        let taken: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM idempotency_keys WHERE scope = ?1 AND key = ?2")
                .bind(&idem.scope)
                .bind(&idem.key)
                .fetch_optional(&mut **tx)
                .await?;
        if taken.is_some() {
            return Err(AppendFailure::IdempotencyTaken);
        }
    }
    let key = match req.metadata.athlete_id {
        Some(athlete) => {
            data_key(tx, master, athlete, req.events.iter().any(|e| e.personal)).await?
        }
        None => None,
    };
    let sealed = codec::seal_events(&req.events, key.as_ref())?;

    let head: i64 = sqlx::query_scalar(
        "SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_type = ?1 AND stream_id = ?2",
    )
    .bind(&req.stream.stream_type)
    .bind(&req.stream.stream_id)
    .fetch_one(&mut **tx)
    .await?;
    let head = head as u64;
    let matches = match req.expected {
        ExpectedVersion::NoStream => head == 0,
        ExpectedVersion::Exact(v) => head == v,
        ExpectedVersion::Any => true,
    };
    if !matches {
        return Err(conflict(req).into());
    }

    let now = micros(Utc::now());
    let positions = insert_events(tx, req, &sealed, head, now).await?;
    let last = *positions.last().expect("appends are never empty");
    let outcome = AppendOutcome {
        stream_version: head + req.events.len() as u64,
        event_ids: req.events.iter().map(|e| e.event_id).collect(),
        positions,
        cursor: LogCursor {
            tx: last,
            position: last,
        },
        replayed: false,
    };
    if let Some(idem) = &req.idempotency {
        sqlx::query(
            "INSERT INTO idempotency_keys (scope, key, request_hash, outcome, created_at_us) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(&idem.scope)
        .bind(&idem.key)
        .bind(&idem.request_hash)
        .bind(serde_json::to_string(&outcome).expect("outcomes serialise"))
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(outcome)
}

/// Inserts the sealed events after stream version `head`, recorded at `now` (microseconds);
/// their global positions, in order.
async fn insert_events(
    tx: &mut Transaction<'static, Sqlite>,
    req: &AppendRequest,
    sealed: &[codec::Sealed],
    head: u64,
    now: i64,
) -> StoreResult<Vec<i64>> {
    let metadata = serde_json::to_string(&req.metadata)
        .map_err(|e| StoreError::Invalid(format!("metadata: {e}")))?;
    let athlete = req.metadata.athlete_id.map(|a| a.to_string());
    let mut positions = Vec::with_capacity(req.events.len());
    for (i, (event, sealed)) in req.events.iter().zip(sealed).enumerate() {
        let position: i64 = sqlx::query_scalar(
            "INSERT INTO events (event_id, stream_type, stream_id, stream_version, event_type, \
                                 event_version, athlete_id, recorded_at_us, metadata, payload, encrypted) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) RETURNING global_position",
        )
        .bind(event.event_id.to_string())
        .bind(&req.stream.stream_type)
        .bind(&req.stream.stream_id)
        .bind((head + 1 + i as u64) as i64)
        .bind(&event.event_type)
        .bind(&event.event_version)
        .bind(&athlete)
        .bind(now)
        .bind(&metadata)
        .bind(&sealed.bytes)
        .bind(sealed.encrypted)
        .fetch_one(&mut **tx)
        .await
        .map_err(|e| map_insert_error(e, req, event.event_id))?;
        positions.push(position);
    }
    Ok(positions)
}

fn map_insert_error(e: sqlx::Error, req: &AppendRequest, event_id: Uuid) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        if db.message().contains("events.event_id") {
            return StoreError::DuplicateEvent(event_id);
        }
        return conflict(req);
    }
    StoreError::Database(e)
}

/// The athlete's data key (created on their first personal event); refuses erased athletes.
async fn data_key(
    tx: &mut Transaction<'static, Sqlite>,
    master: &MasterKey,
    athlete: Uuid,
    needed: bool,
) -> StoreResult<Option<DataKey>> {
    let row: Option<Option<Vec<u8>>> =
        sqlx::query_scalar("SELECT wrapped_key FROM athlete_keys WHERE athlete_id = ?1")
            .bind(athlete.to_string())
            .fetch_optional(&mut **tx)
            .await?;
    match row {
        Some(None) => Err(StoreError::AthleteErased(athlete)),
        Some(Some(wrapped)) if needed => Ok(Some(master.unwrap_data_key(&wrapped)?)),
        Some(Some(_)) => Ok(None),
        None if needed => {
            let (key, wrapped) = master.new_data_key()?;
            sqlx::query(
                "INSERT INTO athlete_keys (athlete_id, wrapped_key, created_at_us) VALUES (?1, ?2, ?3)",
            )
            .bind(athlete.to_string())
            .bind(&wrapped)
            .bind(micros(Utc::now()))
            .execute(&mut **tx)
            .await?;
            Ok(Some(key))
        }
        None => Ok(None),
    }
}

async fn find_in(
    conn: &mut sqlx::SqliteConnection,
    idem: &Idempotency,
) -> StoreResult<Option<AppendOutcome>> {
    let row = sqlx::query(
        "SELECT request_hash, outcome FROM idempotency_keys WHERE scope = ?1 AND key = ?2",
    )
    .bind(&idem.scope)
    .bind(&idem.key)
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        let outcome: String = r.get(1);
        let outcome = serde_json::from_str(&outcome)
            .map_err(|e| StoreError::Corrupt(format!("idempotency outcome: {e}")))?;
        codec::stored_outcome(idem, r.get(0), outcome)
    })
    .transpose()
}

pub(crate) async fn find_idempotent(
    pool: &SqlitePool,
    idem: &Idempotency,
) -> StoreResult<Option<AppendOutcome>> {
    let mut conn = pool.acquire().await?;
    find_in(&mut conn, idem).await
}

const SELECT_EVENTS: &str = "SELECT e.global_position, e.event_id, e.stream_type, e.stream_id, \
        e.stream_version, e.event_type, e.event_version, e.athlete_id, e.recorded_at_us, \
        e.metadata, e.payload, e.encrypted, k.wrapped_key \
     FROM events e LEFT JOIN athlete_keys k ON e.encrypted = 1 AND k.athlete_id = e.athlete_id ";

fn raw(row: SqliteRow) -> StoreResult<RawEvent> {
    let position: i64 = row.get(0);
    let metadata: String = row.get(9);
    Ok(RawEvent {
        position,
        tx: position,
        event_id: parse_uuid(row.get(1))?,
        stream_type: row.get(2),
        stream_id: row.get(3),
        stream_version: row.get(4),
        event_type: row.get(5),
        event_version: row.get(6),
        athlete_id: row.get::<Option<&str>, _>(7).map(parse_uuid).transpose()?,
        recorded_at: from_micros(row.get(8))?,
        metadata: serde_json::from_str(&metadata)
            .map_err(|e| StoreError::Corrupt(format!("metadata: {e}")))?,
        payload: row.get(10),
        encrypted: row.get(11),
        wrapped_key: row.get(12),
    })
}

fn decode(rows: Vec<SqliteRow>, master: &MasterKey) -> StoreResult<Vec<RecordedEvent>> {
    let raws = rows.into_iter().map(raw).collect::<StoreResult<Vec<_>>>()?;
    codec::decode(raws, master)
}

pub(crate) async fn fetch_log(
    pool: &SqlitePool,
    after: LogCursor,
    limit: i64,
) -> StoreResult<Vec<RawEvent>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT_EVENTS}WHERE e.global_position > ?1 ORDER BY e.global_position LIMIT ?2"
    )))
    .bind(after.position)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(raw).collect()
}

pub(crate) async fn head(pool: &SqlitePool) -> StoreResult<LogCursor> {
    let p: Option<i64> = sqlx::query_scalar("SELECT max(global_position) FROM events")
        .fetch_one(pool)
        .await?;
    Ok(p.map(|p| LogCursor { tx: p, position: p })
        .unwrap_or(LogCursor::START))
}

/// `(sql, bound value)` for an as-of filter; SQLite's log order is position order.
fn as_of_clause(as_of: Option<AsOf>, param: usize) -> (String, Option<i64>) {
    match as_of {
        None => (String::new(), None),
        Some(AsOf::Position(p)) => (format!("AND e.global_position <= ?{param} "), Some(p)),
        Some(AsOf::Time(t)) => (
            format!("AND e.recorded_at_us <= ?{param} "),
            Some(micros(t)),
        ),
    }
}

async fn check_position(pool: &SqlitePool, as_of: Option<AsOf>) -> StoreResult<()> {
    if let Some(AsOf::Position(p)) = as_of {
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM events WHERE global_position = ?1")
                .bind(p)
                .fetch_optional(pool)
                .await?;
        if exists.is_none() {
            return Err(StoreError::Invalid(format!("no event at log position {p}")));
        }
    }
    Ok(())
}

pub(crate) async fn read_stream(
    pool: &SqlitePool,
    master: &MasterKey,
    stream: &StreamId,
    after_version: u64,
    as_of: Option<AsOf>,
) -> StoreResult<Vec<RecordedEvent>> {
    check_position(pool, as_of).await?;
    let (clause, bound) = as_of_clause(as_of, 4);
    let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT_EVENTS}WHERE e.stream_type = ?1 AND e.stream_id = ?2 AND e.stream_version > ?3 \
         {clause}ORDER BY e.stream_version"
    )))
    .bind(&stream.stream_type)
    .bind(&stream.stream_id)
    .bind(after_version as i64);
    if let Some(b) = bound {
        q = q.bind(b);
    }
    decode(q.fetch_all(pool).await?, master)
}

pub(crate) async fn read_athlete(
    pool: &SqlitePool,
    master: &MasterKey,
    athlete: Uuid,
    as_of: Option<AsOf>,
) -> StoreResult<Vec<RecordedEvent>> {
    check_position(pool, as_of).await?;
    let (clause, bound) = as_of_clause(as_of, 2);
    let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT_EVENTS}WHERE e.athlete_id = ?1 {clause}ORDER BY e.global_position"
    )))
    .bind(athlete.to_string());
    if let Some(b) = bound {
        q = q.bind(b);
    }
    decode(q.fetch_all(pool).await?, master)
}

pub(crate) async fn athlete_head(pool: &SqlitePool, athlete: Uuid) -> StoreResult<Option<i64>> {
    Ok(
        sqlx::query_scalar("SELECT max(global_position) FROM events WHERE athlete_id = ?1")
            .bind(athlete.to_string())
            .fetch_one(pool)
            .await?,
    )
}

pub(crate) async fn stream_head(pool: &SqlitePool, stream: &StreamId) -> StoreResult<Option<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT max(global_position) FROM events WHERE stream_type = ?1 AND stream_id = ?2",
    )
    .bind(&stream.stream_type)
    .bind(&stream.stream_id)
    .fetch_one(pool)
    .await?)
}

pub(crate) async fn stream_version(pool: &SqlitePool, stream: &StreamId) -> StoreResult<u64> {
    let v: i64 = sqlx::query_scalar(
        "SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_type = ?1 AND stream_id = ?2",
    )
    .bind(&stream.stream_type)
    .bind(&stream.stream_id)
    .fetch_one(pool)
    .await?;
    Ok(v as u64)
}

pub(crate) async fn cursor_of(pool: &SqlitePool, position: i64) -> StoreResult<Option<LogCursor>> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT global_position FROM events WHERE global_position = ?1")
            .bind(position)
            .fetch_optional(pool)
            .await?;
    Ok(found.map(|p| LogCursor { tx: p, position: p }))
}

/// Copies every WAL frame into the database file and truncates the WAL to zero bytes, so old
/// page versions (an erased athlete's rows before their deletion) are gone from the `-wal`
/// file too. Waits (busy timeout) for readers on older snapshots. `true` when it completed.
pub(crate) async fn checkpoint_truncate(pool: &SqlitePool) -> StoreResult<bool> {
    let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
        .fetch_one(pool)
        .await?;
    Ok(busy == 0)
}

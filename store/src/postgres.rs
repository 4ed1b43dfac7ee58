//! PostgreSQL backend: production, and any number of processes sharing one database.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use crate::codec::{self, AppendFailure, RawEvent, conflict};
use crate::crypto::{DataKey, KeyCache, MasterKey};
use crate::error::{StoreError, StoreResult};
use crate::model::*;

/// The channel appenders NOTIFY after commit; followers LISTEN on it as a wake-up hint.
pub const NOTIFY_CHANNEL: &str = "stridelog_events";

pub(crate) async fn connect(url: &str, max_connections: u32) -> StoreResult<PgPool> {
    // A transaction left open holds every follower back (the horizon cannot pass it), so our
    // own sessions may not idle inside one for long. Operators set the same at database level.
    let options =
        PgConnectOptions::from_str(url)?.options([("idle_in_transaction_session_timeout", "30s")]);
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await?)
}

pub(crate) async fn migrate(pool: &PgPool) -> StoreResult<()> {
    sqlx::migrate!("../migrations/postgres").run(pool).await?;
    Ok(())
}

pub(crate) async fn schema_version(pool: &PgPool) -> StoreResult<i64> {
    let v: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await?;
    Ok(v.unwrap_or(0))
}

pub(crate) async fn append(
    pool: &PgPool,
    master: &MasterKey,
    keys: &KeyCache,
    req: &AppendRequest,
    delay_before_commit: Option<Duration>,
) -> StoreResult<AppendOutcome> {
    codec::check_append(&req.events, &req.metadata)?;
    let key = personal_key(pool, master, keys, req).await?;
    let sealed = codec::seal_events(&req.events, key.as_ref())?;

    // The common command (known version, no idempotency key) is one autocommit statement: the
    // version check, the erasure check and every row in a single INSERT, one round trip.
    if req.idempotency.is_none()
        && delay_before_commit.is_none()
        && req.expected != ExpectedVersion::Any
    {
        let mut conn = pool.acquire().await?;
        return insert(&mut conn, keys, req, &sealed).await;
    }

    let mut tx = pool.begin().await?;
    let outcome = match insert_with_key(&mut tx, keys, req, &sealed).await {
        Ok(outcome) => outcome,
        // A concurrent command with the same key can win the stream version first; it has
        // committed by the time we see the conflict, so its outcome is the answer.
        Err(AppendFailure::Store(e)) if e.is_conflict() && req.idempotency.is_some() => {
            tx.rollback().await?;
            let idem = req.idempotency.as_ref().expect("checked");
            return match find_idempotent(pool, idem).await? {
                Some(outcome) => Ok(outcome),
                None => Err(e),
            };
        }
        Err(AppendFailure::Store(e)) => return Err(e),
        Err(AppendFailure::IdempotencyTaken) => {
            tx.rollback().await?;
            let idem = req.idempotency.as_ref().expect("only raised with a key");
            return replay_idempotent(pool, idem).await;
        }
    };
    if let Some(d) = delay_before_commit {
        tokio::time::sleep(d).await;
    }
    tx.commit().await?;
    Ok(outcome)
}

/// The data key for a personal append, from the process cache or the key table. A cached key
/// may belong to an athlete erased since: the INSERT itself refuses those.
async fn personal_key(
    pool: &PgPool,
    master: &MasterKey,
    keys: &KeyCache,
    req: &AppendRequest,
) -> StoreResult<Option<DataKey>> {
    let Some(athlete) = req.metadata.athlete_id else {
        return Ok(None);
    };
    if !req.events.iter().any(|e| e.personal) {
        return Ok(None);
    }
    if let Some(key) = keys.get(athlete) {
        return Ok(Some(key));
    }
    for _ in 0..2 {
        let row: Option<Option<Vec<u8>>> =
            sqlx::query_scalar("SELECT wrapped_key FROM athlete_keys WHERE athlete_id = $1")
                .bind(athlete)
                .fetch_optional(pool)
                .await?;
        match row {
            Some(Some(wrapped)) => {
                let key = master.unwrap_data_key(&wrapped)?;
                keys.put(athlete, key.clone());
                return Ok(Some(key));
            }
            Some(None) => return Err(StoreError::AthleteErased(athlete)),
            None => {
                let (_, wrapped) = master.new_data_key()?;
                // A concurrent first append may win; then the loop reads its key.
                sqlx::query(
                    "INSERT INTO athlete_keys (athlete_id, wrapped_key) VALUES ($1, $2) \
                     ON CONFLICT (athlete_id) DO NOTHING",
                )
                .bind(athlete)
                .bind(&wrapped)
                .execute(pool)
                .await?;
            }
        }
    }
    Err(StoreError::Crypto(format!(
        "could not create a data key for athlete {athlete}"
    )))
}

async fn insert_with_key(
    tx: &mut Transaction<'static, Postgres>,
    keys: &KeyCache,
    req: &AppendRequest,
    sealed: &[codec::Sealed],
) -> Result<AppendOutcome, AppendFailure> {
    let mut req = std::borrow::Cow::Borrowed(req);
    if req.expected == ExpectedVersion::Any {
        let v: i64 = sqlx::query_scalar(
            "SELECT coalesce(max(stream_version), 0) FROM events \
             WHERE stream_type = $1 AND stream_id = $2",
        )
        .bind(&req.stream.stream_type)
        .bind(&req.stream.stream_id)
        .fetch_one(&mut **tx)
        .await?;
        req.to_mut().expected = ExpectedVersion::from_loaded(v as u64);
    }
    let outcome = insert(tx, keys, &req, sealed).await?;
    if let Some(idem) = &req.idempotency {
        let stored = sqlx::query(
            "INSERT INTO idempotency_keys (scope, key, request_hash, outcome) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(&idem.scope)
        .bind(&idem.key)
        .bind(&idem.request_hash)
        .bind(sqlx::types::Json(&outcome))
        .execute(&mut **tx)
        .await?;
        if stored.rows_affected() == 0 {
            return Err(AppendFailure::IdempotencyTaken);
        }
    }
    Ok(outcome)
}

/// One INSERT for the whole append: a 100-event command costs one round trip, not 100. It
/// inserts nothing when the stream is not at the expected version, or when the athlete's key
/// was destroyed (read `FOR SHARE`, so an erasure waits for this append, and an append that
/// starts after an erasure sees the key gone).
async fn insert(
    conn: &mut sqlx::PgConnection,
    keys: &KeyCache,
    req: &AppendRequest,
    sealed: &[codec::Sealed],
) -> StoreResult<AppendOutcome> {
    let current = match req.expected {
        ExpectedVersion::NoStream => 0,
        ExpectedVersion::Exact(v) => v,
        ExpectedVersion::Any => unreachable!("resolved by the caller"),
    };
    let n = req.events.len();
    let ids: Vec<Uuid> = req.events.iter().map(|e| e.event_id).collect();
    let versions: Vec<i64> = (1..=n as i64).map(|i| current as i64 + i).collect();
    let types: Vec<&str> = req.events.iter().map(|e| e.event_type.as_str()).collect();
    let type_versions: Vec<&str> = req
        .events
        .iter()
        .map(|e| e.event_version.as_str())
        .collect();
    let payloads: Vec<&[u8]> = sealed.iter().map(|s| s.bytes.as_slice()).collect();
    let encrypted: Vec<bool> = sealed.iter().map(|s| s.encrypted).collect();

    let rows = sqlx::query(
        "INSERT INTO events (event_id, stream_type, stream_id, stream_version, event_type, \
                             event_version, athlete_id, metadata, payload, encrypted) \
         SELECT u.id, $1, $2, u.v, u.t, u.tv, $3, $4, u.p, u.e \
         FROM UNNEST($5::uuid[], $6::bigint[], $7::text[], $8::text[], $9::bytea[], $10::bool[]) \
              AS u(id, v, t, tv, p, e) \
         WHERE $11 = (SELECT coalesce(max(stream_version), 0) FROM events \
                      WHERE stream_type = $1 AND stream_id = $2) \
           AND coalesce((SELECT k.wrapped_key IS NOT NULL FROM athlete_keys k \
                         WHERE k.athlete_id = $3 FOR SHARE), true) \
         RETURNING global_position, transaction_id::text::bigint AS tx",
    )
    .bind(&req.stream.stream_type)
    .bind(&req.stream.stream_id)
    .bind(req.metadata.athlete_id)
    .bind(sqlx::types::Json(&req.metadata))
    .bind(&ids)
    .bind(&versions)
    .bind(&types)
    .bind(&type_versions)
    .bind(&payloads)
    .bind(&encrypted)
    // A stream short of the expected version must not accept events after a hole; the unique
    // key alone only catches streams that moved ahead.
    .bind(current as i64)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| map_insert_error(e, req))?;

    if rows.is_empty() {
        return Err(refusal(conn, keys, req).await?);
    }

    let mut positions: Vec<i64> = rows.iter().map(|r| r.get::<i64, _>(0)).collect();
    positions.sort_unstable();
    let tx_id: i64 = rows.first().map(|r| r.get(1)).unwrap_or_default();
    Ok(AppendOutcome {
        stream_version: current + n as u64,
        event_ids: ids,
        cursor: LogCursor {
            tx: tx_id,
            position: *positions.last().expect("rows are not empty"),
        },
        positions,
        replayed: false,
    })
}

/// Why [`insert`] inserted nothing: the athlete was erased meanwhile, or else the stream is not
/// at the expected version.
async fn refusal(
    conn: &mut sqlx::PgConnection,
    keys: &KeyCache,
    req: &AppendRequest,
) -> StoreResult<StoreError> {
    if let Some(athlete) = req.metadata.athlete_id {
        let erased: Option<bool> = sqlx::query_scalar(
            "SELECT wrapped_key IS NULL FROM athlete_keys WHERE athlete_id = $1",
        )
        .bind(athlete)
        .fetch_optional(&mut *conn)
        .await?;
        if erased == Some(true) {
            keys.forget(athlete);
            return Ok(StoreError::AthleteErased(athlete));
        }
    }
    Ok(conflict(req))
}

fn map_insert_error(e: sqlx::Error, req: &AppendRequest) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.code().as_deref() == Some("23505")
    {
        match db.constraint() {
            Some("events_stream_version") => return conflict(req),
            Some("events_event_id_key") => {
                let id = req.events.first().map(|e| e.event_id).unwrap_or_default();
                return StoreError::DuplicateEvent(id);
            }
            _ => {}
        }
    }
    StoreError::Database(e)
}

async fn replay_idempotent(pool: &PgPool, idem: &Idempotency) -> StoreResult<AppendOutcome> {
    let row = sqlx::query(
        "SELECT request_hash, outcome FROM idempotency_keys WHERE scope = $1 AND key = $2",
    )
    .bind(&idem.scope)
    .bind(&idem.key)
    .fetch_one(pool)
    .await?;
    codec::stored_outcome(idem, row.get(0), row.get::<serde_json::Value, _>(1))
}

pub(crate) async fn find_idempotent(
    pool: &PgPool,
    idem: &Idempotency,
) -> StoreResult<Option<AppendOutcome>> {
    let row = sqlx::query(
        "SELECT request_hash, outcome FROM idempotency_keys WHERE scope = $1 AND key = $2",
    )
    .bind(&idem.scope)
    .bind(&idem.key)
    .fetch_optional(pool)
    .await?;
    row.map(|r| codec::stored_outcome(idem, r.get(0), r.get::<serde_json::Value, _>(1)))
        .transpose()
}

/// Appends the erasure record and destroys the key in one transaction: either both happen or
/// neither. Appends racing with it either commit first (and are shredded with the rest) or see
/// the key gone and are refused.
pub(crate) async fn erase_athlete(
    pool: &PgPool,
    keys: &KeyCache,
    athlete: Uuid,
    req: &AppendRequest,
) -> StoreResult<AppendOutcome> {
    codec::check_append(&req.events, &req.metadata)?;
    let sealed = codec::seal_events(&req.events, None)?;
    let mut tx = pool.begin().await?;
    let outcome = match insert_with_key(&mut tx, keys, req, &sealed).await {
        Ok(o) => o,
        Err(AppendFailure::Store(e)) => return Err(e),
        Err(AppendFailure::IdempotencyTaken) => {
            tx.rollback().await?;
            let idem = req.idempotency.as_ref().expect("only raised with a key");
            return replay_idempotent(pool, idem).await;
        }
    };
    sqlx::query(
        "INSERT INTO athlete_keys (athlete_id, wrapped_key, destroyed_at) VALUES ($1, NULL, now()) \
         ON CONFLICT (athlete_id) DO UPDATE SET wrapped_key = NULL, destroyed_at = now()",
    )
    .bind(athlete)
    .execute(&mut *tx)
    .await?;
    // Sealed under the key just destroyed, so unreadable already; deleted so that no copy
    // of the database holds them at all, and so the athlete's storage is given back.
    sqlx::query("DELETE FROM sample_blobs WHERE athlete_id = $1")
        .bind(athlete)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    keys.forget(athlete);
    Ok(outcome)
}

const SELECT_EVENTS: &str = "SELECT e.global_position, e.transaction_id::text::bigint AS tx, e.event_id, \
        e.stream_type, e.stream_id, e.stream_version, e.event_type, e.event_version, \
        e.athlete_id, e.recorded_at, e.metadata, e.payload, e.encrypted, k.wrapped_key \
     FROM events e LEFT JOIN athlete_keys k ON e.encrypted AND k.athlete_id = e.athlete_id ";

fn raw(row: PgRow) -> RawEvent {
    RawEvent {
        position: row.get(0),
        tx: row.get(1),
        event_id: row.get(2),
        stream_type: row.get(3),
        stream_id: row.get(4),
        stream_version: row.get(5),
        event_type: row.get(6),
        event_version: row.get(7),
        athlete_id: row.get(8),
        recorded_at: row.get::<DateTime<Utc>, _>(9),
        metadata: row.get(10),
        payload: row.get(11),
        encrypted: row.get(12),
        wrapped_key: row.get(13),
    }
}

/// The gap-safe read: only transactions older than every still-running one are visible to the
/// follower, so an event committed late by a slow transaction is never behind the cursor.
pub(crate) async fn fetch_log(
    pool: &PgPool,
    after: LogCursor,
    limit: i64,
) -> StoreResult<Vec<RawEvent>> {
    const SQL: &str = "WHERE (e.transaction_id, e.global_position) > ($1::bigint::text::xid8, $2) \
           AND e.transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
         ORDER BY e.transaction_id, e.global_position LIMIT $3";
    let sql = format!("{SELECT_EVENTS}{SQL}");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(after.tx)
        .bind(after.position)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(raw).collect())
}

/// The cursor after the last event a follower may read now.
pub(crate) async fn head(pool: &PgPool) -> StoreResult<LogCursor> {
    let row = sqlx::query(
        "SELECT e.transaction_id::text::bigint, e.global_position FROM events e \
         WHERE e.transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
         ORDER BY e.transaction_id DESC, e.global_position DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    Ok(row
        .map(|r| LogCursor {
            tx: r.get(0),
            position: r.get(1),
        })
        .unwrap_or(LogCursor::START))
}

pub(crate) async fn last_committed(pool: &PgPool) -> StoreResult<LogCursor> {
    let row = sqlx::query(
        "SELECT transaction_id::text::bigint, global_position FROM events \
         ORDER BY transaction_id DESC, global_position DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    Ok(row
        .map(|r| LogCursor {
            tx: r.get(0),
            position: r.get(1),
        })
        .unwrap_or(LogCursor::START))
}

pub(crate) async fn cursor_of(pool: &PgPool, position: i64) -> StoreResult<Option<LogCursor>> {
    let row =
        sqlx::query("SELECT transaction_id::text::bigint FROM events WHERE global_position = $1")
            .bind(position)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|r| LogCursor {
        tx: r.get(0),
        position,
    }))
}

/// Resolves `as_of` to a filter: a position means "what a follower had seen after that event".
async fn as_of_filter(pool: &PgPool, as_of: Option<AsOf>) -> StoreResult<AsOfFilter> {
    Ok(match as_of {
        None => AsOfFilter::All,
        Some(AsOf::Time(t)) => AsOfFilter::Time(t),
        Some(AsOf::Position(p)) => match cursor_of(pool, p).await? {
            Some(c) => AsOfFilter::Cursor(c),
            None => {
                return Err(StoreError::Invalid(format!("no event at log position {p}")));
            }
        },
    })
}

enum AsOfFilter {
    All,
    Time(DateTime<Utc>),
    Cursor(LogCursor),
}

pub(crate) async fn read_stream(
    pool: &PgPool,
    master: &MasterKey,
    stream: &StreamId,
    after_version: u64,
    as_of: Option<AsOf>,
) -> StoreResult<Vec<RecordedEvent>> {
    let filter = as_of_filter(pool, as_of).await?;
    let base = format!(
        "{SELECT_EVENTS}WHERE e.stream_type = $1 AND e.stream_id = $2 AND e.stream_version > $3 "
    );
    let q = match &filter {
        AsOfFilter::All => format!("{base}ORDER BY e.stream_version"),
        AsOfFilter::Time(_) => format!("{base}AND e.recorded_at <= $4 ORDER BY e.stream_version"),
        AsOfFilter::Cursor(_) => format!(
            "{base}AND (e.transaction_id, e.global_position) <= ($4::bigint::text::xid8, $5) \
             ORDER BY e.stream_version"
        ),
    };
    let mut query = sqlx::query(sqlx::AssertSqlSafe(q))
        .bind(&stream.stream_type)
        .bind(&stream.stream_id)
        .bind(after_version as i64);
    query = match filter {
        AsOfFilter::All => query,
        AsOfFilter::Time(t) => query.bind(t),
        AsOfFilter::Cursor(c) => query.bind(c.tx).bind(c.position),
    };
    let rows = query.fetch_all(pool).await?;
    codec::decode(rows.into_iter().map(raw).collect(), master)
}

pub(crate) async fn read_athlete(
    pool: &PgPool,
    master: &MasterKey,
    athlete: Uuid,
    as_of: Option<AsOf>,
) -> StoreResult<Vec<RecordedEvent>> {
    let filter = as_of_filter(pool, as_of).await?;
    let base = format!("{SELECT_EVENTS}WHERE e.athlete_id = $1 ");
    let order = "ORDER BY e.transaction_id, e.global_position";
    let q = match &filter {
        AsOfFilter::All => format!("{base}{order}"),
        AsOfFilter::Time(_) => format!("{base}AND e.recorded_at <= $2 {order}"),
        AsOfFilter::Cursor(_) => format!(
            "{base}AND (e.transaction_id, e.global_position) <= ($2::bigint::text::xid8, $3) {order}"
        ),
    };
    let mut query = sqlx::query(sqlx::AssertSqlSafe(q)).bind(athlete);
    query = match filter {
        AsOfFilter::All => query,
        AsOfFilter::Time(t) => query.bind(t),
        AsOfFilter::Cursor(c) => query.bind(c.tx).bind(c.position),
    };
    let rows = query.fetch_all(pool).await?;
    codec::decode(rows.into_iter().map(raw).collect(), master)
}

pub(crate) async fn athlete_head(pool: &PgPool, athlete: Uuid) -> StoreResult<Option<i64>> {
    Ok(
        sqlx::query_scalar("SELECT max(global_position) FROM events WHERE athlete_id = $1")
            .bind(athlete)
            .fetch_one(pool)
            .await?,
    )
}

pub(crate) async fn stream_head(pool: &PgPool, stream: &StreamId) -> StoreResult<Option<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT max(global_position) FROM events WHERE stream_type = $1 AND stream_id = $2",
    )
    .bind(&stream.stream_type)
    .bind(&stream.stream_id)
    .fetch_one(pool)
    .await?)
}

pub(crate) async fn stream_version(pool: &PgPool, stream: &StreamId) -> StoreResult<u64> {
    let v: i64 = sqlx::query_scalar(
        "SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_type = $1 AND stream_id = $2",
    )
    .bind(&stream.stream_type)
    .bind(&stream.stream_id)
    .fetch_one(pool)
    .await?;
    Ok(v as u64)
}

/// How far the horizon lags: the age of the oldest open transaction in the cluster. Shown by
/// `/health` because that transaction is what holds every follower back.
pub(crate) async fn oldest_open_transaction_s(pool: &PgPool) -> StoreResult<f64> {
    let age: Option<f64> = sqlx::query_scalar(
        "SELECT greatest(0, extract(epoch FROM max(clock_timestamp() - xact_start)))::float8 \
         FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()",
    )
    .fetch_one(pool)
    .await?;
    Ok(age.unwrap_or(0.0))
}

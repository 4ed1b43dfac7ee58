//! The audit log: who did what to whose data, and when, from event metadata alone. Metadata is
//! never personal, so the trail survives an athlete's erasure intact.

use sqlx::AnyConnection;
use sqlx::AnyPool;

use crate::engine::{Projected, Projection, Tables};
use crate::table::Placeholders;

pub struct AuditLog;

#[async_trait::async_trait]
impl Projection for AuditLog {
    fn name(&self) -> &'static str {
        "audit"
    }

    fn version(&self) -> i64 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &["entries"]
    }

    fn schema(&self, t: &Tables) -> Vec<String> {
        let entries = t.table("entries");
        vec![
            format!(
                "CREATE TABLE {entries} (
                    position        BIGINT PRIMARY KEY,
                    athlete_id      TEXT   NOT NULL,
                    recorded_at_us  BIGINT NOT NULL,
                    event_id        TEXT   NOT NULL,
                    event_type      TEXT   NOT NULL,
                    stream          TEXT   NOT NULL,
                    actor_id        TEXT,
                    actor_role      TEXT   NOT NULL,
                    impersonator_id TEXT,
                    correlation_id  TEXT   NOT NULL
                )"
            ),
            format!("CREATE INDEX {entries}_athlete ON {entries} (athlete_id, recorded_at_us)"),
        ]
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        t: &Tables,
        e: &Projected<'_>,
    ) -> anyhow::Result<()> {
        let r = e.recorded;
        let Some(athlete) = r.metadata.athlete_id else {
            return Ok(());
        };
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {} (position, athlete_id, recorded_at_us, event_id, event_type, stream, \
               actor_id, actor_role, impersonator_id, correlation_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            t.table("entries")
        )))
        .bind(r.position)
        .bind(athlete.to_string())
        .bind(r.recorded_at.timestamp_micros())
        .bind(r.event_id.to_string())
        .bind(&r.event_type)
        .bind(r.stream.to_string())
        .bind(r.metadata.actor.user_id.map(|u| u.to_string()))
        .bind(&r.metadata.actor.role)
        .bind(r.metadata.impersonator_id.map(|u| u.to_string()))
        .bind(r.metadata.correlation_id.to_string())
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Every event is one row and no row depends on another, so a batch is a few multi-row
    /// INSERTs.
    async fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        t: &Tables,
        events: &[Projected<'_>],
    ) -> anyhow::Result<()> {
        const COLUMNS: usize = 10;
        const ROWS_PER_STATEMENT: usize = 400;
        let rows: Vec<_> = events
            .iter()
            .filter(|e| e.recorded.metadata.athlete_id.is_some())
            .collect();
        let placeholders = Placeholders::of(conn);
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut sql = format!(
                "INSERT INTO {} (position, athlete_id, recorded_at_us, event_id, event_type, stream, \
                   actor_id, actor_role, impersonator_id, correlation_id) VALUES ",
                t.table("entries"),
            );
            placeholders.rows(&mut sql, chunk.len(), COLUMNS);
            // A full chunk's statement is prepared once per connection (see `table::statement`).
            let mut q =
                sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(chunk.len() == ROWS_PER_STATEMENT);
            for e in chunk {
                let r = e.recorded;
                q = q
                    .bind(r.position)
                    .bind(r.metadata.athlete_id.map(|a| a.to_string()))
                    .bind(r.recorded_at.timestamp_micros())
                    .bind(r.event_id.to_string())
                    .bind(r.event_type.clone())
                    .bind(r.stream.to_string())
                    .bind(r.metadata.actor.user_id.map(|u| u.to_string()))
                    .bind(r.metadata.actor.role.clone())
                    .bind(r.metadata.impersonator_id.map(|u| u.to_string()))
                    .bind(r.metadata.correlation_id.to_string());
            }
            q.execute(&mut *conn).await?;
        }
        Ok(())
    }

    fn order_by(&self, _table: &str) -> &'static str {
        "position"
    }

    fn needs_payload(&self) -> bool {
        false
    }
}

/// One line of an athlete's audit trail.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditEntry {
    pub position: i64,
    pub recorded_at: chrono::DateTime<chrono::Utc>,
    pub event_type: String,
    pub stream: String,
    pub actor_id: Option<String>,
    pub actor_role: String,
    pub impersonator_id: Option<String>,
    pub correlation_id: String,
}

/// Filters for [`trail`].
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    pub actor: Option<uuid::Uuid>,
    pub event_type: Option<String>,
}

/// One athlete's trail, oldest first.
pub async fn trail(
    pool: &AnyPool,
    t: &Tables,
    athlete: uuid::Uuid,
    filter: &AuditFilter,
) -> anyhow::Result<Vec<AuditEntry>> {
    let rows: Vec<EntryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT position, recorded_at_us, event_type, stream, actor_id, actor_role, impersonator_id, correlation_id \
         FROM {} WHERE athlete_id = $1 AND recorded_at_us >= $2 \
           AND ($3 IS NULL OR actor_id = $3 OR impersonator_id = $3) \
           AND ($4 IS NULL OR event_type = $4) \
         ORDER BY recorded_at_us, position",
        t.table("entries")
    )))
    .bind(athlete.to_string())
    .bind(filter.since.map_or(i64::MIN, |s| s.timestamp_micros()))
    .bind(filter.actor.map(|a| a.to_string()))
    .bind(filter.event_type.clone())
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(AuditEntry::try_from).collect()
}

/// Events per type in one athlete's trail: what kinds of data they have, and how much.
pub async fn counts(
    pool: &AnyPool,
    t: &Tables,
    athlete: uuid::Uuid,
) -> anyhow::Result<Vec<(String, i64)>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT event_type, COUNT(*) FROM {} WHERE athlete_id = $1 \
         GROUP BY event_type ORDER BY event_type",
        t.table("entries")
    )))
    .bind(athlete.to_string())
    .fetch_all(pool)
    .await?)
}

/// A row of the trail as read, by column name.
#[derive(sqlx::FromRow)]
struct EntryRow {
    position: i64,
    recorded_at_us: i64,
    event_type: String,
    stream: String,
    actor_id: Option<String>,
    actor_role: String,
    impersonator_id: Option<String>,
    correlation_id: String,
}

impl TryFrom<EntryRow> for AuditEntry {
    type Error = anyhow::Error;

    fn try_from(r: EntryRow) -> anyhow::Result<Self> {
        Ok(AuditEntry {
            position: r.position,
            recorded_at: chrono::DateTime::from_timestamp_micros(r.recorded_at_us)
                .ok_or_else(|| anyhow::anyhow!("bad timestamp"))?,
            event_type: r.event_type,
            stream: r.stream,
            actor_id: r.actor_id,
            actor_role: r.actor_role,
            impersonator_id: r.impersonator_id,
            correlation_id: r.correlation_id,
        })
    }
}

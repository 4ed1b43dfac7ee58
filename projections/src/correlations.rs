//! Correlation discovery around the pure engine (`domain::correlation`, docs/correlations.md),
//! as the API sees it: which athletes' inputs changed, the snapshots it serves and the
//! on-demand jobs it enqueues and reports. The worker that claims due athletes and computes
//! the snapshots is `workers::correlations`.
//!
//! Invalidation: the `correlation_inputs` projection records, per athlete, the log position of
//! the last event that changes an input or an outcome (check-ins, nutrition, work, body,
//! activities, physiology) and nothing else. A snapshot reflecting an older position is stale.

use std::collections::{BTreeMap, HashMap};

use anyhow::Context;
use chrono::{DateTime, Utc};
use domain::activity::ActivityEvent;
use domain::athlete::AthleteEvent;
use domain::correlation::Analysis;
use domain::journal::JournalEvent;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, AnyPool, Row};
use uuid::Uuid;

use crate::decode::DomainEvent;
use crate::engine::{Engine, Projected, Projection, Tables};

/// The windows every snapshot holds, in days up to the athlete's today.
pub const WINDOWS_DAYS: [u32; 5] = [30, 90, 180, 365, 730];

/// Whether `event` changes anything the analysis reads.
pub fn changes_inputs(event: &DomainEvent) -> bool {
    match event {
        DomainEvent::Journal(j) => !matches!(j, JournalEvent::InsightFeedbackGiven(_)),
        DomainEvent::Activity(a) => matches!(
            a,
            ActivityEvent::ActivityRecorded(_)
                | ActivityEvent::ActivityUpdated(_)
                | ActivityEvent::ActivityDeleted(_)
        ),
        DomainEvent::Athlete(AthleteEvent::PhysiologyChanged(_)) => true,
        _ => false,
    }
}

/// Per athlete: the position of the last event that changed an input.
pub struct CorrelationInputsProjection;

#[async_trait::async_trait]
impl Projection for CorrelationInputsProjection {
    fn name(&self) -> &'static str {
        "correlation_inputs"
    }

    fn version(&self) -> i64 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &["changed"]
    }

    fn schema(&self, t: &Tables) -> Vec<String> {
        vec![format!(
            "CREATE TABLE {} (
                athlete_id  TEXT   PRIMARY KEY,
                position    BIGINT NOT NULL
            )",
            t.table("changed")
        )]
    }

    fn order_by(&self, _table: &str) -> &'static str {
        "athlete_id"
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        t: &Tables,
        e: &Projected<'_>,
    ) -> anyhow::Result<()> {
        let Some(athlete) = e.recorded.metadata.athlete_id else {
            return Ok(());
        };
        let table = t.table("changed");
        if let DomainEvent::Athlete(AthleteEvent::AthleteErased(_)) = e.event {
            // Snapshots and jobs are derived personal data: they go with the athlete.
            for sql in [
                format!("DELETE FROM {table} WHERE athlete_id = $1"),
                "DELETE FROM correlation_snapshots WHERE athlete_id = $1".to_string(),
                "DELETE FROM correlation_jobs WHERE athlete_id = $1".to_string(),
                "DELETE FROM correlation_leases WHERE athlete_id = $1".to_string(),
            ] {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(athlete.to_string())
                    .execute(&mut *conn)
                    .await?;
            }
            return Ok(());
        }
        if !changes_inputs(e.event) {
            return Ok(());
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} (athlete_id, position) VALUES ($1, $2) \
             ON CONFLICT (athlete_id) DO UPDATE SET position = excluded.position"
        )))
        .bind(athlete.to_string())
        .bind(e.recorded.position)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Only the last input-changing event of each athlete in the batch counts (positions grow
    /// along the log), so the batch collapses to one row per athlete, written many per
    /// statement. An erasure writes what came before it first, then deletes.
    async fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        t: &Tables,
        events: &[Projected<'_>],
    ) -> anyhow::Result<()> {
        let mut last: HashMap<Uuid, i64> = HashMap::new();
        for e in events {
            let Some(athlete) = e.recorded.metadata.athlete_id else {
                continue;
            };
            if let DomainEvent::Athlete(AthleteEvent::AthleteErased(_)) = e.event {
                write_changed(conn, t, &mut last).await?;
                self.apply(conn, t, e).await?;
            } else if changes_inputs(e.event) {
                last.insert(athlete, e.recorded.position);
            }
        }
        write_changed(conn, t, &mut last).await
    }
}

/// Rows per multi-row upsert (2 parameters each).
const CHUNK: usize = 400;

/// Upserts the athletes' latest positions; one row per athlete, so no statement touches a row
/// twice (PostgreSQL refuses that in one `INSERT … ON CONFLICT`).
async fn write_changed(
    conn: &mut AnyConnection,
    t: &Tables,
    last: &mut HashMap<Uuid, i64>,
) -> anyhow::Result<()> {
    let rows: Vec<(Uuid, i64)> = last.drain().collect();
    for chunk in rows.chunks(CHUNK) {
        let values = (0..chunk.len())
            .map(|r| format!("(${}, ${})", 2 * r + 1, 2 * r + 2))
            .collect::<Vec<_>>()
            .join(", ");
        // Unprepared: the text changes with the number of rows, and a cached statement per
        // row count would only crowd the connection's statement cache.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {} (athlete_id, position) VALUES {values} \
             ON CONFLICT (athlete_id) DO UPDATE SET position = excluded.position",
            t.table("changed")
        )))
        .persistent(false);
        for (athlete, position) in chunk {
            q = q.bind(athlete.to_string()).bind(*position);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// One snapshot: an analysis per window, as of a log position.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub position: i64,
    pub computed_at: DateTime<Utc>,
    pub analyses: BTreeMap<u32, Analysis>,
}

pub async fn snapshot(pool: &AnyPool, athlete: Uuid) -> anyhow::Result<Option<Snapshot>> {
    let row = sqlx::query(
        "SELECT position, computed_at_us, analyses_json FROM correlation_snapshots \
         WHERE athlete_id = $1",
    )
    .bind(athlete.to_string())
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        let mut analyses: BTreeMap<u32, Analysis> =
            serde_json::from_str(&r.try_get::<String, _>(2)?)?;
        for analysis in analyses.values_mut() {
            let findings = std::mem::take(&mut analysis.findings);
            analysis.findings = findings.into_iter().map(|f| f.with_id()).collect();
        }
        Ok(Snapshot {
            position: r.try_get(0)?,
            computed_at: DateTime::from_timestamp_micros(r.try_get(1)?)
                .context("snapshot time out of range")?,
            analyses,
        })
    })
    .transpose()
}

/// The position of the last input change for the athlete, if any.
pub async fn changed_at(engine: &Engine, athlete: Uuid) -> anyhow::Result<Option<i64>> {
    let t = engine.active_tables("correlation_inputs").await?;
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT position FROM {} WHERE athlete_id = $1",
        t.table("changed")
    )))
    .bind(athlete.to_string())
    .fetch_optional(&engine.db().pool)
    .await?)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
}

impl JobState {
    /// As stored in `correlation_jobs.state`.
    pub fn text(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "done" => Self::Done,
            "failed" => Self::Failed,
            other => anyhow::bail!("unknown job state {other:?}"),
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Job {
    pub job_id: Uuid,
    pub state: JobState,
    pub requested_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The log position the snapshot it produced reflects.
    pub position: Option<i64>,
    /// Why it failed; a fixed sentence, details are in the worker's log.
    pub error: Option<String>,
}

fn micros_to_time(us: Option<i64>) -> Option<DateTime<Utc>> {
    us.and_then(DateTime::from_timestamp_micros)
}

fn job_of(r: &sqlx::any::AnyRow) -> anyhow::Result<Job> {
    Ok(Job {
        job_id: r.try_get::<String, _>(0)?.parse()?,
        state: JobState::parse(&r.try_get::<String, _>(1)?)?,
        requested_at: micros_to_time(Some(r.try_get(2)?)).context("time out of range")?,
        started_at: micros_to_time(r.try_get(3)?),
        finished_at: micros_to_time(r.try_get(4)?),
        position: r.try_get(5)?,
        error: r.try_get(6)?,
    })
}

const JOB_COLUMNS: &str =
    "job_id, state, requested_at_us, started_at_us, finished_at_us, position, error";

/// Asks for a recompute. A request while one is queued or running for the athlete is that
/// one: asking twice does not do the work twice.
pub async fn request(pool: &AnyPool, athlete: Uuid) -> anyhow::Result<Job> {
    let open = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM correlation_jobs \
         WHERE athlete_id = $1 AND state IN ('queued', 'running') \
         ORDER BY requested_at_us LIMIT 1"
    )))
    .bind(athlete.to_string())
    .fetch_optional(pool)
    .await?;
    if let Some(r) = open {
        return job_of(&r);
    }
    let job_id = Uuid::now_v7();
    let now = Utc::now();
    sqlx::query(
        "INSERT INTO correlation_jobs (job_id, athlete_id, state, requested_at_us) \
         VALUES ($1, $2, 'queued', $3)",
    )
    .bind(job_id.to_string())
    .bind(athlete.to_string())
    .bind(now.timestamp_micros())
    .execute(pool)
    .await?;
    Ok(Job {
        job_id,
        state: JobState::Queued,
        requested_at: now,
        started_at: None,
        finished_at: None,
        position: None,
        error: None,
    })
}

/// The athlete's job, if it is theirs.
pub async fn job(pool: &AnyPool, athlete: Uuid, job_id: Uuid) -> anyhow::Result<Option<Job>> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM correlation_jobs WHERE job_id = $1 AND athlete_id = $2"
    )))
    .bind(job_id.to_string())
    .bind(athlete.to_string())
    .fetch_optional(pool)
    .await?
    .map(|r| job_of(&r))
    .transpose()
}

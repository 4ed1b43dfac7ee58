//! Correlation discovery around the pure engine (`domain::correlation`, docs/correlations.md),
//! as the API sees it: which athletes' inputs changed, the snapshots it serves and the
//! on-demand jobs it enqueues and reports. The worker that claims due athletes and computes
//! the snapshots is `workers::correlations`.
//!
//! Invalidation: the `correlation_inputs` projection records, per athlete, the log position of
//! the last event that changes an input or an outcome (check-ins, nutrition, work, body,
//! activities, physiology) and nothing else. A snapshot reflecting an older position is stale.

use std::collections::BTreeMap;

use anyhow::Context;
use chrono::{DateTime, Utc};
use domain::activity::ActivityEvent;
use domain::athlete::AthleteEvent;
use domain::correlation::Analysis;
use domain::journal::JournalEvent;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, AnyPool};
use uuid::Uuid;

use crate::decode::DomainEvent;
use crate::engine::{Engine, Projected, Projection, Tables};
use crate::read_model_table;
use crate::table::{self, Pending, Table};

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

read_model_table! {
    /// One row per athlete; the last input-changing event of a batch wins (positions grow
    /// along the log).
    pub struct ChangedRow in "changed", key 1, Replace {
        athlete_id: String,
        position: i64,
    }
}

// The job tables are created by the migrations (`migrations/*/0005_correlations.sql`), not by a
// projection: the declarations give their row types and column lists, and they are named by
// their base alone (`TableDef::select_fixed_sql`, `table::write_fixed`).

read_model_table! {
    /// One athlete's latest analysis for every window, and the log position it reflects.
    pub struct SnapshotRow in "correlation_snapshots", key 1, Replace {
        athlete_id: String,
        position: i64,
        computed_at_us: i64,
        analyses_json: String,
    }
}

read_model_table! {
    /// A request to recompute now.
    pub struct JobRow in "correlation_jobs", key 1, Insert {
        job_id: String,
        athlete_id: String,
        state: String,
        requested_at_us: i64,
        started_at_us: Option<i64>,
        finished_at_us: Option<i64>,
        position: Option<i64>,
        error: Option<String>,
    }
}

#[async_trait::async_trait]
impl Projection for CorrelationInputsProjection {
    fn name(&self) -> &'static str {
        "correlation_inputs"
    }

    fn version(&self) -> i64 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &[ChangedRow::DEF.base]
    }

    fn schema(&self, t: &Tables) -> Vec<String> {
        vec![ChangedRow::DEF.create_sql(t)]
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
        self.apply_batch(conn, t, std::slice::from_ref(e)).await
    }

    /// The batch collapses to one row per athlete, written many per statement. An erasure
    /// writes what came before it first, then deletes.
    async fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        t: &Tables,
        events: &[Projected<'_>],
    ) -> anyhow::Result<()> {
        let mut pending = Pending::default();
        for e in events {
            let Some(athlete) = e.recorded.metadata.athlete_id else {
                continue;
            };
            if let DomainEvent::Athlete(AthleteEvent::AthleteErased(_)) = e.event {
                pending.flush(conn, t).await?;
                erase(conn, t, athlete).await?;
            } else if changes_inputs(e.event) {
                pending.put(&ChangedRow {
                    athlete_id: athlete.to_string(),
                    position: e.recorded.position,
                })?;
            }
        }
        pending.flush(conn, t).await
    }
}

/// Snapshots and jobs are derived personal data: they go with the athlete.
async fn erase(conn: &mut AnyConnection, t: &Tables, athlete: Uuid) -> anyhow::Result<()> {
    for table in [
        t.table(ChangedRow::DEF.base),
        SnapshotRow::DEF.base.to_string(),
        JobRow::DEF.base.to_string(),
        "correlation_leases".to_string(),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE athlete_id = $1"
        )))
        .bind(athlete.to_string())
        .execute(&mut *conn)
        .await?;
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

/// The athlete's latest snapshot, if one was computed.
pub async fn snapshot(pool: &AnyPool, athlete: Uuid) -> anyhow::Result<Option<Snapshot>> {
    let sql = SnapshotRow::DEF.select_fixed_sql("WHERE athlete_id = $1");
    sqlx::query_as::<_, SnapshotRow>(sqlx::AssertSqlSafe(sql))
        .bind(athlete.to_string())
        .fetch_optional(pool)
        .await?
        .map(Snapshot::try_from)
        .transpose()
}

/// The version of the athlete's snapshot, without reading its analyses: the position it
/// reflects and when it was computed (a recompute at the same position is a new version). The
/// read cache keys correlation views on it (api/src/cache.rs, D41).
pub async fn snapshot_version(pool: &AnyPool, athlete: Uuid) -> anyhow::Result<Option<(i64, i64)>> {
    use sqlx::Row;
    let row = sqlx::query(
        "SELECT position, computed_at_us FROM correlation_snapshots WHERE athlete_id = $1",
    )
    .bind(athlete.to_string())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

impl TryFrom<SnapshotRow> for Snapshot {
    type Error = anyhow::Error;
    fn try_from(r: SnapshotRow) -> anyhow::Result<Self> {
        let mut analyses: BTreeMap<u32, Analysis> = serde_json::from_str(&r.analyses_json)?;
        // Snapshots stored before findings had ids get theirs here.
        for analysis in analyses.values_mut() {
            let findings = std::mem::take(&mut analysis.findings);
            analysis.findings = findings.into_iter().map(|f| f.with_id()).collect();
        }
        Ok(Snapshot {
            position: r.position,
            computed_at: DateTime::from_timestamp_micros(r.computed_at_us)
                .context("snapshot time out of range")?,
            analyses,
        })
    }
}

/// The position of the last input change for the athlete, if any.
pub async fn changed_at(engine: &Engine, athlete: Uuid) -> anyhow::Result<Option<i64>> {
    let t = engine.active_tables("correlation_inputs").await?;
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT position FROM {} WHERE athlete_id = $1",
        t.table(ChangedRow::DEF.base)
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

impl TryFrom<JobRow> for Job {
    type Error = anyhow::Error;
    fn try_from(r: JobRow) -> anyhow::Result<Self> {
        Ok(Job {
            job_id: r.job_id.parse()?,
            state: JobState::parse(&r.state)?,
            requested_at: micros_to_time(Some(r.requested_at_us)).context("time out of range")?,
            started_at: micros_to_time(r.started_at_us),
            finished_at: micros_to_time(r.finished_at_us),
            position: r.position,
            error: r.error,
        })
    }
}

/// The athlete's job matching `rest` (a WHERE clause whose `$1` is the athlete), if any.
async fn find_job(
    pool: &AnyPool,
    athlete: Uuid,
    rest: &str,
    job_id: Option<Uuid>,
) -> anyhow::Result<Option<Job>> {
    let sql = JobRow::DEF.select_fixed_sql(rest);
    let mut q = sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(sql)).bind(athlete.to_string());
    if let Some(job_id) = job_id {
        q = q.bind(job_id.to_string());
    }
    q.fetch_optional(pool).await?.map(Job::try_from).transpose()
}

/// Asks for a recompute. A request while one is queued or running for the athlete is that
/// one: asking twice does not do the work twice.
pub async fn request(pool: &AnyPool, athlete: Uuid) -> anyhow::Result<Job> {
    let open = find_job(
        pool,
        athlete,
        "WHERE athlete_id = $1 AND state IN ('queued', 'running') \
         ORDER BY requested_at_us LIMIT 1",
        None,
    )
    .await?;
    if let Some(job) = open {
        return Ok(job);
    }
    let job_id = Uuid::now_v7();
    let now = Utc::now();
    table::write_fixed(
        pool,
        &JobRow {
            job_id: job_id.to_string(),
            athlete_id: athlete.to_string(),
            state: JobState::Queued.text().to_string(),
            requested_at_us: now.timestamp_micros(),
            started_at_us: None,
            finished_at_us: None,
            position: None,
            error: None,
        },
    )
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
    find_job(
        pool,
        athlete,
        "WHERE athlete_id = $1 AND job_id = $2",
        Some(job_id),
    )
    .await
}

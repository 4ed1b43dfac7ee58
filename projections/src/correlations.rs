//! Correlation discovery around the pure engine (`domain::correlation`, docs/correlations.md):
//! which athletes need a new analysis, the daily series built from the read models, the
//! snapshots the API serves, the on-demand jobs, and one step of the worker that computes them.
//!
//! Invalidation: the `correlation_inputs` projection records, per athlete, the log position of
//! the last event that changes an input or an outcome (check-ins, nutrition, work, body,
//! activities, physiology) and nothing else. A snapshot reflecting an older position is stale;
//! the worker recomputes it at most once per athlete per [`DEBOUNCE`], and at once on request.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use domain::activity::ActivityEvent;
use domain::athlete::AthleteEvent;
use domain::correlation::{Analysis, Dataset, DayInputs, Options, RunOutcome, analyze};
use domain::journal::JournalEvent;
use domain::load::LoadSettings;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, AnyPool, Row};
use uuid::Uuid;

use crate::decode::DomainEvent;
use crate::engine::{Engine, Projected, Projection, Tables};

/// The windows every snapshot holds, in days up to the athlete's today.
pub const WINDOWS_DAYS: [u32; 5] = [30, 90, 180, 365, 730];
/// At most one recompute per athlete in this time, however many events arrive.
pub const DEBOUNCE: Duration = Duration::from_secs(600);
/// How long a worker holds an athlete before another may take over.
pub const LEASE: Duration = Duration::from_secs(120);
/// The read models a snapshot is built from.
pub const SOURCES: [&str; 3] = ["journal", "efficiency", "profile"];

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

async fn profile_of(
    engine: &Engine,
    athlete: Uuid,
) -> anyhow::Result<Option<crate::profile::Profile>> {
    crate::profile::profile(
        &engine.db().pool,
        &engine.active_tables("profile").await?,
        athlete,
    )
    .await
}

/// The athlete's daily inputs and runs from `from` to `to`, in the engine's input format.
pub async fn dataset(
    engine: &Engine,
    athlete: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> anyhow::Result<Dataset> {
    let profile = profile_of(engine, athlete).await?;
    let settings = LoadSettings::of(&profile.map(|p| p.physiology).unwrap_or_default());
    dataset_with(engine, athlete, &settings, from, to).await
}

async fn dataset_with(
    engine: &Engine,
    athlete: Uuid,
    settings: &LoadSettings,
    from: NaiveDate,
    to: NaiveDate,
) -> anyhow::Result<Dataset> {
    let pool = &engine.db().pool;
    let journal = crate::journal::range(
        pool,
        &engine.active_tables("journal").await?,
        athlete,
        from,
        to,
    )
    .await?;
    let mut days = Vec::with_capacity(journal.len());
    for d in journal {
        let mut inputs = BTreeMap::new();
        let mut put = |name: &str, v: Option<f64>| {
            if let Some(v) = v {
                inputs.insert(name.to_string(), v);
            }
        };
        if let Some(c) = d.check_in.as_ref().map(|c| &c.values) {
            put("sleep_hours", c.sleep_h);
            put("sleep_quality", c.sleep_quality.map(f64::from));
            put("hrv_rmssd_ms", c.hrv_ms);
            put("resting_hr_bpm", c.resting_hr_bpm);
            put("stress", c.stress.map(f64::from));
            put("soreness", c.soreness.map(f64::from));
            put("readiness", c.readiness.map(f64::from));
        }
        if let Some(w) = &d.work {
            put("work_hours", w.hours_worked_h);
            put("work_stress", w.stress.map(f64::from));
        }
        // Daily sums over whatever entries carry the nutrient; a day with no entry for it
        // stays missing, never zero.
        let sum = |f: fn(&crate::journal::NutritionEntry) -> Option<f64>| {
            let values: Vec<f64> = d.nutrition.iter().filter_map(f).collect();
            (!values.is_empty()).then(|| values.iter().sum())
        };
        put("calories_kcal", sum(|n| n.calories_kcal));
        put("protein_g", sum(|n| n.protein_g));
        put("carbohydrate_g", sum(|n| n.carbohydrate_g));
        put("fat_g", sum(|n| n.fat_g));
        put("caffeine_mg", sum(|n| n.caffeine_mg));
        if let Some(b) = &d.body_composition {
            put("weight_kg", b.weight_kg);
            put("body_fat_pct", b.body_fat_pct);
        }
        if !inputs.is_empty() {
            days.push(DayInputs {
                date: d.date,
                inputs,
            });
        }
    }
    let activities =
        crate::efficiency::all_of(pool, &engine.active_tables("efficiency").await?, athlete)
            .await?
            .into_iter()
            .filter(|a| a.local_date >= from && a.local_date <= to)
            .map(|a| RunOutcome {
                date: a.local_date,
                efficiency_factor: a.metrics.efficiency_factor,
                decoupling_pct: a.metrics.decoupling_pct,
                analyzed_time_s: a.metrics.analyzed_time_s,
                training_load: settings.trimp(&a.load),
            })
            .collect();
    Ok(Dataset {
        days,
        activities,
        carry_forward_days: BTreeMap::from([
            ("weight_kg".to_string(), 7),
            ("body_fat_pct".to_string(), 7),
        ]),
    })
}

/// One snapshot: an analysis per window, as of a log position.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub position: i64,
    pub computed_at: DateTime<Utc>,
    pub analyses: BTreeMap<u32, Analysis>,
}

/// Every window's analysis for the athlete, from the read models as they are now.
pub async fn compute(engine: &Engine, athlete: Uuid) -> anyhow::Result<BTreeMap<u32, Analysis>> {
    // One profile read for both the calendar and the load weighting.
    let profile = profile_of(engine, athlete).await?;
    let timezone = profile
        .as_ref()
        .map_or("UTC", |p| p.preferences.timezone.as_str());
    let today = domain::time::local_date(Utc::now(), timezone);
    let settings = LoadSettings::of(&profile.as_ref().map(|p| p.physiology).unwrap_or_default());
    let longest = WINDOWS_DAYS[WINDOWS_DAYS.len() - 1];
    let from = today - chrono::Duration::days(i64::from(longest) - 1);
    let all = std::sync::Arc::new(dataset_with(engine, athlete, &settings, from, today).await?);
    let options = Options::default();
    // Each window's analysis is CPU-bound (up to hundreds of milliseconds): on the blocking
    // threads, one core each at most (`crate::cpu`), so the windows run side by side while
    // the runtime goes on serving.
    let windows: Vec<_> = WINDOWS_DAYS
        .iter()
        .map(|&w| {
            let all = all.clone();
            let since = today - chrono::Duration::days(i64::from(w) - 1);
            tokio::spawn(crate::cpu::run(move || {
                let window = Dataset {
                    days: all
                        .days
                        .iter()
                        .filter(|d| d.date >= since)
                        .cloned()
                        .collect(),
                    activities: all
                        .activities
                        .iter()
                        .filter(|a| a.date >= since)
                        .cloned()
                        .collect(),
                    carry_forward_days: all.carry_forward_days.clone(),
                };
                (w, analyze(&window, &options))
            }))
        })
        .collect();
    let mut analyses = BTreeMap::new();
    for window in windows {
        let (w, analysis) = window.await.context("a window's analysis failed")??;
        analyses.insert(w, analysis);
    }
    Ok(analyses)
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
    fn text(self) -> &'static str {
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

async fn claim(pool: &AnyPool, athlete: &str, owner: &str) -> anyhow::Result<bool> {
    let now = Utc::now().timestamp_micros();
    let until = now + LEASE.as_micros() as i64;
    let r = sqlx::query(
        "INSERT INTO correlation_leases (athlete_id, owner, until_us) VALUES ($1, $2, $3) \
         ON CONFLICT (athlete_id) DO UPDATE SET owner = excluded.owner, until_us = excluded.until_us \
         WHERE correlation_leases.until_us < $4",
    )
    .bind(athlete)
    .bind(owner)
    .bind(until)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

async fn release(pool: &AnyPool, athlete: &str, owner: &str) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM correlation_leases WHERE athlete_id = $1 AND owner = $2")
        .bind(athlete)
        .bind(owner)
        .execute(pool)
        .await?;
    Ok(())
}

/// What one worker step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Step {
    pub computed: usize,
    pub failed: usize,
}

/// Athletes with a queued job (first), then athletes whose inputs changed after their snapshot
/// (or who have none) and whose snapshot is older than the debounce; at most `limit` of each.
/// `only` narrows it to one athlete: the re-check after a claim uses the very same rule.
async fn due(engine: &Engine, only: Option<&str>, limit: i64) -> anyhow::Result<Vec<String>> {
    let pool = &engine.db().pool;
    let changed = engine
        .active_tables("correlation_inputs")
        .await?
        .table("changed");
    // The athlete id is bound, never spliced: only the presence of the clause varies.
    let one = |column: &str, n: u8| only.map_or(String::new(), |_| format!(" AND {column} = ${n}"));
    let queued = format!(
        "SELECT athlete_id FROM correlation_jobs WHERE state = 'queued'{} \
         ORDER BY requested_at_us LIMIT $1",
        one("athlete_id", 2)
    );
    let settle = Utc::now().timestamp_micros() - DEBOUNCE.as_micros() as i64;
    let stale = format!(
        "SELECT c.athlete_id FROM {changed} c \
         LEFT JOIN correlation_snapshots s ON s.athlete_id = c.athlete_id \
         WHERE (s.athlete_id IS NULL OR (c.position > s.position AND s.computed_at_us <= $2)){} \
         ORDER BY c.position LIMIT $1",
        one("c.athlete_id", 3)
    );
    let mut out: Vec<String> = Vec::new();
    for (sql, settle) in [(queued, None), (stale, Some(settle))] {
        let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).bind(limit);
        if let Some(settle) = settle {
            q = q.bind(settle);
        }
        if let Some(athlete) = only {
            q = q.bind(athlete.to_string());
        }
        for athlete in q.fetch_all(pool).await? {
            if !out.contains(&athlete) {
                out.push(athlete);
            }
        }
    }
    Ok(out)
}

/// One pass of the worker: computes up to `limit` due athletes. Safe in any number of
/// processes at once: an athlete is computed by whoever holds its lease.
pub async fn step(engine: &Engine, owner: &str, limit: i64) -> anyhow::Result<Step> {
    let pool = &engine.db().pool;
    let mut done = Step::default();
    for athlete in due(engine, None, limit).await? {
        if !claim(pool, &athlete, owner).await? {
            continue;
        }
        // Another worker may have computed it between our look and our claim.
        if due(engine, Some(&athlete), 1).await?.is_empty() {
            release(pool, &athlete, owner).await?;
            continue;
        }
        match compute_one(engine, &athlete).await {
            Ok(()) => {
                release(pool, &athlete, owner).await?;
                done.computed += 1;
            }
            Err(e) => {
                // The lease is kept until it expires: a failing athlete is retried after
                // [`LEASE`], not in a tight loop.
                done.failed += 1;
                tracing::error!(error = %format!("{e:#}"), "correlation analysis failed");
            }
        }
    }
    Ok(done)
}

async fn compute_one(engine: &Engine, athlete: &str) -> anyhow::Result<()> {
    let pool = &engine.db().pool;
    let id: Uuid = athlete.parse()?;
    let started = Utc::now().timestamp_micros();
    // The jobs this run answers: those queued before it started.
    let jobs: Vec<String> = sqlx::query_scalar(
        "SELECT job_id FROM correlation_jobs WHERE athlete_id = $1 AND state = 'queued'",
    )
    .bind(athlete)
    .fetch_all(pool)
    .await?;
    for j in &jobs {
        sqlx::query(
            "UPDATE correlation_jobs SET state = 'running', started_at_us = $1 WHERE job_id = $2",
        )
        .bind(started)
        .bind(j)
        .execute(pool)
        .await?;
    }
    let outcome = async {
        // The snapshot reflects the log up to the last input change the read models have
        // applied: wait for them to reach it.
        let position = changed_at(engine, id).await?.unwrap_or(0);
        if position > 0
            && !engine
                .wait_for(&SOURCES, position, Duration::from_secs(30))
                .await?
        {
            anyhow::bail!("the read models did not reach position {position} within 30 s");
        }
        let analyses = compute(engine, id).await?;
        let now = Utc::now().timestamp_micros();
        sqlx::query(
            "INSERT INTO correlation_snapshots (athlete_id, position, computed_at_us, analyses_json) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (athlete_id) DO UPDATE SET \
             position = excluded.position, computed_at_us = excluded.computed_at_us, \
             analyses_json = excluded.analyses_json",
        )
        .bind(athlete)
        .bind(position)
        .bind(now)
        .bind(serde_json::to_string(&analyses)?)
        .execute(pool)
        .await?;
        Ok::<i64, anyhow::Error>(position)
    }
    .await;
    let finished = Utc::now().timestamp_micros();
    let (state, position, error) = match &outcome {
        Ok(p) => (JobState::Done, Some(*p), None),
        Err(_) => (
            JobState::Failed,
            None,
            Some("the analysis could not be completed; it will be retried".to_string()),
        ),
    };
    for j in &jobs {
        sqlx::query(
            "UPDATE correlation_jobs SET state = $1, finished_at_us = $2, position = $3, error = $4 \
             WHERE job_id = $5",
        )
        .bind(state.text())
        .bind(finished)
        .bind(position)
        .bind(error.clone())
        .bind(j)
        .execute(pool)
        .await?;
    }
    outcome.map(|_| ())
}

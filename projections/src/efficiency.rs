//! Per-activity efficiency metrics and load inputs (docs/efficiency.md). The projection's
//! version is the formula's version: changing a formula means a new version, which the engine
//! builds beside the old one from the events and the kept files, then switches to.
//!
//! Training load is not stored as a number: it depends on the athlete's resting and maximum
//! heart rate, which can change at any time. Each row keeps the activity's time at each heart
//! rate instead, and readers weight it with the athlete's current values.

use std::collections::HashMap;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use domain::activity::WorkoutType;
use domain::activity::{
    ActivityEvent, ActivityRecorded, ActivityUpdated, Lap, SampleStreamRef, Sport,
};
use domain::athlete::AthleteEvent;
use domain::efficiency::{Efficiency, analyze_manual_with_load, analyze_with_load};
use domain::load::LoadInput;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, AnyPool};
use uuid::Uuid;

use crate::activities::{enum_text, text_enum};
use crate::decode::DomainEvent;
use crate::engine::{Projected, Projection, Tables};
use crate::read_model_table;
use crate::table::{self, Table, Write};

/// The version of the formulas in `domain::efficiency` and of this table's shape. 2: load
/// inputs, sport, workout type and local date beside the metrics.
pub const FORMULA_VERSION: i64 = 2;

pub struct EfficiencyProjection {
    version: i64,
}

impl Default for EfficiencyProjection {
    fn default() -> Self {
        Self {
            version: FORMULA_VERSION,
        }
    }
}

impl EfficiencyProjection {
    /// For tests of a formula change: the same projection under another version.
    pub fn with_version(version: i64) -> Self {
        Self { version }
    }
}

/// What the metrics are computed from, kept with them so an edit can recompute.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Input {
    sport: Sport,
    distance_m: Option<f64>,
    moving_time_s: f64,
    avg_hr_bpm: Option<f64>,
    laps: Vec<Lap>,
    samples: Option<SampleStreamRef>,
}

impl Input {
    fn of(r: &ActivityRecorded) -> Self {
        Self {
            sport: r.sport,
            distance_m: r.distance_m,
            moving_time_s: r.moving_time_s,
            avg_hr_bpm: r.avg_hr_bpm,
            laps: r.laps.clone(),
            samples: r.samples.clone(),
        }
    }

    /// A corrected summary. A file's metrics come from its samples; a correction changes only
    /// what a manual activity is computed from (and the sport of either).
    fn correct(&mut self, u: &ActivityUpdated) {
        self.sport = u.sport.unwrap_or(self.sport);
        if self.samples.is_none() {
            self.distance_m = u.distance_m.or(self.distance_m);
            self.moving_time_s = u.moving_time_s.unwrap_or(self.moving_time_s);
            self.avg_hr_bpm = u.avg_hr_bpm.or(self.avg_hr_bpm);
        }
    }

    async fn metrics(
        &self,
        e: &Projected<'_>,
        athlete: Uuid,
    ) -> anyhow::Result<(Efficiency, LoadInput)> {
        let Some(s) = &self.samples else {
            return Ok(analyze_manual_with_load(
                self.sport,
                self.distance_m,
                self.moving_time_s,
                self.avg_hr_bpm,
                &self.laps,
            ));
        };
        let format = ingest::Format::of_name(&format!("x.{}", s.format))
            .with_context(|| format!("unknown sample format {:?}", s.format))?;
        let bytes = e
            .store
            .get_blob(athlete, s.blob_id)
            .await?
            .with_context(|| format!("the file {} is not available", s.blob_id))?;
        // Parsing a long file and analysing it take milliseconds of CPU: off the runtime.
        let sport = self.sport;
        crate::cpu::run(move || {
            let parsed = ingest::parse(format, &bytes)?;
            anyhow::Ok(analyze_with_load(sport, &parsed.samples))
        })
        .await?
    }
}

read_model_table! {
    /// One live activity's metrics, with what they were computed from. A plain INSERT: the
    /// aggregate refuses a second recording, so a duplicate is a broken log.
    pub struct MetricsRow in "metrics", key 1, Insert {
        activity_id: String,
        athlete_id: String,
        start_time_us: i64,
        local_date: String,
        sport: String,
        workout_type: Option<String>,
        input_json: String,
        metrics_json: String,
        load_json: String,
    }
}

#[async_trait::async_trait]
impl Projection for EfficiencyProjection {
    fn name(&self) -> &'static str {
        "efficiency"
    }

    fn version(&self) -> i64 {
        self.version
    }

    fn tables(&self) -> &'static [&'static str] {
        &[MetricsRow::DEF.base]
    }

    fn schema(&self, t: &Tables) -> Vec<String> {
        let metrics = t.table(MetricsRow::DEF.base);
        vec![
            MetricsRow::DEF.create_sql(t),
            format!("CREATE INDEX {metrics}_athlete ON {metrics} (athlete_id, start_time_us)"),
        ]
    }

    fn order_by(&self, _table: &str) -> &'static str {
        "activity_id"
    }

    /// One event on its own: a recording is inserted; a workout type or a correction is
    /// folded into the stored row, which is written back whole; a deletion or an erasure
    /// removes rows.
    async fn apply(
        &self,
        conn: &mut AnyConnection,
        t: &Tables,
        e: &Projected<'_>,
    ) -> anyhow::Result<()> {
        let Some(athlete) = e.recorded.metadata.athlete_id else {
            return Ok(());
        };
        let table = t.table(MetricsRow::DEF.base);
        let event = match e.event {
            DomainEvent::Activity(event) => event,
            DomainEvent::Athlete(AthleteEvent::AthleteErased(_)) => {
                return delete_where(conn, &table, "athlete_id", athlete.to_string()).await;
            }
            _ => return Ok(()),
        };
        let activity_id = e.recorded.stream.stream_id.clone();
        match event {
            ActivityEvent::ActivityRecorded(r) => {
                let recorded = Recorded::of(activity_id, athlete, r);
                let mut pending = table::Pending::default();
                pending.put(&recorded.row(e).await?)?;
                pending.flush(conn, t).await
            }
            ActivityEvent::ActivityDeleted(_) => {
                delete_where(conn, &table, "activity_id", activity_id).await
            }
            ActivityEvent::WorkoutTypeSet(_) | ActivityEvent::ActivityUpdated(_) => {
                // An activity not stored (deleted) stays absent.
                let sql = MetricsRow::DEF.select_sql(t, "WHERE activity_id = $1");
                let Some(mut row) = sqlx::query_as::<_, MetricsRow>(sqlx::AssertSqlSafe(sql))
                    .bind(&activity_id)
                    .fetch_optional(&mut *conn)
                    .await?
                else {
                    return Ok(());
                };
                row.fold(e, athlete, event).await?;
                let mut pending = table::Pending::default();
                pending.put_as(MetricsRow::DEF.writing(Write::Replace), &row)?;
                pending.flush(conn, t).await
            }
            _ => Ok(()),
        }
    }

    /// Folds the batch per activity: a recording and the workout type and corrections that
    /// follow it in the same batch become one row, computed once from the final input and
    /// written many rows per statement. Events on activities recorded in earlier batches go
    /// through [`Projection::apply`]; they touch no pending row. A deletion of a pending row
    /// drops it; an erasure writes the pending rows first, then deletes.
    async fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        t: &Tables,
        events: &[Projected<'_>],
    ) -> anyhow::Result<()> {
        let mut pending: Vec<Option<Recorded>> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for e in events {
            let Some(athlete) = e.recorded.metadata.athlete_id else {
                continue;
            };
            let event = match e.event {
                DomainEvent::Activity(event) => event,
                DomainEvent::Athlete(AthleteEvent::AthleteErased(_)) => {
                    write_pending(conn, t, e, &mut pending, &mut index).await?;
                    self.apply(conn, t, e).await?;
                    continue;
                }
                _ => continue,
            };
            let activity_id = e.recorded.stream.stream_id.as_str();
            if let ActivityEvent::ActivityRecorded(r) = event {
                if index.contains_key(activity_id) {
                    // A second recording is a broken log: let the per-event retry skip it.
                    anyhow::bail!("activity {activity_id} recorded twice");
                }
                index.insert(activity_id, pending.len());
                pending.push(Some(Recorded::of(activity_id.to_string(), athlete, r)));
                continue;
            }
            let Some(&i) = index.get(activity_id) else {
                self.apply(conn, t, e).await?;
                continue;
            };
            match event {
                ActivityEvent::ActivityDeleted(_) => {
                    index.remove(activity_id);
                    pending[i] = None;
                }
                ActivityEvent::WorkoutTypeSet(w) => {
                    if let Some(row) = &mut pending[i] {
                        row.workout_type = Some(enum_text(&w.workout_type)?);
                    }
                }
                ActivityEvent::ActivityUpdated(u) => {
                    if let Some(row) = &mut pending[i] {
                        row.input.correct(u);
                        row.metrics_athlete = athlete;
                    }
                }
                _ => {}
            }
        }
        let last = events.last().expect("a batch is not empty");
        write_pending(conn, t, last, &mut pending, &mut index).await
    }
}

async fn delete_where(
    conn: &mut AnyConnection,
    table: &str,
    column: &str,
    value: String,
) -> anyhow::Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {table} WHERE {column} = $1"
    )))
    .bind(value)
    .execute(conn)
    .await?;
    Ok(())
}

impl MetricsRow {
    /// The effect of a later event on a stored row: a workout type is set; a correction
    /// changes the input, and the metrics are computed again from it.
    async fn fold(
        &mut self,
        e: &Projected<'_>,
        athlete: Uuid,
        event: &ActivityEvent,
    ) -> anyhow::Result<()> {
        match event {
            ActivityEvent::WorkoutTypeSet(w) => {
                self.workout_type = Some(enum_text(&w.workout_type)?);
            }
            ActivityEvent::ActivityUpdated(u) => {
                let mut input: Input = serde_json::from_str(&self.input_json)?;
                input.correct(u);
                let (metrics, load) = input.metrics(e, athlete).await?;
                self.sport = enum_text(&input.sport)?;
                self.input_json = serde_json::to_string(&input)?;
                self.metrics_json = serde_json::to_string(&metrics)?;
                self.load_json = serde_json::to_string(&load)?;
            }
            _ => anyhow::bail!("only workout types and corrections are folded"),
        }
        Ok(())
    }
}

/// An activity recorded in this batch (or event), before its metrics are computed.
struct Recorded {
    activity_id: String,
    athlete_id: String,
    start_time_us: i64,
    local_date: String,
    workout_type: Option<String>,
    input: Input,
    /// Whose files the samples are read from: the athlete of the last event that changed the
    /// input, as the event computing the metrics one by one would.
    metrics_athlete: Uuid,
}

impl Recorded {
    fn of(activity_id: String, athlete: Uuid, r: &ActivityRecorded) -> Self {
        Self {
            activity_id,
            athlete_id: athlete.to_string(),
            start_time_us: r.start_time.timestamp_micros(),
            local_date: domain::time::local_date(r.start_time, &r.timezone).to_string(),
            workout_type: None,
            input: Input::of(r),
            metrics_athlete: athlete,
        }
    }

    /// The row, with the metrics computed from the input. `e` only lends its store for
    /// reading kept files.
    async fn row(self, e: &Projected<'_>) -> anyhow::Result<MetricsRow> {
        let (metrics, load) = self.input.metrics(e, self.metrics_athlete).await?;
        Ok(MetricsRow {
            activity_id: self.activity_id,
            athlete_id: self.athlete_id,
            start_time_us: self.start_time_us,
            local_date: self.local_date,
            sport: enum_text(&self.input.sport)?,
            workout_type: self.workout_type,
            input_json: serde_json::to_string(&self.input)?,
            metrics_json: serde_json::to_string(&metrics)?,
            load_json: serde_json::to_string(&load)?,
        })
    }
}

/// Computes the pending rows' metrics and inserts them with multi-row statements. `e` only
/// lends its store for reading kept files. A row whose id already exists fails the batch, as
/// the per-event INSERT would fail the event.
async fn write_pending(
    conn: &mut AnyConnection,
    t: &Tables,
    e: &Projected<'_>,
    pending: &mut Vec<Option<Recorded>>,
    index: &mut HashMap<&str, usize>,
) -> anyhow::Result<()> {
    index.clear();
    let mut rows = table::Pending::default();
    for recorded in pending.drain(..).flatten() {
        rows.put(&recorded.row(e).await?)?;
    }
    rows.flush(conn, t).await
}

/// One activity's metrics, if it is the athlete's and not deleted.
pub async fn metrics(
    pool: &AnyPool,
    t: &Tables,
    athlete: Uuid,
    activity_id: Uuid,
) -> anyhow::Result<Option<Efficiency>> {
    let json: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT metrics_json FROM {} WHERE athlete_id = $1 AND activity_id = $2",
        t.table(MetricsRow::DEF.base)
    )))
    .bind(athlete.to_string())
    .bind(activity_id.to_string())
    .fetch_optional(pool)
    .await?;
    json.map(|j| Ok(serde_json::from_str(&j)?)).transpose()
}

/// One activity as the trends, comparisons and load read it.
#[derive(Debug, Clone)]
pub struct ActivityMetrics {
    pub activity_id: Uuid,
    pub start_time: DateTime<Utc>,
    pub local_date: NaiveDate,
    pub workout_type: Option<WorkoutType>,
    pub metrics: Efficiency,
    pub load: LoadInput,
}

/// Readers need the metrics, not what they were computed from (laps can be long).
const NOT_READ: &[&str] = &["input_json"];

/// Every live activity of the athlete, oldest first.
pub async fn all_of(
    pool: &AnyPool,
    t: &Tables,
    athlete: Uuid,
) -> anyhow::Result<Vec<ActivityMetrics>> {
    let sql = MetricsRow::DEF.select_sql_blanking(
        t,
        NOT_READ,
        "WHERE athlete_id = $1 ORDER BY start_time_us, activity_id",
    );
    sqlx::query_as::<_, MetricsRow>(sqlx::AssertSqlSafe(sql))
        .bind(athlete.to_string())
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(ActivityMetrics::try_from)
        .collect()
}

impl TryFrom<MetricsRow> for ActivityMetrics {
    type Error = anyhow::Error;
    fn try_from(r: MetricsRow) -> anyhow::Result<Self> {
        Ok(ActivityMetrics {
            activity_id: r.activity_id.parse()?,
            start_time: DateTime::from_timestamp_micros(r.start_time_us)
                .context("start time out of range")?,
            local_date: r.local_date.parse()?,
            workout_type: r.workout_type.map(text_enum).transpose()?,
            metrics: serde_json::from_str(&r.metrics_json)?,
            load: serde_json::from_str(&r.load_json)?,
        })
    }
}

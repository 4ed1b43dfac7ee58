//! Per-activity efficiency metrics and load inputs (docs/efficiency.md). The projection's
//! version is the formula's version: changing a formula means a new version, which the engine
//! builds beside the old one from the events and the kept files, then switches to.
//!
//! Training load is not stored as a number: it depends on the athlete's resting and maximum
//! heart rate, which can change at any time. Each row keeps the activity's time at each heart
//! rate instead, and readers weight it with the athlete's current values.

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use domain::activity::WorkoutType;
use domain::activity::{ActivityEvent, ActivityRecorded, Lap, SampleStreamRef, Sport};
use domain::athlete::AthleteEvent;
use domain::efficiency::{Efficiency, analyze_manual_with_load, analyze_with_load};
use domain::load::LoadInput;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, AnyPool, Row};
use uuid::Uuid;

use crate::activities::{enum_text, text_enum};
use crate::decode::DomainEvent;
use crate::engine::{Projected, Projection, Tables};

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

#[async_trait::async_trait]
impl Projection for EfficiencyProjection {
    fn name(&self) -> &'static str {
        "efficiency"
    }

    fn version(&self) -> i64 {
        self.version
    }

    fn tables(&self) -> &'static [&'static str] {
        &["metrics"]
    }

    fn schema(&self, t: &Tables) -> Vec<String> {
        let metrics = t.table("metrics");
        vec![
            format!(
                "CREATE TABLE {metrics} (
                    activity_id    TEXT   PRIMARY KEY,
                    athlete_id     TEXT   NOT NULL,
                    start_time_us  BIGINT NOT NULL,
                    local_date     TEXT   NOT NULL,
                    sport          TEXT   NOT NULL,
                    workout_type   TEXT,
                    input_json     TEXT   NOT NULL,
                    metrics_json   TEXT   NOT NULL,
                    load_json      TEXT   NOT NULL
                )"
            ),
            format!("CREATE INDEX {metrics}_athlete ON {metrics} (athlete_id, start_time_us)"),
        ]
    }

    fn order_by(&self, _table: &str) -> &'static str {
        "activity_id"
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
        let table = t.table("metrics");
        let event = match e.event {
            DomainEvent::Activity(event) => event,
            DomainEvent::Athlete(AthleteEvent::AthleteErased(_)) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM {table} WHERE athlete_id = $1"
                )))
                .bind(athlete.to_string())
                .execute(conn)
                .await?;
                return Ok(());
            }
            _ => return Ok(()),
        };
        let activity_id = e.recorded.stream.stream_id.clone();
        let input = match event {
            ActivityEvent::ActivityRecorded(r) => {
                let input = Input::of(r);
                let (metrics, load) = input.metrics(e, athlete).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO {table} (activity_id, athlete_id, start_time_us, local_date, \
                       sport, input_json, metrics_json, load_json) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                )))
                .bind(activity_id)
                .bind(athlete.to_string())
                .bind(r.start_time.timestamp_micros())
                .bind(domain::time::local_date(r.start_time, &r.timezone).to_string())
                .bind(enum_text(&r.sport)?)
                .bind(serde_json::to_string(&input)?)
                .bind(serde_json::to_string(&metrics)?)
                .bind(serde_json::to_string(&load)?)
                .execute(conn)
                .await?;
                return Ok(());
            }
            ActivityEvent::ActivityDeleted(_) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM {table} WHERE activity_id = $1"
                )))
                .bind(activity_id)
                .execute(conn)
                .await?;
                return Ok(());
            }
            ActivityEvent::WorkoutTypeSet(w) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE {table} SET workout_type = $1 WHERE activity_id = $2"
                )))
                .bind(enum_text(&w.workout_type)?)
                .bind(activity_id)
                .execute(conn)
                .await?;
                return Ok(());
            }
            ActivityEvent::ActivityUpdated(u) => {
                let stored: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT input_json FROM {table} WHERE activity_id = $1"
                )))
                .bind(&activity_id)
                .fetch_optional(&mut *conn)
                .await?;
                let Some(stored) = stored else {
                    return Ok(());
                };
                let mut input: Input = serde_json::from_str(&stored)?;
                input.sport = u.sport.unwrap_or(input.sport);
                // A file's metrics come from its samples; a corrected summary changes only
                // what a manual activity is computed from.
                if input.samples.is_none() {
                    input.distance_m = u.distance_m.or(input.distance_m);
                    input.moving_time_s = u.moving_time_s.unwrap_or(input.moving_time_s);
                    input.avg_hr_bpm = u.avg_hr_bpm.or(input.avg_hr_bpm);
                }
                input
            }
            _ => return Ok(()),
        };
        let (metrics, load) = input.metrics(e, athlete).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET sport = $1, input_json = $2, metrics_json = $3, load_json = $4 \
             WHERE activity_id = $5"
        )))
        .bind(enum_text(&input.sport)?)
        .bind(serde_json::to_string(&input)?)
        .bind(serde_json::to_string(&metrics)?)
        .bind(serde_json::to_string(&load)?)
        .bind(activity_id)
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// One activity's metrics, if it is the athlete's and not deleted.
pub async fn metrics(
    pool: &AnyPool,
    t: &Tables,
    athlete: Uuid,
    activity_id: Uuid,
) -> anyhow::Result<Option<Efficiency>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT metrics_json FROM {} WHERE athlete_id = $1 AND activity_id = $2",
        t.table("metrics")
    )))
    .bind(athlete.to_string())
    .bind(activity_id.to_string())
    .fetch_optional(pool)
    .await?;
    row.map(|r| Ok(serde_json::from_str(&r.try_get::<String, _>(0)?)?))
        .transpose()
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

/// Every live activity of the athlete, oldest first.
pub async fn all_of(
    pool: &AnyPool,
    t: &Tables,
    athlete: Uuid,
) -> anyhow::Result<Vec<ActivityMetrics>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT activity_id, start_time_us, local_date, workout_type, metrics_json, load_json \
         FROM {} WHERE athlete_id = $1 ORDER BY start_time_us, activity_id",
        t.table("metrics")
    )))
    .bind(athlete.to_string())
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let start_us: i64 = r.try_get(1)?;
            Ok(ActivityMetrics {
                activity_id: r.try_get::<String, _>(0)?.parse()?,
                start_time: DateTime::from_timestamp_micros(start_us)
                    .context("start time out of range")?,
                local_date: r.try_get::<String, _>(2)?.parse()?,
                workout_type: r
                    .try_get::<Option<String>, _>(3)?
                    .map(text_enum)
                    .transpose()?,
                metrics: serde_json::from_str(&r.try_get::<String, _>(4)?)?,
                load: serde_json::from_str(&r.try_get::<String, _>(5)?)?,
            })
        })
        .collect()
}

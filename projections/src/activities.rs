//! The activity list and detail: one row per live activity with its summary numbers, how the
//! athlete labelled it and how it felt. Deleted activities and everything of an erased athlete
//! are removed, so the table never holds personal data the log no longer can.
//!
//! Local dates come from the IANA database compiled into the binary (`chrono-tz`). Version 2
//! of this projection replaced version 1's UTC stand-in for zones with daylight saving.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use domain::activity::{ActivityEvent, ActivitySource, Lap, Sport, WorkoutType};
use domain::athlete::AthleteEvent;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, AnyPool};
use uuid::Uuid;

use crate::decode::DomainEvent;
use crate::engine::{Projected, Projection, Tables};
use crate::read_model_table;
use crate::table::{Pending, Table, Write};

pub struct ActivitiesProjection;

read_model_table! {
    /// One live activity. Later events name the activity only through their stream, so the
    /// stream id is the key for the recording too. A plain INSERT: the aggregate refuses a
    /// second recording, so a duplicate here is a broken log and belongs in the skipped list,
    /// not silently merged.
    pub struct ActivityRow in "activities", key 1, Insert {
        activity_id: String,
        athlete_id: String,
        sport: String,
        name: Option<String>,
        start_time_us: i64,
        timezone: String,
        local_date: String,
        distance_m: Option<f64>,
        moving_time_s: f64,
        elapsed_time_s: Option<f64>,
        avg_hr_bpm: Option<f64>,
        max_hr_bpm: Option<f64>,
        elevation_gain_m: Option<f64>,
        elevation_loss_m: Option<f64>,
        source: String,
        external_id: Option<String>,
        workout_type: Option<String>,
        is_race: i64,
        race_name: Option<String>,
        race_official_distance_m: Option<f64>,
        race_official_time_s: Option<f64>,
        effort: Option<i64>,
        leg_feel: Option<i64>,
        mood_before: Option<i64>,
        mood_after: Option<i64>,
        energy_before: Option<i64>,
        energy_after: Option<i64>,
        effort_notes: Option<String>,
        notes: Option<String>,
        laps_json: String,
    }
}

#[async_trait::async_trait]
impl Projection for ActivitiesProjection {
    fn name(&self) -> &'static str {
        "activities"
    }

    fn version(&self) -> i64 {
        2
    }

    fn tables(&self) -> &'static [&'static str] {
        &[ActivityRow::DEF.base]
    }

    fn schema(&self, t: &Tables) -> Vec<String> {
        let activities = t.table(ActivityRow::DEF.base);
        vec![
            ActivityRow::DEF.create_sql(t),
            // One index per sort key, each ending in the id tie-breaker, so every page of every
            // sort order is an index range scan whatever the athlete's history length.
            format!(
                "CREATE INDEX {activities}_start ON {activities} (athlete_id, start_time_us, activity_id)"
            ),
            // On the expression the distance sort orders by (see `SortKey::sql`), not the column.
            format!(
                "CREATE INDEX {activities}_distance ON {activities} \
                 (athlete_id, (COALESCE(distance_m, 0)), activity_id)"
            ),
            format!(
                "CREATE INDEX {activities}_moving ON {activities} (athlete_id, moving_time_s, activity_id)"
            ),
        ]
    }

    /// One event on its own: a recording is inserted; a later event is folded into the stored
    /// row, which is written back whole; a deletion or an erasure removes rows.
    async fn apply(
        &self,
        conn: &mut AnyConnection,
        t: &Tables,
        e: &Projected<'_>,
    ) -> anyhow::Result<()> {
        // The metadata's athlete, not the payload's: it is what erasure and encryption go by,
        // and every later command on the activity is checked against the same owner.
        let Some(athlete) = e.recorded.metadata.athlete_id else {
            return Ok(());
        };
        let athlete = athlete.to_string();
        let table = t.table(ActivityRow::DEF.base);
        let event = match e.event {
            DomainEvent::Activity(event) => event,
            DomainEvent::Athlete(AthleteEvent::AthleteErased(_)) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM {table} WHERE athlete_id = $1"
                )))
                .bind(athlete)
                .execute(conn)
                .await?;
                return Ok(());
            }
            _ => return Ok(()),
        };
        let activity_id = e.recorded.stream.stream_id.clone();
        let mut pending = Pending::default();
        match event {
            ActivityEvent::ActivityRecorded(r) => {
                pending.put(&ActivityRow::recorded(activity_id, athlete, r)?)?;
            }
            ActivityEvent::ActivityDeleted(_) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM {table} WHERE activity_id = $1 AND athlete_id = $2"
                )))
                .bind(activity_id)
                .bind(athlete)
                .execute(conn)
                .await?;
                return Ok(());
            }
            _ => {
                // Someone else's event, or one on a deleted activity, changes nothing.
                let sql =
                    ActivityRow::DEF.select_sql(t, "WHERE activity_id = $1 AND athlete_id = $2");
                let Some(mut row) = sqlx::query_as::<_, ActivityRow>(sqlx::AssertSqlSafe(sql))
                    .bind(&activity_id)
                    .bind(&athlete)
                    .fetch_optional(&mut *conn)
                    .await?
                else {
                    return Ok(());
                };
                row.fold(event)?;
                pending.put_as(ActivityRow::DEF.writing(Write::Replace), &row)?;
            }
        }
        pending.flush(conn, t).await
    }

    /// Folds the batch per activity: a recording and whatever follows it in the same batch
    /// (updates, workout type, race, effort) become one full row, written many rows per
    /// statement. Events on activities recorded in earlier batches go through
    /// [`Projection::apply`]; they touch no pending row, so they need not wait. A deletion or
    /// an erasure may remove pending rows: pending rows are written first, then the event.
    async fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        t: &Tables,
        events: &[Projected<'_>],
    ) -> anyhow::Result<()> {
        let mut pending: Vec<ActivityRow> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for e in events {
            let Some(athlete) = e.recorded.metadata.athlete_id else {
                continue;
            };
            let event = match e.event {
                DomainEvent::Activity(event) => event,
                DomainEvent::Athlete(AthleteEvent::AthleteErased(_)) => {
                    flush(conn, t, &mut pending, &mut index).await?;
                    self.apply(conn, t, e).await?;
                    continue;
                }
                _ => continue,
            };
            let activity_id = &e.recorded.stream.stream_id;
            if let ActivityEvent::ActivityRecorded(r) = event {
                if index.contains_key(activity_id) {
                    // A second recording is a broken log: let the per-event retry skip it.
                    anyhow::bail!("activity {activity_id} recorded twice");
                }
                index.insert(activity_id.clone(), pending.len());
                pending.push(ActivityRow::recorded(
                    activity_id.clone(),
                    athlete.to_string(),
                    r,
                )?);
                continue;
            }
            if let ActivityEvent::ActivityDeleted(_) = event {
                flush(conn, t, &mut pending, &mut index).await?;
                self.apply(conn, t, e).await?;
                continue;
            }
            let Some(&i) = index.get(activity_id) else {
                self.apply(conn, t, e).await?;
                continue;
            };
            let row = &mut pending[i];
            if row.athlete_id != athlete.to_string() {
                // `apply` matches on the owner too: someone else's event changes nothing.
                continue;
            }
            row.fold(event)?;
        }
        flush(conn, t, &mut pending, &mut index).await
    }

    fn order_by(&self, _table: &str) -> &'static str {
        "activity_id"
    }
}

impl ActivityRow {
    fn recorded(
        activity_id: String,
        athlete_id: String,
        r: &domain::activity::ActivityRecorded,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            activity_id,
            athlete_id,
            sport: enum_text(&r.sport)?,
            name: r.name.clone(),
            start_time_us: r.start_time.timestamp_micros(),
            timezone: r.timezone.clone(),
            local_date: local_date(r.start_time, &r.timezone).to_string(),
            distance_m: r.distance_m,
            moving_time_s: r.moving_time_s,
            elapsed_time_s: r.elapsed_time_s,
            avg_hr_bpm: r.avg_hr_bpm,
            max_hr_bpm: r.max_hr_bpm,
            elevation_gain_m: r.elevation_gain_m,
            elevation_loss_m: r.elevation_loss_m,
            source: enum_text(&r.source)?,
            external_id: r.external_id.clone(),
            workout_type: None,
            is_race: 0,
            race_name: None,
            race_official_distance_m: None,
            race_official_time_s: None,
            effort: None,
            leg_feel: None,
            mood_before: None,
            mood_after: None,
            energy_before: None,
            energy_after: None,
            effort_notes: None,
            notes: None,
            laps_json: serde_json::to_string(&r.laps)?,
        })
    }

    /// The effect of a later event on the row (recordings and deletions are handled by the
    /// caller).
    fn fold(&mut self, event: &ActivityEvent) -> anyhow::Result<()> {
        match event {
            // An update cannot clear a value (events.md), so absent fields keep theirs.
            ActivityEvent::ActivityUpdated(u) => {
                if let Some(name) = &u.name {
                    self.name = Some(name.clone());
                }
                if let Some(sport) = &u.sport {
                    self.sport = enum_text(sport)?;
                }
                if let Some(d) = u.distance_m {
                    self.distance_m = Some(d);
                }
                if let Some(m) = u.moving_time_s {
                    self.moving_time_s = m;
                }
                if let Some(hr) = u.avg_hr_bpm {
                    self.avg_hr_bpm = Some(hr);
                }
                if let Some(notes) = &u.notes {
                    self.notes = Some(notes.clone());
                }
            }
            ActivityEvent::WorkoutTypeSet(w) => {
                self.workout_type = Some(enum_text(&w.workout_type)?);
            }
            // The latest marking wins whole: a field it leaves null is unknown now.
            ActivityEvent::MarkedAsRace(m) => {
                self.is_race = 1;
                self.race_name = m.race_name.clone();
                self.race_official_distance_m = m.official_distance_m;
                self.race_official_time_s = m.official_time_s;
            }
            ActivityEvent::PerceivedEffortRemoved(_) => {
                self.effort = None;
                self.leg_feel = None;
                self.mood_before = None;
                self.mood_after = None;
                self.energy_before = None;
                self.energy_after = None;
                self.effort_notes = None;
            }
            ActivityEvent::PerceivedEffortRecorded(p) => {
                self.effort = Some(i64::from(p.effort));
                self.leg_feel = p.leg_feel.map(i64::from);
                self.mood_before = p.mood_before.map(i64::from);
                self.mood_after = p.mood_after.map(i64::from);
                self.energy_before = p.energy_before.map(i64::from);
                self.energy_after = p.energy_after.map(i64::from);
                self.effort_notes = p.notes.clone();
            }
            ActivityEvent::ActivityRecorded(_) | ActivityEvent::ActivityDeleted(_) => {
                anyhow::bail!("recordings and deletions are not folded")
            }
        }
        Ok(())
    }
}

/// Writes the pending rows with multi-row INSERTs. A row whose id already exists fails the
/// batch, as the per-event INSERT would fail the event.
async fn flush(
    conn: &mut AnyConnection,
    t: &Tables,
    pending: &mut Vec<ActivityRow>,
    index: &mut HashMap<String, usize>,
) -> anyhow::Result<()> {
    index.clear();
    let mut rows = Pending::default();
    for row in pending.drain(..) {
        rows.put(&row)?;
    }
    rows.flush(conn, t).await
}

/// The local calendar date of `start` in `timezone` (see [`domain::time::local_date`]).
pub fn local_date(start: DateTime<Utc>, timezone: &str) -> NaiveDate {
    domain::time::local_date(start, timezone)
}

// ---------------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------------

/// What a list can be sorted by. A closed set: each maps to a fixed SQL expression, so no
/// client string ever reaches the ORDER BY.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ActivitySort {
    #[default]
    StartTime,
    Distance,
    /// Moving time, the duration athletes compare.
    Duration,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SortDirection {
    Asc,
    /// Newest, longest or farthest first.
    #[default]
    Desc,
}

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

/// Filters, order and page of [`list`]. Every field is optional; the default is the newest 50.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ActivityQuery {
    /// First local start date included.
    pub from: Option<NaiveDate>,
    /// Last local start date included.
    pub to: Option<NaiveDate>,
    /// Activities without a distance never match a distance bound.
    pub min_distance_m: Option<f64>,
    pub max_distance_m: Option<f64>,
    pub sport: Option<Sport>,
    /// `Some(true)`: races only; `Some(false)`: everything but races.
    pub race: Option<bool>,
    pub sort: ActivitySort,
    pub direction: SortDirection,
    /// 1 to [`MAX_LIMIT`]; [`DEFAULT_LIMIT`] when absent.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page, with the same sort and direction.
    pub cursor: Option<String>,
}

/// A request [`list`] refuses; the API answers these with 400.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ActivityQueryError {
    #[error("malformed cursor: {0}")]
    MalformedCursor(&'static str),
    #[error("limit must be between 1 and {MAX_LIMIT}, got {0}")]
    Limit(u32),
    #[error("{0} must be a finite number of metres")]
    Distance(&'static str),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Race {
    pub name: Option<String>,
    /// The certified course distance, which the recorded distance rarely matches exactly.
    pub official_distance_m: Option<f64>,
    /// Chip or gun time from the results.
    pub official_time_s: Option<f64>,
}

/// The latest perceived-effort rating. `effort` is RPE (1 = rest, 10 = maximal); the others
/// are 1-5 scales, 5 = best, freshest or most.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PerceivedEffort {
    pub effort: u8,
    pub leg_feel: Option<u8>,
    pub mood_before: Option<u8>,
    pub mood_after: Option<u8>,
    pub energy_before: Option<u8>,
    pub energy_after: Option<u8>,
    pub notes: Option<String>,
}

/// One line of the activity list.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActivitySummary {
    pub activity_id: Uuid,
    pub sport: Sport,
    pub name: Option<String>,
    pub start_time: DateTime<Utc>,
    /// See the module documentation for how exact it is.
    pub local_date: NaiveDate,
    pub distance_m: Option<f64>,
    pub moving_time_s: f64,
    pub elapsed_time_s: Option<f64>,
    pub avg_hr_bpm: Option<f64>,
    pub elevation_gain_m: Option<f64>,
    pub workout_type: Option<WorkoutType>,
    /// Present when the activity was marked as a race.
    pub race: Option<Race>,
    /// RPE, 1-10, of the latest perceived-effort rating.
    pub perceived_effort_rpe: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActivityDetail {
    #[serde(flatten)]
    pub summary: ActivitySummary,
    /// IANA zone the athlete was in.
    pub timezone: String,
    pub max_hr_bpm: Option<f64>,
    pub elevation_loss_m: Option<f64>,
    pub source: ActivitySource,
    pub external_id: Option<String>,
    pub perceived_effort: Option<PerceivedEffort>,
    pub notes: Option<String>,
    pub laps: Vec<Lap>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActivityPage {
    pub activities: Vec<ActivitySummary>,
    /// Pass as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// List pages leave the laps out: they can be long, and a summary does not show them.
const NOT_IN_LISTS: &[&str] = &["laps_json"];

/// The athlete's live activities that started within a day of `start` (any zone's local
/// date of it is then in range): the candidates for the same run imported from another file.
pub async fn starting_near(
    pool: &AnyPool,
    t: &Tables,
    athlete: Uuid,
    start: DateTime<Utc>,
) -> anyhow::Result<Vec<ActivitySummary>> {
    let day = start.date_naive();
    let query = ActivityQuery {
        from: day.pred_opt(),
        to: day.succ_opt(),
        limit: Some(MAX_LIMIT),
        ..Default::default()
    };
    Ok(list(pool, t, athlete, &query)
        .await?
        .activities
        .into_iter()
        .filter(|a| (a.start_time - start).num_hours().abs() <= 24)
        .collect())
}

/// One athlete's activities, filtered, sorted and paged by keyset: a page starts strictly after
/// the cursor's (sort key, id), so rows added or removed meanwhile never shift later pages.
pub async fn list(
    pool: &AnyPool,
    t: &Tables,
    athlete: Uuid,
    query: &ActivityQuery,
) -> anyhow::Result<ActivityPage> {
    let limit = checked_limit(query)?;
    let key = SortKey(query.sort);
    let after = query
        .cursor
        .as_deref()
        .map(|c| Cursor::decode(c, query.sort, query.direction))
        .transpose()?;

    let mut sql = Sql::default();
    sql.filter(athlete, query)?;
    let order = match query.direction {
        SortDirection::Asc => "ASC",
        SortDirection::Desc => "DESC",
    };
    if let Some(after) = after {
        sql.after(key, query.direction, after);
    }
    // One more than the page: whether there is a next page.
    let limit_param = sql.param(Value::Int(i64::from(limit) + 1));
    let text = ActivityRow::DEF.select_sql_blanking(
        t,
        NOT_IN_LISTS,
        &format!(
            "WHERE {} ORDER BY {} {order}, activity_id {order} LIMIT {limit_param}",
            sql.conditions.join(" AND "),
            key.sql(),
        ),
    );
    let mut q = sqlx::query_as::<_, ActivityRow>(sqlx::AssertSqlSafe(text));
    for value in sql.params {
        q = match value {
            Value::Int(v) => q.bind(v),
            Value::Float(v) => q.bind(v),
            Value::Text(v) => q.bind(v),
        };
    }
    let rows = q.fetch_all(pool).await?;
    let mut activities = rows
        .iter()
        .map(ActivitySummary::try_from)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let next_cursor = if activities.len() > limit as usize {
        activities.truncate(limit as usize);
        activities
            .last()
            .map(|last| Cursor::after(last, query.sort).encode(query.sort, query.direction))
    } else {
        None
    };
    Ok(ActivityPage {
        activities,
        next_cursor,
    })
}

/// The page size asked for, once the query's numbers are known to be usable.
fn checked_limit(query: &ActivityQuery) -> Result<u32, ActivityQueryError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ActivityQueryError::Limit(limit));
    }
    for (field, value) in [
        ("min_distance_m", query.min_distance_m),
        ("max_distance_m", query.max_distance_m),
    ] {
        if value.is_some_and(|v| !v.is_finite()) {
            return Err(ActivityQueryError::Distance(field));
        }
    }
    Ok(limit)
}

/// One activity of `athlete`; `None` when it does not exist, was deleted or is someone else's.
pub async fn detail(
    pool: &AnyPool,
    t: &Tables,
    athlete: Uuid,
    activity_id: Uuid,
) -> anyhow::Result<Option<ActivityDetail>> {
    let sql = ActivityRow::DEF.select_sql(t, "WHERE athlete_id = $1 AND activity_id = $2");
    let row = sqlx::query_as::<_, ActivityRow>(sqlx::AssertSqlSafe(sql))
        .bind(athlete.to_string())
        .bind(activity_id.to_string())
        .fetch_optional(pool)
        .await?;
    row.map(ActivityDetail::try_from).transpose()
}

impl TryFrom<ActivityRow> for ActivityDetail {
    type Error = anyhow::Error;
    fn try_from(r: ActivityRow) -> anyhow::Result<Self> {
        let perceived_effort = match small("effort", r.effort)? {
            Some(effort) => Some(PerceivedEffort {
                effort,
                leg_feel: small("leg_feel", r.leg_feel)?,
                mood_before: small("mood_before", r.mood_before)?,
                mood_after: small("mood_after", r.mood_after)?,
                energy_before: small("energy_before", r.energy_before)?,
                energy_after: small("energy_after", r.energy_after)?,
                notes: r.effort_notes.clone(),
            }),
            None => None,
        };
        Ok(ActivityDetail {
            summary: ActivitySummary::try_from(&r)?,
            perceived_effort,
            laps: serde_json::from_str(&r.laps_json)?,
            source: text_enum(r.source)?,
            timezone: r.timezone,
            max_hr_bpm: r.max_hr_bpm,
            elevation_loss_m: r.elevation_loss_m,
            external_id: r.external_id,
            notes: r.notes,
        })
    }
}

impl TryFrom<&ActivityRow> for ActivitySummary {
    type Error = anyhow::Error;
    fn try_from(r: &ActivityRow) -> anyhow::Result<Self> {
        let race = match r.is_race {
            0 => None,
            _ => Some(Race {
                name: r.race_name.clone(),
                official_distance_m: r.race_official_distance_m,
                official_time_s: r.race_official_time_s,
            }),
        };
        let start_us = r.start_time_us;
        Ok(ActivitySummary {
            activity_id: r.activity_id.parse()?,
            sport: text_enum(r.sport.clone())?,
            name: r.name.clone(),
            start_time: DateTime::from_timestamp_micros(start_us)
                .ok_or_else(|| anyhow::anyhow!("start time {start_us} µs is out of range"))?,
            local_date: r.local_date.parse()?,
            distance_m: r.distance_m,
            moving_time_s: r.moving_time_s,
            elapsed_time_s: r.elapsed_time_s,
            avg_hr_bpm: r.avg_hr_bpm,
            elevation_gain_m: r.elevation_gain_m,
            workout_type: r.workout_type.clone().map(text_enum).transpose()?,
            race,
            perceived_effort_rpe: small("effort", r.effort)?,
        })
    }
}

fn small(column: &str, v: Option<i64>) -> anyhow::Result<Option<u8>> {
    v.map(|v| u8::try_from(v).map_err(|_| anyhow::anyhow!("{column} = {v} is not a 1-10 scale")))
        .transpose()
}

/// The SQL of a sort key. Activities without a distance sort as 0 m: keyset comparisons need a
/// value, and NULL compares as neither smaller nor larger.
#[derive(Clone, Copy)]
struct SortKey(ActivitySort);

impl SortKey {
    fn sql(self) -> &'static str {
        match self.0 {
            ActivitySort::StartTime => "start_time_us",
            ActivitySort::Distance => "COALESCE(distance_m, 0)",
            ActivitySort::Duration => "moving_time_s",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Int(i64),
    Float(f64),
    Text(String),
}

/// A WHERE clause assembled from fixed fragments; values only ever travel as parameters.
#[derive(Default)]
struct Sql {
    conditions: Vec<String>,
    params: Vec<Value>,
}

impl Sql {
    fn param(&mut self, value: Value) -> String {
        self.params.push(value);
        format!("${}", self.params.len())
    }

    fn and(&mut self, condition: String) {
        self.conditions.push(condition);
    }

    /// The athlete's rows that pass the query's filters.
    fn filter(&mut self, athlete: Uuid, query: &ActivityQuery) -> anyhow::Result<()> {
        let athlete_param = self.param(Value::Text(athlete.to_string()));
        self.and(format!("athlete_id = {athlete_param}"));
        if let Some(from) = query.from {
            let p = self.param(Value::Text(from.to_string()));
            self.and(format!("local_date >= {p}"));
        }
        if let Some(to) = query.to {
            let p = self.param(Value::Text(to.to_string()));
            self.and(format!("local_date <= {p}"));
        }
        if let Some(min) = query.min_distance_m {
            let p = self.param(Value::Float(min));
            self.and(format!("distance_m >= {p}"));
        }
        if let Some(max) = query.max_distance_m {
            let p = self.param(Value::Float(max));
            self.and(format!("distance_m <= {p}"));
        }
        if let Some(sport) = query.sport {
            let p = self.param(Value::Text(enum_text(&sport)?));
            self.and(format!("sport = {p}"));
        }
        if let Some(race) = query.race {
            let p = self.param(Value::Int(i64::from(race)));
            self.and(format!("is_race = {p}"));
        }
        Ok(())
    }

    /// The rows strictly after the cursor's (sort key, id) in the page's direction.
    fn after(&mut self, key: SortKey, direction: SortDirection, after: Cursor) {
        let cmp = match direction {
            SortDirection::Asc => ">",
            SortDirection::Desc => "<",
        };
        let k = self.param(after.key);
        let id = self.param(Value::Text(after.activity_id.to_string()));
        let expr = key.sql();
        self.and(format!(
            "({expr} {cmp} {k} OR ({expr} = {k} AND activity_id {cmp} {id}))"
        ));
    }
}

/// Where the previous page ended. Encoded as hex of `v1|sort|direction|key|id` so clients treat
/// it as opaque; sort and direction travel along so a cursor cannot silently page a different
/// order. Float keys are written in Rust's shortest round-trip form, so equality in the keyset
/// condition compares the exact stored value.
#[derive(Debug, Clone, PartialEq)]
struct Cursor {
    key: Value,
    activity_id: Uuid,
}

impl Cursor {
    fn after(last: &ActivitySummary, sort: ActivitySort) -> Self {
        let key = match sort {
            ActivitySort::StartTime => Value::Int(last.start_time.timestamp_micros()),
            ActivitySort::Distance => Value::Float(last.distance_m.unwrap_or(0.0)),
            ActivitySort::Duration => Value::Float(last.moving_time_s),
        };
        Self {
            key,
            activity_id: last.activity_id,
        }
    }

    fn encode(&self, sort: ActivitySort, direction: SortDirection) -> String {
        let key = match &self.key {
            Value::Int(v) => v.to_string(),
            Value::Float(v) => v.to_string(),
            Value::Text(v) => v.clone(),
        };
        let plain = format!(
            "v1|{}|{}|{key}|{}",
            sort_code(sort),
            direction_code(direction),
            self.activity_id
        );
        plain.bytes().map(|b| format!("{b:02x}")).collect()
    }

    fn decode(
        cursor: &str,
        sort: ActivitySort,
        direction: SortDirection,
    ) -> Result<Self, ActivityQueryError> {
        use ActivityQueryError::MalformedCursor as Bad;
        if !cursor.len().is_multiple_of(2) || cursor.len() > 256 {
            return Err(Bad("not a cursor this API issued"));
        }
        let bytes = (0..cursor.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(cursor.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()
            .ok_or(Bad("not a cursor this API issued"))?;
        let plain = String::from_utf8(bytes).map_err(|_| Bad("not a cursor this API issued"))?;
        let parts: Vec<&str> = plain.split('|').collect();
        let [version, s, d, key, id] = parts[..] else {
            return Err(Bad("not a cursor this API issued"));
        };
        if version != "v1" {
            return Err(Bad("not a cursor this API issued"));
        }
        if s != sort_code(sort) || d != direction_code(direction) {
            return Err(Bad(
                "it was issued for a different sort order; start again without a cursor",
            ));
        }
        let key = match sort {
            ActivitySort::StartTime => Value::Int(key.parse().map_err(|_| Bad("bad sort key"))?),
            ActivitySort::Distance | ActivitySort::Duration => {
                let v: f64 = key.parse().map_err(|_| Bad("bad sort key"))?;
                if !v.is_finite() {
                    return Err(Bad("bad sort key"));
                }
                Value::Float(v)
            }
        };
        let activity_id = id.parse().map_err(|_| Bad("bad activity id"))?;
        Ok(Self { key, activity_id })
    }
}

fn sort_code(sort: ActivitySort) -> &'static str {
    match sort {
        ActivitySort::StartTime => "start",
        ActivitySort::Distance => "distance",
        ActivitySort::Duration => "duration",
    }
}

fn direction_code(direction: SortDirection) -> &'static str {
    match direction {
        SortDirection::Asc => "asc",
        SortDirection::Desc => "desc",
    }
}

/// A unit enum's serde name (`trail_run`), the form events.md documents and the table stores.
pub(crate) fn enum_text<T: Serialize>(value: &T) -> anyhow::Result<String> {
    match serde_json::to_value(value)? {
        serde_json::Value::String(s) => Ok(s),
        other => anyhow::bail!("expected a unit enum, got {other}"),
    }
}

pub(crate) fn text_enum<T: DeserializeOwned>(text: String) -> anyhow::Result<T> {
    Ok(serde_json::from_value(serde_json::Value::String(text))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn local_dates_follow_the_athletes_zone() {
        let late = Utc.with_ymd_and_hms(2026, 11, 20, 22, 30, 0).unwrap();
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(local_date(late, "UTC"), day(2026, 11, 20));
        assert_eq!(local_date(late, "Etc/GMT-3"), day(2026, 11, 21));
        assert_eq!(local_date(late, "Etc/GMT+12"), day(2026, 11, 20));
        let early = Utc.with_ymd_and_hms(2026, 11, 20, 1, 0, 0).unwrap();
        assert_eq!(local_date(early, "Etc/GMT+5"), day(2026, 11, 19));
        // Sydney is UTC+11 in November (daylight saving).
        assert_eq!(local_date(late, "Australia/Sydney"), day(2026, 11, 21));
        assert_eq!(local_date(late, "Etc/GMT-15"), day(2026, 11, 20));
    }

    #[test]
    fn cursors_round_trip_and_refuse_other_orders() {
        let cursor = Cursor {
            key: Value::Float(10_000.1),
            activity_id: Uuid::from_u128(7),
        };
        let text = cursor.encode(ActivitySort::Distance, SortDirection::Desc);
        assert_eq!(
            Cursor::decode(&text, ActivitySort::Distance, SortDirection::Desc),
            Ok(cursor)
        );
        assert!(matches!(
            Cursor::decode(&text, ActivitySort::Distance, SortDirection::Asc),
            Err(ActivityQueryError::MalformedCursor(m)) if m.contains("different sort")
        ));
        for bad in ["", "zz", "abc", "7631", "v1|distance|desc|1|x"] {
            assert!(
                Cursor::decode(bad, ActivitySort::Distance, SortDirection::Desc).is_err(),
                "{bad:?}"
            );
        }
    }
}

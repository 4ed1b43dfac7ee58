//! Product metrics for administrators: sign-ups per day, athletes active per day and per ISO
//! week, events per type per day, and the share of athletes logging each kind of data.
//!
//! Everything here comes from event metadata and event types, never from payloads. Payloads are
//! shredded on erasure, and a metric that read them would change when the log is replayed after
//! an erasure; metadata stays readable, so a rebuild gives the live numbers exactly. Days are
//! the UTC date the event was recorded (`recorded_at`): the athlete's own zone lives in an
//! encrypted payload.
//!
//! Erasure drops the athlete's per-athlete rows (who was active when, who logged what, the
//! registration). The aggregate counts (events per type, active athletes per day and week)
//! stay: they hold no personal data, and history should not change when someone leaves. The
//! erased athlete's id is kept, like the audit log keeps it, so an event that reaches the log
//! after the erasure (an append that raced with it) cannot bring the rows back.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::{Datelike, Duration, NaiveDate};
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, AnyPool};

use crate::engine::{Projected, Projection, Tables};
use crate::read_model_table;
use crate::table::{Pending, Placeholders, Table};

pub struct AdminMetricsProjection;

read_model_table! {
    /// Events appended per UTC day and type.
    pub struct EventCountRow in "event_counts", key 2, Add {
        day: String,
        event_type: String,
        events: i64,
    }
}

read_model_table! {
    /// Distinct athletes per day, counted as their first sighting of the day is recorded.
    pub struct ActiveDayRow in "active_days", key 1, Add {
        day: String,
        athletes: i64,
    }
}

read_model_table! {
    pub struct ActiveWeekRow in "active_weeks", key 1, Add {
        iso_week: String,
        week_start: String,
        athletes: i64,
    }
}

read_model_table! {
    /// Registered and not erased: the denominator of the logging shares. The first
    /// registration's day stays.
    pub struct AthleteRow in "athletes", key 1, Keep {
        athlete_id: String,
        registered_day: String,
    }
}

read_model_table! {
    /// First sighting of an athlete in a day or week: what makes the counters distinct.
    pub struct AthleteDayRow in "athlete_days", key 2, Keep {
        athlete_id: String,
        day: String,
    }
}

read_model_table! {
    pub struct AthleteWeekRow in "athlete_weeks", key 2, Keep {
        athlete_id: String,
        iso_week: String,
    }
}

read_model_table! {
    pub struct AthleteKindRow in "athlete_kinds", key 2, Keep {
        athlete_id: String,
        kind: String,
    }
}

read_model_table! {
    pub struct ErasedAthleteRow in "erased_athletes", key 1, Keep {
        athlete_id: String,
    }
}

/// The kinds of data whose adoption [`logging_shares`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataKind {
    Activities,
    CheckIns,
    Nutrition,
    Work,
    BodyComposition,
    PerceivedEffort,
}

impl DataKind {
    pub const ALL: [DataKind; 6] = [
        Self::Activities,
        Self::CheckIns,
        Self::Nutrition,
        Self::Work,
        Self::BodyComposition,
        Self::PerceivedEffort,
    ];

    /// The event that means "the athlete logged this kind of data". Corrections and deletions
    /// do not count: they follow a logging event.
    fn of(stream_type: &str, event_type: &str) -> Option<Self> {
        Some(match (stream_type, event_type) {
            ("activity", "ActivityRecorded") => Self::Activities,
            ("activity", "PerceivedEffortRecorded") => Self::PerceivedEffort,
            ("journal", "DailyCheckInLogged") => Self::CheckIns,
            ("journal", "NutritionEntryLogged") => Self::Nutrition,
            ("journal", "WorkPatternLogged") => Self::Work,
            ("journal", "BodyCompositionLogged") => Self::BodyComposition,
            _ => return None,
        })
    }

    fn code(self) -> &'static str {
        match self {
            Self::Activities => "activities",
            Self::CheckIns => "check_ins",
            Self::Nutrition => "nutrition",
            Self::Work => "work",
            Self::BodyComposition => "body_composition",
            Self::PerceivedEffort => "perceived_effort",
        }
    }
}

/// `2026-W47` and the Monday that starts it. The text sorts in time order within and across
/// ISO years.
fn iso_week(day: NaiveDate) -> (String, NaiveDate) {
    let week = day.iso_week();
    (
        format!("{}-W{:02}", week.year(), week.week()),
        monday_of(day),
    )
}

fn monday_of(day: NaiveDate) -> NaiveDate {
    day - Duration::days(i64::from(day.weekday().num_days_from_monday()))
}

#[async_trait::async_trait]
impl Projection for AdminMetricsProjection {
    fn name(&self) -> &'static str {
        "admin_metrics"
    }

    fn version(&self) -> i64 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            EventCountRow::DEF.base,
            ActiveDayRow::DEF.base,
            ActiveWeekRow::DEF.base,
            AthleteRow::DEF.base,
            AthleteDayRow::DEF.base,
            AthleteWeekRow::DEF.base,
            AthleteKindRow::DEF.base,
            ErasedAthleteRow::DEF.base,
        ]
    }

    fn schema(&self, t: &Tables) -> Vec<String> {
        let active_weeks = t.table(ActiveWeekRow::DEF.base);
        vec![
            EventCountRow::DEF.create_sql(t),
            ActiveDayRow::DEF.create_sql(t),
            ActiveWeekRow::DEF.create_sql(t),
            format!("CREATE INDEX {active_weeks}_start ON {active_weeks} (week_start)"),
            AthleteRow::DEF.create_sql(t),
            AthleteDayRow::DEF.create_sql(t),
            AthleteWeekRow::DEF.create_sql(t),
            AthleteKindRow::DEF.create_sql(t),
            ErasedAthleteRow::DEF.create_sql(t),
        ]
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        t: &Tables,
        e: &Projected<'_>,
    ) -> anyhow::Result<()> {
        self.apply_batch(conn, t, std::slice::from_ref(e)).await
    }

    /// Pre-aggregates the batch in memory: counters become one delta per key, "first
    /// sighting" rows become insert-if-absent multi-row statements whose `RETURNING` tells
    /// which sightings were new, and those become the active-day and -week deltas. Only an
    /// erasure depends on order (it deletes what came before and blocks what comes after), so
    /// it writes the pending work first.
    async fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        t: &Tables,
        events: &[Projected<'_>],
    ) -> anyhow::Result<()> {
        let mut erased = erased_among(conn, t, events).await?;
        let mut pending = Batch::default();
        for e in events {
            let r = e.recorded;
            let day = r.recorded_at.date_naive();
            pending.rows.put(&EventCountRow {
                day: day.to_string(),
                event_type: r.event_type.clone(),
                events: 1,
            })?;
            let Some(athlete) = r.metadata.athlete_id else {
                continue;
            };
            let athlete = athlete.to_string();
            if erased.contains(&athlete) {
                continue;
            }
            let stream_type = r.stream.stream_type.as_str();
            if (stream_type, r.event_type.as_str()) == ("athlete", "AthleteRegistered") {
                pending.rows.put(&AthleteRow {
                    athlete_id: athlete.clone(),
                    registered_day: day.to_string(),
                })?;
            }
            let (week, week_start) = iso_week(day);
            pending.days.insert((athlete.clone(), day.to_string()));
            pending
                .weeks
                .insert((athlete.clone(), week), week_start.to_string());
            if let Some(kind) = DataKind::of(stream_type, &r.event_type) {
                pending.rows.put(&AthleteKindRow {
                    athlete_id: athlete.clone(),
                    kind: kind.code().to_string(),
                })?;
            }
            // Matched by type, not by decoding: this projection must not depend on payloads.
            // The erasure is itself a sighting of the athlete, counted before their rows go.
            if (stream_type, r.event_type.as_str()) == ("athlete", "AthleteErased") {
                pending.flush(conn, t).await?;
                erase(conn, t, &athlete).await?;
                pending.rows.put(&ErasedAthleteRow {
                    athlete_id: athlete.clone(),
                })?;
                erased.insert(athlete);
            }
        }
        pending.flush(conn, t).await
    }

    fn order_by(&self, table: &str) -> &'static str {
        match table {
            "event_counts" => "day, event_type",
            "active_days" => "day",
            "active_weeks" => "iso_week",
            "athlete_days" => "athlete_id, day",
            "athlete_weeks" => "athlete_id, iso_week",
            "athlete_kinds" => "athlete_id, kind",
            _ => "athlete_id",
        }
    }

    /// Metadata is all it reads, so an event in a format this build cannot decode still counts.
    fn needs_payload(&self) -> bool {
        false
    }
}

/// Rows per multi-row statement: well inside both stores' parameter limits.
const CHUNK: usize = 400;

/// The erased athletes among the batch's (the table only grows, and may grow large).
async fn erased_among(
    conn: &mut AnyConnection,
    t: &Tables,
    events: &[Projected<'_>],
) -> anyhow::Result<HashSet<String>> {
    let athletes: Vec<String> = events
        .iter()
        .filter_map(|e| e.recorded.metadata.athlete_id.map(|a| a.to_string()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut erased = HashSet::new();
    for chunk in athletes.chunks(CHUNK) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!(
            "SELECT athlete_id FROM {} WHERE athlete_id IN ({})",
            t.table(ErasedAthleteRow::DEF.base),
            placeholders.join(", ")
        )));
        for athlete in chunk {
            q = q.bind(athlete.clone());
        }
        erased.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(erased)
}

/// Drops the athlete's per-athlete rows; the aggregate counts stay (see the module comment).
async fn erase(conn: &mut AnyConnection, t: &Tables, athlete: &str) -> anyhow::Result<()> {
    for base in [
        AthleteRow::DEF.base,
        AthleteDayRow::DEF.base,
        AthleteWeekRow::DEF.base,
        AthleteKindRow::DEF.base,
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {} WHERE athlete_id = $1",
            t.table(base)
        )))
        .bind(athlete)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// What a batch has seen since the last flush. Counters, registrations and kinds are pending
/// rows, one per key; the day and week sightings are kept apart, because whether each was new
/// (and so counts as an active athlete) is known only once it is inserted.
#[derive(Default)]
struct Batch {
    rows: Pending,
    /// (athlete, day).
    days: BTreeSet<(String, String)>,
    /// (athlete, ISO week) -> week start.
    weeks: BTreeMap<(String, String), String>,
}

impl Batch {
    async fn flush(&mut self, conn: &mut AnyConnection, t: &Tables) -> anyhow::Result<()> {
        // First sightings: `RETURNING` yields only the rows actually inserted, i.e. the
        // athletes not yet counted for that day.
        let days: Vec<_> = std::mem::take(&mut self.days).into_iter().collect();
        for chunk in days.chunks(CHUNK) {
            let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {} ({}) VALUES {} ON CONFLICT ({}) DO NOTHING RETURNING day",
                t.table(AthleteDayRow::DEF.base),
                AthleteDayRow::DEF.column_list(),
                values(chunk.len(), 2, Placeholders::of(conn)),
                AthleteDayRow::DEF.key_columns().join(", "),
            )));
            for (athlete, day) in chunk {
                q = q.bind(athlete.clone()).bind(day.clone());
            }
            for day in q.fetch_all(&mut *conn).await? {
                self.rows.put(&ActiveDayRow { day, athletes: 1 })?;
            }
        }

        let weeks: Vec<_> = std::mem::take(&mut self.weeks).into_iter().collect();
        let mut starts: BTreeMap<String, String> = BTreeMap::new();
        for chunk in weeks.chunks(CHUNK) {
            let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {} ({}) VALUES {} ON CONFLICT ({}) DO NOTHING RETURNING iso_week",
                t.table(AthleteWeekRow::DEF.base),
                AthleteWeekRow::DEF.column_list(),
                values(chunk.len(), 2, Placeholders::of(conn)),
                AthleteWeekRow::DEF.key_columns().join(", "),
            )));
            for ((athlete, week), start) in chunk {
                q = q.bind(athlete.clone()).bind(week.clone());
                starts.insert(week.clone(), start.clone());
            }
            for iso_week in q.fetch_all(&mut *conn).await? {
                let week_start = starts.get(&iso_week).cloned().unwrap_or_default();
                self.rows.put(&ActiveWeekRow {
                    iso_week,
                    week_start,
                    athletes: 1,
                })?;
            }
        }
        self.rows.flush(conn, t).await
    }
}

/// `($1, $2), ($3, $4), …`: `rows` tuples of `columns` placeholders.
pub(crate) fn values(rows: usize, columns: usize, placeholders: Placeholders) -> String {
    let mut sql = String::new();
    placeholders.rows(&mut sql, rows, columns);
    sql
}

// ---------------------------------------------------------------------------------------------
// Queries. Ranges are inclusive UTC dates; days (or weeks) with nothing to count are absent.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DailySignups {
    pub date: NaiveDate,
    pub signups: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DailyActiveAthletes {
    pub date: NaiveDate,
    pub active_athletes: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeeklyActiveAthletes {
    /// `2026-W47`.
    pub iso_week: String,
    pub week_start: NaiveDate,
    pub active_athletes: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DailyEventCount {
    pub date: NaiveDate,
    pub event_type: String,
    pub events: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoggingShare {
    pub kind: DataKind,
    /// Registered, not erased athletes with at least one such event.
    pub athletes_logging: i64,
    /// `athletes_logging / registered_athletes`, 0.0 to 1.0 (0.0 with no athletes).
    pub share_fraction: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoggingShares {
    pub registered_athletes: i64,
    /// One per [`DataKind`], in [`DataKind::ALL`] order.
    pub shares: Vec<LoggingShare>,
}

/// Accounts created per day (erased ones included: the sign-up happened).
pub async fn signups(
    pool: &AnyPool,
    t: &Tables,
    from: NaiveDate,
    to: NaiveDate,
) -> anyhow::Result<Vec<DailySignups>> {
    let sql = EventCountRow::DEF.select_sql(
        t,
        "WHERE event_type = 'AthleteRegistered' AND day >= $1 AND day <= $2 ORDER BY day",
    );
    let rows = sqlx::query_as::<_, EventCountRow>(sqlx::AssertSqlSafe(sql))
        .bind(from.to_string())
        .bind(to.to_string())
        .fetch_all(pool)
        .await?;
    rows.into_iter()
        .map(|r| {
            Ok(DailySignups {
                date: r.day.parse()?,
                signups: r.events,
            })
        })
        .collect()
}

/// Distinct athletes with at least one event recorded that day.
pub async fn active_athletes_daily(
    pool: &AnyPool,
    t: &Tables,
    from: NaiveDate,
    to: NaiveDate,
) -> anyhow::Result<Vec<DailyActiveAthletes>> {
    let sql = ActiveDayRow::DEF.select_sql(t, "WHERE day >= $1 AND day <= $2 ORDER BY day");
    let rows = sqlx::query_as::<_, ActiveDayRow>(sqlx::AssertSqlSafe(sql))
        .bind(from.to_string())
        .bind(to.to_string())
        .fetch_all(pool)
        .await?;
    rows.into_iter()
        .map(|r| {
            Ok(DailyActiveAthletes {
                date: r.day.parse()?,
                active_athletes: r.athletes,
            })
        })
        .collect()
}

/// Distinct athletes per ISO week (Monday to Sunday, UTC), for every week that overlaps
/// `from..=to`.
pub async fn active_athletes_weekly(
    pool: &AnyPool,
    t: &Tables,
    from: NaiveDate,
    to: NaiveDate,
) -> anyhow::Result<Vec<WeeklyActiveAthletes>> {
    let sql = ActiveWeekRow::DEF.select_sql(
        t,
        "WHERE week_start >= $1 AND week_start <= $2 ORDER BY week_start",
    );
    let rows = sqlx::query_as::<_, ActiveWeekRow>(sqlx::AssertSqlSafe(sql))
        .bind(monday_of(from).to_string())
        .bind(to.to_string())
        .fetch_all(pool)
        .await?;
    rows.into_iter()
        .map(|r| {
            Ok(WeeklyActiveAthletes {
                week_start: r.week_start.parse()?,
                iso_week: r.iso_week,
                active_athletes: r.athletes,
            })
        })
        .collect()
}

/// Events appended per type per day, by day then type.
pub async fn events_per_type(
    pool: &AnyPool,
    t: &Tables,
    from: NaiveDate,
    to: NaiveDate,
) -> anyhow::Result<Vec<DailyEventCount>> {
    let sql =
        EventCountRow::DEF.select_sql(t, "WHERE day >= $1 AND day <= $2 ORDER BY day, event_type");
    let rows = sqlx::query_as::<_, EventCountRow>(sqlx::AssertSqlSafe(sql))
        .bind(from.to_string())
        .bind(to.to_string())
        .fetch_all(pool)
        .await?;
    rows.into_iter()
        .map(|r| {
            Ok(DailyEventCount {
                date: r.day.parse()?,
                event_type: r.event_type,
                events: r.events,
            })
        })
        .collect()
}

/// Athletes per kind of data, as [`logging_shares`] counts them.
#[derive(sqlx::FromRow)]
struct KindCount {
    kind: String,
    athletes: i64,
}

/// For each kind of data, the share of registered, not erased athletes who ever logged it.
/// Athletes whose events carry no registration (imports, tests) are in neither count.
pub async fn logging_shares(pool: &AnyPool, t: &Tables) -> anyhow::Result<LoggingShares> {
    let athletes = t.table(AthleteRow::DEF.base);
    let registered: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT CAST(count(*) AS BIGINT) FROM {athletes}"
    )))
    .fetch_one(pool)
    .await?;
    let rows = sqlx::query_as::<_, KindCount>(sqlx::AssertSqlSafe(format!(
        "SELECT k.kind AS kind, CAST(count(*) AS BIGINT) AS athletes \
         FROM {} k JOIN {athletes} a ON a.athlete_id = k.athlete_id GROUP BY k.kind",
        t.table(AthleteKindRow::DEF.base)
    )))
    .fetch_all(pool)
    .await?;
    let counts: std::collections::HashMap<String, i64> =
        rows.into_iter().map(|r| (r.kind, r.athletes)).collect();
    let shares = DataKind::ALL
        .iter()
        .map(|&kind| {
            let athletes_logging = counts.get(kind.code()).copied().unwrap_or(0);
            LoggingShare {
                kind,
                athletes_logging,
                share_fraction: if registered == 0 {
                    0.0
                } else {
                    athletes_logging as f64 / registered as f64
                },
            }
        })
        .collect();
    Ok(LoggingShares {
        registered_athletes: registered,
        shares,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_weeks_cross_years_and_sort_as_text() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        // 2026-12-31 is a Thursday in week 53 of 2026; 2027-01-04 opens 2027-W01.
        assert_eq!(
            iso_week(day(2026, 12, 31)),
            ("2026-W53".to_string(), day(2026, 12, 28))
        );
        assert_eq!(
            iso_week(day(2027, 1, 3)),
            ("2026-W53".to_string(), day(2026, 12, 28))
        );
        assert_eq!(
            iso_week(day(2027, 1, 4)),
            ("2027-W01".to_string(), day(2027, 1, 4))
        );
        assert_eq!(iso_week(day(2026, 11, 20)).0, "2026-W47");
        assert!(iso_week(day(2026, 3, 2)).0 < iso_week(day(2026, 11, 20)).0);
    }

    #[test]
    fn each_kind_has_one_logging_event() {
        assert_eq!(
            DataKind::of("journal", "DailyCheckInLogged"),
            Some(DataKind::CheckIns)
        );
        assert_eq!(DataKind::of("journal", "NutritionEntryDeleted"), None);
        assert_eq!(DataKind::of("athlete", "ActivityRecorded"), None);
        for kind in DataKind::ALL {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::from(kind.code())
            );
        }
    }
}

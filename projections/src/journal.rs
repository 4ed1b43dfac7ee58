//! The athlete's daily journal: check-ins, nutrition, work, body composition and insight
//! feedback, by day. Every value is personal, so an erasure deletes every row of the athlete.

use std::collections::BTreeMap;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use domain::athlete::AthleteEvent;
use domain::journal::{
    CheckInValues, DailyCheckInLogged, JournalEvent, NutritionEntryType, WorkType,
};
use sqlx::{AnyConnection, AnyPool};
use uuid::Uuid;

use crate::decode::DomainEvent;
use crate::engine::{Projected, Projection, Tables};
use crate::profile::{code, from_code, instant, uuid};
use crate::read_model_table;
use crate::table::{Cell, Pending, Table};

pub struct JournalProjection;

read_model_table! {
    /// Check-in, work and body composition are one-per-day facts: (athlete, date) is the key
    /// and the latest event replaces the whole row.
    pub struct CheckInRow in "check_ins", key 2, Replace {
        athlete_id: String,
        date: String,
        sleep_h: Option<f64>,
        sleep_quality: Option<i64>,
        hrv_ms: Option<f64>,
        resting_hr_bpm: Option<f64>,
        stress: Option<i64>,
        soreness: Option<i64>,
        readiness: Option<i64>,
        notes: Option<String>,
        recorded_at_us: i64,
    }
}

read_model_table! {
    /// The journal aggregate checks entry ids within one day's stream only, so the date is part
    /// of the key: the same id on two days is two entries. An update replaces every value.
    pub struct NutritionRow in "nutrition", key 3, Replace {
        athlete_id: String,
        date: String,
        entry_id: String,
        entry_type: String,
        activity_id: Option<String>,
        calories_kcal: Option<f64>,
        protein_g: Option<f64>,
        carbohydrate_g: Option<f64>,
        fat_g: Option<f64>,
        fibre_g: Option<f64>,
        caffeine_mg: Option<f64>,
        notes: Option<String>,
        logged_at_us: i64,
    }
}

read_model_table! {
    pub struct WorkRow in "work", key 2, Replace {
        athlete_id: String,
        date: String,
        work_type: String,
        hours_worked_h: Option<f64>,
        stress: Option<i64>,
        notes: Option<String>,
        recorded_at_us: i64,
    }
}

read_model_table! {
    pub struct BodyRow in "body", key 2, Replace {
        athlete_id: String,
        date: String,
        weight_kg: Option<f64>,
        body_fat_pct: Option<f64>,
        muscle_mass_kg: Option<f64>,
        bmi_kg_m2: Option<f64>,
        notes: Option<String>,
        recorded_at_us: i64,
    }
}

read_model_table! {
    /// Feedback accumulates, so each event is a row; its log position is the one key a rebuild
    /// reproduces exactly.
    pub struct FeedbackRow in "feedback", key 1, Insert {
        position: i64,
        athlete_id: String,
        date: String,
        insight_id: String,
        helpful: i64,
        notes: Option<String>,
        recorded_at_us: i64,
    }
}

read_model_table! {
    /// Kept beside the rows so the per-insight counts are one indexed read, however long the
    /// athlete has been giving feedback.
    pub struct FeedbackCountRow in "feedback_counts", key 2, Add {
        athlete_id: String,
        insight_id: String,
        helpful_count: i64,
        not_helpful_count: i64,
    }
}

const TABLES: &[&str] = &[
    CheckInRow::DEF.base,
    NutritionRow::DEF.base,
    WorkRow::DEF.base,
    BodyRow::DEF.base,
    FeedbackRow::DEF.base,
    FeedbackCountRow::DEF.base,
];

#[async_trait::async_trait]
impl Projection for JournalProjection {
    fn name(&self) -> &'static str {
        "journal"
    }

    fn version(&self) -> i64 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        TABLES
    }

    fn schema(&self, t: &Tables) -> Vec<String> {
        let feedback = t.table(FeedbackRow::DEF.base);
        vec![
            CheckInRow::DEF.create_sql(t),
            NutritionRow::DEF.create_sql(t),
            WorkRow::DEF.create_sql(t),
            BodyRow::DEF.create_sql(t),
            FeedbackRow::DEF.create_sql(t),
            format!("CREATE INDEX {feedback}_day ON {feedback} (athlete_id, date)"),
            FeedbackCountRow::DEF.create_sql(t),
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

    /// Folds the batch into one pending write per row key and writes them with multi-row
    /// statements: one-per-day facts and nutrition entries keep the last value of their key (a
    /// deletion replaces a pending upsert), feedback rows are inserted as they come and the
    /// per-insight counts are added up first and added to the stored ones. An erasure writes
    /// everything pending, then deletes the athlete's rows.
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
            match e.event {
                DomainEvent::Journal(event) => fold(&mut pending, &athlete.to_string(), e, event)?,
                DomainEvent::Athlete(AthleteEvent::AthleteErased(_)) => {
                    pending.flush(conn, t).await?;
                    erase(conn, t, athlete).await?;
                }
                _ => {}
            }
        }
        pending.flush(conn, t).await
    }

    fn order_by(&self, table: &str) -> &'static str {
        match table {
            "nutrition" => "athlete_id, date, entry_id",
            "feedback" => "position",
            "feedback_counts" => "athlete_id, insight_id",
            _ => "athlete_id, date",
        }
    }
}

async fn erase(conn: &mut AnyConnection, t: &Tables, athlete: Uuid) -> anyhow::Result<()> {
    for base in TABLES {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {} WHERE athlete_id = $1",
            t.table(base)
        )))
        .bind(athlete.to_string())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The row of a logged or updated nutrition entry: two event types with the same fields.
macro_rules! nutrition_row {
    ($athlete_id:expr, $n:expr) => {
        NutritionRow {
            athlete_id: $athlete_id,
            date: $n.date.to_string(),
            entry_id: $n.entry_id.to_string(),
            entry_type: code(&$n.entry_type)?,
            activity_id: $n.activity_id.map(|a| a.to_string()),
            calories_kcal: $n.calories_kcal,
            protein_g: $n.protein_g,
            carbohydrate_g: $n.carbohydrate_g,
            fat_g: $n.fat_g,
            fibre_g: $n.fibre_g,
            caffeine_mg: $n.caffeine_mg,
            notes: $n.notes.clone(),
            logged_at_us: $n.logged_at.timestamp_micros(),
        }
    };
}

/// The rows one journal event writes, as pending operations.
fn fold(
    pending: &mut Pending,
    athlete: &str,
    e: &Projected<'_>,
    event: &JournalEvent,
) -> anyhow::Result<()> {
    let recorded_at_us = e.recorded.recorded_at.timestamp_micros();
    let small = |v: Option<u8>| v.map(i64::from);
    let athlete_id = athlete.to_string();
    match event {
        JournalEvent::DailyCheckInLogged(c) => {
            pending.put(&CheckInRow::of(athlete_id, c, recorded_at_us))
        }
        // Logged and updated entries carry the same values, and an update replaces all of them.
        JournalEvent::NutritionEntryLogged(n) => pending.put(&nutrition_row!(athlete_id, n)),
        JournalEvent::NutritionEntryUpdated(n) => pending.put(&nutrition_row!(athlete_id, n)),
        JournalEvent::NutritionEntryDeleted(d) => {
            pending.delete::<NutritionRow>(vec![
                Cell::Text(Some(athlete_id)),
                Cell::Text(Some(d.date.to_string())),
                Cell::Text(Some(d.entry_id.to_string())),
            ]);
            Ok(())
        }
        JournalEvent::WorkPatternLogged(w) => pending.put(&WorkRow {
            athlete_id,
            date: w.date.to_string(),
            work_type: code(&w.work_type)?,
            hours_worked_h: w.hours_worked,
            stress: small(w.stress),
            notes: w.notes.clone(),
            recorded_at_us,
        }),
        JournalEvent::BodyCompositionLogged(b) => pending.put(&BodyRow {
            athlete_id,
            date: b.date.to_string(),
            weight_kg: b.weight_kg,
            body_fat_pct: b.body_fat_pct,
            muscle_mass_kg: b.muscle_mass_kg,
            // The event's BMI, not one computed here: it used the height of that day.
            bmi_kg_m2: b.bmi,
            notes: b.notes.clone(),
            recorded_at_us,
        }),
        JournalEvent::InsightFeedbackGiven(f) => {
            let helpful = i64::from(f.helpful);
            pending.put(&FeedbackRow {
                position: e.recorded.position,
                athlete_id: athlete_id.clone(),
                date: f.date.to_string(),
                insight_id: f.insight_id.clone(),
                helpful,
                notes: f.notes.clone(),
                recorded_at_us,
            })?;
            pending.put(&FeedbackCountRow {
                athlete_id,
                insight_id: f.insight_id.clone(),
                helpful_count: helpful,
                not_helpful_count: 1 - helpful,
            })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------------

/// Everything the athlete logged for one date; the parts not logged are `None` or empty.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JournalDay {
    pub date: NaiveDate,
    pub check_in: Option<CheckIn>,
    /// In the order the intakes happened.
    pub nutrition: Vec<NutritionEntry>,
    pub work: Option<WorkPattern>,
    pub body_composition: Option<BodyComposition>,
    /// In the order it was given.
    pub insight_feedback: Vec<InsightFeedback>,
}

impl JournalDay {
    fn empty(date: NaiveDate) -> Self {
        Self {
            date,
            check_in: None,
            nutrition: Vec::new(),
            work: None,
            body_composition: None,
            insight_feedback: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckIn {
    #[serde(flatten)]
    pub values: CheckInValues,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NutritionEntry {
    pub entry_id: Uuid,
    pub entry_type: NutritionEntryType,
    pub activity_id: Option<Uuid>,
    pub calories_kcal: Option<f64>,
    pub protein_g: Option<f64>,
    pub carbohydrate_g: Option<f64>,
    pub fat_g: Option<f64>,
    pub fibre_g: Option<f64>,
    pub caffeine_mg: Option<f64>,
    pub notes: Option<String>,
    pub logged_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkPattern {
    pub work_type: WorkType,
    pub hours_worked_h: Option<f64>,
    pub stress: Option<u8>,
    pub notes: Option<String>,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BodyComposition {
    pub weight_kg: Option<f64>,
    pub body_fat_pct: Option<f64>,
    pub muscle_mass_kg: Option<f64>,
    /// As recorded with the event; `None` when the height was not known then.
    pub bmi_kg_m2: Option<f64>,
    pub notes: Option<String>,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InsightFeedback {
    pub insight_id: String,
    pub helpful: bool,
    pub notes: Option<String>,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InsightFeedbackCount {
    pub insight_id: String,
    pub helpful_count: i64,
    pub not_helpful_count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InsightFeedbackTotals {
    pub insights_count: i64,
    pub helpful_count: i64,
    pub not_helpful_count: i64,
}

/// One date of the journal; a date with nothing logged gives an empty day, not an error.
pub async fn day(
    pool: &AnyPool,
    t: &Tables,
    athlete_id: Uuid,
    date: NaiveDate,
) -> anyhow::Result<JournalDay> {
    Ok(range(pool, t, athlete_id, date, date)
        .await?
        .pop()
        .unwrap_or_else(|| JournalDay::empty(date)))
}

/// The days from `from` to `to` (both included) on which anything was logged, oldest first.
pub async fn range(
    pool: &AnyPool,
    t: &Tables,
    athlete_id: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> anyhow::Result<Vec<JournalDay>> {
    let mut days: BTreeMap<NaiveDate, JournalDay> = BTreeMap::new();
    let q = Range {
        athlete: athlete_id.to_string(),
        from: from.to_string(),
        to: to.to_string(),
    };
    for r in q.fetch::<CheckInRow>(pool, t, "").await? {
        let date = r.date.clone();
        day_entry(&mut days, &date)?.check_in = Some(r.try_into()?);
    }
    for r in q
        .fetch::<NutritionRow>(pool, t, ", logged_at_us, entry_id")
        .await?
    {
        let date = r.date.clone();
        day_entry(&mut days, &date)?.nutrition.push(r.try_into()?);
    }
    for r in q.fetch::<WorkRow>(pool, t, "").await? {
        let date = r.date.clone();
        day_entry(&mut days, &date)?.work = Some(r.try_into()?);
    }
    for r in q.fetch::<BodyRow>(pool, t, "").await? {
        let date = r.date.clone();
        day_entry(&mut days, &date)?.body_composition = Some(r.try_into()?);
    }
    for r in q.fetch::<FeedbackRow>(pool, t, ", position").await? {
        let date = r.date.clone();
        day_entry(&mut days, &date)?
            .insight_feedback
            .push(r.try_into()?);
    }
    Ok(days.into_values().collect())
}

fn day_entry<'a>(
    days: &'a mut BTreeMap<NaiveDate, JournalDay>,
    date: &str,
) -> anyhow::Result<&'a mut JournalDay> {
    let date: NaiveDate = date
        .parse()
        .with_context(|| format!("bad journal date {date:?}"))?;
    Ok(days.entry(date).or_insert_with(|| JournalDay::empty(date)))
}

/// One athlete's rows of a journal table between two dates.
struct Range {
    athlete: String,
    from: String,
    to: String,
}

impl Range {
    /// ISO dates order as text, so the range and the ordering work the same on both stores.
    async fn fetch<R>(&self, pool: &AnyPool, t: &Tables, order: &str) -> anyhow::Result<Vec<R>>
    where
        R: Table + for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    {
        let sql = R::DEF.select_sql(
            t,
            &format!("WHERE athlete_id = $1 AND date >= $2 AND date <= $3 ORDER BY date{order}"),
        );
        Ok(sqlx::query_as::<_, R>(sqlx::AssertSqlSafe(sql))
            .bind(&self.athlete)
            .bind(&self.from)
            .bind(&self.to)
            .fetch_all(pool)
            .await?)
    }
}

fn scale(v: Option<i64>) -> anyhow::Result<Option<u8>> {
    v.map(u8::try_from)
        .transpose()
        .context("scale value out of range")
}

// A check-in's values into their row and back: a new value is a column of `CheckInRow` and a
// line in each of these two.

impl CheckInRow {
    fn of(athlete_id: String, e: &DailyCheckInLogged, recorded_at_us: i64) -> Self {
        let (v, small) = (&e.values, |v: Option<u8>| v.map(i64::from));
        CheckInRow {
            athlete_id,
            date: e.date.to_string(),
            sleep_h: v.sleep_h,
            sleep_quality: small(v.sleep_quality),
            hrv_ms: v.hrv_ms,
            resting_hr_bpm: v.resting_hr_bpm,
            stress: small(v.stress),
            soreness: small(v.soreness),
            readiness: small(v.readiness),
            notes: v.notes.clone(),
            recorded_at_us,
        }
    }
}

impl TryFrom<CheckInRow> for CheckIn {
    type Error = anyhow::Error;
    fn try_from(r: CheckInRow) -> anyhow::Result<Self> {
        Ok(CheckIn {
            values: CheckInValues {
                sleep_h: r.sleep_h,
                sleep_quality: scale(r.sleep_quality)?,
                hrv_ms: r.hrv_ms,
                resting_hr_bpm: r.resting_hr_bpm,
                stress: scale(r.stress)?,
                soreness: scale(r.soreness)?,
                readiness: scale(r.readiness)?,
                notes: r.notes,
            },
            recorded_at: instant(r.recorded_at_us)?,
        })
    }
}

impl TryFrom<NutritionRow> for NutritionEntry {
    type Error = anyhow::Error;
    fn try_from(r: NutritionRow) -> anyhow::Result<Self> {
        Ok(NutritionEntry {
            entry_id: uuid(&r.entry_id)?,
            entry_type: from_code(r.entry_type)?,
            activity_id: r.activity_id.map(|a| uuid(&a)).transpose()?,
            calories_kcal: r.calories_kcal,
            protein_g: r.protein_g,
            carbohydrate_g: r.carbohydrate_g,
            fat_g: r.fat_g,
            fibre_g: r.fibre_g,
            caffeine_mg: r.caffeine_mg,
            notes: r.notes,
            logged_at: instant(r.logged_at_us)?,
        })
    }
}

impl TryFrom<WorkRow> for WorkPattern {
    type Error = anyhow::Error;
    fn try_from(r: WorkRow) -> anyhow::Result<Self> {
        Ok(WorkPattern {
            work_type: from_code(r.work_type)?,
            hours_worked_h: r.hours_worked_h,
            stress: scale(r.stress)?,
            notes: r.notes,
            recorded_at: instant(r.recorded_at_us)?,
        })
    }
}

impl TryFrom<BodyRow> for BodyComposition {
    type Error = anyhow::Error;
    fn try_from(r: BodyRow) -> anyhow::Result<Self> {
        Ok(BodyComposition {
            weight_kg: r.weight_kg,
            body_fat_pct: r.body_fat_pct,
            muscle_mass_kg: r.muscle_mass_kg,
            bmi_kg_m2: r.bmi_kg_m2,
            notes: r.notes,
            recorded_at: instant(r.recorded_at_us)?,
        })
    }
}

impl TryFrom<FeedbackRow> for InsightFeedback {
    type Error = anyhow::Error;
    fn try_from(r: FeedbackRow) -> anyhow::Result<Self> {
        Ok(InsightFeedback {
            insight_id: r.insight_id,
            helpful: r.helpful != 0,
            notes: r.notes,
            recorded_at: instant(r.recorded_at_us)?,
        })
    }
}

/// How the athlete rated each insight, by insight id.
pub async fn insight_feedback_counts(
    pool: &AnyPool,
    t: &Tables,
    athlete_id: Uuid,
) -> anyhow::Result<Vec<InsightFeedbackCount>> {
    let sql = FeedbackCountRow::DEF.select_sql(t, "WHERE athlete_id = $1 ORDER BY insight_id");
    let rows = sqlx::query_as::<_, FeedbackCountRow>(sqlx::AssertSqlSafe(sql))
        .bind(athlete_id.to_string())
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| InsightFeedbackCount {
            insight_id: r.insight_id,
            helpful_count: r.helpful_count,
            not_helpful_count: r.not_helpful_count,
        })
        .collect())
}

/// The athlete's feedback over every insight; all zero when none was given.
pub async fn insight_feedback_totals(
    pool: &AnyPool,
    t: &Tables,
    athlete_id: Uuid,
) -> anyhow::Result<InsightFeedbackTotals> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT CAST(count(*) AS BIGINT) AS insights_count, \
           CAST(coalesce(sum(helpful_count), 0) AS BIGINT) AS helpful_count, \
           CAST(coalesce(sum(not_helpful_count), 0) AS BIGINT) AS not_helpful_count \
         FROM {} WHERE athlete_id = $1",
        t.table(FeedbackCountRow::DEF.base)
    )))
    .bind(athlete_id.to_string())
    .fetch_one(pool)
    .await?)
}

/// The date of one nutrition entry of the athlete, for addressing it by id alone.
pub async fn nutrition_entry(
    pool: &AnyPool,
    t: &Tables,
    athlete_id: Uuid,
    entry_id: Uuid,
) -> anyhow::Result<Option<(NaiveDate, NutritionEntry)>> {
    let date: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT date FROM {} WHERE athlete_id = $1 AND entry_id = $2 ORDER BY date LIMIT 1",
        t.table(NutritionRow::DEF.base)
    )))
    .bind(athlete_id.to_string())
    .bind(entry_id.to_string())
    .fetch_optional(pool)
    .await?;
    let Some(date) = date else { return Ok(None) };
    let date: NaiveDate = date.parse().context("bad journal date")?;
    let day = day(pool, t, athlete_id, date).await?;
    Ok(day
        .nutrition
        .into_iter()
        .find(|e| e.entry_id == entry_id)
        .map(|e| (date, e)))
}

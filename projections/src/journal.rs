//! The athlete's daily journal: check-ins, nutrition, work, body composition and insight
//! feedback, by day. Every value is personal, so an erasure deletes every row of the athlete.

use std::collections::BTreeMap;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use domain::athlete::AthleteEvent;
use domain::journal::{JournalEvent, NutritionEntryType, WorkType};
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, AnyPool, Row};
use uuid::Uuid;

use crate::decode::DomainEvent;
use crate::engine::{Projected, Projection, Tables};
use crate::profile::{code, from_code, instant, uncached, uuid};

pub struct JournalProjection;

const TABLES: &[&str] = &[
    "check_ins",
    "nutrition",
    "work",
    "body",
    "feedback",
    "feedback_counts",
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
        let check_ins = t.table("check_ins");
        let nutrition = t.table("nutrition");
        let work = t.table("work");
        let body = t.table("body");
        let feedback = t.table("feedback");
        let counts = t.table("feedback_counts");
        vec![
            // Check-in, work and body composition are one-per-day facts: (athlete, date) is the
            // key and the latest event replaces the whole row.
            format!(
                "CREATE TABLE {check_ins} (
                    athlete_id     TEXT   NOT NULL,
                    date           TEXT   NOT NULL,
                    sleep_h        DOUBLE PRECISION,
                    sleep_quality  BIGINT,
                    hrv_ms         DOUBLE PRECISION,
                    resting_hr_bpm DOUBLE PRECISION,
                    stress         BIGINT,
                    soreness       BIGINT,
                    readiness      BIGINT,
                    notes          TEXT,
                    recorded_at_us BIGINT NOT NULL,
                    PRIMARY KEY (athlete_id, date)
                )"
            ),
            // The journal aggregate checks entry ids within one day's stream only, so the date
            // is part of the key: the same id on two days is two entries.
            format!(
                "CREATE TABLE {nutrition} (
                    athlete_id     TEXT   NOT NULL,
                    date           TEXT   NOT NULL,
                    entry_id       TEXT   NOT NULL,
                    entry_type     TEXT   NOT NULL,
                    activity_id    TEXT,
                    calories_kcal  DOUBLE PRECISION,
                    protein_g      DOUBLE PRECISION,
                    carbohydrate_g DOUBLE PRECISION,
                    fat_g          DOUBLE PRECISION,
                    fibre_g        DOUBLE PRECISION,
                    caffeine_mg    DOUBLE PRECISION,
                    notes          TEXT,
                    logged_at_us   BIGINT NOT NULL,
                    PRIMARY KEY (athlete_id, date, entry_id)
                )"
            ),
            format!(
                "CREATE TABLE {work} (
                    athlete_id     TEXT   NOT NULL,
                    date           TEXT   NOT NULL,
                    work_type      TEXT   NOT NULL,
                    hours_worked_h DOUBLE PRECISION,
                    stress         BIGINT,
                    notes          TEXT,
                    recorded_at_us BIGINT NOT NULL,
                    PRIMARY KEY (athlete_id, date)
                )"
            ),
            format!(
                "CREATE TABLE {body} (
                    athlete_id     TEXT   NOT NULL,
                    date           TEXT   NOT NULL,
                    weight_kg      DOUBLE PRECISION,
                    body_fat_pct   DOUBLE PRECISION,
                    muscle_mass_kg DOUBLE PRECISION,
                    bmi_kg_m2      DOUBLE PRECISION,
                    notes          TEXT,
                    recorded_at_us BIGINT NOT NULL,
                    PRIMARY KEY (athlete_id, date)
                )"
            ),
            // Feedback accumulates, so each event is a row; its log position is the one key a
            // rebuild reproduces exactly.
            format!(
                "CREATE TABLE {feedback} (
                    position       BIGINT PRIMARY KEY,
                    athlete_id     TEXT   NOT NULL,
                    date           TEXT   NOT NULL,
                    insight_id     TEXT   NOT NULL,
                    helpful        BIGINT NOT NULL,
                    notes          TEXT,
                    recorded_at_us BIGINT NOT NULL
                )"
            ),
            format!("CREATE INDEX {feedback}_day ON {feedback} (athlete_id, date)"),
            // Kept beside the rows so the per-insight counts are one indexed read, however long
            // the athlete has been giving feedback.
            format!(
                "CREATE TABLE {counts} (
                    athlete_id        TEXT   NOT NULL,
                    insight_id        TEXT   NOT NULL,
                    helpful_count     BIGINT NOT NULL,
                    not_helpful_count BIGINT NOT NULL,
                    PRIMARY KEY (athlete_id, insight_id)
                )"
            ),
        ]
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
        let athlete = athlete.to_string();
        let recorded_at_us = e.recorded.recorded_at.timestamp_micros();
        let event = match e.event {
            DomainEvent::Journal(event) => event,
            DomainEvent::Athlete(AthleteEvent::AthleteErased(_)) => {
                for base in TABLES {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DELETE FROM {} WHERE athlete_id = $1",
                        t.table(base)
                    )))
                    .bind(&athlete)
                    .execute(&mut *conn)
                    .await?;
                }
                return Ok(());
            }
            _ => return Ok(()),
        };
        match event {
            JournalEvent::DailyCheckInLogged(c) => {
                uncached(format!(
                    "INSERT INTO {} (athlete_id, date, sleep_h, sleep_quality, hrv_ms, \
                       resting_hr_bpm, stress, soreness, readiness, notes, recorded_at_us) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                     ON CONFLICT (athlete_id, date) DO UPDATE SET sleep_h = excluded.sleep_h, \
                       sleep_quality = excluded.sleep_quality, hrv_ms = excluded.hrv_ms, \
                       resting_hr_bpm = excluded.resting_hr_bpm, stress = excluded.stress, \
                       soreness = excluded.soreness, readiness = excluded.readiness, \
                       notes = excluded.notes, recorded_at_us = excluded.recorded_at_us",
                    t.table("check_ins")
                ))
                .bind(&athlete)
                .bind(c.date.to_string())
                .bind(c.sleep_h)
                .bind(c.sleep_quality.map(i64::from))
                .bind(c.hrv_ms)
                .bind(c.resting_hr_bpm)
                .bind(c.stress.map(i64::from))
                .bind(c.soreness.map(i64::from))
                .bind(c.readiness.map(i64::from))
                .bind(c.notes.clone())
                .bind(recorded_at_us)
                .execute(conn)
                .await?;
            }
            JournalEvent::NutritionEntryLogged(n) => {
                let values = NutritionRow {
                    date: n.date,
                    entry_id: n.entry_id,
                    entry_type: n.entry_type,
                    activity_id: n.activity_id,
                    amounts: [
                        n.calories_kcal,
                        n.protein_g,
                        n.carbohydrate_g,
                        n.fat_g,
                        n.fibre_g,
                        n.caffeine_mg,
                    ],
                    notes: n.notes.clone(),
                    logged_at: n.logged_at,
                };
                upsert_nutrition(conn, t, &athlete, values).await?;
            }
            JournalEvent::NutritionEntryUpdated(n) => {
                let values = NutritionRow {
                    date: n.date,
                    entry_id: n.entry_id,
                    entry_type: n.entry_type,
                    activity_id: n.activity_id,
                    amounts: [
                        n.calories_kcal,
                        n.protein_g,
                        n.carbohydrate_g,
                        n.fat_g,
                        n.fibre_g,
                        n.caffeine_mg,
                    ],
                    notes: n.notes.clone(),
                    logged_at: n.logged_at,
                };
                upsert_nutrition(conn, t, &athlete, values).await?;
            }
            JournalEvent::NutritionEntryDeleted(d) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM {} WHERE athlete_id = $1 AND date = $2 AND entry_id = $3",
                    t.table("nutrition")
                )))
                .bind(&athlete)
                .bind(d.date.to_string())
                .bind(d.entry_id.to_string())
                .execute(conn)
                .await?;
            }
            JournalEvent::WorkPatternLogged(w) => {
                uncached(format!(
                    "INSERT INTO {} (athlete_id, date, work_type, hours_worked_h, stress, notes, \
                       recorded_at_us) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (athlete_id, date) DO UPDATE SET work_type = excluded.work_type, \
                       hours_worked_h = excluded.hours_worked_h, stress = excluded.stress, \
                       notes = excluded.notes, recorded_at_us = excluded.recorded_at_us",
                    t.table("work")
                ))
                .bind(&athlete)
                .bind(w.date.to_string())
                .bind(code(&w.work_type)?)
                .bind(w.hours_worked)
                .bind(w.stress.map(i64::from))
                .bind(w.notes.clone())
                .bind(recorded_at_us)
                .execute(conn)
                .await?;
            }
            JournalEvent::BodyCompositionLogged(b) => {
                uncached(format!(
                    "INSERT INTO {} (athlete_id, date, weight_kg, body_fat_pct, muscle_mass_kg, \
                       bmi_kg_m2, notes, recorded_at_us) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (athlete_id, date) DO UPDATE SET weight_kg = excluded.weight_kg, \
                       body_fat_pct = excluded.body_fat_pct, \
                       muscle_mass_kg = excluded.muscle_mass_kg, bmi_kg_m2 = excluded.bmi_kg_m2, \
                       notes = excluded.notes, recorded_at_us = excluded.recorded_at_us",
                    t.table("body")
                ))
                .bind(&athlete)
                .bind(b.date.to_string())
                .bind(b.weight_kg)
                .bind(b.body_fat_pct)
                .bind(b.muscle_mass_kg)
                // The event's BMI, not one computed here: it used the height of that day.
                .bind(b.bmi)
                .bind(b.notes.clone())
                .bind(recorded_at_us)
                .execute(conn)
                .await?;
            }
            JournalEvent::InsightFeedbackGiven(f) => {
                let helpful = i64::from(f.helpful);
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO {} (position, athlete_id, date, insight_id, helpful, notes, \
                       recorded_at_us) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    t.table("feedback")
                )))
                .bind(e.recorded.position)
                .bind(&athlete)
                .bind(f.date.to_string())
                .bind(&f.insight_id)
                .bind(helpful)
                .bind(f.notes.clone())
                .bind(recorded_at_us)
                .execute(&mut *conn)
                .await?;
                let counts = t.table("feedback_counts");
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO {counts} (athlete_id, insight_id, helpful_count, not_helpful_count) \
                     VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (athlete_id, insight_id) DO UPDATE SET \
                       helpful_count = {counts}.helpful_count + excluded.helpful_count, \
                       not_helpful_count = {counts}.not_helpful_count + excluded.not_helpful_count"
                )))
                .bind(&athlete)
                .bind(&f.insight_id)
                .bind(helpful)
                .bind(1 - helpful)
                .execute(conn)
                .await?;
            }
        }
        Ok(())
    }

    /// Folds the batch into one pending write per row key and writes them [`CHUNK`] rows per
    /// statement: one-per-day facts and nutrition entries keep the last value of their key (a
    /// deletion replaces a pending upsert), feedback rows are inserted as they come and the
    /// per-insight counts are added up first and added to the stored ones. An erasure writes
    /// everything pending, then deletes the athlete's rows through [`Projection::apply`].
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
            let event = match e.event {
                DomainEvent::Journal(event) => event,
                DomainEvent::Athlete(AthleteEvent::AthleteErased(_)) => {
                    pending.flush(conn, t).await?;
                    self.apply(conn, t, e).await?;
                    continue;
                }
                _ => continue,
            };
            pending.fold(&athlete.to_string(), e, event)?;
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

/// Logged and updated entries carry the same values, and an update replaces all of them.
struct NutritionRow {
    date: NaiveDate,
    entry_id: Uuid,
    entry_type: NutritionEntryType,
    activity_id: Option<Uuid>,
    /// calories_kcal, protein_g, carbohydrate_g, fat_g, fibre_g, caffeine_mg.
    amounts: [Option<f64>; 6],
    notes: Option<String>,
    logged_at: DateTime<Utc>,
}

async fn upsert_nutrition(
    conn: &mut AnyConnection,
    t: &Tables,
    athlete: &str,
    n: NutritionRow,
) -> anyhow::Result<()> {
    let [
        calories_kcal,
        protein_g,
        carbohydrate_g,
        fat_g,
        fibre_g,
        caffeine_mg,
    ] = n.amounts;
    uncached(format!(
        "INSERT INTO {} (athlete_id, date, entry_id, entry_type, activity_id, calories_kcal, \
           protein_g, carbohydrate_g, fat_g, fibre_g, caffeine_mg, notes, logged_at_us) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         ON CONFLICT (athlete_id, date, entry_id) DO UPDATE SET entry_type = excluded.entry_type, \
           activity_id = excluded.activity_id, calories_kcal = excluded.calories_kcal, \
           protein_g = excluded.protein_g, carbohydrate_g = excluded.carbohydrate_g, \
           fat_g = excluded.fat_g, fibre_g = excluded.fibre_g, \
           caffeine_mg = excluded.caffeine_mg, notes = excluded.notes, \
           logged_at_us = excluded.logged_at_us",
        t.table("nutrition")
    ))
    .bind(athlete)
    .bind(n.date.to_string())
    .bind(n.entry_id.to_string())
    .bind(code(&n.entry_type)?)
    .bind(n.activity_id.map(|a| a.to_string()))
    .bind(calories_kcal)
    .bind(protein_g)
    .bind(carbohydrate_g)
    .bind(fat_g)
    .bind(fibre_g)
    .bind(caffeine_mg)
    .bind(n.notes)
    .bind(n.logged_at.timestamp_micros())
    .execute(conn)
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Batched writes
// ---------------------------------------------------------------------------------------------

/// Rows per multi-row statement (13 parameters at most, inside both stores' limits).
const CHUNK: usize = 400;
/// Keys per multi-row DELETE (deletions are rare).
const DELETE_CHUNK: usize = 100;

/// How a table's pending rows are written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Write {
    /// `ON CONFLICT DO UPDATE` replaces every other column: the last row of a key wins.
    Replace,
    /// Plain INSERT: a key twice fails the batch, as the second per-event INSERT would fail.
    Insert,
    /// The non-key columns are counters: pending rows of a key are summed, then added to the
    /// stored row.
    Add,
}

/// A table written in batches: its columns, the first `key` of which are the primary key.
struct Spec {
    base: &'static str,
    columns: &'static [&'static str],
    key: usize,
    write: Write,
}

const CHECK_INS: usize = 0;
const NUTRITION: usize = 1;
const WORK: usize = 2;
const BODY: usize = 3;
const FEEDBACK: usize = 4;
const COUNTS: usize = 5;

const SPECS: [Spec; 6] = [
    Spec {
        base: "check_ins",
        columns: &[
            "athlete_id",
            "date",
            "sleep_h",
            "sleep_quality",
            "hrv_ms",
            "resting_hr_bpm",
            "stress",
            "soreness",
            "readiness",
            "notes",
            "recorded_at_us",
        ],
        key: 2,
        write: Write::Replace,
    },
    Spec {
        base: "nutrition",
        columns: &[
            "athlete_id",
            "date",
            "entry_id",
            "entry_type",
            "activity_id",
            "calories_kcal",
            "protein_g",
            "carbohydrate_g",
            "fat_g",
            "fibre_g",
            "caffeine_mg",
            "notes",
            "logged_at_us",
        ],
        key: 3,
        write: Write::Replace,
    },
    Spec {
        base: "work",
        columns: &[
            "athlete_id",
            "date",
            "work_type",
            "hours_worked_h",
            "stress",
            "notes",
            "recorded_at_us",
        ],
        key: 2,
        write: Write::Replace,
    },
    Spec {
        base: "body",
        columns: &[
            "athlete_id",
            "date",
            "weight_kg",
            "body_fat_pct",
            "muscle_mass_kg",
            "bmi_kg_m2",
            "notes",
            "recorded_at_us",
        ],
        key: 2,
        write: Write::Replace,
    },
    Spec {
        base: "feedback",
        columns: &[
            "position",
            "athlete_id",
            "date",
            "insight_id",
            "helpful",
            "notes",
            "recorded_at_us",
        ],
        key: 1,
        write: Write::Insert,
    },
    Spec {
        base: "feedback_counts",
        columns: &[
            "athlete_id",
            "insight_id",
            "helpful_count",
            "not_helpful_count",
        ],
        key: 2,
        write: Write::Add,
    },
];

/// One bound value, typed as `apply` binds it.
#[derive(Clone, Debug, PartialEq)]
enum Cell {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<String>),
}

impl Cell {
    fn text(s: impl Into<String>) -> Self {
        Cell::Text(Some(s.into()))
    }

    /// The cell as part of a map key (key cells are never NULL).
    fn key_text(&self) -> String {
        match self {
            Cell::Int(v) => format!("i{v:?}"),
            Cell::Real(v) => format!("r{v:?}"),
            Cell::Text(v) => format!("t{v:?}"),
        }
    }
}

enum Op {
    /// The whole row.
    Write(Vec<Cell>),
    /// The key cells of a row to delete.
    Delete(Vec<Cell>),
}

/// What the batch has done to each table so far, one operation per key.
#[derive(Default)]
struct Pending {
    tables: [BTreeMap<Vec<String>, Op>; 6],
}

impl Pending {
    fn key(table: usize, cells: &[Cell]) -> Vec<String> {
        cells[..SPECS[table].key]
            .iter()
            .map(Cell::key_text)
            .collect()
    }

    fn put(&mut self, table: usize, cells: Vec<Cell>) -> anyhow::Result<()> {
        let key = Self::key(table, &cells);
        let spec = &SPECS[table];
        let map = &mut self.tables[table];
        match spec.write {
            Write::Replace => {
                map.insert(key, Op::Write(cells));
            }
            Write::Insert => {
                if map.insert(key, Op::Write(cells)).is_some() {
                    anyhow::bail!("two {} rows with one key in a batch", spec.base);
                }
            }
            Write::Add => match map.get_mut(&key) {
                Some(Op::Write(sum)) => {
                    for (s, c) in sum.iter_mut().zip(cells).skip(spec.key) {
                        match (s, c) {
                            (Cell::Int(Some(s)), Cell::Int(Some(c))) => *s += c,
                            _ => anyhow::bail!("{} adds only numbers", spec.base),
                        }
                    }
                }
                _ => {
                    map.insert(key, Op::Write(cells));
                }
            },
        }
        Ok(())
    }

    fn delete(&mut self, table: usize, key_cells: Vec<Cell>) {
        debug_assert!(SPECS[table].write == Write::Replace);
        let key = Self::key(table, &key_cells);
        self.tables[table].insert(key, Op::Delete(key_cells));
    }

    /// The effect `apply` gives one journal event, as pending rows.
    fn fold(
        &mut self,
        athlete: &str,
        e: &Projected<'_>,
        event: &JournalEvent,
    ) -> anyhow::Result<()> {
        let recorded_at_us = Cell::Int(Some(e.recorded.recorded_at.timestamp_micros()));
        let small = |v: Option<u8>| Cell::Int(v.map(i64::from));
        match event {
            JournalEvent::DailyCheckInLogged(c) => self.put(
                CHECK_INS,
                vec![
                    Cell::text(athlete),
                    Cell::text(c.date.to_string()),
                    Cell::Real(c.sleep_h),
                    small(c.sleep_quality),
                    Cell::Real(c.hrv_ms),
                    Cell::Real(c.resting_hr_bpm),
                    small(c.stress),
                    small(c.soreness),
                    small(c.readiness),
                    Cell::Text(c.notes.clone()),
                    recorded_at_us,
                ],
            ),
            JournalEvent::NutritionEntryLogged(n) => self.put(
                NUTRITION,
                nutrition_cells(
                    athlete,
                    NutritionRow {
                        date: n.date,
                        entry_id: n.entry_id,
                        entry_type: n.entry_type,
                        activity_id: n.activity_id,
                        amounts: [
                            n.calories_kcal,
                            n.protein_g,
                            n.carbohydrate_g,
                            n.fat_g,
                            n.fibre_g,
                            n.caffeine_mg,
                        ],
                        notes: n.notes.clone(),
                        logged_at: n.logged_at,
                    },
                )?,
            ),
            JournalEvent::NutritionEntryUpdated(n) => self.put(
                NUTRITION,
                nutrition_cells(
                    athlete,
                    NutritionRow {
                        date: n.date,
                        entry_id: n.entry_id,
                        entry_type: n.entry_type,
                        activity_id: n.activity_id,
                        amounts: [
                            n.calories_kcal,
                            n.protein_g,
                            n.carbohydrate_g,
                            n.fat_g,
                            n.fibre_g,
                            n.caffeine_mg,
                        ],
                        notes: n.notes.clone(),
                        logged_at: n.logged_at,
                    },
                )?,
            ),
            JournalEvent::NutritionEntryDeleted(d) => {
                self.delete(
                    NUTRITION,
                    vec![
                        Cell::text(athlete),
                        Cell::text(d.date.to_string()),
                        Cell::text(d.entry_id.to_string()),
                    ],
                );
                Ok(())
            }
            JournalEvent::WorkPatternLogged(w) => self.put(
                WORK,
                vec![
                    Cell::text(athlete),
                    Cell::text(w.date.to_string()),
                    Cell::text(code(&w.work_type)?),
                    Cell::Real(w.hours_worked),
                    small(w.stress),
                    Cell::Text(w.notes.clone()),
                    recorded_at_us,
                ],
            ),
            JournalEvent::BodyCompositionLogged(b) => self.put(
                BODY,
                vec![
                    Cell::text(athlete),
                    Cell::text(b.date.to_string()),
                    Cell::Real(b.weight_kg),
                    Cell::Real(b.body_fat_pct),
                    Cell::Real(b.muscle_mass_kg),
                    Cell::Real(b.bmi),
                    Cell::Text(b.notes.clone()),
                    recorded_at_us,
                ],
            ),
            JournalEvent::InsightFeedbackGiven(f) => {
                let helpful = i64::from(f.helpful);
                self.put(
                    FEEDBACK,
                    vec![
                        Cell::Int(Some(e.recorded.position)),
                        Cell::text(athlete),
                        Cell::text(f.date.to_string()),
                        Cell::text(f.insight_id.clone()),
                        Cell::Int(Some(helpful)),
                        Cell::Text(f.notes.clone()),
                        recorded_at_us,
                    ],
                )?;
                self.put(
                    COUNTS,
                    vec![
                        Cell::text(athlete),
                        Cell::text(f.insight_id.clone()),
                        Cell::Int(Some(helpful)),
                        Cell::Int(Some(1 - helpful)),
                    ],
                )
            }
        }
    }

    /// Writes and forgets everything pending: per table, the deletions, then the rows.
    async fn flush(&mut self, conn: &mut AnyConnection, t: &Tables) -> anyhow::Result<()> {
        for (spec, map) in SPECS.iter().zip(&mut self.tables) {
            if map.is_empty() {
                continue;
            }
            let table = t.table(spec.base);
            let ops = std::mem::take(map);
            let (mut rows, mut deletes) = (Vec::new(), Vec::new());
            for op in ops.into_values() {
                match op {
                    Op::Write(cells) => rows.push(cells),
                    Op::Delete(key) => deletes.push(key),
                }
            }
            for chunk in deletes.chunks(DELETE_CHUNK) {
                let mut n = 0;
                let condition = chunk
                    .iter()
                    .map(|_| {
                        let terms: Vec<String> = spec.columns[..spec.key]
                            .iter()
                            .map(|c| {
                                n += 1;
                                format!("{c} = ${n}")
                            })
                            .collect();
                        format!("({})", terms.join(" AND "))
                    })
                    .collect::<Vec<_>>()
                    .join(" OR ");
                let sql = format!("DELETE FROM {table} WHERE {condition}");
                bind_all(uncached(sql), chunk.iter().flatten())
                    .execute(&mut *conn)
                    .await?;
            }
            for chunk in rows.chunks(CHUNK) {
                bind_all(
                    uncached(insert_sql(spec, &table, chunk.len())),
                    chunk.iter().flatten(),
                )
                .execute(&mut *conn)
                .await?;
            }
        }
        Ok(())
    }
}

/// `INSERT … VALUES (…), … ON CONFLICT …` for `rows` rows of `spec`.
fn insert_sql(spec: &Spec, table: &str, rows: usize) -> String {
    let width = spec.columns.len();
    let values = (0..rows)
        .map(|r| {
            let cells: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mut sql = format!(
        "INSERT INTO {table} ({}) VALUES {values}",
        spec.columns.join(", ")
    );
    let rest = &spec.columns[spec.key..];
    let set: Vec<String> = match spec.write {
        Write::Insert => return sql,
        Write::Replace => rest.iter().map(|c| format!("{c} = excluded.{c}")).collect(),
        Write::Add => rest
            .iter()
            .map(|c| format!("{c} = {table}.{c} + excluded.{c}"))
            .collect(),
    };
    sql.push_str(&format!(
        " ON CONFLICT ({}) DO UPDATE SET {}",
        spec.columns[..spec.key].join(", "),
        set.join(", ")
    ));
    sql
}

fn bind_all<'q>(
    mut q: Query<'q, Any, AnyArguments>,
    cells: impl Iterator<Item = &'q Cell>,
) -> Query<'q, Any, AnyArguments> {
    for cell in cells {
        q = match cell {
            Cell::Int(v) => q.bind(*v),
            Cell::Real(v) => q.bind(*v),
            Cell::Text(v) => q.bind(v.clone()),
        };
    }
    q
}

/// The cells of the row `upsert_nutrition` writes.
fn nutrition_cells(athlete: &str, n: NutritionRow) -> anyhow::Result<Vec<Cell>> {
    let mut cells = vec![
        Cell::text(athlete),
        Cell::text(n.date.to_string()),
        Cell::text(n.entry_id.to_string()),
        Cell::text(code(&n.entry_type)?),
        Cell::Text(n.activity_id.map(|a| a.to_string())),
    ];
    cells.extend(n.amounts.into_iter().map(Cell::Real));
    cells.push(Cell::Text(n.notes));
    cells.push(Cell::Int(Some(n.logged_at.timestamp_micros())));
    Ok(cells)
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
    pub sleep_h: Option<f64>,
    /// 1-5 scales, 5 = best.
    pub sleep_quality: Option<u8>,
    pub hrv_ms: Option<f64>,
    pub resting_hr_bpm: Option<f64>,
    pub stress: Option<u8>,
    pub soreness: Option<u8>,
    pub readiness: Option<u8>,
    pub notes: Option<String>,
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

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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
    let athlete = athlete_id.to_string();
    let (from, to) = (from.to_string(), to.to_string());
    let mut days: BTreeMap<NaiveDate, JournalDay> = BTreeMap::new();
    // ISO dates order as text, so the range and the ordering work the same on both stores.
    let fetch = |table: &str, columns: &str, order: &str| {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT date, {columns} FROM {} \
             WHERE athlete_id = $1 AND date >= $2 AND date <= $3 ORDER BY date{order}",
            t.table(table)
        )))
        .bind(athlete.clone())
        .bind(from.clone())
        .bind(to.clone())
        .fetch_all(pool)
    };

    for r in fetch(
        "check_ins",
        "sleep_h, sleep_quality, hrv_ms, resting_hr_bpm, stress, soreness, readiness, notes, \
         recorded_at_us",
        "",
    )
    .await?
    {
        let date = date_of(&r)?;
        days.entry(date)
            .or_insert_with(|| JournalDay::empty(date))
            .check_in = Some(CheckIn {
            sleep_h: r.try_get(1)?,
            sleep_quality: scale(&r, 2)?,
            hrv_ms: r.try_get(3)?,
            resting_hr_bpm: r.try_get(4)?,
            stress: scale(&r, 5)?,
            soreness: scale(&r, 6)?,
            readiness: scale(&r, 7)?,
            notes: r.try_get(8)?,
            recorded_at: instant(r.try_get(9)?)?,
        });
    }

    for r in fetch(
        "nutrition",
        "entry_id, entry_type, activity_id, calories_kcal, protein_g, carbohydrate_g, fat_g, \
         fibre_g, caffeine_mg, notes, logged_at_us",
        ", logged_at_us, entry_id",
    )
    .await?
    {
        let date = date_of(&r)?;
        let entry = NutritionEntry {
            entry_id: uuid(&r.try_get::<String, _>(1)?)?,
            entry_type: from_code(r.try_get(2)?)?,
            activity_id: r
                .try_get::<Option<String>, _>(3)?
                .map(|a| uuid(&a))
                .transpose()?,
            calories_kcal: r.try_get(4)?,
            protein_g: r.try_get(5)?,
            carbohydrate_g: r.try_get(6)?,
            fat_g: r.try_get(7)?,
            fibre_g: r.try_get(8)?,
            caffeine_mg: r.try_get(9)?,
            notes: r.try_get(10)?,
            logged_at: instant(r.try_get(11)?)?,
        };
        days.entry(date)
            .or_insert_with(|| JournalDay::empty(date))
            .nutrition
            .push(entry);
    }

    for r in fetch(
        "work",
        "work_type, hours_worked_h, stress, notes, recorded_at_us",
        "",
    )
    .await?
    {
        let date = date_of(&r)?;
        days.entry(date)
            .or_insert_with(|| JournalDay::empty(date))
            .work = Some(WorkPattern {
            work_type: from_code(r.try_get(1)?)?,
            hours_worked_h: r.try_get(2)?,
            stress: scale(&r, 3)?,
            notes: r.try_get(4)?,
            recorded_at: instant(r.try_get(5)?)?,
        });
    }

    for r in fetch(
        "body",
        "weight_kg, body_fat_pct, muscle_mass_kg, bmi_kg_m2, notes, recorded_at_us",
        "",
    )
    .await?
    {
        let date = date_of(&r)?;
        days.entry(date)
            .or_insert_with(|| JournalDay::empty(date))
            .body_composition = Some(BodyComposition {
            weight_kg: r.try_get(1)?,
            body_fat_pct: r.try_get(2)?,
            muscle_mass_kg: r.try_get(3)?,
            bmi_kg_m2: r.try_get(4)?,
            notes: r.try_get(5)?,
            recorded_at: instant(r.try_get(6)?)?,
        });
    }

    for r in fetch(
        "feedback",
        "insight_id, helpful, notes, recorded_at_us",
        ", position",
    )
    .await?
    {
        let date = date_of(&r)?;
        let feedback = InsightFeedback {
            insight_id: r.try_get(1)?,
            helpful: r.try_get::<i64, _>(2)? != 0,
            notes: r.try_get(3)?,
            recorded_at: instant(r.try_get(4)?)?,
        };
        days.entry(date)
            .or_insert_with(|| JournalDay::empty(date))
            .insight_feedback
            .push(feedback);
    }

    Ok(days.into_values().collect())
}

fn date_of(r: &sqlx::any::AnyRow) -> anyhow::Result<NaiveDate> {
    let text: String = r.try_get(0)?;
    text.parse()
        .with_context(|| format!("bad journal date {text:?}"))
}

fn scale(r: &sqlx::any::AnyRow, i: usize) -> anyhow::Result<Option<u8>> {
    r.try_get::<Option<i64>, _>(i)?
        .map(u8::try_from)
        .transpose()
        .context("scale value out of range")
}

/// How the athlete rated each insight, by insight id.
pub async fn insight_feedback_counts(
    pool: &AnyPool,
    t: &Tables,
    athlete_id: Uuid,
) -> anyhow::Result<Vec<InsightFeedbackCount>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT insight_id, helpful_count, not_helpful_count FROM {} \
         WHERE athlete_id = $1 ORDER BY insight_id",
        t.table("feedback_counts")
    )))
    .bind(athlete_id.to_string())
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(InsightFeedbackCount {
                insight_id: r.try_get(0)?,
                helpful_count: r.try_get(1)?,
                not_helpful_count: r.try_get(2)?,
            })
        })
        .collect()
}

/// The athlete's feedback over every insight; all zero when none was given.
pub async fn insight_feedback_totals(
    pool: &AnyPool,
    t: &Tables,
    athlete_id: Uuid,
) -> anyhow::Result<InsightFeedbackTotals> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT CAST(count(*) AS BIGINT), CAST(coalesce(sum(helpful_count), 0) AS BIGINT), \
           CAST(coalesce(sum(not_helpful_count), 0) AS BIGINT) \
         FROM {} WHERE athlete_id = $1",
        t.table("feedback_counts")
    )))
    .bind(athlete_id.to_string())
    .fetch_one(pool)
    .await?;
    Ok(InsightFeedbackTotals {
        insights_count: r.try_get(0)?,
        helpful_count: r.try_get(1)?,
        not_helpful_count: r.try_get(2)?,
    })
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
        t.table("nutrition")
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

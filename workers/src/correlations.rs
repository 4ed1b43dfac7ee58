//! The correlation job (docs/correlations.md, "Jobs, snapshots, invalidation"): which athletes
//! are due, the lease that gives one worker an athlete, the daily series built from the read
//! models, the analysis of every window (`domain::correlation`, on the CPU slots of
//! `projections::cpu`) and the snapshot it writes. What the API reads or enqueues (snapshots,
//! jobs, the position of the last input change) is in `projections::correlations`, so the API
//! needs none of this.
//!
//! A snapshot reflecting an older position than the athlete's last input change is stale; the
//! worker recomputes it at most once per athlete per [`DEBOUNCE`], and at once on request.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{NaiveDate, Utc};
use domain::correlation::{Analysis, Dataset, DayInputs, Options, RunOutcome, analyze};
use domain::load::LoadSettings;
use projections::Engine;
use projections::correlations::{ChangedRow, JobState, SnapshotRow, WINDOWS_DAYS, changed_at};
use projections::journal::{JournalDay, NutritionEntry};
use projections::profile::Profile;
use projections::table::Table;
use sqlx::AnyPool;
use uuid::Uuid;

/// At most one recompute per athlete in this time, however many events arrive.
pub const DEBOUNCE: Duration = Duration::from_secs(600);
/// How long a worker holds an athlete before another may take over.
pub const LEASE: Duration = Duration::from_secs(120);
/// The read models a snapshot is built from.
pub const SOURCES: [&str; 3] = ["journal", "efficiency", "profile"];

// ---------------------------------------------------------------------------------------------
// The daily series
// ---------------------------------------------------------------------------------------------

async fn profile_of(engine: &Engine, athlete: Uuid) -> anyhow::Result<Option<Profile>> {
    projections::profile::profile(
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
    let journal = projections::journal::range(
        pool,
        &engine.active_tables("journal").await?,
        athlete,
        from,
        to,
    )
    .await?;
    let days = journal
        .iter()
        .filter_map(|d| {
            let inputs = day_inputs(d);
            (!inputs.is_empty()).then_some(DayInputs {
                date: d.date,
                inputs,
            })
        })
        .collect();
    let activities =
        projections::efficiency::all_of(pool, &engine.active_tables("efficiency").await?, athlete)
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

/// One journal day as the analysis's named inputs; a value not logged is absent.
fn day_inputs(d: &JournalDay) -> BTreeMap<String, f64> {
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
    // Daily sums over whatever entries carry the nutrient; a day with no entry for it stays
    // missing, never zero.
    let sum = |f: fn(&NutritionEntry) -> Option<f64>| {
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
    inputs
}

// ---------------------------------------------------------------------------------------------
// The analysis
// ---------------------------------------------------------------------------------------------

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
    let all = Arc::new(dataset_with(engine, athlete, &settings, from, today).await?);
    let options = Options::default();
    // Each window's analysis is CPU-bound (up to hundreds of milliseconds): on the blocking
    // threads, one core each at most (`projections::cpu`), so the windows run side by side
    // while the runtime goes on serving.
    let windows: Vec<_> = WINDOWS_DAYS
        .iter()
        .map(|&w| {
            let all = all.clone();
            let since = today - chrono::Duration::days(i64::from(w) - 1);
            tokio::spawn(projections::cpu::run(move || {
                (w, analyze(&window_since(&all, since), &options))
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

/// The part of `all` from `since` on.
fn window_since(all: &Dataset, since: NaiveDate) -> Dataset {
    Dataset {
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
    }
}

// ---------------------------------------------------------------------------------------------
// Leases and due athletes
// ---------------------------------------------------------------------------------------------

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
        .table(ChangedRow::DEF.base);
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

// ---------------------------------------------------------------------------------------------
// The worker step
// ---------------------------------------------------------------------------------------------

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

/// Computes and stores the athlete's snapshot, answering the jobs queued before it started.
async fn compute_one(engine: &Engine, athlete: &str) -> anyhow::Result<()> {
    let pool = &engine.db().pool;
    let jobs = start_jobs(pool, athlete).await?;
    let outcome = write_snapshot(engine, athlete).await;
    let finished = match &outcome {
        Ok(position) => Finished::Done(*position),
        Err(_) => Finished::Failed,
    };
    finish_jobs(pool, &jobs, finished).await?;
    outcome.map(|_| ())
}

/// Marks the athlete's queued jobs running and returns their ids: the jobs this run answers.
async fn start_jobs(pool: &AnyPool, athlete: &str) -> anyhow::Result<Vec<String>> {
    let started = Utc::now().timestamp_micros();
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
    Ok(jobs)
}

/// Analyses the athlete and stores the snapshot; returns the log position it reflects.
async fn write_snapshot(engine: &Engine, athlete: &str) -> anyhow::Result<i64> {
    let id: Uuid = athlete.parse()?;
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
    let row = SnapshotRow {
        athlete_id: athlete.to_string(),
        position,
        computed_at_us: Utc::now().timestamp_micros(),
        analyses_json: serde_json::to_string(&analyses)?,
    };
    // Replaces the athlete's previous snapshot.
    projections::table::write_fixed(&engine.db().pool, &row).await?;
    Ok(position)
}

/// How a run ended, as its jobs report it.
enum Finished {
    /// At this log position.
    Done(i64),
    Failed,
}

async fn finish_jobs(pool: &AnyPool, jobs: &[String], finished: Finished) -> anyhow::Result<()> {
    let at = Utc::now().timestamp_micros();
    let (state, position, error) = match finished {
        Finished::Done(p) => (JobState::Done, Some(p), None),
        // A fixed sentence: the details are in the worker's log.
        Finished::Failed => (
            JobState::Failed,
            None,
            Some("the analysis could not be completed; it will be retried".to_string()),
        ),
    };
    for j in jobs {
        sqlx::query(
            "UPDATE correlation_jobs SET state = $1, finished_at_us = $2, position = $3, error = $4 \
             WHERE job_id = $5",
        )
        .bind(state.text())
        .bind(at)
        .bind(position)
        .bind(error.clone())
        .bind(j)
        .execute(pool)
        .await?;
    }
    Ok(())
}

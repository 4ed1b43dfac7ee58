//! `stridelog bench correlations`: the correlation analysis of one athlete with two years of
//! data, beside building that athlete's daily series from the read models (the baseline), in
//! the same run; then the worker's throughput computing snapshots for a population.

use std::time::Instant;

use anyhow::bail;

use crate::demo::{self, DemoConfig};
use chrono::{Duration, NaiveDate};
use domain::correlation::{Options, analyze, input_names};
use projections::{Engine, ReadDb};
use serde_json::json;
use store::{EventStore, MasterKey, StoreOptions};
use uuid::Uuid;

use super::{on_scratch, progress, report, round3};

#[derive(Debug, clap::Args)]
pub struct Config {
    #[arg(long, default_value_t = 1000)]
    athletes: usize,
    #[arg(long, default_value_t = 730)]
    days: u32,
    #[arg(long, default_value_t = 15)]
    rounds: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long)]
    json: bool,
}

pub async fn run(store_url: &str, redact: fn(&str) -> String, c: Config) -> anyhow::Result<()> {
    if c.athletes == 0 || c.rounds == 0 || c.days == 0 {
        bail!("--athletes, --days and --rounds must be positive");
    }
    on_scratch(store_url, redact, |url, backend| async move {
        measure(&url, backend, c).await
    })
    .await
}

fn median_ms(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn measure(url: &str, backend: &str, c: Config) -> anyhow::Result<()> {
    let store = EventStore::connect(
        url,
        MasterKey::generate(),
        StoreOptions {
            max_connections: 16,
        },
    )
    .await?;
    store.migrate().await?;
    // Yesterday, so that every window up to 730 days ending today holds the data.
    let end_date = chrono::Utc::now().date_naive() - Duration::days(1);
    let config = DemoConfig {
        seed: c.seed,
        athletes: c.athletes,
        days: c.days,
        end_date,
    };
    let engine = seed_and_project(&store, url, &config).await?;
    let to = end_date;
    let from: NaiveDate = to - Duration::days(729);
    let athlete = richest_athlete(&engine, &config, from, to).await?;
    let one = one_athlete(&engine, athlete, from, to, c.rounds).await?;
    let (computed, worker_s) = worker_throughput(&engine, c.athletes).await?;
    let (analysis_ms, baseline_ms) = (median_ms(one.analysis_ms), median_ms(one.baseline_ms));
    report(
        c.json,
        json!({
            "analysis_ms": round3(analysis_ms),
            "baseline_ms": round3(baseline_ms),
            "ratio": round3(analysis_ms / baseline_ms),
            "athletes_per_s": round3(computed as f64 / worker_s),
            "snapshot_ms": round3(one.snapshot_ms),
            "tests_run": one.tests_run,
            "inputs": one.inputs,
            "days": c.days,
            "athletes": computed,
            "backend": backend,
        }),
    );
    Ok(())
}

/// Seeds the generated athletes and builds every read model over them.
async fn seed_and_project(
    store: &EventStore,
    url: &str,
    config: &DemoConfig,
) -> anyhow::Result<Engine> {
    progress(&format!(
        "seeding {} athletes x {} days",
        config.athletes, config.days
    ));
    let started = Instant::now();
    let mut reported = 0;
    let events = demo::seed_direct(store, config, 8, |done, total| {
        if done >= reported + 100 || done == total {
            reported = done;
            progress(&format!("seeded {done} of {total} athletes"));
        }
    })
    .await?;
    progress(&format!(
        "{events} events in {:.0} s; building the read models",
        started.elapsed().as_secs_f64()
    ));
    let engine = Engine::new(
        store.clone(),
        ReadDb::connect(url).await?,
        projections::all(),
    );
    for p in projections::all() {
        engine
            .catch_up(p.as_ref(), std::time::Duration::from_secs(3600))
            .await?;
    }
    Ok(engine)
}

/// Generated athletes log different things (not all wear an HRV strap): the one with the most
/// inputs among the first 50.
async fn richest_athlete(
    engine: &Engine,
    config: &DemoConfig,
    from: NaiveDate,
    to: NaiveDate,
) -> anyhow::Result<Uuid> {
    let mut athlete = demo::athlete_id(config, 0);
    let mut most = 0;
    for i in 0..config.athletes.min(50) {
        let id = demo::athlete_id(config, i);
        let n = input_names(&workers::correlations::dataset(engine, id, from, to).await?).len();
        if n > most {
            (athlete, most) = (id, n);
        }
    }
    Ok(athlete)
}

/// One athlete's analysis, round after round, each beside building its series.
struct OneAthlete {
    baseline_ms: Vec<f64>,
    analysis_ms: Vec<f64>,
    tests_run: usize,
    inputs: usize,
    snapshot_ms: f64,
}

async fn one_athlete(
    engine: &Engine,
    athlete: Uuid,
    from: NaiveDate,
    to: NaiveDate,
    rounds: usize,
) -> anyhow::Result<OneAthlete> {
    progress(&format!("one athlete, {rounds} rounds"));
    let mut baseline = Vec::new();
    let mut analysis = Vec::new();
    let mut tests_run = 0;
    let mut inputs = 0;
    let options = Options::default();
    for _ in 0..rounds {
        let t = Instant::now();
        let data = workers::correlations::dataset(engine, athlete, from, to).await?;
        baseline.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        let a = analyze(&data, &options);
        analysis.push(t.elapsed().as_secs_f64() * 1000.0);
        tests_run = a.tests_run;
        inputs = input_names(&data).len();
    }
    let t = Instant::now();
    workers::correlations::compute(engine, athlete).await?;
    Ok(OneAthlete {
        baseline_ms: baseline,
        analysis_ms: analysis,
        tests_run,
        inputs,
        snapshot_ms: t.elapsed().as_secs_f64() * 1000.0,
    })
}

/// One worker process computing every athlete's snapshot: athletes computed, and seconds.
async fn worker_throughput(engine: &Engine, athletes: usize) -> anyhow::Result<(usize, f64)> {
    progress(&format!(
        "worker: snapshots for all {athletes} athletes, one process"
    ));
    let t = Instant::now();
    let mut computed = 0;
    loop {
        let s = workers::correlations::step(engine, "bench", 64).await?;
        if s.failed > 0 {
            anyhow::bail!("{} analyses failed", s.failed);
        }
        if s.computed == 0 {
            break;
        }
        computed += s.computed;
        progress(&format!("{computed} of {athletes} athletes"));
    }
    Ok((computed, t.elapsed().as_secs_f64()))
}

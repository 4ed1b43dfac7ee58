//! `stridelog bench correlations`: the correlation analysis of one athlete with two years of
//! data, beside building that athlete's daily series from the read models (the baseline), in
//! the same run; then the worker's throughput computing snapshots for a population.

use std::time::Instant;

use chrono::{Duration, NaiveDate};
use commands::demo::{self, DemoConfig};
use domain::correlation::{Options, analyze, input_names};
use projections::{Engine, ReadDb};
use serde_json::json;
use store::{EventStore, MasterKey, StoreOptions};

use crate::bench::{progress, report, round3};

pub struct Config {
    pub athletes: usize,
    pub days: u32,
    pub rounds: usize,
    pub seed: u64,
    pub json: bool,
}

fn median_ms(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub async fn measure(url: &str, backend: &str, c: Config) -> anyhow::Result<()> {
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
    progress(&format!(
        "seeding {} athletes x {} days",
        c.athletes, c.days
    ));
    let started = Instant::now();
    let mut reported = 0;
    let events = demo::seed_direct(&store, &config, 8, |done, total| {
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

    let to = end_date;
    let from: NaiveDate = to - Duration::days(729);
    // Generated athletes log different things (not all wear an HRV strap): measure the one
    // with the most inputs among the first 50.
    let mut athlete = demo::athlete_id(&config, 0);
    let mut most = 0;
    for i in 0..c.athletes.min(50) {
        let id = demo::athlete_id(&config, i);
        let n = input_names(&workers::correlations::dataset(&engine, id, from, to).await?).len();
        if n > most {
            (athlete, most) = (id, n);
        }
    }
    progress(&format!("one athlete, {} rounds", c.rounds));
    let mut baseline = Vec::new();
    let mut analysis = Vec::new();
    let mut tests_run = 0;
    let mut inputs = 0;
    let options = Options::default();
    for _ in 0..c.rounds {
        let t = Instant::now();
        let data = workers::correlations::dataset(&engine, athlete, from, to).await?;
        baseline.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        let a = analyze(&data, &options);
        analysis.push(t.elapsed().as_secs_f64() * 1000.0);
        tests_run = a.tests_run;
        inputs = input_names(&data).len();
    }
    let t = Instant::now();
    workers::correlations::compute(&engine, athlete).await?;
    let snapshot_ms = t.elapsed().as_secs_f64() * 1000.0;

    progress(&format!(
        "worker: snapshots for all {} athletes, one process",
        c.athletes
    ));
    let t = Instant::now();
    let mut computed = 0;
    loop {
        let s = workers::correlations::step(&engine, "bench", 64).await?;
        if s.failed > 0 {
            anyhow::bail!("{} analyses failed", s.failed);
        }
        if s.computed == 0 {
            break;
        }
        computed += s.computed;
        progress(&format!("{computed} of {} athletes", c.athletes));
    }
    let worker_s = t.elapsed().as_secs_f64();
    let (analysis_ms, baseline_ms) = (median_ms(analysis), median_ms(baseline));
    report(
        c.json,
        json!({
            "analysis_ms": round3(analysis_ms),
            "baseline_ms": round3(baseline_ms),
            "ratio": round3(analysis_ms / baseline_ms),
            "athletes_per_s": round3(computed as f64 / worker_s),
            "snapshot_ms": round3(snapshot_ms),
            "tests_run": tests_run,
            "inputs": inputs,
            "days": c.days,
            "athletes": computed,
            "backend": backend,
        }),
    );
    Ok(())
}
